"""The ``postgres`` backend on a real server: migrations, JSON, typed extras, errors, pool."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import attrs
import pytest

from datacon import (
    BeforeHookResult,
    ColumnDef,
    ListParams,
    NewConversation,
    NewConversationItem,
    PostgresConfig,
    RequestContext,
    SchemaConfig,
    SortOrder,
    Storage,
    StorageFactoryConfig,
    StorageHook,
    StorageOperation,
    StoredResponse,
    TableConfig,
    create_storage,
)
from datacon.backends._sql import MIGRATIONS, render
from datacon.backends._sql.migrations import version_insert_sql
from datacon.backends.postgres import PostgresDialect
from datacon.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    MigrationRequiredError,
    PoolTimeoutError,
)
from tests.servers.postgres import PASSWORD, PostgresBackend
from tests.support import RENAMED_SCHEMA, free_port, repo_root, sql_store

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
PG = PostgresDialect()


def open_pg(url: str, schema: SchemaConfig | None = None, hook: StorageHook | None = None, **options: Any) -> Storage:
    config = PostgresConfig(db_url=url, schema=schema, **options)
    return create_storage(StorageFactoryConfig(backend="postgres", postgres=config, hook=hook))


@pytest.fixture
def fresh_url(postgres_backend: PostgresBackend) -> Iterator[str]:
    """A new, empty database (migration tests must not share ``_schema_versions``)."""
    url = postgres_backend.create_database()
    try:
        yield url
    finally:
        postgres_backend.drop_database(url)


def query(backend: PostgresBackend, url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with backend.connect(url) as conn:
        rows: list[tuple[Any, ...]] = conn.execute(sql, params).fetchall()
        return rows


def columns(backend: PostgresBackend, url: str, table: str) -> set[str]:
    rows = query(backend, url, "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))
    return {row[0] for row in rows}


def versions(backend: PostgresBackend, url: str) -> list[int]:
    return [row[0] for row in query(backend, url, "SELECT version FROM _schema_versions ORDER BY version")]


# --- migrations ----------------------------------------------------------------------------------

LEGACY_RESPONSES = (
    "CREATE TABLE responses (id VARCHAR(64) PRIMARY KEY, conversation_id VARCHAR(64), "
    "previous_response_id VARCHAR(64), input JSON, created_at TIMESTAMPTZ, model VARCHAR(128), raw_response JSON, "
    "user_id VARCHAR(128), output JSON, metadata JSON, instructions TEXT, tool_calls JSON)"
)
# The links table and its page index as upstream (and datacon before v4) made them: no sequence.
LEGACY_LINKS = (
    (
        "CREATE TABLE conversation_item_links (conversation_id VARCHAR(64) NOT NULL, item_id VARCHAR(64) NOT NULL, "
        "added_at TIMESTAMPTZ, CONSTRAINT pk_conv_item_link PRIMARY KEY (conversation_id, item_id))"
    ),
    "CREATE INDEX conv_item_links_conv_idx ON conversation_item_links (conversation_id, added_at)",
)


@pytest.fixture
def legacy_url(postgres_backend: PostgresBackend, fresh_url: str) -> str:
    """A database as an older upstream release left it: tables at v0, no versions recorded."""
    with postgres_backend.connect(fresh_url) as conn:
        for ddl in render(SchemaConfig(), PG).create_tables[:2]:
            conn.execute(ddl)
        for ddl in (*LEGACY_LINKS, LEGACY_RESPONSES):
            conn.execute(ddl)
        conn.execute(
            "INSERT INTO responses (id, input, created_at, raw_response, user_id, output) "
            "VALUES ('resp_old', '[\"hi\"]', %s, 'null', 'u', '{}')",
            (T0,),
        )
    return fresh_url


EXPECTED_STATEMENTS = (
    'ALTER TABLE "responses" ADD COLUMN IF NOT EXISTS "safety_identifier" VARCHAR(128)',
    version_insert_sql(PG, MIGRATIONS[0]),
    'ALTER TABLE "responses" DROP COLUMN IF EXISTS "user_id"',
    version_insert_sql(PG, MIGRATIONS[1]),
    (
        'ALTER TABLE "responses" DROP COLUMN IF EXISTS "output", DROP COLUMN IF EXISTS "metadata", '
        'DROP COLUMN IF EXISTS "instructions", DROP COLUMN IF EXISTS "tool_calls"'
    ),
    version_insert_sql(PG, MIGRATIONS[2]),
    'ALTER TABLE "conversation_item_links" ADD COLUMN IF NOT EXISTS "seq" BIGINT DEFAULT 0 NOT NULL',
    'DROP INDEX IF EXISTS "conv_item_links_conv_idx"',
    (
        'CREATE INDEX IF NOT EXISTS "conv_item_links_order_idx" ON "conversation_item_links" '
        '("conversation_id", "added_at", "seq", "item_id")'
    ),
    version_insert_sql(PG, MIGRATIONS[3]),
    'CREATE INDEX IF NOT EXISTS "conversation_items_created_idx" ON "conversation_items" ("created_at", "id")',
    'CREATE INDEX IF NOT EXISTS "responses_created_idx" ON "responses" ("created_at", "id")',
    # v5 on PostgreSQL: no links-by-item index (the key v7 makes serves its reads).
    'CREATE INDEX IF NOT EXISTS "responses_conversation_idx" ON "responses" ("conversation_id")',
    version_insert_sql(PG, MIGRATIONS[4]),
    version_insert_sql(PG, MIGRATIONS[5]),  # v6 changes nothing on PostgreSQL
    PG.replace_primary_key('"conversation_item_links"', "pk_conv_item_link", ["item_id", "conversation_id"])[0],
    'DROP INDEX IF EXISTS "conversation_item_links_item_idx"',
    version_insert_sql(PG, MIGRATIONS[6]),
)


def test_fresh_database_is_created_at_the_latest_version(postgres_backend: PostgresBackend, fresh_url: str) -> None:
    with open_pg(fresh_url, SchemaConfig(auto_migrate=False)) as storage:
        storage.responses.store_response(StoredResponse(id="r1", safety_identifier="u"))
    assert versions(postgres_backend, fresh_url) == [1, 2, 3, 4, 5, 6, 7]
    assert "safety_identifier" in columns(postgres_backend, fresh_url, "responses")
    indexes = {row[0] for row in query(postgres_backend, fresh_url, "SELECT indexname FROM pg_indexes")}
    assert {"conv_item_links_order_idx", "responses_safety_idx", "pk_conv_item_link"} <= indexes
    with open_pg(fresh_url, SchemaConfig(auto_migrate=False)):  # reopens with nothing pending
        pass
    assert versions(postgres_backend, fresh_url) == [1, 2, 3, 4, 5, 6, 7]


def test_old_schema_needs_migration_with_the_exact_sql(postgres_backend: PostgresBackend, legacy_url: str) -> None:
    with pytest.raises(MigrationRequiredError) as info:
        open_pg(legacy_url, SchemaConfig(auto_migrate=False))
    assert info.value.statements == EXPECTED_STATEMENTS
    message = str(info.value)
    assert message.startswith("Schema migration required (current version: 0, latest version: 7).")
    assert "  v1: Add safety_identifier column to responses\n" in message
    assert "set `auto_migrate: true` in your postgres schema config" in message
    assert "set `version: 7`" in message
    assert "user_id" in columns(postgres_backend, legacy_url, "responses")  # nothing migrated
    # The listed SQL, applied by hand, brings the schema up to date.
    with postgres_backend.connect(legacy_url) as conn:
        for statement in info.value.statements:
            conn.execute(statement)
    with open_pg(legacy_url, SchemaConfig(auto_migrate=False)) as storage:
        assert storage.responses.get_response("resp_old") is not None


def test_auto_migrate_applies_and_keeps_data(postgres_backend: PostgresBackend, legacy_url: str) -> None:
    with open_pg(legacy_url, SchemaConfig(auto_migrate=True)) as storage:
        assert sql_store(storage).applied_migrations == [1, 2, 3, 4, 5, 6, 7]
        old = storage.responses.get_response("resp_old")
        assert old is not None
        assert old.input == ["hi"]
        assert old.created_at == T0
        storage.responses.store_response(StoredResponse(id="resp_new", safety_identifier="u"))
        assert [r.id for r in storage.responses.list_identifier_responses("u")] == ["resp_new"]
    assert versions(postgres_backend, legacy_url) == [1, 2, 3, 4, 5, 6, 7]
    assert columns(postgres_backend, legacy_url, "responses") == {
        "id",
        "conversation_id",
        "previous_response_id",
        "input",
        "created_at",
        "model",
        "raw_response",
        "safety_identifier",
    }
    descriptions = query(postgres_backend, legacy_url, "SELECT description FROM _schema_versions ORDER BY version")
    assert [row[0] for row in descriptions] == [m.description for m in MIGRATIONS]


def test_version_setting_skips_migrations(postgres_backend: PostgresBackend, legacy_url: str) -> None:
    with pytest.raises(MigrationRequiredError) as info:
        open_pg(legacy_url, SchemaConfig(version=2))
    assert "current version: 2, latest version: 7" in str(info.value)
    # v3 and v4, then the column v1 would have added (skipped by `version`, yet declared: drift).
    assert info.value.statements == EXPECTED_STATEMENTS[4:] + EXPECTED_STATEMENTS[:1]
    assert "table 'responses' has no column 'safety_identifier'" in str(info.value)
    # Skipped up to 7, but the tables still lack safety_identifier (v1) and seq (v4): that is
    # schema drift (every store_response and link_items would fail), reported with its fixes.
    with pytest.raises(MigrationRequiredError) as drift:
        open_pg(legacy_url, SchemaConfig(version=7))
    assert str(drift.value).startswith("Schema drift (current version: 7, latest version: 7)")
    assert "table 'conversation_item_links' has no column 'seq'" in str(drift.value)
    assert drift.value.statements == (*EXPECTED_STATEMENTS[6:9:2], EXPECTED_STATEMENTS[0])  # seq, its index
    skipped = TableConfig("responses", skip_columns={"safety_identifier"})
    with pytest.raises(MigrationRequiredError) as links_only:
        open_pg(legacy_url, SchemaConfig(version=7, responses=skipped))
    assert links_only.value.statements == EXPECTED_STATEMENTS[6:9:2]
    # auto_migrate adds what is missing (the page index then follows) and records no version.
    with open_pg(legacy_url, SchemaConfig(version=7, responses=skipped, auto_migrate=True)):
        pass
    assert versions(postgres_backend, legacy_url) == []  # skipped, not recorded
    assert "user_id" in columns(postgres_backend, legacy_url, "responses")
    assert "seq" in columns(postgres_backend, legacy_url, "conversation_item_links")
    indexes = {row[0] for row in query(postgres_backend, legacy_url, "SELECT indexname FROM pg_indexes")}
    assert "conv_item_links_order_idx" in indexes


def _upstream_v3_links(backend: PostgresBackend, url: str) -> None:
    """Bring the legacy database to upstream's v3 and give it links sharing one added_at."""
    with pytest.raises(MigrationRequiredError) as info:
        open_pg(url, SchemaConfig(auto_migrate=False))
    with backend.connect(url) as conn:
        for statement in info.value.statements[: EXPECTED_STATEMENTS.index(version_insert_sql(PG, MIGRATIONS[2])) + 1]:
            conn.execute(statement)
        for item_id in ("msg_c", "msg_a", "msg_b"):  # linked out of id order, at one added_at
            conn.execute(
                "INSERT INTO conversation_items (id, item_type, content, created_at) VALUES (%s, 'message', '[]', %s)",
                (item_id, T0),
            )
            conn.execute("INSERT INTO conversation_item_links VALUES ('conv_old', %s, %s)", (item_id, T0))
    assert versions(backend, url) == [1, 2, 3]


def test_an_upstream_v3_database_migrates_to_the_turn_order(postgres_backend: PostgresBackend, legacy_url: str) -> None:
    _upstream_v3_links(postgres_backend, legacy_url)
    with pytest.raises(MigrationRequiredError) as info:
        open_pg(legacy_url, SchemaConfig(auto_migrate=False))
    assert (
        info.value.statements
        == EXPECTED_STATEMENTS[EXPECTED_STATEMENTS.index(version_insert_sql(PG, MIGRATIONS[2])) + 1 :]
    )
    assert "current version: 3, latest version: 7" in str(info.value)
    with open_pg(legacy_url, SchemaConfig(auto_migrate=True)) as storage:
        assert sql_store(storage).applied_migrations == [4, 5, 6, 7]
        # Links made before keep their old tie-break (item id); new ones follow in the order made.
        assert [i.id for i in storage.items.list_items("conv_old", ListParams(10))] == ["msg_a", "msg_b", "msg_c"]
        storage.items.append_items(
            "conv_old", [NewConversationItem("message", [], id=i) for i in ("msg_z", "msg_0")], T0
        )
        order = ["msg_a", "msg_b", "msg_c", "msg_z", "msg_0"]
        assert [i.id for i in storage.items.list_items("conv_old", ListParams(10))] == order
        desc = storage.items.list_items("conv_old", ListParams(2, SortOrder.DESC, after="msg_z"))
        assert [i.id for i in desc] == ["msg_c", "msg_b"]
    indexes = {row[0] for row in query(postgres_backend, legacy_url, "SELECT indexname FROM pg_indexes")}
    assert "conv_item_links_order_idx" in indexes
    assert "conv_item_links_conv_idx" not in indexes


def _links_key(backend: PostgresBackend, url: str, table: str) -> tuple[str, str]:
    """The links table's primary key: its name and its index definition's column list."""
    rows = query(
        backend,
        url,
        "SELECT c.conname, pg_get_indexdef(c.conindid) FROM pg_constraint c "
        "WHERE c.conrelid = to_regclass(%s) AND c.contype = 'p'",
        (table,),
    )
    assert len(rows) == 1, rows
    name, definition = rows[0]
    return name, definition[definition.rindex("(") :]


def _back_to_v6(backend: PostgresBackend, url: str, table: str, key_name: str, index: str) -> None:
    """Make a v7 database what datacon up to v6 left: upstream's key order (under ``key_name``),
    the links-by-item index, no version 7."""
    with backend.connect(url) as conn:
        current, _ = _links_key(backend, url, table)
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{current}"')
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum IN (1, 2) "
                "ORDER BY a.attnum",
                (table,),
            ).fetchall()
        ]
        conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{key_name}" PRIMARY KEY ({", ".join(columns)})')
        conn.execute(f'CREATE INDEX "{index}" ON {table} ({columns[1]})')
        conn.execute("DELETE FROM _schema_versions WHERE version = 7")


@pytest.mark.parametrize("renamed", [False, True], ids=["default", "renamed-upstream-key-name"])
def test_v7_keys_the_links_by_item_and_keeps_them(
    postgres_backend: PostgresBackend, fresh_url: str, renamed: bool
) -> None:
    """Migration v7: the links' key rebuilt as (item_id, conversation_id) whatever the old key
    was called (upstream names it pk_conv_item_link even on a renamed table), the
    links-by-item index dropped, every link and its order kept, duplicates still refused."""
    schema = RENAMED_SCHEMA if renamed else SchemaConfig()
    table = "dc_links" if renamed else "conversation_item_links"
    conv, item = ("conv_ref", "item_id") if renamed else ("conversation_id", "item_id")
    turn = [NewConversationItem("message", [{"type": "input_text", "text": f"m{n}"}]) for n in range(5)]
    with open_pg(fresh_url, schema) as storage:
        made = {c: storage.items.append_items(c, turn, T0) for c in ("conv_a", "conv_b")}
        shared = storage.items.create_item(NewConversationItem("message", "shared"))
        for c in ("conv_a", "conv_b"):
            storage.items.link_item(c, shared.id, T0 + timedelta(seconds=1))
        before = {c: [i.id for i in storage.items.list_items(c, ListParams(20))] for c in made}
    assert _links_key(postgres_backend, fresh_url, table)[1] == f"({item}, {conv})"  # fresh: created so
    index = f"{table}_item_idx"
    _back_to_v6(postgres_backend, fresh_url, table, "pk_conv_item_link", index)
    assert _links_key(postgres_backend, fresh_url, table) == ("pk_conv_item_link", f"({conv}, {item})")

    with pytest.raises(MigrationRequiredError) as info:
        open_pg(fresh_url, schema)
    assert "current version: 6, latest version: 7" in str(info.value)
    assert info.value.statements[-2:] == (f'DROP INDEX IF EXISTS "{index}"', version_insert_sql(PG, MIGRATIONS[6]))
    with open_pg(fresh_url, attrs.evolve(schema, auto_migrate=True)) as storage:
        assert sql_store(storage).applied_migrations == [7]
        assert {c: [i.id for i in storage.items.list_items(c, ListParams(20))] for c in made} == before
        with pytest.raises(ConflictError):
            storage.items.link_item("conv_a", shared.id, T0)  # still one link per (conversation, item)
        storage.items.delete_item("conv_b", shared.id)
        assert [i.id for i in storage.items.list_items("conv_b", ListParams(20))] == before["conv_b"][:-1]
        assert storage.items.get_item(shared.id) is not None  # conv_a still links it
    key_name = "dc_links_pk" if renamed else "pk_conv_item_link"
    assert _links_key(postgres_backend, fresh_url, table) == (key_name, f"({item}, {conv})")
    assert index not in {row[0] for row in query(postgres_backend, fresh_url, "SELECT indexname FROM pg_indexes")}
    with open_pg(fresh_url, schema):  # nothing pending, and start-up made no links-by-item index again
        pass
    assert index not in {row[0] for row in query(postgres_backend, fresh_url, "SELECT indexname FROM pg_indexes")}

    # Run again (by hand, as a DBA might), the block changes nothing.
    oid = query(postgres_backend, fresh_url, "SELECT conindid FROM pg_constraint WHERE conname = %s", (key_name,))
    with postgres_backend.connect(fresh_url) as conn:
        for statement in info.value.statements[:-2]:
            conn.execute(statement)
    again = query(postgres_backend, fresh_url, "SELECT conindid FROM pg_constraint WHERE conname = %s", (key_name,))
    assert again == oid


@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
@pytest.mark.parametrize("cursor", [False, True])
def test_a_page_is_read_in_index_order_without_a_sort(
    postgres_backend: PostgresBackend, fresh_url: str, order: SortOrder, cursor: bool
) -> None:
    with open_pg(fresh_url) as storage:
        for n in range(40):
            storage.items.append_items(f"conv_{n % 4}", [NewConversationItem("message", [], id=f"msg_{n}")], T0)
        sql = sql_store(storage).sql
    with postgres_backend.connect(fresh_url) as conn:
        conn.execute("ANALYZE")
        conn.execute("SET enable_seqscan = off")  # a tiny table: make the planner show the index path
        ascending = order is SortOrder.ASC
        params = {"cid": "conv_1", "after": "msg_5" if cursor else None, "limit": 10}
        # list_items_page's query, then list_items' (no position columns)
        first = sql.items_first_asc if ascending else sql.items_first_desc
        items = (sql.items_asc if ascending else sql.items_desc) if cursor else first
        for page in (sql.list_asc if ascending else sql.list_desc, items):
            plan = "\n".join(str(row[0]) for row in conn.execute(f"EXPLAIN {page}", params).fetchall())
            assert "conv_item_links_order_idx" in plan
            assert "Sort" not in plan  # the index gives the order: the scan stops after limit rows


@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
@pytest.mark.parametrize("query", ["page", "follows"])
def test_cursor_pages_and_the_has_more_probe_read_the_page_index_without_a_sort(
    postgres_backend: PostgresBackend, fresh_url: str, order: SortOrder, query: str
) -> None:
    """A next_cursor's page (positional keyset on (added_at, seq, item_id)) and the has_more
    probe are index scans in the (conversation_id, added_at, seq, item_id) order, no Sort:
    their cost does not grow with the conversation (SPEC §7.4; the growth benchmark times it)."""
    with open_pg(fresh_url) as storage:
        for n in range(10):
            turn = [NewConversationItem("message", [], id=f"msg_{n}_{k}") for k in range(4)]
            storage.items.append_items(f"conv_{n % 2}", turn, T0 + timedelta(seconds=n // 3))
        sql = sql_store(storage).sql
        position = storage.items.list_items_page("conv_1", ListParams(3, order))
    assert position.next_cursor is not None
    ascending = order is SortOrder.ASC
    statement = {
        ("page", True): sql.list_pos_asc,
        ("page", False): sql.list_pos_desc,
        ("follows", True): sql.follows_asc,
        ("follows", False): sql.follows_desc,
    }[query, ascending]
    params = {"cid": "conv_1", "at": T0, "sq": 2, "after": "msg_1_1", "limit": 10}
    with postgres_backend.connect(fresh_url) as conn:
        conn.execute("ANALYZE")
        conn.execute("SET enable_seqscan = off")  # a small table: make the planner show the index path
        plan = "\n".join(str(row[0]) for row in conn.execute(f"EXPLAIN {statement}", params).fetchall())
    assert "conv_item_links_order_idx" in plan, plan
    assert "Sort" not in plan, plan


@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
def test_the_has_more_probe_at_the_end_of_a_long_conversation_stays_on_the_page_index(
    postgres_backend: PostgresBackend, fresh_url: str, order: SortOrder
) -> None:
    """Regression: with the links of newer conversations making the probe's ``added_at`` look
    common, PostgreSQL walked a long conversation's links by another index when nothing
    followed its last page (10 ms at 100,000 links in the growth benchmark). The probe is
    ordered like the page, so it is one descent of the page index."""
    ascending = order is SortOrder.ASC
    with open_pg(fresh_url) as storage:
        sql = sql_store(storage).sql
    with postgres_backend.connect(fresh_url) as conn:
        conn.execute(
            "INSERT INTO conversation_item_links (conversation_id, item_id, added_at, seq) "
            "SELECT 'conv_long', 'msg_' || n, %s + n * interval '1 microsecond', 0 FROM generate_series(1, 20000) n",
            (T0,),
        )
        conn.execute(
            "INSERT INTO conversation_item_links (conversation_id, item_id, added_at, seq) "
            "SELECT 'conv_' || (n %% 500), 'msg_o' || n, %s + n * interval '1 second', 0 "
            "FROM generate_series(1, 40000) n",
            (T0 + timedelta(days=300),),
        )
        conn.execute("ANALYZE")
        edge = 20000 if ascending else 1  # the last link in the page order: nothing follows it
        params = {"cid": "conv_long", "at": T0 + timedelta(microseconds=edge), "sq": 0, "after": f"msg_{edge}"}
        statement = sql.follows_asc if ascending else sql.follows_desc
        plan = "\n".join(
            str(row[0])
            for row in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", {**params, "limit": 1}).fetchall()
        )
    assert "conv_item_links_order_idx" in plan, plan
    assert "Rows Removed by Filter" not in plan, plan


def test_the_export_walks_links_in_the_page_index_order_without_a_sort(
    postgres_backend: PostgresBackend, fresh_url: str
) -> None:
    """The export's link pages (conversation_id, added_at, seq, item_id) are read from the
    page index, so an export lists each conversation's links in list order at no sort cost."""
    with open_pg(fresh_url) as storage:
        for n in range(20):
            storage.items.append_items(f"conv_{n % 3}", [NewConversationItem("message", [], id=f"msg_{n}")], T0)
        export = sql_store(storage).sql.export
    params = {"acid": "conv_1", "aat": T0, "aseq": 1, "aiid": "msg_1", "limit": 10}
    with postgres_backend.connect(fresh_url) as conn:
        conn.execute("ANALYZE")
        conn.execute("SET enable_seqscan = off")
        for name in ("link_first", "link_next"):
            plan = "\n".join(str(row[0]) for row in conn.execute(f"EXPLAIN {export[name]}", params).fetchall())
            assert "conv_item_links_order_idx" in plan, plan
            assert "Sort" not in plan, plan


RACER = """
import json, sys, time
from datacon import PostgresConfig, SchemaConfig, StorageFactoryConfig, create_storage
url, start = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))  # every process starts at the same instant
cfg = PostgresConfig(db_url=url, schema=SchemaConfig(auto_migrate=True))
with create_storage(StorageFactoryConfig(backend="postgres", postgres=cfg)) as storage:
    print(json.dumps(storage.raw.store.applied_migrations))
"""


def race(url: str, processes: int) -> list[list[int]]:
    import time

    start = time.time() + 2.0  # after every interpreter has imported datacon
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, url, str(start)],
            cwd=repo_root(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    applied = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        applied.append(json.loads(out.strip().splitlines()[-1]))
    return applied


def test_processes_migrating_at_once_apply_each_migration_once(
    postgres_backend: PostgresBackend, legacy_url: str
) -> None:
    applied = race(legacy_url, 5)
    assert sorted(v for versions_ in applied for v in versions_) == [1, 2, 3, 4, 5, 6, 7]
    assert [1, 2, 3, 4, 5, 6, 7] in applied  # the first one under the lock applied all seven
    assert versions(postgres_backend, legacy_url) == [1, 2, 3, 4, 5, 6, 7]


def test_processes_creating_a_fresh_database_at_once(postgres_backend: PostgresBackend, fresh_url: str) -> None:
    assert race(fresh_url, 5) == [[]] * 5  # created at the latest version, nothing to migrate
    assert versions(postgres_backend, fresh_url) == [1, 2, 3, 4, 5, 6, 7]


# --- JSON and typed extra columns ----------------------------------------------------------------


def test_json_columns_round_trip_as_json(postgres_backend: PostgresBackend, fresh_url: str) -> None:
    metadata = {"title": "t", "nested": {"list": [1, 2.5, None, True], "uni": "żółw 🐢"}}
    with open_pg(fresh_url) as storage:
        conv = storage.conversations.create_conversation(NewConversation(metadata=metadata))
        storage.conversations.create_conversation(NewConversation(id="conv_nometa"))
        storage.items.create_item(NewConversationItem("message", [{"type": "text", "text": "x"}], id="msg_1"))
        storage.items.create_item(NewConversationItem("message", None, id="msg_null"))
        first = StoredResponse(id="resp_1", input=[{"role": "user", "content": "q"}], raw_response={"output": [1]})
        storage.responses.store_response(first)
        storage.responses.store_response(StoredResponse(id="resp_2", previous_response_id="resp_1", input=None))
        got = storage.conversations.get_conversation(conv.id)
        assert got is not None
        assert got.metadata == metadata
        updated = storage.conversations.update_conversation(conv.id, {"new": {"deeper": [{}]}})
        assert updated is not None
        assert updated.metadata == {"new": {"deeper": [{}]}}
        assert updated.created_at == conv.created_at
        item = storage.items.get_item("msg_1")
        assert item is not None
        assert item.content == [{"type": "text", "text": "x"}]
        chain = storage.responses.get_response_chain("resp_2")
        assert [(r.id, r.input, r.raw_response) for r in chain] == [
            ("resp_1", first.input, {"output": [1]}),
            ("resp_2", None, None),
        ]
    types = query(
        postgres_backend,
        fresh_url,
        "SELECT id, pg_typeof(metadata)::text, json_typeof(metadata) FROM conversations ORDER BY id",
    )
    assert types == [(conv.id, "json", "object"), ("conv_nometa", "json", None)]  # None metadata: SQL NULL
    content = query(postgres_backend, fresh_url, "SELECT id, json_typeof(content) FROM conversation_items ORDER BY id")
    assert content == [("msg_1", "array"), ("msg_null", "null")]  # JSON null is stored as JSON null


class Extras(StorageHook):
    """A hook supplying extra-column values of several Python types."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = dict(values)

    def before(self, operation: StorageOperation, context: RequestContext | None, payload: Any) -> BeforeHookResult:
        return BeforeHookResult.cont(self.values)

    def after(
        self,
        operation: StorageOperation,
        context: RequestContext | None,
        payload: Any,
        result: Any,
        extra: Mapping[str, Any],
    ) -> None:
        return None


TYPED = {
    "n": ColumnDef("INTEGER"),
    "at": ColumnDef("TIMESTAMPTZ"),
    "local_ts": ColumnDef("TIMESTAMP"),
    "doc": ColumnDef("JSONB"),
    "flag": ColumnDef("BOOLEAN"),
    "price": ColumnDef("NUMERIC(10,2)"),
    "label": ColumnDef("VARCHAR(20)", default_value="dflt"),
}
TYPED_SCHEMA = SchemaConfig(
    conversations=TableConfig("tx_convs", extra_columns=TYPED),
    conversation_items=TableConfig("tx_items", extra_columns=TYPED),
    conversation_item_links=TableConfig("tx_links", extra_columns=TYPED),
    responses=TableConfig("tx_resps", extra_columns=TYPED),
)
VALUES = {
    "n": 42,
    "at": T0,
    "local_ts": "2026-01-02 03:04:05.123456",
    "doc": {"k": [1, "two"]},
    "flag": True,
    "price": Decimal("12.34"),
}


def test_typed_extra_columns_are_written_with_their_types(postgres_backend: PostgresBackend, fresh_url: str) -> None:
    with open_pg(fresh_url, TYPED_SCHEMA, hook=Extras(VALUES)) as storage:
        conv = storage.conversations.create_conversation(NewConversation(id="conv_x"))
        items = [storage.items.create_item(NewConversationItem("message", n, id=f"msg_{n}")).id for n in range(3)]
        storage.items.link_item(conv.id, items[0], T0)
        storage.items.link_items(conv.id, [(items[1], T0), (items[2], T0 + timedelta(seconds=1))])
        storage.responses.store_response(StoredResponse(id="resp_x"))
        turn = [NewConversationItem("message", n, id=f"msg_{n}") for n in (4, 3)]  # one statement, both tables
        items += [i.id for i in storage.items.append_items(conv.id, turn, T0 + timedelta(seconds=2))]
        assert [i.id for i in storage.items.list_items(conv.id, ListParams(9))] == items
    expected = (42, T0, datetime(2026, 1, 2, 3, 4, 5, 123456), {"k": [1, "two"]}, True, Decimal("12.34"), "dflt")
    for table, rows in (("tx_convs", 1), ("tx_items", 5), ("tx_links", 5), ("tx_resps", 1)):
        got = query(postgres_backend, fresh_url, f"SELECT n, at, local_ts, doc, flag, price, label FROM {table}")
        assert got == [expected] * rows, table
    kinds = query(postgres_backend, fresh_url, "SELECT pg_typeof(n)::text, pg_typeof(doc)::text FROM tx_links LIMIT 1")
    assert kinds == [("integer", "jsonb")]


def test_skipped_columns_are_not_in_the_tables(postgres_backend: PostgresBackend, fresh_url: str) -> None:
    with open_pg(fresh_url, RENAMED_SCHEMA):
        pass
    assert columns(postgres_backend, fresh_url, "dc_resps") == {
        "id",
        "conversation_id",
        "previous_response_id",
        "input",
        "created_at",
        "user_ident",
        "raw_json",
        "stored_by",
        "score",
    }
    assert columns(postgres_backend, fresh_url, "dc_items") == {
        "id",
        "response_id",
        "kind",
        "role",
        "body",
        "created_at",
        "tenant_id",
    }
    assert columns(postgres_backend, fresh_url, "dc_links") == {"conv_ref", "item_id", "linked_at", "seq", "tenant_id"}


# --- errors and the pool -------------------------------------------------------------------------


def _with(url: str, *, password: str | None = None, port: int | None = None) -> str:
    parts = urlsplit(url)
    user = parts.username or ""
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{password if password is not None else parts.password}@{host}:{port or parts.port}"
    return parts._replace(netloc=netloc).geturl()


WRONG = "wrong-pg-pass-1234"


@pytest.mark.parametrize("problem", ["wrong password", "nothing listening"])
def test_connection_errors_never_show_the_password(
    postgres_backend: PostgresBackend, caplog: pytest.LogCaptureFixture, problem: str
) -> None:
    if problem == "wrong password":
        url, secret = _with(postgres_backend.url, password=WRONG), WRONG
    else:
        url, secret = _with(postgres_backend.url, port=free_port()), PASSWORD
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackendUnavailableError) as info:
        open_pg(url, connect_timeout_secs=1)
    text = f"{info.value} {info.value!r}"
    assert secret not in text
    assert secret not in caplog.text
    assert str(info.value).startswith("Postgres unavailable: ")
    expected = "password authentication failed" if problem == "wrong password" else "refused"
    assert expected in str(info.value)


def test_pool_stats_and_pool_timeout(postgres_backend: PostgresBackend) -> None:
    with open_pg(postgres_backend.url, pool_max=1, pool_timeout_secs=0.5) as storage:
        assert storage.max_concurrency == 1
        stats = storage.pool_stats()
        assert stats["size"] == 1
        assert stats["in_use"] == 0
        connector = sql_store(storage).connector
        with connector.session():
            assert storage.pool_stats()["in_use"] == 1
            with pytest.raises(PoolTimeoutError, match=r"0\.5 s"):
                storage.conversations.get_conversation("conv_x")
        assert storage.pool_stats()["in_use"] == 0
        assert storage.conversations.get_conversation("conv_x") is None


def test_many_threads_share_the_pool(postgres_backend: PostgresBackend) -> None:
    errors: list[BaseException] = []
    with open_pg(postgres_backend.url, pool_max=4) as storage:

        def work(index: int) -> None:
            try:
                for n in range(25):
                    storage.responses.store_response(StoredResponse(id=f"rt{index}_{n}", safety_identifier=f"t{index}"))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sum(len(storage.responses.list_identifier_responses(f"t{i}")) for i in range(8)) == 200
        assert storage.pool_stats()["size"] <= 4
    postgres_backend.wipe()


def test_closed_storage_is_unavailable(postgres_backend: PostgresBackend) -> None:
    storage = open_pg(postgres_backend.url)
    raw = storage.raw.conversations
    storage.close()
    with pytest.raises(BackendUnavailableError):
        raw.get_conversation("conv_x")


def test_non_object_metadata_written_by_others_is_a_backend_error(postgres_backend: PostgresBackend) -> None:
    with open_pg(postgres_backend.url) as storage:
        storage.conversations.create_conversation(NewConversation(id="conv_list_meta"))
        with postgres_backend.connect() as conn:
            conn.execute("UPDATE conversations SET metadata = '[1, 2]' WHERE id = 'conv_list_meta'")
        with pytest.raises(BackendError, match="expected JSON object for conversation metadata, got JSON list"):
            storage.conversations.get_conversation("conv_list_meta")
    postgres_backend.wipe()


# --- identifier lengths (PostgreSQL truncates names to 63 bytes) ----------------------------------

LONG = "dc_" + "x" * 60  # 63 bytes: the longest name PostgreSQL keeps


def tables_like(backend: PostgresBackend, url: str, prefix: str) -> list[str]:
    rows = query(backend, url, "SELECT relname FROM pg_class WHERE relname LIKE %s ORDER BY relname", (prefix + "%",))
    return [row[0] for row in rows]


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        (  # four table names that the server would truncate to one
            SchemaConfig(
                conversations=TableConfig(LONG + "_conversations"),
                responses=TableConfig(LONG + "_responses"),
                conversation_items=TableConfig(LONG + "_items"),
                conversation_item_links=TableConfig(LONG + "_links"),
            ),
            f"conversations.table: '{LONG}_conversations' is 77 bytes",
        ),
        (  # the table fits, its derived index name does not
            SchemaConfig(conversation_item_links=TableConfig("l" * 61)),
            f"conversation_item_links.table: the primary-key constraint name '{'l' * 61}_pk' derived from it is 64",
        ),
        (
            SchemaConfig(conversation_item_links=TableConfig("l" * 55)),
            f"the index name '{'l' * 55}_conv_idx' derived from it is 64 bytes",
        ),
        (  # the v4 page index
            SchemaConfig(conversation_item_links=TableConfig("l" * 54)),
            f"the index name '{'l' * 54}_order_idx' derived from it is 64 bytes",
        ),
        (
            SchemaConfig(responses=TableConfig("r" * 53)),
            f"responses.table: the index name '{'r' * 53}_safety_idx' derived from it is 64 bytes",
        ),
        (
            SchemaConfig(responses=TableConfig("responses", columns={"model": "m" * 64})),
            "responses.columns['model']: '" + "m" * 64 + "' is 64 bytes",
        ),
        (
            SchemaConfig(conversations=TableConfig("conversations", extra_columns={"e" * 70: ColumnDef("TEXT")})),
            "conversations.extra_columns['" + "e" * 70 + "']: '" + "e" * 70 + "' is 70 bytes",
        ),
        (  # PostgreSQL folds the (quoted, lower-cased) names: one table
            SchemaConfig(conversations=TableConfig("Dup_Table"), conversation_items=TableConfig("dup_table")),
            "conversation_items.table: 'dup_table' names the same table as conversations.table",
        ),
    ],
)
def test_names_longer_than_postgres_keeps_are_a_config_error(
    postgres_backend: PostgresBackend, fresh_url: str, schema: SchemaConfig, where: str
) -> None:
    with pytest.raises(ConfigError) as info:
        open_pg(fresh_url, schema)
    assert info.value.field == "postgres.schema"
    assert where in info.value.reason
    assert tables_like(postgres_backend, fresh_url, "dc_x") == []  # nothing was created
    assert tables_like(postgres_backend, fresh_url, "dup_") == []


def test_names_of_exactly_63_bytes_work(postgres_backend: PostgresBackend, fresh_url: str) -> None:
    schema = SchemaConfig(
        conversations=TableConfig(LONG, extra_columns={"t" * 63: ColumnDef("TEXT", default_value="v")}),
        conversation_items=TableConfig("i" * 63, columns={"content": "c" * 63}),
        conversation_item_links=TableConfig("l" * 53),  # + "_order_idx" (the v4 page index): 63
        responses=TableConfig("r" * 52),  # + "_safety_idx": 63
    )
    with open_pg(fresh_url, schema) as storage:
        conv = storage.conversations.create_conversation(NewConversation())
        item = storage.items.create_item(NewConversationItem("message", {"k": 1}))
        storage.items.link_items(conv.id, [(item.id, T0)])
        storage.responses.store_response(StoredResponse(id="r1", safety_identifier="u"))
        assert [i.content for i in storage.items.list_items(conv.id, ListParams(5))] == [{"k": 1}]
        assert [r.id for r in storage.responses.list_identifier_responses("u")] == ["r1"]
    names = {row[0] for row in query(postgres_backend, fresh_url, "SELECT relname FROM pg_class")}
    expected = {LONG, "i" * 63, "l" * 53, "r" * 52}  # the tables, and the derived names of 63 bytes or fewer:
    expected |= {"l" * 53 + "_order_idx", "l" * 53 + "_pk", "r" * 52 + "_safety_idx"}
    # list_conversations' indexes on LONG: their names shortened to 63 bytes, keeping a hash.
    listing = {PG.listing_index_name(LONG, column) for column in (None, "t" * 63)}
    assert all(len(name) == 63 and name.startswith(LONG[:54]) for name in listing)
    assert expected | listing <= names
    assert "t" * 63 in columns(postgres_backend, fresh_url, LONG)


# --- owner: the tables live in that schema (upstream's owner."table") ---------------------------


def tables_in(backend: PostgresBackend, url: str) -> set[tuple[str, str]]:
    rows = query(backend, url, "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT LIKE 'pg_%%'")
    return {(row[0], row[1]) for row in rows if row[0] != "information_schema"}


def test_owner_puts_the_tables_in_that_schema(postgres_backend: PostgresBackend, fresh_url: str) -> None:
    with postgres_backend.connect(fresh_url) as conn:
        conn.execute("CREATE SCHEMA tenant_a")
        conn.execute("CREATE SCHEMA tenant_b")
    with (
        open_pg(fresh_url, SchemaConfig(owner="tenant_a")) as a,
        open_pg(fresh_url, SchemaConfig(owner="Tenant_B")) as b,
    ):
        a.conversations.create_conversation(NewConversation(id="conv_a"))
        a.items.create_item(NewConversationItem("message", "x", id="msg_a"))
        a.items.link_item("conv_a", "msg_a", T0)
        a.responses.store_response(StoredResponse(id="resp_a", safety_identifier="u"))
        assert b.conversations.get_conversation("conv_a") is None  # another schema, other tables
        b.conversations.create_conversation(NewConversation(id="conv_a"))  # no conflict there
        assert [r.id for r in a.responses.list_identifier_responses("u")] == ["resp_a"]
        assert [i.id for i in a.items.list_items("conv_a", ListParams(5))] == ["msg_a"]
        turn = a.items.append_items("conv_a", [NewConversationItem("message", n) for n in range(2)], T0)
        assert [i.id for i in a.items.list_items("conv_a", ListParams(5))] == ["msg_a", *(i.id for i in turn)]
        assert [c.id for c in a.conversations.list_conversations(ListParams(5)).data] == ["conv_a"]
    core = {"conversations", "conversation_items", "conversation_item_links", "responses"}
    found = tables_in(postgres_backend, fresh_url)
    assert {(schema, table) for schema in ("tenant_a", "tenant_b") for table in core} <= found
    assert ("public", "_schema_versions") in found  # upstream: never owner-qualified
    assert not {table for schema, table in found if schema == "public"} & core  # nothing written elsewhere
    indexes = query(
        postgres_backend, fresh_url, "SELECT schemaname, indexname FROM pg_indexes WHERE schemaname = 'tenant_a'"
    )
    # The v4 page index and list_conversations' indexes live there too.
    expected = {"conv_item_links_order_idx", "responses_safety_idx", "pk_conv_item_link", "conversations_list_idx"}
    assert expected <= {row[1] for row in indexes}
    assert query(postgres_backend, fresh_url, "SELECT id FROM tenant_a.conversations") == [("conv_a",)]


def test_owner_without_its_schema_is_a_config_error(postgres_backend: PostgresBackend, fresh_url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_pg(fresh_url, SchemaConfig(owner="no_such_schema"))
    assert info.value.field == "postgres.schema"
    assert "no schema 'no_such_schema'" in info.value.reason
    assert 'CREATE SCHEMA "no_such_schema"' in info.value.reason
    assert tables_in(postgres_backend, fresh_url) == set()  # not even the versions table


def test_owner_schema_is_migrated_in_place(postgres_backend: PostgresBackend, fresh_url: str) -> None:
    with postgres_backend.connect(fresh_url) as conn:
        conn.execute("CREATE SCHEMA legacy")
        conn.execute("SET search_path TO legacy")
        for ddl in render(SchemaConfig(), PG).create_tables[:2]:
            conn.execute(ddl)
        for ddl in (*LEGACY_LINKS, LEGACY_RESPONSES):  # v0: no safety_identifier, no seq
            conn.execute(ddl)
        # An unowned schema's page index of the same name, in public, must stay untouched.
        conn.execute("SET search_path TO public")
        conn.execute(LEGACY_LINKS[0])
        conn.execute(LEGACY_LINKS[1])
    with pytest.raises(MigrationRequiredError) as info:
        open_pg(fresh_url, SchemaConfig(owner="legacy"))
    assert info.value.statements[0] == (
        'ALTER TABLE "legacy"."responses" ADD COLUMN IF NOT EXISTS "safety_identifier" VARCHAR(128)'
    )
    # v4 in the owner's schema: the column added there, the old index dropped there (qualified:
    # DROP INDEX would otherwise find public's), the page index made on the owner's table.
    v4 = [s for s in info.value.statements if "conv_item_links" in s or "conversation_item_links" in s]
    assert v4 == [
        'ALTER TABLE "legacy"."conversation_item_links" ADD COLUMN IF NOT EXISTS "seq" BIGINT DEFAULT 0 NOT NULL',
        'DROP INDEX IF EXISTS "legacy"."conv_item_links_conv_idx"',
        (
            'CREATE INDEX IF NOT EXISTS "conv_item_links_order_idx" ON "legacy"."conversation_item_links" '
            '("conversation_id", "added_at", "seq", "item_id")'
        ),
        # v7: the links keyed by item first, on the owner's table, and v5's links-by-item
        # index (made by an earlier datacon) dropped there.
        PG.replace_primary_key(
            '"legacy"."conversation_item_links"', "pk_conv_item_link", ["item_id", "conversation_id"]
        )[0],
        'DROP INDEX IF EXISTS "legacy"."conversation_item_links_item_idx"',
    ]
    with open_pg(fresh_url, SchemaConfig(owner="legacy", auto_migrate=True)) as storage:
        storage.responses.store_response(StoredResponse(id="r1", safety_identifier="u"))
        storage.items.append_items("c1", [NewConversationItem("message", "x")], T0)
    with open_pg(fresh_url, SchemaConfig(owner="legacy")):  # migrated: nothing pending, no drift
        pass
    columns_sql = "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s"
    found = query(postgres_backend, fresh_url, columns_sql, ("legacy", "responses"))
    assert "safety_identifier" in {row[0] for row in found}
    found = query(postgres_backend, fresh_url, columns_sql, ("legacy", "conversation_item_links"))
    assert "seq" in {row[0] for row in found}
    indexes = set(query(postgres_backend, fresh_url, "SELECT schemaname, indexname FROM pg_indexes"))
    assert ("legacy", "conv_item_links_order_idx") in indexes
    assert ("legacy", "conv_item_links_conv_idx") not in indexes
    assert ("public", "conv_item_links_conv_idx") in indexes  # another schema's: left alone
    # v7 rekeyed the owner's links, not public's table of the same name.
    assert _links_key(postgres_backend, fresh_url, '"legacy"."conversation_item_links"')[1] == (
        "(item_id, conversation_id)"
    )
    assert _links_key(postgres_backend, fresh_url, '"public"."conversation_item_links"')[1] == (
        "(conversation_id, item_id)"
    )


def test_list_conversations_is_served_from_an_index_without_a_sort(postgres_backend: PostgresBackend) -> None:
    """SPEC §7.5: the listing indexes give the page order; no sequential scan, no sort."""
    from tests.conformance.test_list_conversations import LISTING_SCHEMA

    url = postgres_backend.create_database()
    try:
        with open_pg(url, LISTING_SCHEMA) as storage:
            store = sql_store(storage)
            with postgres_backend.connect(url) as conn:
                # 20 000 conversations over 50 tenants, written straight to the table.
                conn.execute(
                    "INSERT INTO lc_convs (id, created_at, metadata, tenant_id, user_id) "
                    "SELECT 'conv_' || lpad(g::text, 50, '0'), now() - g * interval '1 second', NULL, "
                    "'t' || (g % 50), 'u' || (g % 7) FROM generate_series(1, 20000) g"
                )
                conn.execute("ANALYZE lc_convs")
                after: dict[str, object] = {"after_at": datetime(2026, 1, 1, tzinfo=UTC), "after_id": "conv_x"}
                cases: list[tuple[tuple[str, ...], bool, bool, dict[str, object]]] = [
                    ((), False, False, {}),
                    ((), True, True, after),
                    (("tenant_id",), False, False, {"f0": "t7"}),
                    (("tenant_id",), True, False, {"f0": "t7", **after}),
                    (("tenant_id",), True, True, {"f0": "t7", **after}),
                    (("user_id",), True, False, {"f0": "u3", **after}),
                ]
                for keys, has_after, descending, params in cases:
                    sql = store.sql.conversation_page(keys, has_after, descending)
                    plan = "\n".join(
                        row[0] for row in conn.execute(f"EXPLAIN {sql}", {**params, "limit": 21}).fetchall()
                    )
                    assert "Index" in plan, plan
                    assert "Seq Scan" not in plan, plan
                    assert "Sort" not in plan, plan
                    assert "lc_convs_" in plan, plan
            # The storage agrees with the table.
            page = storage.conversations.list_conversations(ListParams(3), {"tenant_id": "t7"})
            assert len(page.data) == 3
            assert page.has_more
    finally:
        postgres_backend.drop_database(url)
