//! Several workers of one group in one process, on one in-process broker,
//! each with a view of the group's membership the test sets: what the
//! status topic says while views disagree and after they agree again, and
//! that a task never runs on two workers at once while one joins or
//! leaves. Member `m-x` advertises worker id `x` (as `runnel connect`
//! workers advertise their REST address).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runnel_broker::{Broker, BrokerConfig};
use runnel_cluster::{
    Backend, BackendError, Cluster, ConsumedRecord, Guarantee, MemberInfo, NewTopic, PollEvent,
    ProducedRecord, TopicPartition,
};
use runnel_connect::{Worker, WorkerConfig};
use runnel_connect_api::Config;
use runnel_embed::LocalCluster;
use serde_json::Value as Json;

const GROUP: &str = "connect-cluster";

/// A cluster whose group backend reports the members in `view` (the
/// worker's own member id is `me`); every other call goes to `inner`.
struct Viewed {
    inner: LocalCluster,
    me: String,
    view: Arc<Mutex<Vec<String>>>,
    /// Other workers' views, which lose `me` when this worker's group
    /// membership ends (as the coordinator sees a member leave).
    seen_by: Vec<Arc<Mutex<Vec<String>>>>,
}

struct ViewedBackend {
    inner: Box<dyn Backend>,
    me: String,
    view: Arc<Mutex<Vec<String>>>,
    seen_by: Vec<Arc<Mutex<Vec<String>>>>,
}

impl Drop for ViewedBackend {
    fn drop(&mut self) {
        for v in &self.seen_by {
            v.lock().unwrap().retain(|m| *m != self.me);
        }
    }
}

impl Backend for ViewedBackend {
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
        self.inner.send(records)
    }
    fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), BackendError> {
        self.inner.commit(offsets)
    }
    fn abort(&mut self) -> Result<(), BackendError> {
        self.inner.abort()
    }
    fn end_offsets(&mut self, tps: &[TopicPartition]) -> Result<Vec<i64>, BackendError> {
        self.inner.end_offsets(tps)
    }
    fn group_members(&mut self) -> Result<Vec<MemberInfo>, BackendError> {
        Ok(self
            .view
            .lock()
            .unwrap()
            .iter()
            .map(|m| MemberInfo {
                member_id: m.clone(),
                client_id: m.clone(),
                host: "localhost".into(),
                endpoint: Some(m.trim_start_matches("m-").to_string()),
                partitions: Vec::new(),
                is_self: *m == self.me,
            })
            .collect())
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

impl Cluster for Viewed {
    fn backend(&self, app: &str, g: Guarantee) -> Result<Box<dyn Backend>, BackendError> {
        let inner = self.inner.backend(app, g)?;
        if app == GROUP {
            return Ok(Box::new(ViewedBackend {
                inner,
                me: self.me.clone(),
                view: self.view.clone(),
                seen_by: self.seen_by.clone(),
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

/// The workers' logs, captured with the test's output (shown when it
/// fails): what each worker saw and wrote is how a failure here is read.
/// `RUST_LOG` overrides the default level.
fn logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("runnel_connect=debug,info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_thread_names(true)
        .try_init();
}

fn view(members: &[&str]) -> Arc<Mutex<Vec<String>>> {
    Arc::new(Mutex::new(members.iter().map(|m| m.to_string()).collect()))
}

fn set(v: &Arc<Mutex<Vec<String>>>, members: &[&str]) {
    *v.lock().unwrap() = members.iter().map(|m| m.to_string()).collect();
}

fn worker(local: &LocalCluster, me: &str, id: &str, v: &Arc<Mutex<Vec<String>>>) -> Worker {
    worker_with(local, me, id, v, false)
}

fn worker_with(
    local: &LocalCluster,
    me: &str,
    id: &str,
    v: &Arc<Mutex<Vec<String>>>,
    exactly_once_source: bool,
) -> Worker {
    logs();
    let cluster: Arc<dyn Cluster> = Arc::new(Viewed {
        inner: local.clone(),
        me: me.into(),
        view: v.clone(),
        seen_by: Vec::new(),
    });
    let config = WorkerConfig {
        worker_id: id.into(),
        exactly_once_source,
        poll: Duration::from_millis(50),
        commit_interval: Duration::from_millis(100),
        ..WorkerConfig::default()
    };
    Worker::start(cluster, config, runnel_connect::builtin::plugins()).unwrap()
}

fn datagen(tasks: usize) -> Config {
    [
        ("connector.class", "DatagenConnector"),
        ("kafka.topic", "pageviews"),
        ("quickstart", "pageviews"),
        ("max.interval", "200"),
        ("tasks.max", &tasks.to_string()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The connector's worker and each task's `(state, worker)` as `w` shows them.
fn placement(w: &Worker, name: &str) -> (String, Vec<(String, String)>) {
    let s: Json = w.status(name).unwrap();
    let connector = s["connector"]["worker_id"].as_str().unwrap().to_string();
    let tasks = s["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["state"].as_str().unwrap().to_string(),
                t["worker_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (connector, tasks)
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn running_on(workers: &[&str]) -> Vec<(String, String)> {
    workers
        .iter()
        .map(|w| ("RUNNING".to_string(), w.to_string()))
        .collect()
}

/// Worker B's view of the group lags: for a moment it believes it is
/// alone and runs (and writes RUNNING for) every task, after A wrote its
/// own. Once B sees A again and stops A's tasks, both APIs must say where
/// each task runs — A's statuses must not stay buried under B's stale
/// ones (what made the two-worker compat test time out now and then).
#[test]
fn statuses_settle_on_the_owner_after_views_of_the_group_disagreed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(&dir.path().join("log"), BrokerConfig::default()).unwrap();
    let local = LocalCluster::new(broker.local());
    let both = ["m-a", "m-b"];
    let (va, vb) = (view(&both), view(&both));
    let a = worker(&local, "m-a", "a", &va);
    let b = worker(&local, "m-b", "b", &vb);
    a.create("dg", datagen(4), None).unwrap();
    // Over [m-a, m-b]: the connector and tasks 1 and 3 on m-a, tasks 0 and 2 on m-b.
    let split = ("a".to_string(), running_on(&["b", "a", "b", "a"]));
    wait_for("the split on both workers", Duration::from_secs(20), || {
        placement(&a, "dg") == split && placement(&b, "dg") == split
    });
    // B's view lags: it alone in the group, runs everything.
    set(&vb, &["m-b"]);
    let all_b = ("b".to_string(), running_on(&["b", "b", "b", "b"]));
    wait_for("B running everything", Duration::from_secs(20), || {
        placement(&b, "dg") == all_b
    });
    // B sees A again: both must show the split again.
    set(&vb, &both);
    wait_for(
        "the split again on both workers",
        Duration::from_secs(20),
        || placement(&a, "dg") == split && placement(&b, "dg") == split,
    );
    a.shutdown();
    b.shutdown();
}

/// Exactly-once sources during such a disagreement: A's view lags, so A
/// starts the task B runs, and A's producer fences B's (one
/// transactional id per task). B, which keeps the task, must start it
/// again rather than stay FAILED once A sees the group again and stops
/// its copy.
#[test]
fn a_fenced_exactly_once_task_starts_again_where_it_belongs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(&dir.path().join("log"), BrokerConfig::default()).unwrap();
    let local = LocalCluster::new(broker.local());
    let both = ["m-a", "m-b"];
    let (va, vb) = (view(&both), view(&both));
    let a = worker_with(&local, "m-a", "a", &va, true);
    let b = worker_with(&local, "m-b", "b", &vb, true);
    let mut config = datagen(1);
    config.insert("max.interval".into(), "20".into());
    a.create("dg", config, None).unwrap();
    // Over [m-a, m-b]: the connector on m-a, its task on m-b.
    let split = ("a".to_string(), running_on(&["b"]));
    wait_for("the split on both workers", Duration::from_secs(20), || {
        placement(&a, "dg") == split && placement(&b, "dg") == split
    });
    // A believes it is alone: it starts the task too and fences B's.
    set(&va, &["m-a"]);
    wait_for("A running the task too", Duration::from_secs(20), || {
        placement(&a, "dg").1 == running_on(&["a"])
    });
    std::thread::sleep(Duration::from_secs(1));
    set(&va, &both);
    wait_for(
        "the task running on B again",
        Duration::from_secs(30),
        || placement(&a, "dg") == split && placement(&b, "dg") == split,
    );
    // And it stays there, producing (a copy fenced a few times waits out
    // a growing backoff before it starts again: seconds under load).
    let end = || {
        local
            .backend("probe", Guarantee::AtLeastOnce)
            .unwrap()
            .end_offsets(&[TopicPartition::new("pageviews", 0)])
            .unwrap()[0]
    };
    let before = end();
    wait_for("new records from B", Duration::from_secs(20), || {
        end() > before
    });
    assert_eq!(placement(&a, "dg"), split);
    assert_eq!(placement(&b, "dg"), split);
    a.shutdown();
    b.shutdown();
}

/// Which worker runs which task of the `Tracked` connector, as the tasks
/// themselves report it (from `start` until the end of `stop`), and every
/// moment a task started while another worker still ran it.
#[derive(Default)]
struct Track {
    running: std::collections::BTreeMap<String, Vec<String>>,
    starts: Vec<(String, String)>,
    overlaps: Vec<String>,
}

/// A source connector whose tasks poll nothing and report their lives to
/// a [`Track`]; `worker` names the worker whose plugin this is.
struct Tracked {
    worker: String,
    track: Arc<Mutex<Track>>,
}

struct TrackedTask {
    worker: String,
    track: Arc<Mutex<Track>>,
    task: String,
}

impl runnel_connect_api::ConnectorPlugin for Tracked {
    fn class(&self) -> &str {
        "com.example.Tracked"
    }
    fn kind(&self) -> runnel_connect_api::ConnectorKind {
        runnel_connect_api::ConnectorKind::Source
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
        max: usize,
    ) -> Result<Vec<Config>, runnel_connect_api::ConnectError> {
        Ok((0..max)
            .map(|i| {
                let mut c = config.clone();
                c.insert("task.number".into(), i.to_string());
                c
            })
            .collect())
    }
    fn source_task(
        &self,
    ) -> Result<Box<dyn runnel_connect_api::SourceTask>, runnel_connect_api::ConnectError> {
        Ok(Box::new(TrackedTask {
            worker: self.worker.clone(),
            track: self.track.clone(),
            task: String::new(),
        }))
    }
}

impl runnel_connect_api::SourceTask for TrackedTask {
    fn start(
        &mut self,
        config: &Config,
        _: &runnel_connect_api::ConnectorContext,
        _: &dyn runnel_connect_api::OffsetReader,
    ) -> Result<(), runnel_connect_api::ConnectError> {
        self.task = config.get("task.number").cloned().unwrap_or_default();
        let mut t = self.track.lock().unwrap();
        let on = t.running.entry(self.task.clone()).or_default();
        if !on.is_empty() {
            let line = format!(
                "task {} started on {} while {:?} ran it",
                self.task, self.worker, on
            );
            t.overlaps.push(line);
        }
        t.running
            .entry(self.task.clone())
            .or_default()
            .push(self.worker.clone());
        t.starts.push((self.task.clone(), self.worker.clone()));
        Ok(())
    }
    fn poll(
        &mut self,
    ) -> Result<Vec<runnel_connect_api::SourceRecord>, runnel_connect_api::ConnectError> {
        std::thread::sleep(Duration::from_millis(20));
        Ok(Vec::new())
    }
    fn stop(&mut self) {
        // Stopping takes a while (a connector closing its connections):
        // a new owner that does not wait for it overlaps.
        std::thread::sleep(Duration::from_millis(300));
        let mut t = self.track.lock().unwrap();
        if let Some(on) = t.running.get_mut(&self.task) {
            on.retain(|w| *w != self.worker);
        }
    }
}

fn tracked_worker(
    local: &LocalCluster,
    me: &str,
    id: &str,
    v: &Arc<Mutex<Vec<String>>>,
    seen_by: Vec<Arc<Mutex<Vec<String>>>>,
    track: &Arc<Mutex<Track>>,
) -> Worker {
    logs();
    let cluster: Arc<dyn Cluster> = Arc::new(Viewed {
        inner: local.clone(),
        me: me.into(),
        view: v.clone(),
        seen_by,
    });
    let config = WorkerConfig {
        worker_id: id.into(),
        poll: Duration::from_millis(50),
        commit_interval: Duration::from_millis(100),
        ..WorkerConfig::default()
    };
    let plugin: Arc<dyn runnel_connect_api::ConnectorPlugin> = Arc::new(Tracked {
        worker: id.into(),
        track: track.clone(),
    });
    Worker::start(cluster, config, vec![plugin]).unwrap()
}

/// The barrier of a reassignment: worker A joins while B still believes
/// it is alone (B sees A 1.5 s later), then A shuts down and leaves. A
/// task moves only after its previous owner stopped it: A starts tasks 1
/// and 3 once B released them, B takes them back once A stopped them and
/// left — never both at once.
#[test]
fn no_task_runs_on_two_workers_while_one_joins_and_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(&dir.path().join("log"), BrokerConfig::default()).unwrap();
    let local = LocalCluster::new(broker.local());
    let track = Arc::new(Mutex::new(Track::default()));
    let vb = view(&["m-b"]);
    let b = tracked_worker(&local, "m-b", "b", &vb, Vec::new(), &track);
    let config: Config = [
        ("connector.class", "com.example.Tracked"),
        ("tasks.max", "4"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    b.create("tr", config, None).unwrap();
    let all_b = ("b".to_string(), running_on(&["b", "b", "b", "b"]));
    wait_for("B running every task", Duration::from_secs(20), || {
        placement(&b, "tr") == all_b
    });
    // A joins and sees both at once; B's view lags.
    let both = ["m-a", "m-b"];
    let va = view(&both);
    let a = tracked_worker(&local, "m-a", "a", &va, vec![vb.clone()], &track);
    std::thread::sleep(Duration::from_millis(1500));
    set(&vb, &both);
    let split = ("a".to_string(), running_on(&["b", "a", "b", "a"]));
    wait_for("the split on both workers", Duration::from_secs(20), || {
        placement(&a, "tr") == split && placement(&b, "tr") == split
    });
    // A leaves: B sees it gone once A's membership ends.
    a.shutdown();
    wait_for(
        "B running every task again",
        Duration::from_secs(20),
        || placement(&b, "tr").1 == all_b.1,
    );
    b.shutdown();
    let t = track.lock().unwrap();
    assert!(t.overlaps.is_empty(), "{:#?}", t.overlaps);
    let moved: Vec<&(String, String)> = t
        .starts
        .iter()
        .filter(|(task, _)| task == "1" || task == "3")
        .collect();
    assert_eq!(
        moved
            .iter()
            .filter(|(task, w)| task == "1" && w == "a")
            .count(),
        1,
        "{:?}",
        t.starts
    );
    assert_eq!(
        moved
            .iter()
            .filter(|(task, w)| task == "3" && w == "b")
            .count(),
        2,
        "{:?}",
        t.starts
    );
    assert!(
        t.running.values().all(|on| on.is_empty()),
        "{:?}",
        t.running
    );
}
