use super::*;
use runnel_schema::SchemaType as RegistryType;

fn parsed(text: &str) -> ParsedSchema {
    ParsedSchema::parse(RegistryType::Json, text, &[]).unwrap()
}

fn round_trip(schema: &Schema, value: &Value) -> (Json, Schema, Value, Json) {
    let f = JsonSchemaFormat;
    let text = f.schema_text(schema).unwrap();
    let p = parsed(&text);
    f.writer(&p).unwrap();
    let mut out = Vec::new();
    f.encode(&(), schema, value, &mut out).unwrap();
    let written: Json = serde_json::from_slice(&out).unwrap();
    // What is written is valid under the registered schema.
    p.validate(&written).unwrap();
    let r = f.reader(&p, None).unwrap();
    let (s, v) = f.decode(&r, &out).unwrap();
    (serde_json::from_str(&text).unwrap(), s, v, written)
}

fn person() -> Schema {
    let address = Schema::struct_named("Address")
        .field("street", Schema::string())
        .field("zip", Schema::int16().optional());
    Schema::struct_named("Person")
        .version(2)
        .doc("someone")
        .field("id", Schema::int64())
        .field("name", Schema::string().optional())
        .field("price", Schema::decimal(2))
        .field("born", Schema::date().optional())
        .field("home", address.clone().optional())
        .field("tags", Schema::array(Schema::string()))
        .field("counts", Schema::map(Schema::string(), Schema::int32()))
        .field("by_id", Schema::map(Schema::int32(), Schema::string()))
        .field("level", Schema::int32().default_value(Value::Int32(5)))
        .field("ratio", Schema::float32())
        .field("ok", Schema::boolean())
}

fn person_value(schema: &Schema) -> Value {
    let home_schema = Arc::new(schema.field_named("home").unwrap().schema.clone());
    let home = Struct::new(home_schema)
        .with("street", Value::String("Main St".into()))
        .unwrap()
        .with("zip", Value::Int16(1234))
        .unwrap();
    Value::Struct(
        Struct::new(Arc::new(schema.clone()))
            .with("id", Value::Int64(7))
            .unwrap()
            .with("price", Value::Bytes(vec![0x04, 0xD2]))
            .unwrap()
            .with("born", Value::Int32(19000))
            .unwrap()
            .with("home", Value::Struct(home))
            .unwrap()
            .with("tags", Value::Array(vec![Value::String("a".into())]))
            .unwrap()
            .with(
                "counts",
                Value::Map(vec![(Value::String("x".into()), Value::Int32(1))]),
            )
            .unwrap()
            .with(
                "by_id",
                Value::Map(vec![(Value::Int32(1), Value::String("one".into()))]),
            )
            .unwrap()
            .with("level", Value::Int32(9))
            .unwrap()
            .with("ratio", Value::Float32(0.5))
            .unwrap()
            .with("ok", Value::Boolean(false))
            .unwrap(),
    )
}

#[test]
fn connect_schemas_become_json_schemas_as_confluent_writes_them() {
    let j = from_connect_schema(&person()).unwrap();
    assert_eq!(j["type"], "object");
    assert_eq!(j["title"], "Person");
    assert_eq!(j["connect.version"], 2);
    assert_eq!(j["description"], "someone");
    let p = &j["properties"];
    assert_eq!(
        p["id"],
        json!({"type": "integer", "connect.type": "int64", "connect.index": 0})
    );
    assert_eq!(
        p["name"],
        json!({"oneOf": [{"type": "null"}, {"type": "string"}], "connect.index": 1})
    );
    assert_eq!(
        p["price"],
        json!({"type": "string", "connect.type": "bytes", "title": "org.apache.kafka.connect.data.Decimal",
               "connect.version": 1, "connect.parameters": {"scale": "2"}, "connect.index": 2})
    );
    assert_eq!(p["home"]["oneOf"][1]["title"], "Address");
    assert_eq!(p["home"]["connect.index"], 4);
    assert_eq!(
        p["counts"],
        json!({"type": "object", "additionalProperties": {"type": "integer", "connect.type": "int32"},
               "connect.type": "map", "connect.index": 6})
    );
    assert_eq!(p["by_id"]["type"], "array");
    assert_eq!(p["by_id"]["items"]["properties"]["key"]["connect.index"], 0);
    assert_eq!(p["level"]["default"], 5);
}

#[test]
fn values_round_trip_with_their_schemas() {
    let schema = person();
    let value = person_value(&schema);
    let (_, back_schema, back, written) = round_trip(&schema, &value);
    assert_eq!(back_schema, schema);
    assert_eq!(back, value);
    assert_eq!(written["price"], "BNI=");
    assert_eq!(written["name"], Json::Null);
    assert_eq!(written["by_id"], json!([{"key": 1, "value": "one"}]));
    for (schema, value) in [
        (Schema::string(), Value::String("hi".into())),
        (Schema::int32().optional(), Value::Null),
        (
            Schema::array(Schema::float64()),
            Value::Array(vec![Value::Float64(1.5)]),
        ),
    ] {
        let (_, s, v, _) = round_trip(&schema, &value);
        assert_eq!((s, v), (schema, value));
    }
}

/// What confluent-kafka's JSONSerializer registers: plain JSON Schema.
#[test]
fn foreign_schemas_read_as_confluent_reads_them() {
    let p = parsed(
        r##"{"$schema": "http://json-schema.org/draft-07/schema#", "title": "Reading", "type": "object",
            "properties": {
              "sensor": {"type": "string"},
              "celsius": {"type": "number"},
              "count": {"type": "integer"},
              "note": {"type": ["null", "string"]},
              "kind": {"enum": ["a", "b"]},
              "where": {"$ref": "#/definitions/Place"},
              "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]}
            },
            "definitions": {"Place": {"type": "object", "properties": {"x": {"type": "number"}}}}}"##,
    );
    let r = JsonSchemaFormat.reader(&p, Some(3)).unwrap();
    let s = &r.connect;
    assert_eq!(s.name.as_deref(), Some("Reading"));
    assert_eq!(s.version, Some(3));
    let f = |n: &str| s.field_named(n).unwrap().schema.clone();
    assert_eq!(f("sensor"), Schema::string());
    assert_eq!(f("celsius"), Schema::float64());
    assert_eq!(f("count"), Schema::int64());
    assert_eq!(f("note"), Schema::string().optional());
    assert_eq!(
        f("kind").parameter("io.confluent.connect.json.Enum.b"),
        Some("b")
    );
    assert_eq!(f("where").fields[0].schema, Schema::float64());
    assert_eq!(f("either").name.as_deref(), Some(ONE_OF));
    let payload = br#"{"sensor":"s1","celsius":21.5,"count":3,"note":null,"kind":"a","where":{"x":1.0},"either":7}"#;
    let (_, v) = JsonSchemaFormat.decode(&r, payload).unwrap();
    let st = v.as_struct().unwrap();
    assert_eq!(st.get("celsius"), Some(&Value::Float64(21.5)));
    assert_eq!(st.get("note"), Some(&Value::Null));
    let either = st.get("either").unwrap().as_struct().unwrap();
    assert_eq!(either.values, vec![Value::Null, Value::Int64(7)]);
    st.validate().unwrap();
    assert!(JsonSchemaFormat.decode(&r, b"{nope").is_err());
    assert!(JsonSchemaFormat.decode(&r, br#"{"sensor":1}"#).is_err());
}
