//! The classic consumer group coordinator (JoinGroup/SyncGroup/Heartbeat/
//! LeaveGroup) and committed offsets.
//!
//! A group moves through Kafka's states:
//!
//! ```text
//! Empty ──join──► PreparingRebalance ──all rejoined / timeout──► CompletingRebalance
//!   ▲                    ▲                                            │ leader's SyncGroup
//!   └──last member gone──┴──── join / leave / session expiry ◄── Stable ◄┘
//! ```
//!
//! All state sits behind one std `Mutex` that is never held across an
//! `.await`: a JoinGroup or SyncGroup that must wait registers a `oneshot`
//! sender on its member and the handler awaits the receiver after the lock
//! is released. Whoever completes the phase (another member's request, or
//! [`Coordinator::tick`] driven by the broker's group timer) sends the
//! responses. Every method takes the current time, so tests drive time
//! explicitly.
//!
//! Members' protocol metadata and assignments are passed through untouched;
//! assignment is the client leader's job. Group membership is not persisted
//! (clients rejoin after a restart); committed offsets are, see
//! [`offsets`].

mod commit;
pub mod configs;
pub mod consumer;
pub mod offsets;
pub(crate) mod records;
pub mod share;
pub mod share_store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::ResponseError;
use runnel_log::LogError;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::Broker;

pub use commit::{CommitOffset, CommitRequest, MAX_METADATA_BYTES};
pub use offsets::{Committed, OffsetStore, OffsetWrite, OFFSETS_TOPIC};

/// Coordinator settings (Kafka's `group.*` broker configs).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of
    /// an empty group waits for more members.
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// Share groups (`group.share.*`).
    pub share: share::ShareGroupConfig,
    /// Consumer groups of the KIP-848 protocol (`group.consumer.*`).
    pub consumer: consumer::ConsumerGroupConfig,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay: Duration::from_millis(300),
            min_session_timeout_ms: 1_000,
            max_session_timeout_ms: 1_800_000,
            share: share::ShareGroupConfig::default(),
            consumer: consumer::ConsumerGroupConfig::default(),
        }
    }
}

/// A group's state as DescribeGroups/ListGroups name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup asks for.
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: an unknown member must first get an id
    /// (MEMBER_ID_REQUIRED) and join again with it.
    pub require_known_member_id: bool,
}

/// One member as the leader sees it in the JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinResult {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only the leader gets the members.
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    fn error(code: ResponseError, member_id: &str) -> JoinResult {
        JoinResult {
            error: code.code(),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// What a SyncGroup carries.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest<'a> {
    pub group_id: &'a str,
    pub generation: i32,
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    /// SyncGroup v5+: must match the group's when given.
    pub protocol_type: Option<&'a str>,
    pub protocol_name: Option<&'a str>,
    /// The leader's assignments by member id.
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(code: ResponseError) -> SyncResult {
        SyncResult {
            error: code.code(),
            ..Default::default()
        }
    }
}

/// An answer now, or one to wait for.
#[derive(Debug)]
pub enum Reply<T> {
    Ready(T),
    Wait(oneshot::Receiver<T>),
}

/// A member's view for DescribeGroups.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group's view for DescribeGroups.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_heartbeat: Instant,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    fn waiting_for_join(&self) -> bool {
        self.join_waiter.as_ref().is_some_and(|w| !w.is_closed())
    }

    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

struct Group {
    id: String,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    /// In join order: the first member becomes leader.
    members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they expire.
    pending_members: HashMap<String, Instant>,
    /// When a PreparingRebalance phase ends even if members are missing.
    rebalance_deadline: Option<Instant>,
    /// The first rebalance of an empty group waits this long for company.
    initial_delay_until: Option<Instant>,
}

impl Group {
    fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending_members: HashMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
        }
    }

    fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    fn by_instance(&self, instance: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.instance_id.as_deref() == Some(instance))
    }

    /// Protocols every member (and the candidate list, if any) supports.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocols.is_empty() || protocol_type.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            self.members
                .iter()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// Protocol selection: among protocols every member supports, each
    /// member votes for its most preferred; most votes wins, ties go to the
    /// first member's preference order.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == n))
            })
            .collect();
        let mut best: Option<(&str, usize)> = None;
        for c in &candidates {
            let votes = self
                .members
                .iter()
                .filter(|m| {
                    m.protocols
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .find(|n| candidates.contains(n))
                        == Some(c)
                })
                .count();
            if best.is_none_or(|(_, v)| votes > v) {
                best = Some((c, votes));
            }
        }
        best.map(|(c, _)| c.to_string())
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Starts (or continues) a rebalance: members must rejoin.
    fn prepare_rebalance(&mut self, now: Instant, reason: &str) {
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        info!(group = %self.id, generation = self.generation, reason, "preparing rebalance");
        for m in &mut self.members {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(ResponseError::RebalanceInProgress));
            }
        }
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = Some(now + self.max_rebalance_timeout());
    }

    /// Ends PreparingRebalance if every member rejoined (or `force`, at the
    /// deadline: members that did not rejoin are removed).
    fn maybe_complete_join(&mut self, now: Instant, force: bool) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if !force {
            if self.initial_delay_until.is_some_and(|t| now < t) {
                return;
            }
            if !self.members.iter().all(Member::waiting_for_join) {
                return;
            }
        }
        let before = self.members.len();
        self.members.retain(Member::waiting_for_join);
        if self.members.len() != before {
            info!(group = %self.id, removed = before - self.members.len(), "members did not rejoin in time");
        }
        self.initial_delay_until = None;
        self.rebalance_deadline = None;
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            info!(group = %self.id, generation = self.generation, "group is empty");
            return;
        }
        self.protocol = self.select_protocol();
        if self
            .leader
            .as_deref()
            .is_none_or(|l| self.member(l).is_none())
        {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol.clone().unwrap_or_default();
        let all: Vec<JoinedMember> = self
            .members
            .iter()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect();
        info!(group = %self.id, generation = self.generation, %protocol, %leader, members = all.len(), "rebalance: join phase complete");
        let base = JoinResult {
            error: 0,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: leader.clone(),
            member_id: String::new(),
            members: Vec::new(),
        };
        for m in &mut self.members {
            m.assignment = Bytes::new();
            m.last_heartbeat = now;
            if let Some(w) = m.join_waiter.take() {
                let mut r = base.clone();
                r.member_id = m.id.clone();
                if m.id == leader {
                    r.members = all.clone();
                }
                let _ = w.send(r);
            }
        }
    }

    /// The current generation's JoinGroup answer for `member` (a member that
    /// rejoins without changes gets it without a rebalance).
    fn current_join(&self, member: &str) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol.clone().unwrap_or_default();
        JoinResult {
            error: 0,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            members: if member == leader {
                self.members
                    .iter()
                    .map(|m| JoinedMember {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        metadata: m.metadata_for(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            leader,
            member_id: member.to_string(),
        }
    }

    /// Removes a member; its waiting requests get `code`.
    fn remove_member(&mut self, id: &str, code: ResponseError, now: Instant, reason: &str) {
        let Some(pos) = self.members.iter().position(|m| m.id == id) else {
            return;
        };
        let m = self.members.remove(pos);
        info!(group = %self.id, member = %m.id, reason, "member removed");
        if let Some(w) = m.join_waiter {
            let _ = w.send(JoinResult::error(code, &m.id));
        }
        if let Some(w) = m.sync_waiter {
            let _ = w.send(SyncResult::error(code));
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, reason);
                self.maybe_complete_join(now, false);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now, false),
            GroupState::Empty | GroupState::Dead => {}
        }
    }
}

/// The group coordinator: every group of this broker and their offsets.
pub struct Coordinator {
    config: GroupConfig,
    groups: Mutex<HashMap<String, Group>>,
    offsets: OffsetStore,
    next_member: AtomicU64,
    epoch_tag: u64,
    /// When each group with offsets was first seen without members by the
    /// expiry check (ms); offsets expire a retention period after that.
    empty_since: Mutex<HashMap<String, i64>>,
    /// Groups without members whose last offsets OffsetDelete removed
    /// (when, ms). Kafka keeps such a group, Empty, until DeleteGroups or
    /// its periodic cleanup ([`OFFSETLESS_CLEANUP_MS`]); without this it
    /// would vanish with its offsets and DeleteGroups would answer
    /// GROUP_ID_NOT_FOUND.
    offsetless: Mutex<HashMap<String, i64>>,
    /// Groups held by an application running inside the broker's process
    /// (a SQL query, a connector): listed and described as Stable with one
    /// member, closed to members over the wire.
    held: Mutex<HashMap<String, HeldGroup>>,
    /// Groups of the new consumer protocol (KIP-848).
    consumer: consumer::ConsumerGroups,
    /// Share groups (KIP-932).
    share: share::ShareGroups,
}

/// A group an in-process application holds: it owns every partition of its
/// subscription without the group protocol (no joins, no heartbeats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldGroup {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    /// Its partitions, by topic.
    pub partitions: Vec<(String, Vec<i32>)>,
}

impl HeldGroup {
    /// Its subscription in the consumer protocol (version 0: topics).
    fn metadata(&self) -> Bytes {
        let topics = self
            .partitions
            .iter()
            .map(|(topic, _)| StrBytes::from_string(topic.clone()))
            .collect();
        consumer_protocol(&ConsumerProtocolSubscription::default().with_topics(topics))
    }

    /// Its assignment in the consumer protocol (version 0).
    fn assignment(&self) -> Bytes {
        let assigned = self
            .partitions
            .iter()
            .map(|(topic, parts)| {
                AssignedPartitions::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(parts.clone())
            })
            .collect();
        consumer_protocol(&ConsumerProtocolAssignment::default().with_assigned_partitions(assigned))
    }

    fn description(&self) -> GroupDescription {
        GroupDescription {
            state: GroupState::Stable,
            protocol_type: "consumer".into(),
            protocol: HELD_PROTOCOL.into(),
            members: vec![MemberDescription {
                member_id: self.member_id.clone(),
                instance_id: None,
                client_id: self.client_id.clone(),
                client_host: self.client_host.clone(),
                metadata: self.metadata(),
                assignment: self.assignment(),
            }],
        }
    }
}

/// The assignment strategy a held group reports: its one member has it all.
pub const HELD_PROTOCOL: &str = "runnel-local";

/// A consumer-protocol message (subscription or assignment) as group
/// members exchange it: version 0, then its fields.
fn consumer_protocol<T: Encodable>(message: &T) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    if let Err(e) = message.encode(&mut b, 0) {
        // Only fields a version lacks fail to encode; version 0 has all
        // these use.
        warn!("cannot encode a consumer protocol message: {e}");
        return Bytes::new();
    }
    b.freeze()
}

/// How long a group without members or offsets is still listed: Kafka's
/// `offsets.retention.check.interval.ms` default, the period of the
/// cleanup that removes such groups.
pub const OFFSETLESS_CLEANUP_MS: i64 = 600_000;

impl Coordinator {
    pub fn new(config: GroupConfig, offsets: OffsetStore) -> Coordinator {
        let group_configs = Arc::new(configs::GroupConfigs::default());
        let consumer =
            consumer::ConsumerGroups::with_configs(config.consumer.clone(), group_configs.clone());
        consumer.restore(offsets.take_restored_groups(), Instant::now());
        Coordinator {
            groups: Mutex::new(HashMap::new()),
            offsets,
            next_member: AtomicU64::new(1),
            epoch_tag: crate::now_ms() as u64,
            empty_since: Mutex::new(HashMap::new()),
            offsetless: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            consumer,
            share: share::ShareGroups::with_configs(config.share.clone(), group_configs),
            config,
        }
    }

    /// The groups of the consumer protocol (KIP-848).
    pub fn consumer(&self) -> &consumer::ConsumerGroups {
        &self.consumer
    }

    /// The group configs (resource GROUP) of `group_id`, every kind's:
    /// (name, value, set for the group).
    pub fn group_configs(&self, group_id: &str) -> Vec<(String, String, bool)> {
        let mut out = self.consumer.group_configs(group_id);
        out.extend(self.share.group_configs(group_id));
        out
    }

    /// The broker config a group config defaults to: (its name, its
    /// value).
    pub fn group_config_default(&self, name: &str) -> Option<(String, String)> {
        let ms = |d: Duration| d.as_millis().to_string();
        let c = &self.config;
        let (broker_name, value) = match name {
            "consumer.session.timeout.ms" => (
                "group.consumer.session.timeout.ms",
                ms(c.consumer.session_timeout),
            ),
            "consumer.heartbeat.interval.ms" => (
                "group.consumer.heartbeat.interval.ms",
                ms(c.consumer.heartbeat_interval),
            ),
            "share.record.lock.duration.ms" => (
                "group.share.record.lock.duration.ms",
                ms(c.share.record_lock_duration),
            ),
            "share.delivery.count.limit" => (
                "group.share.delivery.count.limit",
                c.share.delivery_count_limit.to_string(),
            ),
            "share.isolation.level" => ("share.isolation.level", "read_uncommitted".to_string()),
            "share.auto.offset.reset" => (
                "share.auto.offset.reset",
                if c.share.reset_earliest {
                    "earliest"
                } else {
                    "latest"
                }
                .to_string(),
            ),
            _ => return None,
        };
        Some((broker_name.to_string(), value))
    }

    /// IncrementalAlterConfigs on a group: sets (`Some`) or deletes
    /// (`None`) group configs of any kind, all or nothing; the change is
    /// written by the next share-state flush.
    pub fn alter_group_configs(
        &self,
        group_id: &str,
        changes: &[(String, Option<String>)],
        validate_only: bool,
    ) -> Result<(), String> {
        let (consumer, share): (Vec<_>, Vec<_>) = changes
            .iter()
            .cloned()
            .partition(|(k, _)| consumer::GROUP_CONFIGS.contains(&k.as_str()));
        if !consumer.is_empty() {
            self.consumer.check_group_configs(group_id, &consumer)?;
        }
        for (k, v) in &share {
            self.share.check_group_config(k, v.as_deref())?;
        }
        if !validate_only {
            self.consumer.configs().apply(group_id, changes);
            self.share.write_group_configs(group_id);
        }
        Ok(())
    }

    /// Writes what changed of the consumer groups (KIP-848) to
    /// `__consumer_offsets`. Blocking: a heartbeat's answer is sent after
    /// the state it reports is written.
    pub fn flush_consumer_groups(&self) -> Result<(), LogError> {
        let _turn = self
            .consumer
            .flushing
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now_ms = crate::now_ms();
        for (group, records) in self.consumer.take_writes() {
            self.offsets.write_group_records(&group, records, now_ms)?;
        }
        Ok(())
    }

    /// The share groups (KIP-932).
    pub fn share(&self) -> &share::ShareGroups {
        &self.share
    }

    /// Whether `group_id` is a classic group with members (a consumer
    /// protocol heartbeat for it is refused, as Kafka does).
    pub fn is_classic_with_members(&self, group_id: &str) -> bool {
        self.is_held(group_id)
            || self
                .lock()
                .get(group_id)
                .is_some_and(|g| !g.members.is_empty())
    }

    /// The committed offsets.
    pub fn offsets(&self) -> &OffsetStore {
        &self.offsets
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn held_lock(&self) -> MutexGuard<'_, HashMap<String, HeldGroup>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An in-process application holds `group_id` (replacing any earlier
    /// hold): the group is Stable with it as the one member until
    /// [`release`](Self::release).
    pub fn hold(&self, group_id: &str, held: HeldGroup) {
        self.held_lock().insert(group_id.to_string(), held);
    }

    /// Ends `member_id`'s hold on `group_id` (a later holder's stays).
    pub fn release(&self, group_id: &str, member_id: &str) {
        let mut held = self.held_lock();
        if held.get(group_id).is_some_and(|h| h.member_id == member_id) {
            held.remove(group_id);
        }
    }

    fn is_held(&self, group_id: &str) -> bool {
        self.held_lock().contains_key(group_id)
    }

    fn new_member_id(&self, client_id: &str) -> String {
        let n = self.next_member.fetch_add(1, Ordering::Relaxed);
        format!("{client_id}-{:x}-{n}", self.epoch_tag)
    }

    /// JoinGroup.
    pub fn join(&self, now: Instant, req: JoinRequest) -> Reply<JoinResult> {
        let fail = |code: ResponseError| Reply::Ready(JoinResult::error(code, &req.member_id));
        if req.group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return fail(ResponseError::InvalidSessionTimeout);
        }
        if self.is_held(&req.group_id) {
            // Its one member owns every partition and speaks no protocol.
            return fail(ResponseError::GroupMaxSizeReached);
        }
        if self.consumer.has_members(&req.group_id) {
            // A consumer-protocol group: classic members cannot join it.
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        let mut groups = self.lock();
        if !req.member_id.is_empty() && !groups.contains_key(&req.group_id) {
            return fail(ResponseError::UnknownMemberId);
        }
        let group = groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(&req.group_id));
        let known = group.member(&req.member_id).is_some();
        // A member's own rejoin may change its protocols; check the others.
        let compatible = if known {
            let mut others_ok = true;
            if group.members.len() > 1 {
                others_ok = group.protocol_type.as_deref() == Some(req.protocol_type.as_str())
                    && req.protocols.iter().any(|(name, _)| {
                        group
                            .members
                            .iter()
                            .filter(|m| m.id != req.member_id)
                            .all(|m| m.protocols.iter().any(|(n, _)| n == name))
                    });
            }
            others_ok && !req.protocols.is_empty() && !req.protocol_type.is_empty()
        } else {
            group.supports(&req.protocol_type, &req.protocols)
        };
        if !compatible {
            let empty = group.members.is_empty();
            if empty && group.state == GroupState::Empty {
                groups.remove(&req.group_id);
            }
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        let session_timeout = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
        let rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64);

        // Static membership: the instance id names the member.
        if let Some(instance) = req.instance_id.as_deref() {
            if let Some(old) = group.by_instance(instance) {
                let old_id = old.id.clone();
                if !req.member_id.is_empty() && req.member_id != old_id {
                    return fail(ResponseError::FencedInstanceId);
                }
                if req.member_id.is_empty() {
                    return self.replace_static(group, now, req, old_id);
                }
            } else if !req.member_id.is_empty() && !known {
                return fail(ResponseError::UnknownMemberId);
            }
        }

        let member_id = if req.member_id.is_empty() {
            let id = self.new_member_id(&req.client_id);
            if req.require_known_member_id && req.instance_id.is_none() {
                group
                    .pending_members
                    .insert(id.clone(), now + session_timeout);
                debug!(group = %req.group_id, member = %id, "member id required");
                return Reply::Ready(JoinResult::error(ResponseError::MemberIdRequired, &id));
            }
            id
        } else if known || group.pending_members.remove(&req.member_id).is_some() {
            req.member_id.clone()
        } else {
            return fail(ResponseError::UnknownMemberId);
        };

        let (tx, rx) = oneshot::channel();
        if let Some(m) = group.member_mut(&member_id) {
            let unchanged = m.protocols == req.protocols;
            m.protocols = req.protocols;
            m.session_timeout = session_timeout;
            m.rebalance_timeout = rebalance_timeout;
            m.last_heartbeat = now;
            let is_leader = group.leader.as_deref() == Some(member_id.as_str());
            match group.state {
                GroupState::CompletingRebalance | GroupState::Stable
                    if unchanged && !(is_leader && group.state == GroupState::Stable) =>
                {
                    return Reply::Ready(group.current_join(&member_id));
                }
                _ => {}
            }
            if let Some(m) = group.member_mut(&member_id) {
                if let Some(old) = m.join_waiter.replace(tx) {
                    let _ = old.send(JoinResult::error(
                        ResponseError::RebalanceInProgress,
                        &member_id,
                    ));
                }
            }
            group.prepare_rebalance(now, "member rejoined");
        } else {
            if group.members.is_empty() {
                group.protocol_type = Some(req.protocol_type.clone());
            }
            group.members.push(Member {
                id: member_id.clone(),
                instance_id: req.instance_id.clone(),
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout,
                rebalance_timeout,
                protocols: req.protocols,
                assignment: Bytes::new(),
                last_heartbeat: now,
                join_waiter: Some(tx),
                sync_waiter: None,
            });
            debug!(group = %req.group_id, member = %member_id, "member joined");
            if group.state == GroupState::Empty {
                group.prepare_rebalance(now, "first member joined");
                let delay = self.config.initial_rebalance_delay;
                group.initial_delay_until = Some(now + delay);
            } else {
                group.prepare_rebalance(now, "new member joined");
                if let Some(until) = group.initial_delay_until {
                    // Each newcomer extends the initial delay, within the
                    // rebalance timeout.
                    let limit = group.rebalance_deadline.unwrap_or(until);
                    group.initial_delay_until =
                        Some((now + self.config.initial_rebalance_delay).min(limit));
                }
            }
            // The deadline covers the slowest member's rebalance timeout.
            let deadline = now + group.max_rebalance_timeout();
            if group.rebalance_deadline.is_none_or(|d| d < deadline) {
                group.rebalance_deadline = Some(deadline);
            }
        }
        group.maybe_complete_join(now, false);
        Reply::Wait(rx)
    }

    /// A static member restarted: it takes over the old member id's place.
    fn replace_static(
        &self,
        group: &mut Group,
        now: Instant,
        req: JoinRequest,
        old_id: String,
    ) -> Reply<JoinResult> {
        let new_id = self.new_member_id(&req.client_id);
        let was_leader = group.leader.as_deref() == Some(old_id.as_str());
        let Some(m) = group.member_mut(&old_id) else {
            return Reply::Ready(JoinResult::error(ResponseError::UnknownMemberId, ""));
        };
        info!(group = %req.group_id, old = %old_id, new = %new_id, "static member replaced");
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinResult::error(ResponseError::FencedInstanceId, &old_id));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncResult::error(ResponseError::FencedInstanceId));
        }
        let unchanged = m.protocols == req.protocols;
        m.id = new_id.clone();
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.session_timeout = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
        m.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64);
        m.protocols = req.protocols;
        m.last_heartbeat = now;
        if was_leader {
            group.leader = Some(new_id.clone());
        }
        if group.state == GroupState::Stable && unchanged {
            // No rebalance: SyncGroup returns the current assignment. The
            // leader gets the member list (it may rebalance itself later).
            return Reply::Ready(group.current_join(&new_id));
        }
        let (tx, rx) = oneshot::channel();
        if let Some(m) = group.member_mut(&new_id) {
            m.join_waiter = Some(tx);
        }
        group.prepare_rebalance(now, "static member rejoined with changes");
        group.maybe_complete_join(now, false);
        Reply::Wait(rx)
    }

    /// SyncGroup.
    pub fn sync(&self, now: Instant, req: SyncRequest<'_>) -> Reply<SyncResult> {
        let SyncRequest {
            group_id,
            generation,
            member_id,
            instance_id,
            protocol_type: ptype,
            protocol_name: pname,
            assignments,
        } = req;
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Reply::Ready(SyncResult::error(ResponseError::UnknownMemberId));
        };
        if let Err(code) = check_member(group, member_id, instance_id, Some(generation)) {
            return Reply::Ready(SyncResult::error(code));
        }
        if ptype.is_some_and(|t| group.protocol_type.as_deref() != Some(t))
            || pname.is_some_and(|n| group.protocol.as_deref() != Some(n))
        {
            return Reply::Ready(SyncResult::error(ResponseError::InconsistentGroupProtocol));
        }
        let ok = |assignment: Bytes, group: &Group| SyncResult {
            error: 0,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol.clone(),
            assignment,
        };
        match group.state {
            GroupState::PreparingRebalance => {
                Reply::Ready(SyncResult::error(ResponseError::RebalanceInProgress))
            }
            GroupState::Empty | GroupState::Dead => {
                Reply::Ready(SyncResult::error(ResponseError::UnknownMemberId))
            }
            GroupState::Stable => {
                let a = group
                    .member(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                Reply::Ready(ok(a, group))
            }
            GroupState::CompletingRebalance => {
                if group.leader.as_deref() == Some(member_id) {
                    let mut assigned: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in &mut group.members {
                        m.assignment = assigned.remove(&m.id).unwrap_or_default();
                        m.last_heartbeat = now;
                    }
                    group.state = GroupState::Stable;
                    info!(group = %group.id, generation = group.generation, "group is stable");
                    let template = ok(Bytes::new(), group);
                    let mut mine = Bytes::new();
                    for m in &mut group.members {
                        if m.id == member_id {
                            mine = m.assignment.clone();
                        }
                        if let Some(w) = m.sync_waiter.take() {
                            let mut r = template.clone();
                            r.assignment = m.assignment.clone();
                            let _ = w.send(r);
                        }
                    }
                    Reply::Ready(ok(mine, group))
                } else {
                    let (tx, rx) = oneshot::channel();
                    if let Some(m) = group.member_mut(member_id) {
                        m.last_heartbeat = now;
                        m.sync_waiter = Some(tx);
                    }
                    Reply::Wait(rx)
                }
            }
        }
    }

    /// Heartbeat; returns an error code.
    pub fn heartbeat(
        &self,
        now: Instant,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        if let Err(code) = check_member(group, member_id, instance_id, None) {
            return code.code();
        }
        if let Some(m) = group.member_mut(member_id) {
            m.last_heartbeat = now;
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => ResponseError::UnknownMemberId.code(),
            GroupState::PreparingRebalance => ResponseError::RebalanceInProgress.code(),
            _ if generation != group.generation => ResponseError::IllegalGeneration.code(),
            _ => 0,
        }
    }

    /// LeaveGroup for each (member id, instance id); returns each member's
    /// error code (group-level errors apply to all).
    pub fn leave(
        &self,
        now: Instant,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, i16> {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Err(ResponseError::UnknownMemberId.code());
        };
        let mut codes = Vec::with_capacity(members.len());
        for (member_id, instance_id) in members {
            let target = match instance_id.as_deref() {
                Some(instance) => match group.by_instance(instance) {
                    Some(m) if member_id.is_empty() || *member_id == m.id => Ok(m.id.clone()),
                    Some(_) => Err(ResponseError::FencedInstanceId),
                    None => Err(ResponseError::UnknownMemberId),
                },
                None => {
                    if group.member(member_id).is_some() {
                        Ok(member_id.clone())
                    } else if group.pending_members.remove(member_id).is_some() {
                        codes.push(0);
                        continue;
                    } else {
                        Err(ResponseError::UnknownMemberId)
                    }
                }
            };
            match target {
                Ok(id) => {
                    group.remove_member(&id, ResponseError::UnknownMemberId, now, "member left");
                    codes.push(0);
                }
                Err(code) => codes.push(code.code()),
            }
        }
        if group.state == GroupState::Empty && group.members.is_empty() {
            groups.remove(group_id);
        }
        Ok(codes)
    }

    /// Checks whether an OffsetCommit from this member may be applied.
    pub fn check_commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        if self.consumer.exists(group_id) {
            return self.consumer.check_commit(group_id, member_id, generation);
        }
        let groups = self.lock();
        let Some(group) = groups.get(group_id) else {
            // Simple commits (assign() + commit) need no group.
            return if generation < 0 {
                Ok(())
            } else {
                Err(ResponseError::IllegalGeneration)
            };
        };
        if generation < 0 && group.members.is_empty() {
            return Ok(());
        }
        if group.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        check_member(group, member_id, instance_id, Some(generation))
    }

    /// Runs timeouts: expired pending member ids, session expiry, rebalance
    /// deadlines and the initial rebalance delay.
    pub fn tick(&self, now: Instant) {
        self.consumer.tick(now);
        self.share.tick(now);
        let mut groups = self.lock();
        for group in groups.values_mut() {
            group.pending_members.retain(|_, until| *until > now);
            if group.state != GroupState::Empty {
                let expired: Vec<String> = group
                    .members
                    .iter_mut()
                    .filter_map(|m| {
                        if m.waiting_for_join()
                            || m.sync_waiter.as_ref().is_some_and(|w| !w.is_closed())
                        {
                            m.last_heartbeat = now;
                            return None;
                        }
                        (m.last_heartbeat + m.session_timeout <= now).then(|| m.id.clone())
                    })
                    .collect();
                for id in expired {
                    group.remove_member(
                        &id,
                        ResponseError::UnknownMemberId,
                        now,
                        "session timeout expired",
                    );
                }
            }
            if group.state == GroupState::PreparingRebalance {
                let force = group.rebalance_deadline.is_some_and(|d| d <= now);
                group.maybe_complete_join(now, force);
            }
        }
        groups.retain(|_, g| !(g.state == GroupState::Empty && g.pending_members.is_empty()));
    }

    /// Whether the group currently has members (such groups cannot be
    /// deleted and their offsets do not expire).
    pub fn has_members(&self, group_id: &str) -> bool {
        self.is_held(group_id)
            || self.consumer.has_members(group_id)
            || self
                .lock()
                .get(group_id)
                .is_some_and(|g| !g.members.is_empty())
    }

    /// Topics the group's members subscribe to (consumer protocol only).
    pub fn subscribed_topics(&self, group_id: &str) -> Vec<String> {
        let groups = self.lock();
        let Some(g) = groups.get(group_id) else {
            return Vec::new();
        };
        if g.protocol_type.as_deref() != Some("consumer") {
            return Vec::new();
        }
        let mut out: Vec<String> = g
            .members
            .iter()
            .flat_map(|m| m.protocols.iter().flat_map(|(_, md)| subscription(md)))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// DescribeGroups for one group (`None`: no such group and no offsets).
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        if let Some(h) = self.held_lock().get(group_id) {
            return Some(h.description());
        }
        let groups = self.lock();
        match groups.get(group_id) {
            Some(g) => {
                let protocol = g.protocol.clone().unwrap_or_default();
                let show = matches!(
                    g.state,
                    GroupState::Stable | GroupState::CompletingRebalance
                );
                Some(GroupDescription {
                    state: g.state,
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    protocol: if show {
                        protocol.clone()
                    } else {
                        String::new()
                    },
                    members: g
                        .members
                        .iter()
                        .map(|m| MemberDescription {
                            member_id: m.id.clone(),
                            instance_id: m.instance_id.clone(),
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            metadata: if show {
                                m.metadata_for(&protocol)
                            } else {
                                Bytes::new()
                            },
                            assignment: if g.state == GroupState::Stable {
                                m.assignment.clone()
                            } else {
                                Bytes::new()
                            },
                        })
                        .collect(),
                })
            }
            None => {
                drop(groups);
                let exists = !self.offsets.group_offsets(group_id).is_empty()
                    || self.offsetless_lock().contains_key(group_id);
                exists.then(|| GroupDescription {
                    state: GroupState::Empty,
                    protocol_type: String::new(),
                    protocol: String::new(),
                    members: Vec::new(),
                })
            }
        }
    }

    /// Every group with members or committed offsets: (id, protocol type, state).
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        let mut out: Vec<(String, String, GroupState)> = self
            .lock()
            .values()
            .map(|g| {
                (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state,
                )
            })
            .collect();
        for g in self.held_lock().keys() {
            out.retain(|(id, _, _)| id != g);
            out.push((g.clone(), "consumer".into(), GroupState::Stable));
        }
        let offsetless: Vec<String> = self.offsetless_lock().keys().cloned().collect();
        for g in self.offsets.groups().into_iter().chain(offsetless) {
            if !out.iter().any(|(id, _, _)| *id == g) {
                out.push((g, String::new(), GroupState::Empty));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn offsetless_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.offsetless.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After OffsetDelete: a group without members whose offsets are now
    /// all gone stays listed, Empty, as in Kafka.
    pub fn offsets_deleted(&self, group_id: &str, now_ms: i64) {
        if !self.has_members(group_id) && self.offsets.group_offsets(group_id).is_empty() {
            self.offsetless_lock().insert(group_id.to_string(), now_ms);
        }
    }

    /// Forgets an empty group (its offsets are deleted by the caller).
    pub fn remove_if_empty(&self, group_id: &str) -> Result<(), ResponseError> {
        if self.is_held(group_id) {
            return Err(ResponseError::NonEmptyGroup);
        }
        if self.consumer.exists(group_id) {
            self.consumer.remove_if_empty(group_id)?;
            // Its group configs go with it, as in Kafka.
            if self.consumer.configs().get(group_id).is_some() {
                self.consumer.configs().replace(group_id, None);
                self.share.write_group_configs(group_id);
            }
        }
        let mut groups = self.lock();
        match groups.get(group_id) {
            Some(g) if !g.members.is_empty() => return Err(ResponseError::NonEmptyGroup),
            Some(_) => {
                groups.remove(group_id);
            }
            None => {}
        }
        drop(groups);
        self.offsetless_lock().remove(group_id);
        Ok(())
    }
}

impl Coordinator {
    /// Deletes (with tombstones) the offsets of a group that has been
    /// without members for `retention_ms` and were committed at least that
    /// long ago (Kafka's rule since KIP-211). "Empty since" is observed by
    /// this check, so after a restart the clock starts again: offsets may
    /// live longer than the retention, never shorter. Blocking (log appends).
    pub fn expire_offsets(&self, now_ms: i64, retention_ms: i64) -> Result<usize, LogError> {
        let cutoff = now_ms.saturating_sub(retention_ms);
        self.offsetless_lock().retain(|g, since| {
            now_ms.saturating_sub(*since) < OFFSETLESS_CLEANUP_MS
                && self.offsets.group_offsets(g).is_empty()
        });
        let mut empty_since = self.empty_since.lock().unwrap_or_else(|e| e.into_inner());
        let with_offsets = self.offsets.groups();
        empty_since.retain(|g, _| with_offsets.contains(g));
        for group in &with_offsets {
            if self.has_members(group) {
                empty_since.remove(group);
            } else {
                empty_since.entry(group.clone()).or_insert(now_ms);
            }
        }
        let mut expired = 0;
        for (group, keys) in self.offsets.older_than(cutoff) {
            if self.has_members(&group)
                || empty_since.get(&group).is_none_or(|since| *since > cutoff)
            {
                continue;
            }
            expired += keys.len();
            info!(%group, offsets = keys.len(), "expiring committed offsets");
            let tombstones = keys.into_iter().map(|k| (k, None)).collect();
            self.offsets.write(&group, tombstones, now_ms)?;
        }
        Ok(expired)
    }
}

/// The broker's group timer: session expiry, rebalance deadlines and the
/// initial delay every `group_tick_ms`, offset expiry every
/// `maintenance_interval_ms`, until `stop`.
pub(crate) async fn run_timer(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let cfg = broker.config();
    let every = Duration::from_millis(cfg.group_tick_ms.max(1));
    let expiry_every = Duration::from_millis(cfg.maintenance_interval_ms.max(10));
    let retention_ms = cfg.offsets_retention_ms;
    let mut last_expiry = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = Instant::now();
        broker.groups().tick(now);
        // Locks that ran out and members that timed out changed share
        // state; members that timed out changed consumer groups.
        let b = broker.clone();
        let flushed = tokio::task::spawn_blocking(move || {
            (
                b.groups().share().flush(),
                b.groups().flush_consumer_groups(),
            )
        })
        .await;
        match flushed {
            Ok((Ok(()), Ok(()))) => {}
            Ok((Err(err), _)) => warn!(%err, "writing share-group state failed"),
            Ok((_, Err(err))) => warn!(%err, "writing consumer group state failed"),
            Err(err) => warn!(%err, "writing group state failed"),
        }
        if now.duration_since(last_expiry) >= expiry_every {
            last_expiry = now;
            let b = broker.clone();
            let done = tokio::task::spawn_blocking(move || {
                b.groups().expire_offsets(crate::now_ms(), retention_ms)
            })
            .await;
            match done {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => warn!(%err, "offset expiry failed"),
                Err(err) => warn!(%err, "offset expiry task failed"),
            }
        }
    }
}

/// Member, instance and (if given) generation checks shared by requests.
fn check_member(
    group: &Group,
    member_id: &str,
    instance_id: Option<&str>,
    generation: Option<i32>,
) -> Result<(), ResponseError> {
    if let Some(instance) = instance_id {
        match group.by_instance(instance) {
            Some(m) if m.id != member_id => return Err(ResponseError::FencedInstanceId),
            Some(_) => {}
            None => return Err(ResponseError::UnknownMemberId),
        }
    }
    if group.member(member_id).is_none() {
        return Err(ResponseError::UnknownMemberId);
    }
    if generation.is_some_and(|g| g != group.generation) {
        return Err(ResponseError::IllegalGeneration);
    }
    Ok(())
}

/// Topics in a consumer protocol subscription (`i16 version`, `[string]`
/// topics, ...); empty when it does not parse. Read by hand, not with
/// kafka-protocol's decoder: these bytes come from clients, and that
/// decoder pre-allocates from the array count they claim.
fn subscription(metadata: &Bytes) -> Vec<String> {
    let b = metadata.as_ref();
    let mut pos = 2usize;
    let Some(count) = b.get(pos..pos + 4) else {
        return Vec::new();
    };
    let count = i32::from_be_bytes([count[0], count[1], count[2], count[3]]);
    pos += 4;
    let mut out = Vec::new();
    for _ in 0..count.max(0) {
        let Some(len) = b.get(pos..pos + 2) else {
            return out;
        };
        let len = i16::from_be_bytes([len[0], len[1]]).max(0) as usize;
        pos += 2;
        let Some(name) = b.get(pos..pos + len) else {
            return out;
        };
        pos += len;
        if let Ok(s) = std::str::from_utf8(name) {
            out.push(s.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests;
