"""Records as Redis hashes: field names from the schema, values as text, and back.

Each item is also kept as one packed string (``Codec.packed``, layout 3), which ``list_items``
reads for a whole page at once; see ``Codec.page``.

Datetimes are RFC 3339 with six fractional digits (``0001-...T03:04:05.123456+00:00``, as
upstream writes them), so they round-trip to the microsecond in any year; JSON
fields are compact JSON text. Optional fields are written only when set. Extra columns are
written as fields (a string as is, anything else as JSON text) and never read back; skipped
columns are neither written nor read, and reads give their defaults: ``created_at`` the
time of the read, ``item_type`` ``""`` (as the SQL backends; upstream Redis gave
``"message"``), ``input`` ``[]``, and ``None`` for the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from datacon._columns import CONVERSATIONS, ITEMS, RESPONSES, Kind, Record, compile_function
from datacon._serde import dump_json, load_json, loads
from datacon._time import parse_iso, utc_now
from datacon.backends.extras import extra_values
from datacon.models import Conversation, ConversationItem, StoredResponse
from datacon.schema import SchemaConfig, TableConfig

from .errors import corrupt_record

__all__ = ["Codec", "StalePackedError", "pairs"]

Fields = dict[str, str]

#: Encodes the head of a packed item (ASCII only: never a lone surrogate, never invalid UTF-8).
_PACK = json.JSONEncoder(separators=(",", ":"))
#: ``json``'s C function quoting one string as ``_PACK`` does (ASCII, escapes).
_QUOTE: Callable[[str], str] = json.encoder.encode_basestring_ascii


#: A packed set member's expiry when its item's hash has no TTL.
_NEVER = "0" * 15


class StalePackedError(Exception):
    """A page whose packed copies do not decode (never written by datacon): read the hashes."""


def pairs(flat: Sequence[Any]) -> Fields:
    """A ``HGETALL`` reply as returned through a script (``[field, value, ...]``) as a dict."""
    pairwise = iter(flat)  # zip(it, it) pairs consecutive elements; an odd trailing one is dropped
    return {str(field): str(value) for field, value in zip(pairwise, pairwise, strict=False)}


def _time_text(value: datetime) -> str:
    # isoformat pads the year to four digits (strftime("%Y") does not on glibc).
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _extra_text(value: Any, name: str) -> str:
    return value if isinstance(value, str) else dump_json(value, f"extra column {name}")


class _Table:
    """One table's field names (from its declared columns), with helpers to write and read its fields."""

    def __init__(self, config: TableConfig, record: Record) -> None:
        self.config = config
        self.kind = record.kind
        #: Hash field of each logical column, ``None`` when skipped; computed once per store.
        #: ``row.get(None)`` is ``None`` on a hash's dict, so a skipped column reads as absent.
        self.fields: dict[str, str | None] = {name: self._resolve(name) for name in record.names}
        #: The record's hash fields, generated from the declared columns (see ``_encoder``).
        self.encode: Callable[..., Fields] = _encoder(self, record)

    def _resolve(self, name: str) -> str | None:
        return None if self.config.is_skipped(name) else self.config.col(name)

    def field(self, name: str) -> str | None:
        """The hash field of logical column ``name``, or ``None`` when it is skipped."""
        try:
            return self.fields[name]
        except KeyError:
            return self._resolve(name)

    def extras(self, out: Fields, extra: Mapping[str, Any]) -> None:
        for name, value in extra_values(self.config, extra):
            if value is not None:
                out[name] = _extra_text(value, name)

    def text(self, row: Mapping[str, str], name: str) -> str | None:
        field = self.field(name)
        return None if field is None else row.get(field)

    def json(self, row: Mapping[str, str], record_id: str, name: str, default: Any) -> Any:
        field = self.fields[name]
        text = None if field is None else row.get(field)
        try:
            return load_json(text, default)
        except ValueError as exc:
            raise corrupt_record(self.kind, record_id, name, exc) from exc

    def time(self, row: Mapping[str, str], record_id: str) -> datetime:
        field = self.fields["created_at"]
        if field is None:
            return utc_now()
        text = row.get(field)
        try:
            if text is None:
                raise ValueError("missing")
            return parse_iso(text)
        except ValueError as exc:
            raise corrupt_record(self.kind, record_id, "created_at", exc) from exc


def _encoder(table: _Table, record: Record) -> Callable[..., Fields]:
    """A function giving the hash fields of a model of ``record``: timestamps as RFC 3339
    text, JSON as JSON text (a JSON-object column's ``None`` left out), text as is (``None``
    left out), then the extra columns (from its second argument, the hook's values).
    Generated once per store (``compile_function``): the
    field names (configured) are constants of its namespace, never part of its source. Its
    third argument, ``time_text``, turns a timestamp into its text (``_time_text``, the
    default): ``append_items`` passes one giving the text it made once for all its items."""
    namespace: dict[str, Any] = {"_time_text": _time_text, "dump_json": dump_json, "extras": table.extras}
    lines = ["def encode(m, extra, time_text=_time_text):", "    out = {}"]
    for n, column in enumerate(record):
        field = table.fields[column.name]
        if field is None:
            continue
        namespace[f"f{n}"] = field
        value = f"m.{column.name}"
        if column.kind is Kind.TIME:
            lines.append(f"    out[f{n}] = time_text({value})")
        elif column.kind is Kind.JSON and not column.object_only:
            lines.append(f"    out[f{n}] = dump_json({value}, {column.name!r})")
        else:
            encoded = f"dump_json(v, {column.name!r})" if column.kind is Kind.JSON else "v"
            lines += [f"    v = {value}", "    if v is not None:", f"        out[f{n}] = {encoded}"]
    if table.config.extra_columns:
        lines.append("    extras(out, extra)")
    lines.append("    return out")
    encode: Callable[..., Fields] = compile_function("encode", "\n".join(lines) + "\n", namespace)
    return encode


class Codec:
    """Encodes and decodes the three record kinds for one ``SchemaConfig``."""

    def __init__(self, schema: SchemaConfig) -> None:
        self.conversations = _Table(schema.conversations, CONVERSATIONS)
        self.items = _Table(schema.conversation_items, ITEMS)
        self.responses = _Table(schema.responses, RESPONSES)
        #: ``make(*packed)``: an item from a packed copy's seven values (``_unpacker``).
        self._unpack = _unpacker(self.items)
        #: ``packed(item_id, fields)``: the packed copy of the item whose hash fields are
        #: ``fields`` (``item_fields``), see ``_packer``.
        self.packed: Callable[[str, Mapping[str, str]], str] = _packer(self.items)
        self._plain = all(self.items.fields[name] is not None for name in self.ITEM_READ)

    # Conversations

    def conversation_fields(self, conversation: Conversation, extra: Mapping[str, Any]) -> Fields:
        return self.conversations.encode(conversation, extra)

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

    def item_fields(
        self, item: ConversationItem, extra: Mapping[str, Any], time_text: Callable[[datetime], str] = _time_text
    ) -> Fields:
        """The item's hash fields; ``time_text`` gives its ``created_at``'s text (``append_items``
        passes one returning the text it made once for all its items, created at one instant)."""
        return self.items.encode(item, extra, time_text)

    #: The text a time column holds for a timestamp (RFC 3339, UTC, microseconds).
    time_text = staticmethod(_time_text)

    def item(self, item_id: str, row: Mapping[str, str]) -> ConversationItem:
        t = self.items
        f = t.fields
        get = _getter(row)
        return ConversationItem(
            id=item_id,
            response_id=get(f["response_id"]),
            item_type=get(f["item_type"]) or "",
            role=get(f["role"]),
            content=t.json(row, item_id, "content", None),
            status=get(f["status"]),
            created_at=t.time(row, item_id),
        )

    #: The hash fields ``item_values`` reads, in its order ('' for a skipped column).
    ITEM_READ = ("response_id", "item_type", "role", "content", "status", "created_at")

    @property
    def item_read_fields(self) -> list[str]:
        return [self.items.fields[name] or "" for name in self.ITEM_READ]

    def item_values(self, item_id: str, values: Sequence[Any]) -> ConversationItem:
        """An item from the values of ``item_read_fields`` (``None`` when absent), as the
        list script reads them (``HMGET``); the same item as ``item`` gives from the hash."""
        response_id, item_type, role, content, status, created_at = values
        t = self.items
        try:
            parsed = load_json(content, None)
        except ValueError as exc:
            raise corrupt_record("item", item_id, "content", exc) from exc
        if created_at is None:
            at = utc_now() if t.fields["created_at"] is None else None
        else:
            try:
                at = parse_iso(created_at)
            except ValueError:
                at = None
        if at is None:
            problem = ValueError("missing" if created_at is None else "not a time")
            raise corrupt_record("item", item_id, "created_at", problem)
        return ConversationItem(
            id=item_id,
            response_id=response_id,
            item_type=item_type or "",
            role=role,
            content=parsed,
            status=status,
            created_at=at,
        )

    # Packed items (layout 3): ``[id, response_id, item_type, role, status, created_at, content]``
    # as compact JSON, the values as the hash holds them (``null`` when absent or skipped) and
    # the content's JSON text embedded as is; a page is one JSON array of them (``page``).

    def packed_page(self, members: Sequence[str], horizon_ms: int) -> list[ConversationItem] | None:
        """The items of members of a packed set (``lua.LIST_PACKED``), or ``None`` when one
        of them expires by ``horizon_ms`` (epoch milliseconds) or they do not decode."""
        horizon = f"{horizon_ms:015d}"
        for member in members:
            expiry = member[12:27]  # 15 digits: compared as text, in numeric order
            if expiry <= horizon and expiry != _NEVER:
                return None
        try:
            return self.page("[" + ",".join([member[27:] for member in members]) + "]", ())
        except StalePackedError:
            return None

    def page(self, blob: str, fallback: Sequence[Any]) -> list[ConversationItem]:
        """The items of a list script's page: ``blob`` is a JSON array of packed items, with
        ``null`` for each item read from its hash instead, whose ``(id, values)`` come in
        ``fallback``, in order (``item_values``). Raises ``StalePackedError`` when the packed
        copies do not decode (the caller reads the page from the hashes)."""
        make = self._unpack
        try:
            entries = loads(blob)
            if not fallback:
                if self._plain:  # no skipped column: one comprehension, no call per item
                    # datacon writes +00:00, which fromisoformat reads as UTC itself: parse_iso
                    # (a call more per item) only for a time written otherwise.
                    item, parse, iso = ConversationItem, parse_iso, datetime.fromisoformat
                    return [
                        item(
                            item_id,
                            response_id,
                            item_type or "",
                            role,
                            content,
                            status,
                            at if (at := iso(created_at)).tzinfo is UTC else parse(created_at),
                        )
                        for item_id, response_id, item_type, role, status, created_at, content in entries
                    ]
                return [make(*entry) for entry in entries]
        except (ValueError, TypeError, AttributeError) as exc:
            raise StalePackedError from exc
        rest = iter(fallback)
        out: list[ConversationItem] = []
        for entry in entries:
            if entry is None:
                item_id, values = next(rest)
                out.append(self.item_values(str(item_id), values))
                continue
            try:
                out.append(make(*entry))
            except (ValueError, TypeError, AttributeError) as exc:
                raise StalePackedError from exc
        return out

    # Responses

    def response_fields(self, response: StoredResponse, extra: Mapping[str, Any]) -> Fields:
        return self.responses.encode(response, extra)

    def response(self, response_id: str, row: Mapping[str, str]) -> StoredResponse:
        t = self.responses
        f = t.fields
        get = _getter(row)
        return StoredResponse(
            id=response_id,
            previous_response_id=get(f["previous_response_id"]),
            input=t.json(row, response_id, "input", []),
            created_at=t.time(row, response_id),
            safety_identifier=get(f["safety_identifier"]),
            model=get(f["model"]),
            conversation_id=get(f["conversation_id"]),
            raw_response=t.json(row, response_id, "raw_response", None),
        )


def _packed(f: Mapping[str, str | None], item_id: str, fields: Mapping[str, str]) -> str:
    """The packed copy of an item (ids and texts quoted, ``null`` where absent or skipped, the
    content's JSON text as is) from its hash ``fields``; ``f``: the table's field names."""
    get = _getter(fields)
    values = [item_id, get(f["response_id"]), get(f["item_type"]), get(f["role"]), get(f["status"])]
    values.append(get(f["created_at"]))
    content = get(f["content"])
    try:
        # What _PACK.encode(values) gives for strings and None, without its Python frames.
        head = ",".join(["null" if value is None else _QUOTE(value) for value in values])
    except TypeError:
        head = _PACK.encode(values)[1:-1]
    return f"[{head},{'null' if content is None else content}]"


def _packer(table: _Table) -> Callable[[str, Mapping[str, str]], str]:
    """``pack(item_id, fields)``: ``_packed(table.fields, item_id, fields)``, generated once per
    store (``compile_function``) as one f-string: the field names (configured) are constants
    of its namespace, a skipped column the literal ``null``; a value that is not a string
    (``TypeError`` from the quoting) goes through ``_packed``."""
    f = table.fields
    namespace: dict[str, Any] = {"quote": _QUOTE, "general": lambda item_id, fields: _packed(f, item_id, fields)}
    lines = ["def pack(item_id, fields):", "    get = fields.get"]
    parts = ["{quote(item_id)}"]
    for n, name in enumerate(("response_id", "item_type", "role", "status", "created_at", "content")):
        if f[name] is None:
            parts.append("null")
            continue
        namespace[f"f{n}"] = f[name]
        lines.append(f"    v{n} = get(f{n})")
        value = f"v{n}" if name == "content" else f"quote(v{n})"  # the content's JSON text as is
        parts.append(f"{{'null' if v{n} is None else {value}}}")
    lines += ["    try:", f'        return f"[{",".join(parts)}]"', "    except TypeError:"]
    lines.append("        return general(item_id, fields)")
    pack: Callable[[str, Mapping[str, str]], str] = compile_function("pack", "\n".join(lines) + "\n", namespace)
    return pack


def _unpacker(table: _Table) -> Callable[..., ConversationItem]:
    """``make(id, response_id, item_type, role, status, created_at, content)``: the item a
    packed copy holds, as ``Codec.item_values`` gives it from the same values; a column this
    schema skips reads as its default whatever the copy holds. Bad values raise ``ValueError``
    or ``TypeError`` (a missing ``created_at``: ``parse_iso(None)``)."""
    skipped = {name for name in Codec.ITEM_READ if table.fields[name] is None}
    if not skipped:

        def make(
            item_id: str, response_id: Any, item_type: Any, role: Any, status: Any, created_at: Any, content: Any
        ) -> ConversationItem:
            return ConversationItem(item_id, response_id, item_type or "", role, content, status, parse_iso(created_at))

        return make

    def make_skipping(
        item_id: str, response_id: Any, item_type: Any, role: Any, status: Any, created_at: Any, content: Any
    ) -> ConversationItem:
        return ConversationItem(
            item_id,
            None if "response_id" in skipped else response_id,
            "" if "item_type" in skipped else item_type or "",
            None if "role" in skipped else role,
            None if "content" in skipped else content,
            None if "status" in skipped else status,
            utc_now() if "created_at" in skipped else parse_iso(created_at),
        )

    return make_skipping


def _getter(row: Mapping[str, str]) -> Any:
    """``row.get`` for a field name or ``None`` (a skipped column): ``None`` is never a key
    of a decoded hash, so it reads as absent without a branch per field."""
    return row.get
