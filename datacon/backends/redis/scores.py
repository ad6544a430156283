"""Sorted-set scores: epoch milliseconds with the microseconds as a fraction.

Upstream (the Rust crate) scores links and safety-identifier entries with
``timestamp_millis()``, whole milliseconds; datacon writes ``epoch_us / 1000``, the same unit
with the microseconds as a fraction, so sets written by both order correctly. Inside the
accepted range (``datacon._time.TIME_MIN`` <= t < ``TIME_MAX``, 1900 to 2100) every score is
below 2**42 in magnitude, where doubles are spaced at most 2**-11 ms apart: distinct
microseconds get distinct, ordered scores, and the microsecond reads back exactly.

Earlier datacon versions wrote whole microseconds. A score of magnitude ``US_THRESHOLD``
(1e13) or more is read as microseconds: as milliseconds it would lie beyond the year 2286,
far outside the accepted range, while microseconds below it are instants within 116 days of
1970-01-01 (such old links are taken for milliseconds; see docs/backends.md). Scripts that
add a score first rewrite a set's microsecond scores (``LUA_TO_MS``), and ``datacon migrate``
rewrites every set.
"""

from __future__ import annotations

import math
from datetime import datetime

from datacon._time import from_epoch_us, to_epoch_us

__all__ = ["LUA_TO_MS", "US_THRESHOLD", "score", "score_time", "score_us"]

US_THRESHOLD = 1e13


def score(value: datetime) -> str:
    """The score of ``value`` as the text Redis parses back to the same double."""
    # int / int is correctly rounded; repr is the shortest text that round-trips.
    return repr(to_epoch_us(value) / 1000)


def score_us(value: float) -> int:
    """Epoch microseconds of a score written by datacon (ms with a fraction, or old us) or upstream."""
    if abs(value) >= US_THRESHOLD:
        return round(value)
    whole = math.floor(value)
    # value - whole is exact; the fraction carries at most 0.49 us of rounding, so round() is exact.
    return whole * 1000 + round((value - whole) * 1000)


def score_time(value: float) -> datetime:
    """The instant a score stands for (see ``score_us``)."""
    return from_epoch_us(score_us(value))


# to_ms(key): rewrites the set's microsecond scores (|score| >= 1e13) as milliseconds, in
# place; returns how many members it rewrote. O(log n) when there is nothing to rewrite.
# (Redis turns a Lua number argument into text with %.17g, so the double is passed exactly.)
LUA_TO_MS = """
local function to_ms(key)
  local low = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]
  local high = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2]
  if not ((low and tonumber(low) <= -1e13) or (high and tonumber(high) >= 1e13)) then return 0 end
  local count = 0
  for _, range in ipairs({{'1e13', '+inf'}, {'-inf', '-1e13'}}) do
    local found = redis.call('ZRANGEBYSCORE', key, range[1], range[2], 'WITHSCORES')
    local batch = {}
    for i = 1, #found, 2 do
      batch[#batch + 1] = tonumber(found[i + 1]) / 1000
      batch[#batch + 1] = found[i]
      if #batch >= 1000 then redis.call('ZADD', key, unpack(batch)); batch = {} end
    end
    if #batch > 0 then redis.call('ZADD', key, unpack(batch)) end
    count = count + #found / 2
  end
  return count
end
"""
