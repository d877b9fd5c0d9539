//! The connectors the runtime brings along: Kafka's file source and sink
//! and a datagen source. They are written against `runnel-connect-api`
//! alone, like any other plugin.

use std::sync::Arc;

use runnel_connect_api::ConnectorPlugin;

pub mod datagen;
pub mod file;

/// Every built-in plugin.
pub fn plugins() -> Vec<Arc<dyn ConnectorPlugin>> {
    vec![
        Arc::new(file::FileSource),
        Arc::new(file::FileSink),
        Arc::new(datagen::Datagen),
    ]
}
