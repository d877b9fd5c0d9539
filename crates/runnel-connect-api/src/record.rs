//! Records as tasks see them: [`SourceRecord`]s a source task returns,
//! [`SinkRecord`]s a sink task is given. Keys and values are
//! [`Value`]s with an optional [`Schema`]; converters turn them into bytes
//! and back.

use crate::data::{Schema, Value};

/// Where a source record comes from (Kafka Connect's
/// `sourcePartition`: a table, a file, a replication slot). Stored as JSON
/// in the offsets topic's key, so keep it small and stable.
pub type SourcePartition = serde_json::Map<String, serde_json::Value>;

/// How far a source has been read in its partition (`sourceOffset`: an
/// LSN, a byte position). The runtime stores the last offset of each
/// partition once its records are durable and hands it back to
/// [`crate::SourceTask::start`] through an [`crate::OffsetReader`].
pub type SourceOffset = serde_json::Map<String, serde_json::Value>;

/// A record header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub key: String,
    pub schema: Option<Schema>,
    pub value: Value,
}

/// A record a source task produced.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub source_partition: SourcePartition,
    pub source_offset: SourceOffset,
    pub topic: String,
    /// `None`: the runtime picks the partition from the serialized key
    /// (murmur2, as the Java producer does), or spreads keyless records.
    pub partition: Option<i32>,
    pub key_schema: Option<Schema>,
    pub key: Value,
    pub value_schema: Option<Schema>,
    /// `Value::Null` with a key is a tombstone.
    pub value: Value,
    /// Milliseconds since the epoch; `None`: the time the runtime sends it.
    pub timestamp: Option<i64>,
    pub headers: Vec<Header>,
}

impl SourceRecord {
    /// A record to `topic` with a key and value and no headers.
    pub fn new(
        source_partition: SourcePartition,
        source_offset: SourceOffset,
        topic: impl Into<String>,
        key_schema: Option<Schema>,
        key: Value,
        value_schema: Option<Schema>,
        value: Value,
    ) -> SourceRecord {
        SourceRecord {
            source_partition,
            source_offset,
            topic: topic.into(),
            partition: None,
            key_schema,
            key,
            value_schema,
            value,
            timestamp: None,
            headers: Vec::new(),
        }
    }
}

/// A record a sink task is given: read from the log and converted.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key_schema: Option<Schema>,
    pub key: Value,
    pub value_schema: Option<Schema>,
    /// `Value::Null` is a tombstone.
    pub value: Value,
    pub headers: Vec<Header>,
}
