"""Idempotency keys (SPEC 7.3) as each backend stores them: the SQL table and its sweep, the
schema checks, Redis's key layout and TTL, the none backend, the config and the fingerprint."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from datacon import (
    NewConversation,
    NewConversationItem,
    SchemaConfig,
    SqliteConfig,
    Storage,
    StorageFactoryConfig,
    StoredResponse,
    create_storage,
)
from datacon.backends._sql import render, schema_script
from datacon.backends._sql.store import SWEEP_EVERY
from datacon.backends.idempotency import Idempotency, fingerprint, resolve
from datacon.backends.postgres.dialect import PostgresDialect
from datacon.backends.sqlite.dialect import SqliteDialect
from datacon.errors import ConfigError, ConflictError, InvalidInputError, MigrationRequiredError
from tests.support import BackendUnderTest, sql_store


@pytest.fixture(
    params=[pytest.param("sqlite", marks=pytest.mark.sqlite), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def sql_backend(request: pytest.FixtureRequest) -> Iterator[BackendUnderTest]:
    backend: BackendUnderTest = request.getfixturevalue(f"{request.param}_backend")
    backend.wipe()
    yield backend
    backend.wipe()


def _rows(storage: Storage) -> list[tuple[Any, ...]]:
    store = sql_store(storage)
    with store.connector.session() as session:
        return session.fetchall(
            f"SELECT {store.dialect.ident('scope')} FROM {store.dialect.table('_idempotency_keys')}"
        )


def test_sql_keys_are_rows_scoped_by_table_and_operation(sql_backend: BackendUnderTest) -> None:
    with create_storage(sql_backend.config()) as storage:
        storage.conversations.create_conversation(NewConversation(), idempotency_key="k")
        storage.items.append_items("conv_x", [NewConversationItem("message", "hi")], idempotency_key="k")
        assert sorted(row[0] for row in _rows(storage)) == [
            "conversation_items/append_items:conv_x",
            "conversations/create_conversation",
        ]


def test_sql_sweep_deletes_expired_keys_in_bounded_batches(sql_backend: BackendUnderTest) -> None:
    config = attrs.evolve(sql_backend.config(), idempotency_ttl_secs=1)
    with create_storage(config) as storage:
        store = sql_store(storage)
        for n in range(5):
            storage.conversations.create_conversation(NewConversation(), idempotency_key=f"old-{n}")
        assert store.sweep() == 0  # nothing expired yet
        time.sleep(1.2)
        # The SWEEP_EVERY-th keyed write of the store sweeps after it commits.
        for n in range(SWEEP_EVERY - 5):
            storage.conversations.create_conversation(NewConversation(), idempotency_key=f"new-{n}")
        assert len(_rows(storage)) == SWEEP_EVERY - 5
        time.sleep(1.2)
        assert store.sweep() == min(SWEEP_EVERY - 5, 100)


def test_a_sweep_that_fails_is_logged_not_raised(
    sql_backend: BackendUnderTest, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with create_storage(sql_backend.config()) as storage:
        store = sql_store(storage)
        monkeypatch.setattr(store, "sql", attrs.evolve(store.sql, idem_sweep="DELETE FROM no_such_table_here"))
        assert store.sweep() == 0
    assert "could not delete expired idempotency keys" in caplog.text


def test_migrate_sql_lists_the_keys_table_and_create_tables_off_requires_it(tmp_path: Path) -> None:
    script = schema_script(render(SchemaConfig(), SqliteDialect()))
    assert any("CREATE TABLE IF NOT EXISTS `_idempotency_keys`" in s for s in script)
    assert any("`_idempotency_keys_expires_idx`" in s for s in script)
    pg = "\n".join(schema_script(render(SchemaConfig(), PostgresDialect())))
    assert 'CREATE TABLE IF NOT EXISTS "_idempotency_keys"' in pg
    path = tmp_path / "db.sqlite"
    with create_storage(StorageFactoryConfig(backend="sqlite", sqlite=SqliteConfig(str(path)))):
        pass
    with sqlite3.connect(path) as conn:  # a database from before the keys table
        conn.execute("DROP TABLE _idempotency_keys")
    conn.close()
    locked = SqliteConfig(str(path), schema=SchemaConfig(create_tables=False))
    with pytest.raises(MigrationRequiredError) as caught:
        create_storage(StorageFactoryConfig(backend="sqlite", sqlite=locked))
    assert [s for s in caught.value.statements if "_idempotency_keys" in s] == list(
        render(SchemaConfig(), SqliteDialect()).create_idempotency
    )
    # The usual opening creates it, whatever the recorded version (no migration needed).
    with create_storage(StorageFactoryConfig(backend="sqlite", sqlite=SqliteConfig(str(path)))) as storage:
        conv = storage.conversations.create_conversation(NewConversation(), idempotency_key="k")
        assert storage.conversations.create_conversation(NewConversation(), idempotency_key="k") == conv
    with create_storage(StorageFactoryConfig(backend="sqlite", sqlite=locked)):
        pass  # complete now


@pytest.mark.redis
def test_redis_keys_are_escaped_strings_with_the_ttl(redis_backend: Any) -> None:
    redis_backend.wipe()
    config = attrs.evolve(redis_backend.config(schema=SchemaConfig(owner="app")), idempotency_ttl_secs=600)
    try:
        with create_storage(config) as storage, redis_backend.client() as client:
            storage.conversations.create_conversation(NewConversation(), idempotency_key="a:b{c}")
            storage.items.append_items("conv:1", [NewConversationItem("message", "hi")], idempotency_key="k")
            response = StoredResponse(model="m", safety_identifier="u")
            storage.responses.store_response(response, idempotency_key="k")
            keys = sorted(str(k) for k in client.keys("app:idempotency:*"))
            assert keys == [
                "app:idempotency:append_items:%conv%3A1:k",
                "app:idempotency:create_conversation:%a%3Ab%7Bc%7D",
                "app:idempotency:store_response:k",
            ]
            for key in keys:
                assert 590_000 < int(client.pttl(key)) <= 600_000
                assert len(str(client.get(key))) > 64  # fingerprint, then the result
            assert storage.responses.store_response(response, idempotency_key="k") == response.id
    finally:
        redis_backend.wipe()


def test_none_checks_keys_but_keeps_none() -> None:
    with create_storage("none://") as storage:
        with pytest.raises(InvalidInputError, match="idempotency_key"):
            storage.conversations.create_conversation(NewConversation(), idempotency_key="")
        one = storage.conversations.create_conversation(NewConversation(), idempotency_key="k")
        two = storage.conversations.create_conversation(NewConversation(), idempotency_key="k")
        assert one.id != two.id  # nothing is stored, so retries are not deduplicated


def test_idempotency_ttl_secs_is_validated_and_read_from_files() -> None:
    assert StorageFactoryConfig().idempotency_ttl_secs == 86_400
    bad: Any
    for bad in (0, -1, 1.5, True, "60", 10 * 365 * 86_400 + 1):
        with pytest.raises(ConfigError, match="idempotency_ttl_secs"):
            StorageFactoryConfig(idempotency_ttl_secs=bad)
    assert StorageFactoryConfig.from_mapping({"idempotency_ttl_secs": 60}).idempotency_ttl_secs == 60
    assert StorageFactoryConfig.from_mapping({"idempotency_ttl_secs": "3600"}).idempotency_ttl_secs == 3600
    with pytest.raises(ConfigError, match="idempotency_ttl_secs"):
        StorageFactoryConfig.from_mapping({"idempotency_ttl_secs": "a day"})


def test_the_fingerprint_is_of_the_arguments_as_given() -> None:
    new = NewConversation(metadata={"a": 1, "b": [1, 2]})
    same = NewConversation(metadata={"b": [1, 2], "a": 1})
    assert fingerprint("create_conversation", {"new": new}) == fingerprint("create_conversation", {"new": same})
    assert fingerprint("create_conversation", {"new": new}) != fingerprint("create_item", {"new": new})
    assert fingerprint("create_conversation", {"new": new}) != fingerprint(
        "create_conversation", {"new": NewConversation(metadata={"a": 2})}
    )
    with pytest.raises(InvalidInputError):
        fingerprint("create_conversation", {"new": NewConversation(metadata={"x": float("nan")})})


def test_a_direct_backend_caller_may_pass_the_plain_key() -> None:
    idem = resolve("k", "create_item", lambda: {"new": 1})
    assert isinstance(idem, Idempotency)
    assert idem.scope == "create_item"
    assert resolve(idem, "create_item", lambda: {}) is idem
    assert resolve(None, "create_item", lambda: {}) is None
    scoped = resolve("k", "append_items", lambda: {}, "conv_1")
    assert scoped is not None
    assert scoped.scope == "append_items:conv_1"
    with pytest.raises(ConflictError, match="other arguments"):
        scoped.replay("0" * 64, "[]", list)


def test_migrate_plan_and_apply_create_a_missing_keys_table(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from datacon.cli import cli

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    create_storage(url).close()
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        conn.execute("DROP TABLE _idempotency_keys")
    conn.close()
    runner = CliRunner()
    plan = runner.invoke(cli, ["migrate", "plan", "--url", url])
    assert plan.exit_code == 0, plan.output
    assert plan.output.splitlines() == [f"{s};" for s in render(SchemaConfig(), SqliteDialect()).create_idempotency]
    assert runner.invoke(cli, ["migrate", "status", "--url", url]).exit_code != 0
    applied = runner.invoke(cli, ["migrate", "apply", "--url", url])
    assert applied.exit_code == 0, applied.output
    status = runner.invoke(cli, ["migrate", "status", "--url", url])
    assert status.exit_code == 0, status.output
    assert "pending  none" in status.output


@pytest.fixture(scope="module")
def waitaof_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.backends.test_redis_hardening import valkey_executable
    from tests.servers.redis import RedisServer

    server = RedisServer(
        valkey_executable(), tmp_path_factory.mktemp("valkey-idem"), extra_args=("--appendonly", "yes")
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.redis
def test_redis_keyed_writes_through_the_wait_pipeline(waitaof_server: Any) -> None:
    """With wait_aof each write is a pipeline (script, then WAITAOF): the keyed scripts' replies
    (a write, or the stored result) come back through it the same."""
    from tests.servers.redis import RedisBackend

    backend = RedisBackend(waitaof_server.url)
    config = StorageFactoryConfig(backend="redis", redis=backend.redis_config(wait_aof=True, wait_timeout_ms=5000))
    with create_storage(config) as storage:
        conv = storage.conversations.create_conversation(NewConversation(), idempotency_key="k")
        assert storage.conversations.create_conversation(NewConversation(), idempotency_key="k") == conv
        item = storage.items.create_item(NewConversationItem("message", "hi"), idempotency_key="k")
        assert storage.items.create_item(NewConversationItem("message", "hi"), idempotency_key="k") == item
        turn = [NewConversationItem("message", "a"), NewConversationItem("message", "b")]
        made = storage.items.append_items(conv.id, turn, idempotency_key="k")
        assert storage.items.append_items(conv.id, turn, idempotency_key="k") == made
        response = StoredResponse(model="m")
        assert storage.responses.store_response(response, idempotency_key="k") == response.id
        assert storage.responses.store_response(response, idempotency_key="k") == response.id
        with pytest.raises(ConflictError, match="idempotency_key"):
            storage.conversations.create_conversation(NewConversation(metadata={"x": 1}), idempotency_key="k")
