"""pgshift: zero-downtime PostgreSQL schema changes as expand/contract state
machines, from Python.

A Pythonic layer over the C++ library (the compiled ``pgshift._pgshift``).
Database calls release the GIL; errors are :class:`pgshift.Error`
subclasses, one per status code (see :mod:`pgshift.errors`).

Deploy tooling drives a migration through its phases::

    import pgshift

    with pgshift.Driver("host=db dbname=app", lock_timeout=0.5) as d:
        d.init()
        d.register("migrations/0042_rename_users_name.json")
        d.advance("0042_rename_users_name", to="validated",
                  progress=lambda p: print(p.rows_done, "/", p.rows_estimate))
        # ... deploy the new app version ...
        d.advance("0042_rename_users_name", to=pgshift.Phase.SWITCHED)

or runs a whole directory of migration files, in order of their names::

    with pgshift.Driver(dsn, on_migrate=lambda e: print(e.action, e.migration, e.phase)) as d:
        d.migrate("migrations")                 # pre-deploy: every file to switched
        # ... deploy the new app version ...
        d.migrate("migrations", contract=True)  # post-deploy

Applications check the schema at startup (one round trip), and declare the
shape they need so that contract waits for old instances to go::

    try:
        pgshift.require_phase(dsn, "0042_rename_users_name", at_least="switched")
    except pgshift.FailedPreconditionError as e:
        sys.exit(f"schema not ready for this version: {e}")
    with pgshift.InstanceRegistration(dsn, "0042_rename_users_name", pgshift.Shape.NEW):
        serve()

Options are the library's (:func:`option_list`), checked by the library with
the messages the CLI and the C API give; statuses, plans and reports carry
every field of the library's JSON.
"""

import dataclasses
import datetime
import decimal
import enum
import json
import keyword
import math
import os
import weakref
from typing import Any, Callable, List, Optional, Union

from . import _pgshift
from . import errors as _errors
from .errors import (
    AbortedError,
    AlreadyExistsError,
    BusyError,
    CancelledError,
    DataLossError,
    DeadlineExceededError,
    Error,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    StatusCode,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    UnknownError,
)

__version__ = "@PROJECT_VERSION@"

__all__ = [
    "Phase",
    "Shape",
    "Driver",
    "Options",
    "OptionInfo",
    "option_list",
    "Migration",
    "MigrationStatus",
    "BackfillStatus",
    "InstanceStatus",
    "Progress",
    "PreflightReport",
    "SessionInfo",
    "DirectoryFile",
    "DirectoryReport",
    "MigratedFile",
    "MigrateReport",
    "MigrateEvent",
    "Plan",
    "PlannedStep",
    "PlannedStatement",
    "PlannedLock",
    "InstanceRegistration",
    "load_migration",
    "lint",
    "convert_sql",
    "current_phase",
    "require_phase",
    "declare_instance",
    "withdraw_instance",
] + _errors.__all__


class Phase(str, enum.Enum):
    """Where a migration stands (docs/architecture.md, "The phase ladder"). A ``str``: ``Phase.SWITCHED ==
    "switched"``, so plain names work wherever a phase is expected.

    The ladder is REGISTERED < COLUMN_ADDED < TRIGGER_INSTALLED < BACKFILLED <
    VALIDATED < SWITCHED < CONTRACTED; ROLLED_BACK is off the ladder.
    """

    REGISTERED = "registered"
    COLUMN_ADDED = "column_added"
    TRIGGER_INSTALLED = "trigger_installed"
    BACKFILLED = "backfilled"
    VALIDATED = "validated"
    SWITCHED = "switched"
    CONTRACTED = "contracted"
    ROLLED_BACK = "rolled_back"

    def __str__(self):
        return self.value

    @classmethod
    def parse(cls, value: Union["Phase", str]) -> "Phase":
        """The Phase named `value`; InvalidArgumentError naming the valid
        phases otherwise."""
        if isinstance(value, Phase):
            return value
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(p.value for p in cls)
            raise InvalidArgumentError(
                f'unknown phase "{value}"; phases are: {names}') from None

    def at_least(self, other: Union["Phase", str]) -> bool:
        """True when this phase has reached `other` on the ladder. A rolled-back
        migration satisfies only ROLLED_BACK."""
        other = Phase.parse(other)
        if Phase.ROLLED_BACK in (self, other):
            return self is other
        ladder = list(Phase)
        return ladder.index(self) >= ladder.index(other)


assert [p.value for p in Phase] == _pgshift.phase_names()


def _make(cls, d: dict, **converted):
    """An instance of dataclass `cls` from JSON object `d` (json.h), with
    `converted` replacing the fields that need more than json.loads. Every
    field of the JSON must be a field of `cls` and the other way round
    (TypeError otherwise), so a field added to the JSON cannot be dropped
    silently. The "event" tag of progress, preflight and migrate events is
    not a field. A JSON field named like a Python keyword ("from") is the
    field with a trailing underscore ("from_"), as PEP 8 suggests."""
    fields = {(k + "_" if keyword.iskeyword(k) else k): v
              for k, v in d.items() if k != "event"}
    fields.update(converted)
    return cls(**fields)


class Shape(str, enum.Enum):
    """The shape of the schema an application instance needs (check.h)."""

    OLD = "old"  # written for the schema before the migration
    NEW = "new"  # written for the schema after it

    def __str__(self):
        return self.value


@dataclasses.dataclass(frozen=True)
class BackfillStatus:
    """Backfill checkpoint of one operation."""

    operation: int
    rows_done: int
    rows_estimate: int  # estimated total rows; equals rows_done once done
    done: bool
    rows_estimated: bool  # rows_estimate is an estimate (until done)
    waiting: str  # why it held back when it last reported, as Progress.waiting
    pace: float  # share of time it worked then (the latency guard)


@dataclasses.dataclass(frozen=True)
class InstanceStatus:
    """A live application instance that declared the shape it needs."""

    instance_id: str
    shape: Shape
    description: str
    heartbeat_at: str  # ISO 8601, UTC
    expires_in_seconds: float  # until it stops counting without a refresh

    @classmethod
    def _from(cls, d: dict) -> "InstanceStatus":
        return _make(cls, d, shape=Shape(d["shape"]))


@dataclasses.dataclass(frozen=True)
class MigrationStatus:
    """A migration's row in the control tables (the JSON of ``pgshift
    --json status NAME``)."""

    name: str
    phase: Phase
    checksum: str
    created_at: str  # ISO 8601, UTC
    updated_at: str
    last_error: Optional[str]  # None when the last step succeeded
    running_step: Optional[str]  # a step started but not finished (crash)
    paused: bool  # a pause request is set (Driver.pause)
    # The file of a migration directory it was registered from (migrate,
    # baseline), and the checksum recorded for it; `baselined` when baseline
    # recorded it as applied without running it.
    file: Optional[str]  # None when registered otherwise
    file_checksum: Optional[str]
    baselined: bool
    backfill: List[BackfillStatus]
    driver: Optional[str]  # who drives it right now (status() only), or None
    instances: List[InstanceStatus]  # live declarations (status() only)

    @classmethod
    def _from(cls, d: dict) -> "MigrationStatus":
        return _make(cls, d, phase=Phase(d["phase"]),
                     backfill=[_make(BackfillStatus, b) for b in d["backfill"]],
                     instances=[InstanceStatus._from(i) for i in d["instances"]])


@dataclasses.dataclass(frozen=True)
class Progress:
    """One progress report of a long step (the backfill)."""

    migration: str
    operation: int  # index of the operation in the spec
    step: str  # phase being reached, e.g. "backfilled"
    rows_done: int  # rows covered so far (committed batches, across resumes)
    rows_estimate: int  # estimated total rows; equals rows_done once finished
    rows_per_second: float  # recent rate
    eta_seconds: float  # -1 when unknown
    finished: bool  # last report of this operation's backfill
    rows_updated: int  # rows changed by this call
    batch_rows: int  # size of the next batch
    lock_wait_ms: int  # time this call lost to lock timeouts and deadlocks
    # "" while working, else "paused", "replication_lag", "lock_contention",
    # "throttle_query" or "latency" (the latency guard rests between batches)
    waiting: str
    rows_estimated: bool  # rows_estimate is an estimate (until finished)
    pace: float  # share of time the backfill works (1: full speed)
    probe_working_ms: float  # latency guard probe p95 while batches ran (0: no guard)
    probe_resting_ms: float  # ... and while the backfill rested


@dataclasses.dataclass(frozen=True)
class SessionInfo:
    """A session holding (or waiting for) a lock on a table pgshift is about
    to lock."""

    pid: int
    state: str  # "active", "idle in transaction", ...
    user: str
    application: str
    client: str  # client address, or "local"
    transaction_seconds: float  # how long its transaction has been open
    state_seconds: float  # how long it has been in `state`
    locks: str  # lock modes it holds on the table
    query: str  # its current or last query (first 300 characters)


@dataclasses.dataclass(frozen=True)
class PreflightReport:
    """What the preflight check found before a step that takes an ACCESS
    EXCLUSIVE lock (see the ``preflight`` option)."""

    migration: str
    step: str  # phase being reached
    table: str  # quoted qualified table
    outcome: str  # "waiting", "cleared", "refused" or "gave up"
    sessions: List[SessionInfo]  # empty when the wait is over

    @classmethod
    def _from(cls, d: dict) -> "PreflightReport":
        return _make(cls, d, sessions=[_make(SessionInfo, s) for s in d["sessions"]])


@dataclasses.dataclass(frozen=True)
class PlannedLock:
    table: str  # quoted qualified name
    mode: str  # "ACCESS EXCLUSIVE", ...


@dataclasses.dataclass(frozen=True)
class PlannedStatement:
    sql: str  # exactly what advance runs
    lock: str  # strongest table lock taken, e.g. "ACCESS EXCLUSIVE"; "none"
    locks: List[PlannedLock]  # every table it locks
    when: str  # when it runs, if not every time its step runs; "" for always
    skip_if: str  # catalog condition under which a re-run skips it; "" when it always runs
    transactional: bool  # False for CREATE/DROP INDEX CONCURRENTLY
    scans_table: bool
    rewrites_table: bool
    batched: bool  # the backfill: many short transactions
    rows_estimate: int  # rows it reads or writes; 0 for catalog-only DDL
    note: str

    @classmethod
    def _from(cls, d: dict) -> "PlannedStatement":
        return _make(cls, d, locks=[_make(PlannedLock, lk) for lk in d["locks"]])


@dataclasses.dataclass(frozen=True)
class PlannedStep:
    to: Phase  # phase reached when the step commits
    operation: str
    rows_estimate: int
    hazards: List[str]
    statements: List[PlannedStatement]

    @classmethod
    def _from(cls, d: dict) -> "PlannedStep":
        return _make(cls, d, to=Phase(d["to"]),
                     statements=[PlannedStatement._from(s) for s in d["statements"]])


@dataclasses.dataclass(frozen=True)
class Plan:
    """What advance would run, step by step, and what rollback would run
    (the JSON of ``pgshift --json plan``)."""

    migration: str
    server_version: int
    notes: List[str]  # how the server's version shaped the plan; the lock discipline
    steps: List[PlannedStep]
    rollback: List[PlannedStep]

    @classmethod
    def _from(cls, d: dict) -> "Plan":
        return _make(cls, d, steps=[PlannedStep._from(s) for s in d["steps"]],
                     rollback=[PlannedStep._from(s) for s in d["rollback"]])


@dataclasses.dataclass(frozen=True)
class DirectoryFile:
    """One migration of a migration directory: a file, or a migration
    registered from a file that is no longer there ("missing")."""

    file: str  # base name, e.g. "0001_create_users.json" (as recorded, when missing)
    name: str  # the migration's name: the file name without its extension
    # "pending" (migrate runs it), "applied" (see `migration` for its phase),
    # "baselined" (recorded by baseline, never run), "changed" (the file
    # changed since it was applied; migrate refuses), "missing" (applied from
    # a file that is gone; migrate refuses)
    state: str
    out_of_order: bool  # pending, but sorts before an applied file
    checksum: Optional[str]  # sha256 of the file now; None when missing
    recorded_checksum: Optional[str]  # recorded when registered; None when not registered
    problem: Optional[str]  # why the file cannot run as it is; None when it can
    migration: Optional[MigrationStatus] = None  # when registered

    @classmethod
    def _from(cls, d: dict) -> "DirectoryFile":
        m = d.get("migration")
        return _make(cls, d, migration=None if m is None else MigrationStatus._from(m))


@dataclasses.dataclass(frozen=True)
class DirectoryReport:
    """Every file of a migration directory and its state (the JSON of
    ``pgshift --json status DIR``)."""

    directory: str
    ok: bool  # migrate would not refuse (no file has a problem)
    pending: int  # files migrate would run
    files: List[DirectoryFile]  # in byte order of name, missing ones among them
    ignored: List[str]  # other entries: README.md, sub-directories, dotfiles

    @classmethod
    def _from(cls, d: dict) -> "DirectoryReport":
        return _make(cls, d, files=[DirectoryFile._from(f) for f in d["files"]])


@dataclasses.dataclass(frozen=True)
class MigratedFile:
    """What one migration went through in a migrate() call."""

    name: str
    file: str
    from_: Phase  # phase before the call (REGISTERED when it was not registered); JSON "from"
    to: Phase  # phase after it
    registered: bool  # registered by this call

    @classmethod
    def _from(cls, d: dict) -> "MigratedFile":
        return _make(cls, d, from_=Phase(d["from"]), to=Phase(d["to"]))


@dataclasses.dataclass(frozen=True)
class MigrateReport:
    """What a migrate() call did (the JSON of ``pgshift --json migrate
    DIR``)."""

    directory: str
    migrations: List[MigratedFile]  # every migration this call moved, in order
    # The migration it stopped at without an error (contract: one not at
    # switched yet, or pending), None when it went through the whole directory
    stopped_at: Optional[str]
    stop_reason: Optional[str]

    @classmethod
    def _from(cls, d: dict) -> "MigrateReport":
        return _make(cls, d, migrations=[MigratedFile._from(m) for m in d["migrations"]])


@dataclasses.dataclass(frozen=True)
class MigrateEvent:
    """What migrate() is doing (one event per change of what it does)."""

    migration: str  # "" for events about the whole directory
    file: str
    # "waiting" (another migrate holds the directory lock; `message` names
    # it), "locked" (got it after waiting), "register", "advance" (to
    # `phase`), "reached" (`phase`), "contract", "skip" (`message` says why),
    # "stop" (`message` says why and what to do), "baseline" (recorded as
    # applied by baseline())
    action: str
    phase: str  # the phase reached or aimed at, "" when none
    message: str


#: A parsed, validated migration spec (``.name``, ``.schema``,
#: ``.operation_count``, ``.canonical_json()``).
Migration = _pgshift.Migration

MigrationLike = Union[Migration, dict, str, bytes, "os.PathLike[str]"]


def load_migration(migration: MigrationLike) -> Migration:
    """Parses and validates a migration spec without touching a database.

    `migration` is a file path (str or os.PathLike), JSON text (a str
    starting with "{", or bytes), a dict in the file's JSON form, or an
    already loaded Migration. A path ending in ".sql" is a plain SQL
    migration, converted without a database (convert_sql).
    NotFoundError when the file cannot be read, InvalidArgumentError when
    the spec is invalid.
    """
    if isinstance(migration, Migration):
        return migration
    if isinstance(migration, dict):
        try:
            text = json.dumps(migration)
        except (TypeError, ValueError) as e:
            raise InvalidArgumentError(f"migration dict is not JSON-serializable: {e}") from None
        return _pgshift.parse_migration(text, "migration dict")
    if isinstance(migration, (bytes, bytearray)):
        try:
            text = bytes(migration).decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidArgumentError(f"migration JSON is not UTF-8: {e}") from None
        return _pgshift.parse_migration(text, "migration JSON")
    if isinstance(migration, str) and migration.lstrip().startswith("{"):
        return _pgshift.parse_migration(migration, "migration JSON")
    if isinstance(migration, (str, os.PathLike)):
        # The path's bytes (a name that is not UTF-8 arrives here with
        # surrogate escapes, which a C++ string cannot take).
        return _pgshift.load_migration(os.fsencode(migration))
    raise TypeError(
        "a migration is a file path, JSON text, a dict or a pgshift.Migration, not "
        f"{type(migration).__name__}")


def lint(sql: str, origin: str = "sql", *, other_runner: bool = False) -> dict:
    """Lints the statements of `sql` as pgshift would run them (docs/sql.md),
    without a database (catalog-dependent rules assume the worst;
    Driver.lint asks the live catalog). Returns the object ``pgshift lint
    --json`` prints for one file: {"origin", "unsafe", "statements": [...]}.
    InvalidArgumentError, with the line and column, when it does not parse.
    """
    return json.loads(_pgshift.lint_json(sql, origin, bool(other_runner)))


def convert_sql(sql: str, name: str, origin: Optional[str] = None) -> Migration:
    """The migration a plain SQL migration file holding `sql` and named
    `name` (its file name without ".sql") becomes, as ``pgshift convert``
    prints it (docs/sql.md), judged without a database (Driver.convert_sql
    asks the live catalog). InvalidArgumentError naming every statement it
    refuses (line, reason, what to write instead) or a syntax error's
    position."""
    return _pgshift.convert_sql(sql, origin or f"{name}.sql", name)


@dataclasses.dataclass(frozen=True)
class OptionInfo:
    """One driver option, from the library's option list (options.h)."""

    name: str  # the keyword argument: "lock_timeout"
    flag: str  # the CLI flag without "--": "lock-timeout"
    kind: str  # "duration", "integer", "bool", "text" or "choice"
    help: str  # one line, with the default
    choices: List[str]  # the accepted values of a "choice" option


_OPTION_LIST = [_make(OptionInfo, o) for o in _pgshift.option_list()]
_OPTION_KINDS = {o.name: o for o in _OPTION_LIST}


def option_list() -> List[OptionInfo]:
    """Every option Driver and Options accept, in the library's order: the
    same list the CLI's flags and the C API's pgshift_options_set use."""
    return list(_OPTION_LIST)


def _duration_text(value: Any) -> Optional[str]:
    """The text form of a duration given as seconds, a timedelta or a
    string; None when `value` is none of those."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime.timedelta):
        return f"{value // datetime.timedelta(microseconds=1)}us"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, int):
            return f"{value}s"
        if math.isnan(value):
            return "nan"  # refused by the library, naming the option
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return format(decimal.Decimal(repr(value)), "f") + "s"
    return None


def _option_text(info: OptionInfo, value: Any) -> str:
    """`value` of option `info` in its text form; TypeError when its Python
    type does not fit the option's kind."""
    text = None
    if info.kind == "duration":
        text = _duration_text(value)
        expected = 'seconds (int or float), a datetime.timedelta or a str like "500ms"'
    elif info.kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        expected = "an int"
    elif info.kind == "bool":
        if isinstance(value, bool):
            text = "true" if value else "false"
        expected = "a bool"
    elif info.kind == "ratio":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            text = "off" if value == 0 else repr(float(value)) if isinstance(value, float) else str(value)
        elif isinstance(value, str):
            text = value
        expected = 'a number above 1 (int or float) or "off"'
    elif info.kind in ("text", "choice"):
        if isinstance(value, str):
            text = value
        expected = "a str" if info.kind == "text" else "a str, one of " + ", ".join(info.choices)
    else:
        raise NotImplementedError(
            f"option {info.name} is of kind {info.kind!r}, which this pgshift package does not "
            "know; the package and the library are out of step")
    if text is None:
        raise TypeError(f"option {info.name} takes {expected}, not {type(value).__name__}")
    return text


class Options:
    """Driver options, checked by the library (pgshift/options.h).

    ``Options(**options)`` takes every option of :func:`option_list` as a
    keyword argument, converted by its kind: a duration is seconds (int or
    float), a ``datetime.timedelta`` or a string like ``"500ms"``; an
    integer an ``int``; a ratio a number (``0`` or ``"off"`` for off); a
    bool a ``bool``; text and choices a ``str``. A value
    of the wrong Python type raises TypeError. Every value then goes through
    the library's SetOption, so a value that is not of its kind, or an option
    that does not exist, raises InvalidArgumentError with the library's
    message, the one the CLI and the C API give too. Ranges (a zero
    lock_timeout, a negative duration, ...) are checked when a Driver
    connects, before it connects (InvalidArgumentError naming the option).
    """

    def __init__(self, **options):
        self._o = _pgshift.Options()
        for name, value in options.items():
            self.set(name, value)

    def set(self, name: str, value: Any) -> None:
        """Sets option `name` from a Python value (see the class)."""
        info = _OPTION_KINDS.get(name)
        if info is None:
            # InvalidArgumentError with the library's unknown-option message.
            return self._o.set(name, "")
        return self._o.set(name, _option_text(info, value))

    def set_text(self, name: str, text: str) -> None:
        """Sets option `name` from its text form, as the CLI flag and
        pgshift_options_set take it ("500ms", "true", "pages", ...);
        InvalidArgumentError with the library's message when it is not of the
        option's kind."""
        if not isinstance(text, str):
            raise TypeError(f"the text form of an option is a str, not {type(text).__name__}")
        self._o.set(name, text)

    def get_text(self, name: str) -> str:
        """The text form of option `name` as the library reads it back
        (durations in the shortest exact form, e.g. "1.5s"); NotFoundError
        when there is no such option."""
        return self._o.get(name)

    def to_dict(self) -> dict:
        """Every option's text form, by name."""
        return {o.name: self._o.get(o.name) for o in _OPTION_LIST}

    def copy(self) -> "Options":
        """An independent copy."""
        out = Options()
        out._o = _pgshift.Options(self._o)
        return out

    def __repr__(self):
        return f"pgshift.Options({self.to_dict()!r})"


def _callback(callback: Optional[Callable], what: str, build: Callable[[dict], Any]):
    """`callback` wrapped to receive the object `build` makes from the JSON
    text the library reports; None stays None."""
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError(f"{what} must be callable")
    return lambda text: callback(build(json.loads(text)))


def _forward(owner: "weakref.ref", attr: str, callback: Optional[Callable]):
    """For the library: calls `attr` of the object `owner` refers to
    (weakly), while it lives; None when there is no `callback`."""
    if callback is None:
        return None

    def forward(text):
        target = owner()
        if target is not None:
            getattr(target, attr)(text)
    return forward


def _progress(callback: Optional[Callable[[Progress], Any]]):
    return _callback(callback, "progress (it receives a pgshift.Progress)",
                     lambda d: _make(Progress, d))


def _preflight(callback: Optional[Callable[[PreflightReport], Any]]):
    return _callback(callback, "on_preflight (it receives a pgshift.PreflightReport)",
                     PreflightReport._from)


def _migrate_event(callback: Optional[Callable[[MigrateEvent], Any]]):
    return _callback(callback, "on_migrate (it receives a pgshift.MigrateEvent)",
                     lambda d: _make(MigrateEvent, d))


DirectoryLike = Union[str, bytes, "os.PathLike[str]"]


def _directory(directory: DirectoryLike) -> bytes:
    """A migration directory given as str, bytes or os.PathLike, as the
    bytes the library takes (a name that is not UTF-8 included)."""
    if not isinstance(directory, (str, bytes, os.PathLike)):
        raise TypeError("a migration directory is a path (str, bytes or os.PathLike), not "
                        f"{type(directory).__name__}")
    return os.fsencode(directory)


def _ttl_seconds(ttl: Any) -> float:
    if isinstance(ttl, datetime.timedelta):
        return ttl.total_seconds()
    if isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        return float(ttl)
    raise TypeError(f"ttl is seconds (int or float) or a datetime.timedelta, not {type(ttl).__name__}")


def _shape(shape: Union[Shape, str]) -> str:
    if isinstance(shape, Shape):
        return shape.value
    if isinstance(shape, str):
        return shape  # the library refuses names other than old and new
    raise TypeError(f"a shape is a pgshift.Shape or a str, not {type(shape).__name__}")


def _name(migration: Union[str, Migration]) -> str:
    if isinstance(migration, Migration):
        return migration.name
    if isinstance(migration, str):
        return migration
    raise TypeError(f"a migration name is a str, not {type(migration).__name__}")


def _phase(value: Union[Phase, str]) -> str:
    return Phase.parse(value).value


class Driver:
    """Registers migrations, advances them step by step, rolls them back and
    reports their state: what deployment tooling uses.

    ``Driver(dsn, **options)`` connects at once (UnavailableError when the
    server cannot be reached). `dsn` is a libpq connection string or URI;
    None means $PGSHIFT_DSN, then libpq's PG* environment. `options` are the
    keyword arguments of :class:`Options` (every option of
    :func:`option_list`, e.g. ``lock_timeout=0.5``, ``preflight="refuse"``,
    ``force_contract=True``); they are checked before connecting
    (InvalidArgumentError with the library's message). ``options=`` takes an
    :class:`Options` object instead (keyword arguments then override it).
    `progress` is the default progress callback (it receives a
    :class:`Progress`); `on_preflight` receives every
    :class:`PreflightReport`; `on_migrate` is the default receiver of the
    :class:`MigrateEvent` of migrate().

    A Driver owns one connection; calls from several threads are serialized.
    Use it as a context manager, or call close().
    """

    def __init__(self, dsn: Optional[str] = None, *,
                 progress: Optional[Callable[[Progress], Any]] = None,
                 on_preflight: Optional[Callable[[PreflightReport], Any]] = None,
                 on_migrate: Optional[Callable[[MigrateEvent], Any]] = None,
                 options: Optional[Options] = None, **kwargs):
        if dsn is None:
            dsn = os.environ.get("PGSHIFT_DSN", "")
        if options is not None and not isinstance(options, Options):
            raise TypeError(f"options is a pgshift.Options, not {type(options).__name__}")
        opts = options.copy() if options is not None else Options()
        for name, value in kwargs.items():
            opts.set(name, value)
        # The callbacks live on this object, where the garbage collector sees
        # them; the library holds only forwarders with a weak reference to
        # it. A callback that refers back to whatever owns the Driver (a
        # bound method of it) then forms an ordinary cycle: once dropped, it
        # is collected and the connection closes.
        self._on_progress = _progress(progress)
        self._on_preflight = _preflight(on_preflight)
        self._on_migrate = _migrate_event(on_migrate)
        me = weakref.ref(self)
        self._d = _pgshift.Driver(dsn, opts._o, _forward(me, "_on_progress", progress),
                                  _forward(me, "_on_preflight", on_preflight),
                                  _forward(me, "_on_migrate", on_migrate))

    def __enter__(self) -> "Driver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection (and releases nothing else: every step has
        already committed). Idempotent."""
        self._d.close()

    @property
    def closed(self) -> bool:
        """True once close() has run."""
        return self._d.closed

    @property
    def server_version(self) -> int:
        """server_version_num of the server, e.g. 150004."""
        return self._d.server_version

    def init(self) -> None:
        """Creates or upgrades the control schema; idempotent."""
        self._d.init()

    def plan(self, migration: MigrationLike) -> Plan:
        """Validates `migration` against the live catalog and returns every
        step's statements and locks. Changes nothing."""
        return Plan._from(json.loads(self._d.plan(load_migration(migration))))

    def register(self, migration: MigrationLike) -> MigrationStatus:
        """Stores `migration` at phase registered. The same spec again is OK;
        the same name with another spec raises AlreadyExistsError."""
        return _status(self._d.register(load_migration(migration)))

    def advance(self, name: Union[str, Migration], to: Union[Phase, str, None] = None,
                progress: Optional[Callable[[Progress], Any]] = None) -> MigrationStatus:
        """Runs the next step of migration `name`, or every step up to `to`;
        returns once each step has committed. Safe to call again after a
        crash. BusyError when another driver holds the migration, locks
        were not granted or the preflight refused; FailedPreconditionError
        when a step failed (the state stays consistent) or contract is
        refused because old-shape instances are live (see force_contract).
        `progress` (for this call) receives a Progress after every backfill
        batch; an exception it (or on_preflight) raises is re-raised once the
        call returns (the step is not interrupted)."""
        target = None if to is None else _phase(to)
        return _status(self._d.advance(_name(name), target, _progress(progress)))

    def rollback(self, name: Union[str, Migration],
                 progress: Optional[Callable[[Progress], Any]] = None) -> MigrationStatus:
        """Undoes everything pgshift created for the migration; allowed from any
        phase before contracted; idempotent."""
        return _status(self._d.rollback(_name(name), _progress(progress)))

    def pause(self, name: Union[str, Migration]) -> None:
        """Asks the backfill of `name` to pause between batches, from any
        driver (another thread's or process's): the driver running it waits,
        reporting ``waiting == "paused"``, until resume(). The request
        persists. NotFoundError when not registered."""
        self._d.pause(_name(name))

    def resume(self, name: Union[str, Migration]) -> None:
        """Clears the pause request of `name`; NotFoundError when not
        registered."""
        self._d.resume(_name(name))

    def migrate(self, directory: DirectoryLike, to: Union[Phase, str, None] = None, *,
                contract: bool = False, allow_out_of_order: bool = False, wait: bool = True,
                progress: Optional[Callable[[Progress], Any]] = None,
                on_event: Optional[Callable[[MigrateEvent], Any]] = None) -> MigrateReport:
        """Runs the migration directory `directory` (a path): creates or
        upgrades the control schema, then registers every pending file in
        order of its name (recording its checksum) and advances each
        migration to `to` (default switched), holding the directory lock (one
        migrate or baseline per database at a time). With ``contract=True``
        (post-deploy) it contracts, in order, every migration at switched
        whose old-shape instances are gone, stopping at the first it may not
        contract (``stopped_at``). Safe to call again after any failure: it
        continues where it stopped.

        InvalidArgumentError, naming the files and changing nothing, when a
        file does not parse, an applied file changed or is missing, or a
        pending file sorts before an applied one (unless
        ``allow_out_of_order``; a contract run stops at it instead);
        FailedPreconditionError when it stops at a
        migration that conflicts with an earlier one not yet contracted, or a
        step fails (as advance); BusyError when another migrate holds the
        directory and ``wait`` is False. `progress` and `on_event` (for this
        call; default: the Driver's) receive the backfills' Progress and
        every MigrateEvent; an exception either raises is re-raised once the
        call returns."""
        target = None if to is None else _phase(to)
        return MigrateReport._from(json.loads(self._d.migrate(
            _directory(directory), target, bool(contract), bool(allow_out_of_order), bool(wait),
            _progress(progress), _migrate_event(on_event))))

    def lint(self, sql: str, origin: str = "sql", *, other_runner: bool = False) -> dict:
        """pgshift.lint() with the live catalog: whether each table exists,
        a default is volatile, a type change rewrites. Reads only; works
        before init()."""
        return json.loads(self._d.lint_json(sql, origin, bool(other_runner)))

    def convert_sql(self, sql: str, name: str, origin: Optional[str] = None) -> Migration:
        """pgshift.convert_sql() with the live catalog. Reads only; works
        before init()."""
        return self._d.convert_sql(sql, origin or f"{name}.sql", name)

    def directory_status(self, directory: DirectoryLike) -> DirectoryReport:
        """Every file of `directory` with its state (pending, applied,
        baselined, changed, missing), its migration's status and any
        problem, and the ignored entries. Reads only; works before init()
        (then every file is pending)."""
        return DirectoryReport._from(json.loads(self._d.directory_status(_directory(directory))))

    def baseline(self, directory: DirectoryLike, through: str, *,
                 on_event: Optional[Callable[[MigrateEvent], Any]] = None) -> DirectoryReport:
        """Records every file of `directory` up to and including migration
        `through` (its name or its file name) as applied, at contracted and
        marked baselined, without running anything: for a database whose
        schema already has what those files do. Files already registered are
        left as they are. InvalidArgumentError (nothing changed) when
        `through` is not a file of the directory, or a file up to it does not
        parse or changed. Returns the directory as it stands after. Each
        file recorded is a "baseline" MigrateEvent to `on_event` (for this
        call; default: the Driver's on_migrate)."""
        if not isinstance(through, str):
            raise TypeError(f"through is a migration or file name (str), not {type(through).__name__}")
        return DirectoryReport._from(json.loads(self._d.baseline(
            _directory(directory), through, _migrate_event(on_event))))

    def status(self, name: Union[str, Migration]) -> MigrationStatus:
        """The stored status of `name`, with the driver holding it now and the
        live instance declarations; NotFoundError when not registered."""
        return _status(self._d.status(_name(name)))

    def list(self) -> List[MigrationStatus]:
        """Every registered migration, by name."""
        return [MigrationStatus._from(d) for d in json.loads(self._d.list())["migrations"]]

    def current_phase(self, name: Union[str, Migration]) -> Phase:
        """The phase of `name` (one round trip)."""
        return Phase(self._d.current_phase(_name(name)))

    def require_phase(self, name: Union[str, Migration], at_least: Union[Phase, str]) -> None:
        """Returns when `name` has reached `at_least`; raises
        FailedPreconditionError saying where it stands otherwise."""
        self._d.require_phase(_name(name), _phase(at_least))


def _status(text: str) -> MigrationStatus:
    return MigrationStatus._from(json.loads(text))


def current_phase(dsn: Optional[str], name: str, control_schema: str = "pgshift") -> Phase:
    """The phase of migration `name`: one connection, one round trip.
    NotFoundError when it is not registered (or there is no control schema),
    UnavailableError when the server cannot be reached."""
    if dsn is None:
        dsn = os.environ.get("PGSHIFT_DSN", "")
    return Phase(_pgshift.current_phase(dsn, name, control_schema))


def require_phase(dsn: Optional[str], name: str, at_least: Union[Phase, str],
                  control_schema: str = "pgshift") -> None:
    """The application startup check: returns when migration `name` has
    reached `at_least`, raises FailedPreconditionError (where it stands, what
    this version needs) when not, NotFoundError when it is not registered."""
    if dsn is None:
        dsn = os.environ.get("PGSHIFT_DSN", "")
    _pgshift.require_phase(dsn, name, _phase(at_least), control_schema)


def _dsn(dsn: Optional[str]) -> str:
    return os.environ.get("PGSHIFT_DSN", "") if dsn is None else dsn


def declare_instance(dsn: Optional[str], migration: str, shape: Union[Shape, str], *,
                     instance_id: Optional[str] = None, description: str = "",
                     ttl: Union[float, datetime.timedelta] = 30,
                     control_schema: str = "pgshift") -> None:
    """Declares (or refreshes) once that this application instance needs
    `shape` of `migration`, live for `ttl` (seconds or a timedelta) from now,
    server clock. While an instance that declared Shape.OLD is live, advancing
    to contracted raises FailedPreconditionError unless force_contract.
    `instance_id` defaults to "<hostname>:<pid>"; the migration need not be
    registered yet. NotFoundError when the control schema is not set up,
    FailedPreconditionError when it is too old; InvalidArgumentError for a
    bad shape or ttl."""
    _pgshift.declare_instance(_dsn(dsn), migration, _shape(shape), instance_id, description,
                              _ttl_seconds(ttl), control_schema)


def withdraw_instance(dsn: Optional[str], migration: str, instance_id: str,
                      control_schema: str = "pgshift") -> None:
    """Removes the declaration of `instance_id` (clean shutdown); nothing
    happens when there is none."""
    _pgshift.withdraw_instance(_dsn(dsn), migration, instance_id, control_schema)


class InstanceRegistration:
    """Declares an instance and keeps the declaration live until close():
    a background thread refreshes it every ttl/3 (on its own short
    connections, without the GIL); close() stops it and withdraws the
    declaration. A context manager::

        with pgshift.InstanceRegistration(dsn, "0042_rename_users_name",
                                          pgshift.Shape.OLD, description="api v41"):
            serve()

    Declares once in the constructor, raising what declare_instance raises.
    """

    def __init__(self, dsn: Optional[str], migration: str, shape: Union[Shape, str], *,
                 instance_id: Optional[str] = None, description: str = "",
                 ttl: Union[float, datetime.timedelta] = 30, control_schema: str = "pgshift"):
        self._r = _pgshift.InstanceRegistration(_dsn(dsn), migration, _shape(shape), instance_id,
                                                description, _ttl_seconds(ttl), control_schema)

    @property
    def instance_id(self) -> str:
        """The id the registration declares."""
        return self._r.instance_id

    @property
    def last_refresh_error(self) -> Optional[Error]:
        """None when the latest refresh worked (or none has run yet), else
        the error it got (a failed refresh is retried at the next period)."""
        try:
            self._r.check_last_refresh()
        except Error as e:
            return e
        return None

    @property
    def closed(self) -> bool:
        """True once close() has withdrawn the declaration."""
        return self._r.closed

    def close(self) -> None:
        """Stops refreshing and withdraws the declaration. Idempotent."""
        self._r.close()

    def __enter__(self) -> "InstanceRegistration":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
