"""The memory backend's baseline: the same backend without the front layer (no checks, no hooks)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from datacon import ListParams, NewConversationItem, SortOrder, StoredResponse
from datacon.backends.base import Backend

__all__ = ["MemoryBaseline"]


class MemoryBaseline:
    """Calls the unwrapped memory storages directly; the datacon side goes through ``create_storage``'s wrapper."""

    label = "unwrapped memory backend"

    def __init__(self, raw: Backend) -> None:
        self.raw = raw

    def store_response(self, fields: dict[str, Any]) -> None:
        self.raw.responses.store_response(StoredResponse(**fields))

    def get_response(self, response_id: str) -> Any:
        return self.raw.responses.get_response(response_id)

    def create_and_link(self, conversation_id: str, item_id: str, content: Any, added_at: datetime) -> None:
        self.raw.items.create_item(NewConversationItem("message", content, id=item_id, role="user", status="completed"))
        self.raw.items.link_item(conversation_id, item_id, added_at)

    def list_page(self, conversation_id: str, limit: int, *, after: str | None = None, desc: bool = False) -> Any:
        order = SortOrder.DESC if desc else SortOrder.ASC
        return self.raw.items.list_items(conversation_id, ListParams(limit, order, after))

    def chain(self, response_id: str) -> Any:
        return self.raw.responses.get_response_chain(response_id).responses

    def naive_chain(self, response_id: str) -> list[Any]:
        chain = []
        current: str | None = response_id
        while current is not None:
            response = self.raw.responses.get_response(current)
            if response is None:
                break
            chain.append(response)
            current = response.previous_response_id
        chain.reverse()
        return chain

    def bulk_items(self, conversation_id: str, items: Sequence[tuple[str, datetime]], content: Any) -> None:
        for item_id, _ in items:
            self.raw.items.create_item(
                NewConversationItem("message", content, id=item_id, role="user", status="completed")
            )
        for start in range(0, len(items), 1_000):
            self.raw.items.link_items(conversation_id, items[start : start + 1_000])

    def close(self) -> None:
        self.raw.close()
