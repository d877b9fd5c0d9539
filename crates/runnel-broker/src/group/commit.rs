//! Offset commits outside transactions, shared by the OffsetCommit handler
//! and the in-process API ([`crate::local::Local::commit`]): the group's
//! generation and member fencing, the partition and metadata checks, then
//! one durable write of whatever passed.

use kafka_protocol::ResponseError;
use tracing::warn;

use super::Committed;
use crate::context::ConnectionContext;
use crate::Broker;

/// Largest commit metadata accepted (`offset.metadata.max.bytes`).
pub const MAX_METADATA_BYTES: usize = 4096;

/// One offset of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// An OffsetCommit: who commits (generation -1 and an empty member id for
/// a "simple" commit of a consumer that uses no group membership) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub offsets: Vec<CommitOffset>,
}

impl Broker {
    /// Checks and writes one commit; the result of each offset, in request
    /// order. A refused member fails every offset with the same error.
    /// Blocking (the write fsyncs): call from `spawn_blocking`.
    pub(crate) fn commit_offsets(
        &self,
        _ctx: &ConnectionContext,
        req: CommitRequest,
        now_ms: i64,
    ) -> Vec<Result<(), ResponseError>> {
        let check = self.groups().check_commit(
            &req.group_id,
            req.generation,
            &req.member_id,
            req.instance_id.as_deref(),
        );
        let mut results = Vec::with_capacity(req.offsets.len());
        let mut entries = Vec::new();
        for o in req.offsets {
            let known = self
                .log()
                .topic(&o.topic)
                .and_then(|t| t.partition(o.partition))
                .is_some();
            let result = if let Err(e) = check {
                Err(e)
            } else if !known {
                Err(ResponseError::UnknownTopicOrPartition)
            } else if o
                .metadata
                .as_ref()
                .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
            {
                Err(ResponseError::OffsetMetadataTooLarge)
            } else {
                entries.push((
                    (o.topic, o.partition),
                    Some(Committed {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata,
                        commit_timestamp: now_ms,
                    }),
                ));
                Ok(())
            };
            results.push(result);
        }
        if entries.is_empty() {
            return results;
        }
        if let Err(err) = self
            .groups()
            .offsets()
            .write(&req.group_id, entries, now_ms)
        {
            warn!(group = %req.group_id, %err, "offset commit failed");
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(ResponseError::CoordinatorNotAvailable);
            }
        }
        results
    }
}
