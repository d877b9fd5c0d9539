//! A small Kafka protocol client for the admin commands, built on the
//! `kafka-protocol` codec. It talks to any Kafka-compatible broker.

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ListOffsetsRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One connection to a broker, with the version ranges it advertised.
pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
    versions: HashMap<i16, (i16, i16)>,
}

/// Largest response the client accepts.
const MAX_RESPONSE: usize = 256 * 1024 * 1024;

impl Client {
    /// Connects to the first reachable address of a comma-separated bootstrap list.
    pub async fn connect(bootstrap: &str) -> Result<Client> {
        let mut last = None;
        for addr in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    let mut client = Client {
                        stream,
                        correlation_id: 0,
                        versions: HashMap::new(),
                    };
                    let req = ApiVersionsRequest::default()
                        .with_client_software_name(StrBytes::from_static_str("runnel"))
                        .with_client_software_version(StrBytes::from_static_str(env!(
                            "CARGO_PKG_VERSION"
                        )));
                    let resp = client.send(&req, 3).await?;
                    if resp.error_code != 0 {
                        bail!(
                            "broker {addr} refused ApiVersions (error {})",
                            resp.error_code
                        );
                    }
                    client.versions = resp
                        .api_keys
                        .iter()
                        .map(|k| (k.api_key, (k.min_version, k.max_version)))
                        .collect();
                    return Ok(client);
                }
                Err(e) => last = Some(anyhow!(e).context(format!("cannot connect to {addr}"))),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("empty bootstrap address")))
    }

    /// The highest version both sides speak, capped at `ours`.
    pub fn version(&self, key: ApiKey, ours: i16) -> Result<i16> {
        let (min, max) = self
            .versions
            .get(&(key as i16))
            .copied()
            .with_context(|| format!("the broker does not support {key:?}"))?;
        let v = max.min(ours);
        if v < min {
            bail!("the broker needs {key:?} v{min}+, this client speaks up to v{ours}");
        }
        Ok(v)
    }

    /// Sends one request and waits for its response.
    pub async fn send<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response> {
        self.correlation_id += 1;
        let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown api key {}", R::KEY))?;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("runnel-cli")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, R::header_version(version))?;
        req.encode(&mut buf, version)?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&buf).await?;
        let size = self.stream.read_i32().await? as usize;
        if size > MAX_RESPONSE {
            bail!("response of {size} bytes is too large");
        }
        let mut body = vec![0u8; size];
        self.stream.read_exact(&mut body).await?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))?;
        if header.correlation_id != self.correlation_id {
            bail!(
                "response correlation id {} does not match request {}",
                header.correlation_id,
                self.correlation_id
            );
        }
        R::Response::decode(&mut body, version)
    }
}

/// A protocol string from text.
pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Turns a Kafka error code (and the broker's message, if any) into an error.
pub fn check(code: i16, message: Option<&StrBytes>, what: &str) -> Result<()> {
    if let Some(err) = code.err() {
        match message {
            Some(m) if !m.is_empty() => bail!("{what}: {err:?} ({m})"),
            _ => bail!("{what}: {err:?}"),
        }
    }
    Ok(())
}

impl Client {
    /// Offsets of `partitions` of `topic` for a ListOffsets timestamp
    /// (-2 earliest, -1 latest, or ms since the epoch); -1 where the broker
    /// has none. A partition error fails the call.
    pub async fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<BTreeMap<i32, i64>> {
        let v = self.version(ApiKey::ListOffsets, 7)?;
        let req = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(*p)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )]);
        let resp = self.send(&req, v).await?;
        let mut out = BTreeMap::new();
        for t in resp.topics {
            for p in t.partitions {
                check(
                    p.error_code,
                    None,
                    &format!("offsets of {topic}-{}", p.partition_index),
                )?;
                out.insert(p.partition_index, p.offset);
            }
        }
        Ok(out)
    }
}
