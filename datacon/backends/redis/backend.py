"""``RedisBackend``: the three Redis storages over one store; enumerable, restorable, versioned.

Redis keeps no order of its keys, so an enumeration's first page (``after`` of ``None``)
``SCAN``s the kind's keys and keeps the sorted ids (about 100 bytes each) until the next
enumeration of that kind starts; its pages follow that snapshot (records deleted or expired
meanwhile are skipped). ``count`` always scans afresh. Each restore batch is one
``MULTI``/``EXEC`` of the store's own write scripts: applied whole, or not at all if the
connection fails before ``EXEC``. Its layout version and ``datacon migrate`` are in ``migrate``;
``durability`` reads the server's persistence settings for ``datacon doctor``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from datacon.backends.base import (
    NO_EXTRA,
    Durability,
    Durable,
    Enumerable,
    LinkPosition,
    LinkRow,
    NotPrunableError,
    Prunable,
    PrunableKind,
    RecordKind,
    Restorable,
    SchemaStatus,
    Versioned,
)
from datacon.config import RedisConfig
from datacon.models import Conversation, ConversationItem, Link, StoredResponse

from . import migrate
from .keys import id_of_part
from .scores import score, score_time
from .store import (
    RedisConversationStorage,
    RedisItemStorage,
    RedisResponseStorage,
    RedisStore,
    listing_key,
    listing_member,
    listing_time,
)

__all__ = ["RedisBackend"]

R = TypeVar("R")
H = TypeVar("H", Conversation, ConversationItem)


class RedisBackend(Enumerable, Restorable, Versioned, Durable, Prunable):
    """One Redis database (``config.url``) through one pool; see ``store`` for the key layout.

    ``check_server`` runs the store's start-up check of the server's persistence settings.
    """

    kind = "redis"

    def __init__(self, config: RedisConfig, *, check_server: bool = True) -> None:
        self.store = RedisStore(config, check=check_server)
        self.max_concurrency = self.store.max_concurrency
        self.conversations = RedisConversationStorage(self.store)
        self.items = RedisItemStorage(self.store)
        self.responses = RedisResponseStorage(self.store)
        self._ids: dict[str, list[str]] = {}
        self._links: tuple[str, list[tuple[datetime, int, str]]] | None = None

    def close(self) -> None:
        self.store.close()

    def pool_stats(self) -> dict[str, int]:
        return self.store.pool_stats()

    # Enumerable

    def _scan(self, kind: RecordKind, *, fresh: bool = False) -> list[str]:
        cached = None if fresh else self._ids.get(kind)
        if cached is not None:
            return cached
        s = self.store
        prefix = {
            "conversation": s.conversation_prefix,
            "item": s.item_prefix,
            "response": s.response_prefix,
            "link": s.conversation_prefix,
        }[kind]
        key_type, suffix = ("zset", ":items") if kind == "link" else ("hash", "")

        def scan() -> list[str]:
            found = s.client.scan_iter(match=f"{prefix}*{suffix}", count=1000, _type=key_type)
            # A key part that datacon would not write (another owner's key, say) is skipped.
            ids = (id_of_part(key[len(prefix) : len(key) - len(suffix)]) for key in found)
            return sorted({i for i in ids if i is not None})

        ids = s.call(f"scan {kind}s", scan)
        self._ids[kind] = ids
        return ids

    def _records(
        self,
        kind: RecordKind,
        after_id: str | None,
        batch: int,
        key: Callable[[str], str],
        decode: Callable[[str, Mapping[str, str]], R],
    ) -> list[R]:
        all_ids = self._scan(kind, fresh=after_id is None)
        start = 0 if after_id is None else bisect.bisect_right(all_ids, after_id)
        ids = all_ids[start : start + batch]
        s = self.store

        def run() -> list[dict[str, str]]:
            with s.client.pipeline(transaction=False) as pipe:
                for record_id in ids:
                    pipe.hgetall(key(record_id))
                return list(pipe.execute())

        rows = s.call(f"export {kind}s", run)
        return [decode(i, row) for i, row in zip(ids, rows, strict=True) if row]

    def iter_conversations(self, after_id: str | None, batch: int) -> Sequence[Conversation]:
        s = self.store
        return self._records("conversation", after_id, batch, s.conversation_key, s.codec.conversation)

    def iter_items(self, after_id: str | None, batch: int) -> Sequence[ConversationItem]:
        s = self.store
        return self._records("item", after_id, batch, s.item_key, s.codec.item)

    def iter_responses(self, after_id: str | None, batch: int) -> Sequence[StoredResponse]:
        s = self.store
        return self._records("response", after_id, batch, s.response_key, s.codec.response)

    def _conversation_links(self, conversation_id: str) -> list[tuple[datetime, int, str]]:
        # One conversation's links as (added_at, sequence, item id), sorted: its list order.
        # Kept while pages walk through it.
        if self._links is not None and self._links[0] == conversation_id:
            return self._links[1]
        s = self.store
        key, sequences = s.links_key(conversation_id), s.sequence_key(conversation_id)

        def run() -> list[Any]:
            with s.client.pipeline(transaction=False) as pipe:
                pipe.zrange(key, 0, -1, withscores=True)
                pipe.hgetall(sequences)
                return list(pipe.execute())

        members, seqs = s.call("export links", run)
        links = sorted(
            (score_time(value), int(seqs.get(member, 0)), str(member)) for member, value in cast("list[Any]", members)
        )
        self._links = (conversation_id, links)
        return links

    def iter_links(self, after: LinkPosition | None, batch: int) -> Sequence[LinkRow]:
        if after is None:
            self._links = None
        conversations = self._scan("link", fresh=after is None)
        index = 0 if after is None else bisect.bisect_left(conversations, after[0])
        page: list[LinkRow] = []
        while index < len(conversations) and len(page) < batch:
            conversation_id = conversations[index]
            links = self._conversation_links(conversation_id)
            start = 0
            if after is not None and conversation_id == after[0]:
                start = bisect.bisect_right(links, after[1:])
            for added_at, seq, item_id in links[start : start + batch - len(page)]:
                page.append((Link(conversation_id, item_id, added_at), seq))
            index += 1
        return page

    def count(self, kind: RecordKind) -> int:
        if kind != "link":
            return len(self._scan(kind, fresh=True))
        s = self.store
        keys = [s.links_key(c) for c in self._scan("link", fresh=True)]

        def run() -> int:
            with s.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zcard(key)
                return sum(pipe.execute())

        return int(s.call("count links", run))

    # Restorable

    def _transaction(self, kind: RecordKind, queue: Callable[[Any], None]) -> list[Any]:
        s = self.store

        def run() -> list[Any]:
            if s.cluster:
                # A cluster pipeline does not load its scripts first (a plain one does), and an
                # EVALSHA of an unknown script fails inside EXEC while the rest of the
                # transaction applies: load them on the masters before each batch.
                s.load_scripts()
            with s.client.pipeline(transaction=True) as pipe:
                queue(pipe)
                return list(pipe.execute())

        return s.call(f"import {kind}s", run)

    def restore_conversations(self, records: Sequence[Conversation]) -> int:
        s = self.store

        def queue(pipe: Any) -> None:
            for r in records:
                s.put_conversation(r, NO_EXTRA, client=pipe)

        return sum(1 for created in self._transaction("conversation", queue) if created)

    def restore_items(self, records: Sequence[ConversationItem]) -> int:
        s = self.store

        def queue(pipe: Any) -> None:
            for r in records:
                s.create_item_record(r, s.codec.item_fields(r, NO_EXTRA), client=pipe)

        return sum(1 for created in self._transaction("item", queue) if created)

    def restore_responses(self, records: Sequence[StoredResponse]) -> int:
        s = self.store

        def queue(pipe: Any) -> None:
            for r in records:
                s.put_response(r, NO_EXTRA, client=pipe)

        return sum(1 for created in self._transaction("response", queue) if created)

    def restore_links(self, records: Sequence[Link]) -> int:
        # Insert-if-absent per link, unlike link_items' all-or-nothing script; one script per
        # conversation sequences the added links in the order given; all in one MULTI/EXEC.
        s = self.store
        by_conversation: dict[str, list[str]] = {}
        for link in records:
            by_conversation.setdefault(link.conversation_id, []).extend((score(link.added_at), link.item_id))

        def queue(pipe: Any) -> None:
            for conversation_id, pairs in by_conversation.items():
                args = [s.ttl, *s.linking_args(conversation_id), *pairs]
                s.run_script(s.lua_restore_links, s.link_keys(conversation_id), args, pipe)

        return sum(int(added) for added in self._transaction("link", queue))

    # Versioned: the key layout (see ``migrate``)

    def _plan(self, action: str) -> migrate.RedisMigrationPlan:
        s = self.store
        fields = {
            "conversation": s.codec.conversations.field("id"),
            "item": s.codec.items.field("id"),
            "response": s.codec.responses.field("id"),
        }
        return s.call(action, lambda: migrate.plan(s.client, s.keys, fields))

    def schema_status(self) -> SchemaStatus:
        """Layout ``LATEST`` when nothing is left to move or rescale, else 0; ``SCAN``s the keys."""
        steps = self._plan("migrate status")
        return SchemaStatus(0 if steps.statements else migrate.LATEST, migrate.LATEST, steps.statements)

    def apply_migrations(self) -> list[int]:
        """Move and rescale what ``schema_status`` lists; ``[LATEST]`` when anything was done."""
        steps = self._plan("migrate plan")
        if not steps.statements:
            return []
        s = self.store
        s.call("migrate apply", lambda: migrate.apply(s.client, steps, s.keys, s.codec))
        s.index_ready()
        return [migrate.LATEST]

    # Prunable: retention and erasure (SPEC 7.7) over the indexes the write scripts keep
    # (see ``store``); every call is one script (or one pipeline of reads) over one batch.

    max_batch = 500

    def _ready(self) -> RedisStore:
        s = self.store
        if not s.index_ready():
            raise NotPrunableError(
                "the Redis retention indexes are not built for the data written before this version:"
                " run `datacon migrate apply` first (docs/operations.md, Retention)"
            )
        return s

    def old_records(
        self, kind: PrunableKind, cutoff: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[tuple[datetime, str]]:
        s = self._ready()
        table = {"conversation": s.codec.conversations, "item": s.codec.items, "response": s.codec.responses}[kind]
        if table.field("created_at") is None:
            return []
        while True:
            found, capped = self._old_page(s, kind, cutoff, after, limit)
            # A script examines a bounded number of entries: when it stopped at that bound with
            # nothing to return (it dropped vanished records' entries), ask again.
            if found or not capped:
                return found

    @staticmethod
    def _old_page(
        s: RedisStore, kind: PrunableKind, cutoff: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> tuple[list[tuple[datetime, str]], bool]:
        if kind == "conversation":
            lo = "-" if after is None else "(" + listing_member(*after)
            args: list[str | int] = [s.conversation_prefix, lo, "(" + listing_time(cutoff), limit]
            keys = [s.conversations_list_key]
            page, capped = s.call("prune", lambda: s.lua_old_conversations(keys=keys, args=args))
            return [listing_key(str(member)) for member in page], bool(capped)
        if kind == "item":
            index, prefix = s.keys.items_created, s.item_prefix
        else:
            index, prefix = s.keys.responses_created, s.response_prefix
        start = ["", ""] if after is None else [score(after[0]), after[1]]
        args = [prefix, score(cutoff), *start, limit]
        page, capped = s.call("prune", lambda: s.lua_old_records(keys=[index], args=args))
        return [(score_time(float(at)), str(record_id)) for record_id, at in page], bool(capped)

    def existing_conversations(self, ids: Sequence[str]) -> dict[str, datetime]:
        s = self.store

        def run() -> list[Any]:
            with s.client.pipeline(transaction=False) as pipe:
                for conversation_id in ids:
                    pipe.hgetall(s.conversation_key(conversation_id))
                return list(pipe.execute())

        rows = s.call("prune", run)
        return {
            cid: s.codec.conversation(cid, {str(k): str(v) for k, v in row.items()}).created_at
            for cid, row in zip(ids, rows, strict=True)
            if row
        }

    def conversation_links(self, conversation_ids: Sequence[str]) -> list[tuple[str, str]]:
        s = self.store

        def run() -> list[Any]:
            with s.client.pipeline(transaction=False) as pipe:
                for conversation_id in conversation_ids:
                    pipe.zrange(s.links_key(conversation_id), 0, -1)
                return list(pipe.execute())

        rows = s.call("prune", run)
        return [(cid, str(item)) for cid, items in zip(conversation_ids, rows, strict=True) for item in items]

    def item_links(self, item_ids: Sequence[str]) -> list[tuple[str, str]]:
        s = self._ready()
        if not item_ids:
            return []
        k = s.keys
        args = [k.item_links_prefix, k.conversation_prefix, k.links_suffix, *item_ids]
        rows = s.call("prune", lambda: s.lua_item_links(keys=[k.items_created], args=args))
        return [(str(item), str(cid)) for item, cid in rows]

    def identifier_responses(self, identifier: str, after_id: str | None, limit: int) -> list[tuple[str, str | None]]:
        s = self._ready()
        field = s.safety_field()
        if field is None:
            return []
        conversation = s.codec.responses.field("conversation_id") or ""
        args: list[str | int] = [s.response_prefix, field, identifier, conversation, after_id or "", limit]
        rows = s.call(
            "erase_identifier", lambda: s.lua_identifier_responses(keys=[s.safety_key(identifier)], args=args)
        )
        return [(str(rid), None if not cid else str(cid)) for rid, cid in rows]

    def named_by_others(self, conversation_ids: Sequence[str], identifier: str) -> set[str]:
        s = self.store
        r = s.codec.responses
        field, conversation = s.safety_field(), r.field("conversation_id")
        if field is None or conversation is None or not conversation_ids:
            return set()
        k = s.keys
        args = [k.conversation_responses_prefix, s.response_prefix, field, conversation, identifier, *conversation_ids]
        named = s.call("erase_identifier", lambda: s.lua_named_by_others(keys=[k.items_created], args=args))
        return {str(cid) for cid in named}

    def delete_responses(self, ids: Sequence[str]) -> int:
        s = self.store
        if not ids:
            return 0
        fields = s.response_index_args()
        args = [s.response_prefix, s.safety_prefix, s.keys.safety_suffix, *fields, *ids]
        keys = [s.keys.responses_created]
        return int(s.write("prune", lambda c: s.run_script(s.lua_delete_responses, keys, args, c)))

    def delete_conversations(self, ids: Sequence[str], *, with_items: bool) -> tuple[int, int, int]:
        s = self._ready()
        if not ids:
            return 0, 0, 0
        k = s.keys
        args = [
            k.conversation_prefix,
            k.links_suffix,
            k.sequence_prefix,
            k.item_links_prefix,
            k.item_prefix,
            "1" if with_items else "0",
            k.item_packed_prefix,
            k.packed_suffix,
            *ids,
        ]
        reply = s.write("prune", lambda c: s.run_script(s.lua_delete_conversations, [k.items_created], args, c))
        conversations, links, items = (int(n) for n in reply)
        return conversations, links, items

    def delete_unlinked_items(self, ids: Sequence[str]) -> int:
        s = self._ready()
        if not ids:
            return 0
        args = [*s.unlinked_args(), *ids]
        keys = [s.keys.items_created]
        return int(s.write("prune", lambda c: s.run_script(s.lua_delete_unlinked_items, keys, args, c)))

    # Durable

    def durability(self) -> Durability:
        persists, detail = self.store.durability()
        return Durability(persists, detail)
