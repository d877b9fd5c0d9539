//! Accepting connections, framing requests and writing responses.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::ResponseError;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
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
    let limits = Arc::new(Limits::new(&broker.config));
    let maintenance = tokio::spawn(maintenance_loop(broker.clone(), stop_rx.clone()));
    let group_timer = tokio::spawn(crate::group::run_timer(broker.clone(), stop_rx.clone()));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Some(slot) = limits.admit(peer.ip()) else {
                        // Over a connection cap: closed at once, as Kafka does.
                        drop(stream);
                        continue;
                    };
                    debug!(%peer, "connection accepted");
                    let broker = broker.clone();
                    let stop = stop_rx.clone();
                    let ctx = ConnectionContext::accepted(name, peer);
                    let limits = limits.clone();
                    connections.spawn(async move {
                        let b = broker.clone();
                        if let Err(err) = connection(broker, ctx, stream, stop, &limits).await {
                            debug!(%peer, %err, "connection closed");
                        }
                        // Share sessions die with their connection, as in
                        // Kafka: what they held is given back at once.
                        b.groups().share().connection_closed(peer);
                        let flushed = tokio::task::spawn_blocking(move || b.groups().share().flush()).await;
                        if !matches!(flushed, Ok(Ok(()))) {
                            warn!(%peer, "writing share-group state failed");
                        }
                        drop(slot);
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
    limits: &Limits,
) -> Result<(), BrokerError> {
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(CONNECTION_BUFFER, read);
    let mut writer = BufWriter::with_capacity(CONNECTION_BUFFER, write);
    let max = broker.config.max_request_bytes;
    // Group commit: responses waiting for an fsync (and every response after
    // them, to keep order) are held while more pipelined requests are already
    // here, then one fsync per partition covers them all.
    let mut held: Vec<BytesMut> = Vec::new();
    let mut syncs: Vec<PendingSync> = Vec::new();
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, max, limits) => frame?,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some((frame, _budget)) = frame else { break };
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

/// Read and write buffers of a connection, allocated (and touched) for
/// every connection however idle it is: 5,000 idle connections held 2.2 GiB
/// with 256 KiB buffers. Larger reads and writes (produce requests, fetch
/// responses) bypass them.
const CONNECTION_BUFFER: usize = 8 * 1024;

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

/// Connection caps and the in-flight request budget of one listener.
pub(crate) struct Limits {
    max_connections: usize,
    max_per_ip: usize,
    open: std::sync::Mutex<HashMap<IpAddr, usize>>,
    /// Bytes of request frames in flight, in KiB permits.
    budget: Arc<Semaphore>,
    budget_kib: u32,
}

impl Limits {
    pub(crate) fn new(config: &crate::BrokerConfig) -> Limits {
        // A frame as large as the broker accepts always fits alone: a
        // frame's chunks together take at most ceil(size / 1 KiB) permits.
        let bytes = config
            .queued_max_request_bytes
            .max(config.max_request_bytes)
            .max(FRAME_CHUNK);
        let budget_kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        Limits {
            max_connections: config.max_connections.max(1),
            max_per_ip: config.max_connections_per_ip.max(1),
            open: std::sync::Mutex::new(HashMap::new()),
            budget: Arc::new(Semaphore::new(budget_kib as usize)),
            budget_kib,
        }
    }

    /// `kib` KiB of the request budget, waiting for room.
    async fn take(&self, kib: usize) -> Result<OwnedSemaphorePermit, BrokerError> {
        let kib = u32::try_from(kib).unwrap_or(u32::MAX).min(self.budget_kib);
        self.budget
            .clone()
            .acquire_many_owned(kib)
            .await
            .map_err(|e| BrokerError::Io(std::io::Error::other(e)))
    }

    /// A place for a new connection from `ip`, or `None` over a cap.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<OwnedSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = open.values().sum();
        let from_ip = open.get(&ip).copied().unwrap_or(0);
        if total >= self.max_connections || from_ip >= self.max_per_ip {
            debug!(%ip, total, from_ip, "connection refused: over a connection cap");
            return None;
        }
        *open.entry(ip).or_insert(0) += 1;
        Some(OwnedSlot {
            limits: self.clone(),
            ip,
        })
    }
}

/// An admitted connection; frees its place when dropped.
pub(crate) struct OwnedSlot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for OwnedSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Reads one size-prefixed frame; `None` on a clean end of stream. The
/// buffer grows as bytes arrive and the listener's request budget is
/// taken chunk by chunk before each is read (given back when the returned
/// permit drops, after the request is handled): a length prefix alone
/// holds one 64 KiB chunk at most, whatever size it claims, and when the
/// budget is spent readers wait (TCP pushes back on their clients) instead
/// of allocating.
async fn read_frame<R: AsyncReadExt + Unpin>(
    reader: &mut R,
    max: usize,
    limits: &Limits,
) -> Result<Option<(BytesMut, Option<OwnedSemaphorePermit>)>, BrokerError> {
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
    let size = size as usize;
    let mut frame = BytesMut::with_capacity(size.min(FRAME_CHUNK));
    let mut budget: Option<OwnedSemaphorePermit> = None;
    let mut reserved = 0usize;
    while frame.len() < size {
        // Budget for the next chunk before reading it: what a frame holds
        // is what its client has sent, never what its prefix claims.
        let want = (size - frame.len()).min(FRAME_CHUNK);
        if frame.len() + want > reserved {
            let kib = (frame.len() + want - reserved).div_ceil(1024);
            let more = limits.take(kib).await?;
            match budget.as_mut() {
                Some(b) => b.merge(more),
                None => budget = Some(more),
            }
            reserved += kib * 1024;
        }
        if frame.capacity() - frame.len() < want {
            // Double, up to what is still to come.
            frame.reserve((size - frame.len()).min(frame.len().max(FRAME_CHUNK)));
        }
        let n = (&mut *reader)
            .take(want as u64)
            .read_buf(&mut frame)
            .await?;
        if n == 0 {
            return Err(BrokerError::Io(std::io::Error::from(
                std::io::ErrorKind::UnexpectedEof,
            )));
        }
    }
    Ok(Some((frame, budget)))
}

/// A frame's first allocation, and its growth step while small.
const FRAME_CHUNK: usize = 64 * 1024;

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
    let codec_version = versions::codec_version(key, version);
    let spliced = versions::spliced(key, version);
    let mut v2 = crate::splice::ShareV2::default();
    if spliced {
        let (v1, fields) = crate::splice::to_v1(key, &buf)
            .map_err(|e| BrokerError::Malformed(format!("{key:?} v{version}: {e}")))?;
        buf = Bytes::from(v1);
        v2 = fields;
    }
    crate::shape::check_request_body(api, codec_version, &buf)
        .map_err(|e| BrokerError::Malformed(format!("{key:?} v{version}: {e}")))?;
    let mut request = RequestKind::decode(key, &mut buf, codec_version)
        .map_err(|e| BrokerError::Malformed(format!("{key:?} v{version}: {e:#}")))?;
    if spliced {
        let fields = v2.to_bytes();
        match &mut request {
            RequestKind::ShareFetch(r) => {
                r.unknown_tagged_fields
                    .insert(crate::splice::V2_FIELDS, fields);
            }
            RequestKind::ShareAcknowledge(r) => {
                r.unknown_tagged_fields
                    .insert(crate::splice::V2_FIELDS, fields);
            }
            _ => {}
        }
        let response = handlers::handle(broker, ctx, &header, request, stop, syncs).await?;
        return encode_spliced(header.correlation_id, key, version, codec_version, response);
    }
    if codec_version != version {
        return handlers::hand_encoded(broker, ctx, request, version)
            .map(|body| frame_hand_encoded(header.correlation_id, key, version, &body))
            .map(Some);
    }
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

/// Encodes the answer to a [`versions::SPLICED`] request: as the codec
/// version, with what the newer version adds (ShareAcknowledge v2: the
/// lock timeout the handler left in the tagged-field map).
fn encode_spliced(
    correlation_id: i32,
    key: ApiKey,
    version: i16,
    codec_version: i16,
    response: Option<ResponseKind>,
) -> Result<Option<BytesMut>, BrokerError> {
    let Some(mut response) = response else {
        return Ok(None);
    };
    let mut lock_ms = None;
    if let ResponseKind::ShareAcknowledge(r) = &mut response {
        lock_ms = r
            .unknown_tagged_fields
            .remove(&crate::splice::V2_FIELDS)
            .and_then(|b| <[u8; 4]>::try_from(b.as_ref()).ok())
            .map(i32::from_be_bytes);
    }
    let header_version = key.response_header_version(version);
    let mut out = encode_response(correlation_id, header_version, &response, codec_version)?;
    if key == ApiKey::ShareAcknowledge {
        // Length prefix, correlation id, the (empty) tagged fields of a
        // flexible header.
        let header_len = 4 + 4 + 1;
        let mut body = out.split_off(header_len).to_vec();
        crate::splice::insert_lock_timeout(&mut body, lock_ms.unwrap_or(0))
            .map_err(BrokerError::Encode)?;
        out.extend_from_slice(&body);
        let len = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(Some(out))
}

/// Frames a response body the handler encoded itself.
fn frame_hand_encoded(correlation_id: i32, key: ApiKey, version: i16, body: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(16 + body.len());
    out.put_i32(0);
    out.put_i32(correlation_id);
    if key.response_header_version(version) >= 1 {
        out.put_u8(0); // no tagged fields
    }
    out.extend_from_slice(body);
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}

fn encode_response(
    correlation_id: i32,
    header_version: i16,
    body: &ResponseKind,
    version: i16,
) -> Result<BytesMut, BrokerError> {
    // A fetch response carries up to fetch.max.bytes of records: sized
    // once, instead of doubling its way there (which held up to twice
    // its size, plus the copies of each step).
    let body_size = match body {
        ResponseKind::Fetch(f) => f.compute_size(version).unwrap_or(0),
        _ => 0,
    };
    let mut out = BytesMut::with_capacity(128 + body_size);
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

#[cfg(test)]
mod limit_tests {
    use super::*;

    fn limits(budget: usize) -> Limits {
        Limits::new(&crate::BrokerConfig {
            max_request_bytes: budget,
            queued_max_request_bytes: budget,
            ..crate::BrokerConfig::default()
        })
    }

    /// A frame holds budget for the bytes its client sent; a reader whose
    /// next chunk does not fit waits, and goes on once room is freed.
    #[tokio::test]
    async fn frames_take_the_budget_as_their_bytes_arrive() {
        let limits = Arc::new(limits(256 * 1024));
        assert_eq!(limits.budget.available_permits(), 256);
        // A prefix alone takes nothing.
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client
            .write_all(&(256 * 1024i32).to_be_bytes())
            .await
            .unwrap();
        let l = limits.clone();
        let hog = tokio::spawn(async move {
            let mut r = server;
            read_frame(&mut r, 1 << 20, &l)
                .await
                .map(|f| f.map(|(b, _)| b.len()))
        });
        tokio::task::yield_now().await;
        // 200 KiB sent: the reader holds budget for what it has read.
        client.write_all(&vec![7u8; 200 * 1024]).await.unwrap();
        while limits.budget.available_permits() > 256 - 200 {
            tokio::task::yield_now().await;
        }
        // A second frame of 100 KiB fits only partly: its reader waits.
        let (mut c2, s2) = tokio::io::duplex(1 << 20);
        c2.write_all(&(100 * 1024i32).to_be_bytes()).await.unwrap();
        c2.write_all(&vec![1u8; 100 * 1024]).await.unwrap();
        let l = limits.clone();
        let waiting = tokio::spawn(async move {
            let mut r = s2;
            read_frame(&mut r, 1 << 20, &l)
                .await
                .map(|f| f.map(|(b, _)| b.len()))
        });
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "read beyond the budget");
        // The first frame completes and its request is done: room again.
        client.write_all(&vec![7u8; 56 * 1024]).await.unwrap();
        assert_eq!(hog.await.unwrap().unwrap(), Some(256 * 1024));
        assert_eq!(waiting.await.unwrap().unwrap(), Some(100 * 1024));
        assert_eq!(limits.budget.available_permits(), 256);
    }

    #[test]
    fn the_budget_always_fits_the_largest_frame() {
        let l = Limits::new(&crate::BrokerConfig {
            max_request_bytes: 8 << 20,
            queued_max_request_bytes: 1 << 20,
            ..crate::BrokerConfig::default()
        });
        assert_eq!(l.budget_kib, 8 * 1024);
    }
}
