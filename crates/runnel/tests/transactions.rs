//! Transactions with librdkafka: commit/abort visibility to read_committed
//! readers, zombie fencing, and a coordinator restart mid-transaction.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

mod common;

use std::time::{Duration, Instant};

use common::Server;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(20);

fn txn_producer(server: &Server, id: &str) -> ThreadedProducer<DefaultProducerContext> {
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .set("transactional.id", id)
        .set("transaction.timeout.ms", "10000")
        .set("linger.ms", "1")
        .create()
        .expect("transactional producer");
    p.init_transactions(T).expect("init_transactions");
    p
}

fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, values: &[String]) {
    for v in values {
        p.send(BaseRecord::<(), _>::to(topic).payload(v).partition(0))
            .expect("enqueue");
    }
    p.flush(T).expect("flush");
}

/// Values readable on partition 0 with the given isolation level.
fn read(server: &Server, topic: &str, isolation: &str, expect: usize) -> Vec<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .set("group.id", "txn-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + T;
    loop {
        assert!(
            Instant::now() < deadline,
            "read {} of {expect}: {out:?}",
            out.len()
        );
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap()),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) if out.len() >= expect => break,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    out
}

fn vals(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn committed_visible_aborted_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let p = txn_producer(&server, "t1");
    p.begin_transaction().unwrap();
    send(&p, "txn-out", &vals("a", 10));
    p.commit_transaction(T).unwrap();
    p.begin_transaction().unwrap();
    send(&p, "txn-out", &vals("x", 5));
    p.abort_transaction(T).unwrap();
    p.begin_transaction().unwrap();
    send(&p, "txn-out", &vals("b", 3));
    p.commit_transaction(T).unwrap();

    let committed = read(&server, "txn-out", "read_committed", 13);
    let mut expected = vals("a", 10);
    expected.extend(vals("b", 3));
    assert_eq!(committed, expected);
    let everything = read(&server, "txn-out", "read_uncommitted", 18);
    assert_eq!(
        everything.len(),
        18,
        "read_uncommitted sees aborted records too"
    );
}

#[test]
fn open_transaction_blocks_read_committed_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let p = txn_producer(&server, "t2");
    p.begin_transaction().unwrap();
    send(&p, "lso", &vals("pending", 4));
    let watermark = |isolation: &str| {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", server.bootstrap())
            .set("group.id", "lso-check")
            .set("isolation.level", isolation)
            .create()
            .unwrap();
        c.fetch_watermarks("lso", 0, T).unwrap().1
    };
    assert_eq!(
        watermark("read_uncommitted"),
        4,
        "the records are in the log"
    );
    assert_eq!(
        watermark("read_committed"),
        0,
        "the last stable offset stops before them"
    );
    assert!(
        read(&server, "lso", "read_committed", 0).is_empty(),
        "nothing is stable yet"
    );
    p.commit_transaction(T).unwrap();
    assert_eq!(
        read(&server, "lso", "read_committed", 4),
        vals("pending", 4)
    );
}

#[test]
fn a_new_instance_fences_the_zombie() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let zombie = txn_producer(&server, "shared-id");
    zombie.begin_transaction().unwrap();
    send(&zombie, "fence", &vals("zombie", 3));
    // A second instance takes over the transactional id: the zombie's open
    // transaction is aborted and its epoch is fenced.
    let fresh = txn_producer(&server, "shared-id");
    let err = zombie
        .commit_transaction(T)
        .expect_err("the zombie must not commit");
    assert!(
        err.to_string().to_lowercase().contains("fenced") || err.to_string().contains("epoch"),
        "{err}"
    );
    fresh.begin_transaction().unwrap();
    send(&fresh, "fence", &vals("fresh", 2));
    fresh.commit_transaction(T).unwrap();
    assert_eq!(
        read(&server, "fence", "read_committed", 2),
        vals("fresh", 2)
    );
}

#[test]
fn coordinator_restart_aborts_the_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &["--flush-messages", "1"]);
    {
        let p = txn_producer(&server, "t3");
        p.begin_transaction().unwrap();
        send(&p, "restart", &vals("done", 2));
        p.commit_transaction(T).unwrap();
        p.begin_transaction().unwrap();
        send(&p, "restart", &vals("lost", 3));
        server.kill();
    }
    server.restart();
    // The open transaction was aborted on start, so the partition is stable
    // again and its records never become visible.
    assert_eq!(
        read(&server, "restart", "read_committed", 2),
        vals("done", 2)
    );
    let p = txn_producer(&server, "t3");
    p.begin_transaction().unwrap();
    send(&p, "restart", &vals("after", 1));
    p.commit_transaction(T).unwrap();
    let mut expected = vals("done", 2);
    expected.extend(vals("after", 1));
    assert_eq!(read(&server, "restart", "read_committed", 3), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_topics_cannot_be_deleted_truncated_or_written() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .create()
        .unwrap();
    for topic in ["__consumer_offsets", "__transaction_state"] {
        let r = admin
            .delete_topics(&[topic], &AdminOptions::new())
            .await
            .unwrap();
        assert!(r[0].is_err(), "{topic} was deleted");
        let p: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", server.bootstrap())
            .set("message.timeout.ms", "5000")
            .create()
            .unwrap();
        let sent = p
            .send(
                FutureRecord::<(), _>::to(topic).payload("x").partition(0),
                T,
            )
            .await;
        assert!(sent.is_err(), "a client wrote to {topic}");
    }
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .create()
        .unwrap();
    let meta = c.fetch_metadata(None, T).unwrap();
    assert!(meta
        .topics()
        .iter()
        .any(|t| t.name() == "__transaction_state"));
}
