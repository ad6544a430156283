"""The Lua scripts of the Redis backend: every check-then-write and every multi-key read.

Each script runs atomically on the server (nothing interleaves, and keys do not expire
mid-script), which is what makes creates, links and deletes all-or-nothing and gives a page
of ``list_items`` in one round trip. Scripts derive record keys from a prefix passed in
``ARGV`` (links name items, chains name responses), so every key a script touches must be on
the server that runs it: on a Redis Cluster all keys of a schema share one hash tag
(``keys.Keys``), hence one slot and one master.

A TTL argument is the number of seconds, or ``''`` for no expiry; a set that receives a
member without a TTL is made persistent so it never expires before a record it indexes.

Record keys built inside a script go through ``key_part`` (``keys.LUA_KEY_PART``), exactly as
``keys.key_part`` builds them in Python. Scores are epoch milliseconds with the microseconds
as a fraction (``scores``); a script that adds a score first rewrites the set's scores that
earlier datacon versions wrote in microseconds (``to_ms``, ``scores.LUA_TO_MS``), so one set never mixes
the two units.
"""

from __future__ import annotations

from .keys import LUA_KEY_PART
from .scores import LUA_TO_MS

__all__ = [
    "APPEND_ITEMS",
    "APPEND_ITEMS_KEYED",
    "CREATE_CONVERSATION",
    "CREATE_CONVERSATION_KEYED",
    "CREATE_RECORD",
    "CREATE_RECORD_KEYED",
    "DELETE_CONVERSATION",
    "DELETE_CONVERSATIONS",
    "DELETE_IDENTIFIER",
    "DELETE_LINK",
    "DELETE_RESPONSE",
    "DELETE_RESPONSES",
    "DELETE_UNLINKED_ITEMS",
    "GET_CHAIN",
    "IDENTIFIER_RESPONSES",
    "ITEM_LINKS",
    "LINK_ITEMS",
    "LIST_CONVERSATIONS",
    "LIST_FIRST",
    "LIST_HEAD",
    "LIST_IDENTIFIER",
    "LIST_ITEMS",
    "LUA_PACKED",
    "NAMED_BY_OTHERS",
    "OLD_CONVERSATIONS",
    "OLD_RECORDS",
    "RESTORE_LINKS",
    "STORE_RESPONSE",
    "STORE_RESPONSE_KEYED",
    "UPDATE_CONVERSATION",
]

# The retention indexes (``store``) are kept by the write and delete scripts themselves:
# ``index(set, ttl, score, member)`` adds a record to a ``created_at`` index, ``link_index``
# (``unlink_index``) adds (removes) a conversation in the set of an item's linkers. Index sets
# get the TTL of the records they index (refreshed on every write), or none. ``pack`` writes an
# item's packed copy (layout 3) with the TTL of its hash: both expire at the same instant
# (a script's clock stands still while it runs).
_INDEX = """
local function keep(key, ttl)
  if ttl ~= '' then redis.call('EXPIRE', key, ttl) else redis.call('PERSIST', key) end
end
local function index(key, ttl, score, member)
  if score == '' then return end
  redis.call('ZADD', key, score, member)
  keep(key, ttl)
end
local function link_index(prefix, item, conversation, ttl)
  local key = prefix .. key_part(item)
  redis.call('SADD', key, conversation)
  keep(key, ttl)
end
local function unlink_index(prefix, item, conversation)
  redis.call('SREM', prefix .. key_part(item), conversation)
end
local function pack(key, value, ttl)
  if ttl ~= '' then redis.call('SET', key, value, 'EX', ttl) else redis.call('SET', key, value) end
end
"""

# A conversation's packed set (layout 3, ``P conversation:{id}:packed``) holds one member per
# link, in the link's order: score added_at (as the link set), member the link's sequence (12
# digits), the instant its item's hash expires (15 digits of epoch milliseconds, 0 for
# never) and the item's packed copy. Sequences are unique in a conversation, so the set's
# order is the listing order, and ``list_items``' first page is one ZRANGE (``LIST_PACKED``)
# while the set holds a member for every link. A link gets a member when its item has a
# packed copy (links to items written before layout 3 or by upstream do not: the set is then
# incomplete and the page script reads the conversation). ``drop_packed`` removes a link's
# member (found by its score and sequence).
LUA_PACKED = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function add_packed(key, score, seq, expiry, packed)
  redis.call('ZADD', key, score, string.format('%012d%015d', seq, expiry) .. packed)
end
local function link_packed(key, score, seq, itemkey, packkey, now)
  local packed = redis.call('GET', packkey)
  if not packed then return end
  local ttl = redis.call('PTTL', itemkey)
  if ttl == -2 then return end
  add_packed(key, score, seq, ttl >= 0 and now + ttl or 0, packed)
end
local function drop_packed(key, score, seq)
  local prefix = string.format('%012d', tonumber(seq))
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', key, score, score)) do
    if string.sub(member, 1, 12) == prefix then redis.call('ZREM', key, member) end
  end
end
"""

# KEYS[1]: the item's hash; KEYS[2]: the items' created_at index; KEYS[3]: its packed copy.
# ARGV[1]: TTL; ARGV[2]: its score ('' when created_at is a skipped column); ARGV[3]: its id;
# ARGV[4]: the packed copy (``records.Codec.packed``); ARGV[5..]: field, value pairs.
# Returns 1, or 0 (and writes nothing) when the record exists.
CREATE_RECORD = (
    LUA_KEY_PART
    + _INDEX
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
pack(KEYS[3], ARGV[4], ARGV[1])
index(KEYS[2], ARGV[1], ARGV[2], ARGV[3])
return 1
"""
)

# list_conversations' indexes: sorted sets whose members (all score 0) are
# "{created_at as 18 digits}:{id}", so lexical order is (created_at, id): one set of every
# conversation, and one per (extra column, value). The hash keeps its member and the sets it
# is in (fields "datacon:member" and "datacon:sets", a JSON array) for the delete.
#
# KEYS[1]: the conversation hash; KEYS[2..]: the index sets it joins. ARGV[1]: TTL;
# ARGV[2]: its member; ARGV[3..]: field, value pairs. Returns 1, or 0 (and writes nothing)
# when the conversation exists.
CREATE_CONVERSATION = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local sets = {}
for i = 2, #KEYS do sets[#sets + 1] = KEYS[i] end
redis.call('HSET', KEYS[1], 'datacon:member', ARGV[2], 'datacon:sets', cjson.encode(sets), unpack(ARGV, 3))
if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], 0, ARGV[2])
  if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[i], ARGV[1]) else redis.call('PERSIST', KEYS[i]) end
end
return 1
"""

# Deletes one conversation (KEYS: hash, link set, sequence hash), its listing members and
# its links (each item's linkers set included); returns {conversation deleted (0/1), links}.
_DELETE_ONE = """
local function delete_one(hash, links, seq, packed, conversation, linkers)
  local member = redis.call('HGET', hash, 'datacon:member')
  if member then
    local sets = redis.call('HGET', hash, 'datacon:sets')
    if sets then
      for _, key in ipairs(cjson.decode(sets)) do redis.call('ZREM', key, member) end
    end
  end
  local items = redis.call('ZRANGE', links, 0, -1)
  for _, item in ipairs(items) do unlink_index(linkers, item, conversation) end
  redis.call('DEL', links, seq, packed)
  return redis.call('DEL', hash), items
end
"""

# KEYS[1]: the conversation hash; KEYS[2]: its link set; KEYS[3]: its sequence hash; KEYS[4]:
# its packed set. ARGV[1]: item linkers key prefix; ARGV[2]: the conversation id. Removes them all, the
# conversation's index members and its items' linker entries. Returns 1 if the conversation
# existed, else 0.
DELETE_CONVERSATION = (
    LUA_KEY_PART
    + _INDEX
    + _DELETE_ONE
    + """
local deleted = delete_one(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[1])
return deleted
"""
)

# KEYS[1]: the index set to walk. ARGV[1]: conversation key prefix; ARGV[2]: limit (> 0);
# ARGV[3]: '1' for descending; ARGV[4]: the member to start after, or '' for the start;
# ARGV[5..]: field, value pairs the conversation must also have. Members whose hash is gone
# (expired) or is another conversation's by now are skipped. Returns {id, hash fields} pairs.
LIST_CONVERSATIONS = (
    LUA_KEY_PART
    + """
local limit = tonumber(ARGV[2])
local desc = ARGV[3] == '1'
local lo, hi
if desc then
  lo = ARGV[4] == '' and '+' or '(' .. ARGV[4]
  hi = '-'
else
  lo = ARGV[4] == '' and '-' or '(' .. ARGV[4]
  hi = '+'
end
local batch = math.min(math.max(limit, 16), 500)
local out = {}
while #out < limit do
  local members
  if desc then members = redis.call('ZREVRANGEBYLEX', KEYS[1], lo, hi, 'LIMIT', 0, batch)
  else members = redis.call('ZRANGEBYLEX', KEYS[1], lo, hi, 'LIMIT', 0, batch) end
  for _, member in ipairs(members) do
    local id = string.sub(member, 20)
    local key = ARGV[1] .. key_part(id)
    if redis.call('HGET', key, 'datacon:member') == member then
      local ok = true
      for i = 5, #ARGV, 2 do
        if redis.call('HGET', key, ARGV[i]) ~= ARGV[i + 1] then ok = false; break end
      end
      if ok then
        out[#out + 1] = {id, redis.call('HGETALL', key)}
        if #out >= limit then break end
      end
    end
  end
  if #members < batch then break end
  lo = '(' .. members[#members]
end
return out
"""
)

# KEYS[1]: the response hash; KEYS[2]: the responses' created_at index; KEYS[3]: its
# safety-identifier sorted set; KEYS[4]: the conversation's identified responses (hash).
# ARGV[1]: TTL; ARGV[2]: score (created_at, epoch milliseconds); ARGV[3]: response id;
# ARGV[4]: '1' to index created_at (not a skipped column); ARGV[5]: '1' to add it to
# KEYS[3]; ARGV[6]: its safety identifier to record in KEYS[4], or '' for none;
# ARGV[7..]: field, value pairs. Returns 1, or 0 (and writes nothing) when the id exists.
STORE_RESPONSE = (
    LUA_KEY_PART
    + LUA_TO_MS
    + _INDEX
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if ARGV[4] == '1' then index(KEYS[2], ARGV[1], ARGV[2], ARGV[3]) end
if ARGV[5] == '1' then
  to_ms(KEYS[3])
  index(KEYS[3], ARGV[1], ARGV[2], ARGV[3])
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[3], ARGV[6])
  keep(KEYS[4], ARGV[1])
end
return 1
"""
)

# KEYS[1]: the conversation hash. ARGV[1]: metadata field ('' when skipped); ARGV[2]: the
# metadata JSON, or '' to clear it. Returns the updated hash, or nil when it does not exist.
UPDATE_CONVERSATION = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if ARGV[1] ~= '' then
  if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  else redis.call('HDEL', KEYS[1], ARGV[1]) end
end
return redis.call('HGETALL', KEYS[1])
"""

# KEYS[1]: the conversation's link set; KEYS[2]: its sequence hash; KEYS[3]: its packed set.
# ARGV[1]: item id; ARGV[2]: item linkers key prefix; ARGV[3]: the conversation id. Unlinks
# the item and drops its sequence, packed member and linker entry; 1 if the link existed,
# else 0.
DELETE_LINK = (
    LUA_KEY_PART
    + _INDEX
    + LUA_PACKED
    + """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
local seq = redis.call('HGET', KEYS[2], ARGV[1])
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if score and seq then drop_packed(KEYS[3], score, seq) end
unlink_index(ARGV[2], ARGV[1], ARGV[3])
return removed
"""
)

# The order of a conversation's links is (added_at, sequence, item id): the sorted set
# orders them by score (added_at) then member, and the sequence hash (member -> sequence,
# field '' the conversation's last sequence) orders the links that share a score, in the
# order they were linked. A link without a sequence (made before datacon kept one, or
# restored from an export) counts as 0 and keeps its old place by item id.

# Shared by the write scripts: give ARGV's links (members at ARGV[first], ARGV[first+2]...)
# the next sequences, in the order given. KEYS[2]: the sequence hash; ttl: ARGV[1].
_SEQUENCE = """
local function sequence(first, step, count)
  local base = redis.call('HINCRBY', KEYS[2], '', count) - count
  local batch = {}
  local n = 0
  for i = first, first + (count - 1) * step, step do
    n = n + 1
    batch[#batch + 1] = ARGV[i]
    batch[#batch + 1] = base + n
    if #batch >= 1000 then redis.call('HSET', KEYS[2], unpack(batch)); batch = {} end
  end
  if #batch > 0 then redis.call('HSET', KEYS[2], unpack(batch)) end
  if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[2], ARGV[1]) else redis.call('PERSIST', KEYS[2]) end
  return base
end
"""

# KEYS[1]: the conversation's link set; KEYS[2]: its sequence hash; KEYS[3]: its packed set.
# ARGV[1]: TTL; ARGV[2]: item linkers key prefix; ARGV[3]: the conversation id; ARGV[4]: item
# key prefix; ARGV[5]: packed copies' key prefix; ARGV[6..]: score, item id pairs. Checks
# every link first: returns the first item id already linked (or repeated), writing nothing;
# otherwise adds them all (and to the items' linkers and the packed set), sequenced in the
# order given, and returns nil.
LINK_ITEMS = (
    LUA_KEY_PART
    + LUA_TO_MS
    + _INDEX
    + _SEQUENCE
    + LUA_PACKED
    + """
local seen = {}
for i = 6, #ARGV, 2 do
  local member = ARGV[i + 1]
  if seen[member] or redis.call('ZSCORE', KEYS[1], member) then return member end
  seen[member] = true
end
to_ms(KEYS[1])
local batch = {}
for i = 6, #ARGV, 2 do
  link_index(ARGV[2], ARGV[i + 1], ARGV[3], ARGV[1])
  batch[#batch + 1] = ARGV[i]
  batch[#batch + 1] = ARGV[i + 1]
  if #batch >= 1000 then  -- stay far below Lua's limit on unpack() arguments
    redis.call('ZADD', KEYS[1], unpack(batch))
    batch = {}
  end
end
if #batch > 0 then redis.call('ZADD', KEYS[1], unpack(batch)) end
if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[1]) else redis.call('PERSIST', KEYS[1]) end
local base = sequence(7, 2, (#ARGV - 5) / 2)
local now, n = now_ms(), 0
for i = 6, #ARGV, 2 do
  n = n + 1
  local part = key_part(ARGV[i + 1])
  link_packed(KEYS[3], ARGV[i], base + n, ARGV[4] .. part, ARGV[5] .. part, now)
end
keep(KEYS[3], ARGV[1])
return false
"""
)

# KEYS[1]: the conversation's link set; KEYS[2]: its sequence hash; KEYS[3]: its packed set.
# ARGV[1]: TTL; ARGV[2]: item linkers key prefix; ARGV[3]: the conversation id; ARGV[4]: item
# key prefix; ARGV[5]: packed copies' key prefix; ARGV[6..]: score, item id pairs. Adds each
# link that is absent (and to the item's linkers and the packed set) (an import skips the
# links that exist), sequences the added ones in the order given (an export lists each
# conversation's links in their order, so a turn keeps its order), refreshes the TTLs as
# every write does, and returns how many it added.
RESTORE_LINKS = (
    LUA_KEY_PART
    + LUA_TO_MS
    + _INDEX
    + LUA_PACKED
    + """
to_ms(KEYS[1])
local added, scores = {}, {}
for i = 6, #ARGV, 2 do
  if redis.call('ZADD', KEYS[1], 'NX', ARGV[i], ARGV[i + 1]) == 1 then
    added[#added + 1] = ARGV[i + 1]
    scores[#added] = ARGV[i]
  end
  link_index(ARGV[2], ARGV[i + 1], ARGV[3], ARGV[1])
end
if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[1]) else redis.call('PERSIST', KEYS[1]) end
if #added == 0 then return 0 end
local base = redis.call('HINCRBY', KEYS[2], '', #added) - #added
local batch = {}
for n, member in ipairs(added) do
  batch[#batch + 1] = member
  batch[#batch + 1] = base + n
  if #batch >= 1000 then redis.call('HSET', KEYS[2], unpack(batch)); batch = {} end
end
if #batch > 0 then redis.call('HSET', KEYS[2], unpack(batch)) end
if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[2], ARGV[1]) else redis.call('PERSIST', KEYS[2]) end
local now = now_ms()
for n, member in ipairs(added) do
  local part = key_part(member)
  link_packed(KEYS[3], scores[n], base + n, ARGV[4] .. part, ARGV[5] .. part, now)
end
keep(KEYS[3], ARGV[1])
return #added
"""
)


# batched(command, key, list, step): ``command`` (after ``key`` unless nil) over the list's
# elements in calls of at most 1000 (whole groups of ``step``: pairs for MSET and ZADD), far
# below Lua's limit on unpack() arguments. Returns the sum of the integer replies and the
# elements of the array replies, in order.
_BATCH = """
local function batched(command, key, list, step)
  local count = #list
  if count == 0 then return 0, {} end
  if count <= 1000 then  -- the usual case: one command, its reply as is
    local reply
    if key then reply = redis.call(command, key, unpack(list)) else reply = redis.call(command, unpack(list)) end
    if type(reply) == 'number' then return reply, {} end
    if reply.ok == nil then return 0, reply end
    return 0, {}
  end
  local total, out = 0, {}
  local size = 1000 - 1000 % step
  for first = 1, count, size do
    local last = math.min(first + size - 1, #list)
    local reply
    if key then reply = redis.call(command, key, unpack(list, first, last))
    else reply = redis.call(command, unpack(list, first, last)) end
    if type(reply) == 'number' then total = total + reply
    elseif reply.ok == nil then
      for i = 1, #reply do out[#out + 1] = reply[i] end
    end
  end
  return total, out
end
"""

# KEYS[1]: the conversation's link set; KEYS[2]: its sequence hash; KEYS[3]: the items'
# created_at index; KEYS[4]: the conversation's packed set. ARGV[1]: TTL; ARGV[2]: item key
# prefix; ARGV[3]: score (added_at); ARGV[4]: the items' created_at score ('' when skipped);
# ARGV[5]: the packed copies' key prefix; ARGV[6]: the item linkers key prefix; ARGV[7]: the
# conversation id; ARGV[8]: the number of items; ARGV[9..8+count]: their ids, in order; then
# per item, its packed copy, its field count and its field, value pairs. Checks everything
# first: returns {'exists', id} or {'linked', id} and writes nothing; otherwise creates every
# item hash (indexed) and packed copy, links them all at one score (in the packed set too),
# sequenced in the order given, and returns nil. The writes of one kind to several keys are
# one command (``batched``), not one per item.
APPEND_ITEMS = (
    LUA_KEY_PART
    + LUA_TO_MS
    + _INDEX
    + LUA_PACKED
    + _BATCH
    + """
local ttl, score, created, count = ARGV[1], ARGV[3], ARGV[4], tonumber(ARGV[8])
local ids, parts, keys, seen, repeated = {}, {}, {}, {}, false
for n = 1, count do
  local id = ARGV[8 + n]
  if seen[id] then repeated = true end
  seen[id] = true
  ids[n], parts[n] = id, key_part(id)
  keys[n] = ARGV[2] .. parts[n]
end
-- One EXISTS and one ZMSCORE check every item; only a refusal walks them one by one, to
-- name the first item in order that exists (or repeats) or is linked.
local clash = repeated or batched('EXISTS', nil, keys, 1) > 0
if not clash then
  local _, linked = batched('ZMSCORE', KEYS[1], ids, 1)
  for n = 1, count do
    if linked[n] then clash = true; break end
  end
end
if clash then
  seen = {}
  for n = 1, count do
    local id = ids[n]
    if seen[id] or redis.call('EXISTS', keys[n]) == 1 then return {'exists', id} end
    if redis.call('ZSCORE', KEYS[1], id) then return {'linked', id} end
    seen[id] = true
  end
end
to_ms(KEYS[1])
-- The items' linkers sets: without a TTL to give, sets made here need no PERSIST (one
-- EXISTS tells whether any of them is there already, from an item of the same id).
local linkers = {}
for n = 1, count do linkers[n] = ARGV[6] .. parts[n] end
local fresh = ttl == '' and batched('EXISTS', nil, linkers, 1) == 0
local packed, copies, indexed, links = {}, {}, {}, {}
local timed, conversation, at = ttl ~= '', ARGV[7], 9 + count
for n = 1, count do
  local id, key, fields = ids[n], keys[n], tonumber(ARGV[at + 1])
  local copy = ARGV[at]
  packed[n] = copy
  redis.call('HSET', key, unpack(ARGV, at + 2, at + 1 + fields))
  if timed then
    redis.call('EXPIRE', key, ttl)
    redis.call('SET', ARGV[5] .. parts[n], copy, 'EX', ttl)
  else
    copies[2 * n - 1], copies[2 * n] = ARGV[5] .. parts[n], copy
  end
  indexed[2 * n - 1], indexed[2 * n] = created, id
  redis.call('SADD', linkers[n], conversation)
  if timed then redis.call('EXPIRE', linkers[n], ttl) elseif not fresh then redis.call('PERSIST', linkers[n]) end
  links[2 * n - 1], links[2 * n] = score, id
  at = at + fields + 2
end
batched('MSET', nil, copies, 2)
if created ~= '' then
  batched('ZADD', KEYS[3], indexed, 2)
  keep(KEYS[3], ttl)
end
batched('ZADD', KEYS[1], links, 2)
keep(KEYS[1], ttl)
-- The links' sequences, in the order given (as ``sequence`` in the other write scripts),
-- passed as text: Redis 7.0 formats a Lua number argument with printf's %.17g. The packed
-- members' expiry (15 digits) is the same for all.
local base = redis.call('HINCRBY', KEYS[2], '', ARGV[8]) - count
local sequences, members = {}, {}
local expiry = string.format('%015d', timed and now_ms() + tonumber(ttl) * 1000 or 0)
for n = 1, count do
  local seq = base + n
  sequences[2 * n - 1], sequences[2 * n] = ids[n], string.format('%d', seq)
  members[2 * n - 1], members[2 * n] = score, string.format('%012d', seq) .. expiry .. packed[n]
end
batched('HSET', KEYS[2], sequences, 2)
keep(KEYS[2], ttl)
batched('ZADD', KEYS[4], members, 2)
keep(KEYS[4], ttl)
return false
"""
)

# KEYS[1]: the conversation's link set; KEYS[2]: its sequence hash. ARGV[1]: item key
# prefix; ARGV[2]: limit (> 0); ARGV[3]: '1' for descending; ARGV[4]: cursor item id, or
# ''; ARGV[5..7]: a position instead (score, sequence, item id of a link that may be
# gone; a page cursor), or ''; ARGV[8]: the packed copies' key prefix, or '' to read every
# item from its hash; ARGV[9]: '1' to return the links' positions; ARGV[10..]: the hash
# fields to read of an item without a packed copy ('' for a skipped column, read as absent).
# KEYS[3] (the packed set) is read by the first-page scripts below, which put this script
# behind a check of it (``LIST_FIRST``, ``LIST_HEAD``).
# Reads by rank in slices, each starting where a score begins; the links of one score are
# put in sequence order (a run cut by the slice's end is read whole). A cursor that is not
# a member is ignored. Links whose item hash is missing are skipped and the walk goes on
# until the page is full. Otherwise items are read in batches: one MGET of their packed copies (layout
# 3) and one EXISTS of their hashes (the hash decides whether the item exists, whoever
# deleted it), and one HMGET for each item without a packed copy (written by upstream or
# before layout 3). Returns {more, page, fallback, positions}: more is 1 when at least one
# more link follows the page; page is one string, a JSON array of the packed copies in page
# order with null for each item read from its hash; fallback holds {item id, values} of
# those (values: the fields' values in ARGV order, false when absent), in order; positions
# is {score, sequence, ...} of every link of the page when asked, else empty. Item keys go
# through key_part; scores are returned as Redis gives them (milliseconds; the caller reads
# them with scores.score_time).
LIST_ITEMS = (
    LUA_KEY_PART
    + LUA_TO_MS
    + """
local key, seqkey, prefix, packs = KEYS[1], KEYS[2], ARGV[1], ARGV[8]
local limit = tonumber(ARGV[2])
local desc = ARGV[3] == '1'
local with_positions = ARGV[9] == '1'
local range = desc and 'ZREVRANGE' or 'ZRANGE'
local parts, fallback, positions, count = {}, {}, {}, 0
-- A set still in microseconds is rewritten first, so a position's score (milliseconds)
-- matches it; nothing is written when the set is in milliseconds already.
to_ms(key)

local function seqs(ids, into)
  for first = 1, #ids, 500 do
    local last = math.min(first + 499, #ids)
    local values = redis.call('HMGET', seqkey, unpack(ids, first, last))
    for i = first, last do into[ids[i]] = tonumber(values[i - first + 1]) or 0 end
  end
end

-- Put ids (given in the set's order for one score) in listing order.
local function order(ids, s)
  if #ids < 2 then return ids end
  local place = {}
  for i, id in ipairs(ids) do place[id] = i end
  table.sort(ids, function(a, b)
    if s[a] ~= s[b] then if desc then return s[a] > s[b] end return s[a] < s[b] end
    return place[a] < place[b]
  end)
  return ids
end

-- Every member with exactly this score, in listing order.
local function run(score, s)
  local ids
  if desc then ids = redis.call('ZREVRANGEBYSCORE', key, score, score)
  else ids = redis.call('ZRANGEBYSCORE', key, score, score) end
  seqs(ids, s)
  return order(ids, s)
end

-- The rank (in listing direction) of the first member past this score.
local function past(score)
  if desc then return redis.call('ZCOUNT', key, score, '+inf') end
  return redis.call('ZCOUNT', key, '-inf', score)
end

-- The hash fields to read of an item without a packed copy; '' marks a skipped column.
local fields, slots, nfields = {}, {}, #ARGV - 9
for i = 10, #ARGV do
  if ARGV[i] ~= '' then fields[#fields + 1] = ARGV[i]; slots[#fields] = i - 9 end
end

local function read(itemkey)
  local row, any = {}, false
  for i = 1, nfields do row[i] = false end
  if #fields > 0 then
    for i, value in ipairs(redis.call('HMGET', itemkey, unpack(fields))) do
      if value then row[slots[i]] = value; any = true end
    end
  end
  -- No field present: a missing item (skipped), unless the hash exists (rare: one more call).
  if not any and redis.call('EXISTS', itemkey) == 0 then return nil end
  return row
end

-- Links waiting to be read (in page order), with their scores and sequences.
local pending, pscores, pseqs = {}, {}, {}

local function add(part, k)
  count = count + 1
  parts[count] = part
  if with_positions then
    positions[#positions + 1] = pscores[k]
    positions[#positions + 1] = pseqs[k]
  end
end

-- Reads the pending links into the page while it has room, in batches, skipping links whose
-- item is gone; true when the page was full before the last of them (one more link follows).
local function flush()
  local n, i = #pending, 1
  while i <= n do
    if count >= limit then return true end
    local last = math.min(n, i + math.min(limit - count, 500) - 1)
    local hashes, packed = {}, {}
    if packs ~= '' then
      local keys = {}
      for k = i, last do
        local part = key_part(pending[k])
        hashes[k - i + 1] = prefix .. part
        keys[k - i + 1] = packs .. part
      end
      packed = redis.call('MGET', unpack(keys))
      local present = {}
      for k = 1, #keys do
        if packed[k] then present[#present + 1] = hashes[k] end
      end
      -- A packed copy counts only while its hash exists: one call for the batch, and one per
      -- packed item only when some hash is gone.
      if #present > 0 and redis.call('EXISTS', unpack(present)) < #present then
        for k = 1, #keys do
          if packed[k] and redis.call('EXISTS', hashes[k]) == 0 then packed[k] = false; hashes[k] = false end
        end
      end
    else
      for k = i, last do hashes[k - i + 1] = prefix .. key_part(pending[k]) end
    end
    for k = i, last do
      local value, hash = packed[k - i + 1], hashes[k - i + 1]
      if value then
        add(value, k)
      elseif hash then
        local row = read(hash)
        if row then
          fallback[#fallback + 1] = {pending[k], row}
          add('null', k)
        end
      end
    end
    i = last + 1
  end
  pending, pscores, pseqs = {}, {}, {}
  return false
end

-- Queues one score's links (in listing order); reads the queue once it could fill the page
-- (or holds 500 links). True when the page is full and one more link follows.
local function queue(ids, score, s)
  for _, id in ipairs(ids) do
    local k = #pending + 1
    pending[k], pscores[k], pseqs[k] = id, score, s[id]
  end
  if count + #pending >= limit or #pending >= 500 then return flush() end
  return false
end

-- queue({id}, score, s) without the table.
local function queue1(id, score, s)
  local k = #pending + 1
  pending[k], pscores[k], pseqs[k] = id, score, s[id]
  if count + k >= limit or k >= 500 then return flush() end
  return false
end

local start = 0
local first, first_score, first_s = nil, nil, {}
if ARGV[4] ~= '' then
  local score = redis.call('ZSCORE', key, ARGV[4])
  if score then
    local ids = run(score, first_s)
    first, first_score = {}, score
    local found = false
    for _, id in ipairs(ids) do
      if found then first[#first + 1] = id end
      if id == ARGV[4] then found = true end
    end
    start = past(score)
  end
elseif ARGV[5] ~= '' then
  local score, seq, at = ARGV[5], tonumber(ARGV[6]), ARGV[7]
  local ids = run(score, first_s)
  first, first_score = {}, score
  for _, id in ipairs(ids) do
    local s = first_s[id]
    local after
    if s ~= seq then after = (s > seq) ~= desc else after = (id > at) ~= desc and id ~= at end
    if after then first[#first + 1] = id end
  end
  start = past(score)
end

local function walk()
  if first and queue(first, first_score, first_s) then return 1 end
  local batch = math.min(math.max(limit + 1, 16), 500)  -- limit may be huge: bounded slices
  while true do
    local slice = redis.call(range, key, start, start + batch - 1, 'WITHSCORES')
    local n = #slice / 2
    if n == 0 then return flush() and 1 or 0 end
    local ids = {}
    for i = 1, n do ids[i] = slice[2 * i - 1] end
    -- Sequences order the links that share a score; the whole slice's only when positions
    -- are returned (a link alone at its score needs none).
    local s = {}
    if with_positions then seqs(ids, s) end
    local i = 1
    while i <= n do
      local score = slice[2 * i]
      local j = i
      while j < n and slice[2 * j + 2] == score do j = j + 1 end
      if count >= limit then return 1 end  -- full: this link is the one more (no run to read)
      if j == n and n == batch then
        local group = run(score, s)  -- the score's links may go on past this slice
        start = past(score)
        if queue(group, score, s) then return 1 end
      elseif i == j then
        if queue1(ids[i], score, s) then return 1 end
      else
        local group = {}
        for k = i, j do group[#group + 1] = ids[k] end
        if not with_positions then seqs(group, s) end
        if queue(order(group, s), score, s) then return 1 end
      end
      i = j + 1
    end
    if n < batch then return flush() and 1 or 0 end
  end
end

local more = walk()
return {more, '[' .. table.concat(parts, ',') .. ']', fallback, positions}
"""
)

# ARGV[1]: response key prefix; ARGV[2]: start id; ARGV[3]: max depth (-1: unlimited);
# ARGV[4]: previous_response_id field ('' when skipped).
# Follows previous ids from the start, newest first, and stops at max depth, at a missing
# response, or at an id already visited (the caller reports that cycle).
# Returns {response id, hash fields} pairs.
GET_CHAIN = (
    LUA_KEY_PART
    + """
local max = tonumber(ARGV[3])
local seen = {}
local out = {}
local current = ARGV[2]
while current do
  if max >= 0 and #out >= max then break end
  if seen[current] then break end
  local row = redis.call('HGETALL', ARGV[1] .. key_part(current))
  if #row == 0 then break end
  seen[current] = true
  out[#out + 1] = {current, row}
  local previous = false
  if ARGV[4] ~= '' then
    for i = 1, #row, 2 do
      if row[i] == ARGV[4] then previous = row[i + 1]; break end
    end
  end
  current = previous
end
return out
"""
)

# KEYS[1]: the safety-identifier set. ARGV[1]: response key prefix; ARGV[2]: limit
# (-1: all); ARGV[3]: safety_identifier field; ARGV[4]: the identifier.
# Newest first (ties: id descending, as ZREVRANGE orders equal scores). Members whose hash
# is gone (expired), or now carries another identifier, are skipped.
# Returns {response id, hash fields} pairs.
LIST_IDENTIFIER = (
    LUA_KEY_PART
    + """
local limit = tonumber(ARGV[2])
local batch = 500
if limit > 0 then batch = math.min(math.max(limit, 16), 500) end
local out = {}
local start = 0
while limit < 0 or #out < limit do
  local ids = redis.call('ZREVRANGE', KEYS[1], start, start + batch - 1)
  for _, id in ipairs(ids) do
    local row = redis.call('HGETALL', ARGV[1] .. key_part(id))
    local owned = false
    for i = 1, #row, 2 do
      if row[i] == ARGV[3] then owned = row[i + 1] == ARGV[4]; break end
    end
    if owned then
      out[#out + 1] = {id, row}
      if limit >= 0 and #out >= limit then break end
    end
  end
  if #ids < batch then break end
  start = start + batch
end
return out
"""
)

# Deletes one response (its hash ``key``) with its index entries; 1 if it existed, else 0.
# ``f``: {created index, safety prefix, safety suffix, safety field ('' when skipped),
# conversation_id field ('' when skipped), conversation responses prefix}.
_DELETE_RESPONSE = """
local function delete_response(key, id, f)
  local values = redis.call('HMGET', key, f[4] ~= '' and f[4] or 'datacon:none', f[5] ~= '' and f[5] or 'datacon:none')
  local identifier, conversation = f[4] ~= '' and values[1], f[5] ~= '' and values[2]
  if identifier then redis.call('ZREM', f[2] .. key_part(identifier) .. f[3], id) end
  if conversation then redis.call('HDEL', f[6] .. key_part(conversation), id) end
  redis.call('ZREM', f[1], id)
  return redis.call('DEL', key)
end
"""

# KEYS[1]: the safety-identifier set; KEYS[2]: the responses' created_at index. ARGV[1]:
# response key prefix; ARGV[2]: safety_identifier field; ARGV[3]: the identifier; ARGV[4]:
# the conversation_id field ('' when skipped); ARGV[5]: conversation responses prefix;
# ARGV[6], ARGV[7]: safety set key prefix and suffix. Deletes the responses that still carry
# this identifier (with their index entries), then the set; returns how many were deleted.
DELETE_IDENTIFIER = (
    LUA_KEY_PART
    + _DELETE_RESPONSE
    + """
local f = {KEYS[2], ARGV[6], ARGV[7], ARGV[2], ARGV[4], ARGV[5]}
local deleted = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. key_part(id)
  if redis.call('HGET', key, ARGV[2]) == ARGV[3] then deleted = deleted + delete_response(key, id, f) end
end
redis.call('DEL', KEYS[1])
return deleted
"""
)

# KEYS[1]: the response hash; KEYS[2]: the responses' created_at index. ARGV[1], ARGV[2]:
# safety set key prefix and suffix; ARGV[3]: safety_identifier field ('' when skipped);
# ARGV[4]: the response id; ARGV[5]: conversation_id field ('' when skipped); ARGV[6]:
# conversation responses prefix. Deletes the hash and its index entries together; 1 or 0.
DELETE_RESPONSE = (
    LUA_KEY_PART
    + _DELETE_RESPONSE
    + """
return delete_response(KEYS[1], ARGV[4], {KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[5], ARGV[6]})
"""
)


def keyed(script: str, written: str) -> str:
    """``script`` with an idempotency key (SPEC 7.3), checked and set in the same script.

    The last key is the idempotency key; the last three arguments are the call's fingerprint
    (64 hex digits), its result (JSON) and the key's TTL in milliseconds. When the key exists
    the script writes nothing and returns ``{'datacon:idempotency', fingerprint, result}`` of
    the first call (the caller compares the fingerprints); else it runs ``script`` on the
    other keys and arguments, and sets the key (``PX``) when ``written`` (a Lua expression of
    the script's reply ``out``) says the script wrote its records.
    """
    return f"""
local function datacon_script(KEYS, ARGV)
{script}
end
local n, m = #KEYS, #ARGV
local idem = KEYS[n]
local stored = redis.call('GET', idem)
if stored then return {{'datacon:idempotency', string.sub(stored, 1, 64), string.sub(stored, 65)}} end
local keys, args = {{}}, {{}}
for i = 1, n - 1 do keys[i] = KEYS[i] end
for i = 1, m - 3 do args[i] = ARGV[i] end
local out = datacon_script(keys, args)
if {written} then redis.call('SET', idem, ARGV[m - 2] .. ARGV[m - 1], 'PX', ARGV[m]) end
return out
"""


#: The creating scripts with an idempotency key (``keyed``).
CREATE_RECORD_KEYED = keyed(CREATE_RECORD, "out == 1")
CREATE_CONVERSATION_KEYED = keyed(CREATE_CONVERSATION, "out == 1")
STORE_RESPONSE_KEYED = keyed(STORE_RESPONSE, "out == 1")
APPEND_ITEMS_KEYED = keyed(APPEND_ITEMS, "not out")


# Retention and erasure (``RedisBackend``'s ``Prunable`` calls, SPEC 7.7). Each call is one
# script over one batch, so a concurrent writer waits at most one batch. Index entries whose
# record is gone (expired by ``retention_days``, or written by a version that kept no index)
# are dropped when a script meets them; an entry is trusted only after its record is checked.

# live_linkers(linkers, conversations, suffix, item): the conversations whose link set still
# holds the item, from the item's linkers set (stale members are removed).
_LINKERS = """
local function live_linkers(linkers, conversations, suffix, item)
  local key = linkers .. key_part(item)
  local live = {}
  for _, c in ipairs(redis.call('SMEMBERS', key)) do
    if redis.call('ZSCORE', conversations .. key_part(c) .. suffix, item) then live[#live + 1] = c
    else redis.call('SREM', key, c) end
  end
  return live
end
local function delete_if_unlinked(created, items, packs, linkers, conversations, suffix, item)
  if #live_linkers(linkers, conversations, suffix, item) > 0 then return 0 end
  redis.call('ZREM', created, item)
  redis.call('DEL', linkers .. key_part(item), packs .. key_part(item))
  return redis.call('DEL', items .. key_part(item))
end
"""

# KEYS[1]: a created_at index (items or responses). ARGV[1]: the record key prefix; ARGV[2]:
# the cutoff score (exclusive); ARGV[3], ARGV[4]: the score and id to start after, or '' and
# ''; ARGV[5]: limit. Up to ``limit`` {id, score} of stored records, ascending by (score, id);
# entries whose record is gone are removed. Examines at most about 2,000 entries: returns
# {page, 1} when it stopped there, {page, 0} when the range is exhausted or the page full.
OLD_RECORDS = (
    LUA_KEY_PART
    + """
local cutoff, limit = tonumber(ARGV[2]), tonumber(ARGV[5])
local after, start = nil, 0
if ARGV[3] ~= '' then
  after = tonumber(ARGV[3])
  start = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[3])
end
local out, gone, examined, capped = {}, {}, 0, 0
local batch = 500
local done = false
while not done and #out < limit do
  if examined >= 2000 then capped = 1; break end
  local slice = redis.call('ZRANGE', KEYS[1], start, start + batch - 1, 'WITHSCORES')
  local n = #slice / 2
  for i = 1, n do
    local id, score = slice[2 * i - 1], slice[2 * i]
    local value = tonumber(score)
    examined = examined + 1
    if value >= cutoff then done = true; break end
    if not (after and value == after and id <= ARGV[4]) then
      if redis.call('EXISTS', ARGV[1] .. key_part(id)) == 1 then
        out[#out + 1] = {id, score}
        if #out >= limit then break end
      else
        gone[#gone + 1] = id
      end
    end
  end
  if n < batch then break end
  start = start + batch
end
for i = 1, #gone, 500 do redis.call('ZREM', KEYS[1], unpack(gone, i, math.min(i + 499, #gone))) end
return {out, capped}
"""
)

# KEYS[1]: the conversations listing set. ARGV[1]: conversation key prefix; ARGV[2]: the
# lexical start ('-' or '(' .. member); ARGV[3]: the end ('(' .. cutoff's 18 digits);
# ARGV[4]: limit. Up to ``limit`` members of stored conversations, in (created_at, id) order;
# members whose conversation is gone are removed. Returns {members, capped} (as OLD_RECORDS).
OLD_CONVERSATIONS = (
    LUA_KEY_PART
    + """
local limit = tonumber(ARGV[4])
local lo = ARGV[2]
local out, gone, examined, capped = {}, {}, 0, 0
while #out < limit do
  if examined >= 2000 then capped = 1; break end
  local members = redis.call('ZRANGEBYLEX', KEYS[1], lo, ARGV[3], 'LIMIT', 0, 500)
  for _, member in ipairs(members) do
    examined = examined + 1
    if redis.call('HGET', ARGV[1] .. key_part(string.sub(member, 20)), 'datacon:member') == member then
      out[#out + 1] = member
      if #out >= limit then break end
    else
      gone[#gone + 1] = member
    end
  end
  if #members < 500 then break end
  lo = '(' .. members[#members]
end
for i = 1, #gone, 500 do redis.call('ZREM', KEYS[1], unpack(gone, i, math.min(i + 499, #gone))) end
return {out, capped}
"""
)

# ARGV[1]: item linkers key prefix; ARGV[2]: conversation key prefix; ARGV[3]: the link set
# suffix; ARGV[4..]: item ids. Every live link of those items: {item id, conversation id}...
ITEM_LINKS = (
    LUA_KEY_PART
    + _LINKERS
    + """
local out = {}
for i = 4, #ARGV do
  for _, c in ipairs(live_linkers(ARGV[1], ARGV[2], ARGV[3], ARGV[i])) do out[#out + 1] = {ARGV[i], c} end
end
return out
"""
)

# KEYS[1]: the items' created_at index. ARGV[1]: item key prefix; ARGV[2]: packed copies'
# key prefix; ARGV[3]: item linkers key prefix; ARGV[4]: conversation key prefix; ARGV[5]:
# link set suffix; ARGV[6..]: item ids. Deletes those that no link names (with their packed
# copies and index entries); returns how many.
DELETE_UNLINKED_ITEMS = (
    LUA_KEY_PART
    + _LINKERS
    + """
local deleted = 0
for i = 6, #ARGV do
  deleted = deleted + delete_if_unlinked(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[i])
end
return deleted
"""
)

# KEYS[1]: the items' created_at index. ARGV[1]: conversation key prefix; ARGV[2]: link set
# suffix; ARGV[3]: sequence key prefix; ARGV[4]: item linkers key prefix; ARGV[5]: item key
# prefix; ARGV[6]: '1' to delete the items left unlinked too; ARGV[7]: packed copies' key
# prefix; ARGV[8]: packed set suffix; ARGV[9..]: conversation ids.
# Deletes the conversations with their links; returns {conversations, links, items}.
DELETE_CONVERSATIONS = (
    LUA_KEY_PART
    + _INDEX
    + _DELETE_ONE
    + _LINKERS
    + """
local conversations, links, touched, order = 0, 0, {}, {}
for i = 9, #ARGV do
  local hash = ARGV[1] .. key_part(ARGV[i])
  local seq = ARGV[3] .. key_part(ARGV[i])
  local deleted, items = delete_one(hash, hash .. ARGV[2], seq, hash .. ARGV[8], ARGV[i], ARGV[4])
  conversations = conversations + deleted
  links = links + #items
  for _, item in ipairs(items) do
    if not touched[item] then touched[item] = true; order[#order + 1] = item end
  end
end
local items = 0
if ARGV[6] == '1' then
  for _, item in ipairs(order) do
    items = items + delete_if_unlinked(KEYS[1], ARGV[5], ARGV[7], ARGV[4], ARGV[1], ARGV[2], item)
  end
end
return {conversations, links, items}
"""
)

# KEYS[1]: the identifier's safety set. ARGV[1]: response key prefix; ARGV[2]:
# safety_identifier field; ARGV[3]: the identifier; ARGV[4]: conversation_id field ('' when
# skipped); ARGV[5]: the id to start after, or ''; ARGV[6]: limit. Up to ``limit`` responses
# still carrying the identifier with an id greater than ARGV[5], by id: {id, conversation id
# or false}; members whose response is gone (or carries another identifier) are removed.
IDENTIFIER_RESPONSES = (
    LUA_KEY_PART
    + """
local found, gone = {}, {}
local conversation = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local values = redis.call('HMGET', ARGV[1] .. key_part(id), ARGV[2], ARGV[4] ~= '' and ARGV[4] or 'datacon:none')
  if values[1] == ARGV[3] then
    if ARGV[5] == '' or id > ARGV[5] then
      found[#found + 1] = id
      conversation[id] = ARGV[4] ~= '' and values[2] or false
    end
  else
    gone[#gone + 1] = id
  end
end
for i = 1, #gone, 500 do redis.call('ZREM', KEYS[1], unpack(gone, i, math.min(i + 499, #gone))) end
table.sort(found)
local out = {}
for i = 1, math.min(#found, tonumber(ARGV[6])) do out[i] = {found[i], conversation[found[i]]} end
return out
"""
)

# ARGV[1]: conversation responses key prefix; ARGV[2]: response key prefix; ARGV[3]:
# safety_identifier field; ARGV[4]: conversation_id field; ARGV[5]: the identifier;
# ARGV[6..]: conversation ids. Those that a stored response with another identifier names
# (entries whose response is gone or differs are removed).
NAMED_BY_OTHERS = (
    LUA_KEY_PART
    + """
local out = {}
for i = 6, #ARGV do
  local key = ARGV[1] .. key_part(ARGV[i])
  local entries = redis.call('HGETALL', key)
  for j = 1, #entries, 2 do
    local id, identifier = entries[j], entries[j + 1]
    if identifier ~= ARGV[5] then
      local values = redis.call('HMGET', ARGV[2] .. key_part(id), ARGV[3], ARGV[4])
      if values[1] == identifier and values[2] == ARGV[i] then
        out[#out + 1] = ARGV[i]
        break
      end
      redis.call('HDEL', key, id)
    end
  end
end
return out
"""
)

# KEYS[1]: the responses' created_at index. ARGV[1]: response key prefix; ARGV[2], ARGV[3]:
# safety set key prefix and suffix; ARGV[4]: safety_identifier field ('' when skipped);
# ARGV[5]: conversation_id field ('' when skipped); ARGV[6]: conversation responses prefix;
# ARGV[7..]: response ids. Deletes them with their index entries; returns how many existed.
DELETE_RESPONSES = (
    LUA_KEY_PART
    + _DELETE_RESPONSE
    + """
local f = {KEYS[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]}
local deleted = 0
for i = 7, #ARGV do deleted = deleted + delete_response(ARGV[1] .. key_part(ARGV[i]), ARGV[i], f) end
return deleted
"""
)


# ``list_items``' first page (no cursor, no positions). KEYS: as ``LIST_ITEMS``. ARGV[1]:
# limit (> 0); ARGV[2]: '1' for descending; ARGV[3]: the store's constant arguments as one
# JSON array (made once per store: item key prefix, packed copies' key prefix, then the hash
# fields to read); the fewest arguments, as the client packs each one on every call.
# When the conversation's packed set (``LUA_PACKED``) holds a member for every link, the page
# is one ZRANGE of it, returned as {'packed', server time in seconds, members}: the caller
# checks each member's expiry against that time (an item whose hash expired is not listed)
# and reads the page with ``LIST_ITEMS`` if one has expired or does not decode. Otherwise
# (data written by upstream or before layout 3) the prologue rebuilds ``LIST_ITEMS``' ARGV
# from ARGV[3] (a local that shadows the global) and answers as ``LIST_ITEMS``.
_FIRST_CHECK = """
if redis.call('ZCARD', KEYS[1]) == redis.call('ZCARD', KEYS[3]) then
  return {'packed', redis.call('TIME')[1]%s}
end
local c = cjson.decode(ARGV[3])
local ARGV = {c[1], ARGV[1], ARGV[2], '', '', '', '', c[2], '', unpack(c, 3)}
"""
LIST_FIRST = (
    _FIRST_CHECK % ", redis.call(ARGV[2] == '1' and 'ZREVRANGE' or 'ZRANGE', KEYS[3], 0, tonumber(ARGV[1]) - 1)"
    + LIST_ITEMS
)

# ``LIST_FIRST`` without the members: ``{'packed', TIME seconds}`` when the packed set is
# complete, else the same page as ``LIST_ITEMS``. Sent in a ``MULTI`` with the packed set's
# ``ZRANGE`` right after it (``RedisStore.direct_first``), so the members go from the set to
# the client without being copied into Lua and out (about 0.45 µs each), in one round trip.
LIST_HEAD = _FIRST_CHECK % "" + LIST_ITEMS
