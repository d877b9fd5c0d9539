//! The record formats of the three internal topics, as Apache Kafka
//! Connect writes them (keys are strings, values JSON without the schema
//! envelope), so a topic written by either reads the same in the other.
//!
//! Config topic (one partition, compacted):
//!
//! | key | value |
//! |-----|-------|
//! | `connector-<name>` | `{"properties":{…}}` |
//! | `task-<name>-<n>` | `{"properties":{…}}` |
//! | `commit-<name>` | `{"tasks":N}`: the task configs written before apply together |
//! | `target-state-<name>` | `{"state":S,"state.v2":S}`, S = `STARTED`, `PAUSED` or `STOPPED`, except that `state` says PAUSED for STOPPED (what Kafka 3.5+ writes: older workers know no STOPPED) |
//!
//! A null value deletes (a connector, its target state). Records with
//! other keys (`session-key`, `tasks-fencing-…`) are read past.
//!
//! Offsets topic (compacted, 25 partitions by default like Kafka; a record
//! goes to the partition murmur2 of its key picks, as Kafka's producer
//! does): key `["<connector>",{source partition}]`, value the offset
//! object; null deletes the offset.
//!
//! Status topic (compacted, 5 partitions by default like Kafka):
//! `status-connector-<name>` and `status-task-<name>-<n>` →
//! `{"state":…,"trace":…,"worker_id":…,"generation":N}`;
//! `status-topic-<topic>:connector-<name>` →
//! `{"topic":{"name":…,"connector":…,"task":N,"discoverTimestamp":ms}}`.

use std::collections::BTreeMap;

use runnel_connect_api::{Config, SourceOffset, SourcePartition};
use serde_json::{json, Value as Json};

/// What a connector should be doing (Kafka's `TargetState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Started,
    Paused,
    Stopped,
}

impl TargetState {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Started => "STARTED",
            TargetState::Paused => "PAUSED",
            TargetState::Stopped => "STOPPED",
        }
    }
}

/// A record of the config topic, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigRecord {
    Connector(String, Option<Config>),
    Task(String, i32, Option<Config>),
    Commit(String, i32),
    Target(String, Option<TargetState>),
    /// A key this runtime does not use.
    Other,
}

fn properties(value: &Json) -> Option<Config> {
    let props = value.get("properties")?.as_object()?;
    Some(
        props
            .iter()
            .filter_map(|(k, v)| match v {
                Json::String(s) => Some((k.clone(), s.clone())),
                Json::Null => None,
                other => Some((k.clone(), other.to_string())),
            })
            .collect(),
    )
}

fn properties_value(config: &Config) -> Vec<u8> {
    json!({ "properties": config }).to_string().into_bytes()
}

/// Splits `task-<name>-<n>` (a name may contain dashes: the number is
/// after the last one).
fn task_key(rest: &str) -> Option<(String, i32)> {
    let (name, n) = rest.rsplit_once('-')?;
    Some((name.to_string(), n.parse().ok()?))
}

impl ConfigRecord {
    /// Decodes a record; a value that does not parse is read as `Other`
    /// (logged by the caller), never an error that stops the reader.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> ConfigRecord {
        let Ok(key) = std::str::from_utf8(key) else {
            return ConfigRecord::Other;
        };
        let value: Option<Json> = match value {
            None => None,
            Some(v) => match serde_json::from_slice(v) {
                Ok(j) => Some(j),
                Err(_) => return ConfigRecord::Other,
            },
        };
        if let Some(name) = key.strip_prefix("connector-") {
            return ConfigRecord::Connector(name.to_string(), value.as_ref().and_then(properties));
        }
        if let Some(name) = key.strip_prefix("target-state-") {
            let state = value.as_ref().and_then(|v| {
                let s = v
                    .get("state.v2")
                    .and_then(Json::as_str)
                    .or_else(|| v.get("state").and_then(Json::as_str))?;
                match s {
                    "STARTED" => Some(TargetState::Started),
                    "PAUSED" => Some(TargetState::Paused),
                    "STOPPED" => Some(TargetState::Stopped),
                    _ => None,
                }
            });
            return ConfigRecord::Target(name.to_string(), state);
        }
        if let Some(rest) = key.strip_prefix("task-") {
            if let Some((name, n)) = task_key(rest) {
                return ConfigRecord::Task(name, n, value.as_ref().and_then(properties));
            }
            return ConfigRecord::Other;
        }
        if let Some(name) = key.strip_prefix("commit-") {
            let tasks = value
                .as_ref()
                .and_then(|v| v.get("tasks"))
                .and_then(Json::as_i64)
                .and_then(|n| i32::try_from(n).ok());
            return match tasks {
                Some(n) => ConfigRecord::Commit(name.to_string(), n),
                None => ConfigRecord::Other,
            };
        }
        ConfigRecord::Other
    }

    /// The record's key and value bytes.
    pub fn encode(&self) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        Some(match self {
            ConfigRecord::Connector(name, config) => (
                format!("connector-{name}").into_bytes(),
                config.as_ref().map(properties_value),
            ),
            ConfigRecord::Task(name, n, config) => (
                format!("task-{name}-{n}").into_bytes(),
                config.as_ref().map(properties_value),
            ),
            ConfigRecord::Commit(name, n) => (
                format!("commit-{name}").into_bytes(),
                Some(json!({ "tasks": n }).to_string().into_bytes()),
            ),
            ConfigRecord::Target(name, state) => (
                format!("target-state-{name}").into_bytes(),
                state.map(|s| {
                    // `state` is what workers from before STOPPED read.
                    let v1 = match s {
                        TargetState::Stopped => "PAUSED",
                        other => other.as_str(),
                    };
                    json!({"state": v1, "state.v2": s.as_str()})
                        .to_string()
                        .into_bytes()
                }),
            ),
            ConfigRecord::Other => return None,
        })
    }
}

/// What the config topic says, applied record by record.
#[derive(Debug, Clone, Default)]
pub struct ConfigState {
    pub connectors: BTreeMap<String, Config>,
    /// Committed task configs per connector.
    pub tasks: BTreeMap<String, Vec<Config>>,
    /// Task configs read but not yet committed.
    pending: BTreeMap<String, BTreeMap<i32, Config>>,
    pub targets: BTreeMap<String, TargetState>,
    /// The next offset of the topic to read.
    pub next_offset: i64,
}

impl ConfigState {
    /// Applies one record.
    pub fn apply(&mut self, record: ConfigRecord) {
        match record {
            ConfigRecord::Connector(name, Some(config)) => {
                self.connectors.insert(name.clone(), config);
                self.targets.entry(name).or_insert(TargetState::Started);
            }
            ConfigRecord::Connector(name, None) => {
                self.connectors.remove(&name);
                self.tasks.remove(&name);
                self.pending.remove(&name);
                self.targets.remove(&name);
            }
            ConfigRecord::Task(name, n, Some(config)) => {
                self.pending.entry(name).or_default().insert(n, config);
            }
            ConfigRecord::Task(name, n, None) => {
                if let Some(p) = self.pending.get_mut(&name) {
                    p.remove(&n);
                }
            }
            ConfigRecord::Commit(name, n) => {
                let pending = self.pending.remove(&name).unwrap_or_default();
                let previous = self.tasks.remove(&name).unwrap_or_default();
                // A task config not rewritten in this generation keeps its
                // previous value (compaction may have removed the rewrite's
                // duplicates); a commit of 0 tasks clears them.
                let tasks: Vec<Config> = (0..n.max(0))
                    .map(|i| {
                        pending
                            .get(&i)
                            .cloned()
                            .or_else(|| {
                                usize::try_from(i)
                                    .ok()
                                    .and_then(|i| previous.get(i).cloned())
                            })
                            .unwrap_or_default()
                    })
                    .collect();
                self.tasks.insert(name, tasks);
            }
            ConfigRecord::Target(name, Some(state)) => {
                self.targets.insert(name, state);
            }
            ConfigRecord::Target(name, None) => {
                self.targets.remove(&name);
            }
            ConfigRecord::Other => {}
        }
    }

    /// A connector's target state (STARTED unless one was written).
    pub fn target(&self, name: &str) -> TargetState {
        self.targets
            .get(name)
            .copied()
            .unwrap_or(TargetState::Started)
    }
}

/// The key of a source offset record.
pub fn offset_key(connector: &str, partition: &SourcePartition) -> Vec<u8> {
    Json::Array(vec![
        Json::String(connector.to_string()),
        Json::Object(partition.clone()),
    ])
    .to_string()
    .into_bytes()
}

/// Decodes an offset record: connector, partition and offset (`None`: deleted).
pub fn decode_offset(
    key: &[u8],
    value: Option<&[u8]>,
) -> Option<(String, SourcePartition, Option<SourceOffset>)> {
    let key: Json = serde_json::from_slice(key).ok()?;
    let arr = key.as_array()?;
    let connector = arr.first()?.as_str()?.to_string();
    let partition = arr.get(1)?.as_object()?.clone();
    let offset = match value {
        None => None,
        Some(v) => match serde_json::from_slice::<Json>(v).ok()? {
            Json::Object(m) => Some(m),
            Json::Null => None,
            _ => return None,
        },
    };
    Some((connector, partition, offset))
}

/// A connector's or task's state as the REST API and the status topic
/// name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Unassigned,
    Running,
    Paused,
    Stopped,
    Failed,
    Restarting,
}

impl State {
    /// Whether a task in this state has a thread running it somewhere
    /// (RUNNING, PAUSED, RESTARTING).
    pub fn is_active(self) -> bool {
        matches!(self, State::Running | State::Paused | State::Restarting)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Unassigned => "UNASSIGNED",
            State::Running => "RUNNING",
            State::Paused => "PAUSED",
            State::Stopped => "STOPPED",
            State::Failed => "FAILED",
            State::Restarting => "RESTARTING",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "UNASSIGNED" => State::Unassigned,
            "RUNNING" => State::Running,
            "PAUSED" => State::Paused,
            "STOPPED" => State::Stopped,
            "FAILED" => State::Failed,
            "RESTARTING" => State::Restarting,
            _ => return None,
        })
    }
}

/// A status of a connector or task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    pub trace: Option<String>,
    pub worker_id: String,
    pub generation: i32,
}

impl Status {
    /// The status record's value.
    pub fn encode(&self) -> Vec<u8> {
        json!({
            "state": self.state.as_str(),
            "trace": self.trace,
            "worker_id": self.worker_id,
            "generation": self.generation,
        })
        .to_string()
        .into_bytes()
    }

    /// Decodes a status record's value.
    pub fn decode(value: &[u8]) -> Option<Status> {
        let v: Json = serde_json::from_slice(value).ok()?;
        Some(Status {
            state: State::parse(v.get("state")?.as_str()?)?,
            trace: v.get("trace").and_then(Json::as_str).map(str::to_string),
            worker_id: v.get("worker_id")?.as_str()?.to_string(),
            generation: i32::try_from(v.get("generation")?.as_i64()?).ok()?,
        })
    }
}

/// The key of a connector's status record.
pub fn connector_status_key(name: &str) -> String {
    format!("status-connector-{name}")
}

/// The key of a task's status record.
pub fn task_status_key(name: &str, task: i32) -> String {
    format!("status-task-{name}-{task}")
}

/// The key of the record saying `connector` used `topic`.
pub fn topic_status_key(topic: &str, connector: &str) -> String {
    format!("status-topic-{topic}:connector-{connector}")
}

/// The value of a topic status record.
pub fn topic_status_value(topic: &str, connector: &str, task: i32, ts: i64) -> Vec<u8> {
    json!({"topic": {"name": topic, "connector": connector, "task": task, "discoverTimestamp": ts}})
        .to_string()
        .into_bytes()
}

/// Parses a topic status key: topic and connector.
pub fn decode_topic_status_key(key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix("status-topic-")?;
    let (topic, connector) = rest.split_once(":connector-")?;
    Some((topic.to_string(), connector.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn config_records_are_kafka_connects() {
        let c = ConfigRecord::Connector("my-conn".into(), Some(cfg(&[("tasks.max", "1")])));
        let (k, v) = c.encode().unwrap();
        assert_eq!(k, b"connector-my-conn");
        assert_eq!(
            serde_json::from_slice::<Json>(&v.unwrap()).unwrap(),
            json!({"properties": {"tasks.max": "1"}})
        );
        let (k, v) = ConfigRecord::Commit("my-conn".into(), 2).encode().unwrap();
        assert_eq!(
            (k.as_slice(), v.unwrap()),
            (&b"commit-my-conn"[..], br#"{"tasks":2}"#.to_vec())
        );
        let (k, v) = ConfigRecord::Target("a".into(), Some(TargetState::Stopped))
            .encode()
            .unwrap();
        assert_eq!(k, b"target-state-a");
        let v: Json = serde_json::from_slice(&v.unwrap()).unwrap();
        assert_eq!(v, json!({"state": "PAUSED", "state.v2": "STOPPED"}));
        // Read back, including what Kafka writes.
        assert_eq!(
            ConfigRecord::decode(
                b"target-state-a",
                Some(br#"{"state":"PAUSED","state.v2":"STOPPED"}"#)
            ),
            ConfigRecord::Target("a".into(), Some(TargetState::Stopped))
        );
        assert_eq!(
            ConfigRecord::decode(b"target-state-a", Some(br#"{"state":"PAUSED"}"#)),
            ConfigRecord::Target("a".into(), Some(TargetState::Paused))
        );
        assert_eq!(
            ConfigRecord::decode(b"task-my-conn-12", Some(br#"{"properties":{"x":"y"}}"#)),
            ConfigRecord::Task("my-conn".into(), 12, Some(cfg(&[("x", "y")])))
        );
        assert_eq!(
            ConfigRecord::decode(b"connector-x", None),
            ConfigRecord::Connector("x".into(), None)
        );
        assert_eq!(
            ConfigRecord::decode(b"session-key", Some(b"{}")),
            ConfigRecord::Other
        );
        assert_eq!(
            ConfigRecord::decode(b"connector-x", Some(b"not json")),
            ConfigRecord::Other
        );
    }

    #[test]
    fn task_configs_apply_only_at_their_commit() {
        let mut s = ConfigState::default();
        s.apply(ConfigRecord::Connector(
            "c".into(),
            Some(cfg(&[("a", "1")])),
        ));
        s.apply(ConfigRecord::Task("c".into(), 0, Some(cfg(&[("t", "0")]))));
        s.apply(ConfigRecord::Task("c".into(), 1, Some(cfg(&[("t", "1")]))));
        assert!(!s.tasks.contains_key("c"), "not before the commit");
        s.apply(ConfigRecord::Commit("c".into(), 2));
        assert_eq!(s.tasks["c"].len(), 2);
        assert_eq!(s.tasks["c"][1]["t"], "1");
        s.apply(ConfigRecord::Commit("c".into(), 0));
        assert!(s.tasks["c"].is_empty());
        assert_eq!(s.target("c"), TargetState::Started);
        s.apply(ConfigRecord::Connector("c".into(), None));
        assert!(s.connectors.is_empty() && s.tasks.is_empty());
    }

    #[test]
    fn offset_and_status_records() {
        let mut p = SourcePartition::new();
        p.insert("filename".into(), json!("/tmp/in.txt"));
        let k = offset_key("src", &p);
        assert_eq!(k, br#"["src",{"filename":"/tmp/in.txt"}]"#.to_vec());
        let (c, p2, o) = decode_offset(&k, Some(br#"{"position":42}"#)).unwrap();
        assert_eq!((c.as_str(), p2), ("src", p));
        assert_eq!(o.unwrap()["position"], json!(42));
        assert!(decode_offset(&k, None).unwrap().2.is_none());
        assert!(decode_offset(b"nope", None).is_none());

        let s = Status {
            state: State::Failed,
            trace: Some("boom".into()),
            worker_id: "127.0.0.1:8083".into(),
            generation: 3,
        };
        let v: Json = serde_json::from_slice(&s.encode()).unwrap();
        assert_eq!(
            v,
            json!({"state":"FAILED","trace":"boom","worker_id":"127.0.0.1:8083","generation":3})
        );
        assert_eq!(Status::decode(&s.encode()), Some(s));
        assert_eq!(task_status_key("a-b", 2), "status-task-a-b-2");
        assert_eq!(
            decode_topic_status_key(&topic_status_key("t.x", "c-1")),
            Some(("t.x".into(), "c-1".into()))
        );
    }
}
