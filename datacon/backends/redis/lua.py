"""The Lua scripts of the Redis backend: every check-then-write and every multi-key read.

Each script runs atomically on the server (nothing interleaves, and keys do not expire
mid-script), which is what makes creates, links and deletes all-or-nothing and gives a page
of ``list_items`` in one round trip. Scripts derive record keys from a prefix passed in
``ARGV`` (links name items, chains name responses), so they need a standalone server or a
single-shard deployment, not Redis Cluster.

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
    "CREATE_RECORD",
    "DELETE_CONVERSATION",
    "DELETE_IDENTIFIER",
    "DELETE_RESPONSE",
    "GET_CHAIN",
    "LINK_ITEMS",
    "LIST_IDENTIFIER",
    "LIST_ITEMS",
    "STORE_RESPONSE",
    "UPDATE_CONVERSATION",
]

# KEYS[1]: the record's hash. ARGV[1]: TTL; ARGV[2..]: field, value pairs.
# Returns 1, or 0 (and writes nothing) when the record exists.
CREATE_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return 1
"""

# KEYS[1]: the response hash; KEYS[2] (optional): its safety-identifier sorted set.
# ARGV[1]: TTL; ARGV[2]: score (created_at, epoch milliseconds); ARGV[3]: response id;
# ARGV[4..]: field, value pairs. Returns 1, or 0 (and writes nothing) when the id exists.
STORE_RESPONSE = (
    LUA_TO_MS
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if KEYS[2] then
  to_ms(KEYS[2])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
  if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[2], ARGV[1]) else redis.call('PERSIST', KEYS[2]) end
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

# KEYS[1]: the conversation hash; KEYS[2]: its link set. Deletes both (the item records
# stay); returns 1 when the conversation existed, else 0.
DELETE_CONVERSATION = """
local existed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
return existed
"""

# KEYS[1]: the conversation's link set. ARGV[1]: TTL; ARGV[2..]: score, item id pairs.
# Checks every link first: returns the first item id already linked (or repeated), writing
# nothing; otherwise adds them all and returns nil.
LINK_ITEMS = (
    LUA_TO_MS
    + """
local seen = {}
for i = 2, #ARGV, 2 do
  local member = ARGV[i + 1]
  if seen[member] or redis.call('ZSCORE', KEYS[1], member) then return member end
  seen[member] = true
end
to_ms(KEYS[1])
local batch = {}
for i = 2, #ARGV, 2 do
  batch[#batch + 1] = ARGV[i]
  batch[#batch + 1] = ARGV[i + 1]
  if #batch >= 1000 then  -- stay far below Lua's limit on unpack() arguments
    redis.call('ZADD', KEYS[1], unpack(batch))
    batch = {}
  end
end
if #batch > 0 then redis.call('ZADD', KEYS[1], unpack(batch)) end
if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[1]) else redis.call('PERSIST', KEYS[1]) end
return false
"""
)

# KEYS[1]: the conversation's link set. ARGV[1]: item key prefix; ARGV[2]: limit (> 0);
# ARGV[3]: '1' for descending; ARGV[4]: cursor item id, or '' for none.
# A sorted set orders equal scores by member, ascending (ZRANGE) or descending
# (ZREVRANGE), which is exactly (added_at, item_id) in either direction; the cursor's
# rank in that order makes the page exclusive and exact however many scores tie.
# A cursor that is not a member is ignored. Links whose item hash is missing are skipped
# and the walk goes on until the page is full. Returns {item id, hash fields} pairs.
LIST_ITEMS = (
    LUA_KEY_PART
    + """
local limit = tonumber(ARGV[2])
local desc = ARGV[3] == '1'
local range = desc and 'ZREVRANGE' or 'ZRANGE'
local start = 0
if ARGV[4] ~= '' then
  local rank
  if desc then rank = redis.call('ZREVRANK', KEYS[1], ARGV[4])
  else rank = redis.call('ZRANK', KEYS[1], ARGV[4]) end
  if rank then start = rank + 1 end
end
local batch = math.min(math.max(limit, 16), 500)  -- limit may be huge: read in bounded slices
local out = {}
while #out < limit do
  local ids = redis.call(range, KEYS[1], start, start + batch - 1)
  for _, id in ipairs(ids) do
    local row = redis.call('HGETALL', ARGV[1] .. key_part(id))
    if #row > 0 then
      out[#out + 1] = {id, row}
      if #out >= limit then break end
    end
  end
  if #ids < batch then break end
  start = start + batch
end
return out
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

# KEYS[1]: the safety-identifier set. ARGV[1]: response key prefix; ARGV[2]:
# safety_identifier field; ARGV[3]: the identifier. Deletes the responses that still carry
# this identifier, then the set; returns how many responses were deleted.
DELETE_IDENTIFIER = (
    LUA_KEY_PART
    + """
local deleted = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. key_part(id)
  if redis.call('HGET', key, ARGV[2]) == ARGV[3] then deleted = deleted + redis.call('DEL', key) end
end
redis.call('DEL', KEYS[1])
return deleted
"""
)

# KEYS[1]: the response hash. ARGV[1], ARGV[2]: safety set key prefix and suffix;
# ARGV[3]: safety_identifier field ('' when skipped); ARGV[4]: the response id.
# Deletes the hash and its safety-identifier membership together; returns 1 or 0.
DELETE_RESPONSE = (
    LUA_KEY_PART
    + """
if ARGV[3] ~= '' then
  local identifier = redis.call('HGET', KEYS[1], ARGV[3])
  if identifier then redis.call('ZREM', ARGV[1] .. key_part(identifier) .. ARGV[2], ARGV[4]) end
end
return redis.call('DEL', KEYS[1])
"""
)
