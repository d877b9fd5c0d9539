"""A hostile load on its own `runnel serve` process: memory stays bounded.

5,000 idle connections, 200 frames that announce 100 MiB and stop after a
few bytes, and a burst of consumers fetching as much as Kafka lets them
(55 MiB per fetch) from 50 MiB of data, all at once. The server's resident
memory, sampled while it lasts, must stay under RSS_BOUND_MIB, and it must
go on answering throughout. The load stops by itself: connections are
closed, the fetches end at the end of the data.

The server runs in a process of its own so that its RSS is its own (the
broker's limit tests in `runnel-broker/tests/limits.rs` share a process
with other tests and check the limits, not memory).
"""

from __future__ import annotations

import resource
import socket
import struct
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from compat_util import ck_admin, ck_create_topic

IDLE_CONNECTIONS = 5_000
HALF_SENT_FRAMES = 200
FRAME_ANNOUNCED = 100 << 20
FETCHERS = 4
PARTITIONS = 5
DATA_MIB = 50
# What the server may hold resident under this load (its data dir's page
# cache is not counted in RSS): about 50 MiB at rest; 5,000 idle
# connections take about 85 MiB more (8 KiB read and write buffers and a
# task each; they took 2.2 GiB with 256 KiB buffers); a half-sent frame
# holds what its client sent, not what it announced; and a maximal fetch
# response exists twice while it is encoded (its records as read, and the
# frame): 4 x 2 x 55 MiB at worst. Measured: 488 MiB at most.
RSS_BOUND_MIB = 700
# Connections per source address, under the per-address limit (1,000).
PER_ADDRESS = 900


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def connect_from(addr: str, port: int, source: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.connect((addr, port))
    return s


@pytest.fixture
def enough_files():
    need = IDLE_CONNECTIONS + HALF_SENT_FRAMES + 2_000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.fail(f"this test needs {need} open files; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_hostile_load_keeps_the_server_within_its_memory_bound(enough_files, make_server, topic):
    # The server inherits the raised open-files limit.
    server = make_server().start()
    pid, port = server.proc.pid, server.port
    bootstrap = server.bootstrap
    ck_create_topic(ck_admin(bootstrap), topic, partitions=PARTITIONS)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "none",
                  "batch.size": 1 << 20})
    value = b"x" * 10_000
    for i in range(DATA_MIB * 1024 * 1024 // len(value)):
        while True:
            try:
                p.produce(topic, value=value, partition=i % PARTITIONS)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0
    del p  # no reconnect attempts once the server stops
    baseline = rss_mib(pid)

    peak = [baseline]
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            peak[0] = max(peak[0], rss_mib(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    sockets: list[socket.socket] = []
    try:
        for i in range(IDLE_CONNECTIONS):
            sockets.append(connect_from("127.0.0.1", port, f"127.0.1.{1 + i // PER_ADDRESS}"))
        for i in range(HALF_SENT_FRAMES):
            s = connect_from("127.0.0.1", port, f"127.0.2.{1 + i // PER_ADDRESS}")
            s.sendall(struct.pack(">i", FRAME_ANNOUNCED) + b"\0" * 1024)
            sockets.append(s)

        def fetch_everything(n: int, counts: list):
            c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-fetcher-{n}",
                          "enable.partition.eof": True, "fetch.max.bytes": 55 << 20,
                          "max.partition.fetch.bytes": 55 << 20, "receive.message.max.bytes": 100 << 20})
            c.assign([TopicPartition(topic, q, 0) for q in range(PARTITIONS)])
            ends, got = set(), 0
            deadline = time.monotonic() + 120
            while len(ends) < PARTITIONS and time.monotonic() < deadline:
                for m in c.consume(1000, 0.5):
                    if m.error() is None:
                        got += len(m.value())
                    elif m.error().code() == KafkaError._PARTITION_EOF:
                        ends.add(m.partition())
            c.close()
            counts[n] = got

        counts = [0] * FETCHERS
        fetchers = [threading.Thread(target=fetch_everything, args=(n, counts)) for n in range(FETCHERS)]
        for t in fetchers:
            t.start()
        # The server answers while all of it goes on.
        admin = AdminClient({"bootstrap.servers": bootstrap})
        assert topic in admin.list_topics(timeout=10).topics
        for t in fetchers:
            t.join(timeout=180)
        total = DATA_MIB * 1024 * 1024 // len(value) * len(value)
        assert counts == [total] * FETCHERS, counts
        assert topic in admin.list_topics(timeout=10).topics
    finally:
        for s in sockets:
            s.close()
        sampling.set()
        sampler.join()
    print(f"RSS: {baseline:.0f} MiB before, {peak[0]:.0f} MiB at most under the load")
    assert peak[0] < RSS_BOUND_MIB, f"RSS reached {peak[0]:.0f} MiB (baseline {baseline:.0f} MiB)"
    # Everything closed, the server still serves.
    assert topic in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    assert server.stop() == 0
