"""The application's own ``redis.Redis`` (``RedisConfig(client=...)``): used, never closed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from datacon import NewConversation, RedisConfig, StorageFactoryConfig, create_storage
from datacon.errors import ConfigError
from tests.servers.redis import PASSWORD, RedisBackend

pytestmark = pytest.mark.redis


def open_redis(config: RedisConfig) -> Any:
    return create_storage(StorageFactoryConfig(backend="redis", redis=config))


@pytest.fixture
def app_client(redis_backend: RedisBackend) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_backend.url, decode_responses=True, client_name="dc_app", max_connections=4)
    try:
        yield client
    finally:
        client.close()
        redis_backend.wipe()


def app_connections(redis_backend: RedisBackend) -> int:
    with redis_backend.client() as admin:
        return sum(1 for entry in admin.client_list() if entry.get("name") == "dc_app")


def test_an_applications_client_is_used_and_never_closed(redis_backend: RedisBackend, app_client: redis.Redis) -> None:
    config = RedisConfig(client=app_client)
    assert "<Redis>" in repr(config)
    assert PASSWORD not in repr(config)
    with open_redis(config) as storage:
        assert storage.max_concurrency == 4  # the client's pool size (at most pool_max)
        conversation = storage.conversations.create_conversation(NewConversation(metadata={"app": "client"}))
        assert storage.conversations.get_conversation(conversation.id) == conversation
        assert app_connections(redis_backend) >= 1
    assert app_connections(redis_backend) >= 1  # its connections are still open
    assert app_client.exists(f"conversation:{conversation.id}") == 1


def test_a_given_client_is_checked(redis_backend: RedisBackend) -> None:
    with pytest.raises(ConfigError, match=r"client must be a redis\.Redis") as caught:
        RedisConfig(client=object()).validate()
    assert caught.value.field == "redis.client"
    raw = redis.Redis.from_url(redis_backend.url)  # bytes replies: datacon needs decoded ones
    with pytest.raises(ConfigError, match="decode_responses=True"):
        open_redis(RedisConfig(client=raw))
    decoded = redis.Redis.from_url(redis_backend.url, decode_responses=True)
    with pytest.raises(ConfigError, match="give url or client, not both"):
        RedisConfig(redis_backend.url, client=decoded).validate()
    config = StorageFactoryConfig.from_mapping({"backend": "redis", "redis": {"client": "my-client"}})
    with pytest.raises(ConfigError, match="got str"):
        create_storage(config)
