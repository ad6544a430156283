"""What a backend's create call makes of its ``New…`` argument, the same in every backend."""

from __future__ import annotations

from typing import Any

from datacon._time import utc_now
from datacon.models import ConversationItem, NewConversation, NewConversationItem

__all__ = ["created_item", "minted_id"]


def minted_id(new: NewConversation | NewConversationItem) -> str:
    """``new.id``: the guard always sets it (it mints one when the caller gives none)."""
    assert new.id is not None, "the guard mints the id"
    return new.id


def created_item(new: NewConversationItem, content: Any) -> ConversationItem:
    """The item ``new`` becomes, created now, with ``content`` as the backend keeps it."""
    return ConversationItem(
        id=minted_id(new),
        response_id=new.response_id,
        item_type=new.item_type,
        role=new.role,
        content=content,
        status=new.status,
        created_at=utc_now(),
    )
