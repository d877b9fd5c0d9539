//! The registry: operations over the state, writes through the
//! `_schemas` topic. Every call blocks (it may read or write the topic):
//! call it from a blocking thread.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use runnel_cluster::{
    Backend, BackendError, Cluster, Guarantee, NewTopic, ProducedRecord, TopicPartition,
};
use runnel_schema::{check_backward, ParsedSchema, SchemaType};
use serde::{Deserialize, Serialize};

use crate::error::RegistryError;
use crate::record::{
    ConfigValue, DeleteSubjectValue, Key, ModeValue, Reference, SchemaValue, Value,
};
use crate::state::{Level, Mode, State};

/// How a registry finds its topic and its peers.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// The topic schemas live in (`_schemas`, as Confluent's
    /// `kafkastore.topic`).
    pub topic: String,
    /// The application id of the writer: every instance sharing a topic
    /// must use the same one, and reach the cluster through `Cluster`s
    /// that derive the same transactional id from it (for a
    /// `KafkaCluster`, the same instance id:
    /// [`KAFKA_INSTANCE_ID`](crate::service::KAFKA_INSTANCE_ID)), since
    /// that transactional id is what fences the other writers (see the
    /// crate docs).
    pub writer_id: String,
    /// How often the topic is read for records other instances wrote.
    pub poll: Duration,
    /// How long a write may take, attempts and reading it back included,
    /// before it is reported as timed out.
    pub write_timeout: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            topic: "_schemas".to_string(),
            writer_id: "_runnel-registry-writer".to_string(),
            poll: Duration::from_millis(200),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// The header every record a registry writes carries: which write it
/// belongs to, so the writer knows when the topic has given it back.
const WRITE_HEADER: &str = "runnel-registry-write";

/// How long [`Registry::shutdown`] waits for the follower thread.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// The longest pause between two attempts of a write that lost the
/// writer's role to another instance.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// A pause before attempt `attempt` (from 1) of a write: exponential, with
/// jitter, so two instances taking turns fencing each other fall out of
/// step instead of fencing each other forever.
fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let base = Duration::from_millis(20)
        .saturating_mul(1 << attempt.min(5))
        .min(MAX_BACKOFF);
    // RandomState is seeded randomly: a random number without a crate.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    // Between half and one and a half times the base.
    base / 2 + base.mul_f64((random % 1000) as f64 / 1000.0)
}

/// A schema as a subject version holds it (the body of
/// `GET /subjects/{s}/versions/{v}` and of a lookup).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectSchema {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    /// Absent for AVRO, as Confluent's registry writes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    pub schema: String,
}

/// A schema by id (`GET /schemas/ids/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaById {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    pub schema: String,
}

/// The body of a registration, a lookup or a compatibility check.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRequest {
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub schema_type: Option<String>,
    #[serde(default)]
    pub references: Option<Vec<Reference>>,
    /// IMPORT mode: the id to register under.
    #[serde(default)]
    pub id: Option<i32>,
    /// IMPORT mode: the version to register as.
    #[serde(default)]
    pub version: Option<i32>,
}

/// A version in a path: a number or `latest` (also `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Number(i32),
}

impl VersionSpec {
    /// Parses a path's version; 42202 for anything but `latest`, `-1` or
    /// 1..2^31-1.
    pub fn parse(s: &str) -> Result<VersionSpec, RegistryError> {
        if s.eq_ignore_ascii_case("latest") {
            return Ok(VersionSpec::Latest);
        }
        match s.parse::<i32>() {
            Ok(-1) => Ok(VersionSpec::Latest),
            Ok(n) if n >= 1 => Ok(VersionSpec::Number(n)),
            _ => Err(RegistryError::InvalidVersion(s.to_string())),
        }
    }
}

/// The result of a compatibility check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compatibility {
    pub is_compatible: bool,
    pub messages: Vec<String>,
}

/// A config as `GET /config` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub level: Level,
    pub normalize: Option<bool>,
}

struct Reader {
    backend: Box<dyn Backend>,
}

struct Inner {
    cluster: Arc<dyn Cluster>,
    config: RegistryConfig,
    state: RwLock<State>,
    reader: Mutex<Reader>,
    /// The writer's turn, with its producer (`None` until first used, and
    /// after it was fenced).
    writer: Mutex<Option<Box<dyn Backend>>>,
    /// This instance, in the write marks of its records.
    origin: String,
    seq: AtomicU64,
    /// Write marks of this instance read back from the topic.
    seen: Mutex<HashSet<String>>,
    stopping: AtomicBool,
    follower: Mutex<Option<JoinHandle<()>>>,
}

/// The schema registry; cheap to clone and share between threads.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn store_err(e: BackendError) -> RegistryError {
    RegistryError::Store(e.to_string())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

type Records = Vec<(Key, Option<Value>)>;

impl Registry {
    /// Starts a registry on `cluster`: creates the topic if needed,
    /// replays it, then follows it in the background for what other
    /// instances write.
    pub fn start(
        cluster: Arc<dyn Cluster>,
        config: RegistryConfig,
    ) -> Result<Registry, RegistryError> {
        cluster
            .create_topic(&NewTopic::new(&config.topic, 1).compacted())
            .map_err(store_err)?;
        let backend = cluster
            .backend(
                &format!("{}-reader", config.writer_id),
                Guarantee::AtLeastOnce,
            )
            .map_err(store_err)?;
        let origin = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let registry = Registry {
            inner: Arc::new(Inner {
                cluster,
                config,
                state: RwLock::new(State::default()),
                reader: Mutex::new(Reader { backend }),
                writer: Mutex::new(None),
                origin,
                seq: AtomicU64::new(0),
                seen: Mutex::new(HashSet::new()),
                stopping: AtomicBool::new(false),
                follower: Mutex::new(None),
            }),
        };
        let started = Instant::now();
        let applied = registry.catch_up()?;
        tracing::info!(
            records = applied,
            elapsed_ms = started.elapsed().as_millis() as u64,
            topic = %registry.inner.config.topic,
            "schema registry: topic replayed"
        );
        let follower = follow(Arc::downgrade(&registry.inner))?;
        *lock(&registry.inner.follower) = Some(follower);
        Ok(registry)
    }

    /// Stops following the topic.
    ///
    /// Waits a moment for the follower thread, not for a read it may be
    /// blocked in (a cluster that does not answer holds it up to the
    /// backend's timeout): then it is left to end on its own, so a server
    /// stops promptly even when its cluster is gone.
    pub fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let Some(h) = lock(&self.inner.follower).take() else {
            return;
        };
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            let _ = h.join();
        } else {
            tracing::info!("the schemas topic follower is still reading; not waiting for it");
        }
    }

    fn state(&self) -> RwLockReadGuard<'_, State> {
        self.inner.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies the records written since the last call; returns how many.
    pub fn catch_up(&self) -> Result<usize, RegistryError> {
        let mut reader = lock(&self.inner.reader);
        let from = self.state().next_offset;
        let mut records = Vec::new();
        let tp = TopicPartition::new(&self.inner.config.topic, 0);
        let end = reader
            .backend
            .read_partition(&tp, from, &mut |r| {
                if r.offset >= from {
                    records.push(r);
                }
            })
            .map_err(store_err)?;
        let n = records.len();
        let mut marks = Vec::new();
        let own = format!("{}-", self.inner.origin);
        {
            let mut state = self.inner.state.write().unwrap_or_else(|p| p.into_inner());
            for r in records {
                state.next_offset = state.next_offset.max(r.offset + 1);
                for (k, v) in &r.headers {
                    if k == WRITE_HEADER {
                        if let Some(m) = v.as_deref().and_then(|v| std::str::from_utf8(v).ok()) {
                            if m.starts_with(&own) {
                                marks.push(m.to_string());
                            }
                        }
                    }
                }
                let Some(key) = r.key.as_deref().and_then(Key::decode) else {
                    tracing::warn!(
                        offset = r.offset,
                        "_schemas: a record whose key is not a registry key is ignored"
                    );
                    continue;
                };
                match r.value.as_deref().map(|v| Value::decode(&key, v)) {
                    None => state.apply(&key, None),
                    Some(Ok(Some(v))) => state.apply(&key, Some(v)),
                    Some(Ok(None)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(offset = r.offset, error = %e, "_schemas: an unreadable record is ignored")
                    }
                }
            }
            state.next_offset = state.next_offset.max(end);
        }
        if !marks.is_empty() {
            lock(&self.inner.seen).extend(marks);
        }
        Ok(n)
    }

    /// Writes the records `plan` decides on, as the one writer: see the
    /// crate docs. `plan` runs on a state that has every record written
    /// before this instance became the writer; its error is returned as
    /// is, and when it writes nothing its answer is returned at once.
    fn write<T>(
        &self,
        plan: impl Fn(&State) -> Result<(Records, T), RegistryError>,
    ) -> Result<T, RegistryError> {
        let mut writer = lock(&self.inner.writer);
        let mut last = String::new();
        let deadline = Instant::now() + self.inner.config.write_timeout;
        let mut attempt = 0u32;
        while attempt == 0 || Instant::now() < deadline {
            if attempt > 0 {
                std::thread::sleep(backoff(attempt));
            }
            attempt += 1;
            let w = match writer.as_mut() {
                Some(w) => w,
                None => {
                    // Claiming the transactional id fences every other
                    // writer and completes their open transactions.
                    let w = self
                        .inner
                        .cluster
                        .backend(&self.inner.config.writer_id, Guarantee::ExactlyOnce)
                        .map_err(store_err)?;
                    writer.insert(w)
                }
            };
            self.catch_up()?;
            let (records, answer) = plan(&self.state())?;
            if records.is_empty() {
                return Ok(answer);
            }
            let mark = format!(
                "{}-{}",
                self.inner.origin,
                self.inner.seq.fetch_add(1, Ordering::SeqCst)
            );
            let produced: Vec<ProducedRecord> = records
                .iter()
                .map(|(k, v)| ProducedRecord {
                    topic: self.inner.config.topic.clone(),
                    partition: 0,
                    timestamp: now_ms(),
                    key: Some(k.encode()),
                    value: v.as_ref().map(Value::encode),
                    headers: vec![(WRITE_HEADER.to_string(), Some(mark.clone().into_bytes()))],
                })
                .collect();
            match w
                .begin()
                .and_then(|_| w.send(produced))
                .and_then(|_| w.commit(&[]))
            {
                Ok(()) => {
                    self.wait_for(&mark)?;
                    return Ok(answer);
                }
                Err(e) => {
                    tracing::debug!(error = %e, attempt, "schema registry: write failed (another instance became the writer?); becoming the writer again");
                    let _ = w.abort();
                    *writer = None;
                    last = e.to_string();
                }
            }
        }
        Err(RegistryError::Timeout(format!(
            "cannot write to {} ({attempt} attempts): {last}",
            self.inner.config.topic
        )))
    }

    /// Reads the topic until the records of write `mark` were applied.
    fn wait_for(&self, mark: &str) -> Result<(), RegistryError> {
        let deadline = Instant::now() + self.inner.config.write_timeout;
        loop {
            if lock(&self.inner.seen).remove(mark) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(RegistryError::Timeout(format!(
                    "the write was not read back from {} in time",
                    self.inner.config.topic
                )));
            }
            self.catch_up()?;
            if lock(&self.inner.seen).remove(mark) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    // ---------------------------------------------------------------
    // Subjects and versions
    // ---------------------------------------------------------------

    /// Subjects with a live version (with only soft-deleted ones too when
    /// `deleted`, only those when `deleted_only`), sorted.
    pub fn subjects(&self, prefix: &str, deleted: bool, deleted_only: bool) -> Vec<String> {
        let state = self.state();
        state
            .subjects
            .iter()
            .filter(|(s, _)| s.starts_with(prefix))
            .filter(|(_, vs)| {
                let live = vs.values().any(|v| !v.deleted);
                if deleted_only {
                    vs.values().any(|v| v.deleted)
                } else {
                    live || deleted
                }
            })
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Every version of the subjects starting with `prefix` (soft-deleted
    /// ones too when `deleted`; only each subject's latest when
    /// `latest_only`), by subject then version.
    pub fn schemas(&self, prefix: &str, deleted: bool, latest_only: bool) -> Vec<SubjectSchema> {
        let state = self.state();
        let mut out = Vec::new();
        for subject in state.subjects.keys().filter(|s| s.starts_with(prefix)) {
            let versions = state.versions(subject, deleted);
            let chosen: &[(i32, crate::state::Version)] = if latest_only {
                match versions.len() {
                    0 => &[],
                    n => &versions[n - 1..],
                }
            } else {
                &versions
            };
            for (n, v) in chosen {
                if let Ok(s) = Self::subject_schema(&state, subject, *n, v.id) {
                    out.push(s);
                }
            }
        }
        out
    }

    /// The version numbers of `subject`.
    pub fn versions(
        &self,
        subject: &str,
        deleted: bool,
        deleted_only: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        let state = self.state();
        let all = state.versions(subject, true);
        if all.is_empty() || (!deleted && !deleted_only && !state.has_subject(subject, false)) {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        Ok(all
            .into_iter()
            .filter(|(_, v)| {
                if deleted_only {
                    v.deleted
                } else {
                    deleted || !v.deleted
                }
            })
            .map(|(n, _)| n)
            .collect())
    }

    fn subject_schema(
        state: &State,
        subject: &str,
        version: i32,
        id: i32,
    ) -> Result<SubjectSchema, RegistryError> {
        let c = state
            .schemas
            .get(&id)
            .ok_or(RegistryError::SchemaIdNotFound(id))?;
        Ok(SubjectSchema {
            subject: subject.to_string(),
            version,
            id,
            schema_type: (c.schema_type != SchemaType::Avro)
                .then(|| c.schema_type.name().to_string()),
            references: c.references.clone(),
            schema: c.text.clone(),
        })
    }

    /// One version of a subject.
    pub fn version(
        &self,
        subject: &str,
        version: VersionSpec,
        deleted: bool,
    ) -> Result<SubjectSchema, RegistryError> {
        let state = self.state();
        let (n, v) = find_version(&state, subject, version, deleted)?;
        Self::subject_schema(&state, subject, n, v.id)
    }

    /// The ids of the schemas referencing a version.
    pub fn referenced_by(
        &self,
        subject: &str,
        version: VersionSpec,
    ) -> Result<Vec<i32>, RegistryError> {
        let state = self.state();
        let (n, _) = find_version(&state, subject, version, false)?;
        Ok(state.referenced_by(subject, n, false))
    }

    /// Parses a request's schema against what the state holds.
    fn parse(
        state: &State,
        req: &SchemaRequest,
    ) -> Result<(ParsedSchema, Vec<Reference>), RegistryError> {
        let text = req
            .schema
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| RegistryError::InvalidSchema("Empty schema".into()))?;
        let schema_type = match req.schema_type.as_deref() {
            None | Some("") => SchemaType::Avro,
            Some(t) => t
                .parse::<SchemaType>()
                .map_err(|e| RegistryError::InvalidSchema(e.to_string()))?,
        };
        let references = req.references.clone().unwrap_or_default();
        let resolved = state.resolve(&references)?;
        let parsed = ParsedSchema::parse(schema_type, text, &resolved)
            .map_err(|e| RegistryError::InvalidSchema(format!("Invalid schema: {e}")))?;
        Ok((parsed, references))
    }

    /// Looks a schema up under a subject.
    pub fn lookup(
        &self,
        subject: &str,
        req: &SchemaRequest,
        deleted: bool,
    ) -> Result<SubjectSchema, RegistryError> {
        let state = self.state();
        // The subject is answered for before the schema, as Confluent does.
        if !state.has_subject(subject, deleted) {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        let (parsed, references) = Self::parse(&state, req)?;
        let id = state.id_of(&parsed, &references);
        let found = id.and_then(|id| {
            state
                .versions(subject, deleted)
                .into_iter()
                .rev()
                .find(|(_, v)| v.id == id)
        });
        match found {
            Some((n, v)) => Self::subject_schema(&state, subject, n, v.id),
            None => Err(RegistryError::SchemaNotFound),
        }
    }

    /// Registers a schema under a subject; returns its id.
    pub fn register(
        &self,
        subject: &str,
        req: &SchemaRequest,
        normalize: bool,
    ) -> Result<i32, RegistryError> {
        if subject.is_empty() || subject.chars().any(char::is_control) {
            return Err(RegistryError::BadRequest(format!(
                "invalid subject {subject:?}"
            )));
        }
        let import_id = req.id.filter(|id| *id >= 0);
        let import_version = req.version.filter(|v| *v >= 1);
        self.write(|state| {
            let mode = state.mode(subject);
            if mode.read_only() {
                return Err(RegistryError::NotPermitted(format!(
                    "Subject {subject} is in read-only mode"
                )));
            }
            match (import_id, mode) {
                (Some(_), m) if m != Mode::Import => {
                    return Err(RegistryError::NotPermitted(format!(
                        "Subject {subject} is not in import mode: a schema id can only be given in IMPORT mode"
                    )))
                }
                (None, m) if m != Mode::ReadWrite => {
                    return Err(RegistryError::NotPermitted(format!(
                        "Subject {subject} is not in read-write mode"
                    )))
                }
                _ => {}
            }
            let (parsed, references) = Self::parse(state, req)?;
            let normalize = normalize || state.normalize(subject);
            let text = if normalize {
                parsed.normalized()
            } else {
                parsed.text().to_string()
            };
            let all = state.versions(subject, true);
            let existing_id = state.id_of(&parsed, &references);
            // Already a live version of this subject: its id.
            if import_version.is_none() {
                if let Some(id) = existing_id.filter(|id| import_id.is_none_or(|i| i == *id)) {
                    if all.iter().any(|(_, v)| v.id == id && !v.deleted) {
                        return Ok((Vec::new(), id));
                    }
                }
            }
            let live: Vec<(i32, i32)> = all
                .iter()
                .filter(|(_, v)| !v.deleted)
                .map(|(n, v)| (*n, v.id))
                .collect();
            if mode != Mode::Import {
                let level = state.level(subject);
                let messages = check_against(state, &parsed, &live, level, false)?;
                if !messages.is_empty() {
                    return Err(RegistryError::Incompatible(format!(
                        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                        messages.join(", ")
                    )));
                }
            }
            let next_version = all.last().map_or(1, |(n, _)| n + 1);
            let version = match import_version {
                Some(v) if mode == Mode::Import => v,
                Some(v) if v != next_version => {
                    return Err(RegistryError::InvalidSchema(format!(
                        "Version {v} is not one more than the latest version {}",
                        next_version - 1
                    )))
                }
                _ => next_version,
            };
            let id = match import_id {
                Some(id) => {
                    if let Some(c) = state.schemas.get(&id) {
                        let same = c.schema_type == parsed.schema_type()
                            && c.canonical == parsed.canonical()
                            && c.references == references;
                        if !same {
                            return Err(RegistryError::NotPermitted(format!(
                                "Overwriting the schema with id {id} is not permitted: another schema holds it"
                            )));
                        }
                    }
                    id
                }
                None => existing_id.unwrap_or(state.max_id.saturating_add(1)),
            };
            let mut records: Records = Vec::new();
            // Soft-deleted earlier versions of the same schema make way.
            for (n, v) in &all {
                if v.deleted && v.id == id && *n < version && state.referenced_by(subject, *n, true).is_empty() {
                    records.push((
                        Key::Schema {
                            subject: subject.to_string(),
                            version: *n,
                        },
                        None,
                    ));
                }
            }
            records.push((
                Key::Schema {
                    subject: subject.to_string(),
                    version,
                },
                Some(Value::Schema(SchemaValue {
                    subject: subject.to_string(),
                    version,
                    id,
                    schema_type: Some(parsed.schema_type().name().to_string()),
                    references: references.clone(),
                    schema: text,
                    deleted: false,
                })),
            ));
            Ok((records, id))
        })
    }

    // ---------------------------------------------------------------
    // Deletes
    // ---------------------------------------------------------------

    /// Deletes a subject: soft (its versions stay readable by id and with
    /// `deleted=true`) or, after a soft delete, permanent. Returns the
    /// versions deleted.
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        self.write(|state| {
            if state.mode(subject).read_only() {
                return Err(RegistryError::NotPermitted(format!(
                    "Subject {subject} is in read-only mode"
                )));
            }
            let all = state.versions(subject, true);
            if all.is_empty() {
                return Err(RegistryError::SubjectNotFound(subject.to_string()));
            }
            let live: Vec<i32> = all
                .iter()
                .filter(|(_, v)| !v.deleted)
                .map(|(n, _)| *n)
                .collect();
            let targets: Vec<i32> = if permanent {
                if !live.is_empty() {
                    return Err(RegistryError::SubjectNotSoftDeleted(subject.to_string()));
                }
                all.iter().map(|(n, _)| *n).collect()
            } else {
                if live.is_empty() {
                    return Err(RegistryError::SubjectSoftDeleted(subject.to_string()));
                }
                live
            };
            for n in &targets {
                let others: Vec<i32> = state
                    .referenced_by(subject, *n, permanent)
                    .into_iter()
                    .filter(|id| state.holders(*id, true).iter().any(|(s, _)| s != subject))
                    .collect();
                if !others.is_empty() {
                    return Err(RegistryError::ReferenceExists(subject.to_string(), *n));
                }
            }
            let mut records: Records = Vec::new();
            if permanent {
                for n in targets.iter().rev() {
                    records.push((
                        Key::Schema {
                            subject: subject.to_string(),
                            version: *n,
                        },
                        None,
                    ));
                }
                records.extend(clear_subject_settings(state, subject));
            } else if let Some(last) = targets.last() {
                records.push((
                    Key::DeleteSubject {
                        subject: subject.to_string(),
                    },
                    Some(Value::DeleteSubject(DeleteSubjectValue {
                        subject: subject.to_string(),
                        version: *last,
                    })),
                ));
            }
            Ok((records, targets))
        })
    }

    /// Deletes one version: soft, or permanent after a soft delete.
    pub fn delete_version(
        &self,
        subject: &str,
        version: VersionSpec,
        permanent: bool,
    ) -> Result<i32, RegistryError> {
        self.write(|state| {
            if state.mode(subject).read_only() {
                return Err(RegistryError::NotPermitted(format!(
                    "Subject {subject} is in read-only mode"
                )));
            }
            if !state.has_subject(subject, true) {
                return Err(RegistryError::SubjectNotFound(subject.to_string()));
            }
            let (n, v) = match version {
                VersionSpec::Latest => {
                    find_version(state, subject, VersionSpec::Latest, permanent)?
                }
                VersionSpec::Number(n) => {
                    let v = state
                        .subjects
                        .get(subject)
                        .and_then(|vs| vs.get(&n))
                        .copied()
                        .ok_or(RegistryError::VersionNotFound(n))?;
                    (n, v)
                }
            };
            if permanent && !v.deleted {
                return Err(RegistryError::VersionNotSoftDeleted(subject.to_string(), n));
            }
            if !permanent && v.deleted {
                return Err(RegistryError::VersionSoftDeleted(subject.to_string(), n));
            }
            if !state.referenced_by(subject, n, permanent).is_empty() {
                return Err(RegistryError::ReferenceExists(subject.to_string(), n));
            }
            let key = Key::Schema {
                subject: subject.to_string(),
                version: n,
            };
            let mut records: Records = Vec::new();
            if permanent {
                records.push((key, None));
                if state.versions(subject, true).len() == 1 {
                    records.extend(clear_subject_settings(state, subject));
                }
            } else {
                let c = state
                    .schemas
                    .get(&v.id)
                    .ok_or(RegistryError::SchemaIdNotFound(v.id))?;
                records.push((
                    key,
                    Some(Value::Schema(SchemaValue {
                        subject: subject.to_string(),
                        version: n,
                        id: v.id,
                        schema_type: Some(c.schema_type.name().to_string()),
                        references: c.references.clone(),
                        schema: c.text.clone(),
                        deleted: true,
                    })),
                ));
            }
            Ok((records, n))
        })
    }

    // ---------------------------------------------------------------
    // Schemas by id
    // ---------------------------------------------------------------

    pub fn schema_by_id(&self, id: i32) -> Result<SchemaById, RegistryError> {
        let state = self.state();
        let c = state
            .schemas
            .get(&id)
            .ok_or(RegistryError::SchemaIdNotFound(id))?;
        Ok(SchemaById {
            schema_type: (c.schema_type != SchemaType::Avro)
                .then(|| c.schema_type.name().to_string()),
            references: c.references.clone(),
            schema: c.text.clone(),
        })
    }

    /// The (subject, version)s holding an id.
    pub fn id_versions(&self, id: i32, deleted: bool) -> Result<Vec<(String, i32)>, RegistryError> {
        let state = self.state();
        if !state.schemas.contains_key(&id) {
            return Err(RegistryError::SchemaIdNotFound(id));
        }
        Ok(state.holders(id, deleted))
    }

    // ---------------------------------------------------------------
    // Compatibility
    // ---------------------------------------------------------------

    /// Whether a schema could be registered under `subject`: against one
    /// version, or (`None`) against the versions its level checks.
    pub fn check_compatibility(
        &self,
        subject: &str,
        version: Option<VersionSpec>,
        req: &SchemaRequest,
        verbose: bool,
    ) -> Result<Compatibility, RegistryError> {
        let state = self.state();
        let previous: Vec<(i32, i32)> = match version {
            Some(VersionSpec::Number(n)) => {
                let v = state
                    .subjects
                    .get(subject)
                    .and_then(|vs| vs.get(&n))
                    .filter(|v| !v.deleted)
                    .ok_or(RegistryError::VersionNotFound(n))?;
                vec![(n, v.id)]
            }
            Some(VersionSpec::Latest) => state
                .versions(subject, false)
                .last()
                .map(|(n, v)| vec![(*n, v.id)])
                .unwrap_or_default(),
            None => state
                .versions(subject, false)
                .into_iter()
                .map(|(n, v)| (n, v.id))
                .collect(),
        };
        let parsed = match Self::parse(&state, req) {
            Ok((p, _)) => p,
            Err(RegistryError::InvalidSchema(m)) if verbose => {
                return Ok(Compatibility {
                    is_compatible: false,
                    messages: vec![m],
                })
            }
            Err(e) => return Err(e),
        };
        let level = state.level(subject);
        let messages = check_against(&state, &parsed, &previous, level, version.is_some())?;
        Ok(Compatibility {
            is_compatible: messages.is_empty(),
            messages,
        })
    }

    // ---------------------------------------------------------------
    // Config and mode
    // ---------------------------------------------------------------

    /// The config of a subject (`None`: the global one). A subject
    /// without one is 40408 unless `default_to_global`.
    pub fn config(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<Config, RegistryError> {
        let state = self.state();
        let key = subject.map(str::to_string);
        let found = state
            .configs
            .get(&key)
            .filter(|c| c.compatibility_level.is_some() || c.normalize.is_some());
        match (found, subject) {
            (Some(c), _) => Ok(Config {
                level: c
                    .compatibility_level
                    .as_deref()
                    .and_then(|l| l.parse().ok())
                    .unwrap_or_else(|| subject.map_or(Level::default(), |s| state.level(s))),
                normalize: c.normalize,
            }),
            (None, None) => Ok(Config {
                level: Level::default(),
                normalize: None,
            }),
            (None, Some(s)) if default_to_global => Ok(Config {
                level: state.level(s),
                normalize: state.configs.get(&None).and_then(|c| c.normalize),
            }),
            (None, Some(s)) => Err(RegistryError::SubjectConfigNotFound(s.to_string())),
        }
    }

    /// Sets a config; returns it.
    pub fn set_config(
        &self,
        subject: Option<&str>,
        level: Option<Level>,
        normalize: Option<bool>,
    ) -> Result<(), RegistryError> {
        if level.is_none() && normalize.is_none() {
            return Err(RegistryError::InvalidCompatibility);
        }
        self.write(|state| {
            if let Some(s) = subject {
                if state.mode(s).read_only() {
                    return Err(RegistryError::NotPermitted(format!(
                        "Subject {s} is in read-only mode"
                    )));
                }
            }
            let key = subject.map(str::to_string);
            let old = state.configs.get(&key).cloned().unwrap_or_default();
            let value = ConfigValue {
                subject: key.clone(),
                compatibility_level: level
                    .map(|l| l.name().to_string())
                    .or(old.compatibility_level),
                normalize: normalize.or(old.normalize),
            };
            Ok((
                vec![(Key::Config { subject: key }, Some(Value::Config(value)))],
                (),
            ))
        })
    }

    /// Removes a config (the global one goes back to the default);
    /// returns what it was.
    pub fn delete_config(&self, subject: Option<&str>) -> Result<Config, RegistryError> {
        self.write(|state| {
            let key = subject.map(str::to_string);
            let old = match (state.configs.get(&key), subject) {
                (Some(c), _) => Config {
                    level: c
                        .compatibility_level
                        .as_deref()
                        .and_then(|l| l.parse().ok())
                        .unwrap_or_default(),
                    normalize: c.normalize,
                },
                (None, None) => Config {
                    level: Level::default(),
                    normalize: None,
                },
                (None, Some(s)) => return Err(RegistryError::SubjectConfigNotFound(s.to_string())),
            };
            let records = if state.configs.contains_key(&key) {
                vec![(Key::Config { subject: key }, None)]
            } else {
                Vec::new()
            };
            Ok((records, old))
        })
    }

    /// The mode of a subject (`None`: the global one).
    pub fn mode(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<Mode, RegistryError> {
        let state = self.state();
        match subject {
            None => Ok(state.modes.get(&None).copied().unwrap_or_default()),
            Some(s) => match state.modes.get(&Some(s.to_string())) {
                Some(m) => Ok(*m),
                None if default_to_global => Ok(state.mode(s)),
                None => Err(RegistryError::SubjectModeNotFound(s.to_string())),
            },
        }
    }

    /// Sets a mode. IMPORT needs the subjects in scope to have no live
    /// version unless `force`; their soft-deleted versions go.
    pub fn set_mode(
        &self,
        subject: Option<&str>,
        mode: Mode,
        force: bool,
    ) -> Result<(), RegistryError> {
        self.write(|state| {
            let in_scope = |s: &str| subject.is_none_or(|x| x == s);
            let mut records: Records = Vec::new();
            let current = match subject {
                Some(s) => state.mode(s),
                None => state.modes.get(&None).copied().unwrap_or_default(),
            };
            if mode == Mode::Import && current != Mode::Import && !force {
                if state
                    .subjects
                    .keys()
                    .any(|s| in_scope(s) && state.has_subject(s, false))
                {
                    return Err(RegistryError::NotPermitted(
                        "Cannot import since found existing subjects".into(),
                    ));
                }
                for (s, vs) in state.subjects.iter().filter(|(s, _)| in_scope(s)) {
                    for n in vs.keys() {
                        records.push((
                            Key::Schema {
                                subject: s.clone(),
                                version: *n,
                            },
                            None,
                        ));
                    }
                }
            }
            let key = subject.map(str::to_string);
            records.push((
                Key::Mode {
                    subject: key.clone(),
                },
                Some(Value::Mode(ModeValue {
                    subject: key,
                    mode: mode.name().to_string(),
                })),
            ));
            Ok((records, ()))
        })
    }

    /// Removes a subject's mode; returns what it was.
    pub fn delete_mode(&self, subject: &str) -> Result<Mode, RegistryError> {
        self.write(|state| {
            let key = Some(subject.to_string());
            match state.modes.get(&key) {
                Some(m) => Ok((vec![(Key::Mode { subject: key }, None)], *m)),
                None => Err(RegistryError::SubjectModeNotFound(subject.to_string())),
            }
        })
    }

    /// The highest id given so far (for tests and metrics).
    pub fn max_id(&self) -> i32 {
        self.state().max_id
    }
}

/// Tombstones for a subject's config and mode (a subject permanently
/// deleted keeps neither).
fn clear_subject_settings(state: &State, subject: &str) -> Records {
    let key = Some(subject.to_string());
    let mut records = Vec::new();
    if state.modes.contains_key(&key) {
        records.push((
            Key::Mode {
                subject: key.clone(),
            },
            None,
        ));
    }
    if state.configs.contains_key(&key) {
        records.push((Key::Config { subject: key }, None));
    }
    records
}

/// Finds a version: 40401 for a subject without one, 40402 for a
/// missing (or, unless `deleted`, soft-deleted) version.
fn find_version(
    state: &State,
    subject: &str,
    version: VersionSpec,
    deleted: bool,
) -> Result<(i32, crate::state::Version), RegistryError> {
    if !state.has_subject(subject, deleted) {
        return Err(RegistryError::SubjectNotFound(subject.to_string()));
    }
    let versions = state.versions(subject, deleted);
    match version {
        VersionSpec::Latest => versions
            .last()
            .copied()
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string())),
        VersionSpec::Number(n) => versions
            .into_iter()
            .find(|(m, _)| *m == n)
            .ok_or(RegistryError::VersionNotFound(n)),
    }
}

/// The reasons `new` cannot follow `previous` (version, id) under
/// `level`: the latest only, or all of them for a transitive level or an
/// explicit version (`all`).
fn check_against(
    state: &State,
    new: &ParsedSchema,
    previous: &[(i32, i32)],
    level: Level,
    all: bool,
) -> Result<Vec<String>, RegistryError> {
    if level == Level::None {
        return Ok(Vec::new());
    }
    let against: &[(i32, i32)] = if level.transitive() || all {
        previous
    } else {
        match previous.last() {
            Some(_) => &previous[previous.len() - 1..],
            None => &[],
        }
    };
    let mut messages = Vec::new();
    for (version, id) in against.iter().rev() {
        let Some(c) = state.schemas.get(id) else {
            continue;
        };
        let old = match state.resolve(&c.references).and_then(|refs| {
            ParsedSchema::parse(c.schema_type, &c.text, &refs)
                .map_err(|e| RegistryError::InvalidSchema(e.to_string()))
        }) {
            Ok(p) => p,
            Err(e) => {
                messages.push(format!(
                    "{{oldSchemaVersion: {version}}} cannot be read to check against: {e}"
                ));
                continue;
            }
        };
        let mut reasons: Vec<String> = Vec::new();
        if level.backward() {
            reasons.extend(check_backward(new, &old).iter().map(|i| i.to_string()));
        }
        if level.forward() {
            reasons.extend(check_backward(&old, new).iter().map(|i| i.to_string()));
        }
        if !reasons.is_empty() {
            messages.extend(reasons);
            messages.push(format!("{{oldSchemaVersion: {version}}}"));
            messages.push(format!("{{oldSchema: '{}'}}", c.text));
            messages.push(format!("{{compatibility: '{level}'}}"));
        }
    }
    Ok(messages)
}

/// Starts the `schema-registry` thread: every `poll` it applies what
/// other instances wrote, until the registry stops or is dropped.
fn follow(weak: Weak<Inner>) -> Result<JoinHandle<()>, RegistryError> {
    std::thread::Builder::new()
        .name("schema-registry".into())
        .spawn(move || {
            let mut failures = 0u64;
            loop {
                let poll = match weak.upgrade() {
                    Some(inner) => inner.config.poll,
                    None => return,
                };
                std::thread::sleep(poll);
                let Some(inner) = weak.upgrade() else { return };
                if inner.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let registry = Registry { inner };
                match registry.catch_up() {
                    Ok(_) if failures > 0 => {
                        tracing::info!(failures, "reading the schemas topic again");
                        failures = 0;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if failures.is_multiple_of(300) {
                            tracing::warn!(error = %e, failures, "cannot read the schemas topic");
                        }
                        failures += 1;
                    }
                }
            }
        })
        .map_err(|e| RegistryError::Store(format!("cannot start the topic follower: {e}")))
}
