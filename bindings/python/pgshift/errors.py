"""Exceptions raised by pgshift: one class per status code.

Every error is a :class:`pgshift.Error` carrying ``.code`` (a
:class:`StatusCode`), ``.sqlstate`` (the server's SQLSTATE such as ``"55P03"``,
or ``None``) and ``.exit_code`` (what the ``pgshift`` CLI would exit with).
Catch the subclass that tells you what to do::

    try:
        driver.advance("0042_rename_users_name", to="validated")
    except pgshift.BusyError:            # another driver, or locks not granted
        retry_later()
    except pgshift.FailedPreconditionError as e:
        print("step failed, state is consistent:", e)
"""

import enum

__all__ = [
    "StatusCode",
    "Error",
    "CancelledError",
    "UnknownError",
    "InvalidArgumentError",
    "DeadlineExceededError",
    "NotFoundError",
    "AlreadyExistsError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "FailedPreconditionError",
    "AbortedError",
    "BusyError",
    "OutOfRangeError",
    "UnimplementedError",
    "InternalError",
    "UnavailableError",
    "DataLossError",
    "UnauthenticatedError",
]


class StatusCode(enum.IntEnum):
    """The absl::StatusCode values (and PGSHIFT_* codes of the C API)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# CLI exit codes (docs/cli.md): 2 bad input, 4 busy, 1 anything else.
_EXIT_CODES = {
    StatusCode.OK: 0,
    StatusCode.INVALID_ARGUMENT: 2,
    StatusCode.NOT_FOUND: 2,
    StatusCode.ALREADY_EXISTS: 2,
    StatusCode.OUT_OF_RANGE: 2,
    StatusCode.ABORTED: 4,
    StatusCode.DEADLINE_EXCEEDED: 4,
    StatusCode.RESOURCE_EXHAUSTED: 4,
}


class Error(Exception):
    """Base class of every pgshift error.

    Attributes:
        code: the :class:`StatusCode`.
        message: the error message (also ``str(error)``).
        sqlstate: the server's SQLSTATE when the error came from the server,
            else ``None``.
    """

    code = StatusCode.UNKNOWN

    def __init__(self, message, sqlstate=None, code=None):
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate or None
        if code is not None:
            self.code = StatusCode(code)

    @property
    def exit_code(self):
        """The exit code the pgshift CLI uses for this error (1, 2 or 4)."""
        return _EXIT_CODES.get(self.code, 1)

    def __repr__(self):
        extra = f", sqlstate={self.sqlstate!r}" if self.sqlstate else ""
        return f"{type(self).__name__}({self.message!r}{extra})"


class CancelledError(Error):
    code = StatusCode.CANCELLED


class UnknownError(Error):
    code = StatusCode.UNKNOWN


class InvalidArgumentError(Error):
    """Bad migration spec, phase name or argument; nothing was changed."""

    code = StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(Error):
    """Locks were not acquired before the retry deadline; nothing was left
    half-done. Retry later."""

    code = StatusCode.DEADLINE_EXCEEDED


class NotFoundError(Error):
    """The migration (or its file, table, column) does not exist."""

    code = StatusCode.NOT_FOUND


class AlreadyExistsError(Error):
    """The name is taken: e.g. the same migration name with another spec."""

    code = StatusCode.ALREADY_EXISTS


class PermissionDeniedError(Error):
    code = StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(Error):
    code = StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(Error):
    """Wrong phase for the call, a step failed (the state is consistent), the
    control schema is missing, or the schema is not ready for this version."""

    code = StatusCode.FAILED_PRECONDITION


class AbortedError(Error):
    """Busy: another driver holds the migration, or a lock timeout,
    serialization failure or deadlock. Retry later."""

    code = StatusCode.ABORTED


#: Another name for :class:`AbortedError` ("busy", CLI exit code 4).
BusyError = AbortedError


class OutOfRangeError(Error):
    code = StatusCode.OUT_OF_RANGE


class UnimplementedError(Error):
    code = StatusCode.UNIMPLEMENTED


class InternalError(Error):
    code = StatusCode.INTERNAL


class UnavailableError(Error):
    """The server cannot be reached or the connection was lost; re-run."""

    code = StatusCode.UNAVAILABLE


class DataLossError(Error):
    code = StatusCode.DATA_LOSS


class UnauthenticatedError(Error):
    code = StatusCode.UNAUTHENTICATED


_BY_CODE = {
    cls.code: cls
    for cls in (
        CancelledError,
        UnknownError,
        InvalidArgumentError,
        DeadlineExceededError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        AbortedError,
        OutOfRangeError,
        UnimplementedError,
        InternalError,
        UnavailableError,
        DataLossError,
        UnauthenticatedError,
    )
}


def _error_for(code, message, sqlstate):
    """The exception instance for a non-OK status (called by _pgshift)."""
    try:
        status_code = StatusCode(code)
    except ValueError:
        status_code = StatusCode.UNKNOWN
    cls = _BY_CODE.get(status_code, UnknownError)
    return cls(message, sqlstate=sqlstate or None)
