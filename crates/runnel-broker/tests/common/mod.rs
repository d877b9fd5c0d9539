//! An in-process broker on a random loopback port, for protocol tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    start_with(|_| {}).await
}

/// [`start`] with `tweak` applied to the configuration.
pub async fn start_with(tweak: impl FnOnce(&mut BrokerConfig)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = BrokerConfig {
        advertised_host: "127.0.0.1".into(),
        advertised_port: addr.port() as i32,
        max_request_bytes: 1024 * 1024,
        ..BrokerConfig::default()
    };
    tweak(&mut config);
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

/// Sends one request at `version` and decodes the response at that version.
pub async fn call<R: Request>(stream: &mut TcpStream, req: &R, version: i16) -> R::Response {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(9)
        .with_client_id(Some(StrBytes::from_static_str("proto-test")))
        .encode(&mut buf, R::header_version(version))
        .unwrap();
    req.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    stream.write_all(&buf).await.unwrap();
    let size = tokio::time::timeout(Duration::from_secs(10), stream.read_i32())
        .await
        .expect("response in time")
        .expect("response");
    let mut body = vec![0u8; size as usize];
    stream.read_exact(&mut body).await.unwrap();
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, R::Response::header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 9);
    let resp = R::Response::decode(&mut body, version)
        .unwrap_or_else(|e| panic!("api {} v{version}: {e:#}", R::KEY));
    assert!(body.is_empty(), "api {} v{version}: trailing bytes", R::KEY);
    resp
}
