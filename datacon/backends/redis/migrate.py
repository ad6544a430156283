"""``datacon migrate`` for Redis: move data written in upstream's raw layout to datacon's.

Layout version 1 (the only one) differs from what upstream and earlier datacon versions
wrote in two ways (``keys``, ``scores``):

- a key names an id that is not plain (one with ``:``, ``{``, ``}``, or a leading ``%``) by
  its escaped form, so such records written under the raw id are renamed (a conversation's
  link-sequence hash ``link_seq:{id}`` included);
- scores are milliseconds, so sets holding microsecond scores (earlier datacon) are rewritten
  (every datacon write also rewrites the set it adds to, so only sets untouched since the
  upgrade are left for the migration).

Redis has no schema table: the status is found by ``SCAN``ning the schema's keys (no blocking
command; a large database takes a while), and the layout is at version ``LATEST`` when nothing
is left to move or rewrite, else at 0 (``RedisBackend.schema_status``). Every step is atomic
per key (a Lua script) and the whole migration is idempotent, so it can be interrupted and run
again. A link or safety-identifier set whose raw and escaped keys both exist is merged into the
escaped one (a member already there keeps its score); a record hash whose escaped key already
exists is left in place and stays pending, for the operator to resolve. Keys are told apart by
type and by the record's own ``id`` field, so an unowned schema sharing a database with a
schema whose ``owner`` is ``conversation``, ``item``, ``response``, ``safety`` or ``link_seq`` is not
supported.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from .keys import Keys, id_of_part
from .scores import LUA_TO_MS

__all__ = ["LATEST", "RedisMigrationPlan", "apply", "plan"]

LATEST = 1

# KEYS[1]: the raw key; KEYS[2]: its escaped form. Renames a hash (0 when the target exists:
# left for the operator); merges a sorted set into the target (existing members win).
_MOVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 1 end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('RENAME', KEYS[1], KEYS[2]); return 1 end
if redis.call('TYPE', KEYS[1]).ok ~= 'zset' then return 0 end
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #members, 2 do redis.call('ZADD', KEYS[2], 'NX', members[i + 1], members[i]) end
redis.call('DEL', KEYS[1])
return 1
"""

_RESCALE = LUA_TO_MS + "\nreturn to_ms(KEYS[1])\n"


@attrs.define(frozen=True)
class RedisMigrationPlan:
    """What the migration to layout 1 still has to do."""

    moves: tuple[tuple[str, str], ...] = ()
    rescales: tuple[str, ...] = ()

    @property
    def statements(self) -> tuple[str, ...]:
        """One line per step, for ``datacon migrate plan``."""
        lines = [f"RENAME {old} {new}  -- escaped key of a non-plain id" for old, new in self.moves]
        lines += [f"RESCALE {key}  -- microsecond scores to milliseconds" for key in self.rescales]
        return tuple(lines)


def _scan(client: Any, pattern: str, key_type: str) -> Iterator[str]:
    return (str(k) for k in client.scan_iter(match=pattern, count=1000, _type=key_type))


def _stem(key: str, prefix: str, suffix: str) -> str | None:
    if not key.startswith(prefix) or not key.endswith(suffix) or len(key) <= len(prefix) + len(suffix):
        return None
    return key[len(prefix) : len(key) - len(suffix)]


def plan(client: Any, keys: Keys, id_fields: dict[str, str | None]) -> RedisMigrationPlan:
    """Scan one schema's keys. ``id_fields``: the hash field holding each record kind's id."""
    moves: list[tuple[str, str]] = []
    hashes = (
        ("conversation", keys.conversation_prefix, keys.conversation),
        ("item", keys.item_prefix, keys.item),
        ("response", keys.response_prefix, keys.response),
        ("link_seq", keys.sequence_prefix, keys.sequence),  # no id field: moved by its key
    )
    for kind, prefix, make in hashes:
        field = id_fields.get(kind)
        found = list(_scan(client, f"{prefix}*", "hash"))
        stored = _ids(client, found, field)
        for key, stored_id in zip(found, stored, strict=True):
            part = _stem(key, prefix, "")
            if part is None:
                continue
            if stored_id is not None:
                # The raw layout of this very id (not some other schema's key): move it.
                if part == stored_id and make(stored_id) != key:
                    moves.append((key, make(stored_id)))
            elif id_of_part(part) is None:
                moves.append((key, make(part)))
    zsets = (
        (keys.conversation_prefix, keys.links_suffix, keys.links),
        (keys.safety_prefix, keys.safety_suffix, keys.safety),
    )
    sets: list[tuple[str, str]] = []  # (key now, key after the moves)
    for prefix, suffix, make_set in zsets:
        for key in _scan(client, f"{prefix}*{suffix}", "zset"):
            part = _stem(key, prefix, suffix)
            if part is None:
                continue
            final = key if id_of_part(part) is not None else make_set(part)
            if final != key:
                moves.append((key, final))
            sets.append((key, final))
    stale = set(_needs_rescale(client, [key for key, _ in sets]))
    rescales = dict.fromkeys(final for key, final in sets if key in stale)
    return RedisMigrationPlan(tuple(moves), tuple(rescales))


def _ids(client: Any, keys: Sequence[str], field: str | None) -> list[str | None]:
    if field is None:
        return [None] * len(keys)
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hget(key, field)
        return [None if v is None else str(v) for v in pipe.execute()]


def _needs_rescale(client: Any, keys: Sequence[str]) -> list[str]:
    out: list[str] = []
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        with client.pipeline(transaction=False) as pipe:
            for key in chunk:
                pipe.zrange(key, 0, 0, withscores=True)
                pipe.zrange(key, -1, -1, withscores=True)
            replies = pipe.execute()
        for n, key in enumerate(chunk):
            ends = [score for reply in replies[2 * n : 2 * n + 2] for _, score in reply]
            if any(abs(score) >= 1e13 for score in ends):
                out.append(key)
    return out


def apply(client: Any, steps: RedisMigrationPlan) -> None:
    """Run the steps of ``steps`` (each one atomic); safe to repeat."""
    move = client.register_script(_MOVE)
    rescale = client.register_script(_RESCALE)
    for old, new in steps.moves:
        move(keys=[old, new], args=[])
    for key in steps.rescales:
        rescale(keys=[key], args=[])
