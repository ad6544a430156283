"""The dialect seam: what differs between SQL databases, and nothing else."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from datacon._serde import dump_json
from datacon._time import to_iso

__all__ = ["Dialect"]


class Dialect:
    """One SQL database's syntax and value encodings, used by the shared SQL layer.

    Subclasses set the class attributes and override the methods whose default does not
    fit. Every method returns SQL *fragments* or Python values; whole statements are
    assembled only in ``datacon.backends._sql.render`` (and a backend's own ``dialect.py``),
    from identifiers that ``SchemaConfig.validate`` has already restricted to
    ``[A-Za-z0-9_]``.
    """

    #: Short name used in messages and in the migration hint ("postgres", "sqlite").
    name: ClassVar[str]
    #: Name shown in error messages ("Postgres", "SQLite").
    display: ClassVar[str]
    #: Column type of the JSON columns (JSON text is always what is bound and read).
    json_type: ClassVar[str]
    #: Column type of the timestamp columns.
    timestamp_type: ClassVar[str]
    #: SQL literals below and above every storable timestamp (keyset cursor sentinels).
    time_min: ClassVar[str]
    time_max: ClassVar[str]
    #: How a recursive common table expression opens (Oracle: plain ``WITH``).
    recursive_with: ClassVar[str] = "WITH RECURSIVE"
    #: ``IF NOT EXISTS`` on CREATE TABLE / CREATE INDEX; a dialect without it checks the
    #: catalog first (``table_exists_sql``) and creates only what is missing.
    create_if_not_exists: ClassVar[bool] = True
    #: Whether row values compare, ``(a, b) > (x, y)`` (else the keyset predicate is expanded).
    row_values: ClassVar[bool] = True
    #: What turns an INSERT into "insert unless the key exists" (restores of exports).
    insert_ignore_suffix: ClassVar[str] = " ON CONFLICT DO NOTHING"
    #: Whether a data-modifying CTE can delete the links and the conversation in one statement.
    writable_cte: ClassVar[bool] = False
    #: Longest identifier in bytes (``None``: no limit below the schema rules' 128); the
    #: rendered names, derived index and constraint names included, are checked against it.
    max_identifier_bytes: ClassVar[int | None] = None
    #: Most rows one multi-row INSERT carries (bind-parameter limits); more go in a transaction.
    max_rows_per_insert: ClassVar[int] = 500
    #: Whether the migration DDL is idempotent by itself (``IF [NOT] EXISTS``); if not, the
    #: runner passes the table's current columns so only what is needed is rendered.
    idempotent_migrations: ClassVar[bool] = True

    def param(self, name: str) -> str:
        """The placeholder of the named bind parameter ``name``."""
        raise NotImplementedError

    def ident(self, name: str) -> str:
        """A (validated) identifier, quoted so reserved words and leading digits work."""
        return f'"{name}"'

    def varchar(self, size: int) -> str:
        """The type of a string column of at most ``size`` characters."""
        return f"VARCHAR({size})"

    def limit(self, placeholder: str) -> str:
        """The row-limiting clause that ends a query."""
        return f"LIMIT {placeholder}"

    def json_out(self, expression: str) -> str:
        """A SELECT expression giving a JSON column as text (so SQL NULL and JSON null differ)."""
        return expression

    def returning(self, column: str) -> str:
        """The clause that makes an UPDATE return ``column`` of the updated row."""
        return f"RETURNING {column}"

    # Values -----------------------------------------------------------------------------

    def encode_time(self, value: datetime) -> Any:
        """A timezone-aware UTC datetime as bound to a timestamp column."""
        return value

    def decode_time(self, value: Any) -> datetime:
        """A timestamp column's value as a timezone-aware UTC datetime."""
        raise NotImplementedError

    def encode_json(self, value: Any, what: str) -> str:
        """JSON text for a JSON column (``InvalidInputError`` before any I/O if impossible)."""
        return dump_json(value, what)

    def decode_json(self, value: Any, default: Any) -> Any:
        """A JSON column's value (text) as Python; SQL NULL gives ``default``."""
        if value.__class__ is str:  # the usual case first: one identity test per column
            return json.loads(value)
        if value is None:
            return default
        if isinstance(value, bytes | bytearray | memoryview):
            value = bytes(value).decode("utf-8")
        return json.loads(value)

    def encode_extra(self, value: Any) -> Any:
        """An extra-column value, bound with its own type: objects and arrays as JSON text."""
        if isinstance(value, dict | list | tuple):
            return dump_json(value, "extra column value")
        return value

    # Catalog probes and migration DDL ----------------------------------------------------

    #: The migration-versions table as written in SQL (never owner-qualified in Postgres).
    versions_table: ClassVar[str] = "_schema_versions"
    #: Type and default of its ``applied_at`` column.
    versions_applied_at: ClassVar[str]

    def versions_ddl(self, if_not_exists: str) -> str:
        """CREATE TABLE of the versions table (``if_not_exists`` is ``"IF NOT EXISTS "`` or ``""``)."""
        return (
            f"CREATE TABLE {if_not_exists}{self.versions_table} (version INTEGER NOT NULL PRIMARY KEY, "
            f"description {self.varchar(512)}, applied_at {self.versions_applied_at})"
        )

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

    # Helpers shared by dialects ---------------------------------------------------------

    @staticmethod
    def iso(value: datetime) -> str:
        """ISO 8601 UTC text (an extra column's datetime where the driver has no adapter)."""
        return to_iso(value)
