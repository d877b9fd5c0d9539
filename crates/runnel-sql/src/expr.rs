//! Expressions bound to a row layout: name resolution and type checking
//! at plan time, evaluation with SQL's null semantics at run time.

use std::cmp::Ordering;
use std::sync::Arc;

use rust_decimal::Decimal;

use crate::ast::{BinaryOp, Expr, ExprKind, Ident, Literal, Pos, UnaryOp};
use crate::cast::{cast, castable, fit_decimal};
use crate::error::SqlError;
use crate::functions::{FunctionRegistry, ScalarFunction};
use crate::types::{SqlType, Value};

/// A column visible to expressions: its qualifier (source alias), name,
/// type and index in the row.
#[derive(Debug, Clone)]
pub struct ScopeColumn {
    pub qualifier: Option<String>,
    pub name: String,
    pub ty: SqlType,
    pub index: usize,
}

/// The columns expressions may name, plus the lambda parameters in scope.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub columns: Vec<ScopeColumn>,
    lambdas: Vec<(String, SqlType)>,
    /// The clause being bound ("SELECT", "WHERE", "JOIN ON"…), which
    /// ksqlDB names when a column cannot be resolved.
    clause: &'static str,
}

impl Scope {
    /// An expression as ksqlDB shows it in errors: over a join, columns
    /// bear the joined names (`I1.BAR` is `I1_BAR`).
    pub fn shown(&self, e: &Expr) -> String {
        let mut qualifiers = self.columns.iter().filter_map(|c| c.qualifier.as_deref());
        let first = qualifiers.next();
        if qualifiers.all(|q| Some(q) == first) {
            return e.to_string();
        }
        fn rename(e: &mut Expr, scope: &Scope) {
            if let ExprKind::Column { qualifier, name } = &mut e.kind {
                let q = match qualifier.take() {
                    Some(q) => Some(q.name),
                    None => scope
                        .resolve(None, name)
                        .ok()
                        .and_then(|c| c.qualifier.clone()),
                };
                if let Some(q) = q {
                    name.name = format!("{q}_{}", name.name);
                }
                return;
            }
            crate::plan::for_each_child(e, &mut |c| rename(c, scope));
        }
        let mut e = e.clone();
        rename(&mut e, self);
        e.to_string()
    }

    pub fn new(columns: Vec<ScopeColumn>) -> Self {
        Scope {
            columns,
            lambdas: Vec::new(),
            clause: "",
        }
    }

    /// The same columns, bound in `clause`.
    /// The column at row slot `slot` (columns may be listed in another
    /// order than their slots, e.g. after PARTITION BY).
    pub fn column_at(&self, slot: usize) -> Option<&ScopeColumn> {
        self.columns.iter().find(|c| c.index == slot)
    }

    pub fn in_clause(mut self, clause: &'static str) -> Self {
        self.clause = clause;
        self
    }

    /// Finds a column; the error names it, says whether it is ambiguous, and
    /// suggests a close name.
    pub fn resolve(
        &self,
        qualifier: Option<&Ident>,
        name: &Ident,
    ) -> Result<&ScopeColumn, SqlError> {
        let mut found: Vec<&ScopeColumn> = self
            .columns
            .iter()
            .filter(|c| {
                c.name == name.name
                    && qualifier.is_none_or(|q| c.qualifier.as_deref() == Some(q.name.as_str()))
            })
            .collect();
        // A window bound belongs to the aggregation, not to a source: a
        // source's name may qualify it (`t.WINDOWSTART`).
        if found.is_empty()
            && qualifier.is_some()
            && (name.name == crate::schema::WINDOWSTART || name.name == crate::schema::WINDOWEND)
        {
            found = self
                .columns
                .iter()
                .filter(|c| c.name == name.name && c.qualifier.is_none())
                .collect();
        }
        match found.as_slice() {
            [one] => Ok(one),
            [] => {
                if let Some(q) = qualifier {
                    if !self
                        .columns
                        .iter()
                        .any(|c| c.qualifier.as_deref() == Some(q.name.as_str()))
                    {
                        return Err(SqlError::at(q.pos, not_a_source(&q.name))
                            .in_stage(crate::error::ErrorKind::Prepare));
                    }
                }
                let shown = match qualifier {
                    Some(q) => format!("{}.{}", q.name, name.name),
                    None => name.name.clone(),
                };
                if self.clause == "SELECT"
                    && (name.name == crate::schema::WINDOWSTART
                        || name.name == crate::schema::WINDOWEND)
                {
                    return Err(SqlError::at(
                        name.pos,
                        format!(
                            "Reserved column name in select: `{}`. Please remove or alias the column.",
                            name.name
                        ),
                    ));
                }
                let mut msg = match self.clause {
                    "" => format!("Column '{shown}' cannot be resolved."),
                    clause => format!("{clause} column '{shown}' cannot be resolved."),
                };
                if self.clause == "PARTITION BY" {
                    msg.push_str(&format!(
                        " '{shown}' must be a column in the source schema since PARTITION BY is applied on the input."
                    ));
                } else if let Some(s) = self.suggest(&name.name) {
                    msg.push_str(&format!(" Did you mean {s}?"));
                }
                // At the reference as written: its qualifier, if any.
                let at = qualifier.as_ref().map_or(name.pos, |q| q.pos);
                Err(SqlError::at(at, msg))
            }
            many => {
                let options: Vec<String> = many
                    .iter()
                    .map(|c| format!("{}.{}", c.qualifier.as_deref().unwrap_or("?"), c.name))
                    .collect();
                let mut options = options;
                options.sort();
                let last = options.pop().unwrap_or_default();
                let could_be = if options.is_empty() {
                    last
                } else {
                    format!("{} or {last}", options.join(", "))
                };
                Err(SqlError::at(
                    name.pos,
                    format!("Column '{}' is ambiguous. Could be {could_be}.", name.name),
                )
                .in_stage(crate::error::ErrorKind::Sanitize))
            }
        }
    }

    /// The closest column name, for "did you mean".
    pub fn suggest(&self, name: &str) -> Option<String> {
        let norm = |s: &str| s.to_ascii_uppercase().replace('_', "");
        let target = norm(name);
        self.columns
            .iter()
            .map(|c| (edit_distance(&norm(&c.name), &target), &c.name))
            .filter(|(d, n)| *d <= 2.max(n.len() / 4))
            .min_by_key(|(d, _)| *d)
            .map(|(_, n)| n.clone())
    }
}

/// ksqlDB's words for a qualifier that names no source of the query.
pub fn not_a_source(name: &str) -> String {
    format!("'{name}' is not a valid stream/table name or alias.")
}

/// Levenshtein distance, for suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A bound expression, ready to evaluate against rows of its scope.
#[derive(Clone)]
pub enum Compiled {
    Const(Value),
    Column(usize),
    Lambda(usize),
    Deref(Box<Compiled>, String),
    Subscript(Box<Compiled>, Box<Compiled>),
    Not(Box<Compiled>),
    Neg(Box<Compiled>),
    Arith(BinaryOp, Box<Compiled>, Box<Compiled>, SqlType),
    Concat(Box<Compiled>, Box<Compiled>),
    Compare(BinaryOp, Box<Compiled>, Box<Compiled>),
    And(Box<Compiled>, Box<Compiled>),
    Or(Box<Compiled>, Box<Compiled>),
    IsNull(Box<Compiled>, bool),
    Distinct(Box<Compiled>, Box<Compiled>, bool),
    Between(Box<Compiled>, Box<Compiled>, Box<Compiled>, bool),
    In(Box<Compiled>, Vec<Compiled>, bool),
    Like(Box<Compiled>, Like, bool),
    Case(Vec<(Compiled, Compiled)>, Option<Box<Compiled>>),
    Cast(Box<Compiled>, SqlType),
    Call(Arc<dyn ScalarFunction>, Vec<Compiled>),
    Transform(Box<Compiled>, Box<Compiled>, usize),
    TransformMap(Box<Compiled>, Box<Compiled>, Box<Compiled>, usize),
    Filter(Box<Compiled>, Box<Compiled>, usize),
    FilterMap(Box<Compiled>, Box<Compiled>, usize),
    Reduce(Box<Compiled>, Box<Compiled>, Box<Compiled>, usize),
    MakeArray(Vec<Compiled>),
    MakeMap(Vec<(Compiled, Compiled)>),
    MakeStruct(Vec<(String, Compiled)>),
}

/// A LIKE pattern: compiled once when it is a literal.
#[derive(Clone)]
pub enum Like {
    Fixed(Arc<regex::Regex>),
    Dynamic(Box<Compiled>, Option<char>),
}

/// Why a LIKE pattern cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum LikeError {
    #[error("LIKE pattern ends with its escape character")]
    DanglingEscape,
    #[error(transparent)]
    Regex(#[from] regex::Error),
}

fn like_regex(pattern: &str, escape: Option<char>) -> Result<regex::Regex, LikeError> {
    let mut re = String::from("(?s)^");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(n) => re.push_str(&regex::escape(&n.to_string())),
                None => return Err(LikeError::DanglingEscape),
            }
        } else if c == '%' {
            re.push_str(".*");
        } else if c == '_' {
            re.push('.');
        } else {
            re.push_str(&regex::escape(&c.to_string()));
        }
    }
    re.push('$');
    Ok(regex::Regex::new(&re)?)
}

/// What compiled expressions are bound against.
pub struct Binder<'a> {
    pub scope: Scope,
    pub functions: &'a FunctionRegistry,
}

fn boxed(c: Compiled) -> Box<Compiled> {
    Box::new(c)
}

/// ksqlDB's "magic" timestamp conversion: text compared with ROWTIME,
/// WINDOWSTART or WINDOWEND reads as a (possibly partial) timestamp, so
/// `ROWTIME > '2018-01-01T00:00:00.001'` compares milliseconds. `e` as
/// that number, when `e` is such text and `other` such a column.
fn magic_timestamp(e: &Expr, other: &Expr) -> Option<Expr> {
    let ExprKind::Literal(Literal::String(text)) = &e.kind else {
        return None;
    };
    let ExprKind::Column { name, .. } = &other.kind else {
        return None;
    };
    let system = [
        crate::schema::ROWTIME,
        crate::schema::WINDOWSTART,
        crate::schema::WINDOWEND,
    ];
    if !system.contains(&name.name.as_str()) {
        return None;
    }
    let ms = runnel_format::cast::parse_partial_timestamp(text)?;
    Some(Expr {
        kind: ExprKind::Literal(Literal::Integer(ms)),
        pos: e.pos,
    })
}

fn type_name(t: &Option<SqlType>) -> String {
    t.as_ref().map_or("NULL".to_string(), |t| t.to_string())
}

impl Binder<'_> {
    /// Binds an expression; returns it with its type (`None` for a bare
    /// NULL).
    pub fn bind(&mut self, e: &Expr) -> Result<(Compiled, Option<SqlType>), SqlError> {
        Ok(match &e.kind {
            ExprKind::Literal(l) => {
                let v = literal_value(l, e.pos)?;
                let t = v.type_of();
                (Compiled::Const(v), t)
            }
            ExprKind::Column { qualifier, name } => {
                if qualifier.is_none() {
                    if let Some(i) = self
                        .scope
                        .lambdas
                        .iter()
                        .rposition(|(n, _)| *n == name.name)
                    {
                        return Ok((Compiled::Lambda(i), Some(self.scope.lambdas[i].1.clone())));
                    }
                }
                let c = self.scope.resolve(qualifier.as_ref(), name)?;
                (Compiled::Column(c.index), Some(c.ty.clone()))
            }
            ExprKind::Deref { expr, field } => {
                let (c, t) = self.bind(expr)?;
                match t {
                    Some(SqlType::Struct(fields)) => {
                        let Some((fname, ft)) =
                            fields.iter().find(|(n, _)| n == &field.name).or_else(|| {
                                fields
                                    .iter()
                                    .find(|(n, _)| n.eq_ignore_ascii_case(&field.name))
                            })
                        else {
                            let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
                            return Err(SqlError::at(
                                field.pos,
                                format!(
                                    "struct has no field {}; its fields are {}",
                                    field.name,
                                    names.join(", ")
                                ),
                            ));
                        };
                        (Compiled::Deref(boxed(c), fname.clone()), Some(ft.clone()))
                    }
                    other => {
                        return Err(SqlError::at(
                            e.pos,
                            format!("-> needs a STRUCT, got {}", type_name(&other)),
                        ))
                    }
                }
            }
            ExprKind::Subscript { expr, index } => {
                let (c, t) = self.bind(expr)?;
                let (i, it) = self.bind(index)?;
                let out = match (&t, &it) {
                    (Some(SqlType::Array(inner)), Some(SqlType::Int | SqlType::BigInt) | None) => {
                        (**inner).clone()
                    }
                    (Some(SqlType::Map(k, v)), kt)
                        if kt.as_ref().is_none_or(|kt| castable(kt, k)) =>
                    {
                        (**v).clone()
                    }
                    _ => {
                        return Err(SqlError::at(
                            index.pos,
                            format!("cannot subscript {} with {}", type_name(&t), type_name(&it)),
                        ))
                    }
                };
                (Compiled::Subscript(boxed(c), boxed(i)), Some(out))
            }
            ExprKind::Unary { op, expr } => {
                let (c, t) = self.bind(expr)?;
                match op {
                    UnaryOp::Not => {
                        self.expect_bool(&t, expr.pos, "NOT")?;
                        (Compiled::Not(boxed(c)), Some(SqlType::Boolean))
                    }
                    UnaryOp::Neg => {
                        if !t.as_ref().is_none_or(SqlType::is_numeric) {
                            return Err(SqlError::at(
                                e.pos,
                                format!("cannot negate {}", type_name(&t)),
                            ));
                        }
                        (Compiled::Neg(boxed(c)), t)
                    }
                }
            }
            ExprKind::Binary { op, left, right } => match self.bind_binary(*op, left, right, e.pos)
            {
                Ok(bound) => bound,
                Err(mut err) if err.message.starts_with("cannot compare") => {
                    // ksqlDB's words: both sides with their types, and the
                    // comparison's name.
                    let name = match op {
                        BinaryOp::Eq => Some("EQUAL"),
                        BinaryOp::NotEq => Some("NOT_EQUAL"),
                        BinaryOp::Lt => Some("LESS_THAN"),
                        BinaryOp::LtEq => Some("LESS_THAN_OR_EQUAL"),
                        BinaryOp::Gt => Some("GREATER_THAN"),
                        BinaryOp::GtEq => Some("GREATER_THAN_OR_EQUAL"),
                        _ => None,
                    };
                    match (name, self.bind(left), self.bind(right)) {
                        (Some(name), Ok((_, lt)), Ok((_, rt))) => {
                            err.message = format!(
                                "Cannot compare {} ({}) to {} ({}) with {name}.",
                                self.scope.shown(left),
                                type_name(&lt),
                                self.scope.shown(right),
                                type_name(&rt)
                            );
                        }
                        _ => err.message.push_str(&format!(" in {e}")),
                    }
                    return Err(err);
                }
                Err(err) => return Err(err),
            },
            ExprKind::IsNull { expr, negated } => {
                let (c, _) = self.bind(expr)?;
                (Compiled::IsNull(boxed(c), *negated), Some(SqlType::Boolean))
            }
            ExprKind::IsDistinctFrom {
                left,
                right,
                negated,
            } => {
                let (l, lt) = self.bind(left)?;
                let (r, rt) = self.bind(right)?;
                self.check_comparable(&lt, &rt, e.pos)?;
                (
                    Compiled::Distinct(boxed(l), boxed(r), *negated),
                    Some(SqlType::Boolean),
                )
            }
            ExprKind::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let (low_ms, high_ms) = (magic_timestamp(low, expr), magic_timestamp(high, expr));
                let (low, high) = (
                    low_ms.as_ref().unwrap_or(low),
                    high_ms.as_ref().unwrap_or(high),
                );
                let (x, xt) = self.bind(expr)?;
                let (l, lt) = self.bind(low)?;
                let (h, ht) = self.bind(high)?;
                self.check_comparable(&xt, &lt, low.pos)?;
                self.check_comparable(&xt, &ht, high.pos)?;
                let (l, h) = (coerce_literal(l, &xt), coerce_literal(h, &xt));
                (
                    Compiled::Between(boxed(x), boxed(l), boxed(h), *negated),
                    Some(SqlType::Boolean),
                )
            }
            ExprKind::InList {
                expr,
                list,
                negated,
            } => {
                // ksqlDB coerces the value and the list to one type:
                // string literals to numbers or BOOLEAN, numbers widened,
                // ARRAY/MAP/STRUCT constructors element by element.
                let all: Vec<&Expr> = std::iter::once(expr.as_ref()).chain(list.iter()).collect();
                let common = self.common_type(&all).map_err(|mut err| {
                    if err.message.starts_with("operator does not exist")
                        || err.message.starts_with("invalid input syntax")
                    {
                        err.message = format!("Invalid Predicate: {}", err.message);
                    }
                    err
                })?;
                let (x, xt) = self.bind(expr)?;
                let to_common = |c: Compiled, t: &Option<SqlType>| match &common {
                    Some(ct) if t.as_ref() != Some(ct) => coerce_to(c, ct),
                    _ => c,
                };
                let mut items = Vec::with_capacity(list.len());
                for item in list {
                    let (c, t) = self.bind(item)?;
                    items.push(to_common(coerce_literal(c, &xt), &t));
                }
                let x = to_common(x, &xt);
                (
                    Compiled::In(boxed(x), items, *negated),
                    Some(SqlType::Boolean),
                )
            }
            ExprKind::Like {
                expr,
                pattern,
                escape,
                negated,
            } => {
                let (x, xt) = self.bind(expr)?;
                let (p, pt) = self.bind(pattern)?;
                for (t, pos) in [(&xt, expr.pos), (&pt, pattern.pos)] {
                    if !matches!(t, Some(SqlType::String) | None) {
                        return Err(SqlError::at(
                            pos,
                            format!("LIKE needs STRING operands, got {}", type_name(t)),
                        ));
                    }
                }
                let like = match p {
                    Compiled::Const(Value::String(s)) => Like::Fixed(Arc::new(
                        like_regex(&s, *escape)
                            .map_err(|m| SqlError::at(pattern.pos, m.to_string()))?,
                    )),
                    other => Like::Dynamic(boxed(other), *escape),
                };
                (
                    Compiled::Like(boxed(x), like, *negated),
                    Some(SqlType::Boolean),
                )
            }
            ExprKind::Case {
                operand,
                whens,
                else_,
            } => self.bind_case(operand.as_deref(), whens, else_.as_deref())?,
            ExprKind::Cast { expr, ty } => {
                let (c, t) = self.bind(expr)?;
                if let Some(from) = &t {
                    if !castable(from, ty) {
                        // ksqlDB finds this compiling the select
                        // expressions ("Invalid Select: …").
                        let stage = if self.scope.clause == "SELECT" {
                            "Invalid Select: "
                        } else {
                            ""
                        };
                        return Err(SqlError::at(
                            e.pos,
                            format!("{stage}Cast of {from} to {ty} is not supported"),
                        ));
                    }
                }
                (Compiled::Cast(boxed(c), ty.clone()), Some(ty.clone()))
            }
            ExprKind::Function {
                name,
                args,
                star,
                distinct,
            } => self.bind_call(name, args, *star, *distinct, e.pos)?,
            ExprKind::Lambda { .. } => {
                return Err(SqlError::at(
                    e.pos,
                    "a lambda is allowed only as an argument of TRANSFORM, FILTER or REDUCE",
                ))
            }
            ExprKind::Array(items) => {
                if items.is_empty() {
                    return Err(SqlError::at(e.pos, "Array constructor cannot be empty. Please supply at least one element (see https://github.com/confluentinc/ksql/issues/4239)."));
                }
                // Elements share a type as ksqlDB's user-list coercion
                // finds it ('1' and 2.5 make DECIMALs, structs widen).
                let ty = self.common_type(&items.iter().collect::<Vec<_>>())?;
                let mut out = Vec::new();
                for item in items {
                    out.push(self.bind(item)?.0);
                }
                let Some(ty) = ty else {
                    return Err(SqlError::at(e.pos, "Cannot construct an array with all NULL elements (see https://github.com/confluentinc/ksql/issues/4239). As a workaround, you may cast a NULL value to the desired type."));
                };
                let out = out.into_iter().map(|c| coerce_to(c, &ty)).collect();
                (Compiled::MakeArray(out), Some(SqlType::Array(Box::new(ty))))
            }
            ExprKind::Map(entries) => {
                if entries.is_empty() {
                    return Err(SqlError::at(e.pos, "Map constructor cannot be empty. Please supply at least one key value pair (see https://github.com/confluentinc/ksql/issues/4239)."));
                }
                let kt = self.common_type(&entries.iter().map(|(k, _)| k).collect::<Vec<_>>())?;
                let vt = self.common_type(&entries.iter().map(|(_, v)| v).collect::<Vec<_>>())?;
                let mut out = Vec::new();
                for (k, v) in entries {
                    out.push((self.bind(k)?.0, self.bind(v)?.0));
                }
                let Some(kt) = kt else {
                    return Err(SqlError::at(e.pos, "Cannot construct a map with all NULL keys (see https://github.com/confluentinc/ksql/issues/4239). As a workaround, you may cast a NULL key to the desired type."));
                };
                let Some(vt) = vt else {
                    return Err(SqlError::at(e.pos, "Cannot construct a map with all NULL values (see https://github.com/confluentinc/ksql/issues/4239). As a workaround, you may cast a NULL value to the desired type."));
                };
                let out = out
                    .into_iter()
                    .map(|(k, v)| (coerce_to(k, &kt), coerce_to(v, &vt)))
                    .collect();
                (
                    Compiled::MakeMap(out),
                    Some(SqlType::Map(Box::new(kt), Box::new(vt))),
                )
            }
            ExprKind::Struct(fields) => {
                let mut out = Vec::new();
                let mut types = Vec::new();
                for (name, v) in fields {
                    if types
                        .iter()
                        .any(|(n, _): &(String, SqlType)| *n == name.name)
                    {
                        return Err(SqlError::at(
                            name.pos,
                            format!("Duplicate field names found in STRUCT: '{}'", name.name),
                        ));
                    }
                    let (c, t) = self.bind(v)?;
                    types.push((name.name.clone(), t.unwrap_or(SqlType::String)));
                    out.push((name.name.clone(), c));
                }
                (Compiled::MakeStruct(out), Some(SqlType::Struct(types)))
            }
        })
    }

    /// The type a list of expressions shares, as ksqlDB's user-list
    /// coercion finds it (None: all NULL). Refusals start "operator does
    /// not exist" or "invalid input syntax".
    fn common_type(&mut self, exprs: &[&Expr]) -> Result<Option<SqlType>, SqlError> {
        let mut result = None;
        for e in exprs {
            result = self.common_with(e, result)?;
        }
        Ok(result)
    }

    fn common_with(
        &mut self,
        e: &Expr,
        target: Option<SqlType>,
    ) -> Result<Option<SqlType>, SqlError> {
        let (_, t) = self.bind(e)?;
        let Some(target) = target else {
            return Ok(t);
        };
        let Some(source) = t else {
            return Ok(Some(target));
        };
        let fail = || {
            SqlError::at(
                e.pos,
                format!(
                    "operator does not exist: {target} = {source} ({e})\nHint: You might need to add explicit type casts."
                ),
            )
        };
        // An element that cannot be coerced fails the whole constructor.
        let outer = |err: SqlError| {
            if err.message.starts_with("operator does not exist") {
                fail()
            } else {
                err
            }
        };
        let invalid = |value: &str, ty: &SqlType| {
            SqlError::at(
                e.pos,
                format!(
                    "invalid input syntax for type {}: \"{value}\".",
                    ty.base_name()
                ),
            )
        };
        match (&e.kind, &target) {
            (ExprKind::Array(items), SqlType::Array(elem)) => {
                let elem = self
                    .common_elements((**elem).clone(), items.iter())
                    .map_err(outer)?;
                Ok(Some(SqlType::Array(Box::new(elem))))
            }
            (ExprKind::Map(entries), SqlType::Map(k, v)) => {
                let k = self
                    .common_elements((**k).clone(), entries.iter().map(|(k, _)| k))
                    .map_err(outer)?;
                let v = self
                    .common_elements((**v).clone(), entries.iter().map(|(_, v)| v))
                    .map_err(outer)?;
                Ok(Some(SqlType::Map(Box::new(k), Box::new(v))))
            }
            (ExprKind::Struct(fields), SqlType::Struct(tf)) => {
                let mut out: Vec<(String, SqlType)> = Vec::new();
                let names = fields
                    .iter()
                    .map(|(n, _)| n.name.clone())
                    .chain(tf.iter().map(|(n, _)| n.clone()));
                for name in names {
                    if out.iter().any(|(n, _)| *n == name) {
                        continue;
                    }
                    let src = fields.iter().find(|(n, _)| n.name == name).map(|(_, v)| v);
                    let tgt = tf.iter().find(|(n, _)| *n == name).map(|(_, t)| t.clone());
                    let ty = match (src, tgt) {
                        (Some(v), tgt) => match self.common_with(v, tgt.clone()) {
                            Ok(t) => t.or(tgt).unwrap_or(SqlType::String),
                            Err(err) => return Err(outer(err)),
                        },
                        (None, Some(t)) => t,
                        (None, None) => continue,
                    };
                    out.push((name, ty));
                }
                Ok(Some(SqlType::Struct(out)))
            }
            (ExprKind::Array(_) | ExprKind::Map(_) | ExprKind::Struct(_), _) => Err(fail()),
            (ExprKind::Literal(Literal::String(v)), t) if t.is_numeric() => {
                let text = v.trim();
                let literal = if !text.contains(['.', 'e', 'E']) {
                    match text.parse::<i64>() {
                        Ok(i) if i32::try_from(i).is_ok() => SqlType::Int,
                        Ok(_) => SqlType::BigInt,
                        Err(_) => decimal_type(text).ok_or_else(|| invalid(v, t))?,
                    }
                } else if text.contains(['e', 'E']) {
                    // Scientific text is a DECIMAL too (Java's BigDecimal).
                    let d = Decimal::from_scientific(text).map_err(|_| invalid(v, t))?;
                    decimal_type(&d.to_string()).ok_or_else(|| invalid(v, t))?
                } else {
                    decimal_type(text).ok_or_else(|| invalid(v, t))?
                };
                Ok(SqlType::widen(&literal, t).or(Some(literal)))
            }
            (ExprKind::Literal(Literal::String(v)), SqlType::Boolean) => {
                if crate::cast::parse_boolean_prefix(v).is_some() {
                    Ok(Some(SqlType::Boolean))
                } else {
                    Err(invalid(v, &SqlType::Boolean))
                }
            }
            // A literal is written as text where the list is of STRINGs
            // (ksqlDB's lax literal coercion).
            (ExprKind::Literal(l), SqlType::String) if !matches!(l, Literal::Null) => {
                Ok(Some(SqlType::String))
            }
            _ => match widen_user(&source, &target) {
                Some(w) => Ok(Some(w)),
                None => Err(fail()),
            },
        }
    }

    /// The common type of `target` and some constructor elements.
    fn common_elements<'e>(
        &mut self,
        target: SqlType,
        items: impl Iterator<Item = &'e Expr>,
    ) -> Result<SqlType, SqlError> {
        let mut result = Some(target.clone());
        for e in items {
            result = self.common_with(e, result)?;
        }
        Ok(result.unwrap_or(target))
    }

    /// Binds a condition (WHERE, HAVING, ON): it must be BOOLEAN.
    pub fn bind_condition(&mut self, e: &Expr, clause: &str) -> Result<Compiled, SqlError> {
        let (c, t) = self.bind(e).map_err(|mut err| {
            if err.message.starts_with("Cannot compare")
                || err.message.starts_with("Error processing expression")
            {
                err.message = format!("Error in {clause} expression: {}", err.message);
            }
            err
        })?;
        if !matches!(t, Some(SqlType::Boolean) | None) {
            return Err(SqlError::at(
                e.pos,
                format!(
                    "Type error in {clause} expression: Should evaluate to boolean but is {e} ({}) instead.",
                    type_name(&t)
                ),
            ));
        }
        Ok(c)
    }

    fn expect_bool(&self, t: &Option<SqlType>, pos: Pos, what: &str) -> Result<(), SqlError> {
        if matches!(t, Some(SqlType::Boolean) | None) {
            Ok(())
        } else {
            Err(SqlError::at(
                pos,
                format!("{what} needs BOOLEAN operands, got {}", type_name(t)),
            ))
        }
    }

    fn unify(
        &self,
        a: Option<SqlType>,
        b: Option<SqlType>,
        pos: Pos,
    ) -> Result<Option<SqlType>, SqlError> {
        Ok(match (a, b) {
            (None, x) | (x, None) => x,
            (Some(a), Some(b)) if a == b => Some(a),
            (Some(a), Some(b)) => match SqlType::widen(&a, &b) {
                Some(w) => Some(w),
                None => {
                    return Err(SqlError::at(
                        pos,
                        format!("expected {a}, got {b}: all values must have one type"),
                    ))
                }
            },
        })
    }

    fn check_comparable(
        &self,
        a: &Option<SqlType>,
        b: &Option<SqlType>,
        pos: Pos,
    ) -> Result<(), SqlError> {
        let ok = match (a, b) {
            (None, _) | (_, None) => true,
            (Some(a), Some(b)) => {
                a == b
                    || (a.is_numeric() && b.is_numeric())
                    || matches!(
                        (a, b),
                        (
                            SqlType::Timestamp | SqlType::Date | SqlType::Time,
                            SqlType::String
                        ) | (
                            SqlType::String,
                            SqlType::Timestamp | SqlType::Date | SqlType::Time
                        )
                    )
                    || matches!((a, b), (SqlType::Array(_), SqlType::Array(_)))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(SqlError::at(
                pos,
                format!("cannot compare {} with {}", type_name(a), type_name(b)),
            ))
        }
    }

    fn bind_binary(
        &mut self,
        op: BinaryOp,
        left: &Expr,
        right: &Expr,
        pos: Pos,
    ) -> Result<(Compiled, Option<SqlType>), SqlError> {
        let comparison = matches!(
            op,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
        );
        let (left_ms, right_ms) = if comparison {
            (magic_timestamp(left, right), magic_timestamp(right, left))
        } else {
            (None, None)
        };
        let (left, right) = (
            left_ms.as_ref().unwrap_or(left),
            right_ms.as_ref().unwrap_or(right),
        );
        let (l, lt) = self.bind(left)?;
        let (r, rt) = self.bind(right)?;
        Ok(match op {
            BinaryOp::And | BinaryOp::Or => {
                self.expect_bool(&lt, left.pos, &op.to_string())?;
                self.expect_bool(&rt, right.pos, &op.to_string())?;
                let c = if op == BinaryOp::And {
                    Compiled::And(boxed(l), boxed(r))
                } else {
                    Compiled::Or(boxed(l), boxed(r))
                };
                (c, Some(SqlType::Boolean))
            }
            BinaryOp::Eq
            | BinaryOp::NotEq
            | BinaryOp::Lt
            | BinaryOp::LtEq
            | BinaryOp::Gt
            | BinaryOp::GtEq => {
                // ksqlDB refuses a bare NULL on either side, naming the
                // base types.
                let null = |e: &Expr| matches!(e.kind, ExprKind::Literal(Literal::Null));
                if null(left) || null(right) {
                    let base = |t: &Option<SqlType>, e: &Expr| match t {
                        Some(t) if !null(e) => t.base_name(),
                        _ => "NULL",
                    };
                    return Err(SqlError::at(
                        pos,
                        format!(
                            "Comparison with NULL not supported: {} {op} {}\nUse 'IS NULL' or 'IS NOT NULL' instead.",
                            base(&lt, left),
                            base(&rt, right)
                        ),
                    ));
                }
                self.check_comparable(&lt, &rt, pos)?;
                // Collections and structs are only equal or not.
                let ordered = !matches!(op, BinaryOp::Eq | BinaryOp::NotEq);
                let collection = |t: &Option<SqlType>| {
                    matches!(
                        t,
                        Some(SqlType::Array(_) | SqlType::Map(..) | SqlType::Struct(_))
                    )
                };
                if ordered && (collection(&lt) || collection(&rt)) {
                    return Err(SqlError::at(
                        pos,
                        format!("cannot compare {} with {}", type_name(&lt), type_name(&rt)),
                    ));
                }
                let l = coerce_literal(l, &rt);
                let r = coerce_literal(r, &lt);
                (
                    Compiled::Compare(op, boxed(l), boxed(r)),
                    Some(SqlType::Boolean),
                )
            }
            BinaryOp::Concat => {
                for (t, p) in [(&lt, left.pos), (&rt, right.pos)] {
                    if !matches!(t, Some(SqlType::String) | None) {
                        return Err(SqlError::at(
                            p,
                            format!("|| needs STRING operands, got {}", type_name(t)),
                        ));
                    }
                }
                (Compiled::Concat(boxed(l), boxed(r)), Some(SqlType::String))
            }
            BinaryOp::Add if lt == Some(SqlType::String) && rt == Some(SqlType::String) => {
                (Compiled::Concat(boxed(l), boxed(r)), Some(SqlType::String))
            }
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
                let t = match (&lt, &rt) {
                    (None, None) => SqlType::Int,
                    (Some(t), None) | (None, Some(t)) if t.is_numeric() => t.clone(),
                    (Some(a), Some(b)) if a.is_numeric() && b.is_numeric() => arith_type(op, a, b),
                    _ => {
                        return Err(SqlError::at(
                            pos,
                            format!(
                                "Error processing expression: ({left} {op} {right}). Unsupported arithmetic types. {} {}",
                                lt.as_ref().map_or("NULL", SqlType::base_name),
                                rt.as_ref().map_or("NULL", SqlType::base_name)
                            ),
                        ))
                    }
                };
                (Compiled::Arith(op, boxed(l), boxed(r), t.clone()), Some(t))
            }
        })
    }

    fn bind_case(
        &mut self,
        operand: Option<&Expr>,
        whens: &[(Expr, Expr)],
        else_: Option<&Expr>,
    ) -> Result<(Compiled, Option<SqlType>), SqlError> {
        let op = match operand {
            Some(o) => Some((self.bind(o)?, o.pos)),
            None => None,
        };
        let mut out = Vec::new();
        let mut ty: Option<SqlType> = None;
        let mut results = Vec::new();
        for (w, t) in whens {
            let cond = match &op {
                Some(((oc, ot), _)) => {
                    let (wc, wt) = self.bind(w)?;
                    self.check_comparable(ot, &wt, w.pos)?;
                    Compiled::Compare(BinaryOp::Eq, boxed(oc.clone()), boxed(wc))
                }
                None => self.bind_condition(w, "WHEN")?,
            };
            let (tc, tt) = self.bind(t)?;
            ty = self.unify(ty, tt, t.pos)?;
            out.push(cond);
            results.push(tc);
        }
        let els = match else_ {
            Some(e) => {
                let (c, t) = self.bind(e)?;
                ty = self.unify(ty, t, e.pos)?;
                Some(c)
            }
            None => None,
        };
        if ty.is_none() {
            let pos = whens.first().map_or_else(Default::default, |(_, t)| t.pos);
            return Err(SqlError::at(
                pos,
                "Invalid Case expression. All case branches have NULL type",
            ));
        }
        let wrap = |c: Compiled| match &ty {
            Some(t) => coerce_to(c, t),
            None => c,
        };
        let pairs = out.into_iter().zip(results.into_iter().map(wrap)).collect();
        let els = els.map(|c| boxed(wrap(c)));
        Ok((Compiled::Case(pairs, els), ty))
    }

    fn bind_lambda(
        &mut self,
        e: &Expr,
        types: &[SqlType],
    ) -> Result<(Compiled, Option<SqlType>, usize), SqlError> {
        let ExprKind::Lambda { params, body } = &e.kind else {
            return Err(SqlError::at(e.pos, "expected a lambda such as x => x + 1"));
        };
        if params.len() != types.len() {
            return Err(SqlError::at(
                e.pos,
                format!(
                    "this lambda needs {} parameter(s), got {}",
                    types.len(),
                    params.len()
                ),
            ));
        }
        let base = self.scope.lambdas.len();
        for (p, t) in params.iter().zip(types) {
            self.scope.lambdas.push((p.name.clone(), t.clone()));
        }
        let r = self.bind(body);
        self.scope.lambdas.truncate(base);
        let (c, t) = r?;
        Ok((c, t, base))
    }

    fn bind_call(
        &mut self,
        name: &Ident,
        args: &[Expr],
        star: bool,
        distinct: bool,
        pos: Pos,
    ) -> Result<(Compiled, Option<SqlType>), SqlError> {
        let fname = name.name.to_ascii_uppercase();
        // DATEADD(DAYS, 3, d): the unit is a bare word, not a column.
        if matches!(
            fname.as_str(),
            "DATEADD" | "DATESUB" | "TIMEADD" | "TIMESUB" | "TIMESTAMPADD" | "TIMESTAMPSUB"
        ) {
            if let Some(ExprKind::Column {
                qualifier: None,
                name: unit,
            }) = args.first().map(|a| &a.kind)
            {
                let u = unit.name.to_ascii_uppercase();
                let units = [
                    "MILLISECOND",
                    "MILLISECONDS",
                    "SECOND",
                    "SECONDS",
                    "MINUTE",
                    "MINUTES",
                    "HOUR",
                    "HOURS",
                    "DAY",
                    "DAYS",
                ];
                if units.contains(&u.as_str()) {
                    let mut args = args.to_vec();
                    args[0] = Expr {
                        kind: ExprKind::Literal(Literal::String(u)),
                        pos: args[0].pos,
                    };
                    return self.bind_call(name, &args, star, distinct, pos);
                }
            }
        }
        if self.functions.aggregate(&fname).is_some() {
            return Err(SqlError::at(
                name.pos,
                format!("aggregate function {fname} is allowed only in the SELECT or HAVING of a GROUP BY query"),
            ));
        }
        if self.functions.table(&fname).is_some() {
            return Err(SqlError::at(
                name.pos,
                format!("table function {fname} is allowed only as a SELECT column"),
            ));
        }
        // A scalar's `F(*)` is `F()`, as in ksqlDB (which then names the
        // missing parameters).
        let _ = star;
        if distinct {
            return Err(SqlError::at(
                pos,
                format!("DISTINCT is only for aggregate functions, not {fname}"),
            ));
        }
        match fname.as_str() {
            "TRANSFORM" | "FILTER" if args.len() == 2 => {
                let (arr, at) = self.bind(&args[0])?;
                match at {
                    Some(SqlType::Array(inner)) => {
                        let (body, bt, slot) = self.bind_lambda(&args[1], &[(*inner).clone()])?;
                        if fname == "FILTER" {
                            if !matches!(bt, Some(SqlType::Boolean) | None) {
                                return Err(SqlError::at(
                                    args[1].pos,
                                    "FILTER's lambda must return BOOLEAN",
                                ));
                            }
                            return Ok((
                                Compiled::Filter(boxed(arr), boxed(body), slot),
                                Some(SqlType::Array(inner)),
                            ));
                        }
                        let bt = bt.unwrap_or(SqlType::String);
                        return Ok((
                            Compiled::Transform(boxed(arr), boxed(body), slot),
                            Some(SqlType::Array(Box::new(bt))),
                        ));
                    }
                    Some(SqlType::Map(k, v)) if fname == "FILTER" => {
                        let (body, _, slot) =
                            self.bind_lambda(&args[1], &[(*k).clone(), (*v).clone()])?;
                        return Ok((
                            Compiled::FilterMap(boxed(arr), boxed(body), slot),
                            Some(SqlType::Map(k, v)),
                        ));
                    }
                    other => {
                        return Err(SqlError::at(
                            args[0].pos,
                            format!("{fname} needs an ARRAY or MAP, got {}", type_name(&other)),
                        ))
                    }
                }
            }
            "TRANSFORM" if args.len() == 3 => {
                let (map, mt) = self.bind(&args[0])?;
                let Some(SqlType::Map(k, v)) = mt else {
                    return Err(SqlError::at(
                        args[0].pos,
                        "TRANSFORM with two lambdas needs a MAP",
                    ));
                };
                let types = [(*k).clone(), (*v).clone()];
                let (kf, kt, slot) = self.bind_lambda(&args[1], &types)?;
                let (vf, vt, _) = self.bind_lambda(&args[2], &types)?;
                return Ok((
                    Compiled::TransformMap(boxed(map), boxed(kf), boxed(vf), slot),
                    Some(SqlType::Map(
                        Box::new(kt.unwrap_or(SqlType::String)),
                        Box::new(vt.unwrap_or(SqlType::String)),
                    )),
                ));
            }
            "REDUCE" if args.len() == 3 => {
                let (arr, at) = self.bind(&args[0])?;
                let (init, it) = self.bind(&args[1])?;
                // The lambda takes the state and an element, or the state,
                // a key and a value of a map.
                let st = it.unwrap_or(SqlType::BigInt);
                let params = match at {
                    Some(SqlType::Array(inner)) => vec![st.clone(), *inner],
                    Some(SqlType::Map(k, v)) => vec![st.clone(), *k, *v],
                    _ => return Err(SqlError::at(args[0].pos, "REDUCE needs an ARRAY or a MAP")),
                };
                let (body, _, slot) = self.bind_lambda(&args[2], &params)?;
                return Ok((
                    Compiled::Reduce(boxed(arr), boxed(init), boxed(coerce_to(body, &st)), slot),
                    Some(st),
                ));
            }
            _ => {}
        }
        let Some(f) = self.functions.scalar_arc(&fname) else {
            let mut msg = format!("Can't find any functions with the name '{fname}'");
            if let Some(s) = self.functions.suggest(&fname) {
                msg.push_str(&format!("; did you mean {s}?"));
            }
            return Err(SqlError::at(name.pos, msg));
        };
        let mut compiled = Vec::with_capacity(args.len());
        let mut types = Vec::with_capacity(args.len());
        for a in args {
            let (c, t) = self.bind(a)?;
            compiled.push(c);
            types.push(t);
        }
        let rt = f
            .return_type(&types)
            .map_err(|e| SqlError::at(name.pos, e.to_string()))?;
        // GREATEST/LEAST over dates, times or timestamps read text
        // arguments as that type.
        if matches!(fname.as_str(), "GREATEST" | "LEAST") {
            let rt = Some(rt.clone());
            compiled = compiled
                .into_iter()
                .map(|c| coerce_literal(c, &rt))
                .collect();
        }
        // Functions of constants are evaluated once, here.
        if compiled.iter().all(|c| matches!(c, Compiled::Const(_)))
            && !matches!(
                fname.as_str(),
                "RANDOM" | "UUID" | "UNIX_TIMESTAMP" | "UNIX_DATE"
            )
        {
            let vals: Vec<Value> = compiled
                .iter()
                .map(|c| match c {
                    Compiled::Const(v) => v.clone(),
                    _ => Value::Null,
                })
                .collect();
            if let Ok(v) = f.call(&vals) {
                return Ok((Compiled::Const(v), Some(rt)));
            }
        }
        Ok((Compiled::Call(f, compiled), Some(rt)))
    }
}

/// The result type of arithmetic, as ksqlDB computes it.
fn arith_type(op: BinaryOp, a: &SqlType, b: &SqlType) -> SqlType {
    let dec = |t: &SqlType| match t {
        SqlType::Int => Some((10u8, 0u8)),
        SqlType::BigInt => Some((19, 0)),
        SqlType::Decimal { precision, scale } => Some((*precision, *scale)),
        _ => None,
    };
    if matches!(a, SqlType::Double) || matches!(b, SqlType::Double) {
        return SqlType::Double;
    }
    if matches!(a, SqlType::Decimal { .. }) || matches!(b, SqlType::Decimal { .. }) {
        let ((p1, s1), (p2, s2)) = (dec(a).unwrap_or((10, 0)), dec(b).unwrap_or((10, 0)));
        let (p1, s1, p2, s2) = (u32::from(p1), u32::from(s1), u32::from(p2), u32::from(s2));
        let (p, s) = match op {
            BinaryOp::Add | BinaryOp::Sub => {
                let s = s1.max(s2);
                ((p1 - s1).max(p2 - s2) + s + 1, s)
            }
            BinaryOp::Mul => (p1 + p2 + 1, s1 + s2),
            BinaryOp::Div => {
                let s = 6.max(s1 + p2 + 1);
                (p1 - s1 + s2 + s, s)
            }
            _ => {
                let s = s1.max(s2);
                ((p1 - s1).min(p2 - s2) + s, s)
            }
        };
        let s = s.min(28);
        return SqlType::Decimal {
            precision: p.clamp(s.max(1), 38) as u8,
            scale: s as u8,
        };
    }
    SqlType::widen(a, b).unwrap_or(SqlType::BigInt)
}

/// A string literal compared with a temporal column is read as that type.
fn coerce_literal(c: Compiled, other: &Option<SqlType>) -> Compiled {
    match (&c, other) {
        (
            Compiled::Const(Value::String(s)),
            Some(t @ (SqlType::Timestamp | SqlType::Date | SqlType::Time)),
        ) => match crate::cast::from_text(t, s) {
            Ok(v) => Compiled::Const(v),
            Err(_) => c,
        },
        _ => c,
    }
}

fn coerce_to(c: Compiled, t: &SqlType) -> Compiled {
    match &c {
        Compiled::Const(Value::String(s)) if *t == SqlType::Boolean => {
            match crate::cast::parse_boolean_prefix(s) {
                Some(b) => Compiled::Const(Value::Boolean(b)),
                None => c,
            }
        }
        Compiled::Const(v) => match v.type_of() {
            None => c,
            Some(vt) if &vt == t => c,
            Some(_) => match cast(v, t) {
                Ok(v) => Compiled::Const(v),
                Err(_) => c,
            },
        },
        _ => Compiled::Cast(boxed(c), t.clone()),
    }
}

/// The type two elements of a user list widen to, as ksqlDB's coercer
/// finds it: an INT or BIGINT meeting a DECIMAL widens as DECIMAL(10, 0)
/// or DECIMAL(19, 0) would; otherwise as [`widen_deep`].
fn widen_user(a: &SqlType, b: &SqlType) -> Option<SqlType> {
    let as_decimal = |t: &SqlType| match t {
        SqlType::Int => SqlType::Decimal {
            precision: 10,
            scale: 0,
        },
        SqlType::BigInt => SqlType::Decimal {
            precision: 19,
            scale: 0,
        },
        other => other.clone(),
    };
    match (a, b) {
        (SqlType::Int | SqlType::BigInt, SqlType::Decimal { .. })
        | (SqlType::Decimal { .. }, SqlType::Int | SqlType::BigInt) => {
            SqlType::widen(&as_decimal(a), &as_decimal(b))
        }
        _ => widen_deep(a, b),
    }
}

/// The type two types widen to, numbers inside ARRAYs, MAPs and STRUCTs
/// too (a STRUCT whose fields another has widens to that one); None when
/// they do not.
fn widen_deep(a: &SqlType, b: &SqlType) -> Option<SqlType> {
    match (a, b) {
        _ if a == b => Some(a.clone()),
        (SqlType::Array(x), SqlType::Array(y)) => Some(SqlType::Array(Box::new(widen_deep(x, y)?))),
        (SqlType::Map(ka, va), SqlType::Map(kb, vb)) => Some(SqlType::Map(
            Box::new(widen_deep(ka, kb)?),
            Box::new(widen_deep(va, vb)?),
        )),
        (SqlType::Struct(fa), SqlType::Struct(fb)) if fa.len() == fb.len() => {
            let mut out = Vec::with_capacity(fa.len());
            for ((na, ta), (nb, tb)) in fa.iter().zip(fb) {
                if na != nb {
                    return None;
                }
                out.push((na.clone(), widen_deep(ta, tb)?));
            }
            Some(SqlType::Struct(out))
        }
        (SqlType::Struct(fa), SqlType::Struct(fb)) => {
            // The one with more fields, when it has all of the other's.
            let (small, big) = if fa.len() < fb.len() {
                (fa, fb)
            } else {
                (fb, fa)
            };
            let mut out = big.clone();
            for (n, t) in small {
                let slot = out.iter_mut().find(|(m, _)| m == n)?;
                slot.1 = widen_deep(&slot.1, t)?;
            }
            Some(SqlType::Struct(out))
        }
        _ => SqlType::widen(a, b),
    }
}

/// The DECIMAL type of a number written as text (`"12.50"` is
/// DECIMAL(4, 2)); None when it is not a number.
fn decimal_type(text: &str) -> Option<SqlType> {
    let d = text.parse::<Decimal>().ok()?;
    let scale = u8::try_from(d.scale()).ok()?;
    let digits = d.mantissa().unsigned_abs().to_string().len();
    let precision = u8::try_from(digits.max(usize::from(scale)).max(1)).ok()?;
    Some(SqlType::Decimal { precision, scale })
}

/// A literal's value: integers that fit are INT, else BIGINT; `1.5` is a
/// DECIMAL; `1e3` a DOUBLE.
pub fn literal_value(l: &Literal, pos: Pos) -> Result<Value, SqlError> {
    Ok(match l {
        Literal::Null => Value::Null,
        Literal::Boolean(b) => Value::Boolean(*b),
        Literal::Integer(i) => match i32::try_from(*i) {
            Ok(v) => Value::Int(v),
            Err(_) => Value::BigInt(*i),
        },
        Literal::Decimal(text) => Value::Decimal(
            text.parse::<Decimal>()
                .map_err(|_| SqlError::at(pos, format!("decimal {text} is out of range")))?,
        ),
        Literal::Double(d) => Value::Double(*d),
        Literal::String(s) => Value::String(s.clone()),
    })
}

/// Where expressions read from: the row and the lambda arguments.
static NULL: Value = Value::Null;

pub struct Env<'a> {
    pub row: &'a [Value],
    pub lambdas: Vec<Value>,
}

impl Compiled {
    /// Evaluates against a row; errors (a bad cast, a function failing)
    /// give NULL, as in ksqlDB.
    pub fn eval(&self, row: &[Value]) -> Value {
        // The usual shapes (a column, a column against a constant) are
        // answered here, without the general evaluator's environment.
        match self {
            Compiled::Column(i) => return row.get(*i).cloned().unwrap_or_default(),
            Compiled::Compare(op, l, r) => {
                if let (Some(a), Some(b)) = (l.leaf(row), r.leaf(row)) {
                    return compare(*op, a, b);
                }
            }
            Compiled::Arith(op, l, r, t) => {
                if let (Some(a), Some(b)) = (l.leaf(row), r.leaf(row)) {
                    return arith(*op, a, b, t);
                }
            }
            _ => {}
        }
        self.eval_general(row)
    }

    /// [`Compiled::eval`] for every other shape: kept out of line so the
    /// common shapes above pay for no environment and no large frame.
    #[inline(never)]
    fn eval_general(&self, row: &[Value]) -> Value {
        let mut env = Env {
            row,
            lambdas: Vec::new(),
        };
        let v = self.eval_in(&mut env);
        crate::types::discard_row(env.lambdas);
        v
    }

    /// Evaluates a condition: NULL counts as false.
    pub fn test(&self, row: &[Value]) -> bool {
        if let Compiled::Compare(op, l, r) = self {
            if let (Some(a), Some(b)) = (l.leaf(row), r.leaf(row)) {
                return compare_holds(*op, a, b);
            }
        }
        let v = self.eval(row);
        let pass = matches!(v, Value::Boolean(true));
        v.discard();
        pass
    }

    /// A column's or a constant's value, borrowed; `None` for anything
    /// to evaluate.
    #[inline]
    fn leaf<'v>(&'v self, row: &'v [Value]) -> Option<&'v Value> {
        match self {
            Compiled::Column(i) => Some(row.get(*i).unwrap_or(&NULL)),
            Compiled::Const(v) => Some(v),
            _ => None,
        }
    }

    /// A sub-expression's value: borrowed in place when it is a column or
    /// a constant, else evaluated into `tmp`.
    fn operand<'v>(&'v self, row: &'v [Value], env: &mut Env<'_>, tmp: &'v mut Value) -> &'v Value {
        match self.leaf(row) {
            Some(v) => v,
            None => {
                tmp.set(self.eval_in(env));
                tmp
            }
        }
    }

    pub fn eval_in(&self, env: &mut Env<'_>) -> Value {
        match self {
            Compiled::Const(v) => v.clone(),
            Compiled::Column(i) => env.row.get(*i).cloned().unwrap_or_default(),
            Compiled::Lambda(i) => env.lambdas.get(*i).cloned().unwrap_or_default(),
            Compiled::Deref(e, field) => match e.eval_in(env) {
                Value::Struct(fields) => fields
                    .into_iter()
                    .find(|(n, _)| n == field)
                    .map(|(_, v)| v)
                    .unwrap_or_default(),
                _ => Value::Null,
            },
            Compiled::Subscript(e, i) => {
                let (c, i) = (e.eval_in(env), i.eval_in(env));
                match (c, i) {
                    (Value::Array(items), idx) => match idx.as_i64() {
                        Some(n) if n > 0 => {
                            items.into_iter().nth((n - 1) as usize).unwrap_or_default()
                        }
                        Some(n) if n < 0 => {
                            let len = items.len() as i64;
                            if -n <= len {
                                items
                                    .into_iter()
                                    .nth((len + n) as usize)
                                    .unwrap_or_default()
                            } else {
                                Value::Null
                            }
                        }
                        _ => Value::Null,
                    },
                    (Value::Map(entries), k) => entries
                        .into_iter()
                        .find(|(ek, _)| ek.sql_cmp(&k) == Some(Ordering::Equal))
                        .map(|(_, v)| v)
                        .unwrap_or_default(),
                    _ => Value::Null,
                }
            }
            Compiled::Not(e) => match e.eval_in(env) {
                Value::Boolean(b) => Value::Boolean(!b),
                _ => Value::Null,
            },
            Compiled::Neg(e) => match e.eval_in(env) {
                Value::Int(i) => Value::Int(i.wrapping_neg()),
                Value::BigInt(i) => Value::BigInt(i.wrapping_neg()),
                Value::Double(d) => Value::Double(-d),
                Value::Decimal(d) => Value::Decimal(-d),
                _ => Value::Null,
            },
            Compiled::Arith(op, l, r, t) => {
                let (mut ta, mut tb) = (Value::Null, Value::Null);
                let v = {
                    let row = env.row;
                    let a = l.operand(row, env, &mut ta);
                    let b = r.operand(row, env, &mut tb);
                    arith(*op, a, b, t)
                };
                ta.discard();
                tb.discard();
                v
            }
            Compiled::Concat(l, r) => match (l.eval_in(env), r.eval_in(env)) {
                (Value::String(a), Value::String(b)) => Value::String(a + &b),
                _ => Value::Null,
            },
            Compiled::Compare(op, l, r) => {
                // Columns and constants are compared in place, not copied.
                let row = env.row;
                let (mut ta, mut tb) = (Value::Null, Value::Null);
                let a = l.operand(row, env, &mut ta);
                let b = r.operand(row, env, &mut tb);
                let v = compare(*op, a, b);
                ta.discard();
                tb.discard();
                v
            }
            Compiled::And(l, r) => match l.eval_in(env) {
                Value::Boolean(false) => Value::Boolean(false),
                a => match (a, r.eval_in(env)) {
                    (_, Value::Boolean(false)) => Value::Boolean(false),
                    (Value::Boolean(true), Value::Boolean(true)) => Value::Boolean(true),
                    _ => Value::Null,
                },
            },
            Compiled::Or(l, r) => match l.eval_in(env) {
                Value::Boolean(true) => Value::Boolean(true),
                a => match (a, r.eval_in(env)) {
                    (_, Value::Boolean(true)) => Value::Boolean(true),
                    (Value::Boolean(false), Value::Boolean(false)) => Value::Boolean(false),
                    _ => Value::Null,
                },
            },
            Compiled::IsNull(e, negated) => Value::Boolean(e.eval_in(env).is_null() != *negated),
            Compiled::Distinct(l, r, negated) => {
                let (a, b) = (l.eval_in(env), r.eval_in(env));
                let same = match (a.is_null(), b.is_null()) {
                    (true, true) => true,
                    (false, false) => a.sql_eq(&b),
                    _ => false,
                };
                Value::Boolean(same == *negated)
            }
            Compiled::Between(x, lo, hi, negated) => {
                let (x, lo, hi) = (x.eval_in(env), lo.eval_in(env), hi.eval_in(env));
                match (x.sql_cmp(&lo), x.sql_cmp(&hi)) {
                    (Some(a), Some(b)) => {
                        Value::Boolean((a != Ordering::Less && b != Ordering::Greater) != *negated)
                    }
                    _ => Value::Null,
                }
            }
            Compiled::In(x, items, negated) => {
                let x = x.eval_in(env);
                if x.is_null() {
                    return Value::Null;
                }
                let mut saw_null = false;
                // Arrays, maps and structs have no order: they match by
                // content (NULL elements equal), as ksqlDB's IN compares them.
                let collection = matches!(x, Value::Array(_) | Value::Map(_) | Value::Struct(_));
                for item in items {
                    let v = item.eval_in(env);
                    if collection {
                        if x.sql_eq(&v) {
                            return Value::Boolean(!*negated);
                        }
                        saw_null |= v.is_null();
                        continue;
                    }
                    match x.sql_cmp(&v) {
                        Some(Ordering::Equal) => return Value::Boolean(!*negated),
                        None => saw_null |= v.is_null(),
                        _ => {}
                    }
                }
                if saw_null {
                    Value::Null
                } else {
                    Value::Boolean(*negated)
                }
            }
            Compiled::Like(x, like, negated) => {
                let Value::String(s) = x.eval_in(env) else {
                    return Value::Null;
                };
                let matched = match like {
                    Like::Fixed(re) => re.is_match(&s),
                    Like::Dynamic(p, esc) => match p.eval_in(env) {
                        Value::String(p) => match like_regex(&p, *esc) {
                            Ok(re) => re.is_match(&s),
                            Err(_) => return Value::Null,
                        },
                        _ => return Value::Null,
                    },
                };
                Value::Boolean(matched != *negated)
            }
            Compiled::Case(whens, els) => {
                for (cond, result) in whens {
                    if matches!(cond.eval_in(env), Value::Boolean(true)) {
                        return result.eval_in(env);
                    }
                }
                els.as_ref().map(|e| e.eval_in(env)).unwrap_or_default()
            }
            Compiled::Cast(e, t) => cast(&e.eval_in(env), t).unwrap_or_else(|err| {
                tracing::debug!(error = %err, "cast failed; using NULL");
                Value::Null
            }),
            Compiled::Call(f, args) => {
                let vals: Vec<Value> = args.iter().map(|a| a.eval_in(env)).collect();
                f.call(&vals).unwrap_or_else(|err| {
                    tracing::debug!(function = f.info().name, error = %err, "function failed; using NULL");
                    Value::Null
                })
            }
            Compiled::Transform(arr, body, slot) => match arr.eval_in(env) {
                Value::Array(items) => Value::Array(
                    items
                        .into_iter()
                        .map(|x| with_lambdas(env, *slot, vec![x], body))
                        .collect(),
                ),
                _ => Value::Null,
            },
            Compiled::Filter(arr, body, slot) => match arr.eval_in(env) {
                Value::Array(items) => Value::Array(
                    items
                        .into_iter()
                        .filter(|x| {
                            matches!(
                                with_lambdas(env, *slot, vec![x.clone()], body),
                                Value::Boolean(true)
                            )
                        })
                        .collect(),
                ),
                _ => Value::Null,
            },
            Compiled::FilterMap(map, body, slot) => match map.eval_in(env) {
                Value::Map(entries) => Value::Map(
                    entries
                        .into_iter()
                        .filter(|(k, v)| {
                            matches!(
                                with_lambdas(env, *slot, vec![k.clone(), v.clone()], body),
                                Value::Boolean(true)
                            )
                        })
                        .collect(),
                ),
                _ => Value::Null,
            },
            Compiled::TransformMap(map, kf, vf, slot) => match map.eval_in(env) {
                Value::Map(entries) => Value::Map(
                    entries
                        .into_iter()
                        .map(|(k, v)| {
                            let nk = with_lambdas(env, *slot, vec![k.clone(), v.clone()], kf);
                            let nv = with_lambdas(env, *slot, vec![k, v], vf);
                            (nk, nv)
                        })
                        .collect(),
                ),
                _ => Value::Null,
            },
            // A NULL collection reduces to the initial state, as in ksqlDB.
            Compiled::Reduce(arr, init, body, slot) => match arr.eval_in(env) {
                Value::Array(items) => {
                    let mut state = init.eval_in(env);
                    for x in items {
                        state = with_lambdas(env, *slot, vec![state, x], body);
                    }
                    state
                }
                Value::Map(entries) => {
                    let mut state = init.eval_in(env);
                    for (k, v) in entries {
                        state = with_lambdas(env, *slot, vec![state, k, v], body);
                    }
                    state
                }
                _ => init.eval_in(env),
            },
            Compiled::MakeArray(items) => {
                Value::Array(items.iter().map(|c| c.eval_in(env)).collect())
            }
            Compiled::MakeMap(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| (k.eval_in(env), v.eval_in(env)))
                    .collect(),
            ),
            Compiled::MakeStruct(fields) => Value::Struct(
                fields
                    .iter()
                    .map(|(n, c)| (n.clone(), c.eval_in(env)))
                    .collect(),
            ),
        }
    }
}

fn with_lambdas(env: &mut Env<'_>, slot: usize, args: Vec<Value>, body: &Compiled) -> Value {
    env.lambdas.truncate(slot);
    env.lambdas.extend(args);
    let v = body.eval_in(env);
    env.lambdas.truncate(slot);
    v
}

/// A comparison's result: NULL when either side is NULL (or the two do
/// not compare).
/// A comparison as ksqlDB evaluates it: FALSE (not NULL) when either side
/// is NULL; `=` and `<>` compare collections and structs deeply.
fn compare(op: BinaryOp, a: &Value, b: &Value) -> Value {
    Value::Boolean(compare_holds(op, a, b))
}

#[inline]
fn compare_holds(op: BinaryOp, a: &Value, b: &Value) -> bool {
    if a.is_null() || b.is_null() {
        return false;
    }
    let deep = |v: &Value| matches!(v, Value::Array(_) | Value::Map(_) | Value::Struct(_));
    if matches!(op, BinaryOp::Eq | BinaryOp::NotEq) && (deep(a) || deep(b)) {
        return a.sql_eq(b) == (op == BinaryOp::Eq);
    }
    a.sql_cmp(b).is_some_and(|o| holds(op, o))
}

/// Whether two values ordered `o` satisfy the comparison `op`.
#[inline]
fn holds(op: BinaryOp, o: Ordering) -> bool {
    match op {
        BinaryOp::Eq => o == Ordering::Equal,
        BinaryOp::NotEq => o != Ordering::Equal,
        BinaryOp::Lt => o == Ordering::Less,
        BinaryOp::LtEq => o != Ordering::Greater,
        BinaryOp::Gt => o == Ordering::Greater,
        _ => o != Ordering::Less,
    }
}

fn arith(op: BinaryOp, a: &Value, b: &Value, t: &SqlType) -> Value {
    if a.is_null() || b.is_null() {
        return Value::Null;
    }
    match t {
        SqlType::Int | SqlType::BigInt => {
            let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) else {
                return Value::Null;
            };
            let r = match op {
                BinaryOp::Add => x.wrapping_add(y),
                BinaryOp::Sub => x.wrapping_sub(y),
                BinaryOp::Mul => x.wrapping_mul(y),
                BinaryOp::Div => match x.checked_div(y) {
                    Some(r) => r,
                    None => return Value::Null,
                },
                _ => match x.checked_rem(y) {
                    Some(r) => r,
                    None => return Value::Null,
                },
            };
            if matches!(t, SqlType::Int) {
                Value::Int(r as i32)
            } else {
                Value::BigInt(r)
            }
        }
        SqlType::Decimal { precision, scale } => {
            let (Some(x), Some(y)) = (a.as_decimal(), b.as_decimal()) else {
                return Value::Null;
            };
            let r = match op {
                BinaryOp::Add => x.checked_add(y),
                BinaryOp::Sub => x.checked_sub(y),
                BinaryOp::Mul => x.checked_mul(y),
                BinaryOp::Div => x.checked_div(y),
                _ => x.checked_rem(y),
            };
            match r.map(|r| fit_decimal(r, *precision, *scale)) {
                Some(Ok(d)) => Value::Decimal(d),
                _ => Value::Null,
            }
        }
        _ => {
            let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
                return Value::Null;
            };
            Value::Double(match op {
                BinaryOp::Add => x + y,
                BinaryOp::Sub => x - y,
                BinaryOp::Mul => x * y,
                BinaryOp::Div => x / y,
                _ => x % y,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col_vs_const(
        e: fn(BinaryOp, Box<Compiled>, Box<Compiled>) -> Compiled,
        op: BinaryOp,
    ) -> Compiled {
        e(
            op,
            Box::new(Compiled::Column(0)),
            Box::new(Compiled::Const(Value::BigInt(50))),
        )
    }

    #[test]
    fn columns_against_constants_follow_ksqldb_null_semantics() {
        // A comparison with a NULL is FALSE in ksqlDB (arithmetic stays NULL).
        let ge = col_vs_const(Compiled::Compare, BinaryOp::GtEq);
        assert_eq!(ge.eval(&[Value::BigInt(50)]), Value::Boolean(true));
        assert_eq!(ge.eval(&[Value::BigInt(49)]), Value::Boolean(false));
        assert_eq!(ge.eval(&[Value::Null]), Value::Boolean(false));
        assert!(!ge.test(&[Value::Null]));
        assert_eq!(
            ge.eval(&[]),
            Value::Boolean(false),
            "a missing slot reads as NULL"
        );
        let mul = |op, l, r| Compiled::Arith(op, l, r, SqlType::BigInt);
        let m = col_vs_const(mul, BinaryOp::Mul);
        assert_eq!(m.eval(&[Value::BigInt(3)]), Value::BigInt(150));
        assert_eq!(m.eval(&[Value::Null]), Value::Null);
        // Not a leaf on one side: the general evaluator answers the same.
        let nested = Compiled::Compare(
            BinaryOp::Eq,
            Box::new(m.clone()),
            Box::new(Compiled::Const(Value::BigInt(150))),
        );
        assert_eq!(nested.eval(&[Value::BigInt(3)]), Value::Boolean(true));
        assert_eq!(nested.eval(&[Value::Null]), Value::Boolean(false));
    }
}
