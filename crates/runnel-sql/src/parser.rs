//! The recursive-descent parser of the ksqlDB dialect: owns turning statement
//! text into [`Parsed`] statements and expressions, and the syntax errors
//! users see (with line, column, the offending token and what was expected).
//!
//! Keywords are recognised only where the grammar expects them, so most
//! words (`KEY`, `TYPE`, `SIZE`, …) can be column or source names; a short
//! list of clause words ([`RESERVED`]) cannot be used unquoted as names.
//! Expression nesting is capped at [`MAX_DEPTH`] so hostile input cannot
//! overflow the stack.

use std::collections::BTreeMap;
use std::fmt;

use crate::ast::{
    BinaryOp, ColumnDef, ConnectorKind, DescribeTarget, DurationSpec, Emit, ExplainTarget, Expr,
    ExprKind, Ident, Join, JoinKind, KeyKind, Literal, Parsed, Pos, PropValue, Props, Query,
    Relation, SelectItem, ShowWhat, SourceKind, Statement, UnaryOp, WindowKind, WindowSpec, Within,
    STRUCT_ALL_FIELD,
};
use crate::lexer::{tokenize, LexError, Token, TokenKind};
use crate::types::SqlType;

/// A statement text that does not parse: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}:{}: {}", self.line, self.col, self.message)
    }
}

impl std::error::Error for ParseError {}

impl From<LexError> for ParseError {
    fn from(e: LexError) -> Self {
        ParseError {
            line: e.pos.line,
            col: e.pos.col,
            message: e.message,
        }
    }
}

/// How deeply expressions (and types) may nest before the parser refuses.
pub const MAX_DEPTH: usize = 200;

/// How many operators (binary, NOT, signs, `->`, `[…]`) an expression may
/// stack up on one path: the tree's height, so that dropping, printing or
/// binding it cannot overflow the stack either.
pub const MAX_OPERATORS: usize = 256;

/// Words that cannot be unquoted names: they start or separate clauses, or
/// are operators, so reading them as names would make the grammar ambiguous.
pub const RESERVED: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "WINDOW",
    "GROUP",
    "BY",
    "PARTITION",
    "HAVING",
    "EMIT",
    "LIMIT",
    "JOIN",
    "INNER",
    "LEFT",
    "RIGHT",
    "FULL",
    "OUTER",
    "ON",
    "WITHIN",
    "AS",
    "AND",
    "OR",
    "NOT",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "IN",
    "LIKE",
    "BETWEEN",
    "ESCAPE",
    "CAST",
    "DISTINCT",
    "WITH",
    "INTO",
    "VALUES",
    "CREATE",
    "INSERT",
    "DROP",
];

const STATEMENT_KEYWORDS: &[&str] = &[
    "SELECT",
    "CREATE",
    "INSERT",
    "DROP",
    "TERMINATE",
    "SHOW",
    "LIST",
    "DESCRIBE",
    "EXPLAIN",
    "PRINT",
    "SET",
    "UNSET",
    "DEFINE",
    "UNDEFINE",
    "RUN",
    "ALTER",
];

/// Keywords that may follow a complete clause of a query: a misspelling of
/// one of them is what an unexpected word after a query usually is.
const CLAUSE_KEYWORDS: &[&str] = &[
    "FROM",
    "JOIN",
    "INNER",
    "LEFT",
    "RIGHT",
    "FULL",
    "WITHIN",
    "ON",
    "WINDOW",
    "WHERE",
    "GROUP",
    "PARTITION",
    "HAVING",
    "EMIT",
    "LIMIT",
    "AS",
    "AND",
    "OR",
];

/// Every type name the parser knows (also for the CLI's completion).
pub const TYPE_NAMES: &[&str] = &[
    "BOOLEAN",
    "INT",
    "INTEGER",
    "BIGINT",
    "DOUBLE",
    "DECIMAL",
    "STRING",
    "VARCHAR",
    "BYTES",
    "DATE",
    "TIME",
    "TIMESTAMP",
    "ARRAY",
    "MAP",
    "STRUCT",
];

const TIME_UNITS: &[(&str, i64)] = &[
    ("MILLISECOND", 1),
    ("MILLISECONDS", 1),
    ("SECOND", 1_000),
    ("SECONDS", 1_000),
    ("MINUTE", 60_000),
    ("MINUTES", 60_000),
    ("HOUR", 3_600_000),
    ("HOURS", 3_600_000),
    ("DAY", 86_400_000),
    ("DAYS", 86_400_000),
];

type PResult<T> = Result<T, ParseError>;

const PREC_OR: u8 = 1;
const PREC_AND: u8 = 2;
const PREC_NOT: u8 = 3;
const PREC_CMP: u8 = 4;
const PREC_ADD: u8 = 5;
const PREC_MUL: u8 = 6;

/// Parses one or more `;`-terminated statements (the last `;` may be
/// missing; empty statements are skipped).
pub fn parse(text: &str) -> Result<Vec<Parsed>, ParseError> {
    parse_with_types(text, &BTreeMap::new())
}

/// Parses statements where the custom types `types` (CREATE TYPE) may
/// name column types; a CREATE TYPE or DROP TYPE in `text` applies to the
/// statements after it.
pub fn parse_with_types(
    text: &str,
    types: &BTreeMap<String, SqlType>,
) -> Result<Vec<Parsed>, ParseError> {
    let mut p = Parser::new(text)?;
    p.types = types.clone();
    let mut out = Vec::new();
    loop {
        while p.eat(&TokenKind::Semicolon) {}
        if p.at(&TokenKind::Eof) {
            return Ok(out);
        }
        let first = p.peek().clone();
        let statement = p.statement()?;
        if !p.at_end() {
            return Err(p.end_error());
        }
        match &statement {
            Statement::CreateType { name, ty, .. } => {
                p.types
                    .entry(name.name.clone())
                    .or_insert_with(|| ty.clone());
            }
            Statement::DropType { name, .. } => {
                p.types.remove(&name.name);
            }
            _ => {}
        }
        let end = p.prev_end();
        let body = text.get(first.start..end).unwrap_or("").trim();
        out.push(Parsed {
            statement,
            text: format!("{body};"),
            pos: first.pos,
        });
    }
}

/// Parses exactly one statement.
pub fn parse_one(text: &str) -> Result<Parsed, ParseError> {
    parse_one_with_types(text, &BTreeMap::new())
}

/// Parses exactly one statement, with custom types (see
/// [`parse_with_types`]).
pub fn parse_one_with_types(
    text: &str,
    types: &BTreeMap<String, SqlType>,
) -> Result<Parsed, ParseError> {
    let mut all = parse_with_types(text, types)?.into_iter();
    match (all.next(), all.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => {
            let p = Parser::new(text)?;
            Err(p.error_at_eof("unexpected end of input; expected a statement"))
        }
        (Some(_), Some(second)) => Err(ParseError {
            line: second.pos.line,
            col: second.pos.col,
            message: "expected a single statement, but another statement starts here".into(),
        }),
    }
}

/// Parses an expression alone (the whole text must be one expression).
pub fn parse_expr(text: &str) -> Result<Expr, ParseError> {
    let mut p = Parser::new(text)?;
    let e = p.expr()?;
    if !p.at(&TokenKind::Eof) {
        return Err(p.error_here("the end of the expression", CLAUSE_KEYWORDS));
    }
    Ok(e)
}

/// Splits a script into statement texts at top-level `;` (semicolons in
/// strings, quoted names and comments do not split). Each text runs from
/// its first token to its `;` inclusive; a final statement without `;` is
/// returned without one, so a caller can tell it is unterminated. Empty
/// statements are skipped.
pub fn split_statements(text: &str) -> Result<Vec<String>, ParseError> {
    Ok(split_statements_at(text)?
        .into_iter()
        .map(|(_, s)| s)
        .collect())
}

/// [`split_statements`], each statement with the byte offset in `text`
/// where it starts (to report positions in the whole script).
pub fn split_statements_at(text: &str) -> Result<Vec<(usize, String)>, ParseError> {
    let tokens = tokenize(text)?;
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut last_end = 0;
    for t in &tokens {
        match t.kind {
            TokenKind::Semicolon => {
                if let Some(s) = start.take() {
                    out.push((s, text.get(s..t.end).unwrap_or("").to_string()));
                }
            }
            TokenKind::Eof => {
                if let Some(s) = start.take() {
                    out.push((s, text.get(s..last_end).unwrap_or("").to_string()));
                }
            }
            _ => {
                if start.is_none() {
                    start = Some(t.start);
                }
                last_end = t.end;
            }
        }
    }
    Ok(out)
}

/// The Optimal String Alignment distance (edits, with adjacent swaps
/// counting as one); `usize::MAX` for words too long to be keywords.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > 32 || b.len() > 32 {
        return usize::MAX;
    }
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The keyword among `candidates` that `word` is most likely a misspelling
/// of: at most 2 edits away (1 for short keywords), and not `word` itself.
fn suggest<'k>(word: &str, candidates: &[&'k str]) -> Option<&'k str> {
    let mut best: Option<(usize, &'k str)> = None;
    for &c in candidates {
        let d = edit_distance(word, c);
        let limit = if c.len() <= 3 { 1 } else { 2 };
        if d == 0 || d > limit {
            continue;
        }
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn is_reserved(word: &str) -> bool {
    RESERVED.contains(&word)
}

fn expr(kind: ExprKind, pos: Pos) -> Expr {
    Expr { kind, pos }
}

fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    let pos = left.pos;
    expr(
        ExprKind::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
        },
        pos,
    )
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Token>,
    i: usize,
    eof: Token,
    depth: usize,
    /// Operators on the current path (see [`MAX_OPERATORS`]).
    operators: usize,
    /// The index of the last alias read without `AS`: if the next token is
    /// unexpected, that alias was probably a misspelled keyword.
    implicit_alias: Option<usize>,
    /// Custom types (CREATE TYPE) a column type may name.
    types: BTreeMap<String, SqlType>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> PResult<Self> {
        let toks = tokenize(text)?;
        let eof = toks.last().cloned().unwrap_or(Token {
            kind: TokenKind::Eof,
            pos: Pos { line: 1, col: 1 },
            start: text.len(),
            end: text.len(),
        });
        Ok(Parser {
            text,
            toks,
            i: 0,
            eof,
            depth: 0,
            operators: 0,
            implicit_alias: None,
            types: BTreeMap::new(),
        })
    }

    // ---- token access -------------------------------------------------

    fn peek(&self) -> &Token {
        self.toks.get(self.i).unwrap_or(&self.eof)
    }

    fn peek_at(&self, n: usize) -> &Token {
        self.toks.get(self.i.saturating_add(n)).unwrap_or(&self.eof)
    }

    fn kind(&self) -> &TokenKind {
        &self.peek().kind
    }

    fn pos(&self) -> Pos {
        self.peek().pos
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.kind != TokenKind::Eof {
            self.i += 1;
        }
        t
    }

    fn prev_end(&self) -> usize {
        self.i
            .checked_sub(1)
            .and_then(|j| self.toks.get(j))
            .map_or(0, |t| t.end)
    }

    fn at(&self, k: &TokenKind) -> bool {
        self.kind() == k
    }

    fn eat(&mut self, k: &TokenKind) -> bool {
        if self.at(k) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// Whether the statement ends here (`;` or the end of the text).
    fn at_end(&self) -> bool {
        matches!(self.kind(), TokenKind::Semicolon | TokenKind::Eof)
    }

    fn expect(&mut self, k: &TokenKind, what: &str) -> PResult<Pos> {
        if self.at(k) {
            Ok(self.bump().pos)
        } else if *k == TokenKind::RParen && self.at(&TokenKind::Comma) {
            // A list where one expression belongs (GROUP BY (a, b)): in
            // ksqlDB's parser's words.
            Err(Self::error_at(
                self.peek(),
                "Syntax Error\nmissing ')' at ','".to_string(),
            ))
        } else {
            Err(self.error_here(what, &[]))
        }
    }

    /// ksqlDB's error where no rule of its grammar fits the current token.
    #[cold]
    fn no_viable_alternative(&self) -> ParseError {
        let t = self.peek();
        Self::error_at(
            t,
            format!(
                "Syntax Error\nSyntax error at or near '{}' at line {}:{}",
                self.token_text(t),
                t.pos.line,
                t.pos.col
            ),
        )
    }

    fn word_at(&self, n: usize, w: &str) -> bool {
        matches!(&self.peek_at(n).kind, TokenKind::Word(x) if x == w)
    }

    fn at_word(&self, w: &str) -> bool {
        self.word_at(0, w)
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.at_word(w) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_word(&mut self, w: &str) -> PResult<Pos> {
        if self.at_word(w) {
            return Ok(self.bump().pos);
        }
        if let Some(e) = self.alias_near_miss(&[w]) {
            return Err(e);
        }
        Err(self.error_here(w, &[w]))
    }

    /// The current word, if it is an unquoted word.
    fn current_word(&self) -> Option<&str> {
        match self.kind() {
            TokenKind::Word(w) => Some(w),
            _ => None,
        }
    }

    // ---- errors -------------------------------------------------------

    fn token_text(&self, t: &Token) -> String {
        let s = self.text.get(t.start..t.end).unwrap_or("");
        if s.chars().count() > 40 {
            let cut: String = s.chars().take(40).collect();
            format!("{cut}…")
        } else {
            s.to_string()
        }
    }

    #[cold]
    #[inline(never)]
    fn error_at(t: &Token, message: String) -> ParseError {
        ParseError {
            line: t.pos.line,
            col: t.pos.col,
            message,
        }
    }

    fn error_at_eof(&self, message: &str) -> ParseError {
        Self::error_at(&self.eof, message.to_string())
    }

    /// An error at the current token: what it is and what was `expected`,
    /// with a suggestion if the token is a near miss of a `candidates` word.
    #[cold]
    #[inline(never)]
    fn error_here(&self, expected: &str, candidates: &[&str]) -> ParseError {
        let t = self.peek();
        if self.at_end() {
            return Self::error_at(
                t,
                format!("unexpected end of statement; expected {expected}"),
            );
        }
        let mut message = format!(
            "Syntax Error at or near '{}': expected {expected}",
            self.token_text(t)
        );
        if let Some(kw) = self.current_word().and_then(|w| suggest(w, candidates)) {
            message.push_str(&format!("; did you mean {kw}?"));
        }
        Self::error_at(t, message)
    }

    /// If the token just before the current one was read as an implicit
    /// alias but looks like a misspelled keyword, the error belongs there.
    #[cold]
    #[inline(never)]
    fn alias_near_miss(&self, candidates: &[&str]) -> Option<ParseError> {
        let idx = self.implicit_alias?;
        if idx.checked_add(1) != Some(self.i) {
            return None;
        }
        let t = self.toks.get(idx)?;
        let TokenKind::Word(w) = &t.kind else {
            return None;
        };
        let kw = suggest(w, candidates)?;
        Some(Self::error_at(
            t,
            format!(
                "Syntax Error at or near '{}': expected {kw}; did you mean {kw}?",
                self.token_text(t)
            ),
        ))
    }

    /// The error for a statement followed by something other than `;`.
    fn end_error(&self) -> ParseError {
        if let Some(e) = self.alias_near_miss(CLAUSE_KEYWORDS) {
            return e;
        }
        self.error_here("';'", CLAUSE_KEYWORDS)
    }

    fn enter(&mut self) -> PResult<()> {
        if self.depth >= MAX_DEPTH {
            return Err(self.too_deep());
        }
        self.depth += 1;
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn too_deep(&self) -> ParseError {
        Self::error_at(
            self.peek(),
            format!("expression nested too deeply (more than {MAX_DEPTH} levels)"),
        )
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // ---- names and literals -------------------------------------------

    fn ident_impl(&mut self, what: &str, allow_reserved: bool) -> PResult<Ident> {
        let t = self.peek().clone();
        match &t.kind {
            TokenKind::Word(w) if allow_reserved || !is_reserved(w) => {
                self.bump();
                Ok(Ident {
                    name: w.clone(),
                    pos: t.pos,
                })
            }
            TokenKind::QuotedIdent(s) => {
                self.bump();
                Ok(Ident {
                    name: s.clone(),
                    pos: t.pos,
                })
            }
            TokenKind::Word(w) => Err(Self::error_at(
                &t,
                format!(
                    "Syntax Error at or near '{}': expected {what}, but {w} is a reserved word \
                     (quote it as `{}` to use it as a name)",
                    self.token_text(&t),
                    self.token_text(&t)
                ),
            )),
            _ => Err(self.error_here(what, &[])),
        }
    }

    /// A name that is not a reserved word (unless quoted).
    fn ident(&mut self, what: &str) -> PResult<Ident> {
        self.ident_impl(what, false)
    }

    /// A name where no keyword could be meant (struct fields, `->field`).
    fn ident_any(&mut self, what: &str) -> PResult<Ident> {
        self.ident_impl(what, true)
    }

    fn at_name(&self) -> bool {
        match self.kind() {
            TokenKind::Word(w) => !is_reserved(w),
            TokenKind::QuotedIdent(_) => true,
            _ => false,
        }
    }

    fn string(&mut self, what: &str) -> PResult<String> {
        if let TokenKind::String(s) = self.kind() {
            let s = s.clone();
            self.bump();
            Ok(s)
        } else {
            Err(self.error_here(what, &[]))
        }
    }

    fn unsigned(&mut self, what: &str) -> PResult<u64> {
        let t = self.peek().clone();
        if let TokenKind::Integer(s) = &t.kind {
            self.bump();
            s.parse::<u64>()
                .map_err(|_| Self::error_at(&t, format!("number '{s}' is too large for {what}")))
        } else {
            Err(self.error_here(what, &[]))
        }
    }

    /// `n UNIT`, e.g. `1 DAY`.
    fn duration(&mut self) -> PResult<DurationSpec> {
        let t = self.peek().clone();
        let TokenKind::Integer(digits) = &t.kind else {
            return Err(self.error_here("a duration such as 30 SECONDS", &[]));
        };
        self.bump();
        let n: i64 = digits
            .parse()
            .map_err(|_| Self::error_at(&t, format!("duration '{digits}' is too large")))?;
        let unit_names: Vec<&str> = TIME_UNITS.iter().map(|(u, _)| *u).collect();
        let unit = self
            .current_word()
            .and_then(|w| TIME_UNITS.iter().find(|(u, _)| *u == w))
            .map(|(_, m)| *m);
        let Some(unit) = unit else {
            return Err(self.error_here(
                "a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS)",
                &unit_names,
            ));
        };
        self.bump();
        let millis = n
            .checked_mul(unit)
            .ok_or_else(|| Self::error_at(&t, format!("duration '{digits}' is too large")))?;
        Ok(DurationSpec { millis, pos: t.pos })
    }

    // ---- statements ---------------------------------------------------

    fn statement(&mut self) -> PResult<Statement> {
        self.implicit_alias = None;
        let Some(word) = self.current_word().map(str::to_string) else {
            return Err(self.error_here("a statement", STATEMENT_KEYWORDS));
        };
        match word.as_str() {
            "SELECT" => Ok(Statement::Select(self.query()?)),
            "CREATE" => self.create(),
            "INSERT" => self.insert(),
            "DROP" => self.drop_statement(),
            "ALTER" => {
                self.bump();
                let kind = self.source_kind()?;
                let name = self.ident("a stream or table name")?;
                let mut columns = Vec::new();
                loop {
                    self.expect_word("ADD")?;
                    self.eat_word("COLUMN");
                    let name = self.ident("a column name")?;
                    let ty = self.sql_type()?;
                    columns.push(ColumnDef {
                        name,
                        ty,
                        key: KeyKind::None,
                        header: None,
                    });
                    if !self.eat(&TokenKind::Comma) {
                        break;
                    }
                }
                Ok(Statement::Alter {
                    kind,
                    name,
                    columns,
                })
            }
            "TERMINATE" => {
                self.bump();
                if self.eat_word("ALL") {
                    Ok(Statement::Terminate { query_id: None })
                } else {
                    let id = self.ident("a query id or ALL")?;
                    Ok(Statement::Terminate { query_id: Some(id) })
                }
            }
            "SHOW" | "LIST" => self.show(),
            "DESCRIBE" => self.describe(),
            "EXPLAIN" => {
                self.bump();
                if matches!(self.current_word(), Some("SELECT" | "CREATE" | "INSERT")) {
                    Ok(Statement::Explain(ExplainTarget::Statement(Box::new(
                        self.statement()?,
                    ))))
                } else {
                    let id = self.ident("a query id or a statement")?;
                    Ok(Statement::Explain(ExplainTarget::QueryId(id)))
                }
            }
            "PRINT" => self.print(),
            "SET" => {
                self.bump();
                let name = self.string("a property name in quotes, e.g. 'auto.offset.reset'")?;
                self.expect(&TokenKind::Eq, "'='")?;
                let value = self.string("a value in quotes")?;
                Ok(Statement::Set { name, value })
            }
            "UNSET" => {
                self.bump();
                let name = self.string("a property name in quotes, e.g. 'auto.offset.reset'")?;
                Ok(Statement::Unset { name })
            }
            "DEFINE" => {
                self.bump();
                let name = self.ident("a variable name")?;
                self.expect(&TokenKind::Eq, "'='")?;
                let value = self.string("a value in quotes")?;
                Ok(Statement::Define { name, value })
            }
            "UNDEFINE" => {
                self.bump();
                let name = self.ident("a variable name")?;
                Ok(Statement::Undefine { name })
            }
            // ksqlDB's test runner's ASSERT statements are not SQL a
            // server runs.
            "ASSERT" => {
                self.bump();
                Err(self.no_viable_alternative())
            }
            "RUN" => {
                self.bump();
                self.expect_word("SCRIPT")?;
                let path = self.string("a file path in quotes")?;
                Ok(Statement::RunScript { path })
            }
            _ => Err(self.error_here("a statement", STATEMENT_KEYWORDS)),
        }
    }

    /// An optional `IF NOT EXISTS`.
    fn if_not_exists(&mut self) -> PResult<bool> {
        if !self.eat_word("IF") {
            return Ok(false);
        }
        self.expect_word("NOT")?;
        self.expect_word("EXISTS")?;
        Ok(true)
    }

    /// An optional `IF EXISTS`.
    fn if_exists(&mut self) -> PResult<bool> {
        if !self.eat_word("IF") {
            return Ok(false);
        }
        self.expect_word("EXISTS")?;
        Ok(true)
    }

    fn source_kind(&mut self) -> PResult<SourceKind> {
        if self.eat_word("STREAM") {
            Ok(SourceKind::Stream)
        } else if self.eat_word("TABLE") {
            Ok(SourceKind::Table)
        } else {
            Err(self.error_here("STREAM or TABLE", &["STREAM", "TABLE"]))
        }
    }

    fn create(&mut self) -> PResult<Statement> {
        self.expect_word("CREATE")?;
        let or_replace = if self.eat_word("OR") {
            self.expect_word("REPLACE")?;
            true
        } else {
            false
        };
        if !or_replace
            && matches!(self.current_word(), Some("SOURCE" | "SINK"))
            && self.word_at(1, "CONNECTOR")
        {
            return self.create_connector();
        }
        if !or_replace && self.eat_word("TYPE") {
            let if_not_exists = self.if_not_exists()?;
            let name = self.ident("a type name")?;
            self.expect_word("AS")?;
            let ty = self.sql_type()?;
            return Ok(Statement::CreateType {
                name,
                ty,
                if_not_exists,
            });
        }
        let source_pos = self.pos();
        let source = self.eat_word("SOURCE");
        let kind = self.source_kind()?;
        let if_not_exists = self.if_not_exists()?;
        let name = self.ident("a stream or table name")?;
        let columns_pos = self.pos();
        let columns = if self.at(&TokenKind::LParen) {
            Some(self.column_defs()?)
        } else {
            None
        };
        let props = if self.at_word("WITH") {
            self.props()?
        } else {
            Props::default()
        };
        if self.at_word("AS") {
            let as_tok = self.peek().clone();
            if source {
                return Err(ParseError {
                    line: source_pos.line,
                    col: source_pos.col,
                    message: format!(
                        "CREATE SOURCE {kind} cannot have AS SELECT: source {}s are read-only",
                        kind.to_string().to_lowercase()
                    ),
                });
            }
            if columns.is_some() {
                return Err(ParseError {
                    line: columns_pos.line,
                    col: columns_pos.col,
                    message: format!(
                        "Syntax Error at or near '{}': CREATE {kind} … AS SELECT takes its \
                         columns from the query; remove the column list",
                        self.token_text(&as_tok)
                    ),
                });
            }
            self.bump();
            let query = self.query()?;
            return Ok(Statement::CreateAs {
                kind,
                or_replace,
                if_not_exists,
                name,
                props,
                query,
            });
        }
        if !self.at_end() {
            let expected = if columns.is_none() && props.0.is_empty() {
                "'(', WITH or AS"
            } else if props.0.is_empty() {
                "WITH or AS"
            } else {
                "AS or ';'"
            };
            return Err(self.error_here(expected, &["WITH", "AS"]));
        }
        Ok(Statement::CreateSource {
            kind,
            or_replace,
            if_not_exists,
            source,
            name,
            columns: columns.unwrap_or_default(),
            props,
        })
    }

    fn column_defs(&mut self) -> PResult<Vec<ColumnDef>> {
        self.expect(&TokenKind::LParen, "'('")?;
        let mut cols = Vec::new();
        loop {
            let name = self.ident("a column name")?;
            let ty = self.sql_type()?;
            let mut key = KeyKind::None;
            let mut header = None;
            if self.eat_word("KEY") {
                key = KeyKind::Key;
            } else if self.eat_word("PRIMARY") {
                self.expect_word("KEY")?;
                key = KeyKind::PrimaryKey;
            } else if self.eat_word("HEADERS") {
                key = KeyKind::Headers;
            } else if self.eat_word("HEADER") {
                self.expect(&TokenKind::LParen, "'('")?;
                header = Some(self.string("a header name in quotes")?);
                self.expect(&TokenKind::RParen, "')'")?;
                key = KeyKind::Headers;
            }
            cols.push(ColumnDef {
                name,
                ty,
                key,
                header,
            });
            if self.eat(&TokenKind::Comma) {
                continue;
            }
            if self.at(&TokenKind::RParen) {
                self.bump();
                return Ok(cols);
            }
            if self.at(&TokenKind::LParen) {
                // A second parameter list (`VARCHAR(STRING) (KEY)`).
                return Err(Self::error_at(
                    self.peek(),
                    "Syntax Error\nExpecting {',', ')'}".to_string(),
                ));
            }
            return Err(self.error_here("',' or ')'", &["KEY", "PRIMARY", "HEADERS", "HEADER"]));
        }
    }

    /// `WITH (NAME = literal, …)`.
    fn props(&mut self) -> PResult<Props> {
        self.expect_word("WITH")?;
        self.expect(&TokenKind::LParen, "'('")?;
        let mut props: Vec<(Ident, PropValue)> = Vec::new();
        loop {
            let mut name = self.ident_any("a property name")?;
            name.name = name.name.to_uppercase();
            if props.iter().any(|(k, _)| k.name == name.name) {
                return Err(ParseError {
                    line: name.pos.line,
                    col: name.pos.col,
                    message: format!("duplicate property {}", name.name),
                });
            }
            self.expect(&TokenKind::Eq, "'='")?;
            let value = self.prop_value()?;
            props.push((name, value));
            if self.eat(&TokenKind::Comma) {
                continue;
            }
            self.expect(&TokenKind::RParen, "',' or ')'")?;
            return Ok(Props(props));
        }
    }

    fn prop_value(&mut self) -> PResult<PropValue> {
        let negative = self.eat(&TokenKind::Minus);
        let t = self.peek().clone();
        let v = match &t.kind {
            TokenKind::String(s) if !negative => PropValue::String(s.clone()),
            TokenKind::Integer(n) | TokenKind::Decimal(n) | TokenKind::Double(n) => {
                PropValue::Number(if negative { format!("-{n}") } else { n.clone() })
            }
            TokenKind::Word(w) if !negative && w == "TRUE" => PropValue::Boolean(true),
            TokenKind::Word(w) if !negative && w == "FALSE" => PropValue::Boolean(false),
            _ => {
                return Err(self.error_here(
                    if negative {
                        "a number"
                    } else {
                        "a string, number or boolean literal"
                    },
                    &["TRUE", "FALSE"],
                ))
            }
        };
        self.bump();
        Ok(v)
    }

    fn insert(&mut self) -> PResult<Statement> {
        self.expect_word("INSERT")?;
        self.expect_word("INTO")?;
        let target = self.ident("a stream or table name")?;
        if self.at(&TokenKind::LParen) || self.at_word("VALUES") {
            let columns = if self.eat(&TokenKind::LParen) {
                let mut cols = vec![self.ident("a column name")?];
                while self.eat(&TokenKind::Comma) {
                    cols.push(self.ident("a column name")?);
                }
                self.expect(&TokenKind::RParen, "',' or ')'")?;
                Some(cols)
            } else {
                None
            };
            self.expect_word("VALUES")?;
            self.expect(&TokenKind::LParen, "'('")?;
            let mut values = vec![self.expr()?];
            while self.eat(&TokenKind::Comma) {
                values.push(self.expr()?);
            }
            self.expect(&TokenKind::RParen, "',' or ')'")?;
            return Ok(Statement::InsertValues {
                target,
                columns,
                values,
            });
        }
        let props = if self.at_word("WITH") {
            self.props()?
        } else {
            Props::default()
        };
        if !self.at_word("SELECT") {
            let expected = if props.0.is_empty() {
                "SELECT, VALUES, WITH or '('"
            } else {
                "SELECT"
            };
            return Err(self.error_here(expected, &["SELECT", "VALUES", "WITH"]));
        }
        let query = self.query()?;
        Ok(Statement::InsertSelect {
            target,
            props,
            query,
        })
    }

    /// `SOURCE|SINK CONNECTOR [IF NOT EXISTS] name WITH ('k'='v', …)`
    /// after CREATE.
    fn create_connector(&mut self) -> PResult<Statement> {
        let kind = if self.eat_word("SOURCE") {
            ConnectorKind::Source
        } else {
            self.expect_word("SINK")?;
            ConnectorKind::Sink
        };
        self.expect_word("CONNECTOR")?;
        let if_not_exists = self.if_not_exists()?;
        let name = self.ident("a connector name")?;
        self.expect_word("WITH")?;
        self.expect(&TokenKind::LParen, "'('")?;
        let mut config: Vec<(String, String)> = Vec::new();
        loop {
            // Connector property names are case-sensitive: quoted, as
            // written.
            let t = self.peek().clone();
            let key = match &t.kind {
                TokenKind::String(s) | TokenKind::QuotedIdent(s) => s.clone(),
                _ => {
                    return Err(self.error_here(
                        "a connector property name in quotes, e.g. \"connector.class\"",
                        &[],
                    ))
                }
            };
            self.bump();
            if config.iter().any(|(k, _)| *k == key) {
                return Err(Self::error_at(&t, format!("duplicate property {key}")));
            }
            self.expect(&TokenKind::Eq, "'='")?;
            let value = self.prop_value()?;
            config.push((key, value.to_string()));
            if self.eat(&TokenKind::Comma) {
                continue;
            }
            self.expect(&TokenKind::RParen, "',' or ')'")?;
            break;
        }
        Ok(Statement::CreateConnector {
            kind,
            if_not_exists,
            name,
            config,
        })
    }

    fn drop_statement(&mut self) -> PResult<Statement> {
        self.expect_word("DROP")?;
        if self.eat_word("TYPE") {
            let if_exists = self.if_exists()?;
            let name = self.ident("a type name")?;
            return Ok(Statement::DropType { name, if_exists });
        }
        if self.eat_word("CONNECTOR") {
            let if_exists = self.if_exists()?;
            let name = self.ident("a connector name")?;
            return Ok(Statement::DropConnector { if_exists, name });
        }
        let kind = self.source_kind()?;
        let if_exists = self.if_exists()?;
        let name = self.ident("a stream or table name")?;
        let delete_topic = if self.eat_word("DELETE") {
            self.expect_word("TOPIC")?;
            true
        } else {
            false
        };
        Ok(Statement::Drop {
            kind,
            if_exists,
            name,
            delete_topic,
        })
    }

    fn show(&mut self) -> PResult<Statement> {
        self.bump(); // SHOW or LIST
        const WHAT: &[&str] = &[
            "STREAMS",
            "TABLES",
            "QUERIES",
            "TOPICS",
            "ALL",
            "PROPERTIES",
            "FUNCTIONS",
            "VARIABLES",
            "CONNECTORS",
            "SOURCE",
            "SINK",
        ];
        let what = match self.current_word() {
            Some("CONNECTORS") => ShowWhat::Connectors(None),
            Some(w @ ("SOURCE" | "SINK")) => {
                let kind = if w == "SOURCE" {
                    ConnectorKind::Source
                } else {
                    ConnectorKind::Sink
                };
                self.bump();
                if !self.at_word("CONNECTORS") {
                    return Err(self.error_here("CONNECTORS", &["CONNECTORS"]));
                }
                ShowWhat::Connectors(Some(kind))
            }
            Some("STREAMS") => ShowWhat::Streams,
            Some("TABLES") => ShowWhat::Tables,
            Some("QUERIES") => ShowWhat::Queries,
            Some("TOPICS") => ShowWhat::Topics { all: false },
            Some("ALL") => {
                self.bump();
                if !self.at_word("TOPICS") {
                    return Err(self.error_here("TOPICS", &["TOPICS"]));
                }
                ShowWhat::Topics { all: true }
            }
            Some("PROPERTIES") => ShowWhat::Properties,
            Some("FUNCTIONS") => ShowWhat::Functions,
            Some("VARIABLES") => ShowWhat::Variables,
            _ => {
                return Err(self.error_here(
                    "STREAMS, TABLES, QUERIES, TOPICS, ALL TOPICS, PROPERTIES, FUNCTIONS, \
                     VARIABLES or [SOURCE|SINK] CONNECTORS",
                    WHAT,
                ))
            }
        };
        self.bump();
        let extended = self.eat_word("EXTENDED");
        Ok(Statement::Show { what, extended })
    }

    fn describe(&mut self) -> PResult<Statement> {
        self.expect_word("DESCRIBE")?;
        let next_is_end_or_extended = |p: &Self| {
            matches!(p.peek_at(1).kind, TokenKind::Semicolon | TokenKind::Eof)
                || p.word_at(1, "EXTENDED")
        };
        let target = if self.at_word("STREAMS") && next_is_end_or_extended(self) {
            self.bump();
            DescribeTarget::Streams
        } else if self.at_word("TABLES") && next_is_end_or_extended(self) {
            self.bump();
            DescribeTarget::Tables
        } else if self.at_word("CONNECTOR") && !next_is_end_or_extended(self) {
            self.bump();
            DescribeTarget::Connector(self.ident("a connector name")?)
        } else if self.at_word("FUNCTION") && !next_is_end_or_extended(self) {
            self.bump();
            DescribeTarget::Function(self.ident("a function name")?)
        } else {
            DescribeTarget::Source(
                self.ident("a stream or table name, STREAMS, TABLES or FUNCTION")?,
            )
        };
        let extended = self.eat_word("EXTENDED");
        Ok(Statement::Describe { target, extended })
    }

    fn print(&mut self) -> PResult<Statement> {
        self.expect_word("PRINT")?;
        let t = self.peek().clone();
        let topic = match &t.kind {
            TokenKind::String(s) => {
                self.bump();
                Ident {
                    name: s.clone(),
                    pos: t.pos,
                }
            }
            _ => self.ident("a topic name")?,
        };
        let from_beginning = if self.eat_word("FROM") {
            self.expect_word("BEGINNING")?;
            true
        } else {
            false
        };
        let interval = if self.eat_word("INTERVAL") || self.eat_word("SAMPLE") {
            Some(self.unsigned("an interval")?)
        } else {
            None
        };
        let limit = if self.eat_word("LIMIT") {
            Some(self.unsigned("a limit")?)
        } else {
            None
        };
        if !self.at_end() {
            return Err(self.error_here(
                "FROM BEGINNING, INTERVAL, LIMIT or ';'",
                &["FROM", "INTERVAL", "SAMPLE", "LIMIT"],
            ));
        }
        Ok(Statement::Print {
            topic,
            from_beginning,
            interval,
            limit,
        })
    }

    // ---- queries ------------------------------------------------------

    fn query(&mut self) -> PResult<Query> {
        let pos = self.expect_word("SELECT")?;
        let mut select = vec![self.select_item()?];
        while self.eat(&TokenKind::Comma) {
            select.push(self.select_item()?);
        }
        self.expect_word("FROM")?;
        let from = self.relation()?;
        let mut joins = Vec::new();
        loop {
            let jpos = self.pos();
            let kind = match self.current_word() {
                Some("JOIN") => JoinKind::Inner,
                Some("INNER") => {
                    self.bump();
                    JoinKind::Inner
                }
                Some("LEFT") => {
                    self.bump();
                    self.eat_word("OUTER");
                    JoinKind::Left
                }
                Some("RIGHT") => {
                    self.bump();
                    self.eat_word("OUTER");
                    JoinKind::Right
                }
                Some("FULL") => {
                    self.bump();
                    self.eat_word("OUTER");
                    JoinKind::Full
                }
                _ => break,
            };
            self.expect_word("JOIN")?;
            let right = self.relation()?;
            let within = if self.eat_word("WITHIN") {
                Some(self.within()?)
            } else {
                None
            };
            self.expect_word("ON")?;
            let on = self.expr()?;
            joins.push(Join {
                kind,
                right,
                within,
                on,
                pos: jpos,
            });
        }
        let window = if self.at_word("WINDOW") {
            Some(self.window()?)
        } else {
            None
        };
        let where_ = if self.eat_word("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        let group_by = if self.eat_word("GROUP") {
            self.expect_word("BY")?;
            self.expr_list_maybe_parenthesized()?
        } else {
            Vec::new()
        };
        let partition_by = if self.eat_word("PARTITION") {
            self.expect_word("BY")?;
            if self.at(&TokenKind::LParen) && self.peek_at(1).kind == TokenKind::RParen {
                return Err(Self::error_at(
                    self.peek(),
                    "PARTITION BY requires at least one expression".to_string(),
                ));
            }
            self.expr_list_maybe_parenthesized()?
        } else {
            Vec::new()
        };
        let having = if self.eat_word("HAVING") {
            Some(self.expr()?)
        } else {
            None
        };
        let emit = if self.eat_word("EMIT") {
            if self.eat_word("CHANGES") {
                Some(Emit::Changes)
            } else if self.eat_word("FINAL") {
                Some(Emit::Final)
            } else {
                return Err(self.error_here("CHANGES or FINAL", &["CHANGES", "FINAL"]));
            }
        } else {
            None
        };
        let limit = if self.eat_word("LIMIT") {
            Some(self.unsigned("a row limit")?)
        } else {
            None
        };
        Ok(Query {
            select,
            from,
            joins,
            window,
            where_,
            group_by,
            partition_by,
            having,
            emit,
            limit,
            pos,
        })
    }

    /// `AS alias`, or an alias without `AS` (remembered, in case it was a
    /// misspelled keyword).
    fn alias(&mut self) -> PResult<Option<Ident>> {
        if self.eat_word("AS") {
            return Ok(Some(self.ident("an alias")?));
        }
        if self.at_name() {
            self.implicit_alias = Some(self.i);
            return Ok(Some(self.ident("an alias")?));
        }
        Ok(None)
    }

    fn select_item(&mut self) -> PResult<SelectItem> {
        if self.at(&TokenKind::Star) {
            let pos = self.bump().pos;
            return Ok(SelectItem::Star {
                qualifier: None,
                pos,
            });
        }
        if self.at_name()
            && self.peek_at(1).kind == TokenKind::Dot
            && self.peek_at(2).kind == TokenKind::Star
        {
            let qualifier = self.ident("a source name")?;
            self.bump();
            self.bump();
            let pos = qualifier.pos;
            return Ok(SelectItem::Star {
                qualifier: Some(qualifier),
                pos,
            });
        }
        let expr = self.expr()?;
        if matches!(&expr.kind, ExprKind::Deref { field, .. } if field.name == STRUCT_ALL_FIELD) {
            return Ok(SelectItem::Expr { expr, alias: None });
        }
        let alias = self.alias()?;
        Ok(SelectItem::Expr { expr, alias })
    }

    fn relation(&mut self) -> PResult<Relation> {
        let name = self.ident("a stream or table name")?;
        let alias = self.alias()?;
        Ok(Relation { name, alias })
    }

    /// After `WITHIN`: `n unit` or `(before, after)`, then `[GRACE PERIOD d]`.
    fn within(&mut self) -> PResult<Within> {
        let (before, after) = if self.eat(&TokenKind::LParen) {
            let before = self.duration()?;
            self.expect(&TokenKind::Comma, "','")?;
            let after = self.duration()?;
            self.expect(&TokenKind::RParen, "')'")?;
            (before, after)
        } else {
            let d = self.duration()?;
            (d, d)
        };
        let grace = if self.eat_word("GRACE") {
            self.expect_word("PERIOD")?;
            Some(self.duration()?)
        } else {
            None
        };
        Ok(Within {
            before,
            after,
            grace,
        })
    }

    fn window(&mut self) -> PResult<WindowSpec> {
        let pos = self.expect_word("WINDOW")?;
        let kind_word = self.current_word().map(str::to_string);
        let kinds = ["TUMBLING", "HOPPING", "SESSION"];
        if !kind_word.as_deref().is_some_and(|w| kinds.contains(&w)) {
            return Err(self.error_here("TUMBLING, HOPPING or SESSION", &kinds));
        }
        self.bump();
        self.expect(&TokenKind::LParen, "'('")?;
        let kind = match kind_word.as_deref() {
            Some("TUMBLING") => {
                self.expect_word("SIZE")?;
                WindowKind::Tumbling {
                    size: self.duration()?,
                }
            }
            Some("HOPPING") => {
                self.expect_word("SIZE")?;
                let size = self.duration()?;
                self.expect(&TokenKind::Comma, "',' and ADVANCE BY")?;
                self.expect_word("ADVANCE")?;
                self.expect_word("BY")?;
                let advance = self.duration()?;
                WindowKind::Hopping { size, advance }
            }
            _ => WindowKind::Session {
                gap: self.duration()?,
            },
        };
        let mut retention = None;
        let mut grace = None;
        while self.eat(&TokenKind::Comma) {
            let t = self.peek().clone();
            if self.eat_word("RETENTION") {
                if retention.is_some() {
                    return Err(Self::error_at(&t, "duplicate RETENTION".into()));
                }
                retention = Some(self.duration()?);
            } else if self.eat_word("GRACE") {
                if grace.is_some() {
                    return Err(Self::error_at(&t, "duplicate GRACE PERIOD".into()));
                }
                self.expect_word("PERIOD")?;
                grace = Some(self.duration()?);
            } else {
                return Err(self.error_here("RETENTION or GRACE PERIOD", &["RETENTION", "GRACE"]));
            }
        }
        self.expect(&TokenKind::RParen, "')'")?;
        Ok(WindowSpec {
            kind,
            retention,
            grace,
            pos,
        })
    }

    /// Whether the `(` at the current token contains a top-level `,`
    /// before its matching `)`.
    fn paren_has_top_level_comma(&self) -> bool {
        let mut depth = 0usize;
        let mut j = self.i;
        while let Some(t) = self.toks.get(j) {
            match t.kind {
                TokenKind::LParen | TokenKind::LBracket => depth += 1,
                TokenKind::RParen | TokenKind::RBracket => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return false;
                    }
                }
                TokenKind::Comma if depth == 1 => return true,
                TokenKind::Semicolon | TokenKind::Eof => return false,
                _ => {}
            }
            j += 1;
        }
        false
    }

    /// `e1, e2, …` or `(e1, e2, …)` (GROUP BY and PARTITION BY).
    fn expr_list_maybe_parenthesized(&mut self) -> PResult<Vec<Expr>> {
        let parenthesized = self.at(&TokenKind::LParen) && self.paren_has_top_level_comma();
        if parenthesized {
            self.bump();
        }
        let mut list = vec![self.expr()?];
        while self.eat(&TokenKind::Comma) {
            list.push(self.expr()?);
        }
        if parenthesized {
            self.expect(&TokenKind::RParen, "',' or ')'")?;
        }
        Ok(list)
    }

    // ---- expressions --------------------------------------------------
    //
    // Precedence climbing keeps the frames per nesting level few and small
    // (debug builds give every temporary its own stack slot): OR < AND <
    // NOT < comparisons and predicates < + - || < * / % < unary < postfix.

    fn expr(&mut self) -> PResult<Expr> {
        self.enter()?;
        let operators = self.operators;
        let r = self.binary_expr(PREC_OR);
        self.operators = operators;
        self.leave();
        r
    }

    /// Counts one more operator on the current path.
    fn grow(&mut self) -> PResult<()> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(self.too_many_operators());
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn too_many_operators(&self) -> ParseError {
        Self::error_at(
            self.peek(),
            format!(
                "expression too long: more than {MAX_OPERATORS} operators in one expression; \
                 split it up"
            ),
        )
    }

    /// The precedence of the infix operator or predicate at the current
    /// token, if there is one.
    fn infix_prec(&self) -> Option<u8> {
        Some(match self.kind() {
            TokenKind::Word(w) => match w.as_str() {
                "OR" => PREC_OR,
                "AND" => PREC_AND,
                "IS" | "BETWEEN" | "IN" | "LIKE" => PREC_CMP,
                "NOT"
                    if self.word_at(1, "BETWEEN")
                        || self.word_at(1, "IN")
                        || self.word_at(1, "LIKE") =>
                {
                    PREC_CMP
                }
                _ => return None,
            },
            TokenKind::Eq
            | TokenKind::NotEq
            | TokenKind::Lt
            | TokenKind::LtEq
            | TokenKind::Gt
            | TokenKind::GtEq => PREC_CMP,
            TokenKind::Plus | TokenKind::Minus | TokenKind::Concat => PREC_ADD,
            TokenKind::Star | TokenKind::Slash | TokenKind::Percent => PREC_MUL,
            _ => return None,
        })
    }

    /// An expression of operators binding at least as tightly as `min`.
    fn binary_expr(&mut self, min: u8) -> PResult<Expr> {
        let mut left = if min <= PREC_NOT && self.at_word("NOT") {
            self.not_expr()?
        } else {
            self.unary()?
        };
        while let Some(prec) = self.infix_prec() {
            if prec < min {
                break;
            }
            self.grow()?;
            left = self.infix(left, prec)?;
        }
        Ok(left)
    }

    /// The operator at the current token applied to `left`.
    fn infix(&mut self, left: Expr, prec: u8) -> PResult<Expr> {
        let op = match self.kind() {
            TokenKind::Word(w) if w == "OR" => BinaryOp::Or,
            TokenKind::Word(w) if w == "AND" => BinaryOp::And,
            TokenKind::Word(_) => return self.predicate(left),
            TokenKind::Eq => BinaryOp::Eq,
            TokenKind::NotEq => BinaryOp::NotEq,
            TokenKind::Lt => BinaryOp::Lt,
            TokenKind::LtEq => BinaryOp::LtEq,
            TokenKind::Gt => BinaryOp::Gt,
            TokenKind::GtEq => BinaryOp::GtEq,
            TokenKind::Plus => BinaryOp::Add,
            TokenKind::Minus => BinaryOp::Sub,
            TokenKind::Concat => BinaryOp::Concat,
            TokenKind::Star => BinaryOp::Mul,
            TokenKind::Slash => BinaryOp::Div,
            _ => BinaryOp::Mod,
        };
        self.bump();
        let right = self.binary_expr(prec + 1)?;
        Ok(binary(op, left, right))
    }

    /// `NOT …`: applies to a comparison or predicate.
    fn not_expr(&mut self) -> PResult<Expr> {
        let mut nots = Vec::new();
        while self.at_word("NOT") {
            nots.push(self.bump().pos);
            self.grow()?;
        }
        let mut e = self.binary_expr(PREC_CMP)?;
        while let Some(pos) = nots.pop() {
            e = expr(
                ExprKind::Unary {
                    op: UnaryOp::Not,
                    expr: Box::new(e),
                },
                pos,
            );
        }
        Ok(e)
    }

    /// IS [NOT] NULL, IS [NOT] DISTINCT FROM, [NOT] BETWEEN, [NOT] IN,
    /// [NOT] LIKE applied to `left`.
    fn predicate(&mut self, left: Expr) -> PResult<Expr> {
        if self.eat_word("IS") {
            return self.is_predicate(left);
        }
        let negated = self.eat_word("NOT");
        if self.eat_word("BETWEEN") {
            self.between(left, negated)
        } else if self.eat_word("IN") {
            self.in_list(left, negated)
        } else {
            self.expect_word("LIKE")?;
            self.like(left, negated)
        }
    }

    fn is_predicate(&mut self, left: Expr) -> PResult<Expr> {
        let pos = left.pos;
        let negated = self.eat_word("NOT");
        if self.eat_word("NULL") {
            return Ok(expr(
                ExprKind::IsNull {
                    expr: Box::new(left),
                    negated,
                },
                pos,
            ));
        }
        if !self.eat_word("DISTINCT") {
            let expected = if negated {
                "NULL or DISTINCT FROM"
            } else {
                "NULL, NOT or DISTINCT FROM"
            };
            return Err(self.error_here(expected, &["NULL", "NOT", "DISTINCT"]));
        }
        self.expect_word("FROM")?;
        let right = self.binary_expr(PREC_ADD)?;
        Ok(expr(
            ExprKind::IsDistinctFrom {
                left: Box::new(left),
                right: Box::new(right),
                negated,
            },
            pos,
        ))
    }

    fn between(&mut self, left: Expr, negated: bool) -> PResult<Expr> {
        let pos = left.pos;
        let low = self.binary_expr(PREC_ADD)?;
        self.expect_word("AND")?;
        let high = self.binary_expr(PREC_ADD)?;
        Ok(expr(
            ExprKind::Between {
                expr: Box::new(left),
                low: Box::new(low),
                high: Box::new(high),
                negated,
            },
            pos,
        ))
    }

    fn in_list(&mut self, left: Expr, negated: bool) -> PResult<Expr> {
        let pos = left.pos;
        self.expect(&TokenKind::LParen, "'('")?;
        let mut list = vec![self.expr()?];
        while self.eat(&TokenKind::Comma) {
            list.push(self.expr()?);
        }
        self.expect(&TokenKind::RParen, "',' or ')'")?;
        Ok(expr(
            ExprKind::InList {
                expr: Box::new(left),
                list,
                negated,
            },
            pos,
        ))
    }

    fn like(&mut self, left: Expr, negated: bool) -> PResult<Expr> {
        let pos = left.pos;
        let pattern = self.binary_expr(PREC_ADD)?;
        let escape = if self.eat_word("ESCAPE") {
            Some(self.escape_char()?)
        } else {
            None
        };
        Ok(expr(
            ExprKind::Like {
                expr: Box::new(left),
                pattern: Box::new(pattern),
                escape,
                negated,
            },
            pos,
        ))
    }

    fn escape_char(&mut self) -> PResult<char> {
        let t = self.peek().clone();
        let s = self.string("an escape character in quotes, e.g. '\\'")?;
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(c),
            _ => Err(Self::error_at(
                &t,
                format!(
                    "Syntax Error at or near '{}': the escape must be a single character",
                    self.token_text(&t)
                ),
            )),
        }
    }

    /// Prefix `-` and `+`; `-` directly before a number literal is folded
    /// into it (so `-9223372036854775808` is a valid BIGINT).
    fn unary(&mut self) -> PResult<Expr> {
        if !matches!(self.kind(), TokenKind::Minus | TokenKind::Plus) {
            return self.postfix();
        }
        self.signed()
    }

    fn signed(&mut self) -> PResult<Expr> {
        let mut ops: Vec<(bool, Pos)> = Vec::new();
        loop {
            match self.kind() {
                TokenKind::Minus => ops.push((true, self.bump().pos)),
                TokenKind::Plus => ops.push((false, self.bump().pos)),
                _ => break,
            }
            self.grow()?;
        }
        let folds = matches!(ops.last(), Some((true, _)))
            && matches!(
                self.kind(),
                TokenKind::Integer(_) | TokenKind::Decimal(_) | TokenKind::Double(_)
            )
            && !matches!(self.peek_at(1).kind, TokenKind::LBracket | TokenKind::Arrow);
        let mut e = match ops.pop() {
            Some((true, pos)) if folds => self.number(pos, true)?,
            Some(op) => {
                ops.push(op);
                self.postfix()?
            }
            None => self.postfix()?,
        };
        while let Some((neg, pos)) = ops.pop() {
            if neg {
                e = expr(
                    ExprKind::Unary {
                        op: UnaryOp::Neg,
                        expr: Box::new(e),
                    },
                    pos,
                );
            }
        }
        Ok(e)
    }

    /// The number literal at the current token, negated if `negative`.
    fn number(&mut self, pos: Pos, negative: bool) -> PResult<Expr> {
        let t = self.bump();
        let sign = if negative { "-" } else { "" };
        let lit = match &t.kind {
            TokenKind::Integer(d) => {
                let text = format!("{sign}{d}");
                let v = text.parse::<i64>().map_err(|_| {
                    Self::error_at(
                        &t,
                        format!(
                            "Invalid numeric literal: {sign}{} (out of BIGINT's range, \
                             -9223372036854775808 to 9223372036854775807; \
                             write it as a decimal, e.g. {text}.0)",
                            self.token_text(&t)
                        ),
                    )
                })?;
                Literal::Integer(v)
            }
            TokenKind::Decimal(d) => Literal::Decimal(format!("{sign}{d}")),
            TokenKind::Double(d) => {
                let v = format!("{sign}{d}").parse::<f64>().unwrap_or(f64::INFINITY);
                if !v.is_finite() {
                    return Err(Self::error_at(
                        &t,
                        format!("Number overflows DOUBLE: {sign}{}", self.token_text(&t)),
                    ));
                }
                Literal::Double(v)
            }
            _ => return Err(Self::error_at(&t, "expected a number".into())),
        };
        Ok(expr(ExprKind::Literal(lit), pos))
    }

    fn postfix(&mut self) -> PResult<Expr> {
        let mut e = self.primary()?;
        while matches!(self.kind(), TokenKind::Arrow | TokenKind::LBracket) {
            self.grow()?;
            e = self.postfix_op(e)?;
        }
        Ok(e)
    }

    /// `->field` or `[index]` applied to `e`.
    fn postfix_op(&mut self, e: Expr) -> PResult<Expr> {
        let pos = e.pos;
        if self.eat(&TokenKind::Arrow) {
            // `struct->*`: every field of the struct, a select item of its
            // own that the planner expands (STRUCT_ALL_FIELD).
            if self.at(&TokenKind::Star) {
                let star = self.bump().pos;
                return Ok(expr(
                    ExprKind::Deref {
                        expr: Box::new(e),
                        field: Ident {
                            name: STRUCT_ALL_FIELD.to_string(),
                            pos: star,
                        },
                    },
                    pos,
                ));
            }
            let field = self.ident_any("a field name")?;
            return Ok(expr(
                ExprKind::Deref {
                    expr: Box::new(e),
                    field,
                },
                pos,
            ));
        }
        self.expect(&TokenKind::LBracket, "'['")?;
        let index = self.expr()?;
        self.expect(&TokenKind::RBracket, "']'")?;
        Ok(expr(
            ExprKind::Subscript {
                expr: Box::new(e),
                index: Box::new(index),
            },
            pos,
        ))
    }

    fn primary(&mut self) -> PResult<Expr> {
        match self.kind() {
            TokenKind::Integer(_) | TokenKind::Decimal(_) | TokenKind::Double(_) => {
                let pos = self.pos();
                self.number(pos, false)
            }
            TokenKind::LParen => {
                self.bump();
                let e = self.expr()?;
                self.expect(&TokenKind::RParen, "')'")?;
                Ok(e)
            }
            TokenKind::Word(_) => self.word_primary(),
            TokenKind::QuotedIdent(_) => self.column(),
            _ => self.simple_literal(),
        }
    }

    /// A string literal, or the error for a token that starts no expression.
    fn simple_literal(&mut self) -> PResult<Expr> {
        let pos = self.pos();
        if let TokenKind::String(s) = self.kind() {
            let lit = Literal::String(s.clone());
            self.bump();
            return Ok(expr(ExprKind::Literal(lit), pos));
        }
        Err(self.error_here("an expression", &[]))
    }

    /// An expression starting with an unquoted word.
    fn word_primary(&mut self) -> PResult<Expr> {
        let pos = self.pos();
        let next_paren = self.peek_at(1).kind == TokenKind::LParen;
        let next_bracket = self.peek_at(1).kind == TokenKind::LBracket;
        let lit = match self.current_word().unwrap_or("") {
            "NULL" => Literal::Null,
            "TRUE" => Literal::Boolean(true),
            "FALSE" => Literal::Boolean(false),
            "CASE" => return self.case(),
            "CAST" => return self.cast(),
            "ARRAY" if next_bracket => return self.array(),
            "MAP" if next_paren => return self.map(),
            "STRUCT" if next_paren => return self.struct_(),
            w if is_reserved(w) => return Err(self.error_here("an expression", &[])),
            _ if next_paren => return self.function(),
            _ => return self.column(),
        };
        self.bump();
        Ok(expr(ExprKind::Literal(lit), pos))
    }

    fn column(&mut self) -> PResult<Expr> {
        let first = self.ident("an expression")?;
        let pos = first.pos;
        if self.at(&TokenKind::Dot) {
            self.bump();
            let name = self.ident_any("a column name")?;
            return Ok(expr(
                ExprKind::Column {
                    qualifier: Some(first),
                    name,
                },
                pos,
            ));
        }
        Ok(expr(
            ExprKind::Column {
                qualifier: None,
                name: first,
            },
            pos,
        ))
    }

    fn function(&mut self) -> PResult<Expr> {
        let name = self.ident("a function name")?;
        let pos = name.pos;
        self.expect(&TokenKind::LParen, "'('")?;
        let mut args = Vec::new();
        let mut star = false;
        let mut distinct = false;
        if self.eat(&TokenKind::Star) {
            star = true;
            self.expect(&TokenKind::RParen, "')'")?;
        } else if !self.at(&TokenKind::RParen) {
            distinct = self.eat_word("DISTINCT");
            self.arguments(&mut args)?;
        }
        if !star {
            self.expect(&TokenKind::RParen, "',' or ')'")?;
        }
        Ok(expr(
            ExprKind::Function {
                name,
                args,
                star,
                distinct,
            },
            pos,
        ))
    }

    fn arguments(&mut self, args: &mut Vec<Expr>) -> PResult<()> {
        loop {
            let arg = self.argument()?;
            args.push(arg);
            if !self.eat(&TokenKind::Comma) {
                return Ok(());
            }
        }
    }

    /// The parameters of a lambda starting at the current token, if one
    /// does: `x =>` or `(x, y) =>`.
    fn lambda_params_ahead(&self) -> Option<usize> {
        let is_name = |t: &Token| match &t.kind {
            TokenKind::Word(w) => !is_reserved(w),
            TokenKind::QuotedIdent(_) => true,
            _ => false,
        };
        if is_name(self.peek()) && self.peek_at(1).kind == TokenKind::FatArrow {
            return Some(1);
        }
        if !self.at(&TokenKind::LParen) {
            return None;
        }
        let mut n = 1;
        let mut count = 0;
        loop {
            if !is_name(self.peek_at(n)) {
                return None;
            }
            count += 1;
            n += 1;
            match self.peek_at(n).kind {
                TokenKind::Comma => n += 1,
                TokenKind::RParen => {
                    return (self.peek_at(n + 1).kind == TokenKind::FatArrow).then_some(count)
                }
                _ => return None,
            }
        }
    }

    fn argument(&mut self) -> PResult<Expr> {
        match self.lambda_params_ahead() {
            Some(count) => self.lambda(count),
            None => self.expr(),
        }
    }

    /// `x => body` or `(x, y) => body`, with `count` parameters.
    fn lambda(&mut self, count: usize) -> PResult<Expr> {
        let pos = self.pos();
        let mut params = Vec::with_capacity(count);
        if self.eat(&TokenKind::LParen) {
            params.push(self.ident("a lambda parameter")?);
            while self.eat(&TokenKind::Comma) {
                params.push(self.ident("a lambda parameter")?);
            }
            self.expect(&TokenKind::RParen, "')'")?;
        } else {
            params.push(self.ident("a lambda parameter")?);
        }
        self.expect(&TokenKind::FatArrow, "'=>'")?;
        let body = self.expr()?;
        Ok(expr(
            ExprKind::Lambda {
                params,
                body: Box::new(body),
            },
            pos,
        ))
    }

    fn case(&mut self) -> PResult<Expr> {
        let pos = self.expect_word("CASE")?;
        let operand = if self.at_word("WHEN") {
            None
        } else {
            Some(Box::new(self.expr()?))
        };
        let mut whens = Vec::new();
        while self.eat_word("WHEN") {
            let cond = self.expr()?;
            self.expect_word("THEN")?;
            let result = self.expr()?;
            whens.push((cond, result));
        }
        if whens.is_empty() {
            return Err(self.error_here("WHEN", &["WHEN"]));
        }
        let else_ = if self.eat_word("ELSE") {
            Some(Box::new(self.expr()?))
        } else {
            None
        };
        if !self.at_word("END") {
            let expected = if else_.is_some() {
                "END"
            } else {
                "WHEN, ELSE or END"
            };
            return Err(self.error_here(expected, &["WHEN", "ELSE", "END"]));
        }
        self.bump();
        Ok(expr(
            ExprKind::Case {
                operand,
                whens,
                else_,
            },
            pos,
        ))
    }

    fn cast(&mut self) -> PResult<Expr> {
        let pos = self.expect_word("CAST")?;
        self.expect(&TokenKind::LParen, "'('")?;
        let e = self.expr()?;
        self.expect_word("AS")?;
        let ty = self.sql_type()?;
        self.expect(&TokenKind::RParen, "')'")?;
        Ok(expr(
            ExprKind::Cast {
                expr: Box::new(e),
                ty,
            },
            pos,
        ))
    }

    fn array(&mut self) -> PResult<Expr> {
        let pos = self.bump().pos; // ARRAY
        self.expect(&TokenKind::LBracket, "'['")?;
        let mut items = Vec::new();
        if !self.eat(&TokenKind::RBracket) {
            items.push(self.expr()?);
            while self.eat(&TokenKind::Comma) {
                items.push(self.expr()?);
            }
            self.expect(&TokenKind::RBracket, "',' or ']'")?;
        }
        Ok(expr(ExprKind::Array(items), pos))
    }

    fn map(&mut self) -> PResult<Expr> {
        let pos = self.bump().pos; // MAP
        self.expect(&TokenKind::LParen, "'('")?;
        let mut entries = Vec::new();
        if !self.eat(&TokenKind::RParen) {
            loop {
                let k = self.expr()?;
                self.expect(&TokenKind::Assign, "':='")?;
                let v = self.expr()?;
                entries.push((k, v));
                if !self.eat(&TokenKind::Comma) {
                    break;
                }
            }
            self.expect(&TokenKind::RParen, "',' or ')'")?;
        }
        Ok(expr(ExprKind::Map(entries), pos))
    }

    fn struct_(&mut self) -> PResult<Expr> {
        let pos = self.bump().pos; // STRUCT
        self.expect(&TokenKind::LParen, "'('")?;
        let mut fields = Vec::new();
        if !self.eat(&TokenKind::RParen) {
            loop {
                let name = self.ident_any("a field name")?;
                self.expect(&TokenKind::Assign, "':='")?;
                let v = self.expr()?;
                fields.push((name, v));
                if !self.eat(&TokenKind::Comma) {
                    break;
                }
            }
            self.expect(&TokenKind::RParen, "',' or ')'")?;
        }
        Ok(expr(ExprKind::Struct(fields), pos))
    }

    // ---- types --------------------------------------------------------

    fn sql_type(&mut self) -> PResult<SqlType> {
        self.enter()?;
        let r = self.sql_type_inner();
        self.leave();
        r
    }

    fn sql_type_inner(&mut self) -> PResult<SqlType> {
        let Some(word) = self.current_word().map(str::to_string) else {
            return Err(self.error_here("a type", &[]));
        };
        let ty = match word.as_str() {
            "BOOLEAN" => SqlType::Boolean,
            "INT" | "INTEGER" => SqlType::Int,
            "BIGINT" => SqlType::BigInt,
            "DOUBLE" => SqlType::Double,
            "STRING" | "VARCHAR" => SqlType::String,
            "BYTES" => SqlType::Bytes,
            "DATE" => SqlType::Date,
            "TIME" => SqlType::Time,
            "TIMESTAMP" => SqlType::Timestamp,
            "DECIMAL" => {
                self.bump();
                self.expect(&TokenKind::LParen, "'(' and the precision")?;
                let pt = self.peek().clone();
                let precision = self.unsigned("the precision")?;
                self.expect(&TokenKind::Comma, "','")?;
                let st = self.peek().clone();
                let scale = self.unsigned("the scale")?;
                self.expect(&TokenKind::RParen, "')'")?;
                if !(1..=38).contains(&precision) {
                    return Err(Self::error_at(
                        &pt,
                        format!("DECIMAL precision must be between 1 and 38, not {precision}"),
                    ));
                }
                if scale > precision {
                    return Err(Self::error_at(
                        &st,
                        format!(
                            "DECIMAL scale must not exceed its precision ({precision}), not \
                             {scale}"
                        ),
                    ));
                }
                return Ok(SqlType::Decimal {
                    precision: u8::try_from(precision).unwrap_or(38),
                    scale: u8::try_from(scale).unwrap_or(0),
                });
            }
            "ARRAY" => {
                self.bump();
                self.expect(&TokenKind::Lt, "'<'")?;
                let item = self.sql_type()?;
                self.expect(&TokenKind::Gt, "'>'")?;
                return Ok(SqlType::Array(Box::new(item)));
            }
            "MAP" => {
                self.bump();
                self.expect(&TokenKind::Lt, "'<'")?;
                let k = self.sql_type()?;
                self.expect(&TokenKind::Comma, "','")?;
                let v = self.sql_type()?;
                self.expect(&TokenKind::Gt, "'>'")?;
                return Ok(SqlType::Map(Box::new(k), Box::new(v)));
            }
            "STRUCT" => {
                self.bump();
                // `STRUCT<>` lexes as STRUCT and `<>`.
                if self.at(&TokenKind::NotEq) && self.token_text(self.peek()) == "<>" {
                    self.bump();
                    return Ok(SqlType::Struct(Vec::new()));
                }
                self.expect(&TokenKind::Lt, "'<'")?;
                let mut fields: Vec<(String, SqlType)> = Vec::new();
                if !self.eat(&TokenKind::Gt) {
                    loop {
                        let name = self.ident_any("a field name")?;
                        if fields.iter().any(|(n, _)| *n == name.name) {
                            return Err(ParseError {
                                line: name.pos.line,
                                col: name.pos.col,
                                message: format!("duplicate field {} in STRUCT", name.name),
                            });
                        }
                        let ty = self.sql_type()?;
                        fields.push((name.name, ty));
                        if !self.eat(&TokenKind::Comma) {
                            break;
                        }
                    }
                    self.expect(&TokenKind::Gt, "',' or '>'")?;
                }
                return Ok(SqlType::Struct(fields));
            }
            // A reserved word cannot name a type: ksqlDB's parser finds no
            // alternative there.
            w if is_reserved(w) => return Err(self.no_viable_alternative()),
            w if self.types.contains_key(w) => {
                let ty = self.types.get(w).cloned().unwrap_or(SqlType::String);
                self.bump();
                return Ok(ty);
            }
            _ => return Err(self.error_here("a type", TYPE_NAMES)),
        };
        self.bump();
        self.type_parameters()?;
        Ok(ty)
    }

    /// ksqlDB's grammar lets a simple type take parameters, each a number
    /// or the word STRING (`VARCHAR(STRING)`), which it ignores; anything
    /// else there is refused in its words.
    fn type_parameters(&mut self) -> PResult<()> {
        if !self.eat(&TokenKind::LParen) {
            return Ok(());
        }
        loop {
            let t = self.peek().clone();
            match &t.kind {
                TokenKind::Integer(_) => {}
                TokenKind::Word(w) if w == "STRING" => {}
                _ => {
                    return Err(Self::error_at(
                        &t,
                        "Syntax Error\nExpecting {'STRING', INTEGER_VALUE}".to_string(),
                    ))
                }
            }
            self.bump();
            if self.eat(&TokenKind::RParen) {
                return Ok(());
            }
            if !self.eat(&TokenKind::Comma) {
                return Err(Self::error_at(
                    self.peek(),
                    "Syntax Error\nExpecting {',', ')'}".to_string(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stmt(sql: &str) -> Statement {
        match parse_one(sql) {
            Ok(p) => p.statement,
            Err(e) => panic!("{sql}: {e}"),
        }
    }

    fn query(sql: &str) -> Query {
        match stmt(sql) {
            Statement::Select(q) => q,
            other => panic!("not a query: {other:?}"),
        }
    }

    /// An expression printed back fully parenthesized.
    fn ex(sql: &str) -> String {
        match parse_expr(sql) {
            Ok(e) => e.to_string(),
            Err(e) => panic!("{sql}: {e}"),
        }
    }

    fn err(sql: &str) -> ParseError {
        match parse(sql) {
            Ok(p) => panic!("{sql} parsed: {p:?}"),
            Err(e) => e,
        }
    }

    fn name(i: &Ident) -> &str {
        &i.name
    }

    #[test]
    fn connector_statements_keep_property_names_as_written() {
        match stmt(
            "CREATE SOURCE CONNECTOR IF NOT EXISTS `pg-src` WITH (\"connector.class\"='PostgresConnector', 'tasks.max'=1, \"snapshot.enabled\"=true);",
        ) {
            Statement::CreateConnector {
                kind,
                if_not_exists,
                name: n,
                config,
            } => {
                assert_eq!(kind, ConnectorKind::Source);
                assert!(if_not_exists);
                assert_eq!(name(&n), "pg-src");
                assert_eq!(
                    config,
                    vec![
                        ("connector.class".to_string(), "PostgresConnector".to_string()),
                        ("tasks.max".to_string(), "1".to_string()),
                        ("snapshot.enabled".to_string(), "true".to_string()),
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            stmt("create sink connector s with ('connector.class'='x')"),
            Statement::CreateConnector {
                kind: ConnectorKind::Sink,
                if_not_exists: false,
                ..
            }
        ));
        assert!(matches!(
            stmt("SHOW CONNECTORS"),
            Statement::Show {
                what: ShowWhat::Connectors(None),
                ..
            }
        ));
        assert!(matches!(
            stmt("LIST SINK CONNECTORS"),
            Statement::Show {
                what: ShowWhat::Connectors(Some(ConnectorKind::Sink)),
                ..
            }
        ));
        assert!(matches!(
            stmt("DESCRIBE CONNECTOR c"),
            Statement::Describe {
                target: DescribeTarget::Connector(_),
                ..
            }
        ));
        assert!(matches!(
            stmt("DROP CONNECTOR IF EXISTS c"),
            Statement::DropConnector {
                if_exists: true,
                ..
            }
        ));
        // A CREATE SOURCE stream is still a stream.
        assert!(matches!(
            stmt("CREATE SOURCE STREAM s (a INT) WITH (kafka_topic='t', value_format='JSON')"),
            Statement::CreateSource { source: true, .. }
        ));
    }

    #[test]
    fn connector_statement_errors_have_positions() {
        let e = err("CREATE SOURCE CONNECTOR c WITH (connector_class='x')");
        assert_eq!((e.line, e.col), (1, 33), "{e}");
        assert!(e.message.contains("in quotes"), "{e}");
        let e = err("CREATE SINK CONNECTOR c WITH ('a'='1', 'a'='2')");
        assert!(e.message.contains("duplicate property a"), "{e}");
        let e = err("SHOW SOURCE TABLES");
        assert!(e.message.contains("CONNECTORS"), "{e}");
        let e = err("CREATE SINK CONNECTOR c");
        assert!(e.message.contains("WITH"), "{e}");
    }

    fn at(line: u32, col: u32) -> Pos {
        Pos { line, col }
    }

    #[test]
    fn talk_statements() {
        let script = "\
CREATE STREAM apps_opened (app_id STRING KEY, user_id STRING) WITH (KAFKA_TOPIC='apps_opened', VALUE_FORMAT='JSON', PARTITIONS=3);
CREATE TABLE opened_per_day AS SELECT app_id, COUNT(*) AS opens FROM apps_opened WINDOW TUMBLING (SIZE 1 DAY) GROUP BY app_id;
SELECT * FROM opened_per_day WHERE app_id = 'maps';
SELECT * FROM opened_per_day EMIT CHANGES;
";
        let parsed = parse(script).expect("parses");
        assert_eq!(parsed.len(), 4);
        match &parsed[0].statement {
            Statement::CreateSource {
                kind,
                name: n,
                columns,
                props,
                source,
                or_replace,
                if_not_exists,
            } => {
                assert_eq!(*kind, SourceKind::Stream);
                assert_eq!(name(n), "APPS_OPENED");
                assert!(!source && !or_replace && !if_not_exists);
                assert_eq!(columns.len(), 2);
                assert_eq!(name(&columns[0].name), "APP_ID");
                assert_eq!(columns[0].ty, SqlType::String);
                assert_eq!(columns[0].key, KeyKind::Key);
                assert_eq!(columns[1].key, KeyKind::None);
                assert_eq!(
                    props.get("kafka_topic"),
                    Some(&PropValue::String("apps_opened".into()))
                );
                assert_eq!(
                    props.get("PARTITIONS"),
                    Some(&PropValue::Number("3".into()))
                );
                assert_eq!(props.0.len(), 3);
            }
            other => panic!("{other:?}"),
        }
        match &parsed[1].statement {
            Statement::CreateAs {
                kind,
                name: n,
                query: q,
                ..
            } => {
                assert_eq!(*kind, SourceKind::Table);
                assert_eq!(name(n), "OPENED_PER_DAY");
                assert_eq!(q.select.len(), 2);
                match &q.select[1] {
                    SelectItem::Expr { expr, alias } => {
                        assert_eq!(expr.to_string(), "COUNT(*)");
                        assert!(matches!(
                            &expr.kind,
                            ExprKind::Function { star: true, args, .. } if args.is_empty()
                        ));
                        assert_eq!(alias.as_ref().map(name), Some("OPENS"));
                    }
                    other => panic!("{other:?}"),
                }
                let w = q.window.as_ref().expect("window");
                assert_eq!(
                    w.kind,
                    WindowKind::Tumbling {
                        size: DurationSpec {
                            millis: 86_400_000,
                            pos: at(2, 104)
                        }
                    }
                );
                assert_eq!(w.pos, at(2, 82));
                assert_eq!(q.group_by.len(), 1);
                assert_eq!(q.group_by[0].to_string(), "APP_ID");
                assert_eq!(q.emit, None);
            }
            other => panic!("{other:?}"),
        }
        match &parsed[2].statement {
            Statement::Select(q) => {
                assert!(matches!(
                    q.select[0],
                    SelectItem::Star {
                        qualifier: None,
                        ..
                    }
                ));
                assert_eq!(
                    q.where_.as_ref().map(|e| e.to_string()),
                    Some("(APP_ID = 'maps')".to_string())
                );
                assert_eq!(q.emit, None);
                assert_eq!(q.pos, at(3, 1));
            }
            other => panic!("{other:?}"),
        }
        match &parsed[3].statement {
            Statement::Select(q) => assert_eq!(q.emit, Some(Emit::Changes)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parsed[2].text,
            "SELECT * FROM opened_per_day WHERE app_id = 'maps';"
        );
        assert_eq!(parsed[3].pos, at(4, 1));
    }

    #[test]
    fn scripts_with_comments_blank_statements_and_no_final_semicolon() {
        let script =
            "-- set up\n;;\n/* a stream */ SHOW STREAMS;\n\n  ;  LIST TABLES EXTENDED -- last\n";
        let parsed = parse(script).expect("parses");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].text, "SHOW STREAMS;");
        assert_eq!(parsed[0].pos, at(3, 16));
        assert_eq!(
            parsed[1].statement,
            Statement::Show {
                what: ShowWhat::Tables,
                extended: true
            }
        );
        assert_eq!(parsed[1].text, "LIST TABLES EXTENDED;");
        assert!(parse("  -- nothing\n ;").expect("parses").is_empty());
    }

    #[test]
    fn parse_one_wants_exactly_one() {
        let e = parse_one("SHOW STREAMS; SHOW TABLES;").unwrap_err();
        assert_eq!((e.line, e.col), (1, 15));
        assert!(e.message.contains("single statement"), "{e}");
        let e = parse_one("  -- only a comment").unwrap_err();
        assert!(e.message.contains("expected a statement"), "{e}");
    }

    #[test]
    fn split_statements_respects_strings_and_comments() {
        let script = "SET 'a;b' = 'c'; -- x; y\nSELECT `semi;colon` FROM s /* ; */;;\nSHOW TOPICS";
        let parts = split_statements(script).expect("splits");
        assert_eq!(
            parts,
            vec![
                "SET 'a;b' = 'c';".to_string(),
                "SELECT `semi;colon` FROM s /* ; */;".to_string(),
                "SHOW TOPICS".to_string(),
            ]
        );
        let e = split_statements("SELECT 'open").unwrap_err();
        assert_eq!((e.line, e.col), (1, 8));
        assert!(e.message.contains("unterminated string"), "{e}");
    }

    #[test]
    fn create_source_forms() {
        match stmt(
            "create or replace source table if not exists users (\n  id BIGINT PRIMARY KEY,\n  \
             `Name` VARCHAR,\n  tags ARRAY<STRING>,\n  h BYTES HEADER('trace'),\n  hs \
             ARRAY<STRUCT<key STRING, value BYTES>> HEADERS\n) with (kafka_topic='users', \
             value_format='avro', replicas=-1, wrap_single_value=false, ratio=0.5)",
        ) {
            Statement::CreateSource {
                kind,
                or_replace,
                if_not_exists,
                source,
                name: n,
                columns,
                props,
            } => {
                assert_eq!(kind, SourceKind::Table);
                assert!(or_replace && if_not_exists && source);
                assert_eq!(name(&n), "USERS");
                assert_eq!(columns[0].key, KeyKind::PrimaryKey);
                assert_eq!(columns[0].ty, SqlType::BigInt);
                assert_eq!(name(&columns[1].name), "Name");
                assert_eq!(columns[2].ty, SqlType::Array(Box::new(SqlType::String)));
                assert_eq!(columns[3].key, KeyKind::Headers);
                assert_eq!(columns[3].header.as_deref(), Some("trace"));
                assert_eq!(columns[4].key, KeyKind::Headers);
                assert_eq!(columns[4].header, None);
                assert_eq!(
                    columns[4].ty,
                    SqlType::Array(Box::new(SqlType::Struct(vec![
                        ("KEY".into(), SqlType::String),
                        ("VALUE".into(), SqlType::Bytes)
                    ])))
                );
                assert_eq!(props.get("REPLICAS"), Some(&PropValue::Number("-1".into())));
                assert_eq!(
                    props.get("WRAP_SINGLE_VALUE"),
                    Some(&PropValue::Boolean(false))
                );
                assert_eq!(props.get("RATIO"), Some(&PropValue::Number("0.5".into())));
                assert_eq!(
                    name(props.get_ident("value_format").expect("prop")),
                    "VALUE_FORMAT"
                );
            }
            other => panic!("{other:?}"),
        }
        // Without a column list (schema from the registry).
        match stmt("CREATE STREAM s WITH (KAFKA_TOPIC='t', VALUE_FORMAT='JSON')") {
            Statement::CreateSource { columns, props, .. } => {
                assert!(columns.is_empty());
                assert_eq!(props.0.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_as_select() {
        match stmt(
            "CREATE OR REPLACE STREAM IF NOT EXISTS big WITH (KAFKA_TOPIC='big') AS SELECT * \
             FROM s WHERE x > 10 EMIT CHANGES",
        ) {
            Statement::CreateAs {
                kind,
                or_replace,
                if_not_exists,
                name: n,
                props,
                query: q,
            } => {
                assert_eq!(kind, SourceKind::Stream);
                assert!(or_replace && if_not_exists);
                assert_eq!(name(&n), "BIG");
                assert_eq!(
                    props.get("KAFKA_TOPIC"),
                    Some(&PropValue::String("big".into()))
                );
                assert_eq!(q.emit, Some(Emit::Changes));
            }
            other => panic!("{other:?}"),
        }
        let e = err("CREATE SOURCE STREAM s AS SELECT * FROM t;");
        assert_eq!((e.line, e.col), (1, 8));
        assert!(e.message.contains("read-only"), "{e}");
        let e = err("CREATE STREAM s (a INT) AS SELECT * FROM t;");
        assert_eq!((e.line, e.col), (1, 17));
        assert!(e.message.contains("remove the column list"), "{e}");
    }

    #[test]
    fn insert_forms() {
        match stmt("INSERT INTO out WITH (QUERY_ID='q1') SELECT a FROM s EMIT CHANGES") {
            Statement::InsertSelect {
                target,
                props,
                query: q,
            } => {
                assert_eq!(name(&target), "OUT");
                assert_eq!(props.get("QUERY_ID"), Some(&PropValue::String("q1".into())));
                assert_eq!(q.select.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            stmt("INSERT INTO out SELECT * FROM s"),
            Statement::InsertSelect { .. }
        ));
        match stmt("INSERT INTO s (id, name) VALUES (1, 'a' + 'b')") {
            Statement::InsertValues {
                target,
                columns,
                values,
            } => {
                assert_eq!(name(&target), "S");
                let cols: Vec<_> = columns
                    .expect("columns")
                    .iter()
                    .map(|c| c.name.clone())
                    .collect();
                assert_eq!(cols, vec!["ID", "NAME"]);
                assert_eq!(values.len(), 2);
                assert_eq!(values[1].to_string(), "('a' + 'b')");
            }
            other => panic!("{other:?}"),
        }
        match stmt("INSERT INTO s VALUES (NULL, -5, ARRAY[1, 2])") {
            Statement::InsertValues {
                columns, values, ..
            } => {
                assert_eq!(columns, None);
                assert_eq!(values[1].kind, ExprKind::Literal(Literal::Integer(-5)));
                assert_eq!(values[2].to_string(), "ARRAY[1, 2]");
            }
            other => panic!("{other:?}"),
        }
        let e = err("INSERT INTO s VALUE (1)");
        assert_eq!((e.line, e.col), (1, 15));
        assert!(e.message.contains("did you mean VALUES?"), "{e}");
    }

    #[test]
    fn drop_terminate_and_admin_statements() {
        assert_eq!(
            stmt("DROP TABLE IF EXISTS t DELETE TOPIC"),
            Statement::Drop {
                kind: SourceKind::Table,
                if_exists: true,
                name: Ident {
                    name: "T".into(),
                    pos: at(1, 22)
                },
                delete_topic: true
            }
        );
        assert!(matches!(
            stmt("drop stream s"),
            Statement::Drop {
                kind: SourceKind::Stream,
                if_exists: false,
                delete_topic: false,
                ..
            }
        ));
        assert_eq!(
            stmt("TERMINATE ALL"),
            Statement::Terminate { query_id: None }
        );
        match stmt("TERMINATE CSAS_OUT_3") {
            Statement::Terminate { query_id: Some(id) } => assert_eq!(name(&id), "CSAS_OUT_3"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            stmt("SET 'auto.offset.reset' = 'earliest'"),
            Statement::Set {
                name: "auto.offset.reset".into(),
                value: "earliest".into()
            }
        );
        assert_eq!(
            stmt("UNSET 'auto.offset.reset'"),
            Statement::Unset {
                name: "auto.offset.reset".into()
            }
        );
        match stmt("DEFINE topic = 'orders'") {
            Statement::Define { name: n, value } => {
                assert_eq!(name(&n), "TOPIC");
                assert_eq!(value, "orders");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(stmt("UNDEFINE topic"), Statement::Undefine { .. }));
        assert_eq!(
            stmt("RUN SCRIPT '/tmp/x.sql'"),
            Statement::RunScript {
                path: "/tmp/x.sql".into()
            }
        );
    }

    #[test]
    fn show_and_list() {
        let cases = [
            ("SHOW STREAMS", ShowWhat::Streams, false),
            ("LIST TABLES", ShowWhat::Tables, false),
            ("SHOW QUERIES EXTENDED", ShowWhat::Queries, true),
            ("SHOW TOPICS", ShowWhat::Topics { all: false }, false),
            (
                "SHOW ALL TOPICS EXTENDED",
                ShowWhat::Topics { all: true },
                true,
            ),
            ("SHOW PROPERTIES", ShowWhat::Properties, false),
            ("LIST FUNCTIONS", ShowWhat::Functions, false),
            ("SHOW VARIABLES", ShowWhat::Variables, false),
        ];
        for (sql, what, extended) in cases {
            assert_eq!(stmt(sql), Statement::Show { what, extended }, "{sql}");
        }
        let e = err("SHOW STREAMZ");
        assert_eq!((e.line, e.col), (1, 6));
        assert!(e.message.contains("'STREAMZ'"), "{e}");
        assert!(e.message.contains("did you mean STREAMS?"), "{e}");
    }

    #[test]
    fn describe_explain_print() {
        match stmt("DESCRIBE orders EXTENDED") {
            Statement::Describe {
                target: DescribeTarget::Source(n),
                extended: true,
            } => assert_eq!(name(&n), "ORDERS"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            stmt("DESCRIBE STREAMS EXTENDED"),
            Statement::Describe {
                target: DescribeTarget::Streams,
                extended: true
            }
        );
        assert_eq!(
            stmt("DESCRIBE TABLES"),
            Statement::Describe {
                target: DescribeTarget::Tables,
                extended: false
            }
        );
        match stmt("DESCRIBE FUNCTION substring") {
            Statement::Describe {
                target: DescribeTarget::Function(n),
                extended: false,
            } => assert_eq!(name(&n), "SUBSTRING"),
            other => panic!("{other:?}"),
        }
        match stmt("EXPLAIN CTAS_T_1") {
            Statement::Explain(ExplainTarget::QueryId(id)) => assert_eq!(name(&id), "CTAS_T_1"),
            other => panic!("{other:?}"),
        }
        match stmt("EXPLAIN SELECT * FROM s EMIT CHANGES") {
            Statement::Explain(ExplainTarget::Statement(s)) => {
                assert!(matches!(*s, Statement::Select(_)))
            }
            other => panic!("{other:?}"),
        }
        match stmt("PRINT 'rider-locations' FROM BEGINNING INTERVAL 2 LIMIT 10") {
            Statement::Print {
                topic,
                from_beginning,
                interval,
                limit,
            } => {
                assert_eq!(name(&topic), "rider-locations");
                assert!(from_beginning);
                assert_eq!(interval, Some(2));
                assert_eq!(limit, Some(10));
            }
            other => panic!("{other:?}"),
        }
        match stmt("PRINT orders SAMPLE 5") {
            Statement::Print {
                topic,
                from_beginning,
                interval,
                limit,
            } => {
                assert_eq!(name(&topic), "ORDERS");
                assert!(!from_beginning);
                assert_eq!((interval, limit), (Some(5), None));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn joins_windows_and_clauses() {
        let q = query(
            "SELECT o.id, c.name AS cname, o.* FROM orders AS o \
             LEFT OUTER JOIN customers c ON o.cid = c.id \
             JOIN shipments s WITHIN (1 HOUR, 30 MINUTES) GRACE PERIOD 10 SECONDS ON s.oid = o.id \
             FULL JOIN x WITHIN 2 DAYS ON x.k = o.id \
             INNER JOIN y ON y.k = o.id \
             RIGHT JOIN z ON z.k = o.id \
             WINDOW HOPPING (SIZE 5 MINUTES, ADVANCE BY 1 MINUTE, RETENTION 7 DAYS, GRACE PERIOD 0 SECONDS) \
             WHERE o.total > 10 GROUP BY o.id, c.name PARTITION BY o.id HAVING COUNT(*) > 1 \
             EMIT FINAL LIMIT 100",
        );
        assert_eq!(q.select.len(), 3);
        assert!(
            matches!(&q.select[2], SelectItem::Star { qualifier: Some(q), .. } if q.name == "O")
        );
        match &q.select[1] {
            SelectItem::Expr { expr, alias } => {
                assert_eq!(expr.to_string(), "C.NAME");
                assert_eq!(alias.as_ref().map(name), Some("CNAME"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(q.from.qualifier().name, "O");
        let kinds: Vec<_> = q.joins.iter().map(|j| j.kind).collect();
        assert_eq!(
            kinds,
            vec![
                JoinKind::Left,
                JoinKind::Inner,
                JoinKind::Full,
                JoinKind::Inner,
                JoinKind::Right
            ]
        );
        assert_eq!(q.joins[0].right.qualifier().name, "C");
        assert_eq!(q.joins[0].on.to_string(), "(O.CID = C.ID)");
        let w = q.joins[1].within.as_ref().expect("within");
        assert_eq!(
            (w.before.millis, w.after.millis, w.grace.map(|g| g.millis)),
            (3_600_000, 1_800_000, Some(10_000))
        );
        let w = q.joins[2].within.as_ref().expect("within");
        assert_eq!(
            (w.before.millis, w.after.millis, w.grace),
            (172_800_000, 172_800_000, None)
        );
        assert!(q.joins[3].within.is_none());
        let win = q.window.expect("window");
        assert!(matches!(
            win.kind,
            WindowKind::Hopping { size, advance } if size.millis == 300_000 && advance.millis == 60_000
        ));
        assert_eq!(win.retention.map(|d| d.millis), Some(604_800_000));
        assert_eq!(win.grace.map(|d| d.millis), Some(0));
        assert_eq!(q.group_by.len(), 2);
        assert_eq!(q.partition_by.len(), 1);
        assert_eq!(
            q.having.map(|h| h.to_string()),
            Some("(COUNT(*) > 1)".into())
        );
        assert_eq!(q.emit, Some(Emit::Final));
        assert_eq!(q.limit, Some(100));

        let q = query("SELECT * FROM s WINDOW SESSION (30 SECONDS, GRACE PERIOD 1 MILLISECOND) GROUP BY (a, b)");
        let win = q.window.expect("window");
        assert!(matches!(win.kind, WindowKind::Session { gap } if gap.millis == 30_000));
        assert_eq!(win.grace.map(|d| d.millis), Some(1));
        assert_eq!(q.group_by.len(), 2);
        // A parenthesized single expression is just an expression.
        let q = query("SELECT * FROM s GROUP BY (a + b) * 2");
        assert_eq!(q.group_by.len(), 1);
        assert_eq!(q.group_by[0].to_string(), "((A + B) * 2)");
    }

    #[test]
    fn aliases_without_as_and_keyword_like_names() {
        let q = query("SELECT key, type total, size FROM s src WHERE src.key = 1");
        assert_eq!(q.select.len(), 3);
        match &q.select[1] {
            SelectItem::Expr { expr, alias } => {
                assert_eq!(expr.to_string(), "TYPE");
                assert_eq!(alias.as_ref().map(name), Some("TOTAL"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(q.from.alias.as_ref().map(name), Some("SRC"));
        // Quoted reserved words are names.
        let q = query("SELECT `from` FROM `select`");
        assert_eq!(q.from.name.name, "select");
    }

    #[test]
    fn precedence() {
        assert_eq!(ex("a + b * c"), "(A + (B * C))");
        assert_eq!(ex("a * b + c"), "((A * B) + C)");
        assert_eq!(ex("a - b - c"), "((A - B) - C)");
        assert_eq!(ex("NOT a = b AND c"), "((NOT (A = B)) AND C)");
        assert_eq!(ex("a OR b AND c"), "(A OR (B AND C))");
        assert_eq!(ex("a || b + c = d"), "(((A || B) + C) = D)");
        assert_eq!(ex("a % b / c"), "((A % B) / C)");
        assert_eq!(ex("-a * b"), "(-A * B)");
        assert_eq!(ex("(a + b) * c"), "((A + B) * C)");
        assert_eq!(ex("NOT NOT a"), "(NOT (NOT A))");
        assert_eq!(
            ex("a + 1 > b AND c < 2 OR d <> e"),
            "((((A + 1) > B) AND (C < 2)) OR (D <> E))"
        );
        assert_eq!(ex("a != b"), "(A <> B)");
        assert_eq!(ex("a >= b AND a <= c"), "((A >= B) AND (A <= C))");
    }

    #[test]
    fn predicates() {
        assert_eq!(ex("a IS NULL"), "(A IS NULL)");
        assert_eq!(ex("a IS NOT NULL AND b"), "((A IS NOT NULL) AND B)");
        assert_eq!(ex("a IS DISTINCT FROM b"), "(A IS DISTINCT FROM B)");
        assert_eq!(
            ex("a IS NOT DISTINCT FROM b + 1"),
            "(A IS NOT DISTINCT FROM (B + 1))"
        );
        assert_eq!(ex("a BETWEEN 1 AND 2 AND b"), "((A BETWEEN 1 AND 2) AND B)");
        assert_eq!(ex("a NOT BETWEEN 1 AND 2"), "(A NOT BETWEEN 1 AND 2)");
        assert_eq!(ex("a IN (1, 2, 3)"), "(A IN (1, 2, 3))");
        assert_eq!(ex("a NOT IN ('x')"), "(A NOT IN ('x'))");
        assert_eq!(ex("name LIKE 'a%'"), "(NAME LIKE 'a%')");
        assert_eq!(
            ex("name NOT LIKE 'a!%%' ESCAPE '!'"),
            "(NAME NOT LIKE 'a!%%' ESCAPE '!')"
        );
        assert!(parse_expr("a LIKE 'x' ESCAPE 'ab'")
            .unwrap_err()
            .message
            .contains("single character"));
    }

    #[test]
    fn literals() {
        let lit = |s: &str| parse_expr(s).expect("parses").kind;
        assert_eq!(lit("NULL"), ExprKind::Literal(Literal::Null));
        assert_eq!(lit("true"), ExprKind::Literal(Literal::Boolean(true)));
        assert_eq!(lit("FALSE"), ExprKind::Literal(Literal::Boolean(false)));
        assert_eq!(lit("42"), ExprKind::Literal(Literal::Integer(42)));
        assert_eq!(
            lit("9223372036854775807"),
            ExprKind::Literal(Literal::Integer(i64::MAX))
        );
        assert_eq!(
            lit("-9223372036854775808"),
            ExprKind::Literal(Literal::Integer(i64::MIN))
        );
        assert_eq!(
            lit("1.50"),
            ExprKind::Literal(Literal::Decimal("1.50".into()))
        );
        assert_eq!(
            lit("-1.5"),
            ExprKind::Literal(Literal::Decimal("-1.5".into()))
        );
        assert_eq!(lit("2.5E-3"), ExprKind::Literal(Literal::Double(2.5e-3)));
        assert_eq!(
            lit("'it''s'"),
            ExprKind::Literal(Literal::String("it's".into()))
        );
        let e = parse_expr("1 + 9223372036854775808").unwrap_err();
        assert_eq!((e.line, e.col), (1, 5));
        assert!(
            e.message
                .starts_with("Invalid numeric literal: 9223372036854775808 (out of BIGINT's range"),
            "{e}"
        );
        assert_eq!(
            parse_expr("1e999").unwrap_err().message,
            "Number overflows DOUBLE: 1e999"
        );
        // `- -5` keeps the outer negation.
        assert_eq!(ex("- -5"), "--5");
    }

    #[test]
    fn columns_functions_and_postfix() {
        assert!(matches!(
            parse_expr("s.col").expect("parses").kind,
            ExprKind::Column { qualifier: Some(q), name: n } if q.name == "S" && n.name == "COL"
        ));
        assert_eq!(ex("`Mixed`.\"Case\""), "Mixed.Case");
        assert_eq!(ex("s.addr->city->zip"), "S.ADDR->CITY->ZIP");
        assert_eq!(ex("arr[1][-1]"), "ARR[1][-1]");
        assert_eq!(ex("m['k']->f"), "M['k']->F");
        assert_eq!(ex("f()"), "F()");
        assert_eq!(ex("substring(name, 1, 3)"), "SUBSTRING(NAME, 1, 3)");
        assert_eq!(ex("COUNT(DISTINCT user_id)"), "COUNT(DISTINCT USER_ID)");
        assert!(matches!(
            parse_expr("count(distinct x)").expect("parses").kind,
            ExprKind::Function {
                distinct: true,
                star: false,
                ..
            }
        ));
        assert_eq!(ex("CAST(x AS DECIMAL(10, 2))"), "CAST(X AS DECIMAL(10, 2))");
        assert_eq!(
            ex("CAST(m AS MAP<STRING, ARRAY<INT>>)"),
            "CAST(M AS MAP<STRING, ARRAY<INTEGER>>)"
        );
        assert_eq!(
            ex("CASE WHEN a > 1 THEN 'big' WHEN a > 0 THEN 'small' ELSE 'none' END"),
            "(CASE WHEN (A > 1) THEN 'big' WHEN (A > 0) THEN 'small' ELSE 'none' END)"
        );
        assert_eq!(
            ex("CASE a WHEN 1 THEN 'one' END"),
            "(CASE A WHEN 1 THEN 'one' END)"
        );
        assert_eq!(ex("ARRAY[]"), "ARRAY[]");
        assert_eq!(ex("ARRAY[1, 2 + 3]"), "ARRAY[1, (2 + 3)]");
        assert_eq!(ex("MAP('a' := 1, 'b' := 2)"), "MAP('a':=1, 'b':=2)");
        assert_eq!(
            ex("STRUCT(name := 'x', `Age` := 3)"),
            "STRUCT(NAME:='x', Age:=3)"
        );
        // ARRAY, MAP and STRUCT without their brackets are plain names.
        assert_eq!(ex("map + array"), "(MAP + ARRAY)");
    }

    #[test]
    fn lambdas() {
        assert_eq!(
            ex("TRANSFORM(arr, x => x + 1)"),
            "TRANSFORM(ARR, X => (X + 1))"
        );
        assert_eq!(
            ex("REDUCE(arr, 0, (s, x) => s + x)"),
            "REDUCE(ARR, 0, (S, X) => (S + X))"
        );
        assert_eq!(
            ex("TRANSFORM(m, (k, v) => UCASE(k), (k, v) => FILTER(v, e => e > 0))"),
            "TRANSFORM(M, (K, V) => UCASE(K), (K, V) => FILTER(V, E => (E > 0)))"
        );
        match parse_expr("FILTER(a, (x) => x)").expect("parses").kind {
            ExprKind::Function { args, .. } => match &args[1].kind {
                ExprKind::Lambda { params, .. } => {
                    assert_eq!(params.len(), 1);
                    assert_eq!(args[1].pos, at(1, 11));
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        // A parenthesized expression argument is not a lambda.
        assert_eq!(ex("ABS((x))"), "ABS(X)");
    }

    #[test]
    fn nested_types() {
        match stmt(
            "CREATE STREAM s (a ARRAY<ARRAY<INT>>, m MAP<STRING, STRUCT<x DOUBLE, `y` \
             MAP<VARCHAR,ARRAY<TIMESTAMP>>>>, d DATE, t TIME, b BOOLEAN, e STRUCT<>) \
             WITH (KAFKA_TOPIC='s', VALUE_FORMAT='JSON')",
        ) {
            Statement::CreateSource { columns, .. } => {
                let tys: Vec<String> = columns.iter().map(|c| c.ty.to_string()).collect();
                assert_eq!(
                    tys,
                    vec![
                        "ARRAY<ARRAY<INTEGER>>",
                        "MAP<STRING, STRUCT<`X` DOUBLE, `y` MAP<STRING, ARRAY<TIMESTAMP>>>>",
                        "DATE",
                        "TIME",
                        "BOOLEAN",
                        "STRUCT<>"
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        let e = err("CREATE STREAM s (a ARRAY<INTT>) WITH (KAFKA_TOPIC='s');");
        assert_eq!((e.line, e.col), (1, 26));
        assert!(e.message.contains("'INTT': expected a type"), "{e}");
        assert!(e.message.contains("did you mean INT?"), "{e}");
        let e = err("CREATE STREAM s (a DECIMAL(40, 2));");
        assert!(e.message.contains("precision"), "{e}");
        let e = err("CREATE STREAM s (a DECIMAL(4, 5));");
        assert!(e.message.contains("scale"), "{e}");
        let e = err("CREATE STREAM s (a STRUCT<x INT, X INT>);");
        assert!(e.message.contains("duplicate field X"), "{e}");
    }

    #[test]
    fn misspelled_keyword_errors_name_token_and_suggest() {
        let e = err("SELECT a, b FORM s;");
        assert_eq!((e.line, e.col), (1, 13));
        assert_eq!(
            e.message,
            "Syntax Error at or near 'FORM': expected FROM; did you mean FROM?"
        );
        assert_eq!(
            e.to_string(),
            "line 1:13: Syntax Error at or near 'FORM': expected FROM; did you mean FROM?"
        );
        let e = err("SELECT * FROM s\nWHRE a = 1;");
        assert_eq!((e.line, e.col), (2, 1));
        assert!(e.message.contains("'WHRE'"), "{e}");
        assert!(e.message.contains("did you mean WHERE?"), "{e}");
        let e = err("SELECT * FROM s EMIT CHANGE;");
        assert_eq!((e.line, e.col), (1, 22));
        assert!(
            e.message
                .contains("expected CHANGES or FINAL; did you mean CHANGES?"),
            "{e}"
        );
        let e = err("SELEC * FROM s;");
        assert_eq!((e.line, e.col), (1, 1));
        assert!(e.message.contains("'SELEC': expected a statement"), "{e}");
        assert!(e.message.contains("did you mean SELECT?"), "{e}");
        let e = err("SELECT * FROM s WINDOW TUMBLIN (SIZE 1 DAY);");
        assert_eq!((e.line, e.col), (1, 24));
        assert!(e.message.contains("did you mean TUMBLING?"), "{e}");
        let e = err("SELECT * FROM s WINDOW TUMBLING (SIZE 1 DAYZ);");
        assert_eq!((e.line, e.col), (1, 41));
        assert!(e.message.contains("expected a time unit"), "{e}");
        assert!(e.message.contains("did you mean DAY?"), "{e}");
        let e = err("SELECT * FROM a JOIN b ONN a.x = b.x;");
        assert!(
            e.message.contains("'ONN'") && e.message.contains("did you mean ON?"),
            "{e}"
        );
    }

    #[test]
    fn misspelled_clause_after_an_expression_is_suggested() {
        let e = err("SELECT x FROM s WHERE x = 1 GRUOP BY x;");
        assert_eq!((e.line, e.col), (1, 29));
        assert_eq!(
            e.message,
            "Syntax Error at or near 'GRUOP': expected ';'; did you mean GROUP?"
        );
        let e = parse_expr("a + b c").unwrap_err();
        assert_eq!((e.line, e.col), (1, 7));
        assert!(
            e.message
                .contains("'c': expected the end of the expression"),
            "{e}"
        );
        let e = err("SELECT * FROM s EMIT CHANGES LIMIT x;");
        assert_eq!((e.line, e.col), (1, 36));
        assert_eq!(
            e.message,
            "Syntax Error at or near 'x': expected a row limit"
        );
    }

    #[test]
    fn errors_say_what_was_expected() {
        let e = err("SELECT FROM s;");
        assert_eq!((e.line, e.col), (1, 8));
        assert_eq!(
            e.message,
            "Syntax Error at or near 'FROM': expected an expression"
        );
        let e = err("SELECT a FROM s WHERE;");
        assert_eq!((e.line, e.col), (1, 22));
        assert_eq!(
            e.message,
            "unexpected end of statement; expected an expression"
        );
        let e = err("SELECT COUNT(*\nFROM s\n");
        assert_eq!((e.line, e.col), (2, 1));
        assert_eq!(e.message, "Syntax Error at or near 'FROM': expected ')'");
        let e = err("SELECT f(a,\n b\n");
        assert_eq!((e.line, e.col), (3, 1));
        assert_eq!(
            e.message,
            "unexpected end of statement; expected ',' or ')'"
        );
        let e = err("CREATE STREAM s (a INT) WITH (KAFKA_TOPIC='t'\n\n");
        assert_eq!((e.line, e.col), (3, 1));
        assert_eq!(
            e.message,
            "unexpected end of statement; expected ',' or ')'"
        );
        let e = err("SELECT * FROM s x y;");
        assert_eq!((e.line, e.col), (1, 19));
        assert_eq!(e.message, "Syntax Error at or near 'y': expected ';'");
        let e = err("CREATE VIEW v AS SELECT * FROM s;");
        assert_eq!((e.line, e.col), (1, 8));
        assert!(
            e.message.contains("'VIEW': expected STREAM or TABLE"),
            "{e}"
        );
        let e = err("SELECT * FROM where;");
        assert!(e.message.contains("reserved word"), "{e}");
        let e = err("CREATE STREAM s (a INT) WITH (A=1, a=2);");
        assert_eq!((e.line, e.col), (1, 36));
        assert!(e.message.contains("duplicate property A"), "{e}");
        let e = err("SELECT * FROM s WINDOW HOPPING (SIZE 1 HOUR);");
        assert!(e.message.contains("expected ',' and ADVANCE BY"), "{e}");
        let e = err("SELECT * FROM s LIMIT 99999999999999999999999;");
        assert!(e.message.contains("too large"), "{e}");
        let e = err("SELECT CASE WHEN a THEN b FROM s;");
        assert!(
            e.message.contains("'FROM': expected WHEN, ELSE or END"),
            "{e}"
        );
        let e = err("SHOW STREAMS\nSHOW TABLES;");
        assert_eq!((e.line, e.col), (2, 1));
        assert!(e.message.contains("'SHOW': expected ';'"), "{e}");
    }

    #[test]
    fn lex_errors_become_parse_errors() {
        let e = err("SELECT * FROM s WHERE a = 'open;");
        assert_eq!((e.line, e.col), (1, 27));
        assert!(e.message.contains("unterminated string"), "{e}");
        let e = err("SELECT a # b FROM s;");
        assert_eq!((e.line, e.col), (1, 10));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let ok = format!("{}1{}", "(".repeat(150), ")".repeat(150));
        assert_eq!(ex(&ok), "1");
        let hostile = format!(
            "SELECT {}1{} FROM s;",
            "(".repeat(100_000),
            ")".repeat(100_000)
        );
        let e = err(&hostile);
        assert!(e.message.contains("nested too deeply"), "{e}");
        assert_eq!(e.line, 1);
        let types = format!(
            "CREATE STREAM s (a {}INT{});",
            "ARRAY<".repeat(5_000),
            ">".repeat(5_000)
        );
        assert!(err(&types).message.contains("nested too deeply"));
        let calls = format!("{}x{}", "f(".repeat(5_000), ")".repeat(5_000));
        assert!(parse_expr(&calls)
            .unwrap_err()
            .message
            .contains("nested too deeply"));
        for (open, close) in [
            ("CASE WHEN ", " THEN 1 END"),
            ("CASE ", " WHEN 1 THEN 1 END"),
            ("ARRAY[", "]"),
            ("MAP(1 := ", ")"),
            ("STRUCT(a := ", ")"),
            ("CAST(", " AS INT)"),
            ("TRANSFORM(a, x => ", ")"),
            ("a[", "]"),
            ("a IN (", ")"),
            ("-(", ")"),
            ("NOT (", ")"),
            ("1 + (", ")"),
        ] {
            let hostile = format!("{}x{}", open.repeat(3_000), close.repeat(3_000));
            let e = parse_expr(&hostile).unwrap_err();
            assert!(
                e.message.contains("nested too deeply") || e.message.contains("too long"),
                "{open}: {e}"
            );
            let fine = format!(
                "{}x{}",
                open.repeat(MAX_DEPTH - 1),
                close.repeat(MAX_DEPTH - 1)
            );
            assert!(parse_expr(&fine).is_ok(), "{open}");
        }
        // Operators count towards the tree's height too, whether in a row
        // or spread over nesting levels.
        for hostile in [
            format!("{}x", "NOT ".repeat(5_000)),
            format!("{}x", "- ".repeat(5_000)),
            format!("x{}", "[1]".repeat(5_000)),
            vec!["a"; 20_000].join(" + "),
            format!(
                "{}a{}",
                "(NOT NOT NOT NOT NOT NOT ".repeat(190),
                ")".repeat(190)
            ),
        ] {
            let e = parse_expr(&hostile).unwrap_err();
            assert!(e.message.contains("expression too long"), "{e}");
        }
        // Up to the limit, the tree can be printed and dropped.
        let long = vec!["a"; MAX_OPERATORS + 1].join(" OR ");
        assert!(ex(&long).starts_with(&"(".repeat(MAX_OPERATORS)));
        let e = parse_expr(&vec!["a"; MAX_OPERATORS + 2].join(" OR ")).unwrap_err();
        assert_eq!((e.line, e.col), (1, 1283));
    }

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        assert_eq!(edit_distance("FORM", "FROM"), 1);
        assert_eq!(edit_distance("SELET", "SELECT"), 1);
        assert_eq!(edit_distance("ABC", "ABC"), 0);
        assert_eq!(suggest("GROPU", CLAUSE_KEYWORDS), Some("GROUP"));
        assert_eq!(suggest("XYZZY", CLAUSE_KEYWORDS), None);
    }

    const FRAGMENTS: &[&str] = &[
        "SELECT", "FROM", "WHERE", "CREATE", "STREAM", "TABLE", "AS", "(", ")", ",", ";", "*", "a",
        "b.c", "1", "1.5", "'s'", "=", "+", "-", "NOT", "AND", "OR", "IS", "NULL", "IN", "BETWEEN",
        "LIKE", "CASE", "WHEN", "THEN", "ELSE", "END", "CAST", "ARRAY", "[", "]", "MAP", "STRUCT",
        "<", ">", ":=", "=>", "->", "WINDOW", "TUMBLING", "SIZE", "DAY", "GROUP", "BY", "EMIT",
        "CHANGES", "JOIN", "ON", "WITHIN", "WITH", "INT", "KEY", "INSERT", "INTO", "VALUES",
        "SHOW", "DESCRIBE", "PRINT", "LIMIT", "--x\n", "`q`",
    ];

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_text(s in "\\PC*") {
            let _ = parse(&s);
            let _ = split_statements(&s);
            prop_assert!(parse_expr(&s).is_ok() || parse_expr(&s).is_err());
        }

        #[test]
        fn parse_never_panics_on_token_soup(
            words in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..60)
        ) {
            let text = words.join(" ");
            match parse(&text) {
                Ok(stmts) => prop_assert!(stmts.iter().all(|p| p.text.ends_with(';'))),
                Err(e) => prop_assert!(e.line >= 1 && e.col >= 1 && !e.message.is_empty()),
            }
            let _ = parse_expr(&text);
        }
    }
}
