"""The export seam and JSON Lines format of ``datacon.transfer``, on the memory backend."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from datacon import (
    Conversation,
    ConversationItem,
    NewConversation,
    NewConversationItem,
    StorageFactoryConfig,
    StoredResponse,
    create_storage,
    transfer,
)
from datacon.errors import InvalidInputError
from datacon.models import Link

T0 = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


def records(n: int = 7) -> list[transfer.Record]:
    out: list[transfer.Record] = [
        Conversation(id=f"conv_{c}", created_at=T0 + timedelta(days=c), metadata=None if c else {"k": [1, 2.5]})
        for c in range(3)
    ]
    out += [
        ConversationItem(f"msg_{n:03}", None, "message", "user", {"b": 1, "a": "é"}, None, T0 + timedelta(hours=n))
        for n in range(n)
    ]
    out += [Link(f"conv_{n % 3}", f"msg_{n:03}", T0 + timedelta(seconds=n // 2)) for n in range(n)]
    out += [Link("conv_none", "msg_000", T0)]  # a link to a conversation that does not exist is kept
    out += [
        StoredResponse(id=f"r{n}", previous_response_id=f"r{n - 1}" if n else None, created_at=T0) for n in range(4)
    ]
    return out


def memory() -> object:
    return create_storage(StorageFactoryConfig())


def test_dump_record_is_canonical_and_parses_back() -> None:
    for record in records():
        line = transfer.dump_record(record)
        assert json.loads(line)["type"] == transfer.kind_of(record)
        assert list(json.loads(line)) == sorted(json.loads(line))
        assert " " not in line.replace("é", "")
        assert transfer.parse_record(line) == record
    item = transfer.dump_record(records()[3])
    assert '"created_at":"2026-01-02T03:04:05.000006Z"' in item
    assert '"content":{"a":"é","b":1}' in item


def test_parse_converts_offsets_to_utc_and_reports_bad_lines() -> None:
    line = '{"type":"link","conversation_id":"c","item_id":"i","added_at":"2026-01-02T05:04:05.5+02:00"}'
    link = transfer.parse_record(line)
    assert link == Link("c", "i", datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=UTC))
    bad = [
        (
            '{"type":"link","conversation_id":"c","item_id":"i"}',
            "line 4: invalid link: added_at: required field missing",
        ),
        ('{"type":"conversation","id":"","created_at":"2026-01-01T00:00:00Z","metadata":null}', "must not be empty"),
        (
            '{"type":"conversation","id":"c","created_at":"2026-01-01T00:00:00Z","metadata":[1]}',
            "invalid conversation: metadata: expected a mapping",
        ),
        (
            '{"type":"item","id":"i","response_id":null,"item_type":"' + "x" * 40 + '","role":null,'
            '"content":null,"status":null,"created_at":"2026-01-01T00:00:00Z"}',
            "item_type is 40 characters",
        ),
        ("{", "line 4: not valid JSON"),
    ]
    for text, expected in bad:
        with pytest.raises(InvalidInputError) as raised:
            transfer.parse_record(text, 4)
        assert expected in str(raised.value)


@pytest.mark.parametrize("batch", [1, 2, 3, 500])
def test_iter_all_walks_every_record_in_dump_order_whatever_the_batch(batch: int) -> None:
    with create_storage(StorageFactoryConfig()) as storage:
        given = records()
        counts = transfer.import_records(storage, reversed(given), batch)
        assert counts.created == {"conversation": 3, "item": 7, "link": 8, "response": 4}
        assert counts.warnings == []
        out = list(transfer.iter_all(storage, batch))
        key = {"conversation": 0, "item": 1, "link": 2, "response": 3}
        assert [transfer.kind_of(r) for r in out] == sorted((transfer.kind_of(r) for r in out), key=key.__getitem__)
        assert sorted(map(transfer.dump_record, out)) == sorted(map(transfer.dump_record, given))
        assert transfer.counts(storage) == {"conversation": 3, "item": 7, "link": 8, "response": 4}
        # created_at is restored as given, not the import time.
        restored = storage.conversations.get_conversation("conv_2")
        assert restored is not None
        assert restored.created_at == T0 + timedelta(days=2)


def test_digest_ignores_order_and_sees_any_change() -> None:
    with create_storage(StorageFactoryConfig()) as a, create_storage(StorageFactoryConfig()) as b:
        transfer.import_records(a, records())
        transfer.import_records(b, list(reversed(records())), batch=2)
        assert transfer.compare_digests(transfer.digest(a), transfer.digest(b)) == []
        b.items.delete_item("conv_0", "msg_003")
        b.items.link_item("conv_0", "msg_003", T0 + timedelta(microseconds=1))
        assert transfer.compare_digests(transfer.digest(a), transfer.digest(b)) == [
            "links: same count (8) but different content"
        ]


def test_import_skips_existing_records_and_counts_them() -> None:
    with create_storage(StorageFactoryConfig()) as storage:
        storage.conversations.create_conversation(NewConversation(id="conv_1", metadata={"mine": True}))
        result = transfer.import_records(storage, records())
        assert result.skipped == {"conversation": 1, "item": 0, "link": 0, "response": 0}
        kept = storage.conversations.get_conversation("conv_1")
        assert kept is not None
        assert kept.metadata == {"mine": True}  # never overwritten
        again = transfer.import_records(storage, records(), batch=3)
        assert again.created == dict.fromkeys(transfer.KINDS, 0)
        assert again.skipped == {"conversation": 3, "item": 7, "link": 8, "response": 4}


def test_public_api_fallback_is_idempotent_and_warns() -> None:
    with create_storage(StorageFactoryConfig()) as storage:
        warnings: list[str] = []
        writer = transfer.copy.ApiWriter(storage, warnings)
        given = records(4)
        storage.items.create_item(NewConversationItem("message", None, id="msg_001"))
        storage.items.link_item("conv_1", "msg_001", T0)
        by_kind: dict[str, list[transfer.Record]] = {}
        for record in given:
            by_kind.setdefault(transfer.kind_of(record), []).append(record)
        created = {kind: writer.restore(kind, batch) for kind, batch in by_kind.items()}  # type: ignore[arg-type]
        assert created == {"conversation": 3, "item": 3, "link": 4, "response": 4}
        assert storage.items.is_item_linked("conv_2", "msg_002")
        assert storage.items.is_item_linked("conv_none", "msg_000")
        assert {kind: writer.restore(kind, batch) for kind, batch in by_kind.items()} == dict.fromkeys(  # type: ignore[arg-type]
            transfer.KINDS, 0
        )
        assert warnings == [
            "the memory backend cannot restore conversations as given: their created_at is the import time",
            "the memory backend cannot restore items as given: their created_at is the import time",
        ]
        response = storage.responses.get_response("r3")
        assert response is not None
        assert response.created_at == T0  # responses carry their own


def test_a_backend_without_the_seam_is_refused() -> None:
    with create_storage(StorageFactoryConfig(backend="none")) as storage:
        with pytest.raises(transfer.NotEnumerableError) as raised:
            transfer.enumerable(storage)
        assert "the none backend cannot be enumerated" in str(raised.value)
        assert "lists its records" in str(raised.value)
        assert transfer.restorable(storage) is None
