//! The processors behind the DSL, one per operation.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::cache::CachedDownstream;
use crate::dsl::GetFn;
use crate::record::{Change, Rec, Window, Windowed};
use crate::serdes::SerdeRef;
use crate::state::{lock, KvStore, WindowStore};
use crate::topology::{glock, Build, Cx, Downstream, Node, NodeRef, Pending, Port, Raw, TopicName};
use crate::windows::TimeWindows;

/// Source: decodes raw key and value; undecodable records are skipped and
/// counted (log-and-continue).
pub(crate) struct Deser<K, V> {
    pub ks: SerdeRef<K>,
    pub vs: SerdeRef<V>,
    pub ds: Downstream<K, V>,
}

impl<K: Clone + 'static, V: Clone + 'static> Node<Raw, Raw> for Deser<K, V> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<Raw, Raw>) {
        if let Some(rec) = decode(&self.ks, &self.vs, cx, rec) {
            self.ds.forward(cx, rec);
        }
    }
}

/// A raw record decoded with `ks` and `vs`; `None` (counted and logged)
/// when either part cannot be.
#[inline(always)]
fn decode<K: 'static, V: 'static>(
    ks: &SerdeRef<K>,
    vs: &SerdeRef<V>,
    cx: &mut Cx,
    rec: Rec<Raw, Raw>,
) -> Option<Rec<K, V>> {
    let key = ks
        .deserialize(rec.key.as_deref())
        .map_err(|e| crate::wire::undecodable(cx, format_args!("key: {e}")))
        .ok()?;
    let value = vs
        .deserialize(rec.value.as_deref())
        .map_err(|e| crate::wire::undecodable(cx, format_args!("value: {e}")))
        .ok()?;
    Some(Rec {
        key,
        value,
        timestamp: rec.timestamp,
        headers: rec.headers,
    })
}

/// [`Deser`] followed by a step that completes or drops each decoded
/// value, seeing the record's metadata: a source and its first
/// `flat_map_values_with_meta` in one node (one hop per record fewer).
pub(crate) struct DeserWith<K, V, F: ?Sized> {
    pub ks: SerdeRef<K>,
    pub vs: SerdeRef<V>,
    pub f: Arc<F>,
    pub ds: Downstream<K, V>,
}

impl<K: Clone + 'static, V: Clone + 'static, F> Node<Raw, Raw> for DeserWith<K, V, F>
where
    F: Fn(&crate::record::RecordMeta, &K, V) -> Option<V> + ?Sized,
{
    fn process(&mut self, cx: &mut Cx, rec: Rec<Raw, Raw>) {
        let Some(mut rec) = decode(&self.ks, &self.vs, cx, rec) else {
            return;
        };
        let meta = crate::record::RecordMeta {
            timestamp: rec.timestamp,
            partition: cx.partition,
            offset: cx.offset,
            headers: &rec.headers,
        };
        if let Some(value) = (self.f)(&meta, &rec.key, rec.value) {
            rec.value = value;
            self.ds.forward(cx, rec);
        }
    }
}

pub(crate) struct Filter<K, V, P: ?Sized> {
    pub pred: Arc<P>,
    pub keep: bool,
    pub ds: Downstream<K, V>,
}
impl<K: Clone, V: Clone, P: Fn(&K, &V) -> bool + ?Sized> Node<K, V> for Filter<K, V, P> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        if (self.pred)(&rec.key, &rec.value) == self.keep {
            self.ds.forward(cx, rec);
        }
    }
}

pub(crate) struct Map<K2, V2, F> {
    pub f: Arc<F>,
    pub ds: Downstream<K2, V2>,
}
impl<K, V, K2: Clone, V2: Clone, F: Fn(K, V) -> (K2, V2)> Node<K, V> for Map<K2, V2, F> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        let (k, v) = (self.f)(rec.key, rec.value);
        self.ds.forward(
            cx,
            Rec {
                key: k,
                value: v,
                timestamp: rec.timestamp,
                headers: rec.headers,
            },
        );
    }
}

pub(crate) struct MapValues<K, V2, F> {
    pub f: Arc<F>,
    pub ds: Downstream<K, V2>,
}
impl<K: Clone, V, V2: Clone, F: Fn(&K, V) -> V2> Node<K, V> for MapValues<K, V2, F> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        let v = (self.f)(&rec.key, rec.value);
        self.ds.forward(
            cx,
            Rec {
                key: rec.key,
                value: v,
                timestamp: rec.timestamp,
                headers: rec.headers,
            },
        );
    }
}

pub(crate) struct FlatMap<K2, V2, F> {
    pub f: Arc<F>,
    pub ds: Downstream<K2, V2>,
}
impl<K, V, K2: Clone, V2: Clone, I, F> Node<K, V> for FlatMap<K2, V2, F>
where
    F: Fn(K, V) -> I,
    I: IntoIterator<Item = (K2, V2)>,
{
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        for (k, v) in (self.f)(rec.key, rec.value) {
            self.ds.forward(
                cx,
                Rec {
                    key: k,
                    value: v,
                    timestamp: rec.timestamp,
                    headers: rec.headers.clone(),
                },
            );
        }
    }
}

/// Like [`FlatMapValues`], with the record's timestamp, partition and
/// offset handed to the function.
pub(crate) struct FlatMapValuesMeta<K, V2, F> {
    pub f: Arc<F>,
    pub ds: Downstream<K, V2>,
}
impl<K: Clone, V, V2: Clone, I, F> Node<K, V> for FlatMapValuesMeta<K, V2, F>
where
    F: Fn(&crate::record::RecordMeta, &K, V) -> I,
    I: IntoIterator<Item = V2>,
{
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        let meta = crate::record::RecordMeta {
            timestamp: rec.timestamp,
            partition: cx.partition,
            offset: cx.offset,
            headers: &rec.headers,
        };
        let values = (self.f)(&meta, &rec.key, rec.value);
        forward_values(
            &mut self.ds,
            cx,
            rec.key,
            values,
            rec.timestamp,
            rec.headers,
        );
    }
}

/// Folds a record into an aggregate's old value with `f`; the old value
/// comes back for the change only when `keep_old` (a downstream node
/// reads it), and is otherwise moved into `f` instead of cloned.
fn fold_old<A: Clone>(
    keep_old: bool,
    old: Option<A>,
    f: impl FnOnce(Option<A>) -> A,
) -> (A, Option<A>) {
    if keep_old {
        (f(old.clone()), old)
    } else {
        (f(old), None)
    }
}

/// Forwards one record per value under the same key, timestamp and headers;
/// the last one takes the key and headers instead of copying them (most
/// flat-maps produce exactly one value).
fn forward_values<K: Clone, V2: Clone>(
    ds: &mut Downstream<K, V2>,
    cx: &mut Cx,
    key: K,
    values: impl IntoIterator<Item = V2>,
    timestamp: i64,
    headers: crate::backend::Headers,
) {
    let mut values = values.into_iter();
    let Some(mut value) = values.next() else {
        return;
    };
    loop {
        match values.next() {
            None => {
                ds.forward(
                    cx,
                    Rec {
                        key,
                        value,
                        timestamp,
                        headers,
                    },
                );
                return;
            }
            Some(next) => {
                ds.forward(
                    cx,
                    Rec {
                        key: key.clone(),
                        value,
                        timestamp,
                        headers: headers.clone(),
                    },
                );
                value = next;
            }
        }
    }
}

pub(crate) struct FlatMapValues<K, V2, F> {
    pub f: Arc<F>,
    pub ds: Downstream<K, V2>,
}
impl<K: Clone, V, V2: Clone, I, F> Node<K, V> for FlatMapValues<K, V2, F>
where
    F: Fn(&K, V) -> I,
    I: IntoIterator<Item = V2>,
{
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        let values = (self.f)(&rec.key, rec.value);
        forward_values(
            &mut self.ds,
            cx,
            rec.key,
            values,
            rec.timestamp,
            rec.headers,
        );
    }
}

pub(crate) struct SelectKey<K2, V, F> {
    pub f: Arc<F>,
    pub ds: Downstream<K2, V>,
}
impl<K, V: Clone, K2: Clone, F: Fn(&K, &V) -> K2> Node<K, V> for SelectKey<K2, V, F> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        let k = (self.f)(&rec.key, &rec.value);
        self.ds.forward(
            cx,
            Rec {
                key: k,
                value: rec.value,
                timestamp: rec.timestamp,
                headers: rec.headers,
            },
        );
    }
}

pub(crate) struct Peek<K, V, F> {
    pub f: Arc<F>,
    pub ds: Downstream<K, V>,
}
impl<K: Clone, V: Clone, F: Fn(&K, &V)> Node<K, V> for Peek<K, V, F> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        (self.f)(&rec.key, &rec.value);
        self.ds.forward(cx, rec);
    }
}

/// Replaces record timestamps (a timestamp extractor).
pub(crate) struct SetTimestamp<K, V, F> {
    pub f: Arc<F>,
    pub ds: Downstream<K, V>,
}
impl<K: Clone, V: Clone, F: Fn(&K, &V, i64) -> i64> Node<K, V> for SetTimestamp<K, V, F> {
    fn process(&mut self, cx: &mut Cx, mut rec: Rec<K, V>) {
        rec.timestamp = (self.f)(&rec.key, &rec.value, rec.timestamp);
        self.ds.forward(cx, rec);
    }
}

/// Routes each record to the first branch whose predicate matches, else the
/// last branch.
pub(crate) struct Branch<K, V> {
    preds: Arc<Vec<crate::dsl::Predicate<K, V>>>,
    outs: Vec<Downstream<K, V>>,
}

impl<K: Clone + 'static, V: Clone + 'static> Branch<K, V> {
    pub(crate) fn ports(
        parent: &Port<K, V>,
        preds: Arc<Vec<crate::dsl::Predicate<K, V>>>,
        n: usize,
    ) -> Vec<Port<K, V>> {
        let graph = parent.graph.clone();
        let (id, ports) = {
            let mut g = glock(&graph);
            let id = g.new_node(Some(parent.id));
            let ids: Vec<usize> = (0..n).map(|_| g.new_node(Some(id))).collect();
            (id, ids)
        };
        let ports: Vec<Port<K, V>> = ports
            .into_iter()
            .map(|i| Port::new(graph.clone(), i))
            .collect();
        let p2 = ports.clone();
        parent.push(Arc::new(move |b: &mut Build<'_>| {
            let p2 = p2.clone();
            let preds = preds.clone();
            b.memo(id, move |b| {
                let outs = p2.iter().map(|p| p.instantiate(b)).collect();
                let n: NodeRef<K, V> =
                    std::rc::Rc::new(std::cell::RefCell::new(Branch { preds, outs }));
                n
            })
        }));
        ports
    }
}

impl<K: Clone, V: Clone> Node<K, V> for Branch<K, V> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        let i = self
            .preds
            .iter()
            .position(|p| p(&rec.key, &rec.value))
            .unwrap_or(self.preds.len());
        if let Some(out) = self.outs.get(i) {
            out.forward(cx, rec);
        }
    }
}

/// Where a sink writes.
pub(crate) enum TopicChoice<K, V> {
    Fixed(TopicName),
    #[allow(clippy::type_complexity)]
    PerRecord(Arc<dyn Fn(&K, &V) -> String + Send + Sync>),
}

/// Writes records to a topic. The partition is chosen later by hashing the
/// serialized key (`hash` overrides what is hashed).
pub(crate) struct Sink<K, V> {
    pub topic: Arc<TopicChoice<K, V>>,
    pub ks: SerdeRef<K>,
    pub vs: SerdeRef<V>,
    #[allow(clippy::type_complexity)]
    pub hash: Option<Arc<dyn Fn(&K) -> Option<Vec<u8>> + Send + Sync>>,
}

impl<K: 'static, V: 'static> Node<K, V> for Sink<K, V> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        let topic = match &*self.topic {
            TopicChoice::Fixed(t) => t.resolve(&cx.app_id),
            TopicChoice::PerRecord(f) => f(&rec.key, &rec.value),
        };
        let key = match self.ks.serialize(&rec.key) {
            Ok(k) => k,
            Err(e) => return crate::wire::unencodable(cx, "key", e),
        };
        let value = match self.vs.serialize(&rec.value) {
            Ok(v) => v,
            Err(e) => return crate::wire::unencodable(cx, "value", e),
        };
        let hash_key = match self.hash.as_ref() {
            Some(h) => h(&rec.key),
            None => key.as_deref().and_then(|k| {
                let p = self.ks.partition_bytes(k);
                (p.len() != k.len()).then(|| p.to_vec())
            }),
        };
        cx.out.push(Pending {
            topic,
            partition: None,
            hash_key,
            key,
            value,
            timestamp: rec.timestamp,
            headers: rec.headers,
        });
    }
}

/// Upserts into a key-value store and emits the change.
pub(crate) struct Materialize<K, V> {
    pub store: KvStore<K, V>,
    pub ds: Downstream<K, Change<V>>,
}

use crate::wire::fail;

impl<K: Clone + 'static, V: Clone + 'static> Node<K, Option<V>> for Materialize<K, V> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, Option<V>>) {
        let old = match self.store.get(&rec.key) {
            Ok(o) => o,
            Err(e) => return fail(cx, e),
        };
        if old.is_none() && rec.value.is_none() {
            return;
        }
        if let Err(e) = self.store.put(&rec.key, rec.value.as_ref(), rec.timestamp) {
            return fail(cx, e);
        }
        self.ds.forward(
            cx,
            Rec {
                key: rec.key,
                value: Change::new(rec.value, old),
                timestamp: rec.timestamp,
                headers: rec.headers,
            },
        );
    }
}

/// `(key, value, previous aggregate) -> new aggregate`.
pub(crate) type AggFn<K, V, A> = Arc<dyn Fn(&K, V, Option<A>) -> A + Send + Sync>;

/// Per-key aggregation into a key-value store.
pub(crate) struct Aggregate<K, V, A> {
    pub store: KvStore<K, A>,
    pub agg: AggFn<K, V, A>,
    pub ds: Downstream<K, Change<A>>,
}

impl<K: Clone + 'static, V, A: Clone + 'static> Node<K, V> for Aggregate<K, V, A> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        let old = match self.store.get_with_ts(&rec.key) {
            Ok(o) => o,
            Err(e) => return fail(cx, e),
        };
        let ts = old
            .as_ref()
            .map_or(rec.timestamp, |(_, t)| rec.timestamp.max(*t));
        let old_v = old.map(|(v, _)| v);
        let (new, old_v) = fold_old(self.ds.needs_old_values(), old_v, |old| {
            (self.agg)(&rec.key, rec.value, old)
        });
        if let Err(e) = self.store.put(&rec.key, Some(&new), ts) {
            return fail(cx, e);
        }
        self.ds.forward(
            cx,
            Rec {
                key: rec.key,
                value: Change::new(Some(new), old_v),
                timestamp: ts,
                headers: rec.headers,
            },
        );
    }
}

/// The value for one use of several: moved out on the last, else copied.
fn take_or_clone<T: Clone>(slot: &mut Option<T>, last: bool) -> Option<T> {
    if last {
        slot.take()
    } else {
        slot.clone()
    }
}

/// Per-key, per-window aggregation. Tracks the stream time it has observed
/// (kept in the store, so it survives restarts); a record whose window has
/// closed (window end + grace <= stream time) is dropped and counted.
pub(crate) struct WindowAggregate<K, V, A> {
    store: WindowStore<K, A>,
    windows: TimeWindows,
    retention_ms: i64,
    /// Emit each window once when it closes (not on every update); its
    /// retention: a window that starts that far behind the newest window
    /// (stream time having jumped past its close and its retention at
    /// once) is not emitted, as Kafka Streams' store no longer shows it.
    final_retention_ms: Option<i64>,
    emit_final: bool,
    agg: AggFn<K, V, A>,
    /// Updates go downstream through the task's record cache.
    out: Rc<RefCell<CachedDownstream<Windowed<K>, A>>>,
    observed: Option<i64>,
    expired_below: i64,
}

impl<K, V, A> WindowAggregate<K, V, A> {
    pub(crate) fn new(
        store: WindowStore<K, A>,
        windows: TimeWindows,
        retention_ms: i64,
        emit_final: Option<i64>,
        agg: AggFn<K, V, A>,
        out: Rc<RefCell<CachedDownstream<Windowed<K>, A>>>,
    ) -> Self {
        WindowAggregate {
            store,
            windows,
            retention_ms,
            final_retention_ms: emit_final,
            emit_final: emit_final.is_some(),
            agg,
            out,
            observed: None,
            expired_below: i64::MIN,
        }
    }
}

impl<K: Clone + 'static, V: Clone, A: Clone + 'static> WindowAggregate<K, V, A> {
    /// Emits, once, every window that closed between two stream times and
    /// is still within its retention of the newest window (starting at or
    /// before stream time `observed`).
    fn emit_closed(&mut self, cx: &mut Cx, prev_close: i64, close: i64, observed: i64) {
        let size = self.windows.size_ms;
        let newest = observed.saturating_sub(observed.rem_euclid(self.windows.advance_ms.max(1)));
        let visible_from = self
            .final_retention_ms
            .map_or(i64::MIN, |r| newest.saturating_sub(r));
        let keys = lock(&self.store.store).window_keys_between(
            prev_close
                .saturating_sub(size)
                .saturating_add(1)
                .max(visible_from),
            close.saturating_sub(size),
        );
        for kb in keys {
            let Some((k, start)) = crate::state::window_split(&kb) else {
                continue;
            };
            let Ok(key) = self.store.keys.deserialize(Some(k)) else {
                continue;
            };
            match self.store.get_with_ts(&key, start) {
                Ok(Some((v, ts))) => self.out.borrow().forward_now(
                    cx,
                    Rec::new(
                        Windowed::new(key, Window::new(start, start.saturating_add(size))),
                        Change::new(Some(v), None),
                        ts,
                    ),
                ),
                Ok(None) => {}
                Err(e) => return fail(cx, e),
            }
        }
    }
}

impl<K: Clone + 'static, V: Clone, A: Clone + 'static> Node<K, V> for WindowAggregate<K, V, A> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        let prev = match self.observed {
            Some(t) => t,
            None => match self.store.meta() {
                Ok(t) => t.unwrap_or(i64::MIN),
                Err(e) => return fail(cx, e),
            },
        };
        let observed = prev.max(rec.timestamp);
        self.observed = Some(observed);
        if observed != prev {
            self.store.set_meta(observed);
        }
        let grace = self.windows.grace_ms;
        let close = observed.saturating_sub(grace);
        let starts = self.windows.starts_for(rec.timestamp);
        let n = starts.len();
        let kb = match self.store.key_bytes(&rec.key) {
            Ok(kb) => kb,
            Err(e) => return fail(cx, e),
        };
        let timestamp = rec.timestamp;
        // Key, value and headers move into the last window's update and
        // output; earlier windows get copies.
        let (mut key, mut value, mut headers) = (Some(rec.key), Some(rec.value), Some(rec.headers));
        for (i, start) in starts.into_iter().enumerate() {
            let last = i + 1 == n;
            let end = start.saturating_add(self.windows.size_ms);
            if end <= close {
                cx.metrics.late_dropped += 1;
                tracing::debug!(
                    window_start = start,
                    window_end = end,
                    stream_time = observed,
                    timestamp,
                    "dropping record for a closed window"
                );
                continue;
            }
            let wkey = crate::state::window_key_bytes(&kb, start);
            let old = match self.store.get_raw(&wkey) {
                Ok(o) => o,
                Err(e) => return fail(cx, e),
            };
            let ts = old.as_ref().map_or(timestamp, |(_, t)| timestamp.max(*t));
            let old_v = old.map(|(v, _)| v);
            let (Some(k), Some(v)) = (key.as_ref(), take_or_clone(&mut value, last)) else {
                break;
            };
            let mut out = self.out.borrow_mut();
            let (new, old_v) = fold_old(out.needs_old_values(), old_v, |old| (self.agg)(k, v, old));
            let held_key = (!self.emit_final && out.enabled()).then(|| wkey.clone());
            if let Err(e) = self.store.put_raw(wkey, Some(&new), ts) {
                return fail(cx, e);
            }
            if !self.emit_final {
                let (Some(k), Some(h)) = (
                    take_or_clone(&mut key, last),
                    take_or_clone(&mut headers, last),
                ) else {
                    break;
                };
                let rec = Rec {
                    key: Windowed::new(k, Window::new(start, end)),
                    value: Change::new(Some(new), old_v),
                    timestamp: ts,
                    headers: h,
                };
                match held_key {
                    Some(kb) => out.update(cx, kb, rec),
                    None => out.forward_now(cx, rec),
                }
            }
        }
        if self.emit_final && observed != prev {
            self.emit_closed(cx, prev.saturating_sub(grace), close, observed);
        }
        let horizon = observed.saturating_sub(self.retention_ms);
        if horizon
            > self
                .expired_below
                .saturating_add(self.windows.size_ms.max(1))
        {
            let mut out = self.out.borrow_mut();
            if !self.emit_final && out.enabled() {
                // Updates held in the task's caches may still join with
                // these windows when they go downstream: expire them once
                // the caches are empty (as Kafka Streams' store behind its
                // cache sees the writes, and drops old segments, only then).
                out.defer_expiry(&self.store.store, horizon);
            } else {
                lock(&self.store.store).expire_windows(horizon);
            }
            self.expired_below = horizon;
        }
    }
}

/// Keeps table rows matching a predicate; a row leaving the filter is
/// emitted as a deletion.
pub(crate) struct TableFilter<K, V, P: ?Sized> {
    pub pred: Arc<P>,
    pub ds: Downstream<K, Change<V>>,
}
impl<K: Clone, V: Clone, P: Fn(&K, &V) -> bool + ?Sized> Node<K, Change<V>>
    for TableFilter<K, V, P>
{
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, Change<V>>) {
        let new = rec.value.new.filter(|v| (self.pred)(&rec.key, v));
        let old = rec.value.old.filter(|v| (self.pred)(&rec.key, v));
        if new.is_none() && old.is_none() {
            return;
        }
        self.ds.forward(
            cx,
            Rec {
                key: rec.key,
                value: Change::new(new, old),
                timestamp: rec.timestamp,
                headers: rec.headers,
            },
        );
    }
}

pub(crate) struct TableMapValues<K, V2, F> {
    pub f: Arc<F>,
    pub ds: Downstream<K, Change<V2>>,
}
impl<K: Clone, V, V2: Clone, F: Fn(&K, V) -> V2> Node<K, Change<V>> for TableMapValues<K, V2, F> {
    fn needs_old_values(&self) -> bool {
        self.ds.needs_old_values()
    }
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, Change<V>>) {
        let new = rec.value.new.map(|v| (self.f)(&rec.key, v));
        let old = match rec.value.old {
            Some(v) if self.ds.needs_old_values() => Some((self.f)(&rec.key, v)),
            _ => None,
        };
        self.ds.forward(
            cx,
            Rec {
                key: rec.key,
                value: Change::new(new, old),
                timestamp: rec.timestamp,
                headers: rec.headers,
            },
        );
    }
}

pub(crate) struct ToStream<K, V> {
    pub ds: Downstream<K, Option<V>>,
}
impl<K: Clone, V: Clone> Node<K, Change<V>> for ToStream<K, V> {
    fn needs_old_values(&self) -> bool {
        false
    }
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, Change<V>>) {
        self.ds.forward(
            cx,
            Rec {
                key: rec.key,
                value: rec.value.new,
                timestamp: rec.timestamp,
                headers: rec.headers,
            },
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinKind {
    Inner,
    Left,
    Outer,
}

/// Stream-table join: looks each record's key up in the table.
pub(crate) struct StreamTableJoin<K, V, T, VR, J> {
    pub get: GetFn<K, T>,
    pub joiner: Arc<J>,
    pub ds: Downstream<K, VR>,
    pub _v: std::marker::PhantomData<fn(V)>,
}

impl<K: Clone, V, T, VR: Clone, J: Fn(V, Option<&T>) -> Option<VR>> Node<K, V>
    for StreamTableJoin<K, V, T, VR, J>
{
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        let t = (self.get)(&rec.key);
        if let Some(out) = (self.joiner)(rec.value, t.as_ref().map(|(v, _)| v)) {
            self.ds.forward(
                cx,
                Rec {
                    key: rec.key,
                    value: out,
                    timestamp: rec.timestamp,
                    headers: rec.headers,
                },
            );
        }
    }
}

/// One side of a table-table join: an update of this side is joined with
/// the other side's current row.
/// Joins an optional row of one side with an optional row of the other.
pub(crate) type JoinFn<A, B, R> = Arc<dyn Fn(Option<&A>, Option<&B>) -> Option<R>>;

pub(crate) struct TableJoinSide<K, V, O, VR> {
    pub other: GetFn<K, O>,
    pub joiner: JoinFn<V, O, VR>,
    pub ds: Downstream<K, Change<VR>>,
}

impl<K: Clone, V, O, VR: Clone> Node<K, Change<V>> for TableJoinSide<K, V, O, VR> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, Change<V>>) {
        let other = (self.other)(&rec.key);
        let o = other.as_ref().map(|(v, _)| v);
        let new = (self.joiner)(rec.value.new.as_ref(), o);
        let old = (self.joiner)(rec.value.old.as_ref(), o);
        if new.is_none() && old.is_none() {
            return;
        }
        let ts = other
            .as_ref()
            .map_or(rec.timestamp, |(_, t)| rec.timestamp.max(*t));
        self.ds.forward(
            cx,
            Rec {
                key: rec.key,
                value: Change::new(new, old),
                timestamp: ts,
                headers: rec.headers,
            },
        );
    }
}

/// Stream-global table join: looks up the row the record's computed key
/// names in the instance's global store.
pub(crate) struct GlobalJoin<K, V, GV, VR, J> {
    pub lookup: GetFn<(K, V), GV>,
    pub joiner: Arc<J>,
    pub ds: Downstream<K, VR>,
}

impl<K: Clone, V: Clone, GV, VR: Clone, J: Fn(&V, Option<&GV>) -> Option<VR>> Node<K, V>
    for GlobalJoin<K, V, GV, VR, J>
{
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        let pair = (rec.key, rec.value);
        let row = (self.lookup)(&pair);
        let (key, value) = pair;
        if let Some(out) = (self.joiner)(&value, row.as_ref().map(|(g, _)| g)) {
            self.ds.forward(
                cx,
                Rec {
                    key,
                    value: out,
                    timestamp: rec.timestamp,
                    headers: rec.headers,
                },
            );
        }
    }
}
