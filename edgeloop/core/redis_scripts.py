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

# The prediction cache's lookup, one command: the model generation, the entries, and, for the
# entries missing, the single-flight lock of that set (SET NX PX), which a separate SET NX would
# cost a second round trip for. The lock is named after the missing keys in the order given (the
# client sends them sorted and distinct): prefix + the first 24 hex digits of the SHA-1 of the
# keys joined by newlines (``edgeloop.mlclient.keys.lock_key``). Its TTL is ``ms per chunk`` for
# every started chunk of ``chunk size`` missing keys (one backend call each) plus ``extra ms``.
# The lock key is not in KEYS: it shares the entries' hash tag, hence their slot and node, on a
# Redis Cluster. If the generation is not the expected one, the caller's keys name a superseded
# catalogue: only the generation is returned, nothing is read or locked.
# KEYS = generation, n entries; ARGV = expected generation ("": any; a missing key reads "0"),
# lock prefix, lock token, ms per chunk, chunk size, extra ms.
# Returns {generation} on a mismatch, {generation, values} when nothing is missing, else
# {generation, values, lock key, 1 if this call took the lock else 0}.
LOOKUP_CACHE_ENTRIES = """
local call = redis.call
local generation = call('GET', KEYS[1])
if ARGV[1] ~= '' and (generation or '0') ~= ARGV[1] then return {generation} end
local n = #KEYS - 1
local values = {}
if n > 0 and n <= 4000 then
  values = call('MGET', unpack(KEYS, 2))
elseif n > 0 then
  for s = 2, #KEYS, 4000 do  -- unpack has a limit of about 8,000 values
    local got = call('MGET', unpack(KEYS, s, math.min(s + 3999, #KEYS)))
    for i = 1, #got do values[#values + 1] = got[i] end
  end
end
local missing = {}
for i = 1, n do
  if not values[i] then missing[#missing + 1] = KEYS[i + 1] end
end
if #missing == 0 then return {generation, values} end
local lock = ARGV[2] .. string.sub(redis.sha1hex(table.concat(missing, '\\n')), 1, 24)
local ttl = tonumber(ARGV[4]) * math.ceil(#missing / tonumber(ARGV[5])) + tonumber(ARGV[6])
local taken = call('SET', lock, ARGV[3], 'NX', 'PX', ttl)
return {generation, values, lock, taken and 1 or 0}
"""
