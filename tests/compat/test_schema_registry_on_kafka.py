"""Runnel's schema registry on a real 3-broker Apache Kafka cluster:
`runnel serve --bootstrap-servers … --no-sql` keeps its schemas in the
cluster's `_schemas` topic, in Confluent's record format. Two registry
servers share it and take registrations at the same moment (no id given
twice), and confluent-kafka's Avro serdes round-trip records through Kafka
with ids from either registry."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from compat_util import ck_consume, ck_consumer, ck_flush, ck_producer, wait_until
from test_schema_registry import USER_V1, RemoteRegistry, wait_for_registry

pytestmark = pytest.mark.kafka


def test_two_registries_on_a_three_broker_kafka_cluster(kafka, tmp_path, unique_name):
    a = RemoteRegistry(kafka.bootstrap, tmp_path / "registry-a.log")
    b = RemoteRegistry(kafka.bootstrap, tmp_path / "registry-b.log")
    try:
        for r in (a, b):
            wait_for_registry(r.url)
        prefix = unique_name("s")
        # Unrelated records under one subject: no compatibility between them.
        for s in ("0", "1", "shared"):
            httpx.put(f"{a.url}/config/{prefix}-{s}", json={"compatibility": "NONE"}).raise_for_status()

        def register(job):
            url, name, subject = job
            schema = json.dumps({"type": "record", "name": name, "fields": []})
            r = httpx.post(f"{url}/subjects/{subject}/versions", json={"schema": schema},
                           timeout=60)
            assert r.status_code == 200, r.text
            return name, r.json()["id"]

        jobs = [((a.url if i % 2 == 0 else b.url), f"K{i}", f"{prefix}-{i % 2}") for i in range(24)]
        jobs += [((a.url if i % 2 == 0 else b.url), "Shared", f"{prefix}-shared") for i in range(8)]
        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(register, jobs))
        by_name: dict[str, int] = {}
        by_id: dict[int, str] = {}
        for name, schema_id in results:
            assert by_name.setdefault(name, schema_id) == schema_id, f"{name} got two ids"
            assert by_id.setdefault(schema_id, name) == name, f"id {schema_id} went to two schemas"
        assert len(by_name) == 25

        wait_until(lambda: httpx.get(f"{a.url}/subjects").json() == httpx.get(f"{b.url}/subjects").json(),
                   timeout=30, what="both registries to agree")

        # Avro through Kafka: serialized with one registry, read with the other.
        topic = unique_name("avro")
        ctx = SerializationContext(topic, MessageField.VALUE)
        serialize = AvroSerializer(SchemaRegistryClient({"url": a.url}), USER_V1)
        users = [{"name": f"u{i}", "age": i, "email": None} for i in range(10)]
        p = ck_producer(kafka.bootstrap)
        for u in users:
            p.produce(topic, value=serialize(u, ctx))
        ck_flush(p)
        c = ck_consumer(kafka.bootstrap)
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        msgs = ck_consume(c, len(users), timeout=30)
        c.close()
        wait_until(lambda: httpx.get(f"{b.url}/subjects/{topic}-value/versions").status_code == 200,
                   timeout=30, what="the other registry to see the new subject")
        deserialize = AvroDeserializer(SchemaRegistryClient({"url": b.url}))
        assert [deserialize(m.value(), ctx) for m in msgs] == users

        # The cluster's `_schemas` holds Confluent's records.
        c = ck_consumer(kafka.bootstrap, **{"isolation.level": "read_committed"})
        c.assign([TopicPartition("_schemas", 0, OFFSET_BEGINNING)])
        lo, hi = c.get_watermark_offsets(TopicPartition("_schemas", 0), timeout=10)
        keys = []
        deadline = time.monotonic() + 30
        while len(keys) < 29:
            assert time.monotonic() < deadline, f"only {len(keys)} records in _schemas ({lo}..{hi})"
            m = c.poll(1)
            if m is not None and m.error() is None:
                keys.append(json.loads(m.key()))
        c.close()
        schema_keys = [k for k in keys if k["keytype"] == "SCHEMA"]
        assert schema_keys and all(k["magic"] == 1 and "subject" in k and "version" in k
                                   for k in schema_keys), keys
    finally:
        codes = [a.stop(), b.stop()]
    assert codes == [0, 0], f"registries exited with {codes}"
