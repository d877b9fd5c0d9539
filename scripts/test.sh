#!/usr/bin/env bash
# The one test command for Runnel, for developers and CI alike:
#
#   ./scripts/test.sh                 # fmt, clippy, cargo test, build, client compat suite
#   ./scripts/test.sh --compat-only   # only the client compat suite, on the binary you built
#   ./scripts/test.sh -- -k kcat      # anything after -- goes to pytest
#
# It installs nothing. The compat suite needs kcat, the Python packages of
# tests/compat/requirements.txt (in .venv/ if that exists) and, for the KafkaJS
# checks, node plus `npm ci` in tests/compat/js; .ci/run sets all that up.
# Environment: PYTHON (default .venv/bin/python, else python3), RUNNEL_BIN
# (default target/debug/runnel).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

compat_only=0
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --compat-only) compat_only=1 ;;
    --) shift; pytest_args+=("$@"); break ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

section() { printf '\n==== %s ====\n' "$*"; }
started=$SECONDS
step() {
  section "$*  [t+$((SECONDS - started))s]"
  "$@"
}

if [ "$compat_only" -eq 0 ]; then
  step cargo fmt --all -- --check
  step cargo clippy --workspace --all-targets -- -D warnings
  step cargo test --workspace
  step cargo build -p runnel
fi

section "client compatibility suite: pytest tests/compat  [t+$((SECONDS - started))s]"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
export RUNNEL_BIN="${RUNNEL_BIN:-$ROOT/target/debug/runnel}"
if [ ! -x "$RUNNEL_BIN" ]; then
  echo "error: no runnel binary at $RUNNEL_BIN (cargo build -p runnel)" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import confluent_kafka, kafka, pytest, pytest_timeout' 2>/dev/null; then
  echo "error: $PYTHON lacks the compat suite's packages; install them with" >&2
  echo "  python3 -m venv .venv && .venv/bin/pip install -r tests/compat/requirements.txt" >&2
  exit 1
fi
echo "python: $PYTHON   runnel: $RUNNEL_BIN"

set +e
"$PYTHON" -m pytest tests/compat -q ${pytest_args[@]+"${pytest_args[@]}"}
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests; that is a failure here" >&2
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  echo "error: client compatibility suite failed (pytest exit $rc)" >&2
  exit "$rc"
fi
section "all checks passed  [t+$((SECONDS - started))s]"
