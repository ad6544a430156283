"""SQLite's packed item copies (migration v6): every write keeps one, list_items reads it, and
the records are the same as the columns give, whatever the copy's state."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from datacon import (
    ConversationItem,
    ListParams,
    NewConversation,
    NewConversationItem,
    SchemaConfig,
    SortOrder,
    Storage,
    TableConfig,
)
from datacon._columns import ITEMS
from datacon.backends.sqlite.dialect import _EPOCH, _EXACT_FLOAT_US, SqliteDialect
from datacon.errors import BackendError, MigrationRequiredError
from datacon.transfer.copy import import_records, iter_all
from tests.backends.test_sqlite import open_sqlite
from tests.support import sql_store

CONTENTS: list[Any] = [
    [{"type": "input_text", "text": "plain"}],
    [{"type": "input_text", "text": 'quotes " and \\ backslash, tab\t, newline\n, \u00e9\u4e2d\U0001f600, \u2028'}],
    {"nested": {"list": [1, 2.5, -3, 1e300, 12345678901234567890, True, False, None]}},
    "a bare string",
    "",
    0,
    None,
    [],
    {},
]


def _items() -> list[NewConversationItem]:
    out = [NewConversationItem("message", content, role="user", status="completed") for content in CONTENTS]
    out.append(NewConversationItem("reasoning", [{"summary": []}]))  # no role, no status
    out.append(NewConversationItem("function_call", {"a": 1}, response_id="resp_1", status="in_progress"))
    out.append(NewConversationItem("message", [], id='msg_"odd\\id', role='r"ole'))
    return out


def _columns_read(storage: Storage, conversation_id: str, params: ListParams) -> list[ConversationItem]:
    """The page as the columns give it (the statement list_items used before v6)."""
    sql = sql_store(storage).sql
    ascending = params.order is SortOrder.ASC
    if params.after is None:
        statement = sql.items_first_asc if ascending else sql.items_first_desc
    else:
        statement = sql.items_asc if ascending else sql.items_desc
    store = sql_store(storage)
    with store.connector.session() as session:
        rows = session.fetchall(statement, {"cid": conversation_id, "after": params.after, "limit": params.limit})
    return store.decode_items(rows)


def _packed(path: Path) -> dict[str, str | None]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT id, packed FROM conversation_items").fetchall())
    finally:
        conn.close()


def _run(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "packed.db"


def _fill(storage: Storage) -> str:
    cid = storage.conversations.create_conversation(NewConversation()).id
    items = _items()
    storage.items.append_items(cid, items[:3])  # one statement, several rows
    storage.items.append_items(cid, items[3:4])  # the one-item path
    for new in items[4:]:
        item = storage.items.create_item(new)
        storage.items.link_item(cid, item.id, datetime.now(UTC))
    return cid


PAGES = [
    ListParams(100),
    ListParams(100, SortOrder.DESC),
    ListParams(3),
    ListParams(5, SortOrder.DESC),
]


def test_every_write_keeps_a_copy_and_pages_read_the_same_records(db: Path) -> None:
    with open_sqlite(db) as storage:
        cid = _fill(storage)
        assert all(_packed(db).values()), "an item was written without its packed copy"
        written = storage.items.list_items(cid, ListParams(100))
        assert len(written) == len(_items())
        after = written[4].id
        for params in [*PAGES, ListParams(4, after=after), ListParams(4, SortOrder.DESC, after=after)]:
            assert storage.items.list_items(cid, params) == _columns_read(storage, cid, params)
        # The records are what get_item gives (contents parsed, times exact, ids unescaped).
        for item in written:
            assert storage.items.get_item(item.id) == item
        assert {item.id for item in written} >= {'msg_"odd\\id'}


def test_a_row_without_a_copy_or_with_a_bad_one_reads_from_the_columns(db: Path) -> None:
    with open_sqlite(db) as storage:
        cid = _fill(storage)
        expected = storage.items.list_items(cid, ListParams(100))
        some = expected[2].id.replace("'", "''")
        for broken in ("NULL", "'not json'", "'[1, 2]'", '\'["a",null,"m",null,[],null,"not a time"]\''):
            _run(db, f"UPDATE conversation_items SET packed = {broken} WHERE id = '{some}'")
            assert storage.items.list_items(cid, ListParams(100)) == expected
            assert storage.items.list_items(cid, ListParams(100, SortOrder.DESC)) == expected[::-1]


def _walk(storage: Storage, cid: str, order: SortOrder, size: int) -> list[tuple[list[ConversationItem], bool]]:
    """Every page of ``list_items_page`` from the first, following ``next_cursor``."""
    pages = []
    after: str | None = None
    while True:
        page = storage.items.list_items_page(cid, ListParams(size, order, after=after))
        pages.append((page.data, page.has_more))
        if page.next_cursor is None:
            return pages
        after = page.next_cursor


@pytest.mark.parametrize("order", [SortOrder.ASC, SortOrder.DESC])
def test_cursor_pages_read_the_copies_and_the_columns_alike(db: Path, order: SortOrder) -> None:
    with open_sqlite(db) as storage:
        cid = _fill(storage)
        expected = storage.items.list_items(cid, ListParams(100, order))
        for size in (1, 3, len(expected), 100):
            pages = _walk(storage, cid, order, size)
            assert [item for data, _ in pages for item in data] == expected
            assert [more for _, more in pages] == [True] * (len(pages) - 1) + [False]
            # Every copy gone: the same pages, from the columns.
            _run(db, "UPDATE conversation_items SET packed = NULL")
            assert _walk(storage, cid, order, size) == pages
            _run(db, "UPDATE conversation_items SET packed = 'not json' WHERE rowid % 2 = 0")
            assert _walk(storage, cid, order, size) == pages
            with sqlite3.connect(db) as conn:  # the copies back, as datacon writes them
                encode = sql_store(storage).encode_item
                conn.executemany(
                    "UPDATE conversation_items SET packed = ? WHERE id = ?",
                    [(encode(item)["packed"], item.id) for item in expected],
                )
            assert all(_packed(db).values())


def test_an_unreadable_column_is_still_the_columns_error(db: Path) -> None:
    with open_sqlite(db) as storage:
        cid = _fill(storage)
        first = storage.items.list_items(cid, ListParams(1))[0].id.replace("'", "''")
        _run(db, f"UPDATE conversation_items SET packed = NULL, content = 'not json' WHERE id = '{first}'")
        with pytest.raises(BackendError, match="unreadable column"):
            storage.items.list_items(cid, ListParams(100))


def test_v6_fills_the_copies_of_a_v5_database(db: Path) -> None:
    with open_sqlite(db) as storage:
        cid = _fill(storage)
        expected = storage.items.list_items(cid, ListParams(100))
    # The database as v5 left it: no packed column; one row's content not valid JSON for SQLite.
    _run(db, "ALTER TABLE conversation_items DROP COLUMN packed", "DELETE FROM _schema_versions WHERE version >= 6")
    with pytest.raises(MigrationRequiredError) as info:
        open_sqlite(db, SchemaConfig(auto_migrate=False))
    assert "current version: 5, latest version: 7" in str(info.value)
    assert info.value.statements[0] == "ALTER TABLE `conversation_items` ADD COLUMN `packed` TEXT"
    with open_sqlite(db, SchemaConfig(auto_migrate=True)) as storage:
        assert sql_store(storage).applied_migrations == [6, 7]
        copies = _packed(db)
        assert all(copies.values())
        assert storage.items.list_items(cid, ListParams(100)) == expected
        # Each copy SQL built reads back as the copy datacon writes for the same item.
        unpack = sql_store(storage).unpack_items
        encode = sql_store(storage).encode_item
        assert unpack is not None
        for item in expected:
            assert unpack([(copies[item.id],)]) == unpack([(encode(item)["packed"],)]) == [item]


def test_v6_leaves_rows_sqlite_cannot_read_as_json_to_the_columns(db: Path) -> None:
    with open_sqlite(db) as storage:
        cid = _fill(storage)
        expected = storage.items.list_items(cid, ListParams(100))
    odd = expected[0].id.replace("'", "''")
    # NaN is JSON to Python's reader, not to SQLite's json_valid: no copy for that row.
    _run(
        db,
        "ALTER TABLE conversation_items DROP COLUMN packed",
        "DELETE FROM _schema_versions WHERE version >= 6",
        f"UPDATE conversation_items SET content = '[NaN]' WHERE id = '{odd}'",
    )
    with open_sqlite(db, SchemaConfig(auto_migrate=True)) as storage:
        assert _packed(db)[expected[0].id] is None
        got = storage.items.list_items(cid, ListParams(100))
        assert got[1:] == expected[1:]
        assert str(got[0].content) == "[nan]"


def test_import_writes_the_copies(db: Path, tmp_path: Path) -> None:
    with open_sqlite(db) as storage:
        cid = _fill(storage)
        expected = storage.items.list_items(cid, ListParams(100))
        records = list(iter_all(storage))
    copy = tmp_path / "copy.db"
    with open_sqlite(copy) as target:
        import_records(target, records)
        assert all(_packed(copy).values())
        assert target.items.list_items(cid, ListParams(100)) == expected


@pytest.mark.parametrize(
    "items",
    [
        TableConfig("conversation_items", skip_columns={"status"}),
        TableConfig("conversation_items", columns={"role": "packed"}),
    ],
    ids=["a skipped column", "a column named packed"],
)
def test_no_copies_where_the_table_could_not_keep_them(db: Path, items: TableConfig) -> None:
    with open_sqlite(db, SchemaConfig(conversation_items=items)) as storage:
        assert sql_store(storage).sql.items_packed is None
        cid = _fill(storage)
        got = storage.items.list_items(cid, ListParams(100))
        assert len(got) == len(_items())
        assert got == _columns_read(storage, cid, ListParams(100))


def test_the_copy_is_the_record_in_column_order() -> None:
    assert [column.name for column in ITEMS] == [
        "id",
        "response_id",
        "item_type",
        "role",
        "content",
        "status",
        "created_at",
    ]


def test_the_fast_time_decoding_is_exact() -> None:
    decode = SqliteDialect().decode_time
    rng = random.Random(23)
    edges = [0, 1, 499_999, 500_000, 500_001, 999_999, 1_000_000, _EXACT_FLOAT_US - 1]
    values = edges + [rng.randrange(_EXACT_FLOAT_US) for _ in range(200_000)]
    values += [
        s * 1_000_000 + u for s in (rng.randrange(2**32) for _ in range(20_000)) for u in (0, 1, 500_000, 999_999)
    ]
    for value in values:
        assert decode(value) == _EPOCH + timedelta(microseconds=value), value
    # Outside the exact range, and non-integers, take the exact sum.
    others: list[Any] = [-1, -(10**15), _EXACT_FLOAT_US, 253_402_300_799_999_999, "1796180372113920", 1.5e15]
    for other in others:
        assert decode(other) == _EPOCH + timedelta(microseconds=int(other))
    assert decode(_EXACT_FLOAT_US - 1).tzinfo is UTC
