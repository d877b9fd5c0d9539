//! Writing rows to a source's topic: INSERT INTO … VALUES and the
//! `/inserts-stream` rows.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use runnel_streams::backend::ProducedRecord;
use runnel_streams::serdes::partition_for;
use serde_json::Value as Json;

use super::result::Outcome;
use super::{backend_err, lock, now_ms, Engine};
use crate::ast::{Ident, SourceKind};
use crate::catalog::SourceInfo;
use crate::error::SqlError;
use crate::expr::{Binder, Compiled, Scope};
use crate::format::Row;
use crate::schema::{Column, ROWTIME};
use crate::types::Value;

impl Engine {
    /// INSERT INTO … VALUES.
    pub(super) fn insert_values_statement(
        &self,
        target: &Ident,
        columns: &Option<Vec<Ident>>,
        values: &[crate::ast::Expr],
    ) -> Result<Outcome, SqlError> {
        let st = lock(&self.inner.state);
        let Some(info) = st.catalog.source(&target.name).cloned() else {
            return Err(self.not_found_as(
                &st,
                target,
                format!(
                    "Cannot insert values into an unknown stream/table: `{}`",
                    target.name
                ),
            ));
        };
        drop(st);
        if info.read_only {
            return Err(SqlError::at(
                target.pos,
                format!(
                    "Cannot insert values into read-only {}: {}",
                    info.kind.to_string().to_lowercase(),
                    info.name
                ),
            ));
        }
        self.insert_values(&info, columns.as_deref(), values)?;
        Ok(Outcome::done("Inserted 1 row"))
    }

    pub(super) fn insert_values(
        &self,
        info: &SourceInfo,
        columns: Option<&[Ident]>,
        values: &[crate::ast::Expr],
    ) -> Result<(), SqlError> {
        let all: Vec<Column> = info.schema.columns().cloned().collect();
        let names: Vec<Ident> = match columns {
            Some(c) => c.to_vec(),
            None => all
                .iter()
                .chain(info.headers.iter().map(|h| &h.column))
                .map(|c| Ident {
                    name: c.name.clone(),
                    pos: Default::default(),
                })
                .collect(),
        };
        let into_headers: Vec<&str> = names
            .iter()
            .filter(|n| info.headers.iter().any(|h| h.column.name == n.name))
            .map(|n| n.name.as_str())
            .collect();
        if !into_headers.is_empty() {
            return Err(SqlError::at(
                names.first().map_or_else(Default::default, |n| n.pos),
                format!(
                    "Cannot insert into HEADER columns: {}",
                    into_headers.join(", ")
                ),
            ));
        }
        if names.len() != values.len() {
            return Err(SqlError::at(
                values.first().map_or_else(Default::default, |v| v.pos),
                format!(
                    "Expected a value for each column: {} columns, {} values",
                    names.len(),
                    values.len()
                ),
            ));
        }
        let mut row: HashMap<String, Value> = HashMap::new();
        let mut ts = now_ms();
        for (n, e) in names.iter().zip(values) {
            let (c, _) = Binder {
                scope: Scope::default(),
                functions: &self.inner.functions,
            }
            .bind(e)?;
            let v = match c {
                Compiled::Const(v) => v,
                other => other.eval(&[]),
            };
            if n.name == ROWTIME {
                ts = v
                    .as_i64()
                    .ok_or_else(|| SqlError::at(e.pos, "ROWTIME must be a BIGINT"))?;
                continue;
            }
            let Some(col) = all.iter().find(|c| c.name == n.name) else {
                return Err(SqlError::at(
                    n.pos,
                    format!("Column name {} does not exist.", n.name),
                ));
            };
            let v = if v.is_null() {
                v
            } else {
                crate::cast::cast(&v, &col.ty).map_err(|m| {
                    SqlError::at(
                        e.pos,
                        format!(
                            "Expected type {} for field {} but got {}: {m}",
                            col.ty, col.name, v
                        ),
                    )
                })?
            };
            row.insert(col.name.clone(), v);
        }
        let key: Row = info
            .schema
            .key
            .iter()
            .map(|c| row.get(&c.name).cloned().unwrap_or_default())
            .collect();
        let value: Row = info
            .schema
            .value
            .iter()
            .map(|c| row.get(&c.name).cloned().unwrap_or_default())
            .collect();
        self.produce(info, key, value, ts)
    }

    /// Writes one row to a source's topic (INSERT VALUES, /inserts-stream).
    pub fn produce(
        &self,
        info: &SourceInfo,
        key: Row,
        value: Row,
        ts: i64,
    ) -> Result<(), SqlError> {
        let kb = info.key_serde().encode(&key).map_err(SqlError::new)?;
        let vb = info.value_serde().encode(&value).map_err(SqlError::new)?;
        let partitions = info.partitions.max(1);
        let partition = match &kb {
            Some(k) => partition_for(k, partitions),
            None => {
                (self.inner.transient.fetch_add(1, Ordering::Relaxed) % partitions as u64) as i32
            }
        };
        let mut admin = lock(&self.inner.admin);
        admin
            .send(vec![ProducedRecord {
                topic: info.topic.clone(),
                partition,
                timestamp: ts,
                key: kb,
                value: vb,
                headers: Vec::new(),
            }])
            .and_then(|_| admin.commit(&[]))
            .map_err(backend_err)
    }

    /// Rows of a JSON object for `/inserts-stream`: column names as keys.
    pub fn insert_json(
        &self,
        target: &str,
        obj: &serde_json::Map<String, Json>,
    ) -> Result<(), SqlError> {
        let info = self
            .catalog()
            .source(&target.to_ascii_uppercase())
            .cloned()
            .or_else(|| self.catalog().source(target).cloned())
            .ok_or_else(|| SqlError::not_found(None, format!("{target} does not exist.")))?;
        if info.kind != SourceKind::Stream {
            return Err(SqlError::new(format!(
                "{} is a table; inserts go to streams",
                info.name
            )));
        }
        let get = |c: &Column| -> Result<Value, SqlError> {
            let j = obj.get(&c.name).or_else(|| {
                obj.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&c.name))
                    .map(|(_, v)| v)
            });
            match j {
                None => Ok(Value::Null),
                Some(j) => crate::format::from_json(&c.ty, j)
                    .map_err(|e| SqlError::new(format!("column {}: {e}", c.name))),
            }
        };
        let key = info
            .schema
            .key
            .iter()
            .map(get)
            .collect::<Result<Row, _>>()?;
        let value = info
            .schema
            .value
            .iter()
            .map(get)
            .collect::<Result<Row, _>>()?;
        let ts = obj
            .get(ROWTIME)
            .and_then(Json::as_i64)
            .unwrap_or_else(now_ms);
        self.produce(&info, key, value, ts)
    }
}
