"""LangChain's ``BaseChatMessageHistory`` over any datacon backend (extra ``datacon-store[langchain]``).

One history is one conversation; each message is one datacon item whose content is
LangChain's own serialised form (``message_to_dict``: ``{"type": ..., "data": {...}}``), so
every message type reads back equal. See ``docs/integrations.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

try:
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.messages import (
        BaseMessage,
        BaseMessageChunk,
        ChatMessage,
        message_chunk_to_message,
        message_to_dict,
        messages_from_dict,
    )
except ImportError as exc:  # the extra is not installed
    raise ImportError(
        "datacon.integrations.langchain needs langchain-core: pip install 'datacon-store[langchain]'"
    ) from exc

from datacon._validate import SHORT_MAX
from datacon.errors import InvalidInputError
from datacon.integrations._store import Conversation, StorageSource
from datacon.models import ConversationItem, NewConversationItem, SortOrder
from datacon.storage import Storage

__all__ = ["DataconChatMessageHistory"]

# The item's role column, for people reading the tables (the content alone is read back).
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "function"}


def _new_item(message: object) -> NewConversationItem:
    if not isinstance(message, BaseMessage):
        raise InvalidInputError(f"a chat message must be a langchain BaseMessage, got {type(message).__name__}")
    if isinstance(message, BaseMessageChunk):
        message = message_chunk_to_message(message)  # a streamed chunk is stored as its message
    role = message.role if isinstance(message, ChatMessage) else _ROLES.get(message.type)
    return NewConversationItem(
        "message", message_to_dict(message), role=role if role is not None and len(role) <= SHORT_MAX else None
    )


def _is_message(item: ConversationItem) -> bool:
    content = item.content
    return isinstance(content, dict) and isinstance(content.get("type"), str) and isinstance(content.get("data"), dict)


def _messages(items: list[ConversationItem]) -> list[BaseMessage]:
    # Items that are not a serialised message (written to the conversation by something
    # else) are skipped.
    return messages_from_dict([item.content for item in items if _is_message(item)])


class DataconChatMessageHistory(BaseChatMessageHistory):
    """A LangChain chat history stored in datacon (``RunnableWithMessageHistory`` and the like).

    :param conversation_id: the conversation's id (at most 64 characters, else
        ``InvalidInputError``); its record is created by the first message added.
    :param storage: a ``Storage`` or an ``AsyncStorage`` (left open by :meth:`close`), or a
        ``StorageFactoryConfig`` or URL, opened on first use and closed by :meth:`close` /
        :meth:`aclose`.

    The sync methods call the storage directly; the async ones (``aget_messages``,
    ``aadd_messages``, ``aclear``) run the same calls in a worker thread, under asyncio or
    trio. ``add_messages`` is one atomic append; ``clear`` removes the items (and their
    records, unless another conversation links them) and the conversation.
    """

    def __init__(self, conversation_id: str, storage: StorageSource) -> None:
        self._conversation = Conversation(conversation_id, storage, "DataconChatMessageHistory")
        self.conversation_id = self._conversation.id

    def _read(self, storage: Storage) -> list[BaseMessage]:
        return [message for page in self._conversation.pages(storage, SortOrder.ASC) for message in _messages(page)]

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]  # a read-only property, as LangChain's own
        """Every message, oldest first."""
        return self._read(self._conversation.handle.sync())

    async def aget_messages(self) -> list[BaseMessage]:
        """Every message, oldest first."""
        return await self._conversation.handle.run(self._read)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` in one atomic call (all or none)."""
        news = [_new_item(message) for message in messages]
        self._conversation.append(self._conversation.handle.sync(), news)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` in one atomic call (all or none)."""
        news = [_new_item(message) for message in messages]
        conversation = self._conversation
        await conversation.handle.run(lambda storage: conversation.append(storage, news))

    def clear(self) -> None:
        """Remove every message and the conversation record."""
        self._conversation.clear(self._conversation.handle.sync())

    async def aclear(self) -> None:
        """Remove every message and the conversation record."""
        await self._conversation.handle.run(self._conversation.clear)

    def close(self) -> None:
        """Close the storage if this history opened it (from a URL or config). Idempotent;
        the history refuses calls afterwards (``BackendUnavailableError``)."""
        self._conversation.handle.close()

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        await self._conversation.handle.aclose()

    def __enter__(self) -> DataconChatMessageHistory:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> DataconChatMessageHistory:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<DataconChatMessageHistory conversation_id={self.conversation_id!r}>"
