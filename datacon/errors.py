"""The datacon error hierarchy.

::

    DataconError
    ├── ConfigError              invalid configuration (names the field)
    ├── InvalidInputError        bad arguments to a call
    ├── ConflictError            an id or a link already exists
    ├── InvalidChainError        a response chain loops back on itself
    ├── HookRejectedError        a StorageHook.before() rejected the operation
    ├── MigrationRequiredError   the schema needs migrations and auto_migrate is off
    └── BackendError             the backend failed; ``__cause__`` is the driver error
        └── BackendUnavailableError   cannot connect, or the connection was lost
            └── PoolTimeoutError      no pooled connection within the pool timeout

Driver exceptions never escape raw: each backend translates them at one seam and
chains the original (``raise ... from exc``). Messages never contain secrets.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "ConfigError",
    "ConflictError",
    "DataconError",
    "HookRejectedError",
    "InvalidChainError",
    "InvalidInputError",
    "MigrationRequiredError",
    "PoolTimeoutError",
    "http_status",
]


class DataconError(Exception):
    """Base class of every error datacon raises."""


class ConfigError(DataconError, ValueError):
    """Invalid configuration.

    :ivar field: dotted path of the offending field (``"postgres.pool_max"``), or ``""``.
    :ivar reason: the message without the field prefix.
    """

    def __init__(self, reason: str, field: str = "") -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str]]:
        return (type(self), (self.reason, self.field))


class InvalidInputError(DataconError, ValueError):
    """A call received an argument it cannot accept (negative limit, naive datetime, ...)."""


class ConflictError(DataconError):
    """A record with this id, or this link, already exists; nothing was changed."""


class InvalidChainError(DataconError):
    """``get_response_chain`` met a cycle in ``previous_response_id`` links."""


class HookRejectedError(DataconError):
    """A storage hook rejected the operation; the backend was not called.

    :ivar reason: the hook's reason.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"rejected by storage hook: {reason}")

    def __reduce__(self) -> tuple[type[HookRejectedError], tuple[str]]:
        return (type(self), (self.reason,))


class MigrationRequiredError(DataconError):
    """Schema migrations are pending and ``auto_migrate`` is off.

    :ivar statements: the exact SQL to apply, in order (including the
        ``_schema_versions`` inserts).
    """

    def __init__(self, message: str, statements: tuple[str, ...] = ()) -> None:
        self.statements = tuple(statements)
        super().__init__(message)

    def __reduce__(self) -> tuple[type[MigrationRequiredError], tuple[str, tuple[str, ...]]]:
        return (type(self), (str(self), self.statements))


class BackendError(DataconError):
    """The storage backend failed. The driver's exception is in ``__cause__``."""


class BackendUnavailableError(BackendError):
    """The backend cannot be reached, or the connection was lost."""


class PoolTimeoutError(BackendUnavailableError, TimeoutError):
    """No pooled connection became free within the configured pool timeout."""


def http_status(error: BaseException) -> int:
    """The HTTP status a web API answers ``error`` with: 400 invalid input or configuration,
    403 rejected by a hook, 409 conflict, 422 invalid chain, 503 backend unavailable (pool
    timeout included), 500 for anything else (other backend errors, and non-datacon errors)."""
    if isinstance(error, (InvalidInputError, ConfigError)):
        return 400
    if isinstance(error, HookRejectedError):
        return 403
    if isinstance(error, ConflictError):
        return 409
    if isinstance(error, InvalidChainError):
        return 422
    if isinstance(error, BackendUnavailableError):
        return 503
    return 500
