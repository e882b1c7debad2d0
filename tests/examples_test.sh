#!/usr/bin/env bash
# Runs one example of examples/ against a fresh database and checks what it
# did (registered with ctest by examples/CMakeLists.txt):
#
#   examples_test.sh deploy_driver   DEPLOY_DRIVER
#   examples_test.sh startup_check   CLI CHECK_COMMAND...   (C++, C or Python)
#   examples_test.sh deploy_pipeline CLI deploy_pipeline.sh STARTUP_CHECK
#                    (runs examples/migrations, beside deploy_pipeline.sh)
#
# Server: PGSHIFT_TEST_DSN, or a throwaway cluster (scripts/pgtemp.sh).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PGOPTIONS="${PGOPTIONS:+$PGOPTIONS }-c client_min_messages=warning"
what=$1
shift

failures=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgshift-example.XXXXXX")
chmod 755 "$tmp"  # the cluster below runs as postgres when we are root
cluster=""
server_dsn=${PGSHIFT_TEST_DSN:-}
dbs=()

cleanup() {
  for d in "${dbs[@]}"; do
    psql -X -q -d "$server_dsn" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1
  done
  [[ -n "$cluster" ]] && bash "$ROOT/scripts/pgtemp.sh" stop "$cluster" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "FAILED: $*" >&2; failures=$((failures + 1)); }

if [[ -z "$server_dsn" ]]; then
  cluster="$tmp/cluster"
  server_dsn=$(PGTEMP_WATCH_PID=$$ bash "$ROOT/scripts/pgtemp.sh" start "$cluster") || exit 1
fi

# new_db NAME: creates database NAME; prints its DSN.
new_db() {
  local name="t_ex_${1}_$$"
  psql -X -q -v ON_ERROR_STOP=1 -d "$server_dsn" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" \
    -c "CREATE DATABASE $name" >/dev/null || exit 1
  dbs+=("$name")
  if [[ "$server_dsn" == postgres://* || "$server_dsn" == postgresql://* ]]; then
    local base=${server_dsn%%\?*} query=""
    [[ "$server_dsn" == *\?* ]] && query="?${server_dsn#*\?}"
    local scheme=${base%%://*} rest=${base#*://}
    echo "${scheme}://${rest%%/*}/${name}${query}"
  else
    echo "$server_dsn dbname=$name"
  fi
}

q() { psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }

# expect_exit CODE TEXT CMD...: runs CMD, checks its exit code and that its
# output (stdout + stderr) contains TEXT.
expect_exit() {
  local want=$1 text=$2 out rc
  shift 2
  out=$("$@" 2>&1)
  rc=$?
  last_out=$out
  echo "\$ $(basename "$1") ${*:2}"
  echo "$out" | sed 's/^/  | /'
  [[ $rc -eq $want ]] || fail "exit $rc, expected $want: $*"
  [[ -z "$text" || "$out" == *"$text"* ]] || fail "output lacks \"$text\": $*"
}

case "$what" in
  deploy_driver)
    driver=$1
    db=$(new_db deploy_driver)
    expect_exit 0 "OK: contracted, no write was lost" "$driver" --dsn "$db" --rows 5000 --batches-per-run 2
    [[ "$(q "SELECT phase FROM deploy_example_pgshift.migrations")" == contracted ]] \
      || fail "migration not contracted"
    [[ "$(q "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'deploy_example.accounts'::regclass AND attnum > 0 AND NOT attisdropped")" == "id,created_at,email_address" ]] \
      || fail "accounts columns are not id, created_at, email_address"
    # The backfill ran in bounded runs: several attempts of the backfilled step.
    [[ "$(q "SELECT count(*) > 1 FROM deploy_example_pgshift.history WHERE step = 'backfilled'")" == t ]] \
      || fail "the backfill was not resumed across bounded runs"
    # Running it again starts from scratch and succeeds again.
    expect_exit 0 "OK: contracted" "$driver" --dsn "$db" --rows 1000
    ;;

  startup_check)
    cli=$1
    shift
    check=("$@")
    db=$(new_db startup_check)
    name=0042_rename_users_name
    q "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);
       INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 200) g" || exit 1
    cat >"$tmp/m.json" <<EOF
{"name": "$name", "schema": "public",
 "operations": [{"rename_column": {"table": "users", "from": "name", "to": "full_name"}}]}
EOF
    expect_exit 1 "cannot check" "${check[@]}" --dsn "host=127.0.0.1 port=1 connect_timeout=5" \
      --migration "$name" --needs switched
    expect_exit 2 "" "${check[@]}" --dsn "$db" --migration "$name" --needs swiched
    expect_exit 3 "not registered" "${check[@]}" --dsn "$db" --migration "$name" --needs switched
    "$cli" --dsn "$db" init >/dev/null && "$cli" --dsn "$db" register "$tmp/m.json" >/dev/null \
      && "$cli" --dsn "$db" advance "$name" --to validated >/dev/null || fail "CLI expand"
    expect_exit 3 "is at validated" "${check[@]}" --dsn "$db" --migration "$name" --needs switched
    expect_exit 0 "schema ready" "${check[@]}" --dsn "$db" --migration "$name" --needs validated
    "$cli" --dsn "$db" advance "$name" --to switched >/dev/null || fail "CLI switch"
    expect_exit 0 "schema ready" "${check[@]}" --dsn "$db" --migration "$name" --needs switched
    PGSHIFT_DSN="$db" expect_exit 0 "schema ready" "${check[@]}" --migration "$name" --needs switched
    "$cli" --dsn "$db" advance "$name" --to contracted >/dev/null || fail "CLI contract"
    expect_exit 0 "schema ready" "${check[@]}" --dsn "$db" --migration "$name" --needs switched
    ;;

  deploy_pipeline)
    # The pipeline runs examples/migrations across two deploys of a live
    # application and checks every row itself; then the directory's
    # refusals are tried on copies of it, against the migrated database.
    cli=$1 pipeline=$2 startup_check=$3
    dir="$(dirname "$pipeline")/migrations"
    db=$(new_db deploy_pipeline)
    export PGSHIFT_DSN="$db"
    export PGSHIFT="$cli --lock-timeout 500ms"
    STARTUP_CHECK="$startup_check" expect_exit 0 "pipeline: OK" bash "$pipeline" "$dir"
    [[ "$last_out" == *"pre-deploy migrate took"* ]] || fail "the pipeline did not time its migrate"

    echo "--- migrate again: nothing to do"
    steps=$(q "SELECT count(*) FROM pgshift.history")
    expect_exit 0 "nothing to do: every file is applied" "$cli" migrate "$dir"
    expect_exit 0 "nothing to contract" "$cli" migrate "$dir" --contract
    [[ "$(q "SELECT count(*) FROM pgshift.history")" == "$steps" ]] || fail "a second migrate ran a step"

    copy() { rm -rf "$tmp/dir"; cp -r "$dir" "$tmp/dir"; }
    recorded() { q "SELECT string_agg(name || ':' || phase || ':' || checksum, ',' ORDER BY name) FROM pgshift.migrations"; }
    before=$(recorded)

    echo "--- line endings alone are no change"
    copy
    sed -i 's/$/\r/' "$tmp/dir/0005_rename_customers_name.json"
    expect_exit 0 "" "$cli" migrate "$tmp/dir"

    echo "--- an applied file that changed: refused, nothing changed"
    copy
    sed -i 's/"customers"/ "customers"/' "$tmp/dir/0005_rename_customers_name.json"
    expect_exit 2 "0005_rename_customers_name" "$cli" migrate "$tmp/dir"
    expect_exit 0 "changed" "$cli" status "$tmp/dir"
    [[ "$(recorded)" == "$before" ]] || fail "a refused migrate changed pgshift.migrations"

    echo "--- an applied file that is missing: refused"
    copy
    rm "$tmp/dir/0003_fk_orders_customer.json"
    expect_exit 2 "0003_fk_orders_customer" "$cli" migrate "$tmp/dir"
    [[ "$(recorded)" == "$before" ]] || fail "a refused migrate changed pgshift.migrations"

    echo "--- a new file that sorts before an applied one: refused, then allowed"
    copy
    echo '{"operations": [{"add_check": {"table": "reviews", "name": "reviews_rating_range",
      "check": "rating BETWEEN 1 AND 5"}}]}' >"$tmp/dir/0008a_reviews_rating_range.json"
    expect_exit 2 "0008a_reviews_rating_range" "$cli" migrate "$tmp/dir"
    [[ "$(recorded)" == "$before" ]] || fail "a refused migrate changed pgshift.migrations"
    expect_exit 0 "" "$cli" migrate "$tmp/dir" --allow-out-of-order
    [[ "$(q "SELECT phase FROM pgshift.migrations WHERE name = '0008a_reviews_rating_range'")" == switched ]] \
      || fail "0008a_reviews_rating_range is not switched"

    echo "--- a name that is not the file name: refused"
    echo '{"name": "0010_other", "operations": [{"add_check": {"table": "orders", "name": "c",
      "check": "true"}}]}' >"$tmp/dir/0010_orders_check.json"
    expect_exit 2 "0010_other" "$cli" migrate "$tmp/dir" --allow-out-of-order
    ;;

  *)
    echo "usage: examples_test.sh deploy_driver|startup_check|deploy_pipeline ..." >&2
    exit 2
    ;;
esac

if ((failures)); then
  echo "examples_test $what: $failures failure(s)" >&2
  exit 1
fi
echo "examples_test $what: ok"
