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
use crate::format::{Format, InternalKeySerde, InternalSerde, Row, RowSerde};
use crate::functions::{Aggregator, FunctionRegistry};
use crate::schema::{Column, Schema, WindowType, ROWOFFSET, ROWPARTITION, ROWTIME};
use crate::types::{SqlType, Value};

/// Grace period when a window names none (ksqlDB's default: 24 hours).
pub const DEFAULT_GRACE_MS: i64 = 86_400_000;

/// Keys of a windowed source as one row: the key columns, then the
/// window's start and end (Kafka Streams' windowed key layout on the wire).
#[derive(Clone)]
pub struct WindowedRowSerde {
    pub inner: RowSerde,
    pub window: WindowType,
}

impl WindowedRowSerde {
    fn tail(&self) -> usize {
        match self.window {
            WindowType::Time { .. } => 8,
            WindowType::Session => 16,
        }
    }
}

impl Serde<Row> for WindowedRowSerde {
    fn partition_bytes<'a>(&self, serialized: &'a [u8]) -> &'a [u8] {
        &serialized[..serialized.len().saturating_sub(self.tail())]
    }
    fn serialize(&self, v: &Row) -> Serialized {
        let n = v.len().saturating_sub(2);
        let mut out = self.inner.serialize(&v[..n].to_vec())?.unwrap_or_default();
        let start = v.get(n).and_then(Value::as_i64).unwrap_or(0);
        let end = v.get(n + 1).and_then(Value::as_i64).unwrap_or(0);
        match self.window {
            WindowType::Time { .. } => out.extend_from_slice(&start.to_be_bytes()),
            WindowType::Session => {
                out.extend_from_slice(&end.to_be_bytes());
                out.extend_from_slice(&start.to_be_bytes());
            }
        }
        Ok(Some(out))
    }
    fn deserialize(&self, b: Option<&[u8]>) -> Result<Row, SerdeError> {
        let b = b.ok_or_else(|| SerdeError("a windowed key cannot be null".into()))?;
        if b.len() < self.tail() {
            return Err(SerdeError("windowed key too short".into()));
        }
        let (k, w) = b.split_at(b.len() - self.tail());
        let word = |x: &[u8]| -> i64 {
            let mut a = [0u8; 8];
            a.copy_from_slice(&x[..8]);
            i64::from_be_bytes(a)
        };
        let mut row = self.inner.deserialize(Some(k))?;
        match self.window {
            WindowType::Time { size_ms } => {
                let start = word(w);
                row.push(Value::BigInt(start));
                row.push(Value::BigInt(start.saturating_add(size_ms)));
            }
            WindowType::Session => {
                row.push(Value::BigInt(word(&w[8..])));
                row.push(Value::BigInt(word(w)));
            }
        }
        Ok(row)
    }
}

/// A source's value serde whose rows come with `prefix` NULL slots in
/// front (for the key columns) and `suffix` behind (the pseudo columns):
/// the planner's full row, decoded in one allocation. A null value is an
/// empty row (see `Rel::fill`).
struct PrefixedRowSerde {
    inner: RowSerde,
    prefix: usize,
    suffix: usize,
    /// Room left in each row for the columns a join appends.
    spare: usize,
    /// Per value column: whether no part of the query names it.
    unread: Arc<[bool]>,
}

impl Serde<Row> for PrefixedRowSerde {
    fn serialize(&self, v: &Row) -> Serialized {
        self.inner
            .serialize(&v.get(self.prefix..).unwrap_or(&[]).to_vec())
    }
    fn deserialize(&self, b: Option<&[u8]>) -> Result<Row, SerdeError> {
        match b {
            // A tombstone: dropped by the source's fill.
            None => Ok(Vec::new()),
            Some(b) => self
                .inner
                .decode_with_prefix(b, self.prefix, self.suffix, self.spare, &self.unread)
                .map_err(|e| SerdeError(e.to_string())),
        }
    }
}

/// A source table's stored rows: written in the internal encoding, read
/// back from it, or from the topic's format when a row is not a row of
/// this table's width in it (stores written by builds that kept the
/// topic's bytes, so an upgrade keeps the table's contents).
struct SourceTableSerde {
    width: usize,
    topic: RowSerde,
}

impl Serde<Row> for SourceTableSerde {
    fn serialize(&self, v: &Row) -> Serialized {
        InternalSerde.serialize(v)
    }
    fn deserialize(&self, b: Option<&[u8]>) -> Result<Row, SerdeError> {
        match InternalSerde.deserialize(b) {
            Ok(row) if row.len() == self.width => Ok(row),
            _ => self.topic.deserialize(b),
        }
    }
}

/// Where a query's results go.
#[derive(Clone)]
pub enum Sink {
    /// A topic, written in these formats.
    Topic {
        topic: String,
        key_format: Format,
        value_format: Format,
        wrap_single_value: bool,
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
    /// Whether table results get a store for pull queries (not for
    /// transient push queries).
    pub materialize: bool,
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

/// Which columns of a join's two sides the query names: the others are
/// NULL in joined rows instead of copies.
#[derive(Clone)]
struct Keep {
    left: Arc<[bool]>,
    right: Arc<[bool]>,
}

impl Keep {
    fn concat(&self, a: &Row, b: &Row) -> Row {
        let mut out = Vec::with_capacity(a.len() + b.len());
        extend_kept(&mut out, a, &self.left);
        extend_kept(&mut out, b, &self.right);
        out
    }
}

/// Appends `src`, with NULL for each value whose `keep` flag is false
/// (values past the end of `keep` are copied).
fn extend_kept(out: &mut Row, src: &[Value], keep: &[bool]) {
    out.extend(src.iter().enumerate().map(|(i, v)| {
        if keep.get(i).copied().unwrap_or(true) {
            v.clone()
        } else {
            Value::Null
        }
    }));
}

fn concat_rows(a: &Row, b: &Row) -> Row {
    let mut out = Vec::with_capacity(a.len() + b.len());
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out
}

/// A bound aggregate call: its aggregator and argument expressions.
struct AggCall {
    agg: Arc<dyn Aggregator>,
    args: Vec<Compiled>,
}

fn agg_init(calls: &Arc<Vec<AggCall>>) -> Row {
    calls.iter().map(|c| c.agg.initial()).collect()
}

/// Folds a row into the accumulators; the row is consumed (dropped
/// without the drop glue for values that own nothing).
fn agg_add(calls: &[AggCall], full: Row, mut acc: Row) -> Row {
    if acc.len() != calls.len() {
        acc = calls.iter().map(|c| c.agg.initial()).collect();
    }
    for (c, slot) in calls.iter().zip(acc.iter_mut()) {
        let args: Vec<Value> = c.args.iter().map(|a| a.eval(&full)).collect();
        let old = std::mem::take(slot);
        slot.set(c.agg.add(old, &args));
        crate::types::discard_row(args);
    }
    crate::types::discard_row(full);
    acc
}

/// Takes a row back out of the accumulators (table aggregations).
fn agg_undo(calls: &[AggCall], full: Row, mut acc: Row) -> Row {
    for (c, slot) in calls.iter().zip(acc.iter_mut()) {
        let args: Vec<Value> = c.args.iter().map(|a| a.eval(&full)).collect();
        let old = std::mem::take(slot);
        slot.set(c.agg.undo(old.clone(), &args).unwrap_or(old));
        crate::types::discard_row(args);
    }
    crate::types::discard_row(full);
    acc
}

fn agg_merge(calls: &[AggCall], a: Row, b: Row) -> Row {
    calls
        .iter()
        .zip(a.into_iter().zip(b))
        .map(|(c, (x, y))| {
            c.agg
                .merge(x.clone(), y.clone())
                .unwrap_or_else(|| if y.is_null() { x } else { y })
        })
        .collect()
}

/// Aggregates ksqlDB can undo, so they work on table sources.
const UNDOABLE: [&str; 7] = [
    "COUNT",
    "SUM",
    "AVG",
    "COLLECT_LIST",
    "HISTOGRAM",
    "STDDEV_SAMP",
    "CORRELATION",
];

/// One output column: its name, type and expression over the input scope.
struct OutCol {
    name: String,
    ty: SqlType,
    expr: Compiled,
}

/// The projection of a query: key columns (by key position) and value
/// columns.
struct Projection {
    keys: Vec<(String, SqlType)>,
    values: Vec<OutCol>,
}

impl Projection {
    fn schema(&self) -> Schema {
        Schema {
            key: self
                .keys
                .iter()
                .map(|(n, t)| Column::new(n, t.clone()))
                .collect(),
            value: self
                .values
                .iter()
                .map(|c| Column::new(&c.name, c.ty.clone()))
                .collect(),
        }
    }
    fn compiled(&self) -> Arc<Vec<Compiled>> {
        Arc::new(self.values.iter().map(|c| c.expr.clone()).collect())
    }
}

fn eval_all(exprs: &[Compiled], row: &Row) -> Row {
    exprs.iter().map(|e| e.eval(row)).collect()
}

/// A projection over rows it owns: computed columns are evaluated first,
/// then plain column references *move* their value out of the input row
/// (copying only a column projected twice).
struct OwnedProjection {
    exprs: Vec<Compiled>,
    /// Per output: `Some(slot)` when it is a column moved out.
    takes: Vec<Option<usize>>,
    /// Whether the output can be built inside the input row's buffer:
    /// every moved column comes from its output position or a later one,
    /// and at most one output is computed (held aside while columns move).
    in_place: bool,
    /// The input row length the in-place path needs.
    width: usize,
    /// For the in-place path: (output position, slot) of each moved
    /// column that changes place, in output order.
    moves: Vec<(usize, usize)>,
    /// For the in-place path: (output position, expression) of the
    /// computed output, if there is one.
    computed: Option<(usize, Compiled)>,
}

impl OwnedProjection {
    fn new(exprs: &[Compiled]) -> Self {
        let mut uses: std::collections::HashMap<usize, usize> = Default::default();
        for e in exprs {
            if let Compiled::Column(i) = e {
                *uses.entry(*i).or_default() += 1;
            }
        }
        let takes: Vec<Option<usize>> = exprs
            .iter()
            .map(|e| match e {
                Compiled::Column(i) if uses.get(i) == Some(&1) => Some(*i),
                _ => None,
            })
            .collect();
        let in_place = takes
            .iter()
            .enumerate()
            .all(|(j, t)| t.is_none_or(|i| i >= j))
            && takes.iter().filter(|t| t.is_none()).count() <= 1;
        let width = takes
            .iter()
            .flatten()
            .max()
            .map_or(exprs.len(), |m| (m + 1).max(exprs.len()));
        let moves = takes
            .iter()
            .enumerate()
            .filter_map(|(j, t)| t.filter(|i| *i != j).map(|i| (j, i)))
            .collect();
        let computed = exprs
            .iter()
            .zip(&takes)
            .enumerate()
            .find(|(_, (_, t))| t.is_none())
            .map(|(j, (e, _))| (j, e.clone()));
        OwnedProjection {
            exprs: exprs.to_vec(),
            takes,
            in_place,
            width,
            moves,
            computed,
        }
    }

    fn apply(&self, mut row: Row) -> Row {
        if self.in_place && self.width <= row.len() {
            // The computed output (if any) first, against the intact row;
            // then each output position j takes its column from slot
            // i >= j (no earlier step wrote there, no later one reads j).
            let held = self.computed.as_ref().map(|(j, e)| (*j, e.eval(&row)));
            for &(j, i) in &self.moves {
                row.swap(j, i);
            }
            if let Some((j, v)) = held {
                std::mem::replace(&mut row[j], v).discard();
            }
            crate::types::truncate_row(&mut row, self.exprs.len());
            return row;
        }
        let mut out: Row = self
            .exprs
            .iter()
            .zip(&self.takes)
            .map(|(e, t)| match t {
                Some(_) => Value::Null,
                None => e.eval(&row),
            })
            .collect();
        for (o, t) in out.iter_mut().zip(&self.takes) {
            if let Some(i) = t {
                if let Some(v) = row.get_mut(*i) {
                    o.set(std::mem::take(v));
                }
            }
        }
        crate::types::discard_row(row);
        out
    }
}

/// A post-aggregation projection whose outputs are all plain columns of
/// the aggregate row (group columns, aggregates, window bounds), read from
/// the key and the accumulator without building that row.
struct DirectPost {
    cols: Vec<PostCol>,
    /// The outputs are exactly every aggregate's result in call order.
    results_only: bool,
}

#[derive(Clone, Copy)]
enum PostCol {
    Group(usize),
    Agg(usize),
    WindowStart,
    WindowEnd,
}

impl DirectPost {
    /// `None` when some output is computed: the general path applies.
    fn new(exprs: &[Compiled], ngroups: usize, ncalls: usize) -> Option<Self> {
        exprs
            .iter()
            .map(|e| match e {
                Compiled::Column(i) if *i < ngroups => Some(PostCol::Group(*i)),
                Compiled::Column(i) if *i < ngroups + ncalls => Some(PostCol::Agg(*i - ngroups)),
                Compiled::Column(i) if *i == ngroups + ncalls => Some(PostCol::WindowStart),
                Compiled::Column(i) if *i == ngroups + ncalls + 1 => Some(PostCol::WindowEnd),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|cols| DirectPost {
                results_only: cols.len() == ncalls
                    && cols
                        .iter()
                        .enumerate()
                        .all(|(i, c)| matches!(c, PostCol::Agg(j) if *j == i)),
                cols,
            })
    }

    /// Whether the output row is the accumulator row unchanged: exactly
    /// every aggregate's result in call order, each result being its
    /// accumulator.
    fn is_identity(&self, calls: &[AggCall]) -> bool {
        self.results_only && calls.iter().all(|c| c.agg.result_is_acc())
    }

    /// [`apply`](Self::apply) taking the accumulators: when the output is
    /// exactly every aggregate's result in call order (the usual CTAS,
    /// whose group columns go to the key), the results replace the
    /// accumulators in their own row.
    fn apply_owned(&self, key: &Row, w: Option<Window>, mut acc: Row, calls: &[AggCall]) -> Row {
        if self.results_only && acc.len() == calls.len() {
            for (c, slot) in calls.iter().zip(acc.iter_mut()) {
                let r = c.agg.result(slot);
                slot.set(r);
            }
            return acc;
        }
        let out = self.apply(key, w, &acc, calls);
        crate::types::discard_row(acc);
        out
    }

    fn apply(&self, key: &Row, w: Option<Window>, acc: &Row, calls: &[AggCall]) -> Row {
        self.cols
            .iter()
            .map(|c| match *c {
                PostCol::Group(i) => key.get(i).cloned().unwrap_or(Value::Null),
                PostCol::Agg(j) => match (calls.get(j), acc.get(j)) {
                    (Some(call), Some(a)) => call.agg.result(a),
                    _ => Value::Null,
                },
                PostCol::WindowStart => w.map_or(Value::Null, |w| Value::BigInt(w.start)),
                PostCol::WindowEnd => w.map_or(Value::Null, |w| Value::BigInt(w.end)),
            })
            .collect()
    }
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
            materialize: true,
            reads: None,
            pseudo_reads: [true; 3],
            names_read: None,
            col_refs: None,
            short_rows: false,
            join_spare: 0,
            post_groups: 0,
        }
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

    fn lookup(&self, name: &Ident) -> Result<&'a SourceInfo, SqlError> {
        self.catalog.source(&name.name).ok_or_else(|| {
            let mut msg = format!("{} does not exist", name.name);
            if let Some(s) = self.catalog.suggest(&name.name) {
                msg.push_str(&format!("; did you mean {s}?"));
            }
            SqlError::not_found(Some(name.pos), msg)
        })
    }

    /// A source as a relation.
    fn source(&mut self, name: &Ident, alias: Option<&Ident>) -> Result<Rel, SqlError> {
        let info = self.lookup(name)?;
        if !self.sources.contains(&info.name) {
            self.sources.push(info.name.clone());
        }
        let qualifier = alias.unwrap_or(name).name.clone();
        let mut columns = Vec::new();
        let mut pseudo = HashSet::new();
        for c in &info.schema.key {
            columns.push(ScopeColumn {
                qualifier: Some(qualifier.clone()),
                name: c.name.clone(),
                ty: c.ty.clone(),
                index: columns.len(),
            });
        }
        if info.window.is_some() {
            for n in [crate::schema::WINDOWSTART, crate::schema::WINDOWEND] {
                pseudo.insert(columns.len());
                columns.push(ScopeColumn {
                    qualifier: Some(qualifier.clone()),
                    name: n.to_string(),
                    ty: SqlType::BigInt,
                    index: columns.len(),
                });
            }
        }
        for c in &info.schema.value {
            columns.push(ScopeColumn {
                qualifier: Some(qualifier.clone()),
                name: c.name.clone(),
                ty: c.ty.clone(),
                index: columns.len(),
            });
        }
        for (n, t) in [
            (ROWTIME, SqlType::BigInt),
            (ROWPARTITION, SqlType::Int),
            (ROWOFFSET, SqlType::BigInt),
        ] {
            pseudo.insert(columns.len());
            columns.push(ScopeColumn {
                qualifier: Some(qualifier.clone()),
                name: n.to_string(),
                ty: t,
                index: columns.len(),
            });
        }
        let wextra = if info.window.is_some() { 2 } else { 0 };
        let nkeys = info.schema.key.len() + wextra;
        let keys: Vec<KeyAlt> = (0..nkeys)
            .map(|i| KeyAlt {
                texts: Vec::new(),
                slots: vec![i],
            })
            .collect();
        let mut key_types: Vec<SqlType> = info.schema.key.iter().map(|c| c.ty.clone()).collect();
        key_types.extend(std::iter::repeat_n(SqlType::BigInt, wextra));
        let ks: Arc<dyn Serde<Row>> = match info.window {
            None => Arc::new(info.key_serde()),
            Some(w) => Arc::new(WindowedRowSerde {
                inner: info.key_serde(),
                window: w,
            }),
        };
        let vs = info.value_serde();
        let key_serde: Arc<dyn Serde<Row>> = ks.clone();
        let ks = ks;
        let ts_slot = match &info.timestamp {
            Some(col) => Some(columns.iter().position(|c| c.name == *col).ok_or_else(|| {
                SqlError::new(format!("TIMESTAMP column {col} not found in {}", info.name))
            })?),
            None => None,
        };
        let ts_format = info.timestamp_format.clone();
        let rowtime_slot = columns.len() - 3;
        let mut raw_table = None;
        let mut pending_fill = None;
        let suffix = if self.short_rows && ts_slot.is_none() {
            0
        } else {
            3
        };
        let flow = match info.kind {
            SourceKind::Stream => {
                let head: Head = Arc::new(std::sync::OnceLock::new());
                let step = head.clone();
                let s = self.builder.stream_with_meta(
                    &info.topic,
                    ks,
                    PrefixedRowSerde {
                        unread: info
                            .schema
                            .value
                            .iter()
                            .map(|c| {
                                self.names_read
                                    .as_ref()
                                    .is_some_and(|n| !n.contains(&c.name))
                                    && info.timestamp.as_ref() != Some(&c.name)
                            })
                            .collect(),
                        inner: vs,
                        prefix: nkeys,
                        suffix,
                        // Only the first source (FROM) has joins appending
                        // to its rows.
                        spare: std::mem::take(&mut self.join_spare),
                    },
                    move |m: &runnel_streams::RecordMeta, k: &Row, v: Row| match step.get() {
                        Some(f) => f(m, k, v),
                        None => Some(v),
                    },
                );
                let key_read = match &self.reads {
                    None => true,
                    Some(_) if info.window.is_some() => true,
                    Some(r) => {
                        info.schema.key.iter().any(|c| r.contains(&c.name))
                            || info.timestamp.as_ref().is_some_and(|t| {
                                r.contains(t) || info.schema.key.iter().any(|c| c.name == *t)
                            })
                    }
                };
                let [read_time, read_partition, read_offset] = self.pseudo_reads;
                let fill: Fill = Arc::new(
                    move |m: &runnel_streams::RecordMeta, k: &Row, mut full: Row| {
                        // The value arrives with NULL key slots in front
                        // and NULL pseudo columns behind unless `suffix`
                        // is 0 (empty: a tombstone); only what the query
                        // reads is filled.
                        if full.is_empty() {
                            return None;
                        }
                        if key_read {
                            for (slot, kv) in full.iter_mut().zip(k.iter()) {
                                slot.set(kv.clone());
                            }
                        }
                        let base = full.len().saturating_sub(suffix);
                        let mut put = |i: usize, v: Value| {
                            if let Some(slot) = full.get_mut(base + i) {
                                slot.set(v);
                            }
                        };
                        if read_time {
                            put(0, Value::BigInt(m.timestamp));
                        }
                        if read_partition {
                            put(1, Value::Int(m.partition));
                        }
                        if read_offset {
                            put(2, Value::BigInt(m.offset));
                        }
                        Some(full)
                    },
                );
                let s = s.with_serdes(key_serde.clone(), InternalSerde);
                let pending = SourceFill { fill, head };
                if ts_slot.is_none() {
                    pending_fill = Some(pending);
                    Flow::Stream(s)
                } else {
                    let mut s = pending.run_alone(s);
                    if let Some(slot) = ts_slot {
                        let fmt = ts_format.clone();
                        s = s
                            .with_timestamps(move |_, v: &Row, ts| {
                                event_time(v.get(slot), fmt.as_deref()).unwrap_or(ts)
                            })
                            .map_values(move |_, mut v: Row| {
                                if let Some(ms) = event_time(v.get(slot), ts_format.as_deref()) {
                                    if let Some(r) = v.get_mut(rowtime_slot) {
                                        *r = Value::BigInt(ms);
                                    }
                                }
                                v
                            });
                    }
                    Flow::Stream(s.with_serdes(key_serde.clone(), InternalSerde))
                }
            }
            SourceKind::Table => {
                // Stored in the internal encoding, not the topic's format:
                // every stream-table join lookup decodes a stored row,
                // and the internal one reads about twice as fast as JSON.
                let store = self.name("source");
                let stored = SourceTableSerde {
                    width: info.schema.value.len(),
                    topic: vs.clone(),
                };
                let t = self
                    .builder
                    .stream(&info.topic, ks, OptionSerde(vs))
                    .to_table_nullable(&store, stored);
                raw_table = Some(t.clone());
                let t = t.map_values(move |k: &Row, v: &Row| {
                    let mut full = Vec::with_capacity(k.len() + v.len() + 3);
                    full.extend(k.iter().cloned());
                    full.extend(v.iter().cloned());
                    full.extend([Value::Null, Value::Null, Value::Null]);
                    full
                });
                Flow::Table(t.with_serdes(key_serde.clone(), InternalSerde))
            }
        };
        Ok(Rel {
            flow,
            columns,
            pseudo,
            keys,
            key_types,
            key_serde,
            parts: vec![qualifier],
            window: info.window,
            raw_table: if info.window.is_none() {
                raw_table
            } else {
                None
            },
            fill: pending_fill,
            tail: None,
        })
    }

    /// FROM and JOINs.
    fn relation(&mut self, q: &Query) -> Result<Rel, SqlError> {
        let mut rel = self.source(&q.from.name, q.from.alias.as_ref())?;
        for (ji, j) in q.joins.iter().enumerate() {
            let right = self.source(&j.right.name, j.right.alias.as_ref())?;
            let rq = j.right.qualifier().name.clone();
            if rel.parts.contains(&rq) {
                return Err(err(
                    j.right.name.pos,
                    format!("{rq} appears twice in this query; give it an alias"),
                ));
            }
            rel = self.join(rel, right, j, ji)?;
        }
        Ok(rel)
    }

    fn join(
        &mut self,
        left: Rel,
        right: Rel,
        j: &crate::ast::Join,
        index: usize,
    ) -> Result<Rel, SqlError> {
        let (left, right) = (left.settle(), right.settle());
        let mut tail = None;
        // The joined scope: left columns, then right columns shifted.
        let lw = left.width();
        let mut columns = left.columns.clone();
        for c in &right.columns {
            let mut c = c.clone();
            c.index += lw;
            columns.push(c);
        }
        let mut pseudo = left.pseudo.clone();
        pseudo.extend(right.pseudo.iter().map(|p| p + lw));
        let joined_scope = Scope::new(columns.clone());
        // ON must be an equality between one side and the other.
        let ExprKind::Binary {
            op: crate::ast::BinaryOp::Eq,
            left: a,
            right: b,
        } = &j.on.kind
        else {
            return Err(err(
                j.on.pos,
                "a join condition must be an equality between the two sides, such as a.id = b.id",
            ));
        };
        let side_of = |e: &Expr| -> Result<u8, SqlError> {
            let mut names = Vec::new();
            let mut quals = Vec::new();
            collect_refs(e, &mut names, &mut quals);
            let mut sides = HashSet::new();
            for (q, n) in quals.iter().zip(&names) {
                let c = joined_scope.resolve(q.as_ref(), n)?;
                sides.insert(u8::from(c.index >= lw));
            }
            match sides.len() {
                1 => Ok(sides.into_iter().next().unwrap_or(0)),
                0 => Err(err(
                    e.pos,
                    "a join condition must name a column of each side",
                )),
                _ => Err(err(
                    e.pos,
                    "each side of a join condition must name columns of one source only",
                )),
            }
        };
        let (le, re) = match (side_of(a)?, side_of(b)?) {
            (0, 1) => (a.as_ref(), b.as_ref()),
            (1, 0) => (b.as_ref(), a.as_ref()),
            _ => {
                return Err(err(
                    j.on.pos,
                    "a join condition must compare a column of the left side with one of the right side",
                ))
            }
        };
        let (lc, lt) = self.binder(left.scope()).bind(le)?;
        let (rc, rt) = self.binder(right.scope()).bind(re)?;
        // FULL OUTER joins: the synthetic key ROWKEY is whichever side's
        // join expression is present.
        let rowkey = {
            let (l, r) = (lc.clone(), rc.clone());
            move |v: &Row| -> Value {
                let lv = l.eval(&v[..lw.min(v.len())]);
                if !lv.is_null() {
                    return lv;
                }
                r.eval(v.get(lw..).unwrap_or(&[]))
            }
        };
        let (lt, rt) = (lt.unwrap_or(SqlType::String), rt.unwrap_or(SqlType::String));
        if lt != rt {
            return Err(err(
                j.on.pos,
                format!(
                    "cannot join on expressions of different types: {lt} and {rt}; CAST one side"
                ),
            ));
        }
        let key_slot = |rel: &Rel, e: &Expr| -> Option<usize> {
            let slot = match &e.kind {
                ExprKind::Column { qualifier, name } => {
                    rel.scope().resolve(qualifier.as_ref(), name).ok()?.index
                }
                _ => return None,
            };
            let nk = rel.keys.len() - if rel.window.is_some() { 2 } else { 0 };
            (nk == 1 && rel.keys[0].slots.contains(&slot)).then_some(slot)
        };
        let l_is_key = key_slot(&left, le);
        let r_is_key = key_slot(&right, re);
        let lw_right = right.width();
        let l_text = canon(le, &left.scope());
        let mut keys = vec![KeyAlt::default()];
        if let ExprKind::Column { qualifier, name } = &le.kind {
            if let Ok(c) = left.scope().resolve(qualifier.as_ref(), name) {
                keys[0].slots.push(c.index);
            }
        }
        if let ExprKind::Column { qualifier, name } = &re.kind {
            if let Ok(c) = right.scope().resolve(qualifier.as_ref(), name) {
                keys[0].slots.push(c.index + lw);
            }
        }
        keys[0].texts.push(l_text);
        keys[0].texts.push(canon(re, &joined_scope));
        if left.window.is_some() != right.window.is_some() {
            return Err(err(
                j.pos,
                "cannot join a windowed source with a non-windowed one",
            ));
        }
        let window = left.window;
        let mut key_types = vec![rt.clone()];
        if window.is_some() {
            let n = left.keys.len();
            keys.extend(left.keys[n - 2..].iter().cloned());
            key_types.extend([SqlType::BigInt, SqlType::BigInt]);
        }
        let mut parts = left.parts.clone();
        parts.extend(right.parts.iter().cloned());
        let null_right: Row = vec![Value::Null; lw_right];
        let null_left: Row = vec![Value::Null; lw];
        // Joined rows only carry the columns the query names, not counting
        // this join's own condition (both sides were keyed by it before
        // the join; a FULL join's ROWKEY reads it from joined rows though)
        // nor the select item the projection serves from the join's key.
        let full = j.kind == JoinKind::Full;
        let foreign_key = matches!((&left.flow, &right.flow), (Flow::Table(_), Flow::Table(_)))
            && l_is_key.is_none();
        let key_item_free = !full && !foreign_key;
        let kept = |cols: &[ScopeColumn]| -> Arc<[bool]> {
            cols.iter()
                .map(|c| match &self.col_refs {
                    None => true,
                    Some(refs) => refs.iter().any(|r| {
                        r.names(c)
                            && (full || r.join_on != Some(index))
                            && !(key_item_free && r.join_key_item)
                    }),
                })
                .collect()
        };
        let keep = Keep {
            left: kept(&left.columns),
            right: kept(&right.columns),
        };
        let flow = match (left.flow, right.flow) {
            (Flow::Stream(ls), Flow::Table(rt_)) => {
                if r_is_key.is_none() {
                    return Err(err(
                        re.pos,
                        format!(
                            "a stream-table join must use the table's PRIMARY KEY; {} is not the key of {}",
                            re,
                            right.parts.join(",")
                        ),
                    ));
                }
                let key_of = lc.clone();
                let ls = rekey(ls, l_is_key.is_some(), lc, right.key_serde.clone());
                // The table as stored: its row is the join key, the stored
                // values and null pseudo columns, built once per match.
                // The stream row moves into the joined row; unread
                // columns are dropped rather than copied.
                let k1 = keep.clone();
                let right_key_kept = keep.right.first().copied().unwrap_or(true);
                let full_right = move |mut l: Row, values: Option<&Row>| -> Row {
                    // The right key (the left side's join value), read
                    // before unread left columns are cleared.
                    let key = (values.is_some() && right_key_kept).then(|| key_of.eval(&l));
                    for (v, keep) in l.iter_mut().zip(k1.left.iter()) {
                        if !keep && !v.is_null() {
                            std::mem::take(v).discard();
                        }
                    }
                    match values {
                        Some(values) => {
                            l.reserve(values.len() + 4);
                            l.push(key.unwrap_or_default());
                            extend_kept(&mut l, values, k1.right.get(1..).unwrap_or(&[]));
                            l.extend([Value::Null, Value::Null, Value::Null]);
                        }
                        None => l.resize_with(l.len() + lw_right, || Value::Null),
                    }
                    l
                };
                let raw = right.raw_table.clone().filter(|_| right.keys.len() == 1);
                let out = match (j.kind, raw) {
                    (JoinKind::Inner, Some(raw)) => {
                        let t: Tail = Arc::default();
                        tail = Some(t.clone());
                        ls.join_filter_map(&raw, move |l: Row, r| {
                            run_tail(&t, full_right(l, Some(r?)))
                        })
                    }
                    (JoinKind::Left, Some(raw)) => {
                        let t: Tail = Arc::default();
                        tail = Some(t.clone());
                        ls.join_filter_map(&raw, move |l: Row, r| run_tail(&t, full_right(l, r)))
                    }
                    (JoinKind::Inner, None) => {
                        ls.join(&rt_, move |l: &Row, r: &Row| keep.concat(l, r))
                    }
                    (JoinKind::Left, None) => {
                        ls.left_join(&rt_, move |l: &Row, r: Option<&Row>| {
                            keep.concat(l, r.unwrap_or(&null_right))
                        })
                    }
                    (other, _) => {
                        return Err(err(
                            j.pos,
                            format!("{other} JOIN between a stream and a table is not supported; use INNER or LEFT"),
                        ))
                    }
                };
                Flow::Stream(out.with_serdes(right.key_serde.clone(), InternalSerde))
            }
            (Flow::Table(lt_), Flow::Table(rt_)) => {
                if r_is_key.is_none() {
                    return Err(err(
                        re.pos,
                        format!(
                            "a table-table join must use the right table's PRIMARY KEY; {re} is not its key"
                        ),
                    ));
                }
                let out = if l_is_key.is_some() {
                    match j.kind {
                        JoinKind::Inner => {
                            lt_.join(&rt_, move |l: &Row, r: &Row| keep.concat(l, r))
                        }
                        JoinKind::Left => lt_.left_join(&rt_, move |l: &Row, r: Option<&Row>| {
                            keep.concat(l, r.unwrap_or(&null_right))
                        }),
                        JoinKind::Full => {
                            let nl = null_left.clone();
                            lt_.outer_join(&rt_, move |l: Option<&Row>, r: Option<&Row>| {
                                keep.concat(l.unwrap_or(&nl), r.unwrap_or(&null_right))
                            })
                        }
                        JoinKind::Right => {
                            return Err(err(
                                j.pos,
                                "RIGHT OUTER JOIN is not supported; swap the sides and use LEFT",
                            ))
                        }
                    }
                } else {
                    // Foreign-key join: the left row names the right key.
                    let name = self.name("fkjoin");
                    let extract = move |v: &Row| vec![lc.eval(v)];
                    match j.kind {
                        JoinKind::Inner => lt_.join_foreign_key(
                            &rt_,
                            extract,
                            move |l: &Row, r: &Row| keep.concat(l, r),
                            &name,
                        ),
                        JoinKind::Left => lt_.left_join_foreign_key(
                            &rt_,
                            extract,
                            move |l: &Row, r: Option<&Row>| {
                                keep.concat(l, r.unwrap_or(&null_right))
                            },
                            &name,
                        ),
                        other => {
                            return Err(err(
                                j.pos,
                                format!("{other} is not supported for foreign-key table joins; use INNER or LEFT"),
                            ))
                        }
                    }
                };
                // A foreign-key join keeps the left table's key.
                let out = out.with_serdes(left.key_serde.clone(), InternalSerde);
                if l_is_key.is_none() {
                    return Ok(Rel {
                        flow: Flow::Table(out),
                        columns,
                        pseudo,
                        keys: left.keys,
                        key_types: left.key_types,
                        key_serde: left.key_serde,
                        parts,
                        window,
                        raw_table: None,
                        fill: None,
                        tail: None,
                    });
                }
                Flow::Table(out)
            }
            (Flow::Stream(ls), Flow::Stream(rs)) => {
                let Some(w) = &j.within else {
                    return Err(err(
                        j.pos,
                        "a stream-stream join needs a WITHIN clause, such as WITHIN 1 HOUR",
                    ));
                };
                // Both sides end up keyed the same way: the side already
                // keyed by the join expression keeps its key serde.
                let ks = if l_is_key.is_some() {
                    left.key_serde.clone()
                } else {
                    right.key_serde.clone()
                };
                let ls = rekey(ls, l_is_key.is_some(), lc, ks.clone());
                let rs = rekey(rs, r_is_key.is_some(), rc, ks.clone());
                let grace = w.grace.map_or(DEFAULT_GRACE_MS, |g| g.millis);
                let windows = JoinWindows::of(ms(w.before.millis))
                    .before(ms(w.before.millis))
                    .after(ms(w.after.millis))
                    .grace(ms(grace));
                let prefix = self.name("join");
                let out = match j.kind {
                    JoinKind::Inner => ls.join_stream(
                        &rs,
                        move |l: &Row, r: &Row| keep.concat(l, r),
                        windows,
                        &prefix,
                    ),
                    JoinKind::Left => ls.left_join_stream(
                        &rs,
                        move |l: &Row, r: Option<&Row>| keep.concat(l, r.unwrap_or(&null_right)),
                        windows,
                        &prefix,
                    ),
                    JoinKind::Full => {
                        let nl = null_left.clone();
                        ls.outer_join_stream(
                            &rs,
                            move |l: Option<&Row>, r: Option<&Row>| {
                                keep.concat(l.unwrap_or(&nl), r.unwrap_or(&null_right))
                            },
                            windows,
                            &prefix,
                        )
                    }
                    JoinKind::Right => {
                        return Err(err(
                            j.pos,
                            "RIGHT OUTER JOIN is not supported; swap the sides and use LEFT",
                        ))
                    }
                };
                Flow::Stream(out.with_serdes(ks, InternalSerde))
            }
            (Flow::Table(_), Flow::Stream(_)) => {
                return Err(err(
                    j.pos,
                    "a table cannot be joined with a stream on its right; put the stream first (stream-table join)",
                ))
            }
        };
        let key_serde = right.key_serde.clone();
        let (flow, columns) = if j.kind == JoinKind::Full {
            let slot = columns.len();
            let mut columns = columns;
            columns.push(ScopeColumn {
                qualifier: None,
                name: "ROWKEY".to_string(),
                ty: rt.clone(),
                index: slot,
            });
            keys[0].slots.push(slot);
            let add = move |_: &Row, v: &Row| {
                let mut v = v.clone();
                let k = rowkey(&v);
                v.push(k);
                v
            };
            let flow = match flow {
                Flow::Stream(s) => Flow::Stream(s.map_values(move |k, v: Row| add(k, &v))),
                Flow::Table(t) => Flow::Table(t.map_values(add)),
            };
            (flow, columns)
        } else {
            (flow, columns)
        };
        Ok(Rel {
            flow,
            columns,
            pseudo,
            keys,
            key_types,
            key_serde,
            parts,
            window,
            raw_table: None,
            fill: None,
            tail,
        })
    }

    /// Binds a select list against a relation: key columns must be
    /// projected (ksqlDB's rule for persistent queries), the rest become
    /// value columns.
    fn projection(
        &self,
        items: &[SelectItem],
        rel: &Rel,
        sink: &str,
        require_keys: bool,
    ) -> Result<Projection, SqlError> {
        let scope = rel.scope();
        let multi = rel.parts.len() > 1;
        let mut keys: Vec<Option<(String, SqlType)>> = vec![None; rel.keys.len()];
        let mut values: Vec<OutCol> = Vec::new();
        let mut names: HashSet<String> = HashSet::new();
        let key_pos = |slot: Option<usize>, text: &str| -> Option<usize> {
            rel.keys.iter().position(|k| {
                slot.is_some_and(|s| k.slots.contains(&s)) || k.texts.iter().any(|t| t == text)
            })
        };
        let mut add = |name: String,
                       ty: SqlType,
                       expr: Compiled,
                       kp: Option<usize>,
                       pos: Pos,
                       keys: &mut Vec<Option<(String, SqlType)>>|
         -> Result<(), SqlError> {
            if !names.insert(name.clone()) {
                return Err(err(
                    pos,
                    format!("duplicate column name {name} in the projection; give one an alias"),
                ));
            }
            if let Some(k) = kp {
                if keys[k].is_none() {
                    keys[k] = Some((name, ty));
                    return Ok(());
                }
            }
            values.push(OutCol { name, ty, expr });
            Ok(())
        };
        for (i, item) in items.iter().enumerate() {
            match item {
                SelectItem::Star { qualifier, pos } => {
                    if let Some(q) = qualifier {
                        if !rel.parts.contains(&q.name) {
                            return Err(err(
                                q.pos,
                                format!("source {} not found in this query", q.name),
                            ));
                        }
                    }
                    for c in &scope.columns {
                        if rel.pseudo.contains(&c.index) {
                            continue;
                        }
                        if qualifier
                            .as_ref()
                            .is_some_and(|q| c.qualifier.as_deref() != Some(q.name.as_str()))
                        {
                            continue;
                        }
                        let name = if multi {
                            format!("{}_{}", c.qualifier.as_deref().unwrap_or(""), c.name)
                        } else {
                            c.name.clone()
                        };
                        let kp = key_pos(Some(c.index), "");
                        add(
                            name,
                            c.ty.clone(),
                            Compiled::Column(c.index),
                            kp,
                            *pos,
                            &mut keys,
                        )?;
                    }
                }
                SelectItem::Expr { expr, alias } => {
                    let (c, t) = self.binder(scope.clone()).bind(expr)?;
                    let slot = match &c {
                        Compiled::Column(s) => Some(*s),
                        _ => None,
                    };
                    let name = match (alias, &expr.kind) {
                        (Some(a), _) => a.name.clone(),
                        (None, ExprKind::Column { name, .. }) => name.name.clone(),
                        (None, ExprKind::Deref { field, .. }) => field.name.clone(),
                        _ => format!("KSQL_COL_{i}"),
                    };
                    let kp = key_pos(slot, &canon(expr, &scope));
                    add(
                        name,
                        t.unwrap_or(SqlType::String),
                        c,
                        kp,
                        expr.pos,
                        &mut keys,
                    )?;
                }
            }
        }
        let mut out_keys = Vec::new();
        let nk = rel.keys.len() - if rel.window.is_some() { 2 } else { 0 };
        for (i, k) in keys.into_iter().enumerate() {
            if i >= nk {
                // The window travels in the key, not as a column.
                if let Some((n, t)) = k {
                    let slot = rel.keys[i].slots[0];
                    values.push(OutCol {
                        name: n,
                        ty: t,
                        expr: Compiled::Column(slot),
                    });
                }
                continue;
            }
            match k {
                Some(k) => out_keys.push(k),
                None if require_keys => {
                    let what = rel.keys[i]
                        .slots
                        .iter()
                        .filter_map(|s| scope.columns.get(*s))
                        .map(|c| format!("{}.{}", c.qualifier.as_deref().unwrap_or(""), c.name))
                        .collect::<Vec<_>>()
                        .join(" or ");
                    return Err(SqlError::new(format!(
                        "Key missing from projection. The query used to build {sink} must include the key column {what} in its projection"
                    )));
                }
                None => out_keys.push((format!("KSQL_KEY_{i}"), rel.key_types[i].clone())),
            }
        }
        Ok(Projection {
            keys: out_keys,
            values,
        })
    }

    /// Plans `q` writing to `sink`; `sink_name` names it in errors.
    pub fn plan(&mut self, q: &Query, sink_name: &str, sink: Sink) -> Result<Planned, SqlError> {
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
            .map(|i| i.schema.key.len() + i.schema.value.len() + 5)
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
        if !fuse {
            rel = rel.settle();
        }
        let mut fused_where = None;
        if let Some(w) = &q.where_ {
            let pred = Arc::new(self.binder(rel.scope()).bind_condition(w, "WHERE")?);
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
            return self.aggregate(q, rel, sink_name, sink);
        }
        if q.window.is_some() {
            return Err(err(
                q.window.as_ref().map_or(q.pos, |w| w.pos),
                "WINDOW needs an aggregation (GROUP BY)",
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
                        pending.run(
                            s,
                            Arc::new(move |m: &runnel_streams::RecordMeta, k: &Row, v: Row| {
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
                    (None, None, None) => s.map_values(move |_, v: Row| owned.apply(v)),
                };
                if let Some(col) = &self.sink_timestamp {
                    let Some(i) = schema.value.iter().position(|c| c.name == *col) else {
                        return Err(SqlError::new(format!(
                            "The TIMESTAMP column set in the WITH clause does not exist in the schema: '{col}'"
                        )));
                    };
                    out = out.with_timestamps(move |_, v: &Row, ts| {
                        event_time(v.get(i), None).unwrap_or(ts)
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
                self.write_table(out, &schema, rel.window, sink)?;
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

    /// Table functions in the select list (`EXPLODE(arr) AS x`): each
    /// record becomes one row per element; several table functions zip,
    /// the shorter padded with NULL. Their values become extra columns.
    fn table_functions(
        &mut self,
        mut rel: Rel,
        items: &[SelectItem],
    ) -> Result<(Rel, Vec<SelectItem>), SqlError> {
        let mut out = Vec::with_capacity(items.len());
        let mut calls: Vec<(Arc<dyn crate::functions::TableFunction>, Vec<Compiled>)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let SelectItem::Expr { expr, alias } = item else {
                out.push(item.clone());
                continue;
            };
            let ExprKind::Function { name, args, .. } = &expr.kind else {
                out.push(item.clone());
                continue;
            };
            let Some(f) = self.functions.table_arc(&name.name) else {
                out.push(item.clone());
                continue;
            };
            let mut compiled = Vec::new();
            let mut types = Vec::new();
            for a in args {
                let (c, t) = self.binder(rel.scope()).bind(a)?;
                compiled.push(c);
                types.push(t);
            }
            let ty = f
                .return_type(&types)
                .map_err(|e| err(name.pos, e.to_string()))?;
            let slot = rel.columns.len();
            let col = format!("__T{slot}");
            rel.columns.push(ScopeColumn {
                qualifier: None,
                name: col.clone(),
                ty,
                index: slot,
            });
            rel.pseudo.insert(slot);
            calls.push((f, compiled));
            out.push(SelectItem::Expr {
                expr: column_ref(&col, expr.pos),
                alias: Some(alias.clone().unwrap_or(Ident {
                    name: format!("KSQL_COL_{i}"),
                    pos: expr.pos,
                })),
            });
        }
        if calls.is_empty() {
            return Ok((rel, out));
        }
        let Flow::Stream(s) = rel.flow else {
            return Err(err(
                items.first().map_or(Pos::default(), |_| Pos::default()),
                "table functions such as EXPLODE work on streams only",
            ));
        };
        let calls = Arc::new(calls);
        let s = s.flat_map_values(move |_, v: Row| {
            let lists: Vec<Vec<Value>> = calls
                .iter()
                .map(|(f, args)| {
                    let a: Vec<Value> = args.iter().map(|c| c.eval(&v)).collect();
                    f.call(&a).unwrap_or_default()
                })
                .collect();
            let n = lists.iter().map(Vec::len).max().unwrap_or(0);
            (0..n)
                .map(|i| {
                    let mut row = v.clone();
                    row.extend(lists.iter().map(|l| l.get(i).cloned().unwrap_or_default()));
                    row
                })
                .collect::<Vec<Row>>()
        });
        rel.flow = Flow::Stream(s);
        Ok((rel, out))
    }

    fn select_has_aggregate(&self, items: &[SelectItem]) -> bool {
        items.iter().any(|i| match i {
            SelectItem::Expr { expr, .. } => self.has_aggregate(expr),
            SelectItem::Star { .. } => false,
        })
    }

    fn has_aggregate(&self, e: &Expr) -> bool {
        if let ExprKind::Function { name, .. } = &e.kind {
            if self.functions.aggregate(&name.name).is_some() {
                return true;
            }
        }
        let mut found = false;
        let mut e = e.clone();
        for_each_child(&mut e, &mut |c| found |= self.has_aggregate(c));
        found
    }

    fn partition_by(&mut self, rel: Rel, exprs: &[Expr]) -> Result<Rel, SqlError> {
        let scope = rel.scope();
        let Flow::Stream(s) = rel.flow else {
            return Err(err(exprs[0].pos, "PARTITION BY applies to streams only"));
        };
        let mut compiled = Vec::new();
        let mut keys = Vec::new();
        let mut types = Vec::new();
        for e in exprs {
            let (c, t) = self.binder(scope.clone()).bind(e)?;
            let mut alt = KeyAlt {
                texts: vec![canon(e, &scope)],
                slots: Vec::new(),
            };
            if let Compiled::Column(slot) = c {
                alt.slots.push(slot);
            }
            keys.push(alt);
            types.push(t.unwrap_or(SqlType::String));
            compiled.push(c);
        }
        let compiled = Arc::new(compiled);
        let s = s
            .select_key(move |_, v: &Row| eval_all(&compiled, v))
            .with_serdes(InternalKeySerde, InternalSerde);
        Ok(Rel {
            flow: Flow::Stream(s),
            keys,
            key_types: types,
            key_serde: Arc::new(InternalKeySerde),
            raw_table: None,
            ..rel
        })
    }

    /// GROUP BY, windows, aggregates and HAVING.
    fn aggregate(
        &mut self,
        q: &Query,
        rel: Rel,
        sink_name: &str,
        sink: Sink,
    ) -> Result<Planned, SqlError> {
        let scope = rel.scope();
        if q.group_by.is_empty() {
            return Err(err(
                q.pos,
                "aggregate functions need a GROUP BY clause (ksqlDB has no global aggregation)",
            ));
        }
        // Group expressions.
        let mut group_texts = Vec::new();
        let mut group_exprs = Vec::new();
        let mut group_types = Vec::new();
        for g in &q.group_by {
            let (c, t) = self.binder(scope.clone()).bind(g)?;
            group_texts.push(canon(g, &scope));
            group_exprs.push(c);
            group_types.push(t.unwrap_or(SqlType::String));
        }
        // Rewrite select and having: groups → __G<i>, aggregates → __A<j>.
        let mut calls: Vec<(String, Expr)> = Vec::new();
        let mut rewritten = Vec::new();
        for item in &q.select {
            match item {
                SelectItem::Star { pos, .. } => {
                    return Err(err(
                        *pos,
                        "SELECT * cannot be used with GROUP BY; list the columns",
                    ))
                }
                SelectItem::Expr { expr, alias } => {
                    let r = self.rewrite_agg(expr, &scope, &group_texts, &mut calls)?;
                    rewritten.push((r, alias.clone(), expr.clone()));
                }
            }
        }
        let having = match &q.having {
            Some(h) => Some(self.rewrite_agg(h, &scope, &group_texts, &mut calls)?),
            None => None,
        };
        // Bind the aggregate calls.
        let mut agg_calls = Vec::new();
        let mut agg_types = Vec::new();
        for (_, call) in &calls {
            let ExprKind::Function {
                name, args, star, ..
            } = &call.kind
            else {
                continue;
            };
            let Some(f) = self.functions.aggregate(&name.name) else {
                continue;
            };
            if matches!(rel.flow, Flow::Table(_))
                && !UNDOABLE.contains(&name.name.to_ascii_uppercase().as_str())
            {
                return Err(err(
                    name.pos,
                    format!(
                        "the aggregate function {} cannot be applied to a table source, only to a stream",
                        name.name
                    ),
                ));
            }
            let nparams = f.literal_params(args.len());
            let ncols = args.len().saturating_sub(nparams);
            let mut compiled = Vec::new();
            let mut types = Vec::new();
            for a in &args[..ncols] {
                if self.has_aggregate(a) {
                    return Err(err(a.pos, "aggregate functions cannot be nested"));
                }
                let (c, t) = self.binder(scope.clone()).bind(a)?;
                compiled.push(c);
                types.push(t);
            }
            let mut params = Vec::new();
            for a in &args[ncols..] {
                match self.binder(Scope::default()).bind(a)? {
                    (Compiled::Const(v), _) => params.push(v),
                    _ => {
                        return Err(err(
                            a.pos,
                            format!("this argument of {} must be a literal", name.name),
                        ))
                    }
                }
            }
            let _ = star;
            let agg = f
                .bind(&types, &params)
                .map_err(|e| err(name.pos, e.to_string()))?;
            agg_types.push(agg.return_type());
            agg_calls.push(AggCall {
                agg: Arc::from(agg),
                args: compiled,
            });
        }
        let calls_arc = Arc::new(agg_calls);
        // The post-aggregation scope.
        let windowed = q.window.is_some();
        let mut post_cols = Vec::new();
        for (i, t) in group_types.iter().enumerate() {
            post_cols.push(ScopeColumn {
                qualifier: None,
                name: format!("__G{i}"),
                ty: t.clone(),
                index: post_cols.len(),
            });
        }
        for (j, t) in agg_types.iter().enumerate() {
            post_cols.push(ScopeColumn {
                qualifier: None,
                name: format!("__A{j}"),
                ty: t.clone(),
                index: post_cols.len(),
            });
        }
        if windowed {
            for n in [crate::schema::WINDOWSTART, crate::schema::WINDOWEND] {
                post_cols.push(ScopeColumn {
                    qualifier: None,
                    name: n.to_string(),
                    ty: SqlType::BigInt,
                    index: post_cols.len(),
                });
            }
        }
        let post_scope = Scope::new(post_cols);
        let mut keys: Vec<Option<(String, SqlType)>> = vec![None; group_types.len()];
        let mut values = Vec::new();
        let mut names = HashSet::new();
        for (i, (r, alias, orig)) in rewritten.iter().enumerate() {
            let (c, t) = self.bind_post(&post_scope, r, orig)?;
            let name = match (alias, &orig.kind) {
                (Some(a), _) => a.name.clone(),
                (None, ExprKind::Column { name, .. }) => name.name.clone(),
                (None, ExprKind::Deref { field, .. }) => field.name.clone(),
                _ => format!("KSQL_COL_{i}"),
            };
            if !names.insert(name.clone()) {
                return Err(err(
                    orig.pos,
                    format!("duplicate column name {name} in the projection; give one an alias"),
                ));
            }
            let ty = t.unwrap_or(SqlType::String);
            if let Compiled::Column(slot) = c {
                if slot < group_types.len() && keys[slot].is_none() {
                    keys[slot] = Some((name, ty));
                    continue;
                }
            }
            values.push(OutCol { name, ty, expr: c });
        }
        let mut out_keys = Vec::new();
        for (i, k) in keys.into_iter().enumerate() {
            match k {
                Some(k) => out_keys.push(k),
                None if matches!(sink, Sink::Topic { .. }) => {
                    return Err(err(
                        q.group_by[i].pos,
                        format!(
                            "Key missing from projection. The query used to build {sink_name} must include the grouping expression {} in its projection",
                            q.group_by[i]
                        ),
                    ));
                }
                None => out_keys.push((format!("KSQL_COL_{i}"), group_types[i].clone())),
            }
        }
        let having = match having {
            Some(h) => Some(Arc::new(
                self.binder(post_scope.clone())
                    .bind_condition(&h, "HAVING")?,
            )),
            None => None,
        };
        let proj = Projection {
            keys: out_keys,
            values,
        };
        let schema = proj.schema();
        let exprs = proj.compiled();
        // Key serde of the grouped table: the sink's key format when it can
        // carry the key (so pull queries and sinks agree), else internal.
        let key_serde: Arc<dyn Serde<Row>> = match &sink {
            Sink::Topic { key_format, .. }
                if key_format.check(&schema.key, "key").is_ok() && *key_format != Format::NONE =>
            {
                Arc::new(RowSerde::new(*key_format, schema.key.clone(), false))
            }
            _ => Arc::new(InternalKeySerde),
        };
        let store = self.name("Aggregate-Materialize");
        // Grouping by exactly the current key needs no repartition (as in
        // ksqlDB): the stream's own key and serde are the group's.
        let by_key = rel.window.is_none()
            && group_exprs.len() == rel.keys.len()
            && group_exprs
                .iter()
                .zip(&rel.keys)
                .all(|(c, k)| matches!(c, Compiled::Column(slot) if k.slots.contains(slot)));
        let key_serde = if by_key {
            rel.key_serde.clone()
        } else {
            key_serde
        };
        let g = Arc::new(group_exprs);
        let group_exprs_for_tables = g.clone();
        let ngroups = group_types.len();
        self.post_groups = ngroups;
        let post = move |k: &Row, w: Option<Window>, acc: &Row, calls: &[AggCall]| -> Row {
            let mut row = Vec::with_capacity(ngroups + calls.len() + 2);
            row.extend(k.iter().cloned());
            if row.len() < ngroups {
                row.resize(ngroups, Value::Null);
            }
            for (c, a) in calls.iter().zip(acc) {
                row.push(c.agg.result(a));
            }
            if let Some(w) = w {
                row.push(Value::BigInt(w.start));
                row.push(Value::BigInt(w.end));
            }
            row
        };
        let post = Arc::new(post);
        let sources = self.sources.clone();
        let emit_final = q.emit == Some(Emit::Final);
        let (c1, c2) = (calls_arc.clone(), calls_arc.clone());
        let ks = key_serde.clone();
        let group_stream = move |s: KStream<Row, Row>| {
            if by_key {
                s.with_serdes(ks, InternalSerde).group_by_key()
            } else {
                s.group_by(move |_, v: &Row| eval_all(&g, v), ks)
            }
        };
        let (post_fn, window) = match (rel.flow, &q.window) {
            (Flow::Stream(s), None) => {
                if emit_final {
                    return Err(err(q.pos, "EMIT FINAL needs a windowed aggregation"));
                }
                let table = group_stream(s).aggregate(
                    move || agg_init(&c1),
                    move |_, v: Row, acc: Row| agg_add(&c2, v, acc),
                    InternalSerde,
                    &store,
                );
                let f = self.finish_agg(
                    table, &post, &calls_arc, having, &exprs, &schema, None, sink,
                )?;
                (f, None)
            }
            (Flow::Table(t), None) => {
                let c3 = calls_arc.clone();
                let groups = group_exprs_for_tables;
                let table = t
                    .group_by(
                        move |_, v: &Row| (eval_all(&groups, v), v.clone()),
                        key_serde.clone(),
                        InternalSerde,
                    )
                    .aggregate(
                        move || agg_init(&c1),
                        move |_, v: Row, acc: Row| agg_add(&c2, v, acc),
                        move |_, v: Row, acc: Row| agg_undo(&c3, v, acc),
                        InternalSerde,
                        &store,
                    );
                let f = self.finish_agg(
                    table, &post, &calls_arc, having, &exprs, &schema, None, sink,
                )?;
                (f, None)
            }
            (Flow::Table(_), Some(w)) => {
                return Err(err(
                    w.pos,
                    "WINDOW cannot be used on a table source; aggregate a stream",
                ))
            }
            (Flow::Stream(s), Some(w)) => {
                let (table, wt) = window_aggregate(group_stream(s), w, emit_final, c1, c2, &store)?;
                let f = self.finish_agg(
                    table,
                    &post,
                    &calls_arc,
                    having,
                    &exprs,
                    &schema,
                    Some(wt),
                    sink,
                )?;
                (f, Some(wt))
            }
        };
        Ok(Planned {
            kind: SourceKind::Table,
            schema,
            window,
            sources,
            materialization: Some(Materialization {
                store,
                window,
                key_serde,
                value_serde: Arc::new(InternalSerde),
                post: post_fn,
            }),
        })
    }

    /// Binds a rewritten select expression against the post-aggregation
    /// scope; a column left over was neither grouped nor aggregated.
    fn bind_post(
        &self,
        post: &Scope,
        r: &Expr,
        orig: &Expr,
    ) -> Result<(Compiled, Option<SqlType>), SqlError> {
        let mut named = Vec::new();
        columns_named(r, &mut named);
        for n in named {
            if !post.columns.iter().any(|c| c.name == n.name) {
                return Err(err(
                    n.pos,
                    format!(
                        "Non-aggregate SELECT expression(s) not part of GROUP BY: {orig}; add {} to GROUP BY or aggregate it",
                        n.name
                    ),
                ));
            }
        }
        self.binder(post.clone()).bind(r)
    }

    fn rewrite_agg(
        &self,
        e: &Expr,
        scope: &Scope,
        groups: &[String],
        calls: &mut Vec<(String, Expr)>,
    ) -> Result<Expr, SqlError> {
        let text = canon(e, scope);
        if let Some(i) = groups.iter().position(|g| *g == text) {
            return Ok(column_ref(&format!("__G{i}"), e.pos));
        }
        if let ExprKind::Function { name, .. } = &e.kind {
            if self.functions.aggregate(&name.name).is_some() {
                let j = match calls.iter().position(|(t, _)| *t == text) {
                    Some(j) => j,
                    None => {
                        calls.push((text, e.clone()));
                        calls.len() - 1
                    }
                };
                return Ok(column_ref(&format!("__A{j}"), e.pos));
            }
        }
        let mut out = e.clone();
        let mut failure = None;
        for_each_child(&mut out, &mut |c| {
            if failure.is_some() {
                return;
            }
            match self.rewrite_agg(c, scope, groups, calls) {
                Ok(r) => *c = r,
                Err(e) => failure = Some(e),
            }
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// HAVING, projection and sink of an aggregated table; returns the
    /// function pull queries apply to stored aggregates.
    #[allow(clippy::too_many_arguments)]
    fn finish_agg<K: KeyRow>(
        &mut self,
        table: KTable<K, Row>,
        post: &Arc<impl Fn(&Row, Option<Window>, &Row, &[AggCall]) -> Row + Send + Sync + 'static>,
        calls: &Arc<Vec<AggCall>>,
        having: Option<Arc<Compiled>>,
        exprs: &Arc<Vec<Compiled>>,
        schema: &Schema,
        window: Option<WindowType>,
        sink: Sink,
    ) -> Result<PostFn, SqlError> {
        let (p1, c1) = (post.clone(), calls.clone());
        let e1 = exprs.clone();
        let out = match &having {
            Some(h) => {
                let h = h.clone();
                table
                    .map_values(move |k: &K, acc: &Row| p1(k.row(), k.window(), acc, &c1))
                    .filter(move |_, v: &Row| h.test(v))
                    .map_values(move |_, v: &Row| eval_all(&e1, v))
            }
            // Without HAVING, the aggregate row and the projection are one
            // step; when every output is a group column, an aggregate or a
            // window bound, it is read straight from key and accumulator.
            None => match DirectPost::new(&e1, self.post_groups, c1.len()) {
                // The outputs are the accumulators as they are: no step.
                Some(direct) if direct.is_identity(&c1) => table,
                Some(direct) => table.map_values_owned(move |k: &K, acc: Row| {
                    direct.apply_owned(k.row(), k.window(), acc, &c1)
                }),
                None => {
                    let owned = OwnedProjection::new(&e1);
                    table.map_values(move |k: &K, acc: &Row| {
                        owned.apply(p1(k.row(), k.window(), acc, &c1))
                    })
                }
            },
        };
        self.write_table(out, schema, window, sink)?;
        let (p2, c2, e2) = (post.clone(), calls.clone(), exprs.clone());
        let nkeys = schema.key.len();
        let f: PostFn = Arc::new(move |k: &Row, w: Option<Window>, acc: &Row| {
            let row = p2(k, w, acc, &c2);
            if let Some(h) = &having {
                if !h.test(&row) {
                    return None;
                }
            }
            let mut out: Row = k.iter().take(nkeys).cloned().collect();
            if let Some(w) = w {
                out.push(Value::BigInt(w.start));
                out.push(Value::BigInt(w.end));
            }
            out.extend(eval_all(&e2, &row));
            Some(out)
        });
        Ok(f)
    }

    fn write_stream(
        &mut self,
        s: KStream<Row, Row>,
        schema: &Schema,
        window: Option<WindowType>,
        sink: Sink,
    ) -> Result<(), SqlError> {
        match sink {
            Sink::Topic { ref topic, .. } => {
                let (ks, vs) = sink_serdes(&sink, schema)?;
                s.to_with(topic, key_serde_for::<Row>(ks, window), vs);
            }
            Sink::Callback(f) => s.foreach(move |k: &Row, v: &Row| {
                f(SinkRow {
                    key: k.clone(),
                    window: None,
                    value: Some(v.clone()),
                })
            }),
        }
        Ok(())
    }

    fn write_table<K: KeyRow>(
        &mut self,
        t: KTable<K, Row>,
        schema: &Schema,
        window: Option<WindowType>,
        sink: Sink,
    ) -> Result<(), SqlError> {
        let s = t.to_stream();
        match sink {
            Sink::Topic { ref topic, .. } => {
                let (ks, vs) = sink_serdes(&sink, schema)?;
                s.to_with(topic, key_serde_for::<K>(ks, window), OptionSerde(vs));
            }
            Sink::Callback(f) => s.foreach(move |k: &K, v: &Option<Row>| {
                f(SinkRow {
                    key: k.row().clone(),
                    window: k.window(),
                    value: v.clone(),
                })
            }),
        }
        Ok(())
    }
}

/// The key and value serdes of a topic sink, once its formats are known to
/// carry the schema's columns.
fn sink_serdes(sink: &Sink, schema: &Schema) -> Result<(RowSerde, RowSerde), SqlError> {
    let Sink::Topic {
        key_format,
        value_format,
        wrap_single_value,
        ..
    } = sink
    else {
        return Err(SqlError::server("a callback sink has no serdes"));
    };
    key_format
        .check(&schema.key, "key")
        .map_err(SqlError::new)?;
    value_format
        .check(&schema.value, "value")
        .map_err(SqlError::new)?;
    Ok((
        RowSerde::new(*key_format, schema.key.clone(), false),
        RowSerde::new(*value_format, schema.value.clone(), *wrap_single_value),
    ))
}

/// The sink key serde of a (possibly windowed) key: `Windowed<Row>` keys
/// of windowed aggregations, or rows that end with their window's bounds
/// (queries over windowed sources).
fn key_serde_for<K: KeyRow>(ks: RowSerde, window: Option<WindowType>) -> Arc<dyn Serde<K>> {
    let as_row: Box<dyn std::any::Any> = Box::new(match window {
        None => Box::new(ks.clone()) as Box<dyn Serde<Row>>,
        Some(w) => Box::new(WindowedRowSerde {
            inner: ks.clone(),
            window: w,
        }) as Box<dyn Serde<Row>>,
    });
    if let Ok(b) = as_row.downcast::<Box<dyn Serde<K>>>() {
        return Arc::from(*b);
    }
    let windowed: Box<dyn std::any::Any> = match window {
        Some(WindowType::Session) => {
            Box::new(Box::new(WindowedSerde::session(ks)) as Box<dyn Serde<Windowed<Row>>>)
        }
        Some(WindowType::Time { size_ms }) => {
            Box::new(Box::new(WindowedSerde::time(ks, size_ms)) as Box<dyn Serde<Windowed<Row>>>)
        }
        None => Box::new(()),
    };
    match windowed.downcast::<Box<dyn Serde<K>>>() {
        Ok(b) => Arc::from(*b),
        Err(_) => Arc::new(NeverSerde),
    }
}

/// Only reached if a key type and its window disagree, which the planner
/// never builds; it refuses to write rather than panic.
struct NeverSerde;
impl<K> Serde<K> for NeverSerde {
    fn serialize(&self, _: &K) -> Serialized {
        Err(SerdeError("key type and window type disagree".into()))
    }
    fn deserialize(&self, _: Option<&[u8]>) -> Result<K, SerdeError> {
        Err(SerdeError("key type and window type disagree".into()))
    }
}

/// Re-keys a stream by a join expression unless it is keyed by it already.
fn rekey(
    s: KStream<Row, Row>,
    keyed: bool,
    by: Compiled,
    ks: Arc<dyn Serde<Row>>,
) -> KStream<Row, Row> {
    if keyed {
        return s;
    }
    s.select_key(move |_, v: &Row| vec![by.eval(v)])
        .with_serdes(ks, InternalSerde)
}

/// The column names a single-source query reads from its full rows, or
/// `None` when it may read every column (joins, `*`). A bare column in the
/// select list is not a read: a key column there is served from the record
/// key, a value column is named anyway. GROUP BY on bare columns only reads
/// them when it is not exactly a grouping by the key (which the planner
/// decides later), so its columns count as read.
fn reads_of(q: &Query, key: &[String]) -> Option<HashSet<String>> {
    if !q.joins.is_empty() || !q.partition_by.is_empty() {
        return None;
    }
    let mut names: Vec<Ident> = Vec::new();
    let mut bare: Vec<&Ident> = Vec::new();
    for item in &q.select {
        match item {
            SelectItem::Star { .. } => return None,
            SelectItem::Expr { expr, .. } => match &expr.kind {
                ExprKind::Column { name, .. } => bare.push(name),
                _ => columns_named(expr, &mut names),
            },
        }
    }
    // A column projected twice is read from the row the second time.
    for (i, b) in bare.iter().enumerate() {
        if bare[..i].iter().any(|x| x.name == b.name) {
            names.push((*b).clone());
        }
    }
    let by_key = q.group_by.len() == key.len()
        && q.group_by
            .iter()
            .zip(key)
            .all(|(g, k)| matches!(&g.kind, ExprKind::Column { name, .. } if name.name == *k));
    let groups = if by_key { &[][..] } else { &q.group_by[..] };
    for e in q.where_.iter().chain(q.having.iter()).chain(groups.iter()) {
        columns_named(e, &mut names);
    }
    Some(names.into_iter().map(|i| i.name).collect())
}

/// A column reference of a query (see [`col_refs_of`]).
struct ColRef {
    qualifier: Option<String>,
    name: String,
    /// In select item number `i`.
    select_item: Option<usize>,
    /// In the ON condition of join number `i`.
    join_on: Option<usize>,
    /// The select item the projection takes from a single join's key
    /// rather than from joined rows: a bare column that is a side of the
    /// join's equality, and the first item naming any column of it.
    join_key_item: bool,
}

impl ColRef {
    /// Whether this reference may name `c` (no qualifier: any source's).
    fn names(&self, c: &ScopeColumn) -> bool {
        self.name == c.name
            && self
                .qualifier
                .as_ref()
                .is_none_or(|q| c.qualifier.as_ref() == Some(q))
    }
}

/// Every column reference of a query, with qualifiers (`None` when it
/// selects `*`).
fn col_refs_of(q: &Query) -> Option<Vec<ColRef>> {
    let mut out = Vec::new();
    let push = |e: &Expr, select_item, join_on, out: &mut Vec<ColRef>| {
        let (mut names, mut quals) = (Vec::new(), Vec::new());
        collect_refs(e, &mut names, &mut quals);
        for (n, q) in names.into_iter().zip(quals) {
            out.push(ColRef {
                qualifier: q.map(|q| q.name),
                name: n.name,
                select_item,
                join_on,
                join_key_item: false,
            });
        }
    };
    for (i, item) in q.select.iter().enumerate() {
        match item {
            SelectItem::Star { .. } => return None,
            SelectItem::Expr { expr, .. } => push(expr, Some(i), None, &mut out),
        }
    }
    for e in q
        .where_
        .iter()
        .chain(q.having.iter())
        .chain(q.group_by.iter())
        .chain(q.partition_by.iter())
    {
        push(e, None, None, &mut out);
    }
    for (i, j) in q.joins.iter().enumerate() {
        push(&j.on, None, Some(i), &mut out);
    }
    // One join, and nothing after it changes the key: the first select
    // item naming a column of the condition, when it is one side of the
    // equality as a bare column, becomes the output key.
    if let ([j], true, true) = (
        q.joins.as_slice(),
        q.group_by.is_empty(),
        q.partition_by.is_empty(),
    ) {
        let on: Vec<(Option<String>, String)> = out
            .iter()
            .filter(|r| r.join_on == Some(0))
            .map(|r| (r.qualifier.clone(), r.name.clone()))
            .collect();
        let may_be_on = |r: &ColRef| {
            on.iter().any(|(q, n)| {
                *n == r.name && (q.is_none() || r.qualifier.is_none() || *q == r.qualifier)
            })
        };
        // References are in select order: the first match is the item's.
        let first = out
            .iter()
            .position(|r| r.select_item.is_some() && may_be_on(r));
        if let Some(i) = first {
            let item = match q.select.get(out[i].select_item.unwrap_or(usize::MAX)) {
                Some(SelectItem::Expr { expr, .. }) => bare_column(expr),
                _ => None,
            };
            let bare_side = match &j.on.kind {
                ExprKind::Binary { left, right, .. } => {
                    item.is_some() && (bare_column(left) == item || bare_column(right) == item)
                }
                _ => false,
            };
            out[i].join_key_item = bare_side;
        }
    }
    Some(out)
}

/// A bare column reference as (qualifier, name).
fn bare_column(e: &Expr) -> Option<(Option<&str>, &str)> {
    match &e.kind {
        ExprKind::Column { qualifier, name } => Some((
            qualifier.as_ref().map(|q| q.name.as_str()),
            name.name.as_str(),
        )),
        _ => None,
    }
}

fn collect_refs(e: &Expr, names: &mut Vec<Ident>, quals: &mut Vec<Option<Ident>>) {
    if let ExprKind::Column { qualifier, name } = &e.kind {
        names.push(name.clone());
        quals.push(qualifier.clone());
        return;
    }
    let mut e = e.clone();
    for_each_child(&mut e, &mut |c| collect_refs(c, names, quals));
}

type AggTable = KTable<Windowed<Row>, Row>;

fn window_aggregate(
    grouped: runnel_streams::KGroupedStream<Row, Row>,
    w: &WindowSpec,
    emit_final: bool,
    c1: Arc<Vec<AggCall>>,
    c2: Arc<Vec<AggCall>>,
    store: &str,
) -> Result<(AggTable, WindowType), SqlError> {
    let grace = w.grace.map_or(DEFAULT_GRACE_MS, |g| g.millis);
    match &w.kind {
        WindowKind::Tumbling { size } | WindowKind::Hopping { size, .. } => {
            if size.millis <= 0 {
                return Err(err(size.pos, "window size must be positive"));
            }
            let mut tw = TimeWindows::of(ms(size.millis)).grace(ms(grace));
            if let WindowKind::Hopping { advance, .. } = &w.kind {
                if advance.millis <= 0 || advance.millis > size.millis {
                    return Err(err(
                        advance.pos,
                        "ADVANCE BY must be positive and at most the window SIZE",
                    ));
                }
                tw = tw.advance_by(ms(advance.millis));
            }
            let mut ws = grouped.windowed_by(tw);
            if let Some(r) = &w.retention {
                if r.millis < size.millis + grace {
                    return Err(err(
                        r.pos,
                        format!(
                            "RETENTION must be at least the window size plus the grace period ({} ms)",
                            size.millis + grace
                        ),
                    ));
                }
                ws = ws.retention(ms(r.millis));
            }
            if emit_final {
                ws = ws.emit_final();
            }
            let t = ws.aggregate(
                move || agg_init(&c1),
                move |_, v: Row, acc: Row| agg_add(&c2, v, acc),
                InternalSerde,
                store,
            );
            Ok((
                t,
                WindowType::Time {
                    size_ms: size.millis,
                },
            ))
        }
        WindowKind::Session { gap } => {
            if gap.millis <= 0 {
                return Err(err(gap.pos, "session gap must be positive"));
            }
            let sw = SessionWindows::with_inactivity_gap(ms(gap.millis)).grace(ms(grace));
            let mut ws = grouped.windowed_by_session(sw);
            if emit_final {
                ws = ws.emit_final();
            }
            let c3 = c1.clone();
            let t = ws.aggregate(
                move || agg_init(&c1),
                move |_, v: Row, acc: Row| agg_add(&c2, v, acc),
                move |_, a: Row, b: Row| agg_merge(&c3, a, b),
                InternalSerde,
                store,
            );
            Ok((t, WindowType::Session))
        }
    }
}

/// The event time in a TIMESTAMP column: BIGINT milliseconds, a
/// TIMESTAMP, or a STRING parsed as an ISO timestamp.
fn event_time(v: Option<&Value>, _format: Option<&str>) -> Option<i64> {
    match v? {
        Value::BigInt(ms) => Some(*ms),
        Value::Int(ms) => Some(i64::from(*ms)),
        Value::Timestamp(ms) => Some(*ms),
        Value::String(s) => crate::cast::parse_timestamp(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::BinaryOp;

    fn s(x: &str) -> Value {
        Value::String(x.to_string())
    }

    fn times_two(slot: usize) -> Compiled {
        Compiled::Arith(
            BinaryOp::Mul,
            Box::new(Compiled::Column(slot)),
            Box::new(Compiled::Const(Value::BigInt(2))),
            SqlType::BigInt,
        )
    }

    #[test]
    fn an_in_place_projection_moves_columns_and_computes_the_rest() {
        // [key, user, amount, rowtime] -> [user, amount * 2, key]
        let p = OwnedProjection::new(&[Compiled::Column(1), times_two(2), Compiled::Column(0)]);
        assert!(!p.in_place, "slot 0 moves to position 2: not in place");
        let row = vec![s("k1"), s("u1"), Value::BigInt(21), Value::BigInt(7)];
        assert_eq!(p.apply(row), vec![s("u1"), Value::BigInt(42), s("k1")]);

        // [key, user, amount, rowtime] -> [user, amount * 2, rowtime]
        let p = OwnedProjection::new(&[Compiled::Column(1), times_two(2), Compiled::Column(3)]);
        assert!(p.in_place);
        let row = vec![s("k1"), s("u1"), Value::BigInt(21), Value::BigInt(7)];
        assert_eq!(
            p.apply(row),
            vec![s("u1"), Value::BigInt(42), Value::BigInt(7)]
        );
        // NULL in, NULL out; a short row takes the general path.
        let row = vec![Value::Null, Value::Null, Value::Null, Value::Null];
        assert_eq!(p.apply(row), vec![Value::Null; 3]);
        assert_eq!(
            p.apply(vec![Value::Null, s("u2")]),
            vec![s("u2"), Value::Null, Value::Null]
        );
    }

    #[test]
    fn source_table_rows_read_back_from_either_encoding() {
        let cols = vec![
            Column::new("NAME", SqlType::String),
            Column::new("N", SqlType::BigInt),
        ];
        let serde = SourceTableSerde {
            width: 2,
            topic: RowSerde::new(Format::JSON, cols, true),
        };
        let row = vec![s("x"), Value::BigInt(3)];
        let stored = serde.serialize(&row).unwrap().unwrap();
        assert_eq!(stored, InternalSerde.serialize(&row).unwrap().unwrap());
        assert_eq!(serde.deserialize(Some(&stored)).unwrap(), row);
        // What an earlier build stored: the topic's JSON.
        let old = br#"{"NAME":"x","N":3}"#;
        assert_eq!(serde.deserialize(Some(old)).unwrap(), row);
    }

    #[test]
    fn a_column_projected_twice_is_copied_not_moved() {
        // Both copies count as computed: more than one, so the general path.
        let p = OwnedProjection::new(&[Compiled::Column(1), Compiled::Column(1), times_two(0)]);
        assert!(!p.in_place);
        let row = vec![Value::BigInt(5), s("x"), Value::Null];
        assert_eq!(p.apply(row), vec![s("x"), s("x"), Value::BigInt(10)]);
    }

    #[test]
    fn more_than_one_computed_output_takes_the_general_path() {
        let p = OwnedProjection::new(&[times_two(0), times_two(0), Compiled::Column(2)]);
        assert!(!p.in_place);
        let row = vec![Value::BigInt(3), Value::Null, s("z")];
        assert_eq!(
            p.apply(row),
            vec![Value::BigInt(6), Value::BigInt(6), s("z")]
        );
    }

    fn agg_call(name: &str, args: &[SqlType]) -> AggCall {
        let registry = FunctionRegistry::builtin();
        let types: Vec<Option<SqlType>> = args.iter().cloned().map(Some).collect();
        let f = registry.aggregate(name).expect("a built-in aggregate");
        AggCall {
            agg: Arc::from(f.bind(&types, &[]).expect("valid arguments")),
            args: (0..args.len()).map(Compiled::Column).collect(),
        }
    }

    #[test]
    fn aggregate_results_replace_their_accumulators_in_place() {
        let calls = Arc::new(vec![
            agg_call("COUNT", &[]),
            agg_call("AVG", &[SqlType::BigInt]),
        ]);
        let folded = |xs: &[i64]| {
            xs.iter().fold(agg_init(&calls), |acc, x| {
                agg_add(&calls, vec![Value::BigInt(*x)], acc)
            })
        };
        let key = vec![s("k")];
        // One group column; outputs [COUNT(*), AVG(x)]: the key carries
        // the group, the results replace the accumulators.
        let direct = DirectPost::new(&[Compiled::Column(1), Compiled::Column(2)], 1, 2)
            .expect("plain columns");
        assert!(direct.results_only);
        // AVG's result is computed from its accumulator: a step remains.
        assert!(!direct.is_identity(&calls));
        let acc = folded(&[4, 8]);
        let buffer = acc.as_ptr();
        let out = direct.apply_owned(&key, None, acc, &calls);
        assert_eq!(out, vec![Value::BigInt(2), Value::Double(6.0)]);
        assert_eq!(out.as_ptr(), buffer, "the accumulator row is reused");

        // Outputs [group, AVG(x), COUNT(*)]: built from key and accumulators.
        let direct = DirectPost::new(
            &[
                Compiled::Column(0),
                Compiled::Column(2),
                Compiled::Column(1),
            ],
            1,
            2,
        )
        .expect("plain columns");
        assert!(!direct.results_only);
        assert_eq!(
            direct.apply_owned(&key, None, folded(&[3]), &calls),
            vec![s("k"), Value::Double(3.0), Value::BigInt(1)]
        );
    }

    #[test]
    fn results_that_are_their_accumulators_need_no_step() {
        let calls = Arc::new(vec![
            agg_call("COUNT", &[]),
            agg_call("SUM", &[SqlType::BigInt]),
            agg_call("MAX", &[SqlType::BigInt]),
        ]);
        let all = [
            Compiled::Column(1),
            Compiled::Column(2),
            Compiled::Column(3),
        ];
        let direct = DirectPost::new(&all, 1, 3).expect("plain columns");
        assert!(direct.is_identity(&calls));
        // The accumulator row is then the output as it is.
        let acc = [5, 9].iter().fold(agg_init(&calls), |acc, x| {
            agg_add(&calls, vec![Value::BigInt(*x)], acc)
        });
        assert_eq!(
            acc,
            vec![Value::BigInt(2), Value::BigInt(14), Value::BigInt(9)]
        );
        assert_eq!(
            direct.apply_owned(&vec![s("k")], None, acc.clone(), &calls),
            acc
        );
        // Reordered outputs, or a group column among them, are not.
        let reordered = [
            Compiled::Column(2),
            Compiled::Column(1),
            Compiled::Column(3),
        ];
        assert!(!DirectPost::new(&reordered, 1, 3)
            .expect("plain columns")
            .is_identity(&calls));
        let with_group = [Compiled::Column(0), Compiled::Column(1)];
        assert!(!DirectPost::new(&with_group, 1, 1)
            .expect("plain columns")
            .is_identity(&calls[..1]));
    }
}
