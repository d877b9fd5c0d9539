//! Accepting connections, framing requests and writing responses.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::ResponseError;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::context::{ConnectionContext, DEFAULT_LISTENER};
use crate::error::BrokerError;
use crate::handlers::PendingSync;
use crate::{handlers, versions, Broker};

/// How long shutdown waits for open connections to finish their request.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves Kafka clients on `listener` until `shutdown` completes, then stops
/// accepting, lets in-flight requests finish, flushes the log and returns.
/// The listener is named [`DEFAULT_LISTENER`] in connection contexts.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BrokerError> {
    serve_listener(broker, DEFAULT_LISTENER, listener, shutdown).await
}

/// [`serve`] with the listener's name, which every request handler sees in
/// its [`ConnectionContext`].
pub async fn serve_listener(
    broker: Arc<Broker>,
    name: &str,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BrokerError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let maintenance = tokio::spawn(maintenance_loop(broker.clone(), stop_rx.clone()));
    let group_timer = tokio::spawn(crate::group::run_timer(broker.clone(), stop_rx.clone()));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    debug!(%peer, "connection accepted");
                    let broker = broker.clone();
                    let stop = stop_rx.clone();
                    let ctx = ConnectionContext::accepted(name, peer);
                    connections.spawn(async move {
                        if let Err(err) = connection(broker, ctx, stream, stop).await {
                            debug!(%peer, %err, "connection closed");
                        }
                    });
                }
                Err(err) => {
                    warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    info!(
        "shutting down: no new connections, draining {} open ones",
        connections.len()
    );
    let _ = stop_tx.send(true);
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            "connections still open after {:?}; closing them",
            DRAIN_TIMEOUT
        );
        connections.abort_all();
    }
    maintenance.abort();
    group_timer.abort();
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.snapshot_producers())
        .await
        .map_err(|e| BrokerError::Io(std::io::Error::other(e)))??;
    let log = broker.log.clone();
    tokio::task::spawn_blocking(move || log.flush_all())
        .await
        .map_err(|e| BrokerError::Io(std::io::Error::other(e)))??;
    info!("log flushed; broker stopped");
    Ok(())
}

async fn maintenance_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_millis(broker.config.maintenance_interval_ms.max(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let b = broker.clone();
        let aborted =
            tokio::task::spawn_blocking(move || b.txn.abort_expired(crate::now_ms(), b.txn_deps()))
                .await;
        if matches!(aborted, Ok(n) if n > 0) {
            broker.notify_appended();
        }
        let b = broker.clone();
        match tokio::task::spawn_blocking(move || b.snapshot_producers()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => warn!(%err, "producer state snapshot failed"),
            Err(err) => warn!(%err, "producer state snapshot task failed"),
        }
        let log = broker.log.clone();
        match tokio::task::spawn_blocking(move || log.maintenance(crate::now_ms())).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => warn!(%err, "log maintenance failed"),
            Err(err) => warn!(%err, "log maintenance task failed"),
        }
        // Compaction of `compact` / `compact,delete` topics, bounded by each
        // partition's last stable offset (retention ran just above).
        let b = broker.clone();
        match tokio::task::spawn_blocking(move || b.compact_logs(crate::now_ms())).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => warn!(%err, "log compaction failed"),
            Err(err) => warn!(%err, "log compaction task failed"),
        }
    }
}

async fn connection(
    broker: Arc<Broker>,
    ctx: ConnectionContext,
    stream: TcpStream,
    mut stop: watch::Receiver<bool>,
) -> Result<(), BrokerError> {
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(256 * 1024, read);
    let mut writer = BufWriter::with_capacity(256 * 1024, write);
    let max = broker.config.max_request_bytes;
    // Group commit: responses waiting for an fsync (and every response after
    // them, to keep order) are held while more pipelined requests are already
    // here, then one fsync per partition covers them all.
    let mut held: Vec<BytesMut> = Vec::new();
    let mut syncs: Vec<PendingSync> = Vec::new();
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, max) => frame?,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(frame) = frame else { break };
        let response = handle_frame(&broker, &ctx, frame, &stop, &mut syncs).await?;
        if let Some(response) = response {
            if syncs.is_empty() && held.is_empty() {
                writer.write_all(&response).await?;
            } else {
                held.push(response);
            }
        }
        if !reader.buffer().is_empty() && held.len() < MAX_HELD {
            continue;
        }
        if !syncs.is_empty() && held.len() < MAX_HELD && more_pending(&mut reader).await {
            continue;
        }
        complete_syncs(&mut syncs).await?;
        for response in held.drain(..) {
            writer.write_all(&response).await?;
        }
        writer.flush().await?;
    }
    // Whatever was appended must be durable before its response goes out.
    complete_syncs(&mut syncs).await?;
    for response in held.drain(..) {
        writer.write_all(&response).await?;
    }
    writer.flush().await?;
    Ok(())
}

/// Most responses held back for one group commit.
const MAX_HELD: usize = 64;

/// True when another request has already arrived (without waiting for one).
async fn more_pending<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> bool {
    use tokio::io::AsyncBufReadExt;
    matches!(
        tokio::time::timeout(Duration::ZERO, reader.fill_buf()).await,
        Ok(Ok(buf)) if !buf.is_empty()
    )
}

/// fsyncs each partition once up to the highest offset any held response
/// needs. On failure the connection closes without acknowledging anything
/// that may be lost; the partition refuses further appends.
async fn complete_syncs(syncs: &mut Vec<PendingSync>) -> Result<(), BrokerError> {
    if syncs.is_empty() {
        return Ok(());
    }
    let mut needed: Vec<PendingSync> = Vec::with_capacity(syncs.len());
    for s in syncs.drain(..) {
        match needed
            .iter_mut()
            .find(|n| Arc::ptr_eq(&n.partition, &s.partition))
        {
            Some(n) => n.offset = n.offset.max(s.offset),
            None => needed.push(s),
        }
    }
    tokio::task::spawn_blocking(move || {
        let now = crate::now_ms();
        needed
            .iter()
            .try_for_each(|n| n.partition.sync_to(n.offset, now))
    })
    .await
    .map_err(|e| BrokerError::Io(std::io::Error::other(e)))??;
    Ok(())
}

/// Reads one size-prefixed frame; `None` on a clean end of stream.
async fn read_frame<R: AsyncReadExt + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<BytesMut>, BrokerError> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(len);
    if size < 0 || size as usize > max {
        return Err(BrokerError::FrameTooLarge {
            size: size as i64,
            max,
        });
    }
    let mut frame = BytesMut::zeroed(size as usize);
    reader.read_exact(&mut frame).await?;
    Ok(Some(frame))
}

/// Decodes one request, runs it and encodes the response (none for acks=0
/// produce). An error means the connection must be closed.
pub(crate) async fn handle_frame(
    broker: &Arc<Broker>,
    ctx: &ConnectionContext,
    frame: BytesMut,
    stop: &watch::Receiver<bool>,
    syncs: &mut Vec<PendingSync>,
) -> Result<Option<BytesMut>, BrokerError> {
    let mut buf: Bytes = frame.freeze();
    if buf.len() < 8 {
        return Err(BrokerError::Malformed(format!(
            "request of {} bytes is shorter than a header",
            buf.len()
        )));
    }
    let api = i16::from_be_bytes([buf[0], buf[1]]);
    let version = i16::from_be_bytes([buf[2], buf[3]]);
    let key = ApiKey::try_from(api).map_err(|_| BrokerError::UnknownApi(api))?;
    if key == ApiKey::ApiVersions && !versions::accepted(key, version) {
        // Answer with a v0 body listing what we support so the client can retry.
        let correlation_id = i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let body = handlers::api_versions_body(ResponseError::UnsupportedVersion.code());
        return encode_response(correlation_id, 0, &ResponseKind::ApiVersions(body), 0).map(Some);
    }
    if !versions::accepted(key, version) {
        return Err(BrokerError::UnsupportedVersion { api, version });
    }
    let header = RequestHeader::decode(&mut buf, key.request_header_version(version))
        .map_err(|e| BrokerError::Malformed(format!("{key:?} v{version} header: {e:#}")))?;
    // The codec sizes arrays from wire counts before reading them; refuse
    // bodies whose counts and lengths are not backed by bytes in the frame.
    crate::shape::check_request_body(api, version, &buf)
        .map_err(|e| BrokerError::Malformed(format!("{key:?} v{version}: {e}")))?;
    let request = RequestKind::decode(key, &mut buf, version)
        .map_err(|e| BrokerError::Malformed(format!("{key:?} v{version}: {e:#}")))?;
    let response = handlers::handle(broker, ctx, &header, request, stop, syncs).await?;
    match response {
        None => Ok(None),
        Some(resp) => encode_response(
            header.correlation_id,
            key.response_header_version(version),
            &resp,
            version,
        )
        .map(Some),
    }
}

fn encode_response(
    correlation_id: i32,
    header_version: i16,
    body: &ResponseKind,
    version: i16,
) -> Result<BytesMut, BrokerError> {
    let mut out = BytesMut::with_capacity(128);
    out.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, header_version)
        .map_err(|e| BrokerError::Encode(format!("{e:#}")))?;
    body.encode(&mut out, version)
        .map_err(|e| BrokerError::Encode(format!("{e:#}")))?;
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}
