"""Figures the reliability suite measures (writes acknowledged and lost, recovery times, counts)."""

from __future__ import annotations

import threading

_lock = threading.Lock()
FIGURES: dict[str, str] = {}


def record(name: str, text: str) -> None:
    """Keep ``text`` under ``name``; the suite's conftest prints every figure after the run."""
    with _lock:
        FIGURES[name] = text
