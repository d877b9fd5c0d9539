//! A `replication=database` connection speaking PostgreSQL's streaming
//! replication protocol: replication commands (`IDENTIFY_SYSTEM`,
//! `CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT`, `START_REPLICATION`) over
//! the simple query protocol, then the CopyBoth stream of XLogData (`w`)
//! and primary keepalives (`k`), answered with standby status updates
//! (`r`) that carry the flushed LSN.
//!
//! Written here rather than taken from a crate: tokio-postgres has no
//! replication mode, the protocol is small, and the connector must decide
//! exactly which LSN it confirms. Message encoding and password
//! authentication (MD5, SCRAM-SHA-256) come from `postgres-protocol`.

use crate::conn::{ConnSettings, SESSION_OPTIONS};
use crate::error::{Error, Result};
use crate::lsn::Lsn;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::frontend;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
pub(crate) const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// One message of the replication stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamMessage {
    /// WAL data: a pgoutput message starting at `start`.
    XLogData { start: Lsn, end: Lsn, data: Bytes },
    /// The server's position; answer at once when `reply` is set.
    Keepalive { wal_end: Lsn, reply: bool },
}

/// A row of a replication command's result, in text.
pub type TextRow = Vec<Option<String>>;

/// A replication connection.
pub struct ReplicationConn {
    stream: TcpStream,
    buf: BytesMut,
}

impl ReplicationConn {
    /// Connects and logs in with `replication=database`.
    pub async fn connect(settings: &ConnSettings) -> Result<ReplicationConn> {
        let stream = tokio::time::timeout(
            Duration::from_secs(10),
            TcpStream::connect((settings.host.as_str(), settings.port)),
        )
        .await
        .map_err(|_| Error::Io(std::io::Error::other("connect timed out")))??;
        stream.set_nodelay(true)?;
        let mut conn = ReplicationConn {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
        };
        let mut out = BytesMut::new();
        frontend::startup_message(
            [
                ("user", settings.user.as_str()),
                ("database", settings.dbname.as_str()),
                ("replication", "database"),
                ("options", SESSION_OPTIONS),
                ("application_name", "runnel-connect-postgres"),
            ],
            &mut out,
        )?;
        conn.write(&out).await?;
        conn.authenticate(settings).await?;
        // Parameter statuses, backend key data, then ReadyForQuery.
        loop {
            let (tag, body) = conn.read_message().await?;
            match tag {
                b'Z' => return Ok(conn),
                b'E' => return Err(server_error(&body)),
                _ => {}
            }
        }
    }

    async fn authenticate(&mut self, settings: &ConnSettings) -> Result<()> {
        let password = settings.password.clone().unwrap_or_default();
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            let (tag, mut body) = self.read_message().await?;
            match tag {
                b'E' => return Err(server_error(&body)),
                b'R' => {}
                other => {
                    return Err(Error::Protocol(format!(
                        "unexpected message {:?} during authentication",
                        other as char
                    )))
                }
            }
            if body.remaining() < 4 {
                return Err(Error::Protocol("short authentication message".into()));
            }
            let code = body.get_i32();
            let mut out = BytesMut::new();
            match code {
                0 => return Ok(()),
                3 => frontend::password_message(password.as_bytes(), &mut out)?,
                5 => {
                    if body.remaining() < 4 {
                        return Err(Error::Protocol("short MD5 salt".into()));
                    }
                    let mut salt = [0u8; 4];
                    body.copy_to_slice(&mut salt);
                    let hash = md5_hash(settings.user.as_bytes(), password.as_bytes(), salt);
                    frontend::password_message(hash.as_bytes(), &mut out)?;
                }
                10 => {
                    let mechanisms: Vec<&[u8]> =
                        body.split(|b| *b == 0).filter(|m| !m.is_empty()).collect();
                    if !mechanisms.contains(&&b"SCRAM-SHA-256"[..]) {
                        return Err(Error::Protocol("no supported SASL mechanism".into()));
                    }
                    let s = sasl::ScramSha256::new(
                        password.as_bytes(),
                        sasl::ChannelBinding::unsupported(),
                    );
                    frontend::sasl_initial_response("SCRAM-SHA-256", s.message(), &mut out)?;
                    scram = Some(s);
                }
                11 => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| Error::Protocol("SASL continue without a start".into()))?;
                    s.update(&body)?;
                    frontend::sasl_response(s.message(), &mut out)?;
                }
                12 => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| Error::Protocol("SASL final without a start".into()))?;
                    s.finish(&body)?;
                    continue;
                }
                other => {
                    return Err(Error::Protocol(format!(
                        "unsupported authentication method {other}"
                    )))
                }
            }
            self.write(&out).await?;
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads one backend message: its tag and body.
    async fn read_message(&mut self) -> Result<(u8, Bytes)> {
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
                if len < 4 {
                    return Err(Error::Protocol(format!("bad message length {len}")));
                }
                let total = 1 + len as usize;
                if self.buf.len() >= total {
                    let mut msg = self.buf.split_to(total);
                    let tag = msg[0];
                    msg.advance(5);
                    return Ok((tag, msg.freeze()));
                }
                self.buf.reserve(total - self.buf.len());
            }
            let n = self.stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the replication connection",
                )));
            }
        }
    }

    /// Runs a replication command (or plain SQL) and returns its rows.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<TextRow>> {
        tracing::debug!(sql, "replication command");
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out)?;
        self.write(&out).await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'D' => rows.push(parse_data_row(body)?),
                b'E' => error = Some(server_error(&body)),
                b'Z' => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// `START_REPLICATION SLOT … LOGICAL start (pgoutput options)`; then
    /// read with [`Self::next`].
    pub async fn start_replication(
        &mut self,
        slot: &str,
        start: Lsn,
        publication: &str,
    ) -> Result<()> {
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {} (\"proto_version\" '1', \"publication_names\" {})",
            quote_ident(slot),
            start,
            quote_literal(&quote_ident(publication))
        );
        tracing::debug!(sql, "starting replication");
        let mut out = BytesMut::new();
        frontend::query(&sql, &mut out)?;
        self.write(&out).await?;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'W' => return Ok(()),
                b'E' => {
                    let e = server_error(&body);
                    // Drain to ReadyForQuery so the error is the one reported.
                    loop {
                        let (t, _) = self.read_message().await?;
                        if t == b'Z' {
                            break;
                        }
                    }
                    return Err(e);
                }
                _ => {}
            }
        }
    }

    /// The next message of the stream, or `None` when none came within
    /// `wait`.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<StreamMessage>> {
        let read = match tokio::time::timeout(wait, self.read_message()).await {
            Ok(r) => r?,
            Err(_) => return Ok(None),
        };
        match read {
            (b'd', mut body) => {
                if body.is_empty() {
                    return Err(Error::Protocol("empty CopyData".into()));
                }
                match body.get_u8() {
                    b'w' if body.remaining() >= 24 => {
                        let start = Lsn(body.get_u64());
                        let end = Lsn(body.get_u64());
                        let _sent = body.get_i64();
                        Ok(Some(StreamMessage::XLogData {
                            start,
                            end,
                            data: body,
                        }))
                    }
                    b'k' if body.remaining() >= 17 => {
                        let wal_end = Lsn(body.get_u64());
                        let _sent = body.get_i64();
                        let reply = body.get_u8() == 1;
                        Ok(Some(StreamMessage::Keepalive { wal_end, reply }))
                    }
                    other => Err(Error::Protocol(format!(
                        "unexpected replication message {:?}",
                        other as char
                    ))),
                }
            }
            (b'E', body) => Err(server_error(&body)),
            (b'c', _) => Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server ended the replication stream",
            ))),
            // Notices and parameter changes may come at any time.
            (b'N', _) | (b'S', _) => Ok(None),
            (tag, _) => Err(Error::Protocol(format!(
                "unexpected message {:?} in the replication stream",
                tag as char
            ))),
        }
    }

    /// Sends a standby status update: `written` received, `flushed` safe to
    /// release (the slot's confirmed_flush_lsn follows it).
    pub async fn send_status(&mut self, written: Lsn, flushed: Lsn) -> Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0)
            - PG_EPOCH_OFFSET_MICROS;
        let mut payload = BytesMut::with_capacity(34);
        payload.put_u8(b'r');
        payload.put_u64(written.0);
        payload.put_u64(flushed.0);
        payload.put_u64(flushed.0);
        payload.put_i64(now);
        payload.put_u8(0);
        let mut out = BytesMut::with_capacity(40);
        out.put_u8(b'd');
        out.put_i32(4 + payload.len() as i32);
        out.put_slice(&payload);
        self.write(&out).await
    }

    /// Says goodbye (best effort).
    /// Says goodbye and waits (10 s at most) until the server closes the
    /// connection: its walsender releases the slot before closing the
    /// socket, so a task started right after finds the slot free instead
    /// of "in use".
    pub async fn close(mut self) {
        let mut out = BytesMut::new();
        frontend::terminate(&mut out);
        if self.write(&out).await.is_err() {
            return;
        }
        let drain = async {
            let mut scratch = [0u8; 8192];
            // Whatever the server still sends (the rest of a CopyData
            // stream) is dropped; 0 bytes is its end of the connection.
            while matches!(self.stream.read(&mut scratch).await, Ok(n) if n > 0) {}
        };
        if tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            tracing::warn!("the server did not close the replication connection within 10 s");
        }
    }
}

fn parse_data_row(mut body: Bytes) -> Result<TextRow> {
    if body.remaining() < 2 {
        return Err(Error::Protocol("short DataRow".into()));
    }
    let n = body.get_i16();
    let mut row = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        if body.remaining() < 4 {
            return Err(Error::Protocol("short DataRow".into()));
        }
        let len = body.get_i32();
        if len < 0 {
            row.push(None);
        } else {
            let len = len as usize;
            if body.remaining() < len {
                return Err(Error::Protocol("short DataRow".into()));
            }
            let v = body.split_to(len);
            row.push(Some(String::from_utf8_lossy(&v).into_owned()));
        }
    }
    Ok(row)
}

/// The SQLSTATE and message of an ErrorResponse.
fn server_error(body: &[u8]) -> Error {
    let mut code = String::new();
    let mut message = String::new();
    for field in body.split(|b| *b == 0) {
        if let Some((&kind, text)) = field.split_first() {
            let text = String::from_utf8_lossy(text).into_owned();
            match kind {
                b'C' => code = text,
                b'M' => message = text,
                _ => {}
            }
        }
    }
    Error::Server { code, message }
}

/// `"name"` with inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with inner quotes doubled.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
