"""The ``memory`` backend: thread-safe, in-process, gone when the process ends.

Records are kept as JSON text (as a database would), so callers mutating returned or
passed-in objects never change stored data. Each conversation keeps its links in a
sorted list of ``(added_at_us, sequence, item_id)`` keys, so a page costs O(log n + limit).
The sequence is a per-conversation counter: links sharing one ``added_at`` list in the
order they were linked.
"""

from __future__ import annotations

import bisect
import heapq
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from datacon._serde import dump_json, load_json
from datacon._time import from_epoch_us, to_epoch_us, utc_now
from datacon.backends.base import (
    NO_EXTRA,
    Backend,
    BackendConversations,
    BackendItems,
    BackendResponses,
    Enumerable,
    Extra,
    LinkPosition,
    LinkRow,
    PageRow,
    Position,
    Prunable,
    PrunableKind,
    RecordKind,
    Restorable,
)
from datacon.backends.chain import walk_chain
from datacon.backends.created import minted_id
from datacon.backends.idempotency import Idempotency, resolve
from datacon.errors import ConflictError
from datacon.models import (
    Conversation,
    ConversationItem,
    Link,
    ListParams,
    NewConversation,
    NewConversationItem,
    ResponseChain,
    SortOrder,
    StoredResponse,
)

__all__ = ["MemoryBackend", "MemoryState", "open_backend"]


@attrs.define(slots=True)
class _Links:
    keys: list[tuple[int, int, str]] = attrs.field(factory=list)  # sorted (added_at_us, seq, item_id)
    by_item: dict[str, tuple[int, int]] = attrs.field(factory=dict)  # item_id -> (added_at_us, seq)
    last_seq: int = 0

    def add(self, item_id: str, added_us: int) -> None:
        """Link ``item_id`` after every link made before (the caller checked it is not linked)."""
        self.last_seq += 1
        bisect.insort(self.keys, (added_us, self.last_seq, item_id))
        self.by_item[item_id] = (added_us, self.last_seq)


@attrs.define(slots=True)
class _Response:
    id: str
    previous_response_id: str | None
    input_json: str
    created_at: datetime
    safety_identifier: str | None
    model: str | None
    conversation_id: str | None
    raw_json: str

    @classmethod
    def from_model(cls, response: StoredResponse) -> _Response:
        """The stored row (JSON fields as text; ``InvalidInputError`` if not serialisable)."""
        return cls(
            id=response.id,
            previous_response_id=response.previous_response_id,
            input_json=dump_json(response.input, "input"),
            created_at=response.created_at,
            safety_identifier=response.safety_identifier,
            model=response.model,
            conversation_id=response.conversation_id,
            raw_json=dump_json(response.raw_response, "raw_response"),
        )

    def to_model(self) -> StoredResponse:
        return StoredResponse(
            id=self.id,
            previous_response_id=self.previous_response_id,
            input=load_json(self.input_json),
            created_at=self.created_at,
            safety_identifier=self.safety_identifier,
            model=self.model,
            conversation_id=self.conversation_id,
            raw_response=load_json(self.raw_json),
        )


class MemoryState:
    """All data of one memory storage, behind one lock (shared by its three stores)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.conversations: dict[str, tuple[datetime, str | None]] = {}  # id -> (created_at, metadata json)
        self.items: dict[str, tuple[str | None, str, str | None, str, str | None, datetime]] = {}
        self.links: dict[str, _Links] = {}
        self.responses: dict[str, _Response] = {}
        self.by_identifier: dict[str, set[str]] = {}
        self.by_conversation: dict[str, set[str]] = {}  # conversation_id -> ids of responses naming it
        # list_conversations' indexes: every conversation's (created_at, id), sorted; the same
        # keys per (extra column, value as text); each conversation's extra values as text.
        self.conversation_order: list[tuple[datetime, str]] = []
        self.conversations_by: dict[tuple[str, str], list[tuple[datetime, str]]] = {}
        self.conversation_extra: dict[str, dict[str, str]] = {}
        # Which conversations link each item (retention: is an item still linked anywhere?).
        self.linked_by: dict[str, set[str]] = {}
        # Idempotency keys: (scope, key) -> (fingerprint, result JSON, expiry on the monotonic
        # clock), in insertion order, which is expiry order (one TTL per storage).
        self.idempotency: dict[tuple[str, str], tuple[str, str, float]] = {}

    def index_response(self, row: _Response) -> None:
        """Add a stored response to the identifier and conversation indexes (under ``lock``)."""
        if row.safety_identifier is not None:
            self.by_identifier.setdefault(row.safety_identifier, set()).add(row.id)
        if row.conversation_id is not None:
            self.by_conversation.setdefault(row.conversation_id, set()).add(row.id)

    def link(self, conversation_id: str, links: _Links, item_id: str, added_us: int) -> None:
        """Add one link (under ``lock``; the caller checked it is not linked yet)."""
        links.add(item_id, added_us)
        self.linked_by.setdefault(item_id, set()).add(conversation_id)

    def unlinked(self, conversation_id: str, item_ids: Iterator[str] | list[str]) -> None:
        """Forget that the conversation linked those items (under ``lock``)."""
        for item_id in item_ids:
            owners = self.linked_by.get(item_id)
            if owners is not None:
                owners.discard(conversation_id)
                if not owners:
                    del self.linked_by[item_id]

    def replayed(self, idem: Idempotency | None, cls: Any) -> Any:
        """The stored result of ``idem``'s key (``ConflictError`` if its arguments differ), or
        ``None`` when the key is unused or expired (under ``lock``)."""
        if idem is None:
            return None
        found = self.idempotency.get((idem.scope, idem.key))
        if found is None:
            return None
        if found[2] <= time.monotonic():
            del self.idempotency[idem.scope, idem.key]
            return None
        return idem.replay(found[0], found[1], cls)

    def remember(self, idem: Idempotency | None, result: object) -> None:
        """Keep ``idem``'s key with the call's result (under ``lock``, with the write), and
        forget a few expired keys (the oldest first: at most 16 per write)."""
        if idem is None:
            return
        now = time.monotonic()
        keys = self.idempotency
        for _ in range(16):
            oldest = next(iter(keys), None)
            if oldest is None or keys[oldest][2] > now:
                break
            del keys[oldest]
        keys[idem.scope, idem.key] = (idem.fingerprint, idem.encode(result), now + idem.ttl_secs)

    def index_conversation(self, conversation_id: str, created_at: datetime, extra: Mapping[str, object]) -> None:
        """Add a new conversation to the listing indexes (under ``lock``)."""
        key = (created_at, conversation_id)
        bisect.insort(self.conversation_order, key)
        values = {
            name: value if isinstance(value, str) else dump_json(value, f"extra column {name}")
            for name, value in extra.items()
            if value is not None
        }
        if values:
            self.conversation_extra[conversation_id] = values
            for pair in values.items():
                bisect.insort(self.conversations_by.setdefault(pair, []), key)

    def unindex_conversation(self, conversation_id: str, created_at: datetime) -> None:
        """Remove a conversation from the listing indexes (under ``lock``)."""
        key = (created_at, conversation_id)
        _remove(self.conversation_order, key)
        for pair in self.conversation_extra.pop(conversation_id, {}).items():
            keys = self.conversations_by.get(pair)
            if keys is not None:
                _remove(keys, key)
                if not keys:
                    del self.conversations_by[pair]


def _remove(keys: list[tuple[datetime, str]], key: tuple[datetime, str]) -> None:
    at = bisect.bisect_left(keys, key)
    if at < len(keys) and keys[at] == key:
        del keys[at]


def _conversation(conversation_id: str, row: tuple[datetime, str | None]) -> Conversation:
    return Conversation(id=conversation_id, created_at=row[0], metadata=load_json(row[1]))


class MemoryConversationStorage(BackendConversations):
    """Conversations in a dict."""

    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def create_conversation(
        self, new: NewConversation, *, extra: Extra = NO_EXTRA, idempotency_key: Idempotency | str | None = None
    ) -> Conversation:
        idem = resolve(idempotency_key, "create_conversation", lambda: {"new": new})
        conversation_id = minted_id(new)
        metadata = None if new.metadata is None else dump_json(new.metadata, "metadata")
        created_at = utc_now()
        with self._s.lock:
            replayed: Conversation | None = self._s.replayed(idem, Conversation)
            if replayed is not None:
                return replayed
            if conversation_id in self._s.conversations:
                raise ConflictError(f"conversation {conversation_id} already exists")
            self._s.conversations[conversation_id] = (created_at, metadata)
            self._s.index_conversation(conversation_id, created_at, extra)
            conversation = _conversation(conversation_id, (created_at, metadata))
            self._s.remember(idem, conversation)
        return conversation

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        with self._s.lock:
            row = self._s.conversations.get(conversation_id)
        return None if row is None else _conversation(conversation_id, row)

    def update_conversation(self, conversation_id: str, metadata: dict[str, object] | None) -> Conversation | None:
        text = None if metadata is None else dump_json(metadata, "metadata")
        with self._s.lock:
            row = self._s.conversations.get(conversation_id)
            if row is None:
                return None
            self._s.conversations[conversation_id] = (row[0], text)
        return _conversation(conversation_id, (row[0], text))

    def delete_conversation(self, conversation_id: str) -> bool:
        with self._s.lock:
            links = self._s.links.pop(conversation_id, None)
            if links is not None:
                self._s.unlinked(conversation_id, list(links.by_item))
            row = self._s.conversations.pop(conversation_id, None)
            if row is None:
                return False
            self._s.unindex_conversation(conversation_id, row[0])
            return True

    def page_conversations(
        self, filter: Mapping[str, str], after: tuple[datetime, str] | None, descending: bool, limit: int
    ) -> list[Conversation]:
        s = self._s
        with s.lock:
            # Walk the smallest index of the filter's pairs (all conversations without a
            # filter) from the cursor on; the other pairs are checked per conversation.
            keys = s.conversation_order
            for pair in filter.items():
                candidate = s.conversations_by.get(pair)
                if candidate is None:
                    return []
                if len(candidate) < len(keys) or keys is s.conversation_order:
                    keys = candidate
            if descending:
                end = len(keys) if after is None else bisect.bisect_left(keys, after)
                walk = (keys[i] for i in range(end - 1, -1, -1))
            else:
                start = 0 if after is None else bisect.bisect_right(keys, after)
                walk = (keys[i] for i in range(start, len(keys)))
            out: list[Conversation] = []
            for key in walk:
                row = s.conversations.get(key[1])
                if row is None or row[0] != key[0]:
                    continue  # removed without unindexing (not by this module): not listed
                values = s.conversation_extra.get(key[1], {})
                if all(values.get(name) == value for name, value in filter.items()):
                    out.append(_conversation(key[1], row))
                    if len(out) >= limit:
                        break
            return out


class MemoryItemStorage(BackendItems):
    """Items in a dict; links in per-conversation sorted lists."""

    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def read(self, item_id: str) -> ConversationItem | None:
        """The item, or ``None``; the caller holds the lock."""
        row = self._s.items.get(item_id)
        if row is None:
            return None
        response_id, item_type, role, content, status, created_at = row
        return ConversationItem(
            id=item_id,
            response_id=response_id,
            item_type=item_type,
            role=role,
            content=load_json(content),
            status=status,
            created_at=created_at,
        )

    def create_item(
        self, new: NewConversationItem, *, extra: Extra = NO_EXTRA, idempotency_key: Idempotency | str | None = None
    ) -> ConversationItem:
        idem = resolve(idempotency_key, "create_item", lambda: {"new": new})
        item_id = minted_id(new)
        content = dump_json(new.content, "content")
        row = (new.response_id, new.item_type, new.role, content, new.status, utc_now())
        with self._s.lock:
            replayed: ConversationItem | None = self._s.replayed(idem, ConversationItem)
            if replayed is not None:
                return replayed
            if item_id in self._s.items:
                raise ConflictError(f"item {item_id} already exists")
            self._s.items[item_id] = row
            item = self.read(item_id)
            assert item is not None
            self._s.remember(idem, item)
        return item

    def append_items(
        self,
        conversation_id: str,
        items: Sequence[NewConversationItem],
        added_at: datetime | None = None,
        *,
        extra: Extra = NO_EXTRA,
        idempotency_key: Idempotency | str | None = None,
    ) -> list[ConversationItem]:
        idem = resolve(
            idempotency_key, "append_items", lambda: {"items": list(items), "added_at": added_at}, conversation_id
        )
        added_us = to_epoch_us(added_at or utc_now())
        now = utc_now()
        rows = []
        for new in items:  # encode everything first: a bad content writes nothing
            item_id = minted_id(new)
            content = dump_json(new.content, "content")
            rows.append((item_id, (new.response_id, new.item_type, new.role, content, new.status, now)))
        with self._s.lock:
            replayed: list[ConversationItem] | None = self._s.replayed(idem, list[ConversationItem])
            if replayed is not None:
                return replayed
            links = self._s.links.get(conversation_id)
            seen: set[str] = set()
            for item_id, _ in rows:  # check everything first: all or nothing
                if item_id in self._s.items or item_id in seen:
                    raise ConflictError(f"item {item_id} already exists (nothing was appended)")
                if links is not None and item_id in links.by_item:
                    raise ConflictError(f"item {item_id} is already linked to conversation {conversation_id}")
                seen.add(item_id)
            if links is None:
                links = self._s.links[conversation_id] = _Links()
            created = []
            for item_id, row in rows:
                self._s.items[item_id] = row
                self._s.link(conversation_id, links, item_id, added_us)
                item = self.read(item_id)
                assert item is not None
                created.append(item)
            self._s.remember(idem, created)
        return created

    def link_items(
        self, conversation_id: str, items: Sequence[tuple[str, datetime]], *, extra: Extra = NO_EXTRA
    ) -> None:
        keys = [(to_epoch_us(added_at), item_id) for item_id, added_at in items]
        with self._s.lock:
            links = self._s.links.get(conversation_id)
            if links is None:
                links = self._s.links[conversation_id] = _Links()
            for _, item_id in keys:  # check everything first: all links or none
                if item_id in links.by_item:
                    raise ConflictError(f"item {item_id} is already linked to conversation {conversation_id}")
            for added_us, item_id in keys:
                self._s.link(conversation_id, links, item_id, added_us)

    def list_items(self, conversation_id: str, params: ListParams) -> list[ConversationItem]:
        return [item for item, _, _ in self.page_items(conversation_id, params, None)[0]]

    def page_items(
        self, conversation_id: str, params: ListParams, position: Position | None
    ) -> tuple[list[PageRow], bool]:
        result: list[PageRow] = []
        with self._s.lock:
            links = self._s.links.get(conversation_id)
            if links is None or params.limit <= 0:
                return result, False
            keys = links.keys
            cursor: tuple[int, int, str] | None = None
            if position is not None:
                cursor = (to_epoch_us(position[0]), position[1], position[2])
            elif params.after is not None and params.after in links.by_item:
                cursor = (*links.by_item[params.after], params.after)
            if params.order is SortOrder.ASC:
                start = 0 if cursor is None else bisect.bisect_right(keys, cursor)
                indexes: range = range(start, len(keys))
            else:
                stop = len(keys) if cursor is None else bisect.bisect_left(keys, cursor)
                indexes = range(stop - 1, -1, -1)
            for index in indexes:
                if len(result) >= params.limit:
                    return result, True  # one more link follows the full page
                added_us, seq, item_id = keys[index]
                item = self.read(item_id)
                if item is not None:  # links whose item record is missing are skipped
                    result.append((item, from_epoch_us(added_us), seq))
        return result, False

    def get_item(self, item_id: str) -> ConversationItem | None:
        with self._s.lock:
            return self.read(item_id)

    def is_item_linked(self, conversation_id: str, item_id: str) -> bool:
        with self._s.lock:
            links = self._s.links.get(conversation_id)
            return links is not None and item_id in links.by_item

    def delete_item(self, conversation_id: str, item_id: str) -> None:
        with self._s.lock:
            self._unlink(conversation_id, item_id)

    def _unlink(self, conversation_id: str, item_id: str) -> bool:
        """Remove one link (the caller holds the lock); whether it existed."""
        links = self._s.links.get(conversation_id)
        if links is None:
            return False
        position = links.by_item.pop(item_id, None)
        if position is None:
            return False
        key = (*position, item_id)
        index = bisect.bisect_left(links.keys, key)
        del links.keys[index]
        self._s.unlinked(conversation_id, [item_id])
        if not links.keys:
            del self._s.links[conversation_id]
        return True

    def unlink_items(self, conversation_id: str, item_ids: Sequence[str]) -> list[str]:
        with self._s.lock:
            removed = [item_id for item_id in dict.fromkeys(item_ids) if self._unlink(conversation_id, item_id)]
            for item_id in removed:
                if item_id not in self._s.linked_by:
                    self._s.items.pop(item_id, None)
        return removed


class MemoryResponseStorage(BackendResponses):
    """Responses in a dict, with a safety-identifier index."""

    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def store_response(
        self, response: StoredResponse, *, extra: Extra = NO_EXTRA, idempotency_key: Idempotency | str | None = None
    ) -> str:
        idem = resolve(idempotency_key, "store_response", lambda: {"response": response})
        row = _Response.from_model(response)
        with self._s.lock:
            replayed: str | None = self._s.replayed(idem, str)
            if replayed is not None:
                return replayed
            if response.id in self._s.responses:
                raise ConflictError(f"response {response.id} already exists")
            self._s.responses[response.id] = row
            self._s.index_response(row)
            self._s.remember(idem, response.id)
        return response.id

    def get_response(self, response_id: str) -> StoredResponse | None:
        with self._s.lock:
            row = self._s.responses.get(response_id)
        return None if row is None else row.to_model()

    def delete_response(self, response_id: str) -> None:
        with self._s.lock:
            self._delete(response_id)

    def _delete(self, response_id: str) -> bool:
        """Delete one response and its index entries (under ``lock``); whether it existed."""
        row = self._s.responses.pop(response_id, None)
        if row is None:
            return False
        s = self._s
        for index, key in ((s.by_identifier, row.safety_identifier), (s.by_conversation, row.conversation_id)):
            if key is not None:
                ids = index.get(key)
                if ids is not None:
                    ids.discard(response_id)
                    if not ids:
                        del index[key]
        return True

    def get_response_chain(self, response_id: str, max_depth: int | None = None) -> ResponseChain:
        with self._s.lock:
            rows = self._s.responses

            def fetch(rid: str) -> StoredResponse | None:
                row = rows.get(rid)
                return None if row is None else row.to_model()

            return walk_chain(response_id, fetch, max_depth)

    def list_identifier_responses(self, identifier: str, limit: int | None = None) -> list[StoredResponse]:
        with self._s.lock:
            rows = [self._s.responses[rid] for rid in self._s.by_identifier.get(identifier, ())]
        rows.sort(key=lambda row: (row.created_at, row.id), reverse=True)
        if limit is not None:
            rows = rows[:limit]
        return [row.to_model() for row in rows]

    def delete_identifier_responses(self, identifier: str) -> int:
        with self._s.lock:
            ids = list(self._s.by_identifier.get(identifier, ()))
            return sum(self._delete(rid) for rid in ids)


class MemoryBackend(Enumerable, Restorable, Prunable):
    """The memory backend: three stores over one :class:`MemoryState`; enumerable, restorable, prunable.

    Its retention reads walk the conversations' sorted listing index, and pick the oldest items
    and responses with one pass over their dict per batch (memory holds what fits in a process).
    """

    kind = "memory"
    max_concurrency = 16

    def __init__(self, state: MemoryState | None = None) -> None:
        self.state = state or MemoryState()
        self.conversations = MemoryConversationStorage(self.state)
        self.items = MemoryItemStorage(self.state)
        self.responses = MemoryResponseStorage(self.state)

    def close(self) -> None:
        """Nothing to close (the data lives as long as the state object)."""

    def pool_stats(self) -> dict[str, int]:
        return {}

    # Enumerable

    def iter_conversations(self, after_id: str | None, batch: int) -> list[Conversation]:
        """Up to ``batch`` conversations whose id is greater than ``after_id``, by id."""
        with self.state.lock:
            rows = self.state.conversations
            ids = heapq.nsmallest(batch, (key for key in rows if after_id is None or key > after_id))
            return [_conversation(key, rows[key]) for key in ids]

    def restore_conversations(self, records: Sequence[Conversation]) -> int:
        """Insert the conversations whose id is absent, ``created_at`` kept; how many were inserted."""
        rows = [
            (r.id, (r.created_at, None if r.metadata is None else dump_json(r.metadata, "metadata"))) for r in records
        ]
        created = 0
        with self.state.lock:
            for conversation_id, row in rows:
                if conversation_id not in self.state.conversations:
                    self.state.conversations[conversation_id] = row
                    self.state.index_conversation(conversation_id, row[0], {})
                    created += 1
        return created

    def iter_items(self, after_id: str | None, batch: int) -> list[ConversationItem]:
        """Up to ``batch`` items whose id is greater than ``after_id``, by id."""
        with self.state.lock:
            ids = heapq.nsmallest(batch, (key for key in self.state.items if after_id is None or key > after_id))
            return [item for key in ids if (item := self.items.read(key)) is not None]

    def iter_links(self, after: LinkPosition | None, batch: int) -> list[LinkRow]:
        """Up to ``batch`` links after ``after``, by ``(conversation_id, added_at, sequence, item_id)``."""
        start = None if after is None else (after[0], to_epoch_us(after[1]), after[2], after[3])
        with self.state.lock:
            all_links = self.state.links
            keys = heapq.nsmallest(
                batch,
                (
                    (conversation_id, added_us, seq, item_id)
                    for conversation_id, links in all_links.items()
                    for added_us, seq, item_id in links.keys
                    if start is None or (conversation_id, added_us, seq, item_id) > start
                ),
            )
            return [(Link(c, i, from_epoch_us(us)), seq) for c, us, seq, i in keys]

    def restore_items(self, records: Sequence[ConversationItem]) -> int:
        """Insert the items whose id is absent, ``created_at`` kept; how many were inserted."""
        rows = [
            (r.id, (r.response_id, r.item_type, r.role, dump_json(r.content, "content"), r.status, r.created_at))
            for r in records
        ]
        created = 0
        with self.state.lock:
            for item_id, row in rows:
                if item_id not in self.state.items:
                    self.state.items[item_id] = row
                    created += 1
        return created

    def restore_links(self, records: Sequence[Link]) -> int:
        """Make the links that do not exist yet; how many were made."""
        created = 0
        with self.state.lock:
            for link in records:
                links = self.state.links.get(link.conversation_id)
                if links is None:
                    links = self.state.links[link.conversation_id] = _Links()
                if link.item_id in links.by_item:
                    continue
                self.state.link(link.conversation_id, links, link.item_id, to_epoch_us(link.added_at))
                created += 1
        return created

    def iter_responses(self, after_id: str | None, batch: int) -> list[StoredResponse]:
        """Up to ``batch`` responses whose id is greater than ``after_id``, by id."""
        with self.state.lock:
            rows = self.state.responses
            ids = heapq.nsmallest(batch, (key for key in rows if after_id is None or key > after_id))
            return [rows[key].to_model() for key in ids]

    def restore_responses(self, records: Sequence[StoredResponse]) -> int:
        """Insert the responses whose id is absent; how many were inserted."""
        rows = [_Response.from_model(r) for r in records]
        created = 0
        with self.state.lock:
            for row in rows:
                if row.id in self.state.responses:
                    continue
                self.state.responses[row.id] = row
                self.state.index_response(row)
                created += 1
        return created

    # Prunable

    max_batch = 100_000

    def old_records(
        self, kind: PrunableKind, cutoff: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[tuple[datetime, str]]:
        s = self.state
        with s.lock:
            if kind == "conversation":
                keys = s.conversation_order
                start = 0 if after is None else bisect.bisect_right(keys, after)
                out: list[tuple[datetime, str]] = []
                for key in keys[start : start + limit]:
                    if key[0] >= cutoff:
                        break
                    out.append(key)
                return out
            found: Iterator[tuple[datetime, str]]
            if kind == "item":
                found = ((row[5], item_id) for item_id, row in s.items.items())
            else:
                found = ((row.created_at, rid) for rid, row in s.responses.items())
            return heapq.nsmallest(limit, (k for k in found if k[0] < cutoff and (after is None or k > after)))

    def existing_conversations(self, ids: Sequence[str]) -> dict[str, datetime]:
        with self.state.lock:
            rows = self.state.conversations
            return {cid: rows[cid][0] for cid in ids if cid in rows}

    def conversation_links(self, conversation_ids: Sequence[str]) -> list[tuple[str, str]]:
        with self.state.lock:
            out: list[tuple[str, str]] = []
            for cid in conversation_ids:
                links = self.state.links.get(cid)
                if links is not None:
                    out += [(cid, item_id) for item_id in links.by_item]
            return out

    def item_links(self, item_ids: Sequence[str]) -> list[tuple[str, str]]:
        with self.state.lock:
            linked = self.state.linked_by
            return [(item_id, cid) for item_id in item_ids for cid in linked.get(item_id, ())]

    def identifier_responses(self, identifier: str, after_id: str | None, limit: int) -> list[tuple[str, str | None]]:
        with self.state.lock:
            ids = self.state.by_identifier.get(identifier, ())
            page = heapq.nsmallest(limit, (rid for rid in ids if after_id is None or rid > after_id))
            return [(rid, self.state.responses[rid].conversation_id) for rid in page]

    def named_by_others(self, conversation_ids: Sequence[str], identifier: str) -> set[str]:
        s = self.state
        with s.lock:
            return {
                cid
                for cid in conversation_ids
                for rid in s.by_conversation.get(cid, ())
                if s.responses[rid].safety_identifier not in (None, identifier)
            }

    def delete_responses(self, ids: Sequence[str]) -> int:
        with self.state.lock:
            return sum(self.responses._delete(rid) for rid in ids)

    def delete_conversations(self, ids: Sequence[str], *, with_items: bool) -> tuple[int, int, int]:
        s = self.state
        conversations = links_deleted = items = 0
        with s.lock:
            for cid in ids:
                links = s.links.pop(cid, None)
                if links is not None:
                    linked = list(links.by_item)
                    s.unlinked(cid, linked)
                    links_deleted += len(linked)
                    if with_items:
                        items += self._delete_unlinked(linked)
                row = s.conversations.pop(cid, None)
                if row is not None:
                    s.unindex_conversation(cid, row[0])
                    conversations += 1
        return conversations, links_deleted, items

    def _delete_unlinked(self, item_ids: Sequence[str]) -> int:
        s = self.state
        doomed = [item_id for item_id in item_ids if item_id not in s.linked_by and item_id in s.items]
        for item_id in doomed:
            del s.items[item_id]
        return len(doomed)

    def delete_unlinked_items(self, ids: Sequence[str]) -> int:
        with self.state.lock:
            return self._delete_unlinked(ids)

    def count(self, kind: RecordKind) -> int:
        with self.state.lock:
            if kind == "conversation":
                return len(self.state.conversations)
            if kind == "item":
                return len(self.state.items)
            if kind == "link":
                return sum(len(links.by_item) for links in self.state.links.values())
            return len(self.state.responses)


def open_backend(config: None = None, *, check_schema: bool = True) -> Backend:
    """A fresh memory backend (it has no configuration and no schema)."""
    return MemoryBackend()
