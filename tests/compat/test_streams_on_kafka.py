"""runnel-streams with exactly-once on a 3-broker Apache Kafka cluster
that loses a broker mid-run, with Kafka Streams beside it as the control;
and two runnel-streams instances sharing the work, one of them killed.

The talk's slide-8 topology runs twice on the fixture cluster, side by
side on the same input: as runnel-streams (`runnel demo unstable-apps run
--exactly-once`) and as Kafka Streams with `exactly_once_v2`
(`java/UnstableApps.java`). Both first process two days of input, up to
its end. Then the broker that coordinates the runnel application's group
(and leads some of the partitions both read and write) is killed with
SIGKILL, and two more days of input are written to the two brokers left:
the applications process them with that broker gone, so their
transactions fail or hang in the middle of their work, whatever the
machine's speed. The broker comes back 15 s later. Each application must
end with every output table, read `read_committed`, exactly what the
whole input implies: a transaction that fails with the broker rolls the
tasks' state back to the last commit and reprocesses from there, and no
retriable error stops the application. A failure of Kafka Streams here
would be the fixture's; one of runnel-streams alone is Runnel's bug.

Found with it: runnel-streams died ('end offset of …-changelog: Not
leader for partition') after a commit, and librdkafka's
`send_offsets_to_transaction` could block for good when the group
coordinator died (librdkafka issues #5456, #5511); a retriable error now
rolls back to the last commit, and transaction calls run under a watchdog
that replaces a stuck producer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from confluent_kafka.admin import AdminClient

import kafka_cluster
from compat_util import ck_admin, ck_create_topic
from conftest import runnel_bin, tail
from slide8 import (DAY_MS, EVENTS, GRACE_SECS, INPUTS, OUTPUTS, PARTITIONS, SEED, THRESHOLD,
                    end_offsets, expected_tables, input_records, read_table, run_until_caught_up,
                    table_diff)

# The module's one run includes a broker's restart.
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

RUNNEL_APP = "runnel-slide8-faults"
JAVA_APP = "kafka-streams-slide8-faults"
JAVA_PREFIX = "java_faults_"
PHASE_DAYS = 2
DOWN_FOR_S = 15.0
CATCH_UP_S = 120.0


def generate(bootstrap: str, start_ms: int, seed: int, prefix: str = "") -> None:
    gen = subprocess.run(
        [str(runnel_bin()), "demo", "unstable-apps", "generate", "-b", bootstrap,
         "--events", str(EVENTS), "--days", str(PHASE_DAYS), "--seed", str(seed),
         "--partitions", str(PARTITIONS), "--start-ms", str(start_ms), "--topic-prefix", prefix],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert gen.returncode == 0, gen.stderr


def coordinator_of(bootstrap: str, group: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    desc = admin.describe_consumer_groups([group])[group].result(timeout=30)
    return desc.coordinator.id


def stop(proc: subprocess.Popen, java: bool) -> None:
    if proc.poll() is None:
        if java:
            proc.stdin.write(b"stop\n")
            proc.stdin.close()
        else:
            proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def faulty_run(kafka, unstable_apps_classes, tmp_path_factory):
    base = tmp_path_factory.mktemp("slide8-faults")
    bootstrap = kafka.bootstrap
    now = int(time.time() * 1000)
    # Whole days ending with yesterday.
    start = now - now % DAY_MS - 2 * PHASE_DAYS * DAY_MS
    generate(bootstrap, start, SEED)
    first = end_offsets(bootstrap)
    admin = ck_admin(bootstrap)
    for t in OUTPUTS:
        ck_create_topic(admin, JAVA_PREFIX + t, partitions=PARTITIONS)

    env = dict(os.environ, RUNNEL_LOG="info", NO_COLOR="1")
    runnel_log, java_log = base / "runnel-streams.log", base / "kafka-streams.log"
    victim = None
    with open(runnel_log, "wb") as rlog, open(java_log, "wb") as jlog:
        runnel = subprocess.Popen(
            [str(runnel_bin()), "demo", "unstable-apps", "run", "-b", bootstrap, "--exactly-once",
             "--application-id", RUNNEL_APP, "--threshold", str(THRESHOLD),
             "--grace-secs", str(GRACE_SECS)],
            stdin=subprocess.DEVNULL, stdout=rlog, stderr=rlog, env=env)
        java = subprocess.Popen(
            kafka_cluster.java("UnstableApps", bootstrap, JAVA_APP, str(base / "state"),
                               JAVA_PREFIX, str(THRESHOLD), str(GRACE_SECS),
                               cp=kafka_cluster.classpath(unstable_apps_classes),
                               props={"org.slf4j.simpleLogger.defaultLogLevel": "warn"}),
            stdin=subprocess.PIPE, stdout=jlog, stderr=jlog)
        try:
            run_until_caught_up(runnel, runnel_log, bootstrap, RUNNEL_APP, first, timeout=CATCH_UP_S)
            run_until_caught_up(java, java_log, bootstrap, JAVA_APP, first, timeout=CATCH_UP_S)
            victim = coordinator_of(bootstrap, RUNNEL_APP)
            kafka.kill_node(victim)
            print(f"killed node {victim}, the runnel application's group coordinator")
            generate(bootstrap, start + PHASE_DAYS * DAY_MS, SEED + 1)
            ends = end_offsets(bootstrap)
            time.sleep(DOWN_FOR_S)
            kafka.start_node(victim)
            run_until_caught_up(runnel, runnel_log, bootstrap, RUNNEL_APP, ends, timeout=CATCH_UP_S)
            run_until_caught_up(java, java_log, bootstrap, JAVA_APP, ends, timeout=CATCH_UP_S)
        finally:
            if victim is not None and not kafka.alive(victim):
                kafka.start_node(victim)
            stop(runnel, java=False)
            stop(java, java=True)
    assert runnel.returncode == 0, f"runnel-streams exited with {runnel.returncode}:\n{tail(runnel_log)}"
    assert java.returncode == 0, f"Kafka Streams exited with {java.returncode}:\n{tail(java_log)}"
    want = expected_tables(input_records(bootstrap, INPUTS[0]), input_records(bootstrap, INPUTS[1]))
    got = {}
    for t in OUTPUTS:
        got[("runnel", t)] = read_table(bootstrap, t)
        got[("java", t)] = read_table(bootstrap, JAVA_PREFIX + t)
    return {"want": want, "got": got, "logs": (runnel_log, java_log)}


@pytest.mark.parametrize("engine", ["java", "runnel"])
@pytest.mark.parametrize("table", OUTPUTS)
def test_exactly_once_survives_a_broker_kill(faulty_run, engine, table):
    rows, records = faulty_run["got"][(engine, table)]
    assert records >= len(rows) > 0
    diff = table_diff(rows, faulty_run["want"][table])
    assert diff == [], (f"{engine}: {len(diff)} rows differ:\n" + "\n".join(diff[:20])
                        + f"\nlogs: {faulty_run['logs']}")


TWO_APP = "runnel-slide8-two"
TWO_PREFIX = "two_"
# A killed instance's partitions move once its session expires.
FAST_SESSION = ["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"]


def start_instance(bootstrap: str, instance: int, log_path, env) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [str(runnel_bin()), "demo", "unstable-apps", "run", "-b", bootstrap, "--exactly-once",
             "--application-id", TWO_APP, "--instance-id", str(instance),
             "--topic-prefix", TWO_PREFIX, "--threshold", str(THRESHOLD),
             "--grace-secs", str(GRACE_SECS), *FAST_SESSION],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)


@pytest.fixture(scope="module")
def two_instances(kafka, tmp_path_factory):
    """Two instances share the partitions; one is SIGKILLed while both
    process the second half of the input, the other takes its partitions
    over, and the killed one comes back (fencing its open transaction)."""
    base = tmp_path_factory.mktemp("slide8-two")
    bootstrap = kafka.bootstrap
    now = int(time.time() * 1000)
    start = now - now % DAY_MS - 2 * PHASE_DAYS * DAY_MS
    generate(bootstrap, start, SEED, TWO_PREFIX)
    first = end_offsets(bootstrap, TWO_PREFIX)
    env = dict(os.environ, RUNNEL_LOG="info", NO_COLOR="1")
    logs = [base / "instance-0.log", base / "instance-1.log"]
    procs = [start_instance(bootstrap, i, logs[i], env) for i in (0, 1)]
    try:
        run_until_caught_up(procs[0], logs[0], bootstrap, TWO_APP, first, timeout=CATCH_UP_S)
        assert procs[1].poll() is None, tail(logs[1])
        generate(bootstrap, start + PHASE_DAYS * DAY_MS, SEED + 1, TWO_PREFIX)
        procs[1].kill()
        procs[1].wait()
        ends = end_offsets(bootstrap, TWO_PREFIX)
        # Instance 0 alone for a while (it takes over once the session of
        # the killed one expires), then both again.
        time.sleep(10)
        procs[1] = start_instance(bootstrap, 1, logs[1], env)
        run_until_caught_up(procs[0], logs[0], bootstrap, TWO_APP, ends, timeout=CATCH_UP_S)
    finally:
        for p in procs:
            stop(p, java=False)
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"instance {i} exited with {p.returncode}:\n{tail(logs[i])}"
    for i in (0, 1):
        text = logs[i].read_text(errors="replace")
        assert "partitions assigned" in text, f"instance {i} never had partitions:\n{tail(logs[i])}"
    want = expected_tables(input_records(bootstrap, TWO_PREFIX + INPUTS[0]),
                           input_records(bootstrap, TWO_PREFIX + INPUTS[1]))
    got = {t: read_table(bootstrap, TWO_PREFIX + t) for t in OUTPUTS}
    return {"want": want, "got": got, "logs": logs}


@pytest.mark.parametrize("table", OUTPUTS)
def test_exactly_once_survives_an_instance_kill(two_instances, table):
    rows, records = two_instances["got"][table]
    assert records >= len(rows) > 0
    diff = table_diff(rows, two_instances["want"][table])
    assert diff == [], (f"{len(diff)} rows differ:\n" + "\n".join(diff[:20])
                        + f"\nlogs: {two_instances['logs']}")
