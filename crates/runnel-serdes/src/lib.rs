//! Schema-registry serdes for runnel-streams applications: Avro for serde types, Protobuf for prost messages, JSON Schema for serde types, and JSON values in any registry format, in Confluent's wire format.
//!
//! What Confluent's `SpecificAvroSerde`, `KafkaProtobufSerde`,
//! `KafkaJsonSchemaSerde` and `GenericAvroSerde` are to Kafka Streams: a
//! record is the magic byte 0, the 4-byte id of its writer's schema, then
//! the payload (Protobuf adds its message indexes), so the topics these
//! serdes write are read by Confluent's deserializers, ksqlDB and Runnel's
//! SQL, and the other way round.
//!
//! Each serde is made for one subject (`orders-value` under Confluent's
//! default TopicNameStrategy; the topic is not known to a serde here) and
//! one writer schema. [`Registration::Auto`] registers the schema under the
//! subject the first time a record is written (`auto.register.schemas`,
//! the default); [`Registration::UseLatest`] writes with the subject's
//! latest version instead (`use.latest.version`); [`Registration::Id`]
//! with a given id. Reading takes the writer's schema by its id from the
//! registry (cached) and, for Avro, resolves it to the serde's own schema,
//! so a reader with a newer compatible schema reads older records; records
//! written with the serde's own schema are decoded straight into the type.

mod avro;
mod avro_de;
mod avro_ser;
mod json_schema;
mod protobuf;
mod registered;
mod value;

pub use avro::AvroSerde;
pub use json_schema::JsonSchemaSerde;
pub use protobuf::ProtobufSerde;
pub use registered::Registration;
pub use value::JsonValueSerde;
