//! Produce: validate and append record batches as received.

use std::sync::Arc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;
use tracing::warn;

use super::{blocking, str_bytes, PendingSync};
use crate::error::{log_error_code, BrokerError};
use crate::producers::{lock, ProducerBatch, SequenceError, Verdict};
use crate::Broker;

/// Appends every partition's batches; `None` when acks=0 (no response).
pub(crate) async fn produce(
    broker: &Arc<Broker>,
    req: ProduceRequest,
    version: i16,
    syncs: &mut Vec<PendingSync>,
) -> Result<Option<ProduceResponse>, BrokerError> {
    let acks = req.acks;
    let response = if !matches!(acks, -1..=1) {
        reject_all(
            &req,
            ResponseError::InvalidRequiredAcks,
            "acks must be -1, 0 or 1",
            version,
        )
    } else {
        let b = broker.clone();
        let (response, needed) = blocking(move || append_all(&b, req, version)).await?;
        broker.notify_appended();
        syncs.extend(needed);
        response
    };
    Ok((acks != 0).then_some(response))
}

/// Appends without fsyncing; returns the syncs the flush policy asks for.
fn append_all(
    broker: &Broker,
    req: ProduceRequest,
    version: i16,
) -> (ProduceResponse, Vec<PendingSync>) {
    let now = crate::now_ms();
    let mut syncs = Vec::new();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for topic_data in req.topic_data {
        let topic = broker.log().topic(&topic_data.name.0);
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for pd in topic_data.partition_data {
            let mut resp = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let partition = topic.as_ref().and_then(|t| t.partition(pd.index));
            match (partition, pd.records) {
                (None, _) => {
                    resp.error_code = ResponseError::UnknownTopicOrPartition.code();
                }
                (Some(_), _) if crate::is_internal(&topic_data.name.0) => {
                    resp.error_code = ResponseError::InvalidTopicException.code();
                    if version >= 8 {
                        resp.error_message =
                            Some(str_bytes("internal topics are written by the broker only"));
                    }
                }
                (Some(_), None) => {
                    resp.error_code = ResponseError::CorruptMessage.code();
                    if version >= 8 {
                        resp.error_message = Some(str_bytes("produce request without records"));
                    }
                }
                (Some(partition), Some(records)) => {
                    let mut data = records.to_vec();
                    let producer = ProducerBatch::of_payload(&data);
                    let state =
                        producer.map(|_| broker.producers.partition(&topic_data.name.0, pd.index));
                    let mut state = state.as_deref().map(lock);
                    let in_txn = match producer.filter(|p| p.transactional) {
                        Some(p) => broker.txn.may_write(
                            p.producer_id,
                            p.epoch,
                            &topic_data.name.0,
                            pd.index,
                        ),
                        None => Ok(()),
                    };
                    if let Err(e) = in_txn {
                        warn!(topic = %topic_data.name.0, partition = pd.index, %e, "transactional batch refused");
                        resp.error_code = super::txn::txn_error_code(&e);
                        partitions.push(resp);
                        continue;
                    }
                    let verdict = match (producer, state.as_deref()) {
                        (Some(p), Some(s)) => s.check(&p),
                        _ => Ok(Verdict::Append),
                    };
                    let appended = match verdict {
                        Ok(Verdict::Append) => partition.append_deferred(&mut data, now),
                        Ok(Verdict::Duplicate { base_offset }) => {
                            resp.base_offset = base_offset;
                            if version >= 5 {
                                resp.log_start_offset = partition.log_start_offset();
                            }
                            partitions.push(resp);
                            continue;
                        }
                        Err(e) => {
                            let (code, why) = match e {
                                SequenceError::StaleEpoch => (
                                    ResponseError::InvalidProducerEpoch,
                                    "producer epoch is older than the partition's".to_string(),
                                ),
                                SequenceError::OutOfOrder { expected, got } => (
                                    ResponseError::OutOfOrderSequenceNumber,
                                    format!("expected sequence {expected}, got {got}"),
                                ),
                            };
                            warn!(topic = %topic_data.name.0, partition = pd.index, %why, "idempotent batch refused");
                            resp.error_code = code.code();
                            if version >= 8 {
                                resp.error_message = Some(str_bytes(&why));
                            }
                            partitions.push(resp);
                            continue;
                        }
                    };
                    if let (Ok((info, _)), Some(p), Some(s)) =
                        (&appended, producer, state.as_deref_mut())
                    {
                        s.record(&p, info.base_offset);
                    }
                    drop(state);
                    match appended {
                        Ok((info, sync)) => {
                            if let Some(offset) = sync {
                                syncs.push(PendingSync {
                                    partition: partition.clone(),
                                    offset,
                                });
                            }
                            resp.base_offset = info.base_offset;
                            resp.log_append_time_ms = info.log_append_time;
                            if version >= 5 {
                                resp.log_start_offset = info.log_start_offset;
                            }
                        }
                        Err(err) => {
                            warn!(topic = %topic_data.name.0, partition = pd.index, %err, "produce rejected");
                            resp.error_code = log_error_code(&err).code();
                            if version >= 8 {
                                resp.error_message = Some(str_bytes(&err.to_string()));
                            }
                        }
                    }
                }
            }
            partitions.push(resp);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partitions),
        );
    }
    (ProduceResponse::default().with_responses(responses), syncs)
}

fn reject_all(
    req: &ProduceRequest,
    code: ResponseError,
    message: &str,
    version: i16,
) -> ProduceResponse {
    let responses = req
        .topic_data
        .iter()
        .map(|t| {
            TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_partition_responses(
                    t.partition_data
                        .iter()
                        .map(|p| {
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_error_code(code.code())
                                .with_error_message((version >= 8).then(|| str_bytes(message)))
                                .with_base_offset(-1)
                        })
                        .collect(),
                )
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}
