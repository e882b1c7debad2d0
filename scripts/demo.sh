#!/usr/bin/env bash
# The README's demo: on a throwaway local PostgreSQL, rename a column of a
# million-row table across simulated deploys while an old and a new app
# version keep writing, and verify that no write was lost.
#
#   scripts/demo.sh [--rows N] [--dsn DSN]
#
# Installs what it needs (scripts/deps.sh), builds into build/, starts its own
# cluster unless --dsn is given, and removes the cluster at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

rows=1000000
dsn=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --dsn) dsn="$2"; shift 2 ;;
    *) echo "usage: scripts/demo.sh [--rows N] [--dsn DSN]" >&2; exit 2 ;;
  esac
done

bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target pgshift_demo pgshift_cli >/dev/null

cluster=""
cleanup() { [[ -n "$cluster" ]] && bash scripts/pgtemp.sh stop "$cluster" >/dev/null 2>&1 || true; }
trap cleanup EXIT
if [[ -z "$dsn" ]]; then
  cluster="$(mktemp -d "${TMPDIR:-/tmp}/pgshift-demo.XXXXXX")"
  PGTEMP_WATCH_PID=$$ dsn="$(bash scripts/pgtemp.sh start "$cluster")"
  echo "== throwaway PostgreSQL at: $dsn"
fi
build/examples/demo/pgshift_demo --dsn "$dsn" --rows "$rows"
