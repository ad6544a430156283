"""The dump format: JSON Lines, one record per line.

The dump format is JSON Lines (UTF-8), one record per line, in this order: every
conversation, every item, every link, every response (each group by id, links by
conversation and then in its list order ``(added_at, sequence, item_id)``, so that an import,
which sequences links in the order given, keeps the order of links sharing one ``added_at``).
Each line is a JSON object with keys sorted and no spaces, holding a ``"type"`` field
(``"conversation"``, ``"item"``, ``"link"`` or ``"response"``) and the record's fields as the
datacon cattrs converter (``datacon._serde.converter``) writes them: the model's attributes,
which are the record's columns declared in ``datacon._columns`` (``tests/test_columns.py``
keeps the two and this list equal), checked on import as declared there (widths, UTC
timestamps, metadata an object):

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
from typing import Any, TypeAlias

from datacon._columns import BY_KIND
from datacon._serde import converter, structure
from datacon._validate import check_record
from datacon.backends.base import RECORD_KINDS, RecordKind
from datacon.errors import InvalidInputError
from datacon.models import Conversation, ConversationItem, Link, StoredResponse

__all__ = ["KINDS", "Kind", "Record", "dump_record", "kind_of", "parse_record", "read_records"]

Kind: TypeAlias = RecordKind
KINDS: tuple[Kind, ...] = RECORD_KINDS
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
        record: Record = structure(data, cls, kind)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}{exc}") from None
    try:
        _check(record)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}invalid {kind}: {exc}") from None
    return record


def _check(record: Record) -> None:
    # The same limits the guard applies to every write, since restore_* bypasses it.
    check_record(BY_KIND[kind_of(record)], record)


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
