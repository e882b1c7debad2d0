#!/usr/bin/env bash
# Installs pgshift into a temporary prefix and builds a project outside the
# tree against it, the three ways a user links pgshift:
#   1. CMake:      find_package(pgshift) -> pgshift::pgshift (C++ and C programs)
#   2. pkg-config: c++/cc ... $(pkg-config --cflags --libs pgshift)
#   3. Python:     PYTHONPATH=<prefix>/<python dir> python3 -c "import pgshift"
#                  (when the build has -DPGSHIFT_BUILD_PYTHON=ON)
# and runs what it built. Registered with ctest by tests/CMakeLists.txt.
#
#   install_test.sh BUILD_DIR SOURCE_DIR CC CXX [PYTHON PYTHON_INSTALL_DIR]
#
# With PGSHIFT_TEST_DSN set, the outside programs also run a startup check
# against that server (read-only: a control schema that does not exist).
set -euo pipefail

build_dir=$1 source_dir=$2 cc=$3 cxx=$4 python=${5:-} py_dir=${6:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgshift-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
dsn_args=()
[[ -n "${PGSHIFT_TEST_DSN:-}" ]] && dsn_args=("$PGSHIFT_TEST_DSN")

fail() { echo "install_test: FAILED: $*" >&2; exit 1; }
step() { echo "==> $*"; }

step "cmake --install $build_dir --prefix $prefix"
cmake --install "$build_dir" --prefix "$prefix" >"$tmp/install.log" || {
  cat "$tmp/install.log" >&2; fail "cmake --install"; }

for f in include/pgshift/pgshift.h include/pgshift/driver.h include/pgshift/c.h \
         include/pgshift/v1/migration.pb.h bin/pgshift \
         share/pgshift/proto/pgshift/v1/migration.proto; do
  [[ -e "$prefix/$f" ]] || fail "$f is not installed"
done
libdir=$(dirname "$(find "$prefix" -name 'libpgshift.*' -print -quit)")
[[ -n "$libdir" && -d "$libdir" ]] || fail "libpgshift is not installed"
[[ -f "$libdir/cmake/pgshift/pgshiftConfig.cmake" ]] || fail "no pgshiftConfig.cmake in $libdir/cmake/pgshift"
[[ -f "$libdir/pkgconfig/pgshift.pc" ]] || fail "no pgshift.pc in $libdir/pkgconfig"
"$prefix/bin/pgshift" --version | grep -q "pgshift" || fail "installed CLI does not run"
# Nothing from the source or build tree leaks into the installed package.
if grep -rqs -e "$source_dir" -e "$(cd "$build_dir" && pwd)" "$libdir/cmake/pgshift" "$libdir/pkgconfig"; then
  fail "installed CMake/pkg-config files point into the source or build tree"
fi

step "1. CMake find_package(pgshift) from an outside project"
cmake -S "$source_dir/tests/outside_project" -B "$tmp/cmake-build" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  >"$tmp/configure.log" 2>&1 || { cat "$tmp/configure.log" >&2; fail "configure outside project"; }
cmake --build "$tmp/cmake-build" -j2 >"$tmp/build.log" 2>&1 || {
  cat "$tmp/build.log" >&2; fail "build outside project"; }
grep -q "pgshift CLI: $prefix/bin/pgshift" "$tmp/build.log" || fail "pgshift::cli does not point at the installed CLI"
"$tmp/cmake-build/outside_cpp" "${dsn_args[@]}" || fail "outside_cpp (CMake)"
"$tmp/cmake-build/outside_c" "${dsn_args[@]}" || fail "outside_c (CMake)"

step "2. pkg-config --cflags --libs pgshift"
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pkg-config --exists --print-errors pgshift || fail "pkg-config does not find pgshift"
[[ "$(pkg-config --modversion pgshift)" == "$(sed -n 's/^Version: //p' "$libdir/pkgconfig/pgshift.pc")" ]] \
  || fail "pkg-config --modversion"
read -r -a flags <<<"$(pkg-config --cflags --libs pgshift)"
"$cxx" -std=c++17 -o "$tmp/pc_cpp" "$source_dir/tests/outside_project/main.cc" "${flags[@]}" \
  || fail "c++ with pkg-config flags"
"$cc" -std=c99 -o "$tmp/pc_c" "$source_dir/tests/outside_project/capi.c" "${flags[@]}" \
  || fail "cc with pkg-config flags"
"$tmp/pc_cpp" "${dsn_args[@]}" || fail "outside_cpp (pkg-config)"
"$tmp/pc_c" "${dsn_args[@]}" || fail "outside_c (pkg-config)"

if [[ -n "$python" && -n "$py_dir" ]]; then
  step "3. Python: import pgshift from $prefix/$py_dir"
  [[ "$py_dir" = /* ]] || py_dir="$prefix/$py_dir"
  [[ -f "$py_dir/pgshift/__init__.py" ]] || fail "the Python package is not installed in $py_dir"
  (cd "$tmp" && PYTHONPATH="$py_dir" "$python" - "${dsn_args[@]}" <<'PY'
import sys
import pgshift
m = pgshift.load_migration({"name": "0001_outside", "operations": [
    {"rename_column": {"table": "t", "from": "a", "to": "b"}}]})
assert m.name == "0001_outside"
try:
    pgshift.require_phase("host=127.0.0.1 port=1 connect_timeout=5", "0001_outside", "switched")
    raise SystemExit("expected UnavailableError")
except pgshift.UnavailableError:
    pass
if len(sys.argv) > 1:
    try:
        pgshift.require_phase(sys.argv[1], "0001_outside", "switched",
                              control_schema="pgshift_outside_no_such_schema")
        raise SystemExit("expected NotFoundError")
    except pgshift.NotFoundError:
        pass
print("outside python: ok (" + pgshift.__file__ + ")")
PY
  ) || fail "import the installed Python package"
  PYTHONPATH="$py_dir" "$python" -c "import pgshift, sys; sys.exit(0 if pgshift.__file__.startswith('$py_dir') else 1)" \
    || fail "python imported pgshift from somewhere else than $py_dir"
else
  step "3. Python: skipped (configure with -DPGSHIFT_BUILD_PYTHON=ON)"
fi
echo "install_test: ok"
