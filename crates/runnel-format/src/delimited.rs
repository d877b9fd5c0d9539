//! The DELIMITED format: one line of text per row, fields separated by a
//! delimiter (`,`), quoted with `"` when they contain it or a quote.

use std::sync::Arc;

use crate::format::{CodecSpec, FormatError, Row, RowCodec, RowFormat};
use crate::schema::Column;
use crate::types::{SqlType, Value};

pub(crate) fn split_delimited(text: &str, delim: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && cur.is_empty() {
            quoted = true;
        } else if c == delim {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// DELIMITED: scalar columns as delimited text.
pub(crate) struct DelimitedFormat;

impl RowFormat for DelimitedFormat {
    fn name(&self) -> &'static str {
        "DELIMITED"
    }
    fn check(&self, columns: &[Column], _what: &str) -> Result<(), FormatError> {
        match columns.iter().find(|c| {
            matches!(
                c.ty,
                SqlType::Array(_) | SqlType::Map(..) | SqlType::Struct(_)
            )
        }) {
            Some(c) => Err(FormatError::Unsupported(format!(
                "The 'DELIMITED' format does not support type '{}', column: `{}`",
                c.ty.base_name(),
                c.name
            ))),
            None => Ok(()),
        }
    }
    fn codec(&self, spec: &CodecSpec<'_>) -> Arc<dyn RowCodec> {
        Arc::new(DelimitedCodec {
            columns: spec.columns.to_vec(),
            delimiter: spec.delimiter,
        })
    }
}

struct DelimitedCodec {
    columns: Vec<Column>,
    delimiter: char,
}

impl RowCodec for DelimitedCodec {
    fn encode(&self, row: &[Value]) -> Result<Option<Vec<u8>>, FormatError> {
        // No columns (a keyless stream's key), or one that is NULL: no bytes.
        if row.iter().all(Value::is_null) && self.columns.len() <= 1 {
            return Ok(None);
        }
        let mut out = String::new();
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push(self.delimiter);
            }
            if !v.is_null() {
                let text = delimited_text(v);
                if needs_quotes(&text, i == 0, self.delimiter) {
                    out.push('"');
                    out.push_str(&text.replace('"', "\"\""));
                    out.push('"');
                } else {
                    out.push_str(&text);
                }
            }
        }
        Ok(Some(out.into_bytes()))
    }

    fn decode(&self, bytes: &[u8]) -> Result<Row, FormatError> {
        let text = std::str::from_utf8(bytes).map_err(|e| FormatError::Decode(e.to_string()))?;
        let fields = split_delimited(text, self.delimiter);
        if fields.len() != self.columns.len() {
            return Err(FormatError::Decode(format!(
                "expected {} delimited fields, got {}",
                self.columns.len(),
                fields.len()
            )));
        }
        self.columns
            .iter()
            .zip(fields)
            .map(|(c, f)| {
                if f.is_empty() {
                    return Ok(Value::Null);
                }
                // Dates are written as days, times and timestamps as
                // milliseconds (ksqlDB's DELIMITED); ISO text is read too.
                if let Ok(n) = f.trim().parse::<i64>() {
                    match c.ty {
                        SqlType::Date => {
                            if let Ok(d) = i32::try_from(n) {
                                return Ok(Value::Date(d));
                            }
                        }
                        SqlType::Time => return Ok(Value::Time(n)),
                        SqlType::Timestamp => return Ok(Value::Timestamp(n)),
                        _ => {}
                    }
                }
                crate::cast::from_text(&c.ty, &f)
                    .map_err(|e| FormatError::Decode(format!("column {}: {e}", c.name)))
            })
            .collect()
    }
}

/// A value as DELIMITED writes it: dates as days since the epoch, times
/// and timestamps as milliseconds, everything else as its text.
fn delimited_text(v: &Value) -> String {
    match v {
        Value::Date(d) => d.to_string(),
        Value::Time(ms) | Value::Timestamp(ms) => ms.to_string(),
        other => other.to_string(),
    }
}

/// Whether a field is quoted, by the minimal-quoting rules of the CSV
/// printer ksqlDB writes DELIMITED with: it holds the delimiter, a quote or
/// a line break; it opens the record with anything but a letter or digit;
/// it starts with a character up to `#` (space, `!`, `"`, `#`, controls);
/// or it ends with whitespace. An empty first field is quoted too.
fn needs_quotes(text: &str, first: bool, delimiter: char) -> bool {
    let Some(c) = text.chars().next() else {
        return first;
    };
    if first && !c.is_ascii_alphanumeric() {
        return true;
    }
    if c <= '#' {
        return true;
    }
    if text
        .chars()
        .any(|c| c == delimiter || c == '"' || c == '\n' || c == '\r')
    {
        return true;
    }
    text.chars().last().is_some_and(|c| c <= ' ')
}
