//! Generators of Avro schemas and values for the property tests of the
//! direct reader and writer (`avro_read`, `avro_write`).

use apache_avro::types::Value as Avro;
use proptest::prelude::*;
use serde_json::{json, Value as Json};

/// A writer type for the generators.
#[derive(Debug, Clone)]
pub(crate) enum T {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Str,
    Bytes,
    Enum,
    Fixed(usize),
    Decimal(bool, u8),
    Date,
    TimeMillis,
    TimeMicros,
    TimestampMillis,
    TimestampMicros,
    Array(Box<T>),
    Map(Box<T>),
    Record(Vec<T>),
    /// `["null", T]` or (true) `[T, "null"]`.
    Nullable(Box<T>, bool),
}

fn leaf() -> impl Strategy<Value = T> {
    prop_oneof![
        Just(T::Boolean),
        Just(T::Int),
        Just(T::Long),
        Just(T::Float),
        Just(T::Double),
        Just(T::Str),
        Just(T::Bytes),
        Just(T::Enum),
        (1usize..20).prop_map(T::Fixed),
        (any::<bool>(), 0u8..10).prop_map(|(f, s)| T::Decimal(f, s)),
        Just(T::Date),
        Just(T::TimeMillis),
        Just(T::TimeMicros),
        Just(T::TimestampMillis),
        Just(T::TimestampMicros),
    ]
}

pub(crate) fn writer_type() -> impl Strategy<Value = T> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| T::Array(Box::new(t))),
            inner.clone().prop_map(|t| T::Map(Box::new(t))),
            prop::collection::vec(inner.clone(), 1..4).prop_map(T::Record),
            // A union may not hold a union.
            (inner, any::<bool>()).prop_map(|(t, last)| match t {
                T::Nullable(..) => t,
                t => T::Nullable(Box::new(t), last),
            }),
        ]
    })
}

/// The Avro JSON of `t`; records are named `R<n>`, fields `f<i>`.
pub(crate) fn schema_json(t: &T, n: &mut usize) -> Json {
    match t {
        T::Boolean => json!("boolean"),
        T::Int => json!("int"),
        T::Long => json!("long"),
        T::Float => json!("float"),
        T::Double => json!("double"),
        T::Str => json!("string"),
        T::Bytes => json!("bytes"),
        T::Enum => {
            *n += 1;
            json!({"type": "enum", "name": format!("E{n}"), "symbols": ["A", "B", "C"]})
        }
        T::Fixed(size) => {
            *n += 1;
            json!({"type": "fixed", "name": format!("X{n}"), "size": size})
        }
        T::Decimal(fixed, scale) => {
            if *fixed {
                *n += 1;
                json!({"type": "fixed", "name": format!("D{n}"), "size": 9, "logicalType": "decimal", "precision": 20, "scale": scale})
            } else {
                json!({"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": scale})
            }
        }
        T::Date => json!({"type": "int", "logicalType": "date"}),
        T::TimeMillis => json!({"type": "int", "logicalType": "time-millis"}),
        T::TimeMicros => json!({"type": "long", "logicalType": "time-micros"}),
        T::TimestampMillis => json!({"type": "long", "logicalType": "timestamp-millis"}),
        T::TimestampMicros => json!({"type": "long", "logicalType": "timestamp-micros"}),
        T::Array(t) => json!({"type": "array", "items": schema_json(t, n)}),
        T::Map(t) => json!({"type": "map", "values": schema_json(t, n)}),
        T::Record(fields) => {
            *n += 1;
            let name = format!("R{n}");
            let fields: Vec<Json> = fields
                .iter()
                .enumerate()
                .map(|(i, f)| json!({"name": format!("f{i}"), "type": schema_json(f, n)}))
                .collect();
            json!({"type": "record", "name": name, "fields": fields})
        }
        T::Nullable(t, last) => {
            let inner = schema_json(t, n);
            if *last {
                json!([inner, "null"])
            } else {
                json!(["null", inner])
            }
        }
    }
}

/// A small deterministic generator for values.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub(crate) fn value(t: &T, r: &mut Rng) -> Avro {
    match t {
        T::Boolean => Avro::Boolean(r.below(2) == 1),
        T::Int => Avro::Int(r.next() as i32),
        T::Long => Avro::Long(r.next() as i64),
        T::Float => Avro::Float((r.next() as i32) as f32 / 7.0),
        T::Double => Avro::Double((r.next() as i64) as f64 / 3.0),
        T::Str => Avro::String(
            ["", "a", "ÿé", "long text here", "k00042"][r.below(5) as usize].to_string(),
        ),
        T::Bytes => Avro::Bytes((0..r.below(6)).map(|_| r.next() as u8).collect()),
        T::Enum => {
            let i = r.below(3) as u32;
            Avro::Enum(i, ["A", "B", "C"][i as usize].to_string())
        }
        T::Fixed(size) => Avro::Fixed(*size, (0..*size).map(|_| r.next() as u8).collect()),
        T::Decimal(fixed, _) => {
            let n = (r.next() as i64) >> (r.below(60) as u32);
            let bytes = n.to_be_bytes().to_vec();
            if *fixed {
                let mut out = vec![if n < 0 { 0xff } else { 0 }; 1];
                out.extend_from_slice(&bytes);
                Avro::Decimal(apache_avro::Decimal::from(out))
            } else {
                Avro::Decimal(apache_avro::Decimal::from(bytes))
            }
        }
        T::Date => Avro::Date(r.next() as i32 / 1000),
        T::TimeMillis => Avro::TimeMillis(r.below(86_400_000) as i32),
        T::TimeMicros => Avro::TimeMicros(r.below(86_400_000_000) as i64),
        T::TimestampMillis => Avro::TimestampMillis((r.next() >> 20) as i64 - (1 << 42)),
        T::TimestampMicros => Avro::TimestampMicros((r.next() >> 10) as i64 - (1 << 52)),
        T::Array(t) => Avro::Array((0..r.below(4)).map(|_| value(t, r)).collect()),
        T::Map(t) => Avro::Map(
            (0..r.below(4))
                .map(|_| (format!("k{}", r.below(5)), value(t, r)))
                .collect(),
        ),
        T::Record(fields) => Avro::Record(
            fields
                .iter()
                .enumerate()
                .map(|(i, f)| (format!("f{i}"), value(f, r)))
                .collect(),
        ),
        T::Nullable(t, last) => {
            let null = r.below(3) == 0;
            let (null_i, value_i) = if *last { (1, 0) } else { (0, 1) };
            if null {
                Avro::Union(null_i, Box::new(Avro::Null))
            } else {
                Avro::Union(value_i, Box::new(value(t, r)))
            }
        }
    }
}
