"""confluent-kafka's JSONSerializer and ProtobufSerializer against Runnel's
registry: each registers its schema as that client writes it (JSON Schema
text; Protobuf as a base64 FileDescriptorProto), records go through the
broker, and the deserializers read them back through the ids on the wire."""

from __future__ import annotations

import json

from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from compat_util import ck_consume, ck_consumer, ck_flush, ck_producer
from test_schema_registry import registry  # noqa: F401  (the module's server)

ORDER_JSON = json.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Order",
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "quantity": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["id", "quantity"],
})


def round_trip(server, topic, serialize, deserialize, values):
    ctx = SerializationContext(topic, MessageField.VALUE)
    p = ck_producer(server.bootstrap)
    for v in values:
        p.produce(topic, value=serialize(v, ctx))
    ck_flush(p)
    c = ck_consumer(server.bootstrap)
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    msgs = ck_consume(c, len(values))
    c.close()
    return [deserialize(m.value(), ctx) for m in msgs], msgs


def test_json_schema_serializer_round_trip(registry, topic):  # noqa: F811
    server, url = registry
    client = SchemaRegistryClient({"url": url})
    orders = [{"id": f"o{i}", "quantity": i, "tags": ["a"] * (i % 3)} for i in range(10)]
    got, _ = round_trip(server, topic, JSONSerializer(ORDER_JSON, client),
                        JSONDeserializer(None, schema_registry_client=SchemaRegistryClient({"url": url})),
                        orders)
    assert got == orders
    latest = client.get_latest_version(f"{topic}-value")
    assert latest.schema.schema_type == "JSON"
    assert json.loads(latest.schema.schema_str) == json.loads(ORDER_JSON)


def order_class():
    """A Protobuf message class built at run time (no protoc here)."""
    fdp = descriptor_pb2.FileDescriptorProto(name="compat_order.proto", package="compat", syntax="proto3")
    msg = fdp.message_type.add(name="Order")
    msg.field.add(name="id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    msg.field.add(name="quantity", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return GetMessageClass(pool.FindMessageTypeByName("compat.Order"))


def test_protobuf_serializer_round_trip(registry, topic):  # noqa: F811
    server, url = registry
    Order = order_class()
    client = SchemaRegistryClient({"url": url})
    orders = [Order(id=f"o{i}", quantity=i * 10) for i in range(10)]
    serializer = ProtobufSerializer(Order, client, {"use.deprecated.format": False})
    deserializer = ProtobufDeserializer(Order, {"use.deprecated.format": False})
    got, msgs = round_trip(server, topic, serializer, deserializer, orders)
    assert got == orders
    # Magic byte, id, then the message index [0] as one zero byte.
    latest = SchemaRegistryClient({"url": url}).get_latest_version(f"{topic}-value")
    assert msgs[0].value()[:6] == b"\x00" + latest.schema_id.to_bytes(4, "big") + b"\x00"
    assert latest.schema.schema_type == "PROTOBUF"
