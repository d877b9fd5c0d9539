//! JSON Schema for serde types (Confluent's `KafkaJsonSchemaSerde`).

use std::marker::PhantomData;

use runnel_registry_client::{wire, RegistryClient};
use runnel_schema::{ParsedSchema, SchemaType};
use runnel_streams::serdes::{Serde, SerdeError, Serialized};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::registered::{Registration, Writer};

/// JSON documents of a serde type `T`, valid under a JSON Schema: a value
/// that is not valid is an error when written and when read.
pub struct JsonSchemaSerde<T> {
    writer: Writer,
    _t: PhantomData<fn() -> T>,
}

impl<T> JsonSchemaSerde<T> {
    /// A serde writing under `subject` with `schema` (a JSON Schema).
    pub fn new(
        client: RegistryClient,
        subject: impl Into<String>,
        schema: &str,
        registration: Registration,
    ) -> Result<JsonSchemaSerde<T>, SerdeError> {
        ParsedSchema::parse(SchemaType::Json, schema, &[])
            .map_err(|e| SerdeError(format!("invalid JSON Schema: {e}")))?;
        Ok(JsonSchemaSerde {
            writer: Writer::new(client, subject, SchemaType::Json, schema, registration),
            _t: PhantomData,
        })
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for JsonSchemaSerde<T> {
    fn serialize(&self, value: &T) -> Serialized {
        let json = serde_json::to_value(value).map_err(|e| SerdeError(e.to_string()))?;
        if json.is_null() {
            return Ok(None);
        }
        let (id, schema) = self.writer.resolve()?;
        schema
            .validate(&json)
            .map_err(|e| SerdeError(format!("not valid under schema {id}: {e}")))?;
        let mut out = Vec::new();
        wire::write_header(*id, &mut out);
        serde_json::to_writer(&mut out, &json).map_err(|e| SerdeError(e.to_string()))?;
        Ok(Some(out))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        let Some(bytes) = bytes else {
            return serde_json::from_value(serde_json::Value::Null)
                .map_err(|e| SerdeError(e.to_string()));
        };
        let (id, schema, payload) = self.writer.reader(bytes)?;
        let json: serde_json::Value =
            serde_json::from_slice(payload).map_err(|e| SerdeError(e.to_string()))?;
        schema
            .validate(&json)
            .map_err(|e| SerdeError(format!("not valid under schema {id}: {e}")))?;
        serde_json::from_value(json).map_err(|e| SerdeError(e.to_string()))
    }
}
