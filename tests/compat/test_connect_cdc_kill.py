"""Issue 16's kill test: the PostgreSQL CDC source on Runnel's connector
runtime with exactly-once delivery (`exactly.once.source.support=enabled`),
`runnel serve` SIGKILLed during the snapshot, during streaming and inside a
large transaction, and restarted each time: a read_committed reader of the
change topic sees every change exactly once, in commit order per key."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
from confluent_kafka import Consumer

import slide8

from compat_util import wait_until
from conftest import RunnelServer, free_port, runnel_bin

ROWS = 2000
JSON = "org.apache.kafka.connect.json.JsonConverter"


def changes(bootstrap: str, topic: str) -> list[tuple]:
    """(key id, op, after.v) of every committed record of the topic, in order
    per partition (tombstones left out); none before the topic exists."""
    admin = Consumer({"bootstrap.servers": bootstrap, "group.id": "cdc-kill-probe"})
    try:
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            return []
    finally:
        admin.close()
    out = []
    for m in slide8.read_committed(bootstrap, topic, group=f"verify-{uuid.uuid4().hex}"):
        if m.value() is None:
            continue
        v = json.loads(m.value())
        out.append((json.loads(m.key())["id"], v["op"], (v.get("after") or {}).get("v")))
    return out


def test_cdc_killed_during_snapshot_streaming_and_a_large_transaction(tmp_path, postgres, pg_database):
    db = pg_database
    postgres.psql("CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL);"
                  f"INSERT INTO items SELECT g, 0 FROM generate_series(1, {ROWS}) g;", db)
    port = free_port()
    extra = ["--no-sql", "--no-registry", "--connect-listen", f"127.0.0.1:{port}",
             "--connect-property", "exactly.once.source.support=enabled"]
    base = tmp_path / "server"
    prefix = f"k{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.public.items"
    server: RunnelServer | None = None

    def start() -> RunnelServer:
        s = RunnelServer(runnel_bin(), base / "data", base / "runnel.log", extra).start()
        wait_until(lambda: ok(f"http://127.0.0.1:{port}/connectors"), timeout=60, what="the connect API")
        return s

    def ok(url: str) -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def seen() -> list[tuple]:
        return changes(server.bootstrap, topic)

    try:
        server = start()
        r = httpx.post(f"http://127.0.0.1:{port}/connectors", timeout=30, json={
            "name": "items-cdc", "config": {
                "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
                "database.hostname": postgres.host, "database.port": str(postgres.port),
                "database.user": postgres.user, "database.password": "", "database.dbname": db,
                "topic.prefix": prefix, "slot.name": prefix, "publication.name": prefix,
                "key.converter": JSON, "key.converter.schemas.enable": "false",
                "value.converter": JSON, "value.converter.schemas.enable": "false"}})
        assert r.status_code == 201, r.text

        # 1. Killed during the snapshot, as soon as part of it is committed.
        wait_until(lambda: 0 < len(seen()), timeout=60, interval=0.5, what="the first snapshot records")
        server.kill()
        server = start()
        wait_until(lambda: len(seen()) >= ROWS, timeout=120, interval=0.5, what="the whole snapshot")

        # 2. Killed while small transactions stream (each bumps one row).
        stop = threading.Event()
        bumped: list[int] = []

        def writer():
            i = 0
            while not stop.is_set() and i < 300:
                row = 1 + (i * 7) % 50
                postgres.psql(f"UPDATE items SET v = v + 1 WHERE id = {row}", db)
                bumped.append(row)
                i += 1
        t = threading.Thread(target=writer)
        t.start()
        wait_until(lambda: len(seen()) >= ROWS + 20, timeout=60, interval=0.5, what="streamed changes")
        server.kill()
        server = start()
        t.join(timeout=120)
        stop.set()

        # 3. Killed inside one large transaction's changes.
        postgres.psql("UPDATE items SET v = v + 1 WHERE id > 1000", db)
        expected_total = ROWS + len(bumped) + (ROWS - 1000)
        wait_until(lambda: len(seen()) > ROWS + len(bumped), timeout=120,
                   interval=0.5, what="the large transaction's first changes")
        server.kill()
        server = start()
        wait_until(lambda: len(seen()) >= expected_total, timeout=180,
                   interval=0.5, what=f"{expected_total} changes")
        time.sleep(1)  # a duplicate, if any, would be written right after the last record
        got = seen()
    finally:
        if server is not None and server.proc is not None and server.proc.poll() is None:
            assert server.stop() == 0

    # Exactly once, in commit order per key: each row's values count up by one.
    assert len(got) == expected_total, f"{len(got)} changes, {expected_total} committed"
    per_key: dict[int, list] = {}
    for key, op, v in got:
        per_key.setdefault(key, []).append((op, v))
    finals = dict(postgres.rows("SELECT id, v FROM items", db))
    assert len(per_key) == ROWS
    for key, events in per_key.items():
        assert events[0] == ("r", 0), f"row {key} starts with {events[0]}"
        assert all(op == "u" for op, _ in events[1:]), f"row {key}: {events}"
        values = [v for _, v in events]
        assert values == list(range(len(values))), f"row {key}: values {values}"
        assert values[-1] == int(finals[str(key)]), f"row {key}: last {values[-1]}, table {finals[str(key)]}"
