//! PROTOBUF rows as ksqlDB reads and writes them: a row is a message
//! (always, keys too), its fields the columns; nested messages ↔ STRUCT,
//! `repeated` ↔ ARRAY, `map<K, V>` ↔ MAP, enums → STRING,
//! `google.protobuf.Timestamp` ↔ TIMESTAMP, `google.type.Date` ↔ DATE,
//! `google.type.TimeOfDay` ↔ TIME, `confluent.type.Decimal` ↔ DECIMAL,
//! and the wrappers (`google.protobuf.Int32Value`…) → their value, NULL
//! when absent. Proto3 scalars have no NULL: absent reads as the type's
//! default, and a NULL is written as the default — unless they track
//! presence (`optional`): then absent is NULL. Derived schemas make scalars
//! nullable either way with [`NullableRepresentation`].

use std::fmt::Write as _;

use prost_reflect::prost::Message as _;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage as _,
    Value as Pb,
};
use serde_json::{json, Value as Json};

use crate::format::FormatError;
use crate::schema::Column;
use crate::types::{base64_encode, SqlType, Value};

/// ksqlDB's name for the message it derives for rows.
pub const DEFAULT_MESSAGE_NAME: &str = "ConnectDefault1";

/// How a derived `.proto` makes scalar columns nullable
/// (`KEY_`/`VALUE_PROTOBUF_NULLABLE_REPRESENTATION`); without one, proto3
/// scalars carry no NULL (written as the default, read as the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NullableRepresentation {
    /// proto3 `optional` fields: an absent field is NULL.
    Optional,
    /// `google.protobuf` wrapper messages (`Int32Value`…): an absent
    /// wrapper is NULL.
    Wrapper,
}

impl NullableRepresentation {
    /// `OPTIONAL` or `WRAPPER`, in any case.
    pub fn parse(text: &str) -> Option<NullableRepresentation> {
        match text.trim().to_ascii_uppercase().as_str() {
            "OPTIONAL" => Some(NullableRepresentation::Optional),
            "WRAPPER" => Some(NullableRepresentation::Wrapper),
            _ => None,
        }
    }
}

const WRAPPERS: [&str; 9] = [
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
];

fn unsupported(what: impl std::fmt::Display) -> FormatError {
    FormatError::Unsupported(format!("Protobuf {what} has no SQL type"))
}

/// The SQL type of one value of `kind` (not its cardinality).
fn kind_type(kind: &Kind) -> Result<SqlType, FormatError> {
    Ok(match kind {
        Kind::Double | Kind::Float => SqlType::Double,
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => SqlType::Int,
        Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64
        | Kind::Uint32
        | Kind::Fixed32
        | Kind::Uint64
        | Kind::Fixed64 => SqlType::BigInt,
        Kind::Bool => SqlType::Boolean,
        Kind::String | Kind::Enum(_) => SqlType::String,
        Kind::Bytes => SqlType::Bytes,
        Kind::Message(m) => message_type(m)?,
    })
}

fn message_type(m: &MessageDescriptor) -> Result<SqlType, FormatError> {
    Ok(match m.full_name() {
        "google.protobuf.Timestamp" => SqlType::Timestamp,
        "google.type.Date" => SqlType::Date,
        "google.type.TimeOfDay" => SqlType::Time,
        "confluent.type.Decimal" => SqlType::Decimal {
            precision: 38,
            scale: 18,
        },
        w if WRAPPERS.contains(&w) => match m.get_field_by_name("value") {
            Some(f) => kind_type(&f.kind())?,
            None => return Err(unsupported(w)),
        },
        _ => SqlType::Struct(
            m.fields()
                .map(|f| Ok((f.name().to_string(), field_type(&f)?)))
                .collect::<Result<_, FormatError>>()?,
        ),
    })
}

/// The SQL type of a field, with its cardinality.
pub fn field_type(f: &FieldDescriptor) -> Result<SqlType, FormatError> {
    if f.is_map() {
        let entry = f.kind();
        let entry = entry
            .as_message()
            .ok_or_else(|| unsupported(f.full_name()))?;
        return Ok(SqlType::Map(
            Box::new(kind_type(&entry.map_entry_key_field().kind())?),
            Box::new(kind_type(&entry.map_entry_value_field().kind())?),
        ));
    }
    let t = kind_type(&f.kind())?;
    Ok(if f.is_list() {
        SqlType::Array(Box::new(t))
    } else {
        t
    })
}

/// The columns of a message: its fields, names in upper case (nested
/// ones too), as ksqlDB infers them.
pub fn infer_columns(m: &MessageDescriptor) -> Result<Vec<Column>, FormatError> {
    columns_as_written(m).map(crate::schema::upper_cased)
}

/// The columns of a message named as its fields are.
pub fn columns_as_written(m: &MessageDescriptor) -> Result<Vec<Column>, FormatError> {
    m.fields()
        .map(|f| Ok(Column::new(f.name(), field_type(&f)?)))
        .collect()
}

// ---- Decoding: a message as JSON, the form columns are read from.

fn days_from_civil(y: i32, m: u32, d: u32) -> Option<i64> {
    let date = chrono::NaiveDate::from_ymd_opt(y, m, d)?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((date - epoch).num_days())
}

fn int_field(m: &DynamicMessage, name: &str) -> i64 {
    match m.get_field_by_name(name).as_deref() {
        Some(Pb::I32(i)) => i64::from(*i),
        Some(Pb::I64(i)) => *i,
        Some(Pb::U32(i)) => i64::from(*i),
        Some(Pb::U64(i)) => *i as i64,
        _ => 0,
    }
}

fn message_json(m: &DynamicMessage) -> Result<Json, FormatError> {
    let d = m.descriptor();
    Ok(match d.full_name() {
        "google.protobuf.Timestamp" => {
            json!(int_field(m, "seconds") * 1000 + int_field(m, "nanos") / 1_000_000)
        }
        "google.type.Date" => {
            let (y, mo, day) = (
                int_field(m, "year"),
                int_field(m, "month"),
                int_field(m, "day"),
            );
            let days = i32::try_from(y)
                .ok()
                .and_then(|y| days_from_civil(y, mo as u32, day as u32))
                .ok_or_else(|| FormatError::Decode(format!("bad date {y}-{mo}-{day}")))?;
            json!(days)
        }
        "google.type.TimeOfDay" => json!(
            ((int_field(m, "hours") * 60 + int_field(m, "minutes")) * 60 + int_field(m, "seconds"))
                * 1000
                + int_field(m, "nanos") / 1_000_000
        ),
        "confluent.type.Decimal" => {
            let bytes = match m.get_field_by_name("value").as_deref() {
                Some(Pb::Bytes(b)) => b.to_vec(),
                _ => Vec::new(),
            };
            let scale = int_field(m, "scale");
            let scale = usize::try_from(scale)
                .map_err(|_| FormatError::Decode(format!("bad decimal scale {scale}")))?;
            Json::String(crate::avro::decimal_text(&bytes, scale)?)
        }
        w if WRAPPERS.contains(&w) => match d.get_field_by_name("value") {
            Some(f) => value_json(&m.get_field(&f), &f.kind())?,
            None => Json::Null,
        },
        _ => {
            let mut obj = serde_json::Map::new();
            for f in d.fields() {
                // An absent message, or an absent scalar that tracks
                // presence (proto3 `optional`, proto2), is NULL.
                let v = if !f.is_list() && !f.is_map() && f.supports_presence() && !m.has_field(&f)
                {
                    Json::Null
                } else if f.is_map() {
                    let vk = f
                        .kind()
                        .as_message()
                        .map(|e| e.map_entry_value_field().kind());
                    match (m.get_field(&f).as_ref(), vk) {
                        (Pb::Map(entries), Some(vk)) => {
                            let mut keys: Vec<&MapKey> = entries.keys().collect();
                            keys.sort();
                            let mut o = serde_json::Map::new();
                            for k in keys {
                                let key = match k {
                                    MapKey::String(s) => s.clone(),
                                    MapKey::Bool(b) => b.to_string(),
                                    MapKey::I32(i) => i.to_string(),
                                    MapKey::I64(i) => i.to_string(),
                                    MapKey::U32(i) => i.to_string(),
                                    MapKey::U64(i) => i.to_string(),
                                };
                                if let Some(v) = entries.get(k) {
                                    o.insert(key, value_json(v, &vk)?);
                                }
                            }
                            Json::Object(o)
                        }
                        _ => Json::Null,
                    }
                } else {
                    value_json(&m.get_field(&f), &f.kind())?
                };
                obj.insert(f.name().to_string(), v);
            }
            Json::Object(obj)
        }
    })
}

pub(crate) fn value_json(v: &Pb, kind: &Kind) -> Result<Json, FormatError> {
    Ok(match v {
        Pb::Bool(b) => json!(b),
        Pb::I32(i) => json!(i),
        Pb::I64(i) => json!(i),
        Pb::U32(i) => json!(i),
        Pb::U64(i) => json!(i),
        Pb::F32(f) => json!(f64::from(*f)),
        Pb::F64(f) => json!(f),
        Pb::String(s) => Json::String(s.clone()),
        Pb::Bytes(b) => Json::String(base64_encode(b)),
        Pb::EnumNumber(n) => match kind.as_enum().and_then(|e| e.get_value(*n)) {
            Some(v) => Json::String(v.name().to_string()),
            None => Json::String(n.to_string()),
        },
        Pb::Message(m) => message_json(m)?,
        Pb::List(items) => Json::Array(
            items
                .iter()
                .map(|x| value_json(x, kind))
                .collect::<Result<_, _>>()?,
        ),
        Pb::Map(_) => return Err(FormatError::Decode("a map outside a map field".into())),
    })
}

/// Decodes a message of `desc` to JSON (fields by their names).
pub fn decode(desc: MessageDescriptor, bytes: &[u8]) -> Result<Json, FormatError> {
    let m = DynamicMessage::decode(desc, bytes)
        .map_err(|e| FormatError::Decode(format!("bad Protobuf message: {e}")))?;
    message_json(&m)
}

// ---- Encoding: a row as a message of the writer's schema.

fn encode_err(what: impl std::fmt::Display) -> FormatError {
    FormatError::Encode(format!("cannot write Protobuf: {what}"))
}

fn field<'v>(fields: &'v [(String, Value)], name: &str) -> Option<&'v Value> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .or_else(|| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)))
        .map(|(_, v)| v)
}

/// A message of `desc` from named values (columns or struct fields); a
/// NULL leaves its field unset.
pub fn message(
    desc: &MessageDescriptor,
    fields: &[(String, Value)],
) -> Result<DynamicMessage, FormatError> {
    let mut m = DynamicMessage::new(desc.clone());
    for f in desc.fields() {
        let Some(v) = field(fields, f.name()) else {
            continue;
        };
        if v.is_null() {
            continue;
        }
        let pb = if f.is_map() {
            let entry = f.kind();
            let entry = entry
                .as_message()
                .ok_or_else(|| encode_err(f.full_name()))?;
            let (kf, vf) = (entry.map_entry_key_field(), entry.map_entry_value_field());
            let Value::Map(entries) = v else {
                return Err(encode_err(format!("{v} is not a map")));
            };
            let mut out = std::collections::HashMap::new();
            for (k, x) in entries {
                if x.is_null() {
                    continue;
                }
                let key = match (kf.kind(), k) {
                    (Kind::String, k) => MapKey::String(match k {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    }),
                    (Kind::Bool, Value::Boolean(b)) => MapKey::Bool(*b),
                    (Kind::Int32 | Kind::Sint32 | Kind::Sfixed32, k) => MapKey::I32(
                        k.as_i64()
                            .and_then(|i| i32::try_from(i).ok())
                            .ok_or_else(|| encode_err(k))?,
                    ),
                    (_, k) => MapKey::I64(k.as_i64().ok_or_else(|| encode_err(k))?),
                };
                out.insert(key, to_pb(x, &vf.kind())?);
            }
            Pb::Map(out)
        } else if f.is_list() {
            let Value::Array(items) = v else {
                return Err(encode_err(format!("{v} is not an array")));
            };
            Pb::List(
                items
                    .iter()
                    .filter(|x| !x.is_null())
                    .map(|x| to_pb(x, &f.kind()))
                    .collect::<Result<_, _>>()?,
            )
        } else {
            to_pb(v, &f.kind())?
        };
        m.try_set_field(&f, pb)
            .map_err(|e| encode_err(format!("field {}: {e}", f.name())))?;
    }
    Ok(m)
}

fn set(m: &mut DynamicMessage, name: &str, v: Pb) -> Result<(), FormatError> {
    m.try_set_field_by_name(name, v)
        .map_err(|e| encode_err(format!("field {name}: {e}")))
}

fn to_pb(v: &Value, kind: &Kind) -> Result<Pb, FormatError> {
    let mismatch = || encode_err(format!("{v} does not fit a field of {kind:?}"));
    Ok(match kind {
        Kind::Double => Pb::F64(v.as_f64().ok_or_else(mismatch)?),
        Kind::Float => Pb::F32(v.as_f64().ok_or_else(mismatch)? as f32),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Pb::I32(
            v.as_i64()
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(mismatch)?,
        ),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Pb::I64(v.as_i64().ok_or_else(mismatch)?),
        Kind::Uint32 | Kind::Fixed32 => Pb::U32(
            v.as_i64()
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(mismatch)?,
        ),
        Kind::Uint64 | Kind::Fixed64 => Pb::U64(
            v.as_i64()
                .and_then(|i| u64::try_from(i).ok())
                .ok_or_else(mismatch)?,
        ),
        Kind::Bool => Pb::Bool(v.as_bool().ok_or_else(mismatch)?),
        Kind::String => Pb::String(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        Kind::Bytes => match v {
            Value::Bytes(b) => Pb::Bytes(b.clone().into()),
            _ => return Err(mismatch()),
        },
        Kind::Enum(e) => match v {
            Value::String(s) => Pb::EnumNumber(
                e.get_value_by_name(s)
                    .map(|x| x.number())
                    .ok_or_else(mismatch)?,
            ),
            _ => return Err(mismatch()),
        },
        Kind::Message(d) => {
            let mut m = DynamicMessage::new(d.clone());
            match (d.full_name(), v) {
                ("google.protobuf.Timestamp", Value::Timestamp(ms)) => {
                    set(&mut m, "seconds", Pb::I64(ms.div_euclid(1000)))?;
                    set(
                        &mut m,
                        "nanos",
                        Pb::I32((ms.rem_euclid(1000) * 1_000_000) as i32),
                    )?;
                }
                ("google.type.Date", Value::Date(days)) => {
                    let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                        .and_then(|e| {
                            e.checked_add_signed(chrono::TimeDelta::days(i64::from(*days)))
                        })
                        .ok_or_else(mismatch)?;
                    use chrono::Datelike;
                    set(&mut m, "year", Pb::I32(date.year()))?;
                    set(&mut m, "month", Pb::I32(date.month() as i32))?;
                    set(&mut m, "day", Pb::I32(date.day() as i32))?;
                }
                ("google.type.TimeOfDay", Value::Time(ms)) => {
                    let s = ms / 1000;
                    set(&mut m, "hours", Pb::I32((s / 3600) as i32))?;
                    set(&mut m, "minutes", Pb::I32((s / 60 % 60) as i32))?;
                    set(&mut m, "seconds", Pb::I32((s % 60) as i32))?;
                    set(&mut m, "nanos", Pb::I32((ms % 1000 * 1_000_000) as i32))?;
                }
                ("confluent.type.Decimal", v) => {
                    let d = v.as_decimal().ok_or_else(mismatch)?;
                    let scale = d.scale();
                    let bytes = crate::avro::big_endian(&d, scale);
                    set(&mut m, "value", Pb::Bytes(bytes.into()))?;
                    set(
                        &mut m,
                        "precision",
                        Pb::U32(d.mantissa().unsigned_abs().to_string().len() as u32),
                    )?;
                    set(&mut m, "scale", Pb::I32(scale as i32))?;
                }
                (w, v) if WRAPPERS.contains(&w) => {
                    let f = d.get_field_by_name("value").ok_or_else(mismatch)?;
                    m.try_set_field(&f, to_pb(v, &f.kind())?)
                        .map_err(|e| encode_err(e.to_string()))?;
                }
                (_, Value::Struct(fields)) => m = message(d, fields)?,
                _ => return Err(mismatch()),
            }
            Pb::Message(m)
        }
    })
}

/// Encodes a message to bytes.
pub fn encode(m: &DynamicMessage) -> Vec<u8> {
    m.encode_to_vec()
}

// ---- The `.proto` ksqlDB derives for rows.

struct Writer {
    next: usize,
    imports: std::collections::BTreeSet<&'static str>,
    nullable: Option<NullableRepresentation>,
}

impl Writer {
    fn ty(&mut self, ty: &SqlType, nested: &mut String) -> Result<String, FormatError> {
        Ok(match ty {
            SqlType::Boolean => "bool".into(),
            SqlType::Int => "int32".into(),
            SqlType::BigInt => "int64".into(),
            SqlType::Double => "double".into(),
            SqlType::String => "string".into(),
            SqlType::Bytes => "bytes".into(),
            SqlType::Decimal { .. } => {
                self.imports.insert("confluent/type/decimal.proto");
                "confluent.type.Decimal".into()
            }
            SqlType::Date => {
                self.imports.insert("google/type/date.proto");
                "google.type.Date".into()
            }
            SqlType::Time => {
                self.imports.insert("google/type/timeofday.proto");
                "google.type.TimeOfDay".into()
            }
            SqlType::Timestamp => {
                self.imports.insert("google/protobuf/timestamp.proto");
                "google.protobuf.Timestamp".into()
            }
            SqlType::Struct(fields) => {
                self.next += 1;
                let name = format!("ConnectDefault{}", self.next);
                let cols: Vec<Column> = fields
                    .iter()
                    .map(|(n, t)| Column::new(n, t.clone()))
                    .collect();
                let body = self.message(&name, &cols)?;
                nested.push_str(&body);
                name
            }
            SqlType::Array(_) | SqlType::Map(..) => {
                return Err(FormatError::Unsupported(format!(
                    "Protobuf cannot nest {ty} in a collection"
                )))
            }
        })
    }

    fn message(&mut self, name: &str, columns: &[Column]) -> Result<String, FormatError> {
        let mut nested = String::new();
        let mut fields = String::new();
        for (i, c) in columns.iter().enumerate() {
            let decl = match &c.ty {
                SqlType::Array(t) => format!("repeated {}", self.ty(t, &mut nested)?),
                SqlType::Map(k, v) => {
                    let k = match **k {
                        SqlType::String => "string",
                        SqlType::Int => "int32",
                        SqlType::BigInt => "int64",
                        SqlType::Boolean => "bool",
                        _ => {
                            return Err(FormatError::Unsupported(format!(
                                "Protobuf map keys cannot be {k}"
                            )))
                        }
                    };
                    format!("map<{k}, {}>", self.ty(v, &mut nested)?)
                }
                t => match (self.nullable, scalar_wrapper(t)) {
                    (Some(NullableRepresentation::Optional), Some(_)) => {
                        format!("optional {}", self.ty(t, &mut nested)?)
                    }
                    (Some(NullableRepresentation::Wrapper), Some(w)) => {
                        self.imports.insert("google/protobuf/wrappers.proto");
                        w.to_string()
                    }
                    _ => self.ty(t, &mut nested)?,
                },
            };
            let _ = writeln!(fields, "  {decl} {} = {};", c.name, i + 1);
        }
        let nested = nested
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>();
        Ok(format!("message {name} {{\n{fields}{nested}}}\n"))
    }
}

/// The wrapper message of a scalar SQL type (`None`: not a scalar).
fn scalar_wrapper(ty: &SqlType) -> Option<&'static str> {
    Some(match ty {
        SqlType::Boolean => "google.protobuf.BoolValue",
        SqlType::Int => "google.protobuf.Int32Value",
        SqlType::BigInt => "google.protobuf.Int64Value",
        SqlType::Double => "google.protobuf.DoubleValue",
        SqlType::String => "google.protobuf.StringValue",
        SqlType::Bytes => "google.protobuf.BytesValue",
        _ => return None,
    })
}

/// The `.proto` ksqlDB derives for rows of `columns` (always a message).
pub fn schema_for(columns: &[Column], name: &str) -> Result<String, FormatError> {
    schema_with(columns, name, None)
}

/// [`schema_for`] with scalar fields made nullable as `nullable` says.
pub fn schema_with(
    columns: &[Column],
    name: &str,
    nullable: Option<NullableRepresentation>,
) -> Result<String, FormatError> {
    let mut w = Writer {
        next: 1,
        imports: Default::default(),
        nullable,
    };
    let (package, simple) = match name.rsplit_once('.') {
        Some((p, n)) => (Some(p), n),
        None => (None, name),
    };
    let body = w.message(simple, columns)?;
    let mut out = String::from("syntax = \"proto3\";\n\n");
    if let Some(p) = package {
        let _ = writeln!(out, "package {p};\n");
    }
    for i in &w.imports {
        let _ = writeln!(out, "import \"{i}\";");
    }
    if !w.imports.is_empty() {
        out.push('\n');
    }
    out.push_str(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::from_json;
    use runnel_schema::{ParsedSchema, SchemaType};

    fn round_trip(columns: Vec<Column>, row: Vec<Value>) {
        let text = schema_for(&columns, DEFAULT_MESSAGE_NAME).unwrap();
        let parsed = ParsedSchema::parse(SchemaType::Protobuf, &text, &[]).unwrap();
        let desc = parsed.as_protobuf().unwrap();
        assert_eq!(desc.name(), DEFAULT_MESSAGE_NAME);
        let named: Vec<(String, Value)> = columns
            .iter()
            .zip(&row)
            .map(|(c, v)| (c.name.clone(), v.clone()))
            .collect();
        let bytes = encode(&message(&desc, &named).unwrap());
        let j = decode(desc.clone(), &bytes).unwrap();
        for (c, v) in columns.iter().zip(&row) {
            assert_eq!(
                &from_json(&c.ty, &j[&c.name]).unwrap(),
                v,
                "{} in {text}",
                c.name
            );
        }
        assert_eq!(infer_columns(&desc).unwrap(), columns, "{text}");
    }

    #[test]
    fn rows_round_trip_through_the_derived_proto() {
        round_trip(
            vec![
                Column::new("B", SqlType::Boolean),
                Column::new("I", SqlType::Int),
                Column::new("L", SqlType::BigInt),
                Column::new("D", SqlType::Double),
                Column::new("S", SqlType::String),
                Column::new("BY", SqlType::Bytes),
                Column::new("TS", SqlType::Timestamp),
                Column::new("DT", SqlType::Date),
                Column::new("TM", SqlType::Time),
                Column::new("A", SqlType::Array(Box::new(SqlType::String))),
                Column::new(
                    "M",
                    SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::BigInt)),
                ),
                Column::new(
                    "ST",
                    SqlType::Struct(vec![
                        ("X".into(), SqlType::Int),
                        (
                            "Y".into(),
                            SqlType::Struct(vec![("Z".into(), SqlType::String)]),
                        ),
                    ]),
                ),
            ],
            vec![
                Value::Boolean(true),
                Value::Int(-3),
                Value::BigInt(1 << 40),
                Value::Double(2.5),
                Value::String("x".into()),
                Value::Bytes(vec![1, 2]),
                Value::Timestamp(1_700_000_000_123),
                Value::Date(19_000),
                Value::Time(45_296_789),
                Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
                Value::Map(vec![(Value::String("k".into()), Value::BigInt(9))]),
                Value::Struct(vec![
                    ("X".into(), Value::Int(1)),
                    (
                        "Y".into(),
                        Value::Struct(vec![("Z".into(), Value::String("z".into()))]),
                    ),
                ]),
            ],
        );
    }

    #[test]
    fn the_derived_proto_is_ksqldbs_shape() {
        let text = schema_for(
            &[
                Column::new("ID", SqlType::BigInt),
                Column::new(
                    "AMOUNT",
                    SqlType::Decimal {
                        precision: 4,
                        scale: 2,
                    },
                ),
            ],
            DEFAULT_MESSAGE_NAME,
        )
        .unwrap();
        assert_eq!(
            text,
            "syntax = \"proto3\";\n\nimport \"confluent/type/decimal.proto\";\n\nmessage ConnectDefault1 {\n  int64 ID = 1;\n  confluent.type.Decimal AMOUNT = 2;\n}\n"
        );
    }

    #[test]
    fn wrappers_read_as_nullable_values_and_scalars_as_defaults() {
        let text = r#"syntax = "proto3";
import "google/protobuf/wrappers.proto";
message M { google.protobuf.Int32Value w = 1; int32 plain = 2; Inner inner = 3; message Inner { string s = 1; } }"#;
        let parsed = ParsedSchema::parse(SchemaType::Protobuf, text, &[]).unwrap();
        let desc = parsed.as_protobuf().unwrap();
        let cols = infer_columns(&desc).unwrap();
        let got: Vec<String> = cols
            .iter()
            .map(|c| format!("{} {}", c.name, c.ty))
            .collect();
        assert_eq!(
            got,
            ["W INTEGER", "PLAIN INTEGER", "INNER STRUCT<`S` STRING>"]
        );
        // An empty message: the wrapper and the message are NULL, the
        // plain scalar its default.
        let j = decode(desc.clone(), &[]).unwrap();
        assert_eq!(j, json!({"w": null, "plain": 0, "inner": null}));
        let m = message(&desc, &[("W".into(), Value::Int(5))]).unwrap();
        let j = decode(desc, &encode(&m)).unwrap();
        assert_eq!(j["w"], json!(5));
    }
}

/// PROTOBUF_NOSR: Protobuf messages without a schema registry or the
/// wire format's header, with the schema ksqlDB derives from the columns
/// on both sides.
pub struct ProtobufNoSr;

impl crate::format::RowFormat for ProtobufNoSr {
    fn name(&self) -> &'static str {
        "PROTOBUF_NOSR"
    }

    fn check(&self, columns: &[Column], _what: &str) -> Result<(), FormatError> {
        schema_for(columns, DEFAULT_MESSAGE_NAME).map(|_| ())
    }

    fn supports_protobuf_nullable(&self) -> bool {
        true
    }

    fn codec(
        &self,
        spec: &crate::format::CodecSpec<'_>,
    ) -> std::sync::Arc<dyn crate::format::RowCodec> {
        let desc = schema_with(spec.columns, DEFAULT_MESSAGE_NAME, spec.protobuf_nullable)
            .and_then(|text| {
                runnel_schema::ParsedSchema::parse(runnel_schema::SchemaType::Protobuf, &text, &[])
                    .ok()
                    .and_then(|p| p.as_protobuf())
                    .ok_or_else(|| FormatError::Unsupported(format!("cannot compile {text}")))
            });
        let plans = desc.as_ref().ok().map(|d| {
            (
                crate::protobuf_plan::ReadPlan::compile(d, spec.columns, false),
                crate::protobuf_plan::WritePlan::compile(d, spec.columns),
            )
        });
        let (read, write) = plans.unwrap_or((None, None));
        std::sync::Arc::new(NoSrCodec {
            columns: spec.columns.to_vec(),
            desc,
            read,
            write,
        })
    }
}

struct NoSrCodec {
    columns: Vec<Column>,
    desc: Result<MessageDescriptor, FormatError>,
    /// How messages are read and rows written directly, when they can be
    /// (see `protobuf_plan`).
    read: Option<crate::protobuf_plan::ReadPlan>,
    write: Option<crate::protobuf_plan::WritePlan>,
}

impl crate::format::RowCodec for NoSrCodec {
    fn encode(&self, row: &[Value]) -> Result<Option<Vec<u8>>, FormatError> {
        if let Some(plan) = &self.write {
            let mut out = Vec::with_capacity(64);
            if plan.write(row, &mut out).is_some() {
                return Ok(Some(out));
            }
        }
        let desc = self.desc.as_ref().map_err(Clone::clone)?;
        let named: Vec<(String, Value)> = self
            .columns
            .iter()
            .zip(row)
            .map(|(c, v)| (c.name.clone(), v.clone()))
            .collect();
        Ok(Some(encode(&message(desc, &named)?)))
    }

    fn decode_with_prefix(
        &self,
        bytes: &[u8],
        prefix: usize,
        suffix: usize,
        spare: usize,
        unread: &[bool],
    ) -> Result<crate::format::Row, FormatError> {
        if let Some(plan) = &self.read {
            if let Some(row) = plan.read_padded(bytes, (prefix, suffix, spare), unread) {
                return Ok(row);
            }
        }
        Ok(crate::format::padded(
            self.decode_general(bytes)?,
            prefix,
            suffix,
            spare,
        ))
    }

    fn decode(&self, bytes: &[u8]) -> Result<crate::format::Row, FormatError> {
        if let Some(plan) = &self.read {
            if let Some(row) = plan.read_padded(bytes, (0, 0, 0), &[]) {
                return Ok(row);
            }
        }
        self.decode_general(bytes)
    }
}

impl NoSrCodec {
    /// A message read through `DynamicMessage` and JSON.
    fn decode_general(&self, bytes: &[u8]) -> Result<crate::format::Row, FormatError> {
        let desc = self.desc.as_ref().map_err(Clone::clone)?;
        let j = decode(desc.clone(), bytes)?;
        self.columns
            .iter()
            .map(|c| match j.get(&c.name) {
                None | Some(Json::Null) => Ok(Value::Null),
                Some(v) => {
                    crate::json::from_json(&c.ty, v).map_err(|e| FormatError::Decode(e.to_string()))
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod nosr_tests {
    use super::*;
    use crate::format::{Format, RowSerde};

    #[test]
    fn protobuf_nosr_rows_are_bare_messages() {
        let cols = vec![
            Column::new("ID", SqlType::BigInt),
            Column::new("NAME", SqlType::String),
        ];
        let serde = RowSerde::new(Format::PROTOBUF_NOSR, cols, true);
        let row = vec![Value::BigInt(150), Value::String("a".into())];
        let bytes = serde.encode(&row).unwrap().unwrap();
        // Field 1 varint 150, field 2 string "a": no magic byte, no id.
        assert_eq!(bytes, [0x08, 0x96, 0x01, 0x12, 0x01, b'a']);
        assert_eq!(serde.decode(&bytes).unwrap(), row);
        assert!(serde.decode(&[0xff]).is_err());
    }
}
