"""The PostgreSQL dialect: ``%(name)s`` params, JSON columns, TIMESTAMPTZ, data-modifying CTEs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from datacon.backends._sql import Dialect

__all__ = ["PostgresDialect"]


class PostgresDialect(Dialect):
    """PostgreSQL 12+ through psycopg 3 (server-side binding, so values keep their types).

    Identifiers are quoted in lower case: the same table an unquoted upstream name folds to,
    and reserved words or leading digits still work. JSON columns are ``JSON`` (upstream);
    they are bound as JSON text (an untyped parameter the server casts to ``json``) and read
    as ``::text``, so a stored JSON ``null`` and an SQL NULL stay distinct.
    """

    name: ClassVar[str] = "postgres"
    display: ClassVar[str] = "Postgres"
    json_type: ClassVar[str] = "JSON"
    timestamp_type: ClassVar[str] = "TIMESTAMPTZ"
    time_min: ClassVar[str] = "'-infinity'::timestamptz"
    time_max: ClassVar[str] = "'infinity'::timestamptz"
    writable_cte: ClassVar[bool] = True
    #: NAMEDATALEN - 1: the server truncates longer names (with only a NOTICE).
    max_identifier_bytes: ClassVar[int | None] = 63
    versions_applied_at: ClassVar[str] = "TIMESTAMPTZ NOT NULL DEFAULT NOW()"

    def param(self, name: str) -> str:
        return f"%({name})s"

    def ident(self, name: str) -> str:
        return f'"{name.lower()}"'

    def json_out(self, expression: str) -> str:
        return f"{expression}::text"

    def decode_time(self, value: Any) -> datetime:
        if not isinstance(value, datetime):
            raise TypeError(f"expected a timestamptz, got {type(value).__name__}")
        return value.astimezone(UTC)

    def table_exists_sql(self) -> str:
        # to_regclass resolves through search_path, as the unqualified table names do.
        return "SELECT 1 WHERE to_regclass(%(name)s) IS NOT NULL"

    def table_name_for_probe(self, table: str) -> str:
        return self.ident(table)

    def columns_sql(self) -> str:
        return (
            "SELECT attname FROM pg_attribute "
            "WHERE attrelid = to_regclass(%(name)s) AND attnum > 0 AND NOT attisdropped"
        )

    def add_column(self, table: str, column: str, sql_type: str, existing: frozenset[str] | None) -> list[str]:
        return [f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {sql_type}"]

    def drop_columns(self, table: str, columns: Sequence[str], existing: frozenset[str] | None) -> list[str]:
        # One statement (upstream v3): ALTER TABLE t DROP COLUMN IF EXISTS a, DROP COLUMN IF EXISTS b.
        return [f"ALTER TABLE {table} " + ", ".join(f"DROP COLUMN IF EXISTS {column}" for column in columns)]
