//! The schema wire format of Confluent's serializers: magic byte 0, the
//! schema id as 4 big-endian bytes, then the payload; a Protobuf payload
//! starts with the message indexes of the message it holds (zig-zag
//! varints: their count, then each index; `[0]`, the first message, is
//! written as the single byte 0).

/// The first byte of every record in the wire format.
pub const MAGIC: u8 = 0;

/// Bytes that are not in the wire format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error(
        "record is too short for the schema registry wire format ({0} bytes; need at least 5)"
    )]
    TooShort(usize),
    #[error("unknown magic byte {0}: not in the schema registry wire format")]
    BadMagic(u8),
    #[error("bad Protobuf message indexes: {0}")]
    BadIndexes(&'static str),
}

/// Writes the header (magic byte and schema id) to `out`.
pub fn write_header(id: i32, out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
}

/// The schema id of a record and its payload.
pub fn split(bytes: &[u8]) -> Result<(i32, &[u8]), WireError> {
    if bytes.len() < 5 {
        return Err(WireError::TooShort(bytes.len()));
    }
    if bytes[0] != MAGIC {
        return Err(WireError::BadMagic(bytes[0]));
    }
    let id = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[5..]))
}

/// Appends a zig-zag varint: Protobuf's message indexes, and Avro's
/// `int`/`long` (and every length and count) in its binary encoding.
pub fn write_zigzag(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn read_zigzag(bytes: &[u8]) -> Result<(i64, &[u8]), WireError> {
    let mut z: u64 = 0;
    for (i, b) in bytes.iter().enumerate() {
        if i >= 10 {
            break;
        }
        z |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let v = ((z >> 1) as i64) ^ -((z & 1) as i64);
            return Ok((v, &bytes[i + 1..]));
        }
    }
    Err(WireError::BadIndexes("a varint that does not end"))
}

/// Writes Protobuf message indexes (`[0]` and `[]` as the single byte 0).
pub fn write_indexes(indexes: &[i32], out: &mut Vec<u8>) {
    if indexes.is_empty() || indexes == [0] {
        out.push(0);
        return;
    }
    write_zigzag(indexes.len() as i64, out);
    for i in indexes {
        write_zigzag(i64::from(*i), out);
    }
}

/// Reads Protobuf message indexes from the start of a payload: the
/// indexes (`[0]` for the single byte 0) and the message bytes after them.
pub fn read_indexes(bytes: &[u8]) -> Result<(Vec<i32>, &[u8]), WireError> {
    let (count, mut rest) = read_zigzag(bytes)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    if count < 0 || count as usize > rest.len() {
        return Err(WireError::BadIndexes("a count larger than the record"));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (i, r) = read_zigzag(rest)?;
        let i = i32::try_from(i).map_err(|_| WireError::BadIndexes("an index out of range"))?;
        if i < 0 {
            return Err(WireError::BadIndexes("a negative index"));
        }
        out.push(i);
        rest = r;
    }
    Ok((out, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_magic_then_a_big_endian_id() {
        let mut b = Vec::new();
        write_header(0x0102_0304, &mut b);
        b.extend_from_slice(b"xy");
        assert_eq!(b, [0, 1, 2, 3, 4, b'x', b'y']);
        assert_eq!(split(&b), Ok((0x0102_0304, &b"xy"[..])));
        assert_eq!(split(&[0, 0, 0, 0, 7]), Ok((7, &[][..])));
        assert_eq!(split(&[0, 0, 0]), Err(WireError::TooShort(3)));
        assert_eq!(split(&[1, 0, 0, 0, 1]), Err(WireError::BadMagic(1)));
    }

    #[test]
    fn the_first_message_is_one_zero_byte() {
        for idx in [&[][..], &[0]] {
            let mut b = Vec::new();
            write_indexes(idx, &mut b);
            assert_eq!(b, [0]);
        }
        assert_eq!(read_indexes(&[0, 9]), Ok((vec![0], &[9u8][..])));
    }

    #[test]
    fn indexes_are_a_zigzag_count_then_zigzag_values() {
        let mut b = Vec::new();
        write_indexes(&[1], &mut b);
        assert_eq!(b, [2, 2]);
        let mut b = Vec::new();
        write_indexes(&[0, 2, 64], &mut b);
        // count 3 → 6; 0 → 0; 2 → 4; 64 → 128 = 0x80 0x01.
        assert_eq!(b, [6, 0, 4, 0x80, 0x01]);
        b.push(42);
        assert_eq!(read_indexes(&b), Ok((vec![0, 2, 64], &[42u8][..])));
        for idx in [vec![3], vec![0, 0], vec![5, 1000, 7], vec![i32::MAX]] {
            let mut b = Vec::new();
            write_indexes(&idx, &mut b);
            assert_eq!(read_indexes(&b), Ok((idx.clone(), &[][..])), "{idx:?}");
        }
    }

    #[test]
    fn broken_indexes_are_errors() {
        assert!(read_indexes(&[]).is_err());
        assert!(read_indexes(&[0x80]).is_err());
        // A count of 3 with one index only.
        assert!(read_indexes(&[6, 2]).is_err());
        // A negative count, a negative index.
        assert!(read_indexes(&[1]).is_err());
        assert!(read_indexes(&[2, 1]).is_err());
    }
}
