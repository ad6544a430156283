"""Redis backend specifics: key layout, TTLs, field names, ties, atomicity, round trips, errors."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from datacon import (
    BeforeHookResult,
    ColumnDef,
    ConversationItem,
    ListParams,
    NewConversation,
    NewConversationItem,
    PruneReport,
    RequestContext,
    SchemaConfig,
    SortOrder,
    Storage,
    StorageFactoryConfig,
    StorageHook,
    StorageOperation,
    StoredResponse,
    TableConfig,
    create_storage,
)
from datacon.backends.redis import RedisBackend as RawRedisBackend
from datacon.backends.redis import RedisStore
from datacon.backends.redis.records import Codec, _packed
from datacon.backends.redis.store import listing_member
from datacon.errors import BackendError, BackendUnavailableError, ConflictError, InvalidInputError, PoolTimeoutError
from tests.servers.redis import OWNER, PASSWORD, RedisBackend, RedisServer, redis_executable
from tests.support import RENAMED_SCHEMA

pytestmark = pytest.mark.redis

T0 = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
DAY = 86_400


@pytest.fixture
def backend(redis_backend: RedisBackend) -> Iterator[RedisBackend]:
    redis_backend.wipe()
    yield redis_backend
    redis_backend.wipe()


@pytest.fixture
def client(backend: RedisBackend) -> Iterator[Any]:
    with backend.client() as inspector:
        yield inspector


def open_store(backend: RedisBackend, schema: SchemaConfig | None = None, **options: Any) -> Storage:
    """A storage through the factory (so ids are minted and arguments checked)."""
    return create_storage(StorageFactoryConfig(backend="redis", redis=backend.redis_config(schema, **options)))


def raw_store(storage: Storage) -> RedisStore:
    raw = storage.raw
    assert isinstance(raw, RawRedisBackend), raw
    return raw.store


def fill(storage: Storage) -> tuple[str, str, str]:
    """One of each record: a conversation with a linked item, and a response with an identifier."""
    conv = storage.conversations.create_conversation(NewConversation(metadata={"topic": "keys"})).id
    item = storage.items.create_item(NewConversationItem("message", {"text": "hi"}, role="user")).id
    storage.items.link_item(conv, item, T0)
    response = storage.responses.store_response(StoredResponse(safety_identifier="user-1", model="m"))
    return conv, item, response


# Key layout and TTLs


def test_default_key_layout(backend: RedisBackend, client: Any) -> None:
    with open_store(backend) as storage:
        conv, item, response = fill(storage)
    assert set(client.keys("*")) == {
        f"conversation:{conv}",
        f"conversation:{conv}:items",
        f"link_seq:{conv}",
        f"item:{item}",
        f"response:{response}",
        "safety:user-1:responses",
        "conversations:list",
        # The retention indexes (layout 2) and the layout marker.
        "items:created",
        "responses:created",
        f"item_links:{item}",
        "datacon:layout",
        # The packed copies (layout 3): the item's, and the conversation's packed set.
        f"item_packed:{item}",
        f"conversation:{conv}:packed",
    }
    assert client.type(f"conversation:{conv}:items") == "zset"
    assert client.type("items:created") == client.type("responses:created") == "zset"
    assert client.smembers(f"item_links:{item}") == {conv}
    assert client.get("datacon:layout") == "3"
    packed = client.get(f"item_packed:{item}")
    assert json.loads(packed)[0] == item
    assert client.type(f"conversation:{conv}:packed") == "zset"
    ((member, at),) = client.zrange(f"conversation:{conv}:packed", 0, -1, withscores=True)
    # Sequence 1, the instant the item's hash expires (retention_days), then its packed copy.
    assert (member[:12], member[27:]) == (f"{1:012d}", packed)
    assert abs(int(member[12:27]) - client.pexpiretime(f"item:{item}")) < 1000
    assert at == client.zscore(f"conversation:{conv}:items", item)
    assert client.type("conversations:list") == "zset"
    assert client.type("safety:user-1:responses") == "zset"
    assert client.type(f"link_seq:{conv}") == "hash"


def test_owner_prefixes_every_key(backend: RedisBackend, client: Any) -> None:
    with open_store(backend, SchemaConfig(owner="acme")) as storage:
        conv, item, response = fill(storage)
    assert set(client.keys("*")) == {
        f"acme:conversation:{conv}",
        f"acme:conversation:{conv}:items",
        f"acme:link_seq:{conv}",
        f"acme:item:{item}",
        f"acme:response:{response}",
        "acme:safety:user-1:responses",
        "acme:conversations:list",
        "acme:items:created",
        "acme:responses:created",
        f"acme:item_links:{item}",
        "acme:datacon:layout",
        f"acme:item_packed:{item}",
        f"acme:conversation:{conv}:packed",
    }


def test_every_key_gets_the_retention_ttl(backend: RedisBackend, client: Any) -> None:
    with open_store(backend, retention_days=2) as storage:
        fill(storage)
    keys = set(client.keys("*")) - {"datacon:layout"}  # the layout marker is not a record
    assert len(keys) == 12  # the link sequence hash, the listing set, retention indexes and packed copies too
    assert client.ttl("datacon:layout") == -1
    for key in keys:
        assert 2 * DAY - 60 < client.ttl(key) <= 2 * DAY, key


def test_no_ttl_without_retention(backend: RedisBackend, client: Any) -> None:
    with open_store(backend, retention_days=None) as storage:
        fill(storage)
    keys = client.keys("*")
    assert len(keys) == 13
    assert {key: client.ttl(key) for key in keys} == dict.fromkeys(keys, -1)


def test_sorted_set_ttls_are_refreshed_on_every_write(backend: RedisBackend, client: Any) -> None:
    with open_store(backend, retention_days=1) as storage:
        conv, item, _ = fill(storage)
        client.expire(f"conversation:{conv}:items", 100)
        client.expire("safety:user-1:responses", 100)
        storage.items.link_item(conv, storage.items.create_item(NewConversationItem("message", None)).id, T0)
        storage.responses.store_response(StoredResponse(safety_identifier="user-1"))
        assert client.ttl(f"conversation:{conv}:items") > DAY - 60
        assert client.ttl("safety:user-1:responses") > DAY - 60
    # A write without retention makes the set persistent, so it cannot expire before that record.
    with open_store(backend, retention_days=None) as storage:
        storage.items.link_item(conv, storage.items.create_item(NewConversationItem("message", None)).id, T0)
        storage.responses.store_response(StoredResponse(safety_identifier="user-1"))
    assert client.ttl(f"conversation:{conv}:items") == -1
    assert client.ttl("safety:user-1:responses") == -1
    assert client.ttl(f"item:{item}") > DAY - 60


def test_update_keeps_the_ttl_and_delete_drops_the_link_set(backend: RedisBackend, client: Any) -> None:
    with open_store(backend, retention_days=3) as storage:
        conv, item, _ = fill(storage)
        client.expire(f"conversation:{conv}", 500)
        assert storage.conversations.update_conversation(conv, {"v": 2}) is not None
        assert 0 < client.ttl(f"conversation:{conv}") <= 500  # upstream: updates do not refresh the TTL
        assert storage.conversations.delete_conversation(conv) is True
        assert client.exists(f"conversation:{conv}", f"conversation:{conv}:items") == 0
        assert client.exists(f"item:{item}") == 1
        assert storage.conversations.delete_conversation(conv) is False


# Field names, extra and skipped columns, encodings


class ExtraHook(StorageHook):
    def before(self, operation: StorageOperation, context: RequestContext | None, payload: Any) -> BeforeHookResult:
        return BeforeHookResult.cont({"score": 42, "tenant_id": "t-9"})

    def after(
        self,
        operation: StorageOperation,
        context: RequestContext | None,
        payload: Any,
        result: Any,
        extra: Mapping[str, Any],
    ) -> None:
        return None


def test_renamed_fields_extras_and_skips_in_the_hashes(backend: RedisBackend, client: Any) -> None:
    schema = attrs.evolve(RENAMED_SCHEMA, owner=OWNER)
    with open_store(backend, schema) as storage:
        conv = storage.conversations.create_conversation(NewConversation(id="conv_r", metadata={"a": 1}))
        storage.items.create_item(NewConversationItem("message", ["x"], id="msg_r", status="done", role="user"))
        storage.items.link_item("conv_r", "msg_r", T0)
        storage.responses.store_response(
            StoredResponse(id="resp_r", safety_identifier="u", model="gpt", raw_response={"o": 1}, created_at=T0)
        )
    assert client.hgetall(f"{OWNER}:conversation:conv_r") == {
        "conv_id": "conv_r",
        "created_at": conv.created_at.isoformat(timespec="microseconds"),
        "conv_meta": '{"a":1}',
        "tenant_id": "tenant-default",  # the column's default_value
        # list_conversations' bookkeeping: the member and the sets it is in (for the delete).
        "datacon:member": listing_member(conv.created_at, "conv_r"),
        "datacon:sets": f'["{OWNER}:conversations:list","{OWNER}:conversations:by:tenant_id:tenant-default"]',
    }
    item = client.hgetall(f"{OWNER}:item:msg_r")
    assert set(item) == {"id", "kind", "role", "body", "created_at"}  # status skipped; no tenant_id value
    assert (item["kind"], item["body"], item["role"]) == ("message", '["x"]', "user")
    assert client.hgetall(f"{OWNER}:response:resp_r") == {
        "id": "resp_r",
        "input": "[]",
        "created_at": "2026-03-04T05:06:07.891011+00:00",
        "user_ident": "u",
        "raw_json": '{"o":1}',
        "stored_by": "system",
    }
    # Links carry no extra columns: a sorted set member and its score only.
    assert client.zrange(f"{OWNER}:conversation:conv_r:items", 0, -1, withscores=True) == [
        ("msg_r", 1772600767891.011)  # epoch milliseconds with the microseconds as a fraction
    ]
    assert client.zscore(f"{OWNER}:safety:u:responses", "resp_r") == 1772600767891.011


def test_hook_supplied_extras_are_written(backend: RedisBackend, client: Any) -> None:
    config = backend.redis_config(RENAMED_SCHEMA)
    with create_storage(StorageFactoryConfig(backend="redis", redis=config, hook=ExtraHook())) as storage:
        storage.items.create_item(NewConversationItem("message", None, id="msg_h"))
        storage.items.append_items("conv_h", [NewConversationItem("message", None, id="msg_h2")])
        storage.responses.store_response(StoredResponse(id="resp_h"))
    assert client.hget(f"{OWNER}:item:msg_h", "tenant_id") == "t-9"
    assert client.hget(f"{OWNER}:item:msg_h2", "tenant_id") == "t-9"
    assert client.hmget(f"{OWNER}:response:resp_h", ["score", "stored_by"]) == ["42", "system"]


def test_skipped_columns_read_back_as_defaults(backend: RedisBackend, client: Any) -> None:
    skip_all = SchemaConfig(
        conversations=TableConfig("conversations", skip_columns={"metadata", "created_at"}),
        conversation_items=TableConfig("conversation_items", skip_columns={"item_type", "content", "role"}),
        responses=TableConfig("responses", skip_columns={"input", "raw_response", "safety_identifier"}),
    )
    with open_store(backend, skip_all) as storage:
        storage.conversations.create_conversation(NewConversation(id="conv_s", metadata={"gone": True}))
        before = datetime.now(UTC)
        got = storage.conversations.get_conversation("conv_s")
        assert got is not None
        assert got.metadata is None
        assert got.created_at >= before  # the time of the read, as upstream
        storage.items.create_item(NewConversationItem("reasoning", {"c": 1}, id="rs_s", role="assistant"))
        item = storage.items.get_item("rs_s")
        assert item is not None
        assert (item.item_type, item.content, item.role) == ("", None, None)
        storage.responses.store_response(StoredResponse(id="resp_s", input=["i"], safety_identifier="u"))
        response = storage.responses.get_response("resp_s")
        assert response is not None
        assert (response.input, response.raw_response, response.safety_identifier) == ([], None, None)
        assert storage.responses.list_identifier_responses("u") == []
        assert storage.responses.delete_identifier_responses("u") == 0
        assert storage.responses.get_response("resp_s") is not None
    assert set(client.hgetall(f"{OWNER}:conversation:conv_s")) == {"id", "datacon:member", "datacon:sets"}
    assert set(client.hgetall(f"{OWNER}:item:rs_s")) == {"id", "created_at"}
    assert not client.keys("*safety:*")


def test_reads_upstream_written_hashes(backend: RedisBackend, client: Any) -> None:
    # upstream writes RFC 3339 with +00:00 and up to nine fractional digits
    client.hset(
        "item:msg_up",
        mapping={
            "id": "msg_up",
            "item_type": "message",
            "content": "[1]",
            "created_at": "2026-03-04T05:06:07.123456789+00:00",
        },
    )
    client.hset(
        "conversation:conv_up", mapping={"id": "conv_up", "created_at": "2026-03-04T05:06:07+00:00", "metadata": "null"}
    )
    with open_store(backend) as storage:
        item = storage.items.get_item("msg_up")
        assert item is not None
        assert item.created_at == datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
        conv = storage.conversations.get_conversation("conv_up")
        assert conv is not None
        assert conv.metadata is None


def test_packed_copies_read_any_iso_time_as_utc(backend: RedisBackend) -> None:
    # datacon writes +00:00 (read as UTC directly); any other form is converted, as from a hash.
    times = {
        "2026-03-04T05:06:07.123456+00:00": datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC),
        "2026-03-04T05:06:07Z": datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        "2026-03-04T07:06:07+02:00": datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        "2026-03-04T05:06:07": datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
    }
    blob = json.dumps([[f"msg_{n}", None, "message", "user", None, text, [n]] for n, text in enumerate(times)])
    with open_store(backend) as storage:
        items = raw_store(storage).codec.page(blob, ())
    assert [item.created_at for item in items] == list(times.values())
    assert all(item.created_at.tzinfo is UTC for item in items)
    assert [item.content for item in items] == [[0], [1], [2], [3]]


def test_corrupt_hashes_raise_backend_error(backend: RedisBackend, client: Any) -> None:
    client.hset("item:msg_bad", mapping={"id": "msg_bad", "content": "{not json", "created_at": "2026-01-01T00:00:00Z"})
    client.hset("conversation:conv_bad", mapping={"id": "conv_bad", "created_at": "yesterday"})
    client.hset(
        "conversation:conv_arr", mapping={"id": "conv_arr", "created_at": "2026-01-01T00:00:00Z", "metadata": "[1]"}
    )
    with open_store(backend) as storage:
        with pytest.raises(BackendError, match=r"msg_bad.*content"):
            storage.items.get_item("msg_bad")
        with pytest.raises(BackendError, match=r"conv_bad.*created_at"):
            storage.conversations.get_conversation("conv_bad")
        with pytest.raises(BackendError, match=r"conv_arr.*metadata"):
            storage.conversations.get_conversation("conv_arr")


# Ordering, paging and atomicity


@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
def test_200_links_sharing_one_added_at_page_exactly(backend: RedisBackend, order: SortOrder) -> None:
    with open_store(backend) as storage:
        ids = [storage.items.create_item(NewConversationItem("message", n)).id for n in range(200)]
        early = storage.items.create_item(NewConversationItem("message", "early")).id
        late = storage.items.create_item(NewConversationItem("message", "late")).id
        conv = storage.conversations.create_conversation(NewConversation()).id
        storage.items.link_items(conv, [(i, T0) for i in ids] + [(early, T0 - timedelta(microseconds=1))])
        storage.items.link_item(conv, late, T0 + timedelta(microseconds=1))
        expected = [early, *ids, late]  # ties: the order linked
        if order is SortOrder.DESC:
            expected.reverse()
        seen: list[str] = []
        after = None
        while True:
            page = storage.items.list_items(conv, ListParams(7, order, after))
            assert len(page) <= 7
            if not page:
                break
            seen += [item.id for item in page]
            after = page[-1].id
        assert seen == expected


def test_link_items_with_a_duplicate_writes_nothing(backend: RedisBackend, client: Any) -> None:
    with open_store(backend) as storage:
        storage.items.link_item("conv_a", "msg_b", T0)
        with pytest.raises(ConflictError, match="msg_b"):
            storage.items.link_items("conv_a", [("msg_a", T0), ("msg_b", T0), ("msg_c", T0)])
    assert client.zrange("conversation:conv_a:items", 0, -1) == ["msg_b"]


def test_raw_link_items_rejects_a_repeated_id(backend: RedisBackend, client: Any) -> None:
    # The guard catches repeats too; the script must not rely on it.
    raw = RawRedisBackend(backend.redis_config())
    try:
        with pytest.raises(ConflictError, match="msg_x"):
            raw.items.link_items("conv_a", [("msg_x", T0), ("msg_y", T0), ("msg_x", T0)])
    finally:
        raw.close()
    assert client.exists("conversation:conv_a:items") == 0


def test_large_link_batch(backend: RedisBackend) -> None:
    with open_store(backend) as storage:
        pairs = [(f"msg_{n:05d}", T0 + timedelta(microseconds=n)) for n in range(5000)]
        storage.items.link_items("conv_big", pairs)
        assert storage.items.is_item_linked("conv_big", "msg_04999")
        storage.items.create_item(NewConversationItem("message", None, id="msg_04000"))
        # 4000 ghost links are skipped inside one script call
        assert [i.id for i in storage.items.list_items("conv_big", ListParams(5))] == ["msg_04000"]


def _records(client: Any, owner: str) -> dict[str, Any]:
    """Every key of ``owner`` (prefix cut) with its type, value and whether it has a TTL; a
    packed member's expiry instant (milliseconds apart between two writes) reads as "ttl"."""
    out: dict[str, Any] = {}
    for key in client.keys(f"{owner}:*"):
        kind, name = client.type(key), key.removeprefix(f"{owner}:")
        if kind == "hash":
            value: Any = client.hgetall(key)
        elif kind == "string":
            value = client.get(key)
        elif kind == "set":
            value = client.smembers(key)
        else:
            value = [
                (m[:12] + ("ttl" if m[12:27] != "0" * 15 else "never") + m[27:] if name.endswith(":packed") else m, s)
                for m, s in client.zrange(key, 0, -1, withscores=True)
            ]
        out[name] = (kind, value, client.ttl(key) > 0)
    return out


#: Text that a JSON argument must carry unchanged: escapes, controls, non-ASCII, separators.
ODD_TEXT = 'q" b\\ s/ \x01\x1f\x7f \u2028 é 中 🎉 {x}:%'


@pytest.mark.parametrize(
    "schema",
    [
        SchemaConfig(),
        attrs.evolve(RENAMED_SCHEMA, owner=None),  # renamed fields, status skipped
        SchemaConfig(conversation_items=TableConfig("conversation_items", skip_columns={"created_at"})),
        SchemaConfig(conversation_items=TableConfig("conversation_items", skip_columns={"role", "response_id"})),
    ],
    ids=["plain", "renamed", "no-created-at", "no-role"],
)
def test_the_generated_packer_writes_what_the_general_one_writes(schema: SchemaConfig) -> None:
    # Codec.packed is generated per schema (records._packer); records._packed is the general
    # function it falls back to for values that are not strings. Same text for every item.
    codec = Codec(schema)
    f = codec.items.fields
    items = [
        ConversationItem("msg_1", None, "message", "user", {"text": ODD_TEXT}, "completed", T0),
        ConversationItem(f"fc_{ODD_TEXT}", "resp_9", "function_call", ODD_TEXT, ODD_TEXT, None, T0),
        ConversationItem("%msg", ODD_TEXT, "", None, None, ODD_TEXT, T0),
    ]
    for item in items:
        fields = codec.item_fields(item, {})
        assert codec.packed(item.id, fields) == _packed(f, item.id, fields)
        assert json.loads(codec.packed(item.id, fields))[0] == item.id
    odd: dict[str, Any] = dict.fromkeys(fields, 5)  # not strings: the general function's path
    assert codec.packed("x", odd) == _packed(f, "x", odd)
    assert codec.packed("x", {}) == _packed(f, "x", {}) == '["x",null,null,null,null,null,null]'


@pytest.mark.parametrize(
    ("schema", "retention"),
    [
        (SchemaConfig(), None),
        (SchemaConfig(), 2),
        (attrs.evolve(RENAMED_SCHEMA, owner=None), None),  # renamed fields, status skipped
        (SchemaConfig(conversation_items=TableConfig("conversation_items", skip_columns={"created_at"})), 2),
    ],
    ids=["plain", "retention", "renamed", "no-created-at"],
)
def test_append_items_writes_what_create_item_and_link_items_write(
    backend: RedisBackend, client: Any, monkeypatch: pytest.MonkeyPatch, schema: SchemaConfig, retention: int | None
) -> None:
    # Every record and index an append writes (one script, its items in one JSON argument) is
    # the one create_item + link_items write for the same items, in both owners' key spaces.
    monkeypatch.setattr("datacon.backends.redis.store.utc_now", lambda: T0)
    monkeypatch.setattr("datacon.backends.created.utc_now", lambda: T0)
    monkeypatch.setattr("datacon.backends.redis.records.utc_now", lambda: T0)  # a skipped created_at
    items = [
        NewConversationItem("message", {"text": ODD_TEXT, "n": [1, 2.5, None, True]}, id="msg_1", role="user"),
        NewConversationItem("function_call", ODD_TEXT, id=f"fc_{ODD_TEXT}", status="completed", response_id="resp_9"),
        NewConversationItem("message", None, id="%msg", role=ODD_TEXT, status=ODD_TEXT),
        NewConversationItem("reasoning", [], id="rs_é中"),
    ]
    with open_store(backend, attrs.evolve(schema, owner="a"), retention_days=retention) as storage:
        appended = storage.items.append_items("conv_1", items, T0)
        read = [storage.items.get_item(i.id) for i in appended]
        assert read == appended
        assert storage.items.list_items("conv_1", ListParams(10)) == appended
    with open_store(backend, attrs.evolve(schema, owner="b"), retention_days=retention) as storage:
        created = [storage.items.create_item(new) for new in items]
        storage.items.link_items("conv_1", [(item.id, T0) for item in created])
        assert [storage.items.get_item(i.id) for i in created] == read
        assert storage.items.list_items("conv_1", ListParams(10)) == read
    records = _records(client, "a")
    assert records == _records(client, "b")
    # Per item its hash, packed copy and linkers; the conversation's links, sequences and
    # packed set; the layout marker, and the created_at index unless that column is skipped.
    indexed = schema.conversation_items.is_skipped("created_at") is False
    assert len(records) == 4 * 3 + 4 + indexed


def test_large_append_batch(backend: RedisBackend, client: Any) -> None:
    # More items than one command of the script takes (batched by 1000 arguments).
    with open_store(backend) as storage:
        ids = [f"msg_{n:04d}" for n in range(1200)]
        new = [NewConversationItem("message", {"n": n}, id=i) for n, i in enumerate(ids)]
        storage.items.append_items("conv_big", new)
        assert [i.id for i in storage.items.list_items("conv_big", ListParams(2000))] == ids
        assert [i.id for i in storage.items.list_items("conv_big", ListParams(3, SortOrder.DESC))] == ids[:-4:-1]
        assert client.zcard("conversation:conv_big:packed") == client.zcard("items:created") == 1200
        assert client.hget("link_seq:conv_big", "") == "1200"
        assert client.hget("link_seq:conv_big", "msg_1199") == "1200"
        assert client.exists(*(f"item_packed:{i}" for i in ids)) == 1200
        # The last of 1200 is linked already: nothing is written, and the error names it.
        storage.items.link_item("conv_big2", "msg_x1199", T0)
        more = [NewConversationItem("message", None, id=f"msg_x{n}") for n in range(1200)]
        with pytest.raises(ConflictError, match="msg_x1199 is already linked"):
            storage.items.append_items("conv_big2", more)
        assert client.exists(*(f"item:msg_x{n}" for n in range(1200))) == 0
        assert client.zcard("conversation:conv_big2:items") == 1


def test_append_makes_a_linkers_set_left_with_a_ttl_persistent(backend: RedisBackend, client: Any) -> None:
    # An item's linkers set gets the TTL of its latest link, so it can outlive the item's hash:
    # an item of the same id appended without retention_days must not leave it to expire.
    client.sadd("item_links:msg_again", "conv_old")
    client.expire("item_links:msg_again", 1000)
    with open_store(backend, retention_days=None) as storage:
        new = [NewConversationItem("message", None, id=i) for i in ("msg_other", "msg_again")]
        storage.items.append_items("conv_new", new)
    assert client.smembers("item_links:msg_again") == {"conv_old", "conv_new"}
    assert client.ttl("item_links:msg_again") == client.ttl("item_links:msg_other") == -1


def test_append_refusal_names_the_first_item_in_order(backend: RedisBackend) -> None:
    # Every item is checked in one command per kind; a refusal names the first bad one in order.
    with open_store(backend) as storage:
        storage.items.create_item(NewConversationItem("message", None, id="msg_exists"))
        storage.items.link_item("conv_r", "msg_linked", T0)
        new = [NewConversationItem("message", None, id=i) for i in ("msg_ok", "msg_linked", "msg_exists")]
        with pytest.raises(ConflictError, match="msg_linked is already linked"):
            storage.items.append_items("conv_r", new)
        with pytest.raises(ConflictError, match="msg_exists already exists"):
            storage.items.append_items("conv_r", new[::-1])
        raw = storage.raw.items  # without the guard: a repeated id is refused by the script
        with pytest.raises(ConflictError, match="msg_twice already exists"):
            raw.append_items("conv_r", [NewConversationItem("message", None, id="msg_twice")] * 2)
        assert storage.items.get_item("msg_ok") is None
        assert storage.items.get_item("msg_twice") is None


def test_duplicate_create_keeps_the_first_record_and_its_ttl(backend: RedisBackend, client: Any) -> None:
    with open_store(backend, retention_days=5) as storage:
        storage.conversations.create_conversation(NewConversation(id="conv_d", metadata={"n": 1}))
        client.expire("conversation:conv_d", 77)
        with pytest.raises(ConflictError):
            storage.conversations.create_conversation(NewConversation(id="conv_d", metadata={"n": 2}))
        storage.responses.store_response(StoredResponse(id="resp_d", safety_identifier="u"))
        with pytest.raises(ConflictError):
            storage.responses.store_response(StoredResponse(id="resp_d", safety_identifier="v"))
    assert client.hget("conversation:conv_d", "metadata") == '{"n":1}'
    assert 0 < client.ttl("conversation:conv_d") <= 77
    assert client.exists("safety:v:responses") == 0


def test_identifier_delete_counts_only_live_responses(backend: RedisBackend, client: Any) -> None:
    with open_store(backend) as storage:
        ids = [storage.responses.store_response(StoredResponse(safety_identifier="u")) for _ in range(3)]
        client.delete(f"response:{ids[0]}")  # as if it had expired
        assert [r.id for r in storage.responses.list_identifier_responses("u")] == sorted(ids[1:], reverse=True)
        # A member whose id was re-stored under another identifier is not that identifier's to delete.
        client.delete(f"response:{ids[1]}")
        storage.responses.store_response(StoredResponse(id=ids[1], safety_identifier="w"))
        assert [r.id for r in storage.responses.list_identifier_responses("u")] == [ids[2]]
        assert storage.responses.delete_identifier_responses("u") == 1
        assert storage.responses.get_response(ids[1]) is not None
        assert client.exists("safety:u:responses") == 0


def test_delete_response_leaves_its_identifier_set(backend: RedisBackend, client: Any) -> None:
    with open_store(backend) as storage:
        first = storage.responses.store_response(StoredResponse(safety_identifier="u"))
        second = storage.responses.store_response(StoredResponse(safety_identifier="u"))
        storage.responses.delete_response(first)
        assert client.zrange("safety:u:responses", 0, -1) == [second]
        storage.responses.delete_response(second)
        assert client.exists("safety:u:responses") == 0


# Round trips


@contextmanager
def commands_sent(backend: RedisBackend) -> Iterator[list[str]]:
    """Top-level commands the server receives inside the block (MONITOR; script internals excluded)."""
    seen: list[str] = []
    sentinel = "datacon-monitor-sentinel"
    with backend.client() as watcher, backend.client() as poker:
        poker.ping()  # connect now, so its handshake is not seen below
        with watcher.monitor() as monitor:
            yield seen
            poker.echo(sentinel)
            while True:
                command = monitor.next_command()
                if sentinel in command["command"]:
                    break
                if command["client_type"] != "lua":
                    seen.append(command["command"].split(" ")[0].upper())


def test_one_round_trip_per_operation(backend: RedisBackend) -> None:
    with open_store(backend) as storage:
        conv = storage.conversations.create_conversation(NewConversation()).id
        items = [storage.items.create_item(NewConversationItem("message", n)).id for n in range(30)]
        storage.items.link_items(conv, [(item, T0 + timedelta(seconds=n)) for n, item in enumerate(items)])
        storage.items.link_item(conv, "msg_ghost", T0 + timedelta(seconds=3, microseconds=1))
        prev = None
        for _ in range(20):
            prev = storage.responses.store_response(StoredResponse(previous_response_id=prev, safety_identifier="u"))
        assert prev is not None
        # Warm up: connect, and load every script once.
        storage.items.list_items(conv, ListParams(1))
        storage.items.list_items(conv, ListParams(1, SortOrder.ASC, items[0]))
        storage.responses.get_response_chain(prev)
        storage.responses.list_identifier_responses("u")
        storage.conversations.delete_conversation("conv_absent")
        storage.conversations.list_conversations(ListParams(1))

        checks: list[tuple[Callable[[], object], list[str]]] = [
            (lambda: storage.items.list_items(conv, ListParams(10, SortOrder.DESC, items[20])), ["EVALSHA"]),
            # A first page: the page script's head and the packed set's range in one MULTI,
            # sent as one write (test_a_first_page_is_one_write_and_reads_what_the_script_reads).
            (lambda: storage.items.list_items(conv, ListParams(25)), ["MULTI", "EVALSHA", "ZRANGE", "EXEC"]),
            (lambda: storage.items.list_items(conv, ListParams(60, SortOrder.DESC)), FIRST_PAGE_DESC),
            (lambda: storage.responses.get_response_chain(prev), ["EVALSHA"]),
            (lambda: storage.responses.list_identifier_responses("u", 5), ["EVALSHA"]),
            (lambda: storage.items.link_items(conv, [("msg_n1", T0), ("msg_n2", T0)]), ["EVALSHA"]),
            (lambda: storage.items.get_item(items[0]), ["HGETALL"]),
            (lambda: storage.conversations.list_conversations(ListParams(5)), ["EVALSHA"]),
            (lambda: storage.conversations.delete_conversation(conv), ["EVALSHA"]),
        ]
        for call, expected in checks:
            with commands_sent(backend) as seen:
                result = call()
            assert seen == expected, (result, seen)
        assert len(storage.responses.get_response_chain(prev)) == 20


FIRST_PAGE_DESC = ["MULTI", "EVALSHA", "ZREVRANGE", "EXEC"]


@contextmanager
def instrumented(client: Any = None) -> Iterator[None]:
    """The OpenTelemetry redis instrumentor on every client (or on ``client`` alone)."""
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    instrumentor = RedisInstrumentor()
    if client is None:
        instrumentor.instrument(skip_dep_check=True)
    else:
        RedisInstrumentor.instrument_client(client)
    try:
        yield
    finally:
        if client is None:
            instrumentor.uninstrument()
        else:
            RedisInstrumentor.uninstrument_client(client)


def first_pages(storage: Storage, conv: str) -> list[list[str]]:
    """First pages of every length and order, as item ids."""
    return [
        [i.id for i in storage.items.list_items(conv, ListParams(limit, order))]
        for limit in (1, 3, 40, 41, 500)
        for order in SortOrder
    ]


@pytest.mark.parametrize("complete", [True, False], ids=["packed", "incomplete"])
def test_a_first_page_is_one_write_and_reads_what_the_script_reads(
    backend: RedisBackend, client: Any, monkeypatch: pytest.MonkeyPatch, complete: bool
) -> None:
    with open_store(backend) as storage:
        conv = storage.conversations.create_conversation(NewConversation()).id
        storage.items.append_items(conv, [NewConversationItem("message", [n], role="user") for n in range(45)])
        if not complete:  # a link without a packed member (upstream's): the page script answers
            storage.items.link_item(conv, "msg_ghost", T0)
            client.hset("item:msg_ghost", mapping={"content": "7", "created_at": T0.isoformat()})
        expected = first_pages(storage, conv)
        with instrumented():  # through the client's commands: LIST_FIRST, or the pipeline's MULTI
            with commands_sent(backend) as seen:
                assert first_pages(storage, conv) == expected
            assert seen[0] == "EVALSHA", seen  # LIST_FIRST (1 to 40 items) ...
            transaction = seen[-6:] if complete else seen[-7:-1]  # then the page script
            assert transaction == ["MULTI", "ZCARD", "ZCARD", "TIME", "ZREVRANGE", "EXEC"], seen
        with instrumented(raw_store(storage).client):  # on the instance alone
            assert first_pages(storage, conv) == expected
        assert ("msg_ghost" in expected[-1]) is not complete
        assert len(expected[-1]) == 45 + (not complete)
        # Uninstrumented: one transaction per page, sent in one write (one buffer: the
        # connection sends each buffer it is given by a system call of its own).
        import redis

        writes: list[int] = []
        send: Any = redis.connection.AbstractConnection.send_packed_command

        def counted(self: Any, command: Any, check_health: bool = True) -> None:
            writes.append(1 if isinstance(command, (bytes, str)) else len(command))
            send(self, command, check_health)

        with commands_sent(backend) as seen:
            monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
            pages = [storage.items.list_items(conv, ListParams(7, SortOrder.DESC)) for _ in range(2)]
            monkeypatch.undo()
        assert writes == [1, 1]
        assert seen == FIRST_PAGE_DESC * 2
        assert [i.id for i in pages[0]] == [i.id for i in pages[1]] == expected[5][:7]  # 40, descending


def watch_commands(store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Wrap the store client's ``execute_command`` as an instrumentor does; the names of the
    commands it then sees (until ``monkeypatch.undo()``)."""
    calls: list[str] = []
    execute = store.client.execute_command

    def watched(*args: Any, **options: Any) -> Any:
        calls.append(str(args[0]))
        return execute(*args, **options)

    monkeypatch.setattr(store.client, "execute_command", watched)
    return calls


def test_an_append_is_one_write_unless_the_client_is_watched(
    backend: RedisBackend, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    with open_store(backend, pool_max=1) as storage:
        store = raw_store(storage)
        turn = [NewConversationItem("message", [n]) for n in range(4)]
        storage.items.append_items("conv_w", turn[:1])  # connected, the script loaded
        writes: list[int] = []
        send: Any = redis.connection.AbstractConnection.send_packed_command

        def counted(self: Any, command: Any, check_health: bool = True) -> None:
            writes.append(1 if isinstance(command, (bytes, str)) else len(command))  # buffers
            send(self, command, check_health)

        parsed: list[str] = []  # replies read through the client (execute_command)
        parse: Any = redis.Redis.parse_response

        def parse_counted(self: Any, connection: Any, command_name: str, **options: Any) -> Any:
            parsed.append(command_name)
            return parse(self, connection, command_name, **options)

        with commands_sent(backend) as seen:  # sent by itself on a pooled connection
            monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
            monkeypatch.setattr(redis.Redis, "parse_response", parse_counted)
            first = storage.items.append_items("conv_w", turn[1:])
            monkeypatch.undo()
        assert (writes, seen, parsed) == ([1], ["EVALSHA"], [])
        # A client whose commands something watches (an instrumentor wraps execute_command)
        # gets the append through its execute_command.
        calls = watch_commands(store, monkeypatch)
        second = storage.items.append_items("conv_w", [NewConversationItem("message", [n]) for n in range(3)])
        monkeypatch.undo()
        assert calls == ["EVALSHA"]
        # A refusal, a script error, a flushed script cache, a dropped connection: each call
        # answers as through the client and the connection stays in step.
        with pytest.raises(ConflictError, match="already exists"):
            storage.items.append_items("conv_w", [NewConversationItem("message", [], id=first[0].id)])
        client.set("conversation:conv_x:items", "not a sorted set")
        with pytest.raises(BackendError, match="WRONGTYPE"):
            storage.items.append_items("conv_x", [NewConversationItem("message", [])])
        client.script_flush()
        client.client_kill_filter(_type="normal", skipme=True)
        third = storage.items.append_items("conv_w", [NewConversationItem("message", [])])
        listed = [i.id for i in storage.items.list_items("conv_w", ListParams(20))]
        assert listed[1:] == [i.id for i in first + second + third]


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_get_is_one_command_by_itself_unless_the_client_is_watched(
    backend: RedisBackend, client: Any, monkeypatch: pytest.MonkeyPatch, protocol: int
) -> None:
    """get_response, get_item and get_conversation send HGETALL by itself on a pooled
    connection (RESP2's flat reply and RESP3's map, redis-py 8's default, read alike); a watched client gets it
    through its execute_command; a missing hash, a wrong type and a dropped connection answer
    as through the client."""
    import redis

    url = f"{backend.url}{'&' if '?' in backend.url else '?'}protocol={protocol}"
    config = attrs.evolve(backend.redis_config(pool_max=1), url=url)
    with create_storage(StorageFactoryConfig(backend="redis", redis=config)) as storage:
        store = raw_store(storage)
        stored = StoredResponse(id="resp_g", input=[{"k": "é"}], model="m", safety_identifier="u")
        storage.responses.store_response(stored)
        item = storage.items.create_item(NewConversationItem("message", ["x"], id="msg_g"))
        conv = storage.conversations.create_conversation(NewConversation(id="conv_g", metadata={"a": "1"}))
        parsed: list[str] = []
        parse: Any = redis.Redis.parse_response

        def parse_counted(self: Any, connection: Any, command_name: str, **options: Any) -> Any:
            parsed.append(command_name)
            return parse(self, connection, command_name, **options)

        with commands_sent(backend) as seen:
            monkeypatch.setattr(redis.Redis, "parse_response", parse_counted)
            got = (
                storage.responses.get_response("resp_g"),
                storage.items.get_item("msg_g"),
                storage.conversations.get_conversation("conv_g"),
                storage.responses.get_response("resp_missing"),
            )
            monkeypatch.undo()
        assert (seen, parsed) == (["HGETALL"] * 4, [])
        response = got[0]
        assert response is not None
        assert (response.id, response.input, response.model, response.safety_identifier) == (
            "resp_g",
            [{"k": "é"}],
            "m",
            "u",
        )
        assert (got[1], got[2], got[3]) == (item, conv, None)
        calls = watch_commands(store, monkeypatch)
        assert storage.responses.get_response("resp_g") == got[0]
        monkeypatch.undo()
        assert calls == ["HGETALL"]
        client.set("response:resp_str", "not a hash")
        with pytest.raises(BackendError, match="WRONGTYPE"):
            storage.responses.get_response("resp_str")
        client.client_kill_filter(_type="normal", skipme=True)
        assert storage.responses.get_response("resp_g") == got[0]  # reconnected, in step


def test_a_command_sent_by_itself_is_packed_as_redis_py_packs_it(backend: RedisBackend) -> None:
    """One buffer with the bytes of redis-py's packer: hiredis' (one chunk), and redis-py's own
    (which cuts a long argument into chunks of its own)."""
    import redis

    from datacon.backends.redis.store import _pack

    with open_store(backend) as storage:
        conn = raw_store(storage).pool.make_connection()
        command = ("EVALSHA", "0" * 40, 2, "item:é", "中 🎉", "", 17, ODD_TEXT)
        assert _pack(conn, command) == b"".join(conn.pack_command(*command))
        assert len(_pack(conn, command)) > 60
        conn._command_packer = redis.connection.PythonRespSerializer(conn._buffer_cutoff, conn.encoder.encode)
        long = (*command, "x" * 10_000)
        assert len(conn.pack_command(*long)) > 1  # redis-py's own chunks
        assert _pack(conn, long) == b"".join(conn.pack_command(*long))
        assert _pack(conn, ("PING",)) == b"*1\r\n$4\r\nPING\r\n"


def test_a_first_page_error_leaves_the_connection_usable(backend: RedisBackend, client: Any) -> None:
    with open_store(backend, pool_max=1) as storage:
        conv = storage.conversations.create_conversation(NewConversation()).id
        storage.items.append_items(conv, [NewConversationItem("message", [1])])
        client.set("conversation:conv_w:items", "not a sorted set")
        for _ in range(2):  # an error inside the transaction's replies: the connection stays in step
            with pytest.raises(BackendError, match="WRONGTYPE") as info:
                storage.items.list_items("conv_w", ListParams(5))
            assert not isinstance(info.value, BackendUnavailableError)
            assert len(storage.items.list_items(conv, ListParams(5))) == 1
        # A dropped connection is made again (the connection's retry policy, as for any command).
        client.client_kill_filter(_type="normal", skipme=True)
        assert len(storage.items.list_items(conv, ListParams(5))) == 1


def test_a_refused_first_page_command_is_a_backend_error(backend: RedisBackend, client: Any) -> None:
    # A user that may not run ZRANGE: the server refuses it when it is queued (EXECABORT
    # follows); the connection, its replies left unread, is dropped, the next call works.
    try:
        client.acl_setuser(
            "dc_nozrange", enabled=True, passwords=["+dc-nozrange-pw"], keys=["*"], commands=["+@all", "-zrange"]
        )
    except Exception as exc:  # a server without ACLs (DATACON_TEST_REDIS_URL)
        pytest.skip(f"no ACL on the server under test: {exc}")
    try:
        url = backend.url.replace(f":{PASSWORD}@", "dc_nozrange:dc-nozrange-pw@")
        if url == backend.url:
            pytest.skip("the server under test has no password (DATACON_TEST_REDIS_URL)")
        config = StorageFactoryConfig(backend="redis", redis=backend.redis_config().__class__(url=url, pool_max=1))
        with open_store(backend) as writer:  # the scripts that write use ZRANGE too
            conv = writer.conversations.create_conversation(NewConversation()).id
            writer.items.append_items(conv, [NewConversationItem("message", [1])])
        with create_storage(config) as storage:
            for _ in range(2):
                with pytest.raises(BackendError, match=r"NOPERM|no permissions") as info:
                    storage.items.list_items(conv, ListParams(5))
                assert "dc-nozrange-pw" not in str(info.value)
                assert storage.conversations.get_conversation(conv) is not None
            assert len(storage.items.list_items(conv, ListParams(5, SortOrder.DESC))) == 1  # ZREVRANGE
    finally:
        client.acl_deluser("dc_nozrange")


def test_scripts_reload_after_a_script_flush(backend: RedisBackend, client: Any) -> None:
    with open_store(backend) as storage:
        storage.items.link_item("conv_f", "msg_f", T0)
        client.script_flush()
        storage.items.create_item(NewConversationItem("message", None, id="msg_f"))
        assert [i.id for i in storage.items.list_items("conv_f", ListParams(5))] == ["msg_f"]


# Connections, pool and errors


def test_pool_uses_hiredis_and_reports_stats(backend: RedisBackend) -> None:
    with open_store(backend, pool_max=3) as storage:
        pool = raw_store(storage).pool
        assert storage.max_concurrency == 3
        assert pool.max_connections == 3
        storage.conversations.get_conversation("conv_x")
        assert storage.pool_stats() == {"size": 3, "open": 1, "in_use": 0}
        connection = pool.get_connection()
        try:
            if importlib.util.find_spec("hiredis") is not None:
                assert type(connection._parser).__name__ == "_HiredisParser"
            assert storage.pool_stats()["in_use"] == 1
        finally:
            pool.release(connection)


def test_pool_exhaustion_is_a_pool_timeout(backend: RedisBackend) -> None:
    with open_store(backend, pool_max=1, pool_timeout_secs=0.2) as storage:
        pool = raw_store(storage).pool
        held = pool.get_connection()
        try:
            with pytest.raises(PoolTimeoutError, match=r"0\.2 s") as info:
                storage.conversations.get_conversation("conv_x")
            assert PASSWORD not in str(info.value)
        finally:
            pool.release(held)
        assert storage.conversations.get_conversation("conv_x") is None


def test_concurrent_threads_share_the_pool(backend: RedisBackend) -> None:
    with open_store(backend, pool_max=4) as storage:
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for k in range(25):
                    item = storage.items.create_item(NewConversationItem("message", k)).id
                    storage.items.link_item(f"conv_t{n}", item, T0 + timedelta(microseconds=k))
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert storage.pool_stats()["open"] <= 4
        for n in range(8):
            assert len(storage.items.list_items(f"conv_t{n}", ListParams(100))) == 25


def test_server_down_is_backend_unavailable(tmp_path: Path) -> None:
    server = RedisServer(redis_executable(), tmp_path)
    server.start()
    config = StorageFactoryConfig(backend="redis", redis=RedisBackend(server.url).redis_config(connect_timeout_secs=2))
    with create_storage(config) as storage:
        assert storage.conversations.get_conversation("conv_x") is None
        server.stop()
        for call in (
            lambda: storage.conversations.get_conversation("conv_x"),
            lambda: storage.conversations.create_conversation(NewConversation()),
            lambda: storage.items.list_items("conv_x", ListParams(3)),
        ):
            with pytest.raises(BackendUnavailableError) as info:
                call()
            assert PASSWORD not in str(info.value)
            assert PASSWORD not in repr(info.value)
            assert info.value.__cause__ is not None
    # start-up does not need the server (upstream: the pool is lazy)
    with create_storage(config) as storage, pytest.raises(BackendUnavailableError, match="unavailable"):
        storage.responses.get_response("resp_x")


def test_wrong_password_is_backend_unavailable_without_the_password(backend: RedisBackend) -> None:
    wrong = "not-the-password-123"
    url = backend.url.replace(PASSWORD, wrong) if PASSWORD in backend.url else None
    if url is None:
        pytest.skip("the server under test has no password (DATACON_TEST_REDIS_URL)")
    config = StorageFactoryConfig(backend="redis", redis=backend.redis_config().__class__(url=url))
    with create_storage(config) as storage, pytest.raises(BackendUnavailableError, match="authentication") as info:
        storage.conversations.get_conversation("conv_x")
    assert wrong not in str(info.value)
    assert PASSWORD not in str(info.value)


def test_wrongtype_is_a_backend_error(backend: RedisBackend, client: Any) -> None:
    client.set("conversation:conv_w:items", "not a sorted set")
    with open_store(backend) as storage, pytest.raises(BackendError, match="WRONGTYPE") as info:
        storage.items.is_item_linked("conv_w", "msg_w")
    assert not isinstance(info.value, BackendUnavailableError)


@pytest.mark.parametrize(
    "when", [datetime(1900, 1, 1, tzinfo=UTC), datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]
)
def test_extreme_datetimes_round_trip(backend: RedisBackend, client: Any, when: datetime) -> None:
    with open_store(backend) as storage:
        storage.responses.store_response(StoredResponse(id="resp_x", created_at=when, safety_identifier="u"))
        got = storage.responses.get_response("resp_x")
        assert got is not None
        assert got.created_at == when
        assert [r.id for r in storage.responses.list_identifier_responses("u")] == ["resp_x"]
    assert client.hget("response:resp_x", "created_at") == when.isoformat(timespec="microseconds")


def test_huge_limits_return_everything(backend: RedisBackend) -> None:
    with open_store(backend) as storage:
        ids = [storage.items.create_item(NewConversationItem("message", n)).id for n in range(600)]
        storage.items.link_items("conv_h", [(i, T0) for i in ids])
        for _ in range(3):
            storage.responses.store_response(StoredResponse(safety_identifier="u"))
        # The largest count datacon accepts (2**31 - 1); above it, InvalidInputError everywhere.
        assert [
            i.id for i in storage.items.list_items("conv_h", ListParams(2**31 - 1))
        ] == ids  # ties: the order linked
        assert len(storage.responses.list_identifier_responses("u", 2**31 - 1)) == 3
        with pytest.raises(InvalidInputError):
            storage.items.list_items("conv_h", ListParams(2**62))


def test_listing_sets_follow_creates_and_deletes(backend: RedisBackend, client: Any) -> None:
    """SPEC §7.5 on Redis: one set of every conversation, one per (extra column, value), kept by
    the create and delete scripts; members order as (created_at, id)."""
    schema = SchemaConfig(
        conversations=TableConfig(
            table="conversations", extra_columns={"tenant_id": ColumnDef("VARCHAR(64)", default_value="t1")}
        )
    )
    with open_store(backend, schema) as storage:
        a = storage.conversations.create_conversation(NewConversation())
        b = storage.conversations.create_conversation(NewConversation())
        every = raw_store(storage).conversations_list_key
        by_t1 = raw_store(storage).conversations_by_key("tenant_id", "t1")
        members = client.zrange(every, 0, -1)
        assert [m.split(":", 1)[1] for m in members] == [
            c.id for c in sorted([a, b], key=lambda c: (c.created_at, c.id))
        ]
        assert client.zrange(by_t1, 0, -1) == members
        assert storage.conversations.delete_conversation(a.id) is True
        assert [m.split(":", 1)[1] for m in client.zrange(every, 0, -1)] == [b.id]
        assert [m.split(":", 1)[1] for m in client.zrange(by_t1, 0, -1)] == [b.id]
        page = storage.conversations.list_conversations(ListParams(5), {"tenant_id": "t1"})
        assert [c.id for c in page.data] == [b.id]
        # A member whose hash expired is skipped, not returned half-read.
        client.delete(every.replace("conversations:list", f"conversation:{b.id}"))
        assert storage.conversations.list_conversations(ListParams(5)).data == []


def test_links_written_before_the_sequence_keep_their_order_by_item_id(backend: RedisBackend, client: Any) -> None:
    # Upstream's layout: a sorted set of links and nothing else (no sequence hash).
    with open_store(backend) as storage:
        for item_id in ("msg_c", "msg_a", "msg_b"):
            storage.items.create_item(NewConversationItem("message", [], id=item_id))
        client.zadd("conversation:conv_old:items", {"msg_c": 1.0, "msg_a": 1.0, "msg_b": 1.0, "msg_0": 0.5})
        storage.items.create_item(NewConversationItem("message", [], id="msg_0"))
        when = datetime.fromtimestamp(1e-3, UTC)  # score 1.0 (milliseconds): the old links' instant
        storage.items.append_items(
            "conv_old", [NewConversationItem("message", [], id=i) for i in ("msg_z", "msg_1")], when
        )
        order = ["msg_0", "msg_a", "msg_b", "msg_c", "msg_z", "msg_1"]
        assert [i.id for i in storage.items.list_items("conv_old", ListParams(10))] == order
        assert [i.id for i in storage.items.list_items("conv_old", ListParams(10, SortOrder.DESC))] == order[::-1]
        for limit in (1, 2, 4):  # pages cut runs of equal scores anywhere
            for direction in (SortOrder.ASC, SortOrder.DESC):
                seen: list[str] = []
                after: str | None = None
                while page := storage.items.list_items("conv_old", ListParams(limit, direction, after)):
                    seen += [i.id for i in page]
                    after = seen[-1]
                assert seen == (order if direction is SortOrder.ASC else order[::-1])
    assert client.hgetall("link_seq:conv_old") == {"": "2", "msg_z": "1", "msg_1": "2"}


def test_the_sequence_goes_with_its_links(backend: RedisBackend, client: Any) -> None:
    with open_store(backend) as storage:
        storage.items.append_items("conv_s", [NewConversationItem("message", [], id=i) for i in ("msg_b", "msg_a")], T0)
        storage.items.delete_item("conv_s", "msg_b")
        assert client.hgetall("link_seq:conv_s") == {"": "2", "msg_a": "2"}
        storage.conversations.delete_conversation("conv_s")
        assert client.exists("link_seq:conv_s") == 0
    with open_store(backend, retention_days=1) as storage:
        storage.items.append_items("conv_t", [NewConversationItem("message", [], id="msg_t")], T0)
        assert 0 < client.ttl("link_seq:conv_t") <= DAY


# Retention indexes (layout 2)


def test_unlink_items_reads_the_item_linkers_not_every_link_set(backend: RedisBackend, client: Any) -> None:
    with open_store(backend) as storage:
        for n in range(50):  # other conversations: unlink_items' cost must not grow with them
            storage.conversations.create_conversation(NewConversation(id=f"conv_{n}"))
        shared, alone = (storage.items.create_item(NewConversationItem("message", {"n": n})).id for n in (1, 2))
        storage.items.link_items("conv_1", [(shared, T0), (alone, T0)])
        storage.items.link_item("conv_2", shared, T0)
        storage.items.link_item("conv_3", shared, T0)
        storage.raw.items.unlink_items("conv_3", [shared])  # the scripts are loaded now
        with commands_sent(backend) as seen:
            assert storage.raw.items.unlink_items("conv_1", [shared, alone]) == [shared, alone]
        assert "SCAN" not in seen
        assert len(seen) == 3  # one script per link, one to delete the items left unlinked
        assert storage.items.get_item(shared) is not None
        assert storage.items.get_item(alone) is None
        assert client.smembers(f"item_links:{shared}") == {"conv_2"}
        assert client.exists(f"item_links:{alone}") == 0
        assert client.zscore("items:created", alone) is None


def test_prune_drops_index_entries_whose_record_expired(backend: RedisBackend, client: Any) -> None:
    with open_store(backend, retention_days=1) as storage:
        conv = storage.conversations.create_conversation(NewConversation()).id
        item = storage.items.create_item(NewConversationItem("message", {"n": 1})).id
        storage.items.link_item(conv, item, T0)
        response = storage.responses.store_response(StoredResponse(conversation_id=conv, safety_identifier="u"))
        for key in (f"conversation:{conv}", f"conversation:{conv}:items", f"item:{item}", f"response:{response}"):
            client.delete(key)  # as if the TTL had run out
        assert storage.prune(timedelta(0)) == PruneReport()
        assert storage.erase_identifier("u") == PruneReport()
    assert client.zcard("items:created") == client.zcard("responses:created") == 0
    assert client.zcard("conversations:list") == 0
    assert client.exists(f"item_links:{item}") == 1  # dropped when an item read meets it (below)
    with open_store(backend, retention_days=1) as storage:
        raw = storage.raw
        assert isinstance(raw, RawRedisBackend)
        assert raw.item_links([item]) == []
    assert client.exists(f"item_links:{item}") == 0
