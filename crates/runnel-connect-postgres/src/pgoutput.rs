//! A decoder of the `pgoutput` logical replication messages, protocol
//! version 1 (PostgreSQL's "Logical Replication Message Formats"):
//! Begin, Commit, Origin, Relation, Type, Insert, Update, Delete, Truncate
//! and logical decoding Messages.

use crate::error::{Error, Result};
use crate::lsn::Lsn;
use bytes::{Buf, Bytes};

/// A column value in a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleValue {
    Null,
    /// An unchanged TOASTed value the server did not send.
    Unchanged,
    /// The value in PostgreSQL's text output form.
    Text(String),
}

/// A column of a relation as the stream describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity (the key).
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// A decoded pgoutput message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Begin {
        /// The LSN of the transaction's commit record.
        final_lsn: Lsn,
        /// Microseconds since 2000-01-01.
        commit_time: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: Lsn,
        /// The LSN just past the commit record: what to confirm.
        end_lsn: Lsn,
        commit_time: i64,
    },
    Origin,
    Relation {
        oid: u32,
        namespace: String,
        name: String,
        /// `d` default, `n` nothing, `f` full, `i` index.
        replica_identity: u8,
        columns: Vec<RelationColumn>,
    },
    Type {
        oid: u32,
        namespace: String,
        name: String,
    },
    Insert {
        oid: u32,
        new: Vec<TupleValue>,
    },
    Update {
        oid: u32,
        /// The old key (`K`, replica identity index/default when the key
        /// changed) or the old row (`O`, replica identity full).
        old: Option<(u8, Vec<TupleValue>)>,
        new: Vec<TupleValue>,
    },
    Delete {
        oid: u32,
        old: (u8, Vec<TupleValue>),
    },
    Truncate {
        oids: Vec<u32>,
    },
    /// A logical decoding message (`pg_logical_emit_message`), ignored.
    LogicalMessage,
}

fn need(buf: &Bytes, n: usize, what: &str) -> Result<()> {
    if buf.remaining() < n {
        Err(Error::Protocol(format!("pgoutput: short {what}")))
    } else {
        Ok(())
    }
}

fn cstring(buf: &mut Bytes) -> Result<String> {
    let end = buf
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| Error::Protocol("pgoutput: unterminated string".into()))?;
    let s = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.advance(end + 1);
    Ok(s)
}

fn tuple(buf: &mut Bytes) -> Result<Vec<TupleValue>> {
    need(buf, 2, "tuple")?;
    let n = buf.get_i16();
    let mut values = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        need(buf, 1, "tuple column")?;
        match buf.get_u8() {
            b'n' => values.push(TupleValue::Null),
            b'u' => values.push(TupleValue::Unchanged),
            b't' => {
                need(buf, 4, "tuple value length")?;
                let len = buf.get_i32();
                if len < 0 {
                    return Err(Error::Protocol("pgoutput: negative value length".into()));
                }
                need(buf, len as usize, "tuple value")?;
                let v = buf.split_to(len as usize);
                values.push(TupleValue::Text(String::from_utf8_lossy(&v).into_owned()));
            }
            other => {
                return Err(Error::Protocol(format!(
                    "pgoutput: unknown tuple value kind {:?}",
                    other as char
                )))
            }
        }
    }
    Ok(values)
}

/// Decodes one message (the payload of an XLogData).
pub fn decode(mut buf: Bytes) -> Result<Message> {
    need(&buf, 1, "message")?;
    let tag = buf.get_u8();
    Ok(match tag {
        b'B' => {
            need(&buf, 20, "Begin")?;
            Message::Begin {
                final_lsn: Lsn(buf.get_u64()),
                commit_time: buf.get_i64(),
                xid: buf.get_u32(),
            }
        }
        b'C' => {
            need(&buf, 25, "Commit")?;
            let _flags = buf.get_u8();
            Message::Commit {
                commit_lsn: Lsn(buf.get_u64()),
                end_lsn: Lsn(buf.get_u64()),
                commit_time: buf.get_i64(),
            }
        }
        b'O' => Message::Origin,
        b'R' => {
            need(&buf, 4, "Relation")?;
            let oid = buf.get_u32();
            let namespace = cstring(&mut buf)?;
            let name = cstring(&mut buf)?;
            need(&buf, 3, "Relation")?;
            let replica_identity = buf.get_u8();
            let n = buf.get_i16();
            let mut columns = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                need(&buf, 1, "Relation column")?;
                let flags = buf.get_u8();
                let name = cstring(&mut buf)?;
                need(&buf, 8, "Relation column")?;
                columns.push(RelationColumn {
                    key: flags & 1 == 1,
                    name,
                    type_oid: buf.get_u32(),
                    type_modifier: buf.get_i32(),
                });
            }
            Message::Relation {
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            }
        }
        b'Y' => {
            need(&buf, 4, "Type")?;
            let oid = buf.get_u32();
            Message::Type {
                oid,
                namespace: cstring(&mut buf)?,
                name: cstring(&mut buf)?,
            }
        }
        b'I' => {
            need(&buf, 5, "Insert")?;
            let oid = buf.get_u32();
            match buf.get_u8() {
                b'N' => Message::Insert {
                    oid,
                    new: tuple(&mut buf)?,
                },
                other => {
                    return Err(Error::Protocol(format!(
                        "pgoutput: Insert without a new tuple ({:?})",
                        other as char
                    )))
                }
            }
        }
        b'U' => {
            need(&buf, 5, "Update")?;
            let oid = buf.get_u32();
            let mut kind = buf.get_u8();
            let mut old = None;
            if kind == b'K' || kind == b'O' {
                old = Some((kind, tuple(&mut buf)?));
                need(&buf, 1, "Update")?;
                kind = buf.get_u8();
            }
            if kind != b'N' {
                return Err(Error::Protocol(
                    "pgoutput: Update without a new tuple".into(),
                ));
            }
            Message::Update {
                oid,
                old,
                new: tuple(&mut buf)?,
            }
        }
        b'D' => {
            need(&buf, 5, "Delete")?;
            let oid = buf.get_u32();
            let kind = buf.get_u8();
            if kind != b'K' && kind != b'O' {
                return Err(Error::Protocol(
                    "pgoutput: Delete without an old tuple".into(),
                ));
            }
            Message::Delete {
                oid,
                old: (kind, tuple(&mut buf)?),
            }
        }
        b'T' => {
            need(&buf, 5, "Truncate")?;
            let n = buf.get_u32();
            let _options = buf.get_u8();
            need(&buf, 4 * n as usize, "Truncate")?;
            Message::Truncate {
                oids: (0..n).map(|_| buf.get_u32()).collect(),
            }
        }
        b'M' => Message::LogicalMessage,
        other => {
            return Err(Error::Protocol(format!(
                "pgoutput: unknown message {:?}",
                other as char
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    fn tuple_bytes(b: &mut BytesMut, values: &[Option<&str>]) {
        b.put_i16(values.len() as i16);
        for v in values {
            match v {
                None => b.put_u8(b'n'),
                Some("\u{0}toast") => b.put_u8(b'u'),
                Some(t) => {
                    b.put_u8(b't');
                    b.put_i32(t.len() as i32);
                    b.put_slice(t.as_bytes());
                }
            }
        }
    }

    #[test]
    fn begin_and_commit_carry_their_lsns() {
        let mut b = BytesMut::new();
        b.put_u8(b'B');
        b.put_u64(0x1_0000_0010);
        b.put_i64(42);
        b.put_u32(777);
        assert_eq!(
            decode(b.freeze()).unwrap(),
            Message::Begin {
                final_lsn: Lsn(0x1_0000_0010),
                commit_time: 42,
                xid: 777
            }
        );
        let mut b = BytesMut::new();
        b.put_u8(b'C');
        b.put_u8(0);
        b.put_u64(10);
        b.put_u64(20);
        b.put_i64(5);
        assert_eq!(
            decode(b.freeze()).unwrap(),
            Message::Commit {
                commit_lsn: Lsn(10),
                end_lsn: Lsn(20),
                commit_time: 5
            }
        );
    }

    #[test]
    fn relations_describe_key_columns_and_types() {
        let mut b = BytesMut::new();
        b.put_u8(b'R');
        b.put_u32(16384);
        b.put_slice(b"public\0orders\0");
        b.put_u8(b'd');
        b.put_i16(2);
        b.put_u8(1);
        b.put_slice(b"id\0");
        b.put_u32(23);
        b.put_i32(-1);
        b.put_u8(0);
        b.put_slice(b"note\0");
        b.put_u32(25);
        b.put_i32(-1);
        let Message::Relation {
            oid,
            namespace,
            name,
            replica_identity,
            columns,
        } = decode(b.freeze()).unwrap()
        else {
            panic!("not a relation")
        };
        assert_eq!(
            (oid, namespace.as_str(), name.as_str()),
            (16384, "public", "orders")
        );
        assert_eq!(replica_identity, b'd');
        assert!(columns[0].key && !columns[1].key);
        assert_eq!(columns[1].name, "note");
        assert_eq!(columns[0].type_oid, 23);
    }

    #[test]
    fn tuples_distinguish_null_unchanged_toast_and_text() {
        let mut b = BytesMut::new();
        b.put_u8(b'U');
        b.put_u32(1);
        b.put_u8(b'O');
        tuple_bytes(&mut b, &[Some("1"), None, Some("old")]);
        b.put_u8(b'N');
        tuple_bytes(&mut b, &[Some("1"), None, Some("\u{0}toast")]);
        assert_eq!(
            decode(b.freeze()).unwrap(),
            Message::Update {
                oid: 1,
                old: Some((
                    b'O',
                    vec![
                        TupleValue::Text("1".into()),
                        TupleValue::Null,
                        TupleValue::Text("old".into())
                    ]
                )),
                new: vec![
                    TupleValue::Text("1".into()),
                    TupleValue::Null,
                    TupleValue::Unchanged
                ],
            }
        );
        let mut b = BytesMut::new();
        b.put_u8(b'U');
        b.put_u32(1);
        b.put_u8(b'N');
        tuple_bytes(&mut b, &[Some("é")]);
        assert_eq!(
            decode(b.freeze()).unwrap(),
            Message::Update {
                oid: 1,
                old: None,
                new: vec![TupleValue::Text("é".into())]
            }
        );
    }

    #[test]
    fn inserts_deletes_and_truncates_decode() {
        let mut b = BytesMut::new();
        b.put_u8(b'I');
        b.put_u32(9);
        b.put_u8(b'N');
        tuple_bytes(&mut b, &[Some("a")]);
        assert_eq!(
            decode(b.freeze()).unwrap(),
            Message::Insert {
                oid: 9,
                new: vec![TupleValue::Text("a".into())]
            }
        );
        let mut b = BytesMut::new();
        b.put_u8(b'D');
        b.put_u32(9);
        b.put_u8(b'K');
        tuple_bytes(&mut b, &[Some("a"), None]);
        assert!(matches!(
            decode(b.freeze()).unwrap(),
            Message::Delete { oid: 9, old: (b'K', ref v) } if v.len() == 2
        ));
        let mut b = BytesMut::new();
        b.put_u8(b'T');
        b.put_u32(2);
        b.put_u8(0);
        b.put_u32(5);
        b.put_u32(6);
        assert_eq!(
            decode(b.freeze()).unwrap(),
            Message::Truncate { oids: vec![5, 6] }
        );
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        for bytes in [
            &b"B\0\0"[..],
            b"R\0\0\0\x01pub",
            b"I\0\0\0\x01N\0\x01t\0\0\0\x09ab",
            b"Z",
            b"",
        ] {
            assert!(decode(Bytes::copy_from_slice(bytes)).is_err(), "{bytes:?}");
        }
    }
}
