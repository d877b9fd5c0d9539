//! `runnel serve`: open the log and run the platform's services over it —
//! the Kafka listener, (unless `--no-sql`) the SQL engine with its
//! ksqlDB-compatible API and (unless `--no-registry`) the schema registry,
//! on the same in-process broker, and (unless `--no-connect`) the Kafka
//! Connect worker — under one [`Supervisor`], until a signal stops them
//! in reverse order. With `--bootstrap-servers` there is
//! no local log: the SQL engine, the registry and the connect worker run
//! on that Kafka-compatible cluster instead.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use runnel_broker::Broker;
use runnel_cluster::{Cluster, KafkaCluster};
use runnel_connect::{ConnectService, WorkerConfig};
use runnel_registry::{RegistryConfig, RegistryService};
use runnel_service::{
    BoxFuture, HttpListen, Running, Service, ServiceError, StartContext, Supervisor,
};
use runnel_sql_http::SqlService;
use tokio::net::TcpListener;
use tracing::info;

pub use crate::config::ServeConfig as ServeArgs;

/// How long stopping waits for HTTP API clients to finish their responses.
const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(args: ServeArgs) -> Result<()> {
    let stop = shutdown_signal()?;
    let config = args.resolve()?;
    let mut services = Supervisor::new();
    services.drain_timeout(HTTP_DRAIN_TIMEOUT);
    let sql_listen = |config: &ServeArgs| match &config.sql_listen {
        Some(addr) => HttpListen {
            addr: addr.clone(),
            required: true,
        },
        // The default port may be taken (another server on this host):
        // the broker still serves, without SQL.
        None => HttpListen {
            addr: runnel_sql_http::service::DEFAULT_LISTEN.to_string(),
            required: false,
        },
    };

    let registry_listen = |config: &ServeArgs| match &config.registry_listen {
        Some(addr) => HttpListen {
            addr: addr.clone(),
            required: true,
        },
        // As for SQL: a taken default port leaves the registry out.
        None => HttpListen {
            addr: runnel_registry::service::DEFAULT_LISTEN.to_string(),
            required: false,
        },
    };

    let connect_listen = |config: &ServeArgs| match &config.connect_listen {
        Some(addr) => HttpListen {
            addr: addr.clone(),
            required: true,
        },
        // As for SQL: a taken default port leaves the connect worker out.
        None => HttpListen {
            addr: runnel_connect::service::DEFAULT_LISTEN.to_string(),
            required: false,
        },
    };
    // The SQL engine's schema registry: the one given, else the built-in
    // one (reached on loopback when it listens on every address).
    let engine_config = runnel_sql::EngineConfig {
        schema_registry_url: config.schema_registry_url.clone().or_else(|| {
            (!config.no_registry).then(|| {
                let addr = registry_listen(&config).addr;
                format!("http://{}", addr.replace("0.0.0.0", "127.0.0.1"))
            })
        }),
        // The connector statements' Kafka Connect: the one given, else
        // the built-in worker where it listens.
        connect_url: Some(config.connect_url.clone().unwrap_or_else(|| {
            let addr = connect_listen(&config).addr;
            format!("http://{}", addr.replace("0.0.0.0", "127.0.0.1"))
        })),
        ..runnel_sql::EngineConfig::default()
    };

    let connect_config = if config.no_connect {
        None
    } else {
        Some(
            WorkerConfig::from_properties(&config.connect_properties()?)
                .map_err(|e| anyhow::anyhow!("--connect-property: {e}"))?,
        )
    };

    if let Some(bootstrap) = config.bootstrap_servers.clone() {
        // No local log: the SQL engine, the registry, the connect worker
        // and their APIs on that cluster.
        if config.no_sql && config.no_registry && config.no_connect {
            anyhow::bail!(
                "--bootstrap-servers with --no-sql, --no-registry and --no-connect leaves nothing to run"
            );
        }
        let properties = config.kafka_properties()?;
        if let Some(worker) = connect_config.clone() {
            let (bootstrap, properties) = (bootstrap.clone(), properties.clone());
            let make = Box::new(move |worker_id: &str| {
                KafkaCluster::new(bootstrap.clone(), properties)
                    // Stable transactional ids for exactly-once source
                    // tasks: a restarted worker fences its predecessor.
                    .map(|c| c.with_instance_id(runnel_connect::service::KAFKA_INSTANCE_ID))
                    // Where the other workers forward requests to it.
                    .map(|c| c.with_application_server(worker_id))
                    .map(|c| Arc::new(c) as Arc<dyn Cluster>)
                    .map_err(|e| format!("cannot reach the cluster at {bootstrap}: {e}"))
            });
            services.add(ConnectService::with_factory(
                make,
                worker,
                crate::connect_cmd::plugins(),
                connect_listen(&config),
            ));
        }
        if !config.no_registry {
            let (bootstrap, mut properties) = (bootstrap.clone(), properties.clone());
            // The registry reads `_schemas` to its end after every write, and
            // under read_committed that end is only known once a fetch
            // comes back empty past the transaction marker: with librdkafka's
            // default wait (500 ms) every write would take a second.
            if !properties.iter().any(|(k, _)| k == "fetch.wait.max.ms") {
                properties.push(("fetch.wait.max.ms".to_string(), "10".to_string()));
            }
            let make = Box::new(move || {
                KafkaCluster::new(bootstrap.clone(), properties)
                    // One instance id for every registry process: their
                    // writers share a transactional id, which is how they
                    // fence each other (see runnel-registry).
                    .map(|c| c.with_instance_id(runnel_registry::service::KAFKA_INSTANCE_ID))
                    .map(|c| Arc::new(c) as Arc<dyn Cluster>)
                    .map_err(|e| format!("cannot reach the cluster at {bootstrap}: {e}"))
            });
            // The default port stays optional here too: several servers
            // on one cluster, on one host, still start (one serves 8081).
            services.add(RegistryService::with_factory(
                make,
                RegistryConfig::default(),
                registry_listen(&config),
            ));
        }
        if config.no_sql {
            services.run(stop).await?;
            return Ok(());
        }
        let listen = HttpListen {
            required: true,
            ..sql_listen(&config)
        };
        let advertised = match &config.sql_advertised_listener {
            Some(a) => {
                let (host, port) = crate::config::split_host_port(a)?;
                Some(format!("{host}:{port}"))
            }
            None => None,
        };
        info!(bootstrap = %bootstrap, "running the SQL engine on a Kafka-compatible cluster");
        let make = Box::new(move |endpoint: Option<&str>| {
            let mut cluster = KafkaCluster::new(bootstrap.clone(), properties)
                .map_err(|e| format!("cannot reach the cluster at {bootstrap}: {e}"))?;
            if let Some(e) = endpoint {
                cluster = cluster.with_application_server(e);
            }
            Ok(Arc::new(cluster) as Arc<dyn Cluster>)
        });
        services.add(SqlService::shared(
            make,
            engine_config.clone(),
            listen,
            advertised,
        ));
        services.run(stop).await?;
        return Ok(());
    }

    let listen = config.listen();
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    let broker_config = config.broker_config(bound)?;
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let started = std::time::Instant::now();
    let dir = data_dir.clone();
    let cfg = broker_config.clone();
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
        advertised = %format!("{}:{}", broker_config.advertised_host, broker_config.advertised_port),
        "runnel is serving Kafka clients"
    );
    // Services start in this order and stop in the reverse one: the SQL
    // engine's queries commit and stop writing before the broker flushes
    // the log. The registry starts before the SQL engine, which will read
    // schemas from it.
    // Topics with confluent.*.schema.validation=true check produced records
    // against the SQL engine's registry (the built-in one unless
    // --schema-registry-url names another).
    if let Some(url) = &engine_config.schema_registry_url {
        broker.set_schema_validator(Arc::new(crate::schema_validation::RegistryValidator::new(
            url,
        )));
    }
    let local = broker.local();
    let local_for_registry = broker.local();
    let local_for_connect = broker.local();
    services.add(KafkaService { broker, listener });
    let cluster: Arc<dyn Cluster> = Arc::new(runnel_embed::LocalCluster::new(local));
    if !config.no_registry {
        // The registry's writer takes the transactional id remote registries
        // on this broker take (`runnel serve --bootstrap-servers`), so the
        // embedded one and they fence each other.
        let registry_cluster: Arc<dyn Cluster> = Arc::new(
            runnel_embed::LocalCluster::new(local_for_registry)
                .with_instance_id(runnel_registry::service::KAFKA_INSTANCE_ID),
        );
        services.add(RegistryService::new(
            registry_cluster,
            RegistryConfig::default(),
            registry_listen(&config),
        ));
    }
    if !config.no_sql {
        services.add(SqlService::new(cluster, engine_config, sql_listen(&config)));
    }
    if let Some(worker) = connect_config {
        // Exactly-once source tasks take the transactional ids remote
        // workers on this broker take (`runnel connect`), so an embedded
        // and a remote instance of a task fence each other.
        let connect_cluster: Arc<dyn Cluster> = Arc::new(
            runnel_embed::LocalCluster::new(local_for_connect)
                .with_instance_id(runnel_connect::service::KAFKA_INSTANCE_ID),
        );
        services.add(ConnectService::new(
            connect_cluster,
            worker,
            crate::connect_cmd::plugins(),
            connect_listen(&config),
        ));
    }
    services.run(stop).await?;
    Ok(())
}

/// The Kafka protocol listener over the in-process broker.
struct KafkaService {
    broker: Arc<Broker>,
    listener: TcpListener,
}

impl Service for KafkaService {
    fn name(&self) -> &str {
        "kafka"
    }

    fn start(self: Box<Self>, cx: StartContext) -> BoxFuture<Result<Running, ServiceError>> {
        let KafkaService { broker, listener } = *self;
        Box::pin(async move {
            Ok(Running {
                task: Some(Box::pin(async move {
                    runnel_broker::serve(broker, listener, cx.stop.wait())
                        .await
                        .map_err(|e| ServiceError::failed("kafka", e))
                })),
                ..Running::default()
            })
        })
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed
/// when this is called, not when it is first awaited: a signal that comes
/// while the server is still starting (its port may already accept
/// connections) is kept and stops it cleanly once it serves, instead of
/// killing the process.
pub fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => info!("interrupted; shutting down"),
                _ = terminate.recv() => info!("terminated; shutting down"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            info!("interrupted; shutting down");
        })
    }
}
