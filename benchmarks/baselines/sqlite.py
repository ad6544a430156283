"""The SQLite baseline: one bare ``sqlite3`` connection, same file, same pragmas, same statements."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from typing import Any

from benchmarks.baselines.sql import ITEM_FIELDS, SqlBaseline, _dump

__all__ = ["SqliteBaseline"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# list_items reads the items' packed copies (migration v6): one JSON array per row.
_ITEM_COLUMNS = "i.`packed`"
_RESPONSE_COLUMNS = (
    "`id`, `conversation_id`, `previous_response_id`, `input`, `created_at`, `safety_identifier`, `model`, "
    "`raw_response`"
)


def _page(cmp: str, sentinel: str, order: str, first: bool = False) -> str:
    # list_items' statements: no trailing link position; ``first``: no cursor (the first page).
    def of_cursor(column: str) -> str:
        return (
            f"(SELECT c.`{column}` FROM `conversation_item_links` c "
            "WHERE c.`conversation_id` = :cid AND c.`item_id` = :after)"
        )

    keyset = (
        f"l.`added_at` {cmp} {sentinel}"
        if first
        else f"(l.`added_at`, l.`seq`, l.`item_id`) {cmp} "
        f"(COALESCE({of_cursor('added_at')}, {sentinel}), {of_cursor('seq')}, :after)"
    )
    return (
        f"SELECT {_ITEM_COLUMNS} FROM `conversation_item_links` l JOIN `conversation_items` i "
        f"ON i.`id` = l.`item_id` WHERE l.`conversation_id` = :cid AND {keyset} "
        f"ORDER BY l.`added_at` {order}, l.`seq` {order}, l.`item_id` {order} LIMIT :limit"
    )


class SqliteBaseline(SqlBaseline):
    """sqlite3 in autocommit mode (each statement commits), WAL and ``synchronous=NORMAL`` as datacon sets."""

    label = "sqlite3 (same SQL)"
    dialect_name = "sqlite"
    RESP_INSERT = (
        f"INSERT INTO `responses` ({_RESPONSE_COLUMNS}) VALUES (:id, :conversation_id, :previous_response_id, "
        ":input, :created_at, :safety_identifier, :model, :raw_response)"
    )
    RESP_SELECT = f"SELECT {_RESPONSE_COLUMNS} FROM `responses` WHERE `id` = :id"
    ITEM_INSERT = (
        "INSERT INTO `conversation_items` (`id`, `response_id`, `item_type`, `role`, `content`, `status`, "
        "`created_at`, `packed`) VALUES (:id, :response_id, :item_type, :role, :content, :status, :created_at, "
        ":packed)"
    )
    LINK_INSERT = (
        "INSERT INTO `conversation_item_links` (`conversation_id`, `item_id`, `added_at`, `seq`) "
        "VALUES (:cid, :i0, :a0, COALESCE((SELECT MAX(s.`seq`) FROM `conversation_item_links` s "
        "WHERE s.`conversation_id` = :scid AND s.`added_at` = :a0), 0) + :q0)"
    )
    LIST_ASC = _page(">", str(-(2**63)), "ASC")
    LIST_DESC = _page("<", str(2**63 - 1), "DESC")
    LIST_FIRST_ASC = _page(">", str(-(2**63)), "ASC", first=True)
    LIST_FIRST_DESC = _page("<", str(2**63 - 1), "DESC", first=True)
    CHAIN = (
        "WITH RECURSIVE chain (rid, prev) AS (SELECT `id`, `previous_response_id` FROM `responses` "
        "WHERE `id` = :id UNION SELECT r.`id`, r.`previous_response_id` FROM `responses` r "
        f"JOIN chain c ON r.`id` = c.prev) SELECT {_RESPONSE_COLUMNS} FROM `responses` "
        "WHERE `id` IN (SELECT rid FROM chain)"
    )

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=30000")

    def settle(self) -> None:
        """Checkpoint the WAL (untimed, between samples): a sample of writes then never runs
        SQLite's automatic checkpoint (at 1,000 WAL pages, in whichever connection's commit
        crosses it, with an fsync of the database file), which would land in one variant's
        sample or the other's by chance, costing milliseconds."""
        self.conn.execute("PRAGMA wal_checkpoint(RESTART)")

    def encode_time(self, value: datetime) -> Any:
        delta = value - EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

    def decode_time(self, value: Any) -> datetime:
        return EPOCH + timedelta(microseconds=value)

    def item_row(self, params: dict[str, Any]) -> dict[str, Any]:
        # The packed copy, as datacon writes it: the quoted texts, the content's JSON text as
        # it is, the time as stored.
        def quote(value: str | None) -> str:
            return "null" if value is None else str(encode_basestring(value))

        params["packed"] = (
            f"[{quote(params['id'])},{quote(params['response_id'])},{quote(params['item_type'])},"
            f"{quote(params['role'])},{params['content']},{quote(params['status'])},{params['created_at']}]"
        )
        return params

    def _item(self, row: Sequence[Any]) -> dict[str, Any]:
        out = dict(zip(ITEM_FIELDS, json.loads(row[0]), strict=True))
        out["created_at"] = self.decode_time(out["created_at"])
        return out

    def bulk_items(self, conversation_id: str, items: Sequence[tuple[str, datetime]], content: Any) -> None:
        text = _dump(content)
        now = self.encode_time(datetime.now(UTC))
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(
                self.ITEM_INSERT,
                (
                    self.item_row(
                        {
                            "id": item_id,
                            "response_id": None,
                            "item_type": "message",
                            "role": "user",
                            "content": text,
                            "status": "completed",
                            "created_at": now,
                        }
                    )
                    for item_id, _ in items
                ),
            )
            self.conn.executemany(
                self.LINK_INSERT,
                (
                    {
                        "cid": conversation_id,
                        "scid": conversation_id,
                        "i0": item_id,
                        "a0": self.encode_time(added_at),
                        "q0": 1,
                    }
                    for item_id, added_at in items
                ),
            )
