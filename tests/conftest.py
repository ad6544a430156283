"""Fixtures of the conformance suite: every backend, default and renamed schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from datacon import SchemaConfig, StorageFactoryConfig, StorageHook, create_storage
from tests.aio_adapter import portal_storage
from tests.support import RENAMED_SCHEMA, BackendUnderTest, Case

SERVER_BACKENDS = sorted(
    path.stem for path in (Path(__file__).parent / "servers").glob("*.py") if not path.stem.startswith("_")
)


class MemoryBackend:
    """The memory backend: every config makes a fresh, empty store."""

    name = "memory"

    def config(self, schema: SchemaConfig | None = None, hook: StorageHook | None = None) -> StorageFactoryConfig:
        return StorageFactoryConfig(backend="memory", hook=hook)

    def wipe(self, schema: SchemaConfig | None = None) -> None:
        return None


@pytest.fixture(scope="session")
def memory_backend() -> BackendUnderTest:
    return MemoryBackend()


# Every backend runs with the default schema; every SQL/Redis backend again with RENAMED_SCHEMA.
STORE_PARAMS = [pytest.param(("memory", "default"), id="memory")]
for _name in SERVER_BACKENDS:
    _marks = [getattr(pytest.mark, _name)]
    STORE_PARAMS.append(pytest.param((_name, "default"), id=_name, marks=_marks))
    STORE_PARAMS.append(pytest.param((_name, "renamed"), id=f"{_name}-renamed", marks=_marks))
# PostgreSQL as deployed in production, once more in all (one schema each, to keep the run
# short): through a real PgBouncer in transaction pooling mode (tests/servers/_pgbouncer.py),
# with a streaming hot standby serving the reads (read_urls; tests/servers/_pg_replication.py),
# and as a role that may only read and write rows (create_tables off; the renamed schema, so
# its extra and skipped columns are in the DDL the DBA applied).
if "postgres" in SERVER_BACKENDS:
    STORE_PARAMS.append(pytest.param(("pgbouncer", "default"), id="postgres-pgbouncer", marks=[pytest.mark.postgres]))
    # With a streaming standby as read replica (read_urls): reads go to the standby.
    STORE_PARAMS.append(
        pytest.param(("postgres_replica", "default"), id="postgres-replica", marks=[pytest.mark.postgres])
    )
    STORE_PARAMS.append(
        pytest.param(("postgres_dml", "renamed"), id="postgres-dml-only-renamed", marks=[pytest.mark.postgres])
    )


# Redis as deployed beyond one server (issue 19), each topology started once per run and
# shared: a 6-node Redis Cluster (both schemas: keys under the tags {datacon} and {dcowner}),
# and a master + replica found through three sentinels (default schema).
if "redis" in SERVER_BACKENDS:
    STORE_PARAMS.append(pytest.param(("redis_cluster", "default"), id="redis-cluster", marks=[pytest.mark.redis]))
    STORE_PARAMS.append(
        pytest.param(("redis_cluster", "renamed"), id="redis-cluster-renamed", marks=[pytest.mark.redis])
    )
    STORE_PARAMS.append(pytest.param(("redis_sentinel", "default"), id="redis-sentinel", marks=[pytest.mark.redis]))


@pytest.fixture(params=STORE_PARAMS)
def backend_variant(request: pytest.FixtureRequest) -> tuple[BackendUnderTest, SchemaConfig | None, str]:
    name, variant = request.param
    backend: BackendUnderTest = request.getfixturevalue(f"{name}_backend")
    schema = RENAMED_SCHEMA if variant == "renamed" else None
    return backend, schema, variant


DEFAULT_SCHEMA_PARAMS = [p for p in STORE_PARAMS if cast("tuple[str, str]", p.values[0])[1] == "default"]


@pytest.fixture(params=DEFAULT_SCHEMA_PARAMS)
def backend_default_variant(request: pytest.FixtureRequest) -> BackendUnderTest:
    """Each backend variant with the default schema, for tests that bring a schema of their own."""
    name, _ = request.param
    backend: BackendUnderTest = request.getfixturevalue(f"{name}_backend")
    return backend


@pytest.fixture(params=["sync", "asyncio", "trio"])
def api(request: pytest.FixtureRequest) -> str:
    """Which API the conformance suite drives: the sync core, or the async facade under asyncio or trio."""
    return str(request.param)


@pytest.fixture
def case(backend_variant: tuple[BackendUnderTest, SchemaConfig | None, str], api: str) -> Iterator[Case]:
    backend, schema, variant = backend_variant
    storage = create_storage(backend.config(schema=schema))
    try:
        if api == "sync":
            yield Case(backend.name, variant, storage, schema)
        else:
            with portal_storage(storage, api) as facade:
                yield Case(backend.name, variant, facade, schema)
    finally:
        storage.close()
        backend.wipe(schema)
