//! Re-grouping a table: [`KTable::group_by`] and the [`KGroupedTable`]
//! aggregations (`count`, `reduce`, `aggregate`), with Kafka Streams'
//! semantics.
//!
//! A table row change `Change { new, old }` is mapped by the selector twice:
//! the old value gives the group it leaves, the new value the group it
//! joins. The aggregation *subtracts* the old value from its group and
//! *adds* the new value to its group, so every group's aggregate always
//! reflects the table's current rows.
//!
//! The change goes through a repartition topic
//! `<application.id>-<store>-repartition` (keyed by the new grouping key)
//! as Kafka Streams does since KIP-904:
//! * old and new map to the same group: one record carrying both values,
//!   so the group is updated once (subtract, then add) and emits a single
//!   update;
//! * they map to different groups (or one side is absent): a *subtract*
//!   record (`new` absent) to the old group, then an *add* record (`old`
//!   absent) to the new group. The two land on the partitions of their own
//!   groups.
//!
//! The record value is `[new][old]`, each a field of
//! `crate::wire::put_field` (absent / null / length-prefixed bytes of the
//! value serde), so a value serde that writes null is still carried.
//!
//! Like Kafka Streams, aggregates are never deleted by subtraction: a count
//! that drops to 0 stays (and is emitted as) 0.

use std::sync::Arc;

use crate::dsl::{register_store, root, Data, KTable};
use crate::ops;
use crate::record::{Change, Rec};
use crate::serdes::{I64Serde, Serde, SerdeError, SerdeRef};
use crate::state::{KvStore, StoreKind};
use crate::topology::{Build, Cx, Downstream, Node, Port};
use crate::wire::{fail, internal_topic, kv_getter, put_field, Reader};

/// A table re-keyed by [`KTable::group_by`], ready to aggregate. Each row
/// belongs to exactly one group; updates move it between groups.
pub struct KGroupedTable<K, V> {
    /// The re-keyed changes, before repartitioning (that happens per
    /// aggregation, through a topic named after its store).
    port: Port<K, Change<V>>,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Groups the table's rows by a new key: `selector` maps each row to
    /// `(group key, value to aggregate)`. Each aggregation of the result
    /// repartitions through `<application.id>-<store>-repartition`: a row
    /// update is subtracted (old value) from the group it leaves and added
    /// (new value) to the group it joins — in one record when both are the
    /// same group, else as a subtract record then an add record. The serdes
    /// write that topic (and the key serde the aggregate's store).
    pub fn group_by<K2: Data, V2: Data>(
        &self,
        selector: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
        keys: impl Serde<K2>,
        values: impl Serde<V2>,
    ) -> KGroupedTable<K2, V2> {
        let ks: SerdeRef<K2> = Arc::new(keys);
        let f = Arc::new(selector);
        let k2 = ks.clone();
        let port = self.port.add(move |_, ds| Rekey {
            f: f.clone(),
            ks: k2.clone(),
            ds,
        });
        KGroupedTable {
            port,
            ks,
            vs: Arc::new(values),
        }
    }
}

/// `(group key, value, aggregate so far or None) -> aggregate`.
type AddFn<K, V, A> = Arc<dyn Fn(&K, V, Option<A>) -> A + Send + Sync>;
/// `(group key, value, aggregate) -> aggregate without the value`.
type SubFn<K, V, A> = Arc<dyn Fn(&K, V, A) -> A + Send + Sync>;

impl<K: Data, V: Data> KGroupedTable<K, V> {
    /// Counts the rows per group, in the store `store`.
    pub fn count(&self, store: &str) -> KTable<K, i64> {
        self.aggregate(|| 0i64, |_, _, n| n + 1, |_, _, n| n - 1, I64Serde, store)
    }

    /// Combines the values per group: `adder(aggregate, value)` adds a
    /// value (the first value of a group is its aggregate),
    /// `subtractor(aggregate, value)` removes one.
    pub fn reduce(
        &self,
        adder: impl Fn(V, V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(V, V) -> V + Send + Sync + 'static,
        store: &str,
    ) -> KTable<K, V> {
        let add: AddFn<K, V, V> = Arc::new(move |_, v, old: Option<V>| match old {
            None => v,
            Some(a) => adder(a, v),
        });
        let sub: SubFn<K, V, V> = Arc::new(move |_, v, a| subtractor(a, v));
        self.aggregate_with(add, sub, self.vs.clone(), store)
    }

    /// Folds the values per group: `init` starts a group's aggregate,
    /// `adder` adds a value, `subtractor` removes one.
    pub fn aggregate<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        adder: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        subtractor: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        agg_serde: impl Serde<A>,
        store: &str,
    ) -> KTable<K, A> {
        let add: AddFn<K, V, A> = crate::dsl::with_init(init, adder);
        self.aggregate_with(add, Arc::new(subtractor), Arc::new(agg_serde), store)
    }

    fn aggregate_with<A: Data>(
        &self,
        add: AddFn<K, V, A>,
        sub: SubFn<K, V, A>,
        agg_serde: SerdeRef<A>,
        store: &str,
    ) -> KTable<K, A> {
        let graph = self.port.graph.clone();
        let ks = self.ks.clone();
        let cs: SerdeRef<Change<V>> = Arc::new(ChangeSerde(self.vs.clone()));
        // Sink into the repartition topic, in the table's sub-topology.
        let sink_ks = ks.clone();
        let sink_cs = cs.clone();
        let suffix = format!("{store}-repartition");
        let sink_topic_name = crate::topology::TopicName::Internal(suffix.clone());
        let sink_topic = Arc::new(ops::TopicChoice::Fixed(sink_topic_name));
        let sink: Port<K, Change<V>> =
            self.port
                .add(move |_, _ds: Downstream<K, Change<V>>| ops::Sink {
                    topic: sink_topic.clone(),
                    ks: sink_ks.clone(),
                    vs: sink_cs.clone(),
                    hash: None,
                });
        let topic = internal_topic(&graph, &suffix, sink.id);
        // Read back, decode and aggregate in a new sub-topology.
        let raw = root(&graph, topic);
        let (dks, dcs) = (ks.clone(), cs);
        let decoded: Port<K, Change<V>> = raw.add(move |_, ds| ops::Deser {
            ks: dks.clone(),
            vs: dcs.clone(),
            ds,
        });
        let name = store.to_string();
        let (k2, a2, n2) = (ks.clone(), agg_serde.clone(), name.clone());
        let port = decoded.add(move |b: &mut Build<'_>, ds| TableAggregate {
            store: KvStore::new(b.store(&n2), k2.clone(), a2.clone()),
            add: add.clone(),
            sub: sub.clone(),
            ds,
        });
        register_store(&graph, &name, StoreKind::KeyValue, port.id);
        KTable {
            port,
            ks: Some(ks.clone()),
            vs: Some(agg_serde.clone()),
            getter: kv_getter(name, ks, agg_serde),
        }
    }
}

/// Maps a row change to the groups it leaves and joins.
struct Rekey<K2, V2, F> {
    f: Arc<F>,
    ks: SerdeRef<K2>,
    ds: Downstream<K2, Change<V2>>,
}

impl<K, V, K2: Clone + 'static, V2: Clone, F> Node<K, Change<V>> for Rekey<K2, V2, F>
where
    F: Fn(&K, &V) -> (K2, V2),
{
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, Change<V>>) {
        let new = rec.value.new.as_ref().map(|v| (self.f)(&rec.key, v));
        let old = rec.value.old.as_ref().map(|v| (self.f)(&rec.key, v));
        let (ts, headers) = (rec.timestamp, rec.headers);
        let same_group = match (&new, &old) {
            (Some((nk, _)), Some((ok, _))) => {
                match (self.ks.serialize(nk), self.ks.serialize(ok)) {
                    (Ok(n), Ok(o)) => n == o,
                    (Err(e), _) | (_, Err(e)) => {
                        return crate::wire::unencodable(cx, "group key", e)
                    }
                }
            }
            _ => false,
        };
        if same_group {
            if let (Some((k, n)), Some((_, o))) = (new, old) {
                self.ds.forward(
                    cx,
                    Rec {
                        key: k,
                        value: Change::new(Some(n), Some(o)),
                        timestamp: ts,
                        headers,
                    },
                );
            }
            return;
        }
        if let Some((k, o)) = old {
            self.ds.forward(
                cx,
                Rec {
                    key: k,
                    value: Change::new(None, Some(o)),
                    timestamp: ts,
                    headers: headers.clone(),
                },
            );
        }
        if let Some((k, n)) = new {
            self.ds.forward(
                cx,
                Rec {
                    key: k,
                    value: Change::new(Some(n), None),
                    timestamp: ts,
                    headers,
                },
            );
        }
    }
}

/// A change as one record value: `[new][old]` as `wire` fields.
pub(crate) struct ChangeSerde<V>(pub SerdeRef<V>);

impl<V: 'static> Serde<Change<V>> for ChangeSerde<V> {
    fn serialize(&self, c: &Change<V>) -> crate::serdes::Serialized {
        let mut out = Vec::new();
        let new = c.new.as_ref().map(|v| self.0.serialize(v)).transpose()?;
        let old = c.old.as_ref().map(|v| self.0.serialize(v)).transpose()?;
        put_field(&mut out, new.as_ref());
        put_field(&mut out, old.as_ref());
        Ok(Some(out))
    }

    fn deserialize(&self, b: Option<&[u8]>) -> Result<Change<V>, SerdeError> {
        let b = b.ok_or_else(|| SerdeError("null repartitioned table change".into()))?;
        let mut r = Reader::new(b);
        let new = r.field().map_err(|e| SerdeError(e.to_string()))?;
        let old = r.field().map_err(|e| SerdeError(e.to_string()))?;
        r.end().map_err(|e| SerdeError(e.to_string()))?;
        let de = |f: Option<Option<Vec<u8>>>| -> Result<Option<V>, SerdeError> {
            f.map(|raw| self.0.deserialize(raw.as_deref())).transpose()
        };
        Ok(Change::new(de(new)?, de(old)?))
    }
}

/// Per-group aggregation of table changes: subtract the old value, add the
/// new one (Kafka Streams' `KTableAggregate` / `KTableReduce`).
struct TableAggregate<K, V, A> {
    store: KvStore<K, A>,
    add: AddFn<K, V, A>,
    sub: SubFn<K, V, A>,
    ds: Downstream<K, Change<A>>,
}

impl<K: Clone + 'static, V, A: Clone + 'static> Node<K, Change<V>> for TableAggregate<K, V, A> {
    fn process(&mut self, cx: &mut Cx, rec: Rec<K, Change<V>>) {
        let current = match self.store.get_with_ts(&rec.key) {
            Ok(c) => c,
            Err(e) => return fail(cx, e),
        };
        let (old_agg, old_ts) = match current {
            Some((a, t)) => (Some(a), Some(t)),
            None => (None, None),
        };
        let Change { new, old } = rec.value;
        // Output timestamp: the record's, or the aggregate's if later.
        let later = |t: i64| old_ts.map_or(t, |o| t.max(o));
        let mut ts = rec.timestamp;
        let remaining = match (old, old_agg.clone()) {
            (Some(o), Some(a)) => {
                ts = later(rec.timestamp);
                Some((self.sub)(&rec.key, o, a))
            }
            (_, a) => a,
        };
        let agg = match new {
            Some(n) => {
                ts = later(rec.timestamp);
                Some((self.add)(&rec.key, n, remaining))
            }
            None => remaining,
        };
        if agg.is_none() && old_agg.is_none() {
            return;
        }
        if let Err(e) = self.store.put(&rec.key, agg.as_ref(), ts) {
            return fail(cx, e);
        }
        self.ds.forward(
            cx,
            Rec {
                key: rec.key,
                value: Change::new(agg, old_agg),
                timestamp: ts,
                headers: rec.headers,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serdes::{StringSerde, UnitSerde};

    #[test]
    fn changes_round_trip_including_null_values() {
        let s = ChangeSerde(Arc::new(StringSerde) as SerdeRef<String>);
        for c in [
            Change::new(Some("a".to_string()), Some("b".to_string())),
            Change::new(None, Some(String::new())),
            Change::new(Some("x".to_string()), None),
        ] {
            assert_eq!(s.deserialize(s.serialize(&c).unwrap().as_deref()), Ok(c));
        }
        let u = ChangeSerde(Arc::new(UnitSerde) as SerdeRef<()>);
        let c = Change::new(Some(()), None);
        assert_eq!(u.deserialize(u.serialize(&c).unwrap().as_deref()), Ok(c));
        assert!(s.deserialize(None).is_err());
        assert!(s.deserialize(Some(&[2, 0, 0, 0, 5, b'a'])).is_err());
        assert!(s.deserialize(Some(&[0, 0, 0])).is_err());
    }
}
