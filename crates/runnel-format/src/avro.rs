//! AVRO rows as ksqlDB reads and writes them: records ↔ STRUCT (a row
//! of several columns, or of one wrapped column, is the top-level
//! record), nullable unions `["null", T]`, `decimal` bytes ↔ DECIMAL,
//! `date` ↔ DATE, `time-millis`/`time-micros` ↔ TIME,
//! `timestamp-millis`/`timestamp-micros` ↔ TIMESTAMP, maps (string keys)
//! ↔ MAP, arrays ↔ ARRAY, bytes and fixed ↔ BYTES, enums → STRING.
//!
//! Decoding reads with the writer's schema and converts each field to its
//! column's type (through the JSON reading rules, so the same coercions
//! apply: an `int` read as BIGINT, anything read as STRING); encoding
//! walks the writer's schema, taking each record field from the column
//! (or struct field) of that name, in any case.

use std::collections::HashMap;

use apache_avro::schema::{Name, RecordSchema, Schema, UnionSchema};
use apache_avro::types::Value as Avro;
use serde_json::{json, Value as Json};

use crate::format::FormatError;
use crate::schema::Column;
use crate::types::{base64_encode, SqlType, Value};

/// ksqlDB's record name for the schemas it writes.
pub const DEFAULT_RECORD_NAME: &str = "io.confluent.ksql.avro_schemas.KsqlDataSourceSchema";

fn nullable(t: Json) -> Json {
    json!(["null", t])
}

/// The Avro type of a SQL type (not nullable); nested structs are records
/// named after their path (`<record>_<FIELD>`), as ksqlDB names them.
fn avro_type(ty: &SqlType, name: &str) -> Json {
    match ty {
        SqlType::Boolean => json!("boolean"),
        SqlType::Int => json!("int"),
        SqlType::BigInt => json!("long"),
        SqlType::Double => json!("double"),
        SqlType::String => json!("string"),
        SqlType::Bytes => json!("bytes"),
        SqlType::Decimal { precision, scale } => json!({
            "type": "bytes", "logicalType": "decimal",
            "precision": precision, "scale": scale,
        }),
        SqlType::Date => json!({"type": "int", "logicalType": "date"}),
        SqlType::Time => json!({"type": "int", "logicalType": "time-millis"}),
        SqlType::Timestamp => json!({"type": "long", "logicalType": "timestamp-millis"}),
        SqlType::Array(t) => json!({"type": "array", "items": nullable(avro_type(t, name))}),
        SqlType::Map(_, v) => json!({"type": "map", "values": nullable(avro_type(v, name))}),
        SqlType::Struct(fields) => record(
            name,
            fields
                .iter()
                .map(|(n, t)| (n.as_str(), t, format!("{name}_{n}"))),
        ),
    }
}

fn record<'a>(name: &str, fields: impl Iterator<Item = (&'a str, &'a SqlType, String)>) -> Json {
    let fields: Vec<Json> = fields
        .map(|(n, t, inner)| json!({"name": n, "type": nullable(avro_type(t, &inner)), "default": null}))
        .collect();
    json!({"type": "record", "name": name, "fields": fields})
}

/// The schema ksqlDB registers for rows of `columns`: a record named
/// `full_name` of nullable fields, or the single column's nullable type
/// when it is not wrapped.
pub fn schema_for(columns: &[Column], wrap: bool, full_name: &str) -> Json {
    if !wrap {
        if let Some(c) = columns.first() {
            return nullable(avro_type(&c.ty, full_name));
        }
    }
    record(
        full_name,
        columns
            .iter()
            .map(|c| (c.name.as_str(), &c.ty, format!("{full_name}_{}", c.name))),
    )
}

/// Named types of a schema by full name, to follow `Schema::Ref`s.
pub(crate) type Names<'a> = HashMap<Name, &'a Schema>;

#[cfg(test)]
pub(crate) fn names(schema: &Schema) -> Names<'_> {
    names_in([schema])
}

/// Named types of several schemas (a schema and those its references
/// define).
pub(crate) fn names_in<'a>(schemas: impl IntoIterator<Item = &'a Schema>) -> Names<'a> {
    fn walk<'a>(s: &'a Schema, out: &mut Names<'a>) {
        match s {
            Schema::Record(r) if out.insert(r.name.clone(), s).is_none() => {
                for f in &r.fields {
                    walk(&f.schema, out);
                }
            }
            Schema::Enum(e) => {
                out.insert(e.name.clone(), s);
            }
            Schema::Fixed(f) => {
                out.insert(f.name.clone(), s);
            }
            Schema::Array(a) => walk(&a.items, out),
            Schema::Map(m) => walk(&m.types, out),
            Schema::Union(u) => u.variants().iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = HashMap::new();
    for schema in schemas {
        walk(schema, &mut out);
    }
    out
}

pub(crate) fn deref<'a>(s: &'a Schema, names: &Names<'a>) -> &'a Schema {
    match s {
        Schema::Ref { name } => names.get(name).copied().unwrap_or(s),
        _ => s,
    }
}

/// The SQL type ksqlDB gives an Avro schema (nullable unions unwrapped).
pub fn sql_type(schema: &Schema, names: &Names<'_>) -> Result<SqlType, FormatError> {
    let unsupported = |what: &str| FormatError::Unsupported(format!("Avro {what} has no SQL type"));
    Ok(match deref(schema, names) {
        Schema::Boolean => SqlType::Boolean,
        Schema::Int => SqlType::Int,
        Schema::Long => SqlType::BigInt,
        Schema::Float | Schema::Double => SqlType::Double,
        Schema::String | Schema::Enum(_) | Schema::Uuid => SqlType::String,
        Schema::Bytes | Schema::Fixed(_) => SqlType::Bytes,
        Schema::Decimal(d) => SqlType::Decimal {
            precision: u8::try_from(d.precision).map_err(|_| unsupported("decimal precision"))?,
            scale: u8::try_from(d.scale).map_err(|_| unsupported("decimal scale"))?,
        },
        Schema::BigDecimal => SqlType::Decimal {
            precision: 38,
            scale: 18,
        },
        Schema::Date => SqlType::Date,
        Schema::TimeMillis | Schema::TimeMicros => SqlType::Time,
        Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => SqlType::Timestamp,
        Schema::Array(a) => SqlType::Array(Box::new(sql_type(&a.items, names)?)),
        Schema::Map(m) => SqlType::Map(
            Box::new(SqlType::String),
            Box::new(sql_type(&m.types, names)?),
        ),
        Schema::Record(r) => SqlType::Struct(
            r.fields
                .iter()
                .map(|f| Ok((f.name.clone(), sql_type(&f.schema, names)?)))
                .collect::<Result<_, FormatError>>()?,
        ),
        Schema::Union(u) => match non_null(u) {
            Some((_, s)) => sql_type(s, names)?,
            None => return Err(unsupported("a union of several types")),
        },
        Schema::Null => return Err(unsupported("null")),
        Schema::Duration => return Err(unsupported("duration")),
        Schema::Ref { name } => return Err(unsupported(&format!("reference {name}"))),
    })
}

/// The one non-null branch of a union (`["null", T]` or `[T]`).
fn non_null(u: &UnionSchema) -> Option<(usize, &Schema)> {
    let mut found = None;
    for (i, v) in u.variants().iter().enumerate() {
        if *v != Schema::Null {
            if found.is_some() {
                return None;
            }
            found = Some((i, v));
        }
    }
    found
}

/// The columns of a source inferred from a value's (or key's) schema: a
/// record's fields (names in upper case, as ksqlDB infers them) and
/// `true`, or a single column named `single` of the schema's type and
/// `false` (not wrapped).
pub fn infer_columns(schema: &Schema, single: &str) -> Result<(Vec<Column>, bool), FormatError> {
    infer_columns_with(schema, &[], single)
        .map(|(cols, wrapped)| (crate::schema::upper_cased(cols), wrapped))
}

/// The columns of a schema using named types its references define, named
/// as the schema names them (see [`infer_columns`] for ksqlDB's casing).
pub fn infer_columns_with(
    schema: &Schema,
    refs: &[Schema],
    single: &str,
) -> Result<(Vec<Column>, bool), FormatError> {
    let names = names_in(std::iter::once(schema).chain(refs));
    // A nullable record (`["null", record]`, what Confluent's AvroConverter
    // registers for an optional struct such as Debezium's unwrapped row)
    // gives its fields as columns, as in ksqlDB; a null record is a
    // tombstone.
    let top = match deref(schema, &names) {
        Schema::Union(u) => match non_null(u).map(|(_, s)| deref(s, &names)) {
            Some(r @ Schema::Record(_)) => r,
            _ => deref(schema, &names),
        },
        other => other,
    };
    match top {
        Schema::Record(RecordSchema { fields, .. }) => Ok((
            fields
                .iter()
                .map(|f| Ok(Column::new(&f.name, sql_type(&f.schema, &names)?)))
                .collect::<Result<_, FormatError>>()?,
            true,
        )),
        other => Ok((vec![Column::new(single, sql_type(other, &names)?)], false)),
    }
}

pub(crate) fn decimal_text(bytes: &[u8], scale: usize) -> Result<String, FormatError> {
    if bytes.len() > 16 {
        return Err(FormatError::Decode(
            "an Avro decimal wider than 128 bits".to_string(),
        ));
    }
    let mut n: i128 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    for b in bytes {
        n = (n << 8) | i128::from(*b);
    }
    let scale = u32::try_from(scale).map_err(|_| FormatError::Decode("scale".into()))?;
    rust_decimal::Decimal::try_from_i128_with_scale(n, scale)
        .map(|d| d.to_string())
        .map_err(|e| FormatError::Decode(format!("an Avro decimal out of range: {e}")))
}

/// An Avro value (read with `schema`) as JSON, the form the column types
/// are read from (`from_json`): decimals as strings, bytes as base64,
/// dates as days, times and timestamps as milliseconds.
pub(crate) fn to_json(v: &Avro, schema: &Schema, names: &Names<'_>) -> Result<Json, FormatError> {
    let schema = deref(schema, names);
    Ok(match v {
        Avro::Null => Json::Null,
        Avro::Boolean(b) => json!(b),
        Avro::Int(i) | Avro::Date(i) | Avro::TimeMillis(i) => json!(i),
        Avro::Long(l) | Avro::TimestampMillis(l) | Avro::LocalTimestampMillis(l) => json!(l),
        Avro::TimeMicros(l) | Avro::TimestampMicros(l) | Avro::LocalTimestampMicros(l) => {
            json!(l.div_euclid(1000))
        }
        Avro::TimestampNanos(l) | Avro::LocalTimestampNanos(l) => json!(l.div_euclid(1_000_000)),
        // NaN and the infinities as text, which the column reads back
        // (JSON has no number for them).
        Avro::Float(f) if !f.is_finite() => Json::String(f64::from(*f).to_string()),
        Avro::Double(d) if !d.is_finite() => Json::String(d.to_string()),
        Avro::Float(f) => json!(f64::from(*f)),
        Avro::Double(d) => json!(d),
        Avro::Bytes(b) | Avro::Fixed(_, b) => Json::String(base64_encode(b)),
        Avro::String(s) | Avro::Enum(_, s) => Json::String(s.clone()),
        Avro::Uuid(u) => Json::String(u.to_string()),
        Avro::Decimal(d) => {
            let scale = match schema {
                Schema::Decimal(ds) => ds.scale,
                Schema::Union(u) => u
                    .variants()
                    .iter()
                    .find_map(|s| match deref(s, names) {
                        Schema::Decimal(ds) => Some(ds.scale),
                        _ => None,
                    })
                    .unwrap_or(0),
                _ => 0,
            };
            let bytes: Vec<u8> = d
                .try_into()
                .map_err(|e: apache_avro::Error| FormatError::Decode(e.to_string()))?;
            Json::String(decimal_text(&bytes, scale)?)
        }
        Avro::BigDecimal(d) => Json::String(d.to_string()),
        Avro::Duration(_) => {
            return Err(FormatError::Decode(
                "Avro durations have no SQL type".to_string(),
            ))
        }
        Avro::Union(i, inner) => {
            let branch = match schema {
                Schema::Union(u) => u.variants().get(*i as usize).unwrap_or(schema),
                _ => schema,
            };
            to_json(inner, branch, names)?
        }
        Avro::Array(items) => {
            let item = match schema {
                Schema::Array(a) => &*a.items,
                _ => schema,
            };
            Json::Array(
                items
                    .iter()
                    .map(|x| to_json(x, item, names))
                    .collect::<Result<_, _>>()?,
            )
        }
        Avro::Map(m) => {
            let vs = match schema {
                Schema::Map(s) => &*s.types,
                _ => schema,
            };
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut obj = serde_json::Map::new();
            for k in keys {
                if let Some(x) = m.get(k) {
                    obj.insert(k.clone(), to_json(x, vs, names)?);
                }
            }
            Json::Object(obj)
        }
        Avro::Record(fields) => {
            let rs = match schema {
                Schema::Record(r) => Some(r),
                _ => None,
            };
            let mut obj = serde_json::Map::new();
            for (i, (k, x)) in fields.iter().enumerate() {
                let fs = rs
                    .and_then(|r| r.fields.get(i))
                    .map_or(schema, |f| &f.schema);
                obj.insert(k.clone(), to_json(x, fs, names)?);
            }
            Json::Object(obj)
        }
    })
}

fn encode_err(what: impl std::fmt::Display) -> FormatError {
    FormatError::Encode(format!("cannot write Avro: {what}"))
}

pub(crate) fn big_endian(d: &rust_decimal::Decimal, scale: u32) -> Vec<u8> {
    let mut d = *d;
    d.rescale(scale);
    let n = d.mantissa();
    let bytes = n.to_be_bytes();
    // The shortest two's complement form.
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

/// Finds a field by name, exactly first, then in any case.
fn field<'v>(fields: &'v [(String, Value)], name: &str) -> Option<&'v Value> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .or_else(|| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)))
        .map(|(_, v)| v)
}

/// A SQL value as an Avro value of `schema`.
pub(crate) fn to_avro(v: &Value, schema: &Schema, names: &Names<'_>) -> Result<Avro, FormatError> {
    let schema = deref(schema, names);
    if let Schema::Union(u) = schema {
        if v.is_null() {
            return match u.variants().iter().position(|s| *s == Schema::Null) {
                Some(i) => Ok(Avro::Union(i as u32, Box::new(Avro::Null))),
                None => Err(encode_err("a NULL for a field that is not nullable")),
            };
        }
        let (i, branch) = non_null(u)
            .ok_or_else(|| encode_err("unions of several non-null types are not supported"))?;
        return Ok(Avro::Union(i as u32, Box::new(to_avro(v, branch, names)?)));
    }
    if v.is_null() {
        return match schema {
            Schema::Null => Ok(Avro::Null),
            _ => Err(encode_err("a NULL for a field that is not nullable")),
        };
    }
    let mismatch = || encode_err(format!("{v} does not fit the schema's {schema:?}"));
    Ok(match (schema, v) {
        (Schema::Boolean, Value::Boolean(b)) => Avro::Boolean(*b),
        (Schema::Int, v) => Avro::Int(
            v.as_i64()
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(mismatch)?,
        ),
        (Schema::Long, v) => Avro::Long(v.as_i64().ok_or_else(mismatch)?),
        (Schema::Double, v) => Avro::Double(v.as_f64().ok_or_else(mismatch)?),
        (Schema::Float, v) => Avro::Float(v.as_f64().ok_or_else(mismatch)? as f32),
        (Schema::String, Value::String(s)) => Avro::String(s.clone()),
        (Schema::String, other) => Avro::String(other.to_string()),
        (Schema::Enum(e), Value::String(s)) => {
            let i = e.symbols.iter().position(|x| x == s).ok_or_else(mismatch)?;
            Avro::Enum(i as u32, s.clone())
        }
        (Schema::Bytes, Value::Bytes(b)) => Avro::Bytes(b.clone()),
        (Schema::Fixed(f), Value::Bytes(b)) if b.len() == f.size => Avro::Fixed(f.size, b.clone()),
        (Schema::Decimal(d), v) => {
            let dec = v.as_decimal().ok_or_else(mismatch)?;
            let scale = u32::try_from(d.scale).map_err(|_| mismatch())?;
            let bytes = big_endian(&dec, scale);
            match &*d.inner {
                Schema::Fixed(f) => {
                    if bytes.len() > f.size {
                        return Err(mismatch());
                    }
                    let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
                        0xff
                    } else {
                        0
                    };
                    let mut out = vec![fill; f.size - bytes.len()];
                    out.extend_from_slice(&bytes);
                    Avro::Decimal(apache_avro::Decimal::from(out))
                }
                _ => Avro::Decimal(apache_avro::Decimal::from(bytes)),
            }
        }
        (Schema::Date, Value::Date(d)) => Avro::Date(*d),
        (Schema::TimeMillis, Value::Time(t)) => {
            Avro::TimeMillis(i32::try_from(*t).map_err(|_| mismatch())?)
        }
        (Schema::TimeMicros, Value::Time(t)) => Avro::TimeMicros(t.saturating_mul(1000)),
        (Schema::TimestampMillis, Value::Timestamp(t)) => Avro::TimestampMillis(*t),
        (Schema::TimestampMicros, Value::Timestamp(t)) => {
            Avro::TimestampMicros(t.saturating_mul(1000))
        }
        (Schema::LocalTimestampMillis, Value::Timestamp(t)) => Avro::LocalTimestampMillis(*t),
        (Schema::Array(a), Value::Array(items)) => Avro::Array(
            items
                .iter()
                .map(|x| to_avro(x, &a.items, names))
                .collect::<Result<_, _>>()?,
        ),
        (Schema::Map(m), Value::Map(entries)) => Avro::Map(
            entries
                .iter()
                .map(|(k, x)| {
                    let key = match k {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    Ok((key, to_avro(x, &m.types, names)?))
                })
                .collect::<Result<_, FormatError>>()?,
        ),
        (Schema::Record(r), Value::Struct(fields)) => record_value(r, fields, names)?,
        _ => return Err(mismatch()),
    })
}

/// A record of `r` from named values (columns or struct fields): a field
/// no value names takes its default, or NULL.
pub(crate) fn record_value(
    r: &RecordSchema,
    fields: &[(String, Value)],
    names: &Names<'_>,
) -> Result<Avro, FormatError> {
    let mut out = Vec::with_capacity(r.fields.len());
    for f in &r.fields {
        let v = match field(fields, &f.name) {
            Some(v) => to_avro(v, &f.schema, names)?,
            None => match &f.default {
                Some(d) => {
                    let default = Avro::from(d.clone());
                    default
                        .resolve(&f.schema)
                        .map_err(|e| encode_err(format!("default of {}: {e}", f.name)))?
                }
                None => to_avro(&Value::Null, &f.schema, names)?,
            },
        };
        out.push((f.name.clone(), v));
    }
    Ok(Avro::Record(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::from_json;

    fn parse(j: &Json) -> Schema {
        Schema::parse_str(&j.to_string()).unwrap()
    }

    /// Writes a value with the schema derived for its column, reads it
    /// back as the decoder does, and compares.
    fn round_trip(ty: SqlType, v: Value) {
        let cols = vec![Column::new("C", ty.clone())];
        let schema = parse(&schema_for(&cols, true, DEFAULT_RECORD_NAME));
        let names = names(&schema);
        let Schema::Record(r) = &schema else {
            panic!("not a record")
        };
        let avro = record_value(r, &[("C".to_string(), v.clone())], &names).unwrap();
        let bytes = apache_avro::to_avro_datum(&schema, avro).unwrap();
        let back = apache_avro::from_avro_datum(&schema, &mut &bytes[..], None).unwrap();
        let j = to_json(&back, &schema, &names).unwrap();
        assert_eq!(from_json(&ty, &j["C"]).unwrap(), v, "{ty}");
        // The type inferred from the schema is the column's, as written
        // (by id) or upper-cased all through (a subject's latest).
        let (inferred, wrapped) = infer_columns_with(&schema, &[], "ROWVAL").unwrap();
        assert!(wrapped);
        assert_eq!(inferred, cols);
        let (upper, _) = infer_columns(&schema, "ROWVAL").unwrap();
        assert_eq!(upper, crate::schema::upper_cased(cols.clone()));
    }

    #[test]
    fn every_type_round_trips_through_its_derived_schema() {
        round_trip(SqlType::Boolean, Value::Boolean(true));
        round_trip(SqlType::Int, Value::Int(-7));
        round_trip(SqlType::BigInt, Value::BigInt(400_000_000_000));
        round_trip(SqlType::Double, Value::Double(1.25));
        round_trip(SqlType::String, Value::String("héllo".into()));
        round_trip(SqlType::Bytes, Value::Bytes(vec![0, 1, 255]));
        for d in ["12.34", "-0.05", "0.00", "-123456789.99"] {
            round_trip(
                SqlType::Decimal {
                    precision: 12,
                    scale: 2,
                },
                Value::Decimal(d.parse().unwrap()),
            );
        }
        round_trip(SqlType::Date, Value::Date(19_000));
        round_trip(SqlType::Time, Value::Time(3_600_123));
        round_trip(SqlType::Timestamp, Value::Timestamp(1_700_000_000_123));
        round_trip(
            SqlType::Array(Box::new(SqlType::Int)),
            Value::Array(vec![Value::Int(1), Value::Null, Value::Int(3)]),
        );
        round_trip(
            SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::BigInt)),
            Value::Map(vec![
                (Value::String("a".into()), Value::BigInt(1)),
                (Value::String("b".into()), Value::Null),
            ]),
        );
        round_trip(
            SqlType::Struct(vec![
                ("F0".into(), SqlType::Int),
                (
                    "inner".into(),
                    SqlType::Struct(vec![("X".into(), SqlType::String)]),
                ),
            ]),
            Value::Struct(vec![
                ("F0".into(), Value::Int(1)),
                (
                    "inner".into(),
                    Value::Struct(vec![("X".into(), Value::String("x".into()))]),
                ),
            ]),
        );
        round_trip(SqlType::String, Value::Null);
    }

    #[test]
    fn the_derived_schema_is_ksqldbs() {
        let cols = vec![
            Column::new("ID", SqlType::BigInt),
            Column::new("S", SqlType::Struct(vec![("A".into(), SqlType::Int)])),
        ];
        let s = schema_for(&cols, true, DEFAULT_RECORD_NAME);
        assert_eq!(s["name"], DEFAULT_RECORD_NAME);
        assert_eq!(
            s["fields"][0],
            json!({"name": "ID", "type": ["null", "long"], "default": null})
        );
        assert_eq!(
            s["fields"][1]["type"][1]["name"],
            "io.confluent.ksql.avro_schemas.KsqlDataSourceSchema_S"
        );
        // One unwrapped column: its nullable type alone.
        assert_eq!(
            schema_for(&cols[..1], false, DEFAULT_RECORD_NAME),
            json!(["null", "long"])
        );
    }

    #[test]
    fn inference_follows_ksqldbs_mapping() {
        let schema = parse(&json!({
            "type": "record", "name": "blah", "fields": [
                {"name": "c1", "type": "boolean"},
                {"name": "c2", "type": ["null", "int"]},
                {"name": "c3", "type": "float"},
                {"name": "c4", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
                {"name": "c5", "type": {"type": "long", "logicalType": "timestamp-micros"}},
                {"name": "c6", "type": {"type": "map", "values": "string"}},
                {"name": "c7", "type": {"type": "fixed", "name": "F", "size": 2}},
            ]
        }));
        let (cols, wrapped) = infer_columns(&schema, "ROWVAL").unwrap();
        assert!(wrapped);
        let got: Vec<String> = cols
            .iter()
            .map(|c| format!("{} {}", c.name, c.ty))
            .collect();
        assert_eq!(
            got,
            [
                "C1 BOOLEAN",
                "C2 INTEGER",
                "C3 DOUBLE",
                "C4 STRING",
                "C5 TIMESTAMP",
                "C6 MAP<STRING, STRING>",
                "C7 BYTES"
            ]
        );
        let (cols, wrapped) = infer_columns(&parse(&json!("long")), "ROWKEY").unwrap();
        assert!(!wrapped);
        assert_eq!(cols, vec![Column::new("ROWKEY", SqlType::BigInt)]);
        assert!(infer_columns(&parse(&json!(["int", "string"])), "ROWVAL").is_err());
        let nullable = parse(&json!(["null", {"type": "record", "name": "R", "fields": [
            {"name": "a", "type": "int"}, {"name": "b", "type": ["null", "string"]}]}]));
        let (cols, wrapped) = infer_columns(&nullable, "ROWVAL").unwrap();
        assert!(wrapped);
        assert_eq!(
            cols,
            vec![
                Column::new("A", SqlType::Int),
                Column::new("B", SqlType::String)
            ]
        );
    }

    #[test]
    fn nulls_for_required_fields_are_errors_not_nulls() {
        let schema = parse(
            &json!({"type": "record", "name": "r", "fields": [{"name": "a", "type": "int"}]}),
        );
        let names = names(&schema);
        let Schema::Record(r) = &schema else { panic!() };
        assert!(record_value(r, &[("A".into(), Value::Null)], &names).is_err());
        // A field matched in any case.
        assert_eq!(
            record_value(r, &[("A".into(), Value::Int(3))], &names).unwrap(),
            Avro::Record(vec![("a".into(), Avro::Int(3))])
        );
    }
}
