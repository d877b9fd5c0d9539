//! Kafka v2 record batches: a zero-copy header view, validation and
//! iteration over a buffer of concatenated batches.
//!
//! Header layout (all big-endian):
//!
//! | offset | field                | type |
//! |-------:|----------------------|------|
//! | 0      | baseOffset           | i64  |
//! | 8      | batchLength          | i32  (bytes after this field; total = 12 + batchLength) |
//! | 12     | partitionLeaderEpoch | i32  |
//! | 16     | magic                | i8   (must be 2) |
//! | 17     | crc                  | u32  (CRC-32C over bytes `[21..end]`) |
//! | 21     | attributes           | i16  |
//! | 23     | lastOffsetDelta      | i32  |
//! | 27     | baseTimestamp        | i64  |
//! | 35     | maxTimestamp         | i64  |
//! | 43     | producerId           | i64  |
//! | 51     | producerEpoch        | i16  |
//! | 53     | baseSequence         | i32  |
//! | 57     | recordCount          | i32  |
//! | 61     | records…             |      |

use crate::LogError;

/// Size of the fixed v2 batch header.
pub const HEADER_LEN: usize = 61;
/// Bytes before (and including) the batchLength field.
pub const LOG_OVERHEAD: usize = 12;
/// The only supported magic value.
pub const MAGIC_V2: i8 = 2;

pub const BASE_OFFSET_OFFSET: usize = 0;
pub const LENGTH_OFFSET: usize = 8;
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub const MAGIC_OFFSET: usize = 16;
pub const CRC_OFFSET: usize = 17;
pub const ATTRIBUTES_OFFSET: usize = 21;
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
pub const PRODUCER_ID_OFFSET: usize = 43;
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
pub const BASE_SEQUENCE_OFFSET: usize = 53;
pub const RECORD_COUNT_OFFSET: usize = 57;
pub const RECORDS_OFFSET: usize = 61;

/// Smallest possible encoded record (all varints one byte, no key, value
/// or headers).
pub const MIN_RECORD_LEN: usize = 7;

/// attributes bits 0-2.
pub const COMPRESSION_MASK: i16 = 0x07;
/// attributes bit 3: 1 = LogAppendTime.
pub const TIMESTAMP_TYPE_BIT: i16 = 0x08;
/// attributes bit 4.
pub const TRANSACTIONAL_BIT: i16 = 0x10;
/// attributes bit 5.
pub const CONTROL_BIT: i16 = 0x20;
/// attributes bit 6 (KIP-534): baseTimestamp holds the batch's delete
/// horizon, set by compaction on batches keeping tombstones or markers.
pub const DELETE_HORIZON_BIT: i16 = 0x40;

#[inline]
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
#[inline]
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
#[inline]
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// A zero-copy view of a v2 batch header. Holds at least [`HEADER_LEN`]
/// bytes; [`BatchHeader::bytes`] is the whole batch when it was produced by
/// [`validate_batch`] / [`BatchIter`], otherwise whatever was given.
#[derive(Clone, Copy, Debug)]
pub struct BatchHeader<'a> {
    buf: &'a [u8],
}

impl<'a> BatchHeader<'a> {
    /// Views the header at the start of `buf`. Checks only that the fixed
    /// header is present; no length, magic or CRC checks.
    pub fn parse(buf: &'a [u8]) -> Result<Self, LogError> {
        if buf.len() < HEADER_LEN {
            return Err(LogError::CorruptBatch(format!(
                "{} bytes is shorter than a batch header ({HEADER_LEN})",
                buf.len()
            )));
        }
        Ok(BatchHeader { buf })
    }

    /// The bytes this view was created from.
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }
    pub fn base_offset(&self) -> i64 {
        be_i64(self.buf, BASE_OFFSET_OFFSET)
    }
    pub fn batch_length(&self) -> i32 {
        be_i32(self.buf, LENGTH_OFFSET)
    }
    /// Total size of the batch in bytes (12 + batchLength); 0 when the
    /// length field is negative.
    pub fn total_size(&self) -> usize {
        usize::try_from(self.batch_length()).map_or(0, |l| l + LOG_OVERHEAD)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.buf, PARTITION_LEADER_EPOCH_OFFSET)
    }
    pub fn magic(&self) -> i8 {
        self.buf[MAGIC_OFFSET] as i8
    }
    pub fn crc(&self) -> u32 {
        be_i32(self.buf, CRC_OFFSET) as u32
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.buf, ATTRIBUTES_OFFSET)
    }
    /// Compression codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes() & COMPRESSION_MASK) as u8
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & TIMESTAMP_TYPE_BIT != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }
    /// The delete horizon (ms) compaction stored in baseTimestamp, if set.
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.attributes() & DELETE_HORIZON_BIT != 0).then(|| self.base_timestamp())
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.buf, LAST_OFFSET_DELTA_OFFSET)
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.buf, BASE_TIMESTAMP_OFFSET)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.buf, MAX_TIMESTAMP_OFFSET)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.buf, PRODUCER_ID_OFFSET)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.buf, PRODUCER_EPOCH_OFFSET)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.buf, BASE_SEQUENCE_OFFSET)
    }
    pub fn record_count(&self) -> i32 {
        be_i32(self.buf, RECORD_COUNT_OFFSET)
    }
    /// baseOffset + lastOffsetDelta (saturating).
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .saturating_add(i64::from(self.last_offset_delta()))
    }
    /// The offset following this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }
    /// Number of offsets this batch occupies (lastOffsetDelta + 1).
    pub fn offset_count(&self) -> i64 {
        i64::from(self.last_offset_delta()) + 1
    }
    /// CRC-32C computed over the bytes this view holds (`[21..]`).
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.buf[ATTRIBUTES_OFFSET..])
    }
}

/// Checks the batch at the start of `buf` structurally (length, magic,
/// offsets, record count) without the CRC. Returns the header viewing
/// exactly the batch's bytes.
pub fn check_structure(buf: &[u8], max_size: usize) -> Result<BatchHeader<'_>, LogError> {
    if buf.len() < LOG_OVERHEAD {
        return Err(LogError::CorruptBatch(format!(
            "{} trailing bytes are not a batch",
            buf.len()
        )));
    }
    if buf.len() > MAGIC_OFFSET {
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(LogError::UnsupportedMagic(magic));
        }
    }
    let len = be_i32(buf, LENGTH_OFFSET);
    let total = usize::try_from(len).map_or(0, |l| l.saturating_add(LOG_OVERHEAD));
    if total < HEADER_LEN {
        return Err(LogError::CorruptBatch(format!(
            "batch length {len} is too small"
        )));
    }
    if total > buf.len() {
        return Err(LogError::CorruptBatch(format!(
            "batch of {total} bytes extends past the {} available",
            buf.len()
        )));
    }
    if total > max_size {
        return Err(LogError::BatchTooLarge {
            size: total,
            max: max_size,
        });
    }
    let h = BatchHeader { buf: &buf[..total] };
    let delta = h.last_offset_delta();
    if delta < 0 {
        return Err(LogError::CorruptBatch(format!(
            "negative lastOffsetDelta {delta}"
        )));
    }
    let count = h.record_count();
    if count <= 0 {
        return Err(LogError::CorruptBatch(format!(
            "recordCount {count} must be positive"
        )));
    }
    if i64::from(count) > h.offset_count() {
        return Err(LogError::CorruptBatch(format!(
            "recordCount {count} exceeds lastOffsetDelta+1 ({})",
            h.offset_count()
        )));
    }
    Ok(h)
}

/// Fully validates the batch at the start of `buf`: structure (see
/// [`check_structure`]) plus CRC-32C. Returns a header viewing exactly the
/// batch's bytes.
pub fn validate_batch(buf: &[u8], max_size: usize) -> Result<BatchHeader<'_>, LogError> {
    let h = check_structure(buf, max_size)?;
    let computed = h.compute_crc();
    if computed != h.crc() {
        return Err(LogError::CorruptBatch(format!(
            "crc mismatch: stored {:#010x}, computed {computed:#010x}",
            h.crc()
        )));
    }
    Ok(h)
}

/// Iterates the batches of a buffer, validating each one (structure and
/// CRC). Yields an error once and then stops at the first invalid batch.
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    max_size: usize,
    verify_crc: bool,
    done: bool,
}

impl<'a> BatchIter<'a> {
    /// Iterate with full validation; batches larger than `max_size` fail.
    pub fn new(buf: &'a [u8], max_size: usize) -> Self {
        BatchIter {
            buf,
            pos: 0,
            max_size,
            verify_crc: true,
            done: false,
        }
    }
    /// Iterate with structural checks only (no CRC), for already-validated
    /// data such as bytes read back from the log.
    pub fn unchecked_crc(buf: &'a [u8]) -> Self {
        BatchIter {
            buf,
            pos: 0,
            max_size: usize::MAX,
            verify_crc: false,
            done: false,
        }
    }
    /// Byte position of the next batch in the buffer.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<BatchHeader<'a>, LogError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let r = if self.verify_crc {
            validate_batch(rest, self.max_size)
        } else {
            check_structure(rest, self.max_size)
        };
        match r {
            Ok(h) => {
                self.pos += h.bytes().len();
                Some(Ok(h))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Iterates and validates every batch in `buf` (see [`BatchIter::new`]).
pub fn batches(buf: &[u8], max_size: usize) -> BatchIter<'_> {
    BatchIter::new(buf, max_size)
}

/// Summary of a validated produce payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadSummary {
    /// Number of batches.
    pub batches: usize,
    /// Offsets the payload occupies (sum of lastOffsetDelta + 1).
    pub offset_count: i64,
    /// Number of records (sum of recordCount).
    pub record_count: i64,
}

/// Validates a produce payload (one or more batches, each fully checked).
/// An empty payload is rejected. Records must satisfy
/// `recordCount == lastOffsetDelta + 1`, as Kafka requires for produce.
pub fn validate_payload(buf: &[u8], max_size: usize) -> Result<PayloadSummary, LogError> {
    validate_payload_inner(buf, max_size, None)
}

/// Like [`validate_payload`], but additionally stamps every batch with
/// LogAppendTime `now_ms` (attribute bit 3 set, maxTimestamp = now, CRC
/// recomputed) when `log_append_time` is `Some(now_ms)`. Only one CRC pass
/// over the records is made per batch.
pub fn validate_payload_mut(
    buf: &mut [u8],
    max_size: usize,
    log_append_time: Option<i64>,
) -> Result<PayloadSummary, LogError> {
    // Validate first (no mutation on failure), then stamp.
    match log_append_time {
        None => validate_payload_inner(buf, max_size, None),
        Some(now) => {
            let mut crcs = Vec::new();
            let s = validate_payload_inner(buf, max_size, Some(&mut crcs))?;
            let mut pos = 0;
            for records_crc in crcs {
                let total = BatchHeader { buf: &buf[pos..] }.total_size();
                let b = &mut buf[pos..pos + total];
                stamp_log_append_time(b, now, records_crc);
                pos += total;
            }
            Ok(s)
        }
    }
}

fn validate_payload_inner(
    buf: &[u8],
    max_size: usize,
    mut records_crcs: Option<&mut Vec<u32>>,
) -> Result<PayloadSummary, LogError> {
    if buf.is_empty() {
        return Err(LogError::CorruptBatch("empty produce payload".into()));
    }
    let mut s = PayloadSummary {
        batches: 0,
        offset_count: 0,
        record_count: 0,
    };
    let mut pos = 0;
    while pos < buf.len() {
        let h = check_structure(&buf[pos..], max_size)?;
        let b = h.bytes();
        let head_crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..RECORDS_OFFSET]);
        let tail = &b[RECORDS_OFFSET..];
        let tail_crc = crc32c::crc32c(tail);
        let crc = crc32c::crc32c_combine(head_crc, tail_crc, tail.len());
        if crc != h.crc() {
            return Err(LogError::CorruptBatch(format!(
                "crc mismatch: stored {:#010x}, computed {crc:#010x}",
                h.crc()
            )));
        }
        if i64::from(h.record_count()) != h.offset_count() {
            return Err(LogError::CorruptBatch(format!(
                "recordCount {} does not match lastOffsetDelta+1 ({})",
                h.record_count(),
                h.offset_count()
            )));
        }
        // Cheap sanity check without per-record work: an uncompressed
        // record takes at least 7 bytes.
        if h.compression() == 0
            && (b.len() - RECORDS_OFFSET)
                < (h.record_count() as usize).saturating_mul(MIN_RECORD_LEN)
        {
            return Err(LogError::CorruptBatch(format!(
                "{} records cannot fit in {} bytes",
                h.record_count(),
                b.len() - RECORDS_OFFSET
            )));
        }
        if let Some(v) = records_crcs.as_deref_mut() {
            v.push(tail_crc);
        }
        s.batches += 1;
        s.offset_count += h.offset_count();
        s.record_count += i64::from(h.record_count());
        pos += b.len();
    }
    Ok(s)
}

fn stamp_log_append_time(b: &mut [u8], now: i64, records_crc: u32) {
    let attrs = be_i16(b, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_BIT;
    b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
    b[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now.to_be_bytes());
    let head = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..RECORDS_OFFSET]);
    let crc = crc32c::crc32c_combine(head, records_crc, b.len() - RECORDS_OFFSET);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Sets LogAppendTime on one whole batch and recomputes its CRC.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) -> Result<(), LogError> {
    let total = BatchHeader::parse(batch)?.total_size();
    if total < HEADER_LEN || total > batch.len() {
        return Err(LogError::CorruptBatch("bad batch length".into()));
    }
    let records_crc = crc32c::crc32c(&batch[RECORDS_OFFSET..total]);
    stamp_log_append_time(&mut batch[..total], now_ms, records_crc);
    Ok(())
}

/// Overwrites the baseOffset field (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// One decoded record of an uncompressed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// Reads a zigzag varlong at `*pos`, advancing it.
pub(crate) fn read_varlong(b: &[u8], pos: &mut usize) -> Option<i64> {
    let mut v: u64 = 0;
    let mut shift = 0u32;
    loop {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    Some(((v >> 1) as i64) ^ -((v & 1) as i64))
}

/// Appends `v` as a zigzag varlong: the one writer of the varints of v2
/// records, the inverse of [`read_varlong`].
pub(crate) fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Appends varlong-length-prefixed bytes (length -1 for `None`), the
/// inverse of [`read_bytes`].
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// Reads varlong-length-prefixed bytes (`None` for length -1).
pub(crate) fn read_bytes<'a>(b: &'a [u8], pos: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = read_varlong(b, pos)?;
    if len < 0 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    let end = pos.checked_add(len)?;
    let s = b.get(*pos..end)?;
    *pos = end;
    Some(Some(s))
}

/// Decodes the records of an uncompressed batch (`None` when the batch is
/// compressed or malformed). Timestamps honour LogAppendTime.
pub fn records<'a>(h: &BatchHeader<'a>) -> Option<Vec<Record<'a>>> {
    if h.compression() != 0 {
        return None;
    }
    let b = h.bytes();
    let end = h.total_size().min(b.len());
    let body = b.get(RECORDS_OFFSET..end)?;
    let count = usize::try_from(h.record_count()).ok()?;
    let mut out = Vec::with_capacity(count.min(body.len()));
    let mut pos = 0usize;
    for _ in 0..count {
        let len = usize::try_from(read_varlong(body, &mut pos)?).ok()?;
        let rec_end = pos.checked_add(len)?;
        let r = body.get(..rec_end)?;
        pos += 1; // attributes
        let ts_delta = read_varlong(r, &mut pos)?;
        let off_delta = read_varlong(r, &mut pos)?;
        let key = read_bytes(r, &mut pos)?;
        let value = read_bytes(r, &mut pos)?;
        let nh = usize::try_from(read_varlong(r, &mut pos)?).ok()?;
        let mut headers = Vec::with_capacity(nh.min(r.len()));
        for _ in 0..nh {
            let k = read_bytes(r, &mut pos)?.unwrap_or(&[]);
            let v = read_bytes(r, &mut pos)?;
            headers.push((k, v));
        }
        if pos != rec_end {
            return None;
        }
        let timestamp = if h.is_log_append_time() {
            h.max_timestamp()
        } else {
            h.base_timestamp().wrapping_add(ts_delta)
        };
        out.push(Record {
            offset: h.base_offset().wrapping_add(off_delta),
            timestamp,
            key,
            value,
            headers,
        });
    }
    Some(out)
}

/// The older name of [`build`], kept for tests.
pub use build as testing;

/// The header fields of a batch to encode: taken from an existing batch
/// ([`BatchTemplate::of`]) to re-encode it, or computed by
/// [`build::build_batch_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchTemplate {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    /// Including the codec (bits 0-2).
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl BatchTemplate {
    /// The header fields of an existing batch.
    pub fn of(h: &BatchHeader<'_>) -> BatchTemplate {
        BatchTemplate {
            base_offset: h.base_offset(),
            partition_leader_epoch: h.partition_leader_epoch(),
            attributes: h.attributes(),
            last_offset_delta: h.last_offset_delta(),
            base_timestamp: h.base_timestamp(),
            max_timestamp: h.max_timestamp(),
            producer_id: h.producer_id(),
            producer_epoch: h.producer_epoch(),
            base_sequence: h.base_sequence(),
        }
    }
}

/// Writing v2 record batches: the one encoder of records and batch
/// headers in Runnel. [`build::build_batch_with`] writes uncompressed
/// batches (the coordinators' records, control batches, in-process
/// producers and test data); [`crate::codec::encode_batch`] re-encodes
/// decoded records with a codec (compaction). Both go through one record
/// writer and one header writer, and produce batches that
/// [`validate_batch`] accepts.
pub mod build {
    use super::*;

    /// A record to encode with [`build_batch`] (despite the name, also what
    /// the broker's coordinators and in-process producers write).
    #[derive(Debug, Clone, Default)]
    pub struct TestRecord {
        pub timestamp_delta: i64,
        pub key: Option<Vec<u8>>,
        pub value: Option<Vec<u8>>,
        pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    }

    /// The records section of a batch being written (uncompressed).
    #[derive(Debug, Default)]
    pub(crate) struct RecordWriter {
        body: Vec<u8>,
        scratch: Vec<u8>,
        count: usize,
    }

    impl RecordWriter {
        /// Appends one record (length-prefixed, as in a v2 batch).
        pub(crate) fn push(
            &mut self,
            attributes: i8,
            timestamp_delta: i64,
            offset_delta: i64,
            key: Option<&[u8]>,
            value: Option<&[u8]>,
            headers: &[(Vec<u8>, Option<Vec<u8>>)],
        ) {
            let r = &mut self.scratch;
            r.clear();
            r.push(attributes as u8);
            put_varlong(r, timestamp_delta);
            put_varlong(r, offset_delta);
            put_bytes(r, key);
            put_bytes(r, value);
            put_varlong(r, headers.len() as i64);
            for (k, v) in headers {
                put_bytes(r, Some(k));
                put_bytes(r, v.as_deref());
            }
            put_varlong(&mut self.body, r.len() as i64);
            self.body.extend_from_slice(r);
            self.count += 1;
        }

        /// Records pushed so far.
        pub(crate) fn count(&self) -> usize {
            self.count
        }

        /// The encoded records section.
        pub(crate) fn into_body(self) -> Vec<u8> {
            self.body
        }
    }

    /// A whole batch: the header from `t`, then `records` (the records
    /// section as stored: compressed when `t.attributes` names a codec),
    /// then the CRC-32C over attributes..end. `batch_length` and `count`
    /// are the batchLength and recordCount fields.
    pub(crate) fn assemble(
        t: &BatchTemplate,
        batch_length: i32,
        count: i32,
        records: &[u8],
    ) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN + records.len());
        b.extend_from_slice(&t.base_offset.to_be_bytes());
        b.extend_from_slice(&batch_length.to_be_bytes());
        b.extend_from_slice(&t.partition_leader_epoch.to_be_bytes());
        b.push(MAGIC_V2 as u8);
        b.extend_from_slice(&0u32.to_be_bytes()); // CRC, filled below
        b.extend_from_slice(&t.attributes.to_be_bytes());
        b.extend_from_slice(&t.last_offset_delta.to_be_bytes());
        b.extend_from_slice(&t.base_timestamp.to_be_bytes());
        b.extend_from_slice(&t.max_timestamp.to_be_bytes());
        b.extend_from_slice(&t.producer_id.to_be_bytes());
        b.extend_from_slice(&t.producer_epoch.to_be_bytes());
        b.extend_from_slice(&t.base_sequence.to_be_bytes());
        b.extend_from_slice(&count.to_be_bytes());
        b.extend_from_slice(records);
        let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// Encodes an uncompressed v2 batch with base offset 0, the given base
    /// timestamp and records (offset delta = index), with a valid CRC.
    /// maxTimestamp is the largest record timestamp.
    pub fn build_batch(base_timestamp: i64, records: &[TestRecord]) -> Vec<u8> {
        build_batch_with(base_timestamp, records, -1, -1, -1, 0)
    }

    /// Full-control variant of [`build_batch`]. `attributes` are written as
    /// given; the records are not compressed.
    pub fn build_batch_with(
        base_timestamp: i64,
        records: &[TestRecord],
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
        attributes: i16,
    ) -> Vec<u8> {
        let mut w = RecordWriter::default();
        let mut max_delta = 0i64;
        for (i, r) in records.iter().enumerate() {
            w.push(
                0,
                r.timestamp_delta,
                i as i64,
                r.key.as_deref(),
                r.value.as_deref(),
                &r.headers,
            );
            max_delta = max_delta.max(r.timestamp_delta);
        }
        let n = w.count() as i32;
        let body = w.into_body();
        let t = BatchTemplate {
            base_offset: 0,
            partition_leader_epoch: -1,
            attributes,
            last_offset_delta: (n - 1).max(0),
            base_timestamp,
            max_timestamp: base_timestamp + max_delta,
            producer_id,
            producer_epoch,
            base_sequence,
        };
        assemble(
            &t,
            (HEADER_LEN - LOG_OVERHEAD + body.len()) as i32,
            n,
            &body,
        )
    }

    /// `n` records with values `"{prefix}-{i}"` padded to `value_len` bytes,
    /// timestamps `base_timestamp + i`.
    pub fn simple_batch(base_timestamp: i64, n: usize, value_len: usize) -> Vec<u8> {
        let recs: Vec<TestRecord> = (0..n)
            .map(|i| {
                let mut v = format!("v-{i}").into_bytes();
                v.resize(value_len.max(v.len()), b'x');
                TestRecord {
                    timestamp_delta: i as i64,
                    key: Some(format!("k-{i}").into_bytes()),
                    value: Some(v),
                    headers: Vec::new(),
                }
            })
            .collect();
        build_batch(base_timestamp, &recs)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn build_and_validate() {
        let b = simple_batch(1000, 5, 10);
        let h = validate_batch(&b, usize::MAX).unwrap();
        assert_eq!(h.record_count(), 5);
        assert_eq!(h.last_offset_delta(), 4);
        assert_eq!(h.max_timestamp(), 1004);
        assert_eq!(h.total_size(), b.len());
        let recs = records(&h).unwrap();
        assert_eq!(recs.len(), 5);
        assert_eq!(recs[3].offset, 3);
        assert_eq!(recs[3].timestamp, 1003);
        assert_eq!(recs[3].key, Some(&b"k-3"[..]));
    }

    #[test]
    fn rejects_bad_crc_magic_size() {
        let mut b = simple_batch(0, 3, 10);
        let n = b.len();
        b[n - 1] ^= 1;
        assert!(matches!(
            validate_batch(&b, usize::MAX),
            Err(LogError::CorruptBatch(_))
        ));
        let mut b = simple_batch(0, 3, 10);
        b[MAGIC_OFFSET] = 1;
        assert!(matches!(
            validate_batch(&b, usize::MAX),
            Err(LogError::UnsupportedMagic(1))
        ));
        let b = simple_batch(0, 3, 10);
        assert!(matches!(
            validate_batch(&b, 20),
            Err(LogError::BatchTooLarge { .. })
        ));
        assert!(validate_batch(&b[..b.len() - 1], usize::MAX).is_err());
        assert!(validate_payload(&[], usize::MAX).is_err());
    }

    #[test]
    fn base_offset_not_in_crc() {
        let mut b = simple_batch(0, 3, 10);
        set_base_offset(&mut b, 12345);
        let h = validate_batch(&b, usize::MAX).unwrap();
        assert_eq!(h.base_offset(), 12345);
        assert_eq!(h.last_offset(), 12347);
    }

    #[test]
    fn log_append_time_stamp() {
        let mut payload = simple_batch(5, 3, 10);
        payload.extend(simple_batch(7, 2, 10));
        let s = validate_payload_mut(&mut payload, usize::MAX, Some(99_999)).unwrap();
        assert_eq!(s.batches, 2);
        assert_eq!(s.offset_count, 5);
        for h in batches(&payload, usize::MAX) {
            let h = h.unwrap();
            assert!(h.is_log_append_time());
            assert_eq!(h.max_timestamp(), 99_999);
        }
        let mut one = simple_batch(5, 3, 10);
        set_log_append_time(&mut one, 42).unwrap();
        assert_eq!(
            validate_batch(&one, usize::MAX).unwrap().max_timestamp(),
            42
        );
    }

    #[test]
    fn varlongs_round_trip_at_the_edges() {
        for v in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            300,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut b = Vec::new();
            put_varlong(&mut b, v);
            let mut pos = 0;
            assert_eq!(read_varlong(&b, &mut pos), Some(v));
            assert_eq!(pos, b.len());
        }
        let mut b = Vec::new();
        put_varlong(&mut b, -1);
        assert_eq!(b, [1], "zigzag: -1 is 1");
        put_bytes(&mut b, None);
        put_bytes(&mut b, Some(b"ab"));
        let mut pos = 1;
        assert_eq!(read_bytes(&b, &mut pos), Some(None));
        assert_eq!(read_bytes(&b, &mut pos), Some(Some(&b"ab"[..])));
    }

    /// The bytes of a small batch, pinned: what the broker's coordinators
    /// write to `__consumer_offsets` and `__transaction_state` must not
    /// change shape.
    #[test]
    fn builder_output_is_pinned() {
        let b = build_batch(
            0x10,
            &[TestRecord {
                timestamp_delta: 0,
                key: Some(b"k".to_vec()),
                value: None,
                headers: Vec::new(),
            }],
        );
        let mut want = Vec::new();
        want.extend_from_slice(&0i64.to_be_bytes()); // base offset
        want.extend_from_slice(&(49 + 8i32).to_be_bytes()); // batch length
        want.extend_from_slice(&(-1i32).to_be_bytes()); // leader epoch
        want.push(2); // magic
        want.extend_from_slice(&[0; 4]); // crc, checked below
        want.extend_from_slice(&0i16.to_be_bytes()); // attributes
        want.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
        want.extend_from_slice(&0x10i64.to_be_bytes()); // base timestamp
        want.extend_from_slice(&0x10i64.to_be_bytes()); // max timestamp
        want.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
        want.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        want.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
        want.extend_from_slice(&1i32.to_be_bytes()); // record count
                                                     // length 7: attributes 0, ts delta 0, offset delta 0, key len 1,
                                                     // "k", value -1, no headers
        want.extend_from_slice(&[14, 0, 0, 0, 2, b'k', 1, 0]);
        let crc = crc32c::crc32c(&want[ATTRIBUTES_OFFSET..]);
        want[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(b, want);
    }

    fn record_strategy() -> impl proptest::strategy::Strategy<Value = TestRecord> {
        use proptest::collection::vec;
        use proptest::prelude::*;
        let bytes = || proptest::option::of(vec(any::<u8>(), 0..40));
        (
            -5_000i64..5_000,
            bytes(),
            bytes(),
            vec((vec(any::<u8>(), 0..8), bytes()), 0..3),
        )
            .prop_map(|(timestamp_delta, key, value, headers)| TestRecord {
                timestamp_delta,
                key,
                value,
                headers,
            })
    }

    proptest::proptest! {
        /// Whatever the builder writes validates (CRC included) and reads
        /// back through both decoders, and re-encoding the decoded records
        /// (any codec) gives the same records; uncompressed, the same bytes.
        #[test]
        fn builder_round_trips(
            recs in proptest::collection::vec(record_strategy(), 1..8),
            pid in -1i64..3,
            base_ts in 0i64..1_000_000,
        ) {
            use crate::codec::{decode_records, encode_batch, GZIP, LZ4, NONE, SNAPPY, ZSTD};
            let b = build_batch_with(base_ts, &recs, pid, 0, 0, 0);
            let h = validate_batch(&b, usize::MAX).expect("valid batch");
            proptest::prop_assert_eq!(h.record_count() as usize, recs.len());
            proptest::prop_assert_eq!(h.last_offset_delta() as usize, recs.len() - 1);
            let max_delta = recs.iter().map(|r| r.timestamp_delta).max().unwrap_or(0).max(0);
            proptest::prop_assert_eq!(h.max_timestamp(), base_ts + max_delta);
            let views = records(&h).expect("records");
            let owned = decode_records(&h, usize::MAX).expect("decode");
            for (i, r) in recs.iter().enumerate() {
                proptest::prop_assert_eq!(views[i].offset, i as i64);
                proptest::prop_assert_eq!(views[i].timestamp, base_ts + r.timestamp_delta);
                proptest::prop_assert_eq!(views[i].key, r.key.as_deref());
                proptest::prop_assert_eq!(views[i].value, r.value.as_deref());
                proptest::prop_assert_eq!(&owned[i].key, &r.key);
                proptest::prop_assert_eq!(&owned[i].value, &r.value);
                proptest::prop_assert_eq!(&owned[i].headers, &r.headers);
            }
            for codec in [NONE, GZIP, SNAPPY, LZ4, ZSTD] {
                let mut t = BatchTemplate::of(&h);
                t.attributes |= i16::from(codec);
                let again = encode_batch(&t, &owned).expect("encode");
                if codec == NONE {
                    proptest::prop_assert_eq!(&again, &b);
                }
                let h2 = validate_batch(&again, usize::MAX).expect("valid re-encoding");
                proptest::prop_assert_eq!(h2.compression(), codec);
                proptest::prop_assert_eq!(&decode_records(&h2, usize::MAX).expect("decode"), &owned);
            }
        }

        #[test]
        fn varlongs_round_trip(v in proptest::prelude::any::<i64>()) {
            let mut b = Vec::new();
            put_varlong(&mut b, v);
            let mut pos = 0;
            proptest::prop_assert_eq!(read_varlong(&b, &mut pos), Some(v));
            proptest::prop_assert_eq!(pos, b.len());
        }
    }

    proptest::proptest! {
        #[test]
        fn validator_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = validate_payload(&bytes, 1 << 20);
            let mut m = bytes.clone();
            let _ = validate_payload_mut(&mut m, 1 << 20, Some(1));
            for h in batches(&bytes, usize::MAX).flatten() {
                let _ = records(&h);
            }
            for h in BatchIter::unchecked_crc(&bytes).flatten() {
                let _ = records(&h);
                let _ = h.next_offset();
            }
        }

        #[test]
        fn validator_on_mutated_valid_batch(idx in 0usize..400, val in proptest::prelude::any::<u8>()) {
            let mut b = simple_batch(0, 4, 20);
            b.extend(simple_batch(10, 2, 20));
            let i = idx % b.len();
            b[i] = val;
            let _ = validate_payload(&b, 1 << 20);
            let mut m = b.clone();
            let _ = validate_payload_mut(&mut m, 1 << 20, Some(1));
            for h in BatchIter::unchecked_crc(&b).flatten() {
                let _ = records(&h);
            }
        }
    }
}
