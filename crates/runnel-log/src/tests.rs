use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::batch::testing::{build_batch, simple_batch, TestRecord};
use crate::batch::{self, BatchHeader, BatchIter};
use crate::*;

fn cfg(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn open(dir: &Path) -> Log {
    Log::open(dir, BTreeMap::new()).unwrap()
}

fn part(log: &Log, topic: &str) -> Arc<Partition> {
    log.topic(topic).unwrap().partition(0).unwrap()
}

/// Base offsets of the batches in a read result.
fn bases(bytes: &[u8]) -> Vec<i64> {
    BatchIter::new(bytes, usize::MAX)
        .map(|h| h.unwrap().base_offset())
        .collect()
}

/// Reads the whole partition batch by batch; returns (base, bytes) pairs.
fn read_all(p: &Partition) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut off = p.log_start_offset();
    while off < p.high_watermark() {
        let r = p.read(off, 1 << 20, true).unwrap();
        assert!(!r.bytes.is_empty());
        for h in BatchIter::new(&r.bytes, usize::MAX) {
            let h = h.unwrap();
            out.push((h.base_offset(), h.bytes().to_vec()));
            off = h.next_offset();
        }
    }
    out
}

#[test]
fn append_read_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    let t = log.create_topic("t", 3, BTreeMap::new()).unwrap();
    assert_eq!(t.partition_count(), 3);
    assert!(t.partition(3).is_none());
    assert!(t.partition(-1).is_none());
    let p = t.partition(1).unwrap();
    assert_eq!(p.high_watermark(), 0);
    let mut b = simple_batch(100, 5, 20);
    let orig = b.clone();
    let info = p.append(&mut b, 1).unwrap();
    assert_eq!(
        info,
        AppendInfo {
            base_offset: 0,
            last_offset: 4,
            log_append_time: -1,
            log_start_offset: 0
        }
    );
    assert_eq!(b, orig, "base offset 0 leaves the batch unchanged");
    let mut b2 = simple_batch(200, 3, 20);
    let info = p.append(&mut b2, 2).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (5, 7));
    assert_eq!(p.high_watermark(), 8);
    let r = p.read(0, 1 << 20, false).unwrap();
    assert_eq!(r.high_watermark, 8);
    assert_eq!(r.log_start_offset, 0);
    assert_eq!(bases(&r.bytes), vec![0, 5]);
    assert_eq!(&r.bytes[..orig.len()], &orig[..]);
    assert_eq!(&r.bytes[orig.len()..], &b2[..]);
    let h = BatchHeader::parse(&r.bytes[orig.len()..]).unwrap();
    assert_eq!(h.base_offset(), 5);
    let recs = batch::records(&h).unwrap();
    assert_eq!(
        recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    // at hw: empty; beyond: out of range
    let r = p.read(8, 1000, true).unwrap();
    assert!(r.bytes.is_empty());
    assert_eq!(r.high_watermark, 8);
    assert!(matches!(
        p.read(9, 1000, true),
        Err(LogError::OffsetOutOfRange {
            offset: 9,
            start: 0,
            end: 8
        })
    ));
    assert!(matches!(
        p.read(-1, 1000, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // other partitions untouched
    assert_eq!(t.partition(0).unwrap().high_watermark(), 0);
}

#[test]
fn multi_batch_payload_offsets() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    let p = log
        .create_topic("t", 1, BTreeMap::new())
        .unwrap()
        .partition(0)
        .unwrap();
    p.append(&mut simple_batch(0, 2, 10), 0).unwrap();
    let mut payload = simple_batch(0, 3, 10);
    payload.extend(simple_batch(0, 1, 10));
    payload.extend(simple_batch(0, 4, 10));
    let info = p.append(&mut payload, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (2, 9));
    assert_eq!(bases(&payload), vec![2, 5, 6]);
    assert_eq!(
        bases(&p.read(0, 1 << 20, false).unwrap().bytes),
        vec![0, 2, 5, 6]
    );
    assert_eq!(p.high_watermark(), 10);
}

#[test]
fn read_inside_batch_and_min_one() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    let p = log
        .create_topic("t", 1, cfg(&[("index.interval.bytes", "1")]))
        .unwrap()
        .partition(0)
        .unwrap();
    let mut sizes = Vec::new();
    for _ in 0..4 {
        let mut b = simple_batch(0, 10, 50);
        sizes.push(b.len());
        p.append(&mut b, 0).unwrap();
    }
    // offset 13 is inside the second batch [10, 19]
    let r = p.read(13, 1 << 20, false).unwrap();
    assert_eq!(bases(&r.bytes), vec![10, 20, 30]);
    // max_bytes fits exactly two batches
    let r = p.read(13, sizes[1] + sizes[2], false).unwrap();
    assert_eq!(bases(&r.bytes), vec![10, 20]);
    let r = p.read(13, sizes[1] + sizes[2] - 1, false).unwrap();
    assert_eq!(bases(&r.bytes), vec![10]);
    // max_bytes smaller than one batch
    let r = p.read(13, 10, false).unwrap();
    assert!(r.bytes.is_empty());
    let r = p.read(13, 10, true).unwrap();
    assert_eq!(bases(&r.bytes), vec![10]);
    assert_eq!(r.bytes.len(), sizes[1]);
    let r = p.read(39, 0, true).unwrap();
    assert_eq!(bases(&r.bytes), vec![30]);
    // a sparse index (default interval) gives the same answers
    let d2 = tempfile::tempdir().unwrap();
    let log2 = open(d2.path());
    let p2 = log2
        .create_topic("t", 1, BTreeMap::new())
        .unwrap()
        .partition(0)
        .unwrap();
    for _ in 0..50 {
        p2.append(&mut simple_batch(0, 10, 50), 0).unwrap();
    }
    for off in [0, 1, 9, 10, 255, 499] {
        let r = p2.read(off, 1, true).unwrap();
        assert_eq!(bases(&r.bytes), vec![off / 10 * 10], "offset {off}");
    }
}

#[test]
fn large_min_one_batch_beyond_buffer() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    let p = log
        .create_topic("t", 1, BTreeMap::new())
        .unwrap()
        .partition(0)
        .unwrap();
    p.append(&mut simple_batch(0, 1, 10), 0).unwrap();
    let mut big = simple_batch(0, 20, 2000);
    p.append(&mut big, 0).unwrap();
    let r = p.read(1, 100, true).unwrap();
    assert_eq!(r.bytes, big);
    let r = p.read(0, 100, true).unwrap();
    assert_eq!(bases(&r.bytes), vec![0]);
}

#[test]
fn append_validation_errors_write_nothing() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    let p = log
        .create_topic("t", 1, cfg(&[("max.message.bytes", "500")]))
        .unwrap()
        .partition(0)
        .unwrap();
    let mut b = simple_batch(0, 2, 10);
    let n = b.len();
    b[n - 1] ^= 0xff;
    assert!(matches!(
        p.append(&mut b, 0),
        Err(LogError::CorruptBatch(_))
    ));
    let mut b = simple_batch(0, 2, 10);
    b[batch::MAGIC_OFFSET] = 1;
    assert!(matches!(
        p.append(&mut b, 0),
        Err(LogError::UnsupportedMagic(1))
    ));
    let mut b = simple_batch(0, 10, 100);
    assert!(matches!(
        p.append(&mut b, 0),
        Err(LogError::BatchTooLarge { max: 500, .. })
    ));
    // a good batch followed by a bad one: nothing is written
    let mut b = simple_batch(0, 2, 10);
    b.extend_from_slice(&[0u8; 30]);
    assert!(p.append(&mut b, 0).is_err());
    let mut b = simple_batch(0, 2, 10);
    b.extend_from_slice(&simple_batch(0, 2, 10)[..40]);
    assert!(matches!(
        p.append(&mut b, 0),
        Err(LogError::CorruptBatch(_))
    ));
    assert!(p.append(&mut [], 0).is_err());
    // recordCount must match lastOffsetDelta + 1
    let mut b = simple_batch(0, 3, 10);
    b[batch::RECORD_COUNT_OFFSET..batch::RECORD_COUNT_OFFSET + 4]
        .copy_from_slice(&2i32.to_be_bytes());
    let crc = crc32c::crc32c(&b[batch::ATTRIBUTES_OFFSET..]);
    b[batch::CRC_OFFSET..batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        p.append(&mut b, 0),
        Err(LogError::CorruptBatch(_))
    ));
    // a huge recordCount that the bytes cannot hold
    let mut b = simple_batch(0, 1, 10);
    b[batch::RECORD_COUNT_OFFSET..batch::RECORD_COUNT_OFFSET + 4]
        .copy_from_slice(&1_000_000i32.to_be_bytes());
    b[batch::LAST_OFFSET_DELTA_OFFSET..batch::LAST_OFFSET_DELTA_OFFSET + 4]
        .copy_from_slice(&999_999i32.to_be_bytes());
    let crc = crc32c::crc32c(&b[batch::ATTRIBUTES_OFFSET..]);
    b[batch::CRC_OFFSET..batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        p.append(&mut b, 0),
        Err(LogError::CorruptBatch(_))
    ));
    assert_eq!(p.high_watermark(), 0);
    assert_eq!(p.size_bytes(), 0);
    p.append(&mut simple_batch(0, 2, 10), 0).unwrap();
    assert_eq!(p.high_watermark(), 2);
}

#[test]
fn roll_by_size_and_read_across_segments() {
    let d = tempfile::tempdir().unwrap();
    {
        let log = open(d.path());
        let p = log
            .create_topic(
                "t",
                1,
                cfg(&[("segment.bytes", "1024"), ("index.interval.bytes", "100")]),
            )
            .unwrap()
            .partition(0)
            .unwrap();
        for i in 0..40 {
            p.append(&mut simple_batch(i, 2, 60), i).unwrap();
        }
        assert!(p.segment_count() > 5, "{}", p.segment_count());
        for w in p.segment_bases().windows(2) {
            assert!(w[0] < w[1]);
        }
        let all = read_all(&p);
        assert_eq!(all.len(), 40);
        for (i, (base, _)) in all.iter().enumerate() {
            assert_eq!(*base, 2 * i as i64);
        }
        // a read stops at the segment boundary but is non-empty
        let r = p.read(0, 1 << 20, false).unwrap();
        assert!(r.bytes.len() <= 1024);
        // segment files are named by base offset
        for b in p.segment_bases() {
            assert!(p.dir().join(format!("{b:020}.log")).exists());
            assert!(p.dir().join(format!("{b:020}.index")).exists());
            assert!(p.dir().join(format!("{b:020}.timeindex")).exists());
        }
    }
    // reopen (clean) and read back everything
    let log = open(d.path());
    let p = part(&log, "t");
    assert_eq!(p.high_watermark(), 80);
    assert_eq!(read_all(&p).len(), 40);
    assert_eq!(
        p.append(&mut simple_batch(0, 1, 1), 0).unwrap().base_offset,
        80
    );
}

#[test]
fn roll_by_time() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    let p = log
        .create_topic("t", 1, cfg(&[("segment.ms", "1000")]))
        .unwrap()
        .partition(0)
        .unwrap();
    p.append(&mut simple_batch(0, 1, 10), 10_000).unwrap();
    p.append(&mut simple_batch(0, 1, 10), 10_500).unwrap();
    assert_eq!(p.segment_count(), 1);
    p.append(&mut simple_batch(0, 1, 10), 11_000).unwrap();
    assert_eq!(p.segment_bases(), vec![0, 2]);
    // maintenance rolls an old active segment too
    log.maintenance(11_500).unwrap();
    assert_eq!(p.segment_count(), 2);
    log.maintenance(12_000).unwrap();
    assert_eq!(p.segment_bases(), vec![0, 2, 3]);
    // an empty active segment never rolls
    log.maintenance(20_000).unwrap();
    assert_eq!(p.segment_count(), 3);
    assert_eq!(read_all(&p).len(), 3);
}

#[test]
fn offset_for_timestamp_and_max_timestamp() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    let p = log
        .create_topic(
            "t",
            1,
            cfg(&[("segment.bytes", "600"), ("index.interval.bytes", "150")]),
        )
        .unwrap()
        .partition(0)
        .unwrap();
    assert_eq!(p.max_timestamp(), None);
    assert_eq!(p.offset_for_timestamp(0), None);
    // 30 batches of 5 records, batch i has timestamps 1000+10i .. 1000+10i+4
    for i in 0..30 {
        p.append(&mut simple_batch(1000 + 10 * i, 5, 20), 0)
            .unwrap();
    }
    assert!(p.segment_count() > 3);
    assert_eq!(p.offset_for_timestamp(0), Some((0, 1000)));
    assert_eq!(p.offset_for_timestamp(1000), Some((0, 1000)));
    assert_eq!(p.offset_for_timestamp(1003), Some((3, 1003)));
    assert_eq!(p.offset_for_timestamp(1005), Some((5, 1010)));
    assert_eq!(p.offset_for_timestamp(1123), Some((63, 1123)));
    assert_eq!(p.offset_for_timestamp(1294), Some((149, 1294)));
    assert_eq!(p.offset_for_timestamp(1295), None);
    for ts in 990..1300 {
        let expect = if ts > 1294 {
            None
        } else if ts <= 1000 {
            Some((0, 1000))
        } else {
            let i = (ts - 1000) / 10;
            let j = (ts - 1000) % 10;
            if j <= 4 {
                Some((i * 5 + j, ts))
            } else {
                Some(((i + 1) * 5, 1000 + (i + 1) * 10))
            }
        };
        assert_eq!(p.offset_for_timestamp(ts), expect, "ts {ts}");
    }
    assert_eq!(p.max_timestamp(), Some((1294, 149)));
    // a later batch with an older timestamp does not change the max
    p.append(&mut simple_batch(5, 1, 20), 0).unwrap();
    assert_eq!(p.max_timestamp(), Some((1294, 149)));
    // same answers after reopen
    drop(log);
    let log = open(d.path());
    let p = part(&log, "t");
    assert_eq!(p.max_timestamp(), Some((1294, 149)));
    assert_eq!(p.offset_for_timestamp(1123), Some((63, 1123)));
    // log start is respected
    p.delete_records_before(62).unwrap();
    assert_eq!(p.offset_for_timestamp(0), Some((62, 1122)));
}

#[test]
fn log_append_time() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    let p = log
        .create_topic("t", 1, cfg(&[("message.timestamp.type", "LogAppendTime")]))
        .unwrap()
        .partition(0)
        .unwrap();
    let mut payload = simple_batch(5, 3, 10);
    payload.extend(simple_batch(6, 2, 10));
    let info = p.append(&mut payload, 777_000).unwrap();
    assert_eq!(info.log_append_time, 777_000);
    let r = p.read(0, 1 << 20, false).unwrap();
    for h in BatchIter::new(&r.bytes, usize::MAX) {
        let h = h.expect("CRC recomputed");
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp(), 777_000);
        assert_eq!(h.compute_crc(), h.crc());
        for rec in batch::records(&h).unwrap() {
            assert_eq!(rec.timestamp, 777_000);
        }
    }
    assert_eq!(p.offset_for_timestamp(1), Some((0, 777_000)));
    assert_eq!(p.max_timestamp(), Some((777_000, 0)));
}

#[test]
fn retention_by_time() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    let p = log
        .create_topic(
            "t",
            1,
            cfg(&[("segment.bytes", "500"), ("retention.ms", "1000")]),
        )
        .unwrap()
        .partition(0)
        .unwrap();
    // batch i has timestamp 10_000 + 100 i
    for i in 0..20 {
        p.append(&mut simple_batch(10_000 + 100 * i, 1, 100), 0)
            .unwrap();
    }
    let before = p.segment_bases();
    assert!(before.len() >= 5);
    log.maintenance(10_500).unwrap();
    assert_eq!(p.segment_bases(), before, "nothing expired yet");
    // at now=12_500, batches with ts < 11_500 are expired
    log.maintenance(12_500).unwrap();
    let after = p.segment_bases();
    assert!(after.len() < before.len());
    assert_eq!(p.log_start_offset(), after[0]);
    assert!(after[0] <= 15, "segment holding ts 11_500 kept");
    for b in before.iter().filter(|b| !after.contains(b)) {
        assert!(!p.dir().join(format!("{b:020}.log")).exists());
        assert!(!p.dir().join(format!("{b:020}.index")).exists());
    }
    assert!(matches!(
        p.read(0, 100, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&p).len() as i64, 20 - after[0]);
    // far future: all but the active segment go
    log.maintenance(1_000_000).unwrap();
    assert_eq!(p.segment_count(), 1);
    assert_eq!(p.high_watermark(), 20);
    // cleanup.policy=compact disables retention deletes
    let tc = log
        .create_topic(
            "compacted",
            1,
            cfg(&[
                ("segment.bytes", "500"),
                ("retention.ms", "1"),
                ("cleanup.policy", "compact"),
            ]),
        )
        .unwrap();
    let pc = tc.partition(0).unwrap();
    for i in 0..10 {
        pc.append(&mut simple_batch(i, 1, 100), 0).unwrap();
    }
    log.maintenance(1_000_000).unwrap();
    assert_eq!(pc.log_start_offset(), 0);
    // retention.ms=-1 keeps everything
    let t2 = log
        .create_topic(
            "keep",
            1,
            cfg(&[("segment.bytes", "500"), ("retention.ms", "-1")]),
        )
        .unwrap();
    let p2 = t2.partition(0).unwrap();
    for i in 0..10 {
        p2.append(&mut simple_batch(i, 1, 100), 0).unwrap();
    }
    let n = p2.segment_count();
    log.maintenance(i64::MAX).unwrap();
    assert_eq!(p2.segment_count(), n + 1, "rolled by age, nothing deleted");
    assert_eq!(p2.log_start_offset(), 0);
}

#[test]
fn retention_by_size() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path());
    let p = log
        .create_topic(
            "t",
            1,
            cfg(&[("segment.bytes", "1000"), ("retention.bytes", "2500")]),
        )
        .unwrap()
        .partition(0)
        .unwrap();
    let now = 1_000;
    for _ in 0..40 {
        p.append(&mut simple_batch(now, 1, 100), now).unwrap();
    }
    assert!(p.size_bytes() > 5000);
    log.maintenance(now).unwrap();
    let size = p.size_bytes();
    assert!((1500..=3500).contains(&size), "size {size}");
    // removing one more segment would go below retention.bytes
    let bases = p.segment_bases();
    assert_eq!(p.log_start_offset(), bases[0]);
    assert_eq!(read_all(&p).last().unwrap().0, 39);
}

#[test]
fn delete_records_before() {
    let d = tempfile::tempdir().unwrap();
    {
        let log = open(d.path());
        let p = log
            .create_topic("t", 1, cfg(&[("segment.bytes", "500")]))
            .unwrap()
            .partition(0)
            .unwrap();
        for _ in 0..20 {
            p.append(&mut simple_batch(0, 2, 100), 0).unwrap();
        }
        let segs = p.segment_count();
        assert!(matches!(
            p.delete_records_before(41),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert!(matches!(
            p.delete_records_before(-2),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(p.delete_records_before(0).unwrap(), 0);
        assert_eq!(p.delete_records_before(13).unwrap(), 13);
        assert_eq!(p.log_start_offset(), 13);
        assert!(p.segment_count() < segs);
        assert!(matches!(
            p.read(12, 100, true),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        // reading at log start inside a batch returns the containing batch
        assert_eq!(bases(&p.read(13, 1, true).unwrap().bytes), vec![12]);
        // lower is a no-op
        assert_eq!(p.delete_records_before(5).unwrap(), 13);
        assert_eq!(
            p.append(&mut simple_batch(0, 1, 1), 0)
                .unwrap()
                .log_start_offset,
            13
        );
    }
    let log = open(d.path());
    let p = part(&log, "t");
    assert_eq!(p.log_start_offset(), 13, "persisted");
    assert_eq!(p.high_watermark(), 41);
    assert_eq!(p.delete_records_before(-1).unwrap(), 41);
    assert_eq!(p.segment_count(), 1);
    assert!(p.read(41, 100, true).unwrap().bytes.is_empty());
    assert!(matches!(
        p.read(40, 100, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    drop(log);
    let log = open(d.path());
    let p = part(&log, "t");
    assert_eq!((p.log_start_offset(), p.high_watermark()), (41, 41));
    assert_eq!(
        p.append(&mut simple_batch(0, 1, 1), 0).unwrap().base_offset,
        41
    );
}

#[test]
fn configs_validate_persist_alter() {
    let d = tempfile::tempdir().unwrap();
    let defaults = cfg(&[("flush.messages", "1"), ("retention.ms", "5000")]);
    {
        let log = Log::open(d.path(), defaults.clone()).unwrap();
        let c = log
            .validate_configs(&cfg(&[("segment.bytes", "2048")]))
            .unwrap();
        assert_eq!(c.segment_bytes, 2048);
        assert_eq!(c.flush_messages, 1);
        assert_eq!(c.retention_ms, 5000);
        assert!(matches!(
            log.validate_configs(&cfg(&[("bogus", "1")])),
            Err(LogError::UnknownConfig(_))
        ));
        assert!(matches!(
            log.validate_configs(&cfg(&[("retention.ms", "soon")])),
            Err(LogError::InvalidConfig { .. })
        ));
        assert!(matches!(
            log.create_topic("bad", 1, cfg(&[("cleanup.policy", "forever")])),
            Err(LogError::InvalidConfig { .. })
        ));
        assert!(log.topic("bad").is_none());
        let t = log
            .create_topic(
                "t",
                2,
                cfg(&[("retention.ms", "1234"), ("cleanup.policy", "compact")]),
            )
            .unwrap();
        assert_eq!(t.config().retention_ms, 1234);
        assert_eq!(t.config().cleanup_policy, "compact");
        assert_eq!(
            t.overrides(),
            cfg(&[("cleanup.policy", "compact"), ("retention.ms", "1234")])
        );
        let desc = t.describe_configs();
        assert_eq!(desc.len(), supported_keys().count());
        let get = |k: &str| desc.iter().find(|e| e.name == k).unwrap().clone();
        assert_eq!(get("retention.ms").value, "1234");
        assert!(get("retention.ms").is_topic_override);
        assert_eq!(get("flush.messages").value, "1");
        assert_eq!(get("flush.messages").source, ConfigSource::ServerDefault);
        assert!(!get("flush.messages").is_topic_override);
        assert_eq!(get("segment.bytes").value, "1073741824");
        assert_eq!(get("segment.bytes").source, ConfigSource::Default);
        // alter: set + delete, validated atomically
        assert!(matches!(
            t.alter_configs(&[
                ("retention.ms".into(), Some("7".into())),
                ("nope".into(), Some("1".into()))
            ]),
            Err(LogError::UnknownConfig(_))
        ));
        assert!(matches!(
            t.alter_configs(&[("segment.bytes".into(), Some("-5".into()))]),
            Err(LogError::InvalidConfig { .. })
        ));
        assert_eq!(t.config().retention_ms, 1234);
        t.alter_configs(&[
            ("retention.ms".into(), None),
            (
                "message.timestamp.type".into(),
                Some("LogAppendTime".into()),
            ),
        ])
        .unwrap();
        assert_eq!(t.config().retention_ms, 5000);
        // applied to live partitions
        let p = t.partition(1).unwrap();
        assert_eq!(
            p.config().message_timestamp_type,
            TimestampType::LogAppendTime
        );
        assert_eq!(
            p.append(&mut simple_batch(0, 1, 1), 42)
                .unwrap()
                .log_append_time,
            42
        );
    }
    let log = Log::open(d.path(), defaults).unwrap();
    let t = log.topic("t").unwrap();
    assert_eq!(
        t.config().message_timestamp_type,
        TimestampType::LogAppendTime
    );
    assert_eq!(t.config().retention_ms, 5000);
    assert_eq!(t.config().cleanup_policy, "compact");
    assert!(Log::open(d.path(), cfg(&[("nonsense", "1")])).is_err());
}

#[test]
fn topic_create_delete_reopen() {
    let d = tempfile::tempdir().unwrap();
    let id;
    {
        let log = open(d.path());
        for bad in ["", ".", "..", "a/b", "sp ace", "é", &"x".repeat(250)] {
            assert!(
                matches!(
                    log.create_topic(bad, 1, BTreeMap::new()),
                    Err(LogError::InvalidTopicName(..))
                ),
                "{bad:?}"
            );
        }
        assert!(log
            .create_topic(&"x".repeat(249), 1, BTreeMap::new())
            .is_ok());
        assert!(matches!(
            log.create_topic("t", 0, BTreeMap::new()),
            Err(LogError::InvalidPartitions(0))
        ));
        let t = log
            .create_topic("my.topic_1-x", 2, BTreeMap::new())
            .unwrap();
        id = t.id();
        assert_ne!(id, [0; 16]);
        assert!(matches!(
            log.create_topic("my.topic_1-x", 2, BTreeMap::new()),
            Err(LogError::TopicExists(_))
        ));
        t.partition(1)
            .unwrap()
            .append(&mut simple_batch(0, 3, 3), 0)
            .unwrap();
        let gone = log.create_topic("gone", 1, BTreeMap::new()).unwrap();
        assert_ne!(gone.id(), id);
        let gp = gone.partition(0).unwrap();
        log.delete_topic("gone").unwrap();
        assert!(log.topic("gone").is_none());
        assert!(matches!(
            gp.append(&mut simple_batch(0, 1, 1), 0),
            Err(LogError::StorageFailed(_))
        ));
        assert!(matches!(
            log.delete_topic("gone"),
            Err(LogError::UnknownTopic(_))
        ));
        assert!(!d.path().join("topics/gone").exists());
        assert_eq!(log.topics().len(), 2);
        // recreate with the same name: fresh and empty
        let again = log.create_topic("gone", 1, BTreeMap::new()).unwrap();
        assert_eq!(again.partition(0).unwrap().high_watermark(), 0);
        log.delete_topic("gone").unwrap();
    }
    // an unfinished deletion and an unfinished creation are cleaned up on open
    std::fs::create_dir_all(d.path().join("deleted/zzz.0011.deleted/0")).unwrap();
    std::fs::create_dir_all(d.path().join("topics/half/0")).unwrap();
    let log = open(d.path());
    assert!(std::fs::read_dir(d.path().join("deleted"))
        .unwrap()
        .next()
        .is_none());
    assert!(!d.path().join("topics/half").exists());
    let t = log.topic("my.topic_1-x").unwrap();
    assert_eq!(t.id(), id);
    assert_eq!(t.partition_count(), 2);
    assert_eq!(t.partition(1).unwrap().high_watermark(), 3);
    assert_eq!(log.topics().len(), 2);
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(d.path().join("topics/my.topic_1-x/topic.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["name"], "my.topic_1-x");
    assert_eq!(json["partitions"], 2);
    assert_eq!(json["id"].as_str().unwrap().len(), 32);
}

#[test]
fn add_partitions() {
    let d = tempfile::tempdir().unwrap();
    {
        let log = open(d.path());
        let t = log.create_topic("t", 2, BTreeMap::new()).unwrap();
        assert!(matches!(
            t.add_partitions(2),
            Err(LogError::InvalidPartitions(2))
        ));
        assert!(matches!(
            t.add_partitions(1),
            Err(LogError::InvalidPartitions(1))
        ));
        t.add_partitions(5).unwrap();
        assert_eq!(t.partition_count(), 5);
        let p = t.partition(4).unwrap();
        assert_eq!(p.index(), 4);
        p.append(&mut simple_batch(0, 1, 1), 0).unwrap();
    }
    let log = open(d.path());
    let t = log.topic("t").unwrap();
    assert_eq!(t.partition_count(), 5);
    assert_eq!(t.partition(4).unwrap().high_watermark(), 1);
}

/// Appends `n` batches and returns (base, bytes) of each plus the active
/// segment path; closes the log cleanly.
fn fill(
    dir: &Path,
    n: usize,
    topic_cfg: &[(&str, &str)],
) -> (Vec<(i64, Vec<u8>)>, std::path::PathBuf) {
    let log = open(dir);
    let p = log
        .create_topic("t", 1, cfg(topic_cfg))
        .unwrap()
        .partition(0)
        .unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        let mut b = simple_batch(i as i64, 1 + i % 3, 30 + i);
        let info = p.append(&mut b, 0).unwrap();
        out.push((info.base_offset, b));
    }
    let last = *p.segment_bases().last().unwrap();
    (out, p.dir().join(format!("{last:020}.log")))
}

fn crash(dir: &Path) {
    std::fs::remove_file(dir.join("topics/t/0/recovery-point")).unwrap();
}

#[test]
fn recovery_truncates_torn_tail() {
    for damage in 0..4 {
        let d = tempfile::tempdir().unwrap();
        let (batches, seg) = fill(d.path(), 10, &[("index.interval.bytes", "100")]);
        let len = std::fs::metadata(&seg).unwrap().len();
        let mut expect = batches.clone();
        match damage {
            0 => {
                // half of a batch appended
                let b = simple_batch(0, 5, 50);
                let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
                std::io::Write::write_all(&mut f, &b[..b.len() / 2]).unwrap();
            }
            1 => {
                // garbage appended
                let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
                std::io::Write::write_all(&mut f, &[0xAB; 333]).unwrap();
            }
            2 => {
                // last batch cut short
                let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
                f.set_len(len - 5).unwrap();
                expect.pop();
            }
            _ => {
                // a flipped byte in the 8th batch's records: it and later go
                let pos: usize = batches[..7].iter().map(|(_, b)| b.len()).sum::<usize>() + 70;
                let mut data = std::fs::read(&seg).unwrap();
                data[pos] ^= 0x40;
                std::fs::write(&seg, data).unwrap();
                expect.truncate(7);
            }
        }
        crash(d.path());
        let log = open(d.path());
        let p = part(&log, "t");
        let next = expect.last().map_or(0, |(b, bytes)| {
            b + BatchHeader::parse(bytes).unwrap().offset_count()
        });
        assert_eq!(p.high_watermark(), next, "damage {damage}");
        assert_eq!(read_all(&p), expect, "damage {damage}");
        let expected_len: usize = expect.iter().map(|(_, b)| b.len()).sum();
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), expected_len as u64);
        let info = p.append(&mut simple_batch(0, 2, 5), 0).unwrap();
        assert_eq!(info.base_offset, next);
        drop(log);
        let log = open(d.path());
        assert_eq!(part(&log, "t").high_watermark(), next + 2);
    }
}

#[test]
fn clean_shutdown_garbage_tail_is_still_detected() {
    let d = tempfile::tempdir().unwrap();
    let (batches, seg) = fill(d.path(), 6, &[]);
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[1, 2, 3]).unwrap();
    let log = open(d.path());
    let p = part(&log, "t");
    assert_eq!(read_all(&p), batches);
}

#[test]
fn recovery_across_segments_and_corrupt_middle_segment() {
    let d = tempfile::tempdir().unwrap();
    let (batches, _) = fill(d.path(), 30, &[("segment.bytes", "400")]);
    let pdir = d.path().join("topics/t/0");
    {
        let log = open(d.path());
        let p = part(&log, "t");
        assert_eq!(read_all(&p), batches);
        let bases = p.segment_bases();
        assert!(bases.len() > 4);
    }
    // an unclean shutdown with no checkpoint: every segment is rescanned
    crash(d.path());
    let log = open(d.path());
    let p = part(&log, "t");
    assert_eq!(read_all(&p), batches);
    let bases = p.segment_bases();
    drop(log);
    // corrupt a middle segment, then crash: everything from there goes
    let mid = bases[2];
    let path = pdir.join(format!("{mid:020}.log"));
    let mut data = std::fs::read(&path).unwrap();
    data[40] ^= 0xff;
    std::fs::write(&path, data).unwrap();
    crash(d.path());
    let log = open(d.path());
    let p = part(&log, "t");
    assert_eq!(p.high_watermark(), mid);
    assert_eq!(p.segment_bases(), bases[..3].to_vec());
    let kept: Vec<_> = batches.iter().filter(|(b, _)| *b < mid).cloned().collect();
    assert_eq!(read_all(&p), kept);
    assert!(!pdir.join(format!("{:020}.log", bases[3])).exists());
}

#[test]
fn index_rebuilt_when_deleted_or_truncated() {
    for case in 0..4 {
        let d = tempfile::tempdir().unwrap();
        let (batches, _) = fill(
            d.path(),
            40,
            &[("segment.bytes", "1500"), ("index.interval.bytes", "100")],
        );
        let pdir = d.path().join("topics/t/0");
        let idx = pdir.join(format!("{:020}.index", 0));
        let tidx = pdir.join(format!("{:020}.timeindex", 0));
        let orig_idx = std::fs::read(&idx).unwrap();
        let orig_tidx = std::fs::read(&tidx).unwrap();
        assert!(orig_idx.len() >= 16);
        match case {
            0 => std::fs::remove_file(&idx).unwrap(),
            1 => std::fs::OpenOptions::new()
                .write(true)
                .open(&idx)
                .unwrap()
                .set_len(5)
                .unwrap(),
            2 => std::fs::remove_file(&tidx).unwrap(),
            _ => {
                // entry pointing past the end of the segment
                let mut bad = orig_idx.clone();
                bad.extend_from_slice(&1000u32.to_be_bytes());
                bad.extend_from_slice(&100_000u32.to_be_bytes());
                std::fs::write(&idx, bad).unwrap();
            }
        }
        let log = open(d.path());
        let p = part(&log, "t");
        assert!(p.segment_count() > 2);
        assert_eq!(read_all(&p), batches, "case {case}");
        for (b, bytes) in &batches {
            assert_eq!(p.read(*b, 1, true).unwrap().bytes, *bytes);
        }
        assert_eq!(std::fs::read(&idx).unwrap(), orig_idx, "case {case}");
        assert_eq!(std::fs::read(&tidx).unwrap(), orig_tidx, "case {case}");
        assert_eq!(
            p.offset_for_timestamp(7),
            Some((p.offset_for_timestamp(7).unwrap().0, 7))
        );
    }
}

#[test]
fn active_index_rebuilt_after_crash() {
    let d = tempfile::tempdir().unwrap();
    let (batches, seg) = fill(d.path(), 20, &[("index.interval.bytes", "50")]);
    let idx = seg.with_extension("index");
    let good = std::fs::read(&idx).unwrap();
    std::fs::write(&idx, &good[..good.len() / 2]).unwrap();
    crash(d.path());
    let log = open(d.path());
    let p = part(&log, "t");
    assert_eq!(read_all(&p), batches);
    assert_eq!(std::fs::read(&idx).unwrap(), good);
}

#[test]
fn flush_messages_one_and_checkpoints() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path(), cfg(&[("flush.messages", "1")])).unwrap();
    let t = log.create_topic("t", 1, BTreeMap::new()).unwrap();
    assert_eq!(t.config().flush_messages, 1);
    let p = t.partition(0).unwrap();
    for _ in 0..5 {
        p.append(&mut simple_batch(0, 2, 10), 0).unwrap();
    }
    log.flush_all().unwrap();
    let rp = std::fs::read_to_string(p.dir().join("recovery-point")).unwrap();
    assert_eq!(rp.trim(), "10");
    // flush.ms via maintenance
    let t2 = log
        .create_topic("u", 1, cfg(&[("flush.ms", "100")]))
        .unwrap();
    let p2 = t2.partition(0).unwrap();
    p2.append(&mut simple_batch(0, 2, 10), 0).unwrap();
    log.maintenance(i64::MAX / 2).unwrap();
    log.maintenance(i64::MAX / 2 + 100_000).unwrap();
    let rp = std::fs::read_to_string(p2.dir().join("recovery-point")).unwrap();
    assert_eq!(rp.trim(), "2");
}

#[test]
fn restart_rescans_only_from_recovery_point() {
    let d = tempfile::tempdir().unwrap();
    let pdir = d.path().join("topics/t/0");
    let log = open(d.path());
    let p = log
        .create_topic("t", 1, cfg(&[("segment.bytes", "400")]))
        .unwrap()
        .partition(0)
        .unwrap();
    for _ in 0..20 {
        p.append(&mut simple_batch(0, 2, 60), 0).unwrap();
    }
    log.flush_all().unwrap();
    let flushed = p.high_watermark();
    for _ in 0..3 {
        p.append(&mut simple_batch(0, 2, 60), 0).unwrap();
    }
    let bases = p.segment_bases();
    let hw = p.high_watermark();
    let last = *bases.last().unwrap();
    // crash: no flush on the way out
    log.crash();
    // A flipped record byte in the (trusted, flushed) first segment is not
    // noticed: healthy old segments are not rescanned.
    let first = pdir.join(format!("{:020}.log", 0));
    let mut data = std::fs::read(&first).unwrap();
    data[100] ^= 1;
    std::fs::write(&first, data).unwrap();
    // A torn tail on the active segment is.
    let seg = pdir.join(format!("{last:020}.log"));
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[9; 17]).unwrap();
    let log = open(d.path());
    let p = part(&log, "t");
    assert_eq!(p.segment_bases(), bases);
    assert_eq!(p.high_watermark(), hw);
    assert!(flushed < hw);
    let rp = std::fs::read_to_string(pdir.join("recovery-point")).unwrap();
    assert_eq!(rp.trim(), hw.to_string());
}

#[test]
fn many_segments_reopen_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let (batches, _) = fill(d.path(), 200, &[("segment.bytes", "300")]);
    let log = open(d.path());
    let p = part(&log, "t");
    assert!(p.segment_count() > 50);
    assert_eq!(read_all(&p), batches);
}

#[test]
fn concurrent_appends_and_reads() {
    let d = tempfile::tempdir().unwrap();
    let log = Arc::new(open(d.path()));
    let p = log
        .create_topic("t", 1, cfg(&[("segment.bytes", "20000")]))
        .unwrap()
        .partition(0)
        .unwrap();
    let writers: Vec<_> = (0..3)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    p.append(&mut simple_batch(0, 3, 40), 0).unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || {
                let mut off = 0;
                while off < 1800 {
                    let r = p.read(off, 5000, true).unwrap();
                    for h in BatchIter::new(&r.bytes, usize::MAX) {
                        let h = h.unwrap();
                        assert_eq!(h.base_offset(), off);
                        off = h.next_offset();
                    }
                }
            })
        })
        .collect();
    for t in writers.into_iter().chain(readers) {
        t.join().unwrap();
    }
    assert_eq!(p.high_watermark(), 1800);
    assert_eq!(read_all(&p).len(), 600);
}

#[test]
fn fuzz_entry_point_smoke() {
    fuzz_recover(&[]);
    fuzz_recover(&[0x00, 1, 2, 3]);
    fuzz_recover(&[0x80, 0, 0, 0, 61, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    fuzz_recover(&[0x43, 7, 7, 7, 7]);
}

#[test]
fn build_batch_with_headers_round_trips() {
    let recs = vec![
        TestRecord {
            timestamp_delta: 0,
            key: None,
            value: Some(b"a".to_vec()),
            headers: vec![(b"h".to_vec(), None)],
        },
        TestRecord {
            timestamp_delta: 5,
            key: Some(vec![]),
            value: None,
            headers: vec![],
        },
    ];
    let b = build_batch(100, &recs);
    let h = batch::validate_batch(&b, usize::MAX).unwrap();
    let r = batch::records(&h).unwrap();
    assert_eq!(r[0].headers, vec![(&b"h"[..], None)]);
    assert_eq!(r[1].key, Some(&b""[..]));
    assert_eq!(r[1].value, None);
    assert_eq!(r[1].timestamp, 105);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn recovery_from_arbitrary_damage(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let d = tempfile::tempdir().unwrap();
            crate::testutil::damage_and_recover(d.path(), &bytes);
        }

        #[test]
        fn recovery_from_random_appended_valid_looking_batch(cut in 0usize..200, flip in 0usize..200) {
            // a real batch appended and then cut / bit-flipped
            let d = tempfile::tempdir().unwrap();
            let (batches, seg) = fill(d.path(), 5, &[]);
            let mut extra = simple_batch(0, 4, 30);
            batch::set_base_offset(&mut extra, batches.last().map_or(0, |(b, x)| b + BatchHeader::parse(x).unwrap().offset_count()));
            let cut = cut % (extra.len() + 1);
            if flip < extra.len() { extra[flip] ^= 0x10; }
            let mut data = std::fs::read(&seg).unwrap();
            data.extend_from_slice(&extra[..cut]);
            std::fs::write(&seg, data).unwrap();
            crash(d.path());
            let log = open(d.path());
            let p = part(&log, "t");
            let got = read_all(&p);
            prop_assert!(got.len() == batches.len() || got.len() == batches.len() + 1);
            prop_assert_eq!(&got[..batches.len()], &batches[..]);
            let hw = p.high_watermark();
            prop_assert_eq!(p.append(&mut simple_batch(0, 1, 1), 0).unwrap().base_offset, hw);
        }
    }
}

#[test]
fn deferred_appends_share_one_sync() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path(), cfg(&[("flush.messages", "1")])).unwrap();
    log.create_topic("g", 1, BTreeMap::new()).unwrap();
    let p = part(&log, "g");
    let mut a = simple_batch(0, 3, 10);
    let mut b = simple_batch(0, 2, 10);
    let (ia, sa) = p.append_deferred(&mut a, 0).unwrap();
    let (ib, sb) = p.append_deferred(&mut b, 0).unwrap();
    assert_eq!((ia.base_offset, ib.base_offset), (0, 3));
    assert_eq!(
        (sa, sb),
        (Some(3), Some(5)),
        "flush.messages=1 asks for a sync per append"
    );
    p.sync_to(5, 0).unwrap();
    // The later sync covered the earlier append: nothing left to do.
    p.sync_to(3, 0).unwrap();
    assert_eq!(read_all(&p).len(), 2);

    // Without a flush policy no sync is requested.
    let log2 = Log::open(&d.path().join("other"), BTreeMap::new()).unwrap();
    let q = log2
        .create_topic("os", 1, BTreeMap::new())
        .unwrap()
        .partition(0)
        .unwrap();
    let mut c = simple_batch(0, 1, 10);
    assert_eq!(q.append_deferred(&mut c, 0).unwrap().1, None);
}

/// Two processes on one data directory would overwrite each other's
/// acknowledged records: the second open is refused, naming the holder,
/// until the first log is closed.
#[test]
fn a_data_directory_is_opened_by_one_log_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    match Log::open(dir.path(), BTreeMap::new()) {
        Err(LogError::DirectoryLocked { dir: d, holder }) => {
            assert_eq!(d, dir.path().display().to_string());
            assert_eq!(holder, format!("pid {}", std::process::id()));
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("a second log opened a locked directory"),
    }
    let message = Log::open(dir.path(), BTreeMap::new())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        message.contains("is in use by another process"),
        "{message}"
    );
    drop(first);
    let again = open(dir.path());
    assert!(again.dir().join(crate::log::LOCK_FILE).exists());
}
