"""The one place where python-oracledb exceptions become datacon errors."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import oracledb

from datacon.errors import BackendError, BackendUnavailableError, ConflictError, PoolTimeoutError

__all__ = ["CONFLICT_CODES", "POOL_TIMEOUT_CODES", "UNAVAILABLE_CODES", "Scrubber", "convert", "translate"]

_MAX_DETAIL = 300

#: Unique constraint violated.
CONFLICT_CODES = frozenset({"ORA-00001"})
#: No pooled connection within ``wait_timeout`` (python-oracledb maps ORA-24457/24459/24496 here).
POOL_TIMEOUT_CODES = frozenset({"DPY-4005"})
#: The database cannot be reached, refused the session, or the connection was lost.
#: python-oracledb reports most lost connections as DPY-4011 (it maps ORA-03113, ORA-03135,
#: ORA-12537... to it); the ORA- codes are also listed for thick mode and older drivers.
UNAVAILABLE_CODES = frozenset(
    {
        "DPY-1001",  # not connected to database
        "DPY-1002",  # connection pool is not open
        "DPY-4000",  # cannot connect: TNS alias not found
        "DPY-4001",  # no credentials specified
        "DPY-4011",  # the database or network closed the connection
        "DPY-4024",  # call timeout exceeded
        "DPY-4027",  # no configuration directory for a TNS alias
        "ORA-01005",  # null password given; logon denied
        "ORA-01017",  # invalid username/password; logon denied
        "ORA-01033",  # initialization or shutdown in progress
        "ORA-01034",  # ORACLE not available
        "ORA-01089",  # immediate shutdown in progress
        "ORA-01090",  # shutdown in progress
        "ORA-01092",  # instance terminated, disconnection forced
        "ORA-03113",  # end-of-file on communication channel
        "ORA-03114",  # not connected to ORACLE
        "ORA-03135",  # connection lost contact
        "ORA-12154",  # could not resolve the connect identifier
        "ORA-12170",  # connect timeout
        "ORA-12505",  # SID not known to the listener
        "ORA-12514",  # service not known to the listener
        "ORA-12516",  # no available handler
        "ORA-12518",  # listener could not hand off
        "ORA-12519",  # no appropriate service handler
        "ORA-12520",  # no available handler for the server type
        "ORA-12528",  # all instances blocking new connections
        "ORA-12537",  # connection closed
        "ORA-12541",  # no listener
        "ORA-12547",  # lost contact
        "ORA-28000",  # account locked
        "ORA-28001",  # password expired
    }
)


class Scrubber:
    """Removes secrets (the password, the connect descriptor) from any text, on one line."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "****")
        # Drop python-oracledb's "Help: https://..." lines; keep the rest as one line.
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("Help: ")]
        text = " ".join(lines)
        return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."


def full_code(exc: oracledb.Error) -> str:
    """The error's code (``ORA-00001``, ``DPY-6005``), or ``""`` when it has none."""
    error = exc.args[0] if exc.args else None
    return str(getattr(error, "full_code", "") or "")


def _session_dead(exc: oracledb.Error) -> bool:
    error = exc.args[0] if exc.args else None
    return bool(getattr(error, "is_session_dead", False))


def convert(exc: oracledb.Error, conflict: str, scrub: Scrubber, pool_timeout: float) -> BackendError | ConflictError:
    """The datacon error for a python-oracledb exception (the caller chains it).

    ORA-00001 becomes ``ConflictError(conflict)``; DPY-4005 ``PoolTimeoutError``; a
    connection failure (``UNAVAILABLE_CODES``, any DPY-6xxx connect error, or an error
    after which python-oracledb considers the session dead) ``BackendUnavailableError``;
    anything else ``BackendError``. Messages carry the code and the driver's text with the
    password and the connect descriptor replaced by ``****``.
    """
    code = full_code(exc)
    if code in CONFLICT_CODES:
        return ConflictError(conflict or "Oracle: duplicate key (ORA-00001)")
    detail = scrub(str(exc) or type(exc).__name__)
    if code in POOL_TIMEOUT_CODES:
        return PoolTimeoutError(f"Oracle: no pooled connection became free within {pool_timeout:g} s ({detail})")
    if code in UNAVAILABLE_CODES or code.startswith("DPY-6") or _session_dead(exc):
        return BackendUnavailableError(f"Oracle unavailable: {detail}")
    return BackendError(f"Oracle error: {detail}")


@contextmanager
def translate(conflict: str, scrub: Scrubber, pool_timeout: float) -> Iterator[None]:
    """Re-raise python-oracledb errors raised inside the block as datacon errors (chained)."""
    try:
        yield
    except oracledb.Error as exc:
        raise convert(exc, conflict, scrub, pool_timeout) from exc
