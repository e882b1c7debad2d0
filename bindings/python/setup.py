"""Builds the pgshift Python package with the project's own CMake build.

    pip install --no-build-isolation ./bindings/python      # from the repo root

The compiled module pgshift._pgshift is the CMake target `_pgshift`
(bindings/python/CMakeLists.txt); this file only drives CMake, so whatever the
library needs (libpq, Abseil, protobuf, ...) is found by the root
CMakeLists.txt, never listed here. The pure-Python files are packaged as usual,
with __version__ filled in from the root CMakeLists.txt's project() VERSION.

This directory must stay inside its pgshift source tree (the root is two
levels up): it cannot be built from an sdist or a copy.

Environment (all optional):
  PGSHIFT_BUILD_TYPE          CMAKE_BUILD_TYPE (default Release)
  PGSHIFT_CMAKE_ARGS          more cmake configure arguments (shell words)
  CMAKE_BUILD_PARALLEL_LEVEL  build jobs (default: os.cpu_count())
  PGSHIFT_PY_BUILD_BASE       setuptools' build directory, and where the
                              egg-info goes (default: build/ and . next to
                              this file); the CMake build is under it
"""

import glob
import os
import re
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ROOT_CMAKELISTS = os.path.join(ROOT, "CMakeLists.txt")


def _fail(message):
    sys.exit("pgshift setup.py: error: " + message)


def _project_version():
    """VERSION of project(pgshift ...) in the root CMakeLists.txt."""
    if not os.path.isfile(ROOT_CMAKELISTS):
        _fail(
            f"{ROOT_CMAKELISTS} does not exist. The Python package is built by the "
            "pgshift source tree's CMake project, two levels above setup.py, so "
            "bindings/python cannot be built on its own (from an sdist, or a copy "
            f"of the directory: this one is {HERE}). Run "
            "`pip install --no-build-isolation ./bindings/python` from a pgshift "
            "checkout, with a pip that builds local directories in place (21.3 or "
            "newer, e.g. Debian 12's python3-pip).")
    with open(ROOT_CMAKELISTS, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^\s*project\s*\(\s*pgshift\b[^)]*?\bVERSION\s+([0-9]+(?:\.[0-9]+)*)",
                  text, re.MULTILINE | re.IGNORECASE)
    if not m:
        _fail(f"no `project(pgshift VERSION x.y.z ...)` in {ROOT_CMAKELISTS}: "
              "is it pgshift's source tree?")
    return m.group(1)


VERSION = _project_version()


class CMakeExtension(Extension):
    """An extension module that is a target of the root CMake project."""

    def __init__(self, name, target):
        super().__init__(name, sources=[])
        self.target = target


class CMakeBuild(build_ext):
    """Configures the root CMake project under build_temp, builds only the
    extension's target, and copies the module where setuptools wants it."""

    def build_extension(self, ext):
        if not isinstance(ext, CMakeExtension):
            return super().build_extension(ext)
        cmake = shutil.which("cmake")
        if cmake is None:
            _fail("cmake not found on PATH (Debian: apt-get install cmake, or "
                  "scripts/deps.sh for everything pgshift needs)")
        build_dir = os.path.abspath(os.path.join(self.build_temp, "cmake"))
        os.makedirs(build_dir, exist_ok=True)
        build_type = os.environ.get("PGSHIFT_BUILD_TYPE") or "Release"
        configure = [
            cmake, "-S", ROOT, "-B", build_dir,
            f"-DCMAKE_BUILD_TYPE={build_type}",
            "-DPGSHIFT_BUILD_PYTHON=ON",
            "-DPGSHIFT_BUILD_TESTS=OFF",
            "-DPGSHIFT_BUILD_BENCHMARKS=OFF",
            "-DPGSHIFT_BUILD_EXAMPLES=OFF",
            # The interpreter that runs pip is the one the module is for
            # (a venv's python is fine: its headers are the base Python's).
            f"-DPython3_EXECUTABLE={sys.executable}",
        ] + shlex.split(os.environ.get("PGSHIFT_CMAKE_ARGS", ""))
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
        build = [cmake, "--build", build_dir, "--target", ext.target,
                 "--config", build_type, "-j", jobs]
        self._run(configure)
        self._run(build)

        # bindings/python/CMakeLists.txt puts the module (and the configured
        # .py files) in <build>/bindings/python/pgshift/.
        out_dir = os.path.join(build_dir, "bindings", "python", "pgshift")
        leaf = ext.name.rpartition(".")[2]
        built = sorted(glob.glob(os.path.join(out_dir, leaf + "*.so")))
        if len(built) != 1:
            _fail(f"expected one {leaf}*.so in {out_dir} after building target "
                  f"{ext.target}, found {built or 'none'}")
        self._check_version(os.path.join(out_dir, "__init__.py"))
        dest = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        self.copy_file(built[0], dest)

    @staticmethod
    def _run(cmd):
        print("pgshift setup.py:", " ".join(shlex.quote(c) for c in cmd), flush=True)
        try:
            subprocess.run(cmd, check=True)
        except subprocess.CalledProcessError as e:
            _fail(f"{os.path.basename(cmd[0])} failed (exit code {e.returncode}); "
                  "its output is above (pip shows it with -v)")

    @staticmethod
    def _check_version(configured_init):
        # CMake's configure_file of __init__.py has the version CMake knows:
        # it must be the one this file parsed (and packages).
        try:
            with open(configured_init, encoding="utf-8") as f:
                m = re.search(r'^__version__ = "([^"]*)"', f.read(), re.MULTILINE)
        except OSError:
            return
        if m and m.group(1) != VERSION:
            _fail(f"CMake configured version {m.group(1)} but setup.py read {VERSION} "
                  f"from {ROOT_CMAKELISTS}")


class BuildPy(build_py):
    """Copies the .py files, filling in @PROJECT_VERSION@ as CMake's
    configure_file does for the build tree."""

    def build_module(self, module, module_file, package):
        dest, copied = super().build_module(module, module_file, package)
        with open(dest, encoding="utf-8") as f:
            text = f.read()
        if "@PROJECT_VERSION@" in text:
            with open(dest, "w", encoding="utf-8") as f:
                f.write(text.replace("@PROJECT_VERSION@", VERSION))
        return dest, copied


options = {}
build_base = os.environ.get("PGSHIFT_PY_BUILD_BASE")
if build_base:
    build_base = os.path.abspath(build_base)
    os.makedirs(build_base, exist_ok=True)
    options = {"build": {"build_base": build_base},
               "egg_info": {"egg_base": build_base}}

setup(
    name="pgshift",
    version=VERSION,
    description="Zero-downtime PostgreSQL schema changes (expand/contract), from Python",
    long_description=("import pgshift: drive pgshift migrations (register, advance, "
                      "rollback, status) and check the schema's phase at application "
                      "startup. Built from the pgshift source tree; see docs/install.md."),
    long_description_content_type="text/plain",
    python_requires=">=3.8",
    packages=["pgshift"],
    ext_modules=[CMakeExtension("pgshift._pgshift", target="_pgshift")],
    cmdclass={"build_ext": CMakeBuild, "build_py": BuildPy},
    options=options,
    zip_safe=False,
)
