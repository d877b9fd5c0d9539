//! What a Runnel connector is written against: Kafka Connect's data model (schemas, values, structs), source and sink records, connector and task traits, and config definitions with per-field validation.
//!
//! This crate is to Runnel's connectors what `connect-api` is to Kafka
//! Connect's: a connector (the PostgreSQL CDC source, a sink, the file and
//! datagen connectors) depends on it alone — never on the runtime, the
//! cluster or the log. The runtime (`runnel-connect`) runs the tasks on
//! threads of their own, converts records to and from bytes (converters),
//! applies transforms, stores source offsets and commits sink offsets.
//!
//! Tasks are **blocking**: `poll` and `put` may wait (a connector that
//! speaks an async protocol keeps its own small runtime inside the task).
//! The runtime calls a task from one thread at a time.

pub mod config;
pub mod connector;
pub mod data;
pub mod record;

pub use config::{
    Config, ConfigDef, ConfigError, ConfigKey, ConfigType, ConfigValue, Importance, Validator,
};
pub use connector::{
    ConnectError, ConnectorContext, ConnectorKind, ConnectorPlugin, OffsetReader, SinkTask,
    SourceTask,
};
pub use data::{logical, DataError, Field, Schema, SchemaType, Struct, Value};
pub use record::{Header, SinkRecord, SourceOffset, SourcePartition, SourceRecord};
