"""The one place where redis-py exceptions become datacon errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote

from redis import exceptions as rx

from datacon.errors import BackendError, BackendUnavailableError, PoolTimeoutError

__all__ = ["DRIVER_ERRORS", "convert", "corrupt_record", "translate"]

# What BlockingConnectionPool.get_connection raises (as a ConnectionError) when no
# connection frees up within its timeout; redis-py has no dedicated exception for it.
_POOL_EXHAUSTED = "No connection available."
_MAX_DETAIL = 300

_CLUSTER_UNAVAILABLE = (
    rx.ClusterDownError,
    rx.MasterDownError,
    rx.SlotNotCoveredError,
    rx.TryAgainError,
    rx.RedisClusterException,
)

#: What the seam translates: redis-py's errors (its cluster client's own exception, which is
#: not a RedisError, included) and socket errors.
DRIVER_ERRORS = (rx.RedisError, rx.RedisClusterException, OSError)


def _detail(exc: BaseException, secret: str | None) -> str:
    # redis-py messages name host:port at most, but scrub the password should one appear.
    text = str(exc) or type(exc).__name__
    if secret:
        # as written in the URL and as redis-py decodes it
        for form in {secret, unquote(secret)}:
            text = text.replace(form, "****")
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."


def convert(exc: Exception, action: str, secret: str | None, pool_timeout: float) -> BackendError:
    """The datacon error for a redis-py or socket exception (the caller chains it)."""
    if isinstance(exc, rx.ConnectionError) and str(exc) == _POOL_EXHAUSTED:
        return PoolTimeoutError(f"Redis {action}: no pooled connection became free within {pool_timeout:g} s")
    if isinstance(exc, rx.AuthenticationError | rx.AuthenticationWrongNumberOfArgsError):
        return BackendUnavailableError(f"Redis {action}: authentication failed ({_detail(exc, secret)})")
    if isinstance(exc, rx.ConnectionError | rx.TimeoutError | OSError):
        return BackendUnavailableError(f"Redis {action}: server unavailable ({_detail(exc, secret)})")
    if isinstance(exc, _CLUSTER_UNAVAILABLE):
        # A cluster failing over: no master for the slot yet, or no node answering at all.
        return BackendUnavailableError(f"Redis {action}: cluster unavailable ({_detail(exc, secret)})")
    return BackendError(f"Redis {action} failed: {type(exc).__name__}: {_detail(exc, secret)}")


@contextmanager
def translate(action: str, secret: str | None, pool_timeout: float) -> Iterator[None]:
    """Re-raise redis-py (and socket) errors raised inside the block as datacon errors.

    Pool exhaustion becomes ``PoolTimeoutError``; connection, authentication and socket
    timeout failures ``BackendUnavailableError``; anything else ``BackendError``. The
    original is chained, and ``secret`` (the password) never appears in the message.
    """
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise convert(exc, action, secret, pool_timeout) from exc


def corrupt_record(kind: str, record_id: str, field: str, exc: Exception) -> BackendError:
    """The error for a stored hash whose ``field`` cannot be decoded (datacon never writes one)."""
    problem = type(exc).__name__
    return BackendError(f"Redis {kind} {record_id} has an unreadable '{field}' field ({problem})")
