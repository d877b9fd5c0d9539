"""Runnel's schema registry with confluent-kafka's own registry client and
Avro serdes: records serialized by `AvroSerializer` go through Runnel's
broker and come back through `AvroDeserializer`, the schema ids on the wire
resolving in Runnel's registry; registration, look-up, compatibility,
config and mode through `SchemaRegistryClient`; and a registry killed with
SIGKILL keeps every schema it acknowledged."""

from __future__ import annotations

import json
import struct

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer

from compat_util import ck_consume, ck_consumer, ck_flush, ck_producer, wait_until
from conftest import RunnelServer, free_port, runnel_bin

USER_V1 = json.dumps({
    "type": "record", "name": "User", "namespace": "compat",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "age", "type": "int"},
        {"name": "email", "type": ["null", "string"], "default": None},
    ],
})
# v2 adds a field with a default: BACKWARD compatible.
USER_V2 = json.dumps({
    "type": "record", "name": "User", "namespace": "compat",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "age", "type": "int"},
        {"name": "email", "type": ["null", "string"], "default": None},
        {"name": "country", "type": "string", "default": "NL"},
    ],
})
# A new field without a default: not BACKWARD compatible.
USER_BAD = json.dumps({
    "type": "record", "name": "User", "namespace": "compat",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "age", "type": "int"},
        {"name": "email", "type": ["null", "string"], "default": None},
        {"name": "phone", "type": "string"},
    ],
})


def wait_for_registry(url: str):
    def ready():
        try:
            return httpx.get(f"{url}/subjects", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
    wait_until(ready, timeout=30, what=f"the registry at {url}")


def start(tmp_path, name: str, data_dir=None, port=None) -> tuple[RunnelServer, str]:
    port = port or free_port()
    server = RunnelServer(
        runnel_bin(),
        data_dir or (tmp_path / f"{name}-data"),
        tmp_path / f"{name}.log",
        ["--registry-listen", f"127.0.0.1:{port}", "--no-sql"],
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_for_registry(url)
    return server, url


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    base = tmp_path_factory.mktemp("registry")
    server, url = start(base, "registry")
    yield server, url
    code = server.stop()
    assert code == 0, f"runnel serve exited with {code} after SIGTERM"


def test_avro_records_round_trip_through_the_broker_and_the_registry(registry, topic):
    server, url = registry
    client = SchemaRegistryClient({"url": url})
    ctx = SerializationContext(topic, MessageField.VALUE)
    serialize = AvroSerializer(client, USER_V1)
    to_key = StringSerializer("utf_8")
    users = [
        {"name": f"user-{i}", "age": 20 + i, "email": None if i % 3 == 0 else f"u{i}@example.com"}
        for i in range(30)
    ]
    p = ck_producer(server.bootstrap)
    for u in users:
        p.produce(topic, key=to_key(u["name"], SerializationContext(topic, MessageField.KEY)),
                  value=serialize(u, ctx))
    ck_flush(p)

    # The serializer registered the schema under the TopicName subject.
    latest = client.get_latest_version(f"{topic}-value")
    assert latest.version == 1
    assert json.loads(latest.schema.schema_str) == json.loads(USER_V1)

    c = ck_consumer(server.bootstrap)
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    msgs = ck_consume(c, len(users))
    c.close()
    for m in msgs:
        # Confluent's wire format: magic byte 0, then the id, big-endian.
        magic, schema_id = struct.unpack(">bI", m.value()[:5])
        assert (magic, schema_id) == (0, latest.schema_id)
    # A fresh client resolves the ids on the wire in Runnel's registry.
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": url}))
    got = [deserialize(m.value(), ctx) for m in msgs]
    assert got == users

    # Data written with v1 reads with v2 as the reader schema (the default
    # fills the new field) once v2 is registered: BACKWARD evolution.
    serialize_v2 = AvroSerializer(client, USER_V2)
    newer = {"name": "new", "age": 1, "email": None, "country": "BE"}
    v2_bytes = serialize_v2(newer, ctx)
    # (a fresh client: this one caches the latest version)
    assert SchemaRegistryClient({"url": url}).get_latest_version(f"{topic}-value").version == 2
    reader = AvroDeserializer(client, USER_V2)
    assert reader(msgs[0].value(), ctx) == {**users[0], "country": "NL"}
    assert reader(v2_bytes, ctx) == newer


def test_registry_client_register_look_up_compatibility_and_config(registry, unique_name):
    _, url = registry
    client = SchemaRegistryClient({"url": url})
    subject = unique_name("value")
    schema = Schema(USER_V1, "AVRO")
    schema_id = client.register_schema(subject, schema)
    # Registering again (a fresh client, no cache) gives the same id.
    assert SchemaRegistryClient({"url": url}).register_schema(subject, schema) == schema_id
    # The same schema under another subject shares the id.
    other = unique_name("other")
    assert client.register_schema(other, schema) == schema_id
    assert subject in client.get_subjects()

    found = SchemaRegistryClient({"url": url}).lookup_schema(subject, schema)
    assert (found.subject, found.version, found.schema_id) == (subject, 1, schema_id)
    by_id = SchemaRegistryClient({"url": url}).get_schema(schema_id)
    assert json.loads(by_id.schema_str) == json.loads(USER_V1)
    assert client.get_versions(subject) == [1]
    assert client.get_version(subject, 1).schema_id == schema_id

    # Compatibility: v2 passes, a field without a default does not.
    assert client.test_compatibility(subject, Schema(USER_V2, "AVRO")) is True
    assert client.test_compatibility(subject, Schema(USER_BAD, "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as e:
        client.register_schema(subject, Schema(USER_BAD, "AVRO"))
    assert (e.value.http_status_code, e.value.error_code) == (409, 40901)
    # Under NONE it is accepted.
    client.set_compatibility(subject, "NONE")
    assert client.get_compatibility(subject) == "NONE"
    bad_id = client.register_schema(subject, Schema(USER_BAD, "AVRO"))
    assert bad_id != schema_id
    assert client.get_versions(subject) == [1, 2]

    # Errors come back as the registry's codes.
    with pytest.raises(SchemaRegistryError) as e:
        client.get_version(unique_name("missing"), 1)
    assert (e.value.http_status_code, e.value.error_code) == (404, 40401)
    with pytest.raises(SchemaRegistryError) as e:
        client.get_version(subject, 42)
    assert (e.value.http_status_code, e.value.error_code) == (404, 40402)
    with pytest.raises(SchemaRegistryError) as e:
        SchemaRegistryClient({"url": url}).get_schema(999999)
    assert (e.value.http_status_code, e.value.error_code) == (404, 40403)
    with pytest.raises(SchemaRegistryError) as e:
        client.register_schema(unique_name("broken"), Schema('{"type": "record"}', "AVRO"))
    assert (e.value.http_status_code, e.value.error_code) == (422, 42201)

    # Deletes: soft, then permanent.
    assert client.delete_version(subject, 2) == 2
    assert client.get_versions(subject) == [1]
    assert sorted(client.delete_subject(subject)) == [1]
    assert subject not in client.get_subjects()
    assert sorted(client.delete_subject(subject, permanent=True)) == [1, 2]


def test_references_between_subjects(registry, unique_name):
    _, url = registry
    client = SchemaRegistryClient({"url": url})
    address_subject = unique_name("address")
    address = json.dumps({"type": "record", "name": "Address", "namespace": "compat",
                          "fields": [{"name": "city", "type": "string"}]})
    client.register_schema(address_subject, Schema(address, "AVRO"))
    person = json.dumps({"type": "record", "name": "Person", "namespace": "compat",
                         "fields": [{"name": "name", "type": "string"},
                                    {"name": "home", "type": "compat.Address"}]})
    refs = [SchemaReference("compat.Address", address_subject, 1)]
    person_subject = unique_name("person")
    person_id = client.register_schema(person_subject, Schema(person, "AVRO", refs))
    got = client.get_latest_version(person_subject)
    assert [(r.name, r.subject, r.version) for r in got.schema.references] == \
        [("compat.Address", address_subject, 1)]
    referenced = httpx.get(f"{url}/subjects/{address_subject}/versions/1/referencedby").json()
    assert referenced == [person_id]
    with pytest.raises(SchemaRegistryError) as e:
        client.delete_subject(address_subject)
    assert e.value.error_code == 42206


def test_mode_readonly_and_import(registry, unique_name):
    _, url = registry
    client = SchemaRegistryClient({"url": url})
    subject = unique_name("ro")
    client.register_schema(subject, Schema(USER_V1, "AVRO"))
    client.update_mode(subject, "READONLY")
    assert client.get_mode(subject) == "READONLY"
    with pytest.raises(SchemaRegistryError) as e:
        client.register_schema(subject, Schema(USER_V2, "AVRO"))
    assert (e.value.http_status_code, e.value.error_code) == (422, 42205)
    client.delete_mode(subject)
    client.register_schema(subject, Schema(USER_V2, "AVRO"))

    imported = unique_name("imported")
    client.update_mode(imported, "IMPORT")
    r = httpx.post(f"{url}/subjects/{imported}/versions",
                   json={"schema": USER_V1, "id": 5000, "version": 3},
                   headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": 5000}
    assert client.get_version(imported, 3).schema_id == 5000
    # The id is taken now: a different schema cannot have it.
    r = httpx.post(f"{url}/subjects/{imported}/versions",
                   json={"schema": USER_BAD, "id": 5000, "version": 4})
    assert (r.status_code, r.json()["error_code"]) == (422, 42205)


def test_a_killed_registry_keeps_every_schema_it_acknowledged(tmp_path):
    port = free_port()
    server, url = start(tmp_path, "killed", port=port)
    client = SchemaRegistryClient({"url": url})
    acknowledged = {}
    for i in range(40):
        subject = f"subject-{i % 7}"
        schema = json.dumps({"type": "record", "name": f"R{i}", "namespace": "killed",
                             "fields": [{"name": "f", "type": "int"}]})
        # Each subject takes unrelated records: no compatibility between them.
        if i < 7:
            client.set_compatibility(subject, "NONE")
        schema_id = client.register_schema(subject, Schema(schema, "AVRO"))
        acknowledged[(subject, schema)] = schema_id
    client.set_compatibility(level="FULL")
    client.update_mode("subject-6", "READONLY")
    client.delete_version("subject-5", 1)
    before = {
        path: httpx.get(f"{url}{path}").json()
        for path in ["/subjects", "/subjects?deleted=true", "/config", "/mode/subject-6",
                     "/subjects/subject-5/versions?deleted=true", "/config/subject-0"]
    }
    assert server.kill() == -9

    server, url = start(tmp_path, "killed", data_dir=server.data_dir, port=port)
    try:
        fresh = SchemaRegistryClient({"url": url})
        for (subject, schema), schema_id in acknowledged.items():
            found = fresh.lookup_schema(subject, Schema(schema, "AVRO"), deleted=True)
            assert found.schema_id == schema_id, subject
            assert json.loads(fresh.get_schema(schema_id).schema_str) == json.loads(schema)
        for path, body in before.items():
            assert httpx.get(f"{url}{path}").json() == body, path
        # Ids continue after the highest acknowledged one.
        fresh.set_compatibility("new", "NONE")
        new_id = fresh.register_schema("new", Schema(json.dumps(
            {"type": "record", "name": "After", "fields": []}), "AVRO"))
        assert new_id > max(acknowledged.values())
    finally:
        assert server.stop() == 0


class RemoteRegistry:
    """`runnel serve --bootstrap-servers B --no-sql`: a registry alone, on a
    cluster it reaches over the Kafka protocol (librdkafka), as it would
    run on Apache Kafka."""

    def __init__(self, bootstrap: str, log_path):
        import os
        import subprocess

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "ab")
        env = dict(os.environ, RUNNEL_LOG="info", NO_COLOR="1")
        self.proc = subprocess.Popen(
            [str(runnel_bin()), "serve", "--bootstrap-servers", bootstrap, "--no-sql",
             "--registry-listen", f"127.0.0.1:{self.port}"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=env,
        )

    def stop(self) -> int:
        """SIGTERM; the exit code, or None when it had to be killed."""
        import signal
        import subprocess

        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self._log.close()


class EmbeddedRegistry:
    """The registry inside the broker's own `runnel serve` (in-process backends)."""

    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> int:
        return 0


@pytest.mark.parametrize("first", ["remote", "embedded"])
def test_two_registries_on_one_cluster_never_give_one_id_twice(make_server, tmp_path, first):
    """Two registries share one cluster's `_schemas` topic and take
    registrations at the same moment — two processes reaching it through the
    Kafka protocol, or the broker's embedded registry and one such process:
    every schema gets one id, no id goes to two schemas, and both agree."""
    from concurrent.futures import ThreadPoolExecutor

    if first == "embedded":
        port = free_port()
        broker = make_server(extra_args=["--registry-listen", f"127.0.0.1:{port}", "--no-sql"]).start()
        a = EmbeddedRegistry(port)
    else:
        broker = make_server(extra_args=["--no-registry", "--no-sql"]).start()
        a = RemoteRegistry(broker.bootstrap, tmp_path / "registry-a.log")
    b = RemoteRegistry(broker.bootstrap, tmp_path / "registry-b.log")
    try:
        for r in (a, b):
            wait_for_registry(r.url)
        httpx.put(f"{a.url}/config", json={"compatibility": "NONE"}).raise_for_status()

        def register(job):
            url, name, subject = job
            schema = json.dumps({"type": "record", "name": name, "fields": []})
            r = httpx.post(f"{url}/subjects/{subject}/versions", json={"schema": schema},
                           timeout=60)
            assert r.status_code == 200, r.text
            return name, r.json()["id"]

        jobs = []
        for i in range(60):
            url = a.url if i % 2 == 0 else b.url
            jobs.append((url, f"S{i}", f"shared-{i % 3}"))
            # The same schema through both registries.
            jobs.append((url, "Common", "common"))
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(register, jobs))
        by_name: dict[str, int] = {}
        by_id: dict[int, str] = {}
        for name, schema_id in results:
            assert by_name.setdefault(name, schema_id) == schema_id, f"{name} got two ids"
            assert by_id.setdefault(schema_id, name) == name, f"id {schema_id} went to two schemas"
        assert len(by_name) == 61

        def same():
            paths = ["/subjects", "/subjects/shared-0/versions", "/subjects/common/versions"]
            return all(httpx.get(f"{a.url}{p}").json() == httpx.get(f"{b.url}{p}").json()
                       for p in paths)
        wait_until(same, timeout=15, what="both registries to agree")
        assert httpx.get(f"{b.url}/subjects/common/versions").json() == [1]
        for name, schema_id in by_name.items():
            body = httpx.get(f"{b.url}/schemas/ids/{schema_id}").json()
            assert json.loads(body["schema"])["name"] == name
    finally:
        codes = [a.stop(), b.stop()]
    assert codes == [0, 0], f"registries exited with {codes}"


def test_kafkajs_schema_registry_client(registry):
    """@kafkajs/confluent-schema-registry and KafkaJS (js/registry.test.js)."""
    import os
    import re
    import shutil
    import subprocess
    from pathlib import Path

    server, url = registry
    js = Path(__file__).resolve().parent / "js"
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (js / "node_modules" / "@kafkajs" / "confluent-schema-registry").is_dir():
        pytest.fail(f"@kafkajs/confluent-schema-registry is not installed: run `npm ci` in {js}")
    env = dict(os.environ, RUNNEL_BOOTSTRAP=server.bootstrap, RUNNEL_REGISTRY=url,
               KAFKAJS_NO_PARTITIONER_WARNING="1")
    proc = subprocess.run([node, "--test", "--test-reporter=tap", "registry.test.js"],
                          cwd=js, env=env, capture_output=True, text=True, timeout=110)
    report = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    passed = re.search(r"^# pass (\d+)$", proc.stdout, re.M)
    failed = re.search(r"^# fail (\d+)$", proc.stdout, re.M)
    assert proc.returncode == 0, f"registry.test.js failed (exit {proc.returncode})\n{report}"
    assert failed is not None and int(failed.group(1)) == 0, report
    assert passed is not None and int(passed.group(1)) >= 3, report
