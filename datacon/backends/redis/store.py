"""The three storages of the Redis backend, over one blocking connection pool.

Key layout (upstream's; ``P`` is ``"{owner}:"`` when the schema has an owner, else empty):

====================================  ===========  ===========================================
``P conversation:{id}``               hash         the conversation's fields
``P conversation:{id}:items``         sorted set   links: member item id, score ``added_at``
``P item:{id}``                       hash         the item's fields
``P response:{id}``                   hash         the response's fields
``P safety:{identifier}:responses``   sorted set   member response id, score ``created_at``
====================================  ===========  ===========================================

Scores are epoch microseconds, exact in a double for instants between the years 1685
and 2255 (outside that range nearby instants may share a score and order by id). With
``retention_days`` every key gets that TTL when written, the sorted sets included (their
TTL is refreshed on every write, so a set never outlives the records it indexes by more
than that). Because of upstream's layout a conversation whose id ends in ``:items`` would
share its key with another conversation's links; Redis then answers ``WRONGTYPE``
(``BackendError``).

Every operation is one round trip: a single command, a ``MULTI`` transaction, or a Lua
script (see ``lua``) run with ``EVALSHA``. Commands are not retried: a write whose
connection drops raises ``BackendUnavailableError`` with its outcome unknown (ids are
made before any I/O, so the caller can look the record up).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis

from datacon._serde import dump_json, normalize_json
from datacon._time import to_epoch_us, utc_now
from datacon.backends.base import NO_EXTRA, BackendConversations, BackendItems, BackendResponses, Extra
from datacon.backends.chain import walk_chain
from datacon.backends.created import created_item, minted_id
from datacon.config import RedisConfig
from datacon.errors import ConflictError
from datacon.models import (
    Conversation,
    ConversationItem,
    ListParams,
    NewConversation,
    NewConversationItem,
    ResponseChain,
    SortOrder,
    StoredResponse,
)
from datacon.schema import SchemaConfig

from . import lua
from .errors import DRIVER_ERRORS, convert, translate
from .records import Codec, pairs

__all__ = ["RedisConversationStorage", "RedisItemStorage", "RedisResponseStorage", "RedisStore"]

T = TypeVar("T")


class RedisStore:
    """What the three storages share: the pool, the client, key names and scripts."""

    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        schema = config.schema or SchemaConfig()
        self.schema = schema
        self.codec = Codec(schema)
        self.ttl = "" if config.retention_days is None else str(config.retention_days * 86_400)
        self._password = urlsplit(config.url).password
        prefix = f"{schema.owner}:" if schema.owner else ""
        self.conversation_prefix = f"{prefix}conversation:"
        self.item_prefix = f"{prefix}item:"
        self.response_prefix = f"{prefix}response:"
        self.safety_prefix = f"{prefix}safety:"
        with self.translate("connection setup"):
            # hiredis, when installed, is picked up by redis-py as its reply parser. The
            # pool connects lazily: a server that is down does not fail start-up.
            self.pool = redis.BlockingConnectionPool.from_url(
                config.url,
                max_connections=config.pool_max,
                timeout=config.pool_timeout_secs,
                socket_timeout=config.socket_timeout_secs,
                socket_connect_timeout=config.connect_timeout_secs,
                decode_responses=True,
            )
            self.client = redis.Redis(connection_pool=self.pool)
        # Registered once: each call is an EVALSHA (redis-py loads the script on NOSCRIPT).
        register = self.client.register_script
        self.lua_create_record = register(lua.CREATE_RECORD)
        self.lua_store_response = register(lua.STORE_RESPONSE)
        self.lua_update_conversation = register(lua.UPDATE_CONVERSATION)
        self.lua_link_items = register(lua.LINK_ITEMS)
        self.lua_list_items = register(lua.LIST_ITEMS)
        self.lua_get_chain = register(lua.GET_CHAIN)
        self.lua_list_identifier = register(lua.LIST_IDENTIFIER)
        self.lua_delete_identifier = register(lua.DELETE_IDENTIFIER)
        self.lua_delete_response = register(lua.DELETE_RESPONSE)

    @contextmanager
    def translate(self, action: str) -> Iterator[None]:
        """Run the block with redis-py errors translated (``_errors.translate``)."""
        with translate(action, self._password, self.config.pool_timeout_secs):
            yield

    def call(self, action: str, fn: Callable[[], T]) -> T:
        """``fn()`` with errors translated (as ``translate``, without a context manager per call)."""
        try:
            return fn()
        except DRIVER_ERRORS as exc:
            raise convert(exc, action, self._password, self.config.pool_timeout_secs) from exc

    def hgetall(self, action: str, key: str) -> dict[str, str]:
        """The hash at ``key`` (empty when it does not exist)."""
        row = self.call(action, lambda: self.client.hgetall(key))
        return {str(field): str(value) for field, value in row.items()}

    def conversation_key(self, conversation_id: str) -> str:
        return self.conversation_prefix + conversation_id

    def links_key(self, conversation_id: str) -> str:
        return f"{self.conversation_prefix}{conversation_id}:items"

    def item_key(self, item_id: str) -> str:
        return self.item_prefix + item_id

    def response_key(self, response_id: str) -> str:
        return self.response_prefix + response_id

    def safety_key(self, identifier: str) -> str:
        return f"{self.safety_prefix}{identifier}:responses"

    def safety_field(self) -> str | None:
        """The hash field holding the safety identifier, or ``None`` when it is skipped."""
        return self.codec.responses.field("safety_identifier")

    # Writes shared by the storages and the backend's restore; ``client`` may be a pipeline
    # (the script then runs inside its MULTI/EXEC), else the store's client.

    def create_record(self, key: str, fields: dict[str, str], client: Any = None) -> Any:
        """Write the hash at ``key`` unless it exists (``CREATE_RECORD``); truthy when written."""
        return self.lua_create_record(keys=[key], args=[self.ttl, *_flat(fields)], client=client)

    def put_response(self, response: StoredResponse, extra: Mapping[str, Any], client: Any = None) -> Any:
        """Write the response and its safety index entry unless it exists; truthy when written."""
        fields = self.codec.response_fields(response, extra)
        keys = [self.response_key(response.id)]
        if response.safety_identifier is not None and self.safety_field() is not None:
            keys.append(self.safety_key(response.safety_identifier))
        args = [self.ttl, str(to_epoch_us(response.created_at)), response.id, *_flat(fields)]
        return self.lua_store_response(keys=keys, args=args, client=client)

    def pool_stats(self) -> dict[str, int]:
        """``size`` (pool_max), ``open`` connections and those ``in_use``."""
        # BlockingConnectionPool keeps every connection it made in _connections and the idle
        # ones in its queue (padded with None); redis-py computes in-use the same way.
        made = list(getattr(self.pool, "_connections", ()))
        queue = getattr(getattr(self.pool, "pool", None), "queue", ())
        idle = sum(1 for conn in list(queue) if conn is not None)
        return {"size": self.config.pool_max, "open": len(made), "in_use": max(len(made) - idle, 0)}

    def close(self) -> None:
        """Disconnect every pooled connection."""
        with self.translate("close"):
            self.pool.disconnect()


def _flat(fields: dict[str, str]) -> list[str]:
    return [part for pair in fields.items() for part in pair]


class RedisConversationStorage(BackendConversations):
    """Conversations as hashes; ``delete_conversation`` also drops the link set."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def create_conversation(self, new: NewConversation, *, extra: Extra = NO_EXTRA) -> Conversation:
        s = self.store
        conversation_id = minted_id(new)
        metadata = None if new.metadata is None else normalize_json(new.metadata, "metadata")
        conversation = Conversation(id=conversation_id, created_at=utc_now(), metadata=metadata)
        fields = s.codec.conversation_fields(conversation, extra)
        created = s.call("create_conversation", lambda: s.create_record(s.conversation_key(conversation_id), fields))
        if not created:
            raise ConflictError(f"conversation {conversation_id} already exists")
        return conversation

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        s = self.store
        row = s.hgetall("get_conversation", s.conversation_key(conversation_id))
        return s.codec.conversation(conversation_id, row) if row else None

    def update_conversation(self, conversation_id: str, metadata: dict[str, object] | None) -> Conversation | None:
        s = self.store
        field = s.codec.conversations.field("metadata") or ""
        text = "" if metadata is None else dump_json(metadata, "metadata")
        row = s.call(
            "update_conversation",
            lambda: s.lua_update_conversation(keys=[s.conversation_key(conversation_id)], args=[field, text]),
        )
        if row is None:
            return None
        conversation = s.codec.conversation(conversation_id, pairs(row))
        if not field:
            # metadata is a skipped column: nothing was stored, and like the SQL backends (and
            # upstream) the call returns the metadata it was given.
            returned = None if metadata is None else normalize_json(metadata, "metadata")
            conversation = Conversation(id=conversation.id, created_at=conversation.created_at, metadata=returned)
        return conversation

    def delete_conversation(self, conversation_id: str) -> bool:
        s = self.store

        def run() -> list[Any]:
            with s.client.pipeline(transaction=True) as pipe:
                pipe.delete(s.conversation_key(conversation_id))
                pipe.delete(s.links_key(conversation_id))
                return pipe.execute()

        return bool(s.call("delete_conversation", run)[0])


class RedisItemStorage(BackendItems):
    """Items as hashes; links as one sorted set per conversation."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def create_item(self, new: NewConversationItem, *, extra: Extra = NO_EXTRA) -> ConversationItem:
        s = self.store
        item = created_item(new, normalize_json(new.content, "content"))
        fields = s.codec.item_fields(item, extra)
        created = s.call("create_item", lambda: s.create_record(s.item_key(item.id), fields))
        if not created:
            raise ConflictError(f"item {item.id} already exists")
        return item

    def link_items(
        self, conversation_id: str, items: Sequence[tuple[str, datetime]], *, extra: Extra = NO_EXTRA
    ) -> None:
        if not items:
            return
        s = self.store
        args = [s.ttl]
        for item_id, added_at in items:
            args += [str(to_epoch_us(added_at)), item_id]
        taken = s.call("link_items", lambda: s.lua_link_items(keys=[s.links_key(conversation_id)], args=args))
        if taken is not None:
            raise ConflictError(f"item {taken} is already linked to conversation {conversation_id}")

    def list_items(self, conversation_id: str, params: ListParams) -> list[ConversationItem]:
        if params.limit <= 0:
            return []
        s = self.store
        args: list[str | int] = [
            s.item_prefix,
            params.limit,
            "1" if params.order is SortOrder.DESC else "0",
            params.after or "",
        ]
        rows = s.call("list_items", lambda: s.lua_list_items(keys=[s.links_key(conversation_id)], args=args))
        return [s.codec.item(str(item_id), pairs(row)) for item_id, row in rows]

    def get_item(self, item_id: str) -> ConversationItem | None:
        s = self.store
        row = s.hgetall("get_item", s.item_key(item_id))
        return s.codec.item(item_id, row) if row else None

    def is_item_linked(self, conversation_id: str, item_id: str) -> bool:
        s = self.store
        score = s.call("is_item_linked", lambda: s.client.zscore(s.links_key(conversation_id), item_id))
        return score is not None

    def delete_item(self, conversation_id: str, item_id: str) -> None:
        s = self.store
        s.call("delete_item", lambda: s.client.zrem(s.links_key(conversation_id), item_id))


class RedisResponseStorage(BackendResponses):
    """Responses as hashes, indexed by safety identifier in sorted sets."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def store_response(self, response: StoredResponse, *, extra: Extra = NO_EXTRA) -> str:
        s = self.store
        if not s.call("store_response", lambda: s.put_response(response, extra)):
            raise ConflictError(f"response {response.id} already exists")
        return response.id

    def get_response(self, response_id: str) -> StoredResponse | None:
        s = self.store
        row = s.hgetall("get_response", s.response_key(response_id))
        return s.codec.response(response_id, row) if row else None

    def delete_response(self, response_id: str) -> None:
        s = self.store
        args = [s.safety_prefix, ":responses", s.safety_field() or "", response_id]
        s.call("delete_response", lambda: s.lua_delete_response(keys=[s.response_key(response_id)], args=args))

    def get_response_chain(self, response_id: str, max_depth: int | None = None) -> ResponseChain:
        s = self.store
        previous = s.codec.responses.field("previous_response_id") or ""
        args: list[str | int] = [s.response_prefix, response_id, -1 if max_depth is None else max_depth, previous]
        rows = s.call("get_response_chain", lambda: s.lua_get_chain(args=args))
        fetched = {str(rid): s.codec.response(str(rid), pairs(row)) for rid, row in rows}
        # The script walked the same path; walk_chain orders it and reports a cycle.
        return walk_chain(response_id, fetched.get, max_depth)

    def list_identifier_responses(self, identifier: str, limit: int | None = None) -> list[StoredResponse]:
        s = self.store
        field = s.safety_field()
        if field is None or limit == 0:
            return []
        args: list[str | int] = [s.response_prefix, -1 if limit is None else limit, field, identifier]
        rows = s.call(
            "list_identifier_responses", lambda: s.lua_list_identifier(keys=[s.safety_key(identifier)], args=args)
        )
        return [s.codec.response(str(rid), pairs(row)) for rid, row in rows]

    def delete_identifier_responses(self, identifier: str) -> int:
        s = self.store
        field = s.safety_field()
        if field is None:
            return 0
        args = [s.response_prefix, field, identifier]
        deleted = s.call(
            "delete_identifier_responses", lambda: s.lua_delete_identifier(keys=[s.safety_key(identifier)], args=args)
        )
        return int(deleted)
