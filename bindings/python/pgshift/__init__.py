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

Applications check the schema at startup (one round trip)::

    try:
        pgshift.require_phase(dsn, "0042_rename_users_name", at_least="switched")
    except pgshift.FailedPreconditionError as e:
        sys.exit(f"schema not ready for this version: {e}")
"""

import dataclasses
import datetime
import enum
import json
import os
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
    "Driver",
    "Migration",
    "MigrationStatus",
    "BackfillStatus",
    "Progress",
    "Plan",
    "PlannedStep",
    "PlannedStatement",
    "load_migration",
    "current_phase",
    "require_phase",
] + _errors.__all__


class Phase(str, enum.Enum):
    """Where a migration stands (design §2). A ``str``: ``Phase.SWITCHED ==
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


@dataclasses.dataclass(frozen=True)
class BackfillStatus:
    """Backfill checkpoint of one operation."""

    operation: int
    rows_done: int
    rows_estimate: int
    done: bool


@dataclasses.dataclass(frozen=True)
class MigrationStatus:
    """A migration's row in the control tables."""

    name: str
    phase: Phase
    checksum: str
    created_at: str  # ISO 8601, UTC
    updated_at: str
    last_error: Optional[str]  # None when the last step succeeded
    running_step: Optional[str]  # a step started but not finished (crash)
    backfill: List[BackfillStatus]

    @classmethod
    def _from(cls, d: dict) -> "MigrationStatus":
        d = dict(d)
        d["phase"] = Phase(d["phase"])
        d["backfill"] = [BackfillStatus(**b) for b in d["backfill"]]
        return cls(**d)


@dataclasses.dataclass(frozen=True)
class Progress:
    """One progress report of a long step (the backfill)."""

    migration: str
    operation: int  # index of the operation in the spec
    step: str  # phase being reached, e.g. "backfilled"
    rows_done: int  # rows examined so far (committed batches)
    rows_estimate: int  # estimated total rows of the table
    rows_per_second: float
    eta_seconds: float  # -1 when unknown
    finished: bool  # last report of this operation's backfill


@dataclasses.dataclass(frozen=True)
class PlannedStatement:
    sql: str  # exactly what advance runs
    lock: str  # strongest table lock taken, e.g. "ACCESS EXCLUSIVE"
    transactional: bool  # False for CREATE/DROP INDEX CONCURRENTLY
    scans_table: bool
    rewrites_table: bool
    batched: bool  # the backfill: many short transactions
    note: str


@dataclasses.dataclass(frozen=True)
class PlannedStep:
    to: Phase  # phase reached when the step commits
    operation: str
    rows_estimate: int
    hazards: List[str]
    statements: List[PlannedStatement]

    @classmethod
    def _from(cls, d: dict) -> "PlannedStep":
        d = dict(d)
        d["to"] = Phase(d["to"])
        d["statements"] = [PlannedStatement(**s) for s in d["statements"]]
        return cls(**d)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What advance would run, step by step, and what rollback would run."""

    migration: str
    server_version: int
    steps: List[PlannedStep]
    rollback: List[PlannedStep]

    @classmethod
    def _from(cls, d: dict) -> "Plan":
        return cls(
            migration=d["migration"],
            server_version=d["server_version"],
            steps=[PlannedStep._from(s) for s in d["steps"]],
            rollback=[PlannedStep._from(s) for s in d["rollback"]],
        )


#: A parsed, validated migration spec (``.name``, ``.schema``,
#: ``.operation_count``, ``.canonical_json()``).
Migration = _pgshift.Migration

MigrationLike = Union[Migration, dict, str, bytes, "os.PathLike[str]"]


def load_migration(migration: MigrationLike) -> Migration:
    """Parses and validates a migration spec without touching a database.

    `migration` is a file path (str or os.PathLike), JSON text (a str
    starting with "{", or bytes), a dict in the file's JSON form, or an
    already loaded Migration. NotFoundError when the file cannot be read,
    InvalidArgumentError when the spec is invalid.
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
        return _pgshift.parse_migration(bytes(migration).decode("utf-8"), "migration JSON")
    if isinstance(migration, str) and migration.lstrip().startswith("{"):
        return _pgshift.parse_migration(migration, "migration JSON")
    if isinstance(migration, (str, os.PathLike)):
        return _pgshift.load_migration(os.fspath(migration))
    raise TypeError(
        "a migration is a file path, JSON text, a dict or a pgshift.Migration, not "
        f"{type(migration).__name__}")


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"option {name} is a duration: seconds (int/float) or a datetime.timedelta")


_DURATION_OPTIONS = (
    "lock_timeout",
    "statement_timeout",
    "long_statement_timeout",
    "retry_initial_backoff",
    "retry_max_backoff",
    "retry_deadline",
    "backfill_target_batch_time",
    "backfill_batch_delay",
    "max_replication_lag",
)
_INT_OPTIONS = (
    "backfill_batch_rows",
    "backfill_min_batch_rows",
    "backfill_max_batch_rows",
    "backfill_max_batches",
)
_STR_OPTIONS = ("control_schema", "driver_name")


def _options(options: dict) -> dict:
    out = {}
    for key, value in options.items():
        if key in _DURATION_OPTIONS:
            out[key] = _seconds(key, value)
        elif key in _INT_OPTIONS:
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"option {key} is an int")
            out[key] = value
        elif key in _STR_OPTIONS:
            if not isinstance(value, str):
                raise TypeError(f"option {key} is a str")
            out[key] = value
        else:
            known = ", ".join(_STR_OPTIONS + _DURATION_OPTIONS + _INT_OPTIONS)
            raise TypeError(f"unknown pgshift option {key!r}; options are: {known}")
    return out


def _progress(callback: Optional[Callable[[Progress], Any]]):
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError("progress must be callable (it receives a pgshift.Progress)")
    return lambda d: callback(Progress(**d))


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
    None means $PGSHIFT_DSN, then libpq's PG* environment. Options (see
    pgshift/options.h; durations in seconds or as datetime.timedelta):
    control_schema, driver_name, lock_timeout, statement_timeout,
    long_statement_timeout, retry_initial_backoff, retry_max_backoff,
    retry_deadline, backfill_batch_rows, backfill_target_batch_time,
    backfill_min_batch_rows, backfill_max_batch_rows, backfill_batch_delay,
    max_replication_lag, backfill_max_batches. `progress` is the default
    progress callback (it receives a :class:`Progress`).

    A Driver owns one connection; calls from several threads are serialized.
    Use it as a context manager, or call close().
    """

    def __init__(self, dsn: Optional[str] = None, *,
                 progress: Optional[Callable[[Progress], Any]] = None, **options):
        if dsn is None:
            dsn = os.environ.get("PGSHIFT_DSN", "")
        self._d = _pgshift.Driver(dsn, _options(options), _progress(progress))

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
        return Plan._from(self._d.plan(load_migration(migration)))

    def register(self, migration: MigrationLike) -> MigrationStatus:
        """Stores `migration` at phase registered. The same spec again is OK;
        the same name with another spec raises AlreadyExistsError."""
        return MigrationStatus._from(self._d.register(load_migration(migration)))

    def advance(self, name: Union[str, Migration], to: Union[Phase, str, None] = None,
                progress: Optional[Callable[[Progress], Any]] = None) -> MigrationStatus:
        """Runs the next step of migration `name`, or every step up to `to`;
        returns once each step has committed. Safe to call again after a
        crash. BusyError when another driver holds the migration or locks
        were not granted; FailedPreconditionError when a step failed (the
        state stays consistent). `progress` (for this call) receives a
        Progress after every backfill batch; an exception it raises is
        re-raised once the call returns (the step is not interrupted)."""
        target = None if to is None else _phase(to)
        return MigrationStatus._from(self._d.advance(_name(name), target, _progress(progress)))

    def rollback(self, name: Union[str, Migration],
                 progress: Optional[Callable[[Progress], Any]] = None) -> MigrationStatus:
        """Undoes everything pgshift created for the migration; allowed from any
        phase before contracted; idempotent."""
        return MigrationStatus._from(self._d.rollback(_name(name), _progress(progress)))

    def status(self, name: Union[str, Migration]) -> MigrationStatus:
        """The stored status of `name`; NotFoundError when not registered."""
        return MigrationStatus._from(self._d.status(_name(name)))

    def list(self) -> List[MigrationStatus]:
        """Every registered migration, by name."""
        return [MigrationStatus._from(d) for d in self._d.list()]

    def current_phase(self, name: Union[str, Migration]) -> Phase:
        """The phase of `name` (one round trip)."""
        return Phase(self._d.current_phase(_name(name)))

    def require_phase(self, name: Union[str, Migration], at_least: Union[Phase, str]) -> None:
        """Returns when `name` has reached `at_least`; raises
        FailedPreconditionError saying where it stands otherwise."""
        self._d.require_phase(_name(name), _phase(at_least))


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
