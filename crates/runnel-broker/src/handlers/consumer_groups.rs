//! The consumer group protocol of KIP-848: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe. The group logic is in [`crate::group::consumer`];
//! this module maps topic ids and names and builds the responses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member,
    TopicPartitions as DescribedPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, RequestHeader, TopicName,
};
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::str_bytes;
use crate::context::ConnectionContext;
use crate::group::consumer::{Heartbeat, TopicView, Tp};
use crate::Broker;

/// The broker's topics: partition counts by name, names and ids both ways.
pub(super) struct Topics {
    pub(super) view: TopicView,
    pub(super) by_id: HashMap<Uuid, String>,
    pub(super) ids: HashMap<String, Uuid>,
}

pub(super) fn topics(broker: &Broker) -> Topics {
    let mut t = Topics {
        view: BTreeMap::new(),
        by_id: HashMap::new(),
        ids: HashMap::new(),
    };
    for topic in broker.log().topics() {
        let id = Uuid::from_bytes(topic.id());
        t.view
            .insert(topic.name().to_string(), topic.partition_count());
        t.by_id.insert(id, topic.name().to_string());
        t.ids.insert(topic.name().to_string(), id);
    }
    t
}

/// An assignment as heartbeat responses carry it: (topic id, partitions)
/// per topic, topics the broker no longer has left out.
pub(super) fn by_topic_id(topics: &Topics, set: &BTreeSet<Tp>) -> Vec<(Uuid, Vec<i32>)> {
    by_topic(set)
        .into_iter()
        .filter_map(|(t, ps)| topics.ids.get(t).map(|id| (*id, ps)))
        .collect()
}

/// The answer to a heartbeat of either protocol (ConsumerGroupHeartbeat,
/// ShareGroupHeartbeat: generated types of one shape), from a
/// [`crate::group::consumer::HeartbeatReply`].
macro_rules! heartbeat_answer {
    ($response:ty, $assignment:ty, $partitions:ty, $topics:expr, $reply:expr) => {{
        let reply = $reply;
        <$response>::default()
            .with_member_id(Some(str_bytes(&reply.member_id)))
            .with_member_epoch(reply.member_epoch)
            .with_heartbeat_interval_ms(reply.heartbeat_interval_ms)
            .with_assignment(reply.assignment.map(|set| {
                let parts = by_topic_id($topics, &set).into_iter().map(|(id, ps)| {
                    <$partitions>::default()
                        .with_topic_id(id)
                        .with_partitions(ps)
                });
                <$assignment>::default().with_topic_partitions(parts.collect())
            }))
    }};
}
pub(super) use heartbeat_answer;

/// A member's assignment as ConsumerGroupDescribe and ShareGroupDescribe
/// show it: topic id, name and partitions per topic.
macro_rules! described_assignment {
    ($assignment:ty, $partitions:ty, $topics:expr, $set:expr) => {
        <$assignment>::default().with_topic_partitions(
            by_topic($set)
                .into_iter()
                .map(|(t, ps)| {
                    <$partitions>::default()
                        .with_topic_id($topics.ids.get(t).copied().unwrap_or_default())
                        .with_topic_name(TopicName(str_bytes(t)))
                        .with_partitions(ps)
                })
                .collect(),
        )
    };
}
pub(super) use described_assignment;

/// Writes group state off the async workers before a response that
/// reports it (`what` names it in the log); `Err` when it could not be
/// written.
pub(super) async fn write_state(
    broker: &Arc<Broker>,
    what: &'static str,
    write: impl FnOnce(&Broker) -> Result<(), runnel_log::LogError> + Send + 'static,
) -> Result<(), ResponseError> {
    let b = broker.clone();
    match super::blocking(move || write(&b)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => {
            tracing::warn!(%err, "writing {what} state failed");
            Err(ResponseError::KafkaStorageError)
        }
        Err(_) => Err(ResponseError::UnknownServerError),
    }
}

/// Partitions grouped by topic, in topic then partition order.
pub(super) fn by_topic(set: &BTreeSet<Tp>) -> BTreeMap<&str, Vec<i32>> {
    let mut out: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in set {
        out.entry(t.as_str()).or_default().push(*p);
    }
    out
}

pub(crate) async fn consumer_group_heartbeat(
    broker: &Arc<Broker>,
    ctx: &ConnectionContext,
    header: &RequestHeader,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let refuse = |code: ResponseError, message: String| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(&message)))
    };
    let groups = broker.groups();
    if groups.is_classic_with_members(&req.group_id.0) {
        return refuse(
            ResponseError::GroupIdNotFound,
            format!("group {} is not a consumer group", req.group_id.0),
        );
    }
    let topics = topics(broker);
    // Owned partitions of topics that no longer exist are simply not owned.
    let owned = req.topic_partitions.as_ref().map(|tps| {
        tps.iter()
            .filter_map(|t| {
                topics
                    .by_id
                    .get(&t.topic_id)
                    .map(|name| (name, &t.partitions))
            })
            .flat_map(|(name, ps)| ps.iter().map(move |p| (name.clone(), *p)))
            .collect::<BTreeSet<Tp>>()
    });
    let hb = Heartbeat {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        topics: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.0.to_string()).collect()),
        regex: req.subscribed_topic_regex.as_ref().map(|s| s.to_string()),
        assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned,
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: ctx.client_host(),
    };
    let reply = groups
        .consumer()
        .heartbeat(Instant::now(), hb, &topics.view);
    // What the answer reports is written first (see group::consumer).
    let written = write_state(broker, "consumer group", |b| {
        b.groups().flush_consumer_groups()
    })
    .await;
    if let Err(code) = written {
        return refuse(code, "writing consumer group state failed".to_string());
    }
    match reply {
        Err((code, message)) => refuse(code, message),
        Ok(reply) => heartbeat_answer!(
            ConsumerGroupHeartbeatResponse,
            Assignment,
            TopicPartitions,
            &topics,
            reply
        ),
    }
}

pub(crate) fn consumer_group_describe(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: ConsumerGroupDescribeRequest,
    version: i16,
) -> ConsumerGroupDescribeResponse {
    let topics = topics(broker);
    let assignment = |set: &BTreeSet<Tp>| {
        described_assignment!(DescribedAssignment, DescribedPartitions, topics, set)
    };
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let g = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            let Some(view) = broker.groups().consumer().describe(&id.0) else {
                return g
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(&format!(
                        "Group {} is not a consumer group.",
                        id.0
                    ))))
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
                            let member = Member::default()
                                .with_member_id(str_bytes(&m.member_id))
                                .with_instance_id(m.instance_id.as_deref().map(str_bytes))
                                .with_rack_id(m.rack_id.as_deref().map(str_bytes))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(str_bytes(&m.client_id))
                                .with_client_host(str_bytes(&m.client_host))
                                .with_subscribed_topic_names(
                                    m.topics.iter().map(|t| TopicName(str_bytes(t))).collect(),
                                )
                                .with_subscribed_topic_regex(m.regex.as_deref().map(str_bytes))
                                .with_assignment(assignment(&m.assigned))
                                .with_target_assignment(assignment(&m.target));
                            // v1: 1 = a consumer-protocol member.
                            if version >= 1 {
                                member.with_member_type(1)
                            } else {
                                member
                            }
                        })
                        .collect(),
                )
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
