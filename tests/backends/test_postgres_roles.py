"""Least privilege on PostgreSQL: ``create_tables: false``, read-only schema status, ``migrate sql``.

The conformance suite also runs as the DML-only role (``postgres-dml-only-renamed`` in
``tests/conftest.py``); these tests check what it cannot: that the role really cannot create
anything, what happens when the tables are missing or old, and that ``migrate plan``/``status``
and ``doctor`` write nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from click.testing import CliRunner, Result

from datacon import NewConversation, PostgresConfig, SchemaConfig, StorageFactoryConfig, create_storage
from datacon.backends._sql import LATEST, MIGRATIONS, render
from datacon.backends._sql.migrations import version_insert_sql
from datacon.backends.postgres import PostgresDialect
from datacon.cli import cli
from datacon.errors import BackendError, MigrationRequiredError
from tests.servers.postgres import DML_PASSWORD, DML_ROLE, DmlOnlyBackend, PostgresBackend

pytestmark = pytest.mark.postgres

NO_DDL = SchemaConfig(create_tables=False, auto_migrate=True)  # auto_migrate does not matter then
LEGACY_RESPONSES = (
    "CREATE TABLE responses (id VARCHAR(64) PRIMARY KEY, conversation_id VARCHAR(64), "
    "previous_response_id VARCHAR(64), input JSON, created_at TIMESTAMPTZ, model VARCHAR(128), raw_response JSON, "
    "user_id VARCHAR(128), output JSON, metadata JSON, instructions TEXT, tool_calls JSON)"
)


def open_pg(url: str, schema: SchemaConfig | None = None) -> Any:
    return create_storage(StorageFactoryConfig(backend="postgres", postgres=PostgresConfig(url, schema=schema)))


def tables(backend: PostgresBackend, url: str) -> set[str]:
    with backend.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def empty_db(postgres_backend: PostgresBackend) -> Iterator[str]:
    url = postgres_backend.create_database()
    try:
        yield url
    finally:
        postgres_backend.drop_database(url)


def test_the_dml_role_cannot_create_anything(postgres_dml_backend: DmlOnlyBackend) -> None:
    with (
        psycopg.connect(postgres_dml_backend.url, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("CREATE TABLE dc_not_allowed (a INT)")


def test_the_dml_role_needs_create_tables_off(postgres_dml_backend: DmlOnlyBackend) -> None:
    # As before this change (and upstream): start-up's CREATE TABLE IF NOT EXISTS is refused.
    with pytest.raises(BackendError, match="permission denied"):
        open_pg(postgres_dml_backend.url, SchemaConfig())
    with open_pg(postgres_dml_backend.url, NO_DDL) as storage:
        conversation = storage.conversations.create_conversation(NewConversation(metadata={"role": "dml"}))
        assert storage.conversations.get_conversation(conversation.id) == conversation
        assert storage.conversations.delete_conversation(conversation.id)


def test_missing_tables_are_reported_with_the_whole_schema(postgres_backend: PostgresBackend, empty_db: str) -> None:
    with pytest.raises(MigrationRequiredError) as caught:
        open_pg(empty_db, NO_DDL)
    script = render(SchemaConfig(), PostgresDialect())
    assert caught.value.statements[0] == script.create_versions
    assert list(caught.value.statements[1:5]) == list(script.create_tables)
    assert "create_tables: false" in str(caught.value)
    assert tables(postgres_backend, empty_db) == set()  # nothing was written


def test_an_old_schema_is_reported_whatever_auto_migrate_says(postgres_backend: PostgresBackend, empty_db: str) -> None:
    with postgres_backend.connect(empty_db) as conn:
        for ddl in render(SchemaConfig(), PostgresDialect()).create_tables[:3]:
            conn.execute(ddl)
        conn.execute(LEGACY_RESPONSES)
    with pytest.raises(MigrationRequiredError) as caught:
        open_pg(empty_db, NO_DDL)
    statements = caught.value.statements
    assert statements[0] == render(SchemaConfig(), PostgresDialect()).create_versions  # no _schema_versions yet
    assert version_insert_sql(PostgresDialect(), MIGRATIONS[-1]) in statements
    assert "_schema_versions" not in tables(postgres_backend, empty_db)
    with postgres_backend.connect(empty_db) as conn:
        columns = {
            r[0]
            for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name='responses'")
        }
    assert "user_id" in columns  # untouched


def test_status_plan_and_doctor_write_nothing_then_apply_creates(
    postgres_backend: PostgresBackend, empty_db: str
) -> None:
    status = run("migrate", "status", "--json", "--url", empty_db)
    assert status.exit_code == 1, status.output  # pending: a deployment script can test it
    data = json.loads(status.stdout)
    assert (data["current"], data["latest"], data["up_to_date"]) == (0, LATEST, False)
    plan = run("migrate", "plan", "--url", empty_db)
    assert plan.exit_code == 0
    assert plan.stdout == run("migrate", "sql", "--url", empty_db).stdout  # an empty database: the whole schema
    doctor = run("doctor", "--url", empty_db)
    assert "FAIL  schema" in doctor.stdout
    assert f"version 0, latest {LATEST}" in doctor.stdout
    assert tables(postgres_backend, empty_db) == set()
    applied = run("migrate", "apply", "--url", empty_db)
    assert applied.exit_code == 0, applied.output
    assert f"up to date (version {LATEST})" in applied.stdout
    assert tables(postgres_backend, empty_db) >= {"_schema_versions", "conversations", "responses"}
    with open_pg(empty_db, NO_DDL) as storage:
        assert storage.conversations.get_conversation("conv_absent") is None


def test_migrate_sql_needs_no_server() -> None:
    nowhere = "postgresql://app:secret@db.invalid:1/gateway"
    result = run("migrate", "sql", "--url", nowhere)
    assert result.exit_code == 0, result.output
    script = render(SchemaConfig(), PostgresDialect())
    lines = result.stdout.splitlines()
    assert lines[0] == script.create_versions + ";"
    assert [line for line in lines if line.startswith("INSERT INTO")] == [
        version_insert_sql(PostgresDialect(), m) + ";" for m in MIGRATIONS
    ]
    assert lines[-len(script.create_indexes) :] == [index + ";" for index in script.create_indexes]
    assert "secret" not in result.output


def test_the_dml_url_is_the_role_the_conformance_run_uses(postgres_dml_backend: DmlOnlyBackend) -> None:
    parts = urlsplit(postgres_dml_backend.url)
    assert (parts.username, parts.password) == (DML_ROLE, DML_PASSWORD)
    config = postgres_dml_backend.config()
    assert config.postgres is not None
    assert config.postgres.schema is not None
    assert config.postgres.schema.create_tables is False
