"""Every public method of the three sync storage Protocols has a matching coroutine in datacon.aio."""

from __future__ import annotations

import inspect

import pytest

from datacon import aio
from datacon import storage as sync_api

PAIRS = [
    (sync_api.ConversationStorage, aio.AsyncConversationStorage),
    (sync_api.ConversationItemStorage, aio.AsyncConversationItemStorage),
    (sync_api.ResponseStorage, aio.AsyncResponseStorage),
    (sync_api.Storage, aio.AsyncStorage),
]
# The async name of a sync method where they differ (httpx, anyio AsyncResource).
RENAMED = {"close": "aclose"}
# Storage methods that are not I/O and so have no coroutine twin (the sync Storage is `.sync`).
NOT_IO = {(sync_api.Storage, "pool_stats")}


def public_methods(cls: type) -> list[str]:
    return sorted(
        name
        for name, member in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(member) and (cls, name) not in NOT_IO
    )


def twin_name(name: str) -> str:
    return RENAMED.get(name, name)


def shape(func: object) -> list[tuple[str, object, object, object]]:
    """Parameters as (name, kind, default, annotation string); annotations are strings here."""
    signature = inspect.signature(func)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default, p.annotation) for p in signature.parameters.values()]


def test_the_protocols_still_have_the_spec_methods() -> None:
    # Guards the parity test itself: were the Protocols empty, every check below would pass.
    assert len(public_methods(sync_api.ConversationStorage)) == 5
    assert len(public_methods(sync_api.ConversationItemStorage)) == 9
    assert len(public_methods(sync_api.ResponseStorage)) == 6
    assert public_methods(sync_api.Storage) == ["close", "erase_identifier", "health", "prune"]


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS, ids=[pair[1].__name__ for pair in PAIRS])
def test_every_sync_method_has_an_async_twin_with_the_same_signature(sync_cls: type, async_cls: type) -> None:
    for name in public_methods(sync_cls):
        twin = getattr(async_cls, twin_name(name), None)
        assert twin is not None, f"{async_cls.__name__} lacks {twin_name(name)} (twin of {name})"
        assert inspect.iscoroutinefunction(twin), f"{async_cls.__name__}.{twin_name(name)} is not a coroutine"
        sync_method = getattr(sync_cls, name)
        assert shape(twin) == shape(sync_method), f"{async_cls.__name__}.{twin_name(name)} parameters differ"
        sync_return = inspect.signature(sync_method).return_annotation
        assert isinstance(sync_return, str), "datacon.storage must keep `from __future__ import annotations`"
        assert inspect.signature(twin).return_annotation == sync_return, f"{name}: return annotation differs"
        assert twin.__doc__, f"{async_cls.__name__}.{twin_name(name)} has no docstring"


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS, ids=[pair[1].__name__ for pair in PAIRS])
def test_the_async_side_adds_no_public_coroutine_without_a_sync_twin(sync_cls: type, async_cls: type) -> None:
    expected = {twin_name(name) for name in public_methods(sync_cls)}
    coroutines = {
        name
        for name, member in vars(async_cls).items()
        if not name.startswith("_") and inspect.iscoroutinefunction(member)
    }
    assert coroutines == expected


def test_storage_attributes_are_the_async_twins() -> None:
    from datacon import create_storage

    with create_storage() as sync_storage:
        storage = aio.AsyncStorage(sync_storage)
        assert isinstance(storage.conversations, aio.AsyncConversationStorage)
        assert isinstance(storage.items, aio.AsyncConversationItemStorage)
        assert isinstance(storage.responses, aio.AsyncResponseStorage)
        assert storage.wrapped is sync_storage
        assert storage.sync is sync_storage
        assert storage.conversations.wrapped is sync_storage.conversations
        assert storage.items.wrapped is sync_storage.items
        assert storage.responses.wrapped is sync_storage.responses
        responses, conversations, items = storage
        assert (responses, conversations, items) == (storage.responses, storage.conversations, storage.items)


def test_async_storage_rejects_what_is_not_a_storage() -> None:
    with pytest.raises(TypeError, match="wraps a datacon Storage"):
        aio.AsyncStorage(object())  # type: ignore[arg-type]


def test_the_facade_is_not_reexported_from_the_package_root() -> None:
    import datacon

    assert not hasattr(datacon, "AsyncStorage")
    assert "AsyncStorage" not in datacon.__all__
    assert {"AsyncStorage", "create_async_storage"} <= set(aio.__all__)
