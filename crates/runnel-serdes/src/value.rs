//! JSON values in any registry format (Confluent's `GenericAvroSerde`
//! and its Protobuf and JSON Schema counterparts, with JSON as the generic
//! value).

use runnel_registry_client::{json, RegistryClient};
use runnel_schema::SchemaType;
use runnel_streams::serdes::{Serde, SerdeError, Serialized};
use serde_json::Value as Json;

use crate::registered::{Registration, Writer};

/// JSON values written with a registry schema of any type (Avro resolves
/// objects to records; Protobuf uses its JSON mapping) and read back by
/// their writer's schema, whatever it is.
pub struct JsonValueSerde {
    writer: Writer,
}

impl JsonValueSerde {
    /// A serde writing under `subject` with `schema` of `schema_type`.
    pub fn new(
        client: RegistryClient,
        subject: impl Into<String>,
        schema_type: SchemaType,
        schema: &str,
        registration: Registration,
    ) -> JsonValueSerde {
        JsonValueSerde {
            writer: Writer::new(client, subject, schema_type, schema, registration),
        }
    }
}

impl Serde<Json> for JsonValueSerde {
    fn serialize(&self, value: &Json) -> Serialized {
        if value.is_null() {
            return Ok(None);
        }
        let (id, schema) = self.writer.resolve()?;
        json::encode(schema, *id, value)
            .map(Some)
            .map_err(|e| SerdeError(e.to_string()))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Json, SerdeError> {
        match bytes {
            None => Ok(Json::Null),
            Some(b) => json::decode(&self.writer.client, b)
                .map(|(_, v)| v)
                .map_err(|e| SerdeError(e.to_string())),
        }
    }
}
