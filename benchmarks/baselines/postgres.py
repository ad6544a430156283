"""The PostgreSQL baseline: one bare psycopg 3 connection (autocommit), same statements as datacon."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg_pool

from benchmarks.baselines.sql import SqlBaseline, _dump

__all__ = ["PostgresBaseline"]

_ITEM_COLUMNS = 'i."id", i."response_id", i."item_type", i."role", i."content"::text, i."status", i."created_at"'
_RESPONSE_COLUMNS = (
    '"id", "conversation_id", "previous_response_id", "input"::text, "created_at", "safety_identifier", "model", '
    '"raw_response"::text'
)


def _page(cmp: str, sentinel: str, order: str) -> str:
    # list_items' statements: no trailing link position.
    def of_cursor(column: str) -> str:
        return (
            f'(SELECT c."{column}" FROM "conversation_item_links" c '
            'WHERE c."conversation_id" = %(cid)s AND c."item_id" = %(after)s)'
        )

    keyset = (
        f'(l."added_at", l."seq", l."item_id") {cmp} '
        f"(COALESCE({of_cursor('added_at')}, {sentinel}), {of_cursor('seq')}, %(after)s)"
    )
    return (
        f'SELECT {_ITEM_COLUMNS} FROM "conversation_item_links" l JOIN "conversation_items" i '
        f'ON i."id" = l."item_id" WHERE l."conversation_id" = %(cid)s AND {keyset} '
        f'ORDER BY l."added_at" {order}, l."seq" {order}, l."item_id" {order} LIMIT %(limit)s'
    )


class PostgresBaseline(SqlBaseline):
    """psycopg 3, autocommit connections. Each operation takes its connection from a
    ``psycopg_pool.ConnectionPool`` (``getconn``/``putconn``), as datacon's PostgreSQL backend
    takes every operation's from its pool: the cost of a pool is the driver's, and a
    connection comparable to datacon's pooled one is part of doing the same work. ``conn``
    (outside the pool) serves the bulk loads and ``ANALYZE``."""

    label = "psycopg (same SQL)"
    dialect_name = "postgres"
    RESP_INSERT = (
        'INSERT INTO "responses" ("id", "conversation_id", "previous_response_id", "input", "created_at", '
        '"safety_identifier", "model", "raw_response") VALUES (%(id)s, %(conversation_id)s, '
        "%(previous_response_id)s, %(input)s, %(created_at)s, %(safety_identifier)s, %(model)s, %(raw_response)s)"
    )
    RESP_SELECT = f'SELECT {_RESPONSE_COLUMNS} FROM "responses" WHERE "id" = %(id)s'
    ITEM_INSERT = (
        'INSERT INTO "conversation_items" ("id", "response_id", "item_type", "role", "content", "status", '
        '"created_at") VALUES (%(id)s, %(response_id)s, %(item_type)s, %(role)s, %(content)s, %(status)s, '
        "%(created_at)s)"
    )
    LINK_INSERT = (
        'INSERT INTO "conversation_item_links" ("conversation_id", "item_id", "added_at", "seq") '
        'VALUES (%(cid)s, %(i0)s, %(a0)s, GREATEST(COALESCE((SELECT CASE WHEN s."conversation_id" = %(scid)s '
        'AND s."added_at" = %(a0)s THEN s."seq" END FROM "conversation_item_links" s '
        'WHERE (s."conversation_id", s."added_at") <= (%(scid)s, %(a0)s) '
        'ORDER BY s."conversation_id" DESC, s."added_at" DESC, s."seq" DESC LIMIT 1), 0), '
        "txid_current() * 65536) + %(q0)s)"
    )
    LIST_ASC = _page(">", "'-infinity'::timestamptz", "ASC")
    LIST_DESC = _page("<", "'infinity'::timestamptz", "DESC")
    LIST_FIRST_ASC = LIST_ASC  # the cursor query, with a NULL cursor (PostgresDialect.plain_first_page)
    LIST_FIRST_DESC = LIST_DESC
    CHAIN = (
        'WITH RECURSIVE chain (rid, prev) AS (SELECT "id", "previous_response_id" FROM "responses" '
        'WHERE "id" = %(id)s UNION SELECT r."id", r."previous_response_id" FROM "responses" r '
        f'JOIN chain c ON r."id" = c.prev) SELECT {_RESPONSE_COLUMNS} FROM "responses" '
        'WHERE "id" IN (SELECT rid FROM chain)'
    )

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            url, min_size=1, max_size=1, kwargs={"autocommit": True}, open=False, name="baseline"
        )
        self.pool.open(wait=True)

    def checkout(self) -> Any:
        return self.pool.getconn()

    def checkin(self, conn: Any) -> None:
        self.pool.putconn(conn)

    def close(self) -> None:
        self.pool.close()
        super().close()

    def encode_time(self, value: datetime) -> Any:
        return value

    def decode_time(self, value: Any) -> datetime:
        return value.astimezone(UTC)  # type: ignore[no-any-return]

    def analyze(self) -> None:
        """``ANALYZE`` the tables, as autovacuum does in a live database (plans depend on it)."""
        self.conn.execute("ANALYZE")

    def bulk_items(self, conversation_id: str, items: Sequence[tuple[str, datetime]], content: Any) -> None:
        text = _dump(content)
        now = datetime.now(UTC)
        with self.conn.transaction(), self.conn.cursor() as cur:
            columns = '"id", "item_type", "role", "content", "status", "created_at"'
            with cur.copy(f'COPY "conversation_items" ({columns}) FROM STDIN') as copy:
                for item_id, _ in items:
                    copy.write_row((item_id, "message", "user", text, "completed", now))
            links = '"conversation_id", "item_id", "added_at"'
            with cur.copy(f'COPY "conversation_item_links" ({links}) FROM STDIN') as copy:
                for item_id, added_at in items:
                    copy.write_row((conversation_id, item_id, added_at))
