//! Persistent queries: INSERT INTO … SELECT and TERMINATE, starting and
//! stopping the `Streams` application of each query on a thread of its
//! own, and waiting for them to be idle.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use runnel_streams::backend::{Backend, Guarantee};
use runnel_streams::{OffsetReset, Queries, Streams, StreamsConfig};

use super::props::{persistent_guarantee, persistent_reset, prop_string, statement_settings};
use super::result::Outcome;
use super::{backend_err, lock, Cmd, Engine, State};
use crate::ast::{Ident, Props, Query, SourceKind};
use crate::catalog::{QueryInfo, SourceInfo};
use crate::error::SqlError;
use crate::plan::{Materialization, Planner, Sink};
use crate::schema::Schema;

pub(super) struct Running {
    pub(super) info: QueryInfo,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) thread: Option<JoinHandle<()>>,
    pub(super) state: Arc<Mutex<String>>,
    pub(super) idle: Arc<Activity>,
    pub(super) queries: Option<Queries>,
    pub(super) materialization: Option<Materialization>,
}

/// What a query thread reports for [`Engine::wait_idle`]: whether its last
/// poll found it idle, how many idle polls it has finished, and how many
/// records it has processed. A flag alone is stale: it can say idle while
/// records produced a moment ago wait for a thread not yet scheduled.
#[derive(Default)]
pub(super) struct Activity {
    idle: AtomicBool,
    idle_polls: AtomicU64,
    records: AtomicU64,
}

/// What names a persistent query being started, and where it begins.
pub(super) struct QueryStart<'a> {
    pub(super) qid: &'a str,
    /// The statement's text.
    pub(super) text: &'a str,
    /// Where its source partitions start (`auto.offset.reset`): the
    /// earliest offset unless the statement or session set `latest`.
    pub(super) reset: OffsetReset,
    /// At-least-once unless the statement or session asked exactly-once.
    pub(super) guarantee: Guarantee,
    /// The request's properties with the session's settings the statement
    /// depends on ([`statement_settings`]): what it is planned and recorded
    /// with.
    pub(super) settings: BTreeMap<String, String>,
}

impl<'a> QueryStart<'a> {
    /// A CSAS/CTAS/INSERT INTO query, starting where the statement's
    /// request or the session's `SET` asked (earliest by default).
    pub(super) fn asked(
        qid: &'a str,
        text: &'a str,
        session: &BTreeMap<String, String>,
        props: &BTreeMap<String, String>,
    ) -> Self {
        QueryStart {
            qid,
            text,
            reset: persistent_reset(session, props),
            guarantee: persistent_guarantee(session, props),
            settings: statement_settings(session, props),
        }
    }
}

impl Engine {
    /// INSERT INTO … SELECT: a persistent query writing an existing stream
    /// whose value columns it must match.
    pub(super) fn insert_select(
        &self,
        target: &Ident,
        with: &Props,
        query: &Query,
        cmd: &Cmd<'_>,
    ) -> Result<Outcome, SqlError> {
        let Cmd {
            text,
            props,
            record,
        } = *cmd;
        let mut st = lock(&self.inner.state);
        let Some(info) = st.catalog.source(&target.name).cloned() else {
            return Err(self.not_found_as(
                &st,
                target,
                format!("Source `{}` does not exist.", target.name),
            ));
        };
        // A table first, as ksqlDB checks (also for a source table).
        if info.kind == SourceKind::Table {
            return Err(SqlError::at(
                target.pos,
                format!(
                    "INSERT INTO can only be used to insert into a stream. {} is a table.",
                    info.name
                ),
            ));
        }
        if info.read_only {
            return Err(SqlError::at(
                target.pos,
                format!(
                    "Cannot insert into read-only {}: {}",
                    info.kind.to_string().to_lowercase(),
                    info.name
                ),
            ));
        }
        if !info.headers.is_empty() {
            return Err(SqlError::at(
                target.pos,
                format!(
                    "Cannot insert into {} because it has header columns",
                    info.name
                ),
            ));
        }
        let seq = st.seq;
        let qid = prop_string(with, "QUERY_ID").unwrap_or_else(|| format!("INSERTQUERY_{seq}"));
        let start = QueryStart::asked(&qid, text, &st.props, props);
        let planned = self.start_query(&mut st, &start, query, &info.name, Some(&info))?;
        if planned.schema.value.len() != info.schema.value.len()
            || planned
                .schema
                .value
                .iter()
                .zip(&info.schema.value)
                .any(|(a, b)| a.ty != b.ty)
        {
            self.drop_query(&mut st, &qid);
            return Err(SqlError::at(
                query.pos,
                format!(
                    "Incompatible schema between results and sink.\nResult schema is {}\nSink schema is {}",
                    describe_columns(&planned.schema),
                    describe_columns(&info.schema)
                ),
            ));
        }
        drop(st);
        // Recorded with the session's settings: a replay has no session.
        self.record(record, text, &start.settings)?;
        Ok(Outcome::created(&qid, seq))
    }

    /// TERMINATE a query, or ALL.
    pub(super) fn terminate(
        &self,
        query_id: &Option<Ident>,
        cmd: &Cmd<'_>,
    ) -> Result<Outcome, SqlError> {
        let Cmd {
            text,
            props,
            record,
        } = *cmd;
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
            self.drop_query(&mut st, id);
            st.catalog.queries.remove(id);
            for s in st.catalog.sources.values_mut() {
                if s.writer.as_deref() == Some(id.as_str()) {
                    s.writer = None;
                }
            }
        }
        let seq = st.seq;
        drop(st);
        self.record(record, text, props)?;
        Ok(Outcome::command("Query terminated.", None, seq))
    }

    /// Plans and starts a persistent query writing `sink` (`None`: a source
    /// table's materialization, no output topic).
    pub(super) fn start_query(
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
                key_schema_id: s.key_schema_id,
                value_schema_id: s.value_schema_id,
                key_protobuf_nullable: s.key_protobuf_nullable,
                value_protobuf_nullable: s.value_protobuf_nullable,
                key_delimiter: s.key_delimiter,
                value_delimiter: s.value_delimiter,
            },
            None => Sink::Callback(Arc::new(|_| {})),
        };
        let mut planner = Planner::new(&st.catalog, &self.inner.functions, qid);
        planner.sink_timestamp = sink.and_then(|s| s.timestamp.clone());
        planner.sink_timestamp_format = sink.and_then(|s| s.timestamp_format.clone());
        planner.settings = start.settings.clone();
        let planned = planner.plan(query, sink_name, sink_spec)?;
        let topology = planner
            .builder
            .build()
            .map_err(|e| SqlError::new(e.to_string()))?;
        let description = topology.describe();
        let app_id = self.query_app_id(qid);
        let guarantee = start.guarantee;
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
        // Every table update goes downstream, as ksqlDB's query tests expect
        // (they run with cache.max.bytes.buffering = 0); the record cache
        // of runnel-streams stays off here until the SQL engine has the
        // setting.
        config.cache_max_bytes = 0;
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new("RUNNING".to_string()));
        let idle = Arc::new(Activity::default());
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

    /// A query's application id: its consumer group, the prefix of its
    /// internal topics.
    fn query_app_id(&self, qid: &str) -> String {
        format!("{}query_{qid}", self.inner.config.service_id)
    }

    /// Stops a query for good (TERMINATE, DROP, a query refused after it
    /// started) and deletes its consumer group with its offsets, as ksqlDB
    /// cleans up a terminated query. Other servers running it still hold
    /// the group: the last one to stop it deletes it.
    pub(super) fn drop_query(&self, st: &mut State, qid: &str) {
        self.stop_query(st, qid);
        let group = self.query_app_id(qid);
        match self.inner.cluster.delete_group(&group) {
            Ok(()) => tracing::debug!(%group, "query group deleted"),
            Err(e) => tracing::debug!(%group, error = %e, "query group not deleted"),
        }
    }

    /// Stops a query, keeping its group and offsets (CREATE OR REPLACE
    /// starts it again where it stopped).
    pub(super) fn stop_query(&self, st: &mut State, qid: &str) {
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
        let activities = || -> Vec<Arc<Activity>> {
            let st = lock(&self.inner.state);
            st.running.values().map(|r| r.idle.clone()).collect()
        };
        // Rounds until one passes in which no query processed a record:
        // each round waits for every query to finish two idle polls after
        // it began (the first may have started before records were
        // produced), so records written by one query for another are seen.
        loop {
            let all = activities();
            let polls: Vec<u64> = all
                .iter()
                .map(|a| a.idle_polls.load(Ordering::SeqCst))
                .collect();
            let records: u64 = all.iter().map(|a| a.records.load(Ordering::SeqCst)).sum();
            loop {
                let done = all.iter().zip(&polls).all(|(a, p)| {
                    a.idle_polls.load(Ordering::SeqCst) >= p + 2 && a.idle.load(Ordering::SeqCst)
                });
                if done {
                    break;
                }
                if Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let after: u64 = all.iter().map(|a| a.records.load(Ordering::SeqCst)).sum();
            if after == records && activities().len() == all.len() {
                return true;
            }
        }
    }

    /// The state of each persistent query, by id.
    pub fn query_states(&self) -> BTreeMap<String, String> {
        lock(&self.inner.state)
            .running
            .iter()
            .map(|(k, r)| (k.clone(), lock(&r.state).clone()))
            .collect()
    }
}

/// A schema as ksqlDB writes it in refusals: `K` STRING KEY, `V` INTEGER.
pub(super) fn describe_columns(s: &Schema) -> String {
    s.key
        .iter()
        .map(|c| format!("`{}` {} KEY", c.name, c.ty))
        .chain(s.value.iter().map(|c| format!("`{}` {}", c.name, c.ty)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Starts a query's stream thread (the engine is not `Send`: it is built
/// on the thread that runs it) and returns it with its store handle.
pub(super) fn spawn_query(
    qid: String,
    topology: runnel_streams::Topology,
    config: StreamsConfig,
    backend: Box<dyn Backend>,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<String>>,
    idle: Arc<Activity>,
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
                        idle.idle.store(false, Ordering::SeqCst);
                        idle.records.fetch_add(n as u64, Ordering::SeqCst);
                    } else if streams.is_idle() {
                        if dirty {
                            if let Err(e) = streams.commit() {
                                tracing::warn!(query = %qid, error = %e, "commit failed");
                                continue;
                            }
                            dirty = false;
                        }
                        idle.idle.store(true, Ordering::SeqCst);
                        idle.idle_polls.fetch_add(1, Ordering::SeqCst);
                    } else {
                        idle.idle.store(false, Ordering::SeqCst);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Column;
    use crate::types::SqlType;

    #[test]
    fn a_query_starts_where_the_request_or_session_asked() {
        let none = BTreeMap::new();
        let latest = BTreeMap::from([("auto.offset.reset".to_string(), "latest".to_string())]);
        assert_eq!(
            QueryStart::asked("Q", "S;", &none, &none).reset,
            OffsetReset::Earliest
        );
        assert_eq!(
            QueryStart::asked("Q", "S;", &latest, &none).reset,
            OffsetReset::Latest
        );
        let start = QueryStart::asked("CSAS_S_1", "CREATE …;", &none, &latest);
        assert_eq!(
            (start.qid, start.text, start.reset),
            ("CSAS_S_1", "CREATE …;", OffsetReset::Latest)
        );
    }

    #[test]
    fn schema_mismatches_name_the_key_and_value_columns() {
        let schema = Schema {
            key: vec![Column::new("K", SqlType::String)],
            value: vec![
                Column::new("A", SqlType::Int),
                Column::new("B", SqlType::String),
            ],
        };
        assert_eq!(
            describe_columns(&schema),
            "`K` STRING KEY, `A` INTEGER, `B` STRING"
        );
    }
}
