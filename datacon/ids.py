"""Id generation: conversation, item and response ids (made before any I/O)."""

from __future__ import annotations

import secrets
import threading
import time

__all__ = ["item_id_digits", "item_id_with", "make_item_id", "new_conversation_id", "new_response_id"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

_ITEM_PREFIXES = {
    "message": "msg",
    "reasoning": "rs",
    "mcp_call": "mcp",
    "mcp_list_tools": "mcpl",
    "function_call": "fc",
}


def new_conversation_id() -> str:
    """Return ``conv_`` followed by 50 lowercase hex characters (25 random bytes)."""
    return "conv_" + secrets.token_hex(25)


def make_item_id(item_type: str) -> str:
    """Return a new item id for ``item_type``: ``{prefix}_`` followed by 50 hex characters.

    Known types map to fixed prefixes (``message`` → ``msg``, ``reasoning`` → ``rs``,
    ``mcp_call`` → ``mcp``, ``mcp_list_tools`` → ``mcpl``, ``function_call`` → ``fc``);
    any other type uses its first three characters, and the empty type uses ``itm``.
    """
    return f"{_item_prefix(item_type)}_{secrets.token_hex(25)}"


def item_id_digits(count: int) -> str:
    """The random parts of ``count`` item ids, 50 hex digits each (25 random bytes, as
    ``make_item_id``'s), from one read of the system's random source: an append's ids."""
    return secrets.token_hex(25 * count)


def item_id_with(item_type: str, digits: str) -> str:
    """The id ``make_item_id(item_type)`` makes, with ``digits`` (50, from ``item_id_digits``)
    as its random part."""
    return f"{_item_prefix(item_type)}_{digits}"


def _item_prefix(item_type: str) -> str:
    prefix = _ITEM_PREFIXES.get(item_type)
    if prefix is None:
        prefix = item_type[:3] if item_type else "itm"
    return prefix


class _UlidGenerator:
    """Monotonic ULIDs: within one millisecond the random part is incremented.

    Ids minted by one process therefore sort in creation order even inside a millisecond;
    the lock makes that hold across threads (ids are minted in worker threads too).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand = 0

    def new(self) -> str:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms <= self._last_ms:
                now_ms = self._last_ms
                rand = self._last_rand + 1
                if rand >= 1 << 80:  # 80-bit overflow inside one millisecond: borrow the next one
                    now_ms += 1
                    rand = int.from_bytes(secrets.token_bytes(10))
            else:
                rand = int.from_bytes(secrets.token_bytes(10))
            self._last_ms, self._last_rand = now_ms, rand
        value = (now_ms << 80) | rand
        return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


_ULIDS = _UlidGenerator()


def new_response_id() -> str:
    """Return a new ULID: 26 Crockford base32 characters, sortable by creation time."""
    return _ULIDS.new()
