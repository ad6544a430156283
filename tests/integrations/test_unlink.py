"""The backend contract's ``unlink_items`` (the adapters' pop and clear), on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

from datacon import ListParams, NewConversationItem, Storage


def test_unlink_items_removes_links_and_unshared_records(storage: Storage) -> None:
    items = storage.items.append_items("conv_a", [NewConversationItem("message", {"n": n}) for n in range(4)])
    ids = [item.id for item in items]
    storage.items.link_item("conv_b", ids[1], datetime.now(UTC))  # shared with another conversation
    removed = storage.raw.items.unlink_items("conv_a", [ids[3], ids[1], ids[3], "msg_not_linked"])
    assert removed == [ids[3], ids[1]]  # in the given order, each once; an absent link is not reported
    assert [item.id for item in storage.items.list_items("conv_a", ListParams(limit=10))] == ids[:1] + ids[2:3]
    assert storage.items.get_item(ids[3]) is None  # linked nowhere any more: deleted
    assert storage.items.get_item(ids[1]) is not None  # still linked to conv_b: kept
    assert storage.items.is_item_linked("conv_b", ids[1])
    assert storage.raw.items.unlink_items("conv_a", [ids[3]]) == []  # already gone
    assert storage.raw.items.unlink_items("conv_a", []) == []
    assert storage.items.get_item(ids[0]) is not None  # untouched


def test_unlink_items_of_unknown_conversation(storage: Storage) -> None:
    assert storage.raw.items.unlink_items("conv_absent", ["msg_x"]) == []
