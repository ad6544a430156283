"""Fixtures of the reliability suite: each backend (memory and every server plugin that exists)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datacon import Storage, create_storage
from tests.reliability import figures
from tests.reliability._backends import ALL_BACKENDS, backend_params
from tests.support import BackendUnderTest


@pytest.fixture(scope="module", params=backend_params(ALL_BACKENDS))
def rel_backend(request: pytest.FixtureRequest) -> BackendUnderTest:
    """A backend under test (default schema); the server plugin starts its server once per session."""
    backend: BackendUnderTest = request.getfixturevalue(f"{request.param}_backend")
    return backend


@pytest.fixture(scope="module")
def rel_storage(rel_backend: BackendUnderTest) -> Iterator[Storage]:
    """One open storage per backend and module, wiped when the module is done.

    Tests either write under ids unique to them, or wipe the backend themselves (the
    differential test, between examples).
    """
    storage = create_storage(rel_backend.config())
    try:
        yield storage
    finally:
        storage.close()
        rel_backend.wipe()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the suite measured (the figures its report quotes)."""
    if figures.FIGURES:
        terminalreporter.section("reliability figures")
        for name, text in sorted(figures.FIGURES.items()):
            terminalreporter.write_line(f"{name}: {text}")
