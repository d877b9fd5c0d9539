//! Single message transforms and predicates, configured as Kafka Connect
//! configures them: `transforms=a,b`, `transforms.a.type=<class>`,
//! `transforms.a.<setting>=…`, `transforms.a.predicate=p`,
//! `transforms.a.negate=true`, `predicates=p`, `predicates.p.type=…`.
//!
//! A transform works on [`Rec`], the part of a record every transform may
//! rewrite; returning `None` drops the record. Field transforms work on
//! struct values (with a schema) and on maps (schemaless JSON) alike.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;
use runnel_connect_api::{Config, Field, Header, Schema, SchemaType, Struct, Value};

/// A record as transforms see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rec {
    pub topic: String,
    pub partition: Option<i32>,
    /// The offset of a sink record (for `InsertField`'s `offset.field`).
    pub offset: Option<i64>,
    pub key_schema: Option<Schema>,
    pub key: Value,
    pub value_schema: Option<Schema>,
    pub value: Value,
    pub timestamp: Option<i64>,
    pub headers: Vec<Header>,
}

/// A transform's configuration or data error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// A setting is wrong (the REST API names `field`).
    #[error("Invalid value {value} for configuration {field}: {message}")]
    Config {
        field: String,
        value: String,
        message: String,
    },
    /// A record the transform cannot handle.
    #[error("{0}")]
    Data(String),
}

fn cfg_err(field: &str, value: &str, message: impl Into<String>) -> TransformError {
    TransformError::Config {
        field: field.to_string(),
        value: value.to_string(),
        message: message.into(),
    }
}

fn data(msg: impl Into<String>) -> TransformError {
    TransformError::Data(msg.into())
}

/// One transform.
pub trait Transform: Send + Sync {
    fn apply(&self, rec: Rec) -> Result<Option<Rec>, TransformError>;
}

/// A condition on a record.
pub trait Predicate: Send + Sync {
    fn test(&self, rec: &Rec) -> bool;
}

/// The transforms of a connector, in order, with their predicates.
pub struct Chain {
    steps: Vec<Step>,
}

struct Step {
    transform: Box<dyn Transform>,
    predicate: Option<(Arc<dyn Predicate>, bool)>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chain({} steps)", self.steps.len())
    }
}

fn list(config: &Config, key: &str) -> Vec<String> {
    config
        .get(key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The settings under `prefix` with the prefix removed.
pub fn sub_config(config: &Config, prefix: &str) -> Config {
    config
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
        .collect()
}

impl Chain {
    /// No transforms.
    pub fn empty() -> Chain {
        Chain { steps: Vec::new() }
    }

    /// The chain a connector config describes.
    pub fn from_config(config: &Config) -> Result<Chain, TransformError> {
        let mut predicates: BTreeMap<String, Arc<dyn Predicate>> = BTreeMap::new();
        for name in list(config, "predicates") {
            let sub = sub_config(config, &format!("predicates.{name}."));
            let key = format!("predicates.{name}.type");
            let class = sub
                .get("type")
                .ok_or_else(|| cfg_err(&key, "null", "Missing required configuration"))?;
            predicates.insert(
                name.clone(),
                predicate(class, &sub, &format!("predicates.{name}."))?,
            );
        }
        let mut steps = Vec::new();
        for name in list(config, "transforms") {
            let prefix = format!("transforms.{name}.");
            let sub = sub_config(config, &prefix);
            let class = sub.get("type").ok_or_else(|| {
                cfg_err(
                    &format!("{prefix}type"),
                    "null",
                    "Missing required configuration",
                )
            })?;
            let transform = transform(class, &sub, &prefix)?;
            let predicate = match sub.get("predicate") {
                None => None,
                Some(p) => {
                    let pred = predicates.get(p).ok_or_else(|| {
                        cfg_err(
                            &format!("{prefix}predicate"),
                            p,
                            format!("Predicate {p} is not defined in predicates"),
                        )
                    })?;
                    let negate = sub
                        .get("negate")
                        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
                    Some((pred.clone(), negate))
                }
            };
            steps.push(Step {
                transform,
                predicate,
            });
        }
        Ok(Chain { steps })
    }

    /// Runs the chain; `None`: a transform dropped the record.
    pub fn apply(&self, mut rec: Rec) -> Result<Option<Rec>, TransformError> {
        for step in &self.steps {
            if let Some((p, negate)) = &step.predicate {
                if p.test(&rec) == *negate {
                    continue;
                }
            }
            match step.transform.apply(rec)? {
                Some(r) => rec = r,
                None => return Ok(None),
            }
        }
        Ok(Some(rec))
    }
}

/// Transform classes this runtime has (for listing).
pub const TRANSFORMS: [&str; 17] = [
    "io.debezium.transforms.ExtractNewRecordState",
    "org.apache.kafka.connect.transforms.ValueToKey",
    "org.apache.kafka.connect.transforms.ExtractField$Key",
    "org.apache.kafka.connect.transforms.ExtractField$Value",
    "org.apache.kafka.connect.transforms.ReplaceField$Key",
    "org.apache.kafka.connect.transforms.ReplaceField$Value",
    "org.apache.kafka.connect.transforms.InsertField$Value",
    "org.apache.kafka.connect.transforms.MaskField$Value",
    "org.apache.kafka.connect.transforms.Cast$Value",
    "org.apache.kafka.connect.transforms.TimestampConverter$Value",
    "org.apache.kafka.connect.transforms.RegexRouter",
    "org.apache.kafka.connect.transforms.TimestampRouter",
    "org.apache.kafka.connect.transforms.Filter",
    "org.apache.kafka.connect.transforms.InsertField$Key",
    "org.apache.kafka.connect.transforms.MaskField$Key",
    "org.apache.kafka.connect.transforms.Cast$Key",
    "org.apache.kafka.connect.transforms.TimestampConverter$Key",
];

/// Predicate classes this runtime has.
pub const PREDICATES: [&str; 3] = [
    "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
    "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
    "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
];

fn simple(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

fn required<'a>(sub: &'a Config, prefix: &str, key: &str) -> Result<&'a str, TransformError> {
    sub.get(key).map(String::as_str).ok_or_else(|| {
        cfg_err(
            &format!("{prefix}{key}"),
            "null",
            format!("Missing required configuration \"{prefix}{key}\" which has no default value."),
        )
    })
}

fn regex_full(pattern: &str, field: &str) -> Result<Regex, TransformError> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| cfg_err(field, pattern, format!("Invalid regex: {e}")))
}

fn predicate(
    class: &str,
    sub: &Config,
    prefix: &str,
) -> Result<Arc<dyn Predicate>, TransformError> {
    match simple(class) {
        "TopicNameMatches" => {
            let p = required(sub, prefix, "pattern")?;
            Ok(Arc::new(TopicNameMatches(regex_full(
                p,
                &format!("{prefix}pattern"),
            )?)))
        }
        "HasHeaderKey" => Ok(Arc::new(HasHeaderKey(
            required(sub, prefix, "name")?.to_string(),
        ))),
        "RecordIsTombstone" => Ok(Arc::new(RecordIsTombstone)),
        _ => Err(cfg_err(
            &format!("{prefix}type"),
            class,
            format!("Class {class} could not be found."),
        )),
    }
}

/// Which side of the record a transform works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Key,
    Value,
}

fn side_of(class: &str) -> Side {
    if class.ends_with("$Key") {
        Side::Key
    } else {
        Side::Value
    }
}

fn transform(
    class: &str,
    sub: &Config,
    prefix: &str,
) -> Result<Box<dyn Transform>, TransformError> {
    let base = simple(class);
    let base = base.split('$').next().unwrap_or(base);
    let side = side_of(class);
    let field = |k: &str| format!("{prefix}{k}");
    Ok(match base {
        "RegexRouter" => {
            let r = required(sub, prefix, "regex")?;
            Box::new(RegexRouter {
                regex: regex_full(r, &field("regex"))?,
                replacement: java_replacement(required(sub, prefix, "replacement")?),
            })
        }
        "TimestampRouter" => Box::new(TimestampRouter {
            topic_format: sub
                .get("topic.format")
                .cloned()
                .unwrap_or_else(|| "${topic}-${timestamp}".into()),
            timestamp_format: sub
                .get("timestamp.format")
                .cloned()
                .unwrap_or_else(|| "yyyyMMdd".into()),
        }),
        "ValueToKey" => Box::new(ValueToKey {
            fields: list_required(sub, prefix, "fields")?,
        }),
        "ExtractField" => Box::new(ExtractField {
            side,
            field: required(sub, prefix, "field")?.to_string(),
        }),
        "ReplaceField" => {
            let mut include = list(sub, "include");
            include.extend(list(sub, "whitelist"));
            let mut exclude = list(sub, "exclude");
            exclude.extend(list(sub, "blacklist"));
            let mut renames = Vec::new();
            for r in list(sub, "renames") {
                let (a, b) = r.split_once(':').ok_or_else(|| {
                    cfg_err(
                        &field("renames"),
                        &r,
                        "Invalid rename mapping: expected from:to",
                    )
                })?;
                renames.push((a.to_string(), b.to_string()));
            }
            Box::new(ReplaceField {
                side,
                include,
                exclude,
                renames,
            })
        }
        "InsertField" => Box::new(InsertField {
            side,
            topic: sub.get("topic.field").cloned(),
            partition: sub.get("partition.field").cloned(),
            offset: sub.get("offset.field").cloned(),
            timestamp: sub.get("timestamp.field").cloned(),
            static_field: sub.get("static.field").cloned(),
            static_value: sub.get("static.value").cloned(),
        }),
        "MaskField" => Box::new(MaskField {
            side,
            fields: list_required(sub, prefix, "fields")?,
            replacement: sub.get("replacement").cloned(),
        }),
        "Cast" => {
            let spec = required(sub, prefix, "spec")?;
            let mut whole = None;
            let mut fields = Vec::new();
            for part in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (name, ty) = match part.split_once(':') {
                    Some((n, t)) => (Some(n.trim().to_string()), t.trim()),
                    None => (None, part),
                };
                let kind = cast_type(ty).ok_or_else(|| {
                    cfg_err(
                        &field("spec"),
                        spec,
                        format!("Invalid type found in casting spec: {ty}"),
                    )
                })?;
                match name {
                    Some(n) => fields.push((n, kind)),
                    None => whole = Some(kind),
                }
            }
            Box::new(Cast {
                side,
                whole,
                fields,
            })
        }
        "TimestampConverter" => {
            let target = required(sub, prefix, "target.type")?;
            let target = match target.to_ascii_lowercase().as_str() {
                "string" => TsType::String,
                "unix" => TsType::Unix,
                "date" => TsType::Date,
                "time" => TsType::Time,
                "timestamp" => TsType::Timestamp,
                _ => {
                    return Err(cfg_err(
                        &field("target.type"),
                        target,
                        "Unknown timestamp type in TimestampConverter: must be one of string, unix, Date, Time, Timestamp",
                    ))
                }
            };
            let format = sub.get("format").cloned();
            if target == TsType::String && format.as_deref().unwrap_or("").is_empty() {
                return Err(cfg_err(
                    &field("format"),
                    "",
                    "TimestampConverter requires format option to be specified when using string timestamps",
                ));
            }
            Box::new(TimestampConverter {
                side,
                field: sub.get("field").cloned().filter(|f| !f.is_empty()),
                target,
                format: format.unwrap_or_default(),
            })
        }
        "Filter" => Box::new(Filter),
        "ExtractNewRecordState" => Box::new(ExtractNewRecordState {
            drop_tombstones: sub
                .get("drop.tombstones")
                .is_none_or(|v| !v.trim().eq_ignore_ascii_case("false")),
            delete_mode: sub
                .get("delete.handling.mode")
                .cloned()
                .unwrap_or_else(|| "drop".into()),
            add_fields: list(sub, "add.fields"),
        }),
        _ => {
            return Err(cfg_err(
                &field("type"),
                class,
                format!("Class {class} could not be found."),
            ))
        }
    })
}

/// A Java replacement string (`$1`, `\\$`) in the regex crate's syntax
/// (`${1}`, `$$`).
fn java_replacement(java: &str) -> String {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut n = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    n.push(*d);
                    chars.next();
                }
                if n.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{n}}}"));
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn list_required(sub: &Config, prefix: &str, key: &str) -> Result<Vec<String>, TransformError> {
    let l = list(sub, key);
    if l.is_empty() {
        required(sub, prefix, key)?;
        return Err(cfg_err(&format!("{prefix}{key}"), "", "Empty list"));
    }
    Ok(l)
}

struct TopicNameMatches(Regex);
impl Predicate for TopicNameMatches {
    fn test(&self, rec: &Rec) -> bool {
        self.0.is_match(&rec.topic)
    }
}

struct HasHeaderKey(String);
impl Predicate for HasHeaderKey {
    fn test(&self, rec: &Rec) -> bool {
        rec.headers.iter().any(|h| h.key == self.0)
    }
}

struct RecordIsTombstone;
impl Predicate for RecordIsTombstone {
    fn test(&self, rec: &Rec) -> bool {
        rec.value.is_null()
    }
}

struct RegexRouter {
    regex: Regex,
    replacement: String,
}
impl Transform for RegexRouter {
    fn apply(&self, mut rec: Rec) -> Result<Option<Rec>, TransformError> {
        if self.regex.is_match(&rec.topic) {
            rec.topic = self
                .regex
                .replace(&rec.topic, self.replacement.as_str())
                .into_owned();
        }
        Ok(Some(rec))
    }
}

struct TimestampRouter {
    topic_format: String,
    timestamp_format: String,
}
impl Transform for TimestampRouter {
    fn apply(&self, mut rec: Rec) -> Result<Option<Rec>, TransformError> {
        let ts = rec
            .timestamp
            .ok_or_else(|| data(format!("Timestamp missing on record: topic={}", rec.topic)))?;
        let formatted = format_time(ts, &self.timestamp_format);
        rec.topic = self
            .topic_format
            .replace("${topic}", &rec.topic)
            .replace("${timestamp}", &formatted);
        Ok(Some(rec))
    }
}

struct Filter;
impl Transform for Filter {
    fn apply(&self, _rec: Rec) -> Result<Option<Rec>, TransformError> {
        Ok(None)
    }
}

/// A field of a struct or map value.
fn get_field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Struct(s) => s.get(name),
        Value::Map(_) => v.map_get(name),
        _ => None,
    }
}

fn side_parts(rec: &mut Rec, side: Side) -> (&mut Option<Schema>, &mut Value) {
    match side {
        Side::Key => (&mut rec.key_schema, &mut rec.key),
        Side::Value => (&mut rec.value_schema, &mut rec.value),
    }
}

fn needs_struct_or_map(v: &Value, what: &str) -> Result<(), TransformError> {
    match v {
        Value::Struct(_) | Value::Map(_) => Ok(()),
        other => Err(data(format!(
            "Only Struct objects supported for [{what}], found: {}",
            other.kind_name()
        ))),
    }
}

/// Rebuilds a struct value field by field: `f` maps each (field, value)
/// to its new name, schema and value, or drops it; plus extra fields.
fn rebuild_struct(
    s: &Struct,
    mut f: impl FnMut(&Field, &Value) -> Option<(String, Schema, Value)>,
    extra: Vec<(String, Schema, Value)>,
) -> (Schema, Value) {
    let mut schema = Schema {
        fields: Vec::new(),
        ..(*s.schema).clone()
    };
    let mut values = Vec::new();
    for field in &s.schema.fields {
        let v = s.values.get(field.index).unwrap_or(&Value::Null);
        if let Some((n, fs, fv)) = f(field, v) {
            schema = schema.field(n, fs);
            values.push(fv);
        }
    }
    for (n, fs, fv) in extra {
        schema = schema.field(n, fs);
        values.push(fv);
    }
    let st = Struct {
        schema: Arc::new(schema.clone()),
        values,
    };
    (schema, Value::Struct(st))
}

struct ValueToKey {
    fields: Vec<String>,
}
impl Transform for ValueToKey {
    fn apply(&self, mut rec: Rec) -> Result<Option<Rec>, TransformError> {
        match &rec.value {
            Value::Struct(s) => {
                let mut schema = Schema::of(SchemaType::Struct);
                let mut values = Vec::new();
                for name in &self.fields {
                    let f = s
                        .schema
                        .field_named(name)
                        .ok_or_else(|| data(format!("Field does not exist: {name}")))?;
                    schema = schema.field(name.clone(), f.schema.clone());
                    values.push(s.values.get(f.index).cloned().unwrap_or(Value::Null));
                }
                rec.key = Value::Struct(Struct {
                    schema: Arc::new(schema.clone()),
                    values,
                });
                rec.key_schema = Some(schema);
            }
            Value::Map(_) => {
                let entries = self
                    .fields
                    .iter()
                    .map(|n| {
                        (
                            Value::String(n.clone()),
                            rec.value.map_get(n).cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect();
                rec.key = Value::Map(entries);
                rec.key_schema = None;
            }
            other => {
                return Err(data(format!(
                "Only Struct objects supported for [copying fields from value to key], found: {}",
                other.kind_name()
            )))
            }
        }
        Ok(Some(rec))
    }
}

struct ExtractField {
    side: Side,
    field: String,
}
impl Transform for ExtractField {
    fn apply(&self, mut rec: Rec) -> Result<Option<Rec>, TransformError> {
        let (schema, value) = side_parts(&mut rec, self.side);
        if value.is_null() {
            return Ok(Some(rec));
        }
        needs_struct_or_map(value, "field extraction")?;
        let new_schema = match value {
            Value::Struct(s) => Some(
                s.schema
                    .field_named(&self.field)
                    .ok_or_else(|| data(format!("Unknown field: {}", self.field)))?
                    .schema
                    .clone(),
            ),
            _ => None,
        };
        let v = get_field(value, &self.field)
            .cloned()
            .unwrap_or(Value::Null);
        *schema = new_schema;
        *value = v;
        Ok(Some(rec))
    }
}

struct ReplaceField {
    side: Side,
    include: Vec<String>,
    exclude: Vec<String>,
    renames: Vec<(String, String)>,
}
impl ReplaceField {
    fn keep(&self, name: &str) -> bool {
        !self.exclude.iter().any(|e| e == name)
            && (self.include.is_empty() || self.include.iter().any(|i| i == name))
    }
    fn renamed(&self, name: &str) -> String {
        self.renames
            .iter()
            .find(|(a, _)| a == name)
            .map_or_else(|| name.to_string(), |(_, b)| b.clone())
    }
}
impl Transform for ReplaceField {
    fn apply(&self, mut rec: Rec) -> Result<Option<Rec>, TransformError> {
        let (schema, value) = side_parts(&mut rec, self.side);
        match value {
            Value::Null => {}
            Value::Struct(s) => {
                let (ns, nv) = rebuild_struct(
                    s,
                    |f, v| {
                        self.keep(&f.name)
                            .then(|| (self.renamed(&f.name), f.schema.clone(), v.clone()))
                    },
                    Vec::new(),
                );
                *schema = Some(ns);
                *value = nv;
            }
            Value::Map(entries) => {
                let kept = entries
                    .iter()
                    .filter_map(|(k, v)| {
                        let name = k.as_str()?;
                        self.keep(name)
                            .then(|| (Value::String(self.renamed(name)), v.clone()))
                    })
                    .collect();
                *value = Value::Map(kept);
            }
            other => {
                return Err(data(format!(
                    "Only Struct objects supported for [field replacement], found: {}",
                    other.kind_name()
                )))
            }
        }
        Ok(Some(rec))
    }
}

struct InsertField {
    side: Side,
    topic: Option<String>,
    partition: Option<String>,
    offset: Option<String>,
    timestamp: Option<String>,
    static_field: Option<String>,
    static_value: Option<String>,
}
impl Transform for InsertField {
    fn apply(&self, mut rec: Rec) -> Result<Option<Rec>, TransformError> {
        // An optional field is written `name` or `name!` (required); the
        // `!` is dropped from the name.
        let name = |n: &str| n.trim_end_matches(['!', '?']).to_string();
        let mut extra: Vec<(String, Schema, Value)> = Vec::new();
        if let Some(f) = &self.topic {
            extra.push((
                name(f),
                Schema::string().optional(),
                Value::String(rec.topic.clone()),
            ));
        }
        if let Some(f) = &self.partition {
            extra.push((
                name(f),
                Schema::int32().optional(),
                rec.partition.map_or(Value::Null, Value::Int32),
            ));
        }
        if let Some(f) = &self.offset {
            extra.push((
                name(f),
                Schema::int64().optional(),
                rec.offset.map_or(Value::Null, Value::Int64),
            ));
        }
        if let Some(f) = &self.timestamp {
            extra.push((
                name(f),
                Schema::timestamp().optional(),
                rec.timestamp.map_or(Value::Null, Value::Int64),
            ));
        }
        if let (Some(f), Some(v)) = (&self.static_field, &self.static_value) {
            extra.push((
                name(f),
                Schema::string().optional(),
                Value::String(v.clone()),
            ));
        }
        let (schema, value) = side_parts(&mut rec, self.side);
        match value {
            Value::Null => {}
            Value::Struct(s) => {
                let (ns, nv) = rebuild_struct(
                    s,
                    |f, v| Some((f.name.clone(), f.schema.clone(), v.clone())),
                    extra,
                );
                *schema = Some(ns);
                *value = nv;
            }
            Value::Map(entries) => {
                for (n, _, v) in extra {
                    entries.retain(|(k, _)| k.as_str() != Some(n.as_str()));
                    entries.push((Value::String(n), v));
                }
            }
            other => {
                return Err(data(format!(
                    "Only Struct objects supported for [field insertion], found: {}",
                    other.kind_name()
                )))
            }
        }
        Ok(Some(rec))
    }
}

/// The value MaskField writes for a field of `kind`.
fn masked(v: &Value, replacement: Option<&str>) -> Result<Value, TransformError> {
    if let Some(r) = replacement {
        let bad = || {
            data(format!(
                "Unable to convert {r} ({}) to number",
                v.kind_name()
            ))
        };
        return Ok(match v {
            Value::String(_) => Value::String(r.to_string()),
            Value::Int8(_) => Value::Int8(r.parse().map_err(|_| bad())?),
            Value::Int16(_) => Value::Int16(r.parse().map_err(|_| bad())?),
            Value::Int32(_) => Value::Int32(r.parse().map_err(|_| bad())?),
            Value::Int64(_) => Value::Int64(r.parse().map_err(|_| bad())?),
            Value::Float32(_) => Value::Float32(r.parse().map_err(|_| bad())?),
            Value::Float64(_) => Value::Float64(r.parse().map_err(|_| bad())?),
            Value::Null => Value::Null,
            other => {
                return Err(data(format!(
                    "Cannot mask value of type {} with custom replacement",
                    other.kind_name()
                )))
            }
        });
    }
    Ok(match v {
        Value::Null => Value::Null,
        Value::Boolean(_) => Value::Boolean(false),
        Value::Int8(_) => Value::Int8(0),
        Value::Int16(_) => Value::Int16(0),
        Value::Int32(_) => Value::Int32(0),
        Value::Int64(_) => Value::Int64(0),
        Value::Float32(_) => Value::Float32(0.0),
        Value::Float64(_) => Value::Float64(0.0),
        Value::String(_) => Value::String(String::new()),
        Value::Bytes(_) => Value::Bytes(Vec::new()),
        Value::Array(_) => Value::Array(Vec::new()),
        Value::Map(_) => Value::Map(Vec::new()),
        Value::Struct(s) => Value::Struct(Struct::new(s.schema.clone())),
    })
}

struct MaskField {
    side: Side,
    fields: Vec<String>,
    replacement: Option<String>,
}
impl Transform for MaskField {
    fn apply(&self, mut rec: Rec) -> Result<Option<Rec>, TransformError> {
        let (_, value) = side_parts(&mut rec, self.side);
        match value {
            Value::Null => {}
            Value::Struct(s) => {
                let schema = s.schema.clone();
                for f in &schema.fields {
                    if self.fields.contains(&f.name) {
                        if let Some(v) = s.values.get_mut(f.index) {
                            *v = masked(v, self.replacement.as_deref())?;
                        }
                    }
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    if k.as_str()
                        .is_some_and(|k| self.fields.iter().any(|f| f == k))
                    {
                        *v = masked(v, self.replacement.as_deref())?;
                    }
                }
            }
            other => {
                return Err(data(format!(
                    "Only Struct objects supported for [masking fields], found: {}",
                    other.kind_name()
                )))
            }
        }
        Ok(Some(rec))
    }
}

fn cast_type(name: &str) -> Option<SchemaType> {
    Some(match name {
        "int8" => SchemaType::Int8,
        "int16" => SchemaType::Int16,
        "int32" => SchemaType::Int32,
        "int64" => SchemaType::Int64,
        "float32" => SchemaType::Float32,
        "float64" => SchemaType::Float64,
        "boolean" => SchemaType::Boolean,
        "string" => SchemaType::String,
        _ => return None,
    })
}

fn cast_value(v: &Value, to: SchemaType) -> Result<Value, TransformError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let as_f64 = || -> Result<f64, TransformError> {
        Ok(match v {
            Value::Int8(x) => f64::from(*x),
            Value::Int16(x) => f64::from(*x),
            Value::Int32(x) => f64::from(*x),
            Value::Int64(x) => *x as f64,
            Value::Float32(x) => f64::from(*x),
            Value::Float64(x) => *x,
            Value::Boolean(b) => f64::from(u8::from(*b)),
            Value::String(s) => s.trim().parse().map_err(|_| {
                data(format!(
                    "Value ({s}) was out of range for requested data type"
                ))
            })?,
            other => {
                return Err(data(format!(
                    "Unexpected type in Cast transformation: {}",
                    other.kind_name()
                )))
            }
        })
    };
    let as_i64 = || -> Result<i64, TransformError> {
        match v {
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .or_else(|_| s.trim().parse::<f64>().map(|f| f as i64))
                .map_err(|_| {
                    data(format!(
                        "Value ({s}) was out of range for requested data type"
                    ))
                }),
            other => other
                .as_i64()
                .map_or_else(|| as_f64().map(|f| f as i64), Ok),
        }
    };
    let range = || data("Value was out of range for requested data type");
    Ok(match to {
        SchemaType::Int8 => Value::Int8(i8::try_from(as_i64()?).map_err(|_| range())?),
        SchemaType::Int16 => Value::Int16(i16::try_from(as_i64()?).map_err(|_| range())?),
        SchemaType::Int32 => Value::Int32(i32::try_from(as_i64()?).map_err(|_| range())?),
        SchemaType::Int64 => Value::Int64(as_i64()?),
        SchemaType::Float32 => Value::Float32(as_f64()? as f32),
        SchemaType::Float64 => Value::Float64(as_f64()?),
        SchemaType::Boolean => match v {
            Value::String(s) => Value::Boolean(s.trim().eq_ignore_ascii_case("true")),
            _ => Value::Boolean(as_f64()? != 0.0),
        },
        SchemaType::String => Value::String(crate::convert::value_to_text(v)),
        _ => return Err(data("Unsupported cast target")),
    })
}

struct Cast {
    side: Side,
    whole: Option<SchemaType>,
    fields: Vec<(String, SchemaType)>,
}
impl Transform for Cast {
    fn apply(&self, mut rec: Rec) -> Result<Option<Rec>, TransformError> {
        let (schema, value) = side_parts(&mut rec, self.side);
        if let Some(to) = self.whole {
            *value = cast_value(value, to)?;
            if let Some(s) = schema {
                *s = Schema {
                    kind: to,
                    name: None,
                    version: None,
                    parameters: Vec::new(),
                    default: None,
                    ..s.clone()
                };
            }
            return Ok(Some(rec));
        }
        let target = |name: &str| self.fields.iter().find(|(n, _)| n == name).map(|(_, t)| *t);
        match value {
            Value::Null => {}
            Value::Struct(s) => {
                let mut failed = None;
                let (ns, nv) = rebuild_struct(
                    s,
                    |f, v| match target(&f.name) {
                        None => Some((f.name.clone(), f.schema.clone(), v.clone())),
                        Some(to) => {
                            let mut fs = Schema::of(to);
                            fs.optional = f.schema.optional;
                            match cast_value(v, to) {
                                Ok(cv) => Some((f.name.clone(), fs, cv)),
                                Err(e) => {
                                    failed = Some(e);
                                    None
                                }
                            }
                        }
                    },
                    Vec::new(),
                );
                if let Some(e) = failed {
                    return Err(e);
                }
                *schema = Some(ns);
                *value = nv;
            }
            Value::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    if let Some(to) = k.as_str().and_then(target) {
                        *v = cast_value(v, to)?;
                    }
                }
            }
            other => {
                return Err(data(format!(
                    "Only Struct objects supported for [cast types], found: {}",
                    other.kind_name()
                )))
            }
        }
        Ok(Some(rec))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsType {
    String,
    Unix,
    Date,
    Time,
    Timestamp,
}

const DAY_MS: i64 = 86_400_000;

/// Days since the epoch → (year, month, day) (proleptic Gregorian).
pub(crate) fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since the epoch.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The tokens of a Java `SimpleDateFormat` pattern this runtime supports.
const TOKENS: [&str; 8] = ["yyyy", "MM", "dd", "HH", "mm", "ss", "SSS", "yy"];

/// Formats epoch milliseconds (UTC) with a `SimpleDateFormat`-style
/// pattern (yyyy, yy, MM, dd, HH, mm, ss, SSS; text in single quotes).
pub fn format_time(ms: i64, pattern: &str) -> String {
    let days = ms.div_euclid(DAY_MS);
    let in_day = ms.rem_euclid(DAY_MS);
    let (y, mo, d) = civil(days);
    let mut out = String::new();
    let mut rest = pattern;
    while !rest.is_empty() {
        if let Some(q) = rest.strip_prefix('\'') {
            let end = q.find('\'').unwrap_or(q.len());
            out.push_str(&q[..end]);
            rest = q.get(end + 1..).unwrap_or("");
            continue;
        }
        let Some(tok) = TOKENS.iter().find(|t| rest.starts_with(**t)) else {
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
            continue;
        };
        let s = match *tok {
            "yyyy" => format!("{y:04}"),
            "yy" => format!("{:02}", y.rem_euclid(100)),
            "MM" => format!("{mo:02}"),
            "dd" => format!("{d:02}"),
            "HH" => format!("{:02}", in_day / 3_600_000),
            "mm" => format!("{:02}", in_day / 60_000 % 60),
            "ss" => format!("{:02}", in_day / 1000 % 60),
            _ => format!("{:03}", in_day % 1000),
        };
        out.push_str(&s);
        rest = &rest[tok.len()..];
    }
    out
}

/// Parses text written with a pattern of [`format_time`]; `None` when it
/// does not match.
pub fn parse_time(text: &str, pattern: &str) -> Option<i64> {
    let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut ms) =
        (1970i64, 1u32, 1u32, 0i64, 0i64, 0i64, 0i64);
    let mut rest = pattern;
    let mut t = text;
    while !rest.is_empty() {
        if let Some(q) = rest.strip_prefix('\'') {
            let end = q.find('\'').unwrap_or(q.len());
            t = t.strip_prefix(&q[..end])?;
            rest = q.get(end + 1..).unwrap_or("");
            continue;
        }
        let Some(tok) = TOKENS.iter().find(|tk| rest.starts_with(**tk)) else {
            let c = rest.chars().next()?;
            t = t.strip_prefix(c)?;
            rest = &rest[c.len_utf8()..];
            continue;
        };
        let n = tok.len();
        let digits = t.get(..n)?;
        let v: i64 = digits.parse().ok()?;
        t = &t[n..];
        match *tok {
            "yyyy" => y = v,
            "yy" => y = 2000 + v,
            "MM" => mo = u32::try_from(v).ok()?,
            "dd" => d = u32::try_from(v).ok()?,
            "HH" => h = v,
            "mm" => mi = v,
            "ss" => s = v,
            _ => ms = v,
        }
        rest = &rest[n..];
    }
    if !t.is_empty() || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, mo, d) * DAY_MS + h * 3_600_000 + mi * 60_000 + s * 1000 + ms)
}

struct TimestampConverter {
    side: Side,
    field: Option<String>,
    target: TsType,
    format: String,
}
impl TimestampConverter {
    /// The value as epoch milliseconds, whatever it is.
    fn to_ms(&self, schema: Option<&Schema>, v: &Value) -> Result<i64, TransformError> {
        let name = schema.and_then(|s| s.name.as_deref());
        match v {
            Value::String(s) => parse_time(s, &self.format).ok_or_else(|| {
                data(format!(
                    "Could not parse timestamp: value ({s}) does not match pattern ({})",
                    self.format
                ))
            }),
            Value::Int32(d) if name == Some(runnel_connect_api::logical::DATE) => {
                Ok(i64::from(*d) * DAY_MS)
            }
            Value::Int32(t) => Ok(i64::from(*t)),
            Value::Int64(t) => Ok(*t),
            other => Err(data(format!(
                "Expected a timestamp but found {}",
                other.kind_name()
            ))),
        }
    }
    fn convert(&self, ms: i64) -> (Schema, Value) {
        match self.target {
            TsType::String => (
                Schema::string(),
                Value::String(format_time(ms, &self.format)),
            ),
            TsType::Unix => (Schema::int64(), Value::Int64(ms)),
            TsType::Timestamp => (Schema::timestamp(), Value::Int64(ms)),
            TsType::Date => (
                Schema::date(),
                Value::Int32(i32::try_from(ms.div_euclid(DAY_MS)).unwrap_or(i32::MAX)),
            ),
            TsType::Time => (
                Schema::time(),
                Value::Int32(i32::try_from(ms.rem_euclid(DAY_MS)).unwrap_or(0)),
            ),
        }
    }
}
impl Transform for TimestampConverter {
    fn apply(&self, mut rec: Rec) -> Result<Option<Rec>, TransformError> {
        let (schema, value) = side_parts(&mut rec, self.side);
        let Some(field) = &self.field else {
            if value.is_null() {
                return Ok(Some(rec));
            }
            let ms = self.to_ms(schema.as_ref(), value)?;
            let (s, v) = self.convert(ms);
            if schema.is_some() {
                *schema = Some(s);
            }
            *value = v;
            return Ok(Some(rec));
        };
        match value {
            Value::Null => {}
            Value::Struct(st) => {
                let mut failed = None;
                let (ns, nv) = rebuild_struct(
                    st,
                    |f, v| {
                        if &f.name != field || v.is_null() {
                            return Some((f.name.clone(), f.schema.clone(), v.clone()));
                        }
                        match self.to_ms(Some(&f.schema), v) {
                            Ok(ms) => {
                                let (mut s, v) = self.convert(ms);
                                s.optional = f.schema.optional;
                                Some((f.name.clone(), s, v))
                            }
                            Err(e) => {
                                failed = Some(e);
                                None
                            }
                        }
                    },
                    Vec::new(),
                );
                if let Some(e) = failed {
                    return Err(e);
                }
                *schema = Some(ns);
                *value = nv;
            }
            Value::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    if k.as_str() == Some(field.as_str()) && !v.is_null() {
                        *v = self.convert(self.to_ms(None, v)?).1;
                    }
                }
            }
            other => {
                return Err(data(format!(
                    "Only Struct objects supported for [converting timestamp formats], found: {}",
                    other.kind_name()
                )))
            }
        }
        Ok(Some(rec))
    }
}

/// Debezium's `ExtractNewRecordState`: a change event's `after` state
/// becomes the value; deletes are dropped (`delete.handling.mode=drop`,
/// the default), kept as a tombstone (`none`) or rewritten with
/// `__deleted=true` (`rewrite`); tombstones are dropped unless
/// `drop.tombstones=false`; `add.fields=op,table,lsn…` copies fields of the
/// envelope (or its `source`) as `__<name>`.
struct ExtractNewRecordState {
    drop_tombstones: bool,
    delete_mode: String,
    add_fields: Vec<String>,
}
impl Transform for ExtractNewRecordState {
    fn apply(&self, mut rec: Rec) -> Result<Option<Rec>, TransformError> {
        let envelope = match &rec.value {
            Value::Null => {
                return Ok(if self.drop_tombstones {
                    None
                } else {
                    Some(rec)
                });
            }
            Value::Struct(s) if s.schema.field_named("op").is_some() => s.clone(),
            // Not a change event (a heartbeat, a schema change): as is.
            _ => return Ok(Some(rec)),
        };
        let op = envelope
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let is_delete = op == "d";
        let state_field = if is_delete { "before" } else { "after" };
        if is_delete {
            match self.delete_mode.as_str() {
                "none" => {
                    rec.value = Value::Null;
                    rec.value_schema = None;
                    return Ok(Some(rec));
                }
                "rewrite" => {}
                _ => return Ok(None),
            }
        }
        let state = envelope.get(state_field).cloned().unwrap_or(Value::Null);
        let Value::Struct(st) = state else {
            return Ok(None);
        };
        let source = envelope.get("source").cloned();
        let mut extra = Vec::new();
        for name in &self.add_fields {
            let v = envelope
                .get(name)
                .cloned()
                .or_else(|| source.as_ref().and_then(|s| get_field(s, name)).cloned())
                .unwrap_or(Value::Null);
            let schema = envelope
                .schema
                .field_named(name)
                .map(|f| f.schema.clone())
                .or_else(|| match &source {
                    Some(Value::Struct(s)) => s.schema.field_named(name).map(|f| f.schema.clone()),
                    _ => None,
                })
                .unwrap_or_else(Schema::string)
                .optional();
            extra.push((format!("__{name}"), schema, v));
        }
        if self.delete_mode == "rewrite" {
            extra.push((
                "__deleted".into(),
                Schema::string().optional(),
                Value::String(is_delete.to_string()),
            ));
        }
        let (s, v) = rebuild_struct(
            &st,
            |f, v| Some((f.name.clone(), f.schema.clone(), v.clone())),
            extra,
        );
        rec.value_schema = Some(s);
        rec.value = v;
        Ok(Some(rec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn person() -> Struct {
        let schema = Arc::new(
            Schema::struct_named("p")
                .field("id", Schema::int32())
                .field("name", Schema::string().optional())
                .field("ssn", Schema::string().optional())
                .field("ts", Schema::int64().optional()),
        );
        Struct::new(schema)
            .with("id", Value::Int32(7))
            .unwrap()
            .with("name", Value::String("ann".into()))
            .unwrap()
            .with("ssn", Value::String("123".into()))
            .unwrap()
            .with("ts", Value::Int64(1_700_000_000_000))
            .unwrap()
    }

    fn rec(value: Value) -> Rec {
        let value_schema = value.as_struct().map(|s| (*s.schema).clone());
        Rec {
            topic: "db.public.users".into(),
            partition: Some(0),
            offset: Some(5),
            key_schema: None,
            key: Value::Null,
            value_schema,
            value,
            timestamp: Some(1_700_000_000_000),
            headers: Vec::new(),
        }
    }

    fn run(config: &[(&str, &str)], r: Rec) -> Option<Rec> {
        Chain::from_config(&cfg(config)).unwrap().apply(r).unwrap()
    }

    #[test]
    fn routers_rename_topics() {
        let out = run(
            &[
                ("transforms", "r"),
                (
                    "transforms.r.type",
                    "org.apache.kafka.connect.transforms.RegexRouter",
                ),
                ("transforms.r.regex", "db\\.public\\.(.*)"),
                ("transforms.r.replacement", "cdc-$1"),
            ],
            rec(Value::Null),
        )
        .unwrap();
        assert_eq!(out.topic, "cdc-users");
        let out = run(
            &[
                ("transforms", "t"),
                (
                    "transforms.t.type",
                    "org.apache.kafka.connect.transforms.TimestampRouter",
                ),
            ],
            rec(Value::Null),
        )
        .unwrap();
        assert_eq!(out.topic, "db.public.users-20231114");
    }

    #[test]
    fn value_to_key_and_extract_field() {
        let out = run(
            &[
                ("transforms", "k,x"),
                (
                    "transforms.k.type",
                    "org.apache.kafka.connect.transforms.ValueToKey",
                ),
                ("transforms.k.fields", "id"),
                (
                    "transforms.x.type",
                    "org.apache.kafka.connect.transforms.ExtractField$Key",
                ),
                ("transforms.x.field", "id"),
            ],
            rec(Value::Struct(person())),
        )
        .unwrap();
        assert_eq!(out.key, Value::Int32(7));
        assert_eq!(out.key_schema, Some(Schema::int32()));
        let out = run(
            &[
                ("transforms", "x"),
                (
                    "transforms.x.type",
                    "org.apache.kafka.connect.transforms.ExtractField$Value",
                ),
                ("transforms.x.field", "name"),
            ],
            rec(Value::Map(vec![(
                Value::String("name".into()),
                Value::String("bo".into()),
            )])),
        )
        .unwrap();
        assert_eq!(out.value, Value::String("bo".into()));
    }

    #[test]
    fn replace_insert_mask_cast() {
        let out = run(
            &[
                ("transforms", "r,i,m,c"),
                (
                    "transforms.r.type",
                    "org.apache.kafka.connect.transforms.ReplaceField$Value",
                ),
                ("transforms.r.exclude", "ts"),
                ("transforms.r.renames", "name:full_name"),
                (
                    "transforms.i.type",
                    "org.apache.kafka.connect.transforms.InsertField$Value",
                ),
                ("transforms.i.topic.field", "src"),
                ("transforms.i.static.field", "origin"),
                ("transforms.i.static.value", "pg"),
                (
                    "transforms.m.type",
                    "org.apache.kafka.connect.transforms.MaskField$Value",
                ),
                ("transforms.m.fields", "ssn"),
                ("transforms.m.replacement", "***"),
                (
                    "transforms.c.type",
                    "org.apache.kafka.connect.transforms.Cast$Value",
                ),
                ("transforms.c.spec", "id:string"),
            ],
            rec(Value::Struct(person())),
        )
        .unwrap();
        let s = out.value.as_struct().unwrap();
        let names: Vec<&str> = s.schema.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id", "full_name", "ssn", "src", "origin"]);
        assert_eq!(s.get("id"), Some(&Value::String("7".into())));
        assert_eq!(s.get("ssn"), Some(&Value::String("***".into())));
        assert_eq!(s.get("src"), Some(&Value::String("db.public.users".into())));
        assert_eq!(s.get("origin"), Some(&Value::String("pg".into())));
        assert!(s.validate().is_ok(), "{:?}", s.validate());
        assert_eq!(out.value_schema.as_ref(), Some(&*s.schema));
        // Include keeps only the listed fields; a bad cast type is a config error.
        let out = run(
            &[
                ("transforms", "r"),
                (
                    "transforms.r.type",
                    "org.apache.kafka.connect.transforms.ReplaceField$Value",
                ),
                ("transforms.r.include", "id"),
            ],
            rec(Value::Struct(person())),
        )
        .unwrap();
        assert_eq!(out.value.as_struct().unwrap().schema.fields.len(), 1);
        let e = Chain::from_config(&cfg(&[
            ("transforms", "c"),
            (
                "transforms.c.type",
                "org.apache.kafka.connect.transforms.Cast$Value",
            ),
            ("transforms.c.spec", "id:date"),
        ]))
        .unwrap_err();
        assert!(
            matches!(e, TransformError::Config { ref field, .. } if field == "transforms.c.spec"),
            "{e}"
        );
    }

    #[test]
    fn timestamps_convert_both_ways() {
        let out = run(
            &[
                ("transforms", "t"),
                (
                    "transforms.t.type",
                    "org.apache.kafka.connect.transforms.TimestampConverter$Value",
                ),
                ("transforms.t.field", "ts"),
                ("transforms.t.target.type", "string"),
                ("transforms.t.format", "yyyy-MM-dd'T'HH:mm:ss.SSS"),
            ],
            rec(Value::Struct(person())),
        )
        .unwrap();
        let s = out.value.as_struct().unwrap();
        assert_eq!(
            s.get("ts"),
            Some(&Value::String("2023-11-14T22:13:20.000".into()))
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20.000", "yyyy-MM-dd'T'HH:mm:ss.SSS"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            format_time(-1, "yyyy-MM-dd HH:mm:ss.SSS"),
            "1969-12-31 23:59:59.999"
        );
        let out = run(
            &[
                ("transforms", "t"),
                (
                    "transforms.t.type",
                    "org.apache.kafka.connect.transforms.TimestampConverter$Value",
                ),
                ("transforms.t.field", "ts"),
                ("transforms.t.target.type", "Date"),
            ],
            rec(Value::Struct(person())),
        )
        .unwrap();
        let s = out.value.as_struct().unwrap();
        assert_eq!(s.get("ts"), Some(&Value::Int32(19675)));
        assert_eq!(
            s.schema.field_named("ts").unwrap().schema.name.as_deref(),
            Some(runnel_connect_api::logical::DATE)
        );
    }

    #[test]
    fn filter_with_predicates_and_negation() {
        let base = [
            ("transforms", "f"),
            (
                "transforms.f.type",
                "org.apache.kafka.connect.transforms.Filter",
            ),
            ("transforms.f.predicate", "p"),
            ("predicates", "p"),
            (
                "predicates.p.type",
                "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
            ),
            ("predicates.p.pattern", "db\\..*"),
        ];
        assert!(
            run(&base, rec(Value::Null)).is_none(),
            "matching topic dropped"
        );
        let mut negated = base.to_vec();
        negated.push(("transforms.f.negate", "true"));
        assert!(run(&negated, rec(Value::Null)).is_some());
        let tomb = [
            ("transforms", "f"),
            (
                "transforms.f.type",
                "org.apache.kafka.connect.transforms.Filter",
            ),
            ("transforms.f.predicate", "t"),
            ("predicates", "t"),
            (
                "predicates.t.type",
                "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
            ),
        ];
        assert!(run(&tomb, rec(Value::Null)).is_none());
        assert!(run(&tomb, rec(Value::Int32(1))).is_some());
        let mut with_header = rec(Value::Int32(1));
        with_header.headers.push(Header {
            key: "drop".into(),
            schema: None,
            value: Value::Null,
        });
        let hdr = [
            ("transforms", "f"),
            (
                "transforms.f.type",
                "org.apache.kafka.connect.transforms.Filter",
            ),
            ("transforms.f.predicate", "h"),
            ("predicates", "h"),
            (
                "predicates.h.type",
                "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
            ),
            ("predicates.h.name", "drop"),
        ];
        assert!(run(&hdr, with_header).is_none());
        assert!(run(&hdr, rec(Value::Int32(1))).is_some());
        assert!(Chain::from_config(&cfg(&[
            ("transforms", "f"),
            (
                "transforms.f.type",
                "org.apache.kafka.connect.transforms.Filter"
            ),
            ("transforms.f.predicate", "missing"),
        ]))
        .is_err());
        assert!(Chain::from_config(&cfg(&[
            ("transforms", "x"),
            ("transforms.x.type", "com.Nope")
        ]))
        .is_err());
    }

    #[test]
    fn extract_new_record_state_unwraps_change_events() {
        let row = Arc::new(Schema::struct_named("v").field("id", Schema::int32()));
        let src = Arc::new(Schema::struct_named("s").field("table", Schema::string()));
        let env = Arc::new(
            Schema::struct_named("env")
                .field("before", (*row).clone().optional())
                .field("after", (*row).clone().optional())
                .field("source", (*src).clone())
                .field("op", Schema::string()),
        );
        let event = |op: &str| {
            let r = Value::Struct(
                Struct::new(row.clone())
                    .with("id", Value::Int32(1))
                    .unwrap(),
            );
            let mut s = Struct::new(env.clone());
            s.put(if op == "d" { "before" } else { "after" }, r)
                .unwrap();
            s.put(
                "source",
                Value::Struct(
                    Struct::new(src.clone())
                        .with("table", Value::String("users".into()))
                        .unwrap(),
                ),
            )
            .unwrap();
            s.put("op", Value::String(op.into())).unwrap();
            rec(Value::Struct(s))
        };
        let cfgs = [
            ("transforms", "u"),
            (
                "transforms.u.type",
                "io.debezium.transforms.ExtractNewRecordState",
            ),
            ("transforms.u.add.fields", "op,table"),
        ];
        let out = run(&cfgs, event("c")).unwrap();
        let s = out.value.as_struct().unwrap();
        assert_eq!(s.get("id"), Some(&Value::Int32(1)));
        assert_eq!(s.get("__op"), Some(&Value::String("c".into())));
        assert_eq!(s.get("__table"), Some(&Value::String("users".into())));
        assert!(
            run(&cfgs, event("d")).is_none(),
            "deletes dropped by default"
        );
        assert!(run(&cfgs, rec(Value::Null)).is_none(), "tombstones dropped");
        let mut rewrite = cfgs.to_vec();
        rewrite.push(("transforms.u.delete.handling.mode", "rewrite"));
        let out = run(&rewrite, event("d")).unwrap();
        assert_eq!(
            out.value.as_struct().unwrap().get("__deleted"),
            Some(&Value::String("true".into()))
        );
    }
}
