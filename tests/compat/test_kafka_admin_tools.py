"""Kafka's tools that describe a broker's state, 4.4.0, run as their
classes on Runnel's session broker and on the session's Kafka cluster:
`kafka-log-dirs` (`LogDirsCommand`, DescribeLogDirs), `kafka-transactions`
(`TransactionsCommand` list / describe / describe-producers:
ListTransactions, DescribeTransactions, DescribeProducers) around a
transaction a confluent-kafka producer holds open, and `kafka-topics
--describe` (`TopicCommand`, which Kafka 4's admin client answers with
DescribeTopicPartitions, a page at a time). Each output is checked, and the
observations of the two brokers must be the same (names of the broker's
own, such as log directories and coordinator ids, aside).
"""

from __future__ import annotations

import json
import re
import time

import pytest
from confluent_kafka import Producer

from compat_util import ck_producer, now_ms
from test_kafka_tools import TOPICS, tool

pytestmark = pytest.mark.kafka

LOG_DIRS = "org.apache.kafka.tools.LogDirsCommand"
TXNS = "org.apache.kafka.tools.TransactionsCommand"


@pytest.fixture
def peer(request):
    """(name, bootstrap, replication factor) of the broker under test."""
    if request.param == "runnel":
        return "runnel", request.getfixturevalue("bootstrap"), "1"
    cluster = request.getfixturevalue("kafka")
    assert not cluster.stopped, "the session's Kafka cluster was stopped before this test"
    return "kafka", cluster.bootstrap, "3"


PEERS = pytest.mark.parametrize("peer", ["runnel", "kafka"], indirect=True)


def table(text: str) -> list[dict[str, str]]:
    """The rows of a tool's pretty-printed table, by header."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0].split()
    return [dict(zip(header, re.split(r"\s+", line.strip(), maxsplit=len(header) - 1))) for line in lines[1:]]


def create(b: list[str], topic: str, partitions: int, rf: str) -> None:
    tool(TOPICS, *b, "--create", "--topic", topic, "--partitions", str(partitions), "--replication-factor", rf)


@PEERS
def test_kafka_log_dirs_describe(kafka_libs, peer, topic, request):
    name, bootstrap, rf = peer
    topic = topic.replace("_", "-")
    b = ["--bootstrap-server", bootstrap]
    create(b, topic, 2, rf)
    p = ck_producer(bootstrap)
    for i in range(5):
        p.produce(topic, value=f"v{i}", partition=0)
    assert p.flush(30) == 0

    out, _ = tool(LOG_DIRS, *b, "--describe", "--topic-list", topic)
    lines = out.strip().splitlines()
    assert lines[0] == "Querying brokers for log directories information", out
    assert lines[1].startswith("Received log directory information from brokers "), out
    doc = json.loads(lines[-1])
    assert doc["version"] == 1
    brokers = doc["brokers"]
    assert len(brokers) == int(rf), doc
    for broker in brokers:
        assert len(broker["logDirs"]) == 1, broker
        d = broker["logDirs"][0]
        assert d["error"] is None
        seen = sorted((x["partition"], x["size"] > 0, x["offsetLag"], x["isFuture"]) for x in d["partitions"])
        # Every broker holds both partitions (rf 1 on one broker, rf 3 on three).
        assert seen == [(f"{topic}-0", True, 0, False), (f"{topic}-1", False, 0, False)], doc
    if name == "runnel":
        data_dir = request.getfixturevalue("runnel_server").data_dir
        assert brokers[0]["broker"] == 1
        assert brokers[0]["logDirs"][0]["logDir"] == str(data_dir.resolve())

    # Without a topic list every topic is there, internal ones included.
    # (Runnel creates its internal topics at start, Kafka on first use: a
    # deliberate difference.)
    out, _ = tool(LOG_DIRS, *b, "--describe")
    everything = {x["partition"] for br in json.loads(out.strip().splitlines()[-1])["brokers"]
                  for d in br["logDirs"] for x in d["partitions"]}
    assert {f"{topic}-0", f"{topic}-1"} <= everything
    if name == "runnel":
        assert {"__consumer_offsets-0", "__transaction_state-0"} <= everything


def txn_producer(bootstrap: str, txn_id: str) -> Producer:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id,
                  "transaction.timeout.ms": 60000, "linger.ms": 100})
    p.init_transactions(30)
    return p


@PEERS
def test_kafka_transactions_list_describe_and_describe_producers(kafka_libs, peer, topic):
    name, bootstrap, rf = peer
    topic = topic.replace("_", "-")
    b = ["--bootstrap-server", bootstrap]
    create(b, topic, 2, rf)
    txn_id = f"{topic}-txn-{name}"
    p = txn_producer(bootstrap, txn_id)
    before = now_ms()
    p.begin_transaction()
    stamps = [before - 3000 + i for i in range(3)]
    for i, ts in enumerate(stamps):
        p.produce(topic, value=f"t{i}", partition=1, timestamp=ts)
    assert p.flush(30) == 0  # sent and acknowledged, transaction still open

    out, _ = tool(TXNS, *b, "list")
    rows = [r for r in table(out) if r["TransactionalId"] == txn_id]
    assert len(rows) == 1, out
    assert rows[0]["TransactionState"] == "Ongoing"
    pid = rows[0]["ProducerId"]
    out, _ = tool(TXNS, *b, "list", "--duration-filter", "3600000")
    assert txn_id not in out, "open for seconds, not an hour"

    out, _ = tool(TXNS, *b, "describe", "--transactional-id", txn_id)
    [d] = table(out)
    assert (d["TransactionalId"], d["ProducerId"], d["TransactionState"], d["TransactionTimeoutMs"]) == \
        (txn_id, pid, "Ongoing", "60000"), out
    start = int(d["CurrentTransactionStartTimeMs"])
    assert before - 1000 <= start <= now_ms(), out
    assert 0 <= int(d["TransactionDurationMs"]) < 120_000, out
    assert d["TopicPartitions"] == f"{topic}-1", out
    epoch = d["ProducerEpoch"]

    out, _ = tool(TXNS, *b, "describe-producers", "--topic", topic, "--partition", "1")
    [pr] = table(out)
    assert pr == {
        "ProducerId": pid, "ProducerEpoch": epoch, "LatestCoordinatorEpoch": "-1",
        "LastSequence": "2", "LastTimestamp": str(stamps[-1]), "CurrentTransactionStartOffset": "0",
    }, out
    out, _ = tool(TXNS, *b, "describe-producers", "--topic", topic, "--partition", "0")
    assert table(out) == [], out

    p.commit_transaction(30)
    # The commit is acknowledged once it is prepared; the markers are
    # written after it (Kafka: PrepareCommit, then CompleteCommit).
    deadline = time.monotonic() + 30
    while True:
        out, _ = tool(TXNS, *b, "describe", "--transactional-id", txn_id)
        [d] = table(out)
        if d["TransactionState"] != "PrepareCommit" or time.monotonic() > deadline:
            break
    assert (d["TransactionState"], d["CurrentTransactionStartTimeMs"]) == ("CompleteCommit", str(start)), out
    assert "TopicPartitions" not in d or d["TopicPartitions"] == "", out
    out, _ = tool(TXNS, *b, "describe-producers", "--topic", topic, "--partition", "1")
    [pr] = table(out)
    assert pr["CurrentTransactionStartOffset"] == "None" and pr["LastSequence"] == "2", out
    assert int(pr["LatestCoordinatorEpoch"]) >= 0, out
    assert int(pr["LastTimestamp"]) >= start, "the commit marker's time"

    _, err = tool(TXNS, *b, "describe", "--transactional-id", f"{txn_id}-unknown", ok=False)
    assert "TransactionalIdNotFoundException" in err or "could not be found" in err, err


@PEERS
def test_kafka_topics_describe_pages_through_describe_topic_partitions(kafka_libs, peer, topic):
    _name, bootstrap, rf = peer
    topic = topic.replace("_", "-")
    b = ["--bootstrap-server", bootstrap]
    others = [f"{topic}-a", f"{topic}-b"]
    create(b, topic, 3, rf)
    for t in others:
        create(b, t, 2, rf)
    expected_rf = rf

    def describe(*extra):
        out, _ = tool(TOPICS, *b, "--describe", *extra)
        return out.strip().splitlines()

    for extra in ([], ["--partition-size-limit-per-response", "1"], ["--partition-size-limit-per-response", "2"]):
        lines = describe("--topic", f"{topic}.*", *extra)
        heads = [line for line in lines if line.startswith("Topic:") and "PartitionCount" in line]
        # (The tool prints topics in the admin client's map order.)
        assert sorted(h.split("\t")[0] for h in heads) == [f"Topic: {t}" for t in [topic, *others]], lines
        parts = [re.sub(r"\s+", " ", line.strip()) for line in lines if line.startswith("\tTopic:")]
        assert sorted(p.split(" Leader:")[0] for p in parts) == \
            [f"Topic: {t} Partition: {i}" for t, n in [(topic, 3), (others[0], 2), (others[1], 2)]
             for i in range(n)], lines
        # ELR is a list (empty) from DescribeTopicPartitions, N/A from Metadata.
        assert all(p.endswith("Elr: LastKnownElr:") for p in parts), lines
        assert all(f"ReplicationFactor: {expected_rf}" in h for h in heads), lines


FEATURES = "org.apache.kafka.tools.FeatureCommand"


def features(bootstrap: str) -> dict[str, dict[str, str]]:
    """`kafka-features describe`: each feature's levels (its epoch aside)."""
    out, _ = tool(FEATURES, "--bootstrap-server", bootstrap, "describe")
    seen = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w[\w.]*):\s+(\S+)", line))
        if "Feature" in fields:
            name = fields.pop("Feature")
            fields.pop("Epoch", None)
            seen[name] = fields
    return seen


def test_kafka_features_describe_group_and_share_version(kafka_libs, bootstrap, kafka):
    """ApiVersions' feature levels as `kafka-features describe` (the Admin
    client's describeFeatures) shows them: Runnel advertises group.version
    (KIP-848) and share.version (KIP-932) at level 1, and nothing else
    (not transaction.version 2, streams.version, metadata.version and the
    other KRaft ones: they are not implemented, or not Runnel's)."""
    runnel = features(bootstrap)
    apache = features(kafka.bootstrap)
    assert sorted(runnel) == ["group.version", "share.version"], runnel
    want = {"SupportedMinVersion": "0", "SupportedMaxVersion": "1", "FinalizedVersionLevel": "1"}
    assert runnel == {"group.version": want, "share.version": want}, runnel
    assert apache["group.version"] == runnel["group.version"], apache
    # Deliberate: Kafka 4.4 finalizes share.version 2, whose one addition
    # is the share groups' dead-letter queue (ShareVersion's
    # supportsShareGroupDLQ), which Runnel does not have; level 1 is share
    # groups themselves.
    assert apache["share.version"] == {**want, "SupportedMaxVersion": "2", "FinalizedVersionLevel": "2"}, apache
