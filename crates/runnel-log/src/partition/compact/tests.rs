//! Compaction tests: latest value per key, gaps, tombstones, transactions,
//! compressed batches, recovery.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use crate::batch::build::{build_batch_with, TestRecord};
use crate::batch::{BatchIter, RECORDS_OFFSET, TRANSACTIONAL_BIT};
use crate::codec::{self, BatchTemplate, OwnedRecord};
use crate::control::{self, Marker};
use crate::{Log, Partition};

type Kv<'a> = (&'a str, Option<&'a str>);

fn open(dir: &Path) -> Log {
    Log::open(dir, BTreeMap::new()).expect("open")
}

/// A compacted topic with small segments that compacts whenever asked.
fn compacted(log: &Log, name: &str, extra: &[(&str, &str)]) -> Arc<Partition> {
    let mut cfg: BTreeMap<String, String> = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "400"),
        ("min.cleanable.dirty.ratio", "0"),
        ("index.interval.bytes", "100"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        cfg.insert(k.to_string(), v.to_string());
    }
    log.create_topic(name, 1, cfg)
        .expect("create")
        .partition(0)
        .expect("partition")
}

fn test_records(kvs: &[Kv<'_>]) -> Vec<TestRecord> {
    kvs.iter()
        .enumerate()
        .map(|(i, (k, v))| TestRecord {
            timestamp_delta: i as i64,
            key: Some(k.as_bytes().to_vec()),
            value: v.map(|v| v.as_bytes().to_vec()),
            headers: Vec::new(),
        })
        .collect()
}

/// An uncompressed batch of keyed records.
fn kv_batch(ts: i64, kvs: &[Kv<'_>]) -> Vec<u8> {
    build_batch_with(ts, &test_records(kvs), -1, -1, -1, 0)
}

/// A batch of keyed records compressed with `codec`.
fn compressed_batch(codec: u8, ts: i64, kvs: &[Kv<'_>]) -> Vec<u8> {
    let recs: Vec<OwnedRecord> = kvs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| OwnedRecord {
            attributes: 0,
            offset_delta: i as i32,
            timestamp_delta: i as i64,
            offset: 0,
            timestamp: 0,
            key: Some(k.as_bytes().to_vec()),
            value: v.map(|v| v.repeat(20).into_bytes()),
            headers: Vec::new(),
        })
        .collect();
    let t = BatchTemplate {
        base_offset: 0,
        partition_leader_epoch: -1,
        attributes: i16::from(codec),
        last_offset_delta: kvs.len() as i32 - 1,
        base_timestamp: ts,
        max_timestamp: ts + kvs.len() as i64 - 1,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
    codec::encode_batch(&t, &recs).expect("encode")
}

fn txn_batch(pid: i64, seq: i32, ts: i64, kvs: &[Kv<'_>]) -> Vec<u8> {
    build_batch_with(ts, &test_records(kvs), pid, 0, seq, TRANSACTIONAL_BIT)
}

fn marker(pid: i64, ts: i64, commit: bool) -> Vec<u8> {
    let m = if commit {
        Marker::Commit
    } else {
        Marker::Abort
    };
    control::marker_batch(ts, pid, 0, m)
}

/// One record read back: (offset, timestamp, key, value).
type Rec = (i64, i64, Vec<u8>, Option<Vec<u8>>);

/// Every data record from the log start to the high watermark (control
/// batches skipped), checking batch and record offsets strictly increase.
fn read_records(p: &Partition) -> Vec<Rec> {
    let mut out: Vec<Rec> = Vec::new();
    let mut off = p.log_start_offset();
    let mut last_batch_end = -1;
    while off < p.high_watermark() {
        let r = p.read(off, 1 << 20, true).expect("read");
        if r.bytes.is_empty() {
            break;
        }
        for h in BatchIter::new(&r.bytes, usize::MAX) {
            let h = h.expect("stored batch valid");
            assert!(h.base_offset() > last_batch_end, "batch offsets increase");
            assert!(h.last_offset() >= off, "read returned an old batch");
            last_batch_end = h.last_offset();
            off = h.next_offset();
            if h.is_control() {
                continue;
            }
            for rec in codec::decode_records(&h, 1 << 24).expect("decodable") {
                assert!(rec.offset >= h.base_offset() && rec.offset <= h.last_offset());
                if let Some(prev) = out.last() {
                    assert!(rec.offset > prev.0, "record offsets increase");
                }
                out.push((
                    rec.offset,
                    rec.timestamp,
                    rec.key.unwrap_or_default(),
                    rec.value,
                ));
            }
        }
    }
    out
}

/// Last-wins replay of records (a tombstone deletes the key).
fn replay(recs: &[Rec]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut m = BTreeMap::new();
    for (_, _, k, v) in recs {
        match v {
            Some(v) => m.insert(k.clone(), v.clone()),
            None => m.remove(k),
        };
    }
    m
}

fn active_file(p: &Partition) -> (i64, Vec<u8>) {
    let base = *p.segment_bases().last().expect("segments");
    let bytes = std::fs::read(p.dir().join(format!("{base:020}.log"))).expect("active");
    (base, bytes)
}

#[test]
fn keeps_the_latest_value_of_each_key_with_offsets_and_gaps() {
    let d = tempfile::tempdir().expect("tempdir");
    let log = open(d.path());
    let p = compacted(&log, "t", &[]);
    // The first segment holds only keys overwritten later: it empties.
    let mut written: Vec<Rec> = Vec::new();
    for i in 0..200i64 {
        let n = 1 + (i % 3) as usize;
        let kv: Vec<(String, String)> = (0..n)
            .map(|j| {
                (
                    format!("key-{}", (i * 3 + j as i64) % 10),
                    format!("value-{i}-{j}"),
                )
            })
            .collect();
        let kvs: Vec<Kv<'_>> = kv
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_str())))
            .collect();
        let mut b = kv_batch(1_000 + i, &kvs);
        let info = p.append(&mut b, 1_000 + i).expect("append");
        for (j, (k, v)) in kv.iter().enumerate() {
            written.push((
                info.base_offset + j as i64,
                1_000 + i + j as i64,
                k.clone().into_bytes(),
                Some(v.clone().into_bytes()),
            ));
        }
    }
    let before = read_records(&p);
    assert_eq!(before, written);
    let model = replay(&written);
    let segments = p.segment_bases();
    assert!(segments.len() > 10, "{segments:?}");
    let (active_base, active_bytes) = active_file(&p);
    let hw = p.high_watermark();

    let stats = p.compact(hw, 10_000).expect("compact").expect("ran");
    assert!(stats.records_removed > 0);
    assert!(stats.bytes_after < stats.bytes_before, "{stats:?}");
    assert_eq!(stats.cleaned_upto, active_base);

    let after = read_records(&p);
    assert_eq!(replay(&after), model, "latest value per key");
    // Every record left is one that was written, at its original offset.
    for r in &after {
        assert!(written.contains(r), "{r:?} was never written");
    }
    // Below the active segment each key appears once: its latest there.
    let mut below: HashMap<Vec<u8>, i64> = HashMap::new();
    for (o, _, k, _) in written.iter().filter(|r| r.0 < active_base) {
        below.insert(k.clone(), *o);
    }
    let kept: Vec<i64> = after
        .iter()
        .filter(|r| r.0 < active_base)
        .map(|r| r.0)
        .collect();
    let mut want: Vec<i64> = below.values().copied().collect();
    want.sort_unstable();
    assert_eq!(kept, want);
    // The active segment is untouched; the log start did not move.
    assert_eq!(active_file(&p), (active_base, active_bytes));
    assert_eq!(p.log_start_offset(), 0);
    assert_eq!(p.segment_bases()[0], 0);
    assert!(
        p.segment_count() < segments.len(),
        "emptied segments removed"
    );
    // A read at any offset returns the first batch reaching it.
    for o in 0..hw {
        let r = p.read(o, 1, true).expect("read");
        let first = after.iter().find(|r| r.0 >= o).expect("a later record");
        let h = BatchIter::new(&r.bytes, usize::MAX)
            .next()
            .expect("a batch")
            .expect("valid");
        // The first batch reaching `o`: nothing at or after `o` before it.
        assert!(
            h.last_offset() >= o && h.base_offset() <= first.0,
            "offset {o}"
        );
    }
    // Nothing new: the next run has nothing to do.
    assert_eq!(p.compact(hw, 11_000).expect("compact"), None);
    // Appends continue at the high watermark.
    let info = p
        .append(&mut kv_batch(5_000, &[("new", Some("x"))]), 5_000)
        .expect("append");
    assert_eq!(info.base_offset, hw);
    let expected = read_records(&p);
    drop(log);

    // Clean reopen, then an unclean one (every segment rescanned).
    for crash in [false, true] {
        if crash {
            std::fs::remove_file(d.path().join("topics/t/0/recovery-point")).expect("rp");
        }
        let log = open(d.path());
        let p = log.topic("t").and_then(|t| t.partition(0)).expect("p");
        assert_eq!(read_records(&p), expected, "crash={crash}");
        assert_eq!(p.high_watermark(), hw + 1);
    }
}

#[test]
fn tombstones_stay_until_their_delete_horizon() {
    let d = tempfile::tempdir().expect("tempdir");
    let log = open(d.path());
    let p = compacted(&log, "t", &[("delete.retention.ms", "1000")]);
    p.append(&mut kv_batch(100, &[("a", Some("1")), ("b", Some("2"))]), 0)
        .expect("append");
    p.append(&mut kv_batch(200, &[("a", None), ("c", Some("3"))]), 0)
        .expect("append");
    for i in 0..20 {
        p.append(&mut kv_batch(300 + i, &[("filler", Some("x"))]), 0)
            .expect("append");
    }
    let hw = p.high_watermark();
    let t0 = 50_000;
    p.compact(hw, t0).expect("compact").expect("ran");
    let recs = read_records(&p);
    let a: Vec<&Rec> = recs.iter().filter(|r| r.2 == b"a").collect();
    assert_eq!(a.len(), 1, "only the tombstone of a is left");
    assert_eq!((a[0].0, a[0].1, &a[0].3), (2, 200, &None), "timestamp kept");
    // Its batch now carries the delete horizon.
    let r = p.read(2, 1, true).expect("read");
    let h = BatchIter::new(&r.bytes, usize::MAX)
        .next()
        .expect("batch")
        .expect("valid");
    assert_eq!(h.delete_horizon(), Some(t0 + 1000));
    assert_eq!(h.max_timestamp(), 201);

    // Before the horizon nothing is due; at it the tombstone goes.
    assert_eq!(p.compact(hw, t0 + 999).expect("compact"), None);
    drop(log);
    let log = open(d.path());
    let p = log.topic("t").and_then(|t| t.partition(0)).expect("p");
    let stats = p.compact(hw, t0 + 1000).expect("compact").expect("due");
    assert_eq!(stats.records_removed, 1);
    let recs = read_records(&p);
    assert!(recs.iter().all(|r| r.2 != b"a"), "tombstone removed");
    let m = replay(&recs);
    assert_eq!(m.get(&b"b"[..]), Some(&b"2".to_vec()));
    assert_eq!(m.get(&b"c"[..]), Some(&b"3".to_vec()));
}

#[test]
fn transactions_aborted_removed_unresolved_kept_markers_expire() {
    let d = tempfile::tempdir().expect("tempdir");
    let log = open(d.path());
    let p = compacted(&log, "t", &[("delete.retention.ms", "1000")]);
    let app = |b: &mut Vec<u8>| p.append(b, 0).expect("append").base_offset;
    app(&mut kv_batch(10, &[("a", Some("committed-old"))]));
    let aborted = app(&mut txn_batch(
        7,
        0,
        11,
        &[("a", Some("aborted")), ("ghost", Some("aborted"))],
    ));
    let abort_marker = app(&mut marker(7, 12, false));
    let committed = app(&mut txn_batch(8, 0, 13, &[("b", Some("txn-committed"))]));
    let commit_marker = app(&mut marker(8, 14, true));
    let mut unresolved_bytes = txn_batch(9, 0, 15, &[("a", Some("unresolved"))]);
    let unresolved = app(&mut unresolved_bytes);
    // An aborted transaction's later write of a key must not hide an older
    // committed value in a later compaction either.
    app(&mut txn_batch(7, 1, 16, &[("b", Some("aborted-2"))]));
    app(&mut marker(7, 17, false));
    for i in 0..20 {
        app(&mut kv_batch(100 + i, &[("filler", Some("x"))]));
    }
    let hw = p.high_watermark();
    p.compact(hw, 100).expect("compact").expect("ran");

    let recs = read_records(&p);
    let vals = |k: &[u8]| -> Vec<Option<Vec<u8>>> {
        recs.iter()
            .filter(|r| r.2 == k)
            .map(|r| r.3.clone())
            .collect()
    };
    assert_eq!(
        vals(b"a"),
        vec![
            Some(b"committed-old".to_vec()),
            Some(b"unresolved".to_vec())
        ]
    );
    assert_eq!(vals(b"b"), vec![Some(b"txn-committed".to_vec())]);
    assert!(vals(b"ghost").is_empty(), "aborted records removed");
    assert!(recs.iter().all(|r| r.0 != aborted));
    assert!(recs.iter().any(|r| r.0 == committed));
    // The unresolved batch is stored byte for byte.
    let r = p.read(unresolved, 1, true).expect("read");
    assert_eq!(r.bytes, unresolved_bytes);
    // Markers stay within delete.retention.ms.
    let batch_at = |o: i64| {
        let r = p.read(o, 1, true).expect("read");
        BatchIter::new(&r.bytes, usize::MAX)
            .next()
            .expect("batch")
            .expect("valid")
            .base_offset()
    };
    assert_eq!(batch_at(abort_marker), abort_marker);
    assert_eq!(batch_at(commit_marker), commit_marker);

    // Much later: the abort marker (no data of its transaction left) goes;
    // the commit marker stays while its transaction's record is kept.
    p.append(&mut kv_batch(5_000, &[("more", Some("y"))]), 0)
        .expect("append");
    for i in 0..10 {
        p.append(&mut kv_batch(5_001 + i, &[("filler", Some("x"))]), 0)
            .expect("append");
    }
    let hw = p.high_watermark();
    p.compact(hw, 10_000).expect("compact").expect("ran");
    assert!(
        batch_at(abort_marker) > abort_marker,
        "abort marker removed"
    );
    assert_eq!(batch_at(commit_marker), commit_marker);
    let recs2 = read_records(&p);
    assert_eq!(
        replay(&recs2).get(&b"b"[..]),
        Some(&b"txn-committed".to_vec())
    );
    assert!(recs2.iter().any(|r| r.0 == unresolved));
}

#[test]
fn compressed_batches_are_compacted_and_reencoded() {
    for c in [codec::GZIP, codec::ZSTD, codec::SNAPPY, codec::LZ4] {
        let d = tempfile::tempdir().expect("tempdir");
        let log = open(d.path());
        let p = compacted(&log, "t", &[("segment.bytes", "1000")]);
        let mut written = Vec::new();
        for i in 0..40 {
            let v1 = format!("first-{i}");
            let v2 = format!("second-{i}");
            let kvs = [
                ("stable", Some(v1.as_str())),
                (if i % 2 == 0 { "even" } else { "odd" }, Some(v2.as_str())),
                ("gone", if i % 5 == 4 { None } else { Some("z") }),
            ];
            let mut b = compressed_batch(c, 1_000 + i, &kvs);
            let info = p.append(&mut b, 0).expect("append");
            for (j, (k, v)) in kvs.iter().enumerate() {
                written.push((
                    info.base_offset + j as i64,
                    1_000 + i + j as i64,
                    k.as_bytes().to_vec(),
                    v.map(|v| v.repeat(20).into_bytes()),
                ));
            }
        }
        assert!(p.segment_count() > 2, "codec {c}");
        let hw = p.high_watermark();
        p.compact(hw, 100_000).expect("compact").expect("ran");
        let after = read_records(&p);
        assert_eq!(replay(&after), replay(&written), "codec {c}");
        assert!(after.len() < written.len());
        for r in &after {
            assert!(written.contains(r), "codec {c}: {r:?}");
        }
        // Partially kept batches were re-encoded with the same codec.
        let mut off = 0;
        let mut reencoded = 0;
        while off < hw {
            let r = p.read(off, 1 << 20, true).expect("read");
            if r.bytes.is_empty() {
                break;
            }
            for h in BatchIter::new(&r.bytes, usize::MAX) {
                let h = h.expect("valid");
                assert_eq!(h.compression(), c);
                if i64::from(h.record_count()) < h.offset_count() {
                    reencoded += 1;
                    if c == codec::SNAPPY {
                        assert!(h.bytes()[RECORDS_OFFSET..].starts_with(b"\x82SNAPPY\x00"));
                    }
                }
                off = h.next_offset();
            }
        }
        assert!(reencoded > 0, "codec {c}");
        drop(log);
        let log = open(d.path());
        let p = log.topic("t").and_then(|t| t.partition(0)).expect("p");
        assert_eq!(read_records(&p), after, "codec {c} after reopen");
    }
}

#[test]
fn lag_ratio_policy_and_leftovers() {
    let d = tempfile::tempdir().expect("tempdir");
    let log = open(d.path());
    // Not compacted: nothing happens.
    let plain = log
        .create_topic(
            "plain",
            1,
            [("segment.bytes".to_string(), "200".to_string())].into(),
        )
        .expect("create")
        .partition(0)
        .expect("p");
    for i in 0..10 {
        plain
            .append(&mut kv_batch(i, &[("k", Some("v"))]), 0)
            .expect("append");
    }
    assert_eq!(
        plain.compact(plain.high_watermark(), 1_000).expect("ok"),
        None
    );

    // min.compaction.lag.ms keeps young segments out.
    let p = compacted(&log, "lag", &[("min.compaction.lag.ms", "1000")]);
    for i in 0..30 {
        p.append(&mut kv_batch(i * 100, &[("k", Some("v"))]), 0)
            .expect("append");
    }
    let hw = p.high_watermark();
    let stats = p.compact(hw, 2_000).expect("compact").expect("ran");
    let young = p
        .segment_bases()
        .into_iter()
        .filter(|b| *b >= stats.cleaned_upto)
        .count();
    assert!(young > 1, "young closed segments not compacted");
    let recs = read_records(&p);
    let old: Vec<i64> = recs
        .iter()
        .filter(|r| r.0 < stats.cleaned_upto)
        .map(|r| r.0)
        .collect();
    assert_eq!(old, vec![stats.cleaned_upto - 1]);
    assert!(recs.iter().filter(|r| r.0 >= stats.cleaned_upto).count() > 5);
    // The upper bound is respected.
    let q = compacted(&log, "upto", &[]);
    for i in 0..30 {
        q.append(&mut kv_batch(i, &[("k", Some("v"))]), 0)
            .expect("append");
    }
    assert_eq!(q.compact(0, 1_000).expect("ok"), None);
    let s = q.compact(10, 1_000).expect("ok").expect("ran");
    assert!(s.cleaned_upto <= 10);
    // min.cleanable.dirty.ratio: compact all, then add one dirty segment.
    q.compact(q.high_watermark(), 1_000)
        .expect("ok")
        .expect("ran");
    for i in 0..6 {
        q.append(&mut kv_batch(100 + i, &[("k", Some("w"))]), 0)
            .expect("append");
    }
    let topic = log.topic("upto").expect("topic");
    topic
        .alter_configs(&[("min.cleanable.dirty.ratio".into(), Some("0.99".into()))])
        .expect("alter");
    assert_eq!(q.compact(q.high_watermark(), 1_000).expect("ok"), None);
    topic
        .alter_configs(&[("min.cleanable.dirty.ratio".into(), Some("0.2".into()))])
        .expect("alter");
    let s2 = q
        .compact(q.high_watermark(), 1_000)
        .expect("ok")
        .expect("ran");
    assert!(s2.cleaned_upto > s.cleaned_upto);
    let dir = q.dir().to_path_buf();
    let expected = read_records(&q);
    drop(log);

    // A leftover cleaned file is removed on open.
    let leftover = dir.join(format!("{:020}.log.cleaned", 0));
    std::fs::write(&leftover, b"partial").expect("write");
    let log = open(d.path());
    assert!(!leftover.exists());
    let q = log.topic("upto").and_then(|t| t.partition(0)).expect("p");
    assert_eq!(read_records(&q), expected);
    let cp = super::CleanerState::load(&dir).expect("checkpoint");
    assert_eq!(cp.cleaned_upto, s2.cleaned_upto);
}

#[test]
fn compact_delete_does_both() {
    let d = tempfile::tempdir().expect("tempdir");
    let log = open(d.path());
    let p = compacted(
        &log,
        "t",
        &[
            ("cleanup.policy", "compact,delete"),
            ("retention.ms", "1000"),
        ],
    );
    for i in 0..40 {
        let key = format!("k{}", i % 3);
        p.append(&mut kv_batch(i * 100, &[(key.as_str(), Some("v"))]), 0)
            .expect("append");
    }
    let hw = p.high_watermark();
    let segments = p.segment_count();
    // Retention drops the segments older than 1 s at now = 3 s...
    p.maintenance(3_000).expect("maintenance");
    assert!(p.log_start_offset() > 0);
    assert!(p.segment_count() < segments);
    // ...and compaction keeps one record per key in what is left.
    p.compact(hw, 3_000).expect("compact").expect("ran");
    let recs = read_records(&p);
    let active = *p.segment_bases().last().expect("segments");
    let mut keys: Vec<&Vec<u8>> = recs.iter().filter(|r| r.0 < active).map(|r| &r.2).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "one record per key below the active segment");
}

mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// (key, value: None = tombstone) records of one batch.
        Append(Vec<(u8, Option<u8>)>),
        Compact,
        Reopen {
            crash: bool,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => proptest::collection::vec((0u8..8, proptest::option::weighted(0.85, any::<u8>())), 1..4)
                .prop_map(Op::Append),
            2 => Just(Op::Compact),
            1 => any::<bool>().prop_map(|crash| Op::Reopen { crash }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn compaction_matches_a_model(ops in proptest::collection::vec(op(), 1..60)) {
            let d = tempfile::tempdir().expect("tempdir");
            let mut log = open(d.path());
            compacted(&log, "t", &[("segment.bytes", "250"), ("delete.retention.ms", "50")]);
            let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            let mut now = 1_000i64;
            for op in ops {
                now += 20;
                let p = log.topic("t").and_then(|t| t.partition(0)).expect("p");
                match op {
                    Op::Append(recs) => {
                        let kv: Vec<(String, Option<String>)> = recs
                            .iter()
                            .map(|(k, v)| (format!("k{k}"), v.map(|v| format!("v{v}"))))
                            .collect();
                        let kvs: Vec<Kv<'_>> =
                            kv.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
                        p.append(&mut kv_batch(now, &kvs), now).expect("append");
                        for (k, v) in kv {
                            match v {
                                Some(v) => model.insert(k.into_bytes(), v.into_bytes()),
                                None => model.remove(k.as_bytes()),
                            };
                        }
                    }
                    Op::Compact => {
                        p.compact(p.high_watermark(), now).expect("compact");
                    }
                    Op::Reopen { crash } => {
                        drop(p);
                        drop(log);
                        if crash {
                            let _ = std::fs::remove_file(d.path().join("topics/t/0/recovery-point"));
                        }
                        log = open(d.path());
                    }
                }
                let p = log.topic("t").and_then(|t| t.partition(0)).expect("p");
                let recs = read_records(&p);
                let got: HashMap<Vec<u8>, Vec<u8>> = replay(&recs).into_iter().collect();
                prop_assert_eq!(&got, &model);
            }
        }
    }
}
