//! The connect worker and its REST API as a service of `runnel serve`
//! (and of `runnel connect`).

use std::sync::Arc;
use std::time::Instant;

use runnel_cluster::Cluster;
use runnel_connect_api::ConnectorPlugin;
use runnel_service::{BoxFuture, HttpListen, Running, Service, ServiceError, StartContext};
use tracing::info;

use crate::worker::{Worker, WorkerConfig};

/// Kafka Connect's port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8083";

/// The instance id a worker gives its `KafkaCluster`
/// (`with_instance_id`): the transactional ids of exactly-once source
/// tasks (`<group.id>-<connector>-<task>` plus this) must be the same
/// after a restart, so the new task fences the old one and aborts its
/// open transaction.
pub const KAFKA_INSTANCE_ID: &str = "connect";

/// Builds the cluster when the service starts (a remote cluster is only
/// reached then), given the REST address (`host:port`) the worker
/// advertises: a `KafkaCluster` puts it in its clients' `client.id`
/// (`with_application_server`), so the other workers of the group learn
/// where to forward requests for what this one runs.
pub type ClusterFactory = Box<dyn FnOnce(&str) -> Result<Arc<dyn Cluster>, String> + Send>;

/// A worker on a cluster with its API on a listener.
pub struct ConnectService {
    cluster: ClusterFactory,
    config: WorkerConfig,
    plugins: Vec<Arc<dyn ConnectorPlugin>>,
    listen: HttpListen,
}

impl ConnectService {
    /// A worker on `cluster` running `plugins` (the built-in ones are
    /// added: see [`crate::builtin::plugins`]), its API on `listen`.
    pub fn new(
        cluster: Arc<dyn Cluster>,
        config: WorkerConfig,
        plugins: Vec<Arc<dyn ConnectorPlugin>>,
        listen: HttpListen,
    ) -> Self {
        ConnectService::with_factory(Box::new(move |_| Ok(cluster)), config, plugins, listen)
    }

    /// A worker on the cluster `make` builds when the service starts.
    pub fn with_factory(
        make: ClusterFactory,
        config: WorkerConfig,
        mut plugins: Vec<Arc<dyn ConnectorPlugin>>,
        listen: HttpListen,
    ) -> Self {
        for p in crate::builtin::plugins() {
            if !plugins.iter().any(|q| q.class() == p.class()) {
                plugins.push(p);
            }
        }
        ConnectService {
            cluster: make,
            config,
            plugins,
            listen,
        }
    }
}

impl Service for ConnectService {
    fn name(&self) -> &str {
        "connect"
    }

    fn http_listen(&self) -> Option<HttpListen> {
        Some(self.listen.clone())
    }

    fn start(self: Box<Self>, cx: StartContext) -> BoxFuture<Result<Running, ServiceError>> {
        Box::pin(async move {
            let ConnectService {
                cluster,
                mut config,
                plugins,
                ..
            } = *self;
            if let Some(addr) = cx.http_addr {
                if config.worker_id.is_empty()
                    || config.worker_id == WorkerConfig::default().worker_id
                {
                    config.worker_id = addr.to_string().replace("0.0.0.0", "127.0.0.1");
                }
                // rest.advertised.host.name / rest.advertised.port.
                if config.advertised_host.is_some() || config.advertised_port.is_some() {
                    let host = config
                        .advertised_host
                        .clone()
                        .unwrap_or_else(|| addr.ip().to_string().replace("0.0.0.0", "127.0.0.1"));
                    let port = config.advertised_port.unwrap_or(addr.port());
                    config.worker_id = format!("{host}:{port}");
                }
            }
            let started = Instant::now();
            let worker = tokio::task::spawn_blocking(move || {
                let cluster = cluster(&config.worker_id)?;
                Worker::start(cluster, config, plugins).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| ServiceError::failed("connect", e))?
            .map_err(|e| {
                ServiceError::failed("connect", format!("cannot start the connect worker: {e}"))
            })?;
            info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                worker_id = %worker.config().worker_id,
                "connect worker started"
            );
            let api = crate::api::api(worker.clone());
            Ok(Running {
                api: Some(api),
                task: None,
                shutdown: Some(Box::new(move || {
                    Box::pin(async move {
                        tokio::task::spawn_blocking(move || worker.shutdown())
                            .await
                            .map_err(|e| ServiceError::failed("connect", e))?;
                        Ok(())
                    })
                })),
            })
        })
    }
}
