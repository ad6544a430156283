"""Conformance: a closed storage, and a schema that skips the metadata column, on every backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

from datacon import (
    ListParams,
    NewConversation,
    NewConversationItem,
    SchemaConfig,
    Storage,
    StoredResponse,
    create_storage,
)
from datacon.errors import BackendUnavailableError
from tests.conformance._util import at
from tests.support import BackendUnderTest, Case

CALLS: dict[str, Callable[[Any], object]] = {
    "create_conversation": lambda s: s.conversations.create_conversation(NewConversation(id="conv_closed")),
    "get_conversation": lambda s: s.conversations.get_conversation("conv_open"),
    "update_conversation": lambda s: s.conversations.update_conversation("conv_open", {"k": 2}),
    "delete_conversation": lambda s: s.conversations.delete_conversation("conv_open"),
    "create_item": lambda s: s.items.create_item(NewConversationItem("message", ["x"], id="msg_closed")),
    "link_item": lambda s: s.items.link_item("conv_open", "msg_closed", at(1)),
    "link_items": lambda s: s.items.link_items("conv_open", [("msg_closed", at(1))]),
    "list_items": lambda s: s.items.list_items("conv_open", ListParams(10)),
    "get_item": lambda s: s.items.get_item("msg_open"),
    "is_item_linked": lambda s: s.items.is_item_linked("conv_open", "msg_open"),
    "delete_item": lambda s: s.items.delete_item("conv_open", "msg_open"),
    "store_response": lambda s: s.responses.store_response(StoredResponse(id="resp_closed")),
    "get_response": lambda s: s.responses.get_response("resp_open"),
    "delete_response": lambda s: s.responses.delete_response("resp_open"),
    "get_response_chain": lambda s: s.responses.get_response_chain("resp_open", None),
    "list_identifier_responses": lambda s: s.responses.list_identifier_responses("user_open", None),
    "delete_identifier_responses": lambda s: s.responses.delete_identifier_responses("user_open"),
}


def test_every_call_after_close_raises_the_same_error(case: Case) -> None:
    s = case.storage
    s.conversations.create_conversation(NewConversation(id="conv_open", metadata={"k": 1}))
    s.items.create_item(NewConversationItem("message", ["x"], id="msg_open"))
    s.items.link_item("conv_open", "msg_open", at(0))
    s.responses.store_response(StoredResponse(id="resp_open", safety_identifier="user_open"))
    s.close()
    s.close()  # idempotent
    for name, call in CALLS.items():
        with pytest.raises(BackendUnavailableError) as info:
            call(s)
        assert type(info.value) is BackendUnavailableError, name
        assert str(info.value) == f"the {case.backend} storage is closed", name
    # Even a call answered without the backend (limit 0) is refused.
    with pytest.raises(BackendUnavailableError):
        s.items.list_items("conv_open", ListParams(0))


def _schema_without_metadata(schema: SchemaConfig | None) -> SchemaConfig:
    schema = schema or SchemaConfig()
    return attrs.evolve(schema, conversations=attrs.evolve(schema.conversations, skip_columns=frozenset({"metadata"})))


@pytest.fixture
def no_metadata(backend_variant: tuple[BackendUnderTest, SchemaConfig | None, str]) -> Iterator[Storage]:
    backend, schema, _ = backend_variant
    skipping = _schema_without_metadata(schema)
    storage = create_storage(backend.config(schema=skipping))
    try:
        yield storage
    finally:
        storage.close()
        backend.wipe(skipping)


def test_update_with_the_metadata_column_skipped_returns_the_given_metadata(
    no_metadata: Storage, backend_variant: tuple[BackendUnderTest, SchemaConfig | None, str]
) -> None:
    # As create_conversation does, and as upstream does: the metadata given comes back, though
    # a skipped column stores nothing (reads then give None). Memory has no schema: it stores it.
    stores = backend_variant[0].name == "memory"
    s = no_metadata
    created = s.conversations.create_conversation(NewConversation(id="conv_skip", metadata={"k": 1}))
    assert created.metadata == {"k": 1}
    updated = s.conversations.update_conversation("conv_skip", {"k": 2, "t": [1, 2]})
    assert updated is not None
    assert updated.metadata == {"k": 2, "t": [1, 2]}
    assert updated.created_at == created.created_at
    cleared = s.conversations.update_conversation("conv_skip", None)
    assert cleared is not None
    assert cleared.metadata is None
    assert cleared.created_at == created.created_at
    got = s.conversations.get_conversation("conv_skip")
    assert got is not None
    assert got.metadata is None
    s.conversations.update_conversation("conv_skip", {"k": 3})
    got = s.conversations.get_conversation("conv_skip")
    assert got is not None
    assert got.metadata == ({"k": 3} if stores else None)
    assert s.conversations.update_conversation("conv_absent", {"k": 2}) is None
    assert s.conversations.get_conversation("conv_absent") is None
