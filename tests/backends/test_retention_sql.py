"""Retention on the SQL backends (SPEC 7.7): migration v5's indexes, the plans that use them
(PostgreSQL ``EXPLAIN``: no sequential scan), and Oracle's rendering (sqlglot)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlglot

from datacon import (
    PostgresConfig,
    SchemaConfig,
    SqliteConfig,
    Storage,
    StorageFactoryConfig,
    StoredResponse,
    create_storage,
)
from datacon.backends._sql import MIGRATIONS, render
from datacon.backends._sql.migrations import version_insert_sql
from datacon.backends._sql.render import RetentionSql
from datacon.backends.oracle import oracle_schema
from datacon.backends.oracle.dialect import dialect_for
from datacon.backends.sqlite.dialect import SqliteDialect
from datacon.errors import MigrationRequiredError
from tests.backends.test_oracle_sql import VARIANTS, _check_plsql, _parse_exactly
from tests.servers.postgres import PostgresBackend
from tests.support import RENAMED_SCHEMA, sql_store

V5 = MIGRATIONS[4]
RETENTION_INDEXES = (
    "conversation_items_created_idx",
    "responses_created_idx",
    "conversation_item_links_item_idx",
    "responses_conversation_idx",
)
# PostgreSQL's links key leads with item_id (v7), which serves the reads of the links' item index.
PG_RETENTION_INDEXES = tuple(name for name in RETENTION_INDEXES if name != "conversation_item_links_item_idx")


def _open(path: Path, **schema: Any) -> Storage:
    config = SqliteConfig(path=str(path), schema=SchemaConfig(**schema))
    return create_storage(StorageFactoryConfig(backend="sqlite", sqlite=config))


def test_v5_is_the_retention_indexes() -> None:
    assert V5.version == 5
    statements = V5.up(SchemaConfig(), SqliteDialect(), None)
    assert statements == [
        "CREATE INDEX IF NOT EXISTS `conversation_items_created_idx` ON `conversation_items` (`created_at`, `id`)",
        "CREATE INDEX IF NOT EXISTS `responses_created_idx` ON `responses` (`created_at`, `id`)",
        "CREATE INDEX IF NOT EXISTS `conversation_item_links_item_idx` ON `conversation_item_links` (`item_id`)",
        "CREATE INDEX IF NOT EXISTS `responses_conversation_idx` ON `responses` (`conversation_id`)",
    ]
    # A fresh database gets them at start-up with the others (datacon migrate sql prints them).
    assert set(statements) <= set(render(SchemaConfig(), SqliteDialect()).create_indexes)


def _to_v4(path: Path) -> None:
    """A database as datacon left it at v4: no retention indexes, no packed items (v6),
    version 4 recorded."""
    conn = sqlite3.connect(path)
    try:
        for name in RETENTION_INDEXES:
            conn.execute(f"DROP INDEX `{name}`")
        conn.execute("ALTER TABLE conversation_items DROP COLUMN packed")
        conn.execute("DELETE FROM _schema_versions WHERE version >= 5")
        conn.commit()
    finally:
        conn.close()


def _indexes(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()


def test_a_v4_sqlite_database_migrates_to_v5(tmp_path: Path) -> None:
    db = tmp_path / "v4.db"
    with _open(db) as storage:
        storage.responses.store_response(StoredResponse(id="resp_kept"))
    _to_v4(db)
    assert not set(RETENTION_INDEXES) & _indexes(db)
    with pytest.raises(MigrationRequiredError) as info:
        _open(db)
    assert "current version: 4, latest version: 7" in str(info.value)
    v6, v7 = MIGRATIONS[5:7]
    assert list(info.value.statements) == [
        *V5.up(SchemaConfig(), SqliteDialect(), None),
        version_insert_sql(SqliteDialect(), V5),
        *v6.up(SchemaConfig(), SqliteDialect(), frozenset({"id"})),
        version_insert_sql(SqliteDialect(), v6),
        version_insert_sql(SqliteDialect(), v7),  # v7 changes nothing on SQLite
    ]
    with _open(db, auto_migrate=True) as storage:
        assert sql_store(storage).applied_migrations == [5, 6, 7]
        assert storage.responses.get_response("resp_kept") is not None
        assert storage.prune(datetime(2099, 1, 1, tzinfo=UTC)).responses == 1
    assert set(RETENTION_INDEXES) <= _indexes(db)


@pytest.fixture
def pg_url(postgres_backend: PostgresBackend) -> Iterator[str]:
    url = postgres_backend.create_database()
    try:
        yield url
    finally:
        postgres_backend.drop_database(url)


def _open_pg(url: str, **schema: Any) -> Storage:
    config = PostgresConfig(db_url=url, schema=SchemaConfig(**schema))
    return create_storage(StorageFactoryConfig(backend="postgres", postgres=config))


def test_a_v4_postgres_database_migrates_to_v5(postgres_backend: PostgresBackend, pg_url: str) -> None:
    with _open_pg(pg_url):
        pass
    with postgres_backend.connect(pg_url) as conn:
        for name in PG_RETENTION_INDEXES:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("DELETE FROM _schema_versions WHERE version >= 5")
    with pytest.raises(MigrationRequiredError) as info:
        _open_pg(pg_url)
    assert "current version: 4, latest version: 7" in str(info.value)
    with _open_pg(pg_url, auto_migrate=True) as storage:
        assert sql_store(storage).applied_migrations == [5, 6, 7]  # v6 changes nothing on PostgreSQL
    with postgres_backend.connect(pg_url) as conn:
        names = {row[0] for row in conn.execute("SELECT indexname FROM pg_indexes").fetchall()}
    assert set(PG_RETENTION_INDEXES) <= names
    assert "conversation_item_links_item_idx" not in names


ROWS = 100_000


def _plans(conn: Any, sql: RetentionSql, ids: list[str]) -> dict[str, str]:
    """EXPLAIN of every retention statement, with realistic parameters (a batch of 1000 ids)."""
    n = len(ids)
    k = {f"k{i}": v for i, v in enumerate(ids)}
    j = {f"j{i}": v for i, v in enumerate(ids)}
    cutoff = datetime(2099, 1, 1, tzinfo=UTC)
    after = {"at": datetime(2000, 1, 1, tzinfo=UTC), "after": "x"}
    statements: dict[str, tuple[str | None, dict[str, Any]]] = {
        "old responses": (sql.old("response", False), {"cutoff": cutoff, "limit": 1000}),
        "old items after": (sql.old("item", True), {"cutoff": cutoff, "limit": 1000, **after}),
        "old conversations after": (sql.old("conversation", True), {"cutoff": cutoff, "limit": 1000, **after}),
        "existing conversations": (sql.existing(n), k),
        "links of conversations": (sql.links_of("conversation_id", n), k),
        "links of items": (sql.links_of("item_id", n), k),
        "identifier page": (sql.identifier_page(True), {"sid": "u7", "after": "r", "limit": 1000}),
        "named by others": (sql.named_by_others(n), {**k, "sid": "u7"}),
        "delete responses": (sql.delete("response", n), k),
        "delete conversations": (sql.delete("conversation", n), k),
        "unlink": (sql.unlink(n), k),
        "delete unlinked items": (sql.delete_unlinked(n), {**k, **j}),
    }
    plans = {}
    for name, (statement, params) in statements.items():
        assert statement is not None, name
        rows = conn.execute(f"EXPLAIN {statement}", params).fetchall()
        plans[name] = "\n".join(str(row[0]) for row in rows)
    return plans


def test_postgres_retention_reads_and_deletes_use_indexes_never_a_sequential_scan(
    postgres_backend: PostgresBackend, pg_url: str
) -> None:
    """SPEC 7.7 / issue 20: index-backed on SQL. 100,000 rows per table, real statistics, no
    scan switched off: every statement of a batch of 1,000 ids is planned on an index."""
    with _open_pg(pg_url) as storage:
        sql = sql_store(storage).sql.retention
        assert sql is not None
        with postgres_backend.connect(pg_url) as conn:
            conn.execute(
                "INSERT INTO conversations (id, created_at, metadata) SELECT 'conv_' || g, "
                "now() - g * interval '1 second', NULL FROM generate_series(1, %(n)s) g",
                {"n": ROWS},
            )
            conn.execute(
                "INSERT INTO conversation_items (id, item_type, content, created_at) SELECT 'msg_' || g, "
                "'message', '{}', now() - g * interval '1 second' FROM generate_series(1, %(n)s) g",
                {"n": ROWS},
            )
            conn.execute(
                "INSERT INTO conversation_item_links (conversation_id, item_id, added_at) SELECT 'conv_' || g, "
                "'msg_' || g, now() FROM generate_series(1, %(n)s) g",
                {"n": ROWS},
            )
            conn.execute(
                "INSERT INTO responses (id, conversation_id, input, created_at, safety_identifier) SELECT "
                "'resp_' || g, 'conv_' || g, '[]', now() - g * interval '1 second', 'u' || mod(g, 500) "
                "FROM generate_series(1, %(n)s) g",
                {"n": ROWS},
            )
            conn.execute("ANALYZE")
            # SSD storage's usual setting (the default 4.0 models spinning disks, under which
            # 1,000 random probes into a table this small cost more than reading all of it;
            # from about a million rows the index wins under either).
            conn.execute("SET random_page_cost = 1.1")
            plans = _plans(conn, sql, [f"conv_{n}" if n % 2 else f"msg_{n}" for n in range(1, 1001)])
    for name, plan in plans.items():
        assert "Seq Scan" not in plan, f"{name}:\n{plan}"
        assert "Index" in plan, f"{name}:\n{plan}"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_oracle_retention_statements_parse_as_oracle(variant: str) -> None:
    schema = oracle_schema(VARIANTS[variant])
    dialect = dialect_for(schema)
    sql = render(schema, dialect).retention
    assert sql is not None
    statements = [
        sql.old("conversation", False),
        sql.old("conversation", True),
        sql.old("item", True),
        sql.old("response", True),
        sql.existing(3),
        sql.links_of("conversation_id", 2),
        sql.links_of("item_id", 2),
        sql.identifier_page(False),
        sql.identifier_page(True),
        sql.named_by_others(2),
        sql.delete("conversation", 2),
        sql.delete("response", 2),
        sql.unlink(2),
        sql.delete_unlinked(2),
    ]
    for statement in statements:
        if statement is None:  # a skipped column: that read finds nothing
            continue
        if " NOT IN " in statement:
            # sqlglot writes ``x NOT IN (...)`` as ``NOT x IN (...)``: the same predicate.
            tree = sqlglot.parse_one(statement, read="oracle", error_level=sqlglot.ErrorLevel.RAISE)
            written = tree.sql(dialect="oracle").replace('NOT "ID" IN', '"ID" NOT IN')
            assert "".join(written.split()) == "".join(statement.split()), statement
        else:
            _parse_exactly(statement)
    for index in render(schema, dialect).create_indexes:
        _check_plsql(index)


def test_oracle_retention_statements_are_as_written() -> None:
    schema = oracle_schema(RENAMED_SCHEMA)
    sql = render(schema, dialect_for(schema)).retention
    assert sql is not None
    # Oracle compares no row values with <, >: the keyset is written out; FETCH FIRST limits.
    assert sql.old("response", True) == (
        'SELECT SYS_EXTRACT_UTC("CREATED_AT"), "ID" FROM "DC_RESPS" WHERE "CREATED_AT" < '
        "FROM_TZ(:cutoff, '+00:00') AND (\"CREATED_AT\" > FROM_TZ(:at, '+00:00') OR "
        '("CREATED_AT" = FROM_TZ(:at, \'+00:00\') AND "ID" > :after)) '
        'ORDER BY "CREATED_AT", "ID" FETCH NEXT :limit ROWS ONLY'
    )
    assert sql.delete_unlinked(2) == (
        'DELETE FROM "DC_ITEMS" WHERE "ID" IN (:k0, :k1) AND "ID" NOT IN '
        '(SELECT "ITEM_ID" FROM "DC_LINKS" WHERE "ITEM_ID" IN (:j0, :j1))'
    )
    assert sql.named_by_others(1) == (
        'SELECT DISTINCT "CONVERSATION_ID" FROM "DC_RESPS" WHERE "CONVERSATION_ID" IN (:k0) AND "USER_IDENT" <> :sid'
    )
