"""Exactly-once consume-transform-produce with confluent-kafka (librdkafka):
the loop process (eos_loop.py) is SIGKILLed at random points (every other
kill inside a transaction whose records are written) and restarted;
a read_committed reader of the output must see each input's result exactly
once, and never a record of an aborted transaction."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from compat_util import ck_admin, ck_create_topic, ck_flush, ck_producer

LOOP = Path(__file__).with_name("eos_loop.py")


def read_output(bootstrap: str, topic: str, partitions: int, isolation: str, idle: float = 3.0):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "eos-verifier",
        "enable.auto.commit": False,
        "isolation.level": isolation,
    })
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out = []
    last = time.time()
    while time.time() - last < idle:
        m = c.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, m.error()
        out.append(m.value())
        last = time.time()
    c.close()
    return out


def wait_for_open_transactions(proc: subprocess.Popen, count: int) -> None:
    """Return when the loop has announced its `count`-th open transaction."""
    seen = 0
    while seen < count:
        line = proc.stdout.readline()
        assert line, "the loop exited: " + proc.stderr.read().decode()
        if line.strip() == b"open":
            seen += 1


def test_exactly_once_across_sigkills(bootstrap, unique_name):
    src, dst, group = unique_name("in"), unique_name("out"), unique_name("g")
    admin = ck_admin(bootstrap)
    ck_create_topic(admin, src, partitions=3)
    ck_create_topic(admin, dst, partitions=3)
    n = 3000
    p = ck_producer(bootstrap)
    for i in range(n):
        p.produce(src, key=b"k%d" % (i % 50), value=b"v%05d" % i)
    ck_flush(p)

    rng = random.Random(int(os.environ.get("EOS_SEED", time.time())))
    args = [sys.executable, str(LOOP), bootstrap, src, dst, group, unique_name("txn")]
    kills = 0
    deadline = time.time() + 100
    expected = {b"v%05d-processed" % i for i in range(n)}
    while True:
        assert time.time() < deadline, "the loop did not finish in time"
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if kills < 4:
            assert proc.stdout.readline().strip() == b"ready", proc.stderr.read().decode()
            if kills % 2 == 0:
                # Anywhere: joining, between transactions or inside one.
                time.sleep(rng.uniform(0.3, 1.2))
            else:
                # Inside a transaction whose records are already written,
                # so at least these kills leave aborted records behind.
                wait_for_open_transactions(proc, rng.randint(1, 8))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        # Last run: let it finish the input.
        try:
            while time.time() < deadline:
                got = read_output(bootstrap, dst, 3, "read_committed", idle=1.0)
                if len(set(got)) >= n:
                    break
                assert proc.poll() is None, proc.stderr.read().decode()
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        break

    committed = read_output(bootstrap, dst, 3, "read_committed")
    assert len(committed) == len(set(committed)), "a result is visible twice"
    assert set(committed) == expected
    everything = read_output(bootstrap, dst, 3, "read_uncommitted")
    # The kills aborted transactions: their records are in the log but were
    # never visible above.
    assert len(everything) > len(committed), "no kill landed inside a transaction"
    print(f"{kills} kills, {len(everything) - len(committed)} aborted records hidden")
