"""Conformance: append_items and the order of a turn (SPEC §7.2), on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from datacon import ListParams, NewConversation, NewConversationItem, SortOrder
from datacon.errors import ConflictError, InvalidInputError
from tests.conformance._util import at
from tests.support import Case


def _conv(case: Case) -> str:
    return case.conversations.create_conversation(NewConversation()).id


def _new(item_id: str | None = None, item_type: str = "message", **fields: object) -> NewConversationItem:
    return NewConversationItem(item_type, [{"text": item_id or "x"}], id=item_id, **fields)  # type: ignore[arg-type]


def _ids(items: list) -> list[str]:  # type: ignore[type-arg]
    return [item.id for item in items]


def _listed(case: Case, conv: str, order: SortOrder = SortOrder.ASC) -> list[str]:
    return _ids(case.items.list_items(conv, ListParams(100, order)))


# A turn whose ids sort against the order given (the old tie-break by item id would reverse it).
TURN = ["msg_4", "fc_3", "fco_2", "msg_1"]


def test_append_creates_and_links_every_item_and_returns_them_in_the_given_order(case: Case) -> None:
    conv = _conv(case)
    news = [
        _new("msg_4", role="user"),
        NewConversationItem("function_call", {"name": "f"}, id="fc_3", response_id="resp_1"),
        _new("fco_2", item_type="function_call_output", status="completed"),
        _new("msg_1", role="assistant"),
    ]
    made = case.items.append_items(conv, news, at(5))
    assert _ids(made) == TURN
    for new, item in zip(news, made, strict=True):
        assert item.item_type == new.item_type
        assert item.content == new.content
        assert item.role == new.role
        assert item.response_id == new.response_id
        assert case.items.is_item_linked(conv, item.id)
        assert case.items.get_item(item.id) == item  # returned as it reads back
    assert _listed(case, conv) == TURN
    assert _listed(case, conv, SortOrder.DESC) == TURN[::-1]


def test_append_mints_ids_by_type_before_any_io(case: Case) -> None:
    conv = _conv(case)
    made = case.items.append_items(conv, [_new(), _new(item_type="reasoning")], at(0))
    assert made[0].id.startswith("msg_")
    assert made[1].id.startswith("rs_")
    assert _listed(case, conv) == _ids(made)


def test_added_at_defaults_to_now(case: Case) -> None:
    conv = _conv(case)
    before = datetime.now(UTC)
    made = case.items.append_items(conv, [_new("msg_now")])
    after = datetime.now(UTC)
    case.items.link_item(conv, case.items.create_item(_new("msg_past")).id, before.replace(year=before.year - 1))
    case.items.link_item(conv, case.items.create_item(_new("msg_next")).id, after.replace(year=after.year + 1))
    assert _listed(case, conv) == ["msg_past", "msg_now", "msg_next"]
    assert before <= made[0].created_at <= after


def test_append_does_not_check_the_conversation(case: Case) -> None:
    made = case.items.append_items("conv_not_created", [_new("msg_orphan")], at(0))
    assert _ids(case.items.list_items("conv_not_created", ListParams(10))) == _ids(made)
    assert case.conversations.get_conversation("conv_not_created") is None


def test_empty_append_returns_nothing_and_writes_nothing(case: Case) -> None:
    conv = _conv(case)
    assert case.items.append_items(conv, [], at(0)) == []
    assert case.items.append_items(conv, ()) == []
    assert _listed(case, conv) == []


def test_an_existing_item_id_is_a_conflict_and_nothing_is_written(case: Case) -> None:
    conv = _conv(case)
    case.items.create_item(_new("msg_taken"))
    with pytest.raises(ConflictError):
        case.items.append_items(conv, [_new("msg_new1"), _new("msg_taken"), _new("msg_new2")], at(0))
    assert case.items.get_item("msg_new1") is None
    assert case.items.get_item("msg_new2") is None
    assert _listed(case, conv) == []
    assert not case.items.is_item_linked(conv, "msg_taken")


def test_an_id_already_linked_is_a_conflict_and_nothing_is_written(case: Case) -> None:
    conv = _conv(case)
    case.items.link_item(conv, "msg_link_only", at(0))  # a link whose item record does not exist
    with pytest.raises(ConflictError):
        case.items.append_items(conv, [_new("msg_new3"), _new("msg_link_only")], at(1))
    assert case.items.get_item("msg_new3") is None
    assert case.items.get_item("msg_link_only") is None
    assert not case.items.is_item_linked(conv, "msg_new3")


def test_a_repeated_id_is_a_conflict_and_nothing_is_written(case: Case) -> None:
    conv = _conv(case)
    with pytest.raises(ConflictError, match="msg_twice"):
        case.items.append_items(conv, [_new("msg_twice"), _new("msg_other"), _new("msg_twice")], at(0))
    assert case.items.get_item("msg_twice") is None
    assert case.items.get_item("msg_other") is None
    assert _listed(case, conv) == []


@pytest.mark.parametrize(
    ("items", "added_at", "named"),
    [
        ("msg_1", None, "items"),
        (b"x", None, "items"),
        (None, None, "items"),
        ([("msg_1", "message")], None, r"items\[0\]"),
        ([NewConversationItem("message", [], id="msg_ok"), {"item_type": "message"}], None, r"items\[1\]"),
        ([NewConversationItem("message", [], id="")], None, r"items\[0\] id"),
        ([NewConversationItem("message", [], id="x" * 65)], None, r"items\[0\] id"),
        ([NewConversationItem("message", [], role="r" * 33)], None, "role"),
        ([NewConversationItem("message", {1j})], None, "content"),
        ([NewConversationItem("message", [])], datetime(2026, 1, 1), "added_at"),
        ([NewConversationItem("message", [])], "2026-01-01", "added_at"),
    ],
)
def test_bad_input_is_refused_naming_it_and_nothing_is_written(
    case: Case, items: object, added_at: object, named: str
) -> None:
    conv = _conv(case)
    with pytest.raises(InvalidInputError, match=named):
        case.items.append_items(conv, items, added_at)  # type: ignore[arg-type]
    assert _listed(case, conv) == []
    assert case.items.get_item("msg_ok") is None


def test_a_bad_conversation_id_is_refused(case: Case) -> None:
    with pytest.raises(InvalidInputError, match="conversation id"):
        case.items.append_items("", [_new("msg_x")], at(0))
    assert case.items.get_item("msg_x") is None


# The order of a turn: (added_at, link sequence).


def test_links_sharing_added_at_list_in_the_order_linked_by_link_items(case: Case) -> None:
    conv = _conv(case)
    for item_id in TURN:
        case.items.create_item(_new(item_id))
    case.items.link_items(conv, [(item_id, at(3)) for item_id in TURN])
    assert _listed(case, conv) == TURN
    assert _listed(case, conv, SortOrder.DESC) == TURN[::-1]


def test_separate_calls_sharing_added_at_list_in_call_order(case: Case) -> None:
    conv = _conv(case)
    case.items.append_items(conv, [_new("msg_z2"), _new("msg_z1")], at(1))
    case.items.link_item(conv, case.items.create_item(_new("msg_a9")).id, at(1))
    case.items.append_items(conv, [_new("msg_b5")], at(1))
    case.items.link_items(conv, [(case.items.create_item(_new("msg_a1")).id, at(1))])
    order = ["msg_z2", "msg_z1", "msg_a9", "msg_b5", "msg_a1"]
    assert _listed(case, conv) == order
    assert _listed(case, conv, SortOrder.DESC) == order[::-1]


def test_added_at_still_comes_first(case: Case) -> None:
    conv = _conv(case)
    case.items.append_items(conv, [_new("msg_late1"), _new("msg_late0")], at(10))
    case.items.append_items(conv, [_new("msg_early1"), _new("msg_early0")], at(0))
    case.items.link_items(
        conv, [(case.items.create_item(_new(i)).id, at(5, n)) for n, i in enumerate(["msg_m1", "msg_m0"])]
    )
    order = ["msg_early1", "msg_early0", "msg_m1", "msg_m0", "msg_late1", "msg_late0"]
    assert _listed(case, conv) == order
    assert _listed(case, conv, SortOrder.DESC) == order[::-1]


@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
@pytest.mark.parametrize("limit", [1, 2, 3, 7])
def test_pages_by_item_id_cursor_follow_the_turn_order(case: Case, order: SortOrder, limit: int) -> None:
    conv = _conv(case)
    case.items.append_items(conv, [_new(f"msg_{n:02d}") for n in range(12, 5, -1)], at(0))  # 12 .. 6
    case.items.append_items(conv, [_new(f"msg_{n:02d}") for n in range(5, -1, -1)], at(0))  # 5 .. 0
    expected = [f"msg_{n:02d}" for n in range(12, -1, -1)]
    if order is SortOrder.DESC:
        expected.reverse()
    seen: list[str] = []
    after: str | None = None
    while True:
        page = _ids(case.items.list_items(conv, ListParams(limit, order, after)))
        if not page:
            break
        seen += page
        after = page[-1]
    assert seen == expected


def test_a_deleted_link_leaves_the_order_of_the_others(case: Case) -> None:
    conv = _conv(case)
    case.items.append_items(conv, [_new(i) for i in TURN], at(0))
    case.items.delete_item(conv, "fc_3")
    assert _listed(case, conv) == ["msg_4", "fco_2", "msg_1"]
    case.items.link_item(conv, "fc_3", at(0))  # linked again: now the last of its added_at
    assert _listed(case, conv) == ["msg_4", "fco_2", "msg_1", "fc_3"]


def test_a_deleted_conversation_takes_its_links_and_their_order(case: Case) -> None:
    conv = case.conversations.create_conversation(NewConversation(id="conv_again")).id
    case.items.append_items(conv, [_new("msg_q2"), _new("msg_q1")], at(0))
    case.conversations.delete_conversation(conv)
    conv = case.conversations.create_conversation(NewConversation(id="conv_again")).id
    case.items.link_items(conv, [("msg_q1", at(0)), ("msg_q2", at(0))])
    assert _listed(case, conv) == ["msg_q1", "msg_q2"]
