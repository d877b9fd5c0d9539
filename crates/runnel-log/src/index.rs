//! Sparse offset and time indexes of a segment, kept in memory and written
//! to `.index` / `.timeindex` files.
//!
//! * `.index`: 8-byte entries `relativeOffset u32 BE · position u32 BE`,
//!   where relativeOffset = batch base offset − segment base offset and
//!   position is the batch's byte position in the `.log` file. Strictly
//!   increasing in both fields.
//! * `.timeindex`: 12-byte entries `timestamp i64 BE · relativeOffset u32 BE`:
//!   the segment's max timestamp so far and the relative base offset of the
//!   first batch that reached it. Strictly increasing timestamps.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub(crate) const OFFSET_ENTRY: usize = 8;
pub(crate) const TIME_ENTRY: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub rel: u32,
    pub pos: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub ts: i64,
    pub rel: u32,
}

/// Both indexes of one segment plus the bookkeeping to maintain them.
#[derive(Debug, Default)]
pub(crate) struct Indexes {
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
    /// Entries already written to the files.
    pub offsets_written: usize,
    pub times_written: usize,
    /// Position of the batch of the last offset entry.
    last_indexed_pos: Option<u64>,
    /// Max timestamp of the segment so far and the relative offset of the
    /// first batch that reached it.
    pub max_ts: i64,
    pub max_ts_rel: u32,
}

impl Indexes {
    pub fn new() -> Self {
        Indexes {
            max_ts: -1,
            ..Default::default()
        }
    }

    /// Accounts for a batch at `pos` with relative base offset `rel` and
    /// max timestamp `max_ts`. Indexes it when it is the first batch or at
    /// least `interval` bytes follow the previously indexed batch.
    #[inline]
    pub fn on_batch(&mut self, pos: u64, rel: u32, max_ts: i64, interval: u32) {
        if self.last_indexed_pos.is_none() || max_ts > self.max_ts {
            self.max_ts = max_ts;
            self.max_ts_rel = rel;
        }
        let due = match self.last_indexed_pos {
            None => true,
            Some(p) => pos.saturating_sub(p) >= u64::from(interval),
        };
        if due {
            self.offsets.push(OffsetEntry {
                rel,
                pos: pos as u32,
            });
            self.last_indexed_pos = Some(pos);
            self.maybe_time_entry();
        }
    }

    /// Appends a time entry if the max timestamp grew since the last one
    /// (or there is none yet).
    pub fn maybe_time_entry(&mut self) {
        match self.times.last() {
            Some(t) if t.ts >= self.max_ts => {}
            _ => self.times.push(TimeEntry {
                ts: self.max_ts,
                rel: self.max_ts_rel,
            }),
        }
    }

    /// Largest offset entry with rel <= `rel`.
    pub fn lookup_offset(&self, rel: u32) -> Option<OffsetEntry> {
        let i = self.offsets.partition_point(|e| e.rel <= rel);
        i.checked_sub(1).map(|i| self.offsets[i])
    }

    /// Largest time entry with ts < `ts` (every batch before its offset has a
    /// smaller max timestamp than `ts`).
    pub fn lookup_time_before(&self, ts: i64) -> Option<TimeEntry> {
        let i = self.times.partition_point(|e| e.ts < ts);
        i.checked_sub(1).map(|i| self.times[i])
    }

    pub fn would_overflow(&self, index_bytes: u32) -> bool {
        let bytes = index_bytes as usize;
        let max_off = (bytes / OFFSET_ENTRY).max(1);
        let max_time = (bytes / TIME_ENTRY).max(1);
        self.offsets.len() >= max_off || self.times.len() >= max_time
    }

    /// Writes not-yet-written entries to the files (no fsync). Returns
    /// whether anything was written.
    pub fn write_pending(&mut self, idx: &File, tidx: &File) -> io::Result<bool> {
        let mut wrote = false;
        if self.offsets_written < self.offsets.len() {
            let mut buf =
                Vec::with_capacity((self.offsets.len() - self.offsets_written) * OFFSET_ENTRY);
            for e in &self.offsets[self.offsets_written..] {
                buf.extend_from_slice(&e.rel.to_be_bytes());
                buf.extend_from_slice(&e.pos.to_be_bytes());
            }
            idx.write_all_at(&buf, (self.offsets_written * OFFSET_ENTRY) as u64)?;
            self.offsets_written = self.offsets.len();
            wrote = true;
        }
        if self.times_written < self.times.len() {
            let mut buf = Vec::with_capacity((self.times.len() - self.times_written) * TIME_ENTRY);
            for e in &self.times[self.times_written..] {
                buf.extend_from_slice(&e.ts.to_be_bytes());
                buf.extend_from_slice(&e.rel.to_be_bytes());
            }
            tidx.write_all_at(&buf, (self.times_written * TIME_ENTRY) as u64)?;
            self.times_written = self.times.len();
            wrote = true;
        }
        Ok(wrote)
    }

    /// Parses index files. Returns `None` when they are inconsistent with a
    /// segment of `seg_size` bytes (torn entries, non-monotonic entries,
    /// positions past the end, or empty while the segment is not).
    pub fn parse(idx: &[u8], tidx: &[u8], seg_size: u64) -> Option<Indexes> {
        if !idx.chunks_exact(OFFSET_ENTRY).remainder().is_empty()
            || !tidx.chunks_exact(TIME_ENTRY).remainder().is_empty()
        {
            return None;
        }
        if seg_size > 0 && (idx.is_empty() || tidx.is_empty()) {
            return None;
        }
        let mut ix = Indexes::new();
        for c in idx.chunks_exact(OFFSET_ENTRY) {
            let rel = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            let pos = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
            if let Some(l) = ix.offsets.last() {
                if rel <= l.rel || pos <= l.pos {
                    return None;
                }
            } else if pos != 0 {
                // The first batch is always indexed (after compaction its
                // offset may be above the segment base).
                return None;
            }
            if u64::from(pos) >= seg_size {
                return None;
            }
            ix.offsets.push(OffsetEntry { rel, pos });
        }
        for c in tidx.chunks_exact(TIME_ENTRY) {
            let mut t = [0u8; 8];
            t.copy_from_slice(&c[..8]);
            let ts = i64::from_be_bytes(t);
            let rel = u32::from_be_bytes([c[8], c[9], c[10], c[11]]);
            if let Some(l) = ix.times.last() {
                if ts <= l.ts || rel < l.rel {
                    return None;
                }
            }
            ix.times.push(TimeEntry { ts, rel });
        }
        if let Some(t) = ix.times.last() {
            ix.max_ts = t.ts;
            ix.max_ts_rel = t.rel;
        }
        ix.last_indexed_pos = ix.offsets.last().map(|e| u64::from(e.pos));
        ix.offsets_written = ix.offsets.len();
        ix.times_written = ix.times.len();
        Some(ix)
    }

    /// Sets the in-memory state as if every entry was freshly built (used
    /// by rebuilds, which then rewrite whole files).
    pub fn mark_unwritten(&mut self) {
        self.offsets_written = 0;
        self.times_written = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_entries_and_lookup() {
        let mut ix = Indexes::new();
        let mut pos = 0;
        for i in 0..10u32 {
            ix.on_batch(pos, i * 2, 100 + i64::from(i), 250);
            pos += 100;
        }
        // entries at pos 0, 300, 600, 900
        assert_eq!(ix.offsets.len(), 4);
        assert_eq!(ix.lookup_offset(5), Some(OffsetEntry { rel: 0, pos: 0 }));
        assert_eq!(ix.lookup_offset(6), Some(OffsetEntry { rel: 6, pos: 300 }));
        assert_eq!(ix.max_ts, 109);
        assert_eq!(ix.lookup_time_before(100), None);
        assert_eq!(ix.lookup_time_before(104).map(|t| t.rel), Some(6));
        let mut a = Vec::new();
        let mut b = Vec::new();
        for e in &ix.offsets {
            a.extend_from_slice(&e.rel.to_be_bytes());
            a.extend_from_slice(&e.pos.to_be_bytes());
        }
        for e in &ix.times {
            b.extend_from_slice(&e.ts.to_be_bytes());
            b.extend_from_slice(&e.rel.to_be_bytes());
        }
        let p = Indexes::parse(&a, &b, 1000).unwrap();
        assert_eq!(p.offsets, ix.offsets);
        assert!(Indexes::parse(&a, &b, 900).is_none());
        assert!(Indexes::parse(&a[..7], &b, 1000).is_none());
        assert!(Indexes::parse(&[], &[], 1000).is_none());
        assert!(Indexes::parse(&[], &[], 0).is_some());
    }
}
