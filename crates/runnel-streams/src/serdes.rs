//! Serdes: how keys and values become record bytes and back.
//!
//! A serde sees the whole record field, including null: `serialize`
//! returning `Ok(None)` writes a null field, and `deserialize(None)` is
//! asked to make sense of one. Both can fail: a value that cannot be
//! written is an error, never a null (on a table a null is a tombstone),
//! and the engine skips the record it came from as a processing error
//! (logged with its topic, partition and offset; counted in
//! [`StreamsMetrics::unencodable`](crate::StreamsMetrics)). The built-in serdes use the same byte layouts as Kafka's
//! own (big-endian integers, UTF-8 strings), so Runnel and Java applications
//! can read each other's topics.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::record::{Window, Windowed};

/// A key or value that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SerdeError(pub String);

/// What [`Serde::serialize`] returns: the field's bytes, `None` for null.
pub type Serialized = Result<Option<Vec<u8>>, SerdeError>;

/// Turns a `T` into record bytes and back.
pub trait Serde<T>: Send + Sync + 'static {
    fn serialize(&self, value: &T) -> Serialized;
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError>;
    /// The part of a serialized key that picks its partition: all of it,
    /// except for windowed keys, whose window is left out so every window
    /// of a key lands in the key's partition (Kafka Streams'
    /// `WindowedStreamPartitioner`).
    fn partition_bytes<'a>(&self, serialized: &'a [u8]) -> &'a [u8] {
        serialized
    }
}

/// A shared serde.
pub type SerdeRef<T> = Arc<dyn Serde<T>>;

/// A shared serde serves wherever an owned one is expected.
impl<T: 'static> Serde<T> for SerdeRef<T> {
    fn partition_bytes<'a>(&self, serialized: &'a [u8]) -> &'a [u8] {
        (**self).partition_bytes(serialized)
    }
    fn serialize(&self, v: &T) -> Serialized {
        (**self).serialize(v)
    }
    fn deserialize(&self, b: Option<&[u8]>) -> Result<T, SerdeError> {
        (**self).deserialize(b)
    }
}

fn need(bytes: Option<&[u8]>) -> Result<&[u8], SerdeError> {
    bytes.ok_or_else(|| SerdeError("null where a value was expected".into()))
}

/// Raw bytes, unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;
impl Serde<Vec<u8>> for BytesSerde {
    fn serialize(&self, v: &Vec<u8>) -> Serialized {
        Ok(Some(v.clone()))
    }
    fn deserialize(&self, b: Option<&[u8]>) -> Result<Vec<u8>, SerdeError> {
        Ok(need(b)?.to_vec())
    }
}

/// UTF-8 text.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;
impl Serde<String> for StringSerde {
    fn serialize(&self, v: &String) -> Serialized {
        Ok(Some(v.as_bytes().to_vec()))
    }
    fn deserialize(&self, b: Option<&[u8]>) -> Result<String, SerdeError> {
        String::from_utf8(need(b)?.to_vec()).map_err(|e| SerdeError(format!("not UTF-8: {e}")))
    }
}

macro_rules! int_serde {
    ($name:ident, $t:ty, $n:expr, $doc:expr) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;
        impl Serde<$t> for $name {
            fn serialize(&self, v: &$t) -> Serialized {
                Ok(Some(v.to_be_bytes().to_vec()))
            }
            fn deserialize(&self, b: Option<&[u8]>) -> Result<$t, SerdeError> {
                let b = need(b)?;
                let a: [u8; $n] = b.try_into().map_err(|_| {
                    SerdeError(format!(
                        "expected {} bytes for {}, got {}",
                        $n,
                        stringify!($t),
                        b.len()
                    ))
                })?;
                Ok(<$t>::from_be_bytes(a))
            }
        }
    };
}
int_serde!(
    I32Serde,
    i32,
    4,
    "Big-endian 32-bit integers (Kafka's IntegerSerde)."
);
int_serde!(
    I64Serde,
    i64,
    8,
    "Big-endian 64-bit integers (Kafka's LongSerde)."
);
int_serde!(
    F64Serde,
    f64,
    8,
    "Big-endian IEEE 754 doubles (Kafka's DoubleSerde)."
);

/// JSON through `serde_json`.
pub struct JsonSerde<T>(PhantomData<fn() -> T>);
impl<T> JsonSerde<T> {
    pub fn new() -> Self {
        JsonSerde(PhantomData)
    }
}
impl<T> Default for JsonSerde<T> {
    fn default() -> Self {
        Self::new()
    }
}
impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for JsonSerde<T> {
    fn serialize(&self, v: &T) -> Serialized {
        serde_json::to_vec(v)
            .map(Some)
            .map_err(|e| SerdeError(format!("cannot write JSON: {e}")))
    }
    fn deserialize(&self, b: Option<&[u8]>) -> Result<T, SerdeError> {
        serde_json::from_slice(need(b)?).map_err(|e| SerdeError(format!("bad JSON: {e}")))
    }
}

/// Nullable values: `None` is a null field (a tombstone for tables).
pub struct OptionSerde<S>(pub S);
impl<T, S: Serde<T>> Serde<Option<T>> for OptionSerde<S> {
    fn partition_bytes<'a>(&self, serialized: &'a [u8]) -> &'a [u8] {
        self.0.partition_bytes(serialized)
    }
    fn serialize(&self, v: &Option<T>) -> Serialized {
        match v {
            Some(v) => self.0.serialize(v),
            None => Ok(None),
        }
    }
    fn deserialize(&self, b: Option<&[u8]>) -> Result<Option<T>, SerdeError> {
        match b {
            None => Ok(None),
            Some(b) => self.0.deserialize(Some(b)).map(Some),
        }
    }
}

/// Windowed keys in Kafka Streams' layout: time windows are the inner key
/// followed by the 8-byte window start (the end is start + size); session
/// windows are the inner key, the 8-byte end, then the 8-byte start.
pub struct WindowedSerde<S> {
    inner: S,
    /// Window size for time windows; `None` for session windows.
    size: Option<i64>,
}

impl<S> WindowedSerde<S> {
    /// Time windows (tumbling, hopping, sliding) of `size_ms`.
    pub fn time(inner: S, size_ms: i64) -> Self {
        WindowedSerde {
            inner,
            size: Some(size_ms),
        }
    }
    /// Session windows.
    pub fn session(inner: S) -> Self {
        WindowedSerde { inner, size: None }
    }
}

impl<K, S: Serde<K>> Serde<Windowed<K>> for WindowedSerde<S> {
    fn partition_bytes<'a>(&self, serialized: &'a [u8]) -> &'a [u8] {
        let tail = if self.size.is_some() { 8 } else { 16 };
        &serialized[..serialized.len().saturating_sub(tail)]
    }
    fn serialize(&self, v: &Windowed<K>) -> Serialized {
        let mut out = self.inner.serialize(&v.key)?.unwrap_or_default();
        match self.size {
            Some(_) => out.extend_from_slice(&v.window.start.to_be_bytes()),
            None => {
                out.extend_from_slice(&v.window.end.to_be_bytes());
                out.extend_from_slice(&v.window.start.to_be_bytes());
            }
        }
        Ok(Some(out))
    }
    fn deserialize(&self, b: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        let b = need(b)?;
        let tail = if self.size.is_some() { 8 } else { 16 };
        if b.len() < tail {
            return Err(SerdeError(format!(
                "windowed key of {} bytes is shorter than its {tail}-byte window",
                b.len()
            )));
        }
        let (k, w) = b.split_at(b.len() - tail);
        let read = |s: &[u8]| -> i64 {
            let mut a = [0u8; 8];
            a.copy_from_slice(&s[..8]);
            i64::from_be_bytes(a)
        };
        let window = match self.size {
            Some(size) => {
                let start = read(w);
                Window::new(start, start.saturating_add(size))
            }
            None => Window::new(read(&w[8..]), read(w)),
        };
        Ok(Windowed {
            key: self.inner.deserialize(Some(k))?,
            window,
        })
    }
}

/// The unit value, written as null (for streams whose value does not matter).
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitSerde;
impl Serde<()> for UnitSerde {
    fn serialize(&self, _: &()) -> Serialized {
        Ok(None)
    }
    fn deserialize(&self, _: Option<&[u8]>) -> Result<(), SerdeError> {
        Ok(())
    }
}

/// Kafka's default partitioner hash (murmur2), so a key lands in the same
/// partition it would from a Java or librdkafka producer.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition Kafka's default partitioner picks for `key` among `n`.
pub fn partition_for(key: &[u8], n: i32) -> i32 {
    if n <= 0 {
        return 0;
    }
    ((murmur2(key) & 0x7fff_ffff) % n as u32) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 4] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
        ];
        for (data, want) in cases {
            assert_eq!(
                murmur2(data) as i32,
                want,
                "{:?}",
                std::str::from_utf8(data)
            );
        }
    }

    #[test]
    fn round_trips() {
        assert_eq!(
            I64Serde.deserialize(I64Serde.serialize(&-5).unwrap().as_deref()),
            Ok(-5)
        );
        assert!(I64Serde.deserialize(Some(&[1, 2])).is_err());
        assert!(StringSerde.deserialize(None).is_err());
        let o = OptionSerde(StringSerde);
        assert_eq!(o.serialize(&None), Ok(None));
        assert_eq!(o.deserialize(None), Ok(None));
        let w = WindowedSerde::time(StringSerde, 10);
        let k = Windowed {
            key: "a".to_string(),
            window: Window::new(20, 30),
        };
        let b = w.serialize(&k).unwrap().unwrap();
        assert_eq!(b.len(), 9);
        assert_eq!(w.deserialize(Some(&b)), Ok(k.clone()));
        let s = WindowedSerde::session(StringSerde);
        assert_eq!(s.deserialize(s.serialize(&k).unwrap().as_deref()), Ok(k));
        let j: JsonSerde<Vec<i32>> = JsonSerde::new();
        assert_eq!(
            j.deserialize(j.serialize(&vec![1, 2]).unwrap().as_deref()),
            Ok(vec![1, 2])
        );
        assert!(j.deserialize(Some(b"{")).is_err());
    }

    /// A map with non-string keys cannot be JSON: an error, not a null.
    #[test]
    fn json_that_cannot_be_written_is_an_error() {
        let j: JsonSerde<std::collections::BTreeMap<(i32, i32), i32>> = JsonSerde::new();
        let m = std::collections::BTreeMap::from([((1, 2), 3)]);
        assert!(j.serialize(&m).is_err());
        let o = OptionSerde(JsonSerde::new());
        assert!(o.serialize(&Some(m)).is_err());
    }
}
