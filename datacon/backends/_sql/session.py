"""What the shared SQL layer needs from a backend: sessions on pooled connections."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

__all__ = ["Connector", "Params", "Session"]

Params = Mapping[str, Any]


class Session(Protocol):
    """One checked-out connection in autocommit mode (each statement commits by itself)."""

    def execute(self, sql: str, params: Params | None = None) -> int:
        """Run a statement; the number of rows it changed."""
        ...

    def fetchone(self, sql: str, params: Params | None = None) -> tuple[Any, ...] | None:
        """Run a query; its first row, or ``None``."""
        ...

    def fetchall(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        """Run a query; all its rows."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """A block whose statements commit together or not at all (nested: a savepoint)."""
        ...

    def try_execute(self, sql: str) -> str | None:
        """Run a best-effort statement in its own (sub)transaction; the driver's error text
        (secrets removed) if it failed, else ``None``. Nothing else is affected by a failure."""
        ...


class Connector(Protocol):
    """A backend's connection pool, seen by the shared layer.

    Every ``session`` block translates driver errors into datacon errors at the backend's
    one seam: a unique-key violation becomes ``ConflictError(conflict)``.
    """

    #: How many sessions can be open at once (the pool size).
    max_concurrency: int

    def session(
        self, *, write: bool = False, conflict: str = "", replica: bool = False
    ) -> AbstractContextManager[Session]:
        """A pooled connection for one operation; ``write`` marks operations that write (every
        one must: a connector with read replicas reads from the primary after a write in the
        same request context). ``replica``: a plain read (get, list, page, chain) that a read
        replica may serve, with the replication delay; schema checks and reads a write depends
        on leave it off."""
        ...

    def write_one(self, sql: str, params: Params, conflict: str = "") -> int:
        """One statement in a write session of its own: what ``with session(write=True,
        conflict=conflict) as s: return s.execute(sql, params)`` does, as one call (the
        single-statement writes, ``create_item`` and ``link_item`` among them, take it; a
        connector may make it cheaper than the block)."""
        ...

    def migration_session(self) -> AbstractContextManager[Session]:
        """A session holding the backend's migration lock (see ``_migrations.bootstrap``)."""
        ...

    def close(self) -> None:
        """Close the pool. Idempotent."""
        ...

    def stats(self) -> dict[str, int]:
        """At least ``size`` (connections open) and ``in_use`` (checked out)."""
        ...
