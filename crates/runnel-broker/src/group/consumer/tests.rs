#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn view(topics: &[(&str, i32)]) -> TopicView {
    topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

fn tps(list: &[(&str, i32)]) -> BTreeSet<Tp> {
    list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
}

fn hb(member: &str, epoch: i32, owned: Option<BTreeSet<Tp>>) -> Heartbeat {
    Heartbeat {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: 30_000,
        topics: (epoch == 0).then(|| vec!["t".to_string()]),
        owned,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        ..Heartbeat::default()
    }
}

#[test]
fn a_partition_moves_only_after_its_owner_revoked_it() {
    let groups = ConsumerGroups::new(ConsumerGroupConfig::default());
    let v = view(&[("t", 4)]);
    let now = Instant::now();
    let a = groups
        .heartbeat(now, hb("a", 0, Some(tps(&[]))), &v)
        .unwrap();
    assert_eq!(a.member_epoch, 1);
    assert_eq!(
        a.assignment,
        Some(tps(&[("t", 0), ("t", 1), ("t", 2), ("t", 3)]))
    );
    let all = a.assignment.clone().unwrap();
    let a = groups
        .heartbeat(now, hb("a", 1, Some(all.clone())), &v)
        .unwrap();
    assert_eq!(a.assignment, None, "nothing new to say");

    // b joins: the group epoch moves to 2, b gets nothing yet.
    let b = groups
        .heartbeat(now, hb("b", 0, Some(tps(&[]))), &v)
        .unwrap();
    assert_eq!((b.member_epoch, b.assignment.clone()), (2, Some(tps(&[]))));
    assert_eq!(groups.describe("g").unwrap().state, "Reconciling");
    // a is told to keep two: it stays at epoch 1 until it revokes.
    let a = groups.heartbeat(now, hb("a", 1, None), &v).unwrap();
    assert_eq!(a.member_epoch, 1);
    let kept = a.assignment.clone().unwrap();
    assert_eq!(kept.len(), 2);
    let moving: BTreeSet<Tp> = all.difference(&kept).cloned().collect();
    // b asks again: still nothing, a has not let go.
    let b = groups.heartbeat(now, hb("b", 2, None), &v).unwrap();
    assert_eq!(b.assignment, None);
    assert_eq!(groups.check_commit("g", "a", 1), Ok(()));
    // a revokes: its epoch moves on; then b gets the two partitions.
    let a = groups
        .heartbeat(now, hb("a", 1, Some(kept.clone())), &v)
        .unwrap();
    assert_eq!((a.member_epoch, a.assignment), (2, Some(kept.clone())));
    assert_eq!(
        groups.check_commit("g", "a", 1),
        Err(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(
        groups.check_commit("g", "a", 3),
        Err(ResponseError::FencedMemberEpoch)
    );
    let b = groups.heartbeat(now, hb("b", 2, None), &v).unwrap();
    assert_eq!(b.assignment, Some(moving.clone()));
    groups.heartbeat(now, hb("b", 2, Some(moving)), &v).unwrap();
    assert_eq!(groups.describe("g").unwrap().state, "Stable");

    // a leaves: b takes everything at epoch 3.
    let left = groups.heartbeat(now, hb("a", -1, None), &v).unwrap();
    assert_eq!(left.member_epoch, -1);
    let b = groups.heartbeat(now, hb("b", 2, None), &v).unwrap();
    assert_eq!((b.member_epoch, b.assignment), (3, Some(all)));
    assert_eq!(
        groups.heartbeat(now, hb("a", 1, None), &v).unwrap_err().0,
        ResponseError::UnknownMemberId
    );
    assert_eq!(
        groups.heartbeat(now, hb("b", 7, None), &v).unwrap_err().0,
        ResponseError::FencedMemberEpoch
    );
}

#[test]
fn sessions_expire_and_partition_counts_rebalance() {
    let cfg = ConsumerGroupConfig {
        session_timeout: Duration::from_secs(45),
        ..ConsumerGroupConfig::default()
    };
    let groups = ConsumerGroups::new(cfg);
    let now = Instant::now();
    let v = view(&[("t", 2)]);
    groups
        .heartbeat(now, hb("a", 0, Some(tps(&[]))), &v)
        .unwrap();
    let b = groups
        .heartbeat(now, hb("b", 0, Some(tps(&[]))), &v)
        .unwrap();
    assert_eq!(b.assignment, Some(tps(&[])), "a still holds both");
    let a = groups.heartbeat(now, hb("a", 1, None), &v).unwrap();
    assert_eq!(a.assignment, Some(tps(&[("t", 0)])));
    groups
        .heartbeat(now, hb("a", 1, Some(tps(&[("t", 0)]))), &v)
        .unwrap();
    let later = now + Duration::from_secs(30);
    let b = groups.heartbeat(later, hb("b", 2, None), &v).unwrap();
    assert_eq!(b.assignment, Some(tps(&[("t", 1)])));
    groups.tick(now + Duration::from_secs(46));
    let view_ = groups.describe("g").unwrap();
    assert_eq!(view_.members.len(), 1, "a's session expired");
    let b = groups.heartbeat(later, hb("b", 2, None), &v).unwrap();
    assert_eq!(
        (b.member_epoch, b.assignment.clone()),
        (3, Some(tps(&[("t", 0), ("t", 1)])))
    );
    // A third partition appears: the epoch goes up and b gets it.
    let v3 = view(&[("t", 3)]);
    let b = groups
        .heartbeat(later, hb("b", b.member_epoch, None), &v3)
        .unwrap();
    assert_eq!(b.assignment, Some(tps(&[("t", 0), ("t", 1), ("t", 2)])));
}

#[test]
fn range_and_uniform_assignors() {
    let subs: BTreeMap<String, BTreeSet<String>> = [("a", ["t", "u"]), ("b", ["t", "u"])]
        .iter()
        .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
        .collect();
    let v = view(&[("t", 3), ("u", 3)]);
    let r = range(&subs, &v);
    assert_eq!(r["a"], tps(&[("t", 0), ("t", 1), ("u", 0), ("u", 1)]));
    assert_eq!(r["b"], tps(&[("t", 2), ("u", 2)]));
    let u = uniform(&subs, &v, &HashMap::new());
    assert_eq!((u["a"].len(), u["b"].len()), (3, 3));
    // Sticky: what a member keeps stays with it.
    let mut current = HashMap::new();
    current.insert("b".to_string(), tps(&[("t", 0), ("u", 1), ("u", 2)]));
    let u = uniform(&subs, &v, &current);
    assert_eq!(u["b"], tps(&[("t", 0), ("u", 1), ("u", 2)]));
    // Unknown assignors are refused.
    let groups = ConsumerGroups::new(ConsumerGroupConfig::default());
    let mut req = hb("a", 0, Some(tps(&[])));
    req.assignor = Some("sticky".into());
    let e = groups.heartbeat(Instant::now(), req, &v).unwrap_err();
    assert_eq!(e.0, ResponseError::UnsupportedAssignor);
}

#[test]
fn a_regex_matches_whole_names_internal_topics_included() {
    // Kafka's coordinator tries a subscription regex on every topic of its
    // metadata, internal ones too, and wants it to match the whole name
    // (franz-go's Test848RegexBrokerResolves relies on both).
    let groups = ConsumerGroups::new(ConsumerGroupConfig::default());
    let v = view(&[
        ("__consumer_offsets", 2),
        ("orders", 1),
        ("orders-v2", 1),
        ("xorders", 1),
    ]);
    let mut req = hb("a", 0, Some(tps(&[])));
    req.topics = Some(Vec::new());
    req.regex = Some("orders|__consumer_offsets".into());
    let a = groups.heartbeat(Instant::now(), req, &v).unwrap();
    assert_eq!(
        a.assignment,
        Some(tps(&[
            ("__consumer_offsets", 0),
            ("__consumer_offsets", 1),
            ("orders", 0)
        ]))
    );
    let mut bad = hb("b", 0, Some(tps(&[])));
    bad.regex = Some("(".into());
    let e = groups.heartbeat(Instant::now(), bad, &v).unwrap_err();
    assert_eq!(e.0, ResponseError::InvalidRegularExpression);
}

#[test]
fn a_static_member_comes_back_to_its_partitions() {
    let groups = ConsumerGroups::new(ConsumerGroupConfig::default());
    let now = Instant::now();
    let v = view(&[("t", 2)]);
    let mut first = hb("a", 0, Some(tps(&[])));
    first.instance_id = Some("i1".into());
    let a = groups.heartbeat(now, first.clone(), &v).unwrap();
    let mut other = first.clone();
    other.member_id = "x".into();
    assert_eq!(
        groups.heartbeat(now, other.clone(), &v).unwrap_err().0,
        ResponseError::UnreleasedInstanceId
    );
    let mut leave = hb("a", -2, None);
    leave.instance_id = Some("i1".into());
    assert_eq!(groups.heartbeat(now, leave, &v).unwrap().member_epoch, -2);
    let back = groups.heartbeat(now, other, &v).unwrap();
    assert_eq!(back.member_id, "x");
    assert_eq!(
        (back.member_epoch, back.assignment),
        (a.member_epoch, a.assignment)
    );
}

/// Members, epochs, target and current assignments (mid-revocation too)
/// are written to `__consumer_offsets` and come back when it is reopened:
/// members heartbeat on with their epochs; a deleted group stays deleted.
#[test]
fn groups_survive_a_reopen_of_the_offsets_topic() {
    use crate::group::{Coordinator, GroupConfig, OffsetStore};
    use runnel_log::Log;

    let dir = tempfile::tempdir().unwrap();
    let v = view(&[("t", 4)]);
    let now = Instant::now();
    let open = || {
        let log = Log::open(dir.path(), Default::default()).unwrap();
        let offsets = OffsetStore::open(&log, 2).unwrap();
        (log, Coordinator::new(GroupConfig::default(), offsets))
    };
    let (log, c) = open();
    let groups = c.consumer();
    let a = groups
        .heartbeat(now, hb("a", 0, Some(tps(&[]))), &v)
        .unwrap();
    let all = a.assignment.clone().unwrap();
    groups
        .heartbeat(now, hb("a", 1, Some(all.clone())), &v)
        .unwrap();
    groups
        .heartbeat(now, hb("b", 0, Some(tps(&[]))), &v)
        .unwrap();
    // a is told to give up two partitions and has not yet.
    let kept = groups.heartbeat(now, hb("a", 1, None), &v).unwrap();
    let kept = kept.assignment.unwrap();
    c.flush_consumer_groups().unwrap();
    // Another group, deleted once empty.
    let mut other = hb("x", 0, Some(tps(&[])));
    other.group_id = "gone".into();
    groups.heartbeat(now, other.clone(), &v).unwrap();
    other.member_epoch = -1;
    groups.heartbeat(now, other, &v).unwrap();
    c.flush_consumer_groups().unwrap();
    assert_eq!(c.remove_if_empty("gone"), Ok(()));
    c.flush_consumer_groups().unwrap();
    let before = groups.describe("g").unwrap();
    assert_eq!(before.state, "Reconciling");
    drop(c);
    log.close().unwrap();
    drop(log);

    let (_log, c) = open();
    let groups = c.consumer();
    assert_eq!(groups.describe("g").unwrap(), before);
    assert!(!groups.exists("gone"));
    // a goes on at epoch 1 and revokes; b then gets the rest, at epoch 2.
    let a = groups
        .heartbeat(now, hb("a", 1, Some(kept.clone())), &v)
        .unwrap();
    assert_eq!((a.member_epoch, a.assignment), (2, Some(kept.clone())));
    let b = groups.heartbeat(now, hb("b", 2, None), &v).unwrap();
    let moved: BTreeSet<Tp> = all.difference(&kept).cloned().collect();
    assert_eq!((b.member_epoch, b.assignment), (2, Some(moved)));
    assert_eq!(groups.check_commit("g", "a", 2), Ok(()));
}

/// `group.consumer.*` broker settings and a group's `consumer.*` configs:
/// assignors (the first the default), the group size limit, per-group
/// session timeout and heartbeat interval within the broker's bounds.
#[test]
fn broker_settings_and_group_configs() {
    let cfg = ConsumerGroupConfig {
        min_session_timeout: Duration::from_secs(2),
        min_heartbeat_interval: Duration::from_secs(1),
        assignors: parse_assignors("org.apache.kafka.coordinator.group.assignor.RangeAssignor")
            .unwrap(),
        max_size: 2,
        ..ConsumerGroupConfig::default()
    };
    cfg.validate().unwrap();
    assert!(parse_assignors("uniform,sticky").is_err());
    assert!(ConsumerGroupConfig {
        heartbeat_interval: Duration::from_secs(50),
        max_heartbeat_interval: Duration::from_secs(60),
        ..ConsumerGroupConfig::default()
    }
    .validate()
    .is_err());
    let groups = ConsumerGroups::new(cfg);
    let v = view(&[("t", 4)]);
    let now = Instant::now();
    let mut req = hb("a", 0, Some(tps(&[])));
    req.assignor = Some("uniform".into());
    assert_eq!(
        groups.heartbeat(now, req, &v).unwrap_err().0,
        ResponseError::UnsupportedAssignor,
        "uniform is not among the broker's assignors"
    );
    let a = groups
        .heartbeat(now, hb("a", 0, Some(tps(&[]))), &v)
        .unwrap();
    assert_eq!(a.heartbeat_interval_ms, 5_000);
    assert_eq!(groups.describe("g").unwrap().assignor, "range");
    let b = groups
        .heartbeat(now, hb("b", 0, Some(tps(&[]))), &v)
        .unwrap();
    assert_eq!(
        groups
            .heartbeat(now, hb("c", 0, Some(tps(&[]))), &v)
            .unwrap_err()
            .0,
        ResponseError::GroupMaxSizeReached
    );

    // Group configs: checked against the bounds, then used.
    let set = |k: &str, v: &str| vec![(k.to_string(), Some(v.to_string()))];
    let e = groups
        .check_group_configs("g", &set("consumer.session.timeout.ms", "1000"))
        .unwrap_err();
    assert_eq!(
        e,
        "consumer.session.timeout.ms must be in the range 2000 to 60000 inclusive."
    );
    let e = groups
        .check_group_configs("g", &set("consumer.session.timeout.ms", "4000"))
        .unwrap_err();
    assert!(
        e.contains("greater than consumer.heartbeat.interval.ms"),
        "{e}"
    );
    let changes = vec![
        (
            "consumer.session.timeout.ms".to_string(),
            Some("4000".to_string()),
        ),
        (
            "consumer.heartbeat.interval.ms".to_string(),
            Some("1000".to_string()),
        ),
    ];
    groups.check_group_configs("g", &changes).unwrap();
    groups.configs().apply("g", &changes);
    let a = groups.heartbeat(now, hb("a", 1, None), &v).unwrap();
    assert_eq!(a.heartbeat_interval_ms, 1_000);
    groups
        .heartbeat(
            now + Duration::from_secs(3),
            hb("b", b.member_epoch, None),
            &v,
        )
        .unwrap();
    groups.tick(now + Duration::from_millis(4_500));
    let members: Vec<String> = groups
        .describe("g")
        .unwrap()
        .members
        .into_iter()
        .map(|m| m.member_id)
        .collect();
    assert_eq!(members, vec!["b".to_string()], "a's 4 s session ran out");
    assert_eq!(
        groups.group_configs("g"),
        vec![
            (
                "consumer.heartbeat.interval.ms".to_string(),
                "1000".to_string(),
                true
            ),
            (
                "consumer.session.timeout.ms".to_string(),
                "4000".to_string(),
                true
            ),
        ]
    );
}
