"""The dialect seam: what differs between SQL databases, and nothing else."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import attrs

from datacon._serde import dump_json, loads
from datacon._time import to_iso

__all__ = ["UPSTREAM_OBJECT_NAMES", "Dialect", "Keyset"]

# Upstream's fixed index and constraint names. They do not follow table renames there, which
# breaks a second (renamed) schema in the same database; datacon keeps them for the default
# table names (so an upstream database is recognised) and derives them from the table otherwise.
UPSTREAM_OBJECT_NAMES = {
    "links_pk": ("conversation_item_links", "pk_conv_item_link"),
    "links_idx": ("conversation_item_links", "conv_item_links_conv_idx"),
    "links_order_idx": ("conversation_item_links", "conv_item_links_order_idx"),
    "safety_idx": ("responses", "responses_safety_idx"),
}
_DERIVED_SUFFIX = {
    "links_pk": "_pk",
    "links_idx": "_conv_idx",
    "links_order_idx": "_order_idx",
    "safety_idx": "_safety_idx",
}


class Keyset(enum.Enum):
    """How a page of links continues after the cursor link ``(added_at, seq, item_id)``.

    The cursor is resolved inside the page query, in this conversation's links only; an
    unknown (or no) cursor lists from the start.
    """

    #: Scalar subqueries give the cursor's ``added_at`` (a sentinel below/above every
    #: timestamp when unknown) and sequence, and row values compare
    #: ``(added_at, seq, item_id) > (x, s, y)``.
    ROW_VALUES = "row values"
    #: The same scalar subquery, the row comparison written out with ``AND``/``OR``.
    EXPANDED = "expanded"
    #: The cursor link is LEFT JOINed (upstream's Oracle query): no match leaves it NULL.
    JOINED = "joined"


@attrs.frozen
class Dialect:
    """One SQL database's syntax and value encodings, used by the shared SQL layer.

    A dialect is a frozen instance: subclasses set the class attributes (what is fixed for
    the database) and override the methods whose default does not fit; the fields are what
    varies per schema (the owner of the tables, how many rows one INSERT may carry). Every
    method returns SQL *fragments* or Python values; whole statements are assembled only in
    ``datacon.backends._sql.render``, from identifiers that ``SchemaConfig.validate`` has
    already restricted to ``[A-Za-z0-9_]``.
    """

    #: The schema owning the tables (as written in SQL), qualifying every table and index;
    #: ``None`` for the connection's default. Oracle and Postgres set it from
    #: ``SchemaConfig.owner``; SQLite ignores the owner.
    owner: str | None = None
    #: Most rows one multi-row INSERT carries (bind-parameter limits); more go in a transaction.
    max_rows_per_insert: int = 500

    #: Short name used in messages and in the migration hint ("postgres", "sqlite").
    name: ClassVar[str]
    #: Name shown in error messages ("Postgres", "SQLite").
    display: ClassVar[str]
    #: Column type of the JSON columns (JSON text is always what is bound and read).
    json_type: ClassVar[str]
    #: Column type of the timestamp columns.
    timestamp_type: ClassVar[str]
    #: Column type of a 64-bit integer (the links' sequence).
    bigint_type: ClassVar[str] = "BIGINT"
    #: SQL literals below and above every storable timestamp (keyset cursor sentinels).
    time_min: ClassVar[str]
    time_max: ClassVar[str]
    #: How a recursive common table expression opens (Oracle: plain ``WITH``).
    recursive_with: ClassVar[str] = "WITH RECURSIVE"
    #: A clause after a recursive CTE that ends the recursion at a row already on the path
    #: (Oracle's ``CYCLE``, where a recursive ``WITH`` allows only ``UNION ALL``). Empty: the
    #: unbounded chain uses ``UNION``, which discards repeated rows.
    cycle_clause: ClassVar[str] = ""
    #: ``IF NOT EXISTS`` on CREATE TABLE / CREATE INDEX; a dialect without it checks the
    #: catalog first (``table_exists_sql``) and creates only what is missing.
    create_if_not_exists: ClassVar[bool] = True
    #: How a page continues after its cursor.
    keyset: ClassVar[Keyset] = Keyset.ROW_VALUES
    #: Whether ``list_items``' first page (no cursor) is a plain ordered scan of the
    #: conversation's links instead of the cursor query with a NULL cursor. SQLite always reads
    #: it by the page index (10 to 20% cheaper); PostgreSQL's planner may then expect the
    #: whole conversation and choose a join and a sort (and, prepared, it read the newest 20
    #: of 1,000 links slower: 289 against 202 us), so it keeps the cursor query.
    plain_first_page: ClassVar[bool] = False
    #: Whether the items table keeps each row's packed copy (``ITEM_PACKED``, migration v6),
    #: which ``list_items`` reads instead of the seven columns. SQLite only: in process, a page
    #: costs what its rows cost to fetch and decode (a quarter less this way); on a server the
    #: round trip and the server's work dominate, and a wider row costs every write.
    packed_items: ClassVar[bool] = False
    #: What turns an INSERT into "insert unless the key exists" (restores of exports).
    insert_ignore_suffix: ClassVar[str] = " ON CONFLICT DO NOTHING"
    #: Whether claiming an idempotency key can fail as a duplicate key when another call
    #: claims it at the same moment (Oracle's MERGE; ``ON CONFLICT DO NOTHING`` waits instead).
    key_claim_may_race: ClassVar[bool] = False
    #: Whether a data-modifying CTE can delete the links and the conversation in one statement.
    writable_cte: ClassVar[bool] = False
    #: Whether a new link's highest sequence is read through a row range on the order index
    #: rather than ``MAX`` under two equalities (render's ``_highest_sequence``): where a
    #: prepared statement keeps a generic plan made while the table was nearly empty.
    sequence_by_range: ClassVar[bool] = False
    #: Whether the links' primary key is ``(item_id, conversation_id)`` (migration v7) rather
    #: than upstream's ``(conversation_id, item_id)``: it then finds an item's links too, so
    #: there is no separate links-by-item index (one index entry fewer per link written). A
    #: conversation's links are found through the page index, which leads with it. PostgreSQL
    #: only: SQLite would have to rebuild the table, and Oracle's cannot be tested here.
    links_key_by_item: ClassVar[bool] = False
    #: An expression, the same for every statement of one transaction and higher in every
    #: later one, that a new link's sequence starts above (``None``: the highest sequence of
    #: the links with that ``added_at`` alone, enough where writers are serialised: SQLite's
    #: one writer). Two concurrent transactions then never draw the same sequences (render's
    #: ``link_row``).
    link_sequence_base: ClassVar[str | None] = None
    #: Longest identifier in bytes (``None``: no limit below the schema rules' 128); the
    #: rendered names, derived index and constraint names included, are checked against it.
    max_identifier_bytes: ClassVar[int | None] = None
    #: Whether the database stores ``''`` as NULL (Oracle): a text column that must hold
    #: ``''`` is then nullable, and its NULL reads back as the column's default.
    empty_string_is_null: ClassVar[bool] = False
    #: Most ids one ``IN (...)`` list carries (Oracle's limit is 1000 expressions): the
    #: largest batch of ``prune``/``erase_identifier``.
    max_in_list: ClassVar[int] = 1000
    #: Whether the migration DDL is idempotent by itself (``IF [NOT] EXISTS``); if not, the
    #: runner passes the table's current columns so only what is needed is rendered.
    idempotent_migrations: ClassVar[bool] = True

    # Fragments written as templates, ``{}`` standing for what is filled in.
    #: A named bind parameter's placeholder (``:{}``, ``%({})s``).
    param_format: ClassVar[str]
    #: A quoted identifier, and the case it is folded to first (``"upper"``, ``"lower"`` or ``""``).
    ident_format: ClassVar[str] = '"{}"'
    ident_case: ClassVar[str] = ""
    #: The type of a string column of at most ``{}`` characters.
    varchar_format: ClassVar[str] = "VARCHAR({})"
    #: The row-limiting clause that ends a query, for a placeholder.
    limit_format: ClassVar[str] = "LIMIT {}"
    #: A SELECT expression giving a JSON column as text (so SQL NULL and JSON null differ).
    json_out_format: ClassVar[str] = "{}"

    def param(self, name: str) -> str:
        """The placeholder of the named bind parameter ``name``."""
        return self.param_format.format(name)

    def ident(self, name: str) -> str:
        """A (validated) identifier, quoted so reserved words and leading digits work."""
        folded = name.upper() if self.ident_case == "upper" else name.lower() if self.ident_case == "lower" else name
        return self.ident_format.format(folded)

    def varchar(self, size: int) -> str:
        """The type of a string column of at most ``size`` characters."""
        return self.varchar_format.format(size)

    def table(self, name: str) -> str:
        """The reference of (validated) table ``name``: quoted, owner-qualified when there is one."""
        return self.qualify(self.ident(name))

    def qualify(self, quoted: str) -> str:
        """A quoted table or index name, qualified with the owner when there is one."""
        return f"{self.owner}.{quoted}" if self.owner else quoted

    def object_name(self, kind: str, table: str) -> str | None:
        """The name of index or constraint ``kind`` on (configured) ``table``; ``None`` when
        this dialect creates no such object.

        Kinds: ``links_pk`` (the links table's primary key), ``links_idx`` (the page index),
        ``prev_idx`` (responses by ``previous_response_id``), ``safety_idx`` (responses by
        ``safety_identifier``).
        """
        if kind not in UPSTREAM_OBJECT_NAMES:
            return None
        default_table, upstream = UPSTREAM_OBJECT_NAMES[kind]
        return upstream if table == default_table else f"{table}{_DERIVED_SUFFIX[kind]}"

    def listing_index_name(self, table: str, column: str | None) -> str:
        """The name of a ``list_conversations`` index on (configured) conversations ``table``:
        by ``(created_at, id)`` (``column`` ``None``), or by extra ``column`` then those.

        These names are datacon's own (upstream has no such index), so one longer than the
        dialect's limit is shortened to fit, keeping a hash of the whole name (a server
        would truncate it silently, and two truncated names could be one, or a table's).
        """
        return self._fitted(f"{table}_{column}_list_idx" if column else f"{table}_list_idx")

    def _fitted(self, name: str) -> str:
        """``name``, shortened to the dialect's limit keeping a hash of the whole name."""
        limit = self.max_identifier_bytes
        if limit is not None and len(name) > limit:  # names are ASCII: one byte per character
            digest = hashlib.sha256(name.encode("ascii")).hexdigest()[:8]
            name = f"{name[: limit - 9]}_{digest}"
        return name

    def retention_index_name(self, table: str, what: str) -> str:
        """The name of an index that ``prune``/``erase_identifier`` read (migration v5) on
        (configured) ``table``: ``what`` is ``created`` (``(created_at, id)``), ``item``
        (links by item) or ``conversation`` (responses by conversation); shortened to fit as
        :meth:`listing_index_name`."""
        return self._fitted(f"{table}_{what}_idx")

    def create_table(self, ref: str, body: str) -> str:
        """CREATE TABLE ``ref`` (``body``) that leaves an existing table alone."""
        exists = "IF NOT EXISTS " if self.create_if_not_exists else ""
        return f"CREATE TABLE {exists}{ref} ({body})"

    def create_index(self, name: str, ref: str, columns: Sequence[str]) -> str:
        """CREATE INDEX ``name`` on table ``ref`` (quoted ``columns``) unless it exists."""
        exists = "IF NOT EXISTS " if self.create_if_not_exists else ""
        return f"CREATE INDEX {exists}{self.qualify(self.ident(name))} ON {ref} ({', '.join(columns)})"

    def drop_index(self, name: str) -> str:
        """DROP INDEX ``name`` if it exists."""
        return f"DROP INDEX IF EXISTS {self.qualify(self.ident(name))}"

    def replace_primary_key(self, ref: str, name: str, columns: Sequence[str]) -> list[str]:
        """The statements that make ``columns`` (unquoted, in order) the primary key of table
        ``ref``, named ``name``, replacing the one it has (whatever its name) unless that one
        already leads with ``columns[0]``. Dialects with ``links_key_by_item`` implement it."""
        raise NotImplementedError(f"{self.display} keeps the links' primary key as upstream's")

    def insert_rows(self, ref: str, columns: Sequence[str], rows: Sequence[Sequence[str]], key: int = 0) -> str:
        """One INSERT into table ``ref`` (quoted ``columns``) of ``rows`` (each its value
        expressions). One statement, so it is atomic: a duplicate key fails it whole.

        With ``key`` > 0, a row whose first ``key`` columns match an existing row is skipped
        instead, and not counted (restores of exports).
        """
        values = ", ".join(f"({', '.join(row)})" for row in rows)
        ignore = self.insert_ignore_suffix if key else ""
        return f"INSERT INTO {ref} ({', '.join(columns)}) VALUES {values}{ignore}"  # noqa: S608

    def limit(self, placeholder: str) -> str:
        """The row-limiting clause that ends a query."""
        return self.limit_format.format(placeholder)

    def json_out(self, expression: str) -> str:
        """A SELECT expression giving a JSON column as text (so SQL NULL and JSON null differ)."""
        return self.json_out_format.format(expression)

    def returning(self, column: str | None, key: str) -> str:
        """What ends an UPDATE so that fetching its result gives ``column`` of the updated row
        (or any value, here ``key``, when ``column`` is ``None``), and no row if none matched."""
        return f" RETURNING {key if column is None else column}"

    def time_in(self, placeholder: str) -> str:
        """How a bound timestamp is written to a timestamp column (as is by default)."""
        return placeholder

    def time_out(self, expression: str) -> str:
        """How a timestamp column is read in a SELECT list (as is by default)."""
        return expression

    # Values -----------------------------------------------------------------------------

    def encode_time(self, value: datetime) -> Any:
        """A timezone-aware UTC datetime as bound to a timestamp column."""
        return value

    def decode_time(self, value: Any) -> datetime:
        """A timestamp column's value as a timezone-aware UTC datetime.

        By default the driver gives a ``datetime``: an aware one is converted to UTC, a naive
        one is UTC wall time (Oracle's ``SYS_EXTRACT_UTC``).
        """
        if not isinstance(value, datetime):
            raise TypeError(f"expected a {self.timestamp_type}, got {type(value).__name__}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def encode_json(self, value: Any, what: str) -> str:
        """JSON text for a JSON column (``InvalidInputError`` before any I/O if impossible)."""
        return dump_json(value, what)

    def decode_json(self, value: Any, default: Any) -> Any:
        """A JSON column's value (text) as Python; SQL NULL gives ``default``."""
        if value.__class__ is str:  # the usual case first: one identity test per column
            return loads(value)
        if value is None:
            return default
        if isinstance(value, bytes | bytearray | memoryview):
            value = bytes(value).decode("utf-8")
        return json.loads(value)

    def extra_keys(self, supplied: Mapping[str, Any]) -> Mapping[str, Any]:
        """Hook-supplied extra-column values keyed as the schema declares the columns."""
        return supplied

    def encode_extra(self, value: Any) -> Any:
        """An extra-column value, bound with its own type: objects and arrays as JSON text."""
        if isinstance(value, dict | list | tuple):
            return dump_json(value, "extra column value")
        return value

    # Catalog probes and migration DDL ----------------------------------------------------

    #: Type of the versions table's ``version`` column.
    versions_version_type: ClassVar[str] = "INTEGER"
    #: Type and default of its ``applied_at`` column.
    versions_applied_at: ClassVar[str]

    @property
    def versions_table(self) -> str:
        """The migration-versions table as written in SQL (never owner-qualified in Postgres)."""
        return "_schema_versions"

    def versions_columns(self) -> str:
        """The column list of the versions table."""
        return (
            f"version {self.versions_version_type} NOT NULL PRIMARY KEY, description {self.varchar(512)}, "
            f"applied_at {self.versions_applied_at}"
        )

    def version_insert(self, insert: str) -> str:
        """The statement recording a migration, from its plain INSERT (as is by default)."""
        return insert

    def table_exists_sql(self) -> str:
        """A query with parameter ``name`` returning a row iff table ``name`` exists."""
        raise NotImplementedError

    def table_name_for_probe(self, table: str) -> str:
        """The value bound as ``name`` in ``table_exists_sql`` for the configured ``table``."""
        return table

    def columns_sql(self) -> str:
        """A query with parameter ``name`` returning one row per column name of that table."""
        raise NotImplementedError

    def add_column(self, table: str, column: str, sql_type: str, existing: frozenset[str] | None) -> list[str]:
        """Statements adding ``column`` to ``table`` (quoted) unless it is there."""
        raise NotImplementedError

    def drop_columns(self, table: str, columns: Sequence[str], existing: frozenset[str] | None) -> list[str]:
        """Statements dropping those of ``columns`` (quoted) that exist in ``table``."""
        raise NotImplementedError

    def rename_column(self, table: str, old: str, new: str) -> list[str]:
        """Statements renaming column ``old`` of ``table`` to ``new`` (all quoted)."""
        return [f"ALTER TABLE {self.qualify(table)} RENAME COLUMN {old} TO {new}"]

    # Helpers shared by dialects ---------------------------------------------------------

    @staticmethod
    def iso(value: datetime) -> str:
        """ISO 8601 UTC text (an extra column's datetime where the driver has no adapter)."""
        return to_iso(value)
