//! Avro for serde types (Confluent's `SpecificAvroSerde`, with serde in
//! place of generated classes).

use std::marker::PhantomData;

use apache_avro::types::Value as AvroValue;
use runnel_registry_client::{wire, RegistryClient};
use runnel_schema::{ParsedSchema, SchemaType};
use runnel_streams::serdes::{Serde, SerdeError, Serialized};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::registered::{Registration, Writer};

/// Avro records of a serde type `T` (a struct whose fields match the
/// schema's, `Option` for nullable unions).
pub struct AvroSerde<T> {
    writer: Writer,
    /// The serde's own schema: records written with older or newer
    /// compatible schemas are resolved to it.
    reader: apache_avro::Schema,
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
            _t: PhantomData,
        })
    }
}

fn err(e: impl std::fmt::Display) -> SerdeError {
    SerdeError(e.to_string())
}

impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for AvroSerde<T> {
    fn serialize(&self, value: &T) -> Serialized {
        let datum = apache_avro::to_value(value).map_err(err)?;
        if datum == AvroValue::Null && self.reader != apache_avro::Schema::Null {
            return Ok(None);
        }
        let (id, schema) = self.writer.resolve()?;
        let avro = schema
            .as_avro()
            .ok_or_else(|| SerdeError("not an Avro schema".into()))?;
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
        let (id, writer, mut payload) = self.writer.reader(bytes)?;
        let avro = writer
            .as_avro()
            .ok_or_else(|| SerdeError(format!("schema {id} is not an Avro schema")))?;
        let datum =
            apache_avro::from_avro_datum(avro, &mut payload, Some(&self.reader)).map_err(err)?;
        apache_avro::from_value::<T>(&datum).map_err(err)
    }
}
