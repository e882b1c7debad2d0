"""Fixtures for the pgshift Python binding tests: a real PostgreSQL server
(PGSHIFT_TEST_DSN, or a throwaway cluster from scripts/pgtemp.sh), scratch
databases, and a minimal libpq client (ctypes) for setting up tables, writing
as the "old" and "new" applications and holding locks."""

import ctypes
import ctypes.util
import itertools
import os
import subprocess
import tempfile
import urllib.parse

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))

_libpq = ctypes.CDLL(ctypes.util.find_library("pq") or "libpq.so.5")
_libpq.PQconnectdb.restype = ctypes.c_void_p
_libpq.PQconnectdb.argtypes = [ctypes.c_char_p]
_libpq.PQstatus.argtypes = [ctypes.c_void_p]
_libpq.PQerrorMessage.restype = ctypes.c_char_p
_libpq.PQerrorMessage.argtypes = [ctypes.c_void_p]
_libpq.PQfinish.argtypes = [ctypes.c_void_p]
_libpq.PQexec.restype = ctypes.c_void_p
_libpq.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_libpq.PQresultStatus.argtypes = [ctypes.c_void_p]
_libpq.PQresultErrorMessage.restype = ctypes.c_char_p
_libpq.PQresultErrorMessage.argtypes = [ctypes.c_void_p]
_libpq.PQntuples.argtypes = [ctypes.c_void_p]
_libpq.PQnfields.argtypes = [ctypes.c_void_p]
_libpq.PQgetisnull.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_libpq.PQgetvalue.restype = ctypes.c_char_p
_libpq.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_libpq.PQclear.argtypes = [ctypes.c_void_p]
_NOTICE_PROCESSOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)
_libpq.PQsetNoticeProcessor.restype = ctypes.c_void_p
_libpq.PQsetNoticeProcessor.argtypes = [ctypes.c_void_p, _NOTICE_PROCESSOR, ctypes.c_void_p]
_quiet = _NOTICE_PROCESSOR(lambda arg, msg: None)

_CONNECTION_OK = 0
_PGRES_COMMAND_OK = 1
_PGRES_TUPLES_OK = 2


class Conn:
    """One libpq connection. query() returns rows of str/None; errors raise
    RuntimeError with the server's message. Releases the GIL while the
    server works (ctypes does), like any real client."""

    def __init__(self, dsn):
        self._c = _libpq.PQconnectdb(dsn.encode())
        if _libpq.PQstatus(self._c) != _CONNECTION_OK:
            msg = _libpq.PQerrorMessage(self._c).decode()
            _libpq.PQfinish(self._c)
            raise RuntimeError(f"cannot connect: {msg}")
        _libpq.PQsetNoticeProcessor(self._c, _quiet, None)

    def query(self, sql):
        r = _libpq.PQexec(self._c, sql.encode())
        try:
            st = _libpq.PQresultStatus(r)
            if st not in (_PGRES_COMMAND_OK, _PGRES_TUPLES_OK):
                raise RuntimeError(f"{sql}: {_libpq.PQresultErrorMessage(r).decode()}")
            rows = []
            for i in range(_libpq.PQntuples(r)):
                rows.append(tuple(
                    None if _libpq.PQgetisnull(r, i, j) else _libpq.PQgetvalue(r, i, j).decode()
                    for j in range(_libpq.PQnfields(r))))
            return rows
        finally:
            _libpq.PQclear(r)

    def value(self, sql):
        rows = self.query(sql)
        assert len(rows) == 1, f"{sql}: {len(rows)} rows"
        return rows[0][0]

    def close(self):
        if self._c:
            _libpq.PQfinish(self._c)
            self._c = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def dsn_for_database(dsn, dbname):
    """`dsn` pointing at database `dbname` (key=value DSNs and URIs)."""
    if dsn.startswith(("postgres://", "postgresql://")):
        parts = urllib.parse.urlsplit(dsn)
        return urllib.parse.urlunsplit(parts._replace(path="/" + dbname))
    return f"{dsn} dbname='{dbname}'"


@pytest.fixture(scope="session")
def server_dsn():
    dsn = os.environ.get("PGSHIFT_TEST_DSN")
    if dsn:
        yield dsn
        return
    cluster = tempfile.mkdtemp(prefix="pgshift-pytest-")
    os.rmdir(cluster)
    dsn = subprocess.run(["bash", os.path.join(ROOT, "scripts", "pgtemp.sh"), "start", cluster],
                         check=True, capture_output=True, text=True).stdout.strip()
    try:
        yield dsn
    finally:
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "pgtemp.sh"), "stop", cluster],
                       check=False)


_counter = itertools.count()


@pytest.fixture
def db(server_dsn):
    """A fresh database (its DSN), dropped afterwards."""
    name = f"t_py_{os.getpid()}_{next(_counter)}"
    with Conn(server_dsn) as admin:
        admin.query(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.query(f"CREATE DATABASE {name}")
    try:
        yield dsn_for_database(server_dsn, name)
    finally:
        with Conn(server_dsn) as admin:
            admin.query(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
