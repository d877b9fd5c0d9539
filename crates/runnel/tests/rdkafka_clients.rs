//! The real server driven by librdkafka through the `rdkafka` crate.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::Server;
use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(20);

fn producer(server: &Server, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", server.bootstrap())
        .set("linger.ms", "1")
        .set("message.timeout.ms", "20000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

fn consumer(server: &Server) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .set("group.id", "rdkafka-test")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer")
}

fn admin(server: &Server) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .create()
        .expect("admin")
}

/// Reads `n` records from the given partitions starting at `offset`.
fn read(
    server: &Server,
    topic: &str,
    partitions: &[i32],
    offset: Offset,
    n: usize,
) -> Vec<rdkafka::message::OwnedMessage> {
    let c = consumer(server);
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, offset).unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while out.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} records read",
            out.len()
        );
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    out
}

async fn create_topic(server: &Server, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = admin(server)
        .create_topics(&[t], &AdminOptions::new())
        .await
        .unwrap();
    assert!(res[0].is_ok(), "create {name}: {:?}", res[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_headers_timestamps_round_trip_over_many_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    create_topic(&server, "events", 8, &[]).await;
    let p = producer(&server, &[("acks", "all")]);
    let base_ts = 1_700_000_000_000i64;
    for i in 0..400i64 {
        let key = format!("key-{}", i % 37);
        let value = format!("value-{i}");
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "seq",
                value: Some(i.to_string().as_bytes()),
            })
            .insert(Header {
                key: "empty",
                value: None::<&[u8]>,
            });
        let rec = FutureRecord::to("events")
            .key(&key)
            .payload(&value)
            .timestamp(base_ts + i)
            .headers(headers);
        p.send(rec, TIMEOUT).await.expect("delivered");
    }
    let msgs = read(
        &server,
        "events",
        &(0..8).collect::<Vec<_>>(),
        Offset::Beginning,
        400,
    );
    assert_eq!(msgs.len(), 400);
    let mut per_key_partition: HashMap<String, i32> = HashMap::new();
    let mut last_seq_per_partition: HashMap<i32, i64> = HashMap::new();
    for m in &msgs {
        let value = std::str::from_utf8(m.payload().unwrap()).unwrap();
        let i: i64 = value.trim_start_matches("value-").parse().unwrap();
        let key = std::str::from_utf8(m.key().unwrap()).unwrap();
        assert_eq!(key, format!("key-{}", i % 37));
        assert_eq!(m.timestamp().to_millis(), Some(base_ts + i));
        let h = m.headers().expect("headers");
        assert_eq!(h.count(), 2);
        assert_eq!(h.get(0).key, "seq");
        assert_eq!(h.get(0).value, Some(i.to_string().as_bytes()));
        assert_eq!(h.get(1).key, "empty");
        assert_eq!(h.get(1).value, None);
        // One key always lands in one partition, and order holds within it.
        let part = *per_key_partition
            .entry(key.to_string())
            .or_insert(m.partition());
        assert_eq!(part, m.partition());
        let last = last_seq_per_partition
            .insert(m.partition(), i)
            .unwrap_or(-1);
        assert!(i > last, "partition {} out of order", m.partition());
    }
    assert!(
        last_seq_per_partition.len() > 1,
        "keys spread over partitions"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_compression_codec_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        let p = producer(
            &server,
            &[("compression.codec", codec), ("linger.ms", "20")],
        );
        let futures: Vec<_> = (0..200)
            .map(|i| {
                let v = format!("{codec} record {i} {}", "x".repeat(100));
                p.send_result(FutureRecord::<(), _>::to(&topic).payload(&v))
                    .unwrap()
            })
            .collect();
        for f in futures {
            f.await.unwrap().expect("delivered");
        }
        let msgs = read(&server, &topic, &[0], Offset::Beginning, 200);
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(m.offset(), i as i64);
            let expect = format!("{codec} record {i} {}", "x".repeat(100));
            assert_eq!(m.payload(), Some(expect.as_bytes()), "{codec}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn seek_to_offset_tail_and_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let p = producer(&server, &[("linger.ms", "0")]);
    for i in 0..100i64 {
        let v = format!("v{i}");
        p.send(
            FutureRecord::<(), _>::to("seek")
                .payload(&v)
                .timestamp(1_000_000 + i * 10),
            TIMEOUT,
        )
        .await
        .expect("delivered");
    }
    let from_42 = read(&server, "seek", &[0], Offset::Offset(42), 5);
    assert_eq!(from_42[0].offset(), 42);
    assert_eq!(from_42[0].payload(), Some(&b"v42"[..]));
    let tail = read(&server, "seek", &[0], Offset::OffsetTail(3), 3);
    assert_eq!(
        tail.iter().map(|m| m.offset()).collect::<Vec<_>>(),
        vec![97, 98, 99]
    );

    let c = consumer(&server);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("seek", 0, Offset::Offset(1_000_000 + 555))
        .unwrap();
    let found = c.offsets_for_times(tpl, TIMEOUT).unwrap();
    assert_eq!(found.elements()[0].offset(), Offset::Offset(56));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("seek", 0, Offset::Offset(9_000_000))
        .unwrap();
    let none = c.offsets_for_times(tpl, TIMEOUT).unwrap();
    assert_eq!(none.elements()[0].offset(), Offset::End);
    let (low, high) = c.fetch_watermarks("seek", 0, TIMEOUT).unwrap();
    assert_eq!((low, high), (0, 100));
}

#[tokio::test(flavor = "multi_thread")]
async fn topic_admin_create_describe_partitions_delete() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    create_topic(
        &server,
        "admin-t",
        3,
        &[("retention.ms", "3600000"), ("cleanup.policy", "delete")],
    )
    .await;
    let a = admin(&server);
    let opts = AdminOptions::new();
    let dup = a
        .create_topics(
            &[NewTopic::new("admin-t", 1, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(
        dup[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::TopicAlreadyExists
    );
    let bad_rf = a
        .create_topics(
            &[NewTopic::new("rf3", 1, TopicReplication::Fixed(3))],
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(
        bad_rf[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidReplicationFactor
    );
    let bad_cfg = a
        .create_topics(
            &[NewTopic::new("badcfg", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon")],
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(
        bad_cfg[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidConfig
    );

    let configs = a
        .describe_configs(&[ResourceSpecifier::Topic("admin-t")], &opts)
        .await
        .unwrap();
    let res = configs[0].as_ref().unwrap();
    let retention = res.get("retention.ms").expect("retention.ms listed");
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert!(!retention.is_default);
    assert!(
        res.get("segment.bytes")
            .expect("segment.bytes listed")
            .is_default
    );

    let grown = a
        .create_partitions(&[NewPartitions::new("admin-t", 5)], &opts)
        .await
        .unwrap();
    assert!(grown[0].is_ok());
    let shrink = a
        .create_partitions(&[NewPartitions::new("admin-t", 2)], &opts)
        .await
        .unwrap();
    assert_eq!(
        shrink[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidPartitions
    );
    let meta = consumer(&server)
        .fetch_metadata(Some("admin-t"), TIMEOUT)
        .unwrap();
    assert_eq!(meta.topics()[0].partitions().len(), 5);

    let deleted = a.delete_topics(&["admin-t"], &opts).await.unwrap();
    assert!(deleted[0].is_ok());
    let again = a.delete_topics(&["admin-t"], &opts).await.unwrap();
    assert_eq!(
        again[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::UnknownTopicOrPartition
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_batch_is_rejected_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    create_topic(&server, "small", 1, &[("max.message.bytes", "2000")]).await;
    // The client's own limit is higher, so the broker must refuse it.
    let p = producer(
        &server,
        &[("message.max.bytes", "100000"), ("linger.ms", "0")],
    );
    let big = vec![b'x'; 10_000];
    let err = p
        .send(FutureRecord::<(), _>::to("small").payload(&big), TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(
        err.0,
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)
    );
    p.send(FutureRecord::<(), _>::to("small").payload("fits"), TIMEOUT)
        .await
        .expect("small record accepted");
    let msgs = read(&server, "small", &[0], Offset::Beginning, 1);
    assert_eq!(msgs[0].payload(), Some(&b"fits"[..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn data_survives_clean_restart_and_sigterm_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]);
    create_topic(&server, "durable", 2, &[("retention.ms", "86400000")]).await;
    let p = producer(&server, &[]);
    for i in 0..50 {
        let v = format!("r{i}");
        p.send(FutureRecord::to("durable").key("k").payload(&v), TIMEOUT)
            .await
            .unwrap();
    }
    drop(p);
    assert_eq!(server.terminate(), Some(0));
    server.restart();
    let partition = {
        let meta = consumer(&server)
            .fetch_metadata(Some("durable"), TIMEOUT)
            .unwrap();
        assert_eq!(meta.topics()[0].partitions().len(), 2);
        let c = consumer(&server);
        (0..2)
            .find(|p| c.fetch_watermarks("durable", *p, TIMEOUT).unwrap().1 == 50)
            .expect("partition with 50 records")
    };
    let msgs = read(&server, "durable", &[partition], Offset::Beginning, 50);
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.payload(), Some(format!("r{i}").as_bytes()));
    }
    let configs = admin(&server)
        .describe_configs(&[ResourceSpecifier::Topic("durable")], &AdminOptions::new())
        .await
        .unwrap();
    assert_eq!(
        configs[0]
            .as_ref()
            .unwrap()
            .get("retention.ms")
            .unwrap()
            .value
            .as_deref(),
        Some("86400000")
    );
}
