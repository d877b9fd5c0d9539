//! Foreign-key table-table joins: [`KTable::join_foreign_key`] and
//! [`KTable::left_join_foreign_key`]. Each row of this (left) table names a
//! row of the other (right) table through a foreign key extracted from its
//! value; the result is keyed by the left key. The two tables need not be
//! co-partitioned.
//!
//! # Design
//!
//! Four steps, each in the sub-topology that owns the state it needs:
//!
//! 1. **Subscribe** (left table's sub-topology). Every left change sends
//!    *subscription* records, keyed by foreign key, to
//!    `<application.id>-<name>-subscription-registration-topic`, with Kafka
//!    Streams' instructions: a left row whose foreign key changed
//!    unsubscribes from the old key without a response and subscribes to
//!    the new one asking for a response even without a right row (so the
//!    old result is retracted); a deleted left row unsubscribes asking for
//!    a null response; an insert, or an update keeping its foreign key,
//!    asks for a response only if a right row exists (inner join) — a left
//!    join always asks for one. A subscription carries the left key, the
//!    full left value, and a *version* (below).
//! 2. **Forward right rows** (right table's sub-topology). Every right
//!    change is sent to the same topic, keyed by the right key, so it lands
//!    on the partition of the subscriptions that name it.
//! 3. **Match** (a sub-topology reading only that topic). It keeps the
//!    subscriptions (`<name>-subscription-store`, keyed by foreign key then
//!    left key, so a prefix scan finds a right row's subscribers) and a copy
//!    of the right table (`<name>-foreign-store`). A subscription is
//!    answered with the current right row; a right change is sent to every
//!    subscriber. Answers go to
//!    `<application.id>-<name>-subscription-response-topic`, keyed by the
//!    left key.
//! 4. **Resolve** (a sub-topology reading only the response topic). It
//!    keeps, per left key, the latest response (`<name>-result-store`):
//!    version, left value and right value; the result is the joiner applied
//!    to them. A response older than the one kept is stale (the left row
//!    changed since, possibly to another foreign key whose answer came
//!    first) and is dropped. Each accepted response emits the result's
//!    `Change { new, old }` — a tombstone even when both are absent, as
//!    Kafka Streams forwards one.
//!
//! The matching step keeps its own copy of the right table, where Kafka
//! Streams reads the right table's store directly: Kafka gives the
//! subscription topic the right table's partition count and co-locates the
//! two, while Runnel sizes an internal topic after the sub-topology that
//! writes it — here the left table's — so the matching step cannot share a
//! task with the right table when partition counts differ. Likewise Kafka
//! checks responses against the left table's current value (by hash);
//! here responses are resolved in their own sub-topology, against
//! versions: a per-task counter of the subscribing task, persisted in
//! `<name>-version-store` and started at least at the wall clock (ms × 2²⁰)
//! whenever the task starts, so versions only grow for a key — across
//! restarts too, even if uncommitted output of a failed run was seen.
//!
//! Result timestamps follow Kafka Streams: the larger of the left and right
//! rows' timestamps for answers to subscriptions, the right record's for
//! answers to right changes.
//!
//! The result table reads an internal topic of its own: joining it on the
//! primary key with a table of the left table's sub-topology would merge
//! the two, whose partition counts then cannot be resolved
//! (`NotCoPartitioned` at start-up).

use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;

use crate::dsl::{or_missing, register_store, root, Data, GetFn, Getter, KTable};
use crate::record::{Change, Rec};
use crate::serdes::{SerdeError, SerdeRef};
use crate::state::{lock, SharedStore, StoreKind};
use crate::topology::{glock, Build, Cx, Downstream, Node, Port, Raw, TopicName, TopologyError};
use crate::wire::{fail, internal_topic, put_field, send, undecodable, Reader, WireError};

/// What the matching step does with a subscription (Kafka Streams'
/// `SubscriptionWrapper.Instruction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Instruction {
    /// Unsubscribe; no response (the new foreign key answers).
    DeleteNoPropagate = 0,
    /// Unsubscribe and answer with nothing (the left row was deleted).
    DeleteAndPropagate = 1,
    /// Subscribe and answer, with or without a right row.
    PropagateNullIfNoForeign = 2,
    /// Subscribe; answer only if a right row exists.
    PropagateOnlyIfForeign = 3,
}

impl Instruction {
    fn from_u8(b: u8) -> Result<Self, WireError> {
        Ok(match b {
            0 => Instruction::DeleteNoPropagate,
            1 => Instruction::DeleteAndPropagate,
            2 => Instruction::PropagateNullIfNoForeign,
            3 => Instruction::PropagateOnlyIfForeign,
            _ => return Err(WireError("unknown subscription instruction")),
        })
    }
}

/// Record kinds on the subscription topic.
const SUBSCRIPTION: u8 = 0;
const FOREIGN_ROW: u8 = 1;

/// Key of the version counter in the version store.
const VERSION_KEY: &[u8] = b"version";

/// Decodes both sides and applies the joiner (`None`: no result).
struct Resolver<V, VO, VR> {
    vs: SerdeRef<V>,
    vos: SerdeRef<VO>,
    #[allow(clippy::type_complexity)]
    joiner: Arc<dyn Fn(&V, Option<&VO>) -> Option<VR> + Send + Sync>,
}

impl<V: 'static, VO: 'static, VR> Resolver<V, VO, VR> {
    /// `left`/`right`: the rows' serialized values, `None` if absent.
    fn resolve(&self, left: Option<&Raw>, right: Option<&Raw>) -> Option<VR> {
        let left = match self.vs.deserialize(left?.as_deref()) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable left value in a foreign-key join; no result");
                return None;
            }
        };
        let right = match right
            .map(|r| self.vos.deserialize(r.as_deref()))
            .transpose()
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable right value in a foreign-key join; no result");
                return None;
            }
        };
        (self.joiner)(&left, right.as_ref())
    }
}

/// Step 1: left changes become subscriptions.
struct SubscriptionSend<K, V, KO> {
    extract: Arc<dyn Fn(&V) -> KO + Send + Sync>,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
    fks: SerdeRef<KO>,
    left_join: bool,
    topic: TopicName,
    versions: SharedStore,
    /// The last version handed out, once loaded.
    last: Option<u64>,
}

impl<K: 'static, V: 'static, KO: 'static> SubscriptionSend<K, V, KO> {
    fn next_version(&mut self, cx: &mut Cx) -> Option<u64> {
        let last = match self.last {
            Some(v) => v,
            None => {
                let stored = match lock(&self.versions).get(VERSION_KEY) {
                    Ok(s) => s,
                    Err(e) => {
                        fail(cx, e);
                        return None;
                    }
                };
                let stored = stored.and_then(|b| Reader::new(&b).u64().ok()).unwrap_or(0);
                let clock = u64::try_from(cx.wall_ms)
                    .unwrap_or(0)
                    .saturating_mul(1 << 20);
                stored.max(clock)
            }
        };
        let v = last.saturating_add(1);
        self.last = Some(v);
        lock(&self.versions).put(VERSION_KEY.to_vec(), Some(v.to_be_bytes().to_vec()));
        Some(v)
    }

    fn fk_bytes(&self, v: &V) -> Result<Vec<u8>, SerdeError> {
        Ok(self.fks.serialize(&(self.extract)(v))?.unwrap_or_default())
    }

    #[allow(clippy::too_many_arguments)]
    fn subscribe(
        &self,
        cx: &mut Cx,
        fk: Vec<u8>,
        instruction: Instruction,
        version: u64,
        left_key: &Raw,
        left_value: Option<&Raw>,
        rec: &Rec<K, Change<V>>,
    ) {
        let mut value = vec![SUBSCRIPTION, instruction as u8];
        value.extend_from_slice(&version.to_be_bytes());
        put_field(&mut value, Some(left_key));
        put_field(&mut value, left_value);
        send(
            cx,
            &self.topic,
            Some(fk),
            None,
            Some(value),
            rec.timestamp,
            rec.headers.clone(),
        );
    }
}

impl<K: 'static, V: 'static, KO: 'static> Node<K, Change<V>> for SubscriptionSend<K, V, KO> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, Change<V>>) {
        if rec.value.new.is_none() && rec.value.old.is_none() {
            return;
        }
        let encoded = (|| {
            let left_key = self.ks.serialize(&rec.key)?;
            let old_fk = rec
                .value
                .old
                .as_ref()
                .map(|o| self.fk_bytes(o))
                .transpose()?;
            let new = match &rec.value.new {
                Some(n) => Some((self.fk_bytes(n)?, self.vs.serialize(n)?)),
                None => None,
            };
            Ok::<_, SerdeError>((left_key, old_fk, new))
        })();
        let (left_key, old_fk, new) = match encoded {
            Ok(e) => e,
            Err(e) => return crate::wire::unencodable(cx, "foreign-key join subscription", e),
        };
        let Some(version) = self.next_version(cx) else {
            return;
        };
        match new {
            None => {
                if let Some(ofk) = old_fk {
                    self.subscribe(
                        cx,
                        ofk,
                        Instruction::DeleteAndPropagate,
                        version,
                        &left_key,
                        None,
                        &rec,
                    );
                }
            }
            Some((nfk, left_value)) => {
                let changed = old_fk.as_ref().is_some_and(|o| *o != nfk);
                if let (true, Some(ofk)) = (changed, old_fk) {
                    self.subscribe(
                        cx,
                        ofk,
                        Instruction::DeleteNoPropagate,
                        version,
                        &left_key,
                        None,
                        &rec,
                    );
                }
                let instruction = if self.left_join || changed {
                    Instruction::PropagateNullIfNoForeign
                } else {
                    Instruction::PropagateOnlyIfForeign
                };
                self.subscribe(
                    cx,
                    nfk,
                    instruction,
                    version,
                    &left_key,
                    Some(&left_value),
                    &rec,
                );
            }
        }
    }
}

/// Step 2: right changes go to the subscription topic.
struct ForeignSend<KO, VO> {
    fks: SerdeRef<KO>,
    vos: SerdeRef<VO>,
    topic: TopicName,
}

impl<KO: 'static, VO: 'static> Node<KO, Change<VO>> for ForeignSend<KO, VO> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<KO, Change<VO>>) {
        if rec.value.new.is_none() && rec.value.old.is_none() {
            return;
        }
        let encoded = self.fks.serialize(&rec.key).and_then(|k| {
            let row = rec
                .value
                .new
                .as_ref()
                .map(|v| self.vos.serialize(v))
                .transpose()?;
            Ok((k.unwrap_or_default(), row))
        });
        let (key, row) = match encoded {
            Ok(e) => e,
            Err(e) => return crate::wire::unencodable(cx, "foreign-key join row", e),
        };
        let mut value = vec![FOREIGN_ROW];
        put_field(&mut value, row.as_ref());
        send(
            cx,
            &self.topic,
            Some(key),
            None,
            Some(value),
            rec.timestamp,
            rec.headers,
        );
    }
}

/// `[fk length][fk]`: the prefix of one foreign key's subscriptions.
fn sub_prefix(fk: &[u8]) -> Vec<u8> {
    let len = u32::try_from(fk.len()).unwrap_or(u32::MAX);
    let mut k = Vec::with_capacity(4 + fk.len() + 8);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(fk);
    k
}

fn sub_key(fk: &[u8], left_key: &Raw) -> Vec<u8> {
    let mut k = sub_prefix(fk);
    put_field(&mut k, Some(left_key));
    k
}

/// The smallest key above every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xff {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

/// Step 3: matches subscriptions with right rows.
struct SubscriptionMatch {
    subs: SharedStore,
    foreign: SharedStore,
    response: TopicName,
}

/// A right row as the matching step keeps it: timestamp and value.
fn decode_foreign(b: &[u8]) -> Result<(i64, Raw), WireError> {
    let mut r = Reader::new(b);
    let ts = r.i64()?;
    let v = r.field()?.ok_or(WireError("absent right row"))?;
    r.end()?;
    Ok((ts, v))
}

impl SubscriptionMatch {
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &self,
        cx: &mut Cx,
        left_key: Raw,
        version: u64,
        left: Option<&Raw>,
        right: Option<&Raw>,
        ts: i64,
        headers: crate::backend::Headers,
    ) {
        let mut value = version.to_be_bytes().to_vec();
        put_field(&mut value, left);
        put_field(&mut value, right);
        let hash = Some(left_key.clone().unwrap_or_default());
        send(cx, &self.response, left_key, hash, Some(value), ts, headers);
    }

    fn foreign_row(&self, fk: &[u8]) -> Result<Option<(i64, Raw)>, String> {
        let raw = lock(&self.foreign).get(fk).map_err(|e| e.to_string())?;
        raw.map(|b| decode_foreign(&b).map_err(|e| e.to_string()))
            .transpose()
    }

    fn on_subscription(
        &mut self,
        cx: &mut Cx,
        fk: &[u8],
        mut r: Reader<'_>,
        rec: &Rec<Raw, Raw>,
    ) -> Result<(), WireError> {
        let instruction = Instruction::from_u8(r.u8()?)?;
        let version = r.u64()?;
        let left_key = r.field()?.ok_or(WireError("subscription without a key"))?;
        let left = r.field()?;
        r.end()?;
        let key = sub_key(fk, &left_key);
        let right = match self.foreign_row(fk) {
            Ok(x) => x,
            Err(e) => {
                fail(cx, e);
                return Ok(());
            }
        };
        let ts = right
            .as_ref()
            .map_or(rec.timestamp, |(t, _)| rec.timestamp.max(*t));
        match instruction {
            Instruction::DeleteNoPropagate => lock(&self.subs).put(key, None),
            Instruction::DeleteAndPropagate => {
                lock(&self.subs).put(key, None);
                self.respond(cx, left_key, version, None, None, ts, rec.headers.clone());
            }
            Instruction::PropagateNullIfNoForeign | Instruction::PropagateOnlyIfForeign => {
                let left = left.ok_or(WireError("subscription without a value"))?;
                let mut v = version.to_be_bytes().to_vec();
                put_field(&mut v, Some(&left));
                lock(&self.subs).put(key, Some(v));
                if right.is_some() || instruction == Instruction::PropagateNullIfNoForeign {
                    self.respond(
                        cx,
                        left_key,
                        version,
                        Some(&left),
                        right.as_ref().map(|(_, v)| v),
                        ts,
                        rec.headers.clone(),
                    );
                }
            }
        }
        Ok(())
    }

    fn on_foreign_row(
        &mut self,
        cx: &mut Cx,
        fk: &[u8],
        mut r: Reader<'_>,
        rec: &Rec<Raw, Raw>,
    ) -> Result<(), WireError> {
        let row = r.field()?;
        r.end()?;
        let stored = row.as_ref().map(|v| {
            let mut b = rec.timestamp.to_be_bytes().to_vec();
            put_field(&mut b, Some(v));
            b
        });
        lock(&self.foreign).put(fk.to_vec(), stored);
        let prefix = sub_prefix(fk);
        let end = prefix_end(&prefix);
        let hi = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let subs = match lock(&self.subs).range(Bound::Included(&prefix[..]), hi) {
            Ok(s) => s,
            Err(e) => {
                fail(cx, e);
                return Ok(());
            }
        };
        for (k, v) in subs {
            let mut kr = Reader::new(k.get(prefix.len()..).unwrap_or_default());
            let left_key = kr.field()?.ok_or(WireError("subscription without a key"))?;
            kr.end()?;
            let mut vr = Reader::new(&v);
            let version = vr.u64()?;
            let left = vr.field()?;
            vr.end()?;
            self.respond(
                cx,
                left_key,
                version,
                left.as_ref(),
                row.as_ref(),
                rec.timestamp,
                rec.headers.clone(),
            );
        }
        Ok(())
    }
}

impl Node<Raw, Raw> for SubscriptionMatch {
    fn process(&mut self, cx: &mut Cx, rec: Rec<Raw, Raw>) {
        let fk = rec.key.clone().unwrap_or_default();
        let Some(value) = rec.value.as_deref() else {
            return undecodable(cx, WireError("null subscription record"));
        };
        let mut r = Reader::new(value);
        let res = match r.u8() {
            Ok(SUBSCRIPTION) => self.on_subscription(cx, &fk, r, &rec),
            Ok(FOREIGN_ROW) => self.on_foreign_row(cx, &fk, r, &rec),
            Ok(_) => Err(WireError("unknown subscription record kind")),
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            undecodable(cx, e);
        }
    }
}

/// The latest response of a left key, as the resolving step keeps it.
struct Latest {
    ts: i64,
    version: u64,
    left: Option<Raw>,
    right: Option<Raw>,
}

impl Latest {
    fn encode(&self) -> Vec<u8> {
        let mut b = self.ts.to_be_bytes().to_vec();
        b.extend_from_slice(&self.version.to_be_bytes());
        put_field(&mut b, self.left.as_ref());
        put_field(&mut b, self.right.as_ref());
        b
    }

    fn decode(b: &[u8]) -> Result<Latest, WireError> {
        let mut r = Reader::new(b);
        let l = Latest {
            ts: r.i64()?,
            version: r.u64()?,
            left: r.field()?,
            right: r.field()?,
        };
        r.end()?;
        Ok(l)
    }
}

/// Step 4: resolves responses into result changes.
struct ResponseResolve<K, V, VO, VR> {
    ks: SerdeRef<K>,
    resolver: Arc<Resolver<V, VO, VR>>,
    store: SharedStore,
    ds: Downstream<K, Change<VR>>,
}

impl<K: Clone + 'static, V: 'static, VO: 'static, VR: Clone + 'static> Node<Raw, Raw>
    for ResponseResolve<K, V, VO, VR>
{
    fn process(&mut self, cx: &mut Cx, rec: Rec<Raw, Raw>) {
        let parsed = rec
            .value
            .as_deref()
            .ok_or(WireError("null response"))
            .and_then(|b| {
                let mut r = Reader::new(b);
                let version = r.u64()?;
                let left = r.field()?;
                let right = r.field()?;
                r.end()?;
                Ok((version, left, right))
            });
        let (version, left, right) = match parsed {
            Ok(p) => p,
            Err(e) => return undecodable(cx, e),
        };
        let store_key = rec.key.clone().unwrap_or_default();
        let kept = match lock(&self.store).get(&store_key) {
            Ok(k) => k,
            Err(e) => return fail(cx, e),
        };
        let kept = match kept.map(|b| Latest::decode(&b)).transpose() {
            Ok(k) => k,
            Err(e) => return fail(cx, format!("foreign-key join result store: {e}")),
        };
        if kept.as_ref().is_some_and(|k| k.version > version) {
            tracing::trace!(version, "dropping a stale foreign-key join response");
            return;
        }
        let old = kept.and_then(|k| self.resolver.resolve(k.left.as_ref(), k.right.as_ref()));
        let new = self.resolver.resolve(left.as_ref(), right.as_ref());
        let latest = Latest {
            ts: rec.timestamp,
            version,
            left,
            right,
        };
        lock(&self.store).put(store_key, Some(latest.encode()));
        // Forwarded even when both are absent (a left row deleted or moved
        // to a missing right row after its result was already retracted):
        // Kafka Streams sends that tombstone too.
        let key = match self.ks.deserialize(rec.key.as_deref()) {
            Ok(k) => k,
            Err(e) => return undecodable(cx, e),
        };
        self.ds.forward(
            cx,
            Rec {
                key,
                value: Change::new(new, old),
                timestamp: rec.timestamp,
                headers: rec.headers,
            },
        );
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Foreign-key inner join: each row of this table is joined with the
    /// row of `other` whose key `extractor` takes from its value; rows
    /// without a match have no result. Results are keyed by this table's
    /// key and follow updates of either table, including a row moving to
    /// another foreign key (its old result is retracted or replaced).
    ///
    /// The tables need not be co-partitioned. Left rows subscribe to their
    /// foreign key through the internal topic
    /// `<application.id>-<name>-subscription-registration-topic` (right
    /// rows are forwarded there too); answers come back, keyed by the left
    /// key, through `<application.id>-<name>-subscription-response-topic`,
    /// and answers overtaken by a newer change of their left row are
    /// dropped. Stores: `<name>-version-store`, `<name>-subscription-store`,
    /// `<name>-foreign-store` (a copy of the right table) and
    /// `<name>-result-store`. Result timestamps are the larger of the two
    /// rows' (a right row's update: its own).
    ///
    /// Both tables need key and value serdes (see `with_serdes`); `other`'s
    /// key serde serializes the foreign key. The result has no value serde
    /// until `with_serdes` gives one.
    pub fn join_foreign_key<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        extractor: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        name: &str,
    ) -> KTable<K, VR> {
        let j = Arc::new(joiner);
        self.fk_join(
            other,
            Arc::new(extractor),
            Arc::new(move |v: &V, o: Option<&VO>| o.map(|o| j(v, o))),
            false,
            name,
        )
    }

    /// Foreign-key left join: like [`KTable::join_foreign_key`], but every
    /// row of this table has a result; rows without a matching row of
    /// `other` are joined with `None`.
    pub fn left_join_foreign_key<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        extractor: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        name: &str,
    ) -> KTable<K, VR> {
        let j = Arc::new(joiner);
        self.fk_join(
            other,
            Arc::new(extractor),
            Arc::new(move |v: &V, o: Option<&VO>| Some(j(v, o))),
            true,
            name,
        )
    }

    #[allow(clippy::type_complexity)]
    fn fk_join<KO: Data, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        extract: Arc<dyn Fn(&V) -> KO + Send + Sync>,
        joiner: Arc<dyn Fn(&V, Option<&VO>) -> Option<VR> + Send + Sync>,
        left_join: bool,
        name: &str,
    ) -> KTable<K, VR> {
        let graph = self.port.graph.clone();
        for (missing, what) in [
            (self.ks.is_none(), "this table's keys"),
            (self.vs.is_none(), "this table's values"),
            (
                other.ks.is_none(),
                "the other table's keys (they serialize the foreign key)",
            ),
            (other.vs.is_none(), "the other table's values"),
        ] {
            if missing {
                glock(&graph)
                    .errors
                    .push(TopologyError::MissingSerde(format!(
                        "foreign-key join {name}: {what}"
                    )));
            }
        }
        let (ks, vs) = (or_missing(&self.ks), or_missing(&self.vs));
        let (fks, vos) = (or_missing(&other.ks), or_missing(&other.vs));
        let sub_suffix = format!("{name}-subscription-registration-topic");
        let resp_suffix = format!("{name}-subscription-response-topic");
        let version_store = format!("{name}-version-store");
        let subs_store = format!("{name}-subscription-store");
        let foreign_store = format!("{name}-foreign-store");
        let result_store = format!("{name}-result-store");
        let sub_topic = TopicName::Internal(sub_suffix.clone());
        let resp_topic = TopicName::Internal(resp_suffix.clone());

        // 1. Left changes subscribe (left table's sub-topology).
        let (k1, v1, f1, t1, n1) = (
            ks.clone(),
            vs.clone(),
            fks.clone(),
            sub_topic.clone(),
            version_store.clone(),
        );
        let sender: Port<(), ()> = self.port.add(
            move |b: &mut Build<'_>, _ds: Downstream<(), ()>| SubscriptionSend {
                extract: extract.clone(),
                ks: k1.clone(),
                vs: v1.clone(),
                fks: f1.clone(),
                left_join,
                topic: t1.clone(),
                versions: b.store(&n1),
                last: None,
            },
        );
        // The topic takes the left sub-topology's partition count.
        internal_topic(&graph, &sub_suffix, sender.id);
        register_store(&graph, &version_store, StoreKind::KeyValue, sender.id);

        // 2. Right changes follow (right table's sub-topology).
        let (f2, o2, t2) = (fks, vos.clone(), sub_topic.clone());
        let _: Port<(), ()> = other
            .port
            .add(move |_, _ds: Downstream<(), ()>| ForeignSend {
                fks: f2.clone(),
                vos: o2.clone(),
                topic: t2.clone(),
            });

        // 3. Matching, in a sub-topology of its own.
        let raw = root(&graph, sub_topic);
        let (s3, f3, r3) = (
            subs_store.clone(),
            foreign_store.clone(),
            resp_topic.clone(),
        );
        let matcher: Port<(), ()> =
            raw.add(
                move |b: &mut Build<'_>, _ds: Downstream<(), ()>| SubscriptionMatch {
                    subs: b.store(&s3),
                    foreign: b.store(&f3),
                    response: r3.clone(),
                },
            );
        internal_topic(&graph, &resp_suffix, matcher.id);
        register_store(&graph, &subs_store, StoreKind::KeyValue, matcher.id);
        register_store(&graph, &foreign_store, StoreKind::KeyValue, matcher.id);

        // 4. Resolving, in a sub-topology of its own.
        let resolver = Arc::new(Resolver { vs, vos, joiner });
        let raw = root(&graph, resp_topic);
        let (k4, r4, n4) = (ks.clone(), resolver.clone(), result_store.clone());
        let port = raw.add(move |b: &mut Build<'_>, ds| ResponseResolve {
            ks: k4.clone(),
            resolver: r4.clone(),
            store: b.store(&n4),
            ds,
        });
        register_store(&graph, &result_store, StoreKind::KeyValue, port.id);

        let gks = ks.clone();
        let getter: Getter<K, VR> = Arc::new(move |b: &mut Build<'_>| {
            let st = b.store(&result_store);
            let (ks, res) = (gks.clone(), resolver.clone());
            let f: GetFn<K, VR> = Rc::new(move |k: &K| {
                let kb = ks.serialize(k).ok()?.unwrap_or_default();
                let raw = lock(&st).get(&kb).ok()??;
                let l = Latest::decode(&raw).ok()?;
                res.resolve(l.left.as_ref(), l.right.as_ref())
                    .map(|v| (v, l.ts))
            });
            f
        });
        KTable {
            port,
            ks: Some(ks),
            vs: None,
            getter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_keys_group_by_foreign_key() {
        let a = sub_key(b"ab", &Some(b"k1".to_vec()));
        let b = sub_key(b"ab", &Some(b"k2".to_vec()));
        let c = sub_key(b"abc", &Some(b"k0".to_vec()));
        let p = sub_prefix(b"ab");
        let end = prefix_end(&p).unwrap();
        for k in [&a, &b] {
            assert!(k.starts_with(&p) && k.as_slice() < end.as_slice());
        }
        assert!(c.as_slice() >= end.as_slice());
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        let l = Latest {
            ts: -3,
            version: 9,
            left: Some(Some(b"v".to_vec())),
            right: None,
        };
        let d = Latest::decode(&l.encode()).unwrap();
        assert_eq!(
            (d.ts, d.version, d.left, d.right),
            (l.ts, l.version, l.left, l.right)
        );
        assert!(Latest::decode(&[0; 3]).is_err());
        assert_eq!(
            Instruction::from_u8(3),
            Ok(Instruction::PropagateOnlyIfForeign)
        );
        assert!(Instruction::from_u8(4).is_err());
    }
}
