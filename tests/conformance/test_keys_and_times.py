"""Conformance: ids that could collide in a key layout, and the accepted timestamp range.

Issue 15, items 1 and 2. Every backend keeps records with ids like ``X`` and ``X:items``
apart, and every backend accepts exactly the datetimes from 1900-01-01 (inclusive) to
2100-01-01 (exclusive), ordered and read back to the microsecond inside that range.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from datacon import ListParams, NewConversation, NewConversationItem, SortOrder, StoredResponse
from datacon.errors import InvalidInputError
from tests.support import Case

T = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
US = timedelta(microseconds=1)

# Ids that upstream's Redis layout maps onto another record's key, or that look like an
# escaped key part, or carry Redis Cluster hash-tag braces.
TRICKY = ["X", "X:items", "X:items:items", "%X%3Aitems", "%", "a{b}c", "{X}", "X:", ":items", "50%"]


def _listed(case: Case, conversation_id: str, limit: int = 50) -> list[str]:
    return [i.id for i in case.items.list_items(conversation_id, ListParams(limit))]


def test_conversation_ids_never_share_storage(case: Case) -> None:
    for n, conversation_id in enumerate(TRICKY):
        item = case.items.create_item(NewConversationItem("message", n, id=f"msg_{n}")).id
        # Links first, then the conversation: "X:items" must not collide with X's links.
        case.items.link_item(conversation_id, item, T + n * US)
        case.conversations.create_conversation(NewConversation(id=conversation_id, metadata={"n": n}))
    for n, conversation_id in enumerate(TRICKY):
        got = case.conversations.get_conversation(conversation_id)
        assert got is not None
        assert got.id == conversation_id
        if not case.skipped("conversations", "metadata"):
            assert got.metadata == {"n": n}
        assert _listed(case, conversation_id) == [f"msg_{n}"]
        assert case.items.is_item_linked(conversation_id, f"msg_{n}")
    # Deleting X deletes nothing of X:items (nor the reverse), and each link set goes with its own.
    assert case.conversations.delete_conversation("X") is True
    assert case.conversations.get_conversation("X") is None
    assert _listed(case, "X") == []
    for n, conversation_id in enumerate(TRICKY[1:], start=1):
        assert case.conversations.get_conversation(conversation_id) is not None
        assert _listed(case, conversation_id) == [f"msg_{n}"]
    assert case.conversations.delete_conversation("X:items") is True
    assert _listed(case, "X:items:items") == ["msg_2"]
    assert case.conversations.get_conversation("X:items:items") is not None


def test_creating_x_items_when_x_has_links_is_no_conflict(case: Case) -> None:
    item = case.items.create_item(NewConversationItem("message", "a")).id
    case.conversations.create_conversation(NewConversation(id="conv_k"))
    case.items.link_item("conv_k", item, T)
    created = case.conversations.create_conversation(NewConversation(id="conv_k:items"))
    assert created.id == "conv_k:items"
    case.items.link_item("conv_k:items", item, T)
    assert _listed(case, "conv_k") == [item]
    assert _listed(case, "conv_k:items") == [item]


def test_item_response_and_identifier_ids_with_separators(case: Case) -> None:
    for n, tricky in enumerate(TRICKY):
        case.items.create_item(NewConversationItem("message", n, id=f"msg:{tricky}"))
        case.responses.store_response(StoredResponse(id=f"resp:{tricky}", safety_identifier=tricky, created_at=T))
    for n, tricky in enumerate(TRICKY):
        item = case.items.get_item(f"msg:{tricky}")
        assert item is not None
        assert item.content == n
        assert case.responses.get_response(f"resp:{tricky}") is not None
        if not case.skipped("responses", "safety_identifier"):
            assert [r.id for r in case.responses.list_identifier_responses(tricky)] == [f"resp:{tricky}"]
    case.responses.delete_response("resp:X")
    assert case.responses.get_response("resp:X:items") is not None
    if not case.skipped("responses", "safety_identifier"):
        assert case.responses.list_identifier_responses("X") == []
        assert case.responses.delete_identifier_responses("X:items") == 1
        assert case.responses.get_response("resp:X:items:items") is not None


def test_append_items_with_ids_with_separators(case: Case) -> None:
    for n, tricky in enumerate(TRICKY):
        turn = [NewConversationItem("message", n, id=f"msg:{tricky}:{k}") for k in ("b", "a")]
        appended = case.items.append_items(tricky, turn, T + n * US)
        assert [i.id for i in appended] == [f"msg:{tricky}:b", f"msg:{tricky}:a"]
    for n, tricky in enumerate(TRICKY):
        # One turn shares one added_at: listed in the order appended, not by id.
        assert _listed(case, tricky) == [f"msg:{tricky}:b", f"msg:{tricky}:a"]
        assert _listed(case, tricky, limit=1) == [f"msg:{tricky}:b"]
        got = case.items.get_item(f"msg:{tricky}:a")
        assert got is not None
        assert got.content == n
    case.items.delete_item("X", "msg:X:b")
    assert _listed(case, "X") == ["msg:X:a"]
    assert _listed(case, "X:items") == ["msg:X:items:b", "msg:X:items:a"]


# The accepted range


TOO_EARLY = [datetime(1899, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)]
TOO_LATE = [datetime(2100, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]
# In UTC these are 1899-12-31T23:30 and 2100-01-01T00:30.
OFFSET_OUTSIDE = [
    datetime(1900, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
    datetime(2099, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1))),
]
FIRST = datetime(1900, 1, 1, tzinfo=UTC)
LAST = datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize("when", TOO_EARLY + TOO_LATE + OFFSET_OUTSIDE, ids=str)
def test_datetimes_outside_the_range_are_invalid_input(case: Case, when: datetime) -> None:
    item = case.items.create_item(NewConversationItem("message", "x")).id
    with pytest.raises(InvalidInputError, match=r"1900-01-01.*2100-01-01"):
        case.items.link_item("conv_r", item, when)
    with pytest.raises(InvalidInputError, match="2100-01-01"):
        case.items.link_items("conv_r", [("msg_ok", T), (item, when)])
    with pytest.raises(InvalidInputError, match="2100-01-01"):
        case.responses.store_response(StoredResponse(id="resp_r", created_at=when, safety_identifier="u"))
    with pytest.raises(InvalidInputError, match="2100-01-01"):
        case.items.append_items("conv_r", [NewConversationItem("message", "y", id="msg_app")], when)
    assert not case.items.is_item_linked("conv_r", item)
    assert not case.items.is_item_linked("conv_r", "msg_ok")
    assert case.items.get_item("msg_app") is None
    assert case.responses.get_response("resp_r") is None


@pytest.mark.parametrize("edge", [FIRST, LAST], ids=["first", "last"])
def test_microsecond_order_and_round_trip_at_the_range_edges(case: Case, edge: datetime) -> None:
    step = US if edge == FIRST else -US
    # Ids in the reverse of time order: a backend that loses the microsecond lists by id.
    times = [edge + n * step for n in range(4)]
    ids = [f"msg_edge{9 - n}" for n in range(4)]
    for item_id in ids:
        case.items.create_item(NewConversationItem("message", item_id, id=item_id))
    case.items.link_items("conv_edge", list(zip(ids, times, strict=True)))
    by_time = [i for _, i in sorted(zip(times, ids, strict=True))]
    assert _listed(case, "conv_edge") == by_time
    desc = case.items.list_items("conv_edge", ListParams(10, SortOrder.DESC))
    assert [i.id for i in desc] == by_time[::-1]
    for n, when in enumerate(times):
        case.responses.store_response(StoredResponse(id=f"resp_edge{9 - n}", created_at=when, safety_identifier="e"))
    for n, when in enumerate(times):
        got = case.responses.get_response(f"resp_edge{9 - n}")
        assert got is not None
        if not case.skipped("responses", "created_at"):
            assert got.created_at == when
    if not case.skipped("responses", "safety_identifier") and not case.skipped("responses", "created_at"):
        newest_first = [f"resp_edge{9 - n}" for n, _ in sorted(enumerate(times), key=lambda p: p[1], reverse=True)]
        assert [r.id for r in case.responses.list_identifier_responses("e")] == newest_first


@pytest.mark.parametrize("when", ["1899-12-31T23:59:59.999999Z", "2100-01-01T00:00:00Z"])
def test_import_rejects_datetimes_outside_the_range_with_the_line(when: str) -> None:
    from datacon.transfer import read_records

    good = '{"type":"link","conversation_id":"c","item_id":"i","added_at":"2026-01-01T00:00:00.000000Z"}'
    bad = good.replace("2026-01-01T00:00:00.000000Z", when)
    with pytest.raises(InvalidInputError, match=r"line 2: invalid link: added_at must be from 1900-01-01"):
        list(read_records([good, bad]))
