#!/usr/bin/env bash
# franz-go's own integration suite (pkg/kgo's tests, the franz-go version
# tests/compat/go pins) against a `runnel serve` it starts on a free port
# with a temporary data dir; prints a pass/fail/skip summary. Exit 0 when
# nothing failed and nothing skipped but SASL (and the one test Kafka 4
# skips too); see tests/compat/franz_go_suite.py for the details.
#
#   scripts/franz_go_suite.sh                          # RUNNEL_BIN or target/debug/runnel
#   scripts/franz_go_suite.sh --runnel /tmp/me/runnel --json /tmp/kgo.json
#   scripts/franz_go_suite.sh --dir /tmp/kgo-run -- -test.run 'TestGroupETL|Test848'
#
# Needs Go (scripts/test.sh's setup_go) and franz-go's module in the Go
# module cache (`go mod download`, also done by setup_go).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec python3 "$ROOT/tests/compat/franz_go_suite.py" "$@"
