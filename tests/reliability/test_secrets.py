"""No password in logs, reprs, configs or errors, with a password in every URL and config."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from datacon import (
    ListParams,
    NewConversation,
    PostgresConfig,
    RedisConfig,
    StorageFactoryConfig,
    StoredResponse,
    create_storage,
)
from datacon.errors import BackendUnavailableError, ConfigError
from tests.reliability._pg import FaultablePostgres
from tests.reliability._secrets import Exposure, log_everything
from tests.servers.postgres import PASSWORD as PG_PASSWORD
from tests.servers.redis import RedisServer, redis_executable
from tests.support import free_port

pytestmark = pytest.mark.reliability

SECRET = "Rel1ab-S3cret-pw"  # distinctive, so a leak anywhere is found by a substring search


def exercise(exposure: Exposure, config: StorageFactoryConfig) -> None:
    """Open a storage, use every store, and show everything a user could print or log."""
    exposure.show("config", config)
    exposure.show("section", config.section())
    with create_storage(config) as storage:
        exposure.show("storage", storage)
        exposure.show("pool_stats", storage.pool_stats())
        conv = storage.conversations.create_conversation(NewConversation(metadata={"k": "v"}))
        exposure.show("conversation", conv)
        exposure.show("items", storage.items.list_items(conv.id, ListParams(10)))
        response = storage.responses.store_response(StoredResponse())
        exposure.show("chain", storage.responses.get_response_chain(response))


@pytest.mark.redis
def test_redis_password_appears_nowhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log_everything(caplog)
    server = RedisServer(redis_executable(), tmp_path, password=SECRET)
    server.start()
    exposure = Exposure()
    try:
        good = f"redis://:{SECRET}@127.0.0.1:{server.port}/0"
        short: dict[str, Any] = {"pool_timeout_secs": 1.0, "socket_timeout_secs": 1.0, "connect_timeout_secs": 1.0}

        def redis(url: str) -> StorageFactoryConfig:
            return StorageFactoryConfig(backend="redis", redis=RedisConfig(url=url, **short))

        exercise(exposure, redis(good))
        exercise(exposure, redis(f"redis://default:{SECRET}@127.0.0.1:{server.port}/0"))
        exercise(exposure, StorageFactoryConfig.from_mapping({"backend": "redis", "redis": {"url": good}}))

        def use(url: str) -> None:
            with create_storage(redis(url)) as storage:
                storage.conversations.get_conversation("x")

        exposure.error(
            "wrong password", lambda: use(f"redis://:wrong-{SECRET}@127.0.0.1:{server.port}/0"), BackendUnavailableError
        )
        exposure.error(
            "wrong user", lambda: use(f"redis://nobody:{SECRET}@127.0.0.1:{server.port}/0"), BackendUnavailableError
        )
        exposure.error(
            "wrong port", lambda: use(f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"), BackendUnavailableError
        )
        exposure.error(
            "unresolvable host", lambda: use(f"redis://:{SECRET}@no-such-host.invalid:6379/0"), BackendUnavailableError
        )
        exposure.error(
            "TLS to a plain server",
            lambda: use(f"rediss://:{SECRET}@127.0.0.1:{server.port}/0"),
            BackendUnavailableError,
        )
        exposure.error("bad port in url", lambda: use(f"redis://:{SECRET}@127.0.0.1:99999/0"), ConfigError)
        exposure.error("bad scheme", lambda: use(f"http://:{SECRET}@127.0.0.1:{server.port}/0"), ConfigError)
        exposure.error(
            "bad pool_max in a mapping",
            lambda: StorageFactoryConfig.from_mapping({"backend": "redis", "redis": {"url": good, "pool_max": "many"}}),
            ConfigError,
        )
        exposure.error(
            "misspelled password key in a mapping",
            lambda: StorageFactoryConfig.from_mapping({"backend": "redis", "redis": {"url": good, "passwrd": SECRET}}),
            ConfigError,
        )

        # The server goes away under an open storage.
        storage = create_storage(redis(good))
        try:
            storage.conversations.get_conversation("warm-up")
            server.stop()
            exposure.error(
                "server stopped", lambda: storage.conversations.get_conversation("x"), BackendUnavailableError
            )
        finally:
            storage.close()
    finally:
        server.stop()

    exposure.texts.append(("logs", caplog.text))
    assert caplog.records, "nothing was logged at DEBUG: the log check would prove nothing"
    assert exposure.leaks(SECRET) == []
    assert len(exposure.errors) == 10


# A second role whose password needs percent-encoding in a URL: both forms must stay hidden.
SPECIAL = "p@ss:w/rd%S3cret?#"
SPECIAL_IN_URL = quote(SPECIAL, safe="")


@pytest.mark.postgres
def test_postgres_password_appears_nowhere(caplog: pytest.LogCaptureFixture) -> None:
    log_everything(caplog)
    server = FaultablePostgres()
    exposure = Exposure()
    try:
        server.start()
        with server.admin() as conn:
            conn.execute(f"CREATE ROLE special LOGIN SUPERUSER PASSWORD '{SPECIAL}'")
        good = server.url()
        special = good.replace(f"datacon:{PG_PASSWORD}@", f"special:{SPECIAL_IN_URL}@")

        def postgres(url: str) -> StorageFactoryConfig:
            config = PostgresConfig(db_url=url, pool_max=2, pool_timeout_secs=1.0, connect_timeout_secs=0.5)
            return StorageFactoryConfig(backend="postgres", postgres=config)

        exercise(exposure, postgres(good))
        exercise(exposure, postgres(special))
        exercise(exposure, StorageFactoryConfig.from_mapping({"backend": "postgres", "postgres": {"db_url": good}}))

        def use(url: str) -> None:
            with create_storage(postgres(url)) as storage:
                storage.conversations.get_conversation("x")

        wrong_port = good.replace(f":{server.port}/", f":{free_port()}/")
        exposure.error(
            "wrong password", lambda: use(server.url(password="wrong-" + PG_PASSWORD)), BackendUnavailableError
        )
        exposure.error(
            "wrong password, special role", lambda: use(special.replace("p%40", "x%40")), BackendUnavailableError
        )
        exposure.error("unknown role", lambda: use(good.replace("datacon:", "nobody:", 1)), BackendUnavailableError)
        exposure.error("unknown database", lambda: use(server.url(database="no_such_db")), BackendUnavailableError)
        exposure.error("wrong port", lambda: use(wrong_port), BackendUnavailableError)
        exposure.error("sslmode=require, no TLS", lambda: use(good + "?sslmode=require"), BackendUnavailableError)
        exposure.error("bad port in url", lambda: use(good.replace(f":{server.port}/", ":99999/")), ConfigError)
        # libpq's parser quotes the bad token (here the password) in its message: hidden.
        exposure.error("malformed url", lambda: use(good.replace("@", "%zz@", 1)), ConfigError)
        exposure.error("malformed key=value", lambda: use(f"host=127.0.0.1 password={PG_PASSWORD} x"), ConfigError)
        exposure.error("bad scheme", lambda: use(good.replace("postgresql://", "mysql://")), ConfigError)
        exposure.error(
            "bad pool_max in a mapping",
            lambda: StorageFactoryConfig.from_mapping(
                {"backend": "postgres", "postgres": {"db_url": good, "pool_max": "many"}}
            ),
            ConfigError,
        )

        storage = create_storage(postgres(special))
        try:
            storage.conversations.get_conversation("warm-up")
            server.kill()
            exposure.error(
                "server killed", lambda: storage.conversations.get_conversation("x"), BackendUnavailableError
            )
            exposure.error("still down", lambda: storage.conversations.get_conversation("y"), BackendUnavailableError)
        finally:
            storage.close()
    finally:
        server.stop()

    exposure.texts.append(("logs", caplog.text))
    assert caplog.records, "nothing was logged at DEBUG: the log check would prove nothing"
    assert exposure.leaks(PG_PASSWORD) == []
    assert exposure.leaks(SPECIAL) == []
    assert len(exposure.errors) == 13
