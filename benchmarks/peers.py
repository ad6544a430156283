"""Peers on the same workload and server: append messages, read the last 20, read a 100-deep history.

Every peer runs in the same process, against the same server (or SQLite directory) as datacon.
The peers are async; datacon's sync API is called from the same event loop (no thread hop),
and datacon's async facade is measured beside it when it exists. A peer that does not install
or run here is recorded in the table with the reason, instead of a number.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from benchmarks.harness import Row, Settings, fmt_time
from benchmarks.workloads import Target, analyze, build_chain
from datacon import ListParams, NewConversation, NewConversationItem, SortOrder
from datacon.storage import Storage

__all__ = ["run_peers"]

HISTORY = 100  # depth of the "read a 100-deep history" workload
LAST = 20


def _text(index: int) -> str:
    return f"Message {index}: what is the weather like in Paris today? Please answer briefly, in French."


class Adapter(Protocol):
    """One store under the peers workload; a ``session`` is whatever the store names a conversation by."""

    label: str

    async def new_session(self) -> Any: ...

    async def append(self, session: Any, index: int) -> None: ...

    async def last(self, session: Any, count: int) -> list[Any]: ...

    async def history(self, session: Any) -> list[Any]: ...

    async def close(self) -> None: ...


class DataconSync:
    """datacon's sync API: an append is one append_items call (create and link, one round
    trip: what the peers' add_items/add_messages do); a history read is one page."""

    def __init__(self, storage: Storage, label: str = "datacon") -> None:
        self.label = label
        self.s = storage

    async def new_session(self) -> str:
        return self.s.conversations.create_conversation(NewConversation()).id

    async def append(self, session: str, index: int) -> None:
        content = [{"type": "input_text", "text": _text(index)}]
        self.s.items.append_items(session, [NewConversationItem("message", content, role="user", status="completed")])

    async def last(self, session: str, count: int) -> list[Any]:
        return self.s.items.list_items(session, ListParams(count, SortOrder.DESC))[::-1]

    async def history(self, session: str) -> list[Any]:
        return self.s.items.list_items(session, ListParams(HISTORY))

    async def close(self) -> None:
        return None


class DataconAsync:
    """datacon through ``AsyncStorage`` (one thread hand-off per call)."""

    def __init__(self, storage: Storage) -> None:
        from datacon.aio import AsyncStorage

        self.label = "datacon (AsyncStorage)"
        self.a = AsyncStorage(storage)

    async def new_session(self) -> str:
        return (await self.a.conversations.create_conversation(NewConversation())).id

    async def append(self, session: str, index: int) -> None:
        content = [{"type": "input_text", "text": _text(index)}]
        item = await self.a.items.create_item(NewConversationItem("message", content, role="user", status="completed"))
        await self.a.items.link_item(session, item.id, datetime.now(UTC))

    async def last(self, session: str, count: int) -> list[Any]:
        return (await self.a.items.list_items(session, ListParams(count, SortOrder.DESC)))[::-1]

    async def history(self, session: str) -> list[Any]:
        return await self.a.items.list_items(session, ListParams(HISTORY))

    async def close(self) -> None:
        return None


class DataconAgentsSession:
    """datacon's OpenAI Agents SDK adapter (``DataconSession``) over the run's storage: the SDK's
    own workload through the same Session protocol as its built-in sessions."""

    label = "datacon DataconSession (openai-agents)"

    def __init__(self, storage: Storage) -> None:
        from datacon.integrations.openai_agents import DataconSession

        self._cls = DataconSession
        self.storage = storage

    async def new_session(self) -> Any:
        return self._cls(uuid.uuid4().hex, self.storage)

    async def append(self, session: Any, index: int) -> None:
        await session.add_items([{"role": "user", "content": _text(index)}])

    async def last(self, session: Any, count: int) -> list[Any]:
        items: list[Any] = await session.get_items(limit=count)
        return items

    async def history(self, session: Any) -> list[Any]:
        items: list[Any] = await session.get_items()
        return items

    async def close(self) -> None:
        return None  # the sessions share the run's storage, which they never close


class DataconLangchain:
    """datacon's LangChain adapter (``DataconChatMessageHistory``, its sync methods, as the
    langchain-postgres peer is driven) over the run's storage."""

    label = "datacon DataconChatMessageHistory (langchain)"

    def __init__(self, storage: Storage) -> None:
        from langchain_core.messages import HumanMessage

        from datacon.integrations.langchain import DataconChatMessageHistory

        self._cls = DataconChatMessageHistory
        self._message = HumanMessage
        self.storage = storage

    async def new_session(self) -> Any:
        return self._cls(uuid.uuid4().hex, self.storage)

    async def append(self, session: Any, index: int) -> None:
        session.add_messages([self._message(content=_text(index))])

    async def last(self, session: Any, count: int) -> list[Any]:
        messages: list[Any] = session.messages  # no limit in LangChain's API: read all, keep the tail
        return messages[-count:]

    async def history(self, session: Any) -> list[Any]:
        messages: list[Any] = session.messages
        return messages

    async def close(self) -> None:
        return None


class AgentsSQLite:
    """openai-agents ``SQLiteSession`` on a file beside datacon's database."""

    label = "openai-agents SQLiteSession"

    def __init__(self, path: str) -> None:
        from agents import SQLiteSession

        self._cls = SQLiteSession
        self.path = path
        self.sessions: list[Any] = []

    async def new_session(self) -> Any:
        session = self._cls(uuid.uuid4().hex, self.path)
        self.sessions.append(session)
        return session

    async def append(self, session: Any, index: int) -> None:
        await session.add_items([{"role": "user", "content": _text(index)}])

    async def last(self, session: Any, count: int) -> list[Any]:
        items: list[Any] = await session.get_items(limit=count)
        return items

    async def history(self, session: Any) -> list[Any]:
        items: list[Any] = await session.get_items()
        return items

    async def close(self) -> None:
        for session in self.sessions:
            session.close()


class AgentsRedis:
    """openai-agents ``RedisSession`` on datacon's Redis server."""

    label = "openai-agents RedisSession"

    def __init__(self, url: str) -> None:
        from agents.extensions.memory import RedisSession

        self._cls = RedisSession
        self.url = url
        self.sessions: list[Any] = []

    async def new_session(self) -> Any:
        session = self._cls.from_url(uuid.uuid4().hex, url=self.url, key_prefix="bench:agents")
        self.sessions.append(session)
        return session

    async def append(self, session: Any, index: int) -> None:
        await session.add_items([{"role": "user", "content": _text(index)}])

    async def last(self, session: Any, count: int) -> list[Any]:
        items: list[Any] = await session.get_items(limit=count)
        return items

    async def history(self, session: Any) -> list[Any]:
        items: list[Any] = await session.get_items()
        return items

    async def close(self) -> None:
        for session in self.sessions:
            await session.close()


class LangchainPostgres:
    """langchain-postgres ``PostgresChatMessageHistory`` (sync psycopg connection; reads are whole-history)."""

    label = "langchain-postgres PostgresChatMessageHistory"
    TABLE = "bench_langchain_messages"

    def __init__(self, dsn: str) -> None:
        import psycopg
        from langchain_core.messages import HumanMessage
        from langchain_postgres import PostgresChatMessageHistory

        self._cls = PostgresChatMessageHistory
        self._message = HumanMessage
        self.conn = psycopg.connect(dsn, autocommit=True)
        PostgresChatMessageHistory.create_tables(self.conn, self.TABLE)

    async def new_session(self) -> Any:
        return self._cls(self.TABLE, str(uuid.uuid4()), sync_connection=self.conn)

    async def append(self, session: Any, index: int) -> None:
        session.add_messages([self._message(content=_text(index))])

    async def last(self, session: Any, count: int) -> list[Any]:
        messages: list[Any] = session.get_messages()  # no limit in its API: read all, keep the tail
        return messages[-count:]

    async def history(self, session: Any) -> list[Any]:
        messages: list[Any] = session.get_messages()
        return messages

    async def close(self) -> None:
        self.conn.close()


class AdkDatabase:
    """google-adk ``DatabaseSessionService`` (SQLAlchemy async: aiosqlite or asyncpg)."""

    def __init__(self, db_url: str, label: str) -> None:
        from google.adk.events import Event
        from google.adk.sessions import DatabaseSessionService
        from google.adk.sessions.base_session_service import GetSessionConfig
        from google.genai import types

        self.label = label
        self.service = DatabaseSessionService(db_url)
        self._event = Event
        self._config = GetSessionConfig
        self._types = types

    async def new_session(self) -> Any:
        return await self.service.create_session(app_name="bench", user_id="u1", session_id=uuid.uuid4().hex)

    async def append(self, session: Any, index: int) -> None:
        types = self._types
        event = self._event(
            invocation_id=f"inv-{index}",
            author="user",
            content=types.Content(role="user", parts=[types.Part(text=_text(index))]),
        )
        await self.service.append_event(session, event)

    async def _get(self, session: Any, count: int | None) -> list[Any]:
        config = None if count is None else self._config(num_recent_events=count)
        got = await self.service.get_session(app_name="bench", user_id="u1", session_id=session.id, config=config)
        assert got is not None, f"google-adk lost session {session.id}"  # typed Optional when google-adk is installed
        events: list[Any] = got.events
        return events

    async def last(self, session: Any, count: int) -> list[Any]:
        return await self._get(session, count)

    async def history(self, session: Any) -> list[Any]:
        return await self._get(session, None)

    async def close(self) -> None:
        await self.service.close()


async def _ainterleaved(
    variants: dict[str, Callable[[], Awaitable[object]]], *, rounds: int, inner: int
) -> dict[str, float]:
    """The async twin of ``harness.interleaved``: median seconds per call, order alternating per round."""
    import statistics

    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for name in names:
        await variants[name]()
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            call = variants[name]
            start = time.perf_counter()
            for _ in range(inner):
                await call()
            samples[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(values) for name, values in samples.items()}


def _peer_adapters(t: Target) -> list[tuple[str, Callable[[], Adapter]]]:
    """(label, factory) of the peers for ``t``'s backend; a factory may raise if the peer is missing."""
    server = t.server
    if t.backend == "sqlite":
        directory = server["directory"]
        return [
            ("openai-agents SQLiteSession", lambda: AgentsSQLite(f"{directory}/agents.db")),
            (
                "google-adk DatabaseSessionService (aiosqlite)",
                lambda: AdkDatabase(
                    f"sqlite+aiosqlite:///{directory}/adk.db", "google-adk DatabaseSessionService (aiosqlite)"
                ),
            ),
        ]
    if t.backend == "postgres":
        dsn = server["dsn"]
        return [
            ("langchain-postgres PostgresChatMessageHistory", lambda: LangchainPostgres(dsn)),
            (
                "google-adk DatabaseSessionService (asyncpg)",
                lambda: AdkDatabase(server["sqlalchemy_asyncpg_url"], "google-adk DatabaseSessionService (asyncpg)"),
            ),
        ]
    if t.backend == "redis":
        url = server["url"]
        return [("openai-agents RedisSession", lambda: AgentsRedis(url))]
    return []


def run_peers(t: Target, s: Settings) -> list[Row]:
    """Peer comparisons for ``t``'s backend (none for memory)."""
    candidates = _peer_adapters(t)
    if not candidates:
        return []
    return asyncio.run(_run_peers(t, s, candidates))


async def _run_peers(t: Target, s: Settings, candidates: list[tuple[str, Callable[[], Adapter]]]) -> list[Row]:
    # datacon on empty tables of its own, as every peer starts (not those the other sections filled).
    storage = t.peers_storage() if t.peers_storage is not None else t.storage
    try:
        return await _run_peers_on(t, storage, s, candidates)
    finally:
        if storage is not t.storage:
            storage.close()


async def _run_peers_on(
    t: Target, storage: Storage, s: Settings, candidates: list[tuple[str, Callable[[], Adapter]]]
) -> list[Row]:
    rows: list[Row] = []
    adapters: list[Adapter] = [DataconSync(storage)]
    with contextlib.suppress(ImportError):  # a checkout without the async facade
        adapters.append(DataconAsync(storage))
    # datacon's framework adapters, beside the frameworks' own stores on the same backend.
    labels = {label for label, _ in candidates}
    ours: list[tuple[str, Callable[[], Adapter]]] = []
    if labels & {"openai-agents SQLiteSession", "openai-agents RedisSession"}:
        ours.append((DataconAgentsSession.label, lambda: DataconAgentsSession(storage)))
    if "langchain-postgres PostgresChatMessageHistory" in labels:
        ours.append((DataconLangchain.label, lambda: DataconLangchain(storage)))
    candidates = [*ours, *candidates]
    for label, factory in candidates:
        try:
            adapters.append(factory())
        except Exception as exc:  # a peer that will not install or start is a table row, not a crash
            rows.append(
                Row(
                    t.backend,
                    "peers",
                    "(peer unavailable)",
                    "",
                    label,
                    "not run",
                    None,
                    note=f"{type(exc).__name__}: {exc}"[:160],
                )
            )
    try:
        rows += await _measure(t, s, adapters)
    finally:
        for adapter in adapters:
            try:
                await adapter.close()
            except Exception as exc:
                rows.append(Row(t.backend, "peers", "(close)", "", adapter.label, "failed", None, note=str(exc)[:160]))
    return rows


async def _measure(t: Target, s: Settings, adapters: list[Adapter]) -> list[Row]:
    n = s.peer_messages
    failed: dict[str, str] = {}
    long: dict[str, Any] = {}
    short: dict[str, Any] = {}
    append_time: dict[str, float] = {}
    for adapter in adapters:
        try:
            long[adapter.label] = await adapter.new_session()
            short[adapter.label] = await adapter.new_session()
            for index in range(HISTORY):
                await adapter.append(short[adapter.label], index)
            append_time[adapter.label] = 0.0
        except Exception as exc:
            failed[adapter.label] = f"{type(exc).__name__}: {exc}"[:160]
    live = [a for a in adapters if a.label not in failed]

    # Appends, interleaved in chunks so that every store sees the same machine noise.
    chunk = max(1, n // 20)
    for start in range(0, n, chunk):
        order = live if (start // chunk) % 2 == 0 else live[::-1]
        for adapter in order:
            session = long[adapter.label]
            began = time.perf_counter()
            for index in range(start, min(n, start + chunk)):
                await adapter.append(session, index)
            append_time[adapter.label] += time.perf_counter() - began

    analyze(t)  # every store's tables are in the same database: fresh statistics for all of them
    for adapter in live:  # every store must really hold what was written
        got = await adapter.last(long[adapter.label], LAST)
        assert len(got) == LAST, f"{adapter.label}: read {len(got)} of the last {LAST}"
        got = await adapter.history(short[adapter.label])
        assert len(got) == HISTORY, f"{adapter.label}: read {len(got)} of {HISTORY}"

    def reader(adapter: Adapter, what: str) -> Callable[[], Awaitable[object]]:
        if what == "last":
            return lambda: adapter.last(long[adapter.label], LAST)
        return lambda: adapter.history(short[adapter.label])

    last = await _ainterleaved({a.label: reader(a, "last") for a in live}, rounds=s.rounds, inner=max(1, s.inner // 4))
    hist = await _ainterleaved({a.label: reader(a, "hist") for a in live}, rounds=s.rounds, inner=max(1, s.inner // 4))
    # datacon's own 100-deep history is a response chain; shown beside the item-list read.
    tip = build_chain(t, HISTORY)[-1]
    chain = t.storage.responses
    chain_time = (
        await _ainterleaved(
            {"chain": _wrap(lambda: chain.get_response_chain(tip))}, rounds=s.rounds, inner=max(1, s.inner // 4)
        )
    )["chain"]

    rows: list[Row] = []
    ref = "datacon"
    measures = [
        (f"append {n:,} messages, per append", {a: append_time[a] / n for a in append_time}),
        (f"read the last {LAST} of {n:,}", last),
        (f"read a {HISTORY}-deep history", hist),
    ]
    for measure, times in measures:
        for adapter in live:
            if adapter.label == ref:
                continue
            ratio = times[adapter.label] / times[ref]
            # A peer's own store must not be faster than datacon on its workload (issue 23);
            # datacon's facade and adapters beside its sync API are shown for information.
            foreign = not adapter.label.startswith("datacon")
            rows.append(
                Row(
                    t.backend,
                    "peers",
                    measure,
                    fmt_time(times[ref]),
                    adapter.label,
                    fmt_time(times[adapter.label]),
                    ratio,
                    target="≥ 1.0" if foreign else "",
                    met=ratio >= 1.0 if foreign else None,
                    note=_peer_note(adapter.label, measure),
                )
            )
    rows.append(
        Row(
            t.backend,
            "peers",
            f"read a {HISTORY}-deep history as a response chain",
            fmt_time(chain_time),
            "datacon list_items (same depth)",
            fmt_time(hist[ref]),
            hist[ref] / chain_time,
            note="get_response_chain vs list_items(limit=100), both datacon",
        )
    )
    for label, reason in failed.items():
        rows.append(Row(t.backend, "peers", "(peer failed)", "", label, "not run", None, note=reason))
    return rows


def _wrap(call: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    async def run() -> object:
        return call()

    return run


def _peer_note(label: str, measure: str) -> str:
    if label.startswith("langchain") and "last" in measure:
        return "no limit in its API: reads the whole history"
    if label.startswith("datacon (AsyncStorage)"):
        return "datacon's sync API vs its async facade"
    if label.startswith("datacon"):
        return "datacon's sync API vs its framework adapter"
    if "append" in measure:
        return "datacon's sync API: append_items"
    return "datacon's sync API"
