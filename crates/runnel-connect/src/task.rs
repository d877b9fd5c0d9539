//! A task's thread: the source loop (poll → convert → transform → send,
//! then offsets) and the sink loop (poll → convert → transform → put,
//! flush, commit).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;
use runnel_cluster::{
    Backend, BackendError, Cluster, ConsumedRecord, Guarantee, PollEvent, ProducedRecord,
    TopicPartition,
};
use runnel_connect_api::{
    Config, ConnectError, ConnectorContext, ConnectorPlugin, Header, OffsetReader, SinkRecord,
    SinkTask, SourceOffset, SourcePartition, SourceRecord, SourceTask,
};
use tracing::{error, info, warn};

use crate::convert::{self, Converter};
use crate::storage::State;
use crate::transforms::{Chain, Rec};
use crate::worker::{now_ms, Inner, TaskControl};

/// Why a task stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{0}")]
    Connect(#[from] ConnectError),
    #[error("{0}")]
    Backend(#[from] BackendError),
    #[error("{0}")]
    Setup(String),
    #[error("Tolerance exceeded in error handler: {0}")]
    Tolerance(String),
}

/// The consumer group of a sink connector.
pub fn sink_group(name: &str) -> String {
    format!("connect-{name}")
}

/// The topics a sink reads: `topics`, or the existing topics matching
/// `topics.regex`.
pub fn sink_topics(cluster: &Arc<dyn Cluster>, config: &Config) -> Result<Vec<String>, TaskError> {
    let list: Vec<String> = config
        .get("topics")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if !list.is_empty() {
        return Ok(list);
    }
    match config.get("topics.regex").filter(|r| !r.is_empty()) {
        Some(r) => {
            let re = Regex::new(&format!("^(?:{r})$"))
                .map_err(|e| TaskError::Setup(format!("Invalid topics.regex: {e}")))?;
            Ok(cluster
                .topics()?
                .into_iter()
                .map(|(t, _)| t)
                .filter(|t| re.is_match(t))
                .collect())
        }
        None => Err(TaskError::Setup(
            "Must configure one of topics or topics.regex".into(),
        )),
    }
}

/// The key, value and header converters of a connector (its settings
/// over the worker's).
pub struct Converters {
    pub key: Box<dyn Converter>,
    pub value: Box<dyn Converter>,
    pub header: Box<dyn Converter>,
}

impl Converters {
    pub fn new(config: &Config, defaults: &Config) -> Result<Converters, convert::ConvertError> {
        let make = |which: &str, is_key: bool| {
            let class = config
                .get(which)
                .or_else(|| defaults.get(which))
                .map_or(convert::JSON, String::as_str);
            let prefix = format!("{which}.");
            let mut settings = crate::transforms::sub_config(defaults, &prefix);
            settings.extend(crate::transforms::sub_config(config, &prefix));
            convert::converter(class, &settings, is_key)
        };
        let header = {
            let which = "header.converter";
            let class = config
                .get(which)
                .or_else(|| defaults.get(which))
                .filter(|c| !c.trim().is_empty())
                .map_or(convert::SIMPLE_HEADER, String::as_str);
            let mut settings = crate::transforms::sub_config(defaults, "header.converter.");
            settings.extend(crate::transforms::sub_config(config, "header.converter."));
            convert::header_converter(class, &settings)?
        };
        Ok(Converters {
            key: make("key.converter", true)?,
            value: make("value.converter", false)?,
            header,
        })
    }
}

/// How record errors are handled (`errors.*`).
struct Errors {
    tolerate: bool,
    log: bool,
    dlq: Option<String>,
    context_headers: bool,
    /// `errors.retry.timeout`: how long a retriable failure of a
    /// converter is tried again before `errors.tolerance` decides (0, the
    /// default: not at all; `None`: -1, for ever).
    retry_timeout: Option<Duration>,
    /// `errors.retry.delay.max.ms`: the longest wait between two tries
    /// (the waits start at 300 ms and double, as Kafka's).
    retry_delay_max: Duration,
}

/// The first wait between two tries of a retriable failure.
const RETRY_FIRST_DELAY: Duration = Duration::from_millis(300);

impl Errors {
    fn new(config: &Config) -> Errors {
        let flag = |k: &str| {
            config
                .get(k)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        };
        Errors {
            tolerate: config
                .get("errors.tolerance")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("all")),
            log: flag("errors.log.enable"),
            dlq: config
                .get("errors.deadletterqueue.topic.name")
                .filter(|t| !t.trim().is_empty())
                .cloned(),
            context_headers: flag("errors.deadletterqueue.context.headers.enable"),
            retry_timeout: match config
                .get("errors.retry.timeout")
                .and_then(|v| v.trim().parse::<i64>().ok())
            {
                Some(ms) if ms < 0 => None,
                Some(ms) => Some(Duration::from_millis(ms.unsigned_abs())),
                None => Some(Duration::ZERO),
            },
            retry_delay_max: Duration::from_millis(
                config
                    .get("errors.retry.delay.max.ms")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(60_000),
            ),
        }
    }

    /// Runs `f` again while it fails retriably (`retriable`), waiting
    /// 300 ms, then twice as long each time up to `errors.retry.delay.max.ms`,
    /// until `errors.retry.timeout` has passed since the first try (or
    /// the task stops); then its last result is the answer.
    fn retrying<T, E>(
        &self,
        control: &TaskControl,
        retriable: impl Fn(&E) -> bool,
        mut f: impl FnMut() -> Result<T, E>,
    ) -> Result<T, E> {
        let start = Instant::now();
        let mut delay = RETRY_FIRST_DELAY;
        loop {
            let result = f();
            match &result {
                Err(e) if retriable(e) => {}
                _ => return result,
            }
            let left = match self.retry_timeout {
                None => Duration::MAX,
                Some(t) => t.saturating_sub(start.elapsed()),
            };
            if left.is_zero() || control.stop.load(Ordering::SeqCst) {
                return result;
            }
            nap(control, delay.min(left));
            delay = (delay * 2).min(self.retry_delay_max.max(Duration::from_millis(1)));
        }
    }
}

struct Snapshot(Vec<(SourcePartition, SourceOffset)>);

impl OffsetReader for Snapshot {
    fn offset(&self, partition: &SourcePartition) -> Option<SourceOffset> {
        self.0
            .iter()
            .find(|(p, _)| p == partition)
            .map(|(_, o)| o.clone())
    }
}

/// Runs one task until it is told to stop or fails.
pub(crate) fn run(
    inner: Arc<Inner>,
    name: String,
    id: i32,
    config: Config,
    control: Arc<TaskControl>,
) {
    let is_sink = inner
        .plugin_for(&config)
        .map(|p| p.kind() == runnel_connect_api::ConnectorKind::Sink)
        .unwrap_or(false);
    let mut attempt = 0u32;
    let result = loop {
        let started = Instant::now();
        let result = if is_sink {
            run_sink(&inner, &name, id, &config, &control)
        } else {
            run_source(&inner, &name, id, &config, &control)
        };
        let stopped = control.stop.load(Ordering::SeqCst) || inner.stopping();
        match &result {
            Err(e) if !stopped && attempt < MAX_TRANSIENT_RESTARTS && transient(e) => {
                if started.elapsed() > Duration::from_secs(60) {
                    attempt = 0;
                }
                warn!(connector = %name, task = id, error = %e, attempt, "task stopped by a transient error; starting it again");
                nap(&control, backoff(attempt));
                attempt += 1;
                if control.stop.load(Ordering::SeqCst) || inner.stopping() {
                    break Ok(());
                }
            }
            _ => break result,
        }
    };
    match result {
        Ok(()) => info!(connector = %name, task = id, "task stopped"),
        Err(e) => {
            error!(connector = %name, task = id, error = %e, "task failed");
            if !control.stop.load(Ordering::SeqCst) {
                inner.set_task_status(&name, id, State::Failed, Some(failure_trace(&e)));
            }
        }
    }
}

/// How many times in a row a task is started again after a transient
/// error before it is left FAILED.
const MAX_TRANSIENT_RESTARTS: u32 = 10;

/// Errors a task is started again after, rather than FAILED:
/// * fenced: during a reassignment a task may briefly run on two workers
///   (each computes the group's assignment on its own, so one may start a
///   task before the other stops it); an exactly-once source instance
///   started later fences the earlier one through their shared
///   transactional id. When the fenced instance is the one that keeps the
///   task, starting again fences the other (whose worker stops it anyway
///   once it sees the group as it is); its open transaction is aborted,
///   so nothing is lost or repeated either way.
/// * retriable at start: e.g. a PostgreSQL replication slot still held by
///   the previous instance's walsender (SQLSTATE 55006).
fn transient(e: &TaskError) -> bool {
    matches!(
        e,
        TaskError::Backend(BackendError::Fenced(_))
            | TaskError::Connect(ConnectError::Retriable(_))
    )
}

fn failure_trace(e: &TaskError) -> String {
    let kind = match e {
        TaskError::Connect(ConnectError::Config { .. }) => {
            "org.apache.kafka.common.config.ConfigException"
        }
        TaskError::Connect(ConnectError::Retriable(_)) => {
            "org.apache.kafka.connect.errors.RetriableException"
        }
        TaskError::Tolerance(_) => "org.apache.kafka.connect.errors.ConnectException",
        _ => "org.apache.kafka.connect.errors.ConnectException",
    };
    format!("{kind}: {e}")
}

/// Sleeps in small steps while the task is not stopped.
fn nap(control: &TaskControl, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && !control.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(7))).min(Duration::from_secs(10))
}

/// Waits while the task is paused; false once it must stop.
fn wait_while_paused(inner: &Inner, name: &str, id: i32, control: &TaskControl) -> bool {
    let mut was_paused = false;
    while control.paused.load(Ordering::SeqCst) {
        if control.stop.load(Ordering::SeqCst) || inner.stopping() {
            return false;
        }
        was_paused = true;
        std::thread::sleep(Duration::from_millis(50));
    }
    if was_paused {
        inner.set_task_status(name, id, State::Running, None);
    }
    !control.stop.load(Ordering::SeqCst) && !inner.stopping()
}

/// Headers as the header converter writes them.
fn headers_out(
    conv: &dyn Converter,
    topic: &str,
    headers: &[Header],
) -> Result<runnel_cluster::Headers, convert::ConvertError> {
    headers
        .iter()
        .map(|h| {
            Ok((
                h.key.clone(),
                conv.encode(topic, h.schema.as_ref(), &h.value)?,
            ))
        })
        .collect()
}

/// Headers as the header converter reads them.
fn headers_in(
    conv: &dyn Converter,
    topic: &str,
    headers: &runnel_cluster::Headers,
) -> Result<Vec<Header>, convert::ConvertError> {
    headers
        .iter()
        .map(|(k, v)| {
            let (schema, value) = conv.decode(topic, v.as_deref())?;
            Ok(Header {
                key: k.clone(),
                schema,
                value,
            })
        })
        .collect()
}

struct Partitioner {
    counts: HashMap<String, i32>,
    round_robin: u32,
    new_partitions: i32,
}

impl Partitioner {
    fn count(&mut self, backend: &mut dyn Backend, topic: &str) -> Result<i32, BackendError> {
        if let Some(n) = self.counts.get(topic) {
            return Ok(*n);
        }
        let n = match backend.partition_count(topic)? {
            Some(n) => n,
            None => {
                backend.create_topic(topic, self.new_partitions, &[])?;
                backend
                    .partition_count(topic)?
                    .unwrap_or(self.new_partitions)
            }
        };
        self.counts.insert(topic.to_string(), n);
        Ok(n)
    }
}

/// What a source or sink task is built with from its config: its plugin,
/// converters, transforms and error handling.
struct Setup {
    plugin: Arc<dyn ConnectorPlugin>,
    converters: Converters,
    chain: Chain,
    errors: Errors,
}

impl Setup {
    fn new(inner: &Arc<Inner>, config: &Config) -> Result<Setup, TaskError> {
        let setup = |e: &dyn std::fmt::Display| TaskError::Setup(e.to_string());
        Ok(Setup {
            plugin: inner.plugin_for(config).map_err(|e| setup(&e))?,
            converters: Converters::new(config, &inner.config.defaults).map_err(|e| setup(&e))?,
            chain: Chain::from_config(config).map_err(|e| setup(&e))?,
            errors: Errors::new(config),
        })
    }
}

fn run_source(
    inner: &Arc<Inner>,
    name: &str,
    id: i32,
    config: &Config,
    control: &TaskControl,
) -> Result<(), TaskError> {
    let Setup {
        plugin,
        converters,
        chain,
        errors,
    } = Setup::new(inner, config)?;
    let eos = inner.config.exactly_once_source;
    let guarantee = if eos {
        Guarantee::ExactlyOnce
    } else {
        Guarantee::AtLeastOnce
    };
    // KIP-618's transactional id: <group>-<connector>-<task>; a new
    // instance fences the previous one and aborts its open transaction.
    let app = format!("{}-{name}-{id}", inner.config.group_id);
    let mut backend = inner.backend(&app, guarantee)?;
    inner
        .read_offsets()
        .map_err(|e| TaskError::Setup(e.to_string()))?;
    let snapshot = Snapshot(inner.offsets_of(name));
    let mut task: Box<dyn SourceTask> = plugin.source_task()?;
    let cx = ConnectorContext {
        connector: name.to_string(),
        task: id,
    };
    task.start(config, &cx, &snapshot)?;
    info!(connector = %name, task = id, exactly_once = eos, "source task started");
    let mut parts = Partitioner {
        counts: HashMap::new(),
        round_robin: 0,
        new_partitions: config
            .get("topic.creation.default.partitions")
            .and_then(|v| v.parse().ok())
            .filter(|n: &i32| *n > 0)
            .unwrap_or(1),
    };
    let result = (|| -> Result<(), TaskError> {
        let mut attempt = 0u32;
        loop {
            if !wait_while_paused(inner, name, id, control) {
                return Ok(());
            }
            let records = match task.poll() {
                Ok(r) => {
                    attempt = 0;
                    r
                }
                Err(ConnectError::Retriable(msg)) => {
                    warn!(connector = %name, task = id, error = %msg, "retriable poll error; retrying");
                    nap(control, backoff(attempt));
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if records.is_empty() {
                continue;
            }
            let mut last: Vec<(SourcePartition, Option<SourceOffset>)> = Vec::new();
            let mut out = Vec::with_capacity(records.len());
            for r in records {
                match last.iter_mut().find(|(p, _)| *p == r.source_partition) {
                    Some(slot) => slot.1 = Some(r.source_offset.clone()),
                    None => last.push((r.source_partition.clone(), Some(r.source_offset.clone()))),
                }
                let converted = errors.retrying(
                    control,
                    |e: &(String, bool)| e.1,
                    || source_record(&converters, &chain, r.clone(), backend.as_mut(), &mut parts),
                );
                match converted {
                    Ok(Some(p)) => out.push(p),
                    Ok(None) => {}
                    Err((e, _)) => {
                        if errors.log || errors.tolerate {
                            warn!(connector = %name, task = id, error = %e, "error converting a source record");
                        }
                        if !errors.tolerate {
                            return Err(TaskError::Tolerance(e));
                        }
                    }
                }
            }
            for p in &out {
                inner.note_topic(name, id, &p.topic);
            }
            if eos {
                backend.begin()?;
                let sent = backend
                    .send(out)
                    .and_then(|()| backend.send(inner.offset_records(name, &last)))
                    .and_then(|()| backend.commit(&[]));
                if let Err(e) = sent {
                    let _ = backend.abort();
                    return Err(e.into());
                }
                inner.remember_offsets(name, &last);
            } else {
                backend.send(out)?;
                backend.commit(&[])?;
                inner
                    .write_offsets(name, &last)
                    .map_err(|e| TaskError::Setup(e.to_string()))?;
            }
            let committed: Vec<(SourcePartition, SourceOffset)> = last
                .into_iter()
                .filter_map(|(p, o)| o.map(|o| (p, o)))
                .collect();
            if let Err(e) = task.commit(&committed) {
                warn!(connector = %name, task = id, error = %e, "source task commit failed");
            }
        }
    })();
    task.stop();
    result
}

fn source_record(
    conv: &Converters,
    chain: &Chain,
    r: SourceRecord,
    backend: &mut dyn Backend,
    parts: &mut Partitioner,
) -> Result<Option<ProducedRecord>, (String, bool)> {
    let plain = |e: String| (e, false);
    let rec = Rec {
        topic: r.topic,
        partition: r.partition,
        offset: None,
        key_schema: r.key_schema,
        key: r.key,
        value_schema: r.value_schema,
        value: r.value,
        timestamp: r.timestamp,
        headers: r.headers,
    };
    let Some(rec) = chain.apply(rec).map_err(|e| plain(e.to_string()))? else {
        return Ok(None);
    };
    let key = conv
        .key
        .encode(&rec.topic, rec.key_schema.as_ref(), &rec.key)
        .map_err(|e| (e.message, e.retriable))?;
    let value = conv
        .value
        .encode(&rec.topic, rec.value_schema.as_ref(), &rec.value)
        .map_err(|e| (e.message, e.retriable))?;
    let headers = headers_out(conv.header.as_ref(), &rec.topic, &rec.headers)
        .map_err(|e| (e.message, e.retriable))?;
    let n = parts
        .count(backend, &rec.topic)
        .map_err(|e| plain(e.to_string()))?;
    let partition = match (rec.partition, &key) {
        (Some(p), _) => p,
        (None, Some(k)) => runnel_cluster::partition_for(k, n),
        (None, None) => {
            parts.round_robin = parts.round_robin.wrapping_add(1);
            i32::try_from(parts.round_robin % u32::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
        }
    };
    Ok(Some(ProducedRecord {
        topic: rec.topic,
        partition,
        timestamp: rec.timestamp.unwrap_or_else(now_ms),
        key,
        value,
        headers,
    }))
}

fn run_sink(
    inner: &Arc<Inner>,
    name: &str,
    id: i32,
    config: &Config,
    control: &TaskControl,
) -> Result<(), TaskError> {
    let Setup {
        plugin,
        converters,
        chain,
        errors,
    } = Setup::new(inner, config)?;
    let topics = sink_topics(&inner.cluster, config)?;
    let mut backend = inner.backend(&sink_group(name), Guarantee::AtLeastOnce)?;
    let mut task: Box<dyn SinkTask> = plugin.sink_task()?;
    let cx = ConnectorContext {
        connector: name.to_string(),
        task: id,
    };
    task.start(config, &cx)?;
    let mut positions: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    let mut dirty = false;
    let mut last_commit = Instant::now();
    let result = (|| -> Result<(), TaskError> {
        // Wait for the topics to exist (Kafka's consumer waits too).
        loop {
            let mut missing = None;
            for t in &topics {
                if backend.partition_count(t)?.is_none() {
                    missing = Some(t.clone());
                }
            }
            match missing {
                None => break,
                Some(t) => {
                    if control.stop.load(Ordering::SeqCst) || inner.stopping() {
                        return Ok(());
                    }
                    tracing::debug!(connector = %name, topic = %t, "waiting for the topic to exist");
                    nap(control, Duration::from_millis(500));
                }
            }
        }
        backend.subscribe(&topics)?;
        for t in &topics {
            inner.note_topic(name, id, t);
        }
        info!(connector = %name, task = id, ?topics, "sink task started");
        loop {
            if !wait_while_paused(inner, name, id, control) {
                break;
            }
            for event in backend.poll(Duration::from_millis(200))? {
                match event {
                    PollEvent::Assigned(_) => {}
                    PollEvent::Revoked(tps) => {
                        for tp in tps {
                            positions.remove(&tp);
                        }
                    }
                    PollEvent::Records(recs) => {
                        let mut batch = Vec::with_capacity(recs.len());
                        let mut dead = Vec::new();
                        for r in recs {
                            positions.insert(
                                TopicPartition::new(r.topic.clone(), r.partition),
                                r.offset + 1,
                            );
                            let converted = errors.retrying(
                                control,
                                |e: &(&str, String, bool)| e.2,
                                || sink_record(&converters, &chain, &r),
                            );
                            match converted {
                                Ok(Some(s)) => batch.push(s),
                                Ok(None) => {}
                                Err((stage, e, _)) => {
                                    if errors.log || errors.tolerate {
                                        warn!(connector = %name, task = id, topic = %r.topic, partition = r.partition, offset = r.offset, error = %e, "error converting a sink record");
                                    }
                                    if !errors.tolerate {
                                        return Err(TaskError::Tolerance(e));
                                    }
                                    if let Some(dlq) = &errors.dlq {
                                        dead.push(dead_letter(
                                            dlq,
                                            &r,
                                            name,
                                            id,
                                            stage,
                                            &e,
                                            errors.context_headers,
                                        ));
                                    }
                                }
                            }
                        }
                        if !dead.is_empty() {
                            let mut parts = Partitioner {
                                counts: HashMap::new(),
                                round_robin: 0,
                                new_partitions: 1,
                            };
                            for d in &dead {
                                parts.count(backend.as_mut(), &d.topic)?;
                            }
                            backend.send(dead)?;
                            backend.commit(&[])?;
                        }
                        if !batch.is_empty() {
                            put_with_retries(task.as_mut(), batch, control, name, id)?;
                        }
                        dirty = true;
                    }
                }
            }
            if dirty && last_commit.elapsed() >= inner.config.commit_interval {
                commit_sink(task.as_mut(), backend.as_mut(), &positions, control)?;
                dirty = false;
                last_commit = Instant::now();
            }
        }
        if dirty {
            commit_sink(task.as_mut(), backend.as_mut(), &positions, control)?;
        }
        Ok(())
    })();
    task.stop();
    result
}

fn put_with_retries(
    task: &mut dyn SinkTask,
    batch: Vec<SinkRecord>,
    control: &TaskControl,
    name: &str,
    id: i32,
) -> Result<(), TaskError> {
    let mut attempt = 0;
    loop {
        match task.put(batch.clone()) {
            Ok(()) => return Ok(()),
            Err(ConnectError::Retriable(msg)) => {
                if control.stop.load(Ordering::SeqCst) {
                    return Err(TaskError::Connect(ConnectError::Retriable(msg)));
                }
                warn!(connector = %name, task = id, error = %msg, attempt, "retriable put error; putting the records again");
                nap(control, backoff(attempt));
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn commit_sink(
    task: &mut dyn SinkTask,
    backend: &mut dyn Backend,
    positions: &BTreeMap<TopicPartition, i64>,
    control: &TaskControl,
) -> Result<(), TaskError> {
    let mut attempt = 0;
    loop {
        match task.flush() {
            Ok(()) => break,
            Err(ConnectError::Retriable(msg))
                if attempt < 10 && !control.stop.load(Ordering::SeqCst) =>
            {
                warn!(error = %msg, "retriable flush error; flushing again");
                nap(control, backoff(attempt));
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let offsets: Vec<(TopicPartition, i64)> =
        positions.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
    backend.commit(&offsets)?;
    Ok(())
}

fn sink_record(
    conv: &Converters,
    chain: &Chain,
    r: &ConsumedRecord,
) -> Result<Option<SinkRecord>, (&'static str, String, bool)> {
    let (key_schema, key) = conv
        .key
        .decode(&r.topic, r.key.as_deref())
        .map_err(|e| ("KEY_CONVERTER", e.message, e.retriable))?;
    let (value_schema, value) = conv
        .value
        .decode(&r.topic, r.value.as_deref())
        .map_err(|e| ("VALUE_CONVERTER", e.message, e.retriable))?;
    let rec = Rec {
        topic: r.topic.clone(),
        partition: Some(r.partition),
        offset: Some(r.offset),
        key_schema,
        key,
        value_schema,
        value,
        timestamp: Some(r.timestamp),
        headers: headers_in(conv.header.as_ref(), &r.topic, &r.headers)
            .map_err(|e| ("HEADER_CONVERTER", e.message, e.retriable))?,
    };
    let Some(rec) = chain
        .apply(rec)
        .map_err(|e| ("TRANSFORMATION", e.to_string(), false))?
    else {
        return Ok(None);
    };
    Ok(Some(SinkRecord {
        topic: rec.topic,
        partition: rec.partition.unwrap_or(r.partition),
        offset: r.offset,
        timestamp: rec.timestamp,
        key_schema: rec.key_schema,
        key: rec.key,
        value_schema: rec.value_schema,
        value: rec.value,
        headers: rec.headers,
    }))
}

/// The dead letter queue record of a record that failed: its original
/// bytes, with Kafka Connect's `__connect.errors.*` context headers when
/// asked for.
fn dead_letter(
    topic: &str,
    r: &ConsumedRecord,
    connector: &str,
    task: i32,
    stage: &str,
    error: &str,
    context: bool,
) -> ProducedRecord {
    let mut headers = r.headers.clone();
    if context {
        let h = |k: &str, v: String| (format!("__connect.errors.{k}"), Some(v.into_bytes()));
        headers.push(h("topic", r.topic.clone()));
        headers.push(h("partition", r.partition.to_string()));
        headers.push(h("offset", r.offset.to_string()));
        headers.push(h("connector.name", connector.to_string()));
        headers.push(h("task.id", task.to_string()));
        headers.push(h("stage", stage.to_string()));
        headers.push(h("class.name", "runnel-connect".to_string()));
        headers.push(h(
            "exception.class.name",
            "org.apache.kafka.connect.errors.DataException".to_string(),
        ));
        headers.push(h("exception.message", error.to_string()));
    }
    ProducedRecord {
        topic: topic.to_string(),
        partition: 0,
        timestamp: r.timestamp,
        key: r.key.clone(),
        value: r.value.clone(),
        headers,
    }
}
