"""Making cached answers unreachable: after a model promotion (every entry of that model) or
once a strategy's feedback is stored (that strategy's entries). Both need only a Redis client,
no gRPC channel, so the ML service and the CLI call them too.

Each changes Redis (level 2) and then publishes on the invalidation channel, in the same round
trip, so that every process's level 1 follows (``coherence.py``)."""

from __future__ import annotations

from typing import Iterable

import redis

from edgeloop.core.settings import get_settings
from edgeloop.mlclient import keys, metrics
from edgeloop.core.redis_scripts import PUBLISH_GENERATION
from edgeloop.mlclient.cache.coherence import channel, strategies_message

# Keys that are not entries still get a TTL (no key without one); these outlive any entry.
META_TTL_S = 30 * 24 * 3600


def mark_models_changed(client: redis.Redis, prefix: str | None = None) -> int:
    """Tell every process's cache that a model was promoted or rolled back (call it after);
    returns the new generation: the time Redis published it, in ns (``PUBLISH_GENERATION``)."""
    # A fresh time-based value rather than INCR: if the key ever expired and restarted from 1,
    # a process could mistake the new 1 for the old one it saw (ABA); nanoseconds never repeat.
    # Redis's clock rather than ours: the bound counts from the publication, and a client's
    # time read before it connected (or was descheduled) would start it early.
    prefix = prefix or get_settings().cache_prefix
    publish = client.register_script(PUBLISH_GENERATION)  # EVALSHA, loaded if Redis lacks it
    return int(publish(keys=[keys.generation_key(prefix)], args=[channel(prefix), META_TTL_S]))


def invalidate_strategies(client: redis.Redis, strategy_ids: Iterable[str], prefix: str | None = None) -> int:
    """Delete every cached entry of these strategies, in Redis and in every process's level 1
    (two round trips); returns how many were in Redis.

    The feedback flusher calls it once a strategy's feedback is stored by the service.
    """
    prefix = prefix or get_settings().cache_prefix
    indexes = [keys.strategy_index_key(prefix, s) for s in dict.fromkeys(strategy_ids)]
    if not indexes:
        return 0
    pipe = client.pipeline(transaction=False)
    for index in indexes:
        pipe.smembers(index)
    members = {m for found in pipe.execute() for m in found}
    pipe = client.pipeline(transaction=False)
    if members:
        pipe.delete(*members)
    pipe.delete(*indexes)
    # Published even when Redis lists no entry: a process's level 1 may hold some that Redis evicted.
    pipe.publish(channel(prefix), strategies_message(dict.fromkeys(strategy_ids)))
    replies = pipe.execute()
    deleted_entries = int(replies[0]) if members else 0
    metrics.CACHE_INVALIDATED.inc(deleted_entries)
    return deleted_entries
