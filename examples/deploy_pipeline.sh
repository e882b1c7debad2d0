#!/usr/bin/env bash
# A shell deploy pipeline driving one pgshift migration with the CLI, across
# the deploys of an application:
#
#   1. expand:      register, then advance --to validated (the old app keeps
#                   running; retried while busy)
#   2. switch:      advance --to switched; gate on `check --at-least switched`;
#                   roll out the new app version ($DEPLOY_NEW_APP)
#   3. contract:    retire the old app version ($RETIRE_OLD_APP); advance
#                   --to contracted
#
# A step that fails, or a failed roll-out of the new version, rolls the
# migration back (possible until contract), so the schema is as before.
#
#   deploy_pipeline.sh MIGRATION_FILE
#
# Environment:
#   PGSHIFT_DSN      the database (else libpq's PG* environment)
#   PGSHIFT          the pgshift CLI and global flags (default: pgshift on
#                    PATH), e.g. "pgshift --lock-timeout 500ms"
#   DEPLOY_NEW_APP   command rolling out the new app version; it should fail
#                    when the new version does not come up (default: true)
#   RETIRE_OLD_APP   command stopping the old app version (default: true)
#   BUSY_RETRIES     attempts while busy / locks not granted (default 5)
#
# Exit codes: 0 contracted · 1 failed (rolled back when still possible; the
# message says where it stands) · 2 bad migration file (nothing changed).
set -uo pipefail

read -r -a PGSHIFT_CMD <<<"${PGSHIFT:-pgshift}"
DEPLOY_NEW_APP=${DEPLOY_NEW_APP:-true}
RETIRE_OLD_APP=${RETIRE_OLD_APP:-true}
BUSY_RETRIES=${BUSY_RETRIES:-5}

if [[ $# -ne 1 ]]; then
  echo "usage: deploy_pipeline.sh MIGRATION_FILE" >&2
  exit 2
fi
file=$1
name=""

stage() { printf '\n=== %s\n' "$*"; }
die() { echo "pipeline: $*" >&2; exit 1; }

rollback() {
  echo "pipeline: rolling back $name" >&2
  if "${PGSHIFT_CMD[@]}" rollback "$name"; then
    "${PGSHIFT_CMD[@]}" status "$name"
    die "$1; the migration was rolled back, the schema is as before"
  fi
  die "$1; rollback failed too: fix the cause and run \`pgshift rollback $name\`"
}

# advance_to PHASE: advances $name step by step up to PHASE; retries exit code 4 (busy or locks not granted)
# with backoff; rolls back on a failed step.
advance_to() {
  local phase=$1 rc attempt delay=1
  # A re-run of the pipeline skips what is done already.
  if "${PGSHIFT_CMD[@]}" check "$name" --at-least "$phase" >/dev/null 2>&1; then
    echo "$name is already at $phase or later"
    return 0
  fi
  for ((attempt = 1; attempt <= BUSY_RETRIES; attempt++)); do
    "${PGSHIFT_CMD[@]}" advance "$name" --to "$phase"
    rc=$?
    case $rc in
      0) return 0 ;;
      4) echo "pipeline: busy (attempt $attempt/$BUSY_RETRIES); retrying in ${delay}s" >&2
         sleep "$delay"; delay=$((delay * 2)) ;;
      *) rollback "advance --to $phase failed (exit $rc)" ;;
    esac
  done
  rollback "still busy after $BUSY_RETRIES attempts to reach $phase"
}

stage "init and plan"
"${PGSHIFT_CMD[@]}" init || die "init failed"
"${PGSHIFT_CMD[@]}" plan "$file" >/dev/null
rc=$?
if [[ $rc -ne 0 ]]; then
  echo "pipeline: the migration in $file is not valid against this database (exit $rc); nothing changed" >&2
  exit 2
fi

stage "deploy 1: expand (old app version keeps running)"
registered=$("${PGSHIFT_CMD[@]}" --json register "$file")
rc=$?
if [[ $rc -ne 0 ]]; then
  echo "pipeline: register failed (exit $rc): $registered" >&2
  exit "$rc"
fi
name=$(sed -n 's/.*"name":"\([^"]*\)".*/\1/p' <<<"$registered")
[[ -n "$name" ]] || die "cannot read the migration name from: $registered"
echo "registered $name"
advance_to validated
"${PGSHIFT_CMD[@]}" check "$name" --at-least validated || rollback "check after expand"

stage "deploy 2: switch, then roll out the new app version"
advance_to switched
"${PGSHIFT_CMD[@]}" check "$name" --at-least switched || rollback "gate: not switched"
if ! bash -c "$DEPLOY_NEW_APP"; then
  # The new version is not running, so nothing depends on the new shape yet.
  rollback "the new app version did not come up"
fi

stage "deploy 3: retire the old app version, contract"
if ! bash -c "$RETIRE_OLD_APP"; then
  # The new version runs against the switched schema: leave it there.
  die "could not retire the old app version; $name stays at switched (run this stage again)"
fi
rc=0
for ((attempt = 1; attempt <= BUSY_RETRIES; attempt++)); do
  "${PGSHIFT_CMD[@]}" advance "$name" --to contracted
  rc=$?
  [[ $rc -eq 4 ]] || break
  echo "pipeline: busy (attempt $attempt/$BUSY_RETRIES); retrying" >&2
  sleep "$attempt"
done
# No rollback here: the new app version depends on the new shape.
[[ $rc -eq 0 ]] || die "contract failed (exit $rc); $name stays at switched, safe to retry"
"${PGSHIFT_CMD[@]}" check "$name" --at-least contracted || die "check after contract"
"${PGSHIFT_CMD[@]}" status "$name"
echo "pipeline: $name is contracted"
