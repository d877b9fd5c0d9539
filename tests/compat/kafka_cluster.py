#!/usr/bin/env python3
"""Apache Kafka as a test peer: fetch its jars, run a KRaft cluster on loopback.

Standard library only, so that `scripts/kafka.sh` (a thin wrapper around
this file's command line) works before any virtualenv exists; the compat
suite imports it for its session fixtures (conftest.py).

- The Kafka version is set in one place: `scripts/kafka/pom.xml`
  (`kafka.version`). `fetch()` runs Maven on that pom to copy every jar
  (broker, tools, clients, Kafka Streams, slf4j-simple) into
  `~/.cache/runnel/kafka-<version>/libs` (`$RUNNEL_KAFKA_CACHE` overrides
  the cache root), once; later calls only check a marker file.
- `KafkaCluster(dir, nodes).start()` formats and starts 1 or 3 combined
  broker+controller nodes on free loopback ports, then waits until the
  cluster is really usable (`scripts/kafka/KafkaReady.java`: every broker
  in the metadata, a topic replicated to all of them with full ISRs, an
  acks=all write to each partition). On 3 nodes internal topics and new
  topics get replication factor 3 and min.insync.replicas=2.
  `kill_node(i)` (SIGKILL) and `start_node(i)` restart one node on its own
  ports and data.
- The cluster's state (ports, pids) lives in `<dir>/cluster.json`, so a
  cluster started by one process (`scripts/kafka.sh start`) can be stopped
  by another (`scripts/kafka.sh stop`).

Anything that cannot be had (no java, no mvn, Maven Central unreachable)
raises `KafkaUnavailable` with the reason.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_DIR = REPO_ROOT / "scripts" / "kafka"
POM = KAFKA_DIR / "pom.xml"
READY_SOURCE = KAFKA_DIR / "KafkaReady.java"

# JVM options for every Java process started here. C1 only: on a 2-core
# machine the C2 compiler's warm-up costs more than it gains in a test.
JVM_QUICK = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xshare:auto", "-Djava.awt.headless=true"]
BROKER_HEAP = ["-Xms256m", "-Xmx1g"]
NODE_START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


class KafkaUnavailable(RuntimeError):
    """Kafka's jars, java or Maven cannot be had on this machine."""


# ----------------------------------------------------------------------------
# Version, cache, jars
# ----------------------------------------------------------------------------


def _pom_property(name: str) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(POM).getroot().find(f"m:properties/m:{name}", ns)
    if node is None or not (node.text or "").strip():
        raise RuntimeError(f"{POM} has no <{name}> property")
    return node.text.strip()


def kafka_version() -> str:
    return _pom_property("kafka.version")


def cache_dir() -> Path:
    root = os.environ.get("RUNNEL_KAFKA_CACHE")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "runnel"
    return base / f"kafka-{kafka_version()}"


def libs_dir() -> Path:
    return cache_dir() / "libs"


def classpath(*extra: Path) -> str:
    return os.pathsep.join([*(str(p) for p in extra), str(libs_dir() / "*")])


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise KafkaUnavailable(
            f"`{name}` is not installed; Kafka's tests need a JDK 17 and Maven "
            "(./scripts/test.sh installs them with apt on Debian)"
        )
    return path


def fetch(log=None) -> Path:
    """Copies Kafka's jars into the cache once; returns the libs folder."""
    return maven_fetch(POM, libs_dir(), "kafka_2.13-", f"Apache Kafka {kafka_version()}", log=log)


def maven_fetch(pom: Path, libs: Path, must_have: str, what: str,
                defines: dict[str, str] | None = None, log=None) -> Path:
    """Copies every jar `pom` depends on into `libs` once (a `.complete`
    marker says it is whole); returns `libs`. `must_have`: the file name
    prefix of a jar that must be among them; `defines`: -D properties that
    override the pom's."""
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = _tool("mvn")
    _tool("java")
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    cmd = [
        mvn, "-q", "-B", "-f", str(pom),
        *(f"-D{k}={v}" for k, v in (defines or {}).items()),
        "dependency:copy-dependencies", f"-DoutputDirectory={staging}",
    ]
    if log:
        log(f"fetching {what} with Maven into {libs}")
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        shutil.rmtree(staging, ignore_errors=True)
        raise KafkaUnavailable(f"Maven did not finish fetching {what}'s jars in 15 min: {' '.join(cmd)}")
    jars = sorted(p.name for p in staging.glob("*.jar"))
    if proc.returncode != 0 or not any(j.startswith(must_have) for j in jars):
        shutil.rmtree(staging, ignore_errors=True)
        out = (proc.stdout + proc.stderr).strip().splitlines()
        raise KafkaUnavailable(
            f"Maven could not fetch {what} (exit {proc.returncode}): "
            + " | ".join(out[-15:])
        )
    (staging / ".complete").write_text("\n".join(jars) + "\n")
    if marker.exists():
        shutil.rmtree(staging)  # another process finished first: keep its copy
        return libs
    if libs.exists():
        shutil.rmtree(libs)  # an interrupted fetch's leftovers (no marker)
    try:
        staging.rename(libs)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not marker.exists():
            raise
    return libs


def compile_java(sources: list[Path], name: str, cp: str | None = None) -> Path:
    """javac the sources into a cache folder keyed by their content; returns it.

    Class files never go into the repository: they live beside the jars.
    """
    fetch()
    digest = hashlib.sha256()
    for src in sorted(sources):
        digest.update(src.name.encode() + b"\0" + src.read_bytes())
    out = cache_dir() / "classes" / f"{name}-{digest.hexdigest()[:16]}"
    if (out / ".complete").exists():
        return out
    javac = _tool("javac")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=out.parent))
    proc = subprocess.run(
        [javac, "-Xlint:all", "-Werror", "-cp", cp or classpath(), "-d", str(staging), *map(str, sources)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"javac failed for {name}:\n{proc.stdout}{proc.stderr}")
    (staging / ".complete").write_text("")
    if out.exists():
        shutil.rmtree(staging)  # another process got there first
    else:
        staging.rename(out)
    return out


def java(main: str, *args: str, cp: str | None = None, heap: list[str] | None = None,
         props: dict[str, str] | None = None, jvm: list[str] | None = None) -> list[str]:
    """The command line that runs `main` on Kafka's jars (plus `cp` in front).

    Logging goes through slf4j-simple, warnings and errors only unless
    `props` says otherwise. `jvm` replaces the quick-start JVM options
    (JVM_QUICK) and the heap: a benchmark wants the JVM's own defaults.
    """
    sysprops = {"org.slf4j.simpleLogger.defaultLogLevel": "warn", **(props or {})}
    vm = jvm if jvm is not None else [*JVM_QUICK, *(heap or ["-Xmx512m"])]
    return [
        _tool("java"), *vm,
        *(f"-D{k}={v}" for k, v in sysprops.items()),
        "-cp", cp or classpath(), main, *args,
    ]


# ----------------------------------------------------------------------------
# Ports
# ----------------------------------------------------------------------------


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int) -> list[int]:
    """Free loopback ports below the ephemeral range.

    Below it, no client connection can be handed one of them as its local
    port, so a node restarted after a SIGKILL finds its port still free.
    """
    high = _ephemeral_low()
    low = max(1024, high - 12000)
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            port = random.randrange(low, high)
            if port in ports:
                continue
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
            ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


# ----------------------------------------------------------------------------
# The cluster
# ----------------------------------------------------------------------------


def _pid_alive(pid: int, marker: str) -> bool:
    """True while `pid` is the Java process started for `marker` (its config path)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (OSError, IndexError):
        state = "?"
    return marker in cmdline and state != "Z"


class KafkaCluster:
    """A KRaft cluster of combined broker+controller nodes under `root`."""

    def __init__(self, root: Path, nodes: int = 1, jvm: list[str] | None = None):
        """`jvm`: the brokers' JVM options instead of the quick-start ones
        (JVM_QUICK, BROKER_HEAP), e.g. Kafka's own for a benchmark."""
        if nodes not in (1, 3):
            raise ValueError("a fixture cluster has 1 or 3 nodes")
        self.root = Path(root).resolve()
        self.nodes = nodes
        self.jvm = jvm
        self.cluster_id = ""
        self.broker_ports: list[int] = []
        self.controller_ports: list[int] = []
        self.pids: dict[int, int] = {}
        self.stopped = False
        self._children: dict[int, subprocess.Popen] = {}

    # --- state shared between processes ---------------------------------

    @property
    def state_file(self) -> Path:
        return self.root / "cluster.json"

    def _save(self) -> None:
        self.state_file.write_text(json.dumps({
            "version": kafka_version(),
            "nodes": self.nodes,
            "cluster_id": self.cluster_id,
            "broker_ports": self.broker_ports,
            "controller_ports": self.controller_ports,
            "pids": {str(k): v for k, v in self.pids.items()},
            "bootstrap": self.bootstrap,
        }, indent=2) + "\n")

    @classmethod
    def load(cls, root: Path) -> "KafkaCluster":
        root = Path(root).resolve()
        try:
            state = json.loads((root / "cluster.json").read_text())
        except OSError as e:
            raise RuntimeError(f"no Kafka fixture cluster in {root}: {e}") from None
        c = cls(root, state["nodes"])
        c.cluster_id = state["cluster_id"]
        c.broker_ports = state["broker_ports"]
        c.controller_ports = state["controller_ports"]
        c.pids = {int(k): v for k, v in state["pids"].items()}
        return c

    # --- addresses and files --------------------------------------------

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.broker_ports)

    def node_bootstrap(self, node: int) -> str:
        return f"127.0.0.1:{self.broker_ports[node - 1]}"

    def node_dir(self, node: int) -> Path:
        return self.root / f"node-{node}"

    def config_path(self, node: int) -> Path:
        return self.node_dir(node) / "server.properties"

    def log_path(self, node: int) -> Path:
        return self.node_dir(node) / "server.log"

    def _properties(self, node: int) -> str:
        n = self.nodes
        rf = 3 if n == 3 else 1
        isr = 2 if n == 3 else 1
        voters = ",".join(f"{i}@127.0.0.1:{self.controller_ports[i - 1]}" for i in range(1, n + 1))
        b, c = self.broker_ports[node - 1], self.controller_ports[node - 1]
        props = {
            "process.roles": "broker,controller",
            "node.id": node,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{b},CONTROLLER://127.0.0.1:{c}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{b}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": self.node_dir(node) / "data",
            "num.partitions": 1,
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "transaction.state.log.num.partitions": 10,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": isr,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "true",
            "unclean.leader.election.enable": "false",
            # A dead follower leaves the ISRs after 10 s instead of 30 s, so
            # acks=all writes resume sooner in the fault tests.
            "replica.lag.time.max.ms": 10000,
            # Tests write in bursts: keep the broker's own threads few.
            "num.network.threads": 2,
            "num.io.threads": 4,
            "log.flush.interval.messages": 9223372036854775807,
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    # --- lifecycle -------------------------------------------------------

    def start(self, timeout: float = NODE_START_TIMEOUT_S) -> "KafkaCluster":
        fetch()
        ready_classes = compile_java([READY_SOURCE], "kafka-ready")
        self.root.mkdir(parents=True, exist_ok=True)
        if self.state_file.exists():
            raise RuntimeError(f"{self.root} already holds a cluster (scripts/kafka.sh stop --dir {self.root})")
        ports = free_ports(2 * self.nodes)
        self.broker_ports, self.controller_ports = ports[: self.nodes], ports[self.nodes:]
        self.cluster_id = self._random_cluster_id()
        for node in range(1, self.nodes + 1):
            self.node_dir(node).mkdir(parents=True, exist_ok=True)
            self.config_path(node).write_text(self._properties(node))
            self._format(node)
        self._save()
        try:
            for node in range(1, self.nodes + 1):
                self._spawn(node)
            self._save()
            self.wait_ready(timeout, ready_classes)
        except BaseException:
            self.stop()
            raise
        return self

    def _random_cluster_id(self) -> str:
        # A KRaft cluster id is a base64url-encoded UUID without padding,
        # what `kafka-storage random-uuid` prints. Like Kafka's own
        # Uuid.randomUuid, never one starting with '-': the storage tool
        # would read it as an option (1 start in 64 failed that way).
        while True:
            cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            if not cid.startswith("-"):
                return cid

    def _format(self, node: int) -> None:
        proc = subprocess.run(
            java("kafka.tools.StorageTool", "format", f"--cluster-id={self.cluster_id}", "-c",
                 str(self.config_path(node))),
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"formatting node {node} failed:\n{proc.stdout}{proc.stderr}")

    def _spawn(self, node: int) -> None:
        log = open(self.log_path(node), "ab")
        log.write(f"\n===== starting node {node} at {time.strftime('%H:%M:%S')}\n".encode())
        log.flush()
        cmd = java("kafka.Kafka", str(self.config_path(node)), heap=BROKER_HEAP, jvm=self.jvm, props={
            "org.slf4j.simpleLogger.defaultLogLevel": "info",
            "org.slf4j.simpleLogger.showDateTime": "true",
            "org.slf4j.simpleLogger.dateTimeFormat": "HH:mm:ss.SSS",
        })
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        self._children[node] = proc
        self.pids[node] = proc.pid

    def alive(self, node: int) -> bool:
        child = self._children.get(node)
        if child is not None:
            return child.poll() is None
        pid = self.pids.get(node)
        return pid is not None and _pid_alive(pid, str(self.config_path(node)))

    def wait_ready(self, timeout: float = NODE_START_TIMEOUT_S, ready_classes: Path | None = None) -> None:
        """Blocks until every node serves: see KafkaReady.java."""
        ready_classes = ready_classes or compile_java([READY_SOURCE], "kafka-ready")
        dead = [n for n in range(1, self.nodes + 1) if not self.alive(n)]
        if dead:
            raise RuntimeError(self._failure(f"node(s) {dead} exited during start"))
        proc = subprocess.Popen(
            java("KafkaReady", self.bootstrap, str(self.nodes), str(int(timeout * 1000)),
                 cp=classpath(ready_classes), props={"org.slf4j.simpleLogger.defaultLogLevel": "error"}),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        # While the checker waits, a node that dies makes the wait pointless.
        deadline = time.monotonic() + timeout + 30
        while proc.poll() is None:
            dead = [n for n in range(1, self.nodes + 1) if not self.alive(n)]
            if dead or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                why = f"node(s) {dead} exited during start" if dead else "readiness check hung"
                raise RuntimeError(self._failure(why))
            time.sleep(0.2)
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(self._failure(f"cluster not ready: {err.strip() or out.strip()}"))

    def _failure(self, why: str) -> str:
        tails = []
        for n in range(1, self.nodes + 1):
            try:
                lines = self.log_path(n).read_text(errors="replace").splitlines()[-25:]
            except OSError:
                lines = ["(no log)"]
            tails.append(f"--- node {n} ({self.log_path(n)}):\n" + "\n".join(lines))
        return why + "\n" + "\n".join(tails)

    def kill_node(self, node: int) -> None:
        """SIGKILL one node (a crash); its data stays for start_node()."""
        self._signal(node, signal.SIGKILL)
        self._reap(node, STOP_TIMEOUT_S)

    def start_node(self, node: int, timeout: float = NODE_START_TIMEOUT_S) -> None:
        """Restart a stopped or killed node and wait until the cluster is whole again."""
        if self.alive(node):
            raise RuntimeError(f"node {node} is still running")
        self._spawn(node)
        self._save()
        self.wait_ready(timeout)

    def stop(self) -> dict[int, str]:
        """SIGTERM every node, SIGKILL those still running after STOP_TIMEOUT_S.

        Returns how each node ended ("exited 0", "killed", ...).
        """
        self.stopped = True
        running = [n for n in range(1, self.nodes + 1) if self.alive(n)]
        for n in running:
            self._signal(n, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        ended: dict[int, str] = {}
        for n in running:
            ended[n] = self._reap(n, max(0.1, deadline - time.monotonic()))
        if self.state_file.exists():
            self.state_file.unlink()
        return ended

    def _signal(self, node: int, sig: int) -> None:
        pid = self.pids.get(node)
        if pid is not None and self.alive(node):
            os.kill(pid, sig)

    def _reap(self, node: int, timeout: float) -> str:
        child = self._children.get(node)
        deadline = time.monotonic() + timeout
        while self.alive(node) and time.monotonic() < deadline:
            if child is not None:
                try:
                    child.wait(timeout=0.1)
                except subprocess.TimeoutExpired:
                    pass
            else:
                time.sleep(0.1)
        how = "exited"
        if self.alive(node):
            os.kill(self.pids[node], signal.SIGKILL)
            how = "killed after timeout"
            if child is not None:
                child.wait()
            else:
                while self.alive(node):
                    time.sleep(0.05)
        if child is not None:
            child.wait()
            code = child.returncode
            how = f"{how} ({'signal ' + str(-code) if code < 0 else 'code ' + str(code)})"
            del self._children[node]
        return how


# ----------------------------------------------------------------------------
# Command line (scripts/kafka.sh)
# ----------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="scripts/kafka.sh", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("version", help="print the Apache Kafka version the tests use")
    sub.add_parser("fetch", help="fetch the jars into the cache (once) and print the folder")
    sub.add_parser("fetch-connect", help="fetch Kafka Connect's and Debezium's PostgreSQL connector's jars "
                   "(scripts/connect/pom.xml) into the cache (once) and print the folder")
    sub.add_parser("classpath", help="print a java -cp value for Kafka's jars")
    p = sub.add_parser("start", help="start a cluster, wait until ready, print its bootstrap servers")
    p.add_argument("--nodes", type=int, choices=(1, 3), default=1)
    p.add_argument("--dir", type=Path, required=True)
    p = sub.add_parser("stop", help="stop the cluster in --dir (SIGTERM, then SIGKILL)")
    p.add_argument("--dir", type=Path, required=True)
    p = sub.add_parser("kill", help="SIGKILL one node")
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--node", type=int, required=True)
    p = sub.add_parser("restart", help="start a killed or stopped node again and wait until ready")
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--node", type=int, required=True)
    p = sub.add_parser("status", help="print the bootstrap servers and which nodes run")
    p.add_argument("--dir", type=Path, required=True)
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    try:
        if args.cmd == "version":
            print(kafka_version())
        elif args.cmd == "fetch":
            print(fetch(log))
        elif args.cmd == "fetch-connect":
            import connect_reference  # beside this file; imports this module

            fetch(log)
            print(connect_reference.fetch_connect(log))
        elif args.cmd == "classpath":
            fetch(log)
            print(classpath())
        elif args.cmd == "start":
            fetch(log)
            t0 = time.monotonic()
            c = KafkaCluster(args.dir, args.nodes).start()
            log(f"Apache Kafka {kafka_version()}: {args.nodes} node(s) ready in {time.monotonic() - t0:.1f}s, "
                f"logs in {args.dir}/node-*/server.log")
            print(c.bootstrap)
        elif args.cmd == "stop":
            c = KafkaCluster.load(args.dir)
            for node, how in c.stop().items():
                log(f"node {node}: {how}")
        elif args.cmd == "kill":
            c = KafkaCluster.load(args.dir)
            c.kill_node(args.node)
            c._save()
        elif args.cmd == "restart":
            c = KafkaCluster.load(args.dir)
            c.start_node(args.node)
            log(f"node {args.node} back, cluster ready")
        elif args.cmd == "status":
            c = KafkaCluster.load(args.dir)
            print(c.bootstrap)
            for n in range(1, c.nodes + 1):
                log(f"node {n}: {'running' if c.alive(n) else 'down'} on {c.node_bootstrap(n)}")
    except KafkaUnavailable as e:
        log(f"error: {e}")
        return 3
    except RuntimeError as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
