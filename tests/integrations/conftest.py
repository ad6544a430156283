"""Fixtures of the adapter tests: one open storage per backend (memory, SQLite, PostgreSQL, Redis)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datacon import Storage, create_storage
from tests.conftest import SERVER_BACKENDS
from tests.support import BackendUnderTest

# The backends every adapter is tested on (Oracle too where its server is configured), and
# Redis Cluster (where pop_item's scan for other links runs on every master).
ADAPTER_BACKENDS = [pytest.param("memory", id="memory")] + [
    pytest.param(name, id=name, marks=[getattr(pytest.mark, name)]) for name in SERVER_BACKENDS
]
if "redis" in SERVER_BACKENDS:
    ADAPTER_BACKENDS.append(pytest.param("redis_cluster", id="redis-cluster", marks=[pytest.mark.redis]))


@pytest.fixture(params=ADAPTER_BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[BackendUnderTest]:
    """The backend under test; what a test stored there is wiped afterwards."""
    found: BackendUnderTest = request.getfixturevalue(f"{request.param}_backend")
    try:
        yield found
    finally:
        found.wipe()


@pytest.fixture
def storage(backend: BackendUnderTest) -> Iterator[Storage]:
    """A fresh storage on the backend (closed before the backend fixture wipes its records)."""
    with create_storage(backend.config()) as opened:
        yield opened
