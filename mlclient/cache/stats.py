"""The prediction cache's statistics: Prometheus counters per process, and hit/miss counts shared
by every process in a Redis hash, read back with the number of entries and their memory by
``read_stats`` (``edgeloop ml status``, ``metrics.CacheStatsCollector``)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from edgeloop.mlclient import keys, metrics
from edgeloop.mlclient.cache.invalidation import META_TTL_S

_FLUSH_S = 1.0


@dataclass
class CacheStats:
    hits: dict[str, int] = field(default_factory=dict)  # by kind, all processes
    misses: dict[str, int] = field(default_factory=dict)
    hit_ratio: float = 0.0
    entries: int = 0
    memory_bytes: int = 0  # estimated, entries only
    redis_used_memory_bytes: int = 0
    redis_maxmemory_bytes: int = 0
    redis_maxmemory_policy: str = ""
    ttl_s: int = 0
    redis_ok: bool = True
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable, for `edgeloop ml status`."""
        if not self.redis_ok:
            return [f"prediction cache: Redis unreachable ({self.error})"]
        cap = f"{self.redis_maxmemory_bytes / 2**20:.0f} MiB" if self.redis_maxmemory_bytes else "no maxmemory"
        advice = []
        if not self.redis_maxmemory_bytes or not self.redis_maxmemory_policy.startswith("allkeys-"):
            advice = ["  note: give the cache a Redis of its own (EDGELOOP_CACHE_REDIS_URL) with maxmemory and "
                      "maxmemory-policy allkeys-lru (docs/cache.md, Redis memory policy)"]
        return [
            f"prediction cache: {self.entries} entries, ~{self.memory_bytes / 2**20:.1f} MiB, TTL {self.ttl_s} s",
            f"  hits {sum(self.hits.values())}  misses {sum(self.misses.values())}  hit ratio {self.hit_ratio:.1%}",
            f"  Redis: {self.redis_used_memory_bytes / 2**20:.1f} MiB used, {cap}, policy {self.redis_maxmemory_policy}",
            *advice,
        ]


class SharedCounts:
    """This process's hits and misses: counted in Prometheus at once, and added to the shared
    hash by commands that ride on a round trip that happens anyway (the lookup), at most once
    a second."""

    def __init__(self, prefix: str) -> None:
        self.key = keys.stats_key(prefix)
        self._pending: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._last_flush = 0.0
        self._children: dict[str, tuple[Any, Any, str, str]] = {}

    def count(self, kind: str, hits: int, misses: int) -> None:
        # Label children and field names made once per kind: a level-1 hit costs a few
        # microseconds in all.
        children = self._children.get(kind)
        if children is None:
            children = self._children[kind] = (metrics.CACHE_HITS.labels(kind=kind),
                                               metrics.CACHE_MISSES.labels(kind=kind),
                                               f"hits:{kind}", f"misses:{kind}")
        if hits:
            children[0].inc(hits)
        if misses:
            children[1].inc(misses)
        with self._lock:
            pending = self._pending
            if hits:
                pending[children[2]] += hits
            if misses:
                pending[children[3]] += misses

    def flush_commands(self, force: bool = False) -> list[tuple[Any, ...]]:
        """The commands adding the counts since the last flush to the shared hash (none if the
        last flush was less than a second ago, unless ``force``)."""
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last_flush < _FLUSH_S:
                return []
            pending, self._pending = self._pending, Counter()
            self._last_flush = now
        commands: list[tuple[Any, ...]] = [("HINCRBY", self.key, name, n) for name, n in pending.items() if n]
        if commands:
            commands.append(("EXPIRE", self.key, META_TTL_S))
        return commands

    def reset(self, client: redis.Redis) -> None:
        """Forget this process's pending counts and delete the shared ones."""
        with self._lock:
            self._pending.clear()
        client.delete(self.key)


def read_stats(
    client: redis.Redis, prefix: str, ttl_s: int, counts: SharedCounts, scan_limit: int = 1_000_000
) -> CacheStats:
    """Shared statistics of the cache, this process's pending counts included."""
    result = CacheStats(ttl_s=ttl_s)
    try:
        pipe = client.pipeline(transaction=False)
        for command in counts.flush_commands(force=True):
            pipe.execute_command(*command)
        pipe.hgetall(counts.key)
        pipe.info("memory")
        *_, shared, info = pipe.execute()
        entries, sample = _count_entries(client, prefix, scan_limit)
        memory = _estimate_memory(client, sample, entries)
    except redis.exceptions.RedisError as exc:
        return CacheStats(ttl_s=ttl_s, redis_ok=False, error=str(exc))
    for raw_name, raw_n in shared.items():
        what, _, kind = raw_name.decode().partition(":")
        bucket = result.hits if what == "hits" else result.misses
        bucket[kind] = int(raw_n)
    hits, misses = sum(result.hits.values()), sum(result.misses.values())
    result.hit_ratio = hits / (hits + misses) if hits + misses else 0.0
    result.entries = entries
    result.memory_bytes = memory
    result.redis_used_memory_bytes = int(info.get("used_memory", 0))
    result.redis_maxmemory_bytes = int(info.get("maxmemory", 0))
    result.redis_maxmemory_policy = str(info.get("maxmemory_policy", ""))
    return result


def _count_entries(client: redis.Redis, prefix: str, limit: int) -> tuple[int, list[bytes]]:
    """Count entries with SCAN (never KEYS: it blocks Redis); keep the first keys as a sample."""
    total = 0
    sample: list[bytes] = []
    for pattern in keys.entry_patterns(prefix):
        for key in client.scan_iter(match=pattern, count=1000):
            total += 1
            if len(sample) < 64:
                sample.append(key)
            if total >= limit:
                return total, sample
    return total, sample


def _estimate_memory(client: redis.Redis, sample: list[bytes], entries: int) -> int:
    if not sample:
        return 0
    pipe = client.pipeline(transaction=False)
    for key in sample:
        pipe.memory_usage(key)
    sizes = [s for s in pipe.execute() if s is not None]
    return int(sum(sizes) / len(sizes) * entries) if sizes else 0
