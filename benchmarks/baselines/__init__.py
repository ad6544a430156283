"""Hand-written raw-driver baselines: the statements datacon issues, without datacon."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

__all__ = ["Baseline", "ResponseFields"]

#: The fields of one response, as plain values (the datacon side builds a StoredResponse from them).
ResponseFields = dict[str, Any]


class Baseline(Protocol):
    """What every baseline offers; the datacon side does the same through its public API."""

    label: str  # e.g. "psycopg (same SQL)"

    def store_response(self, fields: ResponseFields) -> None:
        """Insert one response (JSON encoded as datacon does)."""

    def get_response(self, response_id: str) -> dict[str, Any] | None:
        """One response with its JSON decoded, or ``None``."""

    def create_and_link(self, conversation_id: str, item_id: str, content: Any, added_at: datetime) -> None:
        """Insert one message item and link it to the conversation."""

    def list_page(
        self, conversation_id: str, limit: int, *, after: str | None = None, desc: bool = False
    ) -> list[dict[str, Any]]:
        """One page of linked items in (added_at, item_id) order after the cursor."""

    def chain(self, response_id: str) -> list[dict[str, Any]]:
        """The chain ending at ``response_id``, oldest first, fetched as datacon does (one round trip)."""

    def naive_chain(self, response_id: str) -> list[dict[str, Any]]:
        """The same chain by one query per link (what a store without chain support must do)."""

    def bulk_items(self, conversation_id: str, items: Sequence[tuple[str, datetime]], content: Any) -> None:
        """Create and link many items fast (to build the long conversation of the growth test)."""

    def close(self) -> None:
        """Release the driver's connections."""
