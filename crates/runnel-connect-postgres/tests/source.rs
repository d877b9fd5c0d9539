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
    assert_eq!(r0.key_schema.as_ref().unwrap().name.as_deref(), Some("srv.public.customers.Key"));
    let vs = r0.value_schema.as_ref().unwrap();
    assert_eq!(vs.name.as_deref(), Some("srv.public.customers.Envelope"));
    assert_eq!(
        vs.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["before", "after", "source", "op", "ts_ms", "transaction"]
    );
    let after_schema = &vs.field_named("after").unwrap().schema;
    assert_eq!(after_schema.name.as_deref(), Some("srv.public.customers.Value"));
    assert!(after_schema.optional);
    assert!(!after_schema.field_named("name").unwrap().schema.optional);
    assert!(after_schema.field_named("email").unwrap().schema.optional);
    assert_eq!(
        vs.field_named("source").unwrap().schema.name.as_deref(),
        Some("io.debezium.connector.postgresql.Source")
    );
    assert!(field(&r0.value, "before").is_null());
    assert_eq!(field(&r0.value, "after.name"), &Value::String("ann".into()));
    assert_eq!(field(&r0.value, "after.email"), &Value::String("ann@x".into()));
    assert_eq!(field(&r0.value, "source.snapshot"), &Value::String("true".into()));
    assert_eq!(field(&r0.value, "source.connector"), &Value::String("postgresql".into()));
    assert_eq!(field(&r0.value, "source.name"), &Value::String("srv".into()));
    assert_eq!(field(&r0.value, "source.db"), &Value::String(db.name.clone()));
    assert_eq!(field(&r0.value, "source.schema"), &Value::String("public".into()));
    assert_eq!(field(&r0.value, "source.table"), &Value::String("customers".into()));
    assert_eq!(field(&snap[1].value, "source.snapshot"), &Value::String("last".into()));
    assert_eq!(field(&snap[1].value, "after.email"), &Value::Null);
    assert_eq!(r0.source_partition.get("server").unwrap(), "srv");
    assert_eq!(snap[1].source_offset.get("last_snapshot_record").unwrap(), true);
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
        recs.iter().map(|r| (op(r).to_string(), key_id(r))).collect::<Vec<_>>(),
        [("c".to_string(), 3), ("u".into(), 2), ("d".into(), 1), ("tombstone".into(), 1)]
    );
    let ins = &recs[0];
    assert_eq!(field(&ins.value, "after.name"), &Value::String("cy".into()));
    assert!(field(&ins.value, "before").is_null());
    assert_eq!(field(&ins.value, "source.snapshot"), &Value::String("false".into()));
    let tx = int(field(&ins.value, "source.txId"));
    assert!(tx > 0);
    assert!(int(field(&ins.value, "source.lsn")) > 0);
    assert!(int(field(&ins.value, "source.ts_ms")) > 1_600_000_000_000);
    let upd = &recs[1];
    // DEFAULT replica identity: no before image on an update.
    assert!(field(&upd.value, "before").is_null());
    assert_eq!(field(&upd.value, "after.email"), &Value::String("bob@x".into()));
    assert_eq!(field(&upd.value, "after.name"), &Value::String("bob".into()));
    let del = &recs[2];
    assert!(field(&del.value, "after").is_null());
    assert_eq!(int(field(&del.value, "before.id")), 1);
    assert!(field(&del.value, "before.email").is_null());
    assert!(recs[3].value.is_null());
    assert_eq!(recs[3].key, del.key);
    for r in &recs[..3] {
        let Value::Struct(s) = &r.value else { panic!() };
        s.validate().unwrap();
        assert!(r.source_offset.contains_key("lsn"));
        assert!(r.source_offset.contains_key("lsn_proc"));
        assert!(r.source_offset.contains_key("txId"));
        assert!(r.source_offset.contains_key("ts_usec"));
    }
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
    let offsets = MapOffsets::default();
    let mut task = start_task(&db.source_config(&[]), &offsets);
    // Writers run while the snapshot is read.
    let writer = {
        let mut c = db.client();
        std::thread::spawn(move || {
            for i in 0..200 {
                c.batch_execute(&format!(
                    "INSERT INTO items VALUES ({}, 'new{i}');
                     UPDATE items SET v = 'upd{i}' WHERE id = {};
                     DELETE FROM items WHERE id = {};",
                    100_000 + i,
                    1 + i * 50,
                    2 + i * 50
                ))
                .unwrap();
            }
        })
    };
    let mut all = poll_until(task.as_mut(), &offsets, T, |r| {
        r.iter().any(|r| r.value.is_null() || op(r) != "r") || data(r).len() >= 20000
    });
    writer.join().unwrap();
    c.batch_execute("INSERT INTO items VALUES (999999, 'end')").unwrap();
    all.extend(poll_until(task.as_mut(), &offsets, T, |r| {
        data(r).iter().any(|r| !r.value.is_null() && key_id(r) == 999_999)
    }));
    let snapshot_ids: Vec<i64> = data(&all).into_iter().filter(|r| op(r) == "r").map(key_id).collect();
    let distinct: BTreeSet<i64> = snapshot_ids.iter().copied().collect();
    assert_eq!(distinct.len(), snapshot_ids.len(), "a row snapshotted twice");
    // Each insert is seen once: in the snapshot or as a create, not both.
    let created: Vec<i64> = data(&all).into_iter().filter(|r| op(r) == "c").map(key_id).collect();
    for id in &created {
        assert!(!distinct.contains(id), "{id} both snapshotted and created");
    }
    let created_set: BTreeSet<i64> = created.iter().copied().collect();
    assert_eq!(created_set.len(), created.len(), "a create twice");
    assert_eq!(created_set.len() + distinct.iter().filter(|i| **i >= 100_000).count(), 201);
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
    c.batch_execute("CREATE TABLE big (id int PRIMARY KEY, v text NOT NULL)").unwrap();
    let config = db.source_config(&[("snapshot.mode", "never")]);
    let offsets = MapOffsets::default();
    let mut task = start_task(&config, &offsets);
    c.batch_execute("INSERT INTO big VALUES (1, 'before')").unwrap();
    c.batch_execute(
        "BEGIN; INSERT INTO big SELECT g, 'x' FROM generate_series(2, 5001) g;
         UPDATE big SET v = 'y' WHERE id <= 100; COMMIT;",
    )
    .unwrap();
    c.batch_execute("INSERT INTO big VALUES (6000, 'after')").unwrap();
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
    assert!(data(&again).is_empty(), "{:?}", again.iter().map(summary).collect::<Vec<_>>());
    task.stop();
}
