//! Rows and their serialization formats: SQL types and values, casts from text, and the KAFKA, JSON, DELIMITED, NONE, AVRO, PROTOBUF, PROTOBUF_NOSR, JSON_SR and internal encodings behind one format registry.
//!
//! The SQL engine, the schema registry and connectors all move rows
//! between Rust values and record bytes; this crate is where that lives,
//! below all of them: `types` (SQL types and values), `schema` (columns),
//! `cast` (values from text), `format` (the formats and `RowSerde`, the
//! stream engine's serde of a row in a format).

pub mod avro;
mod avro_read;
#[cfg(test)]
mod avro_testgen;
mod avro_write;
pub mod cast;
pub mod delimited;
pub mod format;
pub mod internal;
pub mod json;
pub mod kafka;
pub mod protobuf;
mod protobuf_plan;
pub mod registry;
pub mod schema;
pub mod types;
