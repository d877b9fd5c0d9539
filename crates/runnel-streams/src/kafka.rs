//! The Kafka-protocol [`Backend`]: librdkafka (through the `rdkafka` crate)
//! against any Kafka-compatible cluster, Runnel's own broker included.
//!
//! One [`KafkaBackend`] owns four librdkafka clients:
//!
//! * the **group consumer** (`group.id` = application id): subscribes, polls,
//!   commits offsets (at-least-once) and provides the group metadata that
//!   exactly-once transactions commit offsets with. Offsets are never
//!   committed or stored automatically; it reads `read_committed`.
//! * the **producer**: idempotent; under exactly-once also transactional
//!   with `transactional.id` = `<application id>-<instance id>`, so a
//!   restarted instance fences its predecessor. It is rdkafka's
//!   `ThreadedProducer`: a background thread serves delivery reports, which
//!   librdkafka needs while a transaction is aborted or committed.
//! * the **restore consumer** (created on the first
//!   [`read_partition`](Backend::read_partition)): assign-based, never joins
//!   the group, never commits.
//! * an **admin client** for topic creation and metadata.
//!
//! # Rebalances
//!
//! The group consumer uses the classic eager protocol
//! (`partition.assignment.strategy=range` unless overridden). librdkafka runs
//! rebalance callbacks inside `poll`; the backend records a
//! [`PollEvent::Revoked`] before librdkafka drops the old assignment and a
//! [`PollEvent::Assigned`] after the new one is installed, and hands them out
//! from [`poll`](Backend::poll) in order with the records around them
//! (records fetched for revoked partitions before the revocation are already
//! in the returned batch; none are returned after it). Events with empty
//! partition lists are not reported. The events are reported *after* the
//! fact: by the time the engine sees `Revoked`, the partitions are gone and
//! their uncommitted work is lost (it is reprocessed by the new owner), and a
//! commit of their offsets made afterwards may be refused with a
//! generation error (reported as [`BackendError::Retriable`]). With a
//! cooperative strategy set through the extra properties, librdkafka's
//! incremental assign/unassign is used and the events carry only the
//! partitions that moved.
//!
//! # Commits
//!
//! * At-least-once: [`commit`](Backend::commit) flushes the producer, fails
//!   with [`BackendError::Fatal`] if any record sent so far could not be
//!   delivered (the failure is sticky: such a backend never commits again),
//!   then commits the offsets synchronously.
//! * Exactly-once: a transaction is begun by [`begin`](Backend::begin) (or
//!   lazily by the first `send`/`commit`); `commit` adds the offsets to it
//!   (`send_offsets_to_transaction` with the consumer's group metadata) and
//!   commits it. If librdkafka declares the transaction abortable (for
//!   example a record could not be delivered), `commit` aborts it itself and
//!   returns [`BackendError::Retriable`]: nothing of it is visible and the
//!   engine must rewind to the committed offsets; a following
//!   [`abort`](Backend::abort) is then a no-op. Fatal producer errors
//!   (fencing by a newer instance with the same transactional id, epoch
//!   errors) are [`BackendError::Fenced`]. Transaction calls run under a
//!   watchdog: librdkafka can block in `send_offsets_to_transaction` for
//!   good when the group coordinator's broker dies (its issues #5456 and
//!   #5511); a call still blocked well past its timeout makes the backend
//!   replace its producer (the new one's `init_transactions` fences the
//!   old one and aborts its transaction) and return
//!   [`BackendError::Retriable`]. Dropping a backend with an open
//!   transaction aborts it (bounded by the configured timeout), so
//!   read_committed readers are not held up until the transaction times out.
//!
//! # `read_partition` under read_committed
//!
//! The end is the partition's high watermark as the restore consumer sees it
//! with `isolation.level=read_committed`, i.e. the **last stable offset**
//! (LSO) at the time of the call. Reading stops at the first of:
//!
//! * a record at offset `end - 1` was handed out, or a record at or beyond
//!   `end` arrived (it is not handed out; the partition moved on since the
//!   call);
//! * librdkafka reports partition EOF (`enable.partition.eof=true` on the
//!   restore consumer only). This is the case that matters under
//!   read_committed: the offsets just below the LSO may hold aborted records
//!   or transaction markers, which are never delivered, so "the last
//!   delivered offset + 1 reached the end" never becomes true. librdkafka's
//!   fetch position does move past aborted batches and control batches, and
//!   it raises EOF when that position equals the LSO of a fetch response,
//!   after enqueuing everything before it; so EOF means every committed
//!   record below `end` has been handed out. EOF is raised once per
//!   assignment (each read assigns afresh), and stale events of earlier
//!   reads are discarded by librdkafka's per-partition op versions.
//!
//! No "quiet period" heuristic is needed; instead, if neither records nor
//! EOF arrive for the configured timeout the read fails with
//! [`BackendError::Retriable`]. The return value is the offset a later read
//! would continue from: `max(from, end)` (every committed record in
//! `[from, returned)` was handed to the callback). If the LSO is held back
//! by an open transaction, the read ends at that transaction's first offset.
//!
//! # Records
//!
//! `send` writes to the partition given in each record (no partitioner).
//! A record timestamp `<= 0` leaves the timestamp to librdkafka (the current
//! time); a consumed record without a timestamp has `-1`. Header names that
//! are not UTF-8 are decoded lossily. The consumer reads `read_committed`
//! (overridable under at-least-once) and starts at the earliest offset of
//! partitions without a committed offset.
//!
//! # Group membership
//!
//! [`group_members`](Backend::group_members) (interactive-query routing)
//! asks the group coordinator for the members of the application's group
//! (ListGroups + DescribeGroups, through librdkafka's
//! `rd_kafka_list_groups`) and decodes each member's consumer-protocol
//! assignment. Members advertise their query endpoint in the group
//! consumer's `client.id`, `<application_id>-<instance_id>-consumer@<host:port>`
//! ([`KafkaBackendConfig::application_server`]).
//!
//! # Blocking
//!
//! Every method blocks the calling thread (the engine is synchronous); each
//! broker round trip is bounded by [`KafkaBackendConfig::timeout`].

// FFI: librdkafka calls rust-rdkafka does not wrap (group metadata, member
// ids), each block with its safety argument.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::CStr;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, error, info, warn};

use crate::backend::{
    Backend, BackendError, ConsumedRecord, Guarantee, Headers, MemberInfo, PollEvent,
    ProducedRecord, TopicPartition,
};
use crate::query::{decode_consumer_assignment, endpoint_of_client_id};

/// Settings of a [`KafkaBackend`].
#[derive(Debug, Clone)]
pub struct KafkaBackendConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// The application id: the consumer `group.id`, the prefix of the
    /// `transactional.id` and of every `client.id`.
    pub application_id: String,
    /// Distinguishes the backends (stream threads) of one application;
    /// exactly-once uses `transactional.id` = `<application_id>-<instance_id>`,
    /// so it must be stable across restarts of the same thread.
    pub instance_id: String,
    /// At-least-once or exactly-once.
    pub guarantee: Guarantee,
    /// Extra librdkafka properties applied to every client (group consumer,
    /// producer, restore consumer, admin client) after the backend's
    /// defaults. Properties the backend's contract depends on cannot be
    /// overridden: `group.id`, `transactional.id`, `enable.auto.commit`,
    /// `enable.auto.offset.store`, `enable.partition.eof`, and under
    /// exactly-once `isolation.level` and `enable.idempotence`.
    /// librdkafka logs a warning for a property that does not apply to a
    /// client type (a consumer property given to the producer, say).
    pub properties: Vec<(String, String)>,
    /// Replication factor of topics created by
    /// [`create_topic`](Backend::create_topic); `-1` uses the broker default.
    pub replication_factor: i32,
    /// Bound of every blocking broker call (metadata, commits, transaction
    /// calls, seeks), and how long `read_partition` waits without progress.
    pub timeout: Duration,
    /// Most records one [`poll`](Backend::poll) returns.
    pub max_poll_records: usize,
    /// This instance's interactive-query endpoint (`host:port`, Kafka
    /// Streams' `application.server`). It is advertised to the other members
    /// of the group in the group consumer's `client.id`,
    /// `<application_id>-<instance_id>-consumer@<host:port>` (which then
    /// cannot be overridden through `properties`), and read back by
    /// [`group_members`](Backend::group_members). Must not contain `@`.
    pub application_server: Option<String>,
}

impl KafkaBackendConfig {
    /// At-least-once settings for `application_id` on `bootstrap_servers`,
    /// instance id `"0"`, broker-default replication, 30 s timeout, polls of
    /// up to 10,000 records.
    pub fn new(bootstrap_servers: impl Into<String>, application_id: impl Into<String>) -> Self {
        KafkaBackendConfig {
            bootstrap_servers: bootstrap_servers.into(),
            application_id: application_id.into(),
            instance_id: "0".to_string(),
            guarantee: Guarantee::AtLeastOnce,
            properties: Vec::new(),
            replication_factor: -1,
            timeout: Duration::from_secs(30),
            max_poll_records: 10_000,
            application_server: None,
        }
    }

    /// Sets the instance id (the `transactional.id` suffix).
    pub fn with_instance_id(mut self, instance_id: impl Into<String>) -> Self {
        self.instance_id = instance_id.into();
        self
    }

    /// Sets the processing guarantee.
    pub fn with_guarantee(mut self, guarantee: Guarantee) -> Self {
        self.guarantee = guarantee;
        self
    }

    /// Adds an extra librdkafka property for every client.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Sets the bound of blocking broker calls.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the interactive-query endpoint advertised to the group.
    pub fn with_application_server(mut self, endpoint: impl Into<String>) -> Self {
        self.application_server = Some(endpoint.into());
        self
    }

    /// The `transactional.id` used under exactly-once.
    pub fn transactional_id(&self) -> String {
        format!("{}-{}", self.application_id, self.instance_id)
    }
}

/// The [`Backend`] over the Kafka protocol. See the [module docs](self).
pub struct KafkaBackend {
    config: KafkaBackendConfig,
    consumer: BaseConsumer<GroupContext>,
    /// Shared with the thread running a transaction call (see
    /// [`KafkaBackend::txn_op`]).
    producer: Arc<TxnProducer>,
    admin: AdminClient<LogContext>,
    /// Created by the first `read_partition`.
    restore: Option<BaseConsumer<LogContext>>,
    /// Exactly-once: a transaction is open.
    in_txn: bool,
    /// Where each partition resumes, for lag, since the last assignment
    /// change: its committed offset (asked once) or where it was sought to.
    lag_committed: std::collections::HashMap<TopicPartition, Option<i64>>,
}

impl std::fmt::Debug for KafkaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBackend")
            .field("config", &self.config)
            .field("in_txn", &self.in_txn)
            .finish_non_exhaustive()
    }
}

/// Pause between attempts to enqueue into a full producer queue.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(50);
/// Poll slice of `read_partition`.
const RESTORE_POLL: Duration = Duration::from_millis(100);
/// Pause between retries of a seek on a partition that is not fetching yet.
const SEEK_BACKOFF: Duration = Duration::from_millis(10);
/// Pause between attempts to read a partition's watermarks.
const WATERMARK_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait of one attempt to read a partition's watermarks.
const WATERMARK_ATTEMPT: Duration = Duration::from_secs(5);
/// Pause between retries of a retriable transaction call.
const TXN_BACKOFF: Duration = Duration::from_millis(100);
/// How long past its timeout a transaction call may block before the
/// producer is declared stuck and replaced.
const TXN_STUCK_GRACE: Duration = Duration::from_secs(10);

impl KafkaBackend {
    /// Creates the clients; under exactly-once also registers the
    /// transactional id with the coordinator (`init_transactions`), which
    /// fences any older producer with the same id and aborts its open
    /// transaction.
    pub fn new(config: KafkaBackendConfig) -> Result<Self, BackendError> {
        if config.application_id.is_empty() {
            return Err(BackendError::Fatal("application id is empty".into()));
        }
        if config.bootstrap_servers.is_empty() {
            return Err(BackendError::Fatal("bootstrap servers are empty".into()));
        }
        let eos = config.guarantee == Guarantee::ExactlyOnce;
        let app = &config.application_id;
        let instance = &config.instance_id;

        let mut cc = base_config(&config, &format!("{app}-{instance}-consumer"));
        cc.set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "range")
            // librdkafka's default (1 s) idles a fast consumer whose
            // pre-fetch queue filled up most of the time.
            .set("fetch.queue.backoff.ms", "10");
        apply_properties(&mut cc, &config.properties);
        if let Some(endpoint) = &config.application_server {
            if endpoint.is_empty() || endpoint.contains(['@', '\0']) {
                return Err(BackendError::Fatal(format!(
                    "invalid application server {endpoint:?}: must be non-empty host:port without '@'"
                )));
            }
            cc.set("client.id", format!("{app}-{instance}-consumer@{endpoint}"));
        }
        cc.set("group.id", app)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        if eos {
            cc.set("isolation.level", "read_committed");
        }
        let consumer: BaseConsumer<GroupContext> = cc
            .create_with_context(GroupContext::default())
            .map_err(|e| BackendError::Fatal(format!("cannot create the consumer: {e}")))?;

        let producer = Arc::new(create_producer(&config)?);

        let mut ac = base_config(&config, &format!("{app}-{instance}-admin"));
        apply_properties(&mut ac, &config.properties);
        // partition_count must never create the topic it asks about.
        ac.set("allow.auto.create.topics", "false");
        let admin: AdminClient<LogContext> = ac
            .create_with_context(LogContext::new("admin"))
            .map_err(|e| BackendError::Fatal(format!("cannot create the admin client: {e}")))?;

        let backend = KafkaBackend {
            config,
            consumer,
            producer,
            admin,
            restore: None,
            in_txn: false,
            lag_committed: std::collections::HashMap::new(),
        };
        if eos {
            backend.init_transactions()?;
        }
        Ok(backend)
    }

    /// Registers the transactional id (fencing older producers with it and
    /// aborting their open transaction).
    fn init_transactions(&self) -> Result<(), BackendError> {
        self.txn_op("init_transactions", |p, t| p.init_transactions(t))
            .map_err(|e| match e {
                TxnError::Stuck(msg) => BackendError::Fatal(msg),
                other => other.into_backend(),
            })?;
        info!(
            transactional_id = %self.config.transactional_id(),
            "transactional producer initialised"
        );
        Ok(())
    }

    /// Replaces a producer stuck in a transaction call by a new one with
    /// the same transactional id: its `init_transactions` fences the old
    /// one and aborts the transaction it had open, so what this instance
    /// wrote since its last commit is discarded. The old producer and the
    /// thread blocked in it are left to librdkafka.
    fn replace_producer(&mut self, why: String) -> BackendError {
        error!(reason = %why, "replacing the transactional producer");
        self.in_txn = false;
        let fresh = create_producer(&self.config).and_then(|p| {
            self.producer = Arc::new(p);
            self.init_transactions()
        });
        match fresh {
            Ok(()) => BackendError::Retriable(format!(
                "{why}; the transaction was abandoned and its records and offsets are discarded"
            )),
            Err(e) => BackendError::Fatal(format!("{why}; no new producer: {e}")),
        }
    }

    /// The configuration this backend was created with.
    pub fn config(&self) -> &KafkaBackendConfig {
        &self.config
    }

    fn eos(&self) -> bool {
        self.config.guarantee == Guarantee::ExactlyOnce
    }

    fn timeout(&self) -> Duration {
        self.config.timeout
    }

    /// Maps a producer-side error, consulting the producer's fatal error
    /// state: under exactly-once every fatal error means this instance may
    /// not write any more (fenced); under at-least-once it is fatal.
    fn producer_error(&self, what: &str, e: &KafkaError) -> BackendError {
        producer_error(&self.producer, self.eos(), what, e)
    }

    /// Runs a transaction call, retrying it while librdkafka says it is
    /// retriable, within the configured timeout. The call runs on a thread
    /// of its own: librdkafka may block in it past its timeout (in
    /// `send_offsets_to_transaction` when the group coordinator broker
    /// dies, librdkafka issues #5456 and #5511), and a call that has not
    /// returned [`TXN_STUCK_GRACE`] after its timeout is reported
    /// [`TxnError::Stuck`] instead of blocking the application for good.
    fn txn_op(
        &self,
        what: &'static str,
        op: impl FnMut(&TxnProducer, Duration) -> KafkaResult<()> + Send + 'static,
    ) -> Result<(), TxnError> {
        let producer = Arc::clone(&self.producer);
        let timeout = self.timeout();
        let eos = self.eos();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("runnel-txn".into())
            .spawn(move || {
                let _ = tx.send(txn_retry(&producer, eos, what, timeout, op));
            })
            .map_err(|e| {
                TxnError::Backend(BackendError::Fatal(format!(
                    "{what}: cannot start its thread: {e}"
                )))
            })?;
        match rx.recv_timeout(timeout + TXN_STUCK_GRACE) {
            Ok(result) => result,
            Err(_) => Err(TxnError::Stuck(format!(
                "{what} did not return within {:?}",
                timeout + TXN_STUCK_GRACE
            ))),
        }
    }

    /// Opens a transaction unless one is open (exactly-once only).
    fn ensure_txn(&mut self) -> Result<(), BackendError> {
        if !self.eos() || self.in_txn {
            return Ok(());
        }
        self.producer.begin_transaction().map_err(|e| match &e {
            KafkaError::Transaction(te) if te.is_fatal() => {
                BackendError::Fenced(format!("begin_transaction: {e}"))
            }
            _ => self.producer_error("begin_transaction", &e),
        })?;
        self.producer.context().clear();
        self.in_txn = true;
        debug!("transaction begun");
        Ok(())
    }

    /// Aborts the open transaction (exactly-once only).
    fn abort_txn(&mut self) -> Result<(), BackendError> {
        if !self.in_txn {
            return Ok(());
        }
        let result = self.txn_op("abort_transaction", |p, t| p.abort_transaction(t));
        match result {
            Ok(()) => {
                self.in_txn = false;
                // Records purged by the abort report delivery errors.
                self.producer.context().clear();
                debug!("transaction aborted");
                Ok(())
            }
            Err(TxnError::Stuck(why)) => match self.replace_producer(why) {
                // The new producer aborted the transaction: done.
                BackendError::Retriable(_) => Ok(()),
                e => Err(e),
            },
            Err(e) => Err(e.into_backend()),
        }
    }

    fn commit_at_least_once(
        &mut self,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<(), BackendError> {
        flush_producer(&self.producer, self.timeout())
            .map_err(|e| self.producer_error("flush", &e))?;
        if let Some(failure) = self.producer.context().failure() {
            return Err(failure);
        }
        if offsets.is_empty() {
            return Ok(());
        }
        let tpl = offsets_list(offsets)?;
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| classify("commit offsets", &e))?;
        debug!(partitions = offsets.len(), "offsets committed");
        Ok(())
    }

    fn commit_exactly_once(
        &mut self,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<(), BackendError> {
        if !self.in_txn && offsets.is_empty() {
            return Ok(());
        }
        self.ensure_txn()?;
        let tpl = offsets_list(offsets)?;
        let started = Instant::now();
        let mut offsets_sent = started;
        let result = (|| {
            if !offsets.is_empty() {
                let Some(group) = self.consumer.group_metadata() else {
                    return Err(TxnError::Backend(BackendError::Fatal(
                        "the consumer has no group metadata".into(),
                    )));
                };
                self.txn_op("send_offsets_to_transaction", move |p, t| {
                    p.send_offsets_to_transaction(&tpl, &group, t)
                })?;
                offsets_sent = Instant::now();
            }
            self.txn_op("commit_transaction", |p, t| {
                // Delivered first, so that rdkafka's own flush inside
                // commit_transaction finds nothing in flight.
                flush_producer(p, t)?;
                p.commit_transaction(t)
            })
        })();
        match result {
            Ok(()) => {
                self.in_txn = false;
                self.producer.context().clear();
                // How long each blocking step took: the processing thread
                // waits for both (issue 20's exactly-once gap).
                debug!(
                    partitions = offsets.len(),
                    send_offsets_ms = (offsets_sent - started).as_secs_f64() * 1000.0,
                    commit_ms = offsets_sent.elapsed().as_secs_f64() * 1000.0,
                    "transaction committed"
                );
                Ok(())
            }
            Err(TxnError::Abortable(msg)) => {
                warn!(error = %msg, "transaction failed; aborting it");
                self.abort_txn()?;
                Err(BackendError::Retriable(format!(
                    "transaction aborted, its records and offsets are discarded: {msg}"
                )))
            }
            Err(TxnError::Stuck(why)) => Err(self.replace_producer(why)),
            Err(TxnError::Backend(e)) => Err(e),
        }
    }

    /// The restore consumer, created on first use.
    fn restore_consumer(&mut self) -> Result<&BaseConsumer<LogContext>, BackendError> {
        if self.restore.is_none() {
            let c = &self.config;
            let mut rc = base_config(
                c,
                &format!("{}-{}-restore", c.application_id, c.instance_id),
            );
            rc.set("auto.offset.reset", "earliest");
            apply_properties(&mut rc, &c.properties);
            // A group id is required by librdkafka's assign(); this consumer
            // never subscribes, so it never joins that group, and never commits.
            rc.set("group.id", format!("{}-restore", c.application_id))
                .set("isolation.level", "read_committed")
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("enable.partition.eof", "true");
            let consumer: BaseConsumer<LogContext> = rc
                .create_with_context(LogContext::consumer("restore"))
                .map_err(|e| {
                    BackendError::Fatal(format!("cannot create the restore consumer: {e}"))
                })?;
            self.restore = Some(consumer);
        }
        self.restore
            .as_ref()
            .ok_or_else(|| BackendError::Fatal("restore consumer missing".into()))
    }
}

impl KafkaBackend {
    /// The group's committed offset of `tp`, cached until the assignment
    /// changes (`None` when there is none or it cannot be fetched).
    fn committed_for_lag(&mut self, tp: &TopicPartition) -> Option<i64> {
        if let Some(c) = self.lag_committed.get(tp) {
            return *c;
        }
        let c = self
            .committed(std::slice::from_ref(tp))
            .ok()
            .and_then(|v| v.into_iter().next().flatten());
        self.lag_committed.insert(tp.clone(), c);
        c
    }
}

impl Backend for KafkaBackend {
    /// From the consumer's position and the high watermark librdkafka
    /// cached from its last fetch response (under read_committed it is the
    /// last stable offset); `None` until both are known.
    fn lag(&mut self, tp: &TopicPartition) -> Option<i64> {
        let (low, high) = cached_watermarks(&self.consumer, tp)?;
        if high < 0 {
            return None;
        }
        let positions = self.consumer.position().ok()?;
        match positions.find_partition(&tp.topic, tp.partition)?.offset() {
            Offset::Offset(o) => Some((high - o).max(0)),
            // Nothing consumed since the assignment: the group's committed
            // offset is where consumption resumes (asked once per
            // assignment); without one only an empty partition is caught up.
            _ => match self.committed_for_lag(tp) {
                Some(c) => Some((high - c).max(0)),
                None => (high == low.max(0)).then_some(0),
            },
        }
    }

    fn partition_count(&mut self, topic: &str) -> Result<Option<i32>, BackendError> {
        check_topic(topic)?;
        let metadata = self
            .admin
            .inner()
            .fetch_metadata(Some(topic), self.timeout())
            .map_err(|e| classify("metadata", &e))?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Ok(None);
        };
        if let Some(err) = t.error() {
            let code = RDKafkaErrorCode::from(err);
            return match code {
                RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => {
                    Ok(None)
                }
                _ if is_retriable(code) => Err(BackendError::Retriable(format!(
                    "metadata of {topic}: {code}"
                ))),
                _ => Err(BackendError::Fatal(format!("metadata of {topic}: {code}"))),
            };
        }
        let count = t.partitions().len();
        if count == 0 {
            return Ok(None);
        }
        i32::try_from(count)
            .map(Some)
            .map_err(|_| BackendError::Fatal(format!("{topic} has {count} partitions")))
    }

    fn create_topic(
        &mut self,
        topic: &str,
        partitions: i32,
        configs: &[(String, String)],
    ) -> Result<(), BackendError> {
        create_topic(
            &self.admin,
            topic,
            partitions,
            self.config.replication_factor,
            configs,
            self.timeout(),
        )
    }

    fn subscribe(&mut self, topics: &[String]) -> Result<(), BackendError> {
        for t in topics {
            check_topic(t)?;
        }
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        self.consumer
            .subscribe(&names)
            .map_err(|e| classify("subscribe", &e))?;
        info!(topics = ?names, group = %self.config.application_id, "subscribed");
        Ok(())
    }

    fn poll(&mut self, timeout: Duration) -> Result<Vec<PollEvent>, BackendError> {
        let deadline = Instant::now() + timeout;
        let max = self.config.max_poll_records.max(1);
        let mut out: Vec<PollEvent> = Vec::new();
        let mut batch: Vec<ConsumedRecord> = Vec::new();
        let mut records = 0usize;
        // Events of callbacks that ran outside poll (none expected).
        self.consumer.context().drain_into(&mut out, &mut batch);
        loop {
            // Block only until the first record or event; then take what is
            // immediately available.
            let got_something = records > 0 || !out.is_empty();
            let wait = if got_something {
                Duration::ZERO
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            let polled = self.consumer.poll(wait);
            let got_message = match polled {
                Some(Ok(msg)) => {
                    batch.push(to_record(&msg));
                    records += 1;
                    true
                }
                Some(Err(KafkaError::PartitionEOF(_))) => false,
                Some(Err(e)) => {
                    consumer_error(&e)?;
                    false
                }
                None => false,
            };
            // A rebalance callback returns from librdkafka's poll before any
            // further message, so events always follow the records before them.
            let had_events = self.consumer.context().drain_into(&mut out, &mut batch);
            if records >= max {
                break;
            }
            if got_message || had_events {
                continue;
            }
            if records > 0 || !out.is_empty() || Instant::now() >= deadline {
                break;
            }
            // poll returned early (a non-message event was served): wait on.
        }
        if out
            .iter()
            .any(|e| matches!(e, PollEvent::Assigned(_) | PollEvent::Revoked(_)))
        {
            self.lag_committed.clear();
        }
        if !batch.is_empty() {
            out.push(PollEvent::Records(batch));
        }
        Ok(out)
    }

    fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), BackendError> {
        check_topic(&tp.topic)?;
        if offset < 0 {
            return Err(BackendError::Fatal(format!("cannot seek {tp} to {offset}")));
        }
        let assignment = self
            .consumer
            .assignment()
            .map_err(|e| classify("assignment", &e))?;
        if assignment.find_partition(&tp.topic, tp.partition).is_none() {
            return Err(BackendError::Fatal(format!(
                "cannot seek {tp}: not assigned"
            )));
        }
        let deadline = Instant::now() + self.timeout();
        loop {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(offset))
                .map_err(|e| classify("seek", &e))?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let result = self
                .consumer
                .seek_partitions(tpl, remaining.max(Duration::from_millis(1)))
                .map_err(|e| BackendError::Retriable(format!("seek {tp}: {e}")))?;
            let code = result
                .find_partition(&tp.topic, tp.partition)
                .map(|elem| elem.error());
            match code {
                Some(Ok(())) | None => {
                    debug!(%tp, offset, "seeked");
                    // Until a record of it is consumed, the consumer's
                    // position stays unknown: lag counts from here.
                    self.lag_committed.insert(tp.clone(), Some(offset));
                    return Ok(());
                }
                Some(Err(e)) => {
                    // Right after an assignment the partition may still be
                    // looking up its committed offset, not fetching yet.
                    let not_started = matches!(
                        e.rdkafka_error_code(),
                        Some(
                            RDKafkaErrorCode::State
                                | RDKafkaErrorCode::PreviousInProgress
                                | RDKafkaErrorCode::UnknownPartition
                        )
                    );
                    if not_started && Instant::now() < deadline {
                        std::thread::sleep(SEEK_BACKOFF);
                        continue;
                    }
                    return Err(classify(&format!("seek {tp}"), &e));
                }
            }
        }
    }

    fn committed(&mut self, tps: &[TopicPartition]) -> Result<Vec<Option<i64>>, BackendError> {
        if tps.is_empty() {
            return Ok(Vec::new());
        }
        let mut tpl = TopicPartitionList::new();
        for tp in tps {
            check_topic(&tp.topic)?;
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Invalid)
                .map_err(|e| classify("committed", &e))?;
        }
        let result = self
            .consumer
            .committed_offsets(tpl, self.timeout())
            .map_err(|e| classify("fetch committed offsets", &e))?;
        tps.iter()
            .map(|tp| {
                let Some(elem) = result.find_partition(&tp.topic, tp.partition) else {
                    return Ok(None);
                };
                elem.error()
                    .map_err(|e| classify(&format!("committed offset of {tp}"), &e))?;
                Ok(match elem.offset() {
                    Offset::Offset(n) if n >= 0 => Some(n),
                    _ => None,
                })
            })
            .collect()
    }

    fn begin(&mut self) -> Result<(), BackendError> {
        if self.in_txn {
            debug!("begin: a transaction is open already");
        }
        self.ensure_txn()
    }

    fn send(&mut self, records: Vec<ProducedRecord>) -> Result<(), BackendError> {
        self.ensure_txn()?;
        for r in &records {
            check_topic(&r.topic)?;
            let headers = (!r.headers.is_empty()).then(|| {
                r.headers.iter().fold(
                    OwnedHeaders::new_with_capacity(r.headers.len()),
                    |h, (k, v)| {
                        h.insert(Header {
                            key: k.as_str(),
                            value: v.as_deref(),
                        })
                    },
                )
            });
            let mut record: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(&r.topic).partition(r.partition);
            if let Some(k) = &r.key {
                record = record.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                record = record.payload(v.as_slice());
            }
            if r.timestamp > 0 {
                record = record.timestamp(r.timestamp);
            }
            if let Some(h) = headers {
                record = record.headers(h);
            }
            let deadline = Instant::now() + self.timeout();
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        if Instant::now() >= deadline {
                            return Err(BackendError::Retriable(
                                "producer queue full: records are not being delivered".into(),
                            ));
                        }
                        record = back;
                        std::thread::sleep(QUEUE_FULL_BACKOFF);
                    }
                    Err((e, _)) => {
                        return Err(self
                            .producer_error(&format!("send to {}-{}", r.topic, r.partition), &e))
                    }
                }
            }
        }
        Ok(())
    }

    fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), BackendError> {
        for (tp, offset) in offsets {
            check_topic(&tp.topic)?;
            if *offset < 0 {
                return Err(BackendError::Fatal(format!(
                    "cannot commit {tp} at {offset}"
                )));
            }
        }
        if self.eos() {
            self.commit_exactly_once(offsets)
        } else {
            self.commit_at_least_once(offsets)
        }
    }

    fn abort(&mut self) -> Result<(), BackendError> {
        self.abort_txn()
    }

    /// The read_committed end (last stable offset) of each partition, the
    /// same end [`read_partition`](Backend::read_partition) reads to. It
    /// equals the high watermark unless a transaction is open on the
    /// partition; right after an exactly-once commit it may briefly stop
    /// before this instance's records on a cluster that writes transaction
    /// markers asynchronously (Kafka does), which makes a checkpoint taken
    /// from it conservative, never ahead of the committed data.
    fn end_offsets(&mut self, tps: &[TopicPartition]) -> Result<Vec<i64>, BackendError> {
        for tp in tps {
            check_topic(&tp.topic)?;
        }
        let timeout = self.timeout();
        let restore = self.restore_consumer()?;
        tps.iter()
            .map(|tp| watermarks(restore, tp, timeout).map(|(_, high)| high))
            .collect()
    }

    /// Lists the group through the coordinator (librdkafka's
    /// `rd_kafka_list_groups`: ListGroups, then DescribeGroups) and decodes
    /// each member's consumer-protocol assignment. A member's endpoint is
    /// the part of its `client.id` after the last `@`
    /// ([`endpoint_of_client_id`]); this backend's own member is recognised
    /// by its member id.
    fn group_members(&mut self) -> Result<Vec<MemberInfo>, BackendError> {
        let group = &self.config.application_id;
        let me = own_member_id(&self.consumer);
        let raw = describe_group(self.admin.inner(), group, self.timeout())?;
        raw.into_iter()
            .map(|m| {
                let mut partitions = if m.assignment.is_empty() {
                    Vec::new()
                } else {
                    decode_consumer_assignment(&m.assignment)
                        .map_err(|e| {
                            BackendError::Fatal(format!(
                                "group {group}: member {}: {e}",
                                m.member_id
                            ))
                        })?
                        .partitions
                };
                partitions.sort();
                Ok(MemberInfo {
                    endpoint: endpoint_of_client_id(&m.client_id).map(str::to_string),
                    is_self: me.as_deref() == Some(m.member_id.as_str()),
                    member_id: m.member_id,
                    client_id: m.client_id,
                    host: m.host,
                    partitions,
                })
            })
            .collect()
    }

    fn read_partition(
        &mut self,
        tp: &TopicPartition,
        from: i64,
        f: &mut dyn FnMut(ConsumedRecord),
    ) -> Result<i64, BackendError> {
        check_topic(&tp.topic)?;
        if from < 0 {
            return Err(BackendError::Fatal(format!("cannot read {tp} from {from}")));
        }
        let timeout = self.timeout();
        let restore = self.restore_consumer()?;
        let (_, end) = watermarks(restore, tp, timeout)?;
        if from >= end {
            debug!(%tp, from, end, "read_partition: nothing to read");
            return Ok(from);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(from))
            .map_err(|e| classify("read_partition", &e))?;
        restore
            .assign(&tpl)
            .map_err(|e| classify(&format!("assign {tp}"), &e))?;
        let result = read_until(restore, tp, end, timeout, f);
        if let Err(e) = restore.unassign() {
            warn!(%tp, error = %e, "cannot unassign the restore consumer");
        }
        let reached = result?;
        debug!(%tp, from, end, reached, "read_partition done");
        Ok(reached)
    }
}

impl Drop for KafkaBackend {
    fn drop(&mut self) {
        if self.in_txn {
            if let Err(e) = self.abort_txn() {
                warn!(error = %e, "cannot abort the open transaction on drop");
            }
        }
    }
}

/// Reads the assigned `tp` of `restore` up to `end`; see the module docs.
fn read_until(
    restore: &BaseConsumer<LogContext>,
    tp: &TopicPartition,
    end: i64,
    timeout: Duration,
    f: &mut dyn FnMut(ConsumedRecord),
) -> Result<i64, BackendError> {
    let mut last_progress = Instant::now();
    loop {
        match restore.poll(RESTORE_POLL) {
            Some(Ok(msg)) => {
                if msg.partition() != tp.partition || msg.topic() != tp.topic {
                    continue;
                }
                last_progress = Instant::now();
                let offset = msg.offset();
                if offset >= end {
                    return Ok(end);
                }
                f(to_record(&msg));
                if offset + 1 >= end {
                    return Ok(offset + 1);
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) if p == tp.partition => return Ok(end),
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => match e.rdkafka_error_code() {
                Some(
                    code @ (RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::UnknownPartition
                    | RDKafkaErrorCode::TopicAuthorizationFailed),
                ) => return Err(BackendError::Fatal(format!("read {tp}: {code}"))),
                _ => consumer_error(&e)?,
            },
            None => {
                if last_progress.elapsed() >= timeout {
                    return Err(BackendError::Retriable(format!(
                        "read {tp}: no progress towards offset {end} in {timeout:?}"
                    )));
                }
            }
        }
    }
}

/// One group member as librdkafka's group listing reports it.
struct RawMember {
    member_id: String,
    client_id: String,
    host: String,
    assignment: Vec<u8>,
}

/// Frees a group list of librdkafka's on drop.
struct GroupList(*const rdkafka::bindings::rd_kafka_group_list);

impl Drop for GroupList {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful (or partial)
        // rd_kafka_list_groups, which hands ownership to the caller; it is
        // freed exactly once, here.
        unsafe { rdkafka::bindings::rd_kafka_group_list_destroy(self.0) }
    }
}

/// A C string of librdkafka's, copied and decoded lossily (`""` for null).
///
/// # Safety
/// `p` is null or a NUL-terminated string alive for the call.
unsafe fn c_string(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// `n` elements at `p`; empty for null or a non-positive count.
///
/// # Safety
/// `p` is null or points at `n` initialised elements alive for `'a`.
unsafe fn c_slice<'a, T>(p: *const T, n: std::os::raw::c_int) -> &'a [T] {
    match usize::try_from(n) {
        Ok(n) if n > 0 && !p.is_null() => std::slice::from_raw_parts(p, n),
        _ => &[],
    }
}

/// The members of consumer group `group`, read through librdkafka's C API
/// (`rd_kafka_list_groups`, what rdkafka's `fetch_group_list` wraps): the
/// wrapper panics on strings that are not UTF-8 (client ids come from other
/// clients) and hides the group's error code. An unknown group has no
/// members.
fn describe_group<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    group: &str,
    timeout: Duration,
) -> Result<Vec<RawMember>, BackendError> {
    use rdkafka::bindings as rd;
    let name = std::ffi::CString::new(group)
        .map_err(|_| BackendError::Fatal(format!("invalid group id {group:?}")))?;
    let timeout_ms =
        std::os::raw::c_int::try_from(timeout.as_millis()).unwrap_or(std::os::raw::c_int::MAX);
    let mut list: *const rd::rd_kafka_group_list = std::ptr::null();
    // SAFETY: the client pointer is live for the borrow of `client`; the
    // group name is a NUL-terminated string alive across the call; `list`
    // is a valid out pointer on this stack frame.
    let err = unsafe {
        rd::rd_kafka_list_groups(client.native_ptr(), name.as_ptr(), &mut list, timeout_ms)
    };
    // librdkafka sets the list on success and on a partial answer (not
    // every broker answered in time) only.
    let partial = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__PARTIAL;
    if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR && !partial {
        let code = RDKafkaErrorCode::from(err);
        let msg = format!("list group {group}: {code}");
        return Err(if is_retriable(code) {
            BackendError::Retriable(msg)
        } else {
            BackendError::Fatal(msg)
        });
    }
    if list.is_null() {
        return Ok(Vec::new());
    }
    let list = GroupList(list);
    let mut out = Vec::new();
    let mut found = false;
    // SAFETY: `list` is a live group list owned by `GroupList` until the
    // end of this function; its arrays hold the counts of elements given
    // next to them, its strings are NUL-terminated, and assignments are
    // (pointer, size) byte ranges inside it. Everything is copied out
    // before `list` is dropped.
    unsafe {
        for g in c_slice((*list.0).groups, (*list.0).group_cnt) {
            if c_string(g.group) != group {
                continue;
            }
            found = true;
            if g.err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
                let code = RDKafkaErrorCode::from(g.err);
                let msg = format!("describe group {group}: {code}");
                return Err(if is_retriable(code) {
                    BackendError::Retriable(msg)
                } else {
                    BackendError::Fatal(msg)
                });
            }
            for m in c_slice(g.members, g.member_cnt) {
                let assignment = c_slice(
                    m.member_assignment.cast::<u8>().cast_const(),
                    m.member_assignment_size,
                )
                .to_vec();
                out.push(RawMember {
                    member_id: c_string(m.member_id),
                    client_id: c_string(m.client_id),
                    host: c_string(m.client_host),
                    assignment,
                });
            }
        }
    }
    if partial && !found {
        return Err(BackendError::Retriable(format!(
            "list group {group}: not every broker answered"
        )));
    }
    Ok(out)
}

/// The group member id of `consumer` (`None` before it joined).
fn own_member_id<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Option<String> {
    use rdkafka::bindings as rd;
    let rk = consumer.client().native_ptr();
    // SAFETY: `rk` is live for the borrow of `consumer`. librdkafka returns
    // a NUL-terminated copy (or null) that the caller frees with
    // rd_kafka_mem_free, after it has been copied here.
    unsafe {
        let p = rd::rd_kafka_memberid(rk);
        if p.is_null() {
            return None;
        }
        let id = CStr::from_ptr(p).to_string_lossy().into_owned();
        rd::rd_kafka_mem_free(rk, p.cast());
        (!id.is_empty()).then_some(id)
    }
}

/// Topic administration on a Kafka-compatible cluster, for what runs
/// beside applications rather than inside one (the SQL engine's topic
/// listing and `DROP … DELETE TOPIC`): one librdkafka admin client.
pub struct KafkaAdmin {
    admin: AdminClient<LogContext>,
    timeout: Duration,
}

impl std::fmt::Debug for KafkaAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaAdmin")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl KafkaAdmin {
    /// An admin client for `config`'s cluster, with its extra properties
    /// and timeout (its application id names the client).
    pub fn new(config: &KafkaBackendConfig) -> Result<Self, BackendError> {
        if config.bootstrap_servers.is_empty() {
            return Err(BackendError::Fatal("bootstrap servers are empty".into()));
        }
        let mut ac = base_config(config, &format!("{}-admin", config.application_id));
        apply_properties(&mut ac, &config.properties);
        ac.set("allow.auto.create.topics", "false");
        let admin = ac
            .create_with_context(LogContext::new("admin"))
            .map_err(|e| BackendError::Fatal(format!("cannot create the admin client: {e}")))?;
        Ok(KafkaAdmin {
            admin,
            timeout: config.timeout,
        })
    }

    /// Every topic of the cluster with its partition count, by name.
    pub fn topics(&self) -> Result<Vec<(String, i32)>, BackendError> {
        let metadata = self
            .admin
            .inner()
            .fetch_metadata(None, self.timeout)
            .map_err(|e| classify("metadata", &e))?;
        let mut topics: Vec<(String, i32)> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| {
                let n = i32::try_from(t.partitions().len()).unwrap_or(i32::MAX);
                (t.name().to_string(), n)
            })
            .collect();
        topics.sort();
        Ok(topics)
    }

    /// Creates `topic` (`replication_factor` -1: the broker default) and
    /// returns once every broker asked sees all its partitions with a
    /// leader; a topic that exists already is left as it is.
    pub fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        replication_factor: i32,
        configs: &[(String, String)],
    ) -> Result<(), BackendError> {
        create_topic(
            &self.admin,
            topic,
            partitions,
            replication_factor,
            configs,
            self.timeout,
        )
    }

    /// Deletes `topic`; a topic that does not exist is an error.
    pub fn delete_topic(&self, topic: &str) -> Result<(), BackendError> {
        check_topic(topic)?;
        let options = AdminOptions::new()
            .request_timeout(Some(self.timeout))
            .operation_timeout(Some(self.timeout));
        let results = block_on(self.admin.delete_topics(&[topic], &options))
            .map_err(|e| classify("delete topics", &e))?;
        for result in results {
            match result {
                Ok(name) => info!(topic = %name, "topic deleted"),
                Err((name, code)) => return Err(topic_error("delete", &name, code)),
            }
        }
        Ok(())
    }

    /// Deletes a consumer group without members and its offsets.
    pub fn delete_group(&self, group: &str) -> Result<(), BackendError> {
        let options = AdminOptions::new().request_timeout(Some(self.timeout));
        let results = block_on(self.admin.delete_groups(&[group], &options))
            .map_err(|e| classify("delete groups", &e))?;
        for result in results {
            match result {
                Ok(name) => info!(group = %name, "group deleted"),
                Err((name, code)) => {
                    return Err(BackendError::Fatal(format!(
                        "cannot delete group {name}: {code:?}"
                    )))
                }
            }
        }
        Ok(())
    }
}

/// Creates a topic and waits until it can be used. On a cluster of several
/// brokers a created topic reaches the other brokers' metadata
/// asynchronously: until then a broker answers `UNKNOWN_TOPIC_OR_PARTITION`,
/// a partition count of 0 or partitions without a leader, and the first
/// produce, fetch or list-offsets call fails. Retriable errors of the
/// creation itself (a controller moving, a timeout) are retried too, all
/// within `timeout`.
fn create_topic(
    admin: &AdminClient<LogContext>,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(String, String)],
    timeout: Duration,
) -> Result<(), BackendError> {
    check_topic(topic)?;
    if partitions < 1 {
        return Err(BackendError::Fatal(format!(
            "cannot create {topic} with {partitions} partitions"
        )));
    }
    let deadline = Instant::now() + timeout;
    let mut new_topic = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    for (k, v) in configs {
        new_topic = new_topic.set(k, v);
    }
    let mut backoff = Duration::from_millis(20);
    loop {
        let options = AdminOptions::new()
            .request_timeout(Some(timeout))
            .operation_timeout(Some(timeout));
        let created = block_on(admin.create_topics([&new_topic], &options))
            .map_err(|e| classify("create topics", &e))
            .and_then(|results| {
                for result in results {
                    match result {
                        Ok(name) => info!(topic = %name, partitions, "topic created"),
                        Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                            debug!(topic = %name, "topic exists already")
                        }
                        Err((name, code)) => return Err(topic_error("create", &name, code)),
                    }
                }
                Ok(())
            });
        match created {
            Ok(()) => break,
            Err(BackendError::Retriable(msg)) if Instant::now() + backoff < deadline => {
                debug!(topic, error = %msg, "retrying topic creation");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(e),
        }
    }
    wait_usable(admin, topic, deadline)
}

/// Waits until the metadata of `topic` shows every partition with a leader.
fn wait_usable(
    admin: &AdminClient<LogContext>,
    topic: &str,
    deadline: Instant,
) -> Result<(), BackendError> {
    let mut backoff = Duration::from_millis(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let seen = admin
            .inner()
            .fetch_metadata(Some(topic), left.max(Duration::from_millis(100)))
            .map_err(|e| classify("metadata", &e))
            .map(|m| {
                m.topics().iter().find(|t| t.name() == topic).map(|t| {
                    t.error().is_none()
                        && !t.partitions().is_empty()
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                })
            });
        let why = match seen {
            Ok(Some(true)) => return Ok(()),
            Ok(_) => "not yet in the metadata with a leader per partition".to_string(),
            Err(BackendError::Retriable(msg)) => msg,
            Err(e) => return Err(e),
        };
        if Instant::now() + backoff >= deadline {
            return Err(BackendError::Retriable(format!(
                "topic {topic} was created but is still not usable: {why}"
            )));
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(200));
    }
}

/// A topic administration failure, retriable when the code says so.
fn topic_error(what: &str, topic: &str, code: RDKafkaErrorCode) -> BackendError {
    let msg = format!("{what} topic {topic}: {code}");
    if is_retriable(code) {
        BackendError::Retriable(msg)
    } else {
        BackendError::Fatal(msg)
    }
}

/// Settings every client shares, before the extra properties.
fn base_config(config: &KafkaBackendConfig, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers)
        .set("client.id", client_id)
        .set("allow.auto.create.topics", "false")
        .set_log_level(RDKafkaLogLevel::Info);
    c
}

fn apply_properties(c: &mut ClientConfig, properties: &[(String, String)]) {
    for (k, v) in properties {
        c.set(k, v);
    }
}

/// Rejects names librdkafka's wrappers cannot take (they panic on NUL).
fn check_topic(topic: &str) -> Result<(), BackendError> {
    if topic.is_empty() || topic.contains('\0') {
        return Err(BackendError::Fatal(format!("invalid topic name {topic:?}")));
    }
    Ok(())
}

fn offsets_list(offsets: &[(TopicPartition, i64)]) -> Result<TopicPartitionList, BackendError> {
    let mut tpl = TopicPartitionList::with_capacity(offsets.len());
    for (tp, offset) in offsets {
        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
            .map_err(|e| classify("offsets", &e))?;
    }
    Ok(tpl)
}

/// Handles an error returned by a consumer poll: fatal ones stop the
/// caller; the rest (broker connection trouble, a subscribed topic that does
/// not exist yet) are logged, librdkafka recovers from them by itself.
fn consumer_error(e: &KafkaError) -> Result<(), BackendError> {
    match e {
        KafkaError::MessageConsumptionFatal(code) => Err(if is_fencing(*code) {
            BackendError::Fenced(format!("consumer: {code}"))
        } else {
            BackendError::Fatal(format!("consumer: {code}"))
        }),
        KafkaError::MessageConsumption(
            code @ (RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed),
        ) => Err(BackendError::Fatal(format!("consumer: {code}"))),
        _ => {
            warn!(error = %e, "consumer error");
            Ok(())
        }
    }
}

/// Errors that mean another instance took over.
fn is_fencing(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::Fenced
            | RDKafkaErrorCode::FencedInstanceId
    )
}

/// Errors that may go away when the call is repeated (after a poll, for the
/// group ones).
fn is_retriable(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        BrokerTransportFailure
            | Resolve
            | AllBrokersDown
            | OperationTimedOut
            | TimedOutQueue
            | QueueFull
            | WaitingForCoordinator
            | PreviousInProgress
            | InProgress
            | Retry
            | LeaderNotAvailable
            | NotLeaderForPartition
            | RequestTimedOut
            | BrokerNotAvailable
            | ReplicaNotAvailable
            | NetworkException
            | CoordinatorLoadInProgress
            | CoordinatorNotAvailable
            | NotCoordinator
            | NotEnoughReplicas
            | NotEnoughReplicasAfterAppend
            | IllegalGeneration
            | UnknownMemberId
            | RebalanceInProgress
            | ConcurrentTransactions
            | UnstableOffsetCommit
            | AssignmentLost
            | ThrottlingQuotaExceeded
    )
}

/// The low and high watermarks of `tp`, asked again for up to `timeout`
/// while the cluster cannot tell yet: a topic just created reaches each
/// client's metadata (and each broker's) a moment later, so a partition it
/// has may be unknown here for a while (`UnknownPartition`), and a
/// partition's leader moves when a broker dies.
fn watermarks(
    consumer: &BaseConsumer<LogContext>,
    tp: &TopicPartition,
    timeout: Duration,
) -> Result<(i64, i64), BackendError> {
    let deadline = Instant::now() + timeout;
    loop {
        // Each attempt is short: one that waits on a broker that is gone
        // or no longer the leader would otherwise use the whole timeout.
        let attempt = deadline
            .saturating_duration_since(Instant::now())
            .clamp(WATERMARK_BACKOFF, WATERMARK_ATTEMPT);
        let e = match consumer.fetch_watermarks(&tp.topic, tp.partition, attempt) {
            Ok(w) => return Ok(w),
            Err(e) => e,
        };
        let err = classify(&format!("end offset of {tp}"), &e);
        let not_yet = matches!(err, BackendError::Retriable(_))
            || e.rdkafka_error_code() == Some(RDKafkaErrorCode::UnknownPartition);
        if !not_yet || Instant::now() >= deadline {
            return Err(err);
        }
        debug!(%tp, error = %e, "end offset not known yet; asking again");
        std::thread::sleep(WATERMARK_BACKOFF);
    }
}

fn classify(what: &str, e: &KafkaError) -> BackendError {
    let msg = format!("{what}: {e}");
    if let KafkaError::Transaction(te) = e {
        if te.is_fatal() {
            return BackendError::Fenced(msg);
        }
        if te.is_retriable() {
            return BackendError::Retriable(msg);
        }
    }
    match e.rdkafka_error_code() {
        Some(code) if is_fencing(code) => BackendError::Fenced(msg),
        Some(code) if is_retriable(code) => BackendError::Retriable(msg),
        _ => BackendError::Fatal(msg),
    }
}

/// A failed transaction call.
enum TxnError {
    /// The transaction cannot commit and must be aborted.
    Abortable(String),
    /// librdkafka did not return from the call: the producer is unusable.
    Stuck(String),
    Backend(BackendError),
}

impl TxnError {
    fn into_backend(self) -> BackendError {
        match self {
            TxnError::Abortable(msg) => BackendError::Retriable(msg),
            TxnError::Stuck(msg) => BackendError::Fatal(msg),
            TxnError::Backend(e) => e,
        }
    }
}

/// The producer type of the backend.
type TxnProducer = ThreadedProducer<DeliveryContext>;

/// Waits until every record sent has been delivered or failed, at most
/// `timeout`. Not rdkafka's `flush`: that waits in `poll` slices of 100 ms
/// for delivery events which the ThreadedProducer's own polling thread
/// takes, so every flush with a record in flight lasted 100 ms or more
/// (half the wall time of exactly-once at a 100 ms commit interval, issue
/// 20). librdkafka's flush in event mode wakes when the last delivery
/// report has been served, and treats linger.ms as elapsed meanwhile.
fn flush_producer(producer: &TxnProducer, timeout: Duration) -> KafkaResult<()> {
    let ms = std::os::raw::c_int::try_from(timeout.as_millis()).unwrap_or(std::os::raw::c_int::MAX);
    // SAFETY: the client pointer is live for the borrow of `producer`;
    // rd_kafka_flush only reads the handle and waits.
    let err = unsafe { rdkafka::bindings::rd_kafka_flush(producer.client().native_ptr(), ms) };
    if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
        Ok(())
    } else {
        Err(KafkaError::Flush(RDKafkaErrorCode::from(err)))
    }
}

/// The backend's producer: idempotent; transactional under exactly-once.
fn create_producer(config: &KafkaBackendConfig) -> Result<TxnProducer, BackendError> {
    let mut pc = base_config(
        config,
        &format!("{}-{}-producer", config.application_id, config.instance_id),
    );
    pc.set("enable.idempotence", "true");
    if config.guarantee == Guarantee::ExactlyOnce {
        // Kafka Streams' default under exactly-once: the open transaction
        // of a crashed instance whose successor has another transactional
        // id holds read_committed readers back this long at most.
        pc.set("transaction.timeout.ms", "10000");
    }
    apply_properties(&mut pc, &config.properties);
    pc.remove("transactional.id");
    if config.guarantee == Guarantee::ExactlyOnce {
        pc.set("enable.idempotence", "true")
            .set("transactional.id", config.transactional_id());
    }
    pc.create_with_context(DeliveryContext::default())
        .map_err(|e| BackendError::Fatal(format!("cannot create the producer: {e}")))
}

/// Maps a producer-side error, consulting the producer's fatal error
/// state: under exactly-once every fatal error means this instance may
/// not write any more (fenced); under at-least-once it is fatal.
fn producer_error(producer: &TxnProducer, eos: bool, what: &str, e: &KafkaError) -> BackendError {
    if let Some((code, reason)) = producer.client().fatal_error() {
        let msg = format!("{what}: producer fatal error {code:?}: {reason}");
        return if eos || is_fencing(code) {
            BackendError::Fenced(msg)
        } else {
            BackendError::Fatal(msg)
        };
    }
    if eos && e.rdkafka_error_code() == Some(RDKafkaErrorCode::State) {
        // librdkafka refuses to produce once the transaction has failed
        // (an abortable error): abort and redo the work.
        return BackendError::Retriable(format!(
            "{what}: the transaction failed and must be aborted: {e}"
        ));
    }
    classify(what, e)
}

/// [`KafkaBackend::txn_op`]'s retry loop, on its own thread.
fn txn_retry(
    producer: &TxnProducer,
    eos: bool,
    what: &str,
    timeout: Duration,
    mut op: impl FnMut(&TxnProducer, Duration) -> KafkaResult<()>,
) -> Result<(), TxnError> {
    let deadline = Instant::now() + timeout;
    loop {
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let err = match op(producer, remaining) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if let KafkaError::Transaction(te) = &err {
            if te.is_fatal() {
                return Err(TxnError::Backend(BackendError::Fenced(format!(
                    "{what}: {err}"
                ))));
            }
            if te.txn_requires_abort() {
                return Err(TxnError::Abortable(format!("{what}: {err}")));
            }
            if te.is_retriable() {
                if Instant::now() < deadline {
                    warn!(%err, "{what} failed, retrying");
                    std::thread::sleep(TXN_BACKOFF);
                    continue;
                }
                return Err(TxnError::Backend(BackendError::Retriable(format!(
                    "{what}: {err}"
                ))));
            }
        }
        return Err(TxnError::Backend(producer_error(producer, eos, what, &err)));
    }
}

/// Converts a consumed message. Header names are read through librdkafka's
/// C API because the `rdkafka` wrapper panics on a name that is not UTF-8
/// (names come from the data; they are decoded lossily here).
fn to_record(msg: &BorrowedMessage<'_>) -> ConsumedRecord {
    ConsumedRecord {
        topic: msg.topic().to_string(),
        partition: msg.partition(),
        offset: msg.offset(),
        timestamp: msg.timestamp().to_millis().unwrap_or(-1),
        key: msg.key().map(<[u8]>::to_vec),
        value: msg.payload().map(<[u8]>::to_vec),
        headers: message_headers(msg),
    }
}

/// The (low, high) watermarks librdkafka cached for a partition from its
/// last fetch response (no request; the rdkafka crate does not wrap this
/// call). `-1` where unknown.
fn cached_watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    tp: &TopicPartition,
) -> Option<(i64, i64)> {
    use rdkafka::bindings as rd;
    let topic = std::ffi::CString::new(tp.topic.as_str()).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is live for the borrow of `consumer`; the
    // topic is a NUL-terminated string alive across the call; the two out
    // pointers are valid i64s on this stack frame.
    let err = unsafe {
        rd::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            tp.partition,
            &mut low,
            &mut high,
        )
    };
    (err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR).then_some((low, high))
}

fn message_headers(msg: &BorrowedMessage<'_>) -> Headers {
    use rdkafka::bindings as rd;
    let mut out = Vec::new();
    // SAFETY: `msg.ptr()` is a live message owned by the consumer for the
    // lifetime of `msg`. The headers object librdkafka returns belongs to
    // that message; names are NUL-terminated strings and values
    // (pointer, size) byte ranges inside it, all read (copied) here while
    // `msg` is borrowed. Indices stay below the reported count.
    unsafe {
        let mut headers: *mut rd::rd_kafka_headers_t = std::ptr::null_mut();
        let err = rd::rd_kafka_message_headers(msg.ptr(), &mut headers);
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR || headers.is_null() {
            return out;
        }
        let count = rd::rd_kafka_header_cnt(headers);
        for idx in 0..count {
            let mut name: *const std::os::raw::c_char = std::ptr::null();
            let mut value: *const std::os::raw::c_void = std::ptr::null();
            let mut size: usize = 0;
            let err = rd::rd_kafka_header_get_all(headers, idx, &mut name, &mut value, &mut size);
            if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
                break;
            }
            let key = if name.is_null() {
                String::new()
            } else {
                CStr::from_ptr(name).to_string_lossy().into_owned()
            };
            let value = if value.is_null() {
                None
            } else if size == 0 {
                Some(Vec::new())
            } else {
                Some(std::slice::from_raw_parts(value.cast::<u8>(), size).to_vec())
            };
            out.push((key, value));
        }
    }
    out
}

/// Locks a mutex, recovering from poisoning (the guarded data stays valid).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn forward_log(client: &str, level: RDKafkaLogLevel, fac: &str, message: &str) {
    // The extra properties go to every client; librdkafka warns about each
    // one that does not apply to a client's type.
    let level = if fac == "CONFWARN" && message.contains("property and will be ignored by this") {
        RDKafkaLogLevel::Debug
    } else {
        level
    };
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => error!(target: "librdkafka", client, fac, "{message}"),
        RDKafkaLogLevel::Warning => warn!(target: "librdkafka", client, fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            info!(target: "librdkafka", client, fac, "{message}")
        }
        RDKafkaLogLevel::Debug => debug!(target: "librdkafka", client, fac, "{message}"),
    }
}

/// Reports a client-level error. A consumer's errors are also returned by
/// its poll, which handles (and logs) them; they are only traced here.
fn forward_error(client: &str, error: &KafkaError, reason: &str, consumer: bool) {
    if consumer {
        debug!(target: "librdkafka", client, %error, "{reason}");
    } else {
        warn!(target: "librdkafka", client, %error, "{reason}");
    }
}

/// Context of the admin client and restore consumer: librdkafka logs and
/// errors go to `tracing`.
struct LogContext {
    client: &'static str,
    consumer: bool,
}

impl LogContext {
    fn new(client: &'static str) -> Self {
        LogContext {
            client,
            consumer: false,
        }
    }

    fn consumer(client: &'static str) -> Self {
        LogContext {
            client,
            consumer: true,
        }
    }
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(self.client, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        forward_error(self.client, &error, reason, self.consumer);
    }
}

impl ConsumerContext for LogContext {}

/// Context of the group consumer: records rebalances for `poll`.
#[derive(Default)]
struct GroupContext {
    events: Mutex<VecDeque<PollEvent>>,
}

impl GroupContext {
    /// Moves recorded events to `out`, after the records collected so far.
    /// Returns whether there were any.
    fn drain_into(&self, out: &mut Vec<PollEvent>, batch: &mut Vec<ConsumedRecord>) -> bool {
        let mut events = lock(&self.events);
        if events.is_empty() {
            return false;
        }
        if !batch.is_empty() {
            out.push(PollEvent::Records(std::mem::take(batch)));
        }
        out.extend(events.drain(..));
        true
    }

    fn record(&self, event: PollEvent) {
        lock(&self.events).push_back(event);
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    let mut tps: Vec<TopicPartition> = tpl
        .elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect();
    tps.sort();
    tps
}

/// `a-0, a-1` for logs.
fn list(tps: &[TopicPartition]) -> String {
    tps.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log("consumer", level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        forward_error("consumer", &error, reason, true);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let tps = partitions_of(tpl);
                info!(
                    partitions = %list(&tps),
                    lost = consumer.assignment_lost(),
                    "partitions revoked"
                );
                if !tps.is_empty() {
                    self.record(PollEvent::Revoked(tps));
                }
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let tps = partitions_of(tpl);
            info!(partitions = %list(&tps), "partitions assigned");
            if !tps.is_empty() {
                self.record(PollEvent::Assigned(tps));
            }
        }
    }
}

/// Context of the producer: remembers delivery failures until the next
/// commit checks them.
#[derive(Default)]
struct DeliveryContext {
    failures: Mutex<DeliveryFailures>,
}

#[derive(Default)]
struct DeliveryFailures {
    count: u64,
    first: Option<(String, i32, KafkaError)>,
}

impl DeliveryContext {
    /// The recorded failures as an error (they stay recorded).
    fn failure(&self) -> Option<BackendError> {
        let failures = lock(&self.failures);
        let (topic, partition, error) = failures.first.as_ref()?;
        let msg = format!(
            "{} record(s) could not be delivered; first to {topic}-{partition}: {error}",
            failures.count
        );
        Some(match error.rdkafka_error_code() {
            Some(code) if is_fencing(code) => BackendError::Fenced(msg),
            _ => BackendError::Fatal(msg),
        })
    }

    fn clear(&self) {
        *lock(&self.failures) = DeliveryFailures::default();
    }
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log("producer", level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        forward_error("producer", &error, reason, false);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, msg)) = result {
            debug!(topic = msg.topic(), partition = msg.partition(), %error, "delivery failed");
            let mut failures = lock(&self.failures);
            failures.count += 1;
            if failures.first.is_none() {
                failures.first = Some((msg.topic().to_string(), msg.partition(), error.clone()));
            }
        }
    }
}

/// Drives a future to completion on this thread. rdkafka's admin futures
/// are completed by the admin client's own thread, so no runtime is needed.
fn block_on<F: Future>(future: F) -> F::Output {
    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}
