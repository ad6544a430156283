"""The one place where psycopg and psycopg_pool exceptions become datacon errors."""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

import psycopg
import psycopg_pool
from psycopg import errors as pgerrors
from psycopg.conninfo import conninfo_to_dict

from datacon.errors import BackendError, BackendUnavailableError, ConfigError, ConflictError, PoolTimeoutError

__all__ = ["DRIVER_ERRORS", "Scrubber", "check_url", "convert", "hide_in_driver_logs", "translate"]

_MAX_DETAIL = 300

#: What the seam translates: every psycopg error, and the pool's timeout and closed signals.
DRIVER_ERRORS = (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed)


# A ``password`` query parameter (libpq takes the password from there too, and prefers it).
_QUERY_PASSWORD = re.compile(r"(?:^|&)password=([^&#]*)")


class Scrubber:
    """Removes the URL's passwords (raw and percent-decoded, in the authority or a ``password``
    query parameter, plus ``more``, e.g. the one libpq parsed) from any text."""

    def __init__(self, url: str, *more: str) -> None:
        secrets: set[str] = {secret for secret in more if secret}
        try:
            parts = urlsplit(url)
            raw = [parts.netloc.rpartition("@")[0].partition(":")[2], *_QUERY_PASSWORD.findall(parts.query)]
        except ValueError:
            raw = []
        for value in raw:
            if value:
                secrets |= {value, unquote(value)}
        self.secrets = tuple(sorted(secrets, key=len, reverse=True))

    def hide(self, text: str) -> str:
        """``text`` with every secret replaced by ``****``."""
        for secret in self.secrets:
            text = text.replace(secret, "****")
        return text

    def __call__(self, text: str) -> str:
        text = " ".join(self.hide(text).split())  # libpq's multi-line messages as one line
        return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."


def check_url(url: str, field: str = "postgres.db_url", kind: str = "db_url") -> Scrubber:
    """Parse ``url`` with libpq's own parser, so what it refuses is a ``ConfigError`` before
    any connection attempt (psycopg_pool would otherwise log libpq's message, which quotes a
    badly escaped password in clear); the scrubber of every password it holds.

    :raises ConfigError: libpq cannot parse the URL (its message, passwords masked).
    """
    scrub = Scrubber(url)
    try:
        password = conninfo_to_dict(url).get("password")
    except psycopg.Error as exc:
        raise ConfigError(f"invalid {kind}: {scrub(str(exc))}", field) from None
    return Scrubber(url, str(password or ""))


class _SecretFilter(logging.Filter):
    """Masks the passwords of every open Postgres storage in the driver's and the pool's log
    records (their message, arguments and traceback), whatever they quote."""

    def __init__(self) -> None:
        super().__init__("datacon")
        self._lock = threading.Lock()
        self._secrets: Counter[str] = Counter()
        self._sorted: tuple[str, ...] = ()

    def add(self, secrets: tuple[str, ...]) -> None:
        with self._lock:
            self._secrets.update(secrets)
            self._sorted = tuple(sorted(self._secrets, key=len, reverse=True))

    def remove(self, secrets: tuple[str, ...]) -> None:
        with self._lock:
            self._secrets.subtract(secrets)
            self._secrets = +self._secrets  # drop the ones no open storage holds any more
            self._sorted = tuple(sorted(self._secrets, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._sorted
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record: show its template only
            message = str(record.msg)
        if any(secret in message for secret in secrets):
            for secret in secrets:
                message = message.replace(secret, "****")
            record.msg, record.args = message, None
        if record.exc_info is not None and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(record.exc_info[1])).rstrip("\n")
            if any(secret in text for secret in secrets):
                for secret in secrets:
                    text = text.replace(secret, "****")
                record.exc_info, record.exc_text = None, text
        return True


_FILTER = _SecretFilter()
_DRIVER_LOGGERS = ("psycopg", "psycopg.pool", "psycopg.pq", "psycopg.debug", "psycopg.waiting", "psycopg.transaction")


def hide_in_driver_logs(scrub: Scrubber) -> Callable[[], None]:
    """From now on, no psycopg or psycopg_pool logger prints one of ``scrub``'s passwords; the
    function returned ends that (idempotent; a storage calls it when it closes).

    A filter acts only on its own logger's records, so it goes on every logger of the driver's
    tree (``psycopg`` and each ``psycopg.*`` that exists).
    """
    names = {*_DRIVER_LOGGERS, *(n for n in list(logging.root.manager.loggerDict) if n.startswith("psycopg."))}
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    _FILTER.add(scrub.secrets)
    done = threading.Event()

    def release() -> None:
        if not done.is_set():
            done.set()
            _FILTER.remove(scrub.secrets)

    return release


# SQLSTATE classes of a lost or refused connection: 08 (connection exception), 57P01-57P03
# (admin/crash shutdown, cannot connect now), 53300 (too many connections).
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300")


def _is_connection_failure(exc: Exception) -> bool:
    if isinstance(exc, psycopg.InterfaceError):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    # libpq-level failures (refused, authentication, closed socket) carry no SQLSTATE.
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith(_UNAVAILABLE_STATES)


def convert(exc: Exception, conflict: str, scrub: Scrubber, pool_timeout: float) -> BackendError | ConflictError:
    """The datacon error for a psycopg/psycopg_pool exception (the caller chains it)."""
    if isinstance(exc, pgerrors.UniqueViolation):
        return ConflictError(conflict or "Postgres: duplicate key")
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return PoolTimeoutError(f"Postgres: no pooled connection became free within {pool_timeout:g} s")
    if isinstance(exc, psycopg_pool.PoolClosed):
        return BackendUnavailableError("Postgres storage is closed")
    detail = scrub(str(exc) or type(exc).__name__)
    if _is_connection_failure(exc):
        return BackendUnavailableError(f"Postgres unavailable: {detail}")
    return BackendError(f"Postgres error: {type(exc).__name__}: {detail}")


@contextmanager
def translate(conflict: str, scrub: Scrubber, pool_timeout: float) -> Iterator[None]:
    """Re-raise psycopg errors raised inside the block as datacon errors (chained).

    A unique violation becomes ``ConflictError(conflict)``; a pool timeout
    ``PoolTimeoutError``; connection failures ``BackendUnavailableError``; anything else
    ``BackendError``. The URL's password never appears in a message.
    """
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise convert(exc, conflict, scrub, pool_timeout) from exc
