#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use runnel_schema::SchemaType as Registry;

fn row_schema() -> Schema {
    Schema::struct_named("p.public.items.Value")
        .optional()
        .field("id", Schema::int32())
        .field("name", Schema::string().optional())
        .field("price", Schema::decimal(2).param(PRECISION_PARAM, "10"))
        .field("qty", Schema::int16().optional())
        .field("added", Schema::date().optional())
        .field("at", Schema::timestamp().optional())
        .field("tick", Schema::time().optional())
        .field("active", Schema::boolean())
        .field("ratio", Schema::float64().optional())
        .field("tags", Schema::array(Schema::string()).optional())
        .field(
            "attrs",
            Schema::map(Schema::string(), Schema::int64()).optional(),
        )
        .field(
            "inner",
            Schema::of(SchemaType::Struct)
                .optional()
                .field("a", Schema::int8())
                .field("b", Schema::bytes().optional()),
        )
}

fn row(schema: &Schema, name: Option<&str>, qty: Option<i16>) -> Value {
    let inner_schema = schema.field_named("inner").unwrap().schema.clone();
    let inner = Struct {
        schema: Arc::new(inner_schema),
        values: vec![Value::Int8(-3), Value::Bytes(vec![1, 2, 255])],
    };
    Value::Struct(Struct {
        schema: Arc::new(schema.clone()),
        values: vec![
            Value::Int32(7),
            name.map_or(Value::Null, |n| Value::String(n.into())),
            // 12345.67 at scale 2: unscaled 1234567 = 0x12D687.
            Value::Bytes(vec![0x12, 0xD6, 0x87]),
            qty.map_or(Value::Null, Value::Int16),
            Value::Int32(19_741), // 2024-01-19
            Value::Int64(1_700_000_000_123),
            Value::Int32(45_296_789), // 12:34:56.789
            Value::Boolean(true),
            Value::Float64(0.25),
            Value::Array(vec![Value::String("x".into()), Value::String("y".into())]),
            Value::Map(vec![
                (Value::String("k1".into()), Value::Int64(1)),
                (Value::String("k2".into()), Value::Int64(-2)),
            ]),
            Value::Struct(inner),
        ],
    })
}

fn round_trip(format: ProtobufFormat, schema: &Schema, value: &Value) -> (String, Schema, Value) {
    let text = format.schema_text(schema).unwrap();
    let parsed = ParsedSchema::parse(Registry::Protobuf, &text, &[])
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let writer = format.writer(&parsed).unwrap();
    let mut out = Vec::new();
    format.encode(&writer, schema, value, &mut out).unwrap();
    assert_eq!(out[0], 0, "message indexes [0] as one zero byte");
    let reader = format.reader(&parsed, Some(3)).unwrap();
    let (s, v) = format.decode(&reader, &out).unwrap();
    (text, s, v)
}

fn values(v: &Value) -> &[Value] {
    match v {
        Value::Struct(s) => &s.values,
        other => panic!("not a struct: {other:?}"),
    }
}

#[test]
fn registered_proto_follows_confluents_protobuf_data() {
    let text = from_connect_schema(&row_schema(), Nullables::Plain).unwrap();
    let want = r#"syntax = "proto3";
package p.public.items;

import "confluent/meta.proto";
import "confluent/type/decimal.proto";
import "google/protobuf/timestamp.proto";
import "google/type/date.proto";
import "google/type/timeofday.proto";

message Value {
  int32 id = 1;
  string name = 2;
  confluent.type.Decimal price = 3 [(confluent.field_meta) = { params: [{ key: "precision", value: "10" }, { key: "scale", value: "2" }] }];
  int32 qty = 4 [(confluent.field_meta) = { params: [{ key: "connect.type", value: "int16" }] }];
  google.type.Date added = 5;
  google.protobuf.Timestamp at = 6;
  google.type.TimeOfDay tick = 7;
  bool active = 8;
  double ratio = 9;
  repeated string tags = 10;
  map<string, int64> attrs = 11;
  ConnectDefault1 inner = 12;

  message ConnectDefault1 {
    int32 a = 1 [(confluent.field_meta) = { params: [{ key: "connect.type", value: "int8" }] }];
    bytes b = 2;
  }
}
"#;
    assert_eq!(text, want);
    let optional = from_connect_schema(&row_schema(), Nullables::Optional).unwrap();
    assert!(
        optional.contains("  optional string name = 2;"),
        "{optional}"
    );
    assert!(optional.contains("  int32 id = 1;"), "{optional}");
    // Messages have presence already.
    assert!(
        optional.contains("  google.type.Date added = 5;"),
        "{optional}"
    );
    let wrapped = from_connect_schema(&row_schema(), Nullables::Wrapper).unwrap();
    assert!(
        wrapped.contains("import \"google/protobuf/wrappers.proto\";"),
        "{wrapped}"
    );
    assert!(
        wrapped.contains("  google.protobuf.StringValue name = 2;"),
        "{wrapped}"
    );
    assert!(
        wrapped.contains("  google.protobuf.Int32Value qty = 4 [(confluent.field_meta)"),
        "{wrapped}"
    );
    assert!(wrapped.contains("  bool active = 8;"), "{wrapped}");
    // Unnamed top-level structs are ConnectDefault1, without a package.
    let unnamed = Schema::of(SchemaType::Struct).field("x", Schema::string());
    let t = from_connect_schema(&unnamed, Nullables::Plain).unwrap();
    assert_eq!(
        t,
        "syntax = \"proto3\";\n\nmessage ConnectDefault1 {\n  string x = 1;\n}\n"
    );
}

#[test]
fn values_round_trip_and_nulls_follow_the_nullable_setting() {
    let schema = row_schema();
    let full = row(&schema, Some("apple"), Some(-2));
    for n in [Nullables::Plain, Nullables::Optional, Nullables::Wrapper] {
        let (_, s, v) = round_trip(ProtobufFormat { nullables: n }, &schema, &full);
        assert_eq!(s.name.as_deref(), Some("p.public.items.Value"));
        assert_eq!(s.version, Some(3));
        assert!(s.fields.iter().all(|f| f.schema.optional), "{s:?}");
        assert_eq!(s.field_named("qty").unwrap().schema.kind, SchemaType::Int16);
        assert_eq!(
            s.field_named("price").unwrap().schema.parameter("scale"),
            Some("2")
        );
        assert_eq!(
            s.field_named("added").unwrap().schema.name.as_deref(),
            Some(logical::DATE)
        );
        let (got, want) = (values(&v), values(&full));
        assert_eq!(got[..11], want[..11], "{n:?}");
        assert_eq!(values(&got[11]), values(&want[11]));
    }
    // A null name and qty: proto3 writes defaults (Confluent's default),
    // `optional` and wrappers keep the nulls.
    let nulls = row(&schema, None, None);
    let (_, _, plain) = round_trip(ProtobufFormat::default(), &schema, &nulls);
    assert_eq!(values(&plain)[1], Value::String(String::new()));
    assert_eq!(values(&plain)[3], Value::Int16(0));
    for n in [Nullables::Optional, Nullables::Wrapper] {
        let (_, _, v) = round_trip(ProtobufFormat { nullables: n }, &schema, &nulls);
        assert_eq!(values(&v)[1], Value::Null, "{n:?}");
        assert_eq!(values(&v)[3], Value::Null, "{n:?}");
    }
    // A null struct or logical value is an absent message: null either way.
    let mut sparse = values(&nulls).to_vec();
    sparse[4] = Value::Null;
    sparse[11] = Value::Null;
    let sparse = Value::Struct(Struct {
        schema: Arc::new(schema.clone()),
        values: sparse,
    });
    let (_, _, v) = round_trip(ProtobufFormat::default(), &schema, &sparse);
    assert_eq!(values(&v)[4], Value::Null);
    assert_eq!(values(&v)[11], Value::Null);
}

#[test]
fn a_foreign_schema_reads_by_its_message_indexes() {
    let text = r#"syntax = "proto3";
package shop;
import "google/protobuf/wrappers.proto";
message Unused { string x = 1; }
message Order {
  enum Status { NEW = 0; PAID = 1; }
  message Line { string sku = 1; uint32 count = 2; }
  string id = 1;
  Status status = 2;
  repeated Line lines = 3;
  google.protobuf.Int64Value discount = 4;
  optional sint32 rank = 5;
  fixed64 big = 6;
  map<int32, string> notes = 7;
}
"#;
    let parsed = ParsedSchema::parse(Registry::Protobuf, text, &[]).unwrap();
    let md = parsed.message_by_indexes(&[1]).unwrap();
    let line = md.get_field_by_name("lines").unwrap();
    let Kind::Message(line_md) = line.kind() else {
        panic!()
    };
    let mut l = DynamicMessage::new(line_md);
    l.set_field_by_name("sku", Pb::String("s1".into()));
    l.set_field_by_name("count", Pb::U32(4));
    let mut m = DynamicMessage::new(md.clone());
    m.set_field_by_name("id", Pb::String("o1".into()));
    m.set_field_by_name("status", Pb::EnumNumber(1));
    m.set_field_by_name("lines", Pb::List(vec![Pb::Message(l)]));
    m.set_field_by_name("big", Pb::U64(9));
    let mut notes = HashMap::new();
    notes.insert(MapKey::I32(2), Pb::String("b".into()));
    notes.insert(MapKey::I32(1), Pb::String("a".into()));
    m.set_field_by_name("notes", Pb::Map(notes));
    let mut payload = Vec::new();
    wire::write_indexes(&[1], &mut payload);
    m.encode(&mut payload).unwrap();

    let f = ProtobufFormat::default();
    let reader = f.reader(&parsed, None).unwrap();
    let (s, v) = f.decode(&reader, &payload).unwrap();
    assert_eq!(s.name.as_deref(), Some("shop.Order"));
    let status = &s.field_named("status").unwrap().schema;
    assert_eq!(
        (status.kind, status.parameter(ENUM)),
        (SchemaType::String, Some("shop.Order.Status"))
    );
    let got = values(&v);
    assert_eq!(got[0], Value::String("o1".into()));
    assert_eq!(got[1], Value::String("PAID".into()));
    let Value::Array(lines) = &got[2] else {
        panic!("{:?}", got[2])
    };
    assert_eq!(
        values(&lines[0]),
        &[Value::String("s1".into()), Value::Int64(4)]
    );
    assert_eq!(got[3], Value::Null, "an absent wrapper");
    assert_eq!(got[4], Value::Null, "an absent proto3 optional");
    assert_eq!(got[5], Value::Int64(9));
    assert_eq!(
        got[6],
        Value::Map(vec![
            (Value::Int32(1), Value::String("a".into())),
            (Value::Int32(2), Value::String("b".into())),
        ])
    );
    // Indexes naming no message are an error, not a panic.
    let mut bad = Vec::new();
    wire::write_indexes(&[5], &mut bad);
    assert!(f.decode(&reader, &bad).is_err());
    assert!(f.decode(&reader, &[0x7f]).is_err());
}

#[test]
fn what_has_no_mapping_is_an_error() {
    assert!(from_connect_schema(&Schema::string(), Nullables::Plain).is_err());
    let bad_field = Schema::struct_named("a.B").field("not-a-name", Schema::string());
    assert!(from_connect_schema(&bad_field, Nullables::Plain).is_err());
    let nested_arrays =
        Schema::struct_named("a.B").field("x", Schema::array(Schema::array(Schema::int32())));
    assert!(from_connect_schema(&nested_arrays, Nullables::Plain).is_err());
    let settings: Config = [
        ("optional.for.nullables", "true"),
        ("wrapper.for.nullables", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert!(ProtobufFormat::from_settings(&settings).is_err());
    // A null array element.
    let schema = Schema::struct_named("a.B").field("x", Schema::array(Schema::int32().optional()));
    let text = from_connect_schema(&schema, Nullables::Plain).unwrap();
    let parsed = ParsedSchema::parse(Registry::Protobuf, &text, &[]).unwrap();
    let f = ProtobufFormat::default();
    let w = f.writer(&parsed).unwrap();
    let v = Value::Struct(Struct {
        schema: Arc::new(schema.clone()),
        values: vec![Value::Array(vec![Value::Int32(1), Value::Null])],
    });
    assert!(f.encode(&w, &schema, &v, &mut Vec::new()).is_err());
}
