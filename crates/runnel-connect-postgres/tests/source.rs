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
