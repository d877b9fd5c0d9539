//! Debezium's change event shapes: per-table key, value and envelope
//! schemas, the `source` block, and heartbeat records.

use crate::error::{Error, Result};
use crate::meta::{ColumnDefault, ColumnMeta, TableMeta};
use crate::pgoutput::TupleValue;
use crate::types::{column_schema, text_to_value, unavailable_value, DecimalMode, TypeKind};
use runnel_connect_api::{Schema, SchemaType, Struct, Value};
use std::sync::Arc;

/// The connector version written in `source.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The values of `source.snapshot`: where a snapshot record stands in the
/// snapshot and in its table, `false` for streamed changes.
pub const SNAPSHOT_MARKERS: &str =
    "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental";

/// The `source` block's schema (`io.debezium.connector.postgresql.Source`,
/// version 1), fields in Debezium's order.
pub fn source_schema() -> Schema {
    Schema::struct_named("io.debezium.connector.postgresql.Source")
        .version(1)
        .field("version", Schema::string())
        .field("connector", Schema::string())
        .field("name", Schema::string())
        .field("ts_ms", Schema::int64())
        .field(
            "snapshot",
            Schema::string()
                .optional()
                .named("io.debezium.data.Enum")
                .version(1)
                .param("allowed", SNAPSHOT_MARKERS)
                .default_value(Value::String("false".into())),
        )
        .field("db", Schema::string())
        .field("sequence", Schema::string().optional())
        .field("ts_us", Schema::int64().optional())
        .field("ts_ns", Schema::int64().optional())
        .field("schema", Schema::string())
        .field("table", Schema::string())
        .field("txId", Schema::int64().optional())
        .field("lsn", Schema::int64().optional())
        .field("xmin", Schema::int64().optional())
        // Replication origin of the change (always null here).
        .field("origin", Schema::string().optional())
        .field("origin_lsn", Schema::int64().optional())
}

/// The optional `transaction` block's schema (`event.block`).
pub fn transaction_schema() -> Schema {
    Schema::struct_named("event.block")
        .version(1)
        .optional()
        .field("id", Schema::string())
        .field("total_order", Schema::int64())
        .field("data_collection_order", Schema::int64())
}

/// What the `source` block says about one event.
#[derive(Debug, Clone, Default)]
pub struct SourceInfo {
    /// Commit (or snapshot) time, microseconds since the epoch.
    pub ts_us: i64,
    /// One of [`SNAPSHOT_MARKERS`].
    pub snapshot: &'static str,
    pub sequence: Option<String>,
    pub tx_id: Option<i64>,
    pub lsn: Option<i64>,
    /// The `transaction` block (`provide.transaction.metadata`).
    pub transaction: Option<TxBlock>,
}

/// A change event's place in its transaction, as Debezium's `transaction`
/// block gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxBlock {
    /// `<txId>:<LSN of the event>`, as Debezium's PostgreSQL connector
    /// spells it.
    pub id: String,
    /// 1-based position among the transaction's events (tombstones not
    /// counted).
    pub total_order: i64,
    /// 1-based position among the transaction's events of the same table.
    pub data_collection_order: i64,
}

/// An item of END's `data_collections` (`event.collection`).
pub fn transaction_collection_schema() -> Schema {
    Schema::struct_named("event.collection")
        .version(1)
        .optional()
        .field("data_collection", Schema::string())
        .field("event_count", Schema::int64())
}

/// The key and value schemas of the transaction topic's BEGIN/END
/// records (`io.debezium.connector.common.TransactionMetadataKey` /
/// `…Value`).
pub fn transaction_topic_schemas() -> (Arc<Schema>, Arc<Schema>) {
    let collection = transaction_collection_schema();
    (
        Arc::new(
            Schema::struct_named("io.debezium.connector.common.TransactionMetadataKey")
                .version(1)
                .field("id", Schema::string()),
        ),
        Arc::new(
            Schema::struct_named("io.debezium.connector.common.TransactionMetadataValue")
                .version(1)
                .field("status", Schema::string())
                .field("id", Schema::string())
                .field("event_count", Schema::int64().optional())
                .field("data_collections", Schema::array(collection).optional())
                .field("ts_ms", Schema::int64()),
        ),
    )
}

/// A captured table's schemas and how to convert its rows.
#[derive(Debug, Clone)]
pub struct TableSchemas {
    pub meta: TableMeta,
    pub topic: String,
    pub key_schema: Option<Arc<Schema>>,
    /// The row struct's schema as used in `before`/`after` (optional).
    pub row_schema: Arc<Schema>,
    pub envelope_schema: Arc<Schema>,
    source_schema: Arc<Schema>,
    /// The columns a stream tuple has, in tuple order (the Relation
    /// message's), as indexes into `meta.columns`.
    pub tuple_columns: Vec<usize>,
    prefix: String,
    db: String,
    decimal_mode: DecimalMode,
}

/// A value for a required field that has none (a column a DEFAULT
/// replica identity did not send): Debezium fills such fields with the
/// column's default, else the type's zero.
fn fallback(schema: &Schema) -> Value {
    if let Some(v) = &schema.default {
        return (**v).clone();
    }
    match schema.kind {
        SchemaType::Int8 => Value::Int8(0),
        SchemaType::Int16 => Value::Int16(0),
        SchemaType::Int32 => Value::Int32(0),
        SchemaType::Int64 => Value::Int64(0),
        SchemaType::Float32 => Value::Float32(0.0),
        SchemaType::Float64 => Value::Float64(0.0),
        SchemaType::Boolean => Value::Boolean(false),
        SchemaType::String => Value::String(String::new()),
        SchemaType::Bytes => Value::Bytes(vec![0]),
        SchemaType::Array => Value::Array(Vec::new()),
        SchemaType::Map => Value::Map(Vec::new()),
        SchemaType::Struct => {
            let mut s = Struct::new(Arc::new(schema.clone()));
            for f in &schema.fields {
                if !f.schema.optional {
                    s.values[f.index] = fallback(&f.schema);
                }
            }
            Value::Struct(s)
        }
    }
}

/// A column's schema with its DEFAULT as the field's default, as Debezium
/// has it: a constant's value, or the type's zero for sequences and clock
/// functions.
fn with_default(schema: Schema, column: &ColumnMeta, mode: DecimalMode) -> Schema {
    let value = match &column.default {
        Some(ColumnDefault::Literal(text)) => text_to_value(&column.kind, mode, text).ok(),
        Some(ColumnDefault::Zero) => Some(fallback(&Schema {
            default: None,
            ..schema.clone()
        })),
        None => None,
    };
    match value {
        Some(v) if !v.is_null() => schema.default_value(v),
        _ => schema,
    }
}

impl TableSchemas {
    pub fn new(meta: TableMeta, prefix: &str, db: &str, decimal_mode: DecimalMode) -> TableSchemas {
        let base = format!("{prefix}.{}.{}", meta.schema, meta.name);
        let mut row = Schema::struct_named(format!("{base}.Value"));
        for c in &meta.columns {
            let schema = column_schema(&c.kind, decimal_mode, !c.not_null);
            row = row.field(&c.name, with_default(schema, c, decimal_mode));
        }
        let row_schema = Arc::new(row.optional());
        let key_schema = if meta.primary_key.is_empty() {
            None
        } else {
            let mut key = Schema::struct_named(format!("{base}.Key"));
            for name in &meta.primary_key {
                if let Some(c) = meta.columns.iter().find(|c| &c.name == name) {
                    let schema = column_schema(&c.kind, decimal_mode, false);
                    key = key.field(name, with_default(schema, c, decimal_mode));
                }
            }
            Some(Arc::new(key))
        };
        let source = source_schema();
        // Debezium's envelope, version 2 (with ts_us and ts_ns).
        let envelope = Schema::struct_named(format!("{base}.Envelope"))
            .version(2)
            .field("before", (*row_schema).clone())
            .field("after", (*row_schema).clone())
            .field("source", source.clone())
            .field("transaction", transaction_schema())
            .field("op", Schema::string())
            .field("ts_ms", Schema::int64().optional())
            .field("ts_us", Schema::int64().optional())
            .field("ts_ns", Schema::int64().optional());
        let tuple_columns = (0..meta.columns.len()).collect();
        TableSchemas {
            topic: base,
            key_schema,
            row_schema,
            envelope_schema: Arc::new(envelope),
            source_schema: Arc::new(source),
            tuple_columns,
            meta,
            prefix: prefix.to_string(),
            db: db.to_string(),
            decimal_mode,
        }
    }

    /// Sets the tuple column order from a Relation message's column names.
    pub fn set_tuple_columns(&mut self, names: &[String]) -> Result<()> {
        let mut idx = Vec::with_capacity(names.len());
        for n in names {
            idx.push(
                self.meta
                    .columns
                    .iter()
                    .position(|c| &c.name == n)
                    .ok_or_else(|| {
                        Error::Protocol(format!(
                            "column {n} of {}.{} is not in the catalog",
                            self.meta.schema, self.meta.name
                        ))
                    })?,
            );
        }
        self.tuple_columns = idx;
        Ok(())
    }

    /// A row struct from text values in catalog column order (snapshot).
    pub fn row_from_text(&self, values: &[Option<&str>]) -> Result<Struct> {
        let mut s = Struct::new(self.row_schema.clone());
        for (i, c) in self.meta.columns.iter().enumerate() {
            let v = match values.get(i).copied().flatten() {
                Some(t) => text_to_value(&c.kind, self.decimal_mode, t)?,
                None => Value::Null,
            };
            s.values[i] = v;
        }
        self.fill_required(&mut s);
        Ok(s)
    }

    /// A row struct from a stream tuple (columns it lacks stay null).
    pub fn row_from_tuple(&self, tuple: &[TupleValue]) -> Result<Struct> {
        let mut s = Struct::new(self.row_schema.clone());
        for (pos, v) in tuple.iter().enumerate() {
            let Some(&i) = self.tuple_columns.get(pos) else {
                continue;
            };
            let kind: &TypeKind = &self.meta.columns[i].kind;
            s.values[i] = match v {
                TupleValue::Null => Value::Null,
                TupleValue::Unchanged => unavailable_value(kind, self.decimal_mode),
                TupleValue::Text(t) => text_to_value(kind, self.decimal_mode, t)?,
            };
        }
        self.fill_required(&mut s);
        Ok(s)
    }

    fn fill_required(&self, s: &mut Struct) {
        for f in &self.row_schema.fields {
            // A struct-valued column (VariableScaleDecimal) takes the
            // field's own schema (optional or not).
            if let Value::Struct(inner) = &mut s.values[f.index] {
                if *inner.schema != f.schema {
                    inner.schema = Arc::new(f.schema.clone());
                }
            }
            if !f.schema.optional && s.values[f.index].is_null() {
                s.values[f.index] = fallback(&f.schema);
            }
        }
    }

    /// The key of a row (null when the table has no primary key).
    pub fn key_of(&self, row: &Struct) -> Result<Value> {
        let Some(ks) = &self.key_schema else {
            return Ok(Value::Null);
        };
        let mut k = Struct::new(ks.clone());
        for f in &ks.fields {
            k.values[f.index] = row.get(&f.name).cloned().unwrap_or(Value::Null);
        }
        Ok(Value::Struct(k))
    }

    /// The change event value; `now_us`: when the connector made it
    /// (microseconds since the epoch).
    pub fn envelope(
        &self,
        op: &str,
        before: Option<Struct>,
        after: Option<Struct>,
        info: &SourceInfo,
        now_us: i64,
    ) -> Result<Value> {
        let mut source = Struct::new(self.source_schema.clone());
        source
            .put("version", Value::String(VERSION.to_string()))?
            .put("connector", Value::String("postgresql".into()))?
            .put("name", Value::String(self.prefix.clone()))?
            .put("ts_ms", Value::Int64(info.ts_us.div_euclid(1000)))?
            .put("snapshot", Value::String(info.snapshot.to_string()))?
            .put("db", Value::String(self.db.clone()))?
            .put(
                "sequence",
                info.sequence
                    .clone()
                    .map(Value::String)
                    .unwrap_or(Value::Null),
            )?
            .put("ts_us", Value::Int64(info.ts_us))?
            .put("ts_ns", Value::Int64(info.ts_us.saturating_mul(1000)))?
            .put("schema", Value::String(self.meta.schema.clone()))?
            .put("table", Value::String(self.meta.name.clone()))?
            .put("txId", info.tx_id.map(Value::Int64).unwrap_or(Value::Null))?
            .put("lsn", info.lsn.map(Value::Int64).unwrap_or(Value::Null))?;
        let mut env = Struct::new(self.envelope_schema.clone());
        env.put("before", before.map(Value::Struct).unwrap_or(Value::Null))?
            .put("after", after.map(Value::Struct).unwrap_or(Value::Null))?
            .put("source", Value::Struct(source))?
            .put("op", Value::String(op.to_string()))?
            .put("ts_ms", Value::Int64(now_us.div_euclid(1000)))?
            .put("ts_us", Value::Int64(now_us))?
            .put("ts_ns", Value::Int64(now_us.saturating_mul(1000)))?;
        if let Some(tx) = &info.transaction {
            let block = Struct::new(Arc::new(transaction_schema()))
                .with("id", Value::String(tx.id.clone()))?
                .with("total_order", Value::Int64(tx.total_order))?
                .with(
                    "data_collection_order",
                    Value::Int64(tx.data_collection_order),
                )?;
            env.put("transaction", Value::Struct(block))?;
        }
        Ok(Value::Struct(env))
    }
}

/// Debezium's heartbeat key and value schemas.
pub fn heartbeat_schemas() -> (Arc<Schema>, Arc<Schema>) {
    (
        Arc::new(
            Schema::struct_named("io.debezium.connector.common.ServerNameKey")
                .field("serverName", Schema::string()),
        ),
        Arc::new(
            Schema::struct_named("io.debezium.connector.common.Heartbeat")
                .field("ts_ms", Schema::int64()),
        ),
    )
}
