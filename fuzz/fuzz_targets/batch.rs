//! A produce payload: batch validation (length, magic, CRC), record
//! decoding (compressed or not, bounded by a decompression limit) and the
//! compacted-topic key check must answer with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_log::batch::{validate_batch, BatchIter};
use runnel_log::codec;

fuzz_target!(|data: &[u8]| {
    let _ = codec::keyless_records(data, 1 << 20);
    for h in BatchIter::new(data, 1 << 20) {
        let Ok(h) = h else { break };
        let _ = runnel_log::batch::records(&h);
        let _ = codec::decode_records(&h, 1 << 20);
    }
    let _ = validate_batch(data, 1 << 20);
});
