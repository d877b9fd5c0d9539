//! Share-group state on disk: the internal compacted topic
//! `__share_group_state` (one partition, created on first use, as Kafka
//! creates its own on first use).
//!
//! # Record format
//!
//! All integers big-endian; strings are `u16 len` + UTF-8.
//!
//! * partition state, key: `u16 version (=1)`, `u8 kind (=0)`, group,
//!   topic, `i32 partition`; value: `u16 version (=1)`, `i64 start`,
//!   `u32 count`, then `count` runs of `i64 first`, `i64 last`,
//!   `u8 state` (0 = to deliver, 1 = done), `i16 delivery count`.
//!   A null value forgets the partition (DeleteShareGroupOffsets).
//! * group configs, key: `u16 version (=1)`, `u8 kind (=1)`, group;
//!   value: `u16 version (=1)`, `u32 count`, then `count` (name, value)
//!   string pairs. A null value: the group was deleted.
//!
//! Each write is the partition's whole state at the time, so the last
//! record of a key wins on replay. What is written is what was
//! acknowledged, released, archived or reset; acquisitions are not written,
//! so after a restart a record acquired but not acknowledged is delivered
//! again (with the delivery count it had when last written).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use runnel_log::{Log, LogError, Partition};
use tracing::info;

use super::consumer::Tp;
use super::records::{self, put_str, Reader};

/// The internal topic holding share-group state.
pub const SHARE_STATE_TOPIC: &str = "__share_group_state";

const KEY_VERSION: u16 = 1;
const VALUE_VERSION: u16 = 1;
const KIND_PARTITION: u8 = 0;
const KIND_CONFIGS: u8 = 1;

/// A run of in-flight offsets as written: (first, last, done, delivery count).
pub type Run = (i64, i64, bool, i16);

/// A partition's state as written: its start and in-flight runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stored {
    pub start: i64,
    pub runs: Vec<Run>,
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Restored {
    pub partitions: HashMap<(String, Tp), Stored>,
    pub configs: HashMap<String, BTreeMap<String, String>>,
}

/// One write.
pub enum Write {
    Partition(String, Tp, Option<Stored>),
    Configs(String, Option<BTreeMap<String, String>>),
}

/// The topic, once it exists, and the lock that orders writes.
pub struct ShareStore {
    log: Arc<Log>,
    partition: Mutex<Option<Arc<Partition>>>,
}

impl ShareStore {
    /// Replays the topic if it exists.
    pub fn open(log: Arc<Log>) -> Result<(ShareStore, Restored), LogError> {
        let mut restored = Restored::default();
        let partition = log
            .topic(SHARE_STATE_TOPIC)
            .and_then(|t| t.partitions().into_iter().next());
        if let Some(p) = &partition {
            let n = replay(p, &mut restored)?;
            if n > 0 {
                info!(
                    records = n,
                    partitions = restored.partitions.len(),
                    "replayed share-group state"
                );
            }
        }
        Ok((
            ShareStore {
                log,
                partition: Mutex::new(partition),
            },
            restored,
        ))
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<Partition>>> {
        self.partition.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends the writes as one batch (the topic is created first if
    /// missing). Blocking.
    pub fn write(&self, writes: Vec<Write>, now_ms: i64) -> Result<(), LogError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut slot = self.lock();
        let partition = match slot.as_ref() {
            Some(p) => p.clone(),
            None => {
                let configs = [("cleanup.policy".to_string(), "compact".to_string())].into();
                let topic = match self.log.create_topic(SHARE_STATE_TOPIC, 1, configs) {
                    Ok(t) => t,
                    Err(LogError::TopicExists(_)) => self
                        .log
                        .topic(SHARE_STATE_TOPIC)
                        .ok_or_else(|| LogError::UnknownTopic(SHARE_STATE_TOPIC.to_string()))?,
                    Err(e) => return Err(e),
                };
                let p = topic
                    .partitions()
                    .into_iter()
                    .next()
                    .ok_or_else(|| LogError::UnknownTopic(SHARE_STATE_TOPIC.to_string()))?;
                *slot = Some(p.clone());
                p
            }
        };
        let records = writes
            .iter()
            .map(|w| match w {
                Write::Partition(group, tp, stored) => {
                    (partition_key(group, tp), stored.as_ref().map(encode_stored))
                }
                Write::Configs(group, configs) => {
                    (configs_key(group), configs.as_ref().map(encode_configs))
                }
            })
            .collect();
        records::append(&partition, records, now_ms)
    }
}

fn partition_key(group: &str, (topic, p): &Tp) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&KEY_VERSION.to_be_bytes());
    out.push(KIND_PARTITION);
    put_str(&mut out, group);
    put_str(&mut out, topic);
    out.extend_from_slice(&p.to_be_bytes());
    out
}

fn configs_key(group: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&KEY_VERSION.to_be_bytes());
    out.push(KIND_CONFIGS);
    put_str(&mut out, group);
    out
}

fn encode_stored(s: &Stored) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + 19 * s.runs.len());
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&s.start.to_be_bytes());
    out.extend_from_slice(&(s.runs.len() as u32).to_be_bytes());
    for (first, last, done, count) in &s.runs {
        out.extend_from_slice(&first.to_be_bytes());
        out.extend_from_slice(&last.to_be_bytes());
        out.push(u8::from(*done));
        out.extend_from_slice(&count.to_be_bytes());
    }
    out
}

fn encode_configs(c: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&(c.len() as u32).to_be_bytes());
    for (k, v) in c {
        put_str(&mut out, k);
        put_str(&mut out, v);
    }
    out
}

enum Key {
    Partition(String, Tp),
    Configs(String),
}

fn decode_key(b: &[u8]) -> Option<Key> {
    let mut r = Reader(b);
    if r.u16()? != KEY_VERSION {
        return None;
    }
    match r.u8()? {
        KIND_PARTITION => {
            let group = r.string()?;
            let topic = r.string()?;
            Some(Key::Partition(group, (topic, r.i32()?)))
        }
        KIND_CONFIGS => Some(Key::Configs(r.string()?)),
        _ => None,
    }
}

fn decode_stored(b: &[u8]) -> Option<Stored> {
    let mut r = Reader(b);
    if r.u16()? != VALUE_VERSION {
        return None;
    }
    let start = r.i64()?;
    let n = r.u32()?;
    let mut runs = Vec::new();
    for _ in 0..n {
        runs.push((r.i64()?, r.i64()?, r.u8()? != 0, r.i16()?));
    }
    Some(Stored { start, runs })
}

fn decode_configs(b: &[u8]) -> Option<BTreeMap<String, String>> {
    let mut r = Reader(b);
    if r.u16()? != VALUE_VERSION {
        return None;
    }
    let n = r.u32()?;
    let mut out = BTreeMap::new();
    for _ in 0..n {
        out.insert(r.string()?, r.string()?);
    }
    Some(out)
}

fn replay(partition: &Partition, restored: &mut Restored) -> Result<u64, LogError> {
    records::replay(
        partition,
        SHARE_STATE_TOPIC,
        |key, value| match decode_key(key) {
            None => false,
            Some(Key::Partition(group, tp)) => match value.map(decode_stored) {
                None => {
                    restored.partitions.remove(&(group, tp));
                    true
                }
                Some(Some(s)) => {
                    restored.partitions.insert((group, tp), s);
                    true
                }
                Some(None) => false,
            },
            Some(Key::Configs(group)) => match value.map(decode_configs) {
                None => {
                    restored.configs.remove(&group);
                    restored.partitions.retain(|(g, _), _| *g != group);
                    true
                }
                Some(Some(c)) => {
                    restored.configs.insert(group, c);
                    true
                }
                Some(None) => false,
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_configs_round_trip_through_the_topic() {
        let dir = tempfile::tempdir().expect("dir");
        let log = Arc::new(Log::open(dir.path(), Default::default()).expect("log"));
        let (store, restored) = ShareStore::open(log.clone()).expect("open");
        assert!(restored.partitions.is_empty() && log.topic(SHARE_STATE_TOPIC).is_none());
        let tp: Tp = ("t".into(), 2);
        let s1 = Stored {
            start: 5,
            runs: vec![(5, 6, false, 2), (7, 9, true, 1)],
        };
        let configs = BTreeMap::from([("share.auto.offset.reset".into(), "earliest".into())]);
        store
            .write(
                vec![
                    Write::Partition("g".into(), tp.clone(), Some(s1)),
                    Write::Configs("g".into(), Some(configs.clone())),
                    Write::Partition("h".into(), tp.clone(), Some(Stored::default())),
                ],
                1,
            )
            .expect("write");
        let s2 = Stored {
            start: 10,
            runs: Vec::new(),
        };
        store
            .write(
                vec![
                    Write::Partition("g".into(), tp.clone(), Some(s2.clone())),
                    Write::Partition("h".into(), tp.clone(), None),
                ],
                2,
            )
            .expect("write");
        drop(store);
        let (_, restored) = ShareStore::open(log).expect("reopen");
        assert_eq!(
            restored.partitions,
            HashMap::from([(("g".to_string(), tp), s2)])
        );
        assert_eq!(
            restored.configs,
            HashMap::from([("g".to_string(), configs)])
        );
    }

    #[test]
    fn truncated_values_are_refused() {
        let v = encode_stored(&Stored {
            start: 1,
            runs: vec![(1, 2, true, 1)],
        });
        for n in 0..v.len() {
            assert_eq!(decode_stored(&v[..n]), None, "{n} bytes");
        }
        assert!(decode_key(&[0, 1, 9]).is_none());
    }
}
