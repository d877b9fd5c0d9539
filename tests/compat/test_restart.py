"""Data, topics and configs survive a broker restart (a private broker on its
own data dir, stopped with SIGTERM and started again) and acknowledged
records survive a crash (SIGKILL) under --flush-messages 1."""

from __future__ import annotations

from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, TopicPartition
from confluent_kafka.admin import ConfigResource
from kafka import KafkaProducer

from compat_util import (
    DeliveryCollector,
    ck_admin,
    ck_consume,
    ck_consumer,
    ck_create_topic,
    ck_flush,
    ck_producer,
    now_ms,
    sample_records,
    wait_until,
)


def _consume_all(bootstrap, topic, partitions, total):
    c = ck_consumer(bootstrap)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    msgs = ck_consume(c, total)
    marks = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
             for p in range(partitions)]
    c.close()
    return msgs, marks


def _snapshot(msgs):
    return sorted(
        (m.partition(), m.offset(), m.key(), m.value(), tuple(m.headers() or []), m.timestamp())
        for m in msgs
    )


def test_data_survives_restart(make_server, unique_name):
    server = make_server().start()
    topic, doomed = unique_name("kept"), unique_name("deleted")
    admin = ck_admin(server.bootstrap)
    ck_create_topic(admin, topic, partitions=4, config={"retention.ms": "7200000"})
    ck_create_topic(admin, doomed, partitions=1)

    base_ts = now_ms() - 60_000
    records = sample_records(80, base_ts)
    p = ck_producer(server.bootstrap, **{"compression.type": "lz4"})
    dr = DeliveryCollector()
    for i, (k, v, h, ts) in enumerate(records):
        p.produce(topic, key=k, value=v, headers=h, timestamp=ts, partition=i % 4, on_delivery=dr)
    ck_flush(p)
    dr.ok()
    kp = KafkaProducer(bootstrap_servers=server.bootstrap, enable_idempotence=False,
                       compression_type="zstd", acks="all")
    for i in range(20):
        kp.send(topic, key=b"kp", value=f"kafka-python-{i}".encode(), partition=3,
                timestamp_ms=base_ts + 100_000 + i).get(timeout=20)
    kp.close()
    total = len(records) + 20

    futs = admin.delete_records([TopicPartition(topic, 0, 3)], request_timeout=10)
    assert next(iter(futs.values())).result(timeout=10).low_watermark == 3
    futs = admin.delete_topics([doomed], request_timeout=10)
    futs[doomed].result(timeout=10)
    total -= 3

    before, marks_before = _consume_all(server.bootstrap, topic, 4, total)
    assert marks_before[0] == (3, 20)
    assert server.stop() == 0, "broker did not exit 0 on SIGTERM"

    # Same data dir, new process (and new port).
    server2 = make_server(data_dir=server.data_dir).start()
    admin2 = ck_admin(server2.bootstrap)
    listed = wait_until(lambda: admin2.list_topics(timeout=10).topics, what="topic list")
    assert topic in listed and len(listed[topic].partitions) == 4
    assert doomed not in listed, "a deleted topic came back after restart"
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    cfg = admin2.describe_configs([res], request_timeout=10)[res].result(timeout=10)
    assert cfg["retention.ms"].value == "7200000"

    after, marks_after = _consume_all(server2.bootstrap, topic, 4, total)
    assert marks_after == marks_before
    assert _snapshot(after) == _snapshot(before)
    assert all(m.timestamp()[0] == TIMESTAMP_CREATE_TIME for m in after)

    # Appends continue at the old high watermark.
    p2 = ck_producer(server2.bootstrap)
    dr2 = DeliveryCollector()
    p2.produce(topic, value=b"after-restart", partition=0, on_delivery=dr2)
    ck_flush(p2)
    (m,) = dr2.ok()
    assert m.offset() == marks_before[0][1]
    assert server2.stop() == 0, "restarted broker did not exit 0 on SIGTERM"


def test_acknowledged_records_survive_a_crash(make_server, unique_name):
    """With --flush-messages 1 every acknowledged (acks=all) record is on disk:
    SIGKILL the broker right after the acks and find them all after restart."""
    server = make_server().start()
    topic = unique_name("crash")
    admin = ck_admin(server.bootstrap)
    ck_create_topic(admin, topic, partitions=3)
    p = ck_producer(server.bootstrap, **{"compression.type": "gzip"})
    dr = DeliveryCollector()
    n = 600
    for i in range(n):
        p.produce(topic, key=str(i).encode(), value=f"crash-{i}".encode(), partition=i % 3,
                  on_delivery=dr)
        if i % 100 == 99:
            p.poll(0)
    ck_flush(p)
    acked = {(m.partition(), m.offset()): m.value() for m in dr.ok()}
    assert len(acked) == n
    server.kill()

    server2 = make_server(data_dir=server.data_dir).start()
    c = ck_consumer(server2.bootstrap)
    c.assign([TopicPartition(topic, i, OFFSET_BEGINNING) for i in range(3)])
    msgs = ck_consume(c, n)
    c.close()
    assert {(m.partition(), m.offset()): m.value() for m in msgs} == acked
    assert server2.stop() == 0
