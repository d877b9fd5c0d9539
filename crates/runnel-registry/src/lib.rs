//! A Confluent-compatible Schema Registry: the REST API (port 8081) over schemas kept in the compacted _schemas topic of any cluster.
//!
//! [`Registry`] holds what the registry knows and decides every change;
//! [`api()`] is the REST API (Confluent's paths, bodies, status codes and
//! `error_code`s; content types `application/vnd.schemaregistry.v1+json`,
//! `application/vnd.schemaregistry+json` and `application/json` are all
//! taken); [`RegistryService`] runs both as a service of `runnel serve`.
//! Schemas are parsed, canonicalized and checked for compatibility by
//! `runnel-schema`; the log is reached only through
//! `runnel_cluster::Cluster`, so the registry runs on the embedded broker
//! and on any Kafka-compatible cluster alike. This crate knows nothing of
//! the broker, SQL or the stream engine.
//!
//! # The `_schemas` topic
//!
//! Everything lives in one compacted topic of one partition, `_schemas`
//! (Confluent's `kafkastore.topic`), in the records Confluent's registry
//! writes, so either registry can read what the other wrote. Keys and
//! values are JSON objects:
//!
//! | key | value |
//! |---|---|
//! | `{"keytype":"SCHEMA","subject":S,"version":V,"magic":1}` | `{"subject":S,"version":V,"id":N,"schemaType":T,"references":[{"name","subject","version"}…],"schema":TEXT,"deleted":B}` (`schemaType` absent means AVRO, `references` absent when none), or a tombstone: the version is permanently deleted |
//! | `{"keytype":"CONFIG","subject":S,"magic":0}` (no `subject`: global) | `{"subject":S,"compatibilityLevel":L,"normalize":B}`, or a tombstone: back to the global config (global: to BACKWARD) |
//! | `{"keytype":"MODE","subject":S,"magic":0}` (no `subject`: global) | `{"subject":S,"mode":M}`, or a tombstone |
//! | `{"keytype":"DELETE_SUBJECT","subject":S,"magic":0}` | `{"subject":S,"version":V}`: versions up to `V` are soft-deleted |
//! | `{"keytype":"CLEAR_SUBJECT","subject":S,"magic":0}` | `{"subject":S}`: the subject's soft-deleted versions are forgotten |
//!
//! Other key types (`NOOP`, Confluent's contexts and associations) are
//! read past, as are fields this registry does not know (`md5`,
//! `metadata`, `ruleSet`…). A soft delete of one version rewrites its
//! SCHEMA record with `"deleted":true`; a permanent delete writes its
//! tombstone (and, for the last version of a subject, the tombstones of
//! the subject's config and mode). Records Runnel writes carry a header,
//! `runnel-registry-write`, that other readers ignore.
//!
//! # State, ids and several instances
//!
//! Every instance replays the topic at start and then follows it (every
//! 200 ms, [`RegistryConfig::poll`]), applying records in offset order
//! ([`state`]); the same records give every instance the same state. Ids
//! are global: a new schema gets the highest id seen plus one, the same
//! schema (canonical form, type and references) registered again, under
//! any subject, gets its existing id. An id whose last version was
//! permanently deleted is not given again while the instance runs, nor
//! after a restart as long as the tombstone is in the topic (until
//! compaction drops it after `delete.retention.ms`) — the guarantee
//! Confluent's registry gives, no more.
//!
//! Writes have one writer at a time, elected by the log itself: a write
//! goes through a transactional producer whose transactional id is the
//! same on every instance ([`RegistryConfig::writer_id`]). An instance
//! that is not the current writer becomes it by initializing that
//! producer, which fences the previous writer (its next commit fails) and
//! completes or aborts its open transaction; it then reads the topic to
//! its end, decides the write on that state (validity, compatibility, the
//! next id and version), and commits the records in one transaction. A
//! commit can only succeed if no other instance became the writer since
//! this one read the topic, so every committed write was decided on
//! everything committed before it: two instances registering at the same
//! moment never hand out one id twice — the loser's commit is fenced, and
//! it retries on the new state. The writer answers once it has read its
//! own records back (they carry its write mark), so an acknowledged write
//! is in the topic and in this instance's state. Readers read
//! `read_committed`. A Confluent registry is not part of the election (it
//! writes without transactions and reads uncommitted records, so it could
//! see a write Runnel aborted after a conflict): share a topic with one to
//! move from one registry to the other, with one of them writing at a
//! time, not to run both as writers.
//!
//! Reads are answered from the local state, without a round trip to the
//! topic: an instance sees another's writes within a poll interval.
//!
//! Every registry process must therefore derive the same transactional
//! id: `runnel serve` gives the registry's cluster — a `KafkaCluster`, or
//! the in-process broker's `LocalCluster` for the embedded registry — the
//! fixed instance id [`service::KAFKA_INSTANCE_ID`] (each otherwise takes
//! one of its own), so the embedded registry and registries reaching the
//! same broker with `--bootstrap-servers` fence each other too.

pub mod api;
mod error;
pub mod record;
mod registry;
pub mod service;
pub mod state;

pub use api::api;
pub use error::RegistryError;
pub use registry::{
    Compatibility, Config, Registry, RegistryConfig, SchemaById, SchemaRequest, SubjectSchema,
    VersionSpec,
};
pub use service::RegistryService;
pub use state::{Level, Mode};

#[cfg(test)]
mod tests;
