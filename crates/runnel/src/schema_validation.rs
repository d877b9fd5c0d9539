//! The broker's schema registry for topics with
//! `confluent.key|value.schema.validation=true`: Confluent's REST API
//! (the built-in registry or `--schema-registry-url`), with answers that
//! cannot change cached.

use std::collections::HashSet;
use std::sync::Mutex;

use runnel_broker::schema_check::SchemaValidator;
use runnel_registry_client::RegistryClient;

/// Asks a Confluent-compatible registry.
pub struct RegistryValidator {
    client: RegistryClient,
    /// (subject, id) pairs seen registered: a registration is never
    /// undone under the same id (a later one is looked up again).
    registered: Mutex<HashSet<(String, i32)>>,
}

impl RegistryValidator {
    pub fn new(url: &str) -> RegistryValidator {
        RegistryValidator {
            client: RegistryClient::new(url),
            registered: Mutex::new(HashSet::new()),
        }
    }
}

impl SchemaValidator for RegistryValidator {
    fn is_registered(&self, subject: &str, id: i32) -> Result<bool, String> {
        let key = (subject.to_string(), id);
        let seen = |r: &Mutex<HashSet<(String, i32)>>| {
            r.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(&key)
        };
        if seen(&self.registered) {
            return Ok(true);
        }
        let subjects = match self.client.subjects_of_id(id) {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e.to_string()),
        };
        let mut cache = self
            .registered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (s, _) in subjects {
            cache.insert((s, id));
        }
        Ok(cache.contains(&key))
    }

    fn record_name(&self, id: i32) -> Result<Option<String>, String> {
        match self.client.schema_by_id(id) {
            Ok(schema) => Ok(schema.record_name()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}
