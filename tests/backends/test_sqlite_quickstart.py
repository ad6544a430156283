"""examples/quickstart.py: run twice in a fresh directory, the second run shows the first's data."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import repo_root

pytestmark = pytest.mark.sqlite


def run_quickstart(cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(repo_root())}
    result = subprocess.run(
        [sys.executable, str(repo_root() / "examples" / "quickstart.py")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_quickstart_persists_between_runs(tmp_path: Path) -> None:
    first = run_quickstart(tmp_path)
    assert first.startswith("run 1: found 0 earlier conversation(s)\n")
    assert (tmp_path / "datacon-demo.db").is_file()
    stored = re.search(r"^stored (conv_[0-9a-f]{50}):$", first, re.MULTILINE)
    assert stored is not None
    assert "  assistant: A storage layer." in first

    second = run_quickstart(tmp_path)
    assert second.startswith("run 2: found 1 earlier conversation(s)\n")
    # The second run reads back the first run's conversation, items and response chain.
    assert f"  {stored.group(1)}: 6 items, a chain of 3 responses:\n" in second
    assert "    'What is datacon?' -> 'A storage layer.'\n" in second
    assert run_quickstart(tmp_path).startswith("run 3: found 2 earlier conversation(s)\n")
