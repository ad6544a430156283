"""``datacon migrate`` for Redis: move data written in upstream's raw layout to datacon's.

Layout version 1 differs from what upstream and earlier datacon versions wrote in two ways
(``keys``, ``scores``):

- a key names an id that is not plain (one with ``:``, ``{``, ``}``, or a leading ``%``) by
  its escaped form, so such records written under the raw id are renamed (a conversation's
  link-sequence hash ``link_seq:{id}`` included);
- scores are milliseconds, so sets holding microsecond scores (earlier datacon) are rewritten
  (every datacon write also rewrites the set it adds to, so only sets untouched since the
  upgrade are left for the migration).

Layout version 2 adds the retention indexes (``store``): items and responses by
``created_at``, each item's linkers, each conversation's identified responses, and every
conversation in the listing set (upstream's conversations were not). Writes keep them; the
migration backfills them for the records written before (in batches of 500 keys, each one
script that checks the record still exists, so it runs beside live traffic and can be run
again), then sets the marker key ``P datacon:layout`` to 2. Until then ``prune`` and
``erase_identifier`` refuse to run (an unindexed link would let them delete a linked item).
A schema with no record when datacon first opens it is marked at once.

Layout version 3 adds the packed copies ``list_items`` reads (``lua``): each item's fields as
one JSON string (``P item_packed:{id}``) and each conversation's packed set
(``P conversation:{id}:packed``, one member per link, in listing order). Writes keep them;
the migration builds them from the item hashes and link sets written before (in batches,
each one script that reads the record itself, so it runs beside live writes and can be run
again) and sets the marker to 3. Reads never need them: an item without a packed copy is
read from its hash, and a conversation whose packed set lacks a link's member is read by the
page script, so data that upstream writes keeps reading correctly.

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

from .keys import LUA_KEY_PART, Keys, id_of_part
from .lua import LUA_PACKED
from .records import Codec
from .scores import LUA_TO_MS, score

__all__ = ["LATEST", "RedisMigrationPlan", "apply", "plan"]

LATEST = 3
#: The layout from which the retention indexes are complete (prune and erase need it).
INDEX = 2

#: Keys per backfill batch (one pipeline of reads, then one script).
BATCH = 500

# extend(key, ms): give an index key at least the lifetime ``ms`` (PTTL of a record it now
# indexes: -1 for none), so an index never expires before a record it names.
_EXTEND = """
local function extend(key, ms, existed)
  local ttl = tonumber(ms)
  if ttl < 0 then redis.call('PERSIST', key); return end
  local now = redis.call('PTTL', key)
  if not existed or (now >= 0 and now < ttl) then redis.call('PEXPIRE', key, ttl) end
end
"""

# KEYS[1]: a created_at index. ARGV[1]: the record key prefix; ARGV[2..]: score, id pairs.
# Indexes each record that still exists; returns how many.
_BACKFILL_CREATED = (
    LUA_KEY_PART
    + _EXTEND
    + """
local n = 0
for i = 2, #ARGV, 2 do
  local ttl = redis.call('PTTL', ARGV[1] .. key_part(ARGV[i + 1]))
  if ttl ~= -2 then
    local existed = redis.call('EXISTS', KEYS[1]) == 1
    redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
    extend(KEYS[1], ttl, existed)
    n = n + 1
  end
end
return n
"""
)

# KEYS[1]: any key of the schema (it routes the script in a cluster). ARGV[1]: conversation
# responses prefix; ARGV[2]: response key prefix; ARGV[3..]: response id, identifier,
# conversation id triples. Records each response that still exists.
_BACKFILL_NAMED = (
    LUA_KEY_PART
    + _EXTEND
    + """
for i = 3, #ARGV, 3 do
  local ttl = redis.call('PTTL', ARGV[2] .. key_part(ARGV[i]))
  if ttl ~= -2 then
    local key = ARGV[1] .. key_part(ARGV[i + 2])
    local existed = redis.call('EXISTS', key) == 1
    redis.call('HSET', key, ARGV[i], ARGV[i + 1])
    extend(key, ttl, existed)
  end
end
return 0
"""
)

# KEYS[1]: the conversations listing set. ARGV[1]: conversation key prefix; ARGV[2..]: id,
# member pairs. Lists each conversation that still exists and has no member yet.
_BACKFILL_LISTING = (
    LUA_KEY_PART
    + _EXTEND
    + """
local sets = cjson.encode({KEYS[1]})
for i = 2, #ARGV, 2 do
  local key = ARGV[1] .. key_part(ARGV[i])
  local ttl = redis.call('PTTL', key)
  if ttl ~= -2 and not redis.call('HGET', key, 'datacon:member') then
    redis.call('HSET', key, 'datacon:member', ARGV[i + 1], 'datacon:sets', sets)
    local existed = redis.call('EXISTS', KEYS[1]) == 1
    redis.call('ZADD', KEYS[1], 0, ARGV[i + 1])
    extend(KEYS[1], ttl, existed)
  end
end
return 0
"""
)

# KEYS[1]: a conversation's link set. ARGV[1]: item linkers prefix; ARGV[2]: the
# conversation id; ARGV[3]: start rank; ARGV[4]: count. Adds the conversation to the linkers
# of the links at those ranks; returns how many links it read.
_BACKFILL_LINKERS = (
    LUA_KEY_PART
    + _EXTEND
    + """
local ttl = redis.call('PTTL', KEYS[1])
local start = tonumber(ARGV[3])
local items = redis.call('ZRANGE', KEYS[1], start, start + tonumber(ARGV[4]) - 1)
for _, item in ipairs(items) do
  local key = ARGV[1] .. key_part(item)
  local existed = redis.call('EXISTS', key) == 1
  redis.call('SADD', key, ARGV[2])
  extend(key, ttl, existed)
end
return #items
"""
)

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

# KEYS[1]: any key of the schema (it routes the script in a cluster). ARGV[1]: item key
# prefix; ARGV[2]: packed copies' key prefix; ARGV[3..8]: the hash fields of response_id,
# item_type, role, content, status and created_at ('' when skipped); ARGV[9..]: item ids.
# Writes the packed copy (``records.Codec.packed``) of each item that still exists and has
# none, from its hash, with the hash's TTL; an item whose content is not JSON is left
# unpacked (read from its hash, which reports it). Returns how many it packed.
_BACKFILL_PACKED_ITEMS = (
    LUA_KEY_PART
    + """
local function text(value)
  if value then return cjson.encode(value) end
  return 'null'
end
local fields, slots = {}, {}
for i = 3, 8 do
  if ARGV[i] ~= '' then fields[#fields + 1] = ARGV[i]; slots[i - 2] = #fields end
end
local n = 0
for i = 9, #ARGV do
  local part = key_part(ARGV[i])
  local hash, packed = ARGV[1] .. part, ARGV[2] .. part
  local ttl = redis.call('PTTL', hash)
  if ttl ~= -2 and redis.call('EXISTS', packed) == 0 then
    local values = #fields > 0 and redis.call('HMGET', hash, unpack(fields)) or {}
    local v = {}
    for k = 1, 6 do v[k] = slots[k] and values[slots[k]] or false end
    if not v[4] or pcall(cjson.decode, v[4]) then
      local copy = '[' .. cjson.encode(ARGV[i]) .. ',' .. text(v[1]) .. ',' .. text(v[2]) .. ',' .. text(v[3])
        .. ',' .. text(v[5]) .. ',' .. text(v[6]) .. ',' .. (v[4] or 'null') .. ']'
      redis.call('SET', packed, copy)
      if ttl >= 0 then redis.call('PEXPIRE', packed, ttl) end
      n = n + 1
    end
  end
end
return n
"""
)

# KEYS[1]: a conversation's link set; KEYS[2]: its sequence hash; KEYS[3]: its packed set.
# ARGV[1]: item key prefix; ARGV[2]: packed copies' key prefix; ARGV[3]: start rank;
# ARGV[4]: count. Gives each link at those ranks that has a sequence and whose item has a
# packed copy its member of the packed set (replacing one written before), with the link
# set's TTL; returns how many links it read.
_BACKFILL_PACKED_LINKS = (
    LUA_KEY_PART
    + _EXTEND
    + LUA_PACKED
    + """
local start = tonumber(ARGV[3])
local links = redis.call('ZRANGE', KEYS[1], start, start + tonumber(ARGV[4]) - 1, 'WITHSCORES')
if #links == 0 then return 0 end
local ids = {}
for i = 1, #links, 2 do ids[#ids + 1] = links[i] end
local seqs = redis.call('HMGET', KEYS[2], unpack(ids))
local existed = redis.call('EXISTS', KEYS[3]) == 1
local now = now_ms()
for k, id in ipairs(ids) do
  local seq, score = seqs[k], links[2 * k]
  if seq then
    drop_packed(KEYS[3], score, seq)
    local part = key_part(id)
    link_packed(KEYS[3], score, tonumber(seq), ARGV[1] .. part, ARGV[2] .. part, now)
  end
end
if redis.call('EXISTS', KEYS[3]) == 1 then extend(KEYS[3], redis.call('PTTL', KEYS[1]), existed) end
return #ids
"""
)


@attrs.define(frozen=True)
class RedisMigrationPlan:
    """What the migration to layout ``LATEST`` still has to do."""

    moves: tuple[tuple[str, str], ...] = ()
    rescales: tuple[str, ...] = ()
    #: Keys to index (layout 2), by kind; empty when the marker says the indexes are built.
    index: tuple[tuple[str, int], ...] = ()
    #: Keys to pack (layout 3), by kind; empty when the marker says they are packed.
    pack: tuple[tuple[str, int], ...] = ()

    @property
    def statements(self) -> tuple[str, ...]:
        """One line per step, for ``datacon migrate plan``."""
        lines = [f"RENAME {old} {new}  -- escaped key of a non-plain id" for old, new in self.moves]
        lines += [f"RESCALE {key}  -- microsecond scores to milliseconds" for key in self.rescales]
        lines += [f"INDEX {count} {kind}  -- retention indexes (layout 2)" for kind, count in self.index if count]
        lines += [
            f"PACK {count} {kind}  -- packed copies for list_items (layout 3)" for kind, count in self.pack if count
        ]
        return tuple(lines)


def _scan(client: Any, pattern: str, key_type: str) -> Iterator[str]:
    return (str(k) for k in client.scan_iter(match=pattern, count=1000, _type=key_type))


def _stem(key: str, prefix: str, suffix: str) -> str | None:
    if not key.startswith(prefix) or not key.endswith(suffix) or len(key) <= len(prefix) + len(suffix):
        return None
    return key[len(prefix) : len(key) - len(suffix)]


def _link_sets(client: Any, keys: Keys) -> Iterator[tuple[str, str]]:
    """Every conversation's link set, with its conversation's id (keys of other shapes skipped)."""
    for key in _scan(client, f"{keys.conversation_prefix}*{keys.links_suffix}", "zset"):
        stem = _stem(key, keys.conversation_prefix, keys.links_suffix)
        owner = None if stem is None else id_of_part(stem)
        if owner is not None:
            yield key, owner


def _in_batches(script: Any, on: list[str], head: list[Any]) -> None:
    """Run ``script`` on the keys ``on`` with ``[*head, start, BATCH]`` (it handles up to
    ``BATCH`` entries from ``start`` and says how many it read), until it reads fewer."""
    start = 0
    while (read := int(script(keys=on, args=[*head, start, BATCH]))) >= BATCH:
        start += read


def plan(client: Any, keys: Keys, id_fields: dict[str, str | None]) -> RedisMigrationPlan:
    """Scan one schema's keys. ``id_fields``: the hash field holding each record kind's id."""
    moves: list[tuple[str, str]] = []
    counts: dict[str, int] = {}
    hashes = (
        ("conversation", keys.conversation_prefix, keys.conversation),
        ("item", keys.item_prefix, keys.item),
        ("response", keys.response_prefix, keys.response),
        ("link_seq", keys.sequence_prefix, keys.sequence),  # no id field: moved by its key
    )
    for kind, prefix, make in hashes:
        field = id_fields.get(kind)
        found = list(_scan(client, f"{prefix}*", "hash"))
        counts[kind] = len(found)
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
    index: tuple[tuple[str, int], ...] = ()
    pack: tuple[tuple[str, int], ...] = ()
    layout = layout_of(client.get(keys.layout))
    links = sum(1 for key, _ in sets if key.endswith(keys.links_suffix))
    if layout < INDEX:
        pending = (
            ("conversations", counts["conversation"]),
            ("items", counts["item"]),
            ("responses", counts["response"]),
            ("link sets", links),
        )
        if any(count for _, count in pending):
            index = pending
    if layout < LATEST and (counts["item"] or links):
        pack = (("items", counts["item"]), ("link sets", links))
    return RedisMigrationPlan(tuple(moves), tuple(rescales), index, pack)


def layout_of(marker: Any) -> int:
    """The layout version a ``P datacon:layout`` value names (0 when absent or unreadable)."""
    return int(marker) if marker is not None and str(marker).isdigit() else 0


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


def apply(client: Any, steps: RedisMigrationPlan, keys: Keys, codec: Codec) -> None:
    """Run the steps of ``steps`` (each one atomic); safe to repeat."""
    move = client.register_script(_MOVE)
    rescale = client.register_script(_RESCALE)
    for old, new in steps.moves:
        move(keys=[old, new], args=[])
    for key in steps.rescales:
        rescale(keys=[key], args=[])
    if steps.index:
        backfill(client, keys, codec)
    if steps.pack:
        backfill_packed(client, keys, codec)
    if steps.index or steps.pack:
        client.set(keys.layout, str(LATEST))


def _batches(client: Any, pattern: str, key_type: str) -> Iterator[list[str]]:
    batch: list[str] = []
    for key in _scan(client, pattern, key_type):
        batch.append(key)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _rows(client: Any, found: Sequence[str], prefix: str, fields: Sequence[str]) -> Iterator[tuple[str, list[Any]]]:
    """``(id, values of fields)`` of the hashes (those named by a key part datacon writes)."""
    with client.pipeline(transaction=False) as pipe:
        for key in found:
            pipe.hmget(key, list(fields))
        replies = pipe.execute()
    for key, values in zip(found, replies, strict=True):
        record_id = id_of_part(key[len(prefix) :])
        if record_id is not None and any(v is not None for v in values):
            yield record_id, list(values)


def backfill(client: Any, keys: Keys, codec: Codec) -> None:
    """Build the layout-2 indexes for every record (batches of ``BATCH`` keys, one script
    each). Safe to repeat, and to run beside live writes (which keep the indexes themselves)."""
    # Imported here: ``store`` defines the listing members (and imports this module).
    from .store import listing_member

    created = client.register_script(_BACKFILL_CREATED)
    named = client.register_script(_BACKFILL_NAMED)
    listing = client.register_script(_BACKFILL_LISTING)
    linkers = client.register_script(_BACKFILL_LINKERS)
    c, i, r = codec.conversations, codec.items, codec.responses
    if c.field("created_at") is not None:
        for batch in _batches(client, f"{keys.conversation_prefix}*", "hash"):
            args: list[str] = [keys.conversation_prefix]
            for cid, values in _rows(client, batch, keys.conversation_prefix, [c.field("created_at") or ""]):
                created_at = c.time({c.field("created_at") or "": str(values[0])}, cid) if values[0] else None
                if created_at is not None:
                    args += [cid, listing_member(created_at, cid)]
            if len(args) > 1:
                listing(keys=[keys.conversations_list], args=args)
    if i.field("created_at") is not None:
        field = i.field("created_at") or ""
        for batch in _batches(client, f"{keys.item_prefix}*", "hash"):
            args = [keys.item_prefix]
            for item_id, values in _rows(client, batch, keys.item_prefix, [field]):
                if values[0] is not None:
                    args += [score(i.time({field: str(values[0])}, item_id)), item_id]
            if len(args) > 1:
                created(keys=[keys.items_created], args=args)
    fields = [r.field(name) or "datacon:none" for name in ("created_at", "safety_identifier", "conversation_id")]
    has = [r.field(name) is not None for name in ("created_at", "safety_identifier", "conversation_id")]
    for batch in _batches(client, f"{keys.response_prefix}*", "hash"):
        by_time: list[str] = [keys.response_prefix]
        by_conversation: list[str] = [keys.conversation_responses_prefix, keys.response_prefix]
        for rid, (at, identifier, conversation) in _rows(client, batch, keys.response_prefix, fields):
            if has[0] and at is not None:
                by_time += [score(r.time({fields[0]: str(at)}, rid)), rid]
            if has[1] and has[2] and identifier is not None and conversation is not None:
                by_conversation += [rid, str(identifier), str(conversation)]
        if len(by_time) > 1:
            created(keys=[keys.responses_created], args=by_time)
        if len(by_conversation) > 2:
            named(keys=[keys.responses_created], args=by_conversation)  # the key routes it in a cluster
    for key, owner in _link_sets(client, keys):
        _in_batches(linkers, [key], [keys.item_links_prefix, owner])


def backfill_packed(client: Any, keys: Keys, codec: Codec) -> None:
    """Write the layout-3 packed copies: every item's (from its hash), then every link set's
    packed set (batches of ``BATCH`` keys or links, one script each). Safe to repeat, and to
    run beside live writes (which keep the packed copies themselves)."""
    items = client.register_script(_BACKFILL_PACKED_ITEMS)
    links = client.register_script(_BACKFILL_PACKED_LINKS)
    fields = [codec.items.field(name) or "" for name in codec.ITEM_READ]
    head = [keys.item_prefix, keys.item_packed_prefix, *fields]
    for batch in _batches(client, f"{keys.item_prefix}*", "hash"):
        ids = [i for i in (id_of_part(key[len(keys.item_prefix) :]) for key in batch) if i is not None]
        if ids:
            items(keys=[keys.items_created], args=[*head, *ids])  # the key routes it in a cluster
    for key, owner in _link_sets(client, keys):
        _in_batches(links, [key, keys.sequence(owner), keys.packed(owner)], [keys.item_prefix, keys.item_packed_prefix])
