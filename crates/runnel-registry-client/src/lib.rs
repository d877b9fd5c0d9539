//! A blocking client of the Confluent Schema Registry API, with caching, subject name strategies and the schema wire format.
//!
//! [`RegistryClient`] speaks the REST API of any Confluent-compatible
//! registry (Runnel's own, Confluent's, Karapace): schemas by id with
//! their references resolved and parsed by `runnel-schema`, registration
//! under a subject, the latest version of a subject, and look-ups. Schemas
//! by id are cached forever (an id never names another schema);
//! registrations by subject and text too (the registry answers the same
//! id again); the latest version of a subject only for
//! [`ClientConfig::latest_ttl`]. [`SubjectNameStrategy`] names subjects as
//! Confluent's serializers do, [`wire`] is their record framing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use runnel_schema::{ParsedSchema, Resolved, SchemaError, SchemaType};
use serde_json::{json, Value as Json};

pub mod json;
pub mod wire;

/// Why a registry call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The registry answered with an error (`error_code` as it sent it:
    /// 40401 subject not found, 40403 schema not found, 409 incompatible,
    /// 42201 invalid schema…).
    #[error("schema registry error {error_code} (HTTP {status}): {message}")]
    Registry {
        status: u16,
        error_code: i64,
        message: String,
    },
    /// The registry could not be reached.
    #[error("cannot reach the schema registry at {url}: {message}")]
    Transport { url: String, message: String },
    /// An answer that is not what the API says.
    #[error("unexpected answer from the schema registry: {0}")]
    BadResponse(String),
    /// A schema the registry gave that does not parse.
    #[error("schema {id} from the registry does not parse: {source}")]
    Schema { id: i32, source: SchemaError },
    /// A subject name strategy that needs a record name, for a schema
    /// without one.
    #[error("subject name strategy {0:?} needs a schema with a record name")]
    NoRecordName(SubjectNameStrategy),
}

impl ClientError {
    /// The registry's `error_code`, if it answered with one.
    pub fn error_code(&self) -> Option<i64> {
        match self {
            ClientError::Registry { error_code, .. } => Some(*error_code),
            _ => None,
        }
    }

    /// Whether the registry said the subject, version or schema does not
    /// exist (404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Registry { status: 404, .. })
    }
}

/// How subjects are named from a topic and a schema (Confluent's
/// `key.subject.name.strategy` / `value.subject.name.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` / `<topic>-value` (the default).
    #[default]
    TopicName,
    /// The record's full name.
    RecordName,
    /// `<topic>-<record full name>`.
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// The subject of a key (`is_key`) or value of `topic` whose schema's
    /// top-level record is `record_name`.
    pub fn subject(
        self,
        topic: &str,
        is_key: bool,
        record_name: Option<&str>,
    ) -> Result<String, ClientError> {
        match (self, record_name) {
            (SubjectNameStrategy::TopicName, _) => {
                Ok(format!("{topic}-{}", if is_key { "key" } else { "value" }))
            }
            (SubjectNameStrategy::RecordName, Some(r)) => Ok(r.to_string()),
            (SubjectNameStrategy::TopicRecordName, Some(r)) => Ok(format!("{topic}-{r}")),
            (s, None) => Err(ClientError::NoRecordName(s)),
        }
    }

    /// By Confluent's class name or the short name (`TopicNameStrategy`,
    /// `io.confluent.kafka.serializers.subject.RecordNameStrategy`, …).
    pub fn parse(name: &str) -> Option<SubjectNameStrategy> {
        let short = name.rsplit('.').next().unwrap_or(name);
        match short.trim_end_matches("Strategy") {
            "TopicName" => Some(SubjectNameStrategy::TopicName),
            "RecordName" => Some(SubjectNameStrategy::RecordName),
            "TopicRecordName" => Some(SubjectNameStrategy::TopicRecordName),
            _ => None,
        }
    }
}

/// A reference of a registration: the name it is imported under and the
/// subject version holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// One version of a subject, parsed.
#[derive(Debug, Clone)]
pub struct SubjectSchema {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    pub schema: Arc<ParsedSchema>,
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How long the latest version of a subject is remembered.
    pub latest_ttl: Duration,
    /// Connect and read timeout of each request.
    pub timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            latest_ttl: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Default)]
struct Cache {
    by_id: HashMap<i32, Arc<ParsedSchema>>,
    registered: HashMap<(String, SchemaType, String, bool), i32>,
    latest: HashMap<String, (Instant, SubjectSchema)>,
}

/// A blocking client of one registry (cheap to clone: clones share the
/// connection pool and the caches).
#[derive(Clone)]
pub struct RegistryClient {
    base: String,
    agent: ureq::Agent,
    config: ClientConfig,
    cache: Arc<Mutex<Cache>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("url", &self.base)
            .finish_non_exhaustive()
    }
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Percent-encodes a path segment (subjects may hold any character).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl RegistryClient {
    /// A client of the registry at `url` (`http://host:port`; the first
    /// of a comma-separated list).
    pub fn new(url: &str) -> RegistryClient {
        RegistryClient::with_config(url, ClientConfig::default())
    }

    pub fn with_config(url: &str, config: ClientConfig) -> RegistryClient {
        let base = url
            .split(',')
            .next()
            .unwrap_or(url)
            .trim()
            .trim_end_matches('/')
            .to_string();
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(config.timeout)
            .timeout(config.timeout)
            .build();
        RegistryClient {
            base,
            agent,
            config,
            cache: Arc::new(Mutex::new(Cache::default())),
        }
    }

    /// The registry's address.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn call(&self, method: &str, path: &str, body: Option<&Json>) -> Result<Json, ClientError> {
        let url = format!("{}{path}", self.base);
        let req = self
            .agent
            .request(method, &url)
            .set("Accept", CONTENT_TYPE)
            .set("Content-Type", CONTENT_TYPE);
        let result = match body {
            Some(b) => req.send_string(&b.to_string()),
            None => req.call(),
        };
        match result {
            Ok(resp) => resp
                .into_json::<Json>()
                .map_err(|e| ClientError::BadResponse(format!("{method} {path}: {e}"))),
            Err(ureq::Error::Status(status, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                let body: Json = serde_json::from_str(&text).unwrap_or(Json::Null);
                Err(ClientError::Registry {
                    status,
                    error_code: body["error_code"].as_i64().unwrap_or(i64::from(status)),
                    message: body["message"]
                        .as_str()
                        .map_or(text.clone(), str::to_string),
                })
            }
            Err(e) => Err(ClientError::Transport {
                url: self.base.clone(),
                message: e.to_string(),
            }),
        }
    }

    fn schema_type(body: &Json) -> Result<SchemaType, ClientError> {
        match body["schemaType"].as_str() {
            None => Ok(SchemaType::Avro),
            Some(t) => t
                .parse()
                .map_err(|e: SchemaError| ClientError::BadResponse(e.to_string())),
        }
    }

    fn references(body: &Json) -> Result<Vec<Reference>, ClientError> {
        body["references"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                Ok(Reference {
                    name: r["name"]
                        .as_str()
                        .ok_or_else(|| ClientError::BadResponse(format!("reference {r}")))?
                        .to_string(),
                    subject: r["subject"]
                        .as_str()
                        .ok_or_else(|| ClientError::BadResponse(format!("reference {r}")))?
                        .to_string(),
                    version: r["version"]
                        .as_i64()
                        .and_then(|v| i32::try_from(v).ok())
                        .ok_or_else(|| ClientError::BadResponse(format!("reference {r}")))?,
                })
            })
            .collect()
    }

    /// The references of a schema, resolved to their text, recursively
    /// (`depth` guards against cycles).
    fn resolve(&self, refs: &[Reference], depth: usize) -> Result<Vec<Resolved>, ClientError> {
        if depth > 32 {
            return Err(ClientError::BadResponse(
                "schema references nest deeper than 32".to_string(),
            ));
        }
        refs.iter()
            .map(|r| {
                let body = self.call(
                    "GET",
                    &format!("/subjects/{}/versions/{}", segment(&r.subject), r.version),
                    None,
                )?;
                Ok(Resolved {
                    name: r.name.clone(),
                    schema_type: Self::schema_type(&body)?,
                    schema: Self::text(&body)?,
                    references: self.resolve(&Self::references(&body)?, depth + 1)?,
                })
            })
            .collect()
    }

    fn text(body: &Json) -> Result<String, ClientError> {
        body["schema"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ClientError::BadResponse(format!("no schema in {body}")))
    }

    fn parse(&self, id: i32, body: &Json) -> Result<Arc<ParsedSchema>, ClientError> {
        let refs = self.resolve(&Self::references(body)?, 0)?;
        let parsed = ParsedSchema::parse(Self::schema_type(body)?, &Self::text(body)?, &refs)
            .map_err(|source| ClientError::Schema { id, source })?;
        Ok(Arc::new(parsed))
    }

    /// The schema with this id, its references resolved (cached forever).
    pub fn schema_by_id(&self, id: i32) -> Result<Arc<ParsedSchema>, ClientError> {
        if let Some(s) = self.cache().by_id.get(&id) {
            return Ok(s.clone());
        }
        let body = self.call("GET", &format!("/schemas/ids/{id}"), None)?;
        let parsed = self.parse(id, &body)?;
        self.cache().by_id.insert(id, parsed.clone());
        Ok(parsed)
    }

    fn subject_schema(&self, body: &Json) -> Result<SubjectSchema, ClientError> {
        let int = |k: &str| {
            body[k]
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| ClientError::BadResponse(format!("no {k} in {body}")))
        };
        let id = int("id")?;
        let schema = self.cache().by_id.get(&id).cloned();
        let schema = match schema {
            Some(s) => s,
            None => {
                let parsed = self.parse(id, body)?;
                self.cache().by_id.insert(id, parsed.clone());
                parsed
            }
        };
        Ok(SubjectSchema {
            subject: body["subject"].as_str().unwrap_or_default().to_string(),
            version: int("version")?,
            id,
            schema,
        })
    }

    /// The latest version of a subject (remembered for
    /// [`ClientConfig::latest_ttl`]).
    pub fn latest(&self, subject: &str) -> Result<SubjectSchema, ClientError> {
        if let Some((at, s)) = self.cache().latest.get(subject) {
            if at.elapsed() < self.config.latest_ttl {
                return Ok(s.clone());
            }
        }
        let body = self.call(
            "GET",
            &format!("/subjects/{}/versions/latest", segment(subject)),
            None,
        )?;
        let s = self.subject_schema(&body)?;
        self.cache()
            .latest
            .insert(subject.to_string(), (Instant::now(), s.clone()));
        Ok(s)
    }

    fn request_body(schema_type: SchemaType, text: &str, references: &[Reference]) -> Json {
        let mut body = json!({ "schema": text });
        if schema_type != SchemaType::Avro {
            body["schemaType"] = json!(schema_type.name());
        }
        if !references.is_empty() {
            body["references"] = references
                .iter()
                .map(|r| json!({"name": r.name, "subject": r.subject, "version": r.version}))
                .collect();
        }
        body
    }

    /// Registers a schema under `subject` (or finds it there) and returns
    /// its id; `normalize` asks the registry to compare normalized forms.
    pub fn register(
        &self,
        subject: &str,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
        normalize: bool,
    ) -> Result<i32, ClientError> {
        let key = (
            subject.to_string(),
            schema_type,
            text.to_string(),
            normalize,
        );
        if references.is_empty() {
            if let Some(id) = self.cache().registered.get(&key) {
                return Ok(*id);
            }
        }
        let body = Self::request_body(schema_type, text, references);
        let query = if normalize { "?normalize=true" } else { "" };
        let answer = self.call(
            "POST",
            &format!("/subjects/{}/versions{query}", segment(subject)),
            Some(&body),
        )?;
        let id = answer["id"]
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| ClientError::BadResponse(format!("no id in {answer}")))?;
        let mut cache = self.cache();
        cache.latest.remove(subject);
        if references.is_empty() {
            cache.registered.insert(key, id);
        }
        Ok(id)
    }

    /// The version of `subject` holding this schema (404 when none does).
    pub fn lookup(
        &self,
        subject: &str,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
        normalize: bool,
    ) -> Result<SubjectSchema, ClientError> {
        let body = Self::request_body(schema_type, text, references);
        let query = if normalize { "?normalize=true" } else { "" };
        let answer = self.call(
            "POST",
            &format!("/subjects/{}{query}", segment(subject)),
            Some(&body),
        )?;
        self.subject_schema(&answer)
    }

    /// Whether `text` may be registered under `subject` by its
    /// compatibility level (against the latest version).
    pub fn is_compatible(
        &self,
        subject: &str,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
    ) -> Result<bool, ClientError> {
        let body = Self::request_body(schema_type, text, references);
        let answer = self.call(
            "POST",
            &format!(
                "/compatibility/subjects/{}/versions/latest",
                segment(subject)
            ),
            Some(&body),
        )?;
        answer["is_compatible"]
            .as_bool()
            .ok_or_else(|| ClientError::BadResponse(format!("no is_compatible in {answer}")))
    }

    /// Every subject (with `deleted`, soft-deleted ones too), sorted.
    pub fn subjects(&self, deleted: bool) -> Result<Vec<String>, ClientError> {
        let query = if deleted { "?deleted=true" } else { "" };
        let answer = self.call("GET", &format!("/subjects{query}"), None)?;
        let mut list: Vec<String> = answer
            .as_array()
            .ok_or_else(|| ClientError::BadResponse(format!("not a list: {answer}")))?
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        list.sort();
        Ok(list)
    }

    /// The versions of a subject.
    pub fn versions(&self, subject: &str) -> Result<Vec<i32>, ClientError> {
        let answer = self.call(
            "GET",
            &format!("/subjects/{}/versions", segment(subject)),
            None,
        )?;
        Ok(numbers(&answer))
    }

    /// One version of a subject (`latest` or a number), uncached.
    pub fn version(&self, subject: &str, version: &str) -> Result<SubjectSchema, ClientError> {
        let body = self.call(
            "GET",
            &format!(
                "/subjects/{}/versions/{}",
                segment(subject),
                segment(version)
            ),
            None,
        )?;
        self.subject_schema(&body)
    }

    /// Deletes a subject (soft, or permanently after a soft delete) and
    /// returns the versions it deleted.
    pub fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<i32>, ClientError> {
        let query = if permanent { "?permanent=true" } else { "" };
        let answer = self.call(
            "DELETE",
            &format!("/subjects/{}{query}", segment(subject)),
            None,
        )?;
        self.cache().latest.remove(subject);
        Ok(numbers(&answer))
    }

    /// The subjects and versions schema `id` is registered under.
    pub fn subjects_of_id(&self, id: i32) -> Result<Vec<(String, i32)>, ClientError> {
        let answer = self.call("GET", &format!("/schemas/ids/{id}/versions"), None)?;
        Ok(answer
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                let subject = v["subject"].as_str()?.to_string();
                let version = i32::try_from(v["version"].as_i64()?).ok()?;
                Some((subject, version))
            })
            .collect())
    }

    /// Deletes one version of a subject (soft, or permanently after a soft
    /// delete) and returns its number.
    pub fn delete_version(
        &self,
        subject: &str,
        version: &str,
        permanent: bool,
    ) -> Result<i32, ClientError> {
        let query = if permanent { "?permanent=true" } else { "" };
        let answer = self.call(
            "DELETE",
            &format!(
                "/subjects/{}/versions/{}{query}",
                segment(subject),
                segment(version)
            ),
            None,
        )?;
        self.cache().latest.remove(subject);
        answer
            .as_i64()
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| ClientError::BadResponse(format!("not a version: {answer}")))
    }

    /// The mode (READWRITE, READONLY, IMPORT) of a subject (falling back to
    /// the global one) or the global mode.
    pub fn mode(&self, subject: Option<&str>) -> Result<String, ClientError> {
        let path = match subject {
            Some(s) => format!("/mode/{}?defaultToGlobal=true", segment(s)),
            None => "/mode".to_string(),
        };
        let answer = self.call("GET", &path, None)?;
        answer["mode"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ClientError::BadResponse(format!("no mode in {answer}")))
    }

    /// Sets the mode of a subject, or the global one.
    pub fn set_mode(&self, subject: Option<&str>, mode: &str) -> Result<String, ClientError> {
        let path = match subject {
            Some(s) => format!("/mode/{}", segment(s)),
            None => "/mode".to_string(),
        };
        let answer = self.call("PUT", &path, Some(&json!({ "mode": mode })))?;
        answer["mode"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ClientError::BadResponse(format!("no mode in {answer}")))
    }

    /// The compatibility level of a subject (falling back to the global
    /// one, as the registry's `defaultToGlobal` does), or the global level.
    pub fn compatibility(&self, subject: Option<&str>) -> Result<String, ClientError> {
        let path = match subject {
            Some(s) => format!("/config/{}?defaultToGlobal=true", segment(s)),
            None => "/config".to_string(),
        };
        let answer = self.call("GET", &path, None)?;
        answer["compatibilityLevel"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ClientError::BadResponse(format!("no compatibilityLevel in {answer}")))
    }

    /// Sets the compatibility level of a subject, or the global one.
    pub fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: &str,
    ) -> Result<String, ClientError> {
        let path = match subject {
            Some(s) => format!("/config/{}", segment(s)),
            None => "/config".to_string(),
        };
        let answer = self.call("PUT", &path, Some(&json!({ "compatibility": level })))?;
        answer["compatibility"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ClientError::BadResponse(format!("no compatibility in {answer}")))
    }
}

/// The integers of a JSON array (versions).
fn numbers(answer: &Json) -> Vec<i32> {
    answer
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_i64().and_then(|v| i32::try_from(v).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_by_strategy() {
        let s = SubjectNameStrategy::default();
        assert_eq!(s.subject("t", true, None).unwrap(), "t-key");
        assert_eq!(s.subject("t", false, Some("a.B")).unwrap(), "t-value");
        let r = SubjectNameStrategy::RecordName;
        assert_eq!(r.subject("t", false, Some("a.B")).unwrap(), "a.B");
        assert!(r.subject("t", false, None).is_err());
        let tr = SubjectNameStrategy::TopicRecordName;
        assert_eq!(tr.subject("t", true, Some("a.B")).unwrap(), "t-a.B");
        assert_eq!(
            SubjectNameStrategy::parse(
                "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy"
            ),
            Some(tr)
        );
        assert_eq!(SubjectNameStrategy::parse("RecordName"), Some(r));
        assert_eq!(SubjectNameStrategy::parse("Nope"), None);
    }

    #[test]
    fn subjects_are_escaped_in_paths() {
        assert_eq!(segment("a-b.c_d"), "a-b.c_d");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment(":.ctx:s"), "%3A.ctx%3As");
    }

    #[test]
    fn an_unreachable_registry_is_a_transport_error() {
        let c = RegistryClient::with_config(
            "http://127.0.0.1:1/, http://other",
            ClientConfig {
                timeout: Duration::from_millis(500),
                ..ClientConfig::default()
            },
        );
        assert_eq!(c.url(), "http://127.0.0.1:1");
        let e = c.schema_by_id(1).unwrap_err();
        assert!(matches!(e, ClientError::Transport { .. }), "{e}");
        assert_eq!(e.error_code(), None);
    }
}
