"""Each stored record's columns, declared once; DDL, statements, codecs and checks derive from them.

A :class:`Record` lists the logical columns of one table in their canonical order (the DDL
and SELECT order). Everything that names those columns reads them from here: the schema's
``CORE_COLUMNS``, the SQL renderer's DDL and select/insert lists, the SQL row decoders and
bind parameters, the Redis hash codec, and the argument checks. The logical name of a
column is also the attribute name of the model it is read into, and the name of its bind
parameter.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

__all__ = [
    "BY_KIND",
    "CONVERSATIONS",
    "ITEMS",
    "ITEM_PACKED",
    "LINKS",
    "LINK_SEQUENCE",
    "RECORDS",
    "RESPONSES",
    "Column",
    "Kind",
    "Record",
    "compile_function",
]


class Kind(enum.Enum):
    """What a column holds, which decides its SQL type and how its value is encoded."""

    #: A record id (``VARCHAR(64)``): never empty, compared as text.
    ID = "id"
    #: Short text of at most ``size`` characters.
    TEXT = "text"
    #: Any JSON value, stored as JSON text (``None`` as SQL NULL).
    JSON = "json"
    #: A timezone-aware UTC timestamp (microseconds).
    TIME = "time"


@attrs.frozen
class Column:
    """One logical column.

    ``size`` is the longest text an ``ID``/``TEXT`` column holds (its ``VARCHAR`` width and
    the front layer's length check). ``nullable=False`` is ``NOT NULL`` in the DDL (and an
    argument that must be given). ``default_when_skipped`` is what a skipped column reads as
    (upstream's defaults; a skipped ``TIME`` column reads as the time of the read), and also
    what SQL NULL reads as in a JSON column, or in a text column of a database that stores
    ``''`` as NULL (Oracle). ``primary_key`` marks the single-column key of a record table.
    ``object_only`` marks a JSON column that holds an object or nothing (conversation
    metadata): ``None`` is then stored as no value (SQL NULL, no hash field), not JSON ``null``.
    """

    name: str
    kind: Kind
    size: int = 0
    nullable: bool = True
    default_when_skipped: Any = None
    primary_key: bool = False
    object_only: bool = False


@attrs.frozen
class Record:
    """The columns of one logical table, in canonical order.

    ``table`` is the default table name (the key in ``SchemaConfig.tables()``), ``kind`` the
    record's name in messages (``conversation``, ``item``...).
    """

    table: str
    kind: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The logical column names, in canonical order."""
        return tuple(column.name for column in self.columns)

    def __iter__(self) -> Iterator[Column]:
        return iter(self.columns)

    def __getitem__(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)


_ID = 64

CONVERSATIONS = Record(
    "conversations",
    "conversation",
    (
        Column("id", Kind.ID, _ID, nullable=False, primary_key=True),
        Column("created_at", Kind.TIME),
        Column("metadata", Kind.JSON, object_only=True),
    ),
)
ITEMS = Record(
    "conversation_items",
    "item",
    (
        Column("id", Kind.ID, _ID, nullable=False, primary_key=True),
        Column("response_id", Kind.ID, _ID),
        Column("item_type", Kind.TEXT, 32, nullable=False, default_when_skipped=""),
        Column("role", Kind.TEXT, 32),
        Column("content", Kind.JSON),
        Column("status", Kind.TEXT, 32),
        Column("created_at", Kind.TIME),
    ),
)
#: The links table ignores ``skip_columns`` (upstream): it always has its three columns,
#: and its key is ``(conversation_id, item_id)``.
LINKS = Record(
    "conversation_item_links",
    "link",
    (
        Column("conversation_id", Kind.ID, _ID, nullable=False),
        Column("item_id", Kind.ID, _ID, nullable=False),
        Column("added_at", Kind.TIME),
    ),
)
#: The links table's sequence column (SQL, schema v4): assigned by the database when a link
#: is written, so links sharing one ``added_at`` list in the order they were linked. It is
#: not part of the link record (export, restore and ``Link`` carry no sequence: an export
#: lists each conversation's links in their order and a restore sequences them in the order
#: given, when it writes them). Links made before v4 hold 0: ties on it fall back
#: to the item id, the order they had before.
LINK_SEQUENCE = "seq"
#: The items table's packed copy (SQLite, migration v6): each row's whole record as one JSON
#: array, ``[id, response_id, item_type, role, content, status, created_at]`` (the time as the
#: column stores it), so a page reads and parses one column per item instead of seven. Written
#: with every item; a row without it (or unreadable) is read from the columns, which stay the
#: record of truth. Only where the items table has all its columns (no skip) and none is
#: named like it (``render.packs_items``).
ITEM_PACKED = "packed"
RESPONSES = Record(
    "responses",
    "response",
    (
        Column("id", Kind.ID, _ID, nullable=False, primary_key=True),
        Column("conversation_id", Kind.ID, _ID),
        Column("previous_response_id", Kind.ID, _ID),
        Column("input", Kind.JSON, default_when_skipped=[]),
        Column("created_at", Kind.TIME),
        Column("safety_identifier", Kind.TEXT, 128),
        Column("model", Kind.TEXT, 128),
        Column("raw_response", Kind.JSON),
    ),
)

#: Every record table by its default (logical) table name, in ``SchemaConfig.tables()`` order.
RECORDS: dict[str, Record] = {r.table: r for r in (CONVERSATIONS, RESPONSES, ITEMS, LINKS)}
#: Every record table by its record kind (``conversation``, ``item``, ``link``, ``response``).
BY_KIND: dict[str, Record] = {r.kind: r for r in RECORDS.values()}


def compile_function(name: str, source: str, namespace: Mapping[str, Any]) -> Any:
    """The function ``name`` defined by ``source``, with ``namespace`` as its globals.

    How codecs are derived from the declared columns (as cattrs generates its structuring
    functions): the caller writes the source from the declared logical names (checked
    identifiers), positions and literals; configured names and values go in ``namespace``,
    never in the source.
    """
    scope = dict(namespace)
    for column in (c for record in RECORDS.values() for c in record):
        if not column.name.isidentifier():
            raise ValueError(f"column name {column.name!r} is not an identifier")
    exec(compile(source, f"<datacon {name}>", "exec"), scope)  # noqa: S102  # our own source, see above
    return scope[name]
