//! An in-process broker on a random loopback port, for protocol tests.
#![allow(dead_code)]

use std::sync::Arc;

use runnel_broker::{Broker, BrokerConfig};
use tokio::net::TcpListener;

/// A running broker; dropping it leaves the task to end with the runtime.
pub struct Running {
    pub addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts a broker with default settings (1 MiB request limit).
pub async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = BrokerConfig {
        advertised_host: "127.0.0.1".into(),
        advertised_port: addr.port() as i32,
        max_request_bytes: 1024 * 1024,
        ..BrokerConfig::default()
    };
    let broker: Arc<Broker> = Broker::open(dir.path(), config).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        runnel_broker::serve(broker, listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Running {
        addr,
        _dir: dir,
        stop: Some(tx),
        task,
    }
}
