"""The one cattrs converter, and JSON helpers every backend uses."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from cattrs.preconf.json import make_converter

from datacon._time import parse_iso, to_iso
from datacon.errors import InvalidInputError

__all__ = ["converter", "dump_json", "load_json", "normalize_json"]

converter = make_converter(forbid_extra_keys=True)  # a typo in a config key is an error, not ignored
converter.register_unstructure_hook(datetime, to_iso)
converter.register_structure_hook(datetime, lambda value, _: parse_iso(value) if isinstance(value, str) else value)


def dump_json(value: Any, what: str) -> str:
    """Compact JSON text for ``value``; ``InvalidInputError`` if it is not JSON-serialisable.

    NaN and infinities are refused (they are not JSON and PostgreSQL rejects them),
    and so are lone surrogates, which cannot be stored as UTF-8 anywhere.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"{what} is not JSON-serialisable: {_short(exc)}") from exc
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{what} contains a lone surrogate, which cannot be stored as UTF-8") from exc
    return text


def load_json(text: str | bytes | None, default: Any = None) -> Any:
    """Parse JSON text; ``None`` or empty text gives ``default``."""
    if text is None or text == "" or text == b"":
        return default
    return json.loads(text)


def normalize_json(value: Any, what: str) -> Any:
    """A deep copy of ``value`` as JSON would give it back (tuples become lists, and so on).

    The memory backend stores this copy so callers mutating their objects later cannot
    change stored data, and so every backend returns the same shapes.
    """
    return json.loads(dump_json(value, what))


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."
