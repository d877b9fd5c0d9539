"""The Schema Registry converters of Runnel's connector runtime
(`io.confluent.connect.avro.AvroConverter`, `...json.JsonSchemaConverter`,
`...protobuf.ProtobufConverter`) against clients nobody here wrote:

* the PostgreSQL CDC source writes a table's rows with the converter; they
  are read by confluent-kafka's deserializers (values equal to the rows,
  the schema registered under `<topic>-value`, its id on the wire) and by
  Runnel's SQL with `VALUE_FORMAT='AVRO'` (or `'JSON_SR'`);
* the JDBC-style PostgreSQL sink reads records confluent-kafka's
  serializers wrote and upserts them as rows;
* a converter without `schema.registry.url`, or with a bad setting, is a
  400 with Kafka Connect's error body, at creation and in validation.

One `runnel serve` runs broker, registry, SQL engine and connect worker;
each test uses its own PostgreSQL database (the `pg_database` fixture).
"""

from __future__ import annotations

import datetime
import decimal
import json
import struct
import time
import uuid

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from compat_util import ck_consume, ck_consumer, ck_flush, ck_producer, ksql_statements, wait_until
from conftest import RunnelServer, free_port, runnel_bin

AVRO = "io.confluent.connect.avro.AvroConverter"
JSON_SR = "io.confluent.connect.json.JsonSchemaConverter"
PROTOBUF = "io.confluent.connect.protobuf.ProtobufConverter"


class Server:
    """runnel serve with its registry, SQL API and connect worker on free ports."""

    def __init__(self, tmp_path):
        self.sql_port, self.connect_port, self.registry_port = free_port(), free_port(), free_port()
        self.server = RunnelServer(
            runnel_bin(), tmp_path / "data", tmp_path / "runnel.log",
            ["--sql-listen", f"127.0.0.1:{self.sql_port}",
             "--registry-listen", f"127.0.0.1:{self.registry_port}",
             "--connect-listen", f"127.0.0.1:{self.connect_port}"],
        ).start()
        self.connect = f"http://127.0.0.1:{self.connect_port}"
        self.sql = f"http://127.0.0.1:{self.sql_port}"
        self.registry = f"http://127.0.0.1:{self.registry_port}"

        def ready():
            try:
                return all(httpx.get(u, timeout=2).status_code == 200 for u in
                           (f"{self.connect}/connectors", f"{self.sql}/info", f"{self.registry}/subjects"))
            except httpx.HTTPError:
                return False
        wait_until(ready, timeout=60, what="the connect worker, SQL API and registry")

    def create(self, name: str, config: dict) -> httpx.Response:
        return httpx.post(f"{self.connect}/connectors", json={"name": name, "config": config}, timeout=60)

    def running(self, name: str):
        def ok():
            r = httpx.get(f"{self.connect}/connectors/{name}/status", timeout=5)
            if r.status_code != 200:
                return False
            s = r.json()
            failed = [t for t in s["tasks"] if t["state"] == "FAILED"]
            assert not failed, failed
            return s["connector"]["state"] == "RUNNING" and s["tasks"] and all(
                t["state"] == "RUNNING" for t in s["tasks"])
        wait_until(ok, timeout=60, what=f"connector {name} running")

    def ksql(self, sql: str) -> list:
        return ksql_statements(self.sql, sql)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("connect-registry"))
    yield s
    assert s.server.stop() == 0


def read(bootstrap: str, topic: str, count: int, timeout: float = 60):
    c = ck_consumer(bootstrap)
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    msgs = ck_consume(c, count, timeout=timeout)
    c.close()
    return msgs


def cdc_config(postgres, db: str, prefix: str, converter: str, registry: str) -> dict:
    """The CDC source over public.items, Debezium's unwrap transform making
    each change the row itself, keys and values through `converter`."""
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": postgres.host, "database.port": str(postgres.port),
        "database.user": postgres.user, "database.password": "", "database.dbname": db,
        "topic.prefix": prefix, "table.include.list": "public.items",
        "slot.name": prefix, "publication.name": prefix,
        "transforms": "unwrap",
        "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
        "key.converter": converter, "key.converter.schema.registry.url": registry,
        "value.converter": converter, "value.converter.schema.registry.url": registry,
    }


ITEMS = (
    "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2) NOT NULL, "
    "qty smallint, added date, active boolean NOT NULL);"
    "INSERT INTO items VALUES (1, 'apple', 1.50, 3, '2024-01-02', true), "
    "(2, NULL, 20.00, NULL, NULL, false), (3, 'cherry', 0.05, -2, '1969-12-31', true);"
)


def table_rows(postgres, db: str) -> list[dict]:
    rows = postgres.rows(
        "SELECT id, coalesce(name, '\\N'), price, coalesce(qty::text, '\\N'), "
        "coalesce((added - date '1970-01-01')::text, '\\N'), active FROM items ORDER BY id", db)
    none = lambda v, f: None if v == "\\N" else f(v)  # noqa: E731
    return [{"id": int(i), "name": none(n, str), "price": decimal.Decimal(p), "qty": none(q, int),
             "added": none(a, int), "active": b == "t"} for i, n, p, q, a, b in rows]


def test_cdc_source_with_avro_converter_reads_in_avro_deserializer_and_sql(server, postgres, pg_database):
    db = pg_database
    postgres.psql(ITEMS, db)
    prefix = f"av{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.public.items"
    r = server.create(prefix, cdc_config(postgres, db, prefix, AVRO, server.registry))
    assert r.status_code == 201, r.text
    try:
        check_avro_cdc(server, postgres, db, topic, prefix)
    finally:
        # Its replication slot must be free before the database is dropped.
        assert httpx.delete(f"{server.connect}/connectors/{prefix}", timeout=30).status_code == 204


def check_avro_cdc(server, postgres, db, topic, prefix):
    server.running(prefix)

    client = SchemaRegistryClient({"url": server.registry})
    msgs = read(server.server.bootstrap, topic, 3)
    postgres.psql("INSERT INTO items VALUES (4, 'date', 12345678.99, 32767, '2038-01-19', false);"
                  "UPDATE items SET name = 'apricot', qty = NULL WHERE id = 1;", db)
    msgs = read(server.server.bootstrap, topic, 5)

    # The schemas are registered under the TopicNameStrategy subjects and
    # their ids are on the wire.
    value_schema = client.get_latest_version(f"{topic}-value")
    key_schema = client.get_latest_version(f"{topic}-key")
    assert value_schema.schema.schema_type == "AVRO"
    registered = json.loads(value_schema.schema.schema_str)
    # The unwrapped row's schema is Debezium's optional `after` schema.
    assert registered[0] == "null"
    registered = registered[1]
    assert (registered["type"], registered["name"], registered["namespace"]) == ("record", "Value", topic)
    assert registered["connect.name"] == f"{topic}.Value"
    fields = {f["name"]: f for f in registered["fields"]}
    assert fields["name"]["type"] == ["null", "string"] and fields["name"]["default"] is None
    assert fields["price"]["type"]["logicalType"] == "decimal"
    assert (fields["price"]["type"]["precision"], fields["price"]["type"]["scale"]) == (10, 2)
    assert fields["qty"]["type"][1]["connect.type"] == "int16"
    for m in msgs:
        assert struct.unpack(">bI", m.value()[:5]) == (0, value_schema.schema_id)
        assert struct.unpack(">bI", m.key()[:5]) == (0, key_schema.schema_id)

    deserialize = AvroDeserializer(client)
    got = [deserialize(m.value(), SerializationContext(topic, MessageField.VALUE)) for m in msgs]
    keys = [deserialize(m.key(), SerializationContext(topic, MessageField.KEY)) for m in msgs]
    assert keys == [{"id": i} for i in (1, 2, 3, 4, 1)]
    rows = {r["id"]: r for r in table_rows(postgres, db)}
    assert got[3] == rows[4], got[3]
    assert got[4] == rows[1], got[4]
    assert got[1] == rows[2] and got[2] == rows[3], got
    assert got[0] == {**rows[1], "name": "apple", "qty": 3}

    # Runnel's SQL reads the same topic, columns inferred from the registry.
    s = f"CDC_{uuid.uuid4().hex[:8].upper()}"
    server.ksql(f"CREATE STREAM {s}_src WITH (kafka_topic='{topic}', value_format='AVRO');")
    described = server.ksql(f"DESCRIBE {s}_src;")
    columns = {f["name"]: f["schema"]["type"] for f in described[0]["sourceDescription"]["fields"]}
    assert {k: columns.get(k) for k in ("ID", "NAME", "PRICE", "QTY", "ACTIVE")} == {
        "ID": "INTEGER", "NAME": "STRING", "PRICE": "DECIMAL", "QTY": "INTEGER", "ACTIVE": "BOOLEAN"}, columns
    server.ksql(f"CREATE STREAM {s} WITH (value_format='JSON') AS "
                f"SELECT id, name, price, qty, active FROM {s}_src;")
    out = [json.loads(m.value()) for m in read(server.server.bootstrap, s, 5)]
    assert [(o["ID"], o["NAME"], decimal.Decimal(str(o["PRICE"])), o["QTY"], o["ACTIVE"]) for o in out] == [
        (g["id"], g["name"], g["price"], g["qty"], g["active"]) for g in got]


SALE = json.dumps({
    "type": "record", "name": "Sale", "namespace": "compat.connect",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "item", "type": "string"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "qty", "type": "int", "default": 1},
    ],
})


def test_jdbc_sink_with_avro_converter_writes_what_avro_serializer_produced(server, postgres, pg_database):
    db = pg_database
    topic = f"sales_{uuid.uuid4().hex[:8]}"
    client = SchemaRegistryClient({"url": server.registry})
    serialize = AvroSerializer(client, SALE)
    ctx = SerializationContext(topic, MessageField.VALUE)
    sales = [{"id": i, "item": f"item-{i}", "amount": decimal.Decimal(f"{i}.{i:02d}"),
              "day": datetime.date(2024, 1, i + 1), "note": None if i % 2 else f"n{i}", "qty": i * 10}
             for i in range(1, 6)]
    sales.append({**sales[0], "item": "item-1b", "amount": decimal.Decimal("-0.01")})  # an upsert
    p = ck_producer(server.server.bootstrap)
    for s in sales:
        p.produce(topic, value=serialize(s, ctx))
    ck_flush(p)

    name = f"avsink_{topic}"
    r = server.create(name, {
        "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
        "connection.url": f"jdbc:postgresql://{postgres.host}:{postgres.port}/{db}",
        "connection.user": postgres.user, "topics": topic, "table.name.format": "sales",
        "insert.mode": "upsert", "pk.mode": "record_value", "pk.fields": "id", "auto.create": "true",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": AVRO, "value.converter.schema.registry.url": server.registry,
    })
    assert r.status_code == 201, r.text

    want = sorted({s["id"]: s for s in sales}.values(), key=lambda s: s["id"])
    expected = [[str(s["id"]), s["item"], str(s["amount"]), s["day"].isoformat(), s["note"] or "", str(s["qty"])]
                for s in want]

    def written():
        try:
            return postgres.rows(
                "SELECT id, item, amount, day, coalesce(note, ''), qty FROM sales ORDER BY id", db)
        except Exception:  # noqa: BLE001 - the table is created by the first batch
            return None
    wait_until(lambda: written() == expected, timeout=60, what=f"sales to hold {expected}")
    types = dict(postgres.rows(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'sales'", db))
    assert types["amount"] == "numeric" and types["day"] == "date" and types["id"] == "bigint", types


def test_converter_settings_errors_are_400s(server):
    base = {"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "topics": "t", "file": "/dev/null"}
    for converter in (AVRO, "AvroConverter", JSON_SR, "JsonSchemaConverter", PROTOBUF, "ProtobufConverter"):
        r = server.create(f"bad_{uuid.uuid4().hex[:6]}", {**base, "value.converter": converter})
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["error_code"] == 400, body
        assert "schema.registry.url" in body["message"] and "value.converter" in body["message"], body

    r = server.create(f"bad_{uuid.uuid4().hex[:6]}", {
        **base, "key.converter": AVRO, "key.converter.schema.registry.url": server.registry,
        "key.converter.key.subject.name.strategy": "com.example.NoSuchStrategy"})
    assert r.status_code == 400 and "key.subject.name.strategy" in r.json()["message"], r.text
    r = server.create(f"bad_{uuid.uuid4().hex[:6]}", {
        **base, "value.converter": AVRO, "value.converter.schema.registry.url": server.registry,
        "value.converter.auto.register.schemas": "sometimes"})
    assert r.status_code == 400 and "auto.register.schemas" in r.json()["message"], r.text
    r = server.create(f"bad_{uuid.uuid4().hex[:6]}", {
        **base, "value.converter": PROTOBUF, "value.converter.schema.registry.url": server.registry,
        "value.converter.optional.for.nullables": "maybe"})
    assert r.status_code == 400 and "optional.for.nullables" in r.json()["message"], r.text

    v = httpx.put(f"{server.connect}/connector-plugins/FileStreamSinkConnector/config/validate",
                  json={**base, "value.converter": AVRO}, timeout=30)
    assert v.status_code == 200, v.text
    errors = {c["value"]["name"]: c["value"]["errors"] for c in v.json()["configs"] if c["value"]["errors"]}
    assert "schema.registry.url" in errors["value.converter"][0], errors
    ok = httpx.put(f"{server.connect}/connector-plugins/FileStreamSinkConnector/config/validate",
                   json={**base, "value.converter": AVRO, "value.converter.schema.registry.url": server.registry},
                   timeout=30).json()
    assert ok["error_count"] == v.json()["error_count"] - 1, (ok, v.json())

    plugins = httpx.get(f"{server.connect}/connector-plugins?connectorsOnly=false", timeout=10).json()
    converters = {p["class"] for p in plugins if p["type"] == "converter"}
    assert {AVRO, JSON_SR, PROTOBUF} <= converters, converters


def test_cdc_source_with_json_schema_converter_reads_in_json_deserializer_and_sql(server, postgres, pg_database):
    db = pg_database
    postgres.psql(ITEMS, db)
    prefix = f"js{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.public.items"
    config = cdc_config(postgres, db, prefix, JSON_SR, server.registry)
    # Decimals as doubles: JSON Schema has no decimal type SQL could infer.
    config["decimal.handling.mode"] = "double"
    r = server.create(prefix, config)
    assert r.status_code == 201, r.text
    try:
        server.running(prefix)
        msgs = read(server.server.bootstrap, topic, 3)
        client = SchemaRegistryClient({"url": server.registry})
        latest = client.get_latest_version(f"{topic}-value")
        assert latest.schema.schema_type == "JSON"
        registered = json.loads(latest.schema.schema_str)
        # Debezium's optional row: oneOf null or the object titled after it.
        assert registered["oneOf"][0] == {"type": "null"}
        row = registered["oneOf"][1]
        assert row["title"] == f"{topic}.Value" and row["type"] == "object"
        assert row["properties"]["qty"]["oneOf"][1] == {"type": "integer", "connect.type": "int16"}
        for m in msgs:
            assert struct.unpack(">bI", m.value()[:5]) == (0, latest.schema_id)
        # The deserializer validates each record against the registered schema.
        deserialize = JSONDeserializer(None, schema_registry_client=client)
        got = [deserialize(m.value(), SerializationContext(topic, MessageField.VALUE)) for m in msgs]
        want = [{**r, "price": float(r["price"])} for r in table_rows(postgres, db)]
        assert got == want, got

        s = f"JS_{uuid.uuid4().hex[:8].upper()}"
        server.ksql(f"CREATE STREAM {s}_src WITH (kafka_topic='{topic}', value_format='JSON_SR');")
        server.ksql(f"CREATE STREAM {s} WITH (value_format='JSON') AS SELECT id, name, price, active FROM {s}_src;")
        out = [json.loads(m.value()) for m in read(server.server.bootstrap, s, 3)]
        assert [(o["ID"], o["NAME"], o["PRICE"], o["ACTIVE"]) for o in out] == [
            (w["id"], w["name"], w["price"], w["active"]) for w in want]
    finally:
        assert httpx.delete(f"{server.connect}/connectors/{prefix}", timeout=30).status_code == 204


READING = json.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Reading", "type": "object",
    "properties": {
        "sensor": {"type": "string"},
        "celsius": {"type": "number"},
        "count": {"type": "integer"},
        "note": {"oneOf": [{"type": "null"}, {"type": "string"}]},
    },
    "required": ["sensor", "celsius", "count"],
})


def test_jdbc_sink_with_json_schema_converter_writes_what_json_serializer_produced(server, postgres, pg_database):
    db = pg_database
    topic = f"readings_{uuid.uuid4().hex[:8]}"
    client = SchemaRegistryClient({"url": server.registry})
    serialize = JSONSerializer(READING, client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    readings = [{"sensor": f"s{i}", "celsius": 10.5 * i, "count": i, "note": None if i % 2 else f"n{i}"}
                for i in range(4)]
    p = ck_producer(server.server.bootstrap)
    for r in readings:
        p.produce(topic, value=serialize(r, ctx))
    ck_flush(p)
    r = server.create(f"jssink_{topic}", {
        "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
        "connection.url": f"jdbc:postgresql://{postgres.host}:{postgres.port}/{db}",
        "connection.user": postgres.user, "topics": topic, "table.name.format": "readings",
        "insert.mode": "upsert", "pk.mode": "record_value", "pk.fields": "sensor", "auto.create": "true",
        "value.converter": JSON_SR, "value.converter.schema.registry.url": server.registry,
    })
    assert r.status_code == 201, r.text
    expected = [[r["sensor"], str(r["celsius"]).rstrip("0").rstrip(".") if r["celsius"] else "0",
                 str(r["count"]), r["note"] or ""] for r in readings]

    def written():
        try:
            return postgres.rows("SELECT sensor, celsius, count, coalesce(note, '') FROM readings ORDER BY sensor", db)
        except Exception:  # noqa: BLE001 - the table is created by the first batch
            return None
    wait_until(lambda: written() == expected, timeout=60, what=f"readings to hold {expected}")


def items_message_classes(topic: str):
    """The Value and Key messages `ProtobufConverter` should register for
    the unwrapped rows of ITEMS, written here by hand as Confluent's
    ProtobufData makes them (field numbers in column order, nullable
    columns proto3 `optional` with `optional.for.nullables`, numeric as
    `confluent.type.Decimal`) and built at run time (no protoc): the
    deserializer reads the records with these, not with Runnel's schema."""
    from confluent_kafka.schema_registry.confluent.type import decimal_pb2  # noqa: F401  (registers its file)
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.protobuf.message_factory import GetMessageClass

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name=f"{topic}.proto", package=topic, syntax="proto3",
                                             dependency=["confluent/type/decimal.proto"])
    value = fdp.message_type.add(name="Value")
    columns = [("id", F.TYPE_INT32, False), ("name", F.TYPE_STRING, True), ("price", None, False),
               ("qty", F.TYPE_INT32, True), ("added", F.TYPE_INT32, True), ("active", F.TYPE_BOOL, False)]
    for number, (name, kind, optional) in enumerate(columns, start=1):
        f = value.field.add(name=name, number=number, label=F.LABEL_OPTIONAL)
        if kind is None:
            f.type, f.type_name = F.TYPE_MESSAGE, ".confluent.type.Decimal"
        else:
            f.type = kind
        if optional:
            f.proto3_optional = True
            f.oneof_index = len(value.oneof_decl)
            value.oneof_decl.add(name=f"_{name}")
    key = fdp.message_type.add(name="Key")
    key.field.add(name="id", number=1, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.Default()
    pool.Add(fdp)
    return (GetMessageClass(pool.FindMessageTypeByName(f"{topic}.Value")),
            GetMessageClass(pool.FindMessageTypeByName(f"{topic}.Key")))


def test_cdc_source_with_protobuf_converter_reads_in_protobuf_deserializer(server, postgres, pg_database):
    from confluent_kafka.schema_registry.confluent.type.decimal_utils import from_proto_decimal

    db = pg_database
    postgres.psql(ITEMS, db)
    prefix = f"pb{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.public.items"
    config = cdc_config(postgres, db, prefix, PROTOBUF, server.registry)
    # Values with proto3 `optional` for nullable columns, so a NULL reads
    # as absent; keys with Confluent's defaults.
    config["value.converter.optional.for.nullables"] = "true"
    r = server.create(prefix, config)
    assert r.status_code == 201, r.text
    try:
        server.running(prefix)
        read(server.server.bootstrap, topic, 3)
        postgres.psql("INSERT INTO items VALUES (4, 'date', 12345678.99, 32767, '2038-01-19', false);"
                      "UPDATE items SET name = 'apricot', qty = NULL WHERE id = 1;", db)
        msgs = read(server.server.bootstrap, topic, 5)

        client = SchemaRegistryClient({"url": server.registry})
        value_schema = client.get_latest_version(f"{topic}-value")
        key_schema = client.get_latest_version(f"{topic}-key")
        assert value_schema.schema.schema_type == "PROTOBUF"
        text = value_schema.schema.schema_str
        # The struct's name is the package and message; int16 keeps its
        # Connect type in Confluent's field meta; decimals are Confluent's
        # type (Debezium's dates are int32 days, io.debezium.time.Date).
        assert f"package {topic};" in text and "message Value {" in text, text
        assert "optional string name = " in text and "optional int32 added = " in text, text
        assert "confluent.type.Decimal price = " in text and "  bool active = " in text, text
        assert '"connect.type", value: "int16"' in text, text
        for m in msgs:
            # Magic byte, schema id, then the message indexes [0] as one zero byte.
            assert m.value()[:6] == b"\x00" + value_schema.schema_id.to_bytes(4, "big") + b"\x00"
            assert m.key()[:6] == b"\x00" + key_schema.schema_id.to_bytes(4, "big") + b"\x00"

        Value, Key = items_message_classes(topic)
        values = ProtobufDeserializer(Value, {"use.deprecated.format": False})
        keys = ProtobufDeserializer(Key, {"use.deprecated.format": False})
        got = [values(m.value(), SerializationContext(topic, MessageField.VALUE)) for m in msgs]
        assert [keys(m.key(), SerializationContext(topic, MessageField.KEY)).id for m in msgs] == [1, 2, 3, 4, 1]

        def as_row(v):
            return {"id": v.id, "name": v.name if v.HasField("name") else None,
                    "price": from_proto_decimal(v.price), "qty": v.qty if v.HasField("qty") else None,
                    "added": v.added if v.HasField("added") else None,
                    "active": v.active}
        rows = {r["id"]: r for r in table_rows(postgres, db)}
        got = [as_row(v) for v in got]
        assert got[3] == rows[4], got[3]
        assert got[4] == rows[1], got[4]
        assert got[1] == rows[2] and got[2] == rows[3], got
        assert got[0] == {**rows[1], "name": "apple", "qty": 3}

        # Runnel's SQL reads the same topic, columns inferred from the registry.
        q = f"PB_{uuid.uuid4().hex[:8].upper()}"
        server.ksql(f"CREATE STREAM {q}_src WITH (kafka_topic='{topic}', value_format='PROTOBUF');")
        server.ksql(f"CREATE STREAM {q} WITH (value_format='JSON') AS "
                    f"SELECT id, name, price, qty, active FROM {q}_src;")
        out = [json.loads(m.value()) for m in read(server.server.bootstrap, q, 5)]
        assert [(o["ID"], o["NAME"], decimal.Decimal(str(o["PRICE"])), o["QTY"], o["ACTIVE"]) for o in out] == [
            (g["id"], g["name"], g["price"], g["qty"], g["active"]) for g in got]
    finally:
        assert httpx.delete(f"{server.connect}/connectors/{prefix}", timeout=30).status_code == 204


def test_errors_retry_timeout_waits_for_an_unreachable_registry(server, tmp_path):
    """`errors.retry.timeout`: a converter that cannot reach its schema
    registry is tried again (300 ms, doubling) until the timeout; with
    `errors.tolerance=none` the task fails only after it. Here a source
    writing Avro through a registry that is not up yet stays RUNNING and
    its records arrive once the registry starts (a second `runnel serve`
    on the registry's port); with a 1 s timeout and no registry the task
    fails after about a second — before, the first failure failed it."""
    registry_port = free_port()
    topic = f"retry-{uuid.uuid4().hex[:8]}"
    config = {
        "connector.class": "DatagenConnector", "kafka.topic": topic, "quickstart": "pageviews",
        "max.interval": "50", "tasks.max": "1",
        "value.converter": AVRO, "value.converter.schema.registry.url": f"http://127.0.0.1:{registry_port}",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "errors.retry.timeout": "120000", "errors.retry.delay.max.ms": "1000",
    }
    assert server.create("retry-wait", config).status_code == 201
    server.running("retry-wait")
    time.sleep(4)  # some tries against nothing
    server.running("retry-wait")  # still running, not FAILED
    registry = RunnelServer(runnel_bin(), tmp_path / "reg-data", tmp_path / "reg.log",
                            ["--no-sql", "--no-connect", "--registry-listen", f"127.0.0.1:{registry_port}"]).start()
    try:
        msgs = read(server.server.bootstrap, topic, 3, timeout=60)
        assert len(msgs) >= 3
        value = msgs[0].value()
        assert value[0] == 0  # Confluent's wire format: magic byte, schema id
        subjects = httpx.get(f"http://127.0.0.1:{registry_port}/subjects", timeout=5).json()
        assert f"{topic}-value" in subjects
    finally:
        httpx.delete(f"{server.connect}/connectors/retry-wait", timeout=10)
        registry.stop()

    # A short timeout and no registry: FAILED after the tries, not before.
    config = dict(config, **{"errors.retry.timeout": "1500",
                             "value.converter.schema.registry.url": f"http://127.0.0.1:{free_port()}"})
    started = time.monotonic()
    assert server.create("retry-fail", config).status_code == 201

    def failed():
        r = httpx.get(f"{server.connect}/connectors/retry-fail/status", timeout=5)
        return r.status_code == 200 and any(t["state"] == "FAILED" for t in r.json()["tasks"])
    wait_until(failed, timeout=60, what="retry-fail FAILED")
    assert time.monotonic() - started >= 1.5
    trace = httpx.get(f"{server.connect}/connectors/retry-fail/status", timeout=5).json()["tasks"][0]["trace"]
    assert "schema registry" in trace, trace
    httpx.delete(f"{server.connect}/connectors/retry-fail", timeout=10)
