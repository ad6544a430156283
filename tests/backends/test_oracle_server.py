"""Oracle backend against a real server: start-up, migrations, types, batches, the pool.

These run only when DATACON_TEST_ORACLE_DSN/_USER/_PASSWORD name a database account used for
nothing else (see docs/oracle.md); otherwise the ``oracle_backend`` fixture skips them. They
have NOT been run: no Oracle server can be run where datacon is developed. Each test uses its
own table names and drops its tables afterwards; the migration test empties
``"_schema_versions"`` for a moment and restores it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from datacon import (
    ListParams,
    NewConversation,
    NewConversationItem,
    SchemaConfig,
    StoredResponse,
    TableConfig,
    create_storage,
)
from datacon.backends._sql import render
from datacon.backends._sql.migrations import LATEST
from datacon.backends.oracle import OracleConnector, dialect_for, oracle_schema
from datacon.errors import ConflictError, MigrationRequiredError, PoolTimeoutError
from tests.servers.oracle import OracleBackend

pytestmark = pytest.mark.oracle


def run(backend: OracleBackend, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """One statement on a plain connection, committed; its rows (if it is a query)."""
    with backend.connect() as conn, conn.cursor() as cursor:
        cursor.execute(sql, params or {})
        rows: list[tuple[Any, ...]] = cursor.fetchall() if cursor.description else []
        conn.commit()
        return rows


@pytest.fixture
def schema(oracle_backend: OracleBackend) -> Iterator[SchemaConfig]:
    """A schema whose four tables have names no other test uses; dropped afterwards."""
    prefix = f"DCT{secrets.token_hex(4).upper()}"
    config = SchemaConfig(
        auto_migrate=False,
        conversations=TableConfig(f"{prefix}_C"),
        responses=TableConfig(f"{prefix}_R"),
        conversation_items=TableConfig(f"{prefix}_I"),
        conversation_item_links=TableConfig(f"{prefix}_L"),
    )
    yield config
    for table in config.tables().values():
        run(
            oracle_backend,
            f"BEGIN EXECUTE IMMEDIATE 'DROP TABLE \"{table.table}\" PURGE'; "
            "EXCEPTION WHEN OTHERS THEN IF SQLCODE != -942 THEN RAISE; END IF; END;",
        )


def versions(backend: OracleBackend) -> list[int]:
    return [int(row[0]) for row in run(backend, 'SELECT version FROM "_schema_versions" ORDER BY version')]


@pytest.mark.parametrize("owned", [False, True])
def test_fresh_schema_is_created_at_the_latest_version(
    oracle_backend: OracleBackend, schema: SchemaConfig, owned: bool
) -> None:
    if owned:  # the connecting user as owner: tables found through all_tables
        schema = attrs.evolve(schema, owner=oracle_backend.user)
    with create_storage(oracle_backend.config(schema)) as storage:
        conv = storage.conversations.create_conversation(NewConversation(metadata={"k": [1, None]}))
        assert storage.conversations.get_conversation(conv.id) == conv
    assert {1, 2, 3} <= set(versions(oracle_backend))
    uppercased = oracle_schema(schema)
    for table in uppercased.tables().values():
        assert run(oracle_backend, "SELECT 1 FROM user_tables WHERE table_name = :t", {"t": table.table})
    links = uppercased.conversation_item_links.table
    assert run(oracle_backend, "SELECT 1 FROM user_indexes WHERE index_name = :n", {"n": f"{links}_CONV_IDX"})
    # A second start finds everything in place.
    with create_storage(oracle_backend.config(schema)) as storage:
        assert storage.conversations.get_conversation(conv.id) == conv


def test_old_schema_needs_migration_then_auto_migrate_applies_it(
    oracle_backend: OracleBackend, schema: SchemaConfig
) -> None:
    responses = oracle_schema(schema).responses.table
    run(
        oracle_backend,
        f'CREATE TABLE "{responses}" (ID VARCHAR2(64) PRIMARY KEY, CONVERSATION_ID VARCHAR2(64), '
        "PREVIOUS_RESPONSE_ID VARCHAR2(64), INPUT CLOB, CREATED_AT TIMESTAMP WITH TIME ZONE, MODEL VARCHAR2(128), "
        "RAW_RESPONSE CLOB, OUTPUT CLOB, METADATA CLOB, INSTRUCTIONS CLOB, TOOL_CALLS CLOB, USER_ID VARCHAR2(128))",
    )
    run(oracle_backend, f"INSERT INTO \"{responses}\" (ID, INPUT, USER_ID) VALUES ('old', '[1]', 'u')")
    uppercased = oracle_schema(schema)
    dialect = dialect_for(uppercased)
    run(oracle_backend, render(uppercased, dialect).create_versions)  # if this is the first run
    saved = run(oracle_backend, 'SELECT version, description FROM "_schema_versions"')
    run(oracle_backend, 'DELETE FROM "_schema_versions"')
    try:
        with pytest.raises(MigrationRequiredError) as caught:
            create_storage(oracle_backend.config(schema))
        expected = [s for m in (1, 2, 3) for s in _migration(uppercased, dialect, m)]
        assert list(caught.value.statements) == expected
        with create_storage(oracle_backend.config(attrs.evolve(schema, auto_migrate=True))) as storage:
            old = storage.responses.get_response("old")
            assert old is not None
            assert old.input == [1]
        columns = {
            row[0]
            for row in run(
                oracle_backend, "SELECT column_name FROM user_tab_columns WHERE table_name = :t", {"t": responses}
            )
        }
        assert "SAFETY_IDENTIFIER" in columns
        assert not columns & {"OUTPUT", "METADATA", "INSTRUCTIONS", "TOOL_CALLS", "USER_ID"}
        assert versions(oracle_backend) == list(range(1, LATEST + 1))
    finally:
        run(oracle_backend, 'DELETE FROM "_schema_versions"')
        for version, description in saved:
            run(
                oracle_backend,
                'INSERT INTO "_schema_versions" (version, description) VALUES (:v, :d)',
                {"v": version, "d": description},
            )


def _migration(schema: SchemaConfig, dialect: Any, version: int) -> list[str]:
    from datacon.backends._sql import MIGRATIONS
    from datacon.backends._sql.migrations import version_insert_sql

    migration = MIGRATIONS[version - 1]
    return [*migration.up(schema, dialect, None), version_insert_sql(dialect, migration)]


def test_timestamps_keep_microseconds_whatever_the_zone(oracle_backend: OracleBackend, schema: SchemaConfig) -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    with create_storage(oracle_backend.config(schema)) as storage:
        storage.responses.store_response(StoredResponse(id="r1", created_at=created, safety_identifier="s"))
        got = storage.responses.get_response("r1")
        assert got is not None
        assert got.created_at == created
        assert got.created_at.tzinfo is UTC
        conv = storage.conversations.create_conversation(NewConversation())
        base = datetime(2026, 1, 2, tzinfo=UTC)
        for n in range(3):
            storage.items.create_item(NewConversationItem("message", n, id=f"msg_{n}"))
        # One microsecond apart, and linked out of order: the list follows added_at.
        storage.items.link_items(conv.id, [("msg_2", base + timedelta(microseconds=2)), ("msg_0", base)])
        storage.items.link_item(conv.id, "msg_1", base + timedelta(microseconds=1))
        page = storage.items.list_items(conv.id, ListParams(limit=10))
        assert [item.id for item in page] == ["msg_0", "msg_1", "msg_2"]


def test_large_json_and_empty_item_type_round_trip(oracle_backend: OracleBackend, schema: SchemaConfig) -> None:
    content = {"text": "é" * 70_000}  # well over 32 KB of UTF-8: a CLOB, not a VARCHAR2
    with create_storage(oracle_backend.config(schema)) as storage:
        storage.items.create_item(NewConversationItem("", content, id="itm_big", role=""))
        got = storage.items.get_item("itm_big")
        assert got is not None
        assert got.content == content
        assert got.item_type == ""
        assert got.role is None  # Oracle stores '' as NULL


def test_link_items_beyond_one_insert_all_is_all_or_nothing(
    oracle_backend: OracleBackend, schema: SchemaConfig
) -> None:
    at = datetime(2026, 1, 2, tzinfo=UTC)
    with create_storage(oracle_backend.config(schema)) as storage:
        conv = storage.conversations.create_conversation(NewConversation())
        ids = [f"msg_{n:04d}" for n in range(700)]  # more than one INSERT ALL (333 rows)
        for item_id in ids:
            storage.items.create_item(NewConversationItem("message", None, id=item_id))
        storage.items.link_items(conv.id, [(i, at) for i in ids[:600]])
        with pytest.raises(ConflictError):
            storage.items.link_items(conv.id, [(i, at) for i in [*ids[600:], ids[0]]])
        assert not storage.items.is_item_linked(conv.id, ids[650])
        assert len(storage.items.list_items(conv.id, ListParams(limit=1000))) == 600


def test_pool_wait_times_out(oracle_backend: OracleBackend) -> None:
    connector = OracleConnector(oracle_backend.oracle_config(pool_min=0, pool_max=1, pool_timeout_secs=1))
    try:
        with connector.session() as session:
            assert session.fetchone("SELECT 1 FROM dual") == (1,)
            assert connector.stats()["in_use"] == 1
            with pytest.raises(PoolTimeoutError), connector.session():
                pass
    finally:
        connector.close()
