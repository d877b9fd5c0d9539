//! The ksqlDB dialect: parser, types and functions, planner onto runnel-streams, and the engine that runs statements.

pub mod ast;
mod ast_display;
pub mod catalog;
pub mod engine;
pub mod error;
pub mod expr;
pub mod functions;
pub mod lexer;
pub mod parser;
pub mod plan;

pub use runnel_format::{cast, format, schema, types};

pub use engine::{
    Engine, EngineConfig, Executed, Outcome, PullForwarder, QueryEvent, QueryStream,
    PULL_LOCAL_ONLY,
};
pub use error::{ErrorKind, SqlError};
