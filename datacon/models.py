"""The records datacon stores: conversations, items, responses, and listing parameters."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import attrs

from datacon._time import utc_now
from datacon.ids import new_response_id

__all__ = [
    "Conversation",
    "ConversationItem",
    "Link",
    "ListParams",
    "NewConversation",
    "NewConversationItem",
    "ResponseChain",
    "SortOrder",
    "StoredResponse",
]

#: A JSON object, as conversation metadata is.
JsonObject = dict[str, Any]


class SortOrder(enum.StrEnum):
    """Order of ``list_items``: by ``(added_at, item_id)`` ascending or descending."""

    ASC = "asc"
    DESC = "desc"


@attrs.define
class NewConversation:
    """A conversation to create. ``id=None`` makes a fresh ``conv_…`` id."""

    id: str | None = None
    metadata: JsonObject | None = None


@attrs.define
class Conversation:
    """A stored conversation. ``created_at`` is timezone-aware UTC."""

    id: str
    created_at: datetime
    metadata: JsonObject | None = None


@attrs.define
class NewConversationItem:
    """An item (message, reasoning, tool call...) to create. ``id=None`` makes one from ``item_type``."""

    item_type: str
    content: Any
    id: str | None = None
    response_id: str | None = None
    role: str | None = None
    status: str | None = None


@attrs.define
class ConversationItem:
    """A stored item. Items live independently of conversations and are linked to them."""

    id: str
    response_id: str | None
    item_type: str
    role: str | None
    content: Any
    status: str | None
    created_at: datetime


@attrs.define
class StoredResponse:
    """A model response; ``previous_response_id`` chains it to the one before."""

    id: str = attrs.field(factory=new_response_id)
    previous_response_id: str | None = None
    input: Any = attrs.field(factory=list)
    created_at: datetime = attrs.field(factory=utc_now)
    safety_identifier: str | None = None
    model: str | None = None
    conversation_id: str | None = None
    raw_response: Any = None

    @classmethod
    def new(cls, previous_response_id: str | None = None) -> StoredResponse:
        """A fresh response (new ULID id, now) following ``previous_response_id``."""
        return cls(previous_response_id=previous_response_id)


@attrs.define
class ResponseChain:
    """Responses of a chain, oldest first. Backends leave ``metadata`` empty."""

    responses: list[StoredResponse] = attrs.field(factory=list)
    metadata: dict[str, Any] = attrs.field(factory=dict)

    def __len__(self) -> int:
        return len(self.responses)

    def __iter__(self) -> Iterator[StoredResponse]:
        return iter(self.responses)


@attrs.define
class ListParams:
    """Parameters of ``list_items``: page size, order, and an exclusive item-id cursor.

    ``limit`` is 0 to 2**31 - 1 (2147483647, the maximum of every count datacon takes);
    outside that range ``list_items`` raises ``InvalidInputError``.
    """

    limit: int
    order: SortOrder = SortOrder.ASC
    after: str | None = None


@attrs.define(frozen=True)
class Link:
    """An item linked to a conversation at ``added_at`` (the links table's row)."""

    conversation_id: str
    item_id: str
    added_at: datetime
