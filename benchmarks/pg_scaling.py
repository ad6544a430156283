"""PostgreSQL sizing figures for docs/scaling.md: bytes per record, write and read throughput
with asynchronous, synchronous and remote-apply replication, and read replicas' lag.

Usage: ``python -m benchmarks.pg_scaling [--seconds 3] [--conversations 2000]``. Starts a
primary + streaming standby (tests/servers/_pg_replication.py, fsync on) per replication
mode, and writes ``benchmarks/results/postgres-scaling.md``. Every throughput is measured in
the same run as the one it is compared with (2 shared cores: absolute figures vary).
"""

from __future__ import annotations

import argparse
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datacon import (
    ListParams,
    NewConversation,
    NewConversationItem,
    PostgresConfig,
    Storage,
    StorageFactoryConfig,
    StoredResponse,
    create_storage,
)
from tests.servers._pg_replication import ReplicatedPair
from tests.servers.postgres import postgres_bindir

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "postgres-scaling.md"
THREADS = 8
TABLES = ("conversations", "conversation_items", "conversation_item_links", "responses")


def _rate(seconds: float, work: Callable[[int, int], object]) -> float:
    """Calls per second of ``work(thread, n)`` run by THREADS threads for ``seconds``."""
    stop = threading.Event()
    counts = [0] * THREADS

    def run(t: int) -> None:
        n = 0
        while not stop.is_set():
            work(t, n)
            n += 1
        counts[t] = n

    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def _sizes(pair: ReplicatedPair, storage: Storage, conversations: int) -> dict[str, tuple[int, int]]:
    """Per table: (rows, bytes on disk with indexes) after loading ``conversations`` of 10 items."""
    tag = secrets.token_hex(3)
    for c in range(conversations):
        cid = f"size-{tag}-{c}"
        storage.conversations.create_conversation(NewConversation(id=cid, metadata={"user": f"u{c}"}))
        turn = [NewConversationItem("message", [{"type": "input_text", "text": "x" * 200}], role="user")] * 10
        storage.items.append_items(cid, turn)
        storage.responses.store_response(StoredResponse(id=f"resp-{tag}-{c}", input=[{"text": "y" * 200}]))
    out: dict[str, tuple[int, int]] = {}
    with pair.primary.admin() as conn:
        conn.execute("VACUUM ANALYZE")
        for table in TABLES:
            rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            size = conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()[0]
            out[table] = (int(rows), int(size))
    return out


def _measure(mode: str, seconds: float, conversations: int) -> dict[str, Any]:
    synchronous = {"async": None, "sync": "on", "remote_apply": "remote_apply"}[mode]
    pair = ReplicatedPair(postgres_bindir(), synchronous=synchronous, durable=True)
    pair.start()
    try:
        config = PostgresConfig(db_url=pair.url(), pool_max=THREADS, read_urls=[pair.read_url()])
        primary_only = PostgresConfig(db_url=pair.url(), pool_max=THREADS)
        result: dict[str, Any] = {"mode": mode}
        with create_storage(StorageFactoryConfig(backend="postgres", postgres=config)) as storage:
            tag = secrets.token_hex(3)
            for t in range(THREADS):
                storage.conversations.create_conversation(NewConversation(id=f"w-{tag}-{t}"))
            lag = {"max": 0}
            watching = threading.Event()

            def watch() -> None:
                while not watching.is_set():
                    lag["max"] = max(lag["max"], pair.replay_lag_bytes())
                    time.sleep(0.05)

            watcher = threading.Thread(target=watch)
            watcher.start()

            def append(t: int, n: int) -> None:
                item = NewConversationItem("message", [{"type": "input_text", "text": f"{t}-{n}"}], role="user")
                storage.items.append_items(f"w-{tag}-{t}", [item, item])

            result["append"] = _rate(seconds, append)
            watching.set()
            watcher.join()
            result["lag_bytes"] = lag["max"]
            if mode == "async":
                result["sizes"] = _sizes(pair, storage, conversations)
                with pair.primary.admin() as conn:
                    conn.execute("CHECKPOINT")
                time.sleep(1)

                def read(s: Storage) -> Callable[[int, int], object]:
                    return lambda t, n: s.items.list_items(f"w-{tag}-{t}", ListParams(limit=20))

                with create_storage(StorageFactoryConfig(backend="postgres", postgres=primary_only)) as alone:
                    result["read_primary"] = _rate(seconds, read(alone))
                result["read_replica"] = _rate(seconds, read(storage))
        return result
    finally:
        pair.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--conversations", type=int, default=2000)
    args = parser.parse_args(argv)
    results = {mode: _measure(mode, args.seconds, args.conversations) for mode in ("async", "sync", "remote_apply")}
    base = results["async"]
    lines = [
        "# PostgreSQL scaling figures",
        "",
        (
            f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `python -m benchmarks.pg_scaling "
            f"--seconds {args.seconds:g} --conversations {args.conversations}`; primary + streaming standby on "
            f"loopback, fsync on, {THREADS} threads, 2 shared cores."
        ),
        "",
        "## Bytes on disk per record (tables with their indexes, after VACUUM ANALYZE)",
        "",
        "| table | rows | bytes | bytes per row |",
        "|---|---|---|---|",
    ]
    for table, (rows, size) in base["sizes"].items():
        lines.append(f"| {table} | {rows:,} | {size:,} | {size / max(rows, 1):,.0f} |")
    lines += [
        "",
        "Items carry about 230 bytes of JSON content each (a 200-character text); conversations a small",
        "metadata object; responses about 230 bytes of input.",
        "",
        "## Writes by replication mode (append_items of 2 items, calls per second)",
        "",
        "| replication | calls/s | vs asynchronous | max replay lag seen |",
        "|---|---|---|---|",
    ]
    for mode, result in results.items():
        lines.append(
            f"| {mode} | {result['append']:,.0f} | {result['append'] / base['append']:.2f}x | "
            f"{result['lag_bytes']:,} bytes |"
        )
    lines += [
        "",
        "## Reads (list_items, last 20 of a conversation, calls per second)",
        "",
        "| served by | calls/s |",
        "|---|---|",
        f"| primary alone | {base['read_primary']:,.0f} |",
        f"| read replica (read_urls) | {base['read_replica']:,.0f} |",
        "",
    ]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
