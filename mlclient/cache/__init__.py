"""The shared Redis prediction cache in front of the ML client (``client.py`` says what it
guarantees): ``CachedMLClient`` and the functions that need only a Redis client."""

from edgeloop.mlclient.cache.client import (
    EVALUATION,
    OUTCOME_MODEL,
    PREDICTION,
    STRATEGY_MODEL,
    CachedMLClient,
    make_redis,
)
from edgeloop.mlclient.cache.invalidation import invalidate_strategies, mark_models_changed
from edgeloop.mlclient.cache.stats import CacheStats

__all__ = [
    "EVALUATION", "OUTCOME_MODEL", "PREDICTION", "STRATEGY_MODEL",
    "CacheStats", "CachedMLClient", "invalidate_strategies", "make_redis", "mark_models_changed",
]
