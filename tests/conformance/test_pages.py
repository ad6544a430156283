"""Conformance: pages and cursors (SPEC 7.4), on every backend."""

from __future__ import annotations

import pytest

from datacon import ItemPage, ListParams, NewConversation, NewConversationItem, SortOrder
from datacon.errors import InvalidInputError
from tests.conformance._util import at
from tests.support import Case


def _conv(case: Case) -> str:
    return case.conversations.create_conversation(NewConversation()).id


def _fill(case: Case, conv: str, count: int, prefix: str = "msg_p") -> list[str]:
    """``count`` items in turns of three sharing one added_at, ids against the order given."""
    ids = [f"{prefix}{n:02d}" for n in range(count)]
    for start in range(0, count, 3):
        turn = [NewConversationItem("message", [n], id=i) for n, i in enumerate(ids[start : start + 3])][::-1]
        case.items.append_items(conv, turn, at(start))
    # The order listed: each turn as given (reversed ids), turns by added_at.
    return [i for start in range(0, count, 3) for i in ids[start : start + 3][::-1]]


def _walk(case: Case, conv: str, limit: int, order: SortOrder) -> tuple[list[str], list[ItemPage]]:
    seen: list[str] = []
    pages: list[ItemPage] = []
    after: str | None = None
    for _ in range(100):
        page = case.items.list_items_page(conv, ListParams(limit, order, after))
        pages.append(page)
        seen += [item.id for item in page.data]
        if not page.has_more:
            break
        assert page.next_cursor is not None
        after = page.next_cursor
    return seen, pages


@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
@pytest.mark.parametrize("limit", [1, 2, 3, 5, 10, 11])
def test_pages_follow_list_items_order_and_report_has_more(case: Case, order: SortOrder, limit: int) -> None:
    conv = _conv(case)
    expected = _fill(case, conv, 10)
    if order is SortOrder.DESC:
        expected.reverse()
    assert [i.id for i in case.items.list_items(conv, ListParams(100, order))] == expected
    seen, pages = _walk(case, conv, limit, order)
    assert seen == expected
    for n, page in enumerate(pages):
        assert isinstance(page, ItemPage)
        assert len(page.data) <= limit
        assert page.first_id == (page.data[0].id if page.data else None)
        assert page.last_id == (page.data[-1].id if page.data else None)
        assert (page.next_cursor is None) == (not page.has_more)
        last = n == len(pages) - 1
        assert page.has_more is not last
        # Same order and filters as list_items.
        after = None if n == 0 else pages[n - 1].last_id
        assert [i.id for i in case.items.list_items(conv, ListParams(limit, order, after))] == [i.id for i in page.data]
    # An exactly full last page: no link follows, so has_more is false.
    exact = case.items.list_items_page(conv, ListParams(10, order))
    assert exact.has_more is False
    assert exact.next_cursor is None


def test_limit_zero_is_an_empty_page(case: Case) -> None:
    conv = _conv(case)
    _fill(case, conv, 3)
    page = case.items.list_items_page(conv, ListParams(0))
    assert page == ItemPage(data=[], first_id=None, last_id=None, has_more=False, next_cursor=None)


def test_an_empty_conversation_is_an_empty_page(case: Case) -> None:
    page = case.items.list_items_page(_conv(case), ListParams(5))
    assert (page.data, page.has_more, page.next_cursor, page.first_id) == ([], False, None, None)


def test_after_accepts_an_item_id_as_before(case: Case) -> None:
    conv = _conv(case)
    order = _fill(case, conv, 6)
    page = case.items.list_items_page(conv, ListParams(2, after=order[1]))
    assert [i.id for i in page.data] == order[2:4]
    assert page.has_more
    # An item id that is not linked here is ignored, as by list_items.
    assert [i.id for i in case.items.list_items_page(conv, ListParams(2, after="msg_nowhere")).data] == order[:2]


@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
def test_a_cursor_stays_valid_after_its_item_is_unlinked_or_deleted(case: Case, order: SortOrder) -> None:
    conv = _conv(case)
    expected = _fill(case, conv, 9)
    if order is SortOrder.DESC:
        expected.reverse()
    first = case.items.list_items_page(conv, ListParams(4, order))
    assert [i.id for i in first.data] == expected[:4]
    assert first.next_cursor is not None
    case.items.delete_item(conv, expected[3])  # the item the cursor came from
    case.items.delete_item(conv, expected[4])  # and the one after it
    second = case.items.list_items_page(conv, ListParams(4, order, first.next_cursor))
    assert [i.id for i in second.data] == expected[5:9]  # continues after the position: no repeat
    assert not second.has_more
    # Through list_items too.
    assert [i.id for i in case.items.list_items(conv, ListParams(2, order, first.next_cursor))] == expected[5:7]


def test_paging_while_items_are_deleted_never_repeats_an_item(case: Case) -> None:
    conv = _conv(case)
    expected = _fill(case, conv, 12)
    seen: list[str] = []
    after: str | None = None
    while True:
        page = case.items.list_items_page(conv, ListParams(3, after=after))
        seen += [i.id for i in page.data]
        for item in page.data:
            case.items.delete_item(conv, item.id)  # a client clearing as it reads
        if not page.has_more:
            break
        after = page.next_cursor
    assert seen == expected


def test_has_more_counts_a_following_link_whose_item_is_missing(case: Case) -> None:
    conv = _conv(case)
    made = case.items.append_items(conv, [NewConversationItem("message", [], id="msg_m1")], at(0))
    case.items.link_item(conv, "msg_no_record", at(1))  # a link whose item record is missing
    page = case.items.list_items_page(conv, ListParams(1))
    assert [i.id for i in page.data] == [made[0].id]
    assert page.has_more
    assert page.next_cursor is not None
    following = case.items.list_items_page(conv, ListParams(1, after=page.next_cursor))
    assert following.data == []  # the following page can be empty
    assert not following.has_more


def test_a_cursor_is_bound_to_its_conversation_and_order(case: Case) -> None:
    conv, other = _conv(case), _conv(case)
    _fill(case, conv, 4)
    _fill(case, other, 4, prefix="msg_o")
    cursor = case.items.list_items_page(conv, ListParams(2)).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidInputError, match="after"):
        case.items.list_items_page(other, ListParams(2, after=cursor))
    with pytest.raises(InvalidInputError, match="after"):
        case.items.list_items(other, ListParams(2, after=cursor))
    with pytest.raises(InvalidInputError, match="order"):
        case.items.list_items_page(conv, ListParams(2, SortOrder.DESC, cursor))
    with pytest.raises(InvalidInputError, match="after"):
        case.items.list_items_page(conv, ListParams(2, after=cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + "zz"))


@pytest.mark.parametrize(
    ("params", "named"),
    [
        (ListParams(-1), "limit"),
        (ListParams(True), "limit"),
        (ListParams(2, "sideways"), "order"),  # type: ignore[arg-type]
        (ListParams(2, after=7), "after"),  # type: ignore[arg-type]
        ({"limit": 2}, "ListParams"),
    ],
)
def test_bad_params_are_refused_naming_them(case: Case, params: object, named: str) -> None:
    with pytest.raises(InvalidInputError, match=named):
        case.items.list_items_page(_conv(case), params)  # type: ignore[arg-type]


def test_a_bad_conversation_id_is_refused(case: Case) -> None:
    with pytest.raises(InvalidInputError, match="conversation id"):
        case.items.list_items_page("", ListParams(2))
