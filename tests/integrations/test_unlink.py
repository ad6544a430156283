"""The backend contract's ``unlink_items`` (the adapters' pop and clear), on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from datacon import ListParams, NewConversationItem, PostgresConfig, Storage, StorageFactoryConfig, create_storage
from tests.servers.postgres import PostgresBackend
from tests.support import sql_store


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


@pytest.mark.postgres
def test_postgres_unlink_statements_use_indexes(postgres_backend: PostgresBackend) -> None:
    """pop_item's statements on a table of 50,000 links: the link by its key, the "linked
    anywhere else?" probe by an index that item_id leads (the links' key since schema v7,
    v5's item index before), a conversation's links by the page index; never a sequential
    scan."""
    url = postgres_backend.create_database()
    try:
        config = StorageFactoryConfig(backend="postgres", postgres=PostgresConfig(db_url=url))
        with create_storage(config) as storage:
            sql = sql_store(storage).sql
            with postgres_backend.connect(url) as conn:
                conn.execute(
                    "INSERT INTO conversation_items (id, item_type, content, created_at) SELECT 'msg_' || g,"
                    " 'message', '{}', now() FROM generate_series(1, 50000) g"
                )
                conn.execute(
                    "INSERT INTO conversation_item_links (conversation_id, item_id, added_at) SELECT"
                    " 'conv_' || (g % 5000), 'msg_' || g, now() FROM generate_series(1, 50000) g"
                )
                conn.execute("ANALYZE")
                conn.execute("SET random_page_cost = 1.1")  # SSD storage (as the retention test)
                # The index that finds an item's links: item_id leads it. (Without one,
                # PostgreSQL reads the whole primary key index instead: no "Seq Scan", yet a
                # full scan, so the plan must name this index.)
                by_item = [
                    name
                    for name, definition in conn.execute(
                        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'conversation_item_links'"
                    ).fetchall()
                    if "(item_id" in definition
                ]
                assert by_item
                plans = {}
                for name, statement, params in (
                    ("link", sql.link_delete, {"cid": "conv_7", "iid": "msg_7"}),
                    ("orphan", sql.item_delete_unlinked, {"id": "msg_7", "lid": "msg_7"}),
                    ("conversation", sql.conv_delete[0], {"id": "conv_7"}),
                ):
                    rows = conn.execute(f"EXPLAIN {statement}", params).fetchall()
                    plans[name] = "\n".join(str(row[0]) for row in rows)
    finally:
        postgres_backend.drop_database(url)
    assert "Seq Scan" not in plans["link"], plans["link"]
    assert "Index Cond" in plans["link"], plans["link"]
    assert "Seq Scan" not in plans["orphan"], plans["orphan"]
    assert any(f"using {name} on conversation_item_links" in plans["orphan"] for name in by_item), plans["orphan"]
    assert by_item == ["pk_conv_item_link"]  # v7: the key itself, no separate item index
    assert "Seq Scan on conversation_item_links" not in plans["conversation"], plans["conversation"]
    assert "conv_item_links_order_idx" in plans["conversation"], plans["conversation"]  # an index or bitmap scan
