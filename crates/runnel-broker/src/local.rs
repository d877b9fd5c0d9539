//! The broker's in-process interface: everything a Kafka client does over
//! the wire (create topics, produce, fetch read_committed, commit offsets,
//! run transactions), as plain method calls on the same shared state, for
//! code running inside `runnel serve` (the stream engine, SQL). No sockets
//! and no protocol encoding; the same validation, idempotence and
//! transaction checks as the Produce handler, and waiting fetchers are
//! woken as usual.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use runnel_log::batch::BatchIter;
use runnel_log::LogError;

use crate::context::ConnectionContext;
use crate::group::{CommitOffset, CommitRequest};
use crate::producers::lock;
use crate::txn::{PendingOffset, TxnError};
use crate::Broker;

/// Failures of in-process calls.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("unknown topic or partition {0}-{1}")]
    UnknownPartition(String, i32),
    #[error("topic {0} is internal and written by the broker only")]
    Internal(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("transaction: {0}")]
    Txn(#[from] TxnError),
    /// A batch the produce path refused, with the Kafka error code a
    /// client would have received.
    #[error("produce refused: error {code}: {message}")]
    Refused { code: i16, message: String },
    #[error("group {group}: {error}")]
    Group { group: String, error: ResponseError },
    #[error("offset commit of {topic}-{partition} refused: {error}")]
    CommitRefused {
        topic: String,
        partition: i32,
        error: ResponseError,
    },
}

/// Who commits offsets ([`Local::commit_as`]): a consumer group member's
/// generation, member id and, with static membership, instance id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
}

impl GroupMember {
    /// No membership: generation -1 and an empty member id (a "simple"
    /// commit, accepted by a group without members).
    pub fn none() -> GroupMember {
        GroupMember {
            generation: -1,
            member_id: String::new(),
            instance_id: None,
        }
    }
}

/// What a read returned.
#[derive(Debug, Default)]
pub struct LocalRead {
    /// Whole batches, as stored.
    pub bytes: Vec<u8>,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// Aborted transactions overlapping the bytes: (producer id, first
    /// offset, abort marker offset).
    pub aborted: Vec<(i64, i64, i64)>,
}

/// Wakes in-process readers after appends (the TCP path uses a tokio
/// `watch`; this is its blocking twin).
#[derive(Default)]
pub(crate) struct AppendSignal {
    seq: Mutex<u64>,
    cond: Condvar,
}

impl AppendSignal {
    pub(crate) fn bump(&self) {
        let mut s = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        *s = s.wrapping_add(1);
        self.cond.notify_all();
    }
    fn current(&self) -> u64 {
        *self.seq.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn wait_past(&self, seen: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut s = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        while *s == seen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = match self.cond.wait_timeout(s, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        *s
    }
}

/// An in-process client of one broker. Its calls carry a
/// [`ConnectionContext`] of their own (listener `local`, no peer address)
/// through the same checks as requests from the wire.
#[derive(Clone)]
pub struct Local {
    broker: Arc<Broker>,
    ctx: ConnectionContext,
}

impl Broker {
    /// An in-process client of this broker.
    pub fn local(self: &Arc<Self>) -> Local {
        Local {
            broker: self.clone(),
            ctx: ConnectionContext::in_process(),
        }
    }
}

impl Local {
    /// The context this client's calls run with.
    pub fn context(&self) -> &ConnectionContext {
        &self.ctx
    }

    /// Partition count of `topic`, `None` if it does not exist.
    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        self.broker
            .log()
            .topic(topic)
            .map(|t| t.partitions().len() as i32)
    }

    /// Every topic with its partition count.
    pub fn topics(&self) -> Vec<(String, i32)> {
        let mut out: Vec<(String, i32)> = self
            .broker
            .log()
            .topics()
            .iter()
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect();
        out.sort();
        out
    }

    /// Deletes a topic (internal topics refuse, as over the wire).
    pub fn delete_topic(&self, topic: &str) -> Result<(), LocalError> {
        if crate::is_internal(topic) {
            return Err(LocalError::Internal(topic.to_string()));
        }
        self.broker.log().delete_topic(topic)?;
        self.broker.producers.forget_topic(topic);
        Ok(())
    }

    /// Creates a topic unless it exists.
    pub fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<(), LocalError> {
        if self.broker.log().topic(topic).is_some() {
            return Ok(());
        }
        match self.broker.log().create_topic(topic, partitions, configs) {
            Ok(_) | Err(LogError::TopicExists(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Appends one v2 batch (idempotent and transactional batches are
    /// checked as on the wire), fsyncing when the topic's flush policy asks.
    /// Returns the base offset.
    pub fn append(
        &self,
        topic: &str,
        partition: i32,
        mut batch: Vec<u8>,
    ) -> Result<i64, LocalError> {
        if crate::is_internal(topic) {
            return Err(LocalError::Internal(topic.to_string()));
        }
        let now = crate::now_ms();
        let p = self
            .broker
            .log()
            .topic(topic)
            .and_then(|t| t.partition(partition))
            .ok_or_else(|| LocalError::UnknownPartition(topic.to_string(), partition))?;
        let result = crate::handlers::produce::append_one(
            &self.broker,
            &self.ctx,
            topic,
            partition,
            &p,
            &mut batch,
            now,
        );
        self.broker.notify_appended();
        let ok = result.map_err(|e| LocalError::Refused {
            code: e.code,
            message: e.message.clone().unwrap_or_default(),
        })?;
        if let Some(offset) = ok.sync {
            p.sync_to(offset, now)?;
        }
        Ok(ok.base_offset)
    }

    /// A counter that moves after every append; pass it to
    /// [`Local::wait_for_append`].
    pub fn append_seq(&self) -> u64 {
        self.broker.local_signal.current()
    }

    /// Blocks until an append happened after `seen` or `timeout` passed.
    pub fn wait_for_append(&self, seen: u64, timeout: Duration) -> u64 {
        self.broker.local_signal.wait_past(seen, timeout)
    }

    /// Reads whole batches from `offset`; `committed_only` stops at the last
    /// stable offset and lists aborted transactions (read_committed).
    pub fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        committed_only: bool,
    ) -> Result<LocalRead, LocalError> {
        let p = self
            .broker
            .log()
            .topic(topic)
            .and_then(|t| t.partition(partition))
            .ok_or_else(|| LocalError::UnknownPartition(topic.to_string(), partition))?;
        let mut read = p.read(offset, max_bytes, true)?;
        let mut out = LocalRead {
            high_watermark: read.high_watermark,
            last_stable_offset: read.high_watermark,
            log_start_offset: read.log_start_offset,
            ..LocalRead::default()
        };
        if let Some(state) = self.broker.producers.existing(topic, partition) {
            let state = lock(&state);
            let lso = state.last_stable_offset(read.high_watermark);
            out.last_stable_offset = lso;
            if committed_only {
                let mut iter = BatchIter::unchecked_crc(&read.bytes);
                let mut kept = 0;
                let mut end = offset;
                while let Some(Ok(h)) = iter.next() {
                    if h.base_offset() >= lso {
                        break;
                    }
                    kept = iter.position();
                    end = h.next_offset();
                }
                read.bytes.truncate(kept);
                out.aborted = state
                    .aborted_between(offset, end)
                    .into_iter()
                    .map(|a| (a.producer_id, a.first_offset, a.last_offset))
                    .collect();
            }
        }
        out.bytes = read.bytes;
        Ok(out)
    }

    /// (log start, high watermark, last stable offset) of a partition.
    pub fn offsets(&self, topic: &str, partition: i32) -> Result<(i64, i64, i64), LocalError> {
        let p = self
            .broker
            .log()
            .topic(topic)
            .and_then(|t| t.partition(partition))
            .ok_or_else(|| LocalError::UnknownPartition(topic.to_string(), partition))?;
        let hw = p.high_watermark();
        let lso = match self.broker.producers.existing(topic, partition) {
            Some(state) => lock(&state).last_stable_offset(hw),
            None => hw,
        };
        Ok((p.log_start_offset(), hw, lso))
    }

    /// Holds `group` for an application running in this process: listed
    /// and described as Stable with `held` as its one member, closed to
    /// members over the wire, until [`release_group`](Self::release_group).
    pub fn hold_group(&self, group: &str, held: crate::group::HeldGroup) {
        self.broker.groups().hold(group, held);
    }

    /// Ends `member_id`'s hold on `group`.
    pub fn release_group(&self, group: &str, member_id: &str) {
        self.broker.groups().release(group, member_id);
    }

    /// Deletes a group without members and its committed offsets, as
    /// DeleteGroups does (GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP otherwise).
    pub fn delete_group(&self, group: &str) -> Result<(), LocalError> {
        let refused = |error| LocalError::Group {
            group: group.to_string(),
            error,
        };
        let groups = self.broker.groups();
        let offsets = groups.offsets().group_offsets(group);
        if groups.describe(group).is_none() && offsets.is_empty() {
            return Err(refused(ResponseError::GroupIdNotFound));
        }
        groups.remove_if_empty(group).map_err(refused)?;
        // The group's records and its group configs go with it.
        groups.flush_consumer_groups().map_err(LocalError::Log)?;
        groups.share().flush().map_err(LocalError::Log)?;
        let tombstones = offsets.into_iter().map(|(k, _)| (k, None)).collect();
        groups
            .offsets()
            .write(group, tombstones, crate::now_ms())
            .map_err(LocalError::Log)
    }

    /// The group's committed offset of a partition.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        self.broker
            .groups()
            .offsets()
            .get(group, topic, partition)
            .map(|c| c.offset)
    }

    /// Commits offsets for `group` outside any transaction, as a consumer
    /// without group membership does (generation -1, no member id): the
    /// wire's OffsetCommit checks apply, so a group with live members
    /// refuses it.
    pub fn commit(&self, group: &str, offsets: &[(String, i32, i64)]) -> Result<(), LocalError> {
        self.commit_as(group, &GroupMember::none(), offsets)
    }

    /// Commits offsets for `group` as `member`, through the same checks as
    /// OffsetCommit over the wire: generation and member fencing
    /// (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID,
    /// REBALANCE_IN_PROGRESS), unknown partitions. The first refused offset
    /// is the error; nothing is written when the member is refused.
    pub fn commit_as(
        &self,
        group: &str,
        member: &GroupMember,
        offsets: &[(String, i32, i64)],
    ) -> Result<(), LocalError> {
        let request = CommitRequest {
            group_id: group.to_string(),
            generation: member.generation,
            member_id: member.member_id.clone(),
            instance_id: member.instance_id.clone(),
            offsets: offsets
                .iter()
                .map(|(topic, partition, offset)| CommitOffset {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: *offset,
                    leader_epoch: -1,
                    metadata: None,
                })
                .collect(),
        };
        let results = self
            .broker
            .commit_offsets(&self.ctx, request, crate::now_ms());
        for ((topic, partition, _), result) in offsets.iter().zip(results) {
            if let Err(error) = result {
                return Err(LocalError::CommitRefused {
                    topic: topic.clone(),
                    partition: *partition,
                    error,
                });
            }
        }
        Ok(())
    }

    /// InitProducerId for a transactional id: (producer id, epoch). Fences
    /// any earlier holder of the id and aborts its open transaction.
    pub fn init_transactions(&self, id: &str, timeout_ms: i32) -> Result<(i64, i16), LocalError> {
        let meta = self
            .broker
            .txn
            .init_producer(id, timeout_ms, self.broker.txn_deps())?;
        self.broker.notify_appended();
        Ok((meta.producer_id, meta.epoch))
    }

    /// Adds partitions (and optionally a group's offsets) to the open
    /// transaction, starting one if needed.
    pub fn add_to_transaction(
        &self,
        id: &str,
        producer: (i64, i16),
        partitions: &[(String, i32)],
        group: Option<&str>,
    ) -> Result<(), LocalError> {
        self.broker
            .txn
            .add(id, producer.0, producer.1, partitions, group)?;
        Ok(())
    }

    /// Stages `group`'s offsets in the transaction (TxnOffsetCommit).
    pub fn stage_offsets(
        &self,
        id: &str,
        producer: (i64, i16),
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> Result<(), LocalError> {
        let staged = offsets
            .iter()
            .map(|(t, p, o)| PendingOffset {
                group: group.to_string(),
                topic: t.clone(),
                partition: *p,
                offset: *o,
                leader_epoch: -1,
                metadata: None,
            })
            .collect();
        self.broker
            .txn
            .stage_offsets(id, producer.0, producer.1, staged)?;
        Ok(())
    }

    /// Commits or aborts the open transaction (markers written, offsets
    /// applied on commit). Returns the producer's epoch for the next
    /// transaction.
    pub fn end_transaction(
        &self,
        id: &str,
        producer: (i64, i16),
        commit: bool,
    ) -> Result<i16, LocalError> {
        let r = self.broker.txn.end(
            id,
            producer.0,
            producer.1,
            commit,
            false,
            self.broker.txn_deps(),
        );
        self.broker.notify_appended();
        Ok(r?.epoch)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{
        ApiKey, GroupId, OffsetCommitRequest, RequestHeader, RequestKind, ResponseKind, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    use tokio::time::Instant;

    use super::*;
    use crate::group::{GroupConfig, JoinRequest, Reply, SyncRequest};
    use crate::BrokerConfig;

    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let config = BrokerConfig {
            group: GroupConfig {
                initial_rebalance_delay: Duration::ZERO,
                ..GroupConfig::default()
            },
            ..BrokerConfig::default()
        };
        let broker = Broker::open(dir, config).expect("open broker");
        broker
            .local()
            .create_topic("t", 1, BTreeMap::new())
            .expect("create topic");
        broker
    }

    /// One member joins group `g` and syncs: the group is Stable at
    /// generation 1. Returns the member id.
    fn stable_member(broker: &Broker) -> String {
        let now = Instant::now();
        let join = JoinRequest {
            group_id: "g".into(),
            member_id: String::new(),
            instance_id: Some("i".into()),
            client_id: "c".into(),
            client_host: String::new(),
            session_timeout_ms: 30_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::new())],
            require_known_member_id: false,
        };
        let joined = match broker.groups().join(now, join) {
            Reply::Ready(r) => r,
            Reply::Wait(mut rx) => {
                broker.groups().tick(now + Duration::from_millis(1));
                rx.try_recv().expect("join answered")
            }
        };
        assert_eq!((joined.error, joined.generation_id), (0, 1));
        let synced = broker.groups().sync(
            now,
            SyncRequest {
                group_id: "g",
                generation: 1,
                member_id: &joined.member_id,
                instance_id: Some("i"),
                protocol_type: None,
                protocol_name: None,
                assignments: vec![(joined.member_id.clone(), Bytes::new())],
            },
        );
        assert!(matches!(synced, Reply::Ready(r) if r.error == 0));
        joined.member_id
    }

    /// The OffsetCommit error code the wire path answers for one offset.
    async fn wire_commit(broker: &Arc<Broker>, member: &GroupMember, offset: i64) -> i16 {
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_generation_id_or_member_epoch(member.generation)
            .with_member_id(StrBytes::from_string(member.member_id.clone()))
            .with_group_instance_id(member.instance_id.clone().map(StrBytes::from_string))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(offset)])]);
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::OffsetCommit as i16)
            .with_request_api_version(8);
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let ctx = ConnectionContext::accepted("PLAINTEXT", "127.0.0.1:1".parse().expect("addr"));
        let resp = crate::handlers::handle(
            broker,
            &ctx,
            &header,
            RequestKind::OffsetCommit(req),
            &stop,
            &mut Vec::new(),
        )
        .await
        .expect("handled");
        match resp {
            Some(ResponseKind::OffsetCommit(r)) => r.topics[0].partitions[0].error_code,
            other => panic!("unexpected response {other:?}"),
        }
    }

    fn refusal(r: Result<(), LocalError>) -> i16 {
        match r {
            Ok(()) => 0,
            Err(LocalError::CommitRefused { error, .. }) => error.code(),
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[tokio::test]
    async fn commits_are_fenced_as_on_the_wire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = broker(dir.path());
        let member_id = stable_member(&broker);
        let local = broker.local();
        let offsets = [("t".to_string(), 0, 5)];
        let member = |generation: i32, id: &str, instance: Option<&str>| GroupMember {
            generation,
            member_id: id.to_string(),
            instance_id: instance.map(str::to_string),
        };
        let cases = [
            (
                member(0, &member_id, None),
                ResponseError::IllegalGeneration,
            ),
            (member(1, "ghost", None), ResponseError::UnknownMemberId),
            (
                member(1, "ghost", Some("i")),
                ResponseError::FencedInstanceId,
            ),
            (GroupMember::none(), ResponseError::UnknownMemberId),
        ];
        for (who, expected) in cases {
            let in_process = refusal(local.commit_as("g", &who, &offsets));
            assert_eq!(in_process, expected.code(), "{who:?}");
            assert_eq!(wire_commit(&broker, &who, 5).await, in_process, "{who:?}");
        }
        assert_eq!(local.committed("g", "t", 0), None, "nothing written");
        local
            .commit_as("g", &member(1, &member_id, Some("i")), &offsets)
            .expect("the member's commit");
        assert_eq!(local.committed("g", "t", 0), Some(5));
        let unknown = [("nope".to_string(), 0, 1)];
        assert_eq!(
            refusal(local.commit_as("g", &member(1, &member_id, None), &unknown)),
            ResponseError::UnknownTopicOrPartition.code()
        );
    }

    #[test]
    fn simple_commits_need_no_members() {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = broker(dir.path());
        let local = broker.local();
        local
            .commit("app", &[("t".to_string(), 0, 7)])
            .expect("simple commit to a group without members");
        assert_eq!(local.committed("app", "t", 0), Some(7));
        assert!(matches!(
            local.commit("", &[("t".to_string(), 0, 7)]),
            Err(LocalError::CommitRefused {
                error: ResponseError::InvalidGroupId,
                ..
            })
        ));
    }
}
