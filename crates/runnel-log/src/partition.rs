//! One partition: an append-only sequence of segments with recovery,
//! reads, retention and flushing.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::fsutil;
use crate::segment::{self, scan_batches, Segment, LOG_EXT};
use crate::{AppendInfo, LogConfig, LogError, ReadResult, TimestampType};

mod compact;
pub use compact::CompactionStats;

/// File holding the log start offset (decimal), written atomically.
pub(crate) const LOG_START_FILE: &str = "log-start-offset";
/// File holding the recovery point (decimal), written atomically.
pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point";

/// Minimum interval between periodic recovery-point checkpoints.
const CHECKPOINT_INTERVAL_MS: i64 = 30_000;

/// Files of a rolled segment that still need an fsync.
struct Unsynced {
    data: Arc<fs::File>,
    idx: Option<Arc<fs::File>>,
    tidx: Option<Arc<fs::File>>,
}

struct State {
    /// Sorted by base offset; never empty; the last one is active.
    segments: Vec<Segment>,
    next_offset: i64,
    log_start: i64,
    failed: Option<String>,
    /// Every offset below is fsynced.
    recovery_point: i64,
    /// The value in the recovery-point file.
    checkpointed: i64,
    last_checkpoint_ms: i64,
    last_flush_ms: i64,
    /// Rolled segments whose files are not yet fsynced.
    rolled: Vec<Unsynced>,
    dir_dirty: bool,
    deleted: bool,
}

/// One partition of a topic. `Send + Sync`; appends are serialized, reads
/// do their file IO without holding the partition lock.
pub struct Partition {
    topic: String,
    index: i32,
    dir: PathBuf,
    config: RwLock<Arc<LogConfig>>,
    state: Mutex<State>,
    hw: AtomicI64,
    start: AtomicI64,
    /// Compaction bookkeeping; held for a whole compaction so two never
    /// overlap (the partition lock is only taken briefly).
    cleaner: Mutex<compact::CleanerState>,
}

fn now_wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Partition {
    /// Opens (creating if needed) the partition directory and recovers it.
    pub(crate) fn open(
        topic: &str,
        index: i32,
        dir: PathBuf,
        config: Arc<LogConfig>,
    ) -> Result<Partition, LogError> {
        fs::create_dir_all(&dir)?;
        let now = now_wall_ms();
        let mut cleaner = compact::CleanerState::load(&dir)?;
        let st = recover(&dir, &config, now, cleaner.cleaned_upto)?;
        // Offsets at or above the log end were never compacted (a log that
        // lost its tail may reuse them).
        cleaner.cleaned_upto = cleaner.cleaned_upto.min(st.next_offset);
        let p = Partition {
            topic: topic.to_string(),
            index,
            dir,
            config: RwLock::new(config),
            hw: AtomicI64::new(st.next_offset),
            start: AtomicI64::new(st.log_start),
            state: Mutex::new(st),
            cleaner: Mutex::new(cleaner),
        };
        Ok(p)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state torn in a
        // way that matters more than refusing service; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }
    pub fn index(&self) -> i32 {
        self.index
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The partition's current config.
    pub fn config(&self) -> Arc<LogConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub(crate) fn set_config(&self, c: Arc<LogConfig>) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = c;
    }

    /// `Some(reason)` once the partition has failed (appends are refused).
    pub fn failure(&self) -> Option<String> {
        self.lock().failed.clone()
    }

    pub(crate) fn mark_deleted(&self) {
        let mut st = self.lock();
        st.deleted = true;
        if st.failed.is_none() {
            st.failed = Some("topic deleted".into());
        }
    }

    fn fail(&self, st: &mut State, e: impl std::fmt::Display) -> LogError {
        let msg = format!("{}-{}: {e}", self.topic, self.index);
        tracing::error!(partition = %format!("{}-{}", self.topic, self.index), error = %e, "partition storage failed");
        st.failed = Some(msg.clone());
        LogError::StorageFailed(msg)
    }

    /// Appends one produce payload (one or more v2 batches). Offsets are
    /// assigned consecutively from the log end offset and written into the
    /// batches' baseOffset fields (and LogAppendTime stamped if configured),
    /// so `batches` holds the stored bytes afterwards.
    pub fn append(&self, batches: &mut [u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let (info, sync) = self.append_deferred(batches, now_ms)?;
        if let Some(offset) = sync {
            self.sync_to(offset, now_ms)?;
        }
        Ok(info)
    }

    /// Like [`Partition::append`], but when the flush policy asks for an
    /// fsync it is not done here: the returned offset must be passed to
    /// [`Partition::sync_to`] before the append is acknowledged. This lets
    /// a caller append several payloads and cover them with one fsync
    /// (group commit).
    pub fn append_deferred(
        &self,
        batches: &mut [u8],
        now_ms: i64,
    ) -> Result<(AppendInfo, Option<i64>), LogError> {
        let cfg = self.config();
        let lat = (cfg.message_timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        let summary = batch::validate_payload_mut(batches, cfg.max_message_bytes, lat)?;
        let len = batches.len() as u64;

        let mut st = self.lock();
        if let Some(f) = &st.failed {
            return Err(LogError::StorageFailed(f.clone()));
        }
        let base_offset = st.next_offset;
        let last_offset = base_offset + summary.offset_count - 1;
        if should_roll(&st, &cfg, len, last_offset, now_ms) {
            if let Err(e) = self.roll(&mut st, now_ms) {
                return Err(self.fail(&mut st, e));
            }
        }
        // Assign offsets (baseOffset is not covered by the CRC).
        let mut pos = 0usize;
        let mut off = base_offset;
        while pos < batches.len() {
            let (size, count) = match BatchHeader::parse(&batches[pos..]) {
                Ok(h) => (h.total_size(), h.offset_count()),
                Err(_) => break,
            };
            batch::set_base_offset(&mut batches[pos..], off);
            off += count;
            pos += size;
        }
        let seg = match st.segments.last_mut() {
            Some(s) => s,
            None => return Err(self.fail(&mut st, "no active segment")),
        };
        let write_pos = seg.size;
        if let Err(e) = seg.file.write_all_at(batches, write_pos) {
            return Err(self.fail(&mut st, e));
        }
        let interval = cfg.index_interval_bytes;
        let mut pos = 0usize;
        while pos < batches.len() {
            let Ok(h) = BatchHeader::parse(&batches[pos..]) else {
                break;
            };
            let rel = (h.base_offset() - seg.base) as u32;
            seg.ix
                .on_batch(write_pos + pos as u64, rel, h.max_timestamp(), interval);
            pos += h.total_size();
        }
        seg.size += len;
        seg.end_offset = off;
        seg.created_ms.get_or_insert(now_ms);
        seg.last_modified_ms = now_ms;
        st.next_offset = off;
        self.hw.store(off, Ordering::Release);
        let unflushed = (off - st.recovery_point).max(0) as u64;
        let need_flush = unflushed >= cfg.flush_messages;
        drop(st);
        let info = AppendInfo {
            base_offset,
            last_offset,
            log_append_time: lat.unwrap_or(-1),
            log_start_offset: self.start.load(Ordering::Acquire),
        };
        Ok((info, need_flush.then_some(off)))
    }

    /// Makes every offset below `offset` durable: returns at once when an
    /// earlier fsync already covered it, otherwise fsyncs the data files.
    /// A failure marks the partition failed (no further appends).
    pub fn sync_to(&self, offset: i64, now_ms: i64) -> Result<(), LogError> {
        {
            let st = self.lock();
            if let Some(f) = &st.failed {
                return Err(LogError::StorageFailed(f.clone()));
            }
            if st.recovery_point >= offset {
                return Ok(());
            }
        }
        self.sync_data(now_ms)
    }

    /// Rolls a new active segment at the log end offset.
    fn roll(&self, st: &mut State, now_ms: i64) -> io::Result<()> {
        let new_base = st.next_offset;
        if let Some(old) = st.segments.last_mut() {
            old.write_indexes()?;
            st.rolled.push(Unsynced {
                data: old.file.clone(),
                idx: old.idx.take(),
                tidx: old.tidx.take(),
            });
        }
        let seg = Segment::create(&self.dir, new_base, now_ms)?;
        st.segments.push(seg);
        st.dir_dirty = true;
        Ok(())
    }

    /// Reads whole batches starting with the first one whose last offset is
    /// at least `offset` (the one containing it, or after compaction left a
    /// gap there the next one, possibly in a later segment), up to
    /// `max_bytes` (or the first batch whole if `min_one`). Reads stop at a
    /// segment boundary. Reading at the high watermark returns no bytes.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<ReadResult, LogError> {
        // Base of the segment searched last; `None` on the first round.
        let mut after: Option<i64> = None;
        loop {
            let (file, pos, seg_end, hw, start, interval, base, last) = {
                let st = self.lock();
                let (start, end) = (st.log_start, st.next_offset);
                if offset < start || offset > end {
                    return Err(LogError::OffsetOutOfRange { offset, start, end });
                }
                let empty = ReadResult {
                    bytes: Vec::new(),
                    high_watermark: end,
                    log_start_offset: start,
                };
                if offset == end {
                    return Ok(empty);
                }
                let (i, pos) = match after {
                    None => {
                        let i = st
                            .segments
                            .partition_point(|s| s.base <= offset)
                            .saturating_sub(1);
                        let seg = &st.segments[i];
                        let rel = u32::try_from(offset - seg.base).unwrap_or(u32::MAX);
                        (i, seg.ix.lookup_offset(rel).map_or(0, |e| u64::from(e.pos)))
                    }
                    Some(b) => {
                        let i = st.segments.partition_point(|s| s.base <= b);
                        if i >= st.segments.len() {
                            return Ok(empty);
                        }
                        (i, 0)
                    }
                };
                let seg = &st.segments[i];
                let interval = self.config().index_interval_bytes;
                let last = i + 1 == st.segments.len();
                (
                    seg.file.clone(),
                    pos,
                    seg.size,
                    end,
                    start,
                    interval,
                    seg.base,
                    last,
                )
            };
            match read_batches(&file, pos, seg_end, offset, max_bytes, min_one, interval)? {
                Some(bytes) => {
                    return Ok(ReadResult {
                        bytes,
                        high_watermark: hw,
                        log_start_offset: start,
                    })
                }
                None if last => {
                    return Ok(ReadResult {
                        bytes: Vec::new(),
                        high_watermark: hw,
                        log_start_offset: start,
                    })
                }
                // Compaction removed everything from `offset` to the end of
                // this segment: continue in the next one.
                None => after = Some(base),
            }
        }
    }

    /// Log end offset: the next offset to be assigned.
    pub fn high_watermark(&self) -> i64 {
        self.hw.load(Ordering::Acquire)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.start.load(Ordering::Acquire)
    }

    /// ListOffsets by timestamp: `(offset, timestamp)` of the first record
    /// (at or after the log start) whose timestamp is >= `timestamp`, found
    /// via the time index. For compressed batches the batch's first offset
    /// and maxTimestamp are returned. `None` if no batch qualifies.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Option<(i64, i64)> {
        let (cands, log_start) = {
            let st = self.lock();
            let log_start = st.log_start;
            let mut cands = Vec::new();
            for s in &st.segments {
                if s.end_offset <= log_start || s.size == 0 {
                    continue;
                }
                if cands.is_empty() {
                    if s.ix.max_ts < timestamp {
                        continue;
                    }
                    let from_time =
                        s.ix.lookup_time_before(timestamp)
                            .and_then(|t| s.ix.lookup_offset(t.rel))
                            .map_or(0, |e| e.pos);
                    let from_start = if log_start > s.base {
                        let rel = u32::try_from(log_start - s.base).unwrap_or(u32::MAX);
                        s.ix.lookup_offset(rel).map_or(0, |e| e.pos)
                    } else {
                        0
                    };
                    cands.push((s.file.clone(), u64::from(from_time.max(from_start)), s.size));
                } else {
                    cands.push((s.file.clone(), 0, s.size));
                }
            }
            (cands, log_start)
        };
        for (file, pos, end) in cands {
            let mut found = None;
            let scan = scan_batches(&file, pos, end, false, |p, h| {
                if h.last_offset() < log_start || h.max_timestamp() < timestamp {
                    return Ok(());
                }
                found = Some((p, h.total_size()));
                Err("found".into())
            });
            if scan.is_err() {
                return None;
            }
            if let Some((p, size)) = found {
                let mut buf = vec![0u8; size];
                file.read_exact_at(&mut buf, p).ok()?;
                let h = BatchHeader::parse(&buf).ok()?;
                if let Some(recs) = batch::records(&h) {
                    if let Some(r) = recs
                        .iter()
                        .find(|r| r.offset >= log_start && r.timestamp >= timestamp)
                    {
                        return Some((r.offset, r.timestamp));
                    }
                }
                return Some((h.base_offset().max(log_start), h.max_timestamp()));
            }
        }
        None
    }

    /// ListOffsets MAX_TIMESTAMP: `(timestamp, offset)` of the largest
    /// timestamp in the log (the first record carrying it; for compressed
    /// batches the batch's first offset). `None` when the log is empty.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let (ts, base) = {
            let st = self.lock();
            if st.next_offset <= st.log_start {
                return None;
            }
            let mut best: Option<(i64, i64)> = None;
            for s in &st.segments {
                if s.size == 0 || s.end_offset <= st.log_start {
                    continue;
                }
                let cand = (s.ix.max_ts, s.base + i64::from(s.ix.max_ts_rel));
                if best.is_none_or(|b| cand.0 > b.0) {
                    best = Some(cand);
                }
            }
            best?
        };
        let offset = self
            .read(base.max(self.log_start_offset()), 1, true)
            .ok()
            .and_then(|r| {
                let h = BatchHeader::parse(&r.bytes).ok()?;
                let recs = batch::records(&h)?;
                recs.iter().find(|r| r.timestamp == ts).map(|r| r.offset)
            })
            .unwrap_or(base);
        Some((ts, offset))
    }

    /// Kafka DeleteRecords: moves the log start offset up to `offset` (-1 =
    /// high watermark), persisting it, and deletes segments entirely below
    /// it. Returns the new log start offset (low watermark).
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let mut st = self.lock();
        let target = if offset == -1 { st.next_offset } else { offset };
        if target < 0 || target > st.next_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: st.log_start,
                end: st.next_offset,
            });
        }
        if target <= st.log_start {
            return Ok(st.log_start);
        }
        fsutil::write_atomic(
            &self.dir.join(LOG_START_FILE),
            target.to_string().as_bytes(),
            true,
        )?;
        st.log_start = target;
        self.start.store(target, Ordering::Release);
        let doomed = take_segments_below(&mut st, target);
        drop(st);
        for b in doomed {
            Segment::delete_files(&self.dir, b);
        }
        Ok(target)
    }

    /// fsyncs data, indexes and the directory, then records the recovery
    /// point. After `flush` returns, a restart needs no rescan.
    pub fn flush(&self) -> Result<(), LogError> {
        self.checkpoint(now_wall_ms())
    }

    /// fsyncs data files only (the `flush.messages` / `flush.ms` path).
    fn sync_data(&self, now_ms: i64) -> Result<(), LogError> {
        let (files, target) = {
            let mut st = self.lock();
            if let Some(f) = &st.failed {
                return Err(LogError::StorageFailed(f.clone()));
            }
            let mut files: Vec<Arc<fs::File>> = st.rolled.iter().map(|u| u.data.clone()).collect();
            if let Some(s) = st.segments.last() {
                files.push(s.file.clone());
            }
            st.last_flush_ms = now_ms;
            (files, st.next_offset)
        };
        for f in &files {
            if let Err(e) = f.sync_data() {
                let mut st = self.lock();
                return Err(self.fail(&mut st, e));
            }
        }
        let mut st = self.lock();
        st.recovery_point = st.recovery_point.max(target);
        Ok(())
    }

    /// Writes pending index entries, fsyncs everything and persists the
    /// recovery point.
    fn checkpoint(&self, now_ms: i64) -> Result<(), LogError> {
        let (files, dir_dirty, target) = {
            let mut st = self.lock();
            if st.deleted {
                return Ok(());
            }
            if let Some(f) = &st.failed {
                return Err(LogError::StorageFailed(f.clone()));
            }
            let res = st.segments.last_mut().map(|s| s.write_indexes());
            if let Some(Err(e)) = res {
                return Err(self.fail(&mut st, e));
            }
            let mut files = Vec::new();
            for u in st.rolled.drain(..) {
                files.push(u.data);
                files.extend(u.idx);
                files.extend(u.tidx);
            }
            if let Some(s) = st.segments.last() {
                files.push(s.file.clone());
                files.extend(s.idx.clone());
                files.extend(s.tidx.clone());
            }
            let dd = std::mem::take(&mut st.dir_dirty);
            st.last_flush_ms = now_ms;
            (files, dd, st.next_offset)
        };
        let mut result = Ok(());
        for f in &files {
            if let Err(e) = f.sync_data() {
                result = Err(e);
                break;
            }
        }
        if result.is_ok() && dir_dirty {
            result = fsutil::sync_dir(&self.dir);
        }
        let mut st = self.lock();
        if let Err(e) = result {
            return Err(self.fail(&mut st, e));
        }
        st.recovery_point = st.recovery_point.max(target);
        if st.checkpointed != st.recovery_point && !st.deleted {
            let rp = st.recovery_point;
            if let Err(e) = fsutil::write_atomic(
                &self.dir.join(RECOVERY_POINT_FILE),
                rp.to_string().as_bytes(),
                false,
            ) {
                return Err(self.fail(&mut st, e));
            }
            st.checkpointed = rp;
        }
        st.last_checkpoint_ms = now_ms;
        Ok(())
    }

    /// Periodic work: roll by age, retention by time and size, interval
    /// flushing and recovery-point checkpoints.
    pub fn maintenance(&self, now_ms: i64) -> Result<(), LogError> {
        let cfg = self.config();
        let mut st = self.lock();
        if st.failed.is_some() {
            return Ok(());
        }
        // Roll by age.
        let age_roll = st.segments.last().is_some_and(|s| {
            s.size > 0
                && s.created_ms
                    .is_some_and(|c| now_ms.saturating_sub(c) >= cfg.segment_ms)
        });
        if age_roll {
            if let Err(e) = self.roll(&mut st, now_ms) {
                return Err(self.fail(&mut st, e));
            }
        }
        // Retention.
        let mut doomed = Vec::new();
        let delete_policy = cfg.cleanup_policy.contains("delete");
        if delete_policy && cfg.retention_ms >= 0 {
            let limit = now_ms.saturating_sub(cfg.retention_ms);
            while st.segments.len() > 1 && st.segments[0].retention_timestamp() < limit {
                doomed.push(st.segments.remove(0).base);
            }
        }
        if delete_policy && cfg.retention_bytes >= 0 {
            let mut total: u64 = st.segments.iter().map(|s| s.size).sum();
            while st.segments.len() > 1 && total - st.segments[0].size >= cfg.retention_bytes as u64
            {
                total -= st.segments[0].size;
                doomed.push(st.segments.remove(0).base);
            }
        }
        let log_start = st.log_start;
        doomed.extend(take_segments_below(&mut st, log_start));
        if let Some(first) = st.segments.first().map(|s| s.base) {
            if first > st.log_start {
                st.log_start = first;
                self.start.store(first, Ordering::Release);
            }
        }
        let flush_due = cfg.flush_ms != i64::MAX
            && now_ms.saturating_sub(st.last_flush_ms) >= cfg.flush_ms
            && st.next_offset > st.recovery_point;
        let checkpoint_due = !st.rolled.is_empty()
            || st.dir_dirty
            || (st.recovery_point != st.checkpointed
                && now_ms.saturating_sub(st.last_checkpoint_ms) >= CHECKPOINT_INTERVAL_MS);
        drop(st);
        for b in &doomed {
            tracing::debug!(topic = %self.topic, partition = self.index, base = b, "deleting segment by retention");
            Segment::delete_files(&self.dir, *b);
        }
        if flush_due {
            self.sync_data(now_ms)?;
        }
        if checkpoint_due {
            self.checkpoint(now_ms)?;
        }
        Ok(())
    }

    /// Number of segments (for tests and metrics).
    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_bases(&self) -> Vec<i64> {
        self.lock().segments.iter().map(|s| s.base).collect()
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.lock().segments.iter().map(|s| s.size).sum()
    }
}

/// Removes (non-active) segments entirely below `offset`; returns their bases.
fn take_segments_below(st: &mut State, offset: i64) -> Vec<i64> {
    let mut out = Vec::new();
    while st.segments.len() > 1
        && st.segments[0].end_offset <= offset
        && st.segments[1].base <= offset
    {
        out.push(st.segments.remove(0).base);
    }
    out
}

fn should_roll(st: &State, cfg: &LogConfig, len: u64, last_offset: i64, now_ms: i64) -> bool {
    let Some(seg) = st.segments.last() else {
        return false;
    };
    if seg.size == 0 {
        return false;
    }
    seg.size.saturating_add(len) > cfg.segment_bytes
        || seg
            .created_ms
            .is_some_and(|c| now_ms.saturating_sub(c) >= cfg.segment_ms)
        || seg.ix.would_overflow(cfg.segment_index_bytes)
        || last_offset - seg.base > i64::from(i32::MAX)
}

/// Reads whole batches from `file` starting at index position `pos`.
/// `None` when no batch in `[pos, seg_end)` reaches `offset`.
fn read_batches(
    file: &fs::File,
    mut pos: u64,
    seg_end: u64,
    offset: i64,
    max_bytes: usize,
    min_one: bool,
    interval: u32,
) -> Result<Option<Vec<u8>>, LogError> {
    let want = (max_bytes as u64)
        .saturating_add(u64::from(interval))
        .saturating_add(4096)
        .max(HEADER_LEN as u64);
    let corrupt =
        |p: u64| LogError::CorruptBatch(format!("stored batch at position {p} is corrupt"));
    // Find the batch containing `offset`.
    let (mut buf, start) = loop {
        let len = want.min(seg_end.saturating_sub(pos));
        if len < HEADER_LEN as u64 {
            return Ok(None);
        }
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, pos)?;
        let mut i = 0usize;
        let mut found = false;
        while i + HEADER_LEN <= buf.len() {
            let h = BatchHeader::parse(&buf[i..]).map_err(|_| corrupt(pos + i as u64))?;
            let size = h.total_size();
            if size < HEADER_LEN {
                return Err(corrupt(pos + i as u64));
            }
            if h.last_offset() >= offset {
                found = true;
                break;
            }
            i += size;
        }
        if found {
            break (buf, i);
        }
        if i == 0 {
            return Ok(None);
        }
        pos += i as u64;
    };
    // Take whole batches up to max_bytes.
    let mut end = start;
    while end + HEADER_LEN <= buf.len() {
        let size = BatchHeader::parse(&buf[end..]).map_or(0, |h| h.total_size());
        if size < HEADER_LEN || end + size > buf.len() || end + size - start > max_bytes {
            break;
        }
        end += size;
    }
    if end == start {
        if !min_one {
            return Ok(Some(Vec::new()));
        }
        let size = BatchHeader::parse(&buf[start..]).map_or(0, |h| h.total_size());
        if size < HEADER_LEN {
            return Err(corrupt(pos + start as u64));
        }
        let at = pos + start as u64;
        if at + size as u64 > seg_end {
            return Err(corrupt(at));
        }
        if start + size <= buf.len() {
            end = start + size;
        } else {
            let mut one = vec![0u8; size];
            file.read_exact_at(&mut one, at)?;
            return Ok(Some(one));
        }
    }
    buf.truncate(end);
    if start > 0 {
        buf.drain(..start);
    }
    Ok(Some(buf))
}

/// Lists segment base offsets in `dir`, removing leftover temp files,
/// unfinished compaction output (`*.cleaned`) and orphaned index files.
fn list_segments(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    let mut others = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") || name.ends_with(compact::CLEANED_SUFFIX) {
            let _ = fs::remove_file(e.path());
        } else if let Some(b) = segment::parse_segment_name(name, LOG_EXT) {
            bases.push(b);
        } else if let Some(b) = segment::parse_segment_name(name, segment::INDEX_EXT)
            .or_else(|| segment::parse_segment_name(name, segment::TIME_INDEX_EXT))
        {
            others.push((b, e.path()));
        }
    }
    bases.sort_unstable();
    for (b, p) in others {
        if bases.binary_search(&b).is_err() {
            let _ = fs::remove_file(p);
        }
    }
    Ok(bases)
}

/// Scans a whole segment, validating every batch and rebuilding its
/// indexes. Truncates a corrupt or torn tail. Returns whether it truncated.
/// With `allow_gaps` (a segment compaction may have rewritten) batch base
/// offsets need only increase; otherwise they must be contiguous.
fn rescan_segment(
    dir: &Path,
    seg: &mut Segment,
    interval: u32,
    allow_gaps: bool,
) -> io::Result<bool> {
    let mut ix = crate::index::Indexes::new();
    let mut expected = seg.base;
    let base = seg.base;
    let end = scan_batches(&seg.file, 0, seg.size, true, |pos, h| {
        if h.base_offset() < expected || (!allow_gaps && h.base_offset() != expected) {
            return Err(format!(
                "batch base offset {} where {}{expected} was expected",
                h.base_offset(),
                if allow_gaps { "at least " } else { "" }
            ));
        }
        let rel = u32::try_from(h.base_offset() - base)
            .map_err(|_| "relative offset overflow".to_string())?;
        if h.last_offset() - base > i64::from(u32::MAX) {
            return Err("relative offset overflow".into());
        }
        ix.on_batch(pos, rel, h.max_timestamp(), interval);
        expected = h.next_offset();
        Ok(())
    })?;
    let truncated = end.valid_end < seg.size;
    if truncated {
        tracing::warn!(
            segment = %segment::segment_path(dir, seg.base, LOG_EXT).display(),
            valid_bytes = end.valid_end,
            file_bytes = seg.size,
            reason = end.error.as_deref().unwrap_or("unknown"),
            "truncating corrupt or torn segment tail"
        );
        seg.file.set_len(end.valid_end)?;
        seg.size = end.valid_end;
    }
    if seg.size > 0 {
        ix.maybe_time_entry();
    }
    seg.ix = ix;
    seg.end_offset = expected;
    seg.rewrite_indexes(dir)?;
    seg.file.sync_data()?;
    Ok(truncated)
}

/// Checks a segment believed clean: its index must be valid and the bytes
/// after the last index entry must be whole, valid batches ending exactly
/// at the end of the file (offsets contiguous, or with `allow_gaps` only
/// increasing). Returns the segment end offset when healthy.
fn verify_tail(seg: &mut Segment, interval: u32, allow_gaps: bool) -> io::Result<Option<i64>> {
    let (start_pos, start_off) = match seg.ix.offsets.last() {
        Some(e) => (u64::from(e.pos), seg.base + i64::from(e.rel)),
        None => return Ok((seg.size == 0).then_some(seg.base)),
    };
    let mut expected = start_off;
    let base = seg.base;
    let mut first = true;
    let mut tail = Vec::new();
    let end = scan_batches(&seg.file, start_pos, seg.size, true, |pos, h| {
        let ok = if first || !allow_gaps {
            h.base_offset() == expected
        } else {
            h.base_offset() >= expected
        };
        if !ok {
            return Err("offset mismatch".into());
        }
        if !first {
            let rel = u32::try_from(h.base_offset() - base).map_err(|_| "overflow".to_string())?;
            tail.push((pos, rel, h.max_timestamp()));
        }
        first = false;
        expected = h.next_offset();
        Ok(())
    })?;
    if end.error.is_some() || end.valid_end != seg.size {
        return Ok(None);
    }
    for (pos, rel, ts) in tail {
        seg.ix.on_batch(pos, rel, ts, interval);
    }
    Ok(Some(expected))
}

/// Opens every segment of a partition directory, recovering what needs it.
/// Segments starting below `cleaned_upto` may have offset gaps.
fn recover(dir: &Path, cfg: &LogConfig, now: i64, cleaned_upto: i64) -> Result<State, LogError> {
    let bases = list_segments(dir)?;
    let stored_start = fsutil::read_i64(&dir.join(LOG_START_FILE))?
        .unwrap_or(0)
        .max(0);
    let rp = fsutil::read_i64(&dir.join(RECOVERY_POINT_FILE))?;
    let interval = cfg.index_interval_bytes;
    let mut segments: Vec<Segment> = Vec::new();
    let mut rescanned = false;

    if bases.is_empty() {
        segments.push(Segment::create(dir, stored_start, now)?);
        fsutil::sync_dir(dir)?;
    } else {
        let first_suspect = match rp {
            None => 0,
            Some(r) => bases.partition_point(|b| *b <= r).saturating_sub(1),
        };
        let n = bases.len();
        let mut i = 0;
        while i < n {
            let base = bases[i];
            let (file, size, mtime) = Segment::open_file(dir, base)?;
            let loaded = Segment::load_indexes(dir, base, size)?;
            let mut seg = Segment {
                base,
                file: Arc::new(file),
                size,
                end_offset: bases.get(i + 1).copied().unwrap_or(base),
                ix: crate::index::Indexes::new(),
                idx: None,
                tidx: None,
                created_ms: None,
                last_modified_ms: mtime.unwrap_or(now),
            };
            let mut healthy = false;
            let allow_gaps = base < cleaned_upto;
            if let Some(ix) = loaded {
                seg.ix = ix;
                if i < first_suspect {
                    healthy = true;
                } else if i + 1 == n && i == first_suspect {
                    if let Some(end) = verify_tail(&mut seg, interval, allow_gaps)? {
                        if Some(end) == rp {
                            seg.end_offset = end;
                            healthy = true;
                        }
                    }
                }
            } else if i < first_suspect {
                tracing::warn!(dir = %dir.display(), base, "segment index missing or stale; rebuilding");
            }
            let mut cut = false;
            if !healthy {
                rescanned = true;
                let truncated = rescan_segment(dir, &mut seg, interval, allow_gaps)?;
                if let Some(&next) = bases.get(i + 1) {
                    let misplaced =
                        next < seg.end_offset || (!allow_gaps && next != seg.end_offset);
                    if truncated || misplaced {
                        cut = true;
                    } else {
                        // A compacted segment's range ends where the next begins.
                        seg.end_offset = next;
                    }
                }
            }
            segments.push(seg);
            if cut {
                for &b in &bases[i + 1..] {
                    tracing::warn!(dir = %dir.display(), base = b, "deleting segment after a corrupt one");
                    Segment::delete_files(dir, b);
                }
                break;
            }
            i += 1;
        }
    }
    let next_offset = segments.last().map_or(0, |s| s.end_offset);
    if let Some(active) = segments.last_mut() {
        active.open_indexes_for_append(dir)?;
        if active.size > 0 {
            let mut h = [0u8; HEADER_LEN];
            let first_ts = active
                .file
                .read_exact_at(&mut h, 0)
                .ok()
                .and_then(|_| BatchHeader::parse(&h).ok())
                .map(|h| h.max_timestamp())
                .filter(|t| *t >= 0);
            active.created_ms = Some(first_ts.unwrap_or(now));
        }
    }
    let first_base = segments.first().map_or(0, |s| s.base);
    let log_start = stored_start.max(first_base).min(next_offset);
    let recovery_point = if rescanned {
        fsutil::sync_dir(dir)?;
        fsutil::write_atomic(
            &dir.join(RECOVERY_POINT_FILE),
            next_offset.to_string().as_bytes(),
            false,
        )?;
        next_offset
    } else {
        rp.unwrap_or(next_offset)
    };
    Ok(State {
        segments,
        next_offset,
        log_start,
        failed: None,
        recovery_point,
        checkpointed: recovery_point,
        last_checkpoint_ms: now,
        last_flush_ms: now,
        rolled: Vec::new(),
        dir_dirty: false,
        deleted: false,
    })
}
