//! The describing admin APIs at the protocol level: DescribeTopicPartitions
//! pages and cursors (KIP-966, as Kafka's handler pages them),
//! ListTransactions filters, DescribeTransactions and DescribeProducers
//! around an open and a committed transaction, DescribeLogDirs sizes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may stop at the first surprise

mod common;

use bytes::Bytes;
use common::{call, start};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest as ProducersTopic;
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use runnel_log::batch::build::{build_batch_with, TestRecord};
use tokio::net::TcpStream;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

async fn create(st: &mut TcpStream, name: &str, partitions: i32) {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(10_000);
    let resp = call(st, &req, 5).await;
    assert_eq!(resp.topics[0].error_code, 0, "create {name}");
}

async fn page(
    st: &mut TcpStream,
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsResponse {
    let req = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| TopicRequest::default().with_name(TopicName(s(t))))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            Cursor::default()
                .with_topic_name(TopicName(s(t)))
                .with_partition_index(p)
        }));
    call(st, &req, 0).await
}

/// (topic, error, partitions) of a page, and its next cursor.
type Page = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

fn seen(resp: &DescribeTopicPartitionsResponse) -> Page {
    (
        resp.topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                    t.error_code,
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect(),
        resp.next_cursor
            .as_ref()
            .map(|c| (c.topic_name.0.to_string(), c.partition_index)),
    )
}

fn row(name: &str, error: i16, partitions: &[i32]) -> (String, i16, Vec<i32>) {
    (name.to_string(), error, partitions.to_vec())
}

#[tokio::test]
async fn describe_topic_partitions_pages_by_partition_count_with_a_cursor() {
    let r = start().await;
    let mut st = TcpStream::connect(r.addr).await.unwrap();
    create(&mut st, "dtp-a", 3).await;
    create(&mut st, "dtp-b", 2).await;
    create(&mut st, "dtp-c", 1).await;
    let names = ["dtp-c", "dtp-a", "dtp-b"]; // answered sorted by name

    let first = page(&mut st, &names, 2, None).await;
    assert_eq!(
        seen(&first),
        (vec![row("dtp-a", 0, &[0, 1])], Some(("dtp-a".into(), 2)))
    );
    let p = &first.topics[0].partitions[0];
    assert_eq!((p.leader_id.0, p.leader_epoch), (1, 0));
    assert_eq!(p.eligible_leader_replicas, Some(vec![]));
    assert!(!first.topics[0].topic_id.is_nil());

    let second = page(&mut st, &names, 2, Some(("dtp-a", 2))).await;
    assert_eq!(
        seen(&second),
        (
            vec![row("dtp-a", 0, &[2]), row("dtp-b", 0, &[0])],
            Some(("dtp-b".into(), 1))
        )
    );
    // A page filled exactly by one topic points at the next topic's start.
    let third = page(&mut st, &names, 1, Some(("dtp-b", 1))).await;
    assert_eq!(
        seen(&third),
        (vec![row("dtp-b", 0, &[1])], Some(("dtp-c".into(), 0)))
    );
    let last = page(&mut st, &names, 2, Some(("dtp-c", 0))).await;
    assert_eq!(seen(&last), (vec![row("dtp-c", 0, &[0])], None));

    // Unknown topics are answered in place and take no room; but a page
    // already full points at the next name, known or not (as Kafka does).
    let full = page(&mut st, &["dtp-a", "dtp-nope"], 3, None).await;
    assert_eq!(
        seen(&full),
        (
            vec![row("dtp-a", 0, &[0, 1, 2])],
            Some(("dtp-nope".into(), 0))
        )
    );
    let unknown = page(&mut st, &["dtp-a", "dtp-nope"], 4, None).await;
    assert_eq!(
        seen(&unknown),
        (
            vec![row("dtp-a", 0, &[0, 1, 2]), row("dtp-nope", 3, &[])],
            None
        )
    );
    // The limit is at least 1, and a cursor must name a listed topic.
    let one = page(&mut st, &["dtp-c"], 0, None).await;
    assert_eq!(seen(&one), (vec![row("dtp-c", 0, &[0])], None));
    let bad = page(&mut st, &["dtp-a"], 5, Some(("dtp-b", 0))).await;
    assert_eq!(seen(&bad), (vec![row("dtp-a", 42, &[])], None));
    let bad = page(&mut st, &["dtp-a"], 5, Some(("dtp-a", -1))).await;
    assert_eq!(seen(&bad), (vec![row("dtp-a", 42, &[])], None));

    // No topic list: every topic (internal ones too), from the cursor on.
    let all = page(&mut st, &[], 100, None).await;
    let (topics, next) = seen(&all);
    assert_eq!(next, None);
    let names: Vec<_> = topics.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "__consumer_offsets",
            "__transaction_state",
            "dtp-a",
            "dtp-b",
            "dtp-c"
        ]
    );
    assert!(all.topics[0].is_internal && !all.topics[2].is_internal);
    let rest = page(&mut st, &[], 100, Some(("dtp-b", 1))).await;
    assert_eq!(
        seen(&rest),
        (vec![row("dtp-b", 0, &[1]), row("dtp-c", 0, &[0])], None)
    );
}

/// Kafka calls only its own internal topics internal (`Topic.isInternal`):
/// a user's topic whose name starts with `__` is an ordinary one, and
/// clients that skip internal topics (franz-go's regex consumers) must see
/// it as such.
#[tokio::test]
async fn metadata_marks_only_the_internal_topics_internal() {
    let r = start().await;
    let mut st = TcpStream::connect(r.addr).await.unwrap();
    create(&mut st, "__mine", 1).await;
    let resp: MetadataResponse =
        call(&mut st, &MetadataRequest::default().with_topics(None), 12).await;
    let internal: Vec<(String, bool)> = resp
        .topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.is_internal))
        .collect();
    assert!(
        internal.contains(&("__consumer_offsets".into(), true)),
        "{internal:?}"
    );
    assert!(
        internal.contains(&("__transaction_state".into(), true)),
        "{internal:?}"
    );
    assert!(internal.contains(&("__mine".into(), false)), "{internal:?}");
}

async fn init(st: &mut TcpStream, id: &str) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(id))))
        .with_transaction_timeout_ms(60_000);
    let resp = call(st, &req, 4).await;
    assert_eq!(resp.error_code, 0);
    (resp.producer_id.0, resp.producer_epoch)
}

async fn list_txns(
    st: &mut TcpStream,
    states: &[&str],
    pids: &[i64],
    duration: i64,
    pattern: Option<&str>,
) -> ListTransactionsResponse {
    let req = ListTransactionsRequest::default()
        .with_state_filters(states.iter().map(|x| s(x)).collect())
        .with_producer_id_filters(pids.iter().map(|p| ProducerId(*p)).collect())
        .with_duration_filter(duration)
        .with_transactional_id_pattern(pattern.map(s));
    call(st, &req, 2).await
}

fn ids(resp: &ListTransactionsResponse) -> Vec<(String, String)> {
    let mut v: Vec<_> = resp
        .transaction_states
        .iter()
        .map(|t| {
            (
                t.transactional_id.0.to_string(),
                t.transaction_state.to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

async fn producers(st: &mut TcpStream, topic: &str) -> DescribeProducersResponse {
    let req = DescribeProducersRequest::default().with_topics(vec![ProducersTopic::default()
        .with_name(TopicName(s(topic)))
        .with_partition_indexes(vec![0, 1, 5])]);
    call(st, &req, 0).await
}

#[tokio::test]
async fn transactions_and_producers_are_listed_and_described() {
    let r = start().await;
    let mut st = TcpStream::connect(r.addr).await.unwrap();
    create(&mut st, "txd-out", 2).await;
    let (open_pid, open_epoch) = init(&mut st, "txd-open").await;
    let (idle_pid, _) = init(&mut st, "txd-idle").await;

    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s("txd-open")))
        .with_v3_and_below_producer_id(ProducerId(open_pid))
        .with_v3_and_below_producer_epoch(open_epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(TopicName(s("txd-out")))
            .with_partitions(vec![1])]);
    let resp = call(&mut st, &add, 3).await;
    assert_eq!(
        resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    // A plain record first, so the transaction starts at offset 1.
    let plain = build_batch_with(1_000, &[rec(0)], -1, -1, -1, 0);
    assert_eq!(produce(&mut st, None, plain).await, 0);
    let ts = 1_700_000_000_000;
    let txn = build_batch_with(
        ts,
        &[rec(0), rec(1), rec(2)],
        open_pid,
        open_epoch,
        0,
        runnel_log::batch::TRANSACTIONAL_BIT,
    );
    assert_eq!(produce(&mut st, Some("txd-open"), txn).await, 0);

    let all = list_txns(&mut st, &[], &[], -1, None).await;
    assert_eq!(all.error_code, 0);
    assert_eq!(
        ids(&all),
        vec![
            ("txd-idle".into(), "Empty".into()),
            ("txd-open".into(), "Ongoing".into())
        ]
    );
    let ongoing = list_txns(&mut st, &["Ongoing", "Bogus"], &[], -1, None).await;
    assert_eq!(ids(&ongoing), vec![("txd-open".into(), "Ongoing".into())]);
    assert_eq!(ongoing.unknown_state_filters, vec![s("Bogus")]);
    let by_pid = list_txns(&mut st, &[], &[idle_pid], -1, None).await;
    assert_eq!(ids(&by_pid), vec![("txd-idle".into(), "Empty".into())]);
    // Running longer than an hour: only the idle id, whose start is -1.
    let long = list_txns(&mut st, &[], &[], 3_600_000, None).await;
    assert_eq!(ids(&long), vec![("txd-idle".into(), "Empty".into())]);
    let pattern = list_txns(&mut st, &[], &[], -1, Some("txd-o.*")).await;
    assert_eq!(ids(&pattern), vec![("txd-open".into(), "Ongoing".into())]);
    let partial = list_txns(&mut st, &[], &[], -1, Some("txd-o")).await;
    assert_eq!(ids(&partial), vec![], "the pattern must match the whole id");
    let bad = list_txns(&mut st, &[], &[], -1, Some("(")).await;
    assert_eq!(bad.error_code, 128, "INVALID_REGULAR_EXPRESSION");

    let req = DescribeTransactionsRequest::default().with_transactional_ids(vec![
        TransactionalId(s("txd-open")),
        TransactionalId(s("txd-idle")),
        TransactionalId(s("txd-none")),
    ]);
    let described = call(&mut st, &req, 0).await.transaction_states;
    let open = &described[0];
    assert_eq!(open.error_code, 0);
    assert_eq!(open.transaction_state.as_str(), "Ongoing");
    assert_eq!(open.transaction_timeout_ms, 60_000);
    assert_eq!(
        (open.producer_id.0, open.producer_epoch),
        (open_pid, open_epoch)
    );
    assert!(open.transaction_start_time_ms > 0);
    assert_eq!(open.topics.len(), 1);
    assert_eq!(
        (
            open.topics[0].topic.0.as_str(),
            open.topics[0].partitions.clone()
        ),
        ("txd-out", vec![1])
    );
    assert_eq!(
        (
            described[1].transaction_state.as_str(),
            described[1].transaction_start_time_ms
        ),
        ("Empty", -1)
    );
    assert_eq!(described[2].error_code, 105, "TRANSACTIONAL_ID_NOT_FOUND");

    let resp = producers(&mut st, "txd-out").await;
    let parts = &resp.topics[0].partitions;
    assert_eq!(
        parts
            .iter()
            .map(|p| (p.partition_index, p.error_code))
            .collect::<Vec<_>>(),
        vec![(0, 0), (1, 0), (5, 3)]
    );
    assert!(parts[0].active_producers.is_empty());
    let p = &parts[1].active_producers[..];
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].producer_id.0, p[0].producer_epoch, p[0].last_sequence),
        (open_pid, i32::from(open_epoch), 2)
    );
    assert_eq!(p[0].last_timestamp, ts + 2, "the batch's max timestamp");
    assert_eq!(
        (p[0].coordinator_epoch, p[0].current_txn_start_offset),
        (-1, 1)
    );

    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s("txd-open")))
        .with_producer_id(ProducerId(open_pid))
        .with_producer_epoch(open_epoch)
        .with_committed(true);
    assert_eq!(call(&mut st, &end, 3).await.error_code, 0);
    let resp = producers(&mut st, "txd-out").await;
    let p = &resp.topics[0].partitions[1].active_producers[0];
    assert_eq!((p.coordinator_epoch, p.current_txn_start_offset), (0, -1));
    assert!(p.last_timestamp > ts, "the marker's time");
    let committed = list_txns(&mut st, &["CompleteCommit"], &[], -1, None).await;
    assert_eq!(
        ids(&committed),
        vec![("txd-open".into(), "CompleteCommit".into())]
    );

    // DescribeLogDirs: the data dir, every partition with its size.
    let req =
        DescribeLogDirsRequest::default()
            .with_topics(Some(vec![DescribableLogDirTopic::default()
                .with_topic(TopicName(s("txd-out")))
                .with_partitions(vec![0, 1, 9])]));
    let dirs = call(&mut st, &req, 4).await;
    assert_eq!((dirs.error_code, dirs.results.len()), (0, 1));
    let dir = &dirs.results[0];
    assert!(std::path::Path::new(dir.log_dir.as_str()).is_absolute());
    assert_eq!(dir.topics.len(), 1);
    let sizes: Vec<_> = dir.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                p.partition_size > 0,
                p.offset_lag,
                p.is_future_key,
            )
        })
        .collect();
    assert_eq!(sizes, vec![(0, false, 0, false), (1, true, 0, false)]);
    assert_eq!((dir.total_bytes, dir.usable_bytes), (-1, -1));
    let everything = call(
        &mut st,
        &DescribeLogDirsRequest::default().with_topics(None),
        1,
    )
    .await;
    let names: Vec<_> = everything.results[0]
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .collect();
    assert!(
        names.contains(&"txd-out".to_string())
            && names.contains(&"__transaction_state".to_string())
    );
}

fn rec(timestamp_delta: i64) -> TestRecord {
    TestRecord {
        timestamp_delta,
        key: None,
        value: Some(b"v".to_vec()),
        headers: Vec::new(),
    }
}

/// Produces a batch to partition 1 of `txd-out`: returns the error code.
async fn produce(st: &mut TcpStream, txn: Option<&str>, records: Vec<u8>) -> i16 {
    let req = ProduceRequest::default()
        .with_transactional_id(txn.map(|t| TransactionalId(s(t))))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s("txd-out")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(1)
                .with_records(Some(Bytes::from(records)))])]);
    let resp = call(st, &req, 9).await;
    resp.responses[0].partition_responses[0].error_code
}
