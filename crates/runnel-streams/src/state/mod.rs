//! State stores: ordered byte maps with a write cache in front and a
//! changelog behind.
//!
//! Layers, bottom up:
//! * [`KvBytes`]: the storage itself, in memory ([`MemKv`]) or on disk.
//! * [`StateStore`]: one task's store: storage plus the writes made since the
//!   last commit (`dirty`). Reads see dirty writes first. At commit the dirty
//!   entries become changelog records; only after the commit succeeded are
//!   they applied to storage, together with the changelog offset they reach.
//!   Storage therefore only ever holds committed state, which is what lets
//!   exactly-once restart without wiping local state.
//! * Typed views ([`KvStore`], [`WindowStore`]) used by operators and
//!   interactive queries.

#[doc(hidden)]
pub mod bench_support;
mod disk;
pub(crate) mod kv;
mod window;

use std::collections::hash_map::{Entry, OccupiedEntry};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

pub use disk::DiskStores;
pub use kv::KvStore;
pub(crate) use window::split as window_split;
pub use window::WindowStore;
pub(crate) use window::{from_ord_bytes, ord_bytes, window_key as window_key_bytes, META_KEY};

use crate::backend::TopicPartition;

/// Whether a range is empty by its bounds alone (and so must not be
/// handed to `BTreeMap::range`, which panics on such ranges).
pub(crate) fn empty_range(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    match (from, to) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a >= b
        }
        _ => false,
    }
}

/// Key-value pairs in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {store}: {message}")]
    Storage { store: String, message: String },
    /// A key or value the store was asked to write or look up cannot be
    /// encoded: a processing error of the record at hand, not a storage
    /// failure.
    /// Another instance holds the state directory (`DiskStores::lock`).
    #[error("state directory {dir} is in use by another instance ({holder}); stop it first, or give each instance its own --state-dir")]
    DirectoryInUse { dir: String, holder: String },
    #[error("cannot encode the store's {what}: {source}")]
    Encode {
        what: &'static str,
        source: crate::serdes::SerdeError,
    },
}

/// Ordered byte storage under one store of one task.
pub trait KvBytes: Send {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Entries with keys in the range, in key order.
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Entries, StoreError>;
    /// Applies writes (`None` deletes) atomically together with the
    /// changelog offset they reach.
    fn apply(
        &mut self,
        writes: &[(Vec<u8>, Option<Vec<u8>>)],
        checkpoint: Option<i64>,
    ) -> Result<(), StoreError>;
    /// The changelog offset storage reflects (`None`: restore from the start).
    fn checkpoint(&self) -> Option<i64>;
    /// Drops everything (a restore from scratch follows).
    fn clear(&mut self) -> Result<(), StoreError>;
    /// Number of entries (approximate for disk storage).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// In-memory storage: a B-tree. Restored from the changelog on every start.
#[derive(Default)]
pub struct MemKv {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl KvBytes for MemKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map.get(key).cloned())
    }
    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Entries, StoreError> {
        if empty_range(from, to) {
            return Ok(Vec::new());
        }
        Ok(self
            .map
            .range::<[u8], _>((from, to))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn apply(
        &mut self,
        writes: &[(Vec<u8>, Option<Vec<u8>>)],
        _checkpoint: Option<i64>,
    ) -> Result<(), StoreError> {
        for (k, v) in writes {
            match v {
                Some(v) => {
                    self.map.insert(k.clone(), v.clone());
                }
                None => {
                    self.map.remove(k);
                }
            }
        }
        Ok(())
    }
    fn checkpoint(&self) -> Option<i64> {
        None
    }
    fn clear(&mut self) -> Result<(), StoreError> {
        self.map.clear();
        Ok(())
    }
    fn len(&self) -> usize {
        self.map.len()
    }
}

/// What kind of store a definition asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    KeyValue,
    /// Windows kept for `retention_ms` of stream time after their start.
    Window {
        retention_ms: i64,
    },
}

/// One task's store: storage, uncommitted writes, changelog partition.
pub struct StateStore {
    pub(crate) name: String,
    pub(crate) kind: StoreKind,
    base: Box<dyn KvBytes>,
    /// Uncommitted writes by key: a hash map, because every record reads
    /// and updates them; `dirty_keys` keeps their order for range reads.
    dirty: HashMap<Vec<u8>, Option<Vec<u8>>>,
    dirty_keys: BTreeSet<Vec<u8>>,
    pub(crate) changelog: Option<TopicPartition>,
    /// Window stores: (window start, key) of every entry, for expiry.
    times: BTreeSet<(i64, Vec<u8>)>,
}

/// Adds (`live`) or removes a window store key in the time index.
fn index_window(times: &mut BTreeSet<(i64, Vec<u8>)>, key: &[u8], live: bool) {
    if let Some(start) = window::start_of(key) {
        if live {
            times.insert((start, key.to_vec()));
        } else {
            times.remove(&(start, key.to_vec()));
        }
    }
}

/// Overwrites an uncommitted write. A key with a live uncommitted value is
/// in the time index already: updating it leaves the index as it is.
fn replace_dirty(
    times: &mut BTreeSet<(i64, Vec<u8>)>,
    window: bool,
    mut e: OccupiedEntry<'_, Vec<u8>, Option<Vec<u8>>>,
    value: Option<Vec<u8>>,
) {
    if window && !(e.get().is_some() && value.is_some()) {
        index_window(times, e.key(), value.is_some());
    }
    e.insert(value);
}

/// A store shared between a task and interactive queries.
pub type SharedStore = Arc<Mutex<StateStore>>;

pub(crate) fn lock(s: &SharedStore) -> MutexGuard<'_, StateStore> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

impl StateStore {
    pub fn new(
        name: String,
        kind: StoreKind,
        base: Box<dyn KvBytes>,
        changelog: Option<TopicPartition>,
    ) -> Self {
        StateStore {
            name,
            kind,
            base,
            dirty: HashMap::new(),
            dirty_keys: BTreeSet::new(),
            changelog,
            times: BTreeSet::new(),
        }
    }

    fn err(&self, e: StoreError) -> StoreError {
        e
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of `key`, uncommitted writes included.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.dirty.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key).map_err(|e| self.err(e)),
        }
    }

    /// Writes (`None` deletes) `key`.
    pub fn put(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let window = matches!(self.kind, StoreKind::Window { .. });
        match self.dirty.entry(key) {
            Entry::Occupied(e) => replace_dirty(&mut self.times, window, e, value),
            Entry::Vacant(e) => {
                if window {
                    index_window(&mut self.times, e.key(), value.is_some());
                }
                self.dirty_keys.insert(e.key().clone());
                e.insert(value);
            }
        }
    }

    /// The value of `key`, uncommitted writes included, passed to `f`
    /// (without copying it when it is an uncommitted write).
    pub(crate) fn get_with<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, StoreError> {
        match self.dirty.get(key) {
            Some(v) => Ok(v.as_deref().map(f)),
            None => Ok(self.base.get(key).map_err(|e| self.err(e))?.map(|v| f(&v))),
        }
    }

    /// Entries in `[from, to]` (bounds as given), uncommitted writes merged.
    pub fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Entries, StoreError> {
        let base = self.base.range(from, to)?;
        if self.dirty.is_empty() {
            return Ok(base);
        }
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> =
            base.into_iter().map(|(k, v)| (k, Some(v))).collect();
        let ok = !empty_range(from, to);
        if ok {
            for k in self.dirty_keys.range::<[u8], _>((from, to)) {
                if let Some(v) = self.dirty.get(k) {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }

    /// Number of uncommitted writes.
    pub fn dirty_len(&self) -> usize {
        self.dirty.len()
    }

    /// The uncommitted writes, for the changelog.
    pub(crate) fn dirty(&self) -> impl Iterator<Item = (&Vec<u8>, &Option<Vec<u8>>)> {
        self.dirty.iter()
    }

    /// After a successful commit: moves the writes into storage.
    pub(crate) fn committed(&mut self, checkpoint: Option<i64>) -> Result<(), StoreError> {
        if self.dirty.is_empty() && checkpoint.is_none() {
            return Ok(());
        }
        let mut writes: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            std::mem::take(&mut self.dirty).into_iter().collect();
        self.dirty_keys.clear();
        // Storage takes the batch in key order, as it did from the B-tree.
        writes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.base.apply(&writes, checkpoint)
    }

    /// After an abort: forgets the uncommitted writes.
    pub(crate) fn rollback(&mut self) -> Result<(), StoreError> {
        if let StoreKind::Window { .. } = self.kind {
            for (k, _) in std::mem::take(&mut self.dirty) {
                if let Some(start) = window::start_of(&k) {
                    self.times.remove(&(start, k.clone()));
                    if self.base.get(&k)?.is_some() {
                        self.times.insert((start, k));
                    }
                }
            }
        }
        self.dirty.clear();
        self.dirty_keys.clear();
        Ok(())
    }

    /// Applies restored changelog records straight to storage.
    pub(crate) fn restore(
        &mut self,
        writes: &[(Vec<u8>, Option<Vec<u8>>)],
        checkpoint: Option<i64>,
    ) -> Result<(), StoreError> {
        if let StoreKind::Window { .. } = self.kind {
            for (k, v) in writes {
                if let Some(start) = window::start_of(k) {
                    if v.is_some() {
                        self.times.insert((start, k.clone()));
                    } else {
                        self.times.remove(&(start, k.clone()));
                    }
                }
            }
        }
        self.base.apply(writes, checkpoint)
    }

    pub(crate) fn base_checkpoint(&self) -> Option<i64> {
        self.base.checkpoint()
    }

    pub(crate) fn clear(&mut self) -> Result<(), StoreError> {
        self.dirty.clear();
        self.dirty_keys.clear();
        self.times.clear();
        self.base.clear()
    }

    /// Window stores: deletes windows that started before `before`.
    pub(crate) fn expire_windows(&mut self, before: i64) {
        let doomed: Vec<(i64, Vec<u8>)> =
            self.times.range(..(before, Vec::new())).cloned().collect();
        for (start, k) in doomed {
            self.times.remove(&(start, k.clone()));
            self.dirty_keys.insert(k.clone());
            self.dirty.insert(k, None);
        }
    }

    /// Approximate number of entries.
    pub fn approximate_len(&self) -> usize {
        self.base.len() + self.dirty.values().filter(|v| v.is_some()).count()
    }
}

impl StateStore {
    /// Window stores: keys of windows starting in `[lo, hi]`, ordered by
    /// start then key.
    pub(crate) fn window_keys_between(&self, lo: i64, hi: i64) -> Vec<Vec<u8>> {
        if lo > hi {
            return Vec::new();
        }
        self.times
            .range((lo, Vec::new())..)
            .take_while(|(s, _)| *s <= hi)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// Rebuilds the window time index from storage (after open).
    pub(crate) fn index_windows(&mut self) -> Result<(), StoreError> {
        if let StoreKind::Window { .. } = self.kind {
            self.times.clear();
            for (k, _) in self.base.range(Bound::Unbounded, Bound::Unbounded)? {
                if let Some(start) = window::start_of(&k) {
                    self.times.insert((start, k));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod range_tests {
    use super::*;

    #[test]
    fn degenerate_ranges_are_empty_not_panics() {
        let mut m = MemKv::default();
        m.apply(&[(b"k".to_vec(), Some(b"v".to_vec()))], None)
            .unwrap();
        let k: &[u8] = b"k";
        assert!(m
            .range(Bound::Excluded(k), Bound::Excluded(k))
            .unwrap()
            .is_empty());
        assert!(m
            .range(Bound::Included(k), Bound::Excluded(k))
            .unwrap()
            .is_empty());
        assert_eq!(
            m.range(Bound::Included(k), Bound::Included(k))
                .unwrap()
                .len(),
            1
        );
        let mut s = StateStore::new("s".into(), StoreKind::KeyValue, Box::new(m), None);
        s.put(b"k".to_vec(), Some(b"w".to_vec()));
        assert!(s
            .range(Bound::Excluded(k), Bound::Excluded(k))
            .unwrap()
            .is_empty());
        assert_eq!(
            s.range(Bound::Included(k), Bound::Included(k))
                .unwrap()
                .len(),
            1
        );
    }
}
