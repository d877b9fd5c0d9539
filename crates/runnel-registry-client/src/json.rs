//! A record's bytes ⇄ JSON, with the schema its registry id names: what
//! Confluent's console producers and consumers (and kcat's `-s avro`)
//! show users.
//!
//! Encoding takes one JSON value and a registered schema: Avro resolves
//! the JSON against the schema (records from objects, unions by the branch
//! the value fits, enums from strings), Protobuf uses Protobuf's JSON
//! mapping (field names or their JSON names), JSON Schema validates the
//! value first. Decoding reads the writer's id from the record and gives
//! the value back in the same JSON forms.

use prost_reflect::prost::Message as _;
use prost_reflect::DynamicMessage;
use runnel_schema::{ParsedSchema, SchemaType};
use serde_json::Value as Json;

use crate::wire::{self, WireError};
use crate::{ClientError, RegistryClient};

/// Why a value cannot be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum JsonCodecError {
    #[error("the value does not fit schema {id}: {message}")]
    Encode { id: i32, message: String },
    #[error("the record does not decode with schema {id}: {message}")]
    Decode { id: i32, message: String },
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Registry(#[from] ClientError),
}

/// Encodes `value` with `schema` (registered as `id`) in the registry's
/// wire format.
pub fn encode(schema: &ParsedSchema, id: i32, value: &Json) -> Result<Vec<u8>, JsonCodecError> {
    let fail = |message: String| JsonCodecError::Encode { id, message };
    let mut out = Vec::new();
    wire::write_header(id, &mut out);
    match schema.schema_type() {
        SchemaType::Avro => {
            let avro = schema
                .as_avro()
                .ok_or_else(|| fail("not an Avro schema".into()))?;
            let datum = apache_avro::types::Value::from(value.clone())
                .resolve(avro)
                .map_err(|e| fail(e.to_string()))?;
            let bytes = apache_avro::to_avro_datum(avro, datum).map_err(|e| fail(e.to_string()))?;
            out.extend_from_slice(&bytes);
        }
        SchemaType::Protobuf => {
            let desc = schema
                .as_protobuf()
                .ok_or_else(|| fail("a Protobuf schema without a message".into()))?;
            let message = DynamicMessage::deserialize(desc, value.clone())
                .map_err(|e| fail(e.to_string()))?;
            wire::write_indexes(&[0], &mut out);
            out.extend_from_slice(&message.encode_to_vec());
        }
        SchemaType::Json => {
            schema.validate(value).map_err(fail)?;
            out.extend_from_slice(value.to_string().as_bytes());
        }
    }
    Ok(out)
}

/// Decodes a record written in the registry's wire format: the writer's
/// schema id and the value as JSON.
pub fn decode(client: &RegistryClient, bytes: &[u8]) -> Result<(i32, Json), JsonCodecError> {
    let (id, payload) = wire::split(bytes)?;
    let schema = client.schema_by_id(id)?;
    let fail = |message: String| JsonCodecError::Decode { id, message };
    let value = match schema.schema_type() {
        SchemaType::Avro => {
            let avro = schema
                .as_avro()
                .ok_or_else(|| fail("not an Avro schema".into()))?;
            let mut reader = payload;
            let datum = apache_avro::from_avro_datum(avro, &mut reader, None)
                .map_err(|e| fail(e.to_string()))?;
            Json::try_from(datum).map_err(|e| fail(e.to_string()))?
        }
        SchemaType::Protobuf => {
            let (indexes, message) = wire::read_indexes(payload)?;
            let desc = schema
                .message_by_indexes(&indexes)
                .ok_or_else(|| fail(format!("no message at indexes {indexes:?}")))?;
            let m = DynamicMessage::decode(desc, message).map_err(|e| fail(e.to_string()))?;
            serde_json::to_value(&m).map_err(|e| fail(e.to_string()))?
        }
        SchemaType::Json => serde_json::from_slice(payload).map_err(|e| fail(e.to_string()))?,
    };
    Ok((id, value))
}
