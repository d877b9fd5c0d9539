//! Share groups (KIP-932, Kafka's queues): members heartbeat with
//! `ShareGroupHeartbeat`, the broker assigns partitions with Kafka's
//! `simple` assignor (several members may share one partition), and each
//! record is handed out on its own: `ShareFetch` acquires records under a
//! lock, `ShareAcknowledge` (or acknowledgements riding on the next fetch)
//! accepts, releases or rejects them.
//!
//! Per share partition (group, topic, partition) the broker keeps:
//!
//! * the **share-partition start offset** (SPSO): every record below it is
//!   done (acknowledged or archived); it starts at the log end
//!   (`group.share.auto.offset.reset=latest`, the default) or the log start
//!   when the partition is first fetched by the group;
//! * the **end** (SPEO): the offset after the last record ever acquired;
//! * the in-flight records between them: available (released, lock timed
//!   out), acquired by a member until a deadline, or done; each with its
//!   delivery count. A record whose lock times out or that is released
//!   after `group.share.delivery.count.limit` deliveries is archived.
//!
//! New records are acquired only while fewer than
//! `group.share.partition.max.record.locks` offsets are in flight. A member
//! that leaves, times out, closes its share session or loses its connection
//! gives its acquired records back (their delivery counts stay).
//!
//! State lives in memory behind one std mutex, never held across `.await`.
//! What is not an acquisition (acknowledgements, releases, archiving, a
//! partition's first start offset, resets, `share.*` group configs) is
//! written to `__share_group_state` by [`ShareGroups::flush`] before the
//! response that confirms it ([`super::share_store`]) and replayed on
//! open; membership and share sessions are not (members rejoin).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafka_protocol::ResponseError;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use super::configs::GroupConfigs;
use super::consumer::{err, Refusal, TopicView, Tp};
use super::share_store::{Restored, Run, ShareStore, Stored, Write};

/// The only assignor of share groups.
pub const ASSIGNOR: &str = "simple";

/// Acknowledgement types (ShareFetch/ShareAcknowledge `AcknowledgeTypes`).
pub const ACK_GAP: i8 = 0;
pub const ACK_ACCEPT: i8 = 1;
pub const ACK_RELEASE: i8 = 2;
pub const ACK_REJECT: i8 = 3;
/// KIP-1222 (ShareFetch/ShareAcknowledge v2): the record stays acquired by
/// the member, its lock starting again.
pub const ACK_RENEW: i8 = 4;

/// Settings (Kafka's `group.share.*` broker configs).
#[derive(Debug, Clone)]
pub struct ShareGroupConfig {
    /// `group.share.session.timeout.ms`
    pub session_timeout: Duration,
    /// `group.share.heartbeat.interval.ms`
    pub heartbeat_interval: Duration,
    /// `group.share.record.lock.duration.ms`
    pub record_lock_duration: Duration,
    /// `group.share.delivery.count.limit`
    pub delivery_count_limit: i16,
    /// `group.share.partition.max.record.locks`
    pub partition_max_record_locks: i64,
    /// `group.share.auto.offset.reset` is `earliest` (default `latest`).
    pub reset_earliest: bool,
}

impl Default for ShareGroupConfig {
    fn default() -> Self {
        ShareGroupConfig {
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(5_000),
            record_lock_duration: Duration::from_millis(30_000),
            delivery_count_limit: 5,
            partition_max_record_locks: 2_000,
            reset_earliest: false,
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    epoch: i32,
    topics: Vec<String>,
    assigned: BTreeSet<Tp>,
    last_seen: Instant,
    /// The (epoch, assignment) last sent to it.
    sent: Option<(i32, BTreeSet<Tp>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecState {
    Available,
    Acquired,
    Done,
}

#[derive(Debug, Clone)]
struct Rec {
    state: RecState,
    delivery_count: i16,
    owner: String,
    locked_until: Instant,
}

/// One share partition's delivery state.
#[derive(Debug, Clone, Default)]
struct SharePartition {
    start: i64,
    end: i64,
    /// In-flight offsets in `start..end` (offsets absent here were never
    /// in a batch, e.g. compacted away, and count as done).
    records: BTreeMap<i64, Rec>,
    /// Changed in a way that is written to `__share_group_state` (anything
    /// but an acquisition) since it was last written.
    dirty: bool,
}

impl SharePartition {
    /// Drops done records at the front and moves the start over them.
    fn advance(&mut self) {
        while let Some(entry) = self.records.first_entry() {
            if entry.get().state != RecState::Done {
                break;
            }
            entry.remove();
        }
        self.start = self.records.keys().next().copied().unwrap_or(self.end);
    }

    /// Gives back a record (release, lock timeout, owner gone); archives it
    /// once it reached the delivery limit. True when it became available.
    fn give_back(rec: &mut Rec, limit: i16) -> bool {
        if rec.delivery_count >= limit {
            rec.state = RecState::Done;
            false
        } else {
            rec.state = RecState::Available;
            rec.owner.clear();
            true
        }
    }

    /// Releases locks that ran out by `now`; true when any record became
    /// available again.
    fn expire(&mut self, now: Instant, limit: i16) -> bool {
        let mut freed = false;
        let mut any = false;
        for rec in self.records.values_mut() {
            if rec.state == RecState::Acquired && rec.locked_until <= now {
                freed |= Self::give_back(rec, limit);
                any = true;
            }
        }
        if any {
            self.advance();
            self.dirty = true;
        }
        freed
    }

    /// Gives back everything `member` holds.
    fn release_member(&mut self, member: &str, limit: i16) -> bool {
        let mut freed = false;
        let mut any = false;
        for rec in self.records.values_mut() {
            if rec.state == RecState::Acquired && rec.owner == member {
                freed |= Self::give_back(rec, limit);
                any = true;
            }
        }
        if any {
            self.advance();
            self.dirty = true;
        }
        freed
    }

    /// What is written of it: the start and the in-flight runs (acquired
    /// records are written as to be delivered: an acquisition is not
    /// persisted, so they come back after a restart).
    fn stored(&self) -> Stored {
        let mut runs: Vec<Run> = Vec::new();
        for (o, r) in &self.records {
            let done = r.state == RecState::Done;
            match runs.last_mut() {
                Some(last) if last.1 + 1 == *o && last.2 == done && last.3 == r.delivery_count => {
                    last.1 = *o;
                }
                _ => runs.push((*o, *o, done, r.delivery_count)),
            }
        }
        Stored {
            start: self.start,
            runs,
        }
    }

    /// Rebuilds a partition from what was written.
    fn restored(s: &Stored, now: Instant) -> SharePartition {
        let mut records = BTreeMap::new();
        let mut end = s.start;
        for (first, last, done, count) in &s.runs {
            for o in *first..=*last {
                records.insert(
                    o,
                    Rec {
                        state: if *done {
                            RecState::Done
                        } else {
                            RecState::Available
                        },
                        delivery_count: *count,
                        owner: String::new(),
                        locked_until: now,
                    },
                );
            }
            end = end.max(last + 1);
        }
        SharePartition {
            start: s.start,
            end,
            records,
            dirty: false,
        }
    }
}

#[derive(Debug, Default)]
struct Group {
    epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    /// Partition counts of the subscribed topics the assignment was built on.
    topic_counts: BTreeMap<String, i32>,
    /// The target assignment at `assignment_epoch`; each member takes its
    /// own, and that epoch, on its next heartbeat.
    target: HashMap<String, BTreeSet<Tp>>,
    partitions: BTreeMap<Tp, SharePartition>,
}

/// A share session (KIP-932): the partitions a member fetches and the
/// epoch its next request must carry.
#[derive(Debug, Clone)]
struct Session {
    next_epoch: i32,
    partitions: BTreeSet<Tp>,
    peer: Option<SocketAddr>,
}

#[derive(Default)]
struct State {
    groups: HashMap<String, Group>,
    /// By (group, member).
    sessions: HashMap<(String, String), Session>,
    /// Writes other than dirty partitions waiting for [`ShareGroups::flush`]:
    /// forgotten partitions, changed or deleted group configs.
    pending: Vec<Write>,
}

/// The group configs (resource type GROUP) share groups take.
pub const GROUP_CONFIGS: &[&str] = &[
    "share.auto.offset.reset",
    "share.delivery.count.limit",
    "share.isolation.level",
    "share.record.lock.duration.ms",
];

/// The effective settings of one group.
#[derive(Debug, Clone, Copy)]
struct Settings {
    earliest: bool,
    /// `share.isolation.level=read_committed`.
    read_committed: bool,
    lock: Duration,
    limit: i16,
}

fn settings(config: &ShareGroupConfig, overrides: Option<&BTreeMap<String, String>>) -> Settings {
    let get = |k: &str| overrides.and_then(|o| o.get(k));
    Settings {
        earliest: get("share.auto.offset.reset").map_or(config.reset_earliest, |v| v == "earliest"),
        read_committed: get("share.isolation.level").is_some_and(|v| v == "read_committed"),
        lock: get("share.record.lock.duration.ms")
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(config.record_lock_duration, Duration::from_millis),
        limit: get("share.delivery.count.limit")
            .and_then(|v| v.parse::<i16>().ok())
            .unwrap_or(config.delivery_count_limit),
    }
}

/// Checks one group config value.
fn valid_config(key: &str, value: &str) -> Result<(), String> {
    let ok = match key {
        "share.auto.offset.reset" => value == "earliest" || value == "latest",
        "share.isolation.level" => value == "read_committed" || value == "read_uncommitted",
        // Kafka's group.share.{min,max}.record.lock.duration.ms defaults.
        "share.record.lock.duration.ms" => value
            .parse::<u64>()
            .is_ok_and(|v| (15_000..=60_000).contains(&v)),
        "share.delivery.count.limit" => value.parse::<i16>().is_ok_and(|v| (2..=10).contains(&v)),
        _ => return Err(format!("Unknown group config name: {key}")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("Invalid value {value} for configuration {key}"))
    }
}

/// One ShareGroupHeartbeat, decoded.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    pub topics: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

/// What a heartbeat is answered with (as for consumer groups).
pub use super::consumer::HeartbeatReply;

/// A share group and its members as ShareGroupDescribe shows them: the
/// consumer groups' views, with no instance ids or regexes, the target
/// being the assignment (members take theirs at once) and the assignor
/// [`ASSIGNOR`].
pub use super::consumer::{GroupView, MemberView};

/// A contiguous run of acquired offsets with one delivery count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub first: i64,
    pub last: i64,
    pub delivery_count: i16,
}

/// How a share-session request is to be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOp {
    /// Epoch 0: a new session.
    Open,
    /// Epoch -1: the last request; the session closes after it.
    Close,
    /// A request inside an open session.
    Continue,
}

/// The share groups of one broker.
pub struct ShareGroups {
    config: ShareGroupConfig,
    /// Every group's configs (shared with the consumer groups; written
    /// with the share state).
    configs: Arc<GroupConfigs>,
    state: Mutex<State>,
    /// Bumped when records become available again (released, lock timed
    /// out), so waiting share fetches look again.
    changed: watch::Sender<u64>,
    /// `__share_group_state`, once the broker attached it.
    store: std::sync::OnceLock<ShareStore>,
    /// Orders flushes: each writes the state as of its own turn.
    flushing: Mutex<()>,
}

impl ShareGroups {
    pub fn new(config: ShareGroupConfig) -> ShareGroups {
        ShareGroups::with_configs(config, Arc::default())
    }

    /// Share groups whose group configs live in `configs`.
    pub fn with_configs(config: ShareGroupConfig, configs: Arc<GroupConfigs>) -> ShareGroups {
        ShareGroups {
            config,
            configs,
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
            store: std::sync::OnceLock::new(),
            flushing: Mutex::new(()),
        }
    }

    /// Attaches the store and takes over the state it replayed: share
    /// groups without members, their partitions and configs.
    pub fn restore(&self, store: ShareStore, restored: Restored) {
        let now = Instant::now();
        let mut st = self.lock();
        for ((group, tp), stored) in restored.partitions {
            st.groups
                .entry(group)
                .or_default()
                .partitions
                .insert(tp, SharePartition::restored(&stored, now));
        }
        for (group, configs) in restored.configs {
            self.configs.replace(&group, Some(configs));
        }
        drop(st);
        // Only the first store counts (the broker attaches one).
        let _ = self.store.set(store);
    }

    /// Writes what changed since the last flush to `__share_group_state`
    /// (nothing without a store). Blocking: the acknowledgements a response
    /// confirms are written before it is sent.
    pub fn flush(&self) -> Result<(), runnel_log::LogError> {
        let _turn = self.flushing.lock().unwrap_or_else(|e| e.into_inner());
        let mut writes = Vec::new();
        {
            let mut st = self.lock();
            for (group_id, group) in st.groups.iter_mut() {
                for (tp, p) in group.partitions.iter_mut() {
                    if p.dirty {
                        p.dirty = false;
                        writes.push(Write::Partition(
                            group_id.clone(),
                            tp.clone(),
                            Some(p.stored()),
                        ));
                    }
                }
            }
            writes.append(&mut st.pending);
        }
        match self.store.get() {
            Some(store) => store.write(writes, crate::now_ms()),
            None => Ok(()),
        }
    }

    pub fn config(&self) -> &ShareGroupConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees every time records become available again.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The share group configs of `group_id`: (name, value, set for the
    /// group).
    pub fn group_configs(&self, group_id: &str) -> Vec<(String, String, bool)> {
        let o = self.configs.get(group_id);
        let eff = settings(&self.config, o.as_ref());
        let defaults = [
            (
                "share.auto.offset.reset",
                if eff.earliest { "earliest" } else { "latest" }.to_string(),
            ),
            ("share.delivery.count.limit", eff.limit.to_string()),
            (
                "share.isolation.level",
                if eff.read_committed {
                    "read_committed"
                } else {
                    "read_uncommitted"
                }
                .to_string(),
            ),
            (
                "share.record.lock.duration.ms",
                eff.lock.as_millis().to_string(),
            ),
        ];
        defaults
            .into_iter()
            .map(|(k, v)| {
                let set = o.as_ref().is_some_and(|o| o.contains_key(k));
                (k.to_string(), v, set)
            })
            .collect()
    }

    /// Checks a change of one of the `share.*` group configs (`None`:
    /// deleted).
    pub fn check_group_config(&self, key: &str, value: Option<&str>) -> Result<(), String> {
        match value {
            Some(v) => valid_config(key, v),
            None if GROUP_CONFIGS.contains(&key) => Ok(()),
            None => Err(format!("Unknown group config name: {key}")),
        }
    }

    /// Queues the group's configs (every kind's) to be written by the next
    /// [`ShareGroups::flush`].
    pub fn write_group_configs(&self, group_id: &str) {
        let snapshot = self.configs.get(group_id);
        self.lock()
            .pending
            .push(Write::Configs(group_id.to_string(), snapshot));
    }

    /// The acquisition lock duration of the group's records.
    pub fn lock_duration(&self, group_id: &str) -> Duration {
        settings(&self.config, self.configs.get(group_id).as_ref()).lock
    }

    /// Whether `group_id` is a share group.
    pub fn exists(&self, group_id: &str) -> bool {
        self.lock().groups.contains_key(group_id)
    }

    /// ShareGroupHeartbeat. `view` holds every topic of the broker.
    pub fn heartbeat(
        &self,
        now: Instant,
        req: Heartbeat,
        view: &TopicView,
    ) -> Result<HeartbeatReply, Refusal> {
        if req.group_id.is_empty() {
            return Err(err(
                ResponseError::InvalidRequest,
                "GroupId can't be empty.",
            ));
        }
        if req.member_id.is_empty() {
            return Err(err(
                ResponseError::InvalidRequest,
                "MemberId can't be empty.",
            ));
        }
        let interval = i32::try_from(self.config.heartbeat_interval.as_millis()).unwrap_or(5000);
        let mut guard = self.lock();
        let st = &mut *guard;
        let limit = settings(&self.config, self.configs.get(&req.group_id).as_ref()).limit;
        let mut released = false;
        let reply = {
            let group = match req.member_epoch {
                0 => {
                    if req.topics.as_ref().is_none_or(|t| t.is_empty()) {
                        return Err(err(
                            ResponseError::InvalidRequest,
                            "SubscribedTopicNames must be set in first request.",
                        ));
                    }
                    st.groups.entry(req.group_id.clone()).or_default()
                }
                _ => match st.groups.get_mut(&req.group_id) {
                    Some(g) => g,
                    None => {
                        return Err(err(
                            ResponseError::UnknownMemberId,
                            format!("member {} is not in the group", req.member_id),
                        ))
                    }
                },
            };
            match req.member_epoch {
                0 => {
                    let rejoin = group.members.remove(&req.member_id).is_some();
                    if rejoin {
                        released |= release_member(group, &req.member_id, limit);
                    }
                    group.members.insert(
                        req.member_id.clone(),
                        Member {
                            rack_id: None,
                            client_id: String::new(),
                            client_host: String::new(),
                            epoch: 0,
                            topics: Vec::new(),
                            assigned: BTreeSet::new(),
                            last_seen: now,
                            sent: None,
                        },
                    );
                    update(group, &req);
                    group.epoch += 1;
                }
                -1 => {
                    group.target.remove(&req.member_id);
                    if group.members.remove(&req.member_id).is_none() {
                        return Err(err(
                            ResponseError::UnknownMemberId,
                            format!("member {} is not in the group", req.member_id),
                        ));
                    }
                    group.epoch += 1;
                    released |= release_member(group, &req.member_id, limit);
                    drop(guard);
                    if released {
                        self.notify();
                    }
                    return Ok(HeartbeatReply {
                        member_id: req.member_id,
                        member_epoch: -1,
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
                    if epoch != m.epoch {
                        return Err(err(
                            ResponseError::FencedMemberEpoch,
                            format!("epoch {epoch} is not the member's {}", m.epoch),
                        ));
                    }
                    m.last_seen = now;
                    if update(group, &req) {
                        group.epoch += 1;
                    }
                }
            }
            let counts = subscribed_counts(group, view);
            if counts != group.topic_counts && group.epoch == group.assignment_epoch {
                group.epoch += 1;
            }
            if group.epoch > group.assignment_epoch {
                assign(group, view);
            }
            let target = group
                .target
                .get(&req.member_id)
                .cloned()
                .unwrap_or_default();
            let assignment_epoch = group.assignment_epoch;
            let Some(m) = group.members.get_mut(&req.member_id) else {
                return Err(err(ResponseError::UnknownMemberId, "member vanished"));
            };
            if m.epoch != assignment_epoch {
                m.epoch = assignment_epoch;
                m.assigned = target;
            }
            let current = (m.epoch, m.assigned.clone());
            let send = req.member_epoch == 0 || m.sent.as_ref() != Some(&current);
            m.sent = Some(current);
            HeartbeatReply {
                member_id: req.member_id.clone(),
                member_epoch: m.epoch,
                heartbeat_interval_ms: interval,
                assignment: send.then(|| m.assigned.clone()),
            }
        };
        drop(guard);
        if released {
            self.notify();
        }
        Ok(reply)
    }

    /// Session timeouts and acquisition lock timeouts.
    pub fn tick(&self, now: Instant) {
        let session = self.config.session_timeout;
        let mut freed = false;
        let mut st = self.lock();
        let State {
            groups, sessions, ..
        } = &mut *st;
        for (id, group) in groups.iter_mut() {
            let limit = settings(&self.config, self.configs.get(id).as_ref()).limit;
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| m.last_seen + session <= now)
                .map(|(id, _)| id.clone())
                .collect();
            for member in expired {
                info!(group = %id, %member, "share group member removed: session timeout expired");
                group.members.remove(&member);
                group.epoch += 1;
                sessions.remove(&(id.clone(), member.clone()));
                freed |= release_member(group, &member, limit);
            }
            for p in group.partitions.values_mut() {
                freed |= p.expire(now, limit);
            }
        }
        drop(st);
        if freed {
            self.notify();
        }
    }

    /// Checks and moves a member's share session for a request carrying
    /// `epoch`; `peer` is the connection it came on. Returns what to do.
    pub fn session(
        &self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
        peer: Option<SocketAddr>,
        fetch: bool,
    ) -> Result<SessionOp, ResponseError> {
        let mut st = self.lock();
        let key = (group_id.to_string(), member_id.to_string());
        match epoch {
            0 if fetch => {
                st.sessions.insert(
                    key,
                    Session {
                        next_epoch: 1,
                        partitions: BTreeSet::new(),
                        peer,
                    },
                );
                Ok(SessionOp::Open)
            }
            0 => Err(ResponseError::InvalidShareSessionEpoch),
            -1 => {
                if st.sessions.contains_key(&key) {
                    Ok(SessionOp::Close)
                } else {
                    Err(ResponseError::ShareSessionNotFound)
                }
            }
            e => {
                let s = st
                    .sessions
                    .get_mut(&key)
                    .ok_or(ResponseError::ShareSessionNotFound)?;
                if s.next_epoch != e {
                    return Err(ResponseError::InvalidShareSessionEpoch);
                }
                s.next_epoch = if e == i32::MAX { 1 } else { e + 1 };
                s.peer = peer;
                Ok(SessionOp::Continue)
            }
        }
    }

    /// Adds and then forgets partitions of a session, in that order as
    /// Kafka's share sessions do (a partition a request names only to
    /// acknowledge its records, and forgets in the same request, is out of
    /// the session: no records are acquired for it that the member would
    /// drop); returns its partitions.
    pub fn session_partitions(
        &self,
        group_id: &str,
        member_id: &str,
        add: &[Tp],
        forget: &[Tp],
    ) -> Vec<Tp> {
        let mut st = self.lock();
        let key = (group_id.to_string(), member_id.to_string());
        let Some(s) = st.sessions.get_mut(&key) else {
            return Vec::new();
        };
        s.partitions.extend(add.iter().cloned());
        for tp in forget {
            s.partitions.remove(tp);
        }
        s.partitions.iter().cloned().collect()
    }

    /// Closes a member's session, giving back what it holds.
    pub fn close_session(&self, group_id: &str, member_id: &str) {
        self.close_session_if(group_id, member_id, |_| true);
    }

    /// Closes a member's session (if any), giving back what the member
    /// holds, when `still` holds for the session as it is under the lock
    /// the close takes; true when a session closed.
    fn close_session_if(
        &self,
        group_id: &str,
        member_id: &str,
        still: impl FnOnce(Option<&Session>) -> bool,
    ) -> bool {
        let mut guard = self.lock();
        let st = &mut *guard;
        let key = (group_id.to_string(), member_id.to_string());
        if !still(st.sessions.get(&key)) {
            return false;
        }
        let closed = st.sessions.remove(&key).is_some();
        let limit = settings(&self.config, self.configs.get(group_id).as_ref()).limit;
        let freed = st
            .groups
            .get_mut(group_id)
            .is_some_and(|g| release_member(g, member_id, limit));
        drop(guard);
        if freed {
            self.notify();
        }
        closed
    }

    /// The sessions last used on connection `peer`: (group, member).
    fn sessions_on(&self, peer: SocketAddr) -> Vec<(String, String)> {
        self.lock()
            .sessions
            .iter()
            .filter(|(_, s)| s.peer == Some(peer))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// A connection closed: the sessions last used on it close, giving
    /// back what their members hold. Each is closed only if it is still on
    /// that connection when its turn comes: a member may have opened a new
    /// session (epoch 0) on another connection since, and that session,
    /// and what it acquired, stay (as Kafka marks the old connection's
    /// session stale when it is replaced).
    pub fn connection_closed(&self, peer: SocketAddr) {
        for (group, member) in self.sessions_on(peer) {
            self.close_session_if(&group, &member, |s| s.is_some_and(|s| s.peer == Some(peer)));
        }
    }

    /// Applies acknowledgements of `member` on one partition: each batch is
    /// (first, last, types) with one type for the whole range or one per
    /// offset. INVALID_RECORD_STATE when a record is not acquired by the
    /// member (that batch is skipped, the others apply).
    pub fn acknowledge(
        &self,
        group_id: &str,
        member_id: &str,
        tp: &Tp,
        batches: &[(i64, i64, Vec<i8>)],
    ) -> Result<(), ResponseError> {
        self.acknowledge_at(group_id, member_id, tp, batches, false, Instant::now())
    }

    /// [`ShareGroups::acknowledge`], with `renew` allowing the type
    /// [`ACK_RENEW`] (a v2 request that says it carries renewals), whose
    /// locks start again at `now`.
    pub fn acknowledge_at(
        &self,
        group_id: &str,
        member_id: &str,
        tp: &Tp,
        batches: &[(i64, i64, Vec<i8>)],
        renew: bool,
        now: Instant,
    ) -> Result<(), ResponseError> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let Settings { limit, lock, .. } =
            settings(&self.config, self.configs.get(group_id).as_ref());
        let last_type = if renew { ACK_RENEW } else { ACK_REJECT };
        let p = st
            .groups
            .get_mut(group_id)
            .and_then(|g| g.partitions.get_mut(tp))
            .ok_or(ResponseError::InvalidRecordState)?;
        let mut result = Ok(());
        let mut freed = false;
        for (first, last, types) in batches {
            let (first, last) = (*first, *last);
            let len = last
                .checked_sub(first)
                .and_then(|d| d.checked_add(1))
                .unwrap_or(0);
            let valid_types = types.iter().all(|t| (ACK_GAP..=last_type).contains(t));
            if len <= 0 || types.is_empty() || !valid_types {
                result = Err(ResponseError::InvalidRequest);
                continue;
            }
            if types.len() != 1 && types.len() as i64 != len {
                result = Err(ResponseError::InvalidRequest);
                continue;
            }
            let type_of = |o: i64| {
                if types.len() == 1 {
                    types[0]
                } else {
                    // In range: one type per offset was checked above.
                    usize::try_from(o - first)
                        .ok()
                        .and_then(|i| types.get(i).copied())
                        .unwrap_or(-1)
                }
            };
            // A gap may name offsets that were never records.
            let held = (first..=last).all(|o| match p.records.get(&o) {
                Some(r) => r.state == RecState::Acquired && r.owner == member_id,
                None => type_of(o) == ACK_GAP && o >= p.start && o < p.end,
            });
            if !held {
                result = Err(ResponseError::InvalidRecordState);
                continue;
            }
            for o in first..=last {
                if let Some(rec) = p.records.get_mut(&o) {
                    match type_of(o) {
                        ACK_RELEASE => freed |= SharePartition::give_back(rec, limit),
                        ACK_RENEW => rec.locked_until = now + lock,
                        _ => rec.state = RecState::Done,
                    }
                }
            }
        }
        p.advance();
        p.dirty = true;
        drop(guard);
        if freed {
            self.notify();
        }
        result
    }

    /// Where new records of a partition are read from for the group, and
    /// how many more offsets may be in flight. Initializes the partition
    /// (`auto.offset.reset`) on first use; `bounds` is the log's
    /// (start, end) as the caller read it before taking the share lock.
    ///
    /// That end may be older than the partition's: another fetch can read
    /// a later end and acquire up to it in between. The partition is then
    /// left as it is (the start returned is past `bounds.1`: nothing to
    /// read); whether the log really is shorter is for
    /// [`ShareGroups::truncated`] to find out.
    pub fn next_read(&self, group_id: &str, tp: &Tp, bounds: (i64, i64)) -> Option<(i64, i64)> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let earliest = settings(&self.config, self.configs.get(group_id).as_ref()).earliest;
        let group = st.groups.get_mut(group_id)?;
        let p = partition(group, tp, bounds, earliest);
        let room = self.config.partition_max_record_locks - (p.end - p.start);
        Some((p.end, room))
    }

    /// Checks a partition whose end is past the log's end as a fetch saw
    /// it ([`ShareGroups::next_read`]) against the log's bounds read by
    /// `bounds` under the share lock, so that no acquisition can come in
    /// between: when the log is shorter still (a topic deleted and made
    /// again, a tail lost in a crash), the partition starts again at the
    /// log's end, its in-flight records forgotten. True when it did.
    pub fn truncated(&self, group_id: &str, tp: &Tp, bounds: impl FnOnce() -> (i64, i64)) -> bool {
        let mut guard = self.lock();
        let Some(p) = guard
            .groups
            .get_mut(group_id)
            .and_then(|g| g.partitions.get_mut(tp))
        else {
            return false;
        };
        let (log_start, log_end) = bounds();
        if p.end <= log_end {
            return false;
        }
        let at = log_end.max(log_start);
        warn!(
            group = group_id,
            topic = %tp.0,
            partition = tp.1,
            start = p.start,
            end = p.end,
            log_end,
            in_flight = p.records.len(),
            "the log is shorter than the share partition: it starts again at the log end"
        );
        p.start = at;
        p.end = at;
        p.records.clear();
        p.dirty = true;
        true
    }

    /// Whether the group reads only committed records
    /// (`share.isolation.level=read_committed`).
    pub fn read_committed(&self, group_id: &str) -> bool {
        settings(&self.config, self.configs.get(group_id).as_ref()).read_committed
    }

    /// Acquires for `member` the records available again (released or
    /// timed out), at most `max` of them, in offset order.
    pub fn acquire_available(
        &self,
        group_id: &str,
        member_id: &str,
        tp: &Tp,
        max: i64,
        now: Instant,
    ) -> Vec<Acquired> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let Settings { limit, lock, .. } =
            settings(&self.config, self.configs.get(group_id).as_ref());
        let Some(p) = st
            .groups
            .get_mut(group_id)
            .and_then(|g| g.partitions.get_mut(tp))
        else {
            return Vec::new();
        };
        // Locks found run out here free records for every waiting fetch,
        // not only this one (which may take fewer than were freed), as the
        // lock timeout does in `tick`.
        let freed = p.expire(now, limit);
        let mut out = Vec::new();
        let mut n = 0;
        for (o, rec) in p.records.iter_mut() {
            if n >= max {
                break;
            }
            if rec.state == RecState::Available {
                rec.state = RecState::Acquired;
                rec.delivery_count = rec.delivery_count.saturating_add(1);
                rec.owner = member_id.to_string();
                rec.locked_until = now + lock;
                push(&mut out, *o, rec.delivery_count);
                n += 1;
            }
        }
        drop(guard);
        if freed {
            self.notify();
        }
        out
    }

    /// Acquires for `member` the new records at `from..to` (whole batches
    /// read from the log), if the partition's end is still `from`. Offsets
    /// in `skip` (inclusive ranges, in order: records of aborted
    /// transactions and transaction markers under `read_committed`) are
    /// archived at once instead, as Kafka does.
    pub fn acquire_new(
        &self,
        group_id: &str,
        member_id: &str,
        tp: &Tp,
        (from, to): (i64, i64),
        skip: &[(i64, i64)],
        now: Instant,
    ) -> Vec<Acquired> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let lock = settings(&self.config, self.configs.get(group_id).as_ref()).lock;
        let Some(p) = st
            .groups
            .get_mut(group_id)
            .and_then(|g| g.partitions.get_mut(tp))
        else {
            return Vec::new();
        };
        if p.end != from || to <= from {
            return Vec::new();
        }
        let mut out = Vec::new();
        for o in from..to {
            let skipped = skip.iter().any(|(a, b)| (*a..=*b).contains(&o));
            p.records.insert(
                o,
                Rec {
                    state: if skipped {
                        RecState::Done
                    } else {
                        RecState::Acquired
                    },
                    delivery_count: i16::from(!skipped),
                    owner: if skipped {
                        String::new()
                    } else {
                        member_id.to_string()
                    },
                    locked_until: now + lock,
                },
            );
            if !skipped {
                push(&mut out, o, 1);
            }
        }
        p.end = to;
        if !skip.is_empty() {
            // Archived records are written like acknowledged ones.
            p.advance();
            p.dirty = true;
        }
        out
    }

    /// Every share group: (id, state name).
    pub fn list(&self) -> Vec<(String, &'static str)> {
        self.lock()
            .groups
            .iter()
            .map(|(id, g)| (id.clone(), state_name(g)))
            .collect()
    }

    /// ShareGroupDescribe for one group.
    pub fn describe(&self, group_id: &str) -> Option<GroupView> {
        let st = self.lock();
        let g = st.groups.get(group_id)?;
        Some(GroupView {
            state: state_name(g),
            epoch: g.epoch,
            assignment_epoch: g.assignment_epoch,
            assignor: ASSIGNOR.to_string(),
            members: g
                .members
                .iter()
                .map(|(id, m)| MemberView {
                    member_id: id.clone(),
                    instance_id: None,
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    topics: m.topics.clone(),
                    regex: None,
                    assigned: m.assigned.clone(),
                    target: m.assigned.clone(),
                })
                .collect(),
        })
    }

    /// The start offsets (SPSO) of the group's initialized partitions, each
    /// with how many records after it are done already; `None` when it is
    /// not a share group.
    pub fn start_offsets(&self, group_id: &str) -> Option<BTreeMap<Tp, (i64, i64)>> {
        let now = Instant::now();
        let mut guard = self.lock();
        let st = &mut *guard;
        let limit = settings(&self.config, self.configs.get(group_id).as_ref()).limit;
        let g = st.groups.get_mut(group_id)?;
        let mut freed = false;
        let offsets = g
            .partitions
            .iter_mut()
            .map(|(tp, p)| {
                freed |= p.expire(now, limit);
                let done = p
                    .records
                    .values()
                    .filter(|r| r.state == RecState::Done)
                    .count() as i64;
                (tp.clone(), (p.start, done))
            })
            .collect();
        drop(guard);
        if freed {
            self.notify();
        }
        Some(offsets)
    }

    /// AlterShareGroupOffsets: sets start offsets of an empty group (made
    /// if missing). NON_EMPTY_GROUP while it has members.
    pub fn alter_offsets(
        &self,
        group_id: &str,
        offsets: &[(Tp, i64)],
    ) -> Result<(), ResponseError> {
        let mut st = self.lock();
        let group = st.groups.entry(group_id.to_string()).or_default();
        if !group.members.is_empty() {
            return Err(ResponseError::NonEmptyGroup);
        }
        for (tp, offset) in offsets {
            group.partitions.insert(
                tp.clone(),
                SharePartition {
                    start: *offset,
                    end: *offset,
                    records: BTreeMap::new(),
                    dirty: true,
                },
            );
        }
        Ok(())
    }

    /// DeleteShareGroupOffsets: forgets the state of whole topics of an
    /// empty group. `Err` for the group as a whole.
    pub fn delete_offsets(&self, group_id: &str, topics: &[String]) -> Result<(), ResponseError> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let group = st
            .groups
            .get_mut(group_id)
            .ok_or(ResponseError::GroupIdNotFound)?;
        if !group.members.is_empty() {
            return Err(ResponseError::NonEmptyGroup);
        }
        let gone: Vec<Tp> = group
            .partitions
            .keys()
            .filter(|(t, _)| topics.contains(t))
            .cloned()
            .collect();
        for tp in gone {
            group.partitions.remove(&tp);
            st.pending
                .push(Write::Partition(group_id.to_string(), tp, None));
        }
        Ok(())
    }

    /// Forgets a group without members (DeleteGroups).
    pub fn remove_if_empty(&self, group_id: &str) -> Result<(), ResponseError> {
        let mut st = self.lock();
        match st.groups.get(group_id) {
            Some(g) if !g.members.is_empty() => Err(ResponseError::NonEmptyGroup),
            _ => {
                st.groups.remove(group_id);
                st.sessions.retain(|(g, _), _| g != group_id);
                self.configs.replace(group_id, None);
                st.pending.push(Write::Configs(group_id.to_string(), None));
                Ok(())
            }
        }
    }
}

/// Appends an acquired offset, extending the last run when contiguous
/// with the same delivery count.
fn push(out: &mut Vec<Acquired>, offset: i64, delivery_count: i16) {
    if let Some(last) = out.last_mut() {
        if last.last + 1 == offset && last.delivery_count == delivery_count {
            last.last = offset;
            return;
        }
    }
    out.push(Acquired {
        first: offset,
        last: offset,
        delivery_count,
    });
}

/// The partition's state, created (and moved forward past records the log
/// no longer has) as needed.
fn partition<'a>(
    group: &'a mut Group,
    tp: &Tp,
    (log_start, log_end): (i64, i64),
    earliest: bool,
) -> &'a mut SharePartition {
    let p = group.partitions.entry(tp.clone()).or_insert_with(|| {
        let at = if earliest { log_start } else { log_end };
        SharePartition {
            start: at,
            end: at,
            records: BTreeMap::new(),
            dirty: true,
        }
    });
    // `log_start` may be older than the log's (it only grows): a partition
    // below it is below the log's too. An end past `log_end` is not
    // checked here: see `ShareGroups::truncated`.
    if p.end < log_start {
        // Every record of it was deleted.
        p.start = log_start;
        p.end = log_start;
        p.records.clear();
        p.dirty = true;
    } else if p.start < log_start {
        p.records.retain(|o, _| *o >= log_start);
        p.start = log_start;
        p.advance();
        p.dirty = true;
    }
    p
}

fn release_member(group: &mut Group, member: &str, limit: i16) -> bool {
    let mut freed = false;
    for p in group.partitions.values_mut() {
        freed |= p.release_member(member, limit);
    }
    freed
}

/// Applies what a heartbeat says of a member; true when its subscription
/// changed.
fn update(group: &mut Group, req: &Heartbeat) -> bool {
    let Some(m) = group.members.get_mut(&req.member_id) else {
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
    if req.rack_id.is_some() {
        m.rack_id = req.rack_id.clone();
    }
    if !req.client_id.is_empty() || m.client_id.is_empty() {
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
    }
    changed
}

fn subscribed_counts(group: &Group, view: &TopicView) -> BTreeMap<String, i32> {
    group
        .members
        .values()
        .flat_map(|m| m.topics.iter())
        .filter_map(|t| view.get(t).map(|n| (t.clone(), *n)))
        .collect()
}

/// Kafka's share group state names.
fn state_name(g: &Group) -> &'static str {
    if g.members.is_empty() {
        "Empty"
    } else {
        "Stable"
    }
}

/// Computes the target assignment at the group epoch with [`simple`].
/// Members take theirs on their next heartbeat, with nothing revoked first
/// (a partition may be fetched by several members).
fn assign(group: &mut Group, view: &TopicView) {
    let subs: BTreeMap<String, BTreeSet<String>> = group
        .members
        .iter()
        .map(|(id, m)| {
            (
                id.clone(),
                m.topics
                    .iter()
                    .filter(|t| view.contains_key(*t))
                    .cloned()
                    .collect(),
            )
        })
        .collect();
    group.target = simple(&subs, view);
    group.topic_counts = subscribed_counts(group, view);
    group.assignment_epoch = group.epoch;
}

/// The simple assignor, per topic: with at least as many partitions as
/// subscribers, partitions go round-robin to the subscribers (members in
/// id order), each partition to one; with more subscribers than
/// partitions, every subscriber gets one partition, round-robin, so each
/// partition is shared by about as many members as the others.
pub fn simple(
    subs: &BTreeMap<String, BTreeSet<String>>,
    view: &TopicView,
) -> HashMap<String, BTreeSet<Tp>> {
    let mut out: HashMap<String, BTreeSet<Tp>> =
        subs.keys().map(|m| (m.clone(), BTreeSet::new())).collect();
    let topics: BTreeSet<&String> = subs.values().flatten().collect();
    for topic in topics {
        let n = view.get(topic).copied().unwrap_or(0).max(0) as usize;
        if n == 0 {
            continue;
        }
        let members: Vec<&String> = subs
            .iter()
            .filter(|(_, s)| s.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() {
            continue;
        }
        let slots = n.max(members.len());
        for i in 0..slots {
            let (m, p) = (members[i % members.len()], i % n);
            if let Some(set) = out.get_mut(m) {
                set.insert((topic.clone(), p as i32));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
