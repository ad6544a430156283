"""PostgreSQL writes as prepared statements of datacon's own, on libpq's calls (see
``datacon.backends.postgres.connector._PreparedWrites``): what they leave on the server, and the
cases where the cursor serves instead."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import psycopg
import pytest

from datacon import (
    ListParams,
    NewConversation,
    NewConversationItem,
    PostgresConfig,
    StorageFactoryConfig,
    create_storage,
)
from datacon.backends.postgres.connector import PostgresSession, _numbered
from datacon.errors import ConflictError
from tests.servers.postgres import PostgresBackend
from tests.support import sql_store

pytestmark = pytest.mark.postgres


def open_pg(backend: PostgresBackend, **options: Any) -> Any:
    config = PostgresConfig(db_url=backend.url, pool_min=1, pool_max=1, **options)
    return create_storage(StorageFactoryConfig(backend="postgres", postgres=config))


def prepared(storage: Any) -> dict[str, str]:
    """The prepared statements of the pool's only connection: name to statement."""
    with sql_store(storage).connector.session() as session:
        rows = session.fetchall("SELECT name, statement FROM pg_prepared_statements")
    return {row[0]: row[1] for row in rows}


def appends(storage: Any) -> dict[str, str]:
    """datacon's prepared statements that insert into the items table."""
    return {
        name: sql
        for name, sql in prepared(storage).items()
        if name.startswith("datacon_") and 'INSERT INTO "conversation_items"' in sql
    }


def message(text: str, item_id: str | None = None) -> NewConversationItem:
    return NewConversationItem("message", [{"type": "input_text", "text": text}], id=item_id, role="user")


@pytest.fixture
def backend(postgres_backend: PostgresBackend) -> Any:
    yield postgres_backend
    postgres_backend.wipe()


def test_placeholders_are_numbered_once_per_name() -> None:
    assert _numbered("SELECT %(a)s, %(b)s, %(a)s, 5 %% 2") == (b"SELECT $1, $2, $1, 5 % 2", ("a", "b"))
    assert _numbered("SELECT %s") is None  # positional: the cursor's business
    assert _numbered("SELECT %(a)b") is None  # a binary placeholder: the cursor's business


def test_a_write_run_a_third_time_is_prepared_under_datacons_name(backend: PostgresBackend) -> None:
    with open_pg(backend) as storage:
        conversation = storage.conversations.create_conversation(NewConversation()).id
        for n in range(2):
            storage.items.append_items(conversation, [message(f"m{n}")])
        assert not appends(storage)
        for n in range(2, 5):
            storage.items.append_items(conversation, [message(f"m{n}")])
        (statement,) = appends(storage).values()
        assert "$1" in statement
        page = storage.items.list_items(conversation, ListParams(100))
        assert [item.content[0]["text"] for item in page] == [f"m{n}" for n in range(5)]


def test_a_duplicate_through_a_prepared_write_is_a_conflict_and_the_connection_goes_on(
    backend: PostgresBackend,
) -> None:
    with open_pg(backend) as storage:
        for n in range(3):  # the third is prepared
            storage.items.create_item(message("x", f"msg_prep{n}"))
        assert appends(storage)
        with pytest.raises(ConflictError, match="msg_prep0"):
            storage.items.create_item(message("again", "msg_prep0"))
        storage.items.create_item(message("y", "msg_prep3"))
        item = storage.items.get_item("msg_prep3")
        assert item is not None
        assert item.content == [{"type": "input_text", "text": "y"}]
        first = storage.items.get_item("msg_prep0")
        assert first is not None
        assert first.content == [{"type": "input_text", "text": "x"}]


def test_a_connection_that_lost_its_prepared_statements_prepares_again(backend: PostgresBackend) -> None:
    with open_pg(backend) as storage:
        conversation = storage.conversations.create_conversation(NewConversation()).id
        for n in range(4):
            storage.items.append_items(conversation, [message(f"m{n}")])
        assert appends(storage)
        with sql_store(storage).connector.session() as session:
            session.execute("DEALLOCATE ALL")  # as a pooler's reset or an operator would
        assert not appends(storage)
        storage.items.append_items(conversation, [message("after")])  # no "does not exist" error
        assert appends(storage)
        assert len(storage.items.list_items(conversation, ListParams(100))) == 5


def test_with_transaction_pooling_nothing_is_prepared(backend: PostgresBackend) -> None:
    with open_pg(backend, transaction_pooling=True) as storage:
        conversation = storage.conversations.create_conversation(NewConversation()).id
        for n in range(6):
            storage.items.append_items(conversation, [message(f"m{n}")])
        assert prepared(storage) == {}
        assert len(storage.items.list_items(conversation, ListParams(100))) == 6


def test_an_instrumented_connections_writes_go_through_its_cursor(backend: PostgresBackend) -> None:
    # The psycopg instrumentor records statements through its own cursor class: with it, every
    # write still shows as a statement (none is run on libpq's calls behind its back).
    from tests.telemetry_sdk import psycopg_instrumented, recording

    with psycopg_instrumented(), recording() as sdk, open_pg(backend) as storage:
        for _ in range(4):
            storage.conversations.create_conversation(NewConversation())
        spans = sdk.spans()
    creates = [s for s in spans if s.name == "datacon.create_conversation"]
    assert len(creates) == 4
    for outer in creates:
        children = [s for s in spans if s.parent is not None and s.parent.span_id == outer.context.span_id]
        assert children, "a create_conversation without its statement's span"


def _turn() -> list[NewConversationItem]:
    call = NewConversationItem("function_call", {"name": "f"})
    return [message("question"), call, NewConversationItem("function_call_output", {"output": "ok"}), message("a")]


@pytest.mark.parametrize("statement", ["append", "link_items"])
def test_a_generic_plan_made_on_small_tables_reads_the_highest_sequence_through_the_order_index(
    backend: PostgresBackend, statement: str
) -> None:
    # A prepared write keeps the generic plan PostgreSQL makes after its first runs, often on
    # nearly empty tables never analyzed. Under MAX(seq) with two equalities that plan could
    # take the primary key (conversation_id, item_id) and filter added_at: every link of the
    # conversation read on every append (render's _highest_sequence). Here the plans are made
    # on a new database's tables, the conversation then gets 3,000 links more, and the kept
    # plan must still probe the order index.
    url = backend.create_database()
    try:
        config = PostgresConfig(db_url=url, pool_min=1, pool_max=1)
        with create_storage(StorageFactoryConfig(backend="postgres", postgres=config)) as storage:
            conversation = storage.conversations.create_conversation(NewConversation()).id
            for _ in range(10):  # prepared on the third run, generic plans from the sixth
                created = [storage.items.create_item(new).id for new in _turn()]
                now = datetime.now(UTC)
                storage.items.link_items(conversation, [(item_id, now) for item_id in created])
                storage.items.append_items(conversation, _turn())
            with sql_store(storage).connector.session() as session:
                conn = cast(PostgresSession, session)._conn  # the pool's only connection
                conn.execute(
                    "INSERT INTO conversation_item_links (conversation_id, item_id, added_at, seq) "
                    "SELECT %s, 'msg_bulk' || n, now() - n * interval '1 second', 0 FROM generate_series(1, 3000) n",
                    (conversation,),
                )
                sql = sql_store(storage).sql
                text = sql.append(4, 4)[0] if statement == "append" else sql.link_insert(4)
                plan = _explained(conn, text, conversation)
    finally:
        backend.drop_database(url)
    assert "Rows Removed by Filter" not in plan, plan
    assert "conv_item_links_order_idx on conversation_item_links s" in plan, plan


def _explained(conn: Any, text: str, conversation: str) -> str:
    """EXPLAIN ANALYZE of datacon's prepared statement ``text`` on ``conn`` (rolled back)."""
    numbered = _numbered(text)
    assert numbered is not None
    names = numbered[1]
    (name,) = [
        row[0]
        for row in conn.execute("SELECT name FROM pg_prepared_statements WHERE statement = %s", (numbered[0].decode(),))
    ]
    at = datetime.now(UTC)
    values = [_sample(key, conversation, at) for key in names]
    casts = {datetime: "::timestamptz", int: "::int2"}
    args = ", ".join(f"%s{casts.get(type(value), '')}" for value in values)
    conn.execute("BEGIN")
    try:
        explained = psycopg.ClientCursor(conn).execute(f"EXPLAIN (ANALYZE, COSTS OFF) EXECUTE {name}({args})", values)
        return "\n".join(row[0] for row in explained)
    finally:
        conn.execute("ROLLBACK")


def _sample(name: str, conversation: str, at: datetime) -> Any:
    """A value for the bind parameter ``name`` of an append or links INSERT (see render)."""
    field = name.rstrip("0123456789")
    if field in ("cid", "scid"):
        return conversation
    if field in ("id", "i"):
        return f"msg_plan{name[len(field) :]}"
    if field in ("a", "created_at"):
        return at
    if field == "q":
        return int(name[1:]) + 1
    return {"item_type": "message", "content": "[]"}.get(field)
