//! Runnel's own compact row encoding, for repartition topics, changelogs
//! and aggregation state (never user-facing topics).

use runnel_streams::serdes::{Serde, SerdeError, Serialized};

use crate::format::Row;
use crate::types::Value;

/// Rows in Runnel's own compact encoding, for repartition topics,
/// changelogs and aggregation state (never user-facing topics).
///
/// Two forms share it. A row of at most 255 fixed-width scalars (NULL,
/// BOOLEAN, INT, BIGINT, DOUBLE, DATE, TIME, TIMESTAMP: what COUNT, SUM,
/// MIN, MAX keep) is written as a `0` byte, the number of values, then a
/// tag and the value's bytes: little-endian, except BIGINT, a zigzag
/// varint (counts and sums are mostly small: a one-count row is 4 bytes,
/// and a stored accumulator with its timestamp fits a 16-byte block). An
/// aggregation reads and writes its accumulators once per record, and
/// this form costs a few instructions per value where serde's costs a
/// hundred. Any other row
/// is postcard. Postcard writes a row's length first, so its only row
/// starting with a `0` byte is the empty row, `[0]` alone; the two forms
/// never collide, and stores written before the scalar form still read.
#[derive(Clone, Copy, Default)]
pub struct InternalSerde;

/// The first byte of the scalar form.
pub(crate) const SCALAR_FORM: u8 = 0;

impl Serde<Row> for InternalSerde {
    fn serialize(&self, row: &Row) -> Serialized {
        match encode_scalars(row) {
            Some(b) => Ok(Some(b)),
            None => postcard::to_stdvec(row)
                .map(Some)
                .map_err(|e| SerdeError(format!("cannot write an internal row: {e}"))),
        }
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Row, SerdeError> {
        match bytes {
            None => Ok(Vec::new()),
            Some([SCALAR_FORM, n, rest @ ..]) => decode_scalars(usize::from(*n), rest),
            Some(b) => postcard::from_bytes(b).map_err(|e| SerdeError(e.to_string())),
        }
    }
}

/// Keys in the internal encoding: always postcard, so a key's bytes stay
/// what builds before the scalar form wrote (stores and changelogs are
/// looked up by them).
#[derive(Clone, Copy, Default)]
pub struct InternalKeySerde;

impl Serde<Row> for InternalKeySerde {
    fn serialize(&self, row: &Row) -> Serialized {
        postcard::to_stdvec(row)
            .map(Some)
            .map_err(|e| SerdeError(format!("cannot write an internal key: {e}")))
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Row, SerdeError> {
        InternalSerde.deserialize(bytes)
    }
}

/// Scalar-form tags.
pub(crate) const T_NULL: u8 = 0;
pub(crate) const T_FALSE: u8 = 1;
pub(crate) const T_TRUE: u8 = 2;
pub(crate) const T_INT: u8 = 3;
pub(crate) const T_BIGINT: u8 = 4;
pub(crate) const T_DOUBLE: u8 = 5;
pub(crate) const T_DATE: u8 = 6;
pub(crate) const T_TIME: u8 = 7;
pub(crate) const T_TIMESTAMP: u8 = 8;
/// BIGINT as a zigzag LEB128 varint (`T_BIGINT`, 8 fixed bytes, is what
/// earlier builds wrote; both read).
pub(crate) const T_VARBIGINT: u8 = 9;

/// The scalar form of `row`, or `None` when a value is not a fixed-width
/// scalar (or the row is empty or wider than 255).
pub(crate) fn encode_scalars(row: &Row) -> Option<Vec<u8>> {
    let n = u8::try_from(row.len()).ok().filter(|n| *n > 0)?;
    // Rows with a string (most data rows) go to postcard before any work.
    if !row.iter().all(is_scalar) {
        return None;
    }
    let mut out = Vec::with_capacity(2 + 11 * row.len());
    out.push(SCALAR_FORM);
    out.push(n);
    for v in row {
        let (tag, bytes, len) = scalar_parts(v)?;
        out.push(tag);
        out.extend_from_slice(&bytes[..len]);
    }
    Some(out)
}

/// Whether `v` has a scalar form ([`scalar_parts`] is `Some`), without
/// computing it.
#[inline]
pub(crate) fn is_scalar(v: &Value) -> bool {
    matches!(
        v,
        Value::Null
            | Value::Boolean(_)
            | Value::Int(_)
            | Value::Date(_)
            | Value::BigInt(_)
            | Value::Time(_)
            | Value::Timestamp(_)
            | Value::Double(_)
    )
}

/// A value's scalar-form tag and its payload (the first `len` bytes), or
/// `None` when it is not a fixed-width scalar.
#[inline]
pub(crate) fn scalar_parts(v: &Value) -> Option<(u8, [u8; 10], usize)> {
    let le = |tag, b: &[u8]| {
        let mut out = [0; 10];
        out[..b.len()].copy_from_slice(b);
        (tag, out, b.len())
    };
    Some(match v {
        Value::Null => (T_NULL, [0; 10], 0),
        Value::Boolean(false) => (T_FALSE, [0; 10], 0),
        Value::Boolean(true) => (T_TRUE, [0; 10], 0),
        Value::Int(i) => le(T_INT, &i.to_le_bytes()),
        Value::Date(i) => le(T_DATE, &i.to_le_bytes()),
        Value::BigInt(i) => {
            // Zigzag, then seven bits per byte, low first.
            let mut z = ((*i << 1) ^ (*i >> 63)) as u64;
            let (mut out, mut len) = ([0; 10], 0);
            while z >= 0x80 {
                out[len] = (z as u8) | 0x80;
                z >>= 7;
                len += 1;
            }
            out[len] = z as u8;
            (T_VARBIGINT, out, len + 1)
        }
        Value::Time(i) => le(T_TIME, &i.to_le_bytes()),
        Value::Timestamp(i) => le(T_TIMESTAMP, &i.to_le_bytes()),
        Value::Double(d) => le(T_DOUBLE, &d.to_le_bytes()),
        _ => return None,
    })
}

/// Reads a zigzag LEB128 BIGINT (at most 10 bytes) from the front of `b`.
pub(crate) fn take_varbigint(b: &mut &[u8]) -> Result<i64, SerdeError> {
    let mut z: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(10) {
        z |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if i == 9 && *byte > 1 {
                break;
            }
            *b = &b[i + 1..];
            return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    Err(SerdeError("malformed BIGINT in an internal row".into()))
}

/// Reads `n` scalar-form values from `b`, which must hold exactly them.
pub(crate) fn decode_scalars(n: usize, mut b: &[u8]) -> Result<Row, SerdeError> {
    fn take<const N: usize>(b: &mut &[u8]) -> Result<[u8; N], SerdeError> {
        match b.split_first_chunk::<N>() {
            Some((head, rest)) => {
                *b = rest;
                Ok(*head)
            }
            None => Err(SerdeError("truncated internal row".into())),
        }
    }
    let mut row = Vec::with_capacity(n);
    for _ in 0..n {
        let [tag] = take::<1>(&mut b)?;
        row.push(match tag {
            T_NULL => Value::Null,
            T_FALSE => Value::Boolean(false),
            T_TRUE => Value::Boolean(true),
            T_INT => Value::Int(i32::from_le_bytes(take(&mut b)?)),
            T_DATE => Value::Date(i32::from_le_bytes(take(&mut b)?)),
            T_BIGINT => Value::BigInt(i64::from_le_bytes(take(&mut b)?)),
            T_VARBIGINT => Value::BigInt(take_varbigint(&mut b)?),
            T_TIME => Value::Time(i64::from_le_bytes(take(&mut b)?)),
            T_TIMESTAMP => Value::Timestamp(i64::from_le_bytes(take(&mut b)?)),
            T_DOUBLE => Value::Double(f64::from_le_bytes(take(&mut b)?)),
            t => return Err(SerdeError(format!("unknown internal value tag {t}"))),
        });
    }
    if b.is_empty() {
        Ok(row)
    } else {
        Err(SerdeError("trailing bytes after an internal row".into()))
    }
}
