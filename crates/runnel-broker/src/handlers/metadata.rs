//! Metadata and DescribeCluster: one broker that leads every partition.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
    TopicName,
};
use kafka_protocol::ResponseError;
use runnel_log::{LogError, Topic};
use tracing::info;
use uuid::Uuid;

use super::{blocking, str_bytes};
use crate::context::ConnectionContext;
use crate::error::log_error_code;
use crate::Broker;

pub(crate) async fn metadata(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let log = broker.log();
    let cfg = broker.config();
    // (name, found topic or error code)
    let mut wanted: Vec<(String, Result<Arc<Topic>, i16>)> = Vec::new();
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    if all {
        for topic in log.topics() {
            wanted.push((topic.name().to_string(), Ok(topic)));
        }
    } else {
        let auto_create = cfg.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
        for t in req.topics.unwrap_or_default() {
            let name = match &t.name {
                Some(n) => n.0.to_string(),
                None => match log
                    .topics()
                    .into_iter()
                    .find(|x| Uuid::from_bytes(x.id()) == t.topic_id)
                {
                    Some(topic) => {
                        wanted.push((topic.name().to_string(), Ok(topic)));
                        continue;
                    }
                    None => {
                        wanted.push((String::new(), Err(ResponseError::UnknownTopicId.code())));
                        continue;
                    }
                },
            };
            let found = match log.topic(&name) {
                Some(topic) => Ok(topic),
                None if auto_create => {
                    let l = log.clone();
                    let n = name.clone();
                    let partitions = cfg.default_partitions;
                    let created =
                        blocking(move || l.create_topic(&n, partitions, Default::default())).await;
                    match created {
                        Ok(Ok(topic)) => {
                            info!(topic = %name, partitions, "auto-created topic");
                            Ok(topic)
                        }
                        Ok(Err(LogError::TopicExists(_))) => log
                            .topic(&name)
                            .ok_or(ResponseError::UnknownTopicOrPartition.code()),
                        Ok(Err(e)) => Err(log_error_code(&e).code()),
                        Err(_) => Err(ResponseError::UnknownServerError.code()),
                    }
                }
                None => Err(ResponseError::UnknownTopicOrPartition.code()),
            };
            wanted.push((name, found));
        }
    }
    let node = BrokerId(cfg.node_id);
    let topics = wanted
        .into_iter()
        .map(|(name, found)| match found {
            Ok(topic) => MetadataResponseTopic::default()
                .with_name(Some(TopicName(str_bytes(&name))))
                .with_topic_id(if version >= 10 {
                    Uuid::from_bytes(topic.id())
                } else {
                    Uuid::nil()
                })
                .with_is_internal(version >= 1 && crate::is_internal(&name))
                .with_partitions(
                    (0..topic.partition_count())
                        .map(|p| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(node)
                                .with_leader_epoch(if version >= 7 { 0 } else { -1 })
                                .with_replica_nodes(vec![node])
                                .with_isr_nodes(vec![node])
                        })
                        .collect(),
                ),
            Err(code) => MetadataResponseTopic::default()
                .with_name(if name.is_empty() {
                    None
                } else {
                    Some(TopicName(str_bytes(&name)))
                })
                .with_error_code(code),
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(str_bytes(&cfg.advertised_host))
            .with_port(cfg.advertised_port)])
        .with_cluster_id((version >= 2).then(|| str_bytes(&cfg.cluster_id)))
        .with_controller_id(if version >= 1 { node } else { BrokerId(-1) })
        .with_topics(topics)
}

pub(crate) fn describe_cluster(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    _req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let cfg = broker.config();
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&cfg.cluster_id))
        .with_controller_id(BrokerId(cfg.node_id))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(cfg.node_id))
            .with_host(str_bytes(&cfg.advertised_host))
            .with_port(cfg.advertised_port)])
}
