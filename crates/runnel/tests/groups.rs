//! Consumer groups with librdkafka (through the `rdkafka` crate) against the
//! real server: rebalances with members joining and leaving, committed
//! offsets across restarts, commit metadata.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::Server;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(60);

fn admin(server: &Server) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .create()
        .expect("admin")
}

async fn create_topic(server: &Server, name: &str, partitions: i32) {
    let t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let res = admin(server)
        .create_topics(&[t], &AdminOptions::new())
        .await
        .unwrap();
    assert!(res[0].is_ok(), "create {name}: {:?}", res[0]);
}

async fn produce(server: &Server, topic: &str, range: std::ops::Range<usize>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", server.bootstrap())
        .set("linger.ms", "1")
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer");
    for i in range {
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        producer
            .send(
                FutureRecord::to(topic).key(&key).payload(&value),
                Duration::from_secs(20),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }
}

fn group_consumer(server: &Server, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", server.bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("enable.partition.eof", "false");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("consumer")
}

/// What the members of a group saw: (partition, offset, value) per record.
#[derive(Default)]
struct Seen {
    records: Vec<(i32, i64, String)>,
    /// Which member consumed each record (same order as `records`).
    by: Vec<String>,
    commit_errors: Vec<String>,
}

/// A consumer thread: poll, record, commit synchronously, until stopped.
struct Member {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    fn start(
        server: &Server,
        group: &str,
        topic: &str,
        name: &str,
        seen: Arc<Mutex<Seen>>,
    ) -> Member {
        Member::start_with(server, group, topic, name, seen, &[])
    }

    fn start_with(
        server: &Server,
        group: &str,
        topic: &str,
        name: &str,
        seen: Arc<Mutex<Seen>>,
        extra: &[(&str, &str)],
    ) -> Member {
        let mut config = vec![("client.id", name)];
        config.extend_from_slice(extra);
        let consumer = group_consumer(server, group, &config);
        consumer.subscribe(&[topic]).expect("subscribe");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = name.to_string();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        let value = String::from_utf8_lossy(m.payload().unwrap_or_default());
                        let mut s = seen.lock().unwrap();
                        s.records
                            .push((m.partition(), m.offset(), value.into_owned()));
                        s.by.push(name.clone());
                        drop(s);
                        // A commit between a JoinGroup and the leader's
                        // SyncGroup gets REBALANCE_IN_PROGRESS (as from
                        // Kafka); with cooperative-sticky the member still
                        // owns the partition, so retry as an app would.
                        // One sent with the old generation that reaches
                        // the coordinator after the join phase ended gets
                        // ILLEGAL_GENERATION (Kafka answers the same); the
                        // retry carries the generation the JoinGroup
                        // response brought.
                        let mut tries = 0;
                        while let Err(e) = consumer.commit_message(&m, CommitMode::Sync) {
                            tries += 1;
                            let retriable = matches!(
                                e.rdkafka_error_code(),
                                Some(
                                    RDKafkaErrorCode::RebalanceInProgress
                                        | RDKafkaErrorCode::IllegalGeneration
                                )
                            );
                            if !retriable || tries > 100 {
                                seen.lock().unwrap().commit_errors.push(e.to_string());
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    Some(Err(e)) => eprintln!("consumer error: {e}"),
                    None => {}
                }
            }
            // Dropping the consumer closes it: revoke, LeaveGroup.
            drop(consumer);
        });
        Member {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("consumer thread");
        }
    }
}

fn wait_for(seen: &Arc<Mutex<Seen>>, n: usize) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let got = seen.lock().unwrap().records.len();
        if got >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {got} of {n} records consumed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserted: with a synchronous commit after every processed record, every
/// produced record is consumed exactly once across the group — no
/// (partition, offset) twice, none missing — while a third member joins
/// mid-stream and another leaves mid-stream, and no commit fails for good
/// (REBALANCE_IN_PROGRESS between JoinGroup and SyncGroup is retried).
#[tokio::test(flavor = "multi_thread")]
async fn three_consumers_share_partitions_exactly_once_through_rebalances() {
    members_join_and_leave_mid_stream(&[]).await;
}

/// The same with librdkafka's incremental cooperative-sticky assignor
/// (members keep consuming their partitions through each rebalance).
#[tokio::test(flavor = "multi_thread")]
async fn cooperative_sticky_members_share_partitions_exactly_once() {
    members_join_and_leave_mid_stream(&[("partition.assignment.strategy", "cooperative-sticky")])
        .await;
}

async fn members_join_and_leave_mid_stream(extra: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    create_topic(&server, "orders", 6).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let n = 1800;
    let start =
        |name: &str| Member::start_with(&server, "g-orders", "orders", name, seen.clone(), extra);
    let a = start("a");
    let b = start("b");
    produce(&server, "orders", 0..n / 3).await;
    let s = seen.clone();
    tokio::task::spawn_blocking(move || wait_for(&s, n / 6))
        .await
        .unwrap();
    let c = start("c");
    produce(&server, "orders", n / 3..2 * n / 3).await;
    let s = seen.clone();
    tokio::task::spawn_blocking(move || wait_for(&s, n / 2))
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || a.stop()).await.unwrap();
    produce(&server, "orders", 2 * n / 3..n).await;
    let s = seen.clone();
    tokio::task::spawn_blocking(move || wait_for(&s, n))
        .await
        .unwrap();
    // Give duplicates, if any, a chance to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::spawn_blocking(move || {
        b.stop();
        c.stop();
    })
    .await
    .unwrap();

    let s = seen.lock().unwrap();
    assert!(
        s.commit_errors.is_empty(),
        "commit errors: {:?}",
        s.commit_errors
    );
    let mut positions = HashSet::new();
    for (p, o, _) in &s.records {
        assert!(positions.insert((*p, *o)), "record {p}/{o} consumed twice");
    }
    let values: HashSet<&str> = s.records.iter().map(|(_, _, v)| v.as_str()).collect();
    assert_eq!(values.len(), n, "every record exactly once");
    for i in 0..n {
        assert!(
            values.contains(format!("value-{i}").as_str()),
            "value-{i} missing"
        );
    }
}

/// Committed offsets survive every consumer stopping and a SIGTERM restart
/// of the server; a new consumer of the group resumes exactly there.
#[tokio::test(flavor = "multi_thread")]
async fn committed_offsets_survive_restart_and_consumers_resume() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    create_topic(&server, "resume", 6).await;
    produce(&server, "resume", 0..600).await;
    let first = Arc::new(Mutex::new(Seen::default()));
    let m = Member::start(&server, "g-resume", "resume", "first", first.clone());
    let s = first.clone();
    tokio::task::spawn_blocking(move || {
        wait_for(&s, 300);
        m.stop();
    })
    .await
    .unwrap();
    // What was committed: one past the last record seen per partition.
    let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o, _) in &first.lock().unwrap().records {
        let e = committed.entry(*p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    assert_eq!(server.terminate(), Some(0));
    server.restart();

    let s = server.bootstrap();
    let fetched = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", s)
            .set("group.id", "g-resume")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..6 {
            tpl.add_partition("resume", p);
        }
        c.committed_offsets(tpl, Duration::from_secs(20)).unwrap()
    })
    .await
    .unwrap();
    for p in 0..6 {
        let want = committed
            .get(&p)
            .map_or(Offset::Invalid, |o| Offset::Offset(*o));
        let got = fetched.find_partition("resume", p).unwrap().offset();
        assert_eq!(got, want, "partition {p}");
    }

    produce(&server, "resume", 600..900).await;
    let second = Arc::new(Mutex::new(Seen::default()));
    let m = Member::start(&server, "g-resume", "resume", "second", second.clone());
    let s = second.clone();
    let first_len = first.lock().unwrap().records.len();
    tokio::task::spawn_blocking(move || {
        wait_for(&s, 900 - first_len);
        std::thread::sleep(Duration::from_secs(1));
        m.stop();
    })
    .await
    .unwrap();
    let second = second.lock().unwrap();
    let mut all = HashSet::new();
    for (p, o, _) in first.lock().unwrap().records.iter().chain(&second.records) {
        assert!(all.insert((*p, *o)), "{p}/{o} consumed twice");
    }
    assert_eq!(all.len(), 900);
    for (p, start) in &committed {
        let lowest = second
            .records
            .iter()
            .filter(|r| r.0 == *p)
            .map(|r| r.1)
            .min();
        assert!(
            lowest.is_none_or(|l| l == *start),
            "partition {p} resumed at {lowest:?}, committed {start}"
        );
    }
}

/// Commit metadata round-trips through OffsetCommit/OffsetFetch and a
/// restart; simple commits (assign + commit, no group membership) work.
#[tokio::test(flavor = "multi_thread")]
async fn commit_metadata_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    create_topic(&server, "meta", 2).await;
    produce(&server, "meta", 0..10).await;
    let s = server.bootstrap();
    let check = move |s: String, expect_commit: bool| {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", s)
            .set("group.id", "g-meta")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("meta", 0, Offset::Offset(3))
            .unwrap();
        tpl.add_partition_offset("meta", 1, Offset::Offset(4))
            .unwrap();
        if expect_commit {
            c.assign(&tpl).unwrap();
            let mut with_meta = TopicPartitionList::new();
            let mut e0 = with_meta.add_partition("meta", 0);
            e0.set_offset(Offset::Offset(3)).unwrap();
            e0.set_metadata("checkpoint α");
            let mut e1 = with_meta.add_partition("meta", 1);
            e1.set_offset(Offset::Offset(4)).unwrap();
            e1.set_metadata("");
            c.commit(&with_meta, CommitMode::Sync).unwrap();
        }
        let got = c.committed_offsets(tpl, Duration::from_secs(20)).unwrap();
        let e0 = got.find_partition("meta", 0).unwrap();
        let e1 = got.find_partition("meta", 1).unwrap();
        assert_eq!(e0.offset(), Offset::Offset(3));
        assert_eq!(e0.metadata(), "checkpoint α");
        assert_eq!(e1.offset(), Offset::Offset(4));
        assert_eq!(e1.metadata(), "");
    };
    tokio::task::spawn_blocking(move || check(s, true))
        .await
        .unwrap();
    assert_eq!(server.terminate(), Some(0));
    server.restart();
    let s = server.bootstrap();
    tokio::task::spawn_blocking(move || check(s, false))
        .await
        .unwrap();
}

fn runnel(server: &Server, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(args)
        .args(["--bootstrap", &server.bootstrap()])
        .output()
        .expect("run runnel");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `runnel group list|describe|delete` against live and empty groups.
#[tokio::test(flavor = "multi_thread")]
async fn group_cli_lists_describes_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    create_topic(&server, "cli", 2).await;
    produce(&server, "cli", 0..20).await;
    // An empty group with a simple commit (assign + commit, no membership).
    let s = server.bootstrap();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", s)
            .set("group.id", "g-empty")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("cli", 0, Offset::Offset(4))
            .unwrap();
        c.commit(&tpl, CommitMode::Sync).unwrap();
    })
    .await
    .unwrap();
    // A live group.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let m = Member::start(&server, "g-live", "cli", "cli-member", seen.clone());
    let s2 = seen.clone();
    tokio::task::spawn_blocking(move || wait_for(&s2, 20))
        .await
        .unwrap();

    let (ok, out, err) = runnel(&server, &["group", "list"]);
    assert!(ok, "{err}");
    assert!(out.contains("GROUP\tSTATE\tPROTOCOL-TYPE\tTYPE\n"), "{out}");
    assert!(out.contains("g-empty\tEmpty\t\tclassic\n"), "{out}");
    assert!(out.contains("g-live\tStable\tconsumer\tclassic\n"), "{out}");

    let (ok, out, err) = runnel(&server, &["group", "describe", "g-empty"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(
            "TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tCONSUMER-ID\tHOST\tCLIENT-ID"
        ),
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("cli\t0\t"))
        .unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<&str> = row.split('\t').collect();
    assert_eq!(cols[2], "4");
    let end: i64 = cols[3].parse().unwrap();
    assert_eq!(cols[4], (end - 4).to_string());
    assert!(end >= 4, "{row}");

    let (ok, out, err) = runnel(
        &server,
        &[
            "group",
            "reset-offsets",
            "g-empty",
            "--topic",
            "cli",
            "--to-earliest",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("cli\t0\t4\t0") && out.contains("dry run"),
        "{out}"
    );
    let (ok, _, _) = runnel(&server, &["group", "describe", "g-empty"]);
    assert!(ok);
    let (ok, out, err) = runnel(
        &server,
        &[
            "group",
            "reset-offsets",
            "g-empty",
            "--topic",
            "cli:0",
            "--to-offset",
            "2",
            "--execute",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("committed 1 offsets"), "{out}");
    let (_, out, _) = runnel(&server, &["group", "describe", "g-empty"]);
    assert!(out.lines().any(|l| l.starts_with("cli\t0\t2\t")), "{out}");
    let (ok, _, err) = runnel(
        &server,
        &[
            "group",
            "reset-offsets",
            "g-live",
            "--topic",
            "cli",
            "--to-latest",
            "--execute",
        ],
    );
    assert!(!ok && err.contains("UnknownMemberId"), "{err}");

    let (ok, out, err) = runnel(&server, &["group", "describe", "g-live"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("Group: g-live\tState: Stable\tProtocol: classic\tAssignor: range\t"),
        "{out}"
    );
    assert!(out.contains("\t/127.0.0.1\tcli-member"), "{out}");

    let (ok, _, err) = runnel(&server, &["group", "delete", "g-live"]);
    assert!(!ok && err.contains("NonEmptyGroup"), "{err}");
    let (ok, out, err) = runnel(&server, &["group", "delete", "g-empty"]);
    assert!(ok, "{err}");
    assert!(out.contains("deleted group g-empty"));
    let (_, out, _) = runnel(&server, &["group", "list"]);
    assert!(!out.contains("g-empty"), "{out}");
    let (ok, _, _) = runnel(&server, &["group", "describe", "g-empty"]);
    assert!(!ok);
    tokio::task::spawn_blocking(move || m.stop()).await.unwrap();
}

/// A static member (group.instance.id) that restarts within its session
/// timeout takes its old place without a rebalance and keeps consuming its
/// partitions; nothing is consumed twice.
#[tokio::test(flavor = "multi_thread")]
async fn static_member_restart_does_not_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    create_topic(&server, "static", 4).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let start = |name: &str, instance: &str| {
        Member::start_with(
            &server,
            "g-static",
            "static",
            name,
            seen.clone(),
            &[("group.instance.id", instance)],
        )
    };
    let a = start("a", "static-a");
    let b = start("b", "static-b");
    produce(&server, "static", 0..200).await;
    let s = seen.clone();
    tokio::task::spawn_blocking(move || wait_for(&s, 200))
        .await
        .unwrap();
    let log = server.log_path();
    let rebalances = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("preparing rebalance") && l.contains("g-static"))
            .count()
    };
    let before = rebalances();
    tokio::task::spawn_blocking(move || b.stop()).await.unwrap();
    let b2 = start("b2", "static-b");
    produce(&server, "static", 200..400).await;
    let s = seen.clone();
    tokio::task::spawn_blocking(move || wait_for(&s, 400))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::spawn_blocking(move || {
        a.stop();
        b2.stop();
    })
    .await
    .unwrap();
    let text = std::fs::read_to_string(server.log_path()).unwrap_or_default();
    assert!(
        text.contains("static member replaced"),
        "no static rejoin seen"
    );
    assert_eq!(
        rebalances(),
        before,
        "the static restart caused a rebalance"
    );
    let s = seen.lock().unwrap();
    let b_parts: HashSet<i32> = s
        .records
        .iter()
        .zip(&s.by)
        .filter(|(_, m)| *m == "b")
        .map(|(r, _)| r.0)
        .collect();
    let b2_parts: HashSet<i32> = s
        .records
        .iter()
        .zip(&s.by)
        .filter(|(_, m)| *m == "b2")
        .map(|(r, _)| r.0)
        .collect();
    assert!(
        !b2_parts.is_empty() && b2_parts.is_subset(&b_parts),
        "{b_parts:?} {b2_parts:?}"
    );
    let mut positions = HashSet::new();
    for (p, o, _) in &s.records {
        assert!(positions.insert((*p, *o)), "record {p}/{o} consumed twice");
    }
    assert_eq!(positions.len(), 400);
}
