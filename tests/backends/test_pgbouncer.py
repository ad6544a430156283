"""PostgreSQL behind a real PgBouncer in transaction pooling mode (``transaction_pooling=True``).

The conformance suite runs through the same PgBouncer (``postgres-pgbouncer`` in
``tests/conftest.py``); these tests check what it cannot see: that the pooler really shares
server connections, why the setting is needed, and that migrations hold no lock afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from datacon import PostgresConfig, SchemaConfig, StorageFactoryConfig, create_storage
from datacon.backends._sql import render
from datacon.backends._sql.migrations import LATEST
from datacon.backends.postgres import PostgresDialect
from datacon.errors import BackendError
from tests.servers._pgbouncer import PgBouncer
from tests.servers.postgres import PostgresBackend
from tests.support import sql_store

pytestmark = pytest.mark.postgres

LEGACY_RESPONSES = (
    "CREATE TABLE responses (id VARCHAR(64) PRIMARY KEY, conversation_id VARCHAR(64), "
    "previous_response_id VARCHAR(64), input JSON, created_at TIMESTAMPTZ, model VARCHAR(128), raw_response JSON, "
    "user_id VARCHAR(128), output JSON, metadata JSON, instructions TEXT, tool_calls JSON)"
)


def bouncer_url(server: PgBouncer, database: str) -> str:
    user, password = next(iter(server.users.items()))
    return server.url(user, password, database)


def open_via(url: str, schema: SchemaConfig | None = None, **options: Any) -> Any:
    config = PostgresConfig(db_url=url, schema=schema, pool_max=2, **options)
    return create_storage(StorageFactoryConfig(backend="postgres", postgres=config))


@pytest.fixture
def single_server(pgbouncer_server: PgBouncer, postgres_backend: PostgresBackend) -> Iterator[str]:
    """PgBouncer's ``tx1`` database: every client shares one server connection. Its prepared
    statements are discarded before and after (the test leaves some there on purpose)."""
    url = bouncer_url(pgbouncer_server, "tx1")

    def discard() -> None:
        with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
            conn.execute("DISCARD ALL")

    discard()
    postgres_backend.wipe()
    try:
        yield url
    finally:
        discard()
        postgres_backend.wipe()


def test_the_pooler_shares_one_server_connection_between_clients(single_server: str) -> None:
    with (
        psycopg.connect(single_server, autocommit=True) as first,
        psycopg.connect(single_server, autocommit=True) as second,
    ):
        pids = {conn.execute("SELECT pg_backend_pid()").fetchone()[0] for conn in (first, second, first)}  # type: ignore[index]
    assert len(pids) == 1


def _repeat_reads(url: str, **options: Any) -> None:
    with open_via(url, **options) as storage:
        for _ in range(10):  # past psycopg's prepare_threshold (5): the read gets prepared
            assert storage.conversations.get_conversation("conv_absent") is None


def test_transaction_pooling_is_what_makes_the_pooler_work(single_server: str) -> None:
    # Two storages in turn on one shared server connection: the second one's statements meet the
    # first one's prepared statements, unless transaction_pooling turns preparing off.
    _repeat_reads(single_server, transaction_pooling=True)
    _repeat_reads(single_server, transaction_pooling=True)
    _repeat_reads(single_server)
    with pytest.raises(BackendError, match="prepared statement"):
        _repeat_reads(single_server)


@pytest.fixture
def legacy_db(postgres_backend: PostgresBackend) -> Iterator[str]:
    """A new database whose tables an older release left at v0 (pending migrations)."""
    url = postgres_backend.create_database()
    try:
        with postgres_backend.connect(url) as conn:
            for ddl in render(SchemaConfig(), PostgresDialect()).create_tables[:3]:
                conn.execute(ddl)
            conn.execute(LEGACY_RESPONSES)
        yield url
    finally:
        postgres_backend.drop_database(url)


def test_migrations_through_the_pooler_hold_no_lock_afterwards(
    pgbouncer_server: PgBouncer, postgres_backend: PostgresBackend, legacy_db: str
) -> None:
    database = urlsplit(legacy_db).path.lstrip("/")
    url = bouncer_url(pgbouncer_server, database)
    with open_via(url, SchemaConfig(auto_migrate=True), transaction_pooling=True) as storage:
        assert sql_store(storage).applied_migrations == list(range(1, LATEST + 1))
        with postgres_backend.connect(legacy_db) as conn:
            locks = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()
            versions = [row[0] for row in conn.execute("SELECT version FROM _schema_versions ORDER BY version")]
    assert locks == (0,)
    assert versions == list(range(1, LATEST + 1))
