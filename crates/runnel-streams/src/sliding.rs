//! Sliding windows ([`SlidingWindows`],
//! [`KGroupedStream::windowed_by_sliding`]) with Kafka Streams' semantics.
//!
//! A sliding window has a fixed size, the *time difference* `d`, and is
//! aligned to the records rather than to the epoch: windows are
//! `[start, start + d]`, both bounds **inclusive** (in the emitted
//! [`Window`], `end` is inclusive too). Per key, the windows that exist are
//! exactly the distinct sets of records that fit in such a span: each
//! record at `t` has a *left window* `[t - d, t]` (ending at it) and, if
//! some later record falls within `d` after it, a *right window*
//! `[t + 1, t + 1 + d]` (starting just after it). A record updates every
//! existing window that contains it and creates the windows it adds, so a
//! window is emitted only with a set of records no other window has.
//!
//! The algorithm is Kafka Streams' `KStreamSlidingWindowAggregate`
//! (reverse-iterating variant, the one its RocksDB and in-memory stores
//! use), so the same input gives the same updates in the same order,
//! including for out-of-order records:
//! * stream time is the largest timestamp seen (kept in the store); a
//!   window is closed once stream time - grace is past its end
//!   (`end < stream time - grace`);
//! * a record whose right window would already be closed
//!   (`t + 1 + d <= stream time - grace`) is dropped and counted in
//!   `late_dropped`; a window update skipped because that window is closed
//!   is counted too (as Kafka counts dropped records per skipped window);
//! * records earlier than `d` after the epoch (`0 <= t < d`) share the
//!   window `[0, d]` instead of windows starting before 0 (Kafka's "early
//!   records" handling); records with negative timestamps are skipped.
//!
//! Each update is a `Change { new, old }`; `old` is the window's previous
//! aggregate, or `None` for a window the record creates (Kafka fills `old`
//! only when a downstream operator asks, and then with the seed aggregate;
//! here a created window always has no old value). Output timestamps are
//! the largest record timestamp in the window.
//!
//! Windows stay in the store for `2 × d + grace` of stream time after
//! their start (Kafka's default retention: a record may need the window of
//! a record up to `2 × d` older to create its own). Emitting only final
//! results (Kafka's `emitStrategy(onWindowClose)`) is not provided.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::dsl::{register_store, Data, GetFn, Getter, KGroupedStream, KStream, KTable};
use crate::ops::AggFn;
use crate::record::{Change, Rec, Window, Windowed};
use crate::serdes::{Serde, SerdeRef, WindowedSerde};
use crate::state::kv::decode_value;
use crate::state::{lock, StoreError, StoreKind, WindowStore};
use crate::topology::{Build, Cx, Downstream, Node};
use crate::wire::fail;

/// Sliding windows: a size (the largest time difference between two
/// records of one window) and a grace period for out-of-order records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    /// Window size `d`: windows are `[start, start + d]`, inclusive.
    pub time_difference_ms: i64,
    pub grace_ms: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl SlidingWindows {
    /// Windows of records at most `d` apart; no grace period.
    pub fn of_time_difference(d: Duration) -> Self {
        SlidingWindows {
            time_difference_ms: ms(d),
            grace_ms: 0,
        }
    }

    /// Accept out-of-order records until stream time is `grace` past the
    /// end of their windows.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = ms(grace);
        self
    }

    /// How long windows are kept after their start, in stream time.
    pub fn retention_ms(&self) -> i64 {
        self.time_difference_ms
            .saturating_mul(2)
            .saturating_add(self.grace_ms)
    }
}

/// A grouped stream with sliding windows.
pub struct SlidingWindowedKStream<K, V> {
    stream: KStream<K, V>,
    windows: SlidingWindows,
    emit_final: bool,
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Aggregates per key and sliding window.
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> SlidingWindowedKStream<K, V> {
        SlidingWindowedKStream {
            stream: self.stream.repartitioned_for("sliding window aggregation"),
            windows,
            emit_final: false,
        }
    }
}

impl<K: Data, V: Data> SlidingWindowedKStream<K, V> {
    /// Emit each window once, with its final aggregate, when stream time
    /// closes it, instead of on every update.
    pub fn emit_final(mut self) -> Self {
        self.emit_final = true;
        self
    }

    /// Counts records per key and window.
    pub fn count(&self, store: &str) -> KTable<Windowed<K>, i64> {
        self.aggregate(|| 0i64, |_, _, n| n + 1, crate::serdes::I64Serde, store)
    }

    /// Combines the values of each window with `f` (a window's first
    /// value starts its aggregate).
    pub fn reduce(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        store: &str,
    ) -> KTable<Windowed<K>, V> {
        let (agg, vs) = crate::dsl::reducer(&self.stream, "sliding window reduce", f);
        self.aggregate_with(agg, vs, store)
    }

    /// Folds the values of each window: `init` starts a window's
    /// aggregate, `agg` adds a value.
    pub fn aggregate<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        agg: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        agg_serde: impl Serde<A>,
        store: &str,
    ) -> KTable<Windowed<K>, A> {
        let f: AggFn<K, V, A> = crate::dsl::with_init(init, agg);
        self.aggregate_with(f, Arc::new(agg_serde), store)
    }

    fn aggregate_with<A: Data>(
        &self,
        agg: AggFn<K, V, A>,
        agg_serde: SerdeRef<A>,
        store: &str,
    ) -> KTable<Windowed<K>, A> {
        let s = &self.stream;
        let ks = crate::dsl::required(&s.port.graph, &s.ks, "sliding window aggregation key");
        let windows = SlidingWindows {
            time_difference_ms: self.windows.time_difference_ms.max(0),
            grace_ms: self.windows.grace_ms.max(0),
        };
        let d = windows.time_difference_ms;
        let emit_final = self.emit_final;
        let name = store.to_string();
        let (k2, a2, n2) = (ks.clone(), agg_serde.clone(), name.clone());
        let port = s.port.add(move |b: &mut Build<'_>, ds| SlidingAggregate {
            store: WindowStore::new(b.store(&n2), k2.clone(), a2.clone(), d),
            windows,
            agg: agg.clone(),
            ds,
            observed: None,
            expired_below: i64::MIN,
            emit_final,
        });
        register_store(
            &s.port.graph,
            &name,
            StoreKind::Window {
                retention_ms: windows.retention_ms(),
            },
            port.id,
        );
        let (k3, a3) = (ks.clone(), agg_serde.clone());
        let getter: Getter<Windowed<K>, A> = Arc::new(move |b: &mut Build<'_>| {
            let ws = WindowStore::new(b.store(&name), k3.clone(), a3.clone(), d);
            let f: GetFn<Windowed<K>, A> = Rc::new(move |k: &Windowed<K>| {
                ws.get_with_ts(&k.key, k.window.start).ok().flatten()
            });
            f
        });
        KTable {
            port,
            ks: Some(Arc::new(WindowedSerde::time(ks, d))),
            vs: Some(agg_serde),
            getter,
        }
    }
}

/// A window found in the store: start, aggregate, and the largest record
/// timestamp in it.
#[derive(Clone)]
struct Found<A> {
    start: i64,
    agg: A,
    ts: i64,
}

/// Kafka Streams' sliding window aggregation for one task.
struct SlidingAggregate<K, V, A> {
    store: WindowStore<K, A>,
    windows: SlidingWindows,
    agg: AggFn<K, V, A>,
    ds: Downstream<Windowed<K>, Change<A>>,
    /// Stream time, once loaded from the store.
    observed: Option<i64>,
    expired_below: i64,
    /// Emit windows when they close instead of on every update.
    emit_final: bool,
}

/// What the scan of a record's neighbourhood found (Kafka's local
/// variables of `processReverse`).
struct Scan<A> {
    starts: BTreeSet<i64>,
    left_agg: Option<Found<A>>,
    right_agg: Option<Found<A>>,
    left_created: bool,
    right_created: bool,
    previous_ts: Option<i64>,
}

impl<K: Clone + 'static, V: Clone, A: Clone + 'static> SlidingAggregate<K, V, A> {
    fn d(&self) -> i64 {
        self.windows.time_difference_ms
    }

    /// Emit-final: forwards the windows whose end fell in
    /// `[prev_close, close)` (they just closed), by window start.
    fn emit_closed(&mut self, cx: &mut Cx, prev_close: i64, close: i64) {
        let d = self.d();
        let lo = prev_close.saturating_sub(d);
        let hi = close.saturating_sub(d).saturating_sub(1);
        let keys = lock(&self.store.store).window_keys_between(lo, hi);
        for k in keys {
            let Some((kb, start)) = crate::state::window_split(&k) else {
                continue;
            };
            let Ok(key) = self.store.keys.deserialize(Some(kb)) else {
                continue;
            };
            let raw = match lock(&self.store.store).get(&k) {
                Ok(r) => r,
                Err(e) => return fail(cx, e),
            };
            let Some((ts, bytes)) = raw.as_deref().and_then(decode_value) else {
                continue;
            };
            let Ok(agg) = self.store.values.deserialize(Some(bytes)) else {
                continue;
            };
            self.ds.forward(
                cx,
                Rec::new(
                    Windowed::new(key, Window::new(start, start.saturating_add(d))),
                    Change::new(Some(agg), None),
                    ts,
                ),
            );
        }
    }

    /// The key's windows starting in `[from, to]`, oldest first.
    fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<Found<A>>, StoreError> {
        let kb = self.store.key_bytes(key)?;
        let lo = crate::state::window_key_bytes(&kb, from);
        let hi = crate::state::window_key_bytes(&kb, to);
        let rows = lock(&self.store.store).range(Bound::Included(&lo), Bound::Included(&hi))?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, v) in rows {
            let Some((_, start)) = crate::state::window_split(&k) else {
                continue;
            };
            let Some((ts, bytes)) = decode_value(&v) else {
                continue;
            };
            match self.store.values.deserialize(Some(bytes)) {
                Ok(agg) => out.push(Found { start, agg, ts }),
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable aggregate in a window store; skipped")
                }
            }
        }
        Ok(out)
    }

    /// Adds the record to the window at `start` whose aggregate so far is
    /// `base` (`None`: the initial aggregate) with timestamp `base_ts`,
    /// unless the window is closed (Kafka's `updateWindowAndForward`).
    /// `existed`: the window is in the store (else the update creates it).
    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        cx: &mut Cx,
        rec: &Rec<K, V>,
        start: i64,
        base: Option<A>,
        base_ts: i64,
        existed: bool,
        close: i64,
    ) {
        let end = start.saturating_add(self.d());
        if end < close {
            cx.metrics.late_dropped += 1;
            tracing::debug!(
                window_start = start,
                window_end = end,
                close,
                timestamp = rec.timestamp,
                "skipping a closed sliding window"
            );
            return;
        }
        let new = (self.agg)(&rec.key, rec.value.clone(), base.clone());
        let ts = rec.timestamp.max(base_ts);
        if let Err(e) = self.store.put(&rec.key, start, Some(&new), ts) {
            return fail(cx, e);
        }
        if self.emit_final {
            return;
        }
        self.ds.forward(
            cx,
            Rec {
                key: Windowed::new(rec.key.clone(), Window::new(start, end)),
                value: Change::new(Some(new), if existed { base } else { None }),
                timestamp: ts,
                headers: rec.headers.clone(),
            },
        );
    }

    /// Creates the record's right window holding the aggregate `right` of
    /// the records after it (Kafka's `createCurrentRecordRightWindow`).
    fn create_right_window(&mut self, cx: &mut Cx, rec: &Rec<K, V>, right: Found<A>) {
        let start = rec.timestamp.saturating_add(1);
        if let Err(e) = self.store.put(&rec.key, start, Some(&right.agg), right.ts) {
            return fail(cx, e);
        }
        if self.emit_final {
            return;
        }
        self.ds.forward(
            cx,
            Rec {
                key: Windowed::new(
                    rec.key.clone(),
                    Window::new(start, start.saturating_add(self.d())),
                ),
                value: Change::new(Some(right.agg), None),
                timestamp: right.ts,
                headers: rec.headers.clone(),
            },
        );
    }

    /// A record at `t >= d` (Kafka's `processReverse`): windows are visited
    /// newest first.
    fn process_regular(&mut self, cx: &mut Cx, rec: &Rec<K, V>, close: i64) {
        let t = rec.timestamp;
        let d = self.d();
        let found = match self.fetch(
            &rec.key,
            t.saturating_sub(d.saturating_mul(2)).max(0),
            t.saturating_add(1),
        ) {
            Ok(f) => f,
            Err(e) => return fail(cx, e),
        };
        let mut scan = Scan {
            starts: BTreeSet::new(),
            left_agg: None,
            right_agg: None,
            left_created: false,
            right_created: false,
            previous_ts: None,
        };
        for w in found.into_iter().rev() {
            scan.starts.insert(w.start);
            let end = w.start.saturating_add(d);
            if w.start == t.saturating_add(1) {
                scan.right_created = true;
            } else if end > t {
                if scan.right_agg.is_none() {
                    scan.right_agg = Some(w.clone());
                }
                self.update(cx, rec, w.start, Some(w.agg), w.ts, true, close);
            } else if end == t {
                scan.left_created = true;
                let max_ts = w.ts;
                self.update(cx, rec, w.start, Some(w.agg), w.ts, true, close);
                if max_ts < t {
                    scan.previous_ts = Some(max_ts);
                } else {
                    // A record at `t` exists: its windows are this one's.
                    return;
                }
            } else {
                scan.previous_ts = Some(w.ts);
                scan.left_agg = Some(w);
                break;
            }
        }
        self.create_windows(cx, rec, close, scan);
    }

    /// Kafka's `createWindows`: the previous record's right window, this
    /// record's left window, and its right window, as needed.
    fn create_windows(&mut self, cx: &mut Cx, rec: &Rec<K, V>, close: i64, scan: Scan<A>) {
        let t = rec.timestamp;
        let d = self.d();
        if let Some(p) = scan.previous_ts {
            let start = p.saturating_add(1);
            if !scan.starts.contains(&start) && start.saturating_add(d) >= t {
                self.update(cx, rec, start, None, t, false, close);
            }
        }
        if !scan.left_created {
            // The left window holds the previous records within `d`: those
            // of the window found before it, when the previous record is
            // within reach.
            let base = match (scan.previous_ts, scan.left_agg) {
                (Some(p), Some(w)) if t.saturating_sub(d) <= p => Some(w.agg),
                _ => None,
            };
            self.update(cx, rec, t.saturating_sub(d), base, t, false, close);
        }
        if !scan.right_created {
            if let Some(r) = scan.right_agg.filter(|r| r.ts > t) {
                self.create_right_window(cx, rec, r);
            }
        }
    }

    /// A record at `0 <= t < d` (Kafka's `processEarly`): its left window
    /// would start before 0, so early records share the window `[0, d]`.
    fn process_early(&mut self, cx: &mut Cx, rec: &Rec<K, V>, close: i64) {
        let t = rec.timestamp;
        let found = match self.fetch(&rec.key, 0, t.saturating_add(1)) {
            Ok(f) => f,
            Err(e) => return fail(cx, e),
        };
        let mut combined: Option<Found<A>> = None;
        let mut right_agg: Option<Found<A>> = None;
        let mut right_created = false;
        let mut starts = BTreeSet::new();
        let mut previous_ts = None;
        for w in found {
            starts.insert(w.start);
            if w.start == 0 {
                if w.ts < t {
                    previous_ts = Some(w.ts);
                }
                combined = Some(w);
            } else if w.start <= t {
                right_agg = Some(w.clone());
                self.update(cx, rec, w.start, Some(w.agg), w.ts, true, close);
            } else {
                // Only `t + 1` is left in the fetched range.
                right_created = true;
            }
        }
        // Without a right window containing the record, the combined
        // window holds only records after it, if any.
        if right_agg.is_none() {
            right_agg = combined.clone().filter(|c| c.ts > t);
        }
        if !right_created {
            if let Some(r) = right_agg.filter(|r| r.ts > t) {
                self.create_right_window(cx, rec, r);
            }
        }
        if let Some(p) = previous_ts {
            let start = p.saturating_add(1);
            if !starts.contains(&start) {
                self.update(cx, rec, start, None, t, false, close);
            }
        }
        match combined {
            None => self.update(cx, rec, 0, None, t, false, close),
            Some(c) => self.update(cx, rec, 0, Some(c.agg), c.ts, true, close),
        }
    }
}

impl<K: Clone + 'static, V: Clone, A: Clone + 'static> Node<K, V> for SlidingAggregate<K, V, A> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        let t = rec.timestamp;
        if t < 0 {
            tracing::debug!(
                timestamp = t,
                "skipping a record with a negative timestamp (sliding windows start at 0)"
            );
            return;
        }
        let prev = match self.observed {
            Some(o) => o,
            None => match self.store.meta() {
                Ok(m) => m.unwrap_or(i64::MIN),
                Err(e) => return fail(cx, e),
            },
        };
        let observed = prev.max(t);
        self.observed = Some(observed);
        if observed != prev {
            self.store.set_meta(observed);
        }
        let d = self.d();
        let close = observed.saturating_sub(self.windows.grace_ms);
        if t.saturating_add(1).saturating_add(d) <= close {
            cx.metrics.late_dropped += 1;
            tracing::debug!(
                timestamp = t,
                stream_time = observed,
                "dropping a record whose sliding windows have all closed"
            );
        } else if t < d {
            self.process_early(cx, &rec, close);
        } else {
            self.process_regular(cx, &rec, close);
        }
        if self.emit_final && observed != prev {
            let prev_close = prev.saturating_sub(self.windows.grace_ms);
            self.emit_closed(cx, prev_close, close);
        }
        let horizon = observed.saturating_sub(self.windows.retention_ms());
        if horizon > self.expired_below.saturating_add(d.max(1)) {
            lock(&self.store.store).expire_windows(horizon);
            self.expired_below = horizon;
        }
    }
}
