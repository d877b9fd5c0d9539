//! Connectors and their tasks.
//!
//! A [`ConnectorPlugin`] is a kind of connector (its class name, its
//! configuration, how it splits into tasks); the runtime makes one
//! [`SourceTask`] or [`SinkTask`] per task config it returns and runs each
//! on a thread of its own.
//!
//! Delivery: a source task's records are written to the log, then their
//! offsets are stored (under exactly-once, records and offsets commit in one
//! transaction), then [`SourceTask::commit`] tells the task which offsets
//! are now safe — the moment a CDC source may confirm its LSN to the
//! database. A sink task is given records with [`SinkTask::put`]; after
//! [`SinkTask::flush`] returns, the runtime commits the consumer offsets of
//! everything put so far, so a task must be idempotent for records put again
//! after a crash.

use crate::config::{Config, ConfigDef, ConfigValue};
use crate::record::{SinkRecord, SourceOffset, SourcePartition, SourceRecord};

/// Source or sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectorKind {
    Source,
    Sink,
}

impl ConnectorKind {
    /// `source` or `sink`, as the REST API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorKind::Source => "source",
            ConnectorKind::Sink => "sink",
        }
    }
}

/// Why a connector or task call failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A configuration value is wrong; the REST API answers 400 naming
    /// the field.
    #[error("Invalid value {value} for configuration {field}: {message}")]
    Config {
        field: String,
        value: String,
        message: String,
    },
    /// May work when tried again (a database restarting, a lock): the
    /// runtime retries the same call with backoff.
    #[error("{0}")]
    Retriable(String),
    /// The task cannot go on: it shows FAILED with this message until it
    /// is restarted.
    #[error("{0}")]
    Fatal(String),
}

impl ConnectError {
    /// A configuration error for `field`.
    pub fn config(
        field: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> ConnectError {
        ConnectError::Config {
            field: field.into(),
            value: value.into(),
            message: message.into(),
        }
    }
}

/// Who a task is: its connector's name and its task number (for slot names,
/// logs and client ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorContext {
    pub connector: String,
    pub task: i32,
}

/// The stored offsets of a source connector (Kafka Connect's
/// `OffsetStorageReader`), as of the task's start.
pub trait OffsetReader: Send + Sync {
    /// The last stored offset of `partition`, if any.
    fn offset(&self, partition: &SourcePartition) -> Option<SourceOffset>;
}

/// A kind of connector.
pub trait ConnectorPlugin: Send + Sync {
    /// The class name users write in `connector.class`
    /// (`io.debezium.connector.postgresql.PostgresConnector`).
    fn class(&self) -> &str;
    /// Other names accepted for `connector.class` (the simple class name,
    /// Kafka Connect's short aliases).
    fn aliases(&self) -> Vec<String> {
        Vec::new()
    }
    fn kind(&self) -> ConnectorKind;
    fn version(&self) -> &str;
    /// The connector's own configuration keys (the runtime adds its common
    /// ones: `name`, `connector.class`, `tasks.max`, converters, transforms,
    /// errors).
    fn config_def(&self) -> ConfigDef;
    /// Validates a configuration: one entry per key of [`Self::config_def`]
    /// with its errors. The default checks types, required keys and
    /// validators; a connector adds cross-field checks (a table list that
    /// must name tables, a database it must reach).
    fn validate(&self, config: &Config) -> Vec<ConfigValue> {
        self.config_def().validate(config)
    }
    /// Splits the work into at most `max_tasks` task configurations (each
    /// is the connector's config plus what the task needs).
    fn task_configs(&self, config: &Config, max_tasks: usize) -> Result<Vec<Config>, ConnectError>;
    /// A new, unstarted source task (source connectors).
    fn source_task(&self) -> Result<Box<dyn SourceTask>, ConnectError> {
        Err(ConnectError::Fatal(format!(
            "{} is not a source connector",
            self.class()
        )))
    }
    /// A new, unstarted sink task (sink connectors).
    fn sink_task(&self) -> Result<Box<dyn SinkTask>, ConnectError> {
        Err(ConnectError::Fatal(format!(
            "{} is not a sink connector",
            self.class()
        )))
    }
}

/// A task reading from outside into the log.
pub trait SourceTask: Send {
    /// Starts with the task's config; `offsets` gives the stored offsets to
    /// resume from.
    fn start(
        &mut self,
        config: &Config,
        context: &ConnectorContext,
        offsets: &dyn OffsetReader,
    ) -> Result<(), ConnectError>;
    /// Returns the next records, waiting at most about a second when there
    /// are none (an empty vector is fine). Under exactly-once the records of
    /// one call are written in one transaction with their offsets.
    fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError>;
    /// Every record returned by `poll` so far is durable in the log and
    /// these are the offsets now stored, the last one per source partition.
    fn commit(&mut self, _offsets: &[(SourcePartition, SourceOffset)]) -> Result<(), ConnectError> {
        Ok(())
    }
    /// Stops; called once, also after a failure.
    fn stop(&mut self);
}

/// A task writing records of the log to the outside.
pub trait SinkTask: Send {
    fn start(&mut self, config: &Config, context: &ConnectorContext) -> Result<(), ConnectError>;
    /// Writes (or buffers) records, in offset order per partition. A
    /// `Retriable` error makes the runtime put the same records again after
    /// a backoff.
    fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError>;
    /// Makes everything put so far durable outside; the runtime commits the
    /// consumer offsets after this returns.
    fn flush(&mut self) -> Result<(), ConnectError>;
    /// Stops; called once, also after a failure.
    fn stop(&mut self);
}
