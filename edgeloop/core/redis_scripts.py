"""Every Lua script edgeloop runs in Redis, in one place.

Callers register them with ``redis.Redis.register_script`` (or send ``EVALSHA`` with the
script's SHA, as ``edgeloop.mlclient.rawredis`` does) and pass the KEYS and ARGV described here.
"""

from __future__ import annotations

# Delete a lock only if it still holds our token: after a TTL expiry it may belong to someone
# else, and a plain DEL would release their lock. Used by worker leases
# (``edgeloop.services.locks``) and the prediction cache's single-flight locks.
# KEYS = lock; ARGV = token. Returns 1 if deleted, else 0.
COMPARE_AND_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Take a single-flight lock unless the answers it is for were stored meanwhile: a process that
# found keys missing, then asks for their lock in a second round trip, may ask just after the
# holder of the same key set stored them and released it. Every holder stores its set with one
# script (STORE_CACHE_ENTRIES, below), so one key of the set present means the set was stored.
# KEYS = lock, one of the missing keys; ARGV = token, TTL in ms. Returns 1 if taken, 0 if held by
# someone else or the key is there now (the caller then reads the keys again).
LOCK_UNLESS_STORED = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

# Store a batch of prediction-cache entries as one command: the release of the single-flight
# lock the answers were fetched under (if its token is still ours), SET … EX for each entry, SADD
# of strategy-scoped entries to their strategy's index and EXPIRE of those indexes. A pipeline of
# 100 SETs costs 100 packed commands and 100 parsed replies (MSET cannot carry a TTL); this costs
# one. The lock goes first: a script is atomic, so nobody sees it gone before the entries are
# there, and if a SET fails (a full Redis) the waiters still find it released and fetch for
# themselves instead of waiting for its TTL. ``edgeloop.mlclient.cache.store`` builds the arguments.
# KEYS = n entries, m indexes[, lock]; ARGV = ttl, n, m, lock token ("": none), n values,
# and if m > 0 the index position of each entry (1..m; 0: none). Returns n.
STORE_CACHE_ENTRIES = """
local call, ttl, n, m, token = redis.call, ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
if token ~= '' and call('GET', KEYS[n + m + 1]) == token then call('DEL', KEYS[n + m + 1]) end
if m == 0 then
  for i = 1, n do call('SET', KEYS[i], ARGV[4 + i], 'EX', ttl) end
else
  for i = 1, n do
    call('SET', KEYS[i], ARGV[4 + i], 'EX', ttl)
    local ix = tonumber(ARGV[4 + n + i])
    if ix > 0 then call('SADD', KEYS[n + ix], KEYS[i]) end
  end
  for j = n + 1, n + m do call('EXPIRE', KEYS[j], ttl) end
end
return n
"""

# A model promotion or rollback, announced to the prediction caches: the new generation is the
# time at which Redis publishes it (its clock, in ns), so that "published at t, in effect
# everywhere by t + bound" (mlclient/cache/coherence.py) counts from the publication itself, not
# from a client's clock read before it connected. It is also more than the current generation,
# so that two announcements in one microsecond still differ. Microseconds fit a Lua number
# exactly (< 2^53); the nanoseconds are written as text.
# KEYS = the generation key; ARGV = the invalidation channel, the key's TTL in s. Returns the generation.
PUBLISH_GENERATION = """
local t = redis.call('TIME')
local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local current = redis.call('GET', KEYS[1])
if current then
  local current_us = math.floor(tonumber(current) / 1000)
  if us <= current_us then us = current_us + 1 end
end
local generation = string.format('%.0f', us) .. '000'
redis.call('SET', KEYS[1], generation, 'EX', ARGV[2])
redis.call('PUBLISH', ARGV[1], 'g ' .. generation)
return generation
"""
