"""Broker-side schema validation (Confluent Server's
`confluent.value.schema.validation`): on a topic that asks for it, a record
whose value does not carry the id of a schema registered under the topic's
subject is refused with INVALID_RECORD; confluent-kafka's AvroSerializer
passes, tombstones pass, topics without the config take anything."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from compat_util import ck_admin, ck_consume, ck_consumer
from conftest import start_registry_server


def schema(name: str) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "compat.validation",
                       "fields": [{"name": "id", "type": "long"}]})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_registry_server(tmp_path_factory.mktemp("schema-validation"))
    yield s
    assert s.stop() == 0


def create(admin, topic: str, config: dict):
    for f in admin.create_topics([NewTopic(topic, 1, 1, config=config)]).values():
        f.result(timeout=20)


def deliver(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> list:
    """Produces each record in a batch of its own; the delivery error (or None) of each."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "retries": 0,
                  "enable.idempotence": False})
    results = []
    for key, value in records:
        outcome = []
        p.produce(topic, key=key, value=value, on_delivery=lambda err, _msg: outcome.append(err))
        p.flush(20)
        assert len(outcome) == 1, "no delivery report"
        results.append(outcome[0])
    return results


def test_a_validating_topic_takes_only_values_with_its_subjects_ids(server, unique_name):
    topic, other = unique_name("validated"), unique_name("other")
    admin = ck_admin(server.bootstrap)
    create(admin, topic, {"confluent.value.schema.validation": "true"})
    create(admin, other, {})
    described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    entries = list(described.values())[0].result(timeout=20)
    assert entries["confluent.value.schema.validation"].value == "true"
    assert entries["confluent.value.subject.name.strategy"].value \
        == "io.confluent.kafka.serializers.subject.TopicNameStrategy"

    client = SchemaRegistryClient({"url": server.registry})
    good = AvroSerializer(client, schema("Order"))(
        {"id": 1}, SerializationContext(topic, MessageField.VALUE))
    # Registered under the other topic's subject only.
    foreign = AvroSerializer(client, schema("Refund"))(
        {"id": 2}, SerializationContext(other, MessageField.VALUE))
    assert good[1:5] != foreign[1:5]

    errors = deliver(server.bootstrap, topic, [
        (b"k1", good),
        (b"k2", b'{"id": 3}'),
        (b"k3", foreign),
        (b"k4", None),
        (b"k5", b"\x00\x00\x00"),
    ])
    assert errors[0] is None and errors[3] is None, errors
    for e in (errors[1], errors[2], errors[4]):
        assert e is not None and e.code() == KafkaError.INVALID_RECORD, errors

    # The topic holds what was accepted, in order.
    c = ck_consumer(server.bootstrap)
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = [(m.key(), m.value()) for m in ck_consume(c, 2, timeout=20)]
    c.close()
    assert got == [(b"k1", good), (b"k4", None)]

    # A topic that does not ask takes anything.
    assert deliver(server.bootstrap, other, [(b"k", b"plain")]) == [None]

    # Turning validation off lets plain records in.
    fs = admin.incremental_alter_configs([ConfigResource(
        ConfigResource.Type.TOPIC, topic,
        incremental_configs=[ConfigEntry("confluent.value.schema.validation", "false",
                                         incremental_operation=AlterConfigOpType.SET)])])
    for f in fs.values():
        f.result(timeout=20)
    assert deliver(server.bootstrap, topic, [(b"k6", b"plain")]) == [None]


def test_a_bad_strategy_is_refused_at_creation(server, unique_name):
    admin = ck_admin(server.bootstrap)
    with pytest.raises(Exception) as e:
        create(admin, unique_name("bad"), {"confluent.value.subject.name.strategy": "NoSuchStrategy"})
    assert "confluent.value.subject.name.strategy" in str(e.value)
