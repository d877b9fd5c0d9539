use super::*;
use runnel_schema::SchemaType as RegistryType;

fn parsed(text: &str) -> ParsedSchema {
    ParsedSchema::parse(RegistryType::Avro, text, &[]).unwrap()
}

/// Connect value → bytes with the schema made from its Connect schema →
/// Connect schema and value read back.
fn round_trip(schema: &Schema, value: &Value) -> (Json, Schema, Value) {
    let f = AvroFormat;
    let text = f.schema_text(schema).unwrap();
    let p = parsed(&text);
    let w = f.writer(&p).unwrap();
    let mut out = Vec::new();
    f.encode(&w, schema, value, &mut out).unwrap();
    let r = f.reader(&p, None).unwrap();
    let (s, v) = f.decode(&r, &out).unwrap();
    (serde_json::from_str(&text).unwrap(), s, v)
}

fn person() -> Schema {
    let address = Schema::struct_named("com.example.Address")
        .field("street", Schema::string())
        .field("zip", Schema::int16().optional());
    Schema::struct_named("com.example.Person")
        .version(3)
        .doc("someone")
        .field("id", Schema::int64())
        .field("tiny", Schema::int8())
        .field("name", Schema::string().optional())
        .field("price", Schema::decimal(2).param(DECIMAL_PRECISION, "10"))
        .field("born", Schema::date().optional())
        .field("wake", Schema::time())
        .field("seen", Schema::timestamp())
        .field("home", address.clone())
        .field("work", address.optional())
        .field("tags", Schema::array(Schema::string()))
        .field("counts", Schema::map(Schema::string(), Schema::int32()))
        .field(
            "by_id",
            Schema::map(Schema::int32(), Schema::string()).optional(),
        )
        .field("level", Schema::int32().default_value(Value::Int32(5)))
        .field(
            "ratio",
            Schema::float64()
                .optional()
                .default_value(Value::Float64(0.5)),
        )
        .field("blob", Schema::bytes().optional())
        .field("f32", Schema::float32())
        .field("ok", Schema::boolean())
}

fn person_value(schema: &Schema) -> Value {
    let arc = Arc::new(schema.clone());
    let field_schema = |n: &str| Arc::new(schema.field_named(n).unwrap().schema.clone());
    let home = Struct::new(field_schema("home"))
        .with("street", Value::String("Main St".into()))
        .unwrap()
        .with("zip", Value::Int16(1234))
        .unwrap();
    let work = Struct::new(field_schema("work"))
        .with("street", Value::String("Side St".into()))
        .unwrap();
    Value::Struct(
        Struct::new(arc)
            .with("id", Value::Int64(7))
            .unwrap()
            .with("tiny", Value::Int8(-3))
            .unwrap()
            .with("name", Value::String("ann".into()))
            .unwrap()
            .with("price", Value::Bytes(vec![0x04, 0xD2]))
            .unwrap()
            .with("born", Value::Int32(19000))
            .unwrap()
            .with("wake", Value::Int32(3_600_000))
            .unwrap()
            .with("seen", Value::Int64(1_700_000_000_123))
            .unwrap()
            .with("home", Value::Struct(home))
            .unwrap()
            .with("work", Value::Struct(work))
            .unwrap()
            .with(
                "tags",
                Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
            )
            .unwrap()
            .with(
                "counts",
                Value::Map(vec![
                    (Value::String("x".into()), Value::Int32(1)),
                    (Value::String("y".into()), Value::Int32(2)),
                ]),
            )
            .unwrap()
            .with(
                "by_id",
                Value::Map(vec![(Value::Int32(1), Value::String("one".into()))]),
            )
            .unwrap()
            .with("level", Value::Int32(9))
            .unwrap()
            .with("ratio", Value::Float64(0.25))
            .unwrap()
            .with("f32", Value::Float32(1.5))
            .unwrap()
            .with("ok", Value::Boolean(true))
            .unwrap(),
    )
}

#[test]
fn connect_schemas_become_avro_schemas_as_confluent_writes_them() {
    let schema = person();
    let j = from_connect_schema(&schema).unwrap();
    assert_eq!(j["type"], "record");
    assert_eq!(j["name"], "Person");
    assert_eq!(j["namespace"], "com.example");
    assert_eq!(j["connect.version"], 3);
    assert_eq!(j["connect.doc"], "someone");
    assert_eq!(j["connect.name"], "com.example.Person");
    let field = |n: &str| {
        j["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(field("id"), json!({"name": "id", "type": "long"}));
    assert_eq!(
        field("tiny"),
        json!({"name": "tiny", "type": {"type": "int", "connect.type": "int8"}})
    );
    assert_eq!(
        field("name"),
        json!({"name": "name", "type": ["null", "string"], "default": null})
    );
    assert_eq!(
        field("price")["type"],
        json!({"type": "bytes", "scale": 2, "precision": 10, "connect.version": 1,
               "connect.parameters": {"scale": "2", "connect.decimal.precision": "10"},
               "connect.name": "org.apache.kafka.connect.data.Decimal", "logicalType": "decimal"})
    );
    assert_eq!(
        field("born")["type"],
        json!(["null", {"type": "int", "connect.version": 1,
               "connect.name": "org.apache.kafka.connect.data.Date", "logicalType": "date"}])
    );
    assert_eq!(field("wake")["type"]["logicalType"], "time-millis");
    assert_eq!(field("seen")["type"]["logicalType"], "timestamp-millis");
    assert_eq!(field("seen")["type"]["type"], "long");
    // A record met a second time is referred to by name.
    assert_eq!(field("home")["type"]["name"], "Address");
    assert_eq!(
        field("work"),
        json!({"name": "work", "type": ["null", "com.example.Address"], "default": null})
    );
    assert_eq!(
        field("counts")["type"],
        json!({"type": "map", "values": "int"})
    );
    let by_id = field("by_id");
    assert_eq!(by_id["type"][0], "null");
    assert_eq!(by_id["type"][1]["type"], "array");
    assert_eq!(by_id["type"][1]["items"]["name"], "MapEntry");
    assert_eq!(
        by_id["type"][1]["items"]["namespace"],
        "io.confluent.connect.avro"
    );
    assert_eq!(
        field("level"),
        json!({"name": "level", "type": {"type": "int", "connect.default": 5}, "default": 5})
    );
    // Optional with a default: the default's branch first.
    assert_eq!(
        field("ratio"),
        json!({"name": "ratio", "type": [{"type": "double", "connect.default": 0.5}, "null"], "default": 0.5})
    );
    // It parses as Avro.
    parsed(&j.to_string());
}

#[test]
fn unnamed_structs_are_connect_defaults() {
    let inner = Schema::of(SchemaType::Struct).field("a", Schema::int32());
    let outer = Schema::of(SchemaType::Struct).field("in", inner);
    let j = from_connect_schema(&outer).unwrap();
    assert_eq!(j["name"], "ConnectDefault");
    assert_eq!(j["namespace"], "io.confluent.connect.avro");
    assert_eq!(j["fields"][0]["type"]["name"], "ConnectDefault2");
    assert!(j.get("connect.name").is_none());
    // Read back: no name.
    let (_, s, _) = round_trip(
        &outer,
        &Value::Struct(
            Struct::new(Arc::new(outer.clone()))
                .with(
                    "in",
                    Value::Struct(
                        Struct::new(Arc::new(outer.fields[0].schema.clone()))
                            .with("a", Value::Int32(1))
                            .unwrap(),
                    ),
                )
                .unwrap(),
        ),
    );
    assert_eq!(s, outer);
}

#[test]
fn values_round_trip_with_their_schemas() {
    let schema = person();
    let value = person_value(&schema);
    let (_, back_schema, back) = round_trip(&schema, &value);
    assert_eq!(back_schema, schema);
    assert_eq!(back, value);
    // Nulls in optional fields, defaults for nulls in fields with one.
    let arc = Arc::new(schema.clone());
    let mut st = value.as_struct().unwrap().clone();
    for n in ["name", "born", "work", "by_id", "ratio", "blob"] {
        st.values[schema.field_named(n).unwrap().index] = Value::Null;
    }
    st.values[schema.field_named("level").unwrap().index] = Value::Null;
    let (_, _, back) = round_trip(&schema, &Value::Struct(st.clone()));
    let back = back.as_struct().unwrap().clone();
    assert_eq!(back.get("level"), Some(&Value::Int32(5)));
    assert_eq!(back.get("ratio"), Some(&Value::Float64(0.5)));
    assert_eq!(back.get("name"), Some(&Value::Null));
    assert_eq!(back.get("work"), Some(&Value::Null));
    assert_eq!(back.schema, arc);
}

#[test]
fn primitives_at_the_top_level() {
    for (schema, value) in [
        (Schema::string(), Value::String("hi".into())),
        (Schema::int64(), Value::Int64(-5)),
        (Schema::int16(), Value::Int16(300)),
        (Schema::string().optional(), Value::String("x".into())),
        (Schema::string().optional(), Value::Null),
        (
            Schema::array(Schema::int32().optional()),
            Value::Array(vec![Value::Int32(1), Value::Null]),
        ),
    ] {
        let (_, s, v) = round_trip(&schema, &value);
        assert_eq!(s, schema);
        assert_eq!(v, value);
    }
    assert_eq!(
        from_connect_schema(&Schema::string()).unwrap(),
        json!("string")
    );
}

/// What confluent-kafka's AvroSerializer registers: no connect.*
/// properties, enums, unions, logical types, defaults.
#[test]
fn foreign_schemas_read_as_confluent_reads_them() {
    let text = r#"{"type":"record","name":"Order","namespace":"shop","doc":"an order","fields":[
        {"name":"id","type":"long"},
        {"name":"state","type":{"type":"enum","name":"State","symbols":["NEW","DONE"]}},
        {"name":"note","type":["null","string"],"default":null},
        {"name":"qty","type":"int","default":1},
        {"name":"either","type":["null","string","long"],"default":null},
        {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
        {"name":"day","type":{"type":"int","logicalType":"date"}},
        {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"uid","type":{"type":"string","logicalType":"uuid"}},
        {"name":"hash","type":{"type":"fixed","name":"MD5","size":2}},
        {"name":"props","type":{"type":"map","values":"string"}}
    ]}"#;
    let p = parsed(text);
    let r = AvroFormat.reader(&p, Some(4)).unwrap();
    let s = &r.connect;
    assert_eq!(s.name.as_deref(), Some("shop.Order"));
    assert_eq!(s.version, Some(4));
    assert_eq!(s.parameter(RECORD_DOC), Some("an order"));
    let f = |n: &str| s.field_named(n).unwrap().schema.clone();
    assert_eq!(f("id"), Schema::int64());
    let state = f("state");
    assert_eq!(state.kind, SchemaType::String);
    assert_eq!(state.name.as_deref(), Some("shop.State"));
    assert_eq!(state.parameter(ENUM), Some("shop.State"));
    assert_eq!(
        state.parameter("io.confluent.connect.avro.Enum.DONE"),
        Some("DONE")
    );
    assert_eq!(f("note"), Schema::string().optional());
    assert_eq!(
        f("qty"),
        Schema::int32()
            .param(FIELD_DEFAULT_FLAG, "true")
            .default_value(Value::Int32(1))
    );
    let either = f("either");
    assert_eq!(either.name.as_deref(), Some(UNION));
    assert!(either.optional);
    assert_eq!(
        either
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["string", "long"]
    );
    assert_eq!(
        f("amount"),
        Schema::decimal(2).param(DECIMAL_PRECISION, "9")
    );
    assert_eq!(f("day"), Schema::date());
    assert_eq!(f("at"), Schema::timestamp());
    assert_eq!(f("uid"), Schema::string());
    assert_eq!(f("hash").parameter(FIXED_SIZE), Some("2"));

    // A value written with this schema (by apache-avro, as another
    // producer would) reads back.
    let avro = p.as_avro().unwrap();
    let datum = AvroValue::Record(vec![
        ("id".into(), AvroValue::Long(1)),
        ("state".into(), AvroValue::Enum(1, "DONE".into())),
        (
            "note".into(),
            AvroValue::Union(1, Box::new(AvroValue::String("n".into()))),
        ),
        ("qty".into(), AvroValue::Int(3)),
        (
            "either".into(),
            AvroValue::Union(2, Box::new(AvroValue::Long(9))),
        ),
        (
            "amount".into(),
            AvroValue::Decimal(apache_avro::Decimal::from(vec![0x30, 0x39])),
        ),
        ("day".into(), AvroValue::Date(19000)),
        ("at".into(), AvroValue::TimestampMillis(5)),
        (
            "uid".into(),
            AvroValue::String("c0ffee00-0000-4000-8000-000000000000".into()),
        ),
        ("hash".into(), AvroValue::Fixed(2, vec![1, 2])),
        (
            "props".into(),
            AvroValue::Map([("k".to_string(), AvroValue::String("v".into()))].into()),
        ),
    ]);
    let bytes = apache_avro::to_avro_datum(avro, datum).unwrap();
    let (_, v) = AvroFormat.decode(&r, &bytes).unwrap();
    let st = v.as_struct().unwrap();
    assert_eq!(st.get("state"), Some(&Value::String("DONE".into())));
    assert_eq!(st.get("note"), Some(&Value::String("n".into())));
    assert_eq!(st.get("amount"), Some(&Value::Bytes(vec![0x30, 0x39])));
    assert_eq!(st.get("day"), Some(&Value::Int32(19000)));
    assert_eq!(
        st.get("uid"),
        Some(&Value::String(
            "c0ffee00-0000-4000-8000-000000000000".into()
        ))
    );
    let either = st.get("either").unwrap().as_struct().unwrap();
    assert_eq!(either.get("long"), Some(&Value::Int64(9)));
    assert_eq!(either.get("string"), Some(&Value::Null));
    st.validate().unwrap();

    // And written back with the same schema (use.latest.version's path):
    // union structs pick their branch, strings their enum symbol.
    let w = AvroFormat.writer(&p).unwrap();
    let mut out = Vec::new();
    AvroFormat.encode(&w, s, &v, &mut out).unwrap();
    assert_eq!(out, bytes);
}

#[test]
fn recursive_records_are_refused() {
    let p = parsed(
        r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"],"default":null}]}"#,
    );
    let e = AvroFormat.reader(&p, None).err().unwrap();
    assert!(e.message.contains("recursive"), "{e}");
}

#[test]
fn values_that_do_not_fit_are_errors_not_panics() {
    let schema = Schema::struct_named("R").field("a", Schema::int32());
    let p = parsed(&AvroFormat.schema_text(&schema).unwrap());
    let w = AvroFormat.writer(&p).unwrap();
    let other = Schema::struct_named("R").field("a", Schema::string());
    let v = Value::Struct(
        Struct::new(Arc::new(other.clone()))
            .with("a", Value::String("x".into()))
            .unwrap(),
    );
    let e = AvroFormat
        .encode(&w, &other, &v, &mut Vec::new())
        .unwrap_err();
    assert!(e.message.contains("at a"), "{e}");
    let r = AvroFormat.reader(&p, None).unwrap();
    assert!(AvroFormat.decode(&r, &[0x80]).is_err());
    assert!(AvroFormat.decode(&r, &[]).is_err());
}
