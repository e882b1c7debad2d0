"""The pgshift Python binding against a real PostgreSQL server: a whole
rename_column migration with old/new application writes, the startup check,
the exception class of every failure a caller has to tell apart, options
checked by the library, pause/resume, the preflight callback, instance
declarations and the contract guard, migration directories (migrate, its
events, directory status, contract, refusals, baseline), and result objects
that carry every field of the library's JSON."""

import dataclasses
import datetime
import gc
import json
import keyword
import os
import pathlib
import threading
import time

import pytest

import pgshift
from conftest import Conn

NAME = "0042_rename_users_name"
SPEC = {
    "name": NAME,
    "schema": "app",
    "operations": [{"rename_column": {"table": "users", "from": "name", "to": "full_name"}}],
}
ROWS = 2000
FAST = dict(lock_timeout=0.2, retry_initial_backoff=0.02, retry_max_backoff=0.05,
            retry_deadline=0.4, max_replication_lag=0)


def make_users(dsn, rows=ROWS):
    with Conn(dsn) as c:
        c.query("CREATE SCHEMA app;"
                "CREATE TABLE app.users (id bigint PRIMARY KEY, name text NOT NULL, note text);"
                f"INSERT INTO app.users SELECT g, 'user ' || g, 'note ' || g "
                f"FROM generate_series(1, {rows}) g; ANALYZE app.users")


def columns(dsn):
    with Conn(dsn) as c:
        return [r[0] for r in c.query(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'app.users'::regclass "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum")]


# ---- no server needed ------------------------------------------------------------

def test_phases_are_strings_on_a_ladder():
    assert pgshift.Phase.SWITCHED == "switched"
    assert str(pgshift.Phase.BACKFILLED) == "backfilled"
    assert pgshift.Phase.parse("validated") is pgshift.Phase.VALIDATED
    assert pgshift.Phase.CONTRACTED.at_least("switched")
    assert not pgshift.Phase.VALIDATED.at_least(pgshift.Phase.SWITCHED)
    assert not pgshift.Phase.ROLLED_BACK.at_least("registered")
    assert pgshift.Phase.ROLLED_BACK.at_least("rolled_back")
    with pytest.raises(pgshift.InvalidArgumentError) as e:
        pgshift.Phase.parse("swiched")
    assert "contracted" in str(e.value)


def test_exception_hierarchy_and_codes():
    assert issubclass(pgshift.FailedPreconditionError, pgshift.Error)
    assert pgshift.BusyError is pgshift.AbortedError
    assert pgshift.FailedPreconditionError.code == pgshift.StatusCode.FAILED_PRECONDITION
    assert pgshift.InvalidArgumentError("x").exit_code == 2
    assert pgshift.NotFoundError("x").exit_code == 2
    assert pgshift.FailedPreconditionError("x").exit_code == 1
    assert pgshift.AbortedError("x").exit_code == 4
    assert pgshift.DeadlineExceededError("x").exit_code == 4
    assert pgshift.UnavailableError("x").exit_code == 1


def test_load_migration_accepts_dict_json_text_and_paths(tmp_path):
    from_dict = pgshift.load_migration(SPEC)
    assert from_dict.name == NAME and from_dict.schema == "app"
    assert from_dict.operation_count == 1
    text = json.dumps(SPEC)
    assert pgshift.load_migration(text).canonical_json() == from_dict.canonical_json()
    assert pgshift.load_migration(text.encode()).name == NAME
    path = tmp_path / "0042.json"
    path.write_text(text)
    assert pgshift.load_migration(path).canonical_json() == from_dict.canonical_json()
    assert pgshift.load_migration(str(path)).name == NAME
    assert pgshift.load_migration(from_dict) is from_dict


def test_load_migration_errors():
    with pytest.raises(pgshift.NotFoundError) as e:
        pgshift.load_migration("/nonexistent/0042.json")
    assert e.value.code == pgshift.StatusCode.NOT_FOUND
    bad = json.loads(json.dumps(SPEC))
    bad["operations"][0]["rename_column"]["too"] = "x"
    with pytest.raises(pgshift.InvalidArgumentError) as e:
        pgshift.load_migration(bad)
    assert "too" in str(e.value)
    assert e.value.sqlstate is None
    with pytest.raises(pgshift.InvalidArgumentError):
        pgshift.load_migration("{not json")
    with pytest.raises(TypeError):
        pgshift.load_migration(42)


UNREACHABLE = "host=127.0.0.1 port=1 connect_timeout=5"


def test_unknown_option_is_invalid_argument_with_the_librarys_message():
    with pytest.raises(pgshift.InvalidArgumentError) as e:
        pgshift.Driver(UNREACHABLE, lock_timout=1)
    assert str(e.value).startswith('unknown option "lock_timout"; options are: control_schema, ')
    assert e.value.exit_code == 2
    with pytest.raises(pgshift.InvalidArgumentError, match="lock_timout"):
        pgshift.Options().set_text("lock_timout", "1s")
    with pytest.raises(pgshift.NotFoundError, match="lock_timout"):
        pgshift.Options().get_text("lock_timout")


def test_options_of_the_wrong_python_type_are_type_errors():
    with pytest.raises(TypeError, match="lock_timeout takes seconds"):
        pgshift.Driver(UNREACHABLE, lock_timeout=[1])
    with pytest.raises(TypeError, match="lock_timeout"):
        pgshift.Driver(UNREACHABLE, lock_timeout=True)
    with pytest.raises(TypeError, match="backfill_batch_rows takes an int, not float"):
        pgshift.Driver(UNREACHABLE, backfill_batch_rows=1.5)
    with pytest.raises(TypeError, match="force_contract takes a bool, not int"):
        pgshift.Driver(UNREACHABLE, force_contract=1)
    with pytest.raises(TypeError, match="preflight takes a str, one of wait, refuse, off"):
        pgshift.Driver(UNREACHABLE, preflight=2)
    with pytest.raises(TypeError, match="control_schema takes a str"):
        pgshift.Driver(UNREACHABLE, control_schema=None)
    with pytest.raises(TypeError):
        pgshift.Options().set_text("lock_timeout", 1)
    with pytest.raises(TypeError):
        pgshift.Driver(UNREACHABLE, options={"lock_timeout": 1})


def test_bad_option_values_raise_the_librarys_message_before_connecting():
    cases = [
        (dict(lock_timeout="soon"),
         'lock_timeout (--lock-timeout): "soon" is not a duration like 500ms, 1.5s or 2m'),
        (dict(lock_timeout=0), "lock_timeout (--lock-timeout) must be positive, got 0"),
        (dict(retry_deadline=-0.5),
         "retry_deadline (--retry-deadline) must be zero or positive, got -500ms"),
        (dict(backfill_batch_rows=0), "backfill_batch_rows (--batch-rows) must be at least 1, got 0"),
        (dict(preflight="sometimes"),
         'preflight (--preflight): "sometimes" is not one of wait, refuse, off'),
        (dict(backfill_walk="diagonal"),
         'backfill_walk (--backfill-walk): "diagonal" is not one of auto, key, pages'),
        (dict(lock_timeout=float("nan")),
         'lock_timeout (--lock-timeout): "nan" is not a duration like 500ms, 1.5s or 2m'),
    ]
    for options, message in cases:
        with pytest.raises(pgshift.InvalidArgumentError) as e:
            pgshift.Driver(UNREACHABLE, **options)  # not UnavailableError: checked first
        assert str(e.value) == message, options
    with pytest.raises(pgshift.InvalidArgumentError) as e:
        pgshift.Driver(UNREACHABLE, control_schema="s" * 64)
    assert str(e.value).startswith('control_schema (--control-schema): the control schema "sss')
    assert "64 bytes long" in str(e.value)
    with pytest.raises(pgshift.InvalidArgumentError) as e:
        pgshift.Options().set_text("force_contract", "yes")
    assert str(e.value) == 'force_contract (--force): "yes" is not true or false'
    # good options get as far as connecting
    with pytest.raises(pgshift.UnavailableError):
        pgshift.Driver(UNREACHABLE, lock_timeout="500ms", preflight="refuse", force_contract=True,
                       backfill_walk="pages", long_transaction=datetime.timedelta(seconds=2))


def test_options_convert_python_values_by_kind_and_read_back_as_text():
    o = pgshift.Options(lock_timeout=1.5, statement_timeout=datetime.timedelta(milliseconds=250),
                        retry_deadline="2m", long_statement_timeout=0, lease_heartbeat=1e-05,
                        backfill_batch_rows=250, force_contract=True, preflight="off",
                        backfill_walk="key", driver_name="bot")
    assert o.get_text("lock_timeout") == "1.5s"
    assert o.get_text("statement_timeout") == "250ms"
    assert o.get_text("retry_deadline") == "2m"
    assert o.get_text("long_statement_timeout") == "0"
    assert o.get_text("lease_heartbeat") == "10us"
    assert o.get_text("backfill_batch_rows") == "250"
    assert o.get_text("force_contract") == "true"
    assert o.get_text("preflight") == "off"
    assert o.get_text("backfill_walk") == "key"
    assert o.get_text("driver_name") == "bot"
    o.set_text("max_replication_lag", "0")
    assert o.get_text("max_replication_lag") == "0"
    o.set("force_contract", False)
    assert o.get_text("force_contract") == "false"
    with pytest.raises(pgshift.InvalidArgumentError):
        o.set_text("lock_timeout", "later")
    assert o.get_text("lock_timeout") == "1.5s"  # kept
    d = o.to_dict()
    assert list(d) == [i.name for i in pgshift.option_list()]
    assert d["lock_timeout"] == "1.5s" and d["control_schema"] == "pgshift"
    c = o.copy()
    c.set("lock_timeout", 3)
    assert (o.get_text("lock_timeout"), c.get_text("lock_timeout")) == ("1.5s", "3s")
    assert "lock_timeout" in repr(o)


def test_option_list_describes_every_option():
    options = pgshift.option_list()
    names = [o.name for o in options]
    assert len(names) == len(set(names)) >= 20
    for name in ("lock_timeout", "preflight", "force_contract", "backfill_walk",
                 "long_statement_timeout", "lease_heartbeat", "driver_name"):
        assert name in names
    by_name = {o.name: o for o in options}
    assert by_name["preflight"].kind == "choice"
    assert by_name["preflight"].choices == ["wait", "refuse", "off"]
    assert by_name["force_contract"].flag == "force" and by_name["force_contract"].kind == "bool"
    assert by_name["lock_timeout"].kind == "duration" and "1s" in by_name["lock_timeout"].help
    assert {o.kind for o in options} == {"duration", "integer", "ratio", "bool", "text", "choice"}


def test_unreachable_server_is_unavailable():
    dsn = "host=127.0.0.1 port=1 user=x password=hunter2 connect_timeout=5"
    with pytest.raises(pgshift.UnavailableError) as e:
        pgshift.Driver(dsn)
    assert e.value.code == pgshift.StatusCode.UNAVAILABLE
    assert e.value.sqlstate == "08001"
    assert "hunter2" not in str(e.value)
    with pytest.raises(pgshift.UnavailableError):
        pgshift.require_phase(dsn, NAME, "switched")
    with pytest.raises(pgshift.UnavailableError):
        pgshift.current_phase(dsn, NAME)


# ---- against the server ------------------------------------------------------------

def test_full_migration_with_old_and_new_app_writes(db):
    make_users(db)
    reports = []
    with pgshift.Driver(db, backfill_batch_rows=300, backfill_min_batch_rows=100,
                        backfill_max_batch_rows=300, driver_name="pytest",
                        lock_timeout=datetime.timedelta(milliseconds=500),
                        max_replication_lag=0) as d:
        assert d.server_version >= 110000
        d.init()
        d.init()  # idempotent

        # plan touches nothing
        plan = d.plan(SPEC)
        assert plan.migration == NAME
        assert [s.to for s in plan.steps][-1] is pgshift.Phase.CONTRACTED
        assert any(st.lock == "ACCESS EXCLUSIVE" for s in plan.steps for st in s.statements)
        assert any(st.batched for s in plan.steps for st in s.statements)
        with pytest.raises(pgshift.NotFoundError):
            pgshift.current_phase(db, NAME)

        st = d.register(SPEC)
        assert st.phase is pgshift.Phase.REGISTERED and st.name == NAME
        assert st.last_error is None and st.checksum
        assert d.register(json.dumps(SPEC)).checksum == st.checksum  # same spec: OK

        # startup checks: registered, not switched
        assert pgshift.current_phase(db, NAME) is pgshift.Phase.REGISTERED
        with pytest.raises(pgshift.FailedPreconditionError) as e:
            pgshift.require_phase(db, NAME, pgshift.Phase.SWITCHED)
        assert "registered" in str(e.value) and "switched" in str(e.value)
        assert e.value.exit_code == 1

        assert d.advance(NAME).phase is pgshift.Phase.COLUMN_ADDED
        assert "full_name" in columns(db)
        assert d.advance(NAME, to="trigger_installed").phase is pgshift.Phase.TRIGGER_INSTALLED

        # the old app version writes the old column
        with Conn(db) as app:
            app.query("INSERT INTO app.users (id, name) VALUES (5001, 'old insert');"
                      "UPDATE app.users SET name = 'old update' WHERE id = 7")

        st = d.advance(NAME, to=pgshift.Phase.VALIDATED, progress=reports.append)
        assert st.phase is pgshift.Phase.VALIDATED
        assert len(st.backfill) == 1 and st.backfill[0].done
        assert st.backfill[0].rows_done >= ROWS + 1
        assert len(reports) >= 3
        assert all(isinstance(r, pgshift.Progress) for r in reports)
        assert all(r.migration == NAME and r.step == "backfilled" for r in reports)
        assert [r.finished for r in reports].count(True) == 1 and reports[-1].finished
        assert reports[-1].rows_done >= ROWS + 1
        assert [r.rows_done for r in reports] == sorted(r.rows_done for r in reports)
        assert all(r.waiting == "" for r in reports)
        # 100 .. 300 rows, rounded to whole pages when the walk is by pages
        assert all(50 <= r.batch_rows <= 600 for r in reports)
        assert all(r.lock_wait_ms >= 0 for r in reports)
        # rows the old app's writes had already synced are skipped
        assert ROWS - 5 <= reports[-1].rows_updated <= ROWS + 1

        with pytest.raises(pgshift.FailedPreconditionError):
            d.require_phase(NAME, "switched")
        assert d.advance(NAME).phase is pgshift.Phase.SWITCHED
        d.require_phase(NAME, "switched")
        pgshift.require_phase(db, NAME, at_least="switched")
        assert d.current_phase(NAME) is pgshift.Phase.SWITCHED

        # the new app version writes the new column
        with Conn(db) as app:
            app.query("INSERT INTO app.users (id, full_name) VALUES (5002, 'new insert');"
                      "UPDATE app.users SET full_name = 'new update' WHERE id = 8")

        st = d.advance(NAME, to="contracted")
        assert st.phase is pgshift.Phase.CONTRACTED
        assert st.last_error is None and st.running_step is None

        with pytest.raises(pgshift.FailedPreconditionError):
            d.advance(NAME)
        with pytest.raises(pgshift.FailedPreconditionError) as e:
            d.rollback(NAME)
        assert "contracted" in str(e.value)
        assert [m.name for m in d.list()] == [NAME]

    assert d.closed
    assert columns(db) == ["id", "note", "full_name"]
    with Conn(db) as c:
        assert c.value("SELECT count(*) FROM app.users") == str(ROWS + 2)
        assert c.value("SELECT count(*) FROM app.users WHERE id <= %d AND id NOT IN (7, 8) "
                       "AND full_name = 'user ' || id" % ROWS) == str(ROWS - 2)
        assert dict(c.query("SELECT id::text, full_name FROM app.users "
                            "WHERE id IN (7, 8, 5001, 5002)")) == {
            "7": "old update", "8": "new update", "5001": "old insert", "5002": "new insert"}
        assert c.value("SELECT attnotnull FROM pg_attribute WHERE attrelid = "
                       "'app.users'::regclass AND attname = 'full_name'") == "t"
    pgshift.require_phase(db, NAME, "contracted")


def test_rollback_from_validated_restores_the_table(db):
    make_users(db, rows=500)
    with pgshift.Driver(db, max_replication_lag=0) as d:
        d.init()
        d.register(SPEC)
        d.advance(NAME, to="validated")
        st = d.rollback(NAME)
        assert st.phase is pgshift.Phase.ROLLED_BACK
        assert d.rollback(NAME).phase is pgshift.Phase.ROLLED_BACK  # idempotent
    assert columns(db) == ["id", "name", "note"]
    with pytest.raises(pgshift.FailedPreconditionError):
        pgshift.require_phase(db, NAME, "registered")
    pgshift.require_phase(db, NAME, "rolled_back")


def test_bad_input_raises_the_matching_exception(db):
    make_users(db, rows=10)
    with pgshift.Driver(db) as d:
        with pytest.raises(pgshift.NotFoundError, match="not set up .* run `pgshift init` first"):
            d.status(NAME)  # no control schema yet
        d.init()
        with pytest.raises(pgshift.NotFoundError):
            d.status("no_such_migration")
        with pytest.raises(pgshift.NotFoundError):
            d.current_phase("no_such_migration")
        with pytest.raises(pgshift.NotFoundError):
            d.register({"name": "m", "schema": "app", "operations": [
                {"rename_column": {"table": "users", "from": "nope", "to": "x"}}]})
        d.register(SPEC)
        other = json.loads(json.dumps(SPEC))
        other["operations"][0]["rename_column"]["to"] = "display_name"
        with pytest.raises(pgshift.AlreadyExistsError) as e:
            d.register(other)
        assert e.value.exit_code == 2
        with pytest.raises(pgshift.InvalidArgumentError):
            d.advance(NAME, to="swiched")
        with pytest.raises(pgshift.InvalidArgumentError):
            d.advance(NAME, to="rolled_back")
        d.advance(NAME, to="column_added")
        with pytest.raises(pgshift.InvalidArgumentError, match="forward"):
            d.advance(NAME, to="registered")
        with pytest.raises(pgshift.NotFoundError):
            pgshift.require_phase(db, NAME, "switched", control_schema="elsewhere")
    with pytest.raises(pgshift.FailedPreconditionError, match="closed"):
        d.status(NAME)


def test_locked_table_gives_deadline_exceeded_with_sqlstate(db):
    make_users(db, rows=10)
    with pgshift.Driver(db, **FAST) as d, Conn(db) as blocker:
        d.init()
        d.register(SPEC)
        blocker.query("BEGIN; SELECT count(*) FROM app.users")
        with pytest.raises(pgshift.DeadlineExceededError) as e:
            d.advance(NAME)
        assert e.value.sqlstate == "55P03"
        assert e.value.exit_code == 4
        assert "gave up" in str(e.value)
        blocker.query("ROLLBACK")
        assert d.status(NAME).phase is pgshift.Phase.REGISTERED
        assert "gave up" in d.status(NAME).last_error
        assert d.advance(NAME).phase is pgshift.Phase.COLUMN_ADDED


def test_second_driver_gets_busy_error(db):
    make_users(db, rows=1500)
    seen = []
    with pgshift.Driver(db, driver_name="first", backfill_batch_rows=200,
                        backfill_max_batch_rows=200, max_replication_lag=0) as d, \
            pgshift.Driver(db) as d2:
        d.init()
        d.register(SPEC)
        d.advance(NAME, to="trigger_installed")

        def try_second(progress):
            if not seen:
                seen_by_status.append(d2.status(NAME))
                try:
                    d2.advance(NAME)
                    seen.append(None)
                except pgshift.Error as e:  # noqa: PERF203
                    seen.append(e)

        seen_by_status = []
        d.advance(NAME, to="backfilled", progress=try_second)
        assert len(seen) == 1
        # status from another driver names the one driving it right now
        assert '"pgshift first [lease]"' in seen_by_status[0].driver
        assert seen_by_status[0].running_step == "backfilled"
        assert d2.status(NAME).driver is None
        assert isinstance(seen[0], pgshift.BusyError)
        assert seen[0].code == pgshift.StatusCode.ABORTED
        assert "first" in str(seen[0]) and seen[0].exit_code == 4
        assert d2.current_phase(NAME) is pgshift.Phase.BACKFILLED


def test_driver_refuses_calls_from_its_own_progress_callback(db):
    make_users(db, rows=800)
    seen = []
    with pgshift.Driver(db, backfill_batch_rows=200, backfill_max_batch_rows=200,
                        max_replication_lag=0) as d:
        d.init()
        d.register(SPEC)

        def reenter(progress):
            if not seen:
                try:
                    d.status(NAME)
                    seen.append(None)
                except pgshift.Error as e:  # noqa: PERF203
                    seen.append(e)

        assert d.advance(NAME, to="backfilled", progress=reenter).phase is pgshift.Phase.BACKFILLED
        assert isinstance(seen[0], pgshift.FailedPreconditionError)
        assert "own progress, preflight or migrate-event callback" in str(seen[0])


def test_exception_in_progress_callback_is_raised_after_the_step(db):
    make_users(db, rows=800)
    calls = []
    with pgshift.Driver(db, backfill_batch_rows=200, backfill_max_batch_rows=200,
                        max_replication_lag=0) as d:
        d.init()
        d.register(SPEC)

        def explode(progress):
            calls.append(progress)
            raise RuntimeError("callback bug")

        with pytest.raises(RuntimeError, match="callback bug"):
            d.advance(NAME, to="backfilled", progress=explode)
        assert len(calls) == 1  # not called again after it raised
        # the step itself committed
        assert d.status(NAME).phase is pgshift.Phase.BACKFILLED
        # the per-call callback is gone; the next call reports nowhere
        d.advance(NAME, to="validated")
        assert len(calls) == 1


def test_default_progress_callback_from_constructor(db):
    make_users(db, rows=600)
    reports = []
    with pgshift.Driver(db, progress=reports.append, backfill_batch_rows=200,
                        backfill_max_batch_rows=200, max_replication_lag=0) as d:
        d.init()
        d.register(SPEC)
        d.advance(NAME, to="backfilled")
    assert reports and reports[-1].finished


def test_gil_is_released_while_advance_waits(db):
    """advance() blocks on a table lock held by this thread's own
    connection; only if advance releases the GIL can this thread see it
    waiting and let it go before its (generous) retry deadline."""
    make_users(db, rows=10)
    result = {}
    with pgshift.Driver(db, lock_timeout=0.5, retry_initial_backoff=0.01,
                        retry_max_backoff=0.02, retry_deadline=20, max_replication_lag=0,
                        driver_name="gil-test") as d, Conn(db) as blocker, Conn(db) as watcher:
        d.init()
        d.register(SPEC)
        blocker.query("BEGIN; LOCK TABLE app.users IN ACCESS SHARE MODE")

        def run():
            try:
                result["status"] = d.advance(NAME)
            except Exception as e:  # noqa: BLE001
                result["error"] = e

        t = threading.Thread(target=run)
        t.start()
        seen_waiting = False
        while t.is_alive() and not seen_waiting:
            seen_waiting = watcher.value(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE NOT l.granted AND a.application_name LIKE 'pgshift%gil-test%'") != "0"
            time.sleep(0.01)
        blocker.query("ROLLBACK")
        t.join()
    assert seen_waiting, result
    assert "error" not in result, result
    assert result["status"].phase is pgshift.Phase.COLUMN_ADDED


def test_startup_check_example_script(db):
    """examples/startup_check.py refuses to start until the phase is reached."""
    import subprocess
    import sys

    make_users(db, rows=10)
    script = pathlib.Path(__file__).resolve().parents[3] / "examples" / "startup_check.py"
    if not script.exists():
        pytest.skip("examples/startup_check.py not present")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in [os.environ.get("PYTHONPATH", "")] + [os.path.dirname(pgshift.__path__[0])]
        if p))

    def run():
        return subprocess.run([sys.executable, str(script), "--dsn", db, "--migration", NAME,
                               "--needs", "switched"], capture_output=True, text=True, env=env)

    r = run()
    assert r.returncode == 3, r.stderr  # not registered: not ready
    assert "refusing to start" in r.stderr and "not registered" in r.stderr
    with pgshift.Driver(db, max_replication_lag=0) as d:
        d.init()
        d.register(SPEC)
        d.advance(NAME, to="validated")
        r = run()
        assert r.returncode == 3, r.stderr
        assert "refusing to start" in r.stderr and "validated" in r.stderr
        d.advance(NAME, to="switched")
    r = run()
    assert r.returncode == 0, r.stderr
    assert "schema ready" in r.stdout
    r = subprocess.run([sys.executable, str(script), "--dsn", "host=127.0.0.1 port=1",
                        "--migration", NAME, "--needs", "switched"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "cannot check" in r.stderr, r.stderr


# ---- pause / resume, preflight, instances -------------------------------------------

def test_pause_holds_the_backfill_until_resume(db):
    make_users(db, rows=1000)
    reports = []
    with pgshift.Driver(db, backfill_batch_rows=200, backfill_max_batch_rows=200,
                        backfill_poll_interval=0.05, max_replication_lag=0) as d, \
            pgshift.Driver(db) as other:
        d.init()
        d.register(SPEC)
        d.advance(NAME, to="trigger_installed")
        with pytest.raises(pgshift.NotFoundError):
            d.pause("no_such_migration")
        d.pause(NAME)
        assert d.status(NAME).paused is True

        def resume_when_paused(p):
            reports.append(p)
            if p.waiting == "paused" and other.status(NAME).paused:
                other.resume(NAME)

        st = d.advance(NAME, to="backfilled", progress=resume_when_paused)
        assert st.phase is pgshift.Phase.BACKFILLED and st.paused is False
        waiting = [r.waiting for r in reports]
        # it waited before the first batch, then went on
        assert "paused" in waiting
        assert all(r.rows_done == 0 for r in reports[:waiting.index("paused") + 1])
        assert waiting[-1] == "" and reports[-1].finished
        assert reports[-1].rows_done >= 1000


def _blocker_pid(blocker):
    blocker.query("BEGIN")
    pid = int(blocker.value("SELECT pg_backend_pid()"))
    blocker.query("SELECT count(*) FROM app.users")
    return pid


def test_preflight_refuse_reports_the_long_transaction(db):
    make_users(db, rows=10)
    reports = []
    with Conn(db) as blocker, pgshift.Driver(db, preflight="refuse", long_transaction=0.05,
                                             on_preflight=reports.append, **FAST) as d:
        d.init()
        d.register(SPEC)
        pid = _blocker_pid(blocker)
        time.sleep(0.1)
        with pytest.raises(pgshift.BusyError) as e:
            d.advance(NAME)
        assert "preflight" in str(e.value) and "refused" in str(e.value)
        assert len(reports) == 1
        r = reports[0]
        assert isinstance(r, pgshift.PreflightReport)
        assert (r.migration, r.step, r.outcome) == (NAME, "column_added", "refused")
        assert "users" in r.table
        assert [s.pid for s in r.sessions] == [pid]
        assert isinstance(r.sessions[0], pgshift.SessionInfo)
        assert r.sessions[0].state == "idle in transaction"
        assert r.sessions[0].transaction_seconds >= 0.05
        assert "AccessShareLock" in r.sessions[0].locks
        blocker.query("ROLLBACK")
        assert d.advance(NAME).phase is pgshift.Phase.COLUMN_ADDED
        assert len(reports) == 1  # nothing to report any more


def test_preflight_wait_reports_waiting_then_cleared(db):
    make_users(db, rows=10)
    reports = []
    result = {}
    with Conn(db) as blocker, pgshift.Driver(db, preflight="wait", long_transaction=0.05,
                                             retry_deadline=30, max_replication_lag=0,
                                             on_preflight=reports.append) as d:
        d.init()
        d.register(SPEC)
        _blocker_pid(blocker)
        time.sleep(0.1)
        t = threading.Thread(target=lambda: result.setdefault("status", d.advance(NAME)))
        t.start()
        deadline = time.monotonic() + 20
        while not reports and time.monotonic() < deadline:
            time.sleep(0.02)  # the callback runs on the advancing thread: the GIL is free
        blocker.query("ROLLBACK")
        t.join()
    assert result["status"].phase is pgshift.Phase.COLUMN_ADDED
    assert [r.outcome for r in reports] == ["waiting", "cleared"]
    assert len(reports[0].sessions) == 1 and reports[1].sessions == []


def test_old_shape_instance_blocks_contract_until_forced(db):
    make_users(db, rows=50)
    with pgshift.Driver(db, max_replication_lag=0) as d:
        with pytest.raises(pgshift.NotFoundError, match="not set up .* run `pgshift init` first"):
            pgshift.declare_instance(db, NAME, pgshift.Shape.OLD)  # no control schema yet
        d.init()
        d.register(SPEC)
        d.advance(NAME, to="switched")
        with pgshift.InstanceRegistration(db, NAME, pgshift.Shape.OLD, instance_id="py-old",
                                          description="api v41", ttl=30) as reg:
            assert reg.instance_id == "py-old"
            assert reg.last_refresh_error is None
            pgshift.declare_instance(db, NAME, "new", instance_id="py-new",
                                     ttl=datetime.timedelta(minutes=1))
            st = d.status(NAME)
            assert {(i.instance_id, i.shape) for i in st.instances} == {
                ("py-old", pgshift.Shape.OLD), ("py-new", pgshift.Shape.NEW)}
            old = next(i for i in st.instances if i.instance_id == "py-old")
            assert old.description == "api v41" and 0 < old.expires_in_seconds <= 30
            assert old.heartbeat_at.endswith("Z")
            with pytest.raises(pgshift.FailedPreconditionError) as e:
                d.advance(NAME, to="contracted")
            assert "refusing to contract" in str(e.value)
            assert "py-old" in str(e.value) and "py-new" not in str(e.value)
            assert d.current_phase(NAME) is pgshift.Phase.SWITCHED
            with pgshift.Driver(db, force_contract=True, max_replication_lag=0) as forced:
                assert forced.advance(NAME, to="contracted").phase is pgshift.Phase.CONTRACTED
        assert reg.closed
        pgshift.withdraw_instance(db, NAME, "py-new")
        pgshift.withdraw_instance(db, NAME, "py-new")  # absent: fine
        assert d.status(NAME).instances == []
    with pytest.raises(pgshift.InvalidArgumentError, match="shape"):
        pgshift.declare_instance(db, NAME, "middle")
    with pytest.raises(pgshift.InvalidArgumentError, match="ttl must be positive"):
        pgshift.declare_instance(db, NAME, pgshift.Shape.OLD, ttl=-1)
    with pytest.raises(TypeError):
        pgshift.declare_instance(db, NAME, pgshift.Shape.OLD, ttl="30s")
    with pytest.raises(TypeError):
        pgshift.InstanceRegistration(db, NAME, 0)


# ---- every field of the JSON on the Python objects ---------------------------------

def assert_carries(obj, data, path="$"):
    """Every field of JSON value `data` is on `obj` with the same value,
    recursively (Phase and Shape compare equal to their names)."""
    if isinstance(data, dict):
        for key, value in data.items():
            attr = key + "_" if keyword.iskeyword(key) else key  # "from" is from_
            assert hasattr(obj, attr), \
                f"{path}.{key} is in the JSON but not on {type(obj).__name__}"
            assert_carries(getattr(obj, attr), value, f"{path}.{key}")
    elif isinstance(data, list):
        assert isinstance(obj, list) and len(obj) == len(data), f"{path}: {obj!r}"
        for i, (o, d) in enumerate(zip(obj, data)):
            assert_carries(o, d, f"{path}[{i}]")
    else:
        assert obj == data, f"{path}: {obj!r} != {data!r}"


def test_status_and_plan_objects_carry_every_json_field(db):
    make_users(db, rows=100)
    with pgshift.Driver(db, max_replication_lag=0) as d:
        d.init()
        plan_json = json.loads(d._d.plan(pgshift.load_migration(SPEC)))
        d.register(SPEC)
        d.advance(NAME, to="backfilled")
        d.pause(NAME)
        pgshift.declare_instance(db, NAME, "old", instance_id="py-json", description="v1")
        status_json = json.loads(d._d.status(NAME))
        list_json = json.loads(d._d.list())

        # what the check walks through is not empty
        assert status_json["backfill"] and status_json["instances"] and status_json["paused"]
        assert plan_json["notes"] and plan_json["steps"] and plan_json["rollback"]
        statements = [st for s in plan_json["steps"] for st in s["statements"]]
        assert any(st["locks"] for st in statements)
        assert any(st["when"] for st in statements) and any(st["skip_if"] for st in statements)

        # the objects the public API returns, from the same state
        status = d.status(NAME)
        assert_carries(status, {k: v for k, v in status_json.items() if k != "instances"})
        assert [i.instance_id for i in status.instances] == ["py-json"]
        assert_carries(status.instances[0], {k: v for k, v in status_json["instances"][0].items()
                                             if k != "expires_in_seconds"})
        assert_carries(d.plan(SPEC), plan_json)
        assert_carries(d.list(), list_json["migrations"])
        assert set(list_json) == {"migrations"}


# ---- migration directories ------------------------------------------------------------

DIR_FILES = {
    # no "name": the file name is the name
    "0001_create_audit.json": {"schema": "app", "operations": [{"create_table": {
        "table": "audit", "columns": [{"name": "id", "type": "bigint"},
                                      {"name": "msg", "type": "text", "not_null": True}],
        "primary_key": ["id"]}}]},
    "0002_add_users_email.json": {"name": "0002_add_users_email", "schema": "app", "operations": [
        {"add_column": {"table": "users", "column": "email", "type": "text"}}]},
    "0003_rename_users_note.json": {"schema": "app", "operations": [
        {"rename_column": {"table": "users", "from": "note", "to": "remark"}}]},
}
DIR_NAMES = [f[:-len(".json")] for f in sorted(DIR_FILES)]


def write_migrations(directory, files=DIR_FILES):
    directory.mkdir(exist_ok=True)
    for name, spec in files.items():
        (directory / name).write_text(json.dumps(spec, indent=2) + "\n")
    (directory / "README.md").write_text("not a migration\n")
    return directory


def add_column_spec(column, type_="text"):
    return {"schema": "app", "operations": [
        {"add_column": {"table": "users", "column": column, "type": type_}}]}


def has_table(dsn, table):
    with Conn(dsn) as c:
        return c.value(f"SELECT count(*) FROM pg_tables WHERE schemaname = 'app' "
                       f"AND tablename = '{table}'") == "1"


def test_migrate_runs_a_directory_to_switched_then_contracts(db, tmp_path):
    make_users(db, rows=200)
    migrations = write_migrations(tmp_path / "migrations")
    events = []
    with pgshift.Driver(db, on_migrate=events.append, max_replication_lag=0) as d:
        # before init: every file pending, README.md ignored
        before = d.directory_status(migrations)
        assert isinstance(before, pgshift.DirectoryReport)
        assert before.directory.endswith("migrations")
        assert [f.name for f in before.files] == DIR_NAMES
        assert [f.file for f in before.files] == sorted(DIR_FILES)
        assert [f.state for f in before.files] == ["pending"] * 3
        assert all(f.migration is None and f.recorded_checksum is None and f.problem is None
                   for f in before.files)
        assert before.ignored == ["README.md"] and before.pending == 3 and before.ok

        report = d.migrate(migrations)
        assert isinstance(report, pgshift.MigrateReport)
        assert [m.name for m in report.migrations] == DIR_NAMES
        assert [m.file for m in report.migrations] == sorted(DIR_FILES)
        assert all(m.from_ is pgshift.Phase.REGISTERED and m.to is pgshift.Phase.SWITCHED
                   and m.registered for m in report.migrations)
        assert report.stopped_at is None and report.stop_reason is None

        # the events, in order, through the constructor's callback
        assert all(isinstance(e, pgshift.MigrateEvent) for e in events)
        assert "waiting" not in [e.action for e in events]
        assert [e.migration for e in events if e.action == "register"] == DIR_NAMES
        assert [e.file for e in events if e.action == "register"] == sorted(DIR_FILES)
        assert [e.migration for e in events
                if e.action == "reached" and e.phase == "switched"] == DIR_NAMES

        # expanded: the new table and columns exist beside the old column
        assert has_table(db, "audit")
        assert {"note", "email", "remark"} <= set(columns(db))
        with Conn(db) as c:
            assert c.value("SELECT count(*) FROM app.users WHERE remark = 'note ' || id") == "200"

        # each migration knows its file and the checksum recorded for it
        st = d.status("0002_add_users_email")
        assert st.phase is pgshift.Phase.SWITCHED
        assert st.file == "0002_add_users_email.json"
        assert st.baselined is False
        after = d.directory_status(str(migrations))
        assert [f.state for f in after.files] == ["applied"] * 3
        assert after.pending == 0 and after.ok
        by_name = {f.name: f for f in after.files}
        assert by_name["0002_add_users_email"].recorded_checksum == st.file_checksum
        assert len(st.file_checksum) == 64  # sha256, hex
        assert by_name["0002_add_users_email"].checksum == st.file_checksum
        assert all(f.migration.phase is pgshift.Phase.SWITCHED for f in after.files)

        # again: nothing to do
        assert d.migrate(migrations).migrations == []

        # post-deploy, with a callback for this call only
        per_call = []
        seen_before = len(events)
        report = d.migrate(os.fsencode(migrations), contract=True, on_event=per_call.append)
        assert [m.name for m in report.migrations] == DIR_NAMES
        assert all(m.from_ is pgshift.Phase.SWITCHED and m.to is pgshift.Phase.CONTRACTED
                   and not m.registered for m in report.migrations)
        assert [e.migration for e in per_call
                if e.action == "reached" and e.phase == "contracted"] == DIR_NAMES
        assert len(events) == seen_before  # the constructor's callback was not called
        assert "note" not in columns(db) and "remark" in columns(db)
        assert [m.phase for m in d.list()] == [pgshift.Phase.CONTRACTED] * 3


def test_migrate_refuses_a_changed_or_out_of_order_file_and_changes_nothing(db, tmp_path):
    make_users(db, rows=50)
    migrations = write_migrations(tmp_path)
    with pgshift.Driver(db, max_replication_lag=0) as d:
        d.migrate(migrations)
        changed = json.loads(json.dumps(DIR_FILES["0002_add_users_email.json"]))
        changed["operations"][0]["add_column"]["type"] = "varchar(200)"
        (migrations / "0002_add_users_email.json").write_text(json.dumps(changed))
        (migrations / "0004_add_users_phone.json").write_text(json.dumps(add_column_spec("phone")))
        events = []
        with pytest.raises(pgshift.InvalidArgumentError) as e:
            d.migrate(migrations, on_event=events.append)
        assert "0002_add_users_email" in str(e.value)
        assert e.value.code == pgshift.StatusCode.INVALID_ARGUMENT and e.value.exit_code == 2
        assert [ev for ev in events if ev.action == "register"] == []
        with pytest.raises(pgshift.NotFoundError):
            d.status("0004_add_users_phone")
        assert "phone" not in columns(db)
        report = d.directory_status(migrations)
        assert not report.ok
        by_name = {f.name: f for f in report.files}
        assert by_name["0002_add_users_email"].state == "changed"
        assert "0002_add_users_email" in by_name["0002_add_users_email"].problem or \
            "changed" in by_name["0002_add_users_email"].problem
        assert by_name["0002_add_users_email"].checksum != \
            by_name["0002_add_users_email"].recorded_checksum
        assert by_name["0004_add_users_phone"].state == "pending"

        # restored; a new file sorting before applied ones is refused unless allowed
        write_migrations(migrations)
        (migrations / "0000_add_users_age.json").write_text(json.dumps(add_column_spec("age", "int")))
        with pytest.raises(pgshift.InvalidArgumentError, match="0000_add_users_age"):
            d.migrate(migrations)
        assert "phone" not in columns(db) and "age" not in columns(db)
        first = d.directory_status(migrations).files[0]
        assert first.name == "0000_add_users_age" and first.out_of_order and first.problem
        report = d.migrate(migrations, to=pgshift.Phase.VALIDATED, allow_out_of_order=True)
        assert [(m.name, m.to) for m in report.migrations] == [
            ("0000_add_users_age", pgshift.Phase.VALIDATED),
            ("0004_add_users_phone", pgshift.Phase.VALIDATED)]
        assert {"phone", "age"} <= set(columns(db))


def test_baseline_records_files_as_applied_without_running_them(db, tmp_path):
    make_users(db, rows=20)
    with Conn(db) as c:  # the schema already has what 0001 and 0002 do
        c.query("CREATE TABLE app.audit (id bigint PRIMARY KEY, msg text NOT NULL);"
                "ALTER TABLE app.users ADD COLUMN email text")
    migrations = write_migrations(tmp_path)
    with pgshift.Driver(db, max_replication_lag=0) as d:
        with pytest.raises(pgshift.InvalidArgumentError, match="0009_nope"):
            d.baseline(migrations, "0009_nope")
        with pytest.raises(TypeError):
            d.baseline(migrations, 2)
        events = []
        report = d.baseline(migrations, "0002_add_users_email", on_event=events.append)
        assert isinstance(report, pgshift.DirectoryReport)
        assert [(e.action, e.migration, e.phase) for e in events] == [
            ("baseline", "0001_create_audit", "contracted"),
            ("baseline", "0002_add_users_email", "contracted")]
        assert [f.state for f in report.files] == ["baselined", "baselined", "pending"]
        assert report.pending == 1
        st = d.status("0001_create_audit")
        assert st.phase is pgshift.Phase.CONTRACTED and st.baselined
        assert st.file == "0001_create_audit.json"
        assert report.files[0].migration.baselined
        # baselined again through the file name: nothing changes
        again = d.baseline(migrations, "0002_add_users_email.json", on_event=events.append)
        assert [f.state for f in again.files] == ["baselined", "baselined", "pending"]
        # nothing recorded again: only a "skip" per file, saying why
        assert [(e.action, e.migration, e.message) for e in events[2:]] == [
            ("skip", "0001_create_audit", "baselined already"),
            ("skip", "0002_add_users_email", "baselined already")]
        # migrate runs only what is left
        result = d.migrate(migrations)
        assert [m.name for m in result.migrations] == ["0003_rename_users_note"]
        assert "remark" in columns(db)


def test_migrate_errors(db, tmp_path):
    make_users(db, rows=10)
    missing = tmp_path / "no_such_dir"
    migrations = write_migrations(tmp_path / "migrations")
    with pgshift.Driver(db, max_replication_lag=0, driver_name="py-dir") as d, \
            pgshift.Driver(db, max_replication_lag=0) as other:
        for call in (lambda: d.migrate(missing), lambda: d.directory_status(missing),
                     lambda: d.baseline(missing, "0001_create_audit")):
            with pytest.raises(pgshift.NotFoundError) as e:
                call()
            assert "no_such_dir" in str(e.value)
        with pytest.raises(pgshift.InvalidArgumentError, match="not a directory"):
            d.directory_status(migrations / "README.md")
        with pytest.raises(TypeError):
            d.migrate(42)
        with pytest.raises(pgshift.InvalidArgumentError, match="swiched"):
            d.migrate(migrations, to="swiched")
        with pytest.raises(pgshift.InvalidArgumentError):
            d.migrate(migrations, to="switched", contract=True)
        assert d.directory_status(migrations).pending == 3  # nothing ran

        # another migrate of the same database while this one holds the lock;
        # in a thread, so that a second migrate that waits (instead of
        # refusing) fails the test rather than hanging it
        busy = []

        def run_other():
            busy.append(_try(lambda: other.migrate(migrations, wait=False)))

        threads = []

        def try_other(event):
            if event.action == "register" and not threads:  # the directory lock is held
                threads.append(threading.Thread(target=run_other))
                threads[0].start()
                threads[0].join(timeout=20)

        d.migrate(migrations, on_event=try_other)
        threads[0].join()
        assert isinstance(busy[0], pgshift.BusyError), busy
        assert "py-dir" in str(busy[0]) and "nothing was changed" in str(busy[0])

        # the driver cannot be used from its own event callback
        reentered = []
        d.migrate(migrations, contract=True,
                  on_event=lambda e: reentered.append(_try(lambda: d.status("0001_create_audit"))))
        assert reentered and isinstance(reentered[0], pgshift.FailedPreconditionError)
        assert "migrate-event callback" in str(reentered[0])


def test_second_migrate_waits_for_the_first_then_has_nothing_to_do(db, tmp_path):
    """B's migrate waits (reporting "waiting", then "locked") while A's holds
    the directory lock; A's runs in another thread, so this also shows that
    migrate releases the GIL."""
    make_users(db, rows=10)
    migrations = write_migrations(tmp_path)
    first_register = threading.Event()
    events_a, events_b, errors = [], [], []

    def slow(event):
        events_a.append(event)
        if event.action == "register" and not first_register.is_set():
            first_register.set()
            time.sleep(1)

    with pgshift.Driver(db, max_replication_lag=0, driver_name="py-a") as a, \
            pgshift.Driver(db, max_replication_lag=0, driver_name="py-b") as b:
        t = threading.Thread(target=lambda: errors.append(_try(lambda: a.migrate(migrations,
                                                                                 on_event=slow))))
        t.start()
        assert first_register.wait(timeout=30)
        report = b.migrate(migrations, on_event=events_b.append)
        t.join()
    assert isinstance(errors[0], pgshift.MigrateReport), errors
    assert [m.name for m in errors[0].migrations] == DIR_NAMES
    assert report.migrations == []
    actions = [e.action for e in events_b]
    assert actions[:2] == ["waiting", "locked"], actions
    assert "py-a" in events_b[0].message
    assert [e.migration for e in events_b if e.action == "skip"] == DIR_NAMES


def _try(fn):
    try:
        return fn()
    except pgshift.Error as e:
        return e


def test_exception_in_migrate_callback_is_raised_after_the_call(db, tmp_path):
    make_users(db, rows=10)
    migrations = write_migrations(tmp_path)
    calls = []
    with pgshift.Driver(db, max_replication_lag=0) as d:
        def explode(event):
            calls.append(event)
            raise RuntimeError("callback bug")

        with pytest.raises(RuntimeError, match="callback bug"):
            d.migrate(migrations, on_event=explode)
        assert len(calls) == 1
        # the migrate itself went through
        assert [m.phase for m in d.list()] == [pgshift.Phase.SWITCHED] * 3
        with pytest.raises(TypeError, match="on_migrate"):
            d.migrate(migrations, on_event="not callable")


def test_directory_objects_carry_every_json_field(db, tmp_path):
    make_users(db, rows=10)
    migrations = write_migrations(tmp_path)
    events = []
    with pgshift.Driver(db, max_replication_lag=0) as d:
        d._d.migrate(str(migrations), on_event=lambda text: events.append(json.loads(text)))
        assert events
        fields = {f.name for f in dataclasses.fields(pgshift.MigrateEvent)}
        for e in events:
            assert e["event"] == "migrate"
            assert set(e) - {"event"} == fields, e
        raw = json.loads(d._d.migrate(str(migrations), contract=True))
        assert raw["migrations"]
        assert_carries(pgshift.MigrateReport._from(raw), raw)
        status_json = json.loads(d._d.directory_status(str(migrations)))
        assert all("migration" in f for f in status_json["files"])
        assert_carries(d.directory_status(migrations), status_json)
        st_json = json.loads(d._d.status("0002_add_users_email"))
        assert {"file", "file_checksum", "baselined"} <= set(st_json)
        assert_carries(d.status("0002_add_users_email"), st_json)


def test_lint_and_convert_plain_sql_without_and_with_a_database(db):
    report = pgshift.lint("BEGIN;\nCREATE INDEX users_email ON users (email);\nCOMMIT;", "0042.sql")
    assert report["unsafe"] is True
    assert [s["verdict"] for s in report["statements"]] == ["control", "convert", "control"]
    assert report["statements"][1]["findings"][0]["rule"] == "require-concurrent-index"
    assert report["statements"][1]["line"] == 2
    with pytest.raises(pgshift.InvalidArgumentError) as e:
        pgshift.lint("CREATE INDEXX i ON t (c);", "bad.sql")
    assert "line 1, column 8" in str(e.value)

    m = pgshift.convert_sql("ALTER TABLE users RENAME COLUMN name TO full_name;\nCREATE TABLE t (id int);",
                            "0043_rename")
    assert m.name == "0043_rename"
    assert json.loads(m.canonical_json())["operations"] == [
        {"rename_column": {"table": "users", "from": "name", "to": "full_name"}},
        {"sql": {"up": "CREATE TABLE t (id int)"}},
    ]
    with pytest.raises(pgshift.InvalidArgumentError) as e:
        pgshift.convert_sql("VACUUM FULL users;", "0044")
    assert "line 1 (VACUUM FULL)" in str(e.value)
    assert "0044.sql" in str(e.value)

    # With the live catalog: a table that does not exist is new, so an index
    # on it is safe as written; one in use is converted.
    with Conn(db) as c:
        c.query("CREATE TABLE users (id bigint PRIMARY KEY, email text)")
    d = pgshift.Driver(db)
    try:
        assert d.lint("CREATE INDEX i ON users (email);")["statements"][0]["verdict"] == "convert"
        assert d.lint("CREATE INDEX i ON nosuch (email);")["statements"][0]["verdict"] == "safe"
        assert "create_index" in d.convert_sql("CREATE INDEX i ON users (email);", "0045_i").canonical_json()
    finally:
        d.close()


def test_latency_guard_and_throttle_query_options():
    """The latency guard takes a number above 1 or "off"; the throttle query
    must be one SELECT that only reads: checked before connecting."""
    assert pgshift.Options(latency_guard=2).get_text("latency_guard") == "2"
    assert pgshift.Options(latency_guard=2.5).get_text("latency_guard") == "2.5"
    assert pgshift.Options(latency_guard=0).get_text("latency_guard") == "off"
    assert pgshift.Options(latency_guard="off").get_text("latency_guard") == "off"
    assert pgshift.Options().get_text("latency_guard") == "1.5"
    with pytest.raises(pgshift.InvalidArgumentError, match="latency_guard"):
        pgshift.Options(latency_guard=1)
    with pytest.raises(TypeError):
        pgshift.Options(latency_guard=True)
    with pytest.raises(pgshift.InvalidArgumentError, match="throttle_query"):
        pgshift.Driver("host=127.0.0.1 port=1 connect_timeout=1", throttle_query="DELETE FROM t")


def test_a_dropped_driver_whose_callback_refers_back_to_its_owner_closes(db):
    # A bound method as callback makes a cycle (owner -> Driver -> callback
    # -> owner); the garbage collector must be able to break it and the
    # connections must close with it.
    tag = f"gc-{os.getpid()}"

    class App:
        def __init__(self):
            self.reports = []
            self.driver = pgshift.Driver(db, driver_name=tag, progress=self.on_progress,
                                         on_preflight=self.on_progress, on_migrate=self.on_progress)

        def on_progress(self, p):
            self.reports.append(p)

    def open_sessions():
        with Conn(db) as c:
            return int(c.value("SELECT count(*) FROM pg_stat_activity "
                               f"WHERE application_name LIKE 'pgshift {tag}%'"))

    make_users(db, rows=300)
    app = App()
    app.driver.init()
    app.driver.register(SPEC)
    app.driver.advance(NAME, to="backfilled")
    assert app.reports and app.reports[-1].finished  # the forwarded callback ran
    apps = [App() for _ in range(5)]
    assert open_sessions() >= 6
    del app, apps
    gc.collect()
    # A closed connection's backend leaves pg_stat_activity a moment later:
    # wait for that (a leaked one never leaves).
    for _ in range(200):
        if open_sessions() == 0:
            break
        time.sleep(0.05)
    assert open_sessions() == 0


@pytest.mark.parametrize("where", ["while the library works", "inside the progress callback"])
def test_ctrl_c_stops_advance_between_batches_and_it_resumes(db, where):
    # SIGINT during advance(to="contracted") raises KeyboardInterrupt as soon
    # as the backfill is between batches, long before the irreversible
    # contract; the next advance resumes from the checkpoint and finishes.
    import signal
    make_users(db)
    seen = []

    def on_progress(p):
        seen.append(p)
        if len(seen) == 2 and where == "inside the progress callback":
            os.kill(os.getpid(), signal.SIGINT)  # raised inside this callback

    def interrupt_soon():
        while len(seen) < 2:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGINT)  # while the main thread is in the library

    with pgshift.Driver(db, backfill_batch_rows=100, backfill_max_batch_rows=100,
                        backfill_batch_delay=0.05, latency_guard=0, **FAST) as d:
        d.init()
        d.register(SPEC)
        if where == "while the library works":
            threading.Thread(target=interrupt_soon, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            d.advance(NAME, to="contracted", progress=on_progress)
        status = d.status(NAME)
        assert status.phase == pgshift.Phase.TRIGGER_INSTALLED
        assert status.running_step == "backfilled"
        assert 0 < status.backfill[0].rows_done < ROWS
        assert len(seen) < ROWS // 100  # stopped well before the end
        with Conn(db) as c:
            assert c.value("SELECT count(*) FROM information_schema.columns "
                           "WHERE table_name = 'users' AND column_name = 'name'") == "1"
        done = d.advance(NAME, to="contracted")
    assert done.phase == pgshift.Phase.CONTRACTED
    with Conn(db) as c:
        assert c.value("SELECT count(*) FROM app.users WHERE full_name = 'user ' || id") == str(ROWS)


def test_bytes_that_are_not_utf8_raise_pgshift_errors(db, tmp_path):
    # A file or path in another encoding: a pgshift error whose message has
    # U+FFFD where the bytes were, never UnicodeDecodeError or TypeError.
    bad_file = tmp_path / "bad.json"
    bad_file.write_bytes(b'{"name": "m\xff", "operations": []}')
    odd_name = os.fsdecode(os.path.join(os.fsencode(str(tmp_path)), b"odd\xfe.json"))
    with open(odd_name, "wb") as f:
        f.write(b'{"name": "m\xff", "operations": []}')
    with pytest.raises(pgshift.InvalidArgumentError, match="malformed JSON") as e:
        pgshift.load_migration(bad_file)
    assert "\ufffd" in str(e.value)
    with pytest.raises(pgshift.InvalidArgumentError, match="odd\ufffd.json"):
        pgshift.load_migration(odd_name)
    with pytest.raises(pgshift.InvalidArgumentError, match="not UTF-8"):
        pgshift.load_migration(b'{"name": "m\xfe"}')
    with pytest.raises(pgshift.NotFoundError, match="gone\ufffd"):
        pgshift.load_migration(os.fsdecode(b"/nonexistent/gone\xfe.json"))
    with pgshift.Driver(db) as d:
        with pytest.raises(pgshift.NotFoundError, match="nodir\ufffd"):
            d.migrate(os.fsdecode(os.path.join(os.fsencode(str(tmp_path)), b"nodir\xfe")))


def test_a_driver_connects_again_after_the_server_ended_its_session(db):
    with pgshift.Driver(db, driver_name="py-reconnect") as d:
        d.init()
        with Conn(db) as c:
            c.query("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                    "WHERE application_name = 'pgshift py-reconnect'")
        assert not d.closed
        assert d.list() == []
        with Conn(db) as c:
            assert c.value("SELECT count(*) FROM pg_stat_activity "
                           "WHERE application_name = 'pgshift py-reconnect'") == "1"


def _doc_blocks():
    """The ```python blocks of docs/api/python.md, in order."""
    from conftest import ROOT
    text = pathlib.Path(ROOT, "docs", "api", "python.md").read_text(encoding="utf-8")
    blocks, current = [], None
    for line in text.splitlines():
        if current is None and line.strip() == "```python":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append("\n".join(current) + "\n")
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_the_examples_of_docs_api_python_md_run(db, tmp_path, monkeypatch, capsys):
    # The examples a reader copies, run as written: only the DSN is this
    # test's database.
    blocks = _doc_blocks()
    deploy = next(b for b in blocks if 'd.advance("0042_rename_users_name", to="contracted")' in b)
    errors = next(b for b in blocks if '# InvalidArgumentError: lock_timeout' in b)
    startup = next(b for b in blocks if "pgshift.require_phase(dsn" in b)
    make_users(db)
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / f"{NAME}.json").write_text(json.dumps(SPEC))
    monkeypatch.chdir(tmp_path)

    # The startup check refuses before the migration is switched.
    with pytest.raises(SystemExit, match="refusing to start"):
        exec(startup, {"dsn": db})
    assert '"host=db dbname=app"' in deploy
    exec(deploy.replace('"host=db dbname=app"', repr(db)), {})
    out = capsys.readouterr().out
    assert "backfill " in out and "ACCESS EXCLUSIVE" in out
    with Conn(db) as c:
        assert c.value("SELECT phase FROM pgshift.migrations") == "contracted"
        assert c.value(f"SELECT count(*) FROM app.users WHERE full_name = 'user ' || id") == str(ROWS)
    exec(startup, {"dsn": db})  # passes now

    # Each call of the errors example raises what its comment says.
    lines = errors.strip().splitlines()
    assert len(lines) % 2 == 0
    for call, comment in zip(lines[0::2], lines[1::2]):
        cls, _, message = comment.lstrip("# ").partition(": ")
        with pytest.raises(getattr(pgshift, cls)) as e:
            exec(call, {"pgshift": pgshift, "dsn": db})
        assert str(e.value).startswith(message.split("...")[0]), (call, str(e.value))


def test_an_integer_too_large_for_the_library_names_the_option():
    # 2**70 does not fit the library's 64-bit option: a pgshift error naming
    # the option (InvalidArgumentError is a ValueError-like input error), not
    # pybind11's RuntimeError or OverflowError.
    for value in (2 ** 70, -(2 ** 70)):
        with pytest.raises(pgshift.InvalidArgumentError, match=r"backfill_batch_rows \(--batch-rows\)"):
            pgshift.Options(backfill_batch_rows=value)
        with pytest.raises(pgshift.InvalidArgumentError, match="backfill_max_batches"):
            pgshift.Driver("host=127.0.0.1 port=1", backfill_max_batches=value)
