//! The runtime's errors, each with the HTTP status the REST API answers.

/// Why a worker operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    /// 404: no such connector, task or plugin.
    #[error("{0}")]
    NotFound(String),
    /// 409: the connector exists already, or a conflicting change.
    #[error("{0}")]
    Conflict(String),
    /// 400: a bad request or an invalid configuration.
    #[error("{0}")]
    BadRequest(String),
    /// 500: the cluster failed (a write, a read).
    #[error("{0}")]
    Store(String),
}

impl WorkerError {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            WorkerError::NotFound(_) => 404,
            WorkerError::Conflict(_) => 409,
            WorkerError::BadRequest(_) => 400,
            WorkerError::Store(_) => 500,
        }
    }

    /// Kafka's message for a connector that does not exist.
    pub fn no_connector(name: &str) -> WorkerError {
        WorkerError::NotFound(format!("Connector {name} not found"))
    }
}

impl From<runnel_cluster::BackendError> for WorkerError {
    fn from(e: runnel_cluster::BackendError) -> Self {
        WorkerError::Store(e.to_string())
    }
}
