"""Runnel's command line with the schema registry, checked against
Confluent's own clients: `runnel registry` (rpk's verbs) registers and
reads schemas that confluent-kafka's SchemaRegistryClient sees,
`runnel produce --value-schema` writes records its deserializers read, and
`runnel consume -s value=avro -r URL` (kcat's flags) prints what its
serializers wrote, as JSON."""

from __future__ import annotations

import json
import subprocess

import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from compat_util import ck_consume, ck_consumer, ck_flush, ck_producer
from conftest import runnel_bin, start_registry_server

ORDER = {
    "type": "record", "name": "Order", "namespace": "compat.cli",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "item", "type": "string"},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}

READING = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Reading", "type": "object",
    "properties": {"sensor": {"type": "string"}, "celsius": {"type": "number"}},
    "required": ["sensor", "celsius"],
}

PROTO = """syntax = "proto3";
package compat.cli;
message Point { int32 x = 1; int32 y = 2; string label = 3; }
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_registry_server(tmp_path_factory.mktemp("registry-cli"))
    yield s
    assert s.stop() == 0


def runnel(*args, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([str(runnel_bin()), *args], input=stdin, capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"runnel {' '.join(args)} exited {r.returncode}: {r.stderr}")
    return r


def read_values(bootstrap: str, topic: str, count: int) -> list[bytes]:
    c = ck_consumer(bootstrap)
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    msgs = ck_consume(c, count, timeout=30)
    c.close()
    return [m.value() for m in msgs]


def test_registry_verbs_agree_with_confluents_client(server, tmp_path, unique_name):
    subject = unique_name("orders") + "-value"
    schema_file = tmp_path / "order.avsc"
    schema_file.write_text(json.dumps(ORDER))
    out = runnel("registry", "-r", server.registry, "schema", "create", subject, "--schema", str(schema_file)).stdout
    header, row = out.splitlines()
    assert header.split() == ["SUBJECT", "VERSION", "ID", "TYPE"]
    sub, version, sid, kind = row.split()
    client = SchemaRegistryClient({"url": server.registry})
    latest = client.get_latest_version(subject)
    assert (sub, int(version), int(sid), kind) == (subject, latest.version, latest.schema_id, "AVRO")

    got = runnel("registry", "-r", server.registry, "schema", "get", subject).stdout
    assert json.loads(got.split("\n\n", 1)[1]) == json.loads(latest.schema.schema_str)

    assert subject in runnel("registry", "-r", server.registry, "subject", "list").stdout.split()

    out = runnel("registry", "-r", server.registry, "compatibility-level", "set", subject, "--level", "full").stdout
    assert out.splitlines()[1].split() == [subject, "FULL"]
    assert client.get_compatibility(subject) == "FULL"
    assert runnel("registry", "-r", server.registry, "compatibility-level", "get", subject).stdout.splitlines()[1].split() \
        == [subject, "FULL"]

    # A new required field without a default breaks FULL.
    breaking = dict(ORDER, fields=ORDER["fields"] + [{"name": "qty", "type": "int"}])
    breaking_file = tmp_path / "breaking.avsc"
    breaking_file.write_text(json.dumps(breaking))
    r = runnel("registry", "-r", server.registry, "schema", "check-compatibility", subject,
               "--schema", str(breaking_file), check=False)
    assert r.returncode == 1 and r.stdout.strip() == "incompatible", (r.stdout, r.stderr)
    compatible = dict(ORDER, fields=ORDER["fields"] + [{"name": "qty", "type": "int", "default": 1}])
    compatible_file = tmp_path / "compatible.avsc"
    compatible_file.write_text(json.dumps(compatible))
    r = runnel("registry", "-r", server.registry, "schema", "check-compatibility", subject,
               "--schema", str(compatible_file))
    assert r.stdout.strip() == "compatible"

    # A second version; a read-only subject refuses a third.
    runnel("registry", "-r", server.registry, "schema", "create", subject, "--schema", str(compatible_file))
    assert runnel("registry", "-r", server.registry, "subject", "versions", subject).stdout.split() == ["1", "2"]
    assert [v for v in client.get_versions(subject)] == [1, 2]
    out = runnel("registry", "-r", server.registry, "mode", "set", subject, "--mode", "readonly").stdout
    assert out.splitlines()[1].split() == [subject, "READONLY"]
    third = dict(compatible, fields=compatible["fields"] + [{"name": "rush", "type": "boolean", "default": False}])
    third_file = tmp_path / "third.avsc"
    third_file.write_text(json.dumps(third))
    r = runnel("registry", "-r", server.registry, "schema", "create", subject, "--schema", str(third_file), check=False)
    assert r.returncode == 1 and "42205" in r.stderr, r.stderr
    runnel("registry", "-r", server.registry, "mode", "set", subject, "--mode", "READWRITE")
    assert runnel("registry", "-r", server.registry, "mode", "get", subject).stdout.splitlines()[1].split() \
        == [subject, "READWRITE"]
    out = runnel("registry", "-r", server.registry, "schema", "delete", subject, "--schema-version", "1").stdout
    assert out.strip() == f"deleted version 1 of {subject}"
    assert client.get_versions(subject) == [2]

    out = runnel("registry", "-r", server.registry, "subject", "delete", subject).stdout
    assert subject in out and subject not in client.get_subjects()
    r = runnel("registry", "-r", server.registry, "schema", "get", subject, check=False)
    assert r.returncode == 1 and "40401" in r.stderr, r.stderr


def test_produce_with_a_schema_file_is_read_by_confluents_avro_deserializer(server, tmp_path, unique_name):
    topic = unique_name("avro-in")
    schema_file = tmp_path / "order.avsc"
    schema_file.write_text(json.dumps(ORDER))
    orders = [{"id": 1, "item": "jumper", "note": None}, {"id": 2, "item": "socks", "note": "wool"}]
    lines = "".join(f"{o['id']}|{json.dumps(o)}\n" for o in orders)
    runnel("produce", topic, "-b", server.bootstrap, "-r", server.registry, "-K", "|",
           "--value-schema", str(schema_file), stdin=lines)
    client = SchemaRegistryClient({"url": server.registry})
    deserialize = AvroDeserializer(client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    values = read_values(server.bootstrap, topic, 2)
    assert [deserialize(v, ctx) for v in values] == orders
    assert int.from_bytes(values[0][1:5], "big") == client.get_latest_version(f"{topic}-value").schema_id

    # A line the schema does not take: an error naming the line, nothing
    # after it sent.
    r = runnel("produce", topic, "-b", server.bootstrap, "-r", server.registry,
               "--value-schema", str(schema_file), stdin='{"id": 3, "item": "hat"}\n{"id": "four"}\n', check=False)
    assert r.returncode == 1 and "line 2" in r.stderr, r.stderr


def test_consume_decodes_what_confluents_serializer_wrote(server, unique_name):
    topic = unique_name("avro-out")
    client = SchemaRegistryClient({"url": server.registry})
    serialize = AvroSerializer(client, json.dumps(ORDER))
    ctx = SerializationContext(topic, MessageField.VALUE)
    orders = [{"id": 7, "item": "hat", "note": "red"}, {"id": 8, "item": "scarf", "note": None}]
    p = ck_producer(server.bootstrap)
    for o in orders:
        p.produce(topic, key=str(o["id"]).encode(), value=serialize(o, ctx))
    ck_flush(p)

    out = runnel("consume", topic, "-b", server.bootstrap, "-o", "beginning", "-e",
                 "-s", "value=avro", "-r", server.registry).stdout
    printed = [json.loads(line) for line in out.splitlines()]
    # A union's value prints as the value itself (no {"string": …} branch
    # wrapper), as the records were written.
    assert printed == orders, printed

    out = runnel("consume", topic, "-b", server.bootstrap, "-o", "beginning", "-e", "-J",
                 "-s", "value=avro", "-r", server.registry).stdout
    envelopes = [json.loads(line) for line in out.splitlines()]
    assert [e["key"] for e in envelopes] == ["7", "8"]
    assert [json.loads(e["payload"])["id"] for e in envelopes] == [7, 8]

    r = runnel("consume", topic, "-b", server.bootstrap, "-o", "beginning", "-e",
               "-s", "value=protobuf", "-r", server.registry, check=False)
    assert r.returncode == 1 and "not PROTOBUF" in r.stderr and "offset 0" in r.stderr, r.stderr


def test_json_schema_and_protobuf_round_trips(server, tmp_path, unique_name):
    topic = unique_name("readings")
    schema_file = tmp_path / "reading.json"
    schema_file.write_text(json.dumps(READING))
    readings = [{"sensor": "a", "celsius": 21.5}, {"sensor": "b", "celsius": -3}]
    runnel("produce", topic, "-b", server.bootstrap, "-r", server.registry,
           "--value-schema", str(schema_file), stdin="".join(json.dumps(x) + "\n" for x in readings))
    client = SchemaRegistryClient({"url": server.registry})
    assert client.get_latest_version(f"{topic}-value").schema.schema_type == "JSON"
    deserialize = JSONDeserializer(None, schema_registry_client=client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    assert [deserialize(v, ctx) for v in read_values(server.bootstrap, topic, 2)] == readings
    r = runnel("produce", topic, "-b", server.bootstrap, "-r", server.registry,
               "--value-schema", str(schema_file), stdin='{"sensor": "c"}\n', check=False)
    assert r.returncode == 1 and "celsius" in r.stderr, r.stderr

    topic = unique_name("points")
    proto_file = tmp_path / "point.proto"
    proto_file.write_text(PROTO)
    points = [{"x": 1, "y": 2, "label": "p"}, {"x": -5, "y": 0, "label": ""}]
    runnel("produce", topic, "-b", server.bootstrap, "-r", server.registry,
           "--value-schema", str(proto_file), stdin="".join(json.dumps(x) + "\n" for x in points))
    raw = read_values(server.bootstrap, topic, 2)
    sid = client.get_latest_version(f"{topic}-value").schema_id
    # Confluent's framing: magic byte, id, message index [0] as one 0 byte.
    assert raw[0][:6] == b"\x00" + sid.to_bytes(4, "big") + b"\x00", raw[0]
    out = runnel("consume", topic, "-b", server.bootstrap, "-o", "beginning", "-e",
                 "-s", "value=protobuf", "-r", server.registry).stdout
    # Protobuf's JSON mapping leaves out fields at their default value.
    assert [json.loads(line) for line in out.splitlines()] == [{"x": 1, "y": 2, "label": "p"}, {"x": -5}]
