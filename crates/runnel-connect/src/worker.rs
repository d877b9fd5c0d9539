//! The worker: reads the config topic and runs what it says — a thread
//! per task —, stores source offsets, writes statuses, and answers the
//! REST API's operations. Every call blocks (it may read or write topics):
//! call it from a blocking thread.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use runnel_cluster::{
    Backend, BackendError, Cluster, Guarantee, NewTopic, ProducedRecord, TopicPartition,
};
use runnel_connect_api::{
    Config, ConfigValue, ConnectError, ConnectorKind, ConnectorPlugin, SourceOffset,
    SourcePartition,
};
use serde_json::{json, Value as Json};
use tracing::{debug, info, warn};

use crate::error::WorkerError;
use crate::storage::{self, ConfigRecord, ConfigState, State, Status, TargetState};
use crate::task;
use crate::validate;

/// How a worker finds its topics, its group and its defaults (Kafka
/// Connect's distributed worker properties).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `group.id`: the Connect cluster this worker belongs to.
    pub group_id: String,
    /// `config.storage.topic`.
    pub config_topic: String,
    /// `offset.storage.topic`.
    pub offset_topic: String,
    /// `offset.storage.partitions` (25 as in Kafka).
    pub offset_partitions: i32,
    /// `status.storage.topic`.
    pub status_topic: String,
    /// `status.storage.partitions` (5 as in Kafka).
    pub status_partitions: i32,
    /// How this worker names itself in statuses and where the other
    /// workers of its group forward requests to: its REST `host:port`.
    pub worker_id: String,
    /// `rest.advertised.host.name`: the host in `worker_id` (default: the
    /// listener's address).
    pub advertised_host: Option<String>,
    /// `rest.advertised.port`: the port in `worker_id` (default: the
    /// listener's).
    pub advertised_port: Option<u16>,
    /// `exactly.once.source.support=enabled`: a source poll's records and
    /// offsets commit in one transaction (KIP-618).
    pub exactly_once_source: bool,
    /// Worker-level connector defaults: `key.converter`,
    /// `value.converter` and their `key.converter.*` settings.
    pub defaults: Config,
    /// How often the config topic is read for changes other workers made.
    pub poll: Duration,
    /// `offset.flush.interval.ms`: how often sink tasks flush and commit.
    pub commit_interval: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            group_id: "connect-cluster".into(),
            config_topic: "connect-configs".into(),
            offset_topic: "connect-offsets".into(),
            offset_partitions: 25,
            status_topic: "connect-status".into(),
            status_partitions: 5,
            worker_id: "127.0.0.1:8083".into(),
            advertised_host: None,
            advertised_port: None,
            exactly_once_source: false,
            defaults: Config::new(),
            poll: Duration::from_millis(200),
            commit_interval: Duration::from_secs(1),
        }
    }
}

impl WorkerConfig {
    /// A config from Kafka Connect's worker property names (unknown
    /// properties are kept as connector defaults when they are converter
    /// settings, ignored otherwise). Errors name the property.
    pub fn from_properties(props: &[(String, String)]) -> Result<WorkerConfig, WorkerError> {
        let mut c = WorkerConfig::default();
        for (k, v) in props {
            let bad = |what: &str| {
                WorkerError::BadRequest(format!("Invalid value {v} for configuration {k}: {what}"))
            };
            match k.as_str() {
                "group.id" => c.group_id = v.clone(),
                "rest.advertised.host.name" => {
                    if v.is_empty() || v.contains(['@', '/', ':']) {
                        return Err(bad("Not a host name"));
                    }
                    c.advertised_host = Some(v.clone())
                }
                "rest.advertised.port" => {
                    c.advertised_port = Some(
                        v.parse()
                            .ok()
                            .filter(|p| *p > 0)
                            .ok_or_else(|| bad("Not a port"))?,
                    )
                }
                "config.storage.topic" => c.config_topic = v.clone(),
                "offset.storage.topic" => c.offset_topic = v.clone(),
                "status.storage.topic" => c.status_topic = v.clone(),
                "offset.storage.partitions" => {
                    c.offset_partitions = v
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad("Not a positive INT"))?
                }
                "status.storage.partitions" => {
                    c.status_partitions = v
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad("Not a positive INT"))?
                }
                "exactly.once.source.support" => {
                    c.exactly_once_source = match v.to_ascii_lowercase().as_str() {
                        "enabled" => true,
                        "disabled" | "preparing" => false,
                        _ => {
                            return Err(bad("String must be one of: disabled, enabled, preparing"))
                        }
                    }
                }
                "offset.flush.interval.ms" => {
                    let ms: u64 = v.parse().map_err(|_| bad("Not a number of type LONG"))?;
                    c.commit_interval = Duration::from_millis(ms.max(10));
                }
                k if k.starts_with("key.converter")
                    || k.starts_with("value.converter")
                    || k.starts_with("header.converter") =>
                {
                    c.defaults.insert(k.to_string(), v.clone());
                }
                other => {
                    tracing::debug!(property = other, "connect worker property not used");
                }
            }
        }
        Ok(c)
    }
}

/// The generation statuses are written with (one worker: one generation).
const GENERATION: i32 = 1;

/// How long stopping waits for a task thread.
const TASK_STOP_WAIT: Duration = Duration::from_secs(10);

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What a running task is told.
#[derive(Debug, Default)]
pub(crate) struct TaskControl {
    pub stop: AtomicBool,
    pub paused: AtomicBool,
}

struct TaskRun {
    config: Config,
    control: Arc<TaskControl>,
    thread: Option<JoinHandle<()>>,
}

impl TaskRun {
    fn stop(&mut self) {
        self.control.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.thread.take() {
            let deadline = Instant::now() + TASK_STOP_WAIT;
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            } else {
                warn!("a task did not stop within {TASK_STOP_WAIT:?}; leaving it behind");
            }
        }
    }
}

#[derive(Default)]
struct ConnectorRun {
    /// The config the task configs were made from (`None`: make them again).
    config: Option<Config>,
    tasks: BTreeMap<i32, TaskRun>,
}

/// Statuses as this worker knows them (and wrote to the status topic).
#[derive(Default)]
struct Statuses {
    connectors: BTreeMap<String, Status>,
    tasks: BTreeMap<(String, i32), Status>,
    topics: BTreeMap<String, BTreeSet<String>>,
    /// What this worker runs (its statuses of them are the current ones).
    owned_connectors: BTreeSet<String>,
    owned_tasks: BTreeSet<(String, i32)>,
    /// Tasks with a thread here: from just before their first status is
    /// written until their thread stopped.
    running: BTreeSet<(String, i32)>,
    /// Tasks this worker owns but has not started: their previous owner,
    /// still a member of the group, has not said it stopped them yet.
    waiting: BTreeSet<(String, i32)>,
}

/// The offsets topic as read so far.
struct Offsets {
    reader: Box<dyn Backend>,
    next: Vec<i64>,
    by_connector: BTreeMap<String, Vec<(SourcePartition, SourceOffset)>>,
}

impl Offsets {
    fn apply(
        &mut self,
        connector: String,
        partition: SourcePartition,
        offset: Option<SourceOffset>,
    ) {
        let list = self.by_connector.entry(connector).or_default();
        list.retain(|(p, _)| *p != partition);
        if let Some(o) = offset {
            list.push((partition, o));
        }
    }
}

pub(crate) struct Inner {
    pub cluster: Arc<dyn Cluster>,
    pub config: WorkerConfig,
    pub plugins: Vec<Arc<dyn ConnectorPlugin>>,
    state: RwLock<ConfigState>,
    config_reader: Mutex<Box<dyn Backend>>,
    writer: Mutex<Box<dyn Backend>>,
    offsets: Mutex<Offsets>,
    statuses: Mutex<Statuses>,
    runtime: Mutex<BTreeMap<String, ConnectorRun>>,
    stopping: AtomicBool,
    follower: Mutex<Option<JoinHandle<()>>>,
    membership: Mutex<Option<JoinHandle<()>>>,
    /// The group's members and this worker's own id (`None`: not known
    /// yet, or the cluster cannot tell: this worker runs everything).
    members: RwLock<Option<Membership>>,
    /// Next offset of each status topic partition to read.
    status_next: Mutex<Vec<i64>>,
    offset_partitions: i32,
    status_partitions: i32,
}

/// The group as the membership thread last read it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Membership {
    /// Member ids, sorted.
    ids: Vec<String>,
    /// This worker's member id.
    me: String,
    /// The REST address (`host:port`) each member advertises in its
    /// `client.id` (`…@host:port`), where it does.
    urls: BTreeMap<String, String>,
}

/// Where a request about a connector or a task must be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Here: this worker owns it (or is alone, or cannot tell).
    Local,
    /// At the worker with this REST address (`host:port`).
    Remote(String),
    /// Nowhere known right now (its owner advertises no address and has
    /// written no status yet): a rebalance is under way.
    Unknown,
}

/// A connector as `GET /connectors/{name}` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorInfo {
    pub name: String,
    pub config: Config,
    pub tasks: Vec<i32>,
    pub kind: Option<ConnectorKind>,
}

impl ConnectorInfo {
    pub fn to_json(&self) -> Json {
        json!({
            "name": self.name,
            "config": self.config,
            "tasks": self.tasks.iter().map(|t| json!({"connector": self.name, "task": t})).collect::<Vec<_>>(),
            "type": self.kind.map_or("unknown", |k| k.as_str()),
        })
    }
}

/// The Kafka Connect worker; cheap to clone and share between threads.
#[derive(Clone)]
pub struct Worker {
    pub(crate) inner: Arc<Inner>,
}

fn store_err(e: BackendError) -> WorkerError {
    WorkerError::Store(e.to_string())
}

impl Worker {
    /// Starts a worker on `cluster` with `plugins`: creates the three
    /// topics if needed, replays them, starts every connector where it
    /// was, then follows the config topic.
    pub fn start(
        cluster: Arc<dyn Cluster>,
        config: WorkerConfig,
        plugins: Vec<Arc<dyn ConnectorPlugin>>,
    ) -> Result<Worker, WorkerError> {
        cluster
            .create_topic(&NewTopic::new(&config.config_topic, 1).compacted())
            .map_err(store_err)?;
        cluster
            .create_topic(
                &NewTopic::new(&config.offset_topic, config.offset_partitions).compacted(),
            )
            .map_err(store_err)?;
        cluster
            .create_topic(
                &NewTopic::new(&config.status_topic, config.status_partitions).compacted(),
            )
            .map_err(store_err)?;
        let app = |what: &str| format!("{}-{what}", config.group_id);
        let config_reader = cluster
            .backend(&app("config-reader"), Guarantee::AtLeastOnce)
            .map_err(store_err)?;
        let mut offsets_reader = cluster
            .backend(&app("offsets-reader"), Guarantee::AtLeastOnce)
            .map_err(store_err)?;
        let mut writer = cluster
            .backend(&app("writer"), Guarantee::AtLeastOnce)
            .map_err(store_err)?;
        let offset_partitions = offsets_reader
            .partition_count(&config.offset_topic)
            .map_err(store_err)?
            .unwrap_or(config.offset_partitions)
            .max(1);
        let status_partitions = writer
            .partition_count(&config.status_topic)
            .map_err(store_err)?
            .unwrap_or(config.status_partitions)
            .max(1);
        let worker = Worker {
            inner: Arc::new(Inner {
                cluster,
                plugins,
                state: RwLock::new(ConfigState::default()),
                config_reader: Mutex::new(config_reader),
                writer: Mutex::new(writer),
                offsets: Mutex::new(Offsets {
                    reader: offsets_reader,
                    next: vec![0; usize::try_from(offset_partitions).unwrap_or(1)],
                    by_connector: BTreeMap::new(),
                }),
                statuses: Mutex::new(Statuses::default()),
                runtime: Mutex::new(BTreeMap::new()),
                stopping: AtomicBool::new(false),
                follower: Mutex::new(None),
                membership: Mutex::new(None),
                members: RwLock::new(None),
                status_next: Mutex::new(vec![0; usize::try_from(status_partitions).unwrap_or(1)]),
                offset_partitions,
                status_partitions,
                config,
            }),
        };
        let started = Instant::now();
        let n = worker.catch_up()?;
        worker.inner.read_offsets()?;
        worker.read_statuses()?;
        info!(
            records = n,
            connectors = worker.inner.state().connectors.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "connect worker: config topic replayed"
        );
        worker.join_group()?;
        worker.reconcile();
        let weak = Arc::downgrade(&worker.inner);
        let poll = worker.inner.config.poll;
        let span = worker.inner.span();
        let follower = std::thread::Builder::new()
            .name("connect-config-follower".into())
            .spawn(move || loop {
                let _span = span.enter();
                std::thread::sleep(poll);
                let Some(inner) = weak.upgrade() else { return };
                if inner.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let w = Worker { inner };
                if let Err(e) = w.read_statuses() {
                    warn!(error = %e, "connect worker: cannot read the status topic");
                }
                // Tasks waiting for their previous owner to release them
                // are looked at again after each read of the status topic.
                let waiting = !lock(&w.inner.statuses).waiting.is_empty();
                match w.catch_up() {
                    Ok(0) if !waiting => {}
                    Ok(_) => w.reconcile(),
                    Err(e) => warn!(error = %e, "connect worker: cannot read the config topic"),
                }
            })
            .map_err(|e| WorkerError::Store(format!("cannot start the config follower: {e}")))?;
        *lock(&worker.inner.follower) = Some(follower);
        Ok(worker)
    }

    /// Joins the group `group.id` (a consumer of the config topic) and
    /// follows its membership on a thread of its own: after each
    /// rebalance every worker reads the member ids and computes the same
    /// assignment ([`crate::assign`]), stopping what it no longer owns and
    /// starting what it now owns. Waits (30 s at most) for the first
    /// membership, so a worker joining a running group does not start
    /// everything first.
    fn join_group(&self) -> Result<(), WorkerError> {
        let mut backend = self
            .inner
            .cluster
            .backend(&self.inner.config.group_id, Guarantee::AtLeastOnce)
            .map_err(store_err)?;
        backend
            .subscribe(std::slice::from_ref(&self.inner.config.config_topic))
            .map_err(store_err)?;
        let weak = Arc::downgrade(&self.inner);
        let span = self.inner.span();
        let handle = std::thread::Builder::new()
            .name("connect-membership".into())
            .spawn(move || {
                let _span = span.enter();
                let mut last_check = Instant::now() - Duration::from_secs(60);
                loop {
                    let Some(inner) = weak.upgrade() else { return };
                    if inner.stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let rebalanced = match backend.poll(Duration::from_millis(200)) {
                        Ok(events) => events
                            .iter()
                            .any(|e| !matches!(e, runnel_cluster::PollEvent::Records(_))),
                        Err(e) => {
                            warn!(error = %e, "connect worker: group membership poll failed");
                            std::thread::sleep(Duration::from_millis(500));
                            false
                        }
                    };
                    if !rebalanced && last_check.elapsed() < Duration::from_secs(2) {
                        continue;
                    }
                    last_check = Instant::now();
                    let members = match backend.group_members() {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::debug!(error = %e, "connect worker: group members unknown");
                            continue;
                        }
                    };
                    let Some(me) = members.iter().find(|m| m.is_self).map(|m| m.member_id.clone()) else {
                        continue;
                    };
                    let urls: BTreeMap<String, String> = members
                        .iter()
                        .filter_map(|m| Some((m.member_id.clone(), m.endpoint.clone()?)))
                        .collect();
                    let mut ids: Vec<String> = members.into_iter().map(|m| m.member_id).collect();
                    ids.sort();
                    ids.dedup();
                    let changed = {
                        let mut cur = inner.members.write().unwrap_or_else(|p| p.into_inner());
                        let changed = cur.as_ref().is_none_or(|m| m.ids != ids || m.me != me);
                        *cur = Some(Membership { ids: ids.clone(), me: me.clone(), urls });
                        changed
                    };
                    if changed {
                        info!(members = ids.len(), me = %me, "connect worker: group membership changed; reassigning");
                        Worker { inner }.reconcile();
                    }
                }
            })
            .map_err(|e| WorkerError::Store(format!("cannot start the membership thread: {e}")))?;
        *lock(&self.inner.membership) = Some(handle);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .inner
            .members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
        {
            if Instant::now() > deadline {
                warn!("connect worker: group membership not known after 30 s; running every connector here");
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// What this worker runs now.
    fn owned(&self, state: &ConfigState) -> crate::assign::Owned {
        match &*self.inner.members.read().unwrap_or_else(|p| p.into_inner()) {
            Some(m) => crate::assign::assign(state, &m.ids, &m.me),
            None => crate::assign::everything(state),
        }
    }

    /// Where a request about connector `name` (`task: None`) or one of
    /// its tasks must be handled: at the member the assignment gives it
    /// to — every worker computes the same one —, reached at the REST
    /// address that member advertises; failing that, at the worker its
    /// status names (the worker that wrote it last, which the owner
    /// makes sure of).
    pub fn route(&self, name: &str, task: Option<i32>) -> Route {
        let state = self.inner.state().clone();
        let membership = self
            .inner
            .members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(m) = membership else {
            return Route::Local;
        };
        let owns = |owned: &crate::assign::Owned| match task {
            None => owned.connectors.contains(name),
            Some(id) => owned.tasks.contains(&(name.to_string(), id)),
        };
        let owner = m
            .ids
            .iter()
            .find(|id| owns(&crate::assign::assign(&state, &m.ids, id)));
        match owner {
            Some(id) if *id == m.me => return Route::Local,
            Some(id) => {
                if let Some(url) = m.urls.get(id) {
                    return Route::Remote(url.clone());
                }
            }
            // Not in the config topic as read here: whoever answers
            // answers for it (a 404 as a rule).
            None => return Route::Local,
        }
        let st = lock(&self.inner.statuses);
        let status = match task {
            None => st.connectors.get(name),
            Some(id) => st.tasks.get(&(name.to_string(), id)),
        };
        match status {
            Some(s) if s.worker_id != self.inner.config.worker_id => {
                Route::Remote(s.worker_id.clone())
            }
            _ => Route::Unknown,
        }
    }

    /// The group's member ids as this worker last saw them.
    pub fn members(&self) -> Vec<String> {
        self.inner
            .members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|m| m.ids.clone())
            .unwrap_or_default()
    }

    /// Stops every task (they commit what they did and are released in
    /// the status topic), then the follower, then leaves the group — in
    /// that order, as a Kafka Connect worker stops its tasks before it
    /// leaves: the workers that take them over start them only after.
    pub fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        {
            let mut rt = lock(&self.inner.runtime);
            for (name, c) in rt.iter_mut() {
                for (id, t) in c.tasks.iter_mut() {
                    t.stop();
                    self.inner.release(name, *id);
                }
            }
            rt.clear();
        }
        if let Some(h) = lock(&self.inner.follower).take() {
            let _ = h.join();
        }
        if let Some(h) = lock(&self.inner.membership).take() {
            let _ = h.join();
        }
        info!("connect worker stopped");
    }

    /// The worker's configuration.
    pub fn config(&self) -> &WorkerConfig {
        &self.inner.config
    }

    /// The plugins it runs.
    pub fn plugins(&self) -> &[Arc<dyn ConnectorPlugin>] {
        &self.inner.plugins
    }

    /// Applies config records written since the last call; returns how many.
    pub fn catch_up(&self) -> Result<usize, WorkerError> {
        let mut reader = lock(&self.inner.config_reader);
        let from = self.inner.state().next_offset;
        let tp = TopicPartition::new(&self.inner.config.config_topic, 0);
        let mut records = Vec::new();
        let end = reader
            .read_partition(&tp, from, &mut |r| {
                if r.offset >= from {
                    records.push(r);
                }
            })
            .map_err(store_err)?;
        let n = records.len();
        let mut state = self.inner.state.write().unwrap_or_else(|p| p.into_inner());
        for r in records {
            let Some(key) = r.key.as_deref() else {
                continue;
            };
            let rec = ConfigRecord::decode(key, r.value.as_deref());
            if rec == ConfigRecord::Other {
                tracing::debug!(key = %String::from_utf8_lossy(key), "config record read past");
            }
            state.apply(rec);
        }
        state.next_offset = state.next_offset.max(end);
        Ok(n)
    }

    /// Reads the status topic from where the last call stopped: the
    /// statuses other workers wrote (and this one's, read back) and the
    /// connectors' active topics.
    fn read_statuses(&self) -> Result<(), WorkerError> {
        let mut reader = lock(&self.inner.config_reader);
        let mut next = lock(&self.inner.status_next);
        let mut records = Vec::new();
        for p in 0..self.inner.status_partitions {
            let i = usize::try_from(p).unwrap_or(0);
            let from = next.get(i).copied().unwrap_or(0);
            let tp = TopicPartition::new(&self.inner.config.status_topic, p);
            let end = reader
                .read_partition(&tp, from, &mut |r| {
                    if r.offset >= from {
                        records.push(r);
                    }
                })
                .map_err(store_err)?;
            if let Some(n) = next.get_mut(i) {
                *n = (*n).max(end);
            }
        }
        drop(reader);
        // Statuses this worker writes again: another worker's status for
        // something this one runs means the other one ran it too (its view
        // of the group lagged or led this one's) and wrote after this
        // worker did. Left alone, that record would be the last word in
        // the topic while this worker never writes an unchanged status
        // again: every other worker would show the task where it no longer
        // runs, for good. Writing ours after it makes the owner's status
        // the last one; the two stop once their views of the group agree.
        let mut reassert: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        let mut touched: Vec<(String, i32)> = Vec::new();
        let me = &self.inner.config.worker_id;
        let mut st = lock(&self.inner.statuses);
        for r in records {
            let Some(key) = r.key.as_deref().and_then(|k| std::str::from_utf8(k).ok()) else {
                continue;
            };
            if let Some((topic, connector)) = storage::decode_topic_status_key(key) {
                let set = st.topics.entry(connector).or_default();
                if r.value.is_some() {
                    set.insert(topic);
                } else {
                    set.remove(&topic);
                }
                continue;
            }
            let status = r.value.as_deref().and_then(Status::decode);
            // A status another worker wrote for what this worker runs
            // now is stale (it ran it before a reassignment): kept out.
            let from_other = status
                .as_ref()
                .is_some_and(|s| s.worker_id != self.inner.config.worker_id);
            if let Some(name) = key.strip_prefix("status-connector-") {
                if from_other && st.owned_connectors.contains(name) {
                    if let Some(mine) = st.connectors.get(name).filter(|s| s.worker_id == *me) {
                        reassert.push((key.to_string(), Some(mine.encode())));
                    }
                    continue;
                }
                match status {
                    Some(s) => st.connectors.insert(name.to_string(), s),
                    None => st.connectors.remove(name),
                };
            } else if let Some(rest) = key.strip_prefix("status-task-") {
                let Some((name, id)) = rest
                    .rsplit_once('-')
                    .and_then(|(n, i)| Some((n.to_string(), i.parse::<i32>().ok()?)))
                else {
                    continue;
                };
                if from_other && st.running.contains(&(name.clone(), id)) {
                    if let Some(mine) = st
                        .tasks
                        .get(&(name.clone(), id))
                        .filter(|s| s.worker_id == *me)
                    {
                        reassert.push((key.to_string(), Some(mine.encode())));
                    }
                    continue;
                }
                touched.push((name.clone(), id));
                match status {
                    Some(s) => st.tasks.insert((name, id), s),
                    None => st.tasks.remove(&(name, id)),
                };
            }
        }
        // Statuses naming this worker as running a task it does not run
        // (it ran it before it restarted, or its release was lost): the
        // task is released, or the barrier of `reconcile_once` would keep
        // its new owner waiting for good.
        touched.sort();
        touched.dedup();
        let unclaimed: Vec<(String, i32)> = touched
            .into_iter()
            .filter(|k| {
                st.tasks
                    .get(k)
                    .is_some_and(|s| s.worker_id == *me && s.state.is_active())
                    && !st.running.contains(k)
            })
            .collect();
        drop(st);
        for (name, id) in unclaimed {
            debug!(connector = %name, task = id, "the status topic says this worker runs a task it does not: releasing it");
            self.inner
                .set_task_status(&name, id, State::Unassigned, None);
        }
        if !reassert.is_empty() {
            // One record per key is enough (the last one read decided).
            reassert.sort();
            reassert.dedup_by(|a, b| a.0 == b.0);
            tracing::debug!(
                records = reassert.len(),
                "connect worker: another worker wrote statuses of what runs here; writing ours again"
            );
            self.inner.write_status_records(reassert);
        }
        Ok(())
    }

    /// Writes config records and waits until they are applied here.
    fn write_config(&self, records: &[ConfigRecord]) -> Result<(), WorkerError> {
        let topic = &self.inner.config.config_topic;
        let out: Vec<ProducedRecord> = records
            .iter()
            .filter_map(ConfigRecord::encode)
            .map(|(k, v)| ProducedRecord {
                topic: topic.clone(),
                partition: 0,
                timestamp: now_ms(),
                key: Some(k),
                value: v,
                headers: Vec::new(),
            })
            .collect();
        {
            let mut w = lock(&self.inner.writer);
            w.send(out).map_err(store_err)?;
            w.commit(&[]).map_err(store_err)?;
        }
        self.catch_up()?;
        Ok(())
    }

    /// Starts, stops and reconfigures tasks until they match the config
    /// topic.
    pub fn reconcile(&self) {
        // Task configs written in one pass change the assignment: a few
        // passes until nothing is written.
        for _ in 0..3 {
            if !self.reconcile_once() {
                break;
            }
        }
    }

    /// One pass of [`Self::reconcile`]; true when it wrote task configs.
    fn reconcile_once(&self) -> bool {
        if self.inner.stopping.load(Ordering::SeqCst) {
            return false;
        }
        let mut rt = lock(&self.inner.runtime);
        let state = self.inner.state().clone();
        let owned = self.owned(&state);
        {
            let mut st = lock(&self.inner.statuses);
            st.owned_connectors = owned.connectors.clone();
            st.owned_tasks = owned.tasks.clone();
            st.waiting.clear();
        }
        let mut wrote = false;
        // Deleted connectors.
        let gone: Vec<String> = rt
            .keys()
            .filter(|n| !state.connectors.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(mut c) = rt.remove(&name) {
                for (_, t) in c.tasks.iter_mut() {
                    t.stop();
                }
            }
            self.inner.forget_status(&name);
        }
        for (name, config) in &state.connectors {
            let target = state.target(name);
            let owner = owned.connectors.contains(name);
            let run = rt.entry(name.clone()).or_default();
            if target == TargetState::Stopped {
                for (_, t) in run.tasks.iter_mut() {
                    t.stop();
                }
                let ids: Vec<i32> = run.tasks.keys().copied().collect();
                run.tasks.clear();
                run.config = None;
                if !owner {
                    continue;
                }
                let stale: Vec<i32> = lock(&self.inner.statuses)
                    .tasks
                    .keys()
                    .filter(|(n, _)| n == name)
                    .map(|(_, i)| *i)
                    .chain(ids)
                    .collect();
                for id in stale {
                    self.inner.delete_task_status(name, id);
                }
                self.inner.set_connector_status(name, State::Stopped, None);
                if state.tasks.get(name).is_some_and(|t| !t.is_empty()) {
                    if let Err(e) = self.write_config(&[ConfigRecord::Commit(name.clone(), 0)]) {
                        warn!(connector = %name, error = %e, "cannot clear the task configs of a stopped connector");
                    }
                }
                continue;
            }
            let stored = self
                .inner
                .state()
                .tasks
                .get(name)
                .cloned()
                .unwrap_or_default();
            if owner && (run.config.as_ref() != Some(config) || stored.is_empty()) {
                match self.inner.make_task_configs(name, config) {
                    Ok(tasks) => {
                        if tasks != stored {
                            let mut recs: Vec<ConfigRecord> = tasks
                                .iter()
                                .enumerate()
                                .map(|(i, c)| {
                                    ConfigRecord::Task(
                                        name.clone(),
                                        i32::try_from(i).unwrap_or(i32::MAX),
                                        Some(c.clone()),
                                    )
                                })
                                .collect();
                            recs.push(ConfigRecord::Commit(
                                name.clone(),
                                i32::try_from(tasks.len()).unwrap_or(i32::MAX),
                            ));
                            if let Err(e) = self.write_config(&recs) {
                                warn!(connector = %name, error = %e, "cannot write task configs");
                                continue;
                            }
                            wrote = true;
                        }
                        run.config = Some(config.clone());
                    }
                    Err(e) => {
                        warn!(connector = %name, error = %e, "connector failed");
                        for (_, t) in run.tasks.iter_mut() {
                            t.stop();
                        }
                        run.tasks.clear();
                        run.config = Some(config.clone());
                        self.inner
                            .set_connector_status(name, State::Failed, Some(e.to_string()));
                        continue;
                    }
                }
            }
            let paused = target == TargetState::Paused;
            let failed = lock(&self.inner.statuses)
                .connectors
                .get(name)
                .is_some_and(|s| s.state == State::Failed);
            if owner && !(failed && run.config.as_ref() == Some(config)) {
                self.inner.set_connector_status(
                    name,
                    if paused {
                        State::Paused
                    } else {
                        State::Running
                    },
                    None,
                );
            }
            let tasks = self
                .inner
                .state()
                .tasks
                .get(name)
                .cloned()
                .unwrap_or_default();
            // Tasks beyond the count stop.
            let extra: Vec<i32> = run
                .tasks
                .keys()
                .copied()
                .filter(|i| usize::try_from(*i).map_or(true, |i| i >= tasks.len()))
                .collect();
            for id in extra {
                if let Some(mut t) = run.tasks.remove(&id) {
                    t.stop();
                }
                if owner {
                    self.inner.delete_task_status(name, id);
                }
            }
            for (i, tc) in tasks.iter().enumerate() {
                let id = i32::try_from(i).unwrap_or(i32::MAX);
                if !owned.tasks.contains(&(name.clone(), id)) {
                    // Another worker's now: stop it here, then say so —
                    // the new owner starts it only after reading that.
                    if let Some(mut t) = run.tasks.remove(&id) {
                        t.stop();
                        self.inner.release(name, id);
                    }
                    continue;
                }
                if !run.tasks.contains_key(&id) && !self.inner.released(name, id) {
                    // Still running at its previous owner: started once
                    // that one says it stopped it (or leaves the group).
                    debug!(connector = %name, task = id, "task waits for its previous owner to release it");
                    lock(&self.inner.statuses)
                        .waiting
                        .insert((name.clone(), id));
                    continue;
                }
                let same = run.tasks.get(&id).is_some_and(|t| t.config == *tc);
                if same {
                    if let Some(t) = run.tasks.get(&id) {
                        let was = t.control.paused.swap(paused, Ordering::SeqCst);
                        if was != paused {
                            let running = t.thread.as_ref().is_some_and(|h| !h.is_finished());
                            if running {
                                self.inner.set_task_status(
                                    name,
                                    id,
                                    if paused {
                                        State::Paused
                                    } else {
                                        State::Running
                                    },
                                    None,
                                );
                            }
                        }
                    }
                    continue;
                }
                if let Some(mut old) = run.tasks.remove(&id) {
                    old.stop();
                }
                run.tasks
                    .insert(id, self.spawn_task(name, id, tc.clone(), paused));
            }
        }
        // Whatever stopped above (deleted, stopped, failed connectors,
        // tasks beyond the count) no longer runs here.
        let here: BTreeSet<(String, i32)> = rt
            .iter()
            .flat_map(|(n, c)| c.tasks.keys().map(move |i| (n.clone(), *i)))
            .collect();
        lock(&self.inner.statuses).running = here;
        wrote
    }

    fn spawn_task(&self, name: &str, id: i32, config: Config, paused: bool) -> TaskRun {
        let control = Arc::new(TaskControl::default());
        control.paused.store(paused, Ordering::SeqCst);
        let inner = self.inner.clone();
        let (n, c, ctl) = (name.to_string(), config.clone(), control.clone());
        {
            let mut st = lock(&self.inner.statuses);
            st.running.insert((name.to_string(), id));
            st.waiting.remove(&(name.to_string(), id));
        }
        self.inner.set_task_status(
            name,
            id,
            if paused {
                State::Paused
            } else {
                State::Running
            },
            None,
        );
        let thread = std::thread::Builder::new()
            .name(format!("connect-{name}-{id}"))
            .spawn(move || {
                let _span = inner.span().entered();
                task::run(inner, n, id, c, ctl)
            });
        let thread = match thread {
            Ok(h) => Some(h),
            Err(e) => {
                self.inner.set_task_status(
                    name,
                    id,
                    State::Failed,
                    Some(format!("cannot start a thread: {e}")),
                );
                None
            }
        };
        TaskRun {
            config,
            control,
            thread,
        }
    }

    // ---- operations of the REST API ----

    /// Connector names, sorted.
    pub fn connectors(&self) -> Vec<String> {
        self.inner.state().connectors.keys().cloned().collect()
    }

    /// A connector's config, tasks and type.
    pub fn info(&self, name: &str) -> Result<ConnectorInfo, WorkerError> {
        let state = self.inner.state();
        let config = state
            .connectors
            .get(name)
            .cloned()
            .ok_or_else(|| WorkerError::no_connector(name))?;
        let tasks = state.tasks.get(name).map_or(0, Vec::len);
        Ok(ConnectorInfo {
            name: name.to_string(),
            kind: self.inner.plugin_for(&config).ok().map(|p| p.kind()),
            config,
            tasks: (0..tasks)
                .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
                .collect(),
        })
    }

    /// Validates a connector config as a create would: the full
    /// validation body and its error count.
    pub fn validate(&self, config: &Config) -> Result<(Json, usize), WorkerError> {
        let class = config.get("connector.class").ok_or_else(|| {
            WorkerError::BadRequest(format!(
                "Connector config {{{}}} contains no connector type",
                config
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let plugin = self.inner.plugin(class)?;
        Ok(validate::validate(
            plugin.as_ref(),
            config,
            &self.inner.config.defaults,
        ))
    }

    fn check_config(&self, name: &str, config: &mut Config) -> Result<(), WorkerError> {
        if name.trim().is_empty() {
            return Err(WorkerError::BadRequest(
                "Connector name cannot be empty".into(),
            ));
        }
        if name.contains('/') || name.chars().any(char::is_control) {
            return Err(WorkerError::BadRequest(format!(
                "Connector name {name:?} contains a character that is not allowed"
            )));
        }
        match config.get("name") {
            Some(n) if n != name => {
                return Err(WorkerError::BadRequest(
                    "Connector name configuration (".to_string()
                        + n
                        + ") doesn't match connector name in the URL ("
                        + name
                        + ")",
                ))
            }
            _ => {
                config.insert("name".into(), name.to_string());
            }
        }
        if !config.contains_key("connector.class") {
            return Err(WorkerError::BadRequest(format!(
                "Connector config {{{}}} contains no connector type",
                config
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let messages = validate::error_messages(&self.validate(config)?.0);
        if !messages.is_empty() {
            return Err(WorkerError::BadRequest(format!(
                "Connector configuration is invalid and contains the following {} error(s):\n{}\nYou can also find the above list of errors at the endpoint `/connector-plugins/{{connectorType}}/config/validate`",
                messages.len(),
                messages.join("\n")
            )));
        }
        Ok(())
    }

    /// Creates a connector (409 when it exists).
    pub fn create(
        &self,
        name: &str,
        mut config: Config,
        initial: Option<TargetState>,
    ) -> Result<ConnectorInfo, WorkerError> {
        self.catch_up()?;
        if self.inner.state().connectors.contains_key(name) {
            return Err(WorkerError::Conflict(format!(
                "Connector {name} already exists"
            )));
        }
        self.check_config(name, &mut config)?;
        let mut recs = Vec::new();
        if let Some(t) = initial {
            recs.push(ConfigRecord::Target(name.to_string(), Some(t)));
        }
        recs.push(ConfigRecord::Connector(name.to_string(), Some(config)));
        self.write_config(&recs)?;
        self.reconcile();
        self.info(name)
    }

    /// Creates or updates a connector; `true` when it was created.
    pub fn put_config(
        &self,
        name: &str,
        mut config: Config,
    ) -> Result<(bool, ConnectorInfo), WorkerError> {
        self.catch_up()?;
        let exists = self.inner.state().connectors.contains_key(name);
        self.check_config(name, &mut config)?;
        self.write_config(&[ConfigRecord::Connector(name.to_string(), Some(config))])?;
        self.reconcile();
        Ok((!exists, self.info(name)?))
    }

    /// Changes some keys of a connector's config (`None` removes a key).
    pub fn patch_config(
        &self,
        name: &str,
        patch: BTreeMap<String, Option<String>>,
    ) -> Result<ConnectorInfo, WorkerError> {
        self.catch_up()?;
        let mut config = self.info(name)?.config;
        for (k, v) in patch {
            match v {
                Some(v) => {
                    config.insert(k, v);
                }
                None => {
                    config.remove(&k);
                }
            }
        }
        self.check_config(name, &mut config)?;
        self.write_config(&[ConfigRecord::Connector(name.to_string(), Some(config))])?;
        self.reconcile();
        self.info(name)
    }

    /// Deletes a connector.
    pub fn delete(&self, name: &str) -> Result<(), WorkerError> {
        self.catch_up()?;
        let n = self.info(name)?.tasks.len();
        let mut recs = vec![ConfigRecord::Connector(name.to_string(), None)];
        recs.push(ConfigRecord::Target(name.to_string(), None));
        for i in 0..n {
            recs.push(ConfigRecord::Task(
                name.to_string(),
                i32::try_from(i).unwrap_or(i32::MAX),
                None,
            ));
        }
        self.write_config(&recs)?;
        self.reconcile();
        Ok(())
    }

    /// Sets a connector's target state.
    pub fn set_target(&self, name: &str, target: TargetState) -> Result<(), WorkerError> {
        self.catch_up()?;
        self.info(name)?;
        self.write_config(&[ConfigRecord::Target(name.to_string(), Some(target))])?;
        self.reconcile();
        Ok(())
    }

    /// The connector's status body (`GET /connectors/{n}/status`).
    pub fn status(&self, name: &str) -> Result<Json, WorkerError> {
        let info = self.info(name)?;
        let st = lock(&self.inner.statuses);
        let unassigned = Status {
            state: State::Unassigned,
            trace: None,
            worker_id: self.inner.config.worker_id.clone(),
            generation: GENERATION,
        };
        let c = st.connectors.get(name).unwrap_or(&unassigned);
        let mut connector = json!({"state": c.state.as_str(), "worker_id": c.worker_id});
        if let Some(t) = &c.trace {
            connector["trace"] = json!(t);
        }
        let tasks: Vec<Json> = info
            .tasks
            .iter()
            .map(|id| {
                let s = st
                    .tasks
                    .get(&(name.to_string(), *id))
                    .unwrap_or(&unassigned);
                task_json(*id, s)
            })
            .collect();
        Ok(json!({
            "name": name,
            "connector": connector,
            "tasks": tasks,
            "type": info.kind.map_or("unknown", |k| k.as_str()),
        }))
    }

    /// One task's status.
    pub fn task_status(&self, name: &str, id: i32) -> Result<Json, WorkerError> {
        let info = self.info(name)?;
        if !info.tasks.contains(&id) {
            return Err(WorkerError::NotFound(format!(
                "No status found for task {name}-{id}"
            )));
        }
        let st = lock(&self.inner.statuses);
        Ok(match st.tasks.get(&(name.to_string(), id)) {
            Some(s) => task_json(id, s),
            None => {
                json!({"id": id, "state": "UNASSIGNED", "worker_id": self.inner.config.worker_id})
            }
        })
    }

    /// The task configs (`GET /connectors/{n}/tasks`).
    pub fn tasks(&self, name: &str) -> Result<Vec<(i32, Config)>, WorkerError> {
        self.info(name)?;
        Ok(self
            .inner
            .state()
            .tasks
            .get(name)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, c)| (i32::try_from(i).unwrap_or(i32::MAX), c))
            .collect())
    }

    /// Restarts one task wherever it runs: here, or at the worker that
    /// runs it (the request is forwarded to its REST API, as Kafka
    /// Connect does); `forward: false` (a request forwarded already)
    /// restarts it only here.
    pub fn restart_task_anywhere(
        &self,
        name: &str,
        id: i32,
        forward: bool,
    ) -> Result<(), WorkerError> {
        let info = self.info(name)?;
        if !info.tasks.contains(&id) {
            return Err(WorkerError::NotFound(format!("Unknown task: {name}-{id}")));
        }
        if !forward {
            return self.restart_task(name, id);
        }
        match self.route(name, Some(id)) {
            Route::Local => self.restart_task(name, id),
            Route::Remote(url) => crate::forward::post(
                &url,
                &format!(
                    "/connectors/{}/tasks/{id}/restart",
                    crate::forward::segment(name)
                ),
            ),
            Route::Unknown => Err(crate::forward::rebalancing(&format!("task {name}-{id}"))),
        }
    }

    /// Restarts a connector (not its tasks) where it runs, forwarding the
    /// request as [`Self::restart_task_anywhere`] does.
    fn restart_connector_anywhere(&self, name: &str, forward: bool) -> Result<(), WorkerError> {
        let route = if forward {
            self.route(name, None)
        } else {
            Route::Local
        };
        match route {
            Route::Local => {
                if let Some(run) = lock(&self.inner.runtime).get_mut(name) {
                    run.config = None;
                }
                self.reconcile();
                Ok(())
            }
            Route::Remote(url) => crate::forward::post(
                &url,
                &format!("/connectors/{}/restart", crate::forward::segment(name)),
            ),
            Route::Unknown => Err(crate::forward::rebalancing(&format!("connector {name}"))),
        }
    }

    /// Restarts one task here (409 when another worker runs it).
    pub fn restart_task(&self, name: &str, id: i32) -> Result<(), WorkerError> {
        let info = self.info(name)?;
        if !info.tasks.contains(&id) {
            return Err(WorkerError::NotFound(format!("Unknown task: {name}-{id}")));
        }
        let paused = self.inner.state().target(name) == TargetState::Paused;
        let owned = self.owned(&self.inner.state().clone());
        if !owned.tasks.contains(&(name.to_string(), id)) {
            return Err(crate::forward::rebalancing(&format!("task {name}-{id}")));
        }
        let mut rt = lock(&self.inner.runtime);
        let run = rt.entry(name.to_string()).or_default();
        if !run.tasks.contains_key(&id) && !self.inner.released(name, id) {
            // Its previous owner has not released it yet.
            return Err(crate::forward::rebalancing(&format!("task {name}-{id}")));
        }
        let config = match run.tasks.remove(&id) {
            Some(mut t) => {
                t.stop();
                t.config
            }
            None => self
                .tasks(name)?
                .into_iter()
                .find(|(i, _)| *i == id)
                .map(|(_, c)| c)
                .unwrap_or_default(),
        };
        run.tasks
            .insert(id, self.spawn_task(name, id, config, paused));
        Ok(())
    }

    /// Restarts a connector (and, with `include_tasks`, its tasks — only the
    /// failed ones with `only_failed`), each where it runs: the workers
    /// that run them are asked over their REST API unless `forward` is
    /// false (a forwarded request: only what runs here restarts). Returns
    /// the status body to answer with 202 when tasks were included or
    /// only failed ones asked for.
    pub fn restart(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
        forward: bool,
    ) -> Result<Option<Json>, WorkerError> {
        self.info(name)?;
        let connector_failed = lock(&self.inner.statuses)
            .connectors
            .get(name)
            .is_some_and(|s| s.state == State::Failed);
        let restart_connector = !only_failed || connector_failed;
        let mut restarted = Vec::new();
        if include_tasks {
            let failed: BTreeSet<i32> = lock(&self.inner.statuses)
                .tasks
                .iter()
                .filter(|((n, _), s)| n == name && s.state == State::Failed)
                .map(|((_, i), _)| *i)
                .collect();
            for (id, _) in self.tasks(name)? {
                if !only_failed || failed.contains(&id) {
                    restarted.push(id);
                }
            }
        }
        let body = (include_tasks || only_failed).then(|| {
            let mut s = self.status(name).unwrap_or(Json::Null);
            if restart_connector {
                s["connector"]["state"] = json!("RESTARTING");
            }
            if let Some(tasks) = s["tasks"].as_array_mut() {
                for t in tasks {
                    if t["id"]
                        .as_i64()
                        .is_some_and(|i| restarted.iter().any(|r| i64::from(*r) == i))
                    {
                        t["state"] = json!("RESTARTING");
                    }
                }
            }
            s
        });
        if restart_connector {
            self.restart_connector_anywhere(name, forward)?;
        }
        for id in restarted {
            self.restart_task_anywhere(name, id, forward)?;
        }
        Ok(body)
    }

    /// Topics the connector used (`GET /connectors/{n}/topics`).
    pub fn active_topics(&self, name: &str) -> Result<Vec<String>, WorkerError> {
        self.info(name)?;
        Ok(lock(&self.inner.statuses)
            .topics
            .get(name)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default())
    }

    /// Forgets the topics a connector used.
    pub fn reset_topics(&self, name: &str) -> Result<(), WorkerError> {
        let topics = self.active_topics(name)?;
        lock(&self.inner.statuses).topics.remove(name);
        let recs: Vec<(String, Option<Vec<u8>>)> = topics
            .iter()
            .map(|t| (storage::topic_status_key(t, name), None))
            .collect();
        self.inner.write_status_records(recs);
        Ok(())
    }

    fn require_stopped(&self, name: &str) -> Result<ConnectorInfo, WorkerError> {
        let info = self.info(name)?;
        if self.inner.state().target(name) != TargetState::Stopped {
            return Err(WorkerError::BadRequest(format!(
                "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
            )));
        }
        Ok(info)
    }

    /// The connector's offsets (`GET /connectors/{n}/offsets`).
    pub fn offsets(&self, name: &str) -> Result<Json, WorkerError> {
        let info = self.info(name)?;
        let list: Vec<Json> = match info.kind {
            Some(ConnectorKind::Sink) => self
                .sink_offsets(name, &info.config)?
                .into_iter()
                .map(|(tp, o)| {
                    json!({"partition": {"kafka_topic": tp.topic, "kafka_partition": tp.partition},
                           "offset": {"kafka_offset": o}})
                })
                .collect(),
            _ => {
                self.inner.read_offsets()?;
                self.inner
                    .offsets_of(name)
                    .into_iter()
                    .map(|(p, o)| json!({"partition": p, "offset": o}))
                    .collect()
            }
        };
        Ok(json!({ "offsets": list }))
    }

    fn sink_topics(&self, config: &Config) -> Result<Vec<String>, WorkerError> {
        task::sink_topics(&self.inner.cluster, config)
            .map_err(|e| WorkerError::BadRequest(e.to_string()))
    }

    fn sink_offsets(
        &self,
        name: &str,
        config: &Config,
    ) -> Result<Vec<(TopicPartition, i64)>, WorkerError> {
        let topics = self.sink_topics(config)?;
        let mut b = self
            .inner
            .cluster
            .backend(&task::sink_group(name), Guarantee::AtLeastOnce)
            .map_err(store_err)?;
        let mut tps = Vec::new();
        for t in topics {
            for p in 0..b.partition_count(&t).map_err(store_err)?.unwrap_or(0) {
                tps.push(TopicPartition::new(t.clone(), p));
            }
        }
        let committed = b.committed(&tps).map_err(store_err)?;
        Ok(tps
            .into_iter()
            .zip(committed)
            .filter_map(|(tp, o)| o.map(|o| (tp, o)))
            .collect())
    }

    /// Alters offsets of a stopped connector (`PATCH …/offsets`).
    pub fn alter_offsets(&self, name: &str, body: &Json) -> Result<Json, WorkerError> {
        let info = self.require_stopped(name)?;
        let list = body
            .get("offsets")
            .and_then(Json::as_array)
            .ok_or_else(|| {
                WorkerError::BadRequest("The request body must contain an 'offsets' array".into())
            })?;
        match info.kind {
            Some(ConnectorKind::Sink) => {
                let mut offs = Vec::new();
                for e in list {
                    let p = &e["partition"];
                    let topic = p["kafka_topic"].as_str().ok_or_else(|| {
                        WorkerError::BadRequest("Partitions for sink connectors must contain 'kafka_topic' and 'kafka_partition'".into())
                    })?;
                    let part = p["kafka_partition"].as_i64().and_then(|v| i32::try_from(v).ok()).ok_or_else(|| {
                        WorkerError::BadRequest("Partitions for sink connectors must contain 'kafka_topic' and 'kafka_partition'".into())
                    })?;
                    let off = e["offset"]["kafka_offset"].as_i64().ok_or_else(|| {
                        WorkerError::BadRequest("Offsets for sink connectors must contain 'kafka_offset' (a null offset is not supported here)".into())
                    })?;
                    if off < 0 {
                        return Err(WorkerError::BadRequest(
                            "Kafka offsets must be non-negative".into(),
                        ));
                    }
                    offs.push((TopicPartition::new(topic, part), off));
                }
                let mut b = self
                    .inner
                    .cluster
                    .backend(&task::sink_group(name), Guarantee::AtLeastOnce)
                    .map_err(store_err)?;
                b.commit(&offs).map_err(store_err)?;
            }
            _ => {
                let mut recs = Vec::new();
                for e in list {
                    let p = e["partition"].as_object().cloned().ok_or_else(|| {
                        WorkerError::BadRequest("Each entry must have a 'partition' object".into())
                    })?;
                    let o = match &e["offset"] {
                        Json::Null => None,
                        Json::Object(o) => Some(o.clone()),
                        _ => {
                            return Err(WorkerError::BadRequest(
                                "An offset must be an object or null".into(),
                            ))
                        }
                    };
                    recs.push((p, o));
                }
                self.inner.write_offsets(name, &recs)?;
            }
        }
        Ok(json!({"message": "The offsets for this connector have been altered successfully"}))
    }

    /// Resets every offset of a stopped connector (`DELETE …/offsets`).
    pub fn reset_offsets(&self, name: &str) -> Result<Json, WorkerError> {
        let info = self.require_stopped(name)?;
        match info.kind {
            Some(ConnectorKind::Sink) => {
                if let Err(e) = self.inner.cluster.delete_group(&task::sink_group(name)) {
                    // A group that never committed does not exist: nothing to reset.
                    tracing::debug!(error = %e, "sink group not deleted");
                }
            }
            _ => {
                self.inner.read_offsets()?;
                let recs: Vec<(SourcePartition, Option<SourceOffset>)> = self
                    .inner
                    .offsets_of(name)
                    .into_iter()
                    .map(|(p, _)| (p, None))
                    .collect();
                self.inner.write_offsets(name, &recs)?;
            }
        }
        Ok(json!({"message": "The offsets for this connector have been reset successfully"}))
    }
}

fn task_json(id: i32, s: &Status) -> Json {
    let mut j = json!({"id": id, "state": s.state.as_str(), "worker_id": s.worker_id});
    if let Some(t) = &s.trace {
        j["trace"] = json!(t);
    }
    j
}

impl Inner {
    pub(crate) fn state(&self) -> std::sync::RwLockReadGuard<'_, ConfigState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The plugin named `class` (its class name or an alias).
    pub(crate) fn plugin(&self, class: &str) -> Result<Arc<dyn ConnectorPlugin>, WorkerError> {
        self.plugins
            .iter()
            .find(|p| p.class() == class || p.aliases().iter().any(|a| a == class))
            .cloned()
            .ok_or_else(|| {
                WorkerError::BadRequest(format!(
                    "Failed to find any class that implements Connector and which name matches {class}, available connectors are: {}",
                    self.plugins.iter().map(|p| p.class().to_string()).collect::<Vec<_>>().join(", ")
                ))
            })
    }

    pub(crate) fn plugin_for(
        &self,
        config: &Config,
    ) -> Result<Arc<dyn ConnectorPlugin>, WorkerError> {
        let class = config
            .get("connector.class")
            .ok_or_else(|| WorkerError::BadRequest("no connector.class".into()))?;
        self.plugin(class)
    }

    fn make_task_configs(&self, name: &str, config: &Config) -> Result<Vec<Config>, ConnectError> {
        let plugin = self
            .plugin_for(config)
            .map_err(|e| ConnectError::Fatal(e.to_string()))?;
        let bad: Vec<String> = plugin
            .validate(config)
            .into_iter()
            .flat_map(|v: ConfigValue| v.errors)
            .collect();
        if !bad.is_empty() {
            return Err(ConnectError::Fatal(bad.join("; ")));
        }
        let max = config
            .get("tasks.max")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let mut tasks = plugin.task_configs(config, max)?;
        tasks.truncate(max);
        // Every task carries what the runtime needs (converters, transforms).
        for t in &mut tasks {
            for (k, v) in config {
                t.entry(k.clone()).or_insert_with(|| v.clone());
            }
            t.insert("task.class".into(), plugin.class().to_string());
        }
        let _ = name;
        Ok(tasks)
    }

    fn status_record(&self, key: String, status: Option<&Status>) -> (String, Option<Vec<u8>>) {
        (key, status.map(Status::encode))
    }

    pub(crate) fn write_status_records(&self, recs: Vec<(String, Option<Vec<u8>>)>) {
        if recs.is_empty() {
            return;
        }
        let topic = &self.config.status_topic;
        let out: Vec<ProducedRecord> = recs
            .into_iter()
            .map(|(k, v)| ProducedRecord {
                topic: topic.clone(),
                partition: runnel_cluster::partition_for(k.as_bytes(), self.status_partitions),
                timestamp: now_ms(),
                key: Some(k.into_bytes()),
                value: v,
                headers: Vec::new(),
            })
            .collect();
        let mut w = lock(&self.writer);
        if let Err(e) = w.send(out).and_then(|()| w.commit(&[])) {
            warn!(error = %e, "cannot write to the status topic");
        }
    }

    /// The span of this worker's threads: their log lines name it (a
    /// process may run several workers, e.g. in tests).
    fn span(&self) -> tracing::Span {
        tracing::info_span!("connect", worker = %self.config.worker_id)
    }

    /// Records that this worker stopped task `id` of `name` for good (it
    /// was reassigned, or the worker is leaving): UNASSIGNED with this
    /// worker's id, the word its next owner waits for.
    fn release(&self, name: &str, id: i32) {
        debug!(connector = %name, task = id, "task stopped here; releasing it");
        lock(&self.statuses).running.remove(&(name.to_string(), id));
        self.set_task_status(name, id, State::Unassigned, None);
    }

    /// Whether this worker may start task `id` of `name`: nobody else
    /// runs it as far as the status topic says — its last status is this
    /// worker's, or not an active one (UNASSIGNED, FAILED, …), or names
    /// a worker that is no longer a member of the group (it left, or its
    /// session timed out).
    fn released(&self, name: &str, id: i32) -> bool {
        let holder = match lock(&self.statuses).tasks.get(&(name.to_string(), id)) {
            Some(s) if s.worker_id != self.config.worker_id && s.state.is_active() => {
                s.worker_id.clone()
            }
            _ => return true,
        };
        let members = self.members.read().unwrap_or_else(|p| p.into_inner());
        !members
            .as_ref()
            .is_some_and(|m| m.urls.values().any(|u| *u == holder))
    }

    pub(crate) fn set_connector_status(&self, name: &str, state: State, trace: Option<String>) {
        let s = Status {
            state,
            trace,
            worker_id: self.config.worker_id.clone(),
            generation: GENERATION,
        };
        let changed = lock(&self.statuses)
            .connectors
            .insert(name.to_string(), s.clone())
            != Some(s.clone());
        if changed {
            let rec = self.status_record(storage::connector_status_key(name), Some(&s));
            self.write_status_records(vec![rec]);
        }
    }

    pub(crate) fn set_task_status(&self, name: &str, id: i32, state: State, trace: Option<String>) {
        let s = Status {
            state,
            trace,
            worker_id: self.config.worker_id.clone(),
            generation: GENERATION,
        };
        let changed = lock(&self.statuses)
            .tasks
            .insert((name.to_string(), id), s.clone())
            != Some(s.clone());
        if changed {
            let rec = self.status_record(storage::task_status_key(name, id), Some(&s));
            self.write_status_records(vec![rec]);
        }
    }

    fn delete_task_status(&self, name: &str, id: i32) {
        if lock(&self.statuses)
            .tasks
            .remove(&(name.to_string(), id))
            .is_some()
        {
            self.write_status_records(vec![(storage::task_status_key(name, id), None)]);
        }
    }

    fn forget_status(&self, name: &str) {
        let mut recs = vec![(storage::connector_status_key(name), None)];
        {
            let mut st = lock(&self.statuses);
            st.connectors.remove(name);
            let ids: Vec<i32> = st
                .tasks
                .keys()
                .filter(|(n, _)| n == name)
                .map(|(_, i)| *i)
                .collect();
            for id in ids {
                st.tasks.remove(&(name.to_string(), id));
                recs.push((storage::task_status_key(name, id), None));
            }
            for t in st.topics.remove(name).unwrap_or_default() {
                recs.push((storage::topic_status_key(&t, name), None));
            }
        }
        self.write_status_records(recs);
    }

    /// Notes that `connector`'s task `task` used `topic` (once per topic).
    pub(crate) fn note_topic(&self, connector: &str, task: i32, topic: &str) {
        let new = lock(&self.statuses)
            .topics
            .entry(connector.to_string())
            .or_default()
            .insert(topic.to_string());
        if new {
            self.write_status_records(vec![(
                storage::topic_status_key(topic, connector),
                Some(storage::topic_status_value(
                    topic,
                    connector,
                    task,
                    now_ms(),
                )),
            )]);
        }
    }

    /// Reads offset records written since the last call.
    pub(crate) fn read_offsets(&self) -> Result<(), WorkerError> {
        let mut o = lock(&self.offsets);
        let mut seen = Vec::new();
        for p in 0..self.offset_partitions {
            let i = usize::try_from(p).unwrap_or(0);
            let from = o.next.get(i).copied().unwrap_or(0);
            let tp = TopicPartition::new(&self.config.offset_topic, p);
            let end = o
                .reader
                .read_partition(&tp, from, &mut |r| {
                    if r.offset < from {
                        return;
                    }
                    if let Some(k) = r.key.as_deref() {
                        if let Some(dec) = storage::decode_offset(k, r.value.as_deref()) {
                            seen.push(dec);
                        }
                    }
                })
                .map_err(store_err)?;
            if let Some(n) = o.next.get_mut(i) {
                *n = (*n).max(end);
            }
        }
        for (c, p, off) in seen {
            o.apply(c, p, off);
        }
        Ok(())
    }

    /// The stored offsets of a connector (as last read).
    pub(crate) fn offsets_of(&self, connector: &str) -> Vec<(SourcePartition, SourceOffset)> {
        lock(&self.offsets)
            .by_connector
            .get(connector)
            .cloned()
            .unwrap_or_default()
    }

    /// The offset records of `offsets`, for a task's own transaction.
    pub(crate) fn offset_records(
        &self,
        connector: &str,
        offsets: &[(SourcePartition, Option<SourceOffset>)],
    ) -> Vec<ProducedRecord> {
        offsets
            .iter()
            .map(|(p, o)| {
                let key = storage::offset_key(connector, p);
                ProducedRecord {
                    topic: self.config.offset_topic.clone(),
                    partition: runnel_cluster::partition_for(&key, self.offset_partitions),
                    timestamp: now_ms(),
                    key: Some(key),
                    value: o
                        .as_ref()
                        .map(|o| Json::Object(o.clone()).to_string().into_bytes()),
                    headers: Vec::new(),
                }
            })
            .collect()
    }

    /// Writes offsets through the worker's producer and remembers them.
    pub(crate) fn write_offsets(
        &self,
        connector: &str,
        offsets: &[(SourcePartition, Option<SourceOffset>)],
    ) -> Result<(), WorkerError> {
        let recs = self.offset_records(connector, offsets);
        {
            let mut w = lock(&self.writer);
            w.send(recs).map_err(store_err)?;
            w.commit(&[]).map_err(store_err)?;
        }
        self.remember_offsets(connector, offsets);
        Ok(())
    }

    /// Notes offsets this worker wrote (or committed in a task's
    /// transaction).
    pub(crate) fn remember_offsets(
        &self,
        connector: &str,
        offsets: &[(SourcePartition, Option<SourceOffset>)],
    ) {
        let mut o = lock(&self.offsets);
        for (p, off) in offsets {
            o.apply(connector.to_string(), p.clone(), off.clone());
        }
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// A backend for a task, with its own app id.
    pub(crate) fn backend(
        &self,
        app: &str,
        g: Guarantee,
    ) -> Result<Box<dyn Backend>, BackendError> {
        self.cluster.backend(app, g)
    }
}

/// Counts of known plugin classes by kind (for logs).
pub fn describe_plugins(plugins: &[Arc<dyn ConnectorPlugin>]) -> HashMap<&'static str, usize> {
    let mut m = HashMap::new();
    for p in plugins {
        *m.entry(p.kind().as_str()).or_insert(0) += 1;
    }
    m
}
