"""Fixtures for the third-party client compatibility suite.

One `runnel serve` process is started for the whole session (on a free
loopback port, with a temporary data dir and `--flush-messages 1`) and
stopped with SIGTERM at the end; the teardown fails the run unless the
broker exits 0. Tests that need their own broker (restart/durability) use
`RunnelServer` directly.

The binary comes from $RUNNEL_BIN (default: target/debug/runnel under the
repository root). It is never built here: build it first (scripts/test.sh
does `cargo build -p runnel`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import connect_reference
import kafka_cluster

REPO_ROOT = Path(__file__).resolve().parents[2]

# How long the broker gets to open its port and to exit after SIGTERM.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def runnel_bin() -> Path:
    raw = os.environ.get("RUNNEL_BIN", "target/debug/runnel")
    path = Path(raw)
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class RunnelServer:
    """One `runnel serve` process on its own port and data dir."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, extra_args=()):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def bootstrap(self) -> str:
        assert self.port is not None, "server not started"
        return f"127.0.0.1:{self.port}"

    def start(self, port: int | None = None) -> "RunnelServer":
        """Starts it on `port` (a restart on the port clients know) or a free one."""
        if not self.binary.exists():
            raise FileNotFoundError(
                f"runnel binary not found at {self.binary}; build it with "
                "`cargo build -p runnel` or point RUNNEL_BIN at it"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        addr = f"127.0.0.1:{self.port}"
        cmd = [
            str(self.binary),
            "serve",
            "--data-dir", str(self.data_dir),
            "--listen", addr,
            "--advertised-listener", addr,
            "--flush-messages", "1",
            *self.extra_args,
        ]
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n===== {' '.join(cmd)}\n".encode())
        self._log.flush()
        env = dict(os.environ)
        env.setdefault("RUNNEL_LOG", "info")
        env.setdefault("NO_COLOR", "1")  # plain text in the log files
        self.proc = subprocess.Popen(
            cmd,
            stdin=getattr(self, "stdin", subprocess.DEVNULL),  # a test may set server.stdin = PIPE
            stdout=self._log,
            stderr=self._log,
            env=env,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"runnel serve exited with {code} before listening; log:\n{tail(self.log_path)}"
                )
            if port_open(self.port):
                return self
            time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError(
            f"runnel serve did not open {addr} within {START_TIMEOUT_S}s; log:\n{tail(self.log_path)}"
        )

    def kill(self) -> int:
        """SIGKILL the broker (a crash) and return its exit code."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def stop(self) -> int:
        """SIGTERM the broker and return its exit code (kills it after a timeout)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                if self._log:
                    self._log.close()
                raise AssertionError(
                    f"runnel serve did not exit within {STOP_TIMEOUT_S}s of SIGTERM; log:\n"
                    f"{tail(self.log_path)}"
                )
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode


def start_registry_server(base: Path, extra_args=()) -> RunnelServer:
    """`runnel serve` with its schema registry on a free port (`.registry` is
    its URL) and no SQL engine, returned once the registry answers."""
    import httpx

    port = free_port()
    server = RunnelServer(runnel_bin(), base / "data", base / "runnel.log",
                          ["--registry-listen", f"127.0.0.1:{port}", "--no-sql", *extra_args]).start()
    server.registry = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if httpx.get(f"{server.registry}/subjects", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"no schema registry at {server.registry}; log:\n{tail(server.log_path)}")
        time.sleep(0.05)


_SESSION_SERVER: RunnelServer | None = None


@pytest.fixture(scope="session")
def runnel_server(tmp_path_factory) -> RunnelServer:
    global _SESSION_SERVER
    base = tmp_path_factory.mktemp("runnel-session")
    server = RunnelServer(runnel_bin(), base / "data", base / "runnel.log")
    server.start()
    _SESSION_SERVER = server
    yield server
    _SESSION_SERVER = None
    code = server.stop()
    assert code == 0, (
        f"runnel serve exited with {code} after SIGTERM (expected 0); log:\n{tail(server.log_path)}"
    )


@pytest.fixture(scope="session")
def bootstrap(runnel_server) -> str:
    """host:port of the session broker."""
    return runnel_server.bootstrap


@pytest.fixture
def make_server(tmp_path):
    """Factory for private brokers; every one still running at teardown is stopped."""
    servers: list[RunnelServer] = []

    def make(data_dir: Path | None = None, extra_args=()) -> RunnelServer:
        d = data_dir or (tmp_path / f"data-{len(servers)}")
        s = RunnelServer(runnel_bin(), d, tmp_path / "runnel-private.log", extra_args)
        servers.append(s)
        return s

    yield make
    for s in servers:
        if s.proc is not None and s.proc.poll() is None:
            s.stop()


@pytest.fixture
def topic(request) -> str:
    """A topic name unique to this test (and this run)."""
    base = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name).strip("-")
    return f"{base[:80]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def unique_name(request):
    """Makes further unique topic names for tests that need more than one."""
    base = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name).strip("-")[:60]

    def make(suffix: str = "") -> str:
        return f"{base}{'-' + suffix if suffix else ''}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture(scope="session")
def kcat_bin() -> str:
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        pytest.fail("kcat is not installed (apt-get install kcat); .ci/run installs it")
    return path


# ----------------------------------------------------------------------------
# Apache Kafka as a peer (kafka_cluster.py, scripts/kafka.sh)
# ----------------------------------------------------------------------------

SKIP_KAFKA_FLAG = "RUNNEL_SKIP_KAFKA"


def kafka_unavailable(reason: str):
    """Fails (CI, or no flag) or skips (RUNNEL_SKIP_KAFKA=1, locally) a test that needs Kafka.

    A CI run that silently skipped the Kafka tests would hide a regression,
    so CI=true always fails, whatever the flag says.
    """
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}\nCI=true: the tests that need Apache Kafka cannot be skipped", pytrace=False)
    if os.environ.get(SKIP_KAFKA_FLAG) == "1":
        pytest.skip(f"{SKIP_KAFKA_FLAG}=1 and {reason}")
    pytest.fail(
        f"{reason}\nLocally, {SKIP_KAFKA_FLAG}=1 skips the tests that need Apache Kafka.", pytrace=False
    )


@pytest.fixture(scope="session")
def kafka_libs() -> Path:
    """The folder of Apache Kafka's jars (fetched with Maven once per machine)."""
    try:
        return kafka_cluster.fetch()
    except kafka_cluster.KafkaUnavailable as e:
        kafka_unavailable(f"Apache Kafka {kafka_cluster.kafka_version()} cannot be had: {e}")


_SESSION_KAFKA: kafka_cluster.KafkaCluster | None = None


@pytest.fixture(scope="session")
def kafka(kafka_libs, tmp_path_factory) -> kafka_cluster.KafkaCluster:
    """One 3-node Apache Kafka cluster for the whole run; tests name their own topics."""
    global _SESSION_KAFKA
    cluster = kafka_cluster.KafkaCluster(tmp_path_factory.mktemp("kafka"), nodes=3)
    cluster.start()
    _SESSION_KAFKA = cluster
    yield cluster
    _SESSION_KAFKA = None
    cluster.stop()


@pytest.fixture
def peer(request):
    """(name, bootstrap) of Runnel's session broker or of the Kafka cluster,
    for tests parametrized over both (`indirect=True`) that run the same
    checks on each."""
    if request.param == "runnel":
        return "runnel", request.getfixturevalue("bootstrap")
    cluster = request.getfixturevalue("kafka")
    assert not cluster.stopped, "the session's Kafka cluster was stopped before this test"
    return "kafka", cluster.bootstrap


@pytest.fixture(scope="session")
def unstable_apps_classes(kafka_libs) -> Path:
    """The talk's slide-8 topology as a Kafka Streams application (java/UnstableApps.java)."""
    return kafka_cluster.compile_java([Path(__file__).resolve().parent / "java" / "UnstableApps.java"],
                                      "unstable-apps")


# ----------------------------------------------------------------------------
# Kafka Connect with Debezium's PostgreSQL connector, the reference
# (connect_reference.py, scripts/connect/pom.xml)
# ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def connect_libs(kafka_libs) -> Path:
    """The cache folder of Kafka Connect's and Debezium's jars (fetched with Maven once per machine)."""
    try:
        return connect_reference.fetch_connect()
    except kafka_cluster.KafkaUnavailable as e:
        kafka_unavailable(f"Kafka Connect and Debezium {connect_reference.debezium_version()} cannot be had: {e}")


_CONNECT_WORKERS: list[connect_reference.ConnectWorker] = []


@pytest.fixture
def connect_worker(connect_libs, tmp_path):
    """Factory: Apache Kafka's Connect worker (distributed mode, Debezium's
    PostgreSQL connector on its plugin.path) on the cluster at `bootstrap`;
    every worker started is stopped at teardown, and a failing test's report
    carries the tail of their logs."""
    workers: list[connect_reference.ConnectWorker] = []

    def make(bootstrap: str, replication_factor: int = 1) -> connect_reference.ConnectWorker:
        w = connect_reference.ConnectWorker(tmp_path / f"connect-{len(workers)}", bootstrap, replication_factor)
        workers.append(w)
        _CONNECT_WORKERS.append(w)
        return w.start()

    yield make
    for w in workers:
        w.stop()
        _CONNECT_WORKERS.remove(w)


_LAST_KAFKA_TEST: str | None = None


def uses_kafka_cluster(item) -> bool:
    """True for a test that takes the `kafka` fixture, directly or through an
    indirect parameter whose value is "kafka" (the broker-choosing `peer`
    fixture of test_kafka_tools.py asks for the cluster at run time)."""
    if "kafka" in getattr(item, "fixturenames", ()):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "kafka" in callspec.params.values()


def pytest_collection_finish(session):
    """Notes the last selected test that uses the Kafka cluster, to stop it after that one."""
    global _LAST_KAFKA_TEST
    users = [item.nodeid for item in session.items if uses_kafka_cluster(item)]
    _LAST_KAFKA_TEST = users[-1] if users else None


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    # Three idle JVMs would otherwise share the 2 cores with every test after
    # the last one that needs them. The fixture's own finalizer stops what is
    # left (nothing, then) at the end of the session.
    if item.nodeid == _LAST_KAFKA_TEST and _SESSION_KAFKA is not None:
        _SESSION_KAFKA.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of the broker logs to every failing test's report."""
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    if _SESSION_SERVER is not None and "bootstrap" in item.fixturenames:
        rep.sections.append(("runnel serve log (tail)", tail(_SESSION_SERVER.log_path, 40)))
    for w in _CONNECT_WORKERS:
        rep.sections.append((f"kafka connect worker log (tail) {w.log_path}", w.tail(40)))
    if _SESSION_KAFKA is not None and uses_kafka_cluster(item):
        for n in range(1, _SESSION_KAFKA.nodes + 1):
            rep.sections.append((f"kafka node {n} log (tail)", tail(_SESSION_KAFKA.log_path(n), 30)))


def pytest_report_header(config):
    return [f"runnel binary: {runnel_bin()}", f"apache kafka: {kafka_cluster.kafka_version()} ({kafka_cluster.libs_dir()})"]


# ----------------------------------------------------------------------------
# PostgreSQL (scripts/postgres.sh): the real database of the connector tests
# ----------------------------------------------------------------------------


class Postgres:
    """A PostgreSQL server reached with `psql`; `url` names its `postgres` database."""

    def __init__(self, url: str):
        self.url = url
        m = re.match(r"postgres(?:ql)?://([^@/]+)@([^:/]+):(\d+)/(\w+)", url)
        assert m, f"unexpected PostgreSQL URL {url}"
        self.user, self.host, self.port = m.group(1), m.group(2), int(m.group(3))

    def db_url(self, db: str) -> str:
        return f"postgres://{self.user}@{self.host}:{self.port}/{db}"

    def psql(self, sql: str, db: str = "postgres") -> str:
        """Runs `sql` with psql (stops at the first error) and returns its unaligned output."""
        r = subprocess.run(
            ["psql", self.db_url(db), "-v", "ON_ERROR_STOP=1", "-AtX", "-F", "|", "-c", sql],
            capture_output=True, text=True, timeout=60,
        )
        if r.returncode != 0:
            raise AssertionError(f"psql failed ({r.returncode}) on {sql!r}: {r.stderr}")
        return r.stdout

    def rows(self, sql: str, db: str) -> list[list[str]]:
        return [line.split("|") for line in self.psql(sql, db).splitlines() if line]


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    """The test command's PostgreSQL ($RUNNEL_TEST_POSTGRES_URL), else a private one
    started here with scripts/postgres.sh (left running for the next run)."""
    url = os.environ.get("RUNNEL_TEST_POSTGRES_URL")
    if not url:
        r = subprocess.run([str(REPO_ROOT / "scripts" / "postgres.sh"), "start"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            pytest.fail(f"cannot start PostgreSQL with scripts/postgres.sh: {r.stderr}", pytrace=False)
        url = r.stdout.strip().splitlines()[-1]
    return Postgres(url)


@pytest.fixture
def pg_database(postgres, request):
    """A database of this test's own; its replication slots and itself are dropped afterwards."""
    name = "t_" + re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:8]
    postgres.psql(f"CREATE DATABASE {name}")
    yield name
    postgres.psql(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
        f"WHERE database = '{name}' AND active_pid IS NOT NULL"
    )
    # A terminated walsender releases its slot when its process has gone.
    deadline = time.monotonic() + 30
    while postgres.psql(f"SELECT count(*) FROM pg_replication_slots WHERE database = '{name}' AND active").strip() != "0":
        assert time.monotonic() < deadline, f"replication slots of {name} still active"
        time.sleep(0.1)
    postgres.psql(f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{name}'")
    postgres.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
