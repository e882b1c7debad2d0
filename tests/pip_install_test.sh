#!/usr/bin/env bash
# `pip install ./bindings/python` the way docs/install.md tells users to on
# Debian 12, offline, then `import pgshift` from outside the source tree:
#   1. a temporary venv of the given Python, --system-site-packages (Debian's
#      pip, setuptools, wheel) and --without-pip (no python3-venv needed);
#   2. pip install --no-index --no-build-isolation --no-deps: setup.py builds
#      CMake target _pgshift from scratch (a few minutes), with setuptools'
#      build directory, pip's temp dir and cache all in the temp dir, so the
#      source tree and build/ are left alone;
#   3. from the temp dir: pgshift comes from the venv, has the project's
#      version, parses a migration, maps errors to its exception classes, and
#      (with PGSHIFT_TEST_DSN set) runs a read-only startup check against a
#      control schema that does not exist.
# Registered with ctest by tests/CMakeLists.txt (label "install").
#
#   pip_install_test.sh SOURCE_DIR PYTHON VERSION [CC CXX]
#
# Build jobs: CMAKE_BUILD_PARALLEL_LEVEL, else PGSHIFT_TEST_JOBS, else 2.
set -euo pipefail

source_dir=$1 python=$2 version=$3 cc=${4:-} cxx=${5:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgshift-pip-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
venv=$tmp/venv
dsn_args=()
[[ -n "${PGSHIFT_TEST_DSN:-}" ]] && dsn_args=("$PGSHIFT_TEST_DSN")

fail() { echo "pip_install_test: FAILED: $*" >&2; exit 1; }
step() { echo "==> $*"; }

# Nothing from the caller's Python setup may leak in: the package must be
# found in the venv and nowhere else.
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP VIRTUAL_ENV PIP_REQUIRE_VIRTUALENV
export PYTHONNOUSERSITE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-${PGSHIFT_TEST_JOBS:-2}}
[[ -n "$cc" ]] && export CC=$cc
[[ -n "$cxx" ]] && export CXX=$cxx

step "$python -m venv --system-site-packages --without-pip $venv"
"$python" -m venv --system-site-packages --without-pip "$venv" || fail "create the venv"
"$venv/bin/python" -c "import sys; sys.exit(0 if sys.prefix != sys.base_prefix else 1)" \
  || fail "$venv/bin/python is not a virtual environment"
"$venv/bin/python" -m pip --version >/dev/null \
  || fail "no pip in the venv (it comes from the system: apt-get install python3-pip)"
"$venv/bin/python" -c "import setuptools, wheel" \
  || fail "no setuptools/wheel in the venv (apt-get install python3-setuptools python3-wheel)"

# setup.py builds in place; with PGSHIFT_PY_BUILD_BASE nothing is written to
# bindings/python/ (build/, pgshift.egg-info/). Remember what was there.
tree_before=$(ls -A "$source_dir/bindings/python")

step "pip install --no-index --no-build-isolation --no-deps $source_dir/bindings/python (-j$CMAKE_BUILD_PARALLEL_LEVEL)"
mkdir -p "$tmp/pip-tmp"
start=$SECONDS
if ! TMPDIR=$tmp/pip-tmp PIP_CACHE_DIR=$tmp/pip-cache PGSHIFT_PY_BUILD_BASE=$tmp/setuptools-build \
     "$venv/bin/python" -m pip install -v --no-index --no-build-isolation --no-deps \
     "$source_dir/bindings/python" >"$tmp/pip.log" 2>&1; then
  tail -n 80 "$tmp/pip.log" >&2
  fail "pip install (the last 80 lines of its -v log are above)"
fi
echo "pip install took $((SECONDS - start)) s"
grep -q "Successfully installed pgshift-$version" "$tmp/pip.log" \
  || { tail -n 20 "$tmp/pip.log" >&2; fail "pip did not report installing pgshift-$version"; }
[[ "$(ls -A "$source_dir/bindings/python")" == "$tree_before" ]] \
  || fail "pip install wrote into $source_dir/bindings/python: $(ls -A "$source_dir/bindings/python" | tr '\n' ' ')"

step "import pgshift from $tmp (outside the source tree)"
(cd "$tmp" && "$venv/bin/python" - "$venv" "$version" "${dsn_args[@]}" <<'PY'
import importlib.metadata
import os
import sys

venv, version = sys.argv[1], sys.argv[2]
dsn = sys.argv[3] if len(sys.argv) > 3 else None

def check(cond, what):
    if not cond:
        raise SystemExit("pip_install_test: FAILED: " + what)

import pgshift
from pgshift import _pgshift

site = os.path.realpath(venv) + os.sep
for mod in (pgshift, _pgshift):
    check(os.path.realpath(mod.__file__).startswith(site),
          f"{mod.__name__} was imported from {mod.__file__}, not from the venv {venv}")
check(pgshift.__version__ == version,
      f"pgshift.__version__ is {pgshift.__version__!r}, the project's version is {version!r}")
check(importlib.metadata.version("pgshift") == version,
      f"the installed distribution is pgshift {importlib.metadata.version('pgshift')}, not {version}")
files = sorted(str(f) for f in importlib.metadata.files("pgshift") if f.parts[0] == "pgshift"
               and f.suffix in (".py", ".so"))
check(len(files) == 3 and files[0] == "pgshift/__init__.py"
      and files[1].startswith("pgshift/_pgshift.") and files[2] == "pgshift/errors.py",
      f"installed package files: {files}")

# A migration from JSON text, through the compiled parser.
m = pgshift.load_migration('{"name": "0001_pip", "schema": "app", "operations": '
                           '[{"rename_column": {"table": "t", "from": "a", "to": "b"}}]}')
check(isinstance(m, pgshift.Migration), f"load_migration returned {type(m)}")
check((m.name, m.schema, m.operation_count) == ("0001_pip", "app", 1),
      f"parsed migration: {m.name!r} {m.schema!r} {m.operation_count}")
check('"rename_column"' in m.canonical_json(), "canonical_json: " + m.canonical_json())
check(pgshift.Phase.parse("switched") is pgshift.Phase.SWITCHED, "Phase.parse")

# C++ statuses arrive as the exception classes of pgshift.errors.
def raises(cls, fn, what):
    try:
        fn()
    except cls as e:
        check(type(e) is cls, f"{what}: {type(e).__name__}, expected {cls.__name__}: {e}")
        return e
    except Exception as e:
        check(False, f"{what}: {type(e).__name__}, expected {cls.__name__}: {e}")
    check(False, f"{what}: no exception, expected {cls.__name__}")

e = raises(pgshift.InvalidArgumentError,
           lambda: pgshift.load_migration('{"name": "0001_pip", "operations": []}'),
           "a migration without operations")
check(e.code == pgshift.StatusCode.INVALID_ARGUMENT and e.exit_code == 2, f"{e!r}: code/exit_code")
raises(pgshift.UnavailableError,
       lambda: pgshift.require_phase("host=127.0.0.1 port=1 connect_timeout=5", "0001_pip", "switched"),
       "require_phase against a closed port")

if dsn:
    # Read-only: the control schema does not exist, nothing is created.
    schema = "pgshift_pip_test_no_such_schema"
    e = raises(pgshift.NotFoundError,
               lambda: pgshift.current_phase(dsn, "0001_pip", control_schema=schema),
               "current_phase without a control schema")
    check(e.code == pgshift.StatusCode.NOT_FOUND and schema in str(e), f"{e!r}")
    raises(pgshift.NotFoundError,
           lambda: pgshift.require_phase(dsn, "0001_pip", "switched", control_schema=schema),
           "require_phase without a control schema")
    print("startup check against PGSHIFT_TEST_DSN: ok")
else:
    print("startup check: skipped (PGSHIFT_TEST_DSN is not set)")
print(f"pgshift {pgshift.__version__} from {os.path.dirname(pgshift.__file__)}: ok")
PY
) || fail "import the pip-installed package"
echo "pip_install_test: ok"
