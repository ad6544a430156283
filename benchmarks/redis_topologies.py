"""Per-operation cost on a Redis Cluster and through Sentinel, against one Redis server, same run.

    python -m benchmarks.redis_topologies [--quick]      (or: tox -e bench-redis-topologies)

Starts, as the tests do (``tests/servers``), one ``redis-server``, a 6-node Redis Cluster (3
masters + 3 replicas) and a master + replica + 3 sentinels, all on loopback, and times the
same operations on each through datacon, interleaved (``benchmarks.harness.interleaved``;
the fastest round's mean, as other processes share the machine). The ratio is topology /
single server for the same call: what the cluster client (slot routing) and the
sentinel-managed pool add per call. Every operation is one round trip on all three (the
cluster keeps a schema's keys under one hash tag), so the ratios measure client-side
overhead, not extra round trips. Writes the table to
``benchmarks/results/redis-topologies.md`` and stdout (quoted in docs/scaling.md).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from itertools import count
from pathlib import Path
from typing import Any

from benchmarks.harness import fmt_time, interleaved
from datacon import (
    ListParams,
    NewConversation,
    NewConversationItem,
    RedisConfig,
    Storage,
    StorageFactoryConfig,
    StoredResponse,
    create_storage,
)

RESULTS = Path(__file__).parent / "results" / "redis-topologies.md"


@contextmanager
def _topologies(workdir: Path) -> Iterator[dict[str, RedisConfig]]:
    from tests.servers._redis_topologies import (
        SERVICE,
        RedisClusterTopology,
        RedisSentinelTopology,
        redis_cli_executable,
    )
    from tests.servers.redis import RedisServer, redis_executable

    executable = redis_executable()
    with ExitStack() as stack:
        single = RedisServer(executable, workdir / "single")
        (workdir / "single").mkdir()
        single.start()
        stack.callback(single.stop)
        cluster = RedisClusterTopology(executable, redis_cli_executable(), workdir / "cluster")
        stack.callback(cluster.stop)
        cluster.start()
        sentinel = RedisSentinelTopology(executable, workdir / "sentinel")
        stack.callback(sentinel.stop)
        sentinel.start()
        yield {
            "single server": RedisConfig(url=single.url, retention_days=None),
            "cluster": RedisConfig(url=cluster.url, cluster=True, retention_days=None),
            "sentinel": RedisConfig(
                url=sentinel.url, sentinels=sentinel.sentinel_addresses, sentinel_service=SERVICE, retention_days=None
            ),
        }


def _operations(storage: Storage, serial: Iterator[int]) -> dict[str, Callable[[], object]]:
    """The calls to time, each on records prepared here (reads) or fresh ids (writes)."""
    conversation = storage.conversations.create_conversation(NewConversation(metadata={"title": "bench"}))
    turn = [NewConversationItem("message", [{"type": "input_text", "text": "hello " * 20}], role="user")] * 4
    for _ in range(25):
        storage.items.append_items(conversation.id, turn)
    item = storage.items.list_items(conversation.id, ListParams(limit=1))[0]
    previous = None
    for _ in range(10):
        response = StoredResponse(previous_response_id=previous, input=[{"n": 1}], safety_identifier="bench-user")
        previous = storage.responses.store_response(response)
    assert previous is not None
    last = previous

    def create_conversation() -> object:
        return storage.conversations.create_conversation(NewConversation(metadata={"n": next(serial)}))

    def append_turn() -> object:
        # added_at defaults to now: links sharing one added_at would make the page reads
        # below walk every link of that instant (correct, but not a chat's shape).
        return storage.items.append_items(conversation.id, turn)

    def store_response() -> object:
        return storage.responses.store_response(StoredResponse(input=[{"n": next(serial)}]))

    return {
        "create_conversation": create_conversation,
        "get_conversation": lambda: storage.conversations.get_conversation(conversation.id),
        "append_items (4 items)": append_turn,
        "get_item": lambda: storage.items.get_item(item.id),
        "list_items (page of 20)": lambda: storage.items.list_items(conversation.id, ListParams(limit=20)),
        "store_response": store_response,
        "get_response_chain (depth 10)": lambda: storage.responses.get_response_chain(last),
        "list_identifier_responses (10)": lambda: storage.responses.list_identifier_responses("bench-user"),
        "list_conversations (page of 20)": lambda: storage.conversations.list_conversations(ListParams(limit=20)),
    }


def _sizing(storage: Storage, config: RedisConfig, conversations: int) -> list[str]:
    """Server memory per conversation holding one 4-item turn and one response (INFO used_memory)."""
    import redis

    text = "The quick brown fox jumps over the lazy dog. " * 5  # ~230 bytes of text per item
    with redis.Redis.from_url(config.url) as client:
        before = int(client.info("memory")["used_memory"])
        for n in range(conversations):
            conversation = storage.conversations.create_conversation(NewConversation(metadata={"title": f"chat {n}"}))
            turn = [
                NewConversationItem("message", [{"type": "input_text", "text": text}], role="user") for _ in range(4)
            ]
            storage.items.append_items(conversation.id, turn)
            response = StoredResponse(input=[{"n": n}], safety_identifier=f"user-{n % 100}", model="gpt-x")
            storage.responses.store_response(attrs_evolve(response, conversation_id=conversation.id))
        after = int(client.info("memory")["used_memory"])
    per = (after - before) / conversations
    return [
        "",
        f"Memory on the single server: {per:,.0f} bytes per conversation holding one turn of 4 items "
        f"(~230 bytes of text each) and one response ({conversations:,} such conversations, INFO used_memory, "
        "no TTL); about {:,.0f} MB per 10⁶ such conversations.".format(per * 1e6 / 2**20),
    ]


def _server_time(config: RedisConfig, call: Callable[[], object], calls: int) -> float:
    """Seconds the server spends per call (``INFO commandstats``, every command summed): what
    bounds one master's throughput (it runs commands one at a time)."""
    import redis

    with redis.Redis.from_url(config.url, decode_responses=True) as client:
        client.config_resetstat()
        for _ in range(calls):
            call()
        stats = client.info("commandstats")
    total = sum(int(v["usec"]) for k, v in stats.items() if k not in ("cmdstat_config", "cmdstat_info"))
    return total / calls / 1e6


def attrs_evolve(response: StoredResponse, **changes: Any) -> StoredResponse:
    import attrs

    return attrs.evolve(response, **changes)


def run(quick: bool) -> str:
    rounds, inner = (3, 5) if quick else (15, 30)
    serial = count()
    with tempfile.TemporaryDirectory(prefix="datacon-bench-topologies-") as workdir, ExitStack() as stack:
        configs = stack.enter_context(_topologies(Path(workdir)))
        storages = {
            name: stack.enter_context(create_storage(StorageFactoryConfig(backend="redis", redis=config)))
            for name, config in configs.items()
        }
        operations = {name: _operations(storage, serial) for name, storage in storages.items()}
        columns = ("single server", "of which server time", "cluster", "cluster / single", "sentinel")
        lines = ["| operation | " + " | ".join(columns) + " | sentinel / single |", "|---" * 7 + "|"]
        for op in operations["single server"]:
            times: dict[str, Any] = interleaved(
                {name: calls[op] for name, calls in operations.items()}, rounds=rounds, inner=inner, statistic=min
            )
            single, cluster, sentinel = times["single server"], times["cluster"], times["sentinel"]
            server = _server_time(configs["single server"], operations["single server"][op], 200)
            lines.append(
                f"| {op} | {fmt_time(single)} | {fmt_time(server)} | {fmt_time(cluster)} | {cluster / single:.2f}× "
                f"| {fmt_time(sentinel)} | {sentinel / single:.2f}× |"
            )
        sizing = _sizing(storages["single server"], configs["single server"], 500 if quick else 20_000)
    header = (
        "# Redis topologies: per-operation cost\n\n"
        f"`python -m benchmarks.redis_topologies{' --quick' if quick else ''}`: the fastest of {rounds} interleaved "
        f"rounds of {inner} calls (the machine is shared: the minimum is the least disturbed), one thread, "
        "loopback, same run. Server time: the single server's own time "
        "per call (INFO commandstats), which bounds what one master can serve.\n\n"
    )
    return header + "\n".join(lines + sizing) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke sizes; figures are not meaningful")
    options = parser.parse_args(argv)
    report = run(options.quick)
    print(report)
    if not options.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
