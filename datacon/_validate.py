"""Argument checks shared by the guard (every write) and import (records as given).

Backends may rely on what these checks guarantee: ids are non-empty ``str`` of at most
64 characters, strings fit their columns and hold no NUL or lone surrogate, and datetimes
are aware UTC within ``TIME_MIN <= t < TIME_MAX`` (1900 to 2100, see ``_time``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from datacon._columns import CONVERSATIONS, ITEMS, RESPONSES, Kind, Record, compile_function
from datacon._serde import dump_json
from datacon._time import TIME_MAX, TIME_MIN, utc_or_raise
from datacon.errors import InvalidInputError
from datacon.models import ConversationItem, NewConversationItem, StoredResponse

__all__ = [
    "COUNT_MAX",
    "ID_MAX",
    "LONG_MAX",
    "SHORT_MAX",
    "check_count",
    "check_id",
    "check_item_fields",
    "check_json",
    "check_metadata",
    "check_record",
    "check_response_fields",
    "check_str",
    "check_time",
]

# Column widths of the SQL schemas (declared in datacon._columns); every backend enforces
# them so data can move between backends.
ID_MAX = CONVERSATIONS["id"].size
SHORT_MAX = ITEMS["role"].size
LONG_MAX = RESPONSES["model"].size
#: The largest ``limit``/``max_depth`` (any count) a call accepts: 2**31 - 1, which every
#: backend takes as it is (SQL LIMIT, Redis ZRANGE counts, Lua numbers); use ``None`` for "all".
COUNT_MAX = 2**31 - 1


def check_time(value: object, what: str) -> datetime:
    """``value`` in UTC; ``InvalidInputError`` unless it is an aware datetime in the accepted
    range, 1900-01-01T00:00:00Z <= value < 2100-01-01T00:00:00Z (the same on every backend)."""
    when = utc_or_raise(value, what)
    if TIME_MIN <= when < TIME_MAX:
        return when
    raise InvalidInputError(
        f"{what} must be from 1900-01-01T00:00:00Z up to, not including, 2100-01-01T00:00:00Z (got {when.isoformat()})"
    )


def check_str(value: object, what: str, max_len: int, *, optional: bool = False, empty_ok: bool = False) -> None:
    """Raise ``InvalidInputError`` unless ``value`` is a storable string (or ``None`` if optional)."""
    if type(value) is str and value.isascii() and 0 < len(value) <= max_len and "\x00" not in value:
        return  # the usual case, in one test: it runs for every id and text of every call
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
    if type(value) is str and value.isascii() and 0 < len(value) <= ID_MAX and "\x00" not in value:
        return value  # check_str's usual case, without its call
    check_str(value, what, ID_MAX)
    return value  # type: ignore[return-value]  # checked above


def check_count(value: object, what: str, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInputError(f"{what} must be an integer, got {type(value).__name__}")
    if value < 0:
        got = f" (got {value})" if value >= -COUNT_MAX else ""
        raise InvalidInputError(f"{what} must not be negative{got}")
    if value > COUNT_MAX:
        # The value itself is not echoed: it may have thousands of digits.
        hint = "; use None for no limit" if optional else ""
        raise InvalidInputError(f"{what} must be at most {COUNT_MAX} (2**31 - 1){hint}")


def check_json(value: Any, what: str) -> None:
    """The check every backend makes before writing a JSON value (no NaN or infinity, no lone
    surrogate, JSON types only): ``InvalidInputError`` otherwise."""
    dump_json(value, what)


def check_metadata(value: object) -> None:
    if value is not None and not isinstance(value, dict):
        raise InvalidInputError(f"metadata must be a JSON object (dict) or None, got {type(value).__name__}")


def _text_checks(record: Record, *, key: bool) -> tuple[tuple[str, int, bool, bool], ...]:
    """``(name, width, optional, empty_ok)`` of the id and text columns of ``record`` (its
    primary key only if ``key``): a required text may be empty (``item_type`` ``""``), an
    optional one is ``None`` or not empty, an id is never empty."""
    return tuple(
        (column.name, column.size, column.nullable, column.kind is Kind.TEXT and not column.nullable)
        for column in record
        if column.kind in (Kind.ID, Kind.TEXT) and (key or not column.primary_key)
    )


def _usual(checks: tuple[tuple[str, int, bool, bool], ...]) -> Callable[[Any], bool]:
    """A function telling whether every field of ``checks`` on a record is ``check_str``'s
    usual case (or ``None`` where optional): one expression per field, no call per field.
    False says nothing more; the full checks then run and raise with the reason. Generated
    from the declared columns (names are checked identifiers, widths ints)."""
    lines = ["def usual(m):"]
    for name, width, optional, _ in checks:
        test = f"(type(v) is str and v.isascii() and 0 < len(v) <= {int(width)} and '\\x00' not in v)"
        if optional:
            test = f"(v is None or {test})"
        lines += [f"    v = m.{name}", f"    if not {test}:", "        return False"]
    lines.append("    return True")
    usual: Callable[[Any], bool] = compile_function("usual", "\n".join(lines) + "\n", {})
    return usual


_ITEM_FIELDS = _text_checks(ITEMS, key=False)
_RESPONSE_FIELDS = _text_checks(RESPONSES, key=False)
_ITEM_USUAL = _usual(_ITEM_FIELDS)
_RESPONSE_USUAL = _usual(_RESPONSE_FIELDS)


def check_item_fields(item: NewConversationItem | ConversationItem) -> None:
    """The string fields of an item other than its id."""
    if _ITEM_USUAL(item):
        return  # every write of an item runs this: the usual case in one generated test
    for name, width, optional, empty_ok in _ITEM_FIELDS:
        check_str(getattr(item, name), name, width, optional=optional, empty_ok=empty_ok)


def check_response_fields(response: StoredResponse) -> None:
    """The string fields of a response other than its id."""
    if _RESPONSE_USUAL(response):
        return
    for name, width, optional, empty_ok in _RESPONSE_FIELDS:
        check_str(getattr(response, name), name, width, optional=optional, empty_ok=empty_ok)


def check_record(record: Record, value: Any) -> None:
    """Every declared column of a whole stored record (``value``, a model of ``record``), as an
    import gives it: ids and texts fit, timestamps are aware UTC, a JSON-object column holds
    an object or nothing, and every JSON column holds what every backend can store (no NaN or
    infinity, no lone surrogate: the check each backend makes before writing). Messages name
    the column."""
    for column in record:
        field = getattr(value, column.name)
        if column.kind is Kind.TIME:
            check_time(field, column.name)
        elif column.kind is Kind.JSON:
            if column.object_only and field is not None and not isinstance(field, dict):
                raise InvalidInputError(f"{column.name} must be a JSON object or null")
            check_json(field, column.name)
        else:
            empty_ok = column.kind is Kind.TEXT and not column.nullable
            check_str(field, column.name, column.size, optional=column.nullable, empty_ok=empty_ok)
