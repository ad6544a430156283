"""Open each backend as the tests do (real servers started on the spot), with its baseline."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from benchmarks.harness import Settings
from benchmarks.workloads import Target
from datacon.factory import wrap
from datacon.schema import SchemaConfig, TableConfig

__all__ = ["PEERS_SCHEMA", "open_target"]

#: The peers section's datacon tables (keys: an owner prefix on Redis), beside the ones the
#: other sections fill, in the same database: empty when the peers start, as theirs are.
PEERS_SCHEMA = SchemaConfig(
    conversations=TableConfig(table="peers_conversations"),
    conversation_items=TableConfig(table="peers_items"),
    conversation_item_links=TableConfig(table="peers_links"),
    responses=TableConfig(table="peers_responses"),
)

T = TypeVar("T")


def _no_skip(find: Callable[[], T]) -> T:
    """Call a tests/servers helper outside pytest: its "skip" (no server binary) becomes an error."""
    import pytest

    try:
        return find()
    except pytest.skip.Exception as exc:
        raise RuntimeError(str(exc.msg)) from None


def server_cpu() -> int | None:
    """The CPU a PostgreSQL server the harness starts is pinned to: the last one (``None`` on
    one CPU, or where affinity cannot be set)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[-1] if len(cpus) > 1 else None


def pin_server(postmaster: int, cpu: int) -> None:
    """Pin a PostgreSQL server to ``cpu``: its postmaster and the processes it has started
    (the backends it forks later inherit the postmaster's affinity).

    Each connection is served by a process of its own, and the overhead rows compare datacon's
    connection with the baseline's, one server process each. Left to the scheduler on two
    cores, each process settles beside the client's thread or on the other core, and the two
    sides then wake up differently: on the same code, ``store_response`` read 0.55x to 0.96x
    against psycopg over eight runs, 0.89x to 0.94x pinned (docs/performance.md, fifth session)."""
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:  # the parent's pid
                pids.append(int(entry.name))
    for pid in pids:
        os.sched_setaffinity(pid, {cpu})


@contextmanager
def _memory(settings: Settings) -> Iterator[Target]:
    from benchmarks.baselines.memory import MemoryBaseline
    from datacon.backends import memory

    raw = memory.MemoryBackend()
    # The baseline calls the unwrapped backend; datacon reads the same state through the guard.
    storage = wrap(raw, None)
    try:
        # No driver here: the ratio is the cost of the guard (checks, hooks), without a target.
        yield Target("memory", storage, MemoryBaseline(raw), overhead_target=None)
    finally:
        storage.close()


@contextmanager
def _redis(settings: Settings) -> Iterator[Target]:
    from benchmarks.baselines.redis import RedisBaseline
    from datacon import RedisConfig, StorageFactoryConfig, create_storage
    from tests.servers.redis import RedisServer, redis_executable

    with tempfile.TemporaryDirectory(prefix="datacon-bench-redis-") as workdir:
        url = os.environ.get("DATACON_TEST_REDIS_URL")
        server = None
        if not url:
            server = RedisServer(_no_skip(redis_executable), Path(workdir))
            server.start()
            url = server.url
        try:
            storage = create_storage(StorageFactoryConfig(backend="redis", redis=RedisConfig(url=url)))
            baseline = RedisBaseline(url)
            peers = RedisConfig(url=url, schema=SchemaConfig(owner="peers"))
            try:
                yield Target(
                    "redis",
                    storage,
                    baseline,
                    server={"url": url},
                    peers_storage=lambda: create_storage(StorageFactoryConfig(backend="redis", redis=peers)),
                )
            finally:
                baseline.close()
                storage.close()
        finally:
            if server is not None:
                server.stop()


@contextmanager
def _sqlite(settings: Settings) -> Iterator[Target]:
    from benchmarks.baselines.sqlite import SqliteBaseline
    from datacon import create_storage
    from tests.servers.sqlite import SqliteBackend

    with tempfile.TemporaryDirectory(prefix="datacon-bench-sqlite-") as workdir:
        path = Path(workdir) / "datacon-bench.db"
        storage = create_storage(SqliteBackend(path).config())
        baseline = SqliteBaseline(str(path))
        try:
            yield Target(
                "sqlite",
                storage,
                baseline,
                chain_target=10,
                server={"directory": workdir},
                baseline_drift=baseline.drift(),
                peers_storage=lambda: create_storage(SqliteBackend(path).config(PEERS_SCHEMA)),
            )
        finally:
            baseline.close()
            storage.close()


@contextmanager
def _postgres(settings: Settings) -> Iterator[Target]:
    from benchmarks.baselines.postgres import PostgresBaseline
    from datacon import create_storage
    from tests.servers.postgres import PostgresBackend, PostgresServer, postgres_bindir

    server = None
    url = os.environ.get("DATACON_TEST_POSTGRES_URL")
    try:
        if not url:
            server = PostgresServer(_no_skip(postgres_bindir))
            server.start()
            cpu = server_cpu()
            if cpu is not None:
                pin_server(int((server.data / "postmaster.pid").read_text().split()[0]), cpu)
            url = server.url("postgres")
        admin = PostgresBackend(url)
        database = admin.create_database()  # a fresh database, dropped afterwards
        try:
            backend = PostgresBackend(database)
            storage = create_storage(backend.config())
            baseline = PostgresBaseline(database)
            asyncpg_url = database.replace("postgresql://", "postgresql+asyncpg://", 1)
            try:
                yield Target(
                    "postgres",
                    storage,
                    baseline,
                    chain_target=10,
                    server={"dsn": database, "sqlalchemy_asyncpg_url": asyncpg_url},
                    baseline_drift=baseline.drift(),
                    peers_storage=lambda: create_storage(backend.config(PEERS_SCHEMA)),
                )
            finally:
                baseline.close()
                storage.close()
        finally:
            admin.drop_database(database)
    finally:
        if server is not None:
            server.stop()


@contextmanager
def open_target(name: str, settings: Settings) -> Iterator[Target]:
    """The backend ``name`` with its server running, torn down on exit."""
    opener = {"memory": _memory, "sqlite": _sqlite, "postgres": _postgres, "redis": _redis}.get(name)
    if opener is None:
        raise NotImplementedError(f"the {name} backend is not wired into the benchmarks yet")
    with opener(settings) as target:
        yield target
