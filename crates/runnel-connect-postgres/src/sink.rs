//! The sink: Confluent's `JdbcSinkConnector`, for PostgreSQL.
//!
//! Each [`SinkTask::put`] writes its records in one transaction: `insert`
//! (plain INSERT; with `pk.mode=kafka` it is `ON CONFLICT DO NOTHING`, so a
//! redelivered record is not written twice), `upsert` (`INSERT … ON
//! CONFLICT (pk) DO UPDATE`) or `update`; a tombstone (null value) is a
//! `DELETE` by key when `delete.enabled` (which needs
//! `pk.mode=record_key`) and is skipped otherwise. `auto.create` makes a
//! missing table (primary key from `pk.mode`); `auto.evolve` adds columns
//! for new optional fields.
//!
//! Values: structs with schemas (Connect types and the `Decimal`, `Date`,
//! `Time`, `Timestamp` logical types; nested structs, arrays and maps are
//! not supported), and schemaless maps with string keys whose values are
//! primitives (integers → `bigint`, floats → `double precision`, strings
//! → `text`, booleans, bytes). Keys likewise: a struct, a map, or a
//! primitive named by `pk.fields`.
//!
//! Parameters are sent as text and cast to the column's type on the
//! server, so any column type whose input accepts the value's text form
//! works.

use crate::conn::ConnSettings;
use crate::error::{Error, Result};
use crate::replication::quote_ident;
use runnel_connect_api::{
    logical, Config, ConfigDef, ConfigKey, ConfigType, ConfigValue, ConnectError, ConnectorContext,
    ConnectorKind, ConnectorPlugin, Importance, Schema, SchemaType, SinkRecord, SinkTask,
    Validator, Value,
};
use std::collections::HashMap;
use tokio_postgres::{Client, GenericClient, Statement, Transaction};

/// The class name.
pub const CLASS: &str = "io.confluent.connect.jdbc.JdbcSinkConnector";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InsertMode {
    Insert,
    Upsert,
    Update,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PkMode {
    None,
    Kafka,
    RecordKey,
    RecordValue,
}

/// The parsed sink configuration.
#[derive(Debug, Clone)]
struct SinkConfig {
    conn: ConnSettings,
    table_format: String,
    insert_mode: InsertMode,
    pk_mode: PkMode,
    pk_fields: Vec<String>,
    whitelist: Vec<String>,
    delete_enabled: bool,
    auto_create: bool,
    auto_evolve: bool,
    batch_size: usize,
    max_retries: u32,
    retry_backoff: std::time::Duration,
}

fn key(name: &str, kind: ConfigType, default: Option<&str>, doc: &str) -> ConfigKey {
    ConfigKey::new(name, kind, default, Importance::High, doc)
}

fn sink_config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            key(
                "connection.url",
                ConfigType::String,
                None,
                "jdbc:postgresql://host:port/db (or postgres://…)",
            )
            .validator(Validator::NonEmpty),
        )
        .define(key("connection.user", ConfigType::String, Some(""), "User"))
        .define(key(
            "connection.password",
            ConfigType::Password,
            Some(""),
            "Password",
        ))
        .define(key(
            "table.name.format",
            ConfigType::String,
            Some("${topic}"),
            "Table name; ${topic} is replaced by the record's topic",
        ))
        .define(
            key(
                "insert.mode",
                ConfigType::String,
                Some("insert"),
                "insert, upsert or update",
            )
            .validator(Validator::one_of(&["insert", "upsert", "update"])),
        )
        .define(
            key(
                "pk.mode",
                ConfigType::String,
                Some("none"),
                "none, kafka, record_key or record_value",
            )
            .validator(Validator::one_of(&[
                "none",
                "kafka",
                "record_key",
                "record_value",
            ])),
        )
        .define(key(
            "pk.fields",
            ConfigType::List,
            Some(""),
            "Primary key column names",
        ))
        .define(key(
            "fields.whitelist",
            ConfigType::List,
            Some(""),
            "Value fields to write (empty: all)",
        ))
        .define(key(
            "delete.enabled",
            ConfigType::Boolean,
            Some("false"),
            "A tombstone deletes the row (needs pk.mode=record_key)",
        ))
        .define(key(
            "auto.create",
            ConfigType::Boolean,
            Some("false"),
            "CREATE TABLE when missing",
        ))
        .define(key(
            "auto.evolve",
            ConfigType::Boolean,
            Some("false"),
            "ALTER TABLE ADD COLUMN for new optional fields",
        ))
        .define(
            key(
                "batch.size",
                ConfigType::Int,
                Some("3000"),
                "Records per statement batch",
            )
            .validator(Validator::Range {
                min: Some(1),
                max: None,
            }),
        )
        .define(
            key(
                "max.retries",
                ConfigType::Int,
                Some("10"),
                "Consecutive retriable failures before the task fails",
            )
            .validator(Validator::Range {
                min: Some(0),
                max: None,
            }),
        )
        .define(
            key(
                "retry.backoff.ms",
                ConfigType::Int,
                Some("3000"),
                "Wait between retries",
            )
            .validator(Validator::Range {
                min: Some(0),
                max: None,
            }),
        )
}

impl SinkConfig {
    fn parse(config: &Config) -> Result<SinkConfig> {
        let def = sink_config_def();
        def.check(config)
            .map_err(|e| Error::config(e.name, e.value, e.message))?;
        let m = |e: runnel_connect_api::ConfigError| Error::config(e.name, e.value, e.message);
        let url = def.string(config, "connection.url").map_err(m)?;
        let mut conn = ConnSettings::from_url(&url)?;
        let user = def.string(config, "connection.user").map_err(m)?;
        if !user.is_empty() {
            conn.user = user;
        }
        let password = def.string(config, "connection.password").map_err(m)?;
        if !password.is_empty() {
            conn.password = Some(password);
        }
        let insert_mode = match def
            .string(config, "insert.mode")
            .map_err(m)?
            .to_ascii_lowercase()
            .as_str()
        {
            "upsert" => InsertMode::Upsert,
            "update" => InsertMode::Update,
            _ => InsertMode::Insert,
        };
        let pk_raw = def.string(config, "pk.mode").map_err(m)?;
        let pk_mode = match pk_raw.to_ascii_lowercase().as_str() {
            "kafka" => PkMode::Kafka,
            "record_key" => PkMode::RecordKey,
            "record_value" => PkMode::RecordValue,
            _ => PkMode::None,
        };
        let mut pk_fields = def.list(config, "pk.fields").map_err(m)?;
        if pk_mode == PkMode::Kafka {
            if pk_fields.is_empty() {
                pk_fields = vec![
                    "__connect_topic".into(),
                    "__connect_partition".into(),
                    "__connect_offset".into(),
                ];
            } else if pk_fields.len() != 3 {
                return Err(Error::config(
                    "pk.fields",
                    pk_fields.join(","),
                    "pk.mode=kafka takes exactly three names (topic, partition, offset)",
                ));
            }
        }
        let delete_enabled = def.boolean(config, "delete.enabled").map_err(m)?;
        if delete_enabled && pk_mode != PkMode::RecordKey {
            return Err(Error::config(
                "delete.enabled",
                "true",
                "delete.enabled=true needs pk.mode=record_key",
            ));
        }
        if insert_mode != InsertMode::Insert && pk_mode == PkMode::None {
            return Err(Error::config(
                "pk.mode",
                pk_raw,
                "insert.mode upsert and update need a primary key (pk.mode other than none)",
            ));
        }
        Ok(SinkConfig {
            conn,
            table_format: def.string(config, "table.name.format").map_err(m)?,
            insert_mode,
            pk_mode,
            pk_fields,
            whitelist: def.list(config, "fields.whitelist").map_err(m)?,
            delete_enabled,
            auto_create: def.boolean(config, "auto.create").map_err(m)?,
            auto_evolve: def.boolean(config, "auto.evolve").map_err(m)?,
            batch_size: usize::try_from(def.int(config, "batch.size").map_err(m)?).unwrap_or(3000),
            max_retries: u32::try_from(def.int(config, "max.retries").map_err(m)?).unwrap_or(10),
            retry_backoff: std::time::Duration::from_millis(
                u64::try_from(def.int(config, "retry.backoff.ms").map_err(m)?).unwrap_or(3000),
            ),
        })
    }
}

/// Confluent's JDBC sink connector, for PostgreSQL.
#[derive(Debug, Default, Clone)]
pub struct JdbcSinkConnector;

impl JdbcSinkConnector {
    pub fn new() -> JdbcSinkConnector {
        JdbcSinkConnector
    }
}

impl ConnectorPlugin for JdbcSinkConnector {
    fn class(&self) -> &str {
        CLASS
    }
    fn aliases(&self) -> Vec<String> {
        vec!["JdbcSinkConnector".into()]
    }
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Sink
    }
    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
    fn config_def(&self) -> ConfigDef {
        sink_config_def()
    }
    fn validate(&self, config: &Config) -> Vec<ConfigValue> {
        let mut out = self.config_def().validate(config);
        if out.iter().all(|v| v.errors.is_empty()) {
            if let Err(Error::Config { field, message, .. }) = SinkConfig::parse(config) {
                if let Some(v) = out.iter_mut().find(|v| v.name == field) {
                    v.errors.push(message);
                }
            }
        }
        out
    }
    fn task_configs(&self, config: &Config, max_tasks: usize) -> Result<Vec<Config>, ConnectError> {
        SinkConfig::parse(config)?;
        Ok(vec![config.clone(); max_tasks.max(1)])
    }
    fn sink_task(&self) -> Result<Box<dyn SinkTask>, ConnectError> {
        Ok(Box::new(JdbcSinkTask::new()))
    }
}

/// A column of a record: name, schema, value.
struct Col {
    name: String,
    schema: Schema,
    value: Value,
}

/// A table's columns as the catalog has them: name → SQL type.
#[derive(Debug, Clone, Default)]
struct TableInfo {
    columns: HashMap<String, String>,
}

/// The sink task.
#[derive(Default)]
pub struct JdbcSinkTask {
    rt: Option<tokio::runtime::Runtime>,
    cfg: Option<SinkConfig>,
    client: Option<Client>,
    tables: HashMap<String, TableInfo>,
    /// Prepared statements by SQL text (valid for the current connection).
    statements: HashMap<String, Statement>,
    failures: u32,
    last_failure: Option<std::time::Instant>,
}

impl JdbcSinkTask {
    pub fn new() -> JdbcSinkTask {
        JdbcSinkTask::default()
    }
}

impl SinkTask for JdbcSinkTask {
    fn start(&mut self, config: &Config, context: &ConnectorContext) -> Result<(), ConnectError> {
        let cfg = SinkConfig::parse(config)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ConnectError::Fatal(e.to_string()))?;
        tracing::info!(connector = %context.connector, task = context.task, "starting JDBC sink task");
        self.client = Some(rt.block_on(cfg.conn.connect())?);
        self.cfg = Some(cfg);
        self.rt = Some(rt);
        Ok(())
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        let (Some(rt), Some(cfg)) = (&self.rt, &self.cfg) else {
            return Err(ConnectError::Fatal("the task is not started".into()));
        };
        let result = rt.block_on(async {
            // After a retriable failure, wait out retry.backoff.ms before
            // reconnecting.
            if let Some(at) = self.last_failure.take() {
                let left = cfg.retry_backoff.saturating_sub(at.elapsed());
                if !left.is_zero() {
                    tokio::time::sleep(left).await;
                }
            }
            if self.client.as_ref().is_none_or(|c| c.is_closed()) {
                self.client = Some(cfg.conn.connect().await?);
                self.tables.clear();
                self.statements.clear();
            }
            let client = self
                .client
                .as_mut()
                .ok_or_else(|| Error::Protocol("no connection".into()))?;
            write(
                client,
                cfg,
                &mut self.tables,
                &mut self.statements,
                &records,
            )
            .await
        });
        match result {
            Ok(()) => {
                self.failures = 0;
                Ok(())
            }
            Err(e) => {
                // Schema knowledge may be stale after a failure.
                self.tables.clear();
                self.statements.clear();
                if e.is_retriable() {
                    self.failures += 1;
                    if self.failures > cfg.max_retries {
                        return Err(ConnectError::Fatal(format!(
                            "giving up after {} retries: {e}",
                            cfg.max_retries
                        )));
                    }
                    tracing::warn!("write failed, will be retried: {e}");
                    self.client = None;
                    self.last_failure = Some(std::time::Instant::now());
                    Err(ConnectError::Retriable(e.to_string()))
                } else {
                    Err(e.into())
                }
            }
        }
    }

    fn flush(&mut self) -> Result<(), ConnectError> {
        // Every put commits its transaction before returning.
        Ok(())
    }

    fn stop(&mut self) {
        self.client = None;
        self.rt = None;
    }
}

/// `schema.table` or `table`, quoted.
fn table_ident(name: &str) -> String {
    match name.split_once('.') {
        Some((s, t)) => format!("{}.{}", quote_ident(s), quote_ident(t)),
        None => quote_ident(name),
    }
}

fn infer_schema(v: &Value) -> Schema {
    match v {
        Value::Boolean(_) => Schema::boolean(),
        Value::Int8(_) => Schema::int8(),
        Value::Int16(_) => Schema::int16(),
        Value::Int32(_) => Schema::int32(),
        Value::Int64(_) => Schema::int64(),
        Value::Float32(_) => Schema::float32(),
        Value::Float64(_) => Schema::float64(),
        Value::Bytes(_) => Schema::bytes(),
        _ => Schema::string(),
    }
    .optional()
}

/// The fields of a struct or string-keyed map value, with schemas.
fn fields_of(value: &Value, schema: Option<&Schema>, what: &str) -> Result<Vec<Col>> {
    match value {
        Value::Struct(s) => {
            let schema = schema
                .filter(|s| s.kind == SchemaType::Struct)
                .unwrap_or(&s.schema);
            Ok(schema
                .fields
                .iter()
                .map(|f| Col {
                    name: f.name.clone(),
                    schema: f.schema.clone(),
                    value: s.values.get(f.index).cloned().unwrap_or(Value::Null),
                })
                .collect())
        }
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| {
                let name = k
                    .as_str()
                    .ok_or_else(|| Error::Convert(format!("a {what} map with a non-string key")))?;
                Ok(Col {
                    name: name.to_string(),
                    schema: infer_schema(v),
                    value: v.clone(),
                })
            })
            .collect(),
        other => Err(Error::Convert(format!(
            "a {} {what} where a struct or map is needed",
            other.kind_name()
        ))),
    }
}

/// The SQL type for a Connect schema (auto.create / auto.evolve).
fn sql_type(schema: &Schema) -> Result<String> {
    match schema.name.as_deref() {
        Some(logical::DECIMAL) => return Ok("numeric".into()),
        Some(logical::DATE) | Some("io.debezium.time.Date") => return Ok("date".into()),
        Some(logical::TIME) => return Ok("time".into()),
        Some(logical::TIMESTAMP) => return Ok("timestamp".into()),
        _ => {}
    }
    Ok(match schema.kind {
        SchemaType::Int8 | SchemaType::Int16 => "smallint",
        SchemaType::Int32 => "integer",
        SchemaType::Int64 => "bigint",
        SchemaType::Float32 => "real",
        SchemaType::Float64 => "double precision",
        SchemaType::Boolean => "boolean",
        SchemaType::String => "text",
        SchemaType::Bytes => "bytea",
        other => {
            return Err(Error::Convert(format!(
                "{} fields cannot be written to a column",
                other.json_name()
            )))
        }
    }
    .to_string())
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn date_text(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn time_text(ms: i64) -> String {
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    format!(
        "{h:02}:{:02}:{:02}.{:03}",
        rest / 60_000,
        (rest % 60_000) / 1000,
        rest % 1000
    )
}

/// A two's-complement big-endian integer with `scale` as decimal text.
fn decimal_text(bytes: &[u8], scale: i32) -> String {
    let neg = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut mag: Vec<u8> = if neg {
        // Negate: invert and add one.
        let mut v: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for b in v.iter_mut().rev() {
            let (s, carry) = b.overflowing_add(1);
            *b = s;
            if !carry {
                break;
            }
        }
        v
    } else {
        bytes.to_vec()
    };
    // Base 256 → base 10 by repeated division.
    let mut digits = Vec::new();
    while mag.iter().any(|b| *b != 0) {
        let mut rem = 0u32;
        for b in mag.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    let scale = scale.max(0) as usize;
    while digits.len() <= scale {
        digits.push(b'0');
    }
    digits.reverse();
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    let (int, frac) = digits.split_at(digits.len() - scale);
    s.push_str(&String::from_utf8_lossy(int));
    if scale > 0 {
        s.push('.');
        s.push_str(&String::from_utf8_lossy(frac));
    }
    s
}

/// A value's text form for a parameter cast on the server.
fn value_text(schema: &Schema, v: &Value) -> Result<Option<String>> {
    let logical = schema.name.as_deref();
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Boolean(b) => b.to_string(),
        Value::Int32(d)
            if matches!(logical, Some(logical::DATE) | Some("io.debezium.time.Date")) =>
        {
            date_text(i64::from(*d))
        }
        Value::Int32(ms) if logical == Some(logical::TIME) => time_text(i64::from(*ms)),
        Value::Int64(ms) if logical == Some(logical::TIMESTAMP) => {
            let days = ms.div_euclid(86_400_000);
            format!(
                "{} {}",
                date_text(days),
                time_text(ms.rem_euclid(86_400_000))
            )
        }
        Value::Int8(i) => i.to_string(),
        Value::Int16(i) => i.to_string(),
        Value::Int32(i) => i.to_string(),
        Value::Int64(i) => i.to_string(),
        Value::Float32(f) => float_text(f64::from(*f)),
        Value::Float64(f) => float_text(*f),
        Value::String(s) => s.clone(),
        Value::Bytes(b) if logical == Some(logical::DECIMAL) => {
            let scale = schema
                .parameter(logical::SCALE_PARAM)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            decimal_text(b, scale)
        }
        Value::Bytes(b) => {
            let mut s = String::with_capacity(2 + b.len() * 2);
            s.push_str("\\x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        other => {
            return Err(Error::Convert(format!(
                "{} values cannot be written to a column",
                other.kind_name()
            )))
        }
    }))
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        f.to_string()
    }
}

/// Splits a record into key columns and other columns per `pk.mode`.
fn columns(cfg: &SinkConfig, r: &SinkRecord) -> Result<(Vec<Col>, Vec<Col>)> {
    let mut value_cols = if r.value.is_null() {
        Vec::new()
    } else {
        fields_of(&r.value, r.value_schema.as_ref(), "value")?
    };
    if !cfg.whitelist.is_empty() {
        value_cols.retain(|c| cfg.whitelist.contains(&c.name));
    }
    let pk = match cfg.pk_mode {
        PkMode::None => Vec::new(),
        PkMode::Kafka => vec![
            Col {
                name: cfg.pk_fields[0].clone(),
                schema: Schema::string(),
                value: Value::String(r.topic.clone()),
            },
            Col {
                name: cfg.pk_fields[1].clone(),
                schema: Schema::int32(),
                value: Value::Int32(r.partition),
            },
            Col {
                name: cfg.pk_fields[2].clone(),
                schema: Schema::int64(),
                value: Value::Int64(r.offset),
            },
        ],
        PkMode::RecordKey => match &r.key {
            Value::Null => {
                return Err(Error::Convert(
                    "a record without a key (pk.mode=record_key)".into(),
                ))
            }
            Value::Struct(_) | Value::Map(_) => {
                let mut cols = fields_of(&r.key, r.key_schema.as_ref(), "key")?;
                if !cfg.pk_fields.is_empty() {
                    cols.retain(|c| cfg.pk_fields.contains(&c.name));
                }
                cols
            }
            primitive => {
                let name = match cfg.pk_fields.as_slice() {
                    [one] => one.clone(),
                    _ => {
                        return Err(Error::config(
                            "pk.fields",
                            cfg.pk_fields.join(","),
                            "a primitive record key needs exactly one name in pk.fields",
                        ))
                    }
                };
                vec![Col {
                    name,
                    schema: r
                        .key_schema
                        .clone()
                        .unwrap_or_else(|| infer_schema(primitive)),
                    value: primitive.clone(),
                }]
            }
        },
        PkMode::RecordValue => {
            let (pk, rest): (Vec<Col>, Vec<Col>) = value_cols
                .into_iter()
                .partition(|c| cfg.pk_fields.is_empty() || cfg.pk_fields.contains(&c.name));
            value_cols = rest;
            pk
        }
    };
    if cfg.pk_mode == PkMode::RecordKey {
        value_cols.retain(|c| !pk.iter().any(|k| k.name == c.name));
    }
    for k in &pk {
        if k.value.is_null() {
            return Err(Error::Convert(format!(
                "primary key field {} is null",
                k.name
            )));
        }
    }
    Ok((pk, value_cols))
}

async fn table_info(client: &impl GenericClient, table: &str) -> Result<Option<TableInfo>> {
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&table_ident(table)],
        )
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(TableInfo {
        columns: rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
    }))
}

/// Makes sure `table` exists with every column of the record.
async fn ensure_table(
    client: &impl GenericClient,
    cfg: &SinkConfig,
    tables: &mut HashMap<String, TableInfo>,
    table: &str,
    pk: &[Col],
    cols: &[Col],
) -> Result<()> {
    let known = tables.get(table).is_some_and(|t| {
        pk.iter()
            .chain(cols)
            .all(|c| t.columns.contains_key(&c.name))
    });
    if known {
        return Ok(());
    }
    let mut info = table_info(client, table).await?;
    if info.is_none() {
        if !cfg.auto_create {
            return Err(Error::config(
                "auto.create",
                "false",
                format!("table {table} does not exist and auto.create is false"),
            ));
        }
        let mut defs = Vec::new();
        for c in pk {
            defs.push(format!(
                "{} {} NOT NULL",
                quote_ident(&c.name),
                sql_type(&c.schema)?
            ));
        }
        for c in cols {
            defs.push(format!(
                "{} {}{}",
                quote_ident(&c.name),
                sql_type(&c.schema)?,
                if c.schema.optional { "" } else { " NOT NULL" }
            ));
        }
        if !pk.is_empty() {
            defs.push(format!(
                "PRIMARY KEY ({})",
                pk.iter()
                    .map(|c| quote_ident(&c.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            table_ident(table),
            defs.join(", ")
        );
        tracing::info!(%sql, "creating table");
        client.batch_execute(&sql).await?;
        info = table_info(client, table).await?;
    }
    let mut info = info.ok_or_else(|| Error::Protocol(format!("table {table} is missing")))?;
    let missing: Vec<&Col> = pk
        .iter()
        .chain(cols)
        .filter(|c| !info.columns.contains_key(&c.name))
        .collect();
    if !missing.is_empty() {
        let names = missing
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if !cfg.auto_evolve {
            return Err(Error::config(
                "auto.evolve",
                "false",
                format!("table {table} has no column(s) {names} and auto.evolve is false"),
            ));
        }
        for c in missing {
            if !c.schema.optional {
                return Err(Error::Convert(format!(
                    "cannot add required field {} to table {table}: only optional fields are added",
                    c.name
                )));
            }
            let sql = format!(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}",
                table_ident(table),
                quote_ident(&c.name),
                sql_type(&c.schema)?
            );
            tracing::info!(%sql, "evolving table");
            client.batch_execute(&sql).await?;
        }
        info = table_info(client, table)
            .await?
            .ok_or_else(|| Error::Protocol(format!("table {table} is missing")))?;
    }
    tables.insert(table.to_string(), info);
    Ok(())
}

/// `$n::text::type` for column `c`.
fn param(n: usize, info: &TableInfo, c: &Col) -> String {
    let ty = info
        .columns
        .get(&c.name)
        .map(String::as_str)
        .unwrap_or("text");
    format!("${n}::text::{ty}")
}

async fn write(
    client: &mut Client,
    cfg: &SinkConfig,
    tables: &mut HashMap<String, TableInfo>,
    statements: &mut HashMap<String, Statement>,
    records: &[SinkRecord],
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let tx = client.transaction().await?;
    for chunk in records.chunks(cfg.batch_size.max(1)) {
        for r in chunk {
            let table = cfg.table_format.replace("${topic}", &r.topic);
            let (pk, cols) = columns(cfg, r)?;
            if r.value.is_null() {
                if !cfg.delete_enabled {
                    tracing::debug!(topic = %r.topic, offset = r.offset, "tombstone skipped (delete.enabled=false)");
                    continue;
                }
                ensure_table(&tx, cfg, tables, &table, &pk, &[]).await?;
                let info = tables.get(&table).cloned().unwrap_or_default();
                let cond: Vec<String> = pk
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{} = {}", quote_ident(&c.name), param(i + 1, &info, c)))
                    .collect();
                let sql = format!(
                    "DELETE FROM {} WHERE {}",
                    table_ident(&table),
                    cond.join(" AND ")
                );
                let params = texts(&pk)?;
                execute(&tx, statements, &sql, &params).await?;
                continue;
            }
            ensure_table(&tx, cfg, tables, &table, &pk, &cols).await?;
            let info = tables.get(&table).cloned().unwrap_or_default();
            let all: Vec<&Col> = pk.iter().chain(&cols).collect();
            let (sql, params) = match cfg.insert_mode {
                InsertMode::Update => {
                    if cols.is_empty() {
                        continue;
                    }
                    let sets: Vec<String> = cols
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            format!("{} = {}", quote_ident(&c.name), param(i + 1, &info, c))
                        })
                        .collect();
                    let cond: Vec<String> = pk
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            format!(
                                "{} = {}",
                                quote_ident(&c.name),
                                param(cols.len() + i + 1, &info, c)
                            )
                        })
                        .collect();
                    let mut params = texts(&cols)?;
                    params.extend(texts(&pk)?);
                    (
                        format!(
                            "UPDATE {} SET {} WHERE {}",
                            table_ident(&table),
                            sets.join(", "),
                            cond.join(" AND ")
                        ),
                        params,
                    )
                }
                mode => {
                    let names: Vec<String> = all.iter().map(|c| quote_ident(&c.name)).collect();
                    let values: Vec<String> = all
                        .iter()
                        .enumerate()
                        .map(|(i, c)| param(i + 1, &info, c))
                        .collect();
                    let mut sql = format!(
                        "INSERT INTO {} ({}) VALUES ({})",
                        table_ident(&table),
                        names.join(", "),
                        values.join(", ")
                    );
                    let pk_list = pk
                        .iter()
                        .map(|c| quote_ident(&c.name))
                        .collect::<Vec<_>>()
                        .join(", ");
                    if mode == InsertMode::Upsert {
                        if cols.is_empty() {
                            sql.push_str(&format!(" ON CONFLICT ({pk_list}) DO NOTHING"));
                        } else {
                            let sets: Vec<String> = cols
                                .iter()
                                .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(&c.name)))
                                .collect();
                            sql.push_str(&format!(
                                " ON CONFLICT ({pk_list}) DO UPDATE SET {}",
                                sets.join(", ")
                            ));
                        }
                    } else if cfg.pk_mode == PkMode::Kafka {
                        // The same topic/partition/offset is the same record.
                        sql.push_str(&format!(" ON CONFLICT ({pk_list}) DO NOTHING"));
                    }
                    let mut params = texts(&pk)?;
                    params.extend(texts(&cols)?);
                    (sql, params)
                }
            };
            execute(&tx, statements, &sql, &params).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Runs `sql`, preparing it once per connection.
async fn execute(
    tx: &Transaction<'_>,
    statements: &mut HashMap<String, Statement>,
    sql: &str,
    params: &[Option<String>],
) -> Result<u64> {
    let statement = match statements.get(sql) {
        Some(s) => s.clone(),
        None => {
            let s = tx.prepare(sql).await?;
            statements.insert(sql.to_string(), s.clone());
            s
        }
    };
    Ok(tx.execute(&statement, &refs(params)).await?)
}

fn texts(cols: &[Col]) -> Result<Vec<Option<String>>> {
    cols.iter()
        .map(|c| value_text(&c.schema, &c.value))
        .collect()
}

fn refs(params: &[Option<String>]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_dates_and_times_print_as_postgres_reads_them() {
        assert_eq!(decimal_text(&[0xfb, 0x32], 2), "-12.30");
        assert_eq!(decimal_text(&[0x30, 0x39], 0), "12345");
        assert_eq!(decimal_text(&[0x05], 3), "0.005");
        assert_eq!(decimal_text(&[0x00], 1), "0.0");
        assert_eq!(date_text(19783), "2024-03-01");
        assert_eq!(date_text(-1), "1969-12-31");
        assert_eq!(time_text(3_723_500), "01:02:03.500");
    }
}
