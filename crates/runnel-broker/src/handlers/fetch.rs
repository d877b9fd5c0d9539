//! Fetch (long poll over whole batches) and ListOffsets.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
};
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::context::ConnectionContext;
use crate::error::log_error_code;
use crate::producers::lock;
use crate::Broker;
use kafka_protocol::messages::fetch_response::AbortedTransaction;
use kafka_protocol::messages::ProducerId;
use runnel_log::batch::BatchIter;

/// Longest a fetch may wait, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub(crate) async fn fetch(
    broker: &Arc<Broker>,
    _ctx: &ConnectionContext,
    req: FetchRequest,
    version: i16,
    stop: &watch::Receiver<bool>,
) -> FetchResponse {
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let min_bytes = req.min_bytes.max(0) as usize;
    let mut appended = broker.appended.subscribe();
    let mut stop = stop.clone();
    loop {
        appended.borrow_and_update();
        let (response, bytes, failed) = fetch_once(broker, &req, version);
        if bytes >= min_bytes.max(1) || failed || Instant::now() >= deadline || *stop.borrow() {
            return response;
        }
        tokio::select! {
            changed = appended.changed() => if changed.is_err() { return response },
            _ = tokio::time::sleep_until(deadline) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
}

/// Reads every requested partition once: (response, bytes returned, any error).
fn fetch_once(broker: &Broker, req: &FetchRequest, version: i16) -> (FetchResponse, usize, bool) {
    // Kafka's min(request max_bytes, broker fetch.max.bytes): every read
    // is bounded; a non-positive max_bytes leaves room for the first batch
    // alone (returned whatever its size, so a consumer always progresses).
    let mut budget = usize::try_from(req.max_bytes)
        .unwrap_or(0)
        .min(broker.config.fetch_max_bytes);
    let mut total = 0usize;
    let mut failed = false;
    let mut topics = Vec::with_capacity(req.topics.len());
    for ft in &req.topics {
        let topic = broker.log().topic(&ft.topic.0);
        let mut partitions = Vec::with_capacity(ft.partitions.len());
        for fp in &ft.partitions {
            let mut pd = PartitionData::default()
                .with_partition_index(fp.partition)
                .with_high_watermark(-1)
                .with_aborted_transactions(Some(Vec::new()))
                .with_records(Some(Bytes::new()));
            match topic.as_ref().and_then(|t| t.partition(fp.partition)) {
                None => {
                    pd.error_code = ResponseError::UnknownTopicOrPartition.code();
                    failed = true;
                }
                Some(partition) => {
                    let limit = (fp.partition_max_bytes.max(0) as usize).min(budget);
                    let min_one = total == 0;
                    if limit == 0 && !min_one {
                        pd.high_watermark = partition.high_watermark();
                        pd.last_stable_offset = pd.high_watermark;
                        pd.log_start_offset = partition.log_start_offset();
                    } else {
                        match partition.read(fp.fetch_offset, limit, min_one) {
                            Ok(mut read) => {
                                pd.high_watermark = read.high_watermark;
                                pd.last_stable_offset = read.high_watermark;
                                pd.log_start_offset = read.log_start_offset;
                                if let Some(state) =
                                    broker.producers.existing(&ft.topic.0, fp.partition)
                                {
                                    let state = lock(&state);
                                    let lso = state.last_stable_offset(read.high_watermark);
                                    pd.last_stable_offset = lso;
                                    if req.isolation_level == READ_COMMITTED {
                                        let (kept, end) = below(&read.bytes, lso);
                                        read.bytes.truncate(kept);
                                        pd.aborted_transactions = Some(
                                            state
                                                .aborted_between(fp.fetch_offset, end)
                                                .into_iter()
                                                .map(|a| {
                                                    AbortedTransaction::default()
                                                        .with_producer_id(ProducerId(a.producer_id))
                                                        .with_first_offset(a.first_offset)
                                                })
                                                .collect(),
                                        );
                                    }
                                }
                                let n = read.bytes.len();
                                total += n;
                                budget = budget.saturating_sub(n);
                                pd.records = Some(Bytes::from(read.bytes));
                            }
                            Err(err) => {
                                pd.error_code = log_error_code(&err).code();
                                pd.high_watermark = partition.high_watermark();
                                pd.last_stable_offset = pd.high_watermark;
                                pd.log_start_offset = partition.log_start_offset();
                                failed = true;
                            }
                        }
                    }
                }
            }
            if version < 5 {
                pd.log_start_offset = -1;
            }
            partitions.push(pd);
        }
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(ft.topic.clone())
                .with_topic_id(ft.topic_id)
                .with_partitions(partitions),
        );
    }
    (
        FetchResponse::default().with_responses(topics),
        total,
        failed,
    )
}

const READ_COMMITTED: i8 = 1;

/// The length of the leading whole batches of `bytes` that start below
/// `limit`, and the offset after the last of them.
fn below(bytes: &[u8], limit: i64) -> (usize, i64) {
    let mut iter = BatchIter::unchecked_crc(bytes);
    let mut end_offset = i64::MIN;
    let mut kept = 0;
    while let Some(Ok(h)) = iter.next() {
        if h.base_offset() >= limit {
            break;
        }
        kept = iter.position();
        end_offset = h.next_offset();
    }
    (kept, end_offset)
}

/// Kafka's special ListOffsets timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub(crate) fn list_offsets(
    broker: &Broker,
    _ctx: &ConnectionContext,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|lt| {
            let topic = broker.log().topic(&lt.name.0);
            let partitions = lt
                .partitions
                .iter()
                .map(|lp| {
                    let mut r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(lp.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(if version >= 4 { 0 } else { -1 });
                    match topic.as_ref().and_then(|t| t.partition(lp.partition_index)) {
                        None => r.error_code = ResponseError::UnknownTopicOrPartition.code(),
                        Some(p) => match lp.timestamp {
                            LATEST if req.isolation_level == READ_COMMITTED => {
                                let hw = p.high_watermark();
                                r.offset = broker
                                    .producers
                                    .existing(&lt.name.0, lp.partition_index)
                                    .map_or(hw, |s| lock(&s).last_stable_offset(hw));
                            }
                            LATEST => r.offset = p.high_watermark(),
                            EARLIEST => r.offset = p.log_start_offset(),
                            MAX_TIMESTAMP => {
                                if let Some((ts, off)) = p.max_timestamp() {
                                    r.timestamp = ts;
                                    r.offset = off;
                                }
                            }
                            ts if ts >= 0 => {
                                if let Some((off, found_ts)) = p.offset_for_timestamp(ts) {
                                    r.offset = off;
                                    r.timestamp = found_ts;
                                }
                            }
                            _ => r.error_code = ResponseError::InvalidRequest.code(),
                        },
                    }
                    r
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(lt.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
