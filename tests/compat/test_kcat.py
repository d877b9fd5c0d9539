"""kcat (Debian's package: kcat 1.7.1 on librdkafka 2.0.2, an old client).

The simple consumer (-C without -G) is used here.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from compat_util import ck_admin, ck_create_topic, now_ms

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def kcat(kcat_bin, bootstrap, *args, stdin: str | None = None, timeout: float = 30.0) -> str:
    cmd = [kcat_bin, "-b", bootstrap, "-q", *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc.stdout


def consume_lines(kcat_bin, bootstrap, topic, *args) -> list[str]:
    out = kcat(kcat_bin, bootstrap, "-C", "-t", topic, "-e", *args)
    return out.splitlines()


def test_metadata_list(kcat_bin, bootstrap, topic):
    ck_create_topic(ck_admin(bootstrap), topic, partitions=3)
    host, port = bootstrap.rsplit(":", 1)

    text = kcat(kcat_bin, bootstrap, "-L")
    assert "1 brokers:" in text
    assert f"at {host}:{port}" in text
    assert f'topic "{topic}" with 3 partitions:' in text

    meta = json.loads(kcat(kcat_bin, bootstrap, "-L", "-J", "-t", topic))
    assert [b["name"] for b in meta["brokers"]] == [f"{host}:{port}"]
    broker_id = meta["brokers"][0]["id"]
    assert meta["controllerid"] == broker_id
    (t,) = meta["topics"]
    assert t["topic"] == topic
    parts = sorted(t["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    for p in parts:
        assert p["leader"] == broker_id
        assert [r["id"] for r in p["replicas"]] == [broker_id]
        assert [r["id"] for r in p["isrs"]] == [broker_id]


def test_produce_keys_headers_then_consume(kcat_bin, bootstrap, topic):
    # The topic does not exist yet: kcat's producer auto-creates it.
    lines = [f"key{i}:value {i} with spaces" for i in range(20)]
    before = now_ms()
    kcat(kcat_bin, bootstrap, "-P", "-t", topic, "-p", "0", "-K:",
         "-H", "source=kcat", "-H", "trace=abc-123", stdin="\n".join(lines) + "\n")
    after = now_ms()

    out = consume_lines(kcat_bin, bootstrap, topic, "-o", "beginning",
                        "-f", "%p|%o|%k|%s|%h|%T\n")
    assert len(out) == 20, out
    for i, line in enumerate(out):
        part, off, key, value, headers, ts = line.split("|")
        assert (part, off) == ("0", str(i))
        assert key == f"key{i}"
        assert value == f"value {i} with spaces"
        assert headers == "source=kcat,trace=abc-123"
        assert before - 5 <= int(ts) <= after + 5, (before, ts, after)

    # The same records through the JSON envelope.
    js = [json.loads(x) for x in consume_lines(kcat_bin, bootstrap, topic, "-o", "beginning", "-J")]
    assert [m["key"] for m in js] == [f"key{i}" for i in range(20)]
    assert [m["payload"] for m in js] == [f"value {i} with spaces" for i in range(20)]
    assert all(m["headers"] == ["source", "kcat", "trace", "abc-123"] for m in js)
    assert all(m["tstype"] == "create" for m in js)


def test_offset_relative_to_end(kcat_bin, bootstrap, topic):
    ck_create_topic(ck_admin(bootstrap), topic, partitions=1)
    kcat(kcat_bin, bootstrap, "-P", "-t", topic, "-p", "0",
         stdin="".join(f"m{i}\n" for i in range(10)))
    assert consume_lines(kcat_bin, bootstrap, topic, "-o", "-3", "-f", "%o %s\n") == [
        "7 m7", "8 m8", "9 m9"]
    assert consume_lines(kcat_bin, bootstrap, topic, "-o", "4", "-c", "2", "-f", "%s\n") == [
        "m4", "m5"]
    assert consume_lines(kcat_bin, bootstrap, topic, "-o", "end") == []


def test_offset_by_timestamp(kcat_bin, bootstrap, topic):
    ck_create_topic(ck_admin(bootstrap), topic, partitions=1)
    kcat(kcat_bin, bootstrap, "-P", "-t", topic, "-p", "0",
         stdin="".join(f"early{i}\n" for i in range(5)))
    time.sleep(0.25)
    mid = now_ms()
    time.sleep(0.25)
    kcat(kcat_bin, bootstrap, "-P", "-t", topic, "-p", "0",
         stdin="".join(f"late{i}\n" for i in range(5)))

    out = consume_lines(kcat_bin, bootstrap, topic, "-o", f"s@{mid}", "-f", "%o %s %T\n")
    assert [x.split()[1] for x in out] == [f"late{i}" for i in range(5)]
    assert [x.split()[0] for x in out] == [str(i) for i in range(5, 10)]
    assert all(int(x.split()[2]) >= mid for x in out)

    # e@: stop (exclusive) at the first record at or after the timestamp.
    out = consume_lines(kcat_bin, bootstrap, topic, "-o", "beginning", "-o", f"e@{mid}",
                        "-f", "%s\n")
    assert out == [f"early{i}" for i in range(5)]


@pytest.mark.parametrize("codec", CODECS)
def test_compression(kcat_bin, bootstrap, topic, codec):
    ck_create_topic(ck_admin(bootstrap), topic, partitions=2)
    n = 300
    lines = [f"k{i % 10}:{codec} payload {i} " + "x" * (i % 50) for i in range(n)]
    kcat(kcat_bin, bootstrap, "-P", "-t", topic, "-K:", "-z", codec,
         "-X", "linger.ms=50", stdin="\n".join(lines) + "\n")
    out = consume_lines(kcat_bin, bootstrap, topic, "-o", "beginning", "-f", "%p %o %k:%s\n")
    assert len(out) == n
    got = sorted((line.split(" ", 2) for line in out), key=lambda x: (x[0], int(x[1])))
    assert sorted(x[2] for x in got) == sorted(lines)
    # Every partition is read back in offset order without gaps.
    for part in ("0", "1"):
        offs = [int(x[1]) for x in got if x[0] == part]
        assert offs == list(range(len(offs)))
    # Each key stays in one partition.
    key_parts = {}
    for part, _, kv in got:
        key_parts.setdefault(kv.split(":", 1)[0], set()).add(part)
    assert all(len(s) == 1 for s in key_parts.values())
