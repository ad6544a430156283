"""Retention benchmark (issue 20): prune a million records while a writer keeps writing.

``python -m benchmarks.prune --backend sqlite [--records 1000000] [--quick]`` (or ``tox -e
bench-prune -- --backend all``) starts the backend as the other benchmarks do
(``benchmarks.targets``), restores ``--records`` old records straight into it (conversations
with two linked items and one response each: 6 records a conversation), then runs
``Storage.prune`` while one writer thread writes turns through the public API, timing every
call. It reports the prune's throughput (records deleted per second) and the writer's longest
call during the prune beside its longest before it, and writes ``benchmarks/results/prune-<backend>.md``.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.harness import Settings
from benchmarks.targets import open_target
from datacon import NewConversation, NewConversationItem, PruneReport, Storage, StoredResponse
from datacon._time import utc_now
from datacon.backends.base import Prunable, Restorable
from datacon.models import Conversation, ConversationItem, Link

RESULTS = Path(__file__).parent / "results"
OLD = datetime(2024, 1, 1, tzinfo=UTC)
BACKENDS = ("memory", "sqlite", "postgres", "redis")


def restore_old(storage: Storage, records: int, say: Callable[[str], None]) -> int:
    """Restore ``records`` (rounded to 6 a conversation) records created in 2024; how many."""
    raw = storage.raw
    assert isinstance(raw, Restorable)
    conversations = max(1, records // 6)
    step = 1000
    for start in range(0, conversations, step):
        numbers = range(start, min(start + step, conversations))
        at = [OLD + timedelta(microseconds=n) for n in numbers]
        raw.restore_conversations(
            [Conversation(f"conv_old{n}", when, None) for n, when in zip(numbers, at, strict=True)]
        )
        items = [
            ConversationItem(f"msg_old{n}_{k}", None, "message", "user", {"n": n}, None, when)
            for n, when in zip(numbers, at, strict=True)
            for k in range(2)
        ]
        raw.restore_items(items)
        raw.restore_links(
            [
                Link(f"conv_old{n}", f"msg_old{n}_{k}", when)
                for n, when in zip(numbers, at, strict=True)
                for k in range(2)
            ]
        )
        raw.restore_responses(
            [StoredResponse(id=f"resp_old{n}", created_at=when) for n, when in zip(numbers, at, strict=True)]
        )
        if start % 50_000 == 0:
            say(f"  restored {6 * (start + len(numbers))} records")
    return 6 * conversations


class Writer(threading.Thread):
    """A turn (conversation, two appended items, a response) in a loop; every call timed."""

    def __init__(self, storage: Storage) -> None:
        super().__init__(daemon=True)
        self.storage = storage
        self.stop = threading.Event()
        self.timings: list[tuple[float, float]] = []
        self.error: BaseException | None = None

    def _timed(self, call: Callable[[], object]) -> None:
        start = time.monotonic()
        call()
        self.timings.append((start, time.monotonic() - start))

    def _turn(self, n: int) -> None:
        s = self.storage
        cid = f"conv_live{n}"
        self._timed(lambda: s.conversations.create_conversation(NewConversation(id=cid)))
        turn = [NewConversationItem("message", {"n": n}), NewConversationItem("message", {})]
        self._timed(lambda: s.items.append_items(cid, turn))
        self._timed(lambda: s.responses.store_response(StoredResponse(conversation_id=cid)))

    def run(self) -> None:
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                self._turn(n)
        except BaseException as exc:
            self.error = exc

    def longest(self, start: float, end: float) -> tuple[float, int]:
        """The longest call overlapping ``[start, end]``, and how many calls started in it."""
        overlapping = [d for at, d in self.timings if at <= end and at + d >= start]
        started = sum(1 for at, _ in self.timings if start <= at <= end)
        return max(overlapping, default=0.0), started


def bench(name: str, records: int) -> str:
    """One backend's run; its Markdown report."""
    with open_target(name, Settings.make(quick=True)) as target:
        storage = target.storage
        if not isinstance(storage.raw, Prunable):
            return f"## {name}\n\nnot run: the {name} backend has no Prunable calls yet.\n"
        t0 = time.monotonic()
        total = restore_old(storage, records, print)
        fill = time.monotonic() - t0
        writer = Writer(storage)
        writer.start()
        time.sleep(2.0)
        baseline, _ = writer.longest(0.0, time.monotonic())
        start = time.monotonic()
        report = storage.prune(utc_now() - timedelta(days=1))
        end = time.monotonic()
        writer.stop.set()
        writer.join(timeout=60)
        if writer.error is not None:
            raise writer.error
        stall, calls = writer.longest(start, end)
    expected = PruneReport(total // 6, total // 6, total // 3, total // 3)
    assert report == expected, (report, expected)
    seconds = end - start
    lines = [
        f"## {name}",
        "",
        f"{total:,} records restored in {fill:.0f} s, then pruned while one writer wrote turns.",
        "",
        "| records | prune (s) | records/s | writer calls during | longest call during (ms) | longest before (ms) |",
        "|---:|---:|---:|---:|---:|---:|",
        (
            f"| {report.total:,} | {seconds:.1f} | {report.total / seconds:,.0f} | {calls} | {stall * 1000:.0f} "
            f"| {baseline * 1000:.0f} |"
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="all", choices=[*BACKENDS, "all"])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="60,000 records: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Where the reports go.")
    args = parser.parse_args(argv)
    records = 60_000 if args.quick else args.records
    args.out.mkdir(exist_ok=True)
    for name in BACKENDS if args.backend == "all" else (args.backend,):
        text = bench(name, records)
        print(text)
        (args.out / f"prune-{name}.md").write_text(f"# Prune benchmark\n\n{text}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
