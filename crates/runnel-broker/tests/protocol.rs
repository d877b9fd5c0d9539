//! Raw-socket tests of framing, versions and hostile input against an
//! in-process broker.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

mod common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::start;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn frame<R: Request>(req: &R, version: i16, correlation_id: i32) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("test")))
        .encode(&mut buf, R::header_version(version))
        .unwrap();
    req.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf
}

async fn read_response(stream: &mut TcpStream) -> Option<Bytes> {
    let size = tokio::time::timeout(Duration::from_secs(5), stream.read_i32())
        .await
        .ok()?
        .ok()?;
    let mut body = vec![0u8; size as usize];
    stream.read_exact(&mut body).await.ok()?;
    Some(Bytes::from(body))
}

async fn connection_closed(stream: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn still_serving(addr: std::net::SocketAddr) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&frame(&MetadataRequest::default().with_topics(None), 9, 7))
        .await
        .unwrap();
    let mut body = read_response(&mut s).await.expect("metadata response");
    let header =
        ResponseHeader::decode(&mut body, ApiKey::Metadata.response_header_version(9)).unwrap();
    assert_eq!(header.correlation_id, 7);
    let resp = MetadataResponse::decode(&mut body, 9).unwrap();
    assert_eq!(resp.brokers.len(), 1);
}

#[tokio::test]
async fn api_versions_v3_header_has_no_tagged_fields() {
    let r = start().await;
    let mut s = TcpStream::connect(r.addr).await.unwrap();
    s.write_all(&frame(&ApiVersionsRequest::default(), 3, 42))
        .await
        .unwrap();
    let mut body = read_response(&mut s).await.unwrap();
    // A v0 response header is exactly the correlation id.
    assert_eq!(&body[..4], &42i32.to_be_bytes());
    let _ = body.split_to(4);
    let resp = ApiVersionsResponse::decode(&mut body, 3).unwrap();
    assert_eq!(resp.error_code, 0);
    let produce = resp.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!(
        produce.min_version, 0,
        "Produce must advertise min version 0"
    );
    assert!(body.is_empty(), "trailing bytes after ApiVersions body");
}

#[tokio::test]
async fn unsupported_api_versions_version_gets_v0_error_body() {
    let r = start().await;
    let mut s = TcpStream::connect(r.addr).await.unwrap();
    // ApiVersions v9 does not exist: header v2 (flexible), empty body.
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    buf.put_i16(18);
    buf.put_i16(9);
    buf.put_i32(5);
    buf.put_i16(4);
    buf.put_slice(b"test");
    buf.put_u8(0);
    buf.put_u8(0);
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&buf).await.unwrap();
    let mut body = read_response(&mut s).await.unwrap();
    assert_eq!(&body[..4], &5i32.to_be_bytes());
    let _ = body.split_to(4);
    let resp = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(resp.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(!resp.api_keys.is_empty());
}

#[tokio::test]
async fn hostile_frames_close_only_their_connection() {
    let r = start().await;
    let cases: Vec<Vec<u8>> = vec![
        // Frame larger than max_request_bytes.
        (64 * 1024 * 1024i32).to_be_bytes().to_vec(),
        // Negative size.
        (-5i32).to_be_bytes().to_vec(),
        // Unknown api key 9999.
        [
            &10i32.to_be_bytes()[..],
            &9999i16.to_be_bytes(),
            &0i16.to_be_bytes(),
            &1i32.to_be_bytes(),
            &(-1i16).to_be_bytes(),
        ]
        .concat(),
        // Produce v2 (advertised for librdkafka, refused).
        [
            &10i32.to_be_bytes()[..],
            &0i16.to_be_bytes(),
            &2i16.to_be_bytes(),
            &1i32.to_be_bytes(),
            &(-1i16).to_be_bytes(),
        ]
        .concat(),
        // Metadata v9 with a body of garbage.
        [
            &20i32.to_be_bytes()[..],
            &3i16.to_be_bytes(),
            &9i16.to_be_bytes(),
            &1i32.to_be_bytes(),
            &[
                0u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        ]
        .concat(),
        // Too short for a header.
        [&3i32.to_be_bytes()[..], &[0u8, 1, 2]].concat(),
    ];
    for (i, bytes) in cases.iter().enumerate() {
        let mut s = TcpStream::connect(r.addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        assert!(
            connection_closed(&mut s).await,
            "case {i}: connection stayed open"
        );
        still_serving(r.addr).await;
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_and_returns() {
    let mut r = start().await;
    still_serving(r.addr).await;
    // An idle client connection is closed by the shutdown, not left hanging.
    let mut idle = TcpStream::connect(r.addr).await.unwrap();
    r.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), &mut r.task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        connection_closed(&mut idle).await,
        "idle connection left open"
    );
    // (Not re-connecting to the port: a parallel test may have bound it.)
}

async fn produce(
    s: &mut TcpStream,
    topic: &str,
    records: Bytes,
    correlation_id: i32,
) -> kafka_protocol::messages::ProduceResponse {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    s.write_all(&frame(&req, 9, correlation_id)).await.unwrap();
    let mut body = read_response(s).await.expect("produce response");
    let _ = ResponseHeader::decode(&mut body, ApiKey::Produce.response_header_version(9)).unwrap();
    ProduceResponse::decode(&mut body, 9).unwrap()
}

#[tokio::test]
async fn bad_crc_is_corrupt_message_and_nothing_is_appended() {
    let r = start().await;
    let mut s = TcpStream::connect(r.addr).await.unwrap();
    // Metadata auto-creates the topic.
    let topics = vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(
            Some(kafka_protocol::messages::TopicName(
                StrBytes::from_static_str("crc"),
            )),
        ),
    ];
    s.write_all(&frame(
        &MetadataRequest::default()
            .with_topics(Some(topics))
            .with_allow_auto_topic_creation(true),
        9,
        1,
    ))
    .await
    .unwrap();
    read_response(&mut s).await.unwrap();

    let good = runnel_log::batch::testing::simple_batch(1_000, 3, 20);
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff; // a flipped record byte breaks the CRC-32C
    let resp = produce(&mut s, "crc", Bytes::from(bad), 2).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 2, "CORRUPT_MESSAGE");

    let resp = produce(&mut s, "crc", Bytes::from(good), 3).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, 0),
        "the corrupt batch took no offsets"
    );
}
