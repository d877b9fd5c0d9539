//! Converters: Connect values ⇄ record bytes, chosen per connector by
//! `key.converter` / `value.converter` (worker defaults otherwise), with
//! their settings under `key.converter.` / `value.converter.`.
//!
//! * `org.apache.kafka.connect.json.JsonConverter`: with `schemas.enable`
//!   (the default) every record is the envelope
//!   `{"schema":…,"payload":…}` in Connect's JSON schema encoding (`type`,
//!   `optional`, `name`, `version`, `doc`, `parameters`, `default`,
//!   `fields[].field`, `items`, `keys`, `values`); bytes and Decimals are
//!   base64. Without, plain JSON.
//! * `org.apache.kafka.connect.storage.StringConverter`: UTF-8 text.
//! * `org.apache.kafka.connect.converters.ByteArrayConverter`: bytes as
//!   they are.
//! * `io.confluent.connect.avro.AvroConverter`,
//!   `io.confluent.connect.json.JsonSchemaConverter` and
//!   `io.confluent.connect.protobuf.ProtobufConverter`: the Schema
//!   Registry's formats, in [`crate::registry`].
//!
//! A null value without a schema is a null record (a tombstone), as in
//! Kafka.

use std::sync::Arc;

use base64::Engine as _;
use runnel_connect_api::{Config, Field, Schema, SchemaType, Struct, Value};
use serde_json::{Map, Value as Json};

pub const JSON: &str = "org.apache.kafka.connect.json.JsonConverter";
pub const STRING: &str = "org.apache.kafka.connect.storage.StringConverter";
pub const BYTES: &str = "org.apache.kafka.connect.converters.ByteArrayConverter";

/// A value that cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConvertError {
    pub message: String,
    /// Trying again may succeed (Kafka's `RetriableException`: the
    /// schema registry could not be reached); `errors.retry.timeout`
    /// bounds how long the runtime tries.
    pub retriable: bool,
}

impl ConvertError {
    pub fn new(message: impl Into<String>) -> ConvertError {
        ConvertError {
            message: message.into(),
            retriable: false,
        }
    }

    pub fn retriable(message: impl Into<String>) -> ConvertError {
        ConvertError {
            message: message.into(),
            retriable: true,
        }
    }
}

fn err(msg: impl Into<String>) -> ConvertError {
    ConvertError::new(msg)
}

/// Connect data ⇄ bytes.
pub trait Converter: Send + Sync {
    /// Serializes a key or value; `None` is a null record key or value.
    fn encode(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConvertError>;
    /// Deserializes a key or value.
    fn decode(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Schema>, Value), ConvertError>;
}

/// The converter `class` with its settings (`schemas.enable`…, the prefix
/// already removed). Short names (`JsonConverter`…) are accepted too.
/// `is_key` says whether it converts keys (the registry converters name
/// subjects `<topic>-key` then).
pub fn converter(
    class: &str,
    settings: &Config,
    is_key: bool,
) -> Result<Box<dyn Converter>, ConvertError> {
    let simple = class.rsplit('.').next().unwrap_or(class);
    if let Some(c) = crate::registry::converter(simple, settings, is_key) {
        return c;
    }
    match simple {
        "JsonConverter" => {
            let schemas = match settings.get("schemas.enable").map(|s| s.trim()) {
                None => true,
                Some(s) if s.eq_ignore_ascii_case("true") => true,
                Some(s) if s.eq_ignore_ascii_case("false") => false,
                Some(s) => {
                    return Err(err(format!(
                        "Invalid value {s} for configuration schemas.enable: Expected value to be either true or false"
                    )))
                }
            };
            Ok(Box::new(JsonConverter { schemas }))
        }
        "StringConverter" => Ok(Box::new(StringConverter)),
        "ByteArrayConverter" => Ok(Box::new(ByteArrayConverter)),
        _ => Err(err(format!("Class {class} could not be found."))),
    }
}

/// Kafka's default header converter.
pub const SIMPLE_HEADER: &str = "org.apache.kafka.connect.storage.SimpleHeaderConverter";

/// The header converter `class` (`header.converter`): Kafka's
/// SimpleHeaderConverter (the default), or StringConverter, JsonConverter
/// (`schemas.enable` as for values) or ByteArrayConverter used for headers.
pub fn header_converter(
    class: &str,
    settings: &Config,
) -> Result<Box<dyn Converter>, ConvertError> {
    let simple = class.rsplit('.').next().unwrap_or(class);
    match simple {
        "SimpleHeaderConverter" => Ok(Box::new(SimpleHeaderConverter)),
        "StringConverter" | "JsonConverter" | "ByteArrayConverter" => {
            converter(class, settings, false)
        }
        _ => Err(err(format!("Class {class} could not be found."))),
    }
}

/// Kafka's SimpleHeaderConverter: a header is written as its value's
/// text (Java's `toString` of a primitive, JSON of a struct, map or
/// array), and read back with the type the text shows: `true`/`false` a
/// BOOLEAN, an integer the smallest of INT8…INT64 it fits, a number with a
/// fraction or exponent FLOAT32 (FLOAT64 beyond FLOAT32's range), anything
/// else a STRING. (Kafka's parser also reads arrays, maps, dates and
/// times back into their types; here those stay strings.)
#[derive(Debug, Clone, Copy)]
pub struct SimpleHeaderConverter;

impl Converter for SimpleHeaderConverter {
    /// Written as StringConverter writes it.
    fn encode(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConvertError> {
        StringConverter.encode(topic, schema, value)
    }

    fn decode(
        &self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Schema>, Value), ConvertError> {
        let Some(b) = bytes else {
            return Ok((None, Value::Null));
        };
        let text = String::from_utf8_lossy(b).into_owned();
        Ok(parse_header_text(text))
    }
}

fn parse_header_text(text: String) -> (Option<Schema>, Value) {
    let t = text.trim();
    if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false") {
        return (
            Some(Schema::boolean()),
            Value::Boolean(t.eq_ignore_ascii_case("true")),
        );
    }
    let integer = {
        let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
        !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())
    };
    if integer {
        if let Ok(n) = t.parse::<i64>() {
            return if let Ok(v) = i8::try_from(n) {
                (Some(Schema::int8()), Value::Int8(v))
            } else if let Ok(v) = i16::try_from(n) {
                (Some(Schema::int16()), Value::Int16(v))
            } else if let Ok(v) = i32::try_from(n) {
                (Some(Schema::int32()), Value::Int32(v))
            } else {
                (Some(Schema::int64()), Value::Int64(n))
            };
        }
    }
    let decimal = {
        let body = t.strip_prefix(['-', '+']).unwrap_or(t);
        let (mantissa, exponent) = match body.split_once(['e', 'E']) {
            Some((m, e)) => (m, Some(e.strip_prefix(['-', '+']).unwrap_or(e))),
            None => (body, None),
        };
        let (int_part, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
        !(int_part.is_empty() && frac.is_empty())
            && digits(int_part)
            && digits(frac)
            && (mantissa.contains('.') || exponent.is_some())
            && exponent.is_none_or(|e| !e.is_empty() && digits(e))
    };
    if decimal {
        if let Ok(d) = t.parse::<f64>() {
            let f = d as f32;
            if f.is_finite() {
                return (Some(Schema::float32()), Value::Float32(f));
            }
            if d.is_finite() {
                return (Some(Schema::float64()), Value::Float64(d));
            }
        }
    }
    (Some(Schema::string()), Value::String(text))
}

/// The classes [`converter`] knows.
pub const CLASSES: [&str; 6] = [
    JSON,
    STRING,
    BYTES,
    crate::registry::AVRO,
    crate::registry::JSON_SCHEMA,
    crate::registry::PROTOBUF,
];

/// Kafka's JsonConverter.
#[derive(Debug, Clone, Copy)]
pub struct JsonConverter {
    pub schemas: bool,
}

impl Converter for JsonConverter {
    fn encode(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConvertError> {
        if schema.is_none() && value.is_null() {
            return Ok(None);
        }
        if let (Some(s), false) = (schema, value.is_null()) {
            s.validate(value).map_err(|e| err(e.to_string()))?;
        }
        let payload = value_to_json(schema, value)?;
        let out = if self.schemas {
            let mut env = Map::new();
            env.insert("schema".into(), schema.map_or(Json::Null, schema_to_json));
            env.insert("payload".into(), payload);
            Json::Object(env)
        } else {
            payload
        };
        Ok(Some(out.to_string().into_bytes()))
    }

    fn decode(
        &self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Schema>, Value), ConvertError> {
        let Some(bytes) = bytes else {
            return Ok((None, Value::Null));
        };
        let json: Json = serde_json::from_slice(bytes).map_err(|e| {
            err(format!(
                "Converting byte[] to Kafka Connect data failed due to serialization error: {e}"
            ))
        })?;
        if !self.schemas {
            return Ok((None, json_to_value_schemaless(&json)));
        }
        let ok = matches!(&json, Json::Object(m) if m.len() == 2 && m.contains_key("schema") && m.contains_key("payload"));
        if !ok {
            return Err(err("JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not contain additional fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter configuration."));
        }
        let schema = match &json["schema"] {
            Json::Null => None,
            s => Some(schema_from_json(s)?),
        };
        let value = match &schema {
            None => json_to_value_schemaless(&json["payload"]),
            Some(s) => json_to_value(s, &json["payload"])?,
        };
        Ok((schema, value))
    }
}

/// A schema in Connect's JSON encoding.
pub fn schema_to_json(schema: &Schema) -> Json {
    let mut m = Map::new();
    m.insert("type".into(), Json::String(schema.kind.json_name().into()));
    match schema.kind {
        SchemaType::Struct => {
            let fields = schema
                .fields
                .iter()
                .map(|f| {
                    let mut j = schema_to_json(&f.schema);
                    if let Json::Object(o) = &mut j {
                        o.insert("field".into(), Json::String(f.name.clone()));
                    }
                    j
                })
                .collect();
            m.insert("fields".into(), Json::Array(fields));
        }
        SchemaType::Array => {
            if let Some(v) = &schema.value {
                m.insert("items".into(), schema_to_json(v));
            }
        }
        SchemaType::Map => {
            if let Some(k) = &schema.key {
                m.insert("keys".into(), schema_to_json(k));
            }
            if let Some(v) = &schema.value {
                m.insert("values".into(), schema_to_json(v));
            }
        }
        _ => {}
    }
    m.insert("optional".into(), Json::Bool(schema.optional));
    if let Some(name) = &schema.name {
        m.insert("name".into(), Json::String(name.clone()));
    }
    if let Some(v) = schema.version {
        m.insert("version".into(), Json::from(v));
    }
    if let Some(doc) = &schema.doc {
        m.insert("doc".into(), Json::String(doc.clone()));
    }
    if !schema.parameters.is_empty() {
        let p: Map<String, Json> = schema
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect();
        m.insert("parameters".into(), Json::Object(p));
    }
    if let Some(d) = &schema.default {
        if let Ok(j) = value_to_json(Some(schema), d) {
            m.insert("default".into(), j);
        }
    }
    Json::Object(m)
}

/// A schema from Connect's JSON encoding.
pub fn schema_from_json(j: &Json) -> Result<Schema, ConvertError> {
    let o = j
        .as_object()
        .ok_or_else(|| err("Schema must be a JSON object"))?;
    let type_name = o
        .get("type")
        .and_then(Json::as_str)
        .ok_or_else(|| err("Schema must contain 'type' field"))?;
    let kind = SchemaType::from_json_name(type_name)
        .ok_or_else(|| err(format!("Unknown schema type: {type_name}")))?;
    let mut s = Schema::of(kind);
    match kind {
        SchemaType::Struct => {
            let fields = o
                .get("fields")
                .and_then(Json::as_array)
                .ok_or_else(|| err("Struct schema's \"fields\" argument is not an array."))?;
            for (index, f) in fields.iter().enumerate() {
                let name = f
                    .get("field")
                    .and_then(Json::as_str)
                    .ok_or_else(|| err("Struct schema's field name not specified properly"))?;
                s.fields.push(Field {
                    name: name.to_string(),
                    index,
                    schema: schema_from_json(f)?,
                });
            }
        }
        SchemaType::Array => {
            let items = o
                .get("items")
                .ok_or_else(|| err("Array schema did not specify the items type"))?;
            s.value = Some(Box::new(schema_from_json(items)?));
        }
        SchemaType::Map => {
            let k = o
                .get("keys")
                .ok_or_else(|| err("Map schema did not specify the key type"))?;
            let v = o
                .get("values")
                .ok_or_else(|| err("Map schema did not specify the value type"))?;
            s.key = Some(Box::new(schema_from_json(k)?));
            s.value = Some(Box::new(schema_from_json(v)?));
        }
        _ => {}
    }
    s.optional = o.get("optional").and_then(Json::as_bool).unwrap_or(false);
    s.name = o.get("name").and_then(Json::as_str).map(str::to_string);
    s.version = o
        .get("version")
        .and_then(Json::as_i64)
        .and_then(|v| i32::try_from(v).ok());
    s.doc = o.get("doc").and_then(Json::as_str).map(str::to_string);
    if let Some(p) = o.get("parameters").and_then(Json::as_object) {
        s.parameters = p
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect();
    }
    if let Some(d) = o.get("default") {
        if !d.is_null() {
            let plain = Schema {
                default: None,
                ..s.clone()
            };
            s.default = Some(Box::new(json_to_value(&plain, d)?));
        }
    }
    Ok(s)
}

fn b64(bytes: &[u8]) -> Json {
    Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A float as JSON; NaN and the infinities, which JSON numbers cannot be,
/// as the strings Kafka's JsonConverter (Jackson) writes: "NaN",
/// "Infinity", "-Infinity".
fn f64_json(v: f64) -> Result<Json, ConvertError> {
    Ok(match serde_json::Number::from_f64(v) {
        Some(n) => Json::Number(n),
        None if v.is_nan() => Json::String("NaN".into()),
        None if v > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    })
}

/// A value as JSON, following its schema when there is one.
pub fn value_to_json(schema: Option<&Schema>, value: &Value) -> Result<Json, ConvertError> {
    let value = match (value, schema.and_then(|s| s.default.as_deref())) {
        (Value::Null, Some(d)) => d,
        _ => value,
    };
    Ok(match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int8(v) => Json::from(*v),
        Value::Int16(v) => Json::from(*v),
        Value::Int32(v) => Json::from(*v),
        Value::Int64(v) => Json::from(*v),
        Value::Float32(v) => f64_json(f64::from(*v))?,
        Value::Float64(v) => f64_json(*v)?,
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => b64(b),
        Value::Array(items) => {
            let element = schema.and_then(|s| s.value.as_deref());
            Json::Array(
                items
                    .iter()
                    .map(|i| value_to_json(element, i))
                    .collect::<Result<_, _>>()?,
            )
        }
        Value::Map(entries) => {
            let (ks, vs) = match schema {
                Some(s) => (s.key.as_deref(), s.value.as_deref()),
                None => (None, None),
            };
            let string_keys = match ks {
                Some(k) => k.kind == SchemaType::String,
                None => entries.iter().all(|(k, _)| matches!(k, Value::String(_))),
            };
            if string_keys {
                let mut m = Map::new();
                for (k, v) in entries {
                    let key = k.as_str().unwrap_or_default().to_string();
                    m.insert(key, value_to_json(vs, v)?);
                }
                Json::Object(m)
            } else {
                Json::Array(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            Ok(Json::Array(vec![
                                value_to_json(ks, k)?,
                                value_to_json(vs, v)?,
                            ]))
                        })
                        .collect::<Result<_, ConvertError>>()?,
                )
            }
        }
        Value::Struct(s) => {
            let mut m = Map::new();
            for f in &s.schema.fields {
                let v = s.values.get(f.index).unwrap_or(&Value::Null);
                m.insert(f.name.clone(), value_to_json(Some(&f.schema), v)?);
            }
            Json::Object(m)
        }
    })
}

fn mismatch(schema: &Schema, j: &Json) -> ConvertError {
    err(format!(
        "Invalid type for {}: {}",
        schema.kind.json_name().to_uppercase(),
        match j {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    ))
}

fn int<T: TryFrom<i64>>(schema: &Schema, j: &Json) -> Result<T, ConvertError> {
    j.as_i64()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| mismatch(schema, j))
}

/// A JSON payload read with its schema.
pub fn json_to_value(schema: &Schema, j: &Json) -> Result<Value, ConvertError> {
    if j.is_null() {
        if let Some(d) = &schema.default {
            return Ok((**d).clone());
        }
        if schema.optional {
            return Ok(Value::Null);
        }
        return Err(err("Invalid null value for required ".to_string()
            + &schema.kind.json_name().to_uppercase()
            + " field"));
    }
    Ok(match schema.kind {
        SchemaType::Boolean => Value::Boolean(j.as_bool().ok_or_else(|| mismatch(schema, j))?),
        SchemaType::Int8 => Value::Int8(int(schema, j)?),
        SchemaType::Int16 => Value::Int16(int(schema, j)?),
        SchemaType::Int32 => Value::Int32(int(schema, j)?),
        SchemaType::Int64 => Value::Int64(int(schema, j)?),
        SchemaType::Float32 => {
            Value::Float32(j.as_f64().ok_or_else(|| mismatch(schema, j))? as f32)
        }
        SchemaType::Float64 => Value::Float64(j.as_f64().ok_or_else(|| mismatch(schema, j))?),
        SchemaType::String => {
            Value::String(j.as_str().ok_or_else(|| mismatch(schema, j))?.to_string())
        }
        SchemaType::Bytes => {
            let s = j.as_str().ok_or_else(|| mismatch(schema, j))?;
            Value::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| err(format!("Invalid bytes field: {e}")))?,
            )
        }
        SchemaType::Array => {
            let element = schema
                .value
                .as_deref()
                .ok_or_else(|| err("Array schema without items"))?;
            let items = j.as_array().ok_or_else(|| mismatch(schema, j))?;
            Value::Array(
                items
                    .iter()
                    .map(|i| json_to_value(element, i))
                    .collect::<Result<_, _>>()?,
            )
        }
        SchemaType::Map => {
            let (Some(ks), Some(vs)) = (schema.key.as_deref(), schema.value.as_deref()) else {
                return Err(err("Map schema without keys or values"));
            };
            match j {
                Json::Object(o) if ks.kind == SchemaType::String => Value::Map(
                    o.iter()
                        .map(|(k, v)| Ok((Value::String(k.clone()), json_to_value(vs, v)?)))
                        .collect::<Result<_, ConvertError>>()?,
                ),
                Json::Array(pairs) => Value::Map(
                    pairs
                        .iter()
                        .map(|p| match p.as_array().map(Vec::as_slice) {
                            Some([k, v]) => Ok((json_to_value(ks, k)?, json_to_value(vs, v)?)),
                            _ => Err(err("Found invalid map entry instead of array tuple")),
                        })
                        .collect::<Result<_, ConvertError>>()?,
                ),
                _ => return Err(mismatch(schema, j)),
            }
        }
        SchemaType::Struct => {
            let o = j.as_object().ok_or_else(|| mismatch(schema, j))?;
            let arc = Arc::new(schema.clone());
            let mut s = Struct::new(arc);
            for f in &schema.fields {
                let v = json_to_value(&f.schema, o.get(&f.name).unwrap_or(&Json::Null))
                    .map_err(|e| err(format!("{} (field {})", e.message, f.name)))?;
                s.values[f.index] = v;
            }
            Value::Struct(s)
        }
    })
}

/// JSON read without a schema: objects become maps with string keys,
/// integers `Int64`, other numbers `Float64`.
pub fn json_to_value_schemaless(j: &Json) -> Value {
    match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int64(i),
            None => Value::Float64(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(json_to_value_schemaless).collect()),
        Json::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (Value::String(k.clone()), json_to_value_schemaless(v)))
                .collect(),
        ),
    }
}

/// A value as Java's `toString` would print it for StringConverter.
pub fn value_to_text(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Int8(v) => v.to_string(),
        Value::Int16(v) => v.to_string(),
        Value::Int32(v) => v.to_string(),
        Value::Int64(v) => v.to_string(),
        Value::Float32(v) => v.to_string(),
        Value::Float64(v) => v.to_string(),
        Value::String(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        other => value_to_json(None, other)
            .map(|j| j.to_string())
            .unwrap_or_default(),
    }
}

/// Kafka's StringConverter.
#[derive(Debug, Clone, Copy)]
pub struct StringConverter;

impl Converter for StringConverter {
    fn encode(
        &self,
        _topic: &str,
        _schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConvertError> {
        Ok(match value {
            Value::Null => None,
            v => Some(value_to_text(v).into_bytes()),
        })
    }

    fn decode(
        &self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Schema>, Value), ConvertError> {
        Ok(match bytes {
            None => (Some(Schema::string().optional()), Value::Null),
            Some(b) => (
                Some(Schema::string().optional()),
                Value::String(String::from_utf8_lossy(b).into_owned()),
            ),
        })
    }
}

/// Kafka's ByteArrayConverter.
#[derive(Debug, Clone, Copy)]
pub struct ByteArrayConverter;

impl Converter for ByteArrayConverter {
    fn encode(
        &self,
        _topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConvertError> {
        if let Some(s) = schema {
            if s.kind != SchemaType::Bytes {
                return Err(err(format!(
                    "Invalid schema type for ByteArrayConverter: {}",
                    s.kind.json_name().to_uppercase()
                )));
            }
        }
        match value {
            Value::Null => Ok(None),
            Value::Bytes(b) => Ok(Some(b.clone())),
            other => Err(err(format!(
                "ByteArrayConverter is not compatible with objects of type {}",
                other.kind_name()
            ))),
        }
    }

    fn decode(
        &self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Schema>, Value), ConvertError> {
        Ok((
            Some(Schema::bytes().optional()),
            bytes.map_or(Value::Null, |b| Value::Bytes(b.to_vec())),
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn non_finite_floats_are_written_as_jacksons_strings() {
        let enc = |v: Value, schema: Schema| value_to_json(Some(&schema), &v).unwrap();
        assert_eq!(
            enc(Value::Float64(f64::INFINITY), Schema::float64()),
            Json::String("Infinity".into())
        );
        assert_eq!(
            enc(Value::Float64(f64::NEG_INFINITY), Schema::float64()),
            Json::String("-Infinity".into())
        );
        assert_eq!(
            enc(Value::Float32(f32::NAN), Schema::float32()),
            Json::String("NaN".into())
        );
        assert_eq!(
            enc(Value::Float64(1.5), Schema::float64()),
            serde_json::json!(1.5)
        );
    }

    use super::*;
    use serde_json::json;

    fn person() -> Schema {
        Schema::struct_named("person")
            .version(2)
            .field("id", Schema::int32())
            .field("name", Schema::string().optional())
            .field("price", Schema::decimal(2))
            .field("born", Schema::date().optional())
            .field(
                "tags",
                Schema::map(Schema::string(), Schema::int64()).optional(),
            )
    }

    #[test]
    fn json_envelope_matches_connects_encoding() {
        let schema = person();
        let s = Struct::new(Arc::new(schema.clone()))
            .with("id", Value::Int32(7))
            .unwrap()
            .with("name", Value::String("ann".into()))
            .unwrap()
            .with("price", Value::Bytes(vec![0x04, 0xD2])) // 1234 → 12.34
            .unwrap()
            .with("born", Value::Int32(19000))
            .unwrap();
        let c = JsonConverter { schemas: true };
        let bytes = c
            .encode("t", Some(&schema), &Value::Struct(s.clone()))
            .unwrap()
            .unwrap();
        let j: Json = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            j,
            json!({
                "schema": {"type": "struct", "fields": [
                    {"type": "int32", "optional": false, "field": "id"},
                    {"type": "string", "optional": true, "field": "name"},
                    {"type": "bytes", "optional": false, "name": "org.apache.kafka.connect.data.Decimal",
                     "version": 1, "parameters": {"scale": "2"}, "field": "price"},
                    {"type": "int32", "optional": true, "name": "org.apache.kafka.connect.data.Date",
                     "version": 1, "field": "born"},
                    {"type": "map", "keys": {"type": "string", "optional": false},
                     "values": {"type": "int64", "optional": false}, "optional": true, "field": "tags"}
                ], "optional": false, "name": "person", "version": 2},
                "payload": {"id": 7, "name": "ann", "price": "BNI=", "born": 19000, "tags": null}
            })
        );
        let (back_schema, back) = c.decode("t", Some(&bytes)).unwrap();
        assert_eq!(back_schema.as_ref(), Some(&schema));
        assert_eq!(back, Value::Struct(s));
    }

    #[test]
    fn json_without_schemas_and_errors() {
        let c = JsonConverter { schemas: false };
        let v = Value::Map(vec![(Value::String("a".into()), Value::Int64(1))]);
        let bytes = c.encode("t", None, &v).unwrap().unwrap();
        assert_eq!(bytes, br#"{"a":1}"#.to_vec());
        assert_eq!(c.decode("t", Some(&bytes)).unwrap(), (None, v));
        assert_eq!(c.encode("t", None, &Value::Null).unwrap(), None);
        let strict = JsonConverter { schemas: true };
        let e = strict.decode("t", Some(br#"{"a":1}"#)).unwrap_err();
        assert!(
            e.message.contains("requires \"schema\" and \"payload\""),
            "{e}"
        );
        assert!(strict.decode("t", Some(b"{nope")).is_err());
        // A value that does not fit its schema is refused.
        assert!(strict
            .encode("t", Some(&Schema::int32()), &Value::String("x".into()))
            .is_err());
        // Optional, defaults and non-string map keys.
        let m = Schema::map(Schema::int32(), Schema::string());
        let mv = Value::Map(vec![(Value::Int32(1), Value::String("x".into()))]);
        let bytes = strict.encode("t", Some(&m), &mv).unwrap().unwrap();
        let j: Json = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(j["payload"], json!([[1, "x"]]));
        assert_eq!(strict.decode("t", Some(&bytes)).unwrap().1, mv);
        let d = Schema::int32().default_value(Value::Int32(5));
        let env = json!({"schema": schema_to_json(&d), "payload": null}).to_string();
        assert_eq!(
            strict.decode("t", Some(env.as_bytes())).unwrap().1,
            Value::Int32(5)
        );
        assert!(converter("com.example.Nope", &Config::new(), false).is_err());
        let mut bad = Config::new();
        bad.insert("schemas.enable".into(), "maybe".into());
        assert!(converter(JSON, &bad, false).is_err());
    }

    #[test]
    fn string_and_bytes() {
        let s = StringConverter;
        assert_eq!(
            s.encode("t", None, &Value::Int64(42)).unwrap(),
            Some(b"42".to_vec())
        );
        assert_eq!(
            s.decode("t", Some(b"hi")).unwrap().1,
            Value::String("hi".into())
        );
        let b = ByteArrayConverter;
        assert_eq!(
            b.encode("t", None, &Value::Bytes(vec![1, 2])).unwrap(),
            Some(vec![1, 2])
        );
        assert!(b.encode("t", None, &Value::String("x".into())).is_err());
        assert_eq!(b.decode("t", None).unwrap().1, Value::Null);
    }
}
