"""runnel-streams with exactly-once on a 3-broker Apache Kafka cluster
that loses a broker mid-run.

The talk's slide-8 application (`runnel demo unstable-apps run
--exactly-once`) runs on the fixture cluster in two phases. It first
processes two days of input, up to its end. Then the broker that
coordinates its consumer group (and leads some of the partitions it reads
and writes) is killed with SIGKILL, and two more days of input are written
to the two brokers left: the application processes them with its
coordinator gone, so its transactions fail or hang in the middle of its
work, whatever the machine's speed. The broker comes back later. The run
must end with every output table, read `read_committed`, exactly what the
whole input implies: a transaction that fails with the broker rolls the
tasks' state back to the last commit and reprocesses from there, and no
retriable error stops the application.

Found with it: librdkafka's `send_offsets_to_transaction` can block for
good when the group coordinator dies (librdkafka issues #5456, #5511),
which hung the application; transaction calls now run under a watchdog
that replaces a stuck producer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from confluent_kafka.admin import AdminClient

from conftest import runnel_bin, tail
from slide8 import (DAY_MS, EVENTS, GRACE_SECS, INPUTS, OUTPUTS, PARTITIONS, SEED, THRESHOLD,
                    end_offsets, expected_tables, input_records, read_table, run_until_caught_up,
                    table_diff)

# The module's one run includes a broker's restart.
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

APP = "runnel-slide8-faults"
PHASE_DAYS = 2
DOWN_FOR_S = 15.0


def generate(bootstrap: str, start_ms: int, seed: int) -> None:
    gen = subprocess.run(
        [str(runnel_bin()), "demo", "unstable-apps", "generate", "-b", bootstrap,
         "--events", str(EVENTS), "--days", str(PHASE_DAYS), "--seed", str(seed),
         "--partitions", str(PARTITIONS), "--start-ms", str(start_ms)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert gen.returncode == 0, gen.stderr


def coordinator_of(bootstrap: str, group: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    desc = admin.describe_consumer_groups([group])[group].result(timeout=30)
    return desc.coordinator.id


@pytest.fixture(scope="module")
def faulty_run(kafka, tmp_path_factory):
    base = tmp_path_factory.mktemp("slide8-faults")
    bootstrap = kafka.bootstrap
    now = int(time.time() * 1000)
    # Whole days ending with yesterday.
    start = now - now % DAY_MS - 2 * PHASE_DAYS * DAY_MS
    generate(bootstrap, start, SEED)
    first = end_offsets(bootstrap)

    env = dict(os.environ, RUNNEL_LOG="info", NO_COLOR="1")
    log_path = base / "runnel-streams.log"
    victim = None
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(runnel_bin()), "demo", "unstable-apps", "run", "-b", bootstrap, "--exactly-once",
             "--application-id", APP, "--threshold", str(THRESHOLD),
             "--grace-secs", str(GRACE_SECS)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        try:
            run_until_caught_up(proc, log_path, bootstrap, APP, first)
            victim = coordinator_of(bootstrap, APP)
            kafka.kill_node(victim)
            print(f"killed node {victim}, the group's coordinator")
            generate(bootstrap, start + PHASE_DAYS * DAY_MS, SEED + 1)
            ends = end_offsets(bootstrap)
            time.sleep(DOWN_FOR_S)
            assert proc.poll() is None, f"the application died with the broker:\n{tail(log_path)}"
            kafka.start_node(victim)
            run_until_caught_up(proc, log_path, bootstrap, APP, ends, timeout=120)
        finally:
            if victim is not None and not kafka.alive(victim):
                kafka.start_node(victim)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, f"runnel-streams exited with {proc.returncode}:\n{tail(log_path)}"
    want = expected_tables(input_records(bootstrap, INPUTS[0]), input_records(bootstrap, INPUTS[1]))
    got = {t: read_table(bootstrap, t) for t in OUTPUTS}
    return {"want": want, "got": got, "log": log_path}


@pytest.mark.parametrize("table", OUTPUTS)
def test_exactly_once_survives_a_broker_kill(faulty_run, table):
    rows, records = faulty_run["got"][table]
    assert records >= len(rows) > 0
    diff = table_diff(rows, faulty_run["want"][table])
    assert diff == [], f"{len(diff)} rows differ:\n" + "\n".join(diff[:20]) + f"\nlog: {faulty_run['log']}"
