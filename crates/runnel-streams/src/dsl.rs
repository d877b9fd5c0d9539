//! The DSL: [`StreamsBuilder`], [`KStream`], [`KTable`], grouped and
//! windowed streams. Each call adds nodes to the graph (see `topology`).

use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::ops;
use crate::record::{Change, RecordMeta, Windowed};
use crate::serdes::{OptionSerde, Serde, SerdeError, SerdeRef, WindowedSerde};
use crate::state::{KvStore, StoreKind, WindowStore};
use crate::topology::{
    glock, merge_ports, Build, Graph, Port, Raw, SourceDef, StoreDef, TopicName, TopologyError,
};
use crate::windows::TimeWindows;
use crate::Topology;

/// A record predicate, for [`KStream::split`].
pub type Predicate<K, V> = Box<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// Bounds every key and value type meets.
pub trait Data: Clone + 'static {}
impl<T: Clone + 'static> Data for T {}

/// Serde placeholder where a required one was missing (the build fails
/// with `MissingSerde` before anything runs).
struct NoSerde;
impl<T> Serde<T> for NoSerde {
    fn serialize(&self, _: &T) -> crate::serdes::Serialized {
        Err(SerdeError("no serde configured".into()))
    }
    fn deserialize(&self, _: Option<&[u8]>) -> Result<T, SerdeError> {
        Err(SerdeError("no serde configured".into()))
    }
}

/// The serde `what` requires: `s`, or a placeholder plus a `MissingSerde`
/// topology error (the build then fails before anything runs).
pub(crate) fn required<T: 'static>(
    graph: &Arc<Mutex<Graph>>,
    s: &Option<SerdeRef<T>>,
    what: &str,
) -> SerdeRef<T> {
    if s.is_none() {
        glock(graph)
            .errors
            .push(TopologyError::MissingSerde(what.to_string()));
    }
    or_missing(s)
}

/// An aggregator over an optional previous aggregate: `init` starts it.
pub(crate) fn with_init<K, V, A: 'static>(
    init: impl Fn() -> A + Send + Sync + 'static,
    agg: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
) -> ops::AggFn<K, V, A> {
    Arc::new(move |k, v, old: Option<A>| agg(k, v, old.unwrap_or_else(&init)))
}

pub(crate) fn or_missing<T: 'static>(s: &Option<SerdeRef<T>>) -> SerdeRef<T> {
    s.clone().unwrap_or_else(|| Arc::new(NoSerde))
}

/// Builds a topology with the DSL.
pub struct StreamsBuilder {
    graph: Arc<Mutex<Graph>>,
}

impl Default for StreamsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) fn root(graph: &Arc<Mutex<Graph>>, topic: TopicName) -> Port<Raw, Raw> {
    let mut g = glock(graph);
    if let Some(s) = g.sources.iter().find(|s| s.topic == topic) {
        return s.port.clone();
    }
    let id = g.new_node(None);
    let port = Port::new(graph.clone(), id);
    g.sources.push(SourceDef {
        topic,
        node: id,
        port: port.clone(),
    });
    port
}

fn deser_stream<K: Data, V: Data>(
    raw: &Port<Raw, Raw>,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
) -> Port<K, V> {
    raw.add(move |_, ds| ops::Deser {
        ks: ks.clone(),
        vs: vs.clone(),
        ds,
    })
}

pub(crate) fn register_store(graph: &Arc<Mutex<Graph>>, name: &str, kind: StoreKind, node: usize) {
    let mut g = glock(graph);
    if g.stores.iter().any(|s| s.name == name) {
        g.errors
            .push(TopologyError::DuplicateStore(name.to_string()));
        return;
    }
    g.stores.push(StoreDef {
        name: name.to_string(),
        kind,
        node,
        logged: true,
    });
}

impl StreamsBuilder {
    pub fn new() -> Self {
        StreamsBuilder {
            graph: Arc::new(Mutex::new(Graph::default())),
        }
    }

    /// A stream of the records of `topic`.
    pub fn stream<K: Data, V: Data>(
        &self,
        topic: &str,
        keys: impl Serde<K>,
        values: impl Serde<V>,
    ) -> KStream<K, V> {
        let raw = root(&self.graph, TopicName::User(topic.to_string()));
        let ks: SerdeRef<K> = Arc::new(keys);
        let vs: SerdeRef<V> = Arc::new(values);
        KStream {
            port: deser_stream(&raw, ks.clone(), vs.clone()),
            ks: Some(ks),
            vs: Some(vs),
            key_changed: false,
        }
    }

    /// A stream of `topic` whose decoded values pass through `f` in the
    /// source's own node: `f` sees the record's metadata and key and may
    /// complete the value or drop the record (`None`). The same as
    /// `stream(…).flat_map_values_with_meta(f)`, one node shorter.
    pub fn stream_with_meta<K: Data, V: Data>(
        &self,
        topic: &str,
        keys: impl Serde<K>,
        values: impl Serde<V>,
        f: impl Fn(&RecordMeta, &K, V) -> Option<V> + Send + Sync + 'static,
    ) -> KStream<K, V> {
        let raw = root(&self.graph, TopicName::User(topic.to_string()));
        let ks: SerdeRef<K> = Arc::new(keys);
        let vs: SerdeRef<V> = Arc::new(values);
        let f = Arc::new(f);
        let (k2, v2) = (ks.clone(), vs.clone());
        let port = raw.add(move |_, ds| ops::DeserWith {
            ks: k2.clone(),
            vs: v2.clone(),
            f: f.clone(),
            ds,
        });
        KStream {
            port,
            ks: Some(ks),
            vs: Some(vs),
            key_changed: false,
        }
    }

    /// A table of the latest value per key of `topic` (null values delete),
    /// materialized in the store `store`.
    pub fn table<K: Data, V: Data>(
        &self,
        topic: &str,
        keys: impl Serde<K>,
        values: impl Serde<V>,
        store: &str,
    ) -> KTable<K, V> {
        let raw = root(&self.graph, TopicName::User(topic.to_string()));
        let ks: SerdeRef<K> = Arc::new(keys);
        let vs: SerdeRef<V> = Arc::new(values);
        let ovs: SerdeRef<Option<V>> = Arc::new(OptionSerde(vs.clone()));
        let port = deser_stream(&raw, ks.clone(), ovs);
        materialize(&port, ks, vs, store)
    }

    pub(crate) fn graph(&self) -> Arc<Mutex<Graph>> {
        self.graph.clone()
    }

    /// Finishes the topology.
    pub fn build(self) -> Result<Topology, TopologyError> {
        Topology::from_graph(self.graph)
    }
}

fn materialize<K: Data, V: Data>(
    port: &Port<K, Option<V>>,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
    store: &str,
) -> KTable<K, V> {
    let name = store.to_string();
    let (k2, v2) = (ks.clone(), vs.clone());
    let n2 = name.clone();
    let out = port.add(move |b: &mut Build<'_>, ds| ops::Materialize {
        store: KvStore::new(b.store(&n2), k2.clone(), v2.clone()),
        ds,
    });
    register_store(&port.graph, &name, StoreKind::KeyValue, out.id);
    KTable {
        port: out,
        ks: Some(ks.clone()),
        vs: Some(vs.clone()),
        getter: kv_getter(name, ks, vs),
    }
}

/// Reads a table's current value of a key, with its timestamp.
pub(crate) type GetFn<K, V> = Rc<dyn Fn(&K) -> Option<(V, i64)>>;
pub(crate) type Getter<K, V> = Arc<dyn Fn(&mut Build<'_>) -> GetFn<K, V> + Send + Sync>;

pub(crate) fn kv_getter<K: Data, V: Data>(
    store: String,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
) -> Getter<K, V> {
    Arc::new(move |b: &mut Build<'_>| {
        let kv = KvStore::new(b.store(&store), ks.clone(), vs.clone());
        let f: GetFn<K, V> = Rc::new(move |k: &K| kv.get_with_ts(k).ok().flatten());
        f
    })
}

/// A record stream.
pub struct KStream<K, V> {
    pub(crate) port: Port<K, V>,
    pub(crate) ks: Option<SerdeRef<K>>,
    pub(crate) vs: Option<SerdeRef<V>>,
    /// Set after a key-changing operation: the next stateful operation
    /// repartitions.
    pub(crate) key_changed: bool,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            port: self.port.clone(),
            ks: self.ks.clone(),
            vs: self.vs.clone(),
            key_changed: self.key_changed,
        }
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    fn derive<K2: Data, V2: Data>(
        &self,
        port: Port<K2, V2>,
        ks: Option<SerdeRef<K2>>,
        vs: Option<SerdeRef<V2>>,
        key_changed: bool,
    ) -> KStream<K2, V2> {
        KStream {
            port,
            ks,
            vs,
            key_changed,
        }
    }

    /// Sets the serdes used by later repartitioning, stores and sinks.
    pub fn with_serdes(self, keys: impl Serde<K>, values: impl Serde<V>) -> Self {
        KStream {
            ks: Some(Arc::new(keys)),
            vs: Some(Arc::new(values)),
            ..self
        }
    }

    /// Keeps records matching `pred`.
    pub fn filter(&self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        let pred = Arc::new(pred);
        let port = self.port.add(move |_, ds| ops::Filter {
            pred: pred.clone(),
            keep: true,
            ds,
        });
        self.derive(port, self.ks.clone(), self.vs.clone(), self.key_changed)
    }

    /// Drops records matching `pred`.
    pub fn filter_not(
        &self,
        pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        let pred = Arc::new(pred);
        let port = self.port.add(move |_, ds| ops::Filter {
            pred: pred.clone(),
            keep: false,
            ds,
        });
        self.derive(port, self.ks.clone(), self.vs.clone(), self.key_changed)
    }

    /// Replaces key and value.
    pub fn map<K2: Data, V2: Data>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let f = Arc::new(f);
        let port = self.port.add(move |_, ds| ops::Map { f: f.clone(), ds });
        self.derive(port, None, None, true)
    }

    /// Replaces the value (the key, and so the partitioning, stays).
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let f = Arc::new(f);
        let port = self
            .port
            .add(move |_, ds| ops::MapValues { f: f.clone(), ds });
        self.derive(port, self.ks.clone(), None, self.key_changed)
    }

    /// Replaces each record with zero or more records.
    pub fn flat_map<K2: Data, V2: Data, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)> + 'static,
    {
        let f = Arc::new(f);
        let port = self
            .port
            .add(move |_, ds| ops::FlatMap { f: f.clone(), ds });
        self.derive(port, None, None, true)
    }

    /// Replaces each value with zero or more values under the same key.
    pub fn flat_map_values<V2: Data, I>(
        &self,
        f: impl Fn(&K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2> + 'static,
    {
        let f = Arc::new(f);
        let port = self
            .port
            .add(move |_, ds| ops::FlatMapValues { f: f.clone(), ds });
        self.derive(port, self.ks.clone(), None, self.key_changed)
    }

    /// Like [`KStream::flat_map_values`], with the record's timestamp,
    /// partition and offset (Kafka Streams' `processValues` with a record
    /// context).
    pub fn flat_map_values_with_meta<V2: Data, I>(
        &self,
        f: impl Fn(&RecordMeta, &K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2> + 'static,
    {
        let f = Arc::new(f);
        let port = self
            .port
            .add(move |_, ds| ops::FlatMapValuesMeta { f: f.clone(), ds });
        self.derive(port, self.ks.clone(), None, self.key_changed)
    }

    /// Sets a new key computed from each record.
    pub fn select_key<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        let f = Arc::new(f);
        let port = self
            .port
            .add(move |_, ds| ops::SelectKey { f: f.clone(), ds });
        self.derive(port, None, self.vs.clone(), true)
    }

    /// Replaces each record's timestamp with `f(key, value, timestamp)`
    /// (a timestamp extractor: event time taken from the payload). Windows,
    /// joins and stream time downstream use the new timestamp.
    pub fn with_timestamps(
        &self,
        f: impl Fn(&K, &V, i64) -> i64 + Send + Sync + 'static,
    ) -> KStream<K, V> {
        let f = Arc::new(f);
        let port = self
            .port
            .add(move |_, ds| ops::SetTimestamp { f: f.clone(), ds });
        self.derive(port, self.ks.clone(), self.vs.clone(), self.key_changed)
    }

    /// Calls `f` on every record and passes it on.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        let f = Arc::new(f);
        let port = self.port.add(move |_, ds| ops::Peek { f: f.clone(), ds });
        self.derive(port, self.ks.clone(), self.vs.clone(), self.key_changed)
    }

    /// Calls `f` on every record (terminal).
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        let f = Arc::new(f);
        let _: Port<K, V> = self.port.add(move |_, ds| ops::Peek { f: f.clone(), ds });
    }

    /// Both streams' records in one stream.
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let port = merge_ports(&[self.port.clone(), other.port.clone()]);
        self.derive(
            port,
            self.ks.clone().or_else(|| other.ks.clone()),
            self.vs.clone().or_else(|| other.vs.clone()),
            self.key_changed || other.key_changed,
        )
    }

    /// Splits by predicates: each record goes to the first branch whose
    /// predicate matches, or to the last (default) branch when none does.
    /// Returns `preds.len() + 1` streams.
    pub fn split(&self, preds: Vec<Predicate<K, V>>) -> Vec<KStream<K, V>> {
        let n = preds.len() + 1;
        ops::Branch::ports(&self.port, Arc::new(preds), n)
            .into_iter()
            .map(|p| self.derive(p, self.ks.clone(), self.vs.clone(), self.key_changed))
            .collect()
    }

    /// Writes every record to `topic` with the stream's serdes.
    pub fn to(&self, topic: &str) {
        self.to_inner(
            ops::TopicChoice::Fixed(TopicName::User(topic.to_string())),
            None,
            None,
        )
    }

    /// Writes every record to `topic` with these serdes.
    pub fn to_with(&self, topic: &str, keys: impl Serde<K>, values: impl Serde<V>) {
        self.to_inner(
            ops::TopicChoice::Fixed(TopicName::User(topic.to_string())),
            Some(Arc::new(keys)),
            Some(Arc::new(values)),
        )
    }

    /// Writes each record to the topic `choose` names for it.
    pub fn to_dynamic(
        &self,
        choose: impl Fn(&K, &V) -> String + Send + Sync + 'static,
        keys: impl Serde<K>,
        values: impl Serde<V>,
    ) {
        self.to_inner(
            ops::TopicChoice::PerRecord(Arc::new(choose)),
            Some(Arc::new(keys)),
            Some(Arc::new(values)),
        )
    }

    fn to_inner(
        &self,
        topic: ops::TopicChoice<K, V>,
        ks: Option<SerdeRef<K>>,
        vs: Option<SerdeRef<V>>,
    ) {
        let ks = ks.or_else(|| self.ks.clone());
        let vs = vs.or_else(|| self.vs.clone());
        if ks.is_none() || vs.is_none() {
            glock(&self.port.graph)
                .errors
                .push(TopologyError::MissingSerde("KStream::to".into()));
        }
        let (ks, vs) = (or_missing(&ks), or_missing(&vs));
        let topic = Arc::new(topic);
        let _: Port<K, V> = self
            .port
            .add(move |_, _ds: crate::topology::Downstream<K, V>| ops::Sink {
                topic: topic.clone(),
                ks: ks.clone(),
                vs: vs.clone(),
                hash: None,
            });
    }

    pub(crate) fn repartitioned_for(&self, what: &str) -> KStream<K, V> {
        self.repartitioned(what)
    }

    /// The stream, repartitioned by its current key through an internal
    /// topic when a key-changing operation came before.
    fn repartitioned(&self, what: &str) -> KStream<K, V> {
        if !self.key_changed {
            return self.clone();
        }
        if self.ks.is_none() || self.vs.is_none() {
            glock(&self.port.graph)
                .errors
                .push(TopologyError::MissingSerde(format!(
                    "{what} after a key change (repartitioning)"
                )));
        }
        let (ks, vs) = (or_missing(&self.ks), or_missing(&self.vs));
        let suffix = format!(
            "{}-repartition",
            glock(&self.port.graph).name("KSTREAM-REPARTITION")
        );
        let topic = TopicName::Internal(suffix.clone());
        let t2 = Arc::new(ops::TopicChoice::Fixed(topic.clone()));
        let (k2, v2) = (ks.clone(), vs.clone());
        let sink: Port<K, V> = self
            .port
            .add(move |_, _ds: crate::topology::Downstream<K, V>| ops::Sink {
                topic: t2.clone(),
                ks: k2.clone(),
                vs: v2.clone(),
                hash: None,
            });
        glock(&self.port.graph).repartitions.push((suffix, sink.id));
        let raw = root(&self.port.graph, topic);
        KStream {
            port: deser_stream(&raw, ks.clone(), vs.clone()),
            ks: Some(ks),
            vs: Some(vs),
            key_changed: false,
        }
    }

    /// Groups by the current key (repartitioning if it was changed).
    pub fn group_by_key(&self) -> KGroupedStream<K, V> {
        KGroupedStream {
            stream: self.clone(),
        }
    }

    /// Groups by a new key (always repartitions).
    pub fn group_by<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        keys: impl Serde<K2>,
    ) -> KGroupedStream<K2, V> {
        let s = self.select_key(f);
        KGroupedStream {
            stream: KStream {
                ks: Some(Arc::new(keys)),
                vs: self.vs.clone(),
                ..s
            },
        }
    }

    /// Materializes the stream as a table (each record an upsert).
    pub fn to_table(&self, store: &str) -> KTable<K, V> {
        let s = self.repartitioned("to_table");
        let port = s.port.add(move |_, ds| ops::MapValues {
            f: Arc::new(|_: &K, v: V| Some(v)),
            ds,
        });
        materialize(&port, or_missing(&s.ks), or_missing(&s.vs), store)
    }

    /// Stream-table inner join: each record joined with the table's current
    /// value for its key; records without a match are dropped.
    pub fn join<V2: Data, VR: Data>(
        &self,
        table: &KTable<K, V2>,
        joiner: impl Fn(&V, &V2) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let j = Arc::new(joiner);
        self.join_filter_map(table, move |v: V, t: Option<&V2>| t.map(|t| j(&v, t)))
    }

    /// Stream-table left join: records without a match are joined with
    /// `None`.
    pub fn left_join<V2: Data, VR: Data>(
        &self,
        table: &KTable<K, V2>,
        joiner: impl Fn(&V, Option<&V2>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let j = Arc::new(joiner);
        self.join_filter_map(table, move |v: V, t: Option<&V2>| Some(j(&v, t)))
    }

    /// The general stream-table join that [`join`](Self::join) and
    /// [`left_join`](Self::left_join) are made of: each record's value
    /// moves into `joiner` with the table's current value for its key (if
    /// any), and `None` drops the record. Taking the value spares a copy
    /// when the result is built from it.
    pub fn join_filter_map<V2: Data, VR: Data>(
        &self,
        table: &KTable<K, V2>,
        joiner: impl Fn(V, Option<&V2>) -> Option<VR> + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let s = self.repartitioned("join");
        glock(&s.port.graph).union(s.port.id, table.port.id);
        let getter = table.getter.clone();
        let joiner = Arc::new(joiner);
        let port = s
            .port
            .add(move |b: &mut Build<'_>, ds| ops::StreamTableJoin {
                get: getter(b),
                joiner: joiner.clone(),
                ds,
                _v: std::marker::PhantomData,
            });
        self.derive(port, s.ks.clone(), None, false)
    }
}

impl<K: Data, V: Data> KStream<K, Option<V>> {
    /// The stream as a table in which `None` deletes the key, as Kafka
    /// Streams' `toTable` treats null values; `values` encodes the rows.
    pub fn to_table_nullable(&self, store: &str, values: impl Serde<V>) -> KTable<K, V> {
        let s = self.repartitioned("to_table");
        materialize(&s.port, or_missing(&s.ks), Arc::new(values), store)
    }
}

/// A stream grouped by key, ready to aggregate.
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Counts records per key into the store `store`.
    pub fn count(&self, store: &str) -> KTable<K, i64> {
        self.aggregate(|| 0i64, |_, _, n| n + 1, crate::serdes::I64Serde, store)
    }

    /// Combines values per key with `f` (the first value starts the
    /// aggregate).
    pub fn reduce(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        store: &str,
    ) -> KTable<K, V> {
        let (agg, vs) = reducer(&self.stream, "reduce", f);
        let s = self.stream.repartitioned("reduce");
        aggregate_table(&s, agg, vs, store)
    }

    /// Folds values per key: `init` starts each key's aggregate, `agg`
    /// adds a value.
    pub fn aggregate<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        agg: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        agg_serde: impl Serde<A>,
        store: &str,
    ) -> KTable<K, A> {
        let s = self.stream.repartitioned("aggregate");
        let f = with_init(init, agg);
        aggregate_table(&s, f, Arc::new(agg_serde), store)
    }

    /// Aggregates per key and time window.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream {
            stream: self.stream.repartitioned("windowed aggregation"),
            windows,
            emit_final: false,
            retention_ms: None,
        }
    }
}

/// A reducer as an aggregator (a key's or window's first value starts its
/// aggregate) and the stream's value serde, which stores the aggregate;
/// records a topology error when the stream has none.
pub(crate) fn reducer<K: Data, V: Data>(
    s: &KStream<K, V>,
    what: &str,
    f: impl Fn(V, V) -> V + Send + Sync + 'static,
) -> (ops::AggFn<K, V, V>, SerdeRef<V>) {
    let vs = required(&s.port.graph, &s.vs, what);
    let agg: ops::AggFn<K, V, V> = Arc::new(move |_, v, old: Option<V>| match old {
        None => v,
        Some(o) => f(o, v),
    });
    (agg, vs)
}

fn aggregate_table<K: Data, V: Data, A: Data>(
    s: &KStream<K, V>,
    agg: ops::AggFn<K, V, A>,
    agg_serde: SerdeRef<A>,
    store: &str,
) -> KTable<K, A> {
    let ks = required(&s.port.graph, &s.ks, "aggregation key");
    let name = store.to_string();
    let (k2, a2, n2) = (ks.clone(), agg_serde.clone(), name.clone());
    let port = s.port.add(move |b: &mut Build<'_>, ds| ops::Aggregate {
        store: KvStore::new(b.store(&n2), k2.clone(), a2.clone()),
        agg: agg.clone(),
        ds,
    });
    register_store(&s.port.graph, &name, StoreKind::KeyValue, port.id);
    KTable {
        port,
        ks: Some(ks.clone()),
        vs: Some(agg_serde.clone()),
        getter: kv_getter(name, ks, agg_serde),
    }
}

/// A grouped stream with time windows.
pub struct TimeWindowedKStream<K, V> {
    stream: KStream<K, V>,
    windows: TimeWindows,
    emit_final: bool,
    retention_ms: Option<i64>,
}

impl<K: Data, V: Data> TimeWindowedKStream<K, V> {
    /// Emit each window's result once, when it closes (window end + grace
    /// reached by stream time), instead of on every update.
    pub fn emit_final(mut self) -> Self {
        self.emit_final = true;
        self
    }

    /// How long (stream time after a window's start) windows stay in the
    /// store; at least size + grace.
    pub fn retention(mut self, retention: std::time::Duration) -> Self {
        let ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        self.retention_ms = Some(ms);
        self
    }

    /// Counts records per key and window.
    pub fn count(&self, store: &str) -> KTable<Windowed<K>, i64> {
        self.aggregate(|| 0i64, |_, _, n| n + 1, crate::serdes::I64Serde, store)
    }

    /// Combines values per key and window.
    pub fn reduce(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        store: &str,
    ) -> KTable<Windowed<K>, V> {
        let (agg, vs) = reducer(&self.stream, "windowed reduce", f);
        self.aggregate_with(agg, vs, store)
    }

    /// Folds values per key and window.
    pub fn aggregate<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        agg: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        agg_serde: impl Serde<A>,
        store: &str,
    ) -> KTable<Windowed<K>, A> {
        let f = with_init(init, agg);
        self.aggregate_with(f, Arc::new(agg_serde), store)
    }

    fn aggregate_with<A: Data>(
        &self,
        agg: ops::AggFn<K, V, A>,
        agg_serde: SerdeRef<A>,
        store: &str,
    ) -> KTable<Windowed<K>, A> {
        let s = &self.stream;
        let ks = required(&s.port.graph, &s.ks, "windowed aggregation key");
        let windows = self.windows;
        let retention = self
            .retention_ms
            .unwrap_or_else(|| windows.default_retention_ms())
            .max(windows.size_ms + windows.grace_ms);
        // Final results come from windows Kafka Streams' store would still
        // show: within the retention asked for, else size + grace.
        let emit_final = self.emit_final.then(|| {
            self.retention_ms
                .unwrap_or(0)
                .max(windows.size_ms.saturating_add(windows.grace_ms))
        });
        let name = store.to_string();
        let (k2, a2, n2) = (ks.clone(), agg_serde.clone(), name.clone());
        let port = s.port.add(move |b: &mut Build<'_>, ds| {
            let out = b.cached(ds);
            ops::WindowAggregate::new(
                WindowStore::new(b.store(&n2), k2.clone(), a2.clone(), windows.size_ms),
                windows,
                retention,
                emit_final,
                agg.clone(),
                out,
            )
        });
        register_store(
            &s.port.graph,
            &name,
            StoreKind::Window {
                retention_ms: retention,
            },
            port.id,
        );
        let wks: SerdeRef<Windowed<K>> = Arc::new(WindowedSerde::time(ks.clone(), windows.size_ms));
        let size = windows.size_ms;
        let (k3, a3, n3) = (ks, agg_serde.clone(), name);
        let getter: Getter<Windowed<K>, A> = Arc::new(move |b: &mut Build<'_>| {
            let ws = WindowStore::new(b.store(&n3), k3.clone(), a3.clone(), size);
            let f: GetFn<Windowed<K>, A> = Rc::new(move |k: &Windowed<K>| {
                ws.get_with_ts(&k.key, k.window.start).ok().flatten()
            });
            f
        });
        KTable {
            port,
            ks: Some(wks),
            vs: Some(agg_serde),
            getter,
        }
    }
}

/// A changelog stream: the latest value per key.
pub struct KTable<K, V> {
    pub(crate) port: Port<K, Change<V>>,
    pub(crate) ks: Option<SerdeRef<K>>,
    pub(crate) vs: Option<SerdeRef<V>>,
    pub(crate) getter: Getter<K, V>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            port: self.port.clone(),
            ks: self.ks.clone(),
            vs: self.vs.clone(),
            getter: self.getter.clone(),
        }
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Keeps rows matching `pred` (others read as absent).
    pub fn filter(&self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        let pred = Arc::new(pred);
        let p2 = pred.clone();
        let port = self.port.add(move |_, ds| ops::TableFilter {
            pred: p2.clone(),
            ds,
        });
        let parent = self.getter.clone();
        let getter: Getter<K, V> = Arc::new(move |b: &mut Build<'_>| {
            let g = parent(b);
            let pred = pred.clone();
            let f: GetFn<K, V> = Rc::new(move |k: &K| g(k).filter(|(v, _)| pred(k, v)));
            f
        });
        KTable {
            port,
            ks: self.ks.clone(),
            vs: self.vs.clone(),
            getter,
        }
    }

    /// Maps every row's value.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(&K, &V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        self.map_values_owned(move |k: &K, v: V| f(k, &v))
    }

    /// [`map_values`](Self::map_values) with each value handed over, so
    /// the mapping can reuse what the value owns (the table's stored value
    /// is unaffected: it is decoded anew for every lookup).
    pub fn map_values_owned<V2: Data>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let f = Arc::new(f);
        let f2 = f.clone();
        let port = self
            .port
            .add(move |_, ds| ops::TableMapValues { f: f2.clone(), ds });
        let parent = self.getter.clone();
        let getter: Getter<K, V2> = Arc::new(move |b: &mut Build<'_>| {
            let g = parent(b);
            let f = f.clone();
            let out: GetFn<K, V2> = Rc::new(move |k: &K| g(k).map(|(v, ts)| (f(k, v), ts)));
            out
        });
        KTable {
            port,
            ks: self.ks.clone(),
            vs: None,
            getter,
        }
    }

    /// Sets the serdes used when the table is written or joined.
    pub fn with_serdes(self, keys: impl Serde<K>, values: impl Serde<V>) -> Self {
        KTable {
            ks: Some(Arc::new(keys)),
            vs: Some(Arc::new(values)),
            ..self
        }
    }

    /// The table's updates as a stream (`None` for deletions).
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let port = self.port.add(move |_, ds| ops::ToStream { ds });
        let vs: Option<SerdeRef<Option<V>>> = self
            .vs
            .clone()
            .map(|v| -> SerdeRef<Option<V>> { Arc::new(OptionSerde(v)) });
        KStream {
            port,
            ks: self.ks.clone(),
            vs,
            key_changed: false,
        }
    }

    /// Table-table inner join on the primary key.
    pub fn join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&V, &V2) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let j = Arc::new(joiner);
        self.join_with(other, ops::JoinKind::Inner, move |a, b| match (a, b) {
            (Some(a), Some(b)) => Some(j(a, b)),
            _ => None,
        })
    }

    /// Table-table left join: rows of this table without a match join with
    /// `None`.
    pub fn left_join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&V, Option<&V2>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let j = Arc::new(joiner);
        self.join_with(other, ops::JoinKind::Left, move |a, b| a.map(|a| j(a, b)))
    }

    /// Table-table outer join: a row exists while either side has one.
    pub fn outer_join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let j = Arc::new(joiner);
        self.join_with(other, ops::JoinKind::Outer, move |a, b| {
            if a.is_none() && b.is_none() {
                None
            } else {
                Some(j(a, b))
            }
        })
    }

    fn join_with<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        _kind: ops::JoinKind,
        joiner: impl Fn(Option<&V>, Option<&V2>) -> Option<VR> + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        glock(&self.port.graph).union(self.port.id, other.port.id);
        let joiner = Arc::new(joiner);
        let (j1, j2) = (joiner.clone(), joiner.clone());
        let right_get = other.getter.clone();
        let left = self
            .port
            .add(move |b: &mut Build<'_>, ds| ops::TableJoinSide {
                other: right_get(b),
                joiner: {
                    let j = j1.clone();
                    let f: ops::JoinFn<V, V2, VR> =
                        Arc::new(move |mine: Option<&V>, theirs: Option<&V2>| j(mine, theirs));
                    f
                },
                ds,
            });
        let left_get = self.getter.clone();
        let right = other
            .port
            .add(move |b: &mut Build<'_>, ds| ops::TableJoinSide {
                other: left_get(b),
                joiner: {
                    let j = j2.clone();
                    let f: ops::JoinFn<V2, V, VR> =
                        Arc::new(move |mine: Option<&V2>, theirs: Option<&V>| j(theirs, mine));
                    f
                },
                ds,
            });
        let port = merge_ports(&[left, right]);
        let (lg, rg) = (self.getter.clone(), other.getter.clone());
        let getter: Getter<K, VR> = Arc::new(move |b: &mut Build<'_>| {
            let (l, r) = (lg(b), rg(b));
            let j = joiner.clone();
            let f: GetFn<K, VR> = Rc::new(move |k: &K| {
                let a = l(k);
                let bb = r(k);
                let ts = a
                    .as_ref()
                    .map_or(i64::MIN, |x| x.1)
                    .max(bb.as_ref().map_or(i64::MIN, |x| x.1));
                j(a.as_ref().map(|x| &x.0), bb.as_ref().map(|x| &x.0)).map(|v| (v, ts))
            });
            f
        });
        KTable {
            port,
            ks: self.ks.clone(),
            vs: None,
            getter,
        }
    }
}
