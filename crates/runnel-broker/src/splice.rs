//! ShareFetch and ShareAcknowledge v2 (Kafka 4.2+, KIP-1206 and KIP-1222)
//! on a codec that knows v1: a v2 request is v1 with fields inserted in its
//! top-level struct, so its body is cut back to v1's layout, decoded as v1,
//! and the cut fields ride along in the request's tagged-field map under
//! [`V2_FIELDS`] (a key the wire cannot carry: tags are unsigned). The
//! ShareFetch v2 response is laid out as v1's; the ShareAcknowledge v2
//! response has `AcquisitionLockTimeoutMs` after `ErrorMessage`, which
//! [`insert_lock_timeout`] puts into the v1 encoding.
//!
//! The layouts are those of Kafka 4.4's client (`ShareFetchRequestData`,
//! `ShareAcknowledgeRequestData`, `ShareAcknowledgeResponseData` schemas):
//!
//! * ShareFetch v2: `group_id`, `member_id` (compact nullable strings),
//!   `share_session_epoch`, `max_wait_ms`, `min_bytes`, `max_bytes`,
//!   `max_records`, `batch_size` (int32), then **`share_acquire_mode`
//!   (int8: 0 batch-optimized, 1 record-limit) and `is_renew_ack` (bool)**,
//!   then v1's `topics` and `forgotten_topics_data`.
//! * ShareAcknowledge v2: `group_id`, `member_id`, `share_session_epoch`,
//!   then **`is_renew_ack`**, then `topics`.

use kafka_protocol::messages::ApiKey;

/// The tagged-field key the v2 fields are kept under: two bytes,
/// `share_acquire_mode` and `is_renew_ack`.
pub const V2_FIELDS: i32 = -1;

/// The v2 fields of a share request (zero for v1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShareV2 {
    /// 1: acquire at most `max_records` records (record-limit mode).
    pub acquire_mode: i8,
    /// The acknowledgements carry the type Renew (4).
    pub renew: bool,
}

impl ShareV2 {
    pub fn to_bytes(self) -> bytes::Bytes {
        bytes::Bytes::from(vec![self.acquire_mode as u8, u8::from(self.renew)])
    }

    pub fn from_bytes(b: Option<&bytes::Bytes>) -> ShareV2 {
        match b.map(|b| b.as_ref()) {
            Some([mode, renew]) => ShareV2 {
                acquire_mode: *mode as i8,
                renew: *renew != 0,
            },
            _ => ShareV2::default(),
        }
    }
}

/// Where the byte after a compact nullable string starting at `at` is.
fn skip_compact_string(body: &[u8], at: usize) -> Result<usize, String> {
    let mut n: u64 = 0;
    let mut i = at;
    for shift in (0..35).step_by(7) {
        let b = *body.get(i).ok_or("truncated string length")?;
        i += 1;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            // 0 is null, else length + 1.
            let len = usize::try_from(n.saturating_sub(1)).map_err(|e| e.to_string())?;
            let end = i.checked_add(len).ok_or("string length overflows")?;
            return if end <= body.len() {
                Ok(end)
            } else {
                Err("truncated string".into())
            };
        }
    }
    Err("string length varint too long".into())
}

/// Cuts a v2 body of `key` back to v1's layout; returns it and the fields
/// cut out.
pub fn to_v1(key: ApiKey, body: &[u8]) -> Result<(Vec<u8>, ShareV2), String> {
    let mut at = skip_compact_string(body, 0)?; // group_id
    at = skip_compact_string(body, at)?; // member_id
    let (ints, cut) = match key {
        ApiKey::ShareFetch => (6, 2),
        ApiKey::ShareAcknowledge => (1, 1),
        other => return Err(format!("{other:?} has no v2 fields to cut")),
    };
    at += 4 * ints;
    let fields = body.get(at..at + cut).ok_or("truncated v2 fields")?;
    let v2 = match fields {
        [mode, renew] => ShareV2 {
            acquire_mode: *mode as i8,
            renew: *renew != 0,
        },
        [renew] => ShareV2 {
            acquire_mode: 0,
            renew: *renew != 0,
        },
        _ => return Err("truncated v2 fields".into()),
    };
    let mut v1 = Vec::with_capacity(body.len() - cut);
    v1.extend_from_slice(&body[..at]);
    v1.extend_from_slice(&body[at + cut..]);
    Ok((v1, v2))
}

/// Puts `AcquisitionLockTimeoutMs` into a ShareAcknowledge response body
/// encoded as v1 (after `throttle_time_ms`, `error_code` and
/// `error_message`), making it v2.
pub fn insert_lock_timeout(body: &mut Vec<u8>, lock_ms: i32) -> Result<(), String> {
    let at = skip_compact_string(body, 6)?;
    body.splice(at..at, lock_ms.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use kafka_protocol::messages::share_acknowledge_request::{
        AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch,
    };
    use kafka_protocol::messages::{
        GroupId, ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

    fn encode<T: Encodable>(m: &T, v: i16) -> Vec<u8> {
        let mut b = bytes::BytesMut::new();
        m.encode(&mut b, v).unwrap();
        b.to_vec()
    }

    #[test]
    fn a_v2_body_is_v1_with_the_fields_cut() {
        let fetch = ShareFetchRequest::default()
            .with_group_id(Some(GroupId(StrBytes::from_static_str("g"))))
            .with_member_id(Some(StrBytes::from_static_str("member-1")))
            .with_share_session_epoch(3)
            .with_max_records(7);
        let v1 = encode(&fetch, 1);
        // v2 = v1 with mode 1 and renew true after batch_size.
        let at = 1 + 1 + 1 + 8 + 4 * 6;
        let mut v2 = v1.clone();
        v2.splice(at..at, [1u8, 1u8]);
        let (back, fields) = to_v1(ApiKey::ShareFetch, &v2).unwrap();
        assert_eq!(back, v1);
        assert_eq!(
            fields,
            ShareV2 {
                acquire_mode: 1,
                renew: true
            }
        );
        assert_eq!(ShareV2::from_bytes(Some(&fields.to_bytes())), fields);

        let ack = ShareAcknowledgeRequest::default()
            .with_group_id(Some(GroupId(StrBytes::from_static_str("g"))))
            .with_member_id(None)
            .with_share_session_epoch(2)
            .with_topics(vec![AcknowledgeTopic::default().with_partitions(vec![
                AcknowledgePartition::default().with_acknowledgement_batches(vec![
                    AcknowledgementBatch::default().with_acknowledge_types(vec![4]),
                ]),
            ])]);
        let v1 = encode(&ack, 1);
        let at = 2 + 1 + 4;
        let mut v2 = v1.clone();
        v2.insert(at, 1);
        let (back, fields) = to_v1(ApiKey::ShareAcknowledge, &v2).unwrap();
        assert_eq!((back, fields.renew), (v1.clone(), true));
        for n in 0..at + 1 {
            assert!(to_v1(ApiKey::ShareAcknowledge, &v2[..n]).is_err(), "{n}");
        }
        let decoded = ShareAcknowledgeRequest::decode(&mut bytes::Bytes::from(v1), 1).unwrap();
        assert_eq!(decoded, ack);
    }

    #[test]
    fn the_lock_timeout_goes_after_the_error_message() {
        let resp = ShareAcknowledgeResponse::default()
            .with_error_message(Some(StrBytes::from_static_str("no")));
        let mut body = encode(&resp, 1);
        let v1 = body.clone();
        insert_lock_timeout(&mut body, 30_000).unwrap();
        let at = 4 + 2 + 1 + 2;
        assert_eq!(&body[..at], &v1[..at]);
        assert_eq!(&body[at..at + 4], &30_000i32.to_be_bytes());
        assert_eq!(&body[at + 4..], &v1[at..]);
    }
}
