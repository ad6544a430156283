"""The Oracle dialect and every Oracle statement, rendered once per store from SchemaConfig.

Like the shared ``datacon.backends._sql.render``, this is a module where SQL text is
assembled. It is safe for the same reason: every interpolated name is an owner, table or
column name that ``SchemaConfig.validate`` restricted to ``[A-Za-z0-9_]`` (then quoted
and uppercased), or a ``sql_type`` restricted to ``[A-Za-z0-9_ (),.]``; values are
always bind parameters.

Oracle differs from the other SQL databases in nearly every statement, so the statements
are rendered here (into the shared layer's :class:`Statements`) rather than by the shared
``render``: tables are owner-qualified (``OWNER."TABLE"``); there is no ``IF NOT EXISTS``
(the catalog is probed, and DDL runs in PL/SQL blocks that ignore "already exists");
timestamps are written through ``FROM_TZ(:p, '+00:00')`` and read through
``SYS_EXTRACT_UTC`` so no session time zone is involved; a recursive ``WITH`` allows only
``UNION ALL`` (cycles end with a ``CYCLE`` clause); ``UPDATE ... RETURNING`` needs
``INTO :returned``; several rows go in one ``INSERT ALL``; pages end with ``FETCH NEXT``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

import attrs

from datacon._serde import dump_json
from datacon.backends._sql import Dialect, Statements
from datacon.backends._sql.render import _extras as extras
from datacon.backends._sql.render import _extras_ddl as extras_ddl
from datacon.backends._sql.render import _Table as SharedTable
from datacon.backends._sql.render import identifier_queries
from datacon.schema import CORE_COLUMNS, SchemaConfig, TableConfig

__all__ = [
    "RETURNED",
    "OracleDialect",
    "OracleStatements",
    "dialect_for",
    "plsql_ignoring",
    "render_oracle",
    "versions_table",
]

#: Name of the OUT bind of ``UPDATE ... RETURNING ... INTO :returned`` (see the session).
RETURNED = "returned"
#: Oracle's longest identifier (12.2 and later; older releases allow 30 bytes).
MAX_IDENTIFIER = 128
#: ``INSERT ALL`` accepts at most 999 columns across all its INTO clauses (ORA-24335).
INSERT_ALL_MAX_COLUMNS = 999
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


class OracleDialect(Dialect):
    """Oracle Database 12.2+ through python-oracledb (thin mode by default).

    Identifiers are quoted in upper case: the same name an unquoted upstream identifier
    folds to, and reserved words still work. JSON columns are ``CLOB`` text (upstream);
    timestamps ``TIMESTAMP(6) WITH TIME ZONE`` (microseconds), bound as naive UTC
    ``TIMESTAMP`` values under ``FROM_TZ(..., '+00:00')`` and read as
    ``SYS_EXTRACT_UTC(...)``. ``owner`` qualifies every table (``OWNER."TABLE"``); use
    :func:`dialect_for`, which also sizes ``INSERT ALL`` for the links table's columns.
    """

    name: ClassVar[str] = "oracle"
    display: ClassVar[str] = "Oracle"
    json_type: ClassVar[str] = "CLOB"
    timestamp_type: ClassVar[str] = "TIMESTAMP(6) WITH TIME ZONE"
    time_min: ClassVar[str] = "TIMESTAMP '0001-01-01 00:00:00.000000 +00:00'"
    time_max: ClassVar[str] = "TIMESTAMP '9999-12-31 23:59:59.999999 +00:00'"
    recursive_with: ClassVar[str] = "WITH"
    create_if_not_exists: ClassVar[bool] = False
    row_values: ClassVar[bool] = False  # no (a, b) > (x, y) in Oracle
    writable_cte: ClassVar[bool] = False
    max_rows_per_insert: ClassVar[int] = INSERT_ALL_MAX_COLUMNS // 3
    idempotent_migrations: ClassVar[bool] = True  # PL/SQL blocks ignoring "exists"/"absent"
    versions_table: ClassVar[str] = versions_table(None)
    versions_applied_at: ClassVar[str] = "TIMESTAMP DEFAULT SYSTIMESTAMP NOT NULL"
    #: The schema that owns the tables (uppercased), or ``None`` for the connecting user's.
    owner: ClassVar[str | None] = None

    def param(self, name: str) -> str:
        return f":{name}"

    def ident(self, name: str) -> str:
        return f'"{name.upper()}"'

    def qualify(self, quoted_table: str) -> str:
        """A quoted table name, qualified with the owner when there is one."""
        return f"{self.owner}.{quoted_table}" if self.owner else quoted_table

    def table(self, name: str) -> str:
        """The reference of table ``name``: ``OWNER."TABLE"`` or ``"TABLE"``."""
        return self.qualify(self.ident(name))

    def varchar(self, size: int) -> str:
        return f"VARCHAR2({size})"

    def limit(self, placeholder: str) -> str:
        return f"FETCH NEXT {placeholder} ROWS ONLY"

    def returning(self, column: str) -> str:
        return f"RETURNING {column} INTO :{RETURNED}"

    def time_in(self, placeholder: str) -> str:
        """How a bound (naive UTC) timestamp is written to a ``TIMESTAMP WITH TIME ZONE`` column."""
        return f"FROM_TZ({placeholder}, {_UTC})"

    def time_out(self, expression: str) -> str:
        """How a ``TIMESTAMP WITH TIME ZONE`` column is read: its UTC wall time, no zone."""
        return f"SYS_EXTRACT_UTC({expression})"

    # Values -----------------------------------------------------------------------------

    def encode_time(self, value: datetime) -> Any:
        # Naive UTC: python-oracledb ignores tzinfo when binding; FROM_TZ supplies the zone.
        return value.astimezone(UTC).replace(tzinfo=None)

    def decode_time(self, value: Any) -> datetime:
        if not isinstance(value, datetime):
            raise TypeError(f"expected a timestamp, got {type(value).__name__}")
        # SYS_EXTRACT_UTC gives a naive TIMESTAMP holding UTC wall time.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def decode_json(self, value: Any, default: Any) -> Any:
        # CLOBs are fetched as text (the session's output type handler); a LOB locator
        # would only reach here if that handler were bypassed.
        read = getattr(value, "read", None)
        if read is not None:
            value = read()
        return super().decode_json(value, default)

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

    def versions_columns(self) -> str:
        """The column list of the versions table (upstream's Oracle DDL)."""
        return (
            f"version NUMBER(10) NOT NULL PRIMARY KEY, description {self.varchar(512)}, "
            f"applied_at {self.versions_applied_at}"
        )

    def versions_ddl(self, if_not_exists: str) -> str:
        return f"CREATE TABLE {self.versions_table} ({self.versions_columns()})"

    def table_exists_sql(self) -> str:
        # With an owner, that schema's tables (upstream checked user_tables even then).
        if self.owner:
            return f"SELECT 1 FROM all_tables WHERE owner = '{self.owner}' AND table_name = :name"  # noqa: S608
        return "SELECT 1 FROM user_tables WHERE table_name = :name"

    def table_name_for_probe(self, table: str) -> str:
        # Catalog names are stored as written: uppercase for our tables, the versions
        # table in lower case; the owner (if given) is matched by table_exists_sql.
        bare = table.rpartition(".")[2]
        return bare[1:-1] if bare.startswith('"') else bare.upper()

    def columns_sql(self) -> str:
        if self.owner:
            return f"SELECT column_name FROM all_tab_columns WHERE owner = '{self.owner}' AND table_name = :name"  # noqa: S608
        return "SELECT column_name FROM user_tab_columns WHERE table_name = :name"

    def add_column(self, table: str, column: str, sql_type: str, existing: frozenset[str] | None) -> list[str]:
        # ORA-01430: column being added already exists in table.
        return [plsql_ignoring(f"ALTER TABLE {self.qualify(table)} ADD ({column} {sql_type})", -1430)]

    def drop_columns(self, table: str, columns: Sequence[str], existing: frozenset[str] | None) -> list[str]:
        # One block per column (upstream v3), each ignoring ORA-00904 (invalid identifier).
        return [plsql_ignoring(f"ALTER TABLE {self.qualify(table)} DROP ({column})", -904) for column in columns]


@functools.cache
def _dialect_class(owner: str | None, rows_per_insert: int) -> type[OracleDialect]:
    if owner is None and rows_per_insert == OracleDialect.max_rows_per_insert:
        return OracleDialect
    # The shared layer reads these as class attributes, so a schema with an owner (or
    # extra link columns) gets its own subclass; one per distinct pair, cached.
    namespace = {"owner": owner, "versions_table": versions_table(owner), "max_rows_per_insert": rows_per_insert}
    return cast("type[OracleDialect]", type("OracleDialect", (OracleDialect,), namespace))


def dialect_for(schema: SchemaConfig) -> OracleDialect:
    """The dialect of an (uppercased, validated) schema: its owner, and ``INSERT ALL`` rows."""
    columns = 3 + len(schema.conversation_item_links.extra_columns)
    owner = schema.owner.upper() if schema.owner else None
    return _dialect_class(owner, max(1, INSERT_ALL_MAX_COLUMNS // columns))()


@attrs.frozen(eq=False)
class OracleStatements(Statements):
    """The statements of one Oracle store; several links go in one ``INSERT ALL``."""

    def link_insert(self, rows: int) -> str:
        """``INSERT ALL INTO ... VALUES (...) ... SELECT 1 FROM DUAL`` for ``rows`` links.

        One statement, so it is atomic: a duplicate link fails it whole (ORA-00001).
        ``link_parts`` is ``(table and columns, one row's VALUES with {n})``.
        """
        sql = self._link_cache.get(rows)
        if sql is None:
            into, values = self.link_parts
            clauses = " ".join(f"INTO {into} VALUES {values.replace('{n}', str(n))}" for n in range(rows))
            sql = self._link_cache[rows] = f"INSERT ALL {clauses} SELECT 1 FROM DUAL"  # noqa: S608
        return sql


@attrs.frozen
class _Table(SharedTable):
    """The shared layer's table (owner-qualified ``ref``), with Oracle's timestamp I/O."""

    dialect: OracleDialect

    def select_list(self, fields: Sequence[str], alias: str = "") -> str:
        d = self.dialect
        return ", ".join(d.time_out(self.c(f, alias)) if f == "created_at" else self.c(f, alias) for f in fields)

    def insert(self, fields: Sequence[str]) -> str:
        d = self.dialect
        names, params = extras(self.config, d)
        columns = ", ".join([self.c(f) for f in fields] + names)
        values = [d.time_in(d.param(f)) if f == "created_at" else d.param(f) for f in fields]
        return f"INSERT INTO {self.ref} ({columns}) VALUES ({', '.join(values + params)})"  # noqa: S608


def _table(config: TableConfig, d: OracleDialect) -> _Table:
    return _Table(config, d.table(config.table), d)


def _object_name(name: str) -> str:
    # Index and constraint names derived from a (≤128-byte) table name must fit too.
    return name[:MAX_IDENTIFIER]


def _create_table(ref: str, body: str) -> str:
    # The caller has probed the catalog; ORA-00955 (name already used) is ignored so that
    # two processes creating the schema at once both succeed.
    return plsql_ignoring(f"CREATE TABLE {ref} ({body})", -955)


def _create_index(d: OracleDialect, index: str, t: _Table, columns: Sequence[str]) -> str:
    """Upstream's create_index_if_missing: look in the catalog first, then CREATE INDEX,
    ignoring ORA-00955 (name in use), ORA-01408 (columns already indexed) and ORA-00904
    (column not there yet)."""
    catalog = (
        f"all_indexes WHERE owner = '{d.owner}' AND index_name = '{index}'"
        if d.owner
        else f"user_indexes WHERE index_name = '{index}'"
    )
    create = f"CREATE INDEX {d.qualify(d.ident(index))} ON {t.ref} ({', '.join(t.c(c) for c in columns)})"
    return (
        f"DECLARE n NUMBER; BEGIN SELECT COUNT(*) INTO n FROM {catalog}; "  # noqa: S608
        f"IF n = 0 THEN EXECUTE IMMEDIATE '{create}'; END IF; "
        "EXCEPTION WHEN OTHERS THEN IF SQLCODE NOT IN (-955, -1408, -904) THEN RAISE; END IF; END;"
    )


def render_oracle(schema: SchemaConfig, dialect: OracleDialect) -> OracleStatements:
    """All statements of an Oracle store for ``schema`` (uppercased and validated)."""
    d = dialect
    p = d.param
    convs = _table(schema.conversations, d)
    items = _table(schema.conversation_items, d)
    links = _table(schema.conversation_item_links, d)
    resps = _table(schema.responses, d)
    ts, js, v64 = d.timestamp_type, d.json_type, d.varchar(64)

    def ddl(t: _Table, columns: list[tuple[str, str]]) -> str:
        body = ", ".join(f"{t.c(f)} {sql_type}" for f, sql_type in columns if not t.config.is_skipped(f))
        return _create_table(t.ref, f"{body}{extras_ddl(t.config, d)}")

    links_name = links.config.table.upper()
    resps_name = resps.config.table.upper()
    create_tables = (
        ddl(convs, [("id", f"{v64} PRIMARY KEY"), ("created_at", ts), ("metadata", js)]),
        ddl(
            items,
            [
                ("id", f"{v64} PRIMARY KEY"),
                ("response_id", v64),
                # Not NOT NULL as upstream: Oracle stores '' as NULL, and an empty item_type
                # is valid (it reads back as "").
                ("item_type", d.varchar(32)),
                ("role", d.varchar(32)),
                ("content", js),
                ("status", d.varchar(32)),
                ("created_at", ts),
            ],
        ),
        # The links table ignores skip_columns (upstream): it always has its three columns.
        _create_table(
            links.ref,
            f"{links.c('conversation_id')} {v64} NOT NULL, {links.c('item_id')} {v64} NOT NULL, "
            f"{links.c('added_at')} {ts}{extras_ddl(links.config, d)}, "
            f"CONSTRAINT {d.ident(_object_name('PK_' + links_name))} "
            f"PRIMARY KEY ({links.c('conversation_id')}, {links.c('item_id')})",
        ),
        ddl(
            resps,
            [
                ("id", f"{v64} PRIMARY KEY"),
                ("conversation_id", v64),
                ("previous_response_id", v64),
                ("input", js),
                ("created_at", ts),
                ("safety_identifier", d.varchar(128)),
                ("model", d.varchar(128)),
                ("raw_response", js),
            ],
        ),
    )
    # Upstream's Oracle index names: {LINKS}_CONV_IDX, {RESPONSES}_PREV_IDX, {RESPONSES}_USER_IDX.
    # The links index also holds item_id, the page order's tie-break, so a page can be read
    # in index order (an upstream database keeps its two-column index of the same name).
    page_columns = ["conversation_id", "added_at", "item_id"]
    create_indexes = [_create_index(d, _object_name(f"{links_name}_CONV_IDX"), links, page_columns)]
    if not resps.config.is_skipped("previous_response_id"):
        create_indexes.append(_create_index(d, _object_name(f"{resps_name}_PREV_IDX"), resps, ["previous_response_id"]))
    if not resps.config.is_skipped("safety_identifier"):
        create_indexes.append(_create_index(d, _object_name(f"{resps_name}_USER_IDX"), resps, ["safety_identifier"]))

    # Conversations.
    conv_fields = convs.present(CORE_COLUMNS["conversations"])
    cid = convs.c("id")
    if convs.config.is_skipped("metadata"):
        # Nothing to update (upstream answers without persisting anything): does it exist?
        conv_update = f"SELECT {cid} FROM {convs.ref} WHERE {cid} = {p('id')}"  # noqa: S608
    else:
        conv_update = f"UPDATE {convs.ref} SET {convs.c('metadata')} = {p('metadata')} WHERE {cid} = {p('id')}"  # noqa: S608
        if not convs.config.is_skipped("created_at"):
            conv_update += f" {d.returning(d.time_out(convs.c('created_at')))}"
    conv_delete = (
        f"DELETE FROM {links.ref} WHERE {links.c('conversation_id')} = {p('id')}",  # noqa: S608
        f"DELETE FROM {convs.ref} WHERE {cid} = {p('id')}",  # noqa: S608
    )

    # Items and links.
    item_fields = items.present(CORE_COLUMNS["conversation_items"])
    link_names, link_params = extras(links.config, d)
    link_columns = [links.c("conversation_id"), links.c("item_id"), links.c("added_at"), *link_names]
    link_into = f"{links.ref} ({', '.join(link_columns)})"
    link_values = "(" + ", ".join([p("cid"), p("i{n}"), d.time_in(p("a{n}")), *link_params]) + ")"
    link_where = f"{links.c('conversation_id')} = {p('cid')} AND {links.c('item_id')} = {p('iid')}"

    def page(ascending: bool) -> str:
        # Upstream's single query: the cursor link is LEFT JOINed within this conversation;
        # no match (no cursor, or one not linked here) leaves c.* NULL and lists from the
        # start. Ties on added_at are broken by item id in the same direction.
        cmp, order = (">", "ASC") if ascending else ("<", "DESC")
        added, item_id = links.c("added_at", "l"), links.c("item_id", "l")
        c_added, c_item = links.c("added_at", "c"), links.c("item_id", "c")
        return (
            f"SELECT {items.select_list(item_fields, 'i')} "  # noqa: S608
            f"FROM {links.ref} l JOIN {items.ref} i ON {items.c('id', 'i')} = {item_id} "
            f"LEFT JOIN {links.ref} c ON {links.c('conversation_id', 'c')} = {p('cid')} AND {c_item} = {p('after')} "
            f"WHERE {links.c('conversation_id', 'l')} = {p('cid')} "
            f"AND ({c_item} IS NULL OR {added} {cmp} {c_added} OR ({added} = {c_added} AND {item_id} {cmp} {c_item})) "
            f"ORDER BY {added} {order}, {item_id} {order} {d.limit(p('limit'))}"
        )

    # Responses.
    resp_fields = resps.present(CORE_COLUMNS["responses"])
    resp_cols = resps.select_list(resp_fields)
    rid, prev = resps.c("id"), resps.c("previous_response_id")
    resp_by_id = f"SELECT {resp_cols} FROM {resps.ref} WHERE {rid} = {p('id')}"  # noqa: S608

    def chain(bounded: bool) -> str:
        # One recursive query collects the ids (Oracle allows only UNION ALL there; the
        # CYCLE clause ends the recursion at a response already on the path), then the
        # rows are fetched by primary key. walk_chain orders them and reports a cycle.
        if resps.config.is_skipped("previous_response_id"):
            return resp_by_id
        where = f" WHERE c.depth < {p('max_depth')}" if bounded else ""
        return (
            f"WITH chain (rid, prev, depth) AS ("  # noqa: S608
            f"SELECT {rid}, {prev}, 1 FROM {resps.ref} WHERE {rid} = {p('id')} "
            f"UNION ALL SELECT {resps.c('id', 'r')}, {resps.c('previous_response_id', 'r')}, c.depth + 1 "
            f"FROM {resps.ref} r JOIN chain c ON {resps.c('id', 'r')} = c.prev{where}) "
            "CYCLE rid SET is_cycle TO 'Y' DEFAULT 'N' "
            f"SELECT {resp_cols} FROM {resps.ref} WHERE {rid} IN (SELECT rid FROM chain)"
        )

    ident_list, ident_list_limit, ident_delete = identifier_queries(resps, resp_cols, d)

    versions = d.versions_table
    return OracleStatements(
        dialect=d,
        schema=schema,
        create_versions=_create_table(versions, d.versions_columns()),
        # ORA-00001 on a version row: another process recorded it first (upstream skips it).
        insert_version=(
            f"BEGIN INSERT INTO {versions} (version, description) VALUES ({p('version')}, {p('description')}); "  # noqa: S608
            "EXCEPTION WHEN DUP_VAL_ON_INDEX THEN NULL; END;"
        ),
        max_version=f"SELECT COALESCE(MAX(version), 0) FROM {versions}",  # noqa: S608
        create_tables=create_tables,
        create_indexes=tuple(create_indexes),
        table_probes=tuple(d.table_name_for_probe(t.config.table) for t in (convs, items, links, resps)),
        conv_fields=conv_fields,
        conv_insert=convs.insert(conv_fields),
        conv_select=f"SELECT {convs.select_list(conv_fields)} FROM {convs.ref} WHERE {cid} = {p('id')}",  # noqa: S608
        conv_update=conv_update,
        conv_delete=conv_delete,
        item_fields=item_fields,
        item_insert=items.insert(item_fields),
        item_select=(
            f"SELECT {items.select_list(item_fields)} FROM {items.ref} WHERE {items.c('id')} = {p('id')}"  # noqa: S608
        ),
        link_exists=f"SELECT 1 FROM {links.ref} WHERE {link_where}",  # noqa: S608
        link_delete=f"DELETE FROM {links.ref} WHERE {link_where}",  # noqa: S608
        list_asc=page(ascending=True),
        list_desc=page(ascending=False),
        resp_fields=resp_fields,
        resp_insert=resps.insert(resp_fields),
        resp_select=resp_by_id,
        resp_delete=f"DELETE FROM {resps.ref} WHERE {rid} = {p('id')}",  # noqa: S608
        chain_all=chain(bounded=False),
        chain_depth=chain(bounded=True),
        ident_list=ident_list,
        ident_list_limit=ident_list_limit,
        ident_delete=ident_delete,
        link_parts=(link_into, link_values),
    )
