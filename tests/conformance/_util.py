"""Small helpers for the conformance suite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

BASE = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def at(seconds: float = 0, micros: int = 0) -> datetime:
    """A fixed instant plus an offset (so tests do not depend on the clock)."""
    return BASE + timedelta(seconds=seconds, microseconds=micros)
