#!/usr/bin/env bash
# Idempotent installer of everything pgshift needs on a fresh Debian 12 machine.
# Silent when every package is already installed.  Safe to run repeatedly.
# We never start (or rely on) the Debian-packaged cluster service; tests use
# throwaway clusters created by scripts/pgtemp.sh.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libpq-dev libssl-dev libabsl-dev libprotobuf-dev protobuf-compiler libpg-query-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  pybind11-dev python3-dev python3-pytest
  python3-pip python3-setuptools python3-wheel  # pip install ./bindings/python (offline, in a venv)
  postgresql pgbouncer
  valgrind  # the C API test runs under memcheck too (tests/CMakeLists.txt)
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "deps.sh: missing packages (${missing[*]}) and not root, and sudo is not available" >&2
    exit 1
  fi
fi

echo "deps.sh: installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}" >&2
echo "deps.sh: done" >&2
