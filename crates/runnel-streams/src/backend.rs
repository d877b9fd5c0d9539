//! The one narrow interface between the engine and a log.
//!
//! The engine never talks to a broker, a socket or a file itself: it asks a
//! [`Backend`] for records of its subscribed topics, sends records back, and
//! commits. Two implementations exist: the in-process backend over Runnel's
//! own broker (crate `runnel-embed`) and the Kafka-protocol backend
//! ([`crate::kafka`], librdkafka) for any Kafka-compatible cluster.
//!
//! Contract, whichever backend:
//! * `poll` returns records of assigned partitions in offset order per
//!   partition, and reports assignment changes as events, in order.
//! * `send` may buffer; buffered records are durable once `commit` returns.
//! * Under exactly-once, every `send` between `begin` and `commit` is one
//!   transaction together with the offsets passed to `commit`; `abort` (or a
//!   crash) discards them for read_committed readers.
//! * `read_partition` reads committed data only (read_committed), from an
//!   offset up to the partition's end at the time of the call.

use std::fmt;
use std::time::Duration;

/// A topic and one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Record headers: ordered (name, value) pairs.
pub type Headers = Vec<(String, Option<Vec<u8>>)>;

/// A record read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Headers,
}

/// A record to write to the log, its partition already chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducedRecord {
    pub topic: String,
    pub partition: i32,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Headers,
}

/// What a poll saw, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollEvent {
    /// These partitions now belong to this instance; consumption resumes at
    /// the group's committed offset (or the earliest offset).
    Assigned(Vec<TopicPartition>),
    /// These partitions were taken away; uncommitted work on them is lost.
    Revoked(Vec<TopicPartition>),
    /// Records of assigned partitions.
    Records(Vec<ConsumedRecord>),
}

/// How results are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Guarantee {
    /// Outputs are flushed before offsets are committed: after a crash some
    /// records are processed again.
    #[default]
    AtLeastOnce,
    /// Outputs, changelog writes and input offsets commit in one
    /// transaction.
    ExactlyOnce,
}

/// Backend failures. `Fenced` and `Fatal` stop the application;
/// `Retriable` may succeed when tried again.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("fenced by a newer instance of this application: {0}")]
    Fenced(String),
    #[error("retriable backend error: {0}")]
    Retriable(String),
    #[error("backend error: {0}")]
    Fatal(String),
}

/// One member of the application's consumer group, with its assignment
/// ([`Backend::group_members`]): which instance runs which partitions, for
/// routing interactive queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The group member id the coordinator gave it.
    pub member_id: String,
    /// The member's `client.id`.
    pub client_id: String,
    /// The member's host as the coordinator saw the connection (Kafka
    /// reports `/<ip>`).
    pub host: String,
    /// The member's interactive-query endpoint (`host:port`, its
    /// `application_server`) when it advertises one.
    pub endpoint: Option<String>,
    /// The partitions assigned to it (empty while a rebalance is under
    /// way).
    pub partitions: Vec<TopicPartition>,
    /// Whether this is the calling backend's own membership.
    pub is_self: bool,
}

/// The log as the engine sees it. One instance serves one stream thread.
pub trait Backend: Send {
    /// Partition count of `topic`; `None` when it does not exist.
    fn partition_count(&mut self, topic: &str) -> Result<Option<i32>, BackendError>;

    /// Creates `topic` unless it exists (internal repartition and changelog
    /// topics). `configs` are topic configs such as `cleanup.policy`.
    fn create_topic(
        &mut self,
        topic: &str,
        partitions: i32,
        configs: &[(String, String)],
    ) -> Result<(), BackendError>;

    /// Joins the application's consumer group with these topics.
    fn subscribe(&mut self, topics: &[String]) -> Result<(), BackendError>;

    /// Waits up to `timeout` for records or assignment changes.
    fn poll(&mut self, timeout: Duration) -> Result<Vec<PollEvent>, BackendError>;

    /// Moves the consumer position of an assigned partition.
    fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), BackendError>;

    /// The group's committed offsets (next offset to read) for `tps`.
    fn committed(&mut self, tps: &[TopicPartition]) -> Result<Vec<Option<i64>>, BackendError>;

    /// Starts a transaction (exactly-once); a no-op under at-least-once.
    fn begin(&mut self) -> Result<(), BackendError>;

    /// Queues records for writing.
    fn send(&mut self, records: Vec<ProducedRecord>) -> Result<(), BackendError>;

    /// Makes every sent record durable and commits `offsets` (next offset
    /// to read per partition): a transaction commit under exactly-once.
    fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), BackendError>;

    /// Drops the open transaction (exactly-once); a no-op otherwise.
    fn abort(&mut self) -> Result<(), BackendError>;

    /// Current end offsets of `tps` (the next offset to be written; for
    /// changelog checkpoints after a commit).
    fn end_offsets(&mut self, tps: &[TopicPartition]) -> Result<Vec<i64>, BackendError>;

    /// How far the consumer position of `tp` is behind the partition's
    /// (stable) end, when known. Tasks reading several partitions wait for
    /// a partition with known positive lag rather than process out of
    /// timestamp order.
    fn lag(&mut self, _tp: &TopicPartition) -> Option<i64> {
        None
    }

    /// The members of the application's consumer group and their current
    /// assignments, as the group coordinator reports them (blocking; one
    /// round trip). The engine calls this after rebalances and every few
    /// seconds while interactive queries are in use; an error there is
    /// logged and retried, it never stops the application. Backends that
    /// cannot tell return an error (the default).
    fn group_members(&mut self) -> Result<Vec<MemberInfo>, BackendError> {
        Err(BackendError::Fatal(
            "this backend does not report group members".into(),
        ))
    }

    /// Reads committed records of `tp` from `from` up to the partition's end
    /// as of this call, handing each to `f`. Returns the end offset reached.
    fn read_partition(
        &mut self,
        tp: &TopicPartition,
        from: i64,
        f: &mut dyn FnMut(ConsumedRecord),
    ) -> Result<i64, BackendError>;
}
