"""PostgreSQL read replicas (``PostgresConfig.read_urls``) on a real primary + streaming standby.

The standby's replay is paused (``pg_wal_replay_pause()``) to make replication lag real:
a read the replica serves is then stale, one the primary serves is not.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import anyio
import attrs
import pytest

from datacon import (
    ListParams,
    NewConversation,
    NewConversationItem,
    PostgresConfig,
    SchemaConfig,
    Storage,
    StorageFactoryConfig,
    StoredResponse,
    TableConfig,
    create_storage,
    request_context,
)
from datacon._time import utc_now
from datacon.aio import create_async_storage
from datacon.errors import ConfigError
from tests.reliability._secrets import find_instances
from tests.servers._pg_replication import ReplicatedPair
from tests.servers.postgres import PASSWORD
from tests.support import free_port

# The writes of these tests commit on the primary alone (``synchronous_commit = local``), so
# they return while the standby's replay is paused (the pair's default waits for the standby).
LOCAL_COMMIT = "?options=-csynchronous_commit%3Dlocal"


def _config(pair: ReplicatedPair, read_urls: list[str] | None = None, **options: Any) -> StorageFactoryConfig:
    postgres = PostgresConfig(
        db_url=pair.url() + LOCAL_COMMIT,
        read_urls=[pair.read_url()] if read_urls is None else read_urls,
        **options,
    )
    return StorageFactoryConfig(backend="postgres", postgres=postgres)


@contextmanager
def replay_paused(pair: ReplicatedPair) -> Iterator[None]:
    """The standby applies nothing inside the block (it still receives WAL); resumed on exit.

    It has applied everything before (the tables a new storage just created included: a read
    that finds no table on the replica is served by the primary, which would hide the lag)."""
    _caught_up(pair)
    pair.standby.pause_replay()
    try:
        yield
    finally:
        pair.standby.resume_replay()


def _caught_up(pair: ReplicatedPair, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while pair.replay_lag_bytes() > 0:
        assert time.monotonic() < deadline, "the standby did not catch up"
        time.sleep(0.02)


@pytest.fixture
def storage(postgres_replica_pair: ReplicatedPair) -> Iterator[Storage]:
    with create_storage(_config(postgres_replica_pair)) as storage:
        yield storage


@pytest.mark.postgres
def test_a_read_lags_outside_the_request_context_and_sees_the_write_inside_it(
    postgres_replica_pair: ReplicatedPair, storage: Storage
) -> None:
    pair = postgres_replica_pair
    tag = secrets.token_hex(4)
    with replay_paused(pair):
        with request_context({"request": tag}):
            created = storage.conversations.create_conversation(NewConversation(id=f"c-{tag}", metadata={"v": 1}))
            # In the same request context, after the write: the primary serves the read.
            assert storage.conversations.get_conversation(created.id) == created
        # Outside it, the replica serves: replay is paused, so it has not seen the write.
        assert storage.conversations.get_conversation(created.id) is None, str(storage.pool_stats())
        # Another request context that did not write reads from the replica too.
        with request_context({"request": f"other-{tag}"}):
            assert storage.conversations.get_conversation(created.id) is None
        assert pair.replay_lag_bytes() > 0
        stats = storage.pool_stats()
        assert stats["replica_size"] >= 1
        assert stats["replicas_skipped"] == 0
        assert stats["max"] == storage.max_concurrency == 2 * 16
        assert stats["size"] >= stats["replica_size"] + 1  # both pools counted
    _caught_up(pair)
    assert storage.conversations.get_conversation(f"c-{tag}") == created  # the replica has it now


@pytest.mark.postgres
def test_every_read_goes_to_the_replica_and_to_the_primary_after_a_write(
    postgres_replica_pair: ReplicatedPair, storage: Storage
) -> None:
    """Gets, lists, pages, chains, identifier lists and list_conversations: each one, run
    while replay is paused, shows the replica's (stale) view outside a request context and the
    primary's inside one that wrote."""
    pair = postgres_replica_pair
    tag = secrets.token_hex(4)
    cid, iid, rid = f"c-{tag}", f"msg_{tag}", f"r-{tag}"
    ident = f"user-{tag}"

    def reads(s: Storage) -> dict[str, object]:
        chain = s.responses.get_response_chain(f"{rid}-2")
        return {
            "get_conversation": s.conversations.get_conversation(cid) is not None,
            "list_conversations": cid in [c.id for c in s.conversations.list_conversations(ListParams(limit=100)).data],
            "get_item": s.items.get_item(iid) is not None,
            "list_items": len(s.items.list_items(cid, ListParams(limit=100))),
            "list_items_page": len(s.items.list_items_page(cid, ListParams(limit=1)).data),
            "is_item_linked": s.items.is_item_linked(cid, iid),
            "get_response": s.responses.get_response(rid) is not None,
            "get_response_chain": len(chain.responses),
            "list_identifier_responses": len(s.responses.list_identifier_responses(ident)),
        }

    stale = reads(storage)
    assert not any(stale.values())
    with replay_paused(pair):
        with request_context({"request": tag}):
            storage.conversations.create_conversation(NewConversation(id=cid))
            storage.items.create_item(NewConversationItem("message", {"text": "hi"}, id=iid))
            storage.items.link_item(cid, iid, utc_now() - timedelta(seconds=1))
            storage.items.append_items(cid, [NewConversationItem("message", {"text": "again"})])
            storage.responses.store_response(StoredResponse(id=rid, safety_identifier=ident))
            storage.responses.store_response(StoredResponse(id=f"{rid}-2", previous_response_id=rid))
            fresh = reads(storage)
        assert fresh == {
            "get_conversation": True,
            "list_conversations": True,
            "get_item": True,
            "list_items": 2,
            "list_items_page": 1,
            "is_item_linked": True,
            "get_response": True,
            "get_response_chain": 2,
            "list_identifier_responses": 1,
        }
        assert reads(storage) == stale  # outside the context: every read from the paused replica
    _caught_up(pair)
    assert reads(storage) == fresh


@pytest.mark.postgres
@pytest.mark.usefixtures("storage")
def test_read_your_writes_through_the_async_facade(postgres_replica_pair: ReplicatedPair) -> None:
    """The async facade runs calls in worker threads: the request context's write mark still
    reaches the read (the context object is shared, not copied).

    ``storage`` creates the tables first (run alone, the database is new): made inside the
    paused block, they would be missing on the standby, whose reads then go to the primary."""
    pair = postgres_replica_pair
    tag = secrets.token_hex(4)

    async def main() -> tuple[bool, bool]:
        async with create_async_storage(_config(pair)) as storage:
            assert storage.max_concurrency == 2 * 16
            with request_context({"request": tag}):
                await storage.conversations.create_conversation(NewConversation(id=f"a-{tag}"))
                inside = await storage.conversations.get_conversation(f"a-{tag}") is not None
            outside = await storage.conversations.get_conversation(f"a-{tag}") is not None
            return inside, outside

    with replay_paused(pair):
        for backend in ("asyncio", "trio"):
            tag = f"{secrets.token_hex(4)}-{backend}"
            assert anyio.run(main, backend=backend) == (True, False)


class _SilentServer:
    """A TCP port that accepts connections and never answers (a hung host, a black hole)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.mark.postgres
@pytest.mark.parametrize("fault", ["refused", "silent"])
def test_an_unreachable_replica_is_skipped_within_the_connect_timeout(
    postgres_replica_pair: ReplicatedPair, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    pair = postgres_replica_pair
    silent = _SilentServer() if fault == "silent" else None
    port = silent.port if silent is not None else free_port()
    dead = f"postgresql://datacon:{PASSWORD}@127.0.0.1:{port}/datacon_test"
    tag = secrets.token_hex(4)
    try:
        with (
            caplog.at_level(logging.DEBUG),
            create_storage(_config(pair, [dead], connect_timeout_secs=2, pool_timeout_secs=5)) as storage,
        ):
            storage.conversations.create_conversation(NewConversation(id=f"u-{tag}"))
            started = time.monotonic()
            assert storage.conversations.get_conversation(f"u-{tag}") is not None  # the primary served it
            first = time.monotonic() - started
            started = time.monotonic()
            for _ in range(20):
                assert storage.conversations.get_conversation(f"u-{tag}") is not None
            then = (time.monotonic() - started) / 20
            stats = storage.pool_stats()
    finally:
        if silent is not None:
            silent.close()
    # One wait of at most the connect timeout (2 s; slack for 2 busy cores), then skipped.
    assert first <= 2 + 1.5, f"the first read waited {first:.2f} s for the unreachable replica"
    assert then < 0.5, f"reads kept waiting for the skipped replica ({then:.3f} s each)"
    assert stats["replicas_skipped"] == 1
    assert any("read replica datacon-replica-0 skipped" in record.getMessage() for record in caplog.records)
    assert all(PASSWORD not in record.getMessage() for record in caplog.records)


@pytest.mark.postgres
def test_a_read_on_a_replica_whose_schema_is_behind_is_served_by_the_primary(
    postgres_replica_pair: ReplicatedPair,
) -> None:
    """Tables created on the primary, not replayed yet on the replica (a new deployment, a
    migration): reads fall back to the primary instead of failing, the replica is not skipped."""
    pair = postgres_replica_pair
    table = f"dc_behind_{secrets.token_hex(4)}"
    schema = SchemaConfig(conversations=TableConfig(table=table))
    config = _config(pair)
    assert config.postgres is not None
    config = attrs.evolve(config, postgres=attrs.evolve(config.postgres, schema=schema))
    try:
        with replay_paused(pair), create_storage(config) as storage:  # the table exists on the primary only
            created = storage.conversations.create_conversation(NewConversation())
            assert storage.conversations.get_conversation(created.id) == created
            assert storage.pool_stats()["replicas_skipped"] == 0
    finally:
        with pair.primary.admin() as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')


@pytest.mark.postgres
def test_health_probes_the_primary_not_a_replica(postgres_replica_pair: ReplicatedPair) -> None:
    """A readiness probe checks the server writes need: an unreachable replica is not even
    tried (a get would wait the connect timeout for it, then skip it)."""
    dead = f"postgresql://datacon:{PASSWORD}@127.0.0.1:{free_port()}/datacon_test"
    with create_storage(_config(postgres_replica_pair, [dead], connect_timeout_secs=2)) as storage:
        report = storage.health()
        assert report.ok, report.error
        assert report.pool["replicas_skipped"] == 0
        assert report.latency_secs < 1.5
        assert storage.conversations.get_conversation("nope") is None  # a get tries the replica...
        assert storage.health().pool["replicas_skipped"] == 1  # ...and skips it; health shows it


@pytest.mark.postgres
def test_a_skipped_replica_is_tried_again_and_serves_reads(
    postgres_replica_pair: ReplicatedPair, storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datacon.backends.postgres import PostgresConnector, connector

    monkeypatch.setattr(connector, "REPLICA_RETRY_SECS", 0.2)
    (conn,) = find_instances(storage, PostgresConnector)
    (replica,) = conn._replicas
    conn._replica_failed(replica, "marked down by the test")
    assert storage.pool_stats()["replicas_skipped"] == 1
    tag = secrets.token_hex(4)
    with replay_paused(postgres_replica_pair):
        storage.conversations.create_conversation(NewConversation(id=f"s-{tag}"))
        # Skipped: the primary serves (it has the write the paused replica has not replayed).
        assert storage.conversations.get_conversation(f"s-{tag}") is not None
        time.sleep(0.3)
        # Tried again after REPLICA_RETRY_SECS: the replica serves (stale), and is counted back.
        assert storage.conversations.get_conversation(f"s-{tag}") is None
        assert storage.pool_stats()["replicas_skipped"] == 0


@pytest.mark.postgres
def test_a_read_whose_replica_connection_dies_is_served_by_the_primary(
    postgres_replica_pair: ReplicatedPair, storage: Storage
) -> None:
    from datacon.backends.postgres import PostgresConnector

    pair = postgres_replica_pair
    tag = secrets.token_hex(4)
    storage.conversations.create_conversation(NewConversation(id=f"d-{tag}"))
    _caught_up(pair)
    (conn,) = find_instances(storage, PostgresConnector)
    sql = storage.raw.store.sql.conv_select  # type: ignore[attr-defined]
    with conn.session(replica=True) as session:
        pid = session.fetchone("SELECT pg_backend_pid(), pg_is_in_recovery()")
        assert pid is not None
        assert pid[1] is True
        with pair.standby.admin() as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid[0],))
        row = session.fetchone(sql, {"id": f"d-{tag}"})  # the replica's connection is gone: the primary serves
        assert row is not None
        assert session.fetchone("SELECT pg_is_in_recovery()") == (False,)
    assert storage.pool_stats()["replicas_skipped"] == 1


# --- configuration (no server)


def test_read_urls_are_checked_and_their_passwords_never_shown() -> None:
    good = "postgresql://app:primary-pw@db1/chat"
    replica = "postgresql://app:replica-s3cret@db2/chat"
    config = PostgresConfig(db_url=good, read_urls=[replica, "host=db3 password=kv-s3cret dbname=chat"])
    config.validate()
    text = repr(config)
    assert "replica-s3cret" not in text
    assert "kv-s3cret" not in text
    assert "primary-pw" not in text
    assert "db2" in text
    assert "db3" in text
    assert hash(config) == hash(PostgresConfig(db_url=good, read_urls=list(config.read_urls)))  # still hashable

    bad = [
        (["postgresql://app:bad-s3cret@db2:99999/chat"], "postgres.read_urls[0]", "invalid port"),
        ([good, "postgresql://app:bad-s3cret@db2/chat?nosuchoption=1"], "postgres.read_urls[1]", "invalid read URL"),
        ([""], "postgres.read_urls[0]", "non-empty"),
        (["mysql://app:bad-s3cret@db2/chat"], "postgres.read_urls[0]", "scheme"),
        ("postgresql://app:bad-s3cret@db2/chat", "postgres.read_urls", "must be a list"),
    ]
    for urls, field, words in bad:
        with pytest.raises(ConfigError) as caught:
            PostgresConfig(db_url=good, read_urls=urls).validate()  # type: ignore[arg-type]
        assert caught.value.field == field, urls
        assert words in str(caught.value), str(caught.value)
        assert "bad-s3cret" not in str(caught.value)
        assert "bad-s3cret" not in repr(PostgresConfig(db_url=good, read_urls=urls))  # type: ignore[arg-type]


def test_a_multi_host_db_url_is_checked_and_its_password_never_shown() -> None:
    url = "postgresql://app:multi-s3cret@db-a:5432,db-b:5433/chat?target_session_attrs=read-write"
    config = PostgresConfig(db_url=url)
    config.validate()
    assert "multi-s3cret" not in repr(config)
    assert "db-a:5432,db-b:5433" in repr(config)
    for bad, words in [
        (url.replace("5433", "99999"), "invalid port"),
        (url.replace("read-write", "writable"), "target_session_attrs must be one of"),
    ]:
        with pytest.raises(ConfigError, match=words) as caught:
            PostgresConfig(db_url=bad).validate()
        assert caught.value.field == "postgres.db_url"
        assert "multi-s3cret" not in str(caught.value)


def test_read_urls_need_db_url_not_an_application_pool() -> None:
    import psycopg_pool

    pool = psycopg_pool.ConnectionPool("postgresql://app@127.0.0.1:1/chat", open=False)
    with pytest.raises(ConfigError, match="read_urls need db_url") as caught:
        PostgresConfig(pool=pool, read_urls=["postgresql://app@db2/chat"]).validate()
    assert caught.value.field == "postgres.read_urls"


def test_read_urls_from_a_config_file(tmp_path: Any) -> None:
    from datacon.config import StorageFactoryConfig as Config
    from datacon.config import load_config

    path = tmp_path / "datacon.json"
    path.write_text(
        '{"backend": "postgres", "postgres": {"db_url": "postgresql://app@db1/chat",'
        ' "read_urls": ["postgresql://app:${REPLICA_PW}@db2/chat"]}}'
    )
    import os

    os.environ["REPLICA_PW"] = "from-env-s3cret"
    try:
        config = Config.from_mapping(load_config(path))
    finally:
        del os.environ["REPLICA_PW"]
    assert config.postgres is not None
    assert config.postgres.read_urls == ["postgresql://app:from-env-s3cret@db2/chat"]
    assert "from-env-s3cret" not in repr(config)
