//! A [`Cluster`] reached over the Kafka protocol (Apache Kafka, Redpanda,
//! a remote `runnel serve`): each application gets a `runnel-streams`
//! [`KafkaBackend`], topics are administered with one [`KafkaAdmin`].
//! Applications then scale out like Kafka Streams applications: processes
//! with the same application id share its partitions through its
//! consumer group.

use std::time::Duration;

use runnel_streams::{
    Backend, BackendError, Guarantee, KafkaAdmin, KafkaBackend, KafkaBackendConfig,
};

use crate::{Cluster, NewTopic};

/// A [`Cluster`] reached over the Kafka protocol.
#[derive(Debug)]
pub struct KafkaCluster {
    bootstrap_servers: String,
    properties: Vec<(String, String)>,
    timeout: Duration,
    admin: KafkaAdmin,
    application_server: Option<String>,
    /// Distinguishes this process's instances of each application from
    /// other processes' (their transactional ids): several processes run
    /// the same applications (SQL servers sharing a command topic), and
    /// two with one transactional id would fence each other.
    instance_id: String,
}

/// An instance id no other process uses: this process's id and start time.
fn process_instance_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}-{:x}", std::process::id(), nanos)
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
            KafkaBackendConfig::new(bootstrap_servers.clone(), "runnel").with_timeout(timeout);
        admin_config.properties = properties.clone();
        let admin = KafkaAdmin::new(&admin_config)?;
        Ok(KafkaCluster {
            bootstrap_servers,
            properties,
            timeout,
            admin,
            application_server: None,
            instance_id: process_instance_id(),
        })
    }

    /// Advertises `endpoint` (`host:port` of this process's API) to the
    /// groups of the applications it runs, so other processes can send it
    /// queries for the partitions it hosts.
    pub fn with_application_server(mut self, endpoint: impl Into<String>) -> Self {
        self.application_server = Some(endpoint.into());
        self
    }

    /// Names this process's instances of the applications it runs (their
    /// transactional ids under exactly-once); unique per process unless
    /// set. A stable id lets a restarted process fence the transactions
    /// its crashed predecessor left open at once, instead of after their
    /// timeout.
    pub fn with_instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = id.into();
        self
    }

    /// The bootstrap servers this cluster was reached at.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
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
            .with_instance_id(self.instance_id.clone())
            .with_timeout(self.timeout);
        config.properties = self.properties.clone();
        config.application_server = self.application_server.clone();
        Ok(Box::new(KafkaBackend::new(config)?))
    }

    fn topics(&self) -> Result<Vec<(String, i32)>, BackendError> {
        self.admin.topics()
    }

    fn create_topic(&self, topic: &NewTopic) -> Result<(), BackendError> {
        self.admin
            .create_topic(&topic.name, topic.partitions, -1, &topic.configs)
    }

    fn delete_topic(&self, topic: &str) -> Result<(), BackendError> {
        self.admin.delete_topic(topic)
    }
}
