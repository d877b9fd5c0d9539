//! JSON Schema for `io.confluent.connect.json.JsonSchemaConverter`:
//! Connect schemas ⇄ JSON Schemas as Confluent's `JsonSchemaData` maps
//! them (its defaults: additional properties allowed, decimals as base64,
//! properties not listed in `required` still required unless nullable).
//!
//! Connect → JSON Schema: integers are `{"type": "integer",
//! "connect.type": "int8"|"int16"|"int32"|"int64"}`, floats `"number"` with
//! `float32`/`float64`, bytes (and Decimal) `"string"` with
//! `"connect.type": "bytes"` (base64 values); a struct is an object whose
//! properties carry their position as `connect.index`; a map with string
//! keys an object with `additionalProperties` and `"connect.type": "map"`,
//! other maps arrays of `{key, value}` objects; an optional schema is
//! `{"oneOf": [{"type": "null"}, T]}`. The name is the `title`, the doc
//! the `description`, `connect.version`, `connect.parameters` and
//! `default` keep the rest.
//!
//! JSON Schema → Connect, for schemas written by anyone: integers without
//! `connect.type` are int64, numbers float64, `oneOf`/`anyOf` of null and
//! one type an optional type, other ones a struct
//! `io.confluent.connect.json.OneOf` (fields `…OneOf.field.<n>`), enums
//! strings with `io.confluent.connect.json.Enum.<value>` parameters;
//! local `$ref`s (`#/definitions/…`, `#/$defs/…`) are followed.

use std::sync::Arc;

use base64::Engine as _;
use runnel_connect_api::{Schema, SchemaType, Struct, Value};
use runnel_schema::ParsedSchema;
use serde_json::{json, Map, Value as Json};

use super::{err, Format};
use crate::convert::ConvertError;

const CONNECT_TYPE: &str = "connect.type";
const CONNECT_VERSION: &str = "connect.version";
const CONNECT_PARAMETERS: &str = "connect.parameters";
const CONNECT_INDEX: &str = "connect.index";
const NAMESPACE: &str = "io.confluent.connect.json";
/// The Connect struct name of a `oneOf` that is not nullable-T.
pub const ONE_OF: &str = "io.confluent.connect.json.OneOf";
/// The parameter marking a Connect string made from a JSON enum.
pub const ENUM: &str = "io.confluent.connect.json.Enum";

/// `io.confluent.connect.json.JsonSchemaConverter`'s format.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSchemaFormat;

/// Reading with one writer's schema.
pub struct JsonReader {
    connect: Schema,
}

impl Format for JsonSchemaFormat {
    const TYPE: runnel_schema::SchemaType = runnel_schema::SchemaType::Json;
    const CLASS: &'static str = super::JSON_SCHEMA;
    /// Values are written as JSON whatever the schema: nothing to prepare.
    type Writer = ();
    type Reader = JsonReader;

    fn schema_text(&self, schema: &Schema) -> Result<String, ConvertError> {
        Ok(from_connect_schema(schema)?.to_string())
    }

    fn writer(&self, _parsed: &ParsedSchema) -> Result<(), ConvertError> {
        Ok(())
    }

    fn encode(
        &self,
        _writer: &(),
        schema: &Schema,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<(), ConvertError> {
        let j = to_json(Some(schema), value)?;
        serde_json::to_writer(out, &j).map_err(|e| err(format!("JSON encoding failed: {e}")))
    }

    fn reader(
        &self,
        parsed: &ParsedSchema,
        version: Option<i32>,
    ) -> Result<JsonReader, ConvertError> {
        let root = parsed.as_json().ok_or_else(|| err("not a JSON Schema"))?;
        Ok(JsonReader {
            connect: ToConnect { root }.schema(root, version, false, 0)?,
        })
    }

    fn decode(&self, reader: &JsonReader, payload: &[u8]) -> Result<(Schema, Value), ConvertError> {
        let j: Json = serde_json::from_slice(payload)
            .map_err(|e| err(format!("the record is not JSON: {e}")))?;
        Ok((reader.connect.clone(), from_json(&reader.connect, &j)?))
    }
}

// ---------------------------------------------------------------------
// Connect → JSON Schema

/// The JSON Schema `JsonSchemaConverter` registers for a Connect schema.
pub fn from_connect_schema(schema: &Schema) -> Result<Json, ConvertError> {
    from_connect(schema, None, false)
}

fn is_one_of(s: &Schema) -> bool {
    s.kind == SchemaType::Struct && s.name.as_deref() == Some(ONE_OF)
}

fn from_connect(
    s: &Schema,
    index: Option<usize>,
    ignore_optional: bool,
) -> Result<Json, ConvertError> {
    let mut m = Map::new();
    let typed = |m: &mut Map<String, Json>, t: &str, ct: Option<&str>| {
        m.insert("type".into(), json!(t));
        if let Some(ct) = ct {
            m.insert(CONNECT_TYPE.into(), json!(ct));
        }
    };
    match s.kind {
        SchemaType::Int8 => typed(&mut m, "integer", Some("int8")),
        SchemaType::Int16 => typed(&mut m, "integer", Some("int16")),
        SchemaType::Int32 => typed(&mut m, "integer", Some("int32")),
        SchemaType::Int64 => typed(&mut m, "integer", Some("int64")),
        SchemaType::Float32 => typed(&mut m, "number", Some("float32")),
        SchemaType::Float64 => typed(&mut m, "number", Some("float64")),
        SchemaType::Boolean => typed(&mut m, "boolean", None),
        SchemaType::String => {
            let symbols: Vec<&str> = s
                .parameters
                .iter()
                .filter_map(|(k, _)| k.strip_prefix(ENUM).and_then(|r| r.strip_prefix('.')))
                .collect();
            if symbols.is_empty() {
                typed(&mut m, "string", None);
            } else {
                m.insert("type".into(), json!("string"));
                m.insert("enum".into(), json!(symbols));
            }
        }
        SchemaType::Bytes => typed(&mut m, "string", Some("bytes")),
        SchemaType::Array => {
            let items = s
                .value
                .as_deref()
                .ok_or_else(|| err("an array schema without items"))?;
            typed(&mut m, "array", None);
            m.insert("items".into(), from_connect(items, None, false)?);
        }
        SchemaType::Map => {
            let (Some(k), Some(v)) = (s.key.as_deref(), s.value.as_deref()) else {
                return Err(err("a map schema without keys or values"));
            };
            if k.kind == SchemaType::String && !k.optional {
                typed(&mut m, "object", None);
                m.insert("additionalProperties".into(), from_connect(v, None, false)?);
            } else {
                typed(&mut m, "array", None);
                m.insert(
                    "items".into(),
                    json!({"type": "object", "properties": {
                        "key": from_connect(k, Some(0), false)?,
                        "value": from_connect(v, Some(1), false)?,
                    }}),
                );
            }
            m.insert(CONNECT_TYPE.into(), json!("map"));
        }
        SchemaType::Struct => {
            if is_one_of(s) || s.optional {
                let mut branches = vec![json!({"type": "null"})];
                if is_one_of(s) {
                    if !s.optional {
                        branches.clear();
                    }
                    for f in &s.fields {
                        let required = Schema {
                            optional: false,
                            ..f.schema.clone()
                        };
                        branches.push(from_connect(&required, Some(f.index), true)?);
                    }
                } else {
                    let required = Schema {
                        optional: false,
                        ..s.clone()
                    };
                    branches.push(from_connect(&required, None, false)?);
                }
                let mut one = Map::new();
                one.insert("oneOf".into(), Json::Array(branches));
                if let Some(i) = index {
                    one.insert(CONNECT_INDEX.into(), json!(i));
                }
                return Ok(Json::Object(one));
            }
            typed(&mut m, "object", None);
            let mut props = Map::new();
            for f in &s.fields {
                props.insert(
                    f.name.clone(),
                    from_connect(&f.schema, Some(f.index), false)?,
                );
            }
            m.insert("properties".into(), Json::Object(props));
        }
    }
    if let Some(n) = &s.name {
        m.insert("title".into(), json!(n));
    }
    if let Some(v) = s.version {
        m.insert(CONNECT_VERSION.into(), json!(v));
    }
    if let Some(d) = &s.doc {
        m.insert("description".into(), json!(d));
    }
    let params: Map<String, Json> = s
        .parameters
        .iter()
        .filter(|(k, _)| !k.starts_with(NAMESPACE))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    if !params.is_empty() {
        m.insert(CONNECT_PARAMETERS.into(), Json::Object(params));
    }
    if let Some(d) = &s.default {
        m.insert("default".into(), to_json(Some(s), d)?);
    }
    if s.optional && !ignore_optional {
        let mut one = Map::new();
        one.insert("oneOf".into(), json!([{"type": "null"}, Json::Object(m)]));
        if let Some(i) = index {
            one.insert(CONNECT_INDEX.into(), json!(i));
        }
        return Ok(Json::Object(one));
    }
    if let Some(i) = index {
        m.insert(CONNECT_INDEX.into(), json!(i));
    }
    Ok(Json::Object(m))
}

// ---------------------------------------------------------------------
// Values

fn b64(b: &[u8]) -> Json {
    Json::String(base64::engine::general_purpose::STANDARD.encode(b))
}

/// A Connect value as the JSON `JsonSchemaConverter` writes.
fn to_json(schema: Option<&Schema>, v: &Value) -> Result<Json, ConvertError> {
    let v = match (v, schema.and_then(|s| s.default.as_deref())) {
        (Value::Null, Some(d)) => d,
        _ => v,
    };
    let float = |f: f64| {
        serde_json::Number::from_f64(f)
            .map(Json::Number)
            .ok_or_else(|| err(format!("{f} cannot be written as JSON")))
    };
    Ok(match v {
        Value::Null => Json::Null,
        Value::Boolean(b) => json!(b),
        Value::Int8(i) => json!(i),
        Value::Int16(i) => json!(i),
        Value::Int32(i) => json!(i),
        Value::Int64(i) => json!(i),
        Value::Float32(f) => float(f64::from(*f))?,
        Value::Float64(f) => float(*f)?,
        Value::String(s) => json!(s),
        Value::Bytes(b) => b64(b),
        Value::Array(items) => {
            let item = schema.and_then(|s| s.value.as_deref());
            Json::Array(
                items
                    .iter()
                    .map(|i| to_json(item, i))
                    .collect::<Result<_, _>>()?,
            )
        }
        Value::Map(entries) => {
            let ks = schema.and_then(|s| s.key.as_deref());
            let vs = schema.and_then(|s| s.value.as_deref());
            let string_keys = match ks {
                Some(k) => k.kind == SchemaType::String && !k.optional,
                None => entries.iter().all(|(k, _)| k.as_str().is_some()),
            };
            if string_keys {
                let mut m = Map::new();
                for (k, x) in entries {
                    m.insert(k.as_str().unwrap_or_default().to_string(), to_json(vs, x)?);
                }
                Json::Object(m)
            } else {
                Json::Array(
                    entries
                        .iter()
                        .map(|(k, x)| Ok(json!({"key": to_json(ks, k)?, "value": to_json(vs, x)?})))
                        .collect::<Result<_, ConvertError>>()?,
                )
            }
        }
        Value::Struct(st) => {
            if is_one_of(&st.schema) {
                // A union is written as its one set branch.
                for f in &st.schema.fields {
                    let fv = st.values.get(f.index).unwrap_or(&Value::Null);
                    if !fv.is_null() {
                        return to_json(Some(&f.schema), fv);
                    }
                }
                return Ok(Json::Null);
            }
            let mut m = Map::new();
            for f in &st.schema.fields {
                let fv = st.values.get(f.index).unwrap_or(&Value::Null);
                m.insert(f.name.clone(), to_json(Some(&f.schema), fv)?);
            }
            Json::Object(m)
        }
    })
}

fn fits(s: &Schema, j: &Json) -> bool {
    match (s.kind, j) {
        (_, Json::Null) => s.optional,
        (SchemaType::Boolean, Json::Bool(_)) => true,
        (
            SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32 | SchemaType::Int64,
            Json::Number(n),
        ) => n.is_i64() || n.is_u64(),
        (SchemaType::Float32 | SchemaType::Float64, Json::Number(_)) => true,
        (SchemaType::String | SchemaType::Bytes, Json::String(_)) => true,
        (SchemaType::Array, Json::Array(_)) => true,
        (SchemaType::Map, Json::Object(_) | Json::Array(_)) => true,
        (SchemaType::Struct, Json::Object(_)) => true,
        _ => false,
    }
}

/// A JSON value read with its Connect schema.
fn from_json(s: &Schema, j: &Json) -> Result<Value, ConvertError> {
    if j.is_null() {
        return match (&s.default, s.optional) {
            (Some(d), _) => Ok((**d).clone()),
            (None, true) => Ok(Value::Null),
            (None, false) => Err(err(format!("a null for a required {}", s.kind.json_name()))),
        };
    }
    let bad = || err(format!("{j} is not a {}", s.kind.json_name()));
    let int = || j.as_i64().ok_or_else(bad);
    Ok(match s.kind {
        SchemaType::Boolean => Value::Boolean(j.as_bool().ok_or_else(bad)?),
        SchemaType::Int8 => Value::Int8(int()?.try_into().map_err(|_| bad())?),
        SchemaType::Int16 => Value::Int16(int()?.try_into().map_err(|_| bad())?),
        SchemaType::Int32 => Value::Int32(int()?.try_into().map_err(|_| bad())?),
        SchemaType::Int64 => Value::Int64(int()?),
        SchemaType::Float32 => Value::Float32(j.as_f64().ok_or_else(bad)? as f32),
        SchemaType::Float64 => Value::Float64(j.as_f64().ok_or_else(bad)?),
        SchemaType::String => Value::String(j.as_str().ok_or_else(bad)?.to_string()),
        SchemaType::Bytes => Value::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(j.as_str().ok_or_else(bad)?)
                .map_err(|e| err(format!("invalid base64 bytes: {e}")))?,
        ),
        SchemaType::Array => {
            let item = s.value.as_deref().ok_or_else(bad)?;
            Value::Array(
                j.as_array()
                    .ok_or_else(bad)?
                    .iter()
                    .map(|i| from_json(item, i))
                    .collect::<Result<_, _>>()?,
            )
        }
        SchemaType::Map => {
            let (Some(k), Some(v)) = (s.key.as_deref(), s.value.as_deref()) else {
                return Err(bad());
            };
            match j {
                Json::Object(o) => Value::Map(
                    o.iter()
                        .map(|(key, x)| Ok((Value::String(key.clone()), from_json(v, x)?)))
                        .collect::<Result<_, ConvertError>>()?,
                ),
                Json::Array(entries) => Value::Map(
                    entries
                        .iter()
                        .map(|e| Ok((from_json(k, &e["key"])?, from_json(v, &e["value"])?)))
                        .collect::<Result<_, ConvertError>>()?,
                ),
                _ => return Err(bad()),
            }
        }
        SchemaType::Struct if is_one_of(s) => {
            let f = s
                .fields
                .iter()
                .find(|f| {
                    fits(
                        &Schema {
                            optional: false,
                            ..f.schema.clone()
                        },
                        j,
                    )
                })
                .ok_or_else(|| err(format!("{j} fits no branch of the oneOf")))?;
            let mut st = Struct::new(Arc::new(s.clone()));
            st.values[f.index] = from_json(&f.schema, j)?;
            Value::Struct(st)
        }
        SchemaType::Struct => {
            let o = j.as_object().ok_or_else(bad)?;
            let mut st = Struct::new(Arc::new(s.clone()));
            for f in &s.fields {
                st.values[f.index] = from_json(&f.schema, o.get(&f.name).unwrap_or(&Json::Null))
                    .map_err(|e| err(format!("{} (field {})", e.message, f.name)))?;
            }
            Value::Struct(st)
        }
    })
}

// ---------------------------------------------------------------------
// JSON Schema → Connect

struct ToConnect<'a> {
    root: &'a Json,
}

impl<'a> ToConnect<'a> {
    fn deref(&self, j: &'a Json, depth: usize) -> Result<&'a Json, ConvertError> {
        let Some(r) = j.get("$ref").and_then(Json::as_str) else {
            return Ok(j);
        };
        if depth > 32 {
            return Err(err(
                "JSON Schema $refs nest deeper than 32 (a recursive schema?)",
            ));
        }
        let pointer = r.strip_prefix('#').ok_or_else(|| {
            err(format!(
                "$ref {r} is not local to the schema: not supported"
            ))
        })?;
        let target = self
            .root
            .pointer(pointer)
            .ok_or_else(|| err(format!("$ref {r} points nowhere")))?;
        self.deref(target, depth + 1)
    }

    fn schema(
        &self,
        j: &'a Json,
        version: Option<i32>,
        force_optional: bool,
        depth: usize,
    ) -> Result<Schema, ConvertError> {
        if depth > 64 {
            return Err(err(
                "a JSON Schema nested deeper than 64 (a recursive schema?)",
            ));
        }
        let j = self.deref(j, 0)?;
        let o = j
            .as_object()
            .ok_or_else(|| err(format!("unsupported JSON Schema {j}")))?;
        let connect_type = o.get(CONNECT_TYPE).and_then(Json::as_str);
        let mut s = if let Some(values) = o.get("enum").and_then(Json::as_array) {
            let mut s = Schema::string().param(ENUM, "");
            for v in values {
                let sym = v.as_str().map_or_else(
                    || {
                        if v.is_null() {
                            "<NULL>".to_string()
                        } else {
                            v.to_string()
                        }
                    },
                    str::to_string,
                );
                s = s.param(format!("{ENUM}.{sym}"), sym);
            }
            s
        } else if let Some(branches) = o
            .get("oneOf")
            .or_else(|| o.get("anyOf"))
            .and_then(Json::as_array)
        {
            if branches.len() == 1 {
                return self.schema(&branches[0], version, force_optional, depth + 1);
            }
            let is_null = |b: &Json| {
                self.deref(b, 0)
                    .is_ok_and(|b| b.get("type").and_then(Json::as_str) == Some("null"))
            };
            if branches.len() == 2 {
                if let Some(other) = branches.iter().find(|b| !is_null(b)) {
                    if branches.iter().any(is_null) {
                        return self.schema(other, version, true, depth + 1);
                    }
                }
            }
            let mut u = Schema::of(SchemaType::Struct).named(ONE_OF);
            let mut n = 0;
            for b in branches {
                if is_null(b) {
                    u.optional = true;
                } else {
                    u = u.field(
                        format!("{ONE_OF}.field.{n}"),
                        self.schema(b, None, true, depth + 1)?,
                    );
                    n += 1;
                }
            }
            u
        } else if let Some(Json::Array(types)) = o.get("type") {
            // `"type": ["null", "string"]`: a oneOf of the types.
            let branches: Vec<Json> = types
                .iter()
                .map(|t| {
                    let mut b = o.clone();
                    b.insert("type".into(), t.clone());
                    Json::Object(b)
                })
                .collect();
            return ToConnectLocal { root: self.root }.schema(
                &json!({ "oneOf": branches }),
                version,
                force_optional,
                depth + 1,
            );
        } else {
            match o.get("type").and_then(Json::as_str) {
                Some("boolean") => Schema::boolean(),
                Some("integer") => match connect_type {
                    Some("int8") => Schema::int8(),
                    Some("int16") => Schema::int16(),
                    Some("int32") => Schema::int32(),
                    _ => Schema::int64(),
                },
                Some("number") => match connect_type {
                    Some("int8") => Schema::int8(),
                    Some("int16") => Schema::int16(),
                    Some("int32") => Schema::int32(),
                    Some("int64") => Schema::int64(),
                    Some("float32") => Schema::float32(),
                    Some("bytes") => Schema::bytes(),
                    _ => Schema::float64(),
                },
                Some("string") => match connect_type {
                    Some("bytes") => Schema::bytes(),
                    _ => Schema::string(),
                },
                Some("array") => {
                    let items = o
                        .get("items")
                        .ok_or_else(|| err("Array schema did not specify the items type"))?;
                    let items_obj = self.deref(items, 0)?;
                    match (connect_type, items_obj.get("properties")) {
                        (Some("map"), Some(props)) => {
                            let k = props
                                .get("key")
                                .ok_or_else(|| err("a map entry without key"))?;
                            let v = props
                                .get("value")
                                .ok_or_else(|| err("a map entry without value"))?;
                            Schema::map(
                                self.schema(k, None, false, depth + 1)?,
                                self.schema(v, None, false, depth + 1)?,
                            )
                        }
                        _ => Schema::array(self.schema(items, None, false, depth + 1)?),
                    }
                }
                Some("object") if connect_type == Some("map") => {
                    let values = o
                        .get("additionalProperties")
                        .ok_or_else(|| err("a map without additionalProperties"))?;
                    Schema::map(
                        Schema::string(),
                        self.schema(values, None, false, depth + 1)?,
                    )
                }
                Some("object") => {
                    let mut s = Schema::of(SchemaType::Struct);
                    // Confluent's default (`use.optional.for.nonrequired=false`):
                    // a property is required unless its schema is nullable.
                    let mut props: Vec<(usize, &String, &Json)> = o
                        .get("properties")
                        .and_then(Json::as_object)
                        .into_iter()
                        .flatten()
                        .enumerate()
                        .map(|(i, (k, v))| {
                            let index = self
                                .deref(v, 0)
                                .ok()
                                .and_then(|d| v.get(CONNECT_INDEX).or_else(|| d.get(CONNECT_INDEX)))
                                .and_then(Json::as_u64)
                                .and_then(|x| usize::try_from(x).ok())
                                .unwrap_or(i);
                            (index, k, v)
                        })
                        .collect();
                    props.sort_by_key(|(i, _, _)| *i);
                    for (_, k, v) in props {
                        s = s.field(k.clone(), self.schema(v, None, false, depth + 1)?);
                    }
                    s
                }
                Some(other) => {
                    return Err(err(format!(
                        "JSON Schema type {other} has no Connect schema"
                    )))
                }
                None => return Err(err(format!("unsupported JSON Schema {j}"))),
            }
        };
        if let Some(t) = o.get("title").and_then(Json::as_str) {
            if s.name.is_none() {
                s.name = Some(t.to_string());
            }
        }
        match o.get(CONNECT_VERSION).and_then(Json::as_i64) {
            Some(v) => s.version = i32::try_from(v).ok(),
            None => {
                if version.is_some() {
                    s.version = version;
                }
            }
        }
        if let Some(d) = o.get("description").and_then(Json::as_str) {
            s.doc = Some(d.to_string());
        }
        if let Some(p) = o.get(CONNECT_PARAMETERS).and_then(Json::as_object) {
            for (k, v) in p {
                s = s.param(
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                );
            }
        }
        if let Some(d) = o.get("default") {
            if !d.is_null() {
                let plain = Schema {
                    default: None,
                    optional: true,
                    ..s.clone()
                };
                if let Ok(v) = from_json(&plain, d) {
                    s.default = Some(Box::new(v));
                }
            }
        }
        if force_optional {
            s.optional = true;
        }
        Ok(s)
    }
}

/// [`ToConnect`] over a schema value that does not live as long as the
/// document (a branch of `"type": [...]`): the same conversion.
struct ToConnectLocal<'a> {
    root: &'a Json,
}

impl ToConnectLocal<'_> {
    fn schema(
        &self,
        j: &Json,
        version: Option<i32>,
        force_optional: bool,
        depth: usize,
    ) -> Result<Schema, ConvertError> {
        let both = json!({"root": self.root, "branch": j});
        let t = ToConnect {
            root: &both["root"],
        };
        t.schema(&both["branch"], version, force_optional, depth)
    }
}

#[cfg(test)]
mod tests;
