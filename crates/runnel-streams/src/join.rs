//! Stream-stream windowed joins (inner, left, outer).
//!
//! Each side keeps its records in a window store (key, timestamp and a
//! sequence, so equal keys and timestamps are all kept) for as long as a
//! record of the other side could still join them. A record joins every
//! record of the other side whose timestamp is within the join window;
//! output timestamps are the larger of the two. For left and outer joins a
//! record that found no partner is emitted with `None` once its window has
//! closed (stream time past its timestamp + window + grace), and never if a
//! partner arrives in time — Kafka Streams' behaviour since 3.1 — or, with
//! [`JoinWindows::emit_unmatched_at_once`], at once (the behaviour before).
//! Records later than the window plus grace are dropped and counted.

use std::cell::RefCell;
use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::dsl::{register_store, Data, KStream};
use crate::record::Rec;
use crate::serdes::SerdeRef;
use crate::state::{lock, SharedStore, StoreKind};
use crate::topology::{glock, merge_ports, Build, Cx, Downstream, Node, TopologyError};

/// How far apart in time two records may be to join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    /// A right record may be this much older than the left one.
    pub before_ms: i64,
    /// A right record may be this much newer than the left one.
    pub after_ms: i64,
    pub grace_ms: i64,
    /// Left and outer joins: emit a record that found no partner at once
    /// (joined with `None`), and again joined when a partner comes —
    /// Kafka Streams' behaviour before 3.1, which ksqlDB keeps for a
    /// `WITHIN` without `GRACE PERIOD`. Off: emitted once its window has
    /// closed, and only if no partner came.
    pub eager_unmatched: bool,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl JoinWindows {
    /// Records at most `d` apart join (either order); no grace period.
    pub fn of(d: Duration) -> Self {
        JoinWindows {
            before_ms: ms(d),
            after_ms: ms(d),
            grace_ms: 0,
            eager_unmatched: false,
        }
    }
    /// See [`JoinWindows::eager_unmatched`].
    pub fn emit_unmatched_at_once(mut self) -> Self {
        self.eager_unmatched = true;
        self
    }
    /// Only right records up to `d` older than the left one join.
    pub fn before(mut self, d: Duration) -> Self {
        self.before_ms = ms(d);
        self
    }
    /// Only right records up to `d` newer than the left one join.
    pub fn after(mut self, d: Duration) -> Self {
        self.after_ms = ms(d);
        self
    }
    /// Accept out-of-order records up to `d` after a window closed.
    pub fn grace(mut self, d: Duration) -> Self {
        self.grace_ms = ms(d);
        self
    }
    fn span(&self) -> i64 {
        self.before_ms
            .saturating_add(self.after_ms)
            .saturating_add(self.grace_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Inner,
    Left,
    Outer,
}

const LEFT: u8 = 0;
const RIGHT: u8 = 1;

/// State shared by both sides of one join in one task.
struct Shared {
    stores: [SharedStore; 2],
    /// (timestamp, side, window key) of records that found no partner yet
    /// (left and outer joins).
    unmatched: Option<SharedStore>,
    windows: JoinWindows,
    observed: Option<i64>,
    last_offset: i64,
    sub: u16,
}

impl Shared {
    fn seq(&mut self, offset: i64) -> [u8; 10] {
        if offset == self.last_offset {
            self.sub = self.sub.wrapping_add(1);
        } else {
            self.last_offset = offset;
            self.sub = 0;
        }
        let mut out = [0u8; 10];
        out[..8].copy_from_slice(&offset.to_be_bytes());
        out[8..].copy_from_slice(&self.sub.to_be_bytes());
        out
    }
}

fn unmatched_key(ts: i64, side: u8, window_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + window_key.len());
    k.extend_from_slice(&crate::state::ord_bytes(ts));
    k.push(side);
    k.extend_from_slice(window_key);
    k
}

/// Joins this side's record with the other side's (either may be absent
/// for unmatched records of left and outer joins).
type SideJoiner<V, O, VR> = Rc<dyn Fn(Option<&V>, Option<&O>) -> Option<VR>>;

/// One side of a join. `SIDE` is `LEFT` or `RIGHT`; `V` this side's value,
/// `O` the other's.
struct Side<K, V, O, VR> {
    side: u8,
    kind: Kind,
    shared: Rc<RefCell<Shared>>,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
    os: SerdeRef<O>,
    joiner: SideJoiner<V, O, VR>,
    ds: Downstream<K, VR>,
}

use crate::wire::fail;

impl<K: Clone + 'static, V: Clone + 'static, O: Clone + 'static, VR: Clone> Side<K, V, O, VR> {
    /// Emits `None`-joined results for unmatched records whose window has
    /// closed by stream time `observed`.
    fn emit_expired(&mut self, cx: &mut Cx, observed: i64) {
        let (unmatched, w) = {
            let sh = self.shared.borrow();
            match &sh.unmatched {
                Some(u) => (u.clone(), sh.windows),
                None => return,
            }
        };
        let oldest_open = observed
            .saturating_sub(w.before_ms.max(w.after_ms))
            .saturating_sub(w.grace_ms);
        let hi = crate::state::ord_bytes(oldest_open);
        let rows = match lock(&unmatched).range(Bound::Unbounded, Bound::Excluded(&hi[..])) {
            Ok(r) => r,
            Err(e) => return fail(cx, e),
        };
        for (k, v) in rows {
            let Some(ts) = k.get(..8).and_then(crate::state::from_ord_bytes) else {
                continue;
            };
            let side = k.get(8).copied().unwrap_or(LEFT);
            // A left record's window closes at ts + after + grace, a right
            // record's at ts + before + grace.
            let close = ts
                .saturating_add(if side == LEFT {
                    w.after_ms
                } else {
                    w.before_ms
                })
                .saturating_add(w.grace_ms);
            if close >= observed {
                continue;
            }
            lock(&unmatched).put(k.clone(), None);
            let Some((kb, _)) = k.get(9..).and_then(crate::state::window_split) else {
                continue;
            };
            let Ok(key) = self.ks.deserialize(Some(kb)) else {
                continue;
            };
            let value = if side == self.side {
                match self.vs.deserialize(Some(&v)) {
                    Ok(mine) => (self.joiner)(Some(&mine), None),
                    Err(_) => continue,
                }
            } else {
                match self.os.deserialize(Some(&v)) {
                    Ok(theirs) => (self.joiner)(None, Some(&theirs)),
                    Err(_) => continue,
                }
            };
            if let Some(value) = value {
                self.ds.forward(cx, Rec::new(key, value, ts));
            }
        }
    }
}

impl<K: Clone + 'static, V: Clone + 'static, O: Clone + 'static, VR: Clone> Node<K, V>
    for Side<K, V, O, VR>
{
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, V>) {
        let (w, mine_store, other_store, prev) = {
            let sh = self.shared.borrow();
            let i = usize::from(self.side);
            (
                sh.windows,
                sh.stores[i].clone(),
                sh.stores[1 - i].clone(),
                sh.observed,
            )
        };
        let prev = match prev {
            Some(t) => t,
            None => match lock(&mine_store).get(crate::state::META_KEY) {
                Ok(m) => m
                    .and_then(|b| b.get(..8).and_then(|s| s.try_into().ok()))
                    .map_or(i64::MIN, i64::from_be_bytes),
                Err(e) => return fail(cx, e),
            },
        };
        let observed = prev.max(rec.timestamp);
        // For a left record, partners are within [ts - before, ts + after];
        // for a right record the window is mirrored.
        let (back, ahead) = if self.side == LEFT {
            (w.before_ms, w.after_ms)
        } else {
            (w.after_ms, w.before_ms)
        };
        // As Kafka Streams: a record older than the stores' retention
        // (window + grace behind stream time) is not kept — its window
        // store's expired segments take no writes — but still joins what is
        // kept; an unmatched record of an outer side whose own window has
        // already passed stream time goes out at once with `None` instead
        // of waiting in the unmatched store.
        let late = rec.timestamp.saturating_add(w.span()) < observed;
        if late {
            cx.metrics.late_dropped += 1;
        }
        let window_passed = rec.timestamp.saturating_add(ahead) < observed;
        let (kb, vb) = match (self.ks.serialize(&rec.key), self.vs.serialize(&rec.value)) {
            (Ok(Some(kb)), Ok(Some(vb))) => (kb, vb),
            (Err(e), _) | (_, Err(e)) => return crate::wire::unencodable(cx, "join side", e),
            // Null keys and values never join.
            _ => return,
        };
        let seq = {
            let mut sh = self.shared.borrow_mut();
            sh.observed = Some(observed);
            sh.seq(cx.offset)
        };
        if observed != prev {
            for s in [&mine_store, &other_store] {
                lock(s).put(
                    crate::state::META_KEY.to_vec(),
                    Some(observed.to_be_bytes().to_vec()),
                );
            }
        }
        let mut my_key = crate::state::window_key_bytes(&kb, rec.timestamp);
        my_key.extend_from_slice(&seq);
        if !late {
            lock(&mine_store).put(my_key.clone(), Some(vb.clone()));
        }
        // Partners.
        let lo = crate::state::window_key_bytes(&kb, rec.timestamp.saturating_sub(back));
        let mut hi = crate::state::window_key_bytes(&kb, rec.timestamp.saturating_add(ahead));
        hi.extend_from_slice(&[0xff; 10]);
        let partners = match lock(&other_store).range(Bound::Included(&lo), Bound::Included(&hi)) {
            Ok(p) => p,
            Err(e) => return fail(cx, e),
        };
        let unmatched = self.shared.borrow().unmatched.clone();
        let mut matched = false;
        // Partners past retention are gone, as in Kafka Streams (only a late
        // record's window reaches that far back).
        let retained_from = observed.saturating_sub(w.span());
        for (pk, pv) in partners {
            let Some((_, pts)) = crate::state::window_split(&pk) else {
                continue;
            };
            if pts < retained_from {
                continue;
            }
            let Ok(theirs) = self.os.deserialize(Some(&pv)) else {
                continue;
            };
            matched = true;
            if let Some(u) = &unmatched {
                lock(u).put(unmatched_key(pts, 1 - self.side, &pk), None);
            }
            let Some(out) = (self.joiner)(Some(&rec.value), Some(&theirs)) else {
                continue;
            };
            self.ds.forward(
                cx,
                Rec {
                    key: rec.key.clone(),
                    value: out,
                    timestamp: rec.timestamp.max(pts),
                    headers: rec.headers.clone(),
                },
            );
        }
        let keeps_unmatched = match self.kind {
            Kind::Inner => false,
            Kind::Left => self.side == LEFT,
            Kind::Outer => true,
        };
        if !matched && keeps_unmatched {
            if w.eager_unmatched || window_passed {
                if let Some(out) = (self.joiner)(Some(&rec.value), None) {
                    self.ds.forward(
                        cx,
                        Rec {
                            key: rec.key.clone(),
                            value: out,
                            timestamp: rec.timestamp,
                            headers: rec.headers.clone(),
                        },
                    );
                }
            } else if let Some(u) = &unmatched {
                lock(u).put(unmatched_key(rec.timestamp, self.side, &my_key), Some(vb));
            }
        }
        if observed != prev {
            self.emit_expired(cx, observed);
            let horizon = observed.saturating_sub(w.span()).saturating_sub(1);
            for s in [&mine_store, &other_store] {
                lock(s).expire_windows(horizon);
            }
        }
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Stream-stream inner join: every pair of records with equal keys at
    /// most the window apart.
    pub fn join_stream<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&V, &V2) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        store_prefix: &str,
    ) -> KStream<K, VR> {
        let j = Arc::new(joiner);
        self.stream_join(
            other,
            windows,
            Kind::Inner,
            store_prefix,
            move |a: Option<&V>, b: Option<&V2>| match (a, b) {
                (Some(a), Some(b)) => Some(j(a, b)),
                _ => None,
            },
        )
    }

    /// Stream-stream left join: also emits each left record that found no
    /// partner, with `None`, once its window closed.
    pub fn left_join_stream<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&V, Option<&V2>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        store_prefix: &str,
    ) -> KStream<K, VR> {
        let j = Arc::new(joiner);
        self.stream_join(
            other,
            windows,
            Kind::Left,
            store_prefix,
            move |a: Option<&V>, b: Option<&V2>| a.map(|a| j(a, b)),
        )
    }

    /// Stream-stream outer join: unmatched records of either side are
    /// emitted with `None` for the other once their window closed.
    pub fn outer_join_stream<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        store_prefix: &str,
    ) -> KStream<K, VR> {
        self.stream_join(other, windows, Kind::Outer, store_prefix, move |a, b| {
            Some(joiner(a, b))
        })
    }

    fn stream_join<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        windows: JoinWindows,
        kind: Kind,
        prefix: &str,
        joiner: impl Fn(Option<&V>, Option<&V2>) -> Option<VR> + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let left = self.repartitioned_for("stream-stream join");
        let right = other.repartitioned_for("stream-stream join");
        let graph = left.port.graph.clone();
        if left.ks.is_none() && right.ks.is_none() || left.vs.is_none() || right.vs.is_none() {
            glock(&graph).errors.push(TopologyError::MissingSerde(
                "stream-stream join (both sides' values are stored)".into(),
            ));
        }
        let ks = crate::dsl::or_missing(&left.ks.clone().or_else(|| right.ks.clone()));
        let v1 = crate::dsl::or_missing(&left.vs);
        let v2 = crate::dsl::or_missing(&right.vs);
        let shared_id = {
            let mut g = glock(&graph);
            g.union(left.port.id, right.port.id);
            g.new_node(Some(left.port.id))
        };
        let names = [
            format!("{prefix}-this-join-store"),
            format!("{prefix}-other-join-store"),
            format!("{prefix}-outer-shared-join-store"),
        ];
        let retention = windows.span();
        for n in &names[..2] {
            register_store(
                &graph,
                n,
                StoreKind::Window {
                    retention_ms: retention,
                },
                shared_id,
            );
        }
        if kind != Kind::Inner {
            register_store(&graph, &names[2], StoreKind::KeyValue, shared_id);
        }
        let names = Arc::new(names);
        let make_shared = {
            let names = names.clone();
            move |b: &mut Build<'_>| -> Rc<RefCell<Shared>> {
                let names = names.clone();
                b.memo(shared_id, move |b| {
                    Rc::new(RefCell::new(Shared {
                        stores: [b.store(&names[0]), b.store(&names[1])],
                        unmatched: (kind != Kind::Inner).then(|| b.store(&names[2])),
                        windows,
                        observed: None,
                        last_offset: i64::MIN,
                        sub: 0,
                    }))
                })
            }
        };
        let joiner = Arc::new(joiner);
        let (mk1, j1, k1, a1, b1) = (
            make_shared.clone(),
            joiner.clone(),
            ks.clone(),
            v1.clone(),
            v2.clone(),
        );
        let lout = left.port.add(move |b: &mut Build<'_>, ds| {
            let j = j1.clone();
            Side {
                side: LEFT,
                kind,
                shared: mk1(b),
                ks: k1.clone(),
                vs: a1.clone(),
                os: b1.clone(),
                joiner: Rc::new(move |a: Option<&V>, o: Option<&V2>| j(a, o)),
                ds,
            }
        });
        let (mk2, j2, k2, a2, b2) = (make_shared, joiner, ks.clone(), v2, v1);
        let rout = right.port.add(move |b: &mut Build<'_>, ds| {
            let j = j2.clone();
            Side {
                side: RIGHT,
                kind,
                shared: mk2(b),
                ks: k2.clone(),
                vs: a2.clone(),
                os: b2.clone(),
                joiner: Rc::new(move |mine: Option<&V2>, theirs: Option<&V>| j(theirs, mine)),
                ds,
            }
        });
        KStream {
            port: merge_ports(&[lout, rout]),
            ks: Some(ks),
            vs: None,
            key_changed: false,
        }
    }
}
