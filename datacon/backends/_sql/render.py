"""Every SQL statement of the shared layer, rendered once per store from SchemaConfig + Dialect.

This is the one module (with each backend's own ``dialect.py``) where SQL text is assembled.
It is safe because every interpolated name is a table or column name that
``SchemaConfig.validate`` restricted to ``[A-Za-z0-9_]`` (then quoted by the dialect), or a
``sql_type`` restricted to ``[A-Za-z0-9_ (),.]``; values are always bind parameters.

The columns of each table come from ``datacon._columns`` (declared once); what differs
between databases comes from the :class:`Dialect`'s hooks (quoting, owner, timestamps in
and out, guarded DDL, multi-row INSERT, the chain's cycle clause, the page keyset).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from datacon._columns import CONVERSATIONS, ITEM_PACKED, ITEMS, LINK_SEQUENCE, LINKS, RESPONSES, Column, Kind, Record
from datacon.errors import ConfigError
from datacon.schema import CORE_COLUMNS, SchemaConfig, TableConfig

from .dialect import Dialect, Keyset

__all__ = [
    "IDEMPOTENCY_TABLE",
    "DeclaredColumn",
    "RetentionSql",
    "Statements",
    "check_identifiers",
    "links_key",
    "links_key_sql",
    "packed_items_sql",
    "packs_items",
    "render",
    "retention_indexes",
    "sequence_column",
    "sequence_type",
]

#: datacon's own table of idempotency keys (SPEC 7.3), beside ``_schema_versions``.
IDEMPOTENCY_TABLE = "_idempotency_keys"
#: How many expired keys one sweep deletes at most.
IDEMPOTENCY_SWEEP = 100

# The indexes and constraints named after a table: (kind for Dialect.object_name, table, what).
# ``links_idx`` is the page index before v4, which that migration drops by its name.
_DERIVED = (
    ("links_pk", "conversation_item_links", "primary-key constraint"),
    ("links_idx", "conversation_item_links", "index"),
    ("links_order_idx", "conversation_item_links", "index"),
    ("prev_idx", "responses", "index"),
    ("safety_idx", "responses", "index"),
)


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
    for kind, label, what in _DERIVED:
        if kind == "safety_idx" and schema.responses.is_skipped("safety_identifier"):
            continue
        table_name = tables[label].table
        derived = dialect.object_name(kind, table_name)
        size = 0 if derived is None else len(derived.encode("utf-8"))
        if size > limit:
            longest = limit - (size - len(table_name.encode("utf-8")))
            raise ConfigError(
                f"{label}.table: the {what} name '{derived}' derived from it is {size} bytes; "
                f"{dialect.display} identifiers are at most {limit} bytes (use a table name of at most "
                f"{longest} bytes)",
                field,
            )
    # The list_conversations indexes' names are shortened to fit (Dialect.listing_index_name).


@attrs.frozen
class DeclaredColumn:
    """A column the configuration gives a table (what a schema-drift check compares).

    ``name`` is the physical name, ``sql_type`` the type without constraints (as ``ALTER
    TABLE ... ADD COLUMN`` takes it), ``renamed_from`` the logical (upstream) name of a
    renamed core column, ``what`` how messages call it, ``then`` the statements that follow
    its addition (an index on it).
    """

    name: str
    sql_type: str
    renamed_from: str | None
    what: str
    then: tuple[str, ...] = ()


@attrs.frozen
class _Table:
    """A table's quoted (owner-qualified) name, its declared columns, and its configuration."""

    config: TableConfig
    record: Record
    dialect: Dialect
    #: The items table keeps its rows' packed copies (``packs_items``): a column more in the
    #: DDL, the declared columns and every INSERT (its param ``packed``).
    packed: bool = False
    ref: str = attrs.field(init=False)

    @ref.default
    def _ref(self) -> str:
        return self.dialect.table(self.config.table)

    def c(self, field: str, alias: str = "") -> str:
        """The quoted physical column of logical ``field`` (optionally ``alias.``-qualified)."""
        name = self.dialect.ident(self.config.col(field))
        return f"{alias}.{name}" if alias else name

    def present(self) -> tuple[Column, ...]:
        """The declared columns that are not skipped (the links table ignores skips)."""
        if self.record is LINKS:
            return self.record.columns
        return tuple(column for column in self.record if not self.config.is_skipped(column.name))

    def out(self, column: Column, alias: str = "") -> str:
        """``column`` as a SELECT expression: JSON as text, timestamps as the dialect reads them."""
        if column.kind is Kind.JSON:
            return self.dialect.json_out(self.c(column.name, alias))
        if column.kind is Kind.TIME:
            return self.dialect.time_out(self.c(column.name, alias))
        return self.c(column.name, alias)

    def select_list(self, columns: Sequence[Column], alias: str = "") -> str:
        return ", ".join(self.out(column, alias) for column in columns)

    def value(self, column: Column, placeholder: str) -> str:
        """How ``placeholder`` is written to ``column`` (timestamps through the dialect)."""
        return self.dialect.time_in(placeholder) if column.kind is Kind.TIME else placeholder

    def bare_type(self, column: Column) -> str:
        """``column``'s type without constraints."""
        d = self.dialect
        if column.kind is Kind.JSON:
            return d.json_type
        if column.kind is Kind.TIME:
            return d.timestamp_type
        return d.varchar(column.size)

    def column_type(self, column: Column) -> str:
        d = self.dialect
        sql_type = self.bare_type(column)
        if column.kind is Kind.JSON or column.kind is Kind.TIME:
            return sql_type
        if column.primary_key:
            return f"{sql_type} PRIMARY KEY"
        # A database that stores '' as NULL cannot hold an empty text under NOT NULL.
        if not column.nullable and (column.kind is Kind.ID or not d.empty_string_is_null):
            return f"{sql_type} NOT NULL"
        return sql_type

    def declared(self) -> tuple[DeclaredColumn, ...]:
        """Every column the DDL gives this table, as a missing one would be added (its bare
        type: ``NOT NULL`` would fail on a table that has rows)."""
        core = []
        for column in self.present():
            name = self.config.col(column.name)
            renamed = name != column.name
            what = "renamed column" if renamed else "column"
            core.append(DeclaredColumn(name, self.bare_type(column), column.name if renamed else None, what))
        if self.record is LINKS:
            # The link sequence (v4), added as that migration adds it (its default fills the
            # rows there are, so NOT NULL holds), then the page index on it: the statements
            # of v4, so what a pending v4 adds is never drift as well.
            index = self.index("links_order_idx", ["conversation_id", "added_at", LINK_SEQUENCE, "item_id"])
            then = () if index is None else (index,)
            core.append(DeclaredColumn(LINK_SEQUENCE, sequence_type(self.dialect), None, "column", then))
        if self.packed:
            # Added as migration v6 adds it, then filled: v6's statements (never drift as well).
            core.append(DeclaredColumn(ITEM_PACKED, self.dialect.json_type, None, "column", (self.backfill(),)))
        extra = [
            DeclaredColumn(name, c.sql_type, None, "extra column") for name, c in self.config.sorted_extra_columns()
        ]
        return (*core, *extra)

    def extras(self) -> tuple[list[str], list[str]]:
        """The extra columns' quoted names and their bind parameters ``x0``, ``x1``..."""
        names = [self.dialect.ident(name) for name, _ in self.config.sorted_extra_columns()]
        return names, [self.dialect.param(f"x{n}") for n in range(len(names))]

    def create(self, tail: str = "") -> str:
        """CREATE TABLE (guarded by the dialect) of the present columns, the extra columns, ``tail``."""
        d = self.dialect
        body = ", ".join(f"{self.c(column.name)} {self.column_type(column)}" for column in self.present())
        if self.packed:
            body += f", {d.ident(ITEM_PACKED)} {d.json_type}"
        extras = "".join(f", {d.ident(name)} {column.sql_type}" for name, column in self.config.sorted_extra_columns())
        return d.create_table(self.ref, f"{body}{extras}{tail}")

    def insert(self, columns: Sequence[Column], key: int = 0) -> str:
        """An INSERT of one row (params named as the columns, then ``x*``); with ``key``,
        one that skips a row whose first ``key`` columns exist already (``insert_rows``)."""
        d = self.dialect
        names, params = self.extras()
        quoted = [self.c(column.name) for column in columns] + names
        values = [self.value(column, d.param(column.name)) for column in columns] + params
        if self.packed:
            quoted.append(d.ident(ITEM_PACKED))
            values.append(d.param(ITEM_PACKED))
        if key:
            return d.insert_rows(self.ref, quoted, [values], key)
        return f"INSERT INTO {self.ref} ({', '.join(quoted)}) VALUES ({', '.join(values)})"  # noqa: S608

    def index(self, kind: str, fields: Sequence[str]) -> str | None:
        """The dialect's CREATE INDEX ``kind`` on ``fields``, or ``None`` when it has none."""
        name = self.dialect.object_name(kind, self.config.table)
        if name is None:
            return None
        return self.dialect.create_index(name, self.ref, [self.c(field) for field in fields])

    def backfill(self) -> str:
        """The UPDATE giving the items without one their packed copy (migration v6), built by
        SQL as ``rows.pack_item`` builds it: text quoted by ``json_quote``, the content's JSON
        text as it is, the time as stored. Rows whose content is not valid JSON, or whose time
        is not an integer, keep none (they read from the columns, as before)."""
        text = (Kind.ID, Kind.TEXT)
        parts = [f"json_quote({self.c(c.name)})" if c.kind in text else self.c(c.name) for c in self.record]
        packed = " || ',' || ".join(parts)
        content, created = self.c("content"), self.c("created_at")
        return (
            f"UPDATE {self.ref} SET {self.dialect.ident(ITEM_PACKED)} = '[' || {packed} || ']' "  # noqa: S608
            f"WHERE {self.dialect.ident(ITEM_PACKED)} IS NULL AND json_valid({content}) "
            f"AND typeof({created}) = 'integer'"
        )


@attrs.frozen(eq=False)
class Statements:
    """The rendered statements of one store. Bind parameters are named (``dialect.param``).

    ``*_fields`` are the logical columns each SELECT returns, in order (the bind names of the
    INSERTs too); extra-column parameters are ``x0``, ``x1``... in the sorted order of
    ``TableConfig.sorted_extra_columns``.
    """

    dialect: Dialect
    schema: SchemaConfig
    create_versions: str
    insert_version: str
    max_version: str
    create_tables: tuple[str, ...]
    create_indexes: tuple[str, ...]
    table_probes: tuple[str, ...]
    #: Per table (configured name, in ``table_probes`` order): the columns it must have.
    declared: tuple[tuple[str, tuple[DeclaredColumn, ...]], ...]
    conv_fields: tuple[str, ...]
    conv_insert: str
    conv_select: str
    conv_update: str  # returns created_at (or any value) of the updated row; a SELECT when metadata is skipped
    conv_delete: tuple[str, ...]
    item_fields: tuple[str, ...]
    item_insert: str
    item_select: str
    link_exists: str
    link_delete: str
    # Deletes item ``id`` unless a link names it (``lid`` repeats ``id``: see ``scid``).
    item_delete_unlinked: str
    list_asc: str
    list_desc: str
    # list_items' statements: list_asc/list_desc without the trailing link position, and
    # their first pages (``after`` NULL; without a cursor at all where ``plain_first_page``).
    items_asc: str
    items_desc: str
    items_first_asc: str
    items_first_desc: str
    # The same four reading the items' packed copies (``packs_items``), else ``None``: in the
    # order items_asc, items_desc, items_first_asc, items_first_desc.
    items_packed: tuple[str, str, str, str] | None
    # page_items' four pages (list_asc, list_desc, list_pos_asc, list_pos_desc) reading the
    # packed copies, each row the copy then the link's position; ``None`` as items_packed.
    pages_packed: tuple[str, str, str, str] | None
    # Pages after an explicit position (a page cursor): params cid, at, sq, after, limit.
    list_pos_asc: str
    list_pos_desc: str
    # Whether any link follows a position (params cid, at, sq, after): has_more of a full page.
    follows_asc: str
    follows_desc: str
    resp_fields: tuple[str, ...]
    resp_insert: str
    resp_select: str
    resp_delete: str
    chain_all: str
    chain_depth: str
    ident_list: str | None
    ident_list_limit: str | None
    ident_delete: str | None
    # The links table, its quoted columns, and one row's values with {n} standing for its number.
    link_parts: tuple[str, tuple[str, ...], tuple[str, ...]]
    # append_items' links in a CTE (``{rows}``: ``(i{n}, q{n})`` pairs, item id and rank); see render().
    append_links: str
    # The same for the items table (params ``{field}{n}``, extra columns ``ix*``).
    item_parts: tuple[str, tuple[str, ...], tuple[str, ...]]
    # The conversations table, for list_conversations' pages (rendered per filter, kept).
    conv_table: _Table
    # Idempotency keys: the table and its index (on expires_at), the catalog probe; free an
    # expired key (params scope, key, now), claim one unless taken (scope, key, fp, result,
    # expires), read one (scope, key: fingerprint, result, expires_at), sweep expired ones
    # (now, limit).
    create_idempotency: tuple[str, str]
    idempotency_probe: str
    idem_free: str
    idem_claim: str
    idem_select: str
    idem_sweep: str
    # Keyset pages by primary key, counts, insert-if-absent, for datacon.transfer (see
    # _export_queries).
    export: Mapping[str, str] = attrs.field(factory=dict)
    # prune and erase_identifier (SPEC 7.7): indexed pages of old records, deletes by id lists.
    retention: RetentionSql | None = None
    _link_cache: dict[tuple[int, int], str] = attrs.field(factory=dict, init=False)
    _append_cache: dict[tuple[int, int], tuple[str, ...]] = attrs.field(factory=dict, init=False)
    _append_one: list[str | None] = attrs.field(factory=list, init=False)
    _page_cache: dict[tuple[tuple[str, ...], bool, bool], str] = attrs.field(factory=dict, init=False)

    def conversation_page(self, keys: tuple[str, ...], after: bool, descending: bool) -> str:
        """A page of conversations in ``(created_at, id)`` order whose extra columns ``keys``
        equal ``f0``, ``f1``...; with ``after``, strictly after ``(after_at, after_id)``; at most
        ``limit`` rows. The listing indexes give the order, so the scan stops at the limit."""
        cached = self._page_cache.get((keys, after, descending))
        if cached is not None:
            return cached
        convs, d = self.conv_table, self.dialect
        p = d.param
        cmp, order = ("<", "DESC") if descending else (">", "ASC")
        where = [f"{d.ident(key)} = {p(f'f{n}')}" for n, key in enumerate(keys)]
        cid = convs.c("id")
        created = None if convs.config.is_skipped("created_at") else convs.c("created_at")
        if after:
            after_id = p("after_id")
            if created is None:
                where.append(f"{cid} {cmp} {after_id}")
            elif d.keyset is Keyset.ROW_VALUES:
                where.append(f"({created}, {cid}) {cmp} ({d.time_in(p('after_at'))}, {after_id})")
            else:
                at = d.time_in(p("after_at"))
                where.append(f"({created} {cmp} {at} OR ({created} = {at} AND {cid} {cmp} {after_id}))")
        order_by = f"{created} {order}, {cid} {order}" if created else f"{cid} {order}"
        sql = (
            f"SELECT {convs.select_list(convs.present())} FROM {convs.ref}"  # noqa: S608
            f"{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY {order_by} {d.limit(p('limit'))}"
        )
        self._page_cache[keys, after, descending] = sql
        return sql

    def append(self, items: int, links: int) -> tuple[str, ...]:
        """What ``append_items`` runs: ``items`` rows into the items table (params ``{field}{n}``,
        ``ix*``) and ``links`` rows into the links table (as ``link_insert``).

        One statement where the dialect has data-modifying CTEs (so one round trip, atomic by
        itself); else the two INSERTs, which the caller runs in one transaction.
        """
        found = self._append_cache.get((items, links))
        if found is None:
            ref, columns, row = self.item_parts
            values = [[value.replace("{n}", str(n)) for value in row] for n in range(items)]
            insert_items = self.dialect.insert_rows(ref, columns, values)
            insert_links = self.link_insert(links) if links else ""
            if not insert_links:
                found = (insert_items,)
            elif self.dialect.writable_cte:
                p = self.dialect.param
                # Each link's item id is its item's own ``id{n}`` (one parameter fewer per row).
                rows = ", ".join(f"({p(f'id{n}')}, {p(f'q{n}')})" for n in range(links))
                found = (f"WITH new_items AS ({insert_items}), {self.append_links.replace('{rows}', rows)}",)
            else:
                found = (insert_items, insert_links)
            self._append_cache[items, links] = found
        return found

    def append_one(self) -> str | None:
        """``append(1, 1)`` for ``append_items`` of one item (the usual turn), where the dialect
        has data-modifying CTEs (else ``None``): the item's params are its fields' own names
        (as ``item_insert``, so the encoded row is the params as it is), extra columns ``ix*``,
        the link's ``cid``/``scid`` and ``a0`` (its item id is the item's ``id``), and its rank the literal 1. Fewer
        params to build and bind on the hot path; the same statement otherwise. Rendered once."""
        if self._append_one:
            return self._append_one[0]
        found = None
        if self.dialect.writable_cte:
            ref, columns, row = self.item_parts
            insert_item = self.dialect.insert_rows(ref, columns, [[value.replace("{n}", "") for value in row]])
            rows = f"({self.dialect.param('id')}, 1)"
            found = f"WITH new_items AS ({insert_item}), {self.append_links.replace('{rows}', rows)}"
        self._append_one.append(found)
        return found

    def link_insert(self, rows: int) -> str:
        """A multi-row INSERT of ``rows`` links (params ``cid`` and ``scid`` (the same),
        ``i{n}``, ``a{n}``, ``q{n}`` (the row's rank in the call), ``x*``).

        Rendered once per row count and kept (a store sees few distinct counts, and at most
        ``dialect.max_rows_per_insert``).
        """
        return self._links(rows, 0)

    def link_restore(self, rows: int) -> str:
        """``link_insert(rows)`` that skips links which exist already (export restores)."""
        return self._links(rows, 2)

    def _links(self, rows: int, key: int) -> str:
        sql = self._link_cache.get((rows, key))
        if sql is None:
            ref, columns, row = self.link_parts
            values = [[value.replace("{n}", str(n)) for value in row] for n in range(rows)]
            sql = self._link_cache[rows, key] = self.dialect.insert_rows(ref, columns, values, key)
        return sql


@attrs.frozen(eq=False)
class RetentionSql:
    """The statements of ``prune`` and ``erase_identifier`` (``SqlBackend``'s ``Prunable`` calls).

    Id lists are bind parameters ``k0``, ``k1``... (and ``j0``... where a statement needs the
    list twice), rendered once per list length and kept. ``old(kind, after)`` pages keys
    ``(created_at, id)`` below ``cutoff`` on the ``(created_at, id)`` index, after ``(at, after)``.
    ``None`` where a skipped column makes the read impossible (it then finds nothing).
    """

    convs: _Table
    items: _Table
    links: _Table
    resps: _Table
    _cache: dict[tuple[str, int], str] = attrs.field(factory=dict, init=False)

    def _table(self, kind: str) -> _Table:
        return {"conversation": self.convs, "item": self.items, "response": self.resps}[kind]

    def old(self, kind: str, after: bool) -> str | None:
        """A page of ``(created_at, id)`` keys of ``kind`` older than ``cutoff`` (params
        ``cutoff``, ``limit``; with ``after`` also ``at``, ``after``)."""
        t = self._table(kind)
        if t.config.is_skipped("created_at"):
            return None
        key = (f"old_{kind}", int(after))
        found = self._cache.get(key)
        if found is None:
            d = t.dialect
            p = d.param
            created, rid = t.c("created_at"), t.c("id")
            where = [f"{created} < {d.time_in(p('cutoff'))}"]
            if after:
                at = d.time_in(p("at"))
                if d.keyset is Keyset.ROW_VALUES:
                    where.append(f"({created}, {rid}) > ({at}, {p('after')})")
                else:
                    where.append(f"({created} > {at} OR ({created} = {at} AND {rid} > {p('after')}))")
            found = self._cache[key] = (
                f"SELECT {t.out(CONVERSATIONS['created_at'])}, {rid} FROM {t.ref} "  # noqa: S608
                f"WHERE {' AND '.join(where)} ORDER BY {created}, {rid} {d.limit(p('limit'))}"
            )
        return found

    def _list(self, n: int, prefix: str = "k") -> str:
        return ", ".join(self.convs.dialect.param(f"{prefix}{i}") for i in range(n))

    def _render(self, name: str, n: int, make: Callable[[str], str]) -> str:
        found = self._cache.get((name, n))
        if found is None:
            found = self._cache[name, n] = make(self._list(n))
        return found

    def existing(self, n: int) -> str:
        """``(id, created_at)`` of the stored conversations among ``k*`` (``created_at`` NULL if skipped)."""
        c = self.convs
        created = "NULL" if c.config.is_skipped("created_at") else c.out(CONVERSATIONS["created_at"])
        return self._render(
            "existing",
            n,
            lambda ids: f"SELECT {c.c('id')}, {created} FROM {c.ref} WHERE {c.c('id')} IN ({ids})",  # noqa: S608
        )

    def links_of(self, field: str, n: int) -> str:
        """``(field, the other id)`` of every link whose ``field`` (``conversation_id`` or
        ``item_id``) is among ``k*``; both served by an index leading with ``field``."""
        other = "item_id" if field == "conversation_id" else "conversation_id"
        lk = self.links
        return self._render(
            f"links_{field}",
            n,
            lambda ids: f"SELECT {lk.c(field)}, {lk.c(other)} FROM {lk.ref} WHERE {lk.c(field)} IN ({ids})",  # noqa: S608
        )

    def identifier_page(self, after: bool) -> str | None:
        """``(id, conversation_id)`` of a page of one identifier's responses by id (params
        ``sid``, ``limit``, with ``after`` also ``after``)."""
        r = self.resps
        if r.config.is_skipped("safety_identifier"):
            return None
        d = r.dialect
        p = d.param
        conversation = "NULL" if r.config.is_skipped("conversation_id") else r.c("conversation_id")
        where = f"{r.c('safety_identifier')} = {p('sid')}" + (f" AND {r.c('id')} > {p('after')}" if after else "")
        return (
            f"SELECT {r.c('id')}, {conversation} FROM {r.ref} WHERE {where} "  # noqa: S608
            f"ORDER BY {r.c('id')} {d.limit(p('limit'))}"
        )

    def named_by_others(self, n: int) -> str | None:
        """The conversations among ``k*`` that a response with another (non-null) identifier
        than ``sid`` names (the index on responses' ``conversation_id``)."""
        r = self.resps
        if r.config.is_skipped("conversation_id") or r.config.is_skipped("safety_identifier"):
            return None
        p = r.dialect.param
        cid = r.c("conversation_id")
        return self._render(
            "others",
            n,
            lambda ids: (
                f"SELECT DISTINCT {cid} FROM {r.ref} WHERE {cid} IN ({ids}) "  # noqa: S608
                f"AND {r.c('safety_identifier')} <> {p('sid')}"
            ),
        )

    def delete(self, kind: str, n: int) -> str:
        """DELETE the records of ``kind`` (``conversation``, ``response``) whose id is among ``k*``."""
        t = self._table(kind)
        return self._render(
            f"delete_{kind}",
            n,
            lambda ids: f"DELETE FROM {t.ref} WHERE {t.c('id')} IN ({ids})",  # noqa: S608
        )

    def unlink(self, n: int) -> str:
        """DELETE every link of the conversations among ``k*``."""
        lk = self.links
        return self._render(
            "unlink",
            n,
            lambda ids: f"DELETE FROM {lk.ref} WHERE {lk.c('conversation_id')} IN ({ids})",  # noqa: S608
        )

    def delete_unlinked(self, n: int) -> str:
        """DELETE the items among ``k*`` that no link names (the same ids again as ``j*``, for
        the links' item index); the check and the delete are one statement."""
        i, lk = self.items, self.links
        again = self._list(n, "j")
        return self._render(
            "unlinked",
            n,
            lambda ids: (
                f"DELETE FROM {i.ref} WHERE {i.c('id')} IN ({ids}) AND {i.c('id')} NOT IN "  # noqa: S608
                f"(SELECT {lk.c('item_id')} FROM {lk.ref} WHERE {lk.c('item_id')} IN ({again}))"
            ),
        )


def retention_indexes(schema: SchemaConfig, dialect: Dialect) -> list[str]:
    """CREATE INDEX (idempotent) of what ``prune``/``erase_identifier`` read: conversations,
    items and responses by ``(created_at, id)`` (conversations: the listing index already),
    links by item (unless the links' key leads with ``item_id``: ``links_key_by_item``),
    responses by conversation. Migration v5 creates them; start-up too."""
    d = dialect
    out: list[str] = []
    for table, record in ((schema.conversation_items, ITEMS), (schema.responses, RESPONSES)):
        t = _Table(table, record, d)
        if not table.is_skipped("created_at"):
            out.append(
                d.create_index(d.retention_index_name(table.table, "created"), t.ref, [t.c("created_at"), t.c("id")])
            )
    if not d.links_key_by_item:  # else the primary key leads with item_id (migration v7)
        links = _Table(schema.conversation_item_links, LINKS, d)
        name = d.retention_index_name(links.config.table, "item")
        out.append(d.create_index(name, links.ref, [links.c("item_id")]))
    resps = schema.responses
    if not resps.is_skipped("conversation_id"):
        t = _Table(resps, RESPONSES, d)
        out.append(d.create_index(d.retention_index_name(resps.table, "conversation"), t.ref, [t.c("conversation_id")]))
    return out


def _names(columns: Sequence[Column]) -> tuple[str, ...]:
    return tuple(column.name for column in columns)


def _export_queries(convs: _Table, items: _Table, links: _Table, resps: _Table) -> dict[str, str]:
    """Whole-table enumeration for ``datacon.transfer``: ``{kind}_first`` / ``{kind}_next`` pages
    (``after``, or ``acid``/``aiid`` for links; ``limit``) by primary key, ``count_{kind}``,
    and ``restore_{kind}`` (insert unless the key exists; links use ``link_restore``)."""
    d = convs.dialect
    p = d.param
    queries: dict[str, str] = {}
    for prefix, t in (("conv", convs), ("item", items), ("resp", resps)):
        head = f"SELECT {t.select_list(t.present())} FROM {t.ref}"  # noqa: S608
        tail = f"ORDER BY {t.c('id')} {d.limit(p('limit'))}"
        queries[f"{prefix}_first"] = f"{head} {tail}"
        queries[f"{prefix}_next"] = f"{head} WHERE {t.c('id')} > {p('after')} {tail}"
    # Links by (conversation_id, added_at, seq, item_id), the page index's order: each
    # conversation's links in list order, so that a restore keeps a turn's order.
    order = (links.c("conversation_id"), links.c("added_at"), links.c(LINK_SEQUENCE), links.c("item_id"))
    cursor = (p("acid"), d.time_in(p("aat")), p("aseq"), p("aiid"))
    link_head = f"SELECT {links.select_list(links.present())}, {order[2]} FROM {links.ref}"  # noqa: S608
    link_tail = f"ORDER BY {', '.join(order)} {d.limit(p('limit'))}"
    queries["link_first"] = f"{link_head} {link_tail}"
    queries["link_next"] = f"{link_head} WHERE {_row_after(d, order, cursor)} {link_tail}"
    for kind, t in (("conversation", convs), ("item", items), ("link", links), ("response", resps)):
        queries[f"count_{kind}"] = f"SELECT COUNT(*) FROM {t.ref}"  # noqa: S608
    for kind, t in (("conversation", convs), ("item", items), ("response", resps)):
        queries[f"restore_{kind}"] = t.insert(t.present(), key=1)
    return queries


def _identifier_queries(resps: _Table, resp_cols: str) -> tuple[str | None, str | None, str | None]:
    """List (newest first, ties id descending), limited list, and delete by safety identifier.

    All ``None`` when ``safety_identifier`` is a skipped column (the storages then list
    nothing and delete nothing, as upstream).
    """
    if resps.config.is_skipped("safety_identifier"):
        return None, None, None
    d = resps.dialect
    p = d.param
    rid = resps.c("id")
    newest = f"{resps.c('created_at')} DESC, " if not resps.config.is_skipped("created_at") else ""
    ident_list = (
        f"SELECT {resp_cols} FROM {resps.ref} WHERE {resps.c('safety_identifier')} = {p('sid')} "  # noqa: S608
        f"ORDER BY {newest}{rid} DESC"
    )
    ident_delete = f"DELETE FROM {resps.ref} WHERE {resps.c('safety_identifier')} = {p('sid')}"  # noqa: S608
    return ident_list, f"{ident_list} {d.limit(p('limit'))}", ident_delete


def _after(d: Dialect, cmp: str, row: tuple[str, str, str], cursor: tuple[str, str, str]) -> str:
    """``row > cursor`` (or ``<``) for ``(added_at, seq, item_id)`` triples, as the dialect writes it."""
    (added, seq, item), (c_added, c_seq, c_item) = row, cursor
    if d.keyset is Keyset.ROW_VALUES:
        # (a, b, c) > (x, y, z) is decided by the first unequal pair.
        return f"({added}, {seq}, {item}) {cmp} ({c_added}, {c_seq}, {c_item})"
    return (
        f"({added} {cmp} {c_added} OR ({added} = {c_added} AND "
        f"({seq} {cmp} {c_seq} OR ({seq} = {c_seq} AND {item} {cmp} {c_item}))))"
    )


def _row_after(d: Dialect, row: Sequence[str], cursor: Sequence[str]) -> str:
    """``row > cursor`` for tuples of any length, as the dialect writes it."""
    if d.keyset is Keyset.ROW_VALUES:
        return f"({', '.join(row)}) > ({', '.join(cursor)})"
    (first, *rest), (c_first, *c_rest) = row, cursor
    if not rest:
        return f"{first} > {c_first}"
    return f"({first} > {c_first} OR ({first} = {c_first} AND {_row_after(d, rest, c_rest)}))"


def _page(
    d: Dialect,
    items: _Table,
    links: _Table,
    ascending: bool,
    positional: bool = False,
    first: bool = False,
    position: bool = True,
    packed: bool = False,
) -> str:
    """One keyset query on the (conversation_id, added_at, seq, item_id) index, which gives the
    exact order, so the scan stops after ``limit`` rows.

    By item id (``positional=False``): the cursor is resolved inside the query, in this
    conversation's links only, and an unknown cursor lists from the beginning. By position
    (a page cursor): ``at``, ``sq`` and ``after`` are the position's ``added_at``, sequence
    and item id, whether or not that link still exists. Each row ends with the link's
    ``added_at`` and sequence (the next page's position), unless ``position`` is off
    (``list_items`` needs no position: two columns fewer to convert per row). ``first``: the
    first page, no cursor (params cid and limit only; the same rows as the cursor form
    with ``after`` NULL). ``packed``: each row is the item's packed copy alone."""
    p = d.param
    cmp, order = (">", "ASC") if ascending else ("<", "DESC")
    added, seq, item_id = links.c("added_at", "l"), links.c(LINK_SEQUENCE, "l"), links.c("item_id", "l")
    row = (added, seq, item_id)
    join = ""
    if first:
        # What the cursor form gives without a cursor: every link on a JOINED dialect, else
        # those after the sentinel (a NULL added_at, only written outside datacon, never is).
        keyset = "" if d.keyset is Keyset.JOINED else f"{added} {cmp} {d.time_min if ascending else d.time_max}"
    elif positional:
        keyset = _after(d, cmp, row, (d.time_in(p("at")), p("sq"), p("after")))
    elif d.keyset is Keyset.JOINED:
        # The cursor link LEFT JOINed within this conversation; no match leaves c.* NULL.
        c_item = links.c("item_id", "c")
        join = f"LEFT JOIN {links.ref} c ON {links.c('conversation_id', 'c')} = {p('cid')} AND {c_item} = {p('after')} "
        cursor = (links.c("added_at", "c"), links.c(LINK_SEQUENCE, "c"), c_item)
        keyset = f"({c_item} IS NULL OR {_after(d, cmp, row, cursor)})"
    else:

        def of_cursor(field: str) -> str:
            return (
                f"(SELECT {links.c(field, 'c')} FROM {links.ref} c "  # noqa: S608
                f"WHERE {links.c('conversation_id', 'c')} = {p('cid')} AND {links.c('item_id', 'c')} = {p('after')})"
            )

        # An unknown cursor yields the sentinel, below (above) every timestamp, which
        # decides the comparison by itself (the NULL sequence is never compared).
        sentinel = d.time_min if ascending else d.time_max
        cursor = (f"COALESCE({of_cursor('added_at')}, {sentinel})", of_cursor(LINK_SEQUENCE), p("after"))
        keyset = _after(d, cmp, row, cursor)
    trailing = f", {links.out(LINKS['added_at'], 'l')}, {seq}" if position else ""
    selected = f"i.{d.ident(ITEM_PACKED)}" if packed else items.select_list(items.present(), "i")
    return (
        f"SELECT {selected}{trailing} "  # noqa: S608
        f"FROM {links.ref} l JOIN {items.ref} i ON {items.c('id', 'i')} = {item_id} "
        f"{join}WHERE {links.c('conversation_id', 'l')} = {p('cid')}{f' AND {keyset}' if keyset else ''} "
        f"ORDER BY {added} {order}, {seq} {order}, {item_id} {order} {d.limit(p('limit'))}"
    )


def _follows(d: Dialect, links: _Table, ascending: bool) -> str:
    """One row if a link of the conversation follows the position (one index probe).

    Ordered like the page, although any following row would do: without the ORDER BY,
    PostgreSQL may expect a match at once and walk the conversation's links by another index
    (the links of newer conversations make a late ``added_at`` look common), reading every
    link of a long conversation when none follows its last page."""
    p = d.param
    cmp, order = (">", "ASC") if ascending else ("<", "DESC")
    row = (links.c("added_at", "l"), links.c(LINK_SEQUENCE, "l"), links.c("item_id", "l"))
    keyset = _after(d, cmp, row, (d.time_in(p("at")), p("sq"), p("after")))
    return (
        f"SELECT 1 FROM {links.ref} l WHERE {links.c('conversation_id', 'l')} = {p('cid')} "  # noqa: S608
        f"AND {keyset} ORDER BY {', '.join(f'{column} {order}' for column in row)} {d.limit(p('limit'))}"
    )


def _chain(d: Dialect, resps: _Table, resp_cols: str, resp_by_id: str, bounded: bool) -> str:
    """One recursive query collects the ids; the rows are then fetched by primary key.

    Unbounded: UNION (no depth column) discards repeated rows, so a cycle ends the recursion;
    a dialect that allows only UNION ALL there ends it with its cycle clause instead.
    Bounded: UNION ALL stops at max_depth. walk_chain orders the rows and reports a cycle.
    """
    if resps.config.is_skipped("previous_response_id"):
        return resp_by_id
    p = d.param
    rid, prev = resps.c("id"), resps.c("previous_response_id")
    depth_col, first_depth, next_depth, union = ("", "", "", "UNION")
    if bounded or d.cycle_clause:
        depth_col, first_depth, next_depth, union = (", depth", ", 1", ", c.depth + 1", "UNION ALL")
    where = f" WHERE c.depth < {p('max_depth')}" if bounded else ""
    cycle = f"{d.cycle_clause} " if d.cycle_clause else ""
    return (
        f"{d.recursive_with} chain (rid, prev{depth_col}) AS ("  # noqa: S608
        f"SELECT {rid}, {prev}{first_depth} FROM {resps.ref} WHERE {rid} = {p('id')} "
        f"{union} SELECT {resps.c('id', 'r')}, {resps.c('previous_response_id', 'r')}{next_depth} "
        f"FROM {resps.ref} r JOIN chain c ON {resps.c('id', 'r')} = c.prev{where}) "
        f"{cycle}SELECT {resp_cols} FROM {resps.ref} WHERE {rid} IN (SELECT rid FROM chain)"
    )


def _idempotency(d: Dialect) -> dict[str, Any]:
    """The statements of the idempotency-key table (primary key ``(scope, idem_key)``).

    A key is claimed with an insert that skips an existing row (``ON CONFLICT DO NOTHING``,
    Oracle's ``MERGE``): of concurrent claimers one inserts, the others wait for its
    transaction and then find its row (or, where the database reports the race as a duplicate,
    fail with ``ConflictError``). The sweep deletes at most ``limit`` expired rows, oldest first,
    through the ``expires_at`` index.
    """
    p = d.param
    ref = d.table(IDEMPOTENCY_TABLE)
    scope, key, fp, result, expires = (d.ident(n) for n in ("scope", "idem_key", "fingerprint", "result", "expires_at"))
    body = (
        f"{scope} {d.varchar(512)} NOT NULL, {key} {d.varchar(255)} NOT NULL, {fp} {d.varchar(64)} NOT NULL, "
        f"{result} {d.json_type}, {expires} {d.timestamp_type} NOT NULL, PRIMARY KEY ({scope}, {key})"
    )
    index_name = f"{IDEMPOTENCY_TABLE}_expires_idx"
    if d.ident_case == "upper":
        index_name = index_name.upper()
    where = f"{scope} = {p('scope')} AND {key} = {p('key')}"
    values = [p("scope"), p("key"), p("fp"), p("result"), d.time_in(p("expires"))]
    oldest = (
        f"SELECT {scope}, {key} FROM {ref} WHERE {expires} <= {d.time_in(p('now'))} "  # noqa: S608
        f"ORDER BY {expires} {d.limit(p('limit'))}"
    )
    return {
        "create_idempotency": (d.create_table(ref, body), d.create_index(index_name, ref, [expires])),
        "idempotency_probe": d.table_name_for_probe(IDEMPOTENCY_TABLE),
        "idem_free": f"DELETE FROM {ref} WHERE {where} AND {expires} <= {d.time_in(p('now'))}",  # noqa: S608
        "idem_claim": d.insert_rows(ref, [scope, key, fp, result, expires], [values], key=2),
        "idem_select": f"SELECT {fp}, {d.json_out(result)}, {d.time_out(expires)} FROM {ref} WHERE {where}",  # noqa: S608
        "idem_sweep": f"DELETE FROM {ref} WHERE ({scope}, {key}) IN ({oldest})",  # noqa: S608
    }


def render(schema: SchemaConfig, dialect: Dialect) -> Statements:
    """All statements of a store for ``schema`` (validated) in ``dialect``.

    :raises ConfigError: a name does not fit the dialect (``check_identifiers``).
    """
    check_identifiers(schema, dialect)
    d = dialect
    p = d.param
    convs = _Table(schema.conversations, CONVERSATIONS, d)
    items = _Table(schema.conversation_items, ITEMS, d, packed=packs_items(schema, d))
    links = _Table(schema.conversation_item_links, LINKS, d)
    resps = _Table(schema.responses, RESPONSES, d)

    link_key = ", ".join(links.c(field) for field in links_key(d))
    links_pk = d.object_name("links_pk", links.config.table)
    pk = f", CONSTRAINT {d.ident(links_pk)} PRIMARY KEY ({link_key})" if links_pk else ""
    create_tables = (
        convs.create(),
        items.create(),
        links.create(f", {sequence_column(d)}{pk}"),
        resps.create(),
    )
    # The page index holds the whole page order (added_at, seq, item_id), so a page is read
    # in index order and never sorted (migration v4 replaces the older links index by it).
    indexes = [links.index("links_order_idx", ["conversation_id", "added_at", LINK_SEQUENCE, "item_id"])]
    if not resps.config.is_skipped("previous_response_id"):
        indexes.append(resps.index("prev_idx", ["previous_response_id"]))
    if not resps.config.is_skipped("safety_identifier"):
        indexes.append(resps.index("safety_idx", ["safety_identifier"]))
    # list_conversations: (created_at, id), and each extra column followed by those. They are
    # created on every start like the others (idempotent DDL), so existing databases get them.
    order_key = ["id"] if convs.config.is_skipped("created_at") else ["created_at", "id"]
    order_cols = [convs.c(field) for field in order_key]
    indexes.append(d.create_index(d.listing_index_name(convs.config.table, None), convs.ref, order_cols))
    for name, _ in convs.config.sorted_extra_columns():
        index_name = d.listing_index_name(convs.config.table, name)
        indexes.append(d.create_index(index_name, convs.ref, [d.ident(name), *order_cols]))
    indexes += retention_indexes(schema, d)

    # Conversations.
    conv_columns = convs.present()
    cid = convs.c("id")
    created = None if convs.config.is_skipped("created_at") else convs.out(CONVERSATIONS["created_at"])
    if convs.config.is_skipped("metadata"):
        # Nothing to update (upstream answers without persisting anything): does it exist?
        conv_update = f"SELECT {created or cid} FROM {convs.ref} WHERE {cid} = {p('id')}"  # noqa: S608
    else:
        conv_update = (
            f"UPDATE {convs.ref} SET {convs.c('metadata')} = {p('metadata')} "  # noqa: S608
            f"WHERE {cid} = {p('id')}{d.returning(created, cid)}"
        )
    unlink_all = f"DELETE FROM {links.ref} WHERE {links.c('conversation_id')} = {p('id')}"  # noqa: S608
    delete_conv = f"DELETE FROM {convs.ref} WHERE {cid} = {p('id')}"  # noqa: S608
    conv_delete = (f"WITH unlinked AS ({unlink_all}) {delete_conv}",) if d.writable_cte else (unlink_all, delete_conv)

    # Items and links.
    item_columns = items.present()
    link_names, link_params = links.extras()
    link_columns = (*[links.c(c.name) for c in links.present()], links.c(LINK_SEQUENCE), *link_names)
    # The sequence: the highest among this conversation's links with the same added_at, plus
    # the row's rank in the call (param ``q{n}``, 1 for the first row the caller gave). Every
    # row reads the links as they were before the statement, so the rows keep the order given
    # whatever order they are written in (``SqlItemStorage`` writes them in item-id order, so
    # concurrent writers lock their keys in one order); a later statement sorts after them.
    # Two concurrent transactions sharing one added_at would read the same highest sequence
    # where writers are not serialised: there each transaction starts above its own base
    # (``Dialect.link_sequence_base``), so their links never interleave. (``scid`` repeats
    # ``cid``: one parameter in two places would get two types deduced in PostgreSQL.)
    highest = _highest_sequence(d, links, d.time_in(p("a{n}")))
    start = f"COALESCE({highest}, 0)"
    if d.link_sequence_base is not None:
        start = f"GREATEST({start}, {d.link_sequence_base})"
    link_row = (p("cid"), p("i{n}"), d.time_in(p("a{n}")), f"{start} + {p('q{n}')}", *link_params)
    # append_items' links share one added_at (``a0``): the highest sequence is read once (one
    # index probe, where link_row makes one per row) and each row adds its rank, ``v.n``.
    # Only in the CTE form (the dialects with a writable CTE), where it saves most.
    highest_seq = _highest_sequence(d, links, d.time_in(p("a0")))
    top_seq = f"COALESCE({highest_seq}, 0)"
    if d.link_sequence_base is not None:
        top_seq = f"GREATEST({top_seq}, {d.link_sequence_base})"
    top = f"(SELECT {top_seq} AS seq)"
    append_links = (
        f"top AS {top} INSERT INTO {links.ref} ({', '.join(link_columns)}) "  # noqa: S608
        f"SELECT {', '.join((p('cid'), 'v.item_id', d.time_in(p('a0')), 'top.seq + v.n', *link_params))} "
        "FROM top CROSS JOIN (VALUES {rows}) v (item_id, n)"
    )
    item_names = [d.ident(name) for name, _ in items.config.sorted_extra_columns()]
    item_parts = (
        items.ref,
        (*[items.c(c.name) for c in items.present()], *item_names, *([d.ident(ITEM_PACKED)] if items.packed else [])),
        (
            *[items.value(c, p(f"{c.name}{{n}}")) for c in items.present()],
            *[p(f"ix{k}") for k in range(len(item_names))],
            *([p(f"{ITEM_PACKED}{{n}}")] if items.packed else []),
        ),
    )
    link_where = f"{links.c('conversation_id')} = {p('cid')} AND {links.c('item_id')} = {p('iid')}"

    # Responses.
    resp_columns = resps.present()
    resp_cols = resps.select_list(resp_columns)
    rid = resps.c("id")
    resp_by_id = f"SELECT {resp_cols} FROM {resps.ref} WHERE {rid} = {p('id')}"  # noqa: S608
    ident_list, ident_list_limit, ident_delete = _identifier_queries(resps, resp_cols)

    versions = d.versions_table
    insert_version = f"INSERT INTO {versions} (version, description) VALUES ({p('version')}, {p('description')})"  # noqa: S608
    return Statements(
        dialect=d,
        schema=schema,
        create_versions=d.create_table(versions, d.versions_columns()),
        insert_version=d.version_insert(insert_version),
        max_version=f"SELECT COALESCE(MAX(version), 0) FROM {versions}",  # noqa: S608
        create_tables=create_tables,
        create_indexes=tuple(index for index in indexes if index is not None),
        table_probes=tuple(d.table_name_for_probe(t.config.table) for t in (convs, items, links, resps)),
        declared=tuple((t.config.table, t.declared()) for t in (convs, items, links, resps)),
        conv_fields=_names(conv_columns),
        conv_insert=convs.insert(conv_columns),
        conv_select=f"SELECT {convs.select_list(conv_columns)} FROM {convs.ref} WHERE {cid} = {p('id')}",  # noqa: S608
        conv_update=conv_update,
        conv_delete=conv_delete,
        item_fields=_names(item_columns),
        item_insert=items.insert(item_columns),
        item_select=(
            f"SELECT {items.select_list(item_columns)} FROM {items.ref} WHERE {items.c('id')} = {p('id')}"  # noqa: S608
        ),
        link_exists=f"SELECT 1 FROM {links.ref} WHERE {link_where}",  # noqa: S608
        link_delete=f"DELETE FROM {links.ref} WHERE {link_where}",  # noqa: S608
        item_delete_unlinked=(
            f"DELETE FROM {items.ref} WHERE {items.c('id')} = {p('id')} AND NOT EXISTS "  # noqa: S608
            f"(SELECT 1 FROM {links.ref} u WHERE {links.c('item_id', 'u')} = {p('lid')})"
        ),
        list_asc=_page(d, items, links, ascending=True),
        list_desc=_page(d, items, links, ascending=False),
        items_asc=_page(d, items, links, ascending=True, position=False),
        items_desc=_page(d, items, links, ascending=False, position=False),
        items_first_asc=_page(d, items, links, ascending=True, first=d.plain_first_page, position=False),
        items_first_desc=_page(d, items, links, ascending=False, first=d.plain_first_page, position=False),
        items_packed=(
            (
                _page(d, items, links, ascending=True, position=False, packed=True),
                _page(d, items, links, ascending=False, position=False, packed=True),
                _page(d, items, links, ascending=True, first=d.plain_first_page, position=False, packed=True),
                _page(d, items, links, ascending=False, first=d.plain_first_page, position=False, packed=True),
            )
            if items.packed
            else None
        ),
        pages_packed=(
            (
                _page(d, items, links, ascending=True, packed=True),
                _page(d, items, links, ascending=False, packed=True),
                _page(d, items, links, ascending=True, positional=True, packed=True),
                _page(d, items, links, ascending=False, positional=True, packed=True),
            )
            if items.packed
            else None
        ),
        list_pos_asc=_page(d, items, links, ascending=True, positional=True),
        list_pos_desc=_page(d, items, links, ascending=False, positional=True),
        follows_asc=_follows(d, links, ascending=True),
        follows_desc=_follows(d, links, ascending=False),
        resp_fields=_names(resp_columns),
        resp_insert=resps.insert(resp_columns),
        resp_select=resp_by_id,
        resp_delete=f"DELETE FROM {resps.ref} WHERE {rid} = {p('id')}",  # noqa: S608
        chain_all=_chain(d, resps, resp_cols, resp_by_id, bounded=False),
        chain_depth=_chain(d, resps, resp_cols, resp_by_id, bounded=True),
        ident_list=ident_list,
        ident_list_limit=ident_list_limit,
        ident_delete=ident_delete,
        export=_export_queries(convs, items, links, resps),
        retention=RetentionSql(convs, items, links, resps),
        link_parts=(links.ref, link_columns, link_row),
        append_links=append_links,
        item_parts=item_parts,
        conv_table=convs,
        **_idempotency(d),
    )


def packs_items(schema: SchemaConfig, dialect: Dialect) -> bool:
    """Whether the items table keeps packed copies (``ITEM_PACKED``): the dialect does, the
    table has every column of an item (a skipped one reads as its default, which a copy
    could not follow), and no column of it is named like the copy."""
    table = schema.conversation_items
    if not dialect.packed_items or any(table.is_skipped(column.name) for column in ITEMS):
        return False
    names = {table.col(column.name).lower() for column in ITEMS} | {name.lower() for name in table.extra_columns}
    return ITEM_PACKED not in names


def links_key(dialect: Dialect) -> tuple[str, str]:
    """The fields of the links' primary key, in order (``Dialect.links_key_by_item``)."""
    return ("item_id", "conversation_id") if dialect.links_key_by_item else ("conversation_id", "item_id")


def links_key_sql(schema: SchemaConfig, dialect: Dialect) -> list[str]:
    """Migration v7: where ``links_key_by_item``, the links' primary key rebuilt as
    ``(item_id, conversation_id)`` and the links-by-item index of v5 dropped (the key serves
    its reads); nothing elsewhere."""
    if not dialect.links_key_by_item:
        return []
    table = schema.conversation_item_links
    name = dialect.object_name("links_pk", table.table)
    statements = []
    if name is not None:
        columns = [table.col(field) for field in links_key(dialect)]
        statements += dialect.replace_primary_key(dialect.table(table.table), name, columns)
    statements.append(dialect.drop_index(dialect.retention_index_name(table.table, "item")))
    return statements


def packed_items_sql(schema: SchemaConfig, dialect: Dialect, existing: frozenset[str] | None) -> list[str]:
    """Migration v6: the packed-copy column where ``packs_items``, and the rows' copies."""
    if not packs_items(schema, dialect):
        return []
    table = _Table(schema.conversation_items, ITEMS, dialect, packed=True)
    quoted = dialect.ident(schema.conversation_items.table)  # as find_drift names it
    add = dialect.add_column(quoted, dialect.ident(ITEM_PACKED), dialect.json_type, existing)
    return [*add, table.backfill()] if add else []


def _highest_sequence(d: Dialect, links: _Table, at: str) -> str:
    """A scalar subquery: the highest sequence among the links of conversation ``scid`` added
    at ``at`` (NULL if none).

    With ``Dialect.sequence_by_range`` it is read as the last link at or before
    ``(scid, at)`` in the order index ``(conversation_id, added_at, seq, item_id)``, kept only
    if it has both. PostgreSQL makes a prepared statement's generic plan once, often while the
    table is nearly empty; for ``MAX`` under the two equalities it then costs the primary key
    ``(conversation_id, item_id)``, with ``added_at`` as a filter, the same as the order index,
    and a plan kept on the primary key reads every link of the conversation on every write
    (measured: 1.5 ms for an append to a 4,800-link conversation, 0.1 ms through the order
    index). A row comparison is only a range on the primary key's first column (estimated as a
    third of the table, then sorted), while the order index reads it backwards and stops at
    the first row, so every estimate picks the order index. (Since v7 PostgreSQL's primary key
    leads with ``item_id`` and cannot serve this read at all; the range stays, as it is right
    for a database still at v6 and costs the same.)
    """
    p = d.param
    conv, added, seq = links.c("conversation_id", "s"), links.c("added_at", "s"), links.c(LINK_SEQUENCE, "s")
    if not d.sequence_by_range:
        return f"(SELECT MAX({seq}) FROM {links.ref} s WHERE {conv} = {p('scid')} AND {added} = {at})"  # noqa: S608
    return (
        f"(SELECT CASE WHEN {conv} = {p('scid')} AND {added} = {at} THEN {seq} END "  # noqa: S608
        f"FROM {links.ref} s WHERE ({conv}, {added}) <= ({p('scid')}, {at}) "
        f"ORDER BY {conv} DESC, {added} DESC, {seq} DESC {d.limit('1')})"
    )


def sequence_type(d: Dialect) -> str:
    """The type, default and constraint of the links table's sequence column."""
    return f"{d.bigint_type} DEFAULT 0 NOT NULL"


def sequence_column(d: Dialect) -> str:
    """The links table's sequence column as declared in CREATE TABLE (and added by v4)."""
    return f"{d.ident(LINK_SEQUENCE)} {sequence_type(d)}"
