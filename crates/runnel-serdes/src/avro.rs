//! Avro for serde types (Confluent's `SpecificAvroSerde`, with serde in
//! place of generated classes).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use apache_avro::types::Value as AvroValue;
use runnel_registry_client::{wire, RegistryClient};
use runnel_schema::{ParsedSchema, SchemaType};
use runnel_streams::serdes::{Serde, SerdeError, Serialized};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::avro_de::Direct;
use crate::registered::{Registration, Writer};

/// Avro records of a serde type `T` (a struct whose fields match the
/// schema's, `Option` for nullable unions).
pub struct AvroSerde<T> {
    writer: Writer,
    /// The serde's own schema: records written with older or newer
    /// compatible schemas are resolved to it.
    reader: apache_avro::Schema,
    /// Per writer schema id: its direct decoder when it is the reader's
    /// schema (no resolution needed), `None` when records of it are
    /// resolved to the reader's.
    direct: Mutex<HashMap<i32, Option<Arc<Direct>>>>,
    /// The first writer schema id read directly, and its decoder.
    first_direct: OnceLock<(i32, Arc<Direct>)>,
    /// The writer's schema, compiled for writing once resolved.
    writing: OnceLock<Direct>,
    _t: PhantomData<fn() -> T>,
}

impl<T> AvroSerde<T> {
    /// A serde writing `schema` (Avro JSON) under `subject`.
    pub fn new(
        client: RegistryClient,
        subject: impl Into<String>,
        schema: &str,
        registration: Registration,
    ) -> Result<AvroSerde<T>, SerdeError> {
        let parsed = ParsedSchema::parse(SchemaType::Avro, schema, &[])
            .map_err(|e| SerdeError(format!("invalid Avro schema: {e}")))?;
        let reader = parsed
            .as_avro()
            .cloned()
            .ok_or_else(|| SerdeError("not an Avro schema".into()))?;
        Ok(AvroSerde {
            writer: Writer::new(client, subject, SchemaType::Avro, schema, registration),
            reader,
            direct: Mutex::new(HashMap::new()),
            first_direct: OnceLock::new(),
            writing: OnceLock::new(),
            _t: PhantomData,
        })
    }
}

fn err(e: impl std::fmt::Display) -> SerdeError {
    SerdeError(e.to_string())
}

impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for AvroSerde<T> {
    fn serialize(&self, value: &T) -> Serialized {
        if crate::avro_ser::is_null(value) && self.reader != apache_avro::Schema::Null {
            // A tombstone.
            return Ok(None);
        }
        let (id, schema) = self.writer.resolve()?;
        let avro = schema
            .as_avro()
            .ok_or_else(|| SerdeError("not an Avro schema".into()))?;
        let direct = self.writing.get_or_init(|| Direct::new(avro));
        let mut out = Vec::with_capacity(64);
        wire::write_header(*id, &mut out);
        if direct.write(value, &mut out).is_ok() {
            return Ok(Some(out));
        }
        // apache-avro's path: a null value (a tombstone), defaults of fields
        // the type lacks, and the reason for anything else.
        let datum = apache_avro::to_value(value).map_err(err)?;
        if datum == AvroValue::Null && self.reader != apache_avro::Schema::Null {
            return Ok(None);
        }
        let datum = datum.resolve(avro).map_err(err)?;
        let mut out = Vec::new();
        wire::write_header(*id, &mut out);
        out.extend_from_slice(&apache_avro::to_avro_datum(avro, datum).map_err(err)?);
        Ok(Some(out))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        let Some(bytes) = bytes else {
            return apache_avro::from_value::<T>(&AvroValue::Null).map_err(err);
        };
        // The common case, without the registry client's cache or a lock:
        // the first writer schema seen, read directly.
        if let Ok((id, payload)) = wire::split(bytes) {
            if let Some((first, direct)) = self.first_direct.get() {
                if *first == id {
                    return direct.read(payload).map_err(err);
                }
            }
        }
        let (id, writer, mut payload) = self.writer.reader(bytes)?;
        let avro = writer
            .as_avro()
            .ok_or_else(|| SerdeError(format!("schema {id} is not an Avro schema")))?;
        let direct = self
            .direct
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id)
            .or_insert_with(|| (*avro == self.reader).then(|| Arc::new(Direct::new(avro))))
            .clone();
        if let Some(direct) = direct {
            let _ = self.first_direct.set((id, direct.clone()));
            return direct.read(payload).map_err(err);
        }
        let datum =
            apache_avro::from_avro_datum(avro, &mut payload, Some(&self.reader)).map_err(err)?;
        apache_avro::from_value::<T>(&datum).map_err(err)
    }
}
