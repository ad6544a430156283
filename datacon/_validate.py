"""Argument checks shared by the guard (every write) and import (records as given).

Backends may rely on what these checks guarantee: ids are non-empty ``str`` of at most
64 characters, strings fit their columns and hold no NUL or lone surrogate.
"""

from __future__ import annotations

from datacon.errors import InvalidInputError
from datacon.models import ConversationItem, NewConversationItem, StoredResponse

__all__ = [
    "ID_MAX",
    "LONG_MAX",
    "SHORT_MAX",
    "check_count",
    "check_id",
    "check_item_fields",
    "check_metadata",
    "check_response_fields",
    "check_str",
]

# Column widths of the SQL schemas; every backend enforces them so data can move between backends.
ID_MAX = 64
SHORT_MAX = 32
LONG_MAX = 128


def check_str(value: object, what: str, max_len: int, *, optional: bool = False, empty_ok: bool = False) -> None:
    """Raise ``InvalidInputError`` unless ``value`` is a storable string (or ``None`` if optional)."""
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, got {type(value).__name__}")
    if not value and not empty_ok:
        raise InvalidInputError(f"{what} must not be empty")
    if len(value) > max_len:
        raise InvalidInputError(f"{what} is {len(value)} characters long; the maximum is {max_len}")
    if "\x00" in value:
        raise InvalidInputError(f"{what} contains a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInputError(f"{what} contains a lone surrogate, which cannot be stored as UTF-8") from None


def check_id(value: object, what: str) -> str:
    check_str(value, what, ID_MAX)
    return value  # type: ignore[return-value]  # checked above


def check_count(value: object, what: str, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInputError(f"{what} must be an integer, got {type(value).__name__}")
    if value < 0:
        raise InvalidInputError(f"{what} must not be negative (got {value})")


def check_metadata(value: object) -> None:
    if value is not None and not isinstance(value, dict):
        raise InvalidInputError(f"metadata must be a JSON object (dict) or None, got {type(value).__name__}")


def check_item_fields(item: NewConversationItem | ConversationItem) -> None:
    """The string fields of an item other than its id."""
    check_str(item.item_type, "item_type", SHORT_MAX, empty_ok=True)
    check_str(item.response_id, "response_id", ID_MAX, optional=True)
    check_str(item.role, "role", SHORT_MAX, optional=True)
    check_str(item.status, "status", SHORT_MAX, optional=True)


def check_response_fields(response: StoredResponse) -> None:
    """The string fields of a response other than its id."""
    check_str(response.previous_response_id, "previous_response_id", ID_MAX, optional=True)
    check_str(response.conversation_id, "conversation_id", ID_MAX, optional=True)
    check_str(response.safety_identifier, "safety_identifier", LONG_MAX, optional=True)
    check_str(response.model, "model", LONG_MAX, optional=True)
