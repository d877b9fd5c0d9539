//! One segment: a `.log` file of verbatim v2 batches plus its indexes.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::index::Indexes;

pub(crate) const LOG_EXT: &str = "log";
pub(crate) const INDEX_EXT: &str = "index";
pub(crate) const TIME_INDEX_EXT: &str = "timeindex";

/// `<dir>/<20-digit base offset>.<ext>`.
pub(crate) fn segment_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

/// Parses `00000000000000000042.log` style names.
pub(crate) fn parse_segment_name(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

pub(crate) struct Segment {
    pub base: i64,
    pub file: Arc<File>,
    /// Committed bytes (everything below is whole, valid batches).
    pub size: u64,
    /// Offset after the last batch (== base when empty).
    pub end_offset: i64,
    pub ix: Indexes,
    /// Open index files (active segment only).
    pub idx: Option<Arc<File>>,
    pub tidx: Option<Arc<File>>,
    /// Reference time for roll by age; `None` until the first append.
    pub created_ms: Option<i64>,
    /// Last append time (file mtime after reopen).
    pub last_modified_ms: i64,
}

fn open_rw(path: &Path, create_new: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true);
    if create_new {
        o.create_new(true);
    }
    o.open(path)
}

impl Segment {
    /// Creates a new, empty segment with its index files.
    pub fn create(dir: &Path, base: i64, now_ms: i64) -> io::Result<Segment> {
        let file = open_rw(&segment_path(dir, base, LOG_EXT), true)?;
        let (idx, tidx) = open_index_files(dir, base, true)?;
        Ok(Segment {
            base,
            file: Arc::new(file),
            size: 0,
            end_offset: base,
            ix: Indexes::new(),
            idx: Some(Arc::new(idx)),
            tidx: Some(Arc::new(tidx)),
            created_ms: None,
            last_modified_ms: now_ms,
        })
    }

    /// Opens an existing `.log` file (indexes are loaded by the caller).
    pub fn open_file(dir: &Path, base: i64) -> io::Result<(File, u64, Option<i64>)> {
        let file = open_rw(&segment_path(dir, base, LOG_EXT), false)?;
        let meta = file.metadata()?;
        Ok((file, meta.len(), crate::fsutil::mtime_ms(&meta)))
    }

    /// Loads and checks the index files; `None` if missing or stale.
    pub fn load_indexes(dir: &Path, base: i64, size: u64) -> io::Result<Option<Indexes>> {
        let idx = crate::fsutil::read_opt(&segment_path(dir, base, INDEX_EXT))?;
        let tidx = crate::fsutil::read_opt(&segment_path(dir, base, TIME_INDEX_EXT))?;
        Ok(match (idx, tidx) {
            (Some(a), Some(b)) => Indexes::parse(&a, &b, size),
            _ => None,
        })
    }

    /// Rewrites both index files from the in-memory entries and fsyncs them.
    pub fn rewrite_indexes(&mut self, dir: &Path) -> io::Result<()> {
        let (idx, tidx) = open_index_files(dir, self.base, true)?;
        self.ix.mark_unwritten();
        self.ix.write_pending(&idx, &tidx)?;
        idx.sync_all()?;
        tidx.sync_all()?;
        Ok(())
    }

    /// Opens the index files for appending (they must be consistent with
    /// `self.ix`).
    pub fn open_indexes_for_append(&mut self, dir: &Path) -> io::Result<()> {
        let (idx, tidx) = open_index_files(dir, self.base, false)?;
        self.idx = Some(Arc::new(idx));
        self.tidx = Some(Arc::new(tidx));
        Ok(())
    }

    /// Appends the final time entry and writes pending index entries.
    pub fn write_indexes(&mut self) -> io::Result<()> {
        if self.size > 0 {
            self.ix.maybe_time_entry();
        }
        if let (Some(i), Some(t)) = (&self.idx, &self.tidx) {
            self.ix.write_pending(i, t)?;
        }
        Ok(())
    }

    /// Largest timestamp used for time-based retention.
    pub fn retention_timestamp(&self) -> i64 {
        if self.ix.max_ts >= 0 {
            self.ix.max_ts
        } else {
            self.last_modified_ms
        }
    }

    pub fn delete_files(dir: &Path, base: i64) {
        for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
            let p = segment_path(dir, base, ext);
            if let Err(e) = fs::remove_file(&p) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %p.display(), error = %e, "failed to delete segment file");
                }
            }
        }
    }
}

/// Opens (creating; truncating when `truncate`) both index files.
fn open_index_files(dir: &Path, base: i64, truncate: bool) -> io::Result<(File, File)> {
    let open = |ext| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(truncate)
            .open(segment_path(dir, base, ext))
    };
    Ok((open(INDEX_EXT)?, open(TIME_INDEX_EXT)?))
}

/// Reads a file through a large buffer for sequential batch scans.
pub(crate) struct ChunkReader<'f> {
    file: &'f File,
    end: u64,
    buf: Vec<u8>,
    buf_pos: u64,
}

const CHUNK: usize = 1 << 20;

impl<'f> ChunkReader<'f> {
    pub fn new(file: &'f File, end: u64) -> Self {
        ChunkReader {
            file,
            end,
            buf: Vec::new(),
            buf_pos: 0,
        }
    }

    /// `len` bytes at `pos`, or `None` if they extend past `end`.
    pub fn get(&mut self, pos: u64, len: usize) -> io::Result<Option<&[u8]>> {
        let want_end = match pos.checked_add(len as u64) {
            Some(e) if e <= self.end => e,
            _ => return Ok(None),
        };
        let have_end = self.buf_pos + self.buf.len() as u64;
        if pos < self.buf_pos || want_end > have_end {
            let n = (self.end - pos).min(len.max(CHUNK) as u64) as usize;
            self.buf.resize(n, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_pos = pos;
        }
        let start = (pos - self.buf_pos) as usize;
        Ok(Some(&self.buf[start..start + len]))
    }
}

/// How a scan ended.
pub(crate) struct ScanEnd {
    /// Position after the last accepted batch.
    pub valid_end: u64,
    /// Why the scan stopped before `end`, if it did.
    pub error: Option<String>,
}

/// Walks the batches of `file` in `[start, end)`, validating structure and
/// (when `verify_crc`) CRC. `f(pos, header)` returns `Err(reason)` to stop
/// as if the batch were invalid.
pub(crate) fn scan_batches(
    file: &File,
    start: u64,
    end: u64,
    verify_crc: bool,
    mut f: impl FnMut(u64, &BatchHeader<'_>) -> Result<(), String>,
) -> io::Result<ScanEnd> {
    let mut r = ChunkReader::new(file, end);
    let mut pos = start;
    while pos < end {
        let head = match r.get(pos, HEADER_LEN)? {
            Some(h) => h,
            None => {
                return Ok(ScanEnd {
                    valid_end: pos,
                    error: Some(format!("{} trailing bytes", end - pos)),
                })
            }
        };
        let size = match BatchHeader::parse(head) {
            Ok(h) => h.total_size(),
            Err(e) => {
                return Ok(ScanEnd {
                    valid_end: pos,
                    error: Some(e.to_string()),
                })
            }
        };
        if size < HEADER_LEN {
            return Ok(ScanEnd {
                valid_end: pos,
                error: Some(format!("bad batch length at position {pos}")),
            });
        }
        let whole = match r.get(pos, size)? {
            Some(b) => b,
            None => {
                return Ok(ScanEnd {
                    valid_end: pos,
                    error: Some(format!("torn batch of {size} bytes at position {pos}")),
                })
            }
        };
        let checked = if verify_crc {
            batch::validate_batch(whole, usize::MAX)
        } else {
            batch::check_structure(whole, usize::MAX)
        };
        let h = match checked {
            Ok(h) => h,
            Err(e) => {
                return Ok(ScanEnd {
                    valid_end: pos,
                    error: Some(format!("{e} at position {pos}")),
                })
            }
        };
        if let Err(reason) = f(pos, &h) {
            return Ok(ScanEnd {
                valid_end: pos,
                error: Some(format!("{reason} at position {pos}")),
            });
        }
        pos += size as u64;
    }
    Ok(ScanEnd {
        valid_end: pos,
        error: None,
    })
}
