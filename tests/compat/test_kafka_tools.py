"""Apache Kafka's command-line tools (the fixture's version, run as their
classes: kafka-topics, the console producer and consumer,
kafka-consumer-groups, kafka-configs, get-offsets, kafka-cluster)
against Runnel's broker, each call checked for its exit code and output.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

import kafka_cluster
from compat_util import ck_producer, now_ms, wait_until

pytestmark = pytest.mark.kafka

T = "org.apache.kafka.tools."
TOPICS = T + "TopicCommand"
PRODUCER = T + "ConsoleProducer"
CONSUMER = T + "consumer.ConsoleConsumer"
GROUPS = T + "consumer.group.ConsumerGroupCommand"
CONFIGS = T + "ConfigCommand"
OFFSETS = T + "GetOffsetShell"
CLUSTER = T + "ClusterTool"


def tool(main: str, *args: str, stdin: str | None = None, ok: bool = True, timeout: float = 60):
    """Runs one tool; with ok=True it must exit 0. Returns (stdout, stderr)."""
    proc = subprocess.run(
        kafka_cluster.java(main, *args), input=stdin if stdin is not None else "",
        capture_output=True, text=True, timeout=timeout,
    )
    report = f"{main} {' '.join(args)}\nexit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    if ok:
        assert proc.returncode == 0, report
    else:
        assert proc.returncode != 0, report
    return proc.stdout, proc.stderr


def rows(text: str, first_column: str) -> list[list[str]]:
    """The rows of a whitespace-aligned table (kafka-consumer-groups), header dropped."""
    out = []
    for line in text.splitlines():
        cols = line.split()
        if cols and cols[0] != first_column:
            out.append(cols)
    return out


@pytest.fixture
def topic(topic) -> str:
    # The tools warn about names mixing '.' and '_' (metric name clashes);
    # the per-test names here use '-' only so that outputs stay exact.
    return topic.replace("_", "-")


def produce(bootstrap: str, topic: str, per_partition: dict[int, int], base_ts: int | None = None):
    p = ck_producer(bootstrap)
    ts = base_ts or now_ms()
    for part, n in per_partition.items():
        for i in range(n):
            p.produce(topic, key=f"k{part}-{i}", value=f"v{part}-{i}", partition=part, timestamp=ts + i * 1000)
    assert p.flush(30) == 0


def test_kafka_topics(kafka_libs, bootstrap, topic):
    b = ["--bootstrap-server", bootstrap]
    out, _ = tool(TOPICS, *b, "--create", "--topic", topic, "--partitions", "3",
                  "--replication-factor", "1", "--config", "retention.ms=3600000")
    assert out.strip() == f"Created topic {topic}."
    _, err = tool(TOPICS, *b, "--create", "--topic", topic, "--partitions", "1", ok=False)
    assert f"Topic '{topic}' already exists" in err or f"topic {topic} already exists" in err

    listed, _ = tool(TOPICS, *b, "--list")
    assert topic in listed.split()
    external, _ = tool(TOPICS, *b, "--list", "--exclude-internal")
    assert topic in external.split()
    assert "__consumer_offsets" not in external.split()

    out, _ = tool(TOPICS, *b, "--describe", "--topic", topic)
    lines = out.strip().splitlines()
    m = re.match(rf"Topic: {re.escape(topic)}\tTopicId: \S+\tPartitionCount: 3\tReplicationFactor: 1\t"
                 r"Configs: (\S+)$", lines[0])
    assert m, out
    # Non-default configs: the topic's own, and the session broker's
    # --flush-messages 1 (a static broker config, shown as Kafka shows one).
    assert set(m.group(1).split(",")) == {"retention.ms=3600000", "flush.messages=1"}, out
    assert [re.sub(r"\s+", " ", line.strip()) for line in lines[1:]] == [
        f"Topic: {topic} Partition: {p} Leader: 1 Replicas: 1 Isr: 1 Elr: LastKnownElr:" for p in range(3)
    ]

    tool(TOPICS, *b, "--alter", "--topic", topic, "--partitions", "4")
    out, _ = tool(TOPICS, *b, "--describe", "--topic", topic)
    assert "PartitionCount: 4" in out and "Partition: 3\tLeader: 1" in out
    _, err = tool(TOPICS, *b, "--alter", "--topic", topic, "--partitions", "2", ok=False)
    assert "InvalidPartitionsException" in err, err
    out, _ = tool(TOPICS, *b, "--describe", "--topic", topic, "--under-replicated-partitions")
    assert out.strip() == ""

    tool(TOPICS, *b, "--delete", "--topic", topic)
    wait_until(lambda: topic not in tool(TOPICS, *b, "--list")[0].split(), timeout=20,
               what=f"{topic} gone from --list")


def test_console_producer_and_consumer(kafka_libs, bootstrap, topic):
    b = ["--bootstrap-server", bootstrap]
    tool(TOPICS, *b, "--create", "--topic", topic, "--partitions", "1", "--replication-factor", "1")
    before = now_ms()
    lines = "src:web,v:1\tk1:hello\nsrc:cli\tk2:world\nempty:\tk3:no headers here\n"
    tool(PRODUCER, *b, "--topic", topic, "--reader-property", "parse.key=true",
         "--reader-property", "key.separator=:", "--reader-property", "parse.headers=true",
         "--command-property", "acks=all", stdin=lines)
    after = now_ms()

    out, err = tool(CONSUMER, *b, "--topic", topic, "--from-beginning", "--max-messages", "3",
                    "--formatter-property", "print.key=true", "--formatter-property", "print.headers=true",
                    "--formatter-property", "print.timestamp=true", "--formatter-property", "print.offset=true",
                    "--formatter-property", "print.partition=true", "--timeout-ms", "20000")
    assert "Processed a total of 3 messages" in err
    got = out.strip().splitlines()
    expect = [("src:web,v:1", "k1", "hello", 0), ("src:cli", "k2", "world", 1), ("empty:", "k3", "no headers here", 2)]
    assert len(got) == 3, out
    for line, (headers, key, value, offset) in zip(got, expect):
        ts, part, off, h, k, v = line.split("\t")
        assert ts.startswith("CreateTime:") and before <= int(ts.split(":")[1]) <= after
        assert (part, off, h, k, v) == ("Partition:0", f"Offset:{offset}", headers, key, value)

    # From an explicit offset, values only.
    out, err = tool(CONSUMER, *b, "--topic", topic, "--partition", "0", "--offset", "1",
                    "--max-messages", "2", "--timeout-ms", "20000")
    assert out.strip().splitlines() == ["world", "no headers here"]

    # A group consumer commits what it read.
    group = f"{topic}-group"
    out, _ = tool(CONSUMER, *b, "--topic", topic, "--group", group, "--from-beginning",
                  "--max-messages", "3", "--timeout-ms", "20000")
    assert out.strip().splitlines() == ["hello", "world", "no headers here"]
    out, _ = tool(GROUPS, *b, "--describe", "--group", group)
    assert rows(out, "GROUP") == [[group, topic, "0", "3", "3", "0", "-", "-", "-"]]


def test_kafka_consumer_groups(kafka_libs, bootstrap, topic):
    from confluent_kafka import Consumer

    b = ["--bootstrap-server", bootstrap]
    group = f"{topic}-group"
    tool(TOPICS, *b, "--create", "--topic", topic, "--partitions", "2", "--replication-factor", "1")
    produce(bootstrap, topic, {0: 5, 1: 3})

    # An active member, to see it in --members and --state.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "partition.assignment.strategy": "range"})
    try:
        c.subscribe([topic])
        read = []
        deadline = time.monotonic() + 30
        while len(read) < 8 and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                read.append(m)
        assert len(read) == 8
        c.commit(asynchronous=False)
        listed, _ = tool(GROUPS, *b, "--list")
        assert group in listed.split()
        out, _ = tool(GROUPS, *b, "--describe", "--group", group, "--state")
        (row,) = rows(out, "GROUP")
        assert row[0] == group and row[-3:] == ["range", "Stable", "1"], out
        assert row[1] == bootstrap
        out, _ = tool(GROUPS, *b, "--describe", "--group", group, "--members")
        (row,) = rows(out, "GROUP")
        assert row[0] == group and row[-1] == "2", out
        out, _ = tool(GROUPS, *b, "--describe", "--group", group)
        table = sorted(rows(out, "GROUP"))
        assert [r[:6] for r in table] == [[group, topic, "0", "5", "5", "0"], [group, topic, "1", "3", "3", "0"]]
        assert all(r[6] != "-" for r in table), "an active member owns each partition"
        # Offsets of an active group cannot be reset.
        out, err = tool(GROUPS, *b, "--reset-offsets", "--group", group, "--topic", topic,
                        "--to-earliest", "--execute")
        assert "inactive" in (out + err).lower(), out + err
    finally:
        c.close()

    out, _ = tool(GROUPS, *b, "--describe", "--group", group, "--state")
    (row,) = rows(out, "GROUP")
    assert row[-2:] == ["Empty", "0"], out

    out, _ = tool(GROUPS, *b, "--reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute")
    assert sorted(rows(out, "GROUP")) == [[group, topic, "0", "0"], [group, topic, "1", "0"]]
    out, _ = tool(GROUPS, *b, "--reset-offsets", "--group", group, "--topic", f"{topic}:1",
                  "--to-offset", "2", "--dry-run")
    assert rows(out, "GROUP") == [[group, topic, "1", "2"]]
    out, _ = tool(GROUPS, *b, "--describe", "--group", group)
    assert sorted(r[:6] for r in rows(out, "GROUP")) == [
        [group, topic, "0", "0", "5", "5"], [group, topic, "1", "0", "3", "3"]]  # the dry run changed nothing
    out, _ = tool(GROUPS, *b, "--reset-offsets", "--group", group, "--topic", f"{topic}:1",
                  "--shift-by", "2", "--execute")
    assert rows(out, "GROUP") == [[group, topic, "1", "2"]]

    out, _ = tool(GROUPS, *b, "--delete-offsets", "--group", group, "--topic", f"{topic}:0")
    assert f"Request succeeded for deleting offsets from group {group}." in out
    assert [r for r in rows(out, "TOPIC") if r[0] == topic] == [[topic, "0", "Successful"]]
    out, _ = tool(GROUPS, *b, "--describe", "--group", group)
    assert [r[:6] for r in rows(out, "GROUP")] == [[group, topic, "1", "2", "3", "1"]]

    out, _ = tool(GROUPS, *b, "--delete", "--group", group)
    assert f"Deletion of requested consumer groups ('{group}') was successful." in out, out
    listed, _ = tool(GROUPS, *b, "--list")
    assert group not in listed.split()


def test_kafka_configs(kafka_libs, bootstrap, topic):
    b = ["--bootstrap-server", bootstrap]
    entity = ["--entity-type", "topics", "--entity-name", topic]
    tool(TOPICS, *b, "--create", "--topic", topic, "--partitions", "1", "--replication-factor", "1")
    out, _ = tool(CONFIGS, *b, *entity, "--describe")
    assert out.strip() == f"Dynamic configs for topic {topic} are:"

    out, _ = tool(CONFIGS, *b, *entity, "--alter", "--add-config", "retention.ms=7200000,segment.bytes=1048576")
    assert out.strip() == f"Completed updating config for topic {topic}."
    out, _ = tool(CONFIGS, *b, *entity, "--describe")
    lines = out.strip().splitlines()
    assert lines[0] == f"Dynamic configs for topic {topic} are:"
    dynamic = {line.split()[0] for line in lines[1:]}
    assert dynamic == {"retention.ms=7200000", "segment.bytes=1048576"}, out

    out, _ = tool(CONFIGS, *b, *entity, "--alter", "--delete-config", "segment.bytes")
    assert out.strip() == f"Completed updating config for topic {topic}."
    out, _ = tool(CONFIGS, *b, *entity, "--describe", "--all")
    values = dict(line.split()[0].split("=", 1) for line in out.strip().splitlines()[1:])
    assert values["retention.ms"] == "7200000"
    assert values["segment.bytes"] == "1073741824"  # back to the default
    assert values["cleanup.policy"] == "delete"

    _, err = tool(CONFIGS, *b, *entity, "--alter", "--add-config", "retention.ms=soon", ok=False)
    assert "retention.ms" in err, err

    out, _ = tool(CONFIGS, *b, "--entity-type", "brokers", "--entity-name", "1", "--describe", "--all")
    lines = out.strip().splitlines()
    assert lines[0] == "All configs for broker 1 are:"
    broker = dict(line.split()[0].split("=", 1) for line in lines[1:])
    assert broker.get("auto.create.topics.enable") == "true", out


@pytest.fixture
def peer(request):
    """(bootstrap, replication factor) of Runnel's session broker or of the Kafka cluster.

    The tests that name a Runnel bug also run on Apache Kafka, to show that
    what they expect is what Kafka does.
    """
    if request.param == "runnel":
        return request.getfixturevalue("bootstrap"), "1"
    cluster = request.getfixturevalue("kafka")
    assert not cluster.stopped, "the session's Kafka cluster was stopped before this test"
    return cluster.bootstrap, "3"


@pytest.mark.parametrize("peer", ["runnel", "kafka"], indirect=True)
def test_kafka_configs_synonyms(kafka_libs, peer, topic):
    bootstrap, rf = peer
    b = ["--bootstrap-server", bootstrap]
    entity = ["--entity-type", "topics", "--entity-name", topic]
    tool(TOPICS, *b, "--create", "--topic", topic, "--partitions", "1", "--replication-factor", rf)
    tool(CONFIGS, *b, *entity, "--alter", "--add-config", "retention.ms=7200000")
    out, _ = tool(CONFIGS, *b, *entity, "--describe")
    assert "retention.ms=7200000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=7200000}" in out, out


@pytest.mark.parametrize("peer", ["runnel", "kafka"], indirect=True)
def test_kafka_consumer_groups_delete_after_deleting_all_offsets(kafka_libs, peer, topic):
    bootstrap, rf = peer
    b = ["--bootstrap-server", bootstrap]
    group = f"{topic}-group"
    tool(TOPICS, *b, "--create", "--topic", topic, "--partitions", "1", "--replication-factor", rf)
    produce(bootstrap, topic, {0: 2})
    out, _ = tool(CONSUMER, *b, "--topic", topic, "--group", group, "--from-beginning",
                  "--max-messages", "2", "--timeout-ms", "30000")
    assert out.split() == ["v0-0", "v0-1"]
    out, _ = tool(GROUPS, *b, "--delete-offsets", "--group", group, "--topic", topic)
    assert [r for r in rows(out, "TOPIC") if r[0] == topic] == [[topic, "0", "Successful"]]
    out, err = tool(GROUPS, *b, "--delete", "--group", group)
    assert f"Deletion of requested consumer groups ('{group}') was successful." in out, out + err


def test_get_offsets(kafka_libs, bootstrap, topic):
    b = ["--bootstrap-server", bootstrap]
    tool(TOPICS, *b, "--create", "--topic", topic, "--partitions", "2", "--replication-factor", "1")
    base = now_ms() - 60_000
    produce(bootstrap, topic, {0: 5, 1: 3}, base_ts=base)
    a = AdminClient({"bootstrap.servers": bootstrap})
    deleted = a.delete_records([TopicPartition(topic, 0, 2)])
    list(deleted.values())[0].result(timeout=15)

    def offsets(*extra):
        out, _ = tool(OFFSETS, *b, *extra)
        return sorted(out.strip().splitlines())

    assert offsets("--topic", topic) == [f"{topic}:0:5", f"{topic}:1:3"]
    assert offsets("--topic", topic, "--time", "latest") == [f"{topic}:0:5", f"{topic}:1:3"]
    assert offsets("--topic", topic, "--time", "-2") == [f"{topic}:0:2", f"{topic}:1:0"]
    # -3: the offset of the record with the largest timestamp.
    assert offsets("--topic", topic, "--time", "-3") == [f"{topic}:0:4", f"{topic}:1:2"]
    # A timestamp: the first offset at or after it (none past partition 1's last).
    assert offsets("--topic", topic, "--time", str(base + 3500)) == [f"{topic}:0:4"]
    assert offsets("--topic-partitions", f"{topic}:1", "--time", str(base + 1000)) == [f"{topic}:1:1"]


def test_kafka_cluster_tool(kafka_libs, bootstrap):
    b = ["--bootstrap-server", bootstrap]
    a = AdminClient({"bootstrap.servers": bootstrap})
    cluster_id = a.describe_cluster(request_timeout=10).result(timeout=15).cluster_id
    out, _ = tool(CLUSTER, "cluster-id", *b)
    assert out.strip() == f"Cluster ID: {cluster_id}"

    out, _ = tool(CLUSTER, "list-endpoints", *b)
    header, *lines = out.strip().splitlines()
    assert header.split() == ["ID", "HOST", "PORT", "RACK", "STATE", "ENDPOINT_TYPE"]
    host, port = bootstrap.split(":")
    assert [line.split() for line in lines] == [["1", host, port, "null", "unfenced", "broker"]]

    out, _ = tool(CLUSTER, "api-versions", *b)
    assert out.startswith(f"{bootstrap} (id: 1 rack: null isFenced: false) -> (")
    versions = dict(re.findall(r"^\s*(\w+)\(\d+\): (.*?),?$", out, re.M))
    for api in ("Produce", "Fetch", "ListOffsets", "Metadata", "ApiVersions", "JoinGroup", "InitProducerId"):
        assert "usable:" in versions[api], f"{api}: {versions.get(api)}"
    assert versions["Produce"].endswith("to 11 [usable: 11]")
