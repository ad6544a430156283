"""Import and copy: write records into a storage, skipping those that exist.

Writing uses the backend's atomic restore when it has one, else the public API: still
idempotent (an existing id or link is skipped), but not atomic per batch, and conversations
and items get a new ``created_at`` (a warning says so). Re-running an import or copy is
always safe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar, cast

import attrs

from datacon.backends.base import LinkRow, Restorable
from datacon.errors import ConflictError
from datacon.models import Conversation, ConversationItem, Link, NewConversation, NewConversationItem, StoredResponse
from datacon.storage import Storage
from datacon.transfer.capability import enumerable, restorable
from datacon.transfer.jsonl import KINDS, Kind, Record, kind_of

__all__ = [
    "DEFAULT_BATCH",
    "ApiWriter",
    "BackendWriter",
    "ImportCounts",
    "copy_storage",
    "counts",
    "import_records",
    "iter_all",
    "iter_batches",
]

DEFAULT_BATCH = 500
R = TypeVar("R", Conversation, ConversationItem, LinkRow, StoredResponse)


def _pages(fetch: Callable[[Any, int], Sequence[R]], key: Callable[[R], Any], batch: int) -> Iterator[Sequence[R]]:
    cursor: Any = None
    while True:
        page = fetch(cursor, batch)
        if not page:
            return
        yield page
        cursor = key(page[-1])


def iter_batches(storage: Storage, batch: int = DEFAULT_BATCH) -> Iterator[tuple[Kind, Sequence[Record]]]:
    """Every record of ``storage`` in pages of at most ``batch``, in dump order."""
    seam = enumerable(storage)
    for page in _pages(seam.iter_conversations, lambda r: r.id, batch):
        yield "conversation", page
    for items in _pages(seam.iter_items, lambda r: r.id, batch):
        yield "item", items
    # Links in each conversation's list order, so an import (which sequences links in the
    # order given) keeps the order of links that share one added_at.
    for rows in _pages(seam.iter_links, lambda r: (r[0].conversation_id, r[0].added_at, r[1], r[0].item_id), batch):
        yield "link", [link for link, _ in rows]
    for responses in _pages(seam.iter_responses, lambda r: r.id, batch):
        yield "response", responses


def iter_all(storage: Storage, batch: int = DEFAULT_BATCH) -> Iterator[Record]:
    """Every record of ``storage``, in dump order, read ``batch`` at a time."""
    for _, page in iter_batches(storage, batch):
        yield from page


def counts(storage: Storage) -> dict[Kind, int]:
    """How many records of each kind ``storage`` holds."""
    seam = enumerable(storage)
    return {kind: seam.count(kind) for kind in KINDS}


@attrs.define
class ImportCounts:
    """How many records of each kind were created, and how many already existed (skipped)."""

    created: dict[Kind, int] = attrs.field(factory=lambda: dict.fromkeys(KINDS, 0))
    skipped: dict[Kind, int] = attrs.field(factory=lambda: dict.fromkeys(KINDS, 0))
    warnings: list[str] = attrs.field(factory=list)

    def add(self, kind: Kind, created: int, total: int) -> None:
        self.created[kind] += created
        self.skipped[kind] += total - created


class _Writer(Protocol):
    def restore(self, kind: Kind, records: Sequence[Record]) -> int: ...


class BackendWriter:
    """Atomic writes of one batch through the backend's :class:`Restorable` methods."""

    def __init__(self, backend: Restorable) -> None:
        self._b = backend

    def restore(self, kind: Kind, records: Sequence[Record]) -> int:
        # A batch holds records of one kind (see _batched).
        b = self._b
        if kind == "conversation":
            return b.restore_conversations(cast(Sequence[Conversation], records))
        if kind == "item":
            return b.restore_items(cast(Sequence[ConversationItem], records))
        if kind == "link":
            return b.restore_links(cast(Sequence[Link], records))
        return b.restore_responses(cast(Sequence[StoredResponse], records))


class ApiWriter:
    """Idempotent writes through the public API, for backends that are not :class:`Restorable`."""

    def __init__(self, storage: Storage, warnings: list[str]) -> None:
        self._s = storage
        self._warnings = warnings
        self._warned: set[Kind] = set()

    def _warn(self, kind: Kind) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            self._warnings.append(
                f"the {self._s.backend} backend cannot restore {kind}s as given: their created_at is the import time"
            )

    def restore(self, kind: Kind, records: Sequence[Record]) -> int:
        created = 0
        if kind == "link":
            by_conversation: dict[str, list[tuple[str, datetime]]] = {}
            for link in cast(Sequence[Link], records):
                by_conversation.setdefault(link.conversation_id, []).append((link.item_id, link.added_at))
            for conversation_id, pairs in by_conversation.items():
                try:
                    self._s.items.link_items(conversation_id, pairs)  # atomic: the usual case, one call
                    created += len(pairs)
                    continue
                except ConflictError:
                    pass
                for item_id, added_at in pairs:  # some exist already: link the rest one by one
                    created += _unless_conflict(self._s.items.link_item, conversation_id, item_id, added_at)
            return created
        for record in records:
            if isinstance(record, Conversation):
                self._warn(kind)
                new_conversation = NewConversation(id=record.id, metadata=record.metadata)
                created += _unless_conflict(self._s.conversations.create_conversation, new_conversation)
            elif isinstance(record, ConversationItem):
                self._warn(kind)
                new_item = NewConversationItem(
                    item_type=record.item_type,
                    content=record.content,
                    id=record.id,
                    response_id=record.response_id,
                    role=record.role,
                    status=record.status,
                )
                created += _unless_conflict(self._s.items.create_item, new_item)
            elif isinstance(record, StoredResponse):
                created += _unless_conflict(self._s.responses.store_response, record)
        return created


def _unless_conflict(call: Callable[..., object], *args: Any) -> int:
    # 1 if written, 0 if it existed already (the guard raised ConflictError, nothing changed).
    try:
        call(*args)
    except ConflictError:
        return 0
    return 1


def _batched(records: Iterable[Record], batch: int) -> Iterator[tuple[Kind, list[Record]]]:
    # Consecutive records of one kind form a batch (a dump is grouped by kind already).
    kind: Kind | None = None
    pending: list[Record] = []
    for record in records:
        this = kind_of(record)
        if pending and (this != kind or len(pending) >= batch):
            assert kind is not None
            yield kind, pending
            pending = []
        kind = this
        pending.append(record)
    if pending and kind is not None:
        yield kind, pending


def import_records(
    storage: Storage,
    records: Iterable[Record],
    batch: int = DEFAULT_BATCH,
    progress: Callable[[Kind, int], None] | None = None,
) -> ImportCounts:
    """Write ``records`` into ``storage``, skipping those that exist; counts per kind.

    Each batch is written atomically when the backend is ``Restorable`` (else record by
    record). A failure stops the import; batches before it stay written, and re-running the
    same input resumes, since existing records are skipped.
    """
    result = ImportCounts()
    seam = restorable(storage)
    writer: _Writer = BackendWriter(seam) if seam is not None else ApiWriter(storage, result.warnings)
    for kind, chunk in _batched(records, batch):
        result.add(kind, writer.restore(kind, chunk), len(chunk))
        if progress is not None:
            progress(kind, len(chunk))
    return result


def copy_storage(
    source: Storage,
    destination: Storage,
    batch: int = DEFAULT_BATCH,
    progress: Callable[[Kind, int], None] | None = None,
) -> ImportCounts:
    """Copy every record of ``source`` into ``destination`` (resumable, like :func:`import_records`)."""
    return import_records(destination, iter_all(source, batch), batch, progress)
