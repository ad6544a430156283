"""Peers on the same workload and server: append messages, read the last 20, read a 100-deep history."""

from __future__ import annotations

from benchmarks.harness import Row, Settings
from benchmarks.workloads import Target

__all__ = ["run_peers"]


def run_peers(t: Target, s: Settings) -> list[Row]:
    """Peer comparisons for ``t``'s backend (none for memory)."""
    return []
