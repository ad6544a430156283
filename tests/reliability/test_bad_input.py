"""Hostile and malformed input on every backend: a clear datacon error or a correct result, never half a write."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from datacon import (
    BeforeHookResult,
    ColumnDef,
    ListParams,
    NewConversation,
    NewConversationItem,
    RequestContext,
    SchemaConfig,
    SortOrder,
    Storage,
    StorageHook,
    StorageOperation,
    StoredResponse,
    TableConfig,
    create_storage,
)
from datacon.errors import (
    BackendError,
    ConfigError,
    ConflictError,
    DataconError,
    InvalidInputError,
)
from tests.conformance._util import at
from tests.reliability import figures
from tests.reliability._backends import backend_password
from tests.support import RENAMED_SCHEMA, BackendUnderTest

pytestmark = pytest.mark.reliability

INJECTION = "x'; DROP TABLE conversations; --"
RESP_INJECTION = "r'); DELETE FROM responses; --"
ALWAYS_TRUE = "' OR '1'='1"
RESP_SMUGGLE = "a\r\n*1\r\n$8\r\nFLUSHALL\r\n"  # a RESP command hidden in an id (Redis protocol)
LONE_SURROGATE = "bad\ud800text"
MEGABYTES = 3


@attrs.define
class World:
    """Records every case runs beside (unique per case, so no wipe is needed between cases)."""

    tag: str
    conv: str
    items: tuple[str, str]
    responses: tuple[str, str]
    ident: str

    def id(self, base: str) -> str:
        """``base`` made unique to this case (suffix, so a hostile prefix stays hostile)."""
        return f"{base}~{self.tag}"


def seed(s: Storage) -> World:
    tag = secrets.token_hex(4)
    w = World(tag, f"c-{tag}", (f"i1-{tag}", f"i2-{tag}"), (f"r1-{tag}", f"r2-{tag}"), f"u-{tag}")
    s.conversations.create_conversation(NewConversation(id=w.conv, metadata={"seed": True}))
    for index, item_id in enumerate(w.items):
        s.items.create_item(NewConversationItem("message", [{"n": index}], id=item_id, role="user"))
        s.items.link_item(w.conv, item_id, at(index))
    s.responses.store_response(StoredResponse(id=w.responses[0], created_at=at(0), safety_identifier=w.ident))
    s.responses.store_response(
        StoredResponse(
            id=w.responses[1], previous_response_id=w.responses[0], created_at=at(1), safety_identifier=w.ident
        )
    )
    return w


def check_seed(s: Storage, w: World) -> None:
    """The seed is exactly as written: a hostile call next to it damaged nothing."""
    conv = s.conversations.get_conversation(w.conv)
    assert conv is not None
    assert conv.metadata == {"seed": True}
    assert [i.id for i in s.items.list_items(w.conv, ListParams(10))] == list(w.items)
    assert [r.id for r in s.responses.get_response_chain(w.responses[1])] == list(w.responses)
    assert [r.id for r in s.responses.list_identifier_responses(w.ident)] == [w.responses[1], w.responses[0]]


Act = Callable[[Storage, World], object]
After = Callable[[Storage, World, object], None]


@attrs.define(frozen=True)
class Hostile:
    """One hostile input and its expected outcome.

    ``raises``: the error the call must raise (``None``: it must succeed). ``may_refuse``: for
    inputs a backend may legitimately refuse, the error it may raise instead of succeeding.
    ``after`` runs on the outcome (the result, or the exception) and checks the store: a
    success is read back correctly, an error left nothing behind.
    """

    name: str
    act: Act
    raises: type[DataconError] | None
    after: After
    may_refuse: type[DataconError] | None = None


CASES: list[Hostile] = []


def hostile(
    name: str, raises: type[DataconError] | None = None, may_refuse: type[DataconError] | None = None
) -> Callable[[Act], Act]:
    """Register ``act`` as a case; the ``after`` check is attached with :func:`then`."""

    def register(act: Act) -> Act:
        CASES.append(Hostile(name, act, raises, _no_check, may_refuse))
        return act

    return register


def then(check: After) -> None:
    """Attach ``check`` to the case registered last."""
    CASES[-1] = attrs.evolve(CASES[-1], after=check)


def _no_check(s: Storage, w: World, outcome: object) -> None:
    raise AssertionError("every case must say how the store is checked afterwards")


def nothing(s: Storage, w: World, outcome: object) -> None:
    """The call was refused before any I/O; the seed check that always follows is the verification."""
    assert isinstance(outcome, DataconError)


def conv_absent(make: Callable[[World], str]) -> After:
    def check(s: Storage, w: World, outcome: object) -> None:
        assert s.conversations.get_conversation(make(w)) is None

    return check


def item_absent(make: Callable[[World], str]) -> After:
    def check(s: Storage, w: World, outcome: object) -> None:
        assert s.items.get_item(make(w)) is None

    return check


def response_absent(make: Callable[[World], str]) -> After:
    def check(s: Storage, w: World, outcome: object) -> None:
        assert s.responses.get_response(make(w)) is None

    return check


def conv_round_trip(make: Callable[[World], str], metadata: Any) -> After:
    def check(s: Storage, w: World, outcome: object) -> None:
        if isinstance(outcome, DataconError):
            assert s.conversations.get_conversation(make(w)) is None
            return
        got = s.conversations.get_conversation(make(w))
        assert got is not None
        assert got.id == make(w)
        assert got.metadata == metadata

    return check


def item_round_trip(make: Callable[[World], str], content: Any, **fields: Any) -> After:
    def check(s: Storage, w: World, outcome: object) -> None:
        if isinstance(outcome, DataconError):
            assert s.items.get_item(make(w)) is None
            return
        got = s.items.get_item(make(w))
        assert got is not None
        assert got.id == make(w)
        assert got.content == content
        for name, value in fields.items():
            assert getattr(got, name) == value

    return check


def response_round_trip(make: Callable[[World], str], **fields: Any) -> After:
    def check(s: Storage, w: World, outcome: object) -> None:
        if isinstance(outcome, DataconError):
            assert s.responses.get_response(make(w)) is None
            return
        got = s.responses.get_response(make(w))
        assert got is not None
        assert got.id == make(w)
        for name, value in fields.items():
            assert getattr(got, name) == value

    return check


def not_linked(*items: Callable[[World], str]) -> After:
    def check(s: Storage, w: World, outcome: object) -> None:
        for make in items:
            assert not s.items.is_item_linked(w.conv, make(w))
        assert [i.id for i in s.items.list_items(w.conv, ListParams(10))] == list(w.items)

    return check


def equals(expected: Callable[[World], object]) -> After:
    def check(s: Storage, w: World, outcome: object) -> None:
        assert outcome == expected(w)

    return check


def list_ids(outcome: object) -> list[str]:
    assert isinstance(outcome, list)
    return [record.id for record in outcome]


def lists(expected: Callable[[World], list[str]]) -> After:
    """The call returned exactly these records, in this order."""

    def check(s: Storage, w: World, outcome: object) -> None:
        assert list_ids(outcome) == expected(w)

    return check


def assert_empty(value: list[Any]) -> None:
    assert value == []


def _new_item(s: Storage, w: World, base: str, content: Any = "x", **fields: Any) -> object:
    return s.items.create_item(
        NewConversationItem(fields.pop("item_type", "message"), content, id=w.id(base), **fields)
    )


# --- SQL / Redis injection through ids, identifiers and cursors -------------------------------

hostile("sql injection as conversation id")(
    lambda s, w: s.conversations.create_conversation(NewConversation(id=w.id(INJECTION), metadata={"a": 1}))
)
then(conv_round_trip(lambda w: w.id(INJECTION), {"a": 1}))

hostile("always-true predicate as conversation id is just a miss")(
    lambda s, w: s.conversations.get_conversation(ALWAYS_TRUE)
)
then(equals(lambda w: None))

hostile("glob '*' as conversation id is just a miss")(lambda s, w: s.conversations.get_conversation("*"))
then(equals(lambda w: None))

hostile("always-true delete of a conversation deletes nothing")(
    lambda s, w: s.conversations.delete_conversation(ALWAYS_TRUE)
)
then(equals(lambda w: False))

hostile("sql injection as item id")(lambda s, w: _new_item(s, w, "it' OR 1=1 --", {"k": "v"}))
then(item_round_trip(lambda w: w.id("it' OR 1=1 --"), {"k": "v"}))

hostile("sql injection as item role and status")(
    lambda s, w: _new_item(s, w, "role", "x", role="'; DROP TABLE x;--", status="1' OR '1'='1")
)
then(item_round_trip(lambda w: w.id("role"), "x", role="'; DROP TABLE x;--", status="1' OR '1'='1"))


def _link_injected(s: Storage, w: World) -> object:
    conv = w.id(INJECTION)
    s.conversations.create_conversation(NewConversation(id=conv))
    s.items.link_item(conv, w.items[0], at(5))
    return s.items.list_items(conv, ListParams(10))


hostile("sql injection as the conversation of a link")(_link_injected)
then(lists(lambda w: [w.items[0]]))

hostile("sql injection as response id")(
    lambda s, w: s.responses.store_response(StoredResponse(id=w.id(RESP_INJECTION), created_at=at(3)))
)
then(response_round_trip(lambda w: w.id(RESP_INJECTION), created_at=at(3)))

hostile("sql injection in previous_response_id, model and conversation_id")(
    lambda s, w: s.responses.store_response(
        StoredResponse(
            id=w.id("inj"), previous_response_id=ALWAYS_TRUE, model=INJECTION, conversation_id=RESP_INJECTION
        )
    )
)
then(
    response_round_trip(
        lambda w: w.id("inj"), previous_response_id=ALWAYS_TRUE, model=INJECTION, conversation_id=RESP_INJECTION
    )
)

hostile("always-true predicate as safety identifier lists nothing")(
    lambda s, w: s.responses.list_identifier_responses(ALWAYS_TRUE)
)
then(equals(lambda w: []))

hostile("LIKE wildcard '%' as identifier deletes nothing")(lambda s, w: s.responses.delete_identifier_responses("%"))
then(equals(lambda w: 0))

hostile("glob '*' as identifier deletes nothing")(lambda s, w: s.responses.delete_identifier_responses("*"))
then(equals(lambda w: 0))

hostile("sql injection as list cursor is an unknown cursor")(
    lambda s, w: s.items.list_items(w.conv, ListParams(10, after=ALWAYS_TRUE))
)
then(lists(lambda w: list(w.items)))

hostile("Redis key syntax in ids (':', '{', '*', '?')")(
    lambda s, w: s.conversations.create_conversation(NewConversation(id=w.id("conv:{x}:*:?[a]"), metadata={"k": ":"}))
)
then(conv_round_trip(lambda w: w.id("conv:{x}:*:?[a]"), {"k": ":"}))

hostile("RESP protocol smuggled in an id")(lambda s, w: _new_item(s, w, RESP_SMUGGLE, "resp"))
then(item_round_trip(lambda w: w.id(RESP_SMUGGLE), "resp"))

# --- NUL bytes and lone surrogates -----------------------------------------------------------

hostile("NUL in a conversation id", InvalidInputError)(
    lambda s, w: s.conversations.create_conversation(NewConversation(id="a\x00b"))
)
then(nothing)

hostile("NUL in an item role", InvalidInputError)(lambda s, w: _new_item(s, w, "nulrole", role="us\x00er"))
then(item_absent(lambda w: w.id("nulrole")))

hostile("NUL in an item type", InvalidInputError)(lambda s, w: _new_item(s, w, "nultype", item_type="mess\x00age"))
then(item_absent(lambda w: w.id("nultype")))

hostile("NUL in a safety identifier", InvalidInputError)(
    lambda s, w: s.responses.store_response(StoredResponse(id=w.id("nulident"), safety_identifier="u\x00"))
)
then(response_absent(lambda w: w.id("nulident")))

hostile("NUL in a list cursor", InvalidInputError)(lambda s, w: s.items.list_items(w.conv, ListParams(5, after="\x00")))
then(nothing)

# JSON can carry U+0000 ("\u0000"); PostgreSQL's jsonb cannot, so a backend may refuse it clearly.
hostile("NUL inside metadata text", may_refuse=InvalidInputError)(
    lambda s, w: s.conversations.create_conversation(NewConversation(id=w.id("nulmeta"), metadata={"k": "a\x00b"}))
)
then(conv_round_trip(lambda w: w.id("nulmeta"), {"k": "a\x00b"}))

hostile("NUL inside a metadata key", may_refuse=InvalidInputError)(
    lambda s, w: s.conversations.create_conversation(NewConversation(id=w.id("nulkey"), metadata={"\x00": 1}))
)
then(conv_round_trip(lambda w: w.id("nulkey"), {"\x00": 1}))

hostile("NUL inside item content", may_refuse=InvalidInputError)(lambda s, w: _new_item(s, w, "nulcontent", ["\x00"]))
then(item_round_trip(lambda w: w.id("nulcontent"), ["\x00"]))

hostile("lone surrogate in a conversation id", InvalidInputError)(
    lambda s, w: s.conversations.create_conversation(NewConversation(id=LONE_SURROGATE))
)
then(nothing)

hostile("lone surrogate in metadata", InvalidInputError)(
    lambda s, w: s.conversations.create_conversation(
        NewConversation(id=w.id("surmeta"), metadata={"k": LONE_SURROGATE})
    )
)
then(conv_absent(lambda w: w.id("surmeta")))

hostile("lone surrogate in item content", InvalidInputError)(
    lambda s, w: _new_item(s, w, "surcontent", [LONE_SURROGATE])
)
then(item_absent(lambda w: w.id("surcontent")))

hostile("lone surrogate in a response's input", InvalidInputError)(
    lambda s, w: s.responses.store_response(StoredResponse(id=w.id("surinput"), input=[{"text": LONE_SURROGATE}]))
)
then(response_absent(lambda w: w.id("surinput")))

hostile("lone surrogate in a model name", InvalidInputError)(
    lambda s, w: s.responses.store_response(StoredResponse(id=w.id("surmodel"), model=LONE_SURROGATE))
)
then(response_absent(lambda w: w.id("surmodel")))

hostile("lone surrogate as a list cursor", InvalidInputError)(
    lambda s, w: s.items.list_items(w.conv, ListParams(5, after="\udfff"))
)
then(nothing)

hostile("update with surrogate metadata leaves the old metadata", InvalidInputError)(
    lambda s, w: s.conversations.update_conversation(w.conv, {"k": LONE_SURROGATE})
)
then(nothing)  # check_seed verifies the metadata is still {"seed": True}

# --- Content that is not JSON ----------------------------------------------------------------

hostile("an object() as item content", InvalidInputError)(lambda s, w: _new_item(s, w, "obj", object()))
then(item_absent(lambda w: w.id("obj")))

hostile("a set in metadata", InvalidInputError)(
    lambda s, w: s.conversations.create_conversation(NewConversation(id=w.id("set"), metadata={"s": {1, 2}}))
)
then(conv_absent(lambda w: w.id("set")))

hostile("bytes as item content", InvalidInputError)(lambda s, w: _new_item(s, w, "bytes", b"\x00\xff"))
then(item_absent(lambda w: w.id("bytes")))

hostile("NaN in item content", InvalidInputError)(lambda s, w: _new_item(s, w, "nan", [float("nan")]))
then(item_absent(lambda w: w.id("nan")))

hostile("infinity in raw_response", InvalidInputError)(
    lambda s, w: s.responses.store_response(StoredResponse(id=w.id("inf"), raw_response={"x": float("inf")}))
)
then(response_absent(lambda w: w.id("inf")))

hostile("a datetime inside item content", InvalidInputError)(lambda s, w: _new_item(s, w, "dtcontent", {"at": at(0)}))
then(item_absent(lambda w: w.id("dtcontent")))


def _circular(s: Storage, w: World) -> object:
    loop: list[object] = []
    loop.append(loop)
    return _new_item(s, w, "loop", loop)


hostile("a self-containing list as content", InvalidInputError)(_circular)
then(item_absent(lambda w: w.id("loop")))

hostile("a tuple as a metadata key", InvalidInputError)(
    lambda s, w: s.conversations.create_conversation(NewConversation(id=w.id("tuplekey"), metadata={(1, 2): "v"}))  # type: ignore[dict-item]  # deliberately the wrong type
)
then(conv_absent(lambda w: w.id("tuplekey")))


def _nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


hostile("content nested 100,000 levels deep", InvalidInputError)(lambda s, w: _new_item(s, w, "deep", _nested(100_000)))
then(item_absent(lambda w: w.id("deep")))

hostile("content nested 200 levels deep round-trips")(lambda s, w: _new_item(s, w, "deep200", _nested(200)))
then(item_round_trip(lambda w: w.id("deep200"), _nested(200)))

BIG_TEXT = "ü€x" * (MEGABYTES * 1024 * 1024 // 6)  # about MEGABYTES MB of UTF-8
BIG_META = {f"k{n}": "v" * 1000 for n in range(2048)}  # about 2 MB across many keys

hostile(f"{MEGABYTES} MB of item content round-trips")(lambda s, w: _new_item(s, w, "big", [{"text": BIG_TEXT}]))
then(item_round_trip(lambda w: w.id("big"), [{"text": BIG_TEXT}]))

hostile("2 MB of conversation metadata round-trips")(
    lambda s, w: s.conversations.create_conversation(NewConversation(id=w.id("bigmeta"), metadata=BIG_META))
)
then(conv_round_trip(lambda w: w.id("bigmeta"), BIG_META))

hostile(f"{MEGABYTES} MB raw_response round-trips")(
    lambda s, w: s.responses.store_response(StoredResponse(id=w.id("bigresp"), raw_response={"t": BIG_TEXT}))
)
then(response_round_trip(lambda w: w.id("bigresp"), raw_response={"t": BIG_TEXT}))

hostile("a 2**70 integer in content round-trips")(lambda s, w: _new_item(s, w, "bigint", [2**70, -(2**70)]))
then(item_round_trip(lambda w: w.id("bigint"), [2**70, -(2**70)]))

# --- Datetimes -------------------------------------------------------------------------------

NAIVE = datetime(2026, 1, 2, 3, 4, 5)  # deliberately naive


hostile("naive added_at in link_item", InvalidInputError)(lambda s, w: s.items.link_item(w.conv, w.id("x"), NAIVE))
then(not_linked(lambda w: w.id("x")))


def _link_batch_with_naive(s: Storage, w: World) -> object:
    for base in ("ok1", "ok2"):
        _new_item(s, w, base)
    return s.items.link_items(w.conv, [(w.id("ok1"), at(9)), (w.id("ok2"), NAIVE)])


hostile("naive added_at in the second pair of link_items links nothing", InvalidInputError)(_link_batch_with_naive)
then(not_linked(lambda w: w.id("ok1"), lambda w: w.id("ok2")))

hostile("naive created_at in a response", InvalidInputError)(
    lambda s, w: s.responses.store_response(StoredResponse(id=w.id("naive"), created_at=NAIVE))
)
then(response_absent(lambda w: w.id("naive")))

hostile("a date string as added_at", InvalidInputError)(
    lambda s, w: s.items.link_item(w.conv, w.items[0], "2026-01-01")  # type: ignore[arg-type]  # deliberately the wrong type
)
then(nothing)

TOKYO = timezone(timedelta(hours=9))


def _link_non_utc(s: Storage, w: World) -> object:
    _new_item(s, w, "tokyo")
    # The same instant seen from Tokyo: it must sort between the two seed links (at(0), at(1)).
    s.items.link_item(w.conv, w.id("tokyo"), (at(0) + timedelta(microseconds=500)).astimezone(TOKYO))
    listed = s.items.list_items(w.conv, ListParams(10))
    s.items.delete_item(w.conv, w.id("tokyo"))  # leave the seed as it was for check_seed
    return listed


hostile("a non-UTC aware added_at orders by instant")(_link_non_utc)
then(lists(lambda w: [w.items[0], w.id("tokyo"), w.items[1]]))

hostile("a non-UTC created_at is stored as the same instant in UTC")(
    lambda s, w: s.responses.store_response(StoredResponse(id=w.id("tz"), created_at=at(7).astimezone(TOKYO)))
)
then(response_round_trip(lambda w: w.id("tz"), created_at=at(7)))

hostile("a far-past created_at (year 1) is outside the accepted range", InvalidInputError)(
    lambda s, w: s.responses.store_response(StoredResponse(id=w.id("y1"), created_at=datetime(1, 1, 1, tzinfo=UTC)))
)
then(nothing)

FIRST_ACCEPTED = datetime(1900, 1, 1, tzinfo=UTC)
hostile("the first accepted created_at (1900-01-01) round-trips")(
    lambda s, w: s.responses.store_response(StoredResponse(id=w.id("y1900"), created_at=FIRST_ACCEPTED))
)
then(response_round_trip(lambda w: w.id("y1900"), created_at=FIRST_ACCEPTED))

# --- Limits, cursors, depths -----------------------------------------------------------------

hostile("negative list_items limit", InvalidInputError)(lambda s, w: s.items.list_items(w.conv, ListParams(-1)))
then(nothing)

hostile("negative identifier limit", InvalidInputError)(lambda s, w: s.responses.list_identifier_responses(w.ident, -5))
then(nothing)

hostile("negative max_depth", InvalidInputError)(lambda s, w: s.responses.get_response_chain(w.responses[1], -1))
then(nothing)

hostile("a float limit", InvalidInputError)(lambda s, w: s.items.list_items(w.conv, ListParams(1.5)))  # type: ignore[arg-type]  # deliberately the wrong type
then(nothing)

hostile("a bool limit", InvalidInputError)(lambda s, w: s.items.list_items(w.conv, ListParams(True)))
then(nothing)

hostile("a string limit", InvalidInputError)(lambda s, w: s.responses.list_identifier_responses(w.ident, "10"))  # type: ignore[arg-type]  # deliberately the wrong type
then(nothing)

hostile("the largest limit returns everything")(lambda s, w: s.items.list_items(w.conv, ListParams(2**31 - 1)))
then(lists(lambda w: list(w.items)))

hostile("a limit above 2**31 - 1", InvalidInputError)(lambda s, w: s.items.list_items(w.conv, ListParams(2**62)))
then(nothing)

hostile("a max_depth of 2**63", InvalidInputError)(lambda s, w: s.responses.get_response_chain(w.responses[1], 2**63))
then(nothing)

hostile("an identifier limit of 2**64", InvalidInputError)(
    lambda s, w: s.responses.list_identifier_responses(w.ident, 2**64)
)
then(nothing)

hostile("an unknown cursor starts at the beginning")(
    lambda s, w: s.items.list_items(w.conv, ListParams(10, SortOrder.DESC, after="msg_nope"))
)
then(lists(lambda w: list(reversed(w.items))))

hostile("a 10,000-character cursor is an unknown cursor")(
    lambda s, w: s.items.list_items(w.conv, ListParams(10, after="z" * 10_000))
)
then(lists(lambda w: list(w.items)))

hostile("a cursor linked to another conversation is ignored")(
    lambda s, w: s.items.list_items(w.id("other"), ListParams(10, after=w.items[0]))
)
then(equals(lambda w: []))

hostile("an unknown sort order", InvalidInputError)(
    lambda s, w: s.items.list_items(w.conv, ListParams(5, order="sideways"))  # type: ignore[arg-type]  # deliberately the wrong type
)
then(nothing)

# --- Wrong types, lengths and duplicates -----------------------------------------------------

hostile("an int as conversation id", InvalidInputError)(lambda s, w: s.conversations.get_conversation(42))  # type: ignore[arg-type]  # deliberately the wrong type
then(nothing)

hostile("None as item id", InvalidInputError)(lambda s, w: s.items.get_item(None))  # type: ignore[arg-type]  # deliberately the wrong type
then(nothing)

hostile("a dict instead of NewConversation", InvalidInputError)(
    lambda s, w: s.conversations.create_conversation({"id": w.id("dict")})  # type: ignore[arg-type]  # deliberately the wrong type
)
then(conv_absent(lambda w: w.id("dict")))

hostile("a list as metadata", InvalidInputError)(
    lambda s, w: s.conversations.create_conversation(NewConversation(id=w.id("listmeta"), metadata=[1, 2]))  # type: ignore[arg-type]  # deliberately the wrong type
)
then(conv_absent(lambda w: w.id("listmeta")))

hostile("a string as metadata in an update", InvalidInputError)(
    lambda s, w: s.conversations.update_conversation(w.conv, "{}")  # type: ignore[arg-type]  # deliberately the wrong type
)
then(nothing)

hostile("a string instead of link pairs", InvalidInputError)(lambda s, w: s.items.link_items(w.conv, "msg_1"))  # type: ignore[arg-type]  # deliberately the wrong type
then(nothing)

hostile("bytes as a response id", InvalidInputError)(
    lambda s, w: s.responses.store_response(StoredResponse(id=b"resp"))  # type: ignore[arg-type]  # deliberately the wrong type
)
then(nothing)

hostile("a 65-character id", InvalidInputError)(
    lambda s, w: s.conversations.create_conversation(NewConversation(id="c" * 65))
)
then(conv_absent(lambda w: "c" * 64))  # not silently truncated to 64 characters

hostile("an empty id", InvalidInputError)(lambda s, w: s.items.create_item(NewConversationItem("message", "x", id="")))
then(nothing)

hostile("a 33-character item_type", InvalidInputError)(lambda s, w: _new_item(s, w, "longtype", item_type="t" * 33))
then(item_absent(lambda w: w.id("longtype")))

hostile("emoji, RTL and combining marks in ids round-trip")(
    lambda s, w: s.conversations.create_conversation(NewConversation(id=w.id("💬\u202eש\u0301"), metadata={"🔑": "✓"}))
)
then(conv_round_trip(lambda w: w.id("💬\u202eש\u0301"), {"🔑": "✓"}))

hostile("whitespace and newlines in ids round-trip")(lambda s, w: _new_item(s, w, " a\tb\nc ", "ws"))
then(item_round_trip(lambda w: w.id(" a\tb\nc "), "ws"))

hostile("duplicate conversation keeps the original", ConflictError)(
    lambda s, w: s.conversations.create_conversation(NewConversation(id=w.conv, metadata={"overwritten": True}))
)
then(nothing)  # check_seed verifies the original metadata


def _dup_response(s: Storage, w: World) -> object:
    return s.responses.store_response(StoredResponse(id=w.responses[0], created_at=at(99), safety_identifier="thief"))


hostile("duplicate response keeps the original", ConflictError)(_dup_response)
then(lambda s, w, outcome: assert_empty(s.responses.list_identifier_responses("thief")))  # not indexed


def _dup_in_batch(s: Storage, w: World) -> object:
    _new_item(s, w, "d1")
    return s.items.link_items(w.conv, [(w.id("d1"), at(5)), (w.id("d1"), at(6))])


hostile("an item twice in one link_items links nothing", ConflictError)(_dup_in_batch)
then(not_linked(lambda w: w.id("d1")))


def _batch_with_linked(s: Storage, w: World) -> object:
    for base in ("b1", "b2"):
        _new_item(s, w, base)
    return s.items.link_items(w.conv, [(w.id("b1"), at(5)), (w.items[0], at(6)), (w.id("b2"), at(7))])


hostile("link_items with one link already there links nothing", ConflictError)(_batch_with_linked)
then(not_linked(lambda w: w.id("b1"), lambda w: w.id("b2")))

hostile("linking an item twice", ConflictError)(lambda s, w: s.items.link_item(w.conv, w.items[1], at(50)))
then(nothing)  # check_seed verifies the original added_at order


def outcome_of(call: Callable[[], object]) -> object:
    """The call's result, or the datacon error it raised (any other exception propagates: a defect)."""
    try:
        return call()
    except DataconError as exc:
        return exc


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_input(rel_backend: BackendUnderTest, rel_storage: Storage, case: Hostile) -> None:
    s = rel_storage
    password = backend_password(rel_backend)
    w = seed(s)
    outcome = outcome_of(lambda: case.act(s, w))
    if isinstance(outcome, DataconError):
        allowed = case.raises or case.may_refuse
        assert allowed is not None, f"expected success, got {type(outcome).__name__}: {outcome}"
        assert isinstance(outcome, allowed), f"expected {allowed.__name__}, got {type(outcome).__name__}: {outcome}"
        assert str(outcome).strip(), "the error has no message"
        assert len(str(outcome)) < 2000, "the error message is not a clear one-liner (it may echo the input)"
        assert password is None or password not in str(outcome)
    else:
        assert case.raises is None, f"expected {case.raises.__name__}, got success: {outcome!r:.200}"
    case.after(s, w, outcome)
    check_seed(s, w)
    tally(rel_backend.name, case, outcome)


TRIED: dict[str, list[str]] = {}


def tally(backend: str, case: Hostile, outcome: object) -> None:
    """Count the inputs tried per backend, naming those a backend chose to refuse."""
    refused = TRIED.setdefault(backend, [])
    refused.append(case.name if case.may_refuse and isinstance(outcome, DataconError) else "")
    names = [name for name in refused if name]
    figures.record(
        f"bad input[{backend}]",
        f"{len(refused)} hostile calls passed" + (f"; refused where allowed: {names}" if names else ""),
    )


# --- Schema identifiers (config time) and extra-column values (hook-supplied) -------------------

HOSTILE_SCHEMAS = {
    "table name": SchemaConfig(conversations=TableConfig("conversations; DROP TABLE responses")),
    "quoted table name": SchemaConfig(responses=TableConfig('responses" (id text); --')),
    "column rename": SchemaConfig(conversations=TableConfig("conversations", columns={"id": "id) VALUES (1); --"})),
    "extra column name": SchemaConfig(
        conversations=TableConfig("conversations", extra_columns={"t' OR '1'='1": ColumnDef("TEXT")})
    ),
    "extra column sql_type": SchemaConfig(
        responses=TableConfig("responses", extra_columns={"tenant": ColumnDef("TEXT); DROP TABLE responses; --")})
    ),
    "extra column sql_type adding a column": SchemaConfig(
        conversations=TableConfig("conversations", extra_columns={"tenant": ColumnDef("INTEGER, injected_col INTEGER")})
    ),
    "extra column sql_type with a constraint": SchemaConfig(
        conversation_item_links=TableConfig(
            "conversation_item_links", extra_columns={"tenant": ColumnDef("TEXT PRIMARY KEY")}
        )
    ),
    "extra column sql_type with a reference": SchemaConfig(
        responses=TableConfig("responses", extra_columns={"tenant": ColumnDef("TEXT REFERENCES conversations (id)")})
    ),
    "extra column sql_type with a default": SchemaConfig(
        conversation_items=TableConfig("conversation_items", extra_columns={"tenant": ColumnDef("TEXT DEFAULT 'x'")})
    ),
    "skip column": SchemaConfig(conversation_items=TableConfig("conversation_items", skip_columns={"status;--"})),
    "skipping a column of the links table": SchemaConfig(
        conversation_item_links=TableConfig("conversation_item_links", skip_columns={"added_at"})
    ),
    "owner": SchemaConfig(owner="public; DROP SCHEMA public"),
    "unicode lookalike table": SchemaConfig(conversations=TableConfig("conversаtions")),  # Cyrillic 'а'
}


@pytest.mark.parametrize("schema", HOSTILE_SCHEMAS.values(), ids=list(HOSTILE_SCHEMAS))
def test_hostile_schema_identifier_is_a_config_error(rel_backend: BackendUnderTest, schema: SchemaConfig) -> None:
    if rel_backend.name == "memory":
        # Memory takes no schema; the same validation the factory runs must still refuse it.
        with pytest.raises(ConfigError) as info:
            schema.validate()
    else:
        with pytest.raises(ConfigError) as info:
            create_storage(rel_backend.config(schema=schema))
    assert info.value.field.endswith("schema")


class ExtraValues(StorageHook):
    """A hook that supplies fixed extra-column values to every write."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = dict(values)

    def before(self, operation: StorageOperation, context: RequestContext | None, payload: Any) -> BeforeHookResult:
        return BeforeHookResult.cont(self.values)

    def after(
        self,
        operation: StorageOperation,
        context: RequestContext | None,
        payload: Any,
        result: Any,
        extra: Mapping[str, Any],
    ) -> None:
        return None


HOSTILE_EXTRAS: dict[str, tuple[dict[str, Any], type[DataconError] | None]] = {
    # value bound for RENAMED_SCHEMA's extra columns -> the error a backend may refuse it with
    "sql injection": ({"tenant_id": "t'); DROP TABLE dc_convs; --", "stored_by": "'; DELETE FROM dc_resps; --"}, None),
    "always-true predicate": ({"tenant_id": ALWAYS_TRUE, "stored_by": ALWAYS_TRUE}, None),
    # text where INTEGER is declared: bound with its own type, so a typed database refuses it
    "text into an INTEGER column": ({"score": "1; DROP TABLE dc_resps"}, BackendError),
    "NUL byte": ({"tenant_id": "a\x00b", "stored_by": "\x00"}, BackendError),
}


@pytest.mark.parametrize(("values", "may_refuse"), HOSTILE_EXTRAS.values(), ids=list(HOSTILE_EXTRAS))
def test_hostile_extra_column_values(
    rel_backend: BackendUnderTest, values: dict[str, Any], may_refuse: type[DataconError] | None
) -> None:
    storage = create_storage(rel_backend.config(schema=RENAMED_SCHEMA, hook=ExtraValues(values)))
    tag = secrets.token_hex(4)
    try:
        seed_conv = (
            storage.conversations.create_conversation(NewConversation(id=f"seed-{tag}")).id
            if may_refuse is None
            else None
        )
        writes: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
            (
                "conversation",
                lambda: storage.conversations.create_conversation(NewConversation(id=f"c-{tag}", metadata={"k": 1})),
                lambda: storage.conversations.get_conversation(f"c-{tag}"),
            ),
            (
                "item",
                lambda: storage.items.create_item(NewConversationItem("message", "x", id=f"i-{tag}")),
                lambda: storage.items.get_item(f"i-{tag}"),
            ),
            (
                "response",
                lambda: storage.responses.store_response(StoredResponse(id=f"r-{tag}", safety_identifier=f"u-{tag}")),
                lambda: storage.responses.get_response(f"r-{tag}"),
            ),
        ]
        for what, write, read in writes:
            outcome = outcome_of(write)
            if isinstance(outcome, DataconError):
                assert may_refuse is not None, f"{what}: {type(outcome).__name__}: {outcome}"
                assert isinstance(outcome, may_refuse), f"{what}: {type(outcome).__name__}: {outcome}"
                assert read() is None, f"{what} was half written"
            else:
                assert read() is not None, f"{what} acknowledged but not readable"
        if seed_conv is not None:
            assert storage.conversations.get_conversation(seed_conv) is not None, "injection damaged the table"
        assert storage.responses.list_identifier_responses(ALWAYS_TRUE) == []
    finally:
        storage.close()
        rel_backend.wipe(RENAMED_SCHEMA)


def test_case_count() -> None:
    """The brief asks for at least 40 hostile inputs, each with its expected outcome."""
    assert len(CASES) + len(HOSTILE_SCHEMAS) + len(HOSTILE_EXTRAS) >= 40
    assert all(case.after is not _no_check for case in CASES)
