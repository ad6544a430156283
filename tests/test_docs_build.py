"""Builds the documentation in strict mode (warnings are errors), as ``tox -e docs`` does."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import IN_CI

ROOT = Path(__file__).resolve().parent.parent
#: The exact command of tox.ini's [testenv:docs] (output directory aside).
SPHINX_ARGS = ["-n", "-W", "--keep-going", "-b", "html"]


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path: Path) -> None:
    missing = [name for name in ("sphinx", "myst_parser") if importlib.util.find_spec(name) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed (pip install -e '.[docs]')"
        if IN_CI:
            pytest.fail(f"{reason} (CI is set: the docs build must run)", pytrace=False)
        pytest.skip(reason)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", *SPHINX_ARGS, "-E", "-q", str(ROOT / "docs"), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout}\n{result.stderr}"
    assert "WARNING" not in result.stderr, result.stderr
    for page in ("index", "api", "quickstart", "errors"):
        assert (tmp_path / "html" / f"{page}.html").is_file(), page
    # Autodoc really ran: the API page documents the public names.
    api = (tmp_path / "html" / "api.html").read_text(encoding="utf-8")
    for name in ("datacon.factory.create_storage", "datacon.errors.ConflictError", "datacon.aio.AsyncStorage"):
        assert f'id="{name}"' in api, name
    assert elapsed < 120, f"the docs build took {elapsed:.0f} s"
