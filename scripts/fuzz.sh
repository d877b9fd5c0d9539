#!/usr/bin/env bash
# Coverage-guided fuzzing of what reads untrusted bytes (fuzz/fuzz_targets):
#
#   ./scripts/fuzz.sh                 # every target for FUZZ_SECONDS (default 30) each
#   ./scripts/fuzz.sh batch 600       # one target, ten minutes
#
# Installs what cargo fuzz needs when it is missing: a nightly toolchain
# (minimal profile) and cargo-fuzz. Each run starts from the seeds kept in
# fuzz/corpus/<target> and writes what it finds to a scratch directory, so
# the repository is left as it was; a crash is saved under
# fuzz/artifacts/<target>/ and fails the run (turn it into a test).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

targets=(request batch recovery formats sql)
seconds=${FUZZ_SECONDS:-30}
if [ $# -gt 0 ]; then
  targets=("$1")
  seconds=${2:-$seconds}
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$ROOT/fuzz"
# One build for every target, then each runs on its own.
cargo +nightly fuzz build
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${seconds}s"
  mkdir -p "$scratch/$t" "$ROOT/fuzz/corpus/$t"
  set +e
  cargo +nightly fuzz run "$t" "$scratch/$t" "$ROOT/fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$scratch/$t.log" 2>&1
  rc=$?
  set -e
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$scratch/$t.log" || true
  if [ "$rc" -ne 0 ]; then
    tail -40 "$scratch/$t.log" >&2
    echo "error: fuzz target $t failed (exit $rc); the input is under fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
