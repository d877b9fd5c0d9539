//! The broker's in-process interface: everything a Kafka client does over
//! the wire (create topics, produce, fetch read_committed, commit offsets,
//! run transactions), as plain method calls on the same shared state, for
//! code running inside `runnel serve` (the stream engine, SQL). No sockets
//! and no protocol encoding; the same validation, idempotence and
//! transaction checks as the Produce handler, and waiting fetchers are
//! woken as usual.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use runnel_log::batch::BatchIter;
use runnel_log::LogError;

use crate::context::ConnectionContext;
use crate::group::offsets::Committed;
use crate::producers::lock;
use crate::txn::{PendingOffset, TxnError};
use crate::Broker;

/// Failures of in-process calls.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("unknown topic or partition {0}-{1}")]
    UnknownPartition(String, i32),
    #[error("topic {0} is internal and written by the broker only")]
    Internal(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("transaction: {0}")]
    Txn(#[from] TxnError),
    #[error("produce refused: {0}")]
    Refused(String),
}

/// What a read returned.
#[derive(Debug, Default)]
pub struct LocalRead {
    /// Whole batches, as stored.
    pub bytes: Vec<u8>,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// Aborted transactions overlapping the bytes: (producer id, first
    /// offset, abort marker offset).
    pub aborted: Vec<(i64, i64, i64)>,
}

/// Wakes in-process readers after appends (the TCP path uses a tokio
/// `watch`; this is its blocking twin).
#[derive(Default)]
pub(crate) struct AppendSignal {
    seq: Mutex<u64>,
    cond: Condvar,
}

impl AppendSignal {
    pub(crate) fn bump(&self) {
        let mut s = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        *s = s.wrapping_add(1);
        self.cond.notify_all();
    }
    fn current(&self) -> u64 {
        *self.seq.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn wait_past(&self, seen: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut s = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        while *s == seen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = match self.cond.wait_timeout(s, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        *s
    }
}

/// An in-process client of one broker. Its calls carry a
/// [`ConnectionContext`] of their own (listener `local`, no peer address)
/// through the same checks as requests from the wire.
#[derive(Clone)]
pub struct Local {
    broker: Arc<Broker>,
    ctx: ConnectionContext,
}

impl Broker {
    /// An in-process client of this broker.
    pub fn local(self: &Arc<Self>) -> Local {
        Local {
            broker: self.clone(),
            ctx: ConnectionContext::in_process(),
        }
    }
}

impl Local {
    /// The context this client's calls run with.
    pub fn context(&self) -> &ConnectionContext {
        &self.ctx
    }

    /// Partition count of `topic`, `None` if it does not exist.
    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        self.broker
            .log()
            .topic(topic)
            .map(|t| t.partitions().len() as i32)
    }

    /// Every topic with its partition count.
    pub fn topics(&self) -> Vec<(String, i32)> {
        let mut out: Vec<(String, i32)> = self
            .broker
            .log()
            .topics()
            .iter()
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect();
        out.sort();
        out
    }

    /// Deletes a topic (internal topics refuse, as over the wire).
    pub fn delete_topic(&self, topic: &str) -> Result<(), LocalError> {
        if crate::is_internal(topic) {
            return Err(LocalError::Internal(topic.to_string()));
        }
        self.broker.log().delete_topic(topic)?;
        self.broker.producers.forget_topic(topic);
        Ok(())
    }

    /// Creates a topic unless it exists.
    pub fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<(), LocalError> {
        if self.broker.log().topic(topic).is_some() {
            return Ok(());
        }
        match self.broker.log().create_topic(topic, partitions, configs) {
            Ok(_) | Err(LogError::TopicExists(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Appends one v2 batch (idempotent and transactional batches are
    /// checked as on the wire), fsyncing when the topic's flush policy asks.
    /// Returns the base offset.
    pub fn append(
        &self,
        topic: &str,
        partition: i32,
        mut batch: Vec<u8>,
    ) -> Result<i64, LocalError> {
        if crate::is_internal(topic) {
            return Err(LocalError::Internal(topic.to_string()));
        }
        let now = crate::now_ms();
        let p = self
            .broker
            .log()
            .topic(topic)
            .and_then(|t| t.partition(partition))
            .ok_or_else(|| LocalError::UnknownPartition(topic.to_string(), partition))?;
        let result = crate::handlers::produce::append_one(
            &self.broker,
            &self.ctx,
            topic,
            partition,
            &p,
            &mut batch,
            now,
        );
        self.broker.notify_appended();
        let ok = result.map_err(|e| LocalError::Refused(e.to_string()))?;
        if let Some(offset) = ok.sync {
            p.sync_to(offset, now)?;
        }
        Ok(ok.base_offset)
    }

    /// A counter that moves after every append; pass it to
    /// [`Local::wait_for_append`].
    pub fn append_seq(&self) -> u64 {
        self.broker.local_signal.current()
    }

    /// Blocks until an append happened after `seen` or `timeout` passed.
    pub fn wait_for_append(&self, seen: u64, timeout: Duration) -> u64 {
        self.broker.local_signal.wait_past(seen, timeout)
    }

    /// Reads whole batches from `offset`; `committed_only` stops at the last
    /// stable offset and lists aborted transactions (read_committed).
    pub fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        committed_only: bool,
    ) -> Result<LocalRead, LocalError> {
        let p = self
            .broker
            .log()
            .topic(topic)
            .and_then(|t| t.partition(partition))
            .ok_or_else(|| LocalError::UnknownPartition(topic.to_string(), partition))?;
        let mut read = p.read(offset, max_bytes, true)?;
        let mut out = LocalRead {
            high_watermark: read.high_watermark,
            last_stable_offset: read.high_watermark,
            log_start_offset: read.log_start_offset,
            ..LocalRead::default()
        };
        if let Some(state) = self.broker.producers.existing(topic, partition) {
            let state = lock(&state);
            let lso = state.last_stable_offset(read.high_watermark);
            out.last_stable_offset = lso;
            if committed_only {
                let mut iter = BatchIter::unchecked_crc(&read.bytes);
                let mut kept = 0;
                let mut end = offset;
                while let Some(Ok(h)) = iter.next() {
                    if h.base_offset() >= lso {
                        break;
                    }
                    kept = iter.position();
                    end = h.next_offset();
                }
                read.bytes.truncate(kept);
                out.aborted = state
                    .aborted_between(offset, end)
                    .into_iter()
                    .map(|a| (a.producer_id, a.first_offset, a.last_offset))
                    .collect();
            }
        }
        out.bytes = read.bytes;
        Ok(out)
    }

    /// (log start, high watermark, last stable offset) of a partition.
    pub fn offsets(&self, topic: &str, partition: i32) -> Result<(i64, i64, i64), LocalError> {
        let p = self
            .broker
            .log()
            .topic(topic)
            .and_then(|t| t.partition(partition))
            .ok_or_else(|| LocalError::UnknownPartition(topic.to_string(), partition))?;
        let hw = p.high_watermark();
        let lso = match self.broker.producers.existing(topic, partition) {
            Some(state) => lock(&state).last_stable_offset(hw),
            None => hw,
        };
        Ok((p.log_start_offset(), hw, lso))
    }

    /// The group's committed offset of a partition.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        self.broker
            .groups()
            .offsets()
            .get(group, topic, partition)
            .map(|c| c.offset)
    }

    /// Commits offsets for `group` (outside any transaction).
    pub fn commit(&self, group: &str, offsets: &[(String, i32, i64)]) -> Result<(), LocalError> {
        let now = crate::now_ms();
        let entries = offsets
            .iter()
            .map(|(t, p, o)| {
                (
                    (t.clone(), *p),
                    Some(Committed {
                        offset: *o,
                        leader_epoch: -1,
                        metadata: None,
                        commit_timestamp: now,
                    }),
                )
            })
            .collect();
        self.broker.groups().offsets().write(group, entries, now)?;
        Ok(())
    }

    /// InitProducerId for a transactional id: (producer id, epoch). Fences
    /// any earlier holder of the id and aborts its open transaction.
    pub fn init_transactions(&self, id: &str, timeout_ms: i32) -> Result<(i64, i16), LocalError> {
        let meta = self
            .broker
            .txn
            .init_producer(id, timeout_ms, self.broker.txn_deps())?;
        self.broker.notify_appended();
        Ok((meta.producer_id, meta.epoch))
    }

    /// Adds partitions (and optionally a group's offsets) to the open
    /// transaction, starting one if needed.
    pub fn add_to_transaction(
        &self,
        id: &str,
        producer: (i64, i16),
        partitions: &[(String, i32)],
        group: Option<&str>,
    ) -> Result<(), LocalError> {
        self.broker
            .txn
            .add(id, producer.0, producer.1, partitions, group)?;
        Ok(())
    }

    /// Stages `group`'s offsets in the transaction (TxnOffsetCommit).
    pub fn stage_offsets(
        &self,
        id: &str,
        producer: (i64, i16),
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> Result<(), LocalError> {
        let staged = offsets
            .iter()
            .map(|(t, p, o)| PendingOffset {
                group: group.to_string(),
                topic: t.clone(),
                partition: *p,
                offset: *o,
                leader_epoch: -1,
                metadata: None,
            })
            .collect();
        self.broker
            .txn
            .stage_offsets(id, producer.0, producer.1, staged)?;
        Ok(())
    }

    /// Commits or aborts the open transaction (markers written, offsets
    /// applied on commit). Returns the producer's epoch for the next
    /// transaction.
    pub fn end_transaction(
        &self,
        id: &str,
        producer: (i64, i16),
        commit: bool,
    ) -> Result<i16, LocalError> {
        let r = self.broker.txn.end(
            id,
            producer.0,
            producer.1,
            commit,
            false,
            self.broker.txn_deps(),
        );
        self.broker.notify_appended();
        Ok(r?.epoch)
    }
}
