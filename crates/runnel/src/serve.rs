//! `runnel serve`: open the log, listen for Kafka clients, stop cleanly on a signal.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use runnel_broker::{Broker, BrokerConfig};
use tokio::net::TcpListener;
use tracing::info;

use crate::config::{advertised_for, parse_kv, split_host_port, FileConfig};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Config file (TOML); flags and environment override it.
    #[arg(long, env = "RUNNEL_CONFIG")]
    config: Option<PathBuf>,
    /// Where the log lives [default: ./runnel-data].
    #[arg(long, env = "RUNNEL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Kafka listener address [default: 0.0.0.0:9092].
    #[arg(long, env = "RUNNEL_LISTEN")]
    listen: Option<String>,
    /// host:port clients are told to connect to [default: the listener's].
    #[arg(long, env = "RUNNEL_ADVERTISED_LISTENER")]
    advertised_listener: Option<String>,
    /// Node id reported to clients [default: 1].
    #[arg(long, env = "RUNNEL_NODE_ID")]
    node_id: Option<i32>,
    /// Create topics on first use by a client [default: true].
    #[arg(long, env = "RUNNEL_AUTO_CREATE_TOPICS")]
    auto_create_topics: Option<bool>,
    /// Partitions of topics created without a count [default: 1].
    #[arg(long, env = "RUNNEL_DEFAULT_PARTITIONS")]
    default_partitions: Option<i32>,
    /// Largest request accepted, in bytes [default: 104857600].
    #[arg(long, env = "RUNNEL_MAX_REQUEST_BYTES")]
    max_request_bytes: Option<usize>,
    /// fsync after this many batches; 1 = before every acknowledgement [default: leave to the OS].
    #[arg(long, env = "RUNNEL_FLUSH_MESSAGES")]
    flush_messages: Option<u64>,
    /// fsync at least this often, in milliseconds [default: leave to the OS].
    #[arg(long, env = "RUNNEL_FLUSH_MS")]
    flush_ms: Option<u64>,
    /// How long a new group's first rebalance waits for more members, in ms [default: 300].
    #[arg(long, env = "RUNNEL_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    group_initial_rebalance_delay_ms: Option<u64>,
    /// Committed offsets of groups without members expire after this many minutes [default: 10080].
    #[arg(long, env = "RUNNEL_OFFSETS_RETENTION_MINUTES")]
    offsets_retention_minutes: Option<i64>,
    /// Partitions of __consumer_offsets when it is first created [default: 1].
    #[arg(long, env = "RUNNEL_OFFSETS_TOPIC_PARTITIONS")]
    offsets_topic_partitions: Option<i32>,
    /// Default for a topic config key on every topic, e.g. retention.ms=86400000 (repeatable).
    #[arg(long = "topic-config", value_name = "KEY=VALUE")]
    topic_config: Vec<String>,
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("runnel-data"));
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| "0.0.0.0:9092".to_string());
    let mut topic_defaults = file.topic_defaults;
    if let Some(n) = args.flush_messages.or(file.flush_messages) {
        topic_defaults.insert("flush.messages".into(), n.to_string());
    }
    if let Some(ms) = args.flush_ms.or(file.flush_ms) {
        topic_defaults.insert("flush.ms".into(), ms.to_string());
    }
    for kv in &args.topic_config {
        let (k, v) = parse_kv(kv)?;
        topic_defaults.insert(k, v);
    }

    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    let (advertised_host, advertised_port) =
        match args.advertised_listener.or(file.advertised_listener) {
            Some(a) => split_host_port(&a)?,
            None => (advertised_for(bound), bound.port()),
        };
    let defaults = BrokerConfig::default();
    let config = BrokerConfig {
        node_id: args.node_id.or(file.node_id).unwrap_or(defaults.node_id),
        advertised_host,
        advertised_port: advertised_port as i32,
        auto_create_topics: args
            .auto_create_topics
            .or(file.auto_create_topics)
            .unwrap_or(defaults.auto_create_topics),
        default_partitions: args
            .default_partitions
            .or(file.default_partitions)
            .unwrap_or(defaults.default_partitions),
        max_request_bytes: args
            .max_request_bytes
            .or(file.max_request_bytes)
            .unwrap_or(defaults.max_request_bytes),
        topic_defaults,
        group: runnel_broker::group::GroupConfig {
            initial_rebalance_delay: args
                .group_initial_rebalance_delay_ms
                .or(file.group_initial_rebalance_delay_ms)
                .map(std::time::Duration::from_millis)
                .unwrap_or(defaults.group.initial_rebalance_delay),
            ..defaults.group.clone()
        },
        offsets_retention_ms: args
            .offsets_retention_minutes
            .or(file.offsets_retention_minutes)
            .map(|m| m.saturating_mul(60_000))
            .unwrap_or(defaults.offsets_retention_ms),
        offsets_topic_partitions: args
            .offsets_topic_partitions
            .or(file.offsets_topic_partitions)
            .unwrap_or(defaults.offsets_topic_partitions),
        ..defaults
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let started = std::time::Instant::now();
    let dir = data_dir.clone();
    let cfg = config.clone();
    let broker = tokio::task::spawn_blocking(move || Broker::open(&dir, cfg))
        .await?
        .with_context(|| format!("cannot open the log in {}", data_dir.display()))?;
    info!(
        data_dir = %data_dir.display(),
        topics = broker.log().topics().len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "log opened"
    );
    info!(
        listen = %bound,
        advertised = %format!("{}:{}", config.advertised_host, config.advertised_port),
        "runnel is serving Kafka clients"
    );
    runnel_broker::serve(broker, listener, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => info!("interrupted; shutting down"),
        _ = term => info!("terminated; shutting down"),
    }
}
