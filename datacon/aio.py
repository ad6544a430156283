"""The anyio async facade (asyncio and trio): each call runs whole in a worker thread, sized to the pool."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import math
import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from anyio import CancelScope, CapacityLimiter, WouldBlock, current_effective_deadline
from anyio.lowlevel import RunVar, checkpoint_if_cancelled

from datacon.config import StorageFactoryConfig
from datacon.factory import create_storage
from datacon.models import (
    Conversation,
    ConversationItem,
    ConversationPage,
    ItemPage,
    ListParams,
    NewConversation,
    NewConversationItem,
    PruneReport,
    ResponseChain,
    StoredResponse,
)
from datacon.storage import (
    PRUNE_BATCH,
    ConversationItemStorage,
    ConversationStorage,
    HealthReport,
    PruneProgress,
    ResponseStorage,
    Storage,
)

if TYPE_CHECKING:
    import trio

__all__ = [
    "AsyncConversationItemStorage",
    "AsyncConversationStorage",
    "AsyncResponseStorage",
    "AsyncStorage",
    "AsyncStorageOpener",
    "create_async_storage",
]

P = ParamSpec("P")
T = TypeVar("T")
V = TypeVar("V")

#: How long an idle worker thread waits for work before it exits (a later call starts a new one).
IDLE_SECS = 10.0
#: Worker threads a storage starts as soon as calls wait for one. Beyond these (up to its
#: ``max_concurrency``) the load watch decides: see :class:`_Workers`.
EAGER_THREADS = 2
#: The load watch's period, while calls wait for a thread.
WATCH_SECS = 0.002
#: With calls waiting, the process's CPU time over a period, as a share of the period: below
#: ``GROW_BELOW`` a thread is added (the calls wait on I/O), above ``SHRINK_ABOVE`` one beyond
#: ``EAGER_THREADS`` leaves (the calls are bound by the CPU, and threads only contend for the GIL).
GROW_BELOW = 0.95
SHRINK_ABOVE = 1.05


class _LoopCache(Generic[V]):
    """The value a ``RunVar`` holds in the last asyncio loop that asked, without the lookup.

    A ``RunVar`` lookup (anyio's current token, then a weak dictionary) costs a few µs, twice
    per call; the running asyncio loop is the token, so the last ``(loop, value)`` pair is
    kept (one tuple, replaced whole: threads running other loops read a consistent pair) and
    any other loop, or trio, goes through the ``RunVar``. The key is held weakly; a value that
    refers to its loop (an inbox wakes it) keeps one closed loop reachable until another asks.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[weakref.ref[asyncio.AbstractEventLoop], V] | None = None

    def get(self, var: RunVar[V], make: Callable[[], V]) -> V:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # trio
            loop = None
        last = self._last
        if loop is not None and last is not None and last[0]() is loop:
            return last[1]
        value = var.get(None)
        if value is None:
            # No await between get and set: two tasks of one loop cannot both create one.
            value = make()
            var.set(value)
        if loop is not None:
            self._last = (weakref.ref(loop), value)
        return value


class _Job:
    """One blocking call on its way to a worker thread and back.

    Whoever pops ``_claim`` first decides: the worker (the call runs, to its end) or the
    event loop cancelling it (the call never runs). ``list.pop`` is atomic, so no lock.
    """

    __slots__ = (
        "_claim",
        "_context",
        "_func",
        "admitted",
        "delivered",
        "error",
        "gate",
        "result",
        "successor",
        "waiter",
    )

    def __init__(self, func: Callable[[], object], gate: _Gate) -> None:
        self._func = func
        self._context = contextvars.copy_context()
        self._claim = [True]
        self.gate = gate
        self.admitted = False  # holds a limiter token, handed to the workers (loop thread only)
        self.waiter: Any = None  # what the drain wakes: an asyncio future, or a trio task
        self.result: object = None
        self.error: BaseException | None = None
        self.delivered = False  # its drain ran: token given back, caller woken (loop thread only)
        self.successor: _Job | None = None  # the pending job its thread went on to, with its token

    def drop(self) -> bool:
        """Make sure the call never starts (and give back its place or token); ``False`` if it already has."""
        try:
            self._claim.pop()
        except IndexError:
            return False
        self.gate.forget(self)
        return True

    def start(self) -> bool:
        """Claim the call for a worker thread; ``False`` if it was dropped (it must not run)."""
        try:
            self._claim.pop()
        except IndexError:
            return False
        return True

    def execute(self) -> None:
        """Run the call in the caller's context (in a worker thread), keeping its result or error."""
        try:
            self.result = self._context.run(self._func)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it
            self.error = exc

    def outcome(self) -> Any:
        """The call's result, or its error raised."""
        error = self.error
        if error is not None:
            self.error = None  # no cycle through the traceback
            raise error
        return self.result


class _Inbox:
    """Finished jobs of one event loop, handed back in batches.

    A worker appends its job and asks the loop to drain only if no drain is pending, so a busy
    loop is woken once for many results instead of once per result. The drain runs on the
    loop: it gives the job's token to the next waiting job, then wakes the job's caller.
    """

    __slots__ = ("_armed", "_done", "_wake", "checkpoint_if_cancelled", "loop")

    def __init__(self, wake: Callable[[Callable[[], None]], object], loop: asyncio.AbstractEventLoop | None) -> None:
        self._done: deque[_Job] = deque()
        self._armed = False
        self._wake = wake
        self.loop = loop  # None under trio
        self.checkpoint_if_cancelled = _backend_checkpoint_if_cancelled()

    def post(self, job: _Job) -> None:
        """Hand a finished job back (from a worker thread)."""
        self._done.append(job)
        if not self._armed:
            # A drain lowers the flag before it empties the deque: a job appended after that
            # sees it down and arms a new drain (two workers may both arm one: harmless).
            self._armed = True
            # The event loop has closed: nobody waits any more (trio's RunFinishedError is one too).
            with contextlib.suppress(RuntimeError):
                self._wake(self._drain)

    def _drain(self) -> None:
        self._armed = False
        done = self._done
        while done:
            job = done.popleft()
            job.gate.release(job)
            job.delivered = True
            self._deliver(job)

    def _deliver(self, job: _Job) -> None:
        waiter: asyncio.Future[None] = job.waiter
        if not waiter.done():
            waiter.set_result(None)


class _TrioInbox(_Inbox):
    __slots__ = ()

    def _deliver(self, job: _Job) -> None:
        import trio

        trio.lowlevel.reschedule(job.waiter)


def _backend_checkpoint_if_cancelled() -> Callable[[], Awaitable[None]]:
    """anyio's ``checkpoint_if_cancelled`` of the running backend, without finding the backend per call.

    ``anyio.lowlevel.checkpoint_if_cancelled`` asks sniffio which library runs on every call
    (about a third of the facade's own per-call work on asyncio); the answer never changes
    within one event loop. An anyio without this helper gets the public function.
    """
    try:
        from anyio._core._eventloop import get_async_backend

        return get_async_backend().checkpoint_if_cancelled
    except (ImportError, AttributeError):  # pragma: no cover - anyio moved it
        return checkpoint_if_cancelled


def _make_inbox() -> _Inbox:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        import trio

        return _TrioInbox(trio.lowlevel.current_trio_token().run_sync_soon, None)
    return _Inbox(loop.call_soon_threadsafe, loop)


_INBOX: RunVar[_Inbox] = RunVar("datacon-inbox")
_INBOX_CACHE: _LoopCache[_Inbox] = _LoopCache()

_RETIRE = object()  # put on a queue: one worker thread may exit


class _Workers:
    """At most ``size`` long-lived worker threads of one storage, fed by one queue.

    Threads take jobs one after the other without sleeping while there are any (from the
    queue, or a job waiting in its last job's line for a token: ``_Gate.take_next``), and exit
    after ``IDLE_SECS`` without work or when :meth:`stop` asks. Up to ``EAGER_THREADS`` start
    on demand (when more jobs wait than threads are free). Beyond those, while jobs wait, a
    watch thread measures the process's CPU time every ``WATCH_SECS``: it adds a thread when
    the process leaves the CPU mostly idle (the calls wait on their servers: more threads
    serve more of them at once, up to ``size``), and lets one go when the process keeps a
    core busy (the calls are bound by the CPU under the GIL: more threads only contend for it,
    and every hand-off of the GIL costs a context switch). A thread counts as free from the
    moment its call has ended without a next one in line (before its result is handed back,
    so the caller's next call finds it free) until it takes the next job. It exits only if,
    under ``_lock``, every queued job still has a free thread to take it (or, let go by the
    watch, between two jobs while other threads remain), so no job is ever stranded. The
    watch also looks, ten times less often, while more than ``EAGER_THREADS`` threads live, so
    that they go once the process saturates even when no job waits. All event loops share them.
    """

    def __init__(self, size: int, name: str) -> None:
        self.size = max(1, size)
        self._name = name
        self._reset()
        _ALL_WORKERS.add(self)

    def _reset(self) -> None:
        """No threads, nothing queued (new, or in a forked child, where the parent's threads do not exist)."""
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0  # alive (or starting)
        self._free = 0  # alive and not running a call
        self._retiring = 0  # _RETIRE markers in the queue
        self._excess = 0  # threads the watch lets go (each leaves between two jobs)
        self._watching = threading.Event()  # set: jobs wait beyond the eager threads
        self._watch: threading.Thread | None = None
        self._unwatch = False  # stop() asks the watch to exit
        self.cpu_clock: Callable[[], float] = time.process_time  # what the watch reads the load from

    @property
    def threads(self) -> int:
        """How many worker threads are alive now."""
        return self._threads

    def _backlog(self) -> int:
        """Queued jobs that no free thread will take (an unlocked estimate)."""
        return self._queue.qsize() - self._retiring - self._free

    def submit(self, job: _Job) -> None:
        self._queue.put(job)
        # Unlocked reads: a stale value can only delay a start, never strand the job
        # (a busy thread takes it when its call ends); _start rechecks the cap under the lock.
        if self._backlog() > 0:
            if self._threads < min(self.size, EAGER_THREADS):
                self._start()
            elif self.size > EAGER_THREADS and not self._watching.is_set():
                self._wake_watch()

    def _wake_watch(self) -> None:
        # Under the lock: a watch deciding to exit (under it too) either sees the event set or
        # is gone, and then a new one starts.
        with self._lock:
            self._watching.set()
            if self._watch is not None:
                return
            watch = self._watch = threading.Thread(target=self._watch_load, name=f"{self._name}-watch", daemon=True)
        watch.start()

    def _watch_load(self) -> None:
        """The load watch (see the class). It runs while jobs wait for a thread (a period of
        ``WATCH_SECS``) or more threads than ``EAGER_THREADS`` live (ten periods, to let
        threads go when the process is saturated), sleeps otherwise, and exits after
        ``IDLE_SECS`` without being woken."""
        watching, clock = self._watching, time.monotonic
        while True:
            watching.clear()  # then look: a job queued after this sets it again
            if self._unwatch:  # stop(): a later call starts a new watch
                with self._lock:
                    self._watch, self._unwatch = None, False
                return
            waiting = self._backlog() > 0
            if not waiting and self._threads <= EAGER_THREADS:
                if not watching.wait(IDLE_SECS):
                    with self._lock:
                        if not watching.is_set():
                            self._watch = None
                            return
                continue
            began, used = clock(), self.cpu_clock()
            time.sleep(WATCH_SECS if waiting else 10 * WATCH_SECS)
            load = (self.cpu_clock() - used) / max(clock() - began, 1e-9)
            if load > SHRINK_ABOVE:
                with self._lock:
                    if self._threads - self._excess > EAGER_THREADS:
                        self._excess += 1
            elif load < GROW_BELOW and self._backlog() > 0:
                self._start()

    def _leave(self) -> bool:
        """Whether this (free) thread goes, let go by the watch (``EAGER_THREADS`` remain)."""
        with self._lock:
            if self._excess <= 0 or self._threads <= EAGER_THREADS:
                return False
            self._excess -= 1
            self._threads -= 1
            self._free -= 1
            return True

    def _start(self) -> None:
        with self._lock:
            if self._threads >= self.size:
                return
            self._threads += 1
            self._free += 1
            number = self._threads
        try:
            threading.Thread(target=self._work, name=f"{self._name}-{number}", daemon=True).start()
        except BaseException:
            with self._lock:
                self._threads -= 1
                self._free -= 1
            raise

    def stop(self) -> None:
        """Ask every thread to exit once free (running calls finish first; a later call starts new ones)."""
        with self._lock:
            count = self._threads
            self._retiring += count
            self._excess = 0
            self._unwatch = self._watch is not None
        self._watching.set()
        for _ in range(count):
            self._queue.put(_RETIRE)

    def _retire(self, marker: bool) -> bool:
        """Whether this (free) thread may exit now: only if every queued job keeps a free thread."""
        with self._lock:
            if marker:
                self._retiring -= 1
            if self._queue.qsize() - self._retiring > self._free - 1:
                return False
            self._free -= 1
            self._threads -= 1
            self._excess = max(0, self._excess - 1)  # gone anyway: one fewer for the watch to let go
            return True

    def _work(self) -> None:
        get, empty = self._queue.get, self._queue.empty
        lock = self._lock
        while True:
            try:
                job = get(timeout=IDLE_SECS)
            except queue.Empty:
                job = None
            if job is None or job is _RETIRE:
                if self._retire(marker=job is _RETIRE):
                    return
                continue
            if not job.start():
                continue  # dropped while queued
            with lock:
                self._free -= 1
            while job is not None:
                job.execute()
                # A caller waiting in line for a token goes next, in this thread, with the
                # token of the call that just ended (no trip through the queue and the loop),
                # unless admitted calls (of any event loop) wait in the queue: they go first.
                successor = job.gate.take_next(job) if empty() else None
                if successor is None:
                    with lock:
                        self._free += 1
                job.gate.inbox.post(job)
                job = successor
            if self._excess and self._leave():
                return


_ALL_WORKERS: weakref.WeakSet[_Workers] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for workers in list(_ALL_WORKERS):
        workers._reset()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Gate:
    """One storage's admission in one event loop: the limiter's tokens and the jobs waiting for one.

    A job takes a token (borrowed on its own behalf) and goes to the worker threads, or waits
    in ``pending``, first come first served. When a job ends, the thread that ran it takes the
    first pending job itself (``take_next``, unless admitted jobs wait in the workers' queue)
    and runs it with the ended job's token; the drain then moves the token in the limiter's
    books. Otherwise the drain hands the token straight to the next pending job and submits
    it. Either way a waiting caller is woken once, with its result. Everything here runs on
    the event loop's thread, except ``take_next`` (a worker thread; ``deque.popleft`` and the
    job's claim are atomic, so a job taken out of line and a caller cancelling it agree on
    whether it runs).
    """

    __slots__ = ("inbox", "limiter", "pending", "workers")

    def __init__(self, size: int, workers: _Workers) -> None:
        self.limiter = CapacityLimiter(size)
        self.pending: deque[_Job] = deque()
        self.workers = workers
        self.inbox = _INBOX_CACHE.get(_INBOX, _make_inbox)

    def admit(self, job: _Job) -> None:
        if not self.pending:
            try:
                self.limiter.acquire_on_behalf_of_nowait(job)
            except WouldBlock:
                pass
            else:
                job.admitted = True
                self.workers.submit(job)
                return
        self.pending.append(job)

    def take_next(self, job: _Job) -> _Job | None:
        """The first job waiting in line, claimed to run next with ``job``'s token (in the
        worker thread that ran ``job``, before ``job`` is posted back), or ``None``. The
        limiter's books follow at ``job``'s drain (:meth:`release`)."""
        pending = self.pending
        while pending:
            try:
                successor = pending.popleft()
            except IndexError:  # the loop took the last one meanwhile
                return None
            if successor.start():
                job.successor = successor
                return successor
            # Dropped while waiting: its caller's forget() finds it out of line already.
        return None

    def release(self, job: _Job) -> None:
        """``job`` ended (or was dropped after admission): its token goes to the next pending job."""
        limiter = self.limiter
        if job.admitted:
            limiter.release_on_behalf_of(job)
        successor = job.successor
        if successor is not None:
            # Its thread went on to the next caller in line: that one holds the token now.
            job.successor = None
            try:
                limiter.acquire_on_behalf_of_nowait(successor)
            except WouldBlock:  # total_tokens was lowered meanwhile: it runs without one
                return
            successor.admitted = True
            return
        pending = self.pending
        if pending:
            try:
                limiter.acquire_on_behalf_of_nowait(pending[0])
            except WouldBlock:  # total_tokens was lowered meanwhile
                return
            nxt = pending.popleft()
            nxt.admitted = True
            self.workers.submit(nxt)

    def forget(self, job: _Job) -> None:
        """``job`` was dropped before it started: give back its token, or its place in line."""
        if job.admitted:
            self.release(job)
        else:
            with contextlib.suppress(ValueError):  # a worker thread took it out of line first
                self.pending.remove(job)


class _ThreadRunner:
    """Runs blocking storage calls in this storage's worker threads, at most ``max_threads`` at once per event loop.

    The limiter is private to one storage (never anyio's process-wide default, which
    Starlette/FastAPI and everything else share) and sized to the backend's pool: surplus
    callers then wait in line (async, FIFO and cancellable) instead of blocking a thread
    inside the pool's ``getconn``. A ``RunVar`` gives each event loop its own limiter, so one
    storage can serve several loops (a portal thread, tests); the worker threads (at most
    ``max_threads``) are the storage's, shared by every loop.
    """

    def __init__(self, max_threads: int, name: str = "datacon-aio") -> None:
        self.max_threads = max(1, max_threads)
        self._gate: RunVar[_Gate] = RunVar(f"datacon-gate-{id(self):x}")
        self._gates: _LoopCache[_Gate] = _LoopCache()
        self.workers = _Workers(self.max_threads, name)
        # Dropped without aclose(): its idle threads exit now rather than after IDLE_SECS.
        self._finalizer = weakref.finalize(self, self.workers.stop)

    def _make_gate(self) -> _Gate:
        return _Gate(self.max_threads, self.workers)

    @property
    def limiter(self) -> CapacityLimiter:
        """This storage's limiter in the running event loop (made on first use)."""
        return self._gates.get(self._gate, self._make_gate).limiter

    async def run(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``func(*args, **kwargs)`` in a worker thread, in a copy of the caller's context.

        Cancelled (anyio scopes, trio, or asyncio's ``task.cancel()``/``wait_for``/``timeout``)
        while waiting for a token or before a thread took the call up: it never runs.
        Cancelled later: the caller waits for the thread to finish, then the cancellation
        propagates (under anyio scopes and trio the call's result is returned first, and the
        cancellation lands at the next checkpoint; asyncio's own cancellation cannot be
        postponed, so there the result is discarded and ``CancelledError`` raised after the
        thread). The token is held until the thread has finished.
        """
        gate = self._gates.get(self._gate, self._make_gate)
        job = _Job(functools.partial(func, *args, **kwargs) if args or kwargs else func, gate)
        loop = gate.inbox.loop
        if loop is None:
            return await _run_trio(job)  # type: ignore[no-any-return]
        # A checkpoint like anyio's: a call made in an already cancelled scope never starts.
        await gate.inbox.checkpoint_if_cancelled()
        waiter = job.waiter = loop.create_future()
        gate.admit(job)
        try:
            await waiter
        except asyncio.CancelledError:
            if job.drop():
                raise  # still waiting for a token or a thread: it never runs
            if not job.delivered:
                await _outlast(job, loop)
            if current_effective_deadline() != -math.inf:
                # No anyio scope is cancelled: asyncio's own task.cancel() (wait_for, timeout),
                # which cannot be postponed; the thread has finished, the result is discarded.
                raise
            # An anyio scope: the result is returned; the scope cancels at the next checkpoint.
        return job.outcome()  # type: ignore[no-any-return]

    def stop(self) -> None:
        """Let the worker threads exit once idle (see :meth:`_Workers.stop`)."""
        self.workers.stop()


async def _outlast(job: _Job, loop: asyncio.AbstractEventLoop) -> None:
    """Wait until the started job has ended, whatever cancellation arrives meanwhile (asyncio)."""
    waiter = job.waiter = loop.create_future()  # its drain has not run yet: it wakes this one
    with CancelScope(shield=True):  # anyio scopes stop retrying their cancellation
        while not waiter.done():
            with contextlib.suppress(asyncio.CancelledError):  # asyncio's task.cancel() pierces anyio's shield
                await asyncio.shield(waiter)


async def _run_trio(job: _Job) -> Any:
    import trio

    await trio.lowlevel.checkpoint_if_cancelled()
    job.waiter = trio.lowlevel.current_task()
    job.gate.admit(job)

    def abort(_: object) -> trio.lowlevel.Abort:
        # Still waiting: it never runs. Started: it runs to its end, the task is rescheduled
        # then, and trio raises the cancellation at its next checkpoint.
        return trio.lowlevel.Abort.SUCCEEDED if job.drop() else trio.lowlevel.Abort.FAILED

    await trio.lowlevel.wait_task_rescheduled(abort)
    return job.outcome()


class AsyncConversationStorage:
    """Async twin of :class:`~datacon.storage.ConversationStorage`; see :class:`AsyncStorage` on cancellation."""

    def __init__(self, wrapped: ConversationStorage, runner: _ThreadRunner) -> None:
        self._sync = wrapped
        self._run = runner.run

    @property
    def wrapped(self) -> ConversationStorage:
        """The sync storage every call is forwarded to."""
        return self._sync

    async def create_conversation(self, new: NewConversation, *, idempotency_key: str | None = None) -> Conversation:
        """Create a conversation (fresh ``conv_…`` id unless given); ``ConflictError`` if the id exists.

        Cancelled: it was not created, or it was (retry with the same ``idempotency_key``, or
        an explicit id, to know which: see the sync method).
        """
        return await self._run(self._sync.create_conversation, new, idempotency_key=idempotency_key)

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        """The conversation, or ``None``."""
        return await self._run(self._sync.get_conversation, conversation_id)

    async def update_conversation(
        self, conversation_id: str, metadata: dict[str, object] | None
    ) -> Conversation | None:
        """Replace the metadata (``None`` clears it); the conversation, or ``None`` if absent.

        Cancelled: the metadata is either the old or the new value, never a mix.
        """
        return await self._run(self._sync.update_conversation, conversation_id, metadata)

    async def delete_conversation(self, conversation_id: str) -> bool:
        """Delete the conversation and its links (items stay); whether it existed.

        Cancelled: it is either untouched or fully deleted.
        """
        return await self._run(self._sync.delete_conversation, conversation_id)

    async def list_conversations(self, params: ListParams, filter: Mapping[str, str] | None = None) -> ConversationPage:
        """A page of conversations ordered by ``(created_at, id)``, filtered by extra columns."""
        return await self._run(self._sync.list_conversations, params, filter)


class AsyncConversationItemStorage:
    """Async twin of :class:`~datacon.storage.ConversationItemStorage`; see :class:`AsyncStorage` on cancellation."""

    def __init__(self, wrapped: ConversationItemStorage, runner: _ThreadRunner) -> None:
        self._sync = wrapped
        self._run = runner.run

    @property
    def wrapped(self) -> ConversationItemStorage:
        """The sync storage every call is forwarded to."""
        return self._sync

    async def create_item(self, new: NewConversationItem, *, idempotency_key: str | None = None) -> ConversationItem:
        """Create an item (id from ``make_item_id`` unless given); ``ConflictError`` if the id exists.

        Cancelled: it was not created, or it was (retry with the same ``idempotency_key``, or
        an explicit id, to know which).
        """
        return await self._run(self._sync.create_item, new, idempotency_key=idempotency_key)

    async def link_item(self, conversation_id: str, item_id: str, added_at: datetime) -> None:
        """Link an item to a conversation at ``added_at``; ``ConflictError`` if already linked.

        Cancelled: the link was made or not; a retry then raises ``ConflictError`` or links it.
        """
        return await self._run(self._sync.link_item, conversation_id, item_id, added_at)

    async def link_items(self, conversation_id: str, items: Sequence[tuple[str, datetime]]) -> None:
        """Link several items atomically (all or none, ``ConflictError``), in one call and one thread.

        Cancelled: all links were made, or none.
        """
        return await self._run(self._sync.link_items, conversation_id, items)

    async def append_items(
        self,
        conversation_id: str,
        items: Sequence[NewConversationItem],
        added_at: datetime | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> list[ConversationItem]:
        """Create the items and link them in the order given, atomically, in one call and one thread.

        Cancelled: every item was created and linked, or none (a retry with the same
        ``idempotency_key`` returns the items if they were).
        """
        return await self._run(
            self._sync.append_items, conversation_id, items, added_at, idempotency_key=idempotency_key
        )

    async def list_items(self, conversation_id: str, params: ListParams) -> list[ConversationItem]:
        """One page of linked items in ``(added_at, link sequence)`` order after the ``after`` cursor."""
        return await self._run(self._sync.list_items, conversation_id, params)

    async def list_items_page(self, conversation_id: str, params: ListParams) -> ItemPage:
        """One page with its ``has_more`` and ``next_cursor`` (see the sync method)."""
        return await self._run(self._sync.list_items_page, conversation_id, params)

    async def get_item(self, item_id: str) -> ConversationItem | None:
        """The item, or ``None``."""
        return await self._run(self._sync.get_item, item_id)

    async def is_item_linked(self, conversation_id: str, item_id: str) -> bool:
        """Whether the item is linked to the conversation."""
        return await self._run(self._sync.is_item_linked, conversation_id, item_id)

    async def delete_item(self, conversation_id: str, item_id: str) -> None:
        """Remove the link only (the item record stays).

        Cancelled: the link is either still there or removed.
        """
        return await self._run(self._sync.delete_item, conversation_id, item_id)


class AsyncResponseStorage:
    """Async twin of :class:`~datacon.storage.ResponseStorage`; see :class:`AsyncStorage` on cancellation."""

    def __init__(self, wrapped: ResponseStorage, runner: _ThreadRunner) -> None:
        self._sync = wrapped
        self._run = runner.run

    @property
    def wrapped(self) -> ResponseStorage:
        """The sync storage every call is forwarded to."""
        return self._sync

    async def store_response(self, response: StoredResponse, *, idempotency_key: str | None = None) -> str:
        """Store a response and return its id; ``ConflictError`` if the id exists.

        Cancelled: it was stored or not; the id is in ``response.id``, so a retry is safe
        (with the same ``idempotency_key`` and object it returns the id either way).
        """
        return await self._run(self._sync.store_response, response, idempotency_key=idempotency_key)

    async def get_response(self, response_id: str) -> StoredResponse | None:
        """The response, or ``None``."""
        return await self._run(self._sync.get_response, response_id)

    async def delete_response(self, response_id: str) -> None:
        """Delete the response (children keep their dangling ``previous_response_id``)."""
        return await self._run(self._sync.delete_response, response_id)

    async def get_response_chain(self, response_id: str, max_depth: int | None = None) -> ResponseChain:
        """The chain ending at ``response_id``, oldest first, walked in one thread hop.

        :raises InvalidChainError: the chain loops back on itself.
        """
        return await self._run(self._sync.get_response_chain, response_id, max_depth)

    async def list_identifier_responses(self, identifier: str, limit: int | None = None) -> list[StoredResponse]:
        """Responses with this safety identifier, newest first (ties: id descending)."""
        return await self._run(self._sync.list_identifier_responses, identifier, limit)

    async def delete_identifier_responses(self, identifier: str) -> int:
        """Delete every response with this safety identifier; how many were deleted.

        Cancelled: either none or all of them were deleted (the count is then lost).
        """
        return await self._run(self._sync.delete_identifier_responses, identifier)


class AsyncStorage:
    """The three storages of a sync :class:`~datacon.storage.Storage`, as coroutines (asyncio or trio).

    Every method runs its sync twin whole in one worker thread (one thread hop, one backend
    call, at most one pooled connection), in a copy of the caller's context, so a
    :func:`~datacon.request_context` set around ``await`` reaches hooks. Nothing flows back:
    context variables set inside the thread stay there.

    **Threads.** At most ``max_concurrency`` calls (the backend's pool size) run at once per
    event loop, through a limiter private to this storage; anyio's shared default limiter
    (40 threads) is never used. The calls run in this storage's own worker threads, at most
    ``max_concurrency`` in all (shared by every event loop), started on demand and stopped by
    :meth:`aclose` or after 10 s idle; results go back to the loop in batches.

    **Cancellation.** A cancelled call either did not start (it was still waiting for a
    thread: it raises the cancellation and did nothing) or ran to completion, with its
    connection back in the pool, before the caller resumes; a started call is never
    abandoned. A call that completed returns its result (or raises its error) as usual, and
    the cancellation is raised at the caller's next checkpoint. So a caller who sees the
    cancellation cannot tell "not applied" from "applied": writes take their ids before any
    I/O, and retrying with the same id gives ``ConflictError`` if the first attempt landed.
    ``move_on_after``/``fail_after`` cannot cut a started call short: the backend's own
    timeouts (pool wait, socket, statement) bound it.

    asyncio's own cancellation (``task.cancel()``, ``asyncio.wait_for``, ``asyncio.timeout``)
    reaches through anyio's shield; a started call still keeps its thread and its limiter token
    to the end, and the task raises ``CancelledError`` only after the thread finished (the
    call's result is then discarded). When the canceller sees the cancellation, a write that
    committed is visible, and no more than ``max_concurrency`` threads ever run.

    ``AsyncStorage(storage)`` wraps an open storage; :func:`create_async_storage` opens one
    without blocking the event loop. Use ``async with`` or call :meth:`aclose`.
    """

    def __init__(self, storage: Storage) -> None:
        if not isinstance(storage, Storage):
            raise TypeError(f"AsyncStorage wraps a datacon Storage, got {type(storage).__name__}")
        self._sync = storage
        self._runner = _ThreadRunner(storage.max_concurrency)
        self.responses = AsyncResponseStorage(storage.responses, self._runner)
        self.conversations = AsyncConversationStorage(storage.conversations, self._runner)
        self.items = AsyncConversationItemStorage(storage.items, self._runner)

    @property
    def wrapped(self) -> Storage:
        """The sync :class:`~datacon.storage.Storage` (for ``pool_stats()``, or sync callers)."""
        return self._sync

    @property
    def sync(self) -> Storage:
        """Same as :attr:`wrapped`."""
        return self._sync

    @property
    def backend(self) -> str:
        """The backend's name (``"memory"``, ``"postgres"``…)."""
        return self._sync.backend

    @property
    def max_concurrency(self) -> int:
        """How many calls run at once per event loop (the limiter's size, the backend's pool size)."""
        return self._runner.max_threads

    @property
    def limiter(self) -> CapacityLimiter:
        """This storage's thread limiter in the running event loop."""
        return self._runner.limiter

    @property
    def closed(self) -> bool:
        """Whether the storage has been closed."""
        return self._sync.closed

    async def health(self) -> HealthReport:
        """A cheap round trip and the pool counters, in a thread (:meth:`~datacon.storage.Storage.health`).

        It queues on this storage's limiter like any call, so a saturated facade shows as a
        slow check. Never raises for a backend failure: the report says ``ok=False``.
        """
        return await self._runner.run(self._sync.health)

    async def prune(
        self,
        older_than: datetime | timedelta,
        *,
        dry_run: bool = False,
        batch_size: int = PRUNE_BATCH,
        progress: PruneProgress | None = None,
    ) -> PruneReport:
        """Delete what is older than the cutoff, in batches (:meth:`~datacon.storage.Storage.prune`),
        whole in one worker thread (``progress`` is called there).

        Cancelled once started: it runs to its end (each batch is atomic; running it again
        after any interruption finishes the job).
        """
        return await self._runner.run(
            self._sync.prune, older_than, dry_run=dry_run, batch_size=batch_size, progress=progress
        )

    async def erase_identifier(
        self,
        identifier: str,
        *,
        dry_run: bool = False,
        batch_size: int = PRUNE_BATCH,
        progress: PruneProgress | None = None,
    ) -> PruneReport:
        """Delete what belongs to one safety identifier, in batches
        (:meth:`~datacon.storage.Storage.erase_identifier`), whole in one worker thread."""
        return await self._runner.run(
            self._sync.erase_identifier, identifier, dry_run=dry_run, batch_size=batch_size, progress=progress
        )

    async def aclose(self) -> None:
        """Close the backend's pool in a worker thread. Idempotent.

        Shielded: once called it completes even if the caller is cancelled, so the pool is
        never left half open. Calls still running keep their threads until they finish.
        """
        with CancelScope(shield=True):
            try:
                await self._runner.run(self._sync.close)
            finally:
                self._runner.stop()

    async def __aenter__(self) -> AsyncStorage:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __iter__(self) -> Iterator[object]:
        # Unpacks like the sync Storage and upstream's tuple: responses, conversations, items.
        return iter((self.responses, self.conversations, self.items))

    def __repr__(self) -> str:
        state = "closed" if self._sync.closed else "open"
        return f"<AsyncStorage backend={self._sync.backend} {state}>"


class AsyncStorageOpener:
    """What :func:`create_async_storage` returns: await it, or use it with ``async with``.

    It opens once: awaiting it again, or entering it twice, raises ``RuntimeError``.
    """

    def __init__(self, config: StorageFactoryConfig | str | None) -> None:
        self._config = config
        self._used = False
        self._storage: AsyncStorage | None = None

    async def _open(self) -> AsyncStorage:
        if self._used:
            raise RuntimeError("this create_async_storage() result was already used; call it again")
        self._used = True
        opened: list[Storage] = []

        def open_storage() -> Storage:
            storage = create_storage(self._config)
            opened.append(storage)
            return storage

        # Opening may connect and run DDL: a thread of its own, under a private one-token limiter.
        runner = _ThreadRunner(1, "datacon-aio-open")
        try:
            storage = await runner.run(open_storage)
            # Cancelled while opening: hand no open pool to a cancelled task.
            await checkpoint_if_cancelled()
        except BaseException:
            if opened:
                with CancelScope(shield=True):
                    await runner.run(opened[0].close)
            raise
        finally:
            runner.stop()
        return AsyncStorage(storage)

    def __await__(self) -> Generator[Any, None, AsyncStorage]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncStorage:
        self._storage = await self._open()
        return self._storage

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._storage is not None:
            await self._storage.aclose()


def create_async_storage(config: StorageFactoryConfig | str | None = None) -> AsyncStorageOpener:
    """Open the storage of ``config`` (memory when ``None``; a URL as for ``create_storage``)
    in a worker thread, without blocking the loop.

    ``storage = await create_async_storage(cfg)`` (then :meth:`AsyncStorage.aclose`) or
    ``async with create_async_storage(cfg) as storage:``. Errors are those of
    :func:`~datacon.create_storage` (``ConfigError``, ``MigrationRequiredError``…). If the
    caller is cancelled while the storage opens, the opened storage is closed again.
    """
    return AsyncStorageOpener(config)
