//! The PostgreSQL CDC source: Debezium's `PostgresConnector`.
//!
//! One task per connector. At start it makes sure the publication and the
//! replication slot exist, then either snapshots (creating the slot with an
//! exported snapshot, which it imports into a REPEATABLE READ transaction,
//! so the snapshot and the slot's start are the same instant) or streams
//! the slot's `pgoutput` changes.
//!
//! ## Offsets
//!
//! Source partition `{"server": <topic.prefix>}`. A streamed change's
//! offset holds `lsn` (the end LSN of the last transaction whose changes
//! were all emitted: safe to confirm), `lsn_commit` and `txId` (the
//! transaction the change belongs to), `lsn_proc` (the change's own LSN),
//! `event_index` (how many changes of that transaction are emitted with
//! this one) and `ts_usec` (commit time). On restart the task streams from
//! the slot, skips transactions that committed before `lsn`, and skips the
//! first `event_index` changes of transaction `lsn_commit`: a restart in
//! the middle of a transaction neither loses nor repeats a change.
//! Snapshot records carry `snapshot: true`, `last_snapshot_record` and the
//! slot's consistent point as `lsn`; a snapshot that did not finish is
//! started again (with a new slot) at the next start.
//!
//! The task confirms an LSN to PostgreSQL (standby status update) only in
//! [`SourceTask::commit`], when the runtime says the records are durable:
//! the stored offset's `lsn`, or the end of the transaction whose last
//! change the stored offset is.
//!
//! ## Events
//!
//! Ops `r` (snapshot), `c`, `u`, `d`; a delete is followed by a tombstone
//! when `tombstones.on.delete`; a primary key change is a delete (and
//! tombstone) of the old key and a create of the new. `before` is what the
//! table's REPLICA IDENTITY gives: the whole old row under FULL, the key
//! columns under DEFAULT on a delete or key change (other columns null, or
//! the type's zero where the column is NOT NULL, as Debezium does), null
//! on other updates under DEFAULT. An unchanged TOASTed value the server
//! did not send is `__debezium_unavailable_value` for strings (json,
//! enums, text...), its UTF-8 bytes for `bytea`, a one-element array of it
//! for string arrays, and null (or zero when NOT NULL) for other types.
//! `skipped.operations` (Debezium's default `t`) drops streamed inserts,
//! updates, deletes or truncates; a truncate, when emitted, is one event
//! per table with no key and `op: "t"` (no `before`/`after`).
//!
//! ## Transaction metadata
//!
//! With `provide.transaction.metadata`, each streamed transaction with
//! events gets a BEGIN record before its first event and an END record at
//! its commit on `<topic.prefix>.<topic.transaction>` (key
//! `TransactionMetadataKey {id}`, value `TransactionMetadataValue`:
//! status, id, `event_count` and `data_collections` on END, `ts_ms` the
//! commit time), and each change event a `transaction` block: `id`,
//! `total_order` (the event's place in the transaction, tombstones not
//! counted; a key change is two events) and `data_collection_order` (its
//! place among the same table's). As Debezium's PostgreSQL connector, ids
//! are `<txId>:<LSN>` with the LSN of the message at hand (BEGIN: the
//! transaction's first, END: the commit's, an event: its own), and END
//! lists tables in the order of a Java `HashMap` of their names (compared
//! with Debezium 3.6.1 in `tests/compat/test_connect_debezium_reference.py`).
//! Changes skipped at a restart (emitted before it) are counted, not
//! emitted again, and so is their BEGIN; END's offset has the commit's end
//! as `lsn`, so a restart after it skips the whole transaction.

pub mod config;
pub mod envelope;

use crate::error::{Error, Result};
use crate::lsn::Lsn;
use crate::meta::{list_tables, load_table, TypeResolver};
use crate::pgoutput::{self, Message, TupleValue};
use crate::replication::{
    quote_ident, quote_literal, ReplicationConn, StreamMessage, PG_EPOCH_OFFSET_MICROS,
};
use config::{AutoCreate, SnapshotMode, SourceConfig};
use envelope::{
    heartbeat_schemas, transaction_collection_schema, transaction_topic_schemas, SourceInfo,
    TableSchemas, TxBlock, VERSION,
};
use runnel_connect_api::{
    Config, ConfigDef, ConfigValue, ConnectError, ConnectorContext, ConnectorKind, ConnectorPlugin,
    Header, OffsetReader, Schema, SourceOffset, SourcePartition, SourceRecord, SourceTask, Struct,
    Value,
};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_postgres::{Client, SimpleQueryMessage};

/// The class name.
pub const CLASS: &str = "io.debezium.connector.postgresql.PostgresConnector";

/// Rows fetched per snapshot round trip.
const SNAPSHOT_FETCH: usize = 1024;
/// Records returned by one poll at most.
const MAX_BATCH: usize = 4096;
/// How long a poll waits for changes when there are none.
const POLL_WAIT: Duration = Duration::from_millis(500);
/// How often the task tells the server where it is even when not asked.
const STATUS_INTERVAL: Duration = Duration::from_secs(10);

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Debezium's PostgreSQL connector (pgoutput).
#[derive(Debug, Default, Clone)]
pub struct PostgresConnector;

impl PostgresConnector {
    pub fn new() -> PostgresConnector {
        PostgresConnector
    }
}

/// Connects and checks the server can do logical replication; the error
/// says which key is at fault.
async fn check_server(cfg: &SourceConfig) -> Result<(), (String, String)> {
    let client = match tokio::time::timeout(Duration::from_secs(10), cfg.conn.connect()).await {
        Err(_) => {
            return Err((
                "database.hostname".into(),
                format!(
                    "cannot connect to {}:{}: timed out",
                    cfg.conn.host, cfg.conn.port
                ),
            ))
        }
        Ok(Err(e)) => {
            let field = match &e {
                Error::Postgres(pe) => match pe.code().map(|c| c.code()) {
                    Some("28P01") => "database.password",
                    Some("28000") => "database.user",
                    Some("3D000") => "database.dbname",
                    _ => "database.hostname",
                },
                _ => "database.hostname",
            };
            let detail = match &e {
                Error::Postgres(pe) => pe
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string()),
                _ => e.to_string(),
            };
            return Err((
                field.into(),
                format!(
                    "cannot connect to {}:{}/{}: {detail}",
                    cfg.conn.host, cfg.conn.port, cfg.conn.dbname
                ),
            ));
        }
        Ok(Ok(c)) => c,
    };
    let level = client
        .query_one("SHOW wal_level", &[])
        .await
        .map_err(|e| ("database.hostname".to_string(), e.to_string()))?;
    let level: String = level.get(0);
    if level != "logical" {
        return Err((
            "plugin.name".into(),
            format!("the server's wal_level is {level}; logical decoding needs wal_level=logical"),
        ));
    }
    Ok(())
}

impl ConnectorPlugin for PostgresConnector {
    fn class(&self) -> &str {
        CLASS
    }
    fn aliases(&self) -> Vec<String> {
        vec!["PostgresConnector".into()]
    }
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Source
    }
    fn version(&self) -> &str {
        VERSION
    }
    fn config_def(&self) -> ConfigDef {
        config::config_def()
    }
    fn validate(&self, config: &Config) -> Vec<ConfigValue> {
        let mut out = self.config_def().validate(config);
        if out.iter().any(|v| !v.errors.is_empty()) {
            return out;
        }
        let mut add = |field: &str, message: String| {
            if let Some(v) = out.iter_mut().find(|v| v.name == field) {
                v.errors.push(message);
            }
        };
        let cfg = match SourceConfig::parse(config) {
            Ok(c) => c,
            Err(Error::Config { field, message, .. }) => {
                add(&field, message);
                return out;
            }
            Err(e) => {
                add("database.hostname", e.to_string());
                return out;
            }
        };
        let checked = runtime()
            .map_err(|e| ("database.hostname".to_string(), e.to_string()))
            .and_then(|rt| rt.block_on(check_server(&cfg)));
        if let Err((field, message)) = checked {
            add(&field, message);
        }
        out
    }
    fn task_configs(
        &self,
        config: &Config,
        _max_tasks: usize,
    ) -> Result<Vec<Config>, ConnectError> {
        SourceConfig::parse(config)?;
        Ok(vec![config.clone()])
    }
    fn source_task(&self) -> Result<Box<dyn SourceTask>, ConnectError> {
        Ok(Box::new(PostgresSourceTask::new()))
    }
}

/// The CDC task.
#[derive(Default)]
pub struct PostgresSourceTask {
    rt: Option<tokio::runtime::Runtime>,
    state: Option<Running>,
    /// The parsed config and partition, kept to reconnect after a
    /// retriable failure.
    config: Option<(SourceConfig, SourcePartition)>,
    /// The offset of the last record `poll` returned: where to resume
    /// after reconnecting.
    resume: Option<SourceOffset>,
    /// The highest LSN confirmed to the server (through `commit`).
    confirmed: Lsn,
}

impl PostgresSourceTask {
    pub fn new() -> PostgresSourceTask {
        PostgresSourceTask::default()
    }
}

struct SnapshotState {
    tables: VecDeque<TableSchemas>,
    current: Option<TableSchemas>,
    consistent_point: Lsn,
    /// The last record made, held back until it is known whether it is
    /// the snapshot's last.
    pending: Option<Pending>,
    /// Whether a record of the snapshot was made yet.
    started: bool,
    /// Whether a record of the current table was made yet.
    table_started: bool,
    ts_us: i64,
    /// The snapshot transaction's id (`source.txId` of its records).
    tx_id: Option<i64>,
    /// Stream after the snapshot (false for `initial_only`).
    then_stream: bool,
}

/// A snapshot record waiting for its `source.snapshot` marker.
struct Pending {
    record: SourceRecord,
    first: bool,
    first_in_table: bool,
    last_in_table: bool,
}

impl Pending {
    /// The record with its marker: `first` and `last` for the first and
    /// last records of the snapshot, `first_in_data_collection` and
    /// `last_in_data_collection` for a table's first and last otherwise,
    /// `true` for the rest.
    fn finish(mut self, last: bool) -> Result<SourceRecord> {
        let marker = if last {
            "last"
        } else if self.first {
            "first"
        } else if self.last_in_table {
            "last_in_data_collection"
        } else if self.first_in_table {
            "first_in_data_collection"
        } else {
            "true"
        };
        set_snapshot_marker(&mut self.record, marker)?;
        Ok(self.record)
    }
}

/// Sets `source.snapshot` of a change event record.
fn set_snapshot_marker(record: &mut SourceRecord, marker: &str) -> Result<()> {
    if let Value::Struct(env) = &mut record.value {
        if let Some(Value::Struct(src)) = env
            .schema
            .field_named("source")
            .map(|f| f.index)
            .and_then(|i| env.values.get_mut(i))
        {
            src.put("snapshot", Value::String(marker.into()))?;
        }
    }
    Ok(())
}

enum Phase {
    Snapshot(Box<SnapshotState>),
    Streaming,
    /// `initial_only` after its snapshot, or nothing to do.
    Idle,
}

struct Txn {
    xid: u32,
    commit_lsn: Lsn,
    commit_us: i64,
    /// Changes seen so far in this transaction (emitted or skipped).
    index: u64,
    /// Changes at the start of this transaction already emitted before a
    /// restart.
    skip: u64,
    /// The whole transaction committed before the stored position.
    skip_all: bool,
    /// Where the Begin message came (the `<txId>:<LSN>` id of BEGIN).
    begin_lsn: Lsn,
    /// Events of this transaction so far (`transaction.total_order`),
    /// counted also where they were emitted before a restart.
    events: u64,
    /// The same per table (`data_collection_order`, END's
    /// `data_collections`), in order of first appearance.
    per_collection: Vec<(String, u64)>,
}

/// `items` (in insertion order) in the order a Java `HashMap` keyed by
/// them iterates: by bucket — the spread `String.hashCode` masked by the
/// table size (16, doubled while more than 3/4 full) — then insertion.
/// Debezium lists END's `data_collections` from such a map.
fn java_hash_map_order(items: &[(String, u64)]) -> Vec<(String, u64)> {
    let mut capacity: usize = 16;
    while items.len() * 4 > capacity * 3 {
        capacity *= 2;
    }
    let bucket = |s: &str| {
        let h = s
            .encode_utf16()
            .fold(0u32, |h, c| h.wrapping_mul(31).wrapping_add(u32::from(c)));
        ((h ^ (h >> 16)) as usize) & (capacity - 1)
    };
    let mut out: Vec<(usize, usize, (String, u64))> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (bucket(&item.0), i, item.clone()))
        .collect();
    out.sort_by_key(|(b, i, _)| (*b, *i));
    out.into_iter().map(|(_, _, item)| item).collect()
}

impl Txn {
    /// Counts one event of `collection` at `lsn`: its `transaction` block,
    /// and whether it is the transaction's first (BEGIN goes before it).
    fn count(&mut self, collection: &str, lsn: Lsn) -> (TxBlock, bool) {
        self.events += 1;
        let n = match self
            .per_collection
            .iter_mut()
            .find(|(c, _)| c == collection)
        {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.per_collection.push((collection.to_string(), 1));
                1
            }
        };
        let block = TxBlock {
            id: format!("{}:{}", self.xid, lsn.0),
            total_order: i64::try_from(self.events).unwrap_or(i64::MAX),
            data_collection_order: i64::try_from(n).unwrap_or(i64::MAX),
        };
        (block, self.events == 1)
    }
}

struct Running {
    cfg: SourceConfig,
    partition: SourcePartition,
    client: Client,
    types: TypeResolver,
    repl: Option<ReplicationConn>,
    phase: Phase,
    /// Schemas per relation OID (`None`: not captured).
    relations: HashMap<u32, Option<TableSchemas>>,
    txn: Option<Txn>,
    /// End of the last transaction fully emitted.
    last_end: Lsn,
    /// The server's position when idle (keepalives between transactions).
    idle_pos: Lsn,
    received: Lsn,
    confirmed: Lsn,
    skip_before: Lsn,
    resume: Option<(Lsn, u64)>,
    /// Transactions whose changes are all emitted: (commit, count, end).
    completed: VecDeque<(Lsn, u64, Lsn)>,
    last_xid: Option<u32>,
    last_commit_us: i64,
    last_offset: Option<SourceOffset>,
    last_status: Instant,
    last_heartbeat: Instant,
    /// The first element of `source.sequence` (the last commit's end):
    /// none after a snapshot or a fresh start until a transaction commits.
    sequence_commit: Option<Lsn>,
    /// The headers on every change event (`__debezium.context.*`).
    context_headers: Vec<Header>,
}

/// `source.sequence`: the last commit's end LSN (null when none yet) and
/// the change's LSN, as a JSON array of strings.
fn sequence(last_commit: Option<Lsn>, lsn: Lsn) -> String {
    match last_commit {
        Some(c) => format!("[\"{}\",\"{}\"]", c.0, lsn.0),
        None => format!("[null,\"{}\"]", lsn.0),
    }
}

/// The headers Debezium puts on every change event: the logical name
/// (`topic.prefix`), the task, the connector type and an id of this run
/// of the task.
fn context_headers(prefix: &str, task: u32, run_id: &str) -> Vec<Header> {
    let text = |key: &str, value: String| Header {
        key: key.to_string(),
        schema: Some(Schema::string()),
        value: Value::String(value),
    };
    vec![
        text(
            "__debezium.context.connectorLogicalName",
            prefix.to_string(),
        ),
        text("__debezium.context.taskId", task.to_string()),
        text("__debezium.context.connectorName", "postgresql".to_string()),
        text("__debezium.context.runId", run_id.to_string()),
    ]
}

/// A fresh id for a run of the task: a time-ordered (version 7) UUID.
fn run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(now.as_nanos());
    h.write_u32(std::process::id());
    let r1 = h.finish();
    h.write_u64(r1);
    let r2 = h.finish();
    let ms = (now.as_millis() as u64) & 0xffff_ffff_ffff;
    let hi = (ms << 16) | 0x7000 | (r1 & 0x0fff);
    let lo = (r2 & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

fn lsn_json(l: Lsn) -> serde_json::Value {
    json!(l.0)
}

fn offset_lsn(o: &SourceOffset, key: &str) -> Option<Lsn> {
    o.get(key).and_then(|v| v.as_u64()).map(Lsn)
}

impl SourceTask for PostgresSourceTask {
    fn start(
        &mut self,
        config: &Config,
        context: &ConnectorContext,
        offsets: &dyn OffsetReader,
    ) -> Result<(), ConnectError> {
        let cfg = SourceConfig::parse(config)?;
        let rt = runtime()?;
        let mut partition = SourcePartition::new();
        partition.insert("server".into(), json!(cfg.prefix));
        let stored = offsets.offset(&partition);
        tracing::info!(
            connector = %context.connector,
            slot = %cfg.slot,
            offset = ?stored,
            "starting PostgreSQL CDC task"
        );
        let confirmed = stored
            .as_ref()
            .and_then(|o| offset_lsn(o, "lsn"))
            .unwrap_or_default();
        let running = rt.block_on(Running::start(
            cfg.clone(),
            partition.clone(),
            stored.clone(),
            confirmed,
            false,
        ))?;
        self.state = Some(running);
        self.rt = Some(rt);
        self.config = Some((cfg, partition));
        self.resume = stored;
        self.confirmed = confirmed;
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let Some(rt) = &self.rt else {
            return Err(ConnectError::Fatal("the task is not started".into()));
        };
        if self.state.is_none() {
            // Reconnect after a retriable failure, resuming after the last
            // record returned.
            let Some((cfg, partition)) = &self.config else {
                return Err(ConnectError::Fatal("the task is not started".into()));
            };
            tracing::info!(offset = ?self.resume, "reconnecting");
            let running = rt.block_on(Running::start(
                cfg.clone(),
                partition.clone(),
                self.resume.clone(),
                self.confirmed,
                true,
            ))?;
            self.state = Some(running);
        }
        let Some(state) = &mut self.state else {
            return Ok(Vec::new());
        };
        match rt.block_on(state.poll()) {
            Ok(records) => {
                if let Some(last) = records.last() {
                    self.resume = Some(last.source_offset.clone());
                }
                Ok(records)
            }
            Err(e) if e.is_retriable() => {
                tracing::warn!("lost the connection to PostgreSQL, will reconnect: {e}");
                if let Some(state) = self.state.take() {
                    rt.block_on(state.abandon());
                }
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn commit(&mut self, offsets: &[(SourcePartition, SourceOffset)]) -> Result<(), ConnectError> {
        let (Some(rt), Some(state)) = (&self.rt, &mut self.state) else {
            return Ok(());
        };
        match rt.block_on(state.commit(offsets)) {
            Ok(confirmed) => {
                self.confirmed = self.confirmed.max(confirmed);
                Ok(())
            }
            Err(e) if e.is_retriable() => {
                // The next poll reconnects; the LSN is confirmed then.
                self.confirmed = self.confirmed.max(state.confirmed);
                if let Some(state) = self.state.take() {
                    rt.block_on(state.abandon());
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn stop(&mut self) {
        if let (Some(rt), Some(state)) = (self.rt.take(), self.state.take()) {
            rt.block_on(state.stop());
        }
    }
}

async fn publication_setup(cfg: &SourceConfig, client: &Client) -> Result<()> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&cfg.publication],
        )
        .await?
        .is_some();
    let pubname = quote_ident(&cfg.publication);
    let filtered_tables = || async {
        let tables = list_tables(client).await?;
        Ok::<_, Error>(
            tables
                .into_iter()
                .filter(|(_, s, t)| cfg.captures(s, t))
                .map(|(_, s, t)| format!("{}.{}", quote_ident(&s), quote_ident(&t)))
                .collect::<Vec<_>>(),
        )
    };
    match (exists, cfg.autocreate) {
        (true, AutoCreate::Filtered) => {
            let tables = filtered_tables().await?;
            if !tables.is_empty() {
                client
                    .batch_execute(&format!(
                        "ALTER PUBLICATION {pubname} SET TABLE {}",
                        tables.join(", ")
                    ))
                    .await?;
            }
        }
        (true, _) => {}
        (false, AutoCreate::Disabled) => {
            return Err(Error::config(
                "publication.name",
                &cfg.publication,
                "the publication does not exist and publication.autocreate.mode is disabled",
            ))
        }
        (false, AutoCreate::AllTables) => {
            tracing::info!(publication = %cfg.publication, "creating publication for all tables");
            client
                .batch_execute(&format!("CREATE PUBLICATION {pubname} FOR ALL TABLES"))
                .await?;
        }
        (false, AutoCreate::Filtered) => {
            let tables = filtered_tables().await?;
            let sql = if tables.is_empty() {
                format!("CREATE PUBLICATION {pubname}")
            } else {
                format!(
                    "CREATE PUBLICATION {pubname} FOR TABLE {}",
                    tables.join(", ")
                )
            };
            client.batch_execute(&sql).await?;
        }
    }
    Ok(())
}

/// Whether the slot exists, and whether a process uses it.
async fn slot_state(client: &Client, slot: &str) -> Result<Option<bool>> {
    let row = client
        .query_opt(
            "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    Ok(row.map(|r| r.get::<_, bool>(0)))
}

/// The slot's confirmed flush LSN (none for a missing slot).
async fn slot_confirmed(client: &Client, slot: &str) -> Result<Option<Lsn>> {
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    Ok(row
        .and_then(|r| r.get::<_, Option<String>>(0))
        .and_then(|t| Lsn::parse(&t)))
}

async fn drop_slot(client: &Client, slot: &str) -> Result<()> {
    // A walsender that just lost its client may hold the slot a moment.
    let mut tries = 0;
    loop {
        match client
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if tries < 50 && e.code().map(|c| c.code()) == Some("55006") => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

impl Running {
    /// Connects and prepares: `stored` is where to resume, `confirmed` the
    /// LSN known durable; `reconnecting` after a failure (no new snapshot
    /// under `always`).
    async fn start(
        cfg: SourceConfig,
        partition: SourcePartition,
        stored: Option<SourceOffset>,
        confirmed: Lsn,
        reconnecting: bool,
    ) -> Result<Running> {
        let client = cfg.conn.connect().await?;
        let level: String = client.query_one("SHOW wal_level", &[]).await?.get(0);
        if level != "logical" {
            return Err(Error::config(
                "plugin.name",
                "pgoutput",
                format!(
                    "the server's wal_level is {level}; logical decoding needs wal_level=logical"
                ),
            ));
        }
        publication_setup(&cfg, &client).await?;

        let snapshot_unfinished = stored.as_ref().is_some_and(|o| {
            o.get("snapshot").and_then(|v| v.as_bool()) == Some(true)
                && o.get("last_snapshot_record").and_then(|v| v.as_bool()) != Some(true)
        });
        let have_offset = stored.is_some() && !snapshot_unfinished;
        let snapshot = match cfg.snapshot_mode {
            SnapshotMode::Always => !reconnecting || !have_offset,
            SnapshotMode::Initial | SnapshotMode::InitialOnly => !have_offset,
            SnapshotMode::Never => false,
        };
        let stream = cfg.snapshot_mode != SnapshotMode::InitialOnly;

        let mut running = Running {
            partition,
            client,
            types: TypeResolver::default(),
            repl: None,
            phase: Phase::Idle,
            relations: HashMap::new(),
            txn: None,
            last_end: Lsn(0),
            idle_pos: Lsn(0),
            received: Lsn(0),
            confirmed: Lsn(0),
            skip_before: Lsn(0),
            resume: None,
            completed: VecDeque::new(),
            last_xid: None,
            last_commit_us: 0,
            last_offset: None,
            last_status: Instant::now(),
            last_heartbeat: Instant::now(),
            sequence_commit: None,
            context_headers: context_headers(&cfg.prefix, 0, &run_id()),
            cfg,
        };

        if !snapshot && !stream {
            tracing::info!("initial_only: the snapshot is done, nothing to stream");
            return Ok(running);
        }

        let existing = slot_state(&running.client, &running.cfg.slot).await?;
        if existing == Some(true) {
            return Err(Error::Server {
                code: "55006".into(),
                message: format!("replication slot {} is in use", running.cfg.slot),
            });
        }
        let mut repl = ReplicationConn::connect(&running.cfg.conn).await?;
        let slot = quote_ident(&running.cfg.slot);
        if snapshot {
            let consistent_point;
            let snapshot_name;
            if stream {
                if existing.is_some() {
                    tracing::info!(slot = %running.cfg.slot, "dropping the slot to snapshot anew from a fresh one");
                    drop_slot(&running.client, &running.cfg.slot).await?;
                }
                let rows = repl
                    .simple_query(&format!(
                        "CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput EXPORT_SNAPSHOT"
                    ))
                    .await?;
                let row = rows.first().ok_or_else(|| {
                    Error::Protocol("CREATE_REPLICATION_SLOT returned no row".into())
                })?;
                consistent_point = row
                    .get(1)
                    .cloned()
                    .flatten()
                    .and_then(|s| Lsn::parse(&s))
                    .ok_or_else(|| Error::Protocol("no consistent point".into()))?;
                snapshot_name = row.get(2).cloned().flatten();
            } else {
                consistent_point = Lsn(0);
                snapshot_name = None;
            }
            running
                .client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?;
            if let Some(name) = &snapshot_name {
                running
                    .client
                    .batch_execute(&format!("SET TRANSACTION SNAPSHOT {}", quote_literal(name)))
                    .await?;
            }
            // The snapshot's transaction id, as Debezium reports it.
            let tx_id: Option<i64> = running
                .client
                .query_one("SELECT txid_current()", &[])
                .await?
                .get(0);
            // Tables and their metadata as of the snapshot.
            let mut tables = VecDeque::new();
            let mut listed = list_tables(&running.client).await?;
            // By name, then (stable) by include-list entry: Debezium's order.
            listed.sort_by_key(|(_, schema, name)| running.cfg.snapshot_rank(schema, name));
            for (oid, schema, name) in listed {
                if !running.cfg.captures(&schema, &name) {
                    continue;
                }
                if let Some(meta) = load_table(&running.client, &mut running.types, oid).await? {
                    tables.push_back(running.schemas(meta));
                }
            }
            tracing::info!(tables = tables.len(), %consistent_point, "snapshot started");
            running.last_end = consistent_point;
            running.skip_before = consistent_point;
            running.confirmed = consistent_point;
            running.phase = Phase::Snapshot(Box::new(SnapshotState {
                tables,
                current: None,
                consistent_point,
                pending: None,
                started: false,
                table_started: false,
                ts_us: now_us(),
                tx_id,
                then_stream: stream,
            }));
            if stream {
                running.repl = Some(repl);
            } else {
                repl.close().await;
            }
        } else {
            if existing.is_none() {
                tracing::info!(slot = %running.cfg.slot, "creating replication slot");
                repl.simple_query(&format!(
                    "CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput NOEXPORT_SNAPSHOT"
                ))
                .await?;
            }
            if let Some(o) = &stored {
                let lsn = offset_lsn(o, "lsn").unwrap_or_default();
                running.last_end = lsn;
                running.skip_before = lsn;
                running.confirmed = confirmed;
                // The last commit seen before the stop: the end of the
                // stored change's transaction when it was confirmed (the
                // server will not send it again), as Debezium reports it
                // in the first sequence after a restart.
                let flushed = slot_confirmed(&running.client, &running.cfg.slot).await?;
                running.sequence_commit = Some(flushed.map_or(lsn, |f| f.max(lsn)));
                if let (Some(commit), Some(index)) = (
                    offset_lsn(o, "lsn_commit"),
                    o.get("event_index").and_then(|v| v.as_u64()),
                ) {
                    running.resume = Some((commit, index));
                }
                running.last_offset = Some(o.clone());
            }
            running.repl = Some(repl);
            running.start_streaming().await?;
        }
        Ok(running)
    }

    fn schemas(&self, meta: crate::meta::TableMeta) -> TableSchemas {
        TableSchemas::new(
            meta,
            &self.cfg.prefix,
            &self.cfg.conn.dbname,
            self.cfg.decimal_mode,
        )
    }

    async fn start_streaming(&mut self) -> Result<()> {
        let start = self.last_end;
        let repl = self
            .repl
            .as_mut()
            .ok_or_else(|| Error::Protocol("no replication connection".into()))?;
        repl.start_replication(&self.cfg.slot, start, &self.cfg.publication)
            .await?;
        tracing::info!(slot = %self.cfg.slot, %start, "streaming changes");
        self.received = start;
        repl.send_status(self.received, self.confirmed).await?;
        self.last_status = Instant::now();
        self.phase = Phase::Streaming;
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        match self.phase {
            Phase::Snapshot(_) => self.poll_snapshot().await,
            Phase::Streaming => self.poll_stream().await,
            Phase::Idle => {
                tokio::time::sleep(POLL_WAIT).await;
                Ok(Vec::new())
            }
        }
    }

    fn snapshot_offset(&self, cp: Lsn, ts_us: i64, last: bool) -> SourceOffset {
        let mut o = SourceOffset::new();
        o.insert("lsn".into(), lsn_json(cp));
        o.insert("ts_usec".into(), json!(ts_us));
        o.insert("snapshot".into(), json!(true));
        o.insert("last_snapshot_record".into(), json!(last));
        o
    }

    async fn poll_snapshot(&mut self) -> Result<Vec<SourceRecord>> {
        let mut out = Vec::new();
        loop {
            let Phase::Snapshot(snap) = &mut self.phase else {
                return Ok(out);
            };
            if out.len() >= SNAPSHOT_FETCH {
                return Ok(out);
            }
            if snap.current.is_none() {
                match snap.tables.pop_front() {
                    Some(t) => {
                        let cols: Vec<String> = t
                            .meta
                            .columns
                            .iter()
                            .map(|c| quote_ident(&c.name))
                            .collect();
                        let sql = format!(
                            "DECLARE runnel_snapshot NO SCROLL CURSOR FOR SELECT {} FROM {}.{}",
                            if cols.is_empty() {
                                "NULL".to_string()
                            } else {
                                cols.join(", ")
                            },
                            quote_ident(&t.meta.schema),
                            quote_ident(&t.meta.name)
                        );
                        tracing::info!(table = %t.topic, "snapshotting");
                        self.client.batch_execute(&sql).await?;
                        snap.current = Some(t);
                        continue;
                    }
                    None => {
                        // The end: the held-back record is the last.
                        let cp = snap.consistent_point;
                        let ts = snap.ts_us;
                        let then_stream = snap.then_stream;
                        if let Some(pending) = snap.pending.take() {
                            let mut last = pending.finish(true)?;
                            last.source_offset = self.snapshot_offset(cp, ts, true);
                            out.push(last);
                        }
                        self.client.batch_execute("COMMIT").await?;
                        tracing::info!("snapshot done");
                        if then_stream {
                            self.start_streaming().await?;
                        } else {
                            self.phase = Phase::Idle;
                        }
                        return Ok(out);
                    }
                }
            }
            let rows = self
                .client
                .simple_query(&format!("FETCH {SNAPSHOT_FETCH} FROM runnel_snapshot"))
                .await?;
            let now = now_us();
            let Phase::Snapshot(snap) = &mut self.phase else {
                return Ok(out);
            };
            let Some(table) = &snap.current else {
                continue;
            };
            let mut n = 0;
            for m in rows {
                let SimpleQueryMessage::Row(row) = m else {
                    continue;
                };
                n += 1;
                let values: Vec<Option<&str>> =
                    (0..table.meta.columns.len()).map(|i| row.get(i)).collect();
                let after = table.row_from_text(&values)?;
                let key = table.key_of(&after)?;
                let info = SourceInfo {
                    ts_us: snap.ts_us,
                    snapshot: "true",
                    sequence: Some(sequence(None, snap.consistent_point)),
                    tx_id: snap.tx_id,
                    lsn: Some(snap.consistent_point.0 as i64),
                    transaction: None,
                };
                let value = table.envelope("r", None, Some(after), &info, now)?;
                let mut rec = SourceRecord::new(
                    self.partition.clone(),
                    SourceOffset::new(),
                    table.topic.clone(),
                    table.key_schema.as_deref().cloned(),
                    key,
                    Some((*table.envelope_schema).clone()),
                    value,
                );
                rec.headers = self.context_headers.clone();
                let first_in_table = n == 1 && !snap.table_started;
                let pending = Pending {
                    record: rec,
                    first: !snap.started,
                    first_in_table,
                    last_in_table: false,
                };
                snap.started = true;
                if let Some(prev) = snap.pending.replace(pending) {
                    out.push(prev.finish(false)?);
                }
            }
            // Offsets are the same for every non-last snapshot record.
            let offset = {
                let mut o = SourceOffset::new();
                o.insert("lsn".into(), lsn_json(snap.consistent_point));
                o.insert("ts_usec".into(), json!(snap.ts_us));
                o.insert("snapshot".into(), json!(true));
                o.insert("last_snapshot_record".into(), json!(false));
                o
            };
            for r in out.iter_mut() {
                if r.source_offset.is_empty() {
                    r.source_offset = offset.clone();
                }
            }
            if let Some(p) = &mut snap.pending {
                p.record.source_offset = offset;
            }
            if n > 0 {
                snap.table_started = true;
            } else {
                // The table's rows are all read: the held-back record (if
                // this table had any) is its last.
                if snap.table_started {
                    if let Some(p) = &mut snap.pending {
                        p.last_in_table = true;
                    }
                }
                snap.table_started = false;
                self.client.batch_execute("CLOSE runnel_snapshot").await?;
                if let Phase::Snapshot(snap) = &mut self.phase {
                    snap.current = None;
                }
            }
        }
    }

    /// The offset for "everything up to here is emitted" outside a
    /// transaction.
    fn idle_offset(&self) -> SourceOffset {
        let mut o = SourceOffset::new();
        o.insert("lsn".into(), lsn_json(self.last_end.max(self.idle_pos)));
        o.insert("ts_usec".into(), json!(self.last_commit_us));
        if let Some(x) = self.last_xid {
            o.insert("txId".into(), json!(x));
        }
        o
    }

    fn heartbeat(&mut self) -> Result<Option<SourceRecord>> {
        if self.cfg.heartbeat_ms == 0
            || self.last_heartbeat.elapsed() < Duration::from_millis(self.cfg.heartbeat_ms)
        {
            return Ok(None);
        }
        self.last_heartbeat = Instant::now();
        let offset = match (&self.txn, &self.last_offset) {
            (Some(_), Some(o)) => o.clone(),
            _ => self.idle_offset(),
        };
        let (ks, vs) = heartbeat_schemas();
        let key =
            Struct::new(ks.clone()).with("serverName", Value::String(self.cfg.prefix.clone()))?;
        let value = Struct::new(vs.clone()).with("ts_ms", Value::Int64(now_us() / 1000))?;
        Ok(Some(SourceRecord::new(
            self.partition.clone(),
            offset,
            format!("__debezium-heartbeat.{}", self.cfg.prefix),
            Some((*ks).clone()),
            Value::Struct(key),
            Some((*vs).clone()),
            Value::Struct(value),
        )))
    }

    async fn send_status(&mut self) -> Result<()> {
        if let Some(repl) = self.repl.as_mut() {
            repl.send_status(self.received, self.confirmed).await?;
        }
        self.last_status = Instant::now();
        Ok(())
    }

    async fn poll_stream(&mut self) -> Result<Vec<SourceRecord>> {
        let mut out = Vec::new();
        let deadline = Instant::now() + POLL_WAIT;
        loop {
            if out.len() >= MAX_BATCH {
                break;
            }
            let now = Instant::now();
            if now >= deadline && !out.is_empty() {
                break;
            }
            let wait = if out.is_empty() {
                deadline.saturating_duration_since(now)
            } else {
                Duration::from_millis(1)
            };
            if wait.is_zero() {
                break;
            }
            let repl = self
                .repl
                .as_mut()
                .ok_or_else(|| Error::Protocol("no replication connection".into()))?;
            match repl.next(wait).await? {
                None => {
                    if !out.is_empty() {
                        break;
                    }
                }
                Some(StreamMessage::Keepalive { wal_end, reply }) => {
                    self.received = self.received.max(wal_end);
                    if self.txn.is_none() {
                        self.idle_pos = self.idle_pos.max(wal_end);
                    }
                    if reply {
                        self.send_status().await?;
                    }
                }
                Some(StreamMessage::XLogData { start, end, data }) => {
                    self.received = self.received.max(end).max(start);
                    let msg = pgoutput::decode(data)?;
                    self.handle(msg, start, &mut out).await?;
                }
            }
        }
        if self.last_status.elapsed() >= STATUS_INTERVAL {
            self.send_status().await?;
        }
        if let Some(hb) = self.heartbeat()? {
            out.push(hb);
        }
        Ok(out)
    }

    async fn relation(&mut self, oid: u32) -> Result<Option<&TableSchemas>> {
        if !self.relations.contains_key(&oid) {
            let meta = load_table(&self.client, &mut self.types, oid).await?;
            let t = meta
                .filter(|m| self.cfg.captures(&m.schema, &m.name))
                .map(|m| self.schemas(m));
            self.relations.insert(oid, t);
        }
        Ok(self.relations.get(&oid).and_then(|t| t.as_ref()))
    }

    async fn handle(&mut self, msg: Message, lsn: Lsn, out: &mut Vec<SourceRecord>) -> Result<()> {
        match msg {
            Message::Begin {
                final_lsn,
                commit_time,
                xid,
            } => {
                let skip_all = final_lsn < self.skip_before;
                let skip = match self.resume {
                    Some((c, n)) if c == final_lsn => n,
                    _ => 0,
                };
                self.txn = Some(Txn {
                    xid,
                    commit_lsn: final_lsn,
                    commit_us: commit_time + PG_EPOCH_OFFSET_MICROS,
                    index: 0,
                    skip,
                    skip_all,
                    begin_lsn: lsn,
                    events: 0,
                    per_collection: Vec::new(),
                });
            }
            Message::Commit { end_lsn, .. } => {
                if let Some(t) = self.txn.take() {
                    if self.cfg.transaction_metadata && !t.skip_all && t.events > 0 {
                        // END: its offset is past the whole transaction
                        // (`lsn` = the commit's end), so a restart after
                        // it skips the transaction, END included.
                        let mut offset = SourceOffset::new();
                        offset.insert("lsn".into(), lsn_json(end_lsn.max(self.last_end)));
                        offset.insert("lsn_commit".into(), lsn_json(t.commit_lsn));
                        offset.insert("lsn_proc".into(), lsn_json(lsn));
                        offset.insert("txId".into(), json!(t.xid));
                        offset.insert("ts_usec".into(), json!(t.commit_us));
                        offset.insert("event_index".into(), json!(t.index));
                        let collections = java_hash_map_order(&t.per_collection);
                        out.push(self.transaction_record(
                            "END",
                            format!("{}:{}", t.xid, lsn.0),
                            Some((t.events, collections)),
                            t.commit_us,
                            offset.clone(),
                        )?);
                        self.last_offset = Some(offset);
                    }
                    if !t.skip_all {
                        self.completed.push_back((t.commit_lsn, t.index, end_lsn));
                        if self.completed.len() > 10_000 {
                            self.completed.pop_front();
                        }
                    }
                    self.last_xid = Some(t.xid);
                    self.last_commit_us = t.commit_us;
                    if Some(t.commit_lsn) == self.resume.map(|r| r.0) {
                        self.resume = None;
                    }
                }
                self.last_end = self.last_end.max(end_lsn);
                self.sequence_commit = Some(self.last_end);
            }
            Message::Relation {
                oid,
                namespace,
                name,
                columns,
                ..
            } => {
                // The catalog gives nullability and the primary key; the
                // message gives the columns the tuples will have.
                self.relations.remove(&oid);
                let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
                if self.relation(oid).await?.is_some() {
                    if let Some(Some(t)) = self.relations.get_mut(&oid) {
                        t.set_tuple_columns(&names)?;
                    }
                } else {
                    tracing::debug!(%namespace, %name, "relation not captured");
                }
            }
            // `skipped.operations` drops a change whole (a skipped delete
            // has no tombstone; a key change is an update: skipped with
            // `u`, emitted as delete + create otherwise), as Debezium does.
            // A change before the resume point (emitted before a restart)
            // is not emitted again but still counted in the transaction's
            // metadata.
            Message::Insert { oid, new } => {
                let emit = self.next_change();
                if !self.skips('c') {
                    self.change(oid, lsn, None, Some(new), emit, out).await?;
                }
            }
            Message::Update { oid, old, new } => {
                let emit = self.next_change();
                if !self.skips('u') {
                    self.change(oid, lsn, Some(old), Some(new), emit, out)
                        .await?;
                }
            }
            Message::Delete { oid, old } => {
                let emit = self.next_change();
                if !self.skips('d') {
                    self.change(oid, lsn, Some(Some(old)), None, emit, out)
                        .await?;
                }
            }
            Message::Truncate { oids } => {
                let emit = self.next_change();
                if self.skips('t') {
                    tracing::debug!("truncate skipped (skipped.operations)");
                } else {
                    for oid in oids {
                        self.truncate(oid, lsn, emit, out).await?;
                    }
                }
            }
            Message::Origin | Message::Type { .. } | Message::LogicalMessage => {}
        }
        Ok(())
    }

    /// Counts a change of the open transaction; whether to emit it.
    fn next_change(&mut self) -> bool {
        match &mut self.txn {
            Some(t) => {
                t.index += 1;
                !t.skip_all && t.index > t.skip
            }
            None => true,
        }
    }

    /// `schema.table` of a captured relation (`None`: not captured).
    async fn collection(&mut self, oid: u32) -> Result<Option<String>> {
        Ok(self
            .relation(oid)
            .await?
            .map(|t| format!("{}.{}", t.meta.schema, t.meta.name)))
    }

    /// Whether an update with an old image changes the key.
    async fn key_changes(
        &mut self,
        oid: u32,
        old: &Option<Option<(u8, Vec<TupleValue>)>>,
        new: &Option<Vec<TupleValue>>,
    ) -> Result<bool> {
        let Some(table) = self.relation(oid).await? else {
            return Ok(false);
        };
        let (Some(Some((_, o))), Some(n)) = (old, new) else {
            return Ok(false);
        };
        if table.key_schema.is_none() {
            return Ok(false);
        }
        let before = table.row_from_tuple(o)?;
        let after = table.row_from_tuple(n)?;
        Ok(table.key_of(&before)? != table.key_of(&after)?)
    }

    /// With `provide.transaction.metadata`: counts one event of
    /// `collection` in the open transaction and returns its `transaction`
    /// block, after pushing the transaction's BEGIN record when this is
    /// its first event and it is emitted (`emit`; a first event before the
    /// resume point had its BEGIN emitted before the restart).
    fn transaction_event(
        &mut self,
        collection: &str,
        lsn: Lsn,
        emit: bool,
        out: &mut Vec<SourceRecord>,
    ) -> Result<Option<TxBlock>> {
        if !self.cfg.transaction_metadata {
            return Ok(None);
        }
        let Some(t) = self.txn.as_mut().filter(|t| !t.skip_all) else {
            return Ok(None);
        };
        let (block, first) = t.count(collection, lsn);
        if first && emit {
            let (xid, begin_lsn, commit_us) = (t.xid, t.begin_lsn, t.commit_us);
            // Its offset is the one before this event's.
            let (mut offset, _) = self.change_position(lsn);
            offset.insert(
                "event_index".into(),
                json!(self.txn.as_ref().map_or(0, |t| t.index.saturating_sub(1))),
            );
            out.push(self.transaction_record(
                "BEGIN",
                format!("{xid}:{}", begin_lsn.0),
                None,
                commit_us,
                offset,
            )?);
        }
        Ok(Some(block))
    }

    /// A BEGIN or END record of the transaction topic (no headers, as
    /// Debezium's).
    fn transaction_record(
        &self,
        status: &str,
        id: String,
        end: Option<(u64, Vec<(String, u64)>)>,
        commit_us: i64,
        offset: SourceOffset,
    ) -> Result<SourceRecord> {
        let (ks, vs) = transaction_topic_schemas();
        let key = Struct::new(ks.clone()).with("id", Value::String(id.clone()))?;
        let (count, collections) = match end {
            Some((n, cs)) => {
                let item = std::sync::Arc::new(transaction_collection_schema());
                let items = cs
                    .into_iter()
                    .map(|(c, n)| {
                        Struct::new(item.clone())
                            .with("data_collection", Value::String(c))
                            .and_then(|s| {
                                s.with(
                                    "event_count",
                                    Value::Int64(i64::try_from(n).unwrap_or(i64::MAX)),
                                )
                            })
                            .map(Value::Struct)
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                (
                    Value::Int64(i64::try_from(n).unwrap_or(i64::MAX)),
                    Value::Array(items),
                )
            }
            None => (Value::Null, Value::Null),
        };
        let value = Struct::new(vs.clone())
            .with("status", Value::String(status.into()))?
            .with("id", Value::String(id))?
            .with("event_count", count)?
            .with("data_collections", collections)?
            .with("ts_ms", Value::Int64(commit_us.div_euclid(1000)))?;
        Ok(SourceRecord::new(
            self.partition.clone(),
            offset,
            self.cfg.transaction_topic.clone(),
            Some((*ks).clone()),
            Value::Struct(key),
            Some((*vs).clone()),
            Value::Struct(value),
        ))
    }

    fn skips(&self, op: char) -> bool {
        self.cfg.skipped_operations.contains(&op)
    }

    /// The source offset and `source` block of a change at `lsn` in the
    /// open transaction (if any).
    fn change_position(&self, lsn: Lsn) -> (SourceOffset, SourceInfo) {
        let (xid, commit_lsn, commit_us, index) = match &self.txn {
            Some(t) => (Some(t.xid), t.commit_lsn, t.commit_us, t.index),
            None => (None, lsn, now_us(), 0),
        };
        let mut offset = SourceOffset::new();
        offset.insert("lsn".into(), lsn_json(self.last_end));
        offset.insert("lsn_commit".into(), lsn_json(commit_lsn));
        offset.insert("lsn_proc".into(), lsn_json(lsn));
        if let Some(x) = xid {
            offset.insert("txId".into(), json!(x));
        }
        offset.insert("ts_usec".into(), json!(commit_us));
        offset.insert("event_index".into(), json!(index));
        let info = SourceInfo {
            ts_us: commit_us,
            snapshot: "false",
            sequence: Some(sequence(self.sequence_commit, lsn)),
            tx_id: xid.map(i64::from),
            lsn: Some(lsn.0 as i64),
            transaction: None,
        };
        (offset, info)
    }

    /// Emits the truncate event of one table (a TRUNCATE of several tables
    /// is one event per table): no key, an envelope with `op: "t"`, no
    /// `before` nor `after`, as Debezium's.
    async fn truncate(
        &mut self,
        oid: u32,
        lsn: Lsn,
        emit: bool,
        out: &mut Vec<SourceRecord>,
    ) -> Result<()> {
        let (offset, mut info) = self.change_position(lsn);
        let partition = self.partition.clone();
        let context_headers = self.context_headers.clone();
        let Some(collection) = self.collection(oid).await? else {
            return Ok(());
        };
        info.transaction = self.transaction_event(&collection, lsn, emit, out)?;
        if !emit {
            return Ok(());
        }
        let Some(table) = self.relation(oid).await? else {
            return Ok(());
        };
        let value = table.envelope("t", None, None, &info, now_us())?;
        let mut r = SourceRecord::new(
            partition,
            offset.clone(),
            table.topic.clone(),
            None,
            Value::Null,
            Some((*table.envelope_schema).clone()),
            value,
        );
        r.headers = context_headers;
        out.push(r);
        self.last_offset = Some(offset);
        Ok(())
    }

    /// Emits the records of one change. `old`: `None` for an insert,
    /// `Some(None)` for an update without an old image.
    async fn change(
        &mut self,
        oid: u32,
        lsn: Lsn,
        old: Option<Option<(u8, Vec<TupleValue>)>>,
        new: Option<Vec<TupleValue>>,
        emit: bool,
        out: &mut Vec<SourceRecord>,
    ) -> Result<()> {
        let tombstones = self.cfg.tombstones_on_delete;
        let context_headers = self.context_headers.clone();
        let (offset, mut info) = self.change_position(lsn);
        let partition = self.partition.clone();
        let Some(collection) = self.collection(oid).await? else {
            return Ok(());
        };
        // A key change is two events (delete, create) of the transaction.
        let key_change = match (&old, &new) {
            (Some(Some(_)), Some(_)) => self.key_changes(oid, &old, &new).await?,
            _ => false,
        };
        let first = self.transaction_event(&collection, lsn, emit, out)?;
        let second = if key_change {
            self.transaction_event(&collection, lsn, emit, out)?
        } else {
            None
        };
        if !emit {
            return Ok(());
        }
        info.transaction = first;
        let info_create = SourceInfo {
            transaction: second,
            ..info.clone()
        };
        let Some(table) = self.relation(oid).await? else {
            return Ok(());
        };
        let now = now_us();
        let before = match &old {
            Some(Some((_, t))) => Some(table.row_from_tuple(t)?),
            _ => None,
        };
        let after = match &new {
            Some(t) => Some(table.row_from_tuple(t)?),
            None => None,
        };
        // `extra`: headers before the context headers (a key change's
        // `__debezium.oldkey` / `newkey`). A tombstone has no value schema.
        let record = |key: Value, value: Value, extra: Vec<Header>| {
            let value_schema = if value.is_null() {
                None
            } else {
                Some((*table.envelope_schema).clone())
            };
            let mut r = SourceRecord::new(
                partition.clone(),
                offset.clone(),
                table.topic.clone(),
                table.key_schema.as_deref().cloned(),
                key,
                value_schema,
                value,
            );
            r.headers = extra;
            r.headers.extend(context_headers.iter().cloned());
            r
        };
        let key_header = |name: &str, key: &Value| Header {
            key: name.to_string(),
            schema: table.key_schema.as_deref().cloned(),
            value: key.clone(),
        };
        let delete =
            |before: Struct, extra: Vec<Header>, out: &mut Vec<SourceRecord>| -> Result<()> {
                let key = table.key_of(&before)?;
                let value = table.envelope("d", Some(before), None, &info, now)?;
                out.push(record(key.clone(), value, extra.clone()));
                // Debezium follows a delete with a tombstone even when the
                // table has no key (a record with null key and value).
                if tombstones {
                    out.push(record(key, Value::Null, extra));
                }
                Ok(())
            };
        match (before, after) {
            (None, Some(after)) if old.is_none() => {
                let key = table.key_of(&after)?;
                let value = table.envelope("c", None, Some(after), &info, now)?;
                out.push(record(key, value, Vec::new()));
            }
            (before, Some(after)) => {
                let key = table.key_of(&after)?;
                let key_changed = match &before {
                    Some(b) => table.key_schema.is_some() && table.key_of(b)? != key,
                    None => false,
                };
                if let (true, Some(b)) = (key_changed, before.clone()) {
                    let old_key = table.key_of(&b)?;
                    delete(b, vec![key_header("__debezium.newkey", &key)], out)?;
                    let value = table.envelope("c", None, Some(after), &info_create, now)?;
                    out.push(record(
                        key,
                        value,
                        vec![key_header("__debezium.oldkey", &old_key)],
                    ));
                } else {
                    // Under DEFAULT identity an old key tuple (`K`) only
                    // comes with a key change, so `before` is a full old
                    // row here or none.
                    let before = match &old {
                        Some(Some((b'O', _))) => before,
                        _ => None,
                    };
                    let value = table.envelope("u", before, Some(after), &info, now)?;
                    out.push(record(key, value, Vec::new()));
                }
            }
            (Some(before), None) => delete(before, Vec::new(), out)?,
            (None, None) => {}
        }
        self.last_offset = Some(offset);
        Ok(())
    }

    /// Confirms what `offsets` make safe; returns the confirmed LSN.
    async fn commit(&mut self, offsets: &[(SourcePartition, SourceOffset)]) -> Result<Lsn> {
        let Some((_, o)) = offsets.iter().rev().find(|(p, _)| *p == self.partition) else {
            return Ok(self.confirmed);
        };
        let mut safe = offset_lsn(o, "lsn").unwrap_or_default();
        if let (Some(c), Some(n)) = (
            offset_lsn(o, "lsn_commit"),
            o.get("event_index").and_then(|v| v.as_u64()),
        ) {
            while self.completed.front().is_some_and(|(lsn, _, _)| *lsn < c) {
                self.completed.pop_front();
            }
            if let Some((_, count, end)) = self.completed.front() {
                if self.completed.front().map(|f| f.0) == Some(c) && *count == n {
                    safe = safe.max(*end);
                }
            }
        }
        if safe > self.confirmed {
            tracing::debug!(lsn = %safe, "confirming");
            self.confirmed = safe;
            if matches!(self.phase, Phase::Streaming) {
                self.send_status().await?;
            }
        }
        Ok(self.confirmed)
    }

    /// Drops the connections after a failure (the slot stays).
    async fn abandon(mut self) {
        if let Some(repl) = self.repl.take() {
            repl.close().await;
        }
    }

    async fn stop(mut self) {
        if matches!(self.phase, Phase::Streaming) {
            let _ = self.send_status().await;
        }
        if let Some(repl) = self.repl.take() {
            repl.close().await;
        }
        if self.cfg.slot_drop_on_stop {
            if let Err(e) = drop_slot(&self.client, &self.cfg.slot).await {
                tracing::warn!(slot = %self.cfg.slot, "cannot drop the slot: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn end_lists_tables_in_java_hash_map_order() {
        let items = vec![
            ("public.nopk".to_string(), 2),
            ("public.single".to_string(), 2),
        ];
        // Buckets 11 and 5 of 16: Debezium's END listed `single` first.
        assert_eq!(
            super::java_hash_map_order(&items),
            vec![
                ("public.single".to_string(), 2),
                ("public.nopk".to_string(), 2)
            ]
        );
        // 13 tables: 32 buckets.
        let many: Vec<(String, u64)> = (0..13).map(|i| (format!("s.t{i}"), 1)).collect();
        let ordered = super::java_hash_map_order(&many);
        assert_eq!(ordered.len(), 13);
    }
}
