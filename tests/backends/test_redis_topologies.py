"""Redis Cluster and Sentinel specifics: settings, the cluster's key layout, no secret in reprs.

The conformance suite runs on both topologies (tests/conftest.py); the failovers are in
tests/reliability/test_faults_redis_topologies.py; copying between one server and a
cluster in tests/test_cli.py (``test_copy_of_10000_items_with_links_verifies_equal``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from datacon import (
    ListParams,
    NewConversation,
    NewConversationItem,
    PruneReport,
    RedisConfig,
    SchemaConfig,
    SortOrder,
    StorageFactoryConfig,
    StoredResponse,
    create_storage,
)
from datacon.backends.redis.backend import RedisBackend
from datacon.backends.redis.keys import Keys
from datacon.backends.redis.store import RedisStore
from datacon.errors import BackendUnavailableError, ConfigError
from tests.servers.redis import PASSWORD
from tests.support import free_port

URL = f"redis://:{PASSWORD}@127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"sentinels": ["127.0.0.1:26379"]}, "redis.sentinel_service", "required with sentinels"),
        ({"sentinel_service": "m"}, "redis.sentinels", "sentinels is not"),
        ({"sentinels": [], "sentinel_service": "m"}, "redis.sentinels", "non-empty"),
        ({"sentinels": ["127.0.0.1"], "sentinel_service": "m"}, "redis.sentinels", r"sentinels\[0\]"),
        ({"sentinels": ["h:0"], "sentinel_service": "m"}, "redis.sentinels", r"sentinels\[0\]"),
        ({"sentinels": ["h:1"], "sentinel_service": "m", "cluster": True}, "redis.sentinels", "not both"),
        ({"cluster": "yes"}, "redis.cluster", "true or false"),
        ({"cluster": True, "wait_replicas": 1}, "redis.cluster", "not supported with cluster"),
        ({"cluster": True, "url": f"redis://:{PASSWORD}@h:7000/2"}, "redis.url", "only database 0"),
        ({"cluster": True, "url": "unix:///run/redis.sock"}, "redis.url", "redis://"),
    ],
)
def test_topology_settings_are_checked(options: dict[str, Any], field: str, message: str) -> None:
    config = RedisConfig(**{"url": URL, **options})
    with pytest.raises(ConfigError, match=message) as info:
        config.validate()
    assert info.value.field == field
    assert PASSWORD not in str(info.value)


def test_topology_settings_from_a_mapping_and_no_secret_in_repr() -> None:
    config = StorageFactoryConfig.from_mapping(
        {
            "backend": "redis",
            "redis": {"url": URL, "sentinels": ["10.0.0.1:26379", "[::1]:26380"], "sentinel_service": "main"},
        }
    )
    assert config.redis is not None
    assert config.redis.sentinels == ["10.0.0.1:26379", "[::1]:26380"]
    config.redis.validate()
    assert PASSWORD not in repr(config)
    assert "sentinel_service='main'" in repr(config)
    assert hash(config.redis) == hash(attrs.evolve(config.redis))  # a list field, still hashable
    cluster = StorageFactoryConfig.from_mapping({"backend": "redis", "redis": {"url": URL, "cluster": True}})
    assert cluster.redis is not None
    assert cluster.redis.cluster is True
    assert PASSWORD not in repr(cluster)


def test_single_server_keys_are_unchanged_and_cluster_keys_share_one_tag() -> None:
    plain, owned = Keys(None), Keys("acme")
    assert plain.conversation("conv_1") == "conversation:conv_1"
    assert owned.links("conv_1") == "acme:conversation:conv_1:items"
    tagged = Keys(None, cluster=True)
    assert tagged.conversation("conv_1") == "{datacon}:conversation:conv_1"
    assert Keys("acme", cluster=True).safety("a:b") == "{acme}:safety:%a%3Ab:responses"


@pytest.mark.redis
@pytest.mark.parametrize("owner", [None, "dcowner"])
def test_every_cluster_key_of_a_schema_is_in_one_slot(redis_cluster_backend: Any, owner: str | None) -> None:
    schema = SchemaConfig(owner=owner) if owner else None
    config = redis_cluster_backend.redis_config(schema)
    storage = create_storage(StorageFactoryConfig(backend="redis", redis=config))
    try:
        conversations = [storage.conversations.create_conversation(NewConversation()) for _ in range(5)]
        for conv in conversations:
            items = storage.items.append_items(conv.id, [NewConversationItem("message", [{"n": n}]) for n in range(3)])
            if conv is not conversations[0]:
                storage.items.link_item(conversations[0].id, items[0].id, datetime.now(UTC))
        first = StoredResponse(safety_identifier="user-1")
        storage.responses.store_response(first)
        storage.responses.store_response(StoredResponse(previous_response_id=first.id, safety_identifier="user-2"))
        with redis_cluster_backend.client() as client:
            keys = list(client.scan_iter(match="*", count=1000))
            slots = {client.keyslot(key) for key in keys}
        tag = "{" + (owner or "datacon") + "}:"
        assert len(keys) > 20
        assert all(key.startswith(tag) for key in keys), keys[:5]
        assert len(slots) == 1
        raw = storage.raw
        store = getattr(raw, "store", None)
        assert isinstance(store, RedisStore)
        assert store.address().startswith("cluster ")
        assert PASSWORD not in store.address()
    finally:
        storage.close()
        redis_cluster_backend.wipe()


@pytest.mark.redis
def test_sentinel_storage_names_the_service_not_the_password(redis_sentinel_backend: Any) -> None:
    storage = create_storage(redis_sentinel_backend.config())
    try:
        conv = storage.conversations.create_conversation(NewConversation(metadata={"k": 1}))
        assert storage.conversations.get_conversation(conv.id) == conv
        raw = storage.raw
        store = getattr(raw, "store", None)
        assert isinstance(store, RedisStore)
        master = redis_sentinel_backend.topology.master()
        assert store.address().endswith(f"(master 127.0.0.1:{master.port})/0")
        assert PASSWORD not in store.address()
        # The key layout is the single server's (Sentinel only finds the server).
        with master.client() as client:
            assert client.exists(f"conversation:{conv.id}") == 1
    finally:
        storage.close()
        redis_sentinel_backend.wipe()


@pytest.mark.redis
def test_sentinel_with_wait_replicas_confirms_each_write_on_the_replica(redis_sentinel_backend: Any) -> None:
    config = redis_sentinel_backend.redis_config(wait_replicas=1, wait_timeout_ms=5000)
    storage = create_storage(StorageFactoryConfig(backend="redis", redis=config))
    try:
        conv = storage.conversations.create_conversation(NewConversation())
        items = storage.items.append_items(conv.id, [NewConversationItem("message", [{"n": 1}])])
        # WAIT returned 1: the replica has both writes now.
        replica = next(
            n for n in redis_sentinel_backend.topology.data if n is not redis_sentinel_backend.topology.master()
        )
        with replica.client() as client:
            assert client.exists(f"conversation:{conv.id}", f"item:{items[0].id}") == 2
    finally:
        storage.close()
        redis_sentinel_backend.wipe()


@pytest.mark.redis
def test_cluster_layout_status_and_export(redis_cluster_backend: Any) -> None:
    storage = create_storage(redis_cluster_backend.config())
    try:
        conv = storage.conversations.create_conversation(NewConversation())
        storage.items.append_items(conv.id, [NewConversationItem("message", [{"n": n}]) for n in range(3)])
        raw = storage.raw
        assert isinstance(raw, RedisBackend)
        status = raw.schema_status()
        assert status.current == status.latest
        assert [c.id for c in raw.iter_conversations(None, 10)] == [conv.id]
        assert raw.count("link") == 3
        stats = storage.pool_stats()  # summed over the nodes' pools
        assert stats["size"] == 16
        assert stats["open"] >= 1
        durable, detail = raw.store.durability()
        assert durable is False
        assert "appendonly no" in detail
    finally:
        storage.close()
        redis_cluster_backend.wipe()


def test_unreachable_cluster_and_sentinels_are_backend_unavailable_without_the_password() -> None:
    dead = free_port()
    url = f"redis://:{PASSWORD}@127.0.0.1:{dead}/0"
    options: dict[str, Any] = {"connect_timeout_secs": 0.5, "socket_timeout_secs": 0.5}
    # A cluster client learns the slot map when it is made: the storage cannot be created.
    with pytest.raises(BackendUnavailableError) as made:
        create_storage(StorageFactoryConfig(backend="redis", redis=RedisConfig(url=url, cluster=True, **options)))
    assert PASSWORD not in str(made.value)
    # Sentinel's pool is lazy (like one server's): the first call reports it.
    sentinel = RedisConfig(url=url, sentinels=[f"127.0.0.1:{dead}"], sentinel_service="svc", **options)
    with (
        create_storage(StorageFactoryConfig(backend="redis", redis=sentinel)) as storage,
        pytest.raises(BackendUnavailableError) as called,
    ):
        storage.conversations.get_conversation("conv_x")
    assert PASSWORD not in str(called.value)


@pytest.mark.redis
def test_cluster_migrate_builds_the_retention_indexes_then_prune_and_erase_run(redis_cluster_backend: Any) -> None:
    storage = create_storage(redis_cluster_backend.config())
    try:
        old = storage.conversations.create_conversation(NewConversation()).id
        kept = storage.conversations.create_conversation(NewConversation()).id
        items = storage.items.append_items(old, [NewConversationItem("message", [{"n": n}]) for n in range(2)])
        storage.items.link_item(kept, items[0].id, datetime.now(UTC))
        storage.responses.store_response(StoredResponse(conversation_id=old, safety_identifier="u"))
        storage.responses.store_response(StoredResponse(conversation_id=kept, safety_identifier="v"))
    finally:
        storage.close()
    tag = "{datacon}:"
    indexes = ("items:created", "responses:created", "item_links:*", "conversation_responses:*", "datacon:*")
    with redis_cluster_backend.client() as client:  # as a version before layouts 2 and 3 left it
        for pattern in (*indexes, "item_packed:*", "conversation:*:packed"):
            for key in list(client.scan_iter(match=tag + pattern)):
                client.delete(key)
    storage = create_storage(redis_cluster_backend.config())
    try:
        raw = storage.raw
        assert isinstance(raw, RedisBackend)
        assert raw.schema_status().current == 0
        assert raw.apply_migrations() == [3]
        assert raw.schema_status().current == 3
        with redis_cluster_backend.client() as client:  # the packed copies are back (one slot)
            assert client.zcard(tag + f"conversation:{old}:packed") == 2
            assert client.exists(*(tag + f"item_packed:{item.id}" for item in items)) == 2
        assert storage.items.list_items(old, ListParams(10)) == items
        assert storage.items.list_items(old, ListParams(50, SortOrder.DESC)) == items[::-1]  # long: still the script
        assert storage.erase_identifier("u") == PruneReport(responses=1, conversations=1, links=2, items=1)
        assert storage.items.get_item(items[0].id) is not None  # linked to the kept conversation
        assert storage.prune(timedelta(0)) == PruneReport(responses=1, conversations=1, links=1, items=1)
        with redis_cluster_backend.client() as client:
            assert list(client.scan_iter(match="*")) == [tag + "datacon:layout"]
    finally:
        storage.close()
        redis_cluster_backend.wipe()
