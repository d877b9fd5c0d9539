//! The syntax tree of the ksqlDB dialect, with the position of every name
//! and expression so errors can point at them.

use std::fmt;

use crate::types::SqlType;

/// A 1-based line and column in the statement text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}:{}", self.line, self.col)
    }
}

/// A name. Unquoted names are upper-cased, as ksqlDB does; back-quoted or
/// double-quoted names keep their case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident {
    pub name: String,
    pub pos: Pos,
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// One statement with the text it was parsed from (kept for the command
/// log, `SHOW QUERIES` and `EXPLAIN`).
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub statement: Statement,
    /// The statement's text, trimmed, ending with `;`.
    pub text: String,
    /// Where the statement starts in the submitted text.
    pub pos: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    Stream,
    Table,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Stream => "STREAM",
            SourceKind::Table => "TABLE",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A value column.
    None,
    /// `KEY` (streams).
    Key,
    /// `PRIMARY KEY` (tables).
    PrimaryKey,
    /// `HEADERS` or `HEADER('name')` columns.
    Headers,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: Ident,
    pub ty: SqlType,
    pub key: KeyKind,
    /// For `HEADER('name')` columns: the header's name.
    pub header: Option<String>,
}

/// A literal in a `WITH (…)` property list or a `SET`.
#[derive(Debug, Clone, PartialEq)]
pub enum PropValue {
    String(String),
    Number(String),
    Boolean(bool),
}

impl fmt::Display for PropValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PropValue::String(s) => f.write_str(s),
            PropValue::Number(n) => f.write_str(n),
            PropValue::Boolean(b) => write!(f, "{b}"),
        }
    }
}

/// `WITH (NAME = value, …)`; names upper-cased.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Props(pub Vec<(Ident, PropValue)>);

impl Props {
    pub fn get(&self, name: &str) -> Option<&PropValue> {
        self.0
            .iter()
            .find(|(k, _)| k.name.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
    pub fn get_ident(&self, name: &str) -> Option<&Ident> {
        self.0
            .iter()
            .find(|(k, _)| k.name.eq_ignore_ascii_case(name))
            .map(|(k, _)| k)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `CREATE [OR REPLACE] STREAM|TABLE [IF NOT EXISTS] name (cols) WITH (…)`;
    /// also `CREATE SOURCE …` (read-only), flagged by `source`.
    CreateSource {
        kind: SourceKind,
        or_replace: bool,
        if_not_exists: bool,
        source: bool,
        name: Ident,
        columns: Vec<ColumnDef>,
        props: Props,
    },
    /// `CREATE [OR REPLACE] STREAM|TABLE name [WITH (…)] AS SELECT …`.
    CreateAs {
        kind: SourceKind,
        or_replace: bool,
        if_not_exists: bool,
        name: Ident,
        props: Props,
        query: Query,
    },
    /// `INSERT INTO target [WITH (QUERY_ID='…')] SELECT …`.
    InsertSelect {
        target: Ident,
        props: Props,
        query: Query,
    },
    /// `INSERT INTO target [(cols)] VALUES (exprs)`.
    InsertValues {
        target: Ident,
        columns: Option<Vec<Ident>>,
        values: Vec<Expr>,
    },
    /// `DROP STREAM|TABLE [IF EXISTS] name [DELETE TOPIC]`.
    Drop {
        kind: SourceKind,
        if_exists: bool,
        name: Ident,
        delete_topic: bool,
    },
    /// `TERMINATE query_id` or `TERMINATE ALL`; `None` is ALL.
    Terminate { query_id: Option<Ident> },
    /// `SHOW|LIST …`.
    Show { what: ShowWhat, extended: bool },
    /// `CREATE SOURCE|SINK CONNECTOR [IF NOT EXISTS] name WITH (…)`: the
    /// properties as written (names keep their case), sent to Kafka
    /// Connect.
    CreateConnector {
        kind: ConnectorKind,
        if_not_exists: bool,
        name: Ident,
        config: Vec<(String, String)>,
    },
    /// `DROP CONNECTOR [IF EXISTS] name`.
    DropConnector { if_exists: bool, name: Ident },
    /// `DESCRIBE [STREAMS|TABLES|FUNCTION name|name] [EXTENDED]`.
    Describe {
        target: DescribeTarget,
        extended: bool,
    },
    /// `EXPLAIN query_id` or `EXPLAIN <statement>`.
    Explain(ExplainTarget),
    /// `PRINT topic [FROM BEGINNING] [INTERVAL|SAMPLE n] [LIMIT n]`.
    Print {
        topic: Ident,
        from_beginning: bool,
        interval: Option<u64>,
        limit: Option<u64>,
    },
    /// `SET 'name' = 'value'`.
    Set { name: String, value: String },
    /// `UNSET 'name'`.
    Unset { name: String },
    /// `DEFINE name = 'value'`.
    Define { name: Ident, value: String },
    /// `UNDEFINE name`.
    Undefine { name: Ident },
    /// `CREATE TYPE [IF NOT EXISTS] name AS type`: a name for a type that
    /// column definitions and casts may use.
    CreateType {
        name: Ident,
        ty: SqlType,
        if_not_exists: bool,
    },
    /// `DROP TYPE [IF EXISTS] name`.
    DropType { name: Ident, if_exists: bool },
    /// `ALTER STREAM|TABLE name ADD [COLUMN] name type, …`: value columns
    /// added to a source.
    Alter {
        kind: SourceKind,
        name: Ident,
        columns: Vec<ColumnDef>,
    },
    /// `RUN SCRIPT 'file'` (the CLI runs it; the server refuses it).
    RunScript { path: String },
    /// A bare `SELECT`: a push query with `EMIT CHANGES`, a pull query
    /// without.
    Select(Query),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ShowWhat {
    /// `SHOW [SOURCE|SINK] CONNECTORS`; `None` is all of them.
    Connectors(Option<ConnectorKind>),
    Streams,
    Tables,
    Queries,
    Topics {
        all: bool,
    },
    Properties,
    Functions,
    Variables,
}

/// A connector's direction, as the connector statements name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorKind {
    Source,
    Sink,
}

impl ConnectorKind {
    /// `source` or `sink`, as Kafka Connect writes a connector's type.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorKind::Source => "source",
            ConnectorKind::Sink => "sink",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum DescribeTarget {
    /// `DESCRIBE CONNECTOR name`.
    Connector(Ident),
    Source(Ident),
    Function(Ident),
    Streams,
    Tables,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExplainTarget {
    QueryId(Ident),
    Statement(Box<Statement>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: Relation,
    pub joins: Vec<Join>,
    pub window: Option<WindowSpec>,
    pub where_: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub partition_by: Vec<Expr>,
    pub having: Option<Expr>,
    pub emit: Option<Emit>,
    pub limit: Option<u64>,
    /// Where `SELECT` is.
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*` or `alias.*`.
    Star {
        qualifier: Option<Ident>,
        pos: Pos,
    },
    Expr {
        expr: Expr,
        alias: Option<Ident>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    pub name: Ident,
    pub alias: Option<Ident>,
}

impl Relation {
    /// The name columns are qualified with: the alias, else the name.
    pub fn qualifier(&self) -> &Ident {
        self.alias.as_ref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

impl fmt::Display for JoinKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JoinKind::Inner => "INNER",
            JoinKind::Left => "LEFT OUTER",
            JoinKind::Right => "RIGHT OUTER",
            JoinKind::Full => "FULL OUTER",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    pub kind: JoinKind,
    pub right: Relation,
    pub within: Option<Within>,
    pub on: Expr,
    /// Where the join keyword is.
    pub pos: Pos,
}

/// `WITHIN n unit` or `WITHIN (before, after)`, with an optional grace.
#[derive(Debug, Clone, PartialEq)]
pub struct Within {
    pub before: DurationSpec,
    pub after: DurationSpec,
    pub grace: Option<DurationSpec>,
}

/// A length of time as written: `1 DAY`, `30 SECONDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationSpec {
    pub millis: i64,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WindowSpec {
    pub kind: WindowKind,
    pub retention: Option<DurationSpec>,
    pub grace: Option<DurationSpec>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WindowKind {
    Tumbling {
        size: DurationSpec,
    },
    Hopping {
        size: DurationSpec,
        advance: DurationSpec,
    },
    Session {
        gap: DurationSpec,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    Changes,
    Final,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub pos: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Concat,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

impl fmt::Display for BinaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Concat => "||",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
}

/// A literal as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Boolean(bool),
    /// An integer literal: INT if it fits, else BIGINT.
    Integer(i64),
    /// A literal with a decimal point: DECIMAL, as in ksqlDB.
    Decimal(String),
    /// A literal with an exponent: DOUBLE.
    Double(f64),
    String(String),
}

/// The field name of `expr->*`, every field of a struct.
pub const STRUCT_ALL_FIELD: &str = "*";

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Literal(Literal),
    /// A column, optionally qualified (`s.col`), including pseudo columns
    /// (ROWTIME, WINDOWSTART, …).
    Column {
        qualifier: Option<Ident>,
        name: Ident,
    },
    /// `expr->field`; `expr->*` (a select item only) has the field
    /// [`STRUCT_ALL_FIELD`].
    Deref {
        expr: Box<Expr>,
        field: Ident,
    },
    /// `expr[index]` (arrays are 1-based; negative counts from the end) or
    /// `map['key']`.
    Subscript {
        expr: Box<Expr>,
        index: Box<Expr>,
    },
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    /// `a IS [NOT] DISTINCT FROM b`.
    IsDistinctFrom {
        left: Box<Expr>,
        right: Box<Expr>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        escape: Option<char>,
        negated: bool,
    },
    /// `CASE [operand] WHEN … THEN … [ELSE …] END`.
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        else_: Option<Box<Expr>>,
    },
    Cast {
        expr: Box<Expr>,
        ty: SqlType,
    },
    /// A function call; `COUNT(*)` has `star` set and no args.
    Function {
        name: Ident,
        args: Vec<Expr>,
        star: bool,
        distinct: bool,
    },
    /// `(x, y) => body` or `x => body`, as a lambda argument.
    Lambda {
        params: Vec<Ident>,
        body: Box<Expr>,
    },
    /// `ARRAY[a, b]`.
    Array(Vec<Expr>),
    /// `MAP(k := v, …)`.
    Map(Vec<(Expr, Expr)>),
    /// `STRUCT(name := v, …)`.
    Struct(Vec<(Ident, Expr)>),
}
