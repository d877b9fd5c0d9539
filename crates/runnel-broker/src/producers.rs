//! Idempotent producers: producer id allocation and per-partition sequence
//! tracking, so a retried batch is acknowledged without being written twice.
//!
//! Rules (Kafka's): per (partition, producer id) the broker remembers the
//! current epoch and the last [`CACHED_BATCHES`] batches' sequence ranges
//! and offsets. A batch whose sequence range equals a cached one is a
//! duplicate: it is acknowledged with the original offset and not appended.
//! Otherwise its first sequence must follow the last one (wrapping at
//! `i32::MAX`), or the producer gets OUT_OF_ORDER_SEQUENCE_NUMBER. An older
//! epoch is fenced (INVALID_PRODUCER_EPOCH); a newer epoch must start at
//! sequence 0. A producer the partition has no state for (new, or its state
//! aged out) may start at any sequence.
//!
//! Durability: producer ids come from blocks reserved in runnel-log's
//! `producer-ids` file so ids are never reused after a restart. Sequence
//! and transaction state is snapshotted to `producer-state.json` (both
//! stored by [`runnel_log::producer_state::ProducerFiles`], formats in
//! runnel-log's on-disk format spec) on every log maintenance tick and at
//! shutdown, with the log end each partition's state covers. On start each
//! partition resumes from its snapshot and replays the batch headers after
//! that offset; a partition without a usable snapshot (none, or one ahead
//! of a log that lost its unflushed tail) replays the newest
//! [`REPLAY_RECORDS`] records instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use runnel_log::batch::{BatchHeader, BatchIter};
use runnel_log::control;
use runnel_log::producer_state::{
    CachedBatch, PartitionProducerState, ProducerFiles, ProducerState,
};
use runnel_log::{Log, LogError};
use tracing::info;

/// Batches remembered per producer and partition (Kafka's in-flight limit).
pub const CACHED_BATCHES: usize = 5;
/// Records per partition read back on start to rebuild sequence state.
pub const REPLAY_RECORDS: i64 = 200_000;
/// Most bytes a (compressed) transaction marker may inflate to when read.
const MARKER_READ_LIMIT: usize = 1 << 20;
/// Producer ids reserved per write of the `producer-ids` file.
const ID_BLOCK: i64 = 1000;

/// Why an idempotent batch is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceError {
    /// The producer's epoch is older than the partition has seen.
    StaleEpoch,
    /// The first sequence does not follow the last one.
    OutOfOrder { expected: i32, got: i32 },
}

/// The verdict on an idempotent batch before it is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not idempotent, or in sequence: append it.
    Append,
    /// Already written at this base offset: acknowledge, don't append.
    Duplicate { base_offset: i64 },
}

/// Sequence and transaction state of one partition. Hold the guard across
/// check, append and record so two requests cannot interleave.
#[derive(Debug, Default)]
pub struct PartitionProducers {
    state: ProducerState,
}

/// The offsets of an aborted transaction on one partition.
pub use runnel_log::producer_state::AbortedTxn;

/// The producer fields of a payload's batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    pub transactional: bool,
    /// The highest max timestamp of the batches.
    pub max_timestamp: i64,
}

/// One producer as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last sequence written (-1 when no batch is remembered).
    pub last_sequence: i32,
    /// The max timestamp of its last batch or marker (-1 unknown).
    pub last_timestamp: i64,
    /// The coordinator epoch of its last marker (-1 none).
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction (-1 none).
    pub current_txn_start_offset: i64,
}

impl ProducerBatch {
    /// Reads producer id, epoch and the sequence range of a produce payload;
    /// `None` when the batches carry no producer id.
    pub fn of_payload(payload: &[u8]) -> Option<ProducerBatch> {
        let mut iter = BatchIter::unchecked_crc(payload);
        let first = iter.next()?.ok()?;
        if first.producer_id() < 0 {
            return None;
        }
        let mut last = first;
        let mut max_timestamp = first.max_timestamp();
        for h in iter.flatten() {
            max_timestamp = max_timestamp.max(h.max_timestamp());
            last = h;
        }
        Some(ProducerBatch {
            producer_id: first.producer_id(),
            epoch: first.producer_epoch(),
            first_seq: first.base_sequence(),
            last_seq: last_sequence(&last),
            transactional: first.is_transactional(),
            max_timestamp,
        })
    }
}

fn last_sequence(h: &BatchHeader<'_>) -> i32 {
    let seq = h.base_sequence() as i64 + h.last_offset_delta() as i64;
    if seq > i32::MAX as i64 {
        (seq - i32::MAX as i64 - 1) as i32
    } else {
        seq as i32
    }
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl PartitionProducers {
    /// Decides what to do with a batch of producer `b`.
    pub fn check(&self, b: &ProducerBatch) -> Result<Verdict, SequenceError> {
        let Some(entry) = self.state.producers.get(&b.producer_id) else {
            return Ok(Verdict::Append);
        };
        if b.epoch < entry.epoch {
            return Err(SequenceError::StaleEpoch);
        }
        if b.epoch > entry.epoch {
            return if b.first_seq == 0 {
                Ok(Verdict::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    expected: 0,
                    got: b.first_seq,
                })
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|c| c.first_seq == b.first_seq && c.last_seq == b.last_seq)
        {
            return Ok(Verdict::Duplicate {
                base_offset: dup.base_offset,
            });
        }
        match entry.batches.back() {
            Some(last) if b.first_seq != next_seq(last.last_seq) => {
                Err(SequenceError::OutOfOrder {
                    expected: next_seq(last.last_seq),
                    got: b.first_seq,
                })
            }
            _ => Ok(Verdict::Append),
        }
    }

    /// The last stable offset: the first offset of the oldest ongoing
    /// transaction, or the high watermark when none is open.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.state
            .ongoing
            .values()
            .copied()
            .min()
            .unwrap_or(high_watermark)
            .min(high_watermark)
    }

    /// Aborted transactions with records in `[from, to)`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.state
            .aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset < to)
            .copied()
            .collect()
    }

    /// Drops aborted-transaction entries wholly below the log start.
    pub fn forget_before(&mut self, log_start: i64) {
        self.state.aborted.retain(|a| a.last_offset >= log_start);
    }

    /// Every producer this partition remembers, by producer id.
    pub fn active(&self) -> Vec<ActiveProducer> {
        let mut out: Vec<ActiveProducer> = self
            .state
            .producers
            .iter()
            .map(|(pid, e)| ActiveProducer {
                producer_id: *pid,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: self.state.ongoing.get(pid).copied().unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Closes a producer's transaction at its marker's offset (a marker
    /// with coordinator epoch 0 and timestamp `timestamp`, as
    /// `control::marker_batch` writes them).
    pub fn end_transaction(
        &mut self,
        producer_id: i64,
        marker_offset: i64,
        commit: bool,
        timestamp: i64,
    ) {
        if let Some(entry) = self.state.producers.get_mut(&producer_id) {
            entry.last_timestamp = timestamp;
            entry.coordinator_epoch = 0;
        }
        if let Some(first_offset) = self.state.ongoing.remove(&producer_id) {
            if !commit {
                self.state.aborted.push(AbortedTxn {
                    producer_id,
                    first_offset,
                    last_offset: marker_offset,
                });
            }
        }
    }

    /// Records an appended batch.
    pub fn record(&mut self, b: &ProducerBatch, base_offset: i64) {
        if b.transactional {
            self.state
                .ongoing
                .entry(b.producer_id)
                .or_insert(base_offset);
        }
        let entry = self.state.producers.entry(b.producer_id).or_default();
        if b.epoch != entry.epoch {
            entry.epoch = b.epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = b.max_timestamp;
        entry.batches.push_back(CachedBatch {
            first_seq: b.first_seq,
            last_seq: b.last_seq,
            base_offset,
        });
        while entry.batches.len() > CACHED_BATCHES {
            entry.batches.pop_front();
        }
    }
}

/// Sequence state by (topic, partition).
/// Keyed by topic first so lookups on the fetch path borrow the name
/// instead of allocating a key.
type PartitionMap = HashMap<String, HashMap<i32, Arc<Mutex<PartitionProducers>>>>;

/// Producer ids and the sequence state of every partition.
pub struct Producers {
    files: ProducerFiles,
    ids: Mutex<IdBlock>,
    partitions: Mutex<PartitionMap>,
}

#[derive(Debug)]
struct IdBlock {
    next: i64,
    reserved_until: i64,
}

impl Producers {
    /// Loads the id reservation and the state snapshot kept beside `log`
    /// and rebuilds sequence state from the newest batches of every
    /// partition.
    pub fn open(log: &Log) -> Result<Producers, LogError> {
        let files = ProducerFiles::of(log);
        let start = files.reserved_ids()?;
        let mut snapshot: HashMap<(String, i32), (i64, ProducerState)> = files
            .load_state()
            .into_iter()
            .map(|p| ((p.topic, p.partition), (p.offset, p.state)))
            .collect();
        let producers = Producers {
            files,
            ids: Mutex::new(IdBlock {
                next: start,
                reserved_until: start,
            }),
            partitions: Mutex::new(HashMap::new()),
        };
        let mut max_seen = start - 1;
        let mut rebuilt = 0usize;
        for topic in log.topics() {
            for (index, partition) in topic.partitions().into_iter().enumerate() {
                let state = producers.partition(topic.name(), index as i32);
                let mut state = lock(&state);
                let end = partition.high_watermark();
                let log_start = partition.log_start_offset();
                let mut offset = match snapshot.remove(&(topic.name().to_string(), index as i32)) {
                    Some((at, saved)) if at <= end => {
                        state.state = saved;
                        for pid in state.state.producers.keys() {
                            max_seen = max_seen.max(*pid);
                        }
                        at.max(log_start)
                    }
                    _ => (end - REPLAY_RECORDS).max(log_start),
                };
                while offset < end {
                    let read = match partition.read(offset, 1 << 20, true) {
                        Ok(r) if !r.bytes.is_empty() => r,
                        _ => break,
                    };
                    for h in BatchIter::unchecked_crc(&read.bytes).flatten() {
                        offset = h.next_offset();
                        if h.producer_id() >= 0 && h.is_control() {
                            if let Some(marker) = control::marker(&h, MARKER_READ_LIMIT) {
                                state.end_transaction(
                                    h.producer_id(),
                                    h.base_offset(),
                                    marker.is_commit(),
                                    h.max_timestamp(),
                                );
                            }
                        } else if h.producer_id() >= 0 {
                            max_seen = max_seen.max(h.producer_id());
                            let b = ProducerBatch {
                                producer_id: h.producer_id(),
                                epoch: h.producer_epoch(),
                                first_seq: h.base_sequence(),
                                last_seq: last_sequence(&h),
                                transactional: h.is_transactional(),
                                max_timestamp: h.max_timestamp(),
                            };
                            state.record(&b, h.base_offset());
                            rebuilt += 1;
                        }
                    }
                }
            }
        }
        if max_seen >= start {
            let mut ids = lock(&producers.ids);
            ids.next = max_seen + 1;
            ids.reserved_until = ids.next;
        }
        if rebuilt > 0 {
            info!(
                batches = rebuilt,
                "rebuilt idempotent producer state from the log"
            );
        }
        Ok(producers)
    }

    /// The sequence state of one partition.
    pub fn partition(&self, topic: &str, partition: i32) -> Arc<Mutex<PartitionProducers>> {
        let mut map = lock(&self.partitions);
        let topic_map = match map.get_mut(topic) {
            Some(m) => m,
            None => map.entry(topic.to_string()).or_default(),
        };
        topic_map.entry(partition).or_default().clone()
    }

    /// Snapshots every partition's state, with the log end it covers,
    /// beside `log`. Blocking.
    pub fn snapshot(&self, log: &Log) -> Result<(), LogError> {
        let states: Vec<_> = lock(&self.partitions)
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |(p, v)| ((t.clone(), *p), v.clone())))
            .collect();
        let mut entries = Vec::with_capacity(states.len());
        for ((topic, index), state) in states {
            let Some(partition) = log.topic(&topic).and_then(|t| t.partition(index)) else {
                continue;
            };
            let mut state = lock(&state);
            state.forget_before(partition.log_start_offset());
            if state.state.is_empty() {
                continue;
            }
            // Appends of tracked batches happen under this lock, so the
            // log end read here is exactly what the state covers.
            let offset = partition.high_watermark();
            entries.push(PartitionProducerState {
                topic,
                partition: index,
                offset,
                state: state.state.clone(),
            });
        }
        self.files.save_state(entries)
    }

    /// The state of one partition, if any producer wrote to it.
    pub fn existing(&self, topic: &str, partition: i32) -> Option<Arc<Mutex<PartitionProducers>>> {
        lock(&self.partitions)
            .get(topic)
            .and_then(|m| m.get(&partition))
            .cloned()
    }

    /// Forgets a deleted topic's state.
    pub fn forget_topic(&self, topic: &str) {
        lock(&self.partitions).remove(topic);
    }

    /// A new producer id, never handed out before (also across restarts).
    pub fn allocate_id(&self) -> Result<i64, LogError> {
        let mut ids = lock(&self.ids);
        if ids.next >= ids.reserved_until {
            let until = ids.next + ID_BLOCK;
            self.files.reserve_ids(until)?;
            ids.reserved_until = until;
        }
        let id = ids.next;
        ids.next += 1;
        Ok(id)
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(pid: i64, epoch: i16, first: i32, last: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            epoch,
            first_seq: first,
            last_seq: last,
            transactional: false,
            max_timestamp: 1_000 + i64::from(first),
        }
    }

    #[test]
    fn in_order_duplicate_gap_and_epochs() {
        let mut p = PartitionProducers::default();
        assert_eq!(
            p.check(&b(7, 0, 5, 9)),
            Ok(Verdict::Append),
            "unknown producer starts anywhere"
        );
        p.record(&b(7, 0, 5, 9), 100);
        assert_eq!(p.check(&b(7, 0, 10, 12)), Ok(Verdict::Append));
        p.record(&b(7, 0, 10, 12), 105);
        assert_eq!(
            p.check(&b(7, 0, 5, 9)),
            Ok(Verdict::Duplicate { base_offset: 100 })
        );
        assert_eq!(
            p.check(&b(7, 0, 10, 12)),
            Ok(Verdict::Duplicate { base_offset: 105 })
        );
        assert_eq!(
            p.check(&b(7, 0, 14, 15)),
            Err(SequenceError::OutOfOrder {
                expected: 13,
                got: 14
            })
        );
        assert_eq!(
            p.check(&b(7, 1, 3, 4)),
            Err(SequenceError::OutOfOrder {
                expected: 0,
                got: 3
            })
        );
        assert_eq!(p.check(&b(7, 1, 0, 4)), Ok(Verdict::Append));
        p.record(&b(7, 1, 0, 4), 200);
        assert_eq!(p.check(&b(7, 0, 13, 13)), Err(SequenceError::StaleEpoch));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut p = PartitionProducers::default();
        for i in 0..7 {
            p.record(&b(1, 0, i, i), i as i64);
        }
        assert_eq!(
            p.check(&b(1, 0, 6, 6)),
            Ok(Verdict::Duplicate { base_offset: 6 })
        );
        assert_eq!(
            p.check(&b(1, 0, 2, 2)),
            Ok(Verdict::Duplicate { base_offset: 2 })
        );
        assert!(p.check(&b(1, 0, 1, 1)).is_err(), "aged out of the cache");
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut p = PartitionProducers::default();
        p.record(&b(1, 0, i32::MAX - 1, i32::MAX), 0);
        assert_eq!(p.check(&b(1, 0, 0, 3)), Ok(Verdict::Append));
    }

    #[test]
    fn snapshot_restores_state_the_log_no_longer_has() {
        use runnel_log::batch::build::{build_batch_with, TestRecord};
        let d = tempfile::tempdir().unwrap();
        let log = Log::open(d.path(), Default::default()).unwrap();
        let partition = log
            .create_topic("t", 1, Default::default())
            .unwrap()
            .partition(0)
            .unwrap();
        let producers = Producers::open(&log).unwrap();
        let recs: Vec<TestRecord> = (0..3)
            .map(|i| TestRecord {
                timestamp_delta: i,
                key: None,
                value: Some(vec![b'v']),
                headers: Vec::new(),
            })
            .collect();
        let mut batch = build_batch_with(0, &recs, 5, 0, 0, 0);
        let state = producers.partition("t", 0);
        let info = partition.append(&mut batch, 0).unwrap();
        lock(&state).record(&b(5, 0, 0, 2), info.base_offset);
        lock(&state).state.ongoing.insert(9, 0);
        lock(&state).end_transaction(9, 3, false, 50);
        producers.snapshot(&log).unwrap();
        // The batch leaves the log: only the snapshot still knows it.
        let mut more = build_batch_with(0, &recs, -1, -1, -1, 0);
        partition.append(&mut more, 0).unwrap();
        partition.delete_records_before(-1).unwrap();
        drop(producers);

        let reopened = Producers::open(&log).unwrap();
        let state = reopened.partition("t", 0);
        let state = lock(&state);
        assert_eq!(
            state.check(&b(5, 0, 0, 2)),
            Ok(Verdict::Duplicate { base_offset: 0 })
        );
        assert_eq!(state.check(&b(5, 0, 3, 3)), Ok(Verdict::Append));
        assert_eq!(state.aborted_between(0, 10).len(), 1);
        drop(state);
        assert!(
            reopened.allocate_id().unwrap() > 5,
            "ids seen in the snapshot are not reused"
        );

        // Without the snapshot the same reopen knows nothing of producer 5.
        std::fs::remove_file(
            d.path()
                .join(runnel_log::producer_state::PRODUCER_STATE_FILE),
        )
        .unwrap();
        let bare = Producers::open(&log).unwrap();
        let state = bare.partition("t", 0);
        assert_eq!(lock(&state).check(&b(5, 0, 3, 3)), Ok(Verdict::Append));
        assert!(lock(&state).check(&b(5, 0, 0, 2)) == Ok(Verdict::Append));
    }

    /// Data directories written before the files moved to runnel-log open
    /// with their producer state.
    #[test]
    fn older_producer_files_are_read() {
        let d = tempfile::tempdir().unwrap();
        let log = Log::open(d.path(), Default::default()).unwrap();
        log.create_topic("t", 1, Default::default()).unwrap();
        std::fs::write(d.path().join("producer-ids"), "3000").unwrap();
        std::fs::write(
            d.path().join("producer-state.json"),
            r#"{"partitions":[{"offset":0,"partition":0,"state":{"producers":{"7":{"epoch":2,"batches":[{"first_seq":0,"last_seq":4,"base_offset":0}]}},"ongoing":{},"aborted":[{"producer_id":7,"first_offset":0,"last_offset":0}]},"topic":"t"}]}"#,
        )
        .unwrap();
        let producers = Producers::open(&log).unwrap();
        let state = producers.partition("t", 0);
        let state = lock(&state);
        assert_eq!(
            state.check(&b(7, 2, 0, 4)),
            Ok(Verdict::Duplicate { base_offset: 0 })
        );
        assert_eq!(state.check(&b(7, 1, 5, 5)), Err(SequenceError::StaleEpoch));
        assert_eq!(state.aborted_between(0, 1).len(), 1);
        drop(state);
        assert_eq!(producers.allocate_id().unwrap(), 3000);
    }

    #[test]
    fn ids_are_not_reused_after_reopen() {
        let d = tempfile::tempdir().unwrap();
        let log = Log::open(d.path(), Default::default()).unwrap();
        let first = Producers::open(&log).unwrap();
        let a = first.allocate_id().unwrap();
        let b2 = first.allocate_id().unwrap();
        assert_eq!(b2, a + 1);
        drop(first);
        let again = Producers::open(&log).unwrap();
        assert!(again.allocate_id().unwrap() > b2);
    }
}
