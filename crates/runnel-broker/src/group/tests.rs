//! State machine tests driven directly, with explicit time.

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    c: Coordinator,
    t0: Instant,
}

const DELAY: Duration = Duration::from_millis(300);

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let log = runnel_log::Log::open(dir.path(), Default::default()).unwrap();
    let offsets = OffsetStore::open(&log, 1).unwrap();
    let c = Coordinator::new(
        GroupConfig {
            initial_rebalance_delay: DELAY,
            ..GroupConfig::default()
        },
        offsets,
    );
    Fixture {
        _dir: dir,
        c,
        t0: Instant::now(),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn join_req(member: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member.into(),
        instance_id: instance.map(str::to_string),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 5_000,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("{member}:{p}"))))
            .collect(),
        require_known_member_id: false,
    }
}

#[allow(clippy::too_many_arguments)] // mirrors the wire request
fn sync(
    c: &Coordinator,
    now: Instant,
    group_id: &str,
    generation: i32,
    member_id: &str,
    instance_id: Option<&str>,
    protocol: (Option<&str>, Option<&str>),
    assignments: Vec<(String, Bytes)>,
) -> Reply<SyncResult> {
    c.sync(
        now,
        SyncRequest {
            group_id,
            generation,
            member_id,
            instance_id,
            protocol_type: protocol.0,
            protocol_name: protocol.1,
            assignments,
        },
    )
}

fn ready<T: std::fmt::Debug>(r: Reply<T>) -> T {
    match r {
        Reply::Ready(t) => t,
        Reply::Wait(_) => panic!("expected an immediate answer"),
    }
}

fn waiting<T>(r: Reply<T>) -> oneshot::Receiver<T> {
    match r {
        Reply::Wait(rx) => rx,
        Reply::Ready(_) => panic!("expected to wait"),
    }
}

fn done<T>(rx: &mut oneshot::Receiver<T>) -> T {
    rx.try_recv().expect("answer sent")
}

fn pending<T>(rx: &mut oneshot::Receiver<T>) -> bool {
    matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty))
}

/// Two members join a new group and sync; returns (leader, follower) ids.
fn stable_pair(f: &Fixture) -> (String, String) {
    let mut a = waiting(f.c.join(f.t0, join_req("", None, &["range"])));
    let mut b = waiting(f.c.join(f.t0 + ms(10), join_req("", None, &["range"])));
    f.c.tick(f.t0 + ms(100));
    assert!(pending(&mut a), "initial delay holds the first rebalance");
    f.c.tick(f.t0 + ms(400));
    let (ja, jb) = (done(&mut a), done(&mut b));
    assert_eq!((ja.error, jb.error), (0, 0));
    assert_eq!(ja.generation_id, 1);
    assert_eq!(ja.leader, ja.member_id, "first member leads");
    assert_eq!(ja.members.len(), 2);
    assert!(jb.members.is_empty());
    assert_eq!(ja.protocol_name.as_deref(), Some("range"));
    let mut fs = waiting(sync(
        &f.c,
        f.t0 + ms(410),
        "g",
        1,
        &jb.member_id,
        None,
        (None, None),
        vec![],
    ));
    let ls = ready(sync(
        &f.c,
        f.t0 + ms(420),
        "g",
        1,
        &ja.member_id,
        None,
        (None, None),
        vec![
            (ja.member_id.clone(), Bytes::from_static(b"A")),
            (jb.member_id.clone(), Bytes::from_static(b"B")),
        ],
    ));
    assert_eq!(ls.assignment, Bytes::from_static(b"A"));
    assert_eq!(done(&mut fs).assignment, Bytes::from_static(b"B"));
    assert_eq!(f.c.describe("g").unwrap().state, GroupState::Stable);
    (ja.member_id, jb.member_id)
}

#[test]
fn join_sync_heartbeat_and_metadata_passthrough() {
    let f = fixture();
    let (a, b) = stable_pair(&f);
    let t = f.t0 + ms(500);
    assert_eq!(f.c.heartbeat(t, "g", 1, &a, None), 0);
    assert_eq!(f.c.heartbeat(t, "g", 1, &b, None), 0);
    assert_eq!(
        f.c.heartbeat(t, "g", 0, &b, None),
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        f.c.heartbeat(t, "g", 1, "nobody", None),
        ResponseError::UnknownMemberId.code()
    );
    let d = f.c.describe("g").unwrap();
    assert_eq!(d.protocol, "range");
    assert_eq!(d.members[0].member_id, a);
    assert_eq!(d.members[0].metadata, Bytes::from_static(b":range"));
}

#[test]
fn member_id_required_dance() {
    let f = fixture();
    let mut req = join_req("", None, &["range"]);
    req.require_known_member_id = true;
    let r = ready(f.c.join(f.t0, req.clone()));
    assert_eq!(r.error, ResponseError::MemberIdRequired.code());
    assert!(!r.member_id.is_empty());
    req.member_id = r.member_id.clone();
    let mut rx = waiting(f.c.join(f.t0 + ms(1), req.clone()));
    f.c.tick(f.t0 + ms(400));
    let j = done(&mut rx);
    assert_eq!((j.error, j.member_id), (0, r.member_id));
    req.member_id = "made-up".into();
    assert_eq!(
        ready(f.c.join(f.t0 + ms(2), req)).error,
        ResponseError::UnknownMemberId.code()
    );
}

#[test]
fn new_member_triggers_rebalance_and_generation_bumps() {
    let f = fixture();
    let (a, b) = stable_pair(&f);
    let t = f.t0 + ms(1000);
    let mut c = waiting(f.c.join(t, join_req("", None, &["range"])));
    assert_eq!(
        f.c.heartbeat(t, "g", 1, &a, None),
        ResponseError::RebalanceInProgress.code()
    );
    // Commits of the old generation are still accepted while rebalancing.
    assert!(f.c.check_commit("g", 1, &a, None).is_ok());
    let mut ra = waiting(f.c.join(t + ms(5), join_req(&a, None, &["range"])));
    assert!(pending(&mut c));
    let mut rb = waiting(f.c.join(t + ms(6), join_req(&b, None, &["range"])));
    let (ja, jb, jc) = (done(&mut ra), done(&mut rb), done(&mut c));
    assert_eq!(
        (ja.generation_id, jb.generation_id, jc.generation_id),
        (2, 2, 2)
    );
    assert_eq!(ja.leader, a, "the leader keeps leading");
    assert_eq!(ja.members.len(), 3);
    assert_eq!(
        ready(sync(
            &f.c,
            t + ms(7),
            "g",
            1,
            &b,
            None,
            (None, None),
            vec![]
        ))
        .error,
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        f.c.check_commit("g", 1, &a, None),
        Err(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn rebalance_timeout_removes_members_that_do_not_rejoin() {
    let f = fixture();
    let (a, b) = stable_pair(&f);
    let t = f.t0 + ms(1000);
    let mut ra = waiting(f.c.join(t, join_req(&a, None, &["range", "roundrobin"])));
    f.c.tick(t + ms(4_000));
    assert!(pending(&mut ra));
    assert_eq!(
        f.c.heartbeat(t + ms(4_000), "g", 1, &b, None),
        ResponseError::RebalanceInProgress.code()
    );
    f.c.tick(t + ms(5_001));
    let ja = done(&mut ra);
    assert_eq!(ja.generation_id, 2);
    assert_eq!(ja.members.len(), 1);
    assert_eq!(
        f.c.heartbeat(t + ms(5_002), "g", 2, &b, None),
        ResponseError::UnknownMemberId.code()
    );
}

#[test]
fn session_expiry_and_leave_trigger_rebalances() {
    let f = fixture();
    let (a, b) = stable_pair(&f);
    // a keeps heartbeating, b goes silent.
    let mut t = f.t0 + ms(500);
    for _ in 0..11 {
        t += ms(1_000);
        f.c.heartbeat(t, "g", 1, &a, None);
        f.c.tick(t);
    }
    assert_eq!(
        f.c.heartbeat(t, "g", 1, &b, None),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        f.c.heartbeat(t, "g", 1, &a, None),
        ResponseError::RebalanceInProgress.code()
    );
    let mut ra = waiting(f.c.join(t, join_req(&a, None, &["range"])));
    let ja = done(&mut ra);
    assert_eq!((ja.generation_id, ja.members.len()), (2, 1));
    assert_eq!(
        f.c.leave(t, "g", &[(a.clone(), None)]),
        Ok(vec![0]),
        "leaving works in CompletingRebalance"
    );
    assert_eq!(f.c.describe("g").map(|d| d.state), None);
    assert_eq!(
        f.c.leave(t, "g", &[(a, None)]),
        Err(ResponseError::UnknownMemberId.code())
    );
}

#[test]
fn inconsistent_protocols_are_refused() {
    let f = fixture();
    let _rx = waiting(f.c.join(f.t0, join_req("", None, &["range"])));
    assert_eq!(
        ready(f.c.join(f.t0, join_req("", None, &["sticky"]))).error,
        ResponseError::InconsistentGroupProtocol.code()
    );
    let mut other = join_req("", None, &["range"]);
    other.protocol_type = "connect".into();
    assert_eq!(
        ready(f.c.join(f.t0, other)).error,
        ResponseError::InconsistentGroupProtocol.code()
    );
    assert_eq!(
        ready(f.c.join(f.t0, join_req("", None, &[]))).error,
        ResponseError::InconsistentGroupProtocol.code()
    );
}

#[test]
fn protocol_selection_prefers_common_votes() {
    let f = fixture();
    let mut a = waiting(f.c.join(f.t0, join_req("", None, &["cooperative-sticky", "range"])));
    let _b = waiting(f.c.join(f.t0, join_req("", None, &["range", "cooperative-sticky"])));
    let _c = waiting(f.c.join(f.t0, join_req("", None, &["range"])));
    f.c.tick(f.t0 + ms(400));
    assert_eq!(done(&mut a).protocol_name.as_deref(), Some("range"));
}

#[test]
fn static_member_restart_keeps_assignment_without_rebalance() {
    let f = fixture();
    let mut a = waiting(f.c.join(f.t0, join_req("", Some("i-a"), &["range"])));
    let mut b = waiting(f.c.join(f.t0, join_req("", Some("i-b"), &["range"])));
    f.c.tick(f.t0 + ms(400));
    let (ja, jb) = (done(&mut a), done(&mut b));
    let t = f.t0 + ms(500);
    let mut fs = waiting(sync(
        &f.c,
        t,
        "g",
        1,
        &jb.member_id,
        Some("i-b"),
        (None, None),
        vec![],
    ));
    ready(sync(
        &f.c,
        t,
        "g",
        1,
        &ja.member_id,
        Some("i-a"),
        (None, None),
        vec![(jb.member_id.clone(), Bytes::from_static(b"B"))],
    ));
    done(&mut fs);
    // b restarts: same instance id, no member id.
    let j = ready(f.c.join(t + ms(10), join_req("", Some("i-b"), &["range"])));
    assert_eq!((j.error, j.generation_id), (0, 1));
    assert_ne!(j.member_id, jb.member_id);
    let s = ready(sync(
        &f.c,
        t + ms(11),
        "g",
        1,
        &j.member_id,
        Some("i-b"),
        (None, None),
        vec![],
    ));
    assert_eq!(s.assignment, Bytes::from_static(b"B"));
    assert_eq!(f.c.describe("g").unwrap().state, GroupState::Stable);
    // The old incarnation is fenced.
    assert_eq!(
        f.c.heartbeat(t + ms(12), "g", 1, &jb.member_id, Some("i-b")),
        ResponseError::FencedInstanceId.code()
    );
    assert_eq!(
        ready(f.c.join(t + ms(13), join_req(&jb.member_id, Some("i-b"), &["range"]))).error,
        ResponseError::FencedInstanceId.code()
    );
    assert_eq!(
        f.c.heartbeat(t + ms(14), "g", 1, &ja.member_id, Some("i-a")),
        0
    );
}

#[test]
fn commit_checks_and_simple_commits() {
    let f = fixture();
    assert!(f.c.check_commit("lonely", -1, "", None).is_ok());
    assert_eq!(
        f.c.check_commit("lonely", 3, "m", None),
        Err(ResponseError::IllegalGeneration)
    );
    let (a, _) = stable_pair(&f);
    assert!(f.c.check_commit("g", 1, &a, None).is_ok());
    assert_eq!(
        f.c.check_commit("g", 7, &a, None),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        f.c.check_commit("g", 1, "ghost", None),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        f.c.check_commit("g", -1, "", None),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(f.c.remove_if_empty("g"), Err(ResponseError::NonEmptyGroup));
}

#[test]
fn offsets_of_empty_groups_expire() {
    let f = fixture();
    let c = |offset| Committed {
        offset,
        leader_epoch: -1,
        metadata: None,
        commit_timestamp: 1_000,
    };
    f.c.offsets()
        .write("old", vec![(("t".into(), 0), Some(c(5)))], 1_000)
        .unwrap();
    stable_pair(&f);
    f.c.offsets()
        .write("g", vec![(("t".into(), 0), Some(c(6)))], 1_000)
        .unwrap();
    assert_eq!(f.c.expire_offsets(2_000, 5_000).unwrap(), 0);
    assert_eq!(
        f.c.expire_offsets(7_000, 5_000).unwrap(),
        1,
        "g has members"
    );
    assert!(f.c.offsets().get("old", "t", 0).is_none());
    assert!(f.c.offsets().get("g", "t", 0).is_some());
    let listed: Vec<String> = f.c.list().into_iter().map(|g| g.0).collect();
    assert_eq!(listed, vec!["g".to_string()]);
}

#[test]
fn subscription_parses_consumer_metadata() {
    let mut md = vec![0u8, 1, 0, 0, 0, 2];
    for t in ["a", "bb"] {
        md.extend_from_slice(&(t.len() as i16).to_be_bytes());
        md.extend_from_slice(t.as_bytes());
    }
    md.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(subscription(&Bytes::from(md)), vec!["a", "bb"]);
    assert!(subscription(&Bytes::from_static(&[0, 1, 0, 0, 0, 9, 0])).is_empty());
}

#[test]
fn offsets_expire_a_retention_period_after_the_group_is_seen_empty() {
    let f = fixture();
    let old = Committed {
        offset: 3,
        leader_epoch: -1,
        metadata: None,
        commit_timestamp: 1_000,
    };
    f.c.offsets()
        .write("late", vec![(("t".into(), 0), Some(old))], 1_000)
        .unwrap();
    // First seen empty at 6 000: the old commit time alone does not expire it.
    assert_eq!(f.c.expire_offsets(6_000, 5_000).unwrap(), 0);
    assert_eq!(f.c.expire_offsets(10_999, 5_000).unwrap(), 0);
    assert!(f.c.offsets().get("late", "t", 0).is_some());
    assert_eq!(f.c.expire_offsets(11_000, 5_000).unwrap(), 1);
    assert!(f.c.offsets().get("late", "t", 0).is_none());
}

#[test]
fn a_group_outlives_its_deleted_offsets_until_the_cleanup() {
    let f = fixture();
    let committed = Committed {
        offset: 5,
        leader_epoch: -1,
        metadata: None,
        commit_timestamp: 1_000,
    };
    f.c.offsets()
        .write("solo", vec![(("t".into(), 0), Some(committed))], 1_000)
        .unwrap();
    f.c.offsets()
        .write("solo", vec![(("t".into(), 0), None)], 2_000)
        .unwrap();
    f.c.offsets_deleted("solo", 2_000);
    assert_eq!(
        f.c.describe("solo").map(|d| d.state),
        Some(GroupState::Empty)
    );
    assert!(f.c.list().iter().any(|(g, _, _)| g == "solo"));
    // Kafka's cleanup runs every offsets.retention.check.interval.ms.
    f.c.expire_offsets(2_000 + OFFSETLESS_CLEANUP_MS - 1, 5_000)
        .unwrap();
    assert!(f.c.describe("solo").is_some());
    f.c.expire_offsets(2_000 + OFFSETLESS_CLEANUP_MS, 5_000)
        .unwrap();
    assert!(f.c.describe("solo").is_none());
    assert!(f.c.list().iter().all(|(g, _, _)| g != "solo"));
}

#[test]
fn a_held_group_is_stable_with_its_one_member_and_closed_to_joins() {
    let f = fixture();
    let held = HeldGroup {
        member_id: "g-local".into(),
        client_id: "g-local".into(),
        client_host: "/127.0.0.1".into(),
        partitions: vec![("a".into(), vec![0, 1]), ("bb".into(), vec![2])],
    };
    f.c.hold("g", held.clone());
    assert_eq!(
        f.c.list(),
        vec![("g".to_string(), "consumer".to_string(), GroupState::Stable)]
    );
    let d = f.c.describe("g").unwrap();
    assert_eq!(
        (d.state, d.protocol.as_str()),
        (GroupState::Stable, HELD_PROTOCOL)
    );
    assert_eq!(d.members.len(), 1);
    assert_eq!(subscription(&d.members[0].metadata), vec!["a", "bb"]);
    // Assignment: version 0, then what a consumer decodes.
    let mut a = d.members[0].assignment.clone();
    assert_eq!(bytes::Buf::get_i16(&mut a), 0);
    let decoded = <kafka_protocol::messages::ConsumerProtocolAssignment as kafka_protocol::protocol::Decodable>::decode(&mut a, 0).unwrap();
    let assigned: Vec<(String, Vec<i32>)> = decoded
        .assigned_partitions
        .iter()
        .map(|t| (t.topic.to_string(), t.partitions.clone()))
        .collect();
    assert_eq!(assigned, held.partitions);
    assert_eq!(decoded.user_data, None);
    assert!(a.is_empty());
    assert!(f.c.has_members("g"));
    assert_eq!(f.c.remove_if_empty("g"), Err(ResponseError::NonEmptyGroup));
    let joined = ready(f.c.join(f.t0, join_req("", None, &["range"])));
    assert_eq!(joined.error, ResponseError::GroupMaxSizeReached.code());
    // Only its own holder releases it.
    f.c.release("g", "someone-else");
    assert!(f.c.has_members("g"));
    f.c.release("g", "g-local");
    assert!(!f.c.has_members("g"));
    assert!(f.c.list().is_empty());
    assert_eq!(f.c.remove_if_empty("g"), Ok(()));
}
