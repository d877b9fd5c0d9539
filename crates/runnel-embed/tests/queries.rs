//! Interactive queries: typed store views read from another thread while
//! the instance runs on its own, on both backends; and, with two Kafka
//! backend instances of one application sharing two partitions, key
//! metadata pointing at the right instance and `NotLocal` from the other.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

#[macro_use]
mod harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use harness::{Env, Via};
use runnel_broker::local::Local;
use runnel_embed::LocalBackend;
use runnel_streams::serdes::{partition_for, I64Serde, StringSerde};
use runnel_streams::{
    Backend, Guarantee, KafkaBackend, KafkaBackendConfig, KeyMetadata, Queries, QueryError,
    SessionWindows, Streams, StreamsBuilder, StreamsConfig, TimeWindows, Topology, Window,
    Windowed,
};

/// (key, timestamp) of the input, produced into the partition each key
/// hashes to among 2 (alice lands in 1; bob, carol and dave in 0).
const EVENTS: &[(&str, i64)] = &[
    ("alice", 1),
    ("bob", 2),
    ("alice", 3),
    ("carol", 5),
    ("dave", 12),
    ("dave", 14),
    ("alice", 15),
    ("dave", 16),
    ("bob", 30),
];

fn produce_events(env: &Env) {
    env.topic("events", 2);
    for (k, ts) in EVENTS {
        env.produce_keyed("events", partition_for(k.as_bytes(), 2), &[(k, "", *ts)]);
    }
}

/// Per-key counts, windowed counts (10 ms windows) and session counts
/// (5 ms gap); grace periods long enough that nothing is late or expires.
fn counting() -> Topology {
    let b = StreamsBuilder::new();
    let s = b.stream("events", StringSerde, StringSerde);
    s.group_by_key().count("counts");
    s.group_by_key()
        .windowed_by(TimeWindows::of(Duration::from_millis(10)).grace(Duration::from_secs(1)))
        .count("window-counts");
    s.group_by_key()
        .windowed_by_session(
            SessionWindows::with_inactivity_gap(Duration::from_millis(5))
                .grace(Duration::from_secs(1)),
        )
        .count("session-counts");
    b.build().unwrap()
}

fn str(s: &str) -> String {
    s.to_string()
}

fn counts() -> Vec<(String, i64)> {
    vec![
        (str("alice"), 3),
        (str("bob"), 2),
        (str("carol"), 1),
        (str("dave"), 3),
    ]
}

fn window_counts() -> Vec<(Windowed<String>, i64)> {
    let w =
        |k: &str, start: i64, n: i64| (Windowed::new(str(k), Window::new(start, start + 10)), n);
    vec![
        w("alice", 0, 2),
        w("alice", 10, 1),
        w("bob", 0, 1),
        w("bob", 30, 1),
        w("carol", 0, 1),
        w("dave", 10, 3),
    ]
}

fn session_counts() -> Vec<(Windowed<String>, i64)> {
    let s =
        |k: &str, start: i64, end: i64, n: i64| (Windowed::new(str(k), Window::new(start, end)), n);
    vec![
        s("alice", 1, 3, 2),
        s("alice", 15, 15, 1),
        s("bob", 2, 2, 1),
        s("bob", 30, 30, 1),
        s("carol", 5, 5, 1),
        s("dave", 12, 16, 3),
    ]
}

/// How the worker thread reaches the broker.
#[derive(Clone)]
struct Conn {
    via: Via,
    local: Local,
    bootstrap: String,
}

impl Conn {
    fn of(env: &Env) -> Conn {
        let c = env.broker.config();
        Conn {
            via: env.via,
            local: env.local.clone(),
            bootstrap: format!("{}:{}", c.advertised_host, c.advertised_port),
        }
    }
}

/// An application instance running `poll_once` on its own thread until
/// dropped (`Streams` is not `Send`: it is built on that thread).
struct Instance {
    queries: Queries,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Instance {
    fn start(
        conn: Conn,
        app: &str,
        instance: &str,
        endpoint: &str,
        build: fn() -> Topology,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (app, instance, endpoint) = (str(app), str(instance), str(endpoint));
        let halt = stop.clone();
        let thread = std::thread::spawn(move || {
            let backend: Box<dyn Backend> = match conn.via {
                Via::Local => {
                    Box::new(LocalBackend::new(conn.local, &app, Guarantee::AtLeastOnce).unwrap())
                }
                Via::Kafka => Box::new(
                    KafkaBackend::new(
                        KafkaBackendConfig::new(conn.bootstrap, &app)
                            .with_instance_id(&instance)
                            .with_application_server(&endpoint)
                            .with_property("fetch.wait.max.ms", "10")
                            .with_property("session.timeout.ms", "6000")
                            .with_property("heartbeat.interval.ms", "500"),
                    )
                    .unwrap(),
                ),
            };
            let mut cfg = StreamsConfig::new(&app).application_server(&endpoint);
            cfg.commit_interval = Duration::from_millis(100);
            cfg.poll_timeout = Duration::from_millis(5);
            let mut streams = Streams::new(build(), cfg, backend).unwrap();
            tx.send(streams.queries()).unwrap();
            while !halt.load(Ordering::Relaxed) {
                streams.poll_once().unwrap();
            }
            streams.close().unwrap();
        });
        let queries = rx.recv().expect("the instance failed to start");
        Instance {
            queries,
            stop,
            thread: Some(thread),
        }
    }

    fn running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let result = t.join();
            if result.is_err() && !std::thread::panicking() {
                panic!("the instance's thread panicked");
            }
        }
    }
}

/// Waits up to 60 s for `cond`, failing early if an instance stopped.
fn wait_for(what: &str, instances: &[&Instance], mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(
            instances.iter().all(|i| i.running()),
            "an instance stopped while waiting for {what}"
        );
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stores_answer_from_another_thread(env: Env) {
    produce_events(&env);
    let endpoint = "streams-0.example:7000";
    let app = Instance::start(Conn::of(&env), "iq", "0", endpoint, counting);
    let q = app.queries.clone();
    let kv = q.kv("counts", StringSerde, I64Serde).unwrap();
    let win = q
        .window("window-counts", StringSerde, I64Serde, 10)
        .unwrap();
    let ses = q.session("session-counts", StringSerde, I64Serde).unwrap();
    wait_for("every record to be counted", &[&app], || {
        kv.all().ok() == Some(counts())
            && win.all().ok() == Some(window_counts())
            && ses.all().ok() == Some(session_counts())
    });

    // Point lookups and scans of the key-value store.
    assert_eq!(kv.get(&str("alice")).unwrap(), Some(3));
    assert_eq!(kv.get(&str("dave")).unwrap(), Some(3));
    assert_eq!(kv.get_with_timestamp(&str("bob")).unwrap(), Some((2, 30)));
    // Hosted here and absent: not an error.
    assert_eq!(kv.get(&str("nobody")).unwrap(), None);
    assert_eq!(
        kv.range(&str("b"), &str("d")).unwrap(),
        vec![(str("bob"), 2), (str("carol"), 1)]
    );
    assert_eq!(kv.all().unwrap(), counts());
    assert_eq!(q.local_partitions("counts"), vec![0, 1]);

    // Windows.
    assert_eq!(
        win.fetch(&str("alice"), 0, 100).unwrap(),
        vec![(Window::new(0, 10), 2), (Window::new(10, 20), 1)]
    );
    assert_eq!(
        win.fetch(&str("alice"), 5, 100).unwrap(),
        vec![(Window::new(10, 20), 1)]
    );
    assert_eq!(win.fetch_window(&str("dave"), 10).unwrap(), Some(3));
    assert!(win.fetch(&str("nobody"), 0, 100).unwrap().is_empty());
    assert_eq!(win.all().unwrap(), window_counts());

    // Sessions.
    assert_eq!(
        ses.fetch_sessions(&str("alice")).unwrap(),
        vec![(Window::new(1, 3), 2), (Window::new(15, 15), 1)]
    );
    assert_eq!(
        ses.fetch_sessions(&str("dave")).unwrap(),
        vec![(Window::new(12, 16), 3)]
    );
    assert_eq!(ses.all().unwrap(), session_counts());

    // The wrong kind of view, an unknown store.
    assert!(matches!(
        q.kv("window-counts", StringSerde, I64Serde),
        Err(QueryError::WrongStoreKind { .. })
    ));
    assert!(matches!(
        q.kv("nope", StringSerde, I64Serde),
        Err(QueryError::UnknownStore(_))
    ));

    // Metadata: this instance hosts everything.
    assert_eq!(
        q.metadata_for_key("counts", &str("alice"), &StringSerde),
        Some(KeyMetadata {
            partition: partition_for(b"alice", 2),
            active: Some(str(endpoint)),
            is_local: true,
        })
    );
    assert_eq!(
        q.metadata_for_key("nope", &str("alice"), &StringSerde),
        None
    );
    // The membership snapshot: this instance, owning both partitions.
    wait_for("the membership snapshot", &[&app], || {
        q.membership().members.len() == 1
    });
    let m = q.membership();
    assert!(m.refreshed.is_some() && m.error.is_none(), "{m:?}");
    let me = &m.members[0];
    assert!(me.is_self, "{me:?}");
    assert_eq!(me.endpoint.as_deref(), Some(endpoint));
    let mut parts: Vec<String> = me.partitions.iter().map(ToString::to_string).collect();
    parts.sort();
    assert_eq!(parts, vec![str("events-0"), str("events-1")]);
    if env.via == Via::Kafka {
        assert_eq!(me.client_id, format!("iq-0-consumer@{endpoint}"));
    }
    drop(app);
}

on_both_backends!(stores_answer_from_another_thread);

/// Whether each instance hosts exactly one partition, a different one, and
/// both instances' snapshots show both members with their endpoints.
fn split_and_known(a: &Instance, b: &Instance) -> bool {
    let (pa, pb) = (
        a.queries.local_partitions("counts"),
        b.queries.local_partitions("counts"),
    );
    if pa.len() != 1 || pb.len() != 1 || pa == pb {
        return false;
    }
    [a, b].iter().all(|i| {
        let members = i.queries.membership().members;
        members.len() == 2
            && members
                .iter()
                .all(|m| m.endpoint.is_some() && m.partitions.len() == 1)
            && members.iter().filter(|m| m.is_self).count() == 1
    })
}

#[test]
fn two_kafka_instances_route_keys_to_the_instance_hosting_them() {
    let env = Env::with(Via::Kafka);
    produce_events(&env);
    let (ea, eb) = ("a.example:7001", "b.example:7002");
    let a = Instance::start(Conn::of(&env), "iq2", "a", ea, counting);
    let b = Instance::start(Conn::of(&env), "iq2", "b", eb, counting);
    let owner = |key: &str| -> &Instance {
        let p = partition_for(key.as_bytes(), 2);
        if a.queries.local_partitions("counts") == vec![p] {
            &a
        } else {
            &b
        }
    };
    wait_for("the partitions to be split and counted", &[&a, &b], || {
        split_and_known(&a, &b)
            && counts().iter().all(|(k, n)| {
                owner(k)
                    .queries
                    .kv("counts", StringSerde, I64Serde)
                    .and_then(|kv| kv.get(k))
                    .ok()
                    == Some(Some(*n))
            })
    });
    for (key, n) in counts() {
        let p = partition_for(key.as_bytes(), 2);
        let (host, other) = if a.queries.local_partitions("counts") == vec![p] {
            (&a, &b)
        } else {
            (&b, &a)
        };
        let host_endpoint = host.queries.application_server().map(str::to_string);
        // Both instances name the host's endpoint; only the host is local.
        for (i, local) in [(host, true), (other, false)] {
            let m = i
                .queries
                .metadata_for_key("counts", &key, &StringSerde)
                .unwrap();
            assert_eq!(
                m,
                KeyMetadata {
                    partition: p,
                    active: host_endpoint.clone(),
                    is_local: local,
                },
                "{key} asked at {:?}",
                i.queries.application_server()
            );
        }
        let on_host = host.queries.kv("counts", StringSerde, I64Serde).unwrap();
        assert_eq!(on_host.get(&key).unwrap(), Some(n));
        let elsewhere = other.queries.kv("counts", StringSerde, I64Serde).unwrap();
        match elsewhere.get(&key) {
            Err(QueryError::NotLocal { partition, store }) => {
                assert_eq!((partition, store.as_str()), (p, "counts"))
            }
            r => panic!("{key} at the other instance: {r:?}"),
        }
        let win = other
            .queries
            .window("window-counts", StringSerde, I64Serde, 10)
            .unwrap();
        assert!(matches!(
            win.fetch(&key, 0, 100),
            Err(QueryError::NotLocal { .. })
        ));
        // Scans cover the local partition only.
        let local: Vec<(String, i64)> = on_host.all().unwrap();
        assert!(local.contains(&(key.clone(), n)));
        assert!(!elsewhere.all().unwrap().iter().any(|(k, _)| *k == key));
    }
    drop(b);
    drop(a);
}
