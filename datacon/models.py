"""The records datacon stores: conversations, items, responses, and listing parameters."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Self

import attrs

from datacon._serde import converter, structure
from datacon._time import utc_now
from datacon.ids import new_response_id

__all__ = [
    "Conversation",
    "ConversationItem",
    "ConversationPage",
    "ItemPage",
    "JsonRecord",
    "Link",
    "ListParams",
    "NewConversation",
    "NewConversationItem",
    "PruneReport",
    "ResponseChain",
    "SortOrder",
    "StoredResponse",
]

#: A JSON object, as conversation metadata is.
JsonObject = dict[str, Any]


class JsonRecord:
    """``to_dict`` / ``to_json`` / ``from_dict`` for a model, through the one cattrs converter.

    ``to_dict()`` is JSON-compatible: the fields the export format writes for the record (without
    its ``"type"`` key), datetimes as ISO-8601 UTC with six fractional digits and ``Z``.
    ``from_dict`` accepts any ISO-8601 offset (converted to UTC); a naive datetime, a missing or
    unknown field is an ``InvalidInputError`` naming the field. Pydantic (and so FastAPI) uses the
    same two functions for these classes as field and return types.
    """

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-compatible Python values."""
        data: dict[str, Any] = converter.unstructure(self)
        return data

    def to_json(self) -> str:
        """``to_dict()`` as compact JSON text (UTF-8, not ASCII-escaped)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> Self:
        """The record from ``to_dict()``'s shape (or the export format's record without ``"type"``)."""
        return structure(mapping, cls, cls.__name__)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema  # only when pydantic asks: it is no dependency

        def validate(value: Any) -> Any:
            return value if isinstance(value, cls) else cls.from_dict(value)

        return core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda value: value.to_dict()),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "object", "title": cls.__name__}


class SortOrder(enum.StrEnum):
    """Order of ``list_items``: by ``(added_at, item_id)`` ascending or descending."""

    ASC = "asc"
    DESC = "desc"


@attrs.define
class NewConversation(JsonRecord):
    """A conversation to create. ``id=None`` makes a fresh ``conv_…`` id."""

    id: str | None = None
    metadata: JsonObject | None = None


@attrs.define
class Conversation(JsonRecord):
    """A stored conversation. ``created_at`` is timezone-aware UTC."""

    id: str
    created_at: datetime
    metadata: JsonObject | None = None


@attrs.define
class NewConversationItem(JsonRecord):
    """An item (message, reasoning, tool call...) to create. ``id=None`` makes one from ``item_type``."""

    item_type: str
    content: Any
    id: str | None = None
    response_id: str | None = None
    role: str | None = None
    status: str | None = None


@attrs.define
class ConversationItem(JsonRecord):
    """A stored item. Items live independently of conversations and are linked to them."""

    id: str
    response_id: str | None
    item_type: str
    role: str | None
    content: Any
    status: str | None
    created_at: datetime


@attrs.define
class StoredResponse(JsonRecord):
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
class ResponseChain(JsonRecord):
    """Responses of a chain, oldest first. Backends leave ``metadata`` empty."""

    responses: list[StoredResponse] = attrs.field(factory=list)
    metadata: dict[str, Any] = attrs.field(factory=dict)

    def __len__(self) -> int:
        return len(self.responses)

    def __iter__(self) -> Iterator[StoredResponse]:
        return iter(self.responses)


@attrs.define
class ListParams(JsonRecord):
    """Parameters of ``list_items``: page size, order, and an exclusive cursor (``after``: an
    item id, or a ``next_cursor`` of an earlier page).

    ``limit`` is 0 to 2**31 - 1 (2147483647, the maximum of every count datacon takes);
    outside that range ``list_items`` raises ``InvalidInputError``.
    """

    limit: int
    order: SortOrder = SortOrder.ASC
    after: str | None = None


@attrs.define
class ItemPage(JsonRecord):
    """One page of a conversation's items (``list_items_page``, SPEC 7.4).

    :ivar data: the items, in the page's order.
    :ivar first_id: the first item's id (``None`` for an empty page).
    :ivar last_id: the last item's id (``None`` for an empty page).
    :ivar has_more: the page is full and at least one more link follows it (that link's item
        record may turn out missing, so the following page can be empty).
    :ivar next_cursor: pass it as ``ListParams.after`` for the next page; ``None`` exactly
        when ``has_more`` is false. Opaque; it names a position, so it stays valid after its
        item is unlinked or deleted.
    """

    data: list[ConversationItem] = attrs.field(factory=list)
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False
    next_cursor: str | None = None


@attrs.define
class ConversationPage(JsonRecord):
    """One page of ``list_conversations``, ordered by ``(created_at, id)``.

    ``next_cursor`` is ``None`` exactly when ``has_more`` is false; pass it as ``ListParams.after``
    for the next page.
    """

    data: list[Conversation] = attrs.field(factory=list)
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False
    next_cursor: str | None = None


@attrs.define(frozen=True)
class Link(JsonRecord):
    """An item linked to a conversation at ``added_at`` (the links table's row)."""

    conversation_id: str
    item_id: str
    added_at: datetime


@attrs.frozen
class PruneReport(JsonRecord):
    """What ``Storage.prune`` or ``Storage.erase_identifier`` deleted (or, with ``dry_run``,
    would delete): how many responses, conversations, links and items (SPEC 7.7)."""

    responses: int = 0
    conversations: int = 0
    links: int = 0
    items: int = 0
    dry_run: bool = False

    @property
    def total(self) -> int:
        """Every record counted: responses, conversations, links and items."""
        return self.responses + self.conversations + self.links + self.items
