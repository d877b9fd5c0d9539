//! The SQL engine end to end on an in-process broker: the talk's slide-8
//! pipeline in SQL against the same pipeline in the Rust DSL, statements
//! surviving a restart, push queries sharing one tap.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_broker::{Broker, BrokerConfig};
use runnel_embed::{LocalBackend, LocalCluster};
use runnel_sql::types::Value;
use runnel_sql::{Engine, EngineConfig, QueryEvent};
use runnel_streams::serdes::partition_for;
use runnel_streams::talk;
use runnel_streams::{Backend, Guarantee, ProducedRecord, Streams, StreamsConfig, TopicPartition};
use serde_json::Value as Json;

fn engine(broker: &Arc<Broker>) -> Engine {
    Engine::start(
        Arc::new(LocalCluster::new(broker.local())),
        EngineConfig::default(),
    )
    .expect("engine starts")
}

fn run(engine: &Engine, sql: &str) {
    if let Err((e, _)) = engine.execute(sql, &BTreeMap::new()) {
        panic!("{sql}: {e}");
    }
}

fn produce(broker: &Arc<Broker>, topic: &str, partitions: i32, recs: &[(String, Vec<u8>, i64)]) {
    let mut b = LocalBackend::new(broker.local(), "test-producer", Guarantee::AtLeastOnce)
        .expect("backend");
    let batch: Vec<ProducedRecord> = recs
        .iter()
        .map(|(k, v, ts)| ProducedRecord {
            topic: topic.to_string(),
            partition: partition_for(k.as_bytes(), partitions),
            timestamp: *ts,
            key: Some(k.as_bytes().to_vec()),
            value: Some(v.clone()),
            headers: Vec::new(),
        })
        .collect();
    for chunk in batch.chunks(500) {
        b.send(chunk.to_vec()).expect("send");
        b.commit(&[]).expect("commit");
    }
}

/// The table a topic's records describe: the last value per key bytes,
/// tombstones deleting.
fn final_table(broker: &Arc<Broker>, topic: &str) -> HashMap<Vec<u8>, Json> {
    let local = broker.local();
    let n = local.partition_count(topic).unwrap_or(0);
    let mut b = LocalBackend::new(local, "test-reader", Guarantee::AtLeastOnce).expect("backend");
    let mut out = HashMap::new();
    for p in 0..n {
        b.read_partition(&TopicPartition::new(topic, p), 0, &mut |r| {
            let key = r.key.unwrap_or_default();
            match r.value {
                Some(v) => {
                    out.insert(key, serde_json::from_slice(&v).unwrap_or(Json::Null));
                }
                None => {
                    out.remove(&key);
                }
            }
        })
        .expect("read");
    }
    out
}

fn same_json(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            (x - y).abs() < 1e-9
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn slide8_in_sql_gives_the_same_tables_as_the_rust_dsl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("broker");
    let local = broker.local();
    let partitions = 3;
    for t in [
        talk::APPS_OPENED,
        talk::APP_CRASHES,
        talk::OPENED_PER_DAY,
        talk::CRASHED_PER_DAY,
        talk::UNSTABLE_APPS,
    ] {
        local
            .create_topic(t, partitions, BTreeMap::new())
            .expect("topic");
    }
    let input = talk::generate(42, 3000, 4, 0);
    for topic in [talk::APPS_OPENED, talk::APP_CRASHES] {
        let recs: Vec<(String, Vec<u8>, i64)> = input
            .iter()
            .filter(|g| g.topic == topic)
            .map(|g| (g.app_id.clone(), g.value(), g.timestamp))
            .collect();
        produce(&broker, topic, partitions, &recs);
    }
    let threshold = 0.1;
    let grace = Duration::from_secs(3600);

    // The Rust DSL version.
    let topology = talk::unstable_apps(threshold, grace).expect("topology");
    let backend =
        LocalBackend::new(local.clone(), "slide8-dsl", Guarantee::AtLeastOnce).expect("backend");
    let mut streams = Streams::new(
        topology,
        StreamsConfig::new("slide8-dsl").commit_interval(Duration::from_millis(100)),
        Box::new(backend),
    )
    .expect("streams");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = streams.poll_once().expect("poll");
        if n == 0 && streams.is_idle() {
            break;
        }
        assert!(Instant::now() < deadline, "the DSL app did not finish");
    }
    streams.close().expect("close");

    // The same pipeline in SQL.
    let engine = engine(&broker);
    run(&engine, "CREATE STREAM apps_opened (app_id STRING KEY, user_id STRING) WITH (KAFKA_TOPIC='apps_opened', VALUE_FORMAT='JSON');");
    run(&engine, "CREATE STREAM app_crashes (app_id STRING KEY, user_id STRING) WITH (KAFKA_TOPIC='app_crashes', VALUE_FORMAT='JSON');");
    run(&engine, "CREATE TABLE opened_per_day AS SELECT app_id, COUNT(*) AS opens FROM apps_opened WINDOW TUMBLING (SIZE 1 DAY, GRACE PERIOD 1 HOUR) GROUP BY app_id;");
    run(&engine, "CREATE TABLE crashed_per_day AS SELECT app_id, COUNT(*) AS crashes FROM app_crashes WINDOW TUMBLING (SIZE 1 DAY, GRACE PERIOD 1 HOUR) GROUP BY app_id;");
    run(&engine, "CREATE TABLE unstable_apps AS SELECT o.app_id AS app_id, o.opens AS opens, c.crashes AS crashes, CAST(c.crashes AS DOUBLE) / o.opens AS ratio FROM opened_per_day o JOIN crashed_per_day c ON o.app_id = c.app_id WHERE CAST(c.crashes AS DOUBLE) / o.opens > 0.1;");
    assert!(
        engine.wait_idle(Duration::from_secs(60)),
        "SQL queries idle"
    );
    // Chained queries: let the join see its inputs' last updates.
    assert!(
        engine.wait_idle(Duration::from_secs(60)),
        "SQL queries idle"
    );
    engine.shutdown();

    for (dsl, sql) in [
        (talk::OPENED_PER_DAY, "OPENED_PER_DAY"),
        (talk::CRASHED_PER_DAY, "CRASHED_PER_DAY"),
        (talk::UNSTABLE_APPS, "UNSTABLE_APPS"),
    ] {
        let a = final_table(&broker, dsl);
        let b = final_table(&broker, sql);
        assert!(!a.is_empty(), "{dsl} is empty");
        assert_eq!(
            a.len(),
            b.len(),
            "{dsl}: {} rows in the DSL, {} in SQL",
            a.len(),
            b.len()
        );
        for (k, v) in &a {
            let w = b.get(k).unwrap_or_else(|| panic!("{sql} lacks key {k:?}"));
            assert!(same_json(v, w), "{dsl} {k:?}: DSL {v}, SQL {w}");
        }
    }
}

fn pull(engine: &Engine, sql: &str) -> Vec<Vec<Value>> {
    let s = engine.query(sql, &BTreeMap::new()).expect("pull query");
    let mut rows = Vec::new();
    while let Ok(ev) = s.rows.recv_timeout(Duration::from_secs(5)) {
        if let QueryEvent::Row(r) = ev {
            rows.push(r);
        }
    }
    rows
}

#[test]
fn statements_and_state_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = |u: &str| format!("{{\"USER_ID\":\"{u}\"}}").into_bytes();
    {
        let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("broker");
        let e = engine(&broker);
        run(&e, "CREATE STREAM clicks (page STRING KEY, user_id STRING) WITH (KAFKA_TOPIC='clicks', VALUE_FORMAT='JSON', PARTITIONS=2);");
        run(
            &e,
            "CREATE TABLE per_page AS SELECT page, COUNT(*) AS n FROM clicks GROUP BY page;",
        );
        produce(
            &broker,
            "clicks",
            2,
            &[
                ("home".into(), json("a"), 1),
                ("home".into(), json("b"), 2),
                ("about".into(), json("a"), 3),
            ],
        );
        assert!(e.wait_idle(Duration::from_secs(30)));
        let rows = pull(&e, "SELECT * FROM per_page WHERE page = 'home';");
        assert_eq!(
            rows,
            vec![vec![Value::String("home".into()), Value::BigInt(2)]]
        );
        e.shutdown();
        broker.log().close().expect("close log");
    }
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("broker reopens");
    let e = engine(&broker);
    let names: Vec<String> = e.catalog().sources.keys().cloned().collect();
    assert_eq!(names, vec!["CLICKS".to_string(), "PER_PAGE".to_string()]);
    assert_eq!(e.query_states().len(), 1, "the CTAS runs again");
    produce(&broker, "clicks", 2, &[("home".into(), json("c"), 4)]);
    assert!(e.wait_idle(Duration::from_secs(30)));
    // Counted once each: state resumed from the changelog, input from the
    // committed offsets.
    let mut rows = pull(&e, "SELECT page, n FROM per_page;");
    rows.sort_by(|a, b| a[0].total_cmp(&b[0]));
    assert_eq!(
        rows,
        vec![
            vec![Value::String("about".into()), Value::BigInt(1)],
            vec![Value::String("home".into()), Value::BigInt(3)],
        ]
    );
    e.shutdown();
}

#[test]
fn push_queries_on_one_source_share_one_tap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("broker");
    let e = engine(&broker);
    run(&e, "CREATE STREAM s (id STRING KEY, v INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', PARTITIONS=1);");
    let queries: Vec<_> = (0..50)
        .map(|i| {
            e.query(
                &format!("SELECT id, v FROM s WHERE v >= {} EMIT CHANGES;", i % 2),
                &BTreeMap::new(),
            )
            .expect("push query")
        })
        .collect();
    // No wait for the tap: it starts at the end the topic had when the
    // first query was handed back, with that query already subscribed.
    run(&e, "INSERT INTO s (id, v) VALUES ('a', 0);");
    run(&e, "INSERT INTO s (id, v) VALUES ('b', 1);");
    for (i, q) in queries.iter().enumerate() {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < 2 - i % 2 && Instant::now() < deadline {
            if let Ok(QueryEvent::Row(r)) = q.rows.recv_timeout(Duration::from_millis(200)) {
                got.push(r);
            }
        }
        let want: Vec<Vec<Value>> = [("a", 0), ("b", 1)]
            .iter()
            .filter(|(_, v)| *v >= (i % 2) as i32)
            .map(|(k, v)| vec![Value::String((*k).into()), Value::Int(*v)])
            .collect();
        assert_eq!(got, want, "push query {i}");
    }
    assert_eq!(e.tap_count(), 1, "one reader serves every push query on s");
    e.shutdown();
}

/// A push query from the beginning gets a tap of its own, whose reader
/// starts at offset 0 at once: the query must be subscribed before that
/// reader takes its first rows, or they go to nobody and the query waits
/// forever (seen as a hang of the HTTP API's push test under load).
#[test]
fn push_queries_from_the_beginning_see_every_row_already_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("broker");
    let e = engine(&broker);
    run(&e, "CREATE STREAM s (id STRING KEY, v INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', PARTITIONS=2);");
    run(&e, "INSERT INTO s (id, v) VALUES ('a', 1);");
    run(&e, "INSERT INTO s (id, v) VALUES ('b', 2);");
    let props: BTreeMap<String, String> =
        [("auto.offset.reset".to_string(), "earliest".to_string())].into();
    for i in 0..20 {
        let mut got = push_rows(&e, "SELECT id, v FROM s EMIT CHANGES;", &props, 2);
        got.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(
            got,
            vec![
                vec![Value::String("a".into()), Value::Int(1)],
                vec![Value::String("b".into()), Value::Int(2)],
            ],
            "push query {i}"
        );
    }
    e.shutdown();
}

/// The rows of a push query until `n` arrived (or 10 s passed).
fn push_rows(
    engine: &Engine,
    sql: &str,
    props: &BTreeMap<String, String>,
    n: usize,
) -> Vec<Vec<Value>> {
    let q = engine.query(sql, props).expect("push query");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < n && Instant::now() < deadline {
        if let Ok(QueryEvent::Row(r)) = q.rows.recv_timeout(Duration::from_millis(200)) {
            got.push(r);
        }
    }
    q.close();
    got
}

#[test]
fn a_stateful_push_query_from_the_beginning_starts_there_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("broker");
    let props: BTreeMap<String, String> =
        [("auto.offset.reset".to_string(), "earliest".to_string())].into();
    let sql = "SELECT id, COUNT(*) AS n FROM s GROUP BY id EMIT CHANGES;";
    let want = vec![
        vec![Value::String("a".into()), Value::BigInt(1)],
        vec![Value::String("a".into()), Value::BigInt(2)],
    ];
    {
        let e = engine(&broker);
        run(&e, "CREATE STREAM s (id STRING KEY, v INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', PARTITIONS=1);");
        run(&e, "INSERT INTO s (id, v) VALUES ('a', 1);");
        run(&e, "INSERT INTO s (id, v) VALUES ('a', 2);");
        assert_eq!(push_rows(&e, sql, &props, 2), want);
        // Long enough for the transient query to commit its offsets.
        std::thread::sleep(Duration::from_millis(1200));
        e.shutdown();
    }
    // A new engine process on the same cluster: its transient queries
    // must not resume the consumer groups of an earlier one.
    let e = engine(&broker);
    assert_eq!(push_rows(&e, sql, &props, 2), want);
    e.shutdown();
}

/// Values of every record of partition 0 of `topic`.
fn topic_values(broker: &Arc<Broker>, topic: &str) -> Vec<Json> {
    let mut b =
        LocalBackend::new(broker.local(), "test-reader", Guarantee::AtLeastOnce).expect("backend");
    let mut out = Vec::new();
    b.read_partition(&TopicPartition::new(topic, 0), 0, &mut |r| {
        if let Some(v) = r.value {
            out.push(serde_json::from_slice(&v).unwrap_or(Json::Null));
        }
    })
    .expect("read");
    out
}

#[test]
fn replaying_drop_delete_topic_leaves_a_recreated_topic_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("broker");
    let create = "CREATE STREAM s (id STRING KEY, v INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', PARTITIONS=1);";
    {
        let e = engine(&broker);
        run(&e, create);
        run(&e, "INSERT INTO s (id, v) VALUES ('a', 1);");
        run(&e, "DROP STREAM s DELETE TOPIC;");
        run(&e, create);
        run(&e, "INSERT INTO s (id, v) VALUES ('b', 2);");
        e.shutdown();
    }
    let want = vec![serde_json::json!({"V": 2})];
    assert_eq!(topic_values(&broker, "s"), want);
    // The replayed DROP … DELETE TOPIC must not delete the topic again:
    // it holds data written after it.
    let e = engine(&broker);
    assert_eq!(topic_values(&broker, "s"), want);
    e.shutdown();
}

#[test]
fn a_refused_replacement_leaves_the_old_query_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("broker");
    let e = engine(&broker);
    run(&e, "CREATE STREAM s (id STRING KEY, v INT, w INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', PARTITIONS=1);");
    run(&e, "CREATE STREAM o AS SELECT id, v FROM s;");
    // Dropping V is not an upgrade ksqlDB allows; an unknown column does
    // not plan at all. Neither may stop the query already writing O.
    for bad in [
        "CREATE OR REPLACE STREAM o AS SELECT id, w FROM s;",
        "CREATE OR REPLACE STREAM o AS SELECT id, v, nope FROM s;",
    ] {
        assert!(e.execute(bad, &BTreeMap::new()).is_err(), "{bad}");
    }
    run(&e, "INSERT INTO s (id, v, w) VALUES ('a', 1, 2);");
    assert!(e.wait_idle(Duration::from_secs(20)));
    assert_eq!(
        topic_values(&broker, "O"),
        vec![serde_json::json!({"V": 1})]
    );
    e.shutdown();
}
