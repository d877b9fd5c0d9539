//! The CDC source against a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use runnel_connect_api::{ConnectorPlugin, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

#[test]
fn snapshot_then_streaming_gives_debezium_envelopes() {
    let db = TestDb::new("envelope");
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email varchar(50));
         INSERT INTO customers VALUES (1, 'ann', 'ann@x'), (2, 'bob', NULL);",
    )
    .unwrap();
    let offsets = MapOffsets::default();
    let mut task = start_task(&db.source_config(&[]), &offsets);

    let snap = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 2);
    assert_eq!(snap.len(), 2);
    let r0 = &snap[0];
    assert_eq!(r0.topic, "srv.public.customers");
    assert_eq!(op(r0), "r");
    assert_eq!(key_id(r0), 1);
    assert_eq!(
        r0.key_schema.as_ref().unwrap().name.as_deref(),
        Some("srv.public.customers.Key")
    );
    let vs = r0.value_schema.as_ref().unwrap();
    assert_eq!(vs.name.as_deref(), Some("srv.public.customers.Envelope"));
    assert_eq!(
        vs.fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        // Debezium's envelope version 2, in its field order.
        [
            "before",
            "after",
            "source",
            "transaction",
            "op",
            "ts_ms",
            "ts_us",
            "ts_ns"
        ]
    );
    assert_eq!(vs.version, Some(2));
    let src_schema = &vs.field_named("source").unwrap().schema;
    assert_eq!(src_schema.version, Some(1));
    assert_eq!(
        src_schema
            .fields
            .iter()
            .rev()
            .take(3)
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["origin_lsn", "origin", "xmin"]
    );
    let ts_ms = int(field(&r0.value, "ts_ms"));
    let ts_us = int(field(&r0.value, "ts_us"));
    assert_eq!(ts_us / 1000, ts_ms);
    assert_eq!(int(field(&r0.value, "ts_ns")), ts_us * 1000);
    let after_schema = &vs.field_named("after").unwrap().schema;
    assert_eq!(
        after_schema.name.as_deref(),
        Some("srv.public.customers.Value")
    );
    assert!(after_schema.optional);
    assert!(!after_schema.field_named("name").unwrap().schema.optional);
    assert!(after_schema.field_named("email").unwrap().schema.optional);
    assert_eq!(
        vs.field_named("source").unwrap().schema.name.as_deref(),
        Some("io.debezium.connector.postgresql.Source")
    );
    assert!(field(&r0.value, "before").is_null());
    assert_eq!(field(&r0.value, "after.name"), &Value::String("ann".into()));
    assert_eq!(
        field(&r0.value, "after.email"),
        &Value::String("ann@x".into())
    );
    // The first and last records of the snapshot say so.
    assert_eq!(
        field(&r0.value, "source.snapshot"),
        &Value::String("first".into())
    );
    // A snapshot record carries the snapshot's transaction and LSN.
    let snap_lsn = int(field(&r0.value, "source.lsn"));
    assert!(int(field(&r0.value, "source.txId")) > 0);
    assert_eq!(
        field(&r0.value, "source.sequence"),
        &Value::String(format!("[null,\"{snap_lsn}\"]"))
    );
    assert_eq!(
        field(&r0.value, "source.connector"),
        &Value::String("postgresql".into())
    );
    assert_eq!(
        field(&r0.value, "source.name"),
        &Value::String("srv".into())
    );
    assert_eq!(
        field(&r0.value, "source.db"),
        &Value::String(db.name.clone())
    );
    assert_eq!(
        field(&r0.value, "source.schema"),
        &Value::String("public".into())
    );
    assert_eq!(
        field(&r0.value, "source.table"),
        &Value::String("customers".into())
    );
    assert_eq!(
        field(&snap[1].value, "source.snapshot"),
        &Value::String("last".into())
    );
    assert_eq!(field(&snap[1].value, "after.email"), &Value::Null);
    assert_eq!(r0.source_partition.get("server").unwrap(), "srv");
    assert_eq!(
        snap[1].source_offset.get("last_snapshot_record").unwrap(),
        true
    );
    for r in &snap {
        let Value::Struct(s) = &r.value else { panic!() };
        s.validate().unwrap();
    }

    c.batch_execute(
        "INSERT INTO customers VALUES (3, 'cy', 'cy@x');
         UPDATE customers SET email = 'bob@x' WHERE id = 2;
         DELETE FROM customers WHERE id = 1;",
    )
    .unwrap();
    let recs = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 4);
    let recs: Vec<_> = data(&recs).into_iter().cloned().collect();
    assert_eq!(
        recs.iter()
            .map(|r| (op(r).to_string(), key_id(r)))
            .collect::<Vec<_>>(),
        [
            ("c".to_string(), 3),
            ("u".into(), 2),
            ("d".into(), 1),
            ("tombstone".into(), 1)
        ]
    );
    let ins = &recs[0];
    assert_eq!(field(&ins.value, "after.name"), &Value::String("cy".into()));
    assert!(field(&ins.value, "before").is_null());
    assert_eq!(
        field(&ins.value, "source.snapshot"),
        &Value::String("false".into())
    );
    let tx = int(field(&ins.value, "source.txId"));
    assert!(tx > 0);
    let ins_lsn = int(field(&ins.value, "source.lsn"));
    assert!(ins_lsn > 0);
    // No commit seen since the snapshot: the sequence's first LSN is null.
    assert_eq!(
        field(&ins.value, "source.sequence"),
        &Value::String(format!("[null,\"{ins_lsn}\"]"))
    );
    // Debezium's context headers on every event.
    let headers = |r: &runnel_connect_api::SourceRecord| {
        r.headers
            .iter()
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect::<Vec<_>>()
    };
    let h = headers(ins);
    assert_eq!(
        h.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        [
            "__debezium.context.connectorLogicalName",
            "__debezium.context.taskId",
            "__debezium.context.connectorName",
            "__debezium.context.runId"
        ]
    );
    assert_eq!(h[0].1, Value::String("srv".into()));
    assert_eq!(h[1].1, Value::String("0".into()));
    assert_eq!(h[2].1, Value::String("postgresql".into()));
    let Value::String(run_id) = &h[3].1 else {
        panic!()
    };
    assert_eq!(run_id.len(), 36);
    assert_eq!(headers(&snap[0]), h);
    assert!(int(field(&ins.value, "source.ts_ms")) > 1_600_000_000_000);
    let upd = &recs[1];
    // DEFAULT replica identity: no before image on an update.
    assert!(field(&upd.value, "before").is_null());
    assert_eq!(
        field(&upd.value, "after.email"),
        &Value::String("bob@x".into())
    );
    assert_eq!(
        field(&upd.value, "after.name"),
        &Value::String("bob".into())
    );
    let del = &recs[2];
    assert!(field(&del.value, "after").is_null());
    assert_eq!(int(field(&del.value, "before.id")), 1);
    assert!(field(&del.value, "before.email").is_null());
    assert!(recs[3].value.is_null());
    // A tombstone has no value schema (JsonConverter writes a null value).
    assert!(recs[3].value_schema.is_none());
    assert_eq!(recs[3].key, del.key);
    for r in &recs[..3] {
        let Value::Struct(s) = &r.value else { panic!() };
        s.validate().unwrap();
        assert!(r.source_offset.contains_key("lsn"));
        assert!(r.source_offset.contains_key("lsn_proc"));
        assert!(r.source_offset.contains_key("txId"));
        assert!(r.source_offset.contains_key("ts_usec"));
    }
    // After a commit, the sequence starts with its end LSN.
    c.batch_execute("UPDATE customers SET name = 'z' WHERE id = 3")
        .unwrap();
    let more = poll_until(task.as_mut(), &offsets, T, |r| !data(r).is_empty());
    let Value::String(seq) = field(&data(&more)[0].value, "source.sequence") else {
        panic!()
    };
    assert!(seq.starts_with("[\""), "{seq}");
    task.stop();
}

/// Applies change events to a map id → name, as a consumer would.
fn apply(state: &mut BTreeMap<i64, String>, recs: &[runnel_connect_api::SourceRecord]) {
    for r in data(recs) {
        match op(r) {
            "r" | "c" | "u" => {
                let name = field(&r.value, "after.v").as_str().unwrap().to_string();
                state.insert(key_id(r), name);
            }
            "d" => {
                state.remove(&key_id(r));
            }
            _ => {}
        }
    }
}

#[test]
fn writes_during_the_snapshot_are_neither_lost_nor_duplicated() {
    let db = TestDb::new("concurrent");
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO items SELECT g, 'init' FROM generate_series(1, 20000) g;",
    )
    .unwrap();
    // A writer commits one change after another, before, while and after
    // the slot is created and the snapshot is read.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let mut c = db.client();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0i64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || i < 50 {
                let sql = match i % 3 {
                    0 => format!("INSERT INTO items VALUES ({}, 'new{i}')", 100_000 + i),
                    1 => format!(
                        "UPDATE items SET v = 'upd{i}' WHERE id = {}",
                        1 + (i * 7) % 20000
                    ),
                    _ => format!("DELETE FROM items WHERE id = {}", 2 + (i * 11) % 20000),
                };
                c.batch_execute(&sql).unwrap();
                i += 1;
            }
            (0..i).filter(|i| i % 3 == 0).count()
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let offsets = MapOffsets::default();
    let mut task = start_task(&db.source_config(&[]), &offsets);
    let mut all = poll_until(task.as_mut(), &offsets, T, |r| {
        r.iter()
            .any(|r| r.source_offset.get("last_snapshot_record") == Some(&serde_json::json!(true)))
    });
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let inserted = writer.join().unwrap();
    c.batch_execute("INSERT INTO items VALUES (999999, 'end')")
        .unwrap();
    all.extend(poll_until(task.as_mut(), &offsets, T, |r| {
        data(r)
            .iter()
            .any(|r| !r.value.is_null() && key_id(r) == 999_999)
    }));
    let snapshot_ids: Vec<i64> = data(&all)
        .into_iter()
        .filter(|r| op(r) == "r")
        .map(key_id)
        .collect();
    let distinct: BTreeSet<i64> = snapshot_ids.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        snapshot_ids.len(),
        "a row snapshotted twice"
    );
    // Each insert is seen once: in the snapshot or as a create, not both.
    let created: Vec<i64> = data(&all)
        .into_iter()
        .filter(|r| op(r) == "c")
        .map(key_id)
        .collect();
    for id in &created {
        assert!(!distinct.contains(id), "{id} both snapshotted and created");
    }
    let created_set: BTreeSet<i64> = created.iter().copied().collect();
    assert_eq!(created_set.len(), created.len(), "a create twice");
    assert_eq!(
        created_set.len() + distinct.iter().filter(|i| **i >= 100_000).count(),
        inserted + 1
    );
    assert!(
        distinct.iter().any(|i| *i >= 100_000),
        "no write before the snapshot"
    );
    assert!(created_set.len() > 1, "no write after the slot");
    let mut state = BTreeMap::new();
    apply(&mut state, &all);
    let mut truth = BTreeMap::new();
    for row in c.query("SELECT id, v FROM items", &[]).unwrap() {
        truth.insert(i64::from(row.get::<_, i32>(0)), row.get::<_, String>(1));
    }
    assert_eq!(state.len(), truth.len());
    assert!(state == truth, "the replayed events differ from the table");
    task.stop();
}

#[test]
fn a_restart_in_the_middle_of_a_large_transaction_emits_every_change_once() {
    let db = TestDb::new("restart");
    let mut c = db.client();
    c.batch_execute("CREATE TABLE big (id int PRIMARY KEY, v text NOT NULL)")
        .unwrap();
    let config = db.source_config(&[("snapshot.mode", "never")]);
    let offsets = MapOffsets::default();
    let mut task = start_task(&config, &offsets);
    c.batch_execute("INSERT INTO big VALUES (1, 'before')")
        .unwrap();
    c.batch_execute(
        "BEGIN; INSERT INTO big SELECT g, 'x' FROM generate_series(2, 5001) g;
         UPDATE big SET v = 'y' WHERE id <= 100; COMMIT;",
    )
    .unwrap();
    c.batch_execute("INSERT INTO big VALUES (6000, 'after')")
        .unwrap();
    // Read part of the big transaction; what was stored is what the
    // runtime made durable.
    let first = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 1500);
    assert!(first.len() < 5102, "the whole transaction came in one poll");
    task.stop();
    let stored = offsets.offset_of("srv");
    assert!(stored.get("event_index").is_some(), "{stored:?}");

    let mut task = start_task(&config, &offsets);
    let rest = poll_until(task.as_mut(), &offsets, T, |r| {
        data(r).iter().any(|r| key_id(r) == 6000)
    });
    task.stop();
    let mut seen: HashMap<(String, i64), usize> = HashMap::new();
    for r in data(&first).into_iter().chain(data(&rest)) {
        *seen.entry((op(r).to_string(), key_id(r))).or_default() += 1;
    }
    let dupes: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "repeated: {dupes:?}");
    let creates = seen.keys().filter(|(o, _)| o == "c").count();
    let updates = seen.keys().filter(|(o, _)| o == "u").count();
    assert_eq!(creates, 5002);
    assert_eq!(updates, 100);

    // A restart after everything was committed emits nothing again.
    let mut task = start_task(&config, &offsets);
    let again = drain(task.as_mut(), &offsets, Duration::from_secs(2));
    assert!(
        data(&again).is_empty(),
        "{:?}",
        again.iter().map(summary).collect::<Vec<_>>()
    );
    task.stop();
}

#[test]
fn common_types_map_as_debezium_does() {
    let db = TestDb::new("types");
    let mut c = db.client();
    c.batch_execute(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE TABLE t (
           id int8 PRIMARY KEY, s int2, i int4, f4 float4, f8 float8, b bool,
           txt text, vc varchar(10), ch char(3), n numeric(10,2), nu numeric,
           d date, tm time, ts timestamp, tz timestamptz, j json, jb jsonb,
           u uuid, by bytea, arr int4[], tarr text[], m mood, other inet);
         INSERT INTO t VALUES (1, -2, 3, 1.5, 2.25, true, 'hé', 'v', 'ab', -12.30, 3.14159,
           '2024-03-01', '01:02:03.5', '2024-03-01 00:00:01.000001', '2024-03-01 12:00:00+02',
           '{\"a\": 1}', '{\"b\": [1, 2]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff',
           '{1,NULL,3}', '{a,\"b c\"}', 'happy', '10.0.0.1');",
    )
    .unwrap();
    let offsets = MapOffsets::default();
    let mut task = start_task(&db.source_config(&[]), &offsets);
    let recs = poll_until(task.as_mut(), &offsets, T, |r| !data(r).is_empty());
    c.batch_execute("UPDATE t SET s = 7 WHERE id = 1").unwrap();
    let streamed = poll_until(task.as_mut(), &offsets, T, |r| !data(r).is_empty());
    task.stop();
    for r in [&recs[0], &streamed[0]] {
        let after = field(&r.value, "after");
        let schema = &r
            .value_schema
            .as_ref()
            .unwrap()
            .field_named("after")
            .unwrap()
            .schema;
        let s = |name: &str| &schema.field_named(name).unwrap().schema;
        let v = |name: &str| field(after, name).clone();
        assert_eq!(v("id"), Value::Int64(1));
        assert_eq!(v("i"), Value::Int32(3));
        assert_eq!(v("f4"), Value::Float32(1.5));
        assert_eq!(v("f8"), Value::Float64(2.25));
        assert_eq!(v("b"), Value::Boolean(true));
        assert_eq!(v("txt"), Value::String("hé".into()));
        assert_eq!(v("vc"), Value::String("v".into()));
        assert_eq!(v("ch"), Value::String("ab ".into()));
        assert_eq!(
            s("n").name.as_deref(),
            Some("org.apache.kafka.connect.data.Decimal")
        );
        assert_eq!(s("n").parameter("scale"), Some("2"));
        assert_eq!(v("n"), Value::Bytes(vec![0xfb, 0x32])); // -1230
        assert_eq!(
            s("nu").name.as_deref(),
            Some("io.debezium.data.VariableScaleDecimal")
        );
        assert_eq!(field(after, "nu.scale"), &Value::Int32(5));
        assert_eq!(s("d").name.as_deref(), Some("io.debezium.time.Date"));
        assert_eq!(v("d"), Value::Int32(19783));
        assert_eq!(s("tm").name.as_deref(), Some("io.debezium.time.MicroTime"));
        assert_eq!(v("tm"), Value::Int64(3_723_500_000));
        assert_eq!(
            s("ts").name.as_deref(),
            Some("io.debezium.time.MicroTimestamp")
        );
        assert_eq!(v("ts"), Value::Int64(19783 * 86_400_000_000 + 1_000_001));
        assert_eq!(
            s("tz").name.as_deref(),
            Some("io.debezium.time.ZonedTimestamp")
        );
        // As many fraction digits as the column's precision (6 by default).
        assert_eq!(v("tz"), Value::String("2024-03-01T10:00:00.000000Z".into()));
        assert_eq!(s("j").name.as_deref(), Some("io.debezium.data.Json"));
        assert_eq!(v("j"), Value::String("{\"a\": 1}".into()));
        assert_eq!(v("jb"), Value::String("{\"b\": [1, 2]}".into()));
        assert_eq!(s("u").name.as_deref(), Some("io.debezium.data.Uuid"));
        assert_eq!(
            v("u"),
            Value::String("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into())
        );
        assert_eq!(v("by"), Value::Bytes(vec![0, 255]));
        assert_eq!(
            v("arr"),
            Value::Array(vec![Value::Int32(1), Value::Null, Value::Int32(3)])
        );
        assert_eq!(
            v("tarr"),
            Value::Array(vec![Value::String("a".into()), Value::String("b c".into())])
        );
        assert_eq!(s("m").name.as_deref(), Some("io.debezium.data.Enum"));
        assert_eq!(s("m").parameter("allowed"), Some("sad,ok,happy"));
        assert_eq!(v("m"), Value::String("happy".into()));
        assert_eq!(v("other"), Value::String("10.0.0.1".into()));
        let Value::Struct(st) = &r.value else {
            panic!()
        };
        st.validate().unwrap();
    }
    assert_eq!(field(&recs[0].value, "after.s"), &Value::Int16(-2));
    assert_eq!(field(&streamed[0].value, "after.s"), &Value::Int16(7));
}

#[test]
fn decimal_handling_modes_double_and_string() {
    let db = TestDb::new("decimal");
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, n numeric(10,2)); INSERT INTO t VALUES (1, 2.50)",
    )
    .unwrap();
    for (mode, want) in [
        ("double", Value::Float64(2.5)),
        ("string", Value::String("2.50".into())),
    ] {
        let offsets = MapOffsets::default();
        let mut task = start_task(
            &db.source_config(&[
                ("decimal.handling.mode", mode),
                ("slot.drop.on.stop", "true"),
            ]),
            &offsets,
        );
        let recs = poll_until(task.as_mut(), &offsets, T, |r| !data(r).is_empty());
        task.stop();
        assert_eq!(field(&recs[0].value, "after.n"), &want, "{mode}");
    }
}

#[test]
fn a_primary_key_change_is_a_delete_tombstone_and_create() {
    let db = TestDb::new("pkchange");
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL); INSERT INTO t VALUES (1, 'a')",
    )
    .unwrap();
    let offsets = MapOffsets::default();
    let mut task = start_task(&db.source_config(&[("snapshot.mode", "never")]), &offsets);
    c.batch_execute("UPDATE t SET id = 2, v = 'b' WHERE id = 1")
        .unwrap();
    let recs = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 3);
    task.stop();
    assert_eq!(
        recs.iter()
            .map(|r| (op(r).to_string(), key_id(r)))
            .collect::<Vec<_>>(),
        [
            ("d".to_string(), 1),
            ("tombstone".into(), 1),
            ("c".into(), 2)
        ]
    );
    assert_eq!(int(field(&recs[0].value, "before.id")), 1);
    assert_eq!(field(&recs[2].value, "after.v"), &Value::String("b".into()));
    // The delete and its tombstone name the new key, the create the old.
    let first_header = |r: &runnel_connect_api::SourceRecord| {
        let h = &r.headers[0];
        (h.key.clone(), h.value.clone())
    };
    assert_eq!(
        first_header(&recs[0]),
        ("__debezium.newkey".into(), recs[2].key.clone())
    );
    assert_eq!(
        first_header(&recs[1]),
        ("__debezium.newkey".into(), recs[2].key.clone())
    );
    assert_eq!(
        first_header(&recs[2]),
        ("__debezium.oldkey".into(), recs[0].key.clone())
    );
    assert_eq!(recs[2].headers[0].schema, recs[2].key_schema);
    assert_eq!(recs[0].headers.len(), 5);
    // Without tombstones.
    let offsets = MapOffsets::default();
    let mut task = start_task(
        &db.source_config(&[
            ("snapshot.mode", "never"),
            ("tombstones.on.delete", "false"),
        ]),
        &offsets,
    );
    c.batch_execute("UPDATE t SET id = 3 WHERE id = 2").unwrap();
    let recs = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 2);
    let more = drain(task.as_mut(), &offsets, Duration::from_millis(800));
    task.stop();
    assert_eq!(
        recs.iter()
            .chain(&more)
            .map(|r| (op(r).to_string(), key_id(r)))
            .collect::<Vec<_>>(),
        [("d".to_string(), 2), ("c".into(), 3)]
    );
}

#[test]
fn replica_identity_full_gives_whole_before_images_default_only_keys() {
    let db = TestDb::new("identity");
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE dflt (id int PRIMARY KEY, v text, big text);
         CREATE TABLE full_t (id int PRIMARY KEY, v text, big text);
         ALTER TABLE full_t REPLICA IDENTITY FULL;
         INSERT INTO dflt VALUES (1, 'a', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 5000) g)), (2, 'b', 'small');
         INSERT INTO full_t VALUES (1, 'a', 'z'), (2, 'b', 'y');",
    )
    .unwrap();
    let offsets = MapOffsets::default();
    let mut task = start_task(&db.source_config(&[("snapshot.mode", "never")]), &offsets);
    c.batch_execute(
        "UPDATE dflt SET v = 'a2' WHERE id = 1; DELETE FROM dflt WHERE id = 2;
         UPDATE full_t SET v = 'a2' WHERE id = 1; DELETE FROM full_t WHERE id = 2;",
    )
    .unwrap();
    let recs = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 6);
    task.stop();
    let recs: Vec<_> = recs.into_iter().filter(|r| !r.value.is_null()).collect();
    let (du, dd, fu, fd) = (&recs[0], &recs[1], &recs[2], &recs[3]);
    assert_eq!((op(du), op(dd), op(fu), op(fd)), ("u", "d", "u", "d"));
    // DEFAULT: no before on update; only the key on delete. The unchanged
    // TOASTed column is the placeholder.
    assert!(field(&du.value, "before").is_null());
    assert_eq!(
        field(&du.value, "after.big"),
        &Value::String("__debezium_unavailable_value".into())
    );
    assert_eq!(int(field(&dd.value, "before.id")), 2);
    assert!(field(&dd.value, "before.v").is_null());
    // FULL: whole rows.
    assert_eq!(field(&fu.value, "before.v"), &Value::String("a".into()));
    assert_eq!(field(&fu.value, "before.big"), &Value::String("z".into()));
    assert_eq!(field(&fu.value, "after.v"), &Value::String("a2".into()));
    assert_eq!(field(&fd.value, "before.v"), &Value::String("b".into()));
    assert_eq!(field(&fd.value, "before.big"), &Value::String("y".into()));
}

#[test]
fn snapshot_modes_initial_always_never_and_initial_only() {
    let db = TestDb::new("modes");
    let mut c = db.client();
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL); INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        .unwrap();
    let ops = |recs: &[runnel_connect_api::SourceRecord]| {
        data(recs)
            .iter()
            .map(|r| format!("{}{}", op(r), key_id(r)))
            .collect::<Vec<_>>()
    };

    // never: changes only.
    let offsets = MapOffsets::default();
    let mut task = start_task(
        &db.source_config(&[("snapshot.mode", "never"), ("slot.drop.on.stop", "true")]),
        &offsets,
    );
    c.batch_execute("INSERT INTO t VALUES (3, 'c')").unwrap();
    let recs = poll_until(task.as_mut(), &offsets, T, |r| !data(r).is_empty());
    task.stop();
    assert_eq!(ops(&recs), ["c3"]);

    // initial: a snapshot without a stored offset, none with one.
    let offsets = MapOffsets::default();
    let config = db.source_config(&[]);
    let mut task = start_task(&config, &offsets);
    let recs = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 3);
    task.stop();
    assert_eq!(ops(&recs), ["r1", "r2", "r3"]);
    c.batch_execute("INSERT INTO t VALUES (4, 'd')").unwrap();
    let mut task = start_task(&config, &offsets);
    let recs = poll_until(task.as_mut(), &offsets, T, |r| !data(r).is_empty());
    let more = drain(task.as_mut(), &offsets, Duration::from_millis(800));
    task.stop();
    assert_eq!(ops(&recs), ["c4"]);
    assert!(data(&more).is_empty());

    // always: a snapshot at every start, even with an offset.
    let config = db.source_config(&[("snapshot.mode", "always")]);
    let mut task = start_task(&config, &offsets);
    let recs = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 4);
    task.stop();
    assert_eq!(ops(&recs), ["r1", "r2", "r3", "r4"]);
    c.batch_execute("INSERT INTO t VALUES (5, 'e')").unwrap();
    let mut task = start_task(&config, &offsets);
    let recs = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 5);
    c.batch_execute("INSERT INTO t VALUES (6, 'f')").unwrap();
    let streamed = poll_until(task.as_mut(), &offsets, T, |r| !data(r).is_empty());
    task.stop();
    assert_eq!(ops(&recs), ["r1", "r2", "r3", "r4", "r5"]);
    assert_eq!(ops(&streamed), ["c6"]);

    // initial_only: the snapshot, then nothing.
    let offsets = MapOffsets::default();
    let mut task = start_task(
        &db.source_config(&[
            ("snapshot.mode", "initial_only"),
            ("slot.name", "unused_slot_x"),
        ]),
        &offsets,
    );
    let recs = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 6);
    c.batch_execute("INSERT INTO t VALUES (7, 'g')").unwrap();
    let more = drain(task.as_mut(), &offsets, Duration::from_secs(1));
    task.stop();
    assert_eq!(ops(&recs).len(), 6);
    assert!(data(&more).is_empty());
    assert!(admin()
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'unused_slot_x'",
            &[]
        )
        .unwrap()
        .is_none());
}

#[test]
fn table_filters_select_what_is_captured() {
    let db = TestDb::new("filters");
    let mut c = db.client();
    c.batch_execute(
        "CREATE SCHEMA inv; CREATE TABLE inv.a (id int PRIMARY KEY); CREATE TABLE inv.b (id int PRIMARY KEY);
         CREATE TABLE public.c (id int PRIMARY KEY);
         INSERT INTO inv.a VALUES (1); INSERT INTO inv.b VALUES (1); INSERT INTO public.c VALUES (1);",
    )
    .unwrap();
    let offsets = MapOffsets::default();
    let mut task = start_task(
        &db.source_config(&[
            ("table.include.list", "inv\\.a,public\\..*"),
            ("publication.autocreate.mode", "filtered"),
        ]),
        &offsets,
    );
    let recs = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 2);
    c.batch_execute("INSERT INTO inv.b VALUES (2); INSERT INTO inv.a VALUES (2);")
        .unwrap();
    let streamed = poll_until(task.as_mut(), &offsets, T, |r| !data(r).is_empty());
    task.stop();
    let topics: Vec<_> = data(&recs).iter().map(|r| r.topic.clone()).collect();
    assert_eq!(topics, ["srv.inv.a", "srv.public.c"]);
    assert_eq!(
        streamed.iter().map(summary).collect::<Vec<_>>(),
        ["srv.inv.a c Some(Int32(2))"]
    );
    let tables: Vec<String> = c
        .query("SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = 'dbz_publication' ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables, ["inv.a", "public.c"]);
}

#[test]
fn heartbeats_advance_the_offset_and_the_slot_of_an_idle_database() {
    let db = TestDb::new("heartbeat");
    let mut c = db.client();
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE other (id int)")
        .unwrap();
    let offsets = MapOffsets::default();
    let mut task = start_task(
        &db.source_config(&[
            ("snapshot.mode", "never"),
            ("heartbeat.interval.ms", "200"),
            ("table.include.list", "public\\.t"),
            ("publication.autocreate.mode", "filtered"),
        ]),
        &offsets,
    );
    let before = db.slot_confirmed_flush().unwrap();
    // Changes to an uncaptured table move the WAL but give no records.
    c.batch_execute("INSERT INTO other SELECT generate_series(1, 1000)")
        .unwrap();
    let after_write: String = c
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .unwrap()
        .get(0);
    let recs = poll_until(task.as_mut(), &offsets, T, |r| {
        r.iter()
            .filter(|r| r.topic == "__debezium-heartbeat.srv")
            .count()
            >= 2
            && r.last().is_some_and(|l| {
                l.source_offset
                    .get("lsn")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0)
                    >= lsn(&after_write)
            })
    });
    let hb = recs
        .iter()
        .find(|r| r.topic == "__debezium-heartbeat.srv")
        .unwrap();
    assert_eq!(field(&hb.key, "serverName"), &Value::String("srv".into()));
    assert!(
        int(field(
            hb.value.as_struct().map(|_| &hb.value).unwrap(),
            "ts_ms"
        )) > 0
    );
    assert!(data(&recs).is_empty());
    let confirmed = db.slot_confirmed_flush().unwrap();
    task.stop();
    assert!(lsn(&confirmed) > lsn(&before), "{before} -> {confirmed}");
    assert!(
        lsn(&confirmed) >= lsn(&after_write),
        "{confirmed} < {after_write}"
    );
}

fn lsn(text: &str) -> u64 {
    let (h, l) = text.split_once('/').unwrap();
    (u64::from_str_radix(h, 16).unwrap() << 32) | u64::from_str_radix(l, 16).unwrap()
}

#[test]
fn configuration_errors_name_their_field() {
    let db = TestDb::new("config");
    let plugin = runnel_connect_postgres::PostgresConnector::new();
    let errors = |config: &runnel_connect_api::Config| -> Vec<(String, String)> {
        plugin
            .validate(config)
            .into_iter()
            .flat_map(|v| v.errors.into_iter().map(move |e| (v.name.clone(), e)))
            .collect()
    };
    assert!(
        errors(&db.source_config(&[])).is_empty(),
        "{:?}",
        errors(&db.source_config(&[]))
    );
    let e = errors(&db.source_config(&[("plugin.name", "decoderbufs")]));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].0, "plugin.name");
    let mut no_prefix = db.source_config(&[]);
    no_prefix.remove("topic.prefix");
    assert_eq!(errors(&no_prefix)[0].0, "topic.prefix");
    assert_eq!(
        errors(&db.source_config(&[("table.include.list", "a(")]))[0].0,
        "table.include.list"
    );
    assert_eq!(
        errors(&db.source_config(&[("snapshot.mode", "sometimes")]))[0].0,
        "snapshot.mode"
    );
    let e = errors(&db.source_config(&[("database.dbname", "no_such_db_here")]));
    assert_eq!(e[0].0, "database.dbname", "{e:?}");
    let e =
        errors(&db.source_config(&[("database.hostname", "127.0.0.1"), ("database.port", "1")]));
    assert_eq!(e[0].0, "database.hostname", "{e:?}");
    // Task configs: one task; a bad config is a Config error naming the field.
    assert_eq!(
        plugin
            .task_configs(&db.source_config(&[]), 4)
            .unwrap()
            .len(),
        1
    );
    match plugin.task_configs(&db.source_config(&[("plugin.name", "wal2json")]), 1) {
        Err(runnel_connect_api::ConnectError::Config { field, .. }) => {
            assert_eq!(field, "plugin.name")
        }
        other => panic!("{other:?}"),
    }
    assert!(plugin.aliases().contains(&"PostgresConnector".to_string()));
    // The publication must exist when auto-creation is disabled.
    let mut task = runnel_connect_postgres::PostgresSourceTask::new();
    let err = runnel_connect_api::SourceTask::start(
        &mut task,
        &db.source_config(&[
            ("publication.autocreate.mode", "disabled"),
            ("publication.name", "nope"),
        ]),
        &ctx(),
        &MapOffsets::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, runnel_connect_api::ConnectError::Config { ref field, .. } if field == "publication.name"),
        "{err}"
    );
}

#[test]
fn only_commit_confirms_and_stored_offsets_ahead_of_the_slot_are_not_repeated() {
    let db = TestDb::new("confirm");
    let mut c = db.client();
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .unwrap();
    let config = db.source_config(&[("snapshot.mode", "never")]);
    let offsets = MapOffsets::default();
    let mut task = start_task(&config, &offsets);
    let at_start = db.slot_confirmed_flush().unwrap();
    for i in 1..=3 {
        c.batch_execute(&format!("INSERT INTO t VALUES ({i})"))
            .unwrap();
    }
    // Poll and store offsets as the runtime would, but crash before
    // calling commit: the slot must not have moved.
    let mut got = Vec::new();
    while data(&got).len() < 3 {
        let recs = task.poll().unwrap();
        if let Some(last) = recs.last() {
            offsets.store(&last.source_partition, &last.source_offset);
        }
        got.extend(recs);
    }
    assert_eq!(db.slot_confirmed_flush().unwrap(), at_start);
    task.stop();
    // The restart re-reads from the slot and skips what the stored offset
    // says was emitted.
    c.batch_execute("INSERT INTO t VALUES (4)").unwrap();
    let mut task = start_task(&config, &offsets);
    let recs = poll_until(task.as_mut(), &offsets, T, |r| !data(r).is_empty());
    let more = drain(task.as_mut(), &offsets, Duration::from_millis(800));
    assert_eq!(
        data(&recs)
            .iter()
            .chain(data(&more).iter())
            .map(|r| key_id(r))
            .collect::<Vec<_>>(),
        [4]
    );
    // poll_until called commit: now the slot has moved past all four.
    let moved = db.slot_confirmed_flush().unwrap();
    assert!(lsn(&moved) > lsn(&at_start), "{at_start} -> {moved}");
    let four_lsn = data(&recs)[0]
        .source_offset
        .get("lsn_commit")
        .unwrap()
        .as_u64()
        .unwrap();
    assert!(
        lsn(&moved) > four_lsn,
        "the completed transaction's end is confirmed"
    );
    task.stop();
}

#[test]
fn an_unfinished_snapshot_is_taken_again_at_restart() {
    let db = TestDb::new("resnap");
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 3000);",
    )
    .unwrap();
    let config = db.source_config(&[]);
    let offsets = MapOffsets::default();
    let mut task = start_task(&config, &offsets);
    let first = poll_until(task.as_mut(), &offsets, T, |r| !data(r).is_empty());
    assert!(first.len() < 3000);
    assert_eq!(
        offsets
            .offset_of("srv")
            .get("last_snapshot_record")
            .unwrap(),
        false
    );
    task.stop();
    let mut task = start_task(&config, &offsets);
    let recs = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 3000);
    c.batch_execute("INSERT INTO t VALUES (5000)").unwrap();
    let streamed = poll_until(task.as_mut(), &offsets, T, |r| !data(r).is_empty());
    task.stop();
    let ids: BTreeSet<i64> = data(&recs).iter().map(|r| key_id(r)).collect();
    assert_eq!(ids.len(), 3000);
    assert!(data(&recs).iter().all(|r| op(r) == "r"));
    assert_eq!(
        streamed.iter().map(summary).collect::<Vec<_>>(),
        ["srv.public.t c Some(Int32(5000))"]
    );
}

#[test]
fn a_lost_connection_is_retriable_and_the_task_resumes_without_gaps_or_repeats() {
    let db = TestDb::new("reconnect");
    let mut c = db.client();
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .unwrap();
    let offsets = MapOffsets::default();
    let mut task = start_task(&db.source_config(&[("snapshot.mode", "never")]), &offsets);
    c.batch_execute("INSERT INTO t SELECT generate_series(1, 6000)")
        .unwrap();
    // Part of the transaction is read, then every connection of the task
    // is killed.
    let first = task.poll().unwrap();
    assert!(!first.is_empty() && first.len() < 6000, "{}", first.len());
    let killed = admin()
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'runnel-connect-postgres' AND datname = $1 \
             AND (backend_type <> 'walsender' OR pid = (SELECT active_pid FROM pg_replication_slots WHERE slot_name = $2))",
            &[&db.name, &db.slot()],
        )
        .unwrap()
        .len();
    assert!(killed >= 2, "{killed}");
    c.batch_execute("INSERT INTO t SELECT generate_series(6001, 6100)")
        .unwrap();
    let mut all = first;
    let mut retriable = 0;
    let deadline = std::time::Instant::now() + T;
    while data(&all).len() < 6100 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} records",
            all.len()
        );
        match task.poll() {
            Ok(recs) => all.extend(recs),
            Err(runnel_connect_api::ConnectError::Retriable(_)) => {
                retriable += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("{e}"),
        }
    }
    let more = drain(task.as_mut(), &offsets, Duration::from_millis(800));
    task.stop();
    assert!(retriable >= 1);
    let ids: Vec<i64> = data(&all)
        .iter()
        .chain(data(&more).iter())
        .map(|r| key_id(r))
        .collect();
    let distinct: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 6100, "repeated changes");
    assert_eq!(distinct.len(), 6100);
}

/// (table, id, source.snapshot) of snapshot records, in order.
fn markers(recs: &[runnel_connect_api::SourceRecord]) -> Vec<(String, i64, String)> {
    data(recs)
        .into_iter()
        .map(|r| {
            let Value::String(m) = field(&r.value, "source.snapshot") else {
                panic!("no snapshot marker")
            };
            let Value::String(t) = field(&r.value, "source.table") else {
                panic!("no table")
            };
            (t.clone(), key_id(r), m.clone())
        })
        .collect()
}

#[test]
fn snapshot_markers_and_table_order_are_debeziums() {
    let db = TestDb::new("markers");
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE b_two (id int PRIMARY KEY); INSERT INTO b_two VALUES (1), (2);
         CREATE TABLE a_one (id int PRIMARY KEY); INSERT INTO a_one VALUES (1);
         CREATE TABLE c_three (id int PRIMARY KEY); INSERT INTO c_three VALUES (1), (2), (3);",
    )
    .unwrap();
    let m = |t: &str, id: i64, marker: &str| (t.to_string(), id, marker.to_string());
    // Tables in the order of the include list's entries.
    let offsets = MapOffsets::default();
    let mut task = start_task(
        &db.source_config(&[
            (
                "table.include.list",
                "public.c_three,public.a_one,public.b_.*",
            ),
            ("snapshot.mode", "initial_only"),
            ("slot.name", "markers_listed"),
        ]),
        &offsets,
    );
    let recs = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 6);
    task.stop();
    assert_eq!(
        markers(&recs),
        [
            m("c_three", 1, "first"),
            m("c_three", 2, "true"),
            m("c_three", 3, "last_in_data_collection"),
            m("a_one", 1, "last_in_data_collection"),
            m("b_two", 1, "first_in_data_collection"),
            m("b_two", 2, "last"),
        ]
    );
    // Without a list, by name.
    let offsets = MapOffsets::default();
    let mut task = start_task(
        &db.source_config(&[
            ("snapshot.mode", "initial_only"),
            ("slot.name", "markers_all"),
        ]),
        &offsets,
    );
    let recs = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 6);
    task.stop();
    assert_eq!(
        markers(&recs),
        [
            m("a_one", 1, "first"),
            m("b_two", 1, "first_in_data_collection"),
            m("b_two", 2, "last_in_data_collection"),
            m("c_three", 1, "first_in_data_collection"),
            m("c_three", 2, "true"),
            m("c_three", 3, "last"),
        ]
    );
}

#[test]
fn constant_column_defaults_are_schema_defaults_and_fill_key_only_before_images() {
    let db = TestDb::new("defaults");
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL DEFAULT 'it''s', \
         n int NOT NULL DEFAULT 7, z int NOT NULL, f text DEFAULT now()::text, \
         ts timestamp DEFAULT now(), s bigserial); \
         INSERT INTO t (id, z) VALUES (1, 5)",
    )
    .unwrap();
    let offsets = MapOffsets::default();
    let mut task = start_task(&db.source_config(&[("snapshot.mode", "never")]), &offsets);
    c.batch_execute("DELETE FROM t WHERE id = 1").unwrap();
    let recs = poll_until(task.as_mut(), &offsets, T, |r| !data(r).is_empty());
    task.stop();
    let del = data(&recs)[0];
    assert_eq!(op(del), "d");
    let before = &del
        .value_schema
        .as_ref()
        .unwrap()
        .field_named("before")
        .unwrap()
        .schema;
    let default = |f: &str| before.field_named(f).unwrap().schema.default.clone();
    assert_eq!(default("v"), Some(Box::new(Value::String("it's".into()))));
    assert_eq!(default("n"), Some(Box::new(Value::Int32(7))));
    assert_eq!(default("z"), None);
    assert_eq!(default("f"), None);
    // Clock functions and sequences: the type's zero, as Debezium writes.
    assert_eq!(default("ts"), Some(Box::new(Value::Int64(0))));
    assert_eq!(default("s"), Some(Box::new(Value::Int64(0))));
    // DEFAULT identity sends only the key: NOT NULL columns take their
    // default, else the type's zero.
    assert_eq!(field(&del.value, "before.v"), &Value::String("it's".into()));
    assert_eq!(field(&del.value, "before.n"), &Value::Int32(7));
    assert_eq!(field(&del.value, "before.z"), &Value::Int32(0));
    assert!(field(&del.value, "before.f").is_null());
}

#[test]
fn a_delete_from_a_table_without_a_key_is_followed_by_a_tombstone_too() {
    let db = TestDb::new("nokeytomb");
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE t (k int, v text); ALTER TABLE t REPLICA IDENTITY FULL; \
         INSERT INTO t VALUES (1, 'a')",
    )
    .unwrap();
    let offsets = MapOffsets::default();
    let mut task = start_task(&db.source_config(&[("snapshot.mode", "never")]), &offsets);
    c.batch_execute("DELETE FROM t WHERE k = 1").unwrap();
    let recs = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 2);
    task.stop();
    let recs = data(&recs);
    // As Debezium: the tombstone has a null key as well as a null value.
    assert_eq!(
        recs.iter().map(|r| op(r)).collect::<Vec<_>>(),
        ["d", "tombstone"]
    );
    assert!(recs[0].key.is_null() && recs[1].key.is_null());
    assert!(recs[1].key_schema.is_none() && recs[1].value_schema.is_none());
    assert_eq!(
        field(&recs[0].value, "before.v"),
        &Value::String("a".into())
    );
}

/// `skipped.operations=none`: a TRUNCATE of two tables (inside a
/// transaction) is one event per table — no key, `op: "t"`, no `before`
/// nor `after`, the transaction's `source` — between the transaction's
/// other changes, as Debezium emits it. The default (`t`) emits none.
#[test]
fn truncates_are_events_unless_skipped() {
    let db = TestDb::new("truncate");
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY); \
         INSERT INTO a VALUES (1, 'x'); INSERT INTO b VALUES (1)",
    )
    .unwrap();
    let offsets = MapOffsets::default();
    let mut task = start_task(
        &db.source_config(&[("snapshot.mode", "never"), ("skipped.operations", "none")]),
        &offsets,
    );
    c.batch_execute(
        "BEGIN; INSERT INTO a VALUES (2, 'y'); TRUNCATE a, b; INSERT INTO b VALUES (3); COMMIT",
    )
    .unwrap();
    let recs = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 4);
    task.stop();
    let recs = data(&recs);
    let got: Vec<(String, &str)> = recs.iter().map(|r| (r.topic.clone(), op(r))).collect();
    let prefix = field(&recs[0].value, "source.name")
        .as_str()
        .unwrap()
        .to_string();
    let t = |table: &str| format!("{prefix}.public.{table}");
    assert_eq!(
        got,
        [(t("a"), "c"), (t("a"), "t"), (t("b"), "t"), (t("b"), "c")]
    );
    for r in &recs[1..3] {
        assert!(r.key.is_null() && r.key_schema.is_none(), "{r:?}");
        assert!(r.value_schema.is_some());
        assert!(field(&r.value, "before").is_null());
        assert!(field(&r.value, "after").is_null());
        assert_eq!(field(&r.value, "source.snapshot").as_str(), Some("false"));
        // The transaction's: the same txId as the insert before.
        assert_eq!(
            field(&r.value, "source.txId"),
            field(&recs[0].value, "source.txId")
        );
        assert!(int(field(&r.value, "source.lsn")) > int(field(&recs[0].value, "source.lsn")));
    }
    assert_eq!(field(&recs[1].value, "source.table").as_str(), Some("a"));
    assert_eq!(field(&recs[2].value, "source.table").as_str(), Some("b"));

    // Debezium's default skips truncates; `c,d` skips inserts and deletes
    // (and the delete's tombstone) but not updates.
    let db = TestDb::new("truncskip");
    let mut c = db.client();
    c.batch_execute("CREATE TABLE a (id int PRIMARY KEY, v text)")
        .unwrap();
    let offsets = MapOffsets::default();
    let mut task = start_task(&db.source_config(&[("snapshot.mode", "never")]), &offsets);
    c.batch_execute("INSERT INTO a VALUES (1, 'x'); TRUNCATE a; INSERT INTO a VALUES (2, 'y')")
        .unwrap();
    let recs = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 2);
    task.stop();
    assert_eq!(
        data(&recs).iter().map(|r| op(r)).collect::<Vec<_>>(),
        ["c", "c"]
    );
    let offsets = MapOffsets::default();
    let mut task = start_task(
        &db.source_config(&[("snapshot.mode", "never"), ("skipped.operations", "c,d")]),
        &offsets,
    );
    c.batch_execute(
        "INSERT INTO a VALUES (3, 'z'); UPDATE a SET v = 'w' WHERE id = 3; DELETE FROM a WHERE id = 3; \
         UPDATE a SET v = 'marker' WHERE id = 2",
    )
    .unwrap();
    let recs = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 2);
    let more = drain(task.as_mut(), &offsets, Duration::from_millis(500));
    task.stop();
    let all: Vec<String> = data(&recs)
        .into_iter()
        .chain(data(&more))
        .map(|r| format!("{} {}", op(r), key_id(r)))
        .collect();
    assert_eq!(all, ["u 3", "u 2"]);
}

/// `provide.transaction.metadata` across a restart in the middle of a
/// transaction: one BEGIN and one END per transaction (END counting every
/// event of it, per table), and each change event's `transaction` block
/// numbered 1…n without gap or repeat — the part emitted before the
/// restart is counted, not emitted again. A restart after the END emits
/// nothing again.
#[test]
fn transaction_metadata_survives_a_restart_mid_transaction() {
    let db = TestDb::new("txmeta");
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE big (id int PRIMARY KEY, v text NOT NULL); CREATE TABLE small (id int PRIMARY KEY)",
    )
    .unwrap();
    let config = db.source_config(&[
        ("snapshot.mode", "never"),
        ("provide.transaction.metadata", "true"),
    ]);
    let offsets = MapOffsets::default();
    let mut task = start_task(&config, &offsets);
    c.batch_execute(
        "BEGIN; INSERT INTO small VALUES (1); INSERT INTO big SELECT g, 'x' FROM generate_series(1, 5000) g;
         INSERT INTO small VALUES (2); COMMIT;",
    )
    .unwrap();
    c.batch_execute("INSERT INTO small VALUES (3)").unwrap();
    let first = poll_until(task.as_mut(), &offsets, T, |r| data(r).len() >= 1500);
    assert!(first.len() < 5005, "the whole transaction came in one poll");
    task.stop();
    let mut task = start_task(&config, &offsets);
    let rest = poll_until(task.as_mut(), &offsets, T, |r| {
        data(r).iter().any(|r| {
            r.topic == "srv.transaction"
                && field(&r.value, "status").as_str() == Some("END")
                && int(field(&r.value, "event_count")) == 1
        })
    });
    task.stop();
    let all: Vec<&runnel_connect_api::SourceRecord> =
        data(&first).into_iter().chain(data(&rest)).collect();
    let meta: Vec<(String, Option<i64>)> = all
        .iter()
        .filter(|r| r.topic == "srv.transaction")
        .map(|r| {
            let v = &r.value;
            let n = match field(v, "event_count") {
                Value::Int64(n) => Some(*n),
                _ => None,
            };
            (field(v, "status").as_str().unwrap().to_string(), n)
        })
        .collect();
    assert_eq!(
        meta,
        [
            ("BEGIN".to_string(), None),
            ("END".to_string(), Some(5002)),
            ("BEGIN".to_string(), None),
            ("END".to_string(), Some(1))
        ]
    );
    let end = all
        .iter()
        .find(|r| r.topic == "srv.transaction" && field(&r.value, "status").as_str() == Some("END"))
        .unwrap();
    let Value::Array(collections) = field(&end.value, "data_collections") else {
        panic!("{end:?}")
    };
    let mut counts: Vec<(String, i64)> = collections
        .iter()
        .map(|c| {
            (
                field(c, "data_collection").as_str().unwrap().to_string(),
                int(field(c, "event_count")),
            )
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [
            ("public.big".to_string(), 5000),
            ("public.small".to_string(), 2)
        ]
    );
    // The big transaction's events: total_order 1..=5002 once each, per
    // table 1..=n.
    let changes: Vec<&&runnel_connect_api::SourceRecord> = all
        .iter()
        .filter(|r| r.topic != "srv.transaction" && !r.value.is_null())
        .filter(|r| int(field(&r.value, "transaction.total_order")) > 0)
        .collect();
    let big_xid = int(field(&changes[0].value, "source.txId"));
    let big_tx: Vec<(String, i64, i64)> = changes
        .iter()
        .filter(|r| int(field(&r.value, "source.txId")) == big_xid)
        .map(|r| {
            (
                field(&r.value, "source.table")
                    .as_str()
                    .unwrap()
                    .to_string(),
                int(field(&r.value, "transaction.total_order")),
                int(field(&r.value, "transaction.data_collection_order")),
            )
        })
        .collect();
    let totals: Vec<i64> = big_tx.iter().map(|t| t.1).collect();
    assert_eq!(totals, (1..=5002).collect::<Vec<_>>());
    assert_eq!(big_tx[0], ("small".to_string(), 1, 1));
    assert_eq!(big_tx[5000], ("big".to_string(), 5001, 5000));
    assert_eq!(big_tx[5001], ("small".to_string(), 5002, 2));
    // The id is `<txId>:<LSN of the event>`.
    let r = changes[0];
    assert_eq!(
        field(&r.value, "transaction.id").as_str().unwrap(),
        format!(
            "{}:{}",
            int(field(&r.value, "source.txId")),
            int(field(&r.value, "source.lsn"))
        )
    );

    // After the END was stored, a restart emits nothing again.
    let mut task = start_task(&config, &offsets);
    let again = drain(task.as_mut(), &offsets, Duration::from_secs(2));
    task.stop();
    assert!(
        data(&again).is_empty(),
        "{:?}",
        again.iter().map(summary).collect::<Vec<_>>()
    );
}
