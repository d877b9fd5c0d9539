//! The formats that keep their schemas in a schema registry: AVRO,
//! PROTOBUF and JSON_SR, in Confluent's wire format (magic byte 0, the schema id, the
//! payload).
//!
//! Decoding reads the schema id of each record and decodes with that
//! (writer's) schema, fetched through the [`RegistryClient`] once per id.
//! Encoding writes with the schema a codec was given an id of
//! ([`CodecSpec::schema_id`]), or else with the latest schema of the
//! topic's subject (`<topic>-key` / `<topic>-value`), registering the
//! schema ksqlDB would derive from the columns when the subject has none;
//! the schema is fixed at the codec's first record. Statements register
//! their output schemas up front ([`RowFormat::register`]) and infer
//! columns from the registry ([`RowFormat::infer`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use runnel_registry_client::{wire, ClientError, RegistryClient, SubjectNameStrategy};
use runnel_schema::{ParsedSchema, SchemaType};
use serde_json::{json, Value as Json};

use crate::avro_read::RowPlan;
use crate::avro_write::RowWriter;
use crate::format::{CodecSpec, FormatError, Row, RowCodec, RowFormat};
use crate::json::from_json;
use crate::protobuf_plan::{ReadPlan as PbReadPlan, WritePlan as PbWritePlan};
use crate::schema::Column;
use crate::types::{SqlType, Value};
use crate::{avro, protobuf};

/// Which schema type a registry format writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Avro,
    Protobuf,
    JsonSr,
}

impl Kind {
    fn schema_type(self) -> SchemaType {
        match self {
            Kind::Avro => SchemaType::Avro,
            Kind::Protobuf => SchemaType::Protobuf,
            Kind::JsonSr => SchemaType::Json,
        }
    }

    /// Whether rows are always a record (message), one column or not.
    fn always_wrapped(self) -> bool {
        self == Kind::Protobuf
    }
}

/// AVRO or JSON_SR, with the client of the registry its schemas live in.
pub struct RegistryFormat {
    kind: Kind,
    client: RegistryClient,
}

impl RegistryFormat {
    pub fn new(kind: Kind, client: RegistryClient) -> RegistryFormat {
        RegistryFormat { kind, client }
    }

    fn schema_type(&self) -> SchemaType {
        self.kind.schema_type()
    }
}

fn client_err(e: ClientError) -> FormatError {
    FormatError::Registry(e.to_string())
}

/// The subject of a topic's keys or values (TopicNameStrategy).
pub fn subject(topic: &str, is_key: bool) -> String {
    SubjectNameStrategy::TopicName
        .subject(topic, is_key, None)
        .unwrap_or_else(|_| format!("{topic}-value"))
}

/// The schema text ksqlDB derives for rows of `columns` (`full_name`:
/// the record or message name, ksqlDB's default when `None`).
pub fn derived_schema(
    kind: Kind,
    columns: &[Column],
    wrap: bool,
    full_name: Option<&str>,
    nullable: Option<protobuf::NullableRepresentation>,
) -> Result<String, FormatError> {
    Ok(match kind {
        Kind::Avro => avro::schema_for(
            columns,
            wrap,
            full_name.unwrap_or(avro::DEFAULT_RECORD_NAME),
        )
        .to_string(),
        Kind::Protobuf => protobuf::schema_with(
            columns,
            full_name.unwrap_or(protobuf::DEFAULT_MESSAGE_NAME),
            nullable,
        )?,
        Kind::JsonSr => json_schema_for(columns, wrap).to_string(),
    })
}

fn check_columns(columns: &[Column], what: &str, kind: Kind) -> Result<(), FormatError> {
    fn walk(ty: &SqlType, kind: Kind) -> Result<(), String> {
        match ty {
            SqlType::Map(k, v) => {
                if **k != SqlType::String {
                    return Err(match kind {
                        Kind::Avro => {
                            format!("Avro only supports MAPs with STRING keys, but got {ty}.")
                        }
                        Kind::Protobuf => {
                            "PROTOBUF format only supports MAP types with STRING keys".into()
                        }
                        Kind::JsonSr => crate::json::MAP_KEYS_REFUSED.into(),
                    });
                }
                walk(v, kind)
            }
            SqlType::Array(t) => walk(t, kind),
            SqlType::Struct(fields) => fields.iter().try_for_each(|(_, t)| walk(t, kind)),
            _ => Ok(()),
        }
    }
    for c in columns {
        walk(&c.ty, kind)
            .map_err(|e| FormatError::Unsupported(format!("{what} column {}: {e}", c.name)))?;
        if kind == Kind::Avro
            && !c.name.chars().enumerate().all(|(i, ch)| {
                ch == '_' || ch.is_ascii_alphabetic() || (i > 0 && ch.is_ascii_digit())
            })
        {
            return Err(FormatError::Unsupported(format!(
                "Schema is not compatible with Avro: Illegal initial character: {}",
                c.name
            )));
        }
    }
    Ok(())
}

impl RowFormat for RegistryFormat {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Avro => "AVRO",
            Kind::Protobuf => "PROTOBUF",
            Kind::JsonSr => "JSON_SR",
        }
    }

    fn needs_schema_registry(&self) -> bool {
        true
    }

    fn supports_protobuf_nullable(&self) -> bool {
        self.kind == Kind::Protobuf
    }

    fn check(&self, columns: &[Column], what: &str) -> Result<(), FormatError> {
        check_columns(columns, what, self.kind)?;
        if self.kind == Kind::Protobuf {
            protobuf::schema_for(columns, protobuf::DEFAULT_MESSAGE_NAME)?;
        }
        Ok(())
    }

    fn codec(&self, spec: &CodecSpec<'_>) -> Arc<dyn RowCodec> {
        Arc::new(RegistryCodec {
            kind: self.kind,
            client: self.client.clone(),
            columns: spec.columns.to_vec(),
            wrap: spec.columns.len() != 1 || spec.wrap_single || self.kind.always_wrapped(),
            schema_id: spec.schema_id,
            subject: spec.topic.map(|t| subject(t, spec.is_key)),
            full_name: spec.full_name.map(str::to_string),
            protobuf_nullable: spec.protobuf_nullable,
            writer: OnceLock::new(),
            avro: Mutex::new(HashMap::new()),
            first_avro: OnceLock::new(),
            json_keys: crate::json::json_keys(spec.columns),
            pb_read: Mutex::new(HashMap::new()),
            first_pb_read: OnceLock::new(),
            pb_write: OnceLock::new(),
            json_fast: self.kind == Kind::JsonSr
                && (spec.columns.len() != 1 || spec.wrap_single)
                && json_names_apart(spec.columns),
        })
    }

    fn register(&self, spec: &CodecSpec<'_>) -> Result<Option<i32>, FormatError> {
        let Some(topic) = spec.topic else {
            return Ok(None);
        };
        let wrap = spec.columns.len() != 1 || spec.wrap_single || self.kind.always_wrapped();
        let text = derived_schema(
            self.kind,
            spec.columns,
            wrap,
            spec.full_name,
            spec.protobuf_nullable,
        )?;
        self.client
            .register(
                &subject(topic, spec.is_key),
                self.schema_type(),
                &text,
                &[],
                false,
            )
            .map(Some)
            .map_err(client_err)
    }

    fn infer(
        &self,
        topic: &str,
        is_key: bool,
        schema_id: Option<i32>,
    ) -> Result<Option<(Vec<Column>, bool)>, FormatError> {
        let schema = match schema_id {
            Some(id) => self.client.schema_by_id(id).map_err(client_err)?,
            None => match self.client.latest(&subject(topic, is_key)) {
                Ok(s) => s.schema,
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(client_err(e)),
            },
        };
        let single = if is_key { "ROWKEY" } else { "ROWVAL" };
        // As ksqlDB: columns of a schema named by id keep its names' case;
        // those of a subject's latest schema are upper-cased, nested
        // fields too.
        match schema_id {
            Some(_) => columns_as_written(&schema, single).map(Some),
            None => infer_columns(&schema, single).map(Some),
        }
    }
}

/// The columns a parsed schema gives, names in upper case (nested fields
/// too), as ksqlDB infers them from a subject's latest schema.
pub fn infer_columns(
    schema: &ParsedSchema,
    single: &str,
) -> Result<(Vec<Column>, bool), FormatError> {
    columns_as_written(schema, single)
        .map(|(cols, wrapped)| (crate::schema::upper_cased(cols), wrapped))
}

/// The columns a parsed schema gives, named as the schema names them (a
/// schema given by id).
pub fn columns_as_written(
    schema: &ParsedSchema,
    single: &str,
) -> Result<(Vec<Column>, bool), FormatError> {
    if let Some(a) = schema.as_avro() {
        let parts = avro_schemas(0, a, schema)?;
        return avro::infer_columns_with(&parts.main, &parts.refs, single);
    }
    if let Some(j) = schema.as_json() {
        return json_infer_columns(j, single);
    }
    if let Some(m) = schema.as_protobuf() {
        return Ok((protobuf::columns_as_written(&m)?, true));
    }
    Err(FormatError::Unsupported(format!(
        "cannot infer columns from a {} schema",
        schema.schema_type()
    )))
}

struct RegistryCodec {
    kind: Kind,
    client: RegistryClient,
    columns: Vec<Column>,
    wrap: bool,
    schema_id: Option<i32>,
    subject: Option<String>,
    full_name: Option<String>,
    protobuf_nullable: Option<protobuf::NullableRepresentation>,
    writer: OnceLock<(i32, Arc<ParsedSchema>)>,
    /// Avro schemas by id with the named types of their references.
    avro: Mutex<HashMap<i32, Arc<AvroSchemas>>>,
    /// The first of them (most topics have one writer schema): found
    /// without the lock.
    first_avro: OnceLock<(i32, Arc<AvroSchemas>)>,
    /// JSON_SR: each column's `"NAME":`, for the JSON format's writer.
    json_keys: Vec<Box<[u8]>>,
    /// PROTOBUF: how messages of each writer schema and message (by id
    /// and message indexes) are read directly, when they can be (see
    /// `protobuf_plan`).
    pb_read: Mutex<HashMap<PbMessage, Option<Arc<PbReadPlan>>>>,
    /// The first of them, found without the lock.
    first_pb_read: OnceLock<(PbMessage, Option<Arc<PbReadPlan>>)>,
    /// PROTOBUF: the header and message indexes rows are written with,
    /// and how they are written directly (when they can be).
    pb_write: OnceLock<Option<(Vec<u8>, PbWritePlan)>>,
    /// JSON_SR: whether objects are read with the JSON format's reader
    /// (rows are objects, and no two columns' names are equal ignoring
    /// case: the reader places each key in one column).
    json_fast: bool,
}

/// A Protobuf message of a schema: the schema id and the message indexes.
type PbMessage = (i32, Vec<i32>);

/// Whether no two columns' names are equal ignoring ASCII case.
fn json_names_apart(columns: &[Column]) -> bool {
    columns.iter().enumerate().all(|(i, a)| {
        columns[..i]
            .iter()
            .all(|b| !a.name.eq_ignore_ascii_case(&b.name))
    })
}

/// An Avro schema and the schemas its references define (the named types
/// it may use), as apache-avro reads and writes with them.
struct AvroSchemas {
    main: apache_avro::Schema,
    refs: Vec<apache_avro::Schema>,
    /// How records of this schema are read as the codec's columns, when
    /// they can be read directly (see `avro_read`).
    plan: Option<RowPlan>,
    /// How the codec's rows are written with this schema directly (see
    /// `avro_write`).
    writer: Option<RowWriter>,
}

/// The texts of a schema's references, each after its own references,
/// once each.
fn reference_texts<'a>(refs: &'a [runnel_schema::Resolved], out: &mut Vec<&'a str>) {
    for r in refs {
        reference_texts(&r.references, out);
        if !out.contains(&r.schema.as_str()) {
            out.push(&r.schema);
        }
    }
}

/// An Avro schema with its references' named types.
fn avro_schemas(
    id: i32,
    main: &apache_avro::Schema,
    schema: &ParsedSchema,
) -> Result<AvroSchemas, FormatError> {
    if schema.references().is_empty() {
        return Ok(AvroSchemas {
            main: main.clone(),
            refs: Vec::new(),
            plan: None,
            writer: None,
        });
    }
    let mut texts = Vec::new();
    reference_texts(schema.references(), &mut texts);
    let (main, refs) = apache_avro::Schema::parse_str_with_list(schema.text(), texts)
        .map_err(|e| FormatError::Decode(format!("schema {id}: {e}")))?;
    Ok(AvroSchemas {
        main,
        refs,
        plan: None,
        writer: None,
    })
}

impl RegistryCodec {
    /// The Avro schema of `id` with its references' named types (parsed
    /// once per id).
    fn avro(&self, id: i32, schema: &ParsedSchema) -> Result<Arc<AvroSchemas>, FormatError> {
        if let Some((first, a)) = self.first_avro.get() {
            if *first == id {
                return Ok(a.clone());
            }
        }
        let mut cache = self
            .avro
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(a) = cache.get(&id) {
            return Ok(a.clone());
        }
        let main = schema
            .as_avro()
            .ok_or_else(|| FormatError::Decode(format!("schema {id} is not an Avro schema")))?;
        let mut parts = avro_schemas(id, main, schema)?;
        let names = avro::names_in(std::iter::once(&parts.main).chain(&parts.refs));
        let columns: Vec<(&str, &SqlType)> = self
            .columns
            .iter()
            .map(|c| (c.name.as_str(), &c.ty))
            .collect();
        let plan = RowPlan::compile(&parts.main, &names, &columns, self.wrap);
        let names_only: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
        let writer = RowWriter::compile(&parts.main, &names, &names_only, self.wrap);
        drop(names);
        parts.plan = plan;
        parts.writer = writer;
        let parts = Arc::new(parts);
        cache.insert(id, parts.clone());
        let _ = self.first_avro.set((id, parts.clone()));
        Ok(parts)
    }

    /// The Avro schema of `id` as [`Self::avro`] gives it, fetched from
    /// the registry only the first time.
    fn avro_by_id(&self, id: i32) -> Result<Arc<AvroSchemas>, FormatError> {
        if let Some((first, a)) = self.first_avro.get() {
            if *first == id {
                return Ok(a.clone());
            }
        }
        let cached = self
            .avro
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned();
        match cached {
            Some(a) => Ok(a),
            None => {
                let schema = self.client.schema_by_id(id).map_err(client_err)?;
                self.avro(id, &schema)
            }
        }
    }

    /// How messages of schema `id` at `indexes` are read directly, if
    /// they can be (compiled once; `None` also when the schema cannot be
    /// had: the general path then says why).
    fn pb_plan(&self, id: i32, indexes: Vec<i32>) -> Option<Arc<PbReadPlan>> {
        if let Some(((first, at), plan)) = self.first_pb_read.get() {
            if *first == id && *at == indexes {
                return plan.clone();
            }
        }
        let mut cache = self
            .pb_read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(plan) = cache.get(&(id, indexes.clone())) {
            return plan.clone();
        }
        let schema = self.client.schema_by_id(id).ok()?;
        let desc = schema.message_by_indexes(&indexes)?;
        let plan = PbReadPlan::compile(&desc, &self.columns, true).map(Arc::new);
        cache.insert((id, indexes.clone()), plan.clone());
        let _ = self.first_pb_read.set(((id, indexes), plan.clone()));
        plan
    }

    /// The schema this codec writes with, and its id.
    fn writer(&self) -> Result<&(i32, Arc<ParsedSchema>), FormatError> {
        if let Some(w) = self.writer.get() {
            return Ok(w);
        }
        let found = match (self.schema_id, &self.subject) {
            (Some(id), _) => (id, self.client.schema_by_id(id).map_err(client_err)?),
            (None, Some(subject)) => match self.client.latest(subject) {
                Ok(s) => (s.id, s.schema),
                Err(e) if e.is_not_found() => {
                    let schema_type = self.kind.schema_type();
                    let text = derived_schema(
                        self.kind,
                        &self.columns,
                        self.wrap,
                        self.full_name.as_deref(),
                        self.protobuf_nullable,
                    )?;
                    let id = self
                        .client
                        .register(subject, schema_type, &text, &[], false)
                        .map_err(client_err)?;
                    (id, self.client.schema_by_id(id).map_err(client_err)?)
                }
                Err(e) => return Err(client_err(e)),
            },
            (None, None) => {
                return Err(FormatError::Encode(
                    "no schema to write with: neither a schema id nor a subject".to_string(),
                ))
            }
        };
        Ok(self.writer.get_or_init(|| found))
    }

    /// A decoded value (as JSON) into the row.
    fn row_of(&self, j: &Json) -> Result<Row, FormatError> {
        row_of(&self.columns, self.wrap, j)
    }
}

/// A decoded value (as JSON) as a row of `columns`: the fields of a
/// record (`wrap`), found by name (exactly, else in any case), or the one
/// column.
pub(crate) fn row_of(columns: &[Column], wrap: bool, j: &Json) -> Result<Row, FormatError> {
    let dec = |e: crate::types::ValueError| FormatError::Decode(e.to_string());
    if !wrap {
        let ty = columns.first().map_or(&SqlType::String, |c| &c.ty);
        return Ok(vec![from_json(ty, j).map_err(dec)?]);
    }
    let Json::Object(obj) = j else {
        return Err(FormatError::Decode(format!(
            "expected a record of the columns, got {j}"
        )));
    };
    columns
        .iter()
        .map(|c| {
            let v = obj.get(&c.name).or_else(|| {
                obj.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&c.name))
                    .map(|(_, v)| v)
            });
            match v {
                None => Ok(Value::Null),
                Some(v) => from_json(&c.ty, v).map_err(dec),
            }
        })
        .collect()
}

impl RowCodec for RegistryCodec {
    fn encode(&self, row: &[Value]) -> Result<Option<Vec<u8>>, FormatError> {
        let (id, schema) = self.writer()?;
        let mut out = Vec::with_capacity(64);
        wire::write_header(*id, &mut out);
        match self.kind {
            Kind::Avro => {
                let parts = self.avro(*id, schema)?;
                if let Some(w) = &parts.writer {
                    let header = out.len();
                    if w.write(row, &mut out).is_ok() {
                        return Ok(Some(out));
                    }
                    // The general path says what does not fit.
                    out.truncate(header);
                }
                let a = &parts.main;
                let names = avro::names_in(std::iter::once(a).chain(&parts.refs));
                let value = if self.wrap {
                    let target = match a {
                        apache_avro::Schema::Record(r) => r,
                        _ => {
                            return Err(FormatError::Encode(format!(
                                "schema {id} is not a record, and the row has {} columns",
                                self.columns.len()
                            )))
                        }
                    };
                    let named: Vec<(String, Value)> = self
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| (c.name.clone(), v.clone()))
                        .collect();
                    avro::record_value(target, &named, &names)?
                } else {
                    avro::to_avro(row.first().unwrap_or(&Value::Null), a, &names)?
                };
                let datum =
                    apache_avro::to_avro_datum_schemata(a, parts.refs.iter().collect(), value)
                        .map_err(|e| FormatError::Encode(format!("cannot write Avro: {e}")))?;
                out.extend_from_slice(&datum);
            }
            Kind::Protobuf => {
                let direct = self.pb_write.get_or_init(|| {
                    let desc = schema.as_protobuf()?;
                    let indexes = schema.message_indexes(desc.full_name()).unwrap_or_default();
                    let mut prefix = Vec::with_capacity(8);
                    wire::write_header(*id, &mut prefix);
                    wire::write_indexes(&indexes, &mut prefix);
                    Some((prefix, PbWritePlan::compile(&desc, &self.columns)?))
                });
                if let Some((prefix, plan)) = direct {
                    let mut direct_out = Vec::with_capacity(prefix.len() + 64);
                    direct_out.extend_from_slice(prefix);
                    if plan.write(row, &mut direct_out).is_some() {
                        return Ok(Some(direct_out));
                    }
                    // The general path says what does not fit.
                }
                let desc = schema.as_protobuf().ok_or_else(|| {
                    FormatError::Encode(format!("schema {id} is not a Protobuf schema"))
                })?;
                let indexes = schema.message_indexes(desc.full_name()).unwrap_or_default();
                wire::write_indexes(&indexes, &mut out);
                let named: Vec<(String, Value)> = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| (c.name.clone(), v.clone()))
                    .collect();
                out.extend_from_slice(&protobuf::encode(&protobuf::message(&desc, &named)?));
            }
            Kind::JsonSr if self.wrap => {
                json_sr_object(&self.json_keys, &self.columns, row, &mut out)?;
            }
            Kind::JsonSr => json_sr_general(&self.columns, self.wrap, row, &mut out)?,
        }
        Ok(Some(out))
    }

    fn decode_with_prefix(
        &self,
        bytes: &[u8],
        prefix: usize,
        suffix: usize,
        spare: usize,
        unread: &[bool],
    ) -> Result<Row, FormatError> {
        if self.kind == Kind::Avro {
            let (id, payload) =
                wire::split(bytes).map_err(|e| FormatError::Decode(e.to_string()))?;
            if let Some(plan) = &self.avro_by_id(id)?.plan {
                return plan.read_padded(payload, (prefix, suffix, spare), unread);
            }
        }
        if self.kind == Kind::Protobuf {
            let (id, payload) =
                wire::split(bytes).map_err(|e| FormatError::Decode(e.to_string()))?;
            let (indexes, message) =
                wire::read_indexes(payload).map_err(|e| FormatError::Decode(e.to_string()))?;
            if let Some(plan) = self.pb_plan(id, indexes) {
                if let Some(row) = plan.read_padded(message, (prefix, suffix, spare), unread) {
                    return Ok(row);
                }
            }
        }
        if self.json_fast {
            // The JSON format's reader for an object of the columns;
            // anything else (and every error) through the general path.
            let (_, payload) =
                wire::split(bytes).map_err(|e| FormatError::Decode(e.to_string()))?;
            if let Ok(Some(row)) = crate::json::decode_object_at(
                &self.columns,
                payload,
                (prefix, suffix, spare),
                unread,
            ) {
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
        let (id, payload) = wire::split(bytes).map_err(|e| FormatError::Decode(e.to_string()))?;
        match self.kind {
            Kind::Avro => {
                let parts = self.avro_by_id(id)?;
                if let Some(plan) = &parts.plan {
                    return plan.read(payload);
                }
                let a = &parts.main;
                let mut reader = payload;
                let value = apache_avro::from_avro_datum_schemata(
                    a,
                    parts.refs.iter().collect(),
                    &mut reader,
                    None,
                )
                .map_err(|e| FormatError::Decode(format!("bad Avro record: {e}")))?;
                let names = avro::names_in(std::iter::once(a).chain(&parts.refs));
                self.row_of(&avro::to_json(&value, a, &names)?)
            }
            Kind::Protobuf => {
                let (indexes, message) =
                    wire::read_indexes(payload).map_err(|e| FormatError::Decode(e.to_string()))?;
                if let Some(plan) = self.pb_plan(id, indexes.clone()) {
                    if let Some(row) = plan.read_padded(message, (0, 0, 0), &[]) {
                        return Ok(row);
                    }
                }
                let schema = self.client.schema_by_id(id).map_err(client_err)?;
                let desc = schema.message_by_indexes(&indexes).ok_or_else(|| {
                    FormatError::Decode(format!(
                        "schema {id} has no Protobuf message at indexes {indexes:?}"
                    ))
                })?;
                self.row_of(&protobuf::decode(desc, message)?)
            }
            Kind::JsonSr => {
                if self.json_fast {
                    if let Ok(Some(row)) = crate::json::decode_object(&self.columns, payload) {
                        return Ok(row);
                    }
                }
                let j: Json = serde_json::from_slice(payload)
                    .map_err(|e| FormatError::Decode(format!("bad JSON: {e}")))?;
                self.row_of(&j)
            }
        }
    }
}

/// A JSON_SR row as an object of its columns, with the JSON format's
/// writer: the bytes [`json_sr_general`] writes (serde_json's
/// `preserve_order` keeps the columns' order there), without building the
/// object.
fn json_sr_object(
    keys: &[Box<[u8]>],
    columns: &[Column],
    row: &[Value],
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let header = out.len();
    if crate::json::encode_flat_object_into(keys, row, out) {
        return Ok(());
    }
    out.truncate(header);
    serde_json::to_writer(&mut *out, &crate::json::JsonRow { columns, row })
        .map_err(|e| FormatError::Encode(e.to_string()))
}

/// A JSON_SR row through a `serde_json::Value`: the object of the
/// columns (`wrap`) or the one column's value.
fn json_sr_general(
    columns: &[Column],
    wrap: bool,
    row: &[Value],
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let j = if wrap {
        Json::Object(
            columns
                .iter()
                .zip(row)
                .map(|(c, v)| (c.name.clone(), crate::json::to_json(v)))
                .collect(),
        )
    } else {
        crate::json::to_json(row.first().unwrap_or(&Value::Null))
    };
    serde_json::to_writer(&mut *out, &j).map_err(|e| FormatError::Encode(e.to_string()))
}

// ---- JSON Schema, as ksqlDB writes and reads it (Connect's conventions).

fn json_nullable(t: Json) -> Json {
    json!({"oneOf": [{"type": "null"}, t]})
}

fn json_type(ty: &SqlType) -> Json {
    match ty {
        SqlType::Boolean => json!({"type": "boolean"}),
        SqlType::Int => json!({"type": "integer", "connect.type": "int32"}),
        SqlType::BigInt => json!({"type": "integer", "connect.type": "int64"}),
        SqlType::Double => json!({"type": "number", "connect.type": "float64"}),
        SqlType::String => json!({"type": "string"}),
        SqlType::Bytes => json!({"type": "string", "connect.type": "bytes"}),
        SqlType::Decimal { precision, scale } => json!({
            "type": "number", "connect.type": "bytes",
            "title": "org.apache.kafka.connect.data.Decimal",
            "connect.parameters": {"scale": scale.to_string(), "connect.decimal.precision": precision.to_string()},
        }),
        SqlType::Date => {
            json!({"type": "integer", "connect.type": "int32", "title": "org.apache.kafka.connect.data.Date"})
        }
        SqlType::Time => {
            json!({"type": "integer", "connect.type": "int32", "title": "org.apache.kafka.connect.data.Time"})
        }
        SqlType::Timestamp => {
            json!({"type": "integer", "connect.type": "int64", "title": "org.apache.kafka.connect.data.Timestamp"})
        }
        SqlType::Array(t) => json!({"type": "array", "items": json_nullable(json_type(t))}),
        SqlType::Map(_, v) => {
            json!({"type": "object", "additionalProperties": json_nullable(json_type(v))})
        }
        SqlType::Struct(fields) => json_object(fields.iter().map(|(n, t)| (n.as_str(), t))),
    }
}

fn json_object<'a>(fields: impl Iterator<Item = (&'a str, &'a SqlType)>) -> Json {
    let mut props = serde_json::Map::new();
    for (i, (n, t)) in fields.enumerate() {
        let mut f = json_nullable(json_type(t));
        f["connect.index"] = json!(i);
        props.insert(n.to_string(), f);
    }
    json!({"type": "object", "properties": props})
}

/// The JSON Schema ksqlDB derives for rows of `columns`.
pub fn json_schema_for(columns: &[Column], wrap: bool) -> Json {
    if !wrap {
        if let Some(c) = columns.first() {
            return json_nullable(json_type(&c.ty));
        }
    }
    json_object(columns.iter().map(|c| (c.name.as_str(), &c.ty)))
}

/// The SQL type of a JSON Schema.
pub fn json_sql_type(s: &Json) -> Result<SqlType, FormatError> {
    let unsupported = || FormatError::Unsupported(format!("JSON Schema {s} has no SQL type"));
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = s[key].as_array() {
            let non_null: Vec<&Json> = alts.iter().filter(|a| a["type"] != "null").collect();
            return match non_null.as_slice() {
                [one] => json_sql_type(one),
                _ => Err(unsupported()),
            };
        }
    }
    let ty = match &s["type"] {
        Json::String(t) => t.as_str(),
        Json::Array(ts) => {
            let non_null: Vec<&str> = ts
                .iter()
                .filter_map(Json::as_str)
                .filter(|t| *t != "null")
                .collect();
            match non_null.as_slice() {
                [one] => *one,
                _ => return Err(unsupported()),
            }
        }
        _ if s.get("properties").is_some() => "object",
        _ => return Err(unsupported()),
    };
    let title = s["title"]
        .as_str()
        .or(s["connect.name"].as_str())
        .unwrap_or("");
    Ok(match ty {
        "boolean" => SqlType::Boolean,
        "integer" => match title {
            "org.apache.kafka.connect.data.Date" => SqlType::Date,
            "org.apache.kafka.connect.data.Time" => SqlType::Time,
            "org.apache.kafka.connect.data.Timestamp" => SqlType::Timestamp,
            _ if s["connect.type"] == "int32"
                || s["connect.type"] == "int16"
                || s["connect.type"] == "int8" =>
            {
                SqlType::Int
            }
            _ => SqlType::BigInt,
        },
        "number" => {
            if title == "org.apache.kafka.connect.data.Decimal" {
                let p = &s["connect.parameters"];
                let num = |k: &str, d: u8| {
                    p[k].as_str()
                        .and_then(|t| t.parse().ok())
                        .or(p[k].as_u64().and_then(|n| u8::try_from(n).ok()))
                        .unwrap_or(d)
                };
                SqlType::Decimal {
                    precision: num("connect.decimal.precision", 64),
                    scale: num("scale", 0),
                }
            } else {
                SqlType::Double
            }
        }
        "string" if s["connect.type"] == "bytes" => SqlType::Bytes,
        "string" => SqlType::String,
        "array" => SqlType::Array(Box::new(json_sql_type(&s["items"])?)),
        "object" => match (&s["properties"], &s["additionalProperties"]) {
            (Json::Object(props), _) => SqlType::Struct(
                props
                    .iter()
                    .map(|(n, t)| Ok((n.clone(), json_sql_type(t)?)))
                    .collect::<Result<_, FormatError>>()?,
            ),
            (_, v @ Json::Object(_)) => {
                SqlType::Map(Box::new(SqlType::String), Box::new(json_sql_type(v)?))
            }
            _ => return Err(unsupported()),
        },
        _ => return Err(unsupported()),
    })
}

/// Columns from a JSON Schema: an object's properties (named as written)
/// and `true`, or one column named `single`.
pub fn json_infer_columns(s: &Json, single: &str) -> Result<(Vec<Column>, bool), FormatError> {
    // A nullable object (`{"oneOf": [{"type": "null"}, {…object…}]}`, what
    // Confluent's JsonSchemaConverter registers for an optional struct)
    // gives its properties as columns, as in ksqlDB.
    if let Some([a, b]) = s["oneOf"]
        .as_array()
        .or(s["anyOf"].as_array())
        .map(Vec::as_slice)
    {
        let null = |j: &Json| j["type"] == "null";
        match (null(a), null(b)) {
            (true, false) if b["properties"].is_object() => return json_infer_columns(b, single),
            (false, true) if a["properties"].is_object() => return json_infer_columns(a, single),
            _ => {}
        }
    }
    if let Json::Object(props) = &s["properties"] {
        let mut fields: Vec<(&String, &Json)> = props.iter().collect();
        fields.sort_by_key(|(_, f)| f["connect.index"].as_u64().unwrap_or(u64::MAX));
        return Ok((
            fields
                .into_iter()
                .map(|(n, t)| Ok(Column::new(n, json_sql_type(t)?)))
                .collect::<Result<_, FormatError>>()?,
            true,
        ));
    }
    Ok((vec![Column::new(single, json_sql_type(s)?)], false))
}

#[cfg(test)]
mod nullable_row_tests {
    use super::*;

    #[test]
    fn a_nullable_object_gives_its_properties_as_columns() {
        let s = serde_json::json!({"oneOf": [{"type": "null"}, {"type": "object", "properties": {
            "b": {"type": "string", "connect.index": 1},
            "a": {"type": "integer", "connect.type": "int32", "connect.index": 0}}}]});
        let (cols, wrapped) = json_infer_columns(&s, "ROWVAL").unwrap();
        assert!(wrapped);
        assert_eq!(
            cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }
}

#[cfg(test)]
mod json_sr_tests {
    use super::*;
    use crate::format::CodecSpec;
    use proptest::prelude::*;

    fn columns() -> Vec<Column> {
        [
            ("S", SqlType::String),
            ("N", SqlType::BigInt),
            ("I", SqlType::Int),
            ("B", SqlType::Boolean),
            ("D", SqlType::Double),
            (
                "M",
                SqlType::Decimal {
                    precision: 6,
                    scale: 2,
                },
            ),
            ("A", SqlType::Array(Box::new(SqlType::BigInt))),
            ("T", SqlType::Struct(vec![("X".into(), SqlType::String)])),
        ]
        .into_iter()
        .map(|(n, t)| Column::new(n, t))
        .collect()
    }

    fn codec(columns: &[Column]) -> Arc<dyn RowCodec> {
        // Decoding JSON_SR never asks the registry.
        RegistryFormat::new(Kind::JsonSr, RegistryClient::new("http://127.0.0.1:9"))
            .codec(&CodecSpec::new(columns, false))
    }

    /// The general path: the payload parsed to a `serde_json::Value`.
    fn general(columns: &[Column], payload: &[u8]) -> Result<Row, FormatError> {
        let j: Json = serde_json::from_slice(payload)
            .map_err(|e| FormatError::Decode(format!("bad JSON: {e}")))?;
        row_of(columns, true, &j)
    }

    fn framed(text: &str) -> Vec<u8> {
        let mut b = Vec::new();
        wire::write_header(7, &mut b);
        b.extend_from_slice(text.as_bytes());
        b
    }

    fn object() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("S"),
            Just("s"),
            Just("N"),
            Just("n"),
            Just("I"),
            Just("B"),
            Just("D"),
            Just("M"),
            Just("m"),
            Just("A"),
            Just("T"),
            Just("t"),
            Just("Z"),
            Just(r"S\u0041"),
        ];
        let value = prop_oneof![
            "[a-z]{0,4}".prop_map(|t| format!("\"{t}\"")),
            Just(r#""a\"b""#.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<i32>().prop_map(|n| n.to_string()),
            Just("1.50".to_string()),
            Just("12345.678".to_string()),
            Just("2e3".to_string()),
            Just("\"1.25\"".to_string()),
            Just("true".to_string()),
            Just("null".to_string()),
            Just("[1,2,null]".to_string()),
            Just("[\"x\"]".to_string()),
            Just(r#"{"X":"y"}"#.to_string()),
            Just(r#"{"x":1}"#.to_string()),
            Just("tru".to_string()),
        ];
        let tail = prop_oneof![Just(""), Just(""), Just(""), Just(","), Just("}")];
        (proptest::collection::vec((key, value), 0..7), tail).prop_map(|(fields, tail)| {
            let body: Vec<String> = fields
                .into_iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            format!("{{{}}}{tail}", body.join(","))
        })
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Boolean),
            any::<i32>().prop_map(Value::Int),
            any::<i64>().prop_map(Value::BigInt),
            any::<f64>().prop_map(Value::Double),
            "[a-z\"\\\n\u{e9}]{0,5}".prop_map(Value::String),
            (any::<i32>(), 0u32..4)
                .prop_map(|(n, s)| Value::Decimal(rust_decimal::Decimal::new(i64::from(n), s))),
            proptest::collection::vec(any::<u8>(), 0..4).prop_map(Value::Bytes),
            any::<i32>().prop_map(Value::Date),
            any::<i64>().prop_map(Value::Timestamp),
            proptest::collection::vec(any::<i64>().prop_map(Value::BigInt), 0..3)
                .prop_map(Value::Array),
            "[a-z]{0,3}".prop_map(|s| Value::Struct(vec![("X".into(), Value::String(s))])),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        #[test]
        fn json_sr_reads_as_its_general_path(text in object(), unread in proptest::collection::vec(any::<bool>(), 8)) {
            let columns = columns();
            let c = codec(&columns);
            let general = general(&columns, text.as_bytes());
            prop_assert_eq!(c.decode(&framed(&text)), general.clone(), "{}", text);
            let padded = c.decode_with_prefix(&framed(&text), 1, 2, 3, &unread);
            // Columns the query does not read may hold anything.
            let blank = |r: Row| -> Row {
                r.into_iter()
                    .enumerate()
                    .map(|(i, v)| if unread.get(i).copied().unwrap_or(false) { Value::Null } else { v })
                    .collect()
            };
            match (padded, general) {
                (Ok(p), Ok(g)) => {
                    prop_assert_eq!(p.len(), 1 + columns.len() + 2);
                    prop_assert_eq!(blank(p[1..1 + columns.len()].to_vec()), blank(g), "{}", text);
                }
                (p, g) => prop_assert_eq!(p.is_ok(), g.is_ok(), "{}", text),
            }
        }

        #[test]
        fn json_sr_writes_what_its_general_path_writes(row in proptest::collection::vec(value(), 0..6)) {
            let columns: Vec<Column> = (0..row.len())
                .map(|i| Column::new(&format!("C\"{i}"), SqlType::String))
                .collect();
            let mut fast = Vec::new();
            let fast_result = json_sr_object(&crate::json::json_keys(&columns), &columns, &row, &mut fast);
            let mut slow = Vec::new();
            let slow_result = json_sr_general(&columns, true, &row, &mut slow);
            prop_assert_eq!(fast_result.is_ok(), slow_result.is_ok());
            prop_assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&slow));
        }
    }

    #[test]
    fn keys_differing_in_case_read_as_the_general_path_reads_them() {
        let columns = columns();
        let c = codec(&columns);
        for text in [
            r#"{"s":"a","S":"b"}"#,
            r#"{"S":"b","s":"a"}"#,
            r#"{"s":"a","s":"c"}"#,
            r#"{"s":"a","sA":"x","s":"c"}"#,
            r#"{"n":1,"N":2,"n":3}"#,
            r#"{"t":{"X":"y"},"T":null}"#,
        ] {
            assert_eq!(
                c.decode(&framed(text)),
                general(&columns, text.as_bytes()),
                "{text}"
            );
        }
    }
}
