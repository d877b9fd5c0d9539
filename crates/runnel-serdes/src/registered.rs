//! The writer schema of a serde: registered once, its id remembered.

use std::sync::{Arc, OnceLock};

use runnel_registry_client::{wire, RegistryClient};
use runnel_schema::{ParsedSchema, SchemaType};
use runnel_streams::serdes::SerdeError;

/// How a serde finds the id it writes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// Register the serde's schema under its subject on first use.
    Auto,
    /// Write with the latest version of the subject.
    UseLatest,
    /// Write with this schema id.
    Id(i32),
}

/// A subject and the schema written under it.
pub(crate) struct Writer {
    pub client: RegistryClient,
    pub subject: String,
    pub schema_type: SchemaType,
    pub text: String,
    pub registration: Registration,
    /// The id and the schema it names, once known.
    resolved: OnceLock<(i32, Arc<ParsedSchema>)>,
}

impl Writer {
    pub fn new(
        client: RegistryClient,
        subject: impl Into<String>,
        schema_type: SchemaType,
        text: impl Into<String>,
        registration: Registration,
    ) -> Writer {
        Writer {
            client,
            subject: subject.into(),
            schema_type,
            text: text.into(),
            registration,
            resolved: OnceLock::new(),
        }
    }

    /// The id to write with and its schema (asked of the registry once).
    pub fn resolve(&self) -> Result<&(i32, Arc<ParsedSchema>), SerdeError> {
        if let Some(r) = self.resolved.get() {
            return Ok(r);
        }
        let err = |e: runnel_registry_client::ClientError| {
            SerdeError(format!("schema registry, subject {}: {e}", self.subject))
        };
        let id = match &self.registration {
            Registration::Auto => self
                .client
                .register(&self.subject, self.schema_type, &self.text, &[], false)
                .map_err(err)?,
            Registration::UseLatest => self.client.latest(&self.subject).map_err(err)?.id,
            Registration::Id(id) => *id,
        };
        let schema = self.client.schema_by_id(id).map_err(err)?;
        if schema.schema_type() != self.schema_type {
            return Err(SerdeError(format!(
                "schema {id} of subject {} is {}, not {}",
                self.subject,
                schema.schema_type().name(),
                self.schema_type.name()
            )));
        }
        Ok(self.resolved.get_or_init(|| (id, schema)))
    }

    /// A record's writer schema by the id in its header, and its payload.
    pub fn reader<'a>(
        &self,
        bytes: &'a [u8],
    ) -> Result<(i32, Arc<ParsedSchema>, &'a [u8]), SerdeError> {
        let (id, payload) = wire::split(bytes).map_err(|e| SerdeError(e.to_string()))?;
        let schema = self
            .client
            .schema_by_id(id)
            .map_err(|e| SerdeError(format!("schema registry, id {id}: {e}")))?;
        Ok((id, schema, payload))
    }
}
