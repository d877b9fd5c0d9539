//! The records of the `_schemas` topic, in the JSON the Confluent Schema
//! Registry writes (see the crate docs for the format).

use runnel_schema::SchemaType;
use serde::{Deserialize, Serialize};

/// A schema another one names, as registered: the name it is imported
/// under, and the subject and version holding it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// The key of a `_schemas` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// One version of a subject.
    Schema { subject: String, version: i32 },
    /// The compatibility config of a subject, or the global one.
    Config { subject: Option<String> },
    /// The mode of a subject, or the global one.
    Mode { subject: Option<String> },
    /// A soft delete of a subject's versions up to one.
    DeleteSubject { subject: String },
    /// Drops a subject's soft-deleted versions from memory.
    ClearSubject { subject: String },
    /// Anything else (NOOP, contexts, keys of later versions): read past.
    Other(String),
}

/// The subject Confluent's registry gives the global config and mode
/// when it qualifies them with a context; read as global.
const GLOBAL_CONTEXT_SUBJECT: &str = ":.__GLOBAL:";

#[derive(Serialize, Deserialize)]
struct RawKey {
    keytype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<i32>,
    #[serde(default)]
    magic: i32,
}

impl Key {
    /// The record key: Confluent's JSON, fields in its order.
    pub fn encode(&self) -> Vec<u8> {
        let raw = match self {
            Key::Schema { subject, version } => RawKey {
                keytype: "SCHEMA".into(),
                subject: Some(subject.clone()),
                version: Some(*version),
                magic: 1,
            },
            Key::Config { subject } => RawKey {
                keytype: "CONFIG".into(),
                subject: subject.clone(),
                version: None,
                magic: 0,
            },
            Key::Mode { subject } => RawKey {
                keytype: "MODE".into(),
                subject: subject.clone(),
                version: None,
                magic: 0,
            },
            Key::DeleteSubject { subject } => RawKey {
                keytype: "DELETE_SUBJECT".into(),
                subject: Some(subject.clone()),
                version: None,
                magic: 0,
            },
            Key::ClearSubject { subject } => RawKey {
                keytype: "CLEAR_SUBJECT".into(),
                subject: Some(subject.clone()),
                version: None,
                magic: 0,
            },
            Key::Other(keytype) => RawKey {
                keytype: keytype.clone(),
                subject: None,
                version: None,
                magic: 0,
            },
        };
        // A struct of strings and integers always serializes.
        serde_json::to_vec(&raw).unwrap_or_default()
    }

    /// A record key back; `None` for bytes that are not a registry key.
    pub fn decode(bytes: &[u8]) -> Option<Key> {
        let raw: RawKey = serde_json::from_slice(bytes).ok()?;
        let global = |s: Option<String>| s.filter(|s| !s.is_empty() && s != GLOBAL_CONTEXT_SUBJECT);
        Some(match raw.keytype.as_str() {
            "SCHEMA" => Key::Schema {
                subject: raw.subject?,
                version: raw.version?,
            },
            "CONFIG" => Key::Config {
                subject: global(raw.subject),
            },
            "MODE" => Key::Mode {
                subject: global(raw.subject),
            },
            "DELETE_SUBJECT" => Key::DeleteSubject {
                subject: raw.subject?,
            },
            "CLEAR_SUBJECT" => Key::ClearSubject {
                subject: raw.subject?,
            },
            other => Key::Other(other.to_string()),
        })
    }
}

/// The value of a SCHEMA record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaValue {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    /// Absent in records of registries before schema types: AVRO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    pub schema: String,
    #[serde(default)]
    pub deleted: bool,
}

impl SchemaValue {
    /// Its type; `None` for a type this registry does not know.
    pub fn schema_type(&self) -> Option<SchemaType> {
        match &self.schema_type {
            None => Some(SchemaType::Avro),
            Some(t) => t.parse().ok(),
        }
    }
}

/// The value of a CONFIG record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
}

/// The value of a MODE record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub mode: String,
}

/// The value of a DELETE_SUBJECT record: every version up to `version`
/// is soft-deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteSubjectValue {
    pub subject: String,
    pub version: i32,
}

/// The value of a CLEAR_SUBJECT record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearSubjectValue {
    pub subject: String,
}

/// A record value; `None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Schema(SchemaValue),
    Config(ConfigValue),
    Mode(ModeValue),
    DeleteSubject(DeleteSubjectValue),
    ClearSubject(ClearSubjectValue),
}

impl Value {
    pub fn encode(&self) -> Vec<u8> {
        let r = match self {
            Value::Schema(v) => serde_json::to_vec(v),
            Value::Config(v) => serde_json::to_vec(v),
            Value::Mode(v) => serde_json::to_vec(v),
            Value::DeleteSubject(v) => serde_json::to_vec(v),
            Value::ClearSubject(v) => serde_json::to_vec(v),
        };
        // Structs of strings, integers and booleans always serialize.
        r.unwrap_or_default()
    }

    /// The value of a record with `key`; an error for bytes that are not
    /// that key's value.
    pub fn decode(key: &Key, bytes: &[u8]) -> Result<Option<Value>, serde_json::Error> {
        Ok(Some(match key {
            Key::Schema { .. } => Value::Schema(serde_json::from_slice(bytes)?),
            Key::Config { .. } => Value::Config(serde_json::from_slice(bytes)?),
            Key::Mode { .. } => Value::Mode(serde_json::from_slice(bytes)?),
            Key::DeleteSubject { .. } => Value::DeleteSubject(serde_json::from_slice(bytes)?),
            Key::ClearSubject { .. } => Value::ClearSubject(serde_json::from_slice(bytes)?),
            Key::Other(_) => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_confluents_json_in_its_field_order() {
        let k = Key::Schema {
            subject: "orders-value".into(),
            version: 3,
        };
        assert_eq!(
            String::from_utf8(k.encode()).unwrap(),
            r#"{"keytype":"SCHEMA","subject":"orders-value","version":3,"magic":1}"#
        );
        assert_eq!(
            String::from_utf8(Key::Config { subject: None }.encode()).unwrap(),
            r#"{"keytype":"CONFIG","magic":0}"#
        );
        assert_eq!(
            String::from_utf8(
                Key::Mode {
                    subject: Some("s".into())
                }
                .encode()
            )
            .unwrap(),
            r#"{"keytype":"MODE","subject":"s","magic":0}"#
        );
        assert_eq!(
            String::from_utf8(
                Key::DeleteSubject {
                    subject: "s".into()
                }
                .encode()
            )
            .unwrap(),
            r#"{"keytype":"DELETE_SUBJECT","subject":"s","magic":0}"#
        );
        for k in [
            k,
            Key::Config { subject: None },
            Key::Config {
                subject: Some("x".into()),
            },
            Key::ClearSubject {
                subject: "c".into(),
            },
        ] {
            assert_eq!(Key::decode(&k.encode()), Some(k));
        }
    }

    #[test]
    fn keys_written_by_confluent_read_back() {
        assert_eq!(
            Key::decode(br#"{"magic":1,"keytype":"SCHEMA","subject":"t-value","version":1}"#),
            Some(Key::Schema {
                subject: "t-value".into(),
                version: 1
            })
        );
        assert_eq!(
            Key::decode(br#"{"keytype":"NOOP","magic":0}"#),
            Some(Key::Other("NOOP".into()))
        );
        assert_eq!(
            Key::decode(br#"{"keytype":"CONFIG","subject":":.__GLOBAL:","magic":0}"#),
            Some(Key::Config { subject: None })
        );
        assert_eq!(Key::decode(b"garbage"), None);
        assert_eq!(Key::decode(br#"{"keytype":"SCHEMA","magic":1}"#), None);
    }

    #[test]
    fn schema_values_are_confluents_json() {
        let v = SchemaValue {
            subject: "s".into(),
            version: 1,
            id: 7,
            schema_type: Some("AVRO".into()),
            references: vec![],
            schema: "\"string\"".into(),
            deleted: false,
        };
        assert_eq!(
            String::from_utf8(Value::Schema(v.clone()).encode()).unwrap(),
            r#"{"subject":"s","version":1,"id":7,"schemaType":"AVRO","schema":"\"string\"","deleted":false}"#
        );
        // A record of an older registry: no type, no references, no deleted.
        let old = br#"{"subject":"s","version":1,"id":7,"schema":"\"string\""}"#;
        let key = Key::Schema {
            subject: "s".into(),
            version: 1,
        };
        let Some(Value::Schema(read)) = Value::decode(&key, old).unwrap() else {
            panic!("not a schema value")
        };
        assert_eq!(read.schema_type(), Some(SchemaType::Avro));
        assert!(!read.deleted);
        // Fields of later versions (metadata, ruleSet, md5) are read past.
        let newer = br#"{"subject":"s","version":1,"id":7,"md5":"x","schemaType":"PROTOBUF","metadata":{},"schema":"syntax = \"proto3\";","deleted":true}"#;
        let Some(Value::Schema(read)) = Value::decode(&key, newer).unwrap() else {
            panic!("not a schema value")
        };
        assert_eq!(read.schema_type(), Some(SchemaType::Protobuf));
        assert!(read.deleted);
        assert!(Value::decode(&key, b"{}").is_err());
    }
}
