//! Push queries (`EMIT CHANGES`): over one source without state, a
//! subscriber of the source's shared tap (one reader fanning decoded rows
//! out to every push query on it); when they aggregate or join, a
//! transient topology of their own. Also PRINT.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runnel_streams::backend::{Backend, ConsumedRecord, Guarantee, TopicPartition};
use runnel_streams::StreamsConfig;

use super::persistent::spawn_query;
use super::props::{offset_reset_prop, statement_settings};
use super::pull::{columns_scope, SelectList};
use super::{backend_err, lock, Engine, QueryEvent, QueryStream, LIMIT_REACHED};
use crate::ast::{ExprKind, Ident, Query, SelectItem, SourceKind};
use crate::catalog::SourceInfo;
use crate::error::SqlError;
use crate::expr::{Binder, Compiled};
use crate::format::{Row, RowSerde};
use crate::functions::FunctionRegistry;
use crate::plan::{Planner, Sink, SinkRow};
use crate::schema::{Column, WindowType, ROWTIME};
use crate::types::{SqlType, Value};

impl Engine {
    pub(super) fn push(
        &self,
        q: &Query,
        props: &BTreeMap<String, String>,
    ) -> Result<QueryStream, SqlError> {
        let asked = offset_reset_prop(&lock(&self.inner.state).props, props);
        let earliest = asked.is_some_and(|v| v.eq_ignore_ascii_case("earliest"));
        if stateless(q) {
            return self.push_tap(q, earliest, props);
        }
        self.push_topology(q, earliest, props)
    }

    /// A push query over one source without state: a subscriber of the
    /// source's shared tap.
    pub(super) fn push_tap(
        &self,
        q: &Query,
        earliest: bool,
        props: &BTreeMap<String, String>,
    ) -> Result<QueryStream, SqlError> {
        let st = lock(&self.inner.state);
        let Some(info) = st.catalog.source(&q.from.name.name).cloned() else {
            return Err(self.not_found(&st, &q.from.name));
        };
        drop(st);
        if q.select.iter().any(
            |i| matches!(i, SelectItem::Expr { expr, .. } if has_agg(&self.inner.functions, expr)),
        ) {
            return self.push_topology(q, earliest, props);
        }
        let (filter, (columns, exprs)) = self.bind_record_query(q, &info)?;
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
        self.subscribe_tap(&info, earliest, sub)?;
        Ok(QueryStream {
            id: format!(
                "transient_{}_{}",
                info.name,
                self.inner.transient.fetch_add(1, Ordering::Relaxed)
            ),
            key_flags: vec![false; columns.len()],
            columns,
            is_pull: false,
            rows: rx,
            stop,
        })
    }

    /// A query over a source's records as [`decode_record`] gives them (key
    /// columns, window bounds, value columns, then ROWTIME, ROWPARTITION
    /// and ROWOFFSET): its WHERE, its output columns and their expressions.
    pub(super) fn bind_record_query(
        &self,
        q: &Query,
        info: &SourceInfo,
    ) -> Result<(Option<Compiled>, SelectList), SqlError> {
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
        Ok((
            filter,
            self.select_list(&q.select, &scope, &cols[..nvisible])?,
        ))
    }

    /// Adds `sub` to the source's tap: the shared one from the end of the
    /// topic, or a tap of its own from the beginning (`earliest`). The
    /// subscriber is in place before a new tap's reader starts, so no row
    /// the reader takes is handed to nobody.
    pub(super) fn subscribe_tap(
        &self,
        info: &SourceInfo,
        earliest: bool,
        sub: Subscriber,
    ) -> Result<(), SqlError> {
        let mut taps = lock(&self.inner.taps);
        taps.retain(|_, t| !t.stop.load(Ordering::SeqCst));
        if !earliest {
            if let Some(t) = taps.get(&info.name) {
                lock(&t.subscribers).push(sub);
                return Ok(());
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
            subscribers: Mutex::new(vec![sub]),
            stop: Arc::new(AtomicBool::new(false)),
        });
        let t2 = tap.clone();
        let info2 = info.clone();
        std::thread::Builder::new()
            .name(format!("tap-{}", info.name))
            .spawn(move || run_tap(t2, info2, backend, tps, start))
            .map_err(|e| SqlError::server(e.to_string()))?;
        if !earliest {
            taps.insert(info.name.clone(), tap);
        }
        Ok(())
    }

    /// A push query that needs state (aggregation, join): its own
    /// transient topology.
    pub(super) fn push_topology(
        &self,
        q: &Query,
        earliest: bool,
        props: &BTreeMap<String, String>,
    ) -> Result<QueryStream, SqlError> {
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
                return;
            }
            let n = sent2.fetch_add(1, Ordering::SeqCst) + 1;
            if limit.is_some_and(|l| n >= l) {
                // The response ends here, whenever the topology's thread
                // notices the stop and lets go of its sender.
                s2.store(true, Ordering::SeqCst);
                let _ = tx2.try_send(QueryEvent::Final(LIMIT_REACHED.into()));
            }
        });
        let st = lock(&self.inner.state);
        let mut planner = Planner::new(&st.catalog, &self.inner.functions, &qid);
        planner.materialize = false;
        planner.settings = statement_settings(&st.props, props);
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
        // Every table update goes downstream, as ksqlDB's query tests expect
        // (they run with cache.max.bytes.buffering = 0); the record cache
        // of runnel-streams stays off here until the SQL engine has the
        // setting.
        config.cache_max_bytes = 0;
        config.max_task_idle = Duration::from_millis(50);
        let idle = Arc::new(super::persistent::Activity::default());
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
            key_flags: vec![false; columns.len()],
            columns,
            is_pull: false,
            rows: rx,
            stop,
        })
    }

    pub(super) fn print(
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
            key_flags: Vec::new(),
            is_pull: false,
            rows: rx,
            stop,
        })
    }

    /// How many source taps serve push queries now.
    pub fn tap_count(&self) -> usize {
        lock(&self.inner.taps)
            .values()
            .filter(|t| !t.stop.load(Ordering::SeqCst))
            .count()
    }
}

/// Whether a query needs no state by its clauses (no join, grouping,
/// window, repartition or HAVING): a push query of that shape can be
/// served by the source's tap (unless its select list aggregates).
pub(super) fn stateless(q: &Query) -> bool {
    q.joins.is_empty()
        && q.group_by.is_empty()
        && q.window.is_none()
        && q.partition_by.is_empty()
        && q.having.is_none()
}

pub(super) fn has_agg(f: &FunctionRegistry, e: &crate::ast::Expr) -> bool {
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

/// A push query's subscription to a tap.
pub(super) struct Subscriber {
    pub(super) filter: Option<Compiled>,
    pub(super) exprs: Vec<Compiled>,
    pub(super) limit: Option<u64>,
    pub(super) sent: u64,
    pub(super) tx: SyncSender<QueryEvent>,
    pub(super) stop: Arc<AtomicBool>,
}

/// One reader of a source's topic fanning rows out to every push query
/// on it: a thousand push queries cost one reader and one decode per row.
pub(super) struct Tap {
    pub(super) subscribers: Mutex<Vec<Subscriber>>,
    pub(super) stop: Arc<AtomicBool>,
}

pub(super) fn run_tap(
    tap: Arc<Tap>,
    info: SourceInfo,
    mut backend: Box<dyn Backend>,
    tps: Vec<TopicPartition>,
    mut pos: Vec<i64>,
) {
    let ks = info.key_serde();
    let vs = info.value_serde();
    let mut idle_rounds = 0u32;
    while !tap.stop.load(Ordering::SeqCst) {
        let mut any = false;
        for (i, tp) in tps.iter().enumerate() {
            let mut rows: Vec<(Row, bool)> = Vec::new();
            let r = backend.read_partition(tp, pos[i], &mut |r| {
                if let Some(row) = decode_record(&info, &ks, &vs, &r) {
                    rows.push(row);
                }
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
                        let _ = s.tx.try_send(QueryEvent::Final(LIMIT_REACHED.into()));
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

/// A record of a source's topic as the row push queries and stream pull
/// queries read: key columns, window bounds (windowed sources), value
/// columns, ROWTIME, ROWPARTITION, ROWOFFSET; and whether it is a
/// tombstone (its value columns NULL). `None` for a record whose key or
/// value does not decode.
pub(super) fn decode_record(
    info: &SourceInfo,
    ks: &RowSerde,
    vs: &RowSerde,
    r: &ConsumedRecord,
) -> Option<(Row, bool)> {
    let (key, w) = match (r.key.as_deref(), info.window) {
        (Some(k), Some(WindowType::Time { size_ms })) if k.len() >= 8 => {
            let (kb, wb) = k.split_at(k.len() - 8);
            let start = be_i64(wb);
            (
                ks.decode(kb).ok(),
                Some((start, start.saturating_add(size_ms))),
            )
        }
        (Some(k), Some(WindowType::Session)) if k.len() >= 16 => {
            let (kb, wb) = k.split_at(k.len() - 16);
            (
                ks.decode(kb).ok(),
                Some((be_i64(&wb[8..]), be_i64(&wb[..8]))),
            )
        }
        (Some(k), _) => (ks.decode(k).ok(), None),
        (None, _) => (Some(vec![Value::Null; info.schema.key.len()]), None),
    };
    let mut row = key?;
    if let Some((s, e)) = w {
        row.push(Value::BigInt(s));
        row.push(Value::BigInt(e));
    }
    let tombstone = r.value.is_none();
    match r.value.as_deref() {
        Some(v) => row.extend(vs.decode(v).ok()?),
        None => row.extend(std::iter::repeat_n(Value::Null, info.schema.value.len())),
    }
    row.extend(info.headers.iter().map(|h| h.read(&r.headers)));
    row.push(Value::BigInt(r.timestamp));
    row.push(Value::Int(r.partition));
    row.push(Value::BigInt(r.offset));
    Some((row, tombstone))
}

/// The big-endian i64 in the first 8 bytes of `b` (callers checked its length).
fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str) -> Query {
        match crate::parser::parse_one(text).map(|p| p.statement) {
            Ok(crate::ast::Statement::Select(q)) => q,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn only_plain_selects_are_stateless() {
        assert!(stateless(&query(
            "SELECT * FROM S WHERE V > 1 EMIT CHANGES;"
        )));
        for q in [
            "SELECT K, COUNT(*) FROM S GROUP BY K EMIT CHANGES;",
            "SELECT * FROM S JOIN T ON S.K = T.K EMIT CHANGES;",
            "SELECT * FROM S PARTITION BY V EMIT CHANGES;",
            "SELECT K, COUNT(*) FROM S WINDOW TUMBLING (SIZE 1 SECOND) GROUP BY K EMIT CHANGES;",
        ] {
            assert!(!stateless(&query(q)), "{q}");
        }
    }

    #[test]
    fn aggregates_are_found_inside_expressions() {
        let f = FunctionRegistry::builtin();
        let items = |text: &str| -> Vec<bool> {
            query(text)
                .select
                .iter()
                .map(|i| matches!(i, SelectItem::Expr { expr, .. } if has_agg(&f, expr)))
                .collect()
        };
        assert_eq!(
            items("SELECT V, COUNT(*), 1 + SUM(V), UCASE(K) FROM S EMIT CHANGES;"),
            vec![false, true, true, false]
        );
    }
}
