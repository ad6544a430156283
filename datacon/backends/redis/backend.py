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
from .store import RedisConversationStorage, RedisItemStorage, RedisResponseStorage, RedisStore

__all__ = ["RedisBackend"]

R = TypeVar("R")
H = TypeVar("H", Conversation, ConversationItem)


class RedisBackend(Enumerable, Restorable, Versioned, Durable):
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

    def _restore_hashes(
        self,
        kind: RecordKind,
        records: Sequence[H],
        key: Callable[[str], str],
        fields: Callable[[H, Mapping[str, Any]], dict[str, str]],
    ) -> int:
        s = self.store

        def queue(pipe: Any) -> None:
            for r in records:
                s.create_record(key(r.id), fields(r, NO_EXTRA), client=pipe)

        return sum(1 for created in self._transaction(kind, queue) if created)

    def restore_conversations(self, records: Sequence[Conversation]) -> int:
        s = self.store

        def queue(pipe: Any) -> None:
            for r in records:
                s.put_conversation(r, NO_EXTRA, client=pipe)

        return sum(1 for created in self._transaction("conversation", queue) if created)

    def restore_items(self, records: Sequence[ConversationItem]) -> int:
        s = self.store
        return self._restore_hashes("item", records, s.item_key, s.codec.item_fields)

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
                keys = [s.links_key(conversation_id), s.sequence_key(conversation_id)]
                s.run_script(s.lua_restore_links, keys, [s.ttl, *pairs], pipe)

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
        s.call("migrate apply", lambda: migrate.apply(s.client, steps))
        return [migrate.LATEST]

    # Durable

    def durability(self) -> Durability:
        persists, detail = self.store.durability()
        return Durability(persists, detail)
