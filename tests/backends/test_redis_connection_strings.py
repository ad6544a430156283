"""Redis connection strings opened against real servers: ``redis://`` and ``unix://``
(``rediss://`` is tests/reliability/test_tls.py's); passwords never shown."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from datacon import NewConversation, StorageFactoryConfig, create_storage
from datacon.errors import BackendUnavailableError, ConfigError
from tests.servers.redis import PASSWORD, redis_executable

pytestmark = pytest.mark.redis


def round_trip(url: str) -> None:
    with create_storage(url) as storage:
        assert storage.backend == "redis"
        conversation = storage.conversations.create_conversation(NewConversation(metadata={"form": "ok"}))
        assert storage.conversations.get_conversation(conversation.id) == conversation
        assert storage.conversations.delete_conversation(conversation.id)


@pytest.fixture(scope="module")
def unix_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server listening on a unix socket only (no TCP port), with a password."""
    import redis

    workdir = tmp_path_factory.mktemp("redis-unix")
    path = workdir / "redis.sock"
    args = [redis_executable(), "--port", "0", "--unixsocket", str(path), "--unixsocketperm", "700"]
    args += ["--save", "", "--appendonly", "no", "--dir", str(workdir), "--requirepass", PASSWORD]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with redis.Redis(unix_socket_path=str(path), password=PASSWORD) as client:
                    client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield str(path)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_redis_url(redis_backend: Any) -> None:
    round_trip(redis_backend.url)


def test_unix_socket(unix_socket: str) -> None:
    url = f"unix://:{PASSWORD}@{unix_socket}?db=3"
    round_trip(url)
    assert PASSWORD not in repr(StorageFactoryConfig.from_url(url))


def test_unix_socket_refused_login_never_shows_the_password(unix_socket: str) -> None:
    wrong = f"wrong-{PASSWORD}"
    with pytest.raises(BackendUnavailableError) as caught, create_storage(f"unix://:{wrong}@{unix_socket}") as storage:
        storage.conversations.get_conversation("conv_absent")
    assert wrong not in str(caught.value)


def test_unix_url_needs_a_path() -> None:
    with pytest.raises(ConfigError, match="must name the socket's path"):
        create_storage("unix://")
