"""`runnel connect` on Apache Kafka, handing its topics to Apache Kafka
Connect and back: Kafka Connect reads the connectors, configs, task
configs and active topics Runnel's worker wrote, stops one connector
(in its own record format), and Runnel's worker, started again, sees it
stopped, resumes it where its stored offset says, and copies each line
once."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid

import httpx
import pytest

import kafka_cluster
from compat_util import wait_until
from conftest import free_port, runnel_bin

pytestmark = pytest.mark.kafka

STRING = "org.apache.kafka.connect.storage.StringConverter"


class Proc:
    def __init__(self, cmd: list[str], log_path, port: int):
        self.url = f"http://127.0.0.1:{port}"
        self._log = open(log_path, "ab")
        env = dict(os.environ, RUNNEL_LOG="info", NO_COLOR="1")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, env=env)
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def wait_ready(self, timeout: float = 90):
        def ready():
            assert self.proc.poll() is None, f"exited with {self.proc.returncode}"
            try:
                return self.http.get("/connectors").status_code == 200
            except httpx.HTTPError:
                return False
        wait_until(ready, timeout=timeout, what=f"the connect API at {self.url}")

    def stop(self) -> int | None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self._log.close()


def test_runnel_and_apache_kafka_connect_share_their_topics(kafka, tmp_path):
    tag = uuid.uuid4().hex[:8]
    group = f"connect-{tag}"
    props = {
        "group.id": group,
        "config.storage.topic": f"{group}-configs",
        "offset.storage.topic": f"{group}-offsets",
        "status.storage.topic": f"{group}-status",
    }
    topic = f"lines-{tag}"
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("".join(f"line-{i}\n" for i in range(20)))

    def runnel():
        port = free_port()
        cmd = [str(runnel_bin()), "connect", "-b", kafka.bootstrap,
               "--connect-listen", f"127.0.0.1:{port}"]
        for k, v in props.items():
            cmd += ["--connect-property", f"{k}={v}"]
        p = Proc(cmd, tmp_path / "runnel-connect.log", port)
        p.wait_ready()
        return p

    w = runnel()
    try:
        r = w.http.post("/connectors", json={"name": "src", "config": {
            "connector.class": "FileStreamSource", "file": str(src), "topic": topic,
            "value.converter": STRING}})
        assert r.status_code == 201, r.text
        r = w.http.post("/connectors", json={"name": "sink", "config": {
            "connector.class": "FileStreamSink", "file": str(out), "topics": topic,
            "value.converter": STRING}})
        assert r.status_code == 201, r.text
        wait_until(lambda: out.exists() and len(out.read_text().splitlines()) >= 20,
                   timeout=60, what="the sink file")
        wait_until(lambda: w.http.get("/connectors/src/offsets").json()["offsets"],
                   timeout=30, what="stored offsets")
    finally:
        assert w.stop() == 0

    # Apache Kafka Connect on the same topics.
    kport = free_port()
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    worker_props = tmp_path / "worker.properties"
    worker_props.write_text("\n".join([
        f"bootstrap.servers={kafka.bootstrap}",
        *(f"{k}={v}" for k, v in props.items()),
        "key.converter=org.apache.kafka.connect.json.JsonConverter",
        "value.converter=org.apache.kafka.connect.json.JsonConverter",
        f"listeners=http://127.0.0.1:{kport}",
        f"plugin.path={plugins}",
    ]) + "\n")
    k = Proc(kafka_cluster.java("org.apache.kafka.connect.cli.ConnectDistributed", str(worker_props)),
             tmp_path / "kafka-connect.log", kport)
    try:
        k.wait_ready()
        wait_until(lambda: sorted(k.http.get("/connectors").json()) == ["sink", "src"],
                   timeout=60, what="Kafka Connect to read the connectors")
        cfg = k.http.get("/connectors/src/config").json()
        assert cfg["file"] == str(src) and cfg["topic"] == topic and cfg["name"] == "src"
        tasks = k.http.get("/connectors/sink/tasks").json()
        assert tasks[0]["id"] == {"connector": "sink", "task": 0}
        assert tasks[0]["config"]["topics"] == topic
        assert k.http.get("/connectors/src/topics").json() == {"src": {"topics": [topic]}}
        # Kafka Connect has no FileStream plugin here: its status says so,
        # which shows it read the class from Runnel's records.
        r = k.http.put("/connectors/src/stop")
        assert r.status_code in (202, 204), r.text
        wait_until(lambda: k.http.get("/connectors/src/tasks").json() == [],
                   timeout=30, what="Kafka Connect to stop src")
    finally:
        k.stop()

    with src.open("a") as f:
        f.write("".join(f"line-{i}\n" for i in range(20, 25)))
    w = runnel()
    try:
        st = w.http.get("/connectors/src/status").json()
        assert st["connector"]["state"] == "STOPPED" and st["tasks"] == [], st
        assert w.http.put("/connectors/src/resume").status_code == 202
        wait_until(lambda: len(out.read_text().splitlines()) >= 25, timeout=60,
                   what="the appended lines")
        assert out.read_text().splitlines() == [f"line-{i}" for i in range(25)]
    finally:
        assert w.stop() == 0
