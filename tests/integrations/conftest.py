"""Fixtures of the adapter tests: one open storage per backend (memory, SQLite, PostgreSQL, Redis)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datacon import Storage, create_storage
from tests.conftest import SERVER_BACKENDS
from tests.support import BackendUnderTest

# The backends every adapter is tested on (Oracle too where its server is configured).
ADAPTER_BACKENDS = [pytest.param("memory", id="memory")] + [
    pytest.param(name, id=name, marks=[getattr(pytest.mark, name)]) for name in SERVER_BACKENDS
]


@pytest.fixture(params=ADAPTER_BACKENDS)
def backend(request: pytest.FixtureRequest) -> BackendUnderTest:
    found: BackendUnderTest = request.getfixturevalue(f"{request.param}_backend")
    return found


@pytest.fixture
def storage(backend: BackendUnderTest) -> Iterator[Storage]:
    """A fresh storage on the backend (its records wiped afterwards)."""
    opened = create_storage(backend.config())
    try:
        yield opened
    finally:
        opened.close()
        backend.wipe()
