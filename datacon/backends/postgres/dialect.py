"""The PostgreSQL dialect: ``%(name)s`` params, JSON columns, TIMESTAMPTZ, data-modifying CTEs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs

from datacon.backends._sql import Dialect
from datacon.schema import SchemaConfig

__all__ = ["PostgresDialect", "dialect_for"]


@attrs.frozen
class PostgresDialect(Dialect):
    """PostgreSQL 12+ through psycopg 3 (server-side binding, so values keep their types).

    Identifiers are quoted in lower case: the same table an unquoted upstream name folds to,
    and reserved words or leading digits still work. With ``SchemaConfig.owner`` the tables
    are in that schema (``"owner"."table"``, upstream's ``owner."table"``), their indexes with
    them; ``_schema_versions`` stays unqualified, in the search path (upstream). JSON columns
    are ``JSON`` (upstream); they are bound as JSON text (an untyped parameter the server
    casts to ``json``) and read as ``::text``, so a stored JSON ``null`` and an SQL NULL stay
    distinct.
    """

    name: ClassVar[str] = "postgres"
    display: ClassVar[str] = "Postgres"
    json_type: ClassVar[str] = "JSON"
    timestamp_type: ClassVar[str] = "TIMESTAMPTZ"
    time_min: ClassVar[str] = "'-infinity'::timestamptz"
    time_max: ClassVar[str] = "'infinity'::timestamptz"
    writable_cte: ClassVar[bool] = True
    sequence_by_range: ClassVar[bool] = True
    links_key_by_item: ClassVar[bool] = True
    # The transaction id (64 bits, epoch included: it never wraps and grows with every new
    # writing transaction) times 2**16: each transaction's links get sequences of their own,
    # above those of every transaction that committed before it (a bigint holds ids below
    # 2**47). See render's link_row.
    link_sequence_base: ClassVar[str | None] = "txid_current() * 65536"
    #: NAMEDATALEN - 1: the server truncates longer names (with only a NOTICE).
    max_identifier_bytes: ClassVar[int | None] = 63
    versions_applied_at: ClassVar[str] = "TIMESTAMPTZ NOT NULL DEFAULT NOW()"
    param_format: ClassVar[str] = "%({})s"
    ident_case: ClassVar[str] = "lower"
    json_out_format: ClassVar[str] = "{}::text"

    def create_index(self, name: str, ref: str, columns: Sequence[str]) -> str:
        # An index always lives in its table's schema; PostgreSQL refuses a qualified name.
        return f"CREATE INDEX IF NOT EXISTS {self.ident(name)} ON {ref} ({', '.join(columns)})"

    def replace_primary_key(self, ref: str, name: str, columns: Sequence[str]) -> list[str]:
        # One DO block: the key's current name is read from the catalog (upstream names it
        # pk_conv_item_link whatever the table is called), so a renamed table is rekeyed too,
        # and running it again changes nothing.
        quoted = [self.ident(column) for column in columns]
        lead = quoted[0][1:-1]  # as the catalog holds it (folded, unquoted)
        add = f"ALTER TABLE {ref} ADD CONSTRAINT {self.ident(name)} PRIMARY KEY ({', '.join(quoted)})"
        # Validated identifiers only (no quote can be in them), as every DDL statement here.
        block = (
            "DO $datacon$ DECLARE old name; lead name; BEGIN "  # noqa: S608
            "SELECT c.conname, a.attname INTO old, lead FROM pg_constraint c JOIN pg_attribute a "
            "ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            f"WHERE c.conrelid = to_regclass('{ref}') AND c.contype = 'p'; "
            f"IF lead IS DISTINCT FROM '{lead}' THEN "
            f"IF old IS NOT NULL THEN EXECUTE format('ALTER TABLE {ref} DROP CONSTRAINT %I', old); END IF; "
            f"{add}; END IF; END $datacon$"
        )
        return [block]

    def table_exists_sql(self) -> str:
        # to_regclass resolves an unqualified name through search_path, as the statements do.
        return "SELECT 1 WHERE to_regclass(%(name)s) IS NOT NULL"

    def table_name_for_probe(self, table: str) -> str:
        return self.table(table)  # "owner"."table" with an owner

    def schema_exists_sql(self) -> str:
        """A query with parameter ``name`` returning a row iff that schema (namespace) exists."""
        return "SELECT 1 FROM pg_namespace WHERE nspname = %(name)s"

    def columns_sql(self) -> str:
        return (
            "SELECT attname FROM pg_attribute "
            "WHERE attrelid = to_regclass(%(name)s) AND attnum > 0 AND NOT attisdropped"
        )

    def add_column(self, table: str, column: str, sql_type: str, existing: frozenset[str] | None) -> list[str]:
        return [f"ALTER TABLE {self.qualify(table)} ADD COLUMN IF NOT EXISTS {column} {sql_type}"]

    def drop_columns(self, table: str, columns: Sequence[str], existing: frozenset[str] | None) -> list[str]:
        # One statement (upstream v3): ALTER TABLE t DROP COLUMN IF EXISTS a, DROP COLUMN IF EXISTS b.
        drops = ", ".join(f"DROP COLUMN IF EXISTS {column}" for column in columns)
        return [f"ALTER TABLE {self.qualify(table)} {drops}"]


def dialect_for(schema: SchemaConfig) -> PostgresDialect:
    """The dialect of a (validated) schema: tables qualified with its owner, if any."""
    return PostgresDialect(owner=f'"{schema.owner.lower()}"' if schema.owner else None)
