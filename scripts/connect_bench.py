#!/usr/bin/env python3
"""The connector benchmarks of issue 16 (BENCHMARKS.md, "Connectors"):

* PostgreSQL's own COPY rates on the same table, same run: `COPY … TO
  STDOUT` (the ceiling for a snapshot) and `COPY … FROM STDIN` (for a sink);
* snapshot rows/s: the CDC source's initial snapshot of N rows into the log;
* streaming changes/s: pgbench inserting M rows (10 per transaction, 4
  clients, as fast as PostgreSQL takes them) and the source streaming them
  into the log, from pgbench's start to the last change in the log, beside
  pgbench's own commit rate;
* commit-to-log latency p50/p99: pgbench at a fixed rate (one insert per
  transaction) while a consumer reads the topic; latency is the time the
  consumer receives the event minus its `source.ts_ms` (the commit time
  PostgreSQL reports, in ms), so it includes the consumer's fetch;
* sink rows/s: the JDBC-style sink upserting every row of the topic into a
  new table (Debezium's unwrap transform, pk from the key).

Everything runs on this machine: a private PostgreSQL (scripts/postgres.sh,
fsync=off as the tests run it), one `runnel serve` (broker and connect
worker, no SQL, no registry) on a fresh data directory, pgbench and the
consumer. Records are JsonConverter with schemas (Kafka Connect's default;
each record carries its schema), or plain JSON with --no-schemas.

    cargo build --release -p runnel   # numbers from release builds only
    .venv/bin/python scripts/connect_bench.py --runnel target/release/runnel

Prints one JSON line per measurement and a Markdown table at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from confluent_kafka import Consumer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
JSON = "org.apache.kafka.connect.json.JsonConverter"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def report(name: str, **fields):
    print(json.dumps({"measure": name, **fields}), flush=True)


class Pg:
    def __init__(self, url: str):
        m = re.match(r"postgres://(\w+)@([\d.]+):(\d+)/", url)
        if not m:
            sys.exit(f"unexpected PostgreSQL URL {url}")
        self.user, self.host, self.port = m.group(1), m.group(2), int(m.group(3))
        bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        self.pgbench = str(bindir[-1] / "pgbench") if bindir else "pgbench"

    def psql(self, sql: str, db: str = "postgres", stdin=None, stdout=subprocess.PIPE) -> str:
        r = subprocess.run(
            ["psql", "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", db,
             "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
            input=stdin, stdout=stdout, stderr=subprocess.PIPE, check=False)
        if r.returncode != 0:
            sys.exit(f"psql failed: {r.stderr.decode()}")
        return r.stdout.decode() if stdout == subprocess.PIPE else ""


TABLE = ("(id bigserial PRIMARY KEY, account int NOT NULL, label text, "
         "amount numeric(12,2) NOT NULL, created timestamptz NOT NULL DEFAULT now())")


def rows_csv(first: int, count: int) -> bytes:
    return "".join(
        f"{i},{i % 1000},row {i} of the benchmark,{i % 100000}.{i % 100:02d},2024-01-01 00:00:00+00\n"
        for i in range(first, first + count)).encode()


class Runnel:
    def __init__(self, binary: str, workdir: Path):
        self.kafka_port, self.connect_port = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.kafka_port}"
        self.connect = f"http://127.0.0.1:{self.connect_port}"
        self.log = open(workdir / "runnel.log", "wb")
        self.proc = subprocess.Popen(
            [binary, "serve", "--data-dir", str(workdir / "data"),
             "--listen", self.bootstrap, "--advertised-listener", self.bootstrap,
             "--no-sql", "--no-registry", "--connect-listen", f"127.0.0.1:{self.connect_port}"],
            stdout=self.log, stderr=self.log, env=dict(os.environ, RUNNEL_LOG="warn"))
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.connect}/connectors", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                sys.exit("runnel serve did not come up; see runnel.log")
            time.sleep(0.1)

    def create(self, name: str, config: dict):
        r = httpx.post(f"{self.connect}/connectors", json={"name": name, "config": config}, timeout=60)
        if r.status_code != 201:
            sys.exit(f"cannot create {name}: {r.status_code} {r.text}")

    def delete(self, name: str):
        httpx.delete(f"{self.connect}/connectors/{name}", timeout=60)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def end_offset(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-probe", "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            return 0
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions)
    finally:
        c.close()


def wait_offset(bootstrap: str, topic: str, target: int, timeout: float) -> float:
    """Seconds until `topic` holds `target` records (polled every 50 ms)."""
    start = time.monotonic()
    while end_offset(bootstrap, topic) < target:
        if time.monotonic() - start > timeout:
            sys.exit(f"{topic} did not reach {target} records in {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def pgbench(pg: Pg, db: str, script: str, args: list[str]) -> tuple[float, str]:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    start = time.monotonic()
    r = subprocess.run([pg.pgbench, "-h", pg.host, "-p", str(pg.port), "-U", pg.user, "-n",
                        "-f", f.name, *args, db], capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    os.unlink(f.name)
    if r.returncode != 0:
        sys.exit(f"pgbench failed: {r.stderr}")
    return elapsed, r.stdout


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runnel", default=str(ROOT / "target/release/runnel"))
    ap.add_argument("--rows", type=int, default=200_000, help="rows in the snapshot (and the COPY runs)")
    ap.add_argument("--stream-rows", type=int, default=100_000, help="rows pgbench inserts while streaming")
    ap.add_argument("--rate", type=int, default=200, help="transactions/s for the latency run")
    ap.add_argument("--seconds", type=int, default=20, help="length of the latency run")
    ap.add_argument("--no-schemas", action="store_true",
                    help="JsonConverter with schemas.enable=false (plain JSON, no schema in every record)")
    args = ap.parse_args()
    converters = {"key.converter": JSON, "value.converter": JSON}
    if args.no_schemas:
        converters.update({"key.converter.schemas.enable": "false", "value.converter.schemas.enable": "false"})

    url = subprocess.run([str(ROOT / "scripts/postgres.sh"), "start"], capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    pg = Pg(url)
    db = f"bench_{uuid.uuid4().hex[:8]}"
    pg.psql(f"CREATE DATABASE {db}")
    workdir = Path(tempfile.mkdtemp(prefix="connect-bench-"))
    results = {}
    runnel = None
    try:
        n = args.rows
        # PostgreSQL's own rates on the same table: the same-run ceilings.
        pg.psql(f"CREATE TABLE copy_probe {TABLE}", db)
        data = rows_csv(1, n)
        t = time.monotonic()
        pg.psql("COPY copy_probe FROM STDIN WITH (FORMAT csv)", db, stdin=data)
        results["copy_in"] = n / (time.monotonic() - t)
        report("copy_in", rows=n, rows_per_s=round(results["copy_in"]))
        t = time.monotonic()
        pg.psql("COPY (SELECT * FROM copy_probe) TO STDOUT", db, stdout=subprocess.DEVNULL)
        results["copy_out"] = n / (time.monotonic() - t)
        report("copy_out", rows=n, rows_per_s=round(results["copy_out"]))
        pg.psql("DROP TABLE copy_probe", db)

        pg.psql(f"CREATE TABLE src {TABLE}", db)
        pg.psql("COPY src FROM STDIN WITH (FORMAT csv)", db, stdin=data)
        pg.psql(f"SELECT setval('src_id_seq', {n})", db)
        pg.psql("VACUUM ANALYZE src", db)

        runnel = Runnel(args.runnel, workdir)
        prefix = "bench"
        topic = f"{prefix}.public.src"
        source = {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "database.hostname": pg.host, "database.port": str(pg.port), "database.user": pg.user,
            "database.password": "", "database.dbname": db, "topic.prefix": prefix,
            "table.include.list": "public.src", "slot.name": f"bench_{db}", "publication.name": f"bench_{db}",
            "snapshot.mode": "initial", **converters,
        }
        # Snapshot.
        t = time.monotonic()
        runnel.create("src", source)
        wait_offset(runnel.bootstrap, topic, n, timeout=600)
        results["snapshot"] = n / (time.monotonic() - t)
        report("snapshot", rows=n, rows_per_s=round(results["snapshot"]))

        # Streaming: pgbench inserts as fast as PostgreSQL takes them.
        m = args.stream_rows
        clients, per_txn = 4, 10
        txns = m // (clients * per_txn)
        m = txns * clients * per_txn
        insert10 = ("INSERT INTO src (account, label, amount) "
                    "SELECT g % 1000, 'streamed row', g FROM generate_series(1, 10) g;\n")
        t = time.monotonic()
        bench_s, _ = pgbench(pg, db, insert10, ["-c", str(clients), "-j", "2", "-t", str(txns)])
        wait_offset(runnel.bootstrap, topic, n + m, timeout=600)
        elapsed = time.monotonic() - t
        results["stream"] = m / elapsed
        results["stream_pg"] = m / bench_s
        report("streaming", rows=m, transactions=txns * clients, rows_per_s=round(results["stream"]),
               pgbench_rows_per_s=round(results["stream_pg"]))

        # Commit-to-log latency at a fixed rate.
        before = end_offset(runnel.bootstrap, topic)
        latencies: list[float] = []
        done = threading.Event()

        def consume():
            c = Consumer({"bootstrap.servers": runnel.bootstrap, "group.id": "bench-latency",
                          "enable.auto.commit": False, "fetch.wait.max.ms": 10})
            c.assign([TopicPartition(topic, 0, before)])
            while not done.is_set():
                msg = c.poll(0.05)
                if msg is None or msg.error() or msg.value() is None:
                    continue
                now = time.time() * 1000
                v = json.loads(msg.value())
                ts = (v.get("payload") or v)["source"]["ts_ms"]
                latencies.append(now - ts)
            c.close()
        reader = threading.Thread(target=consume)
        reader.start()
        time.sleep(1)
        insert1 = "INSERT INTO src (account, label, amount) VALUES (1, 'latency probe', 1.00);\n"
        _, out = pgbench(pg, db, insert1, ["-c", "2", "-j", "2", "-R", str(args.rate), "-T", str(args.seconds)])
        expected = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
        deadline = time.monotonic() + 60
        while len(latencies) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        done.set()
        reader.join()
        results["p50"], results["p99"] = percentile(latencies, 50), percentile(latencies, 99)
        report("latency", transactions=expected, received=len(latencies), rate=args.rate,
               p50_ms=round(results["p50"], 1), p99_ms=round(results["p99"], 1),
               max_ms=round(max(latencies), 1))
        total = before + len(latencies)

        # Sink: every row of the topic upserted into a new table. Like
        # Confluent's JDBC sink it needs records with schemas (to create
        # the table and bind the columns): skipped with --no-schemas.
        rows_in_src = int(pg.psql("SELECT count(*) FROM src", db))
        if args.no_schemas:
            runnel.delete("src")
            return print_table(args, results, m, rows_in_src)
        sink = {
            "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
            "connection.url": f"jdbc:postgresql://{pg.host}:{pg.port}/{db}", "connection.user": pg.user,
            "topics": topic, "table.name.format": "dst", "insert.mode": "upsert",
            "pk.mode": "record_key", "pk.fields": "id", "auto.create": "true",
            "transforms": "unwrap", "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
            **converters,
        }
        t = time.monotonic()
        runnel.create("dst", sink)
        while True:
            try:
                got = int(pg.psql("SELECT count(*) FROM dst", db))
            except SystemExit:
                got = 0  # the table is created with the first batch
            if got >= rows_in_src:
                break
            status = httpx.get(f"{runnel.connect}/connectors/dst/status", timeout=10).json()
            if any(t.get("state") == "FAILED" for t in status.get("tasks", [])):
                sys.exit(f"the sink failed: {status}")
            if time.monotonic() - t > 900:
                sys.exit(f"the sink wrote {got} of {rows_in_src} rows in 900 s")
            time.sleep(0.1)
        results["sink"] = rows_in_src / (time.monotonic() - t)
        report("sink", rows=rows_in_src, records=total, rows_per_s=round(results["sink"]))
        runnel.delete("src")
        runnel.delete("dst")
    finally:
        if runnel is not None:
            runnel.stop()
        pg.psql(f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                f"WHERE slot_name = 'bench_{db}' AND NOT active")
        pg.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")

    print_table(args, results, m, rows_in_src)


def print_table(args, results: dict, m: int, rows_in_src: int):
    print()
    print(f"JsonConverter, schemas.enable={'false' if args.no_schemas else 'true'}")
    print("| measure | rate | same-run ceiling |")
    print("|---|---|---|")
    print(f"| snapshot ({args.rows:,} rows) | {results['snapshot']:,.0f} rows/s | "
          f"COPY TO STDOUT {results['copy_out']:,.0f} rows/s |")
    print(f"| streaming (pgbench, 4 clients × 10-row txns, {m:,} rows) | {results['stream']:,.0f} changes/s | "
          f"pgbench itself {results['stream_pg']:,.0f} rows/s |")
    print(f"| commit → log latency at {args.rate} txn/s | p50 {results['p50']:.1f} ms, "
          f"p99 {results['p99']:.1f} ms | |")
    sink = f"{results['sink']:,.0f} rows/s" if "sink" in results else "not run (needs schemas)"
    print(f"| sink (upsert, {rows_in_src:,} rows) | {sink} | "
          f"COPY FROM STDIN {results['copy_in']:,.0f} rows/s |")


if __name__ == "__main__":
    main()
