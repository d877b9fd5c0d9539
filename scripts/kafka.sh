#!/usr/bin/env bash
# Apache Kafka as a test peer (issue 19): the version set in
# scripts/kafka/pom.xml, its jars fetched with Maven into
# ~/.cache/runnel/kafka-<version> (RUNNEL_KAFKA_CACHE overrides the root),
# and a KRaft cluster of 1 or 3 combined broker+controller nodes on free
# loopback ports.
#
#   scripts/kafka.sh fetch                           # jars into the cache, once
#   scripts/kafka.sh fetch-connect                   # Kafka Connect + Debezium's PostgreSQL
#                                                    # connector (scripts/connect/pom.xml), once
#   scripts/kafka.sh start --nodes 3 --dir /tmp/k    # prints the bootstrap servers when ready
#   scripts/kafka.sh kill --dir /tmp/k --node 2      # SIGKILL one node
#   scripts/kafka.sh restart --dir /tmp/k --node 2   # start it again, wait until ready
#   scripts/kafka.sh status --dir /tmp/k
#   scripts/kafka.sh stop --dir /tmp/k               # SIGTERM, SIGKILL after 30 s
#   scripts/kafka.sh version | classpath
#
# The work is done by tests/compat/kafka_cluster.py (standard library only),
# the same code the compat suite's fixtures use. Exit 3: Kafka cannot be had
# here (no java/mvn, Maven Central unreachable).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec python3 "$ROOT/tests/compat/kafka_cluster.py" "$@"
