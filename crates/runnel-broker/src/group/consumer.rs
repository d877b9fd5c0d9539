//! Consumer groups of the new protocol (KIP-848): members heartbeat with
//! `ConsumerGroupHeartbeat` and the broker computes the assignment.
//!
//! Epochs, as in Kafka:
//!
//! * the **group epoch** goes up whenever the group's inputs change: a
//!   member joins or leaves, a subscription changes, or the partition count
//!   of a subscribed topic changes;
//! * the **target assignment** is recomputed by the group's assignor
//!   (`uniform`, the default, or `range`) when the group epoch is ahead of
//!   it, and takes the group epoch as its own;
//! * each **member epoch** moves to the target epoch once the member may
//!   take its target: a member first gives up (revokes) what the target no
//!   longer gives it, keeping its epoch (state `UNREVOKED_PARTITIONS`)
//!   until a heartbeat reports it owns none of them; a partition still
//!   held or being revoked by another member is not handed out
//!   (`UNRELEASED_PARTITIONS`) until that member has let it go.
//!
//! A member that misses heartbeats for the session timeout, or does not
//! revoke within its rebalance timeout, is removed. Static members (an
//! instance id) that leave with epoch -2 keep their place and assignment
//! for the session timeout, and a new member with the same instance id
//! takes them over.
//!
//! Membership, subscriptions, the target assignment and each member's
//! current assignment and epoch are written to `__consumer_offsets` (the
//! record types Kafka uses for them, see [`records`]) by
//! [`ConsumerGroups::take_writes`] before the heartbeat response that
//! depends on them, and replayed at start ([`ConsumerGroups::restore`]):
//! after a broker restart a member heartbeats on with its epoch and keeps
//! its partitions; restored members get a fresh session timeout.
//!
//! Group state lives behind one std mutex, never held across `.await`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafka_protocol::ResponseError;
use tokio::time::Instant;
use tracing::info;

use super::configs::GroupConfigs;
use super::records::KeyValue;
pub use records::GroupImage;
use records::{Current, MemberImage, MemberMeta};

pub mod records;

/// A topic partition by name.
pub type Tp = (String, i32);

/// The server-side assignors Runnel has (`group.consumer.assignors` names
/// some of them; the first named is the default).
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// Settings (Kafka's `group.consumer.*` broker configs, with Kafka's
/// defaults).
#[derive(Debug, Clone)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms`
    pub session_timeout: Duration,
    /// `group.consumer.heartbeat.interval.ms`
    pub heartbeat_interval: Duration,
    /// `group.consumer.min.session.timeout.ms`
    pub min_session_timeout: Duration,
    /// `group.consumer.max.session.timeout.ms`
    pub max_session_timeout: Duration,
    /// `group.consumer.min.heartbeat.interval.ms`
    pub min_heartbeat_interval: Duration,
    /// `group.consumer.max.heartbeat.interval.ms`
    pub max_heartbeat_interval: Duration,
    /// `group.consumer.assignors`: short names of [`ASSIGNORS`]; the first
    /// is used when no member names one.
    pub assignors: Vec<String>,
    /// `group.consumer.max.size`: most members of one group.
    pub max_size: usize,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(5_000),
            min_session_timeout: Duration::from_millis(45_000),
            max_session_timeout: Duration::from_millis(60_000),
            min_heartbeat_interval: Duration::from_millis(5_000),
            max_heartbeat_interval: Duration::from_millis(15_000),
            assignors: ASSIGNORS.iter().map(|a| a.to_string()).collect(),
            max_size: i32::MAX as usize,
        }
    }
}

impl ConsumerGroupConfig {
    /// Checks the settings as Kafka checks its `group.consumer.*` configs.
    pub fn validate(&self) -> Result<(), String> {
        let ms = |d: Duration| d.as_millis();
        if self.min_session_timeout > self.max_session_timeout {
            return Err("group.consumer.min.session.timeout.ms must not be greater than group.consumer.max.session.timeout.ms".into());
        }
        if self.session_timeout < self.min_session_timeout
            || self.session_timeout > self.max_session_timeout
        {
            return Err(format!(
                "group.consumer.session.timeout.ms must be between {} and {} (group.consumer.min/max.session.timeout.ms)",
                ms(self.min_session_timeout),
                ms(self.max_session_timeout)
            ));
        }
        if self.min_heartbeat_interval > self.max_heartbeat_interval {
            return Err("group.consumer.min.heartbeat.interval.ms must not be greater than group.consumer.max.heartbeat.interval.ms".into());
        }
        if self.heartbeat_interval < self.min_heartbeat_interval
            || self.heartbeat_interval > self.max_heartbeat_interval
        {
            return Err(format!(
                "group.consumer.heartbeat.interval.ms must be between {} and {} (group.consumer.min/max.heartbeat.interval.ms)",
                ms(self.min_heartbeat_interval),
                ms(self.max_heartbeat_interval)
            ));
        }
        if self.heartbeat_interval >= self.session_timeout {
            return Err("group.consumer.heartbeat.interval.ms must be less than group.consumer.session.timeout.ms".into());
        }
        if self.assignors.is_empty() {
            return Err("group.consumer.assignors must name at least one assignor".into());
        }
        if self.max_size == 0 {
            return Err("group.consumer.max.size must be at least 1".into());
        }
        Ok(())
    }

    /// The default assignor: the first of `group.consumer.assignors`.
    pub fn default_assignor(&self) -> &str {
        self.assignors.first().map_or("uniform", String::as_str)
    }
}

/// Parses `group.consumer.assignors`: a comma-separated list of short
/// names (`uniform`, `range`) or Kafka's class names of those assignors.
pub fn parse_assignors(list: &str) -> Result<Vec<String>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            let short = match a {
                "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => "uniform",
                "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => "range",
                other => other,
            };
            if ASSIGNORS.contains(&short) {
                Ok(short.to_string())
            } else {
                Err(format!(
                    "unknown assignor {a} in group.consumer.assignors (Runnel has {})",
                    ASSIGNORS.join(", ")
                ))
            }
        })
        .collect()
}

/// Group configs (resource type GROUP) of consumer groups.
pub const GROUP_CONFIGS: &[&str] = &[
    "consumer.heartbeat.interval.ms",
    "consumer.session.timeout.ms",
];

/// Where a member stands in reconciling its assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    UnrevokedPartitions,
    UnreleasedPartitions,
}

#[derive(Debug, Clone)]
struct Member {
    id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    epoch: i32,
    previous_epoch: i32,
    state: MemberState,
    topics: Vec<String>,
    regex: Option<String>,
    assignor: Option<String>,
    rebalance_timeout: Duration,
    /// What it owns now (as far as the broker has told it).
    assigned: BTreeSet<Tp>,
    /// What it must give up before its epoch moves on.
    revoking: BTreeSet<Tp>,
    last_seen: Instant,
    revoking_since: Option<Instant>,
    /// The (epoch, assignment) last sent to it.
    sent: Option<(i32, BTreeSet<Tp>)>,
    /// Left with epoch -2 (static member, may come back).
    left_static: bool,
}

#[derive(Debug, Default)]
struct Group {
    epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    target: HashMap<String, BTreeSet<Tp>>,
    /// Partition counts of the subscribed topics the target was built on.
    topic_counts: BTreeMap<String, i32>,
    assignor: String,
    /// What `__consumer_offsets` holds of it (`None`: nothing yet).
    persisted: Option<GroupImage>,
    /// Touched since it was last compared with `persisted`.
    dirty: bool,
}

impl MemberState {
    fn code(self) -> u8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
        }
    }

    fn from_code(code: u8) -> MemberState {
        match code {
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Stable,
        }
    }
}

impl Group {
    /// The group as it is written to `__consumer_offsets`.
    fn image(&self) -> GroupImage {
        GroupImage {
            epoch: self.epoch,
            topic_counts: self.topic_counts.clone(),
            assignment_epoch: self.assignment_epoch,
            members: self
                .members
                .values()
                .map(|m| {
                    let img = MemberImage {
                        meta: MemberMeta {
                            instance_id: m.instance_id.clone(),
                            rack_id: m.rack_id.clone(),
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            topics: m.topics.clone(),
                            regex: m.regex.clone(),
                            assignor: m.assignor.clone(),
                            rebalance_timeout_ms: i32::try_from(m.rebalance_timeout.as_millis())
                                .unwrap_or(i32::MAX),
                        },
                        target: self.target.get(&m.id).cloned().unwrap_or_default(),
                        current: Current {
                            epoch: m.epoch,
                            previous_epoch: m.previous_epoch,
                            state: m.state.code(),
                            left_static: m.left_static,
                            assigned: m.assigned.clone(),
                            revoking: m.revoking.clone(),
                        },
                    };
                    (m.id.clone(), img)
                })
                .collect(),
        }
    }

    /// A group as replayed from its image, its members' sessions starting
    /// at `now`.
    fn restored(img: GroupImage, now: Instant) -> Group {
        let mut g = Group {
            epoch: img.epoch,
            assignment_epoch: img.assignment_epoch,
            topic_counts: img.topic_counts.clone(),
            ..Group::default()
        };
        for (id, m) in &img.members {
            let state = MemberState::from_code(m.current.state);
            g.target.insert(id.clone(), m.target.clone());
            g.members.insert(
                id.clone(),
                Member {
                    id: id.clone(),
                    instance_id: m.meta.instance_id.clone(),
                    rack_id: m.meta.rack_id.clone(),
                    client_id: m.meta.client_id.clone(),
                    client_host: m.meta.client_host.clone(),
                    epoch: m.current.epoch,
                    previous_epoch: m.current.previous_epoch,
                    state,
                    topics: m.meta.topics.clone(),
                    regex: m.meta.regex.clone(),
                    assignor: m.meta.assignor.clone(),
                    rebalance_timeout: Duration::from_millis(
                        u64::try_from(m.meta.rebalance_timeout_ms).unwrap_or(300_000),
                    ),
                    assigned: m.current.assigned.clone(),
                    revoking: m.current.revoking.clone(),
                    last_seen: now,
                    revoking_since: (state == MemberState::UnrevokedPartitions).then_some(now),
                    sent: None,
                    left_static: m.current.left_static,
                },
            );
        }
        g.assignor = g
            .members
            .values()
            .find_map(|m| m.assignor.clone())
            .unwrap_or_default();
        g.persisted = Some(img);
        g
    }
}

/// The topics a broker has: name → partition count.
pub type TopicView = BTreeMap<String, i32>;

/// One ConsumerGroupHeartbeat, decoded.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub topics: Option<Vec<String>>,
    pub regex: Option<String>,
    pub assignor: Option<String>,
    /// The partitions the member owns (`None`: unchanged since the last
    /// heartbeat).
    pub owned: Option<BTreeSet<Tp>>,
    pub client_id: String,
    pub client_host: String,
}

/// What a heartbeat is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it must hear it.
    pub assignment: Option<BTreeSet<Tp>>,
}

/// A refused heartbeat: the error and its message.
pub type Refusal = (ResponseError, String);

/// A member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub topics: Vec<String>,
    pub regex: Option<String>,
    pub assigned: BTreeSet<Tp>,
    pub target: BTreeSet<Tp>,
}

/// A group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub state: &'static str,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<MemberView>,
}

/// The consumer groups of one broker.
pub struct ConsumerGroups {
    config: ConsumerGroupConfig,
    /// Every group's configs (`consumer.*` are read here).
    configs: Arc<GroupConfigs>,
    groups: Mutex<HashMap<String, Group>>,
    /// Deleted groups whose tombstones are not written yet, with what had
    /// been written of them.
    deleted: Mutex<Vec<(String, GroupImage)>>,
    /// Orders writers of group records: each writes the state as of its
    /// own turn (see [`ConsumerGroups::take_writes`]).
    pub(crate) flushing: Mutex<()>,
}

/// A refusal: the error and its message.
pub(super) fn err(code: ResponseError, message: impl Into<String>) -> Refusal {
    (code, message.into())
}

impl ConsumerGroups {
    pub fn new(config: ConsumerGroupConfig) -> ConsumerGroups {
        ConsumerGroups::with_configs(config, Arc::default())
    }

    /// Consumer groups whose group configs live in `configs`.
    pub fn with_configs(config: ConsumerGroupConfig, configs: Arc<GroupConfigs>) -> ConsumerGroups {
        ConsumerGroups {
            config,
            configs,
            groups: Mutex::new(HashMap::new()),
            deleted: Mutex::new(Vec::new()),
            flushing: Mutex::new(()),
        }
    }

    /// The group's session timeout and heartbeat interval: its
    /// `consumer.*` group configs, else the broker's.
    fn timeouts(&self, group_id: &str) -> (Duration, Duration) {
        let get = |key: &str, default: Duration| {
            self.configs
                .value(group_id, key)
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(default, Duration::from_millis)
        };
        (
            get("consumer.session.timeout.ms", self.config.session_timeout),
            get(
                "consumer.heartbeat.interval.ms",
                self.config.heartbeat_interval,
            ),
        )
    }

    /// The consumer group configs of `group_id`: (name, value, set for the
    /// group).
    pub fn group_configs(&self, group_id: &str) -> Vec<(String, String, bool)> {
        let (session, heartbeat) = self.timeouts(group_id);
        let set = |k: &str| self.configs.value(group_id, k).is_some();
        vec![
            (
                "consumer.heartbeat.interval.ms".to_string(),
                heartbeat.as_millis().to_string(),
                set("consumer.heartbeat.interval.ms"),
            ),
            (
                "consumer.session.timeout.ms".to_string(),
                session.as_millis().to_string(),
                set("consumer.session.timeout.ms"),
            ),
        ]
    }

    /// Checks new `consumer.*` group configs of a group (`None`: deleted)
    /// against the broker's bounds, as Kafka does, and the session timeout
    /// against the heartbeat interval they leave.
    pub fn check_group_configs(
        &self,
        group_id: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<(), String> {
        let (mut session, mut heartbeat) = self.timeouts(group_id);
        for (k, v) in changes {
            let default = match k.as_str() {
                "consumer.session.timeout.ms" => self.config.session_timeout,
                "consumer.heartbeat.interval.ms" => self.config.heartbeat_interval,
                _ => return Err(format!("Unknown group config name: {k}")),
            };
            let value = match v {
                None => default,
                Some(v) => match v.parse::<u64>() {
                    Ok(ms) if ms >= 1 && ms <= i32::MAX as u64 => Duration::from_millis(ms),
                    _ => return Err(format!("Invalid value {v} for configuration {k}")),
                },
            };
            // Bounds: group.consumer.{min,max}.{session.timeout,heartbeat.interval}.ms.
            let (min, max) = if k == "consumer.session.timeout.ms" {
                session = value;
                (
                    self.config.min_session_timeout,
                    self.config.max_session_timeout,
                )
            } else {
                heartbeat = value;
                (
                    self.config.min_heartbeat_interval,
                    self.config.max_heartbeat_interval,
                )
            };
            if value < min || value > max {
                // Kafka 4.4's words.
                return Err(format!(
                    "{k} must be in the range {} to {} inclusive.",
                    min.as_millis(),
                    max.as_millis()
                ));
            }
        }
        if session <= heartbeat {
            return Err(
                "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms"
                    .to_string(),
            );
        }
        Ok(())
    }

    /// Every group's configs.
    pub fn configs(&self) -> &GroupConfigs {
        &self.configs
    }

    /// Takes over the groups replayed from `__consumer_offsets`.
    pub fn restore(&self, images: HashMap<String, GroupImage>, now: Instant) {
        let mut groups = self.lock();
        for (id, img) in images {
            info!(group = %id, members = img.members.len(), epoch = img.epoch, "restored a consumer group");
            groups.insert(id, Group::restored(img, now));
        }
    }

    /// The records that bring `__consumer_offsets` up to the groups' state,
    /// by group; what they describe counts as written from now on. The
    /// caller holds [`ConsumerGroups::flushing`] until they are appended,
    /// so records reach the log in the order they were taken.
    pub fn take_writes(&self) -> Vec<(String, Vec<KeyValue>)> {
        let mut out = Vec::new();
        let deleted = std::mem::take(&mut *self.deleted.lock().unwrap_or_else(|e| e.into_inner()));
        for (id, img) in deleted {
            out.push((id.clone(), records::diff(&id, Some(&img), None)));
        }
        let mut groups = self.lock();
        for (id, g) in groups.iter_mut().filter(|(_, g)| g.dirty) {
            g.dirty = false;
            let now = g.image();
            let recs = records::diff(id, g.persisted.as_ref(), Some(&now));
            if !recs.is_empty() {
                out.push((id.clone(), recs));
            }
            g.persisted = Some(now);
        }
        out
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `group_id` is a consumer group (with or without members).
    pub fn exists(&self, group_id: &str) -> bool {
        self.lock().contains_key(group_id)
    }

    /// Whether the group has members.
    pub fn has_members(&self, group_id: &str) -> bool {
        self.lock()
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// ConsumerGroupHeartbeat. `view` holds every topic of the broker.
    pub fn heartbeat(
        &self,
        now: Instant,
        req: Heartbeat,
        view: &TopicView,
    ) -> Result<HeartbeatReply, Refusal> {
        if req.group_id.is_empty() {
            return Err(err(ResponseError::InvalidGroupId, "empty group id"));
        }
        if let Some(a) = &req.assignor {
            if !self.config.assignors.contains(a) {
                return Err(err(
                    ResponseError::UnsupportedAssignor,
                    format!(
                        "assignor {a} is not supported; use one of {:?}",
                        self.config.assignors
                    ),
                ));
            }
        }
        if let Some(re) = &req.regex {
            if compile(re).is_none() {
                return Err(err(
                    ResponseError::InvalidRegularExpression,
                    format!("invalid subscription regex {re}"),
                ));
            }
        }
        let mut groups = self.lock();
        if req.member_epoch != 0 && !groups.contains_key(&req.group_id) {
            // Only a join creates a group.
            return Err(err(
                ResponseError::UnknownMemberId,
                format!("consumer group {} not found", req.group_id),
            ));
        }
        let group = groups.entry(req.group_id.clone()).or_default();
        group.dirty = true;
        let member_id = match req.member_epoch {
            0 => join(group, now, &req, self.config.max_size)?,
            -1 | -2 => {
                let Some(m) = group.members.get_mut(&req.member_id) else {
                    return Err(err(
                        ResponseError::UnknownMemberId,
                        format!("member {} is not in the group", req.member_id),
                    ));
                };
                if req.member_epoch == -2 && m.instance_id.is_some() {
                    // A static member leaving for now: it keeps its place.
                    m.left_static = true;
                    m.last_seen = now;
                } else {
                    remove(group, &req.member_id, "left the group");
                }
                return Ok(HeartbeatReply {
                    member_id: req.member_id,
                    member_epoch: req.member_epoch,
                    heartbeat_interval_ms: 0,
                    assignment: None,
                });
            }
            epoch => {
                let Some(m) = group.members.get_mut(&req.member_id) else {
                    return Err(err(
                        ResponseError::UnknownMemberId,
                        format!("member {} is not in the group", req.member_id),
                    ));
                };
                check_epoch(m, epoch, req.owned.as_ref())?;
                m.last_seen = now;
                if update(group, &req.member_id, &req) {
                    group.epoch += 1;
                }
                req.member_id.clone()
            }
        };
        maybe_bump_for_metadata(group, view);
        if group.epoch > group.assignment_epoch {
            compute_target(group, view, self.config.default_assignor());
        }
        reconcile(group, &member_id, req.owned.as_ref(), now);
        let interval = self.timeouts(&req.group_id).1;
        let interval = i32::try_from(interval.as_millis()).unwrap_or(i32::MAX);
        let Some(m) = group.members.get_mut(&member_id) else {
            return Err(err(ResponseError::UnknownMemberId, "member vanished"));
        };
        let current = (m.epoch, m.assigned.clone());
        let send = req.member_epoch == 0
            || m.sent.as_ref() != Some(&current)
            || req.owned.as_ref().is_some_and(|o| *o != m.assigned);
        m.sent = Some(current);
        Ok(HeartbeatReply {
            member_id,
            member_epoch: m.epoch,
            heartbeat_interval_ms: interval,
            assignment: send.then(|| m.assigned.clone()),
        })
    }

    /// Session and rebalance timeouts.
    pub fn tick(&self, now: Instant) {
        let mut groups = self.lock();
        for (id, group) in groups.iter_mut() {
            let session = self.timeouts(id).0;
            let expired: Vec<(String, &'static str)> = group
                .members
                .values()
                .filter_map(|m| {
                    if m.last_seen + session <= now {
                        Some((m.id.clone(), "session timeout expired"))
                    } else if m
                        .revoking_since
                        .is_some_and(|since| since + m.rebalance_timeout <= now)
                    {
                        Some((m.id.clone(), "did not revoke within its rebalance timeout"))
                    } else {
                        None
                    }
                })
                .collect();
            for (member, why) in expired {
                group.dirty = true;
                info!(group = %id, %member, why, "consumer group member removed");
                remove(group, &member, why);
            }
        }
    }

    /// Checks an OffsetCommit of a member (`epoch` -1 with no member id:
    /// a commit from outside the group, allowed only while it is empty).
    pub fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) -> Result<(), ResponseError> {
        let groups = self.lock();
        let Some(group) = groups.get(group_id) else {
            return Ok(());
        };
        if epoch < 0 && member_id.is_empty() {
            return if group.members.is_empty() {
                Ok(())
            } else {
                Err(ResponseError::UnknownMemberId)
            };
        }
        let m = group
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if epoch > m.epoch {
            Err(ResponseError::FencedMemberEpoch)
        } else if epoch < m.epoch {
            Err(ResponseError::StaleMemberEpoch)
        } else {
            Ok(())
        }
    }

    /// Checks an OffsetFetch that names a member (epoch -1: an admin fetch).
    pub fn check_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        epoch: i32,
    ) -> Result<(), ResponseError> {
        let Some(member_id) = member_id else {
            return Ok(());
        };
        if epoch < 0 {
            return Ok(());
        }
        let groups = self.lock();
        let Some(group) = groups.get(group_id) else {
            // Not a consumer-protocol group: classic rules (none) apply.
            return Ok(());
        };
        let m = group
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if epoch != m.epoch {
            Err(ResponseError::StaleMemberEpoch)
        } else {
            Ok(())
        }
    }

    /// Every consumer group: (id, state name).
    pub fn list(&self) -> Vec<(String, &'static str)> {
        self.lock()
            .iter()
            .map(|(id, g)| (id.clone(), state_name(g)))
            .collect()
    }

    /// ConsumerGroupDescribe for one group.
    pub fn describe(&self, group_id: &str) -> Option<GroupView> {
        let groups = self.lock();
        let g = groups.get(group_id)?;
        Some(GroupView {
            state: state_name(g),
            epoch: g.epoch,
            assignment_epoch: g.assignment_epoch,
            assignor: if g.assignor.is_empty() {
                self.config.default_assignor().to_string()
            } else {
                g.assignor.clone()
            },
            members: g
                .members
                .values()
                .map(|m| MemberView {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    topics: m.topics.clone(),
                    regex: m.regex.clone(),
                    assigned: m.assigned.clone(),
                    target: g.target.get(&m.id).cloned().unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// Forgets a group without members (DeleteGroups); NON_EMPTY_GROUP
    /// while it has some.
    pub fn remove_if_empty(&self, group_id: &str) -> Result<(), ResponseError> {
        let mut groups = self.lock();
        match groups.get(group_id) {
            Some(g) if !g.members.is_empty() => Err(ResponseError::NonEmptyGroup),
            _ => {
                if let Some(img) = groups.remove(group_id).and_then(|g| g.persisted) {
                    self.deleted
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((group_id.to_string(), img));
                }
                Ok(())
            }
        }
    }
}

/// Kafka's consumer group state names.
fn state_name(g: &Group) -> &'static str {
    if g.members.is_empty() {
        "Empty"
    } else if g.epoch > g.assignment_epoch {
        "Assigning"
    } else if g
        .members
        .values()
        .any(|m| m.epoch != g.assignment_epoch || m.state != MemberState::Stable)
    {
        "Reconciling"
    } else {
        "Stable"
    }
}

fn compile(re: &str) -> Option<regex::Regex> {
    regex::Regex::new(&format!("^(?:{re})$")).ok()
}

/// A member id for a client that did not bring one (ConsumerGroupHeartbeat
/// v0): unique per broker run (start time, then a counter).
fn new_member_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let started = crate::now_ms() as u64;
    uuid::Uuid::from_u64_pair(started, n).to_string()
}

/// A member joins (epoch 0): a new member, a rejoin, or a static member
/// coming back. Returns its member id.
fn join(
    group: &mut Group,
    now: Instant,
    req: &Heartbeat,
    max_size: usize,
) -> Result<String, Refusal> {
    let member_id = if req.member_id.is_empty() {
        new_member_id()
    } else {
        req.member_id.clone()
    };
    if let Some(instance) = &req.instance_id {
        let previous = group
            .members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance))
            .map(|m| (m.id.clone(), m.left_static));
        match previous {
            Some((old, true)) => {
                // Takes over the static member's place and assignment.
                if let Some(mut m) = group.members.remove(&old) {
                    m.id = member_id.clone();
                    m.left_static = false;
                    m.last_seen = now;
                    m.sent = None;
                    if let Some(t) = group.target.remove(&old) {
                        group.target.insert(member_id.clone(), t);
                    }
                    group.members.insert(member_id.clone(), m);
                    if update(group, &member_id, req) {
                        group.epoch += 1;
                    }
                    return Ok(member_id);
                }
            }
            Some((old, false)) if old != member_id => {
                return Err(err(
                    ResponseError::UnreleasedInstanceId,
                    format!("instance {instance} is still used by member {old}"),
                ));
            }
            _ => {}
        }
    }
    if group.members.contains_key(&member_id) {
        // A member that lost its epoch rejoins from scratch.
        remove(group, &member_id, "rejoined");
    }
    if group.members.len() >= max_size {
        return Err(err(
            ResponseError::GroupMaxSizeReached,
            format!("the group has reached its maximum size of {max_size} members"),
        ));
    }
    group.members.insert(
        member_id.clone(),
        Member {
            id: member_id.clone(),
            instance_id: req.instance_id.clone(),
            rack_id: req.rack_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            epoch: 0,
            previous_epoch: -1,
            state: MemberState::Stable,
            topics: Vec::new(),
            regex: None,
            assignor: None,
            rebalance_timeout: Duration::from_millis(300_000),
            assigned: BTreeSet::new(),
            revoking: BTreeSet::new(),
            last_seen: now,
            revoking_since: None,
            sent: None,
            left_static: false,
        },
    );
    update(group, &member_id, req);
    group.epoch += 1;
    Ok(member_id)
}

/// Applies what a heartbeat says of member `id`'s subscription; true when
/// it changed (the group epoch must go up).
fn update(group: &mut Group, id: &str, req: &Heartbeat) -> bool {
    let Some(m) = group.members.get_mut(id) else {
        return false;
    };
    let mut changed = false;
    if let Some(topics) = &req.topics {
        let mut t = topics.clone();
        t.sort();
        t.dedup();
        if t != m.topics {
            m.topics = t;
            changed = true;
        }
    }
    if req.regex.is_some() && req.regex != m.regex {
        m.regex = req.regex.clone().filter(|r| !r.is_empty());
        changed = true;
    }
    if req.assignor.is_some() && req.assignor != m.assignor {
        m.assignor = req.assignor.clone();
        changed = true;
    }
    if req.rebalance_timeout_ms > 0 {
        m.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms as u64);
    }
    if req.rack_id.is_some() {
        m.rack_id = req.rack_id.clone();
    }
    if !req.client_id.is_empty() {
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
    }
    changed
}

/// Kafka's epoch check: a newer epoch than the member's is fenced; an
/// older one is accepted only if it is the previous epoch and the member
/// owns nothing it was not given (its last heartbeat's answer was lost).
fn check_epoch(m: &Member, epoch: i32, owned: Option<&BTreeSet<Tp>>) -> Result<(), Refusal> {
    if epoch > m.epoch {
        return Err(err(
            ResponseError::FencedMemberEpoch,
            format!("epoch {epoch} is newer than the member's {}", m.epoch),
        ));
    }
    if epoch < m.epoch {
        let owns_only_given = owned.is_none_or(|o| o.is_subset(&m.assigned));
        if epoch != m.previous_epoch || !owns_only_given {
            return Err(err(
                ResponseError::FencedMemberEpoch,
                format!("epoch {epoch} is older than the member's {}", m.epoch),
            ));
        }
    }
    Ok(())
}

/// The topics a member subscribes to, regex included, as they exist now.
/// The regex must match a whole topic name and is tried on every topic,
/// internal ones (`__consumer_offsets`, ...) too, as Kafka's coordinator
/// resolves it; clients that want internal topics left out say so in the
/// regex.
fn subscribed(m: &Member, view: &TopicView) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = m
        .topics
        .iter()
        .filter(|t| view.contains_key(*t))
        .cloned()
        .collect();
    if let Some(re) = m.regex.as_deref().and_then(compile) {
        out.extend(view.keys().filter(|t| re.is_match(t)).cloned());
    }
    out
}

/// Bumps the group epoch when a subscribed topic appeared, vanished or
/// changed its partition count since the target was computed.
fn maybe_bump_for_metadata(group: &mut Group, view: &TopicView) {
    let counts = subscribed_counts(group, view);
    if counts != group.topic_counts {
        group.topic_counts = counts;
        if group.epoch == group.assignment_epoch {
            group.epoch += 1;
        }
    }
}

fn subscribed_counts(group: &Group, view: &TopicView) -> BTreeMap<String, i32> {
    group
        .members
        .values()
        .flat_map(|m| subscribed(m, view))
        .filter_map(|t| view.get(&t).map(|n| (t, *n)))
        .collect()
}

/// Recomputes the target assignment at the group epoch.
fn compute_target(group: &mut Group, view: &TopicView, default_assignor: &str) {
    let assignor = group
        .members
        .values()
        .find_map(|m| m.assignor.clone())
        .unwrap_or_else(|| default_assignor.to_string());
    let subs: BTreeMap<String, BTreeSet<String>> = group
        .members
        .values()
        .map(|m| (m.id.clone(), subscribed(m, view)))
        .collect();
    group.target = if assignor == "range" {
        range(&subs, view)
    } else {
        uniform(&subs, view, &group.target)
    };
    group.topic_counts = subscribed_counts(group, view);
    group.assignor = assignor;
    group.assignment_epoch = group.epoch;
}

/// `range`: per topic, its members (by member id) take contiguous ranges,
/// the first ones one partition more when it does not divide evenly.
pub fn range(
    subs: &BTreeMap<String, BTreeSet<String>>,
    view: &TopicView,
) -> HashMap<String, BTreeSet<Tp>> {
    let mut out: HashMap<String, BTreeSet<Tp>> =
        subs.keys().map(|m| (m.clone(), BTreeSet::new())).collect();
    let topics: BTreeSet<&String> = subs.values().flatten().collect();
    for topic in topics {
        let n = view.get(topic).copied().unwrap_or(0);
        let members: Vec<&String> = subs
            .iter()
            .filter(|(_, s)| s.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() {
            continue;
        }
        let count = members.len() as i32;
        let (base, extra) = (n / count, n % count);
        let mut next = 0;
        for (i, m) in members.into_iter().enumerate() {
            let take = base + i32::from((i as i32) < extra);
            if let Some(set) = out.get_mut(m) {
                set.extend((next..next + take).map(|p| (topic.clone(), p)));
            }
            next += take;
        }
    }
    out
}

/// `uniform`: every subscribed partition to one of its subscribers, as
/// evenly as possible, keeping partitions where they are when that stays
/// balanced (sticky).
pub fn uniform(
    subs: &BTreeMap<String, BTreeSet<String>>,
    view: &TopicView,
    current: &HashMap<String, BTreeSet<Tp>>,
) -> HashMap<String, BTreeSet<Tp>> {
    let mut out: HashMap<String, BTreeSet<Tp>> =
        subs.keys().map(|m| (m.clone(), BTreeSet::new())).collect();
    let partitions: BTreeSet<Tp> = subs
        .values()
        .flatten()
        .flat_map(|t| (0..view.get(t).copied().unwrap_or(0)).map(move |p| (t.clone(), p)))
        .collect();
    let active: Vec<&String> = subs
        .iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(m, _)| m)
        .collect();
    if active.is_empty() {
        return out;
    }
    let quota = partitions.len().div_ceil(active.len());
    let mut taken: BTreeSet<Tp> = BTreeSet::new();
    // Sticky: each member keeps what it had, up to the quota.
    for m in &active {
        let Some(had) = current.get(*m) else { continue };
        let Some(set) = out.get_mut(*m) else { continue };
        for tp in had {
            if set.len() >= quota {
                break;
            }
            if partitions.contains(tp) && subs[*m].contains(&tp.0) && taken.insert(tp.clone()) {
                set.insert(tp.clone());
            }
        }
    }
    // The rest, each to a subscriber with the fewest partitions.
    for tp in partitions.iter().filter(|tp| !taken.contains(*tp)) {
        let best = active
            .iter()
            .filter(|m| subs[**m].contains(&tp.0))
            .min_by_key(|m| (out.get(**m).map_or(0, BTreeSet::len), **m));
        if let Some(m) = best {
            if let Some(set) = out.get_mut(*m) {
                set.insert(tp.clone());
            }
        }
    }
    rebalance(&mut out, subs, &active);
    out
}

/// Moves partitions from members with two or more above the least loaded
/// eligible member until no such move exists.
fn rebalance(
    out: &mut HashMap<String, BTreeSet<Tp>>,
    subs: &BTreeMap<String, BTreeSet<String>>,
    active: &[&String],
) {
    loop {
        let mut moved = false;
        for from in active {
            let from_len = out.get(*from).map_or(0, BTreeSet::len);
            let candidate = out.get(*from).and_then(|set| {
                set.iter().find_map(|tp| {
                    active
                        .iter()
                        .filter(|to| *to != from && subs[**to].contains(&tp.0))
                        .filter(|to| out.get(**to).map_or(0, BTreeSet::len) + 1 < from_len)
                        .min_by_key(|to| (out.get(**to).map_or(0, BTreeSet::len), **to))
                        .map(|to| (tp.clone(), (*to).clone()))
                })
            });
            if let Some((tp, to)) = candidate {
                if let Some(set) = out.get_mut(*from) {
                    set.remove(&tp);
                }
                if let Some(set) = out.get_mut(&to) {
                    set.insert(tp);
                }
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
}

/// Removes a member; its partitions are free at once.
fn remove(group: &mut Group, member_id: &str, why: &str) {
    if group.members.remove(member_id).is_some() {
        group.target.remove(member_id);
        group.epoch += 1;
        tracing::debug!(%member_id, why, "consumer group member removed");
    }
}

/// Moves one member toward its target (see the module docs).
fn reconcile(group: &mut Group, member_id: &str, owned: Option<&BTreeSet<Tp>>, now: Instant) {
    let target = group.target.get(member_id).cloned().unwrap_or_default();
    let held_by_others: BTreeSet<Tp> = group
        .members
        .values()
        .filter(|m| m.id != member_id)
        .flat_map(|m| m.assigned.iter().chain(m.revoking.iter()).cloned())
        .collect();
    let assignment_epoch = group.assignment_epoch;
    let Some(m) = group.members.get_mut(member_id) else {
        return;
    };
    if m.state == MemberState::UnrevokedPartitions {
        match owned {
            Some(o) if o.is_disjoint(&m.revoking) => {
                m.revoking.clear();
                m.revoking_since = None;
            }
            _ => return,
        }
    }
    if m.state == MemberState::Stable && m.epoch == assignment_epoch && m.assigned == target {
        return;
    }
    let revoke: BTreeSet<Tp> = m.assigned.difference(&target).cloned().collect();
    if !revoke.is_empty() {
        m.assigned = m.assigned.intersection(&target).cloned().collect();
        m.revoking = revoke;
        m.revoking_since = Some(now);
        m.state = MemberState::UnrevokedPartitions;
        return;
    }
    let wanted: BTreeSet<Tp> = target.difference(&m.assigned).cloned().collect();
    let free: BTreeSet<Tp> = wanted.difference(&held_by_others).cloned().collect();
    m.assigned.extend(free.iter().cloned());
    if m.epoch != assignment_epoch {
        m.previous_epoch = m.epoch;
        m.epoch = assignment_epoch;
    }
    m.state = if free.len() < wanted.len() {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    };
}

#[cfg(test)]
mod tests;
