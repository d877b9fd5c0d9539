//! Interactive queries (Kafka Streams' "IQ"): read-only typed views of the
//! state stores this instance hosts, and which instance hosts a key.
//!
//! [`Streams::queries`] returns a [`Queries`] handle. The handle is `Clone +
//! Send + Sync` and meant to be used from other threads (an HTTP server, a
//! gRPC service) while the [`Streams`] instance runs its processing loop on
//! its own thread:
//!
//! ```ignore
//! let q = streams.queries();
//! std::thread::spawn(move || {
//!     let counts = q.kv("counts", StringSerde, I64Serde)?;
//!     match counts.get(&"alice".to_string()) {
//!         Ok(Some(n)) => println!("alice: {n}"),
//!         Ok(None) => println!("no such key"),
//!         Err(QueryError::NotLocal { partition, .. }) => {
//!             // Ask the instance that hosts it.
//!             let m = q.metadata_for_key("counts", &"alice".to_string(), &StringSerde);
//!             println!("partition {partition} lives at {:?}", m.and_then(|m| m.active));
//!         }
//!         Err(e) => return Err(e),
//!     }
//!     Ok::<_, QueryError>(())
//! });
//! loop { streams.poll_once()?; }
//! ```
//!
//! # Routing and partitions
//!
//! A store of a sub-topology has one partition per task, as many as the
//! sub-topology's source topics have partitions. A key lives in the
//! partition Kafka's default partitioner picks for its serialized bytes
//! ([`partition_for`]) among that many: this is where the engine writes
//! repartitioned records, and where producers using the default partitioner
//! put input records. (Input produced with another partitioner puts keys
//! elsewhere; point lookups then miss them, scans still find them.)
//!
//! Point lookups ([`ReadOnlyKv::get`], [`ReadOnlyWindow::fetch`],
//! [`ReadOnlySession::fetch_sessions`]) go to the key's partition and fail
//! with [`QueryError::NotLocal`] when this instance does not host it, as
//! opposed to `Ok(None)` / an empty result when it does and the key is
//! absent. Scans (`range`, `all`) cover the partitions hosted here only,
//! merged in order.
//!
//! # Consistency
//!
//! Reads see the stores as the stream thread left them at that moment,
//! **including writes not committed yet** (like Kafka Streams' IQ over
//! stores without caching). Such writes can still be rolled back: a failed
//! commit or a rebalance that takes a partition away rewinds its tasks to
//! their last commit, and a value read earlier may then disappear or change
//! back before being recomputed. Each call locks one store partition at a
//! time, so a scan over several partitions is not one snapshot, and a
//! partition handed to another instance between two calls answers
//! [`QueryError::NotLocal`] on the second.
//!
//! # Membership
//!
//! [`Queries::metadata_for_key`] answers which instance runs the key's task
//! (its `application_server` endpoint, Kafka Streams' `queryMetadataForKey`)
//! from a snapshot of the application's consumer group that the stream
//! thread refreshes (through [`Backend::group_members`]) after each
//! rebalance event and every [`MEMBERSHIP_REFRESH_INTERVAL`], while a query
//! handle exists or an `application_server` is configured. Between
//! refreshes the snapshot may be stale; a lookup sent to the endpoint it
//! names can then answer `NotLocal`, and the caller should retry after a
//! moment. Each refresh is a blocking call of the stream thread (one round
//! trip to the group coordinator with the Kafka backend).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::app::{Streams, Topology};
use crate::backend::{Backend, MemberInfo, TopicPartition};
use crate::record::{Window, Windowed};
use crate::serdes::{partition_for, Serde, SerdeError, SerdeRef};
use crate::session::split_session;
use crate::state::kv::decode_value;
use crate::state::{
    lock, window_key_bytes, window_split, Entries, SharedStore, StoreError, StoreKind,
};

/// How often the stream thread re-reads the group membership between
/// rebalances.
pub const MEMBERSHIP_REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// The stores of all tasks of an instance: (store name, partition).
pub(crate) type Registry = Arc<Mutex<BTreeMap<(String, i32), SharedStore>>>;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The topology has no store of this name.
    #[error("no state store named {0} in this topology")]
    UnknownStore(String),
    /// The store exists but holds another kind of data.
    #[error("state store {store} is a {actual} store and cannot be queried as a {wanted} store")]
    WrongStoreKind {
        store: String,
        wanted: &'static str,
        actual: &'static str,
    },
    /// The partition the key belongs to is not hosted by this instance
    /// (another instance runs it, or no one does during a rebalance); see
    /// [`Queries::metadata_for_key`].
    #[error("partition {partition} of state store {store} is not hosted by this instance")]
    NotLocal { store: String, partition: i32 },
    /// The key serde turned the key into null.
    #[error("the key serializes to null")]
    NullKey,
    /// The key serde cannot encode the key.
    #[error("cannot encode the key: {0}")]
    Unencodable(String),
    /// A window size that is not positive.
    #[error("window size must be positive, not {0} ms")]
    InvalidWindowSize(i64),
    /// A stored key or value that the given serdes cannot decode.
    #[error("state store {store}: undecodable {what}: {message}")]
    Undecodable {
        store: String,
        what: &'static str,
        message: String,
    },
    /// The store's storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a key lives ([`Queries::metadata_for_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMetadata {
    /// The store partition (= task partition) of the key.
    pub partition: i32,
    /// The `application_server` endpoint of the instance running the key's
    /// task: this instance's own when it hosts the partition, else the
    /// endpoint of the group member whose assignment holds the partition in
    /// the last membership snapshot. `None` when no member is known to own
    /// it (during a rebalance, before the first refresh) or the owner
    /// advertises no endpoint.
    pub active: Option<String>,
    /// Whether this instance hosts the partition now: a query here answers.
    pub is_local: bool,
}

/// The application's consumer group as last read by the stream thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// Members and their assignments. This instance's own member carries
    /// the `application_server` of its [`StreamsConfig`](crate::StreamsConfig)
    /// when its backend reports no endpoint.
    pub members: Vec<MemberInfo>,
    /// When `members` was read; `None` before the first successful refresh.
    pub refreshed: Option<SystemTime>,
    /// Why the last refresh failed, if it did (`members` then is from the
    /// refresh before).
    pub error: Option<String>,
}

/// What the query side knows about one store, fixed when the instance is
/// created.
#[derive(Debug, Clone)]
struct StoreInfo {
    kind: StoreKind,
    /// Partition count of the store's sub-topology.
    partitions: i32,
    /// The sub-topology's source topics (resolved names): a member owning
    /// partition `p` of them runs the store's task `p`.
    source_topics: Vec<String>,
    /// A global table's store: every instance holds all of it, under
    /// partition [`GLOBAL_PARTITION`].
    global: bool,
}

/// The registry partition of global tables' stores.
pub const GLOBAL_PARTITION: i32 = -1;

/// State shared by the stream thread and every query handle.
struct Shared {
    registry: Registry,
    stores: HashMap<String, StoreInfo>,
    application_server: Option<String>,
    membership: Mutex<Membership>,
    /// Whether membership snapshots are wanted (a handle was made or an
    /// endpoint is configured).
    wanted: AtomicBool,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn kind_name(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::KeyValue => "key-value",
        StoreKind::Window { .. } => "window",
    }
}

/// The query side of a [`Streams`] instance, owned by it: builds handles
/// and refreshes the membership snapshot from the stream thread.
pub(crate) struct QueryHost {
    shared: Arc<Shared>,
    last_refresh: Option<Instant>,
}

impl QueryHost {
    /// Records the stores of `topology` with their partition counts
    /// (`partitions`: resolved topic → count, holding every source topic).
    pub(crate) fn new(
        topology: &Topology,
        partitions: &HashMap<String, i32>,
        app_id: &str,
        application_server: Option<String>,
        registry: Registry,
    ) -> Self {
        let mut stores = HashMap::new();
        for sub in &topology.subs {
            let source_topics: Vec<String> =
                sub.sources.iter().map(|(t, _)| t.resolve(app_id)).collect();
            let count = source_topics
                .iter()
                .filter_map(|t| partitions.get(t).copied())
                .max()
                .unwrap_or(1);
            for name in &sub.stores {
                let Some(def) = topology.store_defs.get(name) else {
                    continue;
                };
                stores.insert(
                    name.clone(),
                    StoreInfo {
                        kind: def.kind,
                        partitions: count,
                        source_topics: source_topics.clone(),
                        global: false,
                    },
                );
            }
        }
        for (_, name) in &topology.globals {
            stores.insert(
                name.clone(),
                StoreInfo {
                    kind: StoreKind::KeyValue,
                    partitions: 1,
                    source_topics: Vec::new(),
                    global: true,
                },
            );
        }
        let wanted = AtomicBool::new(application_server.is_some());
        QueryHost {
            shared: Arc::new(Shared {
                registry,
                stores,
                application_server,
                membership: Mutex::new(Membership::default()),
                wanted,
            }),
            last_refresh: None,
        }
    }

    /// A new query handle; from now on membership is kept current.
    pub(crate) fn handle(&self) -> Queries {
        self.shared.wanted.store(true, Ordering::Relaxed);
        Queries {
            shared: self.shared.clone(),
        }
    }

    /// Re-reads the group membership when wanted and either `rebalanced`
    /// (an assignment changed in this poll) or the last read is older than
    /// [`MEMBERSHIP_REFRESH_INTERVAL`]. Failures are logged and kept in the
    /// snapshot; they never stop the instance.
    pub(crate) fn refresh(&mut self, backend: &mut dyn Backend, rebalanced: bool) {
        if !self.shared.wanted.load(Ordering::Relaxed) {
            return;
        }
        let due = rebalanced
            || self
                .last_refresh
                .is_none_or(|t| t.elapsed() >= MEMBERSHIP_REFRESH_INTERVAL);
        if !due {
            return;
        }
        self.last_refresh = Some(Instant::now());
        let result = backend.group_members();
        let own = self.shared.application_server.as_deref();
        let mut m = guard(&self.shared.membership);
        match result {
            Ok(mut members) => {
                for member in members.iter_mut().filter(|m| m.is_self) {
                    match (&member.endpoint, own) {
                        (None, Some(own)) => member.endpoint = Some(own.to_string()),
                        (Some(theirs), Some(own)) if theirs != own => {
                            tracing::warn!(
                                backend = %theirs,
                                config = %own,
                                "the backend advertises another application_server than the streams config"
                            );
                        }
                        _ => {}
                    }
                }
                members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
                m.members = members;
                m.refreshed = Some(SystemTime::now());
                m.error = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the group membership for interactive queries");
                m.error = Some(e.to_string());
            }
        }
    }
}

impl Streams {
    /// A handle for interactive queries against this instance's stores,
    /// usable from other threads while this instance runs. See the
    /// [`query`](crate::query) module.
    pub fn queries(&self) -> Queries {
        self.query.handle()
    }
}

/// Interactive queries against one [`Streams`] instance: typed read-only
/// store views and key metadata. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Queries {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Queries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queries")
            .field("application_server", &self.shared.application_server)
            .finish_non_exhaustive()
    }
}

impl Queries {
    /// This instance's endpoint (`StreamsConfig::application_server`).
    pub fn application_server(&self) -> Option<&str> {
        self.shared.application_server.as_deref()
    }

    /// Names of the topology's stores, sorted.
    pub fn store_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.shared.stores.keys().cloned().collect();
        names.sort();
        names
    }

    /// Partition count of `store`; `None` for an unknown store.
    pub fn partition_count(&self, store: &str) -> Option<i32> {
        self.shared.stores.get(store).map(|s| s.partitions)
    }

    /// The partitions of `store` this instance hosts now, ascending
    /// ([`GLOBAL_PARTITION`] for a global table).
    pub fn local_partitions(&self, store: &str) -> Vec<i32> {
        local_stores(&self.shared.registry, store)
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    /// The latest membership snapshot.
    pub fn membership(&self) -> Membership {
        guard(&self.shared.membership).clone()
    }

    fn view<K: 'static, V: 'static>(
        &self,
        store: &str,
        wanted: &'static str,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
    ) -> Result<View<K, V>, QueryError> {
        let info = self
            .shared
            .stores
            .get(store)
            .ok_or_else(|| QueryError::UnknownStore(store.to_string()))?;
        let actual = kind_name(info.kind);
        let ok = match info.kind {
            StoreKind::KeyValue => wanted == "key-value",
            StoreKind::Window { .. } => wanted == "window" || wanted == "session",
        };
        if !ok {
            return Err(QueryError::WrongStoreKind {
                store: store.to_string(),
                wanted,
                actual,
            });
        }
        Ok(View {
            shared: self.shared.clone(),
            store: store.to_string(),
            partitions: info.partitions,
            global: info.global,
            keys,
            values,
        })
    }

    /// A key-value store (tables, `count`, `aggregate`, `reduce`).
    pub fn kv<K: 'static, V: 'static>(
        &self,
        store: &str,
        keys: impl Serde<K>,
        values: impl Serde<V>,
    ) -> Result<ReadOnlyKv<K, V>, QueryError> {
        let view = self.view(store, "key-value", Arc::new(keys), Arc::new(values))?;
        Ok(ReadOnlyKv { view })
    }

    /// A time-window store (windowed aggregations) with windows of
    /// `window_size_ms`.
    pub fn window<K: 'static, V: 'static>(
        &self,
        store: &str,
        keys: impl Serde<K>,
        values: impl Serde<V>,
        window_size_ms: i64,
    ) -> Result<ReadOnlyWindow<K, V>, QueryError> {
        if window_size_ms <= 0 {
            return Err(QueryError::InvalidWindowSize(window_size_ms));
        }
        let view = self.view(store, "window", Arc::new(keys), Arc::new(values))?;
        Ok(ReadOnlyWindow {
            view,
            size_ms: window_size_ms,
        })
    }

    /// A session store (session-windowed aggregations).
    pub fn session<K: 'static, V: 'static>(
        &self,
        store: &str,
        keys: impl Serde<K>,
        values: impl Serde<V>,
    ) -> Result<ReadOnlySession<K, V>, QueryError> {
        let view = self.view(store, "session", Arc::new(keys), Arc::new(values))?;
        Ok(ReadOnlySession { view })
    }

    /// Where `key` of `store` lives; `None` for an unknown store or a key
    /// that serializes to null.
    pub fn metadata_for_key<K: 'static>(
        &self,
        store: &str,
        key: &K,
        keys: &dyn Serde<K>,
    ) -> Option<KeyMetadata> {
        self.metadata_for_key_bytes(store, &keys.serialize(key).ok()??)
    }

    /// Where the key with serialized bytes `key` of `store` lives; `None`
    /// for an unknown store. Global tables' keys are in partition
    /// [`GLOBAL_PARTITION`] of every instance.
    pub fn metadata_for_key_bytes(&self, store: &str, key: &[u8]) -> Option<KeyMetadata> {
        let info = self.shared.stores.get(store)?;
        let partition = if info.global {
            GLOBAL_PARTITION
        } else {
            partition_for(key, info.partitions)
        };
        Some(self.metadata_for_partition(store, info, partition))
    }

    fn metadata_for_partition(&self, store: &str, info: &StoreInfo, p: i32) -> KeyMetadata {
        let is_local = guard(&self.shared.registry).contains_key(&(store.to_string(), p));
        let owner = |members: &[MemberInfo]| {
            members
                .iter()
                .find(|m| {
                    m.partitions.iter().any(|tp: &TopicPartition| {
                        tp.partition == p && info.source_topics.contains(&tp.topic)
                    })
                })
                .and_then(|m| m.endpoint.clone())
        };
        let active = if is_local {
            self.shared
                .application_server
                .clone()
                .or_else(|| owner(&guard(&self.shared.membership).members))
        } else {
            owner(&guard(&self.shared.membership).members)
        };
        KeyMetadata {
            partition: p,
            active,
            is_local,
        }
    }
}

/// The hosted partitions of `store`, ascending.
fn local_stores(registry: &Registry, store: &str) -> Vec<(i32, SharedStore)> {
    let lo = (store.to_string(), i32::MIN);
    let hi = (store.to_string(), i32::MAX);
    guard(registry)
        .range(lo..=hi)
        .map(|((_, p), s)| (*p, s.clone()))
        .collect()
}

/// What every typed view shares: the store, its partitioning and serdes.
struct View<K, V> {
    shared: Arc<Shared>,
    store: String,
    partitions: i32,
    global: bool,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
}

impl<K, V> Clone for View<K, V> {
    fn clone(&self) -> Self {
        View {
            shared: self.shared.clone(),
            store: self.store.clone(),
            partitions: self.partitions,
            global: self.global,
            keys: self.keys.clone(),
            values: self.values.clone(),
        }
    }
}

impl<K: 'static, V: 'static> View<K, V> {
    fn key_bytes(&self, key: &K) -> Result<Vec<u8>, QueryError> {
        self.keys
            .serialize(key)
            .map_err(|e| QueryError::Unencodable(e.to_string()))?
            .ok_or(QueryError::NullKey)
    }

    fn undecodable(&self, what: &'static str, message: impl ToString) -> QueryError {
        QueryError::Undecodable {
            store: self.store.clone(),
            what,
            message: message.to_string(),
        }
    }

    fn key(&self, b: &[u8]) -> Result<K, QueryError> {
        self.keys
            .deserialize(Some(b))
            .map_err(|e: SerdeError| self.undecodable("key", e))
    }

    /// Decodes a stored `[ts][value]`.
    fn value(&self, raw: &[u8]) -> Result<(V, i64), QueryError> {
        let (ts, v) = decode_value(raw)
            .ok_or_else(|| self.undecodable("value", "shorter than its 8-byte timestamp"))?;
        let v = self
            .values
            .deserialize(Some(v))
            .map_err(|e| self.undecodable("value", e))?;
        Ok((v, ts))
    }

    /// The store partition holding serialized key `kb`, if hosted here.
    fn store_of(&self, kb: &[u8]) -> Result<SharedStore, QueryError> {
        let partition = if self.global {
            GLOBAL_PARTITION
        } else {
            partition_for(kb, self.partitions)
        };
        guard(&self.shared.registry)
            .get(&(self.store.clone(), partition))
            .cloned()
            .ok_or_else(|| QueryError::NotLocal {
                store: self.store.clone(),
                partition,
            })
    }

    /// Reads a key with `read`: in its partition first, then — when not
    /// found — in the other hosted partitions, because producers that do not
    /// partition by murmur2 (librdkafka's default `consistent_random`, for
    /// one) put keys elsewhere and a stream grouped by its own key keeps
    /// their partition. [`QueryError::NotLocal`] only when the key's
    /// partition is not hosted and no hosted partition has it.
    fn lookup<T>(
        &self,
        kb: &[u8],
        read: impl Fn(&SharedStore) -> Result<Option<T>, QueryError>,
    ) -> Result<Option<T>, QueryError> {
        let home = self.store_of(kb);
        if let Ok(s) = &home {
            if let Some(found) = read(s)? {
                return Ok(Some(found));
            }
        }
        for (_, s) in local_stores(&self.shared.registry, &self.store) {
            if home.as_ref().is_ok_and(|h| Arc::ptr_eq(h, &s)) {
                continue;
            }
            if let Some(found) = read(&s)? {
                return Ok(Some(found));
            }
        }
        home.map(|_| None)
    }

    /// A key's entries in `[lo, hi]`, found as [`View::lookup`] finds a
    /// key (its partition first, then the other hosted ones).
    fn lookup_range(&self, kb: &[u8], lo: &[u8], hi: &[u8]) -> Result<Entries, QueryError> {
        Ok(self
            .lookup(kb, |s| {
                let r = lock(s).range(Bound::Included(lo), Bound::Included(hi))?;
                Ok((!r.is_empty()).then_some(r))
            })?
            .unwrap_or_default())
    }

    /// Entries in the range from every hosted partition, unordered.
    fn scan(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Entries, QueryError> {
        let mut rows = Vec::new();
        for (_, s) in local_stores(&self.shared.registry, &self.store) {
            rows.extend(lock(&s).range(from, to)?);
        }
        Ok(rows)
    }

    fn metadata(&self, kb: &[u8]) -> Option<KeyMetadata> {
        Queries {
            shared: self.shared.clone(),
        }
        .metadata_for_key_bytes(&self.store, kb)
    }
}

/// A read-only key-value store over the partitions this instance hosts.
/// See the [module docs](self) for routing and consistency.
pub struct ReadOnlyKv<K, V> {
    view: View<K, V>,
}

impl<K, V> Clone for ReadOnlyKv<K, V> {
    fn clone(&self) -> Self {
        ReadOnlyKv {
            view: self.view.clone(),
        }
    }
}

impl<K: 'static, V: 'static> ReadOnlyKv<K, V> {
    /// The value of `key`: `Ok(None)` when its partition is hosted here and
    /// the key is absent, [`QueryError::NotLocal`] when the partition is not
    /// hosted here.
    pub fn get(&self, key: &K) -> Result<Option<V>, QueryError> {
        Ok(self.get_with_timestamp(key)?.map(|(v, _)| v))
    }

    /// The value of `key` and the timestamp of the record that wrote it.
    pub fn get_with_timestamp(&self, key: &K) -> Result<Option<(V, i64)>, QueryError> {
        let kb = self.view.key_bytes(key)?;
        let raw = self.view.lookup(&kb, |s| Ok(lock(s).get(&kb)?))?;
        raw.map(|b| self.view.value(&b)).transpose()
    }

    /// Entries whose serialized keys lie in `[from, to]`, from every hosted
    /// partition, in serialized-key order (byte order: for the big-endian
    /// integer serdes, negative numbers sort after positive ones).
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>, QueryError> {
        let (f, t) = (self.view.key_bytes(from)?, self.view.key_bytes(to)?);
        self.collect(Bound::Included(&f), Bound::Included(&t))
    }

    /// Every entry of every hosted partition, in serialized-key order.
    pub fn all(&self) -> Result<Vec<(K, V)>, QueryError> {
        self.collect(Bound::Unbounded, Bound::Unbounded)
    }

    /// [`all`](Self::all), each entry with the timestamp of the record
    /// that wrote it.
    pub fn all_with_timestamps(&self) -> Result<Vec<(K, V, i64)>, QueryError> {
        self.collect_timestamped(Bound::Unbounded, Bound::Unbounded)
    }

    fn collect(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Vec<(K, V)>, QueryError> {
        Ok(self
            .collect_timestamped(from, to)?
            .into_iter()
            .map(|(k, v, _)| (k, v))
            .collect())
    }

    fn collect_timestamped(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<Vec<(K, V, i64)>, QueryError> {
        let mut rows = self.view.scan(from, to)?;
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.into_iter()
            .map(|(k, v)| {
                let (v, ts) = self.view.value(&v)?;
                Ok((self.view.key(&k)?, v, ts))
            })
            .collect()
    }

    /// Approximate number of entries in the hosted partitions.
    pub fn approximate_num_entries(&self) -> usize {
        local_stores(&self.view.shared.registry, &self.view.store)
            .iter()
            .map(|(_, s)| lock(s).approximate_len())
            .sum()
    }

    /// Where `key` lives ([`Queries::metadata_for_key`]); `None` when the
    /// key serializes to null.
    pub fn metadata_for_key(&self, key: &K) -> Option<KeyMetadata> {
        self.view.metadata(&self.view.key_bytes(key).ok()?)
    }
}

/// A read-only time-window store over the partitions this instance hosts.
/// Its keys are `[len: u32][key][start]`; other entries (operator
/// metadata, join buffers with sequence suffixes) are skipped.
pub struct ReadOnlyWindow<K, V> {
    view: View<K, V>,
    size_ms: i64,
}

impl<K, V> Clone for ReadOnlyWindow<K, V> {
    fn clone(&self) -> Self {
        ReadOnlyWindow {
            view: self.view.clone(),
            size_ms: self.size_ms,
        }
    }
}

/// (key bytes, start) of a time-window key without any suffix.
fn split_window_exact(b: &[u8]) -> Option<(&[u8], i64)> {
    let (k, start) = window_split(b)?;
    (b.len() == 4 + k.len() + 8).then_some((k, start))
}

impl<K: 'static, V: 'static> ReadOnlyWindow<K, V> {
    fn window(&self, start: i64) -> Window {
        Window::new(start, start.saturating_add(self.size_ms))
    }

    /// The windows of `key` starting in `[from, to]`, oldest first;
    /// [`QueryError::NotLocal`] when the key's partition is not hosted here.
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(Window, V)>, QueryError> {
        Ok(self
            .fetch_with_timestamps(key, from, to)?
            .into_iter()
            .map(|(w, v, _)| (w, v))
            .collect())
    }

    /// [`fetch`](Self::fetch), each window with the timestamp of the
    /// record that last updated it.
    pub fn fetch_with_timestamps(
        &self,
        key: &K,
        from: i64,
        to: i64,
    ) -> Result<Vec<(Window, V, i64)>, QueryError> {
        let kb = self.view.key_bytes(key)?;
        let lo = window_key_bytes(&kb, from);
        let hi = window_key_bytes(&kb, to);
        let rows = self.view.lookup_range(&kb, &lo, &hi)?;
        rows.into_iter()
            .filter_map(|(k, v)| {
                let (_, start) = split_window_exact(&k)?;
                Some((start, v))
            })
            .map(|(start, v)| {
                let (v, ts) = self.view.value(&v)?;
                Ok((self.window(start), v, ts))
            })
            .collect()
    }

    /// The aggregate of `key` in the window starting at `start`.
    pub fn fetch_window(&self, key: &K, start: i64) -> Result<Option<V>, QueryError> {
        let kb = self.view.key_bytes(key)?;
        let store = self.view.store_of(&kb)?;
        let raw = lock(&store).get(&window_key_bytes(&kb, start))?;
        Ok(raw
            .map(|b| self.view.value(&b))
            .transpose()?
            .map(|(v, _)| v))
    }

    /// Every window of every key in the hosted partitions, ordered by
    /// serialized key, then window start.
    pub fn all(&self) -> Result<Vec<(Windowed<K>, V)>, QueryError> {
        Ok(without_timestamps(self.all_with_timestamps()?))
    }

    /// [`all`](Self::all), each window with the timestamp of the record
    /// that last updated it.
    pub fn all_with_timestamps(&self) -> Result<Vec<(Windowed<K>, V, i64)>, QueryError> {
        let rows = self.view.scan(Bound::Unbounded, Bound::Unbounded)?;
        let mut parsed: Vec<(Vec<u8>, i64, Vec<u8>)> = rows
            .into_iter()
            .filter_map(|(k, v)| {
                let (kb, start) = split_window_exact(&k)?;
                Some((kb.to_vec(), start, v))
            })
            .collect();
        parsed.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        parsed
            .into_iter()
            .map(|(kb, start, v)| {
                let (v, ts) = self.view.value(&v)?;
                Ok((
                    Windowed::new(self.view.key(&kb)?, self.window(start)),
                    v,
                    ts,
                ))
            })
            .collect()
    }

    /// Where `key` lives ([`Queries::metadata_for_key`]).
    pub fn metadata_for_key(&self, key: &K) -> Option<KeyMetadata> {
        self.view.metadata(&self.view.key_bytes(key).ok()?)
    }
}

/// A read-only session store over the partitions this instance hosts.
/// Sessions are stored under `[len: u32][key][end][start]`; windows are
/// `[start, end]`, both inclusive.
pub struct ReadOnlySession<K, V> {
    view: View<K, V>,
}

impl<K, V> Clone for ReadOnlySession<K, V> {
    fn clone(&self) -> Self {
        ReadOnlySession {
            view: self.view.clone(),
        }
    }
}

impl<K: 'static, V: 'static> ReadOnlySession<K, V> {
    /// The sessions of `key`, ordered by end, then start;
    /// [`QueryError::NotLocal`] when the key's partition is not hosted here.
    pub fn fetch_sessions(&self, key: &K) -> Result<Vec<(Window, V)>, QueryError> {
        let kb = self.view.key_bytes(key)?;
        let lo = window_key_bytes(&kb, i64::MIN);
        let mut hi = window_key_bytes(&kb, i64::MAX);
        hi.extend_from_slice(&[0xff; 8]);
        let rows = self.view.lookup_range(&kb, &lo, &hi)?;
        rows.into_iter()
            .filter_map(|(k, v)| {
                let (_, start, end) = split_session(&k)?;
                Some((Window::new(start, end), v))
            })
            .map(|(w, v)| Ok((w, self.view.value(&v)?.0)))
            .collect()
    }

    /// Every session of every key in the hosted partitions, ordered by
    /// serialized key, then end, then start.
    pub fn all(&self) -> Result<Vec<(Windowed<K>, V)>, QueryError> {
        Ok(without_timestamps(self.all_with_timestamps()?))
    }

    /// [`all`](Self::all), each session with the timestamp of the record
    /// that last updated it.
    pub fn all_with_timestamps(&self) -> Result<Vec<(Windowed<K>, V, i64)>, QueryError> {
        let rows = self.view.scan(Bound::Unbounded, Bound::Unbounded)?;
        let mut parsed: Vec<(Vec<u8>, i64, i64, Vec<u8>)> = rows
            .into_iter()
            .filter_map(|(k, v)| {
                let (kb, start, end) = split_session(&k)?;
                Some((kb.to_vec(), end, start, v))
            })
            .collect();
        parsed.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
        parsed
            .into_iter()
            .map(|(kb, end, start, v)| {
                let (v, ts) = self.view.value(&v)?;
                Ok((
                    Windowed::new(self.view.key(&kb)?, Window::new(start, end)),
                    v,
                    ts,
                ))
            })
            .collect()
    }

    /// Where `key` lives ([`Queries::metadata_for_key`]).
    pub fn metadata_for_key(&self, key: &K) -> Option<KeyMetadata> {
        self.view.metadata(&self.view.key_bytes(key).ok()?)
    }
}

/// Entries without their timestamps.
fn without_timestamps<K, V>(rows: Vec<(K, V, i64)>) -> Vec<(K, V)> {
    rows.into_iter().map(|(k, v, _)| (k, v)).collect()
}

// ---------------------------------------------------------------------------
// Group membership on the wire: endpoints in client ids, consumer-protocol
// assignments.

/// The query endpoint a group member advertises in its client id, by the
/// Kafka backend's convention `<application>-<instance>-consumer@<host:port>`:
/// the text after the last `@`, if any and not empty.
pub fn endpoint_of_client_id(client_id: &str) -> Option<&str> {
    client_id
        .rsplit_once('@')
        .map(|(_, ep)| ep)
        .filter(|ep| !ep.is_empty())
}

/// A decoded Kafka consumer-protocol assignment (what a group member's
/// `member_assignment` bytes hold under protocol type `consumer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerAssignment {
    pub version: i16,
    /// Assigned partitions, in the order given.
    pub partitions: Vec<TopicPartition>,
    /// The assignor's user data (`None` when null).
    pub user_data: Option<Vec<u8>>,
}

/// Malformed consumer-protocol assignment bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    #[error("assignment truncated at byte {at}: {what} needs {need} bytes, {left} left")]
    Truncated {
        at: usize,
        what: &'static str,
        need: usize,
        left: usize,
    },
    #[error("assignment has an invalid {what} {value} at byte {at}")]
    Invalid {
        at: usize,
        what: &'static str,
        value: i64,
    },
    #[error("assignment topic name at byte {at} is not UTF-8")]
    NotUtf8 { at: usize },
}

/// A bounds-checked big-endian reader.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], AssignmentError> {
        let left = self.b.len() - self.at;
        if n > left {
            return Err(AssignmentError::Truncated {
                at: self.at,
                what,
                need: n,
                left,
            });
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, AssignmentError> {
        let s = self.take(2, what)?;
        Ok(i16::from_be_bytes([s[0], s[1]]))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, AssignmentError> {
        let s = self.take(4, what)?;
        Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// An array length (`-1`, null, reads as empty) whose elements take at
    /// least `min_size` bytes each: a count the remaining bytes cannot hold
    /// is refused before anything is allocated for it.
    fn count(&mut self, what: &'static str, min_size: usize) -> Result<usize, AssignmentError> {
        let at = self.at;
        let n = self.i32(what)?;
        if n == -1 {
            return Ok(0);
        }
        let n = usize::try_from(n).map_err(|_| AssignmentError::Invalid {
            at,
            what,
            value: i64::from(n),
        })?;
        let left = self.b.len() - self.at;
        let need = n.saturating_mul(min_size);
        if need > left {
            return Err(AssignmentError::Truncated {
                at: self.at,
                what,
                need,
                left,
            });
        }
        Ok(n)
    }
}

/// Decodes consumer-protocol assignment bytes: `version: i16`, topics
/// `[name: string, partitions: [i32]]`, `user_data: bytes` (nullable).
/// Every version so far has this layout; bytes after it (fields of a future
/// version) are ignored. Malformed input is an error, never a panic.
pub fn decode_consumer_assignment(b: &[u8]) -> Result<ConsumerAssignment, AssignmentError> {
    let mut r = Reader { b, at: 0 };
    let at = r.at;
    let version = r.i16("version")?;
    if version < 0 {
        return Err(AssignmentError::Invalid {
            at,
            what: "version",
            value: i64::from(version),
        });
    }
    let mut partitions = Vec::new();
    // A topic takes at least a name length and a partition count.
    for _ in 0..r.count("topic count", 6)? {
        let at = r.at;
        let len = r.i16("topic name length")?;
        let len = usize::try_from(len).map_err(|_| AssignmentError::Invalid {
            at,
            what: "topic name length",
            value: i64::from(len),
        })?;
        let name_at = r.at;
        let name = std::str::from_utf8(r.take(len, "topic name")?)
            .map_err(|_| AssignmentError::NotUtf8 { at: name_at })?;
        for _ in 0..r.count("partition count", 4)? {
            let at = r.at;
            let p = r.i32("partition")?;
            if p < 0 {
                return Err(AssignmentError::Invalid {
                    at,
                    what: "partition",
                    value: i64::from(p),
                });
            }
            partitions.push(TopicPartition::new(name, p));
        }
    }
    let at = r.at;
    let len = r.i32("user data length")?;
    let user_data = match len {
        -1 => None,
        n => {
            let n = usize::try_from(n).map_err(|_| AssignmentError::Invalid {
                at,
                what: "user data length",
                value: i64::from(n),
            })?;
            Some(r.take(n, "user data")?.to_vec())
        }
    };
    Ok(ConsumerAssignment {
        version,
        partitions,
        user_data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serdes::{I64Serde, StringSerde};
    use crate::state::kv::encode_value;
    use crate::state::{MemKv, StateStore};

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_and_views_are_send_and_sync() {
        assert_send_sync::<Queries>();
        assert_send_sync::<ReadOnlyKv<String, i64>>();
        assert_send_sync::<ReadOnlyWindow<String, i64>>();
        assert_send_sync::<ReadOnlySession<String, i64>>();
    }

    /// Encodes an assignment the way Kafka clients do.
    fn encode(version: i16, topics: &[(&str, &[i32])], user_data: Option<&[u8]>) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for (name, parts) in topics {
            b.extend_from_slice(&(name.len() as i16).to_be_bytes());
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(&(parts.len() as i32).to_be_bytes());
            for p in *parts {
                b.extend_from_slice(&p.to_be_bytes());
            }
        }
        match user_data {
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(u) => {
                b.extend_from_slice(&(u.len() as i32).to_be_bytes());
                b.extend_from_slice(u);
            }
        }
        b
    }

    #[test]
    fn assignments_decode() {
        let b = encode(1, &[("a", &[0, 2]), ("bb", &[1])], Some(b"xy"));
        let a = decode_consumer_assignment(&b).unwrap();
        assert_eq!(a.version, 1);
        assert_eq!(
            a.partitions,
            vec![
                TopicPartition::new("a", 0),
                TopicPartition::new("a", 2),
                TopicPartition::new("bb", 1)
            ]
        );
        assert_eq!(a.user_data.as_deref(), Some(&b"xy"[..]));
        let empty = decode_consumer_assignment(&encode(0, &[], None)).unwrap();
        assert!(empty.partitions.is_empty() && empty.user_data.is_none());
        // Trailing bytes of a later version are ignored.
        let mut longer = encode(3, &[("t", &[5])], None);
        longer.extend_from_slice(&[0, 0, 0, 7]);
        let a = decode_consumer_assignment(&longer).unwrap();
        assert_eq!(a.partitions, vec![TopicPartition::new("t", 5)]);
    }

    #[test]
    fn truncated_assignments_are_errors() {
        let b = encode(0, &[("topic", &[0, 1, 2]), ("x", &[9])], Some(b"data"));
        for n in 0..b.len() {
            assert!(
                decode_consumer_assignment(&b[..n]).is_err(),
                "prefix of {n} bytes decoded"
            );
        }
        assert!(decode_consumer_assignment(&b).is_ok());
    }

    #[test]
    fn malformed_assignments_are_errors() {
        // Negative version.
        assert!(matches!(
            decode_consumer_assignment(&encode(-2, &[], None)),
            Err(AssignmentError::Invalid {
                what: "version",
                ..
            })
        ));
        // A topic count far beyond the input is refused before allocating.
        let mut b = 0i16.to_be_bytes().to_vec();
        b.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            decode_consumer_assignment(&b),
            Err(AssignmentError::Truncated {
                what: "topic count",
                ..
            })
        ));
        // Negative topic count other than null.
        let mut b = 0i16.to_be_bytes().to_vec();
        b.extend_from_slice(&(-5i32).to_be_bytes());
        assert!(decode_consumer_assignment(&b).is_err());
        // Null topic name.
        let mut b = encode(0, &[("t", &[1])], None);
        b[6..8].copy_from_slice(&(-1i16).to_be_bytes());
        assert!(decode_consumer_assignment(&b).is_err());
        // Negative partition.
        let b = encode(0, &[("t", &[-3])], None);
        assert!(matches!(
            decode_consumer_assignment(&b),
            Err(AssignmentError::Invalid {
                what: "partition",
                ..
            })
        ));
        // Topic name not UTF-8.
        let mut b = encode(0, &[("t", &[1])], None);
        b[8] = 0xff;
        assert!(matches!(
            decode_consumer_assignment(&b),
            Err(AssignmentError::NotUtf8 { .. })
        ));
        // Negative user data length other than null.
        let mut b = encode(0, &[], None);
        let n = b.len();
        b[n - 4..].copy_from_slice(&(-7i32).to_be_bytes());
        assert!(decode_consumer_assignment(&b).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        // A deterministic pseudo-random walk over short inputs.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..200usize {
            for _ in 0..50 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x >> 24) as u8
                    })
                    .collect();
                let _ = decode_consumer_assignment(&bytes);
            }
        }
    }

    #[test]
    fn endpoints_come_from_client_ids() {
        assert_eq!(
            endpoint_of_client_id("app-0-consumer@host:8080"),
            Some("host:8080")
        );
        assert_eq!(endpoint_of_client_id("a@b-0-consumer@h:1"), Some("h:1"));
        assert_eq!(endpoint_of_client_id("app-0-consumer"), None);
        assert_eq!(endpoint_of_client_id("app-0-consumer@"), None);
    }

    fn store(name: &str, kind: StoreKind) -> SharedStore {
        Arc::new(Mutex::new(StateStore::new(
            name.to_string(),
            kind,
            Box::new(MemKv::default()),
            None,
        )))
    }

    /// A handle over stores "kv" (key-value) and "win" (window) with 4
    /// partitions, of which `hosted` are here.
    fn queries(hosted: &[i32]) -> (Queries, Registry) {
        let registry: Registry = Arc::new(Mutex::new(BTreeMap::new()));
        let mut stores = HashMap::new();
        for (name, kind) in [
            ("kv", StoreKind::KeyValue),
            ("win", StoreKind::Window { retention_ms: 100 }),
        ] {
            stores.insert(
                name.to_string(),
                StoreInfo {
                    kind,
                    partitions: 4,
                    source_topics: vec!["in".to_string()],
                    global: false,
                },
            );
            for p in hosted {
                guard(&registry).insert((name.to_string(), *p), store(name, kind));
            }
        }
        let shared = Arc::new(Shared {
            registry: registry.clone(),
            stores,
            application_server: Some("me:1".into()),
            membership: Mutex::new(Membership::default()),
            wanted: AtomicBool::new(true),
        });
        (Queries { shared }, registry)
    }

    fn put(registry: &Registry, store: &str, key: &[u8], value: &[u8], ts: i64) {
        let p = if store == "kv" {
            partition_for(key, 4)
        } else {
            partition_for(window_split(key).map_or(key, |(k, _)| k), 4)
        };
        let s = guard(registry).get(&(store.to_string(), p)).cloned();
        if let Some(s) = s {
            lock(&s).put(key.to_vec(), Some(encode_value(ts, Some(value.to_vec()))));
        }
    }

    /// Keys by the partition they hash to among 4.
    fn keys_by_partition() -> BTreeMap<i32, Vec<String>> {
        let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for i in 0..40 {
            let k = format!("k{i:02}");
            out.entry(partition_for(k.as_bytes(), 4))
                .or_default()
                .push(k);
        }
        out
    }

    #[test]
    fn kv_lookups_route_by_partition_and_scans_merge_in_key_order() {
        let (q, registry) = queries(&[0, 2]);
        let by_p = keys_by_partition();
        let mut expected = Vec::new();
        for (p, keys) in &by_p {
            for (i, k) in keys.iter().enumerate() {
                put(&registry, "kv", k.as_bytes(), &(i as i64).to_be_bytes(), 7);
                if *p == 0 || *p == 2 {
                    expected.push((k.clone(), i as i64));
                }
            }
        }
        expected.sort();
        let kv = q.kv("kv", StringSerde, I64Serde).unwrap();
        let local = &by_p[&0][0];
        assert_eq!(kv.get(local).unwrap(), Some(0));
        assert_eq!(kv.get_with_timestamp(local).unwrap(), Some((0, 7)));
        // Absent, but its partition is hosted here.
        let absent = (0..)
            .map(|i| format!("absent{i}"))
            .find(|k| partition_for(k.as_bytes(), 4) == 2)
            .unwrap();
        assert_eq!(kv.get(&absent).unwrap(), None);
        let remote = &by_p[&1][0];
        assert!(matches!(
            kv.get(remote),
            Err(QueryError::NotLocal { partition: 1, .. })
        ));
        assert_eq!(kv.all().unwrap(), expected);
        let (from, to) = ("k10".to_string(), "k19".to_string());
        let want: Vec<(String, i64)> = expected
            .iter()
            .filter(|(k, _)| *k >= from && *k <= to)
            .cloned()
            .collect();
        assert_eq!(kv.range(&from, &to).unwrap(), want);
        assert!(kv.range(&to, &from).unwrap().is_empty());
        assert_eq!(kv.approximate_num_entries(), expected.len());
        let m = kv.metadata_for_key(local).unwrap();
        assert_eq!(
            m,
            KeyMetadata {
                partition: 0,
                active: Some("me:1".into()),
                is_local: true
            }
        );
        // Not hosted and no membership known yet.
        assert_eq!(
            kv.metadata_for_key(remote).unwrap(),
            KeyMetadata {
                partition: 1,
                active: None,
                is_local: false
            }
        );
        // With a membership snapshot, the owner's endpoint.
        guard(&q.shared.membership).members = vec![MemberInfo {
            member_id: "m2".into(),
            client_id: "app-1-consumer@other:2".into(),
            host: "/10.0.0.2".into(),
            endpoint: Some("other:2".into()),
            partitions: vec![TopicPartition::new("in", 1), TopicPartition::new("in", 3)],
            is_self: false,
        }];
        assert_eq!(
            q.metadata_for_key("kv", remote, &StringSerde)
                .unwrap()
                .active
                .as_deref(),
            Some("other:2")
        );
        assert_eq!(q.metadata_for_key_bytes("nope", b"x"), None);
        assert_eq!(q.local_partitions("kv"), vec![0, 2]);
        assert_eq!(q.partition_count("kv"), Some(4));
        assert_eq!(q.store_names(), vec!["kv".to_string(), "win".to_string()]);
    }

    #[test]
    fn keys_outside_their_murmur2_partition_are_found_in_other_hosted_ones() {
        // A producer that does not partition by murmur2 (librdkafka's
        // default) put the key in partition 3 instead of its hash's.
        let (q, registry) = queries(&[0, 1, 2, 3]);
        let key = "moved";
        let home = partition_for(key.as_bytes(), 4);
        let other = (home + 1) % 4;
        let s = guard(&registry)
            .get(&("kv".to_string(), other))
            .cloned()
            .unwrap();
        lock(&s).put(
            key.as_bytes().to_vec(),
            Some(encode_value(5, Some(9i64.to_be_bytes().to_vec()))),
        );
        let kv = q.kv("kv", StringSerde, I64Serde).unwrap();
        assert_eq!(
            kv.get_with_timestamp(&key.to_string()).unwrap(),
            Some((9, 5))
        );
        let w = guard(&registry)
            .get(&("win".to_string(), other))
            .cloned()
            .unwrap();
        lock(&w).put(
            window_key_bytes(key.as_bytes(), 1000),
            Some(encode_value(5, Some(4i64.to_be_bytes().to_vec()))),
        );
        let win = q.window("win", StringSerde, I64Serde, 100).unwrap();
        assert_eq!(
            win.fetch(&key.to_string(), i64::MIN, i64::MAX).unwrap(),
            vec![(Window::new(1000, 1100), 4)]
        );
        // A key absent everywhere is absent, not an error.
        assert_eq!(kv.get(&"nowhere".to_string()).unwrap(), None);
        // Only hosted partitions are searched: the home partition of a key
        // not found here is still reported as not local.
        let (q2, _) = queries(&[other]);
        let far = (0..)
            .map(|i| format!("far{i}"))
            .find(|k| partition_for(k.as_bytes(), 4) != other)
            .unwrap();
        let kv2 = q2.kv("kv", StringSerde, I64Serde).unwrap();
        assert!(matches!(kv2.get(&far), Err(QueryError::NotLocal { .. })));
    }

    #[test]
    fn wrong_kinds_unknown_stores_and_bad_values_are_errors() {
        let (q, registry) = queries(&[0, 1, 2, 3]);
        assert!(matches!(
            q.kv("nope", StringSerde, I64Serde),
            Err(QueryError::UnknownStore(_))
        ));
        assert!(matches!(
            q.kv("win", StringSerde, I64Serde),
            Err(QueryError::WrongStoreKind { .. })
        ));
        assert!(matches!(
            q.window("kv", StringSerde, I64Serde, 10),
            Err(QueryError::WrongStoreKind { .. })
        ));
        assert!(matches!(
            q.window("win", StringSerde, I64Serde, 0),
            Err(QueryError::InvalidWindowSize(0))
        ));
        // A value that is not an i64.
        put(&registry, "kv", b"k", b"abc", 1);
        let kv = q.kv("kv", StringSerde, I64Serde).unwrap();
        assert!(matches!(
            kv.get(&"k".to_string()),
            Err(QueryError::Undecodable { what: "value", .. })
        ));
        assert!(kv.all().is_err());
    }

    #[test]
    fn window_and_session_views_decode_their_layouts() {
        let (q, registry) = queries(&[0, 1, 2, 3]);
        for (k, start, n) in [("a", 20, 2i64), ("a", 0, 1), ("b", 10, 5), ("a", 40, 3)] {
            put(
                &registry,
                "win",
                &window_key_bytes(k.as_bytes(), start),
                &n.to_be_bytes(),
                start,
            );
        }
        // Operator metadata is skipped by scans.
        for p in 0..4 {
            let s = guard(&registry).get(&("win".to_string(), p)).cloned();
            if let Some(s) = s {
                lock(&s).put(crate::state::META_KEY.to_vec(), Some(vec![0; 8]));
            }
        }
        let w = q.window("win", StringSerde, I64Serde, 10).unwrap();
        let a = "a".to_string();
        assert_eq!(
            w.fetch(&a, 0, 20).unwrap(),
            vec![(Window::new(0, 10), 1), (Window::new(20, 30), 2)]
        );
        assert_eq!(
            w.fetch(&a, 21, 100).unwrap(),
            vec![(Window::new(40, 50), 3)]
        );
        assert_eq!(w.fetch_window(&a, 40).unwrap(), Some(3));
        assert_eq!(w.fetch_window(&a, 41).unwrap(), None);
        assert_eq!(
            w.all().unwrap(),
            vec![
                (Windowed::new(a.clone(), Window::new(0, 10)), 1),
                (Windowed::new(a.clone(), Window::new(20, 30)), 2),
                (Windowed::new(a.clone(), Window::new(40, 50)), 3),
                (Windowed::new("b".to_string(), Window::new(10, 20)), 5),
            ]
        );

        // Sessions live in window-kind stores too.
        let (q, registry) = queries(&[0, 1, 2, 3]);
        for (k, start, end, n) in [("a", 5, 9, 2i64), ("a", 1, 3, 4), ("b", 2, 2, 1)] {
            put(
                &registry,
                "win",
                &crate::session::session_key(k.as_bytes(), start, end),
                &n.to_be_bytes(),
                end,
            );
        }
        let s = q.session("win", StringSerde, I64Serde).unwrap();
        assert_eq!(
            s.fetch_sessions(&a).unwrap(),
            vec![(Window::new(1, 3), 4), (Window::new(5, 9), 2)]
        );
        assert!(s.fetch_sessions(&"c".to_string()).unwrap().is_empty());
        assert_eq!(
            s.all().unwrap(),
            vec![
                (Windowed::new(a.clone(), Window::new(1, 3)), 4),
                (Windowed::new(a, Window::new(5, 9)), 2),
                (Windowed::new("b".to_string(), Window::new(2, 2)), 1),
            ]
        );
    }

    /// A backend answering only `group_members`.
    struct Members(Vec<MemberInfo>);

    impl Backend for Members {
        fn partition_count(
            &mut self,
            _: &str,
        ) -> Result<Option<i32>, crate::backend::BackendError> {
            Ok(None)
        }
        fn create_topic(
            &mut self,
            _: &str,
            _: i32,
            _: &[(String, String)],
        ) -> Result<(), crate::backend::BackendError> {
            Ok(())
        }
        fn subscribe(&mut self, _: &[String]) -> Result<(), crate::backend::BackendError> {
            Ok(())
        }
        fn poll(
            &mut self,
            _: Duration,
        ) -> Result<Vec<crate::PollEvent>, crate::backend::BackendError> {
            Ok(Vec::new())
        }
        fn seek(&mut self, _: &TopicPartition, _: i64) -> Result<(), crate::backend::BackendError> {
            Ok(())
        }
        fn committed(
            &mut self,
            tps: &[TopicPartition],
        ) -> Result<Vec<Option<i64>>, crate::backend::BackendError> {
            Ok(vec![None; tps.len()])
        }
        fn begin(&mut self) -> Result<(), crate::backend::BackendError> {
            Ok(())
        }
        fn send(
            &mut self,
            _: Vec<crate::ProducedRecord>,
        ) -> Result<(), crate::backend::BackendError> {
            Ok(())
        }
        fn commit(
            &mut self,
            _: &[(TopicPartition, i64)],
        ) -> Result<(), crate::backend::BackendError> {
            Ok(())
        }
        fn abort(&mut self) -> Result<(), crate::backend::BackendError> {
            Ok(())
        }
        fn end_offsets(
            &mut self,
            tps: &[TopicPartition],
        ) -> Result<Vec<i64>, crate::backend::BackendError> {
            Ok(vec![0; tps.len()])
        }
        fn read_partition(
            &mut self,
            _: &TopicPartition,
            from: i64,
            _: &mut dyn FnMut(crate::ConsumedRecord),
        ) -> Result<i64, crate::backend::BackendError> {
            Ok(from)
        }
        fn group_members(&mut self) -> Result<Vec<MemberInfo>, crate::backend::BackendError> {
            Ok(self.0.clone())
        }
    }

    #[test]
    fn refresh_fills_in_the_own_endpoint_and_respects_its_interval() {
        let (q, _) = queries(&[0]);
        let mut host = QueryHost {
            shared: q.shared.clone(),
            last_refresh: None,
        };
        let me = MemberInfo {
            member_id: "b".into(),
            client_id: "app-0-consumer".into(),
            host: "localhost".into(),
            endpoint: None,
            partitions: vec![TopicPartition::new("in", 0)],
            is_self: true,
        };
        let other = MemberInfo {
            member_id: "a".into(),
            is_self: false,
            endpoint: Some("x:1".into()),
            ..me.clone()
        };
        let mut backend = Members(vec![me.clone(), other.clone()]);
        host.refresh(&mut backend, false);
        let m = q.membership();
        assert!(m.refreshed.is_some() && m.error.is_none());
        assert_eq!(m.members.len(), 2);
        assert_eq!(m.members[0].member_id, "a", "sorted by member id");
        assert_eq!(m.members[1].endpoint.as_deref(), Some("me:1"));
        // Not due: the snapshot stays; a rebalance forces a refresh.
        backend.0.pop();
        host.refresh(&mut backend, false);
        assert_eq!(q.membership().members.len(), 2);
        host.refresh(&mut backend, true);
        assert_eq!(q.membership().members.len(), 1);
    }
}
