"""No password in logs, reprs, configs or errors, with a password in every URL and config."""

from __future__ import annotations

import functools
import logging
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
from tests.servers.postgres import PostgresBackend
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


# libpq refuses "%zz" (not a percent-escape); its message quotes the whole token, password included.
BAD_ESCAPE = "pa%zz" + SECRET


@pytest.mark.postgres
def test_postgres_url_is_parsed_by_libpq_at_create_storage_and_never_shown(
    postgres_backend: PostgresBackend, caplog: pytest.LogCaptureFixture
) -> None:
    log_everything(caplog)
    exposure = Exposure()
    good = postgres_backend.url
    base = good.split("?")[0]
    with_password = base.replace(f":{PG_PASSWORD}@", f":{BAD_ESCAPE}@")
    without_password = base.replace(f":{PG_PASSWORD}@", "@")
    assert with_password != base
    assert without_password != base

    def postgres(url: str) -> StorageFactoryConfig:
        config = PostgresConfig(db_url=url, pool_max=2, pool_timeout_secs=1.0, connect_timeout_secs=1.0)
        return StorageFactoryConfig(backend="postgres", postgres=config)

    def use(url: str) -> None:
        with create_storage(postgres(url)) as storage:
            storage.conversations.get_conversation("x")

    for label, url in (
        ("bad escape in the password", with_password),
        ("bad escape in a password query parameter", f"{without_password}?password={BAD_ESCAPE}"),
        ("bad escape, password given twice", f"{with_password}?password={BAD_ESCAPE}"),
        ("unknown query parameter", f"{with_password.replace(BAD_ESCAPE, SECRET)}?foo=bar"),
    ):
        exposure.show(f"config({label})", postgres(url))
        error = exposure.error(label, functools.partial(use, url), ConfigError)
        assert isinstance(error, ConfigError)
        assert error.field == "postgres.db_url", label

    # A valid password given as a query parameter: masked in the config's repr, and in the
    # errors and logs of a failed login (it is the wrong password for this server).
    in_query = f"{without_password}?password={SECRET}"
    exposure.show("config(password in the query)", postgres(in_query))
    exposure.error("password in the query, wrong", lambda: use(in_query), BackendUnavailableError)

    # Whatever the driver or the pool logs while a storage is open is scrubbed of its password.
    with create_storage(postgres(f"{without_password}?password={quote(PG_PASSWORD)}")) as storage:
        storage.conversations.get_conversation("x")
        logging.getLogger("psycopg.pool").warning("a driver message quoting %s", PG_PASSWORD)
        try:
            raise RuntimeError(f"an exception quoting {PG_PASSWORD}")
        except RuntimeError:
            logging.getLogger("psycopg").info("a driver traceback", exc_info=True)

    exposure.texts.append(("logs", caplog.text))
    exposure.texts.extend((f"log record {r.name}", r.getMessage()) for r in caplog.records)
    assert any(r.name.startswith("psycopg") for r in caplog.records), "no driver log captured: the check proves nothing"
    assert "a driver message quoting ****" in caplog.text
    assert "an exception quoting ****" in caplog.text
    assert exposure.leaks(SECRET) == [], [t for t in exposure.texts if t[0] in exposure.leaks(SECRET)]
    assert exposure.leaks(PG_PASSWORD) == []
    assert exposure.leaks(BAD_ESCAPE) == []
    assert len(exposure.errors) == 5


@pytest.mark.redis
def test_redis_topology_password_appears_nowhere(
    redis_cluster_backend: Any, redis_sentinel_backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis Cluster and a Sentinel-managed master: reprs, logs (DEBUG, redis-py's cluster
    client included) and errors never show the password."""
    from tests.servers.redis import PASSWORD as REDIS_PASSWORD

    log_everything(caplog)
    exposure = Exposure()
    try:
        for backend in (redis_cluster_backend, redis_sentinel_backend):
            exercise(exposure, backend.config())
            storage = create_storage(backend.config())
            try:
                raw = storage.raw
                exposure.show("store", getattr(raw, "store", None))
                exposure.show("topology", getattr(getattr(raw, "store", None), "topology", None))
                exposure.show("address", getattr(raw, "store", None).address())  # type: ignore[union-attr]
                exposure.show("client", getattr(getattr(raw, "store", None), "client", None))
            finally:
                storage.close()
        dead = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0"
        short: dict[str, Any] = {"pool_timeout_secs": 1.0, "socket_timeout_secs": 1.0, "connect_timeout_secs": 1.0}
        exposure.error(
            "no cluster node answers",
            lambda: create_storage(
                StorageFactoryConfig(backend="redis", redis=RedisConfig(url=dead, cluster=True, **short))
            ),
            BackendUnavailableError,
        )
        sentinels = RedisConfig(url=dead, sentinels=[f"127.0.0.1:{free_port()}"], sentinel_service="svc", **short)

        def use_sentinels() -> None:
            with create_storage(StorageFactoryConfig(backend="redis", redis=sentinels)) as storage:
                storage.conversations.get_conversation("x")

        exposure.error("no sentinel answers", use_sentinels, BackendUnavailableError)
    finally:
        redis_cluster_backend.wipe()
        redis_sentinel_backend.wipe()
    exposure.texts.append(("logs", caplog.text))
    assert caplog.records, "nothing was logged at DEBUG: the log check would prove nothing"
    assert exposure.leaks(REDIS_PASSWORD) == []
    assert len(exposure.errors) == 2
