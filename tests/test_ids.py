"""Id formats (SPEC §1), including upstream's core.rs id tests."""

from __future__ import annotations

import re
import threading

import pytest

from datacon import ListParams, NewConversation, NewConversationItem, SortOrder, create_storage, make_item_id
from datacon.ids import item_id_digits, item_id_with, new_conversation_id, new_response_id

CROCKFORD = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def test_conversation_ids() -> None:
    ids = {new_conversation_id() for _ in range(100)}
    assert len(ids) == 100
    for conversation_id in ids:
        assert re.fullmatch(r"conv_[0-9a-f]{50}", conversation_id)
        assert len(conversation_id) == 55


@pytest.mark.parametrize(
    ("item_type", "prefix"),
    [
        ("message", "msg"),
        ("reasoning", "rs"),
        ("mcp_call", "mcp"),
        ("mcp_list_tools", "mcpl"),
        ("function_call", "fc"),
        ("custom_type", "cus"),
        ("ab", "ab"),
        ("żółwik", "żół"),
        ("", "itm"),
    ],
)
def test_item_id_prefixes(item_type: str, prefix: str) -> None:
    item_id = make_item_id(item_type)
    assert item_id.startswith(prefix + "_")
    assert re.fullmatch(r"[0-9a-f]{50}", item_id[len(prefix) + 1 :])
    assert len(item_id) == len(prefix) + 51


def test_item_ids_are_unique() -> None:
    assert len({make_item_id("message") for _ in range(100)}) == 100


def test_item_ids_from_digits_read_at_once() -> None:
    digits = item_id_digits(3)
    assert re.fullmatch(r"[0-9a-f]{150}", digits)
    assert item_id_with("function_call", digits[50:100]) == "fc_" + digits[50:100]
    assert item_id_with("custom_type", digits[:50]) == "cus_" + digits[:50]
    assert item_id_with("", digits[100:]) == "itm_" + digits[100:]
    assert item_id_digits(1) != item_id_digits(1)


def test_append_items_mints_the_missing_ids_at_once() -> None:
    """The guard reads the random parts of an append's ids in one go (from the first item
    without one): given ids are kept, made ones have their type's prefix, all distinct."""
    with create_storage() as storage:
        conversation = storage.conversations.create_conversation(NewConversation()).id
        given = [make_item_id("message"), make_item_id("reasoning")]
        items = [
            NewConversationItem("message", "hi", id=given[0]),
            NewConversationItem("function_call", {"name": "f"}),
            NewConversationItem("reasoning", [], id=given[1]),
            NewConversationItem("custom_type", {}),
            NewConversationItem("message", "bye"),
        ]
        made = [item.id for item in storage.items.append_items(conversation, items)]
        assert made[0] == given[0]
        assert made[2] == given[1]
        for made_id, prefix in zip([made[1], made[3], made[4]], ["fc", "cus", "msg"], strict=True):
            assert re.fullmatch(prefix + r"_[0-9a-f]{50}", made_id)
        assert len(set(made)) == 5
        assert [
            item.id for item in storage.items.list_items(conversation, ListParams(limit=10, order=SortOrder.ASC))
        ] == made


def test_response_ids_are_ulids_sorted_by_creation() -> None:
    ids = [new_response_id() for _ in range(2000)]
    assert all(CROCKFORD.fullmatch(i) for i in ids)
    assert len(set(ids)) == 2000
    assert ids == sorted(ids)  # monotonic even within one millisecond


def test_response_ids_unique_across_threads() -> None:
    results: list[list[str]] = []

    def mint() -> None:
        results.append([new_response_id() for _ in range(500)])

    threads = [threading.Thread(target=mint) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [i for batch in results for i in batch]
    assert len(set(everything)) == 4000
    for batch in results:
        assert batch == sorted(batch)
