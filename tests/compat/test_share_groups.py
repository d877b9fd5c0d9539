"""Share groups (KIP-932, Kafka's queues) on Runnel's broker, driven by the
Java client's KafkaShareConsumer (explicit acknowledgement) and
`kafka-share-groups`, each check also run on the Kafka cluster.

`java/ShareChecks.java` is compiled at test time with ClientChecks.java
against the fixture's kafka-clients jar.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

import kafka_cluster
from test_kafka_tools import CONFIGS, rows, tool

SHARE_GROUPS = "org.apache.kafka.tools.consumer.group.ShareGroupCommand"

pytestmark = pytest.mark.kafka

HERE = Path(__file__).resolve().parent / "java"


@pytest.fixture(scope="session")
def share_checks(kafka_libs) -> Path:
    [clients] = sorted(kafka_libs.glob("kafka-clients-*.jar"))
    return kafka_cluster.compile_java([HERE / "ShareChecks.java", HERE / "ClientChecks.java"],
                                      "share-checks", cp=str(clients))


PEERS = pytest.mark.parametrize("peer", ["runnel", "kafka"], indirect=True)


def assert_released_and_rejected(deliveries: list[tuple[int, int, str]]) -> None:
    """The deliveries (record number, delivery count, what the consumer did)
    of records 0-29 under the rules of these checks: a record whose number
    ends in 3 is released on its first delivery and comes back once with
    delivery count 2; one ending in 7 is rejected and never delivered again;
    every other one is delivered once and accepted."""
    for n in range(30):
        got = [(count, action) for m, count, action in deliveries if m == n]
        if n % 10 == 3:
            assert got == [(1, "release"), (2, "accept")], (n, deliveries)
        elif n % 10 == 7:
            assert got == [(1, "reject")], (n, deliveries)
        else:
            assert got == [(1, "accept")], (n, deliveries)


def cmd(classes: Path, bootstrap: str, prefix: str, check: str) -> list[str]:
    return kafka_cluster.java("ShareChecks", bootstrap, prefix, check, cp=kafka_cluster.classpath(classes))


def result(proc_out: str, report: str, check: str) -> dict:
    lines = [json.loads(line) for line in proc_out.splitlines() if line.startswith("{")]
    assert len(lines) == 1, report
    assert lines[0]["check"] == check and lines[0]["ok"], f"{lines[0].get('error')}\n{report}"
    return lines[0]["result"]


def run_check(classes: Path, bootstrap: str, prefix: str, check: str) -> dict:
    proc = subprocess.run(cmd(classes, bootstrap, prefix, check), capture_output=True, text=True,
                          timeout=110, stdin=subprocess.DEVNULL)
    report = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, report
    return result(proc.stdout, report, check)


@PEERS
def test_share_consumers_release_reject_and_hand_over(share_checks, peer):
    name, bootstrap = peer
    prefix = f"share-{uuid.uuid4().hex[:8]}"
    r = run_check(share_checks, bootstrap, prefix, "queue")
    assert r["state"] == "Stable"
    assert sorted(m["client_id"] for m in r["members"]) == ["share-a", "share-b"]
    events = r["events"]
    queue = [e for e in events if e["n"] < 30]
    # Both consumers of the single partition got records.
    assert {e["who"] for e in queue} == {"a", "b"}, queue
    assert_released_and_rejected([(e["n"], e["count"], e["action"]) for e in queue])
    # The share-partition start offset moved over everything acknowledged.
    # Kafka describes the start offset it last persisted, written with the
    # acknowledgements before the last ones: it trails (29 here, 36 below)
    # until the partition's state is written again. Runnel's is current.
    assert r["start_after_queue"] == 30 if name == "runnel" else r["start_after_queue"] <= 30
    # What a closed consumer held comes back to the other one, counted twice.
    held = set(r["held_by_a"])
    after = [e for e in events if e["n"] >= 30 and e["who"] == "b"]
    assert {e["n"] for e in after} == set(range(30, 40))
    for e in after:
        assert e["count"] == (2 if e["n"] in held else e["count"]) and e["count"] in (1, 2), e
    assert all(e["count"] == 2 for e in after if e["n"] in held), after
    assert r["start_after_close"] == 40 if name == "runnel" else r["start_after_close"] <= 40


def hold(classes: Path, bootstrap: str, prefix: str, while_held=lambda: None) -> list[int]:
    """Runs the `hold` check (10 records, one share consumer holding the
    first it got), calls `while_held`, then SIGKILLs the consumer."""
    proc = subprocess.Popen(cmd(classes, bootstrap, prefix, "hold"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        held = result(line, f"hold printed {line!r}", "hold")["held"]
        while_held()
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert held, err
    return held


@PEERS
def test_records_of_a_killed_share_consumer_are_redelivered(share_checks, peer):
    name, bootstrap = peer
    prefix = f"share-{uuid.uuid4().hex[:8]}"
    held = hold(share_checks, bootstrap, prefix)
    r = run_check(share_checks, bootstrap, prefix, "drain")
    counts = {int(k): v for k, v in r["counts"].items()}
    assert set(counts) == set(range(10))
    # Every record the killed consumer held is delivered a second time.
    assert all(counts[n] == 2 for n in held), (held, counts)
    assert set(counts.values()) <= {1, 2}, counts
    assert r["start"] == 10 if name == "runnel" else r["start"] <= 10


@PEERS
def test_kafka_share_groups_tool(share_checks, peer):
    """`kafka-share-groups` on a group with a live member, then its offset
    admin calls on a group without members, each output checked."""
    name, bootstrap = peer
    prefix = f"share-{uuid.uuid4().hex[:8]}"
    topic, group = f"{prefix}-q", f"{prefix}-g"
    b = ["--bootstrap-server", bootstrap]

    def share_groups(*args: str, ok: bool = True) -> str:
        out, err = tool(SHARE_GROUPS, *b, *args, ok=ok)
        return out + err

    def while_held():
        listed = share_groups("--list", "--state")
        assert [group, "Stable"] in rows(listed, "GROUP"), listed
        out = share_groups("--describe", "--group", group, "--members")
        [member] = [r for r in rows(out, "GROUP") if r[0] == group]
        assert (member[2:]) == ["/127.0.0.1", "share-hold", "1", f"{topic}:0"], out
        out = share_groups("--describe", "--group", group, "--state")
        [state] = [r for r in rows(out, "GROUP") if r[0] == group]
        assert state[-2:] == ["Stable", "1"], out
        out = share_groups("--describe", "--group", group)
        [offsets] = [r for r in rows(out, "GROUP") if r[0] == group]
        # Runnel shows the live start offset and lag; Kafka shows the state
        # it persisted, none until the partition's first state write.
        want = ["0", "10"] if name == "runnel" else ["-", "-"]
        assert offsets == [group, topic, "0", *want], out
        if name == "runnel":
            # Runnel's own CLI lists and describes the share group too.
            from conftest import runnel_bin
            cli = [str(runnel_bin()), "group", "-b", bootstrap]
            listed = subprocess.run([*cli, "list"], capture_output=True, text=True, timeout=30).stdout
            assert [group, "Stable", "share", "share"] in rows(listed, "GROUP"), listed
            described = subprocess.run([*cli, "describe", group], capture_output=True, text=True,
                                       timeout=30).stdout
            lines = described.splitlines()
            assert lines[0] == f"Group: {group}\tState: Stable\tProtocol: share\tAssignor: simple\tMembers: 1"
            assert lines[2:] == [f"{topic}\t0\t0\t10\t10\tshare-hold@/127.0.0.1"], described

    hold(share_checks, bootstrap, prefix, while_held)

    # Offsets of a group without members: reset (creating the group),
    # describe, delete offsets, delete the group.
    other = f"{prefix}-admin"
    reset = ["--reset-offsets", "--group", other, "--topic", topic]
    out = share_groups(*reset, "--to-offset", "4", "--dry-run")
    assert rows(out, "GROUP") == [[other, topic, "0", "4"]], out
    # By time (the share tool's --to-datetime; it has no --by-duration):
    # the first record at or after it, the log end when there is none.
    out = share_groups(*reset, "--to-datetime", "2020-01-01T00:00:00.000", "--dry-run")
    assert rows(out, "GROUP") == [[other, topic, "0", "0"]], out
    out = share_groups(*reset, "--to-datetime", "2999-01-01T00:00:00.000", "--dry-run")
    assert [r for r in rows(out, "GROUP") if r[0] == other] == [[other, topic, "0", "10"]], out
    out = share_groups(*reset, "--to-earliest", "--execute")
    assert rows(out, "GROUP") == [[other, topic, "0", "0"]], out
    assert [other, "Empty"] in rows(share_groups("--list", "--state"), "GROUP")
    out = share_groups("--describe", "--group", other)
    assert rows(out, "GROUP") == [[other, topic, "0", "0", "10"]], out
    out = share_groups("--describe", "--group", other, "--offsets", "--verbose")
    assert rows(out, "GROUP") == [[other, topic, "0", "0", "0", "10"]], out
    out = share_groups("--describe", "--group", other, "--state")
    assert f"Share group '{other}' has no active members." in out, out
    [state] = [r for r in rows(out, "GROUP") if r[0] == other]
    assert state[-2:] == ["Empty", "0"], out
    out = share_groups(*reset, "--to-latest", "--execute")
    assert rows(out, "GROUP") == [[other, topic, "0", "10"]], out
    out = share_groups("--describe", "--group", other)
    assert rows(out, "GROUP") == [[other, topic, "0", "10", "0"]], out
    out = share_groups("--delete-offsets", "--group", other, "--topic", topic)
    assert rows(out, "TOPIC") == [[topic, "Successful"]], out
    out = share_groups("--describe", "--group", other)
    assert f"Share group '{other}' has no offset information." in out, out
    out = share_groups("--delete", "--group", other)
    assert f"Deletion of requested share groups ('{other}') was successful." in out, out
    out = share_groups("--describe", "--group", other)  # exits 0 all the same
    assert f"GroupIdNotFoundException: Group {other} not found." in out, out


def rk_share_consumer(bootstrap: str, group: str, client_id: str):
    from confluent_kafka import ShareConsumer
    return ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": client_id,
                          "share.acknowledgement.mode": "explicit"})


@PEERS
def test_librdkafka_share_consumers_release_and_reject(kafka_libs, peer):
    """librdkafka's share consumer (confluent-kafka 2.16): the same release
    and reject rules as the Java check, two consumers on one partition."""
    from confluent_kafka import AcknowledgeType
    from confluent_kafka.admin import AdminClient, NewTopic
    from compat_util import ck_producer, wait_until

    name, bootstrap = peer
    prefix = f"share-rk-{uuid.uuid4().hex[:8]}"
    topic, group = f"{prefix}-q", f"{prefix}-g"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(timeout=30)
    p = ck_producer(bootstrap)
    for i in range(30):
        p.produce(topic, value=f"r{i}", partition=0)
        assert p.flush(30) == 0  # one record per batch
    # The group starts at the earliest record (the default is the log end).
    out, _ = tool(SHARE_GROUPS, "--bootstrap-server", bootstrap, "--reset-offsets", "--group", group,
                  "--topic", topic, "--to-earliest", "--execute")
    assert rows(out, "GROUP") == [[group, topic, "0", "0"]], out

    consumers = {w: rk_share_consumer(bootstrap, group, f"rk-{w}") for w in ("a", "b")}
    events: list[tuple[str, int, int, str]] = []
    accepted: set[int] = set()
    wanted = {i for i in range(30) if i % 10 != 7}
    try:
        for c in consumers.values():
            c.subscribe([topic])

        def poll_all():
            for who, c in consumers.items():
                msgs = [m for m in c.poll(0.2) if m.error() is None]
                for m in msgs:
                    n, count = int(m.value().decode()[1:]), m.delivery_count()
                    if n % 10 == 3 and count == 1:
                        c.acknowledge(m, AcknowledgeType.RELEASE)
                        action = "release"
                    elif n % 10 == 7:
                        c.acknowledge(m, AcknowledgeType.REJECT)
                        action = "reject"
                    else:
                        c.acknowledge(m, AcknowledgeType.ACCEPT)
                        accepted.add(n)
                        action = "accept"
                    events.append((who, n, count, action))
                if msgs:
                    c.commit_sync()
            return accepted == wanted

        wait_until(poll_all, timeout=60, interval=0, what="every record but the rejected ones accepted")
    finally:
        for c in consumers.values():
            c.close()
    assert_released_and_rejected([(n, count, action) for _, n, count, action in events])


def test_share_state_survives_a_broker_crash(kafka_libs, make_server):
    """Acknowledgements are written to `__share_group_state` before they are
    confirmed: SIGKILL the broker after some, and after the restart only
    the unacknowledged records are delivered, one delivery count up."""
    from confluent_kafka import AcknowledgeType
    from compat_util import ck_producer, wait_until

    server = make_server().start()
    bootstrap = server.bootstrap
    prefix = f"share-crash-{uuid.uuid4().hex[:8]}"
    topic, group = f"{prefix}-q", f"{prefix}-g"
    p = ck_producer(bootstrap)
    for i in range(10):
        p.produce(topic, value=f"r{i}", partition=0)
        assert p.flush(30) == 0
    tool(SHARE_GROUPS, "--bootstrap-server", bootstrap, "--reset-offsets", "--group", group,
         "--topic", topic, "--to-earliest", "--execute")
    c = rk_share_consumer(bootstrap, group, "rk-crash")
    c.subscribe([topic])
    got: list = []
    wait_until(lambda: got.extend(m for m in c.poll(0.2) if m.error() is None) or len(got) >= 6,
               timeout=30, interval=0, what="records acquired")
    first = sorted(int(m.value().decode()[1:]) for m in got)
    acked = first[:3]
    for m in got:
        n = int(m.value().decode()[1:])
        c.acknowledge(m, AcknowledgeType.ACCEPT if n in acked else AcknowledgeType.RELEASE)
    c.commit_sync()
    server.kill()  # SIGKILL: the consumer never closes its session

    server2 = make_server(data_dir=server.data_dir).start()
    counts: dict[int, int] = {}
    c2 = rk_share_consumer(server2.bootstrap, group, "rk-after")
    try:
        c2.subscribe([topic])

        def drain():
            msgs = [m for m in c2.poll(0.2) if m.error() is None]
            for m in msgs:
                counts[int(m.value().decode()[1:])] = m.delivery_count()
                c2.acknowledge(m, AcknowledgeType.ACCEPT)
            if msgs:
                c2.commit_sync()
            return set(counts) | set(acked) == set(range(10))
        wait_until(drain, timeout=60, interval=0, what="the rest delivered after the restart")
    finally:
        c2.close()
    # Nothing acknowledged before the crash comes back.
    assert not set(counts) & set(acked), (acked, counts)
    released = set(first) - set(acked)
    # Released before the crash: delivered once more (count 2). The others
    # were never handed to the application; librdkafka may have acquired
    # some of them already (an acquisition is not written: count 1 or 2).
    assert {n: counts[n] for n in released} == {n: 2 for n in released}, counts
    assert all(counts[n] in (1, 2) for n in set(range(10)) - set(first)), counts
    out, _ = tool(SHARE_GROUPS, "--bootstrap-server", server2.bootstrap, "--describe", "--group", group)
    assert rows(out, "GROUP") == [[group, topic, "0", "10", "0"]], out
    assert server2.stop() == 0


@PEERS
def test_a_lock_that_runs_out_redelivers(kafka_libs, peer):
    """Records a live consumer acquired and neither acknowledged nor
    released go to another consumer once their acquisition lock ran out
    (the group's `share.record.lock.duration.ms`, 15 s: Kafka's minimum)."""
    import time

    from confluent_kafka import AcknowledgeType
    from compat_util import ck_producer, wait_until
    from test_kafka_tools import CONFIGS

    name, bootstrap = peer
    prefix = f"share-lock-{uuid.uuid4().hex[:8]}"
    topic, group = f"{prefix}-q", f"{prefix}-g"
    p = ck_producer(bootstrap)
    for i in range(3):
        p.produce(topic, value=f"r{i}", partition=0)
        assert p.flush(30) == 0
    tool(CONFIGS, "--bootstrap-server", bootstrap, "--entity-type", "groups", "--entity-name", group,
         "--alter", "--add-config", "share.record.lock.duration.ms=15000,share.auto.offset.reset=earliest")
    out, _ = tool(CONFIGS, "--bootstrap-server", bootstrap, "--entity-type", "groups", "--entity-name", group,
                  "--describe")
    assert "share.record.lock.duration.ms=15000" in out and "share.auto.offset.reset=earliest" in out, out
    holder, other = (rk_share_consumer(bootstrap, group, f"rk-{w}") for w in ("holder", "other"))
    try:
        holder.subscribe([topic])
        held: list = []
        wait_until(lambda: held.extend(m for m in holder.poll(0.2) if m.error() is None) or len(held) == 3,
                   timeout=30, interval=0, what="the holder acquires all 3")
        acquired_at = time.monotonic()
        other.subscribe([topic])
        got: list = []
        wait_until(lambda: got.extend(m for m in other.poll(0.5) if m.error() is None) or len(got) == 3,
                   timeout=60, interval=0, what="the other consumer gets them after the lock")
        waited = time.monotonic() - acquired_at
        assert sorted((m.value().decode(), m.delivery_count()) for m in got) == \
            [("r0", 2), ("r1", 2), ("r2", 2)]
        assert waited >= 14, waited
        for m in got:
            other.acknowledge(m, AcknowledgeType.ACCEPT)
        other.commit_sync()
    finally:
        other.close()
        holder.close()


@PEERS
def test_a_record_released_delivery_count_limit_times_is_archived(kafka_libs, peer):
    """`share.delivery.count.limit` (5): a record released on each of its
    5 deliveries is archived; the start offset moves past it."""
    from confluent_kafka import AcknowledgeType
    from compat_util import ck_producer, wait_until

    name, bootstrap = peer
    prefix = f"share-limit-{uuid.uuid4().hex[:8]}"
    topic, group = f"{prefix}-q", f"{prefix}-g"
    p = ck_producer(bootstrap)
    for i in range(2):
        p.produce(topic, value=f"r{i}", partition=0)
        assert p.flush(30) == 0
    tool(SHARE_GROUPS, "--bootstrap-server", bootstrap, "--reset-offsets", "--group", group,
         "--topic", topic, "--to-earliest", "--execute")
    c = rk_share_consumer(bootstrap, group, "rk-limit")
    deliveries: list[tuple[str, int]] = []
    try:
        c.subscribe([topic])

        def step():
            msgs = [m for m in c.poll(0.2) if m.error() is None]
            for m in msgs:
                v = m.value().decode()
                deliveries.append((v, m.delivery_count()))
                c.acknowledge(m, AcknowledgeType.RELEASE if v == "r0" else AcknowledgeType.ACCEPT)
            if msgs:
                c.commit_sync()
            return [d for d in deliveries if d[0] == "r0"] == [("r0", n) for n in range(1, 6)] \
                and ("r1", 1) in deliveries
        wait_until(step, timeout=60, interval=0, what="r0 delivered 5 times, r1 once")
    finally:
        c.close()
    assert sorted(deliveries) == [("r0", n) for n in range(1, 6)] + [("r1", 1)]
    out, _ = tool(SHARE_GROUPS, "--bootstrap-server", bootstrap, "--describe", "--group", group)
    [row] = [r for r in rows(out, "GROUP") if r[0] == group]
    if name == "runnel":
        assert row == [group, topic, "0", "2", "0"], out
    else:
        assert row[-1] == "0", out


@PEERS
def test_read_committed_share_group_gets_committed_records_only(kafka_libs, peer):
    """`share.isolation.level=read_committed` (a group config): librdkafka's
    share consumer gets the records of committed transactions and plain
    ones, never those of an aborted transaction, and those of an open
    transaction only once it commits."""
    from confluent_kafka import AcknowledgeType, Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    from compat_util import ck_producer, wait_until

    name, bootstrap = peer
    prefix = f"share-rc-{uuid.uuid4().hex[:8]}"
    topic, group = f"{prefix}-q", f"{prefix}-g"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1)])[topic].result(timeout=30)
    tool(CONFIGS, "--bootstrap-server", bootstrap, "--entity-type", "groups", "--entity-name", group,
         "--alter", "--add-config", "share.isolation.level=read_committed,share.auto.offset.reset=earliest")
    out, _ = tool(CONFIGS, "--bootstrap-server", bootstrap, "--entity-type", "groups", "--entity-name", group,
                  "--describe")
    assert "share.isolation.level=read_committed" in out, out

    txn = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{prefix}-tx"})
    txn.init_transactions(30)

    def transaction(values: list[str], end: str | None):
        txn.begin_transaction()
        for v in values:
            txn.produce(topic, value=v, partition=0)
        txn.flush(30)
        if end == "commit":
            txn.commit_transaction(30)
        elif end == "abort":
            txn.abort_transaction(30)

    transaction(["c0", "c1", "c2"], "commit")
    transaction(["a0", "a1", "a2"], "abort")
    plain = ck_producer(bootstrap)
    plain.produce(topic, value="p0", partition=0)
    assert plain.flush(30) == 0
    transaction(["o0", "o1"], None)  # left open

    got: list[str] = []
    c = rk_share_consumer(bootstrap, group, "rk-rc")
    try:
        c.subscribe([topic])

        def poll(until: set[str]):
            msgs = [m for m in c.poll(0.2) if m.error() is None]
            for m in msgs:
                got.append(m.value().decode())
                c.acknowledge(m, AcknowledgeType.ACCEPT)
            if msgs:
                c.commit_sync()
            return set(got) >= until

        wait_until(lambda: poll({"c0", "c1", "c2", "p0"}), timeout=60, interval=0,
                   what="the committed and plain records")
        # The open transaction's records are past the last stable offset.
        assert not set(got) & {"o0", "o1"}, got
        txn.commit_transaction(30)
        wait_until(lambda: poll({"o0", "o1"}), timeout=60, interval=0, what="the records of the commit")
    finally:
        c.close()
    assert sorted(got) == ["c0", "c1", "c2", "o0", "o1", "p0"], got


@PEERS
def test_record_limit_acquires_no_more_than_asked(share_checks, peer):
    """ShareFetch v2's record-limit mode (`share.acquire.mode=record_limit`,
    KIP-1206): a consumer with `max.poll.records=5` acquires 5 records of a
    12-record batch, not the whole batch, so another consumer gets the
    other 7 at once."""
    _, bootstrap = peer
    r = run_check(share_checks, bootstrap, f"share-{uuid.uuid4().hex[:8]}", "limit")
    assert r["held"] == [0, 1, 2, 3, 4], r
    assert r["taken"] == [[n, 1] for n in range(5, 12)], r


@PEERS
def test_renewed_locks_keep_records_from_other_consumers(share_checks, peer):
    """Renew acknowledgements (KIP-1222, ShareFetch/ShareAcknowledge v2):
    a consumer that renews the locks of what it holds every 4 s keeps it
    for 25 s though the lock lasts 15 s; the other consumer gets none of
    it; then the holder accepts everything."""
    name, bootstrap = peer
    r = run_check(share_checks, bootstrap, f"share-{uuid.uuid4().hex[:8]}", "renew")
    assert r["held"] == [0, 1, 2, 3, 4], r
    assert (r["taken_by_b"], r["errors"], r["renewed"], r["max_delivery_count"]) == ([], [], 5, 1), r
    assert r["start"] == 5 if name == "runnel" else r["start"] <= 5, r
