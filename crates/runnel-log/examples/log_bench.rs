//! Raw log throughput, without the network: appends 100-byte records in
//! batches of 500 and reads them back.
//!
//! `cargo run --release -p runnel-log --example log_bench [-- BATCHES] [--fsync]`
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

use std::collections::BTreeMap;
use std::time::Instant;

use runnel_log::batch::testing::simple_batch;
use runnel_log::batch::BatchIter;
use runnel_log::Log;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let batches: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(4000);
    let fsync = args.iter().any(|a| a == "--fsync");
    let dir = std::env::temp_dir().join(format!("runnel-log-bench-{}", std::process::id()));
    let mut defaults = BTreeMap::new();
    if fsync {
        defaults.insert("flush.messages".to_string(), "1".to_string());
    }
    let log = Log::open(&dir, defaults)?;
    let partition = log
        .create_topic("bench", 1, BTreeMap::new())?
        .partition(0)
        .ok_or("no partition 0")?;
    let template = simple_batch(0, 500, 100);
    let mut batch = template.clone();
    let start = Instant::now();
    for i in 0..batches {
        batch.copy_from_slice(&template);
        partition.append(&mut batch, 0)?;
        if i % 1000 == 999 {
            eprintln!("appended {} batches", i + 1);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "append{}: {:.0} records/s, {:.0} MB/s",
        if fsync { " (fsync per batch)" } else { "" },
        (batches * 500) as f64 / secs,
        (batches * template.len()) as f64 / secs / 1e6
    );
    let start = Instant::now();
    let (mut offset, mut bytes) = (0, 0);
    while offset < partition.high_watermark() {
        let read = partition.read(offset, 1 << 20, true)?;
        bytes += read.bytes.len();
        for header in BatchIter::unchecked_crc(&read.bytes) {
            offset = header?.next_offset();
        }
    }
    println!(
        "read: {:.0} MB/s",
        bytes as f64 / start.elapsed().as_secs_f64() / 1e6
    );
    drop(log);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
