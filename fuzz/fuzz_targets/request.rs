//! A request body as a client sends it: the broker's shape check must
//! refuse what the decoder cannot take, and the decoder must never panic
//! or allocate beyond the bytes it was given on what the check lets by.
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = data.split_first_chunk::<3>() else {
        return;
    };
    // One byte picks the API among those the broker serves, one the version.
    let keys = runnel_broker::versions::SUPPORTED;
    let Some(s) = keys.get(usize::from(head[0]) % keys.len()) else {
        return;
    };
    let version = s.min + i16::from(head[1]).rem_euclid(s.max - s.min + 1);
    // The third byte picks a header-less body or one after a header.
    let body = if head[2] % 2 == 0 { body } else { body.get(1..).unwrap_or(body) };
    let key: ApiKey = s.key;
    if runnel_broker::shape::check_request_body(key as i16, version, body).is_err() {
        return;
    }
    let mut buf = Bytes::copy_from_slice(body);
    let _ = RequestKind::decode(key, &mut buf, version);
});
