//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions,
//! DeleteRecords.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    TopicName,
};
use kafka_protocol::ResponseError;
use runnel_log::LogError;
use tracing::info;
use uuid::Uuid;

use super::{blocking, str_bytes};
use crate::context::ConnectionContext;
use crate::error::{log_error_code, BrokerError};
use crate::Broker;

fn fail(code: ResponseError, message: String) -> (i16, Option<String>) {
    (code.code(), Some(message))
}

fn log_fail(err: &LogError) -> (i16, Option<String>) {
    (log_error_code(err).code(), Some(err.to_string()))
}

pub(crate) async fn create_topics(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: CreateTopicsRequest,
    version: i16,
) -> Result<CreateTopicsResponse, BrokerError> {
    let b = broker.clone();
    blocking(move || {
        let log = b.log();
        let mut seen = HashSet::new();
        let duplicated: HashSet<String> = req
            .topics
            .iter()
            .filter(|t| !seen.insert(t.name.0.to_string()))
            .map(|t| t.name.0.to_string())
            .collect();
        let mut results = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let name = t.name.0.to_string();
            let mut result = CreatableTopicResult::default().with_name(t.name.clone());
            let configs: BTreeMap<String, String> = t
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            let partitions = if !t.assignments.is_empty() {
                t.assignments.len() as i32
            } else if t.num_partitions == -1 {
                b.config().default_partitions
            } else {
                t.num_partitions
            };
            let node = b.config().node_id;
            let outcome: Result<(), (i16, Option<String>)> = if duplicated.contains(&name) {
                Err(fail(
                    ResponseError::InvalidRequest,
                    format!("topic {name} appears twice in the request"),
                ))
            } else if t.replication_factor != -1 && t.replication_factor != 1 {
                Err(fail(
                    ResponseError::InvalidReplicationFactor,
                    format!(
                        "replication factor {} is larger than the 1 available broker",
                        t.replication_factor
                    ),
                ))
            } else if t
                .assignments
                .iter()
                .any(|a| a.broker_ids.iter().any(|id| id.0 != node))
            {
                Err(fail(
                    ResponseError::InvalidReplicaAssignment,
                    format!("only broker {node} exists"),
                ))
            } else if req.validate_only {
                match (log.topic(&name), log.validate_configs(&configs)) {
                    (Some(_), _) => Err(log_fail(&LogError::TopicExists(name.clone()))),
                    (None, Err(e)) => Err(log_fail(&e)),
                    (None, Ok(_)) if partitions < 1 => {
                        Err(log_fail(&LogError::InvalidPartitions(partitions as i64)))
                    }
                    (None, Ok(_)) => Ok(()),
                }
            } else {
                match log.create_topic(&name, partitions, configs) {
                    Ok(topic) => {
                        info!(topic = %name, partitions, "created topic");
                        if version >= 7 {
                            result.topic_id = Uuid::from_bytes(topic.id());
                        }
                        Ok(())
                    }
                    Err(e) => Err(log_fail(&e)),
                }
            };
            match outcome {
                Ok(()) if version >= 5 => {
                    result.num_partitions = partitions;
                    result.replication_factor = 1;
                    {
                        if let Some(topic) = log.topic(&name) {
                            result.configs = Some(
                                topic
                                    .describe_configs()
                                    .into_iter()
                                    .map(|e| {
                                        CreatableTopicConfigs::default()
                                            .with_name(str_bytes(&e.name))
                                            .with_value(Some(str_bytes(&e.value)))
                                            .with_config_source(if e.is_topic_override {
                                                1
                                            } else {
                                                5
                                            })
                                    })
                                    .collect(),
                            );
                        }
                    }
                }
                Ok(()) => {}
                Err((code, message)) => {
                    result.error_code = code;
                    result.error_message = message.map(|m| str_bytes(&m));
                }
            }
            results.push(result);
        }
        CreateTopicsResponse::default().with_topics(results)
    })
    .await
}

pub(crate) async fn delete_topics(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: DeleteTopicsRequest,
    version: i16,
) -> Result<DeleteTopicsResponse, BrokerError> {
    let b = broker.clone();
    blocking(move || {
        let log = b.log();
        // v0-5 name topics in topic_names, v6 in topics (by name or id).
        let mut targets: Vec<(Option<String>, Uuid)> = req
            .topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect();
        targets.extend(
            req.topics
                .iter()
                .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
        );
        let responses = targets
            .into_iter()
            .map(|(name, id)| {
                let name = name.or_else(|| {
                    log.topics()
                        .into_iter()
                        .find(|t| Uuid::from_bytes(t.id()) == id)
                        .map(|t| t.name().to_string())
                });
                let mut r = DeletableTopicResult::default().with_topic_id(id);
                match name {
                    None => r.error_code = ResponseError::UnknownTopicId.code(),
                    Some(name) => {
                        r.name = Some(TopicName(str_bytes(&name)));
                        if let Some(topic) = log.topic(&name).filter(|_| version >= 6) {
                            r.topic_id = Uuid::from_bytes(topic.id());
                        }
                        let deleted = if crate::is_internal(&name) {
                            Err(LogError::InvalidTopicName(
                                name.clone(),
                                "internal topics cannot be deleted".into(),
                            ))
                        } else {
                            log.delete_topic(&name)
                        };
                        match deleted {
                            Ok(()) => {
                                b.producers.forget_topic(&name);
                                info!(topic = %name, "deleted topic")
                            }
                            Err(e) => {
                                r.error_code = log_error_code(&e).code();
                                if version >= 5 {
                                    r.error_message = Some(str_bytes(&e.to_string()));
                                }
                            }
                        }
                    }
                }
                r
            })
            .collect();
        DeleteTopicsResponse::default().with_responses(responses)
    })
    .await
}

pub(crate) async fn create_partitions(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: CreatePartitionsRequest,
) -> Result<CreatePartitionsResponse, BrokerError> {
    let b = broker.clone();
    blocking(move || {
        let results = req
            .topics
            .into_iter()
            .map(|t| {
                let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
                let outcome = match b.log().topic(&t.name.0) {
                    None => Err(log_fail(&LogError::UnknownTopic(t.name.0.to_string()))),
                    Some(topic) if t.count <= topic.partition_count() => Err(fail(
                        ResponseError::InvalidPartitions,
                        format!(
                            "topic {} has {} partitions; the new count {} must be larger",
                            t.name.0,
                            topic.partition_count(),
                            t.count
                        ),
                    )),
                    Some(_) if req.validate_only => Ok(()),
                    Some(topic) => topic.add_partitions(t.count).map_err(|e| log_fail(&e)),
                };
                if let Err((code, message)) = outcome {
                    r.error_code = code;
                    r.error_message = message.map(|m| str_bytes(&m));
                }
                r
            })
            .collect();
        CreatePartitionsResponse::default().with_results(results)
    })
    .await
}

pub(crate) async fn delete_records(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: DeleteRecordsRequest,
) -> Result<DeleteRecordsResponse, BrokerError> {
    let b = broker.clone();
    blocking(move || {
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                let topic = b.log().topic(&t.name.0);
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut r = DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index)
                            .with_low_watermark(-1);
                        match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                            None => r.error_code = ResponseError::UnknownTopicOrPartition.code(),
                            Some(_) if crate::is_internal(&t.name.0) => {
                                r.error_code = ResponseError::InvalidTopicException.code()
                            }
                            Some(partition) => match partition.delete_records_before(p.offset) {
                                Ok(low) => r.low_watermark = low,
                                Err(e) => r.error_code = log_error_code(&e).code(),
                            },
                        }
                        r
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        DeleteRecordsResponse::default().with_topics(topics)
    })
    .await
}
