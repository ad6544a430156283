"""The ``none`` backend: accepts writes, stores nothing (upstream noop.rs tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from datacon import (
    HistoryBackend,
    ListParams,
    NewConversation,
    NewConversationItem,
    Storage,
    StorageFactoryConfig,
    StoredResponse,
    create_storage,
)
from datacon.errors import BackendUnavailableError, InvalidInputError


@pytest.fixture
def noop() -> Iterator[Storage]:
    with create_storage(StorageFactoryConfig(backend=HistoryBackend.NONE)) as storage:
        yield storage


def test_conversations(noop: Storage) -> None:
    conv = noop.conversations.create_conversation(NewConversation(metadata={"a": 1}))
    assert conv.id.startswith("conv_")
    assert conv.metadata == {"a": 1}
    assert noop.conversations.create_conversation(NewConversation(id="conv_given")).id == "conv_given"
    assert noop.conversations.create_conversation(NewConversation(id="conv_given")).id == "conv_given"  # no conflicts
    assert noop.conversations.get_conversation(conv.id) is None
    assert noop.conversations.update_conversation(conv.id, {"b": 2}) is None
    assert noop.conversations.delete_conversation(conv.id) is False


def test_items(noop: Storage) -> None:
    item = noop.items.create_item(NewConversationItem("message", [], role="user"))
    assert item.id.startswith("msg_")
    assert (item.item_type, item.role) == ("message", "user")
    assert noop.items.create_item(NewConversationItem("message", [], id="msg_x")).id == "msg_x"
    noop.items.link_item("conv_1", item.id, datetime.now(UTC))
    noop.items.link_items("conv_1", [(item.id, datetime.now(UTC))])
    assert noop.items.list_items("conv_1", ListParams(10)) == []
    assert noop.items.get_item(item.id) is None
    assert noop.items.is_item_linked("conv_1", item.id) is False
    noop.items.delete_item("conv_1", item.id)


def test_responses(noop: Storage) -> None:
    response = StoredResponse(safety_identifier="u")
    assert noop.responses.store_response(response) == response.id
    assert noop.responses.get_response(response.id) is None
    noop.responses.delete_response(response.id)
    assert noop.responses.get_response_chain(response.id).responses == []
    assert noop.responses.list_identifier_responses("u") == []
    assert noop.responses.delete_identifier_responses("u") == 0


def test_input_is_still_checked(noop: Storage) -> None:
    with pytest.raises(InvalidInputError):
        noop.items.list_items("conv_1", ListParams(-1))
    with pytest.raises(InvalidInputError):
        noop.items.link_item("conv_1", "msg_1", datetime(2026, 1, 1))


NOT_JSON: list[object] = [float("nan"), float("inf"), "bad\ud800text", object(), {1: {"nested": float("-inf")}}]


@pytest.mark.parametrize("value", NOT_JSON, ids=["nan", "inf", "lone-surrogate", "object", "nested-inf"])
def test_it_refuses_what_every_other_backend_refuses(noop: Storage, value: object) -> None:
    # The memory backend is the reference: the same call must fail the same way on both.
    with create_storage(StorageFactoryConfig()) as memory:
        calls: list[Callable[[Storage], object]] = [
            lambda s: s.conversations.create_conversation(NewConversation(metadata={"v": value})),
            lambda s: s.conversations.update_conversation("conv_1", {"v": value}),
            lambda s: s.items.create_item(NewConversationItem("message", [value])),
            lambda s: s.responses.store_response(StoredResponse(input=[value])),
            lambda s: s.responses.store_response(StoredResponse(raw_response={"v": value})),
        ]
        memory.conversations.create_conversation(NewConversation(id="conv_1"))
        for call in calls:
            with pytest.raises(InvalidInputError) as expected:
                call(memory)
            with pytest.raises(InvalidInputError) as got:
                call(noop)
            assert str(got.value) == str(expected.value)


def test_created_records_come_back_as_json_gives_them(noop: Storage) -> None:
    with create_storage(StorageFactoryConfig()) as memory:
        for s in (memory, noop):
            conv = s.conversations.create_conversation(NewConversation(id="conv_j", metadata={"t": (1, 2)}))
            assert conv.metadata == {"t": [1, 2]}
            item = s.items.create_item(NewConversationItem("message", ({"a": (1,)},), id="msg_j"))
            assert item.content == [{"a": [1]}]


def test_calls_after_close_are_refused_like_every_backend() -> None:
    storage = create_storage(StorageFactoryConfig(backend=HistoryBackend.NONE))
    storage.close()
    with pytest.raises(BackendUnavailableError, match=r"^the none storage is closed$"):
        storage.conversations.create_conversation(NewConversation())
    with pytest.raises(BackendUnavailableError, match=r"^the none storage is closed$"):
        storage.responses.get_response("r1")
