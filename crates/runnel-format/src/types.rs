//! SQL types and values: what a column holds, with SQL's null.

use std::cmp::Ordering;
use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A value that cannot be converted to the type asked for (a cast, a field
/// of text or JSON read as a column's type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

impl From<String> for ValueError {
    fn from(s: String) -> Self {
        ValueError(s)
    }
}

impl From<&str> for ValueError {
    fn from(s: &str) -> Self {
        ValueError(s.to_string())
    }
}

impl From<ValueError> for String {
    fn from(e: ValueError) -> String {
        e.0
    }
}

/// A column type of the ksqlDB dialect.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SqlType {
    Boolean,
    Int,
    BigInt,
    Double,
    Decimal { precision: u8, scale: u8 },
    String,
    Bytes,
    Date,
    Time,
    Timestamp,
    Array(Box<SqlType>),
    Map(Box<SqlType>, Box<SqlType>),
    Struct(Vec<(String, SqlType)>),
}

impl SqlType {
    /// The type's name without parameters (`DECIMAL`, `ARRAY`, `STRUCT`…),
    /// as ksqlDB's messages name a base type.
    pub fn base_name(&self) -> &'static str {
        match self {
            SqlType::Boolean => "BOOLEAN",
            SqlType::Int => "INTEGER",
            SqlType::BigInt => "BIGINT",
            SqlType::Double => "DOUBLE",
            SqlType::Decimal { .. } => "DECIMAL",
            SqlType::String => "STRING",
            SqlType::Bytes => "BYTES",
            SqlType::Date => "DATE",
            SqlType::Time => "TIME",
            SqlType::Timestamp => "TIMESTAMP",
            SqlType::Array(_) => "ARRAY",
            SqlType::Map(..) => "MAP",
            SqlType::Struct(_) => "STRUCT",
        }
    }

    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            SqlType::Int | SqlType::BigInt | SqlType::Double | SqlType::Decimal { .. }
        )
    }

    /// The rank used to widen numbers: INT < BIGINT < DECIMAL < DOUBLE.
    fn numeric_rank(&self) -> Option<u8> {
        match self {
            SqlType::Int => Some(0),
            SqlType::BigInt => Some(1),
            SqlType::Decimal { .. } => Some(2),
            SqlType::Double => Some(3),
            _ => None,
        }
    }

    /// The type both numbers widen to, as in ksqlDB's arithmetic.
    pub fn widen(a: &SqlType, b: &SqlType) -> Option<SqlType> {
        let (ra, rb) = (a.numeric_rank()?, b.numeric_rank()?);
        if let (
            SqlType::Decimal {
                precision: pa,
                scale: sa,
            },
            SqlType::Decimal {
                precision: pb,
                scale: sb,
            },
        ) = (a, b)
        {
            let scale = (*sa).max(*sb);
            let int = (pa - sa).max(pb - sb);
            return Some(SqlType::Decimal {
                precision: (int + scale).min(38),
                scale,
            });
        }
        Some(if ra >= rb { a.clone() } else { b.clone() })
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Boolean => f.write_str("BOOLEAN"),
            SqlType::Int => f.write_str("INTEGER"),
            SqlType::BigInt => f.write_str("BIGINT"),
            SqlType::Double => f.write_str("DOUBLE"),
            SqlType::Decimal { precision, scale } => write!(f, "DECIMAL({precision}, {scale})"),
            SqlType::String => f.write_str("STRING"),
            SqlType::Bytes => f.write_str("BYTES"),
            SqlType::Date => f.write_str("DATE"),
            SqlType::Time => f.write_str("TIME"),
            SqlType::Timestamp => f.write_str("TIMESTAMP"),
            SqlType::Array(t) => write!(f, "ARRAY<{t}>"),
            SqlType::Map(k, v) => write!(f, "MAP<{k}, {v}>"),
            SqlType::Struct(fields) => {
                f.write_str("STRUCT<")?;
                for (i, (n, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "`{n}` {t}")?;
                }
                f.write_str(">")
            }
        }
    }
}

/// A value of a column; `Null` is SQL's null, of any type.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub enum Value {
    #[default]
    Null,
    Boolean(bool),
    Int(i32),
    BigInt(i64),
    Double(f64),
    Decimal(#[serde(with = "decimal_parts")] Decimal),
    String(String),
    Bytes(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Milliseconds since midnight.
    Time(i64),
    /// Milliseconds since the epoch.
    Timestamp(i64),
    Array(Vec<Value>),
    /// Entries in insertion order; keys are unique.
    Map(Vec<(Value, Value)>),
    /// Fields in the order of the struct's type.
    Struct(Vec<(String, Value)>),
}

/// Drops a row, calling the out-of-line drop glue only for values that
/// own memory (see [`Value::discard`]); one that never allocated (an
/// empty `Vec::new()`) is forgotten outright.
#[inline]
pub fn discard_row(mut row: Vec<Value>) {
    if row.capacity() == 0 {
        // No buffer and no values: nothing to free.
        std::mem::forget(row);
    } else {
        truncate_row(&mut row, 0);
    }
}

/// Shortens a row to `len` values, dropping the rest as
/// [`discard_row`] does.
#[inline]
pub fn truncate_row(row: &mut Vec<Value>, len: usize) {
    while row.len() > len {
        if let Some(v) = row.pop() {
            v.discard();
        }
    }
}

impl Value {
    /// Whether dropping this value frees memory.
    #[inline]
    pub fn owns_memory(&self) -> bool {
        matches!(
            self,
            Value::String(_) | Value::Bytes(_) | Value::Array(_) | Value::Map(_) | Value::Struct(_)
        )
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Drops this value, skipping the out-of-line drop glue for values
    /// that own no memory (NULL, numbers, booleans, dates and times).
    #[inline]
    pub fn discard(self) {
        if self.owns_memory() {
            drop(self)
        } else {
            // No heap: nothing to free.
            std::mem::forget(self)
        }
    }

    /// Overwrites this value with `v`. Rows are filled slot by slot over
    /// NULLs, and a NULL needs no drop: this skips the (out-of-line) drop
    /// of the old value then, which `*slot = v` always runs.
    #[inline]
    pub fn set(&mut self, v: Value) {
        if self.is_null() {
            // Nothing to drop: a NULL owns no memory.
            std::mem::forget(std::mem::replace(self, v));
        } else {
            *self = v;
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(i64::from(*v)),
            Value::BigInt(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(v) => Some(f64::from(*v)),
            Value::BigInt(v) => Some(*v as f64),
            Value::Double(v) => Some(*v),
            Value::Decimal(d) => rust_decimal::prelude::ToPrimitive::to_f64(d),
            _ => None,
        }
    }

    pub fn as_decimal(&self) -> Option<Decimal> {
        match self {
            Value::Int(v) => Some(Decimal::from(*v)),
            Value::BigInt(v) => Some(Decimal::from(*v)),
            Value::Decimal(d) => Some(*d),
            Value::Double(v) => Decimal::try_from(*v).ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// SQL comparison: `None` when either side is null or the kinds cannot
    /// be compared.
    #[inline]
    pub fn sql_cmp(&self, other: &Value) -> Option<Ordering> {
        // The usual comparisons first, inline: same-typed numbers and
        // strings.
        match (self, other) {
            (Value::BigInt(a), Value::BigInt(b)) => Some(a.cmp(b)),
            (Value::BigInt(a), Value::Int(b)) => Some(a.cmp(&i64::from(*b))),
            (Value::Int(a), Value::BigInt(b)) => Some(i64::from(*a).cmp(b)),
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
            _ => self.sql_cmp_general(other),
        }
    }

    fn sql_cmp_general(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (Null, _) | (_, Null) => None,
            (Boolean(a), Boolean(b)) => Some(a.cmp(b)),
            (Int(_) | BigInt(_), Int(_) | BigInt(_)) => Some(self.as_i64()?.cmp(&other.as_i64()?)),
            (Decimal(_), Int(_) | BigInt(_) | Decimal(_)) | (Int(_) | BigInt(_), Decimal(_)) => {
                Some(self.as_decimal()?.cmp(&other.as_decimal()?))
            }
            (Double(_), _) | (_, Double(_)) => self.as_f64()?.partial_cmp(&other.as_f64()?),
            (String(a), String(b)) => Some(a.cmp(b)),
            (Bytes(a), Bytes(b)) => Some(a.cmp(b)),
            (Date(a), Date(b)) => Some(a.cmp(b)),
            (Time(a), Time(b)) => Some(a.cmp(b)),
            (Timestamp(a), Timestamp(b)) => Some(a.cmp(b)),
            (Array(a), Array(b)) => {
                for (x, y) in a.iter().zip(b) {
                    match x.sql_cmp(y)? {
                        Ordering::Equal => continue,
                        o => return Some(o),
                    }
                }
                Some(a.len().cmp(&b.len()))
            }
            _ => None,
        }
    }

    /// Deep equality as ksqlDB's `=` on values of any type and `IS [NOT]
    /// DISTINCT FROM` see it: numbers by value, arrays in order, maps as
    /// sets of entries, structs field by field, a NULL inside a collection
    /// equal to a NULL. (Top-level NULLs are the caller's to decide.)
    pub fn sql_eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Null, _) | (_, Null) => false,
            (Array(a), Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.sql_eq(y)),
            (Map(a), Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(k, v)| b.iter().any(|(k2, v2)| k.sql_eq(k2) && v.sql_eq(v2)))
            }
            (Struct(a), Struct(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((n, x), (m, y))| n.eq_ignore_ascii_case(m) && x.sql_eq(y))
            }
            _ => self.sql_cmp(other) == Some(Ordering::Equal),
        }
    }

    /// A total order for sorting and grouping (nulls first); values of
    /// different kinds order by kind.
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        if let Some(o) = self.sql_cmp(other) {
            return o;
        }
        match (self, other) {
            (Value::Double(a), Value::Double(b)) => a.total_cmp(b),
            (Value::Map(a), Value::Map(b)) => cmp_pairs(a, b),
            (Value::Struct(a), Value::Struct(b)) => {
                for ((_, x), (_, y)) in a.iter().zip(b) {
                    match x.total_cmp(y) {
                        Ordering::Equal => continue,
                        o => return o,
                    }
                }
                a.len().cmp(&b.len())
            }
            (Value::Array(a), Value::Array(b)) => {
                for (x, y) in a.iter().zip(b) {
                    match x.total_cmp(y) {
                        Ordering::Equal => continue,
                        o => return o,
                    }
                }
                a.len().cmp(&b.len())
            }
            _ => self.kind_rank().cmp(&other.kind_rank()),
        }
    }

    fn kind_rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Boolean(_) => 1,
            Value::Int(_) | Value::BigInt(_) | Value::Double(_) | Value::Decimal(_) => 2,
            Value::String(_) => 3,
            Value::Bytes(_) => 4,
            Value::Date(_) => 5,
            Value::Time(_) => 6,
            Value::Timestamp(_) => 7,
            Value::Array(_) => 8,
            Value::Map(_) => 9,
            Value::Struct(_) => 10,
        }
    }

    /// The value's type where it can be told from the value alone.
    pub fn type_of(&self) -> Option<SqlType> {
        Some(match self {
            Value::Null => return None,
            Value::Boolean(_) => SqlType::Boolean,
            Value::Int(_) => SqlType::Int,
            Value::BigInt(_) => SqlType::BigInt,
            Value::Double(_) => SqlType::Double,
            Value::Decimal(d) => {
                let scale = d.scale() as u8;
                let digits = d.mantissa().unsigned_abs().to_string().len() as u8;
                SqlType::Decimal {
                    precision: digits.max(scale).max(1),
                    scale,
                }
            }
            Value::String(_) => SqlType::String,
            Value::Bytes(_) => SqlType::Bytes,
            Value::Date(_) => SqlType::Date,
            Value::Time(_) => SqlType::Time,
            Value::Timestamp(_) => SqlType::Timestamp,
            Value::Array(items) => SqlType::Array(Box::new(
                items
                    .iter()
                    .find_map(Value::type_of)
                    .unwrap_or(SqlType::String),
            )),
            Value::Map(entries) => SqlType::Map(
                Box::new(
                    entries
                        .iter()
                        .find_map(|(k, _)| k.type_of())
                        .unwrap_or(SqlType::String),
                ),
                Box::new(
                    entries
                        .iter()
                        .find_map(|(_, v)| v.type_of())
                        .unwrap_or(SqlType::String),
                ),
            ),
            Value::Struct(fields) => SqlType::Struct(
                fields
                    .iter()
                    .map(|(n, v)| (n.clone(), v.type_of().unwrap_or(SqlType::String)))
                    .collect(),
            ),
        })
    }
}

/// Decimals in the internal encoding as mantissa and scale (compact and
/// independent of text parsing).
mod decimal_parts {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        (d.mantissa(), d.scale()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let (m, scale) = <(i128, u32)>::deserialize(d)?;
        Decimal::try_from_i128_with_scale(m, scale).map_err(serde::de::Error::custom)
    }
}

fn cmp_pairs(a: &[(Value, Value)], b: &[(Value, Value)]) -> Ordering {
    for ((ka, va), (kb, vb)) in a.iter().zip(b) {
        match ka.total_cmp(kb).then_with(|| va.total_cmp(vb)) {
            Ordering::Equal => continue,
            o => return o,
        }
    }
    a.len().cmp(&b.len())
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.total_cmp(other) == Ordering::Equal
    }
}
impl Eq for Value {}
impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Value) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Value {
    fn cmp(&self, other: &Value) -> Ordering {
        self.total_cmp(other)
    }
}
impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Equal values must hash equally across numeric kinds, so numbers
        // hash through their f64 form.
        match self {
            Value::Null => 0u8.hash(state),
            Value::Boolean(b) => b.hash(state),
            Value::Int(_) | Value::BigInt(_) | Value::Double(_) | Value::Decimal(_) => {
                self.as_f64().map(f64::to_bits).hash(state)
            }
            Value::String(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::Date(d) => d.hash(state),
            Value::Time(t) | Value::Timestamp(t) => t.hash(state),
            Value::Array(a) => a.hash(state),
            Value::Map(m) => m.hash(state),
            Value::Struct(s) => s.hash(state),
        }
    }
}

/// Formats a date (days since the epoch) as `YYYY-MM-DD`.
pub fn format_date(days: i32) -> String {
    chrono::DateTime::from_timestamp(i64::from(days) * 86_400, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| days.to_string())
}

/// Formats a time (milliseconds since midnight) as `HH:MM:SS[.fff]`.
pub fn format_time(ms: i64) -> String {
    let (h, m, s, f) = (
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000,
    );
    if f == 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{f:03}")
    }
}

/// Formats a timestamp (milliseconds since the epoch) as ksqlDB prints it:
/// `YYYY-MM-DDTHH:MM:SS.fff`, in UTC.
pub fn format_timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| ms.to_string())
}

impl fmt::Display for Value {
    /// The text form used by CAST(… AS STRING) and the DELIMITED format.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::BigInt(v) => write!(f, "{v}"),
            Value::Double(v) => f.write_str(&java_double(*v)),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::String(s) => f.write_str(s),
            Value::Bytes(b) => f.write_str(&base64_encode(b)),
            Value::Date(d) => f.write_str(&format_date(*d)),
            Value::Time(t) => f.write_str(&format_time(*t)),
            Value::Timestamp(t) => f.write_str(&format_timestamp(*t)),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}={v}")?;
                }
                f.write_str("}")
            }
            Value::Struct(fields) => {
                f.write_str("Struct{")?;
                let mut first = true;
                for (n, v) in fields {
                    if v.is_null() {
                        continue;
                    }
                    if !first {
                        f.write_str(",")?;
                    }
                    first = false;
                    write!(f, "{n}={v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// A double as Java's `Double.toString` writes it (ksqlDB's text of a
/// DOUBLE): the shortest digits that read back as the same double — two
/// when one would do, the two closest to the value (`4.9E-324`) — plain
/// with at least one fractional digit for magnitudes in [10^-3, 10^7)
/// (`1234567.0`, `0.001`), else `d.ddd` times a power of ten
/// (`1.0E7`, `1.2345E-5`).
pub fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    // Rust's `{:e}` gives the shortest round-tripping digits, `{:.1e}`
    // the correctly rounded two.
    let mut sci = format!("{:e}", v.abs());
    if !sci.contains('.') {
        sci = format!("{:.1e}", v.abs());
    }
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return format!("{v:?}");
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let mag = v.abs();
    if (1e-3..1e7).contains(&mag) {
        // Plain: the point after exp + 1 digits.
        let out = if exp >= 0 {
            let int_len = usize::try_from(exp).unwrap_or(0) + 1;
            let int: String = digits
                .chars()
                .chain(std::iter::repeat('0'))
                .take(int_len)
                .collect();
            let frac = digits.get(int_len..).unwrap_or("");
            let frac = if frac.is_empty() { "0" } else { frac };
            format!("{int}.{frac}")
        } else {
            let zeros = usize::try_from(-exp - 1).unwrap_or(0);
            format!("0.{}{digits}", "0".repeat(zeros))
        };
        return format!("{sign}{out}");
    }
    let (first, rest) = digits.split_at(1);
    let rest = if rest.is_empty() { "0" } else { rest };
    format!("{sign}{first}.{rest}E{exp}")
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as ksqlDB shows BYTES.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); `None` on a bad character.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = B64.iter().position(|x| *x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {

    #[test]
    fn doubles_are_written_as_java_writes_them() {
        use super::java_double;
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (1234567.0, "1234567.0"),
            (1e7, "1.0E7"),
            (12345678.9, "1.23456789E7"),
            (1.2345e-5, "1.2345E-5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::MIN_POSITIVE, "2.2250738585072014E-308"),
            (f64::MAX, "1.7976931348623157E308"),
            (-f64::MAX, "-1.7976931348623157E308"),
            (5e-324, "4.9E-324"),
            (1e16, "1.0E16"),
            (1.2345678987654322e16, "1.2345678987654322E16"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (v, want) in cases {
            assert_eq!(java_double(v), want, "{v:?}");
        }
    }

    #[test]
    fn truncating_and_discarding_rows_keeps_the_rest_intact() {
        let mut row = vec![
            Value::String("a".into()),
            Value::BigInt(1),
            Value::Array(vec![Value::String("b".into())]),
            Value::Null,
        ];
        truncate_row(&mut row, 2);
        assert_eq!(row, vec![Value::String("a".into()), Value::BigInt(1)]);
        truncate_row(&mut row, 5);
        assert_eq!(row.len(), 2);
        discard_row(row);
        discard_row(Vec::new());
    }

    use super::*;

    #[test]
    fn set_overwrites_null_and_non_null_slots() {
        let mut row = vec![Value::Null, Value::String("old".into())];
        row[0].set(Value::String("a".into()));
        row[1].set(Value::BigInt(7));
        assert_eq!(row, vec![Value::String("a".into()), Value::BigInt(7)]);
        row[1].set(Value::Null);
        assert!(row[1].is_null());
        assert!(Value::Array(vec![]).owns_memory());
        assert!(!Value::Decimal(Decimal::ONE).owns_memory());
        Value::String("gone".into()).discard();
        discard_row(Vec::new());
        discard_row(row);
    }

    #[test]
    fn numbers_compare_across_kinds() {
        assert_eq!(Value::Int(2), Value::BigInt(2));
        assert_eq!(
            Value::Int(2).sql_cmp(&Value::Double(2.5)),
            Some(Ordering::Less)
        );
        assert_eq!(Value::Null.sql_cmp(&Value::Int(1)), None);
        assert!(Value::Null < Value::Int(-5));
    }

    #[test]
    fn base64_round_trips() {
        for s in [&b""[..], b"a", b"ab", b"abc", b"hello world"] {
            assert_eq!(base64_decode(&base64_encode(s)).as_deref(), Some(s));
        }
        assert_eq!(base64_encode(b"hi"), "aGk=");
    }

    #[test]
    fn temporal_values_print_like_ksqldb() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_time(3_723_004), "01:02:03.004");
        assert_eq!(format_timestamp(86_400_000), "1970-01-02T00:00:00.000");
    }
}
