"""Runnel's PostgreSQL CDC source against Debezium's, event for event.

One PostgreSQL database, two tables (one of PostgreSQL's common types with
a primary key, one with REPLICA IDENTITY FULL), rows present before the
snapshot and then a script of inserts, updates (a primary-key change
among them), deletes, a NULL-heavy row and a TRUNCATE of two tables in a
transaction (`skipped.operations=none`). Two connectors capture it:

- the reference: Debezium's `PostgresConnector` on Apache Kafka's Connect
  worker (connect_reference.py), `topic.prefix=ref`;
- Runnel's `io.debezium.connector.postgresql.PostgresConnector` on the
  connect worker of `runnel serve`, `topic.prefix=rnl`;

each with its own slot and publication, both writing JSON with schemas
(JsonConverter, schemas.enable=true) to the same Runnel broker (Kafka's
worker runs on Runnel's broker too). Their topics are read with
confluent-kafka and compared record by record: key and value schemas
(type, optional, name, version, parameters, field order), keys, `op`,
`before`/`after`, the `source` block and headers. Only what must differ is
masked: the topic prefix (in schema names, `source.name` and a header),
`source.version`, the timestamps, the task's run id header, and in
snapshot events the values of `source.lsn`, `txId` and `sequence` (each
connector's own slot and transaction), which must be present. A streamed
change's LSN and transaction id are the server's, the same for both, and
compared as they are; they must also increase.

A failure lists each difference once: the path in the record, Debezium's
value, Runnel's, and the events it was seen in. RUNNEL_REFERENCE_DUMP=<dir>
writes both sides' records as JSON lines.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import free_port, tail
from connect_reference import DEBEZIUM_CLASS, ConnectError, ConnectRest, http

TABLES = ("types", "single", "full_t", "nopk", "more_types")
MARKER_ID = 999  # the last change of the script in each table
TIMEOUT_S = 90.0

SCHEMA_SQL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE single (id int2 PRIMARY KEY, note varchar);
CREATE TABLE types (
  id int4 PRIMARY KEY,
  c_int2 int2,
  c_int8 int8,
  c_num numeric(10,2),
  c_numeric numeric,
  c_f4 float4,
  c_f8 float8,
  c_bool bool,
  c_text text,
  c_varchar varchar(20),
  c_char char(5),
  c_date date,
  c_time time,
  c_ts timestamp,
  c_tstz timestamptz,
  c_tstz3 timestamptz(3),
  c_json json,
  c_jsonb jsonb,
  c_uuid uuid,
  c_bytea bytea,
  c_ints int4[],
  c_texts text[],
  c_mood mood,
  c_required text NOT NULL DEFAULT 'required'
);
CREATE TABLE full_t (id int8 PRIMARY KEY, name text, qty int4);
CREATE TABLE more_types (
  id bigserial PRIMARY KEY,
  c_num5 numeric(5),
  c_interval interval,
  c_timetz timetz,
  c_money money,
  c_inet inet,
  c_cidr cidr,
  c_macaddr macaddr,
  c_xml xml,
  c_bit bit(3),
  c_bit1 bit(1),
  c_varbit varbit,
  c_bool_d bool NOT NULL DEFAULT true,
  c_int_d int4 DEFAULT -1,
  c_num_d numeric(6,2) DEFAULT 1.5,
  c_ts_d timestamp DEFAULT now(),
  c_time3 time(3),
  c_ts3 timestamp(3),
  c_nums numeric(10,2)[],
  c_int2s int2[],
  c_bigs int8[],
  c_dates date[]
);
CREATE TABLE nopk (k int, v text);
ALTER TABLE nopk REPLICA IDENTITY FULL;  -- updates and deletes need one without a key
ALTER TABLE full_t REPLICA IDENTITY FULL;
"""

COLUMNS = ("id, c_int2, c_int8, c_num, c_numeric, c_f4, c_f8, c_bool, c_text, c_varchar, c_char, c_date, "
           "c_time, c_ts, c_tstz, c_tstz3, c_json, c_jsonb, c_uuid, c_bytea, c_ints, c_texts, c_mood")


def full_row(i: int) -> str:
    """A row with a value in every column, varied by `i`."""
    return (
        f"({i}, {-i}, {9_000_000_000 + i}, {1234.5 + i}, {i}.000123456789012345, {i}.5, -{i}.25e10, {str(i % 2 == 0).lower()}, "
        f"'text {i} é', 'varchar {i}', 'ch{i}', DATE '2024-02-{(i % 28) + 1:02d}', TIME '12:34:56.{i:06d}', "
        f"TIMESTAMP '2024-03-01 01:02:03.{i:06d}', TIMESTAMPTZ '2024-03-01 12:34:56.{i:03d}+02', "
        f"TIMESTAMPTZ '2024-03-01 12:34:56.{i:06d}+00', "
        f"'{{\"a\": [{i}, 2], \"s\": \"x\"}}', '{{\"b\": {{\"c\": null, \"n\": {i}}}}}', "
        f"'{uuid.UUID(int=i)}', '\\xdeadbeef{i:02x}', '{{{i},2,3}}', '{{\"a\",\"b c\",{i}}}', "
        f"'{('sad', 'ok', 'happy')[i % 3]}')"
    )


BEFORE_SNAPSHOT = [
    f"INSERT INTO types ({COLUMNS}) VALUES {full_row(1)}, {full_row(2)}, {full_row(3)}",
    "INSERT INTO single VALUES (1, 'alone')",
    "INSERT INTO full_t VALUES (1, 'one', 10), (2, 'two', 20)",
]

# Each statement is its own transaction unless it says BEGIN.
CHANGES = [
    f"INSERT INTO types ({COLUMNS}) VALUES {full_row(10)}",
    # NULL-heavy: nothing but the key and the NOT NULL column.
    "INSERT INTO types (id) VALUES (11)",
    "UPDATE types SET c_text = 'changed', c_num = 0.5, c_numeric = -7, c_bool = NULL WHERE id = 1",
    # A primary-key change: delete (+ tombstone) of the old key, create of the new one.
    "UPDATE types SET id = 100 WHERE id = 2",
    "DELETE FROM types WHERE id = 3",
    "UPDATE types SET c_ints = '{}', c_texts = '{}', c_jsonb = NULL, c_numeric = 'NaN', c_f8 = 'Infinity', "
    "c_f4 = 'NaN' WHERE id = 11",
    f"BEGIN; INSERT INTO types ({COLUMNS}) VALUES {full_row(12)}; "
    "UPDATE types SET c_varchar = 'in tx' WHERE id = 12; DELETE FROM types WHERE id = 10; COMMIT",
    "INSERT INTO types (id, c_num, c_numeric, c_time, c_tstz) "
    "VALUES (13, -99999999.99, 0.1, TIME '00:00:00', TIMESTAMPTZ '1970-01-01 00:00:00+00')",
    # Edge values: infinities, empty strings and arrays, NULL array elements.
    "INSERT INTO types (id, c_date, c_ts, c_tstz, c_text, c_bytea, c_texts, c_ints, c_num, c_json) "
    "VALUES (14, 'infinity', '-infinity', 'infinity', '', '', '{NULL,\"\"}', '{NULL,1}', -0.01, 'null')",
    "INSERT INTO types (id, c_date, c_ts, c_tstz, c_time) VALUES (16, '-infinity', 'infinity', '-infinity', '24:00:00')",
    # A TOASTed value an update does not change: the server does not send it.
    "INSERT INTO types (id, c_text, c_texts, c_bytea) SELECT 15, string_agg(md5(i::text), ''), "
    "ARRAY[string_agg(md5(i::text), '')], decode(string_agg(md5(i::text), ''), 'hex') FROM generate_series(1, 400) i",
    "UPDATE types SET c_int2 = 15 WHERE id = 15",
    "INSERT INTO more_types (c_num5, c_interval, c_timetz, c_money, c_inet, c_cidr, c_macaddr, c_xml, c_bit, "
    "c_varbit, c_time3, c_ts3, c_nums, c_int2s, c_bigs, c_dates, c_ts_d) VALUES (12345, '1 year 2 mons 3 days 04:05:06.789', "
    "'12:34:56.789+02', 12.34, '192.168.1.1', '10.0.0.0/8', '08:00:2b:01:02:03', '<a>x</a>', B'101', B'1101', "
    "'01:02:03.456', '2024-03-01 01:02:03.456', '{1.50,-2.25}', '{1,2}', '{9000000000}', '{2024-01-01,NULL}', "
    "'2024-01-01 00:00:00')",
    "INSERT INTO more_types (c_bit1, c_interval, c_timetz, c_money, c_bit, c_varbit) "
    "VALUES (B'1', '-1 day -00:00:01.5', '23:59:59.999999-08', -1234.5, B'000', B'100000001')",
    "INSERT INTO more_types (id) VALUES (DEFAULT)",
    "INSERT INTO nopk VALUES (1, 'a'), (2, 'b')",
    "UPDATE nopk SET v = 'c' WHERE k = 1",
    "DELETE FROM nopk WHERE k = 2",
    # Truncates (skipped.operations=none): one event per table, in a
    # transaction between other changes.
    "BEGIN; INSERT INTO nopk VALUES (3, 'd'); TRUNCATE nopk, single; INSERT INTO single VALUES (2, 'again'); COMMIT",
    "INSERT INTO full_t VALUES (3, NULL, NULL)",
    "UPDATE full_t SET qty = coalesce(qty, 0) + 1",
    "UPDATE full_t SET id = 20 WHERE id = 1",
    "DELETE FROM full_t WHERE id = 2",
    "UPDATE single SET note = NULL",
    f"INSERT INTO types (id) VALUES ({MARKER_ID})",
    f"INSERT INTO single VALUES ({MARKER_ID}, 'marker')",
    f"INSERT INTO nopk VALUES ({MARKER_ID}, 'marker')",
    f"INSERT INTO more_types (id) VALUES ({MARKER_ID})",
    f"INSERT INTO full_t VALUES ({MARKER_ID}, 'marker', 0)",
]

SNAPSHOT_COUNTS = {"types": 3, "single": 1, "full_t": 2}  # nopk: empty at the snapshot


def connector_config(postgres, db: str, prefix: str, suffix: str) -> dict:
    return {
        "connector.class": DEBEZIUM_CLASS,
        "tasks.max": "1",
        "database.hostname": postgres.host,
        "database.port": str(postgres.port),
        "database.user": postgres.user,
        "database.password": "",
        "database.dbname": db,
        "topic.prefix": prefix,
        "plugin.name": "pgoutput",
        # Slots are the server's, not the database's: names of this run's own.
        "slot.name": f"{prefix}_{suffix}",
        "publication.name": f"{prefix}_pub_{suffix}",
        "publication.autocreate.mode": "filtered",
        "table.include.list": "public.types,public.full_t,public.single,public.nopk,public.more_types",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "true",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
        "skipped.operations": "none",
        "provide.transaction.metadata": "true",
    }


# ----------------------------------------------------------------------------
# Reading the topics
# ----------------------------------------------------------------------------


def decode(raw: bytes | None):
    return None if raw is None else json.loads(raw)


def decode_header(raw: bytes | None):
    """A header's value: JSON where it is JSON (Debezium's old/new key), else its text."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def read_until(bootstrap: str, topic: str, done, diagnose, timeout: float = TIMEOUT_S) -> list[dict]:
    """Every record of partition 0 of `topic`, read from the start until `done(records)`;
    a timeout's message carries `diagnose()` (the connector's status, the worker's log)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ref-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "enable.partition.eof": False})
    c.assign([TopicPartition(topic, 0, -2)])  # OFFSET_BEGINNING
    records: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while not done(records):
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: condition not met within {timeout}s; {len(records)} records, "
                                     f"the last keys {[key_id(r) for r in records][-5:]}\n{diagnose()}")
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                continue  # e.g. the topic's leader not known yet
            records.append({
                "offset": m.offset(),
                "key": decode(m.key()),
                "value": decode(m.value()),
                "headers": [(k, decode_header(v)) for k, v in (m.headers() or [])],
            })
    finally:
        c.close()
    return records


def key_id(record: dict):
    key = record["key"]
    return key["payload"]["id"] if key else None


def has_marker(records: list[dict]) -> bool:
    """The script's last change of the table is there (nopk has no key: its row)."""
    for r in records:
        p = payload(r)
        if p and (key_id(r) == MARKER_ID or (p.get("after") or {}).get("k") == MARKER_ID):
            return True
    return False


# ----------------------------------------------------------------------------
# Normalizing and comparing
# ----------------------------------------------------------------------------

TS_FIELDS = ("ts_ms", "ts_us", "ts_ns")


def normalize(obj, prefix: str):
    """Masks what must differ between the two connectors (see the module doc)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "name" and isinstance(v, str) and v.startswith(prefix + "."):
                v = "<prefix>" + v[len(prefix):]
            out[k] = normalize(v, prefix)
        return out
    if isinstance(obj, list):
        return [normalize(v, prefix) for v in obj]
    return obj


def mask_payload(value: dict, prefix: str) -> dict:
    """The envelope's payload with timestamps, versions and positions masked (their presence kept)."""
    payload = dict(value)
    for f in TS_FIELDS:
        if isinstance(payload.get(f), int):
            payload[f] = "<ts>"
    src = payload.get("source")
    if isinstance(src, dict):
        src = dict(src)
        if isinstance(src.get("version"), str):
            src["version"] = "<version>"
        if src.get("name") == prefix:
            src["name"] = "<prefix>"
        for f in TS_FIELDS:
            if isinstance(src.get(f), int):
                src[f] = "<ts>"
        # A streamed change's LSN and transaction are the server's, the same
        # for every slot: compared as they are. The snapshot's depend on the
        # connector's own slot and transaction: present, values masked.
        if src.get("snapshot") != "false":
            if isinstance(src.get("lsn"), int):
                src["lsn"] = "<lsn>"
            if isinstance(src.get("txId"), int):
                src["txId"] = "<txId>"
            if isinstance(src.get("sequence"), str):
                src["sequence"] = "<sequence>"
        payload["source"] = src
    return payload


def comparable(record: dict, prefix: str) -> dict:
    key = normalize(record["key"], prefix)
    value = record["value"]
    if payload(record) is not None:
        value = normalize(value, prefix)
        value = {"schema": value.get("schema"), "payload": mask_payload(value["payload"], prefix)}
    headers = {}
    for k, v in record["headers"]:
        if v == prefix:
            v = "<prefix>"
        elif k == "__debezium.context.runId" and isinstance(v, str) and v:
            v = "<runId>"  # one per task run
        headers.setdefault(k, []).append(normalize(v, prefix))
    return {"key": key, "value": value, "headers": headers}


def is_field_list(x) -> bool:
    return isinstance(x, list) and bool(x) and all(isinstance(f, dict) and "field" in f for f in x)


def diff(a, b, path: str = "") -> list[tuple[str, object, object]]:
    """Every (path, a's value, b's value) where `a` and `b` differ.

    A struct schema's field list is compared by field name (a missing field
    is one difference, not a shift of all the later ones) and, separately,
    by the order of the names.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            if k not in b:
                out.append((f"{path}.{k}", a[k], "<absent>"))
            elif k not in a:
                out.append((f"{path}.{k}", "<absent>", b[k]))
            else:
                out.extend(diff(a[k], b[k], f"{path}.{k}"))
        return out
    if is_field_list(a) and is_field_list(b):
        names_a, names_b = [f["field"] for f in a], [f["field"] for f in b]
        common = [n for n in names_a if n in names_b]
        out = []
        if common != [n for n in names_b if n in names_a]:
            out.append((f"{path} (field order)", names_a, names_b))
        by_b = {f["field"]: f for f in b}
        for f in a:
            if f["field"] in by_b:
                out.extend(diff(f, by_b[f["field"]], f"{path}[{f['field']}]"))
            else:
                out.append((f"{path}[{f['field']}]", f, "<absent>"))
        out.extend((f"{path}[{f['field']}]", "<absent>", f) for f in b if f["field"] not in names_a)
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = []
        for i in range(max(len(a), len(b))):
            if i >= len(a):
                out.append((f"{path}[{i}]", "<absent>", b[i]))
            elif i >= len(b):
                out.append((f"{path}[{i}]", a[i], "<absent>"))
            else:
                out.extend(diff(a[i], b[i], f"{path}[{i}]"))
        return out
    if type(a) is not type(b) or a != b:
        return [(path, a, b)]
    return []


def payload(record: dict) -> dict | None:
    """The envelope of a change event; None for a tombstone (or a value without a payload)."""
    v = record["value"]
    return v.get("payload") if isinstance(v, dict) else None


def describe(record: dict | None) -> str:
    if record is None:
        return "<none>"
    p = payload(record)
    op = p.get("op") if p else "tombstone" if record["value"] is None else f"value {json.dumps(record['value'])}"
    return f"offset {record['offset']} key {key_id(record)} op {op}"


def short(x, limit: int = 300) -> str:
    text = json.dumps(x)
    return text if len(text) <= limit else text[:limit] + "…"


def compare_topics(table: str, ref: list[dict], rnl: list[dict]) -> list[str]:
    """Readable differences between the two topics of one table, event by event.

    A difference that repeats (a schema's, say) is listed once, with the
    events it was seen in.
    """
    problems = []
    if len(ref) != len(rnl):
        problems.append(f"{table}: Debezium wrote {len(ref)} records, Runnel {len(rnl)}")
    seen: dict[tuple[str, str, str], list[str]] = {}
    for i in range(max(len(ref), len(rnl))):
        a = ref[i] if i < len(ref) else None
        b = rnl[i] if i < len(rnl) else None
        if a is None or b is None:
            problems.append(f"{table} #{i}: Debezium {describe(a)} | Runnel {describe(b)}")
            continue
        label = f"#{i} {describe(a)}" + ("" if describe(a) == describe(b) else f" (Runnel: {describe(b)})")
        for path, x, y in diff(comparable(a, "ref"), comparable(b, "rnl")):
            seen.setdefault((path, short(x), short(y)), []).append(label)
    for (path, x, y), events in seen.items():
        where = events[0] if len(events) == 1 else f"{len(events)} events, first {events[0]}"
        problems.append(f"{table} {path}\n    Debezium: {x}\n    Runnel:   {y}\n    in {where}")
    return problems


def positions_increase(table: str, side: str, records: list[dict]) -> list[str]:
    """While streaming, source.lsn and txId are present and never go back."""
    problems = []
    last_lsn = last_tx = -1
    for r in records:
        if payload(r) is None:
            continue
        src = payload(r)["source"]
        if src.get("snapshot") not in ("false", None):
            continue
        lsn, tx = src.get("lsn"), src.get("txId")
        if not isinstance(lsn, int) or not isinstance(tx, int) or not isinstance(src.get("sequence"), str):
            problems.append(f"{side} {table} {describe(r)}: lsn {lsn!r}, txId {tx!r}, sequence {src.get('sequence')!r}")
            continue
        if lsn < last_lsn or tx < last_tx:
            problems.append(f"{side} {table} {describe(r)}: lsn {lsn} after {last_lsn}, txId {tx} after {last_tx}")
        last_lsn, last_tx = lsn, tx
    return problems


# ----------------------------------------------------------------------------
# The test
# ----------------------------------------------------------------------------


def create_topics(bootstrap: str, names: list[str]) -> None:
    """One partition each, created before the connectors write, so both sides' order is the topic's."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for name, fut in admin.create_topics([NewTopic(n, 1, 1) for n in names]).items():
        fut.result(timeout=30)


def wait_plugin(rest: ConnectRest, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if any(p.get("class") == DEBEZIUM_CLASS for p in rest.plugins()):
                return
        except (OSError, ConnectError, ValueError) as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"{rest.url} does not list {DEBEZIUM_CLASS}: {last}")


# The index in CHANGES after which the restart variant restarts both
# connectors (their tasks stop, commit their offsets and start again).
RESTART_AFTER = 7


def restart_task(rest: ConnectRest, name: str) -> None:
    """Restarts `name`'s task 0 (stop, offsets committed, start) and waits until it runs."""
    http("POST", f"{rest.url}/connectors/{name}/tasks/0/restart")
    rest.wait_running(name)


@pytest.mark.parametrize("restart", [False, True], ids=["straight", "restart"])
def test_runnel_cdc_matches_debezium(postgres, pg_database, make_server, connect_worker, restart):
    """The script straight through, or with both tasks restarted in the middle
    (they resume from their stored offsets: nothing lost, nothing repeated)."""
    db = pg_database
    postgres.psql(SCHEMA_SQL, db)
    for sql in BEFORE_SNAPSHOT:
        postgres.psql(sql, db)

    connect_port = free_port()
    # Only the broker and the connect worker: no fixed ports (8081, 8088) to collide on.
    server = make_server(extra_args=["--no-sql", "--no-registry", "--connect-listen", f"127.0.0.1:{connect_port}"]).start()
    bootstrap = server.bootstrap
    create_topics(bootstrap, [f"{p}.public.{t}" for p in ("ref", "rnl") for t in TABLES]
                  + [f"{p}.transaction" for p in ("ref", "rnl")])

    # The reference: Apache Kafka's Connect worker, on Runnel's broker.
    reference = connect_worker(bootstrap)
    runnel = ConnectRest(f"http://127.0.0.1:{connect_port}")
    wait_plugin(runnel)

    suffix = db[-8:]
    reference.rest.create("ref-pg", connector_config(postgres, db, "ref", suffix))
    runnel.create("rnl-pg", connector_config(postgres, db, "rnl", suffix))
    reference.rest.wait_running("ref-pg", on_fail=reference.tail)
    runnel.wait_running("rnl-pg")

    # Both snapshots are on their topics (so both slots exist) before anything changes.
    def diagnose(prefix: str):
        def run() -> str:
            rest, name, log = ((reference.rest, "ref-pg", reference.tail) if prefix == "ref"
                               else (runnel, "rnl-pg", lambda: tail(server.log_path, 40)))
            try:
                status = json.dumps(rest.status(name), indent=2)
            except (OSError, ConnectError) as e:
                status = repr(e)
            return f"status of {name}: {status}\n{log()}"
        return run

    for prefix in ("ref", "rnl"):
        for t in SNAPSHOT_COUNTS:
            read_until(bootstrap, f"{prefix}.public.{t}", lambda rs, n=SNAPSHOT_COUNTS[t]: len(rs) >= n,
                       diagnose(prefix))

    for i, sql in enumerate(CHANGES):
        postgres.psql(sql, db)
        if restart and i == RESTART_AFTER:
            restart_task(reference.rest, "ref-pg")
            restart_task(runnel, "rnl-pg")

    problems: list[str] = []
    for t in TABLES:
        ref = read_until(bootstrap, f"ref.public.{t}", has_marker, diagnose("ref"))
        rnl = read_until(bootstrap, f"rnl.public.{t}", has_marker, diagnose("rnl"))
        dump = os.environ.get("RUNNEL_REFERENCE_DUMP")  # a folder: both topics as JSON lines, to read
        if dump:
            os.makedirs(dump, exist_ok=True)
            for prefix, records in (("ref", ref), ("rnl", rnl)):
                with open(os.path.join(dump, f"{prefix}.{t}.jsonl"), "w") as f:
                    f.writelines(json.dumps(r) + "\n" for r in records)
        problems += positions_increase(t, "Debezium", ref)
        problems += positions_increase(t, "Runnel", rnl)
        problems += compare_topics(t, ref, rnl)

    # Transaction metadata: BEGIN and END of each streamed transaction (each
    # statement of the script is one) on `<prefix>.transaction`.
    def ends(n: int):
        return lambda rs: sum(1 for r in rs if (payload(r) or {}).get("status") == "END") >= n

    dump = os.environ.get("RUNNEL_REFERENCE_DUMP")
    txns = {}
    for prefix in ("ref", "rnl"):
        txns[prefix] = read_until(bootstrap, f"{prefix}.transaction", ends(len(CHANGES)), diagnose(prefix))
        if dump:
            with open(os.path.join(dump, f"{prefix}.transaction.jsonl"), "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in txns[prefix])
    ref, rnl = txns["ref"], txns["rnl"]
    problems += compare_topics("transaction", ref, rnl)

    if problems:
        pytest.fail("Runnel's CDC events differ from Debezium's:\n" + "\n".join(problems), pytrace=False)
