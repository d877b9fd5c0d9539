"""Apache Kafka's own Java client (kafka-clients, the fixture's version)
against Runnel's broker.

`java/ClientChecks.java` is compiled at test time against the fixture's
kafka-clients jar alone (class files go to the jar cache, never into the
repository). Each test runs one of its checks in its own JVM; the check
prints what the client observed as JSON and the assertions are here.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from pathlib import Path

import pytest

import kafka_cluster

pytestmark = pytest.mark.kafka

SOURCE = Path(__file__).resolve().parent / "java" / "ClientChecks.java"


@pytest.fixture(scope="session")
def client_checks(kafka_libs) -> Path:
    clients = sorted(kafka_libs.glob("kafka-clients-*.jar"))
    assert len(clients) == 1, f"expected one kafka-clients jar in {kafka_libs}, found {clients}"
    return kafka_cluster.compile_java([SOURCE], "client-checks", cp=str(clients[0]))


def run_check(classes: Path, bootstrap: str, check: str, timeout: float = 100) -> dict:
    prefix = f"java-{check}-{uuid.uuid4().hex[:8]}"
    cmd = kafka_cluster.java("ClientChecks", bootstrap, prefix, check, cp=kafka_cluster.classpath(classes))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    report = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and len(lines) == 1, report
    line = lines[0]
    assert line["check"] == check
    assert line["ok"], f"the Java client threw: {line.get('error')}\n{report}"
    result = line["result"]
    result["_prefix"] = prefix
    return result


def b64(s: bytes | None):
    return None if s is None else base64.b64encode(s).decode()


def test_admin_topics_configs_offsets(client_checks, bootstrap):
    r = run_check(client_checks, bootstrap, "admin")
    t, tc = f"{r['_prefix']}-admin", f"{r['_prefix']}-admin-compact"
    assert r["create_again_error"] == "TopicExistsException"
    assert r["listed"] == [True, True]
    topics = r["describe_topics"]
    assert [p["partition"] for p in topics[t]["partitions"]] == [0, 1, 2]
    assert all(p["leader"] == 1 and p["replicas"] == 1 and p["isr"] == 1 for p in topics[t]["partitions"])
    assert topics[t]["topic_id_set"] and not topics[t]["internal"]
    assert len(topics[tc]["partitions"]) == 1

    before = r["configs_before"]
    assert before["retention.ms"] == {"value": "3600000", "source": "DYNAMIC_TOPIC_CONFIG"}
    assert before["max.message.bytes"] == {"value": "200000", "source": "DYNAMIC_TOPIC_CONFIG"}
    assert before["cleanup.policy"] == {"value": "delete", "source": "DEFAULT_CONFIG"}
    assert before["segment.bytes"]["source"] == "DEFAULT_CONFIG"
    assert r["configs_compact"]["cleanup.policy"] == {"value": "compact", "source": "DYNAMIC_TOPIC_CONFIG"}
    after = r["configs_after"]
    assert after["retention.ms"] == {"value": "7200000", "source": "DYNAMIC_TOPIC_CONFIG"}
    assert after["segment.bytes"] == {"value": "1048576", "source": "DYNAMIC_TOPIC_CONFIG"}
    # DELETE returns the key to its default (Kafka's: 1 MiB plus a batch header).
    assert after["max.message.bytes"] == {"value": "1048588", "source": "DEFAULT_CONFIG"}
    assert r["alter_invalid_error"] == "InvalidConfigurationException"
    assert r["alter_unknown_key_error"] == "InvalidConfigurationException"

    base = r["base_ts"]
    o = r["offsets_before_delete"]
    assert o["earliest"]["offset"] == 0 and o["latest"]["offset"] == 10
    assert o["max_timestamp"] == {"offset": 9, "timestamp": base + 9000}
    assert o["at_base_plus_3500"] == {"offset": 4, "timestamp": base + 4000}
    assert o["at_base_plus_7000"] == {"offset": 7, "timestamp": base + 7000}
    assert o["after_last"]["offset"] == -1
    assert r["delete_records_low_watermark"] == 4
    o = r["offsets_after_delete"]
    assert o["earliest"]["offset"] == 4 and o["latest"]["offset"] == 10
    assert o["at_base_plus_3500"]["offset"] == 4

    assert r["cluster"] == {"nodes": 1, "cluster_id_set": True, "controller_set": True}
    assert r["listed_after_delete"] is False
    assert r["describe_deleted_error"] == "UnknownTopicOrPartitionException"


def test_idempotent_producer_acks_all(client_checks, bootstrap):
    r = run_check(client_checks, bootstrap, "idempotent")
    assert r["sent"] == r["acked"] == 3000
    assert r["keys_in_two_partitions"] == []
    assert r["consumed"] == 3000 and r["distinct_values"] == 3000
    assert r["duplicates"] == 0 and r["offset_gaps"] == 0 and r["keys_out_of_order"] == 0
    assert sum(r["end_offsets"].values()) == 3000
    # The default partitioner hashes keys: 50 keys use all three partitions.
    assert set(r["key_partition"].values()) == {0, 1, 2}


def check_group_consumed(r, total):
    consumed = r["consumed_1"] + r["consumed_2"]
    assert sorted(consumed) == sorted(set(consumed)), "a record was delivered twice"
    assert len(consumed) == total
    per = total // 4
    assert r["committed"] == {f"{r['topic']}-{p}": per for p in range(4)}
    # Each member read exactly the partitions it was assigned.
    for member in (1, 2):
        parts = {int(v.split("-")[0]) for v in r[f"consumed_{member}"]}
        assert parts == set(r[f"assignment_{member}"])


def test_group_range_assignor(client_checks, bootstrap):
    r = run_check(client_checks, bootstrap, "range")
    r["topic"] = f"{r['_prefix']}-range"
    a1, a2 = r["assignment_1"], r["assignment_2"]
    # Range: each member gets a contiguous half.
    assert sorted([a1, a2]) == [[0, 1], [2, 3]]
    assert r["generation_1"] == r["generation_2"] >= 1
    d = r["describe_stable"]
    assert d["state"] == "Stable" and d["assignor"] == "range" and not d["simple"]
    assert sorted(m["partitions"] for m in d["members"]) == [[0, 1], [2, 3]]
    check_group_consumed(r, 40)
    assert r["consumed_total"] == 40
    # Eager protocol: the first member gave up everything when the second joined.
    assert r["events_1"][:3] == [["assigned", [0, 1, 2, 3]], ["revoked", [0, 1, 2, 3]], ["assigned", a1]]
    assert r["after_leave_1"] == [0, 1, 2, 3]
    assert r["describe_empty"]["state"] == "Empty" and r["describe_empty"]["members"] == []


def test_group_cooperative_sticky_assignor(client_checks, bootstrap):
    r = run_check(client_checks, bootstrap, "cooperative")
    r["topic"] = f"{r['_prefix']}-coop"
    assert r["first_alone"] == [0, 1, 2, 3]
    a1, a2 = r["assignment_1"], r["assignment_2"]
    assert len(a1) == len(a2) == 2 and sorted(a1 + a2) == [0, 1, 2, 3]
    d = r["describe_stable"]
    assert d["state"] == "Stable" and d["assignor"] == "cooperative-sticky"
    check_group_consumed(r, 20)
    # Cooperative: the first member only ever revoked what moved to the second.
    revoked = [e[1] for e in r["events_1"] if e[0] == "revoked"]
    assert revoked == [a2], r["events_1"]
    assert ["lost", a2] not in r["events_1"]
    # The joining member may first be handed nothing (while the first member
    # revokes) and its partitions in the next round, or get them at once:
    # both are the cooperative protocol. It only ever gains, then loses on close.
    assert [e for e in r["events_2"] if e[1]] == [["assigned", a2], ["revoked", a2]], r["events_2"]
    # When the second member left, its partitions came back with no revocation.
    assert r["events_1"][-1] == ["assigned", a2], r["events_1"]


def test_group_static_membership(client_checks, bootstrap):
    r = run_check(client_checks, bootstrap, "static")
    p = r["_prefix"]
    a, b = r["assignment_a"], r["assignment_b"]
    assert sorted(a + b) == [0, 1, 2, 3]
    members = r["describe_both"]["members"]
    assert sorted(m["instance_id"] for m in members) == [f"{p}-member-a", f"{p}-member-b"]
    # Closing a static member does not leave the group...
    after_close = r["describe_after_close"]
    assert after_close["state"] == "Stable"
    assert sorted(m["instance_id"] for m in after_close["members"]) == [f"{p}-member-a", f"{p}-member-b"]
    # ...and its restart gets the same partitions without a rebalance.
    assert r["assignment_b_restarted"] == b
    assert r["assignment_a_after"] == a
    assert r["generation_after"] == r["generation_before"]
    assert r["events_a_after_restart"] == []
    assert len(r["describe_restarted"]["members"]) == 2
    # A second live consumer with the same group.instance.id fences the first.
    assert r["duplicate_instance_error"] == "FencedInstanceIdException"
    assert r["assignment_b_newest"] == b


def test_transactions_send_offsets_and_abort(client_checks, bootstrap):
    r = run_check(client_checks, bootstrap, "transactions")
    p = r["_prefix"]
    outs = [f"out-0-{i}" for i in range(10)]
    assert r["committed_after_commit"] == {f"{p}-tx-in-0": 10}
    assert r["group_generation"] >= 1
    # 10 committed, a marker, 5 aborted, a marker: the open transaction's
    # first record (offset 17) is the last stable offset.
    assert r["lso_while_open"] == 17
    assert r["committed_read_while_open"] == outs
    assert r["lso_after_commit"] == 20 == r["log_end"]
    assert r["read_committed"] == outs + ["late-0", "late-1"]
    assert r["read_uncommitted"] == outs + [f"aborted-{i}" for i in range(5)] + ["late-0", "late-1"]
    assert r["fenced_error"] == "ProducerFencedException"
    assert r["read_committed_after_fencing"] == ["fresh"]


def test_records_headers_nulls_timestamps(client_checks, bootstrap):
    r = run_check(client_checks, bootstrap, "records")
    base = r["base_ts"]
    binary = bytes(range(256))
    expected = [
        (b"k0", b"v0", [["h1", b64(b"a")], ["h1", b64(b"b")], ["empty", ""], ["null", None]]),
        (None, b"no key", []),
        (b"tombstone", None, []),
        (None, None, [["only", b64(b"h")]]),
        (b"", b"", []),
        (binary, binary, []),
    ]
    assert r["acks"] == [{"offset": i, "timestamp": base + i * 1000} for i in range(6)]
    got = r["records"]
    assert len(got) == 6
    for i, (rec, (k, v, h)) in enumerate(zip(got, expected)):
        assert rec == {"offset": i, "key": b64(k), "value": b64(v), "timestamp": base + i * 1000,
                       "timestamp_type": "CreateTime", "headers": h}, f"record {i}"
    t = r["offsets_for_times"]
    assert t["before_first"] == {"offset": 0, "timestamp": base}
    assert t["first"] == {"offset": 0, "timestamp": base}
    assert t["between_1_and_2"] == {"offset": 2, "timestamp": base + 2000}
    assert t["last"] == {"offset": 5, "timestamp": base + 5000}
    assert t["after_last"] is None
    assert (r["beginning"], r["end"]) == (0, 6)
