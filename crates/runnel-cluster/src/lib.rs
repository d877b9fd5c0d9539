//! Cluster access every Runnel service shares: topics, their administration and a stream-engine backend per application, in process or on any Kafka-compatible cluster.
//!
//! A service of `runnel serve` (the SQL engine today; the schema registry,
//! connectors and the console next) reaches the log only through a
//! [`Cluster`]. Two implementations exist: `runnel_embed::LocalCluster`
//! (the broker inside the same process, no sockets) and [`KafkaCluster`]
//! (any Kafka-compatible cluster over the Kafka protocol: Apache Kafka,
//! Redpanda, a remote `runnel serve`). A service written against the trait
//! runs unchanged on either, and none of them depends on another.
//!
//! The stream engine's [`Backend`] is what a service uses to read and
//! write records (one per application, with its consumer group and, under
//! exactly-once, its transactions); the trait adds what is not tied to one
//! application: listing, creating and deleting topics.

#[cfg(feature = "kafka")]
mod kafka;

#[cfg(feature = "kafka")]
pub use kafka::KafkaCluster;
pub use runnel_streams::backend::{ConsumedRecord, Headers, ProducedRecord, TopicPartition};
pub use runnel_streams::serdes::{murmur2, partition_for};
pub use runnel_streams::{Backend, BackendError, Guarantee, MemberInfo, PollEvent};

/// A topic to create: name, partition count and topic configs
/// (`cleanup.policy=compact`, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic of `partitions` partitions with the cluster's default configs.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        NewTopic {
            name: name.into(),
            partitions,
            configs: Vec::new(),
        }
    }

    /// Adds a topic config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }

    /// A compacted topic, as services keep their state in (Kafka Connect's
    /// `connect-configs`, the schema registry's `_schemas`).
    pub fn compacted(self) -> Self {
        self.config("cleanup.policy", "compact")
    }
}

/// The log as a service sees it: a backend per application plus topic
/// administration, embedded or remote.
pub trait Cluster: Send + Sync + 'static {
    /// A backend for one application (a SQL query, a connector task…):
    /// its consumer group is `app_id`, its transactional id derives from it.
    fn backend(&self, app_id: &str, guarantee: Guarantee)
        -> Result<Box<dyn Backend>, BackendError>;
    /// Every topic with its partition count, sorted by name.
    fn topics(&self) -> Result<Vec<(String, i32)>, BackendError>;
    /// Creates a topic and returns once it can be used (a topic that
    /// exists already is not an error; its partitions and configs are left
    /// as they are).
    fn create_topic(&self, topic: &NewTopic) -> Result<(), BackendError>;
    /// Deletes a topic; a topic that does not exist is an error.
    fn delete_topic(&self, topic: &str) -> Result<(), BackendError>;
    /// Deletes an application's consumer group and its committed offsets
    /// (when the application is dropped for good); a group that still has
    /// members, or does not exist, is an error.
    fn delete_group(&self, group: &str) -> Result<(), BackendError>;
}
