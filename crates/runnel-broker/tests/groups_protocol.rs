//! Consumer group APIs at every advertised version, over a socket against an
//! in-process broker: each response must encode at the negotiated version
//! and decode back with the client codec.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

mod common;

use bytes::Bytes;
use common::{call, start};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::net::TcpStream;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

const MEMBER_ID_REQUIRED: i16 = 79;

#[tokio::test(flavor = "multi_thread")]
async fn join_sync_heartbeat_describe_leave_at_every_version() {
    let r = start().await;
    let mut c = TcpStream::connect(r.addr).await.unwrap();
    for v in 0..=9i16 {
        let group = format!("g{v}");
        let mut join = JoinGroupRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(if v >= 1 { 5_000 } else { 0 })
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"\x00\x01meta"))]);
        let mut resp = call(&mut c, &join, v).await;
        if v >= 4 {
            assert_eq!(resp.error_code, MEMBER_ID_REQUIRED, "v{v}");
            join.member_id = resp.member_id.clone();
            resp = call(&mut c, &join, v).await;
        }
        assert_eq!(resp.error_code, 0, "join v{v}");
        assert_eq!(resp.generation_id, 1);
        assert_eq!(resp.leader, resp.member_id);
        assert_eq!(resp.protocol_name.as_deref(), Some("range"));
        assert_eq!(resp.members.len(), 1);
        assert_eq!(&resp.members[0].metadata[..], b"\x00\x01meta");
        let member = resp.member_id.clone();

        let sv = v.min(5);
        let mut sync = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id(1)
            .with_member_id(member.clone())
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(member.clone())
                .with_assignment(Bytes::from_static(b"assigned"))]);
        if sv >= 5 {
            sync.protocol_type = Some(s("consumer"));
            sync.protocol_name = Some(s("range"));
        }
        let sresp = call(&mut c, &sync, sv).await;
        assert_eq!(sresp.error_code, 0, "sync v{sv}");
        assert_eq!(&sresp.assignment[..], b"assigned");

        let hv = v.min(4);
        let hb = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id(1)
            .with_member_id(member.clone());
        assert_eq!(call(&mut c, &hb, hv).await.error_code, 0, "heartbeat v{hv}");
        let stale = hb.clone().with_generation_id(0);
        assert_eq!(
            call(&mut c, &stale, hv).await.error_code,
            ResponseError::IllegalGeneration.code()
        );

        let dv = v.min(5);
        let d = call(
            &mut c,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(&group))]),
            dv,
        )
        .await;
        assert_eq!(d.groups[0].group_state.as_str(), "Stable", "describe v{dv}");
        assert_eq!(d.groups[0].protocol_data.as_str(), "range");
        assert_eq!(d.groups[0].members.len(), 1);
        assert_eq!(d.groups[0].members[0].client_id.as_str(), "proto-test");
        assert_eq!(d.groups[0].members[0].client_host.as_str(), "/127.0.0.1");
        assert_eq!(&d.groups[0].members[0].member_assignment[..], b"assigned");

        let lv = v.min(5);
        let mut leave = LeaveGroupRequest::default().with_group_id(GroupId(s(&group)));
        if lv >= 3 {
            leave.members = vec![MemberIdentity::default().with_member_id(member.clone())];
        } else {
            leave.member_id = member.clone();
        }
        let l = call(&mut c, &leave, lv).await;
        assert_eq!(l.error_code, 0, "leave v{lv}");
        if lv >= 3 {
            assert_eq!(l.members.len(), 1);
            assert_eq!(l.members[0].error_code, 0);
        }
        let gone = call(&mut c, &hb, hv).await;
        assert_eq!(gone.error_code, ResponseError::UnknownMemberId.code());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_and_group_admin_at_every_version() {
    let r = start().await;
    let mut c = TcpStream::connect(r.addr).await.unwrap();
    // Auto-create the topic.
    let md = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(TopicName(s("t"))))
    ]));
    call(&mut c, &md, 9).await;

    for v in 0..=4i16 {
        for key_type in [0i8, 1] {
            let mut req = FindCoordinatorRequest::default();
            if v >= 4 {
                req.coordinator_keys = vec![s("any")];
            } else {
                req.key = s("any");
            }
            if v >= 1 {
                req.key_type = key_type;
            }
            let resp = call(&mut c, &req, v).await;
            if v >= 4 {
                assert_eq!(resp.coordinators[0].error_code, 0);
                assert_eq!(resp.coordinators[0].port as u16, r.addr.port());
            } else {
                assert_eq!((resp.error_code, resp.port as u16), (0, r.addr.port()));
            }
        }
    }

    for v in 2..=9i16 {
        let group = format!("o{v}");
        let commit = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(100 + i64::from(v))
                    .with_committed_metadata(Some(s(&format!("meta-{v}"))))])]);
        let resp = call(&mut c, &commit, v).await;
        assert_eq!(resp.topics[0].partitions[0].error_code, 0, "commit v{v}");
        let missing = commit
            .clone()
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("nope")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()])]);
        let resp = call(&mut c, &missing, v).await;
        assert_eq!(
            resp.topics[0].partitions[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
    }

    for fv in 1..=9i16 {
        for v in 2..=9i16 {
            let group = format!("o{v}");
            let want = (100 + i64::from(v), format!("meta-{v}"));
            if fv >= 8 {
                let req = OffsetFetchRequest::default().with_groups(vec![
                    OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(s(&group)))
                        .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                            .with_name(TopicName(s("t")))
                            .with_partition_indexes(vec![0, 1])])),
                ]);
                let resp = call(&mut c, &req, fv).await;
                let p = &resp.groups[0].topics[0].partitions;
                assert_eq!(
                    (
                        p[0].committed_offset,
                        p[0].metadata.as_deref().unwrap_or("")
                    ),
                    (want.0, want.1.as_str()),
                    "fetch v{fv}"
                );
                assert_eq!(p[1].committed_offset, -1);
            } else {
                let req = OffsetFetchRequest::default()
                    .with_group_id(GroupId(s(&group)))
                    .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partition_indexes(vec![0, 1])]));
                let resp = call(&mut c, &req, fv).await;
                let p = &resp.topics[0].partitions;
                assert_eq!(
                    (
                        p[0].committed_offset,
                        p[0].metadata.as_deref().unwrap_or("")
                    ),
                    (want.0, want.1.as_str()),
                    "fetch v{fv}"
                );
                assert_eq!(p[1].committed_offset, -1);
            }
        }
    }
    // All of a group's offsets (null topics, v2+).
    let all = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("o2")))
        .with_topics(None);
    let resp = call(&mut c, &all, 2).await;
    assert_eq!(resp.topics.len(), 1);

    for v in 0..=4i16 {
        let resp = call(&mut c, &ListGroupsRequest::default(), v).await;
        let ids: Vec<&str> = resp.groups.iter().map(|g| g.group_id.0.as_str()).collect();
        assert!(ids.contains(&"o2"), "list v{v}: {ids:?}");
        if v >= 4 {
            assert!(resp
                .groups
                .iter()
                .all(|g| g.group_state.as_str() == "Empty"));
        }
    }

    for v in 0..=2i16 {
        let group = format!("o{}", v + 2);
        let del = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group))]);
        assert_eq!(call(&mut c, &del, v).await.results[0].error_code, 0);
        assert_eq!(
            call(&mut c, &del, v).await.results[0].error_code,
            ResponseError::GroupIdNotFound.code()
        );
    }

    let od = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s("o9")))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])]);
    let resp = call(&mut c, &od, 0).await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    let fetch = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("o9")))
        .with_topics(None);
    assert!(call(&mut c, &fetch, 7).await.topics.is_empty());
    // As in Kafka, the group outlives its last offsets: still listed and
    // described as Empty, and DeleteGroups deletes it (kafka-consumer-groups
    // --delete-offsets, then --delete, ran into GROUP_ID_NOT_FOUND).
    let listed = call(&mut c, &ListGroupsRequest::default(), 4).await;
    let o9 = listed
        .groups
        .iter()
        .find(|g| g.group_id.0.as_str() == "o9")
        .expect("o9 still listed");
    assert_eq!(o9.group_state.as_str(), "Empty");
    let described = call(
        &mut c,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("o9"))]),
        5,
    )
    .await;
    assert_eq!(described.groups[0].error_code, 0);
    assert_eq!(described.groups[0].group_state.as_str(), "Empty");
    let del = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("o9"))]);
    assert_eq!(call(&mut c, &del, 2).await.results[0].error_code, 0);
    assert_eq!(
        call(&mut c, &del, 2).await.results[0].error_code,
        ResponseError::GroupIdNotFound.code()
    );
    let listed = call(&mut c, &ListGroupsRequest::default(), 4).await;
    assert!(listed.groups.iter().all(|g| g.group_id.0.as_str() != "o9"));
}

/// DescribeGroups on a group of the consumer protocol (KIP-848) answers
/// GROUP_ID_NOT_FOUND and Dead, as Kafka 4 does; v6 says why in Kafka 4.4's
/// words.
#[tokio::test(flavor = "multi_thread")]
async fn describe_groups_on_a_consumer_protocol_group() {
    let r = start().await;
    let mut c = TcpStream::connect(r.addr).await.unwrap();
    let hb = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("kip848")))
        .with_member_id(s("m-1"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![TopicName(s("t"))]))
        .with_topic_partitions(Some(Vec::new()));
    let joined = call(&mut c, &hb, 1).await;
    assert_eq!((joined.error_code, joined.member_epoch), (0, 1));
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s("kip848"))]);
    for v in [5, 6] {
        let g = call(&mut c, &req, v).await.groups.remove(0);
        assert_eq!(g.error_code, ResponseError::GroupIdNotFound.code(), "v{v}");
        assert_eq!(g.group_state.as_str(), "Dead");
        assert!(g.members.is_empty());
        let message = g.error_message.as_deref().map(str::to_string);
        let want = (v >= 6).then(|| "Group kip848 is not a classic group.".to_string());
        assert_eq!(message, want, "v{v}");
    }
}
