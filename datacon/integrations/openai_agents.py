"""The OpenAI Agents SDK's ``Session`` over any datacon backend (extra ``datacon-store[openai-agents]``).

One session is one conversation whose id is the ``session_id``; each SDK item is one datacon
item whose content is the item dict, exactly as given (its own ``"id"``, if any, stays
content). See ``docs/integrations.md``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, cast

try:
    from agents.items import TResponseInputItem
    from agents.memory.session_settings import SessionSettings, coerce_session_settings, resolve_session_limit
except ImportError as exc:  # the extra is not installed
    raise ImportError(
        "datacon.integrations.openai_agents needs the OpenAI Agents SDK: pip install 'datacon-store[openai-agents]'"
    ) from exc

from datacon._validate import COUNT_MAX, SHORT_MAX
from datacon.errors import InvalidInputError
from datacon.integrations._store import Conversation, StorageSource
from datacon.models import ConversationItem, NewConversationItem, SortOrder
from datacon.storage import Storage

__all__ = ["DataconSession"]


def _short(value: object) -> str | None:
    """A string field of an item, kept as the datacon column when it fits."""
    return value if isinstance(value, str) and len(value) <= SHORT_MAX else None


def _new_item(item: object) -> NewConversationItem:
    if not isinstance(item, dict):
        raise InvalidInputError(f"a session item must be a dict (a response input item), got {type(item).__name__}")
    # The columns datacon indexes nothing by are filled for people reading the tables; the
    # content is the item itself. An input message without "type" is a message.
    item_type = _short(item.get("type")) or "message"
    return NewConversationItem(item_type, item, role=_short(item.get("role")), status=_short(item.get("status")))


def _content(item: ConversationItem) -> TResponseInputItem | None:
    """The SDK item stored in ``item``, or ``None`` for an item that is not one (not an object)."""
    return cast("TResponseInputItem", item.content) if isinstance(item.content, dict) else None


class DataconSession:
    """An OpenAI Agents SDK session stored in datacon: ``Runner.run(agent, input, session=...)``.

    :param session_id: the conversation's id (at most 64 characters, else ``InvalidInputError``).
        The conversation record is created by the first ``add_items``.
    :param storage: a ``Storage`` or an ``AsyncStorage`` (left open by :meth:`close`), or a
        ``StorageFactoryConfig`` or URL, opened on first use and closed by :meth:`close` /
        :meth:`aclose`.
    :param session_settings: the SDK's ``SessionSettings`` (or its dict); ``limit`` is the
        default of :meth:`get_items`.

    Each method runs its storage calls in a worker thread (the storage's async facade), under
    asyncio or trio. ``add_items`` is one atomic ``append_items``; ``pop_item`` removes exactly
    one item even when callers race; ``pop_item`` and ``clear_session`` delete the item
    records no other conversation links. Items whose content is not a JSON object (written to
    the conversation by something else) are skipped by the reads and dropped by ``pop_item``.
    """

    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: str,
        storage: StorageSource,
        *,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        self._conversation = Conversation(session_id, storage, "DataconSession")
        self.session_id = self._conversation.id
        self.session_settings = (
            coerce_session_settings(session_settings) if session_settings is not None else SessionSettings()
        )

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The session's items in chronological order: all, or the latest ``limit``
        (default: ``session_settings.limit``)."""
        count = resolve_session_limit(limit, self.session_settings)
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
            raise InvalidInputError(f"limit must be a non-negative integer or None, got {count!r}")
        conversation = self._conversation

        def read(storage: Storage) -> list[TResponseInputItem]:
            if count is None:
                return [
                    c
                    for page in conversation.pages(storage, SortOrder.ASC)
                    for item in page
                    if (c := _content(item)) is not None
                ]
            newest: list[TResponseInputItem] = []
            if count == 0:
                return newest
            # The newest first, one page of ``count`` (more only if some were skipped).
            for page in conversation.pages(storage, SortOrder.DESC, min(count, COUNT_MAX)):
                newest.extend(c for item in page if (c := _content(item)) is not None)
                if len(newest) >= count:
                    break
            return newest[:count][::-1]

        return await conversation.handle.run(read)

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` in one atomic call (all or none), stored exactly as given."""
        news = [_new_item(item) for item in items]  # checked before any I/O
        conversation = self._conversation
        await conversation.handle.run(lambda storage: conversation.append(storage, news))

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the most recent item (``None`` if the session is empty)."""
        conversation = self._conversation

        def pop(storage: Storage) -> TResponseInputItem | None:
            while True:
                newest = next(conversation.pages(storage, SortOrder.DESC, 1), None)
                if newest is None:
                    return None
                item = newest[0]
                # Another caller may have taken it first: then look again.
                if conversation.unlink(storage, [item.id]) and (content := _content(item)) is not None:
                    return content

        return await conversation.handle.run(pop)

    async def clear_session(self) -> None:
        """Remove every item and the conversation record."""
        conversation = self._conversation
        await conversation.handle.run(conversation.clear)

    def close(self) -> None:
        """Close the storage if this session opened it (from a URL or config). Idempotent;
        the session refuses calls afterwards (``BackendUnavailableError``)."""
        self._conversation.handle.close()

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        await self._conversation.handle.aclose()

    async def __aenter__(self) -> DataconSession:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __enter__(self) -> DataconSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DataconSession session_id={self.session_id!r}>"
