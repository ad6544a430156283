"""Conformance: ConversationItemStorage (SPEC §2), on every backend."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from datacon import ListParams, NewConversation, NewConversationItem, SortOrder
from datacon.errors import ConflictError, InvalidInputError
from tests.conformance._util import at
from tests.support import Case


def _conv(case: Case) -> str:
    return case.conversations.create_conversation(NewConversation()).id


def _item(case: Case, item_id: str | None = None, item_type: str = "message", content: object = None) -> str:
    new = NewConversationItem(item_type, content if content is not None else [{"text": item_id or "x"}], id=item_id)
    return case.items.create_item(new).id


def _ids(items: list) -> list[str]:  # type: ignore[type-arg]
    return [item.id for item in items]


@pytest.mark.parametrize(
    ("item_type", "prefix"),
    [
        ("message", "msg"),
        ("reasoning", "rs"),
        ("mcp_call", "mcp"),
        ("mcp_list_tools", "mcpl"),
        ("function_call", "fc"),
        ("custom_type", "cus"),
        ("", "itm"),
    ],
)
def test_create_item_generates_prefixed_id(case: Case, item_type: str, prefix: str) -> None:
    item = case.items.create_item(NewConversationItem(item_type, {"k": 1}))
    assert re.fullmatch(rf"{prefix}_[0-9a-f]{{50}}", item.id)
    got = case.items.get_item(item.id)
    assert got is not None
    assert got.item_type == item_type


def test_create_item_round_trips_every_field(case: Case) -> None:
    content = [{"type": "output_text", "text": "héllo", "annotations": []}, 1, 2.5, None, True]
    new = NewConversationItem(
        "message", content, id="msg_fixed", response_id="resp_1", role="assistant", status="completed"
    )
    created = case.items.create_item(new)
    got = case.items.get_item("msg_fixed")
    assert got is not None
    expected_status = None if case.skipped("conversation_items", "status") else "completed"
    for record in (created, got):
        assert record.id == "msg_fixed"
        assert record.response_id == "resp_1"
        assert record.item_type == "message"
        assert record.role == "assistant"
        assert record.content == content
        assert record.created_at.tzinfo is not None
    assert got.status == expected_status
    assert got.created_at == created.created_at


@pytest.mark.parametrize("content", [None, "plain text", 7, {"a": {"b": [1, 2]}}, []])
def test_any_json_content_round_trips(case: Case, content: object) -> None:
    item = case.items.create_item(NewConversationItem("message", content))
    got = case.items.get_item(item.id)
    assert got is not None
    assert got.content == content


def test_optional_fields_default_to_none(case: Case) -> None:
    item = case.items.create_item(NewConversationItem("reasoning", []))
    got = case.items.get_item(item.id)
    assert got is not None
    assert (got.response_id, got.role, got.status) == (None, None, None)


def test_duplicate_item_conflicts_and_changes_nothing(case: Case) -> None:
    _item(case, "msg_dup", content=["first"])
    with pytest.raises(ConflictError):
        _item(case, "msg_dup", content=["second"])
    got = case.items.get_item("msg_dup")
    assert got is not None
    assert got.content == ["first"]


def test_get_absent_item_is_none(case: Case) -> None:
    assert case.items.get_item("msg_missing") is None


def test_unserialisable_content_is_rejected_without_writing(case: Case) -> None:
    with pytest.raises(InvalidInputError, match="content"):
        case.items.create_item(NewConversationItem("message", {"bad": {1, 2}}, id="msg_bad"))
    assert case.items.get_item("msg_bad") is None


def test_link_and_is_linked(case: Case) -> None:
    conv = _conv(case)
    item = _item(case)
    assert case.items.is_item_linked(conv, item) is False
    case.items.link_item(conv, item, at(0))
    assert case.items.is_item_linked(conv, item) is True
    assert case.items.is_item_linked("conv_other", item) is False


def test_duplicate_link_conflicts(case: Case) -> None:
    conv = _conv(case)
    item = _item(case)
    case.items.link_item(conv, item, at(0))
    with pytest.raises(ConflictError):
        case.items.link_item(conv, item, at(5))
    page = case.items.list_items(conv, ListParams(limit=10))
    assert _ids(page) == [item]  # still one link, at its first position


def test_item_linked_to_several_conversations(case: Case) -> None:
    first, second = _conv(case), _conv(case)
    item = _item(case)
    case.items.link_item(first, item, at(0))
    case.items.link_item(second, item, at(0))
    assert _ids(case.items.list_items(first, ListParams(limit=5))) == [item]
    assert _ids(case.items.list_items(second, ListParams(limit=5))) == [item]


def test_links_need_no_existing_conversation(case: Case) -> None:
    item = _item(case)
    case.items.link_item("conv_not_created", item, at(0))  # no foreign keys (upstream parity)
    assert case.items.is_item_linked("conv_not_created", item) is True


def test_delete_item_removes_only_the_link(case: Case) -> None:
    conv = _conv(case)
    item = _item(case)
    case.items.link_item(conv, item, at(0))
    case.items.delete_item(conv, item)
    assert case.items.is_item_linked(conv, item) is False
    assert case.items.list_items(conv, ListParams(limit=10)) == []
    assert case.items.get_item(item) is not None
    case.items.delete_item(conv, item)  # absent link: no error
    case.items.delete_item("conv_none", "msg_none")
    case.items.link_item(conv, item, at(9))  # can be linked again after unlinking
    assert case.items.is_item_linked(conv, item) is True


def test_link_items_links_all(case: Case) -> None:
    conv = _conv(case)
    ids = [_item(case) for _ in range(5)]
    case.items.link_items(conv, [(item_id, at(n)) for n, item_id in enumerate(ids)])
    assert _ids(case.items.list_items(conv, ListParams(limit=10))) == ids


def test_link_items_empty_is_a_no_op(case: Case) -> None:
    conv = _conv(case)
    case.items.link_items(conv, [])
    assert case.items.list_items(conv, ListParams(limit=10)) == []


def test_link_items_is_atomic_on_an_existing_link(case: Case) -> None:
    conv = _conv(case)
    ids = [_item(case) for _ in range(4)]
    case.items.link_item(conv, ids[2], at(2))
    with pytest.raises(ConflictError):
        case.items.link_items(conv, [(ids[0], at(0)), (ids[1], at(1)), (ids[2], at(2)), (ids[3], at(3))])
    assert [case.items.is_item_linked(conv, i) for i in ids] == [False, False, True, False]


def test_link_items_is_atomic_on_a_repeated_id(case: Case) -> None:
    conv = _conv(case)
    first, second = _item(case), _item(case)
    with pytest.raises(ConflictError):
        case.items.link_items(conv, [(first, at(0)), (second, at(1)), (first, at(2))])
    assert case.items.is_item_linked(conv, first) is False
    assert case.items.is_item_linked(conv, second) is False


def test_naive_datetime_is_rejected_and_nothing_linked(case: Case) -> None:
    conv = _conv(case)
    item = _item(case)
    with pytest.raises(InvalidInputError, match="timezone"):
        case.items.link_item(conv, item, datetime(2026, 1, 1))
    with pytest.raises(InvalidInputError):
        case.items.link_items(conv, [(item, at(0)), (_item(case), datetime(2026, 1, 1))])
    assert case.items.is_item_linked(conv, item) is False


def test_upstream_list_ordering_and_cursors(case: Case) -> None:
    conv = _conv(case)
    i1, i2, i3 = _item(case, "msg_i1"), _item(case, "msg_i2"), _item(case, "msg_i3")
    for n, item_id in enumerate((i1, i2, i3), start=1):
        case.items.link_item(conv, item_id, at(n))
    assert _ids(case.items.list_items(conv, ListParams(2, SortOrder.DESC))) == [i3, i2]
    assert _ids(case.items.list_items(conv, ListParams(10, SortOrder.DESC, after=i2))) == [i1]
    assert _ids(case.items.list_items(conv, ListParams(2, SortOrder.ASC))) == [i1, i2]
    assert _ids(case.items.list_items(conv, ListParams(10, SortOrder.ASC, after=i2))) == [i3]
    assert _ids(case.items.list_items(conv, ListParams(10, SortOrder.ASC, after=i3))) == []
    assert _ids(case.items.list_items(conv, ListParams(10, SortOrder.DESC, after=i1))) == []


def test_order_is_by_added_at_not_by_creation_or_id(case: Case) -> None:
    conv = _conv(case)
    a, b, c = _item(case, "msg_a"), _item(case, "msg_b"), _item(case, "msg_c")
    case.items.link_item(conv, c, at(1))
    case.items.link_item(conv, a, at(3))
    case.items.link_item(conv, b, at(2))
    assert _ids(case.items.list_items(conv, ListParams(10))) == [c, b, a]
    assert _ids(case.items.list_items(conv, ListParams(10, SortOrder.DESC))) == [a, b, c]


def test_microsecond_precision_orders_links(case: Case) -> None:
    conv = _conv(case)
    late, early = _item(case, "msg_0late"), _item(case, "msg_1early")
    case.items.link_item(conv, late, at(0, micros=1))
    case.items.link_item(conv, early, at(0, micros=0))
    assert _ids(case.items.list_items(conv, ListParams(10))) == [early, late]


@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
@pytest.mark.parametrize("page_size", [1, 3, 7])
def test_paging_with_ties_visits_every_item_once(case: Case, order: SortOrder, page_size: int) -> None:
    conv = _conv(case)
    ids = [_item(case, f"msg_{n:03d}") for n in range(40)]
    # Three groups of links sharing one added_at each (a lot of ties), linked out of order.
    pairs = [(item_id, at(n % 3)) for n, item_id in enumerate(reversed(ids))]
    case.items.link_items(conv, pairs)
    added = dict(pairs)
    linked = {item_id: n for n, (item_id, _) in enumerate(pairs)}
    expected = sorted(ids, key=lambda i: (added[i], linked[i]))  # ties: the order linked (SPEC 7.2)
    if order is SortOrder.DESC:
        expected.reverse()
    seen: list[str] = []
    after = None
    for _ in range(100):
        page = case.items.list_items(conv, ListParams(page_size, order, after))
        assert len(page) <= page_size
        if not page:
            break
        seen.extend(_ids(page))
        after = page[-1].id
    assert seen == expected


def test_unknown_cursor_starts_from_the_beginning(case: Case) -> None:
    conv, other = _conv(case), _conv(case)
    ids = [_item(case, f"msg_u{n}") for n in range(3)]
    case.items.link_items(conv, [(item_id, at(n)) for n, item_id in enumerate(ids)])
    stranger = _item(case, "msg_stranger")
    case.items.link_item(other, stranger, at(1))
    assert _ids(case.items.list_items(conv, ListParams(10, after="msg_never_existed"))) == ids
    assert _ids(case.items.list_items(conv, ListParams(10, after=stranger))) == ids  # linked elsewhere only
    assert _ids(case.items.list_items(conv, ListParams(10, SortOrder.DESC, after="x" * 100))) == ids[::-1]


def test_limit_zero_and_negative(case: Case) -> None:
    conv = _conv(case)
    case.items.link_item(conv, _item(case), at(0))
    assert case.items.list_items(conv, ListParams(0)) == []
    with pytest.raises(InvalidInputError, match="limit"):
        case.items.list_items(conv, ListParams(-1))


#: The documented maximum of every count (docs/api.md): 2**31 - 1.
COUNT_MAX = 2**31 - 1


@pytest.mark.parametrize("limit", [COUNT_MAX + 1, 2**63 - 1, 2**63, 2**64, 10**400])
def test_a_limit_above_the_maximum_is_rejected(case: Case, limit: int) -> None:
    conv = _conv(case)
    case.items.link_item(conv, _item(case), at(0))
    with pytest.raises(InvalidInputError, match=f"limit must be at most {COUNT_MAX}"):
        case.items.list_items(conv, ListParams(limit))
    with pytest.raises(InvalidInputError, match=f"limit must be at most {COUNT_MAX}"):
        case.items.list_items(conv, ListParams(limit, SortOrder.DESC, after="msg_x"))


def test_the_maximum_limit_is_accepted(case: Case) -> None:
    conv = _conv(case)
    ids = [_item(case, f"msg_max{n}") for n in range(3)]
    case.items.link_items(conv, [(item_id, at(n)) for n, item_id in enumerate(ids)])
    assert _ids(case.items.list_items(conv, ListParams(COUNT_MAX))) == ids
    assert _ids(case.items.list_items(conv, ListParams(COUNT_MAX, SortOrder.DESC, after=ids[2]))) == ids[1::-1]


def test_list_unknown_conversation_is_empty(case: Case) -> None:
    assert case.items.list_items("conv_unknown", ListParams(10)) == []


def test_links_without_item_records_are_skipped_and_page_fills(case: Case) -> None:
    conv = _conv(case)
    real = [_item(case, f"msg_r{n}") for n in range(4)]
    pairs = [
        (real[0], at(0)),
        ("msg_ghost1", at(1)),
        ("msg_ghost2", at(2)),
        (real[1], at(3)),
        (real[2], at(4)),
        ("msg_ghost3", at(5)),
        (real[3], at(6)),
    ]
    case.items.link_items(conv, pairs)
    assert _ids(case.items.list_items(conv, ListParams(3))) == real[:3]
    assert _ids(case.items.list_items(conv, ListParams(2, after=real[0]))) == real[1:3]
    assert _ids(case.items.list_items(conv, ListParams(10, SortOrder.DESC))) == real[::-1]
    # A ghost link is still a valid cursor position within the conversation.
    assert _ids(case.items.list_items(conv, ListParams(10, after="msg_ghost2"))) == real[1:]


def test_items_of_one_conversation_do_not_leak_into_another(case: Case) -> None:
    first, second = _conv(case), _conv(case)
    a, b = _item(case), _item(case)
    case.items.link_item(first, a, at(0))
    case.items.link_item(second, b, at(0))
    assert _ids(case.items.list_items(first, ListParams(10))) == [a]
    assert _ids(case.items.list_items(second, ListParams(10))) == [b]


def test_order_given_as_string_is_accepted(case: Case) -> None:
    conv = _conv(case)
    a, b = _item(case), _item(case)
    case.items.link_items(conv, [(a, at(0)), (b, at(1))])
    assert _ids(case.items.list_items(conv, ListParams(10, "desc"))) == [b, a]  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="order"):
        case.items.list_items(conv, ListParams(10, "sideways"))  # type: ignore[arg-type]


def test_field_lengths_are_enforced(case: Case) -> None:
    with pytest.raises(InvalidInputError, match="item_type"):
        case.items.create_item(NewConversationItem("t" * 33, [], id="msg_long"))
    with pytest.raises(InvalidInputError, match="role"):
        case.items.create_item(NewConversationItem("message", [], id="msg_long", role="r" * 33))
    assert case.items.get_item("msg_long") is None
