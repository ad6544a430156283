"""The Oracle dialect: what Oracle's statements differ in, as hooks of the shared renderer.

Like the shared ``datacon.backends._sql.render``, this is a module where SQL fragments are
assembled. It is safe for the same reason: every interpolated name is an owner, table or
column name that ``SchemaConfig.validate`` restricted to ``[A-Za-z0-9_]`` (then quoted
and uppercased), or a ``sql_type`` restricted to ``[A-Za-z0-9_ (),.]``; values are
always bind parameters.

Oracle differs from the other SQL databases in many clauses, each a hook of
:class:`~datacon.backends._sql.Dialect`: tables are owner-qualified (``OWNER."TABLE"``);
there is no ``IF NOT EXISTS`` (the catalog is probed, and DDL runs in PL/SQL blocks that
ignore "already exists"); timestamps are written through ``FROM_TZ(:p, '+00:00')`` and read
through ``SYS_EXTRACT_UTC`` so no session time zone is involved; a recursive ``WITH``
allows only ``UNION ALL`` (cycles end with a ``CYCLE`` clause); ``UPDATE ... RETURNING``
needs ``INTO :returned``; several rows go in one ``INSERT ALL``; ``''`` is NULL; pages
LEFT JOIN their cursor and end with ``FETCH NEXT``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import attrs

from datacon._columns import LINKS
from datacon._serde import dump_json
from datacon.backends._sql import Dialect, Keyset
from datacon.schema import SchemaConfig

__all__ = [
    "RETURNED",
    "OracleDialect",
    "dialect_for",
    "plsql_ignoring",
    "versions_table",
]

#: Name of the OUT bind of ``UPDATE ... RETURNING ... INTO :returned`` (see the session).
RETURNED = "returned"
#: Oracle's longest identifier (12.2 and later; older releases allow 30 bytes).
MAX_IDENTIFIER = 128
#: ``INSERT ALL`` accepts at most 999 columns across all its INTO clauses (ORA-24335).
INSERT_ALL_MAX_COLUMNS = 999
_OBJECT_NAMES = {
    "links_pk": "PK_{}",
    "links_idx": "{}_CONV_IDX",
    "links_order_idx": "{}_SEQ_IX",  # 30 characters for the default table (pre-12.2 limit)
    "prev_idx": "{}_PREV_IDX",
    "safety_idx": "{}_USER_IDX",
}
# How datacon timestamps are written and read: UTC wall time, with no session time zone
# involved (python-oracledb drops tzinfo when binding; FROM_TZ states the zone in SQL).
_UTC = "'+00:00'"


def plsql_ignoring(statement: str, *sqlcodes: int) -> str:
    """A PL/SQL block running ``statement`` by ``EXECUTE IMMEDIATE``, ignoring ``sqlcodes``.

    How upstream makes DDL idempotent on a database without ``IF [NOT] EXISTS``: e.g.
    ``-1430`` (column already exists), ``-904`` (no such column), ``-955`` (name in use).
    """
    literal = statement.replace("'", "''")
    if len(sqlcodes) == 1:
        condition = f"SQLCODE != {sqlcodes[0]}"
    else:
        condition = f"SQLCODE NOT IN ({', '.join(str(code) for code in sqlcodes)})"
    return f"BEGIN EXECUTE IMMEDIATE '{literal}'; EXCEPTION WHEN OTHERS THEN IF {condition} THEN RAISE; END IF; END;"


def versions_table(owner: str | None) -> str:
    """The migration-versions table, always quoted (a leading ``_`` is not legal unquoted)."""
    return f'{owner.upper()}."_schema_versions"' if owner else '"_schema_versions"'


@attrs.frozen
class OracleDialect(Dialect):
    """Oracle Database 12.2+ through python-oracledb (thin mode by default).

    Identifiers are quoted in upper case: the same name an unquoted upstream identifier
    folds to, and reserved words still work. JSON columns are ``CLOB`` text (upstream);
    timestamps ``TIMESTAMP(6) WITH TIME ZONE`` (microseconds), bound as naive UTC
    ``TIMESTAMP`` values under ``FROM_TZ(..., '+00:00')`` and read as
    ``SYS_EXTRACT_UTC(...)``. ``owner`` qualifies every table (``OWNER."TABLE"``); use
    :func:`dialect_for`, which also sizes ``INSERT ALL`` for the links table's columns.
    """

    max_rows_per_insert: int = INSERT_ALL_MAX_COLUMNS // (len(LINKS.columns) + 1)  # + the sequence

    name: ClassVar[str] = "oracle"
    display: ClassVar[str] = "Oracle"
    json_type: ClassVar[str] = "CLOB"
    timestamp_type: ClassVar[str] = "TIMESTAMP(6) WITH TIME ZONE"
    time_min: ClassVar[str] = "TIMESTAMP '0001-01-01 00:00:00.000000 +00:00'"
    time_max: ClassVar[str] = "TIMESTAMP '9999-12-31 23:59:59.999999 +00:00'"
    recursive_with: ClassVar[str] = "WITH"
    cycle_clause: ClassVar[str] = "CYCLE rid SET is_cycle TO 'Y' DEFAULT 'N'"
    create_if_not_exists: ClassVar[bool] = False
    # Upstream's single page query (no (a, b) > (x, y) row comparison in Oracle).
    keyset: ClassVar[Keyset] = Keyset.JOINED
    bigint_type: ClassVar[str] = "NUMBER(19)"
    empty_string_is_null: ClassVar[bool] = True
    idempotent_migrations: ClassVar[bool] = True  # PL/SQL blocks ignoring "exists"/"absent"
    key_claim_may_race: ClassVar[bool] = True  # two MERGEs of one new key: ORA-00001 for the second
    versions_version_type: ClassVar[str] = "NUMBER(10)"
    param_format: ClassVar[str] = ":{}"
    ident_case: ClassVar[str] = "upper"
    varchar_format: ClassVar[str] = "VARCHAR2({})"
    limit_format: ClassVar[str] = "FETCH NEXT {} ROWS ONLY"
    versions_applied_at: ClassVar[str] = "TIMESTAMP DEFAULT SYSTIMESTAMP NOT NULL"

    def returning(self, column: str | None, key: str) -> str:
        # The session binds :returned as a TIMESTAMP; with nothing to return, fetching an
        # UPDATE gives its row count (no row when nothing matched).
        return "" if column is None else f" RETURNING {column} INTO :{RETURNED}"

    def time_in(self, placeholder: str) -> str:
        """How a bound (naive UTC) timestamp is written to a ``TIMESTAMP WITH TIME ZONE`` column."""
        return f"FROM_TZ({placeholder}, {_UTC})"

    def time_out(self, expression: str) -> str:
        """How a ``TIMESTAMP WITH TIME ZONE`` column is read: its UTC wall time, no zone."""
        return f"SYS_EXTRACT_UTC({expression})"

    def object_name(self, kind: str, table: str) -> str | None:
        # Upstream's Oracle names: PK_{LINKS}, {LINKS}_CONV_IDX, {RESPONSES}_PREV_IDX,
        # {RESPONSES}_USER_IDX; cut to fit when derived from a (<=128-byte) table name.
        pattern = _OBJECT_NAMES.get(kind)
        return None if pattern is None else pattern.format(table.upper())[:MAX_IDENTIFIER]

    def listing_index_name(self, table: str, column: str | None) -> str:
        name = f"{table}_{column}_LIST_IDX" if column else f"{table}_LIST_IDX"
        return name.upper()[:MAX_IDENTIFIER]

    def retention_index_name(self, table: str, what: str) -> str:
        # Short suffixes: 30 characters for the default tables (the pre-12.2 limit).
        suffix = {"created": "CRT_IX", "item": "ITM_IX", "conversation": "CNV_IX"}[what]
        return f"{table}_{suffix}".upper()[:MAX_IDENTIFIER]

    def drop_index(self, name: str) -> str:
        # ORA-01418: specified index does not exist.
        return plsql_ignoring(f"DROP INDEX {self.qualify(self.ident(name))}", -1418)

    def create_table(self, ref: str, body: str) -> str:
        # The caller has probed the catalog; ORA-00955 (name already used) is ignored so that
        # two processes creating the schema at once both succeed.
        return plsql_ignoring(f"CREATE TABLE {ref} ({body})", -955)

    def create_index(self, name: str, ref: str, columns: Sequence[str]) -> str:
        """Upstream's create_index_if_missing: look in the catalog first, then CREATE INDEX,
        ignoring ORA-00955 (name in use), ORA-01408 (columns already indexed) and ORA-00904
        (column not there yet)."""
        catalog = self._catalog("COUNT(*) INTO n", "indexes", f"index_name = '{name}'")
        create = f"CREATE INDEX {self.qualify(self.ident(name))} ON {ref} ({', '.join(columns)})"
        return (
            f"DECLARE n NUMBER; BEGIN {catalog}; "
            f"IF n = 0 THEN EXECUTE IMMEDIATE '{create}'; END IF; "
            "EXCEPTION WHEN OTHERS THEN IF SQLCODE NOT IN (-955, -1408, -904) THEN RAISE; END IF; END;"
        )

    def insert_rows(self, ref: str, columns: Sequence[str], rows: Sequence[Sequence[str]], key: int = 0) -> str:
        """``INSERT ALL INTO ... VALUES (...) ... SELECT 1 FROM DUAL`` (one statement, so a
        duplicate fails it whole, ORA-00001); with ``key``, a ``MERGE`` that inserts the rows
        whose first ``key`` columns match no existing row (its row count is theirs).

        One row is merged with its values in the INSERT clause, where long text (a CLOB) binds
        as in a plain INSERT; several rows (links: ids and a timestamp) come from ``DUAL``.
        """
        if not key:
            into = f"{ref} ({', '.join(columns)})"
            clauses = " ".join(f"INTO {into} VALUES ({', '.join(row)})" for row in rows)
            return f"INSERT ALL {clauses} SELECT 1 FROM DUAL"  # noqa: S608
        insert = f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) VALUES"
        if len(rows) == 1:
            (row,) = rows
            on = " AND ".join(f"t.{column} = {value}" for column, value in zip(columns[:key], row, strict=False))
            return f"MERGE INTO {ref} t USING DUAL ON ({on}) {insert} ({', '.join(row)})"
        selects = [
            ", ".join(f"{value} AS {column}" for value, column in zip(row, columns, strict=True)) for row in rows
        ]
        source = " UNION ALL ".join(f"SELECT {select} FROM DUAL" for select in selects)  # noqa: S608
        on = " AND ".join(f"t.{column} = s.{column}" for column in columns[:key])
        return f"MERGE INTO {ref} t USING ({source}) s ON ({on}) {insert} ({', '.join(f's.{c}' for c in columns)})"

    def version_insert(self, insert: str) -> str:
        # ORA-00001 on a version row: another process recorded it first (upstream skips it).
        return f"BEGIN {insert}; EXCEPTION WHEN DUP_VAL_ON_INDEX THEN NULL; END;"

    # Values -----------------------------------------------------------------------------

    def encode_time(self, value: datetime) -> Any:
        # Naive UTC: python-oracledb ignores tzinfo when binding; FROM_TZ supplies the zone.
        return value.astimezone(UTC).replace(tzinfo=None)

    def decode_json(self, value: Any, default: Any) -> Any:
        # CLOBs are fetched as text (the session's output type handler); a LOB locator
        # would only reach here if that handler were bypassed.
        read = getattr(value, "read", None)
        if read is not None:
            value = read()
        return super().decode_json(value, default)

    def extra_keys(self, supplied: Mapping[str, Any]) -> Mapping[str, Any]:
        """Extra columns are declared uppercased in Oracle (upstream ``uppercase_for_oracle``);
        a hook may supply a value under the declared name in any case (``tenant_id`` or
        ``TENANT_ID``), an exact uppercase key winning. Upstream matched the uppercase key only."""
        folded = {key.upper(): value for key, value in supplied.items() if value is not None and not key.isupper()}
        folded.update({key: value for key, value in supplied.items() if value is not None and key.isupper()})
        return folded

    def encode_extra(self, value: Any) -> Any:
        """An extra-column value bound with its own type.

        Objects and arrays are JSON text; ``bool`` is ``1``/``0`` (Oracle before 23ai has no
        SQL BOOLEAN); an aware datetime is naive UTC (each session's time zone is UTC, so a
        ``TIMESTAMP WITH TIME ZONE`` extra column stores the right instant); numbers and
        strings as they are.
        """
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        if isinstance(value, dict | list | tuple):
            return dump_json(value, "extra column value")
        return value

    # Catalog probes and migration DDL ----------------------------------------------------

    @property
    def versions_table(self) -> str:
        return versions_table(self.owner)

    def _catalog(self, select: str, view: str, condition: str) -> str:
        """A query of catalog ``view`` (``tables``, ...): ``all_<view>`` of the owner when
        there is one, else ``user_<view>``."""
        if self.owner:
            return f"SELECT {select} FROM all_{view} WHERE owner = '{self.owner}' AND {condition}"  # noqa: S608
        return f"SELECT {select} FROM user_{view} WHERE {condition}"  # noqa: S608

    def table_exists_sql(self) -> str:
        # With an owner, that schema's tables (upstream checked user_tables even then).
        return self._catalog("1", "tables", "table_name = :name")

    def table_name_for_probe(self, table: str) -> str:
        # Catalog names are stored as written: uppercase for our tables, the versions
        # table in lower case; the owner (if given) is matched by table_exists_sql.
        bare = table.rpartition(".")[2]
        return bare[1:-1] if bare.startswith('"') else bare.upper()

    def columns_sql(self) -> str:
        return self._catalog("column_name", "tab_columns", "table_name = :name")

    def add_column(self, table: str, column: str, sql_type: str, existing: frozenset[str] | None) -> list[str]:
        # ORA-01430: column being added already exists in table.
        return [plsql_ignoring(f"ALTER TABLE {self.qualify(table)} ADD ({column} {sql_type})", -1430)]

    def drop_columns(self, table: str, columns: Sequence[str], existing: frozenset[str] | None) -> list[str]:
        # One block per column (upstream v3), each ignoring ORA-00904 (invalid identifier).
        return [plsql_ignoring(f"ALTER TABLE {self.qualify(table)} DROP ({column})", -904) for column in columns]


def dialect_for(schema: SchemaConfig) -> OracleDialect:
    """The dialect of an (uppercased, validated) schema: its owner, and ``INSERT ALL`` rows."""
    columns = len(LINKS.columns) + 1 + len(schema.conversation_item_links.extra_columns)  # + the sequence
    owner = schema.owner.upper() if schema.owner else None
    return OracleDialect(owner=owner, max_rows_per_insert=max(1, INSERT_ALL_MAX_COLUMNS // columns))
