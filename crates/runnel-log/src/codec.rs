//! Record-level decoding and encoding of v2 batches, including compressed
//! ones.
//!
//! The produce and fetch paths never need this: they move whole batches.
//! It is used where records matter: log compaction (which drops records and
//! re-encodes what is left) and the broker's key check on compacted topics.
//!
//! Compression codecs (attributes bits 0-2):
//!
//! * 1 gzip (`flate2`);
//! * 2 snappy: Kafka's Java client writes the xerial framing (a 16-byte
//!   header `\x82SNAPPY\0` + version i32 + compatible-version i32, then
//!   blocks of `u32 BE length` + a raw snappy block); librdkafka may write
//!   one raw snappy block. Both are accepted (as is the snappy framing
//!   format); recompression writes xerial framing;
//! * 3 lz4 frame format (independent 64 KiB blocks, no checksums on write);
//! * 4 zstd.
//!
//! Decompression is capped (see [`decompression_limit`]): a batch that
//! inflates beyond the cap is an error, so a small "bomb" cannot exhaust
//! memory.

use std::io::{Read, Write};

use crate::batch::{BatchHeader, COMPRESSION_MASK, HEADER_LEN, LOG_OVERHEAD, RECORDS_OFFSET};
use crate::LogError;

/// No compression.
pub const NONE: u8 = 0;
/// gzip.
pub const GZIP: u8 = 1;
/// snappy (xerial framing or raw).
pub const SNAPPY: u8 = 2;
/// lz4 frame format.
pub const LZ4: u8 = 3;
/// zstd.
pub const ZSTD: u8 = 4;

/// Smallest decompression cap, whatever `max.message.bytes` is.
const MIN_DECOMPRESSION_LIMIT: usize = 16 << 20;

/// The decompressed-size cap for batches of a topic whose
/// `max.message.bytes` is `max_message_bytes`: ten times that, at least
/// 16 MiB.
pub fn decompression_limit(max_message_bytes: usize) -> usize {
    max_message_bytes
        .saturating_mul(10)
        .max(MIN_DECOMPRESSION_LIMIT)
}

/// The xerial snappy stream header magic.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// Length of the xerial header (magic + version + compatible version).
const XERIAL_HEADER_LEN: usize = 16;
/// Uncompressed bytes per xerial block written (Java's default is 32 KiB).
const XERIAL_BLOCK: usize = 32 * 1024;
/// Stream identifier chunk of the snappy framing format.
const SNAPPY_FRAME_MAGIC: &[u8; 10] = b"\xff\x06\x00\x00sNaPpY";

fn corrupt(msg: impl Into<String>) -> LogError {
    LogError::CorruptBatch(msg.into())
}

/// Reads `r` to the end, failing once more than `limit` bytes come out.
fn read_capped(r: impl Read, limit: usize, what: &str) -> Result<Vec<u8>, LogError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    r.take(cap)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(format!("{what} decompression failed: {e}")))?;
    if out.len() > limit {
        return Err(too_big(limit));
    }
    Ok(out)
}

fn too_big(limit: usize) -> LogError {
    corrupt(format!(
        "records decompress to more than the {limit}-byte limit"
    ))
}

/// Decompresses a batch's records section with `codec`, producing at most
/// `limit` bytes.
pub fn decompress(codec: u8, data: &[u8], limit: usize) -> Result<Vec<u8>, LogError> {
    match codec {
        NONE => {
            if data.len() > limit {
                return Err(too_big(limit));
            }
            Ok(data.to_vec())
        }
        GZIP => read_capped(flate2::read::MultiGzDecoder::new(data), limit, "gzip"),
        SNAPPY => snappy_decompress(data, limit),
        LZ4 => {
            let d = lz4::Decoder::new(data).map_err(|e| corrupt(format!("lz4: {e}")))?;
            read_capped(d, limit, "lz4")
        }
        ZSTD => {
            let d = zstd::stream::read::Decoder::new(data)
                .map_err(|e| corrupt(format!("zstd: {e}")))?;
            read_capped(d, limit, "zstd")
        }
        other => Err(corrupt(format!("unknown compression codec {other}"))),
    }
}

fn snappy_raw(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), LogError> {
    let n = snap::raw::decompress_len(block).map_err(|e| corrupt(format!("snappy: {e}")))?;
    let start = out.len();
    if n > limit.saturating_sub(start) {
        return Err(too_big(limit));
    }
    out.resize(start + n, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| corrupt(format!("snappy: {e}")))?;
    out.truncate(start + written);
    Ok(())
}

fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, LogError> {
    let mut out = Vec::new();
    if data.len() >= XERIAL_HEADER_LEN && data.starts_with(XERIAL_MAGIC) {
        let mut rest = &data[XERIAL_HEADER_LEN..];
        while !rest.is_empty() {
            let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                return Err(corrupt("snappy: torn xerial block length"));
            };
            let len = u32::from_be_bytes(*len) as usize;
            if len > tail.len() {
                return Err(corrupt("snappy: xerial block extends past the batch"));
            }
            let (block, next) = tail.split_at(len);
            snappy_raw(block, &mut out, limit)?;
            rest = next;
        }
        Ok(out)
    } else if data.starts_with(SNAPPY_FRAME_MAGIC) {
        read_capped(snap::read::FrameDecoder::new(data), limit, "snappy")
    } else {
        snappy_raw(data, &mut out, limit)?;
        Ok(out)
    }
}

/// Compresses a records section with `codec` (snappy: xerial framing).
pub fn compress(codec: u8, data: &[u8]) -> Result<Vec<u8>, LogError> {
    let io = |what: &str, e: std::io::Error| corrupt(format!("{what} compression failed: {e}"));
    match codec {
        NONE => Ok(data.to_vec()),
        GZIP => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).map_err(|e| io("gzip", e))?;
            e.finish().map_err(|e| io("gzip", e))
        }
        SNAPPY => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + data.len() / 2);
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut enc = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK) {
                let block = enc
                    .compress_vec(chunk)
                    .map_err(|e| corrupt(format!("snappy compression failed: {e}")))?;
                let len =
                    u32::try_from(block.len()).map_err(|_| corrupt("snappy block too large"))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        LZ4 => {
            let mut e = lz4::EncoderBuilder::new()
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(Vec::new())
                .map_err(|e| io("lz4", e))?;
            e.write_all(data).map_err(|e| io("lz4", e))?;
            let (out, r) = e.finish();
            r.map_err(|e| io("lz4", e))?;
            Ok(out)
        }
        ZSTD => zstd::stream::encode_all(data, 0).map_err(|e| io("zstd", e)),
        other => Err(corrupt(format!("unknown compression codec {other}"))),
    }
}

/// One decoded record, owning its bytes. `offset_delta` and
/// `timestamp_delta` are the values stored in the record; `offset` and
/// `timestamp` are absolute (the timestamp honours LogAppendTime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    pub attributes: i8,
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

use crate::batch::build::{assemble, RecordWriter};
use crate::batch::{read_bytes, read_varlong};

/// Decodes one record body (after its length varint).
fn decode_record(r: &[u8], h: &BatchHeader<'_>) -> Option<OwnedRecord> {
    let mut pos = 0usize;
    let attributes = *r.first()? as i8;
    pos += 1;
    let timestamp_delta = read_varlong(r, &mut pos)?;
    let offset_delta = i32::try_from(read_varlong(r, &mut pos)?).ok()?;
    let key = read_bytes(r, &mut pos)?.map(<[u8]>::to_vec);
    let value = read_bytes(r, &mut pos)?.map(<[u8]>::to_vec);
    let nh = usize::try_from(read_varlong(r, &mut pos)?).ok()?;
    let mut headers = Vec::with_capacity(nh.min(r.len()));
    for _ in 0..nh {
        let k = read_bytes(r, &mut pos)?.unwrap_or(&[]).to_vec();
        let v = read_bytes(r, &mut pos)?.map(<[u8]>::to_vec);
        headers.push((k, v));
    }
    if pos != r.len() {
        return None;
    }
    let timestamp = if h.is_log_append_time() {
        h.max_timestamp()
    } else {
        h.base_timestamp().wrapping_add(timestamp_delta)
    };
    Some(OwnedRecord {
        attributes,
        offset_delta,
        timestamp_delta,
        offset: h.base_offset().wrapping_add(i64::from(offset_delta)),
        timestamp,
        key,
        value,
        headers,
    })
}

/// Decodes every record of a batch (compressed or not). `h` must view the
/// whole batch (as [`crate::batch::check_structure`] returns it); at most
/// `limit` decompressed bytes are produced.
pub fn decode_records(h: &BatchHeader<'_>, limit: usize) -> Result<Vec<OwnedRecord>, LogError> {
    let b = h.bytes();
    let end = h.total_size().min(b.len());
    let body = b
        .get(RECORDS_OFFSET..end)
        .ok_or_else(|| corrupt("batch shorter than its header"))?;
    let raw;
    let body = if h.compression() == NONE {
        body
    } else {
        raw = decompress(h.compression(), body, limit)?;
        &raw[..]
    };
    let count = usize::try_from(h.record_count())
        .map_err(|_| corrupt(format!("negative record count {}", h.record_count())))?;
    let bad = |i: usize| {
        corrupt(format!(
            "record {i} of the batch at offset {} is malformed",
            h.base_offset()
        ))
    };
    let mut out = Vec::with_capacity(count.min(body.len() / 7 + 1));
    let mut pos = 0usize;
    for i in 0..count {
        let len = read_varlong(body, &mut pos)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| bad(i))?;
        let rec_end = pos.checked_add(len).ok_or_else(|| bad(i))?;
        let r = body.get(pos..rec_end).ok_or_else(|| bad(i))?;
        out.push(decode_record(r, h).ok_or_else(|| bad(i))?);
        pos = rec_end;
    }
    if pos != body.len() {
        return Err(corrupt(format!(
            "{} bytes after the last record of the batch at offset {}",
            body.len() - pos,
            h.base_offset()
        )));
    }
    Ok(out)
}

/// The header fields of a batch to re-encode (see [`encode_batch`]).
pub use crate::batch::BatchTemplate;

/// Encodes a v2 batch from `t` and `records`, which keep the offset and
/// timestamp deltas they carry (`offset`/`timestamp` are ignored), so a
/// subset of a batch's records re-encodes with its original offsets. The
/// records are compressed with the codec in `t.attributes`; the CRC-32C is
/// computed. Fails on an empty record list or an unknown codec.
pub fn encode_batch(t: &BatchTemplate, records: &[OwnedRecord]) -> Result<Vec<u8>, LogError> {
    if records.is_empty() {
        return Err(corrupt("a batch needs at least one record"));
    }
    let count =
        i32::try_from(records.len()).map_err(|_| corrupt("too many records for one batch"))?;
    let mut w = RecordWriter::default();
    for r in records {
        w.push(
            r.attributes,
            r.timestamp_delta,
            i64::from(r.offset_delta),
            r.key.as_deref(),
            r.value.as_deref(),
            &r.headers,
        );
    }
    let codec = (t.attributes & COMPRESSION_MASK) as u8;
    let body = compress(codec, &w.into_body())?;
    let len = i32::try_from(HEADER_LEN - LOG_OVERHEAD + body.len())
        .map_err(|_| corrupt("re-encoded batch too large"))?;
    Ok(assemble(t, len, count, &body))
}

/// Checks that every record of every batch in a produce payload has a key
/// (compacted topics refuse keyless records). Batches are validated (CRC)
/// and decompressed up to `limit` bytes each. Errors: the batch's own
/// validation error, or [`LogError::InvalidRecord`] for keyless records.
pub fn require_keys(payload: &[u8], limit: usize) -> Result<(), LogError> {
    match keyless_records(payload, limit)?.first() {
        None => Ok(()),
        Some(_) => Err(LogError::InvalidRecord(KEYLESS.into())),
    }
}

/// Why a compacted topic refuses a record.
pub const KEYLESS: &str = "a compacted topic cannot take a record without a key";

/// One record of a produced payload, as the produce path's checks see it.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// Its index in the payload, control batches aside (KIP-467's
    /// `batch_index`).
    pub index: i32,
    /// Its offset as the producer numbered it (base offset + delta).
    pub offset: i64,
    /// Its timestamp (batch base timestamp + delta).
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Calls `f` with every record of a produced payload, decompressing (up to
/// `limit`) as needed: the produce path's record-level checks.
pub fn for_each_record(
    payload: &[u8],
    limit: usize,
    mut f: impl FnMut(RecordRef<'_>),
) -> Result<(), LogError> {
    let mut index = 0i32;
    for h in crate::batch::BatchIter::new(payload, usize::MAX) {
        let h = h?;
        if h.is_control() {
            continue;
        }
        if h.compression() == NONE {
            let records = crate::batch::records(&h)
                .ok_or_else(|| corrupt("malformed records in an uncompressed batch"))?;
            for r in &records {
                f(RecordRef {
                    index,
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key,
                    value: r.value,
                });
                index = index.saturating_add(1);
            }
        } else {
            for r in &decode_records(&h, limit)? {
                f(RecordRef {
                    index,
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key.as_deref(),
                    value: r.value.as_deref(),
                });
                index = index.saturating_add(1);
            }
        }
    }
    Ok(())
}

/// Indexes (in the payload, control batches aside) of records without a
/// key: what a compacted topic refuses (KIP-467 record errors).
pub fn keyless_records(payload: &[u8], limit: usize) -> Result<Vec<i32>, LogError> {
    let mut out = Vec::new();
    for_each_record(payload, limit, |r| {
        if r.key.is_none() {
            out.push(r.index);
        }
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{validate_batch, BatchHeader, ATTRIBUTES_OFFSET};

    fn rec(i: i32, key: Option<&str>, value: Option<&str>) -> OwnedRecord {
        OwnedRecord {
            attributes: 0,
            offset_delta: i,
            timestamp_delta: i64::from(i) * 3,
            offset: 0,
            timestamp: 0,
            key: key.map(|k| k.as_bytes().to_vec()),
            value: value.map(|v| v.as_bytes().to_vec()),
            headers: vec![(b"h".to_vec(), Some(vec![i as u8]))],
        }
    }

    fn template(codec: u8) -> BatchTemplate {
        BatchTemplate {
            base_offset: 100,
            partition_leader_epoch: -1,
            attributes: i16::from(codec),
            last_offset_delta: 9,
            base_timestamp: 1_000,
            max_timestamp: 1_027,
            producer_id: 7,
            producer_epoch: 1,
            base_sequence: 40,
        }
    }

    #[test]
    fn every_codec_round_trips_with_gaps() {
        let recs = vec![
            rec(0, Some("a"), Some("x".repeat(300).as_str())),
            rec(4, Some("b"), None),
            rec(9, None, Some("z")),
        ];
        for codec in [NONE, GZIP, SNAPPY, LZ4, ZSTD] {
            let b = encode_batch(&template(codec), &recs).unwrap();
            let h = validate_batch(&b, usize::MAX).unwrap();
            assert_eq!(h.compression(), codec);
            assert_eq!(h.record_count(), 3);
            assert_eq!(h.last_offset(), 109);
            assert_eq!((h.producer_id(), h.base_sequence()), (7, 40));
            let got = decode_records(&h, 1 << 20).unwrap();
            assert_eq!(
                got.iter().map(|r| r.offset).collect::<Vec<_>>(),
                vec![100, 104, 109]
            );
            assert_eq!(
                got.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
                vec![1000, 1012, 1027]
            );
            assert_eq!(got[1].value, None);
            assert_eq!(got[2].key, None);
            assert_eq!(got[0].headers, recs[0].headers);
            // Bombs are refused instead of inflating past the limit.
            if codec != NONE {
                assert!(matches!(
                    decode_records(&h, 100),
                    Err(LogError::CorruptBatch(_))
                ));
            }
        }
    }

    #[test]
    fn snappy_raw_and_framed_inputs_are_accepted() {
        let data = b"hello hello hello hello snappy".repeat(20);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(SNAPPY, &raw, 1 << 20).unwrap(), data);
        let mut framed = Vec::new();
        {
            let mut w = snap::write::FrameEncoder::new(&mut framed);
            w.write_all(&data).unwrap();
        }
        assert_eq!(decompress(SNAPPY, &framed, 1 << 20).unwrap(), data);
        let xerial = compress(SNAPPY, &data).unwrap();
        assert!(xerial.starts_with(XERIAL_MAGIC));
        assert_eq!(decompress(SNAPPY, &xerial, 1 << 20).unwrap(), data);
        assert!(decompress(SNAPPY, &xerial, 10).is_err());
        assert!(decompress(SNAPPY, &xerial[..xerial.len() - 3], 1 << 20).is_err());
        assert!(decompress(9, &data, 1 << 20).is_err());
    }

    #[test]
    fn require_keys_sees_inside_compressed_batches() {
        let keyed = encode_batch(&template(GZIP), &[rec(0, Some("k"), Some("v"))]).unwrap();
        require_keys(&keyed, 1 << 20).unwrap();
        let mut payload = keyed.clone();
        payload.extend(encode_batch(&template(ZSTD), &[rec(0, None, Some("v"))]).unwrap());
        assert!(matches!(
            require_keys(&payload, 1 << 20),
            Err(LogError::InvalidRecord(_))
        ));
        assert_eq!(keyless_records(&payload, 1 << 20).unwrap(), vec![1]);
        let plain = crate::batch::build::simple_batch(0, 2, 4);
        require_keys(&plain, 1 << 20).unwrap();
        let mut bad = keyed;
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(matches!(
            require_keys(&bad, 1 << 20),
            Err(LogError::CorruptBatch(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn decoding_garbage_never_panics(codec in 0u8..6, bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = decompress(codec, &bytes, 1 << 16);
            let mut b = encode_batch(&template(NONE), &[rec(0, Some("k"), Some("v"))]).unwrap();
            b.truncate(RECORDS_OFFSET);
            b.extend_from_slice(&bytes);
            b[ATTRIBUTES_OFFSET + 1] = codec;
            let len = (b.len() - LOG_OVERHEAD) as i32;
            b[8..12].copy_from_slice(&len.to_be_bytes());
            if let Ok(h) = BatchHeader::parse(&b) {
                let _ = decode_records(&h, 1 << 16);
            }
        }
    }
}
