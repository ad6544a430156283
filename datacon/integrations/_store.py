"""What the adapters share: the storage they were given (or opened), and one conversation in it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TypeAlias, TypeVar

import anyio

from datacon._guard import GuardedItemStorage
from datacon._validate import check_id
from datacon.aio import AsyncStorage
from datacon.config import StorageFactoryConfig
from datacon.errors import BackendUnavailableError, ConflictError
from datacon.factory import create_storage
from datacon.models import ConversationItem, ListParams, NewConversation, NewConversationItem, SortOrder
from datacon.storage import Storage

__all__ = ["PAGE", "Conversation", "StorageSource"]

#: What an adapter accepts as its ``storage``.
StorageSource: TypeAlias = Storage | AsyncStorage | StorageFactoryConfig | str

#: Items read (or removed) per round trip when a whole conversation is walked.
PAGE = 1000

T = TypeVar("T")


class _Handle:
    """The adapter's storage: given (never closed by the adapter) or opened on first use (closed by it).

    A URL or config is checked at once (``ConfigError``); the storage it names is opened on
    the first call, in a worker thread for the async methods, so no constructor blocks.
    """

    def __init__(self, storage: StorageSource, owner: str) -> None:
        self._owner = owner
        self._lock = threading.Lock()
        self._sync: Storage | None = None
        self._async: AsyncStorage | None = None
        self._config: StorageFactoryConfig | None = None
        self.owned = False
        self.closed = False
        if isinstance(storage, AsyncStorage):
            self._sync, self._async = storage.sync, storage
        elif isinstance(storage, Storage):
            self._sync = storage
        elif isinstance(storage, StorageFactoryConfig):
            self._config, self.owned = storage, True
        elif isinstance(storage, str):
            self._config, self.owned = StorageFactoryConfig.from_url(storage), True
        else:
            raise TypeError(
                f"{owner}: storage must be a Storage, an AsyncStorage, a StorageFactoryConfig or a URL,"
                f" got {type(storage).__name__}"
            )

    def _refuse(self) -> BackendUnavailableError:
        return BackendUnavailableError(f"this {self._owner} is closed")

    def sync(self) -> Storage:
        """The storage, opened now if the adapter opens it (blocking)."""
        if self.closed:
            raise self._refuse()
        storage = self._sync
        if storage is None:
            with self._lock:
                if self.closed:
                    raise self._refuse()
                if self._sync is None:
                    self._sync = create_storage(self._config)
                storage = self._sync
        return storage

    async def aio(self) -> AsyncStorage:
        """The async facade over the storage, opened in a worker thread if needed."""
        if self._sync is None:
            await anyio.to_thread.run_sync(self.sync)
        storage = self.sync()
        facade = self._async
        if facade is None:
            facade = self._async = AsyncStorage(storage)
        return facade

    async def run(self, func: Callable[[Storage], T]) -> T:
        """``func(storage)`` in a worker thread, under the facade's limiter (as its own calls)."""
        facade = await self.aio()
        storage = facade.sync
        return await facade._runner.run(func, storage)

    def close(self) -> None:
        """Close a storage the adapter opened; the adapter refuses calls from now on. Idempotent."""
        with self._lock:
            self.closed = True
            storage = self._sync if self.owned else None
        if storage is not None:
            storage.close()

    async def aclose(self) -> None:
        """:meth:`close` in a worker thread (shielded: it completes even if the caller is cancelled)."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.close)


class Conversation:
    """One conversation of a storage, as an adapter uses it: the session's (or history's) items.

    Reads and appends go through the storage's public API (hooks, checks and telemetry
    apply); removals through the guarded ``unlink_items`` (the backend's, which also deletes
    the item records no other conversation links; hooks see one ``DELETE_ITEM`` per item).
    """

    def __init__(self, conversation_id: str, storage: StorageSource, owner: str) -> None:
        self.id = check_id(conversation_id, f"{owner} id")
        self.handle = _Handle(storage, owner)
        self._exists = False  # known to exist (saves a read per append)

    # Blocking operations, each given the open storage: run directly (sync callers) or by
    # ``Handle.run`` in a worker thread (async callers).

    def append(self, storage: Storage, items: Sequence[NewConversationItem]) -> list[ConversationItem]:
        """Create the conversation if it does not exist yet, then append ``items`` in one atomic call."""
        if not items:
            return []
        if not self._exists:
            if storage.conversations.get_conversation(self.id) is None:
                with contextlib.suppress(ConflictError):  # created meanwhile by another writer: fine
                    storage.conversations.create_conversation(NewConversation(id=self.id))
            self._exists = True
        return storage.items.append_items(self.id, items)

    def pages(self, storage: Storage, order: SortOrder, size: int = PAGE) -> Iterator[list[ConversationItem]]:
        """The conversation's items, page by page in ``order`` (each page one round trip)."""
        after: str | None = None
        while True:
            page = storage.items.list_items_page(self.id, ListParams(limit=size, order=order, after=after))
            if page.data:
                yield page.data
            if not page.has_more:
                return
            after = page.next_cursor

    def unlink(self, storage: Storage, item_ids: Sequence[str]) -> list[str]:
        """Remove the links (and the records no other conversation links); the ids this call removed.

        Through the guard (hooks see each removal as ``DELETE_ITEM``), or, for a ``Storage``
        assembled by hand around other stores, through the backend directly."""
        items = storage.items
        if isinstance(items, GuardedItemStorage):
            return items.unlink_items(self.id, item_ids)
        if storage.closed:
            raise BackendUnavailableError(f"the {storage.backend} storage is closed")
        return storage.raw.items.unlink_items(self.id, item_ids)

    def clear(self, storage: Storage) -> None:
        """Remove every item (records no other conversation links included) and the conversation."""
        for page in self.pages(storage, SortOrder.ASC):
            self.unlink(storage, [item.id for item in page])
        # Links whose record was missing (never listed) go with the conversation.
        storage.conversations.delete_conversation(self.id)
        self._exists = False
