//! Session windows: per key, records closer than an inactivity gap form one
//! session `[first, last]` (bounds inclusive); a record bridging two
//! sessions merges them.
//!
//! Sessions are stored under `[len][key][end][start]`, so the sessions of a
//! key that could absorb a record at `t` are a range scan from end `t - gap`.
//! Each update emits the new session and a deletion (`new: None`) for every
//! session it replaced, as Kafka Streams does. A session closes when stream
//! time passes its end + gap + grace; a record that could only join or form
//! a closed session is dropped and counted.

use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::dsl::{register_store, Data, GetFn, Getter, KGroupedStream, KTable};
use crate::record::{Change, Rec, Window, Windowed};
use crate::serdes::{Serde, SerdeRef, WindowedSerde};
use crate::state::kv::{decode_value, encode_value};
use crate::state::{lock, SharedStore, StoreKind};
use crate::topology::{Build, Cx, Downstream, Node};

/// Session windows with an inactivity gap and a grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    pub gap_ms: i64,
    pub grace_ms: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl SessionWindows {
    /// Sessions end after `gap` without records; no grace period.
    pub fn with_inactivity_gap(gap: Duration) -> Self {
        SessionWindows {
            gap_ms: ms(gap),
            grace_ms: 0,
        }
    }
    /// Accept records up to `grace` of stream time after a session closed.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = ms(grace);
        self
    }
}

pub(crate) fn session_key(key: &[u8], start: i64, end: i64) -> Vec<u8> {
    let mut k = crate::state::window_key_bytes(key, end);
    k.extend_from_slice(&crate::state::ord_bytes(start));
    k
}

/// (key bytes, start, end) of a session store key.
pub(crate) fn split_session(b: &[u8]) -> Option<(&[u8], i64, i64)> {
    let (key, end) = crate::state::window_split(b)?;
    let start = crate::state::from_ord_bytes(b.get(b.len().checked_sub(8)?..)?)?;
    if b.len() != 4 + key.len() + 16 {
        return None;
    }
    Some((key, start, end))
}

/// `(value, aggregate) -> aggregate` and `(a, b) -> merged`.
pub(crate) type AggFn<K, V, A> = Arc<dyn Fn(&K, V, A) -> A + Send + Sync>;
pub(crate) type MergeFn<K, A> = Arc<dyn Fn(&K, A, A) -> A + Send + Sync>;

struct SessionAggregate<K, V, A> {
    store: SharedStore,
    ks: SerdeRef<K>,
    vs: SerdeRef<A>,
    windows: SessionWindows,
    init: Arc<dyn Fn() -> A + Send + Sync>,
    agg: AggFn<K, V, A>,
    merge: MergeFn<K, A>,
    emit_final: bool,
    observed: Option<i64>,
    ds: Downstream<Windowed<K>, Change<A>>,
    _v: std::marker::PhantomData<fn(V)>,
}

use crate::wire::fail;

impl<K: Clone + 'static, V, A: Clone + 'static> SessionAggregate<K, V, A> {
    fn emit_closed(&mut self, cx: &mut Cx, prev_close: i64, close: i64) {
        // Sessions ending in [prev_close, close) just closed.
        let keys = lock(&self.store).window_keys_between(prev_close, close.saturating_sub(1));
        for k in keys {
            let Some((kb, start, end)) = split_session(&k) else {
                continue;
            };
            let Ok(key) = self.ks.deserialize(Some(kb)) else {
                continue;
            };
            let raw = match lock(&self.store).get(&k) {
                Ok(r) => r,
                Err(e) => return fail(cx, e),
            };
            let Some((ts, vb)) = raw
                .as_deref()
                .and_then(decode_value)
                .map(|(t, v)| (t, v.to_vec()))
            else {
                continue;
            };
            let Ok(v) = self.vs.deserialize(Some(&vb)) else {
                continue;
            };
            self.ds.forward(
                cx,
                Rec::new(
                    Windowed::new(key, Window::new(start, end)),
                    Change::new(Some(v), None),
                    ts,
                ),
            );
        }
    }
}

impl<K: Clone + 'static, V, A: Clone + 'static> Node<K, V> for SessionAggregate<K, V, A> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        let prev = match self.observed {
            Some(t) => t,
            None => match lock(&self.store).get(crate::state::META_KEY) {
                Ok(m) => m
                    .and_then(|b| b.get(..8).and_then(|s| s.try_into().ok()))
                    .map_or(i64::MIN, i64::from_be_bytes),
                Err(e) => return fail(cx, e),
            },
        };
        let observed = prev.max(rec.timestamp);
        self.observed = Some(observed);
        if observed != prev {
            lock(&self.store).put(
                crate::state::META_KEY.to_vec(),
                Some(observed.to_be_bytes().to_vec()),
            );
        }
        // A session can grow until stream time passes its end + gap; after
        // grace more it is closed (Kafka's session close time).
        let close = observed
            .saturating_sub(self.windows.grace_ms)
            .saturating_sub(self.windows.gap_ms);
        let kb = match self.ks.serialize(&rec.key) {
            Ok(Some(kb)) => kb,
            Ok(None) => return,
            Err(e) => return crate::wire::unencodable(cx, "session key", e),
        };
        let t = rec.timestamp;
        let gap = self.windows.gap_ms;
        // Sessions of this key ending at or after t - gap and starting at
        // or before t + gap overlap the record's reach.
        let lo = crate::state::window_key_bytes(&kb, t.saturating_sub(gap));
        let mut hi = crate::state::window_key_bytes(&kb, i64::MAX);
        hi.extend_from_slice(&[0xff; 8]);
        let rows = match lock(&self.store).range(Bound::Included(&lo), Bound::Included(&hi)) {
            Ok(r) => r,
            Err(e) => return fail(cx, e),
        };
        let mut start = t;
        let mut end = t;
        let mut ts = t;
        let mut merged: Vec<(Vec<u8>, Window, A)> = Vec::new();
        // Kafka Streams' session store shows only sessions within its
        // retention (gap + grace) of the stream time it has seen: older
        // ones, still kept here for queries, take no part in merging.
        let visible_from = prev
            .saturating_sub(gap)
            .saturating_sub(self.windows.grace_ms)
            .saturating_add(1);
        for (k, v) in rows {
            let Some((_, s, e)) = split_session(&k) else {
                continue;
            };
            if s > t.saturating_add(gap) || e < visible_from {
                continue;
            }
            let Some((vts, vb)) = decode_value(&v) else {
                continue;
            };
            let Ok(a) = self.vs.deserialize(Some(vb)) else {
                continue;
            };
            start = start.min(s);
            end = end.max(e);
            ts = ts.max(vts);
            merged.push((k, Window::new(s, e), a));
        }
        if end < close {
            cx.metrics.late_dropped += 1;
            return;
        }
        let mut agg: Option<A> = None;
        for (_, _, a) in &merged {
            agg = Some(match agg {
                None => a.clone(),
                Some(acc) => (self.merge)(&rec.key, acc, a.clone()),
            });
        }
        let new = (self.agg)(&rec.key, rec.value, agg.unwrap_or_else(|| (self.init)()));
        // Encode before touching the store: a session that cannot be
        // written must leave the sessions it would merge in place.
        let vb = match self.vs.serialize(&new) {
            Ok(vb) => vb,
            Err(e) => return crate::wire::unencodable(cx, "session aggregate", e),
        };
        for (k, w, old) in merged {
            lock(&self.store).put(k, None);
            if !self.emit_final {
                // Stamped with the removed session's end, as Kafka Streams
                // stamps every session update.
                self.ds.forward(
                    cx,
                    Rec::new(
                        Windowed::new(rec.key.clone(), w),
                        Change::new(None, Some(old)),
                        w.end,
                    ),
                );
            }
        }
        lock(&self.store).put(session_key(&kb, start, end), Some(encode_value(ts, vb)));
        if !self.emit_final {
            self.ds.forward(
                cx,
                Rec {
                    key: Windowed::new(rec.key, Window::new(start, end)),
                    value: Change::new(Some(new), None),
                    timestamp: ts,
                    headers: rec.headers,
                },
            );
        }
        if observed != prev {
            let prev_close = prev
                .saturating_sub(self.windows.grace_ms)
                .saturating_sub(gap);
            if self.emit_final {
                self.emit_closed(cx, prev_close, close);
            }
            // Closed sessions can no longer change; keep them for queries
            // for one more gap + grace, then drop them.
            lock(&self.store).expire_windows(
                close
                    .saturating_sub(gap)
                    .saturating_sub(self.windows.grace_ms),
            );
        }
    }
}

/// A grouped stream with session windows.
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
    emit_final: bool,
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Aggregates per key and session.
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream {
            grouped: KGroupedStream {
                stream: self.stream.repartitioned_for("session aggregation"),
            },
            windows,
            emit_final: false,
        }
    }
}

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    /// Emit each session once, when it closes, instead of on every update.
    pub fn emit_final(mut self) -> Self {
        self.emit_final = true;
        self
    }

    /// Counts records per key and session.
    pub fn count(&self, store: &str) -> KTable<Windowed<K>, i64> {
        self.aggregate(
            || 0,
            |_, _, n| n + 1,
            |_, a, b| a + b,
            crate::serdes::I64Serde,
            store,
        )
    }

    /// Folds values per key and session; `merge` combines the aggregates of
    /// two sessions a record joins together.
    pub fn aggregate<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        agg: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        merge: impl Fn(&K, A, A) -> A + Send + Sync + 'static,
        agg_serde: impl Serde<A>,
        store: &str,
    ) -> KTable<Windowed<K>, A> {
        let s = &self.grouped.stream;
        let ks = crate::dsl::required(&s.port.graph, &s.ks, "session aggregation key");
        let vs: SerdeRef<A> = Arc::new(agg_serde);
        let windows = self.windows;
        let emit_final = self.emit_final;
        let init: Arc<dyn Fn() -> A + Send + Sync> = Arc::new(init);
        let agg: AggFn<K, V, A> = Arc::new(agg);
        let merge: MergeFn<K, A> = Arc::new(merge);
        let name = store.to_string();
        let (k2, v2, n2) = (ks.clone(), vs.clone(), name.clone());
        let port = s.port.add(move |b: &mut Build<'_>, ds| SessionAggregate {
            store: b.store(&n2),
            ks: k2.clone(),
            vs: v2.clone(),
            windows,
            init: init.clone(),
            agg: agg.clone(),
            merge: merge.clone(),
            emit_final,
            observed: None,
            ds,
            _v: std::marker::PhantomData,
        });
        register_store(
            &s.port.graph,
            &name,
            StoreKind::Window {
                retention_ms: windows.gap_ms.saturating_add(windows.grace_ms),
            },
            port.id,
        );
        let (k3, v3) = (ks.clone(), vs.clone());
        let getter: Getter<Windowed<K>, A> = Arc::new(move |b: &mut Build<'_>| {
            let st = b.store(&name);
            let (ks, vs) = (k3.clone(), v3.clone());
            let f: GetFn<Windowed<K>, A> = Rc::new(move |k: &Windowed<K>| {
                let kb = ks.serialize(&k.key).ok()??;
                let raw = lock(&st)
                    .get(&session_key(&kb, k.window.start, k.window.end))
                    .ok()??;
                let (ts, v) = decode_value(&raw)?;
                Some((vs.deserialize(Some(v)).ok()?, ts))
            });
            f
        });
        KTable {
            port,
            ks: Some(Arc::new(WindowedSerde::session(ks))),
            vs: Some(vs),
            getter,
        }
    }
}
