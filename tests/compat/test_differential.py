"""Runnel's broker against Apache Kafka, observation for observation.

Each probe drives a broker with confluent-kafka (librdkafka) the way a user
would and returns what the client can observe: error codes of bad requests,
offsets, timestamps, group states, transaction outcomes, config
descriptions. It runs once on Runnel's session broker and once on the
session's 3-node Kafka cluster, and the two observations must be equal. A
difference is a bug in Runnel unless the probe names it as deliberate.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from compat_util import now_ms, wait_until

pytestmark = pytest.mark.kafka


@pytest.fixture
def peers(request, bootstrap, kafka):
    """Bootstrap servers and replication factor of each broker under test."""
    assert not kafka.stopped, "the session's Kafka cluster was stopped before this test"
    return {"runnel": (bootstrap, 1), "kafka": (kafka.bootstrap, 3)}


def differential(peers, topic: str, probe):
    """The probe's observation on each broker (topics named per broker)."""
    return {name: probe(bootstrap, rf, f"{topic}-{name}") for name, (bootstrap, rf) in peers.items()}


def create(bootstrap: str, rf: int, name: str, partitions: int = 1, config=None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, rf, config=config or {})])[name].result(timeout=30)
    wait_until(lambda: name in admin.list_topics(timeout=5).topics, timeout=15, what=f"{name} in metadata")


def code_of(future) -> str:
    """The error code name a future of the admin client ends with ('OK' if none)."""
    try:
        future.result(timeout=30)
        return "OK"
    except KafkaException as e:
        return e.args[0].name()


def produce_all(bootstrap: str, topic: str, records, **conf) -> list[str]:
    """Delivery outcome (error code name or 'OK') of each record, in order."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 50,
                  "message.timeout.ms": 20000, "retries": 0, **conf})
    outcomes: list[str | None] = [None] * len(records)

    def report(i):
        def cb(err, _msg):
            outcomes[i] = "OK" if err is None else err.name()
        return cb

    for i, (key, value, ts) in enumerate(records):
        kwargs = {"timestamp": ts} if ts else {}
        p.produce(topic, key=key, value=value, partition=0, on_delivery=report(i), **kwargs)
    assert p.flush(30) == 0
    return outcomes


def consume_all(bootstrap: str, topic: str, isolation: str = "read_committed") -> list:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "differential-reader",
                  "enable.auto.commit": False, "isolation.level": isolation,
                  "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        out = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    return out
                raise AssertionError(m.error())
            out.append(m)
        raise AssertionError(f"{topic}: no end of partition")
    finally:
        c.close()


def test_bad_admin_requests_get_kafkas_error_codes(peers, topic):
    def probe(bootstrap, rf, name):
        create(bootstrap, rf, name)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        asks = {
            "exists": NewTopic(name, 1, rf),
            "zero partitions": NewTopic(f"{name}-zero", 0, rf),
            "bad config": NewTopic(f"{name}-bad", 1, rf, config={"cleanup.policy": "bogus"}),
            "unknown config": NewTopic(f"{name}-unknown", 1, rf, config={"no.such.config": "1"}),
            "bad name": NewTopic(f"{name}/slash", 1, rf),
        }
        out = {what: code_of(admin.create_topics([t])[t.topic]) for what, t in asks.items()}
        out["delete missing"] = code_of(admin.delete_topics([f"{name}-missing"])[f"{name}-missing"])
        return out

    seen = differential(peers, topic, probe)
    assert seen["runnel"] == seen["kafka"]


def test_record_errors_of_a_produce(peers, topic):
    def probe(bootstrap, rf, name):
        create(bootstrap, rf, f"{name}-small", config={"max.message.bytes": "1024"})
        create(bootstrap, rf, f"{name}-compact", config={"cleanup.policy": "compact"})
        return {
            "oversize": produce_all(bootstrap, f"{name}-small", [(b"k", b"x" * 4000, 0)]),
            "fits": produce_all(bootstrap, f"{name}-small", [(b"k", b"x" * 100, 0)]),
            # One batch: keyed, keyless, keyed (KIP-467's record errors).
            "keyless on compacted": produce_all(bootstrap, f"{name}-compact",
                                                [(b"a", b"1", 0), (None, b"2", 0), (b"c", b"3", 0)]),
        }

    seen = differential(peers, topic, probe)
    assert seen["runnel"] == seen["kafka"]


def test_timestamps_out_of_range_are_refused_as_kafka_4_does(peers, topic):
    """Kafka 4 refuses CreateTime records more than message.timestamp.after.max.ms
    (1 hour) ahead, or more than message.timestamp.before.max.ms behind when set;
    one bad record fails its whole batch (KIP-467); LogAppendTime topics take anything."""
    def probe(bootstrap, rf, name):
        now = now_ms()
        create(bootstrap, rf, name)
        create(bootstrap, rf, f"{name}-recent", config={"message.timestamp.before.max.ms": "3600000"})
        create(bootstrap, rf, f"{name}-append", config={"message.timestamp.type": "LogAppendTime"})
        hour = 3_600_000
        return {
            "past and present": produce_all(bootstrap, name, [(b"a", b"1", now - 30 * 24 * hour),
                                                                (b"b", b"2", now)]),
            "two hours ahead": produce_all(bootstrap, name, [(b"c", b"3", now + 2 * hour)]),
            "one bad in a batch": produce_all(bootstrap, name, [(b"d", b"4", now),
                                                                  (b"e", b"5", now + 2 * hour),
                                                                  (b"f", b"6", now)]),
            "a day old, bound of an hour": produce_all(bootstrap, f"{name}-recent",
                                                       [(b"g", b"7", now - 24 * hour)]),
            "ahead on LogAppendTime": produce_all(bootstrap, f"{name}-append",
                                                  [(b"h", b"8", now + 2 * hour)]),
            "kept": [m.value() for m in consume_all(bootstrap, name)],
        }

    seen = differential(peers, topic, probe)
    assert seen["runnel"] == seen["kafka"]
    assert seen["runnel"]["two hours ahead"] == ["INVALID_TIMESTAMP"], seen


def test_demo_generate_writes_events_kafka_4_takes(peers, topic):
    """`runnel demo unstable-apps generate` with its default days: on Kafka 4
    it failed with INVALID_TIMESTAMP when it stamped events up to the end of
    today (more than message.timestamp.after.max.ms ahead); it writes only
    past events now, on either broker."""
    from conftest import runnel_bin
    import subprocess

    def probe(bootstrap, rf, name):
        started = now_ms()
        gen = subprocess.run(
            [str(runnel_bin()), "demo", "unstable-apps", "generate", "-b", bootstrap, "--events", "2000",
             "--days", "1", "--partitions", "1", "--topic-prefix", f"{name}-"],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert gen.returncode == 0, gen.stderr[-3000:]
        opened = consume_all(bootstrap, f"{name}-apps_opened", isolation="read_uncommitted")
        stamps = [m.timestamp()[1] for m in opened]
        return {"opened": len(opened), "none ahead": max(stamps) <= started}

    seen = differential(peers, topic, probe)
    assert seen["runnel"] == seen["kafka"] == {"opened": 2000, "none ahead": True}, seen


def test_offsets_and_timestamps(peers, topic):
    def probe(bootstrap, rf, name):
        base = now_ms() - 60_000
        create(bootstrap, rf, name)
        create(bootstrap, rf, f"{name}-append", config={"message.timestamp.type": "LogAppendTime"})
        produce_all(bootstrap, name, [(b"k", b"v", base + d) for d in (0, 10, 20)])
        before = now_ms()
        produce_all(bootstrap, f"{name}-append", [(b"k", b"v", base)])
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "differential-times"})
        try:
            def at(ts):
                return c.offsets_for_times([TopicPartition(name, 0, ts)], timeout=10)[0].offset
            times = {"before all": at(base - 5), "between": at(base + 5), "last": at(base + 20),
                     "after all": at(base + 30)}
            marks = c.get_watermark_offsets(TopicPartition(name, 0), timeout=10)
        finally:
            c.close()
        created = [m.timestamp() for m in consume_all(bootstrap, name)]
        appended = consume_all(bootstrap, f"{name}-append")[0].timestamp()
        return {
            "offsets for times": times,
            "watermarks": marks,
            "create times": [(t, ts - base) for t, ts in created],
            "log append time type": appended[0],
            "log append time is the broker's": appended[1] >= before - 1000,
        }

    seen = differential(peers, topic, probe)
    assert seen["runnel"] == seen["kafka"]


def test_transactions_take_offsets_and_hide_aborted_records(peers, topic):
    def probe(bootstrap, rf, name):
        create(bootstrap, rf, name)
        p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{name}-txn"})
        p.init_transactions(30)
        p.begin_transaction()
        p.produce(name, key=b"k", value=b"committed-1", partition=0)
        p.produce(name, key=b"k", value=b"committed-2", partition=0)
        p.commit_transaction(30)
        p.begin_transaction()
        p.produce(name, key=b"k", value=b"aborted", partition=0)
        # Sent before the abort: in the log, but never read_committed.
        assert p.flush(30) == 0
        p.abort_transaction(30)
        p.begin_transaction()
        p.produce(name, key=b"k", value=b"committed-3", partition=0)
        p.commit_transaction(30)
        # (Record offsets show where the markers went; the end offset right
        # after a commit is not compared: Kafka writes markers
        # asynchronously and replicates them before its high watermark
        # moves.)
        return {
            "read_committed": [(m.offset(), m.value()) for m in consume_all(bootstrap, name)],
            "read_uncommitted": [(m.offset(), m.value())
                                 for m in consume_all(bootstrap, name, "read_uncommitted")],
        }

    seen = differential(peers, topic, probe)
    assert seen["runnel"] == seen["kafka"]


def test_group_states_as_members_come_and_go(peers, topic):
    def probe(bootstrap, rf, name):
        create(bootstrap, rf, name, partitions=2)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        group = f"{name}-group"

        def state():
            d = admin.describe_consumer_groups([group])[group].result(timeout=30)
            return (d.state.name, d.partition_assignor, len(d.members))

        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                      "partition.assignment.strategy": "range", "enable.auto.commit": False})
        c.subscribe([name])
        wait_until(lambda: c.poll(0.2) is None and len(c.assignment()) == 2, timeout=30,
                   what="the assignment")
        stable = state()
        c.commit(offsets=[TopicPartition(name, 0, 0), TopicPartition(name, 1, 0)], asynchronous=False)
        c.close()
        empty = wait_until(lambda: (s := state())[0] == "EMPTY" and s, timeout=30, what="an empty group")
        return {"with a member": stable, "after it left": empty,
                "delete": code_of(admin.delete_consumer_groups([group])[group])}

    seen = differential(peers, topic, probe)
    assert seen["runnel"] == seen["kafka"]


def test_topic_config_descriptions(peers, topic):
    keys = ("cleanup.policy", "retention.ms", "compression.type", "message.timestamp.type",
            "max.message.bytes", "message.timestamp.before.max.ms", "message.timestamp.after.max.ms")

    def probe(bootstrap, rf, name):
        create(bootstrap, rf, name, config={"retention.ms": "3600000"})
        admin = AdminClient({"bootstrap.servers": bootstrap})
        res = ConfigResource(ResourceType.TOPIC, name)
        described = admin.describe_configs([res])[res].result(timeout=30)
        return {k: (described[k].value, described[k].source, described[k].is_read_only,
                    described[k].is_sensitive)
                for k in keys if k in described}

    seen = differential(peers, topic, probe)
    assert seen["runnel"] == seen["kafka"]
