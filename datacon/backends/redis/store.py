"""The three storages of the Redis backend, over one blocking connection pool.

Key layout (upstream's; ``P`` is ``"{owner}:"`` when the schema has an owner, else empty;
``{id}`` is the id itself, or an escaped form for ids that could collide, see ``keys``):

====================================  ===========  ===========================================
``P conversation:{id}``               hash         the conversation's fields
``P conversation:{id}:items``         sorted set   links: member item id, score ``added_at``
``P link_seq:{id}``                   hash         links' sequences: item id -> n; ``''`` -> last n
``P item:{id}``                       hash         the item's fields
``P response:{id}``                   hash         the response's fields
``P safety:{identifier}:responses``   sorted set   member response id, score ``created_at``
``P conversations:list``              sorted set   every conversation (``list_conversations``)
``P conversations:by:{col}:{value}``  sorted set   conversations whose extra column is value
``P idempotency:{op}:{key}``           string       an idempotency key: fingerprint + result, PX TTL
``P item_packed:{id}``                 string       the item's packed copy (layout 3, ``records``)
``P conversation:{id}:packed``         sorted set   its links' packed copies, in listing order
====================================  ===========  ===========================================

In a Redis Cluster ``P`` is a hash tag, ``{owner}:`` or ``{datacon}:`` (``keys.Keys``): one
slot holds the whole schema, so the scripts below run unchanged (``topology`` has the
clients).

Scores are epoch milliseconds with the microseconds as a fraction (``scores``): exact and
ordered to the microsecond over the accepted range (1900 to 2100), and in upstream's unit,
so links written by upstream and by datacon interleave. With ``retention_days`` every key
gets that TTL when written, the sorted sets included (their TTL is refreshed on every write,
so a set never outlives the records it indexes by more than that).
The two ``conversations:`` sets have members ``"{created_at}:{id}"`` (``created_at`` as 18
digits of microseconds since year 1) at score 0, so their lexical order is ``(created_at, id)``
and a page is one ``ZRANGEBYLEX`` from the cursor; the conversation hash keeps its member and
its sets (fields ``datacon:member``, ``datacon:sets``) so the delete script removes them.
Conversations written before datacon kept these sets are not listed until re-imported.

Links sharing one ``added_at`` list in sequence order (the page script orders each run of
equal scores by the sequence hash); a link without a sequence (made before datacon kept
one, or restored from an export) counts as 0 and keeps its old place by item id, so data
written before needs no migration.

Every operation is one round trip: a single command, a ``MULTI`` transaction, or a Lua
script (see ``lua``) run with ``EVALSHA``; except a first page holding an item whose hash has
expired (read again by the page script), and, through a client datacon must call through its
command methods (instrumented; a cluster's), a first ``list_items`` page of more than 40
items when the conversation's packed set is incomplete (data written by upstream or before
layout 3): a pipeline's ``MULTI``, then the page script. With ``wait_replicas`` or ``wait_aof`` a write is
pipelined with ``WAIT``/``WAITAOF`` on the same connection (still one round trip, plus a
``SCRIPT EXISTS`` that redis-py sends before a pipeline of scripts). Commands are not
retried: a write whose connection drops raises ``BackendUnavailableError`` with its outcome
unknown (ids are made before any I/O, so the caller can look the record up).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from itertools import chain
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
from redis.exceptions import NoScriptError, ResponseError

from datacon._serde import dump_json, loads, normalize_json
from datacon._time import from_epoch_us, to_epoch_us, utc_now
from datacon.backends.base import (
    NO_EXTRA,
    BackendConversations,
    BackendItems,
    BackendResponses,
    Extra,
    PageRow,
    Position,
)
from datacon.backends.chain import walk_chain
from datacon.backends.created import created_item, minted_id
from datacon.backends.idempotency import Idempotency, resolve
from datacon.config import RedisConfig
from datacon.errors import BackendError, BackendUnavailableError, ConfigError, ConflictError
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
from .keys import Keys
from .migrate import INDEX as INDEX_LAYOUT
from .migrate import LATEST as LAYOUT
from .migrate import layout_of
from .records import Codec, StalePackedError, pairs
from .scores import score, score_time
from .topology import Topology, open_client

__all__ = ["RedisConversationStorage", "RedisItemStorage", "RedisResponseStorage", "RedisStore"]

T = TypeVar("T")
log = logging.getLogger(__name__)


class RedisStore:
    """What the three storages share: the pool, the client, key names and scripts."""

    def __init__(self, config: RedisConfig, *, check: bool = True) -> None:
        self.config = config
        schema = config.schema or SchemaConfig()
        self.schema = schema
        self.codec = Codec(schema)
        #: Whether items keep ``created_at`` (then indexed by it, ``items:created``).
        self.index_created = self.codec.items.field("created_at") is not None
        self.ttl = "" if config.retention_days is None else str(config.retention_days * 86_400)
        self._password = urlsplit(config.url).password
        self.keys = keys = Keys(schema.owner, cluster=config.cluster)
        self.conversation_prefix = keys.conversation_prefix
        self.item_prefix = keys.item_prefix
        self.response_prefix = keys.response_prefix
        self.safety_prefix = keys.safety_prefix
        self.sequence_prefix = keys.sequence_prefix
        #: Whether datacon made the pool (and so closes it); not for an application's client.
        self.owned = config.client is None
        if config.client is None:
            self.max_concurrency = config.pool_max
            # One server's and Sentinel's pools connect lazily; a cluster client learns the
            # slot map now (an unreachable cluster is reported here).
            with self.translate("connect"):
                self.topology = open_client(config)
            self._password = self.topology.password
        else:
            pool = config.client.connection_pool
            password = pool.connection_kwargs.get("password")
            self.topology = Topology("server", config.client, pool, str(password) if password else None)
            self._password = self.topology.password
            # The async facade's limit: the client's pool size, at most pool_max.
            self.max_concurrency = min(int(getattr(pool, "max_connections", config.pool_max)), config.pool_max)
        self.client = self.topology.client
        #: The connection pool (``None`` in a cluster, whose client keeps one per node).
        self.pool: Any = self.topology.pool
        self.cluster = config.cluster
        #: The pool ``direct`` takes its connections from, or ``None`` (see ``_direct_pool``).
        self._direct: Any = _direct_pool(self.client, self.pool, self.cluster)
        self._waits = _wait_commands(config)
        # Registered once: each call is an EVALSHA (redis-py loads the script on NOSCRIPT).
        register = self.client.register_script
        self.lua_create_record = register(lua.CREATE_RECORD)
        self.lua_store_response = register(lua.STORE_RESPONSE)
        self.lua_update_conversation = register(lua.UPDATE_CONVERSATION)
        self.lua_link_items = register(lua.LINK_ITEMS)
        self.lua_restore_links = register(lua.RESTORE_LINKS)
        self.lua_append_items = register(lua.APPEND_ITEMS)
        self.lua_list_items = register(lua.LIST_ITEMS)
        self.lua_list_first = register(lua.LIST_FIRST)
        self.lua_list_head = register(lua.LIST_HEAD)
        #: ``LIST_FIRST``'s and ``LIST_HEAD``'s constant argument (one JSON text, packed once
        #: rather than per call).
        self.first_page_args = json.dumps([keys.item_prefix, keys.item_packed_prefix, *self.codec.item_read_fields])
        self.lua_get_chain = register(lua.GET_CHAIN)
        self.lua_list_identifier = register(lua.LIST_IDENTIFIER)
        self.lua_delete_identifier = register(lua.DELETE_IDENTIFIER)
        self.lua_delete_response = register(lua.DELETE_RESPONSE)
        self.lua_delete_conversation = register(lua.DELETE_CONVERSATION)
        self.lua_delete_link = register(lua.DELETE_LINK)
        self.lua_create_conversation = register(lua.CREATE_CONVERSATION)
        # The creating scripts with an idempotency key (SPEC 7.3), checked in the same script.
        self.lua_create_record_keyed = register(lua.CREATE_RECORD_KEYED)
        self.lua_create_conversation_keyed = register(lua.CREATE_CONVERSATION_KEYED)
        self.lua_store_response_keyed = register(lua.STORE_RESPONSE_KEYED)
        self.lua_append_items_keyed = register(lua.APPEND_ITEMS_KEYED)
        self.lua_list_conversations = register(lua.LIST_CONVERSATIONS)
        # Retention and erasure (``RedisBackend``'s Prunable calls).
        self.lua_old_records = register(lua.OLD_RECORDS)
        self.lua_old_conversations = register(lua.OLD_CONVERSATIONS)
        self.lua_item_links = register(lua.ITEM_LINKS)
        self.lua_delete_unlinked_items = register(lua.DELETE_UNLINKED_ITEMS)
        self.lua_delete_responses = register(lua.DELETE_RESPONSES)
        self.lua_delete_conversations = register(lua.DELETE_CONVERSATIONS)
        self.lua_identifier_responses = register(lua.IDENTIFIER_RESPONSES)
        self.lua_named_by_others = register(lua.NAMED_BY_OTHERS)
        self._indexed = False
        self.conversations_list_key = keys.conversations_list
        self.conversations_by_prefix = keys.conversations_by_prefix
        if check:
            self.check_server()
        # An empty schema is marked as indexed before anything is written (see index_ready).
        try:
            self.index_ready()
        except BackendError as exc:
            log.debug("Redis index check deferred: %s", exc)

    def check_server(self) -> None:
        """Start-up check of the server's settings, best effort (one round trip).

        Logs one WARNING when the server runs without an append-only file (``appendonly no``:
        a crash loses the writes since the last snapshot), and raises ``ConfigError`` when
        ``wait_aof`` is set but the server has no ``WAITAOF`` (before Redis 7.2) or no
        append-only file. A server
        that cannot be reached, or that refuses ``INFO``, is not an error here: the pool is
        lazy, and the first call reports an unreachable server.
        """
        try:
            info = self.client.info("persistence", **self.on_master())
            version = ""
            if self.config.wait_aof:
                version = str(self.client.info("server", **self.on_master()).get("redis_version", ""))
        except DRIVER_ERRORS as exc:
            log.debug("Redis start-up check skipped: %s", type(exc).__name__)
            return
        if str(info.get("aof_enabled", "1")) == "0":
            log.warning(
                "Redis at %s runs with appendonly no: a crash or restart loses the writes since the last"
                " RDB snapshot (set appendonly yes; see docs/operations.md, Durability)",
                self.address(),
            )
        if self.config.wait_aof and version and _version(version) < (7, 2):
            raise ConfigError(
                f"wait_aof needs WAITAOF, which Redis {version} does not have (7.2 or later)", "redis.wait_aof"
            )
        if self.config.wait_aof and str(info.get("aof_enabled", "1")) == "0":
            raise ConfigError("wait_aof needs the server's append-only file (appendonly yes)", "redis.wait_aof")

    def durability(self) -> tuple[bool, str]:
        """Whether the server persists every write (``appendonly yes``), and a line saying what
        a crash would lose; for ``datacon doctor``. Raises the call's error if it cannot ask."""
        info = self.call("doctor", lambda: self.client.info("persistence", **self.on_master()))
        try:
            reply = self.call("doctor", lambda: self.client.config_get("appendfsync", **self.on_master()))
            fsync = str(reply.get("appendfsync", "?"))
        except Exception:  # noqa: BLE001 - CONFIG is often disabled on managed servers
            fsync = "?"
        waits = ""
        if self._waits:
            waits = f"; each write waits for {' and '.join(str(c[0]) for c in self._waits)}"
        if str(info.get("aof_enabled", "0")) == "0":
            return False, (
                "appendonly no: a crash or restart loses the writes acknowledged since the last RDB snapshot"
                f" (set appendonly yes){waits}"
            )
        loses = {
            "always": "every write is fsynced before it is acknowledged",
            "everysec": "a crash of the host loses at most about 1 s of writes",
            "no": "the OS decides when the file reaches the disk",
        }.get(fsync, "see the server's appendfsync")
        return True, f"appendonly yes, appendfsync {fsync}: {loses}{waits}"

    def address(self) -> str:
        """``host:port/db`` of the server (no credentials); a cluster's masters, Sentinel's service."""
        return self.topology.address()

    def load_scripts(self) -> None:
        """``SCRIPT LOAD`` every script (in a cluster, on every master)."""
        for name, value in vars(self).items():
            if name.startswith("lua_"):
                self.client.script_load(value.script)

    def on_master(self) -> dict[str, Any]:
        """Keyword arguments sending a keyless command (``INFO``, ``CONFIG GET``) to the server
        holding this schema's keys: in a cluster, the master of its hash tag's slot."""
        if not self.cluster:
            return {}
        return {"target_nodes": self.client.get_node_from_key(self.keys.prefix)}

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

    def evalsha(self, action: str, script: Any, numkeys: int, *keys_and_args: Any) -> Any:
        """A read script's ``EVALSHA`` on the store's client (``execute_script``), with errors
        translated (as ``call``)."""
        try:
            return self.execute_script(self.client, script, numkeys, *keys_and_args)
        except DRIVER_ERRORS as exc:
            raise convert(exc, action, self._password, self.config.pool_timeout_secs) from exc

    def write_script(self, action: str, script: Any, keys: list[str], args: list[Any]) -> Any:
        """``write(action, lambda c: run_script(script, keys, args, c))``: without waits, the
        ``EVALSHA`` itself (``send_script``: by itself on a pooled connection where ``direct``
        may be, else through the client's ``execute_command``; no ``Script.__call__``, no
        closures), with errors translated, as the most frequent writes (``create_item``,
        ``link_item``, ``store_response``, ``append_items``) send it."""
        if not self._waits:
            try:
                return self.send_script(script, len(keys), *keys, *args)
            except DRIVER_ERRORS as exc:
                raise convert(exc, action, self._password, self.config.pool_timeout_secs) from exc
        return self.write(action, lambda c: self.run_script(script, keys, args, c))

    @staticmethod
    def execute_script(client: Any, script: Any, numkeys: int, *keys_and_args: Any) -> Any:
        """``script``'s ``EVALSHA`` on ``client`` (a client, not a pipeline): the command itself,
        without ``Script.__call__``'s per-call work, and like it loading the script again when
        the server does not know it (``NOSCRIPT``)."""
        return _reloading(client, script, lambda sha: client.execute_command("EVALSHA", sha, numkeys, *keys_and_args))

    def direct_pool(self) -> Any:
        """The pool a call may take a connection from to send its commands itself, or ``None``
        when the client must be called through its command methods: no such pool
        (``_direct_pool``), or something watches the client now (``_observed``)."""
        pool = self._direct
        return None if pool is None or _observed(self.client) else pool

    def send_script(self, script: Any, numkeys: int, *keys_and_args: Any) -> Any:
        """``script``'s ``EVALSHA`` on the store's client (errors not translated): sent by
        itself on a pooled connection (``_command``) where ``direct`` may be, else through the
        client's ``execute_command`` (``execute_script``). Its reply, as from the client."""
        pool = self.direct_pool()
        if pool is None:
            return self.execute_script(self.client, script, numkeys, *keys_and_args)
        return _reloading(self.client, script, lambda sha: _command(pool, ("EVALSHA", sha, numkeys, *keys_and_args)))

    def direct(self, action: str, script: Any, numkeys: int, args: Sequence[Any], then: Sequence[Any]) -> Any:
        """A read script's ``EVALSHA`` and the command ``then`` in one ``MULTI``/``EXEC``: their
        two replies, or ``None`` when the store's client must be called through its own
        command methods (``_direct_pool``, ``_observed``). Errors are translated (as ``call``),
        and the script is loaded again when the server does not know it (``NOSCRIPT``).

        The transaction goes out as one write on a pooled connection and its replies are read
        back in order: one round trip, as ``execute_command`` and redis-py's pipelines do it
        (the connection's retry policy, a connection with replies left unread disconnected),
        without their per-command Python. A ``Pipeline`` costs about 35 µs more per call here.
        """
        pool = self.direct_pool()
        if pool is None:
            return None
        queued = tuple(then)
        try:
            return _reloading(
                self.client,
                script,
                lambda sha: _transaction(pool, [("MULTI",), ("EVALSHA", sha, numkeys, *args), queued, ("EXEC",)]),
            )
        except DRIVER_ERRORS as exc:
            raise convert(exc, action, self._password, self.config.pool_timeout_secs) from exc

    def write(self, action: str, fn: Callable[[Any], T]) -> T:
        """``fn(client)`` for a write, with errors translated, and then the configured waits.

        Without ``wait_replicas``/``wait_aof`` this is ``call(action, lambda: fn(client))``.
        With them, ``fn`` runs on a pipeline followed by ``WAIT``/``WAITAOF``, so both go over
        the same connection, and an unconfirmed write raises ``BackendUnavailableError``.
        """
        waits = self._waits
        if not waits:
            return self.call(action, lambda: fn(self.client))

        def run() -> list[Any]:
            with self.client.pipeline(transaction=False) as pipe:
                fn(pipe)
                for command in waits:
                    pipe.execute_command(*command)
                return list(pipe.execute())

        replies = self.call(action, run)
        self._check_waits(action, replies[-len(waits) :])
        return replies[0]  # type: ignore[no-any-return]

    def _check_waits(self, action: str, replies: list[Any]) -> None:
        c = self.config
        for command, reply in zip(self._waits, replies, strict=True):
            if command[0] == "WAIT":
                confirmed, missing = int(reply), ""
                if confirmed < c.wait_replicas:
                    missing = f"{confirmed} of {c.wait_replicas} replica(s) acknowledged it"
            else:
                local, replicas = (int(n) for n in reply)
                missing = "" if local >= 1 else "the server's append-only file was not fsynced"
                if not missing and replicas < c.wait_replicas:
                    missing = f"{replicas} of {c.wait_replicas} replica(s) fsynced it"
            if missing:
                raise BackendUnavailableError(
                    f"Redis {action}: the write was applied, but its durability is not confirmed:"
                    f" {missing} within {c.wait_timeout_ms} ms ({command[0]})"
                )

    def hgetall(self, action: str, key: str) -> dict[str, str]:
        """The hash at ``key`` (empty when it does not exist); its fields and values are
        text already (every client is made with ``decode_responses=True``), so not copied.

        Sent by itself on a pooled connection where ``direct`` may be (``_command``: the same
        command and retries as ``execute_command``, without its per-call Python: the most
        frequent read, ``get_response``), else through the client's ``hgetall``."""
        pool = self.direct_pool()
        if pool is None:
            row: dict[str, str] = self.call(action, lambda: self.client.hgetall(key))
            return row
        reply = self.call(action, lambda: _command(pool, ("HGETALL", key)))
        if isinstance(reply, dict):  # RESP3 (redis-py 8's default)
            return reply
        pairwise = iter(reply)  # RESP2: field, value, field, value...
        return dict(zip(pairwise, pairwise, strict=False))

    def conversation_key(self, conversation_id: str) -> str:
        return self.keys.conversation(conversation_id)

    def links_key(self, conversation_id: str) -> str:
        return self.keys.links(conversation_id)

    def sequence_key(self, conversation_id: str) -> str:
        return self.keys.sequence(conversation_id)

    def item_key(self, item_id: str) -> str:
        return self.keys.item(item_id)

    def response_key(self, response_id: str) -> str:
        return self.keys.response(response_id)

    def safety_key(self, identifier: str) -> str:
        return self.keys.safety(identifier)

    def safety_field(self) -> str | None:
        """The hash field holding the safety identifier, or ``None`` when it is skipped."""
        return self.codec.responses.field("safety_identifier")

    # Writes shared by the storages and the backend's restore; ``client`` may be a pipeline
    # (the script then runs inside its MULTI/EXEC), else the store's client.

    def run_script(self, script: Any, keys: list[str], args: list[Any], client: Any) -> Any:
        """``script`` on ``client`` (the store's client when ``None``, or a pipeline).

        redis-py refuses ``Script`` calls on a cluster pipeline (its ``evalsha`` method is
        blocked there), so a cluster pipeline gets the ``EVALSHA`` command itself; the caller
        has loaded the scripts (``load_scripts``), as a plain pipeline does by itself.
        """
        if self.cluster and client is not None and client is not self.client:
            return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return script(keys=keys, args=args, client=client)

    def item_record(self, item: ConversationItem, fields: dict[str, str]) -> tuple[list[str], list[str]]:
        """``CREATE_RECORD``'s keys and arguments for the item (its hash, created_at index and
        packed copy)."""
        created = score(item.created_at) if self.index_created else ""
        keys = self.keys.item_record(item.id)
        return keys, [self.ttl, created, item.id, self.codec.packed(item.id, fields), *_flat(fields)]

    def create_item_record(self, item: ConversationItem, fields: dict[str, str], client: Any = None) -> Any:
        """Write the item unless it exists (``CREATE_RECORD``), indexed; truthy when written."""
        keys, args = self.item_record(item, fields)
        return self.run_script(self.lua_create_record, keys, args, client)

    def link_keys(self, conversation_id: str) -> list[str]:
        """The keys of the scripts that (un)link: the link set, sequence hash and packed set."""
        return self.keys.link_keys(conversation_id)

    def linking_args(self, conversation_id: str) -> list[str]:
        """``LINK_ITEMS``' and ``RESTORE_LINKS``' arguments between the TTL and the links."""
        return [self.keys.item_links_prefix, conversation_id, self.keys.item_prefix, self.keys.item_packed_prefix]

    def link_args(self, conversation_id: str) -> list[str]:
        """The arguments naming the item linkers index, for the scripts that (un)link."""
        return [self.keys.item_links_prefix, conversation_id]

    def unlinked_args(self) -> list[str]:
        """``DELETE_UNLINKED_ITEMS``'s arguments before the item ids."""
        k = self.keys
        return [k.item_prefix, k.item_packed_prefix, k.item_links_prefix, k.conversation_prefix, k.links_suffix]

    def response_index_args(self) -> list[str]:
        """The fields ``DELETE_RESPONSE`` reads to find a response's index entries."""
        return [
            self.safety_field() or "",
            self.codec.responses.field("conversation_id") or "",
            self.keys.conversation_responses_prefix,
        ]

    def index_ready(self) -> bool:
        """Whether the retention indexes cover every record: the schema's layout marker says
        ``datacon migrate`` built them, or the schema holds no record yet (the marker is then
        set: every later write keeps the indexes). Cached once true."""
        if self._indexed:
            return True
        k = self.keys
        if layout_of(self.call("check indexes", lambda: self.client.get(k.layout))) >= INDEX_LAYOUT:
            self._indexed = True
            return True
        record_prefixes = (k.conversation_prefix, k.item_prefix, k.response_prefix, k.safety_prefix)

        def empty() -> bool:
            for key in self.client.scan_iter(match=f"{k.prefix}*", count=1000):
                if str(key).startswith(record_prefixes):
                    return False
            return True

        if self.call("check indexes", empty):
            self.call("check indexes", lambda: self.client.set(k.layout, str(LAYOUT), nx=True))
            self._indexed = True
        return self._indexed

    def keyed(self, idem: Idempotency, result: object) -> tuple[list[str], list[str]]:
        """The key and the arguments a ``lua.keyed`` script adds for ``idem`` (its result stored)."""
        key = self.keys.idempotency(idem.operation, idem.key, idem.conversation_id)
        return [key], [idem.fingerprint, idem.encode(result), str(idem.ttl_secs * 1000)]

    @staticmethod
    def replayed(idem: Idempotency | None, reply: Any, cls: Any) -> Any:
        """The first call's result when ``reply`` says the key was stored (``ConflictError`` if
        that call had other arguments), else ``None``."""
        if idem is None or not isinstance(reply, list) or not reply or reply[0] != "datacon:idempotency":
            return None
        return idem.replay(str(reply[1]), str(reply[2]), cls)

    def conversations_by_key(self, column: str, value: str) -> str:
        """The index set of the conversations whose extra ``column`` is ``value``."""
        return f"{self.conversations_by_prefix}{column}:{value}"

    def put_conversation(
        self, conversation: Conversation, extra: Mapping[str, Any], client: Any = None, idem: Idempotency | None = None
    ) -> Any:
        """Write the conversation and its listing index entries unless it exists; truthy when
        written (with ``idem``: or the ``lua.keyed`` reply of a stored key)."""
        fields = self.codec.conversation_fields(conversation, extra)
        keys = [self.conversation_key(conversation.id), self.conversations_list_key]
        for name, _ in self.schema.conversations.sorted_extra_columns():
            value = fields.get(name)
            if value is not None:
                keys.append(self.conversations_by_key(name, value))
        args = [self.ttl, listing_member(conversation.created_at, conversation.id), *_flat(fields)]
        if idem is not None:
            more_keys, more_args = self.keyed(idem, conversation)
            return self.run_script(self.lua_create_conversation_keyed, keys + more_keys, args + more_args, client)
        return self.run_script(self.lua_create_conversation, keys, args, client)

    def put_response(
        self, response: StoredResponse, extra: Mapping[str, Any], client: Any = None, idem: Idempotency | None = None
    ) -> Any:
        """Write the response and its safety index entry unless it exists; truthy when written
        (with ``idem``: or the ``lua.keyed`` reply of a stored key)."""
        keys, args = self.response_record(response, extra)
        if idem is not None:
            # The optional safety set is KEYS[2]: the idempotency key comes last, after it.
            more_keys, more_args = self.keyed(idem, response.id)
            return self.run_script(self.lua_store_response_keyed, keys + more_keys, args + more_args, client)
        return self.run_script(self.lua_store_response, keys, args, client)

    def response_record(self, response: StoredResponse, extra: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """``STORE_RESPONSE``'s keys and arguments for the response (its hash and indexes)."""
        fields = self.codec.response_fields(response, extra)
        r = self.codec.responses
        identifier = response.safety_identifier if self.safety_field() is not None else None
        conversation = response.conversation_id if r.field("conversation_id") is not None else None
        keys = [
            self.response_key(response.id),
            self.keys.responses_created,
            self.safety_key(identifier or ""),
            self.keys.conversation_responses(conversation or ""),
        ]
        args = [
            self.ttl,
            score(response.created_at),
            response.id,
            "1" if r.field("created_at") is not None else "",
            "1" if identifier is not None else "",
            identifier if identifier is not None and conversation is not None else "",
            *_flat(fields),
        ]
        return keys, args

    def pool_stats(self) -> dict[str, int]:
        """``size`` (pool_max), ``open`` connections and those ``in_use``."""
        # BlockingConnectionPool keeps every connection it made in _connections and the idle
        # ones in its queue (padded with None); redis-py computes in-use the same way.
        # (A cluster has one such pool per node: their sums.)
        made = idle = 0
        for pool in self.topology.pools():
            made += len(list(getattr(pool, "_connections", ())))
            queue = getattr(getattr(pool, "pool", None), "queue", ())
            idle += sum(1 for conn in list(queue) if conn is not None)
        return {"size": self.max_concurrency, "open": made, "in_use": max(made - idle, 0)}

    def close(self) -> None:
        """Disconnect every pooled connection (an application's client is left as it is)."""
        if not self.owned:
            return
        with self.translate("close"):
            self.topology.close()


#: redis-py's own ``Redis.execute_command``, unwrapped (an instrumentor may have wrapped it
#: before datacon was imported).
_EXECUTE = inspect.unwrap(redis.Redis.execute_command)

#: ``get_connection``'s arguments: redis-py before 5.3 requires a command name.
_GET_CONNECTION = (
    ("MULTI",)
    if inspect.signature(redis.ConnectionPool.get_connection).parameters["command_name"].default
    is inspect.Parameter.empty
    else ()
)

#: redis-py's serializer of commands for hiredis, and hiredis's own (``_pack``).
_HIREDIS_PACKER: Any = getattr(redis.connection, "HiredisRespSerializer", None)
_hiredis_pack: Callable[[tuple[Any, ...]], bytes]
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - redis-py's own serializer serves
    _HIREDIS_PACKER = None

_metrics: Callable[[], Any] | None
try:  # redis-py 7.1 and later: its own OpenTelemetry metrics, off unless the application enables them
    from redis.observability import providers

    _metrics = providers.get_observability_instance
except ImportError:  # pragma: no cover - older redis-py
    _metrics = None


def _direct_pool(client: Any, pool: Any, cluster: bool) -> Any:
    """The pool ``RedisStore.direct`` may take connections from: that of a plain server's or
    Sentinel's ``redis.Redis``; ``None`` for a cluster, a client bound to one connection
    (``single_connection_client``) and a pool with client-side caching (whose connections
    answer some reads themselves), which are only called through their command methods."""
    if cluster or pool is None or not isinstance(client, redis.Redis):
        return None
    if getattr(client, "connection", None) is not None or getattr(pool, "cache", None) is not None:
        return None
    return pool


def _observed(client: Any) -> bool:
    """Whether something watches the client's commands where ``direct`` would pass it by: an
    instrumentor (or a subclass) whose ``execute_command`` is not redis-py's own, on the class
    or the instance, or redis-py's own metrics. Such a client gets every command through its
    command methods (checked per call: an application may instrument after opening)."""
    if type(client).execute_command is not _EXECUTE:
        return True
    own = vars(client).get("execute_command")  # an instance's (left bound to the original once unwrapped)
    if own is not None and getattr(own, "__func__", None) is not _EXECUTE:
        return True
    return _metrics is not None and bool(_metrics().is_enabled())


def _pack(conn: Any, command: tuple[Any, ...]) -> bytes:
    """``conn.pack_command(*command)`` as one buffer; with redis-py's hiredis serializer,
    ``hiredis.pack_command`` itself: the same bytes, without the serializer's look for buffers
    among the arguments (about 0.1 µs each, a turn has seventy; datacon passes text and
    integers)."""
    if _HIREDIS_PACKER is not None and type(getattr(conn, "_command_packer", None)) is _HIREDIS_PACKER:
        return _hiredis_pack(command)
    packed: list[bytes] = conn.pack_command(*command)
    return packed[0] if len(packed) == 1 else b"".join(packed)


def _on_connection(pool: Any, exchange: Callable[[Any], T]) -> T:
    """``exchange(conn)`` on a connection of ``pool``, as ``execute_command`` runs a command: a
    dropped connection is disconnected and the exchange run again as the connection's retry
    policy says; the connection goes back to the pool after (disconnected first when redis-py 7's
    maintenance events ask for it)."""
    conn = pool.get_connection(*_GET_CONNECTION)
    try:
        result: T = conn.retry.call_with_retry(lambda: exchange(conn), lambda _error: conn.disconnect())
        return result
    finally:
        should_reconnect = getattr(conn, "should_reconnect", None)  # redis-py 7: maintenance events
        if should_reconnect is not None and should_reconnect():
            conn.disconnect()
        pool.release(conn)


def _command(pool: Any, command: tuple[Any, ...]) -> Any:
    """``command`` on a connection of ``pool``: its reply (an error reply raised), sent as
    ``execute_command`` sends it (``_on_connection``) without its per-call Python."""

    def exchange(conn: Any) -> Any:
        conn.send_packed_command((_pack(conn, command),))
        return conn.read_response()

    return _on_connection(pool, exchange)


def _transaction(pool: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """``commands`` (``MULTI``, the queued commands, ``EXEC``) on a connection of ``pool``
    (``_on_connection``): ``EXEC``'s replies, the first error among them raised."""

    def exchange(conn: Any) -> list[Any]:
        # One buffer, one write: the connection sends each chunk it is given by itself (a
        # system call and a segment each, and the server may wake for each).
        conn.send_packed_command((b"".join([_pack(conn, command) for command in commands]),))
        try:
            for _ in range(len(commands) - 1):  # +OK, then +QUEUED per command
                conn.read_response()
            replies: list[Any] = conn.read_response()
        except ResponseError:
            conn.disconnect()  # a refused command (EXECABORT follows): replies may be left unread
            raise
        return replies

    replies = _on_connection(pool, exchange)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _reloading(client: Any, script: Any, send: Callable[[str], T]) -> T:
    """``send(script.sha)``; when the server does not know the script (``NOSCRIPT``), loaded
    again through ``client`` and sent once more (as ``Script.__call__`` does)."""
    try:
        return send(script.sha)
    except NoScriptError:
        script.sha = client.script_load(script.script)
        return send(script.sha)


#: Where a client is only called through its command methods (``RedisStore.direct``), the
#: longest first page ``list_items`` reads through ``LIST_FIRST``; a longer one is read with
#: the packed set's commands in a pipeline's MULTI/EXEC (cheaper once copying the members
#: through Lua costs more than the pipeline's Python: about 40 on loopback), and by the page
#: script when the set is incomplete. A cluster always uses the script.
_SCRIPTED_PAGE = 40


def _horizon(now: Any) -> int:
    """Epoch milliseconds one second past the server's time ``now`` (seconds): an item whose
    hash expires by then is treated as gone (its packed member's expiry is taken a little
    after the hash's)."""
    return (int(now) + 1) * 1000


def _wait_commands(config: RedisConfig) -> list[tuple[str | int, ...]]:
    if config.wait_aof:
        return [("WAITAOF", 1, config.wait_replicas, config.wait_timeout_ms)]
    if config.wait_replicas:
        return [("WAIT", config.wait_replicas, config.wait_timeout_ms)]
    return []


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in text.split(".")[:3])


#: Microseconds from 0001-01-01 to the epoch: listing members count from year 1, never negative.
_YEAR_ONE_US = 62_135_596_800_000_000


def listing_member(created_at: datetime, conversation_id: str) -> str:
    """A conversation's member in the listing sets: lexical order is ``(created_at, id)``."""
    return f"{listing_time(created_at)}:{conversation_id}"


def listing_time(created_at: datetime) -> str:
    """The 18 digits that start a listing member (``listing_member``)."""
    return f"{to_epoch_us(created_at) + _YEAR_ONE_US:018d}"


def listing_key(member: str) -> tuple[datetime, str]:
    """``(created_at, id)`` of a listing member (``listing_member``'s inverse)."""
    return from_epoch_us(int(member[:18]) - _YEAR_ONE_US), member[19:]


def _flat(fields: dict[str, str]) -> list[str]:
    return list(chain.from_iterable(fields.items()))


class RedisConversationStorage(BackendConversations):
    """Conversations as hashes; ``delete_conversation`` also drops the link set."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def create_conversation(
        self, new: NewConversation, *, extra: Extra = NO_EXTRA, idempotency_key: Idempotency | str | None = None
    ) -> Conversation:
        s = self.store
        idem = resolve(idempotency_key, "create_conversation", lambda: {"new": new})
        conversation_id = minted_id(new)
        metadata = None if new.metadata is None else normalize_json(new.metadata, "metadata")
        conversation = Conversation(id=conversation_id, created_at=utc_now(), metadata=metadata)
        created = s.write("create_conversation", lambda c: s.put_conversation(conversation, extra, client=c, idem=idem))
        replayed: Conversation | None = s.replayed(idem, created, Conversation)
        if replayed is not None:
            return replayed
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
        key = s.conversation_key(conversation_id)
        row = s.write(
            "update_conversation", lambda c: s.lua_update_conversation(keys=[key], args=[field, text], client=c)
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
        keys = [s.conversation_key(conversation_id), *s.link_keys(conversation_id)]
        args = s.link_args(conversation_id)
        return bool(s.write("delete_conversation", lambda c: s.lua_delete_conversation(keys=keys, args=args, client=c)))

    def filter_columns(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.store.schema.conversations.sorted_extra_columns())

    def page_conversations(
        self, filter: Mapping[str, str], after: tuple[datetime, str] | None, descending: bool, limit: int
    ) -> list[Conversation]:
        s = self.store
        pairs_ = sorted(filter.items())
        # Walk the first filter's set (every conversation's without a filter); check the rest.
        walk = s.conversations_by_key(*pairs_[0]) if pairs_ else s.conversations_list_key
        args = [
            s.conversation_prefix,
            str(limit),
            "1" if descending else "0",
            "" if after is None else listing_member(*after),
            *[part for pair in pairs_[1:] for part in pair],
        ]
        rows = s.call("list_conversations", lambda: s.lua_list_conversations(keys=[walk], args=args))
        return [s.codec.conversation(str(cid), pairs(row)) for cid, row in rows]


class RedisItemStorage(BackendItems):
    """Items as hashes; links as one sorted set per conversation."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self._content_field = store.codec.items.field("content")

    def _encoded(
        self, item: ConversationItem, extra: Extra, time_text: Callable[[datetime], str] = Codec.time_text
    ) -> dict[str, str]:
        """The item's hash fields (``Codec.item_fields``), and its content made what will read
        back: parsed from the text the encoder dumped (dumped once, not normalised first), or
        normalised where the column is skipped. In place: the record is the call's own
        (attrs.evolve costs more)."""
        fields = self.store.codec.item_fields(item, extra, time_text)
        text = fields.get(self._content_field) if self._content_field is not None else None
        item.content = loads(text) if text is not None else normalize_json(item.content, "content")
        return fields

    def create_item(
        self, new: NewConversationItem, *, extra: Extra = NO_EXTRA, idempotency_key: Idempotency | str | None = None
    ) -> ConversationItem:
        s = self.store
        if idempotency_key is None:  # the usual call: one EVALSHA
            item = created_item(new, new.content)
            fields = self._encoded(item, extra)
            keys, args = s.item_record(item, fields)
            if not s.write_script("create_item", s.lua_create_record, keys, args):
                raise ConflictError(f"item {item.id} already exists")
            return item
        idem = resolve(idempotency_key, "create_item", lambda: {"new": new})
        item = created_item(new, normalize_json(new.content, "content"))
        fields = s.codec.item_fields(item, extra)
        if idem is None:
            created = s.write("create_item", lambda c: s.create_item_record(item, fields, client=c))
        else:
            more_keys, more_args = s.keyed(idem, item)
            keys, args = s.item_record(item, fields)
            keys, args = keys + more_keys, args + more_args
            created = s.write("create_item", lambda c: s.run_script(s.lua_create_record_keyed, keys, args, c))
        replayed: ConversationItem | None = s.replayed(idem, created, ConversationItem)
        if replayed is not None:
            return replayed
        if not created:
            raise ConflictError(f"item {item.id} already exists")
        return item

    def link_item(self, conversation_id: str, item_id: str, added_at: datetime, *, extra: Extra = NO_EXTRA) -> None:
        # link_items of one pair, with its arguments built directly.
        s = self.store
        args = [s.ttl, *s.linking_args(conversation_id), score(added_at), item_id]
        taken = s.write_script("link_items", s.lua_link_items, s.link_keys(conversation_id), args)
        if taken is not None:
            raise ConflictError(f"item {taken} is already linked to conversation {conversation_id}")

    def link_items(
        self, conversation_id: str, items: Sequence[tuple[str, datetime]], *, extra: Extra = NO_EXTRA
    ) -> None:
        if not items:
            return
        s = self.store
        args = [s.ttl, *s.linking_args(conversation_id)]
        for item_id, added_at in items:
            args += [score(added_at), item_id]
        keys = s.link_keys(conversation_id)
        taken = s.write("link_items", lambda c: s.lua_link_items(keys=keys, args=args, client=c))
        if taken is not None:
            raise ConflictError(f"item {taken} is already linked to conversation {conversation_id}")

    def append_items(
        self,
        conversation_id: str,
        items: Sequence[NewConversationItem],
        added_at: datetime | None = None,
        *,
        extra: Extra = NO_EXTRA,
        idempotency_key: Idempotency | str | None = None,
    ) -> list[ConversationItem]:
        if not items:
            return []
        s = self.store
        idem = resolve(
            idempotency_key, "append_items", lambda: {"items": list(items), "added_at": added_at}, conversation_id
        )
        now = utc_now()
        keep_status = s.codec.items.field("status") is not None
        created = []
        ids: list[str] = []
        fields: list[str] = []
        # The items are created at one instant: its text is made once, not once per item.
        now_text = s.codec.time_text(now)

        def time_text(_value: datetime) -> str:
            return now_text

        for new in items:  # everything encoded before any I/O (bad content writes nothing)
            item = created_item(new, new.content, now, keep_status=keep_status)
            encoded = self._encoded(item, extra, time_text)
            created.append(item)
            ids.append(item.id)
            flat = _flat(encoded)
            fields += [s.codec.packed(item.id, encoded), str(len(flat)), *flat]
        now_score = score(now)
        indexed = now_score if s.index_created else ""
        added = now_score if added_at is None else score(added_at)
        args = [s.ttl, s.item_prefix, added, indexed, s.keys.item_packed_prefix]
        args += [*s.link_args(conversation_id), str(len(ids)), *ids, *fields]
        keys = [s.links_key(conversation_id), s.sequence_key(conversation_id), s.keys.items_created]
        keys.append(s.keys.packed(conversation_id))
        script = s.lua_append_items
        if idem is not None:
            more_keys, more_args = s.keyed(idem, created)
            keys, args, script = keys + more_keys, args + more_args, s.lua_append_items_keyed
        refused = s.write_script("append_items", script, keys, args)
        replayed: list[ConversationItem] | None = s.replayed(idem, refused, list[ConversationItem])
        if replayed is not None:
            return replayed
        if refused is not None:
            why, item_id = (str(part) for part in refused)
            if why == "exists":
                raise ConflictError(f"item {item_id} already exists (nothing was appended)")
            raise ConflictError(f"item {item_id} is already linked to conversation {conversation_id}")
        return created

    def list_items(self, conversation_id: str, params: ListParams) -> list[ConversationItem]:
        if params.limit <= 0:
            return []
        if params.after is None:
            first = self._first_page(conversation_id, params)
            if first is not None:
                return first
        return self._page(conversation_id, params, None, positions=False)[1]  # no positions to decode

    def _first_page(self, conversation_id: str, params: ListParams) -> list[ConversationItem] | None:
        """A first page in one round trip (``None`` when it must be read again by the page
        script: a packed member of an expired item, or one that does not decode).

        ``LIST_HEAD`` and the packed set's ``ZRANGE`` in one ``MULTI`` (``RedisStore.direct``):
        the members reach the client without passing through Lua. Where the client is only
        called through its command methods (a cluster, an instrumented client), ``LIST_FIRST``
        up to ``_SCRIPTED_PAGE`` items, and above that the packed set's commands in a
        ``MULTI`` (``_packed_page``)."""
        s = self.store
        desc = params.order is SortOrder.DESC
        keys = s.link_keys(conversation_id)  # links, sequence, packed: the id escaped once
        args = (*keys, params.limit, "1" if desc else "", s.first_page_args)
        members = ("ZREVRANGE" if desc else "ZRANGE", keys[2], 0, params.limit - 1)
        replies = s.direct("list_items", s.lua_list_head, 3, args, members)
        if replies is not None:
            reply = replies[0]
            if reply[0] == "packed":
                return s.codec.packed_page(replies[1], _horizon(reply[1]))
        elif s.cluster or params.limit <= _SCRIPTED_PAGE:
            reply = s.evalsha("list_items", s.lua_list_first, 3, *args)
            if reply[0] == "packed":
                return s.codec.packed_page(reply[2], _horizon(reply[1]))
        else:
            return self._packed_page(conversation_id, params)
        # An incomplete packed set: the list script's page (no positions asked).
        with suppress(StalePackedError):
            return s.codec.page(reply[1], reply[2])
        return None

    def _packed_page(self, conversation_id: str, params: ListParams) -> list[ConversationItem] | None:
        """A long first page from the conversation's packed set, as commands in one MULTI/EXEC
        through the client's pipeline (its members are not copied through Lua); ``None`` when
        the set lacks a link's member or holds an expired item's."""
        s = self.store
        links, packed = s.links_key(conversation_id), s.keys.packed(conversation_id)
        desc = params.order is SortOrder.DESC

        def run() -> list[Any]:
            with s.client.pipeline(transaction=True) as pipe:
                pipe.zcard(links)
                pipe.zcard(packed)
                pipe.time()
                (pipe.zrevrange if desc else pipe.zrange)(packed, 0, params.limit - 1)
                return list(pipe.execute())

        count, complete, (now, _), members = s.call("list_items", run)
        if count != complete:
            return None
        return s.codec.packed_page(members, _horizon(now))

    def page_items(
        self, conversation_id: str, params: ListParams, position: Position | None
    ) -> tuple[list[PageRow], bool]:
        more, items, positions = self._page(conversation_id, params, position, positions=True)
        scores, seqs = positions[0::2], positions[1::2]  # of each item, in order
        rows = zip(items, scores, seqs, strict=True)
        return [(item, score_time(float(value)), int(seq)) for item, value, seq in rows], bool(more)

    def _page(
        self,
        conversation_id: str,
        params: ListParams,
        position: Position | None,
        *,
        positions: bool,
    ) -> tuple[Any, list[ConversationItem], list[Any]]:
        """The list script's page: ``(more, items, [score, sequence, ...])`` (no positions
        unless asked). Items come from their packed copies (layout 3) and, for those without
        one, from their hashes; a page whose packed copies do not decode (datacon never
        writes one) is read again from the hashes alone (``list_items`` reads a first page
        with ``LIST_FIRST``, the same script answering from the packed set when it can)."""
        s = self.store
        where: list[str | int] = ["", "", ""]
        if position is not None:
            where = [score(position[0]), position[1], position[2]]
        args: list[str | int] = [
            s.item_prefix,
            params.limit,
            "1" if params.order is SortOrder.DESC else "0",
            (params.after or "") if position is None else "",
            *where,
            s.keys.item_packed_prefix,
            "1" if positions else "",
            *s.codec.item_read_fields,
        ]
        keys = [s.links_key(conversation_id), s.sequence_key(conversation_id), s.keys.packed(conversation_id)]
        reply = s.call("list_items", lambda: s.lua_list_items(keys=keys, args=args))
        more, page, fallback, at = reply
        try:
            return more, s.codec.page(page, fallback), at
        except StalePackedError:
            args[7] = ""  # no packed copies: every item from its hash
            more, page, fallback, at = s.call("list_items", lambda: s.lua_list_items(keys=keys, args=args))
            return more, s.codec.page(page, fallback), at

    def get_item(self, item_id: str) -> ConversationItem | None:
        s = self.store
        row = s.hgetall("get_item", s.item_key(item_id))
        return s.codec.item(item_id, row) if row else None

    def is_item_linked(self, conversation_id: str, item_id: str) -> bool:
        s = self.store
        found = s.call("is_item_linked", lambda: s.client.zscore(s.links_key(conversation_id), item_id))
        return found is not None

    def delete_item(self, conversation_id: str, item_id: str) -> None:
        s = self.store
        keys = s.link_keys(conversation_id)
        args = [item_id, *s.link_args(conversation_id)]
        s.write("delete_item", lambda c: s.lua_delete_link(keys=keys, args=args, client=c))

    def unlink_items(self, conversation_id: str, item_ids: Sequence[str]) -> list[str]:
        # Each link goes in one script (of two concurrent calls, one removes it), and so does
        # its entry in the item's linkers set; then one script deletes, of the removed items,
        # those that no conversation links any more (checked and deleted atomically, from the
        # linkers sets: the cost does not depend on the number of conversations).
        s = self.store
        keys = s.link_keys(conversation_id)
        link_args = s.link_args(conversation_id)

        def unlink(item_id: str) -> bool:
            args = [item_id, *link_args]
            return bool(s.write("unlink_items", lambda c: s.run_script(s.lua_delete_link, keys, args, c)))

        removed = [item_id for item_id in dict.fromkeys(item_ids) if unlink(item_id)]
        if not removed:
            return removed
        if not s.index_ready():
            self._delete_orphans_by_scan(removed)
            return removed
        args = [*s.unlinked_args(), *removed]
        index = [s.keys.items_created]
        s.write("unlink_items", lambda c: s.run_script(s.lua_delete_unlinked_items, index, args, c))
        return removed

    def _delete_orphans_by_scan(self, removed: list[str]) -> None:
        # Before ``datacon migrate`` built the linkers sets (layout 2), links written earlier
        # are only found by scanning every conversation's link set (one SCAN per call).
        s = self.store

        def linked_elsewhere() -> set[str]:
            found: set[str] = set()
            pattern = f"{s.conversation_prefix}*{s.keys.links_suffix}"
            for key in s.client.scan_iter(match=pattern, count=1000, _type="zset"):
                scores = s.client.zmscore(key, removed)
                found.update(item_id for item_id, score in zip(removed, scores, strict=True) if score is not None)
            return found

        kept = s.call("unlink_items", linked_elsewhere)
        gone = [item_id for item_id in removed if item_id not in kept]
        orphans = [key(item_id) for item_id in gone for key in (s.item_key, s.keys.item_packed)]
        if orphans:
            s.write("unlink_items", lambda c: c.delete(*orphans))


class RedisResponseStorage(BackendResponses):
    """Responses as hashes, indexed by safety identifier in sorted sets."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def store_response(
        self, response: StoredResponse, *, extra: Extra = NO_EXTRA, idempotency_key: Idempotency | str | None = None
    ) -> str:
        s = self.store
        if idempotency_key is None:  # the usual call: one EVALSHA
            keys, args = s.response_record(response, extra)
            if not s.write_script("store_response", s.lua_store_response, keys, args):
                raise ConflictError(f"response {response.id} already exists")
            return response.id
        idem = resolve(idempotency_key, "store_response", lambda: {"response": response})
        stored = s.write("store_response", lambda c: s.put_response(response, extra, client=c, idem=idem))
        replayed: str | None = s.replayed(idem, stored, str)
        if replayed is not None:
            return replayed
        if not stored:
            raise ConflictError(f"response {response.id} already exists")
        return response.id

    def get_response(self, response_id: str) -> StoredResponse | None:
        s = self.store
        row = s.hgetall("get_response", s.response_key(response_id))
        return s.codec.response(response_id, row) if row else None

    def delete_response(self, response_id: str) -> None:
        s = self.store
        fields = s.response_index_args()
        args = [s.safety_prefix, s.keys.safety_suffix, fields[0], response_id, *fields[1:]]
        keys = [s.response_key(response_id), s.keys.responses_created]
        s.write("delete_response", lambda c: s.lua_delete_response(keys=keys, args=args, client=c))

    def get_response_chain(self, response_id: str, max_depth: int | None = None) -> ResponseChain:
        s = self.store
        previous = s.codec.responses.field("previous_response_id") or ""
        args: list[str | int] = [s.response_prefix, response_id, -1 if max_depth is None else max_depth, previous]
        # The start's key routes the script in a cluster (the chain shares its hash tag).
        key = s.response_key(response_id)
        rows = s.call("get_response_chain", lambda: s.lua_get_chain(keys=[key], args=args))
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
        _, conversation_field, conversation_prefix = s.response_index_args()
        args = [s.response_prefix, field, identifier, conversation_field, conversation_prefix]
        args += [s.safety_prefix, s.keys.safety_suffix]
        keys = [s.safety_key(identifier), s.keys.responses_created]
        deleted = s.write(
            "delete_identifier_responses", lambda c: s.lua_delete_identifier(keys=keys, args=args, client=c)
        )
        return int(deleted)
