//! The JSON format: a row as an object of its columns (or, unwrapped, a
//! single column's value), as ksqlDB writes it. Plain rows go through a
//! small scanner and writer; everything else through serde_json (property
//! tests keep both paths byte-identical).

use std::fmt;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde_json::Value as Json;

use crate::format::{CodecSpec, FormatError, Row, RowCodec, RowFormat};
use crate::schema::Column;
use crate::types::{base64_decode, base64_encode, SqlType, Value, ValueError};

/// ksqlDB's refusal of a MAP whose keys are not STRING in JSON and JSON_SR.
pub(crate) const MAP_KEYS_REFUSED: &str = "JSON only supports MAP types with STRING keys";

/// A double JSON has no number for, as ksqlDB's JSON writer (Jackson,
/// quoting non-numeric numbers) writes it: `"NaN"`, `"Infinity"`,
/// `"-Infinity"`; reading takes them back.
fn non_finite(d: f64) -> &'static str {
    if d.is_nan() {
        "NaN"
    } else if d > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// A value as JSON, as ksqlDB writes it.
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::BigInt(i) => Json::from(*i),
        Value::Double(d) => serde_json::Number::from_f64(*d)
            .map(Json::Number)
            .unwrap_or_else(|| Json::String(non_finite(*d).to_string())),
        Value::Decimal(d) => d
            .to_string()
            .parse::<serde_json::Number>()
            .map(Json::Number)
            .unwrap_or_else(|_| Json::String(d.to_string())),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(base64_encode(b)),
        Value::Date(d) => Json::from(*d),
        Value::Time(t) => Json::from(*t),
        Value::Timestamp(t) => Json::from(*t),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), to_json(v)))
                .collect(),
        ),
        Value::Struct(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
    }
}

/// A value as JSON text, as ksqlDB writes it: like [`to_json`], except
/// that a DECIMAL keeps its scale (`1.50`, `0.00`), which a serde_json
/// number cannot hold.
pub fn write_json_text(v: &Value, out: &mut String) {
    match v {
        Value::Decimal(d) => out.push_str(&d.to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_text(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let entries = entries.iter().map(|(k, v)| (k.to_string(), v));
            write_object(entries, out);
        }
        Value::Struct(fields) => write_object(fields.iter().map(|(k, v)| (k.clone(), v)), out),
        other => out.push_str(&to_json(other).to_string()),
    }
}

fn write_object<'a>(entries: impl Iterator<Item = (String, &'a Value)>, out: &mut String) {
    out.push('{');
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Json::String(k).to_string());
        out.push(':');
        write_json_text(v, out);
    }
    out.push('}');
}

/// A JSON value read as a column of type `ty`.
pub fn from_json(ty: &SqlType, j: &Json) -> Result<Value, ValueError> {
    if j.is_null() {
        return Ok(Value::Null);
    }
    let bad = || format!("cannot read {j} as {ty}");
    Ok(match ty {
        SqlType::Boolean => match j {
            Json::Bool(b) => Value::Boolean(*b),
            Json::String(s) if s.eq_ignore_ascii_case("true") => Value::Boolean(true),
            Json::String(s) if s.eq_ignore_ascii_case("false") => Value::Boolean(false),
            _ => return Err(bad().into()),
        },
        SqlType::Int => {
            let i = json_i64(j).ok_or_else(bad)?;
            Value::Int(i32::try_from(i).map_err(|_| bad())?)
        }
        SqlType::BigInt => Value::BigInt(json_i64(j).ok_or_else(bad)?),
        SqlType::Double => match j {
            Json::Number(n) => Value::Double(n.as_f64().ok_or_else(bad)?),
            Json::String(s) => Value::Double(s.trim().parse().map_err(|_| bad())?),
            _ => return Err(bad().into()),
        },
        SqlType::Decimal { scale, .. } => {
            let text = match j {
                Json::Number(n) => n.to_string(),
                Json::String(s) => s.clone(),
                _ => return Err(bad().into()),
            };
            let mut d: Decimal = text
                .parse()
                .or_else(|_| Decimal::from_scientific(&text))
                .map_err(|_| bad())?;
            d.rescale(u32::from(*scale));
            Value::Decimal(d)
        }
        SqlType::String => match j {
            Json::String(s) => Value::String(s.clone()),
            other => Value::String(other.to_string()),
        },
        SqlType::Bytes => match j {
            Json::String(s) => Value::Bytes(base64_decode(s).ok_or_else(bad)?),
            _ => return Err(bad().into()),
        },
        SqlType::Date => match j {
            Json::String(s) => crate::cast::from_text(ty, s)?,
            _ => Value::Date(i32::try_from(json_i64(j).ok_or_else(bad)?).map_err(|_| bad())?),
        },
        SqlType::Time => match j {
            Json::String(s) => crate::cast::from_text(ty, s)?,
            _ => Value::Time(json_i64(j).ok_or_else(bad)?),
        },
        SqlType::Timestamp => match j {
            Json::String(s) => crate::cast::from_text(ty, s)?,
            _ => Value::Timestamp(json_i64(j).ok_or_else(bad)?),
        },
        SqlType::Array(inner) => match j {
            Json::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|x| from_json(inner, x))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(bad().into()),
        },
        SqlType::Map(kt, vt) => match j {
            Json::Object(obj) => Value::Map(
                obj.iter()
                    .map(|(k, v)| Ok((crate::cast::from_text(kt, k)?, from_json(vt, v)?)))
                    .collect::<Result<_, ValueError>>()?,
            ),
            _ => return Err(bad().into()),
        },
        SqlType::Struct(fields) => match j {
            Json::Object(obj) => Value::Struct(
                fields
                    .iter()
                    .map(|(name, t)| {
                        let v = obj.get(name).or_else(|| {
                            obj.iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                                .map(|(_, v)| v)
                        });
                        Ok((
                            name.clone(),
                            match v {
                                None => Value::Null,
                                Some(v) => from_json(t, v)?,
                            },
                        ))
                    })
                    .collect::<Result<_, ValueError>>()?,
            ),
            _ => return Err(bad().into()),
        },
    })
}

/// The JSON object of a row whose values are all NULL, BOOLEAN, integers
/// (INT, BIGINT, DATE, TIME, TIMESTAMP) or STRING, written byte for byte as
/// the serde path writes it but without its generic machinery (the
/// per-record path of a query is bound by the instruction cache); `None`
/// for any other value (DOUBLE's formatting, DECIMAL, BYTES, collections
/// stay with serde).
pub(crate) fn encode_flat_object(keys: &[Box<[u8]>], row: &[Value]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    encode_flat_object_into(keys, row, &mut out).then_some(out)
}

/// [`encode_flat_object`] appended to `out`; `false` (with `out` partly
/// written: the caller truncates it) for a row it does not write.
pub(crate) fn encode_flat_object_into(
    keys: &[Box<[u8]>],
    row: &[Value],
    out: &mut Vec<u8>,
) -> bool {
    out.push(b'{');
    for (i, (key, v)) in keys.iter().zip(row).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key);
        match v {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Boolean(true) => out.extend_from_slice(b"true"),
            Value::Boolean(false) => out.extend_from_slice(b"false"),
            Value::Int(n) | Value::Date(n) => {
                out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes());
            }
            Value::BigInt(n) | Value::Time(n) | Value::Timestamp(n) => {
                out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes());
            }
            Value::String(s) => json_write_str(out, s),
            _ => return false,
        }
    }
    out.push(b'}');
    true
}

/// Writes `s` as a JSON string with serde_json's escapes: `\"`, `\\`,
/// the short forms of backspace, form feed, newline, carriage return and
/// tab, `\u00xx` for other control characters; everything else as is.
pub(crate) fn json_write_str(out: &mut Vec<u8>, s: &str) {
    /// Per byte: 0 when written as is, else the letter after the backslash.
    const ESCAPE: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut c = 0;
        while c < 0x20 {
            t[c] = b'u';
            c += 1;
        }
        t[0x08] = b'b';
        t[0x0C] = b'f';
        t[b'\n' as usize] = b'n';
        t[b'\r' as usize] = b'r';
        t[b'\t' as usize] = b't';
        t[b'"' as usize] = b'"';
        t[b'\\' as usize] = b'\\';
        t
    };
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let short = ESCAPE[usize::from(c)];
        if short == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        out.push(b'\\');
        out.push(short);
        if short == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 0xF)],
            ]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A row written as a JSON object of its columns without building a map.
pub(crate) struct JsonRow<'a> {
    pub(crate) columns: &'a [Column],
    pub(crate) row: &'a [Value],
}

impl serde::Serialize for JsonRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.columns.len()))?;
        for (c, v) in self.columns.iter().zip(self.row) {
            m.serialize_entry(&c.name, &JsonValue(v))?;
        }
        m.end()
    }
}

/// A value written as [`to_json`] would, without the intermediate tree for
/// the common types.
pub(crate) struct JsonValue<'a>(&'a Value);

impl serde::Serialize for JsonValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Boolean(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i32(*i),
            Value::BigInt(i) => s.serialize_i64(*i),
            Value::Double(d) if d.is_finite() => s.serialize_f64(*d),
            Value::Double(d) => s.serialize_str(non_finite(*d)),
            Value::String(x) => s.serialize_str(x),
            Value::Date(d) => s.serialize_i32(*d),
            Value::Time(t) | Value::Timestamp(t) => s.serialize_i64(*t),
            other => to_json(other).serialize(s),
        }
    }
}

/// Reads a JSON object into the columns' row in one pass: only the
/// columns' fields are materialized. `Ok(None)` when the text is not an
/// object (the caller falls back to the general path); `Err` when a field
/// cannot be read as its column's type.
pub(crate) fn decode_object(columns: &[Column], bytes: &[u8]) -> Result<Option<Row>, ValueError> {
    decode_object_at(columns, bytes, (0, 0, 0), &[])
}

/// [`decode_object`] into a row with `prefix` leading NULLs and `suffix`
/// trailing ones, with room for `spare` more values.
pub(crate) fn decode_object_at(
    columns: &[Column],
    bytes: &[u8],
    layout: (usize, usize, usize),
    unread: &[bool],
) -> Result<Option<Row>, ValueError> {
    match scan_flat_object(columns, bytes, layout, unread) {
        Some(row) => Ok(Some(row)),
        None => decode_object_serde(columns, bytes, layout, unread),
    }
}

/// [`decode_object_at`] through serde: every JSON input.
pub(crate) fn decode_object_serde(
    columns: &[Column],
    bytes: &[u8],
    (prefix, suffix, spare): (usize, usize, usize),
    unread: &[bool],
) -> Result<Option<Row>, ValueError> {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};

    struct Seed<'c>(&'c [Column], usize, usize, &'c [bool], usize);
    struct Found(Option<Row>, Option<String>);

    impl<'de> DeserializeSeed<'de> for Seed<'_> {
        type Value = Found;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Found, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Seed<'_> {
        type Value = Found;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
            let mut row = Vec::with_capacity(self.1 + self.0.len() + self.2 + self.4);
            row.resize_with(self.1 + self.0.len() + self.2, || Value::Null);
            let mut error = None;
            let mut rule = KeyRule::<String>::default();
            let mut give_up = false;
            while let Some(found) = map.next_key_seed(FieldIndex(self.0))? {
                let idx = match found {
                    None => None,
                    Some((i, key)) => rule.admit(i, key).unwrap_or_else(|| {
                        // A key this path cannot place as the general one
                        // does: the general path decides.
                        give_up = true;
                        None
                    }),
                };
                let skip = |i: usize| {
                    self.3.get(i).copied().unwrap_or(false)
                        && matches!(self.0[i].ty, SqlType::String)
                };
                match idx {
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                    Some(i) if skip(i) => {
                        map.next_value::<IgnoredAny>()?;
                    }
                    Some(i) => {
                        let slot = &mut row[self.1 + i];
                        match map.next_value_seed(TypedValue(&self.0[i].ty, slot))? {
                            Ok(()) => {}
                            Err(e) => {
                                error.get_or_insert(format!("column {}: {e}", self.0[i].name));
                            }
                        }
                    }
                }
            }
            if give_up {
                return Ok(Found(None, None));
            }
            Ok(Found(Some(row), error))
        }
        fn visit_unit<E>(self) -> Result<Found, E> {
            Ok(Found(None, None))
        }
        fn visit_bool<E>(self, _: bool) -> Result<Found, E> {
            Ok(Found(None, None))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Found, E> {
            Ok(Found(None, None))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Found, E> {
            Ok(Found(None, None))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Found, E> {
            Ok(Found(None, None))
        }
        fn visit_str<E>(self, _: &str) -> Result<Found, E> {
            Ok(Found(None, None))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Found, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Found(None, None))
        }
    }

    let mut de = serde_json::Deserializer::from_slice(bytes);
    let found = Seed(columns, prefix, suffix, unread, spare)
        .deserialize(&mut de)
        .map_err(|e| format!("invalid JSON: {e}"))?;
    de.end().map_err(|e| format!("invalid JSON: {e}"))?;
    match found {
        Found(_, Some(e)) => Err(e.into()),
        Found(row, None) => Ok(row),
    }
}

/// The common case of [`decode_object_at`] without serde: a flat JSON
/// object whose values are plain scalars that already have their column's
/// shape (a string without escapes for STRING, an integer for BIGINT or
/// INT, `true`/`false` for BOOLEAN, `null` for any). It is a few hundred
/// instructions of straight-line code where serde's generic visitors are a
/// thousand spread over many functions (the per-record path of a query is
/// bound by the instruction cache). Anything else, including every input
/// serde would reject, gives `None`, and the serde path decides; so both
/// paths agree on every input this one accepts (a property test checks).
pub(crate) fn scan_flat_object(
    columns: &[Column],
    b: &[u8],
    (prefix, suffix, spare): (usize, usize, usize),
    unread: &[bool],
) -> Option<Row> {
    let mut i = json_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    let width = prefix + columns.len() + suffix;
    let mut row = Vec::with_capacity(width + spare);
    row.resize_with(width, || Value::Null);
    i = json_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        // Producers usually write fields in the schema's order: the n-th
        // key is tried against the n-th column first.
        let mut n = 0;
        let mut rule = KeyRule::<&[u8]>::default();
        loop {
            let (key, next) = json_plain_str(b, i)?;
            i = json_ws(b, next);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = json_ws(b, i + 1);
            // Keys are compared as bytes: one equal to a column's name is
            // UTF-8; any other must be, as serde requires of keys.
            let col = match columns.get(n) {
                Some(c) if c.name.as_bytes() == key => rule.admit(n, None)?,
                _ => match columns.iter().position(|c| c.name.as_bytes() == key) {
                    Some(c) => rule.admit(c, None)?,
                    None => {
                        std::str::from_utf8(key).ok()?;
                        match columns
                            .iter()
                            .position(|c| c.name.as_bytes().eq_ignore_ascii_case(key))
                        {
                            Some(c) => rule.admit(c, Some(key))?,
                            None => None,
                        }
                    }
                },
            };
            n += 1;
            let read = col.filter(|c| {
                !(unread.get(*c).copied().unwrap_or(false)
                    && matches!(columns[*c].ty, SqlType::String))
            });
            i = match read {
                None => json_skip_scalar(b, i)?,
                Some(c) => {
                    let (v, next) = json_scalar_as(&columns[c].ty, b, i)?;
                    row[prefix + c].set(v);
                    next
                }
            };
            i = json_ws(b, i);
            match b.get(i) {
                Some(b',') => i = json_ws(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (json_ws(b, i) == b.len()).then_some(row)
}

/// The index of the first non-whitespace byte at or after `i`.
#[inline]
pub(crate) fn json_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The bytes of a string at `i` without escapes or control characters,
/// and the index after its closing quote. Not checked as UTF-8: serde
/// skips strings without checking them either.
#[inline]
pub(crate) fn json_plain_str(b: &[u8], i: usize) -> Option<(&[u8], usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let body = b.get(i + 1..)?;
    let len = body
        .iter()
        .position(|c| *c == b'"' || *c == b'\\' || *c < 0x20)?;
    if body[len] != b'"' {
        return None;
    }
    Some((&body[..len], i + 1 + len + 1))
}

/// The end of a JSON number at `i` (the grammar's), and whether it is an
/// integer.
#[inline]
pub(crate) fn json_number_end(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let digits = |b: &[u8], mut i: usize| {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > start).then_some(i)
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let int_end = digits(b, i)?;
    if b[i] == b'0' && int_end > i + 1 {
        return None; // a leading zero
    }
    i = int_end;
    let mut integer = true;
    if b.get(i) == Some(&b'.') {
        i = digits(b, i + 1)?;
        integer = false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(b, i)?;
        integer = false;
    }
    Some((i, integer))
}

/// A JSON integer's digits (already checked by [`json_number_end`]) as an
/// `i64`; `None` when it does not fit.
#[inline]
pub(crate) fn json_digits_i64(digits: &[u8]) -> Option<i64> {
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    // Accumulated negatively: i64::MIN has no positive counterpart.
    let mut n: i64 = 0;
    for d in digits {
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(n)
    } else {
        n.checked_neg()
    }
}

/// Skips a scalar (string without escapes, number, literal) at `i`.
pub(crate) fn json_skip_scalar(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => json_plain_str(b, i).map(|(_, next)| next),
        b'-' | b'0'..=b'9' => json_number_end(b, i).map(|(end, _)| end),
        b't' => b[i..].starts_with(b"true").then_some(i + 4),
        b'f' => b[i..].starts_with(b"false").then_some(i + 5),
        b'n' => b[i..].starts_with(b"null").then_some(i + 4),
        _ => None,
    }
}

/// A scalar at `i` that already has `ty`'s JSON shape, as a value.
#[inline]
pub(crate) fn json_scalar_as(ty: &SqlType, b: &[u8], i: usize) -> Option<(Value, usize)> {
    match (b.get(i)?, ty) {
        (b'n', _) => b[i..].starts_with(b"null").then_some((Value::Null, i + 4)),
        (b'"', SqlType::String) => {
            let (raw, next) = json_plain_str(b, i)?;
            let text = std::str::from_utf8(raw).ok()?;
            Some((Value::String(text.to_owned()), next))
        }
        (b't', SqlType::Boolean) => b[i..]
            .starts_with(b"true")
            .then_some((Value::Boolean(true), i + 4)),
        (b'f', SqlType::Boolean) => b[i..]
            .starts_with(b"false")
            .then_some((Value::Boolean(false), i + 5)),
        (b'-' | b'0'..=b'9', SqlType::BigInt | SqlType::Int) => {
            let (end, true) = json_number_end(b, i)? else {
                return None;
            };
            let n = json_digits_i64(&b[i..end])?;
            let v = match ty {
                SqlType::Int => Value::Int(i32::try_from(n).ok()?),
                _ => Value::BigInt(n),
            };
            Some((v, end))
        }
        _ => None,
    }
}

/// A JSON object's key as the index of the column it names (exact name
/// first, then ignoring ASCII case), read without allocating.
pub(crate) struct FieldIndex<'c>(&'c [Column]);

/// The column and, when it matched only ignoring case, the key.
type Placed = Option<(usize, Option<String>)>;

impl<'de> serde::de::DeserializeSeed<'de> for FieldIndex<'_> {
    type Value = Placed;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Placed, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for FieldIndex<'_> {
    type Value = Placed;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, key: &str) -> Result<Placed, E> {
        if let Some(i) = self.0.iter().position(|c| c.name == key) {
            return Ok(Some((i, None)));
        }
        Ok(self
            .0
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(key))
            .map(|i| (i, Some(key.to_owned()))))
    }
}

/// Which of an object's keys give a column its value, as the general
/// path picks them from the parsed object: a key equal to the column's
/// name (the last time it occurs), else the first key equal ignoring
/// ASCII case (the last time it occurs). The one-pass readers ask it per
/// key; `None` (give up, the general path decides) for a column past the
/// 64th matched ignoring case.
pub(crate) struct KeyRule<K> {
    /// Columns (the first 64) some key named exactly.
    exact: u64,
    /// Columns given by a key ignoring case, with that key.
    by_case: Vec<(usize, K)>,
}

impl<K> Default for KeyRule<K> {
    fn default() -> Self {
        KeyRule {
            exact: 0,
            by_case: Vec::new(),
        }
    }
}

impl<K: PartialEq> KeyRule<K> {
    /// For a key naming column `col` (exactly, or ignoring case: `key`):
    /// `Some(Some(col))` to read its value into the column, `Some(None)`
    /// to skip it, `None` to give up.
    #[inline]
    pub(crate) fn admit(&mut self, col: usize, key: Option<K>) -> Option<Option<usize>> {
        let Some(key) = key else {
            if col < 64 {
                self.exact |= 1 << col;
            }
            return Some(Some(col));
        };
        if col >= 64 {
            return None;
        }
        if self.exact & (1 << col) != 0 {
            return Some(None);
        }
        match self.by_case.iter().find(|(c, _)| *c == col) {
            Some((_, first)) if *first == key => Some(Some(col)),
            Some(_) => Some(None),
            None => {
                self.by_case.push((col, key));
                Some(Some(col))
            }
        }
    }
}

/// A JSON value read straight into a row slot as its column's type.
/// Scalars that already have the column's JSON shape (a string for STRING,
/// an integer for BIGINT…) skip the intermediate JSON tree and are written
/// in place; anything else is read as JSON and converted by [`from_json`],
/// so both paths accept the same input. The inner `Err` is a value that
/// does not fit the type (the slot is left as it was).
pub(crate) struct TypedValue<'t>(&'t SqlType, &'t mut Value);

impl TypedValue<'_> {
    fn put(self, v: Result<Value, ValueError>) -> Result<(), ValueError> {
        self.1.set(v?);
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for TypedValue<'_> {
    type Value = Result<(), ValueError>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for TypedValue<'_> {
    type Value = Result<(), ValueError>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        self.1.set(Value::Null);
        Ok(Ok(()))
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        self.1.set(Value::Null);
        Ok(Ok(()))
    }
    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(match self.0 {
            SqlType::Boolean => {
                self.1.set(Value::Boolean(b));
                Ok(())
            }
            ty => self.put(from_json(ty, &Json::Bool(b))),
        })
    }
    fn visit_i64<E>(self, i: i64) -> Result<Self::Value, E> {
        Ok(match self.0 {
            SqlType::BigInt => {
                self.1.set(Value::BigInt(i));
                Ok(())
            }
            ty => self.put(from_json(ty, &Json::from(i))),
        })
    }
    fn visit_u64<E>(self, i: u64) -> Result<Self::Value, E> {
        Ok(match (self.0, i64::try_from(i)) {
            (SqlType::BigInt, Ok(i)) => {
                self.1.set(Value::BigInt(i));
                Ok(())
            }
            (ty, _) => self.put(from_json(ty, &Json::from(i))),
        })
    }
    fn visit_f64<E>(self, d: f64) -> Result<Self::Value, E> {
        Ok(match self.0 {
            SqlType::Double => {
                self.1.set(Value::Double(d));
                Ok(())
            }
            ty => self.put(from_json(ty, &Json::from(d))),
        })
    }
    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(match self.0 {
            SqlType::String => {
                self.1.set(Value::String(text.to_owned()));
                Ok(())
            }
            ty => self.put(from_json(ty, &Json::String(text.to_owned()))),
        })
    }
    fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
        Ok(match self.0 {
            SqlType::String => {
                self.1.set(Value::String(text));
                Ok(())
            }
            ty => self.put(from_json(ty, &Json::String(text))),
        })
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        use serde::Deserialize;
        let j = Json::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        let ty = self.0;
        Ok(self.put(from_json(ty, &j)))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        use serde::Deserialize;
        let j = Json::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        let ty = self.0;
        Ok(self.put(from_json(ty, &j)))
    }
}

pub(crate) fn json_i64(j: &Json) -> Option<i64> {
    match j {
        // A fraction is cut off, as Jackson's longValue()/intValue() do
        // for ksqlDB's JSON deserializer (-1.7 reads as -1).
        Json::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.trunc() as i64)
        }),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// JSON: any columns, as an object (or one unwrapped value).
pub(crate) struct JsonFormat;

impl RowFormat for JsonFormat {
    fn name(&self) -> &'static str {
        "JSON"
    }
    fn check(&self, columns: &[Column], what: &str) -> Result<(), FormatError> {
        fn string_keys(ty: &SqlType) -> bool {
            match ty {
                SqlType::Map(k, v) => **k == SqlType::String && string_keys(v),
                SqlType::Array(t) => string_keys(t),
                SqlType::Struct(fields) => fields.iter().all(|(_, t)| string_keys(t)),
                _ => true,
            }
        }
        match columns.iter().find(|c| !string_keys(&c.ty)) {
            Some(c) => Err(FormatError::Unsupported(format!(
                "{what} column {}: {MAP_KEYS_REFUSED}",
                c.name
            ))),
            None => Ok(()),
        }
    }
    fn codec(&self, spec: &CodecSpec<'_>) -> Arc<dyn RowCodec> {
        Arc::new(JsonCodec {
            columns: spec.columns.to_vec(),
            wrap_single: spec.wrap_single,
            json_keys: json_keys(spec.columns),
        })
    }
}

/// Each column's `"NAME":` as JSON, written ahead of its value.
pub(crate) fn json_keys(columns: &[Column]) -> Vec<Box<[u8]>> {
    columns
        .iter()
        .map(|c| {
            let mut key = Vec::with_capacity(c.name.len() + 3);
            json_write_str(&mut key, &c.name);
            key.push(b':');
            key.into_boxed_slice()
        })
        .collect()
}

struct JsonCodec {
    columns: Vec<Column>,
    /// One column: whether it is wrapped in an object.
    wrap_single: bool,
    /// Each column's `"NAME":` as JSON, written ahead of its value.
    json_keys: Vec<Box<[u8]>>,
}

impl JsonCodec {
    /// Whether rows are objects (else one unwrapped value).
    fn objects(&self) -> bool {
        self.columns.len() != 1 || self.wrap_single
    }
}

impl RowCodec for JsonCodec {
    fn encode(&self, row: &[Value]) -> Result<Option<Vec<u8>>, FormatError> {
        if !self.objects() {
            let v = row.first().cloned().unwrap_or_default();
            if v.is_null() {
                return Ok(None);
            }
            return serde_json::to_vec(&to_json(&v))
                .map(Some)
                .map_err(|e| FormatError::Encode(e.to_string()));
        }
        if let Some(bytes) = encode_flat_object(&self.json_keys, row) {
            return Ok(Some(bytes));
        }
        serde_json::to_vec(&JsonRow {
            columns: &self.columns,
            row,
        })
        .map(Some)
        .map_err(|e| FormatError::Encode(e.to_string()))
    }

    fn decode_with_prefix(
        &self,
        bytes: &[u8],
        prefix: usize,
        suffix: usize,
        spare: usize,
        unread: &[bool],
    ) -> Result<Row, FormatError> {
        if self.objects() {
            if let Ok(Some(row)) =
                decode_object_at(&self.columns, bytes, (prefix, suffix, spare), unread)
            {
                return Ok(row);
            }
        }
        Ok(crate::format::padded(
            self.decode(bytes)?,
            prefix,
            suffix,
            spare,
        ))
    }

    fn decode(&self, bytes: &[u8]) -> Result<Row, FormatError> {
        if self.objects() {
            // The common case: an object of the columns, read straight
            // into the row.
            if let Ok(Some(row)) = decode_object(&self.columns, bytes) {
                return Ok(row);
            }
        }
        let json: Json = serde_json::from_slice(bytes)
            .map_err(|e| FormatError::Decode(format!("invalid JSON: {e}")))?;
        let single =
            |j: &Json| from_json(&self.columns[0].ty, j).map_err(|e| FormatError::Decode(e.0));
        if !self.objects() {
            return Ok(vec![single(&json)?]);
        }
        match &json {
            Json::Object(obj) => self
                .columns
                .iter()
                .map(|c| {
                    let field = obj.get(&c.name).or_else(|| {
                        obj.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(&c.name))
                            .map(|(_, v)| v)
                    });
                    match field {
                        None => Ok(Value::Null),
                        Some(v) => from_json(&c.ty, v)
                            .map_err(|e| FormatError::Decode(format!("column {}: {e}", c.name))),
                    }
                })
                .collect(),
            // An unwrapped single value is accepted too.
            other if self.columns.len() == 1 => Ok(vec![single(other)?]),
            _ => Err(FormatError::Decode("expected a JSON object".into())),
        }
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn json_text_keeps_the_scale_of_decimals_at_any_depth() {
        let d = |s: &str| Value::Decimal(s.parse().expect("a decimal"));
        let v = Value::Array(vec![
            d("0.00"),
            d("1.50"),
            Value::Struct(vec![
                ("A\"".into(), d("-2.10")),
                ("B".into(), Value::Double(0.5)),
            ]),
            Value::Map(vec![(Value::String("k".into()), d("3.000"))]),
            Value::Null,
        ]);
        let mut out = String::new();
        write_json_text(&v, &mut out);
        assert_eq!(out, r#"[0.00,1.50,{"A\"":-2.10,"B":0.5},{"k":3.000},null]"#);
        // Without decimals, the same text as the serde path.
        let plain = Value::Array(vec![
            Value::String("x\n".into()),
            Value::BigInt(7),
            Value::Map(vec![(Value::Int(1), Value::Boolean(true))]),
        ]);
        let mut out = String::new();
        write_json_text(&plain, &mut out);
        assert_eq!(out, to_json(&plain).to_string());
    }
}
