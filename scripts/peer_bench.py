#!/usr/bin/env python3
"""runnel-streams against Kafka Streams on the talk's slide-8 topology (issue 20).

One command, on one machine, one thing at a time:

    .venv/bin/python scripts/peer_bench.py --events 10000000    # ~11.5M events

1. Fetches Kafka Streams (`scripts/kafka/streams-pom.xml`, version from
   --streams-version) and, for the Apache Kafka broker, Apache Kafka
   (`scripts/kafka/pom.xml`) with Maven into ~/.cache/runnel, and compiles
   `tests/compat/java/UnstableApps.java` (the same topology in Kafka
   Streams, whose output bytes equal runnel-streams') against that Kafka
   Streams.
2. For each broker (--brokers): Runnel's (`runnel serve`, its SQL engine,
   registry and connect worker off) and a 1-node Apache Kafka (KRaft, the
   JVM options of Kafka's start script), it writes the input with
   `runnel demo unstable-apps generate` (deterministic: every broker gets
   the same records in the same partitions), then, for each guarantee
   (--guarantees), runs runnel-streams (`runnel demo unstable-apps run`)
   and then Kafka Streams on it, one after the other, each a fresh
   application (group) reading the input from the start.
3. Each run is measured from starting the application's process until its
   group's committed offsets reach the end of every input partition (under
   exactly-once the results of those records are then committed too): wall
   time, the process's CPU seconds (utime+stime of /proc/<pid>/stat, all
   its threads, nothing of the broker's) and its peak RSS (VmHWM).
4. Every run's three output tables (read `read_committed` from where the
   run started writing, latest value per key) must be identical — both
   engines, both guarantees, both brokers; with --check-input also equal to
   what the input implies (reads the whole input back: slow for big runs).
   Then it prints a table of ratios, Runnel ÷ Kafka Streams.

Kafka Streams runs as its defaults have it (its record cache of 10 MiB,
one stream thread unless --streams-threads, the JVM's default heap and
collector), with in-memory stores (what runnel-streams uses by default;
Kafka Streams' default RocksDB would be slower) and the same commit
interval as runnel-streams (--commit-ms-alos, --commit-ms-eos: 1000 and
100 ms; Kafka Streams' own at-least-once default of 30 s would make "time
until committed" mostly waiting). Exit status 0 only when every run caught
up and all outputs agree.

Needs the compat suite's virtualenv (confluent-kafka): run it with
`.venv/bin/python` after `./scripts/test.sh --compat-only -- -k nothing`,
a JDK and Maven, and a release build of runnel
(`cargo build --release -p runnel`; --runnel-bin or $RUNNEL_BIN elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMPAT = REPO / "tests" / "compat"
sys.path.insert(0, str(COMPAT))

import kafka_cluster  # noqa: E402  (tests/compat, standard library only)

try:
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:  # pragma: no cover - a message instead of a traceback
    sys.exit("peer_bench.py needs confluent-kafka: run it with the compat suite's .venv/bin/python "
             "(./scripts/test.sh --compat-only -- -k nothing creates it)")

STREAMS_POM = REPO / "scripts" / "kafka" / "streams-pom.xml"
APP_SOURCE = COMPAT / "java" / "UnstableApps.java"
DEFAULT_STREAMS_VERSION = kafka_cluster.ET.parse(STREAMS_POM).getroot().find(
    "m:properties/m:kafka-streams.version", {"m": "http://maven.apache.org/POM/4.0.0"}).text.strip()

DAY_MS = 86_400_000
PARTITIONS = 3
THRESHOLD, GRACE_SECS = 0.1, 3600
INPUTS = ("apps_opened", "app_crashes")
OUTPUTS = ("opened_per_day", "crashed_per_day", "unstable_apps")
# What Kafka's kafka-server-start.sh and kafka-run-class.sh give the broker.
KAFKA_BROKER_JVM = ["-Xms1g", "-Xmx1g", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
                    "-Djava.awt.headless=true"]
GUARANTEES = {"alos": "at-least-once", "eos": "exactly-once"}
BROKERS = {"runnel": "Runnel's broker", "kafka": "Apache Kafka"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
# How --perf-dir records (PEER_BENCH_PERF_ARGS overrides, e.g.
# "--call-graph dwarf,16384 -F 199" for call graphs through code built
# without frame pointers).
PERF_ARGS = shlex.split(os.environ.get("PEER_BENCH_PERF_ARGS", "-g -F 499"))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# Peers
# ----------------------------------------------------------------------------


def streams_libs(version: str) -> Path:
    libs = kafka_cluster.cache_dir().parent / f"kafka-streams-{version}" / "libs"
    return kafka_cluster.maven_fetch(STREAMS_POM, libs, "kafka-streams-", f"Kafka Streams {version}",
                                     defines={"kafka-streams.version": version}, log=log)


def streams_app(version: str) -> str:
    """The classpath of UnstableApps compiled against Kafka Streams `version`."""
    libs = streams_libs(version)
    cp = f"{libs}{os.sep}*"
    classes = kafka_cluster.compile_java([APP_SOURCE], f"unstable-apps-streams-{version}", cp=cp)
    return os.pathsep.join([str(classes), cp])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunnelBroker:
    def __init__(self, binary: Path, root: Path):
        self.binary, self.root = binary, root
        self.proc: subprocess.Popen | None = None
        self.bootstrap = ""

    def start(self) -> "RunnelBroker":
        port = free_port()
        self.bootstrap = f"127.0.0.1:{port}"
        self.root.mkdir(parents=True, exist_ok=True)
        logf = open(self.root / "runnel-serve.log", "ab")
        self.proc = subprocess.Popen(
            [str(self.binary), "serve", "--data-dir", str(self.root / "data"), "--listen", self.bootstrap,
             "--advertised-listener", self.bootstrap, "--no-sql", "--no-registry", "--no-connect",
             "--group-initial-rebalance-delay-ms", "0"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
            env=dict(os.environ, RUNNEL_LOG=os.environ.get("RUNNEL_LOG", "warn"), NO_COLOR="1"))
        logf.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runnel serve exited with {self.proc.returncode}: see {self.root}/runnel-serve.log")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("runnel serve did not listen within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class KafkaBroker:
    def __init__(self, root: Path):
        self.cluster = kafka_cluster.KafkaCluster(root, 1, jvm=KAFKA_BROKER_JVM)
        self.bootstrap = ""

    def start(self) -> "KafkaBroker":
        self.cluster.start()
        self.bootstrap = self.cluster.bootstrap
        return self

    def stop(self) -> None:
        self.cluster.stop()


# ----------------------------------------------------------------------------
# Input, progress, output
# ----------------------------------------------------------------------------


def generate(runnel: Path, bootstrap: str, events: int, days: int, seed: int, start_ms: int) -> None:
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(runnel), "demo", "unstable-apps", "generate", "-b", bootstrap, "--events", str(events),
         "--days", str(days), "--seed", str(seed), "--partitions", str(PARTITIONS),
         "--start-ms", str(start_ms)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"generate failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    log(f"input written in {time.monotonic() - t0:.1f} s")


def end_offsets(bootstrap: str, topics) -> dict[tuple[str, int], int]:
    """End offsets of the topics' partitions. A topic created a moment ago
    has no leader yet on Apache Kafka (the controller's decision reaches the
    broker asynchronously): ask again until it has, for 30 s."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "peer-bench-reader"})
    deadline = time.monotonic() + 30
    out = {}
    try:
        for t in topics:
            for p in range(PARTITIONS):
                while True:
                    try:
                        out[(t, p)] = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
                        break
                    except KafkaException as e:
                        if not (e.args[0].retriable() or e.args[0].code() in (
                                KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                                KafkaError.UNKNOWN_TOPIC_OR_PART)) or time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
        return out
    finally:
        c.close()


def create_topics(bootstrap: str, names) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(n, num_partitions=PARTITIONS, replication_factor=1) for n in names])
    for name, f in fs.items():
        try:
            f.result(timeout=30)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


class Progress:
    """The group's committed offsets, asked through one consumer that never joins."""

    def __init__(self, bootstrap: str, group: str, ends: dict[tuple[str, int], int]):
        self.ends = ends
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})

    def caught_up(self) -> bool:
        try:
            got = self.c.committed([TopicPartition(t, p) for t, p in self.ends], timeout=10)
        except KafkaException as e:
            if e.args[0].retriable() or e.args[0].code() in (
                    KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                    KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError._TIMED_OUT, KafkaError._TRANSPORT):
                return False
            raise
        return all(tp.offset == self.ends[(tp.topic, tp.partition)]
                   or (tp.offset < 0 and self.ends[(tp.topic, tp.partition)] == 0) for tp in got)

    def close(self) -> None:
        self.c.close()


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def read_tables(bootstrap: str, starts: dict[tuple[str, int], int]) -> tuple[dict[str, dict[bytes, bytes]], int]:
    """The topics as tables (latest value per key, a null value deletes),
    read read_committed from `starts` to their ends; and how many records."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "peer-bench-reader", "enable.auto.commit": False,
                  "isolation.level": "read_committed", "enable.partition.eof": True,
                  "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760})
    tables: dict[str, dict[bytes, bytes]] = {t: {} for t, _ in starts}
    n = 0
    try:
        c.assign([TopicPartition(t, p, off) for (t, p), off in starts.items()])
        todo = set(starts)
        deadline = time.monotonic() + 600
        while todo:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no end of {sorted(todo)} in 10 min")
            for m in c.consume(10000, 0.5):
                err = m.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(err)
                    todo.discard((m.topic(), m.partition()))
                    continue
                n += 1
                rows = tables[m.topic()]
                if m.value() is None:
                    rows.pop(m.key(), None)
                else:
                    rows[m.key()] = m.value()
        return tables, n
    finally:
        c.close()


def show_key(k: bytes) -> str:
    return f"{k[:-8].decode(errors='replace')}@{int.from_bytes(k[-8:], 'big')}"


def table_diff(got: dict[bytes, bytes], want: dict[bytes, bytes]) -> list[str]:
    return [f"{show_key(k)}: {got.get(k)!r} instead of {want.get(k)!r}"
            for k in sorted(got.keys() | want.keys()) if got.get(k) != want.get(k)]


def expected_from_input(bootstrap: str) -> dict[str, dict[bytes, bytes]]:
    """The tables the input implies (tests/compat/slide8.py's computation)."""
    import slide8  # the compat suite's; imports pytest, hence only here

    recs = {t: [] for t in INPUTS}
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "peer-bench-reader", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(t, p, 0) for t in INPUTS for p in range(PARTITIONS)])
        todo = {(t, p) for t in INPUTS for p in range(PARTITIONS)}
        while todo:
            for m in c.consume(10000, 0.5):
                if m.error() is not None:
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(m.error())
                    todo.discard((m.topic(), m.partition()))
                    continue
                recs[m.topic()].append((m.key(), m.timestamp()[1]))
    finally:
        c.close()
    want = slide8.expected_tables(recs[INPUTS[0]], recs[INPUTS[1]])
    return {t: want[t] for t in OUTPUTS}


# ----------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------


def run_one(engine: str, cmd: list[str], bootstrap: str, group: str, ends, outputs: list[str],
            logpath: Path, timeout: float, java: bool, env=None, perf_out: Path | None = None) -> dict:
    """Runs one application until its group committed the end of the input;
    returns its measurements and output tables. `perf_out`: record a
    profile of the application (`perf record -g -p`) into this file until
    it caught up."""
    starts = end_offsets(bootstrap, outputs)
    progress = Progress(bootstrap, group, ends)
    with open(logpath, "wb") as logf:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if java else subprocess.DEVNULL,
                                stdout=logf, stderr=logf, env=env)
        perf = None
        if perf_out is not None:
            perf = subprocess.Popen(["perf", "record", *PERF_ARGS, "-o", str(perf_out), "-p", str(proc.pid)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=logf)
        cpu = hwm = wall = None
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{engine} exited with {proc.returncode} before catching up; log: {logpath}")
                if progress.caught_up():
                    wall = time.monotonic() - t0
                    cpu, hwm = proc_cpu_s(proc.pid), proc_hwm_mib(proc.pid)
                    break
                if time.monotonic() - t0 > timeout:
                    raise RuntimeError(f"{engine} did not catch up in {timeout:.0f} s; log: {logpath}")
                time.sleep(0.1)
        finally:
            progress.close()
            if perf is not None:
                perf.send_signal(signal.SIGINT)
                perf.wait(timeout=120)
            if proc.poll() is None:
                if java:
                    proc.stdin.write(b"stop\n")
                    proc.stdin.close()
                else:
                    proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} exited with {proc.returncode} after catching up; log: {logpath}")
    tables, records = read_tables(bootstrap, starts)
    return {"wall_s": wall, "cpu_s": cpu, "rss_mib": hwm, "output_records": records, "tables": tables}


# ----------------------------------------------------------------------------
# The whole benchmark
# ----------------------------------------------------------------------------


def fmt_k(x: float) -> str:
    return f"{x / 1000:,.0f}k"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000,
                    help="app-open events (crashes come on top, ~15%%) [default: 10M, ~11.5M in all]")
    ap.add_argument("--days", type=int, default=4, help="days the input spans, ending yesterday [4]")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--brokers", default="runnel,kafka", help="runnel, kafka or both [runnel,kafka]")
    ap.add_argument("--guarantees", default="alos,eos", help="alos, eos or both [alos,eos]")
    ap.add_argument("--engines", default="runnel,streams",
                    help="runnel (runnel-streams), streams (Kafka Streams) or both [runnel,streams]")
    ap.add_argument("--streams-version", default=DEFAULT_STREAMS_VERSION,
                    help=f"Kafka Streams version from Maven Central [{DEFAULT_STREAMS_VERSION}]")
    ap.add_argument("--streams-threads", type=int, default=1, help="Kafka Streams' num.stream.threads [1]")
    ap.add_argument("--commit-ms-alos", type=int, default=1000)
    ap.add_argument("--commit-ms-eos", type=int, default=100)
    ap.add_argument("--runnel-bin", type=Path,
                    default=Path(os.environ.get("RUNNEL_BIN")
                                 or Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "runnel"))
    ap.add_argument("--runnel-arg", action="append", default=[],
                    help="extra argument of `runnel demo unstable-apps run` (repeatable), e.g. -X=fetch.max.bytes=…")
    ap.add_argument("--variant", action="append", default=[], metavar="LABEL=ARGS",
                    help="also run runnel-streams with these extra `run` arguments, after the default one "
                         "(repeatable), e.g. --variant 'no cache=--cache-max-bytes 0': before/after in one run")
    ap.add_argument("--check-input", action="store_true",
                    help="also compare every output with what the input implies (reads the input back)")
    ap.add_argument("--work-dir", type=Path, help="brokers' data and logs [a temporary folder, removed]")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds one application may take [1800]")
    ap.add_argument("--json", type=Path, help="write the measurements here too")
    ap.add_argument("--perf-dir", type=Path,
                    help="record a CPU profile (perf record -g) of each runnel-streams run into this folder")
    args = ap.parse_args(argv)

    brokers = [b for b in args.brokers.split(",") if b]
    guarantees = [g for g in args.guarantees.split(",") if g]
    engines = [e for e in args.engines.split(",") if e]
    variants: dict[str, list[str]] = {}
    for v in args.variant:
        label, sep, rest = v.partition("=")
        if not sep or not label.strip():
            ap.error(f"--variant takes LABEL=ARGS, not {v!r}")
        variants[label.strip()] = shlex.split(rest)
    if not set(brokers) <= set(BROKERS) or not set(guarantees) <= set(GUARANTEES) \
            or not set(engines) <= {"runnel", "streams"} or not (brokers and guarantees and engines):
        ap.error("--brokers takes runnel,kafka; --guarantees alos,eos; --engines runnel,streams")
    runnel = args.runnel_bin.resolve()
    if not runnel.exists():
        ap.error(f"no runnel binary at {runnel}: cargo build --release -p runnel, or --runnel-bin")

    try:
        cp = streams_app(args.streams_version) if "streams" in engines else ""
        if "kafka" in brokers:
            kafka_cluster.fetch(log)
    except kafka_cluster.KafkaUnavailable as e:
        log(f"error: {e}")
        return 3

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="peer-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    now = int(time.time() * 1000)
    start_ms = now - now % DAY_MS - args.days * DAY_MS
    results: list[dict] = []
    reference = None  # (label, tables) every run must equal
    mismatches: list[str] = []
    try:
        for broker_name in brokers:
            broker = RunnelBroker(runnel, work / "runnel") if broker_name == "runnel" \
                else KafkaBroker(work / "kafka")
            log(f"starting {BROKERS[broker_name]}")
            broker.start()
            try:
                bs = broker.bootstrap
                log(f"{BROKERS[broker_name]} on {bs}; writing {args.events:,} app-open events (+ crashes)")
                generate(runnel, bs, args.events, args.days, args.seed, start_ms)
                ends = end_offsets(bs, INPUTS)
                total = sum(ends.values())
                log(f"input: {total:,} events in {len(ends)} partitions")
                if args.check_input:
                    want = expected_from_input(bs)
                    if reference is None:
                        reference = ("the input", want)
                runs = [(e, []) for e in engines if e == "runnel"] + list(variants.items()) \
                    + [(e, []) for e in engines if e == "streams"]
                for g in guarantees:
                    for engine, extra in runs:
                        label = f"{engine} {g} on {broker_name}"
                        if engine != "streams":
                            group = f"bench-{re.sub('[^a-z0-9]+', '-', engine.lower())}-{g}"
                            outputs = list(OUTPUTS)
                            cmd = [str(runnel), "demo", "unstable-apps", "run", "-b", bs, "--application-id", group,
                                   "--threshold", str(THRESHOLD), "--grace-secs", str(GRACE_SECS),
                                   "--commit-ms", str(args.commit_ms_alos if g == "alos" else args.commit_ms_eos),
                                   *(["--exactly-once"] if g == "eos" else []), *args.runnel_arg, *extra]
                            env = dict(os.environ, RUNNEL_LOG=os.environ.get("RUNNEL_LOG", "info"), NO_COLOR="1")
                            java = False
                        else:
                            group = f"bench-streams-{g}"
                            prefix = f"ks_{g}_"
                            outputs = [prefix + t for t in OUTPUTS]
                            create_topics(bs, outputs)
                            state = work / f"streams-state-{broker_name}-{g}"
                            cmd = [shutil.which("java") or "java",
                                   "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                                   "-cp", cp, "UnstableApps", bs, group, str(state), prefix,
                                   str(THRESHOLD), str(GRACE_SECS),
                                   "processing.guarantee=" + ("exactly_once_v2" if g == "eos" else "at_least_once"),
                                   f"commit.interval.ms={args.commit_ms_alos if g == 'alos' else args.commit_ms_eos}",
                                   f"num.stream.threads={args.streams_threads}"]
                            env, java = None, True
                        log(f"running {label}")
                        slug = f"{re.sub('[^A-Za-z0-9]+', '-', engine)}-{g}-{broker_name}"
                        perf_out = None
                        if args.perf_dir is not None and engine != "streams":
                            args.perf_dir.mkdir(parents=True, exist_ok=True)
                            perf_out = args.perf_dir / f"{slug}.data"
                        r = run_one(label, cmd, bs, group, ends, outputs, work / f"{slug}.log",
                                    args.timeout, java, env, perf_out)
                        raw = r.pop("tables")
                        tables = {t: raw[o] for t, o in zip(OUTPUTS, outputs)}
                        log(f"{label}: {r['wall_s']:.1f} s, {r['cpu_s']:.1f} CPU-s, {r['rss_mib']:.0f} MiB peak RSS, "
                            f"{r['output_records']:,} output records; tables "
                            + ", ".join(f"{t} {len(v)} rows" for t, v in tables.items()))
                        if reference is None:
                            reference = (label, tables)
                        else:
                            for t in OUTPUTS:
                                d = table_diff(tables[t], reference[1][t])
                                if d:
                                    mismatches.append(f"{label} {t} differs from {reference[0]} in {len(d)} rows: "
                                                      + "; ".join(d[:5]))
                        if not any(tables.values()):
                            mismatches.append(f"{label}: empty output")
                        results.append({"broker": broker_name, "guarantee": g, "engine": engine,
                                        "events": total, **r})
            finally:
                broker.stop()
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)

    print_table(results, args, brokers, guarantees, ["runnel", *variants] if "runnel" in engines else [*variants])
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "results": results}, indent=2) + "\n")
    if mismatches:
        print("\nOUTPUTS DIFFER:\n" + "\n".join(mismatches))
        return 1
    print(f"\noutputs agree: every run's {', '.join(OUTPUTS)} identical"
          + (" and equal to what the input implies" if args.check_input else ""))
    return 0


def print_table(results: list[dict], args, brokers, guarantees, runnels: list[str]) -> None:
    by = {(r["broker"], r["guarantee"], r["engine"]): r for r in results}
    cpus = os.cpu_count()
    print(f"\nslide-8, {results[0]['events']:,} events, {cpus} cores; Kafka Streams {args.streams_version} "
          f"({args.streams_threads} stream thread(s), in-memory stores, 10 MiB record cache); commit interval "
          f"{args.commit_ms_alos} ms at-least-once, {args.commit_ms_eos} ms exactly-once")

    def cell(r):
        if r is None:
            return "—"
        ev = r["events"]
        return (f"{fmt_k(ev / r['wall_s'])} ev/s, {fmt_k(ev / r['cpu_s'])} per CPU-s, "
                f"{r['wall_s']:.1f} s, {r['cpu_s']:.1f} CPU-s, {r['rss_mib']:.0f} MiB")

    def ratio(a, b):
        if not (a and b):
            return "—"
        return (f"{b['wall_s'] / a['wall_s']:.2f}× wall, {b['cpu_s'] / a['cpu_s']:.2f}× per CPU-s, "
                f"RSS {a['rss_mib'] / b['rss_mib']:.2f}×")

    for engine in runnels:
        name = "runnel-streams" + ("" if engine == "runnel" else f" ({engine})")
        print(f"\n| run | {name} | Kafka Streams | Runnel ÷ Kafka Streams |")
        print("|---|---:|---:|---:|")
        for b in brokers:
            for g in guarantees:
                ru, ks = by.get((b, g, engine)), by.get((b, g, "streams"))
                print(f"| {GUARANTEES[g]} on {BROKERS[b]} | {cell(ru)} | {cell(ks)} | {ratio(ru, ks)} |")
    if "runnel" in runnels and len(runnels) > 1:
        for engine in runnels[1:]:
            print(f"\n| run | runnel-streams ÷ runnel-streams ({engine}) |")
            print("|---|---:|")
            for b in brokers:
                for g in guarantees:
                    print(f"| {GUARANTEES[g]} on {BROKERS[b]} | "
                          f"{ratio(by.get((b, g, 'runnel')), by.get((b, g, engine)))} |")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
