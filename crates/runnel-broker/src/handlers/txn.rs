//! Transaction APIs: AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit,
//! EndTxn (InitProducerId is in `producer_ids`).

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, ProducerId, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use kafka_protocol::ResponseError;

use super::blocking;
use crate::context::ConnectionContext;
use crate::error::BrokerError;
use crate::txn::{PendingOffset, TxnError};
use crate::Broker;

/// The Kafka error a transaction error is reported as.
pub(crate) fn txn_error_code(e: &TxnError) -> i16 {
    match e {
        TxnError::UnknownId | TxnError::WrongProducerId => ResponseError::InvalidProducerIdMapping,
        TxnError::Fenced => ResponseError::InvalidProducerEpoch,
        TxnError::InvalidState(_) => ResponseError::InvalidTxnState,
        TxnError::InvalidTimeout(_) => ResponseError::InvalidTransactionTimeout,
        TxnError::Storage(_) => ResponseError::KafkaStorageError,
    }
    .code()
}

fn code(r: Result<(), TxnError>) -> i16 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            tracing::debug!(%e, "transactional request refused");
            txn_error_code(&e)
        }
    }
}

pub(crate) async fn add_partitions_to_txn(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: AddPartitionsToTxnRequest,
) -> Result<AddPartitionsToTxnResponse, BrokerError> {
    let b = broker.clone();
    blocking(move || {
        let id = req.v3_and_below_transactional_id.0.to_string();
        let mut wanted = Vec::new();
        let mut unknown = Vec::new();
        for t in &req.v3_and_below_topics {
            let topic = b.log().topic(&t.name.0);
            for p in &t.partitions {
                match topic.as_ref().and_then(|x| x.partition(*p)) {
                    Some(_) => wanted.push((t.name.0.to_string(), *p)),
                    None => unknown.push((t.name.0.to_string(), *p)),
                }
            }
        }
        // Like Kafka: one unknown partition fails the whole request, the
        // others get OPERATION_NOT_ATTEMPTED.
        let outcome = if unknown.is_empty() {
            code(b.txn.add(
                &id,
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
                &wanted,
                None,
            ))
        } else {
            ResponseError::UnknownTopicOrPartition.code()
        };
        let results = req
            .v3_and_below_topics
            .iter()
            .map(|t| {
                AddPartitionsToTxnTopicResult::default()
                    .with_name(t.name.clone())
                    .with_results_by_partition(
                        t.partitions
                            .iter()
                            .map(|p| {
                                let c = if unknown.is_empty() {
                                    outcome
                                } else if unknown.contains(&(t.name.0.to_string(), *p)) {
                                    ResponseError::UnknownTopicOrPartition.code()
                                } else {
                                    ResponseError::OperationNotAttempted.code()
                                };
                                AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(*p)
                                    .with_partition_error_code(c)
                            })
                            .collect(),
                    )
            })
            .collect();
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
    })
    .await
}

pub(crate) async fn add_offsets_to_txn(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: AddOffsetsToTxnRequest,
) -> Result<AddOffsetsToTxnResponse, BrokerError> {
    let b = broker.clone();
    blocking(move || {
        let c = code(b.txn.add(
            &req.transactional_id.0,
            req.producer_id.0,
            req.producer_epoch,
            &[],
            Some(&req.group_id.0),
        ));
        AddOffsetsToTxnResponse::default().with_error_code(c)
    })
    .await
}

pub(crate) async fn txn_offset_commit(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: TxnOffsetCommitRequest,
) -> Result<TxnOffsetCommitResponse, BrokerError> {
    let b = broker.clone();
    blocking(move || {
        let group = req.group_id.0.to_string();
        let offsets: Vec<PendingOffset> = req
            .topics
            .iter()
            .flat_map(|t| {
                let group = group.clone();
                t.partitions.iter().map(move |p| PendingOffset {
                    group: group.clone(),
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                })
            })
            .collect();
        let c = code(b.txn.stage_offsets(
            &req.transactional_id.0,
            req.producer_id.0,
            req.producer_epoch,
            offsets,
        ));
        let topics = req
            .topics
            .iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(c)
                            })
                            .collect(),
                    )
            })
            .collect();
        TxnOffsetCommitResponse::default().with_topics(topics)
    })
    .await
}

pub(crate) async fn end_txn(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: EndTxnRequest,
    version: i16,
) -> Result<EndTxnResponse, BrokerError> {
    let b = broker.clone();
    let resp = blocking(move || {
        let bump = version >= 5;
        let r = b.txn.end(
            &req.transactional_id.0,
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
            bump,
            b.txn_deps(),
        );
        let mut resp = EndTxnResponse::default();
        match r {
            Ok(meta) if bump => {
                resp.producer_id = ProducerId(meta.producer_id);
                resp.producer_epoch = meta.epoch;
            }
            Ok(_) => {}
            Err(e) => resp.error_code = code(Err(e)),
        }
        resp
    })
    .await?;
    // Markers moved last stable offsets: wake read_committed fetchers.
    broker.notify_appended();
    Ok(resp)
}
