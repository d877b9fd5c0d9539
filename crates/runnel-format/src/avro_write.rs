//! Rows written straight as Avro bytes: the writer's schema compiled once
//! into a [`RowWriter`], then each row walked against it, with no
//! apache-avro `Value` tree and no per-record schema resolution (the
//! per-record path of every query writing AVRO).
//!
//! It writes what `avro::record_value`/`avro::to_avro` and apache-avro's
//! encoder write (a property test below checks it), and gives up —
//! `Err(Fallback)` — on anything that path would refuse, so the codec
//! calls that path for its error message. Recursive types are left to
//! it too (`compile` gives `None`).

use apache_avro::schema::{Name, RecordSchema, Schema};

use crate::avro::{big_endian, deref, Names};
use crate::types::Value;

/// The row needs the general path (it reports why).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Fallback;

type Write = Result<(), Fallback>;

#[derive(Debug)]
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    String,
    Enum(Vec<String>),
    Bytes,
    Fixed(usize),
    Decimal {
        fixed: Option<usize>,
        scale: u32,
    },
    Date,
    TimeMillis,
    TimeMicros,
    /// `timestamp-millis` and `local-timestamp-millis`.
    TimestampMillis,
    TimestampMicros,
    Array(Box<Node>),
    Map(Box<Node>),
    Record(Vec<Field>),
    /// A union: its null branch, its one non-null branch (`None` when it
    /// has several: only NULL can be written).
    Union {
        null: Option<usize>,
        value: Option<(usize, Box<Node>)>,
    },
    /// A type no SQL value is written as (the general path refuses).
    Refused,
}

#[derive(Debug)]
struct Field {
    name: String,
    node: Node,
    /// The field's default, encoded, for a row or struct without it
    /// (`None`: no default, or one that does not encode).
    default: Option<Vec<u8>>,
    has_default: bool,
}

/// A compiled writer of one schema for the rows of a codec.
#[derive(Debug)]
pub(crate) struct RowWriter {
    root: Root,
}

#[derive(Debug)]
enum Root {
    /// The columns are the record's fields: per field, the column that
    /// fills it (found by name as `avro::record_value` finds it).
    Wrapped(Vec<Field>, Vec<Option<usize>>),
    Single(Node),
}

impl RowWriter {
    /// The writer of `schema` for rows of columns named `columns`
    /// (`wrap`: the record's fields are the columns), or `None` when the
    /// schema is recursive.
    pub(crate) fn compile(
        schema: &Schema,
        names: &Names<'_>,
        columns: &[&str],
        wrap: bool,
    ) -> Option<RowWriter> {
        let mut stack = Vec::new();
        let root = if wrap {
            let Schema::Record(r) = deref(schema, names) else {
                return None;
            };
            let fields = fields(r, names, &mut stack)?;
            let sources =
                r.fields
                    .iter()
                    .map(|f| {
                        columns.iter().position(|c| *c == f.name).or_else(|| {
                            columns.iter().position(|c| c.eq_ignore_ascii_case(&f.name))
                        })
                    })
                    .collect();
            Root::Wrapped(fields, sources)
        } else {
            Root::Single(node(schema, names, &mut stack)?)
        };
        Some(RowWriter { root })
    }

    /// Appends `row` (the codec's columns, in order) to `out`.
    pub(crate) fn write(&self, row: &[Value], out: &mut Vec<u8>) -> Write {
        match &self.root {
            Root::Wrapped(fields, sources) => {
                for (f, source) in fields.iter().zip(sources) {
                    match source.and_then(|j| row.get(j)) {
                        Some(v) => f.node.write(v, out)?,
                        None => f.write_default(out)?,
                    }
                }
                Ok(())
            }
            Root::Single(n) => n.write(row.first().unwrap_or(&Value::Null), out),
        }
    }
}

fn fields(r: &RecordSchema, names: &Names<'_>, stack: &mut Vec<Name>) -> Option<Vec<Field>> {
    stack.push(r.name.clone());
    let out = r
        .fields
        .iter()
        .map(|f| {
            Some(Field {
                name: f.name.clone(),
                node: node(&f.schema, names, stack)?,
                default: f.default.as_ref().and_then(|d| {
                    let v = apache_avro::types::Value::from(d.clone())
                        .resolve(&f.schema)
                        .ok()?;
                    apache_avro::to_avro_datum(&f.schema, v).ok()
                }),
                has_default: f.default.is_some(),
            })
        })
        .collect();
    stack.pop();
    out
}

fn node(s: &Schema, names: &Names<'_>, stack: &mut Vec<Name>) -> Option<Node> {
    if let Schema::Ref { name } = s {
        if stack.contains(name) {
            return None;
        }
    }
    Some(match deref(s, names) {
        Schema::Null => Node::Null,
        Schema::Boolean => Node::Boolean,
        Schema::Int => Node::Int,
        Schema::Long => Node::Long,
        Schema::Float => Node::Float,
        Schema::Double => Node::Double,
        Schema::String => Node::String,
        Schema::Enum(e) => Node::Enum(e.symbols.clone()),
        Schema::Bytes => Node::Bytes,
        Schema::Fixed(f) => Node::Fixed(f.size),
        Schema::Decimal(d) => Node::Decimal {
            fixed: match &*d.inner {
                Schema::Fixed(f) => Some(f.size),
                _ => None,
            },
            scale: u32::try_from(d.scale).ok()?,
        },
        Schema::Date => Node::Date,
        Schema::TimeMillis => Node::TimeMillis,
        Schema::TimeMicros => Node::TimeMicros,
        Schema::TimestampMillis | Schema::LocalTimestampMillis => Node::TimestampMillis,
        Schema::TimestampMicros => Node::TimestampMicros,
        Schema::Array(a) => Node::Array(Box::new(node(&a.items, names, stack)?)),
        Schema::Map(m) => Node::Map(Box::new(node(&m.types, names, stack)?)),
        Schema::Record(r) => Node::Record(fields(r, names, stack)?),
        Schema::Union(u) => {
            let variants = u.variants();
            let non_null: Vec<usize> = (0..variants.len())
                .filter(|i| variants[*i] != Schema::Null)
                .collect();
            Node::Union {
                null: variants.iter().position(|v| *v == Schema::Null),
                value: match non_null.as_slice() {
                    [i] => Some((*i, Box::new(node(&variants[*i], names, stack)?))),
                    _ => None,
                },
            }
        }
        Schema::Ref { .. } => return None,
        _ => Node::Refused,
    })
}

/// An Avro `long` (the registry client's zig-zag varint).
fn long(n: i64, out: &mut Vec<u8>) {
    runnel_registry_client::wire::write_zigzag(n, out);
}

fn sized(b: &[u8], out: &mut Vec<u8>) {
    long(b.len() as i64, out);
    out.extend_from_slice(b);
}

impl Field {
    fn write_default(&self, out: &mut Vec<u8>) -> Write {
        match (&self.default, self.has_default) {
            (Some(d), _) => {
                out.extend_from_slice(d);
                Ok(())
            }
            (None, true) => Err(Fallback),
            (None, false) => self.node.write(&Value::Null, out),
        }
    }
}

impl Node {
    fn write(&self, v: &Value, out: &mut Vec<u8>) -> Write {
        if let Node::Union { null, value } = self {
            return match (v.is_null(), null, value) {
                (true, Some(i), _) => {
                    long(*i as i64, out);
                    Ok(())
                }
                (false, _, Some((i, n))) => {
                    long(*i as i64, out);
                    n.write(v, out)
                }
                _ => Err(Fallback),
            };
        }
        if v.is_null() {
            return match self {
                Node::Null => Ok(()),
                _ => Err(Fallback),
            };
        }
        match (self, v) {
            (Node::Boolean, Value::Boolean(b)) => out.push(u8::from(*b)),
            (Node::Int, v) => {
                let i = v
                    .as_i64()
                    .and_then(|i| i32::try_from(i).ok())
                    .ok_or(Fallback)?;
                long(i64::from(i), out);
            }
            (Node::Long, v) => long(v.as_i64().ok_or(Fallback)?, out),
            (Node::Double, v) => out.extend_from_slice(&v.as_f64().ok_or(Fallback)?.to_le_bytes()),
            (Node::Float, v) => {
                out.extend_from_slice(&(v.as_f64().ok_or(Fallback)? as f32).to_le_bytes());
            }
            (Node::String, Value::String(s)) => sized(s.as_bytes(), out),
            (Node::String, other) => sized(other.to_string().as_bytes(), out),
            (Node::Enum(symbols), Value::String(s)) => {
                let i = symbols.iter().position(|x| x == s).ok_or(Fallback)?;
                long(i as i64, out);
            }
            (Node::Bytes, Value::Bytes(b)) => sized(b, out),
            (Node::Fixed(size), Value::Bytes(b)) if b.len() == *size => out.extend_from_slice(b),
            (Node::Decimal { fixed, scale }, v) => {
                let bytes = big_endian(&v.as_decimal().ok_or(Fallback)?, *scale);
                match fixed {
                    Some(size) => {
                        if bytes.len() > *size {
                            return Err(Fallback);
                        }
                        let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
                            0xff
                        } else {
                            0
                        };
                        out.resize(out.len() + size - bytes.len(), fill);
                        out.extend_from_slice(&bytes);
                    }
                    None => sized(&bytes, out),
                }
            }
            (Node::Date, Value::Date(d)) => long(i64::from(*d), out),
            (Node::TimeMillis, Value::Time(t)) => {
                long(i64::from(i32::try_from(*t).map_err(|_| Fallback)?), out);
            }
            (Node::TimeMicros, Value::Time(t)) => long(t.saturating_mul(1000), out),
            (Node::TimestampMillis, Value::Timestamp(t)) => long(*t, out),
            (Node::TimestampMicros, Value::Timestamp(t)) => long(t.saturating_mul(1000), out),
            (Node::Array(item), Value::Array(items)) => {
                if !items.is_empty() {
                    long(items.len() as i64, out);
                    for x in items {
                        item.write(x, out)?;
                    }
                }
                out.push(0);
            }
            (Node::Map(value), Value::Map(entries)) => {
                if !entries.is_empty() {
                    long(entries.len() as i64, out);
                    for (k, x) in entries {
                        match k {
                            Value::String(s) => sized(s.as_bytes(), out),
                            other => sized(other.to_string().as_bytes(), out),
                        }
                        value.write(x, out)?;
                    }
                }
                out.push(0);
            }
            (Node::Record(fields), Value::Struct(values)) => {
                for f in fields {
                    let found = values
                        .iter()
                        .find(|(n, _)| *n == f.name)
                        .or_else(|| values.iter().find(|(n, _)| n.eq_ignore_ascii_case(&f.name)));
                    match found {
                        Some((_, x)) => f.node.write(x, out)?,
                        None => f.write_default(out)?,
                    }
                }
            }
            _ => return Err(Fallback),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::{names_in, record_value, to_avro};
    use crate::avro_read::tests::{columns_of, direct};
    use crate::avro_testgen::{schema_json, value, writer_type, Rng, T};
    use proptest::prelude::*;
    use serde_json::json;

    /// The general path's bytes for `row`.
    fn general(schema: &Schema, row: &[Value], columns: &[&str], wrap: bool) -> Option<Vec<u8>> {
        let names = names_in([schema]);
        let v = if wrap {
            let Schema::Record(r) = schema else {
                return None;
            };
            let named: Vec<(String, Value)> = columns
                .iter()
                .map(|c| c.to_string())
                .zip(row.iter().cloned())
                .collect();
            record_value(r, &named, &names).ok()?
        } else {
            to_avro(row.first().unwrap_or(&Value::Null), schema, &names).ok()?
        };
        apache_avro::to_avro_datum(schema, v).ok()
    }

    fn written(schema: &Schema, row: &[Value], columns: &[&str], wrap: bool) -> Option<Vec<u8>> {
        let names = names_in([schema]);
        let w = RowWriter::compile(schema, &names, columns, wrap).expect("a writer");
        let mut out = Vec::new();
        w.write(row, &mut out).ok().map(|()| out)
    }

    /// Both byte strings as apache-avro reads them (map entries are
    /// written in the row's order by one and a hash order by the other).
    fn same(schema: &Schema, a: &[u8], b: &[u8]) -> bool {
        let read = |x: &[u8]| apache_avro::from_avro_datum(schema, &mut &x[..], None).ok();
        read(a).is_some() && read(a) == read(b)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Rows read from random records, written back with the same
        /// schema: what the general path writes, field for field.
        #[test]
        fn a_writer_writes_what_the_general_path_writes(
            fields in prop::collection::vec(writer_type(), 1..6),
            keep in prop::collection::vec(any::<bool>(), 1..6),
            seed in any::<u64>(),
        ) {
            let t = T::Record(fields);
            let schema = Schema::parse(&schema_json(&t, &mut 0)).expect("schema");
            let bytes = apache_avro::to_avro_datum(&schema, value(&t, &mut Rng(seed))).expect("encode");
            let columns = columns_of(&schema, &keep);
            let row = direct(&schema, &bytes, &columns, true).expect("plan").expect("row");
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            let fast = written(&schema, &row, &names, true);
            let slow = general(&schema, &row, &names, true);
            match (&fast, &slow) {
                (Some(f), Some(s)) => prop_assert!(same(&schema, f, s), "{f:?} vs {s:?}"),
                // The writer gives up exactly where the general path refuses.
                _ => prop_assert_eq!(fast.is_some(), slow.is_some()),
            }
        }
    }

    #[test]
    fn defaults_fill_fields_no_column_names_and_nulls_need_a_null_branch() {
        let schema = Schema::parse(&json!({"type": "record", "name": "R", "fields": [
            {"name": "a", "type": "long"},
            {"name": "b", "type": "string", "default": "none"},
            {"name": "c", "type": ["null", "int"], "default": null},
        ]}))
        .expect("schema");
        let row = [Value::BigInt(7)];
        let fast = written(&schema, &row, &["A"], true).expect("written");
        assert_eq!(Some(fast.clone()), general(&schema, &row, &["A"], true));
        assert_eq!(fast, vec![14, 8, b'n', b'o', b'n', b'e', 0]);
        assert_eq!(
            written(&schema, &[Value::Null], &["A"], true),
            None,
            "a NULL for a long"
        );
        let big = [Value::BigInt(1), Value::Null, Value::BigInt(1 << 40)];
        assert_eq!(
            written(&schema, &big, &["A", "B", "C"], true),
            None,
            "an INT overflowing"
        );
        assert_eq!(general(&schema, &big, &["A", "B", "C"], true), None);
    }
}
