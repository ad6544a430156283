"""The ``none`` backend: accepts every write the other backends accept, stores nothing, finds nothing.

It refuses what every other backend refuses (values that are not JSON: NaN, infinities,
lone surrogates, objects JSON cannot hold), so switching a deployment to ``none`` and back
changes no outcome but storage.

Idempotency keys are checked by the guard like everywhere, but not kept: nothing is stored,
so a retry with the same key is not deduplicated (it returns a new would-be record).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from datacon._serde import dump_json, normalize_json
from datacon._time import utc_now
from datacon.backends.base import (
    NO_EXTRA,
    Backend,
    BackendConversations,
    BackendItems,
    BackendResponses,
    Extra,
    PageRow,
    Position,
    Prunable,
    PrunableKind,
)
from datacon.backends.created import created_item, minted_id
from datacon.backends.idempotency import Idempotency
from datacon.models import (
    Conversation,
    ConversationItem,
    ListParams,
    NewConversation,
    NewConversationItem,
    ResponseChain,
    StoredResponse,
)

__all__ = ["NoopBackend", "open_backend"]


class NoopConversationStorage(BackendConversations):
    """Creates return the would-be record; reads find nothing."""

    def create_conversation(
        self, new: NewConversation, *, extra: Extra = NO_EXTRA, idempotency_key: Idempotency | str | None = None
    ) -> Conversation:
        metadata = None if new.metadata is None else normalize_json(new.metadata, "metadata")
        return Conversation(id=minted_id(new), created_at=utc_now(), metadata=metadata)

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        return None

    def update_conversation(self, conversation_id: str, metadata: dict[str, object] | None) -> Conversation | None:
        if metadata is not None:
            dump_json(metadata, "metadata")
        return None

    def delete_conversation(self, conversation_id: str) -> bool:
        return False

    def page_conversations(
        self, filter: Mapping[str, str], after: tuple[datetime, str] | None, descending: bool, limit: int
    ) -> list[Conversation]:
        return []


class NoopItemStorage(BackendItems):
    """Creates return the would-be item; links are accepted and forgotten."""

    def create_item(
        self, new: NewConversationItem, *, extra: Extra = NO_EXTRA, idempotency_key: Idempotency | str | None = None
    ) -> ConversationItem:
        return created_item(new, normalize_json(new.content, "content"))

    def append_items(
        self,
        conversation_id: str,
        items: Sequence[NewConversationItem],
        added_at: datetime | None = None,
        *,
        extra: Extra = NO_EXTRA,
        idempotency_key: Idempotency | str | None = None,
    ) -> list[ConversationItem]:
        return [self.create_item(new) for new in items]

    def link_item(self, conversation_id: str, item_id: str, added_at: datetime, *, extra: Extra = NO_EXTRA) -> None:
        return None

    def link_items(
        self, conversation_id: str, items: Sequence[tuple[str, datetime]], *, extra: Extra = NO_EXTRA
    ) -> None:
        return None

    def list_items(self, conversation_id: str, params: ListParams) -> list[ConversationItem]:
        return []

    def page_items(
        self, conversation_id: str, params: ListParams, position: Position | None
    ) -> tuple[list[PageRow], bool]:
        return [], False

    def get_item(self, item_id: str) -> ConversationItem | None:
        return None

    def is_item_linked(self, conversation_id: str, item_id: str) -> bool:
        return False

    def delete_item(self, conversation_id: str, item_id: str) -> None:
        return None

    def unlink_items(self, conversation_id: str, item_ids: Sequence[str]) -> list[str]:
        return []


class NoopResponseStorage(BackendResponses):
    """Stores return the id; reads find nothing; deletes delete nothing."""

    def store_response(
        self, response: StoredResponse, *, extra: Extra = NO_EXTRA, idempotency_key: Idempotency | str | None = None
    ) -> str:
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


class NoopBackend(Prunable):
    """The ``none`` backend: three stores that keep nothing (neither enumerable nor restorable);
    prunable, with nothing to find (prune and erase report zeros)."""

    kind = "none"
    max_concurrency = 16
    max_batch = 100_000

    def __init__(self) -> None:
        self.conversations = NoopConversationStorage()
        self.items = NoopItemStorage()
        self.responses = NoopResponseStorage()

    def close(self) -> None:
        """Nothing to close."""

    def pool_stats(self) -> dict[str, int]:
        return {}

    # Prunable: nothing is stored, so nothing is found and nothing deleted.

    def old_records(
        self, kind: PrunableKind, cutoff: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[tuple[datetime, str]]:
        return []

    def existing_conversations(self, ids: Sequence[str]) -> dict[str, datetime]:
        return {}

    def conversation_links(self, conversation_ids: Sequence[str]) -> list[tuple[str, str]]:
        return []

    def item_links(self, item_ids: Sequence[str]) -> list[tuple[str, str]]:
        return []

    def identifier_responses(self, identifier: str, after_id: str | None, limit: int) -> list[tuple[str, str | None]]:
        return []

    def named_by_others(self, conversation_ids: Sequence[str], identifier: str) -> set[str]:
        return set()

    def delete_responses(self, ids: Sequence[str]) -> int:
        return 0

    def delete_conversations(self, ids: Sequence[str], *, with_items: bool) -> tuple[int, int, int]:
        return 0, 0, 0

    def delete_unlinked_items(self, ids: Sequence[str]) -> int:
        return 0


def open_backend(config: None = None, *, check_schema: bool = True) -> Backend:
    """The no-op backend (it has no configuration and no schema)."""
    return NoopBackend()
