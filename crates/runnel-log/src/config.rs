//! Topic configuration: Kafka topic-level config keys, validation and the
//! parsed [`LogConfig`].

use std::collections::BTreeMap;

use crate::LogError;

/// Topic-level configuration, parsed from Kafka config keys.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes` (>= 14, <= i32::MAX).
    pub segment_bytes: u64,
    /// `segment.ms` (>= 1).
    pub segment_ms: i64,
    /// `retention.ms` (-1 = infinite).
    pub retention_ms: i64,
    /// `retention.bytes` (negative = infinite).
    pub retention_bytes: i64,
    /// `max.message.bytes`: largest accepted batch.
    pub max_message_bytes: usize,
    /// `flush.messages`: fsync once this many messages (offsets) are
    /// unflushed; 1 = fsync every append before acknowledging it.
    pub flush_messages: u64,
    /// `flush.ms`: fsync at least this often (checked by maintenance).
    pub flush_ms: i64,
    /// `index.interval.bytes`: bytes between sparse index entries.
    pub index_interval_bytes: u32,
    /// `cleanup.policy`: "delete" (retention), "compact" (compaction) or
    /// "compact,delete" (both).
    pub cleanup_policy: String,
    /// `message.timestamp.type`.
    pub message_timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms`: how far in the past a CreateTime
    /// record may be (the broker refuses older ones; unbounded by default).
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future (1 hour by
    /// default since Kafka 4.0).
    pub timestamp_after_max_ms: i64,
    /// `segment.index.bytes`: max size of a segment's offset index; the
    /// segment rolls when its index would overflow.
    pub segment_index_bytes: u32,
    /// `min.insync.replicas` (stored; the broker enforces it).
    pub min_insync_replicas: i32,
    /// `compression.type` (stored; no recompression is done).
    pub compression_type: String,
    /// `delete.retention.ms`: how long compaction keeps tombstones (from
    /// their batch's delete horizon) and transaction markers.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: segments holding records younger than
    /// this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a partition whose oldest uncompacted
    /// segment is older than this is compacted whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: compaction runs once the uncompacted
    /// bytes are at least this share of the compactable bytes.
    pub min_cleanable_dirty_ratio: f64,
    /// `confluent.key.schema.validation`: produced keys must carry the id
    /// of a schema registered for the topic's key subject (the broker
    /// checks it; the log only stores the setting).
    pub key_schema_validation: bool,
    /// `confluent.value.schema.validation`: the same for values.
    pub value_schema_validation: bool,
    /// `confluent.key.subject.name.strategy`: how the key subject is named.
    pub key_subject_name_strategy: String,
    /// `confluent.value.subject.name.strategy`.
    pub value_subject_name_strategy: String,
}

impl LogConfig {
    /// Whether `cleanup.policy` includes `compact`.
    pub fn is_compacted(&self) -> bool {
        self.cleanup_policy.contains("compact")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

impl Default for LogConfig {
    fn default() -> Self {
        let empty = BTreeMap::new();
        // The built-in defaults always parse.
        match resolve(&empty, &empty) {
            Ok((c, _)) => c,
            Err(_) => unreachable_defaults(),
        }
    }
}

#[cold]
fn unreachable_defaults() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 30,
        segment_ms: 604_800_000,
        retention_ms: 604_800_000,
        retention_bytes: -1,
        max_message_bytes: 1_048_588,
        flush_messages: i64::MAX as u64,
        flush_ms: i64::MAX,
        index_interval_bytes: 4096,
        cleanup_policy: "delete".into(),
        message_timestamp_type: TimestampType::CreateTime,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: 3_600_000,
        segment_index_bytes: 10 * 1024 * 1024,
        min_insync_replicas: 1,
        compression_type: "producer".into(),
        delete_retention_ms: 86_400_000,
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: i64::MAX,
        min_cleanable_dirty_ratio: 0.5,
        key_schema_validation: false,
        value_schema_validation: false,
        key_subject_name_strategy: TOPIC_NAME_STRATEGY.into(),
        value_subject_name_strategy: TOPIC_NAME_STRATEGY.into(),
    }
}

/// Confluent's default subject name strategy (`<topic>-key`, `<topic>-value`).
pub const TOPIC_NAME_STRATEGY: &str = "io.confluent.kafka.serializers.subject.TopicNameStrategy";

/// The subject name strategies the `confluent.*.subject.name.strategy`
/// configs accept (Confluent's class names).
const SUBJECT_NAME_STRATEGIES: &[&str] = &[
    TOPIC_NAME_STRATEGY,
    "io.confluent.kafka.serializers.subject.RecordNameStrategy",
    "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy",
];

/// Where an effective config value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    TopicOverride,
    /// From the server-wide defaults given to [`crate::Log::open`].
    ServerDefault,
    /// Built-in (Kafka) default.
    Default,
}

/// One entry of DescribeConfigs output.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    /// true when explicitly set on the topic, false when it is a default.
    pub is_topic_override: bool,
    /// Always false: no log config is sensitive. (Use `source` to tell
    /// server defaults from built-in defaults.)
    pub is_sensitive: bool,
    /// Where the value comes from.
    pub source: ConfigSource,
}

enum Kind {
    Long { min: i64, max: i64 },
    Int { min: i64, max: i64 },
    Ratio,
    Bool,
    OneOf(&'static [&'static str]),
    CleanupPolicy,
}

struct Def {
    key: &'static str,
    default: &'static str,
    kind: Kind,
}

const I32MAX: i64 = i32::MAX as i64;

/// Every supported key, its built-in default and its validation.
const DEFS: &[Def] = &[
    Def {
        key: "cleanup.policy",
        default: "delete",
        kind: Kind::CleanupPolicy,
    },
    Def {
        key: "compression.type",
        default: "producer",
        kind: Kind::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
    },
    Def {
        key: "confluent.key.schema.validation",
        default: "false",
        kind: Kind::Bool,
    },
    Def {
        key: "confluent.key.subject.name.strategy",
        default: TOPIC_NAME_STRATEGY,
        kind: Kind::OneOf(SUBJECT_NAME_STRATEGIES),
    },
    Def {
        key: "confluent.value.schema.validation",
        default: "false",
        kind: Kind::Bool,
    },
    Def {
        key: "confluent.value.subject.name.strategy",
        default: TOPIC_NAME_STRATEGY,
        kind: Kind::OneOf(SUBJECT_NAME_STRATEGIES),
    },
    Def {
        key: "delete.retention.ms",
        default: "86400000",
        kind: Kind::Long {
            min: 0,
            max: i64::MAX,
        },
    },
    Def {
        key: "file.delete.delay.ms",
        default: "60000",
        kind: Kind::Long {
            min: 0,
            max: i64::MAX,
        },
    },
    Def {
        key: "flush.messages",
        default: "9223372036854775807",
        kind: Kind::Long {
            min: 1,
            max: i64::MAX,
        },
    },
    Def {
        key: "flush.ms",
        default: "9223372036854775807",
        kind: Kind::Long {
            min: 0,
            max: i64::MAX,
        },
    },
    Def {
        key: "index.interval.bytes",
        default: "4096",
        kind: Kind::Int {
            min: 0,
            max: I32MAX,
        },
    },
    Def {
        key: "max.compaction.lag.ms",
        default: "9223372036854775807",
        kind: Kind::Long {
            min: 1,
            max: i64::MAX,
        },
    },
    Def {
        key: "max.message.bytes",
        default: "1048588",
        kind: Kind::Int {
            min: 0,
            max: I32MAX,
        },
    },
    Def {
        key: "message.timestamp.after.max.ms",
        default: "3600000",
        kind: Kind::Long {
            min: 0,
            max: i64::MAX,
        },
    },
    Def {
        key: "message.timestamp.before.max.ms",
        default: "9223372036854775807",
        kind: Kind::Long {
            min: 0,
            max: i64::MAX,
        },
    },
    Def {
        key: "message.timestamp.type",
        default: "CreateTime",
        kind: Kind::OneOf(&["CreateTime", "LogAppendTime"]),
    },
    Def {
        key: "min.cleanable.dirty.ratio",
        default: "0.5",
        kind: Kind::Ratio,
    },
    Def {
        key: "min.compaction.lag.ms",
        default: "0",
        kind: Kind::Long {
            min: 0,
            max: i64::MAX,
        },
    },
    Def {
        key: "min.insync.replicas",
        default: "1",
        kind: Kind::Int {
            min: 1,
            max: I32MAX,
        },
    },
    Def {
        key: "preallocate",
        default: "false",
        kind: Kind::Bool,
    },
    Def {
        key: "retention.bytes",
        default: "-1",
        kind: Kind::Long {
            min: i64::MIN,
            max: i64::MAX,
        },
    },
    Def {
        key: "retention.ms",
        default: "604800000",
        kind: Kind::Long {
            min: -1,
            max: i64::MAX,
        },
    },
    Def {
        key: "segment.bytes",
        default: "1073741824",
        kind: Kind::Int {
            min: 14,
            max: I32MAX,
        },
    },
    Def {
        key: "segment.index.bytes",
        default: "10485760",
        kind: Kind::Int {
            min: 4,
            max: I32MAX,
        },
    },
    Def {
        key: "segment.ms",
        default: "604800000",
        kind: Kind::Long {
            min: 1,
            max: i64::MAX,
        },
    },
    Def {
        key: "unclean.leader.election.enable",
        default: "false",
        kind: Kind::Bool,
    },
];

/// Names of every supported topic config key.
pub fn supported_keys() -> impl Iterator<Item = &'static str> {
    DEFS.iter().map(|d| d.key)
}

/// The built-in (Kafka) default of a supported topic config key.
pub fn builtin_default(key: &str) -> Option<&'static str> {
    DEFS.iter().find(|d| d.key == key).map(|d| d.default)
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> LogError {
    LogError::InvalidConfig {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn def(key: &str) -> Result<&'static Def, LogError> {
    DEFS.iter()
        .find(|d| d.key == key)
        .ok_or_else(|| LogError::UnknownConfig(key.to_string()))
}

/// Validates one value and returns its normalized string form.
fn check(d: &Def, raw: &str) -> Result<String, LogError> {
    let v = raw.trim();
    match &d.kind {
        Kind::Long { min, max } | Kind::Int { min, max } => {
            let n: i64 = v
                .parse()
                .map_err(|_| invalid(d.key, raw, "not an integer"))?;
            if n < *min || n > *max {
                return Err(invalid(d.key, raw, format!("must be in [{min}, {max}]")));
            }
            Ok(n.to_string())
        }
        Kind::Ratio => {
            let f: f64 = v.parse().map_err(|_| invalid(d.key, raw, "not a number"))?;
            if !(0.0..=1.0).contains(&f) {
                return Err(invalid(d.key, raw, "must be in [0, 1]"));
            }
            Ok(v.to_string())
        }
        Kind::Bool => match v.to_ascii_lowercase().as_str() {
            "true" => Ok("true".into()),
            "false" => Ok("false".into()),
            _ => Err(invalid(d.key, raw, "must be true or false")),
        },
        Kind::OneOf(opts) => opts
            .iter()
            .find(|o| o.eq_ignore_ascii_case(v))
            .map(|o| o.to_string())
            .ok_or_else(|| invalid(d.key, raw, format!("must be one of {}", opts.join(", ")))),
        Kind::CleanupPolicy => {
            let mut compact = false;
            let mut delete = false;
            for p in v.split(',').map(str::trim) {
                match p.to_ascii_lowercase().as_str() {
                    "compact" => compact = true,
                    "delete" => delete = true,
                    _ => {
                        return Err(invalid(
                            d.key,
                            raw,
                            "must be delete, compact or compact,delete",
                        ))
                    }
                }
            }
            Ok(match (compact, delete) {
                (true, true) => "compact,delete".into(),
                (true, false) => "compact".into(),
                _ => "delete".into(),
            })
        }
    }
}

/// Validates a map of raw config values (keys must be supported) and returns
/// their normalized forms.
pub(crate) fn normalize(
    raw: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, LogError> {
    raw.iter()
        .map(|(k, v)| Ok((k.clone(), check(def(k)?, v)?)))
        .collect()
}

/// Effective value and source of each supported key.
pub(crate) fn effective(
    overrides: &BTreeMap<String, String>,
    defaults: &BTreeMap<String, String>,
) -> Vec<(&'static str, String, ConfigSource)> {
    DEFS.iter()
        .map(|d| {
            if let Some(v) = overrides.get(d.key) {
                (d.key, v.clone(), ConfigSource::TopicOverride)
            } else if let Some(v) = defaults.get(d.key) {
                (d.key, v.clone(), ConfigSource::ServerDefault)
            } else {
                (d.key, d.default.to_string(), ConfigSource::Default)
            }
        })
        .collect()
}

/// Resolves overrides over server defaults over built-in defaults. Both maps
/// are validated; returns the config and the normalized overrides.
pub(crate) fn resolve(
    overrides: &BTreeMap<String, String>,
    defaults: &BTreeMap<String, String>,
) -> Result<(LogConfig, BTreeMap<String, String>), LogError> {
    let o = normalize(overrides)?;
    let d = normalize(defaults)?;
    let eff = effective(&o, &d);
    let get = |k: &str| -> &str {
        eff.iter()
            .find(|(key, _, _)| *key == k)
            .map_or("", |(_, v, _)| v.as_str())
    };
    let num = |k: &str| -> Result<i64, LogError> {
        get(k)
            .parse::<i64>()
            .map_err(|_| invalid(k, get(k), "not an integer"))
    };
    let cfg = LogConfig {
        segment_bytes: num("segment.bytes")? as u64,
        segment_ms: num("segment.ms")?,
        retention_ms: num("retention.ms")?,
        retention_bytes: num("retention.bytes")?,
        max_message_bytes: num("max.message.bytes")? as usize,
        flush_messages: num("flush.messages")? as u64,
        flush_ms: num("flush.ms")?,
        index_interval_bytes: num("index.interval.bytes")? as u32,
        cleanup_policy: get("cleanup.policy").to_string(),
        message_timestamp_type: if get("message.timestamp.type") == "LogAppendTime" {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        timestamp_before_max_ms: num("message.timestamp.before.max.ms")?,
        timestamp_after_max_ms: num("message.timestamp.after.max.ms")?,
        segment_index_bytes: num("segment.index.bytes")? as u32,
        min_insync_replicas: num("min.insync.replicas")? as i32,
        compression_type: get("compression.type").to_string(),
        delete_retention_ms: num("delete.retention.ms")?,
        min_compaction_lag_ms: num("min.compaction.lag.ms")?,
        max_compaction_lag_ms: num("max.compaction.lag.ms")?,
        min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio").parse::<f64>().map_err(
            |_| {
                invalid(
                    "min.cleanable.dirty.ratio",
                    get("min.cleanable.dirty.ratio"),
                    "not a number",
                )
            },
        )?,
        key_schema_validation: get("confluent.key.schema.validation") == "true",
        value_schema_validation: get("confluent.value.schema.validation") == "true",
        key_subject_name_strategy: get("confluent.key.subject.name.strategy").to_string(),
        value_subject_name_strategy: get("confluent.value.subject.name.strategy").to_string(),
    };
    Ok((cfg, o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = LogConfig::default();
        assert_eq!(c.segment_bytes, 1 << 30);
        assert_eq!(c.retention_ms, 604_800_000);
        assert_eq!(c.retention_bytes, -1);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.flush_messages, i64::MAX as u64);
        assert_eq!(c.index_interval_bytes, 4096);
        assert_eq!(c.message_timestamp_type, TimestampType::CreateTime);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(c.max_compaction_lag_ms, i64::MAX);
        assert!(!c.is_compacted());
    }

    #[test]
    fn precedence_and_errors() {
        let (c, o) = resolve(
            &m(&[
                ("retention.ms", "1000"),
                ("cleanup.policy", "delete, compact"),
            ]),
            &m(&[("retention.ms", "5"), ("flush.messages", "1")]),
        )
        .unwrap();
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.flush_messages, 1);
        assert_eq!(c.cleanup_policy, "compact,delete");
        assert_eq!(o["cleanup.policy"], "compact,delete");
        assert!(matches!(
            resolve(&m(&[("nope", "1")]), &BTreeMap::new()),
            Err(LogError::UnknownConfig(_))
        ));
        for (k, v) in [
            ("retention.ms", "-2"),
            ("segment.bytes", "13"),
            ("segment.bytes", "abc"),
            ("message.timestamp.type", "Wall"),
            ("cleanup.policy", "keep"),
            ("compression.type", "brotli"),
            ("flush.messages", "0"),
            ("min.insync.replicas", "0"),
        ] {
            assert!(
                matches!(
                    resolve(&m(&[(k, v)]), &BTreeMap::new()),
                    Err(LogError::InvalidConfig { .. })
                ),
                "{k}={v}"
            );
        }
        let (c, _) = resolve(
            &m(&[("message.timestamp.type", "LogAppendTime")]),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(c.message_timestamp_type, TimestampType::LogAppendTime);
    }
}
