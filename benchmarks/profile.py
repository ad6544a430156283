"""Profile one operation with pyinstrument, datacon and its baseline side by side.

Usage: ``python -m benchmarks.profile --backend sqlite --op get_response [--calls 5000]``.
Writes ``benchmarks/results/profile-<backend>-<op>.txt`` (datacon's call tree, then the
baseline's), the evidence behind the causes given in docs/performance.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.harness import Settings
from benchmarks.run import BACKENDS, DEFAULT_OUT
from benchmarks.workloads import EPOCH, MESSAGE, Target, _timeline, analyze, build_chain, response_fields
from datacon import ListParams, NewConversation, NewConversationItem, SortOrder, StoredResponse, make_item_id

OPS = ("store_response", "get_response", "create_item_link_item", "list_items", "get_response_chain", "append_items")
#: Ops whose second variant is datacon itself, another way (not the raw-driver baseline).
OTHER_LABEL = {"append_items": "create_item ×4 + link_items"}


def _variants(t: Target, op: str) -> tuple[Callable[[], object], Callable[[], object]]:
    """(datacon, baseline) callables for ``op`` on ``t``, with their data prepared."""
    storage, base = t.storage, t.baseline
    if op == "store_response":
        return (
            lambda: storage.responses.store_response(StoredResponse(**response_fields())),
            lambda: base.store_response(response_fields()),
        )
    if op == "get_response":
        fields = response_fields()
        storage.responses.store_response(StoredResponse(**fields))
        rid = fields["id"]
        return lambda: storage.responses.get_response(rid), lambda: base.get_response(rid)
    conversation = storage.conversations.create_conversation(NewConversation()).id
    if op == "create_item_link_item":

        def datacon() -> None:
            item = storage.items.create_item(NewConversationItem("message", MESSAGE, role="user", status="completed"))
            storage.items.link_item(conversation, item.id, datetime.now(UTC))

        return datacon, lambda: base.create_and_link(conversation, make_item_id("message"), MESSAGE, datetime.now(UTC))
    if op == "append_items":
        # Section 1b's turn: one append_items against create_item ×4 + link_items, both datacon.
        def turn() -> list[NewConversationItem]:
            return [
                NewConversationItem("message", MESSAGE, role="user", status="completed"),
                NewConversationItem("function_call", {"name": "weather", "arguments": "{}"}, status="completed"),
                NewConversationItem("function_call_output", {"output": "sunny"}, status="completed"),
                NewConversationItem("message", MESSAGE, role="assistant", status="completed"),
            ]

        def five_calls() -> None:
            created = [storage.items.create_item(new).id for new in turn()]
            now = datetime.now(UTC)
            storage.items.link_items(conversation, [(item_id, now) for item_id in created])

        return lambda: storage.items.append_items(conversation, turn()), five_calls
    if op == "list_items":
        base.bulk_items(conversation, _timeline(1_000, EPOCH), MESSAGE)
        analyze(t)
        page = ListParams(20, SortOrder.DESC)
        return (
            lambda: storage.items.list_items(conversation, page),
            lambda: base.list_page(conversation, 20, desc=True),
        )
    tip = build_chain(t, 100)[-1]
    analyze(t)
    return lambda: storage.responses.get_response_chain(tip), lambda: base.chain(tip)


def main() -> None:
    from pyinstrument import Profiler

    from benchmarks.targets import open_target

    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, required=True)
    parser.add_argument("--op", choices=OPS, required=True)
    parser.add_argument("--calls", type=int, default=5_000)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    reports = []
    with open_target(args.backend, Settings.make(quick=True)) as target:
        datacon, baseline = _variants(target, args.op)
        for label, call in (("datacon", datacon), (OTHER_LABEL.get(args.op, target.baseline.label), baseline)):
            for _ in range(50):  # warm caches and prepared statements first
                call()
            profiler = Profiler(interval=0.0001)
            profiler.start()
            for _ in range(args.calls):
                call()
            profiler.stop()
            reports.append(
                f"===== {label}: {args.calls} × {args.op} on {args.backend}\n"
                + profiler.output_text(unicode=True, color=False, show_all=False)
            )
    path = args.out / f"profile-{args.backend}-{args.op}.txt"
    path.write_text("\n".join(reports), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
