"""The async facade under asyncio and trio: threads, limiter, open/close, cancellation, request context."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio import to_thread

from datacon import (
    BeforeHookResult,
    ListParams,
    NewConversation,
    NewConversationItem,
    RequestContext,
    Storage,
    StorageFactoryConfig,
    StorageHook,
    StorageOperation,
    StoredResponse,
    aio,
    create_storage,
    request_context,
)
from datacon.aio import AsyncStorage, create_async_storage
from datacon.errors import ConflictError, InvalidInputError
from tests.support import BackendUnderTest

pytestmark = pytest.mark.anyio

AT = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
MEMORY = StorageFactoryConfig(backend="memory")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# The leak test runs on every backend available, as the conformance suite does.
SERVER_BACKENDS = sorted(
    path.stem for path in (Path(__file__).parent / "servers").glob("*.py") if not path.stem.startswith("_")
)
STORE_PARAMS = [pytest.param("memory", id="memory")]
STORE_PARAMS += [pytest.param(name, id=name, marks=[getattr(pytest.mark, name)]) for name in SERVER_BACKENDS]


@pytest.fixture(params=STORE_PARAMS)
def any_backend(request: pytest.FixtureRequest) -> Iterator[BackendUnderTest]:
    backend: BackendUnderTest = request.getfixturevalue(f"{request.param}_backend")
    try:
        yield backend
    finally:
        backend.wipe(None)


class Probe(StorageHook):
    """A real hook: records request contexts and threads, counts calls in flight, optionally slow."""

    def __init__(self, delay: Callable[[], float] = lambda: 0.0) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.started = 0
        self.contexts: list[tuple[StorageOperation, Any, RequestContext | None]] = []
        self.threads: set[int] = set()
        self.first_started = threading.Event()

    def before(self, operation: StorageOperation, context: RequestContext | None, payload: Any) -> BeforeHookResult:
        with self.lock:
            self.active += 1
            self.started += 1
            self.max_active = max(self.max_active, self.active)
            self.contexts.append((operation, payload, context))
            self.threads.add(threading.get_ident())
        self.first_started.set()
        time.sleep(self.delay())
        return BeforeHookResult.cont()

    def after(
        self,
        operation: StorageOperation,
        context: RequestContext | None,
        payload: Any,
        result: Any,
        extra: Mapping[str, Any],
    ) -> None:
        with self.lock:
            self.active -= 1


class _Resized:
    """``storage``'s backend with another pool size or close function (a ``Backend``)."""

    def __init__(self, storage: Storage, max_concurrency: int | None, close: Callable[[], None] | None) -> None:
        raw = storage.raw
        self.kind = raw.kind
        self.max_concurrency = raw.max_concurrency if max_concurrency is None else max_concurrency
        self.conversations = raw.conversations
        self.items = raw.items
        self.responses = raw.responses
        self.close = storage.close if close is None else close
        self.pool_stats = raw.pool_stats


def resized(
    storage: Storage, *, max_concurrency: int | None = None, close: Callable[[], None] | None = None
) -> Storage:
    """The same three (guarded) storages, with another pool size or close function."""
    return Storage(_Resized(storage, max_concurrency, close), storage.responses, storage.conversations, storage.items)


async def assert_pool_idle(storage: AsyncStorage) -> None:
    """Every pooled connection is back (memory has no pool: ``pool_stats()`` is empty).

    A pool may finish taking a connection back on its own maintenance thread (psycopg_pool
    resets there), so allow it a moment; a leaked connection never comes back.
    """
    stats = storage.sync.pool_stats()
    with anyio.move_on_after(2):
        while stats.get("in_use", 0):
            await anyio.sleep(0.01)
            stats = storage.sync.pool_stats()
    assert stats.get("in_use", 0) == 0, stats


# --- opening, closing, basic use --------------------------------------------------------------


async def test_create_async_storage_is_awaitable() -> None:
    storage = await create_async_storage(MEMORY)
    assert isinstance(storage, AsyncStorage)
    assert storage.backend == "memory"
    conv = await storage.conversations.create_conversation(NewConversation(metadata={"a": 1}))
    assert await storage.conversations.get_conversation(conv.id) == conv
    await storage.aclose()
    assert storage.closed
    await storage.aclose()  # idempotent
    assert storage.closed


async def test_create_async_storage_is_an_async_context_manager() -> None:
    async with create_async_storage() as storage:
        assert isinstance(storage, AsyncStorage)
        assert not storage.closed
        response_id = await storage.responses.store_response(StoredResponse(id="r1"))
        assert response_id == "r1"
    assert storage.closed


async def test_async_storage_wraps_an_open_storage_and_async_with_closes_it() -> None:
    sync = create_storage()
    async with AsyncStorage(sync) as storage:
        assert storage.wrapped is sync
        await storage.conversations.create_conversation(NewConversation(id="conv_w"))
        # Both APIs see the same data: the facade adds no state of its own.
        assert sync.conversations.get_conversation("conv_w") is not None
    assert sync.closed


async def test_an_opener_opens_once() -> None:
    opener = create_async_storage()
    storage = await opener
    try:
        with pytest.raises(RuntimeError, match="already used"):
            await opener
    finally:
        await storage.aclose()


async def test_open_errors_pass_through() -> None:
    from datacon.errors import ConfigError

    with pytest.raises(ConfigError):
        await create_async_storage(StorageFactoryConfig(backend="postgres"))
    with pytest.raises(ConfigError, match="StorageFactoryConfig or a URL"):
        await create_async_storage(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a storage URL"):
        await create_async_storage("memory")


async def test_every_storage_operates_through_the_facade() -> None:
    async with create_async_storage() as storage:
        conv = await storage.conversations.create_conversation(NewConversation(id="conv_a"))
        assert (await storage.conversations.update_conversation(conv.id, {"k": "v"})).metadata == {"k": "v"}  # type: ignore[union-attr]
        item = await storage.items.create_item(NewConversationItem("message", ["hi"], id="msg_1"))
        await storage.items.link_item(conv.id, item.id, AT)
        second = await storage.items.create_item(NewConversationItem("message", ["yo"], id="msg_2"))
        await storage.items.link_items(conv.id, [(second.id, AT + timedelta(seconds=1))])
        page = await storage.items.list_items(conv.id, ListParams(limit=10))
        assert [i.id for i in page] == ["msg_1", "msg_2"]
        assert await storage.items.get_item("msg_2") == second
        assert await storage.items.is_item_linked(conv.id, "msg_1")
        await storage.items.delete_item(conv.id, "msg_1")
        assert not await storage.items.is_item_linked(conv.id, "msg_1")
        first = await storage.responses.store_response(StoredResponse(id="r1", safety_identifier="u"))
        await storage.responses.store_response(StoredResponse(id="r2", previous_response_id=first))
        chain = await storage.responses.get_response_chain("r2", max_depth=None)
        assert [r.id for r in chain.responses] == ["r1", "r2"]
        assert [r.id for r in await storage.responses.list_identifier_responses("u", limit=None)] == ["r1"]
        assert await storage.responses.get_response("r1") is not None
        assert await storage.responses.delete_identifier_responses("u") == 1
        await storage.responses.delete_response("r2")
        assert await storage.responses.get_response("r2") is None
        assert await storage.conversations.delete_conversation(conv.id) is True


async def test_exceptions_pass_through_unchanged() -> None:
    async with create_async_storage() as storage:
        await storage.conversations.create_conversation(NewConversation(id="conv_dup"))
        with pytest.raises(ConflictError) as conflict:
            await storage.conversations.create_conversation(NewConversation(id="conv_dup"))
        assert type(conflict.value) is ConflictError
        with pytest.raises(InvalidInputError):
            await storage.items.list_items("conv_dup", ListParams(limit=-1))


# --- threads and the limiter ------------------------------------------------------------------


async def test_calls_run_in_worker_threads() -> None:
    probe = Probe()
    async with create_async_storage(StorageFactoryConfig(hook=probe)) as storage:
        await storage.conversations.get_conversation("conv_x")
        await storage.items.get_item("msg_x")
    assert probe.threads
    assert threading.get_ident() not in probe.threads


async def test_the_limiter_is_private_and_sized_to_max_concurrency() -> None:
    probe = Probe(delay=lambda: 0.05)
    storage = AsyncStorage(resized(create_storage(StorageFactoryConfig(hook=probe)), max_concurrency=2))
    default = to_thread.current_default_thread_limiter()
    default_before = default.borrowed_tokens
    samples: list[tuple[float, float]] = []

    async def sample() -> None:
        while True:
            samples.append((storage.limiter.borrowed_tokens, default.borrowed_tokens))
            await anyio.sleep(0.01)

    async with storage:
        assert storage.max_concurrency == 2
        assert storage.limiter.total_tokens == 2
        assert storage.limiter is not default
        async with anyio.create_task_group() as outer:
            outer.start_soon(sample)
            async with anyio.create_task_group() as calls:
                for n in range(10):
                    calls.start_soon(storage.conversations.get_conversation, f"conv_{n}")
            outer.cancel_scope.cancel()
    assert probe.started == 10
    # Exactly two at once: never more (the limiter) and not fewer (the calls really overlap).
    assert probe.max_active == 2
    assert max(private for private, _ in samples) == 2
    assert {shared for _, shared in samples} == {default_before}
    assert storage.limiter.borrowed_tokens == 0


async def test_each_storage_has_its_own_limiter() -> None:
    async with create_async_storage() as first, create_async_storage() as second:
        assert first.limiter is first.limiter
        assert first.limiter is not second.limiter
        # The three storages of one store share its limiter.
        assert first.conversations._run.__self__ is first.items._run.__self__ is first.responses._run.__self__  # type: ignore[attr-defined]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # this test runs its own loops
def test_each_event_loop_gets_its_own_limiter(anyio_backend: str) -> None:
    storage = AsyncStorage(create_storage())
    seen: list[object] = []

    async def use(n: int) -> None:
        await storage.conversations.create_conversation(NewConversation(id=f"conv_{n}"))
        seen.append(storage.limiter)

    for n, backend in enumerate(["asyncio", "trio", "asyncio"]):
        anyio.run(use, n, backend=backend)
    assert len({id(limiter) for limiter in seen}) == 3
    assert all(storage.sync.conversations.get_conversation(f"conv_{n}") for n in range(3))
    storage.sync.close()


async def test_the_event_loop_keeps_running_while_the_storage_opens_and_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def slow_close(raw: Storage) -> None:
        time.sleep(0.3)
        raw.close()

    def slow_create(config: StorageFactoryConfig | None = None) -> Storage:
        time.sleep(0.3)  # stands in for connecting and running DDL
        raw = create_storage(config)
        return resized(raw, close=lambda: slow_close(raw))

    monkeypatch.setattr(aio, "create_storage", slow_create)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        start = ticks
        storage = await create_async_storage()
        during_open = ticks - start
        start = ticks
        await storage.aclose()
        during_close = ticks - start
        tg.cancel_scope.cancel()
    # 0.3 s each at one tick per 10 ms; a blocked loop would manage at most one.
    assert during_open >= 10
    assert during_close >= 10
    assert storage.closed


@pytest.mark.parametrize("use_async_with", [False, True], ids=["await", "async-with"])
async def test_a_storage_opened_for_a_cancelled_caller_is_closed(
    monkeypatch: pytest.MonkeyPatch, use_async_with: bool
) -> None:
    made: list[Storage] = []

    def slow_create(config: StorageFactoryConfig | None = None) -> Storage:
        time.sleep(0.2)
        made.append(create_storage(config))
        return made[-1]

    monkeypatch.setattr(aio, "create_storage", slow_create)
    with anyio.move_on_after(0.05) as scope:
        if use_async_with:
            async with create_async_storage():
                pytest.fail("the body must not run for a cancelled opener")
        else:
            await create_async_storage()
            pytest.fail("a cancelled opener must not return a storage")
    assert scope.cancelled_caught
    assert len(made) == 1
    assert made[0].closed


async def test_aclose_completes_even_when_the_caller_is_cancelled() -> None:
    storage = await create_async_storage()
    with anyio.CancelScope() as scope:
        scope.cancel()
        await storage.aclose()
    assert storage.closed


# --- cancellation -----------------------------------------------------------------------------


async def test_a_call_cancelled_while_waiting_for_a_thread_never_runs() -> None:
    probe = Probe(delay=lambda: 0.3)
    async with AsyncStorage(resized(create_storage(StorageFactoryConfig(hook=probe)), max_concurrency=1)) as storage:
        async with anyio.create_task_group() as tg:
            tg.start_soon(storage.conversations.create_conversation, NewConversation(id="conv_first"))
            await anyio.sleep(0.05)  # the first call now holds the only token
            with anyio.move_on_after(0.05) as scope:
                await storage.conversations.create_conversation(NewConversation(id="conv_second"))
            assert scope.cancelled_caught
        assert probe.started == 1
        assert await storage.conversations.get_conversation("conv_first") is not None
        assert await storage.conversations.get_conversation("conv_second") is None
        assert storage.limiter.borrowed_tokens == 0


async def test_a_started_call_completes_before_the_cancellation_is_delivered() -> None:
    probe = Probe(delay=lambda: 0.3)
    async with create_async_storage(StorageFactoryConfig(hook=probe)) as storage:
        returned: list[object] = []
        started = time.monotonic()
        with anyio.move_on_after(0.05) as scope:
            returned.append(await storage.conversations.create_conversation(NewConversation(id="conv_slow")))
            returned_after = time.monotonic() - started
            assert probe.active == 0
            await anyio.sleep(5)  # the caller's next checkpoint delivers the cancellation
        assert scope.cancelled_caught
        assert time.monotonic() - started < 5
        # Not abandoned: the caller resumed only after the thread had finished the write,
        # and got its result.
        assert returned_after >= 0.29
        assert [c.id for c in returned] == ["conv_slow"]  # type: ignore[attr-defined]
        assert await storage.conversations.get_conversation("conv_slow") is not None
        # Retrying with the same id tells the caller the first attempt landed.
        with pytest.raises(ConflictError):
            await storage.conversations.create_conversation(NewConversation(id="conv_slow"))


async def test_many_cancelled_calls_leak_no_connection_and_leave_data_consistent(
    any_backend: BackendUnderTest, anyio_backend: str
) -> None:
    rng = random.Random(f"datacon-aio-{any_backend.name}-{anyio_backend}")
    probe = Probe(delay=lambda: rng.uniform(0, 0.004))
    tasks = 200
    item_ids = ["msg_leak_a", "msg_leak_b", "msg_leak_c"]
    completed: set[int] = set()
    cancelled: set[int] = set()

    async with create_async_storage(any_backend.config(hook=probe)) as storage:
        for item_id in item_ids:
            await storage.items.create_item(NewConversationItem("message", [item_id], id=item_id))

        async def writer(n: int, deadline: float) -> None:
            # Three calls, so cancellations land before, during and between them.
            with anyio.move_on_after(deadline) as scope:
                conv = await storage.conversations.create_conversation(NewConversation(id=f"conv_leak_{n}"))
                await storage.items.link_items(
                    conv.id, [(i, AT + timedelta(seconds=k)) for k, i in enumerate(item_ids)]
                )
                await storage.responses.store_response(StoredResponse(id=f"resp_leak_{n}", conversation_id=conv.id))
                completed.add(n)
            if scope.cancelled_caught:
                cancelled.add(n)

        async with anyio.create_task_group() as tg:
            for n in range(tasks):
                # Half run free (they must complete); half get a deadline somewhere in the storm.
                tg.start_soon(writer, n, rng.uniform(0, 0.1) if n % 2 else float("inf"))

        # Checked before any await: no worker thread is still running a cancelled call.
        assert probe.active == 0
        assert storage.limiter.borrowed_tokens == 0
        await assert_pool_idle(storage)
        assert len(completed) + len(cancelled) == tasks
        assert completed, "the calls without a deadline must complete"
        assert cancelled, "the deadlines must cancel some calls"

        probe.delay = lambda: 0.0
        partial = 0
        for n in range(tasks):
            conv = await storage.conversations.get_conversation(f"conv_leak_{n}")
            linked = [await storage.items.is_item_linked(f"conv_leak_{n}", i) for i in item_ids]
            response = await storage.responses.get_response(f"resp_leak_{n}")
            # link_items is atomic, and each step ran only after the previous one completed.
            assert linked in ([True] * 3, [False] * 3), (n, linked)
            if any(linked):
                assert conv is not None, n
            if response is not None:
                assert all(linked), n
            if n in completed:
                assert conv is not None, n
                assert all(linked), n
                assert response is not None, n
            if n in cancelled and conv is not None:
                partial += 1  # cancelled after its first call had landed

        assert partial, "some cancellations must land after a call had completed"
        # The pool still serves every connection it has.
        async with anyio.create_task_group() as tg:
            for n in range(2 * storage.max_concurrency):
                tg.start_soon(storage.conversations.get_conversation, f"conv_leak_{n}")
        await assert_pool_idle(storage)


# --- request context --------------------------------------------------------------------------


async def test_request_context_set_in_a_task_reaches_the_hook() -> None:
    probe = Probe(delay=lambda: 0.01)
    async with create_async_storage(StorageFactoryConfig(hook=probe)) as storage:

        async def as_tenant(tenant: str) -> None:
            with request_context(RequestContext(tenant=tenant)):
                await storage.conversations.create_conversation(NewConversation(id=f"conv_{tenant}"))
                await storage.conversations.get_conversation(f"conv_{tenant}")

        async with anyio.create_task_group() as tg:
            for tenant in ("t1", "t2", "t3"):
                tg.start_soon(as_tenant, tenant)
        await storage.conversations.get_conversation("conv_none")

    seen = {(op, str(payload)): ctx for op, payload, ctx in probe.contexts}
    for tenant in ("t1", "t2", "t3"):
        assert seen[(StorageOperation.GET_CONVERSATION, f"conv_{tenant}")] == RequestContext(tenant=tenant)
        create_ctx = [ctx for op, _, ctx in probe.contexts if op is StorageOperation.CREATE_CONVERSATION]
        assert RequestContext(tenant=tenant) in create_ctx
    # Outside any request_context block the hook sees none.
    assert seen[(StorageOperation.GET_CONVERSATION, "conv_none")] is None
    assert len(probe.contexts) == 7


# --- asyncio's own cancellation (task.cancel, wait_for, timeout), and trio's -------------------

NATIVE_CANCELS = ["task.cancel", "wait_for", "timeout"]


async def until(event: threading.Event) -> None:
    """Wait (without blocking the loop) until a worker thread sets ``event``."""
    assert await to_thread.run_sync(event.wait, 5)


async def cancel_natively(how: str, call: Callable[[], Any], started: threading.Event) -> None:
    """Cancel ``call()`` with asyncio's own machinery once it runs in its thread; return when the canceller sees it."""
    import asyncio

    if how == "task.cancel":
        task = asyncio.ensure_future(call())
        await until(started)
        task.cancel()
        await asyncio.sleep(0.05)
        task.cancel()  # a second request while the thread runs changes nothing
        with pytest.raises(asyncio.CancelledError):
            await task
    elif how == "wait_for":
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(call(), 0.1)
    else:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await call()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("how", NATIVE_CANCELS)
async def test_asyncio_cancellation_of_a_started_call_is_seen_after_its_thread_finished(how: str) -> None:
    probe = Probe(delay=lambda: 0.4)
    storage = AsyncStorage(resized(create_storage(StorageFactoryConfig(hook=probe)), max_concurrency=1))
    async with storage:
        started = time.monotonic()
        await cancel_natively(
            how,
            lambda: storage.conversations.create_conversation(NewConversation(id="conv_native")),
            probe.first_started,
        )
        # What the canceller sees when the cancellation reaches it: the thread has finished,
        # the token is back, and the write that committed is visible.
        assert probe.active == 0
        assert probe.started == 1
        assert time.monotonic() - started >= 0.39
        assert storage.limiter.borrowed_tokens == 0
        probe.delay = lambda: 0.0
        assert storage.sync.conversations.get_conversation("conv_native") is not None
        with pytest.raises(ConflictError):
            await storage.conversations.create_conversation(NewConversation(id="conv_native"))


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_cancellation_while_waiting_for_a_thread_runs_nothing() -> None:
    import asyncio

    probe = Probe(delay=lambda: 0.3)
    storage = AsyncStorage(resized(create_storage(StorageFactoryConfig(hook=probe)), max_concurrency=1))
    async with storage:
        first = asyncio.ensure_future(storage.conversations.create_conversation(NewConversation(id="conv_first")))
        await until(probe.first_started)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(storage.conversations.create_conversation(NewConversation(id="conv_second")), 0.05)
        await first
        assert probe.started == 1
        assert storage.sync.conversations.get_conversation("conv_second") is None
        assert storage.limiter.borrowed_tokens == 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_cancellation_never_runs_more_threads_than_the_pool() -> None:
    import asyncio

    rng = random.Random("datacon-native-cancel")
    probe = Probe(delay=lambda: 0.03)
    storage = AsyncStorage(resized(create_storage(StorageFactoryConfig(hook=probe)), max_concurrency=2))
    async with storage:
        tasks = [
            asyncio.ensure_future(storage.conversations.create_conversation(NewConversation(id=f"conv_{n}")))
            for n in range(40)
        ]
        for task in tasks:
            await asyncio.sleep(rng.uniform(0, 0.01))
            if rng.random() < 0.6:
                task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        # Every cancelled task has been seen: no thread still runs one of them.
        assert probe.active == 0
        assert storage.limiter.borrowed_tokens == 0
        assert probe.max_active == 2
        cancelled = [o for o in outcomes if isinstance(o, asyncio.CancelledError)]
        assert cancelled
        assert len(cancelled) < len(outcomes)
        assert all(not isinstance(o, BaseException) or isinstance(o, asyncio.CancelledError) for o in outcomes)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_cancellation_leaks_no_connection(any_backend: BackendUnderTest) -> None:
    import asyncio

    rng = random.Random(f"datacon-native-leak-{any_backend.name}")
    probe = Probe(delay=lambda: rng.uniform(0, 0.01))
    async with create_async_storage(any_backend.config(hook=probe)) as storage:
        pool = storage.max_concurrency
        tasks = [
            asyncio.ensure_future(storage.conversations.create_conversation(NewConversation(id=f"conv_native_{n}")))
            for n in range(6 * pool)
        ]
        await asyncio.sleep(0.005)
        for task in tasks:
            if rng.random() < 0.5:
                task.cancel()
            await asyncio.sleep(rng.uniform(0, 0.002))
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert probe.active == 0
        assert probe.max_active <= pool
        assert storage.limiter.borrowed_tokens == 0
        assert all(not isinstance(o, BaseException) or isinstance(o, asyncio.CancelledError) for o in outcomes)
        await assert_pool_idle(storage)
        # The pool serves every connection it has, within its timeout: none was lost.
        probe.delay = lambda: 0.0
        seen = await asyncio.gather(
            *(storage.conversations.get_conversation(f"conv_native_{n}") for n in range(6 * pool))
        )
        for n, (outcome, conv) in enumerate(zip(outcomes, seen, strict=True)):
            if not isinstance(outcome, BaseException):
                assert conv == outcome, n


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_storage_opened_for_an_asyncio_cancelled_caller_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    made: list[Storage] = []

    def slow_create(config: StorageFactoryConfig | None = None) -> Storage:
        time.sleep(0.3)
        made.append(create_storage(config))
        return made[-1]

    monkeypatch.setattr(aio, "create_storage", slow_create)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(create_async_storage(), 0.05)
    assert len(made) == 1
    assert made[0].closed


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_aclose_completes_before_an_asyncio_cancellation_is_seen() -> None:
    import asyncio

    raw = create_storage()
    closing = threading.Event()

    def slow_close() -> None:
        closing.set()
        time.sleep(0.3)
        raw.close()

    storage = AsyncStorage(resized(raw, close=slow_close))
    task = asyncio.ensure_future(storage.aclose())
    await until(closing)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert raw.closed


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.parametrize("how", ["move_on_after", "fail_after", "cancel_scope"])
async def test_trio_cancellation_of_a_started_call_is_seen_after_its_thread_finished(how: str) -> None:
    import trio

    probe = Probe(delay=lambda: 0.4)
    storage = AsyncStorage(resized(create_storage(StorageFactoryConfig(hook=probe)), max_concurrency=1))
    async with storage:
        started = time.monotonic()
        returned: list[object] = []

        async def call() -> None:
            returned.append(await storage.conversations.create_conversation(NewConversation(id="conv_trio")))
            await trio.sleep(5)

        if how == "move_on_after":
            with trio.move_on_after(0.1) as scope:
                await call()
            assert scope.cancelled_caught
        elif how == "fail_after":
            with pytest.raises(trio.TooSlowError):
                with trio.fail_after(0.1):
                    await call()
        else:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(call)
                await until(probe.first_started)
                nursery.cancel_scope.cancel()
        assert probe.active == 0
        assert time.monotonic() - started >= 0.39
        assert storage.limiter.borrowed_tokens == 0
        assert storage.sync.conversations.get_conversation("conv_trio") is not None
        assert [c.id for c in returned] == ["conv_trio"]  # type: ignore[attr-defined]
