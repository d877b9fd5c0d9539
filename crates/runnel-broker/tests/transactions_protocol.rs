//! Producer epochs at the protocol level: EndTxn v5 bumps the epoch
//! (KIP-890), so a late EndTxn of an earlier transaction cannot end a newer
//! one; a new instance of a transactional id fences the old one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

mod common;

use common::{call, start};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpStream;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// Creates the output topic and a transactional producer id: (id, epoch).
async fn create_topic_and_init(st: &mut TcpStream) -> (i64, i16) {
    let topics = vec![MetadataRequestTopic::default().with_name(Some(TopicName(s("kip890-out"))))];
    let metadata = MetadataRequest::default()
        .with_topics(Some(topics))
        .with_allow_auto_topic_creation(true);
    call(st, &metadata, 9).await;
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s("kip890"))))
        .with_transaction_timeout_ms(60_000);
    let resp = call(st, &init, 4).await;
    assert_eq!(resp.error_code, 0);
    (resp.producer_id.0, resp.producer_epoch)
}

async fn add_partition(stream: &mut TcpStream, pid: i64, epoch: i16) -> i16 {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s("kip890")))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(TopicName(s("kip890-out")))
            .with_partitions(vec![0])]);
    let resp = call(stream, &req, 3).await;
    resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

async fn end(stream: &mut TcpStream, pid: i64, epoch: i16, commit: bool) -> EndTxnResponse {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s("kip890")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    call(stream, &req, 5).await
}

#[tokio::test]
async fn end_txn_v5_bumps_the_epoch_and_fences_late_calls() {
    let r = start().await;
    let mut st = TcpStream::connect(r.addr).await.unwrap();
    let (pid, e0) = create_topic_and_init(&mut st).await;

    assert_eq!(add_partition(&mut st, pid, e0).await, 0);
    let committed = end(&mut st, pid, e0, true).await;
    assert_eq!(committed.error_code, 0);
    assert_eq!(
        (committed.producer_id.0, committed.producer_epoch),
        (pid, e0 + 1),
        "v5 returns the bumped epoch"
    );

    // A retry of the same EndTxn (its response was lost) still succeeds.
    let retried = end(&mut st, pid, e0, true).await;
    assert_eq!((retried.error_code, retried.producer_epoch), (0, e0 + 1));

    // The next transaction runs at the new epoch; the old epoch is fenced.
    assert_eq!(
        add_partition(&mut st, pid, e0).await,
        47,
        "INVALID_PRODUCER_EPOCH"
    );
    assert_eq!(add_partition(&mut st, pid, e0 + 1).await, 0);
    // A late abort from the first transaction cannot end the second one.
    let late = end(&mut st, pid, e0, false).await;
    assert_eq!(late.error_code, 47, "INVALID_PRODUCER_EPOCH");
    let second = end(&mut st, pid, e0 + 1, true).await;
    assert_eq!((second.error_code, second.producer_epoch), (0, e0 + 2));
}

async fn fetch_offset(stream: &mut TcpStream, require_stable: bool) -> (i16, i64) {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("kip447")))
        .with_require_stable(require_stable)
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s("kip890-out")))
            .with_partition_indexes(vec![0])]));
    let resp = call(stream, &req, 7).await;
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

#[tokio::test]
async fn offsets_of_an_open_transaction_are_unstable_until_it_commits() {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    let r = start().await;
    let mut st = TcpStream::connect(r.addr).await.unwrap();
    let (pid, epoch) = create_topic_and_init(&mut st).await;
    let add = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s("kip890")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(s("kip447")));
    assert_eq!(call(&mut st, &add, 3).await.error_code, 0);
    let commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s("kip890")))
        .with_group_id(GroupId(s("kip447")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(TopicName(s("kip890-out")))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(5)])]);
    let resp = call(&mut st, &commit, 3).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);

    assert_eq!(
        fetch_offset(&mut st, true).await,
        (88, -1),
        "UNSTABLE_OFFSET_COMMIT"
    );
    assert_eq!(
        fetch_offset(&mut st, false).await,
        (0, -1),
        "nothing committed yet"
    );
    assert_eq!(end(&mut st, pid, epoch, true).await.error_code, 0);
    assert_eq!(fetch_offset(&mut st, true).await, (0, 5));
}

/// A second instance of a transactional id fences the first while its
/// transaction is open, as Kafka's coordinator does (PrepareEpochFence):
/// the epoch goes up before the open transaction is aborted (the abort
/// runs under epoch + 1), so the new instance gets epoch + 2 and the old
/// one's calls are refused as fenced from the start of the abort on —
/// never with INVALID_TXN_STATE, which clients take for a fatal error.
#[tokio::test]
async fn a_new_instance_bumps_the_epoch_before_aborting_the_open_transaction() {
    let r = start().await;
    let mut st = TcpStream::connect(r.addr).await.unwrap();
    let (pid, e0) = create_topic_and_init(&mut st).await;
    assert_eq!(add_partition(&mut st, pid, e0).await, 0);

    let (pid2, e2) = create_topic_and_init(&mut st).await;
    assert_eq!(
        (pid2, e2),
        (pid, e0 + 2),
        "aborted under e0 + 1, then e0 + 2"
    );

    assert_eq!(
        add_partition(&mut st, pid, e0).await,
        47,
        "INVALID_PRODUCER_EPOCH"
    );
    assert_eq!(end(&mut st, pid, e0, true).await.error_code, 47);
    // The new instance's transactions go on as usual.
    assert_eq!(add_partition(&mut st, pid, e2).await, 0);
    assert_eq!(end(&mut st, pid, e2, true).await.error_code, 0);
}
