"""A small pool of sqlite3 connections, safe to share between threads."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from datacon.backends._sql import Params
from datacon.config import SqliteConfig
from datacon.errors import BackendUnavailableError, MigrationRequiredError, PoolTimeoutError

from .errors import convert, translate

__all__ = ["SqliteConnector", "SqliteSession"]

MEMORY = ":memory:"


class SqliteSession:
    """One pooled connection in autocommit mode (``isolation_level=None``).

    Statements that return no rows run on one cursor kept for the connection's lifetime
    (``conn.execute`` makes a cursor per call). Queries still get a cursor each: a reused
    cursor would keep a partly read SELECT open, and with it a read snapshot, while the
    connection sits idle in the pool."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._cur = conn.cursor()
        self._savepoints = 0

    def execute(self, sql: str, params: Params | None = None) -> int:
        return self._cur.execute(sql, params or {}).rowcount

    def fetchone(self, sql: str, params: Params | None = None) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._conn.execute(sql, params or {}).fetchone()
        return row

    def fetchall(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params or {}).fetchall()

    def try_execute(self, sql: str) -> str | None:
        try:
            with self.transaction():
                self._conn.execute(sql)
        except sqlite3.Error as exc:
            return str(exc)
        return None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` (the write lock up front, so it never fails half-way with
        "database is locked"); inside a transaction already, a savepoint."""
        conn = self._conn
        if not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
            return
        self._savepoints += 1
        name = f"dc_sp{self._savepoints}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        finally:
            self._savepoints -= 1
        conn.execute(f"RELEASE {name}")


class _Connection(sqlite3.Connection):
    """A pooled connection, which keeps the session every block on it hands out (a session
    holds only the connection, its cursor and the savepoint depth, which is 0 between blocks),
    made with the connection."""

    datacon_session: SqliteSession


class SqliteConnector:
    """Up to ``pool_max`` connections to one database file (one for ``":memory:"``).

    WAL lets readers run beside the writer. Writers of this process take one lock (so they
    queue here rather than spin in SQLite's busy handler) before taking a connection (so a
    waiting writer never holds one); other processes are waited for up to
    ``busy_timeout_secs``. ``":memory:"`` is one connection behind the pool, so every
    caller sees the same database.
    """

    def __init__(self, config: SqliteConfig) -> None:
        self.path = config.path
        self.memory = config.path == MEMORY
        self.max_concurrency = 1 if self.memory else config.pool_max
        self._timeout = config.busy_timeout_secs
        self._idle: list[_Connection] = []
        self._open = 0
        self._in_use = 0
        self._closed = False
        self._waiting = 0  # callers blocked in _checkout: checkin notifies only when there are some
        self._writers_waiting = 0  # callers blocked on the writer lock (for pool_stats only)
        self._wait_secs = 0.0  # cumulative time blocked in either, for pool_stats' wait_ms
        # The fast paths take the bare lock; only waiting goes through the condition.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._write_lock = threading.Lock()

    def _connect(self) -> _Connection:
        with translate():
            conn = sqlite3.connect(
                self.path,
                timeout=self._timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
                factory=_Connection,
            )
            try:
                if not self.memory:
                    conn.execute("PRAGMA journal_mode=WAL")
                    # Durable against application crashes; a power loss may lose the last
                    # transactions (never corrupts). The usual WAL setting.
                    conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
                conn.datacon_session = SqliteSession(conn)
            except BaseException:
                conn.close()
                raise
        return conn

    def _checkout(self) -> _Connection:
        deadline: float | None = None
        with self._lock:
            while True:
                if self._closed:
                    raise BackendUnavailableError("SQLite storage is closed")
                if self._idle:
                    self._in_use += 1
                    return self._idle.pop()
                if self._open < self.max_concurrency:
                    self._open += 1
                    self._in_use += 1
                    break
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._timeout
                remaining = deadline - now
                if remaining <= 0:
                    raise PoolTimeoutError(
                        f"SQLite: no pooled connection became free within {self._timeout:g} s "
                        f"(pool_max={self.max_concurrency})"
                    )
                self._waiting += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiting -= 1
                    self._wait_secs += time.monotonic() - now
        try:
            return self._connect()
        except BaseException:
            with self._lock:
                self._open -= 1
                self._in_use -= 1
                self._cond.notify()
            raise

    def _take_write_lock(self) -> None:
        """The writer lock, waiting for it at most ``busy_timeout_secs`` (``PoolTimeoutError``)."""
        if not self._write_lock.acquire(False) and not self._wait_for_writer():  # positional: no keyword parsing
            raise PoolTimeoutError(f"SQLite: the write lock did not free up within {self._timeout:g} s")

    def _wait_for_writer(self) -> bool:
        # The slow path of taking the writer lock: counted and timed for pool_stats.
        with self._lock:
            self._writers_waiting += 1
        started = time.monotonic()
        try:
            return self._write_lock.acquire(timeout=self._timeout)
        finally:
            with self._lock:
                self._writers_waiting -= 1
                self._wait_secs += time.monotonic() - started

    def _checkin(self, conn: _Connection) -> None:
        if conn.in_transaction:  # an interrupted block: never hand out an open transaction
            conn.rollback()
        with self._lock:
            self._in_use -= 1
            if self._closed:
                self._open -= 1
                conn.close()
            else:
                self._idle.append(conn)
            if self._waiting:
                self._cond.notify()

    def session(self, *, write: bool = False, conflict: str = "", replica: bool = False) -> _SessionBlock:
        """A pooled connection for one operation (``write``: under the writer lock); sqlite3
        errors raised in the block become datacon errors (a duplicate key ``ConflictError(conflict)``).
        SQLite has no replicas (``replica`` is ignored)."""
        return _SessionBlock(self, write, conflict)

    def write_one(self, sql: str, params: Params, conflict: str = "") -> int:
        """``session(write=True, conflict=conflict)`` running one statement, in one call: the
        same writer lock, checkout, error translation and checkin, without the block object
        and its ``__enter__``/``__exit__`` (about 1 us of a 30 us write)."""
        self._take_write_lock()
        try:
            conn = self._checkout()
            try:
                return conn.datacon_session._cur.execute(sql, params).rowcount
            except sqlite3.Error as exc:
                raise convert(exc, conflict) from exc
            finally:
                self._checkin(conn)
        finally:
            self._write_lock.release()

    @contextmanager
    def migration_session(self) -> Iterator[SqliteSession]:
        """A write session inside one IMMEDIATE transaction: the whole start-up (tables,
        version rows, migrations) commits at once, and other processes wait for it.

        ``MigrationRequiredError`` still commits what was created before it (missing tables,
        ``_schema_versions``), as on Postgres, so the listed SQL can be applied by hand.
        """
        with self.session(write=True) as session:
            pending: MigrationRequiredError | None = None
            with session.transaction():
                try:
                    yield session
                except MigrationRequiredError as exc:
                    pending = exc  # leave the block normally: COMMIT, then raise it
            if pending is not None:
                raise pending

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "size": self._open,
                "in_use": self._in_use,
                "max": self.max_concurrency,
                "waiting": self._waiting + self._writers_waiting,
                "wait_ms": int(self._wait_secs * 1000),  # cumulative, since the pool opened
            }


class _SessionBlock:
    """One ``session()`` block as a single context manager (no generator frames per call):
    the writer lock, then checkout; on exit, error translation, checkin, then the lock."""

    __slots__ = ("_conflict", "_conn", "_connector", "_write")

    def __init__(self, connector: SqliteConnector, write: bool, conflict: str) -> None:
        self._connector = connector
        self._write = write
        self._conflict = conflict

    def __enter__(self) -> SqliteSession:
        connector = self._connector
        if self._write:
            connector._take_write_lock()
        try:
            conn = self._conn = connector._checkout()
        except BaseException:
            if self._write:
                connector._write_lock.release()
            raise
        return conn.datacon_session

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        connector = self._connector
        try:
            try:
                if isinstance(exc, sqlite3.Error):
                    raise convert(exc, self._conflict) from exc
            finally:
                connector._checkin(self._conn)
        finally:
            if self._write:
                connector._write_lock.release()
