"""franz-go (github.com/twmb/franz-go v1.22.3, the Go client whose
integration suite issue 21 names) as one more real client of Kafka 4's
groups: its KIP-848 consumer (`kgo.ServerSideBalancer`) and its share
consumer (`kgo.ShareGroup`), driven by `go/main.go` (franzcheck), each check
on Runnel's broker and on the Kafka cluster.

The program is built at test time with the Go toolchain (`go build`, its
modules from the Go module proxy; scripts/test.sh downloads them) into
~/.cache/runnel/go, keyed by the sources' hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

import kafka_cluster
from test_kafka_tools import CONFIGS, tool
from test_share_groups import assert_released_and_rejected

GO_DIR = Path(__file__).resolve().parent / "go"

PEERS = pytest.mark.parametrize("peer", ["runnel", pytest.param("kafka", marks=pytest.mark.kafka)],
                                indirect=True)


@pytest.fixture(scope="session")
def franzcheck() -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail("the Go toolchain is not installed (scripts/test.sh checks for it)")
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update(name.encode() + b"\0" + (GO_DIR / name).read_bytes())
    out = kafka_cluster.cache_dir().parent / "go" / f"franzcheck-{digest.hexdigest()[:16]}"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f"{out.name}.{os.getpid()}")
        proc = subprocess.run([go, "build", "-o", str(tmp), "."], cwd=GO_DIR, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"go build failed:\n{proc.stdout}{proc.stderr}"
        tmp.rename(out)
    return out


def run(binary: Path, bootstrap: str, prefix: str, check: str) -> dict:
    proc = subprocess.run([str(binary), bootstrap, prefix, check], capture_output=True, text=True, timeout=110,
                          stdin=subprocess.DEVNULL)
    report = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, report
    assert lines[0]["check"] == check and lines[0]["ok"], f"{lines[0].get('error')}\n{report}"
    return lines[0]["result"]


@PEERS
def test_franz_go_kip848_members_share_and_take_over(franzcheck, peer):
    """Two franz-go members of a KIP-848 group share 4 partitions 2 + 2
    (ConsumerGroupDescribe through kadm: Stable, uniform, consumer-protocol
    members), one leaves, the other takes all 4, every record is read and
    the commits reach the log end."""
    _, bootstrap = peer
    r = run(franzcheck, bootstrap, f"franz-{uuid.uuid4().hex[:8]}", "kip848")
    assert sorted(r["a"] + r["b"]) == [0, 1, 2, 3] and len(r["a"]) == 2, r
    assert r["described"] == {"state": "Stable", "assignor": "uniform", "members": [
        {"client_id": "franz-a", "partitions": 2, "type": 1},
        {"client_id": "franz-b", "partitions": 2, "type": 1},
    ]}, r
    assert r["read"] == 60
    assert r["committed"] == {str(p): 15 for p in range(4)}, r


@PEERS
def test_franz_go_share_consumers_release_and_reject(kafka_libs, franzcheck, peer):
    """Two franz-go share consumers of one group on one partition: records
    released on their first delivery come back once with delivery count 2,
    rejected ones never, every other one is delivered once."""
    _, bootstrap = peer
    prefix = f"franz-share-{uuid.uuid4().hex[:8]}"
    tool(CONFIGS, "--bootstrap-server", bootstrap, "--entity-type", "groups", "--entity-name", f"{prefix}-g",
         "--alter", "--add-config", "share.auto.offset.reset=earliest")
    r = run(franzcheck, bootstrap, prefix, "share")
    events = r["events"]
    assert not [e for e in events if e["n"] < 0], events  # no ack flush errors
    assert {e["who"] for e in events} == {"a", "b"}, events
    assert_released_and_rejected([(e["n"], e["count"], e["action"]) for e in events])
    assert r["state"] == "Stable", r
