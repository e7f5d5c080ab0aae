"""Storing a batch of fetched answers in one command (``STORE_CACHE_ENTRIES``): each entry with
the cache's TTL, strategy-scoped entries added to their strategy's index, and the single-flight
lock they were fetched under released, if it is still ours."""

from __future__ import annotations

from typing import Mapping

import redis

from edgeloop.core.redis_scripts import STORE_CACHE_ENTRIES
from edgeloop.mlclient import keys
from edgeloop.mlclient.rawredis import RawRedis
from edgeloop.mlclient.singleflight import Lock


class EntryStore:
    def __init__(self, client: redis.Redis, raw: RawRedis, prefix: str, ttl_s: int) -> None:
        self._raw = raw
        self._script = client.register_script(STORE_CACHE_ENTRIES)
        self.prefix = prefix
        self.ttl_s = ttl_s

    def store(
        self,
        entries: Mapping[bytes, tuple[bytes, str]],
        lock: Lock | None = None,
    ) -> None:
        """Store ``entries`` (key -> (serialized answer, strategy id or "")) and release ``lock``."""
        indexes: dict[str, int] = {}  # index key -> its 1-based position after the entries
        positions = []
        for _, strategy_id in entries.values():
            if strategy_id:
                index = keys.strategy_index_key(self.prefix, strategy_id)
                positions.append(indexes.setdefault(index, len(indexes) + 1))
            else:
                positions.append(0)
        names: list[str | bytes] = [*entries, *indexes]
        args = [self.ttl_s, len(entries), len(indexes), lock.token if lock else "", *(v for v, _ in entries.values())]
        if indexes:
            args.extend(positions)
        if lock is not None:
            names.append(lock.key)
        self._raw.evalsha(self._script, names, args)
        if lock is not None:
            lock.released = True
