"""KIP-848, the consumer group protocol with server-side assignment: two of
Kafka's console consumers (Java client 4.4.0, `group.protocol=consumer`)
share a topic's partitions, one leaves and the other takes them all over,
committed offsets reach the end of the log; `kafka-consumer-groups` lists,
describes (members, state, offsets) such a group; librdkafka's KIP-848
consumer (confluent-kafka, `group.protocol=consumer`) does the same
hand-over and commits; DescribeGroups (the classic API, kafka-python's
admin client) on a consumer group; group configs (`consumer.*`) with
`kafka-configs`. Each of these runs on Runnel's broker and on the Kafka
cluster with the same checks. Runnel only: a member keeps its partitions
and epoch across a broker restart, and a group's session timeout config
removes a killed member.
"""

from __future__ import annotations

import re
import signal
import subprocess
import tempfile

import pytest

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_cluster
from compat_util import ck_producer, wait_until
from test_kafka_tools import CONFIGS, CONSUMER, GROUPS, TOPICS, rows, tool


PEERS = pytest.mark.parametrize("peer", ["runnel", pytest.param("kafka", marks=pytest.mark.kafka)],
                                indirect=True)


def produce(bootstrap: str, topic: str, partitions: int, per_partition: int, start: int) -> set[str]:
    p = ck_producer(bootstrap)
    values = set()
    for part in range(partitions):
        for i in range(start, start + per_partition):
            v = f"p{part}-{i}"
            p.produce(topic, value=v, partition=part)
            values.add(v)
    assert p.flush(30) == 0
    return values


def members(b: list[str], group: str) -> list[int]:
    """Partition counts of the group's members, sorted."""
    out, _ = tool(GROUPS, *b, "--describe", "--group", group, "--members")
    return sorted(int(r[4]) for r in rows(out, "GROUP") if r[0] == group and len(r) >= 5)


def start_consumer(b: list[str], topic: str, group: str, out):
    return subprocess.Popen(
        kafka_cluster.java(CONSUMER, *b, "--topic", topic, "--group", group, "--from-beginning",
                           "--command-property", "group.protocol=consumer",
                           "--command-property", "auto.commit.interval.ms=500"),
        stdout=out, stderr=subprocess.DEVNULL, text=True,
    )


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM: the console consumer closes its consumer, which leaves."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.kafka
@PEERS
def test_console_consumers_share_and_take_over_with_the_consumer_protocol(kafka_libs, peer, topic):
    _, bootstrap = peer
    topic = topic.replace("_", "-")
    group = f"{topic}-g"
    b = ["--bootstrap-server", bootstrap]
    tool(TOPICS, *b, "--create", "--topic", topic, "--partitions", "4", "--replication-factor", "1")
    sent = produce(bootstrap, topic, 4, 10, 0)
    with tempfile.TemporaryFile("w+") as out_a, tempfile.TemporaryFile("w+") as out_b:
        a = start_consumer(b, topic, group, out_a)
        procs = [a]
        try:
            wait_until(lambda: members(b, group) == [4], timeout=60, interval=0.5, what="a owns all 4")
            bproc = start_consumer(b, topic, group, out_b)
            procs.append(bproc)
            # b gets its two only after a has revoked them.
            wait_until(lambda: members(b, group) == [2, 2], timeout=60, interval=0.5, what="2 + 2")
            out, _ = tool(GROUPS, *b, "--describe", "--group", group, "--state")
            [state] = [r for r in rows(out, "GROUP") if r[0] == group]
            assert state[-3:] == ["uniform", "Stable", "2"], out
            listed, _ = tool(GROUPS, *b, "--list", "--type")
            assert [group, "Consumer"] in rows(listed, "GROUP"), listed

            stop(a)
            wait_until(lambda: members(b, group) == [4], timeout=60, interval=0.5, what="b takes over")
            sent |= produce(bootstrap, topic, 4, 5, 10)

            def caught_up():
                out, _ = tool(GROUPS, *b, "--describe", "--group", group, "--offsets")
                offs = [(r[3], r[4]) for r in rows(out, "GROUP") if r[0] == group and r[1] == topic]
                return len(offs) == 4 and all(c == e == "15" for c, e in offs) and out
            wait_until(caught_up, timeout=60, interval=0.5, what="offsets committed to the end")
        finally:
            for p in procs:
                stop(p)
        out_a.seek(0)
        out_b.seek(0)
        got_a = {v for v in out_a.read().split() if re.fullmatch(r"p\d+-\d+", v)}
        got_b = {v for v in out_b.read().split() if re.fullmatch(r"p\d+-\d+", v)}
    # At least once: every record was read, by one consumer or the other.
    assert got_a | got_b == sent
    assert got_b - got_a, "b read records"
    out, _ = tool(GROUPS, *b, "--describe", "--group", group, "--state")
    [state] = [r for r in rows(out, "GROUP") if r[0] == group]
    assert state[-2:] == ["Empty", "0"], out


def rk_consumer(bootstrap: str, group: str, **extra) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False, **extra})


@PEERS
def test_librdkafka_consumers_share_and_take_over(peer, topic):
    _, bootstrap = peer
    group = f"{topic}-g"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 4, 1)])[topic].result(timeout=15)
    sent = produce(bootstrap, topic, 4, 10, 0)
    a, b = rk_consumer(bootstrap, group), rk_consumer(bootstrap, group)
    got: set[str] = set()

    def poll(*consumers):
        for c in consumers:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.add(m.value().decode())

    try:
        a.subscribe([topic])
        wait_until(lambda: poll(a) or len(a.assignment()) == 4, timeout=30, what="a owns all 4")
        b.subscribe([topic])
        wait_until(lambda: poll(a, b) or (len(a.assignment()), len(b.assignment())) == (2, 2),
                   timeout=30, what="2 + 2")
        assert not {(t.topic, t.partition) for t in a.assignment()} & \
            {(t.topic, t.partition) for t in b.assignment()}
        a.commit(asynchronous=False)
        a.close()
        wait_until(lambda: poll(b) or len(b.assignment()) == 4, timeout=30, what="b takes over")
        wait_until(lambda: poll(b) or got == sent, timeout=30, what="every record read")
        b.commit(asynchronous=False)
        committed = b.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
        assert [tp.offset for tp in committed] == [10, 10, 10, 10]
    finally:
        b.close()
    d = admin.describe_consumer_groups([group])[group].result(timeout=15)
    assert (d.state.name, d.type.name, d.partition_assignor, d.members) == ("EMPTY", "CONSUMER", "uniform", [])


@PEERS
def test_librdkafka_consumers_with_the_range_assignor(peer, topic):
    """The server-side range assignor (`group.remote.assignor=range`): two
    members of two 4-partition topics each get a contiguous half of every
    topic, the same half of both (co-partitioned), and the group describes
    with the range assignor."""
    _, bootstrap = peer
    group = f"{topic}-g"
    topics = [f"{topic}-a", f"{topic}-b"]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for t, f in admin.create_topics([NewTopic(t, 4, 1) for t in topics]).items():
        f.result(timeout=15)
    a, b = (rk_consumer(bootstrap, group, **{"group.remote.assignor": "range"}) for _ in range(2))

    def owned(c) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for tp in c.assignment():
            out.setdefault(tp.topic, []).append(tp.partition)
        return {t: sorted(ps) for t, ps in sorted(out.items())}

    try:
        a.subscribe(topics)
        b.subscribe(topics)

        def settled():
            a.poll(0.1)
            b.poll(0.1)
            return sum(map(len, owned(a).values())) == 4 and sum(map(len, owned(b).values())) == 4

        wait_until(settled, timeout=45, what="4 + 4 partitions")
        halves = sorted([owned(a), owned(b)], key=lambda o: o[topics[0]])
        assert halves == [{t: [0, 1] for t in topics}, {t: [2, 3] for t in topics}], halves
        d = admin.describe_consumer_groups([group])[group].result(timeout=15)
        assert (d.state.name, d.type.name, d.partition_assignor, len(d.members)) == \
            ("STABLE", "CONSUMER", "range", 2)
    finally:
        a.close()
        b.close()


@pytest.mark.kafka
@PEERS
def test_describe_groups_and_group_configs_of_a_consumer_group(kafka_libs, peer, topic):
    """The classic DescribeGroups (kafka-python's admin client) on a group of
    the consumer protocol with a live member, and its `consumer.*` group
    configs with `kafka-configs`: set, described, refused out of bounds."""
    from kafka.admin import KafkaAdminClient

    name, bootstrap = peer
    topic = topic.replace("_", "-")
    group = f"{topic}-g"
    b = ["--bootstrap-server", bootstrap]
    tool(TOPICS, *b, "--create", "--topic", topic, "--partitions", "2", "--replication-factor", "1")
    c = rk_consumer(bootstrap, group)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        c.subscribe([topic])
        wait_until(lambda: c.poll(0.2) is None and len(c.assignment()) == 2, timeout=30, what="assigned")
        d = admin.describe_groups([group])[group]
        # Kafka 4: DescribeGroups is for classic groups only; v6 (which
        # kafka-python uses) says why in Kafka 4.4's words.
        assert (d["error"], d["group_state"], d["protocol_type"], d["members"]) == (
            f"[Error 69] GroupIdNotFoundError: Group {group} is not a classic group.", "Dead", "", []), d
    finally:
        c.close()
        admin.close()

    def configs(*args: str, ok: bool = True) -> list[str]:
        out, err = tool(CONFIGS, *b, "--entity-type", "groups", "--entity-name", group, *args, ok=ok)
        return [line.strip() for line in (out + err).splitlines() if line.strip()]

    def default(key: str, value: str) -> str:
        return f"{key}={value} sensitive=false synonyms={{DEFAULT_CONFIG:group.{key}={value}}}"

    def dynamic(key: str, value: str, default: str) -> str:
        return (f"{key}={value} sensitive=false synonyms={{DYNAMIC_GROUP_CONFIG:{key}={value}, "
                f"DEFAULT_CONFIG:group.{key}={default}}}")

    configs("--alter", "--add-config", "consumer.session.timeout.ms=50000,consumer.heartbeat.interval.ms=6000")
    assert configs("--describe")[1:] == [
        dynamic("consumer.heartbeat.interval.ms", "6000", "5000"),
        dynamic("consumer.session.timeout.ms", "50000", "45000"),
    ]
    for kv, why in [
        ("consumer.session.timeout.ms=1000", "consumer.session.timeout.ms must be in the range 45000 to 60000 inclusive."),
        ("consumer.heartbeat.interval.ms=50000",
         "consumer.heartbeat.interval.ms must be in the range 5000 to 15000 inclusive."),
        ("consumer.nope=1", "Unknown group config name: consumer.nope"),
    ]:
        said = configs("--alter", "--add-config", kv, ok=False)
        assert f"Caused by: org.apache.kafka.common.errors.InvalidConfigurationException: {why}" in said, said
    configs("--alter", "--delete-config", "consumer.heartbeat.interval.ms")
    described = configs("--describe", "--all")
    # Kafka also lists its other group configs (streams.*, share.* that
    # Runnel does not have, consumer.assignment.interval.ms).
    assert [line for line in described if line.startswith(("consumer.heartbeat", "consumer.session"))] == [
        default("consumer.heartbeat.interval.ms", "5000"),
        dynamic("consumer.session.timeout.ms", "50000", "45000"),
    ], described


def test_a_groups_session_timeout_config_removes_a_killed_member(group_member, make_server, unique_name):
    """`consumer.session.timeout.ms` set on the group (3 s, allowed by the
    broker's `--group-consumer-min-session-timeout-ms`) is the session
    timeout of its members: a SIGKILLed member is removed well before the
    broker's default 45 s."""
    server = make_server(extra_args=["--group-consumer-min-session-timeout-ms", "2000",
                                     "--group-consumer-min-heartbeat-interval-ms", "500"]).start()
    bootstrap = server.bootstrap
    topic, group = unique_name("t"), unique_name("g")
    b = ["--bootstrap-server", bootstrap]
    tool(CONFIGS, *b, "--entity-type", "groups", "--entity-name", group, "--alter", "--add-config",
         "consumer.session.timeout.ms=3000,consumer.heartbeat.interval.ms=1000")
    out, _ = tool(CONFIGS, *b, "--entity-type", "brokers", "--entity-name", "1", "--describe", "--all")
    assert "group.consumer.min.session.timeout.ms=2000" in out, out
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(timeout=15)
    proc = subprocess.Popen(
        kafka_cluster.java("GroupMember", bootstrap, group, topic, cp=kafka_cluster.classpath(group_member)),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, stdin=subprocess.DEVNULL)
    lines = Lines(proc)
    try:
        wait_until(lambda: any(e["event"] == "assigned" and e["partitions"] == [0, 1] for e in lines.snapshot()),
                   timeout=60, interval=0.2, what="the member assigned both partitions")
    finally:
        proc.kill()
        proc.wait()

    def members():
        return admin.describe_consumer_groups([group])[group].result(timeout=15).members

    assert len(members()) == 1
    wait_until(lambda: members() == [], timeout=30, interval=0.5, what="the killed member removed")
    assert server.stop() == 0


class Lines:
    """The JSON lines a process prints, collected by a thread as they come."""

    def __init__(self, proc: subprocess.Popen):
        import json
        import threading

        self.items: list[dict] = []
        self._lock = threading.Lock()

        def read():
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("{"):
                    with self._lock:
                        self.items.append(json.loads(line))

        threading.Thread(target=read, daemon=True).start()

    def snapshot(self) -> list[dict]:
        with self._lock:
            return list(self.items)


@pytest.fixture(scope="session")
def group_member(kafka_libs):
    from pathlib import Path

    [clients] = sorted(kafka_libs.glob("kafka-clients-*.jar"))
    return kafka_cluster.compile_java([Path(__file__).resolve().parent / "java" / "GroupMember.java"],
                                      "group-member", cp=str(clients))


@pytest.mark.kafka
def test_a_member_keeps_its_partitions_and_epoch_across_a_broker_restart(group_member, make_server, unique_name):
    """KIP-848 group state is in `__consumer_offsets`: SIGKILL the broker
    under a Java consumer (`group.protocol=consumer`) and start it again on
    the same port; the member heartbeats on with its epoch, never loses or
    gives up its partitions, and reads and commits to the end."""
    server = make_server().start()
    bootstrap = server.bootstrap
    topic, group = unique_name("t"), unique_name("g")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 4, 1)])[topic].result(timeout=15)
    produce(bootstrap, topic, 4, 10, 0)
    proc = subprocess.Popen(
        kafka_cluster.java("GroupMember", bootstrap, group, topic, cp=kafka_cluster.classpath(group_member)),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, stdin=subprocess.DEVNULL)
    lines = Lines(proc)

    def read_count() -> int:
        return max((e["count"] for e in lines.snapshot() if e["event"] == "read"), default=0)

    try:
        wait_until(lambda: read_count() == 40, timeout=60, interval=0.2, what="the first 40 records read")
        [assigned] = [e for e in lines.snapshot() if e["event"] == "assigned" and e["partitions"]]
        assert assigned["partitions"] == [0, 1, 2, 3], lines.snapshot()
        epoch = [e for e in lines.snapshot() if e["event"] == "read"][-1]["epoch"]
        assert epoch > 0
        described = admin.describe_consumer_groups([group])[group].result(timeout=15)
        [before] = described.members
        seen = len(lines.snapshot())

        assert server.kill() == -signal.SIGKILL
        server.start(port=server.port)
        produce(bootstrap, topic, 4, 5, 10)
        wait_until(lambda: read_count() == 60, timeout=60, interval=0.2, what="the records after the restart read")

        after = lines.snapshot()[seen:]
        assert not [e for e in after if e["event"] in ("assigned", "revoked", "lost")], after
        assert {e["epoch"] for e in after if e["event"] == "read"} == {epoch}, after
        d = admin.describe_consumer_groups([group])[group].result(timeout=15)
        [member] = d.members
        assert (d.state.name, member.member_id, member.client_id) == ("STABLE", before.member_id, "group-member")
        assert sorted(tp.partition for tp in member.assignment.topic_partitions) == [0, 1, 2, 3]
        out, _ = tool(GROUPS, "--bootstrap-server", bootstrap, "--describe", "--group", group, "--members")
        described = [r for r in rows(out, "GROUP") if r[0] == group]
        assert [(r[1], r[3], r[4]) for r in described] == [(before.member_id, "group-member", "4")], out
        out, _ = tool(GROUPS, "--bootstrap-server", bootstrap, "--describe", "--group", group, "--offsets")
        offs = sorted((r[2], r[3], r[4]) for r in rows(out, "GROUP") if r[0] == group and r[1] == topic)
        assert offs == [(str(p), "15", "15") for p in range(4)], out
        # Runnel's own CLI lists and describes it as a consumer-protocol group.
        from conftest import runnel_bin
        cli = [str(runnel_bin()), "group", "-b", bootstrap]
        listed = subprocess.run([*cli, "list"], capture_output=True, text=True, timeout=30).stdout
        assert [group, "Stable", "consumer", "consumer"] in rows(listed, "GROUP"), listed
        described = subprocess.run([*cli, "describe", group], capture_output=True, text=True, timeout=30)
        lines = described.stdout.splitlines()
        assert lines[0] == f"Group: {group}\tState: Stable\tProtocol: consumer\tAssignor: uniform\tMembers: 1", \
            described
        assert [line.split("\t")[:6] for line in lines[2:]] == \
            [[topic, str(p), "15", "15", "0", member.member_id] for p in range(4)], described
    finally:
        proc.kill()
        proc.wait()
