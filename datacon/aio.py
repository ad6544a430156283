"""The anyio async facade (asyncio and trio): each call runs whole in a worker thread, sized to the pool."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import threading
import weakref
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Generic, ParamSpec, TypeVar

from anyio import CancelScope, CapacityLimiter, Event, WouldBlock, get_cancelled_exc_class, to_thread
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


_PENDING, _RUNNING, _DONE, _DROPPED = range(4)

# anyio's to_thread needs a limiter of its own; the storage's limiter, held by the caller
# until the thread has finished, is what bounds the threads, so this one never makes anyone wait.
_DISPATCH: RunVar[CapacityLimiter] = RunVar("datacon-dispatch")


class _LoopCache:
    """The value a ``RunVar`` holds in the last asyncio loop that asked, without the lookup.

    A ``RunVar`` lookup (anyio's current token, then a weak dictionary) costs a few µs, twice
    per call; the running asyncio loop is the token, so the last ``(loop, value)`` pair is
    kept (one tuple, replaced whole: threads running other loops read a consistent pair) and
    any other loop, or trio, goes through the ``RunVar``. The loop is held weakly.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[weakref.ref[asyncio.AbstractEventLoop], CapacityLimiter] | None = None

    def get(self, var: RunVar[CapacityLimiter], make: Callable[[], CapacityLimiter]) -> CapacityLimiter:
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


_DISPATCH_CACHE = _LoopCache()


def _dispatch_limiter() -> CapacityLimiter:
    return _DISPATCH_CACHE.get(_DISPATCH, lambda: CapacityLimiter(math.inf))


class _Dropped(Exception):
    """The call was cancelled before its thread took it up; it never ran."""


class _Call(Generic[T]):
    """One blocking call handed to a worker thread: whether it has started, and whom to wake when it ends.

    The worker thread and the event loop agree under ``_lock`` on one of two outcomes: the
    call is dropped before it starts (then it never runs), or it starts and the loop waits
    for it to end.
    """

    __slots__ = ("_func", "_lock", "_state", "_wake")

    def __init__(self, func: Callable[[], T]) -> None:
        self._func = func
        self._lock = threading.Lock()
        self._state = _PENDING
        self._wake: Callable[[], object] | None = None

    def __call__(self) -> T:
        """Run the call (in the worker thread), unless it was dropped first."""
        with self._lock:
            if self._state == _DROPPED:
                raise _Dropped
            self._state = _RUNNING
        try:
            return self._func()
        finally:
            with self._lock:
                self._state = _DONE
                wake = self._wake
            if wake is not None:
                with contextlib.suppress(RuntimeError):  # the event loop has closed: nobody waits any more
                    wake()

    def drop(self) -> bool:
        """Make sure the call never starts; ``False`` if it already has (it runs to its end)."""
        with self._lock:
            if self._state == _PENDING:
                self._state = _DROPPED
            return self._state == _DROPPED

    async def finished(self) -> None:
        """Wait until the started call has ended, whatever cancellation arrives meanwhile."""
        event = Event()
        try:
            call_soon: Callable[..., object] = asyncio.get_running_loop().call_soon_threadsafe
        except RuntimeError:  # trio (only asyncio's task.cancel() pierces the shield; belt and braces)
            import trio

            call_soon = trio.lowlevel.current_trio_token().run_sync_soon
        with self._lock:
            if self._state == _DONE:
                return
            self._wake = functools.partial(call_soon, event.set)
        while not event.is_set():
            try:
                with CancelScope(shield=True):
                    await event.wait()
            except get_cancelled_exc_class():
                # asyncio's own task.cancel() reaches through shields; the caller re-raises
                # the first cancellation once the thread is done.
                pass


async def _run_whole(func: Callable[[], T], limiter: CapacityLimiter) -> T:
    """``func()`` in a worker thread; ``limiter``'s token is held until that thread has finished.

    Cancelled (anyio scopes, trio, or asyncio's ``task.cancel()``/``wait_for``/``timeout``)
    while waiting for the token or before the thread took the call up: it never runs.
    Cancelled later: the caller waits for the thread to finish, then the cancellation
    propagates (under anyio scopes and trio the call's result is returned first, and the
    cancellation lands at the next checkpoint; asyncio's own cancellation pierces anyio's
    shield, so there the result is discarded and ``CancelledError`` raised after the thread).
    """
    try:
        limiter.acquire_nowait()
    except WouldBlock:
        await limiter.acquire()  # queued, FIFO; cancelled here, nothing has started
    call = _Call(func)
    try:
        return await to_thread.run_sync(call, limiter=_dispatch_limiter())
    except BaseException:
        if not call.drop():
            # The thread took the call up, yet the await ended: asyncio's own cancellation.
            # Keep the token, and keep the caller here, until the thread is done.
            await call.finished()
        raise
    finally:
        limiter.release()


class _ThreadRunner:
    """Runs blocking storage calls in anyio worker threads, at most ``max_threads`` at once per event loop.

    The limiter is private to one storage (never anyio's process-wide default, which
    Starlette/FastAPI and everything else share) and sized to the backend's pool: surplus
    callers then queue on the limiter, which is async, FIFO and cancellable, instead of
    blocking a thread inside the pool's ``getconn``. A ``RunVar`` gives each event loop its
    own limiter, so one storage can serve several loops (a portal thread, tests).
    """

    def __init__(self, max_threads: int) -> None:
        self.max_threads = max(1, max_threads)
        self._limiter: RunVar[CapacityLimiter] = RunVar(f"datacon-limiter-{id(self):x}")
        self._cache = _LoopCache()

    @property
    def limiter(self) -> CapacityLimiter:
        """This storage's limiter in the running event loop (made on first use)."""
        return self._cache.get(self._limiter, lambda: CapacityLimiter(self.max_threads))

    async def run(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``func(*args, **kwargs)`` in a worker thread, in a copy of the caller's context.

        Once the thread has started, the call runs to completion and the caller resumes only
        after it (see :func:`_run_whole`), so its connection goes back to the pool and the
        limiter's token is held exactly as long as the thread runs.
        """
        # run_sync takes positional arguments only; bind keywords first.
        return await _run_whole(functools.partial(func, *args, **kwargs), self.limiter)


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

    Every method runs its sync twin whole in one anyio worker thread (one thread hop, one
    backend call, at most one pooled connection), in a copy of the caller's context, so a
    :func:`~datacon.request_context` set around ``await`` reaches hooks. Nothing flows back:
    context variables set inside the thread stay there.

    **Threads.** At most ``max_concurrency`` calls (the backend's pool size) run at once per
    event loop, through a limiter private to this storage; anyio's shared default limiter
    (40 threads) is never used. Total threads = anyio's default + one limiter per storage +
    the pool's own maintenance threads.

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
            await self._runner.run(self._sync.close)

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

        # Opening may connect and run DDL: a thread, under a private one-token limiter.
        limiter = CapacityLimiter(1)
        try:
            storage = await _run_whole(open_storage, limiter)
            # Cancelled while opening: hand no open pool to a cancelled task.
            await checkpoint_if_cancelled()
        except BaseException:
            if opened:
                with CancelScope(shield=True):
                    await _run_whole(opened[0].close, limiter)
            raise
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
