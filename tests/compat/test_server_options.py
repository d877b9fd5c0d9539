"""`runnel serve` options as clients see them (each test runs its own broker)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import ConfigResource
from kafka import KafkaProducer
from kafka import errors as kerr

from compat_util import (
    DeliveryCollector,
    ck_admin,
    ck_consume,
    ck_consumer,
    ck_create_topic,
    ck_producer,
)


def test_auto_create_disabled(make_server, unique_name):
    server = make_server(extra_args=["--auto-create-topics", "false"]).start()
    b = server.bootstrap
    missing = unique_name("missing")

    # librdkafka keeps waiting for the topic to appear (the broker answers
    # UNKNOWN_TOPIC_OR_PART) until message.timeout.ms runs out.
    p = ck_producer(b, **{"message.timeout.ms": 3000})
    dr = DeliveryCollector()
    p.produce(missing, value=b"nowhere", on_delivery=dr)
    p.flush(10)
    (err, _), = dr.reports
    assert err is not None and err.code() in (
        KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._MSG_TIMED_OUT
    ), err

    # kafka-python: metadata never shows the topic, so send() gives up.
    kp = KafkaProducer(bootstrap_servers=b, enable_idempotence=False, max_block_ms=2000)
    with pytest.raises(kerr.KafkaTimeoutError):
        kp.send(missing, b"nowhere").get(timeout=5)
    kp.close()

    admin = ck_admin(b)
    assert missing not in admin.list_topics(timeout=10).topics

    # Explicit creation still works, and so does producing to the topic then.
    made = unique_name("made")
    ck_create_topic(admin, made, partitions=1)
    dr = DeliveryCollector()
    p.produce(made, value=b"here", on_delivery=dr)
    assert p.flush(10) == 0
    assert dr.ok()[0].offset() == 0
    assert server.stop() == 0


def test_default_partitions_and_topic_config_defaults(make_server, unique_name):
    server = make_server(extra_args=["--default-partitions", "3",
                                     "--topic-config", "retention.ms=123456789"]).start()
    b = server.bootstrap
    auto = unique_name("auto")
    p = ck_producer(b)
    dr = DeliveryCollector()
    p.produce(auto, key=b"k", value=b"v", on_delivery=dr)
    assert p.flush(10) == 0
    dr.ok()

    admin = ck_admin(b)
    assert len(admin.list_topics(auto, timeout=10).topics[auto].partitions) == 3
    res = ConfigResource(ConfigResource.Type.TOPIC, auto)
    cfg = admin.describe_configs([res], request_timeout=10)[res].result(timeout=10)
    assert cfg["retention.ms"].value == "123456789"

    c = ck_consumer(b)
    c.assign([TopicPartition(auto, i, 0) for i in range(3)])
    (m,) = ck_consume(c, 1)
    c.close()
    assert (m.key(), m.value()) == (b"k", b"v")
    assert server.stop() == 0
