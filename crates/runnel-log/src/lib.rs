//! Runnel's durable, partitioned, append-only event log on local disk.
//!
//! A [`Log`] owns one data directory holding any number of [`Topic`]s, each
//! with N [`Partition`]s. A partition is an append-only sequence of segment
//! files holding Kafka v2 record batches exactly as produced, except that
//! the log assigns offsets (the batch's 8-byte baseOffset field, which the
//! CRC does not cover) and, for `message.timestamp.type=LogAppendTime`
//! topics, stamps the timestamp type and maxTimestamp (recomputing the CRC).
//! There is no tokio, socket or Kafka-request knowledge here; everything is
//! `Send + Sync` and meant to be shared through `Arc` by many threads.
//!
//! # On-disk format
//!
//! ```text
//! <dir>/topics/<topic>/topic.json                 topic metadata
//! <dir>/topics/<topic>/<partition>/               one dir per partition
//!     00000000000000000000.log                    segment data
//!     00000000000000000000.index                  sparse offset index
//!     00000000000000000000.timeindex              sparse time index
//!     00000000000000004242.log / .index / ...     next segment (base 4242)
//!     log-start-offset                            (optional) log start
//!     recovery-point                              recovery point / clean marker
//!     cleaner-checkpoint                          (compacted topics) see below
//! <dir>/deleted/<topic>.<id>.deleted/             topic deletion in progress
//! <dir>/producer-ids                              producer id reservation
//! <dir>/producer-state.json                       producer state snapshot
//! <dir>/.lock                                     held while a process has the log open
//! ```
//!
//! * **Segment** (`<base>.log`, base offset zero-padded to 20 digits): the
//!   concatenation of v2 record batches (see [`batch`] for the header
//!   layout), batch base offsets strictly contiguous starting at the segment
//!   base, except in segments compaction rewrote (below the cleaner
//!   checkpoint), where they are strictly increasing with gaps (and the
//!   first batch may start after the segment base). A segment rolls when the next append would exceed
//!   `segment.bytes`, when it is older than `segment.ms` (age counted from
//!   its first append; after a restart from its first batch's
//!   maxTimestamp), when its index would exceed `segment.index.bytes`, or
//!   when relative offsets would overflow. One produce payload is never
//!   split across segments.
//! * **Offset index** (`<base>.index`): 8-byte big-endian entries
//!   `relativeOffset: u32, position: u32` mapping a batch's base offset
//!   (minus the segment base) to its byte position in the `.log` file. The
//!   first batch of a segment is always indexed, later ones when at least
//!   `index.interval.bytes` follow the previously indexed batch.
//! * **Time index** (`<base>.timeindex`): 12-byte big-endian entries
//!   `timestamp: i64, relativeOffset: u32`: the segment's max timestamp so
//!   far and the relative base offset of the first batch reaching it,
//!   written alongside offset entries when the max grew, plus a final entry
//!   when the segment is rolled or flushed. Strictly increasing timestamps;
//!   its last entry is the segment's largest timestamp (used by time
//!   retention and ListOffsets).
//! * Index entries are kept in memory and written to the files on roll,
//!   flush and checkpoint (not on every append); stale index files are
//!   rebuilt from the segment on open.
//! * **`topic.json`**: `{"name", "id" (32 hex digits, the 16-byte topic
//!   id), "partitions", "configs" (topic overrides)}`, replaced atomically
//!   (write `.tmp`, fsync, rename, fsync dir). It is written last when a
//!   topic is created, so a topic directory without it is an unfinished
//!   creation and is removed on open.
//! * **`log-start-offset`**: decimal i64, written atomically by
//!   [`Partition::delete_records_before`]. Missing = the first segment's
//!   base offset. The effective log start is never below the first segment.
//! * **`recovery-point`**: decimal i64 R, written atomically: all data
//!   below R is fsynced and every segment wholly below R has complete,
//!   durable indexes. It is written by [`Partition::flush`],
//!   [`Log::flush_all`] (also run when the [`Log`] is dropped) and
//!   periodically by [`Log::maintenance`] (right after a roll, else at most
//!   every 30 s). It doubles as the clean-shutdown marker: after a clean
//!   close R equals the log end offset.
//! * **`cleaner-checkpoint`** (compacted topics): decimal i64 C on the first
//!   line, optionally a decimal i64 H on the second, written atomically.
//!   Segments below C may have been rewritten by compaction (their offsets
//!   may have gaps); segments at or above C have never been compacted. H is
//!   the earliest delete horizon of a tombstone or transaction marker kept
//!   by the last compaction (when it passes, compaction runs again).
//!   Compaction writes `<base>.log.cleaned`, fsyncs it, deletes the
//!   segment's index files, renames it over `<base>.log` and rewrites the
//!   indexes; a leftover `*.cleaned` file is deleted on open.
//! * **`.lock`**: [`Log::open`] takes an exclusive `flock` on it for as
//!   long as the log is open and writes `pid <id>` into it; a second open
//!   of the directory, by any process, fails with
//!   [`LogError::DirectoryLocked`] naming that holder. The OS releases the
//!   lock when the holder dies, so a crash never leaves the directory
//!   locked.
//! * **`producer-ids`** (the broker's idempotent producers, through
//!   [`producer_state::ProducerFiles`]): decimal i64 N (surrounding
//!   whitespace allowed), replaced atomically (write `producer-ids.tmp`,
//!   fsync, rename, fsync dir) before any id of a new block is handed out:
//!   ids below N may have been used. Missing or unparsable = 0 (the broker
//!   also starts past every producer id it finds in the log).
//! * **`producer-state.json`**: the broker's producer bookkeeping as of a
//!   log end per partition, replaced atomically (`producer-state.json.tmp`;
//!   older builds used `producer-state.tmp`, which is ignored):
//!   `{"partitions": [{"topic", "partition", "offset", "state"}]}` in any
//!   key order, where `offset` is the partition's log end the state covers
//!   and `state` is `{"producers": {"<producer id>": {"epoch", "batches":
//!   [{"first_seq", "last_seq", "base_offset"}], "last_timestamp",
//!   "coordinator_epoch"}}, "ongoing": {"<producer
//!   id>": first offset of its open transaction}, "aborted":
//!   [{"producer_id", "first_offset", "last_offset" (the abort marker)}]}`
//!   (batches and aborted transactions oldest first; `last_timestamp` and
//!   `coordinator_epoch` may be missing, read as -1). A missing or
//!   unreadable file, or a partition whose `offset` is past its log end, is
//!   rebuilt from the newest batches of the log instead.
//!
//! # Compaction
//!
//! [`Partition::compact`] (for `cleanup.policy` `compact` or
//! `compact,delete`) keeps, in closed segments below a given stable offset,
//! only the latest record of each key: offsets are preserved (reads at an
//! offset inside a gap return the next batch), aborted transactional data
//! is dropped, tombstones and transaction markers are dropped once
//! `delete.retention.ms` has passed (tombstones: KIP-534 delete horizon).
//! See the `partition::compact` module for the details.
//!
//! # Recovery
//!
//! On open, segments wholly below the recovery point are trusted: only
//! their index files are read and sanity-checked (a missing or inconsistent
//! index triggers a rebuild of that segment). The segment containing R and
//! every later one are rescanned batch by batch (length, magic, CRC-32C,
//! offsets: contiguous, or only increasing in segments below the cleaner
//! checkpoint); a torn or corrupt tail is truncated to the last valid batch
//! (logged with `tracing::warn!`), later segments are deleted, and indexes
//! are rebuilt. Later segments are also deleted when the next segment
//! overlaps the rescanned one or (outside compacted segments) does not
//! start where it ends. Exception: when the last segment's index is valid,
//! the batches after its last index entry verify up to exactly the end of
//! the file and that end equals R (a clean shutdown), nothing is rescanned.
//! Without a `recovery-point` file every segment is rescanned.
//!
//! # Durability
//!
//! `flush.messages=1` fsyncs every append before it returns; larger values
//! fsync once that many offsets are unflushed; `flush.ms` is honoured by
//! [`Log::maintenance`]. By default flushing is left to the OS (plus an
//! fsync of each rolled segment at the next maintenance). Any write or
//! fsync error marks the partition failed: that and every later append
//! return [`LogError::StorageFailed`]; reads continue.

pub mod batch;
pub mod codec;
mod config;
pub mod control;
mod fsutil;
mod index;
mod log;
mod partition;
pub mod producer_state;
mod segment;
mod topic;

pub use config::{
    builtin_default, supported_keys, ConfigEntry, ConfigSource, LogConfig, TimestampType,
    TOPIC_NAME_STRATEGY,
};
pub use log::Log;
pub use partition::{CompactionStats, Partition};
pub use topic::{validate_topic_name, Topic};

/// Errors from the log. The broker maps each variant to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("invalid topic name {0:?}: {1}")]
    InvalidTopicName(String, String),
    #[error("invalid partition count {0}")]
    InvalidPartitions(i64),
    #[error("invalid config {key}={value}: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
    #[error("unknown config {0}")]
    UnknownConfig(String),
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    BatchTooLarge { size: usize, max: usize },
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("partition storage failed and is no longer writable: {0}")]
    StorageFailed(String),
    #[error("data directory {dir} is in use by another process ({holder}); stop it first, or use another --data-dir")]
    DirectoryLocked { dir: String, holder: String },
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
}

/// The result of appending one produce payload (one or more batches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// -1 unless the topic uses LogAppendTime.
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

/// Whole batches read from a partition.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    pub bytes: Vec<u8>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// Fuzzing entry point: builds a partition with a few valid batches, damages
/// its active segment as directed by `bytes` (the first byte picks append
/// vs. overwrite and where), reopens it and checks the recovery invariants.
/// Panics on a violated invariant (never on the input itself).
#[doc(hidden)]
pub fn fuzz_recover(bytes: &[u8]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "runnel-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let r = std::panic::catch_unwind(|| testutil::damage_and_recover(&dir, bytes));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
}

#[doc(hidden)]
#[allow(clippy::expect_used)] // test support: a failed expectation is the finding
pub mod testutil {
    //! Shared by unit tests, property tests and [`crate::fuzz_recover`].
    use std::collections::BTreeMap;
    use std::path::Path;

    use crate::batch::{self, testing::simple_batch, BatchHeader};
    use crate::Log;

    /// Appends batches, damages the active segment per `bytes`, reopens
    /// uncleanly and asserts the recovery invariants.
    pub fn damage_and_recover(dir: &Path, bytes: &[u8]) {
        let mode = bytes.first().copied().unwrap_or(0);
        let rest = bytes.get(1..).unwrap_or(&[]);
        let mut stored: Vec<(i64, Vec<u8>)> = Vec::new();
        let seg_path;
        {
            let log = Log::open(dir, BTreeMap::new()).expect("open");
            let t = log
                .create_topic(
                    "t",
                    1,
                    BTreeMap::from([("index.interval.bytes".into(), "200".into())]),
                )
                .expect("create");
            let p = t.partition(0).expect("partition");
            for i in 0..(3 + (mode % 5) as usize) {
                let mut b = simple_batch(1000 + i as i64, 1 + i % 4, 20 + 7 * i);
                let info = p.append(&mut b, 5000).expect("append");
                stored.push((info.base_offset, b));
            }
            seg_path = p.dir().join(format!("{:020}.log", 0));
            log.flush_all().expect("flush");
        }
        // Unclean shutdown (always for in-place damage, which only a crash
        // can cause): forget the recovery point.
        if mode & 0xC0 != 0 {
            let _ = std::fs::remove_file(dir.join("topics/t/0/recovery-point"));
        }
        let mut data = std::fs::read(&seg_path).expect("read segment");
        let orig_len = data.len();
        let damage_at = if mode & 0x40 != 0 && !rest.is_empty() {
            // Overwrite bytes somewhere in the second half of the segment.
            let at = orig_len / 2 + (usize::from(rest[0]) * 31) % (orig_len / 2).max(1);
            for (i, b) in rest.iter().enumerate() {
                if at + i < data.len() {
                    data[at + i] ^= *b | 1;
                } else {
                    data.push(*b);
                }
            }
            at
        } else {
            data.extend_from_slice(rest);
            orig_len
        };
        std::fs::write(&seg_path, &data).expect("write segment");

        let log = Log::open(dir, BTreeMap::new()).expect("reopen");
        let t = log.topic("t").expect("topic");
        let p = t.partition(0).expect("partition");
        let hw = p.high_watermark();
        // Every batch wholly before the damage reads back intact.
        let mut pos = 0usize;
        let mut expect_next = 0;
        for (base, b) in &stored {
            let end = pos + b.len();
            if end <= damage_at {
                let r = p.read(*base, b.len(), true).expect("read intact batch");
                assert_eq!(&r.bytes[..b.len()], &b[..], "batch at {base} changed");
                expect_next = base + BatchHeader::parse(b).expect("hdr").offset_count();
            }
            pos = end;
        }
        assert!(
            hw >= expect_next,
            "hw {hw} lost intact batches (expected >= {expect_next})"
        );
        // The log is consistent: walking it from the start ends at hw.
        let mut off = p.log_start_offset();
        while off < hw {
            let r = p.read(off, 1 << 20, true).expect("read");
            assert!(!r.bytes.is_empty(), "empty read below hw");
            for h in batch::BatchIter::new(&r.bytes, usize::MAX) {
                let h = h.expect("stored batch valid");
                assert_eq!(h.base_offset(), off);
                off = h.next_offset();
            }
        }
        assert_eq!(off, hw);
        // Appending after recovery works and continues at hw.
        let mut b = simple_batch(9000, 2, 10);
        let info = p.append(&mut b, 9000).expect("append after recovery");
        assert_eq!(info.base_offset, hw);
        let r = p.read(hw, 1 << 20, true).expect("read new");
        assert_eq!(r.bytes, b);
    }
}

#[cfg(test)]
mod tests;
