"""Records as Redis hashes: field names from the schema, values as text, and back.

Datetimes are RFC 3339 with six fractional digits (``0001-...T03:04:05.123456+00:00``, as
upstream writes them), so they round-trip to the microsecond in any year; JSON
fields are compact JSON text. Optional fields are written only when set. Extra columns are
written as fields (a string as is, anything else as JSON text) and never read back; skipped
columns are neither written nor read, and reads give their defaults: ``created_at`` the
time of the read, ``item_type`` ``""`` (as the SQL backends; upstream Redis gave
``"message"``), ``input`` ``[]``, and ``None`` for the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from datacon._serde import dump_json, load_json
from datacon._time import parse_iso, utc_now
from datacon.backends._common import extra_values
from datacon.models import Conversation, ConversationItem, StoredResponse
from datacon.schema import SchemaConfig, TableConfig

from ._errors import corrupt_record

__all__ = ["Codec", "pairs"]

Fields = dict[str, str]


def pairs(flat: Sequence[Any]) -> Fields:
    """A ``HGETALL`` reply as returned through a script (``[field, value, ...]``) as a dict."""
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


def _time_text(value: datetime) -> str:
    # isoformat pads the year to four digits (strftime("%Y") does not on glibc).
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _extra_text(value: Any, name: str) -> str:
    return value if isinstance(value, str) else dump_json(value, f"extra column {name}")


class _Table:
    """One table's field names, with helpers to write and read its fields."""

    def __init__(self, config: TableConfig, kind: str) -> None:
        self.config = config
        self.kind = kind

    def field(self, name: str) -> str | None:
        """The hash field of logical column ``name``, or ``None`` when it is skipped."""
        return None if self.config.is_skipped(name) else self.config.col(name)

    def put(self, out: Fields, name: str, value: str | None) -> None:
        field = self.field(name)
        if field is not None and value is not None:
            out[field] = value

    def extras(self, out: Fields) -> None:
        for name, value in extra_values(self.config):
            if value is not None:
                out[name] = _extra_text(value, name)

    def text(self, row: Mapping[str, str], name: str) -> str | None:
        field = self.field(name)
        return None if field is None else row.get(field)

    def json(self, row: Mapping[str, str], record_id: str, name: str, default: Any) -> Any:
        text = self.text(row, name)
        try:
            return load_json(text, default)
        except ValueError as exc:
            raise corrupt_record(self.kind, record_id, name, exc) from exc

    def time(self, row: Mapping[str, str], record_id: str) -> datetime:
        if self.field("created_at") is None:
            return utc_now()
        text = self.text(row, "created_at")
        try:
            if text is None:
                raise ValueError("missing")
            return parse_iso(text)
        except ValueError as exc:
            raise corrupt_record(self.kind, record_id, "created_at", exc) from exc


class Codec:
    """Encodes and decodes the three record kinds for one ``SchemaConfig``."""

    def __init__(self, schema: SchemaConfig) -> None:
        self.conversations = _Table(schema.conversations, "conversation")
        self.items = _Table(schema.conversation_items, "item")
        self.responses = _Table(schema.responses, "response")

    # Conversations

    def conversation_fields(self, conversation: Conversation) -> Fields:
        t = self.conversations
        out: Fields = {}
        t.put(out, "id", conversation.id)
        t.put(out, "created_at", _time_text(conversation.created_at))
        if conversation.metadata is not None:
            t.put(out, "metadata", dump_json(conversation.metadata, "metadata"))
        t.extras(out)
        return out

    def conversation(self, conversation_id: str, row: Mapping[str, str]) -> Conversation:
        t = self.conversations
        metadata = None
        text = t.text(row, "metadata")
        # Upstream's rule: empty, blank or "null" text means no metadata; else an object.
        if text is not None and text.strip() and text.strip().lower() != "null":
            metadata = t.json(row, conversation_id, "metadata", None)
            if not isinstance(metadata, dict):
                raise corrupt_record("conversation", conversation_id, "metadata", TypeError("not an object"))
        return Conversation(id=conversation_id, created_at=t.time(row, conversation_id), metadata=metadata)

    # Items

    def item_fields(self, item: ConversationItem) -> Fields:
        t = self.items
        out: Fields = {}
        t.put(out, "id", item.id)
        t.put(out, "response_id", item.response_id)
        t.put(out, "item_type", item.item_type)
        t.put(out, "role", item.role)
        t.put(out, "content", dump_json(item.content, "content"))
        t.put(out, "status", item.status)
        t.put(out, "created_at", _time_text(item.created_at))
        t.extras(out)
        return out

    def item(self, item_id: str, row: Mapping[str, str]) -> ConversationItem:
        t = self.items
        return ConversationItem(
            id=item_id,
            response_id=t.text(row, "response_id"),
            item_type=t.text(row, "item_type") or "",
            role=t.text(row, "role"),
            content=t.json(row, item_id, "content", None),
            status=t.text(row, "status"),
            created_at=t.time(row, item_id),
        )

    # Responses

    def response_fields(self, response: StoredResponse) -> Fields:
        t = self.responses
        out: Fields = {}
        t.put(out, "id", response.id)
        t.put(out, "previous_response_id", response.previous_response_id)
        t.put(out, "conversation_id", response.conversation_id)
        t.put(out, "input", dump_json(response.input, "input"))
        t.put(out, "created_at", _time_text(response.created_at))
        t.put(out, "safety_identifier", response.safety_identifier)
        t.put(out, "model", response.model)
        t.put(out, "raw_response", dump_json(response.raw_response, "raw_response"))
        t.extras(out)
        return out

    def response(self, response_id: str, row: Mapping[str, str]) -> StoredResponse:
        t = self.responses
        return StoredResponse(
            id=response_id,
            previous_response_id=t.text(row, "previous_response_id"),
            input=t.json(row, response_id, "input", []),
            created_at=t.time(row, response_id),
            safety_identifier=t.text(row, "safety_identifier"),
            model=t.text(row, "model"),
            conversation_id=t.text(row, "conversation_id"),
            raw_response=t.json(row, response_id, "raw_response", None),
        )
