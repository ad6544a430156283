"""The shared SQL layer: statement rendering, upstream's migrations v1-v3, round trips per call."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from datacon import (
    ColumnDef,
    Conversation,
    ConversationItem,
    ListParams,
    NewConversation,
    NewConversationItem,
    PostgresConfig,
    SchemaConfig,
    SortOrder,
    StoredResponse,
    TableConfig,
    create_storage,
)
from datacon.backends._sql import (
    LATEST,
    MIGRATIONS,
    Dialect,
    Keyset,
    SqlBackend,
    SqlStore,
    Statements,
    migration_message,
    render,
)
from datacon.backends._sql.migrations import version_insert_sql
from datacon.backends.base import RECORD_KINDS, Backend, Enumerable, Restorable, Versioned
from datacon.backends.oracle import OracleDialect, oracle_schema
from datacon.backends.postgres import PostgresDialect
from datacon.backends.postgres import schema_script as postgres_schema_script
from datacon.backends.sqlite import SqliteDialect
from datacon.errors import ConfigError
from datacon.models import Link
from tests.support import RENAMED_SCHEMA, BackendUnderTest, sql_store

PG = PostgresDialect()
LITE = SqliteDialect()
ORACLE = OracleDialect()
#: The three dialects of the one renderer (Oracle's exact text: tests/backends/test_oracle_sql.py).
DIALECTS = pytest.mark.parametrize("dialect", [PG, LITE, ORACLE], ids=["postgres", "sqlite", "oracle"])


def _render(schema: SchemaConfig, dialect: Dialect) -> Statements:
    """``render``, with the schema uppercased first for Oracle (as its backend does)."""
    return render(oracle_schema(schema) if isinstance(dialect, OracleDialect) else schema, dialect)


def _up(version: int, schema: SchemaConfig, dialect: Dialect = PG, existing: frozenset[str] | None = None) -> list[str]:
    return MIGRATIONS[version - 1].up(schema, dialect, existing)


def _responses(**table: Any) -> SchemaConfig:
    return SchemaConfig(responses=TableConfig("responses", **table))


# --- upstream's migration tests (postgres_migrations.rs), then the SQLite forms ---------------


def test_migrations_are_upstreams_three_in_order_then_the_link_sequence() -> None:
    assert [m.version for m in MIGRATIONS] == [1, 2, 3, 4, 5, 6, 7]
    assert LATEST == 7
    assert [m.description for m in MIGRATIONS] == [
        "Add safety_identifier column to responses",
        "Remove legacy user_id column from responses",
        "Drop redundant output, metadata, instructions, tool_calls columns from responses",
        "Add the link sequence (turn order) and the page index on (added_at, seq, item_id)",
        "Add the retention indexes: items and responses by created_at, links by item, responses by conversation",
        "Add the items' packed copies (SQLite)",
        "Key the links by (item_id, conversation_id) and drop the links-by-item index (PostgreSQL)",
    ]


def test_v6_packs_sqlite_items_only_where_the_table_has_every_column() -> None:
    add = "ALTER TABLE `conversation_items` ADD COLUMN `packed` TEXT"
    statements = _up(6, SchemaConfig(), LITE, frozenset({"id"}))
    assert statements[0] == add
    assert statements[1].startswith("UPDATE `conversation_items` SET `packed` = '[' || json_quote(`id`)")
    assert len(statements) == 2
    assert _up(6, SchemaConfig(), LITE, frozenset({"id", "packed"})) == []  # added already
    assert _up(6, SchemaConfig(), PG) == []  # SQLite only
    skipped = SchemaConfig(conversation_items=TableConfig("conversation_items", skip_columns={"status"}))
    assert _up(6, skipped, LITE, frozenset({"id"})) == []
    named = SchemaConfig(conversation_items=TableConfig("conversation_items", columns={"content": "packed"}))
    assert _up(6, named, LITE, frozenset({"id"})) == []  # a column of that name: no copies
    assert render(named, LITE).items_packed is None
    assert render(SchemaConfig(), LITE).items_packed is not None


def test_v4_adds_the_sequence_and_replaces_the_page_index() -> None:
    assert _up(4, SchemaConfig()) == [
        'ALTER TABLE "conversation_item_links" ADD COLUMN IF NOT EXISTS "seq" BIGINT DEFAULT 0 NOT NULL',
        'DROP INDEX IF EXISTS "conv_item_links_conv_idx"',
        (
            'CREATE INDEX IF NOT EXISTS "conv_item_links_order_idx" ON "conversation_item_links" '
            '("conversation_id", "added_at", "seq", "item_id")'
        ),
    ]
    renamed = SchemaConfig(conversation_item_links=TableConfig("dc_links", columns={"added_at": "linked_at"}))
    assert _up(4, renamed, LITE, frozenset({"conversation_id", "item_id", "linked_at"})) == [
        "ALTER TABLE `dc_links` ADD COLUMN `seq` BIGINT DEFAULT 0 NOT NULL",
        "DROP INDEX IF EXISTS `dc_links_conv_idx`",
        (
            "CREATE INDEX IF NOT EXISTS `dc_links_order_idx` ON `dc_links` "
            "(`conversation_id`, `linked_at`, `seq`, `item_id`)"
        ),
    ]
    assert _up(4, SchemaConfig(), LITE, frozenset({"seq"}))[0].startswith("DROP INDEX")  # the column is there


def test_v1_adds_column_if_not_exists_unless_skipped() -> None:
    assert _up(1, SchemaConfig()) == [
        'ALTER TABLE "responses" ADD COLUMN IF NOT EXISTS "safety_identifier" VARCHAR(128)'
    ]
    assert _up(1, _responses(skip_columns={"safety_identifier"})) == []
    assert _up(1, _responses(columns={"safety_identifier": "user_ident"}))[0].endswith('"user_ident" VARCHAR(128)')


def test_v2_drops_user_id_unless_it_is_in_use() -> None:
    assert _up(2, SchemaConfig()) == ['ALTER TABLE "responses" DROP COLUMN IF EXISTS "user_id"']
    assert _up(2, _responses(columns={"safety_identifier": "USER_ID"})) == []
    assert _up(2, _responses(extra_columns={"user_id": ColumnDef("TEXT")})) == []


def test_v3_is_one_statement_dropping_the_legacy_columns() -> None:
    expected = (
        'ALTER TABLE "responses" DROP COLUMN IF EXISTS "output", DROP COLUMN IF EXISTS "metadata", '
        'DROP COLUMN IF EXISTS "instructions", DROP COLUMN IF EXISTS "tool_calls"'
    )
    assert _up(3, SchemaConfig()) == [expected]


def test_v3_keeps_columns_that_are_used() -> None:
    (kept_output,) = _up(3, _responses(columns={"safety_identifier": "output"}))
    assert '"output"' not in kept_output
    assert '"metadata"' in kept_output
    (kept_metadata,) = _up(3, _responses(extra_columns={"metadata": ColumnDef("TEXT")}))
    assert '"metadata"' not in kept_metadata
    assert '"output"' in kept_metadata


def test_sqlite_migrations_render_against_the_existing_columns() -> None:
    legacy = frozenset({"id", "user_id", "output", "tool_calls"})
    assert _up(1, SchemaConfig(), LITE, legacy) == [
        "ALTER TABLE `responses` ADD COLUMN `safety_identifier` VARCHAR(128)"
    ]
    assert _up(1, SchemaConfig(), LITE, legacy | {"safety_identifier"}) == []
    assert _up(2, SchemaConfig(), LITE, legacy) == ["ALTER TABLE `responses` DROP COLUMN `user_id`"]
    assert _up(2, SchemaConfig(), LITE, frozenset({"id"})) == []
    assert _up(3, SchemaConfig(), LITE, legacy) == [
        "ALTER TABLE `responses` DROP COLUMN `output`",
        "ALTER TABLE `responses` DROP COLUMN `tool_calls`",
    ]


def test_pending_migration_message_has_upstreams_shape() -> None:
    plans = [(m, m.up(SchemaConfig(), PG, None)) for m in MIGRATIONS[1:3]]
    message, statements = migration_message(PG, 1, plans)
    assert message.startswith(
        "Schema migration required (current version: 1, latest version: 7).\n\n"
        "The following migrations need to be applied:\n"
        "\n  v2: Remove legacy user_id column from responses\n"
        '    ALTER TABLE "responses" DROP COLUMN IF EXISTS "user_id";\n'
        "    INSERT INTO _schema_versions (version, description) "
        "VALUES (2, 'Remove legacy user_id column from responses');\n"
    )
    assert message.endswith(
        "\nTo apply automatically, set `auto_migrate: true` in your postgres schema config.\n"
        "To skip, set `version: 7` to mark your schema as already up to date."
    )
    assert statements == (
        plans[0][1][0],
        version_insert_sql(PG, MIGRATIONS[1]),
        plans[1][1][0],
        version_insert_sql(PG, MIGRATIONS[2]),
    )
    for statement in statements:
        assert f"    {statement};\n" in message


# --- rendering ---------------------------------------------------------------------------------


@DIALECTS
def test_renamed_schema_ddl_has_renames_and_extras_but_no_skipped_columns(dialect: Dialect) -> None:
    sql = _render(RENAMED_SCHEMA, dialect)
    q = dialect.ident
    convs, items, links, resps = sql.create_tables
    assert q("conv_id") in convs
    assert q("conv_meta") in convs
    assert f"{q('tenant_id')} VARCHAR(64)" in convs
    assert q("kind") in items
    assert q("body") in items
    assert q("status") not in items  # skipped
    assert q("linked_at") in links
    assert q("conv_ref") in links
    assert q("model") not in resps  # skipped
    assert f"{q('score')} INTEGER" in resps
    assert f"{q('stored_by')} VARCHAR(64)" in resps
    assert f"{q('user_ident')} {dialect.varchar(128)}" in resps
    assert sql.ident_list is not None
    assert all(q("model") not in s for s in (sql.resp_insert, sql.resp_select, sql.chain_all, sql.ident_list))
    assert sql.resp_fields == (
        "id",
        "conversation_id",
        "previous_response_id",
        "input",
        "created_at",
        "safety_identifier",
        "raw_response",
    )


def test_index_names_are_upstreams_for_default_tables_and_derived_for_renamed_ones() -> None:
    default = " ".join(render(SchemaConfig(), PG).create_indexes + render(SchemaConfig(), PG).create_tables)
    assert (
        '"conv_item_links_order_idx" ON "conversation_item_links" ("conversation_id", "added_at", "seq", "item_id")'
        in default
    )
    assert '"responses_safety_idx" ON "responses" ("safety_identifier")' in default
    assert 'CONSTRAINT "pk_conv_item_link"' in default
    renamed = " ".join(render(RENAMED_SCHEMA, PG).create_indexes + render(RENAMED_SCHEMA, PG).create_tables)
    assert '"dc_links_order_idx" ON "dc_links" ("conv_ref", "linked_at", "seq", "item_id")' in renamed
    assert '"dc_resps_safety_idx" ON "dc_resps" ("user_ident")' in renamed
    assert 'CONSTRAINT "dc_links_pk"' in renamed


def test_postgres_schema_script_follows_the_owner() -> None:
    """``datacon migrate sql`` prints the DDL start-up runs: in the owner's schema, every index too."""
    config = PostgresConfig(db_url="postgresql://u@localhost/db", schema=SchemaConfig(owner="Tenant_A"))
    script = postgres_schema_script(config)
    tables = [s for s in script if s.startswith("CREATE TABLE") and "_schema_versions" not in s]
    assert len(tables) == 5  # the four, and datacon's _idempotency_keys
    assert all(s.startswith('CREATE TABLE IF NOT EXISTS "tenant_a".') for s in tables)
    indexes = [s for s in script if s.startswith("CREATE INDEX")]
    assert any('"conv_item_links_order_idx" ON "tenant_a"."conversation_item_links"' in s for s in indexes)
    assert any('"conversations_list_idx" ON "tenant_a"."conversations"' in s for s in indexes)
    assert all(' ON "tenant_a".' in s for s in indexes)
    unowned = postgres_schema_script(PostgresConfig(db_url="postgresql://u@localhost/db"))
    assert not any("tenant_a" in s for s in unowned)


def test_identifier_limits_are_the_dialects() -> None:
    # SQLite keeps names of any length: the schema rules' 128 bytes, and longer derived names, work.
    long = SchemaConfig(conversation_item_links=TableConfig("l" * 128), responses=TableConfig("r" * 128))
    assert "l" * 128 + "_order_idx" in render(long, LITE).create_indexes[0]
    with pytest.raises(ConfigError, match=r"is 128 bytes; Postgres identifiers are at most 63 bytes"):
        render(long, PG)
    # The v4 page index is named after the links table too: 53 bytes fit, 54 do not.
    assert (
        f'"{"l" * 53}_order_idx"'
        in render(SchemaConfig(conversation_item_links=TableConfig("l" * 53)), PG).create_indexes[0]
    )
    with pytest.raises(ConfigError, match=r"the index name '" + "l" * 54 + "_order_idx' derived from it is 64 bytes"):
        render(SchemaConfig(conversation_item_links=TableConfig("l" * 54)), PG)
    # list_conversations' indexes are datacon's own: a name too long is shortened (with a hash
    # of the whole name, so two long extra columns sharing a prefix keep two indexes).
    extras = {"e" * 60 + "_a": ColumnDef("TEXT"), "e" * 60 + "_b": ColumnDef("TEXT")}
    wide = SchemaConfig(conversations=TableConfig("c" * 63, extra_columns=extras))
    names = [PG.listing_index_name("c" * 63, column) for column in (None, *sorted(extras))]
    assert all(len(name) == 63 for name in names)
    assert len(set(names)) == 3
    assert all(name.startswith("c" * 54 + "_") for name in names)
    listing = [index for index in render(wide, PG).create_indexes if "_list_idx" not in index and "c" * 54 in index]
    assert len(listing) == 3
    assert PG.listing_index_name("conversations", "tenant") == "conversations_tenant_list_idx"  # short: as before
    assert LITE.listing_index_name("c" * 63, None) == "c" * 63 + "_list_idx"  # SQLite keeps any length
    # Two logical tables on one physical table (names ignore case in both databases).
    same = SchemaConfig(conversations=TableConfig("Shared"), responses=TableConfig("shared"))
    for dialect in (LITE, PG):
        with pytest.raises(ConfigError, match=r"responses.table: 'shared' names the same table as conversations.table"):
            render(same, dialect)


@DIALECTS
def test_skipped_safety_identifier_has_no_index_and_no_queries(dialect: Dialect) -> None:
    sql = _render(_responses(skip_columns={"safety_identifier"}), dialect)
    # The page index, (Oracle, as upstream) the previous_response_id index, and
    # list_conversations' (created_at, id) index, and the four retention indexes (v5; three
    # where the links' key leads with item_id, v7).
    has_prev_index = dialect.object_name("prev_idx", "responses") is not None
    assert len(sql.create_indexes) == 6 + has_prev_index - dialect.links_key_by_item
    assert not any(dialect.ident("safety_identifier") in index for index in sql.create_indexes)
    assert sql.ident_list is None
    assert sql.ident_delete is None


def test_postgres_folds_identifiers_like_unquoted_upstream_names() -> None:
    sql = render(SchemaConfig(conversations=TableConfig("MyConvs", columns={"metadata": "Meta"})), PG)
    assert sql.create_tables[0].startswith('CREATE TABLE IF NOT EXISTS "myconvs" (')
    assert '"meta" JSON' in sql.create_tables[0]


@DIALECTS
def test_queries_are_keyset_and_recursive(dialect: Dialect) -> None:
    sql = _render(SchemaConfig(), dialect)
    first: tuple[str, ...] = (sql.items_first_asc, sql.items_first_desc)
    if dialect.plain_first_page:  # list_items' first page: no cursor to resolve
        for page in first:
            assert page.count("SELECT") == 1
            assert " ORDER BY " in page
            assert page.endswith(dialect.limit(dialect.param("limit")))
        first = ()
    for page in (sql.list_asc, sql.list_desc, sql.items_asc, sql.items_desc, *first):
        assert "OFFSET" not in page.upper()
        assert page.endswith(dialect.limit(dialect.param("limit")))
        if dialect.keyset is Keyset.JOINED:  # the cursor link LEFT JOINed
            assert page.count("SELECT") == 1
            assert " LEFT JOIN " in page
        else:  # the page, and the cursor's added_at and sequence resolved in scalar subqueries
            assert page.count("SELECT") == 3
        assert page.count(" ORDER BY ") == 1
    assert sql.chain_all.startswith(f"{dialect.recursive_with} chain ")
    if dialect.cycle_clause:  # UNION ALL only: the cycle clause ends a cycle
        assert " UNION ALL SELECT " in sql.chain_all
        assert f") {dialect.cycle_clause} SELECT " in sql.chain_all
        assert dialect.cycle_clause in sql.chain_depth
    else:  # UNION discards repeated rows
        assert " UNION SELECT " in sql.chain_all
        assert "depth" not in sql.chain_all
    assert " UNION ALL SELECT " in sql.chain_depth
    assert "depth <" in sql.chain_depth
    three = sql.link_insert(3)
    assert three.startswith("INSERT ")
    assert [three.count(dialect.param(f"i{n}")) for n in range(4)] == [1, 1, 1, 0]  # three rows in one statement
    assert three.count(dialect.param("cid")) == 3
    # Each row's sequence: the highest so far at its added_at, + n (read through a row range
    # where the dialect does, which names the conversation twice: range and match).
    assert three.count(dialect.param("scid")) == (6 if dialect.sequence_by_range else 3)
    assert sql.link_insert(3) is three  # rendered once per row count


# --- round trips per call, on the real databases -------------------------------------------------


class _Counting:
    """Wraps a store's connector: counts sessions and statements (the database is real)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sessions = 0
        self.statements: list[str] = []
        self.max_concurrency = inner.max_concurrency

    @contextmanager
    def session(self, *, write: bool = False, conflict: str = "", replica: bool = False) -> Iterator[Any]:
        self.sessions += 1
        with self.inner.session(write=write, conflict=conflict, replica=replica) as session:
            yield _CountingSession(session, self.statements)

    def write_one(self, sql: str, params: Any, conflict: str = "") -> int:
        self.sessions += 1
        self.statements.append(sql)
        return int(self.inner.write_one(sql, params, conflict))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _CountingSession:
    def __init__(self, inner: Any, log: list[str]) -> None:
        self._inner = inner
        self._log = log

    def execute(self, sql: str, params: Any = None) -> int:
        self._log.append(sql)
        return int(self._inner.execute(sql, params))

    def fetchone(self, sql: str, params: Any = None) -> Any:
        self._log.append(sql)
        return self._inner.fetchone(sql, params)

    def fetchall(self, sql: str, params: Any = None) -> Any:
        self._log.append(sql)
        return self._inner.fetchall(sql, params)

    def transaction(self) -> Any:
        self._log.append("BEGIN")
        return self._inner.transaction()


@pytest.fixture(
    params=[pytest.param("sqlite", marks=pytest.mark.sqlite), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def sql_backend(request: pytest.FixtureRequest) -> Iterator[BackendUnderTest]:
    backend: BackendUnderTest = request.getfixturevalue(f"{request.param}_backend")
    yield backend
    backend.wipe()


def test_every_operation_is_one_statement(sql_backend: BackendUnderTest) -> None:
    with create_storage(sql_backend.config()) as storage:
        store = sql_store(storage)
        counter = _Counting(store.connector)
        store.connector = counter
        t0 = datetime(2026, 1, 1, tzinfo=UTC)

        def one(call: Any) -> Any:
            before = len(counter.statements)
            result = call()
            assert len(counter.statements) - before == 1, counter.statements[before:]
            return result

        conv = one(lambda: storage.conversations.create_conversation(NewConversation(metadata={"a": 1})))
        one(lambda: storage.conversations.get_conversation(conv.id))
        one(lambda: storage.conversations.update_conversation(conv.id, {"b": 2}))
        ids = [one(lambda: storage.items.create_item(NewConversationItem("message", ["x"]))).id for _ in range(5)]
        one(lambda: storage.items.link_item(conv.id, ids[0], t0))
        one(
            lambda: storage.items.link_items(
                conv.id, [(i, t0 + timedelta(seconds=n)) for n, i in enumerate(ids[1:], start=1)]
            )
        )
        page = one(lambda: storage.items.list_items(conv.id, ListParams(2, SortOrder.DESC, after=ids[3])))
        assert [item.id for item in page] == [ids[2], ids[1]]
        one(lambda: storage.items.is_item_linked(conv.id, ids[0]))
        one(lambda: storage.items.get_item(ids[0]))
        one(lambda: storage.items.delete_item(conv.id, ids[0]))
        prev = None
        for _ in range(4):
            response = StoredResponse(previous_response_id=prev, safety_identifier="u1")
            one(lambda response=response: storage.responses.store_response(response))
            prev = response.id
        assert prev is not None
        assert len(one(lambda: storage.responses.get_response_chain(prev))) == 4
        assert len(one(lambda: storage.responses.get_response_chain(prev, 2))) == 2
        assert len(one(lambda: storage.responses.list_identifier_responses("u1", 3))) == 3
        one(lambda: storage.responses.get_response(prev))
        one(lambda: storage.responses.delete_response(prev))
        assert one(lambda: storage.responses.delete_identifier_responses("u1")) == 3
        assert "BEGIN" not in counter.statements  # single statements run in autocommit mode
        before = len(counter.statements)
        assert storage.conversations.delete_conversation(conv.id) is True
        deleting = counter.statements[before:]
        if sql_backend.name == "postgres":  # a data-modifying CTE: one statement, no transaction
            assert len(deleting) == 1
            assert deleting[0].startswith("WITH unlinked AS (DELETE")
        else:  # links, then the conversation, in one IMMEDIATE transaction
            assert deleting[0] == "BEGIN"
            assert len(deleting) == 3


@DIALECTS
def test_export_queries_are_rendered_with_the_store(dialect: Dialect) -> None:
    sql = _render(RENAMED_SCHEMA, dialect)
    q = dialect.ident
    assert set(sql.export) == {
        *(f"{kind}_{page}" for kind in ("conv", "item", "resp", "link") for page in ("first", "next")),
        *(f"{op}_{kind}" for op in ("count", "restore") for kind in ("conversation", "item", "response")),
        "count_link",
    }
    assert sql.export["conv_next"].endswith(
        f"WHERE {q('conv_id')} > {dialect.param('after')} ORDER BY {q('conv_id')} "
        f"{dialect.limit(dialect.param('limit'))}"
    )
    assert q("model") not in sql.export["resp_first"]  # skipped columns stay out
    # Pages read columns as the store's own SELECTs do (timestamps through time_out).
    assert sql.export["resp_first"].startswith(sql.resp_select.split(" WHERE ")[0])
    if isinstance(dialect, OracleDialect):  # no ON CONFLICT: MERGE inserts what is missing
        columns_and_values = sql.resp_insert.removeprefix('INSERT INTO "DC_RESPS" ')
        assert sql.export["restore_response"] == (
            f'MERGE INTO "DC_RESPS" t USING DUAL ON (t."ID" = :id) WHEN NOT MATCHED THEN INSERT {columns_and_values}'
        )
        assert sql.link_restore(2).startswith('MERGE INTO "DC_LINKS" t USING (SELECT :cid AS "CONV_REF", :i0 AS')
        assert ' ON (t."CONV_REF" = s."CONV_REF" AND t."ITEM_ID" = s."ITEM_ID") ' in sql.link_restore(2)
    else:
        assert sql.export["restore_response"] == sql.resp_insert + " ON CONFLICT DO NOTHING"
        assert sql.link_restore(2) == sql.link_insert(2) + " ON CONFLICT DO NOTHING"


class _Recorder:
    """A ``Connector`` with no database behind it: records each statement with its parameters.

    Reads return no rows (``COUNT(*)``: 0) and writes report one row changed, so the shared
    layer's ``SqlBackend`` can be driven over any dialect, Oracle included, without a server.
    """

    max_concurrency = 1

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @contextmanager
    def session(self, *, write: bool = False, conflict: str = "", replica: bool = False) -> Iterator[_Recorder]:
        yield self

    def write_one(self, sql: str, params: Any, conflict: str = "") -> int:
        return self.execute(sql, params)

    def migration_session(self) -> Any:
        raise AssertionError("not used here")

    def close(self) -> None:
        pass

    def stats(self) -> dict[str, int]:
        return {}

    def execute(self, sql: str, params: Any = None) -> int:
        self.calls.append((sql, dict(params or {})))
        return 1

    def fetchone(self, sql: str, params: Any = None) -> tuple[Any, ...] | None:
        self.calls.append((sql, dict(params or {})))
        return (0,)

    def fetchall(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        self.calls.append((sql, dict(params or {})))
        return []

    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield

    def try_execute(self, sql: str) -> str | None:
        raise AssertionError("not used here")


def _placeholders(sql: str, dialect: Dialect) -> set[str]:
    pattern = r"%\((\w+)\)s" if isinstance(dialect, PostgresDialect) else r"(?<![:\w]):(\w+)"
    return set(re.findall(pattern, sql))


@DIALECTS
def test_the_sql_backend_binds_exactly_the_parameters_of_its_export_statements(dialect: Dialect) -> None:
    """Every page, count and restore of ``SqlBackend`` runs the dialect's rendered statement with
    exactly its bind parameters (a missing or extra name fails on Oracle and PostgreSQL)."""
    schema = oracle_schema(RENAMED_SCHEMA) if isinstance(dialect, OracleDialect) else RENAMED_SCHEMA
    recorder = _Recorder()
    backend = SqlBackend(SqlStore(recorder, dialect, schema))
    assert isinstance(backend, Backend)
    assert isinstance(backend, Enumerable)
    assert isinstance(backend, Restorable)
    assert isinstance(backend, Versioned)
    t0 = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert backend.iter_conversations(None, 5) == []
    assert backend.iter_conversations("conv_a", 5) == []
    assert backend.iter_items("msg_a", 5) == []
    assert backend.iter_responses(None, 5) == []
    assert backend.iter_links(("conv_a", t0, 0, "msg_a"), 5) == []
    assert [backend.count(kind) for kind in RECORD_KINDS] == [0, 0, 0, 0]
    assert backend.restore_conversations([Conversation("conv_a", t0, {"k": 1})]) == 1
    assert backend.restore_items([ConversationItem("msg_a", None, "message", "user", [{"t": 1}], None, t0)]) == 1
    assert backend.restore_responses([StoredResponse(id="resp_a", created_at=t0, safety_identifier="u")]) == 1
    links = [Link("conv_a", f"msg_{n}", t0) for n in range(dialect.max_rows_per_insert + 1)]
    assert backend.restore_links(links) == 2  # one statement per chunk; each "changes one row" here
    export = backend.store.sql.export
    expected = [
        export["conv_first"],
        export["conv_next"],
        export["item_next"],
        export["resp_first"],
        export["link_next"],
        *(export[f"count_{kind}"] for kind in RECORD_KINDS),
        export["restore_conversation"],
        export["restore_item"],
        export["restore_response"],
        backend.store.sql.link_restore(dialect.max_rows_per_insert),
        backend.store.sql.link_restore(1),
    ]
    assert [sql for sql, _ in recorder.calls] == expected
    for sql, params in recorder.calls:
        assert set(params) == _placeholders(sql, dialect), sql
    # Extra columns get their defaults on a restore (no hook values): stored_by's is "system".
    _, response_params = recorder.calls[-3]
    assert "system" in response_params.values()
