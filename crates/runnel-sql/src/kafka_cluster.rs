//! The SQL engine on any Kafka-compatible cluster (Apache Kafka, Redpanda,
//! a remote `runnel serve`): each query gets a `runnel-streams`
//! [`KafkaBackend`], topics are listed and deleted with a [`KafkaAdmin`].
//! Persistent queries then scale out like Kafka Streams applications:
//! engines with the same service id share each query's partitions through
//! its consumer group.

use std::time::Duration;

use runnel_streams::{
    Backend, BackendError, Guarantee, KafkaAdmin, KafkaBackend, KafkaBackendConfig,
};

use crate::engine::Cluster;

/// A [`Cluster`] reached over the Kafka protocol.
#[derive(Debug)]
pub struct KafkaCluster {
    bootstrap_servers: String,
    properties: Vec<(String, String)>,
    timeout: Duration,
    admin: KafkaAdmin,
    application_server: Option<String>,
}

impl KafkaCluster {
    /// Connects to `bootstrap_servers` (`host:port[,host:port…]`) with extra
    /// librdkafka `properties` for every client (security settings, say).
    pub fn new(
        bootstrap_servers: impl Into<String>,
        properties: Vec<(String, String)>,
    ) -> Result<Self, BackendError> {
        let bootstrap_servers = bootstrap_servers.into();
        let timeout = Duration::from_secs(30);
        let mut admin_config =
            KafkaBackendConfig::new(bootstrap_servers.clone(), "runnel-sql").with_timeout(timeout);
        admin_config.properties = properties.clone();
        let admin = KafkaAdmin::new(&admin_config)?;
        Ok(KafkaCluster {
            bootstrap_servers,
            properties,
            timeout,
            admin,
            application_server: None,
        })
    }

    /// Advertises `endpoint` (`host:port` of this engine's API) to the
    /// groups of the queries it runs, so other engines can send it pull
    /// queries for the partitions it hosts.
    pub fn with_application_server(mut self, endpoint: impl Into<String>) -> Self {
        self.application_server = Some(endpoint.into());
        self
    }
}

impl Cluster for KafkaCluster {
    fn backend(
        &self,
        app_id: &str,
        guarantee: Guarantee,
    ) -> Result<Box<dyn Backend>, BackendError> {
        let mut config = KafkaBackendConfig::new(self.bootstrap_servers.clone(), app_id)
            .with_guarantee(guarantee)
            .with_timeout(self.timeout);
        config.properties = self.properties.clone();
        config.application_server = self.application_server.clone();
        Ok(Box::new(KafkaBackend::new(config)?))
    }

    fn topics(&self) -> Result<Vec<(String, i32)>, BackendError> {
        self.admin.topics()
    }

    fn delete_topic(&self, topic: &str) -> Result<(), BackendError> {
        self.admin.delete_topic(topic)
    }
}
