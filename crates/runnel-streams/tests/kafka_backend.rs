//! The Kafka-protocol backend against Runnel's own broker, started in-process
//! on a loopback port; everything is checked through the `Backend` trait.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise
#![cfg(feature = "kafka")]

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use runnel_streams::backend::{
    Backend, BackendError, ConsumedRecord, Guarantee, PollEvent, ProducedRecord, TopicPartition,
};
use runnel_streams::kafka::{KafkaBackend, KafkaBackendConfig};

/// Bound of every wait in these tests.
const T: Duration = Duration::from_secs(20);

/// A broker serving on a loopback port from its own runtime.
struct TestBroker(runnel_testkit::TestBroker);

impl TestBroker {
    fn start() -> TestBroker {
        init_tracing();
        TestBroker(runnel_testkit::TestBroker::start())
    }

    fn bootstrap(&self) -> String {
        self.0.bootstrap()
    }

    /// Backend settings with timings suited to tests.
    fn config(&self, app: &str) -> KafkaBackendConfig {
        KafkaBackendConfig::new(self.bootstrap(), app)
            .with_timeout(T)
            .with_property("heartbeat.interval.ms", "100")
            .with_property("session.timeout.ms", "6000")
            .with_property("fetch.wait.max.ms", "100")
            .with_property("linger.ms", "1")
    }

    fn backend(&self, app: &str) -> KafkaBackend {
        KafkaBackend::new(self.config(app)).expect("backend")
    }

    fn eos_backend(&self, app: &str, instance: &str) -> KafkaBackend {
        KafkaBackend::new(
            self.config(app)
                .with_guarantee(Guarantee::ExactlyOnce)
                .with_instance_id(instance),
        )
        .expect("exactly-once backend")
    }

    /// Waits until the log of `topic`-`partition` holds `offset`
    /// (read_uncommitted high watermark): records of an open transaction
    /// are only in the log once the producer has sent them, and an abort
    /// discards records it has not sent yet.
    fn wait_for_log_end(&self, topic: &str, partition: i32, offset: i64) {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("isolation.level", "read_uncommitted")
            .create()
            .expect("watermark consumer");
        let deadline = Instant::now() + T;
        while c
            .fetch_watermarks(topic, partition, T)
            .expect("watermarks")
            .1
            < offset
        {
            assert!(
                Instant::now() < deadline,
                "{topic}-{partition} never reached {offset}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn rec(topic: &str, partition: i32, value: &str) -> ProducedRecord {
    ProducedRecord {
        topic: topic.into(),
        partition,
        timestamp: -1,
        key: None,
        value: Some(value.as_bytes().to_vec()),
        headers: Vec::new(),
    }
}

fn recs(topic: &str, partition: i32, values: &[&str]) -> Vec<ProducedRecord> {
    values.iter().map(|v| rec(topic, partition, v)).collect()
}

fn value(r: &ConsumedRecord) -> String {
    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
}

fn records(events: &[PollEvent]) -> Vec<&ConsumedRecord> {
    events
        .iter()
        .flat_map(|e| match e {
            PollEvent::Records(rs) => rs.iter().collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// Polls until `done` holds for everything polled so far.
fn poll_until(
    b: &mut KafkaBackend,
    what: &str,
    mut done: impl FnMut(&[PollEvent]) -> bool,
) -> Vec<PollEvent> {
    let deadline = Instant::now() + T;
    let mut events = Vec::new();
    while !done(&events) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; got {events:?}"
        );
        events.extend(b.poll(Duration::from_millis(200)).expect("poll"));
    }
    events
}

/// Every committed value of `tp` through `read_partition`, and the end.
fn read_all(b: &mut KafkaBackend, tp: &TopicPartition, from: i64) -> (Vec<String>, i64) {
    let mut got = Vec::new();
    let end = b
        .read_partition(tp, from, &mut |r| {
            assert_eq!(
                (r.topic.as_str(), r.partition),
                (tp.topic.as_str(), tp.partition)
            );
            got.push(value(&r));
        })
        .expect("read_partition");
    (got, end)
}

#[test]
fn create_topic_is_idempotent_and_partition_count_sees_it() {
    let broker = TestBroker::start();
    let mut b = broker.backend("topics-app");
    assert_eq!(b.partition_count("changelog").unwrap(), None);
    let configs = vec![("cleanup.policy".to_string(), "compact".to_string())];
    b.create_topic("changelog", 3, &configs).unwrap();
    b.create_topic("changelog", 3, &configs).unwrap();
    assert_eq!(b.partition_count("changelog").unwrap(), Some(3));
    assert_eq!(b.partition_count("missing").unwrap(), None);
    assert_eq!(
        b.partition_count("missing").unwrap(),
        None,
        "asking for a topic does not create it"
    );
    assert!(matches!(
        b.create_topic("bad", 0, &[]),
        Err(BackendError::Fatal(_))
    ));
}

#[test]
fn subscribed_records_come_back_in_order_with_every_field() {
    let broker = TestBroker::start();
    let mut b = broker.backend("roundtrip-app");
    b.create_topic("in", 2, &[]).unwrap();
    let mut sent = Vec::new();
    for p in 0..2 {
        for i in 0..5i64 {
            sent.push(ProducedRecord {
                topic: "in".into(),
                partition: p,
                timestamp: 1_700_000_000_000 + i,
                key: Some(format!("k{p}-{i}").into_bytes()),
                value: Some(format!("v{p}-{i}").into_bytes()),
                headers: vec![
                    ("seq".into(), Some(vec![i as u8])),
                    ("none".into(), None),
                    ("empty".into(), Some(Vec::new())),
                ],
            });
        }
    }
    // A tombstone without key, value or headers.
    sent.push(ProducedRecord {
        topic: "in".into(),
        partition: 1,
        timestamp: 1_700_000_000_100,
        key: None,
        value: None,
        headers: Vec::new(),
    });
    b.send(sent.clone()).unwrap();
    b.commit(&[]).unwrap();

    b.subscribe(&["in".to_string()]).unwrap();
    let events = poll_until(&mut b, "assignment and 11 records", |ev| {
        records(ev).len() >= 11
    });
    assert_eq!(
        events[0],
        PollEvent::Assigned(vec![tp("in", 0), tp("in", 1)]),
        "the assignment comes first"
    );
    let got = records(&events);
    assert_eq!(got.len(), 11);
    for p in 0..2 {
        let mine: Vec<&&ConsumedRecord> = got.iter().filter(|r| r.partition == p).collect();
        let expected: Vec<&ProducedRecord> = sent.iter().filter(|r| r.partition == p).collect();
        assert_eq!(mine.len(), expected.len());
        for (i, (r, e)) in mine.iter().zip(expected).enumerate() {
            assert_eq!(r.topic, "in");
            assert_eq!(r.offset, i as i64, "partition {p} in offset order");
            assert_eq!(r.key, e.key);
            assert_eq!(r.value, e.value);
            assert_eq!(r.timestamp, e.timestamp);
            assert_eq!(r.headers, e.headers);
        }
    }
    // Nothing else arrives.
    let more = b.poll(Duration::from_millis(300)).unwrap();
    assert!(records(&more).is_empty(), "{more:?}");
}

#[test]
fn committed_offsets_survive_a_new_instance_which_resumes_after_them() {
    let broker = TestBroker::start();
    let mut setup = broker.backend("setup");
    setup.create_topic("src", 2, &[]).unwrap();
    let values: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    setup.send(recs("src", 0, &refs)).unwrap();
    setup.commit(&[]).unwrap();

    {
        let mut first = broker.backend("resume-app");
        first.subscribe(&["src".to_string()]).unwrap();
        poll_until(&mut first, "10 records", |ev| records(ev).len() >= 10);
        first.commit(&[(tp("src", 0), 6)]).unwrap();
        assert_eq!(
            first.committed(&[tp("src", 0), tp("src", 1)]).unwrap(),
            vec![Some(6), None]
        );
    }

    let mut second = broker.backend("resume-app");
    assert_eq!(
        second.committed(&[tp("src", 0), tp("src", 1)]).unwrap(),
        vec![Some(6), None],
        "a new instance sees the group's offsets"
    );
    second.subscribe(&["src".to_string()]).unwrap();
    let events = poll_until(&mut second, "records 6..10", |ev| records(ev).len() >= 4);
    let offsets: Vec<i64> = records(&events).iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![6, 7, 8, 9]);

    // Seeking an assigned partition rewinds it.
    second.seek(&tp("src", 0), 2).unwrap();
    let events = poll_until(&mut second, "records 2..10", |ev| records(ev).len() >= 8);
    let offsets: Vec<i64> = records(&events).iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (2..10).collect::<Vec<i64>>());
    assert!(matches!(
        second.seek(&tp("elsewhere", 0), 0),
        Err(BackendError::Fatal(_))
    ));
}

#[test]
fn a_second_member_revokes_then_splits_the_assignment() {
    let broker = TestBroker::start();
    let mut a = broker.backend("rebalance-app");
    a.create_topic("rb", 2, &[]).unwrap();
    a.subscribe(&["rb".to_string()]).unwrap();
    let events = poll_until(&mut a, "the first assignment", |ev| !ev.is_empty());
    assert_eq!(
        events,
        vec![PollEvent::Assigned(vec![tp("rb", 0), tp("rb", 1)])]
    );

    let mut b = broker.backend("rebalance-app");
    b.subscribe(&["rb".to_string()]).unwrap();
    let deadline = Instant::now() + T;
    let (mut a_events, mut b_events) = (Vec::new(), Vec::new());
    loop {
        a_events.extend(a.poll(Duration::from_millis(50)).unwrap());
        b_events.extend(b.poll(Duration::from_millis(50)).unwrap());
        let a_done = a_events.len() >= 2;
        let b_done = !b_events.is_empty();
        if a_done && b_done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rebalance: a {a_events:?} b {b_events:?}"
        );
    }
    assert_eq!(
        a_events[0],
        PollEvent::Revoked(vec![tp("rb", 0), tp("rb", 1)]),
        "eager: everything is revoked first"
    );
    let (PollEvent::Assigned(mine), PollEvent::Assigned(theirs)) = (&a_events[1], &b_events[0])
    else {
        panic!("expected assignments: a {a_events:?} b {b_events:?}");
    };
    assert_eq!(mine.len(), 1);
    assert_eq!(theirs.len(), 1);
    assert_ne!(mine, theirs);
}

#[test]
fn seek_right_after_the_assignment_overrides_the_committed_offset() {
    let broker = TestBroker::start();
    let mut setup = broker.backend("seek-app");
    setup.create_topic("s", 1, &[]).unwrap();
    let values: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    setup.send(recs("s", 0, &refs)).unwrap();
    setup.commit(&[(tp("s", 0), 8)]).unwrap();
    drop(setup);

    let mut b = broker.backend("seek-app");
    b.subscribe(&["s".to_string()]).unwrap();
    let events = poll_until(&mut b, "the assignment", |ev| !ev.is_empty());
    assert_eq!(events[0], PollEvent::Assigned(vec![tp("s", 0)]));
    // The partition may still be fetching its committed offset: seek waits.
    b.seek(&tp("s", 0), 3).unwrap();
    let events = poll_until(&mut b, "records from 3", |ev| {
        records(ev).last().is_some_and(|r| r.offset == 9)
    });
    let offsets: Vec<i64> = records(&events).iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (3..10).collect::<Vec<i64>>());
}

#[test]
fn read_partition_reads_to_the_end_as_of_the_call() {
    let broker = TestBroker::start();
    let mut b = broker.backend("restore-app");
    b.create_topic("log", 2, &[]).unwrap();
    b.send(recs("log", 0, &["a", "b", "c", "d", "e"])).unwrap();
    b.commit(&[]).unwrap();

    let started = Instant::now();
    assert_eq!(
        read_all(&mut b, &tp("log", 0), 0),
        (
            vec!["a", "b", "c", "d", "e"]
                .into_iter()
                .map(String::from)
                .collect(),
            5
        )
    );
    assert_eq!(
        read_all(&mut b, &tp("log", 0), 2),
        (vec!["c".to_string(), "d".into(), "e".into()], 5)
    );
    assert_eq!(read_all(&mut b, &tp("log", 0), 5), (vec![], 5));
    assert_eq!(
        read_all(&mut b, &tp("log", 1), 0),
        (vec![], 0),
        "empty partition"
    );
    assert_eq!(
        b.end_offsets(&[tp("log", 0), tp("log", 1)]).unwrap(),
        vec![5, 0]
    );

    b.send(recs("log", 0, &["f", "g"])).unwrap();
    b.commit(&[]).unwrap();
    assert_eq!(
        read_all(&mut b, &tp("log", 0), 5),
        (vec!["f".to_string(), "g".into()], 7)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "reads end promptly: {:?}",
        started.elapsed()
    );
}

#[test]
fn exactly_once_aborted_transactions_are_never_read() {
    let broker = TestBroker::start();
    let mut setup = broker.backend("setup");
    setup.create_topic("eos-in", 1, &[]).unwrap();
    setup.create_topic("eos-out", 1, &[]).unwrap();
    setup.send(recs("eos-in", 0, &["i0", "i1", "i2"])).unwrap();
    setup.commit(&[]).unwrap();

    let mut eos = broker.eos_backend("eos-app", "0");
    eos.subscribe(&["eos-in".to_string()]).unwrap();
    poll_until(&mut eos, "the input", |ev| records(ev).len() >= 3);

    eos.begin().unwrap();
    eos.send(recs("eos-out", 0, &["a0", "a1"])).unwrap();
    eos.commit(&[(tp("eos-in", 0), 2)]).unwrap();

    eos.begin().unwrap();
    eos.send(recs("eos-out", 0, &["x0", "x1", "x2"])).unwrap();
    broker.wait_for_log_end("eos-out", 0, 6);
    eos.abort().unwrap();

    // Lazily begun by send.
    eos.send(recs("eos-out", 0, &["b0"])).unwrap();
    eos.commit(&[(tp("eos-in", 0), 3)]).unwrap();

    // a0 a1 marker | x0 x1 x2 marker | b0 marker
    let (values, end) = read_all(&mut eos, &tp("eos-out", 0), 0);
    assert_eq!(values, vec!["a0", "a1", "b0"]);
    assert_eq!(end, 9);
    assert_eq!(eos.end_offsets(&[tp("eos-out", 0)]).unwrap(), vec![9]);
    assert_eq!(
        eos.committed(&[tp("eos-in", 0)]).unwrap(),
        vec![Some(3)],
        "offsets commit with the transaction"
    );

    // A read_committed group consumer sees the same.
    let mut reader = broker.backend("eos-reader");
    reader.subscribe(&["eos-out".to_string()]).unwrap();
    let events = poll_until(&mut reader, "committed output", |ev| records(ev).len() >= 3);
    let more = reader.poll(Duration::from_millis(500)).unwrap();
    let got: Vec<String> = records(&events)
        .into_iter()
        .chain(records(&more))
        .map(value)
        .collect();
    assert_eq!(got, vec!["a0", "a1", "b0"]);
}

#[test]
fn exactly_once_offsets_of_an_aborted_transaction_are_not_committed() {
    let broker = TestBroker::start();
    let mut setup = broker.backend("setup");
    setup.create_topic("src", 1, &[]).unwrap();
    setup.send(recs("src", 0, &["0", "1", "2", "3"])).unwrap();
    setup.commit(&[]).unwrap();

    let mut eos = broker.eos_backend("offsets-app", "0");
    eos.subscribe(&["src".to_string()]).unwrap();
    poll_until(&mut eos, "the input", |ev| records(ev).len() >= 4);
    eos.begin().unwrap();
    eos.commit(&[(tp("src", 0), 1)]).unwrap();
    // Offsets go into the transaction only at commit: a transaction
    // aborted before its commit leaves the earlier offsets in place.
    eos.begin().unwrap();
    eos.send(recs("src", 0, &["side effect"])).unwrap();
    eos.abort().unwrap();
    assert_eq!(eos.committed(&[tp("src", 0)]).unwrap(), vec![Some(1)]);
    // abort without an open transaction is a no-op.
    eos.abort().unwrap();
}

#[test]
fn read_partition_ends_at_an_aborted_tail_and_before_an_open_transaction() {
    let broker = TestBroker::start();
    let mut eos = broker.eos_backend("tail-app", "0");
    eos.create_topic("tail", 1, &[]).unwrap();
    eos.begin().unwrap();
    eos.send(recs("tail", 0, &["c0", "c1"])).unwrap();
    eos.commit(&[]).unwrap();
    eos.begin().unwrap();
    eos.send(recs("tail", 0, &["x0", "x1"])).unwrap();
    broker.wait_for_log_end("tail", 0, 5);
    eos.abort().unwrap();

    // c0 c1 marker | x0 x1 marker: the last delivered record is at 1, the
    // end at 6.
    let started = Instant::now();
    assert_eq!(
        read_all(&mut eos, &tp("tail", 0), 0),
        (vec!["c0".to_string(), "c1".into()], 6)
    );
    assert_eq!(read_all(&mut eos, &tp("tail", 0), 2), (vec![], 6));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no waiting for a timeout: {:?}",
        started.elapsed()
    );

    // An open transaction holds the end at its first offset.
    eos.begin().unwrap();
    eos.send(recs("tail", 0, &["o0"])).unwrap();
    broker.wait_for_log_end("tail", 0, 7);
    assert_eq!(
        read_all(&mut eos, &tp("tail", 0), 0),
        (vec!["c0".to_string(), "c1".into()], 6)
    );
    eos.commit(&[]).unwrap();
    assert_eq!(
        read_all(&mut eos, &tp("tail", 0), 6),
        (vec!["o0".to_string()], 8)
    );
}

#[test]
fn a_new_instance_with_the_same_transactional_id_fences_the_old_one() {
    let broker = TestBroker::start();
    let mut zombie = broker.eos_backend("fence-app", "1");
    zombie.create_topic("fenced", 1, &[]).unwrap();
    zombie.begin().unwrap();
    zombie.send(recs("fenced", 0, &["zombie"])).unwrap();

    let mut fresh = broker.eos_backend("fence-app", "1");
    let err = zombie.commit(&[]).expect_err("the zombie must not commit");
    assert!(matches!(err, BackendError::Fenced(_)), "{err:?}");

    fresh.begin().unwrap();
    fresh.send(recs("fenced", 0, &["fresh"])).unwrap();
    fresh.commit(&[]).unwrap();
    let (values, _) = read_all(&mut fresh, &tp("fenced", 0), 0);
    assert_eq!(values, vec!["fresh"]);

    // Another instance id of the same application is independent.
    let mut other = broker.eos_backend("fence-app", "2");
    other.send(recs("fenced", 0, &["other"])).unwrap();
    other.commit(&[]).unwrap();
    fresh.send(recs("fenced", 0, &["fresh2"])).unwrap();
    fresh.commit(&[]).unwrap();
    let (values, _) = read_all(&mut fresh, &tp("fenced", 0), 0);
    assert_eq!(values, vec!["fresh", "other", "fresh2"]);
}

#[test]
fn an_undeliverable_record_fails_the_next_at_least_once_commit() {
    let broker = TestBroker::start();
    let mut b = broker.backend("delivery-app");
    b.create_topic("one", 1, &[]).unwrap();
    // Partition 7 does not exist: either the send or the commit fails, and
    // the offsets are not committed.
    let result = b
        .send(recs("one", 7, &["lost"]))
        .and_then(|()| b.commit(&[(tp("one", 0), 1)]));
    assert!(matches!(result, Err(BackendError::Fatal(_))), "{result:?}");
    assert_eq!(b.committed(&[tp("one", 0)]).unwrap(), vec![None]);
}

/// A topic another process has just created may not be in this client's
/// metadata (nor on every broker of a cluster) yet: asking for its end
/// offsets waits until it is, within the timeout, instead of failing with
/// `UnknownPartition` (a SQL server starting beside another on a 3-broker
/// Kafka died of it).
#[test]
fn end_offsets_of_a_topic_created_a_moment_later_wait_for_it() {
    let broker = TestBroker::start();
    let mut b = broker.backend("late-topic-app");
    let local = broker.0.local();
    let creator = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        local
            .create_topic("late", 2, Default::default())
            .expect("create");
    });
    let started = Instant::now();
    assert_eq!(b.end_offsets(&[tp("late", 1)]).unwrap(), vec![0]);
    assert!(started.elapsed() >= Duration::from_millis(600));
    creator.join().unwrap();
    let (values, end) = read_all(&mut b, &tp("late", 0), 0);
    assert_eq!((values.len(), end), (0, 0));
}
