//! Avro for `io.confluent.connect.avro.AvroConverter`: Connect schemas ⇄
//! Avro schemas as Confluent's `AvroData` maps them (with its default
//! settings: `connect.meta.data=true`, no enhanced schema support), and
//! values through apache-avro's binary encoding.
//!
//! Connect → Avro:
//! * int8 / int16 are `int` with `"connect.type": "int8"|"int16"`; int32
//!   `int`, int64 `long`, float32 `float`, float64 `double`, booleans,
//!   strings, bytes as themselves.
//! * A struct is a record named after the schema's name (the namespace is
//!   what comes before the last dot) or `io.confluent.connect.avro.
//!   ConnectDefault` (`ConnectDefault2`, … for further unnamed ones). A
//!   struct met again is referred to by name.
//! * An optional schema is the union `["null", T]` with `"default": null`
//!   on its field; optional with a default, `[T, "null"]` with that
//!   default.
//! * Maps with string keys are Avro maps; other maps arrays of
//!   `io.confluent.connect.avro.MapEntry` records `{key, value}`.
//! * Metadata as properties of the type: `connect.name`, `connect.version`,
//!   `connect.doc`, `connect.parameters` (an object of strings),
//!   `connect.default`, `connect.type`.
//! * Logical types: Decimal is `bytes` with `logicalType: decimal`,
//!   `scale`, and `precision` from the `connect.decimal.precision`
//!   parameter (64 without it); Date `int` + `date`, Time `int` +
//!   `time-millis`, Timestamp `long` + `timestamp-millis`.
//!
//! Avro → Connect, for schemas written by anyone: records become structs
//! named by `connect.name` or the record's full name; `["null", T]` an
//! optional T; other unions a struct `io.confluent.connect.avro.Union`
//! with one optional field per branch (named by the record, enum or fixed
//! short name, or the type name); enums strings with the parameters
//! `io.confluent.connect.avro.Enum` (the enum's full name) and
//! `io.confluent.connect.avro.Enum.<symbol>`; fixed bytes with
//! `connect.fixed.size`; field defaults become Connect defaults; logical
//! types as above, other logical types as their underlying type (uuid a
//! string, timestamp-micros a long). Recursive records are refused:
//! Connect schemas cannot refer to themselves.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::types::Value as AvroValue;
use runnel_connect_api::{logical, Schema, SchemaType, Struct, Value};
use runnel_schema::{ParsedSchema, Resolved};
use serde_json::{json, Map, Value as Json};

use super::{err, Format};
use crate::convert::ConvertError;

const NAMESPACE: &str = "io.confluent.connect.avro";
const DEFAULT_NAME: &str = "ConnectDefault";
const DEFAULT_FULL_NAME: &str = "io.confluent.connect.avro.ConnectDefault";
const MAP_ENTRY: &str = "MapEntry";
const CONNECT_NAME: &str = "connect.name";
const CONNECT_DOC: &str = "connect.doc";
const CONNECT_VERSION: &str = "connect.version";
const CONNECT_DEFAULT: &str = "connect.default";
const CONNECT_PARAMETERS: &str = "connect.parameters";
const CONNECT_TYPE: &str = "connect.type";
const CONNECT_INTERNAL_TYPE: &str = "connect.internal.type";
/// The Connect struct name of an Avro union that is not `["null", T]`.
pub const UNION: &str = "io.confluent.connect.avro.Union";
/// The parameter naming an Avro enum a Connect string came from.
pub const ENUM: &str = "io.confluent.connect.avro.Enum";
const RECORD_DOC: &str = "io.confluent.connect.avro.record.doc";
const FIELD_DOC_PREFIX: &str = "io.confluent.connect.avro.field.doc.";
const ENUM_DOC_PREFIX: &str = "io.confluent.connect.avro.enum.doc.";
const ENUM_DEFAULT_PREFIX: &str = "io.confluent.connect.avro.enum.default.";
const FIELD_DEFAULT_FLAG: &str = "io.confluent.connect.avro.field.default";
const DECIMAL_PRECISION: &str = "connect.decimal.precision";
const FIXED_SIZE: &str = "connect.fixed.size";
const PRECISION_DEFAULT: i64 = 64;

/// `io.confluent.connect.avro.AvroConverter`'s format.
#[derive(Debug, Clone, Copy, Default)]
pub struct AvroFormat;

/// Writing with one Avro schema.
pub struct AvroWriter {
    tree: Tree,
    schema: apache_avro::Schema,
}

/// Reading with one writer's schema.
pub struct AvroReader {
    schema: apache_avro::Schema,
    connect: Schema,
    conv: Conv,
}

impl Format for AvroFormat {
    const TYPE: runnel_schema::SchemaType = runnel_schema::SchemaType::Avro;
    const CLASS: &'static str = super::AVRO;
    type Writer = AvroWriter;
    type Reader = AvroReader;

    fn schema_text(&self, schema: &Schema) -> Result<String, ConvertError> {
        Ok(from_connect_schema(schema)?.to_string())
    }

    fn writer(&self, parsed: &ParsedSchema) -> Result<AvroWriter, ConvertError> {
        Ok(AvroWriter {
            tree: Tree::of(parsed)?,
            schema: avro_schema(parsed)?,
        })
    }

    fn encode(
        &self,
        writer: &AvroWriter,
        schema: &Schema,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<(), ConvertError> {
        let datum = writer
            .tree
            .to_avro(&writer.tree.root, Some(schema), value, "")?;
        let bytes = apache_avro::to_avro_datum(&writer.schema, datum)
            .map_err(|e| err(format!("Avro encoding failed: {e}")))?;
        out.extend_from_slice(&bytes);
        Ok(())
    }

    fn reader(
        &self,
        parsed: &ParsedSchema,
        version: Option<i32>,
    ) -> Result<AvroReader, ConvertError> {
        let tree = Tree::of(parsed)?;
        let (connect, conv) = tree.to_connect(&tree.root, false, None, version, &mut Vec::new())?;
        Ok(AvroReader {
            schema: avro_schema(parsed)?,
            connect,
            conv,
        })
    }

    fn decode(&self, reader: &AvroReader, payload: &[u8]) -> Result<(Schema, Value), ConvertError> {
        let mut input = payload;
        let datum = apache_avro::from_avro_datum(&reader.schema, &mut input, None)
            .map_err(|e| err(format!("Avro decoding failed: {e}")))?;
        Ok((reader.connect.clone(), from_avro(&reader.conv, datum)?))
    }
}

fn avro_schema(parsed: &ParsedSchema) -> Result<apache_avro::Schema, ConvertError> {
    parsed
        .as_avro()
        .cloned()
        .ok_or_else(|| err("not an Avro schema"))
}

// ---------------------------------------------------------------------
// Connect → Avro schema

/// The Avro schema (as JSON) `AvroConverter` registers for a Connect
/// schema.
pub fn from_connect_schema(schema: &Schema) -> Result<Json, ConvertError> {
    ToAvro::default().schema(schema, false)
}

#[derive(Default)]
struct ToAvro {
    /// Required schemas already written as named types, with how they are
    /// referred to from then on.
    seen: Vec<(Schema, Json)>,
    unnamed: usize,
}

/// `(namespace, name)` of a full name, split at the last dot.
fn split_name(full: &str) -> (Option<&str>, &str) {
    match full.rfind('.') {
        Some(i) => (Some(&full[..i]), &full[i + 1..]),
        None => (None, full),
    }
}

fn is_union(s: &Schema) -> bool {
    s.kind == SchemaType::Struct && s.name.as_deref() == Some(UNION)
}

fn decimal_precision(s: &Schema) -> i64 {
    s.parameter(DECIMAL_PRECISION)
        .and_then(|p| p.parse().ok())
        .unwrap_or(PRECISION_DEFAULT)
}

fn required(s: &Schema) -> Schema {
    Schema {
        optional: false,
        ..s.clone()
    }
}

fn record_json(namespace: Option<&str>, name: &str) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("type".into(), json!("record"));
    m.insert("name".into(), json!(name));
    if let Some(ns) = namespace {
        m.insert("namespace".into(), json!(ns));
    }
    m
}

impl ToAvro {
    fn name_or_default(&mut self, name: Option<&str>) -> (Option<String>, String) {
        match name {
            Some(n) => {
                let (ns, short) = split_name(n);
                (ns.map(str::to_string), short.to_string())
            }
            None => {
                self.unnamed += 1;
                let suffix = if self.unnamed > 1 {
                    self.unnamed.to_string()
                } else {
                    String::new()
                };
                (
                    Some(NAMESPACE.to_string()),
                    format!("{DEFAULT_NAME}{suffix}"),
                )
            }
        }
    }

    fn field(&mut self, name: &str, fs: &Schema, doc: Option<&str>) -> Result<Json, ConvertError> {
        let ty = self.schema(fs, false)?;
        let mut f = Map::new();
        f.insert("name".into(), json!(name));
        // A non-null default of a `["null", …]` union is not valid Avro:
        // Confluent ignores it, so does this.
        let null_first = matches!(&ty, Json::Array(b) if b.first() == Some(&json!("null")));
        f.insert("type".into(), ty);
        if let Some(d) = doc {
            f.insert("doc".into(), json!(d));
        }
        match &fs.default {
            Some(d) if !null_first || d.is_null() => {
                f.insert("default".into(), default_json(fs, d)?);
            }
            _ if fs.optional => {
                f.insert("default".into(), Json::Null);
            }
            _ => {}
        }
        Ok(Json::Object(f))
    }

    fn schema(&mut self, s: &Schema, ignore_optional: bool) -> Result<Json, ConvertError> {
        if !s.optional && !is_union(s) {
            if let Some((_, reference)) = self.seen.iter().find(|(k, _)| k == s) {
                return Ok(reference.clone());
            }
        }
        let mut connect_type = None;
        let mut named: Option<String> = None;
        let mut base: Map<String, Json>;
        let prim = |t: &str| {
            let mut m = Map::new();
            m.insert("type".into(), json!(t));
            m
        };
        match s.kind {
            SchemaType::Int8 => {
                connect_type = Some("int8");
                base = prim("int");
            }
            SchemaType::Int16 => {
                connect_type = Some("int16");
                base = prim("int");
            }
            SchemaType::Int32 => base = prim("int"),
            SchemaType::Int64 => base = prim("long"),
            SchemaType::Float32 => base = prim("float"),
            SchemaType::Float64 => base = prim("double"),
            SchemaType::Boolean => base = prim("boolean"),
            SchemaType::String => base = prim("string"),
            SchemaType::Bytes => {
                base = prim("bytes");
                if s.name.as_deref() == Some(logical::DECIMAL) {
                    let scale: i64 = s
                        .parameter(logical::SCALE_PARAM)
                        .and_then(|p| p.parse().ok())
                        .ok_or_else(|| err("a Decimal schema without a valid scale parameter"))?;
                    base.insert("scale".into(), json!(scale));
                    base.insert("precision".into(), json!(decimal_precision(s)));
                }
            }
            SchemaType::Array => {
                let items = s
                    .value
                    .as_deref()
                    .ok_or_else(|| err("an array schema without items"))?;
                base = prim("array");
                base.insert("items".into(), self.schema(items, false)?);
            }
            SchemaType::Map => {
                let (Some(k), Some(v)) = (s.key.as_deref(), s.value.as_deref()) else {
                    return Err(err("a map schema without keys or values"));
                };
                if k.kind == SchemaType::String && !k.optional {
                    base = prim("map");
                    base.insert("values".into(), self.schema(v, false)?);
                } else {
                    let mut entry = match &s.name {
                        None => record_json(Some(NAMESPACE), MAP_ENTRY),
                        Some(n) => {
                            let (ns, short) = split_name(n);
                            let mut r = record_json(ns, short);
                            r.insert(CONNECT_INTERNAL_TYPE.into(), json!(MAP_ENTRY));
                            r
                        }
                    };
                    let full = match &s.name {
                        None => format!("{NAMESPACE}.{MAP_ENTRY}"),
                        Some(n) => n.clone(),
                    };
                    let fields = vec![self.field("key", k, None)?, self.field("value", v, None)?];
                    entry.insert("fields".into(), Json::Array(fields));
                    base = prim("array");
                    base.insert("items".into(), Json::Object(entry));
                    if !s.optional {
                        self.seen
                            .push((s.clone(), json!({"type": "array", "items": full})));
                    }
                }
            }
            SchemaType::Struct => {
                if is_union(s) {
                    let mut branches = Vec::new();
                    if s.optional {
                        branches.push(json!("null"));
                    }
                    for f in &s.fields {
                        branches.push(self.schema(&required(&f.schema), true)?);
                    }
                    return Ok(Json::Array(branches));
                }
                if s.optional {
                    let inner = self.schema(&required(s), false)?;
                    return Ok(json!(["null", inner]));
                }
                let (ns, short) = self.name_or_default(s.name.as_deref());
                let full = match &ns {
                    Some(ns) => format!("{ns}.{short}"),
                    None => short.clone(),
                };
                base = record_json(ns.as_deref(), &short);
                if let Some(doc) = s.parameter(RECORD_DOC) {
                    base.insert("doc".into(), json!(doc));
                }
                let mut fields = Vec::new();
                for f in &s.fields {
                    let doc = s.parameter(&format!("{FIELD_DOC_PREFIX}{}", f.name));
                    fields.push(self.field(&f.name, &f.schema, doc)?);
                }
                base.insert("fields".into(), Json::Array(fields));
                named = Some(full);
            }
        }
        // Metadata: where Connect keeps what Avro has no place for.
        if let Some(doc) = &s.doc {
            base.insert(CONNECT_DOC.into(), json!(doc));
        }
        if let Some(v) = s.version {
            base.insert(CONNECT_VERSION.into(), json!(v));
        }
        if !s.parameters.is_empty() {
            let p: Map<String, Json> = s
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            base.insert(CONNECT_PARAMETERS.into(), Json::Object(p));
        }
        if let Some(d) = &s.default {
            if s.parameter(FIELD_DEFAULT_FLAG).is_none() {
                base.insert(CONNECT_DEFAULT.into(), default_json(s, d)?);
            }
        }
        if let Some(n) = &s.name {
            base.insert(CONNECT_NAME.into(), json!(n));
        }
        if let Some(t) = connect_type {
            base.insert(CONNECT_TYPE.into(), json!(t));
        }
        let logical = match s.name.as_deref() {
            Some(logical::DECIMAL) if s.kind == SchemaType::Bytes => Some("decimal"),
            Some(logical::DATE) if s.kind == SchemaType::Int32 => Some("date"),
            Some(logical::TIME) if s.kind == SchemaType::Int32 => Some("time-millis"),
            Some(logical::TIMESTAMP) if s.kind == SchemaType::Int64 => Some("timestamp-millis"),
            _ => None,
        };
        if let Some(l) = logical {
            base.insert("logicalType".into(), json!(l));
        }
        for (k, v) in &s.parameters {
            if k.starts_with("avro") {
                base.insert(k.clone(), json!(v));
            }
        }
        let base = if base.len() == 1 {
            base.get("type").cloned().unwrap_or(Json::Object(base))
        } else {
            Json::Object(base)
        };
        if let Some(full) = named {
            self.seen.push((s.clone(), json!(full)));
        }
        Ok(
            match (s.optional && !ignore_optional, s.default.is_some()) {
                (false, _) => base,
                (true, true) => json!([base, "null"]),
                (true, false) => json!(["null", base]),
            },
        )
    }
}

/// A Connect default as Avro writes defaults in JSON (bytes as a string
/// of ISO-8859-1 characters).
fn default_json(s: &Schema, v: &Value) -> Result<Json, ConvertError> {
    Ok(match v {
        Value::Null => Json::Null,
        Value::Boolean(b) => json!(b),
        Value::Int8(i) => json!(i),
        Value::Int16(i) => json!(i),
        Value::Int32(i) => json!(i),
        Value::Int64(i) => json!(i),
        Value::Float32(f) => json!(f),
        Value::Float64(f) => json!(f),
        Value::String(t) => json!(t),
        Value::Bytes(b) => Json::String(b.iter().map(|&c| char::from(c)).collect()),
        Value::Array(items) => {
            let item = s.value.as_deref().unwrap_or(s);
            Json::Array(
                items
                    .iter()
                    .map(|i| default_json(item, i))
                    .collect::<Result<_, _>>()?,
            )
        }
        Value::Map(entries) => {
            let (k, vs) = (
                s.key.as_deref().unwrap_or(s),
                s.value.as_deref().unwrap_or(s),
            );
            if k.kind == SchemaType::String && !k.optional {
                let mut m = Map::new();
                for (key, val) in entries {
                    m.insert(
                        key.as_str().unwrap_or_default().to_string(),
                        default_json(vs, val)?,
                    );
                }
                Json::Object(m)
            } else {
                Json::Array(
                    entries
                        .iter()
                        .map(|(key, val)| {
                            Ok(json!({"key": default_json(k, key)?, "value": default_json(vs, val)?}))
                        })
                        .collect::<Result<_, ConvertError>>()?,
                )
            }
        }
        Value::Struct(st) => {
            let mut m = Map::new();
            for f in &st.schema.fields {
                let fv = st.values.get(f.index).unwrap_or(&Value::Null);
                m.insert(f.name.clone(), default_json(&f.schema, fv)?);
            }
            Json::Object(m)
        }
    })
}

// ---------------------------------------------------------------------
// Avro schemas as JSON, with every property kept (apache-avro drops the
// properties of primitive types, where Connect's metadata lives).

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    props: Map<String, Json>,
}

#[derive(Debug, Clone)]
enum Kind {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Record {
        name: String,
        doc: Option<String>,
        fields: Vec<AvroField>,
    },
    Enum {
        name: String,
        doc: Option<String>,
        symbols: Vec<String>,
        default: Option<String>,
    },
    Fixed {
        name: String,
        size: usize,
    },
    Array(Box<Node>),
    Map(Box<Node>),
    Union(Vec<Node>),
    /// A named type referred to by its full name.
    Ref(String),
}

#[derive(Debug, Clone)]
struct AvroField {
    name: String,
    doc: Option<String>,
    default: Option<Json>,
    node: Node,
}

/// A parsed Avro schema and the named types it (and its references)
/// define.
struct Tree {
    root: Node,
    named: HashMap<String, Node>,
}

fn full_name(name: &str, ns: Option<&str>) -> String {
    match ns {
        Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_string(),
    }
}

fn primitive(name: &str) -> Option<Kind> {
    Some(match name {
        "null" => Kind::Null,
        "boolean" => Kind::Boolean,
        "int" => Kind::Int,
        "long" => Kind::Long,
        "float" => Kind::Float,
        "double" => Kind::Double,
        "bytes" => Kind::Bytes,
        "string" => Kind::String,
        _ => return None,
    })
}

const STRUCTURAL: [&str; 11] = [
    "type",
    "name",
    "namespace",
    "fields",
    "items",
    "values",
    "symbols",
    "size",
    "doc",
    "aliases",
    "default",
];

impl Tree {
    fn of(parsed: &ParsedSchema) -> Result<Tree, ConvertError> {
        let mut named = HashMap::new();
        fn refs(list: &[Resolved], named: &mut HashMap<String, Node>) -> Result<(), ConvertError> {
            for r in list {
                refs(&r.references, named)?;
                let j: Json = serde_json::from_str(&r.schema)
                    .map_err(|e| err(format!("reference {}: {e}", r.name)))?;
                parse_node(&j, None, named)?;
            }
            Ok(())
        }
        refs(parsed.references(), &mut named)?;
        let j: Json = serde_json::from_str(parsed.text())
            .map_err(|e| err(format!("Avro schema is not JSON: {e}")))?;
        let root = parse_node(&j, None, &mut named)?;
        Ok(Tree { root, named })
    }

    fn resolve<'a>(&'a self, node: &'a Node) -> Result<&'a Node, ConvertError> {
        match &node.kind {
            Kind::Ref(name) => self
                .named
                .get(name)
                .ok_or_else(|| err(format!("unknown Avro type {name}"))),
            _ => Ok(node),
        }
    }
}

fn parse_node(
    j: &Json,
    ns: Option<&str>,
    named: &mut HashMap<String, Node>,
) -> Result<Node, ConvertError> {
    let plain = |kind| Node {
        kind,
        props: Map::new(),
    };
    match j {
        Json::String(s) => Ok(plain(match primitive(s) {
            Some(k) => k,
            None => Kind::Ref(full_name(s, ns)),
        })),
        Json::Array(branches) => Ok(plain(Kind::Union(
            branches
                .iter()
                .map(|b| parse_node(b, ns, named))
                .collect::<Result<_, _>>()?,
        ))),
        Json::Object(o) => {
            let ty = o
                .get("type")
                .ok_or_else(|| err("an Avro schema without a type"))?;
            let Some(ty) = ty.as_str() else {
                return parse_node(ty, ns, named);
            };
            let props: Map<String, Json> = o
                .iter()
                .filter(|(k, _)| !STRUCTURAL.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let str_of = |k: &str| o.get(k).and_then(Json::as_str).map(str::to_string);
            let define_name = || -> Result<String, ConvertError> {
                let name = str_of("name").ok_or_else(|| err("a named Avro type without a name"))?;
                let own_ns = str_of("namespace");
                Ok(full_name(&name, own_ns.as_deref().or(ns)))
            };
            let kind = match ty {
                "record" | "error" => {
                    let name = define_name()?;
                    let inner_ns = split_name(&name).0.map(str::to_string);
                    let mut fields = Vec::new();
                    for f in o
                        .get("fields")
                        .and_then(Json::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let fname = f
                            .get("name")
                            .and_then(Json::as_str)
                            .ok_or_else(|| err("an Avro field without a name"))?;
                        let fty = f
                            .get("type")
                            .ok_or_else(|| err(format!("Avro field {fname} without a type")))?;
                        fields.push(AvroField {
                            name: fname.to_string(),
                            doc: f.get("doc").and_then(Json::as_str).map(str::to_string),
                            default: f.get("default").cloned(),
                            node: parse_node(fty, inner_ns.as_deref(), named)?,
                        });
                    }
                    Kind::Record {
                        name,
                        doc: str_of("doc"),
                        fields,
                    }
                }
                "enum" => Kind::Enum {
                    name: define_name()?,
                    doc: str_of("doc"),
                    symbols: o
                        .get("symbols")
                        .and_then(Json::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Json::as_str)
                        .map(str::to_string)
                        .collect(),
                    default: str_of("default"),
                },
                "fixed" => Kind::Fixed {
                    name: define_name()?,
                    size: o
                        .get("size")
                        .and_then(Json::as_u64)
                        .and_then(|s| usize::try_from(s).ok())
                        .ok_or_else(|| err("a fixed Avro type without a size"))?,
                },
                "array" => {
                    let items = o
                        .get("items")
                        .ok_or_else(|| err("an Avro array without items"))?;
                    Kind::Array(Box::new(parse_node(items, ns, named)?))
                }
                "map" => {
                    let values = o
                        .get("values")
                        .ok_or_else(|| err("an Avro map without values"))?;
                    Kind::Map(Box::new(parse_node(values, ns, named)?))
                }
                other => match primitive(other) {
                    Some(k) => k,
                    None => Kind::Ref(full_name(other, ns)),
                },
            };
            let node = Node { kind, props };
            if let Kind::Record { name, .. } | Kind::Enum { name, .. } | Kind::Fixed { name, .. } =
                &node.kind
            {
                named.insert(name.clone(), node.clone());
            }
            Ok(node)
        }
        other => Err(err(format!("not an Avro schema: {other}"))),
    }
}

// ---------------------------------------------------------------------
// Avro schema → Connect schema, with the plan to read values

/// How one Avro value becomes a Connect value.
#[derive(Debug, Clone)]
enum Conv {
    Boolean,
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    String,
    Bytes,
    Array(Box<Conv>),
    /// An Avro map (string keys).
    Map(Box<Conv>),
    /// An array of `{key, value}` records.
    Entries(Box<Conv>, Box<Conv>),
    Struct(Arc<Schema>, Vec<Conv>),
    /// A general union: per branch, the struct field it fills (none for
    /// null).
    Union(Arc<Schema>, Vec<Option<(usize, Conv)>>),
}

fn is_decimal(node: &Node) -> bool {
    node.props.get("logicalType").and_then(Json::as_str) == Some("decimal")
}

fn prop_str<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.props.get(key).and_then(Json::as_str)
}

impl Tree {
    fn member_name(&self, node: &Node) -> Result<String, ConvertError> {
        let node = self.resolve(node)?;
        Ok(match &node.kind {
            Kind::Record { name, .. } | Kind::Enum { name, .. } | Kind::Fixed { name, .. } => {
                split_name(name).1.to_string()
            }
            Kind::Null => "null".into(),
            Kind::Boolean => "boolean".into(),
            Kind::Int => "int".into(),
            Kind::Long => "long".into(),
            Kind::Float => "float".into(),
            Kind::Double => "double".into(),
            Kind::Bytes => "bytes".into(),
            Kind::String => "string".into(),
            Kind::Array(_) => "array".into(),
            Kind::Map(_) => "map".into(),
            Kind::Union(_) => "union".into(),
            Kind::Ref(n) => n.clone(),
        })
    }

    /// The Connect schema of an Avro schema, and how to read its values.
    /// `stack` holds the records being converted (a recursive one is an
    /// error).
    fn to_connect(
        &self,
        node: &Node,
        force_optional: bool,
        field_default: Option<&Json>,
        version: Option<i32>,
        stack: &mut Vec<String>,
    ) -> Result<(Schema, Conv), ConvertError> {
        let node = self.resolve(node)?;
        let logical_type = prop_str(node, "logicalType");
        let mut s;
        let mut conv;
        let mut record_fields = None;
        match &node.kind {
            Kind::Null => {
                return Err(err(
                    "Standalone null schemas are not supported by this converter",
                ))
            }
            Kind::Boolean => {
                s = Schema::boolean();
                conv = Conv::Boolean;
            }
            Kind::Bytes | Kind::Fixed { .. } => {
                if is_decimal(node) {
                    let scale = node.props.get("scale").and_then(Json::as_i64).unwrap_or(0);
                    let scale =
                        i32::try_from(scale).map_err(|_| err("a decimal scale out of range"))?;
                    s = Schema::decimal(scale);
                    if let Some(p) = node.props.get("precision").and_then(Json::as_i64) {
                        if p != PRECISION_DEFAULT {
                            s = s.param(DECIMAL_PRECISION, p.to_string());
                        }
                    }
                } else {
                    s = Schema::bytes();
                }
                if let Kind::Fixed { size, .. } = &node.kind {
                    s = s.param(FIXED_SIZE, size.to_string());
                }
                conv = Conv::Bytes;
            }
            Kind::Double => {
                s = Schema::float64();
                conv = Conv::Float64;
            }
            Kind::Float => {
                s = Schema::float32();
                conv = Conv::Float32;
            }
            Kind::Int => match (logical_type, prop_str(node, CONNECT_TYPE)) {
                (Some("date"), _) => {
                    s = Schema::date();
                    conv = Conv::Int32;
                }
                (Some("time-millis"), _) => {
                    s = Schema::time();
                    conv = Conv::Int32;
                }
                (Some(_), _) | (None, None) => {
                    s = Schema::int32();
                    conv = Conv::Int32;
                }
                (None, Some("int8")) => {
                    s = Schema::int8();
                    conv = Conv::Int8;
                }
                (None, Some("int16")) => {
                    s = Schema::int16();
                    conv = Conv::Int16;
                }
                (None, Some(other)) => {
                    return Err(err(format!(
                        "Connect type annotation {other} for an Avro int is not int8 or int16"
                    )))
                }
            },
            Kind::Long => {
                s = if logical_type == Some("timestamp-millis") {
                    Schema::timestamp()
                } else {
                    Schema::int64()
                };
                conv = Conv::Int64;
            }
            Kind::String => {
                s = Schema::string();
                conv = Conv::String;
            }
            Kind::Array(items) => {
                let items_node = self.resolve(items)?;
                let entry = match &items_node.kind {
                    Kind::Record { name, fields, .. }
                        if name == &format!("{NAMESPACE}.{MAP_ENTRY}")
                            || prop_str(items_node, CONNECT_INTERNAL_TYPE) == Some(MAP_ENTRY) =>
                    {
                        Some(fields)
                    }
                    _ => None,
                };
                match entry {
                    Some(fields) => {
                        let (Some(k), Some(v)) = (
                            fields.iter().find(|f| f.name == "key"),
                            fields.iter().find(|f| f.name == "value"),
                        ) else {
                            return Err(err("Found map encoded as array of key-value pairs, but array elements do not match the expected format."));
                        };
                        let (ks, kc) = self.to_connect(&k.node, false, None, None, stack)?;
                        let (vs, vc) = self.to_connect(&v.node, false, None, None, stack)?;
                        s = Schema::map(ks, vs);
                        conv = Conv::Entries(Box::new(kc), Box::new(vc));
                    }
                    None => {
                        let (is, ic) = self.to_connect(items, false, None, None, stack)?;
                        s = Schema::array(is);
                        conv = Conv::Array(Box::new(ic));
                    }
                }
            }
            Kind::Map(values) => {
                let (vs, vc) = self.to_connect(values, false, None, None, stack)?;
                s = Schema::map(Schema::string(), vs);
                conv = Conv::Map(Box::new(vc));
            }
            Kind::Record {
                name, doc, fields, ..
            } => {
                if stack.contains(name) {
                    return Err(err(format!(
                        "Avro record {name} refers to itself: Connect schemas cannot be recursive"
                    )));
                }
                stack.push(name.clone());
                s = Schema::of(SchemaType::Struct);
                if let Some(d) = doc {
                    s = s.param(RECORD_DOC, d.clone());
                }
                let mut convs = Vec::new();
                for f in fields {
                    if let Some(d) = &f.doc {
                        s = s.param(format!("{FIELD_DOC_PREFIX}{}", f.name), d.clone());
                    }
                    let (fs, fc) =
                        self.to_connect(&f.node, false, f.default.as_ref(), None, stack)?;
                    s = s.field(f.name.clone(), fs);
                    convs.push(fc);
                }
                stack.pop();
                record_fields = Some(convs);
                conv = Conv::Boolean; // replaced below, once the schema is complete
            }
            Kind::Enum {
                name,
                doc,
                symbols,
                default,
            } => {
                s = Schema::string();
                let short = split_name(name).1;
                if let Some(d) = doc {
                    s = s.param(format!("{ENUM_DOC_PREFIX}{short}"), d.clone());
                }
                if let Some(d) = default {
                    s = s.param(format!("{ENUM_DEFAULT_PREFIX}{short}"), d.clone());
                }
                s = s.param(ENUM, name.clone());
                for sym in symbols {
                    s = s.param(format!("{ENUM}.{sym}"), sym.clone());
                }
                conv = Conv::String;
            }
            Kind::Union(branches) => {
                let is_null = |b: &Node| matches!(b.kind, Kind::Null);
                if branches.len() == 1 {
                    return self.to_connect(&branches[0], force_optional, None, None, stack);
                }
                if branches.len() == 2 && branches.iter().any(is_null) {
                    if let Some(other) = branches.iter().find(|b| !is_null(b)) {
                        return self.to_connect(other, true, None, None, stack);
                    }
                }
                let mut u = Schema::of(SchemaType::Struct).named(UNION);
                let mut plan = Vec::new();
                for b in branches {
                    if is_null(b) {
                        u.optional = true;
                        plan.push(None);
                        continue;
                    }
                    let fname = self.member_name(b)?;
                    if u.field_named(&fname).is_some() {
                        return Err(err(
                            "Multiple union schemas map to the Connect union field name",
                        ));
                    }
                    let (bs, bc) = self.to_connect(b, true, None, None, stack)?;
                    plan.push(Some((u.fields.len(), bc)));
                    u = u.field(fname, bs);
                }
                if force_optional {
                    u.optional = true;
                }
                let arc = Arc::new(u.clone());
                return Ok((u, Conv::Union(arc, plan)));
            }
            Kind::Ref(name) => return Err(err(format!("unknown Avro type {name}"))),
        }
        if let Some(doc) = prop_str(node, CONNECT_DOC) {
            s.doc = Some(doc.to_string());
        }
        match node.props.get(CONNECT_VERSION) {
            Some(v) => {
                let v = v
                    .as_i64()
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(|| err(format!("Invalid Connect version found: {v}")))?;
                s.version = Some(v);
            }
            None => {
                if let Some(v) = version {
                    s.version = Some(v);
                }
            }
        }
        if let Some(params) = node.props.get(CONNECT_PARAMETERS) {
            let params = params.as_object().ok_or_else(|| {
                err(format!(
                    "Expected JSON object for schema parameters but found: {params}"
                ))
            })?;
            for (k, v) in params {
                let v = v.as_str().ok_or_else(|| {
                    err(format!(
                        "Expected schema parameter values to be strings but found: {v}"
                    ))
                })?;
                s = s.param(k.clone(), v);
            }
        }
        for (k, v) in &node.props {
            if k.starts_with("avro") {
                s = s.param(
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                );
            }
        }
        let connect_default = node.props.get(CONNECT_DEFAULT);
        let default = match field_default {
            None => connect_default,
            Some(d) => {
                if connect_default.is_none() {
                    s = s.param(FIELD_DEFAULT_FLAG, "true");
                }
                Some(d)
            }
        };
        let name = match prop_str(node, CONNECT_NAME) {
            Some(n) => Some(n.to_string()),
            None => match &node.kind {
                Kind::Record { name, .. } | Kind::Enum { name, .. } => Some(name.clone()),
                Kind::Fixed { name, .. } if s.name.as_deref() != Some(logical::DECIMAL) => {
                    Some(name.clone())
                }
                _ => None,
            },
        };
        if let Some(n) = name {
            if !n.starts_with(DEFAULT_FULL_NAME) && s.name.is_none() {
                s.name = Some(n);
            }
        }
        if force_optional {
            s.optional = true;
        }
        if let Some(d) = default {
            // An invalid default is ignored, as Confluent does.
            if let Ok(v) = default_value(&s, d) {
                if !v.is_null() {
                    s.default = Some(Box::new(v));
                }
            }
        }
        if let Some(convs) = record_fields {
            conv = Conv::Struct(Arc::new(s.clone()), convs);
        }
        Ok((s, conv))
    }
}

/// An Avro default (JSON) as a Connect value of `s`.
fn default_value(s: &Schema, j: &Json) -> Result<Value, ConvertError> {
    if j.is_null() {
        return Ok(Value::Null);
    }
    let bad = || err(format!("invalid default {j}"));
    Ok(match s.kind {
        SchemaType::Boolean => Value::Boolean(j.as_bool().ok_or_else(bad)?),
        SchemaType::Int8 => {
            Value::Int8(j.as_i64().and_then(|v| v.try_into().ok()).ok_or_else(bad)?)
        }
        SchemaType::Int16 => {
            Value::Int16(j.as_i64().and_then(|v| v.try_into().ok()).ok_or_else(bad)?)
        }
        SchemaType::Int32 => {
            Value::Int32(j.as_i64().and_then(|v| v.try_into().ok()).ok_or_else(bad)?)
        }
        SchemaType::Int64 => Value::Int64(j.as_i64().ok_or_else(bad)?),
        SchemaType::Float32 => Value::Float32(j.as_f64().ok_or_else(bad)? as f32),
        SchemaType::Float64 => Value::Float64(j.as_f64().ok_or_else(bad)?),
        SchemaType::String => Value::String(j.as_str().ok_or_else(bad)?.to_string()),
        SchemaType::Bytes => {
            let text = j.as_str().ok_or_else(bad)?;
            Value::Bytes(
                text.chars()
                    .map(|c| u8::try_from(u32::from(c)).map_err(|_| bad()))
                    .collect::<Result<_, _>>()?,
            )
        }
        SchemaType::Array => {
            let item = s.value.as_deref().ok_or_else(bad)?;
            Value::Array(
                j.as_array()
                    .ok_or_else(bad)?
                    .iter()
                    .map(|i| default_value(item, i))
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
                        .map(|(key, val)| Ok((Value::String(key.clone()), default_value(v, val)?)))
                        .collect::<Result<_, ConvertError>>()?,
                ),
                Json::Array(entries) => Value::Map(
                    entries
                        .iter()
                        .map(|e| Ok((default_value(k, &e["key"])?, default_value(v, &e["value"])?)))
                        .collect::<Result<_, ConvertError>>()?,
                ),
                _ => return Err(bad()),
            }
        }
        SchemaType::Struct => {
            let o = j.as_object().ok_or_else(bad)?;
            let plain = Schema {
                default: None,
                ..s.clone()
            };
            let mut st = Struct::new(Arc::new(plain));
            for f in &s.fields {
                st.values[f.index] = match o.get(&f.name) {
                    Some(fj) => default_value(&f.schema, fj)?,
                    None => f.schema.default.as_deref().cloned().unwrap_or(Value::Null),
                };
            }
            Value::Struct(st)
        }
    })
}

/// An Avro value read with its writer's schema, as a Connect value.
fn from_avro(conv: &Conv, v: AvroValue) -> Result<Value, ConvertError> {
    let v = match (conv, v) {
        (Conv::Union(..), v) => v,
        (_, AvroValue::Union(_, inner)) => *inner,
        (_, v) => v,
    };
    if v == AvroValue::Null {
        return Ok(Value::Null);
    }
    let mismatch = |v: &AvroValue| {
        err(format!(
            "an Avro value {v:?} where the schema wants {conv:?}"
        ))
    };
    Ok(match (conv, v) {
        (Conv::Boolean, AvroValue::Boolean(b)) => Value::Boolean(b),
        (Conv::Int8, AvroValue::Int(i)) => {
            Value::Int8(i8::try_from(i).map_err(|_| err(format!("{i} does not fit an int8")))?)
        }
        (Conv::Int16, AvroValue::Int(i)) => {
            Value::Int16(i16::try_from(i).map_err(|_| err(format!("{i} does not fit an int16")))?)
        }
        (Conv::Int32, AvroValue::Int(i) | AvroValue::Date(i) | AvroValue::TimeMillis(i)) => {
            Value::Int32(i)
        }
        (
            Conv::Int64,
            AvroValue::Long(i)
            | AvroValue::TimestampMillis(i)
            | AvroValue::TimestampMicros(i)
            | AvroValue::TimestampNanos(i)
            | AvroValue::LocalTimestampMillis(i)
            | AvroValue::LocalTimestampMicros(i)
            | AvroValue::LocalTimestampNanos(i)
            | AvroValue::TimeMicros(i),
        ) => Value::Int64(i),
        (Conv::Float32, AvroValue::Float(f)) => Value::Float32(f),
        (Conv::Float64, AvroValue::Double(f)) => Value::Float64(f),
        (Conv::String, AvroValue::String(s)) => Value::String(s),
        (Conv::String, AvroValue::Enum(_, s)) => Value::String(s),
        (Conv::String, AvroValue::Uuid(u)) => Value::String(u.to_string()),
        (Conv::Bytes, AvroValue::Bytes(b) | AvroValue::Fixed(_, b)) => Value::Bytes(b),
        (Conv::Bytes, AvroValue::Decimal(d)) => Value::Bytes(
            Vec::<u8>::try_from(&d)
                .map_err(|e| err(format!("a decimal that cannot be read: {e}")))?,
        ),
        (Conv::Array(c), AvroValue::Array(items)) => Value::Array(
            items
                .into_iter()
                .map(|i| from_avro(c, i))
                .collect::<Result<_, _>>()?,
        ),
        (Conv::Map(c), AvroValue::Map(m)) => {
            let mut entries: Vec<(String, AvroValue)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| Ok((Value::String(k), from_avro(c, v)?)))
                    .collect::<Result<_, ConvertError>>()?,
            )
        }
        (Conv::Entries(kc, vc), AvroValue::Array(items)) => Value::Map(
            items
                .into_iter()
                .map(|item| match item {
                    AvroValue::Record(fields) => {
                        let mut key = Value::Null;
                        let mut value = Value::Null;
                        for (name, fv) in fields {
                            match name.as_str() {
                                "key" => key = from_avro(kc, fv)?,
                                "value" => value = from_avro(vc, fv)?,
                                _ => {}
                            }
                        }
                        Ok((key, value))
                    }
                    other => Err(mismatch(&other)),
                })
                .collect::<Result<_, ConvertError>>()?,
        ),
        (Conv::Struct(schema, convs), AvroValue::Record(fields)) => {
            let mut st = Struct::new(schema.clone());
            for (i, ((_, fv), c)) in fields.into_iter().zip(convs).enumerate() {
                st.values[i] = from_avro(c, fv)?;
            }
            Value::Struct(st)
        }
        (Conv::Union(schema, plan), AvroValue::Union(i, inner)) => match plan.get(i as usize) {
            Some(Some((field, c))) => {
                let mut st = Struct::new(schema.clone());
                st.values[*field] = from_avro(c, *inner)?;
                Value::Struct(st)
            }
            Some(None) => Value::Null,
            None => return Err(err(format!("no union branch {i}"))),
        },
        (_, v) => return Err(mismatch(&v)),
    })
}

// ---------------------------------------------------------------------
// Connect value → Avro value, against any Avro schema (the one made from
// the Connect schema, or a subject's latest with `use.latest.version`).

fn kind_fits(tree: &Tree, node: &Node, v: &Value) -> bool {
    let Ok(node) = tree.resolve(node) else {
        return false;
    };
    match (&node.kind, v) {
        (Kind::Null, Value::Null) => true,
        (Kind::Boolean, Value::Boolean(_)) => true,
        (Kind::Int, Value::Int8(_) | Value::Int16(_) | Value::Int32(_)) => true,
        (Kind::Long, Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_)) => true,
        (Kind::Float, Value::Float32(_)) => true,
        (Kind::Double, Value::Float32(_) | Value::Float64(_)) => true,
        (Kind::String | Kind::Enum { .. }, Value::String(_)) => true,
        (Kind::Bytes | Kind::Fixed { .. }, Value::Bytes(_)) => true,
        (Kind::Array(_), Value::Array(_)) => true,
        (Kind::Array(_), Value::Map(_)) => true,
        (Kind::Map(_), Value::Map(_)) => true,
        (Kind::Record { name, .. }, Value::Struct(s)) => s
            .schema
            .name
            .as_deref()
            .is_none_or(|n| n == name || split_name(name).1 == n),
        _ => false,
    }
}

impl Tree {
    fn to_avro(
        &self,
        node: &Node,
        schema: Option<&Schema>,
        v: &Value,
        path: &str,
    ) -> Result<AvroValue, ConvertError> {
        let node = self.resolve(node)?;
        let v = match (v, schema.and_then(|s| s.default.as_deref())) {
            (Value::Null, Some(d)) => d,
            _ => v,
        };
        let at = |what: String| {
            err(format!(
                "{what} at {}",
                if path.is_empty() { "<root>" } else { path }
            ))
        };
        let mismatch = || {
            at(format!(
                "a {} value does not fit the Avro schema {}",
                v.kind_name(),
                match &node.kind {
                    Kind::Record { name, .. }
                    | Kind::Enum { name, .. }
                    | Kind::Fixed { name, .. } => name.clone(),
                    other => format!("{other:?}")
                        .split(['(', ' ', '{'])
                        .next()
                        .unwrap_or_default()
                        .to_lowercase(),
                }
            ))
        };
        Ok(match &node.kind {
            Kind::Union(branches) => {
                if v.is_null() {
                    let i = branches
                        .iter()
                        .position(|b| matches!(b.kind, Kind::Null))
                        .ok_or_else(|| at("a null value for a schema without null".into()))?;
                    return Ok(AvroValue::Union(i as u32, Box::new(AvroValue::Null)));
                }
                if let Some(s) = schema.filter(|s| is_union(s)) {
                    if let Value::Struct(st) = v {
                        for f in &s.fields {
                            let fv = st.values.get(f.index).unwrap_or(&Value::Null);
                            if fv.is_null() {
                                continue;
                            }
                            for (i, b) in branches.iter().enumerate() {
                                if self.member_name(b)? == f.name {
                                    let inner = self.to_avro(b, Some(&f.schema), fv, path)?;
                                    return Ok(AvroValue::Union(i as u32, Box::new(inner)));
                                }
                            }
                        }
                    }
                }
                let (i, b) = branches
                    .iter()
                    .enumerate()
                    .find(|(_, b)| kind_fits(self, b, v))
                    .ok_or_else(mismatch)?;
                AvroValue::Union(i as u32, Box::new(self.to_avro(b, schema, v, path)?))
            }
            Kind::Null => match v {
                Value::Null => AvroValue::Null,
                _ => return Err(mismatch()),
            },
            Kind::Boolean => match v {
                Value::Boolean(b) => AvroValue::Boolean(*b),
                _ => return Err(mismatch()),
            },
            Kind::Int => match v {
                Value::Int8(_) | Value::Int16(_) | Value::Int32(_) => AvroValue::Int(
                    v.as_i64()
                        .and_then(|i| i32::try_from(i).ok())
                        .ok_or_else(mismatch)?,
                ),
                _ => return Err(mismatch()),
            },
            Kind::Long => match v {
                Value::Int8(_) | Value::Int16(_) | Value::Int32(_) | Value::Int64(_) => {
                    AvroValue::Long(v.as_i64().ok_or_else(mismatch)?)
                }
                _ => return Err(mismatch()),
            },
            Kind::Float => match v {
                Value::Float32(f) => AvroValue::Float(*f),
                Value::Float64(f) => AvroValue::Float(*f as f32),
                _ => return Err(mismatch()),
            },
            Kind::Double => match v {
                Value::Float32(f) => AvroValue::Double(f64::from(*f)),
                Value::Float64(f) => AvroValue::Double(*f),
                _ => return Err(mismatch()),
            },
            Kind::Bytes | Kind::Fixed { .. } => match v {
                Value::Bytes(b) if is_decimal(node) => {
                    AvroValue::Decimal(apache_avro::Decimal::from(b))
                }
                Value::Bytes(b) => match &node.kind {
                    Kind::Fixed { size, .. } => {
                        if b.len() != *size {
                            return Err(at(format!("{} bytes for a fixed of {size}", b.len())));
                        }
                        AvroValue::Fixed(*size, b.clone())
                    }
                    _ => AvroValue::Bytes(b.clone()),
                },
                _ => return Err(mismatch()),
            },
            Kind::String => match v {
                Value::String(s) => AvroValue::String(s.clone()),
                _ => return Err(mismatch()),
            },
            Kind::Enum { symbols, name, .. } => match v {
                Value::String(s) => {
                    let i = symbols
                        .iter()
                        .position(|sym| sym == s)
                        .ok_or_else(|| at(format!("{s} is not a symbol of enum {name}")))?;
                    AvroValue::Enum(i as u32, s.clone())
                }
                _ => return Err(mismatch()),
            },
            Kind::Array(items) => {
                let element = schema.and_then(|s| s.value.as_deref());
                match v {
                    Value::Array(values) => AvroValue::Array(
                        values
                            .iter()
                            .enumerate()
                            .map(|(i, x)| self.to_avro(items, element, x, &format!("{path}[{i}]")))
                            .collect::<Result<_, _>>()?,
                    ),
                    Value::Map(entries) => {
                        let entry = self.resolve(items)?;
                        let Kind::Record { fields, .. } = &entry.kind else {
                            return Err(mismatch());
                        };
                        let key_node = fields
                            .iter()
                            .find(|f| f.name == "key")
                            .ok_or_else(mismatch)?;
                        let value_node = fields
                            .iter()
                            .find(|f| f.name == "value")
                            .ok_or_else(mismatch)?;
                        let ks = schema.and_then(|s| s.key.as_deref());
                        AvroValue::Array(
                            entries
                                .iter()
                                .map(|(k, x)| {
                                    Ok(AvroValue::Record(vec![
                                        ("key".into(), self.to_avro(&key_node.node, ks, k, path)?),
                                        (
                                            "value".into(),
                                            self.to_avro(&value_node.node, element, x, path)?,
                                        ),
                                    ]))
                                })
                                .collect::<Result<_, ConvertError>>()?,
                        )
                    }
                    _ => return Err(mismatch()),
                }
            }
            Kind::Map(values) => match v {
                Value::Map(entries) => {
                    let element = schema.and_then(|s| s.value.as_deref());
                    let mut m = HashMap::new();
                    for (k, x) in entries {
                        let key = k
                            .as_str()
                            .ok_or_else(|| at("an Avro map key that is not a string".into()))?;
                        m.insert(
                            key.to_string(),
                            self.to_avro(values, element, x, &format!("{path}.{key}"))?,
                        );
                    }
                    AvroValue::Map(m)
                }
                _ => return Err(mismatch()),
            },
            Kind::Record { fields, name, .. } => match v {
                Value::Struct(st) => {
                    let mut out = Vec::with_capacity(fields.len());
                    for f in fields {
                        let child = if path.is_empty() {
                            f.name.clone()
                        } else {
                            format!("{path}.{}", f.name)
                        };
                        let value = match st.schema.field_named(&f.name) {
                            Some(cf) => self.to_avro(
                                &f.node,
                                Some(&cf.schema),
                                st.values.get(cf.index).unwrap_or(&Value::Null),
                                &child,
                            )?,
                            None => {
                                self.to_avro(&f.node, None, &Value::Null, &child)
                                    .map_err(|_| {
                                        at(format!(
                                            "field {} of Avro record {name} is not in the record",
                                            f.name
                                        ))
                                    })?
                            }
                        };
                        out.push((f.name.clone(), value));
                    }
                    AvroValue::Record(out)
                }
                _ => return Err(mismatch()),
            },
            Kind::Ref(name) => return Err(at(format!("unknown Avro type {name}"))),
        })
    }
}

#[cfg(test)]
mod tests;
