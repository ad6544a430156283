"""The round-trip-saving designs behind a real network delay (``benchmarks.delay_proxy``).

On loopback a round trip costs tens of microseconds, so what saves round trips (one-query
chains, one-call appends) looks smaller than on any network. This section opens a second
storage and baseline on the same server through a delaying TCP proxy, at 0 (the proxy's own
cost), 0.2 ms and 1 ms round trip, and measures there:

- a round trip (``get_response``) through the proxy against the direct connection;
- ``get_response_chain`` at depth 100 against the naive one-query-per-link walk (target
  >= 10 times at 0.2 ms on PostgreSQL and Redis);
- an append of one message: ``append_items`` (one round trip) against ``create_item`` +
  ``link_item`` (two);
- behind a delay, the async facade's throughput (32 tasks against 32 threads), reported: calls
  that wait on the network need the facade's threads beyond its eager ones.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from benchmarks.baselines import Baseline
from benchmarks.delay_proxy import DelayProxy
from benchmarks.harness import Row, Settings, fmt_time, interleaved
from benchmarks.workloads import MESSAGE, Target, async_throughput, build_chain, response_fields
from datacon import NewConversation, NewConversationItem, StoredResponse
from datacon.storage import Storage

__all__ = ["ROUND_TRIPS", "run_delay"]

#: Round trips added by the proxy, in seconds (0: the proxy's own cost).
ROUND_TRIPS = (0.0, 0.0002, 0.001)
DEPTH = 100
CHAIN_TARGET = 10.0


def _via(url: str, port: int) -> str:
    """``url`` with its (loopback) port replaced by ``port``."""
    return re.sub(
        r"@?127\.0\.0\.1:\d+", lambda m: ("@" if m.group(0).startswith("@") else "") + f"127.0.0.1:{port}", url
    )


def _port(url: str) -> int:
    found = re.search(r"127\.0\.0\.1:(\d+)", url)
    if found is None:
        raise RuntimeError("the delay benchmark needs a server on 127.0.0.1")
    return int(found.group(1))


@contextmanager
def _proxied(t: Target, port: int) -> Iterator[tuple[Storage, Baseline]]:
    """A storage and a baseline of ``t``'s backend, connected through the proxy on ``port``."""
    from datacon import RedisConfig, StorageFactoryConfig, create_storage

    if t.backend == "redis":
        from benchmarks.baselines.redis import RedisBaseline

        url = _via(t.server["url"], port)
        storage = create_storage(StorageFactoryConfig(backend="redis", redis=RedisConfig(url=url)))
        baseline: Baseline = RedisBaseline(url)
    else:
        from benchmarks.baselines.postgres import PostgresBaseline
        from tests.servers.postgres import PostgresBackend

        dsn = _via(t.server["dsn"], port)
        storage = create_storage(PostgresBackend(dsn).config())
        baseline = PostgresBaseline(dsn)
    try:
        yield storage, baseline
    finally:
        baseline.close()
        storage.close()


def _server_url(t: Target) -> str:
    return t.server["url"] if t.backend == "redis" else t.server["dsn"]


def run_delay(t: Target, s: Settings) -> list[Row]:
    """The delay section for PostgreSQL and Redis (nothing for the in-process backends)."""
    if t.backend not in ("postgres", "redis"):
        return []
    upstream = _port(_server_url(t))
    tip = build_chain(t, DEPTH)[-1]
    probe = response_fields()
    t.storage.responses.store_response(StoredResponse(**probe))
    conversation = t.storage.conversations.create_conversation(NewConversation()).id
    rounds = 3 if s.quick else 9
    rows: list[Row] = []
    for round_trip in ROUND_TRIPS:
        label = "no added delay" if round_trip == 0 else f"{round_trip * 1e3:g} ms round trip"
        with DelayProxy("127.0.0.1", upstream, round_trip) as port, _proxied(t, port) as (storage, baseline):
            rows += _one_delay(t, s, storage, baseline, label, round_trip, tip, probe["id"], conversation, rounds)
    return rows


def _one_delay(
    t: Target,
    s: Settings,
    storage: Storage,
    baseline: Baseline,
    label: str,
    round_trip: float,
    tip: str,
    probe: str,
    conversation: str,
    rounds: int,
) -> list[Row]:
    rows: list[Row] = []
    inner = max(1, s.inner // 4)
    # One round trip through the proxy against the direct connection.
    times = interleaved(
        {
            "proxied": functools.partial(storage.responses.get_response, probe),
            "direct": functools.partial(t.storage.responses.get_response, probe),
        },
        rounds=rounds,
        inner=inner,
    )
    rows.append(
        Row(
            t.backend,
            "delay",
            f"{label}: get_response through the proxy",
            fmt_time(times["proxied"]),
            "direct connection",
            fmt_time(times["direct"]),
            times["proxied"] / times["direct"],
            note="the proxy's own cost" if round_trip == 0 else "added: the delay and the proxy's own cost",
            seconds=(times["proxied"], times["direct"]),
        )
    )
    # The chain at depth 100 against one query per link.
    assert len(storage.responses.get_response_chain(tip)) == DEPTH
    times = interleaved(
        {
            "datacon": functools.partial(storage.responses.get_response_chain, tip),
            "naive": functools.partial(baseline.naive_chain, tip),
        },
        rounds=rounds,
        inner=1,
    )
    speedup = times["naive"] / times["datacon"]
    target, met = ("≥ 10", speedup >= CHAIN_TARGET) if round_trip == 0.0002 else ("", None)
    rows.append(
        Row(
            t.backend,
            "delay",
            f"{label}: get_response_chain, depth {DEPTH}",
            fmt_time(times["datacon"]),
            "naive walk (one query per link)",
            fmt_time(times["naive"]),
            speedup,
            target,
            met,
            note="ratio = naive walk / datacon; higher is better",
            seconds=(times["datacon"], times["naive"]),
        )
    )
    # An append of one message: one call against two.
    items = storage.items

    def new_item() -> NewConversationItem:
        return NewConversationItem("message", MESSAGE, role="user", status="completed")

    def one_call() -> None:
        items.append_items(conversation, [new_item()])

    def two_calls() -> None:
        item = items.create_item(new_item())
        items.link_item(conversation, item.id, datetime.now(UTC))

    variants: dict[str, Callable[[], object]] = {"append_items": one_call, "create_item + link_item": two_calls}
    times = interleaved(variants, rounds=rounds, inner=inner)
    rows.append(
        Row(
            t.backend,
            "delay",
            f"{label}: append one message with append_items",
            fmt_time(times["append_items"]),
            "create_item + link_item",
            fmt_time(times["create_item + link_item"]),
            times["create_item + link_item"] / times["append_items"],
            note="ratio = two calls / one call; higher is better",
            seconds=(times["append_items"], times["create_item + link_item"]),
        )
    )
    if round_trip > 0:
        rows.append(_async_row(t, s, storage, label, probe, rounds))
    return rows


def _async_row(t: Target, s: Settings, storage: Storage, label: str, probe: str, rounds: int) -> Row:
    """The async facade's throughput behind the delay: calls that wait on the network, where
    the facade needs more than its eager threads (they grow while calls wait and the process
    leaves the CPU idle)."""
    from datacon.aio import AsyncStorage

    facade = AsyncStorage(storage)
    loop = asyncio.new_event_loop()
    try:
        calls, repeats = s.async_calls // 2, max(3, rounds // 2)
        async_tput, thread_tput = async_throughput(storage, facade, loop, probe, calls, repeats)
        threads = facade._runner.workers.threads
    finally:
        facade._runner.stop()
        loop.close()
    return Row(
        t.backend,
        "delay",
        f"{label}: get_response throughput, 32 tasks vs 32 threads",
        f"{async_tput:,.0f} calls/s",
        "32 sync threads",
        f"{thread_tput:,.0f} calls/s",
        async_tput / thread_tput,
        note=f"reported, no target (loopback's is in the async section); the facade ended with {threads} worker "
        f"threads of {storage.max_concurrency}",
    )
