//! The worker on an in-process broker: file source → topic → file sink,
//! a restart resuming from stored offsets, and an exactly-once source
//! crashing in the middle of a transaction.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_broker::{Broker, BrokerConfig};
use runnel_cluster::{
    Backend, BackendError, Cluster, ConsumedRecord, Guarantee, MemberInfo, NewTopic, PollEvent,
    ProducedRecord, TopicPartition,
};
use runnel_connect::storage::TargetState;
use runnel_connect::{Worker, WorkerConfig};
use runnel_connect_api::Config;
use runnel_embed::LocalCluster;

fn cfg(pairs: &[(&str, &str)]) -> Config {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn open(dir: &Path) -> Arc<Broker> {
    Broker::open(dir, BrokerConfig::default()).unwrap()
}

fn worker(cluster: Arc<dyn Cluster>, eos: bool) -> Worker {
    let config = WorkerConfig {
        exactly_once_source: eos,
        poll: Duration::from_millis(50),
        commit_interval: Duration::from_millis(100),
        ..WorkerConfig::default()
    };
    Worker::start(cluster, config, runnel_connect::builtin::plugins()).unwrap()
}

fn append(path: &Path, lines: std::ops::Range<usize>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in lines {
        writeln!(f, "line-{i}").unwrap();
    }
}

/// Every value of `topic` (read_committed), in partition order.
fn topic_values(cluster: &Arc<dyn Cluster>, topic: &str) -> Vec<String> {
    let mut b = cluster
        .backend("test-reader", Guarantee::AtLeastOnce)
        .unwrap();
    let n = b.partition_count(topic).unwrap().unwrap_or(0);
    let mut out = Vec::new();
    for p in 0..n {
        b.read_partition(&TopicPartition::new(topic, p), 0, &mut |r| {
            out.push(String::from_utf8(r.value.unwrap_or_default()).unwrap());
        })
        .unwrap();
    }
    out
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn source_config(file: &Path, topic: &str, batch: &str) -> Config {
    cfg(&[
        ("connector.class", "FileStreamSource"),
        ("file", file.to_str().unwrap()),
        ("topic", topic),
        ("batch.size", batch),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter",
        ),
    ])
}

fn expected(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("line-{i}")).collect()
}

#[test]
fn file_source_to_topic_to_file_sink() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir.path().join("log"));
    let cluster: Arc<dyn Cluster> = Arc::new(LocalCluster::new(broker.local()));
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    append(&input, 0..50);
    let w = worker(cluster.clone(), false);
    w.create("src", source_config(&input, "lines", "7"), None)
        .unwrap();
    w.create(
        "sink",
        cfg(&[
            (
                "connector.class",
                "org.apache.kafka.connect.file.FileStreamSinkConnector",
            ),
            ("file", output.to_str().unwrap()),
            ("topics", "lines"),
            (
                "value.converter",
                "org.apache.kafka.connect.storage.StringConverter",
            ),
        ]),
        None,
    )
    .unwrap();
    let read = || std::fs::read_to_string(&output).unwrap_or_default();
    wait_for("the sink file", Duration::from_secs(20), || {
        read().lines().count() >= 50
    });
    append(&input, 50..60);
    wait_for("the appended lines", Duration::from_secs(20), || {
        read().lines().count() >= 60
    });
    let lines: Vec<String> = read().lines().map(str::to_string).collect();
    assert_eq!(lines, expected(60));
    assert_eq!(topic_values(&cluster, "lines"), expected(60));
    let status = w.status("src").unwrap();
    assert_eq!(status["tasks"][0]["state"], "RUNNING", "{status}");
    assert_eq!(w.active_topics("sink").unwrap(), vec!["lines".to_string()]);
    // The sink commits its consumer offsets after what it wrote, every
    // commit interval: the file can hold all 60 lines before the commit
    // of the last ones (CI saw 50 committed then).
    let committed = || w.offsets("sink").unwrap()["offsets"][0]["offset"]["kafka_offset"].clone();
    wait_for(
        "the sink's committed offset",
        Duration::from_secs(20),
        || committed() == 60,
    );
    w.shutdown();
}

#[test]
fn a_restarted_worker_resumes_from_stored_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir.path().join("log"));
    let cluster: Arc<dyn Cluster> = Arc::new(LocalCluster::new(broker.local()));
    let input = dir.path().join("in.txt");
    append(&input, 0..20);
    let w = worker(cluster.clone(), false);
    w.create("src", source_config(&input, "t", "3"), None)
        .unwrap();
    wait_for("20 records", Duration::from_secs(20), || {
        topic_values(&cluster, "t").len() >= 20
    });
    w.shutdown();
    drop(w);
    append(&input, 20..35);
    // A new worker: the connector, its tasks and its offsets come from
    // the topics alone.
    let w = worker(cluster.clone(), false);
    assert_eq!(w.connectors(), vec!["src".to_string()]);
    wait_for("35 records", Duration::from_secs(20), || {
        topic_values(&cluster, "t").len() >= 35
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(topic_values(&cluster, "t"), expected(35));
    let offsets = w.offsets("src").unwrap();
    let size = std::fs::metadata(&input).unwrap().len();
    assert_eq!(
        offsets["offsets"][0]["offset"]["position"], size,
        "{offsets}"
    );
    // A stopped connector stays stopped across a restart.
    w.set_target("src", TargetState::Stopped).unwrap();
    w.shutdown();
    drop(w);
    let w = worker(cluster.clone(), false);
    assert_eq!(w.status("src").unwrap()["connector"]["state"], "STOPPED");
    assert!(w.tasks("src").unwrap().is_empty());
    w.shutdown();
}

/// A cluster whose source-task backends "crash" at their Nth commit: the
/// commit fails and nothing is cleaned up (no abort), as when the process
/// dies between sending records and committing them.
struct Crashing {
    inner: LocalCluster,
    /// Commits left before the crash (negative: never).
    left: Arc<AtomicI64>,
}

struct CrashingBackend {
    inner: Box<dyn Backend>,
    left: Arc<AtomicI64>,
}

impl Backend for CrashingBackend {
    fn partition_count(&mut self, topic: &str) -> Result<Option<i32>, BackendError> {
        self.inner.partition_count(topic)
    }
    fn create_topic(
        &mut self,
        t: &str,
        p: i32,
        c: &[(String, String)],
    ) -> Result<(), BackendError> {
        self.inner.create_topic(t, p, c)
    }
    fn subscribe(&mut self, topics: &[String]) -> Result<(), BackendError> {
        self.inner.subscribe(topics)
    }
    fn poll(&mut self, timeout: Duration) -> Result<Vec<PollEvent>, BackendError> {
        self.inner.poll(timeout)
    }
    fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), BackendError> {
        self.inner.seek(tp, offset)
    }
    fn committed(&mut self, tps: &[TopicPartition]) -> Result<Vec<Option<i64>>, BackendError> {
        self.inner.committed(tps)
    }
    fn begin(&mut self) -> Result<(), BackendError> {
        self.inner.begin()
    }
    fn send(&mut self, records: Vec<ProducedRecord>) -> Result<(), BackendError> {
        if self.left.load(Ordering::SeqCst) == 0 {
            return Err(BackendError::Fatal("crashed".into()));
        }
        self.inner.send(records)
    }
    fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), BackendError> {
        if self.left.fetch_sub(1, Ordering::SeqCst) == 1 {
            return Err(BackendError::Fatal("crashed before the commit".into()));
        }
        self.inner.commit(offsets)
    }
    fn abort(&mut self) -> Result<(), BackendError> {
        // A dead process aborts nothing.
        Ok(())
    }
    fn end_offsets(&mut self, tps: &[TopicPartition]) -> Result<Vec<i64>, BackendError> {
        self.inner.end_offsets(tps)
    }
    fn group_members(&mut self) -> Result<Vec<MemberInfo>, BackendError> {
        self.inner.group_members()
    }
    fn read_partition(
        &mut self,
        tp: &TopicPartition,
        from: i64,
        f: &mut dyn FnMut(ConsumedRecord),
    ) -> Result<i64, BackendError> {
        self.inner.read_partition(tp, from, f)
    }
}

impl Cluster for Crashing {
    fn backend(&self, app: &str, g: Guarantee) -> Result<Box<dyn Backend>, BackendError> {
        let inner = self.inner.backend(app, g)?;
        if app.ends_with("-src-0") {
            return Ok(Box::new(CrashingBackend {
                inner,
                left: self.left.clone(),
            }));
        }
        Ok(inner)
    }
    fn topics(&self) -> Result<Vec<(String, i32)>, BackendError> {
        self.inner.topics()
    }
    fn create_topic(&self, topic: &NewTopic) -> Result<(), BackendError> {
        self.inner.create_topic(topic)
    }
    fn delete_topic(&self, topic: &str) -> Result<(), BackendError> {
        self.inner.delete_topic(topic)
    }
    fn delete_group(&self, group: &str) -> Result<(), BackendError> {
        self.inner.delete_group(group)
    }
}

/// Runs a file source that crashes at its third commit, then a fresh
/// worker on the same topics; returns what the topic holds.
fn crash_and_resume(eos: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir.path().join("log"));
    let local = LocalCluster::new(broker.local());
    let left = Arc::new(AtomicI64::new(3));
    let crashing: Arc<dyn Cluster> = Arc::new(Crashing {
        inner: local.clone(),
        left: left.clone(),
    });
    let input = dir.path().join("in.txt");
    append(&input, 0..30);
    let w = worker(crashing.clone(), eos);
    w.create("src", source_config(&input, "t", "4"), None)
        .unwrap();
    wait_for("the task to fail", Duration::from_secs(20), || {
        w.status("src").unwrap()["tasks"][0]["state"] == "FAILED"
    });
    let trace = w.status("src").unwrap()["tasks"][0]["trace"].clone();
    assert!(trace.as_str().unwrap().contains("crashed"), "{trace}");
    w.shutdown();
    drop(w);
    // The worker comes back (the crash is over).
    left.store(-1, Ordering::SeqCst);
    let cluster: Arc<dyn Cluster> = Arc::new(local);
    let w = worker(cluster.clone(), eos);
    wait_for("30 records", Duration::from_secs(20), || {
        topic_values(&cluster, "t").len() >= 30
    });
    std::thread::sleep(Duration::from_millis(300));
    w.shutdown();
    topic_values(&cluster, "t")
}

#[test]
fn exactly_once_source_survives_a_crash_in_a_transaction() {
    assert_eq!(crash_and_resume(true), expected(30));
}

#[test]
fn at_least_once_source_repeats_after_the_same_crash() {
    // What the test above guards against: without a transaction the
    // records of the crashed poll are in the log and are sent again.
    let values = crash_and_resume(false);
    assert!(values.len() > 30, "{values:?}");
    let mut dedup = values.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 30);
}

/// A sink that fails its first `put`s with a retriable error and
/// remembers what it was given.
struct Flaky {
    fail_first: usize,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
    puts: Arc<AtomicI64>,
}

struct FlakyTask {
    fail_first: usize,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
    puts: Arc<AtomicI64>,
}

impl runnel_connect_api::ConnectorPlugin for Flaky {
    fn class(&self) -> &str {
        "com.example.FlakySink"
    }
    fn kind(&self) -> runnel_connect_api::ConnectorKind {
        runnel_connect_api::ConnectorKind::Sink
    }
    fn version(&self) -> &str {
        "1"
    }
    fn config_def(&self) -> runnel_connect_api::ConfigDef {
        runnel_connect_api::ConfigDef::new()
    }
    fn task_configs(
        &self,
        config: &Config,
        _max: usize,
    ) -> Result<Vec<Config>, runnel_connect_api::ConnectError> {
        Ok(vec![config.clone()])
    }
    fn sink_task(
        &self,
    ) -> Result<Box<dyn runnel_connect_api::SinkTask>, runnel_connect_api::ConnectError> {
        Ok(Box::new(FlakyTask {
            fail_first: self.fail_first,
            seen: self.seen.clone(),
            puts: self.puts.clone(),
        }))
    }
}

impl runnel_connect_api::SinkTask for FlakyTask {
    fn start(
        &mut self,
        _: &Config,
        _: &runnel_connect_api::ConnectorContext,
    ) -> Result<(), runnel_connect_api::ConnectError> {
        Ok(())
    }
    fn put(
        &mut self,
        records: Vec<runnel_connect_api::SinkRecord>,
    ) -> Result<(), runnel_connect_api::ConnectError> {
        let n = self.puts.fetch_add(1, Ordering::SeqCst);
        if (n as usize) < self.fail_first {
            return Err(runnel_connect_api::ConnectError::Retriable(
                "database restarting".into(),
            ));
        }
        let mut seen = self.seen.lock().unwrap();
        for r in records {
            seen.push(format!("{:?}", r.value));
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), runnel_connect_api::ConnectError> {
        Ok(())
    }
    fn stop(&mut self) {}
}

fn produce(cluster: &Arc<dyn Cluster>, topic: &str, values: &[&[u8]]) {
    cluster.create_topic(&NewTopic::new(topic, 1)).unwrap();
    let mut b = cluster
        .backend("test-producer", Guarantee::AtLeastOnce)
        .unwrap();
    let recs = values
        .iter()
        .map(|v| ProducedRecord {
            topic: topic.into(),
            partition: 0,
            timestamp: 1,
            key: None,
            value: Some(v.to_vec()),
            headers: Vec::new(),
        })
        .collect();
    b.send(recs).unwrap();
    b.commit(&[]).unwrap();
}

#[test]
fn a_sink_retries_retriable_puts_and_dead_letters_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(&dir.path().join("log"));
    let cluster: Arc<dyn Cluster> = Arc::new(LocalCluster::new(broker.local()));
    produce(&cluster, "in", &[br#"{"a":1}"#, b"not json", br#"{"a":2}"#]);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let puts = Arc::new(AtomicI64::new(0));
    let mut plugins = runnel_connect::builtin::plugins();
    plugins.push(Arc::new(Flaky {
        fail_first: 2,
        seen: seen.clone(),
        puts: puts.clone(),
    }));
    let config = WorkerConfig {
        poll: Duration::from_millis(50),
        commit_interval: Duration::from_millis(100),
        ..WorkerConfig::default()
    };
    let w = Worker::start(cluster.clone(), config, plugins).unwrap();
    w.create(
        "flaky",
        cfg(&[
            ("connector.class", "com.example.FlakySink"),
            ("topics", "in"),
            (
                "value.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            ),
            ("value.converter.schemas.enable", "false"),
            ("errors.tolerance", "all"),
            ("errors.deadletterqueue.topic.name", "dlq"),
            ("errors.deadletterqueue.context.headers.enable", "true"),
        ]),
        None,
    )
    .unwrap();
    wait_for("the good records", Duration::from_secs(20), || {
        seen.lock().unwrap().len() >= 2
    });
    assert!(
        puts.load(Ordering::SeqCst) >= 3,
        "put again after the retriable errors"
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(topic_values(&cluster, "dlq"), vec!["not json".to_string()]);
    let mut b = cluster.backend("test-dlq", Guarantee::AtLeastOnce).unwrap();
    let mut headers = Vec::new();
    b.read_partition(&TopicPartition::new("dlq", 0), 0, &mut |r| {
        headers = r.headers
    })
    .unwrap();
    let h = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.clone())
            .map(|v| String::from_utf8(v).unwrap())
    };
    assert_eq!(h("__connect.errors.topic").as_deref(), Some("in"));
    assert_eq!(h("__connect.errors.offset").as_deref(), Some("1"));
    assert_eq!(
        h("__connect.errors.stage").as_deref(),
        Some("VALUE_CONVERTER")
    );
    assert_eq!(
        h("__connect.errors.connector.name").as_deref(),
        Some("flaky")
    );
    assert!(h("__connect.errors.exception.message").is_some());
    assert_eq!(w.status("flaky").unwrap()["tasks"][0]["state"], "RUNNING");
    // Without tolerance the same bad record fails the task, naming why.
    w.put_config(
        "flaky",
        cfg(&[
            ("connector.class", "com.example.FlakySink"),
            ("topics", "in"),
            (
                "value.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            ),
            ("value.converter.schemas.enable", "false"),
        ]),
    )
    .unwrap();
    w.reset_offsets("flaky").unwrap_err(); // only while STOPPED
    w.set_target("flaky", TargetState::Stopped).unwrap();
    w.reset_offsets("flaky").unwrap();
    w.set_target("flaky", TargetState::Started).unwrap();
    wait_for("the task to fail", Duration::from_secs(20), || {
        w.status("flaky").unwrap()["tasks"][0]["state"] == "FAILED"
    });
    let trace = w.status("flaky").unwrap()["tasks"][0]["trace"].clone();
    assert!(
        trace.as_str().unwrap().contains("Tolerance exceeded"),
        "{trace}"
    );
    w.shutdown();
}
