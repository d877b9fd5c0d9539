//! The SQL engine and its API as a service of `runnel serve`.

use std::sync::Arc;
use std::time::Instant;

use runnel_cluster::Cluster;
use runnel_service::{BoxFuture, HttpListen, Running, Service, ServiceError, StartContext};
use runnel_sql::{Engine, EngineConfig};
use tracing::info;

/// ksqlDB's port.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8088";

/// Builds the cluster once the API's advertised endpoint is known.
pub type ClusterFactory = Box<dyn FnOnce(Option<&str>) -> Result<Arc<dyn Cluster>, String> + Send>;

/// Starts the engine on a cluster (replaying its command topic), serves the
/// ksqlDB API, and shuts the engine down after the API stopped.
pub struct SqlService {
    cluster: ClusterFactory,
    config: EngineConfig,
    listen: HttpListen,
    /// Advertise an endpoint to the queries' groups (engines sharing a
    /// cluster forward pull queries there): this one, or the API's bound
    /// address when `Some(None)`.
    advertise: Option<Option<String>>,
}

impl SqlService {
    /// The engine on `cluster` with its API on `listen`.
    pub fn new(cluster: Arc<dyn Cluster>, config: EngineConfig, listen: HttpListen) -> Self {
        SqlService {
            cluster: Box::new(move |_| Ok(cluster)),
            config,
            listen,
            advertise: None,
        }
    }

    /// The engine on a cluster shared with other engines: `make` builds
    /// the cluster for the endpoint this API is reached at by them —
    /// `advertised`, or the bound address (`localhost` for a wildcard
    /// bind) — which also becomes the engine's `application_server`.
    pub fn shared(
        make: ClusterFactory,
        config: EngineConfig,
        listen: HttpListen,
        advertised: Option<String>,
    ) -> Self {
        SqlService {
            cluster: make,
            config,
            listen,
            advertise: Some(advertised),
        }
    }
}

impl Service for SqlService {
    fn name(&self) -> &str {
        "ksql"
    }

    fn http_listen(&self) -> Option<HttpListen> {
        Some(self.listen.clone())
    }

    fn start(self: Box<Self>, cx: StartContext) -> BoxFuture<Result<Running, ServiceError>> {
        Box::pin(async move {
            let SqlService {
                cluster,
                mut config,
                advertise,
                ..
            } = *self;
            if let Some(advertised) = advertise {
                let endpoint = advertised.or_else(|| {
                    cx.http_addr.map(|bound| {
                        let host = if bound.ip().is_unspecified() {
                            "localhost".to_string()
                        } else {
                            bound.ip().to_string()
                        };
                        format!("{host}:{}", bound.port())
                    })
                });
                info!(advertised = ?endpoint, "SQL engine shares its cluster with other engines");
                config.application_server = endpoint;
            }
            let cluster = cluster(config.application_server.as_deref())
                .map_err(|e| ServiceError::failed("ksql", e))?;
            let started = Instant::now();
            let engine = tokio::task::spawn_blocking(move || Engine::start(cluster, config))
                .await
                .map_err(|e| ServiceError::failed("ksql", e))?
                .map_err(|e| {
                    ServiceError::failed("ksql", format!("cannot start the SQL engine: {e}"))
                })?;
            info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "SQL engine started"
            );
            let api = crate::api(engine.clone());
            Ok(Running {
                api: Some(api),
                task: None,
                shutdown: Some(Box::new(move || {
                    Box::pin(async move {
                        tokio::task::spawn_blocking(move || engine.shutdown())
                            .await
                            .map_err(|e| ServiceError::failed("ksql", e))?;
                        info!("SQL engine stopped");
                        Ok(())
                    })
                })),
            })
        })
    }
}
