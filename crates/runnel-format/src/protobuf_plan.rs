//! PROTOBUF rows read and written without `DynamicMessage`: a plan
//! compiled once per message descriptor (the writer's schema) decodes the
//! wire format straight into the columns' values, skipping fields no
//! column reads, and encodes rows straight to bytes.
//!
//! A plan covers columns whose fields are singular scalars (numbers,
//! `bool`, `string`, `bytes`, enums; proto3 `optional` or not) read as the
//! column types the general path gives them. Anything else — nested
//! messages, wrappers, well-known types, repeated fields, maps, `oneof`s
//! of several fields, other column types — compiles to no plan, and the
//! general path (`protobuf::decode` / `protobuf::message`) is used. A
//! plan that meets anything it does not handle exactly as the general
//! path would (a wire type it does not expect, an integer the column
//! cannot hold, a truncated message, invalid UTF-8…) gives up on that
//! record with `None`, and the caller runs the general path, which then
//! decides the value or the error. So a plan's answer, whenever it gives
//! one, is the general path's (property tests in this module check it).
//!
//! One leniency: fields no column reads are skipped by their wire type
//! (strings still checked as UTF-8), so a malformed nested message in a
//! field no column reads is not noticed, where the general path refuses
//! the whole record.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use crate::format::Row;
use crate::schema::Column;
use crate::types::{SqlType, Value};

/// A scalar field's type on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Int32,
    Sint32,
    Sfixed32,
    Int64,
    Sint64,
    Sfixed64,
    Uint32,
    Fixed32,
    Uint64,
    Fixed64,
    Bool,
    Float,
    Double,
    String,
    Bytes,
    Enum,
}

impl Scalar {
    fn of(kind: &Kind) -> Option<Scalar> {
        Some(match kind {
            Kind::Int32 => Scalar::Int32,
            Kind::Sint32 => Scalar::Sint32,
            Kind::Sfixed32 => Scalar::Sfixed32,
            Kind::Int64 => Scalar::Int64,
            Kind::Sint64 => Scalar::Sint64,
            Kind::Sfixed64 => Scalar::Sfixed64,
            Kind::Uint32 => Scalar::Uint32,
            Kind::Fixed32 => Scalar::Fixed32,
            Kind::Uint64 => Scalar::Uint64,
            Kind::Fixed64 => Scalar::Fixed64,
            Kind::Bool => Scalar::Bool,
            Kind::Float => Scalar::Float,
            Kind::Double => Scalar::Double,
            Kind::String => Scalar::String,
            Kind::Bytes => Scalar::Bytes,
            Kind::Enum(_) => Scalar::Enum,
            Kind::Message(_) => return None,
        })
    }

    /// The wire type a value of this type is written with.
    fn wire_type(self) -> u8 {
        match self {
            Scalar::Fixed64 | Scalar::Sfixed64 | Scalar::Double => 1,
            Scalar::String | Scalar::Bytes => 2,
            Scalar::Fixed32 | Scalar::Sfixed32 | Scalar::Float => 5,
            _ => 0,
        }
    }

    /// Whether a column of `ty` reads this type as the general path does
    /// through JSON (and the plan knows how).
    fn reads_as(self, ty: &SqlType) -> bool {
        match self {
            Scalar::Bool => *ty == SqlType::Boolean,
            Scalar::Float | Scalar::Double => *ty == SqlType::Double,
            Scalar::String | Scalar::Enum => *ty == SqlType::String,
            Scalar::Bytes => *ty == SqlType::Bytes,
            _ => matches!(ty, SqlType::Int | SqlType::BigInt),
        }
    }
}

/// What a field number is in a plan.
#[derive(Debug, Clone)]
struct FieldRead {
    /// The wire types the general path accepts for the field (a second
    /// one for packable repeated fields), `None` for a field it decodes
    /// whatever its wire type says (an unknown field).
    wire: Option<(u8, u8)>,
    /// For a field columns read: its type and the columns.
    read: Option<(Scalar, Vec<usize>)>,
    /// A string field: checked as UTF-8 even when no column reads it.
    utf8: bool,
    /// An enum's values, by number.
    enum_names: Vec<(i32, String)>,
}

/// How a message of one descriptor is read as a row of columns.
#[derive(Debug, Clone)]
pub(crate) struct ReadPlan {
    /// Each column's value when its field is absent.
    defaults: Row,
    /// The message's fields, by number (sorted).
    fields: Vec<(u32, FieldRead)>,
    /// Column types (Int or BigInt for integers).
    types: Vec<SqlType>,
}

/// The field a column names: exactly, else (`any_case`) the first whose
/// name is equal ignoring ASCII case, in the message's order.
fn field_named(desc: &MessageDescriptor, name: &str, any_case: bool) -> Option<FieldDescriptor> {
    desc.get_field_by_name(name).or_else(|| {
        any_case
            .then(|| desc.fields().find(|f| f.name().eq_ignore_ascii_case(name)))
            .flatten()
    })
}

/// Whether setting `f` could clear another field (a `oneof` of several).
fn in_shared_oneof(f: &FieldDescriptor) -> bool {
    f.containing_oneof().is_some_and(|o| o.fields().len() > 1)
}

fn enum_names(kind: &Kind) -> Vec<(i32, String)> {
    let Some(e) = kind.as_enum() else {
        return Vec::new();
    };
    let mut numbers: Vec<i32> = e.values().map(|v| v.number()).collect();
    numbers.sort_unstable();
    numbers.dedup();
    // Each number named as the general path names it (aliases too).
    numbers
        .into_iter()
        .filter_map(|n| e.get_value(n).map(|v| (n, v.name().to_string())))
        .collect()
}

impl ReadPlan {
    /// The plan for reading messages of `desc` as rows of `columns`
    /// (each the field of its name, exactly or, with `any_case`, ignoring
    /// case), or `None` when some column needs the general path.
    pub(crate) fn compile(
        desc: &MessageDescriptor,
        columns: &[Column],
        any_case: bool,
    ) -> Option<ReadPlan> {
        let mut fields: Vec<(u32, FieldRead)> = desc
            .fields()
            .map(|f| {
                let kind = f.kind();
                let wire = match Scalar::of(&kind) {
                    _ if f.is_map() => (2, 2),
                    Some(s) if f.is_list() && s.wire_type() != 2 => (s.wire_type(), 2),
                    Some(s) => (s.wire_type(), s.wire_type()),
                    None if f.is_group() => return None,
                    None => (2, 2),
                };
                Some((
                    f.number(),
                    FieldRead {
                        wire: Some(wire),
                        read: None,
                        utf8: kind == Kind::String,
                        enum_names: Vec::new(),
                    },
                ))
            })
            .collect::<Option<_>>()?;
        fields.sort_by_key(|(n, _)| *n);
        let mut defaults = Vec::with_capacity(columns.len());
        for (i, c) in columns.iter().enumerate() {
            let Some(f) = field_named(desc, &c.name, any_case) else {
                defaults.push(Value::Null);
                continue;
            };
            let kind = f.kind();
            let scalar = Scalar::of(&kind)?;
            if f.is_list() || f.is_map() || in_shared_oneof(&f) || !scalar.reads_as(&c.ty) {
                return None;
            }
            defaults.push(if f.supports_presence() {
                Value::Null
            } else {
                // The general path's own reading of the default.
                let j = crate::protobuf::value_json(&f.default_value(), &kind).ok()?;
                crate::json::from_json(&c.ty, &j).ok()?
            });
            let at = fields.binary_search_by_key(&f.number(), |(n, _)| *n).ok()?;
            let entry = &mut fields[at].1;
            match &mut entry.read {
                // Columns sharing a field share its value: of one type.
                Some((_, cols)) if columns[cols[0]].ty == c.ty => cols.push(i),
                Some(_) => return None,
                None => entry.read = Some((scalar, vec![i])),
            }
            if scalar == Scalar::Enum {
                entry.enum_names = enum_names(&kind);
            }
        }
        Some(ReadPlan {
            defaults,
            fields,
            types: columns.iter().map(|c| c.ty.clone()).collect(),
        })
    }

    /// A message read as a row; `None` when the general path must decide.
    #[cfg(test)]
    pub(crate) fn read(&self, bytes: &[u8]) -> Option<Row> {
        self.read_padded(bytes, (0, 0, 0), &[])
    }

    /// [`Self::read`] into a row with `prefix` leading NULLs and `suffix`
    /// trailing ones, with room for `spare` more values; columns marked
    /// in `unread` may be left NULL.
    pub(crate) fn read_padded(
        &self,
        bytes: &[u8],
        (prefix, suffix, spare): (usize, usize, usize),
        unread: &[bool],
    ) -> Option<Row> {
        let mut row = Vec::with_capacity(prefix + self.defaults.len() + suffix + spare);
        row.resize_with(prefix, || Value::Null);
        row.extend(self.defaults.iter().cloned());
        row.resize_with(prefix + self.defaults.len() + suffix, || Value::Null);
        let mut r = Reader { b: bytes, at: 0 };
        while r.at < bytes.len() {
            // A key past 32 bits, or of field 0, is the general path's error.
            let key = u32::try_from(r.varint()?).ok()?;
            let number = Some(key >> 3).filter(|n| *n != 0)?;
            let wire = (key & 7) as u8;
            let field = self
                .fields
                .binary_search_by_key(&number, |(n, _)| *n)
                .ok()
                .map(|i| &self.fields[i].1);
            let Some(field) = field else {
                r.skip(wire)?;
                continue;
            };
            if let Some((a, b)) = field.wire {
                if wire != a && wire != b {
                    return None;
                }
            }
            let Some((scalar, cols)) = &field.read else {
                if field.utf8 && wire == 2 {
                    std::str::from_utf8(r.delimited()?).ok()?;
                } else {
                    r.skip(wire)?;
                }
                continue;
            };
            let skip = cols
                .iter()
                .all(|c| unread.get(*c).copied().unwrap_or(false));
            let v = self.scalar(&mut r, *scalar, field, cols[0], skip)?;
            for c in cols {
                row[prefix + c] = v.clone();
            }
        }
        Some(row)
    }

    /// One value of a field the columns read, as column `col`'s type.
    fn scalar(
        &self,
        r: &mut Reader<'_>,
        scalar: Scalar,
        field: &FieldRead,
        col: usize,
        skip: bool,
    ) -> Option<Value> {
        let int = |n: i64| -> Option<Value> {
            match self.types.get(col)? {
                SqlType::Int => i32::try_from(n).ok().map(Value::Int),
                _ => Some(Value::BigInt(n)),
            }
        };
        let double = |d: f64| {
            // serde_json has no number for them: the general path reads NULL.
            if d.is_finite() {
                Value::Double(d)
            } else {
                Value::Null
            }
        };
        Some(match scalar {
            Scalar::Int32 => int(i64::from(r.varint()? as i32))?,
            Scalar::Sint32 => {
                let v = r.varint()? as u32;
                int(i64::from(((v >> 1) as i32) ^ (-((v & 1) as i32))))?
            }
            Scalar::Sfixed32 => int(i64::from(i32::from_le_bytes(r.fixed::<4>()?)))?,
            Scalar::Int64 => int(r.varint()? as i64)?,
            Scalar::Sint64 => {
                let v = r.varint()?;
                int(((v >> 1) as i64) ^ (-((v & 1) as i64)))?
            }
            Scalar::Sfixed64 => int(i64::from_le_bytes(r.fixed::<8>()?))?,
            Scalar::Uint32 => int(i64::from(r.varint()? as u32))?,
            Scalar::Fixed32 => int(i64::from(u32::from_le_bytes(r.fixed::<4>()?)))?,
            Scalar::Uint64 => int(i64::try_from(r.varint()?).ok()?)?,
            Scalar::Fixed64 => int(i64::try_from(u64::from_le_bytes(r.fixed::<8>()?)).ok()?)?,
            Scalar::Bool => Value::Boolean(r.varint()? != 0),
            Scalar::Float => double(f64::from(f32::from_le_bytes(r.fixed::<4>()?))),
            Scalar::Double => double(f64::from_le_bytes(r.fixed::<8>()?)),
            Scalar::String => {
                let text = std::str::from_utf8(r.delimited()?).ok()?;
                if skip {
                    Value::Null
                } else {
                    Value::String(text.to_owned())
                }
            }
            Scalar::Bytes => Value::Bytes(r.delimited()?.to_vec()),
            Scalar::Enum => {
                let n = r.varint()? as i32;
                let names = &field.enum_names;
                Value::String(match names.binary_search_by_key(&n, |(k, _)| *k) {
                    Ok(i) => names[i].1.clone(),
                    Err(_) => n.to_string(),
                })
            }
        })
    }
}

/// A cursor over a message's bytes; every read is `None` past the end.
struct Reader<'b> {
    b: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    #[inline]
    fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let byte = *self.b.get(self.at)?;
            self.at += 1;
            if i == 9 && byte > 1 {
                return None;
            }
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }

    #[inline]
    fn fixed<const N: usize>(&mut self) -> Option<[u8; N]> {
        let bytes = self.b.get(self.at..self.at.checked_add(N)?)?;
        self.at += N;
        bytes.try_into().ok()
    }

    #[inline]
    fn delimited(&mut self) -> Option<&'b [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        let bytes = self.b.get(self.at..self.at.checked_add(len)?)?;
        self.at += len;
        Some(bytes)
    }

    /// Skips a value of wire type `wire` (not groups: the general path
    /// decides those).
    fn skip(&mut self, wire: u8) -> Option<()> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.fixed::<8>().map(|_| ()),
            2 => self.delimited().map(|_| ()),
            5 => self.fixed::<4>().map(|_| ()),
            _ => None,
        }
    }
}

// ---- Writing.

/// One field a plan writes: its key on the wire, its type, the column
/// it takes its value from, and whether a default value is written.
#[derive(Debug, Clone)]
struct FieldWrite {
    key: Vec<u8>,
    scalar: Scalar,
    column: usize,
    presence: bool,
    /// An enum's numbers by name.
    enum_numbers: Vec<(String, i32)>,
}

/// How rows of columns are written as messages of one descriptor.
#[derive(Debug, Clone)]
pub(crate) struct WritePlan {
    /// By field number.
    fields: Vec<FieldWrite>,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl WritePlan {
    /// The plan for writing rows of `columns` (by name: exactly, else the
    /// first column equal ignoring case) as messages of `desc`, or `None`
    /// when some field needs the general path.
    pub(crate) fn compile(desc: &MessageDescriptor, columns: &[Column]) -> Option<WritePlan> {
        let mut fields = Vec::new();
        for f in desc.fields() {
            let column = columns.iter().position(|c| c.name == f.name()).or_else(|| {
                columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(f.name()))
            });
            let Some(column) = column else {
                continue;
            };
            let kind = f.kind();
            let scalar = Scalar::of(&kind)?;
            if f.is_list() || f.is_map() || in_shared_oneof(&f) {
                return None;
            }
            let mut key = Vec::new();
            put_varint(
                &mut key,
                (u64::from(f.number()) << 3) | u64::from(scalar.wire_type()),
            );
            let enum_numbers = if scalar == Scalar::Enum {
                let mut by_name: Vec<(String, i32)> = kind
                    .as_enum()
                    .map(|e| {
                        e.values()
                            .map(|v| (v.name().to_string(), v.number()))
                            .collect()
                    })
                    .unwrap_or_default();
                by_name.sort();
                by_name
            } else {
                Vec::new()
            };
            fields.push((
                f.number(),
                FieldWrite {
                    key,
                    scalar,
                    column,
                    presence: f.supports_presence(),
                    enum_numbers,
                },
            ));
        }
        fields.sort_by_key(|(n, _)| *n);
        Some(WritePlan {
            fields: fields.into_iter().map(|(_, f)| f).collect(),
        })
    }

    /// Appends `row` as a message to `out`; `None` (with `out` partly
    /// written: the caller truncates it) when the general path must
    /// decide.
    pub(crate) fn write(&self, row: &[Value], out: &mut Vec<u8>) -> Option<()> {
        for f in &self.fields {
            let v = row.get(f.column)?;
            if v.is_null() {
                continue;
            }
            let int = || match v {
                Value::Int(i) => Some(i64::from(*i)),
                Value::BigInt(i) => Some(*i),
                _ => None,
            };
            let at = out.len();
            out.extend_from_slice(&f.key);
            // Each arm writes the value and says whether it is the
            // type's default (not written without presence).
            let default = match f.scalar {
                Scalar::Int32 => {
                    let i = i32::try_from(int()?).ok()?;
                    put_varint(out, i64::from(i) as u64);
                    i == 0
                }
                Scalar::Sint32 => {
                    let i = i32::try_from(int()?).ok()?;
                    put_varint(out, u64::from(((i << 1) ^ (i >> 31)) as u32));
                    i == 0
                }
                Scalar::Sfixed32 => {
                    let i = i32::try_from(int()?).ok()?;
                    out.extend_from_slice(&i.to_le_bytes());
                    i == 0
                }
                Scalar::Int64 => {
                    let i = int()?;
                    put_varint(out, i as u64);
                    i == 0
                }
                Scalar::Sint64 => {
                    let i = int()?;
                    put_varint(out, ((i << 1) ^ (i >> 63)) as u64);
                    i == 0
                }
                Scalar::Sfixed64 => {
                    let i = int()?;
                    out.extend_from_slice(&i.to_le_bytes());
                    i == 0
                }
                Scalar::Uint32 => {
                    let i = u32::try_from(int()?).ok()?;
                    put_varint(out, u64::from(i));
                    i == 0
                }
                Scalar::Fixed32 => {
                    let i = u32::try_from(int()?).ok()?;
                    out.extend_from_slice(&i.to_le_bytes());
                    i == 0
                }
                Scalar::Uint64 => {
                    let i = u64::try_from(int()?).ok()?;
                    put_varint(out, i);
                    i == 0
                }
                Scalar::Fixed64 => {
                    let i = u64::try_from(int()?).ok()?;
                    out.extend_from_slice(&i.to_le_bytes());
                    i == 0
                }
                Scalar::Bool => {
                    let Value::Boolean(b) = v else { return None };
                    out.push(u8::from(*b));
                    !*b
                }
                Scalar::Float => {
                    let Value::Double(d) = v else { return None };
                    let x = *d as f32;
                    out.extend_from_slice(&x.to_le_bytes());
                    x == 0.0
                }
                Scalar::Double => {
                    let Value::Double(d) = v else { return None };
                    out.extend_from_slice(&d.to_le_bytes());
                    *d == 0.0
                }
                Scalar::String => {
                    let Value::String(s) = v else { return None };
                    put_varint(out, s.len() as u64);
                    out.extend_from_slice(s.as_bytes());
                    s.is_empty()
                }
                Scalar::Bytes => {
                    let Value::Bytes(b) = v else { return None };
                    put_varint(out, b.len() as u64);
                    out.extend_from_slice(b);
                    b.is_empty()
                }
                Scalar::Enum => {
                    let Value::String(s) = v else { return None };
                    let names = &f.enum_numbers;
                    let i = names
                        .binary_search_by(|(n, _)| n.as_str().cmp(s))
                        .ok()
                        .map(|i| names[i].1)?;
                    put_varint(out, i64::from(i) as u64);
                    i == 0
                }
            };
            if default && !f.presence {
                out.truncate(at);
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protobuf::{decode, encode, message};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    use prost_reflect::{DynamicMessage, MapKey, Value as Pb};
    use runnel_schema::{ParsedSchema, SchemaType};

    /// The field types a random schema draws from: scalars the plans
    /// handle, then what they leave to the general path.
    const TYPES: [&str; 20] = [
        "int32",
        "sint32",
        "sfixed32",
        "int64",
        "sint64",
        "sfixed64",
        "uint32",
        "fixed32",
        "uint64",
        "fixed64",
        "bool",
        "float",
        "double",
        "string",
        "bytes",
        "E",
        "Inner",
        "repeated int64",
        "map<string, int64>",
        "google.protobuf.Int32Value",
    ];

    /// A random message: per field its type (index in `TYPES`), whether
    /// it is `optional`, its number.
    #[derive(Debug, Clone)]
    struct Schema {
        fields: Vec<(usize, bool, u32)>,
    }

    fn schema() -> impl Strategy<Value = Schema> {
        let base = prop_oneof![Just(1u32), Just(14), Just(2040), Just(536_870_900)];
        (
            proptest::collection::vec((0..TYPES.len(), any::<bool>()), 1..6),
            base,
        )
            .prop_map(|(fields, base)| Schema {
                fields: fields
                    .into_iter()
                    .enumerate()
                    .map(|(i, (t, o))| (t, o && t < 16, base + i as u32))
                    .collect(),
            })
    }

    fn text(s: &Schema) -> String {
        let mut t = String::from(
            "syntax = \"proto3\";\npackage t;\nimport \"google/protobuf/wrappers.proto\";\n\
             message M {\n  message Inner { string s = 1; int64 n = 2; }\n  \
             enum E { E0 = 0; E1 = 1; E5 = 5; }\n",
        );
        for (i, (ty, optional, number)) in s.fields.iter().enumerate() {
            let label = if *optional { "optional " } else { "" };
            t.push_str(&format!("  {label}{} f{i} = {number};\n", TYPES[*ty]));
        }
        t.push_str("}\n");
        t
    }

    fn descriptor(s: &Schema) -> MessageDescriptor {
        let parsed = ParsedSchema::parse(SchemaType::Protobuf, &text(s), &[]).expect("a schema");
        parsed.as_protobuf().expect("a message")
    }

    /// A random value of a field's type.
    fn pb_value(f: &FieldDescriptor, seed: u64, text: &str) -> Pb {
        let i = seed as i64;
        if f.is_map() {
            let mut m = std::collections::HashMap::new();
            m.insert(MapKey::String(text.to_string()), Pb::I64(i));
            return Pb::Map(m);
        }
        if f.is_list() {
            return Pb::List(vec![Pb::I64(i), Pb::I64(i.wrapping_neg())]);
        }
        match f.kind() {
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Pb::I32(i as i32),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Pb::I64(i),
            Kind::Uint32 | Kind::Fixed32 => Pb::U32(seed as u32),
            Kind::Uint64 | Kind::Fixed64 => Pb::U64(seed),
            Kind::Bool => Pb::Bool(seed % 2 == 1),
            Kind::Float => Pb::F32(f32::from_bits(seed as u32)),
            Kind::Double => Pb::F64(f64::from_bits(seed)),
            Kind::String => Pb::String(text.to_string()),
            Kind::Bytes => Pb::Bytes(text.as_bytes().to_vec().into()),
            Kind::Enum(_) => Pb::EnumNumber([0, 1, 5, 3][seed as usize % 4]),
            Kind::Message(m) => {
                let mut inner = DynamicMessage::new(m.clone());
                for g in m.fields() {
                    inner.set_field(&g, pb_value(&g, seed.rotate_left(7), text));
                }
                Pb::Message(inner)
            }
        }
    }

    /// Small, large, negative and boundary integers; floats' bits.
    fn seed() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..3,
            any::<u64>(),
            Just(u64::MAX),
            Just(i32::MAX as u64 + 1),
            Just(i64::MAX as u64 + 1),
            Just(f64::NAN.to_bits()),
        ]
    }

    /// Messages of `desc`: some fields set, written once or twice (a
    /// later occurrence wins), with unknown fields.
    fn message_bytes(
        desc: &MessageDescriptor,
        sets: &[(usize, u64, String)],
        unknown: bool,
    ) -> Vec<u8> {
        let fields: Vec<FieldDescriptor> = desc.fields().collect();
        let mut out = Vec::new();
        for chunk in sets.chunks(3) {
            let mut m = DynamicMessage::new(desc.clone());
            for (i, seed, text) in chunk {
                let f = &fields[i % fields.len()];
                m.set_field(f, pb_value(f, *seed, text));
            }
            out.extend(encode(&m));
            if unknown {
                // Field 1000 (never in the schemas): a varint, a string.
                out.extend([0xC0, 0x3E, 0x05, 0xC2, 0x3E, 0x01, b'x']);
            }
        }
        out
    }

    /// Columns over a schema's fields: each field's own type (INT or
    /// BIGINT for integers), named as the field, in upper case, or a name
    /// no field has.
    fn columns(desc: &MessageDescriptor, picks: &[(usize, u8)]) -> Vec<Column> {
        let fields: Vec<FieldDescriptor> = desc.fields().collect();
        let mut cols: Vec<Column> = Vec::new();
        for (i, how) in picks {
            let f = &fields[i % fields.len()];
            let Ok(mut ty) = crate::protobuf::field_type(f) else {
                continue;
            };
            if ty == SqlType::BigInt && how % 3 == 0 {
                ty = SqlType::Int;
            }
            let name = match how % 4 {
                0 | 1 => f.name().to_string(),
                2 => f.name().to_ascii_uppercase(),
                _ => format!("NONE{i}"),
            };
            if !cols.iter().any(|c| c.name.eq_ignore_ascii_case(&name)) {
                cols.push(Column::new(&name, ty));
            }
        }
        cols
    }

    /// The general path: `DynamicMessage`, JSON, the columns by name.
    fn general(desc: &MessageDescriptor, cols: &[Column], bytes: &[u8]) -> Result<Row, String> {
        let j = decode(desc.clone(), bytes).map_err(|e| e.to_string())?;
        crate::registry::row_of(cols, true, &j).map_err(|e| e.to_string())
    }

    /// The plan's answer is the general path's, on a message and on each
    /// of its truncations.
    fn reads_agree(
        plan: &ReadPlan,
        desc: &MessageDescriptor,
        cols: &[Column],
        bytes: &[u8],
    ) -> Result<(), TestCaseError> {
        for cut in (0..=bytes.len()).rev() {
            let b = &bytes[..cut];
            if let Some(row) = plan.read(b) {
                prop_assert_eq!(Ok(row), general(desc, cols, b), "{:?} of {:?}", cut, bytes);
            }
        }
        Ok(())
    }

    fn sets() -> impl Strategy<Value = Vec<(usize, u64, String)>> {
        proptest::collection::vec((0usize..8, seed(), "[a-z\u{e9}]{0,3}"), 0..7)
    }

    fn picks() -> impl Strategy<Value = Vec<(usize, u8)>> {
        proptest::collection::vec((0usize..8, any::<u8>()), 0..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]
        #[test]
        fn a_read_plan_reads_what_the_general_path_reads(
            s in schema(), sets in sets(), picks in picks(), unknown in any::<bool>(),
        ) {
            let desc = descriptor(&s);
            let cols = columns(&desc, &picks);
            let bytes = message_bytes(&desc, &sets, unknown);
            let all_scalar = desc.fields().all(|f| !f.is_list() && !f.is_map() && Scalar::of(&f.kind()).is_some());
            let Some(plan) = ReadPlan::compile(&desc, &cols, true) else {
                // Only columns of fields the plans leave alone refuse one.
                prop_assert!(!all_scalar, "no plan for {}", text(&s));
                return Ok(());
            };
            let whole = plan.read(&bytes);
            // Whole messages the generator writes are always read.
            // (uint64s past i64::MAX, which the general path saturates,
            // are left to it.)
            let u64s = desc.fields().any(|f| matches!(f.kind(), Kind::Uint64 | Kind::Fixed64));
            // (Nor an INT column whose field holds a value it cannot,
            // later overwritten.)
            let ints = cols.iter().any(|c| c.ty == SqlType::Int);
            prop_assert!(whole.is_some() || general(&desc, &cols, &bytes).is_err() || u64s || ints,
                "gave up on {:?}", bytes);
            reads_agree(&plan, &desc, &cols, &bytes)?;
        }

        #[test]
        fn random_bytes_never_panic_and_agree(
            s in schema(), picks in picks(), bytes in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            let desc = descriptor(&s);
            let cols = columns(&desc, &picks);
            if let Some(plan) = ReadPlan::compile(&desc, &cols, true) {
                if let Some(row) = plan.read(&bytes) {
                    // Bytes no column reads may hide a malformed nested
                    // message (the documented leniency): only schemas of
                    // scalars are compared.
                    if desc.fields().all(|f| Scalar::of(&f.kind()).is_some() && !f.is_list() && !f.is_map()) {
                        prop_assert_eq!(Ok(row), general(&desc, &cols, &bytes));
                    }
                }
            }
        }

        #[test]
        fn a_write_plan_writes_what_the_general_path_writes(
            s in schema(), picks in picks(),
            values in proptest::collection::vec((any::<u8>(), seed(), "[a-zE\u{e9}]{0,3}"), 6),
        ) {
            let desc = descriptor(&s);
            let cols = columns(&desc, &picks);
            let row: Row = cols
                .iter()
                .zip(&values)
                .map(|(c, (how, seed, text))| {
                    let i = *seed as i64;
                    match (how % 8, &c.ty) {
                        (0, _) => Value::Null,
                        (1, _) => Value::String(["E0", "E1", "E5", "X"][*seed as usize % 4].into()),
                        (_, SqlType::Int) => Value::Int(i as i32),
                        (_, SqlType::BigInt) if how % 8 == 2 => Value::Int(i as i32),
                        (_, SqlType::BigInt) => Value::BigInt(i),
                        (_, SqlType::Boolean) => Value::Boolean(seed % 2 == 0),
                        (_, SqlType::Double) => Value::Double(f64::from_bits(*seed)),
                        (_, SqlType::Bytes) => Value::Bytes(text.as_bytes().to_vec()),
                        _ => Value::String(text.clone()),
                    }
                })
                .collect();
            let Some(plan) = WritePlan::compile(&desc, &cols) else {
                return Ok(());
            };
            let named: Vec<(String, Value)> = cols.iter().map(|c| c.name.clone()).zip(row.iter().cloned()).collect();
            let general = message(&desc, &named).map(|m| encode(&m)).map_err(|e| e.to_string());
            let mut out = Vec::new();
            if plan.write(&row, &mut out).is_some() {
                prop_assert_eq!(Ok(out), general);
            }
        }
    }

    #[test]
    fn a_plan_with_swapped_field_numbers_is_caught() {
        let s = Schema {
            fields: vec![(3, false, 1), (3, false, 2), (13, true, 3)],
        };
        let desc = descriptor(&s);
        let cols = vec![
            Column::new("f0", SqlType::BigInt),
            Column::new("f1", SqlType::BigInt),
            Column::new("F2", SqlType::String),
        ];
        let mut mutant = ReadPlan::compile(&desc, &cols, true).expect("a plan");
        mutant.fields[0].0 = 2;
        mutant.fields[1].0 = 1;
        mutant.fields.sort_by_key(|(n, _)| *n);
        let mut runner = TestRunner::new(Config {
            cases: 200,
            failure_persistence: None,
            ..Config::default()
        });
        let found = runner.run(&(sets(), any::<bool>()), |(sets, unknown)| {
            let bytes = message_bytes(&desc, &sets, unknown);
            reads_agree(&mutant, &desc, &cols, &bytes)
        });
        assert!(found.is_err(), "the mutant went unnoticed");
        // The write plan's mutant: fields written under each other's number.
        let mut wmutant = WritePlan::compile(&desc, &cols).expect("a plan");
        let (a, b) = (wmutant.fields[0].key.clone(), wmutant.fields[1].key.clone());
        wmutant.fields[0].key = b;
        wmutant.fields[1].key = a;
        let row = vec![Value::BigInt(1), Value::BigInt(2), Value::Null];
        let mut out = Vec::new();
        wmutant.write(&row, &mut out).expect("written");
        let named: Vec<(String, Value)> = cols.iter().map(|c| c.name.clone()).zip(row).collect();
        assert_ne!(out, encode(&message(&desc, &named).expect("a message")));
    }

    #[test]
    fn proto3_scalars_read_as_defaults_and_optional_ones_as_null() {
        let s = Schema {
            fields: vec![(3, false, 1), (3, true, 2), (15, false, 3), (13, true, 4)],
        };
        let desc = descriptor(&s);
        let cols: Vec<Column> = ["f0", "f1", "f2", "f3"]
            .iter()
            .zip([
                SqlType::BigInt,
                SqlType::BigInt,
                SqlType::String,
                SqlType::String,
            ])
            .map(|(n, t)| Column::new(n, t))
            .collect();
        let plan = ReadPlan::compile(&desc, &cols, false).expect("a plan");
        let row = plan.read(&[]).expect("read");
        assert_eq!(
            row,
            vec![
                Value::BigInt(0),
                Value::Null,
                Value::String("E0".into()),
                Value::Null
            ]
        );
        assert_eq!(Ok(row), general(&desc, &cols, &[]));
    }
}
