//! `runnel serve` settings: flags over environment over config file over defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The optional TOML config file (`runnel serve --config runnel.toml`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub advertised_listener: Option<String>,
    pub node_id: Option<i32>,
    pub auto_create_topics: Option<bool>,
    pub default_partitions: Option<i32>,
    pub max_request_bytes: Option<usize>,
    pub flush_messages: Option<u64>,
    pub flush_ms: Option<u64>,
    pub group_initial_rebalance_delay_ms: Option<u64>,
    pub offsets_retention_minutes: Option<i64>,
    pub offsets_topic_partitions: Option<i32>,
    /// Address of the ksqlDB-compatible SQL API.
    pub sql_listen: Option<String>,
    /// Defaults for every topic, by Kafka topic config key.
    #[serde(default)]
    pub topic_defaults: BTreeMap<String, String>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
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

    #[test]
    fn file_config_rejects_unknown_keys() {
        assert!(toml::from_str::<FileConfig>("listen = \"0.0.0.0:1\"\nbogus = 1").is_err());
        let c: FileConfig = toml::from_str(
            "listen = \"127.0.0.1:1\"\nflush_messages = 1\n[topic_defaults]\n\"retention.ms\" = \"1000\"",
        )
        .unwrap();
        assert_eq!(c.flush_messages, Some(1));
        let g: FileConfig = toml::from_str(
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
        let q: FileConfig = toml::from_str("sql_listen = \"127.0.0.1:18088\"").unwrap();
        assert_eq!(q.sql_listen.as_deref(), Some("127.0.0.1:18088"));
    }
}
