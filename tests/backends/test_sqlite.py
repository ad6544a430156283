"""The ``sqlite`` backend: concurrency, persistence, ``:memory:``, stored formats, migrations."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from datacon import (
    ColumnDef,
    ListParams,
    NewConversation,
    NewConversationItem,
    SchemaConfig,
    SortOrder,
    SqliteConfig,
    Storage,
    StorageFactoryConfig,
    StoredResponse,
    TableConfig,
    create_storage,
)
from datacon._time import to_epoch_us
from datacon.backends._sql import LATEST, MIGRATIONS, render
from datacon.backends._sql.migrations import version_insert_sql
from datacon.backends.sqlite import SqliteDialect
from datacon.errors import BackendError, ConflictError, MigrationRequiredError
from tests.support import repo_root, sql_store

pytestmark = pytest.mark.sqlite

T0 = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def open_sqlite(path: Path | str, schema: SchemaConfig | None = None, **options: object) -> Storage:
    return create_storage(
        StorageFactoryConfig(backend="sqlite", sqlite=SqliteConfig(path=str(path), schema=schema, **options))  # type: ignore[arg-type]
    )


def count(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])
    finally:
        conn.close()


def run_threads(n: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def body(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:  # reported by the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [], errors[:3]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "test.db"


# --- concurrency ---------------------------------------------------------------------------------


def _writer(storage: Storage, shared: str, tag: str, rounds: int) -> None:
    conv = storage.conversations.create_conversation(NewConversation(id=f"conv_{tag}", metadata={"tag": tag}))
    prev = None
    for n in range(rounds):
        item = storage.items.create_item(NewConversationItem("message", [tag, n], id=f"msg_{tag}_{n:03d}"))
        if n % 2:
            storage.items.link_item(conv.id, item.id, T0 + timedelta(microseconds=n))
        else:
            storage.items.link_items(conv.id, [(item.id, T0 + timedelta(microseconds=n))])
        storage.items.link_item(shared, item.id, T0)
        response = StoredResponse(id=f"resp_{tag}_{n:03d}", previous_response_id=prev, safety_identifier=tag)
        storage.responses.store_response(response)
        prev = response.id
        storage.conversations.update_conversation(conv.id, {"tag": tag, "n": n})


def test_eight_threads_writing_at_once_lose_nothing(db: Path) -> None:
    threads, rounds = 8, 30
    with open_sqlite(db) as storage:
        shared = storage.conversations.create_conversation(NewConversation(id="conv_shared")).id
        run_threads(threads, lambda i: _writer(storage, shared, f"t{i}", rounds))
        for i in range(threads):
            tag = f"t{i}"
            assert len(storage.items.list_items(f"conv_{tag}", ListParams(rounds + 1))) == rounds
            chain = storage.responses.get_response_chain(f"resp_{tag}_{rounds - 1:03d}")
            assert [r.id for r in chain] == [f"resp_{tag}_{n:03d}" for n in range(rounds)]
            conv = storage.conversations.get_conversation(f"conv_{tag}")
            assert conv is not None
            assert conv.metadata == {"tag": tag, "n": rounds - 1}
        everything = storage.items.list_items(shared, ListParams(threads * rounds + 1))
        assert len(everything) == threads * rounds
        # Ties on added_at list in the order linked: each writer's links in its call order.
        ids = [item.id for item in everything]
        for i in range(threads):
            assert [x for x in ids if x.startswith(f"msg_t{i}_")] == [f"msg_t{i}_{n:03d}" for n in range(rounds)]
        assert storage.pool_stats()["in_use"] == 0
        assert storage.pool_stats()["size"] <= 8
    # Counted again from outside, after close: everything was committed.
    assert count(db, "conversations") == threads + 1
    assert count(db, "conversation_items") == threads * rounds
    assert count(db, "conversation_item_links") == 2 * threads * rounds
    assert count(db, "responses") == threads * rounds


def test_two_storages_on_one_file_write_at_once(db: Path) -> None:
    """Two pools on one file (as two processes would be): writers wait for each other."""
    with open_sqlite(db, pool_max=2) as first, open_sqlite(db, pool_max=2) as second:
        storages = [first, second]

        def work(index: int) -> None:
            storage = storages[index % 2]
            for n in range(40):
                storage.responses.store_response(StoredResponse(id=f"r{index}_{n}", safety_identifier=f"u{index}"))

        run_threads(6, work)
        assert sum(len(first.responses.list_identifier_responses(f"u{i}")) for i in range(6)) == 240
    assert count(db, "responses") == 240


def test_duplicate_races_have_exactly_one_winner(db: Path) -> None:
    wins: list[int] = []
    with open_sqlite(db) as storage:

        def work(index: int) -> None:
            try:
                storage.conversations.create_conversation(NewConversation(id="conv_race", metadata={"by": index}))
                wins.append(index)
            except ConflictError:
                pass

        run_threads(8, work)
        assert len(wins) == 1
        got = storage.conversations.get_conversation("conv_race")
        assert got is not None
        assert got.metadata == {"by": wins[0]}


def test_processes_starting_and_writing_at_once(db: Path) -> None:
    """Four processes bootstrap one fresh file at once, then write: versions recorded once."""
    script = (
        "import sys\n"
        "from datacon import SqliteConfig, StorageFactoryConfig, StoredResponse, create_storage\n"
        "cfg = StorageFactoryConfig(backend='sqlite', sqlite=SqliteConfig(path=sys.argv[1]))\n"
        "with create_storage(cfg) as s:\n"
        "    for n in range(50):\n"
        "        s.responses.store_response(StoredResponse(id=f'{sys.argv[2]}-{n}'))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(db), f"p{i}"], cwd=repo_root(), stderr=subprocess.PIPE)
        for i in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
    assert count(db, "responses") == 200
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT version FROM _schema_versions ORDER BY version").fetchall() == [
            (version,) for version in range(1, LATEST + 1)
        ]
    finally:
        conn.close()


# --- persistence, :memory:, stored formats -------------------------------------------------------


def test_data_persists_across_reopen(db: Path) -> None:
    with open_sqlite(db) as storage:
        conv = storage.conversations.create_conversation(NewConversation(metadata={"title": "kept"}))
        item = storage.items.create_item(NewConversationItem("message", [{"text": "hi"}], role="user"))
        storage.items.link_item(conv.id, item.id, T0)
        storage.responses.store_response(StoredResponse(id="resp_kept", input=["q"], created_at=T0))
    with open_sqlite(db) as storage:
        got = storage.conversations.get_conversation(conv.id)
        assert got is not None
        assert got.metadata == {"title": "kept"}
        assert got.created_at == conv.created_at
        assert [i.content for i in storage.items.list_items(conv.id, ListParams(5))] == [[{"text": "hi"}]]
        response = storage.responses.get_response("resp_kept")
        assert response is not None
        assert response.created_at == T0
        assert response.input == ["q"]


def test_memory_database_is_one_database_for_every_thread() -> None:
    with open_sqlite(":memory:", pool_max=8) as storage, open_sqlite(":memory:") as other:
        assert storage.max_concurrency == 1
        conv = storage.conversations.create_conversation(NewConversation(id="conv_mem")).id

        def work(index: int) -> None:
            for n in range(20):
                item = storage.items.create_item(NewConversationItem("message", n, id=f"msg_{index}_{n}"))
                storage.items.link_item(conv, item.id, T0 + timedelta(seconds=n))

        run_threads(4, work)
        assert len(storage.items.list_items(conv, ListParams(100))) == 80
        assert other.conversations.get_conversation("conv_mem") is None  # a separate :memory: database


def test_timestamps_are_integer_microseconds_and_json_is_text(db: Path) -> None:
    with open_sqlite(db) as storage:
        storage.responses.store_response(
            StoredResponse(id="resp_fmt", created_at=T0, input=None, raw_response={"a": 1})
        )
        storage.conversations.create_conversation(NewConversation(id="conv_fmt", metadata=None))
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT typeof(created_at), created_at, typeof(input), input, raw_response FROM responses"
        ).fetchone()
        assert row == ("integer", to_epoch_us(T0), "text", "null", '{"a":1}')
        assert conn.execute("SELECT metadata FROM conversations").fetchone() == (None,)  # SQL NULL
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()
    with open_sqlite(db) as storage:
        got = storage.responses.get_response("resp_fmt")
        assert got is not None
        assert got.input is None  # a stored JSON null stays null (only SQL NULL reads as [])


def test_link_items_beyond_one_statement_is_still_all_or_nothing(db: Path) -> None:
    rows = SqliteDialect().max_rows_per_insert * 2 + 10
    with open_sqlite(db) as storage:
        pairs = [(f"msg_{n:05d}", T0 + timedelta(microseconds=n)) for n in range(rows)]
        with pytest.raises(ConflictError):
            storage.items.link_items("conv_big", [*pairs, pairs[0]])  # the duplicate is in the last chunk
        assert storage.items.is_item_linked("conv_big", pairs[0][0]) is False
        storage.items.link_items("conv_big", pairs)
    assert count(db, "conversation_item_links") == rows


# --- migrations ----------------------------------------------------------------------------------

LEGACY_RESPONSES = (
    "CREATE TABLE responses (id VARCHAR(64) PRIMARY KEY, conversation_id VARCHAR(64), "
    "previous_response_id VARCHAR(64), input TEXT, created_at INTEGER, model VARCHAR(128), raw_response TEXT, "
    "user_id VARCHAR(128), output TEXT, metadata TEXT, instructions TEXT, tool_calls TEXT)"
)
# The links table and its page index as datacon made them before v4 (no sequence).
LEGACY_LINKS = (
    (
        "CREATE TABLE conversation_item_links (conversation_id VARCHAR(64) NOT NULL, item_id VARCHAR(64) NOT NULL, "
        "added_at INTEGER, CONSTRAINT pk_conv_item_link PRIMARY KEY (conversation_id, item_id))"
    ),
    "CREATE INDEX conv_item_links_conv_idx ON conversation_item_links (conversation_id, added_at, item_id)",
)


@pytest.fixture
def legacy_db(db: Path) -> Path:
    """A database as an older release left it: no _schema_versions, responses at v0."""
    conn = sqlite3.connect(db)
    try:
        for ddl in render(SchemaConfig(), SqliteDialect()).create_tables[:2]:
            conn.execute(ddl)
        for ddl in (*LEGACY_LINKS, LEGACY_RESPONSES):
            conn.execute(ddl)
        conn.execute(
            "INSERT INTO responses (id, input, created_at, raw_response, user_id, output) "
            f"VALUES ('resp_old', '[\"hi\"]', {to_epoch_us(T0)}, 'null', 'u', 'o')"
        )
        conn.commit()
    finally:
        conn.close()
    return db


def columns(db: Path, table: str) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')}
    finally:
        conn.close()


def versions(db: Path) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        return [row[0] for row in conn.execute("SELECT version FROM _schema_versions ORDER BY version")]
    finally:
        conn.close()


def test_fresh_database_is_created_at_the_latest_version(db: Path) -> None:
    with open_sqlite(db, SchemaConfig(auto_migrate=False)) as storage:
        storage.responses.store_response(StoredResponse(id="r1", safety_identifier="u"))
    assert versions(db) == [1, 2, 3, 4, 5, 6, 7]
    assert "safety_identifier" in columns(db, "responses")
    with open_sqlite(db, SchemaConfig(auto_migrate=False)):  # and reopens without migrations
        pass


EXPECTED_STATEMENTS = (
    "ALTER TABLE `responses` ADD COLUMN `safety_identifier` VARCHAR(128)",
    version_insert_sql(SqliteDialect(), MIGRATIONS[0]),
    "ALTER TABLE `responses` DROP COLUMN `user_id`",
    version_insert_sql(SqliteDialect(), MIGRATIONS[1]),
    "ALTER TABLE `responses` DROP COLUMN `output`",
    "ALTER TABLE `responses` DROP COLUMN `metadata`",
    "ALTER TABLE `responses` DROP COLUMN `instructions`",
    "ALTER TABLE `responses` DROP COLUMN `tool_calls`",
    version_insert_sql(SqliteDialect(), MIGRATIONS[2]),
    "ALTER TABLE `conversation_item_links` ADD COLUMN `seq` BIGINT DEFAULT 0 NOT NULL",
    "DROP INDEX IF EXISTS `conv_item_links_conv_idx`",
    (
        "CREATE INDEX IF NOT EXISTS `conv_item_links_order_idx` ON `conversation_item_links` "
        "(`conversation_id`, `added_at`, `seq`, `item_id`)"
    ),
    version_insert_sql(SqliteDialect(), MIGRATIONS[3]),
    "CREATE INDEX IF NOT EXISTS `conversation_items_created_idx` ON `conversation_items` (`created_at`, `id`)",
    "CREATE INDEX IF NOT EXISTS `responses_created_idx` ON `responses` (`created_at`, `id`)",
    "CREATE INDEX IF NOT EXISTS `conversation_item_links_item_idx` ON `conversation_item_links` (`item_id`)",
    "CREATE INDEX IF NOT EXISTS `responses_conversation_idx` ON `responses` (`conversation_id`)",
    version_insert_sql(SqliteDialect(), MIGRATIONS[4]),
    # v6: the legacy database's items table was made by today's DDL, with its packed column.
    version_insert_sql(SqliteDialect(), MIGRATIONS[5]),
    version_insert_sql(SqliteDialect(), MIGRATIONS[6]),  # v7 changes nothing on SQLite
)


def test_old_schema_needs_migration_with_the_exact_sql(legacy_db: Path) -> None:
    with pytest.raises(MigrationRequiredError) as info:
        open_sqlite(legacy_db, SchemaConfig(auto_migrate=False))
    assert info.value.statements == EXPECTED_STATEMENTS
    message = str(info.value)
    assert "current version: 0, latest version: 7" in message
    assert "set `auto_migrate: true` in your sqlite schema config" in message
    assert "user_id" in columns(legacy_db, "responses")  # nothing was migrated
    # The listed SQL applied by hand brings the schema up to date.
    conn = sqlite3.connect(legacy_db)
    try:
        for statement in info.value.statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()
    with open_sqlite(legacy_db, SchemaConfig(auto_migrate=False)) as storage:
        old = storage.responses.get_response("resp_old")
        assert old is not None
        assert old.input == ["hi"]


def test_auto_migrate_applies_and_keeps_data(legacy_db: Path) -> None:
    with open_sqlite(legacy_db, SchemaConfig(auto_migrate=True)) as storage:
        assert sql_store(storage).applied_migrations == [1, 2, 3, 4, 5, 6, 7]
        old = storage.responses.get_response("resp_old")
        assert old is not None
        assert old.created_at == T0
        storage.responses.store_response(StoredResponse(id="resp_new", safety_identifier="u"))
        assert [r.id for r in storage.responses.list_identifier_responses("u")] == ["resp_new"]
    assert versions(legacy_db) == [1, 2, 3, 4, 5, 6, 7]
    assert columns(legacy_db, "responses") == {
        "id",
        "conversation_id",
        "previous_response_id",
        "input",
        "created_at",
        "model",
        "raw_response",
        "safety_identifier",
    }


def test_version_setting_skips_migrations_without_recording_them(legacy_db: Path) -> None:
    with pytest.raises(MigrationRequiredError) as info:
        open_sqlite(legacy_db, SchemaConfig(version=1))
    assert "current version: 1, latest version: 7" in str(info.value)
    assert info.value.statements[0] == "ALTER TABLE `responses` DROP COLUMN `user_id`"
    # Skipped up to 7, but the tables still lack safety_identifier (v1) and seq (v4): that is
    # schema drift (every store_response and link_items would fail), reported with its fixes.
    with pytest.raises(MigrationRequiredError) as drift:
        open_sqlite(legacy_db, SchemaConfig(version=7))
    assert str(drift.value).startswith("Schema drift (current version: 7, latest version: 7)")
    assert drift.value.statements == (
        "ALTER TABLE `conversation_item_links` ADD COLUMN `seq` BIGINT DEFAULT 0 NOT NULL",
        (
            "CREATE INDEX IF NOT EXISTS `conv_item_links_order_idx` ON `conversation_item_links` "
            "(`conversation_id`, `added_at`, `seq`, `item_id`)"
        ),
        "ALTER TABLE `responses` ADD COLUMN `safety_identifier` VARCHAR(128)",
    )
    skipped = TableConfig("responses", skip_columns={"safety_identifier"})
    # auto_migrate adds what is missing (the page index then follows) and records no version.
    with open_sqlite(legacy_db, SchemaConfig(version=7, responses=skipped, auto_migrate=True)):
        pass
    assert versions(legacy_db) == []
    assert "user_id" in columns(legacy_db, "responses")


def test_an_upstream_v3_database_migrates_to_the_turn_order(legacy_db: Path) -> None:
    with pytest.raises(MigrationRequiredError):  # creates _schema_versions, migrates nothing
        open_sqlite(legacy_db, SchemaConfig(auto_migrate=False))
    conn = sqlite3.connect(legacy_db)
    try:  # upstream's v1-v3 applied by hand, and links sharing one added_at, made out of id order
        for statement in EXPECTED_STATEMENTS[
            : EXPECTED_STATEMENTS.index(version_insert_sql(SqliteDialect(), MIGRATIONS[2])) + 1
        ]:
            conn.execute(statement)
        for item_id in ("msg_c", "msg_a", "msg_b"):
            conn.execute(
                "INSERT INTO conversation_items (id, item_type, content, created_at) VALUES (?, 'message', '[]', ?)",
                (item_id, to_epoch_us(T0)),
            )
            conn.execute("INSERT INTO conversation_item_links VALUES ('conv_old', ?, ?)", (item_id, to_epoch_us(T0)))
        conn.commit()
    finally:
        conn.close()
    assert versions(legacy_db) == [1, 2, 3]
    with pytest.raises(MigrationRequiredError) as info:
        open_sqlite(legacy_db, SchemaConfig(auto_migrate=False))
    assert info.value.statements == EXPECTED_STATEMENTS[-11:]
    with open_sqlite(legacy_db, SchemaConfig(auto_migrate=True)) as storage:
        assert sql_store(storage).applied_migrations == [4, 5, 6, 7]
        # Links made before keep their old tie-break (item id); new ones follow in the order made.
        assert [i.id for i in storage.items.list_items("conv_old", ListParams(10))] == ["msg_a", "msg_b", "msg_c"]
        new = [NewConversationItem("message", [], id=i) for i in ("msg_z", "msg_0")]
        storage.items.append_items("conv_old", new, T0)
        order = ["msg_a", "msg_b", "msg_c", "msg_z", "msg_0"]
        assert [i.id for i in storage.items.list_items("conv_old", ListParams(10))] == order
        desc = storage.items.list_items("conv_old", ListParams(2, SortOrder.DESC, after="msg_z"))
        assert [i.id for i in desc] == ["msg_c", "msg_b"]
        sql = sql_store(storage).sql
    conn = sqlite3.connect(legacy_db)
    try:  # the page is read in index order: no temporary B-tree for ORDER BY
        assert sql.items_packed is not None
        pages = (
            sql.list_asc,
            sql.list_desc,
            sql.items_asc,
            sql.items_desc,
            sql.items_first_asc,
            sql.items_first_desc,
            *sql.items_packed,
            *(sql.pages_packed or ()),
        )
        for page in pages:
            params = {"cid": "c", "after": "x", "limit": 5} if ":after" in page else {"cid": "c", "limit": 5}
            if ":at" in page:  # a page after a cursor's position
                params.update(at=0, sq=0)
            plan = " ".join(str(row) for row in conn.execute(f"EXPLAIN QUERY PLAN {page}", params))
            assert "conv_item_links_order_idx" in plan
            assert "TEMP B-TREE" not in plan
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "conv_item_links_order_idx" in names
        assert "conv_item_links_conv_idx" not in names
    finally:
        conn.close()
    # Migrated to v4: no drift, nothing pending, even for a DML-only start (create_tables: false).
    for schema in (SchemaConfig(auto_migrate=False), SchemaConfig(create_tables=False)):
        with open_sqlite(legacy_db, schema) as storage:
            assert storage.items.is_item_linked("conv_old", "msg_0")


def test_schema_drift_without_create_tables_lists_the_statements(db: Path) -> None:
    with open_sqlite(db):
        pass
    extra = TableConfig("conversations", extra_columns={"tenant": ColumnDef("VARCHAR(64)")})
    with pytest.raises(MigrationRequiredError) as info:
        open_sqlite(db, SchemaConfig(conversations=extra, create_tables=False))
    assert info.value.statements == ("ALTER TABLE `conversations` ADD COLUMN `tenant` VARCHAR(64)",)
    assert "create_tables: false" in str(info.value)
    assert "tenant" not in columns(db, "conversations")  # nothing changed


def test_rows_written_by_others_that_cannot_be_read_are_backend_errors(db: Path) -> None:
    with open_sqlite(db) as storage:
        storage.conversations.create_conversation(NewConversation(id="conv_bad", metadata={"a": 1}))
        storage.responses.store_response(StoredResponse(id="resp_bad"))
        conn = sqlite3.connect(db)
        try:
            conn.execute("UPDATE conversations SET metadata = '{not json' WHERE id = 'conv_bad'")
            conn.execute("UPDATE responses SET created_at = 'yesterday' WHERE id = 'resp_bad'")
            conn.commit()
        finally:
            conn.close()
        with pytest.raises(
            BackendError, match=r"^SQLite conversation conv_bad has an unreadable column \(JSONDecodeError\)$"
        ):
            storage.conversations.get_conversation("conv_bad")
        with pytest.raises(BackendError, match="SQLite response resp_bad has an unreadable column"):
            storage.responses.get_response_chain("resp_bad")


def test_list_conversations_is_served_from_an_index_without_a_sort(db: Path) -> None:
    """SPEC §7.5: the listing indexes give the page order (no table scan, no temporary B-tree)."""
    from tests.conformance.test_list_conversations import LISTING_SCHEMA

    with open_sqlite(db, LISTING_SCHEMA) as storage:
        sql = sql_store(storage).sql
        conn = sqlite3.connect(db)
        try:
            conn.execute(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 5000) "
                "INSERT INTO lc_convs (id, created_at, metadata, tenant_id, user_id) "
                "SELECT printf('conv_%050d', n), n, NULL, 't' || (n % 50), 'u' || (n % 7) FROM g"
            )
            conn.commit()
            conn.execute("ANALYZE")
            after = {"after_at": 1, "after_id": "conv_x"}
            for keys, has_after, descending, params in [
                ((), False, False, {}),
                ((), True, True, after),
                (("tenant_id",), True, False, {"f0": "t7", **after}),
                (("user_id",), True, True, {"f0": "u3", **after}),
            ]:
                statement = sql.conversation_page(keys, has_after, descending)
                plan = " | ".join(
                    str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}", {**params, "limit": 21})
                )
                assert "INDEX lc_convs_" in plan, plan
                assert "TEMP B-TREE" not in plan, plan
        finally:
            conn.close()
        page = storage.conversations.list_conversations(ListParams(2), {"tenant_id": "t7"})
        assert len(page.data) == 2
