//! The low-level processor API: user code that sees each record, reads and
//! writes state stores, forwards any number of records, and is called back
//! on a schedule of stream time or wall-clock time (punctuation).
//!
//! ```ignore
//! struct Dedupe { seen: StoreHandle<String, i64> }
//! impl Processor<String, String, String, String> for Dedupe {
//!     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, rec: Rec<String, String>) {
//!         let store = ctx.kv_store(&self.seen);
//!         if store.get(&rec.key).ok().flatten().is_none() {
//!             // Err: the timestamp could not be encoded; skip the record.
//!             if store.put(&rec.key, Some(&rec.timestamp), rec.timestamp).is_ok() {
//!                 ctx.forward(rec);
//!             }
//!         }
//!     }
//! }
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::dsl::{register_store, Data, KStream, StreamsBuilder};
use crate::record::Rec;
use crate::serdes::{Serde, SerdeRef};
use crate::state::{KvStore, SharedStore, StoreKind};
use crate::topology::{glock, Build, Cx, Downstream, Node, NodeRef, Port};

/// When a punctuation fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunctuationType {
    /// As the task's stream time passes each multiple of the interval.
    StreamTime,
    /// As wall-clock time passes each interval (checked every poll).
    WallClockTime,
}

/// A typed key-value store for processors, declared on the builder.
pub struct StoreHandle<K, V> {
    name: String,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
}

impl<K, V> Clone for StoreHandle<K, V> {
    fn clone(&self) -> Self {
        StoreHandle {
            name: self.name.clone(),
            ks: self.ks.clone(),
            vs: self.vs.clone(),
        }
    }
}

impl<K, V> StoreHandle<K, V> {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl StreamsBuilder {
    /// Declares a key-value store (with a changelog) for processors; connect
    /// it with [`KStream::process`].
    pub fn kv_store<K: Data, V: Data>(
        &self,
        name: &str,
        keys: impl Serde<K>,
        values: impl Serde<V>,
    ) -> StoreHandle<K, V> {
        StoreHandle {
            name: name.to_string(),
            ks: Arc::new(keys),
            vs: Arc::new(values),
        }
    }
}

/// What a processor sees: the record's context, its stores, and where to
/// forward.
pub struct ProcessorContext<'a, KO, VO> {
    cx: &'a mut Cx,
    ds: &'a Downstream<KO, VO>,
    stores: &'a HashMap<String, SharedStore>,
    schedules: Option<&'a mut Vec<(Duration, PunctuationType)>>,
}

impl<KO: Clone, VO: Clone> ProcessorContext<'_, KO, VO> {
    /// Sends a record to the next operators.
    pub fn forward(&mut self, rec: Rec<KO, VO>) {
        self.ds.forward(self.cx, rec);
    }
    /// This task's instance of a connected store.
    pub fn kv_store<K: 'static, V: 'static>(&self, h: &StoreHandle<K, V>) -> Option<KvStore<K, V>> {
        self.stores
            .get(&h.name)
            .map(|s| KvStore::new(s.clone(), h.ks.clone(), h.vs.clone()))
    }
    /// Calls [`Processor::punctuate`] every `interval`. Only from `init`.
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) {
        if let Some(s) = self.schedules.as_mut() {
            s.push((interval, kind));
        }
    }
    /// Record context, stream time, wall clock, partition.
    pub fn context(&self) -> &Cx {
        self.cx
    }
}

/// User processing logic for one task.
pub trait Processor<K, V, KO, VO>: 'static {
    /// Called once per task before any record; may schedule punctuations.
    fn init(&mut self, _ctx: &mut ProcessorContext<'_, KO, VO>) {}
    /// Called for every record.
    fn process(&mut self, ctx: &mut ProcessorContext<'_, KO, VO>, rec: Rec<K, V>);
    /// Called on each scheduled punctuation with its time.
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, KO, VO>,
        _kind: PunctuationType,
        _time: i64,
    ) {
    }
}

struct ProcessorNode<P, KO, VO> {
    p: P,
    ds: Downstream<KO, VO>,
    stores: HashMap<String, SharedStore>,
}

impl<K, V, KO: Clone, VO: Clone, P: Processor<K, V, KO, VO>> Node<K, V>
    for ProcessorNode<P, KO, VO>
{
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        let mut ctx = ProcessorContext {
            cx,
            ds: &self.ds,
            stores: &self.stores,
            schedules: None,
        };
        self.p.process(&mut ctx, rec);
    }
}

/// Something a task calls back on schedule.
pub(crate) trait Punctuate {
    fn punctuate(&mut self, cx: &mut Cx, kind: PunctuationType, time: i64);
}

impl<KO: Clone, VO: Clone, P: PunctuateAny<KO, VO>> Punctuate for ProcessorNode<P, KO, VO> {
    fn punctuate(&mut self, cx: &mut Cx, kind: PunctuationType, time: i64) {
        let mut ctx = ProcessorContext {
            cx,
            ds: &self.ds,
            stores: &self.stores,
            schedules: None,
        };
        self.p.punctuate_any(&mut ctx, kind, time);
    }
}

/// `Processor::punctuate` without the input type parameters (which a
/// scheduled callback does not have).
pub(crate) trait PunctuateAny<KO, VO> {
    fn punctuate_any(
        &mut self,
        ctx: &mut ProcessorContext<'_, KO, VO>,
        kind: PunctuationType,
        time: i64,
    );
}

struct Typed<P, K, V> {
    p: P,
    _t: std::marker::PhantomData<fn(K, V)>,
}

impl<K: 'static, V: 'static, KO, VO, P: Processor<K, V, KO, VO>> PunctuateAny<KO, VO>
    for Typed<P, K, V>
{
    fn punctuate_any(
        &mut self,
        ctx: &mut ProcessorContext<'_, KO, VO>,
        kind: PunctuationType,
        time: i64,
    ) {
        self.p.punctuate(ctx, kind, time);
    }
}

impl<K: 'static, V: 'static, KO, VO, P: Processor<K, V, KO, VO>> Processor<K, V, KO, VO>
    for Typed<P, K, V>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, KO, VO>) {
        self.p.init(ctx);
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_, KO, VO>, rec: Rec<K, V>) {
        self.p.process(ctx, rec);
    }
}

/// A scheduled punctuation of one task.
pub struct Punctuator {
    pub(crate) kind: PunctuationType,
    pub(crate) interval_ms: i64,
    /// Next time it fires; set from the first observed time.
    pub(crate) next: Option<i64>,
    pub(crate) node: Rc<RefCell<dyn Punctuate>>,
}

impl Punctuator {
    /// Fires if due at `now` (stream or wall time, by kind).
    pub(crate) fn maybe_fire(&mut self, cx: &mut Cx, now: i64) {
        if now == i64::MIN {
            return;
        }
        let next = *self
            .next
            .get_or_insert_with(|| now.saturating_add(self.interval_ms));
        if now >= next {
            self.node.borrow_mut().punctuate(cx, self.kind, now);
            // Skip missed intervals, as Kafka Streams does.
            let missed = (now - next) / self.interval_ms.max(1);
            self.next = Some(next.saturating_add((missed + 1).saturating_mul(self.interval_ms)));
        }
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Runs a [`Processor`] made by `supplier` (one per task) on every
    /// record, with access to `stores`.
    pub fn process<KO: Data, VO: Data, P>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&dyn StoreName],
    ) -> KStream<KO, VO>
    where
        P: Processor<K, V, KO, VO>,
    {
        let graph = self.port.graph.clone();
        let id = glock(&graph).new_node(Some(self.port.id));
        for s in stores {
            let existing = glock(&graph)
                .stores
                .iter()
                .find(|d| d.name == s.store_name())
                .map(|d| d.node);
            match existing {
                Some(node) => glock(&graph).union(node, id),
                None => register_store(&graph, s.store_name(), StoreKind::KeyValue, id),
            }
        }
        let names: Arc<Vec<String>> =
            Arc::new(stores.iter().map(|s| s.store_name().to_string()).collect());
        let out: Port<KO, VO> = Port::new(graph, id);
        let out2 = out.clone();
        let supplier = Arc::new(supplier);
        self.port.push(Arc::new(move |b: &mut Build<'_>| {
            let out = out2.clone();
            let supplier = supplier.clone();
            let names = names.clone();
            b.memo(id, move |b| {
                let ds = out.instantiate(b);
                let stores: HashMap<String, SharedStore> =
                    names.iter().map(|n| (n.clone(), b.store(n))).collect();
                let node = Rc::new(RefCell::new(ProcessorNode {
                    p: Typed {
                        p: supplier(),
                        _t: std::marker::PhantomData::<fn(K, V)>,
                    },
                    ds,
                    stores,
                }));
                // init, collecting schedules; forwards from init go nowhere
                // useful before the task runs, so init gets no record context.
                let mut schedules = Vec::new();
                let mut cx = Cx::new(std::sync::Arc::from(b.app_id), b.partition);
                {
                    let mut n = node.borrow_mut();
                    let n = &mut *n;
                    let mut ctx = ProcessorContext {
                        cx: &mut cx,
                        ds: &n.ds,
                        stores: &n.stores,
                        schedules: Some(&mut schedules),
                    };
                    Processor::<K, V, KO, VO>::init(&mut n.p, &mut ctx);
                }
                for (interval, kind) in schedules {
                    let interval_ms = i64::try_from(interval.as_millis())
                        .unwrap_or(i64::MAX)
                        .max(1);
                    let p: Rc<RefCell<dyn Punctuate>> = node.clone();
                    b.punctuators.push(Punctuator {
                        kind,
                        interval_ms,
                        next: None,
                        node: p,
                    });
                }
                let n: NodeRef<K, V> = node;
                n
            })
        }));
        KStream {
            port: out,
            ks: None,
            vs: None,
            key_changed: true,
        }
    }
}

/// Anything naming a store to connect to a processor.
pub trait StoreName {
    fn store_name(&self) -> &str;
}

impl<K, V> StoreName for StoreHandle<K, V> {
    fn store_name(&self) -> &str {
        &self.name
    }
}
