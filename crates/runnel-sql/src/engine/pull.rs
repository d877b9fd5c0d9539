//! Pull queries: a table's rows read from the stores of the query
//! serving it, from the partitions hosted here and, through the pull
//! forwarder, from other engines running the same query.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use runnel_streams::{Queries, QueryError, Window};

use std::collections::BTreeMap;

use runnel_streams::backend::{Guarantee, TopicPartition};

use super::props::prop_flag;
use super::push::decode_record;
use super::{backend_err, lock, Engine, QueryEvent, QueryStream, QUERY_COMPLETED};
use crate::ast::{ExprKind, Query, SelectItem, SourceKind};
use crate::catalog::SourceInfo;
use crate::error::SqlError;
use crate::expr::{Binder, Compiled, Scope, ScopeColumn};
use crate::format::Row;
use crate::schema::ROWTIME;
use crate::schema::{Column, WindowType};
use crate::types::{SqlType, Value};

/// Whether a table pull query may scan the whole table (ksqlDB's setting,
/// on by default).
pub const TABLE_SCAN_ENABLED: &str = "ksql.query.pull.table.scan.enabled";
/// Whether pull queries on streams run (ksqlDB's setting, on by default).
pub const STREAM_PULL_ENABLED: &str = "ksql.query.pull.stream.enabled";

/// Output columns (name, type) and their expressions.
pub(super) type SelectList = (Vec<(String, SqlType)>, Vec<Compiled>);

impl Engine {
    /// A pull query: rows from the partitions of the table hosted here
    /// and, unless `local_only`, from the other engines running the
    /// table's query when some keys (or a scan) need their partitions.
    pub(super) fn pull(
        &self,
        q: &Query,
        text: &str,
        local_only: bool,
        props: &BTreeMap<String, String>,
    ) -> Result<QueryStream, SqlError> {
        if !super::push::stateless(q) {
            return Err(SqlError::at(q.pos, "Pull queries don't support JOIN, GROUP BY, WINDOW, PARTITION BY or HAVING clauses; add EMIT CHANGES for a push query"));
        }
        let st = lock(&self.inner.state);
        let Some(info) = st.catalog.source(&q.from.name.name).cloned() else {
            return Err(self.not_found(&st, &q.from.name));
        };
        if info.kind == SourceKind::Stream {
            drop(st);
            let enabled = prop_flag(&lock(&self.inner.state).props, props, STREAM_PULL_ENABLED);
            if !enabled.unwrap_or(true) {
                return Err(SqlError::at(q.pos, format!("Pull queries on streams are disabled. To create a push query on the stream, add EMIT CHANGES to the end. To enable pull queries on streams, set the {STREAM_PULL_ENABLED} config to 'true'.")));
            }
            return self.pull_stream(q, &info);
        }
        let table_scans = prop_flag(&st.props, props, TABLE_SCAN_ENABLED).unwrap_or(true);
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
        // The table's columns, as pull queries see them, and ROWTIME (the
        // timestamp of the record that last wrote the row).
        let mut cols = info.table_columns();
        let nvisible = cols.len();
        cols.push(Column::new(ROWTIME, SqlType::BigInt));
        let scope = columns_scope(&cols, &q.from.qualifier().name);
        let mut binder = Binder {
            scope: scope.clone(),
            functions: &self.inner.functions,
        };
        let filter = match &q.where_ {
            Some(w) => Some(binder.bind_condition(w, "WHERE")?),
            None => None,
        };
        let (columns, exprs) = self.select_list(&q.select, &scope, &cols[..nvisible])?;
        // Key lookups when WHERE pins the (single) key column.
        let nkeys = info.schema.key.len();
        let keys = q
            .where_
            .as_ref()
            .and_then(|w| key_lookup(w, &info.schema.key));
        if keys.is_none() && !table_scans {
            return Err(SqlError::at(q.pos, format!("Query requires table scan to be enabled. Table scans can be enabled by setting {TABLE_SCAN_ENABLED}=true")));
        }
        let mut rows: Vec<(Row, Option<Window>, Row, i64)> = Vec::new();
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
                        Ok(kv
                            .get_with_timestamp(k)?
                            .map(|(v, ts)| (None, v, ts))
                            .into_iter()
                            .collect())
                    })?,
                    None => {
                        missing = Some(None);
                        rows.extend(
                            kv.all_with_timestamps()
                                .map_err(qerr)?
                                .into_iter()
                                .map(|(k, v, ts)| (k, None, v, ts)),
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
                            .fetch_with_timestamps(k, i64::MIN, i64::MAX)?
                            .into_iter()
                            .map(|(w, v, ts)| (Some(w), v, ts))
                            .collect())
                    })?,
                    None => {
                        missing = Some(None);
                        rows.extend(
                            ws.all_with_timestamps()
                                .map_err(qerr)?
                                .into_iter()
                                .map(|(k, v, ts)| (k.key, Some(k.window), v, ts)),
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
                    ss.all_with_timestamps()
                        .map_err(qerr)?
                        .into_iter()
                        .map(|(k, v, ts)| (k.key, Some(k.window), v, ts)),
                );
            }
        }
        let limit = q.limit.and_then(|l| usize::try_from(l).ok());
        let mut out: Vec<Row> = Vec::new();
        for (k, w, v, ts) in rows {
            let Some(mut row) = (mat.post)(&k, w, &v) else {
                continue;
            };
            if row.len() < nkeys {
                continue;
            }
            // ROWTIME sits after the table's columns.
            row.resize(nvisible, Value::Null);
            row.push(Value::BigInt(ts));
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
            key_flags: key_flags(&exprs, &info),
            columns,
            is_pull: true,
            rows: rx,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A pull query on a stream (ksqlDB's stream scan): the rows of its
    /// topic from the beginning up to the end offsets the query started
    /// at, filtered and projected like a push query's, then "Query
    /// Completed".
    fn pull_stream(&self, q: &Query, info: &SourceInfo) -> Result<QueryStream, SqlError> {
        let (filter, (columns, exprs)) = self.bind_record_query(q, info)?;
        let id = self.inner.transient.fetch_add(1, Ordering::Relaxed);
        let mut backend = self
            .inner
            .cluster
            .backend(
                &format!("{}scan_{}_{id}", self.inner.config.service_id, info.name),
                Guarantee::AtLeastOnce,
            )
            .map_err(backend_err)?;
        let tps: Vec<TopicPartition> = (0..info.partitions.max(1))
            .map(|p| TopicPartition::new(&info.topic, p))
            .collect();
        // Where the scan ends is fixed now: rows written later are not read.
        let ends = backend.end_offsets(&tps).map_err(backend_err)?;
        let (tx, rx) = mpsc::sync_channel(4096);
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, info2, limit) = (stop.clone(), info.clone(), q.limit);
        std::thread::Builder::new()
            .name(format!("scan-{}", info.name))
            .spawn(move || {
                let (ks, vs) = (info2.key_serde(), info2.value_serde());
                let mut sent = 0u64;
                for (tp, end) in tps.iter().zip(ends) {
                    let mut pos = 0;
                    while pos < end {
                        if s2.load(Ordering::SeqCst) {
                            return;
                        }
                        let mut rows = Vec::new();
                        match backend.read_partition(tp, pos, &mut |r| {
                            if r.offset < end {
                                rows.extend(decode_record(&info2, &ks, &vs, &r));
                            }
                        }) {
                            // Nothing more to read below `end` (compacted
                            // or aborted records at the tail): done.
                            Ok(reached) if reached <= pos => break,
                            Ok(reached) => pos = reached,
                            Err(e) => {
                                let _ = tx.send(QueryEvent::Error(e.to_string()));
                                return;
                            }
                        }
                        for (row, tombstone) in rows {
                            if tombstone || filter.as_ref().is_some_and(|f| !f.test(&row)) {
                                continue;
                            }
                            let out: Row = exprs.iter().map(|e| e.eval(&row)).collect();
                            if tx.send(QueryEvent::Row(out)).is_err() {
                                return;
                            }
                            sent += 1;
                            if limit.is_some_and(|l| sent >= l) {
                                let _ = tx.send(QueryEvent::Final(QUERY_COMPLETED.into()));
                                return;
                            }
                        }
                    }
                }
                let _ = tx.send(QueryEvent::Final(QUERY_COMPLETED.into()));
            })
            .map_err(|e| SqlError::server(e.to_string()))?;
        Ok(QueryStream {
            id: format!("transient_{}_{id}", info.name),
            key_flags: vec![false; columns.len()],
            columns,
            is_pull: true,
            rows: rx,
            stop,
        })
    }

    /// Adds the rows other engines running the same query host (asked
    /// through the pull forwarder, to answer locally only). `not_here` is
    /// the error to report when some partition is not hosted here and no
    /// other engine is known.
    pub(super) fn pull_elsewhere(
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
    pub(super) fn select_list(
        &self,
        items: &[SelectItem],
        scope: &Scope,
        cols: &[Column],
    ) -> Result<SelectList, SqlError> {
        let mut columns = Vec::new();
        let mut exprs = Vec::new();
        let generated = crate::plan::generated_names(items, |n| cols.iter().any(|c| c.name == n));
        for (i, item) in items.iter().enumerate() {
            match item {
                SelectItem::Star { .. } => {
                    for (j, c) in cols.iter().enumerate() {
                        columns.push((c.name.clone(), c.ty.clone()));
                        exprs.push(Compiled::Column(j));
                    }
                }
                SelectItem::Expr {
                    expr:
                        crate::ast::Expr {
                            kind: ExprKind::Deref { expr: inner, field },
                            ..
                        },
                    ..
                } if field.name == crate::ast::STRUCT_ALL_FIELD => {
                    // `s->*`: a column per field of the struct.
                    let mut binder = Binder {
                        scope: scope.clone(),
                        functions: &self.inner.functions,
                    };
                    let fields = match binder.bind(inner)?.1 {
                        Some(SqlType::Struct(fields)) => fields,
                        other => {
                            return Err(SqlError::at(
                                inner.pos,
                                format!(
                                    "Expected STRUCT type for {inner}->*, got {}",
                                    other.map_or_else(|| "NULL".to_string(), |t| t.to_string())
                                ),
                            ))
                        }
                    };
                    for (name, _) in fields {
                        let one = crate::ast::Expr {
                            kind: ExprKind::Deref {
                                expr: inner.clone(),
                                field: crate::ast::Ident {
                                    name: name.clone(),
                                    pos: field.pos,
                                },
                            },
                            pos: inner.pos,
                        };
                        let (c, t) = binder.bind(&one)?;
                        columns.push((name, t.unwrap_or(SqlType::String)));
                        exprs.push(c);
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
                        _ => generated[i]
                            .clone()
                            .unwrap_or_else(|| format!("KSQL_COL_{i}")),
                    };
                    columns.push((name, t.unwrap_or(SqlType::String)));
                    exprs.push(c);
                }
            }
        }
        Ok((columns, exprs))
    }
}

/// Which output columns ksqlDB's header marks `KEY`: those projecting a
/// key column of the table (or a window bound) as it is, aliased or not.
fn key_flags(exprs: &[Compiled], info: &crate::catalog::SourceInfo) -> Vec<bool> {
    let keys = info.schema.key.len() + if info.window.is_some() { 2 } else { 0 };
    exprs
        .iter()
        .map(|e| matches!(e, Compiled::Column(j) if *j < keys))
        .collect()
}

/// A pull query's rows of the given keys, read with `read` (a key's
/// windows and values). Keys found nowhere here, or whose partition is not
/// hosted here, set `missing` (with the error to report when no other
/// engine can be asked).
pub(super) fn lookup_keys(
    keys: Vec<Row>,
    rows: &mut Vec<(Row, Option<Window>, Row, i64)>,
    missing: &mut Option<Option<QueryError>>,
    read: impl Fn(&Row) -> Result<Vec<(Option<Window>, Row, i64)>, QueryError>,
) -> Result<(), SqlError> {
    for k in keys {
        match read(&k) {
            Ok(found) if found.is_empty() => {
                missing.get_or_insert(None);
            }
            Ok(found) => rows.extend(found.into_iter().map(|(w, v, ts)| (k.clone(), w, v, ts))),
            Err(e @ QueryError::NotLocal { .. }) => *missing = Some(Some(e)),
            Err(e) => return Err(SqlError::server(e.to_string())),
        }
    }
    Ok(())
}

/// Keys pinned by `key = literal` or `key IN (literals)` on a one-column
/// key.
pub(super) fn key_lookup(w: &crate::ast::Expr, key: &[Column]) -> Option<Vec<Row>> {
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

/// A scope over plain columns, all under one qualifier.
pub(super) fn columns_scope(cols: &[Column], qualifier: &str) -> Scope {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn where_of(text: &str) -> crate::ast::Expr {
        match crate::parser::parse_one(text).map(|p| p.statement) {
            Ok(crate::ast::Statement::Select(q)) => q.where_.expect("a WHERE clause"),
            other => panic!("{text}: {other:?}"),
        }
    }

    fn key(ty: SqlType) -> Vec<Column> {
        vec![Column::new("K", ty)]
    }

    #[test]
    fn equality_on_the_key_pins_one_key_either_way_round() {
        let k = key(SqlType::String);
        let want = Some(vec![vec![Value::String("a".into())]]);
        assert_eq!(
            key_lookup(&where_of("SELECT * FROM T WHERE K = 'a';"), &k),
            want
        );
        assert_eq!(
            key_lookup(&where_of("SELECT * FROM T WHERE 'a' = K;"), &k),
            want
        );
    }

    #[test]
    fn in_lists_pin_their_keys_cast_to_the_key_type() {
        let k = key(SqlType::BigInt);
        assert_eq!(
            key_lookup(&where_of("SELECT * FROM T WHERE K IN (1, 2);"), &k),
            Some(vec![vec![Value::BigInt(1)], vec![Value::BigInt(2)]])
        );
    }

    #[test]
    fn anything_else_scans() {
        let k = key(SqlType::String);
        for w in [
            "SELECT * FROM T WHERE V = 'a';",
            "SELECT * FROM T WHERE K > 'a';",
            "SELECT * FROM T WHERE K NOT IN ('a');",
            "SELECT * FROM T WHERE K = V;",
            "SELECT * FROM T WHERE K = 'a' AND V = 1;",
        ] {
            assert_eq!(key_lookup(&where_of(w), &k), None, "{w}");
        }
        let two = vec![
            Column::new("K", SqlType::String),
            Column::new("L", SqlType::String),
        ];
        assert_eq!(
            key_lookup(&where_of("SELECT * FROM T WHERE K = 'a';"), &two),
            None
        );
    }

    #[test]
    fn keys_found_nowhere_or_hosted_elsewhere_are_missing() {
        let mut rows = Vec::new();
        let mut missing = None;
        let keys = vec![vec![Value::Int(1)], vec![Value::Int(2)]];
        lookup_keys(keys, &mut rows, &mut missing, |k| {
            Ok(if k[0] == Value::Int(1) {
                vec![(None, vec![Value::Int(10)], 5)]
            } else {
                Vec::new()
            })
        })
        .expect("no failure");
        assert_eq!(
            rows,
            vec![(vec![Value::Int(1)], None, vec![Value::Int(10)], 5)]
        );
        assert!(matches!(missing, Some(None)));
    }

    #[test]
    fn the_scope_qualifies_every_column() {
        let cols = vec![
            Column::new("K", SqlType::String),
            Column::new("V", SqlType::Int),
        ];
        let scope = columns_scope(&cols, "T");
        let (c, t) = Binder {
            scope,
            functions: &crate::functions::FunctionRegistry::builtin(),
        }
        .bind(&where_of("SELECT * FROM T WHERE T.V;"))
        .expect("T.V resolves");
        assert_eq!(t, Some(SqlType::Int));
        assert!(matches!(c, Compiled::Column(1)));
    }
}
