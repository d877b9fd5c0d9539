//! The files of the broker's idempotent/transactional producer bookkeeping
//! (the broker decides what the state means; this module owns where and how
//! it is stored). Formats are in the crate docs ("On-disk format").

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::{fsutil, Log, LogError};

/// The producer id reservation, in the data directory.
pub const PRODUCER_IDS_FILE: &str = "producer-ids";
/// The producer state snapshot, in the data directory.
pub const PRODUCER_STATE_FILE: &str = "producer-state.json";

/// One remembered batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
}

/// What a partition remembers of one producer id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Its last batches, oldest first.
    pub batches: VecDeque<CachedBatch>,
    /// The max timestamp of its last batch or transaction marker
    /// (-1: unknown, e.g. a snapshot written before this was kept).
    #[serde(default = "unknown")]
    pub last_timestamp: i64,
    /// The coordinator epoch of the last transaction marker written for
    /// it (-1: none yet).
    #[serde(default = "unknown_epoch")]
    pub coordinator_epoch: i32,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            last_timestamp: -1,
            coordinator_epoch: -1,
        }
    }
}

fn unknown() -> i64 {
    -1
}

fn unknown_epoch() -> i32 {
    -1
}

/// The offsets of an aborted transaction on one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the abort marker.
    pub last_offset: i64,
}

/// The producer state of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerState {
    pub producers: HashMap<i64, ProducerEntry>,
    /// First offset of each producer's ongoing transaction.
    pub ongoing: HashMap<i64, i64>,
    /// Aborted transactions, oldest first.
    pub aborted: Vec<AbortedTxn>,
}

impl ProducerState {
    /// Whether there is nothing to remember.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty() && self.ongoing.is_empty() && self.aborted.is_empty()
    }
}

/// One partition's entry in the snapshot: its state as of log end
/// `offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionProducerState {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub state: ProducerState,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    partitions: Vec<PartitionProducerState>,
}

/// Reads and writes the producer files of one data directory.
#[derive(Debug)]
pub struct ProducerFiles {
    ids: PathBuf,
    state: PathBuf,
    /// The bytes of the last snapshot written, to skip unchanged rewrites.
    last_snapshot: Mutex<Vec<u8>>,
}

impl ProducerFiles {
    /// The producer files of `log`'s data directory.
    pub fn of(log: &Log) -> ProducerFiles {
        ProducerFiles {
            ids: log.dir().join(PRODUCER_IDS_FILE),
            state: log.dir().join(PRODUCER_STATE_FILE),
            last_snapshot: Mutex::new(Vec::new()),
        }
    }

    /// The end of the last reserved block of producer ids: every id below
    /// it may have been handed out. 0 when the file is missing, or
    /// unreadable (logged; the caller also starts past the ids it finds in
    /// the log).
    pub fn reserved_ids(&self) -> Result<i64, LogError> {
        match fs::read_to_string(&self.ids) {
            Ok(text) => Ok(text.trim().parse::<i64>().unwrap_or_else(|_| {
                warn!(file = %self.ids.display(), "unreadable producer id counter; starting past the log's ids");
                0
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Durably reserves producer ids below `until` (fsync-rename).
    pub fn reserve_ids(&self, until: i64) -> Result<(), LogError> {
        fsutil::write_atomic(&self.ids, until.to_string().as_bytes(), true)?;
        Ok(())
    }

    /// The last snapshot's partitions; empty when the file is missing or
    /// unreadable (logged; the broker then rebuilds from the log).
    pub fn load_state(&self) -> Vec<PartitionProducerState> {
        let bytes = match fs::read(&self.state) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                warn!(file = %self.state.display(), %e, "unreadable producer state snapshot; replaying the log instead");
                return Vec::new();
            }
        };
        match serde_json::from_slice::<SnapshotFile>(&bytes) {
            Ok(f) => f.partitions,
            Err(e) => {
                warn!(file = %self.state.display(), %e, "unreadable producer state snapshot; replaying the log instead");
                Vec::new()
            }
        }
    }

    /// Replaces the snapshot with `partitions` (fsync-rename), unless it
    /// would write the same bytes as last time. Blocking.
    pub fn save_state(&self, partitions: Vec<PartitionProducerState>) -> Result<(), LogError> {
        let text = serde_json::to_vec(&SnapshotFile { partitions })
            .map_err(|e| LogError::Io(io::Error::other(e)))?;
        let mut last = self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner());
        if *last != text {
            fsutil::write_atomic(&self.state, &text, true)?;
            *last = text;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(dir: &std::path::Path) -> Log {
        Log::open(dir, Default::default()).expect("open log")
    }

    #[test]
    fn ids_reservation_round_trips() {
        let d = tempfile::tempdir().expect("tempdir");
        let files = ProducerFiles::of(&log(d.path()));
        assert_eq!(files.reserved_ids().expect("read"), 0, "missing file");
        files.reserve_ids(2000).expect("reserve");
        assert_eq!(files.reserved_ids().expect("read"), 2000);
        assert_eq!(
            fs::read_to_string(d.path().join(PRODUCER_IDS_FILE)).expect("file"),
            "2000"
        );
        fs::write(d.path().join(PRODUCER_IDS_FILE), "garbage").expect("write");
        assert_eq!(files.reserved_ids().expect("read"), 0, "unreadable file");
        // Written by older builds: a decimal number, maybe with a newline.
        fs::write(d.path().join(PRODUCER_IDS_FILE), "1000\n").expect("write");
        assert_eq!(files.reserved_ids().expect("read"), 1000);
    }

    #[test]
    fn state_round_trips_and_reads_older_files() {
        let d = tempfile::tempdir().expect("tempdir");
        let files = ProducerFiles::of(&log(d.path()));
        assert!(files.load_state().is_empty(), "missing file");
        let mut state = ProducerState::default();
        state.producers.insert(
            5,
            ProducerEntry {
                epoch: 2,
                batches: VecDeque::from([CachedBatch {
                    first_seq: 0,
                    last_seq: 2,
                    base_offset: 10,
                }]),
                last_timestamp: 1_700_000_000_000,
                coordinator_epoch: -1,
            },
        );
        state.ongoing.insert(5, 10);
        state.aborted.push(AbortedTxn {
            producer_id: 4,
            first_offset: 1,
            last_offset: 3,
        });
        let entry = PartitionProducerState {
            topic: "t".into(),
            partition: 1,
            offset: 13,
            state,
        };
        files.save_state(vec![entry.clone()]).expect("save");
        assert_eq!(files.load_state(), vec![entry]);

        // The layout older builds wrote (keys sorted by serde_json's map).
        let old = r#"{"partitions":[{"offset":7,"partition":0,"state":{"producers":{"9":{"epoch":1,"batches":[{"first_seq":3,"last_seq":4,"base_offset":5}]}},"ongoing":{},"aborted":[{"producer_id":9,"first_offset":0,"last_offset":2}]},"topic":"orders"}]}"#;
        fs::write(d.path().join(PRODUCER_STATE_FILE), old).expect("write");
        let loaded = files.load_state();
        assert_eq!(loaded.len(), 1);
        let p = &loaded[0];
        assert_eq!((p.topic.as_str(), p.partition, p.offset), ("orders", 0, 7));
        assert_eq!(p.state.producers[&9].batches[0].base_offset, 5);
        assert_eq!(p.state.producers[&9].last_timestamp, -1, "not kept then");
        assert_eq!(p.state.producers[&9].coordinator_epoch, -1, "not kept then");
        assert_eq!(p.state.aborted[0].last_offset, 2);

        fs::write(d.path().join(PRODUCER_STATE_FILE), "{not json").expect("write");
        assert!(files.load_state().is_empty(), "unreadable file");
    }

    #[test]
    fn unchanged_snapshots_are_not_rewritten() {
        let d = tempfile::tempdir().expect("tempdir");
        let files = ProducerFiles::of(&log(d.path()));
        files.save_state(Vec::new()).expect("save");
        let path = d.path().join(PRODUCER_STATE_FILE);
        fs::remove_file(&path).expect("remove");
        files.save_state(Vec::new()).expect("save again");
        assert!(!path.exists(), "same bytes: no write");
    }
}
