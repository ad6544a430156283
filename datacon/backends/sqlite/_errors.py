"""The one place where sqlite3 exceptions become datacon errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from datacon.errors import BackendError, BackendUnavailableError, ConflictError

__all__ = ["translate"]

_DUPLICATE = frozenset({"SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE"})
_UNAVAILABLE = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_FULL"})


def _name(exc: sqlite3.Error) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


@contextmanager
def translate(conflict: str = "") -> Iterator[None]:
    """Re-raise sqlite3 errors raised inside the block as datacon errors (chained).

    A primary-key or unique violation becomes ``ConflictError(conflict)``; a busy, locked,
    unopenable, read-only or full database ``BackendUnavailableError``; anything else
    ``BackendError``.
    """
    try:
        yield
    except sqlite3.Error as exc:
        name = _name(exc)
        if isinstance(exc, sqlite3.IntegrityError) and name in _DUPLICATE:
            raise ConflictError(conflict or f"SQLite: duplicate key ({exc})") from exc
        if any(name.startswith(prefix) for prefix in _UNAVAILABLE):
            raise BackendUnavailableError(f"SQLite database unavailable: {exc}") from exc
        raise BackendError(f"SQLite error: {type(exc).__name__}: {exc}") from exc
