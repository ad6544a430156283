"""Rows to models and models to bind parameters, generated once per store from the declared columns.

Like cattrs' generated structuring functions, each decoder and encoder is a small Python
function written for one record and one schema (which columns are present, where each sits
in the SELECT), then compiled: a row is decoded by position with no per-column branching on
the hot path. The generated source holds only the declared logical column names (Python
identifiers, checked by ``compile_function``), integer positions and the literals ``None``,
``""`` and ``[]``; never a configured name or a value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from datacon._columns import Column, Kind, Record, compile_function
from datacon._time import utc_now
from datacon.errors import BackendError

from .dialect import Dialect

__all__ = ["Decoder", "Encoder", "row_decoder", "row_encoder"]

T = TypeVar("T")
Decoder = Callable[[tuple[Any, ...]], T]
Encoder = Callable[[Any], dict[str, Any]]

_DECODE_ERRORS = (ValueError, TypeError, OverflowError)
_LITERALS: tuple[Any, ...] = (None, "", [])


def _default(column: Column) -> str:
    if column.default_when_skipped not in _LITERALS:
        raise ValueError(f"unsupported default for column {column.name}")
    return repr(column.default_when_skipped)


def _object(value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    # The value itself is never echoed (upstream postgres.rs parse_metadata).
    raise BackendError(f"expected JSON object for conversation metadata, got JSON {type(value).__name__}")


def row_decoder(record: Record, fields: Sequence[str], model: Callable[..., T], dialect: Dialect) -> Decoder[T]:
    """A function turning a row of a SELECT that returns ``fields`` (logical names, in order)
    into ``model``; skipped columns read as their declared defaults (a timestamp as now).

    An unreadable value (only rows written outside datacon) raises ``BackendError`` naming
    the record and the error type, never the value.
    """
    where = {name: n for n, name in enumerate(fields)}
    arguments = []
    for column in record:
        n = where.get(column.name)
        if n is None:
            value = "utc_now()" if column.kind is Kind.TIME else _default(column)
        elif column.kind is Kind.TIME:
            value = f"decode_time(row[{n}])"
        elif column.kind is Kind.JSON:
            value = f"decode_json(row[{n}], {_default(column)})"
            if column.object_only:
                value = f"json_object({value})"
        elif not column.nullable and column.kind is Kind.TEXT and dialect.empty_string_is_null:
            value = f"(row[{n}] or {_default(column)})"  # '' was stored as NULL
        else:
            value = f"row[{n}]"
        arguments.append(f"{column.name}={value}")
    source = (
        "def decode(row):\n"
        "    try:\n"
        f"        return model({', '.join(arguments)})\n"
        "    except DECODE_ERRORS as exc:\n"
        "        raise unreadable(row, exc) from exc\n"
    )

    def unreadable(row: tuple[Any, ...], exc: Exception) -> BackendError:
        record_id = row[0] if row else "?"
        return BackendError(
            f"{dialect.display} {record.kind} {record_id} has an unreadable column ({type(exc).__name__})"
        )

    namespace = {
        "model": model,
        "decode_time": dialect.decode_time,
        "decode_json": dialect.decode_json,
        "json_object": _object,
        "utc_now": utc_now,
        "DECODE_ERRORS": _DECODE_ERRORS,
        "unreadable": unreadable,
    }
    decoder: Decoder[T] = compile_function("decode", source, namespace)
    return decoder


def row_encoder(record: Record, fields: Sequence[str], dialect: Dialect) -> Encoder:
    """A function giving the bind parameters of a model's ``fields`` (the present columns):
    timestamps and JSON encoded by the dialect (a JSON-object column's ``None`` as SQL NULL).

    :raises InvalidInputError: a JSON value cannot be encoded (before any I/O).
    """
    items = []
    for name in fields:
        column = record[name]
        value = f"m.{name}"
        if column.kind is Kind.TIME:
            value = f"encode_time({value})"
        elif column.kind is Kind.JSON:
            encoded = f"encode_json({value}, {name!r})"
            value = f"(None if {value} is None else {encoded})" if column.object_only else encoded
        items.append(f"{name!r}: {value}")
    source = f"def encode(m):\n    return {{{', '.join(items)}}}\n"
    namespace = {"encode_time": dialect.encode_time, "encode_json": dialect.encode_json}
    encoder: Encoder = compile_function("encode", source, namespace)
    return encoder
