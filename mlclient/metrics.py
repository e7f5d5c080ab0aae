"""Prometheus metrics of the ML client and of the prediction cache.

Conventions: counters end in ``_total``, durations are histograms in seconds,
labels are few and bounded: ``rpc`` (the eleven RPC names plus the health check),
``outcome``, ``kind`` and ``reason`` (each a short fixed list, documented in docs/cache.md).
In Celery's prefork pool these work in prometheus_client's multiprocess mode when
``PROMETHEUS_MULTIPROC_DIR`` is set before import (the gauges say how to combine processes).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Sub-millisecond buckets matter: a cache hit is ~0.1 ms, a gRPC call ~0.5 ms, a batch tens of ms.
_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# --- ML client ---------------------------------------------------------------------------
# Call latency is edgeloop.core.metrics.ML_RPC_SECONDS (side="client"), shared with the service.
# outcome: ok | unavailable (transient, counts against the breaker) | error (the service
# answered with a permanent error) | rejected (refused by the open circuit breaker, not sent) |
# rate_limited (refused by the service's rate limit; retried after its retry-after while the deadline allows)
ML_REQUESTS = Counter(
    "edgeloop_ml_client_requests_total",
    "ML service calls by RPC and outcome.",
    ["rpc", "outcome"],
)
ML_BREAKER_TRANSITIONS = Counter(
    "edgeloop_ml_client_breaker_transitions_total",
    "Circuit breaker state changes, by the state entered (closed | open | half_open).",
    ["state"],
)
ML_BREAKER_OPEN = Gauge(
    "edgeloop_ml_client_breaker_open",
    "1 while this process's circuit breaker to the ML service is open or half-open.",
    multiprocess_mode="max",
)

# --- prediction cache --------------------------------------------------------------------
# kind: prediction (GetPrediction/BatchPredict) | evaluation (EvaluateStrategy)
CACHE_HITS = Counter("edgeloop_prediction_cache_hits_total", "Answers served from Redis.", ["kind"])
# Of the hits, those answered by the process's own level 1 (no Redis round trip).
CACHE_LOCAL_HITS = Counter(
    "edgeloop_prediction_cache_local_hits_total", "Answers served from the process's level-1 cache.", ["kind"]
)
CACHE_INVALIDATION_DELAY = Histogram(
    "edgeloop_prediction_cache_invalidation_delay_seconds",
    "From the publication of an invalidation to its application to this process's level 1.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
CACHE_MISSES = Counter(
    "edgeloop_prediction_cache_misses_total", "Answers not in Redis (fetched from the service).", ["kind"]
)
# reason: redis_unavailable (no connection, or a timeout) | redis_error (Redis answered with an
# error: OOM when full, READONLY, MISCONF, an error in a script) | redis_skipped (Redis recently
# failed, not retried yet) — the answer came from the service directly, uncached — or
# store_failed (fetched from the service, but Redis would not store it).
CACHE_BYPASS = Counter(
    "edgeloop_prediction_cache_bypass_total",
    "Answers fetched from the service without the cache because Redis was unreachable or refused.",
    ["kind", "reason"],
)
CACHE_BACKEND_CALLS = Counter(
    "edgeloop_prediction_cache_backend_calls_total",
    "Calls to the ML service made by the cache to fill misses (one per key set).",
    ["kind"],
)
CACHE_SINGLEFLIGHT_WAITS = Counter(
    "edgeloop_prediction_cache_singleflight_waits_total",
    "Lookups that waited for another process already fetching the same misses.",
    ["outcome"],  # filled (the other process stored them) | timeout (fetched ourselves)
)
CACHE_INVALIDATED = Counter(
    "edgeloop_prediction_cache_invalidated_entries_total",
    "Entries deleted by strategy invalidation.",
)
CACHE_LOOKUP_SECONDS = Histogram(
    "edgeloop_prediction_cache_lookup_duration_seconds",
    "End-to-end latency of a cached lookup (hits and misses, one call of the cached client).",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
)


class CacheStatsCollector(Collector):
    """The shared cache's hit ratio, entries and memory, read from Redis at scrape time.

    They describe the cache all processes share, not one process, so they are not kept in
    per-process gauges: whoever serves ``/metrics`` (the worker's main process) registers
    one collector, ``registry.register(CacheStatsCollector(lambda: cache.stats()))``.
    A scrape costs an HGETALL, an INFO and a SCAN of the cache's keys (capped by the
    ``stats`` callable's ``scan_limit``).
    """

    def __init__(self, read_stats: Callable[[], Any]) -> None:
        self._read_stats = read_stats

    def describe(self) -> list:
        return []  # do not scrape Redis at registration time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self._read_stats()
        yield GaugeMetricFamily("edgeloop_prediction_cache_redis_up", "1 if the cache's Redis answered.",
                                value=1 if stats.redis_ok else 0)
        if not stats.redis_ok:
            return
        yield GaugeMetricFamily("edgeloop_prediction_cache_hit_ratio",
                                "Hits / (hits + misses) of all processes (shared counts in Redis).",
                                value=stats.hit_ratio)
        yield GaugeMetricFamily("edgeloop_prediction_cache_entries", "Cache entries in Redis.", value=stats.entries)
        yield GaugeMetricFamily("edgeloop_prediction_cache_memory_bytes",
                                "Estimated Redis memory of the cache entries.", value=stats.memory_bytes)
