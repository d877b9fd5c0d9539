"""The talk's slide-8 application (`runnel demo unstable-apps`) as a test
workload: its topics, its output read back as tables, and the tables its
input implies, computed independently of any stream engine.

Shared by the tests that run it on Runnel's broker (test_kafka_streams.py)
and on Apache Kafka under broker faults (test_streams_on_kafka.py).
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from compat_util import wait_until
from conftest import tail

DAY_MS = 86_400_000
EVENTS, DAYS, SEED, PARTITIONS = 4000, 4, 7, 3
THRESHOLD, GRACE_SECS = 0.1, 3600
INPUTS = ("apps_opened", "app_crashes")
OUTPUTS = ("opened_per_day", "crashed_per_day", "unstable_apps")
RUN_TIMEOUT_S = 60.0


def read_committed(bootstrap: str, topic: str, group: str = "kafka-streams-verifier",
                   partitions: int | None = None) -> list:
    """Every record of the topic, read read_committed to the end of each partition
    (`partitions`: how many it must have)."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
    })
    try:
        parts = list(c.list_topics(topic, timeout=10).topics[topic].partitions)
        assert partitions is None or len(parts) == partitions, f"{topic} has partitions {parts}"
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        at_end: set[int] = set()
        out = []
        deadline = time.monotonic() + 30
        while len(at_end) < len(parts):
            assert time.monotonic() < deadline, f"{topic}: no end of partitions {set(parts) - at_end}"
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                at_end.add(m.partition())
                continue
            out.append(m)
        return out
    finally:
        c.close()


def read_table(bootstrap: str, topic: str) -> tuple[dict[bytes, bytes], int]:
    """The topic as a table, read_committed to the end; and how many records it held."""
    records = read_committed(bootstrap, topic, partitions=PARTITIONS)
    rows: dict[bytes, bytes] = {}
    for m in records:
        if m.value() is None:
            rows.pop(m.key(), None)
        else:
            rows[m.key()] = m.value()
    return rows, len(records)


def input_records(bootstrap: str, topic: str) -> list[tuple[bytes, int]]:
    """(key, timestamp) of every input record."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "kafka-streams-verifier",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        at_end: set[int] = set()
        out = []
        while len(at_end) < PARTITIONS:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
                at_end.add(m.partition())
                continue
            out.append((m.key(), m.timestamp()[1]))
        return out
    finally:
        c.close()


def end_offsets(bootstrap: str, prefix: str = "") -> dict[tuple[str, int], int]:
    """End offsets of the input partitions (topics named with `prefix`)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "kafka-streams-verifier"})
    try:
        return {(prefix + t, p): c.get_watermark_offsets(TopicPartition(prefix + t, p), timeout=10)[1]
                for t in INPUTS for p in range(PARTITIONS)}
    finally:
        c.close()


# Errors of a group's committed offsets while its coordinator loads or moves
# (librdkafka does not flag all of them retriable).
NOT_YET = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
           KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError._TIMED_OUT, KafkaError._TRANSPORT)


def caught_up(bootstrap: str, group: str, ends: dict[tuple[str, int], int]) -> bool:
    """The group's committed offsets are at the end of every input partition.

    With exactly-once the offsets commit in the transaction that writes the
    results of the records before them, so the output is complete then."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        committed = c.committed([TopicPartition(t, p) for t, p in ends], timeout=10)
    except KafkaException as e:
        # The group's coordinator is loading or moving (a cluster just
        # started, a broker killed): not known yet, ask again.
        if e.args[0].retriable() or e.args[0].code() in NOT_YET:
            return False
        raise
    finally:
        c.close()
    return all(tp.offset == ends[(tp.topic, tp.partition)] or (tp.offset < 0 and ends[(tp.topic, tp.partition)] == 0)
               for tp in committed)


def run_until_caught_up(proc, log, bootstrap: str, group: str, ends, timeout: float = RUN_TIMEOUT_S) -> None:
    def done():
        assert proc.poll() is None, f"{group} exited with {proc.returncode}; log:\n{tail(log)}"
        return caught_up(bootstrap, group, ends)

    wait_until(done, timeout=timeout, interval=0.25, what=f"{group} to commit the end of its input")


def expected_tables(opened_in, crashed_in) -> dict[str, dict[bytes, bytes]]:
    """What the topology must write, computed from the input records."""
    def counts(records):
        out: dict[bytes, int] = {}
        for key, ts in records:
            wkey = key + (ts - ts % DAY_MS).to_bytes(8, "big")
            out[wkey] = out.get(wkey, 0) + 1
        return out

    opens, crashes = counts(opened_in), counts(crashed_in)
    unstable = {}
    for k in opens.keys() & crashes.keys():
        o, c = opens[k], crashes[k]
        ratio = c / max(o, 1)
        if ratio > THRESHOLD:
            # Python's repr of a float is the shortest decimal that reads
            # back as it, as serde_json (ryu) prints it in this range.
            unstable[k] = f'{{"OPENS":{o},"CRASHES":{c},"RATIO":{ratio!r}}}'.encode()
    return {
        "opened_per_day": {k: f'{{"OPENS":{n}}}'.encode() for k, n in opens.items()},
        "crashed_per_day": {k: f'{{"CRASHES":{n}}}'.encode() for k, n in crashes.items()},
        "unstable_apps": unstable,
        "_joined": {k: b"" for k in opens.keys() & crashes.keys()},
    }


def show_key(k: bytes) -> str:
    return f"{k[:-8].decode()}@{int.from_bytes(k[-8:], 'big')}"


def table_diff(got: dict[bytes, bytes], want: dict[bytes, bytes]) -> list[str]:
    return [f"{show_key(k)}: {got.get(k)!r} instead of {want.get(k)!r}"
            for k in sorted(got.keys() | want.keys()) if got.get(k) != want.get(k)]
