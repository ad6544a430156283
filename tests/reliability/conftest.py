"""Fixtures of the reliability suite: each backend (memory and every server plugin that exists)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import pytest

from datacon import Storage, create_storage
from tests.conftest import SERVER_BACKENDS
from tests.reliability import figures
from tests.support import BackendUnderTest

# Oracle is left out: its server is external (DATACON_TEST_ORACLE_DSN) and far too slow to
# start for a suite that must stay within CI's time.
RELIABILITY_SERVERS = [name for name in ("sqlite", "postgres", "redis") if name in SERVER_BACKENDS]
ALL_BACKENDS = ["memory", *RELIABILITY_SERVERS]


def backend_params(names: list[str]) -> list[object]:
    """``pytest.param``s for ``names``, each carrying its backend's marker (memory has none)."""
    return [
        pytest.param(name, id=name, marks=[] if name == "memory" else [getattr(pytest.mark, name)]) for name in names
    ]


@pytest.fixture(scope="module", params=backend_params(ALL_BACKENDS))
def rel_backend(request: pytest.FixtureRequest) -> BackendUnderTest:
    """A backend under test (default schema); the server plugin starts its server once per session."""
    backend: BackendUnderTest = request.getfixturevalue(f"{request.param}_backend")
    return backend


def backend_password(backend: BackendUnderTest) -> str | None:
    """The password in ``backend``'s connection URL, if any (no error may ever show it)."""
    section = backend.config().section()
    url = getattr(section, "db_url", None) or getattr(section, "url", None)
    if not isinstance(url, str):
        return None
    password = urlsplit(url).password
    return unquote(password) if password else None


@pytest.fixture(scope="module")
def rel_storage(rel_backend: BackendUnderTest) -> Iterator[Storage]:
    """One open storage per backend and module (tests wipe it before use, never rebuild it)."""
    storage = create_storage(rel_backend.config())
    try:
        yield storage
    finally:
        storage.close()
        rel_backend.wipe()


@pytest.fixture(scope="module", params=backend_params(RELIABILITY_SERVERS))
def server_backend(request: pytest.FixtureRequest) -> BackendUnderTest:
    """A server backend (not memory): the subject of differential tests against the memory model."""
    backend: BackendUnderTest = request.getfixturevalue(f"{request.param}_backend")
    return backend


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the suite measured (the figures its report quotes)."""
    if figures.FIGURES:
        terminalreporter.section("reliability figures")
        for name, text in sorted(figures.FIGURES.items()):
            terminalreporter.write_line(f"{name}: {text}")
