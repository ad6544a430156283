"""Export then import keeps a turn's order (SPEC §7.2), on every backend that can export.

The dump lists each conversation's links in their list order ``(added_at, sequence, item_id)``
and a restore sequences links in the order given, so links that share one ``added_at`` come
back in the order they were linked, not by item id, into the same backend and into another.
"""

from __future__ import annotations

from datetime import UTC, datetime

from datacon import ListParams, NewConversation, NewConversationItem, SortOrder, Storage, create_storage, transfer
from datacon.backends.base import Enumerable, RecordKind
from datacon.models import Link
from datacon.schema import SchemaConfig
from tests.support import BackendUnderTest

T0 = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
# Ids that sort against the order they are linked in: an order by item id would reverse them.
TURN = ["msg_z", "fc_y", "fco_x", "msg_a"]
ORDER = [*TURN, "msg_0"]
KINDS: list[RecordKind] = ["conversation", "item", "link"]


def test_export_then_import_keeps_the_order_of_links_sharing_one_added_at(
    backend_variant: tuple[BackendUnderTest, SchemaConfig | None, str],
) -> None:
    backend, schema, _ = backend_variant
    backend.wipe(schema)  # the dump must hold this test's records only (a shared server may hold others')
    try:
        with create_storage(backend.config(schema=schema)) as storage:
            storage.conversations.create_conversation(NewConversation(id="conv_t"))
            turn = [NewConversationItem("message", {"n": n}, id=item_id) for n, item_id in enumerate(TURN)]
            storage.items.append_items("conv_t", turn, T0)
            # A later call at the same added_at lists after the turn (call order).
            storage.items.append_items("conv_t", [NewConversationItem("message", "later", id="msg_0")], T0)
            storage.items.append_items("conv_u", [NewConversationItem("message", "other", id="msg_u")], T0)
            assert [i.id for i in storage.items.list_items("conv_t", ListParams(10))] == ORDER
            # Pages of 2 split the turn: the export's cursor carries the sequence.
            dump = list(transfer.iter_all(storage, 2))
        links = [r for r in dump if isinstance(r, Link)]
        assert [link.item_id for link in links if link.conversation_id == "conv_t"] == ORDER
        assert [link.conversation_id for link in links] == ["conv_t"] * 5 + ["conv_u"]

        def check(target: Storage) -> None:
            items = target.items
            assert [i.id for i in items.list_items("conv_t", ListParams(10))] == ORDER
            assert [i.id for i in items.list_items("conv_t", ListParams(10, SortOrder.DESC))] == ORDER[::-1]

        # Into another backend (memory), in batches of 2, and into the same backend, emptied.
        with create_storage("memory://") as other:
            transfer.import_records(other, dump, 2)
            check(other)
        backend.wipe(schema)
        with create_storage(backend.config(schema=schema)) as fresh:
            counts = transfer.import_records(fresh, dump, 2)
            assert counts.created["link"] == 6
            check(fresh)
            # Importing again skips every link and changes no order.
            assert transfer.import_records(fresh, dump, 2).created["link"] == 0
            check(fresh)
    finally:
        backend.wipe(schema)  # the next variant may share this server


def test_a_later_enumeration_or_count_sees_records_written_after_an_earlier_one(
    backend_variant: tuple[BackendUnderTest, SchemaConfig | None, str],
) -> None:
    # Redis enumerates from a snapshot of its keys: a new enumeration (and every count) takes
    # a new one, so a storage kept open across exports never reports stale data.
    backend, schema, _ = backend_variant
    try:
        with create_storage(backend.config(schema=schema)) as storage:
            raw = storage.raw
            assert isinstance(raw, Enumerable), raw
            storage.conversations.create_conversation(NewConversation(id="conv_a"))
            storage.items.append_items("conv_a", [NewConversationItem("message", "a", id="msg_a")], T0)
            assert [raw.count(kind) for kind in KINDS] == [1, 1, 1]
            assert [c.id for c in raw.iter_conversations(None, 10)] == ["conv_a"]
            storage.conversations.create_conversation(NewConversation(id="conv_b"))
            storage.items.append_items("conv_b", [NewConversationItem("message", "b", id="msg_b")], T0)
            assert [raw.count(kind) for kind in KINDS] == [2, 2, 2]
            assert [c.id for c in raw.iter_conversations(None, 10)] == ["conv_a", "conv_b"]
            assert [i.id for i in raw.iter_items(None, 10)] == ["msg_a", "msg_b"]
            assert [row[0].item_id for row in raw.iter_links(None, 10)] == ["msg_a", "msg_b"]
    finally:
        backend.wipe(schema)
