//! Produce: validate and append record batches as received (records are
//! decoded only on compacted topics, to refuse keyless ones).

use std::sync::Arc;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;
use runnel_log::codec;
use tracing::warn;

use super::{blocking, str_bytes, PendingSync};
use crate::context::ConnectionContext;
use crate::error::{log_error_code, BrokerError};
use crate::producers::{lock, ProducerBatch, SequenceError, Verdict};
use crate::Broker;

/// Appends every partition's batches; `None` when acks=0 (no response).
pub(crate) async fn produce(
    broker: &Arc<Broker>,
    ctx: &ConnectionContext,
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
        let ctx = ctx.clone();
        let (response, needed) = blocking(move || append_all(&b, &ctx, req, version)).await?;
        broker.notify_appended();
        syncs.extend(needed);
        response
    };
    Ok((acks != 0).then_some(response))
}

/// Appends without fsyncing; returns the syncs the flush policy asks for.
fn append_all(
    broker: &Broker,
    ctx: &ConnectionContext,
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
                    match append_one(
                        broker,
                        ctx,
                        &topic_data.name.0,
                        pd.index,
                        &partition,
                        &mut data,
                        now,
                    ) {
                        Ok(ok) => {
                            if let Some(offset) = ok.sync {
                                syncs.push(PendingSync {
                                    partition: partition.clone(),
                                    offset,
                                });
                            }
                            resp.base_offset = ok.base_offset;
                            resp.log_append_time_ms = ok.log_append_time;
                            if version >= 5 {
                                resp.log_start_offset = ok.log_start_offset;
                            }
                        }
                        Err(f) => {
                            resp.error_code = f.code;
                            if version >= 8 {
                                resp.error_message = f.message.as_deref().map(str_bytes);
                                resp.record_errors = f
                                    .record_errors
                                    .iter()
                                    .map(|(i, why)| {
                                        BatchIndexAndErrorMessage::default()
                                            .with_batch_index(*i)
                                            .with_batch_index_error_message(Some(str_bytes(why)))
                                    })
                                    .collect();
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

/// A successful append of one partition's batches.
pub(crate) struct AppendOk {
    pub base_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// Offset to fsync up to before acknowledging, per the flush policy.
    pub sync: Option<i64>,
}

/// A refused append: the partition's error code and message.
#[derive(Debug)]
pub(crate) struct AppendFailure {
    /// Kafka error code.
    pub code: i16,
    pub message: Option<String>,
    /// The records at fault, by index in the batch, with why (KIP-467's
    /// record errors; empty when the whole batch is at fault).
    pub record_errors: Vec<(i32, String)>,
}

impl AppendFailure {
    pub(crate) fn new(code: i16, message: impl Into<String>) -> Self {
        AppendFailure {
            code,
            message: Some(message.into()),
            record_errors: Vec::new(),
        }
    }
}

impl std::fmt::Display for AppendFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.message {
            Some(m) => write!(f, "error {}: {m}", self.code),
            None => write!(f, "error {}", self.code),
        }
    }
}

/// Appends one partition's payload with the idempotence and transaction
/// checks: the Produce API's work for one partition, shared with the
/// in-process interface (`crate::local`). Does not notify fetchers.
pub(crate) fn append_one(
    broker: &Broker,
    _ctx: &ConnectionContext,
    topic: &str,
    index: i32,
    partition: &Arc<runnel_log::Partition>,
    data: &mut [u8],
    now: i64,
) -> Result<AppendOk, AppendFailure> {
    // Compacted topics need a key on every record (Kafka: INVALID_RECORD).
    // This decodes (and may decompress) the batches, which no other topic
    // pays for; nothing is appended when a record has no key.
    let cfg = partition.config();
    if cfg.is_compacted() {
        let limit = codec::decompression_limit(cfg.max_message_bytes);
        let keyless = codec::keyless_records(data, limit).map_err(|err| {
            warn!(topic = %topic, partition = index, %err, "produce rejected");
            AppendFailure::new(log_error_code(&err).code(), err.to_string())
        })?;
        if !keyless.is_empty() {
            // KIP-467: the batch fails as a whole, and the response names
            // the records at fault (their index in the batch).
            let why = format!("{} in topic partition {topic}-{index}", codec::KEYLESS);
            warn!(topic = %topic, partition = index, records = ?keyless, "produce rejected: keyless records on a compacted topic");
            return Err(AppendFailure {
                code: ResponseError::InvalidRecord.code(),
                message: Some(format!(
                    "{} of the batch's records were rejected ({why}): records {keyless:?}",
                    keyless.len()
                )),
                record_errors: keyless.into_iter().map(|i| (i, why.clone())).collect(),
            });
        }
    }
    check_timestamps(&cfg, topic, index, data, now)?;
    crate::schema_check::check(
        broker.schemas.get().map(|v| v.as_ref()),
        topic,
        index,
        &cfg,
        data,
    )?;
    let producer = ProducerBatch::of_payload(data);
    let state = producer.map(|_| broker.producers.partition(topic, index));
    let mut state = state.as_deref().map(lock);
    if let Some(p) = producer.filter(|p| p.transactional) {
        if let Err(e) = broker.txn.may_write(p.producer_id, p.epoch, topic, index) {
            warn!(topic = %topic, partition = index, %e, "transactional batch refused");
            return Err(AppendFailure::new(
                super::txn::txn_error_code(&e),
                e.to_string(),
            ));
        }
    }
    let verdict = match (producer, state.as_deref()) {
        (Some(p), Some(s)) => s.check(&p),
        _ => Ok(Verdict::Append),
    };
    let appended = match verdict {
        Ok(Verdict::Append) => partition.append_deferred(data, now),
        Ok(Verdict::Duplicate { base_offset }) => {
            return Ok(AppendOk {
                base_offset,
                log_append_time: -1,
                log_start_offset: partition.log_start_offset(),
                sync: None,
            });
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
            warn!(topic = %topic, partition = index, %why, "idempotent batch refused");
            return Err(AppendFailure::new(code.code(), why));
        }
    };
    if let (Ok((info, _)), Some(p), Some(s)) = (&appended, producer, state.as_deref_mut()) {
        s.record(&p, info.base_offset);
    }
    drop(state);
    match appended {
        Ok((info, sync)) => Ok(AppendOk {
            base_offset: info.base_offset,
            log_append_time: info.log_append_time,
            log_start_offset: info.log_start_offset,
            sync,
        }),
        Err(err) => {
            warn!(topic = %topic, partition = index, %err, "produce rejected");
            Err(AppendFailure::new(
                log_error_code(&err).code(),
                err.to_string(),
            ))
        }
    }
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

/// Kafka's timestamp bounds on CreateTime topics
/// (`message.timestamp.before.max.ms`, `message.timestamp.after.max.ms`,
/// 1 hour ahead by default since Kafka 4.0): a batch with a record outside
/// `[now - before, now + after]` is refused with `INVALID_TIMESTAMP`, the
/// records at fault named (KIP-467). Records are looked at only when the
/// batch's max timestamp is beyond the upper bound or a lower bound is set.
fn check_timestamps(
    cfg: &runnel_log::LogConfig,
    topic: &str,
    index: i32,
    payload: &[u8],
    now: i64,
) -> Result<(), AppendFailure> {
    if cfg.message_timestamp_type == runnel_log::TimestampType::LogAppendTime {
        return Ok(());
    }
    let lo = now.saturating_sub(cfg.timestamp_before_max_ms);
    let hi = now.saturating_add(cfg.timestamp_after_max_ms);
    let lower_bound = cfg.timestamp_before_max_ms != i64::MAX;
    let suspect = runnel_log::batch::BatchIter::new(payload, usize::MAX)
        .filter_map(Result::ok)
        .any(|h| !h.is_control() && (lower_bound || h.max_timestamp() > hi));
    if !suspect {
        return Ok(());
    }
    let limit = codec::decompression_limit(cfg.max_message_bytes);
    let mut faults: Vec<(i32, String)> = Vec::new();
    codec::for_each_record(payload, limit, |r| {
        // -1: no timestamp (Kafka checks only real ones).
        if r.timestamp != -1 && (r.timestamp < lo || r.timestamp > hi) {
            faults.push((
                r.index,
                format!(
                    "Timestamp {} of message with offset {} is out of range. The timestamp should be within [{lo}, {hi}]",
                    r.timestamp, r.offset
                ),
            ));
        }
    })
    .map_err(|e| AppendFailure::new(ResponseError::CorruptMessage.code(), e.to_string()))?;
    if faults.is_empty() {
        return Ok(());
    }
    warn!(topic = %topic, partition = index, records = faults.len(), "produce rejected: timestamps out of range");
    Err(AppendFailure {
        code: ResponseError::InvalidTimestamp.code(),
        message: Some(faults[0].1.clone()),
        record_errors: faults,
    })
}
