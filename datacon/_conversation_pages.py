"""Pages of ``list_conversations`` (SPEC §7.5): the cursor, and a page from a backend's rows.

A backend answers ``page_conversations(filter, after, descending, limit)``: up to ``limit``
conversations in ``(created_at, id)`` order (descending if asked) strictly after the key
``after``, whose extra columns equal ``filter``. This module turns that into a
:class:`~datacon.models.ConversationPage`: it asks for one row more than the page to learn
``has_more``, and makes the ``next_cursor`` from the page's last conversation.

The cursor is ``cv1_`` and base64url JSON ``[order, created_at in epoch microseconds, id]``:
it holds the position itself, so it stays valid after that conversation is deleted.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from datacon._time import from_epoch_us, to_epoch_us
from datacon.errors import InvalidInputError
from datacon.models import Conversation, ConversationPage, ListParams, SortOrder

__all__ = ["CURSOR_PREFIX", "ConversationKey", "Pager", "decode_cursor", "encode_cursor", "list_page"]

CURSOR_PREFIX = "cv1_"
#: A position in the order of conversations: ``(created_at, id)``.
ConversationKey = tuple[datetime, str]


class Pager(Protocol):
    def get_conversation(self, conversation_id: str) -> Conversation | None: ...

    def page_conversations(
        self, filter: Mapping[str, str], after: ConversationKey | None, descending: bool, limit: int
    ) -> list[Conversation]: ...


def encode_cursor(order: SortOrder, conversation: Conversation) -> str:
    raw = json.dumps([order.value, to_epoch_us(conversation.created_at), conversation.id], separators=(",", ":"))
    return CURSOR_PREFIX + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str, order: SortOrder) -> ConversationKey | None:
    """The position a ``next_cursor`` holds; ``None`` when ``text`` is no cursor (an id)."""
    if not text.startswith(CURSOR_PREFIX):
        return None
    body = text[len(CURSOR_PREFIX) :]
    try:
        value = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        cursor_order, micros, conversation_id = value
        if not isinstance(micros, int) or not isinstance(conversation_id, str):
            raise TypeError
        made_for = SortOrder(cursor_order)
        at = from_epoch_us(micros)
    except (ValueError, TypeError, binascii.Error, OverflowError):
        raise InvalidInputError("after is not a conversation id or a next_cursor of list_conversations") from None
    if made_for is not order:
        raise InvalidInputError(f"after is a cursor for order {made_for.value!r}, used with order {order.value!r}")
    return at, conversation_id


def list_page(store: Pager, params: ListParams, filter: Mapping[str, str]) -> ConversationPage:
    """The page ``params`` asks for (``params`` checked: order a ``SortOrder``, limit >= 0)."""
    order = SortOrder(params.order)
    if params.limit == 0:
        return ConversationPage()
    after: ConversationKey | None = None
    if params.after is not None:
        after = decode_cursor(params.after, order)
        if after is None:  # a conversation id: continue after it; unknown ids list from the start
            found = store.get_conversation(params.after)
            after = None if found is None else (found.created_at, found.id)
    rows = store.page_conversations(filter, after, order is SortOrder.DESC, params.limit + 1)
    has_more = len(rows) > params.limit
    data = rows[: params.limit]
    return ConversationPage(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
        next_cursor=encode_cursor(order, data[-1]) if has_more else None,
    )
