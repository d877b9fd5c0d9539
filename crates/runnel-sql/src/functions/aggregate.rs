//! Aggregate functions: COUNT, SUM, AVG, MIN, MAX, COLLECT_LIST, TOPK, …
//!
//! An aggregate is an [`AggFn`]: a name, a signature text, a description and
//! a binder that looks at the argument types (and the evaluated literal
//! parameters such as TOPK's k) and builds an [`Agg`], the bound aggregator.
//! An [`Agg`] is made of closures over a plain [`Value`] accumulator:
//! `add` (required), and optionally `undo`, `merge` and `result`.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use super::*;

const CAT: &str = "AGGREGATE";

/// How many values COLLECT_LIST, COLLECT_SET and HISTOGRAM keep, as
/// ksqlDB's default `ksql.functions.*.limit`.
const COLLECT_LIMIT: usize = 1000;

/// Builds an aggregator from argument types and literal parameters; an
/// `Err` says why the arguments are not accepted.
pub type Binder = fn(&[Ty], &[Value]) -> Result<Agg, ArgumentError>;

/// A binder of an aggregate that keeps at most a number of values
/// (`ksql.functions.<name>.limit`, [`COLLECT_LIMIT`] by default).
pub type LimitedBinder = fn(&[Ty], &[Value], usize) -> Result<Agg, ArgumentError>;

#[derive(Clone, Copy)]
enum Bind {
    Plain(Binder),
    Limited(LimitedBinder),
}

/// An aggregate function made of a binder (the builder behind every
/// built-in aggregate, as [`Scalar`] is for scalars).
pub struct AggFn {
    info: FunctionInfo,
    bind: Bind,
    params: fn(usize) -> usize,
    intermediate: Intermediate,
}

impl AggFn {
    pub fn new(
        name: &'static str,
        signature: &'static str,
        description: &'static str,
        bind: Binder,
    ) -> AggFn {
        AggFn::with(name, signature, description, Bind::Plain(bind))
    }

    /// An aggregate keeping at most `ksql.functions.<name>.limit` values.
    pub fn limited(
        name: &'static str,
        signature: &'static str,
        description: &'static str,
        bind: LimitedBinder,
    ) -> AggFn {
        AggFn::with(name, signature, description, Bind::Limited(bind))
    }

    fn with(
        name: &'static str,
        signature: &'static str,
        description: &'static str,
        bind: Bind,
    ) -> AggFn {
        AggFn {
            info: FunctionInfo {
                name,
                kind: FunctionKind::Aggregate,
                category: CAT,
                description,
                signature,
            },
            bind,
            params: |_| 0,
            intermediate: Intermediate::Plain,
        }
    }

    /// The shape of the state it keeps between rows (ksqlDB's
    /// intermediate type).
    pub fn keeps(mut self, intermediate: Intermediate) -> AggFn {
        self.intermediate = intermediate;
        self
    }

    /// How many trailing arguments (of the total) are literal parameters.
    pub fn params(mut self, f: fn(usize) -> usize) -> AggFn {
        self.params = f;
        self
    }
}

impl AggregateFunction for AggFn {
    fn info(&self) -> FunctionInfo {
        self.info.clone()
    }

    fn bind(
        &self,
        args: &[Ty],
        params: &[Value],
        settings: FunctionSettings<'_>,
    ) -> Result<Box<dyn Aggregator>, FunctionError> {
        let bound = match self.bind {
            Bind::Plain(bind) => bind(args, params),
            Bind::Limited(bind) => bind(
                args,
                params,
                settings.limit(self.info.name).unwrap_or(COLLECT_LIMIT),
            ),
        };
        match bound {
            Ok(a) => Ok(Box::new(a)),
            Err(why) => {
                let mut all: Vec<Ty> = args.to_vec();
                all.extend(params.iter().map(Value::type_of));
                Err(FunctionError::BadArguments {
                    name: self.info.name.to_string(),
                    args: type_list(&all),
                    expected: format!("{why}; expected {}", self.info.signature),
                })
            }
        }
    }

    fn literal_params(&self, total_args: usize) -> usize {
        (self.params)(total_args)
    }

    fn intermediate(&self) -> Intermediate {
        self.intermediate
    }
}

type Step = Box<dyn Fn(Value, &[Value]) -> Value + Send + Sync>;

/// Why an aggregate's binder refused its arguments; becomes the reason in
/// [`FunctionError::BadArguments`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArgumentError(pub String);

impl From<&str> for ArgumentError {
    fn from(s: &str) -> Self {
        ArgumentError(s.to_string())
    }
}
type Finish = Box<dyn Fn(&Value) -> Value + Send + Sync>;
type Merge = Box<dyn Fn(Value, Value) -> Value + Send + Sync>;

/// A bound aggregate made of closures over its accumulator.
pub struct Agg {
    ret: SqlType,
    init: Value,
    add: Step,
    undo: Option<Step>,
    result: Option<Finish>,
    merge: Option<Merge>,
}

impl Agg {
    /// An aggregate returning `ret`, starting at `init`, folding rows with
    /// `add`; its result is the accumulator itself unless [`Agg::result`]
    /// says otherwise.
    pub fn new(
        ret: SqlType,
        init: Value,
        add: impl Fn(Value, &[Value]) -> Value + Send + Sync + 'static,
    ) -> Agg {
        Agg {
            ret,
            init,
            add: Box::new(add),
            undo: None,
            result: None,
            merge: None,
        }
    }
    pub fn undo(mut self, f: impl Fn(Value, &[Value]) -> Value + Send + Sync + 'static) -> Agg {
        self.undo = Some(Box::new(f));
        self
    }
    pub fn result(mut self, f: impl Fn(&Value) -> Value + Send + Sync + 'static) -> Agg {
        self.result = Some(Box::new(f));
        self
    }
    pub fn merge(mut self, f: impl Fn(Value, Value) -> Value + Send + Sync + 'static) -> Agg {
        self.merge = Some(Box::new(f));
        self
    }
}

impl Aggregator for Agg {
    fn return_type(&self) -> SqlType {
        self.ret.clone()
    }
    fn initial(&self) -> Value {
        self.init.clone()
    }
    fn add(&self, acc: Value, args: &[Value]) -> Value {
        (self.add)(acc, args)
    }
    fn undo(&self, acc: Value, args: &[Value]) -> Option<Value> {
        self.undo.as_ref().map(|f| f(acc, args))
    }
    fn result(&self, acc: &Value) -> Value {
        match &self.result {
            Some(f) => f(acc),
            None => acc.clone(),
        }
    }
    fn result_is_acc(&self) -> bool {
        self.result.is_none()
    }
    fn merge(&self, a: Value, b: Value) -> Option<Value> {
        self.merge.as_ref().map(|f| f(a, b))
    }
}

// ---------------------------------------------------------------------------
// Helpers

/// The single column argument's concrete type.
fn one_arg(args: &[Ty]) -> Result<SqlType, ArgumentError> {
    match args {
        [Some(t)] => Ok(t.clone()),
        [None] => Err("the argument's type is unknown (a NULL literal)".into()),
        _ => Err(ArgumentError(format!(
            "takes one column, got {}",
            args.len()
        ))),
    }
}

fn numeric_arg(args: &[Ty]) -> Result<SqlType, ArgumentError> {
    let t = one_arg(args)?;
    if t.is_numeric() {
        Ok(t)
    } else {
        Err(ArgumentError(format!("{t} is not a number")))
    }
}

fn no_params(params: &[Value]) -> Result<(), ArgumentError> {
    if params.is_empty() {
        Ok(())
    } else {
        Err("takes no literal parameters".into())
    }
}

/// Comparable with MIN, MAX and TOPK.
fn is_orderable(t: &SqlType) -> bool {
    t.is_numeric()
        || matches!(
            t,
            SqlType::String | SqlType::Bytes | SqlType::Date | SqlType::Time | SqlType::Timestamp
        )
}

/// The zero of a numeric type.
fn zero(t: &SqlType) -> Value {
    match t {
        SqlType::Int => Value::Int(0),
        SqlType::BigInt => Value::BigInt(0),
        SqlType::Decimal { .. } => Value::Decimal(Decimal::ZERO),
        _ => Value::Double(0.0),
    }
}

/// `acc + v` (or `acc - v`), keeping the accumulator's kind. Integers wrap
/// as in Java; a decimal overflow leaves the accumulator unchanged.
fn num_add(acc: &Value, v: &Value, negate: bool) -> Value {
    match acc {
        Value::Int(a) => {
            let b = v.as_i64().unwrap_or(0) as i32;
            Value::Int(if negate {
                a.wrapping_sub(b)
            } else {
                a.wrapping_add(b)
            })
        }
        Value::BigInt(a) => {
            let b = v.as_i64().unwrap_or(0);
            Value::BigInt(if negate {
                a.wrapping_sub(b)
            } else {
                a.wrapping_add(b)
            })
        }
        Value::Decimal(a) => {
            let b = v.as_decimal().unwrap_or(Decimal::ZERO);
            let r = if negate {
                a.checked_sub(b)
            } else {
                a.checked_add(b)
            };
            Value::Decimal(r.unwrap_or(*a))
        }
        other => {
            let a = other.as_f64().unwrap_or(0.0);
            let b = v.as_f64().unwrap_or(0.0);
            Value::Double(if negate { a - b } else { a + b })
        }
    }
}

/// A field of a STRUCT accumulator (NULL when missing).
fn field<'a>(acc: &'a Value, name: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    match acc {
        Value::Struct(fs) => fs.iter().find(|(n, _)| n == name).map_or(&NULL, |(_, v)| v),
        _ => &NULL,
    }
}

fn fnum(acc: &Value, name: &str) -> f64 {
    field(acc, name).as_f64().unwrap_or(0.0)
}

fn fint(acc: &Value, name: &str) -> i64 {
    field(acc, name).as_i64().unwrap_or(0)
}

fn into_array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        _ => Vec::new(),
    }
}

fn into_map(v: Value) -> Vec<(Value, Value)> {
    match v {
        Value::Map(m) => m,
        _ => Vec::new(),
    }
}

fn first(args: &[Value]) -> &Value {
    arg(args, 0)
}

/// An integer literal parameter ≥ 1.
fn positive_param(v: &Value, what: &str) -> Result<usize, ArgumentError> {
    match v.as_i64() {
        Some(n) if n >= 1 => {
            usize::try_from(n).map_err(|_| ArgumentError(format!("{what} is too large")))
        }
        Some(n) => Err(ArgumentError(format!("{what} must be at least 1, got {n}"))),
        None => Err(ArgumentError(format!("{what} must be an INTEGER literal"))),
    }
}

// ---------------------------------------------------------------------------

pub(super) fn register(r: &mut FunctionRegistry) {
    for f in [
        AggFn::new(
            "COUNT",
            "COUNT(*) -> BIGINT, COUNT(col) -> BIGINT",
            "Counts rows (COUNT(*)) or the rows where `col` is not NULL.",
            bind_count,
        ),
        AggFn::new(
            "SUM",
            "SUM(INT) -> INT, SUM(BIGINT) -> BIGINT, SUM(DOUBLE) -> DOUBLE, SUM(DECIMAL) -> DECIMAL",
            "Sums the non-null values of `col` (0 when there are none).",
            bind_sum,
        ),
        AggFn::new(
            "AVG",
            "AVG(INT | BIGINT | DOUBLE | DECIMAL) -> DOUBLE",
            "Averages the non-null values of `col` (0.0 when there are none).",
            bind_avg,
        )
        .keeps(Intermediate::Struct),
        AggFn::new(
            "MIN",
            "MIN(number | STRING | BYTES | DATE | TIME | TIMESTAMP) -> same type",
            "The smallest non-null value of `col`.",
            |a, p| bind_extreme(a, p, Ordering::Less),
        ),
        AggFn::new(
            "MAX",
            "MAX(number | STRING | BYTES | DATE | TIME | TIMESTAMP) -> same type",
            "The largest non-null value of `col`.",
            |a, p| bind_extreme(a, p, Ordering::Greater),
        ),
        AggFn::new(
            "COUNT_DISTINCT",
            "COUNT_DISTINCT(col) -> BIGINT",
            "Counts the distinct non-null values of `col` (exactly, where ksqlDB estimates).",
            bind_count_distinct,
        )
        .keeps(Intermediate::Array),
        AggFn::limited(
            "COLLECT_LIST",
            "COLLECT_LIST(col) -> ARRAY",
            "An array of the values of `col` in arrival order (at most 1000 values).",
            bind_collect_list,
        )
        .keeps(Intermediate::Array),
        AggFn::limited(
            "COLLECT_SET",
            "COLLECT_SET(col) -> ARRAY",
            "An array of the distinct values of `col` in order of first arrival (at most 1000).",
            bind_collect_set,
        )
        .keeps(Intermediate::Array),
        AggFn::new(
            "EARLIEST_BY_OFFSET",
            "EARLIEST_BY_OFFSET(col [, ignoreNulls]) -> type of col, \
             EARLIEST_BY_OFFSET(col, n [, ignoreNulls]) -> ARRAY",
            "The value of `col` with the earliest offset, or the n earliest as an array; NULLs \
             are skipped unless ignoreNulls is false.",
            |a, p| bind_by_offset(a, p, true),
        )
        .params(|n| n.saturating_sub(1))
        .keeps(Intermediate::Struct),
        AggFn::new(
            "LATEST_BY_OFFSET",
            "LATEST_BY_OFFSET(col [, ignoreNulls]) -> type of col, \
             LATEST_BY_OFFSET(col, n [, ignoreNulls]) -> ARRAY",
            "The value of `col` with the latest offset, or the n latest as an array (oldest \
             first); NULLs are skipped unless ignoreNulls is false.",
            |a, p| bind_by_offset(a, p, false),
        )
        .params(|n| n.saturating_sub(1))
        .keeps(Intermediate::Struct),
        AggFn::new(
            "TOPK",
            "TOPK(col, k) -> ARRAY, TOPK(sort_col, col0, …, k) -> ARRAY<STRUCT>",
            "The k largest non-null values of `col`, largest first; with more columns, the k \
             rows with the largest `sort_col` as structs of `sort_col`, `col0`, ….",
            |a, p| bind_topk(a, p, false),
        )
        .params(|n| usize::from(n >= 2))
        .keeps(Intermediate::Array),
        AggFn::new(
            "TOPKDISTINCT",
            "TOPKDISTINCT(col, k) -> ARRAY",
            "The k largest distinct non-null values of `col`, largest first.",
            |a, p| bind_topk(a, p, true),
        )
        .params(|n| usize::from(n >= 2))
        .keeps(Intermediate::Array),
        AggFn::new(
            "SUM_LIST",
            "SUM_LIST(ARRAY<INT | BIGINT | DOUBLE>) -> INT | BIGINT | DOUBLE",
            "The sum of every non-null element of the arrays.",
            bind_sum_list,
        ),
        AggFn::new(
            "ATTR",
            "ATTR(col) -> type of col",
            "The one value `col` takes (NULL counts as a value); NULL when it takes more \
             than one.",
            bind_attr,
        ),
        AggFn::new(
            "HISTOGRAM",
            "HISTOGRAM(STRING) -> MAP<STRING, BIGINT>",
            "How many times each non-null value of `col` occurs (at most 1000 distinct values).",
            bind_histogram,
        )
        .keeps(Intermediate::Map),
        AggFn::new(
            "STDDEV_SAMP",
            "STDDEV_SAMP(INT | BIGINT | DOUBLE | DECIMAL) -> DOUBLE",
            "The sample standard deviation of the non-null values of `col` (0.0 for fewer \
             than two values).",
            |a, p| bind_stddev(a, p, true),
        )
        .keeps(Intermediate::Struct),
        AggFn::new(
            "STDDEV_SAMPLE",
            "STDDEV_SAMPLE(INT | BIGINT | DOUBLE | DECIMAL) -> DOUBLE",
            "The sample standard deviation, as STDDEV_SAMP (ksqlDB added this name because its \
             STDDEV_SAMP returns the variance; Runnel's returns the deviation under both).",
            |a, p| bind_stddev(a, p, true),
        )
        .keeps(Intermediate::Struct),
        AggFn::new(
            "STDDEV_POP",
            "STDDEV_POP(INT | BIGINT | DOUBLE | DECIMAL) -> DOUBLE",
            "The population standard deviation of the non-null values of `col` (0.0 when \
             there are none).",
            |a, p| bind_stddev(a, p, false),
        )
        .keeps(Intermediate::Struct),
        AggFn::new(
            "CORRELATION",
            "CORRELATION(x, y) -> DOUBLE",
            "The Pearson correlation coefficient of the rows where both `x` and `y` are not \
             NULL (NaN for fewer than two rows).",
            bind_correlation,
        )
        .keeps(Intermediate::Struct),
    ] {
        r.register_aggregate(Box::new(f));
    }
}

fn bind_count(args: &[Ty], params: &[Value]) -> Result<Agg, ArgumentError> {
    no_params(params)?;
    if args.len() > 1 {
        return Err(ArgumentError(format!(
            "takes * or one column, got {}",
            args.len()
        )));
    }
    let counts = |args: &[Value]| args.is_empty() || !first(args).is_null();
    // The old count is a number: dropped with `discard`, no drop glue.
    Ok(Agg::new(SqlType::BigInt, Value::BigInt(0), move |acc, a| {
        if counts(a) {
            let n = acc.as_i64().unwrap_or(0);
            acc.discard();
            Value::BigInt(n.wrapping_add(1))
        } else {
            acc
        }
    })
    .undo(move |acc, a| {
        if counts(a) {
            let n = acc.as_i64().unwrap_or(0);
            acc.discard();
            Value::BigInt(n.wrapping_sub(1))
        } else {
            acc
        }
    })
    .merge(|a, b| {
        Value::BigInt(
            a.as_i64()
                .unwrap_or(0)
                .wrapping_add(b.as_i64().unwrap_or(0)),
        )
    }))
}

fn bind_sum(args: &[Ty], params: &[Value]) -> Result<Agg, ArgumentError> {
    no_params(params)?;
    let t = numeric_arg(args)?;
    let step = |negate: bool| {
        move |acc: Value, a: &[Value]| {
            let v = first(a);
            if v.is_null() {
                acc
            } else {
                num_add(&acc, v, negate)
            }
        }
    };
    Ok(Agg::new(t.clone(), zero(&t), step(false))
        .undo(step(true))
        .merge(|a, b| num_add(&a, &b, false)))
}

fn bind_sum_list(args: &[Ty], params: &[Value]) -> Result<Agg, ArgumentError> {
    no_params(params)?;
    let t = match one_arg(args)? {
        SqlType::Array(e) if matches!(*e, SqlType::Int | SqlType::BigInt | SqlType::Double) => *e,
        other => {
            return Err(ArgumentError(format!(
                "sums arrays of numbers, not {other}"
            )))
        }
    };
    let step = |negate: bool| {
        move |acc: Value, a: &[Value]| match first(a) {
            Value::Array(items) => items
                .iter()
                .filter(|v| !v.is_null())
                .fold(acc, |acc, v| num_add(&acc, v, negate)),
            _ => acc,
        }
    };
    Ok(Agg::new(t.clone(), zero(&t), step(false))
        .undo(step(true))
        .merge(|a, b| num_add(&a, &b, false)))
}

/// ATTR's accumulator: each value seen (NULL too) with how many rows hold
/// it, so that a table's undo can take a value back.
fn bind_attr(args: &[Ty], params: &[Value]) -> Result<Agg, ArgumentError> {
    no_params(params)?;
    let t = one_arg(args)?;
    let entry = |v: Value, n: i64| {
        Value::Struct(vec![
            ("VALUE".to_string(), v),
            ("COUNT".to_string(), Value::BigInt(n)),
        ])
    };
    let bump = move |acc: Value, v: &Value, by: i64| {
        let mut list = into_array(acc);
        match list.iter_mut().find(|e| field(e, "VALUE") == v) {
            Some(e) => *e = entry(v.clone(), fint(e, "COUNT") + by),
            None => list.push(entry(v.clone(), by)),
        }
        list.retain(|e| fint(e, "COUNT") > 0);
        Value::Array(list)
    };
    Ok(Agg::new(t, Value::Array(Vec::new()), move |acc, a| {
        bump(acc, first(a), 1)
    })
    .undo(move |acc, a| bump(acc, first(a), -1))
    .merge(move |a, b| {
        into_array(b).into_iter().fold(a, |acc, e| {
            let n = fint(&e, "COUNT");
            bump(acc, field(&e, "VALUE"), n)
        })
    })
    .result(|acc| match acc {
        Value::Array(list) if list.len() == 1 => field(&list[0], "VALUE").clone(),
        _ => Value::Null,
    }))
}

fn bind_avg(args: &[Ty], params: &[Value]) -> Result<Agg, ArgumentError> {
    no_params(params)?;
    let t = numeric_arg(args)?;
    // The running sum keeps exact kinds: BIGINT for integers, DECIMAL, DOUBLE.
    let sum_zero = match t {
        SqlType::Int | SqlType::BigInt => Value::BigInt(0),
        ref other => zero(other),
    };
    let state = |sum: Value, count: i64| {
        Value::Struct(vec![
            ("SUM".to_string(), sum),
            ("COUNT".to_string(), Value::BigInt(count)),
        ])
    };
    let step = move |negate: bool| {
        move |acc: Value, a: &[Value]| {
            let v = first(a);
            if v.is_null() {
                return acc;
            }
            let sum = num_add(field(&acc, "SUM"), v, negate);
            let count = fint(&acc, "COUNT") + if negate { -1 } else { 1 };
            state(sum, count)
        }
    };
    Ok(Agg::new(SqlType::Double, state(sum_zero, 0), step(false))
        .undo(step(true))
        .merge(move |a, b| {
            state(
                num_add(field(&a, "SUM"), field(&b, "SUM"), false),
                fint(&a, "COUNT") + fint(&b, "COUNT"),
            )
        })
        .result(|acc| {
            let count = fint(acc, "COUNT");
            if count == 0 {
                return Value::Double(0.0);
            }
            Value::Double(fnum(acc, "SUM") / count as f64)
        }))
}

fn bind_extreme(args: &[Ty], params: &[Value], want: Ordering) -> Result<Agg, ArgumentError> {
    no_params(params)?;
    let t = one_arg(args)?;
    if !is_orderable(&t) {
        return Err(ArgumentError(format!("{t} values cannot be ordered")));
    }
    let pick = move |acc: Value, v: &Value| {
        if v.is_null() || (!acc.is_null() && v.sql_cmp(&acc) != Some(want)) {
            acc
        } else {
            v.clone()
        }
    };
    Ok(Agg::new(t, Value::Null, move |acc, a| pick(acc, first(a))).merge(move |a, b| pick(a, &b)))
}

/// Inserts `v` into a sorted, duplicate-free vector.
fn insert_sorted(set: &mut Vec<Value>, v: Value) {
    if let Err(i) = set.binary_search(&v) {
        set.insert(i, v);
    }
}

fn bind_count_distinct(args: &[Ty], params: &[Value]) -> Result<Agg, ArgumentError> {
    no_params(params)?;
    let t = one_arg(args)?;
    if !is_primitive(&Some(t.clone())) {
        return Err(ArgumentError(format!("{t} is not a primitive type")));
    }
    Ok(
        Agg::new(SqlType::BigInt, Value::Array(Vec::new()), |acc, a| {
            let v = first(a);
            if v.is_null() {
                return acc;
            }
            let mut set = into_array(acc);
            insert_sorted(&mut set, v.clone());
            Value::Array(set)
        })
        .merge(|a, b| {
            let mut set = into_array(a);
            for v in into_array(b) {
                insert_sorted(&mut set, v);
            }
            Value::Array(set)
        })
        .result(|acc| Value::BigInt(array_of(acc).map_or(0, |a| a.len() as i64))),
    )
}

fn bind_collect_list(args: &[Ty], params: &[Value], limit: usize) -> Result<Agg, ArgumentError> {
    no_params(params)?;
    let t = one_arg(args)?;
    Ok(Agg::new(
        SqlType::Array(Box::new(t)),
        Value::Array(Vec::new()),
        move |acc, a| {
            let mut list = into_array(acc);
            if list.len() < limit {
                list.push(first(a).clone());
            }
            Value::Array(list)
        },
    )
    .undo(|acc, a| {
        let mut list = into_array(acc);
        if let Some(i) = list.iter().rposition(|x| x == first(a)) {
            list.remove(i);
        }
        Value::Array(list)
    })
    .merge(move |a, b| {
        let mut list = into_array(a);
        list.extend(into_array(b));
        list.truncate(limit);
        Value::Array(list)
    }))
}

fn bind_collect_set(args: &[Ty], params: &[Value], limit: usize) -> Result<Agg, ArgumentError> {
    no_params(params)?;
    let t = one_arg(args)?;
    let push = move |list: &mut Vec<Value>, v: Value| {
        // Maps are equal whatever the order of their entries.
        if list.len() < limit && !list.iter().any(|x| x.sql_eq(&v)) {
            list.push(v);
        }
    };
    Ok(Agg::new(
        SqlType::Array(Box::new(t)),
        Value::Array(Vec::new()),
        move |acc, a| {
            let mut list = into_array(acc);
            push(&mut list, first(a).clone());
            Value::Array(list)
        },
    )
    .merge(move |a, b| {
        let mut list = into_array(a);
        for v in into_array(b) {
            push(&mut list, v);
        }
        Value::Array(list)
    }))
}

fn bind_by_offset(args: &[Ty], params: &[Value], earliest: bool) -> Result<Agg, ArgumentError> {
    let t = one_arg(args)?;
    let (n, ignore_nulls) = match params {
        [] => (None, true),
        [Value::Boolean(b)] => (None, *b),
        [n] => (Some(positive_param(n, "n")?), true),
        [n, Value::Boolean(b)] => (Some(positive_param(n, "n")?), *b),
        [_, _] => return Err("ignoreNulls must be a BOOLEAN literal".into()),
        _ => return Err("takes at most n and ignoreNulls as parameters".into()),
    };
    let keep = n.unwrap_or(1);
    // The accumulator is the array of kept values, oldest first.
    let fold = move |list: &mut Vec<Value>, v: Value| {
        if earliest {
            if list.len() < keep {
                list.push(v);
            }
        } else {
            list.push(v);
            if list.len() > keep {
                list.remove(0);
            }
        }
    };
    let agg = Agg::new(
        match n {
            Some(_) => SqlType::Array(Box::new(t.clone())),
            None => t,
        },
        Value::Array(Vec::new()),
        move |acc, a| {
            let v = first(a);
            if ignore_nulls && v.is_null() {
                return acc;
            }
            let mut list = into_array(acc);
            fold(&mut list, v.clone());
            Value::Array(list)
        },
    )
    .merge(move |a, b| {
        let mut list = into_array(a);
        for v in into_array(b) {
            fold(&mut list, v);
        }
        Value::Array(list)
    });
    Ok(if n.is_some() {
        agg
    } else {
        agg.result(|acc| {
            array_of(acc)
                .ok()
                .and_then(|a| a.first().cloned())
                .unwrap_or_default()
        })
    })
}

fn bind_topk(args: &[Ty], params: &[Value], distinct: bool) -> Result<Agg, ArgumentError> {
    if !distinct && args.len() > 1 {
        return bind_topk_with(args, params);
    }
    let t = one_arg(args)?;
    if !is_orderable(&t) {
        return Err(ArgumentError(format!("{t} values cannot be ordered")));
    }
    let k = k_param(params)?;
    Ok(top_k(
        SqlType::Array(Box::new(t)),
        k,
        distinct,
        |v: &Value| v.clone(),
        |a: &[Value]| first(a).clone(),
    ))
}

/// TOPK(sort_col, col0, col1, …, k): the k rows with the largest
/// non-null `sort_col`, largest first (ties in arrival order), each a
/// STRUCT of `sort_col`, `col0`, `col1`….
fn bind_topk_with(args: &[Ty], params: &[Value]) -> Result<Agg, ArgumentError> {
    let mut fields = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        let Some(t) = a else {
            return Err("an argument's type is unknown (a NULL literal)".into());
        };
        let name = if i == 0 {
            "sort_col".to_string()
        } else {
            format!("col{}", i - 1)
        };
        fields.push((name, t.clone()));
    }
    if !is_orderable(&fields[0].1) {
        return Err(ArgumentError(format!(
            "{} values cannot be ordered",
            fields[0].1
        )));
    }
    let k = k_param(params)?;
    let names: Vec<String> = fields.iter().map(|(n, _)| n.clone()).collect();
    Ok(top_k(
        SqlType::Array(Box::new(SqlType::Struct(fields))),
        k,
        false,
        |v: &Value| match v {
            Value::Struct(f) => f.first().map(|(_, v)| v.clone()).unwrap_or_default(),
            _ => Value::Null,
        },
        move |a: &[Value]| Value::Struct(names.iter().cloned().zip(a.iter().cloned()).collect()),
    ))
}

fn k_param(params: &[Value]) -> Result<usize, ArgumentError> {
    match params {
        [k] => positive_param(k, "k"),
        _ => Err("needs k, the number of values to keep".into()),
    }
}

/// The k entries (`entry_of` a row's arguments) with the largest non-null
/// `key_of`, largest first, ties in arrival order; `distinct` keeps equal
/// entries once.
fn top_k(
    ret: SqlType,
    k: usize,
    distinct: bool,
    key_of: fn(&Value) -> Value,
    entry_of: impl Fn(&[Value]) -> Value + Send + Sync + 'static,
) -> Agg {
    let fold = move |list: &mut Vec<Value>, entry: Value| {
        let key = key_of(&entry);
        if key.is_null() || (distinct && list.contains(&entry)) {
            return;
        }
        let at = list.partition_point(|x| key_of(x).total_cmp(&key) != Ordering::Less);
        if at < k {
            list.insert(at, entry);
            list.truncate(k);
        }
    };
    Agg::new(ret, Value::Array(Vec::new()), move |acc, a| {
        let mut list = into_array(acc);
        fold(&mut list, entry_of(a));
        Value::Array(list)
    })
    .merge(move |a, b| {
        let mut list = into_array(a);
        for v in into_array(b) {
            fold(&mut list, v);
        }
        Value::Array(list)
    })
}

fn bind_histogram(args: &[Ty], params: &[Value]) -> Result<Agg, ArgumentError> {
    no_params(params)?;
    let t = one_arg(args)?;
    if t != SqlType::String {
        return Err(ArgumentError(format!("counts STRING values, not {t}")));
    }
    let bump = |map: &mut Vec<(Value, Value)>, k: Value, by: i64| {
        if let Some(e) = map.iter_mut().find(|(x, _)| *x == k) {
            e.1 = Value::BigInt(e.1.as_i64().unwrap_or(0) + by);
        } else if by > 0 && map.len() < COLLECT_LIMIT {
            map.push((k, Value::BigInt(by)));
        }
        map.retain(|(_, n)| n.as_i64().unwrap_or(0) > 0);
    };
    let step = move |by: i64| {
        move |acc: Value, a: &[Value]| {
            let v = first(a);
            if v.is_null() {
                return acc;
            }
            let mut map = into_map(acc);
            bump(&mut map, v.clone(), by);
            Value::Map(map)
        }
    };
    Ok(Agg::new(
        SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::BigInt)),
        Value::Map(Vec::new()),
        step(1),
    )
    .undo(step(-1))
    .merge(move |a, b| {
        let mut map = into_map(a);
        for (k, n) in into_map(b) {
            bump(&mut map, k, n.as_i64().unwrap_or(0));
        }
        Value::Map(map)
    }))
}

/// Welford's running (count, mean, m2), reversible for undo and mergeable
/// with Chan's formula.
fn moments(count: i64, mean: f64, m2: f64) -> Value {
    Value::Struct(vec![
        ("COUNT".to_string(), Value::BigInt(count)),
        ("MEAN".to_string(), Value::Double(mean)),
        ("M2".to_string(), Value::Double(m2)),
    ])
}

fn moments_step(acc: &Value, x: f64, negate: bool) -> Value {
    let (n, mean, m2) = (fint(acc, "COUNT"), fnum(acc, "MEAN"), fnum(acc, "M2"));
    if negate {
        if n <= 1 {
            return moments(0, 0.0, 0.0);
        }
        let n1 = n - 1;
        let mean1 = (mean * n as f64 - x) / n1 as f64;
        let m2_1 = (m2 - (x - mean1) * (x - mean)).max(0.0);
        moments(n1, mean1, m2_1)
    } else {
        let n1 = n + 1;
        let delta = x - mean;
        let mean1 = mean + delta / n1 as f64;
        moments(n1, mean1, m2 + delta * (x - mean1))
    }
}

fn moments_merge(a: &Value, b: &Value) -> Value {
    let (na, ma, qa) = (fint(a, "COUNT"), fnum(a, "MEAN"), fnum(a, "M2"));
    let (nb, mb, qb) = (fint(b, "COUNT"), fnum(b, "MEAN"), fnum(b, "M2"));
    let n = na + nb;
    if n == 0 {
        return moments(0, 0.0, 0.0);
    }
    let delta = mb - ma;
    let mean = ma + delta * nb as f64 / n as f64;
    let m2 = qa + qb + delta * delta * (na as f64) * (nb as f64) / n as f64;
    moments(n, mean, m2)
}

fn bind_stddev(args: &[Ty], params: &[Value], sample: bool) -> Result<Agg, ArgumentError> {
    no_params(params)?;
    numeric_arg(args)?;
    let step = |negate: bool| {
        move |acc: Value, a: &[Value]| match first(a).as_f64() {
            Some(x) => moments_step(&acc, x, negate),
            None => acc,
        }
    };
    Ok(Agg::new(SqlType::Double, moments(0, 0.0, 0.0), step(false))
        .undo(step(true))
        .merge(|a, b| moments_merge(&a, &b))
        .result(move |acc| {
            let (n, m2) = (fint(acc, "COUNT"), fnum(acc, "M2"));
            let d = if sample { n - 1 } else { n };
            if d < 1 {
                return Value::Double(0.0);
            }
            Value::Double((m2 / d as f64).sqrt())
        }))
}

fn co_moments(n: i64, mx: f64, my: f64, qx: f64, qy: f64, cxy: f64) -> Value {
    Value::Struct(vec![
        ("COUNT".to_string(), Value::BigInt(n)),
        ("MEAN_X".to_string(), Value::Double(mx)),
        ("MEAN_Y".to_string(), Value::Double(my)),
        ("M2_X".to_string(), Value::Double(qx)),
        ("M2_Y".to_string(), Value::Double(qy)),
        ("C_XY".to_string(), Value::Double(cxy)),
    ])
}

fn co_parts(acc: &Value) -> (i64, f64, f64, f64, f64, f64) {
    (
        fint(acc, "COUNT"),
        fnum(acc, "MEAN_X"),
        fnum(acc, "MEAN_Y"),
        fnum(acc, "M2_X"),
        fnum(acc, "M2_Y"),
        fnum(acc, "C_XY"),
    )
}

fn co_merge(a: &Value, b: &Value) -> Value {
    let (na, xa, ya, qxa, qya, ca) = co_parts(a);
    let (nb, xb, yb, qxb, qyb, cb) = co_parts(b);
    let n = na + nb;
    if n == 0 {
        return co_moments(0, 0.0, 0.0, 0.0, 0.0, 0.0);
    }
    let (dx, dy) = (xb - xa, yb - ya);
    let f = (na as f64) * (nb as f64) / n as f64;
    co_moments(
        n,
        xa + dx * nb as f64 / n as f64,
        ya + dy * nb as f64 / n as f64,
        qxa + qxb + dx * dx * f,
        qya + qyb + dy * dy * f,
        ca + cb + dx * dy * f,
    )
}

fn bind_correlation(args: &[Ty], params: &[Value]) -> Result<Agg, ArgumentError> {
    no_params(params)?;
    match args {
        [Some(x), Some(y)] if x.is_numeric() && y.is_numeric() => {}
        _ => return Err("needs two numeric columns".into()),
    }
    let single = |x: f64, y: f64| co_moments(1, x, y, 0.0, 0.0, 0.0);
    Ok(Agg::new(
        SqlType::Double,
        co_moments(0, 0.0, 0.0, 0.0, 0.0, 0.0),
        move |acc, a| match (arg(a, 0).as_f64(), arg(a, 1).as_f64()) {
            (Some(x), Some(y)) => co_merge(&acc, &single(x, y)),
            _ => acc,
        },
    )
    .undo(
        move |acc, a| match (arg(a, 0).as_f64(), arg(a, 1).as_f64()) {
            (Some(x), Some(y)) => {
                let (n, mx, my, qx, qy, c) = co_parts(&acc);
                if n <= 1 {
                    return co_moments(0, 0.0, 0.0, 0.0, 0.0, 0.0);
                }
                // Solve the merge of (rest, single) for rest.
                let n1 = n - 1;
                let rx = (mx * n as f64 - x) / n1 as f64;
                let ry = (my * n as f64 - y) / n1 as f64;
                let f = n1 as f64 / n as f64;
                let (dx, dy) = (x - rx, y - ry);
                co_moments(
                    n1,
                    rx,
                    ry,
                    (qx - dx * dx * f).max(0.0),
                    (qy - dy * dy * f).max(0.0),
                    c - dx * dy * f,
                )
            }
            _ => acc,
        },
    )
    .merge(|a, b| co_merge(&a, &b))
    .result(|acc| {
        let (n, _, _, qx, qy, c) = co_parts(acc);
        if n < 2 {
            return Value::Double(f64::NAN);
        }
        Value::Double(c / (qx * qy).sqrt())
    }))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn bind(name: &str, args: &[Ty], params: &[Value]) -> Box<dyn Aggregator> {
        let r = reg();
        let f = r
            .aggregate(name)
            .unwrap_or_else(|| panic!("no aggregate {name}"));
        match f.bind(args, params, FunctionSettings::default()) {
            Ok(a) => a,
            Err(e) => panic!("{name}: {e}"),
        }
    }

    fn bind_err(name: &str, args: &[Ty], params: &[Value]) -> FunctionError {
        let r = reg();
        match r
            .aggregate(name)
            .map(|f| f.bind(args, params, FunctionSettings::default()))
        {
            Some(Err(e)) => e,
            Some(Ok(_)) => panic!("{name} accepted {args:?}"),
            None => panic!("no aggregate {name}"),
        }
    }

    /// Folds single-column rows and returns (accumulator, result).
    fn fold(a: &dyn Aggregator, rows: &[Value]) -> (Value, Value) {
        let mut acc = a.initial();
        for r in rows {
            acc = a.add(acc, std::slice::from_ref(r));
        }
        let res = a.result(&acc);
        (acc, res)
    }

    fn undo1(a: &dyn Aggregator, acc: Value, v: Value) -> Value {
        a.undo(acc, &[v]).expect("undo supported")
    }

    #[test]
    fn count_star_and_column() {
        let star = bind("COUNT", &[], &[]);
        let mut acc = star.initial();
        for _ in 0..3 {
            acc = star.add(acc, &[]);
        }
        assert_eq!(star.result(&acc), l(3));
        assert_eq!(star.undo(acc.clone(), &[]), Some(l(2)));
        let col = bind("COUNT", &[st()], &[]);
        assert_eq!(col.return_type(), SqlType::BigInt);
        let (acc, res) = fold(col.as_ref(), &[s("a"), Value::Null, s("b")]);
        assert_eq!(res, l(2));
        assert_eq!(undo1(col.as_ref(), acc.clone(), Value::Null), l(2));
        assert_eq!(undo1(col.as_ref(), acc.clone(), s("a")), l(1));
        assert_eq!(col.merge(acc, l(5)), Some(l(7)));
        assert!(matches!(
            bind_err("COUNT", &[st(), st()], &[]),
            FunctionError::BadArguments { .. }
        ));
    }

    #[test]
    fn sum_keeps_types_and_undoes() {
        let a = bind("SUM", &[it()], &[]);
        assert_eq!(a.return_type(), SqlType::Int);
        assert_eq!(a.result(&a.initial()), i(0));
        let (acc, res) = fold(a.as_ref(), &[i(1), Value::Null, i(4)]);
        assert_eq!(res, i(5));
        assert!(matches!(res, Value::Int(5)));
        assert_eq!(undo1(a.as_ref(), acc.clone(), i(4)), i(1));
        assert_eq!(a.merge(acc, i(10)), Some(i(15)));
        let b = bind("SUM", &[bt()], &[]);
        assert!(matches!(
            fold(b.as_ref(), &[l(1), l(2)]).1,
            Value::BigInt(3)
        ));
        let dbl = bind("SUM", &[dt()], &[]);
        assert_eq!(fold(dbl.as_ref(), &[d(1.5), d(2.0)]).1, d(3.5));
        let dec_t = SqlType::Decimal {
            precision: 4,
            scale: 2,
        };
        let dec = bind("SUM", &[Some(dec_t.clone())], &[]);
        assert_eq!(dec.return_type(), dec_t);
        let x: Decimal = "1.25".parse().expect("decimal");
        let (_, res) = fold(dec.as_ref(), &[Value::Decimal(x), Value::Decimal(x)]);
        assert_eq!(res, Value::Decimal("2.50".parse().expect("decimal")));
        assert!(bind_err("SUM", &[st()], &[]).to_string().contains("SUM"));
        assert!(matches!(
            bind_err("SUM", &[None], &[]),
            FunctionError::BadArguments { .. }
        ));
    }

    #[test]
    fn avg_is_double_and_undoes_and_merges() {
        let a = bind("AVG", &[it()], &[]);
        assert_eq!(a.return_type(), SqlType::Double);
        assert_eq!(a.result(&a.initial()), d(0.0));
        let (acc, res) = fold(a.as_ref(), &[i(1), i(2), Value::Null, i(6)]);
        assert_eq!(res, d(3.0));
        let acc2 = undo1(a.as_ref(), acc.clone(), i(6));
        assert_eq!(a.result(&acc2), d(1.5));
        let (other, _) = fold(a.as_ref(), &[i(11)]);
        let merged = a.merge(acc, other).expect("merge");
        assert_eq!(a.result(&merged), d(5.0));
        assert!(matches!(
            bind_err("AVG", &[Some(SqlType::Boolean)], &[]),
            FunctionError::BadArguments { .. }
        ));
    }

    #[test]
    fn min_max_skip_nulls_and_merge() {
        let mx = bind("MAX", &[it()], &[]);
        let (acc, res) = fold(mx.as_ref(), &[i(3), Value::Null, i(9), i(1)]);
        assert_eq!(res, i(9));
        assert!(mx.undo(acc.clone(), &[i(9)]).is_none());
        assert_eq!(mx.merge(acc, i(12)), Some(i(12)));
        let mn = bind("MIN", &[st()], &[]);
        assert_eq!(fold(mn.as_ref(), &[s("b"), s("a"), s("c")]).1, s("a"));
        assert_eq!(fold(mn.as_ref(), &[Value::Null]).1, Value::Null);
        let ts = bind("MIN", &[Some(SqlType::Timestamp)], &[]);
        assert_eq!(
            fold(ts.as_ref(), &[Value::Timestamp(5), Value::Timestamp(2)]).1,
            Value::Timestamp(2)
        );
        assert!(matches!(
            bind_err("MAX", &[Some(SqlType::Array(Box::new(SqlType::Int)))], &[]),
            FunctionError::BadArguments { .. }
        ));
    }

    #[test]
    fn count_distinct() {
        let a = bind("COUNT_DISTINCT", &[st()], &[]);
        let (acc, res) = fold(a.as_ref(), &[s("a"), s("b"), s("a"), Value::Null]);
        assert_eq!(res, l(2));
        let (other, _) = fold(a.as_ref(), &[s("c"), s("a")]);
        let m = a.merge(acc, other).expect("merge");
        assert_eq!(a.result(&m), l(3));
        assert!(bind_err(
            "COUNT_DISTINCT",
            &[Some(SqlType::Map(
                Box::new(SqlType::String),
                Box::new(SqlType::Int)
            ))],
            &[]
        )
        .to_string()
        .contains("COUNT_DISTINCT"));
    }

    #[test]
    fn collect_list_and_set() {
        let a = bind("COLLECT_LIST", &[it()], &[]);
        assert_eq!(a.return_type(), SqlType::Array(Box::new(SqlType::Int)));
        let (acc, res) = fold(a.as_ref(), &[i(1), i(2), Value::Null, i(1)]);
        assert_eq!(res, arr(vec![i(1), i(2), Value::Null, i(1)]));
        let acc2 = undo1(a.as_ref(), acc.clone(), i(1));
        assert_eq!(acc2, arr(vec![i(1), i(2), Value::Null]));
        assert_eq!(
            a.merge(acc2, arr(vec![i(7)])),
            Some(arr(vec![i(1), i(2), Value::Null, i(7)]))
        );
        let rows: Vec<Value> = (0..1500).map(i).collect();
        let Value::Array(big) = fold(a.as_ref(), &rows).1 else {
            panic!()
        };
        assert_eq!(big.len(), COLLECT_LIMIT);

        let set = bind("COLLECT_SET", &[st()], &[]);
        let (acc, res) = fold(set.as_ref(), &[s("x"), s("y"), s("x")]);
        assert_eq!(res, sarr(&["x", "y"]));
        assert!(set.undo(acc.clone(), &[s("x")]).is_none());
        assert_eq!(
            set.merge(acc, sarr(&["z", "y"])),
            Some(sarr(&["x", "y", "z"]))
        );
        assert!(matches!(
            bind_err("COLLECT_LIST", &[it(), it()], &[]),
            FunctionError::BadArguments { .. }
        ));
    }

    #[test]
    fn earliest_and_latest_by_offset() {
        let r = reg();
        let f = r.aggregate("LATEST_BY_OFFSET").expect("registered");
        assert_eq!(f.literal_params(1), 0);
        assert_eq!(f.literal_params(3), 2);
        let rows = [Value::Null, i(1), i(2), Value::Null, i(3), Value::Null];
        let e = bind("EARLIEST_BY_OFFSET", &[it()], &[]);
        assert_eq!(e.return_type(), SqlType::Int);
        assert_eq!(fold(e.as_ref(), &rows).1, i(1));
        let e = bind("EARLIEST_BY_OFFSET", &[it()], &[Value::Boolean(false)]);
        assert_eq!(fold(e.as_ref(), &rows).1, Value::Null);
        let lt = bind("LATEST_BY_OFFSET", &[it()], &[]);
        let (acc, res) = fold(lt.as_ref(), &rows);
        assert_eq!(res, i(3));
        assert_eq!(
            lt.result(&lt.merge(acc, arr(vec![i(9)])).expect("merge")),
            i(9)
        );
        let lt = bind("LATEST_BY_OFFSET", &[it()], &[Value::Boolean(false)]);
        assert_eq!(fold(lt.as_ref(), &rows).1, Value::Null);
        let ln = bind("LATEST_BY_OFFSET", &[it()], &[i(2)]);
        assert_eq!(ln.return_type(), SqlType::Array(Box::new(SqlType::Int)));
        assert_eq!(fold(ln.as_ref(), &rows).1, arr(vec![i(2), i(3)]));
        let en = bind(
            "EARLIEST_BY_OFFSET",
            &[it()],
            &[i(2), Value::Boolean(false)],
        );
        assert_eq!(fold(en.as_ref(), &rows).1, arr(vec![Value::Null, i(1)]));
        assert!(en.undo(Value::Array(vec![]), &[i(1)]).is_none());
        assert!(matches!(
            bind_err("EARLIEST_BY_OFFSET", &[it()], &[i(0)]),
            FunctionError::BadArguments { .. }
        ));
        assert!(matches!(
            bind_err("LATEST_BY_OFFSET", &[it()], &[s("x")]),
            FunctionError::BadArguments { .. }
        ));
    }

    #[test]
    fn topk_and_topkdistinct() {
        let r = reg();
        assert_eq!(
            r.aggregate("TOPK").expect("registered").literal_params(2),
            1
        );
        let a = bind("TOPK", &[it()], &[i(3)]);
        let (acc, res) = fold(a.as_ref(), &[i(5), i(1), i(9), Value::Null, i(9), i(7)]);
        assert_eq!(res, arr(vec![i(9), i(9), i(7)]));
        assert_eq!(
            a.merge(acc, arr(vec![i(8), i(2)])),
            Some(arr(vec![i(9), i(9), i(8)]))
        );
        let dst = bind("TOPKDISTINCT", &[st()], &[l(2)]);
        assert_eq!(
            fold(dst.as_ref(), &[s("a"), s("c"), s("c"), s("b")]).1,
            sarr(&["c", "b"])
        );
        assert!(matches!(
            bind_err("TOPK", &[it()], &[]),
            FunctionError::BadArguments { .. }
        ));
        assert!(matches!(
            bind_err("TOPK", &[Some(SqlType::Boolean)], &[i(2)]),
            FunctionError::BadArguments { .. }
        ));
    }

    #[test]
    fn histogram_counts_undoes_and_merges() {
        let a = bind("HISTOGRAM", &[st()], &[]);
        let (acc, res) = fold(a.as_ref(), &[s("a"), s("b"), s("a"), Value::Null]);
        assert_eq!(res, Value::Map(vec![(s("a"), l(2)), (s("b"), l(1))]));
        let acc = undo1(a.as_ref(), acc, s("b"));
        assert_eq!(acc, Value::Map(vec![(s("a"), l(2))]));
        let m = a
            .merge(acc, Value::Map(vec![(s("a"), l(1)), (s("z"), l(4))]))
            .expect("merge");
        assert_eq!(m, Value::Map(vec![(s("a"), l(3)), (s("z"), l(4))]));
        assert!(matches!(
            bind_err("HISTOGRAM", &[it()], &[]),
            FunctionError::BadArguments { .. }
        ));
    }

    fn close(v: &Value, want: f64) -> bool {
        matches!(v, Value::Double(x) if (x - want).abs() < 1e-9)
    }

    #[test]
    fn stddev_samp_and_pop() {
        let a = bind("STDDEV_SAMP", &[it()], &[]);
        let rows = [i(2), i(4), i(4), i(4), i(5), i(5), i(7), i(9)];
        let (acc, res) = fold(a.as_ref(), &rows);
        assert!(close(&res, (32.0f64 / 7.0).sqrt()), "{res:?}");
        // Undo the 9: the rest is 2,4,4,4,5,5,7.
        let acc2 = undo1(a.as_ref(), acc.clone(), i(9));
        let (want, _) = fold(a.as_ref(), &rows[..7]);
        assert!(close(&a.result(&acc2), {
            let Value::Double(x) = a.result(&want) else {
                panic!()
            };
            x
        }));
        let (left, _) = fold(a.as_ref(), &rows[..3]);
        let (right, _) = fold(a.as_ref(), &rows[3..]);
        assert!(close(
            &a.result(&a.merge(left, right).expect("merge")),
            (32.0f64 / 7.0).sqrt()
        ));
        assert_eq!(fold(a.as_ref(), &[i(1)]).1, d(0.0));
        let named = bind("STDDEV_SAMPLE", &[it()], &[]);
        assert!(close(
            &fold(named.as_ref(), &rows).1,
            (32.0f64 / 7.0).sqrt()
        ));
        let p = bind("STDDEV_POP", &[dt()], &[]);
        let rows: Vec<Value> = rows.iter().map(|v| d(v.as_f64().unwrap_or(0.0))).collect();
        assert!(close(&fold(p.as_ref(), &rows).1, 2.0));
        assert!(p.undo(acc, &[i(1)]).is_some());
        assert!(matches!(
            bind_err("STDDEV_SAMP", &[st()], &[]),
            FunctionError::BadArguments { .. }
        ));
    }

    #[test]
    fn correlation() {
        let a = bind("CORRELATION", &[dt(), dt()], &[]);
        let mut acc = a.initial();
        for (x, y) in [(1.0, 2.0), (2.0, 4.0), (3.0, 6.5), (4.0, 8.0)] {
            acc = a.add(acc, &[d(x), d(y)]);
        }
        acc = a.add(acc, &[Value::Null, d(1.0)]);
        let Value::Double(r) = a.result(&acc) else {
            panic!()
        };
        assert!(r > 0.99 && r <= 1.0, "{r}");
        let acc = a.undo(acc, &[d(3.0), d(6.5)]).expect("undo");
        assert!(close(&a.result(&acc), 1.0));
        assert!(matches!(a.result(&a.initial()), Value::Double(x) if x.is_nan()));
        assert!(matches!(
            bind_err("CORRELATION", &[dt()], &[]),
            FunctionError::BadArguments { .. }
        ));
    }
}
