"""Page cursors (SPEC 7.4): an opaque text naming a position in one conversation's page order.

A cursor holds the conversation id, the order, and the position after the page's last item:
that link's ``added_at``, sequence and item id. It names a *position*, not a link, so it stays
valid after that item is unlinked or deleted. It is longer than any id (so ``ListParams.after``
tells it from an item id) and carries a checksum, which catches a cursor that was cut or
edited; it is not a secret and not a signature (its content is the caller's own data).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from datacon._time import from_epoch_us, to_epoch_us
from datacon._validate import ID_MAX
from datacon.backends.base import Position
from datacon.errors import InvalidInputError
from datacon.models import SortOrder

__all__ = ["decode_cursor", "encode_cursor", "is_cursor"]

PREFIX = "dcc1_"
_CHECK = 32  # hex digits of SHA-256 before the body: also what makes every cursor longer than an id


def encode_cursor(conversation_id: str, order: SortOrder, position: Position) -> str:
    """The cursor of the position after ``position`` in ``conversation_id``'s ``order``."""
    added_at, seq, item_id = position
    body = json.dumps([order.value, conversation_id, to_epoch_us(added_at), seq, item_id], separators=(",", ":"))
    check = hashlib.sha256(body.encode()).hexdigest()[:_CHECK]
    return PREFIX + base64.urlsafe_b64encode(f"{check}{body}".encode()).rstrip(b"=").decode("ascii")


def is_cursor(value: str) -> bool:
    """Whether ``ListParams.after`` is a page cursor rather than an item id."""
    return len(value) > ID_MAX and value.startswith(PREFIX)


def decode_cursor(value: str, conversation_id: str, order: SortOrder) -> Position:
    """The position a cursor names; ``InvalidInputError`` if it is not one of this conversation's
    and order's cursors."""
    try:
        text = value[len(PREFIX) :]
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
        check, body = raw[:_CHECK], raw[_CHECK:]
        if hashlib.sha256(body.encode()).hexdigest()[:_CHECK] != check:
            raise ValueError("checksum")
        got_order, got_conversation, added_us, seq, item_id = json.loads(body)
        position = (from_epoch_us(int(added_us)), int(seq), str(item_id))
        got_order, got_conversation = str(got_order), str(got_conversation)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise InvalidInputError("after is not a valid page cursor (pass a next_cursor unchanged)") from None
    if got_conversation != conversation_id:
        raise InvalidInputError("after is a page cursor of another conversation")
    if got_order != order.value:
        raise InvalidInputError(f"after is a page cursor of the {got_order} order, not {order.value}")
    return position
