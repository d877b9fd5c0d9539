//! Share groups (KIP-932): ShareGroupHeartbeat, ShareGroupDescribe,
//! ShareFetch, ShareAcknowledge and the share-group offset admin calls.
//! The group and delivery state is [`crate::group::share`]; this module
//! maps topic ids and names, reads the log and builds the responses.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch as AckLeader, PartitionData as AckPartition, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::share_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member,
    TopicPartitions as DescribedPartitions,
};
use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse, DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse, RequestHeader, ShareAcknowledgeRequest,
    ShareAcknowledgeResponse, ShareFetchRequest, ShareFetchResponse, ShareGroupDescribeRequest,
    ShareGroupDescribeResponse, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::ResponseError;
use runnel_log::batch::BatchIter;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::consumer_groups::{
    by_topic, by_topic_id, described_assignment, heartbeat_answer, topics, write_state, Topics,
};
use super::str_bytes;
use crate::context::ConnectionContext;
use crate::group::consumer::Tp;
use crate::group::share::{self, Acquired, SessionOp};
use crate::splice::{ShareV2, V2_FIELDS};
use crate::Broker;

/// Longest a share fetch may wait, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Refuses a share-group request for a group id another kind of group
/// has.
fn other_kind(broker: &Broker, group_id: &str) -> Option<String> {
    let groups = broker.groups();
    (groups.is_classic_with_members(group_id)
        || groups.consumer().exists(group_id)
        || !groups.offsets().group_offsets(group_id).is_empty())
    .then(|| format!("Group {group_id} is not a share group."))
}

/// Writes the share state that changed (see [`crate::group::share_store`])
/// off the async workers; `Err` when it could not be written.
pub(crate) async fn flush(broker: &Arc<Broker>) -> Result<(), ResponseError> {
    write_state(broker, "share-group", |b| b.groups().share().flush()).await
}

pub(crate) async fn share_group_heartbeat(
    broker: &Arc<Broker>,
    ctx: &ConnectionContext,
    header: &RequestHeader,
    req: ShareGroupHeartbeatRequest,
) -> ShareGroupHeartbeatResponse {
    let refuse = |code: ResponseError, message: String| {
        ShareGroupHeartbeatResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(&message)))
    };
    let share = broker.groups().share();
    if !share.exists(&req.group_id.0) {
        if let Some(message) = other_kind(broker, &req.group_id.0) {
            return refuse(ResponseError::InconsistentGroupProtocol, message);
        }
    }
    let topics = topics(broker);
    let hb = share::Heartbeat {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        topics: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.0.to_string()).collect()),
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: ctx.client_host(),
    };
    let reply = share.heartbeat(Instant::now(), hb, &topics.view);
    // A member leaving gave its records back.
    if let Err(code) = flush(broker).await {
        return refuse(code, "writing share-group state failed".to_string());
    }
    match reply {
        Err((code, message)) => refuse(code, message),
        Ok(reply) => heartbeat_answer!(
            ShareGroupHeartbeatResponse,
            Assignment,
            TopicPartitions,
            &topics,
            reply
        ),
    }
}

pub(crate) fn share_group_describe(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: ShareGroupDescribeRequest,
) -> ShareGroupDescribeResponse {
    let topics = topics(broker);
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let g = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            let Some(view) = broker.groups().share().describe(&id.0) else {
                return g
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(&format!("Group {} not found.", id.0))))
                    .with_group_state(str_bytes("Dead"));
            };
            g.with_group_state(str_bytes(view.state))
                .with_group_epoch(view.epoch)
                .with_assignment_epoch(view.assignment_epoch)
                .with_assignor_name(str_bytes(&view.assignor))
                .with_members(
                    view.members
                        .iter()
                        .map(|m| {
                            Member::default()
                                .with_member_id(str_bytes(&m.member_id))
                                .with_rack_id(m.rack_id.as_deref().map(str_bytes))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(str_bytes(&m.client_id))
                                .with_client_host(str_bytes(&m.client_host))
                                .with_subscribed_topic_names(
                                    m.topics.iter().map(|t| TopicName(str_bytes(t))).collect(),
                                )
                                .with_assignment(described_assignment!(
                                    DescribedAssignment,
                                    DescribedPartitions,
                                    topics,
                                    &m.assigned
                                ))
                        })
                        .collect(),
                )
        })
        .collect();
    ShareGroupDescribeResponse::default().with_groups(groups)
}

/// Acknowledgement batches of one partition: (first, last, types).
type AckBatches = Vec<(i64, i64, Vec<i8>)>;

/// Applies the acknowledgements of a request; returns each partition's
/// outcome (error code) by topic id.
fn apply_acks(
    broker: &Broker,
    topics: &Topics,
    (group_id, member_id): (&str, &str),
    acks: Vec<(Uuid, i32, AckBatches)>,
    renew: bool,
) -> BTreeMap<(Uuid, i32), i16> {
    let share = broker.groups().share();
    let mut out = BTreeMap::new();
    let now = Instant::now();
    for (id, partition, batches) in acks {
        let code = match topics.by_id.get(&id) {
            None => ResponseError::UnknownTopicId.code(),
            Some(name) => {
                let tp = (name.clone(), partition);
                match share.acknowledge_at(group_id, member_id, &tp, &batches, renew, now) {
                    Ok(()) => 0,
                    Err(e) => e.code(),
                }
            }
        };
        out.insert((id, partition), code);
    }
    out
}

/// Records acquired on one partition, with the batches that hold them.
struct Fetched {
    acquired: Vec<Acquired>,
    records: Vec<u8>,
    error: i16,
}

/// Acquires what one partition has for the member and reads its batches.
fn fetch_partition(
    broker: &Broker,
    (group_id, member_id): (&str, &str),
    tp: &Tp,
    (max_records, record_limit): (i64, bool),
    max_bytes: usize,
) -> Fetched {
    let share = broker.groups().share();
    let mut f = Fetched {
        acquired: Vec::new(),
        records: Vec::new(),
        error: 0,
    };
    let Some(partition) = broker.log().topic(&tp.0).and_then(|t| t.partition(tp.1)) else {
        f.error = ResponseError::UnknownTopicOrPartition.code();
        return f;
    };
    let bounds = (partition.log_start_offset(), partition.high_watermark());
    let Some((from, room)) = share.next_read(group_id, tp, bounds) else {
        f.error = ResponseError::GroupIdNotFound.code();
        return f;
    };
    if from > bounds.1 {
        // Another fetch acquired past the end read above, or the log is
        // shorter than the partition: only a look under the share lock
        // tells them apart.
        share.truncated(group_id, tp, || {
            (partition.log_start_offset(), partition.high_watermark())
        });
    }
    // read_committed: new records only below the last stable offset; those
    // of aborted transactions and the markers are archived, not delivered.
    let committed = share.read_committed(group_id);
    let producers = broker.producers.existing(&tp.0, tp.1);
    let end = match (&producers, committed) {
        (Some(state), true) => crate::producers::lock(state).last_stable_offset(bounds.1),
        _ => bounds.1,
    };
    let now = Instant::now();
    f.acquired = share.acquire_available(group_id, member_id, tp, max_records, now);
    let taken: i64 = f.acquired.iter().map(|a| a.last - a.first + 1).sum();
    if taken < max_records && room > 0 && from < end {
        // New records: whole batches from the partition's end, as many as
        // make up the record budget and fit in the in-flight room.
        if let Ok(read) = partition.read(from, max_bytes, true) {
            let aborted = match (&producers, committed) {
                (Some(state), true) => crate::producers::lock(state).aborted_between(from, end),
                _ => Vec::new(),
            };
            let mut to = from;
            let mut skip = Vec::new();
            let mut iter = BatchIter::unchecked_crc(&read.bytes);
            while let Some(Ok(h)) = iter.next() {
                let next = h.next_offset();
                if next <= to {
                    continue;
                }
                if next > end
                    || (to > from && (to - from + taken >= max_records || next - from > room))
                {
                    break;
                }
                let base = h.base_offset();
                let aborted_batch = committed
                    && h.is_transactional()
                    && aborted.iter().any(|a| {
                        a.producer_id == h.producer_id()
                            && a.first_offset <= base
                            && base < a.last_offset
                    });
                if committed && (h.is_control() || aborted_batch) {
                    skip.push((base.max(to), next - 1));
                }
                to = next;
            }
            if record_limit {
                // Record-limit mode (v2): no more records than asked for,
                // even if that ends inside a batch.
                to = to.min(from + (max_records - taken));
            }
            f.acquired
                .extend(share.acquire_new(group_id, member_id, tp, (from, to), &skip, now));
        }
    }
    f.records = batches_for(&partition, &f.acquired, max_bytes);
    f
}

/// The log's batches that hold the acquired offsets, in offset order, each
/// once.
fn batches_for(
    partition: &runnel_log::Partition,
    acquired: &[Acquired],
    max_bytes: usize,
) -> Vec<u8> {
    let mut ranges: Vec<(i64, i64)> = acquired.iter().map(|a| (a.first, a.last)).collect();
    ranges.sort_unstable();
    let mut out = Vec::new();
    let mut covered = i64::MIN; // every offset below this has its batch in `out`
    for (first, last) in ranges {
        let mut at = first.max(covered);
        while at <= last {
            let Ok(read) = partition.read(at, max_bytes, true) else {
                return out;
            };
            if read.bytes.is_empty() {
                return out;
            }
            let mut iter = BatchIter::unchecked_crc(&read.bytes);
            let mut start = 0;
            let mut progressed = false;
            while let Some(Ok(h)) = iter.next() {
                let end = iter.position();
                if h.base_offset() > last {
                    break;
                }
                if h.next_offset() > covered {
                    out.extend_from_slice(&read.bytes[start..end]);
                    covered = h.next_offset();
                    progressed = true;
                }
                start = end;
            }
            if !progressed {
                return out;
            }
            at = covered;
        }
    }
    out
}

/// The session partitions named by a request: (topic id, partition).
fn named(topics: &Topics, ids: impl Iterator<Item = (Uuid, i32)>) -> (Vec<Tp>, Vec<(Uuid, i32)>) {
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for (id, p) in ids {
        match topics.by_id.get(&id) {
            Some(name) => known.push((name.clone(), p)),
            None => unknown.push((id, p)),
        }
    }
    (known, unknown)
}

pub(crate) async fn share_fetch(
    broker: &Arc<Broker>,
    ctx: &ConnectionContext,
    req: ShareFetchRequest,
    stop: &watch::Receiver<bool>,
) -> ShareFetchResponse {
    let group_id = req
        .group_id
        .as_ref()
        .map(|g| g.0.to_string())
        .unwrap_or_default();
    let lock_ms = i32::try_from(broker.groups().share().lock_duration(&group_id).as_millis())
        .unwrap_or(i32::MAX);
    let refuse = |code: ResponseError, message: &str| {
        ShareFetchResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
            .with_acquisition_lock_timeout_ms(lock_ms)
    };
    let member_id = req
        .member_id
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    if group_id.is_empty() || member_id.is_empty() {
        return refuse(
            ResponseError::InvalidRequest,
            "group and member ids are required",
        );
    }
    let share = broker.groups().share();
    let v2 = ShareV2::from_bytes(req.unknown_tagged_fields.get(&V2_FIELDS));
    if v2.renew
        && (req.max_wait_ms != 0
            || req.min_bytes != 0
            || req.max_bytes != 0
            || req.max_records != 0)
    {
        // Kafka: a fetch that renews locks fetches nothing.
        return refuse(
            ResponseError::InvalidRequest,
            "a share fetch with renew acknowledgements must not fetch",
        );
    }
    let has_acks = req
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .any(|p| !p.acknowledgement_batches.is_empty());
    if req.share_session_epoch == 0 && has_acks {
        return refuse(
            ResponseError::InvalidRequest,
            "acknowledgements in the request that opens a share session",
        );
    }
    let op = match share.session(
        &group_id,
        &member_id,
        req.share_session_epoch,
        ctx.peer(),
        true,
    ) {
        Ok(op) => op,
        Err(code) => return refuse(code, "share session"),
    };
    let topics = topics(broker);
    let acks: Vec<(Uuid, i32, AckBatches)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| !p.acknowledgement_batches.is_empty())
                .map(move |p| {
                    (
                        t.topic_id,
                        p.partition_index,
                        p.acknowledgement_batches
                            .iter()
                            .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                            .collect(),
                    )
                })
        })
        .collect();
    let ack_results = apply_acks(broker, &topics, (&group_id, &member_id), acks, v2.renew);
    let mut responses: BTreeMap<(Uuid, i32), PartitionData> = ack_results
        .into_iter()
        .map(|(k, code)| {
            (
                k,
                PartitionData::default()
                    .with_partition_index(k.1)
                    .with_acknowledge_error_code(code),
            )
        })
        .collect();
    if op == SessionOp::Close || v2.renew {
        if op == SessionOp::Close {
            share.close_session(&group_id, &member_id);
        }
        if let Err(code) = flush(broker).await {
            return refuse(code, "writing share-group state failed");
        }
        return respond(broker, lock_ms, &topics, responses);
    }
    let (add, unknown_add) = named(
        &topics,
        req.topics.iter().flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.topic_id, p.partition_index))
        }),
    );
    let (forget, _) = named(
        &topics,
        req.forgotten_topics_data
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p))),
    );
    for key in unknown_add {
        responses
            .entry(key)
            .or_insert_with(|| PartitionData::default().with_partition_index(key.1))
            .error_code = ResponseError::UnknownTopicId.code();
    }
    let partitions = share.session_partitions(&group_id, &member_id, &add, &forget);
    let max_records = if req.max_records > 0 {
        i64::from(req.max_records)
    } else {
        500
    };
    let max_bytes = usize::try_from(req.max_bytes)
        .unwrap_or(0)
        .clamp(1, broker.config.fetch_max_bytes);
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let mut appended = broker.appended.subscribe();
    let mut released = share.subscribe();
    let mut stop = stop.clone();
    loop {
        appended.borrow_and_update();
        released.borrow_and_update();
        let mut got = false;
        let mut budget = max_records;
        for tp in &partitions {
            if budget <= 0 {
                break;
            }
            let f = fetch_partition(
                broker,
                (&group_id, &member_id),
                tp,
                (budget, v2.acquire_mode == 1),
                max_bytes,
            );
            let Some(id) = topics.ids.get(&tp.0).copied() else {
                continue;
            };
            if f.acquired.is_empty() && f.error == 0 {
                continue;
            }
            got |= !f.acquired.is_empty();
            budget -= f.acquired.iter().map(|a| a.last - a.first + 1).sum::<i64>();
            let pd = responses
                .entry((id, tp.1))
                .or_insert_with(|| PartitionData::default().with_partition_index(tp.1));
            pd.error_code = f.error;
            pd.records = Some(Bytes::from(f.records));
            pd.acquired_records = f
                .acquired
                .iter()
                .map(|a| {
                    AcquiredRecords::default()
                        .with_first_offset(a.first)
                        .with_last_offset(a.last)
                        .with_delivery_count(a.delivery_count)
                })
                .collect();
        }
        let errors = responses.values().any(|p| p.error_code != 0);
        if got || errors || Instant::now() >= deadline || *stop.borrow() {
            break;
        }
        tokio::select! {
            changed = appended.changed() => if changed.is_err() { break },
            changed = released.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep_until(deadline) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
    // The acknowledgements this response confirms (and a partition's
    // first start offset) are written before it is sent.
    if let Err(code) = flush(broker).await {
        return refuse(code, "writing share-group state failed");
    }
    respond(broker, lock_ms, &topics, responses)
}

fn leader(broker: &Broker) -> LeaderIdAndEpoch {
    LeaderIdAndEpoch::default()
        .with_leader_id(broker.config.node_id)
        .with_leader_epoch(0)
}

fn respond(
    broker: &Broker,
    lock_ms: i32,
    _topics: &Topics,
    responses: BTreeMap<(Uuid, i32), PartitionData>,
) -> ShareFetchResponse {
    let mut by_topic: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
    for ((id, _), mut pd) in responses {
        pd.current_leader = leader(broker);
        if pd.records.is_none() {
            pd.records = Some(Bytes::new());
        }
        by_topic.entry(id).or_default().push(pd);
    }
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(lock_ms)
        .with_responses(
            by_topic
                .into_iter()
                .map(|(id, partitions)| {
                    ShareFetchableTopicResponse::default()
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

pub(crate) async fn share_acknowledge(
    broker: &Arc<Broker>,
    ctx: &ConnectionContext,
    req: ShareAcknowledgeRequest,
) -> ShareAcknowledgeResponse {
    let refuse = |code: ResponseError, message: &str| {
        ShareAcknowledgeResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    let group_id = req
        .group_id
        .as_ref()
        .map(|g| g.0.to_string())
        .unwrap_or_default();
    let member_id = req
        .member_id
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    if group_id.is_empty() || member_id.is_empty() {
        return refuse(
            ResponseError::InvalidRequest,
            "group and member ids are required",
        );
    }
    let share = broker.groups().share();
    let op = match share.session(
        &group_id,
        &member_id,
        req.share_session_epoch,
        ctx.peer(),
        false,
    ) {
        Ok(op) => op,
        Err(code) => return refuse(code, "share session"),
    };
    let topics = topics(broker);
    let acks: Vec<(Uuid, i32, AckBatches)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.topic_id,
                    p.partition_index,
                    p.acknowledgement_batches
                        .iter()
                        .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                        .collect(),
                )
            })
        })
        .collect();
    let v2 = req.unknown_tagged_fields.get(&V2_FIELDS);
    let renew = ShareV2::from_bytes(v2).renew;
    let results = apply_acks(broker, &topics, (&group_id, &member_id), acks, renew);
    if op == SessionOp::Close {
        share.close_session(&group_id, &member_id);
    }
    if let Err(code) = flush(broker).await {
        return refuse(code, "writing share-group state failed");
    }
    let mut by_topic: BTreeMap<Uuid, Vec<AckPartition>> = BTreeMap::new();
    for ((id, p), code) in results {
        by_topic.entry(id).or_default().push(
            AckPartition::default()
                .with_partition_index(p)
                .with_error_code(code)
                .with_current_leader(
                    AckLeader::default()
                        .with_leader_id(broker.config.node_id)
                        .with_leader_epoch(0),
                ),
        );
    }
    let mut resp = ShareAcknowledgeResponse::default().with_responses(
        by_topic
            .into_iter()
            .map(|(id, partitions)| {
                ShareAcknowledgeTopicResponse::default()
                    .with_topic_id(id)
                    .with_partitions(partitions)
            })
            .collect(),
    );
    if v2.is_some() {
        // v2's AcquisitionLockTimeoutMs, put in place by the encoder
        // (crate::splice).
        let lock_ms = i32::try_from(share.lock_duration(&group_id).as_millis()).unwrap_or(i32::MAX);
        resp.unknown_tagged_fields
            .insert(V2_FIELDS, Bytes::copy_from_slice(&lock_ms.to_be_bytes()));
    }
    resp
}

/// One partition of a DescribeShareGroupOffsets answer.
struct OffsetRow {
    partition: i32,
    start: i64,
    lag: i64,
    error: i16,
}

/// One group of a DescribeShareGroupOffsets answer: (topic, id, rows) or
/// the group's error.
type OffsetGroup = Result<Vec<(String, Uuid, Vec<OffsetRow>)>, (i16, String)>;

fn share_group_offsets(
    broker: &Broker,
    req: DescribeShareGroupOffsetsRequest,
) -> Vec<(kafka_protocol::messages::GroupId, OffsetGroup)> {
    let topics = topics(broker);
    req.groups
        .into_iter()
        .map(|g| {
            let Some(starts) = broker.groups().share().start_offsets(&g.group_id.0) else {
                let message = format!("Group {} not found.", g.group_id.0);
                return (
                    g.group_id,
                    Err((ResponseError::GroupIdNotFound.code(), message)),
                );
            };
            // Without topics: every partition the group has state for.
            let wanted: BTreeMap<String, Vec<i32>> = match g.topics {
                Some(ts) => ts
                    .into_iter()
                    .map(|t| (t.topic_name.0.to_string(), t.partitions))
                    .collect(),
                None => {
                    let mut m: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                    for (t, p) in starts.keys() {
                        m.entry(t.clone()).or_default().push(*p);
                    }
                    m
                }
            };
            let rows = wanted
                .into_iter()
                .map(|(t, ps)| {
                    let topic = broker.log().topic(&t);
                    let id = topics.ids.get(&t).copied().unwrap_or_default();
                    let rows = ps
                        .into_iter()
                        .map(|p| {
                            let Some(part) = topic.as_ref().and_then(|tt| tt.partition(p)) else {
                                return OffsetRow {
                                    partition: p,
                                    start: -1,
                                    lag: -1,
                                    error: ResponseError::UnknownTopicOrPartition.code(),
                                };
                            };
                            match starts.get(&(t.clone(), p)) {
                                // Kafka's lag: records after the start not
                                // yet delivered and acknowledged.
                                Some((start, done)) => OffsetRow {
                                    partition: p,
                                    start: *start,
                                    lag: (part.high_watermark() - start - done).max(0),
                                    error: 0,
                                },
                                None => OffsetRow {
                                    partition: p,
                                    start: -1,
                                    lag: -1,
                                    error: 0,
                                },
                            }
                        })
                        .collect();
                    (t, id, rows)
                })
                .collect();
            (g.group_id, Ok(rows))
        })
        .collect()
}

pub(crate) fn describe_share_group_offsets(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: DescribeShareGroupOffsetsRequest,
) -> DescribeShareGroupOffsetsResponse {
    let groups = share_group_offsets(broker, req)
        .into_iter()
        .map(|(id, g)| {
            let out = DescribeShareGroupOffsetsResponseGroup::default().with_group_id(id);
            match g {
                Err((code, message)) => out
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(&message))),
                Ok(topics) => out.with_topics(
                    topics
                        .into_iter()
                        .map(|(t, id, rows)| {
                            DescribeShareGroupOffsetsResponseTopic::default()
                                .with_topic_name(TopicName(str_bytes(&t)))
                                .with_topic_id(id)
                                .with_partitions(
                                    rows.into_iter()
                                        .map(|r| {
                                            DescribeShareGroupOffsetsResponsePartition::default()
                                                .with_partition_index(r.partition)
                                                .with_start_offset(r.start)
                                                .with_leader_epoch(0)
                                                .with_error_code(r.error)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}

/// DescribeShareGroupOffsets v1 (with `Lag`), which the codec does not
/// have: the response body encoded here, all fields compact.
pub(crate) fn describe_share_group_offsets_v1(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: DescribeShareGroupOffsetsRequest,
) -> Vec<u8> {
    fn uvarint(out: &mut Vec<u8>, mut n: u64) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    fn string(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            None => out.push(0),
            Some(s) => {
                uvarint(out, s.len() as u64 + 1);
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
    const NO_TAGS: u8 = 0;
    let groups = share_group_offsets(broker, req);
    let mut out = Vec::new();
    out.extend_from_slice(&0i32.to_be_bytes()); // throttle_time_ms
    uvarint(&mut out, groups.len() as u64 + 1);
    for (id, g) in groups {
        string(&mut out, Some(&id.0));
        let (topics, code, message) = match g {
            Ok(topics) => (topics, 0i16, None),
            Err((code, message)) => (Vec::new(), code, Some(message)),
        };
        uvarint(&mut out, topics.len() as u64 + 1);
        for (name, topic_id, rows) in topics {
            string(&mut out, Some(&name));
            out.extend_from_slice(topic_id.as_bytes());
            uvarint(&mut out, rows.len() as u64 + 1);
            for r in rows {
                out.extend_from_slice(&r.partition.to_be_bytes());
                out.extend_from_slice(&r.start.to_be_bytes());
                out.extend_from_slice(&0i32.to_be_bytes()); // leader_epoch
                out.extend_from_slice(&r.lag.to_be_bytes());
                out.extend_from_slice(&r.error.to_be_bytes());
                string(&mut out, None);
                out.push(NO_TAGS);
            }
            out.push(NO_TAGS);
        }
        out.extend_from_slice(&code.to_be_bytes());
        string(&mut out, message.as_deref());
        out.push(NO_TAGS);
    }
    out.push(NO_TAGS);
    out
}

pub(crate) async fn alter_share_group_offsets(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: AlterShareGroupOffsetsRequest,
) -> AlterShareGroupOffsetsResponse {
    let topics = topics(broker);
    let group_id = req.group_id.0.to_string();
    if !broker.groups().share().exists(&group_id) {
        if let Some(message) = other_kind(broker, &group_id) {
            return AlterShareGroupOffsetsResponse::default()
                .with_error_code(ResponseError::GroupIdNotFound.code())
                .with_error_message(Some(str_bytes(&message)));
        }
    }
    let mut valid = Vec::new();
    let mut results: BTreeMap<String, Vec<(i32, i16)>> = BTreeMap::new();
    for t in &req.topics {
        let name = t.topic_name.0.to_string();
        let topic = broker.log().topic(&name);
        for p in &t.partitions {
            let code = match topic
                .as_ref()
                .and_then(|tt| tt.partition(p.partition_index))
            {
                None => ResponseError::UnknownTopicOrPartition.code(),
                Some(part) => {
                    let (start, end) = (part.log_start_offset(), part.high_watermark());
                    // -1: the log end, as Kafka reads it.
                    let offset = if p.start_offset < 0 {
                        end
                    } else {
                        p.start_offset
                    };
                    if offset < start || offset > end {
                        ResponseError::OffsetOutOfRange.code()
                    } else {
                        valid.push(((name.clone(), p.partition_index), offset));
                        0
                    }
                }
            };
            results
                .entry(name.clone())
                .or_default()
                .push((p.partition_index, code));
        }
    }
    let group_error = broker
        .groups()
        .share()
        .alter_offsets(&group_id, &valid)
        .err();
    let responses = results
        .into_iter()
        .map(|(t, ps)| {
            AlterShareGroupOffsetsResponseTopic::default()
                .with_topic_id(topics.ids.get(&t).copied().unwrap_or_default())
                .with_topic_name(TopicName(str_bytes(&t)))
                .with_partitions(
                    ps.into_iter()
                        .map(|(p, code)| {
                            AlterShareGroupOffsetsResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(group_error.map_or(code, |e| e.code()))
                        })
                        .collect(),
                )
        })
        .collect();
    let mut resp = AlterShareGroupOffsetsResponse::default().with_responses(responses);
    if let Some(e) = group_error {
        resp = resp
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(&if e == ResponseError::NonEmptyGroup {
                format!("Group {group_id} is not empty.")
            } else {
                "writing share-group state failed".to_string()
            })));
    }
    resp
}

pub(crate) async fn delete_share_group_offsets(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: DeleteShareGroupOffsetsRequest,
) -> DeleteShareGroupOffsetsResponse {
    let topics = topics(broker);
    let group_id = req.group_id.0.to_string();
    let names: BTreeSet<String> = req
        .topics
        .iter()
        .map(|t| t.topic_name.0.to_string())
        .collect();
    let existing: Vec<String> = names
        .iter()
        .filter(|t| topics.ids.contains_key(*t))
        .cloned()
        .collect();
    let deleted = match broker.groups().share().delete_offsets(&group_id, &existing) {
        Ok(()) => flush(broker).await,
        Err(e) => Err(e),
    };
    if let Err(e) = deleted {
        return DeleteShareGroupOffsetsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(&format!(
                "Group {group_id}: {}",
                match e {
                    ResponseError::NonEmptyGroup => "the group is not empty",
                    ResponseError::GroupIdNotFound => "not found",
                    _ => "writing share-group state failed",
                }
            ))));
    }
    DeleteShareGroupOffsetsResponse::default().with_responses(
        names
            .into_iter()
            .map(|t| {
                let r = DeleteShareGroupOffsetsResponseTopic::default()
                    .with_topic_name(TopicName(str_bytes(&t)));
                match topics.ids.get(&t) {
                    Some(id) => r.with_topic_id(*id),
                    None => r.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                }
            })
            .collect(),
    )
}
