"""Peak RSS of storing N items in the memory backend, measured in fresh subprocesses."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["measure"]

ROOT = Path(__file__).resolve().parent.parent


def _child(count: int) -> dict[str, int]:
    """Run inside the subprocess: store ``count`` items (created and linked) and report ru_maxrss."""
    from benchmarks.workloads import MESSAGE
    from datacon import NewConversation, NewConversationItem, create_storage

    storage = create_storage()
    conversation = storage.conversations.create_conversation(NewConversation()).id
    items = storage.items
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for index in range(count):
        item = items.create_item(NewConversationItem("message", MESSAGE, role="user", status="completed"))
        items.link_item(conversation, item.id, start + timedelta(microseconds=index))
    return {"items": count, "maxrss_kib": _peak_kib()}


def _peak_kib() -> int:
    """Peak RSS of this process in KiB.

    Linux carries ``ru_maxrss`` over ``fork`` and ``exec`` from the parent, so a child of a
    large benchmark process would report the parent's peak; ``VmHWM`` belongs to this
    process's own address space. ``ru_maxrss`` (KiB on Linux) is the fallback elsewhere.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _run(count: int) -> int:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.rss", "--child", str(count)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    kib: int = json.loads(out.strip().splitlines()[-1])["maxrss_kib"]
    return kib * 1024


def measure(count: int, repeats: int = 3) -> tuple[float, int, int]:
    """Bytes per item (median over ``repeats`` pairs of runs), and the two peak RSS values in bytes."""
    empty = sorted(_run(0) for _ in range(repeats))[repeats // 2]
    full = sorted(_run(count) for _ in range(repeats))[repeats // 2]
    return (full - empty) / count, empty, full


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", type=int, required=True, help="items to store in this process")
    print(json.dumps(_child(parser.parse_args().child)))
