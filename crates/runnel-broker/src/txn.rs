//! The transaction coordinator: transactional ids, their producer id and
//! epoch, the partitions of the ongoing transaction, and commit/abort
//! markers.
//!
//! State is kept durably in the internal topic `__transaction_state`
//! (1 partition): each change appends one record whose key is the
//! transactional id and whose value is the JSON of [`TxnMeta`]; the last
//! record of a key wins. On start the topic is replayed; a transaction
//! found ongoing or preparing to abort is aborted, one preparing to commit
//! is committed, so a coordinator restart never leaves a transaction open.
//!
//! Markers are control batches (attributes: transactional | control) with
//! one record whose key is `version i16 = 0, type i16` (0 abort, 1 commit)
//! and whose value is `version i16 = 0, coordinator epoch i32`, written to
//! every partition of the transaction. Each partition's producer state
//! ([`crate::producers::PartitionProducers`]) tracks the first offset of
//! ongoing transactions (the last stable offset) and the aborted ranges
//! that read_committed fetches return.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use runnel_log::batch::build::{build_batch_with, TestRecord};
use runnel_log::control::{self, Marker};
use runnel_log::{Log, LogError, Partition};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::group::{Committed, OffsetStore};
use crate::producers::{lock, Producers};

/// Offsets of one group as `OffsetStore::write` takes them.
type GroupCommits = Vec<((String, i32), Option<Committed>)>;

/// The internal topic holding coordinator state.
pub const TXN_TOPIC: &str = "__transaction_state";
/// Longest transaction timeout a producer may ask for
/// (`transaction.max.timeout.ms`).
pub const MAX_TIMEOUT_MS: i32 = 900_000;

/// Where a transactional id stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// Kafka's name of the state (`TransactionState.name`), as
    /// ListTransactions and DescribeTransactions report it.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// The state Kafka names `name`; `None` for a name Kafka does not
    /// know. `PrepareEpochFence` and `Dead` are Kafka states this
    /// coordinator never enters: known, matching nothing.
    pub fn from_name(name: &str) -> Option<Option<TxnState>> {
        Some(Some(match name {
            "Empty" => TxnState::Empty,
            "Ongoing" => TxnState::Ongoing,
            "PrepareCommit" => TxnState::PrepareCommit,
            "PrepareAbort" => TxnState::PrepareAbort,
            "CompleteCommit" => TxnState::CompleteCommit,
            "CompleteAbort" => TxnState::CompleteAbort,
            "PrepareEpochFence" | "Dead" => return Some(None),
            _ => return None,
        }))
    }
}

/// Everything the coordinator knows of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Partitions of the ongoing transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Consumer groups whose offsets are committed with the transaction.
    pub groups: BTreeSet<String>,
    /// When the ongoing transaction started (ms since the epoch).
    pub started_ms: i64,
    /// Offsets committed with the transaction (TxnOffsetCommit), applied
    /// to the groups when it commits.
    #[serde(default)]
    pub pending_offsets: Vec<PendingOffset>,
    /// The last EndTxn bumped the epoch (KIP-890, EndTxn v5+): a retry of
    /// it with the previous epoch is answered, anything else at that epoch
    /// is fenced.
    #[serde(default)]
    pub bumped_on_end: bool,
}

impl TxnMeta {
    /// When the current (or last) transaction started, as Kafka reports
    /// it: -1 while no transaction has started since InitProducerId.
    pub fn start_time_ms(&self) -> i64 {
        if self.state == TxnState::Empty {
            -1
        } else {
            self.started_ms
        }
    }
}

/// One TxnOffsetCommit entry waiting for the transaction's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// What completing a transaction touches besides the coordinator's state.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub producers: &'a Producers,
    pub offsets: &'a OffsetStore,
}

/// Why a transactional request is refused; maps to a Kafka error code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TxnError {
    #[error("transactional id is not known to the coordinator")]
    UnknownId,
    #[error("producer id does not belong to this transactional id")]
    WrongProducerId,
    #[error("a newer producer with this transactional id fenced this one")]
    Fenced,
    #[error("invalid transaction state: {0}")]
    InvalidState(String),
    #[error("transaction timeout {0} ms is outside 1..={MAX_TIMEOUT_MS}")]
    InvalidTimeout(i32),
    #[error("storage: {0}")]
    Storage(String),
}

impl From<LogError> for TxnError {
    fn from(e: LogError) -> Self {
        TxnError::Storage(e.to_string())
    }
}

/// The coordinator. All mutations run on blocking threads (they append).
pub struct Coordinator {
    log: Arc<Log>,
    state: Mutex<BTreeMap<String, TxnMeta>>,
    /// Transactional id by producer id, for the produce path's check.
    by_pid: Mutex<HashMap<i64, String>>,
    /// Serializes read-modify-persist of transaction state: the APIs of one
    /// producer arrive on several connections (e.g. AddPartitionsToTxn to
    /// the transaction coordinator, TxnOffsetCommit to the group
    /// coordinator) and must not overwrite each other's changes.
    writer: Mutex<()>,
}

impl Coordinator {
    /// Replays `__transaction_state` (creating it if missing) and completes
    /// transactions a previous run left open.
    pub fn open(log: Arc<Log>, deps: Deps<'_>) -> Result<Coordinator, LogError> {
        let topic = match log.topic(TXN_TOPIC) {
            Some(t) => t,
            None => log.create_topic(TXN_TOPIC, 1, BTreeMap::new())?,
        };
        let mut state = BTreeMap::new();
        if let Some(p) = topic.partition(0) {
            let mut offset = p.log_start_offset();
            while offset < p.high_watermark() {
                let read = p.read(offset, 1 << 20, true)?;
                if read.bytes.is_empty() {
                    break;
                }
                for h in runnel_log::batch::BatchIter::unchecked_crc(&read.bytes).flatten() {
                    offset = h.next_offset();
                    for r in runnel_log::batch::records(&h).unwrap_or_default() {
                        let (Some(k), Some(v)) = (r.key, r.value) else {
                            continue;
                        };
                        let key = String::from_utf8_lossy(k).into_owned();
                        match serde_json::from_slice::<TxnMeta>(v) {
                            Ok(meta) => {
                                state.insert(key, meta);
                            }
                            Err(e) => {
                                warn!(%key, %e, "unreadable transaction state record skipped")
                            }
                        }
                    }
                }
            }
        }
        let coordinator = Coordinator {
            log,
            by_pid: Mutex::new(
                state
                    .iter()
                    .map(|(k, m)| (m.producer_id, k.clone()))
                    .collect(),
            ),
            state: Mutex::new(state),
            writer: Mutex::new(()),
        };
        let open: Vec<(String, TxnMeta)> = lock(&coordinator.state)
            .iter()
            .filter(|(_, m)| {
                !matches!(
                    m.state,
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                )
            })
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        for (id, meta) in open {
            let commit = meta.state == TxnState::PrepareCommit;
            info!(transactional_id = %id, commit, "completing a transaction left open by the previous run");
            coordinator.complete(&id, meta, commit, deps)?;
        }
        Ok(coordinator)
    }

    /// The producer id and epoch of a transactional id (if known).
    pub fn get(&self, id: &str) -> Option<TxnMeta> {
        lock(&self.state).get(id).cloned()
    }

    /// Every transactional id the coordinator knows, by id.
    pub fn all(&self) -> Vec<(String, TxnMeta)> {
        lock(&self.state)
            .iter()
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect()
    }

    fn persist(&self, id: &str, meta: &TxnMeta) -> Result<(), LogError> {
        let value = serde_json::to_vec(meta).map_err(|e| LogError::CorruptBatch(e.to_string()))?;
        let rec = TestRecord {
            timestamp_delta: 0,
            key: Some(id.as_bytes().to_vec()),
            value: Some(value),
            headers: Vec::new(),
        };
        let mut batch = build_batch_with(crate::now_ms(), &[rec], -1, -1, -1, 0);
        let p = self
            .log
            .topic(TXN_TOPIC)
            .and_then(|t| t.partition(0))
            .ok_or_else(|| LogError::UnknownTopic(TXN_TOPIC.to_string()))?;
        p.append(&mut batch, crate::now_ms())?;
        p.sync_to(p.high_watermark(), crate::now_ms())?;
        lock(&self.state).insert(id.to_string(), meta.clone());
        lock(&self.by_pid).insert(meta.producer_id, id.to_string());
        Ok(())
    }

    /// InitProducerId for a transactional id: a new producer id, or the old
    /// one with a bumped epoch (fencing the previous instance, whose open
    /// transaction is aborted first).
    pub fn init_producer(
        &self,
        id: &str,
        timeout_ms: i32,
        deps: Deps<'_>,
    ) -> Result<TxnMeta, TxnError> {
        let _writer = lock(&self.writer);
        if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(TxnError::InvalidTimeout(timeout_ms));
        }
        let existing = self.get(id);
        let (producer_id, epoch) = match existing {
            None => (deps.producers.allocate_id()?, 0),
            Some(meta) => {
                let meta = if matches!(
                    meta.state,
                    TxnState::Ongoing | TxnState::PrepareAbort | TxnState::PrepareCommit
                ) {
                    let commit = meta.state == TxnState::PrepareCommit;
                    let mut meta = meta;
                    if meta.state == TxnState::Ongoing && meta.epoch < i16::MAX - 1 {
                        // Fencing an instance that is still writing: the
                        // epoch goes up before its transaction is aborted
                        // (Kafka's PrepareEpochFence), so from this moment
                        // its sends and EndTxn are refused as fenced and
                        // the abort markers carry the new epoch. Aborting
                        // under the old epoch first left a window in which
                        // its sends saw a transaction that was no longer
                        // ongoing and failed with INVALID_TXN_STATE, which
                        // a client takes for a fatal error, not a fencing.
                        meta.epoch += 1;
                    }
                    self.complete(id, meta, commit, deps)?
                } else {
                    meta
                };
                if meta.epoch >= i16::MAX - 1 {
                    (deps.producers.allocate_id()?, 0)
                } else {
                    (meta.producer_id, meta.epoch + 1)
                }
            }
        };
        let meta = TxnMeta {
            producer_id,
            epoch,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            started_ms: 0,
            pending_offsets: Vec::new(),
            bumped_on_end: false,
        };
        self.persist(id, &meta)?;
        info!(transactional_id = %id, producer_id, epoch, "initialized transactional producer");
        Ok(meta)
    }

    fn check(&self, id: &str, producer_id: i64, epoch: i16) -> Result<TxnMeta, TxnError> {
        let meta = self.get(id).ok_or(TxnError::UnknownId)?;
        if meta.producer_id != producer_id {
            return Err(TxnError::WrongProducerId);
        }
        if epoch < meta.epoch {
            return Err(TxnError::Fenced);
        }
        if epoch > meta.epoch {
            return Err(TxnError::InvalidState(format!(
                "epoch {epoch} was never issued"
            )));
        }
        if matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(TxnError::InvalidState("transaction is completing".into()));
        }
        Ok(meta)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: adds partitions (and a group)
    /// to the producer's transaction, starting it if needed.
    pub fn add(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        group: Option<&str>,
    ) -> Result<(), TxnError> {
        let _writer = lock(&self.writer);
        let mut meta = self.check(id, producer_id, epoch)?;
        let before = meta.clone();
        if meta.state != TxnState::Ongoing {
            meta.state = TxnState::Ongoing;
            meta.partitions.clear();
            meta.groups.clear();
            meta.pending_offsets.clear();
            meta.bumped_on_end = false;
            meta.started_ms = crate::now_ms();
        }
        meta.partitions.extend(partitions.iter().cloned());
        if let Some(g) = group {
            meta.groups.insert(g.to_string());
        }
        if meta != before {
            self.persist(id, &meta)?;
        }
        Ok(())
    }

    /// Whether an open transaction holds an offset for this group and
    /// partition that it has not committed yet (KIP-447: OffsetFetch with
    /// `require_stable` must not answer with the older offset meanwhile).
    pub fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        lock(&self.state).values().any(|m| {
            matches!(
                m.state,
                TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
            ) && m
                .pending_offsets
                .iter()
                .any(|o| o.group == group && o.topic == topic && o.partition == partition)
        })
    }

    /// Whether producer `producer_id` at `epoch` may write to a partition
    /// inside its ongoing transaction.
    pub fn may_write(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), TxnError> {
        let id = lock(&self.by_pid)
            .get(&producer_id)
            .cloned()
            .ok_or(TxnError::WrongProducerId)?;
        let state = lock(&self.state);
        let meta = state.get(&id).ok_or(TxnError::WrongProducerId)?;
        if epoch < meta.epoch {
            return Err(TxnError::Fenced);
        }
        if meta.state != TxnState::Ongoing
            || !meta.partitions.contains(&(topic.to_string(), partition))
        {
            return Err(TxnError::InvalidState(format!(
                "{topic}-{partition} was not added to the transaction"
            )));
        }
        Ok(())
    }

    /// TxnOffsetCommit: stages offsets of a group added with
    /// AddOffsetsToTxn; they become the group's committed offsets only if
    /// the transaction commits.
    pub fn stage_offsets(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        offsets: Vec<PendingOffset>,
    ) -> Result<(), TxnError> {
        let _writer = lock(&self.writer);
        let mut meta = self.check(id, producer_id, epoch)?;
        if let Some(o) = offsets
            .iter()
            .find(|o| meta.state != TxnState::Ongoing || !meta.groups.contains(&o.group))
        {
            return Err(TxnError::InvalidState(format!(
                "group {} was not added to the transaction",
                o.group
            )));
        }
        for o in offsets {
            meta.pending_offsets
                .retain(|p| (&p.group, &p.topic, p.partition) != (&o.group, &o.topic, o.partition));
            meta.pending_offsets.push(o);
        }
        self.persist(id, &meta)?;
        Ok(())
    }

    /// EndTxn: writes commit or abort markers to every partition of the
    /// transaction and records the outcome. Retrying a completed EndTxn
    /// with the same outcome succeeds. With `bump` (EndTxn v5+, KIP-890)
    /// the epoch goes up by one, so a delayed EndTxn of this transaction can
    /// never end the producer's next one.
    pub fn end(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        bump: bool,
        deps: Deps<'_>,
    ) -> Result<TxnMeta, TxnError> {
        let _writer = lock(&self.writer);
        if let Some(meta) = self.get(id) {
            let same_outcome = matches!(
                (meta.state, commit),
                (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false)
            );
            if meta.bumped_on_end
                && same_outcome
                && meta.producer_id == producer_id
                && epoch == meta.epoch - 1
            {
                return Ok(meta);
            }
        }
        let meta = self.check(id, producer_id, epoch)?;
        match (meta.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut done = self.complete(id, meta, commit, deps)?;
                if bump && done.epoch < i16::MAX - 1 {
                    done.epoch += 1;
                    done.bumped_on_end = true;
                    self.persist(id, &done)?;
                }
                Ok(done)
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(meta),
            (TxnState::Empty, _) => Err(TxnError::InvalidState("no transaction is ongoing".into())),
            (state, _) => Err(TxnError::InvalidState(format!(
                "cannot {} a transaction in state {state:?}",
                if commit { "commit" } else { "abort" }
            ))),
        }
    }

    /// Aborts transactions that outlived their timeout; returns how many.
    pub fn abort_expired(&self, now_ms: i64, deps: Deps<'_>) -> usize {
        let _writer = lock(&self.writer);
        let expired: Vec<(String, TxnMeta)> = lock(&self.state)
            .iter()
            .filter(|(_, m)| {
                m.state == TxnState::Ongoing && m.started_ms + m.timeout_ms as i64 <= now_ms
            })
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        let mut n = 0;
        for (id, meta) in expired {
            warn!(transactional_id = %id, "transaction timed out; aborting it");
            // Kafka bumps the epoch so the timed-out producer is fenced.
            match self.complete(&id, meta, false, deps) {
                Ok(mut m) if m.epoch < i16::MAX - 1 => {
                    m.epoch += 1;
                    if self.persist(&id, &m).is_ok() {
                        n += 1;
                    }
                }
                Ok(_) => n += 1,
                Err(e) => {
                    warn!(transactional_id = %id, %e, "could not abort a timed-out transaction")
                }
            }
        }
        n
    }

    /// Prepare, write markers, complete.
    fn complete(
        &self,
        id: &str,
        mut meta: TxnMeta,
        commit: bool,
        deps: Deps<'_>,
    ) -> Result<TxnMeta, LogError> {
        meta.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        self.persist(id, &meta)?;
        for (topic, index) in &meta.partitions {
            let Some(partition) = self.log.topic(topic).and_then(|t| t.partition(*index)) else {
                continue; // the topic was deleted meanwhile
            };
            write_marker(&partition, topic, *index, &meta, commit, deps.producers)?;
        }
        if commit {
            let mut by_group: BTreeMap<&str, GroupCommits> = BTreeMap::new();
            let now = crate::now_ms();
            for o in &meta.pending_offsets {
                by_group.entry(&o.group).or_default().push((
                    (o.topic.clone(), o.partition),
                    Some(Committed {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata.clone(),
                        commit_timestamp: now,
                    }),
                ));
            }
            for (group, entries) in by_group {
                deps.offsets.write(group, entries, now)?;
            }
        }
        meta.state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        meta.partitions.clear();
        meta.groups.clear();
        meta.pending_offsets.clear();
        self.persist(id, &meta)?;
        Ok(meta)
    }
}

fn write_marker(
    partition: &Partition,
    topic: &str,
    index: i32,
    meta: &TxnMeta,
    commit: bool,
    producers: &Producers,
) -> Result<(), LogError> {
    let marker = if commit {
        Marker::Commit
    } else {
        Marker::Abort
    };
    let now = crate::now_ms();
    let mut batch = control::marker_batch(now, meta.producer_id, meta.epoch, marker);
    let state = producers.partition(topic, index);
    let mut state = lock(&state);
    let info = partition.append(&mut batch, now)?;
    state.end_transaction(meta.producer_id, info.base_offset, commit, now);
    Ok(())
}
