//! PostgreSQL column types as Connect schemas, and PostgreSQL's text
//! output form (what `pgoutput` and the snapshot's text-mode queries send)
//! as Connect values, following Debezium's PostgreSQL type mapping.
//!
//! Every connection of this crate sets `TimeZone=UTC`, `DateStyle=ISO`
//! and `bytea_output=hex`, so the text forms parsed here are fixed.

use crate::error::{Error, Result};
use runnel_connect_api::{Schema, Struct, Value};
use std::sync::Arc;

/// Debezium's placeholder for an unchanged TOASTed value the server did
/// not send (`unavailable.value.placeholder`).
pub const UNAVAILABLE_VALUE: &str = "__debezium_unavailable_value";

/// How `numeric`/`decimal` columns are represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalMode {
    /// Connect `Decimal` (bytes + scale); unconstrained numeric as
    /// `io.debezium.data.VariableScaleDecimal`.
    Precise,
    Double,
    String,
}

/// What a column's values are, as far as conversion goes.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeKind {
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Bool,
    Text,
    /// `numeric(precision, scale)`; `None` when unconstrained.
    Numeric(Option<(i32, i32)>),
    Date,
    Time,
    Timestamp,
    /// `time(p)` with p <= 3: milliseconds (`io.debezium.time.Time`), as
    /// Debezium's adaptive time precision mode has it.
    TimeMillis,
    /// `timestamp(p)` with p <= 3: milliseconds (`io.debezium.time.Timestamp`).
    TimestampMillis,
    /// `timetz`: `io.debezium.time.ZonedTime`, in UTC.
    Timetz,
    /// `interval`: `io.debezium.time.MicroDuration`.
    Interval,
    /// `money`: a Decimal of scale 2.
    Money,
    /// `bit(n)` (n > 1) and `varbit(n)`: `io.debezium.data.Bits` of
    /// length n; `bit(1)` is a boolean.
    Bits(i32),
    /// `xml`: `io.debezium.data.Xml`.
    Xml,
    /// `timestamptz(p)`: the fraction digits Debezium writes (`p`, or 6).
    Timestamptz(u8),
    Json,
    Uuid,
    Bytea,
    /// An enum type with its labels in order.
    Enum(Vec<String>),
    Array(Box<TypeKind>),
    /// Anything else, passed as its text form.
    Other,
}

/// The kind of a built-in type by OID, or `None` when the catalog must be
/// asked (enums, domains, arrays of those, extension types).
pub fn builtin_kind(oid: u32, typmod: i32) -> Option<TypeKind> {
    let numeric = || {
        if typmod >= 4 {
            let m = typmod - 4;
            Some(((m >> 16) & 0xffff, m & 0xffff))
        } else {
            None
        }
    };
    Some(match oid {
        21 => TypeKind::Int16,
        23 => TypeKind::Int32,
        20 | 26 => TypeKind::Int64,
        700 => TypeKind::Float32,
        701 => TypeKind::Float64,
        16 => TypeKind::Bool,
        25 | 1043 | 1042 | 18 | 19 => TypeKind::Text,
        1700 => TypeKind::Numeric(numeric()),
        1082 => TypeKind::Date,
        1083 if (0..=3).contains(&typmod) => TypeKind::TimeMillis,
        1083 => TypeKind::Time,
        1114 if (0..=3).contains(&typmod) => TypeKind::TimestampMillis,
        1114 => TypeKind::Timestamp,
        1266 => TypeKind::Timetz,
        1186 => TypeKind::Interval,
        790 => TypeKind::Money,
        1560 if typmod == 1 => TypeKind::Bool,
        1560 => TypeKind::Bits(typmod.max(1)),
        1562 => TypeKind::Bits(if typmod > 0 { typmod } else { i32::MAX }),
        142 => TypeKind::Xml,
        1184 => TypeKind::Timestamptz(fraction_digits(typmod)),
        114 | 3802 => TypeKind::Json,
        2950 => TypeKind::Uuid,
        17 => TypeKind::Bytea,
        1005 => TypeKind::Array(Box::new(TypeKind::Int16)),
        1007 => TypeKind::Array(Box::new(TypeKind::Int32)),
        1016 => TypeKind::Array(Box::new(TypeKind::Int64)),
        1021 => TypeKind::Array(Box::new(TypeKind::Float32)),
        1022 => TypeKind::Array(Box::new(TypeKind::Float64)),
        1000 => TypeKind::Array(Box::new(TypeKind::Bool)),
        1009 | 1015 | 1014 => TypeKind::Array(Box::new(TypeKind::Text)),
        1231 => TypeKind::Array(Box::new(TypeKind::Numeric(numeric()))),
        1182 => TypeKind::Array(Box::new(TypeKind::Date)),
        1115 if (0..=3).contains(&typmod) => TypeKind::Array(Box::new(TypeKind::TimestampMillis)),
        1115 => TypeKind::Array(Box::new(TypeKind::Timestamp)),
        1185 => TypeKind::Array(Box::new(TypeKind::Timestamptz(fraction_digits(typmod)))),
        2951 => TypeKind::Array(Box::new(TypeKind::Uuid)),
        199 | 3807 => TypeKind::Array(Box::new(TypeKind::Json)),
        _ => return None,
    })
}

/// The Connect schema of a column of `kind` (optional when `optional`).
pub fn column_schema(kind: &TypeKind, mode: DecimalMode, optional: bool) -> Schema {
    let s = match kind {
        TypeKind::Int16 => Schema::int16(),
        TypeKind::Int32 => Schema::int32(),
        TypeKind::Int64 => Schema::int64(),
        TypeKind::Float32 => Schema::float32(),
        TypeKind::Float64 => Schema::float64(),
        TypeKind::Bool => Schema::boolean(),
        TypeKind::Text | TypeKind::Other => Schema::string(),
        TypeKind::Numeric(p) => match (mode, p) {
            (DecimalMode::Precise, Some((precision, scale))) => {
                Schema::decimal(*scale).param("connect.decimal.precision", precision.to_string())
            }
            (DecimalMode::Precise, None) => variable_scale_decimal_schema(),
            (DecimalMode::Double, _) => Schema::float64(),
            (DecimalMode::String, _) => Schema::string(),
        },
        TypeKind::Date => Schema::int32().named("io.debezium.time.Date").version(1),
        TypeKind::Time => Schema::int64()
            .named("io.debezium.time.MicroTime")
            .version(1),
        TypeKind::Timestamp => Schema::int64()
            .named("io.debezium.time.MicroTimestamp")
            .version(1),
        TypeKind::Timestamptz(_) => Schema::string()
            .named("io.debezium.time.ZonedTimestamp")
            .version(1),
        TypeKind::TimeMillis => Schema::int32().named("io.debezium.time.Time").version(1),
        TypeKind::TimestampMillis => Schema::int64()
            .named("io.debezium.time.Timestamp")
            .version(1),
        TypeKind::Timetz => Schema::string()
            .named("io.debezium.time.ZonedTime")
            .version(1),
        TypeKind::Interval => Schema::int64()
            .named("io.debezium.time.MicroDuration")
            .version(1),
        TypeKind::Money => match mode {
            DecimalMode::Precise => Schema::decimal(2),
            DecimalMode::Double => Schema::float64(),
            DecimalMode::String => Schema::string(),
        },
        TypeKind::Bits(length) => Schema::bytes()
            .named("io.debezium.data.Bits")
            .version(1)
            .param("length", length.to_string()),
        TypeKind::Xml => Schema::string().named("io.debezium.data.Xml").version(1),
        TypeKind::Json => Schema::string().named("io.debezium.data.Json").version(1),
        TypeKind::Uuid => Schema::string().named("io.debezium.data.Uuid").version(1),
        TypeKind::Bytea => Schema::bytes(),
        TypeKind::Enum(labels) => Schema::string()
            .named("io.debezium.data.Enum")
            .version(1)
            .param("allowed", labels.join(",")),
        TypeKind::Array(element) => Schema::array(column_schema(element, mode, true)),
    };
    if optional {
        s.optional()
    } else {
        s
    }
}

fn variable_scale_decimal_schema() -> Schema {
    Schema::struct_named("io.debezium.data.VariableScaleDecimal")
        .version(1)
        .doc("Variable scaled decimal")
        .field("scale", Schema::int32())
        .field("value", Schema::bytes())
}

/// The value standing for an unchanged TOASTed column: the placeholder
/// for strings, its bytes for `bytea`, a one-element array of it for
/// string arrays, null otherwise.
pub fn unavailable_value(kind: &TypeKind, mode: DecimalMode) -> Value {
    match column_schema(kind, mode, true).kind {
        runnel_connect_api::SchemaType::String => Value::String(UNAVAILABLE_VALUE.to_string()),
        runnel_connect_api::SchemaType::Bytes if *kind == TypeKind::Bytea => {
            Value::Bytes(UNAVAILABLE_VALUE.as_bytes().to_vec())
        }
        runnel_connect_api::SchemaType::Array => {
            match column_schema(kind, mode, true).value.map(|v| v.kind) {
                Some(runnel_connect_api::SchemaType::String) => {
                    Value::Array(vec![Value::String(UNAVAILABLE_VALUE.to_string())])
                }
                _ => Value::Null,
            }
        }
        _ => Value::Null,
    }
}

fn bad(kind: &TypeKind, text: &str) -> Error {
    Error::Convert(format!("{text:?} as {kind:?}"))
}

/// Converts a value in PostgreSQL's text form.
pub fn text_to_value(kind: &TypeKind, mode: DecimalMode, text: &str) -> Result<Value> {
    let b = || bad(kind, text);
    Ok(match kind {
        TypeKind::Int16 => Value::Int16(text.parse().map_err(|_| b())?),
        TypeKind::Int32 => Value::Int32(text.parse().map_err(|_| b())?),
        TypeKind::Int64 => Value::Int64(text.parse().map_err(|_| b())?),
        TypeKind::Float32 => Value::Float32(text.parse().map_err(|_| b())?),
        TypeKind::Float64 => Value::Float64(text.parse().map_err(|_| b())?),
        TypeKind::Bool => match text {
            // `1` / `0`: a bit(1) value.
            "t" | "true" | "1" => Value::Boolean(true),
            "f" | "false" | "0" => Value::Boolean(false),
            _ => return Err(b()),
        },
        TypeKind::Text | TypeKind::Other => Value::String(text.to_string()),
        TypeKind::Numeric(p) => match mode {
            DecimalMode::String => Value::String(text.to_string()),
            DecimalMode::Double => Value::Float64(text.parse().map_err(|_| b())?),
            DecimalMode::Precise => {
                if text == "NaN" || text.contains("Infinity") {
                    // Connect's Decimal has no NaN or infinities.
                    Value::Null
                } else {
                    let (unscaled, scale) = parse_decimal(text).ok_or_else(b)?;
                    match p {
                        Some((_, target)) => {
                            let unscaled = rescale(&unscaled, scale, *target).ok_or_else(b)?;
                            Value::Bytes(decimal_to_twos_complement(&unscaled).ok_or_else(b)?)
                        }
                        None => {
                            let schema = Arc::new(variable_scale_decimal_schema());
                            let mut s = Struct::new(schema);
                            s.put("scale", Value::Int32(scale))?;
                            s.put(
                                "value",
                                Value::Bytes(decimal_to_twos_complement(&unscaled).ok_or_else(b)?),
                            )?;
                            Value::Struct(s)
                        }
                    }
                }
            }
        },
        TypeKind::Date => Value::Int32(parse_date(text).ok_or_else(b)?),
        TypeKind::Time => Value::Int64(parse_time(text).ok_or_else(b)?),
        TypeKind::Timestamp => Value::Int64(parse_timestamp(text).ok_or_else(b)?),
        TypeKind::TimeMillis => Value::Int32(
            i32::try_from(parse_time(text).ok_or_else(b)?.div_euclid(1000)).map_err(|_| b())?,
        ),
        TypeKind::TimestampMillis => Value::Int64(match text {
            // The JDBC driver's sentinels are milliseconds already.
            "infinity" => TIMESTAMP_INFINITY,
            "-infinity" => TIMESTAMP_NEG_INFINITY,
            _ => parse_timestamp(text).ok_or_else(b)?.div_euclid(1000),
        }),
        TypeKind::Timetz => Value::String(zoned_time(text).ok_or_else(b)?),
        TypeKind::Interval => Value::Int64(parse_iso_interval(text).ok_or_else(b)?),
        TypeKind::Money => {
            let negative = text.contains('-') || text.starts_with('(');
            let digits: String = text
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let signed = if negative {
                format!("-{digits}")
            } else {
                digits
            };
            match mode {
                DecimalMode::String => Value::String(signed),
                DecimalMode::Double => Value::Float64(signed.parse().map_err(|_| b())?),
                DecimalMode::Precise => {
                    let (unscaled, scale) = parse_decimal(&signed).ok_or_else(b)?;
                    let unscaled = rescale(&unscaled, scale, 2).ok_or_else(b)?;
                    Value::Bytes(decimal_to_twos_complement(&unscaled).ok_or_else(b)?)
                }
            }
        }
        TypeKind::Bits(_) => Value::Bytes(bits_to_bytes(text).ok_or_else(b)?),
        TypeKind::Xml => Value::String(text.to_string()),
        // Years BC (and anything else unexpected) keep PostgreSQL's text.
        TypeKind::Timestamptz(digits) => {
            Value::String(zoned_timestamp(text, *digits).unwrap_or_else(|| text.to_string()))
        }
        TypeKind::Json | TypeKind::Uuid | TypeKind::Enum(_) => Value::String(text.to_string()),
        TypeKind::Bytea => Value::Bytes(parse_bytea(text).ok_or_else(b)?),
        TypeKind::Array(element) => {
            let items = parse_array(text).ok_or_else(b)?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(match item {
                    None => Value::Null,
                    Some(t) => text_to_value(element, mode, &t)?,
                });
            }
            Value::Array(out)
        }
    })
}

/// `-12.340` → ("-12340", 3).
fn parse_decimal(text: &str) -> Option<(String, i32)> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut unscaled = String::with_capacity(int.len() + frac.len() + 1);
    if neg {
        unscaled.push('-');
    }
    unscaled.push_str(int);
    unscaled.push_str(frac);
    Some((unscaled, frac.len() as i32))
}

/// The unscaled digits at `target` scale (padding with zeros; dropping
/// digits only when they are zeros).
fn rescale(unscaled: &str, scale: i32, target: i32) -> Option<String> {
    if target >= scale {
        let mut s = unscaled.to_string();
        s.extend(std::iter::repeat_n('0', (target - scale) as usize));
        Some(s)
    } else {
        let cut = (scale - target) as usize;
        let (keep, dropped) = unscaled.split_at(unscaled.len().checked_sub(cut)?);
        if dropped.bytes().all(|c| c == b'0') {
            Some(keep.to_string())
        } else {
            None
        }
    }
}

/// A decimal integer (`-123`) as big-endian two's complement, minimal
/// length (Java's `BigInteger.toByteArray`).
pub fn decimal_to_twos_complement(digits: &str) -> Option<Vec<u8>> {
    let (neg, digits) = match digits.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, digits),
    };
    // Magnitude, little-endian base 256.
    let mut mag: Vec<u8> = vec![0];
    for c in digits.bytes() {
        if !c.is_ascii_digit() {
            return None;
        }
        let mut carry = u32::from(c - b'0');
        for byte in mag.iter_mut() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            mag.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let is_zero = mag.iter().all(|b| *b == 0);
    if neg && !is_zero {
        // Two's complement: invert and add one.
        let mut carry = 1u16;
        for byte in mag.iter_mut() {
            let v = u16::from(!*byte) + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        mag.push(0xff);
    } else {
        mag.push(0);
    }
    let mut be: Vec<u8> = mag.into_iter().rev().collect();
    // Drop redundant sign bytes.
    while be.len() > 1
        && ((be[0] == 0 && be[1] & 0x80 == 0) || (be[0] == 0xff && be[1] & 0x80 != 0))
    {
        be.remove(0);
    }
    Some(be)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD[ BC]` → days since the epoch; infinities as Debezium
/// (`i32::MAX`/`i32::MIN`).
/// Debezium's `io.debezium.time.Date` for `infinity` / `-infinity`:
/// PostgreSQL's own day numbers for them (i32::MAX and i32::MIN days from
/// 2000-01-01) moved to the 1970 epoch in 32-bit arithmetic, so the
/// positive one wraps around (checked against Debezium 3.6.1).
const DATE_INFINITY: i32 = i32::MAX.wrapping_add(10_957);
const DATE_NEG_INFINITY: i32 = i32::MIN + 10_957;
/// Debezium's `MicroTimestamp` for `infinity` / `-infinity`: the JDBC
/// driver's millisecond sentinels, as they are (checked against Debezium
/// 3.6.1).
const TIMESTAMP_INFINITY: i64 = 9_223_372_036_825_200_000;
const TIMESTAMP_NEG_INFINITY: i64 = -9_223_372_036_832_400_000;

fn parse_date(text: &str) -> Option<i32> {
    match text {
        "infinity" => return Some(DATE_INFINITY),
        "-infinity" => return Some(DATE_NEG_INFINITY),
        _ => {}
    }
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text, false),
    };
    let mut parts = text.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if bc { 1 - y } else { y };
    i32::try_from(days_from_civil(y, m, d)).ok()
}

/// `HH:MM:SS[.ffffff]` → microseconds since midnight.
fn parse_time(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let sec = parts.next()?;
    let (s, frac) = sec.split_once('.').unwrap_or((sec, ""));
    let s: i64 = s.parse().ok()?;
    if frac.len() > 6 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut micros: i64 = 0;
    for (i, c) in frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(6)
        .enumerate()
    {
        let _ = i;
        micros = micros * 10 + i64::from(c - b'0');
    }
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + micros)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` → microseconds since the epoch.
fn parse_timestamp(text: &str) -> Option<i64> {
    match text {
        "infinity" => return Some(TIMESTAMP_INFINITY),
        "-infinity" => return Some(TIMESTAMP_NEG_INFINITY),
        _ => {}
    }
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text, false),
    };
    let (date, time) = text.split_once(' ')?;
    let days = i64::from(parse_date(&if bc {
        format!("{date} BC")
    } else {
        date.to_string()
    })?);
    Some(days * 86_400_000_000 + parse_time(time)?)
}

/// The fractional second digits of a `timestamptz(p)` column: `p`, or 6
/// when the type has no precision (typmod -1).
fn fraction_digits(typmod: i32) -> u8 {
    match typmod {
        0..=6 => typmod as u8,
        _ => 6,
    }
}

/// A `timestamptz` in UTC (`2024-01-02 03:04:05.5+00`) in Debezium's
/// ISO-8601 form, the fraction always as many digits as the column's
/// precision: `2024-01-02T03:04:05.500000Z` for `timestamptz`,
/// `2024-01-02T03:04:05Z` for `timestamptz(0)`.
fn zoned_timestamp(text: &str, digits: u8) -> Option<String> {
    if text == "infinity" || text == "-infinity" {
        return Some(text.to_string());
    }
    if text.ends_with(" BC") {
        return None;
    }
    let (date, rest) = text.split_once(' ')?;
    let time = rest.strip_suffix("+00")?;
    let (whole, fraction) = time.split_once('.').unwrap_or((time, ""));
    if digits == 0 {
        return Some(format!("{date}T{whole}Z"));
    }
    let mut fraction = fraction.to_string();
    fraction.truncate(usize::from(digits));
    while fraction.len() < usize::from(digits) {
        fraction.push('0');
    }
    Some(format!("{date}T{whole}.{fraction}Z"))
}

/// A bit string (`1101`) as Debezium's `Bits`: the bits as a number (the
/// first bit the most significant) in little-endian bytes, without
/// trailing zero bytes (Java's `BitSet.toByteArray`).
fn bits_to_bytes(text: &str) -> Option<Vec<u8>> {
    let mut out = vec![0u8; text.len().div_ceil(8)];
    for (i, c) in text.bytes().rev().enumerate() {
        match c {
            b'1' => out[i / 8] |= 1 << (i % 8),
            b'0' => {}
            _ => return None,
        }
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    Some(out)
}

/// A `timetz` (`12:34:56.789+02`, `01:02:03-05:30`) moved to UTC and
/// written as Debezium's ZonedTime (`10:34:56.789Z`).
fn zoned_time(text: &str) -> Option<String> {
    let at = text.rfind(['+', '-'])?;
    let (time, offset) = text.split_at(at);
    let sign: i64 = if offset.starts_with('-') { -1 } else { 1 };
    let mut parts = offset[1..].split(':');
    let oh: i64 = parts.next()?.parse().ok()?;
    let om: i64 = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    let os: i64 = parts.next().map_or(Some(0), |x| x.parse().ok())?;
    let micros = parse_time(time)?;
    let day = 86_400_000_000;
    let utc = (micros - sign * ((oh * 60 + om) * 60 + os) * 1_000_000).rem_euclid(day);
    let (secs, frac) = (utc / 1_000_000, utc % 1_000_000);
    let mut out = format!("{:02}:{:02}", secs / 3600, secs / 60 % 60);
    // As java.time prints a local time: seconds and fraction only when
    // not zero, the fraction without trailing zeros.
    if secs % 60 != 0 || frac != 0 {
        out.push_str(&format!(":{:02}", secs % 60));
        if frac != 0 {
            let f = format!("{frac:06}");
            out.push('.');
            out.push_str(f.trim_end_matches('0'));
        }
    }
    out.push('Z');
    Some(out)
}

/// An interval in ISO 8601 form (the session's IntervalStyle,
/// `P1Y2M3DT4H5M6.789S`, components may be negative) as Debezium's
/// MicroDuration: microseconds, a month being 365.25 / 12 days.
fn parse_iso_interval(text: &str) -> Option<i64> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut micros: f64 = 0.0;
    let day = 86_400_000_000.0;
    let mut component = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == '-' {
                number.push(c);
            } else {
                let unit = units.iter().find(|(u, _)| *u == c)?.1;
                micros += number.parse::<f64>().ok()? * unit;
                number.clear();
            }
        }
        number.is_empty().then_some(())
    };
    component(
        date,
        &[
            ('Y', 365.25 * day),
            ('M', 365.25 / 12.0 * day),
            ('W', 7.0 * day),
            ('D', day),
        ],
    )?;
    component(
        time,
        &[
            ('H', 3_600_000_000.0),
            ('M', 60_000_000.0),
            ('S', 1_000_000.0),
        ],
    )?;
    Some(micros.round() as i64)
}

/// `\x0aff` → bytes.
fn parse_bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A one-dimensional array literal `{a,"b c",NULL}` → its elements.
fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    // A lower bound decoration (`[0:1]={…}`) is dropped.
    let text = match text.find("={") {
        Some(i) if text.starts_with('[') => &text[i + 1..],
        _ => text,
    };
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if inner.is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' {
                    // Multi-dimensional arrays are not supported here.
                    return None;
                }
                item.push(c);
                chars.next();
            }
        }
        out.push(if !quoted && item == "NULL" {
            None
        } else {
            Some(item)
        });
        match chars.next() {
            None => return Some(out),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_become_minimal_twos_complement() {
        assert_eq!(decimal_to_twos_complement("0").unwrap(), vec![0]);
        assert_eq!(decimal_to_twos_complement("127").unwrap(), vec![0x7f]);
        assert_eq!(decimal_to_twos_complement("128").unwrap(), vec![0, 0x80]);
        assert_eq!(decimal_to_twos_complement("-1").unwrap(), vec![0xff]);
        assert_eq!(decimal_to_twos_complement("-128").unwrap(), vec![0x80]);
        assert_eq!(
            decimal_to_twos_complement("-129").unwrap(),
            vec![0xff, 0x7f]
        );
        assert_eq!(
            decimal_to_twos_complement("12345").unwrap(),
            vec![0x30, 0x39]
        );
        let v = text_to_value(
            &TypeKind::Numeric(Some((10, 2))),
            DecimalMode::Precise,
            "-12.3",
        )
        .unwrap();
        // -1230
        assert_eq!(v, Value::Bytes(vec![0xfb, 0x32]));
    }

    #[test]
    fn dates_and_times_follow_debeziums_units() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2024-03-01"), Some(19783));
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        // Infinities as Debezium writes them.
        assert_eq!(parse_date("infinity"), Some(-2_147_472_692));
        assert_eq!(parse_date("-infinity"), Some(-2_147_472_691));
        assert_eq!(parse_timestamp("infinity"), Some(9_223_372_036_825_200_000));
        assert_eq!(
            parse_timestamp("-infinity"),
            Some(-9_223_372_036_832_400_000)
        );
        assert_eq!(parse_time("01:02:03.5"), Some(3_723_500_000));
        assert_eq!(
            parse_timestamp("2024-03-01 00:00:01.000001"),
            Some(19783 * 86_400_000_000 + 1_000_001)
        );
        assert_eq!(
            zoned_timestamp("2024-03-01 10:00:00.25+00", 6).as_deref(),
            Some("2024-03-01T10:00:00.250000Z")
        );
        // Debezium writes as many fraction digits as the column's precision.
        assert_eq!(
            zoned_timestamp("1970-01-01 00:00:00+00", 6).as_deref(),
            Some("1970-01-01T00:00:00.000000Z")
        );
        assert_eq!(
            zoned_timestamp("2024-03-01 10:00:00.25+00", 3).as_deref(),
            Some("2024-03-01T10:00:00.250Z")
        );
        assert_eq!(
            zoned_timestamp("2024-03-01 10:00:00+00", 0).as_deref(),
            Some("2024-03-01T10:00:00Z")
        );
        assert_eq!(fraction_digits(-1), 6);
        assert_eq!(fraction_digits(3), 3);
    }

    #[test]
    fn more_types_convert_as_debezium_does() {
        // Values checked against Debezium 3.6.1 (the reference test).
        assert_eq!(bits_to_bytes("101"), Some(vec![0x05]));
        assert_eq!(bits_to_bytes("1101"), Some(vec![0x0d]));
        assert_eq!(bits_to_bytes("100000000"), Some(vec![0x00, 0x01]));
        assert_eq!(bits_to_bytes("000"), Some(vec![]));
        assert_eq!(
            zoned_time("12:34:56.789+02").as_deref(),
            Some("10:34:56.789Z")
        );
        assert_eq!(zoned_time("01:00:00-05:30").as_deref(), Some("06:30Z"));
        assert_eq!(zoned_time("00:30:00+01").as_deref(), Some("23:30Z"));
        assert_eq!(
            parse_iso_interval("P1Y2M3DT4H5M6.789S"),
            Some(37_091_106_789_000)
        );
        assert_eq!(parse_iso_interval("PT-1S"), Some(-1_000_000));
        assert_eq!(parse_iso_interval("P0D"), Some(0));
        let money = text_to_value(&TypeKind::Money, DecimalMode::Precise, "-$1,234.50").unwrap();
        assert_eq!(
            money,
            Value::Bytes(decimal_to_twos_complement("-123450").unwrap())
        );
        assert_eq!(
            text_to_value(&TypeKind::TimeMillis, DecimalMode::Precise, "01:02:03.456").unwrap(),
            Value::Int32(3_723_456)
        );
        assert_eq!(
            text_to_value(
                &TypeKind::TimestampMillis,
                DecimalMode::Precise,
                "2024-03-01 01:02:03.456"
            )
            .unwrap(),
            Value::Int64(1_709_254_923_456)
        );
        assert_eq!(builtin_kind(1560, 1), Some(TypeKind::Bool));
        assert_eq!(builtin_kind(1562, -1), Some(TypeKind::Bits(i32::MAX)));
        assert_eq!(builtin_kind(1083, 3), Some(TypeKind::TimeMillis));
        assert_eq!(builtin_kind(1083, -1), Some(TypeKind::Time));
    }

    #[test]
    fn arrays_bytea_and_placeholders_convert() {
        assert_eq!(
            parse_array(r#"{a,"b c",NULL,"NULL","q\"x"}"#).unwrap(),
            vec![
                Some("a".into()),
                Some("b c".into()),
                None,
                Some("NULL".into()),
                Some("q\"x".into())
            ]
        );
        assert_eq!(parse_array("{}").unwrap(), vec![]);
        assert_eq!(parse_bytea("\\x00ff").unwrap(), vec![0, 255]);
        assert_eq!(
            unavailable_value(&TypeKind::Text, DecimalMode::Precise),
            Value::String(UNAVAILABLE_VALUE.into())
        );
        assert_eq!(
            unavailable_value(&TypeKind::Int32, DecimalMode::Precise),
            Value::Null
        );
    }
}
