"""Kafka Streams (kafka-streams of the fixture's version, exactly_once_v2)
on Runnel's broker, checked against runnel-streams on the same input.

The talk's slide-8 topology runs twice on one private Runnel broker: as
runnel-streams (`runnel demo unstable-apps run --exactly-once`) and as a
Kafka Streams application (`java/UnstableApps.java`, compiled at test time
into the jar cache), each with its own application id and output topics.
`runnel demo unstable-apps` names its topics itself, hence the private
broker. Each application runs until its group's committed offsets reach
the end of both input topics, and is then stopped. The three output
topics of each, read `read_committed` as tables (latest value per key,
a tombstone removes its key), must be what the input says, byte for
byte: the counts per app and day, and their join filtered by the crash
ratio; and the two applications' tables must be equal. This test found
a runnel-streams race: a task stopped waiting for an input partition whose
first fetch took longer than max_task_idle (500 ms), processed the other
input's whole partition, and the join missed the windows that expired
meanwhile (5 of 21 rows, in about half the runs). Tasks now wait for a
partition with data or with a lag not known yet, as Kafka Streams does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import kafka_cluster
from compat_util import ck_admin, ck_create_topic
from conftest import RunnelServer, runnel_bin, tail
from slide8 import (DAY_MS, DAYS, EVENTS, GRACE_SECS, INPUTS, OUTPUTS, PARTITIONS, SEED, THRESHOLD,
                    end_offsets, expected_tables, input_records, read_table, run_until_caught_up,
                    table_diff)

pytestmark = pytest.mark.kafka

JAVA_PREFIX = "java_"


@pytest.fixture(scope="module")
def slide8(unstable_apps_classes, tmp_path_factory):
    """Both applications run once on one private broker: every table they wrote, and the expected ones."""
    base = tmp_path_factory.mktemp("slide8")
    server = RunnelServer(runnel_bin(), base / "data", base / "runnel.log").start()
    try:
        yield run_both(server.bootstrap, base, unstable_apps_classes)
    finally:
        code = server.stop()
        assert code == 0, f"runnel serve exited with {code}:\n{tail(server.log_path)}"


def run_both(bootstrap: str, tmp_path: Path, unstable_apps_classes: Path) -> dict:
    now = int(time.time() * 1000)
    # Whole days ending with yesterday: the same input on every run of a day.
    start = now - now % DAY_MS - DAYS * DAY_MS
    gen = subprocess.run(
        [str(runnel_bin()), "demo", "unstable-apps", "generate", "-b", bootstrap,
         "--events", str(EVENTS), "--days", str(DAYS), "--seed", str(SEED),
         "--partitions", str(PARTITIONS), "--start-ms", str(start)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert gen.returncode == 0, gen.stderr
    admin = ck_admin(bootstrap)
    for t in OUTPUTS:
        ck_create_topic(admin, JAVA_PREFIX + t, partitions=PARTITIONS)
    ends = end_offsets(bootstrap)
    assert sum(ends.values()) > EVENTS

    env = dict(os.environ, RUNNEL_LOG="info", NO_COLOR="1")
    timings = {}

    # runnel-streams first, then Kafka Streams: one application at a time
    # on the 2 cores, so that neither one's timing depends on the other's.
    runnel_log = tmp_path / "runnel-streams.log"
    t0 = time.monotonic()
    with open(runnel_log, "wb") as log:
        proc = subprocess.Popen(
            [str(runnel_bin()), "demo", "unstable-apps", "run", "-b", bootstrap, "--exactly-once",
             "--application-id", "runnel-slide8", "--threshold", str(THRESHOLD),
             "--grace-secs", str(GRACE_SECS)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        try:
            run_until_caught_up(proc, runnel_log, bootstrap, "runnel-slide8", ends)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, f"runnel-streams exited with {proc.returncode}:\n{tail(runnel_log)}"
    timings["runnel-streams"] = time.monotonic() - t0

    java_log = tmp_path / "kafka-streams.log"
    t0 = time.monotonic()
    with open(java_log, "wb") as log:
        proc = subprocess.Popen(
            kafka_cluster.java("UnstableApps", bootstrap, "kafka-streams-slide8", str(tmp_path / "state"),
                               JAVA_PREFIX, str(THRESHOLD), str(GRACE_SECS),
                               cp=kafka_cluster.classpath(unstable_apps_classes),
                               props={"org.slf4j.simpleLogger.defaultLogLevel": "warn"}),
            stdin=subprocess.PIPE, stdout=log, stderr=log)
        try:
            run_until_caught_up(proc, java_log, bootstrap, "kafka-streams-slide8", ends)
        finally:
            if proc.poll() is None:
                proc.stdin.write(b"stop\n")
                proc.stdin.close()
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, f"Kafka Streams exited with {proc.returncode}:\n{tail(java_log)}"
    timings["kafka-streams"] = time.monotonic() - t0
    print("run times:", {k: round(v, 1) for k, v in timings.items()})

    want = expected_tables(input_records(bootstrap, INPUTS[0]), input_records(bootstrap, INPUTS[1]))
    got = {}
    for t in OUTPUTS:
        got[("runnel", t)] = read_table(bootstrap, t)
        got[("java", t)] = read_table(bootstrap, JAVA_PREFIX + t)
    return {"want": want, "got": got}


def test_the_input_is_non_trivial(slide8):
    want = slide8["want"]
    # Every app on every day, and the filter keeps some joined rows and
    # drops others.
    assert len(want["opened_per_day"]) == 8 * DAYS
    assert len(want["unstable_apps"]) >= 10
    assert len(want["_joined"]) - len(want["unstable_apps"]) >= 5


@pytest.mark.parametrize("table", OUTPUTS)
def test_kafka_streams_exactly_once_on_runnel(slide8, table):
    """Kafka Streams with exactly_once_v2 on Runnel's broker writes the
    tables the input implies, in runnel-streams' byte layout."""
    rows, records = slide8["got"][("java", table)]
    assert records >= len(rows) > 0
    assert table_diff(rows, slide8["want"][table]) == []


# runnel-streams' bug, not Kafka Streams': in some runs (1 in 6 to 3 in 5
# on an idle 2-core machine) its unstable_apps lacks the rows of partition
# 2's first two days (camera, chat and weather on day 1, chat and weather on
# day 2: 5 of 21 rows) while both count tables are exact. A task reading two
# partitions waits for one whose lag is unknown at most `max_task_idle`
# (500 ms, app.rs `process`), then goes on with what it has. When one
# input's first records come later than that (failing runs commit a first
# transaction 510 ms after the task is created, holding one output
# partition; passing runs commit everything in one), the task processes
# the other input's whole buffered partition, that input's window store
# expires the first days, and the join of the late input's records finds
# nothing. Kafka Streams waits as long as the lag is unknown or positive
# (max.task.idle.ms only bounds the wait for caught-up partitions), so it
# processes in timestamp order. Not strict: the race goes either way.
@pytest.mark.parametrize("table", [
    "opened_per_day",
    "crashed_per_day",
    "unstable_apps",
])
def test_runnel_streams_equals_kafka_streams(slide8, table):
    runnel, records = slide8["got"][("runnel", table)]
    java, _ = slide8["got"][("java", table)]
    assert records >= len(runnel) > 0
    assert table_diff(runnel, java) == []
