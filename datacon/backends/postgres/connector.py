"""Sessions over a ``psycopg_pool.ConnectionPool`` of autocommit connections (and, with
``read_urls``, one more pool per read replica)."""

from __future__ import annotations

import itertools
import logging
import math
import re
import select
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any

import psycopg
import psycopg_pool
from psycopg import errors as pgerrors
from psycopg.abc import RV, PQGen
from psycopg.adapt import PyFormat, Transformer
from psycopg.generators import execute as pq_execute
from psycopg.pq import DiagnosticField, ExecStatus

from datacon.backends._sql import Params
from datacon.config import PostgresConfig
from datacon.context import note_write, wrote_here
from datacon.errors import BackendUnavailableError

from .errors import DRIVER_ERRORS, Scrubber, check_url, convert, hide_in_driver_logs, translate

__all__ = ["MIGRATION_LOCK", "PostgresConnector", "PostgresSession"]

log = logging.getLogger(__name__)

#: Upstream's advisory-lock key, the ASCII of "smg_migr" (0x736D675F6D696772).
MIGRATION_LOCK = 0x736D675F6D696772

#: How long a read replica that could not be reached is skipped before it is tried again.
REPLICA_RETRY_SECS = 5.0

#: How long the pool retries (backing off from 1 s) to replace a connection it could not open
#: before it gives up until the next call needs one. psycopg_pool's default (5 minutes) lets
#: the back-off grow to minutes: after a 15 s outage (a primary killed, its standby promoted
#: by a failover manager) the first write came 12 s after the promotion. Given up after 2 s,
#: every call that finds no connection starts a new attempt, so the pool follows the server
#: back within about a second.
RECONNECT_SECS = 2.0


class _MostRecentFirst(deque[Any]):
    """The idle connections of a :class:`_LifoPool`: one given back goes to the front."""

    __slots__ = ()

    def append(self, conn: Any, /) -> None:
        self.appendleft(conn)


class _LifoPool(psycopg_pool.ConnectionPool[Any]):
    """A ``psycopg_pool.ConnectionPool`` that hands out the connection given back last.

    psycopg_pool queues idle connections first in, first out: once a burst has opened
    ``pool_max`` connections, sequential calls rotate through all of them, each on a server
    process whose caches have gone cold since its last turn (on the 2-core benchmark machine a
    one-item append then cost 280-340 us instead of 160-250 us, after a 32-task burst). Taken
    last in, first out, a quiet period keeps reusing one warm connection and the others stay
    idle, so ``max_idle_secs`` can close them. The pool keeps idle connections in the deque
    ``_pool`` (psycopg_pool 3.2-3.3: ``append`` to give back, ``popleft`` to take); should a
    later version keep them otherwise, this falls back to its own order.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        idle = getattr(self, "_pool", None)
        if type(idle) is deque and not idle:
            self._pool = _MostRecentFirst()


class PostgresSession:
    """One pooled connection in autocommit mode: a statement is one round trip, no COMMIT.

    Statements run on the connection's own cursor (see ``_cursor``), not a new one each."""

    def __init__(self, conn: psycopg.Connection[Any], scrub: Scrubber) -> None:
        self._conn = conn
        self._cur = _cursor(conn)
        self._scrub = scrub
        self._writes = _PreparedWrites.for_connection(conn)

    def execute(self, sql: str, params: Params | None = None) -> int:
        writes = self._writes
        if writes is not None and params:
            count = writes.execute(sql, params)
            if count is not None:
                return count
        return self._cur.execute(sql, params).rowcount

    def fetchone(self, sql: str, params: Params | None = None) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._cur.execute(sql, params).fetchone()
        return row

    def fetchall(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        return self._cur.execute(sql, params).fetchall()

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


_PLACEHOLDER = re.compile(r"%\(([^)]*)\)s|%%|%")


def _numbered(sql: str) -> tuple[bytes, tuple[str, ...]] | None:
    """``sql`` with psycopg's ``%(name)s`` placeholders as ``$n`` (a name used twice is one
    parameter), and the names in order; ``None`` for anything else (``%``, other formats)."""
    names: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            if match.group(0) != "%%":
                raise ValueError(sql)
            return "%"
        return f"${names.setdefault(name, len(names) + 1)}"

    try:
        return _PLACEHOLDER.sub(number, sql).encode(), tuple(names)
    except ValueError:
        return None


FATAL_ERROR = ExecStatus.FATAL_ERROR

_NUMBERED: dict[str, tuple[bytes, tuple[str, ...]] | None] = {}


class _PreparedWrites:
    """Row-less statements (the writes) of one pooled connection, as server-side prepared
    statements run straight on libpq's asynchronous calls.

    What psycopg's cursor does for a prepared statement, without its per-call bookkeeping
    (the query's parse cache, the prepared-statement manager, the result objects): about 8 us
    of CPU of the 20 to 25 a one-row INSERT costs the client. The same adapters dump the
    parameters (psycopg's ``Transformer``), the same ``wait`` (with the read timeout) waits
    for the server, and a failed statement raises the same psycopg error. A statement is
    prepared on its third run on the connection (psycopg's threshold is five), under a name of
    its own (``datacon_N``; psycopg's are ``_pg3_N``), once per parameter types (an ``int``
    may dump as int2 one call and int8 the next). A connection that lost its prepared
    statements (``DISCARD ALL``, a server-side reset) prepares again: nothing ran.

    Not used where prepared statements are off (``transaction_pooling``: a pooler may move
    the next statement to another server connection), on a connection of the application's
    pool, or when something else makes the connection's cursors (an instrumentor records
    each statement through its own cursor class: the writes go through it then).
    """

    __slots__ = ("_conn", "_count", "_encoding", "_names", "_seen", "_tx")

    #: At most this many statements are prepared on one connection (then the cursor serves).
    MAX_PREPARED = 200

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._tx = Transformer(conn)
        self._encoding = conn.info.encoding
        self._names: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self._seen: dict[str, int] = {}
        self._count = itertools.count()  # the names' numbers: never one twice on the connection

    @classmethod
    def for_connection(cls, conn: psycopg.Connection[Any]) -> _PreparedWrites | None:
        if (
            isinstance(conn, _TimedConnection)
            and conn.prepare_threshold is not None
            and conn.cursor_factory is psycopg.Cursor
        ):
            return cls(conn)
        return None

    def execute(self, sql: str, params: Params) -> int | None:
        """The row count of ``sql`` run with ``params``, or ``None`` when the cursor must run it
        (not prepared yet, or not a statement this path takes)."""
        seen = self._seen.get(sql, 0)
        if seen < 2:
            if len(self._seen) < self.MAX_PREPARED:
                self._seen[sql] = seen + 1
            return None
        if sql in _NUMBERED:
            numbered = _NUMBERED[sql]
        else:
            numbered = _NUMBERED[sql] = _numbered(sql) if len(_NUMBERED) < 4096 else None
        if numbered is None:
            return None
        query, names = numbered
        tx = self._tx
        data = tx.dump_sequence([params[name] for name in names], [PyFormat.AUTO] * len(names))
        key = (query, tuple(tx.types or ()))
        conn = self._conn
        pgconn = conn.pgconn
        with conn.lock:
            name = self._names.get(key)
            if name is None:
                if len(self._names) >= self.MAX_PREPARED:
                    return None
                name = self._prepare(key)
            pgconn.send_query_prepared(name, data, param_formats=tx.formats)
            result = conn.wait(pq_execute(pgconn))[-1]
            if result.status == FATAL_ERROR and result.error_field(DiagnosticField.SQLSTATE) == b"26000":
                # The server forgot it (DISCARD ALL, DEALLOCATE): prepare again and run it.
                del self._names[key]
                name = self._prepare(key)
                pgconn.send_query_prepared(name, data, param_formats=tx.formats)
                result = conn.wait(pq_execute(pgconn))[-1]
        if result.status == FATAL_ERROR:
            raise pgerrors.error_from_result(result, encoding=self._encoding)
        count = result.command_tuples
        return -1 if count is None else count

    def _prepare(self, key: tuple[bytes, tuple[int, ...]]) -> bytes:
        name = f"datacon_{next(self._count)}".encode()
        pgconn = self._conn.pgconn
        pgconn.send_prepare(name, key[0], param_types=key[1])
        result = self._conn.wait(pq_execute(pgconn))[-1]
        if result.status == FATAL_ERROR:
            raise pgerrors.error_from_result(result, encoding=self._encoding)
        self._names[key] = name
        return name


@contextmanager
def _transaction(conn: psycopg.Connection[Any]) -> Iterator[None]:
    with conn.transaction():
        yield


def _cursor(conn: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
    """The cursor statements run on: a connection of datacon's own pool keeps one for its
    lifetime (``conn.execute`` builds a cursor and its adapters' transformer per statement,
    about 5 us); an application's connection gets a new one per session."""
    if not isinstance(conn, _TimedConnection):
        return conn.cursor()
    cur = conn.datacon_cursor
    if cur is None or cur.closed:
        cur = conn.datacon_cursor = conn.cursor()
    return cur


class _TimedConnection(psycopg.Connection[Any]):
    """A connection whose every wait for the server is bounded by ``read_timeout``.

    libpq has no read timeout: a server that stops answering while the kernel keeps the
    TCP connection up (a frozen process, a hung host behind a live proxy) would block the
    caller forever. psycopg's ``wait`` takes a timeout; on expiry the connection is in an
    unknown state, so it is closed (the pool then discards it) and the caller gets an
    ``OperationalError``, which the error seam turns into ``BackendUnavailableError``.
    """

    read_timeout: float | None = None
    #: The cursor sessions run their statements on (see ``_cursor``), and the poller
    #: ``_closed_by_server`` checks the socket with, made on first use.
    datacon_cursor: psycopg.Cursor[Any] | None = None
    datacon_poller: Any = None
    #: The session every block on this connection hands out (a session holds no state of
    #: its own beyond the connection, its cursor and the pool's scrubber).
    datacon_session: PostgresSession | None = None

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

    With ``read_urls``, each replica has a pool of its own and sessions marked ``replica``
    (plain reads) go to the next replica in turn, unless the current request context saw a
    write through this connector (read-your-writes: the primary serves). A replica that
    gives no connection within the connect timeout while it is not saturated, or whose
    connection fails, is skipped for ``REPLICA_RETRY_SECS`` (then one read tries it again);
    the read it was serving moves to the primary (reads are safe to re-run).
    """

    def __init__(self, config: PostgresConfig) -> None:
        self._replicas: list[_Replica] = []  # none: every session on the primary
        self._lock = threading.Lock()  # the replicas' state
        self._turn = itertools.count()
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
        scrubbers = [check_url(config.db_url)]
        for n, url in enumerate(config.read_urls):
            scrubbers.append(check_url(url.strip(), f"postgres.read_urls[{n}]", "read URL"))
        # One scrubber for every password of the storage (a replica's may show in any message).
        self._scrub = Scrubber("", *(secret for scrub in scrubbers for secret in scrub.secrets))
        self._url = config.db_url
        self._unhide = hide_in_driver_logs(self._scrub)
        self._pool = self._make_pool(config, config.db_url, "datacon")
        try:
            self._pool.open(wait=True, timeout=config.connect_timeout_secs)
        except psycopg_pool.PoolTimeout as exc:
            self._pool.close()
            try:
                raise self._why_not(exc) from exc
            finally:
                self._unhide()
        if config.read_urls:
            # Replica pools open in the background: one that is down at start-up is only skipped.
            self._replicas = [
                _Replica(self._make_pool(config, url.strip(), f"datacon-replica-{n}"), config.pool_max)
                for n, url in enumerate(config.read_urls)
            ]
            for replica in self._replicas:
                replica.pool.open(wait=False)
            # Reads may use every pool at once; writes only the primary's.
            self.max_concurrency = config.pool_max * (1 + len(self._replicas))

    def _make_pool(self, config: PostgresConfig, url: str, name: str) -> psycopg_pool.ConnectionPool[Any]:
        connect_kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": self._connect_timeout}
        if config.transaction_pooling:
            # A transaction-mode pooler runs each transaction on whichever server connection is
            # free: a statement prepared on one is unknown (or already taken) on the next.
            connect_kwargs["prepare_threshold"] = None
        return _LifoPool(
            url,
            min_size=config.pool_min,
            max_size=config.pool_max,
            timeout=config.pool_timeout_secs,
            max_idle=config.max_idle_secs,
            max_lifetime=config.max_lifetime_secs,
            check=psycopg_pool.ConnectionPool.check_connection if config.check_connection else None,
            kwargs=connect_kwargs,
            connection_class=_connection_class(config.read_timeout_secs),
            name=name,
            reconnect_timeout=RECONNECT_SECS,
            open=False,
        )

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

    def session(
        self, *, write: bool = False, conflict: str = "", replica: bool = False
    ) -> AbstractContextManager[PostgresSession]:
        """A pooled connection for one operation; driver and pool errors raised in the block
        (or by the checkout and checkin) become datacon errors (a unique violation
        ``ConflictError(conflict)``). ``replica``: a read replica may serve it (see the class)."""
        if self._replicas:
            if write:
                note_write(self)  # before the write: even one that fails may have committed
            elif replica and not wrote_here(self):
                return _ReplicaBlock(self)
        return _SessionBlock(self, conflict) if self._owned else _BorrowedSessionBlock(self, conflict)

    def write_one(self, sql: str, params: Params, conflict: str = "") -> int:
        """One statement in a write session of its own (``Connector.write_one``)."""
        with self.session(write=True, conflict=conflict) as session:
            return session.execute(sql, params)

    def _next_replica(self) -> _Replica | None:
        """The next replica in turn that is not being skipped (one whose skip just ended is
        handed to this caller alone, as a probe), or ``None``."""
        now = time.monotonic()
        replicas = self._replicas
        with self._lock:
            start = next(self._turn)
            for k in range(len(replicas)):
                replica = replicas[(start + k) % len(replicas)]
                if replica.skip_until <= now:
                    if replica.down:
                        replica.skip_until = now + REPLICA_RETRY_SECS  # others keep skipping it meanwhile
                    return replica
        return None

    def _replica_failed(self, replica: _Replica, reason: str) -> None:
        with self._lock:
            first = not replica.down
            replica.down = True
            replica.skip_until = time.monotonic() + REPLICA_RETRY_SECS
        if first:
            log.warning(
                "read replica %s skipped for %g s (the primary serves its reads): %s",
                replica.pool.name,
                REPLICA_RETRY_SECS,
                self._scrub(reason),
            )

    def _replica_ok(self, replica: _Replica) -> None:
        if replica.down:
            with self._lock:
                replica.down = False
                replica.skip_until = 0.0
            log.info("read replica %s serves reads again", replica.pool.name)

    @contextmanager
    def migration_session(self) -> Iterator[PostgresSession]:
        """A session holding ``pg_advisory_lock(0x736D675F6D696772)`` (released on exit, even
        on error), so processes starting at once bootstrap one after the other.

        With ``transaction_pooling`` the whole block is one transaction holding
        ``pg_advisory_xact_lock`` instead (its migrations nest as savepoints): a pooler may
        send the unlock to another server connection than the lock, while COMMIT/ROLLBACK
        releases a transaction-scoped lock where it was taken.
        """
        note_write(self)
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
        for replica in self._replicas:
            replica.pool.close()
        self._unhide()

    def stats(self) -> dict[str, int]:
        """The pool's counters; with read replicas, ``size``, ``in_use``, ``max``, ``waiting``
        and ``wait_ms`` add up every pool, and ``replica_*`` count the replicas' pools alone
        (``replicas_skipped``: replicas being skipped now)."""
        primary = _pool_stats(self._pool)
        if not self._replicas:
            return {**primary, "max": self.max_concurrency}
        replicas = [_pool_stats(replica.pool) for replica in self._replicas]
        totals = {key: sum(stats[key] for stats in replicas) for key in primary}
        return {
            **{key: primary[key] + totals[key] for key in primary},
            "max": self.max_concurrency,
            **{f"replica_{key}": value for key, value in totals.items()},
            "replica_max": sum(replica.max for replica in self._replicas),
            "replicas_skipped": sum(replica.down for replica in self._replicas),
        }


def _pool_stats(pool: psycopg_pool.ConnectionPool[Any]) -> dict[str, int]:
    stats = pool.get_stats()
    size = stats.get("pool_size", 0)
    return {
        "size": size,
        "in_use": size - stats.get("pool_available", 0),
        "waiting": stats.get("requests_waiting", 0),
        # Cumulative, since the pool opened (psycopg_pool's counter; datacon.pool.wait_time).
        "wait_ms": stats.get("requests_wait_ms", 0),
    }


class _Replica:
    """One read replica: its pool, how many of its connections are checked out, and whether
    (and until when) it is skipped."""

    __slots__ = ("down", "in_use", "max", "pool", "skip_until")

    def __init__(self, pool: psycopg_pool.ConnectionPool[Any], size: int) -> None:
        self.pool = pool
        self.max = size
        self.in_use = 0
        self.down = False
        self.skip_until = 0.0


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
            # Idle connections the server closed (a restart, pg_terminate_backend, an idle
            # timeout) are replaced before use, so the first call after a restart does not fail;
            # every idle connection may be dead then, hence the loop. Nothing is ever re-sent:
            # a statement that fails once it was sent still fails (writes stay exactly-once).
            conn = _checkout(pool, pool.max_size)
        except DRIVER_ERRORS as exc:
            raise convert(exc, self._conflict, connector._scrub, connector._timeout) from exc
        self._conn = conn
        session = conn.datacon_session if isinstance(conn, _TimedConnection) else None
        if session is None:
            session = PostgresSession(conn, connector._scrub)
            if isinstance(conn, _TimedConnection):  # one pool's: the same scrubber for its lifetime
                conn.datacon_session = session
        return session

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
    if conn.closed:  # a cached poller would watch a descriptor the system may have reused
        return True
    try:
        poller = getattr(conn, "datacon_poller", None)
        if poller is None:
            poller = select.poll()
            poller.register(conn.pgconn.socket, select.POLLIN)
            if isinstance(conn, _TimedConnection):  # its socket is the same for its lifetime
                conn.datacon_poller = poller
        if not poller.poll(0):
            return False
        conn.execute("")
    except (psycopg.Error, OSError):
        return True
    return False


def _checkout(
    pool: psycopg_pool.ConnectionPool[Any], tries: int, timeout: float | None = None
) -> psycopg.Connection[Any]:
    """A connection from ``pool``, idle ones the server closed replaced first (see _SessionBlock)."""
    conn: psycopg.Connection[Any] = pool.getconn(timeout)
    for _ in range(tries):
        if not _closed_by_server(conn):
            break
        conn.close()
        pool.putconn(conn)  # the pool discards a closed connection and opens another
        conn = pool.getconn(timeout)
    return conn


# Errors after which a read is re-run on the primary: the replica's connection failed or
# timed out (OperationalError, which includes a query cancelled by a recovery conflict), or
# its schema is behind the primary's (a migration not replayed yet).
_REPLICA_FAILURES = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    pgerrors.UndefinedTable,
    pgerrors.UndefinedColumn,
)


class _ReplicaSession(PostgresSession):
    """A session on a replica's connection; a statement the replica fails is run again on
    the primary, which serves the rest of the block."""

    def __init__(self, block: _ReplicaBlock, conn: psycopg.Connection[Any]) -> None:
        super().__init__(conn, block._connector._scrub)
        self._block = block

    def _to_primary(self, exc: Exception) -> None:
        self._conn = self._block.to_primary(exc)
        self._cur = _cursor(self._conn)

    def execute(self, sql: str, params: Params | None = None) -> int:
        try:
            return super().execute(sql, params)
        except _REPLICA_FAILURES as exc:
            self._to_primary(exc)
        return super().execute(sql, params)

    def fetchone(self, sql: str, params: Params | None = None) -> tuple[Any, ...] | None:
        try:
            return super().fetchone(sql, params)
        except _REPLICA_FAILURES as exc:
            self._to_primary(exc)
        return super().fetchone(sql, params)

    def fetchall(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        try:
            return super().fetchall(sql, params)
        except _REPLICA_FAILURES as exc:
            self._to_primary(exc)
        return super().fetchall(sql, params)


class _ReplicaBlock:
    """One read on a replica: its connection taken within the connect timeout (a replica that
    cannot give one, unless all its connections are busy, is skipped and the primary serves),
    and the primary's session block taken over if the replica fails mid-read."""

    __slots__ = ("_conn", "_connector", "_primary", "_replica")

    def __init__(self, connector: PostgresConnector) -> None:
        self._connector = connector
        self._replica: _Replica | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._primary: _SessionBlock | None = None

    def __enter__(self) -> PostgresSession:
        connector = self._connector
        replica = connector._next_replica()
        if replica is not None:
            conn = self._checkout(replica)
            if conn is not None:
                self._replica, self._conn = replica, conn
                return _ReplicaSession(self, conn)
        primary = _SessionBlock(connector, "")
        session = primary.__enter__()
        self._primary = primary
        return session

    def _checkout(self, replica: _Replica) -> psycopg.Connection[Any] | None:
        connector = self._connector
        wait = min(connector._timeout, connector._connect_timeout)
        started = time.monotonic()
        try:
            try:
                conn = _checkout(replica.pool, replica.max, wait)
            except psycopg_pool.PoolTimeout:
                if replica.in_use < replica.max:
                    raise  # connections free to open, none opened: the replica is unreachable
                # Saturated, not down: wait for a connection as long as the primary's callers would.
                conn = _checkout(replica.pool, replica.max, max(connector._timeout - wait, 0.001))
        except psycopg_pool.PoolClosed as exc:
            raise convert(exc, "", connector._scrub, connector._timeout) from exc
        except psycopg_pool.PoolTimeout as exc:
            if replica.in_use >= replica.max:
                raise convert(exc, "", connector._scrub, connector._timeout) from exc
            connector._replica_failed(replica, f"no connection within {time.monotonic() - started:.1f} s")
            return None
        except DRIVER_ERRORS as exc:
            connector._replica_failed(replica, str(exc))
            return None
        with connector._lock:
            replica.in_use += 1
        connector._replica_ok(replica)
        return conn

    def _give_back(self) -> None:
        replica, conn = self._replica, self._conn
        if replica is None or conn is None:
            return
        self._replica = self._conn = None
        with self._connector._lock:
            replica.in_use -= 1
        try:
            replica.pool.putconn(conn)
        except DRIVER_ERRORS as exc:
            log.debug("could not return a replica connection: %s", self._connector._scrub(str(exc)))

    def to_primary(self, exc: Exception) -> psycopg.Connection[Any]:
        """The replica failed a statement: give its connection back (skipping the replica if
        the connection broke) and take one of the primary's for the rest of the block."""
        replica, conn = self._replica, self._conn
        if replica is not None and conn is not None and (conn.broken or conn.closed):
            self._connector._replica_failed(replica, str(exc))
        self._give_back()
        primary = _SessionBlock(self._connector, "")
        conn = primary.__enter__()._conn
        self._primary = primary
        return conn

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._give_back()
        if self._primary is not None:
            self._primary.__exit__(exc_type, exc, tb)
            return
        if isinstance(exc, DRIVER_ERRORS):
            connector = self._connector
            raise convert(exc, "", connector._scrub, connector._timeout) from exc
