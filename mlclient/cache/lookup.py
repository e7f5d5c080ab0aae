"""The Redis side of a lookup: the keys level 1 did not have, with the model generation and, for
the keys missing, their single-flight lock, in as few round trips as the size allows.

* Up to ``LOCKING_LOOKUP_MAX_KEYS`` keys (a batch mostly answered by level 1): one transaction
  of native commands, ``MULTI``, ``MGET`` of the generation and the keys, ``SET lock token NX
  PX``, ``EXEC``, with the lock named after the keys asked: in one round trip. The common case
  is that all of them are missing (level 1 had every key Redis has, and the rest is new), and
  then the lock of the keys asked is the lock of the keys missing. When some were there, the
  lock taken was the wrong one: it is released (written behind) and the caller takes that of
  the keys missing in a second round trip (``SingleFlight.run``). A Lua script did the same
  with the lock of exactly the missing keys, but cost Redis 80-130 µs a call for 100 keys
  against ~15 µs for these commands (building its KEYS table, the loop and the SHA-1 in Lua),
  and a lookup's Redis time is on the caller's path: on a busy 2-core machine the woken Redis
  often runs on the caller's core.
* More (level 1 cold, or off): one ``MGET`` of the generation and the keys, and the lock, if any
  key is missing, taken by ``SingleFlight.run`` in a second round trip (unless the keys were
  stored meanwhile): a large lookup seldom misses all it asks, and would mostly take a lock
  only to release it.

Either way the lock a process ends up holding or waiting for is named after the sorted set of
missing keys (``keys.lock_key``); in the transaction, nobody can store or release anything
between the read and the lock, as in the script it replaces. This process's pending statistics ride in the same write when
due, and the lookup first waits for the stores this client wrote behind of any key it asks for
(``writer.py``).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import Callable, Sequence

import redis

from edgeloop.core.settings import Settings
from edgeloop.mlclient import keys
from edgeloop.mlclient.cache.stats import SharedCounts
from edgeloop.mlclient.cache.writer import StoreWriter
from edgeloop.mlclient.rawredis import RawRedis, pack_mget
from edgeloop.mlclient.singleflight import Lock, new_token

LOCKING_LOOKUP_MAX_KEYS = 256

_MULTI = ("MULTI",)
_EXEC = ("EXEC",)


@dataclass(slots=True)
class Found:
    """What Redis said about the keys asked."""

    generation: bytes | None
    values: list[bytes | None] | None  # the value of each key asked (None: missing); None: not the expected generation
    lock: str | None = None  # the single-flight lock of the missing keys (None: nothing missing)
    taken: bool | None = None  # whether the lookup took it (None: not tried yet)
    token: str | None = None  # the token it was taken with
    stray: Lock | None = None  # a lock the lookup took that is not ``lock``: the caller releases it
    missing: list[int] = field(default_factory=list)  # the indexes of the keys Redis did not have


class RedisLookup:
    def __init__(self, client: redis.Redis, raw: RawRedis, prefix: str, settings: Settings, counts: SharedCounts,
                 writer: StoreWriter) -> None:
        self._raw = raw
        self.prefix = prefix
        self._gen_key = keys.generation_key(prefix)
        self._lock_prefix = keys.lock_prefix(prefix)
        self._lock_ms = int(settings.ml_timeout_s * 1000)  # per started chunk, as SingleFlight's TTL
        self._chunk = settings.ml_max_batch_items
        self._counts = counts
        self._writer = writer

    def __call__(self, wanted: Sequence[bytes], expected: str, meanwhile: Callable[[], None] | None = None) -> Found:
        """Look ``wanted`` up. ``expected``: the generation the keys were built under ("": any);
        if Redis has another, the values are not returned (and no lock kept). ``meanwhile`` runs
        while Redis works."""
        before = self._counts.flush_commands()
        if len(wanted) > LOCKING_LOOKUP_MAX_KEYS:
            self._writer.wait(wanted)
            *_, values = self._raw.execute(*before, pack_mget(self._gen_key, wanted), meanwhile=meanwhile)
            generation = values.pop(0)
            if expected and (generation or b"0").decode() != expected:
                return Found(generation, None)
            missing = missing_positions(values)
            if not missing:
                return Found(generation, values)
            return Found(generation, values, self._lock_of(wanted, missing), missing=missing)
        names = sorted(set(wanted))  # distinct and sorted: the lock is named after the set
        self._writer.wait(names)
        lock = keys.lock_key_of_sorted(self.prefix, names)
        token = new_token()
        px = self._lock_ms * -(-len(names) // self._chunk) + 1000
        *_, (values, taken) = self._raw.execute(*before, _MULTI, ("MGET", self._gen_key, *wanted),
                                                ("SET", lock, token, "NX", "PX", px), _EXEC,
                                                meanwhile=meanwhile)
        generation = values.pop(0)
        held = Lock(lock, token) if taken else None
        if expected and (generation or b"0").decode() != expected:
            return Found(generation, None, stray=held)
        missing = missing_positions(values)
        if len(missing) == len(wanted):  # the common case: the lock of the keys asked is that of the missing
            return Found(generation, values, lock, held is not None, token, missing=missing)
        if not missing:
            return Found(generation, values, stray=held)
        return Found(generation, values, self._lock_of(wanted, missing), stray=held, missing=missing)

    def _lock_of(self, wanted: Sequence[bytes], missing: list[int]) -> str:
        return keys.lock_key(self.prefix, set(map(wanted.__getitem__, missing)))


def missing_positions(values: list[bytes | None]) -> list[int]:
    """The indexes of None in ``values`` (a loop at C speed: 1,000 values cost ~10 µs)."""
    return list(compress(range(len(values)), map(operator.is_, values, repeat(None))))


def present_positions(values: list[bytes | None]) -> list[int]:
    """The indexes of the values that are not None (as ``missing_positions``)."""
    return list(compress(range(len(values)), map(operator.is_not, values, repeat(None))))
