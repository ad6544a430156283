"""Conformance: ConversationStorage (SPEC §2), on every backend."""

from __future__ import annotations

import re
from datetime import UTC

import pytest

from datacon import ListParams, NewConversation, NewConversationItem
from datacon.errors import ConflictError, InvalidInputError
from tests.conformance._util import at
from tests.support import Case


def test_create_generates_conv_id_and_round_trips(case: Case) -> None:
    metadata = {"title": "Hello", "tags": ["a", "b"], "nested": {"n": 1, "ok": True, "none": None}, "uni": "żółw 🐢"}
    conv = case.conversations.create_conversation(NewConversation(metadata=metadata))
    assert re.fullmatch(r"conv_[0-9a-f]{50}", conv.id)
    assert conv.created_at.tzinfo is not None
    assert conv.created_at.utcoffset() == UTC.utcoffset(None)
    assert conv.metadata == metadata
    got = case.conversations.get_conversation(conv.id)
    assert got is not None
    assert got.id == conv.id
    assert got.metadata == metadata
    assert got.created_at == conv.created_at  # microsecond precision kept


def test_create_with_given_id_and_no_metadata(case: Case) -> None:
    conv = case.conversations.create_conversation(NewConversation(id="conv_custom", metadata=None))
    assert conv.id == "conv_custom"
    assert conv.metadata is None
    got = case.conversations.get_conversation("conv_custom")
    assert got is not None
    assert got.metadata is None


def test_empty_metadata_object_round_trips(case: Case) -> None:
    conv = case.conversations.create_conversation(NewConversation(metadata={}))
    got = case.conversations.get_conversation(conv.id)
    assert got is not None
    assert got.metadata == {}
    assert conv.metadata == {}


def test_duplicate_id_conflicts_and_changes_nothing(case: Case) -> None:
    case.conversations.create_conversation(NewConversation(id="conv_dup", metadata={"v": 1}))
    with pytest.raises(ConflictError):
        case.conversations.create_conversation(NewConversation(id="conv_dup", metadata={"v": 2}))
    got = case.conversations.get_conversation("conv_dup")
    assert got is not None
    assert got.metadata == {"v": 1}


def test_get_absent_is_none(case: Case) -> None:
    assert case.conversations.get_conversation("conv_missing") is None


def test_update_replaces_metadata_and_keeps_created_at(case: Case) -> None:
    conv = case.conversations.create_conversation(NewConversation(metadata={"a": 1, "b": 2}))
    updated = case.conversations.update_conversation(conv.id, {"c": 3})
    assert updated is not None
    assert updated.metadata == {"c": 3}  # replaced, not merged
    assert updated.created_at == conv.created_at
    got = case.conversations.get_conversation(conv.id)
    assert got is not None
    assert got.metadata == {"c": 3}
    assert got.created_at == conv.created_at


def test_update_none_clears_metadata(case: Case) -> None:
    conv = case.conversations.create_conversation(NewConversation(metadata={"a": 1}))
    cleared = case.conversations.update_conversation(conv.id, None)
    assert cleared is not None
    assert cleared.metadata is None
    got = case.conversations.get_conversation(conv.id)
    assert got is not None
    assert got.metadata is None


def test_update_absent_is_none_and_creates_nothing(case: Case) -> None:
    assert case.conversations.update_conversation("conv_nope", {"a": 1}) is None
    assert case.conversations.get_conversation("conv_nope") is None


def test_delete_reports_existence(case: Case) -> None:
    conv = case.conversations.create_conversation(NewConversation())
    assert case.conversations.delete_conversation(conv.id) is True
    assert case.conversations.get_conversation(conv.id) is None
    assert case.conversations.delete_conversation(conv.id) is False
    assert case.conversations.delete_conversation("conv_never") is False


def test_delete_removes_links_but_keeps_items(case: Case) -> None:
    conv = case.conversations.create_conversation(NewConversation())
    other = case.conversations.create_conversation(NewConversation())
    item = case.items.create_item(NewConversationItem("message", [{"type": "input_text", "text": "hi"}], role="user"))
    case.items.link_item(conv.id, item.id, at(1))
    case.items.link_item(other.id, item.id, at(2))
    assert case.conversations.delete_conversation(conv.id) is True
    assert case.items.is_item_linked(conv.id, item.id) is False
    assert case.items.list_items(conv.id, ListParams(limit=10)) == []
    assert case.items.get_item(item.id) is not None
    assert case.items.is_item_linked(other.id, item.id) is True  # other conversations keep their links


def test_recreate_after_delete_starts_without_links(case: Case) -> None:
    conv = case.conversations.create_conversation(NewConversation(id="conv_again"))
    item = case.items.create_item(NewConversationItem("message", "x"))
    case.items.link_item(conv.id, item.id, at(1))
    case.conversations.delete_conversation(conv.id)
    case.conversations.create_conversation(NewConversation(id="conv_again"))
    assert case.items.list_items("conv_again", ListParams(limit=10)) == []


@pytest.mark.parametrize("metadata", ["a string", ["a", "list"], 42])
def test_non_object_metadata_is_rejected(case: Case, metadata: object) -> None:
    with pytest.raises(InvalidInputError, match="metadata"):
        case.conversations.create_conversation(NewConversation(id="conv_bad", metadata=metadata))  # type: ignore[arg-type]
    assert case.conversations.get_conversation("conv_bad") is None


def test_unserialisable_metadata_is_rejected_without_writing(case: Case) -> None:
    with pytest.raises(InvalidInputError):
        case.conversations.create_conversation(NewConversation(id="conv_bad2", metadata={"when": object()}))
    assert case.conversations.get_conversation("conv_bad2") is None


@pytest.mark.parametrize("bad_id", ["", "x" * 65, "nul\x00byte", 42])
def test_bad_ids_are_rejected(case: Case, bad_id: object) -> None:
    with pytest.raises(InvalidInputError):
        case.conversations.create_conversation(NewConversation(id=bad_id))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        case.conversations.get_conversation(bad_id)  # type: ignore[arg-type]


def test_injection_shaped_ids_are_plain_data(case: Case) -> None:
    evil = "x'); DROP TABLE conversations;--"
    conv = case.conversations.create_conversation(NewConversation(id=evil, metadata={"k": "'\"`;--"}))
    assert conv.id == evil
    got = case.conversations.get_conversation(evil)
    assert got is not None
    assert got.metadata == {"k": "'\"`;--"}
    assert case.conversations.create_conversation(NewConversation()).id.startswith("conv_")
