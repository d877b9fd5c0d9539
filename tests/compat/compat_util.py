"""Small helpers shared by the compatibility tests (no fixtures here)."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

# Most consumers here read with assign() and explicit offsets and never
# commit, to test one thing at a time; test_groups.py covers groups.
# librdkafka insists on a group.id even for assign(); it is never joined.
UNUSED_GROUP = "runnel-compat-unused-group"


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_until(pred, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def sample_records(n: int, base_ts: int, null_headers: bool = True):
    """Varied records: null/empty/binary keys and values, duplicate and null headers.

    kafka-python refuses to send a header whose value is None (it reads them
    fine): pass null_headers=False for its producer.
    """
    out = []
    for i in range(n):
        key = None if i % 7 == 3 else (b"" if i % 7 == 4 else f"key-{i}".encode())
        if i % 11 == 5:
            value = None  # tombstone
        elif i % 11 == 6:
            value = b""
        else:
            value = f"value-{i}-".encode() + bytes(range(i % 256))
        headers = [("seq", str(i).encode())]
        if i % 3 == 0:
            headers += [("dup", b"a"), ("dup", b"b"), ("bin", bytes([0, 255, 1, 254]))]
        if i % 5 == 0 and null_headers:
            headers.append(("nullhdr", None))
        if i % 4 == 0:
            headers.append(("emptyhdr", b""))
        out.append((key, value, headers, base_ts + i * 10))
    return out


# ----------------------------------------------------------------------------
# confluent-kafka (librdkafka)
# ----------------------------------------------------------------------------


def ck_producer(bootstrap: str, **conf) -> Producer:
    base = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 20000,
    }
    base.update(conf)
    return Producer(base)


def ck_consumer(bootstrap: str, **conf) -> Consumer:
    base = {
        "bootstrap.servers": bootstrap,
        "group.id": UNUSED_GROUP,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
        "auto.offset.reset": "error",
        "fetch.wait.max.ms": 100,
    }
    base.update(conf)
    return Consumer(base)


def ck_admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


class DeliveryCollector:
    """on_delivery callback that records (err, msg) pairs."""

    def __init__(self):
        self.reports = []

    def __call__(self, err, msg):
        self.reports.append((err, msg))

    def ok(self):
        errors = [(e, m.topic(), m.partition()) for e, m in self.reports if e is not None]
        assert not errors, f"delivery errors: {errors}"
        return [m for _, m in self.reports]


def ck_flush(producer: Producer, timeout: float = 20.0):
    remaining = producer.flush(timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout}s"


def ck_consume(consumer: Consumer, count: int, timeout: float = 15.0):
    """Polls until `count` messages arrived; fails on any consumer error."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        batch = consumer.consume(num_messages=min(500, count - len(out)), timeout=0.5)
        for m in batch:
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(f"consumer error: {m.error()}")
            out.append(m)
    assert len(out) == count, f"consumed {len(out)} messages, expected {count}"
    return out


def ck_assert_nothing_more(consumer: Consumer, wait: float = 1.0):
    """No further data message arrives within `wait` seconds."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        m = consumer.poll(0.2)
        if m is None:
            continue
        if m.error() is not None and m.error().code() == KafkaError._PARTITION_EOF:
            continue
        raise AssertionError(
            f"unexpected extra message/error: err={m.error()} offset={m.offset()} value={m.value()!r}"
        )


def ck_create_topic(admin: AdminClient, name: str, partitions: int = 1, config=None,
                    timeout: float = 15.0):
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=10,
        request_timeout=timeout,
    )
    futures[name].result(timeout=timeout)
    # Wait until the topic is visible with all its partitions.
    wait_until(
        lambda: _partition_count(admin, name) == partitions,
        timeout=timeout,
        what=f"metadata of {name} with {partitions} partitions",
    )


def _partition_count(admin: AdminClient, name: str) -> int:
    md = admin.list_topics(topic=name, timeout=5)
    t = md.topics.get(name)
    if t is None or t.error is not None:
        return -1
    return len(t.partitions)


def tp(topic: str, partition: int = 0, offset: int = -1001) -> TopicPartition:
    return TopicPartition(topic, partition, offset)


def ksql_statements(base_url: str, sql: str, props: dict | None = None) -> list:
    """POSTs statements to a ksqlDB-compatible `/ksql` endpoint and returns its
    entities; any HTTP error fails with the statement and the answer."""
    import json
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"{base_url}/ksql", data=json.dumps({"ksql": sql, "streamsProperties": props or {}}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{sql!r}: HTTP {e.code}: {e.read().decode()}") from None
