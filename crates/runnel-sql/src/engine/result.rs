//! What statements return: typed descriptions of what happened, with no
//! wire shape. The REST API (`runnel-sql-http`) renders them as ksqlDB's
//! JSON entities.

use crate::ast::{Ident, SourceKind};
use crate::catalog::{QueryInfo, SourceInfo};
use crate::functions::FunctionInfo;
use crate::schema::Column;
use serde_json::Value as Json;

/// One statement run by [`Engine::execute`](super::Engine::execute).
#[derive(Debug, Clone)]
pub struct Executed {
    /// The statement's text, as it was sent.
    pub statement_text: String,
    pub outcome: Outcome,
}

/// What a statement did or read.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The statement succeeded with `message`. `command` is set for the
    /// statements numbered in the command topic's sequence (CREATE, DROP,
    /// TERMINATE, INSERT INTO … SELECT), not for INSERT VALUES nor the
    /// session's SET/DEFINE.
    Status {
        message: String,
        command: Option<CommandRef>,
    },
    /// SHOW STREAMS.
    Streams(Vec<SourceInfo>),
    /// SHOW TABLES.
    Tables(Vec<SourceInfo>),
    /// DESCRIBE STREAMS|TABLES, SHOW STREAMS|TABLES EXTENDED.
    SourceDescriptions(Vec<SourceDescription>),
    /// DESCRIBE a source.
    SourceDescription(SourceDescription),
    /// SHOW QUERIES: the persistent queries running here.
    Queries(Vec<RunningQuery>),
    /// SHOW [ALL] TOPICS: names and partition counts.
    Topics(Vec<(String, i32)>),
    /// SHOW PROPERTIES.
    Properties(Vec<Property>),
    /// SHOW FUNCTIONS.
    Functions(Vec<FunctionInfo>),
    /// SHOW VARIABLES: names and values.
    Variables(Vec<(String, String)>),
    /// DESCRIBE FUNCTION.
    Function(FunctionInfo),
    /// EXPLAIN a query id or a query.
    QueryDescription(QueryDescription),
    /// CREATE SOURCE|SINK CONNECTOR: Kafka Connect's connector info
    /// (`name`, `config`, `tasks`, `type`), as it answered.
    ConnectorInfo(Json),
    /// SHOW [SOURCE|SINK] CONNECTORS.
    Connectors {
        connectors: Vec<ConnectorSummary>,
        warnings: Vec<String>,
    },
    /// DESCRIBE CONNECTOR.
    ConnectorDescription(Box<ConnectorDescription>),
    /// DROP CONNECTOR: the connector's name.
    DroppedConnector(String),
    /// Nothing was done, and why (`IF [NOT] EXISTS` on a connector).
    Warning(String),
}

/// One connector of SHOW CONNECTORS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorSummary {
    pub name: String,
    /// `source`, `sink`, or `unknown` when Kafka Connect could not say.
    pub kind: String,
    pub class: Option<String>,
    /// ksqlDB's summary (`RUNNING (1/1 tasks RUNNING)`).
    pub state: Option<String>,
}

/// DESCRIBE CONNECTOR: the class, Kafka Connect's status body, the topics
/// the connector uses and the streams and tables over them.
#[derive(Debug, Clone)]
pub struct ConnectorDescription {
    pub class: String,
    pub status: Json,
    pub sources: Vec<SourceInfo>,
    pub topics: Vec<String>,
    pub warnings: Vec<String>,
}

impl Outcome {
    /// A statement numbered in the command topic's sequence succeeded.
    pub(crate) fn command(message: &str, query_id: Option<&str>, seq: i64) -> Outcome {
        Outcome::Status {
            message: message.to_string(),
            command: Some(CommandRef {
                seq,
                query_id: query_id.map(str::to_string),
            }),
        }
    }

    /// A persistent query started (CSAS, CTAS, INSERT INTO … SELECT).
    pub(crate) fn created(qid: &str, seq: i64) -> Outcome {
        Outcome::command(&format!("Created query with ID {qid}"), Some(qid), seq)
    }

    /// `IF NOT EXISTS` on a name that exists: success, nothing done.
    pub(crate) fn exists(kind: SourceKind, name: &Ident, seq: i64) -> Outcome {
        Outcome::command(&format!("{kind} {} already exists", name.name), None, seq)
    }

    /// A statement outside the command sequence succeeded (INSERT VALUES,
    /// SET, DEFINE …).
    pub(crate) fn done(message: impl Into<String>) -> Outcome {
        Outcome::Status {
            message: message.into(),
            command: None,
        }
    }
}

/// A statement's place in the command topic's sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRef {
    pub seq: i64,
    /// The persistent query it started.
    pub query_id: Option<String>,
}

/// A source with the persistent queries reading and writing it.
#[derive(Debug, Clone)]
pub struct SourceDescription {
    pub source: SourceInfo,
    pub read_queries: Vec<QueryInfo>,
    pub write_queries: Vec<QueryInfo>,
    /// Asked for with EXTENDED.
    pub extended: bool,
}

/// A persistent query and its state (`RUNNING`, `ERROR`).
#[derive(Debug, Clone)]
pub struct RunningQuery {
    pub info: QueryInfo,
    pub state: String,
}

/// Where a property's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyScope {
    /// The engine's configuration.
    Ksql,
    /// The session's `SET`.
    Session,
}

/// One property SHOW PROPERTIES lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub name: String,
    pub scope: PropertyScope,
    pub value: String,
}

/// A query's plan: its output columns, sources and topology.
#[derive(Debug, Clone)]
pub struct QueryDescription {
    /// The query id; empty for a query explained without running.
    pub id: String,
    /// The persistent query's statement, or the EXPLAIN statement.
    pub statement_text: String,
    /// Output columns: key columns, then value columns.
    pub fields: Vec<Column>,
    pub sources: Vec<String>,
    pub sinks: Vec<String>,
    /// The topology's description.
    pub topology: String,
    /// `RUNNING`, `ERROR`, `UNKNOWN`, or `NOT_RUNNING` when only explained.
    pub state: String,
    /// A running persistent query (EXPLAIN of a query id), not a plan.
    pub persistent: bool,
}
