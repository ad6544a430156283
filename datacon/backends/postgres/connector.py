"""Sessions over a ``psycopg_pool.ConnectionPool`` of autocommit connections."""

from __future__ import annotations

import logging
import math
import select
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any

import psycopg
import psycopg_pool
from psycopg import errors as pgerrors
from psycopg.abc import RV, PQGen

from datacon.backends._sql import Params
from datacon.config import PostgresConfig
from datacon.errors import BackendUnavailableError

from .errors import DRIVER_ERRORS, Scrubber, check_url, convert, hide_in_driver_logs, translate

__all__ = ["MIGRATION_LOCK", "PostgresConnector", "PostgresSession"]

log = logging.getLogger(__name__)

#: Upstream's advisory-lock key, the ASCII of "smg_migr" (0x736D675F6D696772).
MIGRATION_LOCK = 0x736D675F6D696772


class PostgresSession:
    """One pooled connection in autocommit mode: a statement is one round trip, no COMMIT."""

    def __init__(self, conn: psycopg.Connection[Any], scrub: Scrubber) -> None:
        self._conn = conn
        self._scrub = scrub

    def execute(self, sql: str, params: Params | None = None) -> int:
        return self._conn.execute(sql, params).rowcount

    def fetchone(self, sql: str, params: Params | None = None) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._conn.execute(sql, params).fetchone()
        return row

    def fetchall(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def transaction(self) -> AbstractContextManager[None]:
        """BEGIN ... COMMIT (ROLLBACK on error); nested, a savepoint."""
        return _transaction(self._conn)

    def try_execute(self, sql: str) -> str | None:
        try:
            with self._conn.transaction():
                self._conn.execute(sql)
        except psycopg.Error as exc:
            return self._scrub(str(exc))
        return None


@contextmanager
def _transaction(conn: psycopg.Connection[Any]) -> Iterator[None]:
    with conn.transaction():
        yield


class _TimedConnection(psycopg.Connection[Any]):
    """A connection whose every wait for the server is bounded by ``read_timeout``.

    libpq has no read timeout: a server that stops answering while the kernel keeps the
    TCP connection up (a frozen process, a hung host behind a live proxy) would block the
    caller forever. psycopg's ``wait`` takes a timeout; on expiry the connection is in an
    unknown state, so it is closed (the pool then discards it) and the caller gets an
    ``OperationalError``, which the error seam turns into ``BackendUnavailableError``.
    """

    read_timeout: float | None = None

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        limit = self.read_timeout if timeout is None else timeout
        try:
            return super().wait(gen, interval=interval, timeout=limit)
        except pgerrors._WaitTimeout:  # psycopg's own signal that `timeout` expired
            self.pgconn.finish()
            raise psycopg.OperationalError(f"no answer from the server within {limit:g} s") from None


def _connection_class(read_timeout: float | None) -> type[psycopg.Connection[Any]]:
    return type("DataconConnection", (_TimedConnection,), {"read_timeout": read_timeout})


class PostgresConnector:
    """A pool of ``pool_max`` connections, opened (and waited for) at construction.

    ``pool_timeout_secs`` bounds the wait for a free connection (``PoolTimeoutError``);
    ``connect_timeout_secs`` bounds each connection attempt and the initial open.
    """

    def __init__(self, config: PostgresConfig) -> None:
        self._connect_timeout = max(2, math.ceil(config.connect_timeout_secs))  # libpq's minimum is 2 s
        self._transaction_pooling = config.transaction_pooling
        if config.pool is not None:
            # The application's pool: borrowed, never closed (see _BorrowedSessionBlock).
            self._pool: psycopg_pool.ConnectionPool[Any] = config.pool
            self._owned = False
            self.max_concurrency = self._pool.max_size
            self._timeout = self._pool.timeout
            self._url = self._pool.conninfo
            self._scrub: Scrubber = Scrubber(self._url)
            self._unhide = hide_in_driver_logs(self._scrub)
            return
        self._owned = True
        self.max_concurrency = config.pool_max
        self._timeout = config.pool_timeout_secs
        self._scrub = check_url(config.db_url)
        self._url = config.db_url
        self._unhide = hide_in_driver_logs(self._scrub)
        connect_kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": self._connect_timeout}
        if config.transaction_pooling:
            # A transaction-mode pooler runs each transaction on whichever server connection is
            # free: a statement prepared on one is unknown (or already taken) on the next.
            connect_kwargs["prepare_threshold"] = None
        self._pool = psycopg_pool.ConnectionPool(
            config.db_url,
            min_size=config.pool_min,
            max_size=config.pool_max,
            timeout=config.pool_timeout_secs,
            max_idle=config.max_idle_secs,
            max_lifetime=config.max_lifetime_secs,
            check=psycopg_pool.ConnectionPool.check_connection if config.check_connection else None,
            kwargs=connect_kwargs,
            connection_class=_connection_class(config.read_timeout_secs),
            name="datacon",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=config.connect_timeout_secs)
        except psycopg_pool.PoolTimeout as exc:
            self._pool.close()
            try:
                raise self._why_not(exc) from exc
            finally:
                self._unhide()

    def _why_not(self, timeout: Exception) -> Exception:
        # The pool only says it timed out; one direct attempt gives the server's reason
        # (wrong password, unknown database, refused) for the message, password scrubbed.
        try:
            with translate("", self._scrub, self._timeout):
                psycopg.connect(self._url, connect_timeout=self._connect_timeout).close()
        except BackendUnavailableError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - any other failure: report what it was
            return exc
        return BackendUnavailableError(
            f"Postgres unavailable: the pool could not open a connection within {self._connect_timeout} s"
        )

    def session(self, *, write: bool = False, conflict: str = "") -> _SessionBlock:
        """A pooled connection for one operation; driver and pool errors raised in the block
        (or by the checkout and checkin) become datacon errors (a unique violation
        ``ConflictError(conflict)``)."""
        return _SessionBlock(self, conflict) if self._owned else _BorrowedSessionBlock(self, conflict)

    @contextmanager
    def migration_session(self) -> Iterator[PostgresSession]:
        """A session holding ``pg_advisory_lock(0x736D675F6D696772)`` (released on exit, even
        on error), so processes starting at once bootstrap one after the other.

        With ``transaction_pooling`` the whole block is one transaction holding
        ``pg_advisory_xact_lock`` instead (its migrations nest as savepoints): a pooler may
        send the unlock to another server connection than the lock, while COMMIT/ROLLBACK
        releases a transaction-scoped lock where it was taken.
        """
        if self._transaction_pooling:
            with self.session() as session, session.transaction():
                session.execute("SELECT pg_advisory_xact_lock(%(key)s)", {"key": MIGRATION_LOCK})
                yield session
            return
        with self.session() as session:
            session.execute("SELECT pg_advisory_lock(%(key)s)", {"key": MIGRATION_LOCK})
            try:
                yield session
            finally:
                try:
                    session.execute("SELECT pg_advisory_unlock(%(key)s)", {"key": MIGRATION_LOCK})
                except psycopg.Error as exc:  # a broken connection has dropped its session locks already
                    log.warning("could not release the migration lock: %s", self._scrub(str(exc)))

    def close(self) -> None:
        """Close the pool datacon opened; an application's own pool is left open."""
        if self._owned:
            self._pool.close()
        self._unhide()

    def stats(self) -> dict[str, int]:
        stats = self._pool.get_stats()
        size = stats.get("pool_size", 0)
        return {
            "size": size,
            "in_use": size - stats.get("pool_available", 0),
            "max": self.max_concurrency,
            "waiting": stats.get("requests_waiting", 0),
            # Cumulative, since the pool opened (psycopg_pool's counter; datacon.pool.wait_time).
            "wait_ms": stats.get("requests_wait_ms", 0),
        }


class _SessionBlock:
    """One ``session()`` block as a single context manager: ``getconn`` on entry, ``putconn``
    on exit, errors translated by the seam's ``convert``.

    Not ``pool.connection()``: its ``with conn:`` block calls COMMIT or ROLLBACK on exit,
    which sends nothing on an idle autocommit connection yet costs about 2.6 us per call;
    ``putconn`` already rolls back a connection left in a transaction and discards a
    broken one.
    """

    __slots__ = ("_conflict", "_conn", "_connector")

    def __init__(self, connector: PostgresConnector, conflict: str) -> None:
        self._connector = connector
        self._conflict = conflict

    def __enter__(self) -> PostgresSession:
        connector = self._connector
        pool = connector._pool
        try:
            conn = pool.getconn()
            # Idle connections the server closed (a restart, pg_terminate_backend, an idle
            # timeout) are replaced before use, so the first call after a restart does not fail;
            # every idle connection may be dead then, hence the loop. Nothing is ever re-sent:
            # a statement that fails once it was sent still fails (writes stay exactly-once).
            for _ in range(connector.max_concurrency):
                if not _closed_by_server(conn):
                    break
                conn.close()
                pool.putconn(conn)  # the pool discards a closed connection and opens another
                conn = pool.getconn()
        except DRIVER_ERRORS as exc:
            raise convert(exc, self._conflict, connector._scrub, connector._timeout) from exc
        self._conn = conn
        return PostgresSession(conn, connector._scrub)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        connector = self._connector
        try:
            connector._pool.putconn(self._conn)
        except DRIVER_ERRORS as put_exc:
            raise convert(put_exc, self._conflict, connector._scrub, connector._timeout) from put_exc
        if isinstance(exc, DRIVER_ERRORS):
            raise convert(exc, self._conflict, connector._scrub, connector._timeout) from exc


class _BorrowedSessionBlock(_SessionBlock):
    """A session on a connection of the application's pool, made fit for datacon while it is
    held: autocommit on (every statement commits by itself) and, with ``transaction_pooling``,
    no prepared statements; both settings are put back before the connection is returned."""

    __slots__ = ("_saved",)

    def __enter__(self) -> PostgresSession:
        session = super().__enter__()
        conn = self._conn
        self._saved = (conn.autocommit, conn.prepare_threshold)
        if self._connector._transaction_pooling:
            conn.prepare_threshold = None
        if not conn.autocommit:
            try:
                conn.autocommit = True  # no round trip: psycopg just stops sending BEGIN
            except DRIVER_ERRORS as exc:
                self.__exit__(type(exc), exc, None)  # returns the connection, raises the datacon error
                raise
        return session

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        conn = self._conn
        autocommit, threshold = self._saved
        if not conn.closed:
            try:
                conn.prepare_threshold = threshold
                if conn.autocommit != autocommit:
                    conn.autocommit = autocommit
            except psycopg.Error:
                conn.close()  # the pool discards it rather than hand it out half set
        super().__exit__(exc_type, exc, tb)


def _closed_by_server(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle pooled connection is dead: closed, or closed by the server since its last use.

    An idle connection has nothing to read unless the server wrote to it: usually its last
    words (57P01 "terminating connection due to administrator command") and end-of-file. A
    zero-timeout poll of the socket answers the usual case in about half a microsecond, with no
    round trip; only a readable socket is checked by an empty query (which also consumes a
    harmless asynchronous notice). psycopg_pool's ``check`` would cost a round trip on every
    checkout, and back off a second or more between two dead connections.
    """
    try:
        poller = select.poll()
        poller.register(conn.pgconn.socket, select.POLLIN)
        if not poller.poll(0):
            return False
        conn.execute("")
    except (psycopg.Error, OSError):
        return True
    return False
