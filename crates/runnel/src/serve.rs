//! `runnel serve`: open the log, listen for Kafka clients and (unless
//! `--no-sql`) run the SQL engine with its ksqlDB-compatible API on the same
//! in-process broker, stop cleanly on a signal. With `--bootstrap-servers`
//! there is no local log: the SQL engine runs on that Kafka-compatible
//! cluster instead.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use runnel_broker::{Broker, BrokerConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

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
    /// SQL API (ksqlDB REST) listener address [default: 0.0.0.0:8088].
    #[arg(long, env = "RUNNEL_SQL_LISTEN")]
    sql_listen: Option<String>,
    /// Don't run the SQL engine and its API.
    #[arg(long, conflicts_with = "sql_listen")]
    no_sql: bool,
    /// Run only the SQL engine and its API, on this Kafka-compatible cluster
    /// (host:port[,host:port…]) instead of a local log.
    #[arg(long, env = "RUNNEL_BOOTSTRAP_SERVERS", conflicts_with = "no_sql")]
    bootstrap_servers: Option<String>,
    /// A librdkafka property for every client of --bootstrap-servers, e.g. security.protocol=SSL (repeatable).
    #[arg(
        long = "kafka-property",
        value_name = "KEY=VALUE",
        requires = "bootstrap_servers"
    )]
    kafka_property: Vec<String>,
    /// host:port other SQL servers on the same cluster reach this one's API at,
    /// for pull queries on the partitions it hosts [default: the SQL listener's].
    #[arg(
        long,
        env = "RUNNEL_SQL_ADVERTISED_LISTENER",
        requires = "bootstrap_servers"
    )]
    sql_advertised_listener: Option<String>,
}

/// The SQL API's address when nothing says otherwise (ksqlDB's port).
const DEFAULT_SQL_LISTEN: &str = "0.0.0.0:8088";

/// How long stopping waits for SQL API clients to finish their responses.
const SQL_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

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

    if let Some(bootstrap) = args.bootstrap_servers {
        let sql_listen = args
            .sql_listen
            .or(file.sql_listen)
            .unwrap_or_else(|| DEFAULT_SQL_LISTEN.to_string());
        let properties = args
            .kafka_property
            .iter()
            .map(|kv| parse_kv(kv))
            .collect::<Result<Vec<_>>>()?;
        return run_on_cluster(
            bootstrap,
            properties,
            &sql_listen,
            args.sql_advertised_listener,
        )
        .await;
    }

    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let sql_listener = if args.no_sql {
        None
    } else {
        match args.sql_listen.or(file.sql_listen) {
            Some(addr) => Some(
                TcpListener::bind(&addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} for the SQL API"))?,
            ),
            // The default port may be taken (another server on this host):
            // the broker still serves, without SQL.
            None => match TcpListener::bind(DEFAULT_SQL_LISTEN).await {
                Ok(l) => Some(l),
                Err(e) => {
                    warn!(listen = DEFAULT_SQL_LISTEN, error = %e, "cannot listen for the SQL API; running without it (set --sql-listen, or --no-sql)");
                    None
                }
            },
        }
    };
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
    // On a signal the SQL side stops first (its queries commit and stop
    // writing), then the broker, which flushes the log.
    let (sql_stop, sql_stopped) = watch::channel(false);
    let (kafka_stop, kafka_stopped) = watch::channel(false);
    let mut kafka = tokio::spawn(runnel_broker::serve(
        broker.clone(),
        listener,
        stopped(kafka_stopped),
    ));
    let mut sql = sql_listener.map(|l| {
        let cluster = Arc::new(runnel_embed::LocalCluster::new(broker.local()));
        tokio::spawn(run_sql(
            cluster,
            runnel_sql::EngineConfig::default(),
            l,
            sql_stopped,
        ))
    });
    let mut kafka_result = None;
    let mut sql_result = None;
    tokio::select! {
        _ = shutdown_signal() => {}
        r = &mut kafka => kafka_result = Some(r),
        r = async { match sql.as_mut() {
            Some(h) => h.await,
            None => std::future::pending().await,
        } } => sql_result = Some(r),
    }
    let _ = sql_stop.send(true);
    if let Some(h) = sql.take() {
        let r = match sql_result.take() {
            Some(r) => r,
            None => h.await,
        };
        if let Err(e) = r.context("the SQL API task failed").and_then(|r| r) {
            // Stop the broker as well, then report.
            let _ = kafka_stop.send(true);
            if kafka_result.is_none() {
                let _ = kafka.await;
            }
            return Err(e);
        }
    }
    let _ = kafka_stop.send(true);
    let r = match kafka_result {
        Some(r) => r,
        None => kafka.await,
    };
    r.context("the broker task failed")??;
    Ok(())
}

/// Completes once `rx` says to stop.
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// `--bootstrap-servers`: the SQL engine and its API on an external
/// cluster, until a signal.
async fn run_on_cluster(
    bootstrap: String,
    properties: Vec<(String, String)>,
    sql_listen: &str,
    advertised: Option<String>,
) -> Result<()> {
    let listener = TcpListener::bind(sql_listen)
        .await
        .with_context(|| format!("cannot listen on {sql_listen} for the SQL API"))?;
    let endpoint = match advertised {
        Some(a) => {
            let (host, port) = split_host_port(&a)?;
            format!("{host}:{port}")
        }
        None => {
            let bound = listener.local_addr()?;
            format!("{}:{}", advertised_for(bound), bound.port())
        }
    };
    let cluster = runnel_cluster::KafkaCluster::new(bootstrap.clone(), properties)
        .with_context(|| format!("cannot reach the cluster at {bootstrap}"))?
        .with_application_server(endpoint.clone());
    info!(bootstrap = %bootstrap, advertised = %endpoint, "running the SQL engine on a Kafka-compatible cluster");
    let config = runnel_sql::EngineConfig {
        application_server: Some(endpoint),
        ..runnel_sql::EngineConfig::default()
    };
    let (stop, stopped_rx) = watch::channel(false);
    let mut sql = tokio::spawn(run_sql(Arc::new(cluster), config, listener, stopped_rx));
    tokio::select! {
        _ = shutdown_signal() => {}
        r = &mut sql => return r.context("the SQL API task failed")?,
    }
    let _ = stop.send(true);
    sql.await.context("the SQL API task failed")?
}

/// Starts the SQL engine on `cluster` (replaying its command topic) and
/// serves its API until told to stop; then stops the engine.
async fn run_sql(
    cluster: Arc<dyn runnel_cluster::Cluster>,
    config: runnel_sql::EngineConfig,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let bound = listener.local_addr()?;
    let started = std::time::Instant::now();
    let engine = tokio::task::spawn_blocking(move || runnel_sql::Engine::start(cluster, config))
        .await?
        .context("cannot start the SQL engine")?;
    info!(
        listen = %bound,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "runnel is serving ksqlDB clients"
    );
    let serve = runnel_sql_http::serve(engine.clone(), listener, stopped(stop.clone()));
    let drained = async {
        stopped(stop).await;
        tokio::time::sleep(SQL_DRAIN_TIMEOUT).await;
    };
    let result = tokio::select! {
        r = serve => r.map_err(anyhow::Error::from),
        _ = drained => {
            warn!("SQL API clients still connected; closing them");
            Ok(())
        }
    };
    tokio::task::spawn_blocking(move || engine.shutdown()).await?;
    info!("SQL engine stopped");
    result
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
