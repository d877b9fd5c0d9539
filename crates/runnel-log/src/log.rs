//! The log of every topic under one data directory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::config;
use crate::fsutil;
use crate::topic::{self, Topic, TOPIC_FILE};
use crate::{LogConfig, LogError, Partition};

const TOPICS_DIR: &str = "topics";
const DELETED_DIR: &str = "deleted";

/// The log of every topic under one data directory. `Send + Sync`.
///
/// Dropping the `Log` flushes everything and records clean recovery points
/// (as [`Log::flush_all`] does), so the next open needs no rescan.
pub struct Log {
    dir: PathBuf,
    /// The data directory's lock file, locked while the log is open.
    _lock: fs::File,
    defaults: Arc<BTreeMap<String, String>>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serializes topic creation and deletion.
    admin: Mutex<()>,
}

/// The lock file of a data directory (Kafka's is `.lock` too).
pub const LOCK_FILE: &str = ".lock";

/// Takes the data directory's lock (an exclusive `flock` on
/// [`LOCK_FILE`], released by the OS when the process ends, a crash
/// included) and writes this process's id into the file, so a second
/// process on the same directory is refused with a message naming the
/// first. Two processes appending to one log overwrite each other's
/// acknowledged records.
fn lock_dir(dir: &Path) -> Result<fs::File, LogError> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK_FILE);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            file.seek(std::io::SeekFrom::Start(0))?;
            writeln!(file, "pid {}", std::process::id())?;
            Ok(file)
        }
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "a process that has not written its id yet".to_string(),
                h => h.to_string(),
            };
            Err(LogError::DirectoryLocked {
                dir: dir.display().to_string(),
                holder,
            })
        }
        Err(fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

impl Log {
    /// Opens (creating if needed) the data directory, finishing any
    /// interrupted topic deletion and recovering every partition.
    /// `defaults` are server-wide topic config defaults (Kafka topic-level
    /// keys such as `flush.messages`); they are validated.
    pub fn open(dir: &Path, defaults: BTreeMap<String, String>) -> Result<Log, LogError> {
        config::resolve(&BTreeMap::new(), &defaults)?;
        fs::create_dir_all(dir)?;
        let lock = lock_dir(dir)?;
        let defaults = Arc::new(defaults);
        let topics_dir = dir.join(TOPICS_DIR);
        let deleted_dir = dir.join(DELETED_DIR);
        fs::create_dir_all(&topics_dir)?;
        fs::create_dir_all(&deleted_dir)?;
        for e in fs::read_dir(&deleted_dir)? {
            let p = e?.path();
            tracing::info!(path = %p.display(), "completing topic deletion");
            fs::remove_dir_all(&p)?;
        }
        let mut topics = BTreeMap::new();
        for e in fs::read_dir(&topics_dir)? {
            let e = e?;
            let path = e.path();
            if !e.file_type()?.is_dir() {
                continue;
            }
            if !path.join(TOPIC_FILE).exists() {
                tracing::warn!(path = %path.display(), "removing unfinished topic creation");
                fs::remove_dir_all(&path)?;
                continue;
            }
            let t = Topic::open(path, defaults.clone())?;
            topics.insert(t.name().to_string(), Arc::new(t));
        }
        Ok(Log {
            dir: dir.to_path_buf(),
            _lock: lock,
            defaults,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
        })
    }

    /// Test support: leaves as a crash would — nothing flushed or closed,
    /// only the directory lock released (the OS does that for a dead
    /// process).
    #[cfg(test)]
    pub(crate) fn crash(self) {
        let _ = self._lock.unlock();
        std::mem::forget(self);
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Server-wide config defaults given to [`Log::open`].
    pub fn defaults(&self) -> &BTreeMap<String, String> {
        &self.defaults
    }

    /// Creates a topic. Errors: `InvalidTopicName`, `InvalidPartitions`
    /// (count < 1), `TopicExists`, `UnknownConfig`, `InvalidConfig`.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, LogError> {
        topic::validate_topic_name(name)?;
        if partitions < 1 {
            return Err(LogError::InvalidPartitions(i64::from(partitions)));
        }
        self.validate_configs(&configs)?;
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        if self.topic(name).is_some() {
            return Err(LogError::TopicExists(name.to_string()));
        }
        let dir = self.dir.join(TOPICS_DIR).join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        let t = match Topic::create(
            dir.clone(),
            name,
            partitions,
            configs,
            self.defaults.clone(),
        ) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), t.clone());
        Ok(t)
    }

    /// Deletes a topic: it disappears at once; its directory is renamed into
    /// `<dir>/deleted/` and removed (an unfinished removal is completed by
    /// the next open). Later appends through old handles fail.
    pub fn delete_topic(&self, name: &str) -> Result<(), LogError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let t = self
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or_else(|| LogError::UnknownTopic(name.to_string()))?;
        t.mark_deleted();
        let target = self
            .dir
            .join(DELETED_DIR)
            .join(format!("{name}.{}.deleted", topic::hex(&t.id())));
        fs::rename(t.dir(), &target)?;
        fsutil::sync_dir(&self.dir.join(TOPICS_DIR))?;
        fsutil::sync_dir(&self.dir.join(DELETED_DIR))?;
        fs::remove_dir_all(&target)?;
        Ok(())
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Parses topic config overrides over the server defaults.
    pub fn validate_configs(
        &self,
        configs: &BTreeMap<String, String>,
    ) -> Result<LogConfig, LogError> {
        config::resolve(configs, &self.defaults).map(|(c, _)| c)
    }

    /// Flushes every partition (data, indexes, directory) and records its
    /// recovery point; a restart after `flush_all` with no later appends
    /// rescans nothing. Continues past failures and returns the first one.
    pub fn flush_all(&self) -> Result<(), LogError> {
        let mut first = Ok(());
        for t in self.topics() {
            for p in t.partitions() {
                if let Err(e) = p.flush() {
                    if first.is_ok() {
                        first = Err(e);
                    }
                }
            }
        }
        first
    }

    /// Periodic work for every partition (call every few seconds): roll by
    /// age, retention, `flush.ms` flushing, recovery-point checkpoints.
    /// Continues past failures and returns the first one.
    pub fn maintenance(&self, now_ms: i64) -> Result<(), LogError> {
        let mut first = Ok(());
        for t in self.topics() {
            for p in t.partitions() {
                if let Err(e) = p.maintenance(now_ms) {
                    if first.is_ok() {
                        first = Err(e);
                    }
                }
            }
        }
        first
    }

    /// Compacts every partition of every topic whose `cleanup.policy`
    /// includes `compact` (see [`Partition::compact`]), each up to the
    /// offset `stable_offset` returns for it (the broker passes the last
    /// stable offset; the log itself knows nothing of transactions).
    /// Blocking; call it from the maintenance thread. Continues past
    /// failures and returns the first one.
    pub fn compact_all(
        &self,
        now_ms: i64,
        stable_offset: impl Fn(&Partition) -> i64,
    ) -> Result<(), LogError> {
        let mut first = Ok(());
        for t in self.topics() {
            if !t.config().is_compacted() {
                continue;
            }
            for p in t.partitions() {
                let upto = stable_offset(&p);
                if let Err(e) = p.compact(upto, now_ms) {
                    tracing::warn!(topic = %t.name(), partition = p.index(), error = %e, "compaction failed");
                    if first.is_ok() {
                        first = Err(e);
                    }
                }
            }
        }
        first
    }

    /// Flushes everything (see [`Log::flush_all`]); also done on drop.
    pub fn close(&self) -> Result<(), LogError> {
        self.flush_all()
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        if let Err(e) = self.flush_all() {
            tracing::warn!(error = %e, "flush on close failed");
        }
    }
}
