"""What a backend's create call makes of its ``New…`` argument, the same in every backend."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from datacon._time import utc_now
from datacon.models import ConversationItem, NewConversation, NewConversationItem

__all__ = ["created_item", "minted_id"]


def minted_id(new: NewConversation | NewConversationItem) -> str:
    """``new.id``: the guard always sets it (it mints one when the caller gives none)."""
    assert new.id is not None, "the guard mints the id"
    return new.id


def created_item(
    new: NewConversationItem, content: Any, created_at: datetime | None = None, *, keep_status: bool = True
) -> ConversationItem:
    """The item ``new`` becomes, created at ``created_at`` (default now), with ``content`` as
    the backend keeps it (and no ``status`` unless ``keep_status``: a skipped column)."""
    return ConversationItem(  # positionally (id, response_id, item_type, role, content, status, created_at): cheaper
        minted_id(new),
        new.response_id,
        new.item_type,
        new.role,
        content,
        new.status if keep_status else None,
        utc_now() if created_at is None else created_at,
    )
