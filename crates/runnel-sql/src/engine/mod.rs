//! The engine: runs statements against a cluster. One module per
//! responsibility:
//!
//! - `ddl`: statements that change the catalog (CREATE, CREATE … AS
//!   SELECT, DROP) and the session's SET/DEFINE;
//! - `persistent`: persistent queries (INSERT INTO … SELECT, TERMINATE;
//!   their `Streams` applications on threads of their own);
//! - `pull`: pull queries against the stores of the query serving a table;
//! - `push`: push queries from shared taps or transient topologies, PRINT;
//! - `insert`: INSERT INTO … VALUES and `/inserts-stream` rows;
//! - `show`: SHOW, DESCRIBE, EXPLAIN;
//! - `commands`: the command topic that records every accepted statement,
//!   replayed on start and followed for statements of other engines;
//! - `props`: statement and request properties.
//!
//! This module holds the engine's state and the dispatchers that hand each
//! statement to its module.

mod commands;
mod connectors;
mod ddl;
mod insert;
mod persistent;
mod props;
mod pull;
mod push;
pub mod result;
mod show;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use runnel_cluster::{Cluster, NewTopic};
use runnel_streams::backend::{Backend, BackendError, Guarantee};
use serde_json::Value as Json;

use crate::ast::{Ident, Parsed, Statement};
use crate::catalog::Catalog;
use crate::error::{ErrorKind, SqlError};
use crate::format::FormatRegistry;
use crate::format::Row;
use crate::functions::FunctionRegistry;
use crate::types::SqlType;

pub use result::{
    CommandRef, Executed, Outcome, Property, PropertyScope, QueryDescription, RunningQuery,
    SourceDescription,
};

use persistent::Running;
use push::Tap;

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
    /// `ksql.schema.registry.url`: the schema registry of the AVRO and
    /// JSON_SR formats; without one, statements naming them fail.
    pub schema_registry_url: Option<String>,
    /// `ksql.connect.url`: the Kafka Connect REST API the connector
    /// statements use; without one they fail.
    pub connect_url: Option<String>,
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
            schema_registry_url: None,
            connect_url: None,
        }
    }
}

/// The rows of a pull or push query.
pub struct QueryStream {
    pub id: String,
    /// Column names and types, in row order.
    pub columns: Vec<(String, SqlType)>,
    /// Which columns ksqlDB's REST header marks `KEY`: a pull query's
    /// projected key columns (window bounds included); none for push
    /// queries, whose header lists every column as a value column.
    pub key_flags: Vec<bool>,
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
    /// The query ended by itself, saying why (ksqlDB's `finalMessage`:
    /// "Limit Reached", "Query Completed"); nothing follows.
    Final(String),
}

/// ksqlDB's final message of a push query that reached its LIMIT.
pub const LIMIT_REACHED: &str = "Limit Reached";
/// ksqlDB's final message of a query over a stream that read all it had to.
pub const QUERY_COMPLETED: &str = "Query Completed";

struct State {
    catalog: Catalog,
    running: BTreeMap<String, Running>,
    props: BTreeMap<String, String>,
    variables: BTreeMap<String, String>,
    /// Sequence number of the next command.
    seq: i64,
    /// Tables' materializations by table name (the query serving it).
    serving: HashMap<String, String>,
    /// Custom types (CREATE TYPE) by name.
    types: BTreeMap<String, crate::types::SqlType>,
}

struct Inner {
    cluster: Arc<dyn Cluster>,
    functions: FunctionRegistry,
    /// The formats statements may name (with AVRO and JSON_SR when a
    /// schema registry is configured).
    formats: FormatRegistry,
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

/// What every statement handler gets besides the statement's own parts:
/// its text, the request's properties, and whether to record it in the
/// command topic (not when replaying or following it).
#[derive(Clone, Copy)]
pub(super) struct Cmd<'a> {
    pub text: &'a str,
    pub props: &'a BTreeMap<String, String>,
    pub record: bool,
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
                formats: match &config.schema_registry_url {
                    Some(url) => FormatRegistry::with_schema_registry(
                        runnel_registry_client::RegistryClient::new(url),
                    ),
                    None => FormatRegistry::builtin(),
                },
                config,
                state: Mutex::new(State {
                    catalog: Catalog::default(),
                    running: BTreeMap::new(),
                    props: BTreeMap::new(),
                    variables: BTreeMap::new(),
                    seq: 0,
                    serving: HashMap::new(),
                    types: BTreeMap::new(),
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
        let follower = commands::follow(Arc::downgrade(&engine.inner))?;
        *lock(&engine.inner.follower) = Some(follower);
        Ok(engine)
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

    /// Runs statements (`POST /ksql`): what each statement did, or the
    /// error of the first that failed together with what ran before it.
    pub fn execute(
        &self,
        text: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<Vec<Executed>, (SqlError, Vec<Executed>)> {
        let types = lock(&self.inner.state).types.clone();
        let parsed = crate::parser::parse_with_types(text, &types)
            .map_err(|e| (SqlError::from(e), Vec::new()))?;
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
    /// when it changes the catalog. Each kind of statement goes to the
    /// module responsible for it.
    fn run(
        &self,
        p: &Parsed,
        props: &BTreeMap<String, String>,
        record: bool,
    ) -> Result<Executed, SqlError> {
        let text = p.text.as_str();
        let cmd = Cmd {
            text,
            props,
            record,
        };
        let outcome = match &p.statement {
            Statement::CreateSource {
                kind,
                or_replace,
                if_not_exists,
                source,
                name,
                columns,
                props: with,
            } => self.create_source(
                &ddl::CreateSource {
                    kind,
                    or_replace,
                    if_not_exists,
                    source,
                    name,
                    columns,
                    with,
                },
                &cmd,
            ),
            Statement::CreateAs {
                kind,
                or_replace,
                if_not_exists,
                name,
                props: with,
                query,
            } => self.create_as_select(
                &ddl::CreateAs {
                    kind,
                    or_replace,
                    if_not_exists,
                    name,
                    with,
                    query,
                },
                &cmd,
            ),
            Statement::InsertSelect {
                target,
                props: with,
                query,
            } => self.insert_select(target, with, query, &cmd),
            Statement::InsertValues {
                target,
                columns,
                values,
            } => self.insert_values_statement(target, columns, values),
            Statement::Drop {
                kind,
                if_exists,
                name,
                delete_topic,
            } => self.drop_source(kind, if_exists, name, delete_topic, &cmd),
            Statement::Terminate { query_id } => self.terminate(query_id, &cmd),
            Statement::Show { what, extended } => self.show(what, *extended),
            Statement::Describe { target, extended } => self.describe(target, *extended),
            Statement::CreateConnector {
                if_not_exists,
                name,
                config,
                ..
            } => self.create_connector(*if_not_exists, name, config),
            Statement::DropConnector { if_exists, name } => self.drop_connector(*if_exists, name),
            Statement::Explain(target) => self.explain(target, text),
            Statement::Set { name, value } => self.set(name, value),
            Statement::Unset { name } => self.unset(name),
            Statement::Define { name, value } => self.define(name, value),
            Statement::Undefine { name } => self.undefine(name),
            Statement::CreateType {
                name,
                ty,
                if_not_exists,
            } => self.create_type(name, ty, *if_not_exists, &cmd),
            Statement::DropType { name, if_exists } => self.drop_type(name, *if_exists, &cmd),
            Statement::Alter {
                kind,
                name,
                columns,
            } => self.alter_source(*kind, name, columns, &cmd),
            // ksqlDB's server does not know the CLI's RUN SCRIPT.
            Statement::RunScript { .. } => Err(SqlError::at(
                p.pos,
                "Syntax Error\nUnknown statement 'RUN'\nRUN SCRIPT is a CLI command: the CLI reads the file and sends its statements",
            )
            .in_stage(crate::error::ErrorKind::Syntax)),
            Statement::Print { .. } | Statement::Select(_) => Err(SqlError::at(
                p.pos,
                "SELECT and PRINT statements are queries: send them to /query or /query-stream",
            )),
        }?;
        Ok(Executed {
            statement_text: text.to_string(),
            outcome,
        })
    }

    /// Runs a query statement (`POST /query`): a pull query (no EMIT), a
    /// push query (`EMIT CHANGES`) or PRINT.
    pub fn query(
        &self,
        text: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<QueryStream, SqlError> {
        let types = lock(&self.inner.state).types.clone();
        let p = crate::parser::parse_one_with_types(text, &types)?;
        match &p.statement {
            Statement::Select(q) if q.emit.is_none() => {
                let local_only = props.get(PULL_LOCAL_ONLY).is_some_and(|v| v == "true");
                self.pull(q, text, local_only, props)
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

    fn not_found(&self, st: &State, name: &Ident) -> SqlError {
        self.not_found_as(st, name, format!("{} does not exist.", name.name))
    }

    /// `msg` about a source that does not exist, with ksqlDB's hint when
    /// one differs only in case (quoting) or a name is close.
    fn not_found_as(&self, st: &State, name: &Ident, mut msg: String) -> SqlError {
        let other_case = st
            .catalog
            .sources
            .keys()
            .find(|n| n.eq_ignore_ascii_case(&name.name) && **n != name.name);
        match other_case {
            Some(n) if *n == n.to_ascii_uppercase() => msg.push_str(&format!(
                "\nDid you mean {n}? Hint: try removing double quotes from the source name."
            )),
            Some(n) => msg.push_str(&format!(
                "\nDid you mean \"{n}\"? Hint: wrap the source name in double quotes to make it case-sensitive."
            )),
            None => {
                if let Some(s) = st.catalog.suggest(&name.name) {
                    msg.push_str(&format!(" Did you mean {s}?"));
                }
            }
        }
        SqlError::not_found(Some(name.pos), msg)
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

    /// How a failure maps to ksqlDB's REST error codes.
    pub fn error_code(e: &SqlError) -> u32 {
        match e.kind {
            ErrorKind::Syntax | ErrorKind::Statement | ErrorKind::Prepare | ErrorKind::Sanitize => {
                40001
            }
            ErrorKind::NotFound => 40001,
            ErrorKind::Server => 50000,
            ErrorKind::Remote(status) => u32::from(status) * 100,
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_broker::{Broker, BrokerConfig};
    use runnel_embed::LocalCluster;

    /// An engine over an in-process broker (kept alive by the tempdir).
    fn engine() -> (Engine, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("broker");
        let engine = Engine::start(
            Arc::new(LocalCluster::new(broker.local())),
            EngineConfig::default(),
        )
        .expect("engine starts");
        (engine, dir)
    }

    fn one(engine: &Engine, text: &str) -> Result<Outcome, SqlError> {
        match engine.execute(text, &BTreeMap::new()) {
            Ok(mut all) if all.len() == 1 => Ok(all.remove(0).outcome),
            Ok(all) => panic!("{text}: {} entities", all.len()),
            Err((e, _)) => Err(e),
        }
    }

    #[test]
    fn connector_statements_without_kafka_connect_say_so() {
        let (engine, _dir) = engine();
        let e = one(&engine, "SHOW CONNECTORS").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Server);
        assert!(e.message.contains("ksql.connect.url"), "{e}");

        // A Connect that cannot be reached: a server error naming it, and
        // the engine keeps serving.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        drop(listener);
        let dir = tempfile::tempdir().expect("temp dir");
        let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("broker");
        let engine = Engine::start(
            Arc::new(LocalCluster::new(broker.local())),
            EngineConfig {
                connect_url: Some(url.clone()),
                ..EngineConfig::default()
            },
        )
        .expect("engine starts");
        let e = one(&engine, "DROP CONNECTOR c").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Server);
        assert!(
            e.message
                .starts_with("Failed to drop connector: cannot reach Kafka Connect"),
            "{e}"
        );
        assert!(e.message.contains(&url), "{e}");
        assert!(matches!(
            one(&engine, "SHOW STREAMS"),
            Ok(Outcome::Streams(_))
        ));
    }

    #[test]
    fn each_statement_reaches_its_handler() {
        let (engine, _dir) = engine();
        let kind = |text: &str| -> String {
            match one(&engine, text).unwrap_or_else(|e| panic!("{text}: {e}")) {
                Outcome::Status {
                    message,
                    command: Some(c),
                } => format!("Status #{} {:?}: {message}", c.seq, c.query_id),
                Outcome::Status {
                    message,
                    command: None,
                } => format!("Status: {message}"),
                Outcome::Streams(_) => "Streams".into(),
                Outcome::Tables(_) => "Tables".into(),
                Outcome::SourceDescriptions(_) => "SourceDescriptions".into(),
                Outcome::SourceDescription(_) => "SourceDescription".into(),
                Outcome::Queries(_) => "Queries".into(),
                Outcome::Topics(_) => "Topics".into(),
                Outcome::Properties(_) => "Properties".into(),
                Outcome::Functions(_) => "Functions".into(),
                Outcome::Variables(_) => "Variables".into(),
                Outcome::Function(_) => "Function".into(),
                Outcome::QueryDescription(_) => "QueryDescription".into(),
                Outcome::ConnectorInfo(_) => "ConnectorInfo".into(),
                Outcome::Connectors { .. } => "Connectors".into(),
                Outcome::ConnectorDescription(_) => "ConnectorDescription".into(),
                Outcome::DroppedConnector(_) => "DroppedConnector".into(),
                Outcome::Warning(m) => format!("Warning: {m}"),
            }
        };
        let cases = [
            (
                "CREATE STREAM S (K STRING KEY, V INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', PARTITIONS=1);",
                "Status #0 None: Stream created",
            ),
            (
                "CREATE TABLE T AS SELECT K, COUNT(*) AS N FROM S GROUP BY K;",
                "Status #1 Some(\"CTAS_T_1\"): Created query with ID CTAS_T_1",
            ),
            (
                "INSERT INTO S SELECT * FROM S WHERE V > 100;",
                "Status #2 Some(\"INSERTQUERY_2\"): Created query with ID INSERTQUERY_2",
            ),
            ("INSERT INTO S (K, V) VALUES ('a', 1);", "Status: Inserted 1 row"),
            ("SHOW STREAMS;", "Streams"),
            ("SHOW TABLES;", "Tables"),
            ("SHOW QUERIES;", "Queries"),
            ("SHOW TOPICS;", "Topics"),
            ("SHOW PROPERTIES;", "Properties"),
            ("SHOW FUNCTIONS;", "Functions"),
            ("SHOW VARIABLES;", "Variables"),
            ("DESCRIBE S;", "SourceDescription"),
            ("DESCRIBE STREAMS EXTENDED;", "SourceDescriptions"),
            ("DESCRIBE FUNCTION UCASE;", "Function"),
            ("EXPLAIN CTAS_T_1;", "QueryDescription"),
            ("EXPLAIN SELECT * FROM S EMIT CHANGES;", "QueryDescription"),
            (
                "SET 'auto.offset.reset'='earliest';",
                "Status: Successfully set auto.offset.reset to earliest",
            ),
            (
                "UNSET 'auto.offset.reset';",
                "Status: Successfully unset auto.offset.reset",
            ),
            ("DEFINE x = 'y';", "Status: Defined variable X"),
            ("UNDEFINE x;", "Status: Undefined variable X"),
            ("TERMINATE INSERTQUERY_2;", "Status #3 None: Query terminated."),
            ("TERMINATE CTAS_T_1;", "Status #4 None: Query terminated."),
            (
                "DROP TABLE T;",
                "Status #5 None: Source `T` (topic: T) was dropped.",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(kind(text), want, "{text}");
        }
        engine.shutdown();
    }

    #[test]
    fn queries_and_cli_commands_are_refused_as_statements() {
        let (engine, _dir) = engine();
        for (text, says) in [
            ("SELECT * FROM S EMIT CHANGES;", "send them to /query"),
            ("PRINT 's';", "send them to /query"),
            ("RUN SCRIPT '/tmp/x.sql';", "CLI command"),
        ] {
            let e = one(&engine, text).expect_err(text);
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
        let e = engine
            .query("SHOW STREAMS;", &BTreeMap::new())
            .err()
            .expect("not a query");
        assert!(
            e.to_string().contains("send other statements to /ksql"),
            "{e}"
        );
        engine.shutdown();
    }

    #[test]
    fn statements_are_recorded_once_and_replayed_by_a_new_engine() {
        let dir = tempfile::tempdir().expect("temp dir");
        let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("broker");
        let cluster = Arc::new(LocalCluster::new(broker.local()));
        let first = Engine::start(cluster.clone(), EngineConfig::default()).expect("starts");
        one(
            &first,
            "CREATE STREAM S (K STRING KEY, V INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', PARTITIONS=1);",
        )
        .expect("created");
        // Reading statements are not recorded.
        one(&first, "SHOW STREAMS;").expect("shown");
        assert_eq!(first.command_count(), 1);
        first.shutdown();
        let second = Engine::start(cluster, EngineConfig::default()).expect("starts again");
        assert!(second.catalog().source("S").is_some());
        assert_eq!(second.command_count(), 1);
        second.shutdown();
    }

    /// A running query's group is listed Stable with the engine as its one
    /// member owning every partition (not Empty, as a group with only
    /// committed offsets); TERMINATE deletes the group, offsets included,
    /// and DROP does for the queries it stops.
    #[test]
    fn query_groups_are_stable_while_they_run_and_gone_once_dropped() {
        use runnel_broker::group::GroupState;
        let dir = tempfile::tempdir().expect("temp dir");
        let broker = Broker::open(dir.path(), BrokerConfig::default()).expect("broker");
        let engine = Engine::start(
            Arc::new(LocalCluster::new(broker.local())),
            EngineConfig::default(),
        )
        .expect("starts");
        let run = |text: &str| one(&engine, text).unwrap_or_else(|e| panic!("{text}: {e}"));
        run("CREATE STREAM S (K STRING KEY, V INT) WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON', PARTITIONS=2);");
        run("CREATE TABLE T AS SELECT K, COUNT(*) AS N FROM S GROUP BY K;");
        run("CREATE STREAM C AS SELECT * FROM S;");
        run("INSERT INTO S (K, V) VALUES ('a', 1);");
        assert!(engine.wait_idle(Duration::from_secs(20)));
        let groups = || broker.groups().list();
        let query_groups: Vec<(String, GroupState)> = groups()
            .into_iter()
            .filter(|(g, _, _)| g.contains("query_"))
            .map(|(g, _, state)| (g, state))
            .collect();
        assert_eq!(query_groups.len(), 2, "{query_groups:?}");
        assert!(
            query_groups.iter().all(|(_, s)| *s == GroupState::Stable),
            "{query_groups:?}"
        );
        let (ctas, _) = query_groups
            .iter()
            .find(|(g, _)| g.contains("CTAS_T_"))
            .expect("the CTAS group");
        let desc = broker.groups().describe(ctas).expect("described");
        assert_eq!(desc.members.len(), 1);
        assert!(!desc.members[0].assignment.is_empty());

        let csas = query_groups
            .iter()
            .find(|(g, _)| g.contains("CSAS_C_"))
            .map(|(g, _)| g.clone())
            .expect("the CSAS group");
        let qid = csas.split("query_").nth(1).expect("query id").to_string();
        run(&format!("TERMINATE {qid};"));
        assert!(
            !groups().iter().any(|(g, _, _)| *g == csas),
            "{:?}",
            groups()
        );
        assert_eq!(broker.groups().offsets().group_offsets(&csas).len(), 0);
        run("DROP TABLE T;");
        assert!(
            !groups().iter().any(|(g, _, _)| g == ctas),
            "{:?}",
            groups()
        );
        engine.shutdown();
    }
}
