"""Concurrent writers keep working during a prune (SPEC 7.7, issue 20): the longest stall of a
writer while ``Storage.prune`` deletes 30,000 records, on every backend.

The old records are restored straight into the backend (``Restorable``: exact ``created_at``,
one transaction per batch) so that filling stays fast; the writer then runs through the public
API, timing each call, before the prune (its baseline) and throughout it. The figures (the
longest call during the prune, and the baseline) are printed by the suite's summary; the
bound is loose on purpose (2 shared cores under a parallel load), what it catches is a prune
that holds its locks for the whole run (seconds to minutes) instead of one batch.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from datacon import NewConversation, NewConversationItem, PruneReport, Storage, StoredResponse, create_storage
from datacon._time import utc_now
from datacon.backends.base import Prunable, Restorable
from datacon.models import Conversation, ConversationItem, Link
from tests.reliability import figures
from tests.reliability._backends import ALL_BACKENDS, backend_params
from tests.support import BackendUnderTest

CONVERSATIONS = 5_000  # each with two linked items and one response: 30,000 records in all
STALL_BOUND_SECS = 2.0
OLD = datetime(2024, 1, 1, tzinfo=UTC)


def _restore_old(storage: Storage) -> None:
    raw = storage.raw
    assert isinstance(raw, Restorable)
    for start in range(0, CONVERSATIONS, 500):
        numbers = range(start, min(start + 500, CONVERSATIONS))
        at = [OLD + timedelta(seconds=n) for n in numbers]
        raw.restore_conversations([Conversation(f"conv_old{n}", when, None) for n, when in zip(numbers, at)])
        items = [
            ConversationItem(f"msg_old{n}_{k}", None, "message", "user", {"n": n}, None, when)
            for n, when in zip(numbers, at)
            for k in range(2)
        ]
        raw.restore_items(items)
        raw.restore_links([Link(f"conv_old{item.id[7:].split('_')[0]}", item.id, item.created_at) for item in items])
        raw.restore_responses([StoredResponse(id=f"resp_old{n}", created_at=when) for n, when in zip(numbers, at)])


class _Writer(threading.Thread):
    """Writes a turn (conversation, two items appended, a response) in a loop; times each call."""

    def __init__(self, storage: Storage) -> None:
        super().__init__(daemon=True)
        self.storage = storage
        self.stop = threading.Event()
        self.timings: list[tuple[float, float]] = []  # (start, duration) on the monotonic clock
        self.errors: list[BaseException] = []
        self.written: list[str] = []

    def _timed(self, call: object) -> None:
        start = time.monotonic()
        call()  # type: ignore[operator]
        self.timings.append((start, time.monotonic() - start))

    def run(self) -> None:
        s = self.storage
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                conv = s.conversations.create_conversation(NewConversation(id=f"conv_live{n}"))
                self._timed(
                    lambda: s.items.append_items(conv.id, [NewConversationItem("message", {"n": n}) for _ in range(2)])
                )
                self._timed(lambda: s.responses.store_response(StoredResponse(conversation_id=conv.id)))
                self.written.append(conv.id)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)

    def longest(self, start: float, end: float) -> float:
        """The longest call that overlapped ``[start, end]``."""
        return max((d for at, d in self.timings if at <= end and at + d >= start), default=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", backend_params(ALL_BACKENDS))
def test_a_writer_keeps_working_while_30000_records_are_pruned(request: pytest.FixtureRequest, name: str) -> None:
    backend: BackendUnderTest = request.getfixturevalue(f"{name}_backend")
    storage = create_storage(backend.config())
    try:
        if not isinstance(storage.raw, Prunable):
            pytest.skip(f"not done yet: the {name} backend has no Prunable calls (issue 20, see the report)")
        _restore_old(storage)
        writer = _Writer(storage)
        writer.start()
        time.sleep(1.0)  # the baseline: calls without a prune
        baseline = writer.longest(0.0, time.monotonic())
        cutoff = utc_now() - timedelta(days=1)
        start = time.monotonic()
        report = storage.prune(cutoff)
        end = time.monotonic()
        time.sleep(0.2)
        writer.stop.set()
        writer.join(timeout=30)
        assert not writer.errors, writer.errors
        during = [d for at, d in writer.timings if start <= at <= end]
        stall = writer.longest(start, end)
        figures.record(
            f"prune stall [{name}]",
            f"30,000 records pruned in {end - start:.2f} s; the writer made {len(during)} calls meanwhile, "
            f"longest {stall * 1000:.0f} ms (without a prune: {baseline * 1000:.0f} ms)",
        )
        assert report == PruneReport(
            responses=CONVERSATIONS, conversations=CONVERSATIONS, links=2 * CONVERSATIONS, items=2 * CONVERSATIONS
        )
        assert len(during) >= 5, "the writer made (almost) no progress during the prune"
        assert stall < STALL_BOUND_SECS, f"a writer waited {stall:.2f} s during the prune"
        # Everything the writer made is newer than the cutoff: all of it is still there.
        for conversation_id in writer.written[:: max(1, len(writer.written) // 50)]:
            assert storage.conversations.get_conversation(conversation_id) is not None
    finally:
        storage.close()
        backend.wipe()
