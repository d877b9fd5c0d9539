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
//! Workers of one `group.id` share the connectors and tasks of their
//! config topic without a leader. Each joins the group as a consumer of
//! the config topic (a `Backend` for the application `group.id`) on a
//! membership thread that keeps polling (so the coordinator sees it
//! alive); after every rebalance, and every 2 s, it reads
//! `group_members()` and, when the member ids changed, computes
//! [`assign::assign`]: connectors by name, then tasks by connector and
//! number, dealt round robin over the sorted member ids. Every worker
//! computes the same split from the same config topic, so no one hands
//! it out. Reassignment is eager: a worker stops what it no longer owns
//! and starts what it now owns. A dead worker leaves the group after the
//! session timeout (librdkafka's `session.timeout.ms`, 45 s by default;
//! `--kafka-property` sets it) and its work moves. The owner of a
//! connector makes and writes its task configs and its status; the owner
//! of a task runs it and writes its status; every worker follows the
//! status topic, so each REST API answers for all. A worker that reads
//! another worker's status for something it runs writes its own again,
//! so the owner's status is the topic's last word once views of the group
//! agree.
//!
//! Any worker answers every endpoint. Config changes, pause, resume,
//! stop and offsets go through the config and offsets topics; restarts
//! must act where the connector or task runs, so the receiving worker
//! forwards them ([`Worker::route`]) to the owner's REST API with
//! `forward=false`, as Kafka Connect does: a task restart to the task's
//! owner; a connector restart to the connector's owner; with
//! `includeTasks`/`onlyFailed`, the receiver picks the tasks (from the
//! status topic) and forwards each. Each worker advertises its REST
//! address (`worker_id`: the listener, or `rest.advertised.host.name` /
//! `rest.advertised.port`) in its group member's `client.id`
//! (`…@host:port`), so the owner's address comes from the same
//! assignment every worker computes; where a member advertises none, the
//! worker named in the item's status is asked. A forwarded request for
//! something the receiver does not run (the group moved it meanwhile)
//! and an owner that does not answer are Kafka's 409 "conflicting
//! operation (e.g. worker rebalance)".
//!
//! **Two copies of a task during a reassignment.** There is no barrier
//! between one worker stopping what it lost and another starting what it
//! gained: each acts when it reads the new membership (after its
//! rebalance event, at most every 2 s), so a task can run on both from
//! the moment the gainer sees the change until the loser sees it and its
//! task thread stops — under a second as a rule, a few seconds on a
//! loaded machine. What that costs: an at-least-once source's two copies
//! both poll from the last stored offset and both send, so that window's
//! records may be in the topic twice (what at-least-once allows; a
//! datagen or file source duplicates them, the PostgreSQL source cannot
//! open its slot twice and its second copy retries until the first lets
//! go). An exactly-once source's copies share one transactional id:
//! the later one fences the earlier, whose open transaction is aborted,
//! so read_committed readers see each record once; a fenced copy (and a
//! copy whose start failed with a retriable error) is started again after
//! a backoff instead of being left FAILED (`task.rs`), so the copy that
//! keeps the task fences the other back. Sink copies are members of the
//! connector's consumer group and split its partitions (records in
//! flight at the switch are delivered again, as after any sink
//! rebalance). Closing the window would take Kafka Connect's
//! coordinator-driven (incremental) protocol, with a leader handing out
//! revocations before assignments. The in-process
//! `LocalCluster` backend reports only its own member, so `runnel serve`
//! on its own log is a group of one: remote `runnel connect` workers on
//! that broker need another `group.id` (or the embedded worker turned
//! off with `--no-connect`), or both sides would run everything. Apache Kafka Connect workers cannot
//! join the same group (their group protocol is `connect`, ours
//! `consumer`), though they read the same topics.
//!
//! **Architecture invariants:** the runtime knows connectors only through
//! `runnel-connect-api` (the built-in ones in [`builtin`] too) and reaches
//! the log only through `runnel_cluster::Cluster`.

pub mod api;
pub mod assign;
pub mod builtin;
pub mod convert;
pub mod error;
mod forward;
pub mod registry;
pub mod service;
pub mod storage;
pub mod task;
pub mod transforms;
pub mod validate;
pub mod worker;

pub use error::WorkerError;
pub use service::ConnectService;
pub use worker::{ConnectorInfo, Route, Worker, WorkerConfig};
