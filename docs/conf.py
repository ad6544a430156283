"""Sphinx configuration of the datacon documentation (Markdown pages via MyST, API via autodoc)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from datacon import __version__  # noqa: E402 - needs the repository on sys.path first

project = "datacon"
author = "the datacon authors"
copyright = "2026, the datacon authors"
version = release = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "examples"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"datacon {version}"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Annotations imported only for type checking (a cycle otherwise), resolved for the docs.
autodoc_type_aliases = {"Backend": "datacon.backends.base.Backend"}

# Strict mode (-n) reports every unresolved reference. With no intersphinx (the build must work
# offline), names from the standard library and from datacon's dependencies cannot resolve:
# they are listed here, and nothing else is.
nitpick_ignore_regex = [
    (r"py:.*", r"(collections\.abc|datetime|enum|os|typing|types|pathlib|contextlib|contextvars)\..*"),
    (r"py:.*", r"anyio\..*"),
    # The frameworks of datacon.integrations (extras).
    (r"py:.*", r"(agents|langchain_core|openai|pydantic)\..*"),
    # Private helpers that appear in signatures (the async facade's thread runner).
    (r"py:class", r"datacon(\.\w+)*\._\w+"),
    # Type variables of generic signatures (datacon.telemetry.Observer.observe).
    (r"py:class", r"datacon\.telemetry\.[AT]"),
]


def _resolve_public_name(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve ``datacon.X`` (the public re-export) to where autodoc documented it (``datacon.mod.X``)."""
    if node.get("refdomain") != "py":
        return None
    target: str = node.get("reftarget", "")
    if "." not in target:
        target = f"datacon.{target}"  # an unqualified name in a docstring: try the public one
    if not target.startswith("datacon."):
        return None
    module_name, _, name = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        return None
    canonical = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', name)}"
    if canonical == node.get("reftarget"):
        return None
    node["reftarget"] = canonical
    domain = env.get_domain("py")
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], canonical, node, contnode)


def setup(app: Any) -> dict[str, Any]:
    app.connect("missing-reference", _resolve_public_name)
    return {"parallel_read_safe": True}
