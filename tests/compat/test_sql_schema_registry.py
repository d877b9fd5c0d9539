"""Runnel's SQL with confluent-kafka's schema-registry serdes: records
written by `AvroSerializer` / `JSONSerializer` are read by a stream whose
columns the SQL engine infers from the registry, and what its persistent
query writes (with the output schema it registered) is read back by
`AvroDeserializer` / `JSONDeserializer`. One `runnel serve` runs the
broker, the registry and the SQL engine, which finds the registry at its
own address without being told."""

from __future__ import annotations

import json
import struct
import uuid

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer

from compat_util import ck_consume, ck_consumer, ck_flush, ck_producer, ksql_statements, wait_until
from conftest import RunnelServer, free_port, runnel_bin

ORDER = json.dumps({
    "type": "record", "name": "Order", "namespace": "compat.sql",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "item", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
})

READING = json.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Reading", "type": "object",
    "properties": {
        "sensor": {"type": "string"},
        "celsius": {"type": "number"},
        "count": {"type": "integer"},
    },
    "required": ["sensor", "celsius", "count"],
})


class Server:
    def __init__(self, tmp_path):
        self.registry_port, self.sql_port = free_port(), free_port()
        self.server = RunnelServer(
            runnel_bin(), tmp_path / "data", tmp_path / "runnel.log",
            ["--registry-listen", f"127.0.0.1:{self.registry_port}",
             "--sql-listen", f"127.0.0.1:{self.sql_port}"],
        ).start()
        self.registry = f"http://127.0.0.1:{self.registry_port}"
        self.sql = f"http://127.0.0.1:{self.sql_port}"

        def ready():
            try:
                return (httpx.get(f"{self.registry}/subjects", timeout=2).status_code == 200
                        and httpx.get(f"{self.sql}/info", timeout=2).status_code == 200)
            except httpx.HTTPError:
                return False
        wait_until(ready, timeout=60, what="the registry and the SQL API")

    def ksql(self, sql: str) -> list:
        return ksql_statements(self.sql, sql)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("sql-registry"))
    yield s
    assert s.server.stop() == 0


def read_all(bootstrap: str, topic: str, count: int):
    c = ck_consumer(bootstrap)
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    msgs = ck_consume(c, count, timeout=60)
    c.close()
    return msgs


def test_avro_serializer_in_sql_in_between_avro_deserializer_out(server, unique_name):
    topic = unique_name("orders")
    client = SchemaRegistryClient({"url": server.registry})
    ctx = SerializationContext(topic, MessageField.VALUE)
    serialize = AvroSerializer(client, ORDER)
    orders = [
        {"id": i, "item": f"item-{i}", "amount": 5.0 * i, "note": None if i % 2 else f"n{i}"}
        for i in range(10)
    ]
    p = ck_producer(server.server.bootstrap)
    for o in orders:
        p.produce(topic, key=StringSerializer()(str(o["id"])), value=serialize(o, ctx))
    ck_flush(p)

    # No column list: the columns come from the subject's latest schema.
    sink = f"BIG_{uuid.uuid4().hex[:8].upper()}"
    server.ksql(f"CREATE STREAM {sink}_src WITH (kafka_topic='{topic}', value_format='AVRO');")
    described = server.ksql(f"DESCRIBE {sink}_src;")
    fields = {f["name"]: f["schema"]["type"] for f in described[0]["sourceDescription"]["fields"]
              if f["name"] != "ROWTIME"}
    assert fields == {"ID": "BIGINT", "ITEM": "STRING", "AMOUNT": "DOUBLE", "NOTE": "STRING"}
    server.ksql(
        f"CREATE STREAM {sink} AS SELECT id, item, amount * 2 AS doubled, note "
        f"FROM {sink}_src WHERE amount > 20;")

    want = [o for o in orders if o["amount"] > 20]
    msgs = read_all(server.server.bootstrap, sink, len(want))
    # The sink's schema is registered under its TopicName subject, with
    # ksqlDB's record name, and its id is on the wire.
    latest = client.get_latest_version(f"{sink}-value")
    registered = json.loads(latest.schema.schema_str)
    assert registered["name"].endswith("KsqlDataSourceSchema")
    for m in msgs:
        assert struct.unpack(">bI", m.value()[:5]) == (0, latest.schema_id)
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": server.registry}))
    got = [deserialize(m.value(), SerializationContext(sink, MessageField.VALUE)) for m in msgs]
    assert got == [
        {"ID": o["id"], "ITEM": o["item"], "DOUBLED": o["amount"] * 2, "NOTE": o["note"]}
        for o in want
    ]


def test_json_serializer_in_sql_json_deserializer_out(server, unique_name):
    topic = unique_name("readings")
    client = SchemaRegistryClient({"url": server.registry})
    ctx = SerializationContext(topic, MessageField.VALUE)
    serialize = JSONSerializer(READING, client)
    readings = [{"sensor": f"s{i}", "celsius": 10.5 * i, "count": i} for i in range(6)]
    p = ck_producer(server.server.bootstrap)
    for r in readings:
        p.produce(topic, value=serialize(r, ctx))
    ck_flush(p)

    sink = f"HOT_{uuid.uuid4().hex[:8].upper()}"
    server.ksql(f"CREATE STREAM {sink}_src WITH (kafka_topic='{topic}', value_format='JSON_SR');")
    server.ksql(
        f"CREATE STREAM {sink} AS SELECT sensor, celsius, count + 1 AS next "
        f"FROM {sink}_src WHERE celsius > 30;")
    want = [r for r in readings if r["celsius"] > 30]
    msgs = read_all(server.server.bootstrap, sink, len(want))
    latest = client.get_latest_version(f"{sink}-value")
    assert latest.schema.schema_type == "JSON"
    for m in msgs:
        assert struct.unpack(">bI", m.value()[:5]) == (0, latest.schema_id)
    # The deserializer validates each record against the registered schema.
    deserialize = JSONDeserializer(None, schema_registry_client=client)
    got = [deserialize(m.value(), SerializationContext(sink, MessageField.VALUE)) for m in msgs]
    assert got == [
        {"SENSOR": r["sensor"], "CELSIUS": r["celsius"], "NEXT": r["count"] + 1} for r in want
    ]
