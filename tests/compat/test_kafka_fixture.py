"""The Apache Kafka fixture itself (kafka_cluster.py): a 3-node KRaft cluster
that later tests run Runnel's engine, SQL and clients against.

It must really be a 3-broker cluster (every node answers with all three
brokers and one cluster id), replicate (rf=3, min.insync.replicas=2) and
survive one node's SIGKILL and restart, which the fault tests rely on.
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from compat_util import ck_consumer, ck_producer, now_ms, wait_until

pytestmark = pytest.mark.kafka


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def partitions_replicated(bootstrap: str, topic: str, partitions: int, replicas: int):
    """The topic's metadata as one node sees it, if every partition is led and fully in sync."""
    md = admin(bootstrap).list_topics(topic, timeout=10).topics.get(topic)
    if md is None or md.error is not None or len(md.partitions) != partitions:
        return None
    for p in md.partitions.values():
        if p.leader < 0 or len(p.replicas) != replicas or len(p.isrs) != replicas:
            return None
    return md


def create_replicated(kafka, topic: str, partitions: int = 3) -> None:
    a = admin(kafka.bootstrap)  # must outlive its futures
    a.create_topics([NewTopic(topic, partitions, 3)])[topic].result(timeout=30)
    # Metadata reaches the brokers asynchronously: wait until each node
    # knows the topic with every replica in sync before using it.
    for n in range(1, kafka.nodes + 1):
        wait_until(lambda: partitions_replicated(kafka.node_bootstrap(n), topic, partitions, 3),
                   timeout=30, what=f"node {n} to see {topic} fully replicated")


def produce_and_read(kafka, topic: str, count: int, partitions: int = 3) -> None:
    p = ck_producer(kafka.bootstrap, **{"enable.idempotence": True})
    errors = []
    base = now_ms()
    sent = [(f"k{i}".encode(), f"v{i}".encode(), base + i) for i in range(count)]
    for k, v, ts in sent:
        p.produce(topic, key=k, value=v, timestamp=ts,
                  on_delivery=lambda err, msg: err and errors.append(err))
    assert p.flush(30) == 0
    assert errors == []
    c = ck_consumer(kafka.bootstrap)
    c.assign([TopicPartition(topic, i, 0) for i in range(partitions)])
    got = []
    try:
        deadline = now_ms() + 30_000
        while len(got) < count and now_ms() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            got.append((m.key(), m.value(), m.timestamp()[1]))
    finally:
        c.close()
    assert sorted(got) == sorted(sent)


def test_three_brokers_one_cluster(kafka):
    ids = set()
    for n in range(1, 4):
        a = admin(kafka.node_bootstrap(n))
        # Ready means one node saw all three; each applies the metadata log
        # at its own pace, so give the others a moment to catch up.
        md = wait_until(lambda: (m := a.list_topics(timeout=10)) and len(m.brokers) == 3 and m,
                        timeout=20, what=f"node {n} to list 3 brokers")
        assert sorted(md.brokers) == [1, 2, 3], f"node {n} sees brokers {sorted(md.brokers)}"
        assert sorted(b.port for b in md.brokers.values()) == sorted(kafka.broker_ports)
        desc = a.describe_cluster(request_timeout=10).result(timeout=15)
        assert sorted(node.id for node in desc.nodes) == [1, 2, 3]
        ids.add(desc.cluster_id)
    assert ids == {kafka.cluster_id}, "every node must report the id the fixture formatted"


def test_replicated_topic_round_trip(kafka, topic):
    create_replicated(kafka, topic)
    a = admin(kafka.bootstrap)
    cfg = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)])
    entries = list(cfg.values())[0].result(timeout=15)
    assert entries["min.insync.replicas"].value == "2"
    produce_and_read(kafka, topic, 300)


def test_auto_created_topics_are_replicated(kafka, topic):
    # default.replication.factor=3 on the broker: a producer's auto-created
    # topic is replicated like the internal ones.
    produce_and_read(kafka, topic, 10, partitions=1)
    md = wait_until(lambda: partitions_replicated(kafka.bootstrap, topic, 1, 3),
                    timeout=30, what=f"{topic} replicated")
    assert len(md.partitions[0].replicas) == 3


def test_kill_and_restart_one_node(kafka, topic):
    """SIGKILL node 2: acks=all writes still succeed on the other two
    (min.insync.replicas=2); restarted, it catches up and rejoins every ISR."""
    create_replicated(kafka, topic)
    kafka.kill_node(2)
    assert not kafka.alive(2)
    try:
        produce_and_read(kafka, topic, 60)
        # Writes to rf=3 were acknowledged with two replicas left, so
        # leadership has moved off the dead node (node 1 may apply that
        # metadata a moment after the new leaders did).
        a = admin(kafka.node_bootstrap(1))
        wait_until(lambda: all(p.leader in (1, 3) for p in a.list_topics(topic, timeout=10)
                               .topics[topic].partitions.values()),
                   timeout=20, what="node 1 to see leaders off node 2")
    finally:
        kafka.start_node(2)
    assert kafka.alive(2)
    wait_until(lambda: partitions_replicated(kafka.node_bootstrap(2), topic, 3, 3),
               timeout=60, what="node 2 back in every ISR")
    produce_and_read(kafka, topic + "-after", 30, partitions=1)


def test_fixture_refuses_a_second_cluster_in_the_same_dir(kafka):
    from kafka_cluster import KafkaCluster
    with pytest.raises(RuntimeError, match="already holds a cluster"):
        KafkaCluster(kafka.root, nodes=3).start()
    # The running cluster is untouched.
    assert all(kafka.alive(n) for n in range(1, 4))
    # Its readiness topic exists: creating it again is refused.
    a = admin(kafka.bootstrap)
    with pytest.raises(KafkaException, match="TOPIC_ALREADY_EXISTS"):
        a.create_topics([NewTopic("__runnel_fixture_ready", 3, 3)])["__runnel_fixture_ready"].result(timeout=15)
