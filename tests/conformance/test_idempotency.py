"""Conformance: idempotent retries (SPEC §7.3), on every backend, sync and through the async facade."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

from datacon import (
    BeforeHookResult,
    Conversation,
    ListParams,
    NewConversation,
    NewConversationItem,
    RequestContext,
    SchemaConfig,
    Storage,
    StorageHook,
    StorageOperation,
    StoredResponse,
    create_storage,
)
from datacon.backends.base import Enumerable, RecordKind
from datacon.errors import ConflictError, HookRejectedError, InvalidInputError
from tests.conformance._util import at
from tests.support import BackendUnderTest, Case


def _key() -> str:
    return f"idem-{uuid.uuid4().hex}"


def _count(case: Case | Storage, kind: RecordKind) -> int:
    """How many records of ``kind`` the backend holds (through the sync storage's backend)."""
    storage: Any = case.storage if isinstance(case, Case) else case
    raw = storage.raw if isinstance(storage, Storage) else storage.facade.sync.raw
    assert isinstance(raw, Enumerable), raw
    return raw.count(kind)


def _item(item_id: str | None = None, text: str = "hi") -> NewConversationItem:
    return NewConversationItem("message", [{"type": "input_text", "text": text}], id=item_id, role="user")


# A second call with the same key returns the first call's result (same ids, same timestamps)
# and writes nothing.


def test_create_conversation_retry_returns_the_first_result_and_writes_nothing(case: Case) -> None:
    key = _key()
    first = case.conversations.create_conversation(NewConversation(metadata={"topic": "a"}), idempotency_key=key)
    again = case.conversations.create_conversation(NewConversation(metadata={"topic": "a"}), idempotency_key=key)
    assert again == first  # same id, same created_at, same metadata
    assert _count(case, "conversation") == 1
    assert case.conversations.get_conversation(first.id) == first


def test_create_item_retry_returns_the_first_result_and_writes_nothing(case: Case) -> None:
    key = _key()
    first = case.items.create_item(_item(), idempotency_key=key)
    again = case.items.create_item(_item(), idempotency_key=key)
    assert again == first
    assert again.created_at == first.created_at
    assert _count(case, "item") == 1
    assert case.items.get_item(first.id) == first


def test_create_item_retry_with_an_explicit_id_is_no_conflict(case: Case) -> None:
    key = _key()
    first = case.items.create_item(_item("msg_idem_1"), idempotency_key=key)
    assert case.items.create_item(_item("msg_idem_1"), idempotency_key=key) == first
    with pytest.raises(ConflictError):  # without the key, the id exists
        case.items.create_item(_item("msg_idem_1"))


def test_append_items_retry_returns_the_first_result_and_writes_nothing(case: Case) -> None:
    conv = case.conversations.create_conversation(NewConversation()).id
    key = _key()
    turn = [_item(text="question"), NewConversationItem("function_call", {"name": "f"}), _item(text="answer")]
    first = case.items.append_items(conv, turn, idempotency_key=key)  # added_at omitted: now
    time.sleep(0.002)  # a second write would get another added_at
    again = case.items.append_items(conv, turn, idempotency_key=key)
    assert again == first
    assert [item.created_at for item in again] == [item.created_at for item in first]
    assert case.items.list_items(conv, ListParams(10)) == first
    assert _count(case, "item") == 3
    assert _count(case, "link") == 3


def test_store_response_retry_with_the_same_object_returns_its_id_and_writes_nothing(case: Case) -> None:
    key = _key()
    response = StoredResponse(input=[{"role": "user", "content": "hi"}], model="m", safety_identifier="u1")
    assert case.responses.store_response(response, idempotency_key=key) == response.id
    assert case.responses.store_response(response, idempotency_key=key) == response.id  # no ConflictError
    assert _count(case, "response") == 1
    assert case.responses.get_response(response.id) is not None


# The same key with different arguments -> ConflictError (nothing written).


def test_the_same_key_with_other_arguments_is_a_conflict(case: Case) -> None:
    key = _key()
    conv = case.conversations.create_conversation(NewConversation(metadata={"v": 1}), idempotency_key=key)
    with pytest.raises(ConflictError, match="idempotency_key"):
        case.conversations.create_conversation(NewConversation(metadata={"v": 2}), idempotency_key=key)
    assert _count(case, "conversation") == 1
    assert case.conversations.get_conversation(conv.id) == conv

    item_key = _key()
    case.items.create_item(_item(text="one"), idempotency_key=item_key)
    with pytest.raises(ConflictError, match="idempotency_key"):
        case.items.create_item(_item(text="two"), idempotency_key=item_key)
    assert _count(case, "item") == 1

    turn_key = _key()
    case.items.append_items(conv.id, [_item(text="one")], at(0), idempotency_key=turn_key)
    with pytest.raises(ConflictError, match="idempotency_key"):
        case.items.append_items(conv.id, [_item(text="one")], at(1), idempotency_key=turn_key)  # other added_at
    assert len(case.items.list_items(conv.id, ListParams(10))) == 1


def test_a_rebuilt_stored_response_is_other_arguments(case: Case) -> None:
    # Arguments are compared as given: a StoredResponse built anew has a new id and created_at.
    key = _key()
    case.responses.store_response(StoredResponse(model="m"), idempotency_key=key)
    with pytest.raises(ConflictError, match="idempotency_key"):
        case.responses.store_response(StoredResponse(model="m"), idempotency_key=key)
    assert _count(case, "response") == 1


# Keys are scoped per operation, and per conversation for append_items.


def test_keys_are_scoped_per_operation(case: Case) -> None:
    key = _key()
    conv = case.conversations.create_conversation(NewConversation(), idempotency_key=key)
    item = case.items.create_item(_item(), idempotency_key=key)
    response = StoredResponse(model="m")
    assert case.responses.store_response(response, idempotency_key=key) == response.id
    made = case.items.append_items(conv.id, [_item()], at(0), idempotency_key=key)
    assert len({conv.id, item.id, response.id, made[0].id}) == 4
    assert _count(case, "conversation") == 1
    assert _count(case, "item") == 2


def test_append_items_keys_are_scoped_per_conversation(case: Case) -> None:
    key = _key()
    one = case.items.append_items("conv_idem_a", [_item()], at(0), idempotency_key=key)
    two = case.items.append_items("conv_idem_b", [_item()], at(0), idempotency_key=key)
    assert one[0].id != two[0].id
    assert case.items.list_items("conv_idem_a", ListParams(10)) == one
    assert case.items.list_items("conv_idem_b", ListParams(10)) == two


# A call that failed wrote nothing and leaves its key unused.


def test_a_failed_call_leaves_its_key_unused(case: Case) -> None:
    case.items.create_item(_item("msg_taken"))
    key = _key()
    with pytest.raises(ConflictError):
        case.items.create_item(_item("msg_taken", text="other"), idempotency_key=key)
    # Had the failed call kept the key, other arguments would be a conflict now.
    made = case.items.create_item(_item("msg_free"), idempotency_key=key)
    assert case.items.create_item(_item("msg_free"), idempotency_key=key) == made

    conv = case.conversations.create_conversation(NewConversation()).id
    turn_key = _key()
    with pytest.raises(ConflictError):  # one of the ids exists: nothing appended
        case.items.append_items(conv, [_item("msg_new_1"), _item("msg_taken")], at(0), idempotency_key=turn_key)
    assert case.items.list_items(conv, ListParams(10)) == []
    done = case.items.append_items(conv, [_item("msg_new_2")], at(0), idempotency_key=turn_key)
    assert case.items.list_items(conv, ListParams(10)) == done

    conv_key = _key()
    with pytest.raises(ConflictError):
        case.conversations.create_conversation(NewConversation(id=conv), idempotency_key=conv_key)
    fresh = case.conversations.create_conversation(NewConversation(metadata={"n": 1}), idempotency_key=conv_key)
    assert fresh.id != conv

    response = StoredResponse(model="m")
    case.responses.store_response(response)
    response_key = _key()
    with pytest.raises(ConflictError):
        case.responses.store_response(response, idempotency_key=response_key)
    other = StoredResponse(model="m")
    assert case.responses.store_response(other, idempotency_key=response_key) == other.id


# Bad keys: InvalidInputError naming the parameter, nothing written.


@pytest.mark.parametrize("bad", ["", "k" * 256, 42, b"bytes"])
def test_bad_keys_are_refused_before_any_write(case: Case, bad: Any) -> None:
    calls: list[Callable[[], object]] = [
        lambda: case.conversations.create_conversation(NewConversation(), idempotency_key=bad),
        lambda: case.items.create_item(_item(), idempotency_key=bad),
        lambda: case.items.append_items("conv_bad_key", [_item()], at(0), idempotency_key=bad),
        lambda: case.responses.store_response(StoredResponse(model="m"), idempotency_key=bad),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="idempotency_key"):
            call()
    for kind in ("conversation", "item", "link", "response"):
        assert _count(case, kind) == 0


def test_keys_of_255_characters_and_any_text_are_accepted(case: Case) -> None:
    for key in ("k" * 255, "a:b{c}%d/é 🙂", "%3A", ":"):
        first = case.conversations.create_conversation(NewConversation(), idempotency_key=key)
        assert case.conversations.create_conversation(NewConversation(), idempotency_key=key) == first
    assert _count(case, "conversation") == 4


# Concurrent calls with one key create one record: the others return its result or raise
# ConflictError.


def _race(calls: int, call: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(calls)
    results: list[Any] = [None] * calls

    def run(n: int) -> None:
        barrier.wait()
        try:
            results[n] = call()
        except ConflictError as exc:
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_concurrent_calls_with_one_key_create_one_record(case: Case) -> None:
    key = _key()
    results = _race(6, lambda: case.conversations.create_conversation(NewConversation(), idempotency_key=key))
    made = [r for r in results if isinstance(r, Conversation)]
    assert made, results
    assert all(r == made[0] or isinstance(r, ConflictError) for r in results), results
    assert _count(case, "conversation") == 1

    turn_key = _key()
    turns = _race(6, lambda: case.items.append_items("conv_race", [_item(), _item()], idempotency_key=turn_key))
    lists = [r for r in turns if isinstance(r, list)]
    assert lists, turns
    assert all(r == lists[0] or isinstance(r, ConflictError) for r in turns), turns
    assert case.items.list_items("conv_race", ListParams(10)) == lists[0]
    assert _count(case, "item") == 2


# Hooks: a retry runs as a call (before and after, with the first call's result).


class _Recorder(StorageHook):
    def __init__(self, reject: bool = False) -> None:
        self.reject = reject
        self.calls: list[tuple[str, StorageOperation, Any]] = []

    def before(self, operation: StorageOperation, context: RequestContext | None, payload: Any) -> BeforeHookResult:
        self.calls.append(("before", operation, payload))
        if self.reject:
            return BeforeHookResult.reject("not now")
        return BeforeHookResult.cont()

    def after(
        self, operation: StorageOperation, context: RequestContext | None, payload: Any, result: Any, extra: Any
    ) -> None:
        self.calls.append(("after", operation, result))


@pytest.fixture
def opened(backend_variant: tuple[BackendUnderTest, SchemaConfig | None, str]) -> Iterator[Callable[..., Storage]]:
    """Opens sync storages of the backend under test (any config change), closes them, wipes."""
    backend, schema, _ = backend_variant
    storages: list[Storage] = []

    def open_(hook: StorageHook | None = None, **changes: Any) -> Storage:
        config = attrs.evolve(backend.config(schema=schema, hook=hook), **changes)
        storages.append(create_storage(config))
        return storages[-1]

    try:
        yield open_
    finally:
        for storage in storages:
            storage.close()
        backend.wipe(schema)


def test_a_retry_runs_the_hooks_with_the_first_result(opened: Callable[..., Storage]) -> None:
    recorder = _Recorder()
    storage = opened(recorder)
    key = _key()
    first = storage.conversations.create_conversation(NewConversation(), idempotency_key=key)
    storage.conversations.create_conversation(NewConversation(), idempotency_key=key)
    afters = [result for step, op, result in recorder.calls if step == "after"]
    assert len(afters) == 2
    assert afters[0] == afters[1]
    assert afters[0]["id"] == first.id


def test_a_rejected_call_leaves_its_key_unused(opened: Callable[..., Storage]) -> None:
    key = _key()
    with pytest.raises(HookRejectedError):
        opened(_Recorder(reject=True)).conversations.create_conversation(NewConversation(), idempotency_key=key)
    storage = opened()
    made = storage.conversations.create_conversation(NewConversation(metadata={"after": "reject"}), idempotency_key=key)
    assert storage.conversations.get_conversation(made.id) == made


class _Tenant(StorageHook):
    """Supplies the tenant_id extra column (declared by the renamed schema's conversations)."""

    def __init__(self) -> None:
        self.tenant = "t-1"

    def before(self, operation: StorageOperation, context: RequestContext | None, payload: Any) -> BeforeHookResult:
        return BeforeHookResult.cont({"tenant_id": self.tenant})

    def after(
        self, operation: StorageOperation, context: RequestContext | None, payload: Any, result: Any, extra: Any
    ) -> None:
        return None


def test_a_retry_keeps_the_first_calls_extra_columns(
    opened: Callable[..., Storage], backend_variant: tuple[BackendUnderTest, SchemaConfig | None, str]
) -> None:
    backend, _, variant = backend_variant
    if backend.name != "memory" and variant != "renamed":
        pytest.skip("only the renamed schema declares an extra column on conversations")
    hook = _Tenant()
    storage = opened(hook)
    key = _key()
    conv = storage.conversations.create_conversation(NewConversation(), idempotency_key=key)
    hook.tenant = "t-2"  # the retry's hook supplies another value: nothing is written with it
    assert storage.conversations.create_conversation(NewConversation(), idempotency_key=key) == conv
    listed = storage.conversations.list_conversations(ListParams(10), {"tenant_id": "t-1"})
    assert [c.id for c in listed.data] == [conv.id]
    assert storage.conversations.list_conversations(ListParams(10), {"tenant_id": "t-2"}).data == []


# Keys are kept at least idempotency_ttl_secs (and may then be forgotten).


def test_a_key_is_forgotten_after_its_ttl(opened: Callable[..., Storage]) -> None:
    storage = opened(idempotency_ttl_secs=1)
    key = _key()
    first = storage.conversations.create_conversation(NewConversation(), idempotency_key=key)
    assert storage.conversations.create_conversation(NewConversation(), idempotency_key=key) == first
    time.sleep(1.2)
    later = storage.conversations.create_conversation(NewConversation(), idempotency_key=key)
    assert later.id != first.id
    assert storage.conversations.create_conversation(NewConversation(), idempotency_key=key) == later
    assert _count(storage, "conversation") == 2


# Keys live in the same backend as the records: they survive a restart where records do.


def test_keys_survive_reopening_the_storage(opened: Callable[..., Storage], case_backend: str) -> None:
    if case_backend == "memory":
        pytest.skip("memory keeps nothing after its storage is closed, keys included")
    key = _key()
    first = opened()
    conv = first.conversations.create_conversation(NewConversation(), idempotency_key=key)
    response = StoredResponse(model="m")
    first.responses.store_response(response, idempotency_key=key)
    turn = first.items.append_items(conv.id, [_item()], at(0), idempotency_key=key)
    first.close()
    second = opened()
    assert second.conversations.create_conversation(NewConversation(), idempotency_key=key) == conv
    assert second.responses.store_response(response, idempotency_key=key) == response.id
    assert second.items.append_items(conv.id, [_item()], at(0), idempotency_key=key) == turn
    assert _count(second, "conversation") == 1
    assert _count(second, "item") == 1


@pytest.fixture
def case_backend(backend_variant: tuple[BackendUnderTest, SchemaConfig | None, str]) -> str:
    return backend_variant[0].name
