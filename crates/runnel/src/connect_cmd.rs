//! `runnel connect`: a standalone Kafka Connect worker against any
//! Kafka-compatible cluster (the same worker `runnel serve` runs), and the
//! connector plugins the binary ships.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use runnel_cluster::{Cluster, KafkaCluster};
use runnel_connect::{ConnectService, WorkerConfig};
use runnel_connect_api::ConnectorPlugin;
use runnel_service::{HttpListen, Supervisor};

use crate::config::parse_kv;

/// The connector plugins of this binary beyond the runtime's built-in
/// ones (file source and sink, datagen), which `ConnectService` adds:
/// the PostgreSQL CDC source and the JDBC-style sink.
pub fn plugins() -> Vec<Arc<dyn ConnectorPlugin>> {
    runnel_connect_postgres::plugins()
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// The Kafka-compatible cluster (host:port[,host:port…]).
    #[arg(long, short = 'b', env = "RUNNEL_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: String,
    /// REST listener address [default: 127.0.0.1:8083].
    #[arg(long, env = "RUNNEL_CONNECT_LISTEN")]
    pub connect_listen: Option<String>,
    /// The Connect cluster's group.id [default: connect-cluster].
    #[arg(long)]
    pub group_id: Option<String>,
    /// A worker property, e.g. exactly.once.source.support=enabled (repeatable).
    #[arg(long = "connect-property", value_name = "KEY=VALUE")]
    pub connect_property: Vec<String>,
    /// A librdkafka property for every client, e.g. security.protocol=SSL (repeatable).
    #[arg(long = "kafka-property", value_name = "KEY=VALUE")]
    pub kafka_property: Vec<String>,
}

pub async fn run(
    args: ConnectArgs,
    stop: impl std::future::Future<Output = ()> + Send,
) -> Result<()> {
    let mut props: Vec<(String, String)> = args
        .connect_property
        .iter()
        .map(|kv| parse_kv(kv))
        .collect::<Result<_>>()?;
    if let Some(g) = &args.group_id {
        props.push(("group.id".into(), g.clone()));
    }
    let worker = WorkerConfig::from_properties(&props)
        .map_err(|e| anyhow::anyhow!("--connect-property: {e}"))?;
    let kafka: Vec<(String, String)> = args
        .kafka_property
        .iter()
        .map(|kv| parse_kv(kv))
        .collect::<Result<_>>()?;
    let bootstrap = args.bootstrap_servers.clone();
    let make = Box::new(move |worker_id: &str| {
        KafkaCluster::new(bootstrap.clone(), kafka)
            .map(|c| c.with_instance_id(runnel_connect::service::KAFKA_INSTANCE_ID))
            // Where the other workers of the group forward requests to it.
            .map(|c| c.with_application_server(worker_id))
            .map(|c| Arc::new(c) as Arc<dyn Cluster>)
            .map_err(|e| format!("cannot reach the cluster at {bootstrap}: {e}"))
    });
    let listen = HttpListen {
        addr: args
            .connect_listen
            .clone()
            .unwrap_or_else(|| runnel_connect::service::DEFAULT_LISTEN.to_string()),
        required: true,
    };
    let mut services = Supervisor::new();
    services.drain_timeout(Duration::from_secs(10));
    services.add(ConnectService::with_factory(
        make,
        worker,
        plugins(),
        listen,
    ));
    services
        .run(stop)
        .await
        .context("the connect worker stopped")?;
    Ok(())
}
