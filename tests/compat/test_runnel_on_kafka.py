"""Runnel's SQL engine on a real 3-broker Apache Kafka cluster.

`runnel serve --bootstrap-servers` runs the SQL engine and its ksqlDB API
without a local log. On a multi-broker cluster a topic the engine has just
created reaches the other brokers' metadata asynchronously: Runnel used to
die at start (`end offset of _runnel-sql-commands-0: UnknownPartition`)
when the broker it asked next did not know the topic yet. Here two SQL
servers share the session's Kafka cluster: both start, a persistent query
created through one runs on the partitions of both, and either answers a
pull query for any key (forwarding what the other hosts).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Producer

import slide8
from compat_util import ksql_statements, wait_until
from conftest import free_port, runnel_bin, tail

pytestmark = pytest.mark.kafka

START_TIMEOUT_S = 90.0


class SqlServer:
    """`runnel serve --bootstrap-servers` with its API on a free port."""

    def __init__(self, bootstrap: str, log_path: Path, extra: tuple[str, ...] = ()):
        self.port = free_port()
        self.log_path = log_path
        self._log = open(log_path, "ab")
        env = dict(os.environ, RUNNEL_LOG="info", NO_COLOR="1")
        self.proc = subprocess.Popen(
            [str(runnel_bin()), "serve", "--bootstrap-servers", bootstrap,
             "--sql-listen", f"127.0.0.1:{self.port}", *extra],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=env,
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            code = self.proc.poll()
            assert code is None, f"runnel serve exited with {code} at start; log:\n{tail(self.log_path)}"
            try:
                with urllib.request.urlopen(self.url("/info"), timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"no SQL API within {START_TIMEOUT_S}s; log:\n{tail(self.log_path)}")

    def ksql(self, sql: str, props: dict | None = None) -> list:
        return ksql_statements(self.url(""), sql, props)

    def pull(self, sql: str) -> list:
        """Rows of a pull query (`/query-stream`, one JSON value per line).

        While the query's group rebalances (the second server joins it once
        it has replayed the CTAS) a partition may be hosted by no one yet,
        and a pull query for its keys is refused, as in ksqlDB; after a
        server is killed, its partitions are the dead server's until its
        session expires. Those answers are "no rows yet"; any other error
        fails the test."""
        req = urllib.request.Request(
            self.url("/query-stream"), data=json.dumps({"sql": sql}).encode(),
            headers={"Content-Type": "application/vnd.ksqlapi.delimited.v1"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                lines = [json.loads(l) for l in r.read().decode().splitlines() if l.strip()]
        except urllib.error.HTTPError as e:
            body = e.read().decode()
            if e.code == 500 and "is not hosted by this instance" in body:
                return []
            # A killed server stays the owner of its partitions until its
            # group session expires: no one can answer for them until then.
            if e.code == 500 and "cannot read the partitions" in body and "Connection refused" in body:
                return []
            raise AssertionError(f"{sql!r}: HTTP {e.code}: {body}") from None
        return [l for l in lines if isinstance(l, list)]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def test_two_sql_servers_on_a_three_broker_kafka_cluster(kafka, tmp_path, unique_name):
    servers = [SqlServer(kafka.bootstrap, tmp_path / f"sql-{i}.log") for i in range(2)]
    try:
        for s in servers:
            s.wait_ready()
        events, counts = unique_name("events").replace("-", "_"), unique_name("counts").replace("-", "_")
        first, second = servers
        first.ksql(
            f"CREATE STREAM {events} (k STRING KEY, v INT) "
            f"WITH (KAFKA_TOPIC='{events}', VALUE_FORMAT='JSON', PARTITIONS=3);")
        first.ksql(f"CREATE TABLE {counts} AS SELECT k, COUNT(*) AS n FROM {events} GROUP BY k;")
        keys = [f"key-{i}" for i in range(12)]
        for k in keys:
            second.ksql(f"INSERT INTO {events} (k, v) VALUES ('{k}', 1);")
            first.ksql(f"INSERT INTO {events} (k, v) VALUES ('{k}', 2);")

        # Either server answers for every key, the partitions it hosts and
        # those the other one hosts alike.
        for s in servers:
            for k in keys:
                rows = wait_until(
                    lambda: [r for r in s.pull(f"SELECT * FROM {counts} WHERE k = '{k}';")
                             if r[-1] == 2],
                    timeout=60, interval=0.2, what=f"{k}'s count of 2 on :{s.port}")
                assert rows == [[k, 2]], rows
        for s in servers:
            assert s.proc.poll() is None, f"a SQL server died; log:\n{tail(s.log_path)}"
    finally:
        codes = [s.stop() for s in servers]
    assert codes == [0, 0], [tail(s.log_path) for s in servers]


# A killed server's query partitions move once its session expires.
FAST_SESSION = ("--kafka-property", "session.timeout.ms=6000",
                "--kafka-property", "heartbeat.interval.ms=500")
EOS = {"processing.guarantee": "exactly_once_v2"}


def produce_values(bootstrap: str, topic: str, values: range, keys: list[str]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for v in values:
        p.produce(topic, key=keys[v % len(keys)].encode(), value=json.dumps({"V": v}).encode())
    assert p.flush(30) == 0


def read_committed_values(bootstrap: str, topic: str) -> list[int]:
    """Every V of the topic, read read_committed to the end of each partition."""
    return [json.loads(m.value())["V"] for m in slide8.read_committed(bootstrap, topic, group=f"verify-{topic}")]


def test_a_sql_server_killed_and_restarted_with_exactly_once(kafka, tmp_path, unique_name):
    """Two SQL servers run exactly-once queries on the 3-broker cluster; one
    is SIGKILLed while both process input and restarted: the output stream
    holds every input record once, and every count is exact."""
    bootstrap = kafka.bootstrap
    logs = [tmp_path / "sql-0.log", tmp_path / "sql-1.log"]
    servers = [SqlServer(bootstrap, logs[i], FAST_SESSION) for i in range(2)]
    try:
        for s in servers:
            s.wait_ready()
        name = unique_name("ev").replace("-", "_")
        events, copies, counts = name, f"{name}_copy", f"{name}_counts"
        keys = [f"key-{i}" for i in range(9)]
        servers[0].ksql(
            f"CREATE STREAM {events} (k STRING KEY, v INT) "
            f"WITH (KAFKA_TOPIC='{events}', VALUE_FORMAT='JSON', PARTITIONS=3);")
        servers[0].ksql(f"CREATE STREAM {copies} AS SELECT k, v FROM {events};", EOS)
        servers[0].ksql(f"CREATE TABLE {counts} AS SELECT k, COUNT(*) AS n FROM {events} GROUP BY k;",
                        EOS)
        produce_values(bootstrap, events, range(0, 900), keys)
        wait_until(lambda: len(read_committed_values(bootstrap, copies.upper())) >= 900,
                   timeout=90, interval=0.5, what="the first 900 copies")

        produce_values(bootstrap, events, range(900, 3000), keys)
        servers[1].proc.kill()
        servers[1].proc.wait()
        time.sleep(3)
        servers[1] = SqlServer(bootstrap, logs[1], FAST_SESSION)
        servers[1].wait_ready()

        def done():
            return len(read_committed_values(bootstrap, copies.upper())) >= 3000
        wait_until(done, timeout=120, interval=0.5, what="all 3000 copies")
        values = read_committed_values(bootstrap, copies.upper())
        assert sorted(values) == list(range(3000)), (
            f"{len(values)} copies; doubled: {sorted(v for v in set(values) if values.count(v) > 1)[:20]}; "
            f"lost: {sorted(set(range(3000)) - set(values))[:20]}")
        for s in servers:
            for i, k in enumerate(keys):
                want = len(range(i, 3000, len(keys)))
                rows = wait_until(
                    lambda: [r for r in s.pull(f"SELECT * FROM {counts} WHERE k = '{k}';") if r[-1] == want],
                    timeout=60, interval=0.2, what=f"{k}'s count of {want} on :{s.port}")
                assert rows == [[k, want]], rows
        for s in servers:
            assert s.proc.poll() is None, f"a SQL server died; log:\n{tail(s.log_path)}"
    finally:
        codes = [s.stop() for s in servers]
    assert codes == [0, 0], [tail(s.log_path) for s in servers]
