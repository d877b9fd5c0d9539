//! The planner: a bound query turned into a runnel-streams topology built
//! with the same DSL a Rust application uses.
//!
//! Rows flow as `KStream<Row, Row>` / `KTable<Row, Row>`: the key is the
//! row of key columns, the value a *full row* — every column of the
//! relation in scope order: key columns, value columns, then the pseudo
//! columns `ROWTIME`, `ROWPARTITION`, `ROWOFFSET`. Joins concatenate full
//! rows, so expressions bind once against the joined scope. Aggregations
//! keep one accumulator per aggregate call in a row (`InternalSerde`), and
//! project after the state store, so pull queries read the same store and
//! apply the same projection.
//!
//! One module per part of planning: `sources` (topics into full rows),
//! `joins`, `aggregate` (GROUP BY, windows, HAVING), `project` (select
//! list, filters' projections, table functions, PARTITION BY), `prune`
//! (what a query does not read is not built) and `sink` (writing the
//! result). This module holds the relation being planned and
//! [`Planner::plan`], which puts the parts together.

mod aggregate;
mod joins;
mod project;
mod prune;
pub(crate) mod sink;
mod sources;

pub use sources::WindowedRowSerde;

use joins::concat_rows;
use project::{eval_all, OwnedProjection};
use prune::{col_refs_of, reads_of, ColRef};
use sources::event_time;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use runnel_streams::serdes::{OptionSerde, Serde, SerdeError, Serialized, WindowedSerde};
use runnel_streams::{
    JoinWindows, KStream, KTable, SessionWindows, StreamsBuilder, TimeWindows, Window, Windowed,
};

use crate::ast::{
    Emit, Expr, ExprKind, Ident, JoinKind, Pos, Query, SelectItem, SourceKind, WindowKind,
    WindowSpec,
};
use crate::catalog::{Catalog, SourceInfo};
use crate::error::SqlError;
use crate::expr::{Binder, Compiled, Scope, ScopeColumn};
use crate::format::{CodecSpec, Format, InternalKeySerde, InternalSerde, Row, RowSerde};
use crate::functions::{Aggregator, FunctionRegistry, FunctionSettings, TimestampParser};
use crate::schema::{Column, Schema, WindowType, ROWOFFSET, ROWPARTITION, ROWTIME};
use crate::types::{SqlType, Value};
use runnel_format::protobuf::NullableRepresentation;

/// ksqlDB's rule for a TIMESTAMP column: BIGINT or TIMESTAMP, or a STRING
/// read with a TIMESTAMP_FORMAT.
pub(crate) fn check_timestamp_column(
    name: &str,
    ty: &SqlType,
    has_format: bool,
) -> Result<(), SqlError> {
    match ty {
        SqlType::BigInt | SqlType::Timestamp => Ok(()),
        SqlType::String if has_format => Ok(()),
        _ => Err(SqlError::new(format!(
            "Timestamp column, `{name}`, should be LONG(INT64), TIMESTAMP, or a String with a timestamp_format specified."
        ))),
    }
}

/// Grace period when a window names none (ksqlDB's default: 24 hours).
pub const DEFAULT_GRACE_MS: i64 = 86_400_000;

/// Where a query's results go.
#[derive(Clone)]
pub enum Sink {
    /// A topic, written in these formats.
    Topic {
        topic: String,
        key_format: Format,
        value_format: Format,
        wrap_single_value: bool,
        /// The registry schemas to write with (else the subjects' latest).
        key_schema_id: Option<i32>,
        value_schema_id: Option<i32>,
        /// How derived Protobuf schemas make scalars nullable.
        key_protobuf_nullable: Option<NullableRepresentation>,
        value_protobuf_nullable: Option<NullableRepresentation>,
        /// DELIMITED's field delimiters.
        key_delimiter: char,
        value_delimiter: char,
    },
    /// A callback (transient push queries).
    Callback(Arc<dyn Fn(SinkRow) + Send + Sync>),
}

/// A result row handed to a [`Sink::Callback`].
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRow {
    pub key: Row,
    pub window: Option<Window>,
    /// `None`: the row was deleted (a table tombstone).
    pub value: Option<Row>,
}

/// How a pull query reads a materialized table.
#[derive(Clone)]
pub struct Materialization {
    pub store: String,
    pub window: Option<WindowType>,
    pub key_serde: Arc<dyn Serde<Row>>,
    pub value_serde: Arc<dyn Serde<Row>>,
    /// Turns a stored (key, window, value) into the table's row (key
    /// columns, window bounds, value columns), or `None` when the row is
    /// filtered out (HAVING, WHERE).
    pub post: PostFn,
}

/// See [`Materialization::post`].
pub type PostFn = Arc<dyn Fn(&Row, Option<Window>, &Row) -> Option<Row> + Send + Sync>;

/// What planning a query produced (the topology is in the builder).
pub struct Planned {
    pub kind: SourceKind,
    pub schema: Schema,
    pub window: Option<WindowType>,
    pub sources: Vec<String>,
    pub materialization: Option<Materialization>,
}

/// A topology key position: the texts and full-row slots equal to it.
#[derive(Debug, Clone, Default)]
struct KeyAlt {
    texts: Vec<String>,
    slots: Vec<usize>,
    /// Where the key came from and how ksqlDB names it when a persistent
    /// query's projection leaves it out.
    origin: KeyOrigin,
}

/// Where a key position came from (for "Key missing from projection").
#[derive(Debug, Clone, Default)]
enum KeyOrigin {
    /// A source's key column (or window bound).
    #[default]
    Source,
    /// A join's criteria: the expressions of either side that equal it
    /// (none: a synthetic key, ksqlDB's ROWKEY).
    Join(Vec<String>),
    /// A join's synthetic key column (ksqlDB's ROWKEY, or ROWKEY_n when a
    /// source has such a column) at this slot: only it can be the key.
    Synthetic { name: String, slot: usize },
    /// The left table's primary key column, kept by a foreign-key join
    /// (the table's name as ksqlDB names it in refusals).
    ForeignKey { table: String },
    /// A PARTITION BY expression as written, and the name `SELECT *` gives
    /// the key it makes.
    Partition { shown: String, name: String },
}

/// ksqlDB's refusal of a persistent query whose projection leaves out
/// key columns: `kind` "key column", "join expression"…; with
/// `require_all` every one of `keys` is needed, else any one of them.
fn keys_missing(
    sink: &str,
    kind: &str,
    keys: &[String],
    require_all: bool,
    synthetic: bool,
) -> String {
    fn joined(items: &[String], last: &str) -> String {
        match items {
            [] => String::new(),
            [one] => one.clone(),
            [init @ .., tail] => format!("{} {last} {tail}", init.join(", ")),
        }
    }
    let plural = if keys.len() == 1 { "" } else { "s" };
    let key_plural = if require_all && keys.len() > 1 {
        "s"
    } else {
        ""
    };
    let list = joined(keys, if require_all { "and" } else { "or" });
    let example = if require_all {
        keys.join(", ")
    } else {
        keys.first().cloned().unwrap_or_default()
    };
    let mut msg = format!("Key{key_plural} missing from projection (ie, SELECT). ");
    if synthetic {
        msg.push_str("See https://cnfl.io/2LV7ouS.");
    }
    msg.push_str(&format!(
        "\nThe query used to build `{sink}` must include the {kind}{plural} {list} in its projection (eg, SELECT {example}...)."
    ));
    if synthetic {
        msg.push_str(&format!(
            "\n{list} was added as a synthetic key column because the join criteria did not match any source column. This expression must be included in the projection and may be aliased. "
        ));
    }
    msg
}

enum Flow {
    Stream(KStream<Row, Row>),
    Table(KTable<Row, Row>),
}

/// A relation during planning.
struct Rel {
    flow: Flow,
    columns: Vec<ScopeColumn>,
    /// Slots of pseudo columns (not part of `*`).
    pseudo: HashSet<usize>,
    keys: Vec<KeyAlt>,
    key_types: Vec<SqlType>,
    /// How the flow's keys are serialized (for repartitioning so that a
    /// re-keyed stream lands in the partitions of a table of that key).
    key_serde: Arc<dyn Serde<Row>>,
    /// Sources joined so far (qualifier, width of its full row).
    parts: Vec<String>,
    /// Windowed sources: the last two key positions are the window.
    window: Option<WindowType>,
    /// A table source as stored (value columns only), for stream-table
    /// joins to read without building the table's full row per lookup.
    raw_table: Option<KTable<Row, Row>>,
    /// A stream source whose rows are not yet complete: while set, the
    /// flow carries rows as decoded (an empty row is a tombstone) and this
    /// fills in key and pseudo columns, dropping tombstones. The next step
    /// either runs it in the same node as its own work (the source's, or
    /// its own) or [`Rel::settle`]s.
    fill: Option<SourceFill>,
    /// Set when the node producing this stream can also run the next row
    /// step (a stream-table join): the query's WHERE and projection are
    /// put here instead of in a node of their own. Unset, rows pass as is.
    tail: Option<Tail>,
}

/// Completes a decoded stream row from its record (see [`Rel::fill`]).
type Fill = Arc<dyn Fn(&runnel_streams::RecordMeta, &Row, Row) -> Option<Row> + Send + Sync>;

/// A row step bound after the node that runs it was planned (see
/// [`Rel::tail`]); `None` drops the row.
type Tail = Arc<std::sync::OnceLock<Arc<dyn Fn(Row) -> Option<Row> + Send + Sync>>>;

/// The per-record step a stream source runs right after decoding (in
/// its own node); unset, rows pass as decoded.
type Head = Arc<std::sync::OnceLock<Fill>>;

/// A stream source's pending [`Fill`] and the slot in the source's node
/// that can run it (or any step starting with it).
struct SourceFill {
    fill: Fill,
    head: Head,
}

impl SourceFill {
    /// Runs `step` (which must start with the fill) in the source's node,
    /// `s` being the source's stream as planned: no node of its own.
    fn run(self, s: KStream<Row, Row>, step: Fill) -> KStream<Row, Row> {
        match self.head.set(step) {
            Ok(()) => s,
            // Never set twice (the fill is taken once); were it, the
            // step still runs, as a node.
            Err(step) => s.flat_map_values_with_meta(
                move |m: &runnel_streams::RecordMeta, k: &Row, v: Row| step(m, k, v),
            ),
        }
    }

    /// Runs the fill alone in the source's node.
    fn run_alone(self, s: KStream<Row, Row>) -> KStream<Row, Row> {
        let fill = self.fill.clone();
        self.run(s, fill)
    }
}

/// Runs a [`Tail`] if one was bound.
fn run_tail(tail: &Tail, row: Row) -> Option<Row> {
    match tail.get() {
        Some(f) => f(row),
        None => Some(row),
    }
}

impl Rel {
    /// Runs a pending [`Rel::fill`] on its own (in the source's node).
    fn settle(mut self) -> Rel {
        if let (Some(pending), Flow::Stream(s)) = (self.fill.take(), &self.flow) {
            let s = pending.run_alone(s.clone());
            self.flow = Flow::Stream(s.with_serdes(self.key_serde.clone(), InternalSerde));
        }
        self
    }
    /// As [`Rel::settle`], but a record with a null value passes as an
    /// empty row instead of being dropped.
    fn settle_keeping_nulls(mut self) -> Rel {
        if let (Some(pending), Flow::Stream(s)) = (self.fill.take(), &self.flow) {
            let fill = pending.fill.clone();
            let s = pending.run(
                s.clone(),
                Arc::new(
                    move |m: &runnel_streams::RecordMeta, k: &Row, v: Row| {
                        if v.is_empty() {
                            Some(v)
                        } else {
                            fill(m, k, v)
                        }
                    },
                ),
            );
            self.flow = Flow::Stream(s.with_serdes(self.key_serde.clone(), InternalSerde));
        }
        self
    }
    fn width(&self) -> usize {
        self.columns.len()
    }
    fn scope(&self) -> Scope {
        Scope::new(self.columns.clone())
    }
}

/// Plans queries against a catalog.
pub struct Planner<'a> {
    pub catalog: &'a Catalog,
    pub functions: &'a FunctionRegistry,
    pub builder: StreamsBuilder,
    /// Prefix of store names, unique per query.
    pub query_id: String,
    counter: usize,
    sources: Vec<String>,
    /// The sink's `TIMESTAMP` column: output records take their time from
    /// it.
    pub sink_timestamp: Option<String>,
    /// Its TIMESTAMP_FORMAT, for a STRING column.
    pub sink_timestamp_format: Option<String>,
    /// Whether table results get a store for pull queries (not for
    /// transient push queries).
    pub materialize: bool,
    /// The properties the query runs with (request and session): its
    /// functions' `ksql.functions.*` settings.
    pub settings: std::collections::BTreeMap<String, String>,
    /// Names the query reads from its source's full rows (`None`: all of
    /// them). Key columns nobody reads are left out of full rows: the
    /// record key carries them to the output anyway.
    reads: Option<HashSet<String>>,
    /// Whether the query names ROWTIME, ROWPARTITION, ROWOFFSET: stream
    /// rows only carry the ones it does (the others stay NULL).
    pseudo_reads: [bool; 3],
    /// Every column name the query names anywhere, under any qualifier
    /// (`None` with `*`): stream sources skip decoding STRING columns
    /// outside it and fill only the pseudo columns in it.
    names_read: Option<HashSet<String>>,
    /// Every column reference of the query with where it stands (`None`
    /// with `*`): joined rows carry only the columns these name.
    col_refs: Option<Vec<ColRef>>,
    /// Whether stream rows may end after their value columns (see `plan`):
    /// no pseudo-column slots behind them.
    short_rows: bool,
    /// The number of group columns in front of the aggregate row being
    /// finished (set by `aggregate` for `finish_agg`).
    post_groups: usize,
    /// How many columns the query's joins append to its FROM stream's
    /// rows: decoded with that much room, they do not grow (reallocate)
    /// when joined.
    join_spare: usize,
}

fn err(pos: Pos, msg: impl Into<String>) -> SqlError {
    SqlError::at(pos, msg)
}

/// The text of an expression with each column replaced by its slot, so
/// `a.x`, `x` and `A.X` compare equal when they are the same column.
fn canon(e: &Expr, scope: &Scope) -> String {
    let mut e = e.clone();
    canon_in(&mut e, scope);
    e.to_string()
}

/// `e` as ksqlDB shows it in some messages: every column qualified by
/// its source (`ABS(INPUT.ID)`).
fn qualified(e: &Expr, scope: &Scope) -> String {
    fn walk(e: &mut Expr, scope: &Scope) {
        if let ExprKind::Column { qualifier, name } = &mut e.kind {
            if let Ok(c) = scope.resolve(qualifier.as_ref(), name) {
                if let Some(q) = &c.qualifier {
                    *qualifier = Some(Ident {
                        name: q.clone(),
                        pos: Pos::default(),
                    });
                }
            }
            return;
        }
        for_each_child(e, &mut |c| walk(c, scope));
    }
    let mut e = e.clone();
    walk(&mut e, scope);
    e.to_string()
}

fn canon_in(e: &mut Expr, scope: &Scope) {
    if let ExprKind::Column { qualifier, name } = &e.kind {
        if let Ok(c) = scope.resolve(qualifier.as_ref(), name) {
            e.kind = ExprKind::Column {
                qualifier: None,
                name: Ident {
                    name: format!("#{}", c.index),
                    pos: Pos::default(),
                },
            };
        }
        return;
    }
    for_each_child(e, &mut |c| canon_in(c, scope));
}

/// Calls `f` on each direct sub-expression.
pub fn for_each_child(e: &mut Expr, f: &mut dyn FnMut(&mut Expr)) {
    match &mut e.kind {
        ExprKind::Literal(_) | ExprKind::Column { .. } => {}
        ExprKind::Deref { expr, .. } => f(expr),
        ExprKind::Subscript { expr, index } => {
            f(expr);
            f(index);
        }
        ExprKind::Unary { expr, .. } => f(expr),
        ExprKind::Binary { left, right, .. } => {
            f(left);
            f(right);
        }
        ExprKind::IsNull { expr, .. } => f(expr),
        ExprKind::IsDistinctFrom { left, right, .. } => {
            f(left);
            f(right);
        }
        ExprKind::Between {
            expr, low, high, ..
        } => {
            f(expr);
            f(low);
            f(high);
        }
        ExprKind::InList { expr, list, .. } => {
            f(expr);
            list.iter_mut().for_each(f);
        }
        ExprKind::Like { expr, pattern, .. } => {
            f(expr);
            f(pattern);
        }
        ExprKind::Case {
            operand,
            whens,
            else_,
        } => {
            if let Some(o) = operand {
                f(o);
            }
            for (w, t) in whens {
                f(w);
                f(t);
            }
            if let Some(e) = else_ {
                f(e);
            }
        }
        ExprKind::Cast { expr, .. } => f(expr),
        ExprKind::Function { args, .. } => args.iter_mut().for_each(f),
        ExprKind::Lambda { body, .. } => f(body),
        ExprKind::Array(items) => items.iter_mut().for_each(f),
        ExprKind::Map(entries) => {
            for (k, v) in entries {
                f(k);
                f(v);
            }
        }
        ExprKind::Struct(fields) => {
            for (_, v) in fields {
                f(v);
            }
        }
    }
}

fn column_ref(name: &str, pos: Pos) -> Expr {
    Expr {
        kind: ExprKind::Column {
            qualifier: None,
            name: Ident {
                name: name.to_string(),
                pos,
            },
        },
        pos,
    }
}

/// The columns an expression names (for "not part of GROUP BY").
fn columns_named(e: &Expr, out: &mut Vec<Ident>) {
    if let ExprKind::Column { name, .. } = &e.kind {
        out.push(name.clone());
        return;
    }
    let mut e = e.clone();
    for_each_child(&mut e, &mut |c| columns_named(c, out));
}

fn ms(d: i64) -> Duration {
    Duration::from_millis(u64::try_from(d).unwrap_or(0))
}

/// Something a table or stream can be keyed by: a row, or a row in a
/// window.
pub trait KeyRow: Clone + 'static {
    fn row(&self) -> &Row;
    fn window(&self) -> Option<Window>;
}

impl KeyRow for Row {
    fn row(&self) -> &Row {
        self
    }
    fn window(&self) -> Option<Window> {
        None
    }
}

impl KeyRow for Windowed<Row> {
    fn row(&self) -> &Row {
        &self.key
    }
    fn window(&self) -> Option<Window> {
        Some(self.window)
    }
}

impl<'a> Planner<'a> {
    pub fn new(catalog: &'a Catalog, functions: &'a FunctionRegistry, query_id: &str) -> Self {
        Planner {
            catalog,
            functions,
            builder: StreamsBuilder::new(),
            query_id: query_id.to_string(),
            counter: 0,
            sources: Vec::new(),
            sink_timestamp: None,
            sink_timestamp_format: None,
            materialize: true,
            settings: std::collections::BTreeMap::new(),
            reads: None,
            pseudo_reads: [true; 3],
            names_read: None,
            col_refs: None,
            short_rows: false,
            join_spare: 0,
            post_groups: 0,
        }
    }

    /// `q` with its unaliased select items named as ksqlDB names them:
    /// computed ones `KSQL_COL_<n>` (see [`generated_names`]), and in a
    /// join a qualified column whose name more than one source has
    /// `<qualifier>_<name>` (`L.V0` → `L_V0`); `None` when none needs a
    /// name.
    /// `q` with each `s->*` select item replaced by one item per field of
    /// the struct `s`, named as the field (`s->A AS A, s->B AS B`); `None`
    /// when it has none. The struct's type is read from the sources'
    /// schemas: `s` is a column, or a field of one.
    fn with_struct_fields(&self, q: &Query) -> Result<Option<Query>, SqlError> {
        let is_all = |item: &SelectItem| {
            matches!(item, SelectItem::Expr { expr: Expr { kind: ExprKind::Deref { field, .. }, .. }, .. }
                if field.name == crate::ast::STRUCT_ALL_FIELD)
        };
        if !q.select.iter().any(is_all) {
            return Ok(None);
        }
        let mut select = Vec::new();
        for item in &q.select {
            let SelectItem::Expr {
                expr:
                    Expr {
                        kind: ExprKind::Deref { expr: inner, field },
                        ..
                    },
                ..
            } = item
            else {
                select.push(item.clone());
                continue;
            };
            if field.name != crate::ast::STRUCT_ALL_FIELD {
                select.push(item.clone());
                continue;
            }
            let fields = match self.static_type(q, inner)? {
                SqlType::Struct(fields) => fields,
                other => {
                    return Err(err(
                        inner.pos,
                        format!("Expected STRUCT type for {inner}->*, got {other}"),
                    ))
                }
            };
            for (name, _) in fields {
                let ident = Ident {
                    name,
                    pos: field.pos,
                };
                select.push(SelectItem::Expr {
                    expr: Expr {
                        kind: ExprKind::Deref {
                            expr: inner.clone(),
                            field: ident.clone(),
                        },
                        pos: inner.pos,
                    },
                    alias: Some(ident),
                });
            }
        }
        Ok(Some(Query {
            select,
            ..q.clone()
        }))
    }

    /// The type of a column of `q`'s sources, or of a field of one.
    fn static_type(&self, q: &Query, e: &Expr) -> Result<SqlType, SqlError> {
        match &e.kind {
            ExprKind::Column { qualifier, name } => {
                let rels = std::iter::once(&q.from).chain(q.joins.iter().map(|j| &j.right));
                let mut found = Vec::new();
                for r in rels {
                    if qualifier
                        .as_ref()
                        .is_some_and(|qn| qn.name != r.qualifier().name)
                    {
                        continue;
                    }
                    let Some(info) = self.catalog.source(&r.name.name) else {
                        continue;
                    };
                    if let Some(c) = info
                        .schema
                        .columns()
                        .chain(info.headers.iter().map(|h| &h.column))
                        .find(|c| c.name == name.name)
                    {
                        found.push(c.ty.clone());
                    }
                }
                match found.len() {
                    1 => Ok(found.remove(0)),
                    0 => Err(err(
                        name.pos,
                        format!("Column '{}' cannot be resolved.", name.name),
                    )),
                    _ => Err(err(
                        name.pos,
                        format!("Column '{}' is ambiguous.", name.name),
                    )),
                }
            }
            ExprKind::Deref { expr, field } => match self.static_type(q, expr)? {
                SqlType::Struct(fields) => fields
                    .into_iter()
                    .find(|(n, _)| *n == field.name)
                    .map(|(_, t)| t)
                    .ok_or_else(|| {
                        err(
                            field.pos,
                            format!("Could not find field '{}' in '{expr}'.", field.name),
                        )
                    }),
                other => Err(err(
                    field.pos,
                    format!(
                        "Expected STRUCT type for {expr}->{}, got {other}",
                        field.name
                    ),
                )),
            },
            _ => Err(err(
                e.pos,
                format!("{e}->* needs a STRUCT column or a STRUCT field of one"),
            )),
        }
    }

    fn with_generated_names(&self, q: &Query) -> Option<Query> {
        let mut taken: HashSet<String> = HashSet::new();
        // How many of the query's sources have a column of each name.
        let mut owners: std::collections::HashMap<String, usize> = Default::default();
        let sources =
            std::iter::once(&q.from.name.name).chain(q.joins.iter().map(|j| &j.right.name.name));
        for s in sources.filter_map(|n| self.catalog.source(n)) {
            let own: HashSet<&String> = s.schema.columns().map(|c| &c.name).collect();
            for n in own {
                taken.insert(n.clone());
                *owners.entry(n.clone()).or_default() += 1;
            }
        }
        let mut names = generated_names(&q.select, |n| taken.contains(n));
        if !q.joins.is_empty() {
            for (item, name) in q.select.iter().zip(names.iter_mut()) {
                let SelectItem::Expr { expr, alias: None } = item else {
                    continue;
                };
                if let ExprKind::Column {
                    qualifier: Some(qualifier),
                    name: column,
                } = &expr.kind
                {
                    if owners.get(&column.name).is_some_and(|n| *n > 1) {
                        *name = Some(format!("{}_{}", qualifier.name, column.name));
                    }
                }
            }
        }
        // A struct field is named after the field, numbered (`B_1`, `B_2`)
        // when a source column or another select item has that name.
        let mut used: HashSet<String> = taken.clone();
        for (item, name) in q.select.iter().zip(&names) {
            match (item, name) {
                (_, Some(n)) => {
                    used.insert(n.clone());
                }
                (SelectItem::Expr { alias: Some(a), .. }, _) => {
                    used.insert(a.name.clone());
                }
                _ => {}
            }
        }
        for (item, name) in q.select.iter().zip(names.iter_mut()) {
            let SelectItem::Expr { expr, alias: None } = item else {
                continue;
            };
            match &expr.kind {
                ExprKind::Column { name: column, .. } if name.is_none() => {
                    used.insert(column.name.clone());
                }
                ExprKind::Deref { field, .. } if used.contains(&field.name) => {
                    let unique = (1..)
                        .map(|i| format!("{}_{i}", field.name))
                        .find(|n| !used.contains(n))
                        .unwrap_or_default();
                    used.insert(unique.clone());
                    *name = Some(unique);
                }
                ExprKind::Deref { field, .. } => {
                    used.insert(field.name.clone());
                }
                _ => {}
            }
        }
        if names.iter().all(Option::is_none) {
            return None;
        }
        let mut q = q.clone();
        for (item, name) in q.select.iter_mut().zip(names) {
            if let (SelectItem::Expr { expr, alias }, Some(name)) = (item, name) {
                *alias = Some(Ident {
                    name,
                    pos: expr.pos,
                });
            }
        }
        Some(q)
    }

    fn name(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("{}-{what}-{}", self.query_id, self.counter)
    }

    fn binder(&self, scope: Scope) -> Binder<'a> {
        Binder {
            scope,
            functions: self.functions,
        }
    }

    /// ksqlDB's refusal of joins and aggregations over sources whose
    /// values are in the KAFKA format.
    fn check_kafka_values(&self, q: &Query, has_agg: bool) -> Result<(), SqlError> {
        let kafka: Vec<String> = std::iter::once(&q.from)
            .chain(q.joins.iter().map(|j| &j.right))
            .filter(|s| {
                self.catalog
                    .source(&s.name.name)
                    .is_some_and(|i| i.value_format == Format::KAFKA)
            })
            .map(|s| s.qualifier().name.clone())
            .collect();
        if kafka.is_empty() {
            return Ok(());
        }
        let what = if q.joins.is_empty() && has_agg {
            "GROUP BY"
        } else {
            "JOIN"
        };
        Err(err(
            q.from.name.pos,
            format!(
                "Source(s) {} are using the 'KAFKA' value format. This format does not yet support {what}.",
                kafka.join(", ")
            ),
        ))
    }

    /// Plans `q` writing to `sink`; `sink_name` names it in errors.
    pub fn plan(&mut self, q: &Query, sink_name: &str, sink: Sink) -> Result<Planned, SqlError> {
        let expanded;
        let q = match self.with_struct_fields(q)? {
            Some(e) => {
                expanded = e;
                &expanded
            }
            None => q,
        };
        let named;
        let q = match self.with_generated_names(q) {
            Some(n) => {
                named = n;
                &named
            }
            None => q,
        };
        if q.limit.is_some() {
            if let Sink::Topic { .. } = sink {
                return Err(err(q.pos, "LIMIT is not supported in persistent queries"));
            }
        }
        let key_names: Vec<String> = self
            .catalog
            .source(&q.from.name.name)
            .map(|i| i.schema.key.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        self.reads = reads_of(q, &key_names);
        // Each joined source adds at most its key, values, window bounds
        // and pseudo columns.
        self.join_spare = q
            .joins
            .iter()
            .filter_map(|j| self.catalog.source(&j.right.name.name))
            .map(|i| i.schema.key.len() + i.schema.value.len() + i.headers.len() + 5)
            .sum();
        self.col_refs = col_refs_of(q);
        self.names_read = self
            .col_refs
            .as_ref()
            .map(|refs| refs.iter().map(|r| r.name.clone()).collect());
        self.pseudo_reads = match &self.names_read {
            None => [true; 3],
            Some(n) => [ROWTIME, ROWPARTITION, ROWOFFSET].map(|p| n.contains(p)),
        };
        let has_agg = !q.group_by.is_empty() || self.select_has_aggregate(&q.select);
        if !q.joins.is_empty() || has_agg {
            self.check_kafka_values(q, has_agg)?;
        }
        let has_table_fn = q.select.iter().any(|item| {
            matches!(item, SelectItem::Expr { expr, .. }
                if matches!(&expr.kind, ExprKind::Function { name, .. }
                    if self.functions.table_arc(&name.name).is_some()))
        });
        // A stream's WHERE right before its projection is one step with it.
        let fuse = q.partition_by.is_empty() && !has_agg && !has_table_fn;
        // Rows that only WHERE, the projection or an aggregation's group
        // and argument expressions see (no join, PARTITION BY or table
        // function appends after them or re-keys them) need no
        // pseudo-column slots nobody reads.
        self.short_rows = q.partition_by.is_empty()
            && !has_table_fn
            && q.joins.is_empty()
            && self.pseudo_reads == [false; 3];
        let mut rel = self.relation(q)?;
        // A record with a null value keeps going through PARTITION BY to a
        // sink (keyed by the expressions over its key columns), as in
        // ksqlDB; nothing else in the query may need its value.
        let nulls_through = !q.partition_by.is_empty()
            && q.where_.is_none()
            && q.joins.is_empty()
            && !has_agg
            && !has_table_fn
            && matches!(sink, Sink::Topic { .. });
        if nulls_through {
            rel = rel.settle_keeping_nulls();
        } else if !fuse {
            rel = rel.settle();
        }
        let mut fused_where = None;
        if let Some(w) = &q.where_ {
            let pred = Arc::new(
                self.binder(rel.scope().in_clause("WHERE"))
                    .bind_condition(w, "WHERE")?,
            );
            rel.flow = match rel.flow {
                Flow::Stream(s) if fuse => {
                    fused_where = Some(pred);
                    Flow::Stream(s)
                }
                Flow::Stream(s) => Flow::Stream(s.filter(move |_, v: &Row| pred.test(v))),
                Flow::Table(t) => Flow::Table(t.filter(move |_, v: &Row| pred.test(v))),
            };
        }
        if !q.partition_by.is_empty() {
            if !q.group_by.is_empty() {
                return Err(err(
                    q.partition_by[0].pos,
                    "PARTITION BY and GROUP BY cannot be used together",
                ));
            }
            rel = self.partition_by(rel, &q.partition_by)?;
        }
        if has_agg {
            if let Some(pos) = q.select.iter().find_map(|item| match item {
                SelectItem::Expr { expr, .. } => self.table_function_in(expr),
                SelectItem::Star { .. } => None,
            }) {
                return Err(err(
                    pos,
                    "Table functions cannot be used with aggregations.",
                ));
            }
            return self.aggregate(q, rel, sink_name, sink);
        }
        if q.window.is_some() {
            return Err(err(
                q.window.as_ref().map_or(q.pos, |w| w.pos),
                "WINDOW clause requires a GROUP BY clause.",
            ));
        }
        if let Some(h) = &q.having {
            return Err(err(h.pos, "HAVING needs an aggregation (GROUP BY)"));
        }
        let (mut rel, select) = self.table_functions(rel, &q.select)?;
        let proj = self.projection(&select, &rel, sink_name, matches!(sink, Sink::Topic { .. }))?;
        let schema = proj.schema();
        let exprs = proj.compiled();
        let sources = self.sources.clone();
        match rel.flow {
            Flow::Stream(s) => {
                let owned = OwnedProjection::new(&exprs);
                let mut out = match (rel.fill.take(), fused_where, rel.tail.take()) {
                    // The node producing the rows runs WHERE and projection.
                    (None, pred, Some(tail)) => {
                        let _ = tail.set(Arc::new(move |v: Row| match &pred {
                            Some(p) if !p.test(&v) => None,
                            _ => Some(owned.apply(v)),
                        }));
                        s
                    }
                    (Some(pending), pred, _) => {
                        let fill = pending.fill.clone();
                        // A record with a null value passes a projection
                        // as a null value (written as a tombstone), as in
                        // ksqlDB; WHERE drops it.
                        let pass_nulls = pred.is_none() && matches!(sink, Sink::Topic { .. });
                        pending.run(
                            s,
                            Arc::new(move |m: &runnel_streams::RecordMeta, k: &Row, v: Row| {
                                if v.is_empty() && pass_nulls {
                                    return Some(Vec::new());
                                }
                                let full = fill(m, k, v)?;
                                match &pred {
                                    Some(p) if !p.test(&full) => {
                                        crate::types::discard_row(full);
                                        None
                                    }
                                    _ => Some(owned.apply(full)),
                                }
                            }),
                        )
                    }
                    (None, Some(pred), None) => {
                        s.flat_map_values(move |_, v: Row| pred.test(&v).then(|| owned.apply(v)))
                    }
                    // (An empty row is a null value PARTITION BY let through.)
                    (None, None, None) => {
                        s.map_values(
                            move |_, v: Row| {
                                if v.is_empty() {
                                    v
                                } else {
                                    owned.apply(v)
                                }
                            },
                        )
                    }
                };
                if let Some((i, parser)) = self.sink_time(&schema)? {
                    // As ksqlDB's sink: a row whose time cannot be read or
                    // is negative is not written.
                    let p2 = parser.clone();
                    out = out
                        .flat_map_values(move |_, v: Row| {
                            event_time(v.get(i), parser.as_deref()).map(|_| v)
                        })
                        .with_timestamps(move |_, v: &Row, ts| {
                            event_time(v.get(i), p2.as_deref()).unwrap_or(ts)
                        });
                }
                self.write_stream(out, &schema, rel.window, sink)?;
                Ok(Planned {
                    kind: SourceKind::Stream,
                    schema,
                    window: rel.window,
                    sources,
                    materialization: None,
                })
            }
            Flow::Table(t) => {
                let e2 = exprs.clone();
                let out = t.map_values(move |_, v: &Row| eval_all(&e2, v));
                let out = out.with_serdes(rel.key_serde.clone(), InternalSerde);
                // Pull queries read the result rows from a store of their
                // own (the key row already ends with any window bounds).
                let materialization = if self.materialize {
                    let store = self.name("Materialize");
                    out.to_stream().to_table_nullable(&store, InternalSerde);
                    let post: PostFn = Arc::new(|k: &Row, _, v: &Row| Some(concat_rows(k, v)));
                    Some(Materialization {
                        store,
                        window: None,
                        key_serde: rel.key_serde.clone(),
                        value_serde: Arc::new(InternalSerde),
                        post,
                    })
                } else {
                    None
                };
                let times = self.sink_time(&schema)?;
                self.write_table(out, &schema, rel.window, sink, times)?;
                Ok(Planned {
                    kind: SourceKind::Table,
                    schema,
                    window: rel.window,
                    sources,
                    materialization,
                })
            }
        }
    }
}

impl Planner<'_> {
    /// The value column (and its TIMESTAMP_FORMAT) that gives a sink's
    /// records their time, when the sink names one.
    pub(super) fn sink_time(&self, schema: &Schema) -> Result<Option<SinkTime>, SqlError> {
        let Some(col) = &self.sink_timestamp else {
            return Ok(None);
        };
        let Some(i) = schema.value.iter().position(|c| c.name == *col) else {
            return Err(SqlError::new(format!(
                "The TIMESTAMP column set in the WITH clause does not exist in the schema: '{col}'"
            )));
        };
        let format = self.sink_timestamp_format.as_deref();
        check_timestamp_column(col, &schema.value[i].ty, format.is_some())?;
        let parser = format
            .map(|f| TimestampParser::new(f).map(Arc::new))
            .transpose()
            .map_err(|e| SqlError::new(e.to_string()))?;
        Ok(Some((i, parser)))
    }
}

/// A sink's time column: its place in the value row and its format.
pub(super) type SinkTime = (usize, Option<Arc<TimestampParser>>);

impl Planner<'_> {
    /// Where a table function (EXPLODE…) is called in an expression.
    fn table_function_in(&self, e: &Expr) -> Option<Pos> {
        if let ExprKind::Function { name, .. } = &e.kind {
            if self.functions.table_arc(&name.name).is_some() {
                return Some(e.pos);
            }
        }
        let mut found = None;
        let mut e = e.clone();
        for_each_child(&mut e, &mut |c| {
            if found.is_none() {
                found = self.table_function_in(c);
            }
        });
        found
    }
}

/// ksqlDB's names for select items that are computed and unaliased (not a
/// column, not a struct field): `KSQL_COL_<n>`, numbered over those items
/// only, in order, skipping names `taken` says the sources' columns have.
/// `None` for items that need no generated name.
pub(crate) fn generated_names(
    items: &[SelectItem],
    taken: impl Fn(&str) -> bool,
) -> Vec<Option<String>> {
    let mut n = 0;
    items
        .iter()
        .map(|item| match item {
            SelectItem::Expr { expr, alias: None }
                if !matches!(expr.kind, ExprKind::Column { .. } | ExprKind::Deref { .. }) =>
            {
                loop {
                    let name = format!("KSQL_COL_{n}");
                    n += 1;
                    if !taken(&name) {
                        break Some(name);
                    }
                }
            }
            _ => None,
        })
        .collect()
}
