//! The broker's own settings (listener identity, limits, topic defaults).

use std::collections::BTreeMap;

/// Settings of one Runnel broker. Topic-level defaults live in
/// [`BrokerConfig::topic_defaults`] and are handed to the log.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The node id this broker reports in Metadata.
    pub node_id: i32,
    /// Host clients are told to connect to.
    pub advertised_host: String,
    /// Port clients are told to connect to.
    pub advertised_port: i32,
    /// Cluster id reported in Metadata and DescribeCluster.
    pub cluster_id: String,
    /// Create a topic when a client asks Metadata for one that does not exist.
    pub auto_create_topics: bool,
    /// Partition count of topics created without an explicit count.
    pub default_partitions: i32,
    /// Largest request frame accepted (`socket.request.max.bytes`); larger
    /// frames close the connection.
    pub max_request_bytes: usize,
    /// Server-wide defaults for topic configs (Kafka topic config keys).
    pub topic_defaults: BTreeMap<String, String>,
    /// How often retention, segment age rolls and interval flushes run.
    pub maintenance_interval_ms: u64,
    /// Consumer group coordinator settings (initial rebalance delay,
    /// session timeout bounds).
    pub group: crate::group::GroupConfig,
    /// Partitions of `__consumer_offsets` when it is created.
    pub offsets_topic_partitions: i32,
    /// `offsets.retention.minutes`: committed offsets of groups without
    /// members are deleted this long after their last commit.
    pub offsets_retention_ms: i64,
    /// How often the group timer checks sessions and rebalance deadlines.
    pub group_tick_ms: u64,
    /// Most open connections per listener (Kafka's `max.connections`); a
    /// connection beyond it is closed at once.
    pub max_connections: usize,
    /// Most open connections from one client address
    /// (`max.connections.per.ip`).
    pub max_connections_per_ip: usize,
    /// Most bytes of request frames being read or handled at once, across
    /// connections (`queued.max.request.bytes`): a reader waits for room
    /// before it reads a frame's body, so memory held by requests stays
    /// bounded whatever clients send.
    pub queued_max_request_bytes: usize,
    /// Most bytes one Fetch response carries (Kafka's broker
    /// `fetch.max.bytes`): a request's `max_bytes` is capped by it, and a
    /// `max_bytes` of zero or less means zero, as in Kafka (the first batch
    /// is still returned so a consumer always progresses).
    pub fetch_max_bytes: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 1,
            advertised_host: "localhost".to_string(),
            advertised_port: 9092,
            cluster_id: "runnel-cluster".to_string(),
            auto_create_topics: true,
            default_partitions: 1,
            max_request_bytes: 100 * 1024 * 1024,
            topic_defaults: BTreeMap::new(),
            maintenance_interval_ms: 5_000,
            group: crate::group::GroupConfig::default(),
            offsets_topic_partitions: 1,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            group_tick_ms: 100,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            queued_max_request_bytes: 512 * 1024 * 1024,
            fetch_max_bytes: 55 * 1024 * 1024,
        }
    }
}
