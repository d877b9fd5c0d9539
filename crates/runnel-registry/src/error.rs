//! The registry's errors, each with the HTTP status and `error_code` the
//! Confluent API answers it with.

/// Why a registry operation failed. [`RegistryError::status`] and
/// [`RegistryError::code`] are what the REST API sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// 40401.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// 40402.
    #[error("Version {0} not found.")]
    VersionNotFound(i32),
    /// 40403, for a lookup by schema.
    #[error("Schema not found")]
    SchemaNotFound,
    /// 40403, for a lookup by id.
    #[error("Schema {0} not found")]
    SchemaIdNotFound(i32),
    /// 40403, for an id that is not a number a schema could have.
    #[error("Schema {0} not found")]
    NoSuchId(String),
    /// 40404: a soft delete of a subject already soft-deleted.
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// 40405: a permanent delete of a subject with live versions.
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// 40406: a soft delete of a version already soft-deleted.
    #[error(
        "Subject '{0}' Version {1} was soft deleted. Set permanent=true to delete permanently"
    )]
    VersionSoftDeleted(String, i32),
    /// 40407: a permanent delete of a live version.
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, i32),
    /// 40408.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound(String),
    /// 40409.
    #[error("Subject '{0}' does not have subject-level mode configured")]
    SubjectModeNotFound(String),
    /// 40901, with the reasons.
    #[error("{0}")]
    Incompatible(String),
    /// 42201, with the parser's message.
    #[error("{0}")]
    InvalidSchema(String),
    /// 42202.
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    /// 42203.
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibility,
    /// 42204.
    #[error("Invalid mode. Valid values are READWRITE, READONLY, READONLY_OVERRIDE and IMPORT.")]
    InvalidMode,
    /// 42205: the mode forbids it, an imported id is taken…
    #[error("{0}")]
    NotPermitted(String),
    /// 42206: a schema still referenced by others cannot be deleted.
    #[error("One or more references exist to the schema {{subject={0},version={1}}}.")]
    ReferenceExists(String, i32),
    /// 400: a body that is not the JSON the route takes.
    #[error("{0}")]
    BadRequest(String),
    /// 50001: the `_schemas` topic cannot be read or written.
    #[error("Error in the backend data store: {0}")]
    Store(String),
    /// 50002: a write was not read back in time.
    #[error("Write to the backend data store timed out: {0}")]
    Timeout(String),
}

impl RegistryError {
    /// The HTTP status of the response.
    pub fn status(&self) -> u16 {
        match self {
            RegistryError::SubjectNotFound(_)
            | RegistryError::VersionNotFound(_)
            | RegistryError::SchemaNotFound
            | RegistryError::SchemaIdNotFound(_)
            | RegistryError::NoSuchId(_)
            | RegistryError::SubjectSoftDeleted(_)
            | RegistryError::SubjectNotSoftDeleted(_)
            | RegistryError::VersionSoftDeleted(..)
            | RegistryError::VersionNotSoftDeleted(..)
            | RegistryError::SubjectConfigNotFound(_)
            | RegistryError::SubjectModeNotFound(_) => 404,
            RegistryError::Incompatible(_) => 409,
            RegistryError::InvalidSchema(_)
            | RegistryError::InvalidVersion(_)
            | RegistryError::InvalidCompatibility
            | RegistryError::InvalidMode
            | RegistryError::NotPermitted(_)
            | RegistryError::ReferenceExists(..) => 422,
            RegistryError::BadRequest(_) => 400,
            RegistryError::Store(_) | RegistryError::Timeout(_) => 500,
        }
    }

    /// The `error_code` of the body.
    pub fn code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound(_) => 40402,
            RegistryError::SchemaNotFound
            | RegistryError::SchemaIdNotFound(_)
            | RegistryError::NoSuchId(_) => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::VersionSoftDeleted(..) => 40406,
            RegistryError::VersionNotSoftDeleted(..) => 40407,
            RegistryError::SubjectConfigNotFound(_) => 40408,
            RegistryError::SubjectModeNotFound(_) => 40409,
            RegistryError::Incompatible(_) => 40901,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::InvalidCompatibility => 42203,
            RegistryError::InvalidMode => 42204,
            RegistryError::NotPermitted(_) => 42205,
            RegistryError::ReferenceExists(..) => 42206,
            RegistryError::BadRequest(_) => 400,
            RegistryError::Store(_) => 50001,
            RegistryError::Timeout(_) => 50002,
        }
    }
}
