//! A Kafka-Connect-compatible connector runtime: workers that run source and sink connectors written against `runnel-connect-api`, their REST API (port 8083), converters and transforms, with configs, offsets and statuses in compacted topics of any cluster.
//!
//! # Shape
//!
//! * [`Worker`] (`worker.rs`) reads the config topic (replayed at start,
//!   then followed every 200 ms) into a [`storage::ConfigState`] and
//!   *reconciles*: for each connector whose target state is STARTED or
//!   PAUSED it asks the plugin for task configs (written back as
//!   `task-…`/`commit-…` records when they changed) and runs one thread per
//!   task (`task.rs`); STOPPED stops the tasks and writes an empty task set,
//!   as Kafka does. Statuses go to the status topic and memory.
//! * Source tasks: `poll` → transforms → converters → partition (murmur2 of
//!   the key bytes, as the Java producer; keyless records round robin) →
//!   send. At-least-once: the records are flushed, then the last offset of
//!   each source partition is written to the offsets topic, then
//!   `SourceTask::commit` is called. Exactly-once
//!   (`exactly.once.source.support=enabled`, KIP-618): the records of one
//!   poll and their offset records are one transaction of a producer whose
//!   transactional id is `<group.id>-<connector>-<task>`; a restarted
//!   task fences the previous one and its open transaction is aborted, so
//!   a crash at any moment neither loses nor repeats records for
//!   read_committed readers.
//! * Sink tasks: one consumer group `connect-<name>` per connector;
//!   poll → converters → transforms → `put` (a `Retriable` error puts the
//!   same records again after a backoff); every `offset.flush.interval.ms`
//!   (1 s by default here) `flush`, then the consumed offsets commit.
//!   Record errors follow `errors.tolerance` (none|all), `errors.log.enable`
//!   and, for sinks, `errors.deadletterqueue.topic.name` (original bytes,
//!   `__connect.errors.*` headers with
//!   `errors.deadletterqueue.context.headers.enable`).
//! * [`api`]: Kafka Connect's REST API on axum, mounted by
//!   `runnel-service`; [`service::ConnectService`] is the service of
//!   `runnel serve` and `runnel connect`.
//! * The record formats of the three topics are Kafka Connect's own
//!   ([`storage`] documents them), so a worker can take over topics an
//!   Apache Kafka Connect cluster wrote and the other way round. Topics:
//!   `connect-configs` (1 partition), `connect-offsets` (25 partitions, as
//!   Kafka's default), `connect-status` (5), all compacted, created through
//!   `Cluster::create_topic`; names and counts are worker properties.
//!
//! # Several workers
//!
//! Not yet: a worker runs every connector of its config topic. Two workers
//! on one `group.id` would both run every task (exactly-once sources
//! would fence each other's transactions, so nothing is duplicated there,
//! but they would take turns failing). Run one worker per group.
//!
//! **Architecture invariants:** the runtime knows connectors only through
//! `runnel-connect-api` (the built-in ones in [`builtin`] too) and reaches
//! the log only through `runnel_cluster::Cluster`.

pub mod api;
pub mod builtin;
pub mod convert;
pub mod error;
pub mod service;
pub mod storage;
pub mod task;
pub mod transforms;
pub mod validate;
pub mod worker;

pub use error::WorkerError;
pub use service::ConnectService;
pub use worker::{ConnectorInfo, Worker, WorkerConfig};
