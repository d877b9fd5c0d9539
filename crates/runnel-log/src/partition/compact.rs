//! Log compaction (`cleanup.policy` `compact` / `compact,delete`).
//!
//! [`Partition::compact`] rewrites the partition's *candidate* segments: the
//! longest prefix of closed (non-active) segments that end at or below the
//! caller's stable offset and whose newest record is older than
//! `min.compaction.lag.ms`. It runs only when it is worth it: the bytes not
//! compacted before (segments at or above the cleaner checkpoint) are at
//! least `min.cleanable.dirty.ratio` of the candidates' bytes, or the oldest
//! of them is older than `max.compaction.lag.ms`, or a delete horizon
//! recorded by the previous run has passed.
//!
//! 1. Pass 1 reads every candidate batch (CRC-checked). Per producer id,
//!    transactional data batches are pending until the producer's next
//!    commit or abort marker; aborted ones are dropped later, ones still
//!    pending at the end ("unresolved") are copied verbatim. A map from
//!    key to its latest offset is built over all other (committed or
//!    non-transactional) records.
//! 2. Pass 2 writes each segment anew into `<base>.log.cleaned`: a record
//!    is kept when it has no key or is the latest of its key; a kept
//!    tombstone (null value) stays until its batch's delete horizon
//!    (KIP-534: set to now + `delete.retention.ms` the first time the batch
//!    is rewritten keeping a tombstone, stored as the baseTimestamp with
//!    attributes bit 6, record timestamp deltas re-expressed so absolute
//!    timestamps are unchanged) has passed. A batch keeping all its records
//!    is copied verbatim, one keeping none is dropped, others are
//!    re-encoded with the same codec, base offset and lastOffsetDelta (so
//!    offsets never change and producer sequence ranges stay intact). A
//!    transaction marker is dropped once it is older than
//!    `delete.retention.ms` and no data batch of its transaction is left.
//!    Batches that cannot be decoded are copied verbatim.
//! 3. Each rewritten segment is swapped in crash-safely: the cleaned file is
//!    fsynced; under the partition lock, if the segment is still there, its
//!    index files are deleted (dir fsynced), the cleaned file is renamed over
//!    the `.log` (dir fsynced) and the indexes are rewritten. A segment left
//!    empty is deleted, except the first one (kept as an empty file so the
//!    log start offset does not move). Readers holding the old file keep
//!    reading the old data.
//!
//! The heavy reading and writing happens without the partition lock (closed
//! segments are immutable); a cleaner mutex keeps compactions of one
//! partition from overlapping. The cleaner checkpoint is written (and the
//! directory fsynced) before the first swap, so recovery knows which
//! segments may have offset gaps.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{BatchHeader, DELETE_HORIZON_BIT};
use crate::codec::{self, BatchTemplate, OwnedRecord};
use crate::control::{self, Marker};
use crate::fsutil;
use crate::index::Indexes;
use crate::segment::{self, scan_batches, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT};
use crate::{LogConfig, LogError, Partition};

/// Suffix of a segment being rewritten (`<base>.log.cleaned`).
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// The cleaner checkpoint file in the partition directory.
pub(crate) const CHECKPOINT_FILE: &str = "cleaner-checkpoint";
/// Output is written to the cleaned file in chunks of this size.
const WRITE_CHUNK: usize = 1 << 20;

/// What compaction remembers between runs (persisted in
/// [`CHECKPOINT_FILE`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanerState {
    /// Segments starting below this offset may have been compacted; those
    /// at or above it never were.
    pub cleaned_upto: i64,
    /// The earliest delete horizon the last run left pending.
    pub next_horizon: Option<i64>,
}

impl CleanerState {
    /// Reads the checkpoint; missing or unreadable means nothing compacted.
    pub(crate) fn load(dir: &Path) -> io::Result<CleanerState> {
        let path = dir.join(CHECKPOINT_FILE);
        let Some(bytes) = fsutil::read_opt(&path)? else {
            return Ok(CleanerState::default());
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut lines = text.lines().map(str::trim);
        let Some(Ok(upto)) = lines.next().map(str::parse::<i64>) else {
            tracing::warn!(path = %path.display(), "unreadable cleaner checkpoint ignored");
            return Ok(CleanerState::default());
        };
        let next_horizon = lines.next().and_then(|l| l.parse::<i64>().ok());
        Ok(CleanerState {
            cleaned_upto: upto.max(0),
            next_horizon,
        })
    }

    fn store(&self, dir: &Path) -> io::Result<()> {
        let mut text = format!("{}\n", self.cleaned_upto);
        if let Some(h) = self.next_horizon {
            text.push_str(&format!("{h}\n"));
        }
        fsutil::write_atomic(&dir.join(CHECKPOINT_FILE), text.as_bytes(), true)
    }
}

/// The outcome of one compaction run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Candidate segments examined.
    pub segments_examined: usize,
    /// Segments rewritten (including those removed).
    pub segments_cleaned: usize,
    /// Segments removed because nothing in them was left.
    pub segments_removed: usize,
    /// Records dropped (superseded, expired tombstones, aborted, markers).
    pub records_removed: u64,
    /// Bytes of the candidate segments before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Offsets below this were compacted.
    pub cleaned_upto: i64,
}

/// A candidate segment, captured under the partition lock.
struct Candidate {
    base: i64,
    file: Arc<File>,
    size: u64,
    end_offset: i64,
    /// Max timestamp at the first time-index entry (≈ first batch's).
    first_ts: Option<i64>,
}

/// What pass 2 does with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Committed or non-transactional: keep the latest record of each key.
    Compact,
    /// Transactional data whose outcome is not known yet (pass 1 only).
    Pending { decodable: bool },
    /// Copy as is (unresolved transaction or undecodable).
    Verbatim,
    /// Aborted transactional data: drop.
    Aborted,
    /// Commit/abort marker (or other control batch).
    Control,
}

/// Transactional batches of one producer waiting for its marker.
#[derive(Default)]
struct PendingTxn {
    batches: Vec<usize>,
    keys: Vec<(Vec<u8>, i64)>,
}

fn put_latest(map: &mut HashMap<Vec<u8>, i64>, key: Vec<u8>, offset: i64) {
    map.entry(key)
        .and_modify(|o| *o = (*o).max(offset))
        .or_insert(offset);
}

/// Buffered positional writer for the cleaned file.
struct Out {
    file: File,
    buf: Vec<u8>,
    written: u64,
}

impl Out {
    fn pos(&self) -> u64 {
        self.written + self.buf.len() as u64
    }
    fn write(&mut self, b: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= WRITE_CHUNK {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all_at(&self.buf, self.written)?;
            self.written += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Per-run context of pass 2.
struct Rewrite<'a> {
    cfg: &'a LogConfig,
    now: i64,
    limit: usize,
    latest: &'a HashMap<Vec<u8>, i64>,
    /// Producers whose current transaction still has data in the log.
    survivors: HashMap<i64, bool>,
    /// Delete horizons of what was kept because of them.
    horizons: Vec<i64>,
    records_removed: u64,
}

/// What to write for one batch.
enum Action {
    Drop,
    Copy,
    /// The re-encoded batch (same base offset, lastOffsetDelta and
    /// maxTimestamp).
    Replace(Vec<u8>),
}

/// The result of rewriting one segment.
struct Cleaned {
    out: Out,
    path: PathBuf,
    ix: Indexes,
    changed: bool,
}

impl Rewrite<'_> {
    /// What to write instead of `h`.
    fn rewrite(&mut self, h: &BatchHeader<'_>, fate: Fate) -> Result<Action, LogError> {
        let pid = h.producer_id();
        let count = u64::try_from(h.record_count()).unwrap_or(0);
        match fate {
            Fate::Aborted => {
                self.records_removed += count;
                Ok(Action::Drop)
            }
            Fate::Control => {
                let survived = self.survivors.remove(&pid).unwrap_or(false);
                let ts = h.max_timestamp();
                let horizon = ts.saturating_add(self.cfg.delete_retention_ms);
                if pid >= 0 && !survived && self.now >= horizon {
                    self.records_removed += count;
                    return Ok(Action::Drop);
                }
                if !survived {
                    self.horizons.push(horizon);
                }
                Ok(Action::Copy)
            }
            Fate::Verbatim | Fate::Pending { .. } => {
                self.mark_survivor(h);
                Ok(Action::Copy)
            }
            Fate::Compact => {
                let Ok(recs) = codec::decode_records(h, self.limit) else {
                    self.mark_survivor(h);
                    return Ok(Action::Copy);
                };
                let total = recs.len();
                let horizon = h.delete_horizon();
                let mut tombstones = false;
                let mut kept: Vec<OwnedRecord> = Vec::with_capacity(total);
                for r in recs {
                    if let Some(k) = &r.key {
                        if self.latest.get(k).is_some_and(|o| *o != r.offset) {
                            continue;
                        }
                        if r.value.is_none() {
                            if horizon.is_some_and(|hz| self.now >= hz) {
                                continue;
                            }
                            tombstones = true;
                        }
                    }
                    kept.push(r);
                }
                self.records_removed += count.saturating_sub(kept.len() as u64);
                if kept.is_empty() {
                    return Ok(Action::Drop);
                }
                self.mark_survivor(h);
                let set_horizon = tombstones && horizon.is_none();
                if tombstones {
                    self.horizons.push(
                        horizon.unwrap_or(self.now.saturating_add(self.cfg.delete_retention_ms)),
                    );
                }
                if kept.len() == total && !set_horizon && total == count as usize {
                    return Ok(Action::Copy);
                }
                let mut t = BatchTemplate::of(h);
                if set_horizon {
                    let hz = self.now.saturating_add(self.cfg.delete_retention_ms);
                    let shift = t.base_timestamp.wrapping_sub(hz);
                    for r in &mut kept {
                        r.timestamp_delta = r.timestamp_delta.wrapping_add(shift);
                    }
                    t.base_timestamp = hz;
                    t.attributes |= DELETE_HORIZON_BIT;
                }
                Ok(Action::Replace(codec::encode_batch(&t, &kept)?))
            }
        }
    }

    fn mark_survivor(&mut self, h: &BatchHeader<'_>) {
        if h.is_transactional() && !h.is_control() && h.producer_id() >= 0 {
            self.survivors.insert(h.producer_id(), true);
        }
    }
}

impl Partition {
    /// Compacts the partition's closed segments below `upto` (exclusive;
    /// the broker passes the last stable offset, so open transactions are
    /// never looked at) as described in the module docs. `now_ms` drives
    /// `min.compaction.lag.ms`, delete horizons and marker expiry. Returns
    /// `None` when the topic is not compacted or nothing was due.
    ///
    /// Errors (IO, a corrupt closed segment) leave the log as it was, or
    /// with some segments already compacted; nothing is lost.
    pub fn compact(&self, upto: i64, now_ms: i64) -> Result<Option<CompactionStats>, LogError> {
        let mut cleaner = self.cleaner.lock().unwrap_or_else(|e| e.into_inner());
        let cfg = self.config();
        if !cfg.is_compacted() {
            return Ok(None);
        }
        let cands = {
            let st = self.lock();
            if st.failed.is_some() || st.deleted {
                return Ok(None);
            }
            let lag_limit = now_ms.saturating_sub(cfg.min_compaction_lag_ms);
            let closed = st.segments.len().saturating_sub(1);
            st.segments[..closed]
                .iter()
                .take_while(|s| {
                    s.end_offset <= upto
                        && (cfg.min_compaction_lag_ms == 0 || s.ix.max_ts <= lag_limit)
                })
                .map(|s| Candidate {
                    base: s.base,
                    file: s.file.clone(),
                    size: s.size,
                    end_offset: s.end_offset,
                    first_ts: s.ix.times.first().map(|t| t.ts),
                })
                .collect::<Vec<_>>()
        };
        let Some(last) = cands.last() else {
            return Ok(None);
        };
        let cands_end = last.end_offset;
        let total: u64 = cands.iter().map(|c| c.size).sum();
        let dirty: Vec<&Candidate> = cands
            .iter()
            .filter(|c| c.end_offset > cleaner.cleaned_upto)
            .collect();
        let dirty_bytes: u64 = dirty.iter().map(|c| c.size).sum();
        let ratio_due = !dirty.is_empty()
            && (total == 0 || dirty_bytes as f64 / total as f64 >= cfg.min_cleanable_dirty_ratio);
        let lag_due = cfg.max_compaction_lag_ms != i64::MAX
            && dirty.first().and_then(|c| c.first_ts).is_some_and(|ts| {
                ts >= 0 && now_ms.saturating_sub(ts) >= cfg.max_compaction_lag_ms
            });
        let horizon_due = cleaner.next_horizon.is_some_and(|h| now_ms >= h);
        if !(ratio_due || lag_due || horizon_due) {
            return Ok(None);
        }
        let limit = codec::decompression_limit(cfg.max_message_bytes);

        // Pass 1: transaction outcomes and the latest offset of every key.
        let mut fates: Vec<(i64, Fate)> = Vec::new();
        let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut pending: HashMap<i64, PendingTxn> = HashMap::new();
        for c in &cands {
            let end = scan_batches(&c.file, 0, c.size, true, |_, h| {
                let idx = fates.len();
                let pid = h.producer_id();
                let fate = if h.is_control() {
                    if pid >= 0 {
                        if let Some(commit) = control::marker(h, limit).map(Marker::is_commit) {
                            if let Some(txn) = pending.remove(&pid) {
                                for i in txn.batches {
                                    let f = &mut fates[i].1;
                                    *f = match (*f, commit) {
                                        (_, false) => Fate::Aborted,
                                        (Fate::Pending { decodable: true }, true) => Fate::Compact,
                                        _ => Fate::Verbatim,
                                    };
                                }
                                if commit {
                                    for (k, o) in txn.keys {
                                        put_latest(&mut latest, k, o);
                                    }
                                }
                            }
                        }
                    }
                    Fate::Control
                } else {
                    let recs = codec::decode_records(h, limit);
                    if let Err(e) = &recs {
                        tracing::warn!(
                            topic = %self.topic, partition = self.index, offset = h.base_offset(),
                            error = %e, "compaction keeps an undecodable batch as is"
                        );
                    }
                    let keyed = recs
                        .iter()
                        .flatten()
                        .filter_map(|r| Some((r.key.clone()?, r.offset)));
                    if h.is_transactional() && pid >= 0 {
                        let txn = pending.entry(pid).or_default();
                        txn.batches.push(idx);
                        txn.keys.extend(keyed);
                        Fate::Pending {
                            decodable: recs.is_ok(),
                        }
                    } else if recs.is_ok() {
                        for (k, o) in keyed {
                            put_latest(&mut latest, k, o);
                        }
                        Fate::Compact
                    } else {
                        Fate::Verbatim
                    }
                };
                fates.push((h.base_offset(), fate));
                Ok(())
            })?;
            if end.valid_end != c.size {
                return Err(LogError::CorruptBatch(format!(
                    "{}: cannot compact: {}",
                    segment::segment_path(&self.dir, c.base, LOG_EXT).display(),
                    end.error.as_deref().unwrap_or("unreadable segment")
                )));
            }
        }
        for (_, f) in &mut fates {
            if matches!(f, Fate::Pending { .. }) {
                *f = Fate::Verbatim;
            }
        }

        // From here on segments below `cands_end` may get offset gaps.
        if cleaner.cleaned_upto < cands_end {
            cleaner.cleaned_upto = cands_end;
            cleaner.store(&self.dir)?;
        }

        // Pass 2: rewrite and swap segment by segment.
        let mut rw = Rewrite {
            cfg: &cfg,
            now: now_ms,
            limit,
            latest: &latest,
            survivors: HashMap::new(),
            horizons: Vec::new(),
            records_removed: 0,
        };
        let mut stats = CompactionStats {
            segments_examined: cands.len(),
            bytes_before: total,
            cleaned_upto: cands_end,
            ..CompactionStats::default()
        };
        let mut next_fate = 0usize;
        for c in &cands {
            let cleaned = match self.rewrite_segment(c, &fates, &mut next_fate, &mut rw) {
                Ok(x) => x,
                Err(e) => {
                    let _ = fs::remove_file(cleaned_path(&self.dir, c.base));
                    return Err(e);
                }
            };
            let new_size = cleaned.out.pos();
            if !cleaned.changed {
                let _ = fs::remove_file(&cleaned.path);
                stats.bytes_after += c.size;
                continue;
            }
            match self.swap(c, cleaned) {
                Ok(Swapped::Replaced) => {
                    stats.segments_cleaned += 1;
                    stats.bytes_after += new_size;
                }
                Ok(Swapped::Removed) => {
                    stats.segments_cleaned += 1;
                    stats.segments_removed += 1;
                }
                Ok(Swapped::Gone) => {}
                Err(e) => {
                    let _ = fs::remove_file(cleaned_path(&self.dir, c.base));
                    return Err(e);
                }
            }
        }
        stats.records_removed = rw.records_removed;
        cleaner.next_horizon = rw.horizons.iter().copied().filter(|h| *h > now_ms).min();
        cleaner.store(&self.dir)?;
        if stats.segments_cleaned > 0 {
            tracing::info!(
                topic = %self.topic,
                partition = self.index,
                segments = stats.segments_cleaned,
                removed_segments = stats.segments_removed,
                records_removed = stats.records_removed,
                bytes_before = stats.bytes_before,
                bytes_after = stats.bytes_after,
                upto = cands_end,
                "compacted"
            );
        } else {
            tracing::debug!(topic = %self.topic, partition = self.index, "compaction found nothing to remove");
        }
        Ok(Some(stats))
    }

    /// Pass 2 for one segment: writes `<base>.log.cleaned` and its indexes.
    fn rewrite_segment(
        &self,
        c: &Candidate,
        fates: &[(i64, Fate)],
        next_fate: &mut usize,
        rw: &mut Rewrite<'_>,
    ) -> Result<Cleaned, LogError> {
        let path = cleaned_path(&self.dir, c.base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        let mut out = Out {
            file,
            buf: Vec::with_capacity(WRITE_CHUNK),
            written: 0,
        };
        let mut ix = Indexes::new();
        let mut changed = false;
        let mut failure: Option<LogError> = None;
        let interval = rw.cfg.index_interval_bytes;
        let end = scan_batches(&c.file, 0, c.size, false, |_, h| {
            let step = (|| -> Result<(), LogError> {
                let (base, fate) = fates.get(*next_fate).copied().ok_or_else(|| {
                    LogError::CorruptBatch("segment changed during compaction".into())
                })?;
                *next_fate += 1;
                if base != h.base_offset() {
                    return Err(LogError::CorruptBatch(
                        "segment changed during compaction".into(),
                    ));
                }
                let action = rw.rewrite(h, fate)?;
                if matches!(action, Action::Drop) {
                    changed = true;
                    return Ok(());
                }
                let pos = out.pos();
                let rel = u32::try_from(h.base_offset() - c.base).ok();
                let (Some(rel), Ok(_)) = (rel, u32::try_from(pos)) else {
                    return Err(LogError::CorruptBatch(
                        "compacted segment exceeds index limits".into(),
                    ));
                };
                ix.on_batch(pos, rel, h.max_timestamp(), interval);
                match action {
                    Action::Replace(b) => {
                        changed = true;
                        out.write(&b)?;
                    }
                    _ => out.write(h.bytes())?,
                }
                Ok(())
            })();
            step.map_err(|e| {
                let msg = e.to_string();
                failure = Some(e);
                msg
            })
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if end.valid_end != c.size {
            return Err(LogError::CorruptBatch(format!(
                "{}: cannot compact: {}",
                segment::segment_path(&self.dir, c.base, LOG_EXT).display(),
                end.error.as_deref().unwrap_or("unreadable segment")
            )));
        }
        out.flush()?;
        if out.pos() > 0 {
            ix.maybe_time_entry();
        }
        Ok(Cleaned {
            out,
            path,
            ix,
            changed,
        })
    }

    /// Replaces a segment with its cleaned version (see the module docs).
    fn swap(&self, c: &Candidate, cleaned: Cleaned) -> Result<Swapped, LogError> {
        let Cleaned { out, path, ix, .. } = cleaned;
        let new_size = out.pos();
        out.file.sync_all()?;
        let mut st = self.lock();
        let found = st
            .segments
            .iter()
            .position(|s| s.base == c.base && Arc::ptr_eq(&s.file, &c.file));
        let i = match found {
            Some(i) if !st.deleted && i + 1 < st.segments.len() => i,
            _ => {
                drop(st);
                let _ = fs::remove_file(&path);
                return Ok(Swapped::Gone);
            }
        };
        if new_size == 0 && i > 0 {
            st.segments.remove(i);
            drop(st);
            let _ = fs::remove_file(&path);
            segment::Segment::delete_files(&self.dir, c.base);
            fsutil::sync_dir(&self.dir)?;
            return Ok(Swapped::Removed);
        }
        for ext in [INDEX_EXT, TIME_INDEX_EXT] {
            match fs::remove_file(segment::segment_path(&self.dir, c.base, ext)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        fsutil::sync_dir(&self.dir)?;
        fs::rename(&path, segment::segment_path(&self.dir, c.base, LOG_EXT))?;
        fsutil::sync_dir(&self.dir)?;
        let seg = &mut st.segments[i];
        seg.file = Arc::new(out.file);
        seg.size = new_size;
        seg.ix = ix;
        seg.rewrite_indexes(&self.dir)?;
        Ok(Swapped::Replaced)
    }
}

/// What became of a segment at swap time.
enum Swapped {
    Replaced,
    Removed,
    /// Retention, DeleteRecords or topic deletion removed it meanwhile.
    Gone,
}

fn cleaned_path(dir: &Path, base: i64) -> PathBuf {
    let mut p = segment::segment_path(dir, base, LOG_EXT).into_os_string();
    p.push(CLEANED_SUFFIX);
    PathBuf::from(p)
}

#[cfg(test)]
mod tests;
