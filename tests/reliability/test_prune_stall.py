"""Concurrent writers keep working during a prune (SPEC 7.7, issue 20): the longest stall of a
writer while ``Storage.prune`` deletes 30,000 records, on every backend.

The old records are restored straight into the backend (``Restorable``: exact ``created_at``,
one transaction per batch) so that filling stays fast; the writer (the prune benchmark's,
``benchmarks/prune.py``) then writes turns through the public API, timing each call, before
the prune (its baseline) and throughout it. The figures (the
longest call during the prune, and the baseline) are printed by the suite's summary; the
bound is loose on purpose (2 shared cores under a parallel load), what it catches is a prune
that holds its locks for the whole run (seconds to minutes) instead of one batch.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from benchmarks.prune import Writer, restore_old
from datacon import PruneReport, create_storage
from datacon._time import utc_now
from datacon.backends.base import Prunable
from tests.reliability import figures
from tests.reliability._backends import ALL_BACKENDS, backend_params
from tests.support import BackendUnderTest

RECORDS = 30_000  # 5,000 conversations, each with two linked items and one response
STALL_BOUND_SECS = 2.0


@pytest.mark.slow
@pytest.mark.parametrize("name", backend_params(ALL_BACKENDS))
def test_a_writer_keeps_working_while_30000_records_are_pruned(request: pytest.FixtureRequest, name: str) -> None:
    backend: BackendUnderTest = request.getfixturevalue(f"{name}_backend")
    storage = create_storage(backend.config())
    try:
        if not isinstance(storage.raw, Prunable):
            pytest.skip(f"not done yet: the {name} backend has no Prunable calls (issue 20, see the report)")
        total = restore_old(storage, RECORDS, lambda _: None)
        writer = Writer(storage)
        writer.start()
        time.sleep(1.0)  # the baseline: calls without a prune
        baseline, _ = writer.longest(0.0, time.monotonic())
        start = time.monotonic()
        report = storage.prune(utc_now() - timedelta(days=1))
        end = time.monotonic()
        time.sleep(0.2)
        writer.stop.set()
        writer.join(timeout=30)
        assert writer.error is None, writer.error
        stall, during = writer.longest(start, end)
        figures.record(
            f"prune stall [{name}]",
            f"{total:,} records pruned in {end - start:.2f} s; the writer made {during} calls meanwhile, "
            f"longest {stall * 1000:.0f} ms (without a prune: {baseline * 1000:.0f} ms)",
        )
        assert report == PruneReport(total // 6, total // 6, total // 3, total // 3)
        assert during >= 5, "the writer made (almost) no progress during the prune"
        assert stall < STALL_BOUND_SECS, f"a writer waited {stall:.2f} s during the prune"
        # What the writer made is newer than the cutoff: still there, first and last turn alike.
        turns = len(writer.timings) // 3
        for n in (1, turns // 2, turns):
            assert storage.conversations.get_conversation(f"conv_live{n}") is not None
    finally:
        storage.close()
        backend.wipe()
