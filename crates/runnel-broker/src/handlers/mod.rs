//! One module per group of Kafka APIs; [`handle`] routes a decoded request.

mod admin;
mod configs;
mod consumer_groups;
mod describe;
mod fetch;
mod groups;
mod metadata;
pub(crate) mod produce;
mod producer_ids;
pub(crate) mod share_groups;
mod txn;

use std::sync::Arc;

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiVersionsResponse, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;

use crate::context::ConnectionContext;
use crate::error::BrokerError;
use crate::{versions, Broker};

/// An append that the flush policy wants fsynced before its produce
/// response may be sent (see `server::connection`, which groups them).
pub(crate) struct PendingSync {
    pub partition: Arc<runnel_log::Partition>,
    pub offset: i64,
}

/// Runs one request. `Ok(None)` means no response is sent (acks=0 produce).
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    ctx: &ConnectionContext,
    header: &RequestHeader,
    request: RequestKind,
    stop: &watch::Receiver<bool>,
    syncs: &mut Vec<PendingSync>,
) -> Result<Option<ResponseKind>, BrokerError> {
    let v = header.request_api_version;
    let response = match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions_body(0)),
        RequestKind::Metadata(req) => {
            ResponseKind::Metadata(metadata::metadata(broker, ctx, req, v).await)
        }
        RequestKind::Produce(req) => match produce::produce(broker, ctx, req, v, syncs).await? {
            Some(resp) => ResponseKind::Produce(resp),
            None => return Ok(None),
        },
        RequestKind::Fetch(req) => {
            ResponseKind::Fetch(fetch::fetch(broker, ctx, req, v, stop).await)
        }
        RequestKind::ListOffsets(req) => {
            ResponseKind::ListOffsets(fetch::list_offsets(broker, ctx, req, v))
        }
        RequestKind::CreateTopics(req) => {
            ResponseKind::CreateTopics(admin::create_topics(broker, ctx, req, v).await?)
        }
        RequestKind::DeleteTopics(req) => {
            ResponseKind::DeleteTopics(admin::delete_topics(broker, ctx, req, v).await?)
        }
        RequestKind::CreatePartitions(req) => {
            ResponseKind::CreatePartitions(admin::create_partitions(broker, ctx, req).await?)
        }
        RequestKind::DeleteRecords(req) => {
            ResponseKind::DeleteRecords(admin::delete_records(broker, ctx, req).await?)
        }
        RequestKind::InitProducerId(req) => {
            ResponseKind::InitProducerId(producer_ids::init_producer_id(broker, ctx, req).await?)
        }
        RequestKind::FindCoordinator(req) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(broker, ctx, req, v))
        }
        RequestKind::JoinGroup(req) => {
            ResponseKind::JoinGroup(groups::join_group(broker, ctx, header, req, v, stop).await)
        }
        RequestKind::SyncGroup(req) => {
            ResponseKind::SyncGroup(groups::sync_group(broker, ctx, req, v, stop).await)
        }
        RequestKind::Heartbeat(req) => ResponseKind::Heartbeat(groups::heartbeat(broker, ctx, req)),
        RequestKind::LeaveGroup(req) => {
            ResponseKind::LeaveGroup(groups::leave_group(broker, ctx, req, v))
        }
        RequestKind::OffsetCommit(req) => {
            ResponseKind::OffsetCommit(groups::offset_commit(broker, ctx, req, v).await)
        }
        RequestKind::OffsetFetch(req) => {
            ResponseKind::OffsetFetch(groups::offset_fetch(broker, ctx, req, v))
        }
        RequestKind::DescribeGroups(req) => {
            ResponseKind::DescribeGroups(groups::describe_groups(broker, ctx, req, v))
        }
        RequestKind::ListGroups(req) => {
            ResponseKind::ListGroups(groups::list_groups(broker, ctx, req, v))
        }
        RequestKind::DeleteGroups(req) => {
            ResponseKind::DeleteGroups(groups::delete_groups(broker, ctx, req).await)
        }
        RequestKind::OffsetDelete(req) => {
            ResponseKind::OffsetDelete(groups::offset_delete(broker, ctx, req).await)
        }
        RequestKind::AddPartitionsToTxn(req) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions_to_txn(broker, ctx, req).await?)
        }
        RequestKind::AddOffsetsToTxn(req) => {
            ResponseKind::AddOffsetsToTxn(txn::add_offsets_to_txn(broker, ctx, req).await?)
        }
        RequestKind::TxnOffsetCommit(req) => {
            ResponseKind::TxnOffsetCommit(txn::txn_offset_commit(broker, ctx, req).await?)
        }
        RequestKind::EndTxn(req) => ResponseKind::EndTxn(txn::end_txn(broker, ctx, req, v).await?),
        RequestKind::DescribeCluster(req) => {
            ResponseKind::DescribeCluster(metadata::describe_cluster(broker, ctx, req))
        }
        RequestKind::DescribeConfigs(req) => {
            ResponseKind::DescribeConfigs(configs::describe_configs(broker, ctx, req, v))
        }
        RequestKind::IncrementalAlterConfigs(req) => ResponseKind::IncrementalAlterConfigs(
            configs::incremental_alter_configs(broker, ctx, req).await?,
        ),
        RequestKind::AlterConfigs(req) => {
            ResponseKind::AlterConfigs(configs::alter_configs(broker, ctx, req).await?)
        }
        RequestKind::ConsumerGroupHeartbeat(req) => ResponseKind::ConsumerGroupHeartbeat(
            consumer_groups::consumer_group_heartbeat(broker, ctx, header, req).await,
        ),
        RequestKind::ConsumerGroupDescribe(req) => ResponseKind::ConsumerGroupDescribe(
            consumer_groups::consumer_group_describe(broker, ctx, req, v),
        ),
        RequestKind::DescribeLogDirs(req) => {
            ResponseKind::DescribeLogDirs(describe::describe_log_dirs(broker, ctx, req))
        }
        RequestKind::ListTransactions(req) => {
            ResponseKind::ListTransactions(describe::list_transactions(broker, ctx, req))
        }
        RequestKind::DescribeTransactions(req) => {
            ResponseKind::DescribeTransactions(describe::describe_transactions(broker, ctx, req))
        }
        RequestKind::DescribeProducers(req) => {
            ResponseKind::DescribeProducers(describe::describe_producers(broker, ctx, req))
        }
        RequestKind::DescribeTopicPartitions(req) => ResponseKind::DescribeTopicPartitions(
            describe::describe_topic_partitions(broker, ctx, req),
        ),
        RequestKind::ShareGroupHeartbeat(req) => ResponseKind::ShareGroupHeartbeat(
            share_groups::share_group_heartbeat(broker, ctx, header, req).await,
        ),
        RequestKind::ShareGroupDescribe(req) => {
            ResponseKind::ShareGroupDescribe(share_groups::share_group_describe(broker, ctx, req))
        }
        RequestKind::ShareFetch(req) => {
            ResponseKind::ShareFetch(share_groups::share_fetch(broker, ctx, req, stop).await)
        }
        RequestKind::ShareAcknowledge(req) => {
            ResponseKind::ShareAcknowledge(share_groups::share_acknowledge(broker, ctx, req).await)
        }
        RequestKind::DescribeShareGroupOffsets(req) => ResponseKind::DescribeShareGroupOffsets(
            share_groups::describe_share_group_offsets(broker, ctx, req),
        ),
        RequestKind::AlterShareGroupOffsets(req) => ResponseKind::AlterShareGroupOffsets(
            share_groups::alter_share_group_offsets(broker, ctx, req).await,
        ),
        RequestKind::DeleteShareGroupOffsets(req) => ResponseKind::DeleteShareGroupOffsets(
            share_groups::delete_share_group_offsets(broker, ctx, req).await,
        ),
        other => {
            // versions::accepted() let it through, so this is a routing bug.
            return Err(BrokerError::Malformed(format!(
                "no handler for {:?}",
                std::mem::discriminant(&other)
            )));
        }
    };
    Ok(Some(response))
}

/// Answers a request of a version the codec cannot encode the response of
/// (see [`versions::HAND_ENCODED`]): the response body, encoded here.
pub(crate) fn hand_encoded(
    broker: &Arc<Broker>,
    ctx: &ConnectionContext,
    request: RequestKind,
    version: i16,
) -> Result<Vec<u8>, BrokerError> {
    match request {
        RequestKind::DescribeShareGroupOffsets(req) if version == 1 => Ok(
            share_groups::describe_share_group_offsets_v1(broker, ctx, req),
        ),
        _ => Err(BrokerError::Malformed(format!(
            "no hand-encoded response for v{version}"
        ))),
    }
}

/// The ApiVersions body listing every supported API, and (v3+) the
/// feature levels of what works: [`versions::FEATURES`], finalized at
/// their highest level.
pub(crate) fn api_versions_body(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            versions::SUPPORTED
                .iter()
                .map(|s| {
                    ApiVersion::default()
                        .with_api_key(s.key as i16)
                        .with_min_version(s.min)
                        .with_max_version(s.max)
                })
                .collect(),
        )
        .with_supported_features(
            versions::FEATURES
                .iter()
                .map(|&(name, min, max)| {
                    SupportedFeatureKey::default()
                        .with_name(str_bytes(name))
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
        // One node whose features never change level: one epoch.
        .with_finalized_features_epoch(0)
        .with_finalized_features(
            versions::FEATURES
                .iter()
                .map(|&(name, _, max)| {
                    FinalizedFeatureKey::default()
                        .with_name(str_bytes(name))
                        .with_min_version_level(max)
                        .with_max_version_level(max)
                })
                .collect(),
        )
}

/// Runs blocking log work (file IO, fsync) off the async workers.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, BrokerError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BrokerError::Io(std::io::Error::other(e)))
}

pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;

    fn round_trip(version: i16) -> ApiVersionsResponse {
        let mut buf = BytesMut::new();
        api_versions_body(0)
            .encode(&mut buf, version)
            .expect("encode");
        ApiVersionsResponse::decode(&mut buf.freeze(), version).expect("decode")
    }

    /// group.version and share.version, finalized at 1, from v3 (tagged
    /// fields) on; nothing else (Kafka's clients take what is advertised
    /// as working: a transaction.version would switch the Java producer to
    /// KIP-890's second part).
    #[test]
    fn api_versions_advertise_group_and_share_version_from_v3() {
        let r = round_trip(3);
        let supported: Vec<(String, i16, i16)> = r
            .supported_features
            .iter()
            .map(|f| (f.name.to_string(), f.min_version, f.max_version))
            .collect();
        assert_eq!(
            supported,
            [
                ("group.version".into(), 0, 1),
                ("share.version".into(), 0, 1)
            ]
        );
        let finalized: Vec<(String, i16, i16)> = r
            .finalized_features
            .iter()
            .map(|f| (f.name.to_string(), f.min_version_level, f.max_version_level))
            .collect();
        assert_eq!(
            finalized,
            [
                ("group.version".into(), 1, 1),
                ("share.version".into(), 1, 1)
            ]
        );
        assert_eq!(r.finalized_features_epoch, 0);
        let old = round_trip(2);
        assert!(old.supported_features.is_empty() && old.finalized_features.is_empty());
        assert_eq!(old.api_keys.len(), versions::SUPPORTED.len());
    }
}
