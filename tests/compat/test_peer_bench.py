"""A short run of the issue-20 harness, `scripts/peer_bench.py`, so that it
keeps working: runnel-streams and Kafka Streams (the harness's default
version, fetched with Maven) run the slide-8 topology with exactly-once on
a small input, first on Runnel's broker, then on a 1-node Apache Kafka the
harness starts itself. The harness exits 0 only when all four runs caught
up and wrote identical tables, equal to what the input implies
(--check-input); here its printed table of ratios and its JSON are checked
to hold one finite, positive measurement per run. No timing is asserted:
the full benchmark is not for CI (see BENCHMARKS.md).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, runnel_bin

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


def test_peer_bench_smoke_run(kafka_libs, tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "peer_bench.py"), "--events", "5000", "--days", "2",
         "--brokers", "runnel,kafka", "--guarantees", "eos", "--check-input",
         "--runnel-bin", str(runnel_bin()), "--work-dir", str(tmp_path / "work"), "--json", str(out),
         "--timeout", "60"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert "outputs agree" in proc.stdout and "equal to what the input implies" in proc.stdout, proc.stdout

    rows = [line for line in proc.stdout.splitlines() if line.startswith("| exactly-once on ")]
    assert len(rows) == 2, proc.stdout
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 4 and "—" not in cells, row
        assert "× wall" in cells[3] and "× per CPU-s" in cells[3] and "RSS" in cells[3], row

    results = json.loads(out.read_text())["results"]
    runs = {(r["broker"], r["guarantee"], r["engine"]) for r in results}
    assert runs == {(b, "eos", e) for b in ("runnel", "kafka") for e in ("runnel", "streams")}
    events = results[0]["events"]
    assert events > 5000  # the opens and the crashes on top
    for r in results:
        assert r["events"] == events, r
        for k in ("wall_s", "cpu_s", "rss_mib"):
            assert math.isfinite(r[k]) and r[k] > 0, r
        # Each run wrote its own results (an engine with a record cache
        # fewer than one per input record).
        assert r["output_records"] > 0, r
    assert not Path(tmp_path / "work" / "kafka" / "cluster.json").exists(), "the harness left Kafka running"
