"""The one cattrs converter, and JSON helpers every backend uses."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from cattrs.errors import BaseValidationError
from cattrs.preconf.json import make_converter
from cattrs.v import format_exception, transform_error

from datacon._time import to_iso, utc_or_raise
from datacon.errors import InvalidInputError

__all__ = ["converter", "dump_json", "load_json", "normalize_json", "structure"]

T = TypeVar("T")

converter = make_converter(forbid_extra_keys=True)  # a typo in a config key is an error, not ignored
converter.register_unstructure_hook(datetime, to_iso)


def _structure_datetime(value: Any, _: Any) -> datetime:
    """ISO-8601 text with any offset (or an aware datetime), converted to UTC; naive is refused."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInputError(f"not an ISO-8601 datetime: {value[:64]!r}") from None
    return utc_or_raise(value, "datetime")


converter.register_structure_hook(datetime, _structure_datetime)


def structure(data: Any, cls: type[T], what: str) -> T:
    """``cls`` from its unstructured form through the converter; ``InvalidInputError`` naming the
    field (``what``: the record's name in the message) if ``data`` is not one."""
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"{what}: expected a mapping, got {type(data).__name__}")
    try:
        return converter.structure(dict(data), cls)
    except BaseValidationError as exc:
        # transform_error says "<problem> @ $.<field>"; values are not echoed.
        problem, _, field = transform_error(exc, path="$", format_exception=_problem)[0].rpartition(" @ ")
        field = field.removeprefix("$").lstrip(".")
        raise InvalidInputError(f"invalid {what}: {field + ': ' if field else ''}{problem}") from None
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"invalid {what}: {exc}") from None


#: One encoder for every dump: ``json.dumps`` with options builds a new one per call (a third
#: of its time on short values). ``encode`` keeps no state between calls, so sharing is safe.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _one_shot_encoder() -> Callable[[Any], str]:
    """``_ENCODER.encode`` without its two Python frames (``encode``, ``iterencode``): the C
    encoder ``json`` builds for a one-shot dump, made with the same settings and a fresh
    circular-reference table per call, as ``json`` makes it. ``_ENCODER.encode`` itself where
    the C accelerator is missing or does not give the same text."""
    make: Any = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode
    default, basestring = _ENCODER.default, json.encoder.encode_basestring

    def encode(value: Any) -> str:
        return "".join(make({}, default, basestring, None, ":", ",", False, False, False)(value, 0))

    probe = [{"a": 1.5, "b": None, "c": "é\n", "d": [True, 2]}, "x"]
    try:
        same = encode(probe) == _ENCODER.encode(probe)
    except Exception:  # noqa: BLE001 - another signature: json's own path
        same = False
    return encode if same else _ENCODER.encode


_encode = _one_shot_encoder()


def dump_json(value: Any, what: str) -> str:
    """Compact JSON text for ``value``; ``InvalidInputError`` if it is not JSON-serialisable.

    NaN and infinities are refused (they are not JSON and PostgreSQL rejects them),
    and so are lone surrogates, which cannot be stored as UTF-8 anywhere.
    """
    try:
        text = _encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"{what} is not JSON-serialisable: {_short(exc)}") from exc
    if text.isascii():  # no surrogate possible; a flag read, not a copy of the text
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{what} contains a lone surrogate, which cannot be stored as UTF-8") from exc
    return text


#: The C scanner behind ``json.loads``, called without its two Python wrappers (type checks
#: and two whitespace regex matches per call): about 5x less per stored value.
_SCAN: Any = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # not in typeshed


def loads(text: str) -> Any:
    """``json.loads(text)``, with a fast path for compact text (what datacon writes): the
    same value, and the same error from ``json.loads`` for anything it does not accept."""
    try:
        value, end = _SCAN(text, 0)
    except (StopIteration, ValueError):  # leading whitespace or bad JSON: json.loads decides
        return json.loads(text)
    if end != len(text):  # trailing whitespace or extra data: json.loads decides
        return json.loads(text)
    return value


def load_json(text: str | bytes | None, default: Any = None) -> Any:
    """Parse JSON text; ``None`` or empty text gives ``default``."""
    if text is None or text == "" or text == b"":
        return default
    return loads(text) if text.__class__ is str else json.loads(text)


def normalize_json(value: Any, what: str) -> Any:
    """A deep copy of ``value`` as JSON would give it back (tuples become lists, and so on).

    The memory backend stores this copy so callers mutating their objects later cannot
    change stored data, and so every backend returns the same shapes.
    """
    return json.loads(dump_json(value, what))


def _problem(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, InvalidInputError):
        return str(exc)
    return format_exception(exc, type_)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."
