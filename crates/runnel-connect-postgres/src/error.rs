//! The crate's errors and how they map onto the connector API's.

use runnel_connect_api::ConnectError;

/// What can go wrong talking to PostgreSQL or decoding what it sends.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The network failed or the server went away: worth retrying.
    #[error("connection to PostgreSQL failed: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered a command with an error.
    #[error("PostgreSQL error {code}: {message}")]
    Server { code: String, message: String },
    /// The server sent something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A query through tokio-postgres failed.
    #[error("{0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A configuration value is wrong.
    #[error("Invalid value {value} for configuration {field}: {message}")]
    Config {
        field: String,
        value: String,
        message: String,
    },
    /// A value that does not convert (a column or a record field).
    #[error("cannot convert {0}")]
    Convert(String),
    /// A Connect value that does not fit its schema.
    #[error(transparent)]
    Data(#[from] runnel_connect_api::DataError),
}

impl Error {
    pub(crate) fn config(
        field: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Error {
        Error::Config {
            field: field.into(),
            value: value.into(),
            message: message.into(),
        }
    }

    /// Whether trying again later may work (a lost connection, a server
    /// shutting down, a serialization failure or deadlock).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Io(_) => true,
            Error::Server { code, .. } => retriable_sqlstate(code),
            Error::Postgres(e) => match e.code() {
                Some(code) => retriable_sqlstate(code.code()),
                // No SQLSTATE: the connection itself failed or closed.
                None => true,
            },
            _ => false,
        }
    }
}

fn retriable_sqlstate(code: &str) -> bool {
    // 08: connection exception; 40: transaction rollback (serialization,
    // deadlock); 53: insufficient resources; 57P: operator intervention
    // (admin shutdown, cannot connect now); 55006: object in use (a slot
    // still active for a stopped walsender).
    code.starts_with("08")
        || code.starts_with("40")
        || code.starts_with("53")
        || code.starts_with("57P")
        || code == "55006"
}

impl From<Error> for ConnectError {
    fn from(e: Error) -> ConnectError {
        match e {
            Error::Config {
                field,
                value,
                message,
            } => ConnectError::Config {
                field,
                value,
                message,
            },
            e if e.is_retriable() => ConnectError::Retriable(e.to_string()),
            e => ConnectError::Fatal(e.to_string()),
        }
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
