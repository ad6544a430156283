"""Which backends the reliability suite runs on, and the password each one's URL carries."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.support import BackendUnderTest

_PLUGINS = {path.stem for path in (Path(__file__).parent.parent / "servers").glob("*.py")}
# Oracle is left out: its server is external (DATACON_TEST_ORACLE_DSN) and far too slow for a
# suite that must stay within CI's time.
RELIABILITY_SERVERS = [name for name in ("sqlite", "postgres", "redis") if name in _PLUGINS]
ALL_BACKENDS = ["memory", *RELIABILITY_SERVERS]


def backend_params(names: Sequence[str]) -> list[object]:
    """``pytest.param``s for ``names``, each carrying its backend's marker (memory has none)."""
    return [
        pytest.param(name, id=name, marks=[] if name == "memory" else [getattr(pytest.mark, name)]) for name in names
    ]


def backend_password(backend: BackendUnderTest) -> str | None:
    """The password in ``backend``'s connection URL, if any (no error may ever show it)."""
    section = backend.config().section()
    url = getattr(section, "db_url", None) or getattr(section, "url", None)
    if not isinstance(url, str):
        return None
    password = urlsplit(url).password
    return unquote(password) if password else None
