//! Protobuf for prost messages (Confluent's `KafkaProtobufSerde`).

use std::marker::PhantomData;

use runnel_registry_client::{wire, RegistryClient};
use runnel_schema::{ParsedSchema, SchemaType};
use runnel_streams::serdes::{Serde, SerdeError, Serialized};

use crate::registered::{Registration, Writer};

/// Protobuf messages of a prost type `M`, registered with the `.proto`
/// text `M` was generated from.
pub struct ProtobufSerde<M> {
    writer: Writer,
    /// The message indexes of `M` in the schema (`[0]`: its first message).
    indexes: Vec<i32>,
    _m: PhantomData<fn() -> M>,
}

impl<M> ProtobufSerde<M> {
    /// A serde writing `M`, the message `message` (full name, e.g.
    /// `shop.Order`; `None`: the first message) of `proto`, under `subject`.
    pub fn new(
        client: RegistryClient,
        subject: impl Into<String>,
        proto: &str,
        message: Option<&str>,
        registration: Registration,
    ) -> Result<ProtobufSerde<M>, SerdeError> {
        let parsed = ParsedSchema::parse(SchemaType::Protobuf, proto, &[])
            .map_err(|e| SerdeError(format!("invalid Protobuf schema: {e}")))?;
        let indexes = match message {
            None => vec![0],
            Some(name) => parsed
                .message_indexes(name)
                .ok_or_else(|| SerdeError(format!("no message {name} in the schema")))?,
        };
        Ok(ProtobufSerde {
            writer: Writer::new(client, subject, SchemaType::Protobuf, proto, registration),
            indexes,
            _m: PhantomData,
        })
    }
}

impl<M: prost::Message + Default + 'static> Serde<M> for ProtobufSerde<M> {
    fn serialize(&self, value: &M) -> Serialized {
        let (id, _) = self.writer.resolve()?;
        let mut out = Vec::new();
        wire::write_header(*id, &mut out);
        wire::write_indexes(&self.indexes, &mut out);
        value
            .encode(&mut out)
            .map_err(|e| SerdeError(e.to_string()))?;
        Ok(Some(out))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<M, SerdeError> {
        let Some(bytes) = bytes else {
            return Err(SerdeError("a null record is not a Protobuf message".into()));
        };
        let (_, _, payload) = self.writer.reader(bytes)?;
        let (_, message) = wire::read_indexes(payload).map_err(|e| SerdeError(e.to_string()))?;
        M::decode(message).map_err(|e| SerdeError(e.to_string()))
    }
}
