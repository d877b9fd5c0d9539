//! No input from a socket takes the broker down: connection caps, and
//! request memory bounded by what clients actually send and by the
//! in-flight budget, not by the length prefixes they claim.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

mod common;

use std::time::Duration;

use common::{call, start_with};
use kafka_protocol::messages::ApiVersionsRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The broker still answers a request on a new connection.
async fn answers(addr: std::net::SocketAddr) {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let resp = call(&mut c, &ApiVersionsRequest::default(), 3).await;
    assert_eq!(resp.error_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_address_cap_are_closed() {
    let r = start_with(|c| c.max_connections_per_ip = 5).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut c = TcpStream::connect(r.addr).await.unwrap();
        // Each of the five is served.
        let resp = call(&mut c, &ApiVersionsRequest::default(), 3).await;
        assert_eq!(resp.error_code, 0);
        held.push(c);
    }
    // The sixth is closed without an answer.
    let mut extra = TcpStream::connect(r.addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(10), extra.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "the connection over the cap was not closed");
    // Closing one makes room again.
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = TcpStream::connect(r.addr).await.unwrap();
        let mut req = bytes::BytesMut::new();
        // A cheap probe: an ApiVersions request, answered only if admitted.
        use kafka_protocol::messages::RequestHeader;
        use kafka_protocol::protocol::{Encodable, HeaderVersion, Request, StrBytes};
        req.extend_from_slice(&[0, 0, 0, 0]);
        RequestHeader::default()
            .with_request_api_key(ApiVersionsRequest::KEY)
            .with_request_api_version(3)
            .with_correlation_id(1)
            .with_client_id(Some(StrBytes::from_static_str("probe")))
            .encode(&mut req, ApiVersionsRequest::header_version(3))
            .unwrap();
        ApiVersionsRequest::default().encode(&mut req, 3).unwrap();
        let len = (req.len() - 4) as i32;
        req[..4].copy_from_slice(&len.to_be_bytes());
        let _ = c.write_all(&req).await;
        let mut size = [0u8; 4];
        if c.read_exact(&mut size).await.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no room after a close"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// 200 clients each claim a 100 MiB frame and stall after 10 bytes: the
/// broker keeps answering others. (What such frames hold is what their
/// clients sent, within the request budget: `server::limit_tests` checks
/// that accounting deterministically. Process RSS is no measure here: it
/// is shared with the other tests of this binary running in parallel.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_huge_frames_leave_the_broker_answering() {
    let r = start_with(|c| c.max_request_bytes = 100 * 1024 * 1024).await;
    answers(r.addr).await;
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut c = TcpStream::connect(r.addr).await.unwrap();
        c.write_all(&(100 * 1024 * 1024i32).to_be_bytes())
            .await
            .unwrap();
        c.write_all(&[7u8; 10]).await.unwrap();
        held.push(c);
    }
    answers(r.addr).await;
    answers(r.addr).await;
}

/// Fetch responses are bounded by the broker's fetch.max.bytes whatever
/// the request asks, and a max_bytes of zero or less returns the first
/// batch alone (Kafka's semantics), never an unbounded read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_are_bounded_by_the_brokers_fetch_max_bytes() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let r = start_with(|c| {
        c.max_request_bytes = 4 << 20;
        c.fetch_max_bytes = 300 * 1024;
        c.topic_defaults
            .insert("max.message.bytes".into(), (2 << 20).to_string());
    })
    .await;
    let mut c = TcpStream::connect(r.addr).await.unwrap();
    let topic = TopicName(StrBytes::from_static_str("big"));
    let create = kafka_protocol::messages::CreateTopicsRequest::default()
        .with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(topic.clone())
                .with_num_partitions(1)
                .with_replication_factor(1),
        ])
        .with_timeout_ms(5_000);
    assert_eq!(call(&mut c, &create, 5).await.topics[0].error_code, 0);
    // Ten batches of ~100 KiB each.
    for i in 0..10i64 {
        let batch = runnel_log::batch::testing::simple_batch(1_000 + i, 1, 100 * 1024);
        let req = kafka_protocol::messages::ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![
                kafka_protocol::messages::produce_request::TopicProduceData::default()
                    .with_name(topic.clone())
                    .with_partition_data(vec![
                        kafka_protocol::messages::produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(bytes::Bytes::from(batch))),
                    ]),
            ]);
        let resp = call(&mut c, &req, 9).await;
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    }
    let fetch = |max_bytes: i32| {
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(max_bytes)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic.clone())
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(64 << 20)])])
    };
    let records = |resp: &kafka_protocol::messages::FetchResponse| {
        resp.responses[0].partitions[0]
            .records
            .as_ref()
            .map_or(0, |b| b.len())
    };
    // Asked for everything: capped by the broker.
    let resp = call(&mut c, &fetch(i32::MAX), 12).await;
    let n = records(&resp);
    assert!(n > 0 && n <= 300 * 1024 + 110 * 1024, "{n} bytes");
    // Zero or less: the first batch alone.
    for max in [0, -1] {
        let resp = call(&mut c, &fetch(max), 12).await;
        let n = records(&resp);
        assert!(
            (100 * 1024..110 * 1024).contains(&n),
            "max_bytes {max}: {n} bytes"
        );
    }
}
