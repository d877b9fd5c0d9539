//! The metastore: the streams, tables and persistent queries the engine
//! knows, as statements created them.

use std::collections::BTreeMap;

use crate::ast::SourceKind;
use crate::format::{CodecSpec, Format, RowSerde};
use crate::schema::{Column, Schema, WindowType};
use crate::types::SqlType;
use runnel_format::protobuf::NullableRepresentation;

/// A stream or table: its columns and where and how its rows are stored.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    /// Upper-case unless it was quoted.
    pub name: String,
    pub kind: SourceKind,
    pub topic: String,
    pub schema: Schema,
    pub key_format: Format,
    pub value_format: Format,
    /// JSON values with one column: wrapped in an object (the default).
    pub wrap_single_value: bool,
    /// Keys of windowed tables carry their window.
    pub window: Option<WindowType>,
    /// The value column that holds the event time (`TIMESTAMP` property).
    pub timestamp: Option<String>,
    /// `TIMESTAMP_FORMAT` for a STRING timestamp column.
    pub timestamp_format: Option<String>,
    pub partitions: i32,
    /// The statement that created it.
    pub sql: String,
    /// `CREATE SOURCE …`: read-only, queryable.
    pub read_only: bool,
    /// The persistent query writing it (CSAS/CTAS), if any.
    pub writer: Option<String>,
    /// `KEY_SCHEMA_ID` / `VALUE_SCHEMA_ID`: the registry schemas its keys
    /// and values are written with (else the subjects' latest).
    pub key_schema_id: Option<i32>,
    pub value_schema_id: Option<i32>,
    /// `KEY_`/`VALUE_PROTOBUF_NULLABLE_REPRESENTATION`: how the Protobuf
    /// schemas derived for its keys and values make scalars nullable.
    pub key_protobuf_nullable: Option<NullableRepresentation>,
    pub value_protobuf_nullable: Option<NullableRepresentation>,
    /// `KEY_`/`VALUE_DELIMITER`: DELIMITED's field delimiters.
    pub key_delimiter: char,
    pub value_delimiter: char,
    /// `HEADERS` and `HEADER('k')` columns: read from each record's
    /// headers, not its value; in scope after the value columns.
    pub headers: Vec<HeaderColumn>,
}

/// A column read from a record's headers.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderColumn {
    pub column: Column,
    /// `HEADER('k')`: the last header named `k`, BYTES. `None`
    /// (`HEADERS`): every header, `ARRAY<STRUCT<KEY STRING, VALUE BYTES>>`.
    pub key: Option<String>,
}

impl HeaderColumn {
    /// The type a `HEADERS` column must have.
    pub fn all_type() -> SqlType {
        SqlType::Array(Box::new(SqlType::Struct(vec![
            ("KEY".to_string(), SqlType::String),
            ("VALUE".to_string(), SqlType::Bytes),
        ])))
    }

    /// Its value for a record with these headers.
    pub fn read(&self, headers: &[(String, Option<Vec<u8>>)]) -> crate::types::Value {
        use crate::types::Value;
        let bytes = |v: &Option<Vec<u8>>| v.clone().map_or(Value::Null, Value::Bytes);
        match &self.key {
            Some(k) => headers
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .map_or(Value::Null, |(_, v)| bytes(v)),
            None => Value::Array(
                headers
                    .iter()
                    .map(|(n, v)| {
                        Value::Struct(vec![
                            ("KEY".to_string(), Value::String(n.clone())),
                            ("VALUE".to_string(), bytes(v)),
                        ])
                    })
                    .collect(),
            ),
        }
    }
}

impl SourceInfo {
    /// Its keys' serde (schema-registry formats write with the latest
    /// schema of `<topic>-key`).
    pub fn key_serde(&self) -> RowSerde {
        RowSerde::with_spec(
            self.key_format,
            CodecSpec {
                topic: Some(&self.topic),
                is_key: true,
                schema_id: self.key_schema_id,
                protobuf_nullable: self.key_protobuf_nullable,
                delimiter: self.key_delimiter,
                ..CodecSpec::new(&self.schema.key, false)
            },
        )
    }

    /// Its values' serde (schema-registry formats write with the latest
    /// schema of `<topic>-value`).
    pub fn value_serde(&self) -> RowSerde {
        RowSerde::with_spec(
            self.value_format,
            CodecSpec {
                topic: Some(&self.topic),
                schema_id: self.value_schema_id,
                protobuf_nullable: self.value_protobuf_nullable,
                delimiter: self.value_delimiter,
                ..CodecSpec::new(&self.schema.value, self.wrap_single_value)
            },
        )
    }

    /// Key columns, then WINDOWSTART/WINDOWEND of windowed tables, then
    /// value columns: the columns of `SELECT *` on a table (pull queries).
    pub fn table_columns(&self) -> Vec<Column> {
        let mut out = self.schema.key.clone();
        if self.window.is_some() {
            out.push(Column::new(crate::schema::WINDOWSTART, SqlType::BigInt));
            out.push(Column::new(crate::schema::WINDOWEND, SqlType::BigInt));
        }
        out.extend(self.schema.value.iter().cloned());
        out.extend(self.headers.iter().map(|h| h.column.clone()));
        out
    }
}

/// A persistent query's description.
#[derive(Debug, Clone)]
pub struct QueryInfo {
    pub id: String,
    pub sql: String,
    /// The stream or table it writes.
    pub sink: String,
    pub sink_topic: String,
    pub sources: Vec<String>,
    /// The topology, as `EXPLAIN` prints it.
    pub topology: String,
}

/// Sources and queries by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub sources: BTreeMap<String, SourceInfo>,
    pub queries: BTreeMap<String, QueryInfo>,
}

impl Catalog {
    pub fn source(&self, name: &str) -> Option<&SourceInfo> {
        self.sources.get(name)
    }

    /// The closest source name, for "did you mean".
    pub fn suggest(&self, name: &str) -> Option<&str> {
        self.sources
            .keys()
            .map(|n| (crate::expr::edit_distance(n, name), n))
            .filter(|(d, n)| *d <= 2.max(n.len() / 4))
            .min_by_key(|(d, _)| *d)
            .map(|(_, n)| n.as_str())
    }

    /// Queries reading `source`.
    pub fn readers_of(&self, source: &str) -> Vec<&QueryInfo> {
        self.queries
            .values()
            .filter(|q| q.sources.iter().any(|s| s == source))
            .collect()
    }

    /// Queries writing `source`.
    pub fn writers_of(&self, source: &str) -> Vec<&QueryInfo> {
        self.queries.values().filter(|q| q.sink == source).collect()
    }
}
