//! Helpers shared by the operators that talk to themselves through internal
//! topics (`KTable::group_by`, foreign-key joins): a small length-prefixed
//! encoding for their records, internal topic registration, writing records
//! straight to an internal topic, and a key-value getter.
//!
//! These records are Runnel's own: they are read only by the topology that
//! wrote them, so the layout is not Kafka Streams' (which Java-specific
//! serializers define).

use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::backend::Headers;
use crate::dsl::{Data, GetFn, Getter};
use crate::serdes::SerdeRef;
use crate::state::{KvStore, StoreError};
use crate::topology::{glock, Build, Cx, Graph, Pending, Raw, TopicName};

/// An internal record that does not have the layout its writer gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed internal record: {0}")]
pub(crate) struct WireError(pub &'static str);

const ABSENT: u8 = 0;
const NULL: u8 = 1;
const BYTES: u8 = 2;

/// Appends a field that may be absent (`None`), null (`Some(None)`) or
/// bytes: a tag byte, then for bytes a 4-byte big-endian length and the
/// bytes.
pub(crate) fn put_field(out: &mut Vec<u8>, f: Option<&Raw>) {
    match f {
        None => out.push(ABSENT),
        Some(None) => out.push(NULL),
        Some(Some(b)) => {
            out.push(BYTES);
            // Records are far below 4 GiB; a longer field could not have
            // been produced.
            let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(b);
        }
    }
}

/// Reads what `put_field` and fixed-width integers wrote.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError("truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        let b: [u8; 8] = self
            .take(8)?
            .try_into()
            .map_err(|_| WireError("truncated"))?;
        Ok(u64::from_be_bytes(b))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, WireError> {
        let b: [u8; 8] = self
            .take(8)?
            .try_into()
            .map_err(|_| WireError("truncated"))?;
        Ok(i64::from_be_bytes(b))
    }

    /// A field written by `put_field`.
    pub(crate) fn field(&mut self) -> Result<Option<Raw>, WireError> {
        match self.u8()? {
            ABSENT => Ok(None),
            NULL => Ok(Some(None)),
            BYTES => {
                let len: [u8; 4] = self
                    .take(4)?
                    .try_into()
                    .map_err(|_| WireError("truncated"))?;
                let len =
                    usize::try_from(u32::from_be_bytes(len)).map_err(|_| WireError("length"))?;
                Ok(Some(Some(self.take(len)?.to_vec())))
            }
            _ => Err(WireError("unknown field tag")),
        }
    }

    /// Fails if bytes are left over.
    pub(crate) fn end(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError("trailing bytes"))
        }
    }
}

/// Declares an internal topic `<application.id>-<suffix>` written by the
/// sub-topology of node `writer`: it gets that sub-topology's partition
/// count (see `Streams::new`).
pub(crate) fn internal_topic(graph: &Arc<Mutex<Graph>>, suffix: &str, writer: usize) -> TopicName {
    glock(graph).repartitions.push((suffix.to_string(), writer));
    TopicName::Internal(suffix.to_string())
}

/// Queues a record for an internal topic; its partition is chosen by
/// hashing `hash_key` (or `key`) over the topic's partition count.
#[allow(clippy::too_many_arguments)]
pub(crate) fn send(
    cx: &mut Cx,
    topic: &TopicName,
    key: Raw,
    hash_key: Option<Vec<u8>>,
    value: Raw,
    timestamp: i64,
    headers: Headers,
) {
    let topic = topic.resolve(&cx.app_id);
    cx.out.push(Pending {
        topic,
        partition: None,
        hash_key,
        key,
        value,
        timestamp,
        headers,
    });
}

/// Why a processor cannot go on with a record.
pub(crate) enum Failure {
    /// A state store failed: the task stops (and rolls back).
    Storage(String),
    /// Something derived from the record cannot be encoded: the record is
    /// skipped ([`unencodable`]).
    Encode(String),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Encode { .. } => Failure::Encode(e.to_string()),
            StoreError::Storage { .. } | StoreError::DirectoryInUse { .. } => {
                Failure::Storage(e.to_string())
            }
        }
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Storage(e)
    }
}

/// Stops the task when a state store failed; skips the record when what
/// failed was encoding a key or value of it.
pub(crate) fn fail(cx: &mut Cx, e: impl Into<Failure>) {
    match e.into() {
        Failure::Storage(e) => {
            tracing::error!(error = %e, topic = %cx.topic, offset = cx.offset, "state store failed");
            cx.failed.get_or_insert(e);
        }
        Failure::Encode(e) => unencodable(cx, "state", e),
    }
}

/// Skips an undecodable record, counting it (log-and-continue).
pub(crate) fn undecodable(cx: &mut Cx, e: impl std::fmt::Display) {
    cx.metrics.undecodable += 1;
    tracing::debug!(topic = %cx.topic, offset = cx.offset, error = %e, "skipping undecodable record");
}

/// Skips a record whose key or value (or one derived from it) cannot be
/// encoded: nothing is written for it, the processing error is logged with
/// the input record's topic, partition and offset and counted. Writing a
/// null instead would turn a failure into a tombstone.
pub(crate) fn unencodable(cx: &mut Cx, what: &str, e: impl std::fmt::Display) {
    cx.metrics.unencodable += 1;
    tracing::warn!(
        topic = %cx.topic,
        partition = cx.partition,
        offset = cx.offset,
        error = %e,
        "processing error: cannot encode the {what}; record skipped"
    );
}

/// Reads a key-value store's current value of a key, with its timestamp.
pub(crate) fn kv_getter<K: Data, V: Data>(
    store: String,
    ks: SerdeRef<K>,
    vs: SerdeRef<V>,
) -> Getter<K, V> {
    Arc::new(move |b: &mut Build<'_>| {
        let kv = KvStore::new(b.store(&store), ks.clone(), vs.clone());
        let f: GetFn<K, V> = Rc::new(move |k: &K| kv.get_with_ts(k).ok().flatten());
        f
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_reject_garbage() {
        let mut b = Vec::new();
        put_field(&mut b, None);
        put_field(&mut b, Some(&None));
        put_field(&mut b, Some(&Some(b"xy".to_vec())));
        b.extend_from_slice(&7u64.to_be_bytes());
        let mut r = Reader::new(&b);
        assert_eq!(r.field(), Ok(None));
        assert_eq!(r.field(), Ok(Some(None)));
        assert_eq!(r.field(), Ok(Some(Some(b"xy".to_vec()))));
        assert_eq!(r.u64(), Ok(7));
        assert_eq!(r.end(), Ok(()));
        assert!(Reader::new(&[2, 0, 0, 0, 9, 1]).field().is_err());
        assert!(Reader::new(&[7]).field().is_err());
        assert!(Reader::new(&[1, 2]).i64().is_err());
        let mut r = Reader::new(&[1, 1]);
        assert_eq!(r.field(), Ok(Some(None)));
        assert!(r.end().is_err());
    }
}
