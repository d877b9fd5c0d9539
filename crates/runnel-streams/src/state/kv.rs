//! Typed key-value view over a [`StateStore`]: values are stored with the
//! timestamp of the record that last wrote them (`[ts: i64 BE][value]`).

use std::ops::Bound;

use super::{lock, SharedStore, StoreError};
use crate::serdes::SerdeRef;

/// A typed key-value store of one task (or a query over one).
pub struct KvStore<K, V> {
    pub(crate) store: SharedStore,
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
}

impl<K, V> Clone for KvStore<K, V> {
    fn clone(&self) -> Self {
        KvStore {
            store: self.store.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
        }
    }
}

pub(crate) fn encode_value(ts: i64, value: Option<Vec<u8>>) -> Vec<u8> {
    let v = value.unwrap_or_default();
    let mut out = Vec::with_capacity(8 + v.len());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(&v);
    out
}

/// A key's bytes in a store (a null key is the empty key).
pub(crate) fn encode_key<K: 'static>(keys: &SerdeRef<K>, key: &K) -> Result<Vec<u8>, StoreError> {
    Ok(encode(keys, "key", key)?.unwrap_or_default())
}

/// A key's or value's bytes, or why they cannot be written.
pub(crate) fn encode<T: 'static>(
    serde: &SerdeRef<T>,
    what: &'static str,
    v: &T,
) -> Result<Option<Vec<u8>>, StoreError> {
    serde
        .serialize(v)
        .map_err(|source| StoreError::Encode { what, source })
}

pub(crate) fn decode_value(b: &[u8]) -> Option<(i64, &[u8])> {
    let ts: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Some((i64::from_be_bytes(ts), &b[8..]))
}

impl<K: 'static, V: 'static> KvStore<K, V> {
    pub(crate) fn new(store: SharedStore, keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        KvStore {
            store,
            keys,
            values,
        }
    }

    fn key_bytes(&self, key: &K) -> Result<Vec<u8>, StoreError> {
        encode_key(&self.keys, key)
    }

    fn decode(&self, b: &[u8]) -> Option<(V, i64)> {
        let (ts, v) = decode_value(b)?;
        match self.values.deserialize(Some(v)) {
            Ok(v) => Some((v, ts)),
            Err(e) => {
                tracing::warn!(error = %e, "undecodable value in a state store; treated as absent");
                None
            }
        }
    }

    /// The value and its timestamp.
    pub fn get_with_ts(&self, key: &K) -> Result<Option<(V, i64)>, StoreError> {
        let k = self.key_bytes(key)?;
        let raw = lock(&self.store).get(&k)?;
        Ok(raw.and_then(|b| self.decode(&b)))
    }

    /// The value.
    pub fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        Ok(self.get_with_ts(key)?.map(|(v, _)| v))
    }

    /// Writes `value` (`None` deletes). A key or value that cannot be
    /// encoded writes nothing ([`StoreError::Encode`]).
    pub fn put(&self, key: &K, value: Option<&V>, ts: i64) -> Result<(), StoreError> {
        let k = self.key_bytes(key)?;
        let v = match value {
            Some(v) => Some(encode_value(ts, encode(&self.values, "value", v)?)),
            None => None,
        };
        lock(&self.store).put(k, v);
        Ok(())
    }

    /// Entries with serialized keys between `from` and `to` (inclusive), in
    /// serialized-key order.
    pub fn range(&self, from: Option<&K>, to: Option<&K>) -> Result<Vec<(K, V)>, StoreError> {
        let f = from.map(|k| self.key_bytes(k)).transpose()?;
        let t = to.map(|k| self.key_bytes(k)).transpose()?;
        let lo = f.as_deref().map_or(Bound::Unbounded, Bound::Included);
        let hi = t.as_deref().map_or(Bound::Unbounded, Bound::Included);
        let rows = lock(&self.store).range(lo, hi)?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, v)| {
                let key = self.keys.deserialize(Some(&k)).ok()?;
                let (v, _) = self.decode(&v)?;
                Some((key, v))
            })
            .collect())
    }

    /// Every entry.
    pub fn all(&self) -> Result<Vec<(K, V)>, StoreError> {
        self.range(None, None)
    }
}
