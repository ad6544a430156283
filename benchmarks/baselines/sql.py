"""What the SQLite and PostgreSQL baselines share: the operations, over a bare DB-API connection.

Each subclass gives its statements as literal text (the statements datacon renders for the
default schema) and its value encodings. ``drift()`` compares them with what datacon renders
today, so a change in datacon's SQL shows up in the report instead of silently comparing
different queries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

__all__ = ["SqlBaseline"]

RESPONSE_FIELDS = (
    "id",
    "conversation_id",
    "previous_response_id",
    "input",
    "created_at",
    "safety_identifier",
    "model",
    "raw_response",
)
ITEM_FIELDS = ("id", "response_id", "item_type", "role", "content", "status", "created_at")


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class SqlBaseline:
    """The operations of ``benchmarks.baselines.Baseline`` as plain statements on one connection."""

    label = ""
    dialect_name = ""
    # The statements, as datacon renders them for the default schema (checked by ``drift``).
    RESP_INSERT = ""
    RESP_SELECT = ""
    ITEM_INSERT = ""
    LINK_INSERT = ""
    LIST_ASC = ""  # list_items after an item id (datacon's items_asc)
    LIST_DESC = ""
    LIST_FIRST_ASC = ""  # list_items' first page (items_first_asc)
    LIST_FIRST_DESC = ""
    CHAIN = ""

    conn: Any

    # The connection of one operation: the baseline's one connection here; a subclass whose
    # datacon backend takes every operation's connection from a pool does the same with the
    # driver's own pool, so both sides pay a checkout and a checkin per operation.
    def checkout(self) -> Any:
        return self.conn

    def checkin(self, conn: Any) -> None:
        return None

    # Driver-specific encodings.
    def encode_time(self, value: datetime) -> Any:
        raise NotImplementedError

    def decode_time(self, value: Any) -> datetime:
        raise NotImplementedError

    def item_row(self, params: dict[str, Any]) -> dict[str, Any]:
        """An item's INSERT params as the dialect's table takes them (SQLite adds the packed copy)."""
        return params

    def drift(self) -> list[str]:
        """The statements that differ from what datacon renders now (empty when all match)."""
        from datacon import SchemaConfig
        from datacon.backends._sql import render

        dialect = _dialect(self.dialect_name)
        rendered = render(SchemaConfig(), dialect)
        ours = {
            "resp_insert": self.RESP_INSERT,
            "resp_select": self.RESP_SELECT,
            "item_insert": self.ITEM_INSERT,
            "link_insert": self.LINK_INSERT,
            "items_asc": self.LIST_ASC,
            "items_desc": self.LIST_DESC,
            "items_first_asc": self.LIST_FIRST_ASC,
            "items_first_desc": self.LIST_FIRST_DESC,
            "chain_all": self.CHAIN,
        }
        theirs = {name: getattr(rendered, name, None) for name in ours}
        theirs["link_insert"] = rendered.link_insert(1)
        if rendered.items_packed is not None:  # what list_items reads there: the packed copies
            names = ("items_asc", "items_desc", "items_first_asc", "items_first_desc")
            theirs.update(zip(names, rendered.items_packed, strict=True))
        return [name for name, sql in ours.items() if _norm(sql) != _norm(str(theirs[name]))]

    # The operations.
    def _response(self, row: Sequence[Any]) -> dict[str, Any]:
        out = dict(zip(RESPONSE_FIELDS, row, strict=True))
        out["input"] = json.loads(out["input"]) if out["input"] is not None else []
        out["raw_response"] = json.loads(out["raw_response"]) if out["raw_response"] is not None else None
        out["created_at"] = self.decode_time(out["created_at"])
        return out

    def _item(self, row: Sequence[Any]) -> dict[str, Any]:
        out = dict(zip(ITEM_FIELDS, row[: len(ITEM_FIELDS)], strict=True))  # a page row ends with the link's position
        out["content"] = json.loads(out["content"]) if out["content"] is not None else None
        out["created_at"] = self.decode_time(out["created_at"])
        return out

    def store_response(self, fields: dict[str, Any]) -> None:
        params = dict(fields)
        params["input"] = _dump(fields["input"])
        params["raw_response"] = _dump(fields["raw_response"])
        params["created_at"] = self.encode_time(fields["created_at"])
        conn = self.checkout()
        try:
            conn.execute(self.RESP_INSERT, params)
        finally:
            self.checkin(conn)

    def get_response(self, response_id: str) -> dict[str, Any] | None:
        conn = self.checkout()
        try:
            return self._get_response(conn, response_id)
        finally:
            self.checkin(conn)

    def _get_response(self, conn: Any, response_id: str) -> dict[str, Any] | None:
        row = conn.execute(self.RESP_SELECT, {"id": response_id}).fetchone()
        return None if row is None else self._response(row)

    def create_and_link(self, conversation_id: str, item_id: str, content: Any, added_at: datetime) -> None:
        from datetime import UTC

        # Two operations, as datacon's create_item and link_item: a connection each.
        conn = self.checkout()
        try:
            conn.execute(
                self.ITEM_INSERT,
                self.item_row(
                    {
                        "id": item_id,
                        "response_id": None,
                        "item_type": "message",
                        "role": "user",
                        "content": _dump(content),
                        "status": "completed",
                        "created_at": self.encode_time(datetime.now(UTC)),
                    }
                ),
            )
        finally:
            self.checkin(conn)
        link = {
            "cid": conversation_id,
            "scid": conversation_id,
            "i0": item_id,
            "a0": self.encode_time(added_at),
            "q0": 1,
        }
        conn = self.checkout()
        try:
            conn.execute(self.LINK_INSERT, link)
        finally:
            self.checkin(conn)

    def list_page(
        self, conversation_id: str, limit: int, *, after: str | None = None, desc: bool = False
    ) -> list[dict[str, Any]]:
        if after is None:  # the first page, as datacon's list_items reads it
            sql = self.LIST_FIRST_DESC if desc else self.LIST_FIRST_ASC
        else:
            sql = self.LIST_DESC if desc else self.LIST_ASC
        conn = self.checkout()
        try:
            rows = conn.execute(sql, {"cid": conversation_id, "after": after, "limit": limit}).fetchall()
        finally:
            self.checkin(conn)
        return [self._item(row) for row in rows]

    def chain(self, response_id: str) -> list[dict[str, Any]]:
        conn = self.checkout()
        try:
            rows = conn.execute(self.CHAIN, {"id": response_id}).fetchall()
        finally:
            self.checkin(conn)
        by_id = {row[0]: self._response(row) for row in rows}
        chain = []
        current = by_id.get(response_id)
        while current is not None:
            chain.append(current)
            current = by_id.get(current["previous_response_id"] or "")
        chain.reverse()
        return chain

    def naive_chain(self, response_id: str) -> list[dict[str, Any]]:
        chain = []
        conn = self.checkout()  # one walk, one connection: as an application would hold it
        try:
            current = self._get_response(conn, response_id)
            while current is not None:
                chain.append(current)
                previous = current["previous_response_id"]
                current = None if previous is None else self._get_response(conn, previous)
        finally:
            self.checkin(conn)
        chain.reverse()
        return chain

    def close(self) -> None:
        self.conn.close()


def _norm(sql: str) -> str:
    # Whitespace and the identifier quote character (SQLite takes " or `) do not change a query.
    return re.sub(r"\s+", " ", sql).replace("`", '"').strip()


def _dialect(name: str) -> Any:
    if name == "sqlite":
        from datacon.backends.sqlite.dialect import SqliteDialect

        return SqliteDialect()
    from datacon.backends.postgres.dialect import PostgresDialect

    return PostgresDialect()
