"""kafka-python (pure-Python client, 3.x) against runnel.

Most producers set enable_idempotence=False to keep each test about one
thing; test_default_idempotent_producer covers kafka-python 3's default
(idempotence on, through InitProducerId). Consumers have group_id=None and use assign() (groups: test_groups.py).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict

import pytest
from confluent_kafka import TopicPartition as CkTopicPartition
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kerr

from compat_util import ck_consume, ck_consumer, now_ms, sample_records, wait_until

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


def kp_producer(bootstrap: str, **kw) -> KafkaProducer:
    conf = dict(
        bootstrap_servers=bootstrap,
        enable_idempotence=False,
        acks="all",
        linger_ms=5,
        request_timeout_ms=15000,
        retries=2,
    )
    conf.update(kw)
    return KafkaProducer(**conf)


def kp_consumer(bootstrap: str, **kw) -> KafkaConsumer:
    conf = dict(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        request_timeout_ms=15000,
    )
    conf.update(kw)
    return KafkaConsumer(**conf)


def kp_admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)


def kp_consume(consumer: KafkaConsumer, count: int, timeout: float = 15.0):
    """Polls until `count` records arrived; keeps each partition's order."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=300, max_records=min(500, count - len(out)))
        for tp in sorted(batch, key=lambda t: t.partition):
            out.extend(batch[tp])
    assert len(out) == count, f"consumed {len(out)} records, expected {count}"
    return out


def kp_create_topic(admin: KafkaAdminClient, name: str, partitions: int = 1, configs=None):
    admin.create_topics(
        {name: {"num_partitions": partitions, "replication_factor": 1,
                "configs": configs or {}}},
        wait_for_metadata=True,
    )


def test_produce_consume_keys_headers_timestamps(bootstrap, topic):
    admin = kp_admin(bootstrap)
    kp_create_topic(admin, topic, partitions=1)
    admin.close()
    base_ts = now_ms() - 3_600_000
    # kafka-python refuses a record whose key and value are both None.
    records = [r for r in sample_records(60, base_ts, null_headers=False)
               if r[0] is not None or r[1] is not None]

    p = kp_producer(bootstrap)
    futures = [
        p.send(topic, key=k, value=v, headers=h, timestamp_ms=ts, partition=0)
        for k, v, h, ts in records
    ]
    metas = [f.get(timeout=20) for f in futures]
    p.close()
    assert [m.offset for m in metas] == list(range(len(records)))
    assert all(m.partition == 0 for m in metas)

    c = kp_consumer(bootstrap)
    tp0 = TopicPartition(topic, 0)
    c.assign([tp0])
    c.seek(tp0, 0)
    got = kp_consume(c, len(records))
    c.close()
    for i, (r, (k, v, h, ts)) in enumerate(zip(got, records)):
        assert r.offset == i
        assert r.key == k, f"record {i}"
        assert r.value == v, f"record {i}"
        assert r.timestamp == ts, f"record {i}"
        assert r.timestamp_type == 0, f"record {i}: CreateTime expected"
        assert list(r.headers) == h, f"record {i}"


def test_default_idempotent_producer(bootstrap, topic):
    admin = kp_admin(bootstrap)
    kp_create_topic(admin, topic, partitions=2)
    admin.close()
    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)  # idempotent by default
    futures = [p.send(topic, key=b"k%d" % (i % 2), value=b"v%d" % i) for i in range(200)]
    metas = [f.get(timeout=20) for f in futures]
    p.close()
    per_partition = defaultdict(list)
    for m in metas:
        per_partition[m.partition].append(m.offset)
    for offsets in per_partition.values():
        assert offsets == list(range(len(offsets)))
    c = kp_consumer(bootstrap)
    tps = [TopicPartition(topic, i) for i in range(2)]
    c.assign(tps)
    c.seek_to_beginning()
    got = kp_consume(c, 200)
    c.close()
    assert sorted(r.value for r in got) == sorted(b"v%d" % i for i in range(200))


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c or "none")
def test_compression_roundtrip_and_cross_client(bootstrap, topic, codec):
    admin = kp_admin(bootstrap)
    kp_create_topic(admin, topic, partitions=1)
    admin.close()
    base_ts = now_ms()
    n = 300
    values = [(f"kp-{codec}-{i:05d}|" * 10).encode() if i % 3 else os.urandom(50)
              for i in range(n)]
    p = kp_producer(bootstrap, compression_type=codec, linger_ms=50, batch_size=64 * 1024)
    futures = [p.send(topic, key=str(i).encode(), value=values[i],
                      headers=[("codec", (codec or "none").encode())],
                      timestamp_ms=base_ts + i, partition=0)
               for i in range(n)]
    metas = [f.get(timeout=20) for f in futures]
    p.close()
    assert sorted(m.offset for m in metas) == list(range(n))

    # kafka-python reads it back...
    c = kp_consumer(bootstrap)
    tp0 = TopicPartition(topic, 0)
    c.assign([tp0])
    c.seek_to_beginning(tp0)
    got = kp_consume(c, n)
    c.close()
    assert [r.offset for r in got] == list(range(n))
    assert [r.value for r in got] == values
    assert [r.key for r in got] == [str(i).encode() for i in range(n)]
    assert [r.timestamp for r in got] == [base_ts + i for i in range(n)]

    # ...and so does librdkafka, from the same stored batches.
    cc = ck_consumer(bootstrap)
    cc.assign([CkTopicPartition(topic, 0, 0)])
    msgs = ck_consume(cc, n)
    cc.close()
    assert [m.value() for m in msgs] == values
    assert all(dict(m.headers())["codec"] == (codec or "none").encode() for m in msgs)


def test_many_partitions_keyed(bootstrap, topic):
    partitions = 16
    admin = kp_admin(bootstrap)
    kp_create_topic(admin, topic, partitions=partitions)
    admin.close()
    p = kp_producer(bootstrap)
    keys = [f"acct-{k}" for k in range(48)]
    per_key = 20
    sent = []  # (key, future)
    for seq in range(per_key):
        for k in keys:
            sent.append((k, p.send(topic, key=k.encode(), value=f"{k}:{seq}".encode())))
    key_part = {}
    for k, fut in sent:
        key_part.setdefault(k, set()).add(fut.get(timeout=30).partition)
    p.close()
    assert all(len(s) == 1 for s in key_part.values())
    assert len({next(iter(s)) for s in key_part.values()}) > 4

    c = kp_consumer(bootstrap)
    tps = [TopicPartition(topic, i) for i in range(partitions)]
    c.assign(tps)
    c.seek_to_beginning()
    total = len(keys) * per_key
    got = kp_consume(c, total, timeout=30)
    ends = c.end_offsets(tps, timeout_ms=10000)
    c.close()
    assert sum(ends.values()) == total

    per_partition = defaultdict(list)
    for r in got:
        per_partition[r.partition].append(r)
    for part, rs in per_partition.items():
        assert [r.offset for r in rs] == list(range(len(rs))), f"partition {part}"
        assert ends[TopicPartition(topic, part)] == len(rs)
        last = {}
        for r in rs:
            k, seq = r.value.decode().split(":")
            assert r.key.decode() == k and key_part[k] == {part}
            assert int(seq) > last.get(k, -1), f"key {k} out of order in partition {part}"
            last[k] = int(seq)


def test_seek_offsets_for_times_and_watermarks(bootstrap, topic):
    admin = kp_admin(bootstrap)
    kp_create_topic(admin, topic, partitions=1)
    admin.close()
    tp0 = TopicPartition(topic, 0)
    c = kp_consumer(bootstrap)
    assert c.beginning_offsets([tp0], timeout_ms=10000) == {tp0: 0}
    assert c.end_offsets([tp0], timeout_ms=10000) == {tp0: 0}

    base_ts = now_ms() - 900_000
    n = 80
    p = kp_producer(bootstrap, linger_ms=0)
    for chunk in range(0, n, 8):  # several batches
        fs = [p.send(topic, value=f"t{i}".encode(), timestamp_ms=base_ts + i * 500, partition=0)
              for i in range(chunk, chunk + 8)]
        for f in fs:
            f.get(timeout=20)
    p.close()

    assert c.beginning_offsets([tp0], timeout_ms=10000) == {tp0: 0}
    assert c.end_offsets([tp0], timeout_ms=10000) == {tp0: n}

    res = c.offsets_for_times({tp0: base_ts + 20 * 500}, timeout_ms=10000)[tp0]
    assert (res.offset, res.timestamp) == (20, base_ts + 10_000)
    res = c.offsets_for_times({tp0: base_ts + 33 * 500 + 1}, timeout_ms=10000)[tp0]
    assert (res.offset, res.timestamp) == (34, base_ts + 34 * 500)
    res = c.offsets_for_times({tp0: base_ts + n * 500 + 60_000}, timeout_ms=10000)[tp0]
    assert res is None  # nothing at or after that time

    c.assign([tp0])
    c.seek(tp0, 34)
    got = kp_consume(c, n - 34)
    assert [r.value for r in got] == [f"t{i}".encode() for i in range(34, n)]
    assert c.position(tp0) == n
    c.seek(tp0, 5)
    got = kp_consume(c, 3)
    assert [r.offset for r in got] == [5, 6, 7]
    c.close()


def test_admin_create_list_describe_delete(bootstrap, unique_name):
    a, b = unique_name("a"), unique_name("b")
    admin = kp_admin(bootstrap)
    res = admin.create_topics(
        {a: {"num_partitions": 4, "replication_factor": 1,
             "configs": {"retention.ms": "86400000", "cleanup.policy": "delete"}},
         b: {"num_partitions": 1, "replication_factor": 1}},
        wait_for_metadata=True,
    )
    assert {t["name"]: t["error_code"] for t in res["topics"]} == {a: 0, b: 0}

    listed = admin.list_topics()
    assert a in listed and b in listed
    desc = {t["name"]: t for t in admin.describe_topics([a, b])}
    assert len(desc[a]["partitions"]) == 4
    assert len(desc[b]["partitions"]) == 1
    assert all(p["leader_id"] >= 0 for p in desc[a]["partitions"])

    with pytest.raises(kerr.TopicAlreadyExistsError):
        admin.create_topics({a: {"num_partitions": 1, "replication_factor": 1}})

    res = admin.delete_topics([a, b])
    assert {t["name"]: t["error_code"] for t in res["topics"]} == {a: 0, b: 0}
    wait_until(lambda: a not in admin.list_topics() and b not in admin.list_topics(),
               what="topics deleted")
    with pytest.raises(kerr.UnknownTopicOrPartitionError):
        admin.delete_topics([a])
    admin.close()


def test_auto_create_on_produce(bootstrap, topic):
    admin = kp_admin(bootstrap)
    assert topic not in admin.list_topics()
    p = kp_producer(bootstrap)
    meta = p.send(topic, key=b"ak", value=b"auto").get(timeout=20)
    p.close()
    assert meta.offset == 0
    assert topic in admin.list_topics()
    admin.close()

    c = kp_consumer(bootstrap)
    tp = TopicPartition(topic, meta.partition)
    c.assign([tp])
    c.seek(tp, 0)
    (r,) = kp_consume(c, 1)
    c.close()
    assert (r.key, r.value) == (b"ak", b"auto")


def test_message_size_limit(bootstrap, topic):
    limit = 100_000
    admin = kp_admin(bootstrap)
    kp_create_topic(admin, topic, partitions=1, configs={"max.message.bytes": str(limit)})
    admin.close()
    # max_request_size (client side) stays at 1 MiB, above the topic limit.
    p = kp_producer(bootstrap, retries=0, linger_ms=0)
    near = os.urandom(limit - 1_000)
    assert p.send(topic, value=near, partition=0).get(timeout=20).offset == 0
    over = os.urandom(limit + 50_000)
    with pytest.raises(kerr.MessageSizeTooLargeError):
        p.send(topic, value=over, partition=0).get(timeout=20)
    p.close()

    # Fetch limits far below the record's size: the broker must still return
    # the first batch whole (KIP-74), or the consumer could never progress.
    c = kp_consumer(bootstrap, max_partition_fetch_bytes=1024, fetch_max_bytes=1024)
    tp0 = TopicPartition(topic, 0)
    assert c.end_offsets([tp0], timeout_ms=10000) == {tp0: 1}
    c.assign([tp0])
    c.seek(tp0, 0)
    (r,) = kp_consume(c, 1)
    c.close()
    assert r.value == near
