//! Topics: metadata (`topic.json`), configs and their partitions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::config::{self, ConfigEntry};
use crate::fsutil;
use crate::{LogConfig, LogError, Partition};

pub(crate) const TOPIC_FILE: &str = "topic.json";

/// The persisted form of a topic (`<dir>/topics/<name>/topic.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TopicMeta {
    pub name: String,
    /// 32 lowercase hex digits.
    pub id: String,
    pub partitions: i32,
    /// Topic-level config overrides (normalized values).
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

struct TopicState {
    overrides: BTreeMap<String, String>,
    config: Arc<LogConfig>,
    partitions: Vec<Arc<Partition>>,
}

/// A topic: a fixed id, configs and N partitions. `Send + Sync`.
pub struct Topic {
    name: String,
    id: [u8; 16],
    dir: PathBuf,
    defaults: Arc<BTreeMap<String, String>>,
    state: RwLock<TopicState>,
    /// Serializes config changes and partition additions.
    admin: Mutex<()>,
}

pub(crate) fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A fresh random topic id (never all-zero, never the reserved id 1).
pub(crate) fn new_topic_id() -> [u8; 16] {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let c = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u64(c);
        h.write_u32(std::process::id());
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    if out.iter().all(|b| *b == 0) || out[..15].iter().all(|b| *b == 0) {
        out[0] = 1;
    }
    out
}

impl Topic {
    /// Creates the topic's directories and partitions and persists its
    /// metadata (written last: a directory without `topic.json` is an
    /// unfinished creation).
    pub(crate) fn create(
        dir: PathBuf,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        defaults: Arc<BTreeMap<String, String>>,
    ) -> Result<Topic, LogError> {
        let (cfg, overrides) = config::resolve(&overrides, &defaults)?;
        std::fs::create_dir_all(&dir)?;
        let id = new_topic_id();
        let meta = TopicMeta {
            name: name.to_string(),
            id: hex(&id),
            partitions,
            configs: overrides.clone(),
        };
        let cfg = Arc::new(cfg);
        let parts = (0..partitions)
            .map(|i| Partition::open(name, i, dir.join(i.to_string()), cfg.clone()).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        write_meta(&dir, &meta)?;
        if let Some(parent) = dir.parent() {
            fsutil::sync_dir(parent)?;
        }
        Ok(Topic {
            name: name.to_string(),
            id,
            dir,
            defaults,
            state: RwLock::new(TopicState {
                overrides,
                config: cfg,
                partitions: parts,
            }),
            admin: Mutex::new(()),
        })
    }

    /// Loads a topic from its directory, recovering every partition.
    pub(crate) fn open(
        dir: PathBuf,
        defaults: Arc<BTreeMap<String, String>>,
    ) -> Result<Topic, LogError> {
        let raw = std::fs::read(dir.join(TOPIC_FILE))?;
        let meta: TopicMeta = serde_json::from_slice(&raw).map_err(|e| {
            LogError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", dir.join(TOPIC_FILE).display()),
            ))
        })?;
        let id = unhex(&meta.id).ok_or_else(|| {
            LogError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: bad topic id", dir.join(TOPIC_FILE).display()),
            ))
        })?;
        if meta.partitions < 1 {
            return Err(LogError::InvalidPartitions(i64::from(meta.partitions)));
        }
        let (cfg, overrides) = config::resolve(&meta.configs, &defaults)?;
        let cfg = Arc::new(cfg);
        let parts = (0..meta.partitions)
            .map(|i| {
                Partition::open(&meta.name, i, dir.join(i.to_string()), cfg.clone()).map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Topic {
            name: meta.name,
            id,
            dir,
            defaults,
            state: RwLock::new(TopicState {
                overrides,
                config: cfg,
                partitions: parts,
            }),
            admin: Mutex::new(()),
        })
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, TopicState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    /// The topic id (Kafka topic UUID bytes).
    pub fn id(&self) -> [u8; 16] {
        self.id
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn partition_count(&self) -> i32 {
        self.read_state().partitions.len() as i32
    }
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let i = usize::try_from(index).ok()?;
        self.read_state().partitions.get(i).cloned()
    }
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.read_state().partitions.clone()
    }
    /// The effective config.
    pub fn config(&self) -> LogConfig {
        (*self.read_state().config).clone()
    }
    /// Topic-level overrides (normalized values).
    pub fn overrides(&self) -> BTreeMap<String, String> {
        self.read_state().overrides.clone()
    }

    /// Every supported key with its effective value and source.
    pub fn describe_configs(&self) -> Vec<ConfigEntry> {
        let st = self.read_state();
        let defaults = config::normalize(&self.defaults).unwrap_or_default();
        config::effective(&st.overrides, &defaults)
            .into_iter()
            .map(|(k, v, source)| ConfigEntry {
                name: k.to_string(),
                value: v,
                is_topic_override: source == config::ConfigSource::TopicOverride,
                is_sensitive: false,
                source,
            })
            .collect()
    }

    /// IncrementalAlterConfigs: `Some(v)` sets an override, `None` deletes
    /// it. All changes are validated first, then persisted and applied to
    /// every partition; on error nothing changes.
    pub fn alter_configs(&self, changes: &[(String, Option<String>)]) -> Result<(), LogError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let mut overrides = self.read_state().overrides.clone();
        for (k, v) in changes {
            if !config::supported_keys().any(|s| s == k) {
                return Err(LogError::UnknownConfig(k.clone()));
            }
            match v {
                Some(v) => overrides.insert(k.clone(), v.clone()),
                None => overrides.remove(k),
            };
        }
        let (cfg, overrides) = config::resolve(&overrides, &self.defaults)?;
        let cfg = Arc::new(cfg);
        let partitions = self.partition_count();
        write_meta(
            &self.dir,
            &TopicMeta {
                name: self.name.clone(),
                id: hex(&self.id),
                partitions,
                configs: overrides.clone(),
            },
        )?;
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.overrides = overrides;
        st.config = cfg.clone();
        for p in &st.partitions {
            p.set_config(cfg.clone());
        }
        Ok(())
    }

    /// Grows the topic to `new_total` partitions (CreatePartitions).
    pub fn add_partitions(&self, new_total: i32) -> Result<(), LogError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let (current, cfg, overrides) = {
            let st = self.read_state();
            (
                st.partitions.len() as i32,
                st.config.clone(),
                st.overrides.clone(),
            )
        };
        if new_total <= current {
            return Err(LogError::InvalidPartitions(i64::from(new_total)));
        }
        let new = (current..new_total)
            .map(|i| {
                Partition::open(&self.name, i, self.dir.join(i.to_string()), cfg.clone())
                    .map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        write_meta(
            &self.dir,
            &TopicMeta {
                name: self.name.clone(),
                id: hex(&self.id),
                partitions: new_total,
                configs: overrides,
            },
        )?;
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .partitions
            .extend(new);
        Ok(())
    }

    pub(crate) fn mark_deleted(&self) {
        for p in self.partitions() {
            p.mark_deleted();
        }
    }
}

fn write_meta(dir: &Path, meta: &TopicMeta) -> Result<(), LogError> {
    let json =
        serde_json::to_vec_pretty(meta).map_err(|e| LogError::Io(std::io::Error::other(e)))?;
    fsutil::write_atomic(&dir.join(TOPIC_FILE), &json, true)?;
    Ok(())
}

/// Kafka topic name rules: 1..=249 chars of `[a-zA-Z0-9._-]`, not `.`/`..`.
pub fn validate_topic_name(name: &str) -> Result<(), LogError> {
    let bad = |r: &str| Err(LogError::InvalidTopicName(name.to_string(), r.to_string()));
    if name.is_empty() {
        return bad("topic name is empty");
    }
    if name == "." || name == ".." {
        return bad("topic name cannot be \".\" or \"..\"");
    }
    if name.len() > 249 {
        return bad("topic name is longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("topic name may only contain ASCII alphanumerics, '.', '_' and '-'");
    }
    Ok(())
}
