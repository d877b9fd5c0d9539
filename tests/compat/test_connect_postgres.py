"""The talk's slides 42-47 end to end, on one `runnel serve` and a real
PostgreSQL: rows inserted, updated and deleted in PostgreSQL appear in the
log as Debezium-shaped change events (Runnel's CDC source on its connector
runtime), a SQL query over them computes a table, and the PostgreSQL sink
writes that table back; the database's final state is checked with psql.

Every connector is created with ksqlDB's connector statements through the
SQL API, which reaches the connector runtime's Kafka Connect REST API.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from compat_util import ck_consumer, ksql_statements, wait_until
from conftest import RunnelServer, free_port, runnel_bin

JSON = "org.apache.kafka.connect.json.JsonConverter"


class Server:
    """runnel serve with its SQL API and connector runtime on free ports."""

    def __init__(self, tmp_path):
        self.sql_port, self.connect_port, self.registry_port = free_port(), free_port(), free_port()
        self.connect = f"http://127.0.0.1:{self.connect_port}"
        self.server = RunnelServer(
            runnel_bin(), tmp_path / "data", tmp_path / "runnel.log",
            ["--sql-listen", f"127.0.0.1:{self.sql_port}",
             "--registry-listen", f"127.0.0.1:{self.registry_port}",
             "--connect-listen", f"127.0.0.1:{self.connect_port}",
             "--connect-url", self.connect],
        ).start()
        self.sql = f"http://127.0.0.1:{self.sql_port}"

        def ready():
            try:
                return (httpx.get(f"{self.connect}/connectors", timeout=2).status_code == 200
                        and httpx.get(f"{self.sql}/info", timeout=2).status_code == 200)
            except httpx.HTTPError:
                return False
        wait_until(ready, timeout=60, what="the SQL API and the connector runtime")

    def ksql(self, sql: str) -> list:
        return ksql_statements(self.sql, sql)

    def ksql_error(self, sql: str) -> tuple[int, dict]:
        r = httpx.post(f"{self.sql}/ksql", json={"ksql": sql}, timeout=60)
        assert r.status_code >= 400, f"{sql!r} succeeded: {r.text}"
        return r.status_code, r.json()


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path)
    yield s
    assert s.server.stop() == 0


def pg_props(postgres, db: str) -> str:
    return (f"\"database.hostname\"='{postgres.host}', \"database.port\"='{postgres.port}', "
            f"\"database.user\"='{postgres.user}', \"database.password\"='', \"database.dbname\"='{db}'")


class TopicReader:
    """Reads a topic from the beginning, keeping what it has seen."""

    def __init__(self, bootstrap: str, topic: str):
        self.consumer = ck_consumer(bootstrap)
        self.consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self.records: list[tuple] = []

    def until(self, count: int, timeout: float = 60.0) -> list[tuple]:
        def enough():
            m = self.consumer.poll(0.2)
            if m is not None and m.error() is None:
                key = json.loads(m.key()) if m.key() is not None else None
                value = json.loads(m.value()) if m.value() is not None else None
                self.records.append((key, value))
            return len(self.records) >= count
        wait_until(enough, timeout=timeout, interval=0, what=f"{count} records")
        return self.records

    def close(self):
        self.consumer.close()


def read_all(bootstrap: str, topic: str) -> list[tuple]:
    """Every (key, value) of partition 0 of a topic, as JSON."""
    from confluent_kafka import KafkaError
    c = ck_consumer(bootstrap, **{"enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out = []
    while True:
        m = c.poll(5)
        if m is None or (m.error() and m.error().code() == KafkaError._PARTITION_EOF):
            break
        if m.error() is None:
            out.append((m.key(), m.value()))
    c.close()
    return out


def test_changes_in_postgres_flow_through_cdc_and_sql_back_into_postgres(server, postgres, pg_database):
    db = pg_database
    suffix = uuid.uuid4().hex[:8]
    postgres.psql(
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, amount numeric(10,2) NOT NULL);"
        "INSERT INTO orders VALUES (1, 10, 5.50), (2, 10, 4.50), (3, 20, 7.25), (4, 20, 1.00), (5, 30, 9.99);"
        "CREATE TABLE spend_out (\"CUSTOMER_ID\" bigint PRIMARY KEY, \"TOTAL\" double precision, \"ORDERS\" bigint);",
        db)

    # The change events as Debezium shapes them (envelope, no schema).
    server.ksql(
        f"CREATE SOURCE CONNECTOR raw_{suffix} WITH ("
        "\"connector.class\"='io.debezium.connector.postgresql.PostgresConnector', "
        f"{pg_props(postgres, db)}, \"topic.prefix\"='raw{suffix}', \"table.include.list\"='public.orders', "
        f"\"slot.name\"='raw_{suffix}', \"publication.name\"='raw_{suffix}', "
        "\"decimal.handling.mode\"='double', "
        f"\"key.converter\"='{JSON}', \"key.converter.schemas.enable\"='false', "
        f"\"value.converter\"='{JSON}', \"value.converter.schemas.enable\"='false');")
    # The same changes as rows keyed by id (Debezium's unwrap transform),
    # deletes as tombstones: what a table is read from.
    server.ksql(
        f"CREATE SOURCE CONNECTOR flat_{suffix} WITH ("
        "\"connector.class\"='io.debezium.connector.postgresql.PostgresConnector', "
        f"{pg_props(postgres, db)}, \"topic.prefix\"='flat{suffix}', \"table.include.list\"='public.orders', "
        f"\"slot.name\"='flat_{suffix}', \"publication.name\"='flat_{suffix}', "
        "\"decimal.handling.mode\"='double', "
        "\"transforms\"='unwrap,key', "
        "\"transforms.unwrap.type\"='io.debezium.transforms.ExtractNewRecordState', "
        "\"transforms.unwrap.drop.tombstones\"='false', "
        "\"transforms.key.type\"='org.apache.kafka.connect.transforms.ExtractField$Key', "
        "\"transforms.key.field\"='id', "
        f"\"key.converter\"='{JSON}', \"key.converter.schemas.enable\"='false', "
        f"\"value.converter\"='{JSON}', \"value.converter.schemas.enable\"='false');")

    listed = server.ksql("SHOW SOURCE CONNECTORS;")[0]
    assert listed["@type"] == "connector_list"
    mine = {c["name"]: c for c in listed["connectors"] if c["name"].endswith(suffix.upper())}
    assert set(mine) == {f"RAW_{suffix.upper()}", f"FLAT_{suffix.upper()}"}, listed
    assert all(c["type"] == "source" and c["className"] == "io.debezium.connector.postgresql.PostgresConnector"
               for c in mine.values()), listed

    # The snapshot: one 'r' event per row.
    raw = TopicReader(server.server.bootstrap, f"raw{suffix}.public.orders")
    events = raw.until(5)
    assert [e[1]["op"] for e in events] == ["r"] * 5
    assert [e[0] for e in events] == [{"id": i} for i in range(1, 6)]
    assert events[0][1]["after"] == {"id": 1, "customer_id": 10, "amount": 5.5}
    assert events[0][1]["before"] is None
    assert events[0][1]["source"]["table"] == "orders" and events[0][1]["source"]["db"] == db

    # Streaming: an insert, an update and a delete in PostgreSQL.
    postgres.psql("INSERT INTO orders VALUES (6, 30, 0.01)", db)
    postgres.psql("UPDATE orders SET amount = 6.00 WHERE id = 2", db)
    postgres.psql("DELETE FROM orders WHERE id = 3", db)
    events = raw.until(9)
    changes = events[5:]
    assert [(e[0], e[1] and e[1]["op"]) for e in changes] == [
        ({"id": 6}, "c"), ({"id": 2}, "u"), ({"id": 3}, "d"), ({"id": 3}, None)], changes
    assert changes[0][1]["after"] == {"id": 6, "customer_id": 30, "amount": 0.01}
    assert changes[1][1]["after"]["amount"] == 6.0
    assert changes[2][1]["before"]["id"] == 3 and changes[2][1]["after"] is None
    txids = [e[1]["source"]["txId"] for e in changes[:3]]
    assert len(set(txids)) == 3, txids
    raw.close()

    # SQL over the unwrapped changes: a table of orders, and spend per customer.
    flat = f"flat{suffix}.public.orders"
    server.ksql(
        f"CREATE TABLE orders_{suffix} (id INT PRIMARY KEY, customer_id INT, amount DOUBLE) "
        f"WITH (kafka_topic='{flat}', key_format='JSON', value_format='JSON');")
    server.ksql(
        f"CREATE TABLE spend_{suffix} WITH (kafka_topic='spend_{suffix}', key_format='JSON', value_format='JSON') AS "
        f"SELECT customer_id, SUM(amount) AS total, COUNT(*) AS orders FROM orders_{suffix} "
        "GROUP BY customer_id EMIT CHANGES;")

    # The sink writes the table back to PostgreSQL, upserting by key.
    server.ksql(
        f"CREATE SINK CONNECTOR sink_{suffix} WITH ("
        "\"connector.class\"='io.confluent.connect.jdbc.JdbcSinkConnector', "
        f"\"connection.url\"='jdbc:postgresql://{postgres.host}:{postgres.port}/{db}', "
        f"\"connection.user\"='{postgres.user}', \"topics\"='spend_{suffix}', "
        "\"table.name.format\"='spend_out', \"insert.mode\"='upsert', "
        "\"pk.mode\"='record_key', \"pk.fields\"='CUSTOMER_ID', \"delete.enabled\"='true', "
        f"\"key.converter\"='{JSON}', \"key.converter.schemas.enable\"='false', "
        f"\"value.converter\"='{JSON}', \"value.converter.schemas.enable\"='false');")

    # More changes while everything runs.
    postgres.psql("UPDATE orders SET customer_id = 20 WHERE id = 5", db)
    postgres.psql("BEGIN; INSERT INTO orders VALUES (7, 10, 2.25); DELETE FROM orders WHERE id = 1; COMMIT", db)

    def expected():
        return sorted(
            (int(c), round(float(t), 2), int(n)) for c, t, n in postgres.rows(
                "SELECT customer_id, sum(amount), count(*) FROM orders GROUP BY customer_id", db))

    def written():
        return sorted((int(c), round(float(t), 2), int(n)) for c, t, n in postgres.rows(
            "SELECT \"CUSTOMER_ID\", \"TOTAL\", \"ORDERS\" FROM spend_out", db))

    want = expected()
    assert want == [(10, 8.25, 2), (20, 10.99, 2), (30, 0.01, 1)], want
    try:
        wait_until(lambda: written() == want, timeout=90, what=f"spend_out to become {want}")
    except AssertionError as e:
        dumps = {t: read_all(server.server.bootstrap, t) for t in (flat, f"spend_{suffix}")}
        raise AssertionError(f"{e}\nspend_out: {written()}\ntopics: {dumps}") from None

    described = server.ksql(f"DESCRIBE CONNECTOR sink_{suffix};")[0]
    assert described["@type"] == "connector_description", described
    assert described["connectorClass"] == "io.confluent.connect.jdbc.JdbcSinkConnector"
    assert described["status"]["connector"]["state"] == "RUNNING", described
    assert described["topics"] == [f"spend_{suffix}"], described

    # Connect's refusals come back through SQL with Connect's status.
    status, body = server.ksql_error(
        f"CREATE SINK CONNECTOR sink_{suffix} WITH (\"connector.class\"='JdbcSinkConnector');")
    assert status == 409 and body["error_code"] == 40900, body
    status, body = server.ksql_error(
        f"CREATE SINK CONNECTOR bad_{suffix} WITH (\"connector.class\"='io.confluent.connect.jdbc.JdbcSinkConnector', "
        "\"topics\"='x', \"insert.mode\"='sometimes');")
    assert status == 400 and "insert.mode" in body["message"], body

    for name in (f"raw_{suffix}", f"flat_{suffix}", f"sink_{suffix}"):
        dropped = server.ksql(f"DROP CONNECTOR {name};")[0]
        assert dropped == {"@type": "drop_connector", "statementText": f"DROP CONNECTOR {name};",
                           "connectorName": name.upper(), "warnings": []}, dropped
    warning = server.ksql(f"DROP CONNECTOR IF EXISTS raw_{suffix};")[0]
    assert warning["@type"] == "warning_entity" and "does not exist" in warning["message"], warning
