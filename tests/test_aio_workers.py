"""The async facade's worker threads: reuse, the cap, several event loops, errors, idle exit, FIFO, contexts."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
import time
from collections.abc import Callable

import anyio
import anyio.abc
import pytest

from datacon import ListParams, NewConversation, StorageFactoryConfig, StorageOperation, aio, create_storage
from datacon.aio import AsyncStorage
from tests.test_aio import Probe, resized

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def threads_of(idents: set[int]) -> list[threading.Thread]:
    """The running threads with these idents (a thread that ended may hand its ident to a new one)."""
    return [thread for thread in threading.enumerate() if thread.ident in idents]


def all_ended(threads: list[threading.Thread]) -> bool:
    return not any(thread.is_alive() for thread in threads)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def held_until(event: threading.Event) -> Callable[[], float]:
    """A probe delay that holds every call in its thread until ``event`` is set (no timing race)."""

    def delay() -> float:
        event.wait(10)
        return 0.0

    return delay


def held_storage(max_concurrency: int) -> tuple[threading.Event, Probe, AsyncStorage]:
    """A memory storage's facade of ``max_concurrency`` whose calls are held in their threads
    until the event is set, and the probe that counts them."""
    release = threading.Event()
    probe = Probe(delay=held_until(release))
    return (
        release,
        probe,
        AsyncStorage(resized(create_storage(StorageFactoryConfig(hook=probe)), max_concurrency=max_concurrency)),
    )


async def create_in_order(tg: anyio.abc.TaskGroup, storage: AsyncStorage, count: int) -> None:
    """Start ``count`` calls creating conv_0, conv_1... in ``tg``, in that order of arrival."""
    for n in range(count):
        tg.start_soon(storage.conversations.create_conversation, NewConversation(id=f"conv_{n}"))
        await anyio.sleep(0.001)  # a fixed arrival order


def created_ids(probe: Probe) -> list[str]:
    """The ids of the conversations created, in the order their calls started."""
    return [payload["id"] for op, payload, _ in probe.contexts if op is StorageOperation.CREATE_CONVERSATION]


async def test_one_caller_reuses_one_worker_thread() -> None:
    probe = Probe()
    async with AsyncStorage(create_storage(StorageFactoryConfig(hook=probe))) as storage:
        for n in range(20):
            await storage.conversations.get_conversation(f"conv_{n}")
    assert probe.started == 20
    assert len(probe.threads) == 1  # one long-lived thread, not one per call
    assert threading.get_ident() not in probe.threads


async def test_worker_threads_never_exceed_max_concurrency_and_stop_on_aclose() -> None:
    probe = Probe(delay=lambda: 0.01)
    storage = AsyncStorage(resized(create_storage(StorageFactoryConfig(hook=probe)), max_concurrency=3))
    async with storage:
        async with anyio.create_task_group() as tg:
            for n in range(60):
                tg.start_soon(storage.conversations.get_conversation, f"conv_{n}")
        assert storage._runner.workers.threads <= 3
        workers = threads_of(probe.threads)
    assert probe.started == 60
    assert probe.max_active == 3
    assert len(probe.threads) == len(workers) == 3
    # aclose() lets them go: no thread outlives the storage.
    assert wait_until(lambda: all_ended(workers))
    assert storage._runner.workers.threads == 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # this test runs its own loops
def test_several_event_loops_share_the_storages_threads(anyio_backend: str) -> None:
    probe = Probe(delay=lambda: 0.005)
    storage = AsyncStorage(resized(create_storage(StorageFactoryConfig(hook=probe)), max_concurrency=2))
    errors: list[BaseException] = []

    async def burst(tag: str) -> None:
        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(storage.conversations.create_conversation, NewConversation(id=f"conv_{tag}_{n}"))
        assert storage.limiter.borrowed_tokens == 0

    def loop_thread(tag: str, backend: str) -> None:
        try:
            anyio.run(burst, tag, backend=backend)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=loop_thread, args=(f"l{n}", backend))
        for n, backend in enumerate(["asyncio", "trio", "asyncio"])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert probe.started == 60
    # Each loop has its own limiter (2 tokens each), but the storage has 2 threads in all.
    assert probe.max_active <= 2
    assert len(probe.threads) <= 2
    assert all(storage.sync.conversations.get_conversation(f"conv_l{k}_{n}") for k in range(3) for n in range(20))
    storage.sync.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # this test runs its own loops
@pytest.mark.parametrize("how", ["anyio-asyncio", "anyio-trio", "wait_for"])
def test_a_call_admitted_but_not_yet_taken_by_a_thread_never_runs_when_cancelled(anyio_backend: str, how: str) -> None:
    # One worker thread, busy with another loop's call: this loop's call gets its own
    # limiter token and waits in the storage's queue; cancelled there, it never runs.
    release = threading.Event()
    probe = Probe(delay=held_until(release))
    storage = AsyncStorage(resized(create_storage(StorageFactoryConfig(hook=probe)), max_concurrency=1))
    other = threading.Thread(
        target=anyio.run, args=(storage.conversations.create_conversation, NewConversation(id="conv_other"))
    )
    other.start()
    assert probe.first_started.wait(5)

    async def cancelled() -> None:
        call = storage.conversations.create_conversation(NewConversation(id="conv_queued"))
        if how == "wait_for":
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(call, 0.05)
        else:
            with anyio.move_on_after(0.05) as scope:
                await call
            assert scope.cancelled_caught
        assert storage.limiter.borrowed_tokens == 0  # its token is back at once
        release.set()
        # And the storage still serves this loop.
        assert await storage.conversations.get_conversation("conv_other") is not None

    if how == "wait_for":
        asyncio.run(cancelled())
    else:
        anyio.run(cancelled, backend=how.removeprefix("anyio-"))
    other.join(5)
    assert created_ids(probe) == ["conv_other"]
    assert storage.sync.conversations.get_conversation("conv_queued") is None
    storage.sync.close()


async def test_waiting_calls_start_in_arrival_order_and_a_cancelled_one_gives_up_its_place() -> None:
    release = threading.Event()
    probe = Probe(delay=held_until(release))
    storage = AsyncStorage(resized(create_storage(StorageFactoryConfig(hook=probe)), max_concurrency=1))
    async with storage:
        scopes = {n: anyio.CancelScope() for n in range(6)}

        async def create(n: int) -> None:
            with scopes[n]:
                await storage.conversations.create_conversation(NewConversation(id=f"conv_{n}"))

        async with anyio.create_task_group() as tg:
            for n in range(6):
                tg.start_soon(create, n)
                await anyio.sleep(0.001)  # a fixed arrival order
            scopes[3].cancel()  # still waiting in line (conv_0 holds the only token)
            await anyio.sleep(0.01)
            release.set()
        assert storage.limiter.borrowed_tokens == 0
    assert created_ids(probe) == ["conv_0", "conv_1", "conv_2", "conv_4", "conv_5"]


async def test_a_caller_in_line_runs_next_in_the_thread_that_freed_the_token() -> None:
    """The thread that ends a call goes on to the first caller waiting for a token, with that
    token, without the event loop: here the loop is blocked while the line drains."""
    release, probe, storage = held_storage(max_concurrency=1)
    async with storage:
        async with anyio.create_task_group() as tg:
            await create_in_order(tg, storage, 5)
            assert probe.first_started.wait(5)
            assert probe.started == 1  # conv_0 holds the only token; four wait in line
            release.set()
            # The loop does not run until this returns: the four in line run one after the
            # other in the thread that ran conv_0, each with the token of the one before.
            assert wait_until(lambda: probe.started == 5)
            assert len(probe.threads) == 1
        assert storage.limiter.borrowed_tokens == 0
        assert created_ids(probe) == [f"conv_{n}" for n in range(5)]
        assert [c.id for c in (await storage.conversations.list_conversations(ListParams(10))).data] == sorted(
            f"conv_{n}" for n in range(5)
        )


async def test_tokens_lowered_while_callers_in_line_run_leave_the_limiter_balanced() -> None:
    """Lowering ``total_tokens`` while a thread has gone on to a caller in line: that caller
    runs (it had started), every call ends, and no token stays borrowed."""
    release, probe, storage = held_storage(max_concurrency=2)
    async with storage:
        async with anyio.create_task_group() as tg:
            await create_in_order(tg, storage, 8)
            assert wait_until(lambda: probe.started == 2)
            storage.limiter.total_tokens = 1  # two run on two tokens; six wait in line
            release.set()
        assert probe.started == 8
        assert probe.max_active <= 2
        assert storage.limiter.borrowed_tokens == 0
        storage.limiter.total_tokens = 2
        assert await storage.conversations.get_conversation("conv_7") is not None


class Boom(BaseException):
    """Not even an Exception: the worker must hand it back and survive."""


async def test_a_call_that_raises_hands_the_error_back_and_its_thread_keeps_serving() -> None:
    async with AsyncStorage(create_storage()) as storage:
        run = storage._runner.run
        threads: list[int] = []

        def fail(exc: BaseException) -> None:
            threads.append(threading.get_ident())
            raise exc

        with pytest.raises(ValueError, match="bad"):
            await run(fail, ValueError("bad"))
        with pytest.raises(Boom):
            await run(fail, Boom())
        assert await run(lambda: threading.get_ident()) == threads[0] == threads[1]
        assert storage.limiter.borrowed_tokens == 0


async def test_calls_run_in_a_copy_of_the_callers_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    async with AsyncStorage(create_storage()) as storage:
        run = storage._runner.run

        def read_and_set() -> str:
            seen = var.get()
            var.set("set in the thread")
            return seen

        async def as_caller(value: str, out: dict[str, str]) -> None:
            var.set(value)
            out[value] = await run(read_and_set)
            assert var.get() == value  # nothing flows back

        seen: dict[str, str] = {}
        async with anyio.create_task_group() as tg:
            for value in ("a", "b", "c"):
                tg.start_soon(as_caller, value, seen)
        assert seen == {"a": "a", "b": "b", "c": "c"}
        # The thread's own context is not touched either: a caller that set nothing sees the default.
        assert await run(read_and_set) == "unset"


async def test_idle_threads_exit_and_a_later_call_starts_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aio, "IDLE_SECS", 0.1)
    async with AsyncStorage(create_storage()) as storage:
        first = await storage._runner.run(threading.current_thread)
        assert await anyio.to_thread.run_sync(lambda: wait_until(lambda: not first.is_alive()))
        assert storage._runner.workers.threads == 0
        second = await storage._runner.run(threading.current_thread)
        assert second is not first
        assert second.is_alive()
        assert storage._runner.workers.threads == 1


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_facade_dropped_without_aclose_lets_its_threads_go() -> None:
    sync = create_storage()
    facade = AsyncStorage(sync)
    worker = await facade._runner.run(threading.current_thread)
    del facade
    gc.collect()
    assert await anyio.to_thread.run_sync(lambda: wait_until(lambda: not worker.is_alive()))
    sync.close()


async def test_a_call_made_in_an_already_cancelled_scope_never_starts() -> None:
    probe = Probe()
    async with AsyncStorage(create_storage(StorageFactoryConfig(hook=probe))) as storage:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await storage.conversations.create_conversation(NewConversation(id="conv_never"))
            pytest.fail("the call must raise the cancellation")
        assert scope.cancelled_caught
        assert probe.started == 0
        assert storage.limiter.borrowed_tokens == 0
        assert await storage.conversations.get_conversation("conv_never") is None


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # this test forks and runs its own loop there
def test_a_forked_child_starts_its_own_worker_threads(anyio_backend: str) -> None:
    import os

    storage = AsyncStorage(create_storage())
    conv = anyio.run(storage.conversations.create_conversation, NewConversation(id="conv_parent"))
    assert storage._runner.workers.threads == 1  # the parent's thread, absent from a child
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        code = 1
        try:
            got = asyncio.run(asyncio.wait_for(storage.conversations.get_conversation("conv_parent"), 5))
            code = 0 if got == conv else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    storage.sync.close()


# --- how many threads: the eager ones, then the load watch ------------------------------------


def saturated() -> float:
    """A process clock that runs twice as fast as the wall clock: the process keeps two cores busy."""
    return 2 * time.monotonic()


async def wait_for_active(probe: Probe, count: int) -> None:
    with anyio.fail_after(10):
        while probe.active < count:  # noqa: ASYNC110 - counted in the worker threads
            await anyio.sleep(0.002)


async def test_threads_beyond_the_eager_ones_start_while_calls_wait_off_the_cpu() -> None:
    """Calls held in their threads, the process idle: the watch adds threads until every call
    that holds a token runs, so none waits behind a slow one; aclose() ends the watch too."""
    release, probe, storage = held_storage(max_concurrency=8)
    workers = storage._runner.workers
    async with storage, anyio.create_task_group() as tg:
        for n in range(8):
            tg.start_soon(storage.conversations.get_conversation, f"conv_{n}")
        await wait_for_active(probe, 8)
        assert workers.threads == 8 > aio.EAGER_THREADS
        watch = workers._watch
        assert watch is not None
        watch_alive = watch.is_alive
        release.set()
    assert (probe.started, probe.max_active) == (8, 8)
    assert wait_until(lambda: not watch_alive())
    assert workers._watch is None


async def test_a_saturated_process_keeps_to_the_eager_threads() -> None:
    """The process keeps the CPU busy: waiting calls get no thread beyond the eager ones (they
    would only contend for the GIL); each runs when one of those is free."""
    release, probe, storage = held_storage(max_concurrency=8)
    workers = storage._runner.workers
    workers.cpu_clock = saturated
    async with storage, anyio.create_task_group() as tg:
        for n in range(8):
            tg.start_soon(storage.conversations.get_conversation, f"conv_{n}")
        await wait_for_active(probe, aio.EAGER_THREADS)
        await anyio.sleep(50 * aio.WATCH_SECS)  # fifty of the watch's looks
        assert (probe.active, workers.threads) == (aio.EAGER_THREADS, aio.EAGER_THREADS)
        release.set()
    assert probe.started == 8
    assert probe.max_active == len(probe.threads) == aio.EAGER_THREADS


async def test_threads_beyond_the_eager_ones_leave_when_the_process_saturates() -> None:
    """Grown while calls waited off the CPU, the threads go back to the eager ones, one at a time
    between two calls, once the process keeps the CPU busy; every call still runs."""
    release, probe, storage = held_storage(max_concurrency=8)
    workers = storage._runner.workers
    async with storage:
        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(storage.conversations.get_conversation, f"conv_{n}")
            await wait_for_active(probe, 8)
            workers.cpu_clock = saturated
            release.set()
        rounds = 0
        with anyio.fail_after(10):
            while workers.threads > aio.EAGER_THREADS:
                async with anyio.create_task_group() as tg:
                    for n in range(16):
                        tg.start_soon(storage.conversations.get_conversation, f"conv_{n}")
                rounds += 1
        assert workers.threads == aio.EAGER_THREADS
        assert probe.started == 8 + 16 * rounds
        assert probe.active == 0


def test_docs_state_the_thread_settings() -> None:
    """docs/async.md gives the eager threads and the watch's period and thresholds: they are these."""
    from pathlib import Path

    text = " ".join((Path(__file__).parents[1] / "docs" / "async.md").read_text(encoding="utf-8").split())
    assert (aio.EAGER_THREADS, aio.WATCH_SECS, aio.GROW_BELOW, aio.SHRINK_ABOVE) == (2, 0.002, 0.95, 1.05)
    for said in (
        "Two threads start as soon as calls wait for one (`datacon.aio.EAGER_THREADS`)",
        "every 2 ms (`WATCH_SECS`)",
        "less than 0.95 of a core (`GROW_BELOW`",
        "more than 1.05 (`SHRINK_ABOVE`",
        "a thread beyond the first two leaves",
    ):
        assert said in text, said
