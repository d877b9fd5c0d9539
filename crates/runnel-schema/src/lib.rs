//! Schemas as the registry and the formats know them: Avro, Protobuf and JSON Schema parsed with their references, their canonical forms, and Confluent's compatibility rules between versions.
//!
//! The schema registry stores schema text and answers "is this new
//! version compatible with those before it?"; the formats of the SQL
//! engine and the stream library turn records into values through a
//! parsed schema. Both start here, and this crate knows neither: no HTTP,
//! no topics, no rows.
//!
//! - [`ParsedSchema::parse`] checks a schema of a [`SchemaType`] against
//!   the references it names (already resolved to their text by the
//!   caller) and keeps its canonical form, the form the registry compares
//!   when it looks a schema up.
//! - [`check_backward`] says whether a new schema can read what an older
//!   one wrote, as a list of [`Incompatibility`]s (empty when it can). The
//!   levels of the registry (BACKWARD, FORWARD, FULL and their transitive
//!   forms) are built from it by the caller: FORWARD is
//!   `check_backward(previous, new)`, FULL both.

use std::fmt;
use std::str::FromStr;

mod avro;
mod json;
mod json_compat;
#[cfg(test)]
mod proptests;
mod protobuf;
mod protobuf_builtin;
mod protobuf_compat;

/// The kinds of schema the registry knows, named as in its API
/// (`schemaType`; AVRO when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum SchemaType {
    #[default]
    Avro,
    Protobuf,
    Json,
}

impl SchemaType {
    /// Every type, in the order `/schemas/types` lists them.
    pub const ALL: [SchemaType; 3] = [SchemaType::Json, SchemaType::Protobuf, SchemaType::Avro];

    /// The name in the registry's API.
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Protobuf => "PROTOBUF",
            SchemaType::Json => "JSON",
        }
    }
}

impl fmt::Display for SchemaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchemaType {
    type Err = SchemaError;

    /// Case-insensitive, as the registry accepts it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SchemaType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| SchemaError::UnknownType(s.to_string()))
    }
}

/// A schema another one names (`references` of a registration): the name
/// it is imported under (an Avro full name, a `.proto` import path, a
/// JSON Schema `$ref` URL), resolved by the caller to that schema's text
/// and, recursively, its own references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub name: String,
    pub schema_type: SchemaType,
    pub schema: String,
    pub references: Vec<Resolved>,
}

/// Why a schema cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The text is not a valid schema of its type; `message` is the
    /// parser's, with the position when the parser gives one.
    #[error("{message}")]
    Invalid {
        message: String,
        line: Option<u32>,
        column: Option<u32>,
    },
    /// A reference the schema needs was not given.
    #[error("reference {0} was not given")]
    MissingReference(String),
    /// A `schemaType` the registry does not know.
    #[error("unknown schema type {0}")]
    UnknownType(String),
}

impl SchemaError {
    fn invalid(message: impl Into<String>) -> Self {
        SchemaError::Invalid {
            message: message.into(),
            line: None,
            column: None,
        }
    }
}

/// One reason a new schema cannot read what an older one wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// A stable name of the rule broken, in Confluent's words where it has
    /// one (`READER_FIELD_MISSING_DEFAULT_VALUE`, `FIELD_KIND_CHANGED`…).
    pub kind: String,
    /// Where in the schema (a JSON pointer into the new schema for Avro and
    /// JSON Schema, a message/field path for Protobuf).
    pub path: String,
    /// What a developer can act on, in words.
    pub message: String,
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{errorType:'{}', path:'{}', description:'{}'}}",
            self.kind, self.path, self.message
        )
    }
}

/// A schema checked against its type's rules and its references.
#[derive(Debug, Clone)]
pub struct ParsedSchema {
    kind: Kind,
    text: String,
    canonical: String,
    references: Vec<Resolved>,
}

#[derive(Debug, Clone)]
enum Kind {
    Avro(Box<avro::Avro>),
    Protobuf(Box<protobuf::Protobuf>),
    Json(Box<json::Json>),
}

impl ParsedSchema {
    /// Parses `text` as a schema of `schema_type`, with the schemas it
    /// references.
    pub fn parse(
        schema_type: SchemaType,
        text: &str,
        references: &[Resolved],
    ) -> Result<ParsedSchema, SchemaError> {
        let (kind, canonical) = match schema_type {
            SchemaType::Avro => {
                let a = avro::Avro::parse(text, references)?;
                let canonical = a.canonical();
                (Kind::Avro(Box::new(a)), canonical)
            }
            SchemaType::Protobuf => {
                let p = protobuf::Protobuf::parse(text, references)?;
                let canonical = p.canonical();
                (Kind::Protobuf(Box::new(p)), canonical)
            }
            SchemaType::Json => {
                let j = json::Json::parse(text, references)?;
                let canonical = j.canonical();
                (Kind::Json(Box::new(j)), canonical)
            }
        };
        Ok(ParsedSchema {
            kind,
            text: text.to_string(),
            canonical,
            references: references.to_vec(),
        })
    }

    pub fn schema_type(&self) -> SchemaType {
        match self.kind {
            Kind::Avro(_) => SchemaType::Avro,
            Kind::Protobuf(_) => SchemaType::Protobuf,
            Kind::Json(_) => SchemaType::Json,
        }
    }

    /// The text as registered.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The form two registrations of one schema share (whitespace and,
    /// for Avro, attribute order aside): what the registry compares when
    /// it looks a schema up under a subject.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The references it was parsed with.
    pub fn references(&self) -> &[Resolved] {
        &self.references
    }

    /// The normalized text the registry stores with `normalize=true`.
    pub fn normalized(&self) -> String {
        self.canonical.clone()
    }

    /// The full name of its top-level record or message (the subject
    /// name strategies RecordName and TopicRecordName use it); `None` for
    /// a schema without one (an Avro primitive, most JSON Schemas).
    /// Protobuf: the first message of the file. JSON Schema: its `title`.
    pub fn record_name(&self) -> Option<String> {
        match &self.kind {
            Kind::Avro(a) => a.record_name(),
            Kind::Protobuf(p) => p.record_name(),
            Kind::Json(j) => j.record_name(),
        }
    }

    /// The Avro schema, for the formats that encode and decode with it.
    pub fn as_avro(&self) -> Option<&apache_avro::Schema> {
        match &self.kind {
            Kind::Avro(a) => Some(a.schema()),
            _ => None,
        }
    }

    /// The first message of a Protobuf schema (the one Confluent's
    /// serializers use when the message indexes are `[0]`).
    pub fn as_protobuf(&self) -> Option<prost_reflect::MessageDescriptor> {
        match &self.kind {
            Kind::Protobuf(p) => p.first_message(),
            _ => None,
        }
    }

    /// The compiled `.proto` file of a Protobuf schema; its pool holds the
    /// imported files too.
    pub fn file_descriptor(&self) -> Option<prost_reflect::FileDescriptor> {
        match &self.kind {
            Kind::Protobuf(p) => Some(p.file().clone()),
            _ => None,
        }
    }

    /// The message that Confluent's Protobuf wire format names by its
    /// message indexes: the index of a top-level message in the file, then
    /// of a message nested in it, and so on (map entries are not counted).
    /// Empty names the first message. `None` when there is no such message
    /// or this is not a Protobuf schema.
    pub fn message_by_indexes(&self, indexes: &[i32]) -> Option<prost_reflect::MessageDescriptor> {
        match &self.kind {
            Kind::Protobuf(p) => p.message_by_indexes(indexes),
            _ => None,
        }
    }

    /// The message indexes of the message named `full_name` (declared in
    /// this file), the inverse of [`ParsedSchema::message_by_indexes`]:
    /// what a serializer writes.
    pub fn message_indexes(&self, full_name: &str) -> Option<Vec<i32>> {
        match &self.kind {
            Kind::Protobuf(p) => p.message_indexes(full_name),
            _ => None,
        }
    }

    /// A Protobuf schema as a base64-encoded `FileDescriptorProto` (what
    /// Confluent's registry answers for `format=serialized`).
    pub fn serialized(&self) -> Option<String> {
        match &self.kind {
            Kind::Protobuf(p) => Some(p.serialized()),
            _ => None,
        }
    }

    /// The schema of a JSON Schema, as parsed.
    pub fn as_json(&self) -> Option<&serde_json::Value> {
        match &self.kind {
            Kind::Json(j) => Some(j.value()),
            _ => None,
        }
    }

    /// Whether `value` is valid under a JSON Schema (its references
    /// included): the first reason it is not, with where in the value.
    /// Any value is valid for a schema of another type.
    pub fn validate(&self, value: &serde_json::Value) -> Result<(), String> {
        match &self.kind {
            Kind::Json(j) => j.validate(value),
            _ => Ok(()),
        }
    }
}

/// Whether `new` can read everything `previous` wrote (Confluent's
/// BACKWARD between two versions): the reasons it cannot, none when it
/// can. Schemas of different types are never compatible.
pub fn check_backward(new: &ParsedSchema, previous: &ParsedSchema) -> Vec<Incompatibility> {
    match (&new.kind, &previous.kind) {
        (Kind::Avro(n), Kind::Avro(p)) => avro::check_backward(n, p),
        (Kind::Protobuf(n), Kind::Protobuf(p)) => protobuf_compat::check_backward(n, p),
        (Kind::Json(n), Kind::Json(p)) => json_compat::check_backward(n, p),
        _ => vec![Incompatibility {
            kind: "TYPE_MISMATCH".into(),
            path: "#/".into(),
            message: format!(
                "the new schema is {} and the previous one {}: schemas of different types never read each other's data",
                new.schema_type(),
                previous.schema_type()
            ),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_schemas_can_be_shared_between_threads() {
        fn shared<T: Send + Sync + 'static>() {}
        shared::<ParsedSchema>();
        shared::<Incompatibility>();
        shared::<SchemaError>();
    }

    #[test]
    fn schema_types_never_read_each_other() {
        let avro = ParsedSchema::parse(SchemaType::Avro, "\"string\"", &[]).unwrap();
        let json = ParsedSchema::parse(SchemaType::Json, r#"{"type":"string"}"#, &[]).unwrap();
        let proto = ParsedSchema::parse(
            SchemaType::Protobuf,
            "syntax = \"proto3\"; message M {}",
            &[],
        )
        .unwrap();
        for (a, b) in [(&avro, &json), (&json, &proto), (&proto, &avro)] {
            let found = check_backward(a, b);
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].kind, "TYPE_MISMATCH");
            assert!(found[0].message.contains(a.schema_type().name()));
        }
    }

    #[test]
    fn accessors_answer_for_their_own_type_only() {
        let avro = ParsedSchema::parse(SchemaType::Avro, "\"string\"", &[]).unwrap();
        assert!(avro.as_json().is_none());
        assert!(avro.as_protobuf().is_none());
        assert!(avro.file_descriptor().is_none());
        assert!(avro.message_by_indexes(&[0]).is_none());
        assert!(avro.validate(&serde_json::json!(1)).is_ok());
        assert_eq!(avro.normalized(), avro.canonical());
        assert_eq!(avro.text(), "\"string\"");
    }
}
