"""The frameworks are extras: never imported by datacon itself, never core requirements."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata


def test_datacon_imports_no_framework() -> None:
    code = (
        "import sys, datacon, datacon.aio, datacon.integrations, datacon.integrations._store\n"
        "print(sorted(m for m in ('agents', 'langchain_core', 'openai') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_frameworks_are_extras_only() -> None:
    requires = metadata.requires("datacon-store") or []
    core = [r for r in requires if "extra ==" not in r]
    assert not [r for r in core if r.startswith(("openai-agents", "langchain-core"))]
    assert any(r.startswith("openai-agents") and 'extra == "openai-agents"' in r for r in requires)
    assert any(r.startswith("langchain-core") and 'extra == "langchain"' in r for r in requires)
