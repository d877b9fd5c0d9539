//! Runnel's built-in PostgreSQL connectors: the CDC source (Debezium's `PostgresConnector`, pgoutput logical replication) and the JDBC-style sink (Confluent's `JdbcSinkConnector`), written against `runnel-connect-api` alone.
//!
//! [`plugins`] gives both to the connector runtime. The source
//! ([`source`]) snapshots tables consistently with its replication slot,
//! then streams inserts, updates and deletes as Debezium change events,
//! with offsets that resume exactly where the log left off. The sink
//! ([`sink`]) writes records into tables: insert, upsert or update, deletes
//! on tombstones, creating and evolving tables.
//!
//! Tasks are blocking (as the API wants): each keeps a current-thread tokio
//! runtime for its PostgreSQL connections.

pub mod conn;
pub mod error;
pub mod lsn;
pub mod meta;
pub mod pgoutput;
pub mod replication;
pub mod sink;

pub mod source;
pub mod types;

use runnel_connect_api::ConnectorPlugin;
use std::sync::Arc;

pub use error::Error;

pub use sink::{JdbcSinkConnector, JdbcSinkTask};
pub use source::{PostgresConnector, PostgresSourceTask};

/// Both connectors, for the runtime's plugin list.
pub fn plugins() -> Vec<Arc<dyn ConnectorPlugin>> {
    vec![
        Arc::new(PostgresConnector::new()),
        Arc::new(JdbcSinkConnector::new()),
    ]
}
