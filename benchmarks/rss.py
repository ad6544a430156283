"""Peak RSS of storing N items (memory backend, or a client of SQLite, PostgreSQL, Redis), and
the RSS of a client paging through a long conversation, measured in fresh subprocesses."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["measure"]

ROOT = Path(__file__).resolve().parent.parent


def _storage(backend: str, where: str) -> Any:
    """A storage of ``backend`` on ``where`` (SQLite file, PostgreSQL DSN, Redis URL), as the tests open it."""
    from datacon import RedisConfig, StorageFactoryConfig, create_storage

    if backend == "memory":
        return create_storage()
    if backend == "sqlite":
        from tests.servers.sqlite import SqliteBackend

        return create_storage(SqliteBackend(Path(where)).config())
    if backend == "postgres":
        from tests.servers.postgres import PostgresBackend

        return create_storage(PostgresBackend(where).config())
    return create_storage(StorageFactoryConfig(backend="redis", redis=RedisConfig(url=where)))


def _child(count: int, backend: str = "memory", where: str = "") -> dict[str, int]:
    """Run inside the subprocess: store ``count`` items (created and linked) and report the peak RSS."""
    from benchmarks.workloads import MESSAGE
    from datacon import NewConversation, NewConversationItem

    storage = _storage(backend, where)
    conversation = storage.conversations.create_conversation(NewConversation()).id
    items = storage.items
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for index in range(count):
        item = items.create_item(NewConversationItem("message", MESSAGE, role="user", status="completed"))
        items.link_item(conversation, item.id, start + timedelta(microseconds=index))
    return {"items": count, "maxrss_kib": _peak_kib()}


def _pager(conversation: str, backend: str, where: str, page: int) -> dict[str, Any]:
    """Run inside the subprocess: read ``conversation`` page by page to its end, sampling the
    current RSS (``VmRSS``) every 5% of the walk; report the samples and the items read."""
    from datacon import ListParams

    storage = _storage(backend, where)
    items = storage.items
    samples = [_current_kib()]
    seen = 0
    after: str | None = None
    pages = 0
    while True:
        got = items.list_items_page(conversation, ListParams(page, after=after))
        seen += len(got.data)
        pages += 1
        if pages % 50 == 0:
            samples.append(_current_kib())
        if not got.has_more:
            break
        after = got.next_cursor
    samples.append(_current_kib())
    storage.close()
    return {"items": seen, "pages": pages, "samples_kib": samples}


def _current_kib() -> int:
    """Current RSS of this process in KiB (``VmRSS``)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


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


def _call(*args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.rss", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _run(count: int, backend: str = "memory", where: str = "") -> int:
    kib: int = _call("--child", str(count), "--backend", backend, "--where", where)["maxrss_kib"]
    return kib * 1024


def measure(count: int, repeats: int = 3, backend: str = "memory", where: str = "") -> tuple[float, int, int]:
    """Bytes per item (median over ``repeats`` pairs of runs), and the two peak RSS values in bytes."""
    empty = sorted(_run(0, backend, where) for _ in range(repeats))[repeats // 2]
    full = sorted(_run(count, backend, where) for _ in range(repeats))[repeats // 2]
    return (full - empty) / count, empty, full


def paging(conversation: str, backend: str, where: str, page: int = 100) -> tuple[int, list[int]]:
    """Items read and the RSS samples (bytes) of a fresh process reading ``conversation`` to its end."""
    got = _call("--page", conversation, "--backend", backend, "--where", where, "--size", str(page))
    return got["items"], [kib * 1024 for kib in got["samples_kib"]]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", type=int, help="items to store in this process")
    parser.add_argument("--page", help="a conversation to read page by page")
    parser.add_argument("--size", type=int, default=100, help="page size of --page")
    parser.add_argument("--backend", default="memory")
    parser.add_argument("--where", default="")
    args = parser.parse_args()
    if args.page:
        print(json.dumps(_pager(args.page, args.backend, args.where, args.size)))
    else:
        print(json.dumps(_child(args.child or 0, args.backend, args.where)))
