"""Retention and erasure (SPEC 7.7), written once over every backend's
:class:`~datacon.backends.base.Prunable` calls.

Both work in batches of at most ``batch_size`` ids; every delete is one short transaction
(or one Redis script) of one batch, so a concurrent writer waits at most one batch, and
nothing is held between batches. Each step is driven by an index and by what is still
stored, so an interrupted run leaves a consistent state and running it again finishes
the job (it then counts only what it deleted itself).

``prune(cutoff)``, in this order:

1. responses with ``created_at < cutoff``;
2. conversations with ``created_at < cutoff``, each batch with all its links;
3. items with ``created_at < cutoff`` that no link names (never-linked items included):
   an item linked to a surviving conversation, or to a conversation id that does not exist
   (links are not checked against conversations), survives.

``erase_identifier(identifier)``:

1. the conversations named (``conversation_id``) by the identifier's responses that exist
   and that no response with another safety identifier names; each batch, atomically, with
   their links and the items those links named that no other link names;
2. then the identifier's responses (last: they are what finds the conversations, so an
   interrupted erasure still finds them when it runs again).

A dry run reads the same batches and counts what the run would delete, deleting nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

import attrs

from datacon.models import PruneReport
from datacon.storage import PruneProgress

from .base import Prunable, PrunableKind

__all__ = ["DEFAULT_BATCH", "Progress", "erase_identifier", "prune"]

#: Ids per batch (and so per transaction) unless the caller says otherwise.
DEFAULT_BATCH = 1000

#: Called after every batch with the totals so far (the CLI's progress bar).
Progress = PruneProgress


def _keys(ops: Prunable, kind: PrunableKind, cutoff: datetime, batch: int) -> Iterator[list[tuple[datetime, str]]]:
    """Pages of the ``(created_at, id)`` keys of ``kind`` older than ``cutoff``, ascending.

    Keyset pagination after the last key read: records that a batch kept (a linked item)
    are passed over, never read again.
    """
    after: tuple[datetime, str] | None = None
    while True:
        page = ops.old_records(kind, cutoff, after, batch)
        if not page:
            return
        yield page
        after = page[-1]


def _chunks(ids: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


class _Tally:
    """The running report of one prune or erasure, shown to ``progress`` after every batch."""

    def __init__(self, report: PruneReport, progress: Progress | None) -> None:
        self.report = report
        self._progress = progress

    def advance(self, **counts: int) -> None:
        report = self.report
        self.report = attrs.evolve(report, **{name: getattr(report, name) + n for name, n in counts.items()})
        if self._progress is not None:
            self._progress(self.report)


def prune(
    ops: Prunable, cutoff: datetime, *, dry_run: bool, batch_size: int, progress: Progress | None = None
) -> PruneReport:
    """Delete (or count) what is older than ``cutoff`` (aware UTC); see the module docstring."""
    batch = max(1, min(batch_size, ops.max_batch))
    tally = _Tally(PruneReport(dry_run=dry_run), progress)
    advance = tally.advance

    for page in _keys(ops, "response", cutoff, batch):
        ids = [record_id for _, record_id in page]
        advance(responses=len(ids) if dry_run else ops.delete_responses(ids))
    for page in _keys(ops, "conversation", cutoff, batch):
        ids = [record_id for _, record_id in page]
        if dry_run:
            advance(conversations=len(ids), links=len(ops.conversation_links(ids)))
        else:
            conversations, unlinked, _ = ops.delete_conversations(ids, with_items=False)
            advance(conversations=conversations, links=unlinked)
    for page in _keys(ops, "item", cutoff, batch):
        ids = [record_id for _, record_id in page]
        if not dry_run:
            advance(items=ops.delete_unlinked_items(ids))
            continue
        # Would the item be unlinked once the old conversations are gone? Only links to a
        # stored conversation older than the cutoff go (a link to a missing one stays).
        links = ops.item_links(ids)
        named = sorted({conversation_id for _, conversation_id in links})
        stored: dict[str, datetime] = {}
        for chunk in _chunks(named, batch):
            stored.update(ops.existing_conversations(chunk))
        kept = {item_id for item_id, cid in links if cid not in stored or stored[cid] >= cutoff}
        advance(items=sum(1 for record_id in ids if record_id not in kept))
    return tally.report


def erase_identifier(
    ops: Prunable, identifier: str, *, dry_run: bool, batch_size: int, progress: Progress | None = None
) -> PruneReport:
    """Delete (or count) what belongs to ``identifier``; see the module docstring."""
    batch = max(1, min(batch_size, ops.max_batch))
    tally = _Tally(PruneReport(dry_run=dry_run), progress)
    advance = tally.advance

    # The conversations its responses name (one user's: kept in memory), then those to erase.
    named: set[str] = set()
    responses = 0
    after: str | None = None
    while page := ops.identifier_responses(identifier, after, batch):
        responses += len(page)
        named.update(cid for _, cid in page if cid is not None)
        after = page[-1][0]
    erased: list[str] = []
    for chunk in _chunks(sorted(named), batch):
        others = ops.named_by_others(chunk, identifier)
        stored = ops.existing_conversations([cid for cid in chunk if cid not in others])
        erased += sorted(stored)
    if dry_run:
        doomed = set(erased)
        items: set[str] = set()
        for chunk in _chunks(erased, batch):
            links = ops.conversation_links(chunk)
            linked = sorted({item_id for _, item_id in links})
            kept: set[str] = set()
            for part in _chunks(linked, batch):
                kept.update(item_id for item_id, cid in ops.item_links(part) if cid not in doomed)
            items.update(item_id for item_id in linked if item_id not in kept)
            advance(conversations=len(chunk), links=len(links))
        advance(items=len(items), responses=responses)
        return tally.report
    for chunk in _chunks(erased, batch):
        conversations, links_deleted, items_deleted = ops.delete_conversations(chunk, with_items=True)
        advance(conversations=conversations, links=links_deleted, items=items_deleted)
    # The responses last: they are how a second run finds the conversations.
    after = None
    while page := ops.identifier_responses(identifier, after, batch):
        deleted = ops.delete_responses([rid for rid, _ in page])
        advance(responses=deleted)
        after = page[-1][0]
    return tally.report
