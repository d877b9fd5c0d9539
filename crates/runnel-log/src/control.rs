//! Transaction markers: the control batches that end a producer's
//! transaction on a partition, written by the broker's transaction
//! coordinator and read by producer-state rebuilding and compaction.
//!
//! A marker is a batch with the transactional and control attribute bits
//! and one record whose key is `version: i16 = 0, type: i16` (0 abort,
//! 1 commit) and whose value is `version: i16 = 0, coordinator epoch: i32`
//! (Kafka's `EndTransactionMarker`).

use crate::batch::build::{build_batch_with, TestRecord};
use crate::batch::{BatchHeader, CONTROL_BIT, TRANSACTIONAL_BIT};
use crate::codec;

/// The outcome a transaction marker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Abort,
    Commit,
}

impl Marker {
    /// The control record type (Kafka's `ControlRecordType`).
    pub fn control_type(self) -> i16 {
        match self {
            Marker::Abort => 0,
            Marker::Commit => 1,
        }
    }

    /// Whether the marker commits.
    pub fn is_commit(self) -> bool {
        self == Marker::Commit
    }
}

/// An uncompressed marker batch (base offset 0, for the log to assign)
/// ending `producer_id`'s transaction at `epoch`.
pub fn marker_batch(timestamp: i64, producer_id: i64, epoch: i16, marker: Marker) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&marker.control_type().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&0i32.to_be_bytes());
    let rec = TestRecord {
        timestamp_delta: 0,
        key: Some(key),
        value: Some(value),
        headers: Vec::new(),
    };
    build_batch_with(
        timestamp,
        &[rec],
        producer_id,
        epoch,
        -1,
        TRANSACTIONAL_BIT | CONTROL_BIT,
    )
}

/// The marker a control batch carries: `None` when `h` is no control
/// batch, its first record does not decode (compressed ones inflate to at
/// most `limit` bytes) or its type is not abort or commit.
pub fn marker(h: &BatchHeader<'_>, limit: usize) -> Option<Marker> {
    if !h.is_control() {
        return None;
    }
    let control_type = |key: &[u8]| match key.get(..4)? {
        [_, _, 0, 0] => Some(Marker::Abort),
        [_, _, 0, 1] => Some(Marker::Commit),
        _ => None,
    };
    if h.compression() == codec::NONE {
        let records = crate::batch::records(h)?;
        control_type(records.first()?.key?)
    } else {
        let records = codec::decode_records(h, limit).ok()?;
        control_type(records.first()?.key.as_deref()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::build::simple_batch;
    use crate::batch::validate_batch;

    #[test]
    fn markers_round_trip_and_validate() {
        for m in [Marker::Abort, Marker::Commit] {
            let b = marker_batch(1_000, 42, 3, m);
            let h = validate_batch(&b, usize::MAX).expect("valid marker batch");
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id(), h.producer_epoch()), (42, 3));
            assert_eq!((h.record_count(), h.base_sequence()), (1, -1));
            assert_eq!(marker(&h, 1 << 20), Some(m));
            assert_eq!(m.is_commit(), m == Marker::Commit);
        }
    }

    #[test]
    fn kafkas_marker_bytes() {
        let b = marker_batch(0, 7, 0, Marker::Commit);
        let h = validate_batch(&b, usize::MAX).expect("valid");
        let recs = crate::batch::records(&h).expect("records");
        assert_eq!(recs[0].key, Some(&[0u8, 0, 0, 1][..]));
        assert_eq!(recs[0].value, Some(&[0u8, 0, 0, 0, 0, 0][..]));
    }

    #[test]
    fn not_markers() {
        let data = simple_batch(0, 2, 4);
        let h = validate_batch(&data, usize::MAX).expect("valid");
        assert_eq!(marker(&h, 1 << 20), None, "no control bit");
        // A control batch of another type (e.g. Kafka's LEADER_CHANGE = 2).
        let other = TestRecord {
            key: Some(vec![0, 0, 0, 2]),
            value: Some(vec![0; 6]),
            ..TestRecord::default()
        };
        let b = build_batch_with(0, &[other], 1, 0, -1, TRANSACTIONAL_BIT | CONTROL_BIT);
        let h = validate_batch(&b, usize::MAX).expect("valid");
        assert_eq!(marker(&h, 1 << 20), None);
    }

    #[test]
    fn compressed_markers_are_read() {
        let b = marker_batch(5, 9, 1, Marker::Abort);
        let h = validate_batch(&b, usize::MAX).expect("valid");
        let mut t = crate::batch::BatchTemplate::of(&h);
        t.attributes |= i16::from(codec::GZIP);
        let recs = codec::decode_records(&h, 1 << 20).expect("decode");
        let gz = codec::encode_batch(&t, &recs).expect("encode");
        let h = validate_batch(&gz, usize::MAX).expect("valid");
        assert_eq!(h.compression(), codec::GZIP);
        assert_eq!(marker(&h, 1 << 20), Some(Marker::Abort));
    }
}
