"""The enumeration and restore seam of each backend (temporary: adapters over internals).

Enumeration: the storage API has no "list everything", so every backend offers a small seam
on its *raw* stores (the objects behind the factory's guard), keyset-paginated by id:

- conversation storage: ``iter_conversations(after_id, batch)``, ``count_conversations()``,
  ``restore_conversations(records)``
- item storage: ``iter_items(after_id, batch)``, ``iter_links(after, batch)`` (``after`` is a
  ``(conversation_id, item_id)`` pair), ``count_items()``, ``count_links()``,
  ``restore_items(records)``, ``restore_links(records)``
- response storage: ``iter_responses(after_id, batch)``, ``count_responses()``,
  ``restore_responses(records)``

``iter_*`` return up to ``batch`` records whose key is strictly greater than the cursor (``None``:
from the start), ascending; an empty page means the end. ``restore_*`` insert the records whose
key is absent, exactly as given (``created_at`` kept), skip the others, and return how many were
inserted; each call is atomic (one transaction): a failed call writes nothing.

The memory backend implements these on its stores. For SQLite and PostgreSQL (over the shared
SQL layer) and for Redis, adapters in this module implement the same contract over the
backends' internals (``_ADAPTERS``), until those backends carry the methods themselves.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from datacon._time import from_epoch_us, to_epoch_us
from datacon.errors import DataconError
from datacon.models import Conversation, ConversationItem, Link, StoredResponse
from datacon.storage import Storage
from datacon.transfer.jsonl import Kind, Record

__all__ = ["Enumerable", "NotEnumerableError", "Restorable", "enumerable", "restorable"]

R = TypeVar("R", Conversation, ConversationItem, Link, StoredResponse)


class NotEnumerableError(DataconError):
    """The backend does not offer the enumeration seam, so it cannot be exported or copied from."""


@runtime_checkable
class Enumerable(Protocol):
    """Keyset-paginated reads of every record of one storage, and record counts."""

    def iter_conversations(self, after_id: str | None, batch: int) -> Sequence[Conversation]: ...

    def iter_items(self, after_id: str | None, batch: int) -> Sequence[ConversationItem]: ...

    def iter_links(self, after: tuple[str, str] | None, batch: int) -> Sequence[Link]: ...

    def iter_responses(self, after_id: str | None, batch: int) -> Sequence[StoredResponse]: ...

    def count(self, kind: Kind) -> int: ...


@runtime_checkable
class Restorable(Protocol):
    """Atomic insert-if-absent of a batch of records, as given; returns how many were inserted."""

    def restore(self, kind: Kind, records: Sequence[Record]) -> int: ...


# -- locating the seam -------------------------------------------------------------------------


def _raw(store: object) -> Any:
    # The factory's guard keeps the backend's store in ``inner``.
    return getattr(store, "inner", store)


_READS = {
    "conversations": ("iter_conversations", "count_conversations"),
    "items": ("iter_items", "iter_links", "count_items", "count_links"),
    "responses": ("iter_responses", "count_responses"),
}
_WRITES = {
    "conversations": ("restore_conversations",),
    "items": ("restore_items", "restore_links"),
    "responses": ("restore_responses",),
}


def _missing(storage: Storage, methods: dict[str, tuple[str, ...]]) -> list[str]:
    return [
        f"{part}.{name}"
        for part, names in methods.items()
        for name in names
        if not callable(getattr(_raw(getattr(storage, part)), name, None))
    ]


class _StoreSeam:
    """Binds the seam methods of a backend's three raw stores into one object."""

    def __init__(self, storage: Storage) -> None:
        self._c = _raw(storage.conversations)
        self._i = _raw(storage.items)
        self._r = _raw(storage.responses)

    def iter_conversations(self, after_id: str | None, batch: int) -> Sequence[Conversation]:
        return cast(Sequence[Conversation], self._c.iter_conversations(after_id, batch))

    def iter_items(self, after_id: str | None, batch: int) -> Sequence[ConversationItem]:
        return cast(Sequence[ConversationItem], self._i.iter_items(after_id, batch))

    def iter_links(self, after: tuple[str, str] | None, batch: int) -> Sequence[Link]:
        return cast(Sequence[Link], self._i.iter_links(after, batch))

    def iter_responses(self, after_id: str | None, batch: int) -> Sequence[StoredResponse]:
        return cast(Sequence[StoredResponse], self._r.iter_responses(after_id, batch))

    def _method(self, action: str, kind: Kind) -> Any:
        store = {"conversation": self._c, "item": self._i, "link": self._i, "response": self._r}[kind]
        return getattr(store, f"{action}_{kind}s")

    def count(self, kind: Kind) -> int:
        return int(self._method("count", kind)())

    def restore(self, kind: Kind, records: Sequence[Record]) -> int:
        return int(self._method("restore", kind)(records))


def enumerable(storage: Storage) -> Enumerable:
    """The enumeration seam of ``storage`` (as ``create_storage`` returns it).

    The backend's own store methods when it has them all, else this module's adapter for it.

    :raises NotEnumerableError: the backend offers neither.
    """
    missing = _missing(storage, _READS)
    if not missing:
        return _StoreSeam(storage)
    adapter = _adapter(storage)
    if adapter is None:
        raise NotEnumerableError(
            f"the {storage.backend} backend cannot be enumerated (export and copy need {', '.join(missing)})"
        )
    return adapter


def restorable(storage: Storage) -> Restorable | None:
    """The atomic write seam of ``storage``, or ``None`` (writes then use the public API)."""
    if not _missing(storage, _WRITES):
        return _StoreSeam(storage)
    return _adapter(storage)


def _adapter(storage: Storage) -> _RedisSeam | _SqlSeam | None:
    factory = _ADAPTERS.get(storage.backend)
    if factory is None:
        return None
    try:
        return factory(storage)
    except AttributeError as exc:
        # The adapter reads backend internals; say so rather than fail with a traceback.
        raise NotEnumerableError(f"the {storage.backend} backend's internals changed: {exc}") from exc


class _RedisSeam:
    """The seam for the Redis backend, over its ``RedisStore`` (key layout in its ``_storage``).

    Redis keeps no order of its keys, so the first read of a kind ``SCAN``s its keys once and
    keeps the sorted ids (about 100 bytes each) for the object's lifetime; pages then follow
    that snapshot. Records deleted or expired meanwhile are skipped. Each restore batch is one
    ``MULTI``/``EXEC``: applied whole, or not at all if the connection fails before ``EXEC``.
    """

    def __init__(self, storage: Storage) -> None:
        self._s: Any = _raw(storage.conversations).store
        self._ids: dict[str, list[str]] = {}
        self._links: tuple[str, list[tuple[str, datetime]]] | None = None

    def _scan(self, kind: str) -> list[str]:
        cached = self._ids.get(kind)
        if cached is not None:
            return cached
        s = self._s
        prefix = {
            "conversation": s.conversation_prefix,
            "item": s.item_prefix,
            "response": s.response_prefix,
            "link": s.conversation_prefix,
        }[kind]
        key_type, suffix = ("zset", ":items") if kind == "link" else ("hash", "")

        def scan() -> list[str]:
            found = s.client.scan_iter(match=f"{prefix}*{suffix}", count=1000, _type=key_type)
            return sorted({key[len(prefix) : len(key) - len(suffix)] for key in found})

        ids: list[str] = s.call(f"scan {kind}s", scan)
        self._ids[kind] = ids
        return ids

    def _page(self, kind: str, after_id: str | None, batch: int) -> list[str]:
        ids = self._scan(kind)
        start = 0 if after_id is None else bisect.bisect_right(ids, after_id)
        return ids[start : start + batch]

    def _rows(self, action: str, keys: list[str]) -> list[dict[str, str]]:
        s = self._s

        def run() -> list[dict[str, str]]:
            with s.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                return list(pipe.execute())

        return list(s.call(action, run))

    def _records(
        self, kind: Kind, after_id: str | None, batch: int, key: Callable[[str], str], decode: Callable[[str, Any], R]
    ) -> list[R]:
        ids = self._page(kind, after_id, batch)
        rows = self._rows(f"export {kind}s", [key(i) for i in ids])
        return [decode(i, row) for i, row in zip(ids, rows, strict=True) if row]

    def iter_conversations(self, after_id: str | None, batch: int) -> Sequence[Conversation]:
        s = self._s
        return self._records("conversation", after_id, batch, s.conversation_key, s.codec.conversation)

    def iter_items(self, after_id: str | None, batch: int) -> Sequence[ConversationItem]:
        s = self._s
        return self._records("item", after_id, batch, s.item_key, s.codec.item)

    def iter_responses(self, after_id: str | None, batch: int) -> Sequence[StoredResponse]:
        s = self._s
        return self._records("response", after_id, batch, s.response_key, s.codec.response)

    def _conversation_links(self, conversation_id: str) -> list[tuple[str, datetime]]:
        # One conversation's links sorted by item id; kept while pages walk through it.
        if self._links is not None and self._links[0] == conversation_id:
            return self._links[1]
        s = self._s
        members = s.call("export links", lambda: s.client.zrange(s.links_key(conversation_id), 0, -1, withscores=True))
        links = sorted((str(member), from_epoch_us(round(score))) for member, score in members)
        self._links = (conversation_id, links)
        return links

    def iter_links(self, after: tuple[str, str] | None, batch: int) -> Sequence[Link]:
        conversations = self._scan("link")
        index = 0 if after is None else bisect.bisect_left(conversations, after[0])
        page: list[Link] = []
        while index < len(conversations) and len(page) < batch:
            conversation_id = conversations[index]
            links = self._conversation_links(conversation_id)
            start = 0
            if after is not None and conversation_id == after[0]:
                start = bisect.bisect_right(links, (after[1], _MAX_TIME))
            for item_id, added_at in links[start : start + batch - len(page)]:
                page.append(Link(conversation_id, item_id, added_at))
            index += 1
        return page

    def count(self, kind: Kind) -> int:
        if kind != "link":
            return len(self._scan(kind))
        s = self._s
        keys = [s.links_key(c) for c in self._scan("link")]

        def run() -> int:
            with s.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zcard(key)
                return sum(pipe.execute())

        return int(s.call("count links", run))

    def restore(self, kind: Kind, records: Sequence[Record]) -> int:
        s = self._s

        def run() -> list[Any]:
            with s.client.pipeline(transaction=True) as pipe:
                for record in records:
                    self._queue(pipe, record)
                return list(pipe.execute())

        results = s.call(f"import {kind}s", run)
        if kind == "link":
            return sum(int(added) for added in results[0::2])
        return sum(1 for created in results if created)

    def _queue(self, pipe: Any, record: Record) -> None:
        s = self._s
        flat = _flatten
        if isinstance(record, Conversation):
            fields = s.codec.conversation_fields(record)
            s.lua_create_record(keys=[s.conversation_key(record.id)], args=[s.ttl, *flat(fields)], client=pipe)
        elif isinstance(record, ConversationItem):
            fields = s.codec.item_fields(record)
            s.lua_create_record(keys=[s.item_key(record.id)], args=[s.ttl, *flat(fields)], client=pipe)
        elif isinstance(record, Link):
            key = s.links_key(record.conversation_id)
            pipe.zadd(key, {record.item_id: to_epoch_us(record.added_at)}, nx=True)
            if s.ttl:
                pipe.expire(key, int(s.ttl))
            else:
                pipe.persist(key)
        else:
            fields = s.codec.response_fields(record)
            keys = [s.response_key(record.id)]
            if record.safety_identifier is not None and s.safety_field() is not None:
                keys.append(s.safety_key(record.safety_identifier))
            args = [s.ttl, str(to_epoch_us(record.created_at)), record.id, *flat(fields)]
            s.lua_store_response(keys=keys, args=args, client=pipe)


_MAX_TIME = datetime.max.replace(tzinfo=UTC)


def _flatten(fields: dict[str, str]) -> list[str]:
    return [part for pair in fields.items() for part in pair]


class _SqlSeam:
    """The seam for the SQL backends, over the shared SQL layer's ``SqlStore`` (``backends._sql``).

    The queries are the shared layer's (``Statements.export``, ``link_restore``). Pages are
    keyset queries on the primary keys (``WHERE id > :after ORDER BY id``; links by
    ``(conversation_id, item_id)``), in the database's own collation, so the cursor always
    agrees with the order. Rows are decoded by the stores' own row mappers. A restore batch
    is one transaction of ``INSERT ... ON CONFLICT DO NOTHING`` statements (SQLite and
    PostgreSQL); extra columns get their values as in any write (hook value, default, NULL).
    """

    def __init__(self, storage: Storage) -> None:
        self._convs: Any = _raw(storage.conversations)
        self._items: Any = _raw(storage.items)
        self._resps: Any = _raw(storage.responses)
        self._store: Any = self._convs._store
        self._q: Mapping[str, str] = self._store.sql.export
        if not self._q:
            raise NotEnumerableError(f"the {storage.backend} backend renders no export queries")

    def _fetch(self, name: str, after: dict[str, Any] | None, batch: int) -> list[tuple[Any, ...]]:
        query = self._q[f"{name}_first"] if after is None else self._q[f"{name}_next"]
        with self._store.connector.session() as session:
            return list(session.fetchall(query, {**(after or {}), "limit": batch}))

    def _records(self, name: str, after_id: str | None, batch: int, decode: Callable[[tuple[Any, ...]], R]) -> list[R]:
        return [decode(row) for row in self._fetch(name, None if after_id is None else {"after": after_id}, batch)]

    def iter_conversations(self, after_id: str | None, batch: int) -> Sequence[Conversation]:
        return self._records("conv", after_id, batch, self._convs._row)

    def iter_items(self, after_id: str | None, batch: int) -> Sequence[ConversationItem]:
        return self._records("item", after_id, batch, self._items._row)

    def iter_responses(self, after_id: str | None, batch: int) -> Sequence[StoredResponse]:
        return self._records("resp", after_id, batch, self._resps._row)

    def iter_links(self, after: tuple[str, str] | None, batch: int) -> Sequence[Link]:
        cursor = None if after is None else {"acid": after[0], "aiid": after[1]}
        rows = self._fetch("link", cursor, batch)
        decode = self._store.dialect.decode_time
        return [Link(str(cid), str(iid), decode(added)) for cid, iid, added in rows]

    def count(self, kind: Kind) -> int:
        with self._store.connector.session() as session:
            row = session.fetchone(self._q[f"count_{kind}"])
        return int(row[0]) if row is not None else 0

    def restore(self, kind: Kind, records: Sequence[Record]) -> int:
        store = self._store
        with store.connector.session(write=True) as session, session.transaction():
            if kind == "link":
                return self._restore_links(session, cast(Sequence[Link], records))
            statement = self._q[f"restore_{kind}"]
            return sum(session.execute(statement, self._params(record)) for record in records)

    def _params(self, record: Record) -> dict[str, Any]:
        store = self._store
        d, sql, schema = store.dialect, store.sql, store.schema
        values: dict[str, Any]
        if isinstance(record, Conversation):
            values = {
                "id": record.id,
                "created_at": d.encode_time(record.created_at),
                "metadata": None if record.metadata is None else d.encode_json(record.metadata, "metadata"),
            }
            fields, table = sql.conv_fields, schema.conversations
        elif isinstance(record, ConversationItem):
            values = {
                "id": record.id,
                "response_id": record.response_id,
                "item_type": record.item_type,
                "role": record.role,
                "content": d.encode_json(record.content, "content"),
                "status": record.status,
                "created_at": d.encode_time(record.created_at),
            }
            fields, table = sql.item_fields, schema.conversation_items
        else:
            response = cast(StoredResponse, record)
            values = {
                "id": response.id,
                "conversation_id": response.conversation_id,
                "previous_response_id": response.previous_response_id,
                "input": d.encode_json(response.input, "input"),
                "created_at": d.encode_time(response.created_at),
                "safety_identifier": response.safety_identifier,
                "model": response.model,
                "raw_response": d.encode_json(response.raw_response, "raw_response"),
            }
            fields, table = sql.resp_fields, schema.responses
        params: dict[str, Any] = store.extras(table, {f: values[f] for f in fields})
        return params

    def _restore_links(self, session: Any, links: Sequence[Link]) -> int:
        store = self._store
        by_conversation: dict[str, list[Link]] = {}
        for link in links:
            by_conversation.setdefault(link.conversation_id, []).append(link)
        size = store.dialect.max_rows_per_insert
        created = 0
        for conversation_id, group in by_conversation.items():
            extras = store.extras(store.schema.conversation_item_links, {"cid": conversation_id})
            for start in range(0, len(group), size):
                chunk = group[start : start + size]
                params = dict(extras)
                for n, link in enumerate(chunk):
                    params[f"i{n}"] = link.item_id
                    params[f"a{n}"] = store.dialect.encode_time(link.added_at)
                created += session.execute(store.sql.link_restore(len(chunk)), params)
        return created


# Backends whose seam lives here, over their internals, rather than on their raw stores.
_ADAPTERS: dict[str, Callable[[Storage], _RedisSeam | _SqlSeam]] = {
    "redis": _RedisSeam,
    "sqlite": _SqlSeam,
    "postgres": _SqlSeam,
}
