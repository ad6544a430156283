"""The one place where sqlite3 exceptions become datacon errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from datacon.errors import BackendError, BackendUnavailableError, ConflictError

__all__ = ["convert", "translate"]

_DUPLICATE = frozenset({"SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE"})
_UNAVAILABLE = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_FULL"})


def _name(exc: sqlite3.Error) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


def convert(exc: sqlite3.Error, conflict: str = "") -> BackendError | ConflictError:
    """The datacon error for a sqlite3 exception (the caller chains it).

    A primary-key or unique violation becomes ``ConflictError(conflict)``; a busy, locked,
    unopenable, read-only or full database ``BackendUnavailableError``; anything else
    ``BackendError``.
    """
    name = _name(exc)
    if isinstance(exc, sqlite3.IntegrityError) and name in _DUPLICATE:
        return ConflictError(conflict or f"SQLite: duplicate key ({exc})")
    if any(name.startswith(prefix) for prefix in _UNAVAILABLE):
        return BackendUnavailableError(f"SQLite database unavailable: {exc}")
    return BackendError(f"SQLite error: {type(exc).__name__}: {exc}")


@contextmanager
def translate(conflict: str = "") -> Iterator[None]:
    """Re-raise sqlite3 errors raised inside the block as datacon errors (chained), as
    :func:`convert` maps them."""
    try:
        yield
    except sqlite3.Error as exc:
        raise convert(exc, conflict) from exc
