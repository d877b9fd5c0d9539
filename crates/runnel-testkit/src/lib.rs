//! Test support shared by the workspace's tests: an in-process broker serving the Kafka protocol on a loopback port from a runtime of its own, and (feature registry) a schema registry over HTTP.
//!
//! Tests of the engine, the SQL API and the Kafka backend all need "a
//! broker on a background runtime": [`TestBroker`] is that one copy. It
//! panics on set-up failures (a test cannot go on without its broker), so
//! it is for tests only.

#![allow(clippy::expect_used)] // test support: a failed set-up is the finding

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use runnel_broker::local::Local;
use runnel_broker::{Broker, BrokerConfig};

/// A broker in a temporary directory, serving `127.0.0.1:<free port>` from
/// a two-thread runtime of its own until dropped.
pub struct TestBroker {
    broker: Arc<Broker>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl TestBroker {
    /// Default settings, except what tests want: advertised as the bound
    /// loopback address, groups rebalancing without the initial delay.
    pub fn start() -> TestBroker {
        TestBroker::start_with(|_| {})
    }

    /// [`start`](Self::start) with `tweak` applied to the configuration.
    pub fn start_with(tweak: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let dir = tempfile::tempdir().expect("temporary directory");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let mut config = BrokerConfig {
            advertised_host: "127.0.0.1".into(),
            advertised_port: i32::from(addr.port()),
            ..BrokerConfig::default()
        };
        config.group.initial_rebalance_delay = Duration::ZERO;
        tweak(&mut config);
        let broker = Broker::open(dir.path(), config).expect("open the broker");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = broker.clone();
        let server = std::thread::Builder::new()
            .name("test-broker".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("broker runtime");
                rt.block_on(async move {
                    listener
                        .set_nonblocking(true)
                        .expect("non-blocking listener");
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    if let Err(e) = runnel_broker::serve(served, listener, async {
                        let _ = rx.await;
                    })
                    .await
                    {
                        tracing::error!(error = %e, "test broker stopped with an error");
                    }
                });
            })
            .expect("broker thread");
        TestBroker {
            broker,
            addr,
            stop: Some(tx),
            server: Some(server),
            dir,
        }
    }

    /// The broker itself.
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Its in-process interface.
    pub fn local(&self) -> Local {
        self.broker.local()
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` for clients.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Its data directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for TestBroker {
    /// Stops serving (the log is flushed as on a clean shutdown) and waits
    /// for the server thread.
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.join();
        }
    }
}

/// Runnel's schema registry on an in-process broker, serving Confluent's
/// REST API on a loopback port until dropped (feature `registry`).
#[cfg(feature = "registry")]
pub struct TestRegistry {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    registry: runnel_registry::Registry,
    /// The broker and directory of [`TestRegistry::start`] (none with
    /// [`TestRegistry::start_on`]).
    own: Option<(Arc<Broker>, tempfile::TempDir)>,
}

#[cfg(feature = "registry")]
impl TestRegistry {
    /// A registry on a broker of its own.
    pub fn start() -> TestRegistry {
        let dir = tempfile::tempdir().expect("temporary directory");
        let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("broker");
        let cluster = Arc::new(runnel_embed::LocalCluster::new(broker.local()));
        let mut r = TestRegistry::start_on(cluster);
        r.own = Some((broker, dir));
        r
    }

    /// A registry keeping `_schemas` on `cluster` (a test's own broker).
    pub fn start_on(cluster: Arc<dyn runnel_cluster::Cluster>) -> TestRegistry {
        let registry = runnel_registry::Registry::start(
            cluster,
            runnel_registry::RegistryConfig {
                poll: Duration::from_millis(50),
                ..Default::default()
            },
        )
        .expect("registry");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let url = format!("http://{}", listener.local_addr().expect("bound address"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let routes = runnel_registry::api::routes(registry.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("registry runtime");
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ = axum::serve(l, routes)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        TestRegistry {
            url,
            stop: Some(tx),
            thread: Some(thread),
            registry,
            own: None,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The registry itself (to stop or inspect it).
    pub fn registry(&self) -> &runnel_registry::Registry {
        &self.registry
    }

    /// The broker holding `_schemas` when the registry has its own
    /// ([`TestRegistry::start`]; tests may run applications on it).
    pub fn broker(&self) -> &Arc<Broker> {
        match &self.own {
            Some((broker, _)) => broker,
            None => panic!("TestRegistry::start_on has no broker of its own"),
        }
    }
}

#[cfg(feature = "registry")]
impl Drop for TestRegistry {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.registry.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_kafka_protocol_until_dropped() {
        let b = TestBroker::start_with(|c| c.default_partitions = 3);
        let addr = b.addr();
        assert!(std::net::TcpStream::connect(addr).is_ok());
        b.local()
            .create_topic("t", 2, Default::default())
            .expect("create");
        assert_eq!(b.local().partition_count("t"), Some(2));
        drop(b);
        assert!(std::net::TcpStream::connect(addr).is_err(), "stopped");
    }
}
