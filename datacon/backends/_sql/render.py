"""Every SQL statement of the shared layer, rendered once per store from SchemaConfig + Dialect.

This is the one module (with each backend's own ``dialect.py``) where SQL text is assembled.
It is safe because every interpolated name is a table or column name that
``SchemaConfig.validate`` restricted to ``[A-Za-z0-9_]`` (then quoted by the dialect), or a
``sql_type`` restricted to ``[A-Za-z0-9_ (),.]``; values are always bind parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from datacon.errors import ConfigError
from datacon.schema import CORE_COLUMNS, SchemaConfig, TableConfig

from .dialect import Dialect

__all__ = ["UPSTREAM_INDEX_NAMES", "Statements", "check_identifiers", "render"]

# The links index is upstream's (conversation_id, added_at) plus item_id, the tie-break of the
# page order, so a page is read in index order and never sorted (an upstream database keeps
# its two-column index under the same name, which still serves the query).
# Upstream's fixed index and constraint names. They do not follow table renames there, which
# breaks a second (renamed) schema in the same database; datacon keeps them for the default
# table names (so an upstream database is recognised) and derives them from the table otherwise.
UPSTREAM_INDEX_NAMES = {
    "links_pk": ("conversation_item_links", "pk_conv_item_link"),
    "links_idx": ("conversation_item_links", "conv_item_links_conv_idx"),
    "safety_idx": ("responses", "responses_safety_idx"),
}
_DERIVED_SUFFIX = {"links_pk": "_pk", "links_idx": "_conv_idx", "safety_idx": "_safety_idx"}


_OBJECT_WHAT = {"links_pk": "primary-key constraint", "links_idx": "index", "safety_idx": "index"}


def _object_name(kind: str, table: str) -> str:
    default_table, upstream = UPSTREAM_INDEX_NAMES[kind]
    return upstream if table == default_table else f"{table}{_DERIVED_SUFFIX[kind]}"


def check_identifiers(schema: SchemaConfig, dialect: Dialect) -> None:
    """Every name the rendered SQL uses fits the dialect's identifier limit, the index and
    constraint names derived from table names included, and the four tables are distinct
    tables in the database (whose names ignore case).

    A server truncates a longer name silently (PostgreSQL: to 63 bytes), so long table names
    that share a prefix would be one table and an index could land on another table's name.

    :raises ConfigError: on ``<backend>.schema``, naming the setting and the limit.
    """
    field = f"{dialect.name}.schema"
    tables = schema.tables()
    seen: dict[str, str] = {}
    for label, table in tables.items():
        other = seen.setdefault(table.table.lower(), label)
        if other != label:
            raise ConfigError(
                f"{label}.table: '{table.table}' names the same table as {other}.table "
                f"('{tables[other].table}'; {dialect.display} table names ignore case)",
                field,
            )
    limit = dialect.max_identifier_bytes
    if limit is None:
        return

    def check(where: str, name: str) -> None:
        size = len(name.encode("utf-8"))
        if size > limit:
            raise ConfigError(
                f"{where}: '{name}' is {size} bytes; {dialect.display} identifiers are at most {limit} bytes "
                "(the server would truncate it)",
                field,
            )

    if schema.owner:
        check("owner", schema.owner)
    for label, table in tables.items():
        check(f"{label}.table", table.table)
        for logical in CORE_COLUMNS[label]:
            if label == "conversation_item_links" or not table.is_skipped(logical):
                check(f"{label}.columns['{logical}']", table.col(logical))
        for name in table.extra_columns:
            check(f"{label}.extra_columns['{name}']", name)
    derived = [("links_pk", "conversation_item_links"), ("links_idx", "conversation_item_links")]
    if not schema.responses.is_skipped("safety_identifier"):
        derived.append(("safety_idx", "responses"))
    for kind, label in derived:
        table_name = tables[label].table
        name = _object_name(kind, table_name)
        size = len(name.encode("utf-8"))
        if size > limit:
            suffix = _DERIVED_SUFFIX[kind]
            raise ConfigError(
                f"{label}.table: the {_OBJECT_WHAT[kind]} name '{name}' derived from it is {size} bytes; "
                f"{dialect.display} identifiers are at most {limit} bytes (use a table name of at most "
                f"{limit - len(suffix)} bytes)",
                field,
            )


@attrs.frozen
class _Table:
    """A table's quoted name and its present (not skipped) logical columns."""

    config: TableConfig
    ref: str
    dialect: Dialect

    def c(self, field: str, alias: str = "") -> str:
        """The quoted physical column of logical ``field`` (optionally ``alias.``-qualified)."""
        name = self.dialect.ident(self.config.col(field))
        return f"{alias}.{name}" if alias else name

    def present(self, fields: Sequence[str]) -> tuple[str, ...]:
        return tuple(f for f in fields if not self.config.is_skipped(f))


@attrs.frozen(eq=False)
class Statements:
    """The rendered statements of one store. Bind parameters are named (``dialect.param``).

    ``*_fields`` are the logical columns each SELECT returns, in order; extra-column
    parameters are ``x0``, ``x1``... in the sorted order of ``TableConfig.sorted_extra_columns``.
    """

    dialect: Dialect
    schema: SchemaConfig
    create_versions: str
    insert_version: str
    max_version: str
    create_tables: tuple[str, ...]
    create_indexes: tuple[str, ...]
    table_probes: tuple[str, ...]
    conv_fields: tuple[str, ...]
    conv_insert: str
    conv_select: str
    conv_update: str  # RETURNING created_at (or id); a plain SELECT when metadata is skipped
    conv_delete: tuple[str, ...]
    item_fields: tuple[str, ...]
    item_insert: str
    item_select: str
    link_exists: str
    link_delete: str
    list_asc: str
    list_desc: str
    resp_fields: tuple[str, ...]
    resp_insert: str
    resp_select: str
    resp_delete: str
    chain_all: str
    chain_depth: str
    ident_list: str | None
    ident_list_limit: str | None
    ident_delete: str | None
    link_parts: tuple[str, str]  # (INSERT ... VALUES, one row with {n} standing for its number)
    # Keyset pages by primary key, counts, insert-if-absent, for datacon.transfer (see
    # _export_queries); empty for a dialect that renders none.
    export: Mapping[str, str] = attrs.field(factory=dict)
    _link_cache: dict[int, str] = attrs.field(factory=dict, init=False)

    def link_insert(self, rows: int) -> str:
        """A multi-row INSERT of ``rows`` links (params ``cid``, ``i{n}``, ``a{n}``, ``x*``).

        Rendered once per row count and kept (a store sees few distinct counts, and at most
        ``dialect.max_rows_per_insert``).
        """
        sql = self._link_cache.get(rows)
        if sql is None:
            head, row = self.link_parts
            sql = self._link_cache[rows] = head + ", ".join(row.replace("{n}", str(n)) for n in range(rows))
        return sql

    def link_restore(self, rows: int) -> str:
        """``link_insert(rows)`` that skips links which exist already (export restores)."""
        return self.link_insert(rows) + self.dialect.insert_ignore_suffix


def _extras_ddl(table: TableConfig, dialect: Dialect) -> str:
    return "".join(f", {dialect.ident(name)} {column.sql_type}" for name, column in table.sorted_extra_columns())


def _extras(table: TableConfig, dialect: Dialect) -> tuple[list[str], list[str]]:
    names = [dialect.ident(name) for name, _ in table.sorted_extra_columns()]
    params = [dialect.param(f"x{n}") for n in range(len(names))]
    return names, params


def _select_list(t: _Table, fields: Sequence[str], json_fields: frozenset[str], alias: str = "") -> str:
    return ", ".join(t.dialect.json_out(t.c(f, alias)) if f in json_fields else t.c(f, alias) for f in fields)


def _insert(t: _Table, fields: Sequence[str]) -> str:
    d = t.dialect
    names, params = _extras(t.config, d)
    columns = ", ".join([t.c(f) for f in fields] + names)
    values = ", ".join([d.param(f) for f in fields] + params)
    return f"INSERT INTO {t.ref} ({columns}) VALUES ({values})"  # noqa: S608


def _export_queries(
    convs: _Table, items: _Table, links: _Table, resps: _Table, fields: Mapping[str, tuple[str, ...]]
) -> dict[str, str]:
    """Whole-table enumeration for ``datacon.transfer``: ``{kind}_first`` / ``{kind}_next`` pages
    (``after``, or ``acid``/``aiid`` for links; ``limit``) by primary key, ``count_{kind}``,
    and ``restore_{kind}`` (insert unless the key exists; links use ``link_restore``)."""
    d = convs.dialect
    p = d.param
    json_fields = frozenset({"metadata", "content", "input", "raw_response"})
    queries: dict[str, str] = {}
    for prefix, t in (("conv", convs), ("item", items), ("resp", resps)):
        head = f"SELECT {_select_list(t, fields[prefix], json_fields)} FROM {t.ref}"  # noqa: S608
        tail = f"ORDER BY {t.c('id')} {d.limit(p('limit'))}"
        queries[f"{prefix}_first"] = f"{head} {tail}"
        queries[f"{prefix}_next"] = f"{head} WHERE {t.c('id')} > {p('after')} {tail}"
    cid, iid, added = links.c("conversation_id"), links.c("item_id"), links.c("added_at")
    link_head = f"SELECT {cid}, {iid}, {added} FROM {links.ref}"  # noqa: S608
    link_tail = f"ORDER BY {cid}, {iid} {d.limit(p('limit'))}"
    queries["link_first"] = f"{link_head} {link_tail}"
    queries["link_next"] = (
        f"{link_head} WHERE {cid} > {p('acid')} OR ({cid} = {p('acid')} AND {iid} > {p('aiid')}) {link_tail}"
    )
    for kind, t in (("conversation", convs), ("item", items), ("link", links), ("response", resps)):
        queries[f"count_{kind}"] = f"SELECT COUNT(*) FROM {t.ref}"  # noqa: S608
    for kind, t, prefix in (("conversation", convs, "conv"), ("item", items, "item"), ("response", resps, "resp")):
        queries[f"restore_{kind}"] = _insert(t, fields[prefix]) + d.insert_ignore_suffix
    return queries


def identifier_queries(resps: _Table, resp_cols: str, d: Dialect) -> tuple[str | None, str | None, str | None]:
    """List (newest first, ties id descending), limited list, and delete by safety identifier.

    All ``None`` when ``safety_identifier`` is a skipped column (the storages then list
    nothing and delete nothing, as upstream).
    """
    if resps.config.is_skipped("safety_identifier"):
        return None, None, None
    p = d.param
    rid = resps.c("id")
    newest = f"{resps.c('created_at')} DESC, " if not resps.config.is_skipped("created_at") else ""
    ident_list = (
        f"SELECT {resp_cols} FROM {resps.ref} WHERE {resps.c('safety_identifier')} = {p('sid')} "  # noqa: S608
        f"ORDER BY {newest}{rid} DESC"
    )
    ident_delete = f"DELETE FROM {resps.ref} WHERE {resps.c('safety_identifier')} = {p('sid')}"  # noqa: S608
    return ident_list, f"{ident_list} {d.limit(p('limit'))}", ident_delete


def render(schema: SchemaConfig, dialect: Dialect) -> Statements:
    """All statements of a store for ``schema`` (validated) in ``dialect``.

    :raises ConfigError: a name does not fit the dialect (``check_identifiers``).
    """
    check_identifiers(schema, dialect)
    d = dialect
    p = d.param
    ts, js = d.timestamp_type, d.json_type
    convs = _Table(schema.conversations, d.ident(schema.conversations.table), d)
    items = _Table(schema.conversation_items, d.ident(schema.conversation_items.table), d)
    links = _Table(schema.conversation_item_links, d.ident(schema.conversation_item_links.table), d)
    resps = _Table(schema.responses, d.ident(schema.responses.table), d)
    ine = "IF NOT EXISTS " if d.create_if_not_exists else ""

    def ddl(t: _Table, columns: list[tuple[str, str]], tail: str = "") -> str:
        body = ", ".join(f"{t.c(f)} {sql_type}" for f, sql_type in columns if not t.config.is_skipped(f))
        return f"CREATE TABLE {ine}{t.ref} ({body}{_extras_ddl(t.config, d)}{tail})"

    v64 = d.varchar(64)
    create_tables = (
        ddl(convs, [("id", f"{v64} PRIMARY KEY"), ("created_at", ts), ("metadata", js)]),
        ddl(
            items,
            [
                ("id", f"{v64} PRIMARY KEY"),
                ("response_id", v64),
                ("item_type", f"{d.varchar(32)} NOT NULL"),
                ("role", d.varchar(32)),
                ("content", js),
                ("status", d.varchar(32)),
                ("created_at", ts),
            ],
        ),
        # The links table ignores skip_columns (upstream): it always has its three columns.
        (
            f"CREATE TABLE {ine}{links.ref} ({links.c('conversation_id')} {v64} NOT NULL, "
            f"{links.c('item_id')} {v64} NOT NULL, {links.c('added_at')} {ts}{_extras_ddl(links.config, d)}, "
            f"CONSTRAINT {d.ident(_object_name('links_pk', links.config.table))} "
            f"PRIMARY KEY ({links.c('conversation_id')}, {links.c('item_id')}))"
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
    create_indexes = [
        (
            f"CREATE INDEX {ine}{d.ident(_object_name('links_idx', links.config.table))} "
            f"ON {links.ref} ({links.c('conversation_id')}, {links.c('added_at')}, {links.c('item_id')})"
        )
    ]
    if not resps.config.is_skipped("safety_identifier"):
        create_indexes.append(
            f"CREATE INDEX {ine}{d.ident(_object_name('safety_idx', resps.config.table))} "
            f"ON {resps.ref} ({resps.c('safety_identifier')})"
        )

    # Conversations.
    conv_fields = convs.present(("id", "created_at", "metadata"))
    conv_json = frozenset({"metadata"})
    conv_key = convs.c("created_at") if not convs.config.is_skipped("created_at") else convs.c("id")
    if convs.config.is_skipped("metadata"):
        conv_update = f"SELECT {conv_key} FROM {convs.ref} WHERE {convs.c('id')} = {p('id')}"  # noqa: S608
    else:
        conv_update = (
            f"UPDATE {convs.ref} SET {convs.c('metadata')} = {p('metadata')} "  # noqa: S608
            f"WHERE {convs.c('id')} = {p('id')} {d.returning(conv_key)}"
        )
    unlink_all = f"DELETE FROM {links.ref} WHERE {links.c('conversation_id')} = {p('id')}"  # noqa: S608
    delete_conv = f"DELETE FROM {convs.ref} WHERE {convs.c('id')} = {p('id')}"  # noqa: S608
    conv_delete = (f"WITH unlinked AS ({unlink_all}) {delete_conv}",) if d.writable_cte else (unlink_all, delete_conv)

    # Items and links.
    item_fields = items.present(("id", "response_id", "item_type", "role", "content", "status", "created_at"))
    item_json = frozenset({"content"})
    link_cols = [links.c("conversation_id"), links.c("item_id"), links.c("added_at")]
    link_extra_names, link_extra_params = _extras(links.config, d)
    link_head = f"INSERT INTO {links.ref} ({', '.join(link_cols + link_extra_names)}) VALUES "  # noqa: S608
    link_row = "(" + ", ".join([p("cid"), p("i{n}"), p("a{n}"), *link_extra_params]) + ")"
    link_where = f"{links.c('conversation_id')} = {p('cid')} AND {links.c('item_id')} = {p('iid')}"

    def page(ascending: bool) -> str:
        # One keyset query on the (conversation_id, added_at, item_id) index. The cursor is
        # resolved inside the query, in this conversation's links only: an unknown cursor
        # yields the sentinel, below (above) every timestamp, so the listing starts at the
        # beginning. The index gives the exact order, so the scan stops after ``limit`` rows.
        cmp, sentinel, order = (">", d.time_min, "ASC") if ascending else ("<", d.time_max, "DESC")
        added, item_id = links.c("added_at", "l"), links.c("item_id", "l")
        cursor = (
            f"COALESCE((SELECT {links.c('added_at', 'c')} FROM {links.ref} c "  # noqa: S608
            f"WHERE {links.c('conversation_id', 'c')} = {p('cid')} AND {links.c('item_id', 'c')} = {p('after')}), "
            f"{sentinel})"
        )
        if d.row_values:
            # (a, b) > (x, y) is decided by the first unequal pair: with the sentinel (or a
            # NULL cursor id) the added_at comparison alone decides.
            keyset = f"({added}, {item_id}) {cmp} ({cursor}, {p('after')})"
        else:
            keyset = f"{added} {cmp}= {cursor} AND ({added} {cmp} {cursor} OR {item_id} {cmp} {p('after')})"
        return (
            f"SELECT {_select_list(items, item_fields, item_json, 'i')} "  # noqa: S608
            f"FROM {links.ref} l JOIN {items.ref} i ON {items.c('id', 'i')} = {item_id} "
            f"WHERE {links.c('conversation_id', 'l')} = {p('cid')} AND {keyset} "
            f"ORDER BY {added} {order}, {item_id} {order} {d.limit(p('limit'))}"
        )

    # Responses.
    resp_fields = resps.present(
        (
            "id",
            "conversation_id",
            "previous_response_id",
            "input",
            "created_at",
            "safety_identifier",
            "model",
            "raw_response",
        )
    )
    resp_json = frozenset({"input", "raw_response"})
    resp_cols = _select_list(resps, resp_fields, resp_json)
    resp_by_id = f"SELECT {resp_cols} FROM {resps.ref} WHERE {resps.c('id')} = {p('id')}"  # noqa: S608
    rid, prev = resps.c("id"), resps.c("previous_response_id")

    def chain(bounded: bool) -> str:
        # One recursive query collects the ids; the rows are then fetched by primary key.
        # Unbounded: UNION (no depth column) discards repeated rows, so a cycle ends the
        # recursion. Bounded: UNION ALL stops at max_depth. walk_chain orders and validates.
        if resps.config.is_skipped("previous_response_id"):
            return resp_by_id
        depth_col, first_depth, next_depth, union = ("", "", "", "UNION")
        where = ""
        if bounded:
            depth_col, first_depth, next_depth, union = (", depth", ", 1", ", c.depth + 1", "UNION ALL")
            where = f" WHERE c.depth < {p('max_depth')}"
        return (
            f"{d.recursive_with} chain (rid, prev{depth_col}) AS ("  # noqa: S608
            f"SELECT {rid}, {prev}{first_depth} FROM {resps.ref} WHERE {rid} = {p('id')} "
            f"{union} SELECT {resps.c('id', 'r')}, {resps.c('previous_response_id', 'r')}{next_depth} "
            f"FROM {resps.ref} r JOIN chain c ON {resps.c('id', 'r')} = c.prev{where}) "
            f"SELECT {resp_cols} FROM {resps.ref} WHERE {rid} IN (SELECT rid FROM chain)"
        )

    ident_list, ident_list_limit, ident_delete = identifier_queries(resps, resp_cols, d)

    versions = d.versions_table
    tables = (convs, items, links, resps)
    return Statements(
        dialect=d,
        schema=schema,
        create_versions=d.versions_ddl(ine),
        insert_version=(
            f"INSERT INTO {versions} (version, description) VALUES ({p('version')}, {p('description')})"  # noqa: S608
        ),
        max_version=f"SELECT COALESCE(MAX(version), 0) FROM {versions}",  # noqa: S608
        create_tables=create_tables,
        create_indexes=tuple(create_indexes),
        table_probes=tuple(d.table_name_for_probe(t.config.table) for t in tables),
        conv_fields=conv_fields,
        conv_insert=_insert(convs, conv_fields),
        conv_select=(
            f"SELECT {_select_list(convs, conv_fields, conv_json)} FROM {convs.ref} "  # noqa: S608
            f"WHERE {convs.c('id')} = {p('id')}"
        ),
        conv_update=conv_update,
        conv_delete=conv_delete,
        item_fields=item_fields,
        item_insert=_insert(items, item_fields),
        item_select=(
            f"SELECT {_select_list(items, item_fields, item_json)} FROM {items.ref} "  # noqa: S608
            f"WHERE {items.c('id')} = {p('id')}"
        ),
        link_exists=f"SELECT 1 FROM {links.ref} WHERE {link_where}",  # noqa: S608
        link_delete=f"DELETE FROM {links.ref} WHERE {link_where}",  # noqa: S608
        list_asc=page(ascending=True),
        list_desc=page(ascending=False),
        resp_fields=resp_fields,
        resp_insert=_insert(resps, resp_fields),
        resp_select=resp_by_id,
        resp_delete=f"DELETE FROM {resps.ref} WHERE {rid} = {p('id')}",  # noqa: S608
        chain_all=chain(bounded=False),
        chain_depth=chain(bounded=True),
        ident_list=ident_list,
        ident_list_limit=ident_list_limit,
        ident_delete=ident_delete,
        export=_export_queries(
            convs, items, links, resps, {"conv": conv_fields, "item": item_fields, "resp": resp_fields}
        ),
        link_parts=(link_head, link_row),
    )
