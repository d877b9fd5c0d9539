#!/usr/bin/env bash
# A private PostgreSQL for the tests (CDC sources, JDBC-style sinks): its own
# data directory and port, logical replication on, trust auth on loopback.
#
#   scripts/postgres.sh start [DIR]   # initdb if new, start if stopped; prints the URL
#   scripts/postgres.sh url   [DIR]   # the URL of a running one
#   scripts/postgres.sh stop  [DIR]   # immediate stop
#
# DIR defaults to ${TMPDIR:-/tmp}/runnel-postgres-<uid>. The port is chosen
# free at the first start and kept in DIR/port. Needs Debian's `postgresql`
# (scripts/test.sh installs it). As root, the server runs as the `postgres`
# user (PostgreSQL refuses root). Tests make a database of their own each,
# so one server serves a whole run.
set -euo pipefail

cmd=${1:-}
dir=${2:-${TMPDIR:-/tmp}/runnel-postgres-$(id -u)}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -n "$bindir" ] || bindir=$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")
if [ ! -x "$bindir/pg_ctl" ]; then
  echo "error: PostgreSQL is not installed (apt-get install postgresql)" >&2
  exit 1
fi

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

url() { echo "postgres://postgres@127.0.0.1:$(cat "$dir/port")/postgres"; }

running() { [ -f "$dir/data/postmaster.pid" ] && as_pg "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; }

case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    [ -f "$dir/port" ] || free_port >"$dir/port"
    if ! running; then
      as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w -t 60 \
        -o "-p $(cat "$dir/port") -c listen_addresses=127.0.0.1 -k $dir/data -c wal_level=logical -c max_replication_slots=64 -c max_wal_senders=64 -c max_connections=200 -c fsync=off -c synchronous_commit=on" \
        start >/dev/null || { tail -20 "$dir/data/server.log" >&2; exit 1; }
    fi
    url
    ;;
  url)
    running || { echo "error: no PostgreSQL running in $dir" >&2; exit 1; }
    url
    ;;
  stop)
    if running; then as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null; fi
    ;;
  *)
    sed -n '2,13p' "$0"; exit 2 ;;
esac
