"""Schema customisation: table and column names, owner, extra and skip columns, versions."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import attrs

from datacon._columns import RECORDS
from datacon.errors import ConfigError

__all__ = ["CORE_COLUMNS", "ColumnDef", "SchemaConfig", "TableConfig", "validate_identifier"]

#: Logical columns of each table, in canonical order (declared in ``datacon._columns``).
CORE_COLUMNS: dict[str, tuple[str, ...]] = {table: record.names for table, record in RECORDS.items()}

_IDENT = re.compile(r"[A-Za-z0-9_]+")
_SQL_TYPE = re.compile(r"[A-Za-z0-9_ (),.]+")

# A column type, not a DDL fragment: a type name (optionally schema-qualified), then only known
# type modifiers; the name and each modifier may take one argument list "(n)" or "(n, m)"
# (Oracle's length semantics too: "(n CHAR)", "(n BYTE)"). So "INTEGER, injected INTEGER",
# "TEXT NOT NULL", "TEXT DEFAULT 'x'" or "INTEGER REFERENCES t (id)" are refused.
_TYPE_WORD = r"[A-Za-z_][A-Za-z0-9_]*"
_TYPE_ARGS = r"\(\s*\d+(?:\s+(?:CHAR|BYTE))?\s*(?:,\s*\d+\s*)?\)"
_TYPE_TOKEN = re.compile(rf"\s*(?:(?P<word>{_TYPE_WORD}(?:\.{_TYPE_WORD})?)|(?P<args>{_TYPE_ARGS}))", re.IGNORECASE)
#: Words allowed after the type name: those of multi-word SQL types (DOUBLE PRECISION,
#: CHARACTER VARYING, TIMESTAMP WITH [LOCAL] TIME ZONE, INTERVAL DAY TO SECOND, LONG RAW...).
TYPE_MODIFIERS = frozenset(
    {
        "VARYING",
        "PRECISION",
        "CHARACTER",
        "CHAR",
        "VARCHAR",
        "WITH",
        "WITHOUT",
        "LOCAL",
        "TIME",
        "ZONE",
        "TO",
        "YEAR",
        "MONTH",
        "DAY",
        "HOUR",
        "MINUTE",
        "SECOND",
        "RAW",
        "LARGE",
        "OBJECT",
        "UNSIGNED",
        "SIGNED",
    }
)


def _type_grammar_problem(sql_type: str) -> str | None:
    """Why ``sql_type`` is not "name [(args)] {modifier [(args)]}", or ``None``."""
    position, words, after_args = 0, 0, True
    text = sql_type.rstrip()
    while position < len(text):
        token = _TYPE_TOKEN.match(text, position)
        if token is None:
            return f"unexpected {text[position:].strip()[:20]!r}"
        if word := token.group("word"):
            if words and ("." in word or word.upper() not in TYPE_MODIFIERS):
                return f"'{word}' is not a known type modifier"
            words += 1
            after_args = False
        else:
            if after_args:
                return "an argument list must follow the type name or a modifier, once"
            after_args = True
        position = token.end()
    return None if words else "a type name is required"


def validate_identifier(name: str) -> str | None:
    """Upstream's identifier rule; returns the problem, or ``None`` when ``name`` is fine."""
    if not name:
        return "identifier must not be empty"
    if len(name.encode("utf-8")) > 128:
        return f"identifier '{name}' exceeds maximum length of 128 characters"
    if not _IDENT.fullmatch(name) or not name.isascii():
        return f"invalid identifier '{name}' \u2014 only ASCII alphanumeric and underscores allowed"
    return None


def _sql_type_problem(sql_type: str) -> str | None:
    if not sql_type.strip():
        return "sql_type must not be whitespace-only"
    if len(sql_type) > 64:
        return f"sql_type '{sql_type}' exceeds maximum length of 64 characters"
    if not _SQL_TYPE.fullmatch(sql_type) or not sql_type.isascii():
        return (
            f"invalid sql_type '{sql_type}' \u2014 only ASCII alphanumeric, underscore, space, "
            "parentheses, comma, and period are allowed"
        )
    if problem := _type_grammar_problem(sql_type):
        return (
            f"invalid sql_type '{sql_type}' \u2014 {problem}; expected a type name with optional "
            "(n) or (n, m) arguments and type modifiers, e.g. VARCHAR(64), NUMERIC(10, 2), "
            "TIMESTAMP WITH TIME ZONE (constraints, defaults and other DDL are not accepted)"
        )
    return None


@attrs.define(frozen=True)
class ColumnDef:
    """An extra column: its SQL type and an optional default value (any JSON value)."""

    sql_type: str
    default_value: Any = None


def _frozen_skips(value: Any) -> frozenset[str]:
    return frozenset(value or ())


def _str_map(value: Any) -> dict[str, str]:
    return dict(value or {})


def _column_map(value: Any) -> dict[str, ColumnDef]:
    return dict(value or {})


@attrs.define(frozen=True)
class TableConfig:
    """One table: its name, column renames, extra columns, and skipped columns."""

    table: str = ""
    columns: Mapping[str, str] = attrs.field(factory=dict, converter=_str_map)
    extra_columns: Mapping[str, ColumnDef] = attrs.field(factory=dict, converter=_column_map)
    skip_columns: frozenset[str] = attrs.field(factory=frozenset, converter=_frozen_skips)

    @classmethod
    def with_table(cls, name: str) -> TableConfig:
        """A table config with only its name set."""
        return cls(table=name)

    def col(self, field: str) -> str:
        """The physical column name for a logical ``field`` (the rename, or the field itself)."""
        return self.columns.get(field, field)

    def is_skipped(self, field: str) -> bool:
        """Whether the logical ``field`` is omitted from DDL, writes and reads (case-sensitive)."""
        return field in self.skip_columns

    def qualified_table(self, owner: str | None) -> str:
        """``owner."table"`` with an owner, else the bare table name."""
        return f'{owner}."{self.table}"' if owner else self.table

    def sorted_extra_columns(self) -> list[tuple[str, ColumnDef]]:
        """Extra columns sorted by name (the order used in DDL and writes)."""
        return sorted(self.extra_columns.items())

    def _validate(self, label: str) -> None:
        def fail(message: str) -> None:
            raise ConfigError(message, "schema")

        if not self.table:
            fail(
                f"{label}.table: table name is required (got empty string \u2014 "
                "did you omit the 'table' key in your config?)"
            )
        if problem := validate_identifier(self.table):
            fail(f"{label}.table: {problem}")
        core = CORE_COLUMNS[label]
        for key, value in self.columns.items():
            if problem := validate_identifier(key):
                fail(f"{label}.columns key '{key}': {problem}")
            if problem := validate_identifier(value):
                fail(f"{label}.columns value '{value}': {problem}")
            # Deliberate addition to upstream: a typo in a rename would otherwise be ignored.
            if key not in core:
                fail(f"{label}.columns key '{key}': '{key}' is not a recognized column (known: {list(core)})")
        for key, column in self.extra_columns.items():
            if problem := validate_identifier(key):
                fail(f"{label}.extra_columns key '{key}': {problem}")
            if not column.sql_type:
                fail(f"{label}.extra_columns['{key}']: sql_type must not be empty")
            if problem := _sql_type_problem(column.sql_type):
                fail(f"{label}.extra_columns['{key}'].sql_type: {problem}")
        upper_core = {name.upper() for name in core}
        seen: set[str] = set()
        for key in sorted(self.extra_columns):
            if key.upper() in upper_core:
                fail(f"{label}.extra_columns: '{key}' shadows a core column name")
            if key.upper() in seen:
                fail(
                    f"{label}.extra_columns: case-insensitive collision on '{key}' "
                    "(Oracle normalizes identifiers to uppercase)"
                )
            seen.add(key.upper())
        for key in sorted(self.skip_columns):
            if problem := validate_identifier(key):
                fail(f"{label}.skip_columns '{key}': {problem}")
            if key == "id":
                fail(f"{label}.skip_columns: cannot skip 'id' \u2014 it is part of the primary key")
            if key not in core:
                fail(f"{label}.skip_columns: '{key}' is not a recognized column (known: {list(core)})")
            if label == "conversation_item_links":
                # Upstream ignored this silently; every column of a link is needed (two are its
                # key, added_at orders the listing), so it is refused rather than ignored.
                fail(
                    f"{label}.skip_columns: '{key}' cannot be skipped \u2014 the links table keeps all of "
                    "its columns (conversation_id and item_id are its key, added_at orders list_items)"
                )


def _env_auto_migrate() -> bool:
    value = os.environ.get("DB_AUTO_MIGRATE", "")
    return value.lower() == "true" or value == "1"


@attrs.define(frozen=True)
class SchemaConfig:
    """Names and shape of the storage schema.

    ``owner`` qualifies Oracle tables (``OWNER."TABLE"``) and PostgreSQL tables
    (``"owner"."table"``; the schema must exist), and prefixes Redis keys
    (``owner:conversation:{id}``); SQLite ignores it.
    ``version`` marks migrations up to that number as already applied; ``auto_migrate``
    (default from ``DB_AUTO_MIGRATE`` = ``true``/``1``) applies pending migrations at start-up.
    """

    owner: str | None = None
    version: int | None = None
    auto_migrate: bool = attrs.field(factory=_env_auto_migrate)
    #: ``False``: datacon issues no DDL at all (SQL backends): start-up only checks that every
    #: table exists at the latest version, else ``MigrationRequiredError`` with the statements,
    #: whatever ``auto_migrate`` says. For roles that may only read and write rows; a DBA
    #: applies ``datacon migrate sql`` (or ``migrate apply``) with a role that may.
    create_tables: bool = True
    conversations: TableConfig = attrs.field(factory=lambda: TableConfig("conversations"))
    responses: TableConfig = attrs.field(factory=lambda: TableConfig("responses"))
    conversation_items: TableConfig = attrs.field(factory=lambda: TableConfig("conversation_items"))
    conversation_item_links: TableConfig = attrs.field(factory=lambda: TableConfig("conversation_item_links"))

    def tables(self) -> dict[str, TableConfig]:
        """The four table configs by logical name, in validation order."""
        return {
            "conversations": self.conversations,
            "responses": self.responses,
            "conversation_items": self.conversation_items,
            "conversation_item_links": self.conversation_item_links,
        }

    def qualified_table(self, table: TableConfig) -> str:
        """``table`` qualified with this schema's owner."""
        return table.qualified_table(self.owner)

    def validate(self) -> None:
        """Check every identifier and column rule; raise ``ConfigError`` on the first problem."""
        if self.owner is not None and (problem := validate_identifier(self.owner)):
            raise ConfigError(f"owner: {problem}", "schema")
        if not isinstance(self.create_tables, bool):
            raise ConfigError(f"create_tables must be true or false (got {self.create_tables!r})", "schema")
        if self.version is not None and (not isinstance(self.version, int) or self.version < 0):
            raise ConfigError(f"version must be a non-negative integer (got {self.version!r})", "schema")
        for label, table in self.tables().items():
            table._validate(label)

    def uppercase_for_oracle(self) -> SchemaConfig:
        """A copy with table names, rename values and extra-column keys uppercased (skips stay)."""

        def upper(table: TableConfig) -> TableConfig:
            return TableConfig(
                table=table.table.upper(),
                columns={k: v.upper() for k, v in table.columns.items()},
                extra_columns={k.upper(): v for k, v in table.extra_columns.items()},
                skip_columns=table.skip_columns,
            )

        return attrs.evolve(
            self,
            conversations=upper(self.conversations),
            responses=upper(self.responses),
            conversation_items=upper(self.conversation_items),
            conversation_item_links=upper(self.conversation_item_links),
        )
