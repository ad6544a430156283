"""Helpers of the secrets tests: collect every text a user could see, and look for a password in it."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from datacon.errors import DataconError


class Exposure:
    """Everything shown to a user: reprs, ``str()``s, errors (with their chained causes)."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []
        self.errors: list[DataconError] = []

    def show(self, label: str, value: object) -> None:
        self.texts.append((f"repr({label})", repr(value)))
        self.texts.append((f"str({label})", str(value)))

    def error(self, label: str, call: Callable[[], object], expected: type[DataconError]) -> DataconError:
        """Run ``call``, which must raise ``expected``; keep its message, repr and full traceback."""
        try:
            call()
        except DataconError as exc:
            caught: DataconError = exc
        else:
            raise AssertionError(f"{label}: expected {expected.__name__}, the call succeeded")
        assert isinstance(caught, expected), f"{label}: expected {expected.__name__}, got {caught!r}"
        self.errors.append(caught)
        self.show(label, caught)
        # The chained driver error and the traceback are what ends up in a log file.
        self.texts.append((f"traceback({label})", "".join(traceback.format_exception(caught))))
        return caught

    def leaks(self, secret: str, *more: str) -> list[str]:
        """Labels of the texts that contain ``secret`` (raw or URL-encoded)."""
        needles = {secret, quote(secret, safe=""), *more}
        return [label for label, text in self.texts if any(needle in text for needle in needles)]


def log_everything(caplog: pytest.LogCaptureFixture) -> None:
    """Capture DEBUG from every logger, including those that set their own level (restored after)."""
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)


def find_instances(root: object, cls: type[Any], depth: int = 5) -> list[Any]:
    """Objects of type ``cls`` reachable from ``root`` through attributes (breadth-first)."""
    found: list[Any] = []
    seen: set[int] = set()
    layer: list[object] = [root]
    for _ in range(depth):
        nxt: list[object] = []
        for obj in layer:
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if isinstance(obj, cls):
                found.append(obj)
                continue
            attrs = getattr(obj, "__dict__", None)
            if isinstance(attrs, dict):
                nxt.extend(attrs.values())
            nxt.extend(getattr(obj, slot) for slot in getattr(type(obj), "__slots__", ()) if hasattr(obj, slot))
        layer = nxt
    return found
