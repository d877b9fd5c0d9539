//! The processor graph: how DSL calls become nodes, how nodes split into
//! sub-topologies, and how one task's processors are instantiated.
//!
//! Building records *factories*: every DSL call adds a node id to the graph
//! and a factory to its parent's port. A task (one sub-topology, one
//! partition) instantiates its sources' factories, which instantiate their
//! children, depth first. Nodes with several parents (merge) are created
//! once per task through a memo keyed by node id. Node ids are joined in a
//! union-find as edges are added; each class holding sources is a
//! sub-topology, cut at repartition topics.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::backend::{Headers, TopicPartition};
use crate::record::Rec;
use crate::state::{MemKv, SharedStore, StateStore, StoreKind};

/// A raw key or value as stored in the log.
pub(crate) type Raw = Option<Vec<u8>>;

/// One processor of one task.
pub trait Node<K, V> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>);
    /// Whether this node reads the old value of the table changes it is
    /// sent (Kafka Streams' "send old values"). Producers of changes skip
    /// computing old values nobody downstream reads. Conservatively true.
    fn needs_old_values(&self) -> bool {
        true
    }
}

pub(crate) type NodeRef<K, V> = Rc<RefCell<dyn Node<K, V>>>;
pub(crate) type Factory<K, V> = Arc<dyn Fn(&mut Build<'_>) -> NodeRef<K, V> + Send + Sync>;

/// Where a node's output goes.
pub(crate) struct Downstream<K, V>(Vec<NodeRef<K, V>>, std::cell::Cell<Option<bool>>);

impl<K, V> Downstream<K, V> {
    /// Whether any child reads old values of table changes (asked of the
    /// children once: a built topology does not change).
    pub(crate) fn needs_old_values(&self) -> bool {
        if let Some(known) = self.1.get() {
            return known;
        }
        let needs = self.0.iter().any(|c| match c.try_borrow() {
            Ok(node) => node.needs_old_values(),
            Err(_) => true,
        });
        self.1.set(Some(needs));
        needs
    }
}

impl<K: Clone, V: Clone> Downstream<K, V> {
    pub(crate) fn forward(&self, cx: &mut Cx, rec: Rec<K, V>) {
        match self.0.split_last() {
            None => {}
            Some((last, rest)) => {
                for c in rest {
                    c.borrow_mut().process(cx, rec.clone());
                }
                last.borrow_mut().process(cx, rec);
            }
        }
    }
}

/// A record leaving the topology, before its partition is chosen.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub topic: String,
    /// Explicit partition (changelogs), else hashed from `hash_key` (or
    /// `key`).
    pub partition: Option<i32>,
    pub hash_key: Option<Vec<u8>>,
    pub key: Raw,
    pub value: Raw,
    pub timestamp: i64,
    pub headers: Headers,
}

/// Per-task counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskMetrics {
    /// Records processed from the task's input partitions.
    pub processed: u64,
    /// Records dropped because their window had closed (past grace).
    pub late_dropped: u64,
    /// Records skipped because their key or value could not be decoded.
    pub undecodable: u64,
    /// Records skipped because a key or value derived from them could not
    /// be encoded (written to a topic or a store).
    pub unencodable: u64,
}

/// What a processor can see and do while processing one record.
pub struct Cx {
    pub(crate) app_id: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) topic: Arc<str>,
    pub(crate) offset: i64,
    pub(crate) wall_ms: i64,
    pub(crate) out: Vec<Pending>,
    pub(crate) metrics: TaskMetrics,
    /// Set when a state store failed; the task stops.
    pub(crate) failed: Option<String>,
    /// The task's stream time: the largest timestamp it has processed.
    pub(crate) stream_time: i64,
}

impl Cx {
    pub(crate) fn new(app_id: Arc<str>, partition: i32) -> Self {
        Cx {
            app_id,
            partition,
            topic: Arc::from(""),
            offset: -1,
            wall_ms: 0,
            out: Vec::new(),
            metrics: TaskMetrics::default(),
            failed: None,
            stream_time: i64::MIN,
        }
    }
    /// The application id.
    pub fn application_id(&self) -> &str {
        &self.app_id
    }
    /// The task's partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }
    /// Topic of the input record being processed.
    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// Offset of the input record being processed.
    pub fn offset(&self) -> i64 {
        self.offset
    }
    /// The task's stream time (largest record timestamp processed so far;
    /// `i64::MIN` before the first record).
    pub fn stream_time(&self) -> i64 {
        self.stream_time
    }
    /// Wall-clock time of this processing round.
    pub fn wall_clock_ms(&self) -> i64 {
        self.wall_ms
    }
}

/// A topic name, user-given or internal (prefixed with the application id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TopicName {
    User(String),
    Internal(String),
}

impl TopicName {
    pub(crate) fn resolve(&self, app_id: &str) -> String {
        match self {
            TopicName::User(t) => t.clone(),
            TopicName::Internal(s) => format!("{app_id}-{s}"),
        }
    }
}

pub(crate) struct SourceDef {
    pub topic: TopicName,
    pub node: usize,
    pub port: Port<Raw, Raw>,
}

#[derive(Clone)]
pub(crate) struct StoreDef {
    pub name: String,
    pub kind: StoreKind,
    pub node: usize,
    pub logged: bool,
}

/// Topology problems found while building.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("{0} needs serdes: give them with the `_with` variant of the call")]
    MissingSerde(String),
    #[error("state store {0} is defined twice")]
    DuplicateStore(String),
    #[error("topology has no source topic")]
    NoSources,
    #[error("invalid topology: {0}")]
    Invalid(String),
}

#[derive(Default)]
pub(crate) struct Graph {
    uf: Vec<usize>,
    pub sources: Vec<SourceDef>,
    pub stores: Vec<StoreDef>,
    /// Repartition topics: (name suffix, node that writes them).
    pub repartitions: Vec<(String, usize)>,
    /// Global tables: (source topic, store name).
    pub globals: Vec<(String, String)>,
    pub errors: Vec<TopologyError>,
    counter: usize,
}

impl Graph {
    pub(crate) fn new_node(&mut self, parent: Option<usize>) -> usize {
        let id = self.uf.len();
        self.uf.push(id);
        if let Some(p) = parent {
            self.union(p, id);
        }
        id
    }
    pub(crate) fn find(&mut self, mut x: usize) -> usize {
        while self.uf[x] != x {
            let up = self.uf[self.uf[x]];
            self.uf[x] = up;
            x = up;
        }
        x
    }
    pub(crate) fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.uf[rb] = ra;
        }
    }
    /// A fresh name like `KSTREAM-AGGREGATE-0000000003`.
    pub(crate) fn name(&mut self, kind: &str) -> String {
        let n = self.counter;
        self.counter += 1;
        format!("{kind}-{n:010}")
    }
}

pub(crate) fn glock(g: &Mutex<Graph>) -> MutexGuard<'_, Graph> {
    g.lock().unwrap_or_else(|e| e.into_inner())
}

/// A node's output: the factories of its children.
pub(crate) struct Port<K, V> {
    pub graph: Arc<Mutex<Graph>>,
    pub id: usize,
    children: Arc<Mutex<Vec<Factory<K, V>>>>,
}

impl<K, V> Clone for Port<K, V> {
    fn clone(&self) -> Self {
        Port {
            graph: self.graph.clone(),
            id: self.id,
            children: self.children.clone(),
        }
    }
}

impl<K: Clone + 'static, V: Clone + 'static> Port<K, V> {
    pub(crate) fn new(graph: Arc<Mutex<Graph>>, id: usize) -> Self {
        Port {
            graph,
            id,
            children: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub(crate) fn instantiate(&self, b: &mut Build<'_>) -> Downstream<K, V> {
        let fs: Vec<Factory<K, V>> = self
            .children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Downstream(
            fs.iter().map(|f| f(b)).collect(),
            std::cell::Cell::new(None),
        )
    }

    pub(crate) fn push(&self, f: Factory<K, V>) {
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(f);
    }

    /// Adds a child node made by `make` from the task's build context and
    /// the child's own downstream; returns the child's output port.
    pub(crate) fn add<K2, V2, N>(
        &self,
        make: impl Fn(&mut Build<'_>, Downstream<K2, V2>) -> N + Send + Sync + 'static,
    ) -> Port<K2, V2>
    where
        K2: Clone + 'static,
        V2: Clone + 'static,
        N: Node<K, V> + 'static,
    {
        let id = glock(&self.graph).new_node(Some(self.id));
        let out: Port<K2, V2> = Port::new(self.graph.clone(), id);
        let out2 = out.clone();
        let make = Arc::new(make);
        self.push(Arc::new(move |b: &mut Build<'_>| {
            let out = out2.clone();
            let make = make.clone();
            b.memo(id, move |b| {
                let ds = out.instantiate(b);
                let n: NodeRef<K, V> = Rc::new(RefCell::new(make(b, ds)));
                n
            })
        }));
        out
    }
}

/// Pass-through node with several parents.
pub(crate) struct Merge<K, V>(pub Downstream<K, V>);
impl<K: Clone, V: Clone> Node<K, V> for Merge<K, V> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        self.0.forward(cx, rec)
    }
}

/// Merges ports into one node with all of them as parents.
pub(crate) fn merge_ports<K: Clone + 'static, V: Clone + 'static>(
    ports: &[Port<K, V>],
) -> Port<K, V> {
    let graph = ports[0].graph.clone();
    let id = {
        let mut g = glock(&graph);
        let id = g.new_node(None);
        for p in ports {
            g.union(p.id, id);
        }
        id
    };
    let out: Port<K, V> = Port::new(graph, id);
    for p in ports {
        let out2 = out.clone();
        p.push(Arc::new(move |b: &mut Build<'_>| {
            let out = out2.clone();
            b.memo(id, move |b| {
                let ds = out.instantiate(b);
                let n: NodeRef<K, V> = Rc::new(RefCell::new(Merge(ds)));
                n
            })
        }));
    }
    out
}

/// Creates storage for a store of a task.
pub trait StoreSupplier: Send + Sync {
    fn open(
        &self,
        app_id: &str,
        store: &str,
        partition: i32,
    ) -> Result<Box<dyn crate::state::KvBytes>, crate::state::StoreError>;
}

/// In-memory storage for every store.
pub struct InMemoryStores;
impl StoreSupplier for InMemoryStores {
    fn open(
        &self,
        _: &str,
        _: &str,
        _: i32,
    ) -> Result<Box<dyn crate::state::KvBytes>, crate::state::StoreError> {
        Ok(Box::new(MemKv::default()))
    }
}

/// The context of instantiating one task.
pub(crate) struct Build<'a> {
    pub app_id: &'a str,
    pub partition: i32,
    memo: HashMap<usize, Box<dyn Any>>,
    pub stores: BTreeMap<String, SharedStore>,
    pub store_defs: &'a HashMap<String, StoreDef>,
    pub supplier: &'a dyn StoreSupplier,
    pub errors: Vec<String>,
    /// Punctuations scheduled by processors of this task.
    pub punctuators: Vec<crate::processor::Punctuator>,
    /// The instance's global table stores, by store name.
    pub globals: HashMap<String, SharedStore>,
    /// Size of each aggregation's record cache (0: off); see `cache.rs`.
    pub cache_max_bytes: usize,
    /// The task's record caches, emptied at each commit.
    pub flushers: Vec<crate::cache::Flusher>,
}

impl<'a> Build<'a> {
    pub(crate) fn new(
        app_id: &'a str,
        partition: i32,
        store_defs: &'a HashMap<String, StoreDef>,
        supplier: &'a dyn StoreSupplier,
    ) -> Self {
        Build {
            app_id,
            partition,
            memo: HashMap::new(),
            stores: BTreeMap::new(),
            store_defs,
            supplier,
            errors: Vec::new(),
            punctuators: Vec::new(),
            globals: HashMap::new(),
            cache_max_bytes: 0,
            flushers: Vec::new(),
        }
    }

    /// An aggregation's downstream behind a record cache of this task's
    /// size, registered to be emptied at commit.
    pub(crate) fn cached<K: Clone + 'static, A: Clone + 'static>(
        &mut self,
        ds: Downstream<K, crate::record::Change<A>>,
    ) -> Rc<RefCell<crate::cache::CachedDownstream<K, A>>> {
        let c = Rc::new(RefCell::new(crate::cache::CachedDownstream::new(
            ds,
            self.cache_max_bytes,
        )));
        if self.cache_max_bytes > 0 {
            let f: crate::cache::Flusher = c.clone();
            self.flushers.push(f);
        }
        c
    }

    pub(crate) fn memo<T: Clone + 'static>(
        &mut self,
        id: usize,
        make: impl FnOnce(&mut Self) -> T,
    ) -> T {
        if let Some(v) = self.memo.get(&id).and_then(|b| b.downcast_ref::<T>()) {
            return v.clone();
        }
        let v = make(self);
        self.memo.insert(id, Box::new(v.clone()));
        v
    }

    /// This task's instance of the named store.
    pub(crate) fn store(&mut self, name: &str) -> SharedStore {
        if let Some(s) = self.stores.get(name) {
            return s.clone();
        }
        let (kind, logged) = self
            .store_defs
            .get(name)
            .map_or((StoreKind::KeyValue, false), |d| (d.kind, d.logged));
        let base: Box<dyn crate::state::KvBytes> =
            match self.supplier.open(self.app_id, name, self.partition) {
                Ok(b) => b,
                Err(e) => {
                    self.errors.push(e.to_string());
                    Box::new(MemKv::default())
                }
            };
        let changelog = logged.then(|| {
            TopicPartition::new(
                TopicName::Internal(format!("{name}-changelog")).resolve(self.app_id),
                self.partition,
            )
        });
        let s = Arc::new(Mutex::new(StateStore::new(
            name.to_string(),
            kind,
            base,
            changelog,
        )));
        self.stores.insert(name.to_string(), s.clone());
        s
    }
}
