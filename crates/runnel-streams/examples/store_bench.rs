//! State-store benchmark: the storage workload of a windowed count, run on
//! every storage candidate in the same process.
//!
//! ```text
//! cargo run --release -p runnel-streams --example store_bench --features fjall -- --rounds 2
//! cargo run --release -p runnel-streams --example store_bench -- [--keys N] [--ops N]
//! ```
//!
//! Without `--features fjall` only `mem` and the redb stores run (fjall is an
//! optional dependency so that tests do not build it). `--rounds N` runs
//! every candidate N times, alternating the order, and keeps each metric's
//! best (the machine may be shared). Progress goes to stderr, the table to
//! stdout.
//!
//! Phases, per candidate (`mem` = `MemKv`, the in-memory baseline;
//! `redb` = `DiskStores`; `redb-sync` = `DiskStores` with every commit
//! durable; `fjall`, `fjall-8m` (8 MiB memtables) with `--features fjall`):
//! 1. `update`: `--ops` read-modify-write updates (get, +1, put) of
//!    (random key of `--keys`, current window) through a [`StateStore`] of
//!    kind `Window`, as the windowed-count operator does; writes stay dirty
//!    until a commit every `--commit` updates applies them to storage with
//!    the changelog offset (`committed(Some(offset))` →
//!    `KvBytes::apply(batch, checkpoint)`). Stream time advances so the run
//!    spans `--windows` windows.
//! 2. `get`: `--reads` random point reads (key, window) through the store.
//! 3. `range`: `--ranges` scans of all windows of one random key.
//! 4. `scan`: one full scan of the store.
//! 5. `restore`: `--restore` changelog records (the changelog this workload
//!    writes: each commit's dirty set in key order) applied to a fresh store
//!    in batches of 10 000 through `KvBytes::apply`, the last batch with the
//!    end offset as checkpoint.
//! 6. `reopen`: drop the supplier and open the restored store again
//!    (recovery time; checks the checkpoint survived).
//!
//! On-disk size is measured after `update` and after `restore` (allocated
//! blocks, so sparse or preallocated files count as what they occupy).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_streams::state::{bench_support, DiskStores, StateStore, StoreError, StoreKind};
use runnel_streams::{InMemoryStores, StoreSupplier};

const WINDOW_MS: i64 = 60_000;
const RESTORE_BATCH: usize = 10_000;
const APP: &str = "bench-app";
const STORE: &str = "KSTREAM-AGGREGATE-STATE-STORE-0000000001";

#[derive(Clone, Debug)]
struct Opts {
    keys: u64,
    ops: u64,
    windows: u64,
    commit: u64,
    reads: u64,
    ranges: u64,
    restore: u64,
    cache_mb: u64,
    rounds: u64,
    only: Option<Vec<String>>,
    dir: Option<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: store_bench [--keys N] [--ops N] [--windows N] [--commit N] [--reads N] \
         [--ranges N] [--restore N] [--cache-mb N] [--rounds N] [--only mem,redb,redb-sync,fjall,fjall-8m] [--dir PATH]"
    );
    std::process::exit(2)
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        keys: 100_000,
        ops: 2_000_000,
        windows: 10,
        commit: 50_000,
        reads: 500_000,
        ranges: 100_000,
        restore: 1_000_000,
        cache_mb: 64,
        rounds: 1,
        only: None,
        dir: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let Some(v) = args.next() else { usage() };
        let num = || {
            v.replace('_', "")
                .parse::<u64>()
                .unwrap_or_else(|_| usage())
        };
        match a.as_str() {
            "--keys" => o.keys = num().max(1),
            "--ops" => o.ops = num().max(1),
            "--windows" => o.windows = num().max(1),
            "--commit" => o.commit = num().max(1),
            "--reads" => o.reads = num(),
            "--ranges" => o.ranges = num(),
            "--restore" => o.restore = num(),
            "--cache-mb" => o.cache_mb = num().max(1),
            "--rounds" => o.rounds = num().max(1),
            "--only" => o.only = Some(v.split(',').map(str::to_string).collect()),
            "--dir" => o.dir = Some(PathBuf::from(v)),
            _ => usage(),
        }
    }
    o
}

/// splitmix64: deterministic and dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The window store's key layout: `[len u32 BE][key][start, sign-flipped BE]`.
fn window_key(key: &[u8], start: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + key.len());
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&((start as u64) ^ (1 << 63)).to_be_bytes());
    out
}

fn record_key(i: u64) -> Vec<u8> {
    format!("user-{i:08}").into_bytes()
}

/// The window store's value layout: `[ts i64 BE][count i64 BE]`.
fn count_value(ts: i64, count: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out
}

fn count_of(v: &[u8]) -> i64 {
    v.get(8..16)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, i64::from_be_bytes)
}

/// The i-th update of the workload: (record key, window start, timestamp).
fn update_at(o: &Opts, rng: &mut Rng, i: u64) -> (Vec<u8>, i64, i64) {
    let k = rng.below(o.keys);
    let window = (i as u128 * o.windows as u128 / o.ops as u128) as i64;
    let ts = window * WINDOW_MS + (i % WINDOW_MS as u64) as i64;
    (record_key(k), window * WINDOW_MS, ts)
}

/// The changelog the update phase writes: each commit's dirty set in key
/// order, `n` records (the workload wraps around if it is shorter).
fn changelog(o: &Opts, n: u64) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut out = Vec::with_capacity(n as usize);
    let mut counts: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut dirty: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut rng = Rng(7);
    let mut i = 0u64;
    while (out.len() as u64) < n {
        let (k, start, ts) = update_at(o, &mut rng, i % o.ops);
        let wk = window_key(&k, start);
        let c = counts.entry(wk.clone()).or_insert(0);
        *c += 1;
        dirty.insert(wk, count_value(ts, *c));
        i += 1;
        if i.is_multiple_of(o.commit) {
            for (k, v) in std::mem::take(&mut dirty) {
                out.push((k, Some(v)));
            }
        }
    }
    out.truncate(n as usize);
    out
}

fn dir_size(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Progress on stderr, about every 10% of a phase.
struct Progress {
    what: String,
    total: u64,
    step: u64,
    start: Instant,
}
impl Progress {
    fn new(what: String, total: u64) -> Self {
        eprintln!("  {what}: {total} ...");
        Progress {
            what,
            total,
            step: (total / 10).max(1),
            start: Instant::now(),
        }
    }
    fn tick(&self, done: u64) {
        if done > 0 && done.is_multiple_of(self.step) && done < self.total {
            let s = self.start.elapsed().as_secs_f64();
            eprintln!(
                "  {}: {}/{} ({:.0}/s)",
                self.what,
                done,
                self.total,
                done as f64 / s
            );
        }
    }
}

#[derive(Default, Debug)]
struct Row {
    name: String,
    update: f64,
    get: f64,
    range: f64,
    scan: f64,
    restore: f64,
    reopen_ms: Option<f64>,
    entries: usize,
    disk_after_update: Option<u64>,
    disk_after_restore: Option<u64>,
}

impl Row {
    /// Keeps the best of two rounds per metric (the machine is shared, so
    /// the best run is the least disturbed one).
    fn merge_best(&mut self, r: Row) {
        self.update = self.update.max(r.update);
        self.get = self.get.max(r.get);
        self.range = self.range.max(r.range);
        self.scan = self.scan.max(r.scan);
        self.restore = self.restore.max(r.restore);
        self.reopen_ms = match (self.reopen_ms, r.reopen_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

type MakeSupplier = Box<dyn Fn(&Path, u64) -> Result<Arc<dyn StoreSupplier>, StoreError>>;

fn run(
    o: &Opts,
    name: &str,
    make: &MakeSupplier,
    root: &Path,
    log: &[(Vec<u8>, Option<Vec<u8>>)],
) -> Result<Row, StoreError> {
    let on_disk = name != "mem";
    let mut row = Row {
        name: name.to_string(),
        ..Row::default()
    };
    let dir = root.join(name);
    let cache = o.cache_mb << 20;
    let supplier = make(&dir.join("work"), cache)?;
    let mut st = StateStore::new(
        STORE.to_string(),
        StoreKind::Window {
            retention_ms: i64::MAX,
        },
        supplier.open(APP, STORE, 0)?,
        None,
    );

    // 1. Read-modify-write updates with periodic commits.
    let p = Progress::new(format!("{name} update"), o.ops);
    let mut rng = Rng(7);
    let mut offset = 0i64;
    let t = Instant::now();
    for i in 0..o.ops {
        let (k, start, ts) = update_at(o, &mut rng, i);
        let wk = window_key(&k, start);
        let c = st.get(&wk)?.map_or(0, |v| count_of(&v));
        st.put(wk, Some(count_value(ts, c + 1)));
        if (i + 1) % o.commit == 0 || i + 1 == o.ops {
            offset += st.dirty_len() as i64;
            bench_support::commit(&mut st, Some(offset))?;
        }
        p.tick(i + 1);
    }
    row.update = rate(o.ops, t.elapsed());
    if on_disk {
        row.disk_after_update = Some(dir_size(&dir.join("work")));
    }

    // 2. Random point reads of windows.
    let p = Progress::new(format!("{name} get"), o.reads);
    let mut rng = Rng(11);
    let mut hits = 0u64;
    let t = Instant::now();
    for i in 0..o.reads {
        let k = record_key(rng.below(o.keys));
        let w = rng.below(o.windows) as i64;
        if st.get(&window_key(&k, w * WINDOW_MS))?.is_some() {
            hits += 1;
        }
        p.tick(i + 1);
    }
    row.get = rate(o.reads, t.elapsed());
    eprintln!("  {name} get: {hits}/{} hits", o.reads);

    // 3. All windows of one key.
    let p = Progress::new(format!("{name} range"), o.ranges);
    let mut rng = Rng(13);
    let mut found = 0usize;
    let t = Instant::now();
    for i in 0..o.ranges {
        let k = record_key(rng.below(o.keys));
        let lo = window_key(&k, 0);
        let hi = window_key(&k, (o.windows as i64) * WINDOW_MS);
        found += st.range(Bound::Included(&lo), Bound::Included(&hi))?.len();
        p.tick(i + 1);
    }
    row.range = rate(o.ranges, t.elapsed());
    eprintln!(
        "  {name} range: {:.1} windows per key",
        found as f64 / o.ranges.max(1) as f64
    );

    // 4. Full scan.
    let t = Instant::now();
    let all = st.range(Bound::Unbounded, Bound::Unbounded)?;
    row.scan = rate(all.len() as u64, t.elapsed());
    row.entries = all.len();
    drop(all);
    drop(st);

    // 5. Restore into a fresh store.
    let rdir = dir.join("restore");
    let mut kv = make(&rdir, cache)?.open(APP, STORE, 0)?;
    let p = Progress::new(format!("{name} restore"), log.len() as u64);
    let end = log.len() as i64;
    let t = Instant::now();
    let mut done = 0u64;
    let chunks = log.chunks(RESTORE_BATCH).count();
    for (i, batch) in log.chunks(RESTORE_BATCH).enumerate() {
        let cp = (i + 1 == chunks).then_some(end);
        kv.apply(batch, cp)?;
        let before = done;
        done += batch.len() as u64;
        if done / p.step != before / p.step {
            p.tick(done / p.step * p.step);
        }
    }
    row.restore = rate(log.len() as u64, t.elapsed());
    drop(kv);
    if on_disk {
        row.disk_after_restore = Some(dir_size(&rdir));
        // 6. Reopen (recovery).
        let t = Instant::now();
        let kv = make(&rdir, cache)?.open(APP, STORE, 0)?;
        let cp = kv.checkpoint();
        row.reopen_ms = Some(t.elapsed().as_secs_f64() * 1e3);
        if cp != Some(end) {
            eprintln!("  {name}: WARNING checkpoint after reopen is {cp:?}, expected {end}");
        }
    }
    supplier_drop_barrier();
    Ok(row)
}

/// Gives background threads of a dropped store a moment to finish, so they
/// do not eat into the next candidate's numbers.
fn supplier_drop_barrier() {
    std::thread::sleep(Duration::from_millis(500));
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.0}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn fmt_mib(b: Option<u64>) -> String {
    b.map_or("-".to_string(), |b| {
        format!("{:.1}", b as f64 / (1 << 20) as f64)
    })
}

fn main() {
    let o = parse_opts();
    let root = match &o.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("runnel-store-bench-{}", std::process::id())),
    };
    if let Err(e) = std::fs::create_dir_all(&root) {
        eprintln!("cannot create {}: {e}", root.display());
        std::process::exit(1);
    }
    #[cfg_attr(not(feature = "fjall"), allow(unused_mut))]
    let mut candidates: Vec<(&str, MakeSupplier)> = vec![
        (
            "mem",
            Box::new(|_: &Path, _: u64| Ok(Arc::new(InMemoryStores) as Arc<dyn StoreSupplier>)),
        ),
        (
            "redb",
            Box::new(|d: &Path, c: u64| {
                Ok(Arc::new(DiskStores::new(d).cache_size(c as usize)) as Arc<dyn StoreSupplier>)
            }),
        ),
        (
            "redb-sync",
            Box::new(|d: &Path, c: u64| {
                Ok(Arc::new(
                    DiskStores::new(d)
                        .cache_size(c as usize)
                        .durable_interval(Duration::ZERO),
                ) as Arc<dyn StoreSupplier>)
            }),
        ),
    ];
    #[cfg(feature = "fjall")]
    {
        candidates.push((
            "fjall",
            Box::new(|d: &Path, c: u64| {
                Ok(Arc::new(fjall_kv::FjallStores::new(d, c)) as Arc<dyn StoreSupplier>)
            }),
        ));
        candidates.push((
            "fjall-8m",
            Box::new(|d: &Path, c: u64| {
                Ok(Arc::new(fjall_kv::FjallStores::new(d, c).memtable(8 << 20))
                    as Arc<dyn StoreSupplier>)
            }),
        ));
    }
    #[cfg(not(feature = "fjall"))]
    eprintln!("(fjall candidates skipped: build with `--features fjall` to include them)");
    eprintln!("options: {o:?}");
    eprintln!("generating {} changelog records ...", o.restore);
    let log = changelog(&o, o.restore);
    let mut rows: Vec<Row> = Vec::new();
    for round in 0..o.rounds {
        // Alternate the order so no candidate always runs first.
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (name, make) = &candidates[i];
            if let Some(only) = &o.only {
                if !only.iter().any(|n| n == name) {
                    continue;
                }
            }
            eprintln!("== {name} (round {})", round + 1);
            let rdir = root.join(format!("round{round}"));
            match run(&o, name, make, &rdir, &log) {
                Ok(r) => match rows.iter_mut().find(|x| x.name == r.name) {
                    Some(best) => best.merge_best(r),
                    None => rows.push(r),
                },
                Err(e) => eprintln!("{name} failed: {e}"),
            }
            let _ = std::fs::remove_dir_all(rdir.join(name));
        }
    }
    rows.sort_by_key(|r| {
        candidates
            .iter()
            .position(|(n, _)| *n == r.name)
            .unwrap_or(usize::MAX)
    });
    if o.dir.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "store_bench: best of {} round(s); load average at end: {}",
        o.rounds,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "store_bench: keys={} ops={} windows={} commit every {} updates, reads={} ranges={} \
         restore={} records in batches of {RESTORE_BATCH}, cache {} MiB",
        o.keys, o.ops, o.windows, o.commit, o.reads, o.ranges, o.restore, o.cache_mb
    );
    println!(
        "| store | update (RMW/s) | get/s | range 1 key/s | full scan (entries/s) | restore (records/s) | reopen (ms) | entries | disk after update (MiB) | disk after restore (MiB) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            fmt_rate(r.update),
            fmt_rate(r.get),
            fmt_rate(r.range),
            fmt_rate(r.scan),
            fmt_rate(r.restore),
            r.reopen_ms.map_or("-".to_string(), |m| format!("{m:.0}")),
            r.entries,
            fmt_mib(r.disk_after_update),
            fmt_mib(r.disk_after_restore),
        );
    }
}

/// Candidate: fjall (LSM tree), one database per application directory,
/// one keyspace per (store, partition), checkpoints in a meta keyspace.
/// Writes are batches flushed to the OS (no fsync), like `DiskStores`.
#[cfg(feature = "fjall")]
mod fjall_kv {
    use super::*;
    use runnel_streams::state::KvBytes;
    use std::sync::Mutex;

    pub struct FjallStores {
        dir: PathBuf,
        cache: u64,
        memtable: Option<u64>,
        dbs: Mutex<HashMap<String, fjall::Database>>,
    }

    impl FjallStores {
        pub fn new(dir: &Path, cache: u64) -> Self {
            FjallStores {
                dir: dir.to_path_buf(),
                cache,
                memtable: None,
                dbs: Mutex::new(HashMap::new()),
            }
        }
        pub fn memtable(mut self, bytes: u64) -> Self {
            self.memtable = Some(bytes);
            self
        }
    }

    fn err(store: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Storage {
            store: store.to_string(),
            message: e.to_string(),
        }
    }

    impl StoreSupplier for FjallStores {
        fn open(
            &self,
            app_id: &str,
            store: &str,
            partition: i32,
        ) -> Result<Box<dyn KvBytes>, StoreError> {
            let mut dbs = self.dbs.lock().unwrap_or_else(|e| e.into_inner());
            let db = match dbs.get(app_id) {
                Some(db) => db.clone(),
                None => {
                    let db = fjall::Database::builder(self.dir.join(app_id))
                        .cache_size(self.cache)
                        .open()
                        .map_err(|e| err(store, e))?;
                    dbs.insert(app_id.to_string(), db.clone());
                    db
                }
            };
            let name = format!("{store}#{partition}");
            let memtable = self.memtable;
            let data = db
                .keyspace(&name, || {
                    let o = fjall::KeyspaceCreateOptions::default();
                    match memtable {
                        Some(m) => o.max_memtable_size(m),
                        None => o,
                    }
                })
                .map_err(|e| err(store, e))?;
            let meta = db
                .keyspace("__checkpoints", fjall::KeyspaceCreateOptions::default)
                .map_err(|e| err(store, e))?;
            let checkpoint = meta
                .get(name.as_bytes())
                .map_err(|e| err(store, e))?
                .and_then(|v| <[u8; 8]>::try_from(&v[..]).ok())
                .map(i64::from_be_bytes);
            Ok(Box::new(FjallKv {
                db,
                data,
                meta,
                name,
                store: store.to_string(),
                checkpoint,
            }))
        }
    }

    pub struct FjallKv {
        db: fjall::Database,
        data: fjall::Keyspace,
        meta: fjall::Keyspace,
        name: String,
        store: String,
        checkpoint: Option<i64>,
    }

    impl KvBytes for FjallKv {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self
                .data
                .get(key)
                .map_err(|e| err(&self.store, e))?
                .map(|v| v.to_vec()))
        }
        fn range(
            &self,
            from: Bound<&[u8]>,
            to: Bound<&[u8]>,
        ) -> Result<runnel_streams::state::Entries, StoreError> {
            let mut out = Vec::new();
            for g in self.data.range::<&[u8], _>((from, to)) {
                let (k, v) = g.into_inner().map_err(|e| err(&self.store, e))?;
                out.push((k.to_vec(), v.to_vec()));
            }
            Ok(out)
        }
        fn apply(
            &mut self,
            writes: &[(Vec<u8>, Option<Vec<u8>>)],
            checkpoint: Option<i64>,
        ) -> Result<(), StoreError> {
            let mut b = self.db.batch();
            for (k, v) in writes {
                match v {
                    Some(v) => b.insert(&self.data, k.as_slice(), v.as_slice()),
                    None => b.remove(&self.data, k.as_slice()),
                }
            }
            if let Some(c) = checkpoint {
                b.insert(&self.meta, self.name.as_bytes(), c.to_be_bytes());
            }
            b.commit().map_err(|e| err(&self.store, e))?;
            if checkpoint.is_some() {
                self.checkpoint = checkpoint;
            }
            Ok(())
        }
        fn checkpoint(&self) -> Option<i64> {
            self.checkpoint
        }
        fn clear(&mut self) -> Result<(), StoreError> {
            self.meta
                .remove(self.name.as_bytes())
                .map_err(|e| err(&self.store, e))?;
            self.checkpoint = None;
            self.data.clear().map_err(|e| err(&self.store, e))
        }
        fn len(&self) -> usize {
            self.data.approximate_len()
        }
    }
}
