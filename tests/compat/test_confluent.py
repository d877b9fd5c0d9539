"""confluent-kafka (librdkafka 2.x) against runnel.

Consumers use assign() with explicit offsets only (groups: test_groups.py).
"""

from __future__ import annotations

import os
from collections import defaultdict

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    TIMESTAMP_CREATE_TIME,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

from compat_util import (
    DeliveryCollector,
    ck_admin,
    ck_assert_nothing_more,
    ck_consume,
    ck_consumer,
    ck_create_topic,
    ck_flush,
    ck_producer,
    now_ms,
    sample_records,
    wait_until,
)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def test_produce_consume_keys_headers_timestamps(bootstrap, topic):
    admin = ck_admin(bootstrap)
    ck_create_topic(admin, topic, partitions=1)
    base_ts = now_ms() - 3_600_000  # an hour ago: explicit, but well inside retention
    records = sample_records(60, base_ts)

    p = ck_producer(bootstrap)
    dr = DeliveryCollector()
    for key, value, headers, ts in records:
        p.produce(topic, value=value, key=key, headers=headers, timestamp=ts, partition=0,
                  on_delivery=dr)
    ck_flush(p)
    delivered = dr.ok()
    assert sorted(m.offset() for m in delivered) == list(range(len(records)))

    c = ck_consumer(bootstrap)
    c.assign([TopicPartition(topic, 0, 0)])
    msgs = ck_consume(c, len(records))
    ck_assert_nothing_more(c, wait=0.5)
    c.close()

    for i, (m, (key, value, headers, ts)) in enumerate(zip(msgs, records)):
        assert m.offset() == i
        assert m.partition() == 0
        assert m.key() == key, f"record {i}"
        assert m.value() == value, f"record {i}"
        assert m.timestamp() == (TIMESTAMP_CREATE_TIME, ts), f"record {i}"
        assert (m.headers() or []) == headers, f"record {i}"


@pytest.mark.parametrize("codec", CODECS)
def test_compression_roundtrip(bootstrap, topic, codec):
    admin = ck_admin(bootstrap)
    ck_create_topic(admin, topic, partitions=2)
    base_ts = now_ms()
    p = ck_producer(bootstrap, **{"compression.type": codec, "linger.ms": 50,
                                  "batch.num.messages": 1000})
    dr = DeliveryCollector()
    n = 400
    for i in range(n):
        # Compressible and incompressible values, so codecs really work.
        value = (f"{codec}-record-{i:05d}-" * 8).encode() if i % 2 else os.urandom(64)
        p.produce(topic, key=f"k{i % 13}".encode(), value=value, partition=i % 2,
                  headers=[("i", str(i).encode())], timestamp=base_ts + i, on_delivery=dr)
    p.poll(0)
    ck_flush(p)
    assert len(dr.ok()) == n

    c = ck_consumer(bootstrap)
    c.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
    msgs = ck_consume(c, n)
    c.close()
    by_i = {}
    for m in msgs:
        i = int(dict(m.headers())["i"])
        by_i[i] = m
    assert sorted(by_i) == list(range(n))
    for part in (0, 1):
        offsets = [m.offset() for m in msgs if m.partition() == part]
        assert offsets == list(range(n // 2)), f"partition {part} offsets not contiguous/in order"
    for i, m in by_i.items():
        assert m.partition() == i % 2
        assert m.key() == f"k{i % 13}".encode()
        assert m.timestamp() == (TIMESTAMP_CREATE_TIME, base_ts + i)
        if i % 2:
            assert m.value() == (f"{codec}-record-{i:05d}-" * 8).encode()
        else:
            assert len(m.value()) == 64

    # Start in the middle of a (compressed) batch: the records before the
    # requested offset must not be delivered.
    c = ck_consumer(bootstrap)
    c.assign([TopicPartition(topic, 1, 77)])
    msgs = ck_consume(c, 5)
    c.close()
    assert [m.offset() for m in msgs] == [77, 78, 79, 80, 81]
    assert [int(dict(m.headers())["i"]) for m in msgs] == [155, 157, 159, 161, 163]


def test_many_partitions_keyed(bootstrap, topic):
    partitions = 16
    admin = ck_admin(bootstrap)
    ck_create_topic(admin, topic, partitions=partitions)
    p = ck_producer(bootstrap)
    dr = DeliveryCollector()
    keys = [f"user-{k}" for k in range(40)]
    per_key = 25
    for seq in range(per_key):
        for k in keys:
            p.produce(topic, key=k.encode(), value=f"{k}:{seq}".encode(), on_delivery=dr)
        p.poll(0)
    ck_flush(p)
    delivered = dr.ok()
    total = len(keys) * per_key
    assert len(delivered) == total
    key_partition = {}
    for m in delivered:
        key_partition.setdefault(m.key(), set()).add(m.partition())
    assert all(len(s) == 1 for s in key_partition.values()), "a key was spread over partitions"
    used = {next(iter(s)) for s in key_partition.values()}
    assert len(used) > 4, f"40 keys landed in only {len(used)} of 16 partitions"

    c = ck_consumer(bootstrap)
    c.assign([TopicPartition(topic, i, 0) for i in range(partitions)])
    msgs = ck_consume(c, total, timeout=30)
    ck_assert_nothing_more(c, wait=0.5)
    c.close()

    per_partition = defaultdict(list)
    for m in msgs:
        per_partition[m.partition()].append(m)
    for part, ms in per_partition.items():
        assert [m.offset() for m in ms] == list(range(len(ms))), f"partition {part} order"
        last_seq = {}
        for m in ms:
            k, seq = m.value().decode().split(":")
            assert m.key().decode() == k
            assert key_partition[m.key()] == {part}
            assert int(seq) > last_seq.get(k, -1), f"key {k} out of order in partition {part}"
            last_seq[k] = int(seq)
    assert sum(len(v) for v in per_partition.values()) == total

    # Watermarks of every partition add up to the total.
    c2 = ck_consumer(bootstrap)
    highs = [c2.get_watermark_offsets(TopicPartition(topic, i), timeout=10, cached=False)
             for i in range(partitions)]
    c2.close()
    assert all(lo == 0 for lo, _ in highs)
    assert sum(hi for _, hi in highs) == total
    assert {i for i, (_, hi) in enumerate(highs) if hi > 0} == used


def test_seek_to_offset_and_timestamp(bootstrap, topic):
    admin = ck_admin(bootstrap)
    ck_create_topic(admin, topic, partitions=1)
    base_ts = now_ms() - 600_000
    n = 100
    p = ck_producer(bootstrap, **{"linger.ms": 0})
    for i in range(n):
        p.produce(topic, value=f"v{i}".encode(), partition=0, timestamp=base_ts + i * 1000)
        if i % 10 == 9:
            ck_flush(p)  # several batches, so lookups cross batch boundaries
    ck_flush(p)

    c = ck_consumer(bootstrap)

    def lookup(ts):
        # One partition per call: librdkafka keys the answers by partition.
        (r,) = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
        assert r.error is None, r.error
        return r.offset

    # Timestamp lookup: exact hit, between two records, before the first, after the last.
    got = [lookup(base_ts + 42_000), lookup(base_ts + 57_500), lookup(base_ts - 10_000),
           lookup(base_ts + n * 1000 + 5_000)]
    assert got[0] == 42
    assert got[1] == 58
    assert got[2] == 0
    assert got[3] == OFFSET_END  # -1: no record at or after that time

    # Start consuming at an offset given by the timestamp lookup.
    c.assign([TopicPartition(topic, 0, got[1])])
    msgs = ck_consume(c, n - 58)
    assert [m.offset() for m in msgs] == list(range(58, n))
    assert msgs[0].value() == b"v58"
    assert msgs[0].timestamp()[1] == base_ts + 58_000

    # seek() backwards to an explicit offset.
    c.seek(TopicPartition(topic, 0, 13))
    msgs = ck_consume(c, 5)
    assert [m.value() for m in msgs] == [f"v{i}".encode() for i in range(13, 18)]
    c.close()


def test_watermarks_and_list_offsets(bootstrap, topic):
    admin = ck_admin(bootstrap)
    ck_create_topic(admin, topic, partitions=1)
    c = ck_consumer(bootstrap)
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (0, 0)

    base_ts = now_ms() - 120_000
    p = ck_producer(bootstrap)
    for i in range(25):
        p.produce(topic, value=f"w{i}".encode(), partition=0, timestamp=base_ts + i * 100)
    ck_flush(p)
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (0, 25)

    tp0 = TopicPartition(topic, 0)
    specs = {
        "earliest": OffsetSpec.earliest(),
        "latest": OffsetSpec.latest(),
        "ts": OffsetSpec.for_timestamp(base_ts + 1_050),
    }
    results = {}
    for name, spec in specs.items():
        fut = admin.list_offsets({tp0: spec}, request_timeout=10)
        results[name] = next(iter(fut.values())).result(timeout=10)
    assert results["earliest"].offset == 0
    assert results["latest"].offset == 25
    assert results["ts"].offset == 11
    assert results["ts"].timestamp == base_ts + 1_100

    # DeleteRecords moves the log start; the earliest offset follows.
    fut = admin.delete_records([TopicPartition(topic, 0, 10)], operation_timeout=10)
    deleted = fut[TopicPartition(topic, 0, 10)].result(timeout=10)
    assert deleted.low_watermark == 10
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (10, 25)
    fut = admin.list_offsets({tp0: OffsetSpec.earliest()}, request_timeout=10)
    assert next(iter(fut.values())).result(timeout=10).offset == 10

    # Reading from the new beginning yields the 11th record first.
    c.assign([TopicPartition(topic, 0, 10)])
    msgs = ck_consume(c, 15)
    assert msgs[0].value() == b"w10" and msgs[-1].value() == b"w24"
    c.close()


def _describe(admin, topic):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    futs = admin.describe_configs([res], request_timeout=10)
    return futs[res].result(timeout=10)


def test_admin_topic_lifecycle(bootstrap, topic):
    admin = ck_admin(bootstrap)
    futs = admin.create_topics(
        [NewTopic(topic, num_partitions=3, replication_factor=1,
                  config={"retention.ms": "3600000", "cleanup.policy": "delete",
                          "max.message.bytes": "200000"})],
        request_timeout=15,
    )
    assert futs[topic].result(timeout=15) is None

    md = wait_until(lambda: admin.list_topics(timeout=10).topics.get(topic), what="topic listed")
    assert md.error is None
    assert sorted(md.partitions) == [0, 1, 2]
    for pm in md.partitions.values():
        assert pm.leader >= 0 and pm.replicas == [pm.leader] and pm.isrs == [pm.leader]

    # Creating it again fails with TOPIC_ALREADY_EXISTS.
    futs = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)],
                               request_timeout=10)
    with pytest.raises(KafkaException) as ei:
        futs[topic].result(timeout=10)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    # DescribeConfigs: the overrides are dynamic topic configs, the rest defaults.
    cfg = _describe(admin, topic)
    assert cfg["retention.ms"].value == "3600000"
    assert cfg["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not cfg["retention.ms"].is_default
    assert cfg["max.message.bytes"].value == "200000"
    assert cfg["cleanup.policy"].value == "delete"
    assert "segment.bytes" in cfg
    assert cfg["segment.bytes"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    # IncrementalAlterConfigs: SET one key, DELETE (revert) another.
    res = ConfigResource(
        ConfigResource.Type.TOPIC, topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE),
        ],
    )
    futs = admin.incremental_alter_configs([res], request_timeout=10)
    assert futs[res].result(timeout=10) is None
    cfg = _describe(admin, topic)
    assert cfg["retention.ms"].value == "7200000"
    assert cfg["max.message.bytes"].value == "1048588"
    assert cfg["max.message.bytes"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    # An unknown config key is refused.
    bad = ConfigResource(
        ConfigResource.Type.TOPIC, topic,
        incremental_configs=[ConfigEntry("no.such.config", "1",
                                         incremental_operation=AlterConfigOpType.SET)],
    )
    futs = admin.incremental_alter_configs([bad], request_timeout=10)
    with pytest.raises(KafkaException):
        futs[bad].result(timeout=10)

    # CreatePartitions 3 -> 6, then produce to the new last partition.
    futs = admin.create_partitions([NewPartitions(topic, 6)], request_timeout=10)
    assert futs[topic].result(timeout=10) is None
    wait_until(lambda: len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 6,
               what="6 partitions")
    p = ck_producer(bootstrap, **{"topic.metadata.refresh.interval.ms": 500})
    dr = DeliveryCollector()
    for i in range(3):
        p.produce(topic, value=f"p5-{i}".encode(), partition=5, on_delivery=dr)
    ck_flush(p)
    assert [m.offset() for m in dr.ok()] == [0, 1, 2]

    # DeleteRecords on the new partition.
    futs = admin.delete_records([TopicPartition(topic, 5, 2)], request_timeout=10)
    assert next(iter(futs.values())).result(timeout=10).low_watermark == 2

    # DeleteTopics: gone from the listing.
    futs = admin.delete_topics([topic], operation_timeout=10, request_timeout=15)
    assert futs[topic].result(timeout=15) is None
    wait_until(lambda: topic not in admin.list_topics(timeout=10).topics, what="topic deleted")


def test_admin_describe_cluster_and_topics(bootstrap, topic):
    from confluent_kafka import TopicCollection

    admin = ck_admin(bootstrap)
    ck_create_topic(admin, topic, partitions=2)
    cluster = admin.describe_cluster(request_timeout=10).result(timeout=10)
    assert len(cluster.nodes) == 1
    node = cluster.nodes[0]
    host, port = bootstrap.rsplit(":", 1)
    assert (node.host, node.port) == (host, int(port))
    assert cluster.controller is not None and cluster.controller.id == node.id
    assert cluster.cluster_id

    futs = admin.describe_topics(TopicCollection([topic]), request_timeout=10)
    desc = futs[topic].result(timeout=10)
    assert desc.name == topic
    assert [p.id for p in desc.partitions] == [0, 1]
    assert all(p.leader.id == node.id for p in desc.partitions)


def test_auto_create_on_produce(bootstrap, topic):
    admin = ck_admin(bootstrap)
    assert topic not in admin.list_topics(timeout=10).topics
    p = ck_producer(bootstrap)
    dr = DeliveryCollector()
    p.produce(topic, key=b"k", value=b"auto-created", on_delivery=dr)
    ck_flush(p)
    (m,) = dr.ok()
    assert m.offset() == 0
    md = wait_until(lambda: admin.list_topics(timeout=10).topics.get(topic), what="auto topic")
    assert len(md.partitions) >= 1

    c = ck_consumer(bootstrap)
    c.assign([TopicPartition(topic, m.partition(), 0)])
    (got,) = ck_consume(c, 1)
    c.close()
    assert (got.key(), got.value()) == (b"k", b"auto-created")


def test_message_size_limit(bootstrap, topic):
    limit = 100_000
    admin = ck_admin(bootstrap)
    ck_create_topic(admin, topic, partitions=1, config={"max.message.bytes": str(limit)})
    # Client limits are far above the topic's, so the broker is what refuses.
    p = ck_producer(bootstrap, **{"compression.type": "none", "linger.ms": 0,
                                  "message.max.bytes": 2_000_000, "retries": 0})

    near = os.urandom(limit - 1_000)  # batch overhead is ~70 bytes
    dr = DeliveryCollector()
    p.produce(topic, value=near, partition=0, on_delivery=dr)
    ck_flush(p)
    (m,) = dr.ok()
    assert m.offset() == 0

    over = os.urandom(limit + 50_000)
    dr2 = DeliveryCollector()
    p.produce(topic, value=over, partition=0, on_delivery=dr2)
    ck_flush(p)
    (err, _), = dr2.reports
    assert err is not None, "record over max.message.bytes was accepted"
    assert err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err

    # The log holds only the accepted record, byte for byte.
    c = ck_consumer(bootstrap, **{"fetch.max.bytes": 4_000_000})
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (0, 1)
    c.assign([TopicPartition(topic, 0, 0)])
    (got,) = ck_consume(c, 1)
    c.close()
    assert got.value() == near


def test_log_append_time_topic(bootstrap, topic):
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

    admin = ck_admin(bootstrap)
    ck_create_topic(admin, topic, partitions=1,
                    config={"message.timestamp.type": "LogAppendTime"})
    p = ck_producer(bootstrap)
    before = now_ms()
    for i in range(5):
        # The client's timestamp is a year off: the broker must replace it.
        p.produce(topic, value=f"lat{i}".encode(), partition=0,
                  timestamp=before - 365 * 24 * 3600 * 1000)
    ck_flush(p)
    after = now_ms()
    c = ck_consumer(bootstrap)
    c.assign([TopicPartition(topic, 0, 0)])
    msgs = ck_consume(c, 5)
    c.close()
    for m in msgs:
        ts_type, ts = m.timestamp()
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME
        assert before - 1_000 <= ts <= after + 1_000, (before, ts, after)
    assert [m.value() for m in msgs] == [f"lat{i}".encode() for i in range(5)]


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_producer_acks(bootstrap, topic, acks):
    admin = ck_admin(bootstrap)
    ck_create_topic(admin, topic, partitions=1)
    p = ck_producer(bootstrap, acks=acks)
    dr = DeliveryCollector()
    for i in range(30):
        p.produce(topic, value=f"a{i}".encode(), partition=0, on_delivery=dr)
    ck_flush(p)
    assert len(dr.ok()) == 30
    # acks=0 gets no response at all; the records must be there all the same,
    # and the connection must stay usable for the next request.
    c = ck_consumer(bootstrap)
    wait_until(lambda: c.get_watermark_offsets(TopicPartition(topic, 0), timeout=5,
                                               cached=False) == (0, 30),
               what="30 records stored")
    c.assign([TopicPartition(topic, 0, 0)])
    msgs = ck_consume(c, 30)
    c.close()
    assert [m.value() for m in msgs] == [f"a{i}".encode() for i in range(30)]


def _create_error(admin, new_topic) -> int:
    futs = admin.create_topics([new_topic], request_timeout=10)
    with pytest.raises(KafkaException) as ei:
        futs[new_topic.topic].result(timeout=10)
    return ei.value.args[0].code()


def test_admin_error_codes(bootstrap, unique_name, topic):
    admin = ck_admin(bootstrap)
    assert _create_error(admin, NewTopic(unique_name("badval"), 1, 1,
                                         config={"retention.ms": "not-a-number"})) \
        == KafkaError.INVALID_CONFIG
    assert _create_error(admin, NewTopic(unique_name("badkey"), 1, 1,
                                         config={"no.such.topic.config": "1"})) \
        == KafkaError.INVALID_CONFIG
    assert _create_error(admin, NewTopic(unique_name("rf"), 1, replication_factor=3)) \
        == KafkaError.INVALID_REPLICATION_FACTOR
    assert _create_error(admin, NewTopic("bad/topic:name", 1, 1)) == KafkaError.TOPIC_EXCEPTION
    assert _create_error(admin, NewTopic("x" * 250, 1, 1)) == KafkaError.TOPIC_EXCEPTION
    # Names that would be directory traversal in a data dir.
    assert _create_error(admin, NewTopic("..", 1, 1)) == KafkaError.TOPIC_EXCEPTION
    assert _create_error(admin, NewTopic(".", 1, 1)) == KafkaError.TOPIC_EXCEPTION
    # None of the refused topics exists afterwards.
    names = admin.list_topics(timeout=10).topics
    assert not [n for n in names if n.startswith("test_admin_error_codes-")]

    # Partitions can only grow.
    ck_create_topic(admin, topic, partitions=3)
    futs = admin.create_partitions([NewPartitions(topic, 2)], request_timeout=10)
    with pytest.raises(KafkaException) as ei:
        futs[topic].result(timeout=10)
    assert ei.value.args[0].code() == KafkaError.INVALID_PARTITIONS
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 3

    # Unknown topics.
    missing = unique_name("missing")
    res = ConfigResource(ConfigResource.Type.TOPIC, missing)
    futs = admin.describe_configs([res], request_timeout=10)
    with pytest.raises(KafkaException) as ei:
        futs[res].result(timeout=10)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    futs = admin.delete_topics([missing], request_timeout=10)
    with pytest.raises(KafkaException) as ei:
        futs[missing].result(timeout=10)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_broker_configs(bootstrap):
    admin = ck_admin(bootstrap)
    node_id = admin.describe_cluster(request_timeout=10).result(timeout=10).nodes[0].id
    res = ConfigResource(ConfigResource.Type.BROKER, str(node_id))
    cfg = admin.describe_configs([res], request_timeout=10)[res].result(timeout=10)
    assert cfg["broker.id"].value == str(node_id)
    assert cfg["advertised.listeners"].value == f"PLAINTEXT://{bootstrap}"
    assert cfg["auto.create.topics.enable"].value == "true"
    # The suite starts the broker with --flush-messages 1.
    assert cfg["flush.messages"].value == "1"


def test_pipelined_produce_and_fetch(bootstrap, topic):
    """Many small produce requests in flight on one connection (librdkafka
    pipelines them): all acknowledged in order, nothing lost or duplicated."""
    partitions = 4
    n = 20_000
    admin = ck_admin(bootstrap)
    ck_create_topic(admin, topic, partitions=partitions)
    p = ck_producer(bootstrap, **{"batch.num.messages": 50, "linger.ms": 1,
                                  "max.in.flight.requests.per.connection": 100,
                                  "queue.buffering.max.messages": 100_000})
    dr = DeliveryCollector()
    for i in range(n):
        p.produce(topic, value=i.to_bytes(4, "big"), partition=i % partitions, on_delivery=dr)
        if i % 1000 == 0:
            p.poll(0)
    ck_flush(p, timeout=60)
    delivered = dr.ok()
    assert len(delivered) == n
    for part in range(partitions):
        offs = sorted(m.offset() for m in delivered if m.partition() == part)
        assert offs == list(range(n // partitions)), f"partition {part}: offsets not dense"

    c = ck_consumer(bootstrap, **{"max.partition.fetch.bytes": 16_384})
    c.assign([TopicPartition(topic, i, 0) for i in range(partitions)])
    msgs = ck_consume(c, n, timeout=60)
    c.close()
    seen = defaultdict(list)
    for m in msgs:
        seen[m.partition()].append(int.from_bytes(m.value(), "big"))
    for part in range(partitions):
        assert seen[part] == list(range(part, n, partitions)), f"partition {part} order"


def test_tail_consumer_gets_new_records_promptly(bootstrap, topic):
    """A consumer waiting at the end of a partition (long-poll Fetch) is
    neither failed nor stalled: a new record arrives within a few seconds
    (fetch.wait.max.ms is 500 ms), not after a request timeout."""
    import time

    admin = ck_admin(bootstrap)
    ck_create_topic(admin, topic, partitions=1)
    c = ck_consumer(bootstrap, **{"fetch.wait.max.ms": 500})
    c.assign([TopicPartition(topic, 0, 0)])
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:  # several empty long polls
        m = c.poll(0.3)
        assert m is None or (m.error() is not None
                             and m.error().code() == KafkaError._PARTITION_EOF), m
    p = ck_producer(bootstrap, **{"linger.ms": 0})
    sent = time.monotonic()
    p.produce(topic, value=b"wake-up", partition=0)
    ck_flush(p)
    (m,) = ck_consume(c, 1, timeout=5)
    latency = time.monotonic() - sent
    c.close()
    assert m.value() == b"wake-up"
    assert latency < 3.0, f"record took {latency:.2f}s to reach a waiting consumer"


def test_recreated_topic_starts_empty(bootstrap, topic):
    """Deleting a topic deletes its data: a new topic of the same name starts
    at offset 0 with none of the old records (both by CreateTopics and by
    auto-creation)."""
    admin = ck_admin(bootstrap)
    for round_ in range(3):
        if round_ < 2:
            ck_create_topic(admin, topic, partitions=2)
        # round 2: auto-created by the produce below
        p = ck_producer(bootstrap)
        dr = DeliveryCollector()
        for i in range(5):
            p.produce(topic, value=f"round{round_}-{i}".encode(), partition=0, on_delivery=dr)
        ck_flush(p)
        assert [m.offset() for m in dr.ok()] == [0, 1, 2, 3, 4], f"round {round_}"
        c = ck_consumer(bootstrap)
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10,
                                       cached=False) == (0, 5)
        c.assign([TopicPartition(topic, 0, 0)])
        msgs = ck_consume(c, 5)
        ck_assert_nothing_more(c, wait=0.3)
        c.close()
        assert [m.value() for m in msgs] == [f"round{round_}-{i}".encode() for i in range(5)]
        futs = admin.delete_topics([topic], request_timeout=10)
        futs[topic].result(timeout=10)
        wait_until(lambda: topic not in admin.list_topics(timeout=10).topics,
                   what="topic deleted")


@pytest.mark.parametrize("topic_codec", ["gzip", "zstd", "uncompressed", "producer"])
def test_topic_compression_type(bootstrap, topic, topic_codec):
    """Whatever the topic's compression.type (the broker may recompress),
    records produced with another codec come back intact."""
    admin = ck_admin(bootstrap)
    ck_create_topic(admin, topic, partitions=1, config={"compression.type": topic_codec})
    base_ts = now_ms() - 5_000
    p = ck_producer(bootstrap, **{"compression.type": "lz4", "linger.ms": 20})
    dr = DeliveryCollector()
    for i in range(200):
        p.produce(topic, key=f"k{i}".encode(), value=(f"tc-{i}-" * 30).encode(), partition=0,
                  headers=[("i", str(i).encode())], timestamp=base_ts + i, on_delivery=dr)
    ck_flush(p)
    assert sorted(m.offset() for m in dr.ok()) == list(range(200))
    c = ck_consumer(bootstrap)
    c.assign([TopicPartition(topic, 0, 0)])
    msgs = ck_consume(c, 200)
    c.close()
    assert [m.offset() for m in msgs] == list(range(200))
    assert [m.key() for m in msgs] == [f"k{i}".encode() for i in range(200)]
    assert [m.value() for m in msgs] == [(f"tc-{i}-" * 30).encode() for i in range(200)]
    assert [m.headers() for m in msgs] == [[("i", str(i).encode())] for i in range(200)]
    assert [m.timestamp()[1] for m in msgs] == [base_ts + i for i in range(200)]


def test_many_small_segments(bootstrap, topic):
    """A tiny segment.bytes rolls a new segment every few batches: reads,
    timestamp lookups, seeks and DeleteRecords all cross segment boundaries."""
    admin = ck_admin(bootstrap)
    ck_create_topic(admin, topic, partitions=1, config={"segment.bytes": "4096"})
    base_ts = now_ms() - 100_000
    n = 400
    p = ck_producer(bootstrap, **{"linger.ms": 0})
    for start in range(0, n, 10):  # 40 batches of ~1.2 KB
        for i in range(start, start + 10):
            p.produce(topic, value=f"seg-{i:04d}-".encode() * 8, partition=0,
                      timestamp=base_ts + i * 100)
        ck_flush(p)

    c = ck_consumer(bootstrap)
    tp0 = TopicPartition(topic, 0)
    assert c.get_watermark_offsets(tp0, timeout=10, cached=False) == (0, n)
    c.assign([TopicPartition(topic, 0, 0)])
    msgs = ck_consume(c, n)
    assert [m.offset() for m in msgs] == list(range(n))
    assert all(m.value() == f"seg-{m.offset():04d}-".encode() * 8 for m in msgs)

    for target in (5, 123, 250, 399):
        (r,) = c.offsets_for_times([TopicPartition(topic, 0, base_ts + target * 100 - 50)],
                                   timeout=10)
        assert r.offset == target
    for start in (37, 201, 398):
        c.seek(TopicPartition(topic, 0, start))
        got = ck_consume(c, n - start)
        assert got[0].offset() == start and got[-1].offset() == n - 1

    fut = admin.delete_records([TopicPartition(topic, 0, 257)], request_timeout=10)
    assert next(iter(fut.values())).result(timeout=10).low_watermark == 257
    assert c.get_watermark_offsets(tp0, timeout=10, cached=False) == (257, n)
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = ck_consume(c, n - 257)
    c.close()
    assert [m.offset() for m in got] == list(range(257, n))
