#!/usr/bin/env bash
# Runs one example of examples/ against a fresh database and checks what it
# did (registered with ctest by examples/CMakeLists.txt):
#
#   examples_test.sh deploy_driver   DEPLOY_DRIVER
#   examples_test.sh startup_check   CLI CHECK_COMMAND...   (C++, C or Python)
#   examples_test.sh deploy_pipeline CLI deploy_pipeline.sh STARTUP_CHECK
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
    cli=$1 pipeline=$2 startup_check=$3
    db=$(new_db deploy_pipeline)
    export PGSHIFT_DSN="$db"
    export PGSHIFT="$cli --lock-timeout 500ms"
    q "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);
       INSERT INTO users SELECT g, 'user ' || g FROM generate_series(1, 3000) g;
       CREATE TABLE orders (id bigint PRIMARY KEY, note text);
       INSERT INTO orders SELECT g, 'note ' || g FROM generate_series(1, 500) g" || exit 1
    cat >"$tmp/users.json" <<'EOF'
{"name": "0042_rename_users_name", "schema": "public",
 "operations": [{"rename_column": {"table": "users", "from": "name", "to": "full_name"}}]}
EOF
    cat >"$tmp/orders.json" <<'EOF'
{"name": "0043_rename_orders_note", "schema": "public",
 "operations": [{"rename_column": {"table": "orders", "from": "note", "to": "remark"}}]}
EOF
    cat >"$tmp/bad.json" <<'EOF'
{"name": "0044_bad", "schema": "public",
 "operations": [{"rename_column": {"table": "users", "from": "no_such_column", "to": "x"}}]}
EOF

    echo "--- the whole pipeline; the new app's startup check is its roll-out"
    DEPLOY_NEW_APP="'$startup_check' --migration 0042_rename_users_name --needs switched" \
      expect_exit 0 "0042_rename_users_name is contracted" bash "$pipeline" "$tmp/users.json"
    [[ "$(q "SELECT phase FROM pgshift.migrations WHERE name = '0042_rename_users_name'")" == contracted ]] \
      || fail "0042 not contracted"
    [[ "$(q "SELECT count(*) FROM users WHERE full_name = 'user ' || id")" == 3000 ]] \
      || fail "users.full_name does not hold every name"
    [[ "$(q "SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'name' AND NOT attisdropped")" == 0 ]] \
      || fail "users.name still exists"

    echo "--- the new app version fails to come up: the pipeline rolls back"
    before=$(q "SELECT string_agg(attname || ':' || attnotnull, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attnum > 0 AND NOT attisdropped")
    DEPLOY_NEW_APP="echo 'new version crashed at startup' >&2; false" \
      expect_exit 1 "rolled back" bash "$pipeline" "$tmp/orders.json"
    [[ "$(q "SELECT phase FROM pgshift.migrations WHERE name = '0043_rename_orders_note'")" == rolled_back ]] \
      || fail "0043 not rolled back"
    after=$(q "SELECT string_agg(attname || ':' || attnotnull, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attnum > 0 AND NOT attisdropped")
    [[ "$before" == "$after" ]] || fail "orders columns changed: $before -> $after"
    [[ "$(q "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass")" == 0 ]] \
      || fail "a trigger is left on orders"

    echo "--- a migration that does not fit the database: nothing changes"
    expect_exit 2 "nothing changed" bash "$pipeline" "$tmp/bad.json"
    [[ "$(q "SELECT count(*) FROM pgshift.migrations WHERE name = '0044_bad'")" == 0 ]] \
      || fail "0044_bad was registered"

    echo "--- the old app version cannot be retired: stays at switched, no rollback"
    cat >"$tmp/orders2.json" <<'EOF'
{"name": "0045_rename_orders_note", "schema": "public",
 "operations": [{"rename_column": {"table": "orders", "from": "note", "to": "memo"}}]}
EOF
    RETIRE_OLD_APP="false" expect_exit 1 "stays at switched" bash "$pipeline" "$tmp/orders2.json"
    [[ "$(q "SELECT phase FROM pgshift.migrations WHERE name = '0045_rename_orders_note'")" == switched ]] \
      || fail "0045 is not left at switched"
    echo "--- running the pipeline again finishes it"
    expect_exit 0 "is contracted" bash "$pipeline" "$tmp/orders2.json"
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
