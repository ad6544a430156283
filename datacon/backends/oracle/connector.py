"""Sessions over a python-oracledb connection pool (autocommit; transactions on demand)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import oracledb

from datacon.backends._sql import Params
from datacon.config import OracleConfig
from datacon.errors import ConfigError

from .dialect import RETURNED
from .errors import Scrubber, translate

__all__ = ["CALL_TIMEOUT_SECS", "OracleConnector", "OracleSession", "pool_params", "secrets_of"]

#: Longest a single round trip may take before python-oracledb abandons it (DPY-4024,
#: reported as ``BackendUnavailableError``). Start-up DDL and migrations have no limit.
CALL_TIMEOUT_SECS = 60
_UTC_SESSION = "ALTER SESSION SET TIME_ZONE = '+00:00'"
# Bind names in a statement: ":name" not inside a string literal. Literals are removed
# first ('+00:00' would otherwise look like a bind named 00).
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_BIND = re.compile(r":([A-Za-z_][A-Za-z0-9_$#]*)")
_EMBEDDED_PASSWORD = re.compile(r"^[^/@\s]+/([^@]*)@")


def _utc_session(connection: oracledb.Connection, requested_tag: str | None) -> None:
    """Pool session callback: every new session works in UTC.

    datacon's own timestamps do not depend on it (FROM_TZ / SYS_EXTRACT_UTC); it makes a
    datetime bound to a ``TIMESTAMP WITH TIME ZONE`` extra column mean UTC too.
    """
    with connection.cursor() as cursor:
        cursor.execute(_UTC_SESSION)


def pool_params(config: OracleConfig, *, thin: bool) -> dict[str, Any]:
    """The keyword arguments of ``oracledb.create_pool`` for ``config``.

    - ``min``/``max`` are ``pool_min``/``pool_max`` (new sessions one at a time);
    - ``pool_timeout_secs`` bounds the wait for a free connection
      (``POOL_GETMODE_TIMEDWAIT``, ``wait_timeout`` in ms); ``0`` waits without limit
      (``POOL_GETMODE_WAIT``), as upstream's pool did;
    - ``wallet_path`` is the directory holding ``tnsnames.ora``/``sqlnet.ora`` (upstream
      sets ``TNS_ADMIN`` to it): it becomes ``config_dir`` (TNS aliases) and
      ``wallet_location`` (``ewallet.pem``, for mutual TLS). Without it python-oracledb
      reads ``$TNS_ADMIN`` itself;
    - ``external_auth`` connects without user and password (``externalauth``, a
      heterogeneous pool, as Oracle requires); python-oracledb supports that in thick mode,
      so in thin mode it is a ``ConfigError`` here rather than a failed login later.
    """
    if config.external_auth and thin:
        raise ConfigError(
            "external_auth needs python-oracledb Thick mode: call oracledb.init_oracle_client() "
            "before creating the storage",
            "oracle.external_auth",
        )
    params: dict[str, Any] = {
        "dsn": config.connect_descriptor,
        "min": config.pool_min,
        "max": config.pool_max,
        "increment": 1,
        "session_callback": _utc_session,
    }
    if config.pool_timeout_secs > 0:
        params["getmode"] = oracledb.POOL_GETMODE_TIMEDWAIT
        params["wait_timeout"] = config.pool_timeout_secs * 1000
    else:
        params["getmode"] = oracledb.POOL_GETMODE_WAIT
    if config.external_auth:
        params["externalauth"] = True
        params["homogeneous"] = False
    else:
        params["user"] = config.username
        params["password"] = config.password
    if config.wallet_path is not None:
        params["config_dir"] = config.wallet_path
        params["wallet_location"] = config.wallet_path
    return params


def secrets_of(config: OracleConfig) -> list[str]:
    """What must never appear in a message: the password, and one embedded in the descriptor."""
    secrets = [config.password]
    embedded = _EMBEDDED_PASSWORD.match(config.connect_descriptor.strip())
    if embedded:
        secrets.append(embedded.group(1))
    return [s for s in secrets if s]


@functools.lru_cache(maxsize=512)
def bind_names(sql: str) -> frozenset[str]:
    """The names of the bind placeholders in ``sql`` (string literals excluded)."""
    return frozenset(name.lower() for name in _BIND.findall(_LITERAL.sub("''", sql)))


def _clob_as_text(cursor: oracledb.Cursor, metadata: oracledb.FetchInfo) -> Any:
    # JSON columns are CLOBs: fetch them as str in the same round trip, not as LOB locators.
    if metadata.type_code is oracledb.DB_TYPE_CLOB:
        return cursor.var(oracledb.DB_TYPE_LONG, arraysize=cursor.arraysize)
    return None


def _is_dml(sql: str) -> bool:
    return sql.lstrip()[:6].upper() in ("UPDATE", "DELETE", "INSERT")


class OracleSession:
    """One pooled connection, in autocommit mode outside ``transaction()`` blocks.

    Parameters the statement does not name are left out (python-oracledb rejects them);
    ``datetime`` values are bound as ``TIMESTAMP`` (fractional seconds kept).
    """

    def __init__(self, conn: oracledb.Connection, scrub: Scrubber) -> None:
        self._conn = conn
        self._scrub = scrub
        self._depth = 0

    def _run(self, cursor: oracledb.Cursor, sql: str, params: Params | None) -> Any:
        cursor.outputtypehandler = _clob_as_text
        names = bind_names(sql)
        binds: dict[str, Any] = {}
        sizes: dict[str, Any] = {}
        for name, value in (params or {}).items():
            if name in names:
                binds[name] = value
                if isinstance(value, datetime):
                    sizes[name] = oracledb.DB_TYPE_TIMESTAMP
        returned = None
        if RETURNED in names:
            returned = binds[RETURNED] = cursor.var(oracledb.DB_TYPE_TIMESTAMP)
        if sizes:
            cursor.setinputsizes(**sizes)
        cursor.execute(sql, binds)
        return returned

    def execute(self, sql: str, params: Params | None = None) -> int:
        with self._conn.cursor() as cursor:
            self._run(cursor, sql, params)
            return int(cursor.rowcount)

    def fetchone(self, sql: str, params: Params | None = None) -> tuple[Any, ...] | None:
        """A query's first row; for an UPDATE/DELETE, ``None`` if it changed no row, else
        ``(value of RETURNING ... INTO :returned,)`` or ``(rows changed,)``."""
        with self._conn.cursor() as cursor:
            returned = self._run(cursor, sql, params)
            if _is_dml(sql):
                if cursor.rowcount == 0:
                    return None
                if returned is None:
                    return (cursor.rowcount,)
                values = returned.getvalue()  # a list: one value per row returned
                return (values[0] if isinstance(values, list) else values,)
            row: tuple[Any, ...] | None = cursor.fetchone()
            return row

    def fetchall(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cursor:
            self._run(cursor, sql, params)
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            return rows

    def try_execute(self, sql: str) -> str | None:
        """Run a best-effort statement (the index DDL); the scrubbed error text if it failed.

        In autocommit mode a failed statement leaves nothing behind (a PL/SQL block's DDL
        commits by itself), so no savepoint is needed.
        """
        try:
            self.execute(sql)
        except oracledb.Error as exc:
            return self._scrub(str(exc))
        return None

    def transaction(self) -> AbstractContextManager[None]:
        """Statements that commit together (ROLLBACK on error); nested, a savepoint.

        DDL commits implicitly in Oracle, so a block holding DDL is not atomic; the
        migrations are idempotent PL/SQL for that reason.
        """
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._depth += 1
        savepoint = f"datacon_sp{self._depth}"
        try:
            if self._depth == 1:
                self._conn.autocommit = False
                try:
                    yield
                except BaseException:
                    self._conn.rollback()
                    raise
                self._conn.commit()
            else:
                self.execute(f"SAVEPOINT {savepoint}")
                try:
                    yield
                except BaseException:
                    self.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                    raise
        finally:
            if self._depth == 1:
                self._conn.autocommit = True
            self._depth -= 1


class OracleConnector:
    """A python-oracledb pool of ``pool_min``..``pool_max`` sessions (see :func:`pool_params`).

    Every ``session`` block translates driver errors at the one seam (``_errors``).
    """

    def __init__(self, config: OracleConfig) -> None:
        self.max_concurrency = config.pool_max
        self._timeout = float(config.pool_timeout_secs)
        self._scrub = Scrubber(secrets_of(config))
        self._closed = False
        params = pool_params(config, thin=oracledb.is_thin_mode())
        with translate("", self._scrub, self._timeout):
            self._pool: oracledb.ConnectionPool = oracledb.create_pool(**params)

    @contextmanager
    def _acquire(self, call_timeout_ms: int, conflict: str) -> Iterator[OracleSession]:
        with translate(conflict, self._scrub, self._timeout):
            conn = self._pool.acquire()
            try:
                conn.autocommit = True
                conn.call_timeout = call_timeout_ms
                yield OracleSession(conn, self._scrub)
            finally:
                self._pool.release(conn)

    def session(
        self, *, write: bool = False, conflict: str = "", replica: bool = False
    ) -> AbstractContextManager[OracleSession]:
        # No read replicas on Oracle (``replica`` is ignored).
        return self._acquire(CALL_TIMEOUT_SECS * 1000, conflict)

    def write_one(self, sql: str, params: Params, conflict: str = "") -> int:
        """One statement in a write session of its own (``Connector.write_one``)."""
        with self.session(write=True, conflict=conflict) as session:
            return session.execute(sql, params)

    def migration_session(self) -> AbstractContextManager[OracleSession]:
        """A session without a call timeout (DDL on a large table can be slow).

        Oracle has no lock here (upstream had none either): every DDL statement and version
        row is idempotent, so processes starting at once all succeed.
        """
        return self._acquire(0, "")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with translate("", self._scrub, self._timeout):
                self._pool.close(force=True)

    def stats(self) -> dict[str, int]:
        if self._closed:
            return {"size": 0, "in_use": 0, "max": self.max_concurrency}
        return {"size": int(self._pool.opened), "in_use": int(self._pool.busy), "max": self.max_concurrency}
