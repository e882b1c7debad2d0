#!/usr/bin/env bash
# Includes point one way (docs/architecture.md, "The layers"):
#   util <- pg, sql <- catalog <- ops <- backfill, spec <- engine <- cli / C / Python
# Every #include "lib/<dir>/..." in lib/<layer>/ must name a layer allowed
# below; cli/, lib/c/ and the Python binding include only the public API
# (include/pgshift/), never lib/. The lowest layers (util, pg, sql) do not
# include the public API either: it is built on them.
#
#   layering_test.sh SOURCE_DIR
set -euo pipefail
root=${1:?usage: layering_test.sh SOURCE_DIR}
cd "$root"

declare -A allowed=(
  [util]="util"
  [pg]="util pg"
  [sql]="util sql"
  [catalog]="util pg sql catalog"
  [ops]="util pg sql catalog ops"
  [backfill]="util pg sql catalog ops backfill"
  [spec]="util pg sql catalog ops spec"
  [engine]="util pg sql catalog ops backfill spec engine"
  [c]=""
)
public_ok=(catalog ops backfill spec engine c)

failures=0
fail() { echo "layering_test: $*" >&2; failures=$((failures + 1)); }

# Every directory of lib/ must have a rule: a new layer is a decision.
for dir in lib/*/; do
  layer=$(basename "$dir")
  [[ -v "allowed[$layer]" ]] || fail "lib/$layer has no rule in tests/layering_test.sh"
done

for layer in "${!allowed[@]}"; do
  [[ -d "lib/$layer" ]] || continue
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"$line")
    case "$inc" in
      lib/*)
        target=$(cut -d/ -f2 <<<"$inc")
        [[ " ${allowed[$layer]} " == *" $target "* ]] ||
          fail "$file includes $inc: lib/$layer may not include lib/$target"
        ;;
      pgshift/*)
        [[ " ${public_ok[*]} " == *" $layer "* ]] ||
          fail "$file includes the public $inc: lib/$layer is below the public API"
        ;;
      cli/*) fail "$file includes $inc" ;;
    esac
  done < <(grep -Hn '#include "' "lib/$layer"/*.h "lib/$layer"/*.cc 2>/dev/null || true)
done

# The surfaces: public headers only.
while IFS= read -r line; do
  file=${line%%:*}
  inc=$(sed -E 's/.*#include "([^"]+)".*/\1/' <<<"$line")
  case "$inc" in
    lib/*|pg_query/*) fail "$file includes $inc: surfaces include only include/pgshift/" ;;
  esac
done < <(grep -Hn '#include "' cli/*.h cli/*.cc lib/c/*.cc bindings/python/pgshift/*.cc 2>/dev/null || true)

# The parse tree's generated header is lib/sql's own.
while IFS= read -r file; do
  [[ "$file" == lib/sql/* ]] || fail "$file includes pg_query: only lib/sql/ reads the parse tree"
done < <(grep -l '#include "pg_query' lib/*/*.h lib/*/*.cc 2>/dev/null || true)

if ((failures)); then
  echo "layering_test: $failures violation(s)" >&2
  exit 1
fi
echo "layering_test: includes point one way (${#allowed[@]} layers checked)"
