"""Redis test server: a throwaway ``redis-server`` on 127.0.0.1 with a password.

Set ``DATACON_TEST_REDIS_URL`` to use an existing server instead (its database is
flushed after every test). Locally a missing ``redis-server`` skips; in CI it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from datacon import RedisConfig, SchemaConfig, StorageFactoryConfig, StorageHook
from tests.support import free_port, server_missing

PASSWORD = "dc-redis-s3cret"
OWNER = "dcowner"


class RedisServer:
    """A ``redis-server`` child process (no persistence) listening on 127.0.0.1."""

    def __init__(
        self, executable: str, workdir: Path, password: str | None = PASSWORD, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.executable = executable
        self.workdir = workdir
        self.password = password
        self.extra_args = extra_args  # appended last, so they override the defaults (e.g. AOF on)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0, port: int | None = None) -> None:
        """Start on ``port`` (a free one if ``None``) and wait until it answers ``PING``."""
        import redis

        for _attempt in range(3):  # a free port can be taken before the server binds it
            self.port = port or free_port()
            args = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1"]
            args += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
            if self.password:
                args += ["--requirepass", self.password]
            args += self.extra_args
            log = open(self.workdir / f"redis-{self.port}.log", "wb")  # noqa: SIM115 - kept for the process's lifetime
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    with redis.Redis.from_url(self.url, socket_timeout=1) as client:
                        client.ping()
                    return
                except redis.RedisError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"redis-server did not start (see logs in {self.workdir})")

    def stop(self) -> None:
        """Stop the server and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class RedisBackend:
    """The ``redis`` backend under test, bound to one server URL."""

    name = "redis"

    def __init__(self, url: str) -> None:
        self.url = url

    def redis_config(self, schema: SchemaConfig | None = None, **options: Any) -> RedisConfig:
        """A ``RedisConfig`` for this server; a given schema gets an ``owner`` so keys are prefixed."""
        if schema is not None and schema.owner is None:
            schema = attrs.evolve(schema, owner=OWNER)
        return RedisConfig(url=self.url, schema=schema, **options)

    def config(self, schema: SchemaConfig | None = None, hook: StorageHook | None = None) -> StorageFactoryConfig:
        return StorageFactoryConfig(backend="redis", redis=self.redis_config(schema), hook=hook)

    def client(self) -> Any:
        """A plain redis-py client on the same database, for inspecting keys in tests."""
        import redis

        return redis.Redis.from_url(self.url, decode_responses=True)

    def wipe(self, schema: SchemaConfig | None = None) -> None:
        with self.client() as client:
            client.flushdb()


def redis_executable() -> str:
    """The ``redis-server`` binary, or a skip (locally) / failure (CI) when there is none."""
    found = shutil.which("redis-server")
    if found is None:
        server_missing(
            "redis-server is not installed (apt-get install redis-server) and DATACON_TEST_REDIS_URL is unset"
        )
    return found


@pytest.fixture(scope="session")
def redis_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisBackend]:
    url = os.environ.get("DATACON_TEST_REDIS_URL")
    if url:
        yield RedisBackend(url)
        return
    server = RedisServer(redis_executable(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield RedisBackend(server.url)
    finally:
        server.stop()


# The topologies of issue 19 (tests/servers/_redis_topologies.py), each started once per run.


class RedisClusterBackend(RedisBackend):
    """The ``redis`` backend on the test Redis Cluster (``cluster=True``)."""

    def __init__(self, topology: Any) -> None:
        super().__init__(topology.url)
        self.topology = topology

    def redis_config(self, schema: SchemaConfig | None = None, **options: Any) -> RedisConfig:
        return super().redis_config(schema, cluster=True, **options)

    def client(self) -> Any:
        import redis

        return redis.RedisCluster.from_url(self.url, decode_responses=True)

    def wipe(self, schema: SchemaConfig | None = None) -> None:
        self.topology.flush()


class RedisSentinelBackend(RedisBackend):
    """The ``redis`` backend on the test master + replica, found through three sentinels."""

    def __init__(self, topology: Any) -> None:
        super().__init__(topology.url)
        self.topology = topology

    def redis_config(self, schema: SchemaConfig | None = None, **options: Any) -> RedisConfig:
        from tests.servers._redis_topologies import SERVICE

        sentinels = list(self.topology.sentinel_addresses)
        return super().redis_config(schema, sentinels=sentinels, sentinel_service=SERVICE, **options)

    def client(self) -> Any:
        return self.topology.master().client()

    def wipe(self, schema: SchemaConfig | None = None) -> None:
        self.topology.flush()


@pytest.fixture(scope="session")
def redis_cluster_topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.servers._redis_topologies import RedisClusterTopology, redis_cli_executable

    topology = RedisClusterTopology(redis_executable(), redis_cli_executable(), tmp_path_factory.mktemp("rcluster"))
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()


@pytest.fixture(scope="session")
def redis_sentinel_topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.servers._redis_topologies import RedisSentinelTopology

    topology = RedisSentinelTopology(redis_executable(), tmp_path_factory.mktemp("rsentinel"))
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()


@pytest.fixture(scope="session")
def redis_cluster_backend(redis_cluster_topology: Any) -> RedisClusterBackend:
    return RedisClusterBackend(redis_cluster_topology)


@pytest.fixture(scope="session")
def redis_sentinel_backend(redis_sentinel_topology: Any) -> RedisSentinelBackend:
    return RedisSentinelBackend(redis_sentinel_topology)
