"""The Postgres pool: the application's own ``psycopg_pool.ConnectionPool`` (``PostgresConfig(pool=...)``),
and the pool settings ``pool_min``, ``max_idle_secs``, ``max_lifetime_secs``, ``check_connection``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg_pool
import pytest

from datacon import NewConversation, PostgresConfig, StorageFactoryConfig, create_storage
from datacon.errors import ConfigError
from tests.servers.postgres import PASSWORD, PostgresBackend

pytestmark = pytest.mark.postgres


def open_pg(config: PostgresConfig) -> Any:
    return create_storage(StorageFactoryConfig(backend="postgres", postgres=config))


def with_app_name(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


def backends_named(backend: PostgresBackend, name: str) -> list[tuple[int, Any]]:
    with backend.connect() as conn:
        rows = conn.execute(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = %s ORDER BY pid", (name,)
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


@pytest.fixture
def app_pool(postgres_backend: PostgresBackend) -> Iterator[psycopg_pool.ConnectionPool[Any]]:
    """The application's pool: not autocommit (psycopg's default), three connections."""
    pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
        postgres_backend.url, min_size=1, max_size=3, open=False, name="app"
    )
    pool.open(wait=True)
    try:
        yield pool
    finally:
        pool.close()
        postgres_backend.wipe()


def test_an_applications_pool_is_used_and_never_closed(
    postgres_backend: PostgresBackend, app_pool: psycopg_pool.ConnectionPool[Any]
) -> None:
    config = PostgresConfig(pool=app_pool)
    assert "<ConnectionPool>" in repr(config)
    assert PASSWORD not in repr(config)
    with open_pg(config) as storage:
        assert storage.max_concurrency == 3
        conversation = storage.conversations.create_conversation(NewConversation(metadata={"app": "pool"}))
        assert storage.pool_stats()["max"] == 3
    # Committed (autocommit while datacon held the connection): another session sees it.
    with postgres_backend.connect() as conn:
        assert conn.execute("SELECT count(*) FROM conversations WHERE id = %s", (conversation.id,)).fetchone() == (1,)
    assert not app_pool.closed
    with app_pool.connection() as conn:
        assert conn.autocommit is False  # the application's setting, put back
        assert conn.prepare_threshold == 5
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_transaction_pooling_on_a_borrowed_connection_is_put_back(
    app_pool: psycopg_pool.ConnectionPool[Any],
) -> None:
    with open_pg(PostgresConfig(pool=app_pool, transaction_pooling=True)) as storage:
        for _ in range(8):
            assert storage.conversations.get_conversation("conv_absent") is None
    with app_pool.connection() as conn:
        assert conn.prepare_threshold == 5
        assert conn.autocommit is False


def test_a_given_pool_is_checked(postgres_backend: PostgresBackend) -> None:
    with pytest.raises(ConfigError, match=r"pool must be a psycopg_pool\.ConnectionPool") as caught:
        PostgresConfig(pool=object()).validate()
    assert caught.value.field == "postgres.pool"
    closed: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(postgres_backend.url, open=False)
    with pytest.raises(ConfigError, match="the pool is not open"):
        open_pg(PostgresConfig(pool=closed))
    with pytest.raises(ConfigError, match="give db_url or pool, not both"):
        PostgresConfig(postgres_backend.url, pool=closed).validate()
    # Files cannot hold a pool object.
    config = StorageFactoryConfig.from_mapping({"backend": "postgres", "postgres": {"pool": "my-pool"}})
    with pytest.raises(ConfigError, match="got str"):
        create_storage(config)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"pool_min": -1}, "postgres.pool_min"),
        ({"pool_min": 5, "pool_max": 4}, "postgres.pool_min"),
        ({"max_idle_secs": 0}, "postgres.max_idle_secs"),
        ({"max_lifetime_secs": -1}, "postgres.max_lifetime_secs"),
        ({"check_connection": "yes"}, "postgres.check_connection"),
    ],
)
def test_pool_settings_are_checked(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PostgresConfig("postgresql://h/db", **options).validate()
    assert caught.value.field == field


def test_pool_min_and_max_idle(postgres_backend: PostgresBackend) -> None:
    name = "dc_idle_test"
    config = PostgresConfig(with_app_name(postgres_backend.url, name), pool_min=0, max_idle_secs=0.3, pool_max=4)
    with open_pg(config) as storage:
        assert storage.conversations.get_conversation("conv_absent") is None
        deadline = time.monotonic() + 10
        while backends_named(postgres_backend, name) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert backends_named(postgres_backend, name) == []  # idle beyond max_idle: closed, none kept
        assert storage.conversations.get_conversation("conv_absent") is None  # and reopened on demand
    kept = PostgresConfig(with_app_name(postgres_backend.url, name), pool_min=2, max_idle_secs=0.3)
    with open_pg(kept) as storage:
        assert storage.conversations.get_conversation("conv_absent") is None
        time.sleep(1.0)
        assert len(backends_named(postgres_backend, name)) == 2


def test_max_lifetime_replaces_connections(postgres_backend: PostgresBackend) -> None:
    name = "dc_lifetime_test"
    config = PostgresConfig(with_app_name(postgres_backend.url, name), pool_min=1, pool_max=1, max_lifetime_secs=0.5)
    with open_pg(config) as storage:
        first = backends_named(postgres_backend, name)
        time.sleep(0.8)
        for _ in range(3):  # the expired connection is dropped when it comes back, then replaced
            assert storage.conversations.get_conversation("conv_absent") is None
            time.sleep(0.1)
        later = backends_named(postgres_backend, name)
    assert first
    assert later
    assert {pid for pid, _ in first}.isdisjoint(pid for pid, _ in later)


def test_check_connection_replaces_one_the_server_closed(postgres_backend: PostgresBackend) -> None:
    name = "dc_check_test"
    config = PostgresConfig(with_app_name(postgres_backend.url, name), pool_min=1, pool_max=1, check_connection=True)
    with open_pg(config) as storage:
        assert storage.conversations.get_conversation("conv_absent") is None
        with postgres_backend.connect() as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (name,))
        deadline = time.monotonic() + 5
        while backends_named(postgres_backend, name) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert storage.conversations.get_conversation("conv_absent") is None  # checked, replaced, no error


def test_sequential_calls_reuse_the_connection_given_back_last(postgres_backend: PostgresBackend) -> None:
    # psycopg_pool's own order is first in, first out: sequential calls would rotate through
    # every open connection (each server process cold by its next turn). datacon's pool takes
    # the one given back last, so the other connections stay idle (and max_idle can close them).
    name = "dc_lifo_test"
    config = PostgresConfig(with_app_name(postgres_backend.url, name), pool_min=4, pool_max=4)
    with open_pg(config) as storage:
        assert len(backends_named(postgres_backend, name)) == 4
        with postgres_backend.connect() as conn:
            (started,) = conn.execute("SELECT clock_timestamp()").fetchone()
        for _ in range(12):
            assert storage.conversations.get_conversation("conv_absent") is None
        with postgres_backend.connect() as conn:
            used = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND state_change > %s",
                (name, started),
            ).fetchone()
        assert used == (1,)
        stats = storage.pool_stats()
        assert (stats["size"], stats["in_use"]) == (4, 0)
