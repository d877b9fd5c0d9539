//! Serialization formats of keys and values (KAFKA, JSON, DELIMITED) and
//! the internal format of repartition topics and state.

use std::fmt;
use std::sync::Arc;

use runnel_streams::serdes::{Serde, SerdeError, Serialized};
use rust_decimal::Decimal;
use serde_json::Value as Json;

use crate::schema::Column;
use crate::types::{base64_decode, base64_encode, SqlType, Value};

/// A row: the values of some columns, in the columns' order.
pub type Row = Vec<Value>;

/// A serialization format, as named in `KEY_FORMAT` / `VALUE_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Format {
    /// A single primitive column in Kafka's own serializations.
    Kafka,
    Json,
    Delimited,
    /// No bytes at all: for keyless streams.
    None,
}

impl Format {
    /// Parses a format name; `Err` names the formats known.
    pub fn parse(name: &str) -> Result<Format, String> {
        match name.to_ascii_uppercase().as_str() {
            "KAFKA" => Ok(Format::Kafka),
            "JSON" => Ok(Format::Json),
            "DELIMITED" => Ok(Format::Delimited),
            "NONE" => Ok(Format::None),
            "AVRO" | "PROTOBUF" | "PROTOBUF_NOSR" | "JSON_SR" => Err(format!(
                "format {name} needs a schema registry, which Runnel does not have yet; use JSON, DELIMITED or KAFKA"
            )),
            _ => Err(format!(
                "unknown format '{name}'; expected one of KAFKA, JSON, DELIMITED, NONE"
            )),
        }
    }

    /// Checks that the format can carry these columns.
    pub fn check(&self, columns: &[Column], what: &str) -> Result<(), String> {
        match self {
            Format::Kafka => {
                if columns.len() > 1 {
                    return Err(format!(
                        "the KAFKA format supports only one {what} column, got {}",
                        columns.len()
                    ));
                }
                if let Some(c) = columns.first() {
                    match c.ty {
                        SqlType::Int
                        | SqlType::BigInt
                        | SqlType::Double
                        | SqlType::String
                        | SqlType::Bytes => {}
                        ref t => {
                            return Err(format!(
                                "the KAFKA format does not support type {t} (column {})",
                                c.name
                            ))
                        }
                    }
                }
                Ok(())
            }
            Format::Delimited => {
                for c in columns {
                    if matches!(
                        c.ty,
                        SqlType::Array(_) | SqlType::Map(..) | SqlType::Struct(_)
                    ) {
                        return Err(format!(
                            "the DELIMITED format does not support type {} (column {})",
                            c.ty, c.name
                        ));
                    }
                }
                Ok(())
            }
            Format::None => {
                if columns.is_empty() {
                    Ok(())
                } else {
                    Err(format!("the NONE format cannot carry {what} columns"))
                }
            }
            Format::Json => Ok(()),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Kafka => "KAFKA",
            Format::Json => "JSON",
            Format::Delimited => "DELIMITED",
            Format::None => "NONE",
        })
    }
}

/// Encodes and decodes rows of given columns in a format.
#[derive(Clone)]
pub struct RowSerde {
    pub format: Format,
    pub columns: Vec<Column>,
    /// JSON with one column: whether it is wrapped in an object.
    pub wrap_single: bool,
    pub delimiter: char,
    /// Each column's `"NAME":` as JSON, written ahead of its value.
    json_keys: Arc<[Box<[u8]>]>,
}

impl RowSerde {
    pub fn new(format: Format, columns: Vec<Column>, wrap_single: bool) -> Self {
        let json_keys = columns
            .iter()
            .map(|c| {
                let mut key = Vec::with_capacity(c.name.len() + 3);
                json_write_str(&mut key, &c.name);
                key.push(b':');
                key.into_boxed_slice()
            })
            .collect();
        RowSerde {
            format,
            columns,
            wrap_single,
            delimiter: ',',
            json_keys,
        }
    }

    pub fn encode(&self, row: &[Value]) -> Result<Option<Vec<u8>>, String> {
        match self.format {
            Format::None => Ok(None),
            Format::Kafka => match row.first() {
                None | Some(Value::Null) => Ok(None),
                Some(v) => encode_kafka(v).map(Some),
            },
            Format::Json => {
                if self.columns.len() == 1 && !self.wrap_single {
                    let v = row.first().cloned().unwrap_or_default();
                    if v.is_null() {
                        return Ok(None);
                    }
                    return serde_json::to_vec(&to_json(&v))
                        .map(Some)
                        .map_err(|e| e.to_string());
                }
                if let Some(bytes) = encode_flat_object(&self.json_keys, row) {
                    return Ok(Some(bytes));
                }
                serde_json::to_vec(&JsonRow {
                    columns: &self.columns,
                    row,
                })
                .map(Some)
                .map_err(|e| e.to_string())
            }
            Format::Delimited => {
                if row.iter().all(Value::is_null) && self.columns.len() == 1 {
                    return Ok(None);
                }
                let mut out = String::new();
                for (i, v) in row.iter().enumerate() {
                    if i > 0 {
                        out.push(self.delimiter);
                    }
                    if !v.is_null() {
                        let text = v.to_string();
                        if text.contains(self.delimiter) || text.contains('"') {
                            out.push('"');
                            out.push_str(&text.replace('"', "\"\""));
                            out.push('"');
                        } else {
                            out.push_str(&text);
                        }
                    }
                }
                Ok(Some(out.into_bytes()))
            }
        }
    }

    /// Decodes into a row laid out for the planner: `prefix` NULLs (the
    /// key columns' slots), the columns, and `suffix` more NULLs
    /// (the pseudo columns), in one allocation for JSON objects. STRING
    /// columns flagged in `unread` are left NULL in JSON objects: nobody
    /// reads them, and a STRING column accepts any JSON value, so skipping
    /// one changes no record's fate.
    #[inline]
    ///
    /// `spare` more values fit in the row without growing it (a join
    /// appends the other side's columns to it).
    pub fn decode_with_prefix(
        &self,
        bytes: &[u8],
        prefix: usize,
        suffix: usize,
        spare: usize,
        unread: &[bool],
    ) -> Result<Row, String> {
        if self.format == Format::Json && (self.columns.len() != 1 || self.wrap_single) {
            if let Ok(Some(row)) =
                decode_object_at(&self.columns, bytes, (prefix, suffix, spare), unread)
            {
                return Ok(row);
            }
        }
        let values = self.decode(bytes)?;
        let mut row = Vec::with_capacity(prefix + values.len() + suffix + spare);
        row.resize_with(prefix, || Value::Null);
        row.extend(values);
        row.resize_with(row.len() + suffix, || Value::Null);
        Ok(row)
    }

    pub fn decode(&self, bytes: &[u8]) -> Result<Row, String> {
        match self.format {
            Format::None => Ok(Vec::new()),
            Format::Kafka => match self.columns.first() {
                None => Ok(Vec::new()),
                Some(c) => Ok(vec![decode_kafka(&c.ty, bytes)?]),
            },
            Format::Json => {
                if self.columns.len() != 1 || self.wrap_single {
                    // The common case: an object of the columns, read
                    // straight into the row.
                    if let Ok(Some(row)) = decode_object(&self.columns, bytes) {
                        return Ok(row);
                    }
                }
                let json: Json =
                    serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
                if self.columns.len() == 1 && !self.wrap_single {
                    return Ok(vec![from_json(&self.columns[0].ty, &json)?]);
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
                                    .map_err(|e| format!("column {}: {e}", c.name)),
                            }
                        })
                        .collect(),
                    // An unwrapped single value is accepted too.
                    other if self.columns.len() == 1 => {
                        Ok(vec![from_json(&self.columns[0].ty, other)?])
                    }
                    _ => Err("expected a JSON object".into()),
                }
            }
            Format::Delimited => {
                let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
                let fields = split_delimited(text, self.delimiter);
                if fields.len() != self.columns.len() {
                    return Err(format!(
                        "expected {} delimited fields, got {}",
                        self.columns.len(),
                        fields.len()
                    ));
                }
                self.columns
                    .iter()
                    .zip(fields)
                    .map(|(c, f)| {
                        if f.is_empty() {
                            Ok(Value::Null)
                        } else {
                            crate::cast::from_text(&c.ty, &f)
                                .map_err(|e| format!("column {}: {e}", c.name))
                        }
                    })
                    .collect()
            }
        }
    }
}

impl Serde<Row> for RowSerde {
    /// A row the format cannot carry is an error (the engine skips its
    /// record as a processing error), never a null: a null value on a
    /// table's topic is a tombstone.
    fn serialize(&self, row: &Row) -> Serialized {
        // The common key: one string in the KAFKA format, written without
        // the general path's intermediate results.
        if let (Format::Kafka, Some(Value::String(text))) = (self.format, row.first()) {
            return Ok(Some(text.as_bytes().to_vec()));
        }
        self.encode(row)
            .map_err(|e| SerdeError(format!("cannot write a {} row: {e}", self.format)))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Row, SerdeError> {
        match bytes {
            None => Ok(vec![Value::Null; self.columns.len()]),
            Some(b) => {
                if let (
                    Format::Kafka,
                    [Column {
                        ty: SqlType::String,
                        ..
                    }],
                ) = (self.format, self.columns.as_slice())
                {
                    if let Ok(text) = std::str::from_utf8(b) {
                        return Ok(vec![Value::String(text.to_owned())]);
                    }
                }
                self.decode(b).map_err(SerdeError)
            }
        }
    }
}

/// Rows in Runnel's own compact encoding, for repartition topics,
/// changelogs and aggregation state (never user-facing topics).
///
/// Two forms share it. A row of at most 255 fixed-width scalars (NULL,
/// BOOLEAN, INT, BIGINT, DOUBLE, DATE, TIME, TIMESTAMP: what COUNT, SUM,
/// MIN, MAX keep) is written as a `0` byte, the number of values, then a
/// tag and the value's bytes: little-endian, except BIGINT, a zigzag
/// varint (counts and sums are mostly small: a one-count row is 4 bytes,
/// and a stored accumulator with its timestamp fits a 16-byte block). An
/// aggregation reads and writes its accumulators once per record, and
/// this form costs a few instructions per value where serde's costs a
/// hundred. Any other row
/// is postcard. Postcard writes a row's length first, so its only row
/// starting with a `0` byte is the empty row, `[0]` alone; the two forms
/// never collide, and stores written before the scalar form still read.
#[derive(Clone, Copy, Default)]
pub struct InternalSerde;

/// The first byte of the scalar form.
const SCALAR_FORM: u8 = 0;

impl Serde<Row> for InternalSerde {
    fn serialize(&self, row: &Row) -> Serialized {
        match encode_scalars(row) {
            Some(b) => Ok(Some(b)),
            None => postcard::to_stdvec(row)
                .map(Some)
                .map_err(|e| SerdeError(format!("cannot write an internal row: {e}"))),
        }
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Row, SerdeError> {
        match bytes {
            None => Ok(Vec::new()),
            Some([SCALAR_FORM, n, rest @ ..]) => decode_scalars(usize::from(*n), rest),
            Some(b) => postcard::from_bytes(b).map_err(|e| SerdeError(e.to_string())),
        }
    }
}

/// Keys in the internal encoding: always postcard, so a key's bytes stay
/// what builds before the scalar form wrote (stores and changelogs are
/// looked up by them).
#[derive(Clone, Copy, Default)]
pub struct InternalKeySerde;

impl Serde<Row> for InternalKeySerde {
    fn serialize(&self, row: &Row) -> Serialized {
        postcard::to_stdvec(row)
            .map(Some)
            .map_err(|e| SerdeError(format!("cannot write an internal key: {e}")))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Row, SerdeError> {
        InternalSerde.deserialize(bytes)
    }
}

/// Scalar-form tags.
const T_NULL: u8 = 0;
const T_FALSE: u8 = 1;
const T_TRUE: u8 = 2;
const T_INT: u8 = 3;
const T_BIGINT: u8 = 4;
const T_DOUBLE: u8 = 5;
const T_DATE: u8 = 6;
const T_TIME: u8 = 7;
const T_TIMESTAMP: u8 = 8;
/// BIGINT as a zigzag LEB128 varint (`T_BIGINT`, 8 fixed bytes, is what
/// earlier builds wrote; both read).
const T_VARBIGINT: u8 = 9;

/// The scalar form of `row`, or `None` when a value is not a fixed-width
/// scalar (or the row is empty or wider than 255).
fn encode_scalars(row: &Row) -> Option<Vec<u8>> {
    let n = u8::try_from(row.len()).ok().filter(|n| *n > 0)?;
    // Rows with a string (most data rows) go to postcard before any work.
    if !row.iter().all(is_scalar) {
        return None;
    }
    let mut out = Vec::with_capacity(2 + 11 * row.len());
    out.push(SCALAR_FORM);
    out.push(n);
    for v in row {
        let (tag, bytes, len) = scalar_parts(v)?;
        out.push(tag);
        out.extend_from_slice(&bytes[..len]);
    }
    Some(out)
}

/// Whether `v` has a scalar form ([`scalar_parts`] is `Some`), without
/// computing it.
#[inline]
fn is_scalar(v: &Value) -> bool {
    matches!(
        v,
        Value::Null
            | Value::Boolean(_)
            | Value::Int(_)
            | Value::Date(_)
            | Value::BigInt(_)
            | Value::Time(_)
            | Value::Timestamp(_)
            | Value::Double(_)
    )
}

/// A value's scalar-form tag and its payload (the first `len` bytes), or
/// `None` when it is not a fixed-width scalar.
#[inline]
fn scalar_parts(v: &Value) -> Option<(u8, [u8; 10], usize)> {
    let le = |tag, b: &[u8]| {
        let mut out = [0; 10];
        out[..b.len()].copy_from_slice(b);
        (tag, out, b.len())
    };
    Some(match v {
        Value::Null => (T_NULL, [0; 10], 0),
        Value::Boolean(false) => (T_FALSE, [0; 10], 0),
        Value::Boolean(true) => (T_TRUE, [0; 10], 0),
        Value::Int(i) => le(T_INT, &i.to_le_bytes()),
        Value::Date(i) => le(T_DATE, &i.to_le_bytes()),
        Value::BigInt(i) => {
            // Zigzag, then seven bits per byte, low first.
            let mut z = ((*i << 1) ^ (*i >> 63)) as u64;
            let (mut out, mut len) = ([0; 10], 0);
            while z >= 0x80 {
                out[len] = (z as u8) | 0x80;
                z >>= 7;
                len += 1;
            }
            out[len] = z as u8;
            (T_VARBIGINT, out, len + 1)
        }
        Value::Time(i) => le(T_TIME, &i.to_le_bytes()),
        Value::Timestamp(i) => le(T_TIMESTAMP, &i.to_le_bytes()),
        Value::Double(d) => le(T_DOUBLE, &d.to_le_bytes()),
        _ => return None,
    })
}

/// Reads a zigzag LEB128 BIGINT (at most 10 bytes) from the front of `b`.
fn take_varbigint(b: &mut &[u8]) -> Result<i64, SerdeError> {
    let mut z: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(10) {
        z |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if i == 9 && *byte > 1 {
                break;
            }
            *b = &b[i + 1..];
            return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    Err(SerdeError("malformed BIGINT in an internal row".into()))
}

/// Reads `n` scalar-form values from `b`, which must hold exactly them.
fn decode_scalars(n: usize, mut b: &[u8]) -> Result<Row, SerdeError> {
    fn take<const N: usize>(b: &mut &[u8]) -> Result<[u8; N], SerdeError> {
        match b.split_first_chunk::<N>() {
            Some((head, rest)) => {
                *b = rest;
                Ok(*head)
            }
            None => Err(SerdeError("truncated internal row".into())),
        }
    }
    let mut row = Vec::with_capacity(n);
    for _ in 0..n {
        let [tag] = take::<1>(&mut b)?;
        row.push(match tag {
            T_NULL => Value::Null,
            T_FALSE => Value::Boolean(false),
            T_TRUE => Value::Boolean(true),
            T_INT => Value::Int(i32::from_le_bytes(take(&mut b)?)),
            T_DATE => Value::Date(i32::from_le_bytes(take(&mut b)?)),
            T_BIGINT => Value::BigInt(i64::from_le_bytes(take(&mut b)?)),
            T_VARBIGINT => Value::BigInt(take_varbigint(&mut b)?),
            T_TIME => Value::Time(i64::from_le_bytes(take(&mut b)?)),
            T_TIMESTAMP => Value::Timestamp(i64::from_le_bytes(take(&mut b)?)),
            T_DOUBLE => Value::Double(f64::from_le_bytes(take(&mut b)?)),
            t => return Err(SerdeError(format!("unknown internal value tag {t}"))),
        });
    }
    if b.is_empty() {
        Ok(row)
    } else {
        Err(SerdeError("trailing bytes after an internal row".into()))
    }
}

fn split_delimited(text: &str, delim: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && cur.is_empty() {
            quoted = true;
        } else if c == delim {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

fn encode_kafka(v: &Value) -> Result<Vec<u8>, String> {
    Ok(match v {
        Value::Int(i) => i.to_be_bytes().to_vec(),
        Value::BigInt(i) => i.to_be_bytes().to_vec(),
        Value::Double(d) => d.to_be_bytes().to_vec(),
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Bytes(b) => b.clone(),
        other => return Err(format!("the KAFKA format cannot carry {other}")),
    })
}

fn decode_kafka(ty: &SqlType, b: &[u8]) -> Result<Value, String> {
    let fixed = |n: usize| -> Result<&[u8], String> {
        if b.len() == n {
            Ok(b)
        } else {
            Err(format!("expected {n} bytes for {ty}, got {}", b.len()))
        }
    };
    Ok(match ty {
        SqlType::Int => {
            let a = fixed(4)?;
            Value::Int(i32::from_be_bytes([a[0], a[1], a[2], a[3]]))
        }
        SqlType::BigInt => {
            let a = fixed(8)?;
            let mut x = [0u8; 8];
            x.copy_from_slice(a);
            Value::BigInt(i64::from_be_bytes(x))
        }
        SqlType::Double => {
            let a = fixed(8)?;
            let mut x = [0u8; 8];
            x.copy_from_slice(a);
            Value::Double(f64::from_be_bytes(x))
        }
        SqlType::String => Value::String(
            String::from_utf8(b.to_vec()).map_err(|_| "key is not valid UTF-8".to_string())?,
        ),
        SqlType::Bytes => Value::Bytes(b.to_vec()),
        t => return Err(format!("the KAFKA format does not support {t}")),
    })
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
            .unwrap_or(Json::Null),
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

/// A JSON value read as a column of type `ty`.
pub fn from_json(ty: &SqlType, j: &Json) -> Result<Value, String> {
    if j.is_null() {
        return Ok(Value::Null);
    }
    let bad = || format!("cannot read {j} as {ty}");
    Ok(match ty {
        SqlType::Boolean => match j {
            Json::Bool(b) => Value::Boolean(*b),
            Json::String(s) if s.eq_ignore_ascii_case("true") => Value::Boolean(true),
            Json::String(s) if s.eq_ignore_ascii_case("false") => Value::Boolean(false),
            _ => return Err(bad()),
        },
        SqlType::Int => {
            let i = json_i64(j).ok_or_else(bad)?;
            Value::Int(i32::try_from(i).map_err(|_| bad())?)
        }
        SqlType::BigInt => Value::BigInt(json_i64(j).ok_or_else(bad)?),
        SqlType::Double => match j {
            Json::Number(n) => Value::Double(n.as_f64().ok_or_else(bad)?),
            Json::String(s) => Value::Double(s.trim().parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        },
        SqlType::Decimal { scale, .. } => {
            let text = match j {
                Json::Number(n) => n.to_string(),
                Json::String(s) => s.clone(),
                _ => return Err(bad()),
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
            _ => return Err(bad()),
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
            _ => return Err(bad()),
        },
        SqlType::Map(kt, vt) => match j {
            Json::Object(obj) => Value::Map(
                obj.iter()
                    .map(|(k, v)| Ok((crate::cast::from_text(kt, k)?, from_json(vt, v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            _ => return Err(bad()),
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
                    .collect::<Result<_, String>>()?,
            ),
            _ => return Err(bad()),
        },
    })
}

/// The JSON object of a row whose values are all NULL, BOOLEAN, integers
/// (INT, BIGINT, DATE, TIME, TIMESTAMP) or STRING, written byte for byte as
/// the serde path writes it but without its generic machinery (the
/// per-record path of a query is bound by the instruction cache); `None`
/// for any other value (DOUBLE's formatting, DECIMAL, BYTES, collections
/// stay with serde).
fn encode_flat_object(keys: &[Box<[u8]>], row: &[Value]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
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
            Value::String(s) => json_write_str(&mut out, s),
            _ => return None,
        }
    }
    out.push(b'}');
    Some(out)
}

/// Writes `s` as a JSON string with serde_json's escapes: `\"`, `\\`,
/// the short forms of backspace, form feed, newline, carriage return and
/// tab, `\u00xx` for other control characters; everything else as is.
fn json_write_str(out: &mut Vec<u8>, s: &str) {
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
struct JsonRow<'a> {
    columns: &'a [Column],
    row: &'a [Value],
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
struct JsonValue<'a>(&'a Value);

impl serde::Serialize for JsonValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Boolean(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i32(*i),
            Value::BigInt(i) => s.serialize_i64(*i),
            Value::Double(d) if d.is_finite() => s.serialize_f64(*d),
            Value::Double(_) => s.serialize_unit(),
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
fn decode_object(columns: &[Column], bytes: &[u8]) -> Result<Option<Row>, String> {
    decode_object_at(columns, bytes, (0, 0, 0), &[])
}

/// [`decode_object`] into a row with `prefix` leading NULLs and `suffix`
/// trailing ones, with room for `spare` more values.
fn decode_object_at(
    columns: &[Column],
    bytes: &[u8],
    layout: (usize, usize, usize),
    unread: &[bool],
) -> Result<Option<Row>, String> {
    match scan_flat_object(columns, bytes, layout, unread) {
        Some(row) => Ok(Some(row)),
        None => decode_object_serde(columns, bytes, layout, unread),
    }
}

/// [`decode_object_at`] through serde: every JSON input.
fn decode_object_serde(
    columns: &[Column],
    bytes: &[u8],
    (prefix, suffix, spare): (usize, usize, usize),
    unread: &[bool],
) -> Result<Option<Row>, String> {
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
            while let Some(idx) = map.next_key_seed(FieldIndex(self.0))? {
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
        Found(_, Some(e)) => Err(e),
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
fn scan_flat_object(
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
                Some(c) if c.name.as_bytes() == key => Some(n),
                _ => match columns.iter().position(|c| c.name.as_bytes() == key) {
                    Some(c) => Some(c),
                    None => {
                        std::str::from_utf8(key).ok()?;
                        columns
                            .iter()
                            .position(|c| c.name.as_bytes().eq_ignore_ascii_case(key))
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
fn json_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The bytes of a string at `i` without escapes or control characters,
/// and the index after its closing quote. Not checked as UTF-8: serde
/// skips strings without checking them either.
#[inline]
fn json_plain_str(b: &[u8], i: usize) -> Option<(&[u8], usize)> {
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
fn json_number_end(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
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
fn json_digits_i64(digits: &[u8]) -> Option<i64> {
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
fn json_skip_scalar(b: &[u8], i: usize) -> Option<usize> {
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
fn json_scalar_as(ty: &SqlType, b: &[u8], i: usize) -> Option<(Value, usize)> {
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
struct FieldIndex<'c>(&'c [Column]);

impl<'de> serde::de::DeserializeSeed<'de> for FieldIndex<'_> {
    type Value = Option<usize>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for FieldIndex<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self
            .0
            .iter()
            .position(|c| c.name == key)
            .or_else(|| self.0.iter().position(|c| c.name.eq_ignore_ascii_case(key))))
    }
}

/// A JSON value read straight into a row slot as its column's type.
/// Scalars that already have the column's JSON shape (a string for STRING,
/// an integer for BIGINT…) skip the intermediate JSON tree and are written
/// in place; anything else is read as JSON and converted by [`from_json`],
/// so both paths accept the same input. The inner `Err` is a value that
/// does not fit the type (the slot is left as it was).
struct TypedValue<'t>(&'t SqlType, &'t mut Value);

impl TypedValue<'_> {
    fn put(self, v: Result<Value, String>) -> Result<(), String> {
        self.1.set(v?);
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for TypedValue<'_> {
    type Value = Result<(), String>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for TypedValue<'_> {
    type Value = Result<(), String>;
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

fn json_i64(j: &Json) -> Option<i64> {
    match j {
        Json::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(spec: &[(&str, SqlType)]) -> Vec<Column> {
        spec.iter()
            .map(|(n, t)| Column::new(n, t.clone()))
            .collect()
    }

    #[test]
    fn json_rows_round_trip_and_match_names_case_insensitively() {
        let s = RowSerde::new(
            Format::Json,
            cols(&[("USER_ID", SqlType::String), ("N", SqlType::Int)]),
            true,
        );
        let row = s.decode(br#"{"user_id":"u1","n":3}"#).unwrap();
        assert_eq!(row, vec![Value::String("u1".into()), Value::Int(3)]);
        let bytes = s.encode(&row).unwrap().unwrap();
        assert_eq!(bytes, br#"{"USER_ID":"u1","N":3}"#.to_vec());
        assert!(s.decode(b"{not json").is_err());
    }

    #[test]
    fn rows_decode_with_room_for_joined_columns() {
        let s = RowSerde::new(
            Format::Json,
            cols(&[("S", SqlType::String), ("N", SqlType::BigInt)]),
            true,
        );
        let d = RowSerde::new(
            Format::Delimited,
            cols(&[("S", SqlType::String), ("N", SqlType::BigInt)]),
            true,
        );
        for (serde, bytes) in [(&s, &br#"{"S":"x","N":5}"#[..]), (&d, b"x,5")] {
            let row = serde.decode_with_prefix(bytes, 1, 3, 6, &[]);
            let row = row.unwrap_or_default();
            assert_eq!(row.len(), 1 + 2 + 3, "{bytes:?}");
            assert!(row.capacity() >= row.len() + 6, "{bytes:?}");
        }
    }

    #[test]
    fn unread_string_columns_are_skipped_but_other_columns_still_checked() {
        let s = RowSerde::new(
            Format::Json,
            cols(&[("S", SqlType::String), ("N", SqlType::BigInt)]),
            true,
        );
        let all = s
            .decode_with_prefix(br#"{"S":"x","N":5}"#, 1, 2, 0, &[])
            .unwrap();
        assert_eq!(
            all,
            vec![
                Value::Null,
                Value::String("x".into()),
                Value::BigInt(5),
                Value::Null,
                Value::Null
            ]
        );
        let pruned = s
            .decode_with_prefix(br#"{"S":{"any":[1]},"N":5}"#, 1, 2, 0, &[true, true])
            .unwrap();
        assert_eq!(pruned[1], Value::Null, "the unread STRING is not built");
        assert_eq!(pruned[2], Value::BigInt(5));
        // A value that does not fit a (read or unread) non-STRING column
        // still fails the record, as without pruning.
        assert!(s
            .decode_with_prefix(br#"{"S":"x","N":"zz"}"#, 1, 2, 0, &[true, true])
            .is_err());
    }

    #[test]
    fn kafka_format_uses_kafka_serializations() {
        let s = RowSerde::new(Format::Kafka, cols(&[("K", SqlType::BigInt)]), false);
        let b = s.encode(&[Value::BigInt(7)]).unwrap().unwrap();
        assert_eq!(b, 7i64.to_be_bytes());
        assert_eq!(s.decode(&b).unwrap(), vec![Value::BigInt(7)]);
        assert!(s.decode(b"abc").is_err());
        assert!(Format::Kafka
            .check(&cols(&[("A", SqlType::Int), ("B", SqlType::Int)]), "key")
            .is_err());
    }

    /// A row the format cannot carry is an error, not a null: a null value
    /// on a table's topic would be a tombstone deleting the key's row.
    #[test]
    fn a_row_that_cannot_be_encoded_is_an_error_not_a_tombstone() {
        let s = RowSerde::new(Format::Kafka, cols(&[("V", SqlType::BigInt)]), false);
        let err = Serde::serialize(&s, &vec![Value::Boolean(true)]).unwrap_err();
        assert!(err.0.contains("KAFKA"), "{err}");
        // A null stays a null.
        assert_eq!(Serde::serialize(&s, &vec![Value::Null]), Ok(None));
    }

    #[test]
    fn delimited_quotes_fields_with_delimiters() {
        let s = RowSerde::new(
            Format::Delimited,
            cols(&[("A", SqlType::String), ("B", SqlType::Int)]),
            true,
        );
        let b = s
            .encode(&[Value::String("x,y".into()), Value::Int(1)])
            .unwrap()
            .unwrap();
        assert_eq!(b, b"\"x,y\",1".to_vec());
        assert_eq!(
            s.decode(&b).unwrap(),
            vec![Value::String("x,y".into()), Value::Int(1)]
        );
        assert_eq!(s.decode(b",2").unwrap(), vec![Value::Null, Value::Int(2)]);
        assert!(s.decode(b"1").is_err());
    }

    #[test]
    fn internal_rows_round_trip() {
        let row = vec![
            Value::Decimal("1.50".parse().unwrap()),
            Value::Array(vec![Value::Null, Value::Double(0.5)]),
        ];
        let b = InternalSerde.serialize(&row).unwrap().unwrap();
        assert_eq!(InternalSerde.deserialize(Some(&b)).unwrap(), row);
    }

    #[test]
    fn scalar_rows_take_the_fixed_width_form() {
        let row = vec![
            Value::BigInt(-3),
            Value::Null,
            Value::Double(0.25),
            Value::Boolean(true),
            Value::Int(7),
            Value::Date(19_000),
            Value::Time(1_000),
            Value::Timestamp(1_700_000_000_000),
        ];
        let b = InternalSerde.serialize(&row).unwrap().unwrap();
        assert_eq!(&b[..2], &[SCALAR_FORM, 8]);
        assert_eq!(b.len(), 2 + 2 + 1 + 9 + 1 + 5 + 5 + 9 + 9);
        assert_eq!(InternalSerde.deserialize(Some(&b)).unwrap(), row);
        // A row with a string stays postcard.
        let mixed = vec![Value::BigInt(1), Value::String("a".into())];
        let b = InternalSerde.serialize(&mixed).unwrap().unwrap();
        assert_eq!(b, postcard::to_stdvec(&mixed).unwrap());
        assert_eq!(InternalSerde.deserialize(Some(&b)).unwrap(), mixed);
    }

    #[test]
    fn is_scalar_agrees_with_scalar_parts() {
        for v in [
            Value::Null,
            Value::Boolean(true),
            Value::Int(1),
            Value::BigInt(1),
            Value::Double(1.0),
            Value::Decimal(rust_decimal::Decimal::ONE),
            Value::String("a".into()),
            Value::Bytes(vec![1]),
            Value::Date(1),
            Value::Time(1),
            Value::Timestamp(1),
            Value::Array(vec![]),
            Value::Map(vec![]),
            Value::Struct(vec![]),
        ] {
            assert_eq!(is_scalar(&v), scalar_parts(&v).is_some(), "{v:?}");
        }
    }

    #[test]
    fn bigints_take_as_few_bytes_as_they_need_and_round_trip() {
        let size = |i: i64| {
            InternalSerde
                .serialize(&vec![Value::BigInt(i)])
                .unwrap()
                .unwrap()
                .len()
        };
        // Form, count, tag, then 1 byte up to ±63, 2 up to ±8191, … 10.
        assert_eq!(size(0), 4);
        assert_eq!(size(-64), 4);
        assert_eq!(size(64), 5);
        assert_eq!(size(i64::MAX), 13);
        assert_eq!(size(i64::MIN), 13);
        for i in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            8191,
            -8192,
            1 << 40,
            i64::MAX,
            i64::MIN,
        ] {
            let row = vec![Value::BigInt(i)];
            let b = InternalSerde.serialize(&row).unwrap().unwrap();
            assert_eq!(InternalSerde.deserialize(Some(&b)).unwrap(), row, "{i}");
        }
        // The fixed-width BIGINT earlier builds wrote still reads.
        let mut old = vec![SCALAR_FORM, 1, T_BIGINT];
        old.extend_from_slice(&(-5i64).to_le_bytes());
        assert_eq!(
            InternalSerde.deserialize(Some(&old)).unwrap(),
            vec![Value::BigInt(-5)]
        );
    }

    #[test]
    fn postcard_rows_written_before_the_scalar_form_still_read() {
        for row in [
            vec![],
            vec![Value::BigInt(41)],
            vec![Value::Null, Value::Double(1.5), Value::Int(-2)],
        ] {
            let old = postcard::to_stdvec(&row).unwrap();
            assert_eq!(InternalSerde.deserialize(Some(&old)).unwrap(), row);
        }
    }

    #[test]
    fn broken_scalar_rows_are_errors() {
        for b in [
            &[SCALAR_FORM, 1][..],
            &[SCALAR_FORM, 1, T_BIGINT, 1, 2],
            // A varint that never ends, and one longer than 64 bits.
            &[SCALAR_FORM, 1, T_VARBIGINT, 0x80, 0x80],
            &[
                SCALAR_FORM,
                1,
                T_VARBIGINT,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0x02,
            ],
            &[SCALAR_FORM, 1, 99],
            &[SCALAR_FORM, 1, T_NULL, T_NULL],
        ] {
            assert!(InternalSerde.deserialize(Some(b)).is_err(), "{b:?}");
        }
    }

    #[test]
    fn the_flat_scanner_reads_plain_objects_and_leaves_the_rest_to_serde() {
        let columns = cols(&[
            ("S", SqlType::String),
            ("N", SqlType::BigInt),
            ("I", SqlType::Int),
            ("B", SqlType::Boolean),
        ]);
        let read = |text: &str| scan_flat_object(&columns, text.as_bytes(), (1, 1, 0), &[]);
        let row =
            |s: Value, n: Value, i: Value, b: Value| vec![Value::Null, s, n, i, b, Value::Null];
        for (text, expected) in [
            (
                r#"{"S":"x","N":-12,"I":7,"B":true}"#,
                row(
                    Value::String("x".into()),
                    Value::BigInt(-12),
                    Value::Int(7),
                    Value::Boolean(true),
                ),
            ),
            (
                " { \"b\" : false , \"X\": 2.5e3, \"n\": null } ",
                row(Value::Null, Value::Null, Value::Null, Value::Boolean(false)),
            ),
            (
                "{\"N\":-9223372036854775808,\"S\":\"\u{e9}t\u{e9}\",\"I\":-0}",
                row(
                    Value::String("\u{e9}t\u{e9}".into()),
                    Value::BigInt(i64::MIN),
                    Value::Int(0),
                    Value::Null,
                ),
            ),
            (
                "{}",
                row(Value::Null, Value::Null, Value::Null, Value::Null),
            ),
        ] {
            assert_eq!(read(text), Some(expected.clone()), "{text}");
            assert_eq!(
                decode_object_serde(&columns, text.as_bytes(), (1, 1, 0), &[]),
                Ok(Some(expected)),
                "{text}"
            );
        }
        // Left to serde: escapes, floats and big numbers for integer
        // columns, leading zeros, another type's shape, nesting, broken
        // syntax, control characters.
        for text in [
            r#"{"S":"a\"b"}"#,
            r#"{"S":"\u00e9"}"#,
            r#"{"N":1.5}"#,
            r#"{"N":01}"#,
            r#"{"N":9223372036854775808}"#,
            r#"{"I":2147483648}"#,
            r#"{"S":12}"#,
            r#"{"N":"12"}"#,
            r#"{"X":[1]}"#,
            r#"{"S":"x",}"#,
            r#"{"S":"x"} x"#,
            r#"{"S" "x"}"#,
            "{\"S\":\"a\tb\"}",
            "[1]",
        ] {
            assert_eq!(read(text), None, "{text}");
        }
    }

    /// JSON objects mixing what the flat scanner reads with what it leaves
    /// to serde (escapes, non-ASCII, nesting, floats, big or malformed
    /// numbers, unknown and differently cased keys, broken syntax).
    fn json_object() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let key = prop_oneof![
            Just("S"),
            Just("N"),
            Just("I"),
            Just("B"),
            Just("D"),
            Just("U"),
            Just("s"),
            Just("n"),
            Just("X"),
            Just(r"S\u0041"),
            Just("\u{e9}"),
        ];
        let value = prop_oneof![
            "[a-z]{0,6}".prop_map(|t| format!("\"{t}\"")),
            Just(r#""a\"b""#.to_string()),
            Just("\"\u{e9}t\u{e9}\"".to_string()),
            Just(r#""\u00e9""#.to_string()),
            proptest::num::i64::ANY.prop_map(|n| n.to_string()),
            proptest::num::i32::ANY.prop_map(|n| n.to_string()),
            Just("9223372036854775808".to_string()),
            Just("-9223372036854775809".to_string()),
            Just("01".to_string()),
            Just("-0".to_string()),
            Just("1.5".to_string()),
            Just("2e3".to_string()),
            Just("-".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            Just("null".to_string()),
            Just("tru".to_string()),
            Just("[1,2]".to_string()),
            Just(r#"{"a":1}"#.to_string()),
            Just(r#""12""#.to_string()),
        ];
        let ws = prop_oneof![Just(""), Just(" "), Just("\n\t")];
        let tail = prop_oneof![
            Just(""),
            Just(""),
            Just(""),
            Just(","),
            Just("x"),
            Just("}")
        ];
        (
            proptest::collection::vec((key, value, ws.clone()), 0..6),
            ws,
            tail,
        )
            .prop_map(|(fields, w, tail)| {
                let body: Vec<String> = fields
                    .into_iter()
                    .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}{w}"))
                    .collect();
                format!("{w}{{{}}}{tail}{w}", body.join(","))
            })
    }

    fn flat_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Value::Null),
            proptest::bool::ANY.prop_map(Value::Boolean),
            proptest::num::i32::ANY.prop_map(Value::Int),
            proptest::num::i64::ANY.prop_map(Value::BigInt),
            proptest::num::i32::ANY.prop_map(Value::Date),
            proptest::num::i64::ANY.prop_map(Value::Time),
            proptest::num::i64::ANY.prop_map(Value::Timestamp),
            ".{0,8}".prop_map(Value::String),
            "[\\x00-\\x20\"\\\\/\u{7f}\u{e9}\u{2028}a]{0,8}".prop_map(Value::String),
            proptest::num::f64::ANY.prop_map(Value::Double),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        #[test]
        fn the_flat_encoder_writes_what_serde_writes(
            row in proptest::collection::vec(flat_value(), 0..5),
            name in "[A-Z_\"\\\n\u{e9}]{1,6}",
        ) {
            let columns: Vec<Column> = (0..row.len())
                .map(|i| Column {
                    name: format!("{name}{i}"),
                    ty: SqlType::String,
                })
                .collect();
            let by_serde = serde_json::to_vec(&JsonRow { columns: &columns, row: &row });
            let serde = RowSerde::new(Format::Json, columns.clone(), true);
            match encode_flat_object(&serde.json_keys, &row) {
                Some(bytes) => proptest::prop_assert_eq!(Ok(bytes), by_serde.map_err(|e| e.to_string())),
                None => proptest::prop_assert!(row.iter().any(|v| matches!(v, Value::Double(_)))),
            }
        }

        #[test]
        fn the_flat_scanner_agrees_with_serde_whenever_it_answers(
            text in json_object(),
            unread in proptest::collection::vec(proptest::bool::ANY, 6),
        ) {
            let columns = cols(&[
                ("S", SqlType::String),
                ("N", SqlType::BigInt),
                ("I", SqlType::Int),
                ("B", SqlType::Boolean),
                ("D", SqlType::Double),
                ("U", SqlType::String),
            ]);
            let layout = (1, 2, 0);
            if let Some(row) = scan_flat_object(&columns, text.as_bytes(), layout, &unread) {
                let by_serde = decode_object_serde(&columns, text.as_bytes(), layout, &unread);
                proptest::prop_assert_eq!(by_serde, Ok(Some(row)), "{}", text);
            }
        }

        #[test]
        fn internal_rows_round_trip_in_either_form(
            ints in proptest::collection::vec(proptest::option::of(proptest::num::i64::ANY), 0..40),
            text in proptest::option::of("[a-z]{0,5}"),
        ) {
            let mut row: Row = ints
                .into_iter()
                .map(|i| i.map_or(Value::Null, Value::BigInt))
                .collect();
            if let Some(t) = text {
                row.push(Value::String(t));
            }
            let b = InternalSerde.serialize(&row).unwrap().unwrap();
            proptest::prop_assert_eq!(InternalSerde.deserialize(Some(&b)).unwrap(), row);
        }

        #[test]
        fn internal_decoding_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = InternalSerde.deserialize(Some(&bytes));
        }
    }
}
