//! `runnel serve` settings: flags over environment over config file over defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use runnel_broker::BrokerConfig;
use serde::{Deserialize, Serialize};

/// Every setting of `runnel serve`, declared once: clap reads flags and
/// environment into it, serde the optional TOML file (same names, in
/// snake_case); [`ServeConfig::resolve`] lays the flags over the file, and
/// the accessors supply the defaults.
#[derive(Args, Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Config file (TOML); flags and environment override it.
    #[arg(long, env = "RUNNEL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Where the log lives [default: ./runnel-data].
    #[arg(long, env = "RUNNEL_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Kafka listener address [default: 0.0.0.0:9092].
    #[arg(long, env = "RUNNEL_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// host:port clients are told to connect to [default: the listener's].
    #[arg(long, env = "RUNNEL_ADVERTISED_LISTENER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertised_listener: Option<String>,
    /// Node id reported to clients [default: 1].
    #[arg(long, env = "RUNNEL_NODE_ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<i32>,
    /// Create topics on first use by a client [default: true].
    #[arg(long, env = "RUNNEL_AUTO_CREATE_TOPICS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_create_topics: Option<bool>,
    /// Partitions of topics created without a count [default: 1].
    #[arg(long, env = "RUNNEL_DEFAULT_PARTITIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_partitions: Option<i32>,
    /// Largest request accepted, in bytes [default: 104857600].
    #[arg(long, env = "RUNNEL_MAX_REQUEST_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<usize>,
    /// fsync after this many batches; 1 = before every acknowledgement [default: leave to the OS].
    #[arg(long, env = "RUNNEL_FLUSH_MESSAGES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_messages: Option<u64>,
    /// fsync at least this often, in milliseconds [default: leave to the OS].
    #[arg(long, env = "RUNNEL_FLUSH_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_ms: Option<u64>,
    /// How long a new group's first rebalance waits for more members, in ms [default: 300].
    #[arg(long, env = "RUNNEL_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_initial_rebalance_delay_ms: Option<u64>,
    /// KIP-848 consumer groups: a member's session timeout, in ms (group.consumer.session.timeout.ms) [default: 45000].
    #[arg(long, env = "RUNNEL_GROUP_CONSUMER_SESSION_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_consumer_session_timeout_ms: Option<u64>,
    /// KIP-848 consumer groups: heartbeat interval told to members, in ms [default: 5000].
    #[arg(long, env = "RUNNEL_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_consumer_heartbeat_interval_ms: Option<u64>,
    /// Smallest consumer.session.timeout.ms a group may set, in ms [default: 45000].
    #[arg(long, env = "RUNNEL_GROUP_CONSUMER_MIN_SESSION_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_consumer_min_session_timeout_ms: Option<u64>,
    /// Largest consumer.session.timeout.ms a group may set, in ms [default: 60000].
    #[arg(long, env = "RUNNEL_GROUP_CONSUMER_MAX_SESSION_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_consumer_max_session_timeout_ms: Option<u64>,
    /// Smallest consumer.heartbeat.interval.ms a group may set, in ms [default: 5000].
    #[arg(long, env = "RUNNEL_GROUP_CONSUMER_MIN_HEARTBEAT_INTERVAL_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_consumer_min_heartbeat_interval_ms: Option<u64>,
    /// Largest consumer.heartbeat.interval.ms a group may set, in ms [default: 15000].
    #[arg(long, env = "RUNNEL_GROUP_CONSUMER_MAX_HEARTBEAT_INTERVAL_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_consumer_max_heartbeat_interval_ms: Option<u64>,
    /// KIP-848 server-side assignors, comma-separated, the first the default (uniform, range, or Kafka's class names) [default: uniform,range].
    #[arg(long, env = "RUNNEL_GROUP_CONSUMER_ASSIGNORS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_consumer_assignors: Option<String>,
    /// Most members of one KIP-848 consumer group [default: 2147483647].
    #[arg(long, env = "RUNNEL_GROUP_CONSUMER_MAX_SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_consumer_max_size: Option<usize>,
    /// Share groups: deliveries of a record before it is archived (group.share.delivery.count.limit, 2 to 10) [default: 5].
    #[arg(long, env = "RUNNEL_GROUP_SHARE_DELIVERY_COUNT_LIMIT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_share_delivery_count_limit: Option<i16>,
    /// Committed offsets of groups without members expire after this many minutes [default: 10080].
    #[arg(long, env = "RUNNEL_OFFSETS_RETENTION_MINUTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offsets_retention_minutes: Option<i64>,
    /// Partitions of __consumer_offsets when it is first created [default: 1].
    #[arg(long, env = "RUNNEL_OFFSETS_TOPIC_PARTITIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offsets_topic_partitions: Option<i32>,
    /// Most open Kafka connections [default: 10000].
    #[arg(long, env = "RUNNEL_MAX_CONNECTIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Most open Kafka connections from one client address [default: 1000].
    #[arg(long, env = "RUNNEL_MAX_CONNECTIONS_PER_IP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<usize>,
    /// Most bytes in one Fetch response [default: 57671680].
    #[arg(long, env = "RUNNEL_FETCH_MAX_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_max_bytes: Option<usize>,
    /// Most bytes of requests being read or handled at once [default: 536870912].
    #[arg(long, env = "RUNNEL_QUEUED_MAX_REQUEST_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_max_request_bytes: Option<usize>,
    /// Default for a topic config key on every topic, e.g. retention.ms=86400000 (repeatable).
    #[arg(long = "topic-config", value_name = "KEY=VALUE")]
    #[serde(skip)]
    pub topic_config: Vec<String>,
    /// Defaults for every topic, by Kafka topic config key (the file's
    /// `[topic_defaults]` table; `--topic-config` adds to it).
    #[arg(skip)]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub topic_defaults: BTreeMap<String, String>,
    /// SQL API (ksqlDB REST) listener address [default: 0.0.0.0:8088].
    #[arg(long, env = "RUNNEL_SQL_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql_listen: Option<String>,
    /// Don't run the SQL engine and its API.
    #[arg(long, conflicts_with = "sql_listen")]
    #[serde(skip_serializing_if = "is_false")]
    pub no_sql: bool,
    /// Schema Registry (Confluent REST) listener address [default: 0.0.0.0:8081].
    #[arg(long, env = "RUNNEL_REGISTRY_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_listen: Option<String>,
    /// Don't run the schema registry.
    #[arg(long, conflicts_with = "registry_listen")]
    #[serde(skip_serializing_if = "is_false")]
    pub no_registry: bool,
    /// Kafka Connect REST listener address [default: 127.0.0.1:8083].
    #[arg(long, env = "RUNNEL_CONNECT_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_listen: Option<String>,
    /// Don't run the connect worker.
    #[arg(long, conflicts_with = "connect_listen")]
    #[serde(skip_serializing_if = "is_false")]
    pub no_connect: bool,
    /// A Kafka Connect worker property, e.g. exactly.once.source.support=enabled,
    /// group.id=…, offset.storage.topic=…, value.converter=… (repeatable).
    #[arg(long = "connect-property", value_name = "KEY=VALUE")]
    #[serde(skip)]
    pub connect_property: Vec<String>,
    /// Kafka Connect worker properties (the file's `[connect_properties]`
    /// table; `--connect-property` adds to it and wins).
    #[arg(skip)]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub connect_properties: BTreeMap<String, String>,
    /// Schema registry of the SQL engine's AVRO and JSON_SR formats
    /// (ksqlDB's ksql.schema.registry.url) [default: the built-in registry, http://127.0.0.1:8081 or --registry-listen].
    #[arg(long, env = "RUNNEL_SCHEMA_REGISTRY_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_registry_url: Option<String>,
    /// Kafka Connect REST API of the SQL engine's connector statements
    /// (ksqlDB's ksql.connect.url) [default: http://127.0.0.1:8083].
    #[arg(long, env = "RUNNEL_CONNECT_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_url: Option<String>,
    /// Run only the services (SQL engine, schema registry) on this
    /// Kafka-compatible cluster (host:port[,host:port…]) instead of a local log.
    #[arg(long, env = "RUNNEL_BOOTSTRAP_SERVERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    /// A librdkafka property for every client of --bootstrap-servers, e.g. security.protocol=SSL (repeatable).
    #[arg(
        long = "kafka-property",
        value_name = "KEY=VALUE",
        requires = "bootstrap_servers"
    )]
    #[serde(skip)]
    pub kafka_property: Vec<String>,
    /// host:port other SQL servers on the same cluster reach this one's API at,
    /// for pull queries on the partitions it hosts [default: the SQL listener's].
    #[arg(
        long,
        env = "RUNNEL_SQL_ADVERTISED_LISTENER",
        requires = "bootstrap_servers"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql_advertised_listener: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The Kafka listener's address when nothing says otherwise.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9092";

impl ServeConfig {
    /// Lays these settings (flags and environment) over the config file
    /// they name, if any.
    pub fn resolve(self) -> Result<ServeConfig> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        // The file alone must be valid (unknown keys, wrong types).
        ServeConfig::deserialize(toml::Value::Table(table.clone()))
            .with_context(|| format!("invalid config file {}", path.display()))?;
        let flags = toml::Value::try_from(&self).context("cannot merge the settings")?;
        if let toml::Value::Table(flags) = flags {
            for (k, v) in flags {
                match (table.get_mut(&k), v) {
                    // --topic-config adds to the file's table.
                    (Some(toml::Value::Table(file)), toml::Value::Table(over)) => file.extend(over),
                    (_, v) => {
                        table.insert(k, v);
                    }
                }
            }
        }
        let mut merged = ServeConfig::deserialize(toml::Value::Table(table))
            .with_context(|| format!("invalid config file {}", path.display()))?;
        merged.config = self.config;
        merged.topic_config = self.topic_config;
        merged.kafka_property = self.kafka_property;
        merged.connect_property = self.connect_property;
        Ok(merged)
    }

    /// Where the log lives.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("runnel-data"))
    }

    /// The Kafka listener's address.
    pub fn listen(&self) -> String {
        self.listen.clone().unwrap_or_else(|| DEFAULT_LISTEN.into())
    }

    /// The connect worker's properties: the file's `[connect_properties]`,
    /// then `--connect-property` (a flag wins over the file's key).
    pub fn connect_properties(&self) -> Result<Vec<(String, String)>> {
        let mut all = self.connect_properties.clone();
        for kv in &self.connect_property {
            let (k, v) = parse_kv(kv)?;
            all.insert(k, v);
        }
        Ok(all.into_iter().collect())
    }

    /// The librdkafka properties for a remote cluster's clients.
    pub fn kafka_properties(&self) -> Result<Vec<(String, String)>> {
        self.kafka_property.iter().map(|kv| parse_kv(kv)).collect()
    }

    /// The broker's settings, for a Kafka listener bound at `bound`.
    pub fn broker_config(&self, bound: SocketAddr) -> Result<BrokerConfig> {
        let mut topic_defaults = self.topic_defaults.clone();
        if let Some(n) = self.flush_messages {
            topic_defaults.insert("flush.messages".into(), n.to_string());
        }
        if let Some(ms) = self.flush_ms {
            topic_defaults.insert("flush.ms".into(), ms.to_string());
        }
        for kv in &self.topic_config {
            let (k, v) = parse_kv(kv)?;
            topic_defaults.insert(k, v);
        }
        let (advertised_host, advertised_port) = match &self.advertised_listener {
            Some(a) => split_host_port(a)?,
            None => (advertised_for(bound), bound.port()),
        };
        let d = BrokerConfig::default();
        let dc = &d.group.consumer;
        let ms = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_millis);
        let consumer = runnel_broker::group::consumer::ConsumerGroupConfig {
            session_timeout: ms(self.group_consumer_session_timeout_ms, dc.session_timeout),
            heartbeat_interval: ms(
                self.group_consumer_heartbeat_interval_ms,
                dc.heartbeat_interval,
            ),
            min_session_timeout: ms(
                self.group_consumer_min_session_timeout_ms,
                dc.min_session_timeout,
            ),
            max_session_timeout: ms(
                self.group_consumer_max_session_timeout_ms,
                dc.max_session_timeout,
            ),
            min_heartbeat_interval: ms(
                self.group_consumer_min_heartbeat_interval_ms,
                dc.min_heartbeat_interval,
            ),
            max_heartbeat_interval: ms(
                self.group_consumer_max_heartbeat_interval_ms,
                dc.max_heartbeat_interval,
            ),
            assignors: match &self.group_consumer_assignors {
                Some(list) => runnel_broker::group::consumer::parse_assignors(list)
                    .map_err(anyhow::Error::msg)?,
                None => dc.assignors.clone(),
            },
            max_size: self.group_consumer_max_size.unwrap_or(dc.max_size),
        };
        consumer.validate().map_err(anyhow::Error::msg)?;
        let mut share = d.group.share.clone();
        if let Some(n) = self.group_share_delivery_count_limit {
            // Kafka's range for group.share.delivery.count.limit.
            if !(2..=10).contains(&n) {
                bail!("group_share_delivery_count_limit must be between 2 and 10, not {n}");
            }
            share.delivery_count_limit = n;
        }
        Ok(BrokerConfig {
            node_id: self.node_id.unwrap_or(d.node_id),
            advertised_host,
            advertised_port: i32::from(advertised_port),
            auto_create_topics: self.auto_create_topics.unwrap_or(d.auto_create_topics),
            default_partitions: self.default_partitions.unwrap_or(d.default_partitions),
            max_request_bytes: self.max_request_bytes.unwrap_or(d.max_request_bytes),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_connections_per_ip: self
                .max_connections_per_ip
                .unwrap_or(d.max_connections_per_ip),
            queued_max_request_bytes: self
                .queued_max_request_bytes
                .unwrap_or(d.queued_max_request_bytes),
            fetch_max_bytes: self.fetch_max_bytes.unwrap_or(d.fetch_max_bytes),
            topic_defaults,
            group: runnel_broker::group::GroupConfig {
                initial_rebalance_delay: self
                    .group_initial_rebalance_delay_ms
                    .map(Duration::from_millis)
                    .unwrap_or(d.group.initial_rebalance_delay),
                consumer,
                share,
                ..d.group.clone()
            },
            offsets_retention_ms: self
                .offsets_retention_minutes
                .map(|m| m.saturating_mul(60_000))
                .unwrap_or(d.offsets_retention_ms),
            offsets_topic_partitions: self
                .offsets_topic_partitions
                .unwrap_or(d.offsets_topic_partitions),
            ..d
        })
    }
}

/// Parses `host:port` of a listener; `host` may be a name.
pub fn split_host_port(s: &str) -> Result<(String, u16)> {
    let (host, port) = s
        .rsplit_once(':')
        .with_context(|| format!("{s:?} is not host:port"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("{s:?} has an invalid port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        bail!("{s:?} has no host");
    }
    Ok((host.to_string(), port))
}

/// The host clients should use when the listener binds every interface.
pub fn advertised_for(bound: SocketAddr) -> String {
    if bound.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        bound.ip().to_string()
    }
}

/// Parses `key=value`.
pub fn parse_kv(s: &str) -> Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("{s:?} is not key=value"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(
            split_host_port("localhost:9092").unwrap(),
            ("localhost".into(), 9092)
        );
        assert_eq!(
            split_host_port("[::1]:19092").unwrap(),
            ("::1".into(), 19092)
        );
        assert!(split_host_port("nohost").is_err());
        assert!(split_host_port(":9092").is_err());
        assert!(split_host_port("h:99999").is_err());
    }

    fn file(text: &str) -> Result<ServeConfig> {
        ServeConfig::deserialize(toml::Value::Table(toml::from_str(text)?)).map_err(Into::into)
    }

    #[test]
    fn file_config_rejects_unknown_keys() {
        assert!(file("listen = \"0.0.0.0:1\"\nbogus = 1").is_err());
        let c = file(
            "listen = \"127.0.0.1:1\"\nflush_messages = 1\n[topic_defaults]\n\"retention.ms\" = \"1000\"",
        )
        .unwrap();
        assert_eq!(c.flush_messages, Some(1));
        let g = file(
            "group_initial_rebalance_delay_ms = 0\noffsets_retention_minutes = 60\noffsets_topic_partitions = 4",
        )
        .unwrap();
        assert_eq!(
            (
                g.group_initial_rebalance_delay_ms,
                g.offsets_retention_minutes,
                g.offsets_topic_partitions
            ),
            (Some(0), Some(60), Some(4))
        );
        assert_eq!(c.topic_defaults["retention.ms"], "1000");
        let q = file("sql_listen = \"127.0.0.1:18088\"").unwrap();
        assert_eq!(q.sql_listen.as_deref(), Some("127.0.0.1:18088"));
        let r = file("registry_listen = \"127.0.0.1:18081\"\nno_registry = false").unwrap();
        assert_eq!(r.registry_listen.as_deref(), Some("127.0.0.1:18081"));
        assert!(file("no_registry = true").unwrap().no_registry);
        // Flag-only settings are not file keys.
        assert!(file("config = \"x.toml\"").is_err());
        assert!(file("topic_config = [\"a=b\"]").is_err());
    }

    #[test]
    fn consumer_group_settings_are_checked_like_kafka() {
        let bound = "127.0.0.1:2".parse().unwrap();
        let c = file(
            "group_consumer_session_timeout_ms = 10000\ngroup_consumer_min_session_timeout_ms = 2000\ngroup_consumer_assignors = \"range, uniform\"\ngroup_consumer_max_size = 3",
        )
        .unwrap();
        let g = c.broker_config(bound).unwrap().group.consumer;
        assert_eq!(g.session_timeout, Duration::from_secs(10));
        assert_eq!(
            g.assignors,
            vec!["range".to_string(), "uniform".to_string()]
        );
        assert_eq!((g.max_size, g.default_assignor()), (3, "range"));
        for bad in [
            "group_consumer_session_timeout_ms = 10000",
            "group_consumer_heartbeat_interval_ms = 1000",
            "group_consumer_assignors = \"sticky\"",
            "group_consumer_max_size = 0",
        ] {
            assert!(file(bad).unwrap().broker_config(bound).is_err(), "{bad}");
        }
    }

    #[test]
    fn share_delivery_count_limit_is_checked_like_kafka() {
        let bound = "127.0.0.1:2".parse().unwrap();
        let c = file("group_share_delivery_count_limit = 10").unwrap();
        let g = c.broker_config(bound).unwrap().group.share;
        assert_eq!(g.delivery_count_limit, 10);
        let d = ServeConfig::default().broker_config(bound).unwrap();
        assert_eq!(d.group.share.delivery_count_limit, 5);
        for bad in [1, 11] {
            let c = file(&format!("group_share_delivery_count_limit = {bad}")).unwrap();
            assert!(c.broker_config(bound).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runnel.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\nnode_id = 7\nflush_messages = 1\nno_sql = true\n[topic_defaults]\n\"retention.ms\" = \"1000\"\n\"segment.bytes\" = \"4096\"",
        )
        .unwrap();
        let flags = ServeConfig {
            config: Some(path),
            listen: Some("127.0.0.1:2".into()),
            topic_config: vec!["retention.ms=5".into()],
            ..ServeConfig::default()
        };
        let c = flags.resolve().unwrap();
        assert_eq!(c.listen(), "127.0.0.1:2", "flag over file");
        assert_eq!(c.node_id, Some(7), "file where no flag");
        assert!(c.no_sql);
        assert_eq!(c.data_dir(), PathBuf::from("runnel-data"), "default");
        let b = c.broker_config("127.0.0.1:2".parse().unwrap()).unwrap();
        assert_eq!(b.node_id, 7);
        assert_eq!(b.advertised_port, 2);
        assert_eq!(
            b.topic_defaults["retention.ms"], "5",
            "--topic-config over the file"
        );
        assert_eq!(b.topic_defaults["segment.bytes"], "4096");
        assert_eq!(b.topic_defaults["flush.messages"], "1");
        assert_eq!(
            b.default_partitions,
            BrokerConfig::default().default_partitions
        );
    }

    #[test]
    fn connect_properties_come_from_the_file_and_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runnel.toml");
        std::fs::write(
            &path,
            "[connect_properties]\n\"group.id\" = \"file-group\"\n\"exactly.once.source.support\" = \"enabled\"",
        )
        .unwrap();
        let flags = ServeConfig {
            config: Some(path),
            connect_property: vec![
                "group.id=flag-group".into(),
                "offset.flush.interval.ms=500".into(),
            ],
            ..ServeConfig::default()
        };
        let c = flags.resolve().unwrap();
        assert_eq!(
            c.connect_properties().unwrap(),
            vec![
                (
                    "exactly.once.source.support".to_string(),
                    "enabled".to_string()
                ),
                ("group.id".to_string(), "flag-group".to_string()),
                ("offset.flush.interval.ms".to_string(), "500".to_string()),
            ]
        );
        // Values are strings, as in a worker's properties file.
        assert!(file("[connect_properties]\n\"group.id\" = 1").is_err());
    }
}
