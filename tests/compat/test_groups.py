"""Consumer groups across client libraries: a confluent-kafka (librdkafka)
consumer and a kafka-python consumer share one group.

Both use the classic protocol with the `range` assignor (the only one both
ship by default under the same name). Each commits synchronously after
every record; together they must see every record exactly once.
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer
from kafka import KafkaConsumer, KafkaProducer

from compat_util import wait_until


def _produce(bootstrap: str, topic: str, n: int) -> None:
    p = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    for i in range(n):
        p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 4)
    p.flush(30)
    p.close()


def test_librdkafka_and_kafka_python_share_a_group(bootstrap):
    topic, group, n = "groups-interop", "interop-group", 400
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    admin.close()

    seen: list[tuple[str, int, int]] = []
    lock = threading.Lock()
    stop = threading.Event()
    owners: dict[str, set[int]] = {"ck": set(), "kp": set()}
    errors: list[str] = []

    def run_ck():
        c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "range",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
            }
        )
        c.subscribe([topic])
        try:
            while not stop.is_set():
                m = c.poll(0.1)
                if m is None or m.error():
                    continue
                with lock:
                    seen.append(("ck", m.partition(), m.offset()))
                    owners["ck"].add(m.partition())
                try:
                    c.commit(message=m, asynchronous=False)
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(f"ck commit: {e}")
        finally:
            c.close()

    def run_kp():
        c = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        )
        try:
            while not stop.is_set():
                for tp, msgs in c.poll(timeout_ms=100, max_records=1).items():
                    for m in msgs:
                        with lock:
                            seen.append(("kp", m.partition, m.offset))
                            owners["kp"].add(m.partition)
                        try:
                            from kafka import OffsetAndMetadata

                            c.commit({tp: OffsetAndMetadata(m.offset + 1, None, -1)})
                        except Exception as e:  # noqa: BLE001 - reported below
                            errors.append(f"kp commit: {e}")
        finally:
            c.close()

    threads = [threading.Thread(target=run_ck), threading.Thread(target=run_kp)]
    for t in threads:
        t.start()
    # Let both join before producing so the partitions are shared.
    time.sleep(3)
    _produce(bootstrap, topic, n)
    try:
        wait_until(lambda: len(seen) >= n, timeout=60, what=f"{n} records")
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    positions = [(p, o) for _, p, o in seen]
    assert len(positions) == len(set(positions)), "a record was consumed twice"
    assert len(set(positions)) == n
    assert owners["ck"] and owners["kp"], owners


def test_kafkajs_consumer_group(bootstrap):
    """KafkaJS's consumer.run in a group (js/groups.test.js)."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    import pytest

    js_dir = Path(__file__).parent / "js"
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed")
    if not (js_dir / "node_modules" / "kafkajs").is_dir():
        pytest.fail(f"kafkajs is not installed: run `npm ci` in {js_dir}")
    proc = subprocess.run(
        [node, "--test", "--test-reporter=tap", "groups.test.js"],
        cwd=js_dir,
        env={**os.environ, "RUNNEL_BOOTSTRAP": bootstrap},
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
