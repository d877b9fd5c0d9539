"""Runs the KafkaJS checks (js/kafkajs.test.js, node's built-in test runner)
against the session broker, so that one pytest run reports every client."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"


def test_kafkajs_suite(bootstrap):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (JS_DIR / "node_modules" / "kafkajs").is_dir():
        pytest.fail(f"kafkajs is not installed: run `npm ci` in {JS_DIR}")
    env = dict(os.environ, RUNNEL_BOOTSTRAP=bootstrap, KAFKAJS_NO_PARTITIONER_WARNING="1")
    proc = subprocess.run(
        [node, "--test", "--test-reporter=tap", "kafkajs.test.js"],
        cwd=JS_DIR, env=env, capture_output=True, text=True, timeout=120,
    )
    report = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    passed = re.search(r"^# pass (\d+)$", proc.stdout, re.M)
    failed = re.search(r"^# fail (\d+)$", proc.stdout, re.M)
    assert proc.returncode == 0, f"KafkaJS checks failed (exit {proc.returncode})\n{report}"
    assert failed is not None and int(failed.group(1)) == 0, report
    # 8 tests inside the describe() block, plus the block itself.
    assert passed is not None and int(passed.group(1)) >= 8, report
