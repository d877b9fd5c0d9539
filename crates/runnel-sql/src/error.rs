//! The error of a statement that cannot run: where in the text, and why.

use std::fmt;

use crate::ast::Pos;

/// What kind of failure, for the REST API's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The statement cannot be parsed: ksqlDB's 40001.
    Syntax,
    /// The statement is wrong (names, types, semantics): ksqlDB's 40001.
    Statement,
    /// Wrong as ksqlDB's parser finds it while building the statement
    /// (an unknown source qualifier): "Failed to prepare statement: …".
    Prepare,
    /// Wrong as ksqlDB finds it resolving the statement's names (an
    /// ambiguous column): "Exception while preparing statement: …".
    Sanitize,
    /// A stream, table, query or topic does not exist: 40002-like.
    NotFound,
    /// The engine failed while running a valid statement: 50000.
    Server,
    /// Another service (Kafka Connect) refused with this HTTP status; the
    /// REST API answers with that status and error code status × 100, as
    /// ksqlDB does.
    Remote(u16),
}

/// A statement's error, with its position when one is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub pos: Option<Pos>,
    pub message: String,
    pub kind: ErrorKind,
}

impl SqlError {
    pub fn at(pos: Pos, message: impl Into<String>) -> Self {
        SqlError {
            pos: Some(pos),
            message: message.into(),
            kind: ErrorKind::Statement,
        }
    }

    /// An error of one of ksqlDB's preparation stages.
    pub fn in_stage(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn new(message: impl Into<String>) -> Self {
        SqlError {
            pos: None,
            message: message.into(),
            kind: ErrorKind::Statement,
        }
    }

    pub fn not_found(pos: Option<Pos>, message: impl Into<String>) -> Self {
        SqlError {
            pos,
            message: message.into(),
            kind: ErrorKind::NotFound,
        }
    }

    /// Another service refused with HTTP `status`.
    pub fn remote(status: u16, message: impl Into<String>) -> Self {
        SqlError {
            pos: None,
            message: message.into(),
            kind: ErrorKind::Remote(status),
        }
    }

    pub fn server(message: impl Into<String>) -> Self {
        SqlError {
            pos: None,
            message: message.into(),
            kind: ErrorKind::Server,
        }
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ksqlDB's two spellings of a position: its parser's
        // "line L:C:" and its analysis' "Line: L, Col: C:" (both relative
        // to the whole request text, columns from 1).
        match self.pos {
            // ksqlDB writes no position here; ours follows the message.
            Some(p) if p.line > 0 && self.kind == ErrorKind::Prepare => write!(
                f,
                "Failed to prepare statement: {} (Line: {}, Col: {})",
                self.message, p.line, p.col
            ),
            _ if self.kind == ErrorKind::Prepare => {
                write!(f, "Failed to prepare statement: {}", self.message)
            }
            Some(p) if p.line > 0 && self.kind == ErrorKind::Sanitize => write!(
                f,
                "Exception while preparing statement: Line: {}, Col: {}: {}",
                p.line, p.col, self.message
            ),
            _ if self.kind == ErrorKind::Sanitize => {
                write!(f, "Exception while preparing statement: {}", self.message)
            }
            Some(p) if p.line > 0 && self.kind == ErrorKind::Syntax => {
                write!(f, "line {}:{}: {}", p.line, p.col, self.message)
            }
            Some(p) if p.line > 0 => {
                write!(f, "Line: {}, Col: {}: {}", p.line, p.col, self.message)
            }
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for SqlError {}

impl From<crate::parser::ParseError> for SqlError {
    fn from(e: crate::parser::ParseError) -> Self {
        SqlError {
            pos: Some(Pos {
                line: e.line,
                col: e.col,
            }),
            message: e.message,
            kind: ErrorKind::Syntax,
        }
    }
}
