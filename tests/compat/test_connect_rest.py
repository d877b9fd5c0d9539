"""Runnel's Kafka Connect worker through Kafka Connect's REST API (every
endpoint, its status codes and error bodies), a datagen source read back
with confluent-kafka, and a `runnel serve` killed with SIGKILL while an
exactly-once file source runs: every line ends up in the topic once."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer

from compat_util import wait_until
from conftest import RunnelServer, free_port, runnel_bin

STRING = "org.apache.kafka.connect.storage.StringConverter"
JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"


class Connect:
    def __init__(self, server: RunnelServer, port: int):
        self.server = server
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def wait_ready(self):
        def ready():
            try:
                return self.http.get("/health").status_code == 200
            except httpx.HTTPError:
                return False
        wait_until(ready, timeout=30, what=f"the connect API at {self.url}")

    def status(self, name: str) -> dict:
        r = self.http.get(f"/connectors/{name}/status")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_state(self, name: str, connector: str, task: str | None = None, timeout: float = 20):
        def ok():
            s = self.status(name)
            if s["connector"]["state"] != connector:
                return False
            if task is None:
                return True
            return bool(s["tasks"]) and all(t["state"] == task for t in s["tasks"])
        wait_until(ok, timeout=timeout, what=f"{name} {connector}/{task}")


def start_server(base: Path, extra=()) -> tuple[RunnelServer, int]:
    port = free_port()
    server = RunnelServer(
        runnel_bin(), base / "data", base / "runnel.log",
        ["--no-sql", "--no-registry", "--connect-listen", f"127.0.0.1:{port}", *extra],
    )
    server.start()
    return server, port


@pytest.fixture(scope="module")
def connect(tmp_path_factory):
    base = tmp_path_factory.mktemp("connect")
    server, port = start_server(base)
    c = Connect(server, port)
    c.wait_ready()
    yield c
    assert server.stop() == 0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def source_config(path: Path, topic: str, **extra) -> dict:
    return {
        "connector.class": "FileStreamSource",
        "file": str(path),
        "topic": topic,
        "value.converter": STRING,
        **extra,
    }


def consume_all(bootstrap: str, topic: str, expect: int, timeout: float = 30) -> list:
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": unique("reader"),
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "fetch.wait.max.ms": 100,
    })
    c.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for m in c.consume(num_messages=500, timeout=0.5):
                if m.error() is None:
                    out.append(m)
            if len(out) >= expect:
                # A little longer: duplicates would show up now.
                for m in c.consume(num_messages=500, timeout=1.0):
                    if m.error() is None:
                        out.append(m)
                break
    finally:
        c.close()
    return out


def test_root_health_and_plugins(connect):
    r = connect.http.get("/")
    assert r.status_code == 200
    assert set(r.json()) >= {"version", "commit", "kafka_cluster_id"}
    assert connect.http.get("/health").json()["status"] == "healthy"
    plugins = connect.http.get("/connector-plugins").json()
    classes = {p["class"]: p["type"] for p in plugins}
    assert classes["org.apache.kafka.connect.file.FileStreamSourceConnector"] == "source"
    assert classes["org.apache.kafka.connect.file.FileStreamSinkConnector"] == "sink"
    assert classes["io.confluent.kafka.connect.datagen.DatagenConnector"] == "source"
    assert all(p["type"] in ("source", "sink") for p in plugins)
    every = connect.http.get("/connector-plugins", params={"connectorsOnly": "false"}).json()
    types = {p["type"] for p in every}
    assert {"transformation", "predicate", "converter"} <= types
    assert any(p["class"] == "org.apache.kafka.connect.transforms.RegexRouter" for p in every)
    r = connect.http.get("/connector-plugins/FileStreamSinkConnector/config")
    assert r.status_code == 200 and any(k["name"] == "file" for k in r.json())
    r = connect.http.get("/nope")
    assert r.status_code == 404 and r.json()["error_code"] == 404


def test_validate_reports_each_field(connect):
    r = connect.http.put(
        "/connector-plugins/FileStreamSinkConnector/config/validate",
        json={"connector.class": "FileStreamSinkConnector", "name": "v", "tasks.max": "x",
              "transforms": "t", "transforms.t.type": "com.example.Missing"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "org.apache.kafka.connect.file.FileStreamSinkConnector"
    assert set(body) == {"name", "error_count", "groups", "configs"}
    errors = {c["value"]["name"]: c["value"]["errors"] for c in body["configs"] if c["value"]["errors"]}
    assert body["error_count"] == sum(len(e) for e in errors.values())
    assert {"tasks.max", "file", "topics", "transforms.t.type"} <= set(errors), errors
    one = next(c for c in body["configs"] if c["value"]["name"] == "tasks.max")
    assert set(one["definition"]) >= {"name", "type", "required", "default_value", "importance",
                                      "documentation", "group", "width", "display_name",
                                      "dependents", "order"}
    assert set(one["value"]) == {"name", "value", "recommended_values", "errors", "visible"}
    assert one["value"]["value"] == "x"
    ok = connect.http.put(
        "/connector-plugins/org.apache.kafka.connect.file.FileStreamSinkConnector/config/validate",
        json={"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
              "name": "v", "file": "/tmp/x", "topics": "t"},
    )
    assert ok.status_code == 200 and ok.json()["error_count"] == 0, ok.text
    r = connect.http.put("/connector-plugins/com.example.Nope/config/validate", json={"name": "x"})
    assert r.status_code == 400 and r.json()["error_code"] == 400
    r = connect.http.put("/connector-plugins/FileStreamSinkConnector/config/validate", content=b"{nope")
    assert r.status_code == 400


def test_connector_lifecycle_over_every_endpoint(connect, tmp_path):
    name = unique("file-src")
    topic = unique("lines")
    src = tmp_path / "in.txt"
    src.write_text("".join(f"l{i}\n" for i in range(10)))
    h = connect.http

    # Invalid configs are refused, naming the field; nothing is created.
    r = h.post("/connectors", json={"name": name, "config": {"connector.class": "FileStreamSource"}})
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == 400
    msg = r.json()["message"]
    # As Kafka's: `file` is optional (standard input), `topic` is not.
    assert msg.startswith("Connector configuration is invalid and contains the following 1 error(s):"), msg
    assert '"topic"' in msg and '"file"' not in msg
    assert h.get(f"/connectors/{name}").status_code == 404
    assert h.post("/connectors", json={"config": {}}).status_code == 400
    assert h.post("/connectors", content=b"not json").status_code == 400
    r = h.post("/connectors", json={"name": name, "config": {"connector.class": "com.example.Nope"}})
    assert r.status_code == 400

    r = h.post("/connectors", json={"name": name, "config": source_config(src, topic)})
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith(f"/connectors/{name}")
    info = r.json()
    assert info["name"] == name and info["type"] == "source"
    assert info["config"]["name"] == name
    assert info["tasks"] == [{"connector": name, "task": 0}]
    r = h.post("/connectors", json={"name": name, "config": source_config(src, topic)})
    assert r.status_code == 409 and r.json() == {"error_code": 409, "message": f"Connector {name} already exists"}

    assert name in h.get("/connectors").json()
    assert h.get(f"/connectors/{name}").json()["config"]["file"] == str(src)
    assert h.get(f"/connectors/{name}/config").json()["topic"] == topic
    connect.wait_state(name, "RUNNING", "RUNNING")
    st = connect.status(name)
    assert st["name"] == name and st["type"] == "source"
    assert st["tasks"][0]["id"] == 0 and st["tasks"][0]["worker_id"]
    assert h.get(f"/connectors/{name}/tasks/0/status").json()["state"] == "RUNNING"
    tasks = h.get(f"/connectors/{name}/tasks").json()
    assert tasks[0]["id"] == {"connector": name, "task": 0}
    assert tasks[0]["config"]["file"] == str(src)
    r = h.get(f"/connectors/{name}/tasks/7/status")
    assert r.status_code == 404 and r.json()["error_code"] == 404

    expanded = h.get("/connectors", params=[("expand", "status"), ("expand", "info")]).json()
    assert expanded[name]["status"]["connector"]["state"] == "RUNNING"
    assert expanded[name]["info"]["config"]["topic"] == topic
    assert h.get("/connectors", params={"expand": "bogus"}).json()[name] == {}

    wait_until(lambda: h.get(f"/connectors/{name}/offsets").json()["offsets"], timeout=20,
               what="stored offsets")
    offsets = h.get(f"/connectors/{name}/offsets").json()["offsets"]
    assert offsets == [{"partition": {"filename": str(src)}, "offset": {"position": 30}}]
    assert h.get(f"/connectors/{name}/topics").json() == {name: {"topics": [topic]}}
    assert h.put(f"/connectors/{name}/topics/reset").status_code == 202
    assert h.get(f"/connectors/{name}/topics").json() == {name: {"topics": []}}

    # Offsets change only while STOPPED.
    r = h.patch(f"/connectors/{name}/offsets", json={"offsets": []})
    assert r.status_code == 400 and "STOPPED" in r.json()["message"]
    assert h.delete(f"/connectors/{name}/offsets").status_code == 400

    assert h.post(f"/connectors/{name}/tasks/0/restart").status_code == 204
    r = h.post(f"/connectors/{name}/tasks/9/restart")
    assert r.status_code == 404 and r.json()["message"] == f"Unknown task: {name}-9"
    assert h.post(f"/connectors/{name}/restart").status_code == 204
    r = h.post(f"/connectors/{name}/restart", params={"includeTasks": "true"})
    assert r.status_code == 202, r.text
    assert r.json()["connector"]["state"] == "RESTARTING"
    assert r.json()["tasks"][0]["state"] == "RESTARTING"
    r = h.post(f"/connectors/{name}/restart", params={"includeTasks": "true", "onlyFailed": "true"})
    assert r.status_code == 202 and r.json()["tasks"][0]["state"] == "RUNNING"
    connect.wait_state(name, "RUNNING", "RUNNING")

    assert h.put(f"/connectors/{name}/pause").status_code == 202
    connect.wait_state(name, "PAUSED", "PAUSED")
    assert h.put(f"/connectors/{name}/resume").status_code == 202
    connect.wait_state(name, "RUNNING", "RUNNING")

    # PUT config updates (200), PATCH merges and removes.
    cfg = source_config(src, topic, **{"batch.size": "5"})
    r = h.put(f"/connectors/{name}/config", json=cfg)
    assert r.status_code == 200 and r.json()["config"]["batch.size"] == "5"
    r = h.patch(f"/connectors/{name}/config", json={"batch.size": None, "tasks.max": "1"})
    assert r.status_code == 200, r.text
    assert "batch.size" not in r.json()["config"] and r.json()["config"]["tasks.max"] == "1"
    r = h.put(f"/connectors/{name}/config", json={**cfg, "name": "other"})
    assert r.status_code == 400
    r = h.put(f"/connectors/{name}/config", json={**cfg, "batch.size": "0"})
    assert r.status_code == 400 and "batch.size" in r.json()["message"]

    assert h.put(f"/connectors/{name}/stop").status_code == 204
    connect.wait_state(name, "STOPPED")
    assert connect.status(name)["tasks"] == []
    r = h.patch(f"/connectors/{name}/offsets", json={"offsets": [
        {"partition": {"filename": str(src)}, "offset": {"position": 6}}]})
    assert r.status_code == 200, r.text
    assert r.json()["message"] == "The offsets for this connector have been altered successfully"
    assert h.get(f"/connectors/{name}/offsets").json()["offsets"][0]["offset"] == {"position": 6}
    assert h.patch(f"/connectors/{name}/offsets", json={"nope": 1}).status_code == 400
    r = h.delete(f"/connectors/{name}/offsets")
    assert r.status_code == 200
    assert r.json()["message"] == "The offsets for this connector have been reset successfully"
    assert h.get(f"/connectors/{name}/offsets").json() == {"offsets": []}

    assert h.delete(f"/connectors/{name}").status_code == 204
    r = h.get(f"/connectors/{name}")
    assert r.status_code == 404
    assert r.json() == {"error_code": 404, "message": f"Connector {name} not found"}
    for method, path in [("GET", "/status"), ("GET", "/config"), ("PUT", "/pause"),
                         ("PUT", "/resume"), ("PUT", "/stop"), ("POST", "/restart"),
                         ("DELETE", ""), ("GET", "/offsets"), ("GET", "/tasks"),
                         ("GET", "/topics")]:
        r = h.request(method, f"/connectors/{name}{path}")
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["message"] == f"Connector {name} not found"


def test_put_config_creates_and_initial_states(connect, tmp_path):
    h = connect.http
    src = tmp_path / "in.txt"
    src.write_text("a\n")
    name = unique("put-created")
    r = h.put(f"/connectors/{name}/config", json=source_config(src, unique("t")))
    assert r.status_code == 201, r.text
    paused = unique("paused")
    r = h.post("/connectors", json={"name": paused, "config": source_config(src, unique("t")),
                                    "initial_state": "PAUSED"})
    assert r.status_code == 201
    connect.wait_state(paused, "PAUSED", "PAUSED")
    stopped = unique("stopped")
    r = h.post("/connectors", json={"name": stopped, "config": source_config(src, unique("t")),
                                    "initial_state": "STOPPED"})
    assert r.status_code == 201
    connect.wait_state(stopped, "STOPPED")
    r = h.post("/connectors", json={"name": unique("bad"), "config": source_config(src, "t"),
                                    "initial_state": "SLEEPING"})
    assert r.status_code == 400
    for n in (name, paused, stopped):
        assert h.delete(f"/connectors/{n}").status_code == 204


def test_a_failing_task_shows_failed_and_restarts(connect, tmp_path):
    h = connect.http
    name = unique("bad-sink")
    out = tmp_path / "missing-dir" / "out.txt"
    r = h.post("/connectors", json={"name": name, "config": {
        "connector.class": "FileStreamSink", "file": str(out), "topics": unique("t"),
        "value.converter": STRING}})
    assert r.status_code == 201, r.text
    connect.wait_state(name, "RUNNING", "FAILED")
    task = h.get(f"/connectors/{name}/tasks/0/status").json()
    assert task["state"] == "FAILED" and "missing-dir" in task["trace"]
    # Fix the cause, restart the failed task: it runs.
    (tmp_path / "missing-dir").mkdir()
    r = h.post(f"/connectors/{name}/restart", params={"includeTasks": "true", "onlyFailed": "true"})
    assert r.status_code == 202 and r.json()["tasks"][0]["state"] == "RESTARTING"
    connect.wait_state(name, "RUNNING", "RUNNING")
    assert h.delete(f"/connectors/{name}").status_code == 204


def test_datagen_to_a_topic(connect):
    h = connect.http
    name = unique("datagen")
    topic = unique("users")
    r = h.post("/connectors", json={"name": name, "config": {
        "connector.class": "io.confluent.kafka.connect.datagen.DatagenConnector",
        "kafka.topic": topic, "quickstart": "users", "max.interval": "1",
        "iterations": "25", "key.converter": STRING,
        "value.converter": JSON_CONVERTER, "value.converter.schemas.enable": "false"}})
    assert r.status_code == 201, r.text
    msgs = consume_all(connect.server.bootstrap, topic, 25)
    assert len(msgs) == 25
    for m in msgs:
        v = json.loads(m.value())
        assert set(v) == {"registertime", "userid", "regionid", "gender"}
        assert m.key().decode() == v["userid"]
    r = h.post("/connectors", json={"name": unique("datagen-bad"), "config": {
        "connector.class": "DatagenConnector", "kafka.topic": topic, "quickstart": "nope"}})
    assert r.status_code == 400 and "quickstart" in r.json()["message"]
    assert h.delete(f"/connectors/{name}").status_code == 204


def test_sigkill_during_an_exactly_once_file_source(tmp_path):
    """Three SIGKILLs while the source copies, each after it made progress;
    then the worker finishes: every line is in the topic exactly once for
    read_committed readers (at-least-once would repeat the records of a
    poll whose offsets were not stored yet)."""
    base = tmp_path / "server"
    port = free_port()
    extra = ["--no-sql", "--no-registry", "--connect-listen", f"127.0.0.1:{port}",
             "--connect-property", "exactly.once.source.support=enabled"]
    src = tmp_path / "in.txt"
    total = 20000
    src.write_text("".join(f"line-{i}\n" for i in range(total)))
    topic = unique("eos")
    server = None
    try:
        last = 0
        for round_ in range(4):
            server = RunnelServer(runnel_bin(), base / "data", base / "runnel.log", extra)
            server.start()
            c = Connect(server, port)
            c.wait_ready()
            if round_ == 0:
                r = c.http.post("/connectors", json={
                    "name": "eos-src", "config": source_config(src, topic, **{"batch.size": "5"})})
                assert r.status_code == 201, r.text
            if round_ == 3:
                break

            def position():
                offsets = c.http.get("/connectors/eos-src/offsets").json()["offsets"]
                return offsets[0]["offset"]["position"] if offsets else 0
            start = last
            wait_until(lambda: position() > start, timeout=20, what="progress")
            last = position()
            server.kill()
        with src.open("a") as f:
            f.write("".join(f"line-{i}\n" for i in range(total, total + 100)))
        msgs = consume_all(server.bootstrap, topic, total + 100, timeout=90)
        values = [m.value().decode() for m in msgs]
        assert len(values) == total + 100, f"{len(values)} records, {len(set(values))} distinct"
        assert values == [f"line-{i}" for i in range(total + 100)]
    finally:
        if server is not None and server.proc is not None and server.proc.poll() is None:
            assert server.stop() == 0


class Worker:
    """`runnel connect -b B`: a standalone worker of a group."""

    def __init__(self, bootstrap: str, log_path: Path, extra=(), port: int | None = None):
        import os
        import subprocess

        self.port = port or free_port()
        self._log = open(log_path, "ab")
        env = dict(os.environ, RUNNEL_LOG="info", NO_COLOR="1")
        self.proc = subprocess.Popen(
            [str(runnel_bin()), "connect", "-b", bootstrap,
             "--connect-listen", f"127.0.0.1:{self.port}",
             "--kafka-property", "session.timeout.ms=6000",
             "--kafka-property", "heartbeat.interval.ms=1000", *extra],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=env)
        self.id = f"127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=f"http://{self.id}", timeout=30)

    def wait_ready(self):
        def ready():
            assert self.proc.poll() is None, f"worker exited with {self.proc.returncode}"
            try:
                return self.http.get("/connectors").status_code == 200
            except httpx.HTTPError:
                return False
        wait_until(ready, timeout=60, what=f"the worker at {self.id}")

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> int:
        import signal
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self._log.close()
        return code


def test_two_workers_share_tasks_and_take_over_a_dead_ones(make_server, tmp_path):
    broker = make_server(extra_args=["--no-sql", "--no-registry", "--no-connect"]).start()
    a = Worker(broker.bootstrap, tmp_path / "worker-a.log")
    b = Worker(broker.bootstrap, tmp_path / "worker-b.log")
    try:
        a.wait_ready()
        b.wait_ready()
        topic = unique("dg")
        r = a.http.post("/connectors", json={"name": "dg", "config": {
            "connector.class": "DatagenConnector", "kafka.topic": topic, "quickstart": "pageviews",
            "max.interval": "20", "tasks.max": "4"}})
        assert r.status_code == 201, r.text

        def spread():
            for w in (a, b):
                s = w.http.get("/connectors/dg/status").json()
                if len(s["tasks"]) != 4 or any(t["state"] != "RUNNING" for t in s["tasks"]):
                    return False
                if {t["worker_id"] for t in s["tasks"]} != {a.id, b.id}:
                    return False
            return True
        wait_until(spread, timeout=30, what="tasks on both workers")
        s = b.http.get("/connectors/dg/status").json()
        assert sorted(t["worker_id"] for t in s["tasks"]) == sorted([a.id, a.id, b.id, b.id])
        b.kill()

        def moved():
            s = a.http.get("/connectors/dg/status").json()
            return len(s["tasks"]) == 4 and all(
                t["state"] == "RUNNING" and t["worker_id"] == a.id for t in s["tasks"])
        wait_until(moved, timeout=40, what="the dead worker's tasks on the other")
        assert a.stop() == 0
    finally:
        for w in (a, b):
            if w.proc.poll() is None:
                w.kill()


def test_any_worker_restarts_what_another_runs(make_server, tmp_path):
    """A restart asked of a worker that does not run the task (or the
    connector) is forwarded to the one that does, as Kafka Connect
    forwards it: both workers answer every endpoint."""
    broker = make_server(extra_args=["--no-sql", "--no-registry", "--no-connect"]).start()
    a = Worker(broker.bootstrap, tmp_path / "worker-a.log")
    b = Worker(broker.bootstrap, tmp_path / "worker-b.log")
    try:
        a.wait_ready()
        b.wait_ready()
        out_dir = tmp_path / "missing-dir"
        # Two sink tasks writing into a directory that does not exist yet:
        # both fail, one on each worker.
        r = a.http.post("/connectors", json={"name": "s", "config": {
            "connector.class": "FileStreamSink", "file": str(out_dir / "out.txt"),
            "topics": unique("t"), "value.converter": STRING, "tasks.max": "2"}})
        assert r.status_code == 201, r.text
        by_id = {a.id: a, b.id: b}

        def placed(state):
            views = [w.http.get("/connectors/s/status").json() for w in (a, b)]
            for s in views:
                if len(s["tasks"]) != 2 or any(t["state"] != state for t in s["tasks"]):
                    return None
                if {t["worker_id"] for t in s["tasks"]} != {a.id, b.id}:
                    return None
            if views[0]["tasks"] != views[1]["tasks"]:
                return None
            return {t["id"]: t["worker_id"] for t in views[0]["tasks"]}
        owners = wait_until(lambda: placed("FAILED"), timeout=30, what="a failed task on each worker")
        connector_owner = a.http.get("/connectors/s/status").json()["connector"]["worker_id"]
        other = {a.id: b, b.id: a}
        out_dir.mkdir()
        # Task 0, asked of the worker that does not run it.
        r = other[owners[0]].http.post("/connectors/s/tasks/0/restart")
        assert r.status_code == 204, r.text
        # What a forwarded request gets where the task does not run: 409.
        r = other[owners[0]].http.post("/connectors/s/tasks/0/restart", params={"forward": "false"})
        assert r.status_code == 409, r.text
        # Task 1 through the connector's restart, asked of the other worker.
        r = other[owners[1]].http.post(
            "/connectors/s/restart", params={"includeTasks": "true", "onlyFailed": "true"})
        assert r.status_code == 202, r.text
        assert [t["state"] for t in r.json()["tasks"]][1] == "RESTARTING"
        # Each runs again where it belongs, as both workers tell.
        assert wait_until(lambda: placed("RUNNING"), timeout=30, what="both tasks running") == owners
        # The connector itself, restarted through the worker that does not run it.
        r = other[connector_owner].http.post("/connectors/s/restart")
        assert r.status_code == 204, r.text
        r = by_id[connector_owner].http.post("/connectors/s/restart")
        assert r.status_code == 204, r.text
        assert placed("RUNNING") == owners
        for w in (a, b):
            assert w.http.post("/connectors/nope/tasks/0/restart").status_code == 404
            assert w.http.post("/connectors/s/tasks/7/restart").status_code == 404
        assert a.stop() == 0
        assert b.stop() == 0
    finally:
        for w in (a, b):
            if w.proc.poll() is None:
                w.kill()


def test_sigkill_of_a_standalone_exactly_once_worker(make_server, tmp_path):
    """`runnel connect` (the Kafka-protocol backend, librdkafka's
    transactional producer) killed three times while its file source
    copies: a read_committed reader sees every line once."""
    broker = make_server(extra_args=["--no-sql", "--no-registry", "--no-connect"]).start()
    src = tmp_path / "in.txt"
    # Each poll is a transaction, and the broker fsyncs every write here
    # (--flush-messages 1): a few hundred transactions at most.
    total = 4000
    src.write_text("".join(f"line-{i}\n" for i in range(total)))
    topic = unique("eos-worker")
    port = free_port()
    extra = ["--connect-property", "exactly.once.source.support=enabled"]
    w = None
    try:
        last = 0
        for round_ in range(4):
            w = Worker(broker.bootstrap, tmp_path / "worker.log", extra, port)
            w.wait_ready()
            if round_ == 0:
                r = w.http.post("/connectors", json={
                    "name": "eos", "config": source_config(src, topic, **{"batch.size": "20"})})
                assert r.status_code == 201, r.text
            if round_ == 3:
                break

            def position():
                offsets = w.http.get("/connectors/eos/offsets").json()["offsets"]
                return offsets[0]["offset"]["position"] if offsets else 0
            start = last
            wait_until(lambda: position() > start, timeout=30, what="progress")
            last = position()
            w.kill()
        msgs = consume_all(broker.bootstrap, topic, total, timeout=90)
        values = [m.value().decode() for m in msgs]
        assert len(values) == total, f"{len(values)} records, {len(set(values))} distinct"
        assert values == [f"line-{i}" for i in range(total)]
        assert w.stop() == 0
    finally:
        if w is not None and w.proc.poll() is None:
            w.kill()


def test_file_source_without_a_file_reads_the_workers_standard_input(tmp_path):
    """FileStreamSource without `file` reads the worker process's standard
    input, as Kafka's: each line a record; a restarted task goes on with
    the next line (nothing repeated, nothing lost)."""
    import subprocess
    port = free_port()
    server = RunnelServer(runnel_bin(), tmp_path / "data", tmp_path / "runnel.log",
                          ["--no-sql", "--no-registry", "--connect-listen", f"127.0.0.1:{port}"])
    server.stdin = subprocess.PIPE
    server.start()
    try:
        c = Connect(server, port)
        c.wait_ready()
        topic = unique("stdin")
        r = c.http.post("/connectors", json={"name": "stdin-src", "config": {
            "connector.class": "FileStreamSource", "topic": topic, "value.converter": STRING}})
        assert r.status_code == 201, r.text
        c.wait_state("stdin-src", "RUNNING", "RUNNING")
        stdin = server.proc.stdin
        stdin.write(b"".join(f"in-{i}\n".encode() for i in range(5)))
        stdin.flush()
        got = consume_all(server.bootstrap, topic, 5)
        assert [m.value().decode() for m in got] == [f"in-{i}" for i in range(5)]
        r = c.http.post("/connectors/stdin-src/tasks/0/restart")
        assert r.status_code in (200, 202, 204), r.text
        c.wait_state("stdin-src", "RUNNING", "RUNNING")
        stdin.write(b"".join(f"in-{i}\n".encode() for i in range(5, 8)))
        stdin.flush()
        got = consume_all(server.bootstrap, topic, 8)
        assert [m.value().decode() for m in got] == [f"in-{i}" for i in range(8)]
    finally:
        server.stop()
