//! The engine: runs statements against a cluster — DDL into the catalog,
//! persistent queries as runnel-streams applications on their own
//! threads, pull queries against their stores, push queries from shared
//! taps — and records every accepted statement in a command topic that a
//! restart replays.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use runnel_cluster::{Cluster, NewTopic};
use runnel_streams::backend::{Backend, BackendError, Guarantee, ProducedRecord, TopicPartition};
use runnel_streams::serdes::partition_for;
use runnel_streams::{OffsetReset, Queries, QueryError, Streams, StreamsConfig, Window};
use serde_json::{json, Value as Json};

use crate::ast::{
    DescribeTarget, ExplainTarget, ExprKind, Ident, Parsed, PropValue, Props, Query, SelectItem,
    ShowWhat, SourceKind, Statement,
};
use crate::catalog::{Catalog, QueryInfo, SourceInfo};
use crate::error::{ErrorKind, SqlError};
use crate::expr::{Binder, Compiled, Scope, ScopeColumn};
use crate::format::{Format, Row};
use crate::functions::FunctionRegistry;
use crate::plan::{Materialization, Planner, Sink, SinkRow};
use crate::schema::{Column, Schema, WindowType, RESERVED, ROWTIME};
use crate::types::{SqlType, Value};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `ksql.service.id`: prefixes query application ids.
    pub service_id: String,
    /// The topic recording statements.
    pub command_topic: String,
    /// How often persistent queries commit.
    pub commit_interval: Duration,
    /// Partitions of topics CSAS/CTAS create when nothing says otherwise
    /// and the source's count is unknown.
    pub default_partitions: i32,
    /// This engine's API endpoint (`host:port`) as other engines on the
    /// same cluster reach it: advertised to each persistent query's group
    /// so pull queries for partitions hosted here can be sent here.
    pub application_server: Option<String>,
}

/// Sends a pull query to another engine (`host:port`, its SQL text) and
/// returns the rows it hosts, as JSON arrays; the API layer provides it
/// ([`Engine::set_pull_forwarder`]).
pub type PullForwarder = Arc<dyn Fn(&str, &str) -> Result<Vec<Vec<Json>>, String> + Send + Sync>;

/// The query property a forwarded pull query carries: answer only from
/// the partitions hosted here, never forward again.
pub const PULL_LOCAL_ONLY: &str = "runnel.internal.pull.local.only";

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            service_id: "runnel_".to_string(),
            command_topic: "_runnel-sql-commands".to_string(),
            commit_interval: Duration::from_millis(200),
            default_partitions: 1,
            application_server: None,
        }
    }
}

/// What a statement returned: ksqlDB's REST entities (`@type` …).
pub type Entity = Json;

/// The rows of a pull or push query.
pub struct QueryStream {
    pub id: String,
    /// Column names and types, in row order.
    pub columns: Vec<(String, SqlType)>,
    /// Key columns (for the REST header).
    pub key_columns: usize,
    pub is_pull: bool,
    pub rows: Receiver<QueryEvent>,
    stop: Arc<AtomicBool>,
}

impl QueryStream {
    /// Stops a push query (also done on drop).
    pub fn close(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Drop for QueryStream {
    fn drop(&mut self) {
        self.close();
    }
}

/// Output columns (name, type) and their expressions.
type SelectList = (Vec<(String, SqlType)>, Vec<Compiled>);

/// One event of a query stream.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryEvent {
    Row(Row),
    /// A table row deleted (push queries on tables).
    Tombstone(Row),
    /// A text line (PRINT).
    Text(String),
    /// The query failed.
    Error(String),
}

struct Running {
    info: QueryInfo,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    state: Arc<Mutex<String>>,
    idle: Arc<AtomicBool>,
    queries: Option<Queries>,
    materialization: Option<Materialization>,
}

struct State {
    catalog: Catalog,
    running: BTreeMap<String, Running>,
    props: BTreeMap<String, String>,
    variables: BTreeMap<String, String>,
    /// Sequence number of the next command.
    seq: i64,
    /// Tables' materializations by table name (the query serving it).
    serving: HashMap<String, String>,
}

struct Inner {
    cluster: Arc<dyn Cluster>,
    functions: FunctionRegistry,
    config: EngineConfig,
    state: Mutex<State>,
    admin: Mutex<Box<dyn Backend>>,
    transient: AtomicU64,
    taps: Mutex<HashMap<String, Arc<Tap>>>,
    /// This engine process's id in the command records it writes.
    origin: String,
    /// Held while statements run and the command topic is read, so they
    /// run in the topic's order.
    commands: Mutex<()>,
    /// Tells the command follower to stop.
    stopping: AtomicBool,
    follower: Mutex<Option<JoinHandle<()>>>,
    forwarder: Mutex<Option<PullForwarder>>,
}

/// The SQL engine; cheap to clone and share between threads.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn backend_err(e: BackendError) -> SqlError {
    SqlError::server(e.to_string())
}

fn prop_string(props: &Props, name: &str) -> Option<String> {
    props.get(name).map(|v| match v {
        PropValue::String(s) | PropValue::Number(s) => s.clone(),
        PropValue::Boolean(b) => b.to_string(),
    })
}

fn prop_int(props: &Props, name: &str) -> Result<Option<i32>, SqlError> {
    match props.get(name) {
        None => Ok(None),
        Some(PropValue::Number(n)) => n.parse::<i32>().map(Some).map_err(|_| {
            SqlError::at(
                props
                    .get_ident(name)
                    .map_or_else(Default::default, |i| i.pos),
                format!("{name} must be a whole number, got {n}"),
            )
        }),
        Some(v) => Err(SqlError::at(
            props
                .get_ident(name)
                .map_or_else(Default::default, |i| i.pos),
            format!("{name} must be a number, got '{v}'"),
        )),
    }
}

fn format_prop(props: &Props, name: &str) -> Result<Option<Format>, SqlError> {
    let both = prop_string(props, "FORMAT");
    match prop_string(props, name).or(both) {
        None => Ok(None),
        Some(f) => Format::parse(&f).map(Some).map_err(|e| {
            SqlError::at(
                props
                    .get_ident(name)
                    .map_or_else(Default::default, |i| i.pos),
                e,
            )
        }),
    }
}

const KNOWN_PROPS: [&str; 12] = [
    "KAFKA_TOPIC",
    "KEY_FORMAT",
    "VALUE_FORMAT",
    "FORMAT",
    "PARTITIONS",
    "REPLICAS",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
    "WRAP_SINGLE_VALUE",
    "VALUE_DELIMITER",
    "RETENTION_MS",
    "CLEANUP_POLICY",
];

fn check_props(props: &Props) -> Result<(), SqlError> {
    for (k, _) in &props.0 {
        if !KNOWN_PROPS.contains(&k.name.as_str())
            && k.name != "WINDOW_TYPE"
            && k.name != "WINDOW_SIZE"
            && k.name != "QUERY_ID"
            && k.name != "KEY_SCHEMA_ID"
            && k.name != "VALUE_SCHEMA_ID"
        {
            return Err(SqlError::at(
                k.pos,
                format!(
                    "unknown property {}; known: {}",
                    k.name,
                    KNOWN_PROPS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// One recorded statement.
#[derive(serde::Serialize, serde::Deserialize)]
struct Command {
    statement: String,
    #[serde(default)]
    props: BTreeMap<String, String>,
    /// The engine process that ran and recorded it (absent in records of
    /// earlier versions): an engine skips its own records when it follows
    /// the topic, having run them already.
    #[serde(default)]
    origin: String,
}

/// How often an engine looks for statements other engines sharing its
/// command topic recorded.
const COMMAND_POLL: Duration = Duration::from_millis(250);

/// A pull query's rows of the given keys, read with `read` (a key's
/// windows and values). Keys found nowhere here, or whose partition is not
/// hosted here, set `missing` (with the error to report when no other
/// engine can be asked).
fn lookup_keys(
    keys: Vec<Row>,
    rows: &mut Vec<(Row, Option<Window>, Row)>,
    missing: &mut Option<Option<QueryError>>,
    read: impl Fn(&Row) -> Result<Vec<(Option<Window>, Row)>, QueryError>,
) -> Result<(), SqlError> {
    for k in keys {
        match read(&k) {
            Ok(found) if found.is_empty() => {
                missing.get_or_insert(None);
            }
            Ok(found) => rows.extend(found.into_iter().map(|(w, v)| (k.clone(), w, v))),
            Err(e @ QueryError::NotLocal { .. }) => *missing = Some(Some(e)),
            Err(e) => return Err(SqlError::server(e.to_string())),
        }
    }
    Ok(())
}

impl Engine {
    /// Starts the engine: creates the command topic if needed and replays
    /// it, restarting the persistent queries it recorded; then follows it
    /// in the background for statements other engines on the same cluster
    /// (and command topic) record.
    pub fn start(cluster: Arc<dyn Cluster>, config: EngineConfig) -> Result<Engine, SqlError> {
        cluster
            .create_topic(&NewTopic::new(&config.command_topic, 1).config("retention.ms", "-1"))
            .map_err(backend_err)?;
        let admin = cluster
            .backend(
                &format!("{}admin", config.service_id),
                Guarantee::AtLeastOnce,
            )
            .map_err(backend_err)?;
        let origin = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let engine = Engine {
            inner: Arc::new(Inner {
                cluster,
                functions: FunctionRegistry::builtin(),
                config,
                state: Mutex::new(State {
                    catalog: Catalog::default(),
                    running: BTreeMap::new(),
                    props: BTreeMap::new(),
                    variables: BTreeMap::new(),
                    seq: 0,
                    serving: HashMap::new(),
                }),
                admin: Mutex::new(admin),
                transient: AtomicU64::new(0),
                taps: Mutex::new(HashMap::new()),
                origin,
                commands: Mutex::new(()),
                stopping: AtomicBool::new(false),
                follower: Mutex::new(None),
                forwarder: Mutex::new(None),
            }),
        };
        {
            let _turn = lock(&engine.inner.commands);
            let replayed = engine.catch_up(true)?;
            if replayed > 0 {
                tracing::info!(statements = replayed, "command topic replayed");
            }
        }
        // Follow the command topic: statements other engines on the same
        // cluster record run here too (as ksqlDB servers sharing a service
        // id do), so their persistent queries share partitions.
        let weak = Arc::downgrade(&engine.inner);
        let follower = std::thread::Builder::new()
            .name("sql-commands".into())
            .spawn(move || {
                let mut failures = 0u64;
                loop {
                    std::thread::sleep(COMMAND_POLL);
                    let Some(inner) = weak.upgrade() else { return };
                    if inner.stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let engine = Engine { inner };
                    let _turn = lock(&engine.inner.commands);
                    match engine.catch_up(false) {
                        Ok(_) if failures > 0 => {
                            tracing::info!(failures, "reading the command topic again");
                            failures = 0;
                        }
                        Ok(_) => {}
                        // Once, then about once a minute while it lasts.
                        Err(e) => {
                            if failures.is_multiple_of(240) {
                                tracing::warn!(error = %e, failures, "cannot read the command topic");
                            }
                            failures += 1;
                        }
                    }
                }
            })
            .map_err(|e| SqlError::server(format!("cannot start the command follower: {e}")))?;
        *lock(&engine.inner.follower) = Some(follower);
        Ok(engine)
    }

    /// Runs the statements recorded in the command topic since the last
    /// one this engine saw, except its own (already run); returns how many
    /// ran. The caller holds `commands`. `replay` reports progress.
    fn catch_up(&self, replay: bool) -> Result<usize, SqlError> {
        let from = lock(&self.inner.state).seq;
        let mut commands = Vec::new();
        lock(&self.inner.admin)
            .read_partition(
                &TopicPartition::new(&self.inner.config.command_topic, 0),
                from,
                &mut |r| {
                    if r.offset < from {
                        return;
                    }
                    match r.value.as_deref().map(serde_json::from_slice::<Command>) {
                        Some(Ok(c)) => commands.push((r.offset, Some(c))),
                        Some(Err(e)) => {
                            tracing::warn!(offset = r.offset, error = %e, "skipping an unreadable command");
                            commands.push((r.offset, None));
                        }
                        None => commands.push((r.offset, None)),
                    }
                },
            )
            .map_err(backend_err)?;
        let total = commands.len();
        let mut ran = 0;
        for (i, (offset, c)) in commands.into_iter().enumerate() {
            lock(&self.inner.state).seq = offset;
            if let Some(c) = c.filter(|c| c.origin != self.inner.origin) {
                match crate::parser::parse_one(&c.statement) {
                    Ok(p) => {
                        if let Err(e) = self.run(&p, &c.props, false) {
                            tracing::warn!(statement = %c.statement, error = %e, "a recorded statement failed");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "a recorded statement no longer parses"),
                }
                ran += 1;
            }
            if replay && (i + 1) % 100 == 0 {
                tracing::info!(replayed = i + 1, total, "replaying the command topic");
            }
            lock(&self.inner.state).seq = offset + 1;
        }
        Ok(ran)
    }

    /// How pull queries reach other engines on the same cluster for the
    /// partitions they host.
    pub fn set_pull_forwarder(&self, f: PullForwarder) {
        *lock(&self.inner.forwarder) = Some(f);
    }

    /// The function registry.
    pub fn functions(&self) -> &FunctionRegistry {
        &self.inner.functions
    }

    /// A snapshot of the catalog.
    pub fn catalog(&self) -> Catalog {
        lock(&self.inner.state).catalog.clone()
    }

    /// Runs statements (`POST /ksql`): every statement's entity, or the
    /// error of the first that failed together with the entities before it.
    pub fn execute(
        &self,
        text: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<Vec<Entity>, (SqlError, Vec<Entity>)> {
        let parsed = crate::parser::parse(text).map_err(|e| (SqlError::from(e), Vec::new()))?;
        // One statement at a time, after those other engines recorded.
        let _turn = lock(&self.inner.commands);
        self.catch_up(false).map_err(|e| (e, Vec::new()))?;
        let mut out = Vec::new();
        for p in parsed {
            match self.run(&p, props, true) {
                Ok(e) => out.push(e),
                Err(e) => return Err((e, out)),
            }
        }
        Ok(out)
    }

    /// Runs one parsed statement; `record` writes it to the command topic
    /// when it changes the catalog.
    fn run(
        &self,
        p: &Parsed,
        props: &BTreeMap<String, String>,
        record: bool,
    ) -> Result<Entity, SqlError> {
        let text = p.text.clone();
        match &p.statement {
            Statement::CreateSource {
                kind,
                or_replace,
                if_not_exists,
                source,
                name,
                columns,
                props: with,
            } => {
                let mut st = lock(&self.inner.state);
                if let Some(existing) = st.catalog.source(&name.name) {
                    if *if_not_exists {
                        return Ok(self.exists_status(&text, *kind, name, st.seq));
                    }
                    if !or_replace || existing.kind != *kind {
                        return Err(exists_error(*kind, name, existing.kind));
                    }
                }
                check_props(with)?;
                let info =
                    self.define_source(&mut st, *kind, name, columns, with, &text, *source)?;
                let msg = format!(
                    "{} created",
                    if *kind == SourceKind::Stream {
                        "Stream"
                    } else {
                        "Table"
                    }
                );
                let seq = st.seq;
                st.catalog.sources.insert(info.name.clone(), info.clone());
                if *source && *kind == SourceKind::Table {
                    // Source tables are materialized for pull queries.
                    let qid = format!("CST_{}_{}", info.name, seq);
                    let q = select_star(&info.name);
                    // A source table's materialization reads the whole topic.
                    let start = QueryStart {
                        qid: &qid,
                        text: &text,
                        reset: OffsetReset::Earliest,
                    };
                    self.start_query(&mut st, &start, &q, &info.name, None)?;
                }
                drop(st);
                self.record(record, &text, props)?;
                Ok(self.status(&text, &msg, None, seq))
            }
            Statement::CreateAs {
                kind,
                or_replace,
                if_not_exists,
                name,
                props: with,
                query,
            } => {
                let mut st = lock(&self.inner.state);
                if let Some(existing) = st.catalog.source(&name.name) {
                    if *if_not_exists {
                        return Ok(self.exists_status(&text, *kind, name, st.seq));
                    }
                    if !or_replace {
                        return Err(exists_error(*kind, name, existing.kind));
                    }
                    // OR REPLACE: stop the old writer first.
                    if let Some(w) = existing.writer.clone() {
                        self.stop_query(&mut st, &w);
                    }
                    st.catalog.sources.remove(&name.name);
                }
                check_props(with)?;
                let seq = st.seq;
                let prefix = if *kind == SourceKind::Stream {
                    "CSAS"
                } else {
                    "CTAS"
                };
                let qid = format!("{prefix}_{}_{}", name.name, seq);
                let start = QueryStart::asked(&qid, &text, &st.props, props);
                self.create_as(&mut st, *kind, name, with, query, &start)?;
                drop(st);
                self.record(record, &text, props)?;
                Ok(self.query_created(&text, &qid, seq))
            }
            Statement::InsertSelect {
                target,
                props: with,
                query,
            } => {
                let mut st = lock(&self.inner.state);
                let Some(info) = st.catalog.source(&target.name).cloned() else {
                    return Err(self.not_found(&st, target));
                };
                if info.kind == SourceKind::Table {
                    return Err(SqlError::at(
                        target.pos,
                        format!(
                            "INSERT INTO can only be used to insert into a stream. {} is a table",
                            info.name
                        ),
                    ));
                }
                let seq = st.seq;
                let qid =
                    prop_string(with, "QUERY_ID").unwrap_or_else(|| format!("INSERTQUERY_{seq}"));
                let start = QueryStart::asked(&qid, &text, &st.props, props);
                let planned = self.start_query(&mut st, &start, query, &info.name, Some(&info))?;
                if planned.schema.value.len() != info.schema.value.len()
                    || planned
                        .schema
                        .value
                        .iter()
                        .zip(&info.schema.value)
                        .any(|(a, b)| a.ty != b.ty)
                {
                    self.stop_query(&mut st, &qid);
                    return Err(SqlError::at(
                        query.pos,
                        format!(
                            "Incompatible schema between results and sink. Result schema is {}, but the sink schema is {}.",
                            describe_columns(&planned.schema),
                            describe_columns(&info.schema)
                        ),
                    ));
                }
                drop(st);
                self.record(record, &text, props)?;
                Ok(self.query_created(&text, &qid, seq))
            }
            Statement::InsertValues {
                target,
                columns,
                values,
            } => {
                let st = lock(&self.inner.state);
                let Some(info) = st.catalog.source(&target.name).cloned() else {
                    return Err(self.not_found(&st, target));
                };
                drop(st);
                self.insert_values(&info, columns.as_deref(), values)?;
                Ok(
                    json!({"@type": "currentStatus", "statementText": text, "commandStatus": {"status": "SUCCESS", "message": "Inserted 1 row"}, "warnings": []}),
                )
            }
            Statement::Drop {
                kind,
                if_exists,
                name,
                delete_topic,
            } => {
                let mut st = lock(&self.inner.state);
                let Some(info) = st.catalog.source(&name.name).cloned() else {
                    if *if_exists {
                        return Ok(self.status(
                            &text,
                            &format!("Source `{}` does not exist.", name.name),
                            None,
                            st.seq,
                        ));
                    }
                    return Err(self.not_found(&st, name));
                };
                if info.kind != *kind {
                    return Err(SqlError::at(
                        name.pos,
                        format!(
                            "Incompatible data source type is {}, but statement was DROP {kind}",
                            info.kind
                        ),
                    ));
                }
                let readers: Vec<String> = st
                    .catalog
                    .readers_of(&info.name)
                    .into_iter()
                    .filter(|q| !q.id.starts_with("CST_"))
                    .map(|q| q.id.clone())
                    .collect();
                if !readers.is_empty() {
                    return Err(SqlError::new(format!(
                        "Cannot drop {}.\nThe following queries read from this source: [{}].\nYou need to terminate them before dropping {}.",
                        info.name,
                        readers.join(", "),
                        info.name
                    )));
                }
                let writers: Vec<String> = st
                    .catalog
                    .writers_of(&info.name)
                    .into_iter()
                    .map(|q| q.id.clone())
                    .collect();
                for w in writers {
                    self.stop_query(&mut st, &w);
                }
                let serving: Vec<String> = st
                    .running
                    .keys()
                    .filter(|k| k.starts_with("CST_") && st.running[*k].info.sink == info.name)
                    .cloned()
                    .collect();
                for q in serving {
                    self.stop_query(&mut st, &q);
                }
                st.catalog.sources.remove(&info.name);
                let seq = st.seq;
                drop(st);
                // Only when run fresh: replayed or run for another engine,
                // the topic is already gone, or is a newer one with data.
                if *delete_topic && record {
                    self.inner
                        .cluster
                        .delete_topic(&info.topic)
                        .map_err(backend_err)?;
                }
                self.record(record, &text, props)?;
                Ok(self.status(
                    &text,
                    &format!(
                        "Source `{}` (topic: {}) was dropped.",
                        info.name, info.topic
                    ),
                    None,
                    seq,
                ))
            }
            Statement::Terminate { query_id } => {
                let mut st = lock(&self.inner.state);
                let ids: Vec<String> = match query_id {
                    None => st.running.keys().cloned().collect(),
                    Some(id) => {
                        let wanted = id.name.to_ascii_uppercase();
                        let Some(found) = st
                            .running
                            .keys()
                            .find(|k| k.to_ascii_uppercase() == wanted)
                            .cloned()
                        else {
                            return Err(SqlError::not_found(
                                Some(id.pos),
                                format!("Unknown queryId: {}", id.name),
                            ));
                        };
                        vec![found]
                    }
                };
                for id in &ids {
                    self.stop_query(&mut st, id);
                    st.catalog.queries.remove(id);
                    for s in st.catalog.sources.values_mut() {
                        if s.writer.as_deref() == Some(id.as_str()) {
                            s.writer = None;
                        }
                    }
                }
                let seq = st.seq;
                drop(st);
                self.record(record, &text, props)?;
                Ok(self.status(&text, "Query terminated.", None, seq))
            }
            Statement::Show { what, extended } => self.show(what, *extended, &text),
            Statement::Describe { target, extended } => self.describe(target, *extended, &text),
            Statement::Explain(target) => self.explain(target, &text),
            Statement::Set { name, value } => {
                lock(&self.inner.state)
                    .props
                    .insert(name.clone(), value.clone());
                Ok(
                    json!({"@type": "currentStatus", "statementText": text, "commandStatus": {"status": "SUCCESS", "message": format!("Successfully set {name} to {value}")}, "warnings": []}),
                )
            }
            Statement::Unset { name } => {
                lock(&self.inner.state).props.remove(name);
                Ok(
                    json!({"@type": "currentStatus", "statementText": text, "commandStatus": {"status": "SUCCESS", "message": format!("Successfully unset {name}")}, "warnings": []}),
                )
            }
            Statement::Define { name, value } => {
                lock(&self.inner.state)
                    .variables
                    .insert(name.name.clone(), value.clone());
                Ok(
                    json!({"@type": "currentStatus", "statementText": text, "commandStatus": {"status": "SUCCESS", "message": format!("Defined variable {}", name.name)}, "warnings": []}),
                )
            }
            Statement::Undefine { name } => {
                lock(&self.inner.state).variables.remove(&name.name);
                Ok(
                    json!({"@type": "currentStatus", "statementText": text, "commandStatus": {"status": "SUCCESS", "message": format!("Undefined variable {}", name.name)}, "warnings": []}),
                )
            }
            Statement::RunScript { .. } => Err(SqlError::at(
                p.pos,
                "RUN SCRIPT is a CLI command: the CLI reads the file and sends its statements",
            )),
            Statement::Print { .. } | Statement::Select(_) => Err(SqlError::at(
                p.pos,
                "SELECT and PRINT statements are queries: send them to /query or /query-stream",
            )),
        }
    }

    fn not_found(&self, st: &State, name: &Ident) -> SqlError {
        let mut msg = format!("{} does not exist.", name.name);
        if let Some(s) = st.catalog.suggest(&name.name) {
            msg.push_str(&format!(" Did you mean {s}?"));
        }
        SqlError::not_found(Some(name.pos), msg)
    }

    /// A persistent query started (CSAS, CTAS, INSERT INTO … SELECT).
    fn query_created(&self, text: &str, qid: &str, seq: i64) -> Entity {
        self.status(
            text,
            &format!("Created query with ID {qid}"),
            Some(qid),
            seq,
        )
    }

    /// `IF NOT EXISTS` on a name that exists: success, nothing done.
    fn exists_status(&self, text: &str, kind: SourceKind, name: &Ident, seq: i64) -> Entity {
        self.status(
            text,
            &format!("{kind} {} already exists", name.name),
            None,
            seq,
        )
    }

    fn status(&self, text: &str, message: &str, query_id: Option<&str>, seq: i64) -> Entity {
        json!({
            "@type": "currentStatus",
            "statementText": text,
            "commandId": format!("statement/{seq}"),
            "commandStatus": {"status": "SUCCESS", "message": message, "queryId": query_id},
            "commandSequenceNumber": seq,
            "warnings": []
        })
    }

    fn record(
        &self,
        record: bool,
        text: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<(), SqlError> {
        if !record {
            return Ok(());
        }
        let cmd = Command {
            statement: text.to_string(),
            props: props.clone(),
            origin: self.inner.origin.clone(),
        };
        let value = serde_json::to_vec(&cmd).map_err(|e| SqlError::server(e.to_string()))?;
        let mut admin = lock(&self.inner.admin);
        admin
            .send(vec![ProducedRecord {
                topic: self.inner.config.command_topic.clone(),
                partition: 0,
                timestamp: now_ms(),
                key: None,
                value: Some(value),
                headers: Vec::new(),
            }])
            .and_then(|_| admin.commit(&[]))
            .map_err(backend_err)?;
        drop(admin);
        // Past this record (skipped: it ran) and any another engine wrote.
        self.catch_up(false)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn define_source(
        &self,
        st: &mut State,
        kind: SourceKind,
        name: &Ident,
        columns: &[crate::ast::ColumnDef],
        with: &Props,
        text: &str,
        read_only: bool,
    ) -> Result<SourceInfo, SqlError> {
        let Some(topic) = prop_string(with, "KAFKA_TOPIC") else {
            return Err(SqlError::at(
                name.pos,
                "Missing required property \"KAFKA_TOPIC\" which has no default value.",
            ));
        };
        let key_format = format_prop(with, "KEY_FORMAT")?.unwrap_or(Format::KAFKA);
        let Some(value_format) = format_prop(with, "VALUE_FORMAT")? else {
            return Err(SqlError::at(
                name.pos,
                "Missing required property \"VALUE_FORMAT\" which has no default value.",
            ));
        };
        let mut schema = Schema::default();
        let mut seen = std::collections::HashSet::new();
        for c in columns {
            if RESERVED.contains(&c.name.name.as_str()) {
                return Err(SqlError::at(
                    c.name.pos,
                    format!(
                        "'{}' is a reserved column name; choose another",
                        c.name.name
                    ),
                ));
            }
            if !seen.insert(c.name.name.clone()) {
                return Err(SqlError::at(
                    c.name.pos,
                    format!("duplicate column name {}", c.name.name),
                ));
            }
            match c.key {
                crate::ast::KeyKind::Key if kind == SourceKind::Table => {
                    return Err(SqlError::at(
                        c.name.pos,
                        format!(
                            "Column {} is a 'KEY' column: please use 'PRIMARY KEY' for tables.",
                            c.name.name
                        ),
                    ))
                }
                crate::ast::KeyKind::PrimaryKey if kind == SourceKind::Stream => {
                    return Err(SqlError::at(
                        c.name.pos,
                        format!(
                            "Column {} is a 'PRIMARY KEY' column: please use 'KEY' for streams.",
                            c.name.name
                        ),
                    ))
                }
                crate::ast::KeyKind::Key | crate::ast::KeyKind::PrimaryKey => {
                    schema.key.push(Column::new(&c.name.name, c.ty.clone()))
                }
                crate::ast::KeyKind::Headers => {
                    return Err(SqlError::at(
                        c.name.pos,
                        "HEADERS columns are not supported yet",
                    ))
                }
                crate::ast::KeyKind::None => {
                    schema.value.push(Column::new(&c.name.name, c.ty.clone()))
                }
            }
        }
        if kind == SourceKind::Table && schema.key.is_empty() {
            return Err(SqlError::at(
                name.pos,
                format!(
                    "Tables require a PRIMARY KEY. Please define the PRIMARY KEY of {}.",
                    name.name
                ),
            ));
        }
        if schema.value.is_empty() {
            return Err(SqlError::at(
                name.pos,
                format!(
                    "The schema of {} has no value columns; declare at least one",
                    name.name
                ),
            ));
        }
        key_format
            .check(&schema.key, "key")
            .map_err(|e| SqlError::at(name.pos, e))?;
        value_format
            .check(&schema.value, "value")
            .map_err(|e| SqlError::at(name.pos, e))?;
        let timestamp = match prop_string(with, "TIMESTAMP") {
            None => None,
            Some(t) => {
                let t = t.to_ascii_uppercase();
                if !schema.columns().any(|c| c.name == t) {
                    return Err(SqlError::at(
                        with.get_ident("TIMESTAMP").map_or(name.pos, |i| i.pos),
                        format!("The TIMESTAMP column set in the WITH clause does not exist in the schema: '{t}'"),
                    ));
                }
                Some(t)
            }
        };
        let partitions = prop_int(with, "PARTITIONS")?;
        let mut admin = lock(&self.inner.admin);
        let existing = admin.partition_count(&topic).map_err(backend_err)?;
        let partitions = match (existing, partitions) {
            (Some(n), Some(p)) if n != p => {
                return Err(SqlError::at(
                    name.pos,
                    format!("A Kafka topic with the name '{topic}' already exists, with different partition count: {n} (wanted {p})"),
                ))
            }
            (Some(n), _) => n,
            (None, Some(p)) => {
                if p <= 0 {
                    return Err(SqlError::at(name.pos, "PARTITIONS must be positive"));
                }
                admin.create_topic(&topic, p, &[]).map_err(backend_err)?;
                p
            }
            (None, None) => {
                return Err(SqlError::at(
                    name.pos,
                    format!("Topic '{topic}' does not exist. If you want to create a new topic for the {} please re-run the statement providing the required 'PARTITIONS' configuration in the WITH clause (and optionally 'REPLICAS'). For example: CREATE {kind} {} (...) WITH (KAFKA_TOPIC='{topic}', PARTITIONS=2, ...);", kind.to_string().to_lowercase(), name.name),
                ))
            }
        };
        drop(admin);
        let _ = st;
        Ok(SourceInfo {
            name: name.name.clone(),
            kind,
            topic,
            schema,
            key_format,
            value_format,
            wrap_single_value: prop_string(with, "WRAP_SINGLE_VALUE")
                .is_none_or(|v| !v.eq_ignore_ascii_case("false")),
            window: None,
            timestamp,
            timestamp_format: prop_string(with, "TIMESTAMP_FORMAT"),
            partitions,
            sql: text.to_string(),
            read_only,
            writer: None,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn create_as(
        &self,
        st: &mut State,
        kind: SourceKind,
        name: &Ident,
        with: &Props,
        query: &Query,
        start: &QueryStart<'_>,
    ) -> Result<SourceInfo, SqlError> {
        let (text, qid) = (start.text, start.qid);
        let from = st
            .catalog
            .source(&query.from.name.name)
            .cloned()
            .ok_or_else(|| self.not_found(st, &query.from.name))?;
        let topic = prop_string(with, "KAFKA_TOPIC").unwrap_or_else(|| name.name.clone());
        let key_format = format_prop(with, "KEY_FORMAT")?.unwrap_or(from.key_format);
        let value_format = format_prop(with, "VALUE_FORMAT")?.unwrap_or(from.value_format);
        let partitions = prop_int(with, "PARTITIONS")?.unwrap_or(from.partitions);
        let sink = Sink::Topic {
            topic: topic.clone(),
            key_format,
            value_format,
            wrap_single_value: prop_string(with, "WRAP_SINGLE_VALUE")
                .is_none_or(|v| !v.eq_ignore_ascii_case("false")),
        };
        // Plan first to learn the schema; only then create the topic.
        let sink_ts = prop_string(with, "TIMESTAMP").map(|t| t.to_ascii_uppercase());
        let planned = {
            let mut planner = Planner::new(&st.catalog, &self.inner.functions, qid);
            planner.sink_timestamp = sink_ts.clone();
            planner.plan(query, &name.name, sink.clone())?
        };
        if planned.kind != kind {
            return Err(SqlError::at(
                query.pos,
                format!(
                    "Invalid result type. Your SELECT query produces a {}. Please use CREATE {} AS SELECT statement instead.",
                    planned.kind, planned.kind
                ),
            ));
        }
        {
            let mut admin = lock(&self.inner.admin);
            match admin.partition_count(&topic).map_err(backend_err)? {
                Some(_) => {}
                None => admin
                    .create_topic(&topic, partitions.max(1), &[])
                    .map_err(backend_err)?,
            }
        }
        let info = SourceInfo {
            name: name.name.clone(),
            kind,
            topic,
            schema: planned.schema.clone(),
            key_format,
            value_format,
            wrap_single_value: prop_string(with, "WRAP_SINGLE_VALUE")
                .is_none_or(|v| !v.eq_ignore_ascii_case("false")),
            window: planned.window,
            timestamp: sink_ts,
            timestamp_format: None,
            partitions,
            sql: text.to_string(),
            read_only: false,
            writer: Some(qid.to_string()),
        };
        st.catalog.sources.insert(info.name.clone(), info.clone());
        if let Err(e) = self.start_query(st, start, query, &info.name, Some(&info)) {
            st.catalog.sources.remove(&info.name);
            return Err(e);
        }
        Ok(info)
    }

    /// Plans and starts a persistent query writing `sink` (`None`: a source
    /// table's materialization, no output topic).
    fn start_query(
        &self,
        st: &mut State,
        start: &QueryStart<'_>,
        query: &Query,
        sink_name: &str,
        sink: Option<&SourceInfo>,
    ) -> Result<crate::plan::Planned, SqlError> {
        let (text, qid) = (start.text, start.qid);
        let sink_spec = match sink {
            Some(s) => Sink::Topic {
                topic: s.topic.clone(),
                key_format: s.key_format,
                value_format: s.value_format,
                wrap_single_value: s.wrap_single_value,
            },
            None => Sink::Callback(Arc::new(|_| {})),
        };
        let mut planner = Planner::new(&st.catalog, &self.inner.functions, qid);
        planner.sink_timestamp = sink.and_then(|s| s.timestamp.clone());
        let planned = planner.plan(query, sink_name, sink_spec)?;
        let topology = planner
            .builder
            .build()
            .map_err(|e| SqlError::new(e.to_string()))?;
        let description = topology.describe();
        let app_id = format!("{}query_{qid}", self.inner.config.service_id);
        let guarantee = match st.props.get("processing.guarantee").map(String::as_str) {
            Some("exactly_once" | "exactly_once_v2") => Guarantee::ExactlyOnce,
            _ => Guarantee::AtLeastOnce,
        };
        let backend = self
            .inner
            .cluster
            .backend(&app_id, guarantee)
            .map_err(backend_err)?;
        let mut config =
            StreamsConfig::new(app_id).commit_interval(self.inner.config.commit_interval);
        config.guarantee = guarantee;
        config.application_server = self.inner.config.application_server.clone();
        config.poll_timeout = Duration::from_millis(50);
        config.max_task_idle = Duration::from_millis(50);
        config.offset_reset = start.reset;
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new("RUNNING".to_string()));
        let idle = Arc::new(AtomicBool::new(false));
        let (thread, queries) = spawn_query(
            qid.to_string(),
            topology,
            config,
            backend,
            stop.clone(),
            state.clone(),
            idle.clone(),
        )?;
        let info = QueryInfo {
            id: qid.to_string(),
            sql: text.to_string(),
            sink: sink_name.to_string(),
            sink_topic: sink.map(|s| s.topic.clone()).unwrap_or_default(),
            sources: planned.sources.clone(),
            topology: description,
        };
        st.catalog.queries.insert(qid.to_string(), info.clone());
        if planned.materialization.is_some() {
            st.serving.insert(sink_name.to_string(), qid.to_string());
        }
        st.running.insert(
            qid.to_string(),
            Running {
                info,
                stop,
                thread: Some(thread),
                state,
                idle,
                queries: Some(queries),
                materialization: planned.materialization.clone(),
            },
        );
        Ok(planned)
    }

    fn stop_query(&self, st: &mut State, qid: &str) {
        if let Some(mut r) = st.running.remove(qid) {
            r.stop.store(true, Ordering::SeqCst);
            if let Some(t) = r.thread.take() {
                let _ = t.join();
            }
        }
        st.catalog.queries.remove(qid);
        st.serving.retain(|_, q| q != qid);
    }

    /// Waits until every persistent query has processed all its input and
    /// committed, or `timeout` passes; returns whether they did.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut stable = 0;
        while Instant::now() < deadline {
            let all = {
                let st = lock(&self.inner.state);
                st.running.values().all(|r| r.idle.load(Ordering::SeqCst))
            };
            if all {
                stable += 1;
                if stable >= 3 {
                    return true;
                }
            } else {
                stable = 0;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        false
    }

    /// Whether `topic` belongs to the system or to a query's internals
    /// (state changelogs and repartition topics are named after the
    /// query's application id), not to a user.
    fn is_internal_topic(&self, topic: &str) -> bool {
        let service = &self.inner.config.service_id;
        topic.starts_with('_')
            || topic
                .strip_prefix(service.as_str())
                .is_some_and(|rest| rest.starts_with("query_") || rest.starts_with("transient_"))
    }

    /// Stops every query (the catalog stays recorded in the command topic).
    pub fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let follower = lock(&self.inner.follower).take();
        if let Some(f) = follower {
            if f.thread().id() != std::thread::current().id() {
                let _ = f.join();
            }
        }
        let mut st = lock(&self.inner.state);
        let ids: Vec<String> = st.running.keys().cloned().collect();
        for id in ids {
            if let Some(mut r) = st.running.remove(&id) {
                r.stop.store(true, Ordering::SeqCst);
                if let Some(t) = r.thread.take() {
                    let _ = t.join();
                }
            }
        }
        for tap in lock(&self.inner.taps).values() {
            tap.stop.store(true, Ordering::SeqCst);
        }
    }

    fn insert_values(
        &self,
        info: &SourceInfo,
        columns: Option<&[Ident]>,
        values: &[crate::ast::Expr],
    ) -> Result<(), SqlError> {
        let all: Vec<Column> = info.schema.columns().cloned().collect();
        let names: Vec<Ident> = match columns {
            Some(c) => c.to_vec(),
            None => all
                .iter()
                .map(|c| Ident {
                    name: c.name.clone(),
                    pos: Default::default(),
                })
                .collect(),
        };
        if names.len() != values.len() {
            return Err(SqlError::at(
                values.first().map_or_else(Default::default, |v| v.pos),
                format!(
                    "Expected a value for each column: {} columns, {} values",
                    names.len(),
                    values.len()
                ),
            ));
        }
        let mut row: HashMap<String, Value> = HashMap::new();
        let mut ts = now_ms();
        for (n, e) in names.iter().zip(values) {
            let (c, _) = Binder {
                scope: Scope::default(),
                functions: &self.inner.functions,
            }
            .bind(e)?;
            let v = match c {
                Compiled::Const(v) => v,
                other => other.eval(&[]),
            };
            if n.name == ROWTIME {
                ts = v
                    .as_i64()
                    .ok_or_else(|| SqlError::at(e.pos, "ROWTIME must be a BIGINT"))?;
                continue;
            }
            let Some(col) = all.iter().find(|c| c.name == n.name) else {
                return Err(SqlError::at(
                    n.pos,
                    format!("Column name {} does not exist.", n.name),
                ));
            };
            let v = if v.is_null() {
                v
            } else {
                crate::cast::cast(&v, &col.ty).map_err(|m| {
                    SqlError::at(
                        e.pos,
                        format!(
                            "Expected type {} for field {} but got {}: {m}",
                            col.ty, col.name, v
                        ),
                    )
                })?
            };
            row.insert(col.name.clone(), v);
        }
        let key: Row = info
            .schema
            .key
            .iter()
            .map(|c| row.get(&c.name).cloned().unwrap_or_default())
            .collect();
        let value: Row = info
            .schema
            .value
            .iter()
            .map(|c| row.get(&c.name).cloned().unwrap_or_default())
            .collect();
        self.produce(info, key, value, ts)
    }

    /// Writes one row to a source's topic (INSERT VALUES, /inserts-stream).
    pub fn produce(
        &self,
        info: &SourceInfo,
        key: Row,
        value: Row,
        ts: i64,
    ) -> Result<(), SqlError> {
        let kb = info.key_serde().encode(&key).map_err(SqlError::new)?;
        let vb = info.value_serde().encode(&value).map_err(SqlError::new)?;
        let partitions = info.partitions.max(1);
        let partition = match &kb {
            Some(k) => partition_for(k, partitions),
            None => {
                (self.inner.transient.fetch_add(1, Ordering::Relaxed) % partitions as u64) as i32
            }
        };
        let mut admin = lock(&self.inner.admin);
        admin
            .send(vec![ProducedRecord {
                topic: info.topic.clone(),
                partition,
                timestamp: ts,
                key: kb,
                value: vb,
                headers: Vec::new(),
            }])
            .and_then(|_| admin.commit(&[]))
            .map_err(backend_err)
    }

    /// Rows of a JSON object for `/inserts-stream`: column names as keys.
    pub fn insert_json(
        &self,
        target: &str,
        obj: &serde_json::Map<String, Json>,
    ) -> Result<(), SqlError> {
        let info = self
            .catalog()
            .source(&target.to_ascii_uppercase())
            .cloned()
            .or_else(|| self.catalog().source(target).cloned())
            .ok_or_else(|| SqlError::not_found(None, format!("{target} does not exist.")))?;
        if info.kind != SourceKind::Stream {
            return Err(SqlError::new(format!(
                "{} is a table; inserts go to streams",
                info.name
            )));
        }
        let get = |c: &Column| -> Result<Value, SqlError> {
            let j = obj.get(&c.name).or_else(|| {
                obj.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&c.name))
                    .map(|(_, v)| v)
            });
            match j {
                None => Ok(Value::Null),
                Some(j) => crate::format::from_json(&c.ty, j)
                    .map_err(|e| SqlError::new(format!("column {}: {e}", c.name))),
            }
        };
        let key = info
            .schema
            .key
            .iter()
            .map(get)
            .collect::<Result<Row, _>>()?;
        let value = info
            .schema
            .value
            .iter()
            .map(get)
            .collect::<Result<Row, _>>()?;
        let ts = obj
            .get(ROWTIME)
            .and_then(Json::as_i64)
            .unwrap_or_else(now_ms);
        self.produce(&info, key, value, ts)
    }

    fn show(&self, what: &ShowWhat, extended: bool, text: &str) -> Result<Entity, SqlError> {
        let st = lock(&self.inner.state);
        Ok(match what {
            ShowWhat::Streams | ShowWhat::Tables => {
                let kind = if *what == ShowWhat::Streams {
                    SourceKind::Stream
                } else {
                    SourceKind::Table
                };
                if extended {
                    let descs: Vec<Json> = st
                        .catalog
                        .sources
                        .values()
                        .filter(|s| s.kind == kind)
                        .map(|s| self.source_description(&st, s, true))
                        .collect();
                    return Ok(
                        json!({"@type": "source_descriptions", "statementText": text, "sourceDescriptions": descs, "warnings": []}),
                    );
                }
                let list: Vec<Json> = st
                    .catalog
                    .sources
                    .values()
                    .filter(|s| s.kind == kind)
                    .map(|s| {
                        json!({"type": s.kind.to_string(), "name": s.name, "topic": s.topic,
                               "keyFormat": s.key_format.to_string(), "valueFormat": s.value_format.to_string(),
                               "isWindowed": s.window.is_some()})
                    })
                    .collect();
                if kind == SourceKind::Stream {
                    json!({"@type": "streams", "statementText": text, "streams": list, "warnings": []})
                } else {
                    json!({"@type": "tables", "statementText": text, "tables": list, "warnings": []})
                }
            }
            ShowWhat::Queries => {
                let list: Vec<Json> = st
                    .running
                    .values()
                    .map(|r| {
                        let state = lock(&r.state).clone();
                        json!({"queryString": r.info.sql, "sinks": [r.info.sink], "sinkKafkaTopics": [r.info.sink_topic],
                               "id": r.info.id, "statusCount": {state.clone(): 1}, "queryType": "PERSISTENT", "state": state})
                    })
                    .collect();
                json!({"@type": "queries", "statementText": text, "queries": list, "warnings": []})
            }
            ShowWhat::Topics { all } => {
                drop(st);
                let topics = self.inner.cluster.topics().map_err(backend_err)?;
                let list: Vec<Json> = topics
                    .into_iter()
                    // As ksqlDB's, SHOW TOPICS leaves out the queries' own
                    // changelog and repartition topics.
                    .filter(|(n, _)| *all || !self.is_internal_topic(n))
                    .map(|(n, p)| json!({"name": n, "replicaInfo": vec![1; usize::try_from(p).unwrap_or(0)]}))
                    .collect();
                json!({"@type": "kafka_topics", "statementText": text, "topics": list, "warnings": []})
            }
            ShowWhat::Properties => {
                let mut props: Vec<Json> = vec![
                    json!({"name": "ksql.service.id", "scope": "KSQL", "value": self.inner.config.service_id}),
                    json!({"name": "ksql.streams.commit.interval.ms", "scope": "KSQL", "value": self.inner.config.commit_interval.as_millis().to_string()}),
                    json!({"name": "processing.guarantee", "scope": "KSQL", "value": st.props.get("processing.guarantee").cloned().unwrap_or_else(|| "at_least_once".into())}),
                ];
                for (k, v) in &st.props {
                    if k != "processing.guarantee" {
                        props.push(json!({"name": k, "scope": "SESSION", "value": v}));
                    }
                }
                json!({"@type": "properties", "statementText": text, "properties": props, "overwrittenProperties": [], "defaultProperties": [], "warnings": []})
            }
            ShowWhat::Functions => {
                let list: Vec<Json> = self
                    .inner
                    .functions
                    .list()
                    .into_iter()
                    .map(|f| {
                        json!({"name": f.name, "category": f.category, "type": match f.kind {
                            crate::functions::FunctionKind::Scalar => "SCALAR",
                            crate::functions::FunctionKind::Aggregate => "AGGREGATE",
                            crate::functions::FunctionKind::Table => "TABLE",
                        }})
                    })
                    .collect();
                json!({"@type": "function_names", "statementText": text, "functions": list, "warnings": []})
            }
            ShowWhat::Variables => {
                let list: Vec<Json> = st
                    .variables
                    .iter()
                    .map(|(k, v)| json!({"name": k, "value": v}))
                    .collect();
                json!({"@type": "variables", "statementText": text, "variables": list, "warnings": []})
            }
        })
    }

    fn source_description(&self, st: &State, s: &SourceInfo, extended: bool) -> Json {
        let mut fields: Vec<Json> = Vec::new();
        fields.push(json!({"name": ROWTIME, "schema": type_json(&SqlType::BigInt)}));
        for c in &s.schema.key {
            fields.push(json!({"name": c.name, "schema": type_json(&c.ty), "type": if s.kind == SourceKind::Table { "PRIMARY_KEY" } else { "KEY" }}));
        }
        for c in &s.schema.value {
            fields.push(json!({"name": c.name, "schema": type_json(&c.ty)}));
        }
        let readers: Vec<Json> = st.catalog.readers_of(&s.name).iter().map(|q| json!({"queryString": q.sql, "sinks": [q.sink], "sinkKafkaTopics": [q.sink_topic], "id": q.id, "queryType": "PERSISTENT", "state": "RUNNING"})).collect();
        let writers: Vec<Json> = st.catalog.writers_of(&s.name).iter().map(|q| json!({"queryString": q.sql, "sinks": [q.sink], "sinkKafkaTopics": [q.sink_topic], "id": q.id, "queryType": "PERSISTENT", "state": "RUNNING"})).collect();
        json!({
            "name": s.name,
            "windowType": match s.window { None => Json::Null, Some(WindowType::Time{..}) => json!("TUMBLING"), Some(WindowType::Session) => json!("SESSION") },
            "readQueries": readers,
            "writeQueries": writers,
            "fields": fields,
            "type": s.kind.to_string(),
            "timestamp": s.timestamp.clone().unwrap_or_default(),
            "statistics": "",
            "errorStats": "",
            "extended": extended,
            "keyFormat": s.key_format.to_string(),
            "valueFormat": s.value_format.to_string(),
            "topic": s.topic,
            "partitions": s.partitions,
            "replication": 1,
            "statement": s.sql,
            "queryOffsetSummaries": [],
            "sourceConstraints": [],
        })
    }

    fn describe(
        &self,
        target: &DescribeTarget,
        extended: bool,
        text: &str,
    ) -> Result<Entity, SqlError> {
        let st = lock(&self.inner.state);
        match target {
            DescribeTarget::Source(name) => {
                let Some(s) = st.catalog.source(&name.name) else {
                    return Err(self.not_found(&st, name));
                };
                Ok(
                    json!({"@type": "sourceDescription", "statementText": text, "sourceDescription": self.source_description(&st, s, extended), "warnings": []}),
                )
            }
            DescribeTarget::Streams | DescribeTarget::Tables => {
                let kind = if matches!(target, DescribeTarget::Streams) {
                    SourceKind::Stream
                } else {
                    SourceKind::Table
                };
                let descs: Vec<Json> = st
                    .catalog
                    .sources
                    .values()
                    .filter(|s| s.kind == kind)
                    .map(|s| self.source_description(&st, s, extended))
                    .collect();
                Ok(
                    json!({"@type": "source_descriptions", "statementText": text, "sourceDescriptions": descs, "warnings": []}),
                )
            }
            DescribeTarget::Function(name) => {
                let Some(info) = self
                    .inner
                    .functions
                    .list()
                    .into_iter()
                    .find(|f| f.name.eq_ignore_ascii_case(&name.name))
                else {
                    let mut msg = format!("Can't find any functions with the name '{}'", name.name);
                    if let Some(s) = self.inner.functions.suggest(&name.name) {
                        msg.push_str(&format!("; did you mean {s}?"));
                    }
                    return Err(SqlError::not_found(Some(name.pos), msg));
                };
                Ok(
                    json!({"@type": "describe_function", "statementText": text, "name": info.name, "description": info.description,
                          "author": "Runnel", "version": env!("CARGO_PKG_VERSION"), "path": "internal",
                          "functions": [{"arguments": [], "returnType": "", "description": info.description, "argumentTypes": [info.signature]}],
                          "type": match info.kind { crate::functions::FunctionKind::Scalar => "SCALAR", crate::functions::FunctionKind::Aggregate => "AGGREGATE", crate::functions::FunctionKind::Table => "TABLE" },
                          "warnings": []}),
                )
            }
        }
    }

    fn explain(&self, target: &ExplainTarget, text: &str) -> Result<Entity, SqlError> {
        let st = lock(&self.inner.state);
        match target {
            ExplainTarget::QueryId(id) => {
                let Some(q) = st
                    .catalog
                    .queries
                    .values()
                    .find(|q| q.id.eq_ignore_ascii_case(&id.name))
                else {
                    return Err(SqlError::not_found(Some(id.pos), format!("Query with id:{} does not exist, use SHOW QUERIES to view the full set of running queries.", id.name)));
                };
                let sink = st.catalog.source(&q.sink);
                let fields: Vec<Json> = sink
                    .map(|s| {
                        s.schema
                            .columns()
                            .map(|c| json!({"name": c.name, "schema": type_json(&c.ty)}))
                            .collect()
                    })
                    .unwrap_or_default();
                let state = st
                    .running
                    .get(&q.id)
                    .map(|r| lock(&r.state).clone())
                    .unwrap_or_else(|| "UNKNOWN".into());
                Ok(
                    json!({"@type": "queryDescription", "statementText": text, "queryDescription": {
                    "id": q.id, "statementText": q.sql, "windowType": Json::Null, "fields": fields,
                    "sources": q.sources, "sinks": [q.sink], "topology": q.topology, "executionPlan": q.topology,
                    "overriddenProperties": {}, "state": state, "queryType": "PERSISTENT"}, "warnings": []}),
                )
            }
            ExplainTarget::Statement(stmt) => {
                let query = match stmt.as_ref() {
                    Statement::CreateAs { query, .. } | Statement::InsertSelect { query, .. } | Statement::Select(query) => query,
                    _ => return Err(SqlError::new("EXPLAIN works on queries: SELECT, CREATE … AS SELECT, INSERT INTO … SELECT")),
                };
                let mut planner = Planner::new(&st.catalog, &self.inner.functions, "EXPLAIN");
                let planned = planner.plan(query, "EXPLAIN", Sink::Callback(Arc::new(|_| {})))?;
                let topology = planner
                    .builder
                    .build()
                    .map_err(|e| SqlError::new(e.to_string()))?;
                let fields: Vec<Json> = planned
                    .schema
                    .columns()
                    .map(|c| json!({"name": c.name, "schema": type_json(&c.ty)}))
                    .collect();
                Ok(
                    json!({"@type": "queryDescription", "statementText": text, "queryDescription": {
                    "id": "", "statementText": text, "fields": fields, "sources": planned.sources, "sinks": [],
                    "topology": topology.describe(), "executionPlan": topology.describe(), "overriddenProperties": {}, "state": "NOT_RUNNING"}, "warnings": []}),
                )
            }
        }
    }

    /// Runs a query statement (`POST /query`): a pull query (no EMIT), a
    /// push query (`EMIT CHANGES`) or PRINT.
    pub fn query(
        &self,
        text: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<QueryStream, SqlError> {
        let p = crate::parser::parse_one(text)?;
        match &p.statement {
            Statement::Select(q) if q.emit.is_none() => {
                let local_only = props.get(PULL_LOCAL_ONLY).is_some_and(|v| v == "true");
                self.pull(q, text, local_only)
            }
            Statement::Select(q) => self.push(q, props),
            Statement::Print {
                topic,
                from_beginning,
                interval,
                limit,
            } => self.print(topic, *from_beginning, interval.unwrap_or(1), *limit),
            _ => Err(SqlError::at(
                p.pos,
                "only SELECT and PRINT run as queries; send other statements to /ksql",
            )),
        }
    }

    /// A pull query: rows from the partitions of the table hosted here
    /// and, unless `local_only`, from the other engines running the
    /// table's query when some keys (or a scan) need their partitions.
    fn pull(&self, q: &Query, text: &str, local_only: bool) -> Result<QueryStream, SqlError> {
        if !q.joins.is_empty()
            || !q.group_by.is_empty()
            || q.window.is_some()
            || !q.partition_by.is_empty()
            || q.having.is_some()
        {
            return Err(SqlError::at(q.pos, "Pull queries don't support JOIN, GROUP BY, WINDOW, PARTITION BY or HAVING clauses; add EMIT CHANGES for a push query"));
        }
        let st = lock(&self.inner.state);
        let Some(info) = st.catalog.source(&q.from.name.name).cloned() else {
            return Err(self.not_found(&st, &q.from.name));
        };
        if info.kind == SourceKind::Stream {
            return Err(SqlError::at(q.from.name.pos, format!("Pull queries on streams are not supported: {} is a stream. Add EMIT CHANGES for a push query", info.name)));
        }
        let Some(qid) = st.serving.get(&info.name).cloned() else {
            return Err(SqlError::at(q.from.name.pos, format!("The table {} is not queryable: it is not materialized. Create it with CREATE SOURCE TABLE, or build it with CREATE TABLE AS SELECT", info.name)));
        };
        let Some(run) = st.running.get(&qid) else {
            return Err(SqlError::server(format!(
                "query {qid} serving {} is not running",
                info.name
            )));
        };
        let (Some(queries), Some(mat)) = (run.queries.clone(), run.materialization.clone()) else {
            return Err(SqlError::server(format!("query {qid} has no state store")));
        };
        drop(st);
        // The table's columns, as pull queries see them.
        let cols = info.table_columns();
        let scope = columns_scope(&cols, &q.from.qualifier().name);
        let mut binder = Binder {
            scope: scope.clone(),
            functions: &self.inner.functions,
        };
        let filter = match &q.where_ {
            Some(w) => Some(binder.bind_condition(w, "WHERE")?),
            None => None,
        };
        let (columns, exprs) = self.select_list(&q.select, &scope, &cols)?;
        // Key lookups when WHERE pins the (single) key column.
        let nkeys = info.schema.key.len();
        let keys = q
            .where_
            .as_ref()
            .and_then(|w| key_lookup(w, &info.schema.key));
        let mut rows: Vec<(Row, Option<Window>, Row)> = Vec::new();
        // Some rows may be in partitions hosted elsewhere: `Some`, with the
        // error to report when no other engine can be asked.
        let mut missing: Option<Option<QueryError>> = None;
        let ks = mat.key_serde.clone();
        let vs = mat.value_serde.clone();
        let qerr = |e: runnel_streams::QueryError| SqlError::server(e.to_string());
        match mat.window {
            None => {
                let kv = queries.kv::<Row, Row>(&mat.store, ks, vs).map_err(qerr)?;
                match keys {
                    Some(keys) => lookup_keys(keys, &mut rows, &mut missing, |k| {
                        Ok(kv.get(k)?.map(|v| (None, v)).into_iter().collect())
                    })?,
                    None => {
                        missing = Some(None);
                        rows.extend(
                            kv.all()
                                .map_err(qerr)?
                                .into_iter()
                                .map(|(k, v)| (k, None, v)),
                        )
                    }
                }
            }
            Some(WindowType::Time { size_ms }) => {
                let ws = queries
                    .window::<Row, Row>(&mat.store, ks, vs, size_ms)
                    .map_err(qerr)?;
                match keys {
                    Some(keys) => lookup_keys(keys, &mut rows, &mut missing, |k| {
                        Ok(ws
                            .fetch(k, i64::MIN, i64::MAX)?
                            .into_iter()
                            .map(|(w, v)| (Some(w), v))
                            .collect())
                    })?,
                    None => {
                        missing = Some(None);
                        rows.extend(
                            ws.all()
                                .map_err(qerr)?
                                .into_iter()
                                .map(|(k, v)| (k.key, Some(k.window), v)),
                        )
                    }
                }
            }
            Some(WindowType::Session) => {
                let ss = queries
                    .session::<Row, Row>(&mat.store, ks, vs)
                    .map_err(qerr)?;
                missing = Some(None);
                rows.extend(
                    ss.all()
                        .map_err(qerr)?
                        .into_iter()
                        .map(|(k, v)| (k.key, Some(k.window), v)),
                );
            }
        }
        let limit = q.limit.and_then(|l| usize::try_from(l).ok());
        let mut out: Vec<Row> = Vec::new();
        for (k, w, v) in rows {
            let Some(row) = (mat.post)(&k, w, &v) else {
                continue;
            };
            if row.len() < nkeys {
                continue;
            }
            if let Some(f) = &filter {
                if !f.test(&row) {
                    continue;
                }
            }
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            out.push(exprs.iter().map(|e| e.eval(&row)).collect());
        }
        if let Some(not_here) = missing.filter(|_| !local_only) {
            if limit.is_none_or(|l| out.len() < l) {
                self.pull_elsewhere(&queries, text, &columns, not_here, &mut out)?;
            }
        }
        if let Some(l) = limit {
            out.truncate(l);
        }
        let (tx, rx) = mpsc::sync_channel(out.len() + 1);
        for row in out {
            let _ = tx.send(QueryEvent::Row(row));
        }
        Ok(QueryStream {
            id: format!(
                "pull_{}",
                self.inner.transient.fetch_add(1, Ordering::Relaxed)
            ),
            // Leading columns that are the table's key columns.
            key_columns: columns
                .iter()
                .zip(&info.schema.key)
                .take_while(|((n, _), k)| *n == k.name)
                .count(),
            columns,
            is_pull: true,
            rows: rx,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Adds the rows other engines running the same query host (asked
    /// through the pull forwarder, to answer locally only). `not_here` is
    /// the error to report when some partition is not hosted here and no
    /// other engine is known.
    fn pull_elsewhere(
        &self,
        queries: &Queries,
        text: &str,
        columns: &[(String, SqlType)],
        not_here: Option<QueryError>,
        out: &mut Vec<Row>,
    ) -> Result<(), SqlError> {
        let own = self.inner.config.application_server.as_deref();
        let mut others: Vec<String> = queries
            .membership()
            .members
            .into_iter()
            .filter(|m| !m.partitions.is_empty())
            .filter_map(|m| m.endpoint)
            .filter(|e| Some(e.as_str()) != own)
            .collect();
        others.sort();
        others.dedup();
        let forwarder = lock(&self.inner.forwarder).clone();
        let (Some(forward), false) = (forwarder, others.is_empty()) else {
            return match not_here {
                Some(e) => Err(SqlError::server(e.to_string())),
                None => Ok(()),
            };
        };
        for host in others {
            let rows = forward(&host, text).map_err(|e| {
                SqlError::server(format!("cannot read the partitions {host} hosts: {e}"))
            })?;
            for r in rows {
                if r.len() != columns.len() {
                    return Err(SqlError::server(format!(
                        "{host} answered a row of {} columns, not {}",
                        r.len(),
                        columns.len()
                    )));
                }
                let row = r
                    .iter()
                    .zip(columns)
                    .map(|(j, (name, ty))| {
                        crate::format::from_json(ty, j).map_err(|e| {
                            SqlError::server(format!("{host} answered column {name}: {e}"))
                        })
                    })
                    .collect::<Result<Row, SqlError>>()?;
                out.push(row);
            }
        }
        Ok(())
    }

    /// A select list over a plain scope: names, types and expressions.
    fn select_list(
        &self,
        items: &[SelectItem],
        scope: &Scope,
        cols: &[Column],
    ) -> Result<SelectList, SqlError> {
        let mut columns = Vec::new();
        let mut exprs = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                SelectItem::Star { .. } => {
                    for (j, c) in cols.iter().enumerate() {
                        columns.push((c.name.clone(), c.ty.clone()));
                        exprs.push(Compiled::Column(j));
                    }
                }
                SelectItem::Expr { expr, alias } => {
                    let (c, t) = Binder {
                        scope: scope.clone(),
                        functions: &self.inner.functions,
                    }
                    .bind(expr)?;
                    let name = match (alias, &expr.kind) {
                        (Some(a), _) => a.name.clone(),
                        (None, ExprKind::Column { name, .. }) => name.name.clone(),
                        _ => format!("KSQL_COL_{i}"),
                    };
                    columns.push((name, t.unwrap_or(SqlType::String)));
                    exprs.push(c);
                }
            }
        }
        Ok((columns, exprs))
    }

    fn push(&self, q: &Query, props: &BTreeMap<String, String>) -> Result<QueryStream, SqlError> {
        let asked = offset_reset_prop(&lock(&self.inner.state).props, props);
        let earliest = asked.is_some_and(|v| v.eq_ignore_ascii_case("earliest"));
        let simple = q.joins.is_empty()
            && q.group_by.is_empty()
            && q.window.is_none()
            && q.partition_by.is_empty()
            && q.having.is_none();
        if simple {
            return self.push_tap(q, earliest);
        }
        self.push_topology(q, earliest)
    }

    /// A push query over one source without state: a subscriber of the
    /// source's shared tap.
    fn push_tap(&self, q: &Query, earliest: bool) -> Result<QueryStream, SqlError> {
        let st = lock(&self.inner.state);
        let Some(info) = st.catalog.source(&q.from.name.name).cloned() else {
            return Err(self.not_found(&st, &q.from.name));
        };
        drop(st);
        if q.select.iter().any(
            |i| matches!(i, SelectItem::Expr { expr, .. } if has_agg(&self.inner.functions, expr)),
        ) {
            return self.push_topology(q, earliest);
        }
        // Scope: key columns, window bounds, value columns, pseudo columns.
        let mut cols = info.table_columns();
        let nvisible = cols.len();
        cols.push(Column::new(ROWTIME, SqlType::BigInt));
        cols.push(Column::new(crate::schema::ROWPARTITION, SqlType::Int));
        cols.push(Column::new(crate::schema::ROWOFFSET, SqlType::BigInt));
        let scope = columns_scope(&cols, &q.from.qualifier().name);
        let filter = match &q.where_ {
            Some(w) => Some(
                Binder {
                    scope: scope.clone(),
                    functions: &self.inner.functions,
                }
                .bind_condition(w, "WHERE")?,
            ),
            None => None,
        };
        let (columns, exprs) = self.select_list(&q.select, &scope, &cols[..nvisible])?;
        let (tx, rx) = mpsc::sync_channel(4096);
        let stop = Arc::new(AtomicBool::new(false));
        let sub = Subscriber {
            filter,
            exprs,
            limit: q.limit,
            sent: 0,
            tx,
            stop: stop.clone(),
        };
        let tap = self.tap(&info, earliest)?;
        lock(&tap.subscribers).push(sub);
        Ok(QueryStream {
            id: format!(
                "transient_{}_{}",
                info.name,
                self.inner.transient.fetch_add(1, Ordering::Relaxed)
            ),
            columns,
            key_columns: info.schema.key.len(),
            is_pull: false,
            rows: rx,
            stop,
        })
    }

    fn tap(&self, info: &SourceInfo, earliest: bool) -> Result<Arc<Tap>, SqlError> {
        let mut taps = lock(&self.inner.taps);
        taps.retain(|_, t| !t.stop.load(Ordering::SeqCst));
        if !earliest {
            if let Some(t) = taps.get(&info.name) {
                return Ok(t.clone());
            }
        }
        let id = self.inner.transient.fetch_add(1, Ordering::Relaxed);
        let backend = self
            .inner
            .cluster
            .backend(
                &format!("{}tap_{}_{id}", self.inner.config.service_id, info.name),
                Guarantee::AtLeastOnce,
            )
            .map_err(backend_err)?;
        // Fix where the tap starts before the query is handed back, so a
        // record written right after the query started is never missed.
        let mut backend = backend;
        let tps: Vec<TopicPartition> = (0..info.partitions.max(1))
            .map(|p| TopicPartition::new(&info.topic, p))
            .collect();
        let start = if earliest {
            vec![0; tps.len()]
        } else {
            backend.end_offsets(&tps).map_err(backend_err)?
        };
        let tap = Arc::new(Tap {
            subscribers: Mutex::new(Vec::new()),
            stop: Arc::new(AtomicBool::new(false)),
        });
        let t2 = tap.clone();
        let info2 = info.clone();
        std::thread::Builder::new()
            .name(format!("tap-{}", info.name))
            .spawn(move || run_tap(t2, info2, backend, tps, start))
            .map_err(|e| SqlError::server(e.to_string()))?;
        if !earliest {
            taps.insert(info.name.clone(), tap.clone());
        }
        Ok(tap)
    }

    /// A push query that needs state (aggregation, join): its own
    /// transient topology.
    fn push_topology(&self, q: &Query, earliest: bool) -> Result<QueryStream, SqlError> {
        let id = self.inner.transient.fetch_add(1, Ordering::Relaxed);
        let qid = format!("transient_{id}");
        let (tx, rx) = mpsc::sync_channel::<QueryEvent>(4096);
        let stop = Arc::new(AtomicBool::new(false));
        let limit = q.limit;
        let sent = Arc::new(AtomicU64::new(0));
        let (s2, tx2, sent2) = (stop.clone(), tx.clone(), sent.clone());
        let cb = Arc::new(move |r: SinkRow| {
            if s2.load(Ordering::SeqCst) {
                return;
            }
            let mut row = r.key.clone();
            if let Some(w) = r.window {
                row.push(Value::BigInt(w.start));
                row.push(Value::BigInt(w.end));
            }
            let ev = match r.value {
                Some(v) => {
                    row.extend(v);
                    QueryEvent::Row(row)
                }
                None => QueryEvent::Tombstone(row),
            };
            if tx2.try_send(ev).is_err() {
                s2.store(true, Ordering::SeqCst);
            }
            let n = sent2.fetch_add(1, Ordering::SeqCst) + 1;
            if limit.is_some_and(|l| n >= l) {
                s2.store(true, Ordering::SeqCst);
            }
        });
        let st = lock(&self.inner.state);
        let mut planner = Planner::new(&st.catalog, &self.inner.functions, &qid);
        planner.materialize = false;
        let planned = planner.plan(q, &qid, Sink::Callback(cb))?;
        let topology = planner
            .builder
            .build()
            .map_err(|e| SqlError::new(e.to_string()))?;
        drop(st);
        // Unique to this engine process: a transient query must never join
        // another engine's group, nor resume an earlier process's offsets.
        let app_id = format!(
            "{}{qid}_{}",
            self.inner.config.service_id, self.inner.origin
        );
        let mut backend = self
            .inner
            .cluster
            .backend(&app_id, Guarantee::AtLeastOnce)
            .map_err(backend_err)?;
        if !earliest {
            // Start at the end: commit the group's offsets there first.
            let mut offsets = Vec::new();
            let st = lock(&self.inner.state);
            for s in &planned.sources {
                if let Some(info) = st.catalog.source(s) {
                    for p in 0..info.partitions {
                        offsets.push(TopicPartition::new(&info.topic, p));
                    }
                }
            }
            drop(st);
            let ends = backend.end_offsets(&offsets).map_err(backend_err)?;
            let commits: Vec<(TopicPartition, i64)> = offsets.into_iter().zip(ends).collect();
            backend.commit(&commits).map_err(backend_err)?;
        }
        let mut config = StreamsConfig::new(app_id).commit_interval(Duration::from_millis(500));
        config.poll_timeout = Duration::from_millis(50);
        config.max_task_idle = Duration::from_millis(50);
        let idle = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new("RUNNING".to_string()));
        spawn_query(
            qid.clone(),
            topology,
            config,
            backend,
            stop.clone(),
            state,
            idle,
        )?;
        let mut columns: Vec<(String, SqlType)> = planned
            .schema
            .key
            .iter()
            .map(|c| (c.name.clone(), c.ty.clone()))
            .collect();
        if planned.window.is_some() {
            columns.push(("WINDOWSTART".into(), SqlType::BigInt));
            columns.push(("WINDOWEND".into(), SqlType::BigInt));
        }
        columns.extend(
            planned
                .schema
                .value
                .iter()
                .map(|c| (c.name.clone(), c.ty.clone())),
        );
        drop(tx);
        Ok(QueryStream {
            id: qid,
            columns,
            key_columns: planned.schema.key.len(),
            is_pull: false,
            rows: rx,
            stop,
        })
    }

    fn print(
        &self,
        topic: &Ident,
        from_beginning: bool,
        interval: u64,
        limit: Option<u64>,
    ) -> Result<QueryStream, SqlError> {
        let name = topic.name.clone();
        let mut backend = self
            .inner
            .cluster
            .backend(
                &format!("{}print", self.inner.config.service_id),
                Guarantee::AtLeastOnce,
            )
            .map_err(backend_err)?;
        // Topic names are case-sensitive; unquoted identifiers were
        // upper-cased, so try the name as written in lower case too.
        let (name, parts) = match backend.partition_count(&name).map_err(backend_err)? {
            Some(n) => (name, n),
            None => {
                let lower = name.to_ascii_lowercase();
                match backend.partition_count(&lower).map_err(backend_err)? {
                    Some(n) => (lower, n),
                    None => return Err(SqlError::not_found(Some(topic.pos), format!("Could not find topic '{}', or the KSQL user does not have permissions to list the topic. Topic names are case-sensitive.", topic.name))),
                }
            }
        };
        let (tx, rx) = mpsc::sync_channel(4096);
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        std::thread::Builder::new()
            .name(format!("print-{name}"))
            .spawn(move || {
                let tps: Vec<TopicPartition> =
                    (0..parts).map(|p| TopicPartition::new(&name, p)).collect();
                let mut pos: Vec<i64> = if from_beginning {
                    vec![0; tps.len()]
                } else {
                    backend
                        .end_offsets(&tps)
                        .unwrap_or_else(|_| vec![0; tps.len()])
                };
                let mut seen = 0u64;
                let mut sent = 0u64;
                while !s2.load(Ordering::SeqCst) {
                    let mut any = false;
                    for (i, tp) in tps.iter().enumerate() {
                        let mut lines = Vec::new();
                        match backend.read_partition(tp, pos[i], &mut |r| {
                            lines.push(format!(
                                "rowtime: {}, key: {}, value: {}, partition: {}",
                                crate::types::format_timestamp(r.timestamp),
                                r.key
                                    .as_deref()
                                    .map_or("<null>".into(), |k| String::from_utf8_lossy(k)
                                        .into_owned()),
                                r.value
                                    .as_deref()
                                    .map_or("<null>".into(), |v| String::from_utf8_lossy(v)
                                        .into_owned()),
                                r.partition
                            ));
                        }) {
                            Ok(end) => {
                                any |= end > pos[i];
                                pos[i] = end;
                            }
                            Err(e) => {
                                let _ = tx.send(QueryEvent::Error(e.to_string()));
                                return;
                            }
                        }
                        for l in lines {
                            seen += 1;
                            if !(seen - 1).is_multiple_of(interval.max(1)) {
                                continue;
                            }
                            if tx.send(QueryEvent::Text(l)).is_err() {
                                return;
                            }
                            sent += 1;
                            if limit.is_some_and(|l| sent >= l) {
                                return;
                            }
                        }
                    }
                    if !any {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
            .map_err(|e| SqlError::server(e.to_string()))?;
        Ok(QueryStream {
            id: format!(
                "print_{}",
                self.inner.transient.fetch_add(1, Ordering::Relaxed)
            ),
            columns: Vec::new(),
            key_columns: 0,
            is_pull: false,
            rows: rx,
            stop,
        })
    }

    /// The state of each persistent query, by id.
    pub fn query_states(&self) -> BTreeMap<String, String> {
        lock(&self.inner.state)
            .running
            .iter()
            .map(|(k, r)| (k.clone(), lock(&r.state).clone()))
            .collect()
    }

    /// How many source taps serve push queries now.
    pub fn tap_count(&self) -> usize {
        lock(&self.inner.taps)
            .values()
            .filter(|t| !t.stop.load(Ordering::SeqCst))
            .count()
    }

    /// The number of commands recorded.
    pub fn command_count(&self) -> i64 {
        lock(&self.inner.state).seq
    }

    /// How a failure maps to ksqlDB's REST error codes.
    pub fn error_code(e: &SqlError) -> u32 {
        match e.kind {
            ErrorKind::Statement => 40001,
            ErrorKind::NotFound => 40001,
            ErrorKind::Server => 50000,
        }
    }
}

fn has_agg(f: &FunctionRegistry, e: &crate::ast::Expr) -> bool {
    if let ExprKind::Function { name, .. } = &e.kind {
        if f.aggregate(&name.name).is_some() {
            return true;
        }
    }
    let mut found = false;
    let mut e = e.clone();
    crate::plan::for_each_child(&mut e, &mut |c| found |= has_agg(f, c));
    found
}

/// CREATE of a name that exists (ksqlDB's wording).
fn exists_error(kind: SourceKind, name: &Ident, existing: SourceKind) -> SqlError {
    SqlError::at(
        name.pos,
        format!(
            "Cannot add {} '{}': A {} with the same name already exists",
            kind.to_string().to_lowercase(),
            name.name,
            existing.to_string().to_lowercase()
        ),
    )
}

/// A scope over plain columns, all under one qualifier.
fn columns_scope(cols: &[Column], qualifier: &str) -> Scope {
    Scope::new(
        cols.iter()
            .enumerate()
            .map(|(i, c)| ScopeColumn {
                qualifier: Some(qualifier.to_string()),
                name: c.name.clone(),
                ty: c.ty.clone(),
                index: i,
            })
            .collect(),
    )
}

fn select_star(name: &str) -> Query {
    let ident = Ident {
        name: name.to_string(),
        pos: Default::default(),
    };
    Query {
        select: vec![SelectItem::Star {
            qualifier: None,
            pos: Default::default(),
        }],
        from: crate::ast::Relation {
            name: ident,
            alias: None,
        },
        joins: Vec::new(),
        window: None,
        where_: None,
        group_by: Vec::new(),
        partition_by: Vec::new(),
        having: None,
        emit: Some(crate::ast::Emit::Changes),
        limit: None,
        pos: Default::default(),
    }
}

fn describe_columns(s: &Schema) -> String {
    s.value
        .iter()
        .map(|c| format!("`{}` {}", c.name, c.ty))
        .collect::<Vec<_>>()
        .join(", ")
}

/// ksqlDB's JSON description of a type.
fn type_json(t: &SqlType) -> Json {
    match t {
        SqlType::Array(inner) => {
            json!({"type": "ARRAY", "fields": Json::Null, "memberSchema": type_json(inner)})
        }
        SqlType::Map(_, v) => {
            json!({"type": "MAP", "fields": Json::Null, "memberSchema": type_json(v)})
        }
        SqlType::Struct(fields) => {
            json!({"type": "STRUCT", "fields": fields.iter().map(|(n, t)| json!({"name": n, "schema": type_json(t)})).collect::<Vec<_>>(), "memberSchema": Json::Null})
        }
        SqlType::Decimal { precision, scale } => {
            json!({"type": "DECIMAL", "fields": Json::Null, "memberSchema": Json::Null, "parameters": {"precision": precision, "scale": scale}})
        }
        SqlType::Int => {
            json!({"type": "INTEGER", "fields": Json::Null, "memberSchema": Json::Null})
        }
        other => {
            json!({"type": other.to_string(), "fields": Json::Null, "memberSchema": Json::Null})
        }
    }
}

/// Keys pinned by `key = literal` or `key IN (literals)` on a one-column
/// key.
fn key_lookup(w: &crate::ast::Expr, key: &[Column]) -> Option<Vec<Row>> {
    if key.len() != 1 {
        return None;
    }
    let col = &key[0];
    let is_key = |e: &crate::ast::Expr| matches!(&e.kind, ExprKind::Column { name, .. } if name.name == col.name);
    let lit = |e: &crate::ast::Expr| -> Option<Value> {
        match &e.kind {
            ExprKind::Literal(l) => crate::expr::literal_value(l, e.pos)
                .ok()
                .and_then(|v| crate::cast::cast(&v, &col.ty).ok()),
            _ => None,
        }
    };
    match &w.kind {
        ExprKind::Binary {
            op: crate::ast::BinaryOp::Eq,
            left,
            right,
        } => {
            if is_key(left) {
                lit(right).map(|v| vec![vec![v]])
            } else if is_key(right) {
                lit(left).map(|v| vec![vec![v]])
            } else {
                None
            }
        }
        ExprKind::InList {
            expr,
            list,
            negated: false,
        } if is_key(expr) => list.iter().map(|e| lit(e).map(|v| vec![v])).collect(),
        _ => None,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What names a persistent query being started, and where it begins.
struct QueryStart<'a> {
    qid: &'a str,
    /// The statement's text.
    text: &'a str,
    /// Where its source partitions start (`auto.offset.reset`): the
    /// earliest offset unless the statement or session set `latest`.
    reset: OffsetReset,
}

impl<'a> QueryStart<'a> {
    /// A CSAS/CTAS/INSERT INTO query, starting where the statement's
    /// request or the session's `SET` asked (earliest by default).
    fn asked(
        qid: &'a str,
        text: &'a str,
        session: &BTreeMap<String, String>,
        props: &BTreeMap<String, String>,
    ) -> Self {
        QueryStart {
            qid,
            text,
            reset: persistent_reset(session, props),
        }
    }
}

/// The `auto.offset.reset` a statement asked for: its request's
/// properties first, then the session's `SET`.
fn offset_reset_prop(
    session: &BTreeMap<String, String>,
    props: &BTreeMap<String, String>,
) -> Option<String> {
    let find = |m: &BTreeMap<String, String>| {
        ["auto.offset.reset", "ksql.streams.auto.offset.reset"]
            .iter()
            .find_map(|k| m.get(*k).cloned())
    };
    find(props).or_else(|| find(session))
}

/// A persistent query's [`OffsetReset`]: earliest unless `latest` was asked.
fn persistent_reset(
    session: &BTreeMap<String, String>,
    props: &BTreeMap<String, String>,
) -> OffsetReset {
    match offset_reset_prop(session, props) {
        Some(v) if v.eq_ignore_ascii_case("latest") => OffsetReset::Latest,
        _ => OffsetReset::Earliest,
    }
}

/// Starts a query's stream thread (the engine is not `Send`: it is built
/// on the thread that runs it) and returns it with its store handle.
fn spawn_query(
    qid: String,
    topology: runnel_streams::Topology,
    config: StreamsConfig,
    backend: Box<dyn Backend>,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<String>>,
    idle: Arc<AtomicBool>,
) -> Result<(JoinHandle<()>, Queries), SqlError> {
    let (ready_tx, ready_rx) = mpsc::channel::<Result<Queries, SqlError>>();
    let name = format!("query-{qid}");
    let run = move || {
        let mut streams = match Streams::new(topology, config, backend) {
            Ok(s) => s,
            Err(e) => {
                let _ = ready_tx.send(Err(SqlError::server(e.to_string())));
                return;
            }
        };
        let _ = ready_tx.send(Ok(streams.queries()));
        let mut dirty = false;
        let mut failures = 0u32;
        while !stop.load(Ordering::SeqCst) {
            match streams.poll_once() {
                Ok(n) => {
                    failures = 0;
                    if n > 0 {
                        dirty = true;
                        idle.store(false, Ordering::SeqCst);
                    } else if streams.is_idle() {
                        if dirty {
                            if let Err(e) = streams.commit() {
                                tracing::warn!(query = %qid, error = %e, "commit failed");
                                continue;
                            }
                            dirty = false;
                        }
                        idle.store(true, Ordering::SeqCst);
                    } else {
                        idle.store(false, Ordering::SeqCst);
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!(query = %qid, error = %e, "query failed");
                    *lock(&state) = "ERROR".to_string();
                    if failures > 5 {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        if let Err(e) = streams.close() {
            tracing::warn!(query = %qid, error = %e, "closing failed");
        }
    };
    let handle = std::thread::Builder::new()
        .name(name)
        .spawn(run)
        .map_err(|e| SqlError::server(format!("cannot start a query thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok(q)) => Ok((handle, q)),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(e)
        }
        Err(_) => {
            let _ = handle.join();
            Err(SqlError::server("the query thread stopped while starting"))
        }
    }
}

/// A push query's subscription to a tap.
struct Subscriber {
    filter: Option<Compiled>,
    exprs: Vec<Compiled>,
    limit: Option<u64>,
    sent: u64,
    tx: SyncSender<QueryEvent>,
    stop: Arc<AtomicBool>,
}

/// One reader of a source's topic fanning rows out to every push query
/// on it: a thousand push queries cost one reader and one decode per row.
struct Tap {
    subscribers: Mutex<Vec<Subscriber>>,
    stop: Arc<AtomicBool>,
}

fn run_tap(
    tap: Arc<Tap>,
    info: SourceInfo,
    mut backend: Box<dyn Backend>,
    tps: Vec<TopicPartition>,
    mut pos: Vec<i64>,
) {
    let ks = info.key_serde();
    let vs = info.value_serde();
    let window = info.window;
    let mut idle_rounds = 0u32;
    while !tap.stop.load(Ordering::SeqCst) {
        let mut any = false;
        for (i, tp) in tps.iter().enumerate() {
            let mut rows: Vec<(Row, bool)> = Vec::new();
            let r = backend.read_partition(tp, pos[i], &mut |r| {
                let (key, w) = match (r.key.as_deref(), window) {
                    (Some(k), Some(WindowType::Time { size_ms })) if k.len() >= 8 => {
                        let (kb, wb) = k.split_at(k.len() - 8);
                        let mut a = [0u8; 8];
                        a.copy_from_slice(wb);
                        let start = i64::from_be_bytes(a);
                        (
                            ks.decode(kb).ok(),
                            Some((start, start.saturating_add(size_ms))),
                        )
                    }
                    (Some(k), Some(WindowType::Session)) if k.len() >= 16 => {
                        let (kb, wb) = k.split_at(k.len() - 16);
                        let mut a = [0u8; 8];
                        a.copy_from_slice(&wb[..8]);
                        let end = i64::from_be_bytes(a);
                        a.copy_from_slice(&wb[8..]);
                        let start = i64::from_be_bytes(a);
                        (ks.decode(kb).ok(), Some((start, end)))
                    }
                    (Some(k), _) => (ks.decode(k).ok(), None),
                    (None, _) => (Some(vec![Value::Null; info.schema.key.len()]), None),
                };
                let Some(mut row) = key else { return };
                if let Some((s, e)) = w {
                    row.push(Value::BigInt(s));
                    row.push(Value::BigInt(e));
                }
                let tombstone = r.value.is_none();
                match r.value.as_deref() {
                    Some(v) => match vs.decode(v) {
                        Ok(v) => row.extend(v),
                        Err(_) => return,
                    },
                    None => row.extend(std::iter::repeat_n(Value::Null, info.schema.value.len())),
                }
                row.push(Value::BigInt(r.timestamp));
                row.push(Value::Int(r.partition));
                row.push(Value::BigInt(r.offset));
                rows.push((row, tombstone));
            });
            match r {
                Ok(end) => {
                    any |= end > pos[i];
                    pos[i] = end;
                }
                Err(e) => {
                    tracing::warn!(topic = %info.topic, error = %e, "push query tap cannot read");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            if rows.is_empty() {
                continue;
            }
            let mut subs = lock(&tap.subscribers);
            subs.retain_mut(|s| {
                if s.stop.load(Ordering::SeqCst) {
                    return false;
                }
                for (row, tombstone) in &rows {
                    if *tombstone && info.kind == SourceKind::Stream {
                        continue;
                    }
                    if let Some(f) = &s.filter {
                        if !*tombstone && !f.test(row) {
                            continue;
                        }
                    }
                    let out: Row = s.exprs.iter().map(|e| e.eval(row)).collect();
                    let ev = if *tombstone {
                        QueryEvent::Tombstone(out)
                    } else {
                        QueryEvent::Row(out)
                    };
                    // A subscriber that cannot keep up is closed rather than
                    // slowing every other one down.
                    if s.tx.try_send(ev).is_err() {
                        s.stop.store(true, Ordering::SeqCst);
                        return false;
                    }
                    s.sent += 1;
                    if s.limit.is_some_and(|l| s.sent >= l) {
                        s.stop.store(true, Ordering::SeqCst);
                        return false;
                    }
                }
                true
            });
        }
        if lock(&tap.subscribers).is_empty() {
            idle_rounds += 1;
            // A tap nobody listens to stops after a while.
            if idle_rounds > 200 {
                tap.stop.store(true, Ordering::SeqCst);
            }
        } else {
            idle_rounds = 0;
        }
        if !any {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
