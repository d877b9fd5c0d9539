//! Committed offsets: an in-memory table backed by the internal topic
//! `__consumer_offsets`.
//!
//! # Record format
//!
//! Every commit is one record in an uncompressed v2 batch appended to
//! partition `hash(group) % partitions` of `__consumer_offsets`
//! (`cleanup.policy=compact`). All integers are big-endian.
//!
//! * key: `u16 version (=1)`, `u16 len` + UTF-8 group id, `u16 len` + UTF-8
//!   topic, `i32 partition`.
//! * value (version 1): `u16 version (=1)`, `i64 offset`, `i32 leader epoch`
//!   (-1 = none), `i64 commit timestamp (ms)`, `i32 metadata length` (-1 =
//!   null) + UTF-8 metadata.
//! * tombstone: the same key with a null value; the offset is deleted
//!   (OffsetDelete, DeleteGroups, expiry).
//!
//! The same partition (the group's) also holds the group's KIP-848 state,
//! keys starting with record types 3 and 5–8 (see
//! [`super::consumer::records`]).
//!
//! On open every partition is replayed from its start; the last record for a
//! key wins. Records with an unknown key or value version are skipped with a
//! warning, so newer record kinds can be added later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use runnel_log::{Log, LogError, Partition};
use tracing::info;

use super::consumer::records::{is_group_record, Restoring};
use super::consumer::GroupImage;
use super::records::{self, put_str, KeyValue, Reader};

/// Name of the internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

const KEY_VERSION: u16 = 1;
const VALUE_VERSION: u16 = 1;

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp: i64,
}

/// (group, topic, partition)
pub type OffsetKey = (String, String, i32);

/// One write to a group's offsets: ((topic, partition), commit), where
/// `None` deletes the offset (tombstone).
pub type OffsetWrite = ((String, i32), Option<Committed>);

/// The offsets table and the partitions it is persisted to.
pub struct OffsetStore {
    partitions: Vec<Arc<Partition>>,
    table: Mutex<HashMap<OffsetKey, Committed>>,
    /// Serializes writers so log order and table order agree; readers only
    /// take `table`, never waiting for an append or fsync.
    writer: Mutex<()>,
    /// The consumer groups (KIP-848) the replay found, until the
    /// coordinator takes them.
    restored_groups: Mutex<HashMap<String, GroupImage>>,
}

impl OffsetStore {
    /// Creates `__consumer_offsets` if missing (with `partitions`
    /// partitions) and rebuilds the table from it.
    pub fn open(log: &Log, partitions: i32) -> Result<OffsetStore, LogError> {
        let topic = match log.topic(OFFSETS_TOPIC) {
            Some(t) => t,
            None => {
                let configs = [("cleanup.policy".to_string(), "compact".to_string())].into();
                match log.create_topic(OFFSETS_TOPIC, partitions.max(1), configs) {
                    Ok(t) => {
                        info!(topic = OFFSETS_TOPIC, "created the offsets topic");
                        t
                    }
                    Err(LogError::TopicExists(_)) => log
                        .topic(OFFSETS_TOPIC)
                        .ok_or_else(|| LogError::UnknownTopic(OFFSETS_TOPIC.to_string()))?,
                    Err(e) => return Err(e),
                }
            }
        };
        let partitions = topic.partitions();
        let mut table = HashMap::new();
        let mut groups = Restoring::default();
        let mut records = 0u64;
        for p in &partitions {
            records += replay(p, &mut table, &mut groups)?;
        }
        let groups = groups.finish();
        if records > 0 {
            info!(
                records,
                offsets = table.len(),
                consumer_groups = groups.len(),
                "replayed committed offsets and group state"
            );
        }
        Ok(OffsetStore {
            partitions,
            table: Mutex::new(table),
            writer: Mutex::new(()),
            restored_groups: Mutex::new(groups),
        })
    }

    /// The consumer groups (KIP-848) found on open; empty after the first
    /// call.
    pub fn take_restored_groups(&self) -> HashMap<String, GroupImage> {
        std::mem::take(
            &mut *self
                .restored_groups
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Appends group state records of `group` to its partition. Blocking.
    pub fn write_group_records(
        &self,
        group: &str,
        records: Vec<KeyValue>,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let partition = self.partition_for(group)?;
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        records::append(partition, records, now_ms)
    }

    fn table(&self) -> MutexGuard<'_, HashMap<OffsetKey, Committed>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn partition_for(&self, group: &str) -> Result<&Arc<Partition>, LogError> {
        if self.partitions.is_empty() {
            return Err(LogError::UnknownTopic(OFFSETS_TOPIC.to_string()));
        }
        // FNV-1a: stable across runs and platforms.
        let mut h: u32 = 0x811c_9dc5;
        for b in group.as_bytes() {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
        Ok(&self.partitions[h as usize % self.partitions.len()])
    }

    /// Writes the commits (or tombstones, `None`) of one group durably, then
    /// applies them to the table. Blocking: call from `spawn_blocking`.
    pub fn write(
        &self,
        group: &str,
        entries: Vec<OffsetWrite>,
        now_ms: i64,
    ) -> Result<(), LogError> {
        if entries.is_empty() {
            return Ok(());
        }
        let partition = self.partition_for(group)?;
        let records = entries
            .iter()
            .map(|((topic, p), c)| (encode_key(group, topic, *p), c.as_ref().map(encode_value)))
            .collect();
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        records::append(partition, records, now_ms)?;
        let mut table = self.table();
        for ((topic, p), c) in entries {
            let key = (group.to_string(), topic, p);
            match c {
                Some(c) => {
                    table.insert(key, c);
                }
                None => {
                    table.remove(&key);
                }
            }
        }
        Ok(())
    }

    /// The committed offset of one partition.
    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<Committed> {
        self.table()
            .get(&(group.to_string(), topic.to_string(), partition))
            .cloned()
    }

    /// Every committed offset of `group`, sorted by topic and partition.
    pub fn group_offsets(&self, group: &str) -> Vec<((String, i32), Committed)> {
        let mut out: Vec<_> = self
            .table()
            .iter()
            .filter(|((g, _, _), _)| g == group)
            .map(|((_, t, p), c)| ((t.clone(), *p), c.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Ids of every group with at least one committed offset.
    pub fn groups(&self) -> Vec<String> {
        let mut out: Vec<String> = self.table().keys().map(|(g, _, _)| g.clone()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Offsets committed at or before `cutoff_ms`, by group.
    pub fn older_than(&self, cutoff_ms: i64) -> HashMap<String, Vec<(String, i32)>> {
        let mut out: HashMap<String, Vec<(String, i32)>> = HashMap::new();
        for ((g, t, p), c) in self.table().iter() {
            if c.commit_timestamp <= cutoff_ms {
                out.entry(g.clone()).or_default().push((t.clone(), *p));
            }
        }
        out
    }
}

/// Applies every record of one partition to `table` (offsets) and
/// `groups` (consumer group state); returns the count.
fn replay(
    partition: &Partition,
    table: &mut HashMap<OffsetKey, Committed>,
    groups: &mut Restoring,
) -> Result<u64, LogError> {
    records::replay(partition, OFFSETS_TOPIC, |key, value| {
        let Some(kind) = Reader(key).u16() else {
            return false;
        };
        if is_group_record(kind) {
            return groups.apply(key, value);
        }
        let Some(key) = decode_key(key) else {
            return false;
        };
        match value.map(decode_value) {
            None => {
                table.remove(&key);
                true
            }
            Some(Some(c)) => {
                table.insert(key, c);
                true
            }
            Some(None) => false,
        }
    })
}

pub(crate) fn encode_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + group.len() + topic.len());
    out.extend_from_slice(&KEY_VERSION.to_be_bytes());
    put_str(&mut out, group);
    put_str(&mut out, topic);
    out.extend_from_slice(&partition.to_be_bytes());
    out
}

pub(crate) fn encode_value(c: &Committed) -> Vec<u8> {
    let mut out = Vec::with_capacity(30);
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&c.offset.to_be_bytes());
    out.extend_from_slice(&c.leader_epoch.to_be_bytes());
    out.extend_from_slice(&c.commit_timestamp.to_be_bytes());
    match &c.metadata {
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(m) => {
            out.extend_from_slice(&(m.len() as i32).to_be_bytes());
            out.extend_from_slice(m.as_bytes());
        }
    }
    out
}

pub(crate) fn decode_key(b: &[u8]) -> Option<OffsetKey> {
    let mut c = Reader(b);
    if c.u16()? != KEY_VERSION {
        return None;
    }
    let group = c.string()?;
    let topic = c.string()?;
    let partition = c.i32()?;
    Some((group, topic, partition))
}

pub(crate) fn decode_value(b: &[u8]) -> Option<Committed> {
    let mut c = Reader(b);
    if c.u16()? != VALUE_VERSION {
        return None;
    }
    let offset = c.i64()?;
    let leader_epoch = c.i32()?;
    let commit_timestamp = c.i64()?;
    let len = c.i32()?;
    let metadata = if len < 0 {
        None
    } else {
        let bytes = c.take(usize::try_from(len).ok()?)?;
        Some(String::from_utf8(bytes.to_vec()).ok()?)
    };
    Some(Committed {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(offset: i64, metadata: Option<&str>) -> Committed {
        Committed {
            offset,
            leader_epoch: 3,
            metadata: metadata.map(str::to_string),
            commit_timestamp: 1_700_000_000_000,
        }
    }

    #[test]
    fn key_and_value_round_trip() {
        let k = encode_key("g", "orders", 5);
        assert_eq!(decode_key(&k), Some(("g".into(), "orders".into(), 5)));
        for c in [committed(42, Some("meta ✓")), committed(0, None)] {
            assert_eq!(decode_value(&encode_value(&c)), Some(c));
        }
        assert_eq!(decode_value(&[0, 1, 2]), None);
        assert_eq!(decode_key(&[0, 9]), None);
    }

    #[test]
    fn commits_and_tombstones_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = Log::open(dir.path(), Default::default()).unwrap();
            let store = OffsetStore::open(&log, 1).unwrap();
            store
                .write(
                    "g1",
                    vec![
                        (("t".into(), 0), Some(committed(10, Some("m")))),
                        (("t".into(), 1), Some(committed(11, None))),
                    ],
                    1,
                )
                .unwrap();
            store.write("g1", vec![(("t".into(), 1), None)], 2).unwrap();
            store
                .write("g2", vec![(("u".into(), 0), Some(committed(7, None)))], 3)
                .unwrap();
            store
                .write(
                    "g1",
                    vec![(("t".into(), 0), Some(committed(12, Some("n"))))],
                    4,
                )
                .unwrap();
            log.close().unwrap();
        }
        let log = Log::open(dir.path(), Default::default()).unwrap();
        let store = OffsetStore::open(&log, 1).unwrap();
        assert_eq!(store.get("g1", "t", 0), Some(committed(12, Some("n"))));
        assert_eq!(store.get("g1", "t", 1), None);
        assert_eq!(store.get("g2", "u", 0), Some(committed(7, None)));
        assert_eq!(store.groups(), vec!["g1".to_string(), "g2".to_string()]);
        let topic = log.topic(OFFSETS_TOPIC).unwrap();
        assert_eq!(
            topic.overrides().get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
    }
}
