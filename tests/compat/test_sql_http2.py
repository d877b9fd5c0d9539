"""The ksqlDB API over HTTP/2 (cleartext, prior knowledge), as ksqlDB's own
clients speak it for `/query-stream` and `/inserts-stream`, driven by httpx
with h2; HTTP/1.1 keeps working on the same port."""

from __future__ import annotations

import json

import httpx

from conftest import free_port

DELIMITED = "application/vnd.ksqlapi.delimited.v1"


def lines(text: str) -> list:
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def test_query_stream_and_inserts_stream_over_http2(make_server):
    port = free_port()
    make_server(extra_args=["--sql-listen", f"127.0.0.1:{port}"]).start()
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(http1=False, http2=True, base_url=base, timeout=30) as h2:
        r = h2.post("/ksql", json={"ksql": (
            "CREATE STREAM s (k STRING KEY, v INT) "
            "WITH (KAFKA_TOPIC='h2', VALUE_FORMAT='JSON', PARTITIONS=1);")})
        assert r.http_version == "HTTP/2", r.http_version
        assert r.status_code == 200, r.text

        body = "\n".join(json.dumps(x) for x in [
            {"target": "S"}, {"K": "a", "V": 1}, {"K": "b", "V": 2}]) + "\n"
        r = h2.post("/inserts-stream", content=body, headers={"Content-Type": DELIMITED})
        assert r.http_version == "HTTP/2"
        acks = lines(r.text)
        assert acks == [{"status": "ok", "seq": 0}, {"status": "ok", "seq": 1}], r.text

        # A push query streams rows over one HTTP/2 stream until closed.
        query = {"sql": "SELECT k, v FROM s EMIT CHANGES;",
                 "properties": {"auto.offset.reset": "earliest"}}
        with h2.stream("POST", "/query-stream", json=query,
                       headers={"Accept": DELIMITED}) as resp:
            assert resp.http_version == "HTTP/2"
            got = []
            for line in resp.iter_lines():
                if not line.strip():
                    continue
                got.append(json.loads(line))
                if len(got) == 3:
                    break
        header, rows = got[0], got[1:]
        assert header["columnNames"] == ["K", "V"], header
        assert sorted(rows) == [["a", 1], ["b", 2]], rows

    # The same port still speaks HTTP/1.1.
    r = httpx.get(f"{base}/info", timeout=10)
    assert r.http_version == "HTTP/1.1"
    assert r.json()["KsqlServerInfo"]["serverStatus"] == "RUNNING"
