#!/usr/bin/env bash
# A deploy pipeline for a migration directory, run end to end against a real
# database while a small fleet of "shop" application instances keeps writing.
#
#   deploy_pipeline.sh [MIGRATIONS_DIR]      (default: examples/migrations)
#
# Every deploy of the application is three stages around the roll-out:
#
#   pre-deploy    pgshift migrate DIR            every new file of DIR, in order,
#                                                to `switched` (the old version
#                                                keeps running meanwhile)
#   roll-out      a rolling restart: each new instance runs its startup check
#                 (it refuses to start before its migrations are switched),
#                 declares the shape it needs (pgshift declare), starts
#                 writing; then one old instance stops (and withdraws its
#                 declaration: pgshift withdraw)
#   post-deploy   pgshift migrate DIR --contract contracts every switched
#                                                migration whose old-shape
#                                                instances are gone
#
# The example directory holds one file that conflicts with an earlier one
# (0009 checks customers.email, which 0004 changes until it is contracted), so
# the first pre-deploy stops there with exit 1 and says so; the pipeline rolls
# out what is switched, contracts, and the next deploy's `migrate` goes on
# from 0009. That is how the rule plays out across deploys.
#
# The database (PGSHIFT_DSN, else libpq's PG* environment) must be empty: the
# script creates the shop's tables as they were before pgshift, with data,
# then runs two deploys and checks every row at the end: nothing lost,
# every value where the migrations put it, every constraint valid.
#
# Environment:
#   PGSHIFT        the pgshift CLI and its global flags (default: pgshift on
#                  PATH), e.g. "build/pgshift --lock-timeout 500ms"
#   STARTUP_CHECK  the application's startup check, called as
#                  `$STARTUP_CHECK --migration NAME --needs PHASE` (e.g.
#                  examples/startup_check); default `pgshift check NAME
#                  --at-least PHASE`
#   INSTANCES      application instances (default 3)
#   CUSTOMERS      customers in the database before the first deploy
#                  (default 20000; 2 orders each, 1000 products)
#
# Exit codes: 0 everything migrated, contracted and checked · 1 a stage
# failed (the message says where it stands) · 2 bad usage or database.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR=${1:-$HERE/migrations}
read -r -a PGSHIFT_CMD <<<"${PGSHIFT:-pgshift}"
STARTUP_CHECK=${STARTUP_CHECK:-}
INSTANCES=${INSTANCES:-3}
CUSTOMERS=${CUSTOMERS:-20000}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

state=$(mktemp -d "${TMPDIR:-/tmp}/pgshift-pipeline.XXXXXX")
declare -A app_pid=()  # instance id -> pid of its writer

pgshift() { "${PGSHIFT_CMD[@]}" "$@"; }
psql_() { psql -X -q -v ON_ERROR_STOP=1 -d "${PGSHIFT_DSN:-}" "$@"; }
q() { psql_ -At -c "$1"; }
stage() { printf '\n=== %s\n' "$*"; }
die() { echo "pipeline: FAILED: $*" >&2; exit 1; }
# json FIELD-EXPRESSION: evaluates a Python expression over the JSON object on
# stdin (`d`), e.g. json 'd["pending"]'.
json() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

cleanup() {
  local id
  for id in "${!app_pid[@]}"; do
    touch "$state/stop.$id"
    kill "${app_pid[$id]}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT

[[ -d $DIR ]] || { echo "usage: deploy_pipeline.sh [MIGRATIONS_DIR]" >&2; exit 2; }

# ---- The shop application ---------------------------------------------------
# Two versions of one small web shop. Instances are background processes
# writing through one psql session each; every value they write is a function
# of the row's id, so the end of the script can check every row.
#
#   v1  (before the migrations) writes customers.name, leaves customers.email
#       NULL for even ids, writes products.price_cents (an integer), orders
#       without a status.
#   v2  needs 0001, 0005, 0006 and 0008 at `switched`: writes
#       customers.full_name, always an email, products.price (numeric),
#       orders.status, reviews.
#
# Each instance declares the shape it needs, so that contract waits for old
# instances: v1 the old shape of the migrations that change what it reads or
# writes (0004: it writes NULL emails, which the fill trigger replaces until
# contract; 0005; 0006), v2 the new shape of 0005 and 0006. An application
# in C++, C or Python does this with pgshift::InstanceRegistration
# (include/pgshift/check.h); this shell application does what it does with
# the CLI: `pgshift declare` at startup and again every few seconds (a
# declaration lives for its ttl without a refresh, so an instance that dies
# stops counting by itself), `pgshift withdraw` at a clean shutdown.
V1_OLD_SHAPE=(0004_customers_email_not_null 0005_rename_customers_name 0006_products_price_numeric)
V2_NEEDS=(0001_create_reviews 0005_rename_customers_name 0006_products_price_numeric 0008_orders_add_status)
V2_NEW_SHAPE=(0005_rename_customers_name 0006_products_price_numeric)
TTL=30        # seconds a declaration lives without a refresh
REFRESH=2     # seconds between refreshes: at most ttl/3 (InstanceRegistration's period);
              # shorter here, so that the instances of this short run do refresh

# declare_shape VERSION INSTANCE: declares (or refreshes) the shape INSTANCE
# needs of each of its migrations; fails when one is refused.
# withdraw_shape VERSION INSTANCE: withdraws them (a clean shutdown).
declare_shape() {
  local version=$1 id=$2 shape=old m
  local -a migrations=("${V1_OLD_SHAPE[@]}")
  if [[ $version == v2 ]]; then shape=new; migrations=("${V2_NEW_SHAPE[@]}"); fi
  for m in "${migrations[@]}"; do
    pgshift declare "$m" --shape "$shape" --instance-id "$id" --ttl "${TTL}s" \
      --description "shop $version" >/dev/null || return 1
  done
}
withdraw_shape() {
  local version=$1 id=$2 m
  local -a migrations=("${V1_OLD_SHAPE[@]}")
  if [[ $version == v2 ]]; then migrations=("${V2_NEW_SHAPE[@]}"); fi
  for m in "${migrations[@]}"; do
    pgshift withdraw "$m" --instance-id "$id" >/dev/null || {
      echo "instance $id: withdrawing its declaration of $m failed" >&2
      return 1
    }
  done
}

# writer VERSION INSTANCE K: the SQL stream of one instance, until its stop file
# appears; ids are K*1000000 + n. Writes the number of iterations to count.INSTANCE.
writer() {
  local version=$1 id=$2 k=$3 n=0 row email refresh_at=$((SECONDS + REFRESH))
  while [[ ! -e $state/stop.$id ]]; do
    n=$((n + 1))
    row=$((k * 1000000 + n))
    if [[ $version == v1 ]]; then
      email="'c$row@example.com'"
      ((row % 2 == 0)) && email=NULL
      echo "INSERT INTO customers (id, name, email) VALUES ($row, 'customer $row', $email);"
      ((n % 10 == 0)) && echo "INSERT INTO products (id, title, price_cents) VALUES ($row, 'product $row', $((row % 100000)));"
      echo "INSERT INTO orders (id, customer_id, product_id, quantity) VALUES ($row, $row, $((n % 1000 + 1)), $((n % 5 + 1)));"
      # Old rows are edited too (the same values: the check at the end knows them).
      echo "UPDATE customers SET name = 'customer ' || id WHERE id = $(((n * 7919) % CUSTOMERS + 1));"
      echo "UPDATE products SET price_cents = id % 100000 WHERE id = $((n % 1000 + 1));"
    else
      echo "INSERT INTO customers (id, full_name, email) VALUES ($row, 'customer $row', 'c$row@example.com');"
      ((n % 10 == 0)) && echo "INSERT INTO products (id, title, price) VALUES ($row, 'product $row', $((row % 100000)) / 100.0);"
      echo "INSERT INTO orders (id, customer_id, product_id, quantity, status) VALUES ($row, $row, $((n % 1000 + 1)), $((n % 5 + 1)), 'paid');"
      echo "INSERT INTO reviews (id, product_id, customer_id, rating) VALUES ($row, $((n % 1000 + 1)), $row, $((n % 5 + 1)));"
      echo "UPDATE customers SET full_name = 'customer ' || id WHERE id = $(((n * 7919) % CUSTOMERS + 1));"
      echo "UPDATE products SET price = (id % 100000) / 100.0 WHERE id = $((n % 1000 + 1));"
    fi
    if ((SECONDS >= refresh_at)); then  # heartbeat: the declaration lives $TTL s
      # A failed refresh is tried again at the next period (the declaration
      # is live until its ttl has passed), as InstanceRegistration does.
      declare_shape "$version" "$id" || echo "instance $id: refreshing its declaration failed" >&2
      refresh_at=$((SECONDS + REFRESH))
    fi
    sleep 0.02
  done
  echo "$n" >"$state/count.$id"
}

# startup_check NAME PHASE: the application's own check (exit 0 ready, 3 not).
startup_check() {
  if [[ -n $STARTUP_CHECK ]]; then
    $STARTUP_CHECK --migration "$1" --needs "$2"
  else
    pgshift check "$1" --at-least "$2"
  fi
}

# start_instance VERSION K: runs the startup check (v2), declares the shape
# the instance needs, then runs the instance; once its writes are done (a
# clean shutdown) it withdraws its declarations. Fails when the instance
# refuses to start.
start_instance() {
  local version=$1 k=$2 id="shop-$1-$2" m
  if [[ $version == v2 ]]; then
    for m in "${V2_NEEDS[@]}"; do
      startup_check "$m" switched >/dev/null || {
        echo "instance $id refuses to start: $m is not switched" >&2
        return 1
      }
    done
  fi
  declare_shape "$version" "$id" || {
    echo "instance $id refuses to start: its shape declaration was refused" >&2
    return 1
  }
  # (&&, not errexit: roll_out calls this function under `||`, where -e is off.)
  (set -o pipefail; writer "$version" "$id" "$k" | psql_ >/dev/null && withdraw_shape "$version" "$id") &
  app_pid[$id]=$!
  echo "started $id (pid ${app_pid[$id]})"
}

# stop_instance ID: a clean shutdown; fails loudly when one of its writes failed.
stop_instance() {
  local id=$1 rc=0
  touch "$state/stop.$id"
  wait "${app_pid[$id]}" || rc=$?
  unset "app_pid[$id]"
  ((rc == 0)) || die "instance $id: a write failed (exit $rc): the application was broken by the migration"
  echo "stopped $id after $(cat "$state/count.$id") iterations"
}

# Every running instance must still be alive (a failed write ends its psql).
check_fleet() {
  local id
  for id in "${!app_pid[@]}"; do
    kill -0 "${app_pid[$id]}" 2>/dev/null || stop_instance "$id"
  done
}

# ---- The pipeline's stages -------------------------------------------------

# pre_deploy: `migrate DIR`. Exit 0: every migration is switched. Exit 1 at a
# migration that conflicts with an earlier one not contracted yet: the ones
# before it are switched (the new version's startup checks say whether it may
# start), it waits for the next deploy. Any other failure fails the deploy;
# running the pipeline again continues where it stopped.
pre_deploy() {
  local rc=0 t0 t1 out
  t0=$(date +%s%N)
  out=$(pgshift migrate "$DIR" 2>&1) || rc=$?
  t1=$(date +%s%N)
  echo "$out" | sed 's/^/  /'
  printf 'pre-deploy migrate took %d.%03d s (exit %d)\n' $(((t1 - t0) / 1000000000)) \
    $((((t1 - t0) / 1000000) % 1000)) "$rc"
  case $rc in
    0) ;;
    1) [[ $out == *"which is not contracted yet"* ]] \
         || die "pre-deploy migrate failed (exit $rc); fix the cause and run the pipeline again (docs/runbook.md)"
       echo "a migration waits for an earlier one to be contracted: the next deploy runs it" ;;
    2) die "the migration directory was refused (exit 2), nothing changed: see \`pgshift status $DIR\`" ;;
    *) die "pre-deploy migrate failed (exit $rc); run the pipeline again (docs/runbook.md)" ;;
  esac
}

# roll_out VERSION: rolling restart to VERSION, one instance at a time.
roll_out() {
  local version=$1 k old
  for ((k = 1; k <= INSTANCES; k++)); do
    start_instance "$version" $((k + 10)) || die "roll-out of $version stopped: the old version keeps running"
    sleep 0.5
    for old in "${!app_pid[@]}"; do
      if [[ $old == shop-v1-$k ]]; then stop_instance "$old"; fi
    done
    check_fleet
  done
}

# post_deploy: `migrate DIR --contract`; refused (exit 1) while old-shape
# instances are live: retried while their declarations expire (a killed
# instance is not there to withdraw its own).
post_deploy() {
  local rc attempt out
  for attempt in 1 2 3 4 5 6; do
    rc=0
    out=$(pgshift migrate "$DIR" --contract 2>&1) || rc=$?
    echo "$out" | sed 's/^/  /'
    [[ $rc -eq 0 ]] && return 0
    [[ $rc -eq 1 && $out == *"instance"* ]] || die "post-deploy contract failed (exit $rc)"
    echo "old instances still declared; retrying in 10 s (attempt $attempt)"
    sleep 10
  done
  die "post-deploy contract still refused: old instances are live"
}

# ---- The database before the first deploy -----------------------------------
stage "the shop's database before pgshift ($CUSTOMERS customers)"
[[ "$(q "SELECT count(*) FROM pg_tables WHERE tablename IN ('customers', 'products', 'orders', 'reviews')")" == 0 ]] \
  || { echo "pipeline: the database already has the shop's tables; give it an empty database" >&2; exit 2; }
psql_ <<SQL
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text,
                        created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE products (id bigint PRIMARY KEY, title text NOT NULL, price_cents integer NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL,
                     product_id bigint NOT NULL REFERENCES products, quantity integer NOT NULL,
                     created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO customers (id, name, email)
  SELECT g, 'customer ' || g, CASE WHEN g % 2 = 1 THEN 'c' || g || '@example.com' END
  FROM generate_series(1, $CUSTOMERS) g;
INSERT INTO products SELECT g, 'product ' || g, g % 100000 FROM generate_series(1, 1000) g;
INSERT INTO orders (id, customer_id, product_id, quantity)
  SELECT g, (g - 1) % $CUSTOMERS + 1, g % 1000 + 1, g % 5 + 1 FROM generate_series(1, 2 * $CUSTOMERS) g;
ANALYZE;
SQL
# The control schema exists before the old version starts, so that its
# instances can declare the shape they need (migrate would create it too).
pgshift init
for ((k = 1; k <= INSTANCES; k++)); do start_instance v1 "$k"; done
pgshift status "$DIR"

deploy=0
while :; do
  deploy=$((deploy + 1))
  ((deploy <= 3)) || die "still pending after 3 deploys"
  stage "deploy $deploy: pre-deploy"
  if [[ -n ${app_pid[shop-v1-1]:-} ]]; then
    # The gate in action: v2 may not start before its migrations are switched.
    rc=0; startup_check "${V2_NEEDS[1]}" switched || rc=$?
    [[ $rc -eq 3 ]] || die "the startup check of v2 should refuse (exit 3) before the pre-deploy, got $rc"
  fi
  pre_deploy
  check_fleet

  stage "deploy $deploy: roll-out"
  if [[ -n ${app_pid[shop-v1-1]:-} ]]; then
    roll_out v2
  else
    echo "v2 runs already: nothing to roll out"
  fi

  stage "deploy $deploy: post-deploy"
  post_deploy
  check_fleet
  pgshift status "$DIR"
  status=$(pgshift --json status "$DIR")
  [[ "$(json 'd["ok"]' <<<"$status")" == True ]] || die "status $DIR reports a problem"
  [[ "$(json 'd["pending"]' <<<"$status")" == 0 ]] && break
done

# ---- Checks -----------------------------------------------------------------
stage "checks"
for id in "${!app_pid[@]}"; do stop_instance "$id"; done
written=0
for f in "$state"/count.*; do written=$((written + $(cat "$f"))); done
echo "the application instances wrote $written customers (and orders) during the deploys"

failures=0
expect() {  # expect WHAT SQL VALUE
  local got
  got=$(q "$2")
  if [[ $got == "$3" ]]; then echo "ok: $1"; else echo "NOT OK: $1: got '$got', expected '$3'" >&2; failures=$((failures + 1)); fi
}
expect "every migration of the directory is contracted" \
  "SELECT count(*) FILTER (WHERE phase = 'contracted') || '/' || count(*) FROM pgshift.migrations" \
  "$(find "$DIR" -maxdepth 1 \( -name '*.json' -o -name '*.sql' \) | wc -l)/$(find "$DIR" -maxdepth 1 \( -name '*.json' -o -name '*.sql' \) | wc -l)"
expect "no customer was lost" "SELECT count(*) FROM customers" "$((CUSTOMERS + written))"
expect "no order was lost" "SELECT count(*) FROM orders" "$((2 * CUSTOMERS + written))"
expect "customers: id, email NOT NULL, created_at, full_name" \
  "SELECT string_agg(attname || CASE WHEN attnotnull THEN '!' ELSE '' END, ',' ORDER BY attnum)
   FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attnum > 0 AND NOT attisdropped" \
  "id!,email!,created_at!,full_name!"
expect "every full_name is the name it was written with" \
  "SELECT count(*) FROM customers WHERE full_name IS DISTINCT FROM 'customer ' || id" 0
expect "every NULL email was filled, no other email changed" \
  "SELECT count(*) FROM customers WHERE email IS DISTINCT FROM CASE WHEN id % 2 = 0 AND id < 10000000
     THEN 'unknown-' || id || '@shop.invalid' ELSE 'c' || id || '@example.com' END" 0
expect "products.price is numeric(12,2); price_cents is gone" \
  "SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' ORDER BY attnum)
   FROM pg_attribute WHERE attrelid = 'products'::regclass AND attnum > 0 AND NOT attisdropped" \
  "id:bigint,title:text,price:numeric(12,2)"
expect "every price is the one written, in euros" \
  "SELECT count(*) FROM products WHERE price IS DISTINCT FROM (id % 100000) / 100.0" 0
expect "orders.status: 'placed' before v2, 'paid' by v2" \
  "SELECT count(*) FROM orders WHERE status IS DISTINCT FROM CASE WHEN id >= 10000000 THEN 'paid' ELSE 'placed' END" 0
written_v2=0
for f in "$state"/count.shop-v2-*; do written_v2=$((written_v2 + $(cat "$f"))); done
expect "every review written by v2 is there" "SELECT count(*) FROM reviews" "$written_v2"
expect "constraints valid: the FK, both CHECKs" \
  "SELECT string_agg(conname || ':' || convalidated, ',' ORDER BY conname) FROM pg_constraint
   WHERE conname IN ('orders_customer_id_fkey', 'orders_quantity_positive', 'customers_email_has_at')" \
  "customers_email_has_at:true,orders_customer_id_fkey:true,orders_quantity_positive:true"
expect "orders_customer_id_idx is valid" \
  "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_customer_id_idx'::regclass" t
expect "no trigger of pgshift is left" \
  "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal
   AND tgrelid IN ('customers'::regclass, 'products'::regclass, 'orders'::regclass, 'reviews'::regclass)" 0
expect "no instance declaration is left" "SELECT count(*) FROM pgshift.instances" 0

((failures == 0)) || die "$failures check(s) failed"
echo "pipeline: OK: every migration of $DIR is contracted, no write was lost"
