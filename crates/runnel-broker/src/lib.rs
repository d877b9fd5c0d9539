//! Runnel's Kafka wire-protocol server over the runnel-log.
//!
//! A [`Broker`] owns the shared state (the log, settings, an "appended"
//! signal for long-polling fetches); [`serve`] accepts TCP connections and
//! answers Kafka requests on each one in order, the way a Kafka broker does.
//!
//! Message encoding and decoding is the `kafka-protocol` crate's; this crate
//! frames requests, checks versions, and implements each API's semantics in
//! `handlers`. Produced record batches are handed to the log as bytes and
//! fetched as bytes: records are never decoded on the hot path, except to
//! refuse keyless records on compacted topics. The maintenance loop also
//! compacts those topics, each partition up to its last stable offset.

mod config;
pub mod context;
mod error;
pub mod group;
mod handlers;
pub mod local;
pub mod producers;
pub mod schema_check;
mod server;
pub mod shape;
mod splice;
pub mod txn;
pub mod versions;

use std::path::Path;
use std::sync::Arc;

pub use config::BrokerConfig;
pub use context::{ConnectionContext, Principal};
pub use error::{log_error_code, BrokerError};
pub use runnel_log::Log;
pub use server::{serve, serve_listener};
use tokio::sync::watch;

/// Shared state of one broker: the log and what every connection needs.
pub struct Broker {
    log: Arc<Log>,
    config: BrokerConfig,
    /// Bumped after every append so waiting fetches re-check their partitions.
    appended: watch::Sender<u64>,
    /// Idempotent producers: ids and per-partition sequence state.
    producers: producers::Producers,
    /// Consumer groups and committed offsets.
    groups: group::Coordinator,
    /// Transactional ids and their transactions.
    txn: txn::Coordinator,
    /// Wakes in-process readers after appends.
    local_signal: local::AppendSignal,
    /// The schema registry of topics with schema validation on, once the
    /// binary provides one.
    schemas: std::sync::OnceLock<Arc<dyn schema_check::SchemaValidator>>,
}

impl Broker {
    /// Opens (or creates) the log under `data_dir` and builds a broker on it.
    pub fn open(data_dir: &Path, config: BrokerConfig) -> Result<Arc<Broker>, BrokerError> {
        let log = Log::open(data_dir, config.topic_defaults.clone())?;
        Broker::with_log(Arc::new(log), config)
    }

    /// Builds a broker on an already opened log (rebuilding producer state
    /// from it).
    pub fn with_log(log: Arc<Log>, config: BrokerConfig) -> Result<Arc<Broker>, BrokerError> {
        let (appended, _) = watch::channel(0);
        let producers = producers::Producers::open(&log)?;
        let offsets = group::OffsetStore::open(&log, config.offsets_topic_partitions)?;
        let txn = txn::Coordinator::open(
            log.clone(),
            txn::Deps {
                producers: &producers,
                offsets: &offsets,
            },
        )?;
        let groups = group::Coordinator::new(config.group.clone(), offsets);
        let (share_store, restored) = group::share_store::ShareStore::open(log.clone())?;
        groups.share().restore(share_store, restored);
        Ok(Arc::new(Broker {
            log,
            config,
            appended,
            producers,
            groups,
            txn,
            local_signal: local::AppendSignal::default(),
            schemas: std::sync::OnceLock::new(),
        }))
    }

    /// The log this broker serves.
    /// The schema registry that checks produced records on topics with
    /// `confluent.key|value.schema.validation=true`. Set once (a later
    /// call is ignored and returns false).
    pub fn set_schema_validator(&self, validator: Arc<dyn schema_check::SchemaValidator>) -> bool {
        self.schemas.set(validator).is_ok()
    }

    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// The broker's settings.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The consumer group coordinator.
    pub fn groups(&self) -> &group::Coordinator {
        &self.groups
    }

    /// Snapshots idempotent/transactional producer state next to the log.
    pub(crate) fn snapshot_producers(&self) -> Result<(), BrokerError> {
        Ok(self.producers.snapshot(&self.log)?)
    }

    /// What completing a transaction writes to besides its own state.
    pub(crate) fn txn_deps(&self) -> txn::Deps<'_> {
        txn::Deps {
            producers: &self.producers,
            offsets: self.groups.offsets(),
        }
    }

    /// Compacts the partitions of every compacted topic (`cleanup.policy`
    /// with `compact`), each up to its last stable offset so no open
    /// transaction is looked at. Blocking: run it on the maintenance thread.
    pub(crate) fn compact_logs(&self, now_ms: i64) -> Result<(), runnel_log::LogError> {
        self.log.compact_all(now_ms, |p| {
            match self.producers.existing(p.topic(), p.index()) {
                // The producer lock is taken before the high watermark is
                // read: an append recorded under it is then either
                // below the watermark and known, or not yet visible.
                Some(state) => producers::lock(&state).last_stable_offset(p.high_watermark()),
                None => p.high_watermark(),
            }
        })
    }

    fn notify_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
        self.local_signal.bump();
    }
}

/// Topics only the broker's coordinators write, delete or truncate.
pub const INTERNAL_TOPICS: &[&str] = &[
    group::OFFSETS_TOPIC,
    txn::TXN_TOPIC,
    group::share_store::SHARE_STATE_TOPIC,
];

/// Whether clients are kept from writing, deleting or truncating `topic`.
pub fn is_internal(topic: &str) -> bool {
    INTERNAL_TOPICS.contains(&topic)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
