//! The JDBC-style sink against a real PostgreSQL, checked with queries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use runnel_connect_api::{
    Config, ConnectError, ConnectorPlugin, Schema, SinkRecord, SinkTask, Struct, Value,
};
use std::sync::Arc;

fn sink_config(db: &TestDb, extra: &[(&str, &str)]) -> Config {
    let (h, p) = host_port();
    let mut c: Config = [
        ("connector.class", "JdbcSinkConnector"),
        (
            "connection.url",
            format!("jdbc:postgresql://{h}:{p}/{}", db.name).as_str(),
        ),
        ("connection.user", "postgres"),
        ("topics", "people"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        c.insert(k.to_string(), v.to_string());
    }
    c
}

fn start(config: &Config) -> Box<dyn SinkTask> {
    let mut t = runnel_connect_postgres::JdbcSinkTask::new();
    t.start(config, &ctx()).unwrap();
    Box::new(t)
}

fn key_schema() -> Arc<Schema> {
    Arc::new(Schema::struct_named("k").field("id", Schema::int32()))
}

fn value_schema(with_age: bool) -> Arc<Schema> {
    let mut s = Schema::struct_named("v")
        .field("id", Schema::int32())
        .field("name", Schema::string())
        .field("score", Schema::decimal(2).optional())
        .field("born", Schema::date().optional())
        .field("seen", Schema::timestamp().optional());
    if with_age {
        s = s.field("age", Schema::int64().optional());
    }
    Arc::new(s)
}

fn rec(offset: i64, id: i32, name: Option<&str>, with_age: bool) -> SinkRecord {
    let ks = key_schema();
    let key = Struct::new(ks.clone())
        .with("id", Value::Int32(id))
        .unwrap();
    let (value_schema, value) = match name {
        None => (None, Value::Null),
        Some(n) => {
            let vs = value_schema(with_age);
            let mut v = Struct::new(vs.clone())
                .with("id", Value::Int32(id))
                .unwrap()
                .with("name", Value::String(n.into()))
                .unwrap()
                .with("score", Value::Bytes(vec![0x04, 0xd2])) // 12.34
                .unwrap()
                .with("born", Value::Int32(19783))
                .unwrap()
                .with("seen", Value::Int64(1_709_251_200_123))
                .unwrap();
            if with_age {
                v.put("age", Value::Int64(40)).unwrap();
            }
            (Some((*vs).clone()), Value::Struct(v))
        }
    };
    SinkRecord {
        topic: "people".into(),
        partition: 0,
        offset,
        timestamp: None,
        key_schema: Some((*ks).clone()),
        key: Value::Struct(key),
        value_schema,
        value,
        headers: Vec::new(),
    }
}

fn rows(db: &TestDb, sql: &str) -> Vec<String> {
    db.client()
        .query(sql, &[])
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[test]
fn upsert_by_record_key_is_idempotent_and_tombstones_delete() {
    let db = TestDb::new("sink_upsert");
    let config = sink_config(
        &db,
        &[
            ("insert.mode", "upsert"),
            ("pk.mode", "record_key"),
            ("delete.enabled", "true"),
            ("auto.create", "true"),
        ],
    );
    let mut task = start(&config);
    let batch = vec![
        rec(0, 1, Some("ann"), false),
        rec(1, 2, Some("bob"), false),
        rec(2, 1, Some("ann2"), false),
    ];
    task.put(batch.clone()).unwrap();
    task.flush().unwrap();
    let q = "SELECT id || ':' || name || ':' || score || ':' || born || ':' || seen FROM people ORDER BY id";
    let want = [
        "1:ann2:12.34:2024-03-01:2024-03-01 00:00:00.123",
        "2:bob:12.34:2024-03-01:2024-03-01 00:00:00.123",
    ];
    assert_eq!(rows(&db, q), want);
    // Redelivery after a crash: the same records again change nothing.
    task.put(batch).unwrap();
    assert_eq!(rows(&db, q), want);
    // A tombstone deletes; again is harmless.
    task.put(vec![rec(3, 2, None, false)]).unwrap();
    task.put(vec![rec(3, 2, None, false)]).unwrap();
    assert_eq!(rows(&db, "SELECT name FROM people ORDER BY id"), ["ann2"]);
    let pk = rows(
        &db,
        "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'people'::regclass AND i.indisprimary",
    );
    assert_eq!(pk, ["id"]);
    task.stop();
}

#[test]
fn a_put_is_one_transaction() {
    let db = TestDb::new("sink_tx");
    db.client()
        .batch_execute("CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, score numeric, born date, seen timestamp)")
        .unwrap();
    let mut task = start(&sink_config(&db, &[("pk.mode", "record_key")]));
    // The second record violates the primary key: nothing of the put stays.
    let err = task
        .put(vec![
            rec(0, 1, Some("a"), false),
            rec(1, 1, Some("b"), false),
        ])
        .unwrap_err();
    assert!(matches!(err, ConnectError::Fatal(_)), "{err}");
    assert!(rows(&db, "SELECT name FROM people").is_empty());
    task.stop();
}

#[test]
fn insert_with_kafka_coordinates_ignores_redelivered_records() {
    let db = TestDb::new("sink_kafka");
    let config = sink_config(&db, &[("pk.mode", "kafka"), ("auto.create", "true")]);
    let mut task = start(&config);
    let batch = vec![rec(10, 1, Some("a"), false), rec(11, 1, Some("b"), false)];
    task.put(batch.clone()).unwrap();
    task.put(batch).unwrap();
    assert_eq!(
        rows(&db, "SELECT __connect_topic || '/' || __connect_partition || '/' || __connect_offset || '=' || name FROM people ORDER BY __connect_offset"),
        ["people/0/10=a", "people/0/11=b"]
    );
    task.stop();
}

#[test]
fn update_mode_changes_only_existing_rows() {
    let db = TestDb::new("sink_update");
    db.client()
        .batch_execute("CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, score numeric, born date, seen timestamp); INSERT INTO people (id, name) VALUES (1, 'old')")
        .unwrap();
    let mut task = start(&sink_config(
        &db,
        &[("insert.mode", "update"), ("pk.mode", "record_key")],
    ));
    task.put(vec![
        rec(0, 1, Some("new"), false),
        rec(1, 2, Some("absent"), false),
    ])
    .unwrap();
    assert_eq!(
        rows(&db, "SELECT id || name FROM people ORDER BY id"),
        ["1new"]
    );
    task.stop();
}

#[test]
fn auto_evolve_adds_new_optional_columns() {
    let db = TestDb::new("sink_evolve");
    let mut task = start(&sink_config(
        &db,
        &[
            ("insert.mode", "upsert"),
            ("pk.mode", "record_key"),
            ("auto.create", "true"),
            ("auto.evolve", "true"),
        ],
    ));
    task.put(vec![rec(0, 1, Some("a"), false)]).unwrap();
    task.put(vec![rec(1, 2, Some("b"), true)]).unwrap();
    assert_eq!(
        rows(
            &db,
            "SELECT id || ':' || coalesce(age::text, '-') FROM people ORDER BY id"
        ),
        ["1:-", "2:40"]
    );
    task.stop();

    // Without auto.evolve a new field is a configuration error.
    let db = TestDb::new("sink_noevolve");
    let mut task = start(&sink_config(
        &db,
        &[("pk.mode", "record_key"), ("auto.create", "true")],
    ));
    task.put(vec![rec(0, 1, Some("a"), false)]).unwrap();
    match task.put(vec![rec(1, 2, Some("b"), true)]) {
        Err(ConnectError::Config { field, .. }) => assert_eq!(field, "auto.evolve"),
        other => panic!("{other:?}"),
    }
    task.stop();
}

#[test]
fn record_value_keys_whitelists_and_schemaless_maps() {
    let db = TestDb::new("sink_value");
    let mut task = start(&sink_config(
        &db,
        &[
            ("insert.mode", "upsert"),
            ("pk.mode", "record_value"),
            ("pk.fields", "sku"),
            ("fields.whitelist", "sku,qty"),
            ("auto.create", "true"),
            ("table.name.format", "stock_${topic}"),
        ],
    ));
    let map = |sku: &str, qty: i64| SinkRecord {
        topic: "t1".into(),
        partition: 0,
        offset: 0,
        timestamp: None,
        key_schema: None,
        key: Value::Null,
        value_schema: None,
        value: Value::Map(vec![
            (Value::String("sku".into()), Value::String(sku.into())),
            (Value::String("qty".into()), Value::Int64(qty)),
            (Value::String("ignored".into()), Value::Boolean(true)),
        ]),
        headers: Vec::new(),
    };
    task.put(vec![map("a", 1), map("b", 2), map("a", 5)])
        .unwrap();
    assert_eq!(
        rows(&db, "SELECT sku || qty FROM stock_t1 ORDER BY sku"),
        ["a5", "b2"]
    );
    let cols = rows(&db, "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'stock_t1' ORDER BY 1");
    assert_eq!(cols, ["qty", "sku"]);
    task.stop();
}

#[test]
fn a_lost_connection_is_retriable_and_the_next_put_reconnects() {
    let db = TestDb::new("sink_lost");
    let mut task = start(&sink_config(
        &db,
        &[
            ("insert.mode", "upsert"),
            ("pk.mode", "record_key"),
            ("auto.create", "true"),
            ("retry.backoff.ms", "300"),
        ],
    ));
    task.put(vec![rec(0, 1, Some("a"), false)]).unwrap();
    admin()
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'runnel-connect-postgres'",
            &[&db.name],
        )
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let err = task.put(vec![rec(1, 2, Some("b"), false)]).unwrap_err();
    assert!(matches!(err, ConnectError::Retriable(_)), "{err}");
    let t0 = std::time::Instant::now();
    task.put(vec![rec(1, 2, Some("b"), false)]).unwrap();
    assert!(
        t0.elapsed() >= std::time::Duration::from_millis(250),
        "no backoff"
    );
    assert_eq!(rows(&db, "SELECT name FROM people ORDER BY id"), ["a", "b"]);
    task.stop();
}

#[test]
fn sink_configuration_errors_name_their_field() {
    let db = TestDb::new("sink_config");
    let plugin = runnel_connect_postgres::JdbcSinkConnector::new();
    let first_error = |extra: &[(&str, &str)]| -> Option<String> {
        plugin
            .validate(&sink_config(&db, extra))
            .into_iter()
            .find(|v| !v.errors.is_empty())
            .map(|v| v.name)
    };
    assert_eq!(first_error(&[]), None);
    assert_eq!(
        first_error(&[("delete.enabled", "true")]).as_deref(),
        Some("delete.enabled")
    );
    assert_eq!(
        first_error(&[("insert.mode", "upsert")]).as_deref(),
        Some("pk.mode")
    );
    assert_eq!(
        first_error(&[("insert.mode", "merge")]).as_deref(),
        Some("insert.mode")
    );
    assert_eq!(
        first_error(&[("connection.url", "mysql://x/y")]).as_deref(),
        Some("connection.url")
    );
    assert_eq!(
        first_error(&[("pk.mode", "kafka"), ("pk.fields", "a,b")]).as_deref(),
        Some("pk.fields")
    );
    // A missing table without auto.create.
    let mut task = start(&sink_config(&db, &[]));
    match task.put(vec![rec(0, 1, Some("a"), false)]) {
        Err(ConnectError::Config { field, .. }) => assert_eq!(field, "auto.create"),
        other => panic!("{other:?}"),
    }
    task.stop();
    let names: Vec<String> = runnel_connect_postgres::plugins()
        .iter()
        .map(|p| p.class().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "io.debezium.connector.postgresql.PostgresConnector",
            "io.confluent.connect.jdbc.JdbcSinkConnector"
        ]
    );
}

#[test]
fn a_large_put_is_written_whole() {
    let db = TestDb::new("sink_large");
    let mut task = start(&sink_config(
        &db,
        &[
            ("insert.mode", "upsert"),
            ("pk.mode", "record_key"),
            ("auto.create", "true"),
            ("batch.size", "500"),
        ],
    ));
    let batch: Vec<SinkRecord> = (0..5000)
        .map(|i| rec(i, (i % 4000) as i32, Some("n"), false))
        .collect();
    let t0 = std::time::Instant::now();
    task.put(batch).unwrap();
    eprintln!("5000 upserts in {:?}", t0.elapsed());
    assert_eq!(rows(&db, "SELECT count(*)::text FROM people"), ["4000"]);
    task.stop();
}
