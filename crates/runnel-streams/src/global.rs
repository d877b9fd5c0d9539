//! Global tables: a table fully replicated on every instance (all
//! partitions of its topic), for joins that need no co-partitioning —
//! Kafka Streams' `GlobalKTable`.
//!
//! The topic itself is the table's changelog: each instance reads every
//! partition (read_committed) into a store before processing starts, then
//! keeps catching up between processing rounds. Stream records look rows up
//! by a key they compute, so the stream keeps its own partitioning.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::{Backend, BackendError, TopicPartition};
use crate::dsl::{Data, KStream, StreamsBuilder};
use crate::ops;
use crate::serdes::{Serde, SerdeRef};
use crate::state::kv::encode_value;
use crate::state::{lock, KvStore, MemKv, SharedStore, StateStore, StoreKind};
use crate::topology::{glock, Build};

/// A table replicated in full on every instance.
pub struct GlobalKTable<K, V> {
    store: String,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
}

impl<K, V> Clone for GlobalKTable<K, V> {
    fn clone(&self) -> Self {
        GlobalKTable {
            store: self.store.clone(),
            ks: self.ks.clone(),
            vs: self.vs.clone(),
        }
    }
}

impl<K, V> GlobalKTable<K, V> {
    /// The store holding the table (for interactive queries).
    pub fn store_name(&self) -> &str {
        &self.store
    }
}

impl StreamsBuilder {
    /// A global table of `topic` (every partition, on every instance),
    /// materialized in `store`.
    pub fn global_table<K: Data, V: Data>(
        &self,
        topic: &str,
        keys: impl Serde<K>,
        values: impl Serde<V>,
        store: &str,
    ) -> GlobalKTable<K, V> {
        let graph = self.graph();
        {
            let mut g = glock(&graph);
            if g.globals.iter().any(|(_, s)| s == store) || g.stores.iter().any(|d| d.name == store)
            {
                g.errors
                    .push(crate::TopologyError::DuplicateStore(store.to_string()));
            }
            g.globals.push((topic.to_string(), store.to_string()));
        }
        GlobalKTable {
            store: store.to_string(),
            ks: Arc::new(keys),
            vs: Arc::new(values),
        }
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Stream-global table inner join: each record looks up the row whose
    /// key `key_of` computes; records without a row are dropped.
    pub fn join_global<GK: Data, GV: Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_of: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, &GV) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let j = Arc::new(joiner);
        self.global_join(table, key_of, move |v: &V, g: Option<&GV>| {
            g.map(|g| j(v, g))
        })
    }

    /// Stream-global table left join: records without a row join `None`.
    pub fn left_join_global<GK: Data, GV: Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_of: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&GV>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let j = Arc::new(joiner);
        self.global_join(table, key_of, move |v: &V, g: Option<&GV>| Some(j(v, g)))
    }

    fn global_join<GK: Data, GV: Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_of: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&GV>) -> Option<VR> + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let t = table.clone();
        let key_of = Arc::new(key_of);
        let joiner = Arc::new(joiner);
        let port = self.port.add(move |b: &mut Build<'_>, ds| {
            let store = b
                .globals
                .get(&t.store)
                .cloned()
                .unwrap_or_else(|| b.store(&t.store));
            let kv = KvStore::new(store, t.ks.clone(), t.vs.clone());
            let key_of = key_of.clone();
            let lookup: crate::dsl::GetFn<(K, V), GV> = Rc::new(move |kv_pair: &(K, V)| {
                kv.get_with_ts(&key_of(&kv_pair.0, &kv_pair.1))
                    .ok()
                    .flatten()
            });
            ops::GlobalJoin {
                lookup,
                joiner: joiner.clone(),
                ds,
            }
        });
        KStream {
            port,
            ks: self.ks.clone(),
            vs: None,
            key_changed: self.key_changed,
        }
    }
}

/// The global tables of one instance and how far each partition was read.
#[derive(Default)]
pub(crate) struct Globals {
    pub stores: HashMap<String, SharedStore>,
    topics: Vec<(String, String)>,
    positions: HashMap<TopicPartition, i64>,
    last_refresh: Option<Instant>,
}

/// How often global tables catch up with their topics while processing.
const REFRESH_EVERY: Duration = Duration::from_millis(100);

impl Globals {
    pub(crate) fn new(topics: &[(String, String)]) -> Globals {
        let mut g = Globals {
            topics: topics.to_vec(),
            ..Globals::default()
        };
        for (_, store) in topics {
            let s = StateStore::new(
                store.clone(),
                StoreKind::KeyValue,
                Box::new(MemKv::default()),
                None,
            );
            g.stores.insert(store.clone(), Arc::new(Mutex::new(s)));
        }
        g
    }

    /// Reads what is new in every partition of every global topic.
    /// Returns the number of records applied.
    pub(crate) fn refresh(
        &mut self,
        backend: &mut dyn Backend,
        force: bool,
    ) -> Result<u64, BackendError> {
        if self.topics.is_empty() {
            return Ok(0);
        }
        if !force
            && self
                .last_refresh
                .is_some_and(|t| t.elapsed() < REFRESH_EVERY)
        {
            return Ok(0);
        }
        self.last_refresh = Some(Instant::now());
        let mut applied = 0u64;
        for (topic, store) in self.topics.clone() {
            let Some(n) = backend.partition_count(&topic)? else {
                return Err(BackendError::Fatal(format!(
                    "global table topic {topic} does not exist"
                )));
            };
            let Some(s) = self.stores.get(&store).cloned() else {
                continue;
            };
            for p in 0..n {
                let tp = TopicPartition::new(topic.clone(), p);
                let from = self.positions.get(&tp).copied().unwrap_or(0);
                let mut writes = Vec::new();
                let end = backend.read_partition(&tp, from, &mut |r| {
                    if let Some(k) = r.key {
                        writes.push((k, r.value.map(|v| encode_value(r.timestamp, Some(v)))));
                    }
                })?;
                applied += writes.len() as u64;
                if !writes.is_empty() {
                    let mut st = lock(&s);
                    for (k, v) in writes {
                        st.put(k, v);
                    }
                    // Global stores have no changelog: apply at once.
                    st.committed(None)
                        .map_err(|e| BackendError::Fatal(e.to_string()))?;
                }
                self.positions.insert(tp, end.max(from));
            }
        }
        Ok(applied)
    }
}
