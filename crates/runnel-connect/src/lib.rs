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
//! * Headers go through the `header.converter` (worker or connector
//!   setting): Kafka's SimpleHeaderConverter by default (text out; typed
//!   back in: booleans, integers, floats, else strings), or String-,
//!   Json- or ByteArrayConverter.
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
//!   A retriable converter failure (the schema registry unreachable or
//!   answering 5xx) is tried again — 300 ms, doubling up to
//!   `errors.retry.delay.max.ms` — until `errors.retry.timeout` (0 by
//!   default: not at all; -1: for ever), as Kafka's
//!   RetryWithToleranceOperator; then, as any other record error, it
//!   follows `errors.tolerance` (none|all), `errors.log.enable`
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
//! **No task on two workers during a reassignment.** Workers act on
//! the new membership each when it reads it, so the worker gaining a
//! task may see the change before the worker losing it. A barrier in
//! the status topic orders the two, as Kafka Connect's eager protocol
//! does (there a worker stops its tasks before it rejoins and the
//! coordinator completes the rebalance only when every member rejoined):
//! the loser stops the task (its `stop`, its last offset commit) and
//! only then writes UNASSIGNED for it under its own worker id; the
//! gainer starts a task only when the task's last status is its own, or
//! not an active one (RUNNING, PAUSED, RESTARTING), or names a worker
//! that is not a member of the group any more (it left, or its session
//! timed out) — until then the task waits (its status keeps showing the
//! old owner) and is looked at again after each read of the status
//! topic. Members are matched to statuses through the REST address each
//! member advertises in its `client.id`, which is its worker id. A
//! worker shutting down stops and releases its tasks before it leaves
//! the group, so the survivors start them only after. A worker that
//! reads a status naming itself as running a task it does not run (it
//! ran it before it restarted under the same id) releases it, so the
//! new owner is not kept waiting. What stays: a worker that dies (or
//! whose task does not stop within 10 s, after which it is left behind)
//! is given up on when its session times out or it releases late, as in
//! Kafka Connect; exactly-once sources fence such a zombie (one
//! transactional id per task: the later copy fences the earlier, whose
//! open transaction is aborted, and a fenced copy — or one whose start
//! failed with a retriable error — is started again after a backoff
//! instead of being left FAILED, `task.rs`). Connectors (the part that
//! makes task configs) are not behind the barrier: two workers may both
//! compute task configs for a moment, which writes the same configs
//! once more at worst. The in-process
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
