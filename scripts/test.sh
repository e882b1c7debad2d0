#!/usr/bin/env bash
# The project's single test command.
#
#   scripts/test.sh
#
# Installs missing dependencies (scripts/deps.sh), configures and builds into
# build/, starts one throwaway PostgreSQL cluster (unless PGSHIFT_TEST_DSN is
# already set), runs ctest and the Python binding tests against it, stops the
# cluster and prints a one-line summary.  Exits non-zero if anything failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

PY=/usr/bin/python3
BUILD_DIR=build
JOBS="${PGSHIFT_TEST_JOBS:-2}"

results=()   # "step=status" entries for the summary
failed=0
cluster_dir=""

log() { printf '==> %s\n' "$*" >&2; }

summary() {
  local verdict="PASS"
  ((failed)) && verdict="FAIL"
  printf 'pgshift test summary: %s [%s]\n' "$verdict" "${results[*]}"
}

cleanup() {
  local rc=$?
  if [[ -n "$cluster_dir" ]]; then
    bash "$ROOT/scripts/pgtemp.sh" stop "$cluster_dir" || true
    cluster_dir=""
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Records a step's outcome.  record NAME RC
record() {
  if [[ "$2" -eq 0 ]]; then
    results+=("$1=ok")
  else
    results+=("$1=FAILED(rc=$2)")
    failed=1
  fi
}

# Stops early (with the summary) after a step nothing else can run without.
abort_if_failed() {
  if ((failed)); then
    summary
    exit 1
  fi
}

# 1. Dependencies.
bash "$ROOT/scripts/deps.sh"
record deps $?
abort_if_failed

# 2. Configure + build.
log "configuring ($BUILD_DIR/)"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPGSHIFT_BUILD_TESTS=ON -DPGSHIFT_BUILD_BENCHMARKS=ON -DPGSHIFT_BUILD_PYTHON=ON
record configure $?
abort_if_failed

log "building"
cmake --build "$BUILD_DIR" -j"$JOBS"
record build $?
abort_if_failed

# 3. One throwaway cluster for the whole run (unless one is provided).
if [[ -z "${PGSHIFT_TEST_DSN:-}" ]]; then
  cluster_dir="$(mktemp -d "${TMPDIR:-/tmp}/pgshift-test.XXXXXX")" || {
    record cluster 1
    abort_if_failed
  }
  log "starting throwaway PostgreSQL cluster in $cluster_dir"
  # PGTEMP_WATCH_PID: the cluster also goes away if this script is killed.
  if dsn="$(PGTEMP_WATCH_PID=$$ bash "$ROOT/scripts/pgtemp.sh" start "$cluster_dir")"; then
    export PGSHIFT_TEST_DSN="$dsn"
    record cluster 0
  else
    record cluster 1
    abort_if_failed
  fi
else
  log "using PGSHIFT_TEST_DSN from the environment"
fi
export PGSHIFT_TEST_DSN

# 4. C++ tests.
log "running ctest"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$JOBS"
record ctest $?

# 5. Python binding tests.
PY_TESTS=bindings/python/tests
if [[ -d "$PY_TESTS" ]]; then
  log "running pytest $PY_TESTS"
  PYTHONPATH="$ROOT/$BUILD_DIR/bindings/python${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" -m pytest -q "$PY_TESTS"
  rc=$?
  if [[ $rc -eq 5 ]]; then
    # "No tests collected": only a failure when there are test files.
    if [[ -n "$(find "$PY_TESTS" -type f \( -name 'test_*.py' -o -name '*_test.py' \) -print -quit)" ]]; then
      record pytest 5
    else
      results+=("pytest=no-tests")
    fi
  else
    record pytest "$rc"
  fi
else
  results+=("pytest=skipped")
fi

summary
((failed == 0))
