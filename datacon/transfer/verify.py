"""Verify: an order-independent digest of every kind of record, and its comparison."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import attrs

from datacon.storage import Storage
from datacon.transfer.copy import DEFAULT_BATCH, iter_batches
from datacon.transfer.jsonl import KINDS, Kind, dump_record

__all__ = ["Digest", "compare_digests", "digest"]

_MOD = 1 << 256


@attrs.define(frozen=True)
class Digest:
    """Record count and an order-independent hash of one kind of record.

    The hash is the sum, modulo 2**256, of the SHA-256 of every record's canonical JSON
    line (:func:`dump_record`): equal multisets of records give equal hashes, whatever the
    order in which a backend returns them.
    """

    count: int
    sha256: str


def digest(
    storage: Storage, batch: int = DEFAULT_BATCH, progress: Callable[[Kind, int], None] | None = None
) -> dict[Kind, Digest]:
    """Count and hash every kind of record in ``storage``; ``progress(kind, n)`` after each page."""
    totals: dict[Kind, list[int]] = {kind: [0, 0] for kind in KINDS}
    for kind, page in iter_batches(storage, batch):
        total = totals[kind]
        for record in page:
            total[0] += 1
            total[1] = (total[1] + int.from_bytes(hashlib.sha256(dump_record(record).encode()).digest())) % _MOD
        if progress is not None:
            progress(kind, len(page))
    return {kind: Digest(count, f"{value:064x}") for kind, (count, value) in totals.items()}


def compare_digests(left: dict[Kind, Digest], right: dict[Kind, Digest]) -> list[str]:
    """One line per kind whose count or hash differs; empty when both sides are equal."""
    problems = []
    for kind in KINDS:
        a, b = left[kind], right[kind]
        if a.count != b.count:
            problems.append(f"{kind}s: {a.count} in the source, {b.count} in the destination")
        elif a.sha256 != b.sha256:
            problems.append(f"{kind}s: same count ({a.count}) but different content")
    return problems
