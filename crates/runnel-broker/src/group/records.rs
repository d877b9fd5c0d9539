//! What the coordinator's internal topics (`__consumer_offsets`,
//! `__share_group_state`) have in common: keys and values are big-endian
//! fields read with a bounds-checked [`Reader`], written one uncompressed
//! batch per write ([`append`]), and replayed from the log start on open
//! ([`replay`]), where the last record of a key wins.

use runnel_log::batch::build::{build_batch, TestRecord};
use runnel_log::batch::{self};
use runnel_log::{LogError, Partition};
use tracing::warn;

/// Reading a topic on open: bytes per read call.
const REPLAY_CHUNK: usize = 1 << 20;

/// A bounds-checked reader over a record's bytes.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn i64(&mut self) -> Option<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(i64::from_be_bytes(a))
    }
    /// `u16 len` + UTF-8.
    pub(crate) fn string(&mut self) -> Option<String> {
        let len = usize::from(self.u16()?);
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    /// `u8` 0 (null) or 1 + a string.
    pub(crate) fn opt_string(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => self.string().map(Some),
            _ => None,
        }
    }
    /// `u32 count` + that many strings.
    pub(crate) fn strings(&mut self) -> Option<Vec<String>> {
        let n = self.u32()?;
        (0..n).map(|_| self.string()).collect()
    }
}

/// Writes `u16 len` + UTF-8 (cut at 65,535 bytes).
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let len = b.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&b[..len]);
}

/// Writes a nullable string: `u8` 0, or 1 and the string.
pub(crate) fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

/// Writes `u32 count` + the strings.
pub(crate) fn put_strs<'a>(out: &mut Vec<u8>, items: impl ExactSizeIterator<Item = &'a String>) {
    out.extend_from_slice(&(items.len() as u32).to_be_bytes());
    for s in items {
        put_str(out, s);
    }
}

/// A record to write: key, value (`None`: a tombstone).
pub(crate) type KeyValue = (Vec<u8>, Option<Vec<u8>>);

/// Appends the records as one batch. Blocking.
pub(crate) fn append(
    partition: &Partition,
    records: Vec<KeyValue>,
    now_ms: i64,
) -> Result<(), LogError> {
    if records.is_empty() {
        return Ok(());
    }
    let records: Vec<TestRecord> = records
        .into_iter()
        .map(|(key, value)| TestRecord {
            key: Some(key),
            value,
            ..TestRecord::default()
        })
        .collect();
    let mut data = build_batch(now_ms, &records);
    partition.append(&mut data, now_ms)?;
    Ok(())
}

/// Calls `apply(offset, key, value)` for every record of `partition` with a
/// key, in log order; `apply` says whether it knew the record (unknown ones
/// are skipped with a warning). Returns how many it knew.
pub(crate) fn replay(
    partition: &Partition,
    topic: &str,
    mut apply: impl FnMut(&[u8], Option<&[u8]>) -> bool,
) -> Result<u64, LogError> {
    let mut offset = partition.log_start_offset();
    let end = partition.high_watermark();
    let mut count = 0u64;
    while offset < end {
        let read = partition.read(offset, REPLAY_CHUNK, true)?;
        if read.bytes.is_empty() {
            break;
        }
        let before = offset;
        for header in batch::BatchIter::unchecked_crc(&read.bytes) {
            let Ok(header) = header else { break };
            offset = offset.max(header.next_offset());
            let Some(records) = batch::records(&header) else {
                warn!(
                    base_offset = header.base_offset(),
                    "skipping an undecodable batch in {topic}"
                );
                continue;
            };
            for r in records {
                if r.offset < before {
                    continue;
                }
                let known = r.key.is_some_and(|key| apply(key, r.value));
                if known {
                    count += 1;
                } else {
                    warn!(offset = r.offset, "skipping an unknown record in {topic}");
                }
            }
        }
        if offset == before {
            break;
        }
    }
    Ok(count)
}
