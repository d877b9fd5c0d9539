//! The registry and its API as a service of `runnel serve`.

use std::sync::Arc;
use std::time::Instant;

use runnel_cluster::Cluster;
use runnel_service::{BoxFuture, HttpListen, Running, Service, ServiceError, StartContext};
use tracing::info;

use crate::registry::{Registry, RegistryConfig};

/// The Schema Registry's port.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8081";

/// The instance id every registry process gives its cluster
/// (`KafkaCluster::with_instance_id`, `LocalCluster::with_instance_id`):
/// the writer's transactional id is the writer id plus the instance id,
/// and registries fence each other only if it is the same in all of them
/// (a `KafkaCluster` otherwise takes one per process, a `LocalCluster`
/// `local`).
pub const KAFKA_INSTANCE_ID: &str = "registry";

/// Builds the cluster when the service starts (a remote cluster is only
/// reached then).
pub type ClusterFactory = Box<dyn FnOnce() -> Result<Arc<dyn Cluster>, String> + Send>;

/// Starts the registry on a cluster (replaying `_schemas`), serves the
/// REST API, and stops following the topic after the API stopped.
pub struct RegistryService {
    cluster: ClusterFactory,
    config: RegistryConfig,
    listen: HttpListen,
}

impl RegistryService {
    /// The registry on `cluster` with its API on `listen`.
    pub fn new(cluster: Arc<dyn Cluster>, config: RegistryConfig, listen: HttpListen) -> Self {
        RegistryService {
            cluster: Box::new(move || Ok(cluster)),
            config,
            listen,
        }
    }

    /// The registry on a cluster `make` builds when the service starts.
    pub fn with_factory(make: ClusterFactory, config: RegistryConfig, listen: HttpListen) -> Self {
        RegistryService {
            cluster: make,
            config,
            listen,
        }
    }
}

impl Service for RegistryService {
    fn name(&self) -> &str {
        "schema-registry"
    }

    fn http_listen(&self) -> Option<HttpListen> {
        Some(self.listen.clone())
    }

    fn start(self: Box<Self>, _cx: StartContext) -> BoxFuture<Result<Running, ServiceError>> {
        Box::pin(async move {
            let RegistryService {
                cluster, config, ..
            } = *self;
            let started = Instant::now();
            let registry = tokio::task::spawn_blocking(move || {
                let cluster = cluster()?;
                Registry::start(cluster, config).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| ServiceError::failed("schema-registry", e))?
            .map_err(|e| {
                ServiceError::failed(
                    "schema-registry",
                    format!("cannot start the schema registry: {e}"),
                )
            })?;
            info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "schema registry started"
            );
            let api = crate::api::api(registry.clone());
            Ok(Running {
                api: Some(api),
                task: None,
                shutdown: Some(Box::new(move || {
                    Box::pin(async move {
                        tokio::task::spawn_blocking(move || registry.shutdown())
                            .await
                            .map_err(|e| ServiceError::failed("schema-registry", e))?;
                        info!("schema registry stopped");
                        Ok(())
                    })
                })),
            })
        })
    }
}
