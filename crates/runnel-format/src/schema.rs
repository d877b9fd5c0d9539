//! Columns and the schemas of streams and tables: key columns, value
//! columns, and the pseudo columns every row carries.

use serde::{Deserialize, Serialize};

use crate::types::SqlType;

/// A named, typed column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub ty: SqlType,
}

impl Column {
    pub fn new(name: &str, ty: SqlType) -> Self {
        Column {
            name: name.to_string(),
            ty,
        }
    }
}

/// The pseudo columns of every row, after the key and value columns.
pub const ROWTIME: &str = "ROWTIME";
pub const ROWPARTITION: &str = "ROWPARTITION";
pub const ROWOFFSET: &str = "ROWOFFSET";
pub const WINDOWSTART: &str = "WINDOWSTART";
pub const WINDOWEND: &str = "WINDOWEND";

/// Names no user column may take.
pub const RESERVED: [&str; 5] = [ROWTIME, ROWPARTITION, ROWOFFSET, WINDOWSTART, WINDOWEND];

/// Columns as ksqlDB prints a persisted schema: "`K` INTEGER KEY, `V` STRING"
/// (`what` "key" marks each one KEY).
pub fn persisted_columns(columns: &[Column], what: &str) -> String {
    let suffix = if what == "key" { " KEY" } else { "" };
    columns
        .iter()
        .map(|c| format!("`{}` {}{suffix}", c.name, c.ty))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Columns with their names, and the field names of their STRUCTs (inside
/// arrays and maps too), in upper case: how ksqlDB names what it infers
/// from a registry schema.
pub fn upper_cased(columns: Vec<Column>) -> Vec<Column> {
    fn ty(t: SqlType) -> SqlType {
        match t {
            SqlType::Struct(fields) => SqlType::Struct(
                fields
                    .into_iter()
                    .map(|(n, t)| (n.to_ascii_uppercase(), ty(t)))
                    .collect(),
            ),
            SqlType::Array(t) => SqlType::Array(Box::new(ty(*t))),
            SqlType::Map(k, v) => SqlType::Map(k, Box::new(ty(*v))),
            t => t,
        }
    }
    columns
        .into_iter()
        .map(|c| Column::new(&c.name.to_ascii_uppercase(), ty(c.ty)))
        .collect()
}

/// The columns of a stream or table.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Schema {
    pub key: Vec<Column>,
    pub value: Vec<Column>,
}

impl Schema {
    /// Key columns then value columns: what `SELECT *` shows.
    pub fn columns(&self) -> impl Iterator<Item = &Column> {
        self.key.iter().chain(self.value.iter())
    }

    pub fn find(&self, name: &str) -> Option<&Column> {
        self.columns().find(|c| c.name == name)
    }

    pub fn is_key(&self, name: &str) -> bool {
        self.key.iter().any(|c| c.name == name)
    }
}

/// How a windowed source's keys carry their window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowType {
    /// Tumbling or hopping: the key plus the window start; windows have
    /// the given size.
    Time { size_ms: i64 },
    /// The key plus end and start.
    Session,
}
