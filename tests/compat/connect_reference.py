#!/usr/bin/env python3
"""Kafka Connect and Debezium's PostgreSQL connector as the reference.

Standard library only (like kafka_cluster.py, whose cache and Maven
conventions it shares), so `scripts/kafka.sh fetch-connect` works before
any virtualenv exists.

- Versions: Kafka's from `scripts/kafka/pom.xml`, Debezium's from
  `scripts/connect/pom.xml` (`debezium.version`), each set once.
- `fetch_connect()` copies the worker's jars (connect-runtime, connect-json,
  connect-transforms, slf4j-simple and their dependencies) into
  `~/.cache/runnel/connect-<kafka>-debezium-<debezium>/libs`, and the
  PostgreSQL connector with its own dependencies into
  `.../plugins/debezium-connector-postgres`: `.../plugins` is the worker's
  `plugin.path`, so the connector loads in isolation as it does in a real
  deployment. Once; later calls only check a marker file.
- `ConnectWorker(dir, bootstrap, rf).start()` runs one distributed worker
  (`org.apache.kafka.connect.cli.ConnectDistributed`) on free ports,
  waits until its REST API lists the PostgreSQL connector plugin, and
  `stop()` ends it (SIGTERM, SIGKILL after a timeout). Debezium 3.6.1 calls
  `org.apache.kafka.common.utils.Sanitizer`, which Kafka 4.4.0's clients
  only have under `...utils.internals`: `java/connect-shim` bridges the
  two on the worker's class path (compiled at test time, beside the jars).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import kafka_cluster
from kafka_cluster import KafkaUnavailable

POM = kafka_cluster.REPO_ROOT / "scripts" / "connect" / "pom.xml"
SHIM_SOURCES = [kafka_cluster.REPO_ROOT / "tests" / "compat" / "java" / "connect-shim" / "org" / "apache" / "kafka"
                / "common" / "utils" / "Sanitizer.java"]
DEBEZIUM_PLUGIN = "debezium-connector-postgres"
DEBEZIUM_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
WORKER_START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


def debezium_version() -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(POM).getroot().find("m:properties/m:debezium.version", ns)
    if node is None or not (node.text or "").strip():
        raise RuntimeError(f"{POM} has no <debezium.version> property")
    return node.text.strip()


def cache_dir() -> Path:
    kafka = kafka_cluster.cache_dir()  # <root>/kafka-<version>
    return kafka.parent / f"connect-{kafka_cluster.kafka_version()}-debezium-{debezium_version()}"


def libs_dir() -> Path:
    return cache_dir() / "libs"


def plugin_path() -> Path:
    return cache_dir() / "plugins"


def _maven_copy(part: str, out: Path, *extra: str) -> list[str]:
    cmd = [
        kafka_cluster._tool("mvn"), "-q", "-B", "-f", str(POM), f"-Dconnect.part={part}",
        f"-Dkafka.version={kafka_cluster.kafka_version()}",
        "dependency:copy-dependencies", f"-DoutputDirectory={out}", *extra,
    ]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        raise KafkaUnavailable(f"Maven did not finish in 15 min: {' '.join(cmd)}") from None
    jars = sorted(p.name for p in out.glob("*.jar"))
    if proc.returncode != 0 or not jars:
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        raise KafkaUnavailable(f"Maven could not fetch {part} (exit {proc.returncode}): " + " | ".join(lines[-15:]))
    return jars


def fetch_connect(log=None) -> Path:
    """Copies the worker's and Debezium's jars into the cache once; returns the cache folder."""
    root = cache_dir()
    marker = root / ".complete"
    if marker.exists():
        return root
    kafka_cluster._tool("java")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="connect-", dir=root.parent))
    if log:
        log(f"fetching Kafka Connect {kafka_cluster.kafka_version()} and Debezium {debezium_version()} "
            f"with Maven into {root}")
    try:
        worker = _maven_copy("worker", staging / "libs")
        if not any(j.startswith("connect-runtime-") for j in worker):
            raise KafkaUnavailable(f"no connect-runtime among the fetched jars: {worker}")
        # Kafka's own jars and the logging API come from the worker's class
        # path, as in Debezium's plugin archive.
        plugin = _maven_copy("debezium", staging / "plugins" / DEBEZIUM_PLUGIN,
                             "-DexcludeGroupIds=org.apache.kafka,org.slf4j")
        if not any(j.startswith("debezium-connector-postgres-") for j in plugin):
            raise KafkaUnavailable(f"no debezium-connector-postgres among the fetched jars: {plugin}")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (staging / ".complete").write_text("\n".join(worker + ["--- plugin:"] + plugin) + "\n")
    if marker.exists():
        shutil.rmtree(staging)  # another process finished first
        return root
    if root.exists():
        shutil.rmtree(root)  # an interrupted fetch's leftovers (no marker)
    try:
        staging.rename(root)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not marker.exists():
            raise
    return root


# ----------------------------------------------------------------------------
# A distributed worker
# ----------------------------------------------------------------------------


class ConnectError(RuntimeError):
    def __init__(self, status: int, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def http(method: str, url: str, body=None, timeout: float = 30.0):
    """One JSON request; returns the decoded answer (None when empty), raises ConnectError on >= 400."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        raise ConnectError(e.code, parsed) from None
    return json.loads(raw) if raw.strip() else None


class ConnectRest:
    """The Kafka Connect REST API at `url` (Kafka's worker or Runnel's)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def plugins(self) -> list[dict]:
        return http("GET", f"{self.url}/connector-plugins")

    def create(self, name: str, config: dict) -> dict:
        return http("POST", f"{self.url}/connectors", {"name": name, "config": config})

    def status(self, name: str) -> dict:
        return http("GET", f"{self.url}/connectors/{name}/status")

    def delete(self, name: str) -> None:
        http("DELETE", f"{self.url}/connectors/{name}")

    def wait_running(self, name: str, timeout: float = 60.0, on_fail=None) -> dict:
        """Waits until the connector and all its tasks (at least one) run; a FAILED state fails at once."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.status(name)
            except ConnectError as e:
                if e.status != 404:
                    raise
                last = None
            if last:
                states = [last["connector"]["state"]] + [t["state"] for t in last.get("tasks", [])]
                if "FAILED" in states:
                    extra = on_fail() if on_fail else ""
                    raise AssertionError(f"connector {name} failed: {json.dumps(last, indent=2)}\n{extra}")
                if last.get("tasks") and all(s == "RUNNING" for s in states):
                    return last
            time.sleep(0.2)
        extra = on_fail() if on_fail else ""
        raise AssertionError(f"connector {name} not running within {timeout}s: {last}\n{extra}")


def _pid_alive(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


class ConnectWorker:
    """One Kafka Connect distributed worker (Apache Kafka's) under `root`."""

    def __init__(self, root: Path, bootstrap: str, replication_factor: int, group_id: str = "connect-reference"):
        self.root = Path(root).resolve()
        self.bootstrap = bootstrap
        self.replication_factor = replication_factor
        self.group_id = group_id
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "worker not started"
        return f"http://127.0.0.1:{self.port}"

    @property
    def rest(self) -> ConnectRest:
        return ConnectRest(self.url)

    @property
    def config_path(self) -> Path:
        return self.root / "worker.properties"

    @property
    def log_path(self) -> Path:
        return self.root / "worker.log"

    def properties(self) -> dict:
        rf = self.replication_factor
        g = self.group_id
        return {
            "bootstrap.servers": self.bootstrap,
            "group.id": g,
            "config.storage.topic": f"{g}-configs",
            "offset.storage.topic": f"{g}-offsets",
            "status.storage.topic": f"{g}-status",
            "config.storage.replication.factor": rf,
            "offset.storage.replication.factor": rf,
            "status.storage.replication.factor": rf,
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "true",
            "value.converter.schemas.enable": "true",
            "plugin.path": plugin_path(),
            "listeners": f"http://127.0.0.1:{self.port}",
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": self.port,
            "offset.flush.interval.ms": 1000,
            # Topics the source writes are created by the worker (Debezium's default).
            "topic.creation.enable": "true",
        }

    def start(self, timeout: float = WORKER_START_TIMEOUT_S) -> "ConnectWorker":
        fetch_connect()
        # Debezium 3.6 still calls a kafka-clients class that Kafka 4.4 moved:
        # a bridge of ours on the worker's class path (java/connect-shim).
        shim = kafka_cluster.compile_java(SHIM_SOURCES, "connect-shim", cp=f"{libs_dir() / '*'}")
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = kafka_cluster.free_ports(1)[0]
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        log = open(self.log_path, "ab")
        cmd = kafka_cluster.java(
            "org.apache.kafka.connect.cli.ConnectDistributed", str(self.config_path),
            cp=os.pathsep.join([str(shim), str(libs_dir() / "*")]), heap=["-Xms128m", "-Xmx768m"],
            props={
                "org.slf4j.simpleLogger.defaultLogLevel": "info",
                "org.slf4j.simpleLogger.showDateTime": "true",
                "org.slf4j.simpleLogger.dateTimeFormat": "HH:mm:ss.SSS",
                # The per-record noise of the clients' configs.
                "org.slf4j.simpleLogger.log.org.apache.kafka.clients": "warn",
                "org.slf4j.simpleLogger.log.org.apache.kafka.common.config": "warn",
            },
        )
        log.write(f"\n===== {' '.join(cmd)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Kafka Connect exited with {self.proc.returncode} during start\n{self.tail()}")
            try:
                plugins = self.rest.plugins()
                if any(p.get("class") == DEBEZIUM_CLASS for p in plugins):
                    return
                last = f"plugins: {[p.get('class') for p in plugins]}"
            except (OSError, ConnectError, ValueError) as e:
                last = repr(e)
            time.sleep(0.25)
        raise RuntimeError(f"Kafka Connect's REST API not ready within {timeout}s ({last})\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            text = ["(no log)"]
        return f"--- Kafka Connect worker log ({self.log_path}):\n" + "\n".join(text)

    def stop(self) -> str:
        if self.proc is None or self.proc.poll() is not None:
            return "not running"
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
            return f"exited {self.proc.returncode}"
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "killed after timeout"


if __name__ == "__main__":
    try:
        print(fetch_connect(lambda m: print(m, file=sys.stderr)))
    except KafkaUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
