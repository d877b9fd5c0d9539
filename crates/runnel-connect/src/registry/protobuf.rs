//! Protobuf for `io.confluent.connect.protobuf.ProtobufConverter`:
//! Connect schemas ⇄ `.proto` schemas as Confluent's `ProtobufData` maps
//! them with its default settings, and the message indexes of the wire
//! format (`[0]`, the first message, written as one zero byte).
//!
//! Connect → Protobuf (what is registered): a proto3 file with one
//! top-level message per record schema, which must be a struct; the
//! struct's name gives the message (`a.b.Row` → `package a.b;` and
//! `message Row`), unnamed structs are `ConnectDefault1`,
//! `ConnectDefault2`… in the order met; nested structs are messages nested
//! in their parent. Fields are numbered in order from 1. `int8`/`int16`
//! are `int32` with `(confluent.field_meta).params` `connect.type`, `int32`,
//! `int64`, `float` (float32), `double`, `bool`, `string`, `bytes` as
//! themselves; arrays are `repeated`, maps with string, integer or boolean
//! keys `map<K, V>`; Decimal is `confluent.type.Decimal` (with `precision`
//! and `scale` in the field's params), Date `google.type.Date`, Time
//! `google.type.TimeOfDay`, Timestamp `google.protobuf.Timestamp`.
//! Optional scalars follow Confluent's defaults: a plain proto3 field (a
//! null is written as the type's default, as Confluent writes it), unless
//! `optional.for.nullables=true` (proto3 `optional`: absent reads as null)
//! or `wrapper.for.nullables=true` (`google.protobuf.Int32Value`…).
//! Optional structs and logical types are messages, absent when null.
//!
//! Protobuf → Connect (any writer's schema, chosen by the record's message
//! indexes): a message is a struct named after its full name, every field
//! optional as Confluent makes them; scalars without presence read as
//! their default when absent, fields with presence (messages, `optional`,
//! oneof members) as null; `uint32`/`fixed32` and the 64-bit kinds are
//! `int64`; enums are strings (the value's name, its enum's full name as
//! the `io.confluent.connect.protobuf.Enum` parameter); the wrappers read
//! as optional primitives; `connect.type` params restore int8/int16.
//! Not mapped (an error naming the field): Connect arrays of arrays or of
//! maps, maps with other keys, null array elements, non-struct record
//! schemas; oneofs read as their members, without Confluent's union
//! struct.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use prost_reflect::prost::bytes::Bytes;
use prost_reflect::prost::Message as _;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage as _,
    Value as Pb,
};
use runnel_connect_api::data::logical;
use runnel_connect_api::{Config, Schema, SchemaType, Struct, Value};
use runnel_registry_client::wire;
use runnel_schema::ParsedSchema;

use super::{err, Format};
use crate::convert::ConvertError;

/// The name Confluent gives unnamed structs (`ConnectDefault1`, …).
pub const DEFAULT_NAME: &str = "ConnectDefault";
/// The parameter naming the enum a Connect string was read from.
pub const ENUM: &str = "io.confluent.connect.protobuf.Enum";
const CONNECT_TYPE: &str = "connect.type";
const PRECISION_PARAM: &str = "connect.decimal.precision";

/// How nullable scalars are written (Confluent's `optional.for.nullables`
/// and `wrapper.for.nullables`, both false by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Nullables {
    /// Plain proto3 fields: a null is the default value.
    #[default]
    Plain,
    /// proto3 `optional`.
    Optional,
    /// `google.protobuf` wrapper messages.
    Wrapper,
}

/// `io.confluent.connect.protobuf.ProtobufConverter`'s format.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProtobufFormat {
    pub nullables: Nullables,
}

impl ProtobufFormat {
    /// The format of a converter's settings (prefix removed).
    pub fn from_settings(settings: &Config) -> Result<ProtobufFormat, ConvertError> {
        let optional = super::flag(settings, "optional.for.nullables", false)?;
        let wrapper = super::flag(settings, "wrapper.for.nullables", false)?;
        let nullables = match (optional, wrapper) {
            (true, true) => {
                return Err(err(
                    "Invalid value true for configuration wrapper.for.nullables: optional.for.nullables is true too; choose one",
                ))
            }
            (true, false) => Nullables::Optional,
            (false, true) => Nullables::Wrapper,
            (false, false) => Nullables::Plain,
        };
        Ok(ProtobufFormat { nullables })
    }
}

/// Writing with one schema: its first message and its indexes.
pub struct PbWriter {
    message: MessageDescriptor,
}

/// A message of the writer's schema and its Connect schema.
type Message = (MessageDescriptor, Schema);

/// Reading with one writer's schema: the Connect schema of each message
/// the records name, made once.
pub struct PbReader {
    parsed: ParsedSchema,
    version: Option<i32>,
    schemas: Mutex<HashMap<Vec<i32>, Arc<Message>>>,
}

impl Format for ProtobufFormat {
    const TYPE: runnel_schema::SchemaType = runnel_schema::SchemaType::Protobuf;
    const CLASS: &'static str = super::PROTOBUF;
    type Writer = PbWriter;
    type Reader = PbReader;

    fn schema_text(&self, schema: &Schema) -> Result<String, ConvertError> {
        from_connect_schema(schema, self.nullables)
    }

    fn writer(&self, parsed: &ParsedSchema) -> Result<PbWriter, ConvertError> {
        let message = parsed
            .as_protobuf()
            .ok_or_else(|| err("the Protobuf schema declares no message"))?;
        Ok(PbWriter { message })
    }

    fn encode(
        &self,
        writer: &PbWriter,
        schema: &Schema,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<(), ConvertError> {
        let Value::Struct(s) = value else {
            return Err(err(format!(
                "ProtobufConverter writes structs; the record is {}",
                value.kind_name()
            )));
        };
        let msg = to_message(&writer.message, schema, s, "")?;
        // The first message of the file: indexes [0], one zero byte.
        wire::write_indexes(&[0], out);
        msg.encode(out)
            .map_err(|e| err(format!("Protobuf encoding failed: {e}")))
    }

    fn reader(
        &self,
        parsed: &ParsedSchema,
        version: Option<i32>,
    ) -> Result<PbReader, ConvertError> {
        if parsed.as_protobuf().is_none() {
            return Err(err("the Protobuf schema declares no message"));
        }
        Ok(PbReader {
            parsed: parsed.clone(),
            version,
            schemas: Mutex::new(HashMap::new()),
        })
    }

    fn decode(&self, reader: &PbReader, payload: &[u8]) -> Result<(Schema, Value), ConvertError> {
        let (indexes, bytes) =
            wire::read_indexes(payload).map_err(|e| err(format!("bad message indexes: {e}")))?;
        let known = super::lock(&reader.schemas).get(&indexes).cloned();
        let entry = match known {
            Some(e) => e,
            None => {
                let md = reader.parsed.message_by_indexes(&indexes).ok_or_else(|| {
                    err(format!(
                        "the writer's schema has no message at indexes {indexes:?}"
                    ))
                })?;
                let mut schema = message_schema(&md, 0)?;
                schema.optional = false;
                if schema.version.is_none() {
                    schema.version = reader.version;
                }
                let e = Arc::new((md, schema));
                super::lock(&reader.schemas).insert(indexes, e.clone());
                e
            }
        };
        let (md, schema) = (&entry.0, &entry.1);
        let msg = DynamicMessage::decode(md.clone(), bytes)
            .map_err(|e| err(format!("the record is not a {}: {e}", md.full_name())))?;
        let value = from_message(&msg, schema)?;
        Ok((schema.clone(), value))
    }
}

// ---------------------------------------------------------------------
// Connect → .proto

fn split_name(name: &str) -> (Option<&str>, &str) {
    match name.rsplit_once('.') {
        Some((ns, simple)) => (Some(ns), simple),
        None => (None, name),
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct ProtoWriter {
    nullables: Nullables,
    imports: BTreeSet<&'static str>,
    next_default: u32,
}

/// The `.proto` text `ProtobufConverter` registers for a record schema.
pub fn from_connect_schema(schema: &Schema, nullables: Nullables) -> Result<String, ConvertError> {
    if schema.kind != SchemaType::Struct {
        return Err(err(format!(
            "ProtobufConverter writes structs; the record's schema is {}",
            schema.kind.json_name()
        )));
    }
    let mut w = ProtoWriter {
        nullables,
        imports: BTreeSet::new(),
        next_default: 1,
    };
    let (package, name) = match schema.name.as_deref() {
        Some(n) if !n.is_empty() => {
            let (ns, simple) = split_name(n);
            (ns.map(str::to_string), simple.to_string())
        }
        _ => (None, w.default_name()),
    };
    if let Some(p) = &package {
        if !p.split('.').all(is_ident) {
            return Err(err(format!(
                "the schema name {p:?} is not a Protobuf package"
            )));
        }
    }
    let mut body = String::new();
    w.message(&name, schema, 0, &mut body)?;
    let mut out = String::from("syntax = \"proto3\";\n");
    if let Some(p) = package {
        let _ = writeln!(out, "package {p};");
    }
    out.push('\n');
    for i in &w.imports {
        let _ = writeln!(out, "import \"{i}\";");
    }
    if !w.imports.is_empty() {
        out.push('\n');
    }
    out.push_str(&body);
    Ok(out)
}

impl ProtoWriter {
    fn default_name(&mut self) -> String {
        let n = format!("{DEFAULT_NAME}{}", self.next_default);
        self.next_default += 1;
        n
    }

    fn message(
        &mut self,
        name: &str,
        schema: &Schema,
        depth: usize,
        out: &mut String,
    ) -> Result<(), ConvertError> {
        if !is_ident(name) {
            return Err(err(format!(
                "the struct name {name:?} is not a Protobuf message name"
            )));
        }
        let pad = "  ".repeat(depth);
        let _ = writeln!(out, "{pad}message {name} {{");
        let mut nested: Vec<(String, Schema)> = Vec::new();
        for (i, f) in schema.fields.iter().enumerate() {
            if !is_ident(&f.name) {
                return Err(err(format!(
                    "the field name {:?} is not a Protobuf field name",
                    f.name
                )));
            }
            let line = self.field(&f.name, &f.schema, &mut nested)?;
            let options = line_options(&f.schema);
            if !options.is_empty() {
                self.imports.insert("confluent/meta.proto");
            }
            let _ = writeln!(out, "{pad}  {line} = {}{options};", i + 1);
        }
        for (n, s) in nested {
            out.push('\n');
            self.message(&n, &s, depth + 1, out)?;
        }
        let _ = writeln!(out, "{pad}}}");
        Ok(())
    }

    /// `[label] type name` of a field.
    fn field(
        &mut self,
        name: &str,
        schema: &Schema,
        nested: &mut Vec<(String, Schema)>,
    ) -> Result<String, ConvertError> {
        Ok(match schema.kind {
            SchemaType::Array => {
                let el = schema
                    .value
                    .as_deref()
                    .ok_or_else(|| err(format!("array field {name} has no element schema")))?;
                if matches!(el.kind, SchemaType::Array | SchemaType::Map) {
                    return Err(err(format!(
                        "field {name}: arrays of arrays or maps have no Protobuf mapping here"
                    )));
                }
                format!("repeated {} {name}", self.single(name, el, false, nested)?)
            }
            SchemaType::Map => {
                let (k, v) = schema
                    .key
                    .as_deref()
                    .zip(schema.value.as_deref())
                    .ok_or_else(|| err(format!("map field {name} has no key or value schema")))?;
                let key = match k.kind {
                    SchemaType::String => "string",
                    SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32
                        if k.name.is_none() =>
                    {
                        "int32"
                    }
                    SchemaType::Int64 if k.name.is_none() => "int64",
                    SchemaType::Boolean => "bool",
                    _ => {
                        return Err(err(format!(
                            "field {name}: map keys of type {} have no Protobuf mapping here",
                            k.kind.json_name()
                        )))
                    }
                };
                if matches!(v.kind, SchemaType::Array | SchemaType::Map) {
                    return Err(err(format!(
                        "field {name}: maps of arrays or maps have no Protobuf mapping here"
                    )));
                }
                format!(
                    "map<{key}, {}> {name}",
                    self.single(name, v, false, nested)?
                )
            }
            _ => {
                let t = self.single(name, schema, schema.optional, nested)?;
                let presence =
                    schema.optional && self.nullables == Nullables::Optional && is_scalar(schema);
                if presence {
                    format!("optional {t} {name}")
                } else {
                    format!("{t} {name}")
                }
            }
        })
    }

    /// The type of one value (not an array or map).
    fn single(
        &mut self,
        field: &str,
        schema: &Schema,
        nullable: bool,
        nested: &mut Vec<(String, Schema)>,
    ) -> Result<String, ConvertError> {
        match schema.name.as_deref() {
            Some(logical::DECIMAL) => {
                self.imports.insert("confluent/type/decimal.proto");
                return Ok("confluent.type.Decimal".into());
            }
            Some(logical::DATE) => {
                self.imports.insert("google/type/date.proto");
                return Ok("google.type.Date".into());
            }
            Some(logical::TIME) => {
                self.imports.insert("google/type/timeofday.proto");
                return Ok("google.type.TimeOfDay".into());
            }
            Some(logical::TIMESTAMP) => {
                self.imports.insert("google/protobuf/timestamp.proto");
                return Ok("google.protobuf.Timestamp".into());
            }
            _ => {}
        }
        if schema.kind == SchemaType::Struct {
            let name = match schema.name.as_deref() {
                Some(n) if !n.is_empty() => split_name(n).1.to_string(),
                _ => self.default_name(),
            };
            match nested.iter().find(|(n, _)| *n == name) {
                Some((_, s)) if s == schema => {}
                Some(_) => {
                    return Err(err(format!(
                        "field {field}: two different structs named {name} in one message"
                    )))
                }
                None => nested.push((name.clone(), schema.clone())),
            }
            return Ok(name);
        }
        let (scalar, wrapper) = match schema.kind {
            SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32 => ("int32", "Int32Value"),
            SchemaType::Int64 => ("int64", "Int64Value"),
            SchemaType::Float32 => ("float", "FloatValue"),
            SchemaType::Float64 => ("double", "DoubleValue"),
            SchemaType::Boolean => ("bool", "BoolValue"),
            SchemaType::String => ("string", "StringValue"),
            SchemaType::Bytes => ("bytes", "BytesValue"),
            k => {
                return Err(err(format!(
                    "field {field}: a {} here has no Protobuf mapping",
                    k.json_name()
                )))
            }
        };
        if nullable && self.nullables == Nullables::Wrapper {
            self.imports.insert("google/protobuf/wrappers.proto");
            return Ok(format!("google.protobuf.{wrapper}"));
        }
        Ok(scalar.to_string())
    }
}

fn is_scalar(schema: &Schema) -> bool {
    !matches!(
        schema.kind,
        SchemaType::Struct | SchemaType::Array | SchemaType::Map
    ) && !matches!(
        schema.name.as_deref(),
        Some(logical::DECIMAL | logical::DATE | logical::TIME | logical::TIMESTAMP)
    )
}

fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// ` [(confluent.field_meta) = …]` for the params Confluent keeps there.
fn line_options(schema: &Schema) -> String {
    let el = match schema.kind {
        SchemaType::Array | SchemaType::Map => schema.value.as_deref().unwrap_or(schema),
        _ => schema,
    };
    let mut params: Vec<(String, String)> = Vec::new();
    match (el.kind, el.name.as_deref()) {
        (SchemaType::Int8, None) => params.push((CONNECT_TYPE.into(), "int8".into())),
        (SchemaType::Int16, None) => params.push((CONNECT_TYPE.into(), "int16".into())),
        (_, Some(logical::DECIMAL)) => {
            if let Some(p) = el.parameter(PRECISION_PARAM) {
                params.push(("precision".into(), p.to_string()));
            }
            let scale = el.parameter(logical::SCALE_PARAM).unwrap_or("0");
            params.push(("scale".into(), scale.to_string()));
        }
        _ => {}
    }
    if params.is_empty() {
        return String::new();
    }
    let list: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{{ key: {}, value: {} }}", quote(k), quote(v)))
        .collect();
    format!(
        " [(confluent.field_meta) = {{ params: [{}] }}]",
        list.join(", ")
    )
}

// ---------------------------------------------------------------------
// Connect values → messages

fn to_message(
    md: &MessageDescriptor,
    schema: &Schema,
    s: &Struct,
    path: &str,
) -> Result<DynamicMessage, ConvertError> {
    let mut msg = DynamicMessage::new(md.clone());
    for (f, v) in schema.fields.iter().zip(&s.values) {
        let at = if path.is_empty() {
            f.name.clone()
        } else {
            format!("{path}.{}", f.name)
        };
        let fd = md.get_field_by_name(&f.name).ok_or_else(|| {
            err(format!(
                "message {} has no field {}",
                md.full_name(),
                f.name
            ))
        })?;
        if v.is_null() {
            continue;
        }
        let pb = if fd.is_list() {
            let Value::Array(items) = v else {
                return Err(err(format!(
                    "{at}: expected an array, got {}",
                    v.kind_name()
                )));
            };
            let el = f.schema.value.as_deref().unwrap_or(&f.schema);
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if item.is_null() {
                    return Err(err(format!("{at}: Protobuf arrays hold no nulls")));
                }
                out.push(single(&fd.kind(), el, item, &at)?);
            }
            Pb::List(out)
        } else if fd.is_map() {
            let Value::Map(entries) = v else {
                return Err(err(format!("{at}: expected a map, got {}", v.kind_name())));
            };
            let Kind::Message(entry) = fd.kind() else {
                return Err(err(format!("{at}: a map field without its entry message")));
            };
            let (kf, vf) = (entry.map_entry_key_field(), entry.map_entry_value_field());
            let vs = f.schema.value.as_deref().unwrap_or(&f.schema);
            let mut out = HashMap::with_capacity(entries.len());
            for (k, val) in entries {
                let key = match single(&kf.kind(), &Schema::string(), k, &at)? {
                    Pb::String(s) => MapKey::String(s),
                    Pb::I32(i) => MapKey::I32(i),
                    Pb::I64(i) => MapKey::I64(i),
                    Pb::U32(i) => MapKey::U32(i),
                    Pb::U64(i) => MapKey::U64(i),
                    Pb::Bool(b) => MapKey::Bool(b),
                    _ => {
                        return Err(err(format!(
                            "{at}: a map key of this kind cannot be written"
                        )))
                    }
                };
                if val.is_null() {
                    return Err(err(format!("{at}: Protobuf maps hold no null values")));
                }
                out.insert(key, single(&vf.kind(), vs, val, &at)?);
            }
            Pb::Map(out)
        } else {
            single(&fd.kind(), &f.schema, v, &at)?
        };
        msg.try_set_field(&fd, pb)
            .map_err(|e| err(format!("{at}: {e}")))?;
    }
    Ok(msg)
}

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int8(i) => Some(i64::from(*i)),
        Value::Int16(i) => Some(i64::from(*i)),
        Value::Int32(i) => Some(i64::from(*i)),
        Value::Int64(i) => Some(*i),
        _ => None,
    }
}

/// One value of `kind` from a Connect value of `schema`.
fn single(kind: &Kind, schema: &Schema, v: &Value, at: &str) -> Result<Pb, ConvertError> {
    let mismatch = || {
        err(format!(
            "{at}: a {} value cannot be written as Protobuf {kind:?}",
            v.kind_name()
        ))
    };
    let range = || err(format!("{at}: {v:?} is out of range for Protobuf {kind:?}"));
    Ok(match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Pb::I32(i32::try_from(int_of(v).ok_or_else(mismatch)?).map_err(|_| range())?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Pb::I64(int_of(v).ok_or_else(mismatch)?),
        Kind::Uint32 | Kind::Fixed32 => {
            Pb::U32(u32::try_from(int_of(v).ok_or_else(mismatch)?).map_err(|_| range())?)
        }
        Kind::Uint64 | Kind::Fixed64 => {
            Pb::U64(u64::try_from(int_of(v).ok_or_else(mismatch)?).map_err(|_| range())?)
        }
        Kind::Float => match v {
            Value::Float32(f) => Pb::F32(*f),
            Value::Float64(f) => Pb::F32(*f as f32),
            _ => return Err(mismatch()),
        },
        Kind::Double => match v {
            Value::Float32(f) => Pb::F64(f64::from(*f)),
            Value::Float64(f) => Pb::F64(*f),
            _ => return Err(mismatch()),
        },
        Kind::Bool => match v {
            Value::Boolean(b) => Pb::Bool(*b),
            _ => return Err(mismatch()),
        },
        Kind::String => match v {
            Value::String(s) => Pb::String(s.clone()),
            _ => return Err(mismatch()),
        },
        Kind::Bytes => match v {
            Value::Bytes(b) => Pb::Bytes(Bytes::from(b.clone())),
            _ => return Err(mismatch()),
        },
        Kind::Enum(e) => match v {
            Value::String(s) => Pb::EnumNumber(
                e.get_value_by_name(s)
                    .ok_or_else(|| err(format!("{at}: {s:?} is not a value of {}", e.full_name())))?
                    .number(),
            ),
            _ => {
                Pb::EnumNumber(i32::try_from(int_of(v).ok_or_else(mismatch)?).map_err(|_| range())?)
            }
        },
        Kind::Message(md) => Pb::Message(message_value(md, schema, v, at)?),
    })
}

fn scalar_message(
    md: &MessageDescriptor,
    field: &str,
    value: Pb,
    at: &str,
) -> Result<DynamicMessage, ConvertError> {
    let mut m = DynamicMessage::new(md.clone());
    let fd = md
        .get_field_by_name(field)
        .ok_or_else(|| err(format!("{at}: {} has no field {field}", md.full_name())))?;
    m.try_set_field(&fd, value)
        .map_err(|e| err(format!("{at}: {e}")))?;
    Ok(m)
}

fn set_all(
    md: &MessageDescriptor,
    fields: &[(&str, Pb)],
    at: &str,
) -> Result<DynamicMessage, ConvertError> {
    let mut m = DynamicMessage::new(md.clone());
    for (name, value) in fields {
        let fd = md
            .get_field_by_name(name)
            .ok_or_else(|| err(format!("{at}: {} has no field {name}", md.full_name())))?;
        m.try_set_field(&fd, value.clone())
            .map_err(|e| err(format!("{at}: {e}")))?;
    }
    Ok(m)
}

fn message_value(
    md: &MessageDescriptor,
    schema: &Schema,
    v: &Value,
    at: &str,
) -> Result<DynamicMessage, ConvertError> {
    let full = md.full_name();
    if let Some(w) = full
        .strip_prefix("google.protobuf.")
        .filter(|w| w.ends_with("Value"))
    {
        let vf = md
            .get_field_by_name("value")
            .ok_or_else(|| err(format!("{at}: {full} has no value field")))?;
        let _ = w;
        let inner = single(&vf.kind(), schema, v, at)?;
        return scalar_message(md, "value", inner, at);
    }
    match full {
        "google.protobuf.Timestamp" => {
            let ms = int_of(v)
                .ok_or_else(|| err(format!("{at}: a timestamp must be int64 milliseconds")))?;
            let nanos = i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0);
            set_all(
                md,
                &[
                    ("seconds", Pb::I64(ms.div_euclid(1000))),
                    ("nanos", Pb::I32(nanos)),
                ],
                at,
            )
        }
        "google.type.Date" => {
            let days = int_of(v).ok_or_else(|| err(format!("{at}: a date must be int32 days")))?;
            let (y, m, d) = crate::transforms::civil(days);
            let year = i32::try_from(y).map_err(|_| err(format!("{at}: year {y} out of range")))?;
            set_all(
                md,
                &[
                    ("year", Pb::I32(year)),
                    ("month", Pb::I32(m as i32)),
                    ("day", Pb::I32(d as i32)),
                ],
                at,
            )
        }
        "google.type.TimeOfDay" => {
            let ms =
                int_of(v).ok_or_else(|| err(format!("{at}: a time must be int32 milliseconds")))?;
            let ms = ms.rem_euclid(86_400_000);
            let f = |x: i64| Pb::I32(i32::try_from(x).unwrap_or(0));
            set_all(
                md,
                &[
                    ("hours", f(ms / 3_600_000)),
                    ("minutes", f(ms / 60_000 % 60)),
                    ("seconds", f(ms / 1000 % 60)),
                    ("nanos", f(ms % 1000 * 1_000_000)),
                ],
                at,
            )
        }
        "confluent.type.Decimal" => {
            let Value::Bytes(unscaled) = v else {
                return Err(err(format!("{at}: a decimal must be its unscaled bytes")));
            };
            let scale: i32 = schema
                .parameter(logical::SCALE_PARAM)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let precision: u32 = schema
                .parameter(PRECISION_PARAM)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            set_all(
                md,
                &[
                    ("value", Pb::Bytes(Bytes::from(unscaled.clone()))),
                    ("precision", Pb::U32(precision)),
                    ("scale", Pb::I32(scale)),
                ],
                at,
            )
        }
        _ => match v {
            Value::Struct(s) => to_message(md, &s.schema, s, at),
            _ => Err(err(format!(
                "{at}: a {} value cannot be written as message {full}",
                v.kind_name()
            ))),
        },
    }
}

// ---------------------------------------------------------------------
// Protobuf → Connect

/// The `(confluent.field_meta).params` of a field.
fn field_params(fd: &FieldDescriptor) -> Vec<(String, String)> {
    let opts = fd.options();
    let mut out = Vec::new();
    for (ext, v) in opts.extensions() {
        if ext.full_name() != "confluent.field_meta" {
            continue;
        }
        let Pb::Message(meta) = v else { continue };
        if let Some(Pb::Map(params)) = meta.get_field_by_name("params").map(|c| c.into_owned()) {
            for (k, v) in params {
                if let (MapKey::String(k), Pb::String(v)) = (k, v) {
                    out.push((k, v));
                }
            }
        }
    }
    out.sort();
    out
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

const MAX_DEPTH: usize = 32;

fn message_schema(md: &MessageDescriptor, depth: usize) -> Result<Schema, ConvertError> {
    if depth > MAX_DEPTH {
        return Err(err(format!(
            "message {} nests deeper than {MAX_DEPTH} levels (a recursive message?)",
            md.full_name()
        )));
    }
    let mut s = Schema::struct_named(md.full_name()).optional();
    for fd in md.fields() {
        let fs = field_schema(&fd, depth)?;
        s = s.field(fd.name(), fs);
    }
    Ok(s)
}

fn field_schema(fd: &FieldDescriptor, depth: usize) -> Result<Schema, ConvertError> {
    let params = field_params(fd);
    if fd.is_map() {
        let Kind::Message(entry) = fd.kind() else {
            return Err(err(format!(
                "map field {} without an entry message",
                fd.name()
            )));
        };
        let k = kind_schema(&entry.map_entry_key_field(), &[], depth)?.required();
        let v = kind_schema(&entry.map_entry_value_field(), &params, depth)?;
        return Ok(Schema::map(k, v).optional());
    }
    let one = kind_schema(fd, &params, depth)?;
    if fd.is_list() {
        return Ok(Schema::array(one.required()).optional());
    }
    Ok(one.optional())
}

/// The Connect schema of one value of a field (before its cardinality).
fn kind_schema(
    fd: &FieldDescriptor,
    params: &[(String, String)],
    depth: usize,
) -> Result<Schema, ConvertError> {
    let small = |s: Schema| match param(params, CONNECT_TYPE) {
        Some("int8") => Schema::int8(),
        Some("int16") => Schema::int16(),
        _ => s,
    };
    Ok(match fd.kind() {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => small(Schema::int32()),
        Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64
        | Kind::Uint32
        | Kind::Fixed32
        | Kind::Uint64
        | Kind::Fixed64 => Schema::int64(),
        Kind::Float => Schema::float32(),
        Kind::Double => Schema::float64(),
        Kind::Bool => Schema::boolean(),
        Kind::String => Schema::string(),
        Kind::Bytes => Schema::bytes(),
        Kind::Enum(e) => Schema::string()
            .named(e.full_name())
            .param(ENUM, e.full_name()),
        Kind::Message(md) => match md.full_name() {
            "google.protobuf.Timestamp" => Schema::timestamp(),
            "google.type.Date" => Schema::date(),
            "google.type.TimeOfDay" => Schema::time(),
            "confluent.type.Decimal" => {
                let scale = param(params, "scale")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let mut d = Schema::decimal(scale);
                if let Some(p) = param(params, "precision") {
                    d = d.param(PRECISION_PARAM, p);
                }
                d
            }
            "google.protobuf.DoubleValue" => Schema::float64(),
            "google.protobuf.FloatValue" => Schema::float32(),
            "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.UInt32Value" => Schema::int64(),
            "google.protobuf.Int32Value" => small(Schema::int32()),
            "google.protobuf.BoolValue" => Schema::boolean(),
            "google.protobuf.StringValue" => Schema::string(),
            "google.protobuf.BytesValue" => Schema::bytes(),
            _ => message_schema(&md, depth + 1)?,
        },
    })
}

fn from_message(msg: &DynamicMessage, schema: &Schema) -> Result<Value, ConvertError> {
    let md = msg.descriptor();
    let mut values = Vec::with_capacity(schema.fields.len());
    for f in &schema.fields {
        let fd = md.get_field_by_name(&f.name).ok_or_else(|| {
            err(format!(
                "message {} has no field {}",
                md.full_name(),
                f.name
            ))
        })?;
        if fd.supports_presence() && !msg.has_field(&fd) {
            values.push(Value::Null);
            continue;
        }
        let v = msg.get_field(&fd);
        values.push(from_pb(&v, &f.schema, &fd.kind(), &f.name)?);
    }
    Ok(Value::Struct(Struct {
        schema: Arc::new(schema.clone()),
        values,
    }))
}

/// A value of `kind` (for a map, its entry message) as a Connect value.
fn from_pb(v: &Pb, schema: &Schema, kind: &Kind, at: &str) -> Result<Value, ConvertError> {
    let bad = || {
        err(format!(
            "{at}: Protobuf {v:?} does not fit a Connect {}",
            schema.kind.json_name()
        ))
    };
    Ok(match (schema.kind, v) {
        (SchemaType::Array, Pb::List(items)) => {
            let el = schema.value.as_deref().ok_or_else(bad)?;
            Value::Array(
                items
                    .iter()
                    .map(|i| from_pb(i, el, kind, at))
                    .collect::<Result<_, _>>()?,
            )
        }
        (SchemaType::Map, Pb::Map(entries)) => {
            let (ks, vs) = schema
                .key
                .as_deref()
                .zip(schema.value.as_deref())
                .ok_or_else(bad)?;
            let Kind::Message(entry) = kind else {
                return Err(bad());
            };
            let (kk, vk) = (
                entry.map_entry_key_field().kind(),
                entry.map_entry_value_field().kind(),
            );
            let mut out: Vec<(Value, Value)> = Vec::with_capacity(entries.len());
            for (k, val) in entries {
                let kv = match k {
                    MapKey::Bool(b) => Pb::Bool(*b),
                    MapKey::I32(i) => Pb::I32(*i),
                    MapKey::I64(i) => Pb::I64(*i),
                    MapKey::U32(i) => Pb::U32(*i),
                    MapKey::U64(i) => Pb::U64(*i),
                    MapKey::String(s) => Pb::String(s.clone()),
                };
                out.push((from_pb(&kv, ks, &kk, at)?, from_pb(val, vs, &vk, at)?));
            }
            // A map's entries come in hash order: sorted, so a record reads
            // the same every time.
            out.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
            Value::Map(out)
        }
        (SchemaType::Struct, Pb::Message(m)) => from_message(m, schema)?,
        (_, Pb::Message(m)) => from_well_known(m, schema, at)?,
        (SchemaType::Int8, Pb::I32(i)) => Value::Int8(i8::try_from(*i).map_err(|_| bad())?),
        (SchemaType::Int16, Pb::I32(i)) => Value::Int16(i16::try_from(*i).map_err(|_| bad())?),
        (SchemaType::Int32, Pb::I32(i)) => Value::Int32(*i),
        (SchemaType::Int64, Pb::I64(i)) => Value::Int64(*i),
        (SchemaType::Int64, Pb::U32(i)) => Value::Int64(i64::from(*i)),
        // Confluent reads uint64 as int64 too (the bits, wrapping).
        (SchemaType::Int64, Pb::U64(i)) => Value::Int64(*i as i64),
        (SchemaType::Float32, Pb::F32(f)) => Value::Float32(*f),
        (SchemaType::Float64, Pb::F64(f)) => Value::Float64(*f),
        (SchemaType::Boolean, Pb::Bool(b)) => Value::Boolean(*b),
        (SchemaType::String, Pb::String(s)) => Value::String(s.clone()),
        (SchemaType::String, Pb::EnumNumber(n)) => Value::String(match kind {
            Kind::Enum(e) => e
                .get_value(*n)
                .map_or_else(|| n.to_string(), |v| v.name().to_string()),
            _ => n.to_string(),
        }),
        (SchemaType::Bytes, Pb::Bytes(b)) => Value::Bytes(b.to_vec()),
        _ => return Err(bad()),
    })
}

fn get_i64(m: &DynamicMessage, name: &str) -> i64 {
    match m.get_field_by_name(name).as_deref() {
        Some(Pb::I64(i)) => *i,
        Some(Pb::I32(i)) => i64::from(*i),
        Some(Pb::U32(i)) => i64::from(*i),
        _ => 0,
    }
}

fn from_well_known(m: &DynamicMessage, schema: &Schema, at: &str) -> Result<Value, ConvertError> {
    let full = m.descriptor().full_name().to_string();
    Ok(match full.as_str() {
        "google.protobuf.Timestamp" => {
            Value::Int64(get_i64(m, "seconds") * 1000 + get_i64(m, "nanos") / 1_000_000)
        }
        "google.type.Date" => {
            let (y, mo, d) = (get_i64(m, "year"), get_i64(m, "month"), get_i64(m, "day"));
            let days = crate::transforms::days_from_civil(
                y,
                u32::try_from(mo).unwrap_or(1),
                u32::try_from(d).unwrap_or(1),
            );
            Value::Int32(i32::try_from(days).map_err(|_| err(format!("{at}: date out of range")))?)
        }
        "google.type.TimeOfDay" => {
            let ms = get_i64(m, "hours") * 3_600_000
                + get_i64(m, "minutes") * 60_000
                + get_i64(m, "seconds") * 1000
                + get_i64(m, "nanos") / 1_000_000;
            Value::Int32(i32::try_from(ms).map_err(|_| err(format!("{at}: time out of range")))?)
        }
        "confluent.type.Decimal" => {
            let want: i64 = schema
                .parameter(logical::SCALE_PARAM)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let scale = get_i64(m, "scale");
            if scale != want {
                return Err(err(format!(
                    "{at}: a decimal of scale {scale} where the schema says {want}"
                )));
            }
            match m.get_field_by_name("value").as_deref() {
                Some(Pb::Bytes(b)) => Value::Bytes(b.to_vec()),
                _ => Value::Bytes(vec![0]),
            }
        }
        w if w.starts_with("google.protobuf.") && w.ends_with("Value") => {
            let inner = m
                .get_field_by_name("value")
                .ok_or_else(|| err(format!("{at}: {w} has no value")))?;
            let kind = m
                .descriptor()
                .get_field_by_name("value")
                .map(|f| f.kind())
                .ok_or_else(|| err(format!("{at}: {w} has no value")))?;
            from_pb(&inner, schema, &kind, at)?
        }
        other => {
            return Err(err(format!(
                "{at}: message {other} does not fit a Connect {}",
                schema.kind.json_name()
            )))
        }
    })
}

#[cfg(test)]
mod tests;
