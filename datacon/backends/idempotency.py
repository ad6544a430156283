"""Idempotency keys (SPEC 7.3), shared by every backend: the key, its scope and fingerprint.

The guard turns a caller's ``idempotency_key`` into an :class:`Idempotency`: the key, the
operation (and the conversation, for ``append_items``) that scope it, the SHA-256
*fingerprint* of the call's arguments as given (canonical JSON through the one converter),
and how long it is kept. A backend that gets one does, **in the same transaction (or Lua
script, or under the same lock) as the write**:

1. look the key up in its scope (an expired one counts as absent);
2. found with the same fingerprint: return the stored result, writing nothing
   (:meth:`Idempotency.replay`); with another fingerprint: ``ConflictError``;
3. absent: write the records and the key with the call's result (:meth:`Idempotency.encode`),
   kept ``ttl_secs``; if the write fails, neither is written, so the key stays unused.

Concurrent calls with one key are resolved by the backend's uniqueness (a primary key; the
key read and set in the one atomic script of the write; a lock): one writes, the others
replay its result (or, where the database reports the race as a duplicate key, get
``ConflictError``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from datacon._serde import converter
from datacon.errors import ConflictError, InvalidInputError

__all__ = [
    "DEFAULT_TTL_SECS",
    "KEY_MAX",
    "Idempotency",
    "check_key",
    "fingerprint",
    "resolve",
]

#: How long a key is kept by default (``StorageFactoryConfig.idempotency_ttl_secs``).
DEFAULT_TTL_SECS: Final = 86_400
#: The longest key accepted (characters).
KEY_MAX: Final = 255


def check_key(key: object) -> str | None:
    """``key`` if it is ``None`` or a string of 1-255 characters, else ``InvalidInputError``."""
    if key is None:
        return None
    if not isinstance(key, str):
        raise InvalidInputError(f"idempotency_key must be a string, got {type(key).__name__}")
    if not 1 <= len(key) <= KEY_MAX:
        raise InvalidInputError(f"idempotency_key must be 1 to {KEY_MAX} characters long, got {len(key)}")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError("idempotency_key contains a lone surrogate, which cannot be stored") from None
    return key


def fingerprint(operation: str, arguments: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``arguments`` as given (the one converter's form,
    keys sorted), so a retry with equal arguments has the same fingerprint."""
    data = {"operation": operation, "arguments": converter.unstructure(arguments)}
    try:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"{operation}: the arguments are not JSON-serialisable: {exc}") from None
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@attrs.frozen
class Idempotency:
    """One call's idempotency key, scoped, with the fingerprint of its arguments.

    :ivar operation: the ``StorageOperation`` value of the call (``create_conversation``, ...).
    :ivar key: the caller's key (1-255 characters).
    :ivar fingerprint: 64 hex digits (:func:`fingerprint`).
    :ivar ttl_secs: how long the key is kept after the write (at least).
    :ivar conversation_id: the conversation scoping an ``append_items`` key, else ``None``.
    """

    operation: str
    key: str
    fingerprint: str
    ttl_secs: int = DEFAULT_TTL_SECS
    conversation_id: str | None = None

    @property
    def scope(self) -> str:
        """The operation, and ``":"`` and the conversation id for ``append_items``."""
        if self.conversation_id is None:
            return self.operation
        return f"{self.operation}:{self.conversation_id}"

    def expires_at(self, now: datetime) -> datetime:
        """When a key written at ``now`` may be forgotten."""
        return now + timedelta(seconds=self.ttl_secs)

    @staticmethod
    def encode(result: object) -> str:
        """The call's result as JSON text (the one converter's form), to store with the key."""
        return json.dumps(converter.unstructure(result), separators=(",", ":"), ensure_ascii=False)

    def replay(self, stored_fingerprint: str, stored_result: str, cls: Any) -> Any:
        """The stored result (JSON text) as ``cls`` if the stored fingerprint is this call's,
        else ``ConflictError`` (the key was used with other arguments)."""
        if stored_fingerprint != self.fingerprint:
            raise ConflictError(
                f"idempotency_key {self.key!r} was already used for {self.operation} with other arguments"
            )
        return converter.structure(json.loads(stored_result), cls)


def resolve(
    given: Idempotency | str | None,
    operation: str,
    arguments: Callable[[], dict[str, Any]],
    conversation_id: str | None = None,
) -> Idempotency | None:
    """A backend method's ``idempotency_key`` as an :class:`Idempotency` (the guard passes one;
    a direct caller of a backend may pass the plain key, fingerprinted here with
    ``arguments()``, called only then)."""
    if given is None or isinstance(given, Idempotency):
        return given
    key = check_key(given)
    assert key is not None
    return Idempotency(operation, key, fingerprint(operation, arguments()), DEFAULT_TTL_SECS, conversation_id)
