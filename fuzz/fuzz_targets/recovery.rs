//! A segment file with arbitrary bytes (a torn write, a disk error): the
//! log must open (truncating what does not validate), serve reads of what
//! is left, and take appends after it.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use runnel_log::Log;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    {
        let Ok(log) = Log::open(dir.path(), BTreeMap::new()) else {
            return;
        };
        if log.create_topic("t", 1, BTreeMap::new()).is_err() {
            return;
        }
    }
    let segment = dir
        .path()
        .join("topics/t/0/00000000000000000000.log");
    if std::fs::write(&segment, data).is_err() {
        return;
    }
    let Ok(log) = Log::open(dir.path(), BTreeMap::new()) else {
        return;
    };
    let Some(p) = log.topic("t").and_then(|t| t.partition(0)) else {
        return;
    };
    let mut offset = p.log_start_offset();
    while offset < p.high_watermark() {
        match p.read(offset, 1 << 20, true) {
            Ok(read) if !read.bytes.is_empty() => {
                let mut next = offset;
                for h in runnel_log::batch::BatchIter::new(&read.bytes, 1 << 20) {
                    let Ok(h) = h else { break };
                    next = next.max(h.last_offset() + 1);
                }
                if next <= offset {
                    break;
                }
                offset = next;
            }
            _ => break,
        }
    }
    let mut batch = runnel_log::batch::build::simple_batch(0, 1, 8);
    let _ = p.append(&mut batch, 0);
});
