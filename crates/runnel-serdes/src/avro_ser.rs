//! serde types written straight as Avro binary, driven by the writer's
//! schema: struct fields matched to record fields by name (in any order,
//! missing ones from the schema's defaults), `Option` to the null branch
//! of a union, unit enum variants to enum symbols — no apache-avro `Value`
//! tree and no per-record schema resolution.
//!
//! Whatever it cannot write it refuses, and [`crate::AvroSerde`] then
//! takes apache-avro's path (`to_value` + `resolve`), which writes the
//! same bytes where both succeed (a test below) and says why where it
//! fails.

use std::collections::HashMap;
use std::fmt;

use apache_avro::schema::{Name, RecordSchema, Schema};
use serde::ser::{self, Serialize};

use crate::avro_de::Direct;

/// A value the writer does not handle.
#[derive(Debug)]
pub(crate) struct SerError(String);

impl fmt::Display for SerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SerError {}

impl ser::Error for SerError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerError(msg.to_string())
    }
}

type Res = Result<(), SerError>;

fn refuse<T>(what: impl fmt::Display) -> Result<T, SerError> {
    Err(SerError(what.to_string()))
}

impl Direct {
    /// Appends `value` written with this schema to `out`.
    pub(crate) fn write<T: Serialize>(&self, value: &T, out: &mut Vec<u8>) -> Res {
        value.serialize(Ser {
            out,
            schema: self.schema(),
            names: self.names(),
        })
    }
}

/// An Avro `long` (the registry client's zig-zag varint).
fn long(n: i64, out: &mut Vec<u8>) {
    runnel_registry_client::wire::write_zigzag(n, out);
}

fn sized(b: &[u8], out: &mut Vec<u8>) {
    long(b.len() as i64, out);
    out.extend_from_slice(b);
}

/// What kind of serde value is being written, to pick a union's branch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int(i64),
    Float,
    Str,
    Bytes,
    Unit,
    Seq,
    Map,
    Struct,
    Variant,
}

struct Ser<'a, 's> {
    out: &'a mut Vec<u8>,
    schema: &'s Schema,
    names: &'s HashMap<Name, Schema>,
}

impl<'a, 's> Ser<'a, 's> {
    fn resolve(&self, s: &'s Schema) -> Result<&'s Schema, SerError> {
        match s {
            Schema::Ref { name } => self
                .names
                .get(name)
                .ok_or_else(|| SerError(format!("unknown named type {name}"))),
            s => Ok(s),
        }
    }

    /// The schema to write a value of `kind` with: the schema itself, or
    /// for a union the first branch that takes it (its index written).
    fn target(&mut self, kind: Kind) -> Result<&'s Schema, SerError> {
        let s = self.resolve(self.schema)?;
        let Schema::Union(u) = s else {
            return Ok(s);
        };
        for (i, v) in u.variants().iter().enumerate() {
            let v = self.resolve(v)?;
            if takes(v, kind) {
                long(i as i64, self.out);
                return Ok(v);
            }
        }
        refuse("no branch of the union takes the value")
    }

    fn int(mut self, n: i64) -> Res {
        match self.target(Kind::Int(n))? {
            Schema::Int | Schema::Date | Schema::TimeMillis => {
                let n = i32::try_from(n).map_err(|_| SerError(format!("{n} overflows an int")))?;
                long(i64::from(n), self.out);
            }
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => long(n, self.out),
            s => return refuse(format!("an integer for {s:?}")),
        }
        Ok(())
    }

    fn float(mut self, f: f64) -> Res {
        match self.target(Kind::Float)? {
            Schema::Double => self.out.extend_from_slice(&f.to_le_bytes()),
            Schema::Float => self.out.extend_from_slice(&(f as f32).to_le_bytes()),
            s => return refuse(format!("a float for {s:?}")),
        }
        Ok(())
    }
}

/// Whether a (resolved, non-union) schema takes a value of `kind`, the
/// way apache-avro's resolution would.
fn takes(s: &Schema, kind: Kind) -> bool {
    match kind {
        Kind::Bool => matches!(s, Schema::Boolean),
        Kind::Int(n) => match s {
            Schema::Int | Schema::Date | Schema::TimeMillis => i32::try_from(n).is_ok(),
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => true,
            _ => false,
        },
        Kind::Float => matches!(s, Schema::Float | Schema::Double),
        Kind::Str => matches!(s, Schema::String | Schema::Enum(_)),
        Kind::Bytes => matches!(s, Schema::Bytes),
        Kind::Unit => matches!(s, Schema::Null),
        Kind::Seq => matches!(s, Schema::Array(_)),
        Kind::Map => matches!(s, Schema::Map(_)),
        Kind::Struct => matches!(s, Schema::Record(_)),
        Kind::Variant => matches!(s, Schema::Enum(_)),
    }
}

impl<'a, 's> ser::Serializer for Ser<'a, 's> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = Items<'a, 's>;
    type SerializeTuple = ser::Impossible<(), SerError>;
    type SerializeTupleStruct = ser::Impossible<(), SerError>;
    type SerializeTupleVariant = ser::Impossible<(), SerError>;
    type SerializeMap = Entries<'a, 's>;
    type SerializeStruct = Fields<'a, 's>;
    type SerializeStructVariant = ser::Impossible<(), SerError>;

    fn serialize_bool(mut self, v: bool) -> Res {
        self.target(Kind::Bool)?;
        self.out.push(u8::from(v));
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Res {
        self.int(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Res {
        self.int(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Res {
        self.int(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Res {
        self.int(v)
    }
    fn serialize_u8(self, v: u8) -> Res {
        self.int(i64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Res {
        self.int(i64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Res {
        self.int(i64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Res {
        self.int(i64::try_from(v).map_err(|_| SerError(format!("{v} overflows a long")))?)
    }
    fn serialize_f32(self, v: f32) -> Res {
        self.float(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Res {
        self.float(v)
    }
    fn serialize_char(self, v: char) -> Res {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(mut self, v: &str) -> Res {
        match self.target(Kind::Str)? {
            Schema::String => sized(v.as_bytes(), self.out),
            Schema::Enum(e) => {
                let i = e
                    .symbols
                    .iter()
                    .position(|s| s == v)
                    .ok_or_else(|| SerError(format!("{v} is no symbol of {}", e.name)))?;
                long(i as i64, self.out);
            }
            s => return refuse(format!("a string for {s:?}")),
        }
        Ok(())
    }
    fn serialize_bytes(mut self, v: &[u8]) -> Res {
        self.target(Kind::Bytes)?;
        sized(v, self.out);
        Ok(())
    }
    fn serialize_none(self) -> Res {
        self.serialize_unit()
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Res {
        value.serialize(self)
    }
    fn serialize_unit(mut self) -> Res {
        self.target(Kind::Unit)?;
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Res {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Res {
        let Schema::Enum(e) = self.target(Kind::Variant)? else {
            return refuse("an enum variant for a schema that is no enum");
        };
        let i = e
            .symbols
            .iter()
            .position(|s| s == variant)
            .ok_or_else(|| SerError(format!("{variant} is no symbol of {}", e.name)))?;
        long(i as i64, self.out);
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Res {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Res {
        refuse("enum variants with data")
    }
    fn serialize_seq(mut self, len: Option<usize>) -> Result<Items<'a, 's>, SerError> {
        let Schema::Array(a) = self.target(Kind::Seq)? else {
            return refuse("a sequence for a schema that is no array");
        };
        let len = len.ok_or_else(|| SerError("a sequence of unknown length".into()))?;
        if len > 0 {
            long(len as i64, self.out);
        }
        Ok(Items {
            out: self.out,
            items: &a.items,
            names: self.names,
        })
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, SerError> {
        refuse("tuples")
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, SerError> {
        refuse("tuple structs")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, SerError> {
        refuse("enum variants with data")
    }
    fn serialize_map(mut self, len: Option<usize>) -> Result<Entries<'a, 's>, SerError> {
        let Schema::Map(m) = self.target(Kind::Map)? else {
            return refuse("a map for a schema that is no map");
        };
        let len = len.ok_or_else(|| SerError("a map of unknown length".into()))?;
        if len > 0 {
            long(len as i64, self.out);
        }
        Ok(Entries {
            out: self.out,
            values: &m.types,
            names: self.names,
        })
    }
    fn serialize_struct(
        mut self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Fields<'a, 's>, SerError> {
        let Schema::Record(r) = self.target(Kind::Struct)? else {
            return refuse("a struct for a schema that is no record");
        };
        Ok(Fields {
            out: self.out,
            record: r,
            names: self.names,
            next: 0,
            held: Vec::new(),
        })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, SerError> {
        refuse("enum variants with data")
    }
}

pub(crate) struct Items<'a, 's> {
    out: &'a mut Vec<u8>,
    items: &'s Schema,
    names: &'s HashMap<Name, Schema>,
}

/// Writes `value` with `schema` (an item, entry or field).
fn put<T: ?Sized + Serialize>(
    out: &mut Vec<u8>,
    schema: &Schema,
    names: &HashMap<Name, Schema>,
    value: &T,
) -> Res {
    value.serialize(Ser { out, schema, names })
}

impl ser::SerializeSeq for Items<'_, '_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Res {
        put(self.out, self.items, self.names, value)
    }
    fn end(self) -> Res {
        self.out.push(0);
        Ok(())
    }
}

pub(crate) struct Entries<'a, 's> {
    out: &'a mut Vec<u8>,
    values: &'s Schema,
    names: &'s HashMap<Name, Schema>,
}

impl ser::SerializeMap for Entries<'_, '_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Res {
        put(self.out, &Schema::String, self.names, key)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Res {
        put(self.out, self.values, self.names, value)
    }
    fn end(self) -> Res {
        self.out.push(0);
        Ok(())
    }
}

/// A record's fields: written as they come while they come in the
/// schema's order, held until their turn otherwise.
pub(crate) struct Fields<'a, 's> {
    out: &'a mut Vec<u8>,
    record: &'s RecordSchema,
    names: &'s HashMap<Name, Schema>,
    /// The index of the next field to write.
    next: usize,
    /// Fields that came early, by index.
    held: Vec<(usize, Vec<u8>)>,
}

impl Fields<'_, '_> {
    /// Writes held fields whose turn has come.
    fn flush_held(&mut self) {
        while let Some(p) = self.held.iter().position(|(i, _)| *i == self.next) {
            let (_, bytes) = self.held.swap_remove(p);
            self.out.extend_from_slice(&bytes);
            self.next += 1;
        }
    }
}

impl ser::SerializeStruct for Fields<'_, '_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Res {
        let Some(&i) = self.record.lookup.get(key) else {
            return refuse(format!("{key} is no field of {}", self.record.name));
        };
        let schema = &self.record.fields[i].schema;
        if i == self.next {
            put(self.out, schema, self.names, value)?;
            self.next += 1;
            self.flush_held();
        } else if i > self.next && self.held.iter().all(|(h, _)| *h != i) {
            let mut bytes = Vec::new();
            put(&mut bytes, schema, self.names, value)?;
            self.held.push((i, bytes));
        } else {
            return refuse(format!("field {key} twice"));
        }
        Ok(())
    }

    fn end(mut self) -> Res {
        self.flush_held();
        if self.next < self.record.fields.len() {
            // Fields the type lacks take their defaults: left to
            // apache-avro's resolution.
            return refuse(format!(
                "field {} is missing",
                self.record.fields[self.next].name
            ));
        }
        Ok(())
    }
}

/// Whether a value serializes as nothing (`None`, `()`): answered without
/// serializing what a `Some` holds.
pub(crate) fn is_null<T: ?Sized + Serialize>(value: &T) -> bool {
    matches!(value.serialize(NullProbe), Ok(true))
}

struct NullProbe;

macro_rules! not_null {
    ($($f:ident($($t:ty),*)),* $(,)?) => {
        $(fn $f(self, $(_: $t),*) -> Result<bool, SerError> { Ok(false) })*
    };
}

impl ser::Serializer for NullProbe {
    type Ok = bool;
    type Error = SerError;
    type SerializeSeq = ser::Impossible<bool, SerError>;
    type SerializeTuple = ser::Impossible<bool, SerError>;
    type SerializeTupleStruct = ser::Impossible<bool, SerError>;
    type SerializeTupleVariant = ser::Impossible<bool, SerError>;
    type SerializeMap = ser::Impossible<bool, SerError>;
    type SerializeStruct = ser::Impossible<bool, SerError>;
    type SerializeStructVariant = ser::Impossible<bool, SerError>;

    not_null!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_none(self) -> Result<bool, SerError> {
        Ok(true)
    }
    fn serialize_unit(self) -> Result<bool, SerError> {
        Ok(true)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<bool, SerError> {
        Ok(false)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<bool, SerError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<bool, SerError> {
        Ok(false)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, SerError> {
        refuse("not null")
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, SerError> {
        refuse("not null")
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, SerError> {
        refuse("not null")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, SerError> {
        refuse("not null")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, SerError> {
        refuse("not null")
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, SerError> {
        refuse("not null")
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, SerError> {
        refuse("not null")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro_de::tests::{order, Order, SCHEMA};

    /// apache-avro's bytes for `value` (the fallback path).
    fn general<T: Serialize>(schema: &Schema, value: &T) -> Vec<u8> {
        let v = apache_avro::to_value(value)
            .expect("value")
            .resolve(schema)
            .expect("resolves");
        apache_avro::to_avro_datum(schema, v).expect("encodes")
    }

    #[derive(serde::Serialize)]
    struct Shuffled {
        // The schema's order is a, b, c.
        c: Option<String>,
        a: i64,
        b: Vec<i32>,
    }

    #[test]
    fn structs_write_what_apache_avro_writes() {
        let schema = Schema::parse_str(SCHEMA).expect("schema");
        let direct = Direct::new(&schema);
        for i in 0..50 {
            let o: Order = order(i);
            let mut fast = Vec::new();
            // The type lacks the schema's `extra` field: left to apache-avro
            // (which takes its default).
            assert!(direct.write(&o, &mut fast).is_err());
        }
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "S", "fields": [
                {"name": "a", "type": "long"},
                {"name": "b", "type": {"type": "array", "items": "int"}},
                {"name": "c", "type": ["null", "string"]}]}"#,
        )
        .expect("schema");
        let direct = Direct::new(&schema);
        for (i, c) in [None, Some("x".to_string()), Some(String::new())]
            .into_iter()
            .enumerate()
        {
            let v = Shuffled {
                c,
                a: -(i as i64) * 1_000_000_007,
                b: (0..i as i32).collect(),
            };
            let mut fast = Vec::new();
            direct.write(&v, &mut fast).expect("writes");
            assert_eq!(
                fast,
                general(&schema, &v),
                "fields out of the schema's order"
            );
        }
    }

    #[test]
    fn orders_write_byte_for_byte_without_the_extra_field() {
        let full = Schema::parse_str(SCHEMA).expect("schema");
        let Schema::Record(r) = &full else {
            panic!("a record")
        };
        let mut r = r.clone();
        r.fields.retain(|f| f.name != "extra");
        r.lookup = r
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        let schema = Schema::Record(r);
        let direct = Direct::new(&schema);
        for i in 0..50 {
            let o = order(i);
            let mut fast = Vec::new();
            direct.write(&o, &mut fast).expect("writes");
            // Map entries come in the HashMap's order on either side:
            // compared as apache-avro reads them.
            let read =
                |b: &[u8]| apache_avro::from_avro_datum(&schema, &mut &b[..], None).expect("reads");
            assert_eq!(read(&fast), read(&general(&schema, &o)), "order {i}");
            assert_eq!(direct.read::<Order>(&fast).expect("reads back"), o);
        }
    }

    #[test]
    fn nulls_are_told_apart_without_serializing() {
        assert!(is_null(&None::<Order>));
        assert!(is_null(&()));
        assert!(!is_null(&Some(order(1))));
        assert!(!is_null(&order(2)));
        assert!(!is_null(&0i64));
    }
}
