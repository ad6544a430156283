"""The ``none`` backend: accepts every write the other backends accept, stores nothing, finds nothing.

It refuses what every other backend refuses (values that are not JSON: NaN, infinities,
lone surrogates, objects JSON cannot hold), so switching a deployment to ``none`` and back
changes no outcome but storage.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from datacon._serde import dump_json, normalize_json
from datacon._time import utc_now
from datacon.ids import make_item_id, new_conversation_id
from datacon.models import (
    Conversation,
    ConversationItem,
    ListParams,
    NewConversation,
    NewConversationItem,
    ResponseChain,
    StoredResponse,
)
from datacon.storage import ConversationItemStorage, ConversationStorage, ResponseStorage, Storage

__all__ = ["open_storage"]


class NoopConversationStorage(ConversationStorage):
    """Creates return the would-be record; reads find nothing."""

    def create_conversation(self, new: NewConversation) -> Conversation:
        metadata = None if new.metadata is None else normalize_json(new.metadata, "metadata")
        return Conversation(id=new.id or new_conversation_id(), created_at=utc_now(), metadata=metadata)

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        return None

    def update_conversation(self, conversation_id: str, metadata: dict[str, object] | None) -> Conversation | None:
        if metadata is not None:
            dump_json(metadata, "metadata")
        return None

    def delete_conversation(self, conversation_id: str) -> bool:
        return False


class NoopItemStorage(ConversationItemStorage):
    """Creates return the would-be item; links are accepted and forgotten."""

    def create_item(self, new: NewConversationItem) -> ConversationItem:
        return ConversationItem(
            id=new.id or make_item_id(new.item_type),
            response_id=new.response_id,
            item_type=new.item_type,
            role=new.role,
            content=normalize_json(new.content, "content"),
            status=new.status,
            created_at=utc_now(),
        )

    def link_item(self, conversation_id: str, item_id: str, added_at: datetime) -> None:
        return None

    def link_items(self, conversation_id: str, items: Sequence[tuple[str, datetime]]) -> None:
        return None

    def list_items(self, conversation_id: str, params: ListParams) -> list[ConversationItem]:
        return []

    def get_item(self, item_id: str) -> ConversationItem | None:
        return None

    def is_item_linked(self, conversation_id: str, item_id: str) -> bool:
        return False

    def delete_item(self, conversation_id: str, item_id: str) -> None:
        return None


class NoopResponseStorage(ResponseStorage):
    """Stores return the id; reads find nothing; deletes delete nothing."""

    def store_response(self, response: StoredResponse) -> str:
        dump_json(response.input, "input")
        dump_json(response.raw_response, "raw_response")
        return response.id

    def get_response(self, response_id: str) -> StoredResponse | None:
        return None

    def delete_response(self, response_id: str) -> None:
        return None

    def get_response_chain(self, response_id: str, max_depth: int | None = None) -> ResponseChain:
        return ResponseChain()

    def list_identifier_responses(self, identifier: str, limit: int | None = None) -> list[StoredResponse]:
        return []

    def delete_identifier_responses(self, identifier: str) -> int:
        return 0


def open_storage() -> Storage:
    """The three no-op storages."""
    return Storage(
        NoopResponseStorage(), NoopConversationStorage(), NoopItemStorage(), backend="none", max_concurrency=16
    )
