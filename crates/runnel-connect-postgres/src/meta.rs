//! Table metadata read from PostgreSQL's catalog: columns, their types
//! (resolving enums, domains and arrays), nullability and the primary key.

use crate::error::Result;
use crate::types::{builtin_kind, TypeKind};
use std::collections::HashMap;
use tokio_postgres::Client;

/// A column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnMeta {
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
    pub kind: TypeKind,
    pub not_null: bool,
    /// The column's DEFAULT as the schema's default, when Debezium gives
    /// it one.
    pub default: Option<ColumnDefault>,
}

/// A table as the catalog describes it now.
#[derive(Debug, Clone, PartialEq)]
pub struct TableMeta {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnMeta>,
    /// Column names of the primary key, in key order.
    pub primary_key: Vec<String>,
    /// `d`, `n`, `f` or `i`.
    pub replica_identity: u8,
}

/// Resolves type OIDs to [`TypeKind`]s, asking the catalog for types that
/// are not built in, and caching the answers.
#[derive(Default)]
pub struct TypeResolver {
    cache: HashMap<(u32, i32), TypeKind>,
}

impl TypeResolver {
    pub async fn resolve(&mut self, client: &Client, oid: u32, typmod: i32) -> Result<TypeKind> {
        if let Some(k) = builtin_kind(oid, typmod) {
            return Ok(k);
        }
        if let Some(k) = self.cache.get(&(oid, typmod)) {
            return Ok(k.clone());
        }
        let mut current = (oid, typmod);
        let mut array_depth = 0;
        let kind = loop {
            if let Some(k) = builtin_kind(current.0, current.1) {
                break k;
            }
            let row = client
                .query_opt(
                    "SELECT t.typtype::text, t.typelem, t.typbasetype, t.typtypmod, t.typcategory::text, \
                     array(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) \
                     FROM pg_type t WHERE t.oid = $1",
                    &[&current.0],
                )
                .await?;
            let Some(row) = row else {
                break TypeKind::Other;
            };
            let typtype: String = row.get(0);
            let elem: u32 = row.get(1);
            let base: u32 = row.get(2);
            let base_mod: i32 = row.get(3);
            let category: String = row.get(4);
            let labels: Vec<String> = row.get(5);
            match typtype.as_str() {
                "e" => break TypeKind::Enum(labels),
                "d" => current = (base, if current.1 >= 0 { current.1 } else { base_mod }),
                _ if category == "A" && elem != 0 && array_depth == 0 => {
                    array_depth += 1;
                    current = (elem, current.1);
                }
                _ => break TypeKind::Other,
            }
        };
        let kind = if array_depth > 0 {
            TypeKind::Array(Box::new(kind))
        } else {
            kind
        };
        self.cache.insert((oid, typmod), kind.clone());
        Ok(kind)
    }
}

/// Reads the metadata of the table with `oid`; `None` when it is gone.
pub async fn load_table(
    client: &Client,
    types: &mut TypeResolver,
    oid: u32,
) -> Result<Option<TableMeta>> {
    let Some(row) = client
        .query_opt(
            "SELECT n.nspname::text, c.relname::text, c.relreplident::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            &[&oid],
        )
        .await?
    else {
        return Ok(None);
    };
    let schema: String = row.get(0);
    let name: String = row.get(1);
    let ident: String = row.get(2);
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid, a.atttypmod, a.attnotnull, \
             array_position(i.indkey::int2[], a.attnum), pg_get_expr(d.adbin, d.adrelid) \
             FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await?;
    let mut columns = Vec::with_capacity(rows.len());
    let mut pk: Vec<(i32, String)> = Vec::new();
    for r in rows {
        let col_name: String = r.get(0);
        let type_oid: u32 = r.get(1);
        let type_modifier: i32 = r.get(2);
        let not_null: bool = r.get(3);
        let pk_pos: Option<i32> = r.get(4);
        let default: Option<String> = r.get(5);
        if let Some(p) = pk_pos {
            pk.push((p, col_name.clone()));
        }
        columns.push(ColumnMeta {
            kind: types.resolve(client, type_oid, type_modifier).await?,
            name: col_name,
            type_oid,
            type_modifier,
            not_null,
            default: default.as_deref().and_then(column_default),
        });
    }
    pk.sort();
    Ok(Some(TableMeta {
        oid,
        schema,
        name,
        columns,
        primary_key: pk.into_iter().map(|(_, n)| n).collect(),
        replica_identity: ident.bytes().next().unwrap_or(b'd'),
    }))
}

/// What a column's DEFAULT gives its schema.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnDefault {
    /// A constant: its text.
    Literal(String),
    /// A sequence (`nextval(…)`) or the current time (`now()`,
    /// `CURRENT_TIMESTAMP`…): the type's zero, as Debezium has it.
    Zero,
}

/// What the DEFAULT expression `expr` (as `pg_get_expr` prints it) gives:
/// a constant, the zero of sequences and clock functions, or nothing.
pub fn column_default(expr: &str) -> Option<ColumnDefault> {
    if let Some(v) = literal_default(expr) {
        return Some(ColumnDefault::Literal(v));
    }
    let e = expr.trim().to_ascii_lowercase();
    let clock = [
        "now()",
        "current_timestamp",
        "current_date",
        "current_time",
        "localtimestamp",
        "localtime",
        "transaction_timestamp()",
        "statement_timestamp()",
        "clock_timestamp()",
    ];
    (e.starts_with("nextval(") || clock.contains(&e.as_str())).then_some(ColumnDefault::Zero)
}

/// The value of a DEFAULT expression as `pg_get_expr` prints it, when it
/// is a constant: a quoted literal with an optional cast (`'a''b'::text`
/// gives `a'b`), a number or a boolean. Anything else is `None`.
pub fn literal_default(expr: &str) -> Option<String> {
    let expr = expr.trim();
    if let Some(rest) = expr.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        loop {
            match chars.next()? {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    out.push('\'');
                }
                '\'' => break,
                c => out.push(c),
            }
        }
        let tail: String = chars.collect();
        // Only a cast may follow the literal (`::text`, `::character varying`).
        let cast_only = tail.is_empty()
            || tail.strip_prefix("::").is_some_and(|t| {
                t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || " _.\"[]".contains(c))
            });
        return cast_only.then_some(out);
    }
    let bare = expr
        .strip_prefix('(')
        .and_then(|e| e.strip_suffix(')'))
        .unwrap_or(expr);
    let number = !bare.is_empty()
        && bare
            .trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
        && bare.chars().any(|c| c.is_ascii_digit());
    if number || bare == "true" || bare == "false" {
        return Some(bare.to_string());
    }
    None
}

/// The user tables of the database (ordinary and partitioned), as
/// (oid, schema, name), sorted by schema and name.
pub async fn list_tables(client: &Client) -> Result<Vec<(u32, String, String)>> {
    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 2, 3",
            &[],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::{column_default, literal_default, ColumnDefault};

    #[test]
    fn constant_defaults_are_read_others_are_not() {
        assert_eq!(
            literal_default("'required'::text").as_deref(),
            Some("required")
        );
        assert_eq!(
            literal_default("'it''s'::character varying").as_deref(),
            Some("it's")
        );
        assert_eq!(literal_default("''::text").as_deref(), Some(""));
        assert_eq!(literal_default("42").as_deref(), Some("42"));
        assert_eq!(literal_default("'-1'::integer").as_deref(), Some("-1"));
        assert_eq!(literal_default("(-1.5)").as_deref(), Some("-1.5"));
        assert_eq!(literal_default("true").as_deref(), Some("true"));
        assert_eq!(literal_default("now()"), None);
        assert_eq!(literal_default("nextval('t_id_seq'::regclass)"), None);
        assert_eq!(literal_default("'a'::text || 'b'::text"), None);
        assert_eq!(literal_default("CURRENT_TIMESTAMP"), None);
        assert_eq!(
            column_default("'x'::text"),
            Some(ColumnDefault::Literal("x".into()))
        );
        assert_eq!(
            column_default("nextval('t_id_seq'::regclass)"),
            Some(ColumnDefault::Zero)
        );
        assert_eq!(column_default("now()"), Some(ColumnDefault::Zero));
        assert_eq!(
            column_default("CURRENT_TIMESTAMP"),
            Some(ColumnDefault::Zero)
        );
        assert_eq!(column_default("md5(random()::text)"), None);
    }
}
