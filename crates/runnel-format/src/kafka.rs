//! The KAFKA format: one primitive column in Kafka's own serializations
//! (big-endian INT, BIGINT and DOUBLE, UTF-8 STRING, raw BYTES).

use std::sync::Arc;

use crate::format::{CodecSpec, FormatError, Row, RowCodec, RowFormat};
use crate::schema::Column;
use crate::types::{SqlType, Value, ValueError};

pub(crate) fn encode_kafka(v: &Value) -> Result<Vec<u8>, ValueError> {
    Ok(match v {
        Value::Int(i) => i.to_be_bytes().to_vec(),
        Value::BigInt(i) => i.to_be_bytes().to_vec(),
        Value::Double(d) => d.to_be_bytes().to_vec(),
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Bytes(b) => b.clone(),
        other => return Err(format!("the KAFKA format cannot carry {other}").into()),
    })
}

pub(crate) fn decode_kafka(ty: &SqlType, b: &[u8]) -> Result<Value, ValueError> {
    let fixed = |n: usize| -> Result<&[u8], ValueError> {
        if b.len() == n {
            Ok(b)
        } else {
            Err(format!("expected {n} bytes for {ty}, got {}", b.len()).into())
        }
    };
    Ok(match ty {
        SqlType::Int => {
            let a = fixed(4)?;
            Value::Int(i32::from_be_bytes([a[0], a[1], a[2], a[3]]))
        }
        SqlType::BigInt => {
            let a = fixed(8)?;
            let mut x = [0u8; 8];
            x.copy_from_slice(a);
            Value::BigInt(i64::from_be_bytes(x))
        }
        SqlType::Double => {
            let a = fixed(8)?;
            let mut x = [0u8; 8];
            x.copy_from_slice(a);
            Value::Double(f64::from_be_bytes(x))
        }
        SqlType::String => Value::String(
            String::from_utf8(b.to_vec()).map_err(|_| "key is not valid UTF-8".to_string())?,
        ),
        SqlType::Bytes => Value::Bytes(b.to_vec()),
        t => return Err(format!("the KAFKA format does not support {t}").into()),
    })
}
/// KAFKA: one primitive column in Kafka's own serializations.
pub(crate) struct KafkaFormat;

impl RowFormat for KafkaFormat {
    fn name(&self) -> &'static str {
        "KAFKA"
    }
    fn check(&self, columns: &[Column], what: &str) -> Result<(), FormatError> {
        if columns.len() > 1 {
            return Err(FormatError::Unsupported(format!(
                "The 'KAFKA' format only supports a single field. Got: [{}]",
                crate::schema::persisted_columns(columns, what)
            )));
        }
        match columns.first().map(|c| (&c.ty, &c.name)) {
            None
            | Some((
                SqlType::Int | SqlType::BigInt | SqlType::Double | SqlType::String | SqlType::Bytes,
                _,
            )) => Ok(()),
            Some((t, _)) => Err(FormatError::Unsupported(format!(
                "The 'KAFKA' format does not support type '{}'",
                t.base_name()
            ))),
        }
    }
    fn codec(&self, spec: &CodecSpec<'_>) -> Arc<dyn RowCodec> {
        Arc::new(KafkaCodec {
            ty: spec.columns.first().map(|c| c.ty.clone()),
        })
    }
}

/// The codec of a KAFKA column of type `ty` (none: no column).
struct KafkaCodec {
    ty: Option<SqlType>,
}

impl RowCodec for KafkaCodec {
    fn encode(&self, row: &[Value]) -> Result<Option<Vec<u8>>, FormatError> {
        match row.first() {
            None | Some(Value::Null) => Ok(None),
            Some(v) => encode_kafka(v)
                .map(Some)
                .map_err(|e| FormatError::Encode(e.0)),
        }
    }
    fn decode(&self, bytes: &[u8]) -> Result<Row, FormatError> {
        match &self.ty {
            None => Ok(Vec::new()),
            Some(ty) => Ok(vec![
                decode_kafka(ty, bytes).map_err(|e| FormatError::Decode(e.0))?
            ]),
        }
    }
}
