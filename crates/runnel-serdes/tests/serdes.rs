//! The registry serdes against a real registry (Runnel's own, over HTTP):
//! Confluent's framing (checked by decoding with the independent JSON path
//! of runnel-registry-client), schema evolution on read, validation, and a
//! stream application on the in-process broker reading and writing Avro.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

use std::time::{Duration, Instant};

use runnel_embed::LocalBackend;
use runnel_registry_client::{json, RegistryClient};
use runnel_schema::SchemaType;
use runnel_serdes::{AvroSerde, JsonSchemaSerde, JsonValueSerde, ProtobufSerde, Registration};
use runnel_streams::backend::{Backend, ProducedRecord, TopicPartition};
use runnel_streams::serdes::{Serde, StringSerde};
use runnel_streams::{Guarantee, Streams, StreamsBuilder, StreamsConfig};
use runnel_testkit::TestRegistry;
use serde::{Deserialize, Serialize};
use serde_json::json;

const ORDER_V1: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"id","type":"long"},{"name":"item","type":"string"},
  {"name":"note","type":["null","string"],"default":null}]}"#;

const ORDER_V2: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"id","type":"long"},{"name":"item","type":"string"},
  {"name":"note","type":["null","string"],"default":null},
  {"name":"qty","type":"int","default":1}]}"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: i64,
    item: String,
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OrderV2 {
    id: i64,
    item: String,
    note: Option<String>,
    qty: i32,
}

#[test]
fn avro_records_are_confluents_and_newer_readers_resolve_them() {
    let reg = TestRegistry::start();
    let client = RegistryClient::new(reg.url());
    let serde: AvroSerde<Order> =
        AvroSerde::new(client.clone(), "orders-value", ORDER_V1, Registration::Auto).unwrap();
    let order = Order {
        id: 7,
        item: "jumper".into(),
        note: Some("wool".into()),
    };
    let bytes = serde.serialize(&order).unwrap().unwrap();
    let id = client.latest("orders-value").unwrap().id;
    assert_eq!(
        &bytes[..5],
        &[&[0u8][..], &id.to_be_bytes()[..]].concat()[..]
    );
    assert_eq!(
        json::decode(&client, &bytes).unwrap(),
        (id, json!({"id": 7, "item": "jumper", "note": "wool"}))
    );
    assert_eq!(serde.deserialize(Some(&bytes)).unwrap(), order);

    // A reader with a newer schema (a field with a default) reads the old
    // record; its own records carry the new schema's id.
    let v2: AvroSerde<OrderV2> =
        AvroSerde::new(client.clone(), "orders-value", ORDER_V2, Registration::Auto).unwrap();
    assert_eq!(
        v2.deserialize(Some(&bytes)).unwrap(),
        OrderV2 {
            id: 7,
            item: "jumper".into(),
            note: Some("wool".into()),
            qty: 1
        }
    );
    let newer = v2
        .serialize(&OrderV2 {
            id: 8,
            item: "hat".into(),
            note: None,
            qty: 3,
        })
        .unwrap()
        .unwrap();
    assert_ne!(&newer[1..5], &bytes[1..5]);
    assert_eq!(client.versions("orders-value").unwrap(), vec![1, 2]);

    // UseLatest writes with version 2 without registering anything.
    let latest: AvroSerde<OrderV2> = AvroSerde::new(
        client.clone(),
        "orders-value",
        ORDER_V2,
        Registration::UseLatest,
    )
    .unwrap();
    let b = latest
        .serialize(&v2.deserialize(Some(&newer)).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(b, newer);

    // Not Avro, or not this registry's: an error, not a panic.
    assert!(serde.deserialize(Some(b"{\"id\":1}")).is_err());
    assert!(serde.deserialize(Some(&[0, 0, 0, 0x7f, 0x7f, 1])).is_err());
    assert!(AvroSerde::<Order>::new(client, "x-value", "{\"type\":", Registration::Auto).is_err());
}

#[derive(Clone, PartialEq, prost::Message)]
struct Point {
    #[prost(int32, tag = "1")]
    x: i32,
    #[prost(int32, tag = "2")]
    y: i32,
    #[prost(string, tag = "3")]
    label: String,
}

const POINT: &str = r#"syntax = "proto3";
package geo;
message Meta { string source = 1; }
message Point { int32 x = 1; int32 y = 2; string label = 3; }
"#;

#[test]
fn protobuf_messages_carry_their_message_index() {
    let reg = TestRegistry::start();
    let client = RegistryClient::new(reg.url());
    let serde: ProtobufSerde<Point> = ProtobufSerde::new(
        client.clone(),
        "points-value",
        POINT,
        Some("geo.Point"),
        Registration::Auto,
    )
    .unwrap();
    let p = Point {
        x: 3,
        y: -4,
        label: "a".into(),
    };
    let bytes = serde.serialize(&p).unwrap().unwrap();
    // Point is the file's second message: indexes [1] (count 1, index 1,
    // zig-zag encoded) after the header.
    assert_eq!(&bytes[5..7], &[2, 2]);
    assert_eq!(
        json::decode(&client, &bytes).unwrap().1,
        json!({"x": 3, "y": -4, "label": "a"})
    );
    assert_eq!(serde.deserialize(Some(&bytes)).unwrap(), p);
    assert!(
        ProtobufSerde::<Point>::new(client, "p", POINT, Some("geo.Nope"), Registration::Auto)
            .is_err()
    );
}

#[test]
fn json_schema_values_are_validated_both_ways() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Reading {
        sensor: String,
        celsius: f64,
    }
    let schema = r#"{"type":"object","properties":{"sensor":{"type":"string"},"celsius":{"type":"number","minimum":-273.15}},"required":["sensor","celsius"]}"#;
    let reg = TestRegistry::start();
    let client = RegistryClient::new(reg.url());
    let serde: JsonSchemaSerde<Reading> =
        JsonSchemaSerde::new(client.clone(), "readings-value", schema, Registration::Auto).unwrap();
    let r = Reading {
        sensor: "a".into(),
        celsius: 21.5,
    };
    let bytes = serde.serialize(&r).unwrap().unwrap();
    assert_eq!(serde.deserialize(Some(&bytes)).unwrap(), r);
    let cold = Reading {
        sensor: "b".into(),
        celsius: -300.0,
    };
    let e = serde.serialize(&cold).unwrap_err();
    assert!(e.0.contains("not valid"), "{e}");

    // Generic JSON values under the same subject, read by their writer's schema.
    let generic = JsonValueSerde::new(
        client,
        "readings-value",
        SchemaType::Json,
        schema,
        Registration::UseLatest,
    );
    assert_eq!(
        generic.deserialize(Some(&bytes)).unwrap(),
        json!({"sensor": "a", "celsius": 21.5})
    );
}

#[test]
fn a_stream_application_reads_and_writes_avro_through_the_registry() {
    let reg = TestRegistry::start();
    let client = RegistryClient::new(reg.url());
    let local = reg.broker().local();
    for t in ["orders", "big-orders"] {
        local.create_topic(t, 1, Default::default()).unwrap();
    }
    let input: AvroSerde<Order> =
        AvroSerde::new(client.clone(), "orders-value", ORDER_V1, Registration::Auto).unwrap();
    let mut producer =
        LocalBackend::new(local.clone(), "producer", Guarantee::AtLeastOnce).unwrap();
    let records = (1..=4)
        .map(|i| ProducedRecord {
            topic: "orders".into(),
            partition: 0,
            timestamp: i * 1000,
            key: Some(format!("o{i}").into_bytes()),
            value: input
                .serialize(&Order {
                    id: i,
                    item: if i % 2 == 0 { "hat" } else { "scarf" }.into(),
                    note: None,
                })
                .unwrap(),
            headers: Vec::new(),
        })
        .collect();
    producer.send(records).unwrap();
    producer.commit(&[]).unwrap();

    // Orders with an even id, written with the v2 schema (a quantity).
    let b = StreamsBuilder::new();
    let read: AvroSerde<Order> = AvroSerde::new(
        client.clone(),
        "orders-value",
        ORDER_V1,
        Registration::UseLatest,
    )
    .unwrap();
    let write: AvroSerde<OrderV2> = AvroSerde::new(
        client.clone(),
        "big-orders-value",
        ORDER_V2,
        Registration::Auto,
    )
    .unwrap();
    b.stream("orders", StringSerde, read)
        .filter(|_, o: &Order| o.id % 2 == 0)
        .map_values(|_, o: Order| OrderV2 {
            id: o.id,
            item: o.item,
            note: o.note,
            qty: 10,
        })
        .to_with("big-orders", StringSerde, write);
    let backend = LocalBackend::new(local.clone(), "avro-app", Guarantee::AtLeastOnce).unwrap();
    let mut cfg = StreamsConfig::new("avro-app");
    cfg.poll_timeout = Duration::from_millis(5);
    let mut app = Streams::new(b.build().unwrap(), cfg, Box::new(backend)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.metrics().processed < 4 {
        assert!(
            Instant::now() < deadline,
            "the application did not process its input"
        );
        app.poll_once().unwrap();
    }
    app.commit().unwrap();
    app.close().unwrap();

    let mut reader = LocalBackend::new(local, "reader", Guarantee::AtLeastOnce).unwrap();
    let mut out = Vec::new();
    reader
        .read_partition(&TopicPartition::new("big-orders", 0), 0, &mut |r| {
            out.push(r)
        })
        .unwrap();
    let decoded: Vec<serde_json::Value> = out
        .iter()
        .map(|r| {
            json::decode(&client, r.value.as_deref().unwrap())
                .unwrap()
                .1
        })
        .collect();
    assert_eq!(
        decoded,
        vec![
            json!({"id": 2, "item": "hat", "note": null, "qty": 10}),
            json!({"id": 4, "item": "hat", "note": null, "qty": 10}),
        ]
    );
    assert_eq!(
        client
            .latest("big-orders-value")
            .unwrap()
            .schema
            .record_name()
            .as_deref(),
        Some("shop.Order")
    );
}
