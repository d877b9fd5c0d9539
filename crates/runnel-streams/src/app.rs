//! Running a topology: tasks, the processing loop, commits and restores.
//!
//! A [`Topology`] splits into sub-topologies; a *task* is one sub-topology
//! on one partition number and owns that partition of each of its source
//! topics, plus its stores. [`Streams`] is one instance of an application:
//! it polls its [`Backend`], routes records to tasks, processes each task's
//! records in timestamp order, sends results, and commits.
//!
//! Commit protocol (both guarantees): each store's uncommitted writes
//! become changelog records; outputs, changelog records and input offsets
//! are committed (one transaction under exactly-once); only then are the
//! writes applied to the stores' storage with the changelog offset they
//! reached. A failed or revoked commit rolls every task back to its last
//! commit: stores drop uncommitted writes and consumers seek back.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::{
    Backend, BackendError, ConsumedRecord, Guarantee, PollEvent, ProducedRecord, TopicPartition,
};
use crate::cache::Flusher;
use crate::processor::{PunctuationType, Punctuator};
use crate::record::Rec;
use crate::serdes::partition_for;
use crate::state::{lock, SharedStore, StoreKind};
use crate::topology::{
    Build, Cx, Graph, InMemoryStores, Merge, NodeRef, Port, Raw, StoreDef, StoreSupplier,
    TopicName, TopologyError,
};

/// Failures that stop an application instance.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("source topic {0} does not exist")]
    MissingSourceTopic(String),
    #[error("sink topic {0} does not exist")]
    MissingSinkTopic(String),
    #[error("topics {topics:?} must be co-partitioned (same partition count) but have {counts:?} partitions")]
    NotCoPartitioned {
        topics: Vec<String>,
        counts: Vec<i32>,
    },
    #[error("state store failed: {0}")]
    Store(String),
}

pub(crate) struct SubTopology {
    pub sources: Vec<(TopicName, Port<Raw, Raw>)>,
    pub stores: Vec<String>,
}

/// A built topology: sub-topologies, their sources and stores.
pub struct Topology {
    pub(crate) subs: Vec<SubTopology>,
    pub(crate) store_defs: HashMap<String, StoreDef>,
    /// Repartition topic suffix → the sub-topology writing it.
    pub(crate) repartitions: Vec<(String, usize)>,
    /// Global tables: (source topic, store name).
    pub(crate) globals: Vec<(String, String)>,
}

impl Topology {
    pub(crate) fn from_graph(graph: Arc<Mutex<Graph>>) -> Result<Topology, TopologyError> {
        let mut g = crate::topology::glock(&graph);
        if let Some(e) = g.errors.first() {
            return Err(e.clone());
        }
        if g.sources.is_empty() {
            return Err(TopologyError::NoSources);
        }
        let mut sub_of_root: BTreeMap<usize, usize> = BTreeMap::new();
        let mut subs: Vec<SubTopology> = Vec::new();
        let sources: Vec<(TopicName, usize, Port<Raw, Raw>)> = g
            .sources
            .iter()
            .map(|s| (s.topic.clone(), s.node, s.port.clone()))
            .collect();
        for (topic, node, port) in sources {
            let root = g.find(node);
            let n = subs.len();
            let i = *sub_of_root.entry(root).or_insert(n);
            if i == n {
                subs.push(SubTopology {
                    sources: Vec::new(),
                    stores: Vec::new(),
                });
            }
            subs[i].sources.push((topic, port));
        }
        let mut store_defs = HashMap::new();
        for d in g.stores.clone() {
            let root = g.find(d.node);
            let Some(&i) = sub_of_root.get(&root) else {
                return Err(TopologyError::Invalid(format!(
                    "store {} is not reachable from any source",
                    d.name
                )));
            };
            subs[i].stores.push(d.name.clone());
            store_defs.insert(d.name.clone(), d);
        }
        let mut repartitions = Vec::new();
        for (suffix, node) in g.repartitions.clone() {
            let root = g.find(node);
            if let Some(&i) = sub_of_root.get(&root) {
                repartitions.push((suffix, i));
            }
        }
        Ok(Topology {
            subs,
            store_defs,
            repartitions,
            globals: g.globals.clone(),
        })
    }

    /// A human-readable description: sub-topologies, their source topics
    /// and stores.
    pub fn describe(&self) -> String {
        let mut out = String::from("Topologies:\n");
        for (i, s) in self.subs.iter().enumerate() {
            out.push_str(&format!("  Sub-topology: {i}\n"));
            for (t, _) in &s.sources {
                let name = match t {
                    TopicName::User(t) => t.clone(),
                    TopicName::Internal(x) => format!("<application.id>-{x}"),
                };
                out.push_str(&format!("    Source topic: {name}\n"));
            }
            for st in &s.stores {
                out.push_str(&format!("    State store: {st}\n"));
            }
        }
        out
    }
}

/// How long a task reading several partitions waits at most for one whose
/// lag is not known yet (see [`StreamsConfig::max_task_idle`]).
const UNKNOWN_LAG_WAIT: Duration = Duration::from_secs(30);

/// Pause after a retriable backend error before the next poll.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Settings of one application instance.
#[derive(Clone)]
pub struct StreamsConfig {
    /// Names the consumer group, internal topics and transactional ids.
    pub application_id: String,
    /// Must match the backend's.
    pub guarantee: Guarantee,
    /// How often to commit (Kafka Streams: 30 s at-least-once, 100 ms
    /// exactly-once).
    pub commit_interval: Duration,
    /// Longest wait for records in one poll.
    pub poll_timeout: Duration,
    /// Commit early once this many store writes are uncommitted.
    pub max_uncommitted_writes: usize,
    /// Storage for state stores.
    pub stores: Arc<dyn StoreSupplier>,
    /// A task reading several partitions processes their records in
    /// timestamp order: it waits for an empty partition that has more data
    /// (positive lag) until the data arrives, and for one whose lag is not
    /// known yet at most the longer of this and 30 s (a safety bound for a
    /// backend that cannot tell; Kafka Streams waits as long as it takes).
    /// A caught-up partition is not waited for.
    pub max_task_idle: Duration,
    /// This instance's own interactive-query endpoint (`host:port`), as
    /// [`crate::query::KeyMetadata::active`] reports it. Other instances learn it
    /// through the backend (the Kafka backend's
    /// `KafkaBackendConfig::application_server`, which should be the same).
    pub application_server: Option<String>,
    /// Where a source topic's partition starts when the application has
    /// no committed offset for it (Kafka Streams' `auto.offset.reset`);
    /// internal (repartition) topics always start at the earliest.
    pub offset_reset: OffsetReset,
    /// Size of each aggregation's record cache, in bytes (Kafka Streams'
    /// `statestore.cache.max.bytes`, 10 MiB there too): table updates are
    /// held back per key until the task commits or the cache is full, and
    /// only the latest of each key goes downstream (to joins, filters,
    /// output topics). 0 forwards every update at once.
    pub cache_max_bytes: usize,
}

/// Where a partition without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// At its first record: everything in the topic is processed.
    #[default]
    Earliest,
    /// At its end: only records written from then on.
    Latest,
}

impl StreamsConfig {
    pub fn new(application_id: impl Into<String>) -> Self {
        StreamsConfig {
            application_id: application_id.into(),
            guarantee: Guarantee::AtLeastOnce,
            commit_interval: Duration::from_secs(30),
            poll_timeout: Duration::from_millis(100),
            max_uncommitted_writes: 100_000,
            stores: Arc::new(InMemoryStores),
            max_task_idle: Duration::from_millis(500),
            application_server: None,
            offset_reset: OffsetReset::Earliest,
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
        }
    }
    /// Exactly-once, committing every 100 ms.
    pub fn exactly_once(mut self) -> Self {
        self.guarantee = Guarantee::ExactlyOnce;
        self.commit_interval = Duration::from_millis(100);
        self
    }
    pub fn commit_interval(mut self, d: Duration) -> Self {
        self.commit_interval = d;
        self
    }
    pub fn stores(mut self, s: Arc<dyn StoreSupplier>) -> Self {
        self.stores = s;
        self
    }
    /// Sets the record cache size of each aggregation (0: every update
    /// goes downstream at once); see [`StreamsConfig::cache_max_bytes`].
    pub fn cache_max_bytes(mut self, bytes: usize) -> Self {
        self.cache_max_bytes = bytes;
        self
    }
    /// Sets this instance's interactive-query endpoint (`host:port`).
    pub fn application_server(mut self, endpoint: impl Into<String>) -> Self {
        self.application_server = Some(endpoint.into());
        self
    }
}

/// A task id: sub-topology and partition (`0_1` in Kafka's notation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    pub sub: usize,
    pub partition: i32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.sub, self.partition)
    }
}

type Roots = HashMap<String, NodeRef<Raw, Raw>>;
type Stores = BTreeMap<String, SharedStore>;

/// Kafka Streams' default `statestore.cache.max.bytes`.
pub const DEFAULT_CACHE_MAX_BYTES: usize = 10 * 1024 * 1024;

/// A task's nodes, made from the topology.
struct Instantiated {
    roots: Roots,
    stores: Stores,
    punctuators: Vec<Punctuator>,
    flushers: Vec<Flusher>,
}

struct Task {
    roots: HashMap<String, NodeRef<Raw, Raw>>,
    /// Scheduled punctuations of the task's processors.
    punctuators: Vec<Punctuator>,
    /// The record caches of the task's aggregations.
    flushers: Vec<Flusher>,
    queues: BTreeMap<String, VecDeque<ConsumedRecord>>,
    stores: BTreeMap<String, SharedStore>,
    /// Next offset to read per source topic, as processed.
    position: BTreeMap<String, i64>,
    /// Next offset to read per source topic, as last committed.
    committed: BTreeMap<String, i64>,
    /// Since when the task waits for a partition with unknown or positive
    /// lag.
    idle_since: Option<Instant>,
    cx: Cx,
}

/// Counters of one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamsMetrics {
    pub tasks: usize,
    pub commits: u64,
    pub rollbacks: u64,
    pub restored_records: u64,
    pub processed: u64,
    pub late_dropped: u64,
    pub undecodable: u64,
    /// Records skipped because a key or value they produced could not be
    /// encoded (ksqlDB's processing log: nothing is written for them).
    pub unencodable: u64,
}

/// One running instance of an application.
pub struct Streams {
    topology: Topology,
    config: StreamsConfig,
    app_id: Arc<str>,
    backend: Box<dyn Backend>,
    /// Resolved source topic → sub-topology.
    sub_of_topic: HashMap<String, usize>,
    /// Source topics named by the user (not internal to the application).
    user_sources: HashSet<String>,
    tasks: BTreeMap<TaskId, Task>,
    partitions: HashMap<String, i32>,
    in_txn: bool,
    last_commit: Instant,
    round_robin: u32,
    metrics: StreamsMetrics,
    /// Stores of all tasks, for interactive queries: (store, partition).
    registry: Arc<Mutex<BTreeMap<(String, i32), SharedStore>>>,
    /// Global tables, read in full by this instance.
    globals: crate::global::Globals,
    /// Interactive queries: store catalog and group membership snapshot.
    pub(crate) query: crate::query::QueryHost,
}

impl Streams {
    /// Checks the topology against the log (source topics exist and are
    /// co-partitioned), creates internal topics and subscribes.
    pub fn new(
        topology: Topology,
        config: StreamsConfig,
        mut backend: Box<dyn Backend>,
    ) -> Result<Streams, StreamsError> {
        let app_id: Arc<str> = Arc::from(config.application_id.as_str());
        let mut partitions: HashMap<String, i32> = HashMap::new();
        // User source topics must exist.
        for s in &topology.subs {
            for (t, _) in &s.sources {
                if let TopicName::User(name) = t {
                    match backend.partition_count(name)? {
                        Some(n) => {
                            partitions.insert(name.clone(), n);
                        }
                        None => return Err(StreamsError::MissingSourceTopic(name.clone())),
                    }
                }
            }
        }
        // Repartition topics take the largest partition count of the
        // sub-topology writing them; resolve until nothing changes.
        let mut sub_parts: Vec<Option<i32>> = vec![None; topology.subs.len()];
        for _ in 0..=topology.subs.len() {
            for (i, s) in topology.subs.iter().enumerate() {
                let counts: Vec<Option<i32>> = s
                    .sources
                    .iter()
                    .map(|(t, _)| partitions.get(&t.resolve(&app_id)).copied())
                    .collect();
                if counts.iter().all(Option::is_some) {
                    sub_parts[i] = counts.into_iter().flatten().max();
                }
            }
            for (suffix, sub) in &topology.repartitions {
                if let Some(n) = sub_parts[*sub] {
                    partitions.insert(TopicName::Internal(suffix.clone()).resolve(&app_id), n);
                }
            }
        }
        // Co-partitioning: all sources of a sub-topology have one count.
        for s in &topology.subs {
            let topics: Vec<String> = s.sources.iter().map(|(t, _)| t.resolve(&app_id)).collect();
            let counts: Vec<i32> = topics
                .iter()
                .map(|t| partitions.get(t).copied().unwrap_or(0))
                .collect();
            if counts.iter().any(|c| *c != counts[0]) || counts.iter().any(|c| *c <= 0) {
                return Err(StreamsError::NotCoPartitioned { topics, counts });
            }
        }
        for (suffix, sub) in &topology.repartitions {
            let name = TopicName::Internal(suffix.clone()).resolve(&app_id);
            let n = sub_parts[*sub].unwrap_or(1);
            backend.create_topic(&name, n, &[])?;
        }
        for (i, s) in topology.subs.iter().enumerate() {
            let n = sub_parts[i].unwrap_or(1);
            for st in &s.stores {
                let Some(def) = topology.store_defs.get(st) else {
                    continue;
                };
                if !def.logged {
                    continue;
                }
                let name = TopicName::Internal(format!("{st}-changelog")).resolve(&app_id);
                let configs = match def.kind {
                    StoreKind::KeyValue => {
                        vec![("cleanup.policy".to_string(), "compact".to_string())]
                    }
                    StoreKind::Window { retention_ms } => vec![
                        ("cleanup.policy".to_string(), "compact,delete".to_string()),
                        (
                            "retention.ms".to_string(),
                            retention_ms.saturating_add(86_400_000).to_string(),
                        ),
                    ],
                };
                backend.create_topic(&name, n, &configs)?;
                partitions.insert(name, n);
            }
        }
        let mut sub_of_topic = HashMap::new();
        let mut user_sources = HashSet::new();
        let mut topics = Vec::new();
        for (i, s) in topology.subs.iter().enumerate() {
            for (t, _) in &s.sources {
                let name = t.resolve(&app_id);
                sub_of_topic.insert(name.clone(), i);
                if matches!(t, TopicName::User(_)) {
                    user_sources.insert(name.clone());
                }
                topics.push(name);
            }
        }
        // Global tables are read in full before any processing.
        let mut globals = crate::global::Globals::new(&topology.globals);
        let restored = globals.refresh(backend.as_mut(), true)?;
        if restored > 0 {
            tracing::info!(records = restored, "global tables loaded");
        }
        backend.subscribe(&topics)?;
        let registry: Arc<Mutex<BTreeMap<(String, i32), SharedStore>>> = Arc::new(Mutex::new(
            globals
                .stores
                .iter()
                .map(|(n, s)| ((n.clone(), -1), s.clone()))
                .collect(),
        ));
        let query = crate::query::QueryHost::new(
            &topology,
            &partitions,
            &app_id,
            config.application_server.clone(),
            registry.clone(),
        );
        Ok(Streams {
            topology,
            config,
            app_id,
            backend,
            sub_of_topic,
            user_sources,
            tasks: BTreeMap::new(),
            partitions,
            in_txn: false,
            last_commit: Instant::now(),
            round_robin: 0,
            metrics: StreamsMetrics::default(),
            registry,
            globals,
            query,
        })
    }

    /// Whether this instance has caught up: it runs tasks, nothing is
    /// queued, and every input partition is known to be at its end.
    pub fn is_idle(&mut self) -> bool {
        if self.tasks.is_empty() {
            return false;
        }
        let mut tps = Vec::new();
        for (id, t) in &self.tasks {
            if t.queues.values().any(|q| !q.is_empty()) {
                return false;
            }
            for topic in t.roots.keys() {
                tps.push(TopicPartition::new(topic.clone(), id.partition));
            }
        }
        tps.iter().all(|tp| self.backend.lag(tp) == Some(0))
    }

    /// The tasks this instance runs now.
    pub fn tasks(&self) -> Vec<TaskId> {
        self.tasks.keys().copied().collect()
    }

    /// Counters, summed over current and closed tasks.
    pub fn metrics(&self) -> StreamsMetrics {
        let mut m = self.metrics;
        m.tasks = self.tasks.len();
        for t in self.tasks.values() {
            m.processed += t.cx.metrics.processed;
            m.late_dropped += t.cx.metrics.late_dropped;
            m.undecodable += t.cx.metrics.undecodable;
            m.unencodable += t.cx.metrics.unencodable;
        }
        m
    }

    /// The stores this instance hosts, by (store name, partition).
    pub fn store_registry(&self) -> Arc<Mutex<BTreeMap<(String, i32), SharedStore>>> {
        self.registry.clone()
    }

    /// One round: poll, process everything polled, send results, commit
    /// when due. Returns the number of records processed.
    ///
    /// A retriable backend error (a broker gone, a partition leader
    /// moving, a transaction the cluster aborted) rolls every task back to
    /// its last commit (state, queued records and positions) and returns
    /// `Ok(0)` after a short pause: the next poll reprocesses from there.
    /// Only errors retrying cannot mend are returned.
    pub fn poll_once(&mut self) -> Result<usize, StreamsError> {
        let polled = self.poll_and_process();
        Ok(self.recover(polled)?.unwrap_or(0))
    }

    /// A retriable backend error rolls back whatever this instance has not
    /// committed; other outcomes pass through.
    fn recover<T>(&mut self, r: Result<T, StreamsError>) -> Result<Option<T>, StreamsError> {
        match r {
            Err(StreamsError::Backend(BackendError::Retriable(why))) => {
                tracing::warn!(error = %why, "retriable backend error; going back to the last commit");
                if self.has_uncommitted() {
                    self.rollback_all()?;
                }
                std::thread::sleep(RETRY_BACKOFF);
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    /// Whether anything happened since the last commit: an open
    /// transaction, positions past the committed ones, outputs not sent,
    /// store writes not committed.
    fn has_uncommitted(&self) -> bool {
        self.in_txn
            || self.tasks.values().any(|t| {
                t.position != t.committed
                    || !t.cx.out.is_empty()
                    || t.stores.values().any(|s| lock(s).dirty_len() > 0)
            })
    }

    fn poll_and_process(&mut self) -> Result<usize, StreamsError> {
        let events = self.backend.poll(self.config.poll_timeout)?;
        let rebalanced = events
            .iter()
            .any(|e| matches!(e, PollEvent::Assigned(_) | PollEvent::Revoked(_)));
        // Partitions just moved to their end: records this poll fetched
        // from before it are not theirs to process.
        let mut reset: HashMap<TopicPartition, i64> = HashMap::new();
        for e in events {
            match e {
                PollEvent::Revoked(tps) => self.on_revoked(&tps)?,
                PollEvent::Assigned(tps) => reset.extend(self.on_assigned(&tps)?),
                PollEvent::Records(recs) => {
                    for r in recs {
                        let Some(&sub) = self.sub_of_topic.get(&r.topic) else {
                            continue;
                        };
                        if !reset.is_empty()
                            && reset
                                .get(&TopicPartition::new(r.topic.clone(), r.partition))
                                .is_some_and(|end| r.offset < *end)
                        {
                            continue;
                        }
                        let id = TaskId {
                            sub,
                            partition: r.partition,
                        };
                        if let Some(t) = self.tasks.get_mut(&id) {
                            match t.queues.get_mut(&r.topic) {
                                Some(q) => q.push_back(r),
                                None => t.queues.entry(r.topic.clone()).or_default().push_back(r),
                            }
                        }
                    }
                }
            }
        }
        self.query.refresh(self.backend.as_mut(), rebalanced);
        self.globals.refresh(self.backend.as_mut(), false)?;
        let n = self.process()?;
        let wall = now_ms();
        for t in self.tasks.values_mut() {
            for p in t.punctuators.iter_mut() {
                if p.kind == PunctuationType::WallClockTime {
                    p.maybe_fire(&mut t.cx, wall);
                }
            }
            if let Some(e) = t.cx.failed.take() {
                return Err(StreamsError::Store(e));
            }
        }
        self.flush_outputs()?;
        let dirty: usize = self
            .tasks
            .values()
            .flat_map(|t| t.stores.values())
            .map(|s| lock(s).dirty_len())
            .sum();
        if self.last_commit.elapsed() >= self.config.commit_interval
            || dirty >= self.config.max_uncommitted_writes
        {
            self.commit_now()?;
        }
        Ok(n)
    }

    fn process(&mut self) -> Result<usize, StreamsError> {
        /// Why a task holds back its queued records.
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        enum Wait {
            No,
            ForLag,
            ForData,
        }
        let mut n = 0usize;
        let wall = now_ms();
        let backend = &mut self.backend;
        let max_idle = self.config.max_task_idle;
        // Lags change only when the backend polls: ask once per round.
        let mut lags: HashMap<TopicPartition, Option<i64>> = HashMap::new();
        for (id, task) in self.tasks.iter_mut() {
            task.cx.wall_ms = wall;
            let several = task.roots.len() > 1;
            loop {
                // The queued record with the smallest timestamp goes first.
                // An empty partition that has more data (positive lag)
                // makes the task wait for it, however long the fetch takes:
                // going on would process the other inputs past records
                // that exist (a join would then miss them for good). One
                // whose lag is not known yet (no fetch answered since the
                // assignment) is waited for too, as Kafka Streams does,
                // within a safety bound; a caught-up one (lag 0) is not
                // waited for (Kafka's max.task.idle.ms = 0).
                let mut wait = Wait::No;
                if several {
                    for topic in task.roots.keys() {
                        if task.queues.get(topic).is_none_or(VecDeque::is_empty) {
                            let tp = TopicPartition::new(topic.clone(), id.partition);
                            let lag = *lags.entry(tp).or_insert_with_key(|tp| backend.lag(tp));
                            wait = wait.max(match lag {
                                Some(0) => Wait::No,
                                Some(_) => Wait::ForData,
                                None => Wait::ForLag,
                            });
                        }
                    }
                }
                let wait = match wait {
                    Wait::No => {
                        task.idle_since = None;
                        false
                    }
                    Wait::ForData => true,
                    Wait::ForLag => {
                        let since = *task.idle_since.get_or_insert_with(Instant::now);
                        since.elapsed() < max_idle.max(UNKNOWN_LAG_WAIT)
                    }
                };
                let mut best: Option<(i64, &String, &mut VecDeque<ConsumedRecord>)> = None;
                for (topic, q) in task.queues.iter_mut() {
                    if let Some(ts) = q.front().map(|r| r.timestamp) {
                        if best.as_ref().is_none_or(|(b, _, _)| ts < *b) {
                            best = Some((ts, topic, q));
                        }
                    }
                }
                let Some((_, topic, queue)) = best else { break };
                if wait {
                    break;
                }
                let Some(r) = queue.pop_front() else {
                    break;
                };
                let Some(root) = task.roots.get(topic).cloned() else {
                    continue;
                };
                if task.cx.topic.as_ref() != topic.as_str() {
                    task.cx.topic = Arc::from(topic.as_str());
                }
                task.cx.offset = r.offset;
                task.cx.stream_time = task.cx.stream_time.max(r.timestamp);
                match task.position.get_mut(topic) {
                    Some(p) => *p = r.offset + 1,
                    None => {
                        task.position.insert(topic.clone(), r.offset + 1);
                    }
                }
                root.borrow_mut().process(
                    &mut task.cx,
                    Rec {
                        key: r.key,
                        value: r.value,
                        timestamp: r.timestamp,
                        headers: r.headers,
                    },
                );
                task.cx.metrics.processed += 1;
                n += 1;
                let st = task.cx.stream_time;
                for p in task.punctuators.iter_mut() {
                    if p.kind == PunctuationType::StreamTime {
                        p.maybe_fire(&mut task.cx, st);
                    }
                }
                if let Some(e) = task.cx.failed.take() {
                    return Err(StreamsError::Store(e));
                }
            }
        }
        Ok(n)
    }

    fn partitions_of(&mut self, topic: &str) -> Result<i32, StreamsError> {
        if let Some(n) = self.partitions.get(topic) {
            return Ok(*n);
        }
        match self.backend.partition_count(topic)? {
            Some(n) => {
                self.partitions.insert(topic.to_string(), n);
                Ok(n)
            }
            None => Err(StreamsError::MissingSinkTopic(topic.to_string())),
        }
    }

    fn begin_if_needed(&mut self) -> Result<(), StreamsError> {
        if self.config.guarantee == Guarantee::ExactlyOnce && !self.in_txn {
            self.backend.begin()?;
            self.in_txn = true;
        }
        Ok(())
    }

    fn flush_outputs(&mut self) -> Result<(), StreamsError> {
        let total: usize = self.tasks.values().map(|t| t.cx.out.len()).sum();
        if total == 0 {
            return Ok(());
        }
        let mut pending = Vec::with_capacity(total);
        for t in self.tasks.values_mut() {
            pending.append(&mut t.cx.out);
        }
        let mut out = Vec::with_capacity(pending.len());
        // Partition count of the topic of the previous record.
        let mut last: Option<(String, i32)> = None;
        for p in pending {
            let partition = match p.partition {
                Some(x) => x,
                None => {
                    let n = match &last {
                        Some((t, n)) if *t == p.topic => *n,
                        _ => {
                            let n = self.partitions_of(&p.topic)?;
                            last = Some((p.topic.clone(), n));
                            n
                        }
                    };
                    match p.hash_key.as_deref().or(p.key.as_deref()) {
                        Some(k) => partition_for(k, n),
                        None => {
                            self.round_robin = self.round_robin.wrapping_add(1);
                            (self.round_robin % n.max(1) as u32) as i32
                        }
                    }
                }
            };
            out.push(ProducedRecord {
                topic: p.topic,
                partition,
                timestamp: p.timestamp,
                key: p.key,
                value: p.value,
                headers: p.headers,
            });
        }
        self.begin_if_needed()?;
        self.backend.send(out)?;
        Ok(())
    }

    /// Empties every task's record caches: what they held back goes
    /// downstream now, into this commit. A flush may feed another cache
    /// of the task (an aggregation of an aggregation's output): repeat
    /// until none forwarded anything. Then the window expiries that waited
    /// for empty caches.
    fn flush_caches(&mut self) -> Result<(), StreamsError> {
        for t in self.tasks.values_mut() {
            if t.flushers.is_empty() {
                continue;
            }
            loop {
                let mut any = false;
                for f in &t.flushers {
                    any |= f.borrow_mut().flush(&mut t.cx);
                }
                if let Some(e) = t.cx.failed.take() {
                    return Err(StreamsError::Store(e));
                }
                if !any {
                    break;
                }
            }
            for f in &t.flushers {
                f.borrow_mut().after_flush();
            }
        }
        Ok(())
    }

    /// Commits now: changelogs, outputs and input positions. A retriable
    /// failure rolls back to the last commit, as in [`poll_once`](Self::poll_once).
    pub fn commit(&mut self) -> Result<(), StreamsError> {
        let committed = self.commit_now();
        self.recover(committed).map(|_| ())
    }

    fn commit_now(&mut self) -> Result<(), StreamsError> {
        self.flush_caches()?;
        self.flush_outputs()?;
        let ts = now_ms();
        let mut changelog = Vec::new();
        let mut logged: Vec<(TopicPartition, SharedStore)> = Vec::new();
        let mut offsets = Vec::new();
        for t in self.tasks.values() {
            for s in t.stores.values() {
                let st = lock(s);
                if let Some(tp) = st.changelog.clone() {
                    if st.dirty_len() > 0 {
                        for (k, v) in st.dirty() {
                            changelog.push(ProducedRecord {
                                topic: tp.topic.clone(),
                                partition: tp.partition,
                                timestamp: ts,
                                key: Some(k.clone()),
                                value: v.clone(),
                                headers: Vec::new(),
                            });
                        }
                        logged.push((tp, s.clone()));
                    }
                }
            }
            for (topic, off) in &t.position {
                if t.committed.get(topic) != Some(off) {
                    offsets.push((TopicPartition::new(topic.clone(), t.cx.partition), *off));
                }
            }
        }
        if changelog.is_empty() && offsets.is_empty() && !self.in_txn {
            self.last_commit = Instant::now();
            return Ok(());
        }
        if !changelog.is_empty() {
            self.begin_if_needed()?;
            self.backend.send(changelog)?;
        }
        if self.config.guarantee == Guarantee::ExactlyOnce && !self.in_txn {
            self.begin_if_needed()?;
        }
        if let Err(e) = self.backend.commit(&offsets) {
            self.in_txn = false;
            tracing::warn!(error = %e, "commit failed; rolling back to the last commit");
            self.rollback_all()?;
            return Err(e.into());
        }
        self.in_txn = false;
        let ends = if logged.is_empty() {
            Vec::new()
        } else {
            let tps: Vec<TopicPartition> = logged.iter().map(|(tp, _)| tp.clone()).collect();
            // The commit is done: a failure here only costs the stores
            // their new checkpoints (a restore starts from an older one,
            // and reads the same changelog records again).
            self.backend.end_offsets(&tps).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "no changelog end offsets after a commit; checkpoints stay where they were");
                Vec::new()
            })
        };
        for (i, (_, s)) in logged.iter().enumerate() {
            lock(s)
                .committed(ends.get(i).copied())
                .map_err(|e| StreamsError::Store(e.to_string()))?;
        }
        for t in self.tasks.values_mut() {
            for s in t.stores.values() {
                // Stores without a changelog (or without writes) still move
                // their writes to storage.
                lock(s)
                    .committed(None)
                    .map_err(|e| StreamsError::Store(e.to_string()))?;
            }
            t.committed = t.position.clone();
        }
        self.metrics.commits += 1;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Drops all uncommitted work and rewinds every task to its last commit.
    fn rollback_all(&mut self) -> Result<(), StreamsError> {
        if self.in_txn {
            if let Err(e) = self.backend.abort() {
                tracing::warn!(error = %e, "abort failed");
            }
            self.in_txn = false;
        }
        self.metrics.rollbacks += 1;
        let mut seeks = Vec::new();
        for t in self.tasks.values_mut() {
            t.cx.out.clear();
            for s in t.stores.values() {
                lock(s)
                    .rollback()
                    .map_err(|e| StreamsError::Store(e.to_string()))?;
            }
            for q in t.queues.values_mut() {
                q.clear();
            }
            for (topic, off) in &t.committed {
                seeks.push((TopicPartition::new(topic.clone(), t.cx.partition), *off));
            }
            t.position = t.committed.clone();
            // Processor-held caches (observed stream time) reload from the
            // stores on the next record.
        }
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            self.reinstantiate(id)?;
        }
        for (tp, off) in seeks {
            self.backend.seek(&tp, off)?;
        }
        Ok(())
    }

    fn on_revoked(&mut self, tps: &[TopicPartition]) -> Result<(), StreamsError> {
        let doomed: Vec<TaskId> = tps
            .iter()
            .filter_map(|tp| {
                self.sub_of_topic.get(&tp.topic).map(|&sub| TaskId {
                    sub,
                    partition: tp.partition,
                })
            })
            .collect();
        if self.has_uncommitted() {
            self.rollback_all()?;
        }
        for id in doomed {
            if let Some(t) = self.tasks.remove(&id) {
                let mut reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
                for name in t.stores.keys() {
                    reg.remove(&(name.clone(), id.partition));
                }
                self.metrics.processed += t.cx.metrics.processed;
                self.metrics.late_dropped += t.cx.metrics.late_dropped;
                self.metrics.undecodable += t.cx.metrics.undecodable;
                self.metrics.unencodable += t.cx.metrics.unencodable;
                tracing::info!(task = %id, "task closed");
            }
        }
        Ok(())
    }

    /// Creates the tasks of newly assigned partitions; returns the source
    /// partitions it moved to their end ([`OffsetReset::Latest`]).
    fn on_assigned(
        &mut self,
        tps: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, i64)>, StreamsError> {
        let mut ids: Vec<TaskId> = tps
            .iter()
            .filter_map(|tp| {
                self.sub_of_topic.get(&tp.topic).map(|&sub| TaskId {
                    sub,
                    partition: tp.partition,
                })
            })
            .collect();
        ids.sort();
        ids.dedup();
        // Partitions of new tasks' source topics without a committed offset
        // start at their end when so configured.
        let fresh: Vec<TopicPartition> = tps
            .iter()
            .filter(|tp| {
                self.config.offset_reset == OffsetReset::Latest
                    && self.user_sources.contains(&tp.topic)
                    && self.sub_of_topic.get(&tp.topic).is_some_and(|&sub| {
                        !self.tasks.contains_key(&TaskId {
                            sub,
                            partition: tp.partition,
                        })
                    })
            })
            .cloned()
            .collect();
        for id in ids {
            if self.tasks.contains_key(&id) {
                continue;
            }
            self.create_task(id)?;
        }
        let mut moved = Vec::new();
        if !fresh.is_empty() {
            let committed = self.backend.committed(&fresh)?;
            let unset: Vec<TopicPartition> = fresh
                .into_iter()
                .zip(committed)
                .filter(|(_, c)| c.is_none())
                .map(|(tp, _)| tp)
                .collect();
            let ends = self.backend.end_offsets(&unset)?;
            for (tp, end) in unset.into_iter().zip(ends) {
                self.backend.seek(&tp, end)?;
                moved.push((tp, end));
            }
        }
        Ok(moved)
    }

    fn instantiate(
        &self,
        id: TaskId,
        existing: Option<&BTreeMap<String, SharedStore>>,
    ) -> Result<Instantiated, StreamsError> {
        let sub = &self.topology.subs[id.sub];
        let mut b = Build::new(
            &self.app_id,
            id.partition,
            &self.topology.store_defs,
            self.config.stores.as_ref(),
        );
        b.globals = self.globals.stores.clone();
        b.cache_max_bytes = self.config.cache_max_bytes;
        if let Some(stores) = existing {
            b.stores = stores.clone();
        }
        let mut roots = HashMap::new();
        for (t, port) in &sub.sources {
            let ds = port.instantiate(&mut b);
            let root: NodeRef<Raw, Raw> = std::rc::Rc::new(std::cell::RefCell::new(Merge(ds)));
            roots.insert(t.resolve(&self.app_id), root);
        }
        if let Some(e) = b.errors.first() {
            return Err(StreamsError::Store(e.clone()));
        }
        Ok(Instantiated {
            roots,
            stores: b.stores,
            punctuators: b.punctuators,
            flushers: b.flushers,
        })
    }

    fn reinstantiate(&mut self, id: TaskId) -> Result<(), StreamsError> {
        let existing = match self.tasks.get(&id) {
            Some(t) => t.stores.clone(),
            None => return Ok(()),
        };
        let made = self.instantiate(id, Some(&existing))?;
        if let Some(t) = self.tasks.get_mut(&id) {
            t.roots = made.roots;
            t.punctuators = made.punctuators;
            t.flushers = made.flushers;
        }
        Ok(())
    }

    fn create_task(&mut self, id: TaskId) -> Result<(), StreamsError> {
        let Instantiated {
            roots,
            stores,
            punctuators,
            flushers,
        } = self.instantiate(id, None)?;
        // Restore stores from their changelogs.
        for s in stores.values() {
            let (tp, from) = {
                let mut st = lock(s);
                let Some(tp) = st.changelog.clone() else {
                    continue;
                };
                let from = match st.base_checkpoint() {
                    Some(c) => c,
                    None => {
                        st.clear().map_err(|e| StreamsError::Store(e.to_string()))?;
                        0
                    }
                };
                (tp, from)
            };
            let mut batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
            let mut count = 0u64;
            let mut failure = None;
            let end = self
                .backend
                .read_partition(&tp, from, &mut |r: ConsumedRecord| {
                    let Some(k) = r.key else { return };
                    batch.push((k, r.value));
                    count += 1;
                    if batch.len() >= 10_000 {
                        if let Err(e) = lock(s).restore(&batch, None) {
                            failure.get_or_insert(e);
                        }
                        batch.clear();
                    }
                })?;
            if let Some(e) = failure {
                return Err(StreamsError::Store(e.to_string()));
            }
            let mut st = lock(s);
            st.restore(&batch, Some(end))
                .map_err(|e| StreamsError::Store(e.to_string()))?;
            st.index_windows()
                .map_err(|e| StreamsError::Store(e.to_string()))?;
            drop(st);
            self.metrics.restored_records += count;
            if count > 0 {
                tracing::info!(task = %id, changelog = %tp, records = count, "restored state store");
            }
        }
        let sub = &self.topology.subs[id.sub];
        let topics: Vec<TopicPartition> = sub
            .sources
            .iter()
            .map(|(t, _)| TopicPartition::new(t.resolve(&self.app_id), id.partition))
            .collect();
        let committed = self.backend.committed(&topics)?;
        let mut committed_map = BTreeMap::new();
        for (tp, c) in topics.iter().zip(committed) {
            if let Some(c) = c {
                committed_map.insert(tp.topic.clone(), c);
            }
        }
        {
            let mut reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
            for (name, s) in &stores {
                reg.insert((name.clone(), id.partition), s.clone());
            }
        }
        tracing::info!(task = %id, "task created");
        self.tasks.insert(
            id,
            Task {
                roots,
                punctuators,
                flushers,
                queues: BTreeMap::new(),
                stores,
                position: committed_map.clone(),
                committed: committed_map,
                idle_since: None,
                cx: Cx::new(self.app_id.clone(), id.partition),
            },
        );
        Ok(())
    }

    /// Commits and stops.
    pub fn close(mut self) -> Result<(), StreamsError> {
        self.commit()
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod wait_tests {
    //! A task reading two inputs waits for one whose lag is not known yet
    //! (its first fetch is slow), instead of going on without it after
    //! `max_task_idle`: the records then come out in timestamp order.

    use super::*;
    use crate::backend::{BackendError, ConsumedRecord, PollEvent, ProducedRecord};
    use crate::serdes::StringSerde;
    use crate::StreamsBuilder;

    /// Serves "a" at once and "b" only after `b_after`; "b"'s lag is
    /// unknown until then.
    struct SlowSecondInput {
        started: Instant,
        b_after: Duration,
        polls: usize,
        a_sent: bool,
        b_sent: bool,
        sent: Arc<Mutex<Vec<ProducedRecord>>>,
    }

    fn rec(topic: &str, offset: i64, ts: i64) -> ConsumedRecord {
        ConsumedRecord {
            topic: topic.into(),
            partition: 0,
            offset,
            timestamp: ts,
            key: Some(b"k".to_vec()),
            value: Some(format!("{topic}@{ts}").into_bytes()),
            headers: Vec::new(),
        }
    }

    impl Backend for SlowSecondInput {
        fn partition_count(&mut self, _: &str) -> Result<Option<i32>, BackendError> {
            Ok(Some(1))
        }
        fn create_topic(
            &mut self,
            _: &str,
            _: i32,
            _: &[(String, String)],
        ) -> Result<(), BackendError> {
            Ok(())
        }
        fn subscribe(&mut self, _: &[String]) -> Result<(), BackendError> {
            Ok(())
        }
        fn poll(&mut self, timeout: Duration) -> Result<Vec<PollEvent>, BackendError> {
            self.polls += 1;
            if self.polls == 1 {
                return Ok(vec![PollEvent::Assigned(vec![
                    TopicPartition::new("a", 0),
                    TopicPartition::new("b", 0),
                ])]);
            }
            if !self.a_sent {
                self.a_sent = true;
                return Ok(vec![PollEvent::Records(vec![
                    rec("a", 0, 10),
                    rec("a", 1, 30),
                ])]);
            }
            if !self.b_sent && self.started.elapsed() >= self.b_after {
                self.b_sent = true;
                return Ok(vec![PollEvent::Records(vec![rec("b", 0, 20)])]);
            }
            std::thread::sleep(timeout.min(Duration::from_millis(5)));
            Ok(Vec::new())
        }
        fn seek(&mut self, _: &TopicPartition, _: i64) -> Result<(), BackendError> {
            Ok(())
        }
        fn committed(&mut self, tps: &[TopicPartition]) -> Result<Vec<Option<i64>>, BackendError> {
            Ok(vec![None; tps.len()])
        }
        fn begin(&mut self) -> Result<(), BackendError> {
            Ok(())
        }
        fn send(&mut self, records: Vec<ProducedRecord>) -> Result<(), BackendError> {
            self.sent.lock().unwrap().extend(records);
            Ok(())
        }
        fn commit(&mut self, _: &[(TopicPartition, i64)]) -> Result<(), BackendError> {
            Ok(())
        }
        fn abort(&mut self) -> Result<(), BackendError> {
            Ok(())
        }
        fn end_offsets(&mut self, tps: &[TopicPartition]) -> Result<Vec<i64>, BackendError> {
            Ok(vec![0; tps.len()])
        }
        fn lag(&mut self, tp: &TopicPartition) -> Option<i64> {
            match tp.topic.as_str() {
                "a" => self.a_sent.then_some(0),
                _ => self.b_sent.then_some(0),
            }
        }
        fn read_partition(
            &mut self,
            _: &TopicPartition,
            from: i64,
            _: &mut dyn FnMut(ConsumedRecord),
        ) -> Result<i64, BackendError> {
            Ok(from)
        }
    }

    #[test]
    fn a_partition_whose_lag_is_unknown_is_waited_for() {
        let b = StreamsBuilder::new();
        let a = b.stream("a", StringSerde, StringSerde);
        a.merge(&b.stream("b", StringSerde, StringSerde))
            .to_with("out", StringSerde, StringSerde);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let backend = SlowSecondInput {
            started: Instant::now(),
            // Far longer than max_task_idle: the old bound gave up on "b".
            b_after: Duration::from_millis(300),
            polls: 0,
            a_sent: false,
            b_sent: false,
            sent: sent.clone(),
        };
        let mut config = StreamsConfig::new("wait");
        config.max_task_idle = Duration::from_millis(20);
        config.poll_timeout = Duration::from_millis(5);
        let mut streams = Streams::new(b.build().unwrap(), config, Box::new(backend)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while streams.metrics().processed < 3 {
            assert!(Instant::now() < deadline, "not all records processed");
            streams.poll_once().unwrap();
        }
        streams.commit().unwrap();
        let order: Vec<i64> = sent
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.topic == "out")
            .map(|r| r.timestamp)
            .collect();
        assert_eq!(order, [10, 20, 30]);
    }
}
