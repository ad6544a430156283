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
from json.encoder import encode_basestring  # the C quoter
from typing import Any, TypeVar

import attrs

from datacon._columns import ITEM_PACKED, Column, Kind, Record, compile_function
from datacon._serde import dump_json, loads
from datacon._time import utc_now
from datacon.errors import BackendError

from .dialect import Dialect

__all__ = [
    "Decoder",
    "Encoder",
    "PackedDecoder",
    "RowsDecoder",
    "packed_decoder",
    "row_decoder",
    "row_encoder",
    "rows_decoder",
]

T = TypeVar("T")
Decoder = Callable[[tuple[Any, ...]], T]
RowsDecoder = Callable[[Sequence[tuple[Any, ...]]], list[T]]
Encoder = Callable[[Any], dict[str, Any]]
PackedDecoder = Callable[[Sequence[tuple[Any, ...]]], list[T] | None]

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
    decoder: Decoder[T] = _decoders(record, fields, model, dialect)["decode"]
    return decoder


def rows_decoder(record: Record, fields: Sequence[str], model: Callable[..., T], dialect: Dialect) -> RowsDecoder[T]:
    """``row_decoder``'s function for a whole result: a list of models, the same as decoding
    each row, with one list comprehension instead of one call per row (a page of 100 items
    decodes about a quarter faster). An unreadable row raises ``row_decoder``'s error."""
    decoder: RowsDecoder[T] = _decoders(record, fields, model, dialect)["decode_rows"]
    return decoder


def _decoders(record: Record, fields: Sequence[str], model: Callable[..., T], dialect: Dialect) -> dict[str, Any]:
    where = {name: n for n, name in enumerate(fields)}
    # The dialect's decode_json is the shared one, whose first case is ``loads`` of text.
    inline_text = type(dialect).decode_json is Dialect.decode_json
    values = {}
    for column in record:
        n = where.get(column.name)
        if n is None:
            value = "utc_now()" if column.kind is Kind.TIME else _default(column)
        elif column.kind is Kind.TIME:
            value = f"decode_time(row[{n}])"
        elif column.kind is Kind.JSON:
            value = f"decode_json(row[{n}], {_default(column)})"
            if inline_text:  # text (the usual case) parsed here: one call fewer per value
                value = f"(loads(v) if (v := row[{n}]).__class__ is str else decode_json(v, {_default(column)}))"
            if column.object_only:
                value = f"json_object({value})"
        elif not column.nullable and column.kind is Kind.TEXT and dialect.empty_string_is_null:
            value = f"(row[{n}] or {_default(column)})"  # '' was stored as NULL
        else:
            value = f"row[{n}]"
        values[column.name] = value
    # Positionally, in the attrs class's field order (a third cheaper than keywords), when
    # every field is a column; keywords otherwise.
    declared = attrs.fields(model) if isinstance(model, type) and attrs.has(model) else ()
    names = [field.name for field in declared if field.init and not field.kw_only and field.alias == field.name]
    if len(names) == len(declared) and sorted(names) == sorted(values):
        arguments = ", ".join(values[name] for name in names)
    else:
        arguments = ", ".join(f"{name}={value}" for name, value in values.items())
    source = (
        "def decode(row):\n"
        "    try:\n"
        f"        return model({arguments})\n"
        "    except DECODE_ERRORS as exc:\n"
        "        raise unreadable(row, exc) from exc\n"
        "\n"
        "def decode_rows(rows):\n"
        "    try:\n"
        f"        return [model({arguments}) for row in rows]\n"
        "    except DECODE_ERRORS:\n"
        "        pass\n"
        "    return [decode(row) for row in rows]  # raises the first unreadable row's error\n"
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
        "loads": loads,
        "json_object": _object,
        "utc_now": utc_now,
        "DECODE_ERRORS": _DECODE_ERRORS,
        "unreadable": unreadable,
    }
    decode_rows = compile_function("decode_rows", source, namespace)
    return {"decode_rows": decode_rows, "decode": decode_rows.__globals__["decode"]}


def row_encoder(record: Record, fields: Sequence[str], dialect: Dialect, packed: bool = False) -> Encoder:
    """A function giving the bind parameters of a model's ``fields`` (the present columns):
    timestamps and JSON encoded by the dialect (a JSON-object column's ``None`` as SQL NULL).
    With ``packed`` (every column of ``record`` is in ``fields``), also the record's packed
    copy (``ITEM_PACKED``, last): a JSON array of the column values in ``record``'s order,
    text quoted, JSON as its encoded text, the time as encoded (an integer).

    :raises InvalidInputError: a JSON value cannot be encoded (before any I/O).
    """
    if packed:
        return _packing_encoder(record, fields, dialect)
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
    namespace = {"encode_time": dialect.encode_time, "encode_json": _json_encoder(dialect)}
    encoder: Encoder = compile_function("encode", source, namespace)
    return encoder


def _json_encoder(dialect: Dialect) -> Any:
    """The dialect's ``encode_json``; the shared one's ``dump_json`` itself, without its frame."""
    if type(dialect).encode_json is Dialect.encode_json:
        return dump_json
    return dialect.encode_json


def _packing_encoder(record: Record, fields: Sequence[str], dialect: Dialect) -> Encoder:
    if list(fields) != [column.name for column in record]:
        raise ValueError(f"a packed copy needs every {record.kind} column, in order")
    lines, parts = [], []
    for column in record:
        name = column.name
        if column.kind is Kind.TIME:
            lines.append(f"    {name} = encode_time(m.{name})")
            parts.append(f"{{{name}}}")
        elif column.kind is Kind.JSON and not column.object_only:
            lines.append(f"    {name} = encode_json(m.{name}, {name!r})")
            parts.append(f"{{{name}}}")
        elif column.kind in (Kind.ID, Kind.TEXT):
            lines.append(f"    {name} = m.{name}")
            parts.append(f"{{'null' if {name} is None else quote({name})}}")
        else:
            raise ValueError(f"column {name} cannot be packed")
    row = ", ".join(f"{column.name!r}: {column.name}" for column in record)
    source = (
        "def encode(m):\n" + "\n".join(lines) + f'\n    return {{{row}, {ITEM_PACKED!r}: f"[{",".join(parts)}]"}}\n'
    )
    namespace = {"encode_time": dialect.encode_time, "encode_json": _json_encoder(dialect), "quote": encode_basestring}
    encoder: Encoder = compile_function("encode", source, namespace)
    return encoder


def packed_decoder(record: Record, model: Callable[..., T], dialect: Dialect) -> PackedDecoder[T]:
    """A function turning rows of one column, ``row_encoder``'s packed copies, into ``model``
    (positional, in ``record``'s order, which must be the model's); ``None`` when any row is
    not such a copy (NULL, or not a JSON array of the record's columns), which the caller
    then reads from the columns: the same records either way (tests/backends/test_sqlite_packed.py)."""
    fields = attrs.fields(model) if isinstance(model, type) and attrs.has(model) else ()
    declared = [field.name for field in fields]
    if declared != [column.name for column in record]:
        raise ValueError(f"{model!r} does not take the {record.kind} columns in order")
    names = [f"c{n}" for n in range(len(record.columns))]
    values = [
        f"decode_time({name})" if column.kind is Kind.TIME else name for name, column in zip(names, record, strict=True)
    ]
    source = (
        "def unpack(rows):\n"
        "    try:\n"
        f"        return [model({', '.join(values)}) for {', '.join(names)} in [loads(row[0]) for row in rows]]\n"
        "    except DECODE_ERRORS:\n"
        "        return None\n"
    )
    namespace = {"model": model, "loads": loads, "decode_time": dialect.decode_time, "DECODE_ERRORS": _DECODE_ERRORS}
    unpack: PackedDecoder[T] = compile_function("unpack", source, namespace)
    return unpack
