#!/usr/bin/env bash
# The one test command for Runnel, for developers and CI alike:
#
#   ./scripts/test.sh                 # set-up, fmt, clippy, cargo test, build, fuzz, client compat suite
#   ./scripts/test.sh --compat-only   # set-up, then only the client compat suite, on the binary you built
#   ./scripts/test.sh -- -k kcat      # anything after -- goes to pytest
#
# It installs what it needs first, and only what is missing, so a second run
# goes straight to the tests: Debian packages (kcat, pkg-config, zlib,
# a JDK and Maven if absent) with apt-get, as root or through sudo; rustfmt
# and clippy with rustup; the compat suite's Python packages in .venv/
# (re-installed when tests/compat/requirements.txt changes); KafkaJS with
# `npm ci` in tests/compat/js (again when its package-lock.json changes);
# Apache Kafka's jars with Maven into ~/.cache/runnel (scripts/kafka.sh fetch),
# and Kafka Connect's with Debezium's PostgreSQL connector (fetch-connect);
# PostgreSQL (Debian's package), started privately for the run and stopped
# at its end (scripts/postgres.sh); franz-go's modules for tests/compat/go
# with `go mod download` (Debian's golang-go if there is no Go; a Go of
# 1.21+ fetches the newer toolchain go.mod asks for through the module
# proxy).
# On a fresh Debian 12 with Rust, Python 3.11, Node 20, gcc, Java 17 and
# Maven this is all it takes; .ci/run calls exactly this.
# Environment: PYTHON (default .venv/bin/python), RUNNEL_BIN (default
# target/debug/runnel), RUNNEL_SKIP_KAFKA=1 (locally only: skip the tests
# that need Apache Kafka when its jars cannot be fetched; ignored when CI=true).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

compat_only=0
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --compat-only) compat_only=1 ;;
    --) shift; pytest_args+=("$@"); break ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
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

# ---------------------------------------------------------------------------
# Set-up: check first, install only what is missing.
# ---------------------------------------------------------------------------

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "error: need root (or sudo) to run: $*" >&2; exit 1
  fi
}

apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "error: missing $* and no apt-get here; install them by hand" >&2
    exit 1
  fi
  echo "installing with apt-get: $*"
  if [ "$apt_updated" -eq 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" </dev/null
}

setup_system() {
  local tool
  for tool in python3 node npm; do
    command -v "$tool" >/dev/null || { echo "error: $tool is not installed on this machine" >&2; exit 1; }
  done
  if [ "$compat_only" -eq 0 ]; then
    command -v cargo >/dev/null || { echo "error: cargo is not installed (https://rustup.rs)" >&2; exit 1; }
  fi
  # kcat: the old-librdkafka client of the compat suite. pkg-config, zlib,
  # make, gcc, g++: what rdkafka-sys (librdkafka from source) needs. A JDK
  # and Maven: Apache Kafka as a test peer (tests/compat/test_kafka_*.py).
  local packages=(kcat pkg-config zlib1g-dev make gcc g++ ca-certificates)
  command -v javac >/dev/null || packages+=(openjdk-17-jdk-headless)
  command -v mvn >/dev/null || packages+=(maven)
  # PostgreSQL: the real database of the connector tests (CDC, sinks).
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || packages+=(postgresql)
  local missing=() pkg status
  if command -v dpkg-query >/dev/null; then
    for pkg in "${packages[@]}"; do
      status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
      [ "$status" = "install ok installed" ] || missing+=("$pkg")
    done
  else
    for tool in kcat pkg-config make gcc g++ javac mvn; do
      command -v "$tool" >/dev/null || missing+=("$tool")
    done
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
  fi
  if [ "$compat_only" -eq 0 ]; then
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
      command -v rustup >/dev/null || { echo "error: rustfmt/clippy missing and no rustup to add them" >&2; exit 1; }
      rustup component add rustfmt clippy
    fi
    echo "$(cargo --version); $(rustc --version)"
  fi
  echo "$(python3 --version); node $(node --version); npm $(npm --version)"
  echo "kcat $(kcat -V 2>&1 | sed -n "s/^Version \([^ ]*\).*librdkafka \([^ ]*\).*/\1 on librdkafka \2/p"); $(javac -version 2>&1); $(mvn -v 2>/dev/null | head -1 | sed "s/\x1b\[[0-9;]*m//g")"
}

# The stamp files record the hash of what was installed from, so a changed
# requirements.txt or package-lock.json installs again and nothing else does.
file_hash() { sha256sum "$1" | cut -d' ' -f1; }

setup_python() {
  local req="$ROOT/tests/compat/requirements.txt" stamp="$ROOT/.venv/.requirements.sha256"
  if [ -n "${PYTHON:-}" ]; then
    echo "python: $PYTHON (from PYTHON, not managed here)"
    return
  fi
  PYTHON="$ROOT/.venv/bin/python"
  if [ ! -x "$PYTHON" ]; then
    if ! python3 -m venv "$ROOT/.venv"; then
      # Debian's own python3 keeps venv in a separate package.
      rm -rf "$ROOT/.venv"
      apt_install python3-venv
      python3 -m venv "$ROOT/.venv"
    fi
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$(file_hash "$req")" ] ||
     ! "$PYTHON" -c 'import confluent_kafka, kafka, pytest, pytest_timeout' 2>/dev/null; then
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$PYTHON" -m pip install -q -r "$req"
    file_hash "$req" >"$stamp"
  fi
  echo "python packages (.venv): $("$PYTHON" -m pip list 2>/dev/null |
    grep -Ei '^(confluent-kafka|kafka-python|pytest) ' | tr -s ' ' | tr '\n' ' ')"
}

setup_node() {
  local js="$ROOT/tests/compat/js"
  local stamp="$js/node_modules/.runnel-lock.sha256"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$(file_hash "$js/package-lock.json")" ]; then
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error </dev/null)
    file_hash "$js/package-lock.json" >"$stamp"
  fi
  echo "node packages: kafkajs $(node -p 'require("./tests/compat/js/node_modules/kafkajs/package.json").version'), @kafkajs/confluent-schema-registry $(node -p 'require("./tests/compat/js/node_modules/@kafkajs/confluent-schema-registry/package.json").version')"
}

setup_kafka() {
  local rc=0
  "$ROOT/scripts/kafka.sh" fetch >/dev/null || rc=$?
  # Kafka Connect and Debezium's PostgreSQL connector: the reference of
  # tests/compat/test_connect_debezium_reference.py.
  [ "$rc" -ne 0 ] || "$ROOT/scripts/kafka.sh" fetch-connect >/dev/null || rc=$?
  if [ "$rc" -ne 0 ]; then
    if [ "${CI:-}" != "true" ] && [ "${RUNNEL_SKIP_KAFKA:-}" = "1" ]; then
      echo "warning: Apache Kafka's jars cannot be fetched; RUNNEL_SKIP_KAFKA=1 skips the tests that need them" >&2
      return
    fi
    echo "error: Apache Kafka's jars cannot be fetched (see above); the Kafka tests cannot run." >&2
    echo "       Locally, RUNNEL_SKIP_KAFKA=1 skips them (never in CI)." >&2
    exit 1
  fi
  echo "Apache Kafka $("$ROOT/scripts/kafka.sh" version): jars in $("$ROOT/scripts/kafka.sh" fetch)"
  echo "Kafka Connect and Debezium: jars in $("$ROOT/scripts/kafka.sh" fetch-connect)"
}

# The Go client of the compat suite (franz-go, tests/compat/go): its
# modules, once; test_franz_go.py builds the program into ~/.cache/runnel/go,
# and test_franz_go_suite.py (scripts/franz_go_suite.sh) copies franz-go's
# module from the module cache there to build and run its pkg/kgo tests.
setup_go() {
  command -v go >/dev/null || apt_install golang-go
  (cd "$ROOT/tests/compat/go" && go mod download) </dev/null
  echo "$(cd "$ROOT/tests/compat/go" && go version); franz-go $(cd "$ROOT/tests/compat/go" && go list -m -f '{{.Version}}' github.com/twmb/franz-go)"
}

# One private PostgreSQL for the whole run (scripts/postgres.sh), stopped
# when this script ends; tests reach it through RUNNEL_TEST_POSTGRES_URL and
# make a database each.
setup_postgres() {
  local dir="$ROOT/target/test-postgres"
  RUNNEL_TEST_POSTGRES_URL=$("$ROOT/scripts/postgres.sh" start "$dir")
  export RUNNEL_TEST_POSTGRES_URL
  trap '"$ROOT/scripts/postgres.sh" stop "$ROOT/target/test-postgres" || true' EXIT
  echo "PostgreSQL $(psql "$RUNNEL_TEST_POSTGRES_URL" -Atc 'show server_version'): $RUNNEL_TEST_POSTGRES_URL"
}

section "set-up  [t+$((SECONDS - started))s]"
setup_system
setup_python
setup_node
setup_kafka
setup_go
setup_postgres
export PYTHON

if [ "$compat_only" -eq 0 ]; then
  step cargo fmt --all -- --check
  step cargo clippy --workspace --all-targets -- -D warnings
  step cargo test --workspace
  step cargo build -p runnel
  # Coverage-guided fuzzing, briefly: FUZZ_SECONDS per target (30).
  step ./scripts/fuzz.sh
fi

section "client compatibility suite: pytest tests/compat  [t+$((SECONDS - started))s]"
export RUNNEL_BIN="${RUNNEL_BIN:-$ROOT/target/debug/runnel}"
if [ ! -x "$RUNNEL_BIN" ]; then
  echo "error: no runnel binary at $RUNNEL_BIN (cargo build -p runnel)" >&2
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
