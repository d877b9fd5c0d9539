//! Avro binary read straight into serde types, driven by the writer's
//! schema: records as maps of field names (serde's derive picks the fields
//! it knows and ignores the rest), unions by their branch, enums by symbol
//! — no apache-avro `Value` tree between the bytes and the type.
//!
//! Used when a record's writer schema is the serde's own (the common
//! case); a different writer schema goes through apache-avro's schema
//! resolution, which fills the reader's defaults.

use std::collections::HashMap;
use std::fmt;

use apache_avro::schema::{Name, Schema};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

/// A record that does not decode as the type.
#[derive(Debug)]
pub(crate) struct DeError(String);

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

fn fail<T>(msg: impl Into<String>) -> Result<T, DeError> {
    Err(DeError(msg.into()))
}

/// A writer schema with its named types by full name.
pub(crate) struct Direct {
    schema: Schema,
    names: HashMap<Name, Schema>,
}

impl Direct {
    pub(crate) fn new(schema: &Schema) -> Direct {
        fn walk(s: &Schema, out: &mut HashMap<Name, Schema>) {
            match s {
                Schema::Record(r) if out.insert(r.name.clone(), s.clone()).is_none() => {
                    r.fields.iter().for_each(|f| walk(&f.schema, out));
                }
                Schema::Enum(e) => {
                    out.insert(e.name.clone(), s.clone());
                }
                Schema::Fixed(f) => {
                    out.insert(f.name.clone(), s.clone());
                }
                Schema::Array(a) => walk(&a.items, out),
                Schema::Map(m) => walk(&m.types, out),
                Schema::Union(u) => u.variants().iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        let mut names = HashMap::new();
        walk(schema, &mut names);
        Direct {
            schema: schema.clone(),
            names,
        }
    }

    pub(crate) fn schema(&self) -> &Schema {
        &self.schema
    }

    pub(crate) fn names(&self) -> &HashMap<Name, Schema> {
        &self.names
    }

    /// Decodes one datum as `T`.
    pub(crate) fn read<T: de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, DeError> {
        let mut input = bytes;
        T::deserialize(De {
            input: &mut input,
            schema: &self.schema,
            names: &self.names,
        })
    }
}

struct De<'a, 'de, 's> {
    input: &'a mut &'de [u8],
    schema: &'s Schema,
    names: &'s HashMap<Name, Schema>,
}

fn byte(input: &mut &[u8]) -> Result<u8, DeError> {
    let (b, rest) = input
        .split_first()
        .ok_or_else(|| DeError("the record ends early".into()))?;
    *input = rest;
    Ok(*b)
}

fn long(input: &mut &[u8]) -> Result<i64, DeError> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = byte(input)?;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((n >> 1) as i64 ^ -((n & 1) as i64));
        }
    }
    fail("a varint longer than 10 bytes")
}

fn int(input: &mut &[u8]) -> Result<i32, DeError> {
    let n = long(input)?;
    i32::try_from(n).map_err(|_| DeError(format!("{n} does not fit an Avro int")))
}

fn take<'de>(input: &mut &'de [u8], n: usize) -> Result<&'de [u8], DeError> {
    if n > input.len() {
        return fail(format!(
            "a value of {n} bytes where {} are left",
            input.len()
        ));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn sized<'de>(input: &mut &'de [u8]) -> Result<&'de [u8], DeError> {
    let n = long(input)?;
    let n = usize::try_from(n).map_err(|_| DeError(format!("a negative length {n}")))?;
    take(input, n)
}

fn string<'de>(input: &mut &'de [u8]) -> Result<&'de str, DeError> {
    std::str::from_utf8(sized(input)?)
        .map_err(|e| DeError(format!("a string that is not UTF-8: {e}")))
}

/// The item count of the next array or map block (0 ends it).
fn block(input: &mut &[u8]) -> Result<usize, DeError> {
    let n = long(input)?;
    if n < 0 {
        long(input)?;
    }
    usize::try_from(n.unsigned_abs()).map_err(|_| DeError(format!("a block of {n} items")))
}

impl<'a, 'de, 's> De<'a, 'de, 's> {
    fn at<'b>(&'b mut self, schema: &'s Schema) -> De<'b, 'de, 's> {
        De {
            input: self.input,
            schema,
            names: self.names,
        }
    }

    /// The schema itself, named types followed.
    fn resolved(&self) -> Result<&'s Schema, DeError> {
        match self.schema {
            Schema::Ref { name } => self
                .names
                .get(name)
                .ok_or_else(|| DeError(format!("unknown named type {name}"))),
            s => Ok(s),
        }
    }

    /// A union's branch, read from the input.
    fn branch(&mut self, variants: &'s [Schema]) -> Result<&'s Schema, DeError> {
        let i = long(self.input)?;
        usize::try_from(i)
            .ok()
            .and_then(|i| variants.get(i))
            .ok_or_else(|| DeError(format!("union branch {i} of {}", variants.len())))
    }
}

impl<'de> de::Deserializer<'de> for De<'_, 'de, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, DeError> {
        let schema = self.resolved()?;
        match schema {
            Schema::Null => visitor.visit_unit(),
            Schema::Boolean => match byte(self.input)? {
                0 => visitor.visit_bool(false),
                1 => visitor.visit_bool(true),
                b => fail(format!("{b} is not an Avro boolean")),
            },
            Schema::Int | Schema::Date | Schema::TimeMillis => visitor.visit_i32(int(self.input)?),
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => visitor.visit_i64(long(self.input)?),
            Schema::Float => {
                let b = take(self.input, 4)?;
                visitor.visit_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            Schema::Double => {
                let b = take(self.input, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                visitor.visit_f64(f64::from_le_bytes(a))
            }
            Schema::String | Schema::Uuid => visitor.visit_borrowed_str(string(self.input)?),
            Schema::Bytes | Schema::BigDecimal => visitor.visit_borrowed_bytes(sized(self.input)?),
            Schema::Fixed(f) => visitor.visit_borrowed_bytes(take(self.input, f.size)?),
            Schema::Duration => visitor.visit_borrowed_bytes(take(self.input, 12)?),
            Schema::Decimal(d) => match &*d.inner {
                Schema::Fixed(f) => visitor.visit_borrowed_bytes(take(self.input, f.size)?),
                _ => visitor.visit_borrowed_bytes(sized(self.input)?),
            },
            Schema::Enum(e) => {
                let i = long(self.input)?;
                let symbol = usize::try_from(i)
                    .ok()
                    .and_then(|i| e.symbols.get(i))
                    .ok_or_else(|| DeError(format!("enum symbol {i} of {}", e.symbols.len())))?;
                visitor.visit_str(symbol)
            }
            Schema::Union(u) => {
                let branch = self.branch(u.variants())?;
                match branch {
                    Schema::Null => visitor.visit_none(),
                    b => self.at(b).deserialize_any(visitor),
                }
            }
            Schema::Array(a) => visitor.visit_seq(Seq {
                de: self.at(&a.items),
                left: 0,
            }),
            Schema::Map(m) => visitor.visit_map(Entries {
                de: self.at(&m.types),
                left: 0,
            }),
            Schema::Record(r) => visitor.visit_map(Fields {
                input: self.input,
                names: self.names,
                fields: r.fields.iter(),
                current: None,
            }),
            Schema::Ref { name } => fail(format!("unknown named type {name}")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, DeError> {
        match self.resolved()? {
            Schema::Union(u) => match self.branch(u.variants())? {
                Schema::Null => visitor.visit_none(),
                b => visitor.visit_some(self.at(b)),
            },
            Schema::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.resolved()? {
            Schema::Enum(e) => {
                let i = long(self.input)?;
                let symbol = usize::try_from(i)
                    .ok()
                    .and_then(|i| e.symbols.get(i))
                    .ok_or_else(|| DeError(format!("enum symbol {i} of {}", e.symbols.len())))?;
                visitor.visit_enum(IntoDeserializer::<DeError>::into_deserializer(
                    symbol.as_str(),
                ))
            }
            Schema::Union(u) => {
                let b = self.branch(u.variants())?;
                self.at(b).deserialize_enum(name, variants, visitor)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Bytes read as a sequence of u8 (a `Vec<u8>` field).
        let bytes = match self.resolved()? {
            Schema::Bytes | Schema::BigDecimal => sized(self.input)?,
            Schema::Fixed(f) => take(self.input, f.size)?,
            Schema::Decimal(d) => match &*d.inner {
                Schema::Fixed(f) => take(self.input, f.size)?,
                _ => sized(self.input)?,
            },
            _ => return self.deserialize_any(visitor),
        };
        visitor.visit_seq(de::value::SeqDeserializer::<_, DeError>::new(
            bytes.iter().copied(),
        ))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Decoded and dropped: the input moves past it.
        self.deserialize_any(de::IgnoredAny)?;
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple
        tuple_struct map struct identifier
    }
}

/// An array's items, block by block.
struct Seq<'a, 'de, 's> {
    de: De<'a, 'de, 's>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, 'de, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        if self.left == 0 {
            self.left = block(self.de.input)?;
            if self.left == 0 {
                return Ok(None);
            }
        }
        self.left -= 1;
        let schema = self.de.schema;
        seed.deserialize(self.de.at(schema)).map(Some)
    }
}

/// A map's entries, block by block.
struct Entries<'a, 'de, 's> {
    de: De<'a, 'de, 's>,
    left: usize,
}

impl<'de> de::MapAccess<'de> for Entries<'_, 'de, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        if self.left == 0 {
            self.left = block(self.de.input)?;
            if self.left == 0 {
                return Ok(None);
            }
        }
        self.left -= 1;
        let key = string(self.de.input)?;
        seed.deserialize(de::value::BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let schema = self.de.schema;
        seed.deserialize(self.de.at(schema))
    }
}

/// A record's fields in the writer's order, as a map of field names.
struct Fields<'a, 'de, 's> {
    input: &'a mut &'de [u8],
    names: &'s HashMap<Name, Schema>,
    fields: std::slice::Iter<'s, apache_avro::schema::RecordField>,
    current: Option<&'s Schema>,
}

impl<'de, 's> de::MapAccess<'de> for Fields<'_, 'de, 's> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.fields.next() {
            None => Ok(None),
            Some(f) => {
                self.current = Some(&f.schema);
                seed.deserialize(de::value::StrDeserializer::<DeError>::new(&f.name))
                    .map(Some)
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let schema = self
            .current
            .take()
            .ok_or_else(|| DeError("a field value asked before its name".into()))?;
        seed.deserialize(De {
            input: self.input,
            schema,
            names: self.names,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) enum Status {
        Open,
        Closed,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Line {
        sku: String,
        qty: i32,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Wrapper(i64);

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Order {
        id: i64,
        customer: Option<String>,
        total: f64,
        ratio: f32,
        paid: bool,
        status: Status,
        lines: Vec<Line>,
        tags: HashMap<String, i64>,
        note: Option<Line>,
        at: Wrapper,
    }

    pub(crate) const SCHEMA: &str = r#"{"type": "record", "name": "Order", "namespace": "shop", "fields": [
        {"name": "id", "type": "long"},
        {"name": "customer", "type": ["null", "string"], "default": null},
        {"name": "total", "type": "double"},
        {"name": "ratio", "type": "float"},
        {"name": "paid", "type": "boolean"},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["Open", "Closed"]}},
        {"name": "lines", "type": {"type": "array", "items": {"type": "record", "name": "Line", "fields": [
            {"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}]}}},
        {"name": "tags", "type": {"type": "map", "values": "long"}},
        {"name": "note", "type": ["null", "Line"], "default": null},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "extra", "type": ["null", {"type": "array", "items": "Line"}], "default": null}
    ]}"#;

    pub(crate) fn order(i: i64) -> Order {
        Order {
            id: i * 7919,
            customer: (i % 3 != 0).then(|| format!("c{i}")),
            total: i as f64 / 3.0,
            ratio: i as f32 / 7.0,
            paid: i % 2 == 0,
            status: if i % 2 == 0 {
                Status::Open
            } else {
                Status::Closed
            },
            lines: (0..i % 4)
                .map(|j| Line {
                    sku: format!("s{j}"),
                    qty: (j * i) as i32 - 3,
                })
                .collect(),
            tags: (0..i % 3).map(|j| (format!("t{j}"), j - i)).collect(),
            note: (i % 2 == 1).then(|| Line {
                sku: "n".into(),
                qty: -1,
            }),
            at: Wrapper(1_700_000_000_000 + i),
        }
    }

    /// The record as apache-avro writes it, with the extra field (which
    /// the type does not have) filled.
    pub(crate) fn encoded(schema: &Schema, o: &Order, extra: bool) -> Vec<u8> {
        use apache_avro::types::Value as Avro;
        let v = apache_avro::to_value(o).expect("value");
        let Avro::Record(mut fields) = v else {
            panic!("a record")
        };
        let line = Avro::Record(vec![
            ("sku".into(), Avro::String("x".into())),
            ("qty".into(), Avro::Int(5)),
        ]);
        fields.push((
            "extra".into(),
            if extra {
                Avro::Union(1, Box::new(Avro::Array(vec![line])))
            } else {
                Avro::Union(0, Box::new(Avro::Null))
            },
        ));
        let v = Avro::Record(fields).resolve(schema).expect("resolves");
        apache_avro::to_avro_datum(schema, v).expect("encodes")
    }

    #[test]
    fn records_decode_as_apache_avro_decodes_them() {
        let schema = Schema::parse_str(SCHEMA).expect("schema");
        let direct = Direct::new(&schema);
        for i in 0..50 {
            let o = order(i);
            let bytes = encoded(&schema, &o, i % 2 == 0);
            let general: Order = apache_avro::from_value(
                &apache_avro::from_avro_datum(&schema, &mut &bytes[..], None).expect("reads"),
            )
            .expect("general");
            let fast: Order = direct.read(&bytes).expect("direct");
            assert_eq!(fast, general);
            assert_eq!(fast, o);
        }
    }

    #[test]
    fn bad_bytes_are_errors() {
        let schema = Schema::parse_str(SCHEMA).expect("schema");
        let direct = Direct::new(&schema);
        let bytes = encoded(&schema, &order(5), true);
        for cut in 0..bytes.len() {
            assert!(direct.read::<Order>(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(
            direct.read::<Order>(&[0xff; 11]).is_err(),
            "an endless varint"
        );
    }

    #[test]
    fn bytes_read_as_a_vec_of_u8() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct Blob {
            b: Vec<u8>,
            f: Vec<u8>,
        }
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "Blob", "fields": [{"name": "b", "type": "bytes"},
                {"name": "f", "type": {"type": "fixed", "name": "F", "size": 2}}]}"#,
        )
        .expect("schema");
        let blob: Blob = Direct::new(&schema)
            .read(&[6, 1, 2, 3, 9, 8])
            .expect("reads");
        assert_eq!(
            blob,
            Blob {
                b: vec![1, 2, 3],
                f: vec![9, 8]
            }
        );
    }
}
