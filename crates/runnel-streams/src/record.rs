//! Records as operators see them: typed key and value, timestamp, headers.

use crate::backend::Headers;

/// A typed record flowing through a topology.
#[derive(Debug, Clone, PartialEq)]
pub struct Rec<K, V> {
    pub key: K,
    pub value: V,
    /// Event time in milliseconds since the epoch.
    pub timestamp: i64,
    pub headers: Headers,
}

impl<K, V> Rec<K, V> {
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Rec {
            key,
            value,
            timestamp,
            headers: Vec::new(),
        }
    }

    /// The same record with another key and value (timestamp and headers
    /// kept).
    pub fn with<K2, V2>(self, key: K2, value: V2) -> Rec<K2, V2> {
        Rec {
            key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }
}

/// An update to a table row: the value after and before it (`None` = absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Change<V> {
    pub new: Option<V>,
    pub old: Option<V>,
}

impl<V> Change<V> {
    pub fn new(new: Option<V>, old: Option<V>) -> Self {
        Change { new, old }
    }
}

/// A time window `[start, end)` (session windows: `[start, end]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    pub fn new(start: i64, end: i64) -> Self {
        Window { start, end }
    }
}

/// A key qualified by the window it was aggregated in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    pub key: K,
    pub window: Window,
}

impl<K> Windowed<K> {
    pub fn new(key: K, window: Window) -> Self {
        Windowed { key, window }
    }
}

/// Where the record being processed came from, for operators that need
/// more than key and value (ksqlDB's ROWTIME, ROWPARTITION, ROWOFFSET and
/// header columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta<'a> {
    /// The record's timestamp.
    pub timestamp: i64,
    /// The task's input partition.
    pub partition: i32,
    /// Offset of the input record being processed (for records produced
    /// by an operator, that of the input that caused them).
    pub offset: i64,
    /// The record's headers, in the order they were written.
    pub headers: &'a Headers,
}
