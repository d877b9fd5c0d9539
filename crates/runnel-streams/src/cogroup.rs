//! Cogrouping: several grouped streams, each with its own value type and
//! aggregator, folded into one aggregate per key in one store (Kafka
//! Streams' `cogroup`). The inputs must be co-partitioned (each is
//! repartitioned first if its key changed).

use std::sync::{Arc, Mutex};

use crate::dsl::{kv_getter, register_store, Data, KGroupedStream, KTable};
use crate::ops;
use crate::record::Change;
use crate::serdes::{Serde, SerdeRef};
use crate::state::{KvStore, StoreKind};
use crate::topology::{merge_ports, Build, Graph, Port};

type Init<A> = Arc<dyn Fn() -> A + Send + Sync>;
/// Adds one input's aggregation node for a store; returns its output.
type Part<K, A> = Box<dyn FnOnce(&str, SerdeRef<K>, SerdeRef<A>, Init<A>) -> Port<K, Change<A>>>;

/// Grouped streams being aggregated together.
pub struct CogroupedKStream<K, A> {
    graph: Arc<Mutex<Graph>>,
    ks: Option<SerdeRef<K>>,
    parts: Vec<Part<K, A>>,
}

fn part<K: Data, V: Data, A: Data>(
    g: &KGroupedStream<K, V>,
    agg: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
) -> Part<K, A> {
    let stream = g.stream.repartitioned_for("cogroup");
    let agg = Arc::new(agg);
    Box::new(
        move |store: &str, ks: SerdeRef<K>, vs: SerdeRef<A>, init: Init<A>| {
            let name = store.to_string();
            let f: ops::AggFn<K, V, A> =
                Arc::new(move |k, v, old: Option<A>| agg(k, v, old.unwrap_or_else(|| init())));
            stream
                .port
                .add(move |b: &mut Build<'_>, ds| ops::Aggregate {
                    store: KvStore::new(b.store(&name), ks.clone(), vs.clone()),
                    agg: f.clone(),
                    ds,
                })
        },
    )
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Starts a cogroup with this stream and its aggregator.
    pub fn cogroup<A: Data>(
        &self,
        agg: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
    ) -> CogroupedKStream<K, A> {
        CogroupedKStream {
            graph: self.stream.port.graph.clone(),
            ks: self.stream.ks.clone(),
            parts: vec![part(self, agg)],
        }
    }
}

impl<K: Data, A: Data> CogroupedKStream<K, A> {
    /// Adds another grouped stream with its aggregator.
    pub fn cogroup<V2: Data>(
        mut self,
        other: &KGroupedStream<K, V2>,
        agg: impl Fn(&K, V2, A) -> A + Send + Sync + 'static,
    ) -> Self {
        self.parts.push(part(other, agg));
        self
    }

    /// Aggregates all inputs into `store`: `init` starts each key's
    /// aggregate, each input's aggregator adds its records.
    pub fn aggregate(
        self,
        init: impl Fn() -> A + Send + Sync + 'static,
        agg_serde: impl Serde<A>,
        store: &str,
    ) -> KTable<K, A> {
        let graph = self.graph.clone();
        let ks = crate::dsl::required(&graph, &self.ks, "cogroup key");
        let vs: SerdeRef<A> = Arc::new(agg_serde);
        let init: Init<A> = Arc::new(init);
        let ports: Vec<Port<K, Change<A>>> = self
            .parts
            .into_iter()
            .map(|p| p(store, ks.clone(), vs.clone(), init.clone()))
            .collect();
        let out = merge_ports(&ports);
        register_store(&graph, store, StoreKind::KeyValue, out.id);
        KTable {
            port: out,
            ks: Some(ks.clone()),
            vs: Some(vs.clone()),
            getter: kv_getter(store.to_string(), ks, vs),
        }
    }
}
