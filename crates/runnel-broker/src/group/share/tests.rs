use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::*;

const G: &str = "g";

fn tp() -> Tp {
    ("t".to_string(), 0)
}

fn view(partitions: i32) -> TopicView {
    BTreeMap::from([("t".to_string(), partitions)])
}

fn groups() -> ShareGroups {
    ShareGroups::new(ShareGroupConfig {
        record_lock_duration: Duration::from_millis(1_000),
        delivery_count_limit: 3,
        partition_max_record_locks: 10,
        reset_earliest: true,
        ..ShareGroupConfig::default()
    })
}

fn join(s: &ShareGroups, member: &str, now: Instant, v: &TopicView) -> HeartbeatReply {
    s.heartbeat(
        now,
        Heartbeat {
            group_id: G.into(),
            member_id: member.into(),
            member_epoch: 0,
            topics: Some(vec!["t".into()]),
            ..Heartbeat::default()
        },
        v,
    )
    .expect("join")
}

/// A group with member `m` whose partition starts at 0 of a 100-record log.
fn with_member(now: Instant) -> ShareGroups {
    let s = groups();
    join(&s, "m", now, &view(1));
    assert_eq!(s.next_read(G, &tp(), (0, 100)), Some((0, 10)));
    s
}

/// IncrementalAlterConfigs of `share.*` configs as the coordinator does it
/// for a share group: checked, then set (`None` deletes), all or nothing.
fn alter_group_configs(
    s: &ShareGroups,
    group_id: &str,
    changes: &[(String, Option<String>)],
    validate_only: bool,
) -> Result<(), String> {
    for (k, v) in changes {
        s.check_group_config(k, v.as_deref())?;
    }
    if !validate_only {
        s.configs.apply(group_id, changes);
        s.write_group_configs(group_id);
    }
    Ok(())
}

fn ranges(a: &[Acquired]) -> Vec<(i64, i64, i16)> {
    a.iter()
        .map(|a| (a.first, a.last, a.delivery_count))
        .collect()
}

#[test]
fn released_records_come_back_with_a_higher_delivery_count() {
    let now = Instant::now();
    let s = with_member(now);
    assert_eq!(
        ranges(&s.acquire_new(G, "m", &tp(), (0, 4), &[], now)),
        vec![(0, 3, 1)]
    );
    s.acknowledge(
        G,
        "m",
        &tp(),
        &[(0, 3, vec![ACK_ACCEPT, ACK_RELEASE, ACK_REJECT, ACK_RELEASE])],
    )
    .expect("ack");
    // 0 accepted, 2 rejected: done; 1 and 3 available again.
    assert_eq!(
        ranges(&s.acquire_available(G, "n", &tp(), 10, now)),
        vec![(1, 1, 2), (3, 3, 2)]
    );
    assert_eq!(s.start_offsets(G).expect("group")[&tp()], (1, 1));
    s.acknowledge(G, "n", &tp(), &[(1, 1, vec![ACK_ACCEPT])])
        .expect("ack");
    s.acknowledge(G, "n", &tp(), &[(3, 3, vec![ACK_ACCEPT])])
        .expect("ack");
    // Everything acquired is done: the start moves to the end.
    assert_eq!(s.start_offsets(G).expect("group")[&tp()], (4, 0));
}

#[test]
fn only_the_holder_may_acknowledge() {
    let now = Instant::now();
    let s = with_member(now);
    s.acquire_new(G, "m", &tp(), (0, 2), &[], now);
    assert_eq!(
        s.acknowledge(G, "other", &tp(), &[(0, 0, vec![ACK_ACCEPT])]),
        Err(ResponseError::InvalidRecordState)
    );
    // Never acquired, beyond the end.
    assert_eq!(
        s.acknowledge(G, "m", &tp(), &[(5, 5, vec![ACK_ACCEPT])]),
        Err(ResponseError::InvalidRecordState)
    );
    // Types: one per offset or one for all, known ones only.
    assert_eq!(
        s.acknowledge(G, "m", &tp(), &[(0, 1, vec![1, 1, 1])]),
        Err(ResponseError::InvalidRequest)
    );
    assert_eq!(
        s.acknowledge(G, "m", &tp(), &[(0, 1, vec![9])]),
        Err(ResponseError::InvalidRequest)
    );
    assert_eq!(
        s.acknowledge(G, "m", &tp(), &[(1, 0, vec![1])]),
        Err(ResponseError::InvalidRequest)
    );
    // Ranges too long to count are refused, not overflowed.
    for (first, last) in [(0, i64::MAX), (i64::MIN, i64::MAX), (-5, 3)] {
        assert!(s
            .acknowledge(G, "m", &tp(), &[(first, last, vec![ACK_ACCEPT])])
            .is_err());
    }
    // Accepted twice: the second time it is no longer acquired.
    s.acknowledge(G, "m", &tp(), &[(0, 1, vec![ACK_ACCEPT])])
        .expect("ack");
    assert_eq!(
        s.acknowledge(G, "m", &tp(), &[(0, 0, vec![ACK_ACCEPT])]),
        Err(ResponseError::InvalidRecordState)
    );
}

#[test]
fn a_lock_that_times_out_releases_and_the_limit_archives() {
    let t0 = Instant::now();
    let s = with_member(t0);
    s.acquire_new(G, "m", &tp(), (0, 1), &[], t0);
    // Deliveries 2 and 3 after each lock ran out (limit 3).
    let mut t = t0;
    for count in 2..=3 {
        t += Duration::from_millis(1_000);
        assert_eq!(
            ranges(&s.acquire_available(G, "m", &tp(), 10, t)),
            vec![(0, 0, count)]
        );
    }
    // The third lock runs out: archived, never delivered again.
    t += Duration::from_millis(1_000);
    s.tick(t);
    assert!(s.acquire_available(G, "m", &tp(), 10, t).is_empty());
    assert_eq!(s.start_offsets(G).expect("group")[&tp()], (1, 0));
}

#[test]
fn in_flight_records_are_bounded() {
    let now = Instant::now();
    let s = with_member(now);
    s.acquire_new(G, "m", &tp(), (0, 10), &[], now);
    // 10 in flight: no room for more until the start moves.
    assert_eq!(s.next_read(G, &tp(), (0, 100)), Some((10, 0)));
    s.acknowledge(G, "m", &tp(), &[(0, 3, vec![ACK_ACCEPT])])
        .expect("ack");
    assert_eq!(s.next_read(G, &tp(), (0, 100)), Some((10, 4)));
    // A stale end (another fetch acquired first) acquires nothing.
    assert!(s.acquire_new(G, "m", &tp(), (5, 12), &[], now).is_empty());
}

/// The race behind franz-go's TestShareGroupETL timing out: two members
/// fetch one partition while records are produced. Fetch A reads the log's
/// end (5) outside the share lock; before it takes the lock, fetch B reads
/// a later end (8) and acquires 5..8. A's view is then older than the
/// partition's end, which is no truncation of the log: nothing in flight
/// may be forgotten, and A has nothing new to read.
#[test]
fn a_fetch_that_read_an_older_log_end_forgets_nothing() {
    let now = Instant::now();
    let s = groups();
    join(&s, "a", now, &view(1));
    join(&s, "b", now, &view(1));
    assert_eq!(s.next_read(G, &tp(), (0, 5)), Some((0, 10)));
    assert_eq!(
        ranges(&s.acquire_new(G, "a", &tp(), (0, 5), &[], now)),
        vec![(0, 4, 1)]
    );
    s.acknowledge(G, "a", &tp(), &[(0, 1, vec![ACK_ACCEPT])])
        .expect("ack");
    s.acknowledge(G, "a", &tp(), &[(2, 2, vec![ACK_RELEASE])])
        .expect("ack");
    // Fetch B saw the log end at 8.
    assert_eq!(s.next_read(G, &tp(), (0, 8)), Some((5, 7)));
    assert_eq!(
        ranges(&s.acquire_new(G, "b", &tp(), (5, 8), &[], now)),
        vec![(5, 7, 1)]
    );
    // Fetch A, with the end it read before B's acquisition: the partition
    // stays where it is and there is no room below A's end to read.
    let (from, _) = s.next_read(G, &tp(), (0, 5)).expect("group");
    assert_eq!(from, 8);
    assert!(s.acquire_new(G, "a", &tp(), (from, 5), &[], now).is_empty());
    assert_eq!(s.start_offsets(G).expect("group")[&tp()], (2, 0));
    // What A released is still there to redeliver, and the records A and
    // B hold are still theirs to acknowledge.
    assert_eq!(
        ranges(&s.acquire_available(G, "a", &tp(), 10, now)),
        vec![(2, 2, 2)]
    );
    s.acknowledge(G, "a", &tp(), &[(2, 4, vec![ACK_ACCEPT])])
        .expect("A still holds 2..4");
    s.acknowledge(G, "b", &tp(), &[(5, 7, vec![ACK_ACCEPT])])
        .expect("B still holds 5..7");
    assert_eq!(s.start_offsets(G).expect("group")[&tp()], (8, 0));
}

/// A log that really is shorter than the partition's end (a topic deleted
/// and made again under the same name; a tail lost in a crash) is told
/// apart from an old view by reading the log's end under the share lock:
/// then the partition starts again at the log's end.
#[test]
fn a_log_truncated_under_the_partition_moves_it_back() {
    let now = Instant::now();
    let s = with_member(now);
    s.acquire_new(G, "m", &tp(), (0, 6), &[], now);
    // The log still reaches the partition's end: nothing happens.
    assert!(!s.truncated(G, &tp(), || (0, 6)));
    assert!(!s.truncated(G, &tp(), || (0, 9)));
    assert_eq!(s.next_read(G, &tp(), (0, 9)), Some((6, 4)));
    // It ends at 3 now.
    assert!(s.truncated(G, &tp(), || (0, 3)));
    assert_eq!(s.next_read(G, &tp(), (0, 3)), Some((3, 10)));
    assert_eq!(s.start_offsets(G).expect("group")[&tp()], (3, 0));
    // Unknown groups and partitions are left alone.
    assert!(!s.truncated("nope", &tp(), || (0, 0)));
    assert!(!s.truncated(G, &("t".to_string(), 7), || (0, 0)));
}

#[test]
fn a_member_leaving_or_losing_its_connection_gives_its_records_back() {
    let now = Instant::now();
    let s = with_member(now);
    join(&s, "n", now, &view(1));
    s.acquire_new(G, "m", &tp(), (0, 2), &[], now);
    s.acquire_new(G, "n", &tp(), (2, 4), &[], now);
    let peer: SocketAddr = "127.0.0.1:5555".parse().expect("addr");
    assert_eq!(s.session(G, "n", 0, Some(peer), true), Ok(SessionOp::Open));
    s.connection_closed(peer);
    assert_eq!(
        ranges(&s.acquire_available(G, "m", &tp(), 10, now)),
        vec![(2, 3, 2)]
    );
    let left = s
        .heartbeat(
            now,
            Heartbeat {
                group_id: G.into(),
                member_id: "m".into(),
                member_epoch: -1,
                ..Heartbeat::default()
            },
            &view(1),
        )
        .expect("leave");
    assert_eq!(left.member_epoch, -1);
    assert_eq!(
        ranges(&s.acquire_available(G, "n", &tp(), 10, now)),
        vec![(0, 1, 2), (2, 3, 3)]
    );
}

#[test]
fn share_session_epochs_are_checked() {
    let s = groups();
    assert_eq!(
        s.session(G, "m", 1, None, true),
        Err(ResponseError::ShareSessionNotFound)
    );
    assert_eq!(
        s.session(G, "m", 0, None, false),
        Err(ResponseError::InvalidShareSessionEpoch)
    );
    assert_eq!(s.session(G, "m", 0, None, true), Ok(SessionOp::Open));
    assert_eq!(
        s.session(G, "m", 2, None, true),
        Err(ResponseError::InvalidShareSessionEpoch)
    );
    assert_eq!(s.session(G, "m", 1, None, false), Ok(SessionOp::Continue));
    assert_eq!(s.session(G, "m", 2, None, true), Ok(SessionOp::Continue));
    assert_eq!(s.session(G, "m", -1, None, false), Ok(SessionOp::Close));
    s.close_session(G, "m");
    assert_eq!(
        s.session(G, "m", -1, None, true),
        Err(ResponseError::ShareSessionNotFound)
    );
}

#[test]
fn a_session_adds_before_it_forgets() {
    // franz-go acknowledges records of a partition it no longer fetches by
    // naming it in the request and forgetting it in the same one; Kafka's
    // share session adds the request's partitions, then removes the
    // forgotten ones, so nothing more is acquired there for the member.
    let s = groups();
    let now = Instant::now();
    join(&s, "m", now, &view(2));
    let (p0, p1) = (("t".to_string(), 0), ("t".to_string(), 1));
    assert_eq!(s.session(G, "m", 0, None, true), Ok(SessionOp::Open));
    assert_eq!(
        s.session_partitions(G, "m", &[p0.clone(), p1.clone()], &[]),
        vec![p0.clone(), p1.clone()]
    );
    assert_eq!(s.session(G, "m", 1, None, true), Ok(SessionOp::Continue));
    assert_eq!(
        s.session_partitions(G, "m", std::slice::from_ref(&p1), std::slice::from_ref(&p1)),
        vec![p0.clone()]
    );
    // Not in the session and named for its acks only: still out after.
    assert_eq!(s.session(G, "m", 2, None, true), Ok(SessionOp::Continue));
    let p1 = std::slice::from_ref(&p1);
    assert_eq!(s.session_partitions(G, "m", p1, p1), vec![p0]);
}

#[test]
fn heartbeats_join_fence_and_expire() {
    let now = Instant::now();
    let s = groups();
    let a = join(&s, "a", now, &view(2));
    assert_eq!(a.member_epoch, 1);
    assert_eq!(a.assignment, Some(BTreeSet::from([tp(), ("t".into(), 1)])));
    let b = join(&s, "b", now, &view(2));
    assert_eq!(b.member_epoch, 2);
    let hb = |member: &str, epoch: i32| {
        s.heartbeat(
            now,
            Heartbeat {
                group_id: G.into(),
                member_id: member.into(),
                member_epoch: epoch,
                ..Heartbeat::default()
            },
            &view(2),
        )
    };
    // a takes the new target, and its epoch, on its next heartbeat.
    assert_eq!(s.describe(G).expect("group").members[0].member_epoch, 1);
    let a = hb("a", 1).expect("a");
    assert_eq!(
        (a.member_epoch, a.assignment),
        (2, Some(BTreeSet::from([tp()])))
    );
    assert_eq!(hb("a", 2).expect("a").assignment, None, "sent already");
    assert_eq!(
        hb("a", 1).expect_err("old epoch").0,
        ResponseError::FencedMemberEpoch
    );
    assert_eq!(b.assignment, Some(BTreeSet::from([("t".into(), 1)])));
    assert_eq!(
        hb("x", 1).expect_err("unknown").0,
        ResponseError::UnknownMemberId
    );
    let d = s.describe(G).expect("group");
    assert_eq!((d.state, d.epoch, d.members.len()), ("Stable", 2, 2));
    // Session timeout.
    s.tick(now + Duration::from_millis(45_000));
    let d = s.describe(G).expect("group");
    assert_eq!((d.state, d.members.len()), ("Empty", 0));
}

#[test]
fn the_simple_assignor_shares_partitions_among_extra_members() {
    let v = view(2);
    let subs = |n: usize| -> BTreeMap<String, BTreeSet<String>> {
        (0..n)
            .map(|i| (format!("m{i}"), BTreeSet::from(["t".to_string()])))
            .collect()
    };
    let count = |a: &std::collections::HashMap<String, BTreeSet<Tp>>, p: i32| {
        a.values()
            .filter(|s| s.contains(&("t".to_string(), p)))
            .count()
    };
    // Fewer members than partitions: each partition to one member.
    let one = simple(&subs(1), &v);
    assert_eq!(one["m0"].len(), 2);
    // More members than partitions: every member gets one, shared.
    let five = simple(&subs(5), &v);
    assert!(five.values().all(|s| s.len() == 1));
    assert_eq!((count(&five, 0), count(&five, 1)), (3, 2));
}

#[test]
fn group_configs_apply_per_group() {
    let s = ShareGroups::new(ShareGroupConfig::default());
    assert_eq!(
        alter_group_configs(
            &s,
            G,
            &[("share.auto.offset.reset".into(), Some("sideways".into()))],
            false
        ),
        Err("Invalid value sideways for configuration share.auto.offset.reset".into())
    );
    assert!(alter_group_configs(&s, G, &[("nope".into(), Some("1".into()))], false).is_err());
    alter_group_configs(
        &s,
        G,
        &[
            ("share.auto.offset.reset".into(), Some("earliest".into())),
            ("share.record.lock.duration.ms".into(), Some("15000".into())),
        ],
        false,
    )
    .expect("alter");
    assert_eq!(s.lock_duration(G), Duration::from_millis(15_000));
    assert_eq!(s.lock_duration("other"), Duration::from_millis(30_000));
    let now = Instant::now();
    join(&s, "m", now, &view(1));
    // earliest: the log start, not its end.
    assert_eq!(s.next_read(G, &tp(), (3, 50)).map(|r| r.0), Some(3));
    let configs = s.group_configs(G);
    assert!(configs.contains(&("share.auto.offset.reset".into(), "earliest".into(), true)));
    assert!(configs.contains(&("share.delivery.count.limit".into(), "5".into(), false)));
}

#[test]
fn latest_starts_at_the_log_end_and_retention_moves_the_start() {
    let s = ShareGroups::new(ShareGroupConfig::default());
    let now = Instant::now();
    join(&s, "m", now, &view(1));
    assert_eq!(s.next_read(G, &tp(), (0, 50)).map(|r| r.0), Some(50));
    // Records below the end were deleted: the partition moves with them.
    assert_eq!(s.next_read(G, &tp(), (60, 70)).map(|r| r.0), Some(60));
}

#[test]
fn offsets_are_altered_and_deleted_only_while_empty() {
    let s = groups();
    s.alter_offsets(G, &[(tp(), 7)]).expect("alter");
    assert_eq!(s.start_offsets(G).expect("group")[&tp()], (7, 0));
    join(&s, "m", Instant::now(), &view(1));
    assert_eq!(
        s.alter_offsets(G, &[(tp(), 0)]),
        Err(ResponseError::NonEmptyGroup)
    );
    assert_eq!(
        s.delete_offsets(G, &["t".into()]),
        Err(ResponseError::NonEmptyGroup)
    );
    assert_eq!(s.remove_if_empty(G), Err(ResponseError::NonEmptyGroup));
    assert_eq!(
        s.delete_offsets("none", &[]),
        Err(ResponseError::GroupIdNotFound)
    );
}

/// read_committed: offsets of aborted transactions and markers are
/// archived as they are read, never handed out; the start moves over them.
#[test]
fn skipped_offsets_are_archived_not_acquired() {
    let now = Instant::now();
    let s = with_member(now);
    assert!(!s.read_committed(G));
    alter_group_configs(
        &s,
        G,
        &[(
            "share.isolation.level".into(),
            Some("read_committed".into()),
        )],
        false,
    )
    .unwrap();
    assert!(s.read_committed(G));
    let got = s.acquire_new(G, "m", &tp(), (0, 8), &[(0, 1), (4, 4), (7, 7)], now);
    assert_eq!(ranges(&got), vec![(2, 3, 1), (5, 6, 1)]);
    assert_eq!(s.start_offsets(G).unwrap()[&tp()].0, 2);
    assert!(alter_group_configs(
        &s,
        G,
        &[("share.isolation.level".into(), Some("serializable".into()))],
        false
    )
    .is_err());
}

/// RENEW (v2, when the request says it carries renewals) restarts a held
/// record's lock: it is not given back when the first lock would have run
/// out; without the flag the type is refused.
#[test]
fn renew_restarts_the_lock() {
    let t0 = Instant::now();
    let s = with_member(t0);
    s.acquire_new(G, "m", &tp(), (0, 2), &[], t0);
    let renew = [(0, 1, vec![ACK_RENEW])];
    assert_eq!(
        s.acknowledge(G, "m", &tp(), &renew),
        Err(ResponseError::InvalidRequest)
    );
    let t1 = t0 + Duration::from_millis(800);
    s.acknowledge_at(G, "m", &tp(), &renew, true, t1).unwrap();
    // The first lock (1 s) has run out, the renewed one (to 1.8 s) has not.
    let t2 = t0 + Duration::from_millis(1_500);
    assert!(s.acquire_available(G, "n", &tp(), 10, t2).is_empty());
    let t3 = t0 + Duration::from_millis(1_900);
    assert_eq!(
        ranges(&s.acquire_available(G, "n", &tp(), 10, t3)),
        vec![(0, 1, 2)]
    );
}

#[test]
fn a_fetch_that_finds_locks_run_out_wakes_the_other_fetches() {
    let t0 = Instant::now();
    let s = with_member(t0);
    join(&s, "n", t0, &view(1));
    s.acquire_new(G, "m", &tp(), (0, 2), &[], t0);
    let mut woken = s.subscribe();
    woken.mark_unchanged();
    // Both locks ran out; `n` takes one, the other is free for whoever
    // waits (before `tick` comes round to it).
    let t = t0 + Duration::from_millis(1_000);
    assert_eq!(
        ranges(&s.acquire_available(G, "n", &tp(), 1, t)),
        vec![(0, 0, 2)]
    );
    assert!(woken.has_changed().expect("sender alive"));
    woken.mark_unchanged();
    assert_eq!(
        ranges(&s.acquire_available(G, "m", &tp(), 10, t)),
        vec![(1, 1, 2)]
    );
    // Nothing ran out this time: no one is woken for nothing.
    assert!(!woken.has_changed().expect("sender alive"));
}

#[test]
fn describing_offsets_that_finds_locks_run_out_wakes_the_fetches() {
    let t0 = Instant::now();
    let s = with_member(t0);
    s.acquire_new(G, "m", &tp(), (0, 1), &[], t0);
    let mut woken = s.subscribe();
    woken.mark_unchanged();
    let t = t0 + Duration::from_millis(1_000);
    // start_offsets reads Instant::now(): wait out the lock for real.
    std::thread::sleep(t.saturating_duration_since(Instant::now()));
    assert_eq!(s.start_offsets(G).expect("group")[&tp()], (0, 0));
    assert!(woken.has_changed().expect("sender alive"));
}

#[test]
fn a_closed_connection_leaves_the_session_its_member_reopened_elsewhere() {
    let now = Instant::now();
    let s = with_member(now);
    let old: SocketAddr = "127.0.0.1:5555".parse().expect("addr");
    let new: SocketAddr = "127.0.0.1:6666".parse().expect("addr");
    assert_eq!(s.session(G, "m", 0, Some(old), true), Ok(SessionOp::Open));
    // The old connection's close picks the member's session ...
    let picked = s.sessions_on(old);
    assert_eq!(picked, vec![(G.to_string(), "m".to_string())]);
    // ... the member reopens it on a new connection and acquires ...
    assert_eq!(s.session(G, "m", 0, Some(new), true), Ok(SessionOp::Open));
    s.acquire_new(G, "m", &tp(), (0, 2), &[], now);
    // ... and the close comes round to it: the new session stays, and so
    // do the member's records.
    for (group, member) in picked {
        assert!(!s.close_session_if(&group, &member, |x| {
            x.is_some_and(|x| x.peer == Some(old))
        }));
    }
    s.connection_closed(old);
    assert_eq!(
        s.session(G, "m", 1, Some(new), true),
        Ok(SessionOp::Continue)
    );
    assert!(s.acquire_available(G, "n", &tp(), 10, now).is_empty());
    // The new connection's close does close it.
    s.connection_closed(new);
    assert_eq!(
        s.session(G, "m", 2, Some(new), true),
        Err(ResponseError::ShareSessionNotFound)
    );
    assert_eq!(
        ranges(&s.acquire_available(G, "n", &tp(), 10, now)),
        vec![(0, 1, 2)]
    );
}

#[test]
fn a_session_reopened_at_epoch_0_keeps_its_members_locks_as_kafka_does() {
    // Kafka's ShareFetch at epoch 0 drops the member's old session without
    // releasing what the member acquired: those records wait out their
    // locks (the member keeps its id, and may still acknowledge them).
    let t0 = Instant::now();
    let s = with_member(t0);
    join(&s, "n", t0, &view(1));
    assert_eq!(s.session(G, "m", 0, None, true), Ok(SessionOp::Open));
    s.acquire_new(G, "m", &tp(), (0, 2), &[], t0);
    assert_eq!(s.session(G, "m", 0, None, true), Ok(SessionOp::Open));
    assert!(s.acquire_available(G, "n", &tp(), 10, t0).is_empty());
    assert_eq!(s.acknowledge(G, "m", &tp(), &[(0, 0, vec![1])]), Ok(()));
    let t = t0 + Duration::from_millis(1_000);
    assert_eq!(
        ranges(&s.acquire_available(G, "n", &tp(), 10, t)),
        vec![(1, 1, 2)]
    );
}
