//! The function registry: scalar, aggregate and table functions by name.
//!
//! Functions follow ksqlDB's documented semantics (names, argument order,
//! return types and null handling). Each family lives in its own module and
//! registers itself in [`FunctionRegistry::builtin`]:
//!
//! * `math`: numeric and trigonometric functions
//! * `string`: text and bytes functions, regular expressions, encodings
//! * `json`: JSON-in-a-string functions and `TO_JSON_STRING`
//! * `datetime`: dates, times, timestamps and Java `DateTimeFormatter` patterns
//! * `collections`: arrays, maps and the null functions
//! * `aggregate`: aggregate functions
//! * `table`: table functions (`EXPLODE`, `CUBE_EXPLODE`)
//!
//! Adding a scalar function is one [`Scalar::new`] call in the module's
//! `register` function: a name, a category, a signature text, a description,
//! a type rule (`fn(&[Option<SqlType>]) -> Option<SqlType>`, `None` meaning
//! "these arguments are not accepted") and an evaluator.

use std::collections::HashMap;
use std::sync::Arc;

use crate::types::{SqlType, Value};

mod aggregate;
mod collections;
mod datetime;
mod javatime;
pub use javatime::TimestampParser;
mod json;
mod math;
mod string;
mod table;

pub use aggregate::AggFn;
pub use table::TableFn;

/// A function's name as ksqlDB's refusals show it: lower case, but
/// COALESCE (which ksqlDB registers apart) in upper case.
fn shown_name(name: &str) -> String {
    if name.eq_ignore_ascii_case("COALESCE") {
        "COALESCE".to_string()
    } else {
        name.to_lowercase()
    }
}

/// Why a function could not be typed or evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FunctionError {
    #[error(
        "Function '{}' does not accept parameters ({args}).\n{expected}",
        shown_name(name)
    )]
    BadArguments {
        name: String,
        args: String,
        expected: String,
    },
    /// More than one of the function's typings fit the arguments equally
    /// (ksqlDB will not pick one).
    #[error("Function '{}' cannot be resolved due to ambiguous method parameters ({args}).", name.to_lowercase())]
    Ambiguous { name: String, args: String },
    #[error("{0}")]
    Runtime(String),
}

/// What sort of function a name denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionKind {
    Scalar,
    Aggregate,
    Table,
}

/// What `SHOW FUNCTIONS` / `DESCRIBE FUNCTION` print.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    pub name: &'static str,
    pub kind: FunctionKind,
    pub category: &'static str,
    pub description: &'static str,
    pub signature: &'static str,
}

pub trait ScalarFunction: Send + Sync {
    fn info(&self) -> FunctionInfo;
    /// Checks arity and argument types (a `None` type = a NULL literal,
    /// matches anything) and says what it returns.
    fn return_type(&self, args: &[Option<SqlType>]) -> Result<SqlType, FunctionError>;
    /// Evaluates with SQL null semantics (most functions return NULL when an
    /// argument is NULL). A runtime problem (bad regex, bad date text) is an
    /// `Err`; the engine logs it and uses NULL, as ksqlDB does.
    fn call(&self, args: &[Value]) -> Result<Value, FunctionError>;
}

/// The `ksql.functions.<function>.<setting>` properties a query runs with
/// (e.g. `ksql.functions.collect_list.limit`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FunctionSettings<'a>(Option<&'a std::collections::BTreeMap<String, String>>);

impl<'a> FunctionSettings<'a> {
    /// The settings among `properties` (other properties are ignored).
    pub fn new(properties: &'a std::collections::BTreeMap<String, String>) -> Self {
        FunctionSettings(Some(properties))
    }

    /// `ksql.functions.<function>.limit` when set to a number.
    pub fn limit(&self, function: &str) -> Option<usize> {
        let key = format!("ksql.functions.{}.limit", function.to_ascii_lowercase());
        self.0?.get(&key)?.trim().parse().ok()
    }
}

/// What an aggregate keeps between rows, as ksqlDB types it: a format
/// that cannot write structured values (DELIMITED, KAFKA) cannot keep a
/// structured state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intermediate {
    /// A single value (COUNT, SUM, MIN, …).
    Plain,
    /// A struct of running figures (AVG's sum and count, …).
    Struct,
    /// A list of values (COLLECT_LIST, TOPK, …).
    Array,
    /// A map (HISTOGRAM).
    Map,
}

impl Intermediate {
    /// A type of this shape, to ask a format whether it can write it.
    pub fn sql_type(self) -> Option<SqlType> {
        match self {
            Intermediate::Plain => None,
            Intermediate::Struct => Some(SqlType::Struct(vec![(
                "STATE".to_string(),
                SqlType::BigInt,
            )])),
            Intermediate::Array => Some(SqlType::Array(Box::new(SqlType::BigInt))),
            Intermediate::Map => Some(SqlType::Map(
                Box::new(SqlType::String),
                Box::new(SqlType::BigInt),
            )),
        }
    }
}

pub trait AggregateFunction: Send + Sync {
    fn info(&self) -> FunctionInfo;
    /// `args`: types of the column arguments (empty for `COUNT(*)`);
    /// `params`: trailing literal parameters (e.g. TOPK's k), already
    /// evaluated; `settings`: the query's `ksql.functions.*` properties.
    fn bind(
        &self,
        args: &[Option<SqlType>],
        params: &[Value],
        settings: FunctionSettings<'_>,
    ) -> Result<Box<dyn Aggregator>, FunctionError>;
    /// The shape of the state it keeps between rows.
    fn intermediate(&self) -> Intermediate {
        Intermediate::Plain
    }
    /// How many trailing arguments are literal parameters rather than
    /// columns (`TOPK(col, k)` → 1). Default 0.
    fn literal_params(&self, _total_args: usize) -> usize {
        0
    }
}

/// A bound aggregate. Its accumulator is a plain [`Value`] so the engine can
/// keep it in state stores.
pub trait Aggregator: Send + Sync {
    fn return_type(&self) -> SqlType;
    fn initial(&self) -> Value;
    /// Adds one row's argument values (in offset order per key).
    fn add(&self, acc: Value, args: &[Value]) -> Value;
    /// Removes a row previously added (used when a table row changes); `None`
    /// if this aggregate cannot undo: ksqlDB only allows COUNT, SUM, AVG,
    /// COLLECT_LIST, HISTOGRAM, STDDEV_SAMP and CORRELATION on tables.
    fn undo(&self, acc: Value, args: &[Value]) -> Option<Value>;
    fn result(&self, acc: &Value) -> Value;
    /// Whether [`result`](Self::result) is the accumulator itself (COUNT,
    /// SUM, MIN, …): a query outputting only such results can pass its
    /// accumulator rows on unchanged.
    fn result_is_acc(&self) -> bool {
        false
    }
    /// Merges two accumulators (session windows merge); `a` is the earlier
    /// session. `None` if unsupported.
    fn merge(&self, a: Value, b: Value) -> Option<Value>;
}

pub trait TableFunction: Send + Sync {
    fn info(&self) -> FunctionInfo;
    fn return_type(&self, args: &[Option<SqlType>]) -> Result<SqlType, FunctionError>;
    fn call(&self, args: &[Value]) -> Result<Vec<Value>, FunctionError>;
}

/// All known functions by (upper-case) name.
pub struct FunctionRegistry {
    scalars: HashMap<String, Arc<dyn ScalarFunction>>,
    aggregates: HashMap<String, Box<dyn AggregateFunction>>,
    tables: HashMap<String, Arc<dyn TableFunction>>,
}

impl Default for FunctionRegistry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl std::fmt::Debug for FunctionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionRegistry")
            .field("scalars", &self.scalars.len())
            .field("aggregates", &self.aggregates.len())
            .field("tables", &self.tables.len())
            .finish()
    }
}

impl FunctionRegistry {
    /// A registry without any function.
    pub fn empty() -> FunctionRegistry {
        FunctionRegistry {
            scalars: HashMap::new(),
            aggregates: HashMap::new(),
            tables: HashMap::new(),
        }
    }

    /// Every built-in function.
    pub fn builtin() -> FunctionRegistry {
        let mut r = Self::empty();
        math::register(&mut r);
        string::register(&mut r);
        json::register(&mut r);
        datetime::register(&mut r);
        collections::register(&mut r);
        aggregate::register(&mut r);
        table::register(&mut r);
        r
    }

    pub fn scalar(&self, name: &str) -> Option<&dyn ScalarFunction> {
        self.scalars
            .get(&name.to_ascii_uppercase())
            .map(|f| f.as_ref())
    }

    /// A shared handle to a table function, for the planner to keep.
    pub fn table_arc(&self, name: &str) -> Option<Arc<dyn TableFunction>> {
        self.tables.get(&name.to_ascii_uppercase()).cloned()
    }

    /// A shared handle to a scalar, for compiled expressions to keep.
    pub fn scalar_arc(&self, name: &str) -> Option<Arc<dyn ScalarFunction>> {
        self.scalars.get(&name.to_ascii_uppercase()).cloned()
    }

    pub fn aggregate(&self, name: &str) -> Option<&dyn AggregateFunction> {
        self.aggregates
            .get(&name.to_ascii_uppercase())
            .map(|f| f.as_ref())
    }

    pub fn table(&self, name: &str) -> Option<&dyn TableFunction> {
        self.tables
            .get(&name.to_ascii_uppercase())
            .map(|f| f.as_ref())
    }

    /// Every function, sorted by name.
    pub fn list(&self) -> Vec<FunctionInfo> {
        let mut all: Vec<FunctionInfo> = self
            .scalars
            .values()
            .map(|f| f.info())
            .chain(self.aggregates.values().map(|f| f.info()))
            .chain(self.tables.values().map(|f| f.info()))
            .collect();
        all.sort_by(|a, b| a.name.cmp(b.name));
        all
    }

    /// The closest known name (edit distance ≤ 2, or ≤ 1 for names of up to
    /// five letters), for "did you mean …?".
    pub fn suggest(&self, name: &str) -> Option<&'static str> {
        let wanted = name.to_ascii_uppercase();
        let limit = if wanted.chars().count() <= 5 { 1 } else { 2 };
        self.list()
            .into_iter()
            .map(|i| (edit_distance(&wanted, i.name), i.name))
            .filter(|(d, _)| *d <= limit)
            .min_by_key(|(d, _)| *d)
            .map(|(_, n)| n)
    }

    pub fn register_scalar(&mut self, f: Box<dyn ScalarFunction>) {
        self.scalars
            .insert(f.info().name.to_ascii_uppercase(), Arc::from(f));
    }

    pub fn register_aggregate(&mut self, f: Box<dyn AggregateFunction>) {
        self.aggregates
            .insert(f.info().name.to_ascii_uppercase(), f);
    }

    pub fn register_table(&mut self, f: Box<dyn TableFunction>) {
        self.tables
            .insert(f.info().name.to_ascii_uppercase(), Arc::from(f));
    }

    /// Registers a [`Scalar`] built from plain functions.
    pub(crate) fn add(&mut self, f: Scalar) {
        self.register_scalar(Box::new(f));
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Type rule of a scalar: `None` when the arguments are not accepted.
pub type TypeRule = fn(&[Option<SqlType>]) -> Option<SqlType>;
/// Evaluator of a scalar.
pub type Eval = fn(&[Value]) -> Result<Value, FunctionError>;

/// A scalar function made of a type rule and an evaluator.
/// Whether argument types fit several typings of a function.
pub type AmbiguityRule = fn(&[Option<SqlType>]) -> bool;

pub struct Scalar {
    info: FunctionInfo,
    ty: TypeRule,
    eval: Eval,
    strict: bool,
    ambiguous: Option<AmbiguityRule>,
}

impl Scalar {
    /// A strict scalar: any NULL argument gives NULL without calling `eval`.
    pub fn new(
        name: &'static str,
        category: &'static str,
        signature: &'static str,
        description: &'static str,
        ty: TypeRule,
        eval: Eval,
    ) -> Scalar {
        Scalar {
            info: FunctionInfo {
                name,
                kind: FunctionKind::Scalar,
                category,
                description,
                signature,
            },
            ty,
            eval,
            strict: true,
            ambiguous: None,
        }
    }

    /// `eval` sees NULL arguments itself (COALESCE, CONCAT, …).
    pub fn lenient(mut self) -> Scalar {
        self.strict = false;
        self
    }

    /// Argument types for which ksqlDB finds several typings and refuses
    /// the call as ambiguous.
    pub fn ambiguous_when(mut self, f: AmbiguityRule) -> Scalar {
        self.ambiguous = Some(f);
        self
    }
}

impl ScalarFunction for Scalar {
    fn info(&self) -> FunctionInfo {
        self.info.clone()
    }

    fn return_type(&self, args: &[Option<SqlType>]) -> Result<SqlType, FunctionError> {
        if self.ambiguous.is_some_and(|f| f(args)) {
            return Err(FunctionError::Ambiguous {
                name: self.info.name.to_string(),
                args: type_list(args),
            });
        }
        (self.ty)(args).ok_or_else(|| bad_args(&self.info, args))
    }

    fn call(&self, args: &[Value]) -> Result<Value, FunctionError> {
        if self.strict && args.iter().any(Value::is_null) {
            return Ok(Value::Null);
        }
        (self.eval)(args)
    }
}

/// The error for arguments a function does not accept.
pub(crate) fn bad_args(info: &FunctionInfo, args: &[Option<SqlType>]) -> FunctionError {
    FunctionError::BadArguments {
        name: info.name.to_string(),
        args: type_list(args),
        expected: format!("expected {}", info.signature),
    }
}

pub(crate) fn type_list(args: &[Option<SqlType>]) -> String {
    args.iter()
        .map(|t| {
            t.as_ref()
                .map_or_else(|| "null".to_string(), |t| t.to_string())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn runtime(msg: impl Into<String>) -> FunctionError {
    FunctionError::Runtime(msg.into())
}

// ---------------------------------------------------------------------------
// Type-rule helpers: a `None` type (NULL literal) matches anything.

pub(crate) type Ty = Option<SqlType>;

pub(crate) fn is_num(t: &Ty) -> bool {
    t.as_ref().is_none_or(SqlType::is_numeric)
}
pub(crate) fn is_int(t: &Ty) -> bool {
    t.as_ref()
        .is_none_or(|t| matches!(t, SqlType::Int | SqlType::BigInt))
}
pub(crate) fn is_str(t: &Ty) -> bool {
    t.as_ref().is_none_or(|t| *t == SqlType::String)
}
pub(crate) fn is_bytes(t: &Ty) -> bool {
    t.as_ref().is_none_or(|t| *t == SqlType::Bytes)
}
pub(crate) fn is_bool(t: &Ty) -> bool {
    t.as_ref().is_none_or(|t| *t == SqlType::Boolean)
}
pub(crate) fn is_type(t: &Ty, want: SqlType) -> bool {
    t.as_ref().is_none_or(|t| *t == want)
}
pub(crate) fn is_array(t: &Ty) -> bool {
    t.as_ref().is_none_or(|t| matches!(t, SqlType::Array(_)))
}
pub(crate) fn is_map(t: &Ty) -> bool {
    t.as_ref().is_none_or(|t| matches!(t, SqlType::Map(..)))
}
/// A primitive (not ARRAY, MAP or STRUCT).
pub(crate) fn is_primitive(t: &Ty) -> bool {
    t.as_ref()
        .is_none_or(|t| !matches!(t, SqlType::Array(_) | SqlType::Map(..) | SqlType::Struct(_)))
}
/// The element type of an ARRAY type (`None` for a NULL literal).
pub(crate) fn elem(t: &Ty) -> Ty {
    match t {
        Some(SqlType::Array(e)) => Some((**e).clone()),
        _ => None,
    }
}
/// Whether two types can meet (numbers widen; NULL meets anything).
pub(crate) fn compatible(a: &Ty, b: &Ty) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b || SqlType::widen(a, b).is_some() || same_shape(a, b),
        _ => true,
    }
}
fn same_shape(a: &SqlType, b: &SqlType) -> bool {
    match (a, b) {
        (SqlType::Array(x), SqlType::Array(y)) => {
            compatible(&Some((**x).clone()), &Some((**y).clone()))
        }
        (SqlType::Map(k1, v1), SqlType::Map(k2, v2)) => {
            compatible(&Some((**k1).clone()), &Some((**k2).clone()))
                && compatible(&Some((**v1).clone()), &Some((**v2).clone()))
        }
        (SqlType::Decimal { .. }, SqlType::Decimal { .. }) => true,
        _ => false,
    }
}
/// The common type of several argument types, widening numbers; `None`
/// when they cannot meet. All-NULL gives `Some(None)`.
pub(crate) fn common(types: &[Ty]) -> Option<Ty> {
    let mut out: Ty = None;
    for t in types.iter().flatten() {
        out = Some(match out {
            None => t.clone(),
            Some(o) if o == *t => o,
            Some(o) => match SqlType::widen(&o, t) {
                Some(w) => w,
                None if same_shape(&o, t) => o,
                None => return None,
            },
        });
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// Value helpers for evaluators: never panic, say what was wrong.

static NULL: Value = Value::Null;

/// The `i`-th argument, or NULL when missing.
pub(crate) fn arg(args: &[Value], i: usize) -> &Value {
    args.get(i).unwrap_or(&NULL)
}

fn kind(v: &Value) -> String {
    v.type_of()
        .map_or_else(|| "NULL".to_string(), |t| t.to_string())
}

pub(crate) fn str_of(v: &Value) -> Result<&str, FunctionError> {
    v.as_str()
        .ok_or_else(|| runtime(format!("expected a STRING, got {}", kind(v))))
}
pub(crate) fn int_of(v: &Value) -> Result<i64, FunctionError> {
    v.as_i64()
        .ok_or_else(|| runtime(format!("expected an INTEGER, got {}", kind(v))))
}
pub(crate) fn f64_of(v: &Value) -> Result<f64, FunctionError> {
    v.as_f64()
        .ok_or_else(|| runtime(format!("expected a number, got {}", kind(v))))
}
pub(crate) fn bool_of(v: &Value) -> Result<bool, FunctionError> {
    v.as_bool()
        .ok_or_else(|| runtime(format!("expected a BOOLEAN, got {}", kind(v))))
}
pub(crate) fn bytes_of(v: &Value) -> Result<&[u8], FunctionError> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => Err(runtime(format!("expected BYTES, got {}", kind(v)))),
    }
}
pub(crate) fn array_of(v: &Value) -> Result<&[Value], FunctionError> {
    match v {
        Value::Array(a) => Ok(a),
        _ => Err(runtime(format!("expected an ARRAY, got {}", kind(v)))),
    }
}
pub(crate) fn map_of(v: &Value) -> Result<&[(Value, Value)], FunctionError> {
    match v {
        Value::Map(m) => Ok(m),
        _ => Err(runtime(format!("expected a MAP, got {}", kind(v)))),
    }
}

/// A small pseudo-random source (no dependency): seeded per call from the
/// std hasher's random keys, the clock and a counter.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    pub fn reg() -> FunctionRegistry {
        FunctionRegistry::builtin()
    }

    /// Calls a scalar by name.
    pub fn call(name: &str, args: Vec<Value>) -> Result<Value, FunctionError> {
        let r = reg();
        let f = r
            .scalar(name)
            .unwrap_or_else(|| panic!("no scalar function {name}"));
        f.call(&args)
    }

    /// Calls a scalar that must succeed.
    pub fn ok(name: &str, args: Vec<Value>) -> Value {
        match call(name, args) {
            Ok(v) => v,
            Err(e) => panic!("{name} failed: {e}"),
        }
    }

    pub fn ty(name: &str, args: &[Option<SqlType>]) -> Result<SqlType, FunctionError> {
        let r = reg();
        let f = r
            .scalar(name)
            .unwrap_or_else(|| panic!("no scalar function {name}"));
        f.return_type(args)
    }

    pub fn s(x: &str) -> Value {
        Value::String(x.to_string())
    }
    pub fn i(x: i32) -> Value {
        Value::Int(x)
    }
    pub fn l(x: i64) -> Value {
        Value::BigInt(x)
    }
    pub fn d(x: f64) -> Value {
        Value::Double(x)
    }
    pub fn arr(v: Vec<Value>) -> Value {
        Value::Array(v)
    }
    pub fn sarr(v: &[&str]) -> Value {
        Value::Array(v.iter().map(|x| s(x)).collect())
    }
    pub fn st() -> Option<SqlType> {
        Some(SqlType::String)
    }
    pub fn it() -> Option<SqlType> {
        Some(SqlType::Int)
    }
    pub fn bt() -> Option<SqlType> {
        Some(SqlType::BigInt)
    }
    pub fn dt() -> Option<SqlType> {
        Some(SqlType::Double)
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_lists_sorted() {
        let r = reg();
        assert!(r.scalar("abs").is_some());
        assert!(r.scalar("Abs").is_some());
        assert!(r.aggregate("count").is_some());
        assert!(r.table("explode").is_some());
        assert!(r.scalar("count").is_none());
        let list = r.list();
        assert!(list.windows(2).all(|w| w[0].name <= w[1].name));
        assert!(list.len() > 150, "{} functions", list.len());
        for info in &list {
            assert_eq!(info.name, info.name.to_ascii_uppercase());
            assert!(!info.signature.is_empty() && !info.description.is_empty());
        }
    }

    #[test]
    fn suggests_close_names() {
        let r = reg();
        assert_eq!(r.suggest("substrng"), Some("SUBSTRING"));
        assert_eq!(r.suggest("ucsae"), None);
        assert_eq!(r.suggest("ucas"), Some("UCASE"));
        assert_eq!(r.suggest("array_lenght"), Some("ARRAY_LENGTH"));
        assert_eq!(r.suggest("collect_lst"), Some("COLLECT_LIST"));
        assert_eq!(r.suggest("xyzzy_plugh"), None);
    }

    #[test]
    fn bad_arguments_name_function_types_and_signature() {
        let e = ty("ABS", &[st()]).unwrap_err();
        match &e {
            FunctionError::BadArguments {
                name,
                args,
                expected,
            } => {
                assert_eq!(name, "ABS");
                assert_eq!(args, "STRING");
                assert!(expected.contains("ABS("), "{expected}");
            }
            other => panic!("{other:?}"),
        }
        assert!(e
            .to_string()
            .starts_with("Function 'abs' does not accept parameters (STRING)."));
    }

    #[test]
    fn custom_registration_is_small() {
        let mut r = FunctionRegistry::empty();
        r.add(Scalar::new(
            "TWICE",
            "test",
            "TWICE(INT) -> INT",
            "Doubles.",
            |a| (a.len() == 1 && is_int(&a[0])).then_some(SqlType::Int),
            |a| Ok(Value::Int(int_of(&a[0])?.wrapping_mul(2) as i32)),
        ));
        let f = r.scalar("twice").expect("registered");
        assert_eq!(f.call(&[Value::Int(4)]), Ok(Value::Int(8)));
        assert_eq!(f.call(&[Value::Null]).ok(), Some(Value::Null));
    }
}
