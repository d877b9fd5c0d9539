//! What the registry knows: the `_schemas` topic applied in offset order.
//! Every instance applies the same records in the same order, so every
//! instance derives the same state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use runnel_schema::{ParsedSchema, Resolved, SchemaType};

use crate::error::RegistryError;
use crate::record::{ConfigValue, Key, Reference, SchemaValue, Value};

/// A compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Level {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Level {
    pub const ALL: [Level; 7] = [
        Level::None,
        Level::Backward,
        Level::BackwardTransitive,
        Level::Forward,
        Level::ForwardTransitive,
        Level::Full,
        Level::FullTransitive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Checked against every live version, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }

    /// The new schema must read what the old ones wrote.
    pub fn backward(self) -> bool {
        matches!(
            self,
            Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive
        )
    }

    /// The old schemas must read what the new one writes.
    pub fn forward(self) -> bool {
        matches!(
            self,
            Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive
        )
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Level {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(s.trim()))
            .ok_or(RegistryError::InvalidCompatibility)
    }
}

/// A registry mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    ReadWrite,
    ReadOnly,
    ReadOnlyOverride,
    Import,
}

impl Mode {
    pub const ALL: [Mode; 4] = [
        Mode::ReadWrite,
        Mode::ReadOnly,
        Mode::ReadOnlyOverride,
        Mode::Import,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::ReadOnlyOverride => "READONLY_OVERRIDE",
            Mode::Import => "IMPORT",
        }
    }

    pub fn read_only(self) -> bool {
        matches!(self, Mode::ReadOnly | Mode::ReadOnlyOverride)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
            .ok_or(RegistryError::InvalidMode)
    }
}

/// A schema as stored under an id: the text as registered, its type and
/// references, and the canonical form lookups compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub schema_type: SchemaType,
    pub text: String,
    pub references: Vec<Reference>,
    pub canonical: String,
}

impl Content {
    /// What makes two registrations the same schema.
    fn identity(&self) -> (SchemaType, String, Vec<Reference>) {
        (
            self.schema_type,
            self.canonical.clone(),
            self.references.clone(),
        )
    }
}

/// One version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub id: i32,
    pub deleted: bool,
}

/// The registry's state.
#[derive(Debug, Default)]
pub struct State {
    /// Subject → version → entry.
    pub subjects: BTreeMap<String, BTreeMap<i32, Version>>,
    /// Id → schema.
    pub schemas: HashMap<i32, Arc<Content>>,
    /// Id → the (subject, version)s holding it.
    holders: HashMap<i32, BTreeSet<(String, i32)>>,
    /// Schema identity → its id.
    by_identity: HashMap<(SchemaType, String, Vec<Reference>), i32>,
    /// Per-subject configs; the global one under `None`.
    pub configs: BTreeMap<Option<String>, ConfigValue>,
    /// Per-subject modes; the global one under `None`.
    pub modes: BTreeMap<Option<String>, Mode>,
    /// The highest id this instance has seen: new ids come after it.
    pub max_id: i32,
    /// The next offset of `_schemas` to apply.
    pub next_offset: i64,
}

/// Most levels of references followed (they cannot form cycles in a
/// registry, but a topic written by something else could).
const MAX_REFERENCE_DEPTH: usize = 32;

impl State {
    /// Applies one record (a `None` value is a tombstone).
    pub fn apply(&mut self, key: &Key, value: Option<Value>) {
        match (key, value) {
            (Key::Schema { subject, version }, Some(Value::Schema(v))) => {
                self.apply_schema(subject, *version, v)
            }
            (Key::Schema { subject, version }, None) => self.remove_version(subject, *version),
            (Key::Config { subject }, Some(Value::Config(c))) => {
                self.configs.insert(subject.clone(), c);
            }
            (Key::Config { subject }, None) => {
                self.configs.remove(subject);
            }
            (Key::Mode { subject }, Some(Value::Mode(m))) => match m.mode.parse::<Mode>() {
                Ok(mode) => {
                    self.modes.insert(subject.clone(), mode);
                }
                Err(_) => tracing::warn!(mode = %m.mode, "_schemas: unknown mode ignored"),
            },
            (Key::Mode { subject }, None) => {
                self.modes.remove(subject);
            }
            (Key::DeleteSubject { subject }, Some(Value::DeleteSubject(d))) => {
                if let Some(versions) = self.subjects.get_mut(subject) {
                    for (_, v) in versions.range_mut(..=d.version) {
                        v.deleted = true;
                    }
                }
            }
            (Key::ClearSubject { subject }, Some(Value::ClearSubject(_))) => {
                let deleted: Vec<i32> = self
                    .subjects
                    .get(subject)
                    .map(|vs| {
                        vs.iter()
                            .filter(|(_, v)| v.deleted)
                            .map(|(n, _)| *n)
                            .collect()
                    })
                    .unwrap_or_default();
                for n in deleted {
                    self.remove_version(subject, n);
                }
            }
            _ => {}
        }
    }

    fn apply_schema(&mut self, subject: &str, version: i32, v: SchemaValue) {
        let Some(schema_type) = v.schema_type() else {
            tracing::warn!(subject, version, schema_type = ?v.schema_type, "_schemas: a schema of an unknown type is ignored");
            return;
        };
        if v.id < 0 || version < 1 {
            tracing::warn!(
                subject,
                version,
                id = v.id,
                "_schemas: a schema record without a valid id or version is ignored"
            );
            return;
        }
        match self.schemas.get(&v.id) {
            Some(existing)
                if existing.schema_type != schema_type
                    || existing.references != v.references
                    || (existing.text != v.schema
                        && existing.canonical
                            != self.canonical(schema_type, &v.schema, &v.references)) =>
            {
                // Two different schemas under one id: the first one keeps it.
                tracing::warn!(
                    subject,
                    version,
                    id = v.id,
                    "_schemas: a different schema under an id already taken is ignored"
                );
                return;
            }
            Some(_) => {}
            None => {
                let canonical = self.canonical(schema_type, &v.schema, &v.references);
                let content = Arc::new(Content {
                    schema_type,
                    text: v.schema.clone(),
                    references: v.references.clone(),
                    canonical,
                });
                self.by_identity.entry(content.identity()).or_insert(v.id);
                self.schemas.insert(v.id, content);
            }
        }
        self.max_id = self.max_id.max(v.id);
        let previous = self
            .subjects
            .entry(subject.to_string())
            .or_default()
            .insert(
                version,
                Version {
                    id: v.id,
                    deleted: v.deleted,
                },
            );
        if let Some(p) = previous.filter(|p| p.id != v.id) {
            self.release(p.id, subject, version);
        }
        self.holders
            .entry(v.id)
            .or_default()
            .insert((subject.to_string(), version));
    }

    fn remove_version(&mut self, subject: &str, version: i32) {
        let Some(versions) = self.subjects.get_mut(subject) else {
            return;
        };
        let Some(v) = versions.remove(&version) else {
            return;
        };
        if versions.is_empty() {
            self.subjects.remove(subject);
        }
        self.release(v.id, subject, version);
    }

    /// `(subject, version)` no longer holds `id`; an id nothing holds is
    /// gone (its number is never given again: `max_id` stays).
    fn release(&mut self, id: i32, subject: &str, version: i32) {
        let empty = match self.holders.get_mut(&id) {
            Some(h) => {
                h.remove(&(subject.to_string(), version));
                h.is_empty()
            }
            None => true,
        };
        if empty {
            self.holders.remove(&id);
            if let Some(c) = self.schemas.remove(&id) {
                if self.by_identity.get(&c.identity()) == Some(&id) {
                    self.by_identity.remove(&c.identity());
                }
            }
        }
    }

    /// The canonical form of a stored schema, or its trimmed text when it
    /// does not parse (a type or feature this build does not know: it is
    /// still served, and found again by its exact text).
    fn canonical(&self, schema_type: SchemaType, text: &str, references: &[Reference]) -> String {
        self.resolve(references)
            .ok()
            .and_then(|refs| ParsedSchema::parse(schema_type, text, &refs).ok())
            .map(|p| p.canonical().to_string())
            .unwrap_or_else(|| text.trim().to_string())
    }

    /// The id of a schema with this identity, if registered.
    pub fn id_of(&self, parsed: &ParsedSchema, references: &[Reference]) -> Option<i32> {
        self.by_identity
            .get(&(
                parsed.schema_type(),
                parsed.canonical().to_string(),
                references.to_vec(),
            ))
            .copied()
    }

    /// The schemas `references` name, with theirs, as the parser takes
    /// them.
    pub fn resolve(&self, references: &[Reference]) -> Result<Vec<Resolved>, RegistryError> {
        self.resolve_depth(references, 0)
    }

    fn resolve_depth(
        &self,
        references: &[Reference],
        depth: usize,
    ) -> Result<Vec<Resolved>, RegistryError> {
        if depth > MAX_REFERENCE_DEPTH {
            return Err(RegistryError::InvalidSchema(
                "references are nested too deeply".into(),
            ));
        }
        references
            .iter()
            .map(|r| {
                let content = self.reference_content(r).ok_or_else(|| {
                    RegistryError::InvalidSchema(format!(
                        "Invalid schema: no schema reference found for subject \"{}\" and version {}",
                        r.subject, r.version
                    ))
                })?;
                Ok(Resolved {
                    name: r.name.clone(),
                    schema_type: content.schema_type,
                    schema: content.text.clone(),
                    references: self.resolve_depth(&content.references, depth + 1)?,
                })
            })
            .collect()
    }

    fn reference_content(&self, r: &Reference) -> Option<&Arc<Content>> {
        let versions = self.subjects.get(&r.subject)?;
        let v = if r.version == -1 {
            versions.values().rev().find(|v| !v.deleted)?
        } else {
            versions.get(&r.version)?
        };
        self.schemas.get(&v.id)
    }

    /// The versions of `subject` (soft-deleted ones too when `deleted`).
    pub fn versions(&self, subject: &str, deleted: bool) -> Vec<(i32, Version)> {
        self.subjects
            .get(subject)
            .map(|vs| {
                vs.iter()
                    .filter(|(_, v)| deleted || !v.deleted)
                    .map(|(n, v)| (*n, *v))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `subject` has a live version (any version when `deleted`).
    pub fn has_subject(&self, subject: &str, deleted: bool) -> bool {
        self.subjects
            .get(subject)
            .is_some_and(|vs| vs.values().any(|v| deleted || !v.deleted))
    }

    /// The ids of the schemas that reference `subject` at `version`
    /// (through live versions, or any when `deleted`).
    pub fn referenced_by(&self, subject: &str, version: i32, deleted: bool) -> Vec<i32> {
        let mut ids: BTreeSet<i32> = BTreeSet::new();
        for vs in self.subjects.values() {
            for v in vs.values().filter(|v| deleted || !v.deleted) {
                if let Some(c) = self.schemas.get(&v.id) {
                    if c.references
                        .iter()
                        .any(|r| r.subject == subject && r.version == version)
                    {
                        ids.insert(v.id);
                    }
                }
            }
        }
        ids.into_iter().collect()
    }

    /// The (subject, version)s holding `id`.
    pub fn holders(&self, id: i32, deleted: bool) -> Vec<(String, i32)> {
        self.holders
            .get(&id)
            .map(|h| {
                h.iter()
                    .filter(|(s, n)| {
                        deleted
                            || self
                                .subjects
                                .get(s)
                                .and_then(|vs| vs.get(n))
                                .is_some_and(|v| !v.deleted)
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The compatibility level in force for `subject`.
    pub fn level(&self, subject: &str) -> Level {
        [Some(subject.to_string()), None]
            .iter()
            .filter_map(|k| self.configs.get(k))
            .find_map(|c| c.compatibility_level.as_deref()?.parse().ok())
            .unwrap_or_default()
    }

    /// Whether schemas registered under `subject` are normalized.
    pub fn normalize(&self, subject: &str) -> bool {
        [Some(subject.to_string()), None]
            .iter()
            .filter_map(|k| self.configs.get(k))
            .find_map(|c| c.normalize)
            .unwrap_or(false)
    }

    /// The mode in force for `subject`.
    pub fn mode(&self, subject: &str) -> Mode {
        self.modes
            .get(&Some(subject.to_string()))
            .or_else(|| self.modes.get(&None))
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::DeleteSubjectValue;

    fn schema(subject: &str, version: i32, id: i32, text: &str) -> (Key, Option<Value>) {
        (
            Key::Schema {
                subject: subject.into(),
                version,
            },
            Some(Value::Schema(SchemaValue {
                subject: subject.into(),
                version,
                id,
                schema_type: None,
                references: vec![],
                schema: text.into(),
                deleted: false,
            })),
        )
    }

    fn apply(s: &mut State, (k, v): (Key, Option<Value>)) {
        s.apply(&k, v);
    }

    #[test]
    fn an_id_taken_by_another_schema_is_not_given_to_a_second_one() {
        let mut s = State::default();
        let x = r#"{"type":"enum","name":"X","symbols":["A"]}"#;
        apply(&mut s, schema("a", 1, 1, x));
        apply(
            &mut s,
            schema("b", 1, 1, r#"{"type":"enum","name":"Y","symbols":["A"]}"#),
        );
        assert!(!s.subjects.contains_key("b"));
        assert_eq!(s.schemas[&1].text, x);
        // The same schema (in another spelling) may share it.
        apply(
            &mut s,
            schema(
                "c",
                1,
                1,
                r#"{ "symbols": ["A"], "name": "X", "type": "enum" }"#,
            ),
        );
        assert_eq!(
            s.versions("c", false),
            vec![(
                1,
                Version {
                    id: 1,
                    deleted: false
                }
            )]
        );
    }

    #[test]
    fn soft_deletes_tombstones_and_ids() {
        let mut s = State::default();
        apply(&mut s, schema("a", 1, 1, r#""string""#));
        apply(&mut s, schema("a", 2, 2, r#""int""#));
        s.apply(
            &Key::DeleteSubject {
                subject: "a".into(),
            },
            Some(Value::DeleteSubject(DeleteSubjectValue {
                subject: "a".into(),
                version: 2,
            })),
        );
        assert!(!s.has_subject("a", false));
        assert!(s.has_subject("a", true));
        assert!(
            s.schemas.contains_key(&2),
            "a soft-deleted schema keeps its id"
        );
        s.apply(
            &Key::Schema {
                subject: "a".into(),
                version: 2,
            },
            None,
        );
        assert!(!s.schemas.contains_key(&2));
        assert_eq!(s.max_id, 2, "a removed id is not given again");
        s.apply(
            &Key::Schema {
                subject: "a".into(),
                version: 1,
            },
            None,
        );
        assert!(s.subjects.is_empty());
    }

    #[test]
    fn levels_and_modes_parse_as_the_api_spells_them() {
        assert_eq!(
            "full_transitive".parse::<Level>().unwrap(),
            Level::FullTransitive
        );
        assert!("sideways".parse::<Level>().is_err());
        assert_eq!("import".parse::<Mode>().unwrap(), Mode::Import);
        assert!("WRITEONLY".parse::<Mode>().is_err());
    }
}
