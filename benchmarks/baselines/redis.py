"""The Redis baseline: redis-py alone, sending the same commands and Lua scripts as datacon.

The scripts are datacon's own text (they are the statements being compared); everything
around them (keys, field encoding, decoding the replies) is written here by hand, as an
application using redis-py directly would.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import redis

from datacon.backends.redis import lua

__all__ = ["RedisBaseline"]

TTL = str(30 * 86_400)  # RedisConfig's default retention (30 days), as datacon writes it
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(value: datetime) -> str:
    # datacon's score: epoch milliseconds with the microseconds as a fraction
    delta = value - EPOCH
    return repr(((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds) / 1000)


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _link_keys(conversation_id: str) -> list[str]:
    """The link scripts' keys: the conversation's link set, sequence hash and packed set."""
    return [
        f"conversation:{conversation_id}:items",
        f"link_seq:{conversation_id}",
        f"conversation:{conversation_id}:packed",
    ]


def _packed(item_id: str, content: str, created: str) -> str:
    """The item's packed copy: [id, response_id, item_type, role, status, created_at, content]."""
    return f"{json.dumps([item_id, None, 'message', 'user', 'completed', created])[:-1]},{content}]"


#: The item fields list_items reads (datacon's default schema), in the order the script returns them.
ITEM_FIELDS = ("response_id", "item_type", "role", "content", "status", "created_at")


def _row(flat: Sequence[str]) -> dict[str, str]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}


def _response(row: Mapping[Any, Any]) -> dict[str, Any]:
    # The client decodes replies (decode_responses=True): keys and values are str.
    out: dict[str, Any] = dict(row)
    out["input"] = json.loads(row["input"])
    out["raw_response"] = json.loads(row["raw_response"])
    out["created_at"] = datetime.fromisoformat(row["created_at"])
    return out


def _packed_item(row: list[Any]) -> dict[str, Any]:
    item_id, response_id, item_type, role, status, created_at, content = row
    return {
        "id": item_id,
        "response_id": response_id,
        "item_type": item_type,
        "role": role,
        "status": status,
        "created_at": datetime.fromisoformat(created_at),
        "content": content,
    }


def _item(row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(row)
    out["content"] = json.loads(row["content"])
    out["created_at"] = datetime.fromisoformat(row["created_at"])
    return out


class RedisBaseline:
    """redis-py on its own pool, same URL, same keys as datacon's default schema."""

    label = "redis-py (same commands)"

    def __init__(self, url: str, pool_max: int = 16) -> None:
        self.pool = redis.BlockingConnectionPool.from_url(url, max_connections=pool_max, decode_responses=True)
        self.client = redis.Redis(connection_pool=self.pool)
        self.create_record = self.client.register_script(lua.CREATE_RECORD)
        self.store = self.client.register_script(lua.STORE_RESPONSE)
        self.link = self.client.register_script(lua.LINK_ITEMS)
        self.list = self.client.register_script(lua.LIST_ITEMS)
        self.head = self.client.register_script(lua.LIST_HEAD)
        self.head.sha = self.client.script_load(lua.LIST_HEAD)  # loaded: sent inside a MULTI
        self.first_args = json.dumps(["item:", "item_packed:", *ITEM_FIELDS])
        self.get_chain = self.client.register_script(lua.GET_CHAIN)

    def store_response(self, fields: dict[str, Any]) -> None:
        created: datetime = fields["created_at"]
        row = {
            "id": fields["id"],
            "input": _dump(fields["input"]),
            "created_at": created.astimezone(UTC).isoformat(timespec="microseconds"),
            "raw_response": _dump(fields["raw_response"]),
        }
        for name in ("previous_response_id", "conversation_id", "safety_identifier", "model"):
            if fields[name] is not None:
                row[name] = fields[name]
        identifier, conversation = fields["safety_identifier"], fields["conversation_id"]
        keys = [
            f"response:{fields['id']}",
            "responses:created",
            f"safety:{identifier or ''}:responses",
            f"conversation_responses:{conversation or ''}",
        ]
        flags = ["1", "1" if identifier else "", identifier if identifier and conversation else ""]
        flat = [part for pair in row.items() for part in pair]
        if not self.store(keys=keys, args=[TTL, _us(created), fields["id"], *flags, *flat]):
            raise RuntimeError("duplicate response")

    def get_response(self, response_id: str) -> dict[str, Any] | None:
        row = self.client.hgetall(f"response:{response_id}")
        return _response(row) if row else None

    def _item_args(self, item_id: str, content: Any) -> list[str]:
        at = datetime.now(UTC)
        now = at.isoformat(timespec="microseconds")
        text = _dump(content)
        return [
            TTL,
            _us(at),
            item_id,
            _packed(item_id, text, now),
            "id",
            item_id,
            "item_type",
            "message",
            "role",
            "user",
            "content",
            text,
            "status",
            "completed",
            "created_at",
            now,
        ]

    def create_and_link(self, conversation_id: str, item_id: str, content: Any, added_at: datetime) -> None:
        keys = [f"item:{item_id}", "items:created", f"item_packed:{item_id}"]
        if not self.create_record(keys=keys, args=self._item_args(item_id, content)):
            raise RuntimeError("duplicate item")
        args = [TTL, "item_links:", conversation_id, "item:", "item_packed:", _us(added_at), item_id]
        if self.link(keys=_link_keys(conversation_id), args=args) is not None:
            raise RuntimeError("duplicate link")

    def list_page(
        self, conversation_id: str, limit: int, *, after: str | None = None, desc: bool = False
    ) -> list[dict[str, Any]]:
        if after is None:
            return self._first_page(conversation_id, limit, desc)
        # No page position (ARGV[5..7] empty): the page after an item id, as list_items, from
        # the packed copies, with the same six fields (ARGV[10..]) of items that have none,
        # which come back in that order.
        args: list[str | int] = ["item:", limit, "1" if desc else "0", after, "", "", "", "item_packed:", ""]
        _, page, fallback, _ = self.list(keys=_link_keys(conversation_id), args=[*args, *ITEM_FIELDS])
        return self._page(page, fallback)

    def _page(self, page: str, fallback: list[Any]) -> list[dict[str, Any]]:
        """The page script's answer: packed copies (JSON array), rows of the items without one."""
        rest = iter(fallback)
        out = []
        for row in json.loads(page):
            if row is None:
                _, values = next(rest)
                out.append(_item(dict(zip(ITEM_FIELDS, values, strict=True))))
            else:
                out.append(_packed_item(row))
        return out

    def _first_page(self, conversation_id: str, limit: int, desc: bool) -> list[dict[str, Any]]:
        # datacon's first page: LIST_HEAD (is the packed set complete? the server's time) and
        # the packed set's range in one MULTI, written at once on a pooled connection and read
        # back in order (redis-py's Pipeline would add its own Python per call).
        keys = _link_keys(conversation_id)
        head = ("EVALSHA", self.head.sha, 3, *keys, limit, "1" if desc else "", self.first_args)
        commands = [("MULTI",), head, ("ZREVRANGE" if desc else "ZRANGE", keys[2], 0, limit - 1), ("EXEC",)]
        conn = self.pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            conn.send_packed_command(conn.pack_commands(commands))
            for _ in range(3):
                conn.read_response()
            reply, members = conn.read_response()
        finally:
            self.pool.release(conn)  # type: ignore[no-untyped-call]
        if reply[0] != "packed":  # {more, packed copies, fallback rows, positions}: not in this workload
            return self._page(reply[1], reply[2])
        horizon = f"{(int(reply[1]) + 1) * 1000:015d}"  # members: sequence, expiry, copy
        if any("0" * 15 != m[12:27] <= horizon for m in members):
            raise RuntimeError("an expired item (not in this workload)")
        return [_packed_item(row) for row in json.loads("[" + ",".join(m[27:] for m in members) + "]")]

    def chain(self, response_id: str) -> list[dict[str, Any]]:
        rows = self.get_chain(args=["response:", response_id, -1, "previous_response_id"])
        chain = [_response(_row(row)) for _, row in rows]
        chain.reverse()
        return chain

    def naive_chain(self, response_id: str) -> list[dict[str, Any]]:
        chain = []
        current: str | None = response_id
        while current is not None:
            row = self.client.hgetall(f"response:{current}")
            if not row:
                break
            response = _response(row)
            chain.append(response)
            current = response.get("previous_response_id")
        chain.reverse()
        return chain

    def bulk_items(self, conversation_id: str, items: Sequence[tuple[str, datetime]], content: Any) -> None:
        for start in range(0, len(items), 1_000):
            batch = items[start : start + 1_000]
            with self.client.pipeline(transaction=False) as pipe:
                for item_id, _ in batch:
                    # _item_args: TTL, the created index's score and member, the packed copy,
                    # then field, value pairs.
                    args = self._item_args(item_id, content)
                    fields = args[4:]
                    pipe.hset(f"item:{item_id}", mapping=dict(zip(fields[0::2], fields[1::2], strict=True)))
                    pipe.expire(f"item:{item_id}", int(TTL))
                    pipe.set(f"item_packed:{item_id}", args[3], ex=int(TTL))
                pipe.execute()
            args = [TTL, "item_links:", conversation_id, "item:", "item_packed:"]  # as create_and_link
            for item_id, added_at in batch:
                args += [_us(added_at), item_id]
            self.link(keys=_link_keys(conversation_id), args=args)

    def close(self) -> None:
        self.pool.disconnect()
