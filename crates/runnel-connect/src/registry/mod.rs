//! The Schema Registry converters: Confluent's `AvroConverter`,
//! `JsonSchemaConverter` and `ProtobufConverter`, with the settings
//! Confluent documents for them (under `key.converter.` /
//! `value.converter.`):
//!
//! * `schema.registry.url` (required; the first of a comma-separated list
//!   is used),
//! * `auto.register.schemas` (default `true`): register the schema made
//!   from the record's Connect schema under its subject; with `false` it
//!   must already be there (looked up, never registered),
//! * `use.latest.version` (default `false`): write with the subject's
//!   latest schema instead (the record's fields matched by name),
//! * `key.subject.name.strategy` / `value.subject.name.strategy`:
//!   `TopicNameStrategy` (default, `<topic>-key` / `<topic>-value`),
//!   `RecordNameStrategy`, `TopicRecordNameStrategy` (Confluent's class
//!   names or the short ones).
//! * `basic.auth.credentials.source` / `basic.auth.user.info` are refused
//!   with a config error: Runnel's registry client sends no credentials
//!   yet.
//!
//! Records are in the registry's wire format (magic byte 0, the schema id
//! as 4 big-endian bytes, Protobuf's message indexes, the payload). A
//! null value is a null record. Each format maps Connect schemas to its
//! registry schemas and back as Confluent's `AvroData` and
//! `JsonSchemaData` and `ProtobufData` do, so what one side writes reads
//! the same on the other: [`avro`], [`json_schema`], [`protobuf`] (whose
//! own settings, `optional.for.nullables` and `wrapper.for.nullables`,
//! are there). A record needs a Connect schema (a
//! schemaless value is an error, where Confluent's AvroConverter would
//! write Avro's "anything" union).
//!
//! Reading, the writer's schema comes from the registry by the record's id
//! (parsed once per id and topic); the Connect schema's version is the
//! subject version holding it, when the registry knows one (as
//! Confluent's deserializers look it up), unless the schema carries its
//! own `connect.version`.

pub mod avro;
pub mod json_schema;
pub mod protobuf;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use runnel_connect_api::{Config, Schema, Value};
use runnel_registry_client::{wire, RegistryClient, SubjectNameStrategy};
use runnel_schema::{ParsedSchema, SchemaType};

use crate::convert::{ConvertError, Converter};

pub const AVRO: &str = "io.confluent.connect.avro.AvroConverter";
pub const JSON_SCHEMA: &str = "io.confluent.connect.json.JsonSchemaConverter";
pub const PROTOBUF: &str = "io.confluent.connect.protobuf.ProtobufConverter";

/// An error of a registry converter's step: whether it may pass (the
/// registry could not be reached, or answered 5xx).
trait RegistryFailure: std::fmt::Display {
    fn retriable(&self) -> bool {
        false
    }
}

impl RegistryFailure for runnel_registry_client::ClientError {
    fn retriable(&self) -> bool {
        match self {
            runnel_registry_client::ClientError::Transport { .. } => true,
            runnel_registry_client::ClientError::Registry { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

impl RegistryFailure for runnel_registry_client::wire::WireError {}

pub(crate) fn err(msg: impl Into<String>) -> ConvertError {
    ConvertError::new(msg)
}

/// One registry format: how Connect schemas become registry schemas and
/// how values are written and read with them.
pub trait Format: Send + Sync + 'static {
    /// The registry's `schemaType`.
    const TYPE: SchemaType;
    /// The converter's class, for messages.
    const CLASS: &'static str;
    /// What writing with one registry schema needs (made once per schema).
    type Writer: Send + Sync;
    /// What reading with one writer schema needs, the Connect schema
    /// included (made once per id).
    type Reader: Send + Sync;

    /// The registry schema text for a Connect schema.
    fn schema_text(&self, schema: &Schema) -> Result<String, ConvertError>;
    fn writer(&self, parsed: &ParsedSchema) -> Result<Self::Writer, ConvertError>;
    /// Appends the payload (after the magic byte and id) to `out`.
    fn encode(
        &self,
        writer: &Self::Writer,
        schema: &Schema,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<(), ConvertError>;
    fn reader(
        &self,
        parsed: &ParsedSchema,
        version: Option<i32>,
    ) -> Result<Self::Reader, ConvertError>;
    /// Reads a payload (after the magic byte and id).
    fn decode(
        &self,
        reader: &Self::Reader,
        payload: &[u8],
    ) -> Result<(Schema, Value), ConvertError>;
}

/// The settings every registry converter shares.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub auto_register: bool,
    pub use_latest: bool,
    pub strategy: SubjectNameStrategy,
}

pub(crate) fn flag(settings: &Config, key: &str, default: bool) -> Result<bool, ConvertError> {
    match settings.get(key).map(|s| s.trim()) {
        None | Some("") => Ok(default),
        Some(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(s) => Err(err(format!(
            "Invalid value {s} for configuration {key}: Expected value to be either true or false"
        ))),
    }
}

impl Settings {
    /// Reads and checks the settings (the converter prefix removed).
    pub fn parse(settings: &Config, is_key: bool) -> Result<Settings, ConvertError> {
        let url = settings
            .get("schema.registry.url")
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                err("Missing required configuration \"schema.registry.url\" which has no default value.")
            })?;
        let first = url.split(',').next().unwrap_or(url).trim();
        if !(first.starts_with("http://") || first.starts_with("https://")) {
            return Err(err(format!(
                "Invalid value {url} for configuration schema.registry.url: expected http://host:port"
            )));
        }
        let which = if is_key {
            "key.subject.name.strategy"
        } else {
            "value.subject.name.strategy"
        };
        let strategy = match settings.get(which).map(|s| s.trim()) {
            None | Some("") => SubjectNameStrategy::TopicName,
            Some(s) => SubjectNameStrategy::parse(s).ok_or_else(|| {
                err(format!(
                    "Invalid value {s} for configuration {which}: Class {s} could not be found."
                ))
            })?,
        };
        for key in ["basic.auth.credentials.source", "basic.auth.user.info"] {
            if settings.get(key).is_some_and(|v| !v.trim().is_empty()) {
                return Err(err(format!(
                    "Invalid value for configuration {key}: Runnel's schema registry client does not send credentials"
                )));
            }
        }
        Ok(Settings {
            url: url.to_string(),
            auto_register: flag(settings, "auto.register.schemas", true)?,
            use_latest: flag(settings, "use.latest.version", false)?,
            strategy,
        })
    }
}

/// The schema made from one Connect schema, and how to write with it.
struct Own<W> {
    schema: Schema,
    text: String,
    record_name: Option<String>,
    writer: W,
    /// Ids found by look-up (`auto.register.schemas=false`), by subject.
    ids: Mutex<HashMap<String, i32>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Readers by writer schema id and topic.
type Readers<R> = HashMap<(i32, String), Arc<R>>;

/// A converter of records in the registry's wire format.
pub struct RegistryConverter<F: Format> {
    format: F,
    client: RegistryClient,
    is_key: bool,
    settings: Settings,
    own: Mutex<Vec<Arc<Own<F::Writer>>>>,
    latest: Mutex<HashMap<i32, Arc<F::Writer>>>,
    readers: Mutex<Readers<F::Reader>>,
}

/// How many Connect schemas a converter remembers (a connector has a few;
/// one whose schema keeps changing must not grow memory without end).
const OWN_CACHE: usize = 64;

impl<F: Format> RegistryConverter<F> {
    pub fn new(format: F, settings: &Config, is_key: bool) -> Result<Self, ConvertError> {
        let settings = Settings::parse(settings, is_key)?;
        Ok(RegistryConverter {
            format,
            client: RegistryClient::new(&settings.url),
            is_key,
            settings,
            own: Mutex::new(Vec::new()),
            latest: Mutex::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
        })
    }

    fn registry_error(&self, what: &str, topic: &str, e: impl RegistryFailure) -> ConvertError {
        let message = format!(
            "Failed to {what} data for topic {topic} with {}: {e}",
            F::CLASS.rsplit('.').next().unwrap_or(F::CLASS)
        );
        if e.retriable() {
            ConvertError::retriable(message)
        } else {
            err(message)
        }
    }

    fn own(&self, schema: &Schema) -> Result<Arc<Own<F::Writer>>, ConvertError> {
        if let Some(o) = lock(&self.own).iter().find(|o| o.schema == *schema) {
            return Ok(o.clone());
        }
        let text = self.format.schema_text(schema)?;
        let parsed = ParsedSchema::parse(F::TYPE, &text, &[]).map_err(|e| {
            err(format!(
                "the {} schema made from the Connect schema does not parse: {e}",
                F::TYPE.name()
            ))
        })?;
        let own = Arc::new(Own {
            schema: schema.clone(),
            record_name: parsed.record_name(),
            writer: self.format.writer(&parsed)?,
            text,
            ids: Mutex::new(HashMap::new()),
        });
        let mut cache = lock(&self.own);
        if cache.len() >= OWN_CACHE {
            cache.remove(0);
        }
        cache.push(own.clone());
        Ok(own)
    }

    fn latest_writer(
        &self,
        id: i32,
        parsed: &ParsedSchema,
    ) -> Result<Arc<F::Writer>, ConvertError> {
        if let Some(w) = lock(&self.latest).get(&id) {
            return Ok(w.clone());
        }
        let w = Arc::new(self.format.writer(parsed)?);
        lock(&self.latest).insert(id, w.clone());
        Ok(w)
    }
}

impl<F: Format> Converter for RegistryConverter<F> {
    fn encode(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConvertError> {
        if value.is_null() && schema.is_none_or(|s| s.default.is_none()) {
            return Ok(None);
        }
        let schema = schema.ok_or_else(|| {
            err(format!(
                "{} needs a schema: the record's value has none",
                F::CLASS
            ))
        })?;
        schema.validate(value).map_err(|e| err(e.to_string()))?;
        let own = self.own(schema)?;
        let fail =
            |e: runnel_registry_client::ClientError| self.registry_error("serialize", topic, e);
        let subject = self
            .settings
            .strategy
            .subject(topic, self.is_key, own.record_name.as_deref())
            .map_err(fail)?;
        let mut out = Vec::new();
        if self.settings.use_latest {
            let latest = self.client.latest(&subject).map_err(fail)?;
            if latest.schema.schema_type() != F::TYPE {
                return Err(err(format!(
                    "the latest schema of subject {subject} is {}, not {}",
                    latest.schema.schema_type().name(),
                    F::TYPE.name()
                )));
            }
            let writer = self.latest_writer(latest.id, &latest.schema)?;
            wire::write_header(latest.id, &mut out);
            self.format.encode(&writer, schema, value, &mut out)?;
            return Ok(Some(out));
        }
        let id = if self.settings.auto_register {
            self.client
                .register(&subject, F::TYPE, &own.text, &[], false)
                .map_err(fail)?
        } else {
            let known = lock(&own.ids).get(&subject).copied();
            match known {
                Some(id) => id,
                None => {
                    let found = self
                        .client
                        .lookup(&subject, F::TYPE, &own.text, &[], false)
                        .map_err(fail)?;
                    lock(&own.ids).insert(subject.clone(), found.id);
                    found.id
                }
            }
        };
        wire::write_header(id, &mut out);
        self.format.encode(&own.writer, schema, value, &mut out)?;
        Ok(Some(out))
    }

    fn decode(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Schema>, Value), ConvertError> {
        let Some(bytes) = bytes else {
            return Ok((None, Value::Null));
        };
        let (id, payload) =
            wire::split(bytes).map_err(|e| self.registry_error("deserialize", topic, e))?;
        let key = (id, topic.to_string());
        let cached = lock(&self.readers).get(&key).cloned();
        let reader = match cached {
            Some(r) => r,
            None => {
                let fail = |e| self.registry_error("deserialize", topic, e);
                let parsed = self.client.schema_by_id(id).map_err(fail)?;
                if parsed.schema_type() != F::TYPE {
                    return Err(err(format!(
                        "schema {id} of a record in topic {topic} is {}, not {}",
                        parsed.schema_type().name(),
                        F::TYPE.name()
                    )));
                }
                // The subject version holding the writer's schema, as
                // Confluent's deserializers look it up (none when the
                // subject does not hold it: another strategy, or gone).
                let version = self
                    .settings
                    .strategy
                    .subject(topic, self.is_key, parsed.record_name().as_deref())
                    .ok()
                    .and_then(|subject| {
                        self.client
                            .lookup(&subject, F::TYPE, parsed.text(), &[], false)
                            .ok()
                    })
                    .filter(|s| s.id == id)
                    .map(|s| s.version);
                let r = Arc::new(self.format.reader(&parsed, version)?);
                lock(&self.readers).insert(key, r.clone());
                r
            }
        };
        let (schema, value) = self.format.decode(&reader, payload).map_err(|e| {
            err(format!(
                "Failed to deserialize data for topic {topic} (schema {id}): {}",
                e.message
            ))
        })?;
        Ok((Some(schema), value))
    }
}

/// The registry converter of `simple` (a class's last name), if it is one.
pub fn converter(
    simple: &str,
    settings: &Config,
    is_key: bool,
) -> Option<Result<Box<dyn Converter>, ConvertError>> {
    fn boxed<F: Format>(
        r: Result<RegistryConverter<F>, ConvertError>,
    ) -> Result<Box<dyn Converter>, ConvertError> {
        r.map(|c| Box::new(c) as Box<dyn Converter>)
    }
    Some(match simple {
        "AvroConverter" => boxed(RegistryConverter::new(avro::AvroFormat, settings, is_key)),
        "JsonSchemaConverter" => boxed(RegistryConverter::new(
            json_schema::JsonSchemaFormat,
            settings,
            is_key,
        )),
        "ProtobufConverter" => protobuf::ProtobufFormat::from_settings(settings)
            .and_then(|f| boxed(RegistryConverter::new(f, settings, is_key))),
        _ => return None,
    })
}
