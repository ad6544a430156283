"""The dump format: JSON Lines, one record per line.

The dump format is JSON Lines (UTF-8), one record per line, in this order: every
conversation, every item, every link, every response (each group by id, links by
``(conversation_id, item_id)``). Each line is a JSON object with keys sorted and no spaces,
holding a ``"type"`` field (``"conversation"``, ``"item"``, ``"link"`` or ``"response"``) and
the record's fields as the datacon cattrs converter (``datacon._serde.converter``) writes them:

- conversation: ``id``, ``created_at``, ``metadata``
- item: ``id``, ``response_id``, ``item_type``, ``role``, ``content``, ``status``, ``created_at``
- link: ``conversation_id``, ``item_id``, ``added_at``
- response: ``id``, ``previous_response_id``, ``input``, ``created_at``, ``safety_identifier``,
  ``model``, ``conversation_id``, ``raw_response``

Datetimes are ISO-8601 UTC with six fractional digits and a ``Z`` (``2026-01-02T03:04:05.000006Z``).
Blank lines are ignored; an unknown ``type``, a missing or unknown field is an error naming the
line. Extra-column values are not part of a record (backends do not read them back).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, Literal, TypeAlias

from cattrs.errors import BaseValidationError, ClassValidationError
from cattrs.v import transform_error

from datacon._serde import converter
from datacon._time import utc_or_raise
from datacon._validate import check_id, check_item_fields, check_response_fields
from datacon.errors import InvalidInputError
from datacon.models import Conversation, ConversationItem, Link, StoredResponse

__all__ = ["KINDS", "Kind", "Record", "dump_record", "kind_of", "parse_record", "read_records"]

Kind: TypeAlias = Literal["conversation", "item", "link", "response"]
KINDS: tuple[Kind, ...] = ("conversation", "item", "link", "response")
Record: TypeAlias = Conversation | ConversationItem | Link | StoredResponse

_CLASSES: dict[str, type[Any]] = {
    "conversation": Conversation,
    "item": ConversationItem,
    "link": Link,
    "response": StoredResponse,
}


def kind_of(record: Record) -> Kind:
    """The ``"type"`` of a record."""
    if isinstance(record, Conversation):
        return "conversation"
    if isinstance(record, ConversationItem):
        return "item"
    if isinstance(record, Link):
        return "link"
    return "response"


def dump_record(record: Record) -> str:
    """The record's JSON line (without newline): canonical, so equal records give equal text."""
    data = converter.unstructure(record)
    data["type"] = kind_of(record)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def parse_record(line: str, lineno: int = 0) -> Record:
    """One record from its JSON line; ``InvalidInputError`` naming the line if it is not one."""
    where = f"line {lineno}: " if lineno else ""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{where}not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{where}expected a JSON object, got {type(data).__name__}")
    kind = data.pop("type", None)
    cls = _CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidInputError(f"{where}unknown record type {kind!r} (expected one of: {', '.join(KINDS)})")
    try:
        record: Record = converter.structure(data, cls)
    except (ClassValidationError, BaseValidationError) as exc:
        # transform_error says "<problem> @ $.<field>"; values are not echoed.
        problem, _, field = transform_error(exc, path="$")[0].rpartition(" @ ")
        field = field.removeprefix("$").lstrip(".")
        raise InvalidInputError(f"{where}invalid {kind}: {field + ': ' if field else ''}{problem}") from None
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{where}invalid {kind}: {exc}") from None
    try:
        _check(record)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}invalid {kind}: {exc}") from None
    return record


def _check(record: Record) -> None:
    # The same limits the guard applies to every write, since restore_* bypasses it.
    if isinstance(record, Conversation):
        check_id(record.id, "id")
        utc_or_raise(record.created_at, "created_at")
        if record.metadata is not None and not isinstance(record.metadata, dict):
            raise InvalidInputError("metadata must be a JSON object or null")
    elif isinstance(record, ConversationItem):
        check_id(record.id, "id")
        check_item_fields(record)
        utc_or_raise(record.created_at, "created_at")
    elif isinstance(record, Link):
        check_id(record.conversation_id, "conversation_id")
        check_id(record.item_id, "item_id")
        utc_or_raise(record.added_at, "added_at")
    else:
        check_id(record.id, "id")
        check_response_fields(record)
        utc_or_raise(record.created_at, "created_at")


def read_records(lines: Iterable[str | bytes]) -> Iterator[Record]:
    """Parse a JSON Lines stream lazily (text, or bytes lines in UTF-8); blank lines are skipped."""
    for lineno, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInputError(f"line {lineno}: not UTF-8 text") from None
        if line.strip():
            yield parse_record(line, lineno)
