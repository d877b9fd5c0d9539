//! Test support: a private PostgreSQL (RUNNEL_TEST_POSTGRES_URL or
//! scripts/postgres.sh), one database per test, an in-memory offset store
//! and a poll loop that acts like the runtime (store offsets, commit).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use runnel_connect_api::{
    Config, ConnectorContext, OffsetReader, SourceOffset, SourcePartition, SourceRecord,
    SourceTask, Struct, Value,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(u) = std::env::var("RUNNEL_TEST_POSTGRES_URL") {
            if !u.is_empty() {
                return u;
            }
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/postgres.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .arg("start")
            .output()
            .expect("run scripts/postgres.sh");
        assert!(
            out.status.success(),
            "postgres.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_string()
    })
}

/// (host, port) of the server.
pub fn host_port() -> (String, u16) {
    let url = server_url();
    let rest = url.split('@').nth(1).unwrap();
    let hostport = rest.split('/').next().unwrap();
    let (h, p) = hostport.rsplit_once(':').unwrap();
    (h.to_string(), p.parse().unwrap())
}

pub fn admin() -> postgres::Client {
    postgres::Client::connect(
        &format!("{} connect_timeout=10", url_params("postgres")),
        postgres::NoTls,
    )
    .unwrap()
}

fn url_params(db: &str) -> String {
    let (h, p) = host_port();
    format!("host={h} port={p} user=postgres dbname={db}")
}

/// A database of the test's own, dropped (with its slots) at the end.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn new(tag: &str) -> TestDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t_{tag}_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
                % 100_000
        );
        admin()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        TestDb { name }
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(
            &format!("{} connect_timeout=10", url_params(&self.name)),
            postgres::NoTls,
        )
        .unwrap()
    }

    /// The slot name to use (slots are per server, so per test).
    pub fn slot(&self) -> String {
        self.name.clone()
    }

    /// A source config for this database.
    pub fn source_config(&self, extra: &[(&str, &str)]) -> Config {
        let (h, p) = host_port();
        let mut c: Config = [
            (
                "connector.class",
                "io.debezium.connector.postgresql.PostgresConnector",
            ),
            ("database.hostname", h.as_str()),
            ("database.port", &p.to_string()),
            ("database.user", "postgres"),
            ("database.dbname", &self.name),
            ("topic.prefix", "srv"),
            ("slot.name", &self.slot()),
            ("publication.name", "dbz_publication"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            c.insert(k.to_string(), v.to_string());
        }
        c
    }

    pub fn slot_confirmed_flush(&self) -> Option<String> {
        admin()
            .query_opt(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.slot()],
            )
            .unwrap()
            .map(|r| r.get(0))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let mut a = admin();
        for _ in 0..100 {
            let r = a.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1",
                &[&self.name],
            );
            if r.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = a.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// Stored offsets, as the runtime's offset store.
#[derive(Default)]
pub struct MapOffsets(pub Mutex<HashMap<String, SourceOffset>>);

impl MapOffsets {
    fn key(p: &SourcePartition) -> String {
        serde_json::to_string(p).unwrap()
    }
    /// The stored offset of server `prefix`.
    pub fn offset_of(&self, prefix: &str) -> SourceOffset {
        let mut p = SourcePartition::new();
        p.insert("server".into(), serde_json::json!(prefix));
        self.offset(&p).expect("an offset is stored")
    }
    pub fn store(&self, p: &SourcePartition, o: &SourceOffset) {
        self.0.lock().unwrap().insert(Self::key(p), o.clone());
    }
}

impl OffsetReader for MapOffsets {
    fn offset(&self, partition: &SourcePartition) -> Option<SourceOffset> {
        self.0.lock().unwrap().get(&Self::key(partition)).cloned()
    }
}

pub fn ctx() -> ConnectorContext {
    ConnectorContext {
        connector: "pg".into(),
        task: 0,
    }
}

pub fn start_task(config: &Config, offsets: &MapOffsets) -> Box<dyn SourceTask> {
    let mut task = runnel_connect_postgres::PostgresSourceTask::new();
    task.start(config, &ctx(), offsets).unwrap();
    Box::new(task)
}

/// Polls like the runtime: after each poll, stores the last offset of the
/// records and calls `commit`. Returns once `pred` holds on the records
/// gathered (or panics after `timeout`).
pub fn poll_until(
    task: &mut dyn SourceTask,
    offsets: &MapOffsets,
    timeout: Duration,
    pred: impl Fn(&[SourceRecord]) -> bool,
) -> Vec<SourceRecord> {
    let deadline = Instant::now() + timeout;
    let mut all = Vec::new();
    loop {
        if pred(&all) {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "timed out with {} records: {:?}",
            all.len(),
            all.iter().map(summary).collect::<Vec<_>>()
        );
        let recs = task.poll().unwrap();
        if let Some(last) = recs.last() {
            offsets.store(&last.source_partition, &last.source_offset);
            task.commit(&[(last.source_partition.clone(), last.source_offset.clone())])
                .unwrap();
        }
        all.extend(recs);
    }
}

/// Data records only (no heartbeats).
pub fn data(records: &[SourceRecord]) -> Vec<&SourceRecord> {
    records
        .iter()
        .filter(|r| !r.topic.starts_with("__debezium-heartbeat"))
        .collect()
}

/// Polls for `quiet` and returns what came (expecting usually nothing).
pub fn drain(
    task: &mut dyn SourceTask,
    offsets: &MapOffsets,
    quiet: Duration,
) -> Vec<SourceRecord> {
    let until = Instant::now() + quiet;
    let mut all = Vec::new();
    while Instant::now() < until {
        let recs = task.poll().unwrap();
        if let Some(last) = recs.last() {
            offsets.store(&last.source_partition, &last.source_offset);
            task.commit(&[(last.source_partition.clone(), last.source_offset.clone())])
                .unwrap();
        }
        all.extend(recs);
    }
    all
}

pub fn field<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for p in path.split('.') {
        cur = match cur {
            Value::Struct(s) => s
                .get(p)
                .unwrap_or_else(|| panic!("no field {p} in {cur:?}")),
            _ => panic!("{p}: not a struct: {cur:?}"),
        };
    }
    cur
}

pub fn op(r: &SourceRecord) -> &str {
    if r.value.is_null() {
        return "tombstone";
    }
    field(&r.value, "op").as_str().unwrap()
}

pub fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an int: {v:?}"))
}

/// `op id` of a record whose key has an `id` column.
pub fn summary(r: &SourceRecord) -> String {
    let id = match &r.key {
        Value::Struct(s) => format!("{:?}", s.get("id")),
        other => format!("{other:?}"),
    };
    format!("{} {} {}", r.topic, op(r), id)
}

pub fn key_id(r: &SourceRecord) -> i64 {
    match &r.key {
        Value::Struct(s) => int(s.get("id").unwrap()),
        other => panic!("no key: {other:?}"),
    }
}

pub fn struct_of(v: &Value) -> &Struct {
    v.as_struct().unwrap()
}
