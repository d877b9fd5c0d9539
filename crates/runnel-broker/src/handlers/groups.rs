//! Consumer group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups,
//! DeleteGroups and OffsetDelete. The state machine lives in
//! [`crate::group`]; this module translates requests and responses at the
//! negotiated version.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, RequestHeader, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::warn;

use super::{blocking, str_bytes};
use crate::context::ConnectionContext;
use crate::group::{
    CommitOffset, CommitRequest, Committed, JoinRequest, JoinResult, Reply, SyncRequest, SyncResult,
};
use crate::Broker;

fn opt_str(s: Option<&str>) -> Option<StrBytes> {
    s.map(str_bytes)
}

/// Waits for a parked request's answer; on shutdown or a dropped sender
/// answers `fallback`.
async fn wait<T>(rx: oneshot::Receiver<T>, stop: &watch::Receiver<bool>, fallback: T) -> T {
    let mut stop = stop.clone();
    tokio::select! {
        r = rx => r.unwrap_or(fallback),
        _ = stop.wait_for(|s| *s) => fallback,
    }
}

pub(crate) fn find_coordinator(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let cfg = broker.config();
    let valid_type = matches!(req.key_type, 0 | 1);
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let c = CoordinatorEntry::default().with_key(key);
                if valid_type {
                    c.with_node_id(BrokerId(cfg.node_id))
                        .with_host(str_bytes(&cfg.advertised_host))
                        .with_port(cfg.advertised_port)
                } else {
                    c.with_node_id(BrokerId(-1))
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes("unknown key type")))
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    if !valid_type {
        return FindCoordinatorResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message((version >= 1).then(|| str_bytes("unknown key type")))
            .with_node_id(BrokerId(-1))
            .with_port(-1);
    }
    FindCoordinatorResponse::default()
        .with_node_id(BrokerId(cfg.node_id))
        .with_host(str_bytes(&cfg.advertised_host))
        .with_port(cfg.advertised_port)
}

fn join_response(r: JoinResult, version: i16) -> JoinGroupResponse {
    let members = r
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&m.member_id))
                .with_group_instance_id(if version >= 5 {
                    opt_str(m.instance_id.as_deref())
                } else {
                    None
                })
                .with_metadata(m.metadata)
        })
        .collect();
    let protocol_name = match r.protocol_name {
        Some(p) => Some(str_bytes(&p)),
        None if version < 7 => Some(StrBytes::default()),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation_id)
        .with_protocol_type(if version >= 7 {
            opt_str(r.protocol_type.as_deref())
        } else {
            None
        })
        .with_protocol_name(protocol_name)
        .with_leader(str_bytes(&r.leader))
        .with_member_id(str_bytes(&r.member_id))
        .with_members(members)
}

pub(crate) async fn join_group(
    broker: &Arc<Broker>,
    ctx: &ConnectionContext,
    header: &RequestHeader,
    req: JoinGroupRequest,
    version: i16,
    stop: &watch::Receiver<bool>,
) -> JoinGroupResponse {
    let member_id = req.member_id.to_string();
    let join = JoinRequest {
        group_id: req.group_id.0.to_string(),
        member_id: member_id.clone(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: header
            .client_id
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        client_host: ctx.client_host(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let result = match broker.groups().join(Instant::now(), join) {
        Reply::Ready(r) => r,
        Reply::Wait(rx) => {
            let fallback = JoinResult {
                error: ResponseError::CoordinatorNotAvailable.code(),
                generation_id: -1,
                member_id,
                ..Default::default()
            };
            wait(rx, stop, fallback).await
        }
    };
    join_response(result, version)
}

fn sync_response(r: SyncResult, version: i16) -> SyncGroupResponse {
    let mut resp = SyncGroupResponse::default()
        .with_error_code(r.error)
        .with_assignment(r.assignment);
    if version >= 5 {
        resp = resp
            .with_protocol_type(opt_str(r.protocol_type.as_deref()))
            .with_protocol_name(opt_str(r.protocol_name.as_deref()));
    }
    resp
}

pub(crate) async fn sync_group(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: SyncGroupRequest,
    version: i16,
    stop: &watch::Receiver<bool>,
) -> SyncGroupResponse {
    let assignments: Vec<(String, Bytes)> = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let reply = broker.groups().sync(
        Instant::now(),
        SyncRequest {
            group_id: &req.group_id.0,
            generation: req.generation_id,
            member_id: &req.member_id,
            instance_id: req.group_instance_id.as_deref(),
            protocol_type: req.protocol_type.as_deref(),
            protocol_name: req.protocol_name.as_deref(),
            assignments,
        },
    );
    let result = match reply {
        Reply::Ready(r) => r,
        Reply::Wait(rx) => {
            let fallback = SyncResult {
                error: ResponseError::CoordinatorNotAvailable.code(),
                ..Default::default()
            };
            wait(rx, stop, fallback).await
        }
    };
    sync_response(result, version)
}

pub(crate) fn heartbeat(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: HeartbeatRequest,
) -> HeartbeatResponse {
    let code = broker.groups().heartbeat(
        Instant::now(),
        &req.group_id.0,
        req.generation_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
    );
    HeartbeatResponse::default().with_error_code(code)
}

pub(crate) fn leave_group(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let result = broker
        .groups()
        .leave(Instant::now(), &req.group_id.0, &members);
    match result {
        Err(code) => LeaveGroupResponse::default().with_error_code(code),
        Ok(codes) if version >= 3 => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(codes)
                .map(|((id, instance), code)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(&id))
                        .with_group_instance_id(instance.as_deref().map(str_bytes))
                        .with_error_code(code)
                })
                .collect(),
        ),
        Ok(codes) => LeaveGroupResponse::default()
            .with_error_code(codes.first().copied().unwrap_or_default()),
    }
}

pub(crate) async fn offset_commit(
    broker: &Arc<Broker>,
    ctx: &ConnectionContext,
    req: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    // (topic, partition) in request order, answered in the same order.
    let mut asked: Vec<(TopicName, i32)> = Vec::new();
    let mut offsets = Vec::new();
    for t in req.topics {
        for p in t.partitions {
            asked.push((t.name.clone(), p.partition_index));
            offsets.push(CommitOffset {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            });
        }
    }
    let commit = CommitRequest {
        group_id: req.group_id.0.to_string(),
        generation: req.generation_id_or_member_epoch,
        member_id: req.member_id.to_string(),
        instance_id: if version >= 7 {
            req.group_instance_id.as_ref().map(|s| s.to_string())
        } else {
            None
        },
        offsets,
    };
    let b = broker.clone();
    let ctx = ctx.clone();
    let results = blocking(move || b.commit_offsets(&ctx, commit, crate::now_ms()))
        .await
        .unwrap_or_default();
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
    for (i, (name, partition)) in asked.into_iter().enumerate() {
        let code = match results.get(i) {
            Some(Ok(())) => 0,
            Some(Err(e)) => e.code(),
            None => ResponseError::UnknownServerError.code(),
        };
        let p = OffsetCommitResponsePartition::default()
            .with_partition_index(partition)
            .with_error_code(code);
        match topics.iter_mut().find(|t| t.name == name) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(vec![p]),
            ),
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}

/// Committed offsets (or none) by topic and partition.
type TopicOffsets = Vec<(TopicName, Vec<(i32, Option<Committed>)>)>;

/// (topic, partition, offset) answers for one group: the requested
/// partitions, or every committed one when `wanted` is `None`.
fn fetch_offsets(
    broker: &Broker,
    group: &str,
    wanted: Option<Vec<(TopicName, Vec<i32>)>>,
) -> TopicOffsets {
    let store = broker.groups().offsets();
    match wanted {
        Some(topics) => topics
            .into_iter()
            .map(|(name, parts)| {
                let found = parts
                    .into_iter()
                    .map(|p| (p, store.get(group, &name.0, p)))
                    .collect();
                (name, found)
            })
            .collect(),
        None => {
            let mut out: TopicOffsets = Vec::new();
            for ((topic, p), c) in store.group_offsets(group) {
                match out.iter_mut().find(|(n, _)| n.0.as_str() == topic) {
                    Some((_, v)) => v.push((p, Some(c))),
                    None => out.push((TopicName(str_bytes(&topic)), vec![(p, Some(c))])),
                }
            }
            out
        }
    }
}

pub(crate) fn offset_fetch(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    // KIP-447: offsets a transaction is about to commit are "unstable".
    let unstable = |group: &str, topic: &str, p: i32| {
        req.require_stable && broker.txn.has_pending_offset(group, topic, p)
    };
    if version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                if let Err(code) = broker.groups().consumer().check_fetch(
                    &g.group_id.0,
                    g.member_id.as_deref(),
                    g.member_epoch,
                ) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(code.code());
                }
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name, t.partition_indexes))
                        .collect()
                });
                let topics = fetch_offsets(broker, &g.group_id.0, wanted)
                    .into_iter()
                    .map(|(name, parts)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(name.clone())
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, c)| {
                                        if unstable(&g.group_id.0, &name.0, p) {
                                            return OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(-1)
                                                .with_error_code(
                                                    ResponseError::UnstableOffsetCommit.code(),
                                                );
                                        }
                                        let (offset, epoch, meta) = committed_fields(c);
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(Some(str_bytes(&meta)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    let topics = fetch_offsets(broker, &req.group_id.0, wanted)
        .into_iter()
        .map(|(name, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(name.clone())
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, c)| {
                            if unstable(&req.group_id.0, &name.0, p) {
                                return OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(-1)
                                    .with_error_code(ResponseError::UnstableOffsetCommit.code());
                            }
                            let (offset, epoch, meta) = committed_fields(c);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(if version >= 5 { epoch } else { -1 })
                                .with_metadata(Some(str_bytes(&meta)))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

fn committed_fields(c: Option<Committed>) -> (i64, i32, String) {
    match c {
        Some(c) => (c.offset, c.leader_epoch, c.metadata.unwrap_or_default()),
        None => (-1, -1, String::new()),
    }
}

pub(crate) fn describe_groups(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let mut g = DescribedGroup::default().with_group_id(id.clone());
            if version >= 3 {
                g.authorized_operations = i32::MIN;
            }
            if broker.groups().consumer().exists(&id.0) || broker.groups().share().exists(&id.0) {
                // Kafka 4 (KIP-1043): DescribeGroups describes classic
                // groups only; ConsumerGroupDescribe (ShareGroupDescribe)
                // describes this one. Kafka 4.4's answer, message included.
                let message = format!("Group {} is not a classic group.", id.0);
                return g
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message((version >= 6).then(|| str_bytes(&message)))
                    .with_group_state(str_bytes("Dead"));
            }
            match broker.groups().describe(&id.0) {
                None => g.with_group_state(str_bytes("Dead")),
                Some(d) => g
                    .with_group_state(str_bytes(d.state.name()))
                    .with_protocol_type(str_bytes(&d.protocol_type))
                    .with_protocol_data(str_bytes(&d.protocol))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(&m.member_id))
                                    .with_group_instance_id(if version >= 4 {
                                        opt_str(m.instance_id.as_deref())
                                    } else {
                                        None
                                    })
                                    .with_client_id(str_bytes(&m.client_id))
                                    .with_client_host(str_bytes(&m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(crate) fn list_groups(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    // (id, protocol type, state, group type); consumer-protocol groups
    // replace the offsets-only entries the classic listing has for them.
    let consumer = broker.groups().consumer().list();
    let mut all: Vec<(String, String, String, &str)> = broker
        .groups()
        .list()
        .into_iter()
        .filter(|(id, _, _)| !consumer.iter().any(|(c, _)| c == id))
        .map(|(id, ptype, state)| (id, ptype, state.name().to_string(), "classic"))
        .collect();
    all.extend(
        consumer
            .into_iter()
            .map(|(id, state)| (id, "consumer".to_string(), state.to_string(), "consumer")),
    );
    let share = broker.groups().share().list();
    all.retain(|(id, ..)| !share.iter().any(|(s, _)| s == id));
    all.extend(
        share
            .into_iter()
            .map(|(id, state)| (id, "share".to_string(), state.to_string(), "share")),
    );
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let groups = all
        .into_iter()
        .filter(|(_, _, state, _)| {
            version < 4 || states.is_empty() || states.contains(&state.to_lowercase())
        })
        .filter(|(_, _, _, kind)| {
            version < 5 || types.is_empty() || types.iter().any(|t| t == kind)
        })
        .map(|(id, ptype, state, kind)| {
            let mut g = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&id)))
                .with_protocol_type(str_bytes(&ptype));
            if version >= 4 {
                g = g.with_group_state(str_bytes(&state));
            }
            if version >= 5 {
                g = g.with_group_type(str_bytes(kind));
            }
            g
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub(crate) async fn delete_groups(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in req.groups_names {
        let code = delete_group(broker, &id.0).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

async fn delete_group(broker: &Arc<Broker>, id: &str) -> i16 {
    if broker.groups().share().exists(id) {
        return match broker.groups().share().remove_if_empty(id) {
            Ok(()) => match super::share_groups::flush(broker).await {
                Ok(()) => 0,
                Err(e) => e.code(),
            },
            Err(e) => e.code(),
        };
    }
    let b = broker.clone();
    let g = id.to_string();
    match blocking(move || b.local().delete_group(&g)).await {
        Ok(Ok(())) => 0,
        Ok(Err(crate::local::LocalError::Group { error, .. })) => error.code(),
        Ok(Err(err)) => {
            warn!(group = %id, %err, "deleting group offsets failed");
            ResponseError::CoordinatorNotAvailable.code()
        }
        Err(_) => ResponseError::UnknownServerError.code(),
    }
}

pub(crate) async fn offset_delete(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group_id = req.group_id.0.to_string();
    let groups = broker.groups();
    if groups.describe(&group_id).is_none() {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupIdNotFound.code());
    }
    let subscribed = groups.subscribed_topics(&group_id);
    let mut tombstones = Vec::new();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let busy = subscribed.iter().any(|s| s.as_str() == t.name.0.as_str());
        let partitions = t
            .partitions
            .into_iter()
            .map(|p| {
                let code = if busy {
                    ResponseError::GroupSubscribedToTopic.code()
                } else {
                    if groups
                        .offsets()
                        .get(&group_id, &t.name.0, p.partition_index)
                        .is_some()
                    {
                        tombstones.push(((t.name.0.to_string(), p.partition_index), None));
                    }
                    0
                };
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
            })
            .collect();
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    let b = broker.clone();
    let g = group_id.clone();
    let written =
        blocking(move || b.groups().offsets().write(&g, tombstones, crate::now_ms())).await;
    match written {
        Ok(Ok(())) => {
            broker.groups().offsets_deleted(&group_id, crate::now_ms());
            OffsetDeleteResponse::default().with_topics(topics)
        }
        Ok(Err(err)) => {
            warn!(group = %group_id, %err, "deleting offsets failed");
            OffsetDeleteResponse::default()
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
        }
        Err(_) => OffsetDeleteResponse::default()
            .with_error_code(ResponseError::UnknownServerError.code()),
    }
}
