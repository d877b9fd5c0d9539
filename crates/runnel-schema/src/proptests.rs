//! Properties every schema type keeps, over generated schemas: the
//! canonical form is a fixed point (parsing it gives it back), layout does
//! not change it, and a schema always reads what it wrote itself.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::{check_backward, ParsedSchema, SchemaType};

// ---------------------------------------------------------------------------
// Avro
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum AvroType {
    Prim(&'static str),
    Nullable(&'static str),
    Array(Box<AvroType>),
    Map(Box<AvroType>),
    Enum(usize),
    Fixed(usize),
    Record(Vec<AvroType>),
}

fn avro_prim() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    ])
}

fn avro_type() -> impl Strategy<Value = AvroType> {
    let leaf = prop_oneof![
        avro_prim().prop_map(AvroType::Prim),
        avro_prim()
            .prop_filter("not null", |p| *p != "null")
            .prop_map(AvroType::Nullable),
        (1usize..4).prop_map(AvroType::Enum),
        (1usize..16).prop_map(AvroType::Fixed),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| AvroType::Array(Box::new(t))),
            inner.clone().prop_map(|t| AvroType::Map(Box::new(t))),
            prop::collection::vec(inner, 0..4).prop_map(AvroType::Record),
        ]
    })
}

fn render_avro(t: &AvroType, next: &mut usize) -> Value {
    *next += 1;
    let n = *next;
    match t {
        AvroType::Prim(p) => json!(p),
        AvroType::Nullable(p) => json!(["null", p]),
        AvroType::Array(i) => json!({"type": "array", "items": render_avro(i, next)}),
        AvroType::Map(v) => json!({"type": "map", "values": render_avro(v, next)}),
        AvroType::Enum(k) => {
            let symbols: Vec<String> = (0..*k).map(|i| format!("S{i}")).collect();
            json!({"type": "enum", "name": format!("E{n}"), "symbols": symbols})
        }
        AvroType::Fixed(size) => json!({"type": "fixed", "name": format!("F{n}"), "size": size}),
        AvroType::Record(fields) => {
            let fields: Vec<Value> = fields
                .iter()
                .enumerate()
                .map(|(i, f)| json!({"name": format!("f{i}"), "type": render_avro(f, next), "doc": "d"}))
                .collect();
            json!({"type": "record", "name": format!("R{n}"), "namespace": "p.q", "fields": fields})
        }
    }
}

fn avro_record() -> impl Strategy<Value = Value> {
    prop::collection::vec(avro_type(), 1..6).prop_map(|fields| {
        let mut next = 0;
        render_avro(&AvroType::Record(fields), &mut next)
    })
}

// ---------------------------------------------------------------------------
// JSON Schema
// ---------------------------------------------------------------------------

fn json_schema() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(json!({"type": "string"})),
        (0u32..5, 5u32..20)
            .prop_map(|(min, max)| json!({"type": "string", "minLength": min, "maxLength": max})),
        Just(json!({"type": "integer", "minimum": 0})),
        Just(json!({"type": "number", "exclusiveMaximum": 10.5})),
        Just(json!({"type": ["string", "null"]})),
        Just(json!({"type": "boolean"})),
        Just(json!({"enum": ["a", "b", 3]})),
        Just(json!({})),
    ];
    leaf.prop_recursive(3, 32, 4, |inner| {
        prop_oneof![
            (
                prop::collection::btree_map("[a-e]{1,3}", inner.clone(), 0..4),
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(|(props, closed, require_first)| {
                    let mut s = json!({"type": "object", "properties": props});
                    if closed {
                        s["additionalProperties"] = json!(false);
                    }
                    if require_first {
                        if let Some(first) = s["properties"]
                            .as_object()
                            .and_then(|o| o.keys().next().cloned())
                        {
                            s["required"] = json!([first]);
                        }
                    }
                    s
                }),
            inner
                .clone()
                .prop_map(|items| json!({"type": "array", "items": items, "maxItems": 9})),
            prop::collection::vec(inner, 1..3).prop_map(|alts| json!({"anyOf": alts})),
        ]
    })
}

// ---------------------------------------------------------------------------
// Protobuf
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ProtoField {
    ty: usize,
    label: usize,
}

const PROTO_TYPES: &[&str] = &[
    "int32",
    "int64",
    "uint32",
    "uint64",
    "sint32",
    "sint64",
    "fixed32",
    "fixed64",
    "sfixed32",
    "sfixed64",
    "bool",
    "string",
    "bytes",
    "float",
    "double",
    "Color",
    "Inner",
    "google.protobuf.Timestamp",
    "map<string, int64>",
    "map<int32, Inner>",
];

fn proto_file() -> impl Strategy<Value = (Vec<ProtoField>, Vec<ProtoField>, Vec<bool>)> {
    let field = (0..PROTO_TYPES.len(), 0usize..3).prop_map(|(ty, label)| ProtoField { ty, label });
    (
        prop::collection::vec(field.clone(), 1..8),
        prop::collection::vec(field, 0..4),
        prop::collection::vec(any::<bool>(), 12),
    )
}

/// The file, laid out by `layout` (extra spaces, comments, line breaks).
fn render_proto(outer: &[ProtoField], inner: &[ProtoField], layout: &[bool]) -> String {
    let sp = |i: usize| {
        if layout
            .get(i % layout.len().max(1))
            .copied()
            .unwrap_or(false)
        {
            "  \n "
        } else {
            " "
        }
    };
    let comment = |i: usize| {
        if layout
            .get(i % layout.len().max(1))
            .copied()
            .unwrap_or(false)
        {
            "// a comment\n"
        } else {
            "/* c */"
        }
    };
    let field = |f: &ProtoField, n: usize, in_inner: bool| {
        let mut ty = PROTO_TYPES[f.ty];
        if in_inner && (ty == "Inner" || ty == "map<int32, Inner>") {
            ty = "int32";
        }
        let label = if ty.starts_with("map<") {
            ""
        } else {
            ["", "repeated ", "optional "][f.label]
        };
        format!(
            "{label}{ty}{}f{n}{}={}{n};{}",
            sp(n),
            sp(n + 1),
            sp(n + 2),
            comment(n)
        )
    };
    let mut out = String::new();
    out.push_str("syntax = \"proto3\";");
    out.push_str(sp(0));
    out.push_str("package gen.v1;\nimport \"google/protobuf/timestamp.proto\";");
    out.push_str(comment(1));
    out.push_str("\nmessage Outer {");
    for (i, f) in outer.iter().enumerate() {
        out.push_str(&field(f, i + 1, false));
    }
    out.push_str("}\nmessage Inner {");
    out.push_str(sp(3));
    for (i, f) in inner.iter().enumerate() {
        out.push_str(&field(f, i + 1, true));
    }
    out.push_str("}\nenum Color {");
    out.push_str(sp(4));
    out.push_str("COLOR_UNSPECIFIED = 0; RED = 1;");
    out.push_str(comment(5));
    out.push_str("}\n");
    out
}

/// A field type from a small set, so that two random records often share
/// fields; named types are named after their field (one definition each).
fn avro_field_type(field: &str) -> impl Strategy<Value = Value> {
    let e = format!("E_{field}");
    let f = format!("F_{field}");
    prop_oneof![
        prop::sample::select(vec![
            "int", "long", "float", "double", "string", "bytes", "boolean", "null"
        ])
        .prop_map(|t| json!(t)),
        Just(json!(["null", "int"])),
        Just(json!(["null", "string"])),
        Just(json!(["int", "string"])),
        Just(json!({"type": "enum", "name": e, "symbols": ["A", "B"]})),
        Just(json!({"type": "enum", "name": e, "symbols": ["A"]})),
        Just(json!({"type": "fixed", "name": f, "size": 4})),
        Just(json!({"type": "fixed", "name": f, "size": 8})),
        Just(json!({"type": "array", "items": "int"})),
        Just(json!({"type": "array", "items": "long"})),
        Just(json!({"type": "map", "values": "string"})),
    ]
}

fn avro_default(t: &Value) -> Option<Value> {
    Some(match t {
        Value::String(s) => match s.as_str() {
            "int" | "long" => json!(0),
            "float" | "double" => json!(0.0),
            "string" | "bytes" => json!(""),
            "boolean" => json!(false),
            _ => json!(null),
        },
        Value::Array(branches) if branches[0] == "null" => json!(null),
        Value::Array(_) => json!(0),
        Value::Object(o) => match o["type"].as_str() {
            Some("enum") => json!("A"),
            Some("array") => json!([]),
            Some("map") => json!({}),
            _ => return None,
        },
        _ => return None,
    })
}

fn small_record() -> impl Strategy<Value = Value> {
    let field = prop::sample::select(vec!["a", "b", "c"])
        .prop_flat_map(|name| (Just(name), avro_field_type(name), any::<bool>()));
    prop::collection::vec(field, 0..4).prop_map(|fields| {
        let mut seen = std::collections::BTreeSet::new();
        let fields: Vec<Value> = fields
            .into_iter()
            .filter(|(name, _, _)| seen.insert(*name))
            .map(|(name, t, with_default)| {
                let mut f = json!({"name": name, "type": t});
                if with_default {
                    if let Some(d) = avro_default(&f["type"]) {
                        f["default"] = d;
                    }
                }
                f
            })
            .collect();
        json!({"type": "record", "name": "R", "fields": fields})
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Our walk and apache-avro's checker agree on whether a new record
    /// reads an old one (apache-avro only says whether, and stops at the
    /// first problem). The one known difference is theirs: a reader enum
    /// with a default reads unknown symbols (Avro spec, Java's checker).
    #[test]
    fn avro_verdicts_agree_with_apache_avro(old in small_record(), new in small_record()) {
        let o = ParsedSchema::parse(SchemaType::Avro, &old.to_string(), &[]).unwrap();
        let n = ParsedSchema::parse(SchemaType::Avro, &new.to_string(), &[]).unwrap();
        let ours = check_backward(&n, &o);
        let theirs = apache_avro::schema_compatibility::SchemaCompatibility::can_read(
            o.as_avro().unwrap(),
            n.as_avro().unwrap(),
        );
        prop_assert_eq!(ours.is_empty(), theirs.is_ok(), "ours {:?}, theirs {:?}", ours, theirs);
    }

    #[test]
    fn avro_canonical_is_a_fixed_point_and_self_compatible(schema in avro_record()) {
        let compact = ParsedSchema::parse(SchemaType::Avro, &schema.to_string(), &[]).unwrap();
        let pretty_text = serde_json::to_string_pretty(&schema).unwrap();
        let pretty = ParsedSchema::parse(SchemaType::Avro, &pretty_text, &[]).unwrap();
        prop_assert_eq!(compact.canonical(), pretty.canonical());
        let again = ParsedSchema::parse(SchemaType::Avro, compact.canonical(), &[]).unwrap();
        prop_assert_eq!(again.canonical(), compact.canonical());
        prop_assert!(check_backward(&compact, &compact).is_empty());
        prop_assert!(check_backward(&again, &compact).is_empty());
    }

    #[test]
    fn avro_added_fields_need_defaults(schema in avro_record()) {
        let old = ParsedSchema::parse(SchemaType::Avro, &schema.to_string(), &[]).unwrap();
        let mut with_default = schema.clone();
        let mut without = schema.clone();
        if let Some(fields) = with_default["fields"].as_array_mut() {
            fields.push(json!({"name": "added", "type": "string", "default": "x"}));
        }
        if let Some(fields) = without["fields"].as_array_mut() {
            fields.push(json!({"name": "added", "type": "string"}));
        }
        let with_default = ParsedSchema::parse(SchemaType::Avro, &with_default.to_string(), &[]).unwrap();
        let without = ParsedSchema::parse(SchemaType::Avro, &without.to_string(), &[]).unwrap();
        prop_assert!(check_backward(&with_default, &old).is_empty());
        let found = check_backward(&without, &old);
        prop_assert_eq!(found.len(), 1);
        prop_assert_eq!(found[0].kind.as_str(), "READER_FIELD_MISSING_DEFAULT_VALUE");
        // The old schema reads the new data: it skips the added field.
        prop_assert!(check_backward(&old, &without).is_empty());
    }

    #[test]
    fn json_canonical_is_a_fixed_point_and_self_compatible(schema in json_schema()) {
        let compact = ParsedSchema::parse(SchemaType::Json, &schema.to_string(), &[]).unwrap();
        let pretty_text = serde_json::to_string_pretty(&schema).unwrap();
        let pretty = ParsedSchema::parse(SchemaType::Json, &pretty_text, &[]).unwrap();
        prop_assert_eq!(compact.canonical(), pretty.canonical());
        let again = ParsedSchema::parse(SchemaType::Json, compact.canonical(), &[]).unwrap();
        prop_assert_eq!(again.canonical(), compact.canonical());
        prop_assert!(check_backward(&compact, &compact).is_empty(), "{:?}", check_backward(&compact, &compact));
        // Accepting anything reads anything.
        let anything = ParsedSchema::parse(SchemaType::Json, "{}", &[]).unwrap();
        prop_assert!(check_backward(&anything, &compact).is_empty());
    }

    #[test]
    fn protobuf_canonical_ignores_layout_and_is_self_compatible(
        (outer, inner, layout) in proto_file(),
        other_layout in prop::collection::vec(any::<bool>(), 12),
    ) {
        let a_text = render_proto(&outer, &inner, &layout);
        let b_text = render_proto(&outer, &inner, &other_layout);
        let a = ParsedSchema::parse(SchemaType::Protobuf, &a_text, &[])
            .map_err(|e| TestCaseError::fail(format!("{e}\n{a_text}")))?;
        let b = ParsedSchema::parse(SchemaType::Protobuf, &b_text, &[])
            .map_err(|e| TestCaseError::fail(format!("{e}\n{b_text}")))?;
        prop_assert_eq!(a.canonical(), b.canonical());
        let again = ParsedSchema::parse(SchemaType::Protobuf, a.canonical(), &[])
            .map_err(|e| TestCaseError::fail(format!("{e}\n{}", a.canonical())))?;
        prop_assert_eq!(again.canonical(), a.canonical());
        prop_assert!(check_backward(&a, &a).is_empty());
        prop_assert!(check_backward(&again, &a).is_empty());
        prop_assert_eq!(a.record_name(), Some("gen.v1.Outer".to_string()));
    }
}
