"""The one place where psycopg and psycopg_pool exceptions become datacon errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

import psycopg
import psycopg_pool
from psycopg import errors as pgerrors

from datacon.errors import BackendError, BackendUnavailableError, ConflictError, PoolTimeoutError

__all__ = ["DRIVER_ERRORS", "Scrubber", "convert", "translate"]

_MAX_DETAIL = 300

#: What the seam translates: every psycopg error, and the pool's timeout and closed signals.
DRIVER_ERRORS = (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed)


class Scrubber:
    """Removes the URL's password (raw and percent-decoded) from any text."""

    def __init__(self, url: str) -> None:
        secrets: set[str] = set()
        try:
            raw = urlsplit(url).netloc.rpartition("@")[0].partition(":")[2]
        except ValueError:
            raw = ""
        if raw:
            secrets |= {raw, unquote(raw)}
        self._secrets = sorted(secrets, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "****")
        text = " ".join(text.split())  # libpq's multi-line messages as one line
        return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."


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
