//! Typed window store view. Keys are `[len: u32 BE][key][start: i64 BE with
//! the sign bit flipped]`, so one key's windows are adjacent and ordered by
//! start; values are `[ts][value]` as in key-value stores.

use std::ops::Bound;

use super::kv::{decode_value, encode_value};
use super::{lock, SharedStore, StoreError};
use crate::record::{Window, Windowed};
use crate::serdes::SerdeRef;

/// Key of the per-store metadata entry (never a valid window key: its
/// length prefix claims more bytes than follow).
pub(crate) const META_KEY: &[u8] = b"\xff\xff\xff\xffmeta";

fn ord_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

fn from_ord(b: &[u8]) -> Option<i64> {
    let a: [u8; 8] = b.try_into().ok()?;
    Some((u64::from_be_bytes(a) ^ (1 << 63)) as i64)
}

pub(crate) fn window_key(key: &[u8], start: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + key.len());
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&ord_i64(start));
    out
}

/// Splits a window key into (key bytes, start). Keys may carry a suffix
/// after the start (join stores add a sequence to keep duplicates).
pub(crate) fn split(b: &[u8]) -> Option<(&[u8], i64)> {
    let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let end = len.checked_add(12)?;
    if b.len() < end {
        return None;
    }
    Some((&b[4..4 + len], from_ord(&b[4 + len..end])?))
}

pub(crate) fn ord_bytes(v: i64) -> [u8; 8] {
    ord_i64(v)
}

pub(crate) fn from_ord_bytes(b: &[u8]) -> Option<i64> {
    from_ord(b)
}

pub(crate) fn start_of(b: &[u8]) -> Option<i64> {
    split(b).map(|(_, s)| s)
}

/// A typed window store: aggregates per key and window start. All windows
/// of one store have the same size (`size_ms`).
pub struct WindowStore<K, V> {
    pub(crate) store: SharedStore,
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
    pub(crate) size_ms: i64,
}

impl<K, V> Clone for WindowStore<K, V> {
    fn clone(&self) -> Self {
        WindowStore {
            store: self.store.clone(),
            keys: self.keys.clone(),
            values: self.values.clone(),
            size_ms: self.size_ms,
        }
    }
}

impl<K: 'static, V: 'static> WindowStore<K, V> {
    pub(crate) fn new(
        store: SharedStore,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
        size_ms: i64,
    ) -> Self {
        WindowStore {
            store,
            keys,
            values,
            size_ms,
        }
    }

    fn kb(&self, key: &K) -> Result<Vec<u8>, StoreError> {
        super::kv::encode_key(&self.keys, key)
    }

    fn decode(&self, b: &[u8]) -> Option<(V, i64)> {
        let (ts, v) = decode_value(b)?;
        self.values.deserialize(Some(v)).ok().map(|v| (v, ts))
    }

    /// The aggregate of `key` in the window starting at `start`, with its
    /// timestamp.
    pub fn get_with_ts(&self, key: &K, start: i64) -> Result<Option<(V, i64)>, StoreError> {
        self.get_raw(&window_key(&self.kb(key)?, start))
    }

    /// Writes (`None` deletes) the aggregate of `key` in the window at `start`.
    pub fn put(&self, key: &K, start: i64, value: Option<&V>, ts: i64) -> Result<(), StoreError> {
        self.put_raw(window_key(&self.kb(key)?, start), value, ts)
    }

    /// The serialized key, for [`window_key`].
    pub(crate) fn key_bytes(&self, key: &K) -> Result<Vec<u8>, StoreError> {
        self.kb(key)
    }

    /// [`get_with_ts`](Self::get_with_ts) by store key.
    pub(crate) fn get_raw(&self, wkey: &[u8]) -> Result<Option<(V, i64)>, StoreError> {
        Ok(lock(&self.store)
            .get_with(wkey, |b| self.decode(b))?
            .flatten())
    }

    /// [`put`](Self::put) by store key.
    pub(crate) fn put_raw(
        &self,
        wkey: Vec<u8>,
        value: Option<&V>,
        ts: i64,
    ) -> Result<(), StoreError> {
        let v = match value {
            Some(v) => Some(encode_value(
                ts,
                super::kv::encode(&self.values, "value", v)?,
            )),
            None => None,
        };
        lock(&self.store).put(wkey, v);
        Ok(())
    }

    /// Windows of `key` starting in `[from, to]`, oldest first.
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(Window, V)>, StoreError> {
        let kb = self.kb(key)?;
        let lo = window_key(&kb, from);
        let hi = window_key(&kb, to);
        let rows = lock(&self.store).range(Bound::Included(&lo), Bound::Included(&hi))?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, v)| {
                let (_, start) = split(&k)?;
                let (v, _) = self.decode(&v)?;
                Some((Window::new(start, start.saturating_add(self.size_ms)), v))
            })
            .collect())
    }

    /// Every window of every key, in store order.
    pub fn all(&self) -> Result<Vec<(Windowed<K>, V)>, StoreError> {
        let rows = lock(&self.store).range(Bound::Unbounded, Bound::Unbounded)?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, v)| {
                let (kb, start) = split(&k)?;
                let key = self.keys.deserialize(Some(kb)).ok()?;
                let (v, _) = self.decode(&v)?;
                Some((
                    Windowed::new(key, Window::new(start, start.saturating_add(self.size_ms))),
                    v,
                ))
            })
            .collect())
    }

    /// Operator metadata kept in the store (and so in its changelog).
    pub(crate) fn meta(&self) -> Result<Option<i64>, StoreError> {
        let raw = lock(&self.store).get(META_KEY)?;
        Ok(raw.and_then(|b| {
            b.get(..8)
                .and_then(|s| s.try_into().ok())
                .map(i64::from_be_bytes)
        }))
    }

    pub(crate) fn set_meta(&self, v: i64) {
        lock(&self.store).put(META_KEY.to_vec(), Some(v.to_be_bytes().to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keys_order_by_key_then_start() {
        let a = window_key(b"k", -5);
        let b = window_key(b"k", 3);
        let c = window_key(b"k\x00", -100);
        assert!(a < b && b < c);
        assert_eq!(split(&b), Some((&b"k"[..], 3)));
        assert_eq!(split(META_KEY), None);
    }
}
