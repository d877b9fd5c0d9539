//! Persistent state stores on [redb](https://docs.rs/redb) (a copy-on-write
//! B-tree in one file, pure Rust, no dependencies).
//!
//! Layout: one database file per application instance,
//! `<state_dir>/<application_id>/state.redb`, and in it one table per
//! (store, partition), named `<store>#<partition>`, plus the table
//! `__checkpoints` mapping those names to the changelog offset the table
//! reflects. (Table names are unambiguous: the partition, after the last
//! `#`, never contains one, and `__checkpoints` has none.)
//!
//! # Atomicity and durability
//!
//! [`KvBytes::apply`] writes the batch and the checkpoint in one write
//! transaction, so after any crash the checkpoint describes exactly the data
//! beside it. Transactions are committed with `Durability::None` (no fsync),
//! except that at most every [`DiskStores::durable_interval`] (default 1 s)
//! one commit is made durable (`Durability::Immediate`, which also lets redb
//! reuse pages freed since the previous durable commit). A crash therefore
//! loses at most the last interval of commits, consistently, and the engine
//! restores that difference from the changelog, starting from the
//! checkpoint that survived. A clean shutdown (dropping every store and the
//! [`DiskStores`]) or [`DiskStores::flush`] makes everything durable.
//!
//! # Space
//!
//! Copy-on-write pages freed by a commit are only reused once later
//! commits have been made durable, so during heavy update churn the file
//! grows to a few times the live data (about 7x in the benchmark in
//! `examples/store_bench.rs`); redb trims free space at the end of the file
//! when the database is closed cleanly.
//!
//! # Reads
//!
//! Each store keeps a read snapshot of its table open between writes (a
//! redb read transaction per get costs about a quarter of the get rate).
//! Every write to the database first drops all cached snapshots of that
//! database, so no snapshot outlives the next commit and none keeps redb
//! from reusing freed pages.

use std::collections::HashMap;
use std::fmt::Display;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};

use super::{Entries, KvBytes, StoreError};
use crate::topology::StoreSupplier;

/// File name of the database inside `<state_dir>/<application_id>/`.
pub const DB_FILE: &str = "state.redb";

/// Changelog offsets, by table name.
const CHECKPOINTS: TableDefinition<'static, &str, i64> = TableDefinition::new("__checkpoints");

/// Default size of redb's page cache per application database.
const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Default maximum time between durable commits.
const DEFAULT_DURABLE_INTERVAL: Duration = Duration::from_secs(1);

type Data<'a> = TableDefinition<'a, &'static [u8], &'static [u8]>;
type ReadTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// A store's cached read snapshot: `None` when none is open, `Some(None)`
/// when the table did not exist in the snapshot.
type ReaderSlot = Mutex<Option<Option<ReadTable>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Persistent storage for every state store: one redb database per
/// application id under a state directory.
///
/// ```no_run
/// use std::sync::Arc;
/// use runnel_streams::state::DiskStores;
/// use runnel_streams::StreamsConfig;
/// # fn config() -> StreamsConfig { StreamsConfig::new("app") }
///
/// let stores = DiskStores::new("/var/lib/my-app/state");
/// let config = config().stores(Arc::new(stores));
/// ```
///
/// Databases open lazily, on the first store of an application id, and stay
/// open while the `DiskStores` or any store opened from it is alive. redb
/// locks the file: a second `DiskStores` (in this or another process) on the
/// same directory and application id fails to open its stores with a
/// [`StoreError`] instead of sharing the file.
pub struct DiskStores {
    dir: PathBuf,
    /// The state directory's lock file, when [`DiskStores::lock`] took it.
    _lock: Option<std::fs::File>,
    cache_bytes: usize,
    durable_interval: Duration,
    dbs: Mutex<HashMap<String, Arc<AppDb>>>,
}

impl std::fmt::Debug for DiskStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStores")
            .field("dir", &self.dir)
            .field("cache_bytes", &self.cache_bytes)
            .field("durable_interval", &self.durable_interval)
            .finish_non_exhaustive()
    }
}

impl DiskStores {
    /// Stores under `state_dir` (created when the first store opens).
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        DiskStores {
            dir: state_dir.into(),
            _lock: None,
            cache_bytes: DEFAULT_CACHE_BYTES,
            durable_interval: DEFAULT_DURABLE_INTERVAL,
            dbs: Mutex::new(HashMap::new()),
        }
    }

    /// Takes the state directory for this instance: an exclusive lock on
    /// `<dir>/.lock` (released by the OS when the process ends, a crash
    /// included) holding this process's id. A second instance on the same
    /// directory is refused at once, naming the holder, instead of joining
    /// the group and failing when its first store opens.
    pub fn lock(mut self) -> Result<Self, StoreError> {
        use std::io::{Read, Seek, Write};
        let fail = |message: String| StoreError::Storage {
            store: "*".to_string(),
            message,
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            fail(format!(
                "creating state directory {}: {e}",
                self.dir.display()
            ))
        })?;
        let path = self.dir.join(".lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| fail(format!("opening {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {
                let written = file
                    .set_len(0)
                    .and_then(|()| file.seek(std::io::SeekFrom::Start(0)))
                    .and_then(|_| writeln!(file, "pid {}", std::process::id()));
                written.map_err(|e| fail(format!("writing {}: {e}", path.display())))?;
                self._lock = Some(file);
                Ok(self)
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                Err(StoreError::DirectoryInUse {
                    dir: self.dir.display().to_string(),
                    holder: match holder.trim() {
                        "" => "a process that has not written its id yet".to_string(),
                        h => h.to_string(),
                    },
                })
            }
            Err(std::fs::TryLockError::Error(e)) => {
                Err(fail(format!("locking {}: {e}", path.display())))
            }
        }
    }

    /// Sets the page cache size of each application database (default
    /// 64 MiB; redb uses 90% for reads and 10% for writes). Takes effect for
    /// databases opened afterwards.
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Sets the maximum time between durable (fsync'd) commits (default
    /// 1 s). `Duration::ZERO` makes every commit durable. Takes effect for
    /// databases opened afterwards.
    pub fn durable_interval(mut self, interval: Duration) -> Self {
        self.durable_interval = interval;
        self
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database file of an application id.
    pub fn db_path(&self, app_id: &str) -> PathBuf {
        self.dir.join(app_id).join(DB_FILE)
    }

    /// Makes every commit so far durable, in every open database.
    pub fn flush(&self) -> Result<(), StoreError> {
        let dbs: Vec<Arc<AppDb>> = lock(&self.dbs).values().cloned().collect();
        for db in dbs {
            db.flush()?;
        }
        Ok(())
    }

    fn database(&self, app_id: &str, store: &str) -> Result<Arc<AppDb>, StoreError> {
        let mut dbs = lock(&self.dbs);
        if let Some(db) = dbs.get(app_id) {
            return Ok(db.clone());
        }
        if app_id.is_empty()
            || app_id == "."
            || app_id == ".."
            || app_id.contains(['/', '\\', '\0'])
        {
            return Err(storage(
                store,
                format!("application id {app_id:?} cannot name a state directory"),
            ));
        }
        let dir = self.dir.join(app_id);
        std::fs::create_dir_all(&dir).map_err(|e| {
            storage(
                store,
                format!("creating state directory {}: {e}", dir.display()),
            )
        })?;
        let path = dir.join(DB_FILE);
        let started = Instant::now();
        let repair_path = path.clone();
        // redb reports a new file's initialisation through the repair
        // callback too: only a database that existed can need repairing.
        let existed = path.exists();
        let db = redb::Database::builder()
            .set_cache_size(self.cache_bytes)
            .set_repair_callback(move |s| {
                if existed {
                    tracing::warn!(
                        path = %repair_path.display(),
                        progress = s.progress(),
                        "repairing state database after an unclean shutdown"
                    );
                }
            })
            .create(&path)
            .map_err(|e| storage(store, format!("opening {}: {e}", path.display())))?;
        tracing::info!(
            path = %path.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "opened state database"
        );
        let db = Arc::new(AppDb {
            db,
            path,
            durable_interval: self.durable_interval,
            last_durable: Mutex::new(Instant::now()),
            readers: Mutex::new(Vec::new()),
        });
        dbs.insert(app_id.to_string(), db.clone());
        Ok(db)
    }
}

impl StoreSupplier for DiskStores {
    fn open(
        &self,
        app_id: &str,
        store: &str,
        partition: i32,
    ) -> Result<Box<dyn KvBytes>, StoreError> {
        let db = self.database(app_id, store)?;
        let table = format!("{store}#{partition}");
        if table.contains('\0') {
            return Err(storage(store, "store names cannot contain NUL"));
        }
        let reader = Arc::new(Mutex::new(None));
        lock(&db.readers).push(Arc::downgrade(&reader));
        let kv = DiskKv {
            db,
            table,
            store: store.to_string(),
            partition,
            reader,
        };
        let checkpoint = kv.read_checkpoint()?;
        tracing::debug!(store, partition, ?checkpoint, "opened disk state store");
        Ok(Box::new(kv))
    }
}

/// One application database, shared by its stores.
struct AppDb {
    db: redb::Database,
    path: PathBuf,
    durable_interval: Duration,
    last_durable: Mutex<Instant>,
    /// Every store's cached read snapshot, dropped before each write.
    readers: Mutex<Vec<Weak<ReaderSlot>>>,
}

impl AppDb {
    /// Drops every cached read snapshot, so the coming commit can reuse
    /// the pages they would pin.
    fn drop_readers(&self) {
        lock(&self.readers).retain(|w| match w.upgrade() {
            Some(slot) => {
                *lock(&slot) = None;
                true
            }
            None => false,
        });
    }

    /// Starts a write transaction; durable if the interval has passed.
    fn begin_write(&self, store: &str) -> Result<(redb::WriteTransaction, bool), StoreError> {
        self.drop_readers();
        let mut tx = self
            .db
            .begin_write()
            .map_err(|e| storage(store, format!("begin write: {e}")))?;
        let durable = lock(&self.last_durable).elapsed() >= self.durable_interval;
        tx.set_durability(if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        })
        .map_err(|e| storage(store, format!("set durability: {e}")))?;
        Ok((tx, durable))
    }

    fn commit(
        &self,
        store: &str,
        tx: redb::WriteTransaction,
        durable: bool,
    ) -> Result<(), StoreError> {
        tx.commit()
            .map_err(|e| storage(store, format!("commit: {e}")))?;
        if durable {
            *lock(&self.last_durable) = Instant::now();
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let what = self.path.display().to_string();
        self.drop_readers();
        let mut tx = self
            .db
            .begin_write()
            .map_err(|e| storage(&what, format!("begin write: {e}")))?;
        tx.set_durability(redb::Durability::Immediate)
            .map_err(|e| storage(&what, format!("set durability: {e}")))?;
        self.commit(&what, tx, true)
    }
}

/// One (store, partition): a table of the application database.
struct DiskKv {
    db: Arc<AppDb>,
    /// `<store>#<partition>`.
    table: String,
    store: String,
    partition: i32,
    reader: Arc<ReaderSlot>,
}

fn storage(store: &str, message: impl Display) -> StoreError {
    StoreError::Storage {
        store: store.to_string(),
        message: message.to_string(),
    }
}

/// Whether `(from, to)` selects nothing because `from` is not below `to`
/// (ranges that std's B-tree would panic on).
fn empty_range(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    match (from, to) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a >= b
        }
        _ => false,
    }
}

impl DiskKv {
    fn def(&self) -> Data<'_> {
        TableDefinition::new(&self.table)
    }

    fn err(&self, what: &str, e: impl Display) -> StoreError {
        storage(
            &self.store,
            format!("partition {}: {what}: {e}", self.partition),
        )
    }

    fn read_checkpoint(&self) -> Result<Option<i64>, StoreError> {
        let tx = self
            .db
            .db
            .begin_read()
            .map_err(|e| self.err("begin read", e))?;
        let t = match tx.open_table(CHECKPOINTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err("open checkpoints", e)),
        };
        let v = t
            .get(self.table.as_str())
            .map_err(|e| self.err("read checkpoint", e))?;
        Ok(v.map(|g| g.value()))
    }

    /// Runs `f` on the cached read snapshot of the table (`None`: the table
    /// does not exist yet), opening one if needed.
    fn with_reader<T>(
        &self,
        f: impl FnOnce(Option<&ReadTable>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut slot = lock(&self.reader);
        if slot.is_none() {
            let tx = self
                .db
                .db
                .begin_read()
                .map_err(|e| self.err("begin read", e))?;
            let t = match tx.open_table(self.def()) {
                Ok(t) => Some(t),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(self.err("open table", e)),
            };
            *slot = Some(t);
        }
        f(slot.as_ref().and_then(Option::as_ref))
    }
}

impl KvBytes for DiskKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_reader(|t| match t {
            None => Ok(None),
            Some(t) => Ok(t
                .get(key)
                .map_err(|e| self.err("get", e))?
                .map(|g| g.value().to_vec())),
        })
    }

    fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Entries, StoreError> {
        if empty_range(from, to) {
            return Ok(Vec::new());
        }
        self.with_reader(|t| {
            let Some(t) = t else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for e in t
                .range::<&[u8]>((from, to))
                .map_err(|e| self.err("range", e))?
            {
                let (k, v) = e.map_err(|e| self.err("range", e))?;
                out.push((k.value().to_vec(), v.value().to_vec()));
            }
            Ok(out)
        })
    }

    fn apply(
        &mut self,
        writes: &[(Vec<u8>, Option<Vec<u8>>)],
        checkpoint: Option<i64>,
    ) -> Result<(), StoreError> {
        if writes.is_empty() && checkpoint.is_none() {
            return Ok(());
        }
        let (tx, durable) = self.db.begin_write(&self.store)?;
        {
            let mut t = tx
                .open_table(self.def())
                .map_err(|e| self.err("open table", e))?;
            for (k, v) in writes {
                match v {
                    Some(v) => {
                        t.insert(k.as_slice(), v.as_slice())
                            .map_err(|e| self.err("insert", e))?;
                    }
                    None => {
                        t.remove(k.as_slice()).map_err(|e| self.err("remove", e))?;
                    }
                }
            }
            if let Some(c) = checkpoint {
                let mut m = tx
                    .open_table(CHECKPOINTS)
                    .map_err(|e| self.err("open checkpoints", e))?;
                m.insert(self.table.as_str(), c)
                    .map_err(|e| self.err("write checkpoint", e))?;
            }
        }
        // An error before this point drops (aborts) the transaction: neither
        // the writes nor the checkpoint land.
        self.db.commit(&self.store, tx, durable)
    }

    fn checkpoint(&self) -> Option<i64> {
        match self.read_checkpoint() {
            Ok(c) => c,
            Err(e) => {
                // `None` makes the engine clear the store and restore it
                // from the start of the changelog: slow but correct.
                tracing::warn!(error = %e, "cannot read state store checkpoint; restoring from scratch");
                None
            }
        }
    }

    fn clear(&mut self) -> Result<(), StoreError> {
        let (tx, durable) = self.db.begin_write(&self.store)?;
        {
            let mut m = tx
                .open_table(CHECKPOINTS)
                .map_err(|e| self.err("open checkpoints", e))?;
            m.remove(self.table.as_str())
                .map_err(|e| self.err("remove checkpoint", e))?;
        }
        tx.delete_table(self.def())
            .map_err(|e| self.err("delete table", e))?;
        self.db.commit(&self.store, tx, durable)?;
        tracing::debug!(store = %self.store, partition = self.partition, "cleared disk state store");
        Ok(())
    }

    fn len(&self) -> usize {
        let n = self.with_reader(|t| match t {
            None => Ok(0),
            Some(t) => t.len().map_err(|e| self.err("len", e)),
        });
        match n {
            Ok(n) => usize::try_from(n).unwrap_or(usize::MAX),
            Err(e) => {
                tracing::debug!(error = %e, "cannot count state store entries");
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// The reference: a B-tree. (`MemKv::range` itself panics on
    /// `(Excluded(k), Excluded(k))`, so it cannot serve here.)
    fn model_range(
        map: &BTreeMap<Vec<u8>, Vec<u8>>,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Entries {
        if empty_range(from, to) {
            return Vec::new();
        }
        map.range::<[u8], _>((from, to))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    type Writes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

    fn put(k: &str, v: &str) -> (Vec<u8>, Option<Vec<u8>>) {
        (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()))
    }

    fn del(k: &str) -> (Vec<u8>, Option<Vec<u8>>) {
        (k.as_bytes().to_vec(), None)
    }

    fn all(kv: &dyn KvBytes) -> Entries {
        kv.range(Bound::Unbounded, Bound::Unbounded).unwrap()
    }

    fn entries(pairs: &[(&str, &str)]) -> Entries {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let stores = DiskStores::new(dir.path());
        let mut kv = stores.open("app", "counts", 0).unwrap();
        assert_eq!(kv.get(b"a").unwrap(), None);
        assert!(kv.is_empty());
        assert_eq!(all(kv.as_ref()), Vec::new());
        kv.apply(&[put("a", "1"), put("b", "2"), put("c", "3")], None)
            .unwrap();
        assert_eq!(kv.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(kv.len(), 3);
        kv.apply(&[put("a", "10"), del("b"), del("zz")], None)
            .unwrap();
        assert_eq!(kv.get(b"a").unwrap(), Some(b"10".to_vec()));
        assert_eq!(kv.get(b"b").unwrap(), None);
        assert_eq!(all(kv.as_ref()), entries(&[("a", "10"), ("c", "3")]));
        // Empty keys and values, binary keys, last write in a batch wins.
        kv.apply(
            &[
                (Vec::new(), Some(Vec::new())),
                (vec![0xff, 0], Some(vec![1])),
                (vec![0xff, 0], Some(vec![2])),
            ],
            None,
        )
        .unwrap();
        assert_eq!(kv.get(b"").unwrap(), Some(Vec::new()));
        assert_eq!(kv.get(&[0xff, 0]).unwrap(), Some(vec![2]));
        assert_eq!(
            all(kv.as_ref()).first().map(|e| e.0.clone()),
            Some(Vec::new())
        );
        assert!(stores.db_path("app").is_file());
    }

    #[test]
    fn ranges_match_a_btreemap_for_all_bound_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let stores = DiskStores::new(dir.path());
        let mut kv = stores.open("app", "s", 0).unwrap();
        let mut mem = BTreeMap::new();
        let keys: Vec<&[u8]> = vec![b"", b"a", b"ab", b"b", b"ba", b"c", b"\xff"];
        let writes: Writes = keys
            .iter()
            .map(|k| (k.to_vec(), Some(k.to_vec())))
            .collect();
        kv.apply(&writes, Some(1)).unwrap();
        for k in &keys {
            mem.insert(k.to_vec(), k.to_vec());
        }
        // Probes: stored keys and keys between/outside them.
        let probes: Vec<&[u8]> = vec![b"", b"a", b"aa", b"ab", b"b", b"bz", b"c", b"d", b"\xff"];
        let mut bounds: Vec<Bound<&[u8]>> = vec![Bound::Unbounded];
        for p in &probes {
            bounds.push(Bound::Included(p));
            bounds.push(Bound::Excluded(p));
        }
        let mut nonempty = 0;
        for from in &bounds {
            for to in &bounds {
                let got = kv.range(*from, *to).unwrap();
                let want = model_range(&mem, *from, *to);
                assert_eq!(got, want, "range {from:?}..{to:?}");
                nonempty += usize::from(!got.is_empty());
            }
        }
        assert!(nonempty > 50);
        // from > to and equal bounds with an exclusion are empty, not panics.
        for (from, to) in [
            (Bound::Included(&b"c"[..]), Bound::Included(&b"a"[..])),
            (Bound::Excluded(b"c"), Bound::Excluded(b"a")),
            (Bound::Excluded(b"b"), Bound::Excluded(b"b")),
            (Bound::Included(b"b"), Bound::Excluded(b"b")),
            (Bound::Excluded(b"b"), Bound::Included(b"b")),
        ] {
            assert_eq!(kv.range(from, to).unwrap(), Vec::new(), "{from:?}..{to:?}");
        }
        assert_eq!(
            kv.range(Bound::Included(b"b"), Bound::Included(b"b"))
                .unwrap(),
            entries(&[("b", "b")])
        );
        // A store that was never written has no table yet.
        let empty = stores.open("app", "s", 1).unwrap();
        assert_eq!(
            empty.range(Bound::Unbounded, Bound::Unbounded).unwrap(),
            Vec::new()
        );
        assert_eq!(
            empty
                .range(Bound::Included(b"a"), Bound::Excluded(b"z"))
                .unwrap(),
            Vec::new()
        );
    }

    #[test]
    fn checkpoint_is_written_with_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let stores = DiskStores::new(dir.path());
        let mut kv = stores.open("app", "s", 0).unwrap();
        assert_eq!(kv.checkpoint(), None);
        kv.apply(&[put("a", "1")], Some(7)).unwrap();
        assert_eq!(kv.checkpoint(), Some(7));
        assert_eq!(kv.get(b"a").unwrap(), Some(b"1".to_vec()));
        // Batches without a checkpoint (mid-restore) keep the last one.
        kv.apply(&[put("b", "2")], None).unwrap();
        assert_eq!(kv.checkpoint(), Some(7));
        // A checkpoint alone moves forward.
        kv.apply(&[], Some(9)).unwrap();
        assert_eq!(kv.checkpoint(), Some(9));
        // Another handle on the same table sees the same state.
        let other = stores.open("app", "s", 0).unwrap();
        assert_eq!(other.checkpoint(), Some(9));
        assert_eq!(other.get(b"b").unwrap(), Some(b"2".to_vec()));
    }

    #[test]
    fn reopen_after_drop_keeps_data_and_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        {
            // Non-durable commits only: a clean close still persists them.
            let stores = DiskStores::new(dir.path()).durable_interval(Duration::from_secs(3600));
            let mut a = stores.open("app", "s", 0).unwrap();
            let mut b = stores.open("app", "t", 3).unwrap();
            a.apply(&[put("k", "v"), put("k2", "v2")], Some(42))
                .unwrap();
            a.apply(&[del("k2")], None).unwrap();
            b.apply(&[put("x", "y")], Some(-1)).unwrap();
        }
        let stores = DiskStores::new(dir.path());
        let a = stores.open("app", "s", 0).unwrap();
        assert_eq!(a.checkpoint(), Some(42));
        assert_eq!(all(a.as_ref()), entries(&[("k", "v")]));
        let b = stores.open("app", "t", 3).unwrap();
        assert_eq!(b.checkpoint(), Some(-1));
        assert_eq!(all(b.as_ref()), entries(&[("x", "y")]));
        // Durable commits and an explicit flush work too.
        let mut a = a;
        a.apply(&[put("z", "1")], Some(43)).unwrap();
        stores.flush().unwrap();
        drop((a, b, stores));
        let stores = DiskStores::new(dir.path()).durable_interval(Duration::ZERO);
        let mut a = stores.open("app", "s", 0).unwrap();
        assert_eq!(a.checkpoint(), Some(43));
        a.apply(&[put("w", "2")], Some(44)).unwrap();
        drop((a, stores));
        let a = DiskStores::new(dir.path()).open("app", "s", 0).unwrap();
        assert_eq!(a.checkpoint(), Some(44));
        assert_eq!(all(a.as_ref()).len(), 3);
    }

    #[test]
    fn clear_drops_entries_and_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let stores = DiskStores::new(dir.path());
        let mut kv = stores.open("app", "s", 0).unwrap();
        let mut sibling = stores.open("app", "s", 1).unwrap();
        sibling.apply(&[put("keep", "1")], Some(3)).unwrap();
        kv.apply(&[put("a", "1"), put("b", "2")], Some(5)).unwrap();
        kv.clear().unwrap();
        assert_eq!(kv.checkpoint(), None);
        assert_eq!(kv.get(b"a").unwrap(), None);
        assert_eq!(all(kv.as_ref()), Vec::new());
        assert_eq!(kv.len(), 0);
        // Clearing twice, and clearing a store never written, is fine.
        kv.clear().unwrap();
        stores.open("app", "never", 0).unwrap().clear().unwrap();
        // The store works after a clear, and the sibling is untouched.
        kv.apply(&[put("c", "3")], Some(1)).unwrap();
        assert_eq!(all(kv.as_ref()), entries(&[("c", "3")]));
        assert_eq!(kv.checkpoint(), Some(1));
        assert_eq!(all(sibling.as_ref()), entries(&[("keep", "1")]));
        assert_eq!(sibling.checkpoint(), Some(3));
        drop((kv, sibling, stores));
        let kv = DiskStores::new(dir.path()).open("app", "s", 0).unwrap();
        assert_eq!(all(kv.as_ref()), entries(&[("c", "3")]));
    }

    #[test]
    fn partitions_stores_and_apps_are_isolated() {
        let dir = tempfile::tempdir().unwrap();
        let stores = DiskStores::new(dir.path());
        let mut p0 = stores.open("app", "s", 0).unwrap();
        let mut p1 = stores.open("app", "s", 1).unwrap();
        let mut t0 = stores.open("app", "t", 0).unwrap();
        // Names that would collide under a naive `store + partition` scheme.
        let mut h1 = stores.open("app", "s#1", 0).unwrap();
        let mut other_app = stores.open("other", "s", 0).unwrap();
        p0.apply(&[put("k", "p0")], Some(10)).unwrap();
        p1.apply(&[put("k", "p1"), put("only1", "x")], Some(11))
            .unwrap();
        t0.apply(&[put("k", "t0")], Some(12)).unwrap();
        h1.apply(&[put("k", "h1")], None).unwrap();
        other_app.apply(&[put("k", "o")], Some(13)).unwrap();
        assert_eq!(all(p0.as_ref()), entries(&[("k", "p0")]));
        assert_eq!(all(p1.as_ref()), entries(&[("k", "p1"), ("only1", "x")]));
        assert_eq!(all(t0.as_ref()), entries(&[("k", "t0")]));
        assert_eq!(all(h1.as_ref()), entries(&[("k", "h1")]));
        assert_eq!(all(other_app.as_ref()), entries(&[("k", "o")]));
        assert_eq!(
            (
                p0.checkpoint(),
                p1.checkpoint(),
                t0.checkpoint(),
                h1.checkpoint()
            ),
            (Some(10), Some(11), Some(12), None)
        );
        assert_eq!(other_app.checkpoint(), Some(13));
        p1.clear().unwrap();
        assert_eq!(all(p0.as_ref()), entries(&[("k", "p0")]));
        assert_eq!(t0.get(b"k").unwrap(), Some(b"t0".to_vec()));
        // One database per application id, not per store.
        assert!(stores.db_path("app").is_file());
        assert!(stores.db_path("other").is_file());
        let files = std::fs::read_dir(dir.path().join("app")).unwrap().count();
        assert_eq!(files, 1);
    }

    #[test]
    fn errors_are_typed() {
        let dir = tempfile::tempdir().unwrap();
        let stores = DiskStores::new(dir.path());
        for bad in ["", ".", "..", "a/b", "a\\b"] {
            match stores.open(bad, "s", 0) {
                Err(StoreError::Storage { store, .. }) => assert_eq!(store, "s"),
                Err(e) => panic!("app id {bad:?}: {e}"),
                Ok(_) => panic!("app id {bad:?} accepted"),
            }
        }
        // The same database from a second supplier: redb's file lock.
        let _kv = stores.open("app", "s", 0).unwrap();
        let second = DiskStores::new(dir.path());
        assert!(matches!(
            second.open("app", "s", 0),
            Err(StoreError::Storage { .. })
        ));
        // A state directory that is a file.
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(DiskStores::new(&file).open("app", "s", 0).is_err());
        // A database file that is not a database.
        std::fs::create_dir_all(dir.path().join("junk")).unwrap();
        std::fs::write(dir.path().join("junk").join(DB_FILE), vec![7u8; 8192]).unwrap();
        let e = DiskStores::new(dir.path()).open("junk", "s", 0);
        assert!(matches!(e, Err(StoreError::Storage { .. })));
    }

    #[test]
    fn a_state_directory_is_locked_by_one_instance() {
        let dir = tempfile::tempdir().unwrap();
        let first = DiskStores::new(dir.path()).lock().unwrap();
        let err = DiskStores::new(dir.path()).lock().expect_err("refused");
        let message = err.to_string();
        assert!(
            message.contains(&format!(
                "state directory {} is in use by another instance (pid {})",
                dir.path().display(),
                std::process::id()
            )),
            "{message}"
        );
        drop(first);
        assert!(DiskStores::new(dir.path()).lock().is_ok());
    }

    /// Writes batches `i` = 1..=N, batch `i` putting key `k{i}` and reaching
    /// checkpoint `i`; only batch `DURABLE` is made durable before the
    /// process aborts.
    const CRASH_BATCHES: i64 = 12;
    const CRASH_DURABLE: i64 = 4;
    const CRASH_ENV: &str = "RUNNEL_DISK_CRASH_DIR";

    /// Child half of `crash_keeps_checkpoint_consistent_with_data`.
    #[test]
    fn crash_child() {
        let Some(dir) = std::env::var_os(CRASH_ENV) else {
            return;
        };
        let stores = DiskStores::new(PathBuf::from(dir)).durable_interval(Duration::MAX);
        let mut kv = stores.open("app", "s", 0).unwrap();
        for i in 1..=CRASH_BATCHES {
            let batch = vec![(format!("k{i}").into_bytes(), Some(vec![0u8; 4096]))];
            kv.apply(&batch, Some(i)).unwrap();
            if i == CRASH_DURABLE {
                stores.flush().unwrap();
                std::fs::write(stores.dir().join("flushed"), b"").unwrap();
            }
        }
        std::process::abort();
    }

    #[test]
    fn crash_keeps_checkpoint_consistent_with_data() {
        let dir = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let status = std::process::Command::new(exe)
            .args(["--exact", "state::disk::tests::crash_child", "--nocapture"])
            .env(CRASH_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "child should have aborted");
        assert!(dir.path().join("flushed").is_file(), "child did not run");
        let kv = DiskStores::new(dir.path()).open("app", "s", 0).unwrap();
        let cp = kv.checkpoint().expect("durable checkpoint lost");
        assert!(
            (CRASH_DURABLE..=CRASH_BATCHES).contains(&cp),
            "checkpoint {cp}"
        );
        let keys: Vec<Vec<u8>> = all(kv.as_ref()).into_iter().map(|(k, _)| k).collect();
        let mut want: Vec<Vec<u8>> = (1..=cp).map(|i| format!("k{i}").into_bytes()).collect();
        want.sort();
        assert_eq!(keys, want, "data does not match checkpoint {cp}");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Apply(Writes, Option<i64>),
        Reopen,
        Clear,
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(vec![0u8, 1, b'a', 0xff]), 0..4)
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (
                prop::collection::vec(
                    (key(), prop::option::weighted(0.7, prop::collection::vec(any::<u8>(), 0..6))),
                    0..12,
                ),
                prop::option::of(0i64..1000),
            )
                .prop_map(|(w, c)| Op::Apply(w, c)),
            2 => Just(Op::Reopen),
            1 => Just(Op::Clear),
        ]
    }

    fn bound(b: &Option<(bool, Vec<u8>)>) -> Bound<&[u8]> {
        match b {
            None => Bound::Unbounded,
            Some((true, k)) => Bound::Included(k),
            Some((false, k)) => Bound::Excluded(k),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn matches_btreemap_model(
            ops in prop::collection::vec(op(), 1..16),
            ranges in prop::collection::vec(
                (prop::option::of((any::<bool>(), key())), prop::option::of((any::<bool>(), key()))),
                4,
            ),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut stores = DiskStores::new(dir.path());
            let mut kv = stores.open("app", "s", 2).unwrap();
            // A neighbour that must never change.
            stores.open("app", "s", 3).unwrap().apply(&[(b"a".to_vec(), Some(b"n".to_vec()))], Some(1)).unwrap();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut checkpoint = None;
            for op in ops {
                match op {
                    Op::Apply(writes, c) => {
                        kv.apply(&writes, c).unwrap();
                        for (k, v) in writes {
                            match v {
                                Some(v) => { model.insert(k, v); }
                                None => { model.remove(&k); }
                            }
                        }
                        if c.is_some() {
                            checkpoint = c;
                        }
                    }
                    Op::Reopen => {
                        drop(kv);
                        drop(stores);
                        stores = DiskStores::new(dir.path());
                        kv = stores.open("app", "s", 2).unwrap();
                    }
                    Op::Clear => {
                        kv.clear().unwrap();
                        model.clear();
                        checkpoint = None;
                    }
                }
                let want: Entries = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                prop_assert_eq!(all(kv.as_ref()), want);
                prop_assert_eq!(kv.checkpoint(), checkpoint);
                prop_assert_eq!(kv.len(), model.len());
            }
            for (from, to) in &ranges {
                prop_assert_eq!(
                    kv.range(bound(from), bound(to)).unwrap(),
                    model_range(&model, bound(from), bound(to))
                );
            }
            for k in model.keys() {
                prop_assert_eq!(kv.get(k).unwrap(), model.get(k).cloned());
            }
            let n = stores.open("app", "s", 3).unwrap();
            prop_assert_eq!(all(n.as_ref()), vec![(b"a".to_vec(), b"n".to_vec())]);
            prop_assert_eq!(n.checkpoint(), Some(1));
        }
    }
}
