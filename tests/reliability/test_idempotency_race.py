"""Idempotency keys (SPEC 7.3) raced across separate storages: each its own pool (SQLite: its own
writer lock), as separate application processes would be, on one database or server.

The conformance suite races threads through one storage; here only the database resolves the
race (the key's primary key, ``SET`` inside a script), so exactly one record is written and
every caller gets that record or ``ConflictError``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from datacon import Conversation, ListParams, NewConversation, NewConversationItem, Storage, create_storage
from datacon.errors import ConflictError
from tests.support import BackendUnderTest

pytestmark = pytest.mark.reliability

STORAGES = 4
ROUNDS = 5


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def storages(request: pytest.FixtureRequest) -> Iterator[list[Storage]]:
    backend: BackendUnderTest = request.getfixturevalue(f"{request.param}_backend")
    backend.wipe()
    opened = [create_storage(backend.config()) for _ in range(STORAGES)]
    try:
        yield opened
    finally:
        for storage in opened:
            storage.close()
        backend.wipe()


def _race(storages: list[Storage], call: Any) -> list[Any]:
    barrier = threading.Barrier(len(storages))
    results: list[Any] = [None] * len(storages)

    def run(n: int) -> None:
        barrier.wait()
        try:
            results[n] = call(storages[n])
        except ConflictError as exc:
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(storages))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_separate_storages_racing_with_one_key_write_one_record(storages: list[Storage]) -> None:
    for round_ in range(ROUNDS):
        key = f"race-{uuid.uuid4().hex}"
        results = _race(
            storages, lambda s, k=key: s.conversations.create_conversation(NewConversation(), idempotency_key=k)
        )
        made = [r for r in results if isinstance(r, Conversation)]
        assert made, results
        assert all(r == made[0] or isinstance(r, ConflictError) for r in results), results
        assert len(storages[0].conversations.list_conversations(ListParams(100)).data) == round_ + 1

        conv = f"conv_race_{round_}"
        turn = [NewConversationItem("message", {"n": n}) for n in range(3)]
        turns = _race(storages, lambda s, c=conv, t=turn, k=key: s.items.append_items(c, t, idempotency_key=k))
        lists = [r for r in turns if isinstance(r, list)]
        assert lists, turns
        assert all(r == lists[0] or isinstance(r, ConflictError) for r in turns), turns
        assert storages[0].items.list_items(conv, ListParams(10)) == lists[0]  # one turn, not two
