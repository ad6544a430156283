"""Conformance: hooks and request context wrap every backend the same way (SPEC §5)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from datacon import (
    BeforeHookResult,
    ListParams,
    NewConversation,
    NewConversationItem,
    RequestContext,
    SchemaConfig,
    Storage,
    StorageFactoryConfig,
    StorageHook,
    StorageOperation,
    StoredResponse,
    create_storage,
    current_request_context,
    request_context,
)
from datacon.backends.base import NO_EXTRA, Prunable
from datacon.errors import HookRejectedError
from tests.conformance._util import at
from tests.support import BackendUnderTest

Op = StorageOperation


class Recorder(StorageHook):
    """Records every call; rejects operations listed in ``reject``."""

    def __init__(self, reject: set[StorageOperation] | None = None, extra: Mapping[str, Any] | None = None) -> None:
        self.reject = reject or set()
        self.extra = dict(extra or {})
        self.before_calls: list[tuple[StorageOperation, RequestContext | None, Any]] = []
        self.after_calls: list[tuple[StorageOperation, Any, Any, Mapping[str, Any]]] = []

    def before(self, operation: StorageOperation, context: RequestContext | None, payload: Any) -> BeforeHookResult:
        self.before_calls.append((operation, context, payload))
        if operation in self.reject:
            return BeforeHookResult.reject(f"no {operation.value} today")
        return BeforeHookResult.cont(self.extra)

    def after(
        self,
        operation: StorageOperation,
        context: RequestContext | None,
        payload: Any,
        result: Any,
        extra: Mapping[str, Any],
    ) -> None:
        self.after_calls.append((operation, payload, result, extra))


@pytest.fixture
def hooked(
    backend_variant: tuple[BackendUnderTest, SchemaConfig | None, str],
) -> Iterator[tuple[Storage, Recorder]]:
    backend, schema, _ = backend_variant
    recorder = Recorder()
    storage = create_storage(backend.config(schema=schema, hook=recorder))
    try:
        yield storage, recorder
    finally:
        storage.close()
        backend.wipe(schema)


def test_every_operation_fires_before_and_after_with_upstream_payloads(hooked: tuple[Storage, Recorder]) -> None:
    storage, rec = hooked
    conv = storage.conversations.create_conversation(NewConversation(id="conv_h", metadata={"a": 1}))
    storage.conversations.get_conversation(conv.id)
    storage.conversations.update_conversation(conv.id, {"b": 2})
    item = storage.items.create_item(NewConversationItem("message", ["hi"], id="msg_h", role="user"))
    storage.items.link_item(conv.id, item.id, at(0))
    storage.items.link_items(conv.id, [("msg_h2", at(1)), ("msg_h3", at(2))])
    storage.items.append_items(conv.id, [NewConversationItem("message", {"t": 1}, id="msg_h4", role="user")], at(3))
    storage.items.list_items(conv.id, ListParams(5))
    storage.items.list_items_page(conv.id, ListParams(5))
    storage.items.get_item(item.id)
    storage.items.is_item_linked(conv.id, item.id)
    storage.items.delete_item(conv.id, item.id)
    response = StoredResponse(id="resp_h", safety_identifier="sid")
    storage.responses.store_response(response)
    storage.responses.get_response("resp_h")
    storage.responses.get_response_chain("resp_h", 3)
    storage.responses.list_identifier_responses("sid", 5)
    storage.responses.delete_response("resp_h")
    storage.responses.delete_identifier_responses("sid")
    storage.conversations.list_conversations(ListParams(2))
    storage.conversations.delete_conversation(conv.id)
    expected = set(StorageOperation)
    assert isinstance(storage.raw, Prunable)
    storage.prune(at(-86_400), dry_run=True)
    storage.erase_identifier("sid")

    # upstream's 17, then append_items (SPEC 7.2), list_conversations (7.5), list_items_page (7.4),
    # prune and erase_identifier (7.7)
    assert len(StorageOperation) == 22
    assert sorted(call[0] for call in rec.before_calls) == sorted(expected)  # each once
    assert sorted(call[0] for call in rec.after_calls) == sorted(expected)
    payloads = {op: payload for op, _, payload in rec.before_calls}
    assert payloads[Op.CREATE_CONVERSATION] == {"id": "conv_h", "metadata": {"a": 1}}
    assert payloads[Op.GET_CONVERSATION] == "conv_h"
    assert payloads[Op.UPDATE_CONVERSATION] == {"id": "conv_h", "metadata": {"b": 2}}
    assert payloads[Op.CREATE_ITEM] == {
        "id": "msg_h",
        "response_id": None,
        "item_type": "message",
        "role": "user",
        "content": ["hi"],
        "status": None,
    }
    assert payloads[Op.LINK_ITEM] == {
        "conversation_id": "conv_h",
        "item_id": "msg_h",
        "added_at": "2026-01-02T03:04:05.123456Z",
    }
    assert payloads[Op.LINK_ITEMS] == {"conversation_id": "conv_h", "items_count": 2}
    assert payloads[Op.APPEND_ITEMS] == {
        "conversation_id": "conv_h",
        "added_at": "2026-01-02T03:04:08.123456Z",
        "items": [
            {
                "id": "msg_h4",
                "response_id": None,
                "item_type": "message",
                "role": "user",
                "content": {"t": 1},
                "status": None,
            }
        ],
    }
    assert payloads[Op.LIST_ITEMS] == {
        "conversation_id": "conv_h",
        "params": {"limit": 5, "order": "Asc", "after": None},
    }
    assert payloads[Op.LIST_CONVERSATIONS] == {"params": {"limit": 2, "order": "Asc", "after": None}, "filter": {}}
    assert payloads[Op.LIST_ITEMS_PAGE] == payloads[Op.LIST_ITEMS]
    assert payloads[Op.IS_ITEM_LINKED] == {"conversation_id": "conv_h", "item_id": "msg_h"}
    assert payloads[Op.STORE_RESPONSE]["id"] == "resp_h"
    assert payloads[Op.STORE_RESPONSE]["safety_identifier"] == "sid"
    assert payloads[Op.GET_RESPONSE_CHAIN] == {"response_id": "resp_h", "max_depth": 3}
    assert payloads[Op.LIST_IDENTIFIER_RESPONSES] == {"identifier": "sid", "limit": 5}
    assert payloads[Op.DELETE_IDENTIFIER_RESPONSES] == {"identifier": "sid"}
    if Op.PRUNE in expected:
        assert payloads[Op.PRUNE] == {"older_than": "2026-01-01T03:04:05.123456Z", "dry_run": True}
        assert payloads[Op.ERASE_IDENTIFIER] == {"identifier": "sid", "dry_run": False}
    results = {op: result for op, _, result, _ in rec.after_calls}
    assert results[Op.CREATE_CONVERSATION]["id"] == "conv_h"
    assert results[Op.IS_ITEM_LINKED] is True
    assert results[Op.LINK_ITEM] is None
    assert results[Op.LIST_ITEMS_PAGE]["has_more"] is False
    assert results[Op.LIST_ITEMS_PAGE]["next_cursor"] is None
    assert [item["id"] for item in results[Op.APPEND_ITEMS]] == ["msg_h4"]
    assert results[Op.STORE_RESPONSE] == "resp_h"
    assert results[Op.DELETE_CONVERSATION] is True
    assert results[Op.DELETE_IDENTIFIER_RESPONSES] == 0
    if Op.PRUNE in expected:
        nothing = {"responses": 0, "conversations": 0, "links": 0, "items": 0}
        assert results[Op.PRUNE] == {**nothing, "dry_run": True}
        assert results[Op.ERASE_IDENTIFIER] == {**nothing, "dry_run": False}


def test_create_conversation_payload_is_empty_object_when_empty(hooked: tuple[Storage, Recorder]) -> None:
    storage, rec = hooked
    conv = storage.conversations.create_conversation(NewConversation())
    assert rec.before_calls[0][2] == {}
    assert rec.after_calls[0][2]["id"] == conv.id


def test_rejection_raises_and_skips_backend_and_after(hooked: tuple[Storage, Recorder]) -> None:
    storage, rec = hooked
    rec.reject = {Op.CREATE_CONVERSATION, Op.STORE_RESPONSE}
    with pytest.raises(HookRejectedError, match="no create_conversation today") as info:
        storage.conversations.create_conversation(NewConversation(id="conv_rej"))
    assert info.value.reason == "no create_conversation today"
    with pytest.raises(HookRejectedError):
        storage.responses.store_response(StoredResponse(id="resp_rej"))
    rec.reject = set()
    assert storage.conversations.get_conversation("conv_rej") is None
    assert storage.responses.get_response("resp_rej") is None
    assert Op.CREATE_CONVERSATION not in [call[0] for call in rec.after_calls]


class Exploding(StorageHook):
    def before(self, operation: StorageOperation, context: RequestContext | None, payload: Any) -> BeforeHookResult:
        raise RuntimeError("before blew up")

    def after(
        self,
        operation: StorageOperation,
        context: RequestContext | None,
        payload: Any,
        result: Any,
        extra: Mapping[str, Any],
    ) -> None:
        raise RuntimeError("after blew up")


def test_a_raising_hook_is_logged_and_ignored(
    backend_variant: tuple[BackendUnderTest, SchemaConfig | None, str], caplog: pytest.LogCaptureFixture
) -> None:
    backend, schema, _ = backend_variant
    with (
        caplog.at_level(logging.WARNING, logger="datacon.hooks"),
        create_storage(backend.config(schema=schema, hook=Exploding())) as storage,
    ):
        try:
            conv = storage.conversations.create_conversation(NewConversation(id="conv_boom"))
            assert storage.conversations.get_conversation(conv.id) is not None
        finally:
            backend.wipe(schema)
    messages = [record.getMessage() for record in caplog.records]
    assert any("before blew up" in m for m in messages)
    assert any("after blew up" in m for m in messages)


class ContextSpy(StorageHook):
    def __init__(self) -> None:
        self.contexts: list[RequestContext | None] = []
        self.extras: list[Mapping[str, Any]] = []

    def before(self, operation: StorageOperation, context: RequestContext | None, payload: Any) -> BeforeHookResult:
        self.contexts.append(context)
        assert current_request_context() == context
        return BeforeHookResult.cont({"tenant_id": context.get("tenant") if context else None})

    def after(
        self,
        operation: StorageOperation,
        context: RequestContext | None,
        payload: Any,
        result: Any,
        extra: Mapping[str, Any],
    ) -> None:
        self.extras.append(extra)


def test_request_context_reaches_hooks(backend_variant: tuple[BackendUnderTest, SchemaConfig | None, str]) -> None:
    backend, schema, _ = backend_variant
    spy = ContextSpy()
    with create_storage(backend.config(schema=schema, hook=spy)) as storage:
        try:
            storage.conversations.get_conversation("conv_x")
            with request_context(RequestContext({"tenant": "acme", "user": "u1"})):
                storage.conversations.create_conversation(NewConversation())
            with request_context({"tenant": "globex"}):
                storage.items.get_item("msg_x")
        finally:
            backend.wipe(schema)
    assert spy.contexts[0] is None
    assert spy.contexts[1] == RequestContext({"tenant": "acme", "user": "u1"})
    assert spy.contexts[2] is not None
    assert spy.contexts[2].get("tenant") == "globex"
    assert spy.extras[1] == {"tenant_id": "acme"}
    assert current_request_context() is None


class ExtraProbe(StorageHook):
    """Checks the extra-column values are current while the backend runs a write, not a read."""

    def __init__(self) -> None:
        self.seen_during: list[Mapping[str, Any]] = []

    def before(self, operation: StorageOperation, context: RequestContext | None, payload: Any) -> BeforeHookResult:
        return BeforeHookResult.cont({"tenant_id": "t-1"})


def test_extra_columns_are_passed_to_the_backend_write_only() -> None:
    seen: list[Mapping[str, Any]] = []
    with create_storage(StorageFactoryConfig(hook=ExtraProbe())) as storage:
        inner = storage.raw.conversations
        original = inner.create_conversation

        def spy(new: NewConversation, *, extra: Mapping[str, Any] = NO_EXTRA, idempotency_key: Any = None) -> Any:
            seen.append(dict(extra))
            return original(new, extra=extra, idempotency_key=idempotency_key)

        inner.create_conversation = spy  # type: ignore[method-assign]
        created = storage.conversations.create_conversation(NewConversation())
        assert seen == [{"tenant_id": "t-1"}]
        # The raw store called directly (as a restore does) gets no hook values.
        inner.create_conversation(NewConversation(id="conv_direct"))
        assert seen == [{"tenant_id": "t-1"}, {}]
        assert storage.conversations.get_conversation(created.id) == created
