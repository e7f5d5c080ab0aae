"""Level 1: a process's own cache of serialized answers, in front of the shared Redis cache.

Bounded three ways: entries (``cache_local_max_entries``), bytes (``cache_local_max_bytes``,
keys + values + ``ENTRY_OVERHEAD_BYTES`` per entry for the dict slots, the tuple and the object
headers) and time (``cache_local_ttl_s``); past either size bound the entries put longest ago
go (first in, first out: each lives ``cache_local_ttl_s`` from its put whatever its use, and not
reordering entries on a hit keeps a batch's 1,000 hits one ``map`` of ``dict.get``, ~4× cheaper
than a loop that also checks expiry and recency). A hit is a dict lookup under a lock: no
Redis, no network.

Keys are whatever the caller finds cheapest to build (the cached client uses the serialized
request for predictions, so that a hit needs no Redis key: ``client.py``). What the key leaves
out is the ``tag``: ``lookup(keys, tag)`` with a tag other than the one the entries were filed
under (the model token of the current catalogue) empties level 1 first, so an entry is only
ever served under the tag it was filed under.

Whether an entry may be served at all is ``coherence.py``'s decision (the process must have
heard from the invalidation channel within the bound). Invalidations (and a new tag) bump
``epoch``; ``lookup`` returns the epoch it read under its lock, before the caller asks Redis,
and ``put_many`` refuses answers filed with an epoch that moved meanwhile, so an answer read
before an invalidation cannot be filed after it.

A forked child starts with an empty level 1: ``os.register_at_fork`` clears every instance in
the child (its lock too, which a thread of the parent may have held at the fork).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import OrderedDict
from typing import Callable, Hashable, Iterable, Sequence

# Measured with tracemalloc on CPython 3.11 (100,000 entries): an OrderedDict slot, a dict slot,
# a 2-tuple and a float come to ~215 bytes per entry beyond the key and value objects, whose
# headers add ~33 bytes each (bytes or str).
ENTRY_OVERHEAD_BYTES = 288

Key = str | bytes

_instances: weakref.WeakSet[LocalCache] = weakref.WeakSet()


class LocalCache:
    def __init__(self, max_entries: int, max_bytes: int, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        # key (str or bytes) -> serialized answer, oldest first; and key -> (expiry on the
        # monotonic clock, strategy id or ""). Every entry lives ttl_s from its (last) put, so
        # the order of puts is the order of expiry: the expired entries are always the first.
        self._data: OrderedDict[Key, bytes] = OrderedDict()
        self._meta: dict[Key, tuple[float, str]] = {}
        self._by_strategy: dict[str, set[Key]] = {}
        self._tag: Hashable = None
        self.bytes = 0
        self.epoch = 0
        _instances.add(self)

    def __len__(self) -> int:
        return len(self._data)

    def get_many(self, keys: Sequence[Key]) -> list[bytes | None]:
        """The stored answer of each key, None where absent or expired."""
        return self.lookup(keys)[0]

    def lookup(self, keys: Sequence[Key], tag: Hashable = None) -> tuple[list[bytes | None], int]:
        """The stored answer of each key (None where absent or expired) and the epoch, read
        together. A ``tag`` other than the entries' empties level 1 first (None: no tag check)."""
        now = self._clock()
        with self._lock:
            if not self._serving(tag, now):
                return [None] * len(keys), self.epoch
            # What is left has not expired: one dict lookup per key, at C speed (no recency to
            # update: the oldest entries go first, see put_many).
            return list(map(self._data.get, keys)), self.epoch

    def get(self, key: Key, tag: Hashable) -> bytes | None:
        """``lookup`` of one key, without the lists: a single prediction's hit."""
        now = self._clock()
        with self._lock:
            return self._data.get(key) if self._serving(tag, now) else None

    def _serving(self, tag: Hashable, now: float) -> bool:
        """Under the lock: False if ``tag`` (None: no check) is not the entries' tag, which
        empties level 1 and takes the new tag; else True, the expired entries gone."""
        if tag is not None and tag != self._tag:
            self._clear()
            self._tag = tag
            return False
        self._expire(now)
        return True

    def put_many(self, entries: Iterable[tuple[Key, bytes, str]], epoch: int) -> bool:
        """Store (key, value, strategy id) entries, unless an invalidation came after ``epoch``."""
        batch = list(entries)
        return self.put_batch([e[0] for e in batch], [e[1] for e in batch], [e[2] for e in batch], epoch)

    def put_batch(self, keys: Sequence[Key], values: Sequence[bytes], strategies: Sequence[str], epoch: int) -> bool:
        """Store ``values`` under ``keys``, each of its strategy id ("" if none), unless an
        invalidation came after ``epoch``. Past a bound, the entries put longest ago go first
        (each lives ``ttl_s`` from its put anyway; a lookup does not reorder them, which keeps a
        hit a plain dict lookup). In bulk (dict updates, at C speed) where it can: 900 entries
        cost ~0.15 ms instead of ~0.5 one by one."""
        expires = self._clock() + self.ttl_s
        batch = dict(zip(keys, values))  # a key given twice: the last value
        with self._lock:
            if epoch != self.epoch:
                return False
            data, meta = self._data, self._meta
            for key in data.keys() & batch.keys():  # replaced: forgotten first, then put last
                self._forget(key, data.pop(key))
            data.update(batch)
            self.bytes += sum(map(len, batch)) + sum(map(len, batch.values())) + ENTRY_OVERHEAD_BYTES * len(batch)
            if any(strategies):
                by_strategy = self._by_strategy
                for key, strategy in zip(keys, strategies):
                    meta[key] = (expires, strategy)
                    if strategy:
                        by_strategy.setdefault(strategy, set()).add(key)
            else:
                meta.update(dict.fromkeys(batch, (expires, "")))
            while data and (len(data) > self.max_entries or self.bytes > self.max_bytes):
                key, old = data.popitem(last=False)
                self._forget(key, old)
        return True

    def _expire(self, now: float) -> None:
        data, meta = self._data, self._meta
        while data:
            key = next(iter(data))
            if meta[key][0] > now:
                return
            self._forget(key, data.pop(key))

    def _forget(self, key: Key, value: bytes) -> None:
        """Account for an entry just taken out of ``_data``."""
        self.bytes -= len(key) + len(value) + ENTRY_OVERHEAD_BYTES
        strategy = self._meta.pop(key)[1]
        if strategy:
            members = self._by_strategy.get(strategy)
            if members is not None:
                members.discard(key)
                if not members:
                    del self._by_strategy[strategy]

    def invalidate_strategies(self, strategy_ids: Iterable[str]) -> int:
        """Drop every entry of these strategies; how many."""
        dropped = 0
        with self._lock:
            self.epoch += 1
            for strategy in strategy_ids:
                for key in self._by_strategy.pop(strategy, ()):
                    value = self._data.pop(key, None)
                    if value is not None:
                        self.bytes -= len(key) + len(value) + ENTRY_OVERHEAD_BYTES
                        del self._meta[key]
                        dropped += 1
        return dropped

    def clear(self) -> None:
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self.epoch += 1
        self._data.clear()
        self._meta.clear()
        self._by_strategy.clear()
        self.bytes = 0

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._data = OrderedDict()
        self._meta = {}
        self._by_strategy = {}
        self.bytes = 0
        self.epoch += 1


def _clear_in_child() -> None:
    for cache in list(_instances):
        cache._after_fork()


os.register_at_fork(after_in_child=_clear_in_child)
