//! Avro records decoded straight into rows: no apache-avro `Value` tree and
//! no JSON step between the bytes and the columns (the per-record path of
//! every query reading AVRO).
//!
//! A [`RowPlan`] is compiled once per writer schema for the columns the
//! codec reads. It covers the pairs of writer type and column type whose
//! conversion is direct: the primitive types as their own SQL types (`int`
//! also as BIGINT, `float` as DOUBLE), enums as STRING, `bytes`/`fixed` as
//! BYTES, the decimal, date, time and timestamp logical types, arrays,
//! maps with STRING keys, records as STRUCTs, unions with at most one
//! non-null branch; fields no column reads are skipped without being
//! decoded. For any other pair (a `long` read as STRING, a union of
//! several types, a recursive type…) compiling gives `None` and the codec
//! reads the record the general way (`avro::to_json` then `from_json`).
//! Where a plan exists its rows equal the general path's (a property test
//! below), save for DOUBLE NaN and infinities, which JSON cannot carry:
//! the plan keeps them, as ksqlDB does.

use apache_avro::schema::{Name, RecordSchema, Schema};
use rust_decimal::Decimal;

use crate::avro::{deref, Names};
use crate::format::FormatError;
use crate::types::{SqlType, Value};

/// How one Avro value of the writer's schema becomes a SQL value.
#[derive(Debug)]
enum Node {
    Null,
    Boolean,
    /// `int` as INT.
    Int,
    /// `int` as BIGINT.
    IntAsBigInt,
    /// `long` as BIGINT.
    Long,
    Float,
    Double,
    String,
    Enum(Vec<String>),
    Bytes,
    Fixed(usize),
    Decimal {
        /// The size of a `fixed` decimal; `bytes` otherwise.
        fixed: Option<usize>,
        scale: u32,
        /// The column's scale.
        target: u32,
    },
    Date,
    TimeMillis,
    /// `time-micros`: a `long` divided (rounding down) into milliseconds.
    TimeMicros,
    /// A timestamp: a `long` divided (rounding down) into milliseconds by
    /// this (1 for millis).
    Timestamp(i64),
    /// A union: per branch, how its value is read (`None`: the null
    /// branch).
    Union(Vec<Option<Node>>),
    Array(Box<Node>),
    Map(Box<Node>),
    Struct(Record),
}

/// A record read as a STRUCT or as a row: per writer field, in the
/// writer's order, how it is read and which output slot it fills (none:
/// skipped).
#[derive(Debug)]
struct Record {
    fields: Vec<(Step, Option<usize>)>,
    /// The output's field names (the STRUCT's; empty for a row).
    names: Vec<String>,
    width: usize,
}

#[derive(Debug)]
enum Step {
    /// Read into the slot, or passed over when no one reads the column.
    Read(Node, Skip),
    Skip(Skip),
}

/// How a value no column reads is passed over.
#[derive(Debug)]
enum Skip {
    Nothing,
    Boolean,
    /// `int`, `long` and their logical types.
    Varint,
    Bytes4,
    Bytes8,
    /// `string`, `bytes` and `bytes` decimals: a length, then that many bytes.
    Sized,
    Fixed(usize),
    Union(Vec<Skip>),
    Array(Box<Skip>),
    Map(Box<Skip>),
    Record(Vec<Skip>),
}

/// A compiled reader of one writer schema as a row of columns.
#[derive(Debug)]
pub(crate) struct RowPlan {
    root: RowRoot,
}

#[derive(Debug)]
enum RowRoot {
    /// The record's fields are the columns.
    Wrapped(Record),
    /// The whole value is the one column.
    Single(Node),
    /// A union of null and the record at branch `at`: the record's fields
    /// are the columns (the null branch is no row).
    Nullable {
        at: usize,
        branches: usize,
        record: Record,
    },
}

impl RowPlan {
    /// The plan reading `schema` as `columns` (`wrap`: the top-level
    /// record's fields are the columns; else the value is the one column),
    /// or `None` when some part needs the general path.
    pub(crate) fn compile(
        schema: &Schema,
        names: &Names<'_>,
        columns: &[(&str, &SqlType)],
        wrap: bool,
    ) -> Option<RowPlan> {
        let mut stack = Vec::new();
        let root = if wrap {
            match deref(schema, names) {
                Schema::Record(r) => {
                    RowRoot::Wrapped(record(r, columns, false, names, &mut stack)?)
                }
                // A nullable record (what Confluent's converters register
                // for an optional struct) whose fields are the columns.
                Schema::Union(u) => {
                    let variants = u.variants();
                    let mut record_at = None;
                    for (i, v) in variants.iter().enumerate() {
                        match (deref(v, names), record_at) {
                            (Schema::Null, _) => {}
                            (Schema::Record(r), None) => record_at = Some((i, r)),
                            _ => return None,
                        }
                    }
                    let (at, r) = record_at?;
                    RowRoot::Nullable {
                        at,
                        branches: variants.len(),
                        record: record(r, columns, false, names, &mut stack)?,
                    }
                }
                _ => return None,
            }
        } else {
            RowRoot::Single(node(schema, columns.first()?.1, names, &mut stack)?)
        };
        Some(RowPlan { root })
    }

    /// [`Self::read`] into a row with `prefix` leading NULLs and `suffix`
    /// trailing ones, room for `spare` more, the columns flagged in
    /// `unread` left NULL (see `RowCodec::decode_with_prefix`).
    pub(crate) fn read_padded(
        &self,
        bytes: &[u8],
        (prefix, suffix, spare): (usize, usize, usize),
        unread: &[bool],
    ) -> Result<Vec<Value>, FormatError> {
        let record = match &self.root {
            RowRoot::Single(_) => {
                return self
                    .read(bytes)
                    .map(|v| crate::format::padded(v, prefix, suffix, spare))
            }
            RowRoot::Wrapped(r) => r,
            RowRoot::Nullable { record, .. } => record,
        };
        let mut input = Input { buf: bytes };
        if let RowRoot::Nullable { at, .. } = &self.root {
            match input.long() {
                Ok(i) if usize::try_from(i).ok() == Some(*at) => {}
                // No record: the error `read` gives.
                _ => return self.read(bytes),
            }
        }
        let width = prefix + record.width + suffix;
        let mut row = Vec::with_capacity(width + spare);
        row.resize_with(width, || Value::Null);
        record
            .read_into(&mut input, &mut row[prefix..prefix + record.width], unread)
            .map_err(|e| FormatError::Decode(format!("bad Avro record: {e}")))?;
        Ok(row)
    }

    /// Decodes one record's payload (after the wire header).
    pub(crate) fn read(&self, bytes: &[u8]) -> Result<Vec<Value>, FormatError> {
        let mut input = Input { buf: bytes };
        match &self.root {
            RowRoot::Wrapped(r) => r.read_values(&mut input),
            RowRoot::Single(n) => n.read(&mut input).map(|v| vec![v]),
            RowRoot::Nullable {
                at,
                branches,
                record,
            } => match input.long() {
                Ok(i) if usize::try_from(i).ok() == Some(*at) => record.read_values(&mut input),
                Ok(i) if usize::try_from(i).is_ok_and(|i| i < *branches) => {
                    Err("expected a record of the columns, got null".to_string())
                }
                Ok(i) => Err(format!("union branch {i} of {branches}")),
                Err(e) => Err(e),
            },
        }
        .map_err(|e| FormatError::Decode(format!("bad Avro record: {e}")))
    }
}

/// Whether `name` is a record being compiled (a recursive type: left to
/// the general path).
fn entered(stack: &[Name], name: &Name) -> bool {
    stack.iter().any(|n| n == name)
}

fn node(s: &Schema, ty: &SqlType, names: &Names<'_>, stack: &mut Vec<Name>) -> Option<Node> {
    if let Schema::Ref { name } = s {
        if entered(stack, name) {
            return None;
        }
    }
    Some(match (deref(s, names), ty) {
        (Schema::Null, _) => Node::Null,
        (Schema::Boolean, SqlType::Boolean) => Node::Boolean,
        (Schema::Int, SqlType::Int) => Node::Int,
        (Schema::Int, SqlType::BigInt) => Node::IntAsBigInt,
        (Schema::Long, SqlType::BigInt) => Node::Long,
        (Schema::Float, SqlType::Double) => Node::Float,
        (Schema::Double, SqlType::Double) => Node::Double,
        (Schema::String, SqlType::String) => Node::String,
        (Schema::Enum(e), SqlType::String) => Node::Enum(e.symbols.clone()),
        (Schema::Bytes, SqlType::Bytes) => Node::Bytes,
        (Schema::Fixed(f), SqlType::Bytes) => Node::Fixed(f.size),
        (Schema::Decimal(d), SqlType::Decimal { scale, .. }) => Node::Decimal {
            fixed: match &*d.inner {
                Schema::Fixed(f) => Some(f.size),
                Schema::Bytes => None,
                _ => return None,
            },
            scale: u32::try_from(d.scale).ok()?,
            target: u32::from(*scale),
        },
        (Schema::Date, SqlType::Date) => Node::Date,
        (Schema::TimeMillis, SqlType::Time) => Node::TimeMillis,
        (Schema::TimeMicros, SqlType::Time) => Node::TimeMicros,
        (Schema::TimestampMillis | Schema::LocalTimestampMillis, SqlType::Timestamp) => {
            Node::Timestamp(1)
        }
        (Schema::TimestampMicros | Schema::LocalTimestampMicros, SqlType::Timestamp) => {
            Node::Timestamp(1000)
        }
        (Schema::TimestampNanos | Schema::LocalTimestampNanos, SqlType::Timestamp) => {
            Node::Timestamp(1_000_000)
        }
        (Schema::Array(a), SqlType::Array(t)) => {
            Node::Array(Box::new(node(&a.items, t, names, stack)?))
        }
        (Schema::Map(m), SqlType::Map(k, v)) if **k == SqlType::String => {
            Node::Map(Box::new(node(&m.types, v, names, stack)?))
        }
        (Schema::Record(r), SqlType::Struct(fields)) => {
            let targets: Vec<(&str, &SqlType)> =
                fields.iter().map(|(n, t)| (n.as_str(), t)).collect();
            Node::Struct(record(r, &targets, true, names, stack)?)
        }
        (Schema::Union(u), ty) => {
            let non_null = u.variants().iter().filter(|v| **v != Schema::Null).count();
            if non_null > 1 {
                return None;
            }
            Node::Union(
                u.variants()
                    .iter()
                    .map(|v| match v {
                        Schema::Null => Some(None),
                        v => node(v, ty, names, stack).map(Some),
                    })
                    .collect::<Option<_>>()?,
            )
        }
        _ => return None,
    })
}

/// The writer field a target field (a column or a STRUCT field) reads, as
/// the general path finds it: the field of exactly that name, else the
/// first in the writer's order of that name in any case.
fn writer_field(r: &RecordSchema, name: &str) -> Option<usize> {
    r.fields.iter().position(|f| f.name == name).or_else(|| {
        r.fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))
    })
}

fn record(
    r: &RecordSchema,
    targets: &[(&str, &SqlType)],
    named: bool,
    names: &Names<'_>,
    stack: &mut Vec<Name>,
) -> Option<Record> {
    let mut slot_of: Vec<Option<usize>> = vec![None; r.fields.len()];
    for (j, (name, _)) in targets.iter().enumerate() {
        if let Some(i) = writer_field(r, name) {
            if slot_of[i].is_some() {
                // Two targets read one field: left to the general path.
                return None;
            }
            slot_of[i] = Some(j);
        }
    }
    stack.push(r.name.clone());
    let fields = r
        .fields
        .iter()
        .zip(&slot_of)
        .map(|(f, slot)| match slot {
            Some(j) => Some((
                Step::Read(
                    node(&f.schema, targets[*j].1, names, stack)?,
                    skip(&f.schema, names, stack)?,
                ),
                Some(*j),
            )),
            None => Some((Step::Skip(skip(&f.schema, names, stack)?), None)),
        })
        .collect::<Option<Vec<_>>>();
    stack.pop();
    Some(Record {
        fields: fields?,
        names: if named {
            targets.iter().map(|(n, _)| n.to_string()).collect()
        } else {
            Vec::new()
        },
        width: targets.len(),
    })
}

fn skip(s: &Schema, names: &Names<'_>, stack: &mut Vec<Name>) -> Option<Skip> {
    if let Schema::Ref { name } = s {
        if entered(stack, name) {
            return None;
        }
    }
    Some(match deref(s, names) {
        Schema::Null => Skip::Nothing,
        Schema::Boolean => Skip::Boolean,
        Schema::Int
        | Schema::Long
        | Schema::Enum(_)
        | Schema::Date
        | Schema::TimeMillis
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Skip::Varint,
        Schema::Float => Skip::Bytes4,
        Schema::Double => Skip::Bytes8,
        Schema::String | Schema::Bytes | Schema::Uuid | Schema::BigDecimal => Skip::Sized,
        Schema::Fixed(f) => Skip::Fixed(f.size),
        Schema::Duration => Skip::Fixed(12),
        Schema::Decimal(d) => match &*d.inner {
            Schema::Fixed(f) => Skip::Fixed(f.size),
            _ => Skip::Sized,
        },
        Schema::Union(u) => Skip::Union(
            u.variants()
                .iter()
                .map(|v| skip(v, names, stack))
                .collect::<Option<_>>()?,
        ),
        Schema::Array(a) => Skip::Array(Box::new(skip(&a.items, names, stack)?)),
        Schema::Map(m) => Skip::Map(Box::new(skip(&m.types, names, stack)?)),
        Schema::Record(r) => {
            stack.push(r.name.clone());
            let fields = r
                .fields
                .iter()
                .map(|f| skip(&f.schema, names, stack))
                .collect::<Option<_>>();
            stack.pop();
            Skip::Record(fields?)
        }
        Schema::Ref { .. } => return None,
    })
}

/// The bytes left to decode.
struct Input<'a> {
    buf: &'a [u8],
}

type Read<T> = Result<T, String>;

impl<'a> Input<'a> {
    fn byte(&mut self) -> Read<u8> {
        let (b, rest) = self
            .buf
            .split_first()
            .ok_or_else(|| "the record ends early".to_string())?;
        self.buf = rest;
        Ok(*b)
    }

    /// A zig-zag varint `long`.
    fn long(&mut self) -> Read<i64> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((n >> 1) as i64 ^ -((n & 1) as i64));
            }
        }
        Err("a varint longer than 10 bytes".to_string())
    }

    fn int(&mut self) -> Read<i32> {
        let n = self.long()?;
        i32::try_from(n).map_err(|_| format!("{n} does not fit an Avro int"))
    }

    fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        if n > self.buf.len() {
            return Err(format!(
                "a value of {n} bytes where {} are left",
                self.buf.len()
            ));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// A length-prefixed `bytes` or `string`.
    fn sized(&mut self) -> Read<&'a [u8]> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| format!("a negative length {n}"))?;
        self.take(n)
    }

    fn string(&mut self) -> Read<String> {
        let b = self.sized()?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|e| format!("a string that is not UTF-8: {e}"))
    }

    /// The item count of the next array or map block (0 ends the value);
    /// a negative count is followed by the block's size in bytes.
    fn block(&mut self) -> Read<usize> {
        let n = self.long()?;
        if n < 0 {
            self.long()?;
        }
        usize::try_from(n.unsigned_abs()).map_err(|_| format!("a block of {n} items"))
    }

    /// A union's branch index.
    fn branch<'b, T>(&mut self, branches: &'b [T]) -> Read<&'b T> {
        let i = self.long()?;
        usize::try_from(i)
            .ok()
            .and_then(|i| branches.get(i))
            .ok_or_else(|| format!("union branch {i} of {}", branches.len()))
    }
}

impl Record {
    fn read_values(&self, input: &mut Input<'_>) -> Read<Vec<Value>> {
        let mut out = vec![Value::Null; self.width];
        self.read_into(input, &mut out, &[])?;
        Ok(out)
    }

    /// Fills `out` (one slot per column, NULL until read); columns flagged
    /// in `unread` are passed over.
    fn read_into(&self, input: &mut Input<'_>, out: &mut [Value], unread: &[bool]) -> Read<()> {
        for (step, slot) in &self.fields {
            match (step, slot) {
                (Step::Read(_, s), Some(j)) if unread.get(*j).copied().unwrap_or(false) => {
                    s.skip(input)?;
                }
                (Step::Read(n, _), slot) => {
                    let v = n.read(input)?;
                    if let Some(o) = slot.and_then(|j| out.get_mut(j)) {
                        *o = v;
                    }
                }
                (Step::Skip(s), _) => s.skip(input)?,
            }
        }
        Ok(())
    }

    fn read_struct(&self, input: &mut Input<'_>) -> Read<Value> {
        let values = self.read_values(input)?;
        Ok(Value::Struct(
            self.names.iter().cloned().zip(values).collect(),
        ))
    }
}

impl Node {
    fn read(&self, input: &mut Input<'_>) -> Read<Value> {
        Ok(match self {
            Node::Null => Value::Null,
            Node::Boolean => match input.byte()? {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                b => return Err(format!("{b} is not an Avro boolean")),
            },
            Node::Int => Value::Int(input.int()?),
            Node::IntAsBigInt => Value::BigInt(i64::from(input.int()?)),
            Node::Long => Value::BigInt(input.long()?),
            Node::Float => {
                let b = input.take(4)?;
                Value::Double(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            }
            Node::Double => {
                let b = input.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Value::Double(f64::from_le_bytes(a))
            }
            Node::String => Value::String(input.string()?),
            Node::Enum(symbols) => Value::String(input.branch(symbols)?.clone()),
            Node::Bytes => Value::Bytes(input.sized()?.to_vec()),
            Node::Fixed(n) => Value::Bytes(input.take(*n)?.to_vec()),
            Node::Decimal {
                fixed,
                scale,
                target,
            } => {
                let b = match fixed {
                    Some(n) => input.take(*n)?,
                    None => input.sized()?,
                };
                Value::Decimal(decimal(b, *scale, *target)?)
            }
            Node::Date => Value::Date(input.int()?),
            Node::TimeMillis => Value::Time(i64::from(input.int()?)),
            Node::TimeMicros => Value::Time(input.long()?.div_euclid(1000)),
            Node::Timestamp(div) => Value::Timestamp(input.long()?.div_euclid(*div)),
            Node::Union(branches) => match input.branch(branches)? {
                None => Value::Null,
                Some(n) => n.read(input)?,
            },
            Node::Array(item) => {
                let mut out = Vec::new();
                loop {
                    let n = input.block()?;
                    if n == 0 {
                        break;
                    }
                    out.reserve(n.min(input.buf.len()));
                    for _ in 0..n {
                        out.push(item.read(input)?);
                    }
                }
                Value::Array(out)
            }
            Node::Map(value) => {
                let mut entries: Vec<(String, Value)> = Vec::new();
                loop {
                    let n = input.block()?;
                    if n == 0 {
                        break;
                    }
                    entries.reserve(n.min(input.buf.len()));
                    for _ in 0..n {
                        let k = input.string()?;
                        entries.push((k, value.read(input)?));
                    }
                }
                map_entries(entries)
            }
            Node::Struct(r) => r.read_struct(input)?,
        })
    }
}

/// A map's entries as the general path orders them: by key, a repeated key
/// keeping its last value.
fn map_entries(mut entries: Vec<(String, Value)>) -> Value {
    // Stable: of equal keys, the last read stays last.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(Value, Value)> = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        match out.last_mut() {
            Some((Value::String(last), slot)) if *last == k => *slot = v,
            _ => out.push((Value::String(k), v)),
        }
    }
    Value::Map(out)
}

/// A two's complement big-endian unscaled value of `scale`, at the
/// column's scale.
fn decimal(bytes: &[u8], scale: u32, target: u32) -> Read<Decimal> {
    if bytes.len() > 16 {
        return Err("an Avro decimal wider than 128 bits".to_string());
    }
    let mut n: i128 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    for b in bytes {
        n = (n << 8) | i128::from(*b);
    }
    let mut d = Decimal::try_from_i128_with_scale(n, scale)
        .map_err(|e| format!("an Avro decimal out of range: {e}"))?;
    d.rescale(target);
    Ok(d)
}

impl Skip {
    fn skip(&self, input: &mut Input<'_>) -> Read<()> {
        match self {
            Skip::Nothing => {}
            Skip::Boolean => {
                input.byte()?;
            }
            Skip::Varint => {
                input.long()?;
            }
            Skip::Bytes4 => {
                input.take(4)?;
            }
            Skip::Bytes8 => {
                input.take(8)?;
            }
            Skip::Sized => {
                input.sized()?;
            }
            Skip::Fixed(n) => {
                input.take(*n)?;
            }
            Skip::Union(branches) => input.branch(branches)?.skip(input)?,
            Skip::Array(item) => loop {
                let n = input.block()?;
                if n == 0 {
                    break;
                }
                for _ in 0..n {
                    item.skip(input)?;
                }
            },
            Skip::Map(value) => loop {
                let n = input.block()?;
                if n == 0 {
                    break;
                }
                for _ in 0..n {
                    input.sized()?;
                    value.skip(input)?;
                }
            },
            Skip::Record(fields) => {
                for f in fields {
                    f.skip(input)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::avro::{names_in, sql_type, to_json};
    use crate::avro_testgen::{schema_json, value, writer_type, Rng, T};
    use crate::schema::Column;
    use apache_avro::types::Value as Avro;
    use proptest::prelude::*;
    use serde_json::json;

    /// The general path: apache-avro's reader, then JSON, then the
    /// columns' types.
    pub(crate) fn general(
        schema: &Schema,
        bytes: &[u8],
        columns: &[Column],
        wrap: bool,
    ) -> Result<Vec<Value>, String> {
        let names = names_in([schema]);
        let v = apache_avro::from_avro_datum(schema, &mut &bytes[..], None)
            .map_err(|e| e.to_string())?;
        let j = to_json(&v, schema, &names).map_err(|e| e.to_string())?;
        crate::registry::row_of(columns, wrap, &j).map_err(|e| e.to_string())
    }

    pub(crate) fn direct(
        schema: &Schema,
        bytes: &[u8],
        columns: &[Column],
        wrap: bool,
    ) -> Option<Result<Vec<Value>, String>> {
        let names = names_in([schema]);
        let cols: Vec<(&str, &SqlType)> =
            columns.iter().map(|c| (c.name.as_str(), &c.ty)).collect();
        let plan = RowPlan::compile(schema, &names, &cols, wrap)?;
        Some(plan.read(bytes).map_err(|e| e.to_string()))
    }

    /// Columns reading a record's fields: in upper case (found in any
    /// case), some fields left out (skipped), one column no field has.
    pub(crate) fn columns_of(schema: &Schema, keep: &[bool]) -> Vec<Column> {
        let names = names_in([schema]);
        let Schema::Record(r) = schema else {
            return Vec::new();
        };
        let mut cols: Vec<Column> = r
            .fields
            .iter()
            .zip(keep.iter().cycle())
            .filter(|(_, k)| **k)
            .map(|(f, _)| {
                Column::new(
                    &f.name.to_ascii_uppercase(),
                    sql_type(&f.schema, &names).expect("type"),
                )
            })
            .collect();
        cols.push(Column::new("ABSENT", SqlType::BigInt));
        cols
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn a_plan_reads_what_the_general_path_reads(
            fields in prop::collection::vec(writer_type(), 1..6),
            keep in prop::collection::vec(any::<bool>(), 1..6),
            seed in any::<u64>(),
        ) {
            let t = T::Record(fields);
            let schema = Schema::parse(&schema_json(&t, &mut 0)).expect("schema");
            let mut r = Rng(seed);
            let v = value(&t, &mut r);
            let bytes = apache_avro::to_avro_datum(&schema, v).expect("encode");
            let columns = columns_of(&schema, &keep);
            let fast = direct(&schema, &bytes, &columns, true);
            // Every generated pair has a direct reading.
            prop_assert!(fast.is_some(), "no plan for {schema:?}");
            let slow = general(&schema, &bytes, &columns, true);
            prop_assert_eq!(fast.expect("plan"), slow);
        }

        #[test]
        fn an_unwrapped_value_reads_as_the_general_path_does(t in writer_type(), seed in any::<u64>()) {
            let schema = Schema::parse(&schema_json(&t, &mut 0)).expect("schema");
            let names = names_in([&schema]);
            let v = value(&t, &mut Rng(seed));
            let bytes = apache_avro::to_avro_datum(&schema, v).expect("encode");
            let columns = vec![Column::new("ROWVAL", sql_type(&schema, &names).expect("type"))];
            let fast = direct(&schema, &bytes, &columns, false).expect("plan");
            prop_assert_eq!(fast, general(&schema, &bytes, &columns, false));
        }

        #[test]
        fn truncated_records_are_errors_not_panics(
            fields in prop::collection::vec(writer_type(), 1..6),
            seed in any::<u64>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let t = T::Record(fields);
            let schema = Schema::parse(&schema_json(&t, &mut 0)).expect("schema");
            let bytes = apache_avro::to_avro_datum(&schema, value(&t, &mut Rng(seed))).expect("encode");
            let columns = columns_of(&schema, &[true]);
            let cut = cut.index(bytes.len().max(1));
            if cut < bytes.len() {
                let fast = direct(&schema, &bytes[..cut], &columns, true).expect("plan");
                // The general path may read a shorter prefix as a value
                // (an empty array); where it refuses, so does the plan.
                if general(&schema, &bytes[..cut], &columns, true).is_err() {
                    prop_assert!(fast.is_err());
                }
            }
        }
    }

    #[test]
    fn padded_rows_leave_unread_columns_null() {
        let schema = Schema::parse(&json!({"type": "record", "name": "R", "fields": [
            {"name": "a", "type": "long"}, {"name": "b", "type": "string"},
            {"name": "c", "type": {"type": "array", "items": "int"}}]}))
        .expect("schema");
        let names = names_in([&schema]);
        let (a, b, c) = (
            SqlType::BigInt,
            SqlType::String,
            SqlType::Array(Box::new(SqlType::Int)),
        );
        let plan = RowPlan::compile(&schema, &names, &[("A", &a), ("B", &b), ("C", &c)], true)
            .expect("plan");
        let v = Avro::Record(vec![
            ("a".into(), Avro::Long(4)),
            ("b".into(), Avro::String("x".into())),
            ("c".into(), Avro::Array(vec![Avro::Int(1), Avro::Int(2)])),
        ]);
        let bytes = apache_avro::to_avro_datum(&schema, v).expect("encode");
        let row = plan
            .read_padded(&bytes, (1, 2, 3), &[false, true, false])
            .expect("row");
        assert_eq!(
            row,
            vec![
                Value::Null,
                Value::BigInt(4),
                Value::Null,
                Value::Array(vec![Value::Int(1), Value::Int(2)]),
                Value::Null,
                Value::Null
            ]
        );
        assert!(row.capacity() >= 9);
    }

    #[test]
    fn a_nullable_record_reads_as_its_fields() {
        let schema = Schema::parse(&json!(["null", {"type": "record", "name": "R", "fields": [
            {"name": "a", "type": "long"}, {"name": "b", "type": ["null", "string"]}]}]))
        .expect("schema");
        let columns = vec![
            Column::new("A", SqlType::BigInt),
            Column::new("B", SqlType::String),
        ];
        let row = Avro::Union(
            1,
            Box::new(Avro::Record(vec![
                ("a".into(), Avro::Long(-3)),
                (
                    "b".into(),
                    Avro::Union(1, Box::new(Avro::String("x".into()))),
                ),
            ])),
        );
        let bytes = apache_avro::to_avro_datum(&schema, row).expect("encode");
        let fast = direct(&schema, &bytes, &columns, true).expect("plan");
        assert_eq!(fast, Ok(vec![Value::BigInt(-3), Value::String("x".into())]));
        assert_eq!(fast, general(&schema, &bytes, &columns, true));
        let null = apache_avro::to_avro_datum(&schema, Avro::Union(0, Box::new(Avro::Null)))
            .expect("encode");
        assert!(direct(&schema, &null, &columns, true)
            .expect("plan")
            .is_err());
        assert!(general(&schema, &null, &columns, true).is_err());
    }

    #[test]
    fn pairs_without_a_direct_reading_take_the_general_path() {
        let schema = Schema::parse(&json!({"type": "record", "name": "R", "fields": [
            {"name": "a", "type": "long"},
            {"name": "b", "type": ["null", "int", "string"]},
        ]}))
        .expect("schema");
        let names = names_in([&schema]);
        let plan = |ty: SqlType, col: &str| {
            RowPlan::compile(&schema, &names, &[(col, &ty)], true).is_some()
        };
        assert!(plan(SqlType::BigInt, "A"));
        assert!(!plan(SqlType::String, "A"), "a long read as STRING");
        assert!(!plan(SqlType::Int, "A"), "a long read as INT may overflow");
        assert!(!plan(SqlType::String, "B"), "a union of several types");
        let rec = Schema::parse(&json!({"type": "record", "name": "Node", "fields": [
            {"name": "v", "type": "long"},
            {"name": "next", "type": ["null", "Node"]},
        ]}))
        .expect("schema");
        let names = names_in([&rec]);
        assert!(
            RowPlan::compile(&rec, &names, &[("V", &SqlType::BigInt)], true).is_none(),
            "a recursive type is skipped by the general path only"
        );
    }

    #[test]
    fn nan_and_infinities_stay_doubles() {
        let schema = Schema::parse(&json!({"type": "record", "name": "R", "fields": [
            {"name": "d", "type": "double"}, {"name": "f", "type": "float"},
        ]}))
        .expect("schema");
        let columns = vec![
            Column::new("D", SqlType::Double),
            Column::new("F", SqlType::Double),
        ];
        for (d, f) in [(f64::NAN, f32::INFINITY), (f64::NEG_INFINITY, f32::NAN)] {
            let v = Avro::Record(vec![
                ("d".into(), Avro::Double(d)),
                ("f".into(), Avro::Float(f)),
            ]);
            let bytes = apache_avro::to_avro_datum(&schema, v).expect("encode");
            for row in [
                direct(&schema, &bytes, &columns, true)
                    .expect("plan")
                    .expect("row"),
                general(&schema, &bytes, &columns, true).expect("row"),
            ] {
                let text: Vec<String> = row.iter().map(|v| format!("{v:?}")).collect();
                assert_eq!(
                    text,
                    vec![
                        format!("{:?}", Value::Double(d)),
                        format!("{:?}", Value::Double(f64::from(f)))
                    ]
                );
            }
        }
    }
}
