//! A shape check of request bodies, run before the `kafka-protocol` decoder.
//!
//! The codec's array decoders call `Vec::with_capacity(n)` with `n` read
//! straight from the wire, so a few bytes claiming 2^31 elements make the
//! process attempt a huge allocation and abort, which no `catch_unwind` can
//! stop. [`check_request_body`] walks a body against a declarative schema of
//! each supported request (the tables below) without allocating per element
//! and rejects it unless every length and count is backed by bytes that are
//! actually in the frame:
//!
//! * an array count may not exceed the bytes left (each element takes at
//!   least one byte), and the walk then visits every element, so an accepted
//!   body really holds all the elements it claims;
//! * a string, bytes or records length may not run past the end, and may be
//!   negative only as `-1` (or compact `0`) in a nullable field;
//! * an unsigned varint may be at most 5 bytes and may not exceed `u32::MAX`
//!   (so it means the same number to this check and to the codec);
//! * in flexible versions every struct ends with a tagged-field section.
//!   Unknown tags are skipped by their size prefix. Tags the codec knows are
//!   walked as their type, because the codec decodes those straight from the
//!   frame *ignoring* the size prefix: their value must use exactly the
//!   declared size, or this check and the codec would parse the rest of the
//!   body differently. A known tag outside its versions is rejected (the codec
//!   rejects it too).
//!
//! When this check accepts a body, the codec reads the same structure (the
//! tests hold it to consuming the same bytes), so each `with_capacity(n)` it
//! makes is for `n` elements that are really in the frame: decoding allocates
//! a small multiple of the frame size. Bytes after the end of the body are
//! allowed, as the codec ignores them too.
//!
//! The field layouts were read from the `kafka-protocol` 0.18 decoders
//! (`impl Decodable` in `src/messages/*_request.rs`): a field's versions are
//! its `if version >= N` / `version <= N` conditions; a field is nullable when
//! the codec decodes it into an `Option`; an API's fields are all compact from
//! its first flexible version on. Adding an API is a table entry: its structs
//! as `Ty::Struct` constants and one line in `APIS`, plus a sample request in
//! the tests, which encode a populated request of every covered version with
//! the codec and check the schema consumes exactly the encoded bytes.

use kafka_protocol::messages::ApiKey;

/// Why a request body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// The (api, version) pair has no schema here.
    #[error("no shape for api {api} v{version}")]
    NoShape { api: i16, version: i16 },
    /// The body does not fit the schema of its request.
    #[error("{path} at byte {offset} of the body: {problem}")]
    Malformed {
        /// Where in the request, e.g. `topic_data[1].partition_data[0].records`.
        path: String,
        /// Offset from the start of the body (just after the request header).
        offset: usize,
        problem: Problem,
    },
}

/// What exactly was wrong in a [`ShapeError::Malformed`] body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("needs {needed} bytes but only {left} are left")]
    Truncated { needed: u64, left: usize },
    #[error("claims {count} elements but only {left} bytes are left")]
    TooManyElements { count: u64, left: usize },
    #[error("negative length {0}")]
    NegativeLength(i32),
    #[error("null in a field that is not nullable")]
    UnexpectedNull,
    #[error("unsigned varint longer than 5 bytes or above u32::MAX")]
    BadVarint,
    #[error("tagged field {tag} does not exist in this version")]
    TagNotInVersion { tag: u32 },
    #[error("tagged field {tag} declares {declared} bytes but its value takes {used}")]
    TagSizeMismatch {
        tag: u32,
        declared: usize,
        used: usize,
    },
}

impl ShapeError {
    fn at(offset: usize, problem: Problem) -> ShapeError {
        ShapeError::Malformed {
            path: String::new(),
            offset,
            problem,
        }
    }

    /// Prefixes the path with a field name (errors bubble up from the leaf).
    fn in_field(mut self, name: &str) -> ShapeError {
        if let ShapeError::Malformed { path, .. } = &mut self {
            let sep = if path.is_empty() || path.starts_with('[') {
                ""
            } else {
                "."
            };
            *path = format!("{name}{sep}{path}");
        }
        self
    }

    /// Prefixes the path with an array index.
    fn at_index(mut self, index: u64) -> ShapeError {
        if let ShapeError::Malformed { path, .. } = &mut self {
            let sep = if path.is_empty() || path.starts_with('[') {
                ""
            } else {
                "."
            };
            *path = format!("[{index}]{sep}{path}");
        }
        self
    }
}

/// Checks, without allocating per element, that every array count in a request body is
/// no larger than the bytes left in the frame (each element takes at least one byte),
/// so that decoding cannot be made to allocate more than a small multiple of the frame size.
///
/// `body` is what follows the request header. Every (api, version) the broker
/// accepts has a schema; any other pair is refused with
/// [`ShapeError::NoShape`] rather than waved through.
pub fn check_request_body(api: i16, version: i16, body: &[u8]) -> Result<(), ShapeError> {
    body_len(api, version, body).map(|_| ())
}

/// Like [`check_request_body`], returning how many bytes the body takes.
fn body_len(api: i16, version: i16, body: &[u8]) -> Result<usize, ShapeError> {
    let shape = APIS
        .iter()
        .find(|s| s.key as i16 == api && s.min <= version && version <= s.max)
        .ok_or(ShapeError::NoShape { api, version })?;
    let mut walker = Walker {
        body,
        pos: 0,
        end: body.len(),
        version,
        flexible: version >= shape.flexible_since,
    };
    walker.walk(&shape.body)?;
    Ok(walker.pos)
}

// ---------------------------------------------------------------------------
// The schema language.

/// The wire type of a field.
#[derive(Debug, Clone, Copy)]
enum Ty {
    Bool,
    I8,
    I16,
    I32,
    I64,
    #[allow(dead_code)] // no covered request has one yet
    F64,
    Uuid,
    /// Int16 length (compact: varint length + 1), then UTF-8 bytes.
    Str {
        nullable: bool,
    },
    /// Int32 length (compact: varint length + 1), then bytes. Records too.
    Bytes {
        nullable: bool,
    },
    /// Int32 count (compact: varint count + 1), then each element.
    Array {
        of: &'static Ty,
        nullable: bool,
    },
    /// The fields in order, then (flexible versions) the tagged-field section.
    Struct(&'static [Field]),
    /// A nullable struct: Int8 -1 for null, 1 followed by the struct.
    /// (The codec reads any other marker as null, and so does this check.)
    OptionStruct(&'static [Field]),
}

/// One field of a struct, present in versions `since..=until`.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: &'static str,
    since: i16,
    until: i16,
    /// `Some` for a tagged field, which lives in the tagged-field section.
    tag: Option<u32>,
    ty: Ty,
}

impl Field {
    const fn since(mut self, version: i16) -> Field {
        self.since = version;
        self
    }

    const fn until(mut self, version: i16) -> Field {
        self.until = version;
        self
    }

    const fn tag(mut self, tag: u32) -> Field {
        self.tag = Some(tag);
        self
    }

    fn in_version(&self, version: i16) -> bool {
        self.since <= version && version <= self.until
    }
}

/// A field present in every version of its message.
const fn f(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        since: 0,
        until: i16::MAX,
        tag: None,
        ty,
    }
}

const fn array(of: &'static Ty) -> Ty {
    Ty::Array {
        of,
        nullable: false,
    }
}

const fn nullable_array(of: &'static Ty) -> Ty {
    Ty::Array { of, nullable: true }
}

const BOOL: Ty = Ty::Bool;
const I8: Ty = Ty::I8;
const I16: Ty = Ty::I16;
const I32: Ty = Ty::I32;
const I64: Ty = Ty::I64;
const UUID: Ty = Ty::Uuid;
const STR: Ty = Ty::Str { nullable: false };
const NULLABLE_STR: Ty = Ty::Str { nullable: true };
const BYTES: Ty = Ty::Bytes { nullable: false };
/// A record set: nullable bytes.
const RECORDS: Ty = Ty::Bytes { nullable: true };

/// Never flexible.
const NOT_FLEXIBLE: i16 = i16::MAX;

/// The schema of one request over a range of versions.
struct ApiShape {
    key: ApiKey,
    min: i16,
    max: i16,
    /// First version using compact strings/arrays and tagged fields.
    flexible_since: i16,
    /// A [`Ty::Struct`].
    body: Ty,
}

const fn api(key: ApiKey, min: i16, max: i16, flexible_since: i16, body: Ty) -> ApiShape {
    ApiShape {
        key,
        min,
        max,
        flexible_since,
        body,
    }
}

/// Every request this module knows, with the versions it covers.
const APIS: &[ApiShape] = &[
    api(ApiKey::Produce, 3, 11, 9, PRODUCE),
    api(ApiKey::Fetch, 4, 12, 12, FETCH),
    api(ApiKey::ListOffsets, 1, 7, 6, LIST_OFFSETS),
    api(ApiKey::Metadata, 0, 12, 9, METADATA),
    api(ApiKey::OffsetCommit, 2, 9, 8, OFFSET_COMMIT),
    api(ApiKey::OffsetFetch, 1, 9, 6, OFFSET_FETCH),
    api(ApiKey::FindCoordinator, 0, 4, 3, FIND_COORDINATOR),
    api(ApiKey::JoinGroup, 0, 9, 6, JOIN_GROUP),
    api(ApiKey::Heartbeat, 0, 4, 4, HEARTBEAT),
    api(ApiKey::LeaveGroup, 0, 5, 4, LEAVE_GROUP),
    api(ApiKey::SyncGroup, 0, 5, 4, SYNC_GROUP),
    api(ApiKey::DescribeGroups, 0, 6, 5, DESCRIBE_GROUPS),
    api(ApiKey::ListGroups, 0, 5, 3, LIST_GROUPS),
    api(ApiKey::ApiVersions, 0, 3, 3, API_VERSIONS),
    api(ApiKey::CreateTopics, 2, 7, 5, CREATE_TOPICS),
    api(ApiKey::DeleteTopics, 1, 6, 4, DELETE_TOPICS),
    api(ApiKey::DeleteRecords, 0, 2, 2, DELETE_RECORDS),
    api(ApiKey::InitProducerId, 0, 5, 2, INIT_PRODUCER_ID),
    api(ApiKey::AddPartitionsToTxn, 0, 3, 3, ADD_PARTITIONS_TO_TXN),
    api(ApiKey::AddOffsetsToTxn, 0, 3, 3, ADD_OFFSETS_TO_TXN),
    api(ApiKey::EndTxn, 0, 5, 3, END_TXN),
    api(ApiKey::TxnOffsetCommit, 0, 3, 3, TXN_OFFSET_COMMIT),
    api(ApiKey::DescribeConfigs, 1, 4, 4, DESCRIBE_CONFIGS),
    api(ApiKey::AlterConfigs, 0, 2, 2, ALTER_CONFIGS),
    api(ApiKey::CreatePartitions, 0, 3, 2, CREATE_PARTITIONS),
    api(ApiKey::DeleteGroups, 0, 2, 2, DELETE_GROUPS),
    api(
        ApiKey::IncrementalAlterConfigs,
        0,
        1,
        1,
        INCREMENTAL_ALTER_CONFIGS,
    ),
    api(ApiKey::OffsetDelete, 0, 0, NOT_FLEXIBLE, OFFSET_DELETE),
    api(ApiKey::DescribeCluster, 0, 1, 0, DESCRIBE_CLUSTER),
    api(ApiKey::DescribeLogDirs, 1, 4, 2, DESCRIBE_LOG_DIRS),
    api(
        ApiKey::ConsumerGroupHeartbeat,
        0,
        1,
        0,
        CONSUMER_GROUP_HEARTBEAT,
    ),
    api(
        ApiKey::ConsumerGroupDescribe,
        0,
        1,
        0,
        CONSUMER_GROUP_DESCRIBE,
    ),
    api(ApiKey::DescribeProducers, 0, 0, 0, DESCRIBE_PRODUCERS),
    api(ApiKey::DescribeTransactions, 0, 0, 0, DESCRIBE_TRANSACTIONS),
    api(ApiKey::ListTransactions, 0, 2, 0, LIST_TRANSACTIONS),
    api(
        ApiKey::DescribeTopicPartitions,
        0,
        0,
        0,
        DESCRIBE_TOPIC_PARTITIONS,
    ),
    api(ApiKey::ShareGroupHeartbeat, 1, 1, 1, SHARE_GROUP_HEARTBEAT),
    api(ApiKey::ShareGroupDescribe, 1, 1, 1, SHARE_GROUP_DESCRIBE),
    api(ApiKey::ShareFetch, 1, 1, 1, SHARE_FETCH),
    api(ApiKey::ShareAcknowledge, 1, 1, 1, SHARE_ACKNOWLEDGE),
    api(
        ApiKey::DescribeShareGroupOffsets,
        0,
        0,
        0,
        DESCRIBE_SHARE_GROUP_OFFSETS,
    ),
    api(
        ApiKey::AlterShareGroupOffsets,
        0,
        0,
        0,
        ALTER_SHARE_GROUP_OFFSETS,
    ),
    api(
        ApiKey::DeleteShareGroupOffsets,
        0,
        0,
        0,
        DELETE_SHARE_GROUP_OFFSETS,
    ),
];

// ---------------------------------------------------------------------------
// Request layouts. Versions outside an API's covered range are written down
// where the codec has them, but only the covered range is tested.

// Produce (0)
const PRODUCE_PARTITION: Ty = Ty::Struct(&[f("index", I32), f("records", RECORDS)]);
const PRODUCE_TOPIC: Ty = Ty::Struct(&[
    f("name", STR).until(12),
    f("topic_id", UUID).since(13),
    f("partition_data", array(&PRODUCE_PARTITION)),
]);
const PRODUCE: Ty = Ty::Struct(&[
    f("transactional_id", NULLABLE_STR),
    f("acks", I16),
    f("timeout_ms", I32),
    f("topic_data", array(&PRODUCE_TOPIC)),
]);

// Fetch (1)
const FETCH_PARTITION: Ty = Ty::Struct(&[
    f("partition", I32),
    f("current_leader_epoch", I32).since(9),
    f("fetch_offset", I64),
    f("last_fetched_epoch", I32).since(12),
    f("log_start_offset", I64).since(5),
    f("partition_max_bytes", I32),
    f("replica_directory_id", UUID).since(17).tag(0),
    f("high_watermark", I64).since(18).tag(1),
]);
const FETCH_TOPIC: Ty = Ty::Struct(&[
    f("topic", STR).until(12),
    f("topic_id", UUID).since(13),
    f("partitions", array(&FETCH_PARTITION)),
]);
const FETCH_FORGOTTEN_TOPIC: Ty = Ty::Struct(&[
    f("topic", STR).since(7).until(12),
    f("topic_id", UUID).since(13),
    f("partitions", array(&I32)).since(7),
]);
const FETCH_REPLICA_STATE: Ty = Ty::Struct(&[
    f("replica_id", I32).since(15),
    f("replica_epoch", I64).since(15),
]);
const FETCH: Ty = Ty::Struct(&[
    f("replica_id", I32).until(14),
    f("max_wait_ms", I32),
    f("min_bytes", I32),
    f("max_bytes", I32),
    f("isolation_level", I8),
    f("session_id", I32).since(7),
    f("session_epoch", I32).since(7),
    f("topics", array(&FETCH_TOPIC)),
    f("forgotten_topics_data", array(&FETCH_FORGOTTEN_TOPIC)).since(7),
    f("rack_id", STR).since(11),
    f("cluster_id", NULLABLE_STR).since(12).tag(0),
    f("replica_state", FETCH_REPLICA_STATE).since(15).tag(1),
]);

// ListOffsets (2)
const LIST_OFFSETS_PARTITION: Ty = Ty::Struct(&[
    f("partition_index", I32),
    f("current_leader_epoch", I32).since(4),
    f("timestamp", I64),
]);
const LIST_OFFSETS_TOPIC: Ty = Ty::Struct(&[
    f("name", STR),
    f("partitions", array(&LIST_OFFSETS_PARTITION)),
]);
const LIST_OFFSETS: Ty = Ty::Struct(&[
    f("replica_id", I32),
    f("isolation_level", I8).since(2),
    f("topics", array(&LIST_OFFSETS_TOPIC)),
    f("timeout_ms", I32).since(10),
]);

// Metadata (3)
const METADATA_TOPIC: Ty = Ty::Struct(&[f("topic_id", UUID).since(10), f("name", NULLABLE_STR)]);
const METADATA: Ty = Ty::Struct(&[
    f("topics", nullable_array(&METADATA_TOPIC)),
    f("allow_auto_topic_creation", BOOL).since(4),
    f("include_cluster_authorized_operations", BOOL)
        .since(8)
        .until(10),
    f("include_topic_authorized_operations", BOOL).since(8),
]);

// OffsetCommit (8)
const OFFSET_COMMIT_PARTITION: Ty = Ty::Struct(&[
    f("partition_index", I32),
    f("committed_offset", I64),
    f("committed_leader_epoch", I32).since(6),
    f("committed_metadata", NULLABLE_STR),
]);
const OFFSET_COMMIT_TOPIC: Ty = Ty::Struct(&[
    f("name", STR),
    f("partitions", array(&OFFSET_COMMIT_PARTITION)),
]);
const OFFSET_COMMIT: Ty = Ty::Struct(&[
    f("group_id", STR),
    f("generation_id_or_member_epoch", I32),
    f("member_id", STR),
    f("group_instance_id", NULLABLE_STR).since(7),
    f("retention_time_ms", I64).until(4),
    f("topics", array(&OFFSET_COMMIT_TOPIC)),
]);

// OffsetFetch (9)
const OFFSET_FETCH_TOPIC: Ty = Ty::Struct(&[
    f("name", STR).until(7),
    f("partition_indexes", array(&I32)).until(7),
]);
const OFFSET_FETCH_GROUP_TOPIC: Ty = Ty::Struct(&[
    f("name", STR).since(8),
    f("partition_indexes", array(&I32)).since(8),
]);
const OFFSET_FETCH_GROUP: Ty = Ty::Struct(&[
    f("group_id", STR).since(8),
    f("member_id", NULLABLE_STR).since(9),
    f("member_epoch", I32).since(9),
    f("topics", nullable_array(&OFFSET_FETCH_GROUP_TOPIC)).since(8),
]);
const OFFSET_FETCH: Ty = Ty::Struct(&[
    f("group_id", STR).until(7),
    f("topics", nullable_array(&OFFSET_FETCH_TOPIC)).until(7),
    f("groups", array(&OFFSET_FETCH_GROUP)).since(8),
    f("require_stable", BOOL).since(7),
]);

// FindCoordinator (10)
const FIND_COORDINATOR: Ty = Ty::Struct(&[
    f("key", STR).until(3),
    f("key_type", I8).since(1),
    f("coordinator_keys", array(&STR)).since(4),
]);

// JoinGroup (11)
const JOIN_GROUP_PROTOCOL: Ty = Ty::Struct(&[f("name", STR), f("metadata", BYTES)]);
const JOIN_GROUP: Ty = Ty::Struct(&[
    f("group_id", STR),
    f("session_timeout_ms", I32),
    f("rebalance_timeout_ms", I32).since(1),
    f("member_id", STR),
    f("group_instance_id", NULLABLE_STR).since(5),
    f("protocol_type", STR),
    f("protocols", array(&JOIN_GROUP_PROTOCOL)),
    f("reason", NULLABLE_STR).since(8),
]);

// Heartbeat (12)
const HEARTBEAT: Ty = Ty::Struct(&[
    f("group_id", STR),
    f("generation_id", I32),
    f("member_id", STR),
    f("group_instance_id", NULLABLE_STR).since(3),
]);

// LeaveGroup (13)
const LEAVE_GROUP_MEMBER: Ty = Ty::Struct(&[
    f("member_id", STR).since(3),
    f("group_instance_id", NULLABLE_STR).since(3),
    f("reason", NULLABLE_STR).since(5),
]);
const LEAVE_GROUP: Ty = Ty::Struct(&[
    f("group_id", STR),
    f("member_id", STR).until(2),
    f("members", array(&LEAVE_GROUP_MEMBER)).since(3),
]);

// SyncGroup (14)
const SYNC_GROUP_ASSIGNMENT: Ty = Ty::Struct(&[f("member_id", STR), f("assignment", BYTES)]);
const SYNC_GROUP: Ty = Ty::Struct(&[
    f("group_id", STR),
    f("generation_id", I32),
    f("member_id", STR),
    f("group_instance_id", NULLABLE_STR).since(3),
    f("protocol_type", NULLABLE_STR).since(5),
    f("protocol_name", NULLABLE_STR).since(5),
    f("assignments", array(&SYNC_GROUP_ASSIGNMENT)),
]);

// DescribeGroups (15)
const DESCRIBE_GROUPS: Ty = Ty::Struct(&[
    f("groups", array(&STR)),
    f("include_authorized_operations", BOOL).since(3),
]);

// ListGroups (16)
const LIST_GROUPS: Ty = Ty::Struct(&[
    f("states_filter", array(&STR)).since(4),
    f("types_filter", array(&STR)).since(5),
]);

// ApiVersions (18)
const API_VERSIONS: Ty = Ty::Struct(&[
    f("client_software_name", STR).since(3),
    f("client_software_version", STR).since(3),
]);

// CreateTopics (19)
const CREATE_TOPICS_ASSIGNMENT: Ty =
    Ty::Struct(&[f("partition_index", I32), f("broker_ids", array(&I32))]);
const CREATE_TOPICS_CONFIG: Ty = Ty::Struct(&[f("name", STR), f("value", NULLABLE_STR)]);
const CREATE_TOPICS_TOPIC: Ty = Ty::Struct(&[
    f("name", STR),
    f("num_partitions", I32),
    f("replication_factor", I16),
    f("assignments", array(&CREATE_TOPICS_ASSIGNMENT)),
    f("configs", array(&CREATE_TOPICS_CONFIG)),
]);
const CREATE_TOPICS: Ty = Ty::Struct(&[
    f("topics", array(&CREATE_TOPICS_TOPIC)),
    f("timeout_ms", I32),
    f("validate_only", BOOL),
]);

// DeleteTopics (20)
const DELETE_TOPICS_TOPIC: Ty = Ty::Struct(&[
    f("name", NULLABLE_STR).since(6),
    f("topic_id", UUID).since(6),
]);
const DELETE_TOPICS: Ty = Ty::Struct(&[
    f("topics", array(&DELETE_TOPICS_TOPIC)).since(6),
    f("topic_names", array(&STR)).until(5),
    f("timeout_ms", I32),
]);

// DeleteRecords (21)
const DELETE_RECORDS_PARTITION: Ty = Ty::Struct(&[f("partition_index", I32), f("offset", I64)]);
const DELETE_RECORDS_TOPIC: Ty = Ty::Struct(&[
    f("name", STR),
    f("partitions", array(&DELETE_RECORDS_PARTITION)),
]);
const DELETE_RECORDS: Ty = Ty::Struct(&[
    f("topics", array(&DELETE_RECORDS_TOPIC)),
    f("timeout_ms", I32),
]);

// InitProducerId (22)
const INIT_PRODUCER_ID: Ty = Ty::Struct(&[
    f("transactional_id", NULLABLE_STR),
    f("transaction_timeout_ms", I32),
    f("producer_id", I64).since(3),
    f("producer_epoch", I16).since(3),
]);

// AddPartitionsToTxn (24)
const ADD_PARTITIONS_TO_TXN_TOPIC: Ty = Ty::Struct(&[f("name", STR), f("partitions", array(&I32))]);
const ADD_PARTITIONS_TO_TXN_TRANSACTION: Ty = Ty::Struct(&[
    f("transactional_id", STR).since(4),
    f("producer_id", I64).since(4),
    f("producer_epoch", I16).since(4),
    f("verify_only", BOOL).since(4),
    f("topics", array(&ADD_PARTITIONS_TO_TXN_TOPIC)).since(4),
]);
const ADD_PARTITIONS_TO_TXN: Ty = Ty::Struct(&[
    f("transactions", array(&ADD_PARTITIONS_TO_TXN_TRANSACTION)).since(4),
    f("v3_and_below_transactional_id", STR).until(3),
    f("v3_and_below_producer_id", I64).until(3),
    f("v3_and_below_producer_epoch", I16).until(3),
    f("v3_and_below_topics", array(&ADD_PARTITIONS_TO_TXN_TOPIC)).until(3),
]);

// AddOffsetsToTxn (25)
const ADD_OFFSETS_TO_TXN: Ty = Ty::Struct(&[
    f("transactional_id", STR),
    f("producer_id", I64),
    f("producer_epoch", I16),
    f("group_id", STR),
]);

// EndTxn (26)
const END_TXN: Ty = Ty::Struct(&[
    f("transactional_id", STR),
    f("producer_id", I64),
    f("producer_epoch", I16),
    f("committed", BOOL),
]);

// TxnOffsetCommit (28)
const TXN_OFFSET_COMMIT_PARTITION: Ty = Ty::Struct(&[
    f("partition_index", I32),
    f("committed_offset", I64),
    f("committed_leader_epoch", I32).since(2),
    f("committed_metadata", NULLABLE_STR),
]);
const TXN_OFFSET_COMMIT_TOPIC: Ty = Ty::Struct(&[
    f("name", STR),
    f("partitions", array(&TXN_OFFSET_COMMIT_PARTITION)),
]);
const TXN_OFFSET_COMMIT: Ty = Ty::Struct(&[
    f("transactional_id", STR),
    f("group_id", STR),
    f("producer_id", I64),
    f("producer_epoch", I16),
    f("generation_id", I32).since(3),
    f("member_id", STR).since(3),
    f("group_instance_id", NULLABLE_STR).since(3),
    f("topics", array(&TXN_OFFSET_COMMIT_TOPIC)),
]);

// DescribeConfigs (32)
const DESCRIBE_CONFIGS_RESOURCE: Ty = Ty::Struct(&[
    f("resource_type", I8),
    f("resource_name", STR),
    f("configuration_keys", nullable_array(&STR)),
]);
const DESCRIBE_CONFIGS: Ty = Ty::Struct(&[
    f("resources", array(&DESCRIBE_CONFIGS_RESOURCE)),
    f("include_synonyms", BOOL),
    f("include_documentation", BOOL).since(3),
]);

// CreatePartitions (37)
const CREATE_PARTITIONS_ASSIGNMENT: Ty = Ty::Struct(&[f("broker_ids", array(&I32))]);
const CREATE_PARTITIONS_TOPIC: Ty = Ty::Struct(&[
    f("name", STR),
    f("count", I32),
    f("assignments", nullable_array(&CREATE_PARTITIONS_ASSIGNMENT)),
]);
const CREATE_PARTITIONS: Ty = Ty::Struct(&[
    f("topics", array(&CREATE_PARTITIONS_TOPIC)),
    f("timeout_ms", I32),
    f("validate_only", BOOL),
]);

// DeleteGroups (42)
const DELETE_GROUPS: Ty = Ty::Struct(&[f("groups_names", array(&STR))]);

// AlterConfigs (33)
const ALTER_CONFIGS_CONFIG: Ty = Ty::Struct(&[f("name", STR), f("value", NULLABLE_STR)]);
const ALTER_CONFIGS_RESOURCE: Ty = Ty::Struct(&[
    f("resource_type", I8),
    f("resource_name", STR),
    f("configs", array(&ALTER_CONFIGS_CONFIG)),
]);
const ALTER_CONFIGS: Ty = Ty::Struct(&[
    f("resources", array(&ALTER_CONFIGS_RESOURCE)),
    f("validate_only", BOOL),
]);

// IncrementalAlterConfigs (44)
const INCREMENTAL_ALTER_CONFIGS_CONFIG: Ty = Ty::Struct(&[
    f("name", STR),
    f("config_operation", I8),
    f("value", NULLABLE_STR),
]);
const INCREMENTAL_ALTER_CONFIGS_RESOURCE: Ty = Ty::Struct(&[
    f("resource_type", I8),
    f("resource_name", STR),
    f("configs", array(&INCREMENTAL_ALTER_CONFIGS_CONFIG)),
]);
const INCREMENTAL_ALTER_CONFIGS: Ty = Ty::Struct(&[
    f("resources", array(&INCREMENTAL_ALTER_CONFIGS_RESOURCE)),
    f("validate_only", BOOL),
]);

// OffsetDelete (47)
const OFFSET_DELETE_PARTITION: Ty = Ty::Struct(&[f("partition_index", I32)]);
const OFFSET_DELETE_TOPIC: Ty = Ty::Struct(&[
    f("name", STR),
    f("partitions", array(&OFFSET_DELETE_PARTITION)),
]);
const OFFSET_DELETE: Ty =
    Ty::Struct(&[f("group_id", STR), f("topics", array(&OFFSET_DELETE_TOPIC))]);

// DescribeCluster (60)
const DESCRIBE_CLUSTER: Ty = Ty::Struct(&[
    f("include_cluster_authorized_operations", BOOL),
    f("endpoint_type", I8).since(1),
    f("include_fenced_brokers", BOOL).since(2),
]);

// DescribeLogDirs (35)
const DESCRIBE_LOG_DIRS_TOPIC: Ty = Ty::Struct(&[f("topic", STR), f("partitions", array(&I32))]);
const DESCRIBE_LOG_DIRS: Ty = Ty::Struct(&[f("topics", nullable_array(&DESCRIBE_LOG_DIRS_TOPIC))]);

// DescribeProducers (61)
const DESCRIBE_PRODUCERS_TOPIC: Ty =
    Ty::Struct(&[f("name", STR), f("partition_indexes", array(&I32))]);
const DESCRIBE_PRODUCERS: Ty = Ty::Struct(&[f("topics", array(&DESCRIBE_PRODUCERS_TOPIC))]);

// DescribeTransactions (65)
const DESCRIBE_TRANSACTIONS: Ty = Ty::Struct(&[f("transactional_ids", array(&STR))]);

// ListTransactions (66)
const LIST_TRANSACTIONS: Ty = Ty::Struct(&[
    f("state_filters", array(&STR)),
    f("producer_id_filters", array(&I64)),
    f("duration_filter", I64).since(1),
    f("transactional_id_pattern", NULLABLE_STR).since(2),
]);

// ConsumerGroupHeartbeat (68)
const CONSUMER_GROUP_HEARTBEAT_TOPIC: Ty =
    Ty::Struct(&[f("topic_id", UUID), f("partitions", array(&I32))]);
const CONSUMER_GROUP_HEARTBEAT: Ty = Ty::Struct(&[
    f("group_id", STR),
    f("member_id", STR),
    f("member_epoch", I32),
    f("instance_id", NULLABLE_STR),
    f("rack_id", NULLABLE_STR),
    f("rebalance_timeout_ms", I32),
    f("subscribed_topic_names", nullable_array(&STR)),
    f("subscribed_topic_regex", NULLABLE_STR).since(1),
    f("server_assignor", NULLABLE_STR),
    f(
        "topic_partitions",
        nullable_array(&CONSUMER_GROUP_HEARTBEAT_TOPIC),
    ),
]);

// ConsumerGroupDescribe (69)
const CONSUMER_GROUP_DESCRIBE: Ty = Ty::Struct(&[
    f("group_ids", array(&STR)),
    f("include_authorized_operations", BOOL),
]);

// DescribeTopicPartitions (75)
const DESCRIBE_TOPIC_PARTITIONS_TOPIC: Ty = Ty::Struct(&[f("name", STR)]);
const DESCRIBE_TOPIC_PARTITIONS: Ty = Ty::Struct(&[
    f("topics", array(&DESCRIBE_TOPIC_PARTITIONS_TOPIC)),
    f("response_partition_limit", I32),
    f(
        "cursor",
        Ty::OptionStruct(&[f("topic_name", STR), f("partition_index", I32)]),
    ),
]);

// ShareGroupHeartbeat (76)
const SHARE_GROUP_HEARTBEAT: Ty = Ty::Struct(&[
    f("group_id", STR),
    f("member_id", STR),
    f("member_epoch", I32),
    f("rack_id", NULLABLE_STR),
    f("subscribed_topic_names", nullable_array(&STR)),
]);

// ShareGroupDescribe (77)
const SHARE_GROUP_DESCRIBE: Ty = Ty::Struct(&[
    f("group_ids", array(&STR)),
    f("include_authorized_operations", BOOL),
]);

// ShareFetch (78) and ShareAcknowledge (79)
const SHARE_ACK_BATCH: Ty = Ty::Struct(&[
    f("first_offset", I64),
    f("last_offset", I64),
    f("acknowledge_types", array(&I8)),
]);
const SHARE_PARTITION: Ty = Ty::Struct(&[
    f("partition_index", I32),
    f("acknowledgement_batches", array(&SHARE_ACK_BATCH)),
]);
const SHARE_TOPIC: Ty = Ty::Struct(&[
    f("topic_id", UUID),
    f("partitions", array(&SHARE_PARTITION)),
]);
const SHARE_FORGOTTEN: Ty = Ty::Struct(&[f("topic_id", UUID), f("partitions", array(&I32))]);
const SHARE_FETCH: Ty = Ty::Struct(&[
    f("group_id", NULLABLE_STR),
    f("member_id", NULLABLE_STR),
    f("share_session_epoch", I32),
    f("max_wait_ms", I32),
    f("min_bytes", I32),
    f("max_bytes", I32),
    f("max_records", I32),
    f("batch_size", I32),
    f("topics", array(&SHARE_TOPIC)),
    f("forgotten_topics_data", array(&SHARE_FORGOTTEN)),
]);
const SHARE_ACKNOWLEDGE: Ty = Ty::Struct(&[
    f("group_id", NULLABLE_STR),
    f("member_id", NULLABLE_STR),
    f("share_session_epoch", I32),
    f("topics", array(&SHARE_TOPIC)),
]);

// DescribeShareGroupOffsets (90)
const DESCRIBE_SHARE_GROUP_OFFSETS_TOPIC: Ty =
    Ty::Struct(&[f("topic_name", STR), f("partitions", array(&I32))]);
const DESCRIBE_SHARE_GROUP_OFFSETS_GROUP: Ty = Ty::Struct(&[
    f("group_id", STR),
    f(
        "topics",
        nullable_array(&DESCRIBE_SHARE_GROUP_OFFSETS_TOPIC),
    ),
]);
const DESCRIBE_SHARE_GROUP_OFFSETS: Ty =
    Ty::Struct(&[f("groups", array(&DESCRIBE_SHARE_GROUP_OFFSETS_GROUP))]);

// AlterShareGroupOffsets (91)
const ALTER_SHARE_GROUP_OFFSETS_PARTITION: Ty =
    Ty::Struct(&[f("partition_index", I32), f("start_offset", I64)]);
const ALTER_SHARE_GROUP_OFFSETS_TOPIC: Ty = Ty::Struct(&[
    f("topic_name", STR),
    f("partitions", array(&ALTER_SHARE_GROUP_OFFSETS_PARTITION)),
]);
const ALTER_SHARE_GROUP_OFFSETS: Ty = Ty::Struct(&[
    f("group_id", STR),
    f("topics", array(&ALTER_SHARE_GROUP_OFFSETS_TOPIC)),
]);

// DeleteShareGroupOffsets (92)
const DELETE_SHARE_GROUP_OFFSETS: Ty = Ty::Struct(&[
    f("group_id", STR),
    f("topics", array(&Ty::Struct(&[f("topic_name", STR)]))),
]);

// ---------------------------------------------------------------------------
// The walk.

/// A bounds-checked reader over a body. `end` is lowered while walking the
/// value of a known tagged field, so it cannot read past its declared size.
struct Walker<'a> {
    body: &'a [u8],
    pos: usize,
    end: usize,
    version: i16,
    flexible: bool,
}

impl Walker<'_> {
    fn left(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    fn skip(&mut self, n: usize) -> Result<(), ShapeError> {
        let left = self.left();
        if n > left {
            return Err(ShapeError::at(
                self.pos,
                Problem::Truncated {
                    needed: n as u64,
                    left,
                },
            ));
        }
        self.pos += n;
        Ok(())
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], ShapeError> {
        let start = self.pos;
        self.skip(N)?;
        self.body
            .get(start..self.pos)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or(ShapeError::at(
                start,
                Problem::Truncated {
                    needed: N as u64,
                    left: 0,
                },
            ))
    }

    /// An unsigned varint of at most 5 bytes that fits in a u32.
    fn uvarint(&mut self) -> Result<u32, ShapeError> {
        let start = self.pos;
        let mut value = 0u32;
        for i in 0..5 {
            let [b] = self.bytes::<1>()?;
            let bits = u32::from(b & 0x7f);
            if i == 4 && (b & 0x80 != 0 || bits > 0x0f) {
                return Err(ShapeError::at(start, Problem::BadVarint));
            }
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ShapeError::at(start, Problem::BadVarint))
    }

    /// A length or count prefix: `None` for null. Non-flexible prefixes are
    /// Int32 when `wide` (bytes, arrays), else Int16 (strings); flexible ones
    /// are an unsigned varint holding the length + 1.
    fn prefix(&mut self, wide: bool) -> Result<Option<u64>, ShapeError> {
        let start = self.pos;
        if self.flexible {
            return Ok(self.uvarint()?.checked_sub(1).map(u64::from));
        }
        let n = if wide {
            i32::from_be_bytes(self.bytes::<4>()?)
        } else {
            i32::from(i16::from_be_bytes(self.bytes::<2>()?))
        };
        match u64::try_from(n) {
            Ok(len) => Ok(Some(len)),
            Err(_) if n == -1 => Ok(None),
            Err(_) => Err(ShapeError::at(start, Problem::NegativeLength(n))),
        }
    }

    /// A string or bytes value.
    fn blob(&mut self, wide: bool, nullable: bool) -> Result<(), ShapeError> {
        let start = self.pos;
        match self.prefix(wide)? {
            Some(len) => {
                let left = self.left();
                match usize::try_from(len) {
                    Ok(len) => self.skip(len),
                    Err(_) => Err(ShapeError::at(
                        self.pos,
                        Problem::Truncated { needed: len, left },
                    )),
                }
            }
            None if nullable => Ok(()),
            None => Err(ShapeError::at(start, Problem::UnexpectedNull)),
        }
    }

    fn array(&mut self, of: &Ty, nullable: bool) -> Result<(), ShapeError> {
        let start = self.pos;
        let count = match self.prefix(true)? {
            Some(count) => count,
            None if nullable => return Ok(()),
            None => return Err(ShapeError::at(start, Problem::UnexpectedNull)),
        };
        let left = self.left();
        if count > left as u64 {
            return Err(ShapeError::at(
                start,
                Problem::TooManyElements { count, left },
            ));
        }
        for i in 0..count {
            self.walk(of).map_err(|e| e.at_index(i))?;
        }
        Ok(())
    }

    fn walk(&mut self, ty: &Ty) -> Result<(), ShapeError> {
        match *ty {
            Ty::Bool | Ty::I8 => self.skip(1),
            Ty::I16 => self.skip(2),
            Ty::I32 => self.skip(4),
            Ty::I64 | Ty::F64 => self.skip(8),
            Ty::Uuid => self.skip(16),
            Ty::Str { nullable } => self.blob(false, nullable),
            Ty::Bytes { nullable } => self.blob(true, nullable),
            Ty::Array { of, nullable } => self.array(of, nullable),
            Ty::Struct(fields) => self.fields(fields),
            Ty::OptionStruct(fields) => {
                let [present] = self.bytes::<1>()?;
                if present == 1 {
                    self.fields(fields)
                } else {
                    Ok(())
                }
            }
        }
    }

    fn fields(&mut self, fields: &[Field]) -> Result<(), ShapeError> {
        for field in fields {
            if field.tag.is_none() && field.in_version(self.version) {
                self.walk(&field.ty).map_err(|e| e.in_field(field.name))?;
            }
        }
        if self.flexible {
            self.tagged_fields(fields)
                .map_err(|e| e.in_field("_tagged_fields"))?;
        }
        Ok(())
    }

    /// The tagged-field section: a count, then per field a tag, a size and
    /// `size` bytes of value.
    fn tagged_fields(&mut self, fields: &[Field]) -> Result<(), ShapeError> {
        let start = self.pos;
        let count = self.uvarint()?;
        let left = self.left();
        if u64::from(count) > left as u64 {
            return Err(ShapeError::at(
                start,
                Problem::TooManyElements {
                    count: count.into(),
                    left,
                },
            ));
        }
        for _ in 0..count {
            let tag_at = self.pos;
            let tag = self.uvarint()?;
            let size = self.uvarint()?;
            let left = self.left();
            let size = match usize::try_from(size) {
                Ok(size) if size <= left => size,
                _ => {
                    return Err(ShapeError::at(
                        self.pos,
                        Problem::Truncated {
                            needed: size.into(),
                            left,
                        },
                    ))
                }
            };
            let Some(field) = fields.iter().find(|f| f.tag == Some(tag)) else {
                self.skip(size)?;
                continue;
            };
            if !field.in_version(self.version) {
                return Err(ShapeError::at(tag_at, Problem::TagNotInVersion { tag }));
            }
            // The codec decodes a known tag's value from the frame itself,
            // not from `size` bytes: insist the two agree.
            let outer_end = self.end;
            let value_at = self.pos;
            self.end = value_at + size;
            let walked = self.walk(&field.ty);
            let used = self.pos - value_at;
            self.end = outer_end;
            walked.map_err(|e| e.in_field(field.name))?;
            if used != size {
                return Err(ShapeError::at(
                    value_at,
                    Problem::TagSizeMismatch {
                        tag,
                        declared: size,
                        used,
                    },
                )
                .in_field(field.name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::{BufMut, Bytes, BytesMut};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;
    use proptest::sample::Index;

    use super::*;

    fn s(text: &str) -> StrBytes {
        StrBytes::from_string(text.to_owned())
    }

    /// Unknown tagged fields (ignored by the encoder in non-flexible versions).
    fn tags() -> BTreeMap<i32, Bytes> {
        BTreeMap::from([(7, Bytes::from_static(b"extra")), (300, Bytes::new())])
    }

    fn encode<T: Encodable>(request: &T, version: i16) -> Bytes {
        let mut buf = BytesMut::new();
        request
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("encoding v{version}: {e:#}"));
        buf.freeze()
    }

    /// Every covered (api, version) pair.
    fn covered() -> Vec<(ApiKey, i16)> {
        APIS.iter()
            .flat_map(|a| (a.min..=a.max).map(move |v| (a.key, v)))
            .collect()
    }

    /// How many bytes the codec decodes, if it decodes the body at all.
    /// Only call this on bodies the shape check accepted.
    fn codec_len(key: ApiKey, version: i16, body: &[u8]) -> Option<usize> {
        let mut buf = Bytes::copy_from_slice(body);
        RequestKind::decode(key, &mut buf, version)
            .ok()
            .map(|_| body.len() - buf.len())
    }

    fn default_body(key: ApiKey, v: i16) -> Bytes {
        match key {
            ApiKey::Produce => encode(&ProduceRequest::default(), v),
            ApiKey::Fetch => encode(&FetchRequest::default(), v),
            ApiKey::ListOffsets => encode(&ListOffsetsRequest::default(), v),
            ApiKey::Metadata => encode(&MetadataRequest::default(), v),
            ApiKey::OffsetCommit => encode(&OffsetCommitRequest::default(), v),
            ApiKey::OffsetFetch => encode(&OffsetFetchRequest::default(), v),
            ApiKey::FindCoordinator => encode(&FindCoordinatorRequest::default(), v),
            ApiKey::JoinGroup => encode(&JoinGroupRequest::default(), v),
            ApiKey::Heartbeat => encode(&HeartbeatRequest::default(), v),
            ApiKey::LeaveGroup => encode(&LeaveGroupRequest::default(), v),
            ApiKey::SyncGroup => encode(&SyncGroupRequest::default(), v),
            ApiKey::DescribeGroups => encode(&DescribeGroupsRequest::default(), v),
            ApiKey::ListGroups => encode(&ListGroupsRequest::default(), v),
            ApiKey::ApiVersions => encode(&ApiVersionsRequest::default(), v),
            ApiKey::CreateTopics => encode(&CreateTopicsRequest::default(), v),
            ApiKey::DeleteTopics => encode(&DeleteTopicsRequest::default(), v),
            ApiKey::DeleteRecords => encode(&DeleteRecordsRequest::default(), v),
            ApiKey::InitProducerId => encode(&InitProducerIdRequest::default(), v),
            ApiKey::AddPartitionsToTxn => encode(&AddPartitionsToTxnRequest::default(), v),
            ApiKey::AddOffsetsToTxn => encode(&AddOffsetsToTxnRequest::default(), v),
            ApiKey::EndTxn => encode(&EndTxnRequest::default(), v),
            ApiKey::TxnOffsetCommit => encode(&TxnOffsetCommitRequest::default(), v),
            ApiKey::DescribeConfigs => encode(&DescribeConfigsRequest::default(), v),
            ApiKey::CreatePartitions => encode(&CreatePartitionsRequest::default(), v),
            ApiKey::DeleteGroups => encode(&DeleteGroupsRequest::default(), v),
            ApiKey::AlterConfigs => encode(&AlterConfigsRequest::default(), v),
            ApiKey::IncrementalAlterConfigs => {
                encode(&IncrementalAlterConfigsRequest::default(), v)
            }
            ApiKey::OffsetDelete => encode(&OffsetDeleteRequest::default(), v),
            ApiKey::DescribeCluster => encode(&DescribeClusterRequest::default(), v),
            ApiKey::DescribeLogDirs => encode(&DescribeLogDirsRequest::default(), v),
            ApiKey::ConsumerGroupHeartbeat => encode(&ConsumerGroupHeartbeatRequest::default(), v),
            ApiKey::ConsumerGroupDescribe => encode(&ConsumerGroupDescribeRequest::default(), v),
            ApiKey::DescribeProducers => encode(&DescribeProducersRequest::default(), v),
            ApiKey::DescribeTransactions => encode(&DescribeTransactionsRequest::default(), v),
            ApiKey::ListTransactions => encode(&ListTransactionsRequest::default(), v),
            ApiKey::DescribeTopicPartitions => {
                encode(&DescribeTopicPartitionsRequest::default(), v)
            }
            ApiKey::ShareGroupHeartbeat => encode(&ShareGroupHeartbeatRequest::default(), v),
            ApiKey::ShareGroupDescribe => encode(&ShareGroupDescribeRequest::default(), v),
            ApiKey::ShareFetch => encode(&ShareFetchRequest::default(), v),
            ApiKey::ShareAcknowledge => encode(&ShareAcknowledgeRequest::default(), v),
            ApiKey::DescribeShareGroupOffsets => {
                encode(&DescribeShareGroupOffsetsRequest::default(), v)
            }
            ApiKey::AlterShareGroupOffsets => encode(&AlterShareGroupOffsetsRequest::default(), v),
            ApiKey::DeleteShareGroupOffsets => {
                encode(&DeleteShareGroupOffsetsRequest::default(), v)
            }
            other => panic!("no sample for {other:?}"),
        }
    }

    /// A realistic request: nested arrays of two, strings, nulls where the
    /// field is nullable, and unknown tagged fields in flexible versions.
    fn populated_body(key: ApiKey, v: i16) -> Bytes {
        match key {
            ApiKey::Produce => {
                use produce_request::*;
                let topic = |name: &str| {
                    TopicProduceData::default()
                        .with_name(s(name).into())
                        .with_partition_data(
                            (0..2)
                                .map(|i| {
                                    PartitionProduceData::default()
                                        .with_index(i)
                                        .with_records((i == 0).then(|| Bytes::from(vec![0xab; 61])))
                                        .with_unknown_tagged_fields(tags())
                                })
                                .collect(),
                        )
                };
                let request = ProduceRequest::default()
                    .with_transactional_id(Some(s("txn-1").into()))
                    .with_acks(-1)
                    .with_timeout_ms(30_000)
                    .with_topic_data(vec![topic("orders"), topic("payments")])
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::Fetch => {
                use fetch_request::*;
                let topic = |name: &str| {
                    FetchTopic::default()
                        .with_topic(s(name).into())
                        .with_partitions(
                            (0..2)
                                .map(|i| {
                                    FetchPartition::default()
                                        .with_partition(i)
                                        .with_current_leader_epoch(3)
                                        .with_fetch_offset(100 + i64::from(i))
                                        .with_last_fetched_epoch(if v >= 12 { 2 } else { -1 })
                                        .with_log_start_offset(0)
                                        .with_partition_max_bytes(1 << 20)
                                })
                                .collect(),
                        )
                        .with_unknown_tagged_fields(tags())
                };
                let forgotten = if v >= 7 {
                    vec![ForgottenTopic::default()
                        .with_topic(s("old").into())
                        .with_partitions(vec![4, 5])]
                } else {
                    vec![]
                };
                let request = FetchRequest::default()
                    .with_max_wait_ms(500)
                    .with_min_bytes(1)
                    .with_max_bytes(50 << 20)
                    .with_isolation_level(1)
                    .with_session_id(7)
                    .with_session_epoch(1)
                    .with_topics(vec![topic("orders"), topic("payments")])
                    .with_forgotten_topics_data(forgotten)
                    .with_rack_id(s("rack-a"))
                    .with_cluster_id((v >= 12).then(|| s("cluster-x")))
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::ListOffsets => {
                use list_offsets_request::*;
                let topic = |name: &str| {
                    ListOffsetsTopic::default()
                        .with_name(s(name).into())
                        .with_partitions(
                            (0..2)
                                .map(|i| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(i)
                                        .with_current_leader_epoch(5)
                                        .with_timestamp(-1)
                                })
                                .collect(),
                        )
                };
                let request = ListOffsetsRequest::default()
                    .with_replica_id((-1).into())
                    .with_isolation_level(if v >= 2 { 1 } else { 0 })
                    .with_topics(vec![topic("orders"), topic("payments")])
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::Metadata => {
                use metadata_request::*;
                let mut topics = vec![
                    MetadataRequestTopic::default().with_name(Some(s("orders").into())),
                    MetadataRequestTopic::default().with_name(Some(s("payments").into())),
                ];
                if v >= 10 {
                    topics.push(
                        MetadataRequestTopic::default()
                            .with_topic_id(uuid::Uuid::from_u128(42))
                            .with_name(None),
                    );
                }
                let request = MetadataRequest::default()
                    .with_topics(Some(topics))
                    .with_allow_auto_topic_creation(v < 4)
                    .with_include_cluster_authorized_operations((8..=10).contains(&v))
                    .with_include_topic_authorized_operations(v >= 8)
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::OffsetCommit => {
                use offset_commit_request::*;
                let topic = |name: &str| {
                    OffsetCommitRequestTopic::default()
                        .with_name(s(name).into())
                        .with_partitions(
                            (0..2)
                                .map(|i| {
                                    OffsetCommitRequestPartition::default()
                                        .with_partition_index(i)
                                        .with_committed_offset(42)
                                        .with_committed_leader_epoch(1)
                                        .with_committed_metadata((i == 0).then(|| s("meta")))
                                })
                                .collect(),
                        )
                };
                let request = OffsetCommitRequest::default()
                    .with_group_id(s("group-1").into())
                    .with_generation_id_or_member_epoch(1)
                    .with_member_id(s("member-1"))
                    .with_group_instance_id((v >= 7).then(|| s("instance-1")))
                    .with_retention_time_ms(-1)
                    .with_topics(vec![topic("orders"), topic("payments")])
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::OffsetFetch => {
                use offset_fetch_request::*;
                let request = if v <= 7 {
                    let topic = |name: &str| {
                        OffsetFetchRequestTopic::default()
                            .with_name(s(name).into())
                            .with_partition_indexes(vec![0, 1])
                    };
                    OffsetFetchRequest::default()
                        .with_group_id(s("group-1").into())
                        .with_topics(Some(vec![topic("orders"), topic("payments")]))
                        .with_require_stable(v >= 7)
                } else {
                    let topic = |name: &str| {
                        OffsetFetchRequestTopics::default()
                            .with_name(s(name).into())
                            .with_partition_indexes(vec![0, 1])
                    };
                    OffsetFetchRequest::default()
                        .with_groups(vec![
                            OffsetFetchRequestGroup::default()
                                .with_group_id(s("group-1").into())
                                .with_member_id((v >= 9).then(|| s("member-1")))
                                .with_member_epoch(if v >= 9 { 3 } else { -1 })
                                .with_topics(Some(vec![topic("orders"), topic("payments")])),
                            OffsetFetchRequestGroup::default()
                                .with_group_id(s("group-2").into())
                                .with_topics(None),
                        ])
                        .with_require_stable(true)
                };
                encode(&request.with_unknown_tagged_fields(tags()), v)
            }
            ApiKey::FindCoordinator => {
                let request = FindCoordinatorRequest::default()
                    .with_key(if v <= 3 { s("group-1") } else { s("") })
                    .with_key_type(if v >= 1 { 1 } else { 0 })
                    .with_coordinator_keys(if v >= 4 {
                        vec![s("group-1"), s("group-2")]
                    } else {
                        vec![]
                    })
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::JoinGroup => {
                use join_group_request::*;
                let request = JoinGroupRequest::default()
                    .with_group_id(s("group-1").into())
                    .with_session_timeout_ms(10_000)
                    .with_rebalance_timeout_ms(30_000)
                    .with_member_id(s("member-1"))
                    .with_group_instance_id((v >= 5).then(|| s("instance-1")))
                    .with_protocol_type(s("consumer"))
                    .with_protocols(vec![
                        JoinGroupRequestProtocol::default()
                            .with_name(s("range"))
                            .with_metadata(Bytes::from_static(b"\0\x03meta")),
                        JoinGroupRequestProtocol::default().with_name(s("roundrobin")),
                    ])
                    .with_reason(Some(s("joining")))
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::Heartbeat => {
                let request = HeartbeatRequest::default()
                    .with_group_id(s("group-1").into())
                    .with_generation_id(3)
                    .with_member_id(s("member-1"))
                    .with_group_instance_id((v >= 3).then(|| s("instance-1")))
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::LeaveGroup => {
                use leave_group_request::*;
                let request = LeaveGroupRequest::default().with_group_id(s("group-1").into());
                let request = if v <= 2 {
                    request.with_member_id(s("member-1"))
                } else {
                    request.with_members(vec![
                        MemberIdentity::default()
                            .with_member_id(s("member-1"))
                            .with_group_instance_id(Some(s("instance-1")))
                            .with_reason(Some(s("bye"))),
                        MemberIdentity::default().with_member_id(s("member-2")),
                    ])
                };
                encode(&request.with_unknown_tagged_fields(tags()), v)
            }
            ApiKey::SyncGroup => {
                use sync_group_request::*;
                let request = SyncGroupRequest::default()
                    .with_group_id(s("group-1").into())
                    .with_generation_id(3)
                    .with_member_id(s("member-1"))
                    .with_group_instance_id((v >= 3).then(|| s("instance-1")))
                    .with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("range")))
                    .with_assignments(vec![
                        SyncGroupRequestAssignment::default()
                            .with_member_id(s("member-1"))
                            .with_assignment(Bytes::from_static(b"assignment")),
                        SyncGroupRequestAssignment::default().with_member_id(s("member-2")),
                    ])
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::DescribeGroups => {
                let request = DescribeGroupsRequest::default()
                    .with_groups(vec![s("group-1").into(), s("group-2").into()])
                    .with_include_authorized_operations(v >= 3)
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::ListGroups => {
                let request = ListGroupsRequest::default()
                    .with_states_filter(if v >= 4 {
                        vec![s("Stable"), s("Empty")]
                    } else {
                        vec![]
                    })
                    .with_types_filter(if v >= 5 {
                        vec![s("consumer"), s("classic")]
                    } else {
                        vec![]
                    })
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::ApiVersions => {
                let request = ApiVersionsRequest::default()
                    .with_client_software_name(s("runnel-tests"))
                    .with_client_software_version(s("0.1.0"))
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::CreateTopics => {
                use create_topics_request::*;
                let topic = |name: &str| {
                    CreatableTopic::default()
                        .with_name(s(name).into())
                        .with_num_partitions(3)
                        .with_replication_factor(1)
                        .with_assignments(
                            (0..2)
                                .map(|i| {
                                    CreatableReplicaAssignment::default()
                                        .with_partition_index(i)
                                        .with_broker_ids(vec![1.into(), 2.into()])
                                })
                                .collect(),
                        )
                        .with_configs(vec![
                            CreatableTopicConfig::default()
                                .with_name(s("cleanup.policy"))
                                .with_value(Some(s("compact")))
                                .with_unknown_tagged_fields(tags()),
                            CreatableTopicConfig::default()
                                .with_name(s("retention.ms"))
                                .with_value(None),
                        ])
                };
                let request = CreateTopicsRequest::default()
                    .with_topics(vec![topic("orders"), topic("payments")])
                    .with_timeout_ms(5_000)
                    .with_validate_only(true)
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::DeleteTopics => {
                use delete_topics_request::*;
                let request = if v >= 6 {
                    DeleteTopicsRequest::default().with_topics(vec![
                        DeleteTopicState::default().with_name(Some(s("orders").into())),
                        DeleteTopicState::default().with_topic_id(uuid::Uuid::from_u128(7)),
                    ])
                } else {
                    DeleteTopicsRequest::default()
                        .with_topic_names(vec![s("orders").into(), s("payments").into()])
                };
                let request = request
                    .with_timeout_ms(1_000)
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::DeleteRecords => {
                use delete_records_request::*;
                let topic = |name: &str| {
                    DeleteRecordsTopic::default()
                        .with_name(s(name).into())
                        .with_partitions(
                            (0..2)
                                .map(|i| {
                                    DeleteRecordsPartition::default()
                                        .with_partition_index(i)
                                        .with_offset(10)
                                })
                                .collect(),
                        )
                };
                let request = DeleteRecordsRequest::default()
                    .with_topics(vec![topic("orders"), topic("payments")])
                    .with_timeout_ms(1_000)
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::InitProducerId => {
                let request = InitProducerIdRequest::default()
                    .with_transactional_id(Some(s("txn-1").into()))
                    .with_transaction_timeout_ms(60_000)
                    .with_producer_id(if v >= 3 { 5 } else { -1 }.into())
                    .with_producer_epoch(if v >= 3 { 1 } else { -1 })
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::AddPartitionsToTxn => {
                use add_partitions_to_txn_request::*;
                let topic = |name: &str| {
                    AddPartitionsToTxnTopic::default()
                        .with_name(s(name).into())
                        .with_partitions(vec![0, 1])
                };
                let request = AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(s("txn-1").into())
                    .with_v3_and_below_producer_id(5.into())
                    .with_v3_and_below_producer_epoch(1)
                    .with_v3_and_below_topics(vec![topic("orders"), topic("payments")])
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::AddOffsetsToTxn => {
                let request = AddOffsetsToTxnRequest::default()
                    .with_transactional_id(s("txn-1").into())
                    .with_producer_id(5.into())
                    .with_producer_epoch(1)
                    .with_group_id(s("group-1").into())
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::EndTxn => {
                let request = EndTxnRequest::default()
                    .with_transactional_id(s("txn-1").into())
                    .with_producer_id(5.into())
                    .with_producer_epoch(1)
                    .with_committed(true)
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::TxnOffsetCommit => {
                use txn_offset_commit_request::*;
                let topic = |name: &str| {
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(s(name).into())
                        .with_partitions(
                            (0..2)
                                .map(|i| {
                                    TxnOffsetCommitRequestPartition::default()
                                        .with_partition_index(i)
                                        .with_committed_offset(42)
                                        .with_committed_leader_epoch(1)
                                        .with_committed_metadata((i == 1).then(|| s("meta")))
                                })
                                .collect(),
                        )
                };
                let request = TxnOffsetCommitRequest::default()
                    .with_transactional_id(s("txn-1").into())
                    .with_group_id(s("group-1").into())
                    .with_producer_id(5.into())
                    .with_producer_epoch(1)
                    .with_generation_id(if v >= 3 { 2 } else { -1 })
                    .with_member_id(if v >= 3 { s("member-1") } else { s("") })
                    .with_group_instance_id((v >= 3).then(|| s("instance-1")))
                    .with_topics(vec![topic("orders"), topic("payments")])
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::DescribeConfigs => {
                use describe_configs_request::*;
                let request = DescribeConfigsRequest::default()
                    .with_resources(vec![
                        DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s("orders"))
                            .with_configuration_keys(Some(vec![
                                s("retention.ms"),
                                s("cleanup.policy"),
                            ])),
                        DescribeConfigsResource::default()
                            .with_resource_type(4)
                            .with_resource_name(s("1"))
                            .with_configuration_keys(None),
                    ])
                    .with_include_synonyms(true)
                    .with_include_documentation(v >= 3)
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::CreatePartitions => {
                use create_partitions_request::*;
                let request = CreatePartitionsRequest::default()
                    .with_topics(vec![
                        CreatePartitionsTopic::default()
                            .with_name(s("orders").into())
                            .with_count(4)
                            .with_assignments(Some(vec![
                                CreatePartitionsAssignment::default()
                                    .with_broker_ids(vec![1.into()]),
                                CreatePartitionsAssignment::default()
                                    .with_broker_ids(vec![1.into(), 2.into()]),
                            ])),
                        CreatePartitionsTopic::default()
                            .with_name(s("payments").into())
                            .with_count(2)
                            .with_assignments(None),
                    ])
                    .with_timeout_ms(1_000)
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::DeleteGroups => {
                let request = DeleteGroupsRequest::default()
                    .with_groups_names(vec![s("group-1").into(), s("group-2").into()])
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::AlterConfigs => {
                use alter_configs_request::*;
                let resource = |name: &str| {
                    AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s(name))
                        .with_configs(vec![
                            AlterableConfig::default()
                                .with_name(s("retention.ms"))
                                .with_value(Some(s("1000"))),
                            AlterableConfig::default()
                                .with_name(s("cleanup.policy"))
                                .with_value(None),
                        ])
                };
                let request = AlterConfigsRequest::default()
                    .with_resources(vec![resource("orders"), resource("payments")])
                    .with_validate_only(true)
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::IncrementalAlterConfigs => {
                use incremental_alter_configs_request::*;
                let resource = |name: &str| {
                    AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s(name))
                        .with_configs(vec![
                            AlterableConfig::default()
                                .with_name(s("retention.ms"))
                                .with_config_operation(0)
                                .with_value(Some(s("1000"))),
                            AlterableConfig::default()
                                .with_name(s("cleanup.policy"))
                                .with_config_operation(1)
                                .with_value(None),
                        ])
                };
                let request = IncrementalAlterConfigsRequest::default()
                    .with_resources(vec![resource("orders"), resource("payments")])
                    .with_validate_only(true)
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::OffsetDelete => {
                use offset_delete_request::*;
                let topic = |name: &str| {
                    OffsetDeleteRequestTopic::default()
                        .with_name(s(name).into())
                        .with_partitions(
                            (0..2)
                                .map(|i| {
                                    OffsetDeleteRequestPartition::default().with_partition_index(i)
                                })
                                .collect(),
                        )
                };
                let request = OffsetDeleteRequest::default()
                    .with_group_id(s("group-1").into())
                    .with_topics(vec![topic("orders"), topic("payments")]);
                encode(&request, v)
            }
            ApiKey::DescribeCluster => {
                let request = DescribeClusterRequest::default()
                    .with_include_cluster_authorized_operations(true)
                    .with_endpoint_type(if v >= 1 { 2 } else { 1 })
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::DescribeLogDirs => {
                use describe_log_dirs_request::*;
                let topic = |name: &str| {
                    DescribableLogDirTopic::default()
                        .with_topic(s(name).into())
                        .with_partitions(vec![0, 7])
                        .with_unknown_tagged_fields(tags())
                };
                let request = DescribeLogDirsRequest::default()
                    .with_topics(Some(vec![topic("orders"), topic("payments")]))
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::ConsumerGroupHeartbeat => {
                use consumer_group_heartbeat_request::*;
                let owned = |n: u8| {
                    TopicPartitions::default()
                        .with_topic_id(uuid::Uuid::from_bytes([n; 16]))
                        .with_partitions(vec![0, 2])
                        .with_unknown_tagged_fields(tags())
                };
                let request = ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(s("group-1").into())
                    .with_member_id(s("member-1"))
                    .with_member_epoch(3)
                    .with_instance_id(Some(s("instance-1")))
                    .with_rack_id(None)
                    .with_rebalance_timeout_ms(30_000)
                    .with_subscribed_topic_names(Some(vec![s("orders").into(), s("pay").into()]))
                    .with_subscribed_topic_regex((v >= 1).then(|| s("ord.*")))
                    .with_server_assignor(Some(s("range")))
                    .with_topic_partitions(Some(vec![owned(1), owned(2)]))
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::ConsumerGroupDescribe => {
                let request = ConsumerGroupDescribeRequest::default()
                    .with_group_ids(vec![s("group-1").into(), s("group-2").into()])
                    .with_include_authorized_operations(true)
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::DescribeProducers => {
                use describe_producers_request::*;
                let topic = |name: &str| {
                    TopicRequest::default()
                        .with_name(s(name).into())
                        .with_partition_indexes(vec![0, 3])
                        .with_unknown_tagged_fields(tags())
                };
                let request = DescribeProducersRequest::default()
                    .with_topics(vec![topic("orders"), topic("payments")])
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::DescribeTransactions => {
                let request = DescribeTransactionsRequest::default()
                    .with_transactional_ids(vec![s("txn-1").into(), s("txn-2").into()])
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::ListTransactions => {
                let request = ListTransactionsRequest::default()
                    .with_state_filters(vec![s("Ongoing"), s("PrepareAbort")])
                    .with_producer_id_filters(vec![ProducerId(7), ProducerId(9)])
                    .with_duration_filter(if v >= 1 { 60_000 } else { -1 })
                    .with_transactional_id_pattern((v >= 2).then(|| s("txn-.*")))
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::DescribeTopicPartitions => {
                use describe_topic_partitions_request::*;
                let topic = |name: &str| {
                    TopicRequest::default()
                        .with_name(s(name).into())
                        .with_unknown_tagged_fields(tags())
                };
                let request = DescribeTopicPartitionsRequest::default()
                    .with_topics(vec![topic("orders"), topic("payments")])
                    .with_response_partition_limit(10)
                    .with_cursor(Some(
                        Cursor::default()
                            .with_topic_name(s("payments").into())
                            .with_partition_index(4)
                            .with_unknown_tagged_fields(tags()),
                    ))
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::ShareGroupHeartbeat => {
                let request = ShareGroupHeartbeatRequest::default()
                    .with_group_id(s("group-1").into())
                    .with_member_id(s("member-1"))
                    .with_member_epoch(3)
                    .with_rack_id(Some(s("rack-a")))
                    .with_subscribed_topic_names(Some(vec![
                        s("orders").into(),
                        s("payments").into(),
                    ]))
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::ShareGroupDescribe => {
                let request = ShareGroupDescribeRequest::default()
                    .with_group_ids(vec![s("group-1").into(), s("group-2").into()])
                    .with_include_authorized_operations(true)
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::ShareFetch => {
                use share_fetch_request::*;
                let batch = |first: i64| {
                    AcknowledgementBatch::default()
                        .with_first_offset(first)
                        .with_last_offset(first + 2)
                        .with_acknowledge_types(vec![1, 2, 3])
                        .with_unknown_tagged_fields(tags())
                };
                let partition = |p: i32| {
                    FetchPartition::default()
                        .with_partition_index(p)
                        .with_acknowledgement_batches(vec![batch(0), batch(10)])
                        .with_unknown_tagged_fields(tags())
                };
                let request = ShareFetchRequest::default()
                    .with_group_id(Some(s("group-1").into()))
                    .with_member_id(Some(s("member-1")))
                    .with_share_session_epoch(4)
                    .with_max_wait_ms(500)
                    .with_min_bytes(1)
                    .with_max_bytes(1 << 20)
                    .with_max_records(500)
                    .with_batch_size(100)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic_id(uuid::Uuid::from_u128(7))
                        .with_partitions(vec![partition(0), partition(1)])
                        .with_unknown_tagged_fields(tags())])
                    .with_forgotten_topics_data(vec![ForgottenTopic::default()
                        .with_topic_id(uuid::Uuid::from_u128(8))
                        .with_partitions(vec![2, 3])
                        .with_unknown_tagged_fields(tags())])
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::ShareAcknowledge => {
                use share_acknowledge_request::*;
                let batch = AcknowledgementBatch::default()
                    .with_first_offset(5)
                    .with_last_offset(5)
                    .with_acknowledge_types(vec![1])
                    .with_unknown_tagged_fields(tags());
                let request = ShareAcknowledgeRequest::default()
                    .with_group_id(Some(s("group-1").into()))
                    .with_member_id(Some(s("member-1")))
                    .with_share_session_epoch(-1)
                    .with_topics(vec![AcknowledgeTopic::default()
                        .with_topic_id(uuid::Uuid::from_u128(7))
                        .with_partitions(vec![AcknowledgePartition::default()
                            .with_partition_index(0)
                            .with_acknowledgement_batches(vec![batch.clone(), batch])
                            .with_unknown_tagged_fields(tags())])
                        .with_unknown_tagged_fields(tags())])
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::DescribeShareGroupOffsets => {
                use describe_share_group_offsets_request::*;
                let request = DescribeShareGroupOffsetsRequest::default()
                    .with_groups(vec![DescribeShareGroupOffsetsRequestGroup::default()
                        .with_group_id(s("group-1").into())
                        .with_topics(Some(vec![DescribeShareGroupOffsetsRequestTopic::default()
                            .with_topic_name(s("orders").into())
                            .with_partitions(vec![0, 1])
                            .with_unknown_tagged_fields(tags())]))
                        .with_unknown_tagged_fields(tags())])
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::AlterShareGroupOffsets => {
                use alter_share_group_offsets_request::*;
                let request = AlterShareGroupOffsetsRequest::default()
                    .with_group_id(s("group-1").into())
                    .with_topics(vec![AlterShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(s("orders").into())
                        .with_partitions(vec![AlterShareGroupOffsetsRequestPartition::default()
                            .with_partition_index(0)
                            .with_start_offset(42)
                            .with_unknown_tagged_fields(tags())])
                        .with_unknown_tagged_fields(tags())])
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            ApiKey::DeleteShareGroupOffsets => {
                use delete_share_group_offsets_request::*;
                let request = DeleteShareGroupOffsetsRequest::default()
                    .with_group_id(s("group-1").into())
                    .with_topics(vec![DeleteShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(s("orders").into())
                        .with_unknown_tagged_fields(tags())])
                    .with_unknown_tagged_fields(tags());
                encode(&request, v)
            }
            other => panic!("no sample for {other:?}"),
        }
    }

    /// Nulls the other samples leave out (defaults that are not null).
    fn null_body(key: ApiKey, v: i16) -> Option<Bytes> {
        match key {
            ApiKey::Metadata => Some(encode(&MetadataRequest::default().with_topics(None), v)),
            ApiKey::OffsetFetch if v <= 7 => Some(encode(
                &OffsetFetchRequest::default()
                    .with_group_id(s("group-1").into())
                    .with_topics(None),
                v,
            )),
            ApiKey::DescribeLogDirs => Some(encode(
                &DescribeLogDirsRequest::default().with_topics(None),
                v,
            )),
            ApiKey::ConsumerGroupHeartbeat => Some(encode(
                &ConsumerGroupHeartbeatRequest::default()
                    .with_subscribed_topic_names(None)
                    .with_topic_partitions(None),
                v,
            )),
            ApiKey::ListTransactions if v >= 2 => Some(encode(
                &ListTransactionsRequest::default().with_transactional_id_pattern(None),
                v,
            )),
            _ => None,
        }
    }

    #[test]
    fn the_table_covers_what_was_asked_and_what_the_broker_accepts() {
        use ApiKey::*;
        let mut asked = vec![
            (Produce, 3, 11),
            (Fetch, 4, 12),
            (ListOffsets, 1, 7),
            (Metadata, 0, 12),
            (ApiVersions, 0, 3),
            (CreateTopics, 2, 7),
            (DeleteTopics, 1, 6),
            (DeleteRecords, 0, 2),
            (DescribeConfigs, 1, 4),
            (AlterConfigs, 0, 2),
            (CreatePartitions, 0, 3),
            (IncrementalAlterConfigs, 0, 1),
            (DescribeCluster, 0, 1),
            (FindCoordinator, 0, 4),
            (JoinGroup, 0, 9),
            (SyncGroup, 0, 5),
            (Heartbeat, 0, 4),
            (LeaveGroup, 0, 5),
            (OffsetCommit, 2, 9),
            (OffsetFetch, 1, 9),
            (DescribeGroups, 0, 6),
            (ListGroups, 0, 5),
            (DeleteGroups, 0, 2),
            (OffsetDelete, 0, 0),
            (InitProducerId, 0, 5),
            (AddPartitionsToTxn, 0, 3),
            (AddOffsetsToTxn, 0, 3),
            (EndTxn, 0, 5),
            (TxnOffsetCommit, 0, 3),
            (DescribeLogDirs, 1, 4),
            (ConsumerGroupHeartbeat, 0, 1),
            (ConsumerGroupDescribe, 0, 1),
            (DescribeProducers, 0, 0),
            (DescribeTransactions, 0, 0),
            (ListTransactions, 0, 2),
            (DescribeTopicPartitions, 0, 0),
            (ShareGroupHeartbeat, 1, 1),
            (ShareGroupDescribe, 1, 1),
            (ShareFetch, 1, 1),
            (ShareAcknowledge, 1, 1),
            (DescribeShareGroupOffsets, 0, 0),
            (AlterShareGroupOffsets, 0, 0),
            (DeleteShareGroupOffsets, 0, 0),
        ];
        let mut table: Vec<_> = APIS.iter().map(|a| (a.key, a.min, a.max)).collect();
        asked.sort_by_key(|e| e.0 as i16);
        table.sort_by_key(|e| e.0 as i16);
        assert_eq!(table, asked);

        for a in APIS {
            let codec = a.key.valid_versions();
            assert!(codec.min <= a.min && a.max <= codec.max, "{:?}", a.key);
            assert!(matches!(a.body, Ty::Struct(_)), "{:?}", a.key);
            for v in a.min..=a.max {
                // Flexible versions are exactly those with request header v2.
                assert_eq!(
                    v >= a.flexible_since,
                    a.key.request_header_version(v) >= 2,
                    "{:?} v{v}",
                    a.key
                );
            }
        }
        for e in crate::versions::SUPPORTED {
            for v in e.min..=e.max {
                if crate::versions::accepted(e.key, v) {
                    assert_ne!(
                        check_request_body(
                            e.key as i16,
                            crate::versions::codec_version(e.key, v),
                            &[]
                        ),
                        Err(ShapeError::NoShape {
                            api: e.key as i16,
                            version: crate::versions::codec_version(e.key, v)
                        }),
                        "the broker accepts {:?} v{v} but it has no shape",
                        e.key
                    );
                }
            }
        }
    }

    #[test]
    fn codec_encodings_are_accepted_whole_and_refused_truncated() {
        let mut bodies = 0;
        for (key, v) in covered() {
            let samples = [
                ("default", Some(default_body(key, v))),
                ("populated", Some(populated_body(key, v))),
                ("nulls", null_body(key, v)),
            ];
            for (label, body) in samples {
                let Some(body) = body else { continue };
                let what = format!("{key:?} v{v} {label}");
                assert_eq!(
                    body_len(key as i16, v, &body),
                    Ok(body.len()),
                    "{what}: {body:02x?}"
                );
                assert_eq!(codec_len(key, v, &body), Some(body.len()), "{what}");
                // Every cut, at whatever it splits, is refused.
                for cut in 0..body.len() {
                    assert!(
                        check_request_body(key as i16, v, &body[..cut]).is_err(),
                        "{what} cut to {cut} bytes"
                    );
                }
                // Trailing bytes are left alone, as the codec does.
                let mut longer = body.to_vec();
                longer.extend_from_slice(&[0xff; 3]);
                assert_eq!(body_len(key as i16, v, &longer), Ok(body.len()), "{what}");
                bodies += 1;
            }
        }
        assert!(bodies > 2 * covered().len());
    }

    fn malformed(err: ShapeError) -> (String, usize, Problem) {
        match err {
            ShapeError::Malformed {
                path,
                offset,
                problem,
            } => (path, offset, problem),
            other => panic!("expected a malformed body, got {other}"),
        }
    }

    #[test]
    fn a_huge_array_count_is_refused() {
        // Produce v3: null transactional id, acks, timeout, 0x7fffffff topics.
        let mut body = BytesMut::new();
        body.put_i16(-1);
        body.put_i16(1);
        body.put_i32(1_000);
        body.put_i32(0x7fff_ffff);
        let err = check_request_body(0, 3, &body).unwrap_err();
        assert!(err.to_string().contains("topic_data"), "{err}");
        assert_eq!(
            malformed(err),
            (
                "topic_data".to_owned(),
                8,
                Problem::TooManyElements {
                    count: 0x7fff_ffff,
                    left: 0
                }
            )
        );

        // Nested: one topic "t" whose partition count is huge, with a few
        // bytes after it so `left` is not zero.
        let mut body = BytesMut::new();
        body.put_i16(-1);
        body.put_i16(1);
        body.put_i32(1_000);
        body.put_i32(1);
        body.put_i16(1);
        body.put_u8(b't');
        body.put_i32(0x7fff_ffff);
        body.put_slice(&[0; 7]);
        let (path, offset, problem) = malformed(check_request_body(0, 3, &body).unwrap_err());
        assert_eq!(path, "topic_data[0].partition_data");
        assert_eq!(offset, 15);
        assert_eq!(
            problem,
            Problem::TooManyElements {
                count: 0x7fff_ffff,
                left: 7
            }
        );

        // Compact (Produce v9): varint 0x80000000 is a count of 0x7fffffff.
        let body = [
            0x00, 0x00, 0x01, 0, 0, 0x03, 0xe8, 0x80, 0x80, 0x80, 0x80, 0x08,
        ];
        let (path, _, problem) = malformed(check_request_body(0, 9, &body).unwrap_err());
        assert_eq!(path, "topic_data");
        assert!(matches!(
            problem,
            Problem::TooManyElements {
                count: 0x7fff_ffff,
                ..
            }
        ));

        // Metadata v0 and an array of primitives (Fetch v7 forgotten partitions).
        let body = [0x7f, 0xff, 0xff, 0xff];
        assert!(check_request_body(3, 0, &body).is_err());
        let mut body = BytesMut::new();
        body.put_slice(&[0; 4 * 4 + 1 + 8]); // replica..isolation, session id/epoch
        body.put_i32(0); // topics
        body.put_i32(1); // one forgotten topic
        body.put_i16(1);
        body.put_u8(b't');
        body.put_i32(i32::MAX);
        let (path, ..) = malformed(check_request_body(1, 7, &body).unwrap_err());
        assert_eq!(path, "forgotten_topics_data[0].partitions");
    }

    /// Through the server: without the check these frames abort the process.
    #[tokio::test]
    async fn handle_frame_refuses_huge_counts_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::Broker::open(dir.path(), crate::BrokerConfig::default()).unwrap();
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);

        // Produce v3, header v1 (api, version, correlation id, null client
        // id), then a body claiming 0x7fffffff topics.
        let mut frame = BytesMut::new();
        frame.put_i16(0);
        frame.put_i16(3);
        frame.put_i32(7);
        frame.put_i16(-1);
        frame.put_i16(-1);
        frame.put_i16(1);
        frame.put_i32(1_000);
        frame.put_i32(0x7fff_ffff);
        let err = crate::server::handle_frame(
            &broker,
            &crate::ConnectionContext::in_process(),
            frame,
            &stop,
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, crate::BrokerError::Malformed(m) if m.contains("topic_data")),
            "{err}"
        );

        // Metadata v12, header v2 (plus an empty tagged section), then a
        // compact topics count of u32::MAX - 1.
        let mut frame = BytesMut::new();
        frame.put_i16(3);
        frame.put_i16(12);
        frame.put_i32(8);
        frame.put_i16(-1);
        frame.put_u8(0);
        frame.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0, 0]);
        let err = crate::server::handle_frame(
            &broker,
            &crate::ConnectionContext::in_process(),
            frame,
            &stop,
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, crate::BrokerError::Malformed(m) if m.contains("topics")),
            "{err}"
        );
    }

    #[test]
    fn bad_lengths_and_varints_are_refused() {
        // Produce v3 transactional id of length -2.
        let body = [0xff, 0xfe, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let (_, offset, problem) = malformed(check_request_body(0, 3, &body).unwrap_err());
        assert_eq!((offset, problem), (0, Problem::NegativeLength(-2)));

        // A string running past the end.
        let body = [0x00, 0x09, b'a', b'b'];
        let (path, _, problem) = malformed(check_request_body(0, 3, &body).unwrap_err());
        assert_eq!(path, "transactional_id");
        assert_eq!(problem, Problem::Truncated { needed: 9, left: 2 });

        // Null where the codec wants a value: AddOffsetsToTxn v0 transactional id.
        let body = [0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        let (path, _, problem) = malformed(check_request_body(25, 0, &body).unwrap_err());
        assert_eq!(
            (path.as_str(), problem),
            ("transactional_id", Problem::UnexpectedNull)
        );

        // Produce v3 records of length -5.
        let mut body = BytesMut::new();
        body.put_i16(-1);
        body.put_i16(1);
        body.put_i32(1_000);
        body.put_i32(1);
        body.put_i16(1);
        body.put_u8(b't');
        body.put_i32(1);
        body.put_i32(0);
        body.put_i32(-5);
        let (path, _, problem) = malformed(check_request_body(0, 3, &body).unwrap_err());
        assert_eq!(path, "topic_data[0].partition_data[0].records");
        assert_eq!(problem, Problem::NegativeLength(-5));

        // Produce v9 (compact) transactional id: six-byte and 33-bit varints.
        for varint in [
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00][..],
            &[0xff, 0xff, 0xff, 0xff, 0x10],
        ] {
            let mut body = varint.to_vec();
            body.extend_from_slice(&[0; 16]);
            let (_, offset, problem) = malformed(check_request_body(0, 9, &body).unwrap_err());
            assert_eq!((offset, problem), (0, Problem::BadVarint));
        }
        // A padded but in-range varint means what the codec reads: 1 = "".
        let body = [0x81, 0x80, 0x80, 0x80, 0x00, 0, 1, 0, 0, 0, 0, 1, 0];
        assert_eq!(body_len(0, 9, &body), Ok(body.len()));
        assert_eq!(codec_len(ApiKey::Produce, 9, &body), Some(body.len()));
    }

    #[test]
    fn tagged_fields_are_skipped_or_walked_exactly() {
        // Fetch v12 with no topics: everything up to the top tagged section.
        let head = encode(&FetchRequest::default(), 12);
        let (last, head) = head.split_last().unwrap();
        assert_eq!(*last, 0, "the default has no tagged fields");
        let with = |section: &[u8]| [head, section].concat();

        // cluster_id (tag 0): a compact string "ab" in exactly 3 bytes.
        let body = with(&[1, 0, 3, 3, b'a', b'b']);
        assert_eq!(body_len(1, 12, &body), Ok(body.len()));
        assert_eq!(codec_len(ApiKey::Fetch, 12, &body), Some(body.len()));
        // Unknown tags are skipped by size, whatever their bytes.
        let body = with(&[2, 9, 2, 0xff, 0xff, 0x80, 0x02, 0]);
        assert_eq!(body_len(1, 12, &body), Ok(body.len()));
        assert_eq!(codec_len(ApiKey::Fetch, 12, &body), Some(body.len()));

        // The codec reads cluster_id ignoring the size, so a size that
        // disagrees with the value would desynchronise it: refused.
        let (path, _, problem) =
            malformed(check_request_body(1, 12, &with(&[1, 0, 1, 3, b'a', b'b'])).unwrap_err());
        assert_eq!(path, "_tagged_fields.cluster_id");
        assert_eq!(problem, Problem::Truncated { needed: 2, left: 0 });
        let (_, _, problem) = malformed(
            check_request_body(1, 12, &with(&[1, 0, 5, 3, b'a', b'b', 0, 0])).unwrap_err(),
        );
        assert_eq!(
            problem,
            Problem::TagSizeMismatch {
                tag: 0,
                declared: 5,
                used: 3
            }
        );
        // replica_state (tag 1) only exists from v15.
        let (_, _, problem) = malformed(check_request_body(1, 12, &with(&[1, 1, 0])).unwrap_err());
        assert_eq!(problem, Problem::TagNotInVersion { tag: 1 });
        // Counts and sizes must fit too.
        assert!(check_request_body(1, 12, &with(&[2, 9, 0])).is_err());
        assert!(check_request_body(1, 12, &with(&[1, 9, 4, 0, 0])).is_err());
        let (_, _, problem) = malformed(
            check_request_body(1, 12, &with(&[0xff, 0xff, 0xff, 0xff, 0x0f])).unwrap_err(),
        );
        assert!(matches!(problem, Problem::TooManyElements { .. }));
    }

    #[test]
    fn versions_without_a_shape_are_refused() {
        for (api, version) in [
            (0, 2),
            (0, 12),
            (1, 13),
            (24, 4),
            (47, 1),
            (999, 0),
            (-1, 0),
        ] {
            assert_eq!(
                check_request_body(api, version, &[0; 64]),
                Err(ShapeError::NoShape { api, version })
            );
        }
        assert_eq!(
            ShapeError::NoShape { api: 0, version: 2 }.to_string(),
            "no shape for api 0 v2"
        );
    }

    /// Bytes that often make small counts, nulls and varint continuations.
    fn wire_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => Just(0u8),
            3 => 1u8..4,
            1 => Just(0xffu8),
            1 => Just(0x80u8),
            4 => any::<u8>(),
        ]
    }

    /// The property behind the check: if it accepts, decoding is safe to run
    /// (an abort here would kill the test binary) and reads the same bytes.
    fn accepted_bodies_decode_safely(
        key: ApiKey,
        v: i16,
        body: &[u8],
    ) -> Result<(), TestCaseError> {
        if let Ok(len) = body_len(key as i16, v, body) {
            prop_assert!(len <= body.len());
            prop_assert!(check_request_body(key as i16, v, body).is_ok());
            if let Some(decoded) = codec_len(key, v, body) {
                prop_assert_eq!(decoded, len, "{:?} v{} {:02x?}", key, v, body);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn arbitrary_bodies_never_crash(
            pair in 0..covered().len(),
            body in prop::collection::vec(wire_byte(), 0..96),
        ) {
            let (key, v) = covered()[pair];
            accepted_bodies_decode_safely(key, v, &body)?;
        }

        #[test]
        fn mutated_encodings_never_crash(
            pair in 0..covered().len(),
            populated in any::<bool>(),
            edits in prop::collection::vec((any::<Index>(), wire_byte()), 1..4),
            cut in proptest::option::of(any::<Index>()),
        ) {
            let (key, v) = covered()[pair];
            let body = if populated { populated_body(key, v) } else { default_body(key, v) };
            let mut body = body.to_vec();
            for (at, byte) in edits {
                if !body.is_empty() {
                    let i = at.index(body.len());
                    body[i] = byte;
                }
            }
            if let Some(cut) = cut {
                body.truncate(cut.index(body.len() + 1));
            }
            accepted_bodies_decode_safely(key, v, &body)?;
        }
    }
}
