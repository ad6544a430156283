"""The Lua scripts of the Redis backend: every check-then-write and every multi-key read.

Each script runs atomically on the server (nothing interleaves, and keys do not expire
mid-script), which is what makes creates, links and deletes all-or-nothing and gives a page
of ``list_items`` in one round trip. Scripts derive record keys from a prefix passed in
``ARGV`` (links name items, chains name responses), so they need a standalone server or a
single-shard deployment, not Redis Cluster.

A TTL argument is the number of seconds, or ``''`` for no expiry; a set that receives a
member without a TTL is made persistent so it never expires before a record it indexes.
"""

from __future__ import annotations

__all__ = [
    "CREATE_CONVERSATION",
    "CREATE_RECORD",
    "DELETE_CONVERSATION",
    "DELETE_IDENTIFIER",
    "DELETE_RESPONSE",
    "GET_CHAIN",
    "LINK_ITEMS",
    "LIST_CONVERSATIONS",
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

# KEYS[1]: the conversation hash; KEYS[2]: its link set. Removes both and the
# conversation's index members. Returns 1 if the conversation existed, else 0.
DELETE_CONVERSATION = """
local member = redis.call('HGET', KEYS[1], 'datacon:member')
if member then
  local sets = redis.call('HGET', KEYS[1], 'datacon:sets')
  if sets then
    for _, key in ipairs(cjson.decode(sets)) do redis.call('ZREM', key, member) end
  end
end
redis.call('DEL', KEYS[2])
return redis.call('DEL', KEYS[1])
"""

# KEYS[1]: the index set to walk. ARGV[1]: conversation key prefix; ARGV[2]: limit (> 0);
# ARGV[3]: '1' for descending; ARGV[4]: the member to start after, or '' for the start;
# ARGV[5..]: field, value pairs the conversation must also have. Members whose hash is gone
# (expired) or is another conversation's by now are skipped. Returns {id, hash fields} pairs.
LIST_CONVERSATIONS = """
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
    local key = ARGV[1] .. id
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

# KEYS[1]: the response hash; KEYS[2] (optional): its safety-identifier sorted set.
# ARGV[1]: TTL; ARGV[2]: score (created_at, epoch microseconds); ARGV[3]: response id;
# ARGV[4..]: field, value pairs. Returns 1, or 0 (and writes nothing) when the id exists.
STORE_RESPONSE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if KEYS[2] then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
  if ARGV[1] ~= '' then redis.call('EXPIRE', KEYS[2], ARGV[1]) else redis.call('PERSIST', KEYS[2]) end
end
return 1
"""

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

# KEYS[1]: the conversation's link set. ARGV[1]: TTL; ARGV[2..]: score, item id pairs.
# Checks every link first: returns the first item id already linked (or repeated), writing
# nothing; otherwise adds them all and returns nil.
LINK_ITEMS = """
local seen = {}
for i = 2, #ARGV, 2 do
  local member = ARGV[i + 1]
  if seen[member] or redis.call('ZSCORE', KEYS[1], member) then return member end
  seen[member] = true
end
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

# KEYS[1]: the conversation's link set. ARGV[1]: item key prefix; ARGV[2]: limit (> 0);
# ARGV[3]: '1' for descending; ARGV[4]: cursor item id, or '' for none.
# A sorted set orders equal scores by member, ascending (ZRANGE) or descending
# (ZREVRANGE), which is exactly (added_at, item_id) in either direction; the cursor's
# rank in that order makes the page exclusive and exact however many scores tie.
# A cursor that is not a member is ignored. Links whose item hash is missing are skipped
# and the walk goes on until the page is full. Returns {item id, hash fields} pairs.
LIST_ITEMS = """
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
    local row = redis.call('HGETALL', ARGV[1] .. id)
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

# ARGV[1]: response key prefix; ARGV[2]: start id; ARGV[3]: max depth (-1: unlimited);
# ARGV[4]: previous_response_id field ('' when skipped).
# Follows previous ids from the start, newest first, and stops at max depth, at a missing
# response, or at an id already visited (the caller reports that cycle).
# Returns {response id, hash fields} pairs.
GET_CHAIN = """
local max = tonumber(ARGV[3])
local seen = {}
local out = {}
local current = ARGV[2]
while current do
  if max >= 0 and #out >= max then break end
  if seen[current] then break end
  local row = redis.call('HGETALL', ARGV[1] .. current)
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

# KEYS[1]: the safety-identifier set. ARGV[1]: response key prefix; ARGV[2]: limit
# (-1: all); ARGV[3]: safety_identifier field; ARGV[4]: the identifier.
# Newest first (ties: id descending, as ZREVRANGE orders equal scores). Members whose hash
# is gone (expired), or now carries another identifier, are skipped.
# Returns {response id, hash fields} pairs.
LIST_IDENTIFIER = """
local limit = tonumber(ARGV[2])
local batch = 500
if limit > 0 then batch = math.min(math.max(limit, 16), 500) end
local out = {}
local start = 0
while limit < 0 or #out < limit do
  local ids = redis.call('ZREVRANGE', KEYS[1], start, start + batch - 1)
  for _, id in ipairs(ids) do
    local row = redis.call('HGETALL', ARGV[1] .. id)
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

# KEYS[1]: the safety-identifier set. ARGV[1]: response key prefix; ARGV[2]:
# safety_identifier field; ARGV[3]: the identifier. Deletes the responses that still carry
# this identifier, then the set; returns how many responses were deleted.
DELETE_IDENTIFIER = """
local deleted = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. id
  if redis.call('HGET', key, ARGV[2]) == ARGV[3] then deleted = deleted + redis.call('DEL', key) end
end
redis.call('DEL', KEYS[1])
return deleted
"""

# KEYS[1]: the response hash. ARGV[1], ARGV[2]: safety set key prefix and suffix;
# ARGV[3]: safety_identifier field ('' when skipped); ARGV[4]: the response id.
# Deletes the hash and its safety-identifier membership together; returns 1 or 0.
DELETE_RESPONSE = """
if ARGV[3] ~= '' then
  local identifier = redis.call('HGET', KEYS[1], ARGV[3])
  if identifier then redis.call('ZREM', ARGV[1] .. identifier .. ARGV[2], ARGV[4]) end
end
return redis.call('DEL', KEYS[1])
"""
