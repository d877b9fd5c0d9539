//! The admin APIs that describe what the broker holds, as Kafka's tools
//! ask for it: DescribeLogDirs (`kafka-log-dirs`), ListTransactions,
//! DescribeTransactions and DescribeProducers (`kafka-transactions`), and
//! DescribeTopicPartitions (the Java admin client's `describeTopics`,
//! paginated with a cursor, KIP-966).
//!
//! Runnel has one log directory (the data dir) and one broker that leads
//! every partition, so offset lag is always 0, no replica is a future one,
//! and eligible leader replicas are empty lists, as on a Kafka cluster
//! whose replicas are all in sync.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as DescribedTxn,
};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTxn;
use kafka_protocol::messages::{
    BrokerId, DescribeLogDirsRequest, DescribeLogDirsResponse, DescribeProducersRequest,
    DescribeProducersResponse, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::str_bytes;
use crate::context::ConnectionContext;
use crate::producers::lock;
use crate::txn::TxnState;
use crate::Broker;

/// Kafka's `max.request.partition.size.limit` default: the most partitions
/// one DescribeTopicPartitions response carries.
pub(crate) const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

/// Volume sizes Runnel does not measure (Kafka's `UNKNOWN_VOLUME_BYTES`).
const UNKNOWN_VOLUME_BYTES: i64 = -1;

pub(crate) fn describe_log_dirs(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let log = broker.log();
    // `None`: every partition; otherwise only those asked for that exist.
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|topics| {
        let mut m: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for t in topics {
            m.entry(t.topic.0.to_string())
                .or_default()
                .extend(t.partitions);
        }
        m
    });
    let mut topics = Vec::new();
    let mut all = log.topics();
    all.sort_by(|a, b| a.name().cmp(b.name()));
    for topic in all {
        let indexes: Vec<i32> = match &wanted {
            None => (0..topic.partition_count()).collect(),
            Some(m) => match m.get(topic.name()) {
                Some(ps) => ps.clone(),
                None => continue,
            },
        };
        let partitions: Vec<DescribeLogDirsPartition> = indexes
            .into_iter()
            .filter_map(|i| {
                let p = topic.partition(i)?;
                Some(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(i)
                        .with_partition_size(i64::try_from(p.size_bytes()).unwrap_or(i64::MAX))
                        .with_offset_lag(0)
                        .with_is_future_key(false),
                )
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(str_bytes(topic.name())))
                    .with_partitions(partitions),
            );
        }
    }
    let dir = std::path::absolute(log.dir()).unwrap_or_else(|_| log.dir().to_path_buf());
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(&dir.to_string_lossy()))
        .with_topics(topics)
        .with_total_bytes(UNKNOWN_VOLUME_BYTES)
        .with_usable_bytes(UNKNOWN_VOLUME_BYTES)])
}

pub(crate) fn list_transactions(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut response = ListTransactionsResponse::default();
    // A filter naming only states this coordinator never enters matches
    // nothing (it is still a filter).
    let mut states: Vec<TxnState> = Vec::new();
    for name in &req.state_filters {
        match TxnState::from_name(name) {
            Some(Some(state)) => states.push(state),
            Some(None) => {}
            None => response.unknown_state_filters.push(name.clone()),
        }
    }
    let pattern = match req.transactional_id_pattern.as_deref() {
        None | Some("") => None,
        Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(re) => Some(re),
            Err(_) => {
                return response.with_error_code(ResponseError::InvalidRegularExpression.code())
            }
        },
    };
    let now = crate::now_ms();
    let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    response.transaction_states = broker
        .txn
        .all()
        .into_iter()
        .filter(|(id, meta)| {
            (pids.is_empty() || pids.contains(&meta.producer_id))
                && (req.state_filters.is_empty() || states.contains(&meta.state))
                && (req.duration_filter < 0 || now - meta.start_time_ms() > req.duration_filter)
                && pattern.as_ref().is_none_or(|re| re.is_match(id))
        })
        .map(|(id, meta)| {
            ListedTxn::default()
                .with_transactional_id(TransactionalId(str_bytes(&id)))
                .with_producer_id(ProducerId(meta.producer_id))
                .with_transaction_state(str_bytes(meta.state.name()))
        })
        .collect();
    response
}

pub(crate) fn describe_transactions(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let described = DescribedTxn::default().with_transactional_id(id.clone());
            if id.0.is_empty() {
                return described.with_error_code(ResponseError::InvalidRequest.code());
            }
            let Some(meta) = broker.txn.get(&id.0) else {
                return described.with_error_code(ResponseError::TransactionalIdNotFound.code());
            };
            let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (topic, p) in &meta.partitions {
                topics.entry(topic).or_default().push(*p);
            }
            described
                .with_transaction_state(str_bytes(meta.state.name()))
                .with_transaction_timeout_ms(meta.timeout_ms)
                .with_transaction_start_time_ms(meta.start_time_ms())
                .with_producer_id(ProducerId(meta.producer_id))
                .with_producer_epoch(meta.epoch)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            TopicData::default()
                                .with_topic(TopicName(str_bytes(t)))
                                .with_partitions(ps)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub(crate) fn describe_producers(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let log = broker.log();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = log.topic(&t.name.0);
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&i| {
                    let answer = PartitionResponse::default().with_partition_index(i);
                    if topic.as_ref().and_then(|x| x.partition(i)).is_none() {
                        return answer
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    }
                    let active = broker
                        .producers
                        .existing(&t.name.0, i)
                        .map(|state| lock(&state).active())
                        .unwrap_or_default();
                    answer.with_active_producers(
                        active
                            .into_iter()
                            .map(|p| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(p.producer_id))
                                    .with_producer_epoch(i32::from(p.epoch))
                                    .with_last_sequence(p.last_sequence)
                                    .with_last_timestamp(p.last_timestamp)
                                    .with_coordinator_epoch(p.coordinator_epoch)
                                    .with_current_txn_start_offset(p.current_txn_start_offset)
                            })
                            .collect(),
                    )
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

/// Why a DescribeTopicPartitions request is refused as a whole (Kafka
/// answers these with INVALID_REQUEST on the request).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CursorError {
    #[error("the topic list does not contain the cursor topic {0}")]
    TopicNotListed(String),
    #[error("the cursor partition {0} is negative")]
    NegativePartition(i32),
}

pub(crate) fn describe_topic_partitions(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    match topic_partitions_page(broker, &req) {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(%e, "DescribeTopicPartitions refused");
            // Kafka's error response: every requested topic with the error.
            DescribeTopicPartitionsResponse::default().with_topics(
                req.topics
                    .iter()
                    .map(|t| {
                        DescribeTopicPartitionsResponseTopic::default()
                            .with_name(Some(t.name.clone()))
                            .with_error_code(ResponseError::InvalidRequest.code())
                    })
                    .collect(),
            )
        }
    }
}

/// One page of topic partitions from the request's cursor on.
fn topic_partitions_page(
    broker: &Arc<Broker>,
    req: &DescribeTopicPartitionsRequest,
) -> Result<DescribeTopicPartitionsResponse, CursorError> {
    let log = broker.log();
    let all = req.topics.is_empty();
    let cursor_topic = req
        .cursor
        .as_ref()
        .map(|c| c.topic_name.0.to_string())
        .unwrap_or_default();
    let mut names: Vec<String> = if all {
        log.topics().iter().map(|t| t.name().to_string()).collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.retain(|n| *n >= cursor_topic);
    names.sort();
    names.dedup();
    if let Some(c) = &req.cursor {
        if !all && !names.contains(&cursor_topic) {
            return Err(CursorError::TopicNotListed(cursor_topic));
        }
        if c.partition_index < 0 {
            return Err(CursorError::NegativePartition(c.partition_index));
        }
    }
    let start_of = |name: &str| match &req.cursor {
        Some(c) if name == cursor_topic => c.partition_index,
        _ => 0,
    };
    let node = BrokerId(broker.config().node_id);
    let mut remaining = req
        .response_partition_limit
        .clamp(1, MAX_PARTITIONS_PER_RESPONSE);
    let mut response = DescribeTopicPartitionsResponse::default();
    for name in names {
        if remaining == 0 {
            // The previous topic filled the response exactly.
            response.next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(str_bytes(&name)))
                    .with_partition_index(0),
            );
            break;
        }
        let Some(topic) = log.topic(&name) else {
            if !all {
                let code = if runnel_log::validate_topic_name(&name).is_ok() {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    ResponseError::InvalidTopicException
                };
                response.topics.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_error_code(code.code())
                        .with_name(Some(TopicName(str_bytes(&name))))
                        .with_is_internal(crate::is_internal(&name)),
                );
            }
            continue;
        };
        let count = topic.partition_count();
        let start = start_of(&name);
        let upper = count.min(start.saturating_add(remaining));
        let partitions: Vec<_> = (start..upper)
            .map(|p| {
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(p)
                    .with_leader_id(node)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node])
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
            })
            .collect();
        remaining -= partitions.len() as i32;
        response.topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(str_bytes(&name))))
                .with_topic_id(Uuid::from_bytes(topic.id()))
                .with_is_internal(crate::is_internal(&name))
                .with_partitions(partitions),
        );
        if upper < count {
            response.next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(str_bytes(&name)))
                    .with_partition_index(upper),
            );
            break;
        }
    }
    Ok(response)
}
