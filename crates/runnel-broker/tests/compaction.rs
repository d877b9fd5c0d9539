//! Log compaction through the broker: compacted topics refuse keyless
//! records, and the maintenance loop compacts `__consumer_offsets` without
//! losing a committed offset across a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::call;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use runnel_broker::{Broker, BrokerConfig};
use runnel_log::batch::build::{build_batch, TestRecord};
use runnel_log::batch::BatchIter;
use runnel_log::codec;
use tokio::net::{TcpListener, TcpStream};

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// A broker serving `dir` until `stop` fires.
struct Served {
    addr: std::net::SocketAddr,
    broker: Arc<Broker>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn serve(dir: &Path, topic_defaults: &[(&str, &str)]) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = BrokerConfig {
        advertised_host: "127.0.0.1".into(),
        advertised_port: i32::from(addr.port()),
        max_request_bytes: 1024 * 1024,
        maintenance_interval_ms: 50,
        topic_defaults: topic_defaults
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..BrokerConfig::default()
    };
    let broker = Broker::open(dir, config).expect("open broker");
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let b = broker.clone();
    let task = tokio::spawn(async move {
        runnel_broker::serve(b, listener, async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    Served {
        addr,
        broker,
        stop,
        task,
    }
}

/// Stops the server and waits until nothing else holds the broker, so the
/// log is flushed and closed before the directory is opened again.
async fn shut_down(sv: Served) {
    let _ = sv.stop.send(());
    sv.task.await.expect("server task");
    let broker = sv.broker;
    for _ in 0..500 {
        if Arc::strong_count(&broker) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("broker still referenced after shutdown");
}

async fn produce(st: &mut TcpStream, topic: &str, batch: Vec<u8>) -> (i16, i64) {
    let p = produce_response(st, topic, batch).await;
    (p.error_code, p.base_offset)
}

async fn produce_response(
    st: &mut TcpStream,
    topic: &str,
    batch: Vec<u8>,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])]);
    let mut resp = call(st, &req, 9).await;
    resp.responses.remove(0).partition_responses.remove(0)
}

fn record(key: Option<&str>, value: &str) -> TestRecord {
    TestRecord {
        timestamp_delta: 0,
        key: key.map(|k| k.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: Vec::new(),
    }
}

fn gzip_batch(key: Option<&str>) -> Vec<u8> {
    let rec = codec::OwnedRecord {
        attributes: 0,
        offset_delta: 0,
        timestamp_delta: 0,
        offset: 0,
        timestamp: 0,
        key: key.map(|k| k.as_bytes().to_vec()),
        value: Some(b"value".to_vec()),
        headers: Vec::new(),
    };
    let t = codec::BatchTemplate {
        base_offset: 0,
        partition_leader_epoch: -1,
        attributes: i16::from(codec::GZIP),
        last_offset_delta: 0,
        base_timestamp: 1_000,
        max_timestamp: 1_000,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
    codec::encode_batch(&t, &[rec]).expect("encode")
}

const INVALID_RECORD: i16 = 87;

#[tokio::test(flavor = "multi_thread")]
async fn compacted_topic_refuses_keyless_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sv = serve(dir.path(), &[]).await;
    let log = sv.broker.log();
    let compact: BTreeMap<String, String> =
        [("cleanup.policy".to_string(), "compact".to_string())].into();
    log.create_topic("kv", 1, compact).expect("create");
    log.create_topic("plain", 1, BTreeMap::new())
        .expect("create");
    let mut st = TcpStream::connect(sv.addr).await.expect("connect");

    let keyless = build_batch(1_000, &[record(Some("k"), "a"), record(None, "b")]);
    let refused = produce_response(&mut st, "kv", keyless.clone()).await;
    assert_eq!(refused.error_code, INVALID_RECORD);
    // KIP-467: the response names the record at fault, by its index.
    let errors: Vec<(i32, String)> = refused
        .record_errors
        .iter()
        .map(|e| {
            let why = e.batch_index_error_message.as_deref().unwrap_or_default();
            (e.batch_index, why.to_string())
        })
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, 1);
    assert!(errors[0].1.contains("without a key"), "{errors:?}");
    assert_eq!(
        produce(&mut st, "kv", gzip_batch(None)).await.0,
        INVALID_RECORD,
        "keys are checked inside compressed batches"
    );
    let kv = log.topic("kv").and_then(|t| t.partition(0)).expect("kv");
    assert_eq!(kv.high_watermark(), 0, "nothing appended");
    assert_eq!(produce(&mut st, "kv", gzip_batch(Some("k"))).await, (0, 0));
    let keyed = build_batch(1_000, &[record(Some("k"), "a")]);
    assert_eq!(produce(&mut st, "kv", keyed).await, (0, 1));
    // Other topics take keyless records.
    assert_eq!(produce(&mut st, "plain", keyless).await, (0, 0));
    drop(st);
    shut_down(sv).await;
}

async fn commit(st: &mut TcpStream, round: i64) {
    let partitions = (0..4)
        .map(|p| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(p)
                .with_committed_offset(round * 10 + i64::from(p))
                .with_committed_metadata(Some(s(&format!("round {round}"))))
        })
        .collect();
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partitions(partitions)]);
    let resp = call(st, &req, 8).await;
    for p in &resp.topics[0].partitions {
        assert_eq!(p.error_code, 0, "commit round {round}");
    }
}

async fn fetch_offsets(addr: std::net::SocketAddr) -> Vec<(i64, String)> {
    let mut st = TcpStream::connect(addr).await.expect("connect");
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partition_indexes(vec![0, 1, 2, 3])]));
    let resp = call(&mut st, &req, 7).await;
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.committed_offset,
                p.metadata.as_deref().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Records (batches' record counts) in every partition of a topic.
fn record_count(broker: &Broker, topic: &str) -> i64 {
    let mut n = 0;
    for p in broker.log().topic(topic).expect("topic").partitions() {
        let mut off = p.log_start_offset();
        while off < p.high_watermark() {
            let r = p.read(off, 1 << 20, true).expect("read");
            if r.bytes.is_empty() {
                break;
            }
            for h in BatchIter::new(&r.bytes, usize::MAX) {
                let h = h.expect("valid batch");
                n += i64::from(h.record_count());
                off = h.next_offset();
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_offsets_are_compacted_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let defaults = [
        ("segment.bytes", "1024"),
        ("min.cleanable.dirty.ratio", "0"),
    ];
    let sv = serve(dir.path(), &defaults).await;
    sv.broker
        .log()
        .create_topic("t", 4, BTreeMap::new())
        .expect("create");
    let mut st = TcpStream::connect(sv.addr).await.expect("connect");
    const ROUNDS: i64 = 120;
    // The maintenance loop may compact while commits go on.
    for round in 0..ROUNDS {
        commit(&mut st, round).await;
    }
    let want: Vec<(i64, String)> = (0..4)
        .map(|p| ((ROUNDS - 1) * 10 + p, format!("round {}", ROUNDS - 1)))
        .collect();
    assert_eq!(fetch_offsets(sv.addr).await, want);
    let offsets = sv
        .broker
        .log()
        .topic("__consumer_offsets")
        .and_then(|t| t.partition(0))
        .expect("offsets partition");
    assert!(offsets.segment_count() > 10);
    let written = offsets.high_watermark();
    assert_eq!(written, ROUNDS * 4);
    // Wait for the maintenance loop to compact the closed segments.
    let mut left = record_count(&sv.broker, "__consumer_offsets");
    for _ in 0..250 {
        if left < written / 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = record_count(&sv.broker, "__consumer_offsets");
    }
    assert!(left < written / 4, "{left} of {written} records left");
    assert_eq!(fetch_offsets(sv.addr).await, want);
    drop(st);
    shut_down(sv).await;

    // The offsets table is rebuilt from the compacted log.
    let sv = serve(dir.path(), &defaults).await;
    assert_eq!(fetch_offsets(sv.addr).await, want);
    assert!(record_count(&sv.broker, "__consumer_offsets") < written / 4);
    shut_down(sv).await;
}
