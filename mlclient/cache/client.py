"""The shared Redis prediction cache in front of the ML client: the orchestration of a lookup.

``CachedMLClient`` answers GetPrediction / BatchPredict and EvaluateStrategy from Redis when
it can, and from the service (through ``MLClient``) when it cannot. What it guarantees:

* **Versioned keys** (``keys.py``): event, selection, strategy, the caller's features hash and
  the model token (``catalogue.py``). A cached answer is the service's answer for that version,
  byte for byte (the serialized protobuf), and a promotion never serves an old entry.
* **A TTL on every key** (``cache_ttl_s``, default 3600 s); the Redis memory policy is in
  ``docs/cache.md``.
* **One round trip per batch** to look up (one MGET of the model generation and the entries),
  **one backend call** for the misses (chunked at ``ml_max_batch_items``) under a single-flight
  lock (one SET NX), **one command** to store them (``store.py``: SET EX, strategy index SADD
  and EXPIRE, and the lock's release). These commands are packed once and sent on a pooled
  connection (``rawredis.py``), and a batch's answers are parsed in one protobuf call while
  Redis runs the store: the cache's own share of a 1,000-prediction batch is measured by
  ``bench/cache.py``.
* **Strategy-scoped entries** (evaluations and strategy-specific predictions) are listed in a
  per-strategy set; ``invalidate_strategies`` deletes them, and needs only a Redis client.
* **Single flight** across processes (``singleflight.py``).
* **Any Redis error** (unreachable, a timeout, ``OOM command not allowed`` from a full Redis,
  ``READONLY`` from a demoted replica, ``MISCONF``, an error raised inside a script): the answer
  comes from the service directly, counted in ``edgeloop_prediction_cache_bypass_total``
  (reason ``redis_unavailable`` or ``redis_error``); Redis is then left alone for
  ``cache_redis_retry_s`` (a one-failure circuit breaker) so each call does not pay for it again.
  A cache is an optimisation: no Redis answer may turn into a failed prediction.
* **Statistics**: Prometheus counters per process, and shared hit/miss counts in a Redis hash
  that ``stats()`` (``edgeloop ml status``, ``metrics.CacheStatsCollector``) reads with
  entries and memory (``stats.py``).

The parts: ``codec.py`` parses stored answers, ``store.py`` stores fetched ones,
``invalidation.py`` makes entries unreachable, ``stats.py`` counts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from edgeloop.core.errors import MLServiceError, MLServiceUnavailable
from edgeloop.core.redis_connect import client_for, slot_owner
from edgeloop.core.settings import Settings, get_settings
from edgeloop.core.statuses import ModelStatus
from edgeloop.mlclient import keys, metrics
from edgeloop.mlclient.breaker import CircuitBreaker
from edgeloop.mlclient.cache.codec import decode_evaluations, decode_predictions
from edgeloop.mlclient.cache.coherence import Coherence
from edgeloop.mlclient.cache.invalidation import mark_models_changed
from edgeloop.mlclient.cache.local import LocalCache
from edgeloop.mlclient.cache.stats import CacheStats, SharedCounts, read_stats
from edgeloop.mlclient.cache.store import EntryStore
from edgeloop.mlclient.catalogue import ModelCatalogue
from edgeloop.mlclient.protocol import MLServiceClient
from edgeloop.mlclient.rawredis import RawRedis
from edgeloop.mlclient.singleflight import Lock, SingleFlight
from edgeloop.proto import ml_service_pb2 as pb

log = logging.getLogger(__name__)

OUTCOME_MODEL = "outcome"
STRATEGY_MODEL = "strategy"
PREDICTION = "prediction"
EVALUATION = "evaluation"

_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def _bypass_reason(exc: redis.exceptions.RedisError) -> str:
    """The ``reason`` label of a bypass: Redis away, or Redis there but refusing (full, read-only…)."""
    if isinstance(exc, _REDIS_DOWN):
        return "redis_unavailable"
    log.warning("prediction cache: Redis refused a command (%s: %s); answering from the ML service",
                type(exc).__name__, exc)
    return "redis_error"


def make_redis(settings: Settings) -> redis.Redis:
    """A Redis client for the cache: short timeouts and no client-side retries, because a
    cache that blocks is worse than no cache (a miss costs one backend call, ~1 ms)."""
    timeout = settings.cache_redis_timeout_s
    options: dict[str, Any] = {"socket_connect_timeout": timeout, "socket_timeout": timeout,
                               "retry": Retry(NoBackoff(), 0), "health_check_interval": 30}
    if settings.cache_redis_cluster:
        # Every key carries the prefix's hash tag: one slot, one node (docs/cache.md, Cluster).
        return slot_owner(settings.cache_redis_url or settings.redis_url, keys.generation_key(settings.cache_prefix),
                          **options)
    return client_for(settings, settings.cache_redis_url, **options)


@dataclass(slots=True)
class _Item:
    """One cacheable question: its key, the strategy it belongs to ("" if none), the request."""

    key: str
    strategy_id: str
    request: Any
    model_token_from_catalogue: bool  # False when the request named its model version


@dataclass(slots=True)
class _Local:
    """What level 1 answered for a lookup that must go on to Redis: the keys, its values (None
    where it had none) and its epoch before the lookup."""

    local: LocalCache
    epoch: int
    keys: list[str]
    values: list[bytes | None]


@dataclass
class _Query:
    """One call of the cached client: what it asks and how to ask the service on a miss."""

    kind: str  # PREDICTION | EVALUATION
    build_keys: Callable[[], list[str]]  # the keys, in order (uses the catalogue: may be rebuilt)
    item: Callable[[int, str], _Item]  # the i-th question; only called for misses, to keep hits cheap
    strategy: Callable[[int], str]  # the strategy of the i-th question ("" if none), for level 1
    fetch: Callable[[list[_Item]], list[Any]]  # the service's answers, one per item
    decode: Callable[[list[bytes]], list[Any]]  # the answers from their serialized forms


class CachedMLClient:
    def __init__(
        self,
        client: MLServiceClient,
        redis_client: redis.Redis | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.client = client
        self.redis = redis_client if redis_client is not None else make_redis(self.settings)
        self.prefix = self.settings.cache_prefix
        self.ttl_s = self.settings.cache_ttl_s
        self.catalogue = ModelCatalogue(self.client.list_models, self.settings.cache_catalogue_ttl_s)
        self.redis_breaker = CircuitBreaker(1, self.settings.cache_redis_retry_s)
        self.single_flight = SingleFlight(self.redis)
        self._raw = RawRedis(self.redis)
        self._entries = EntryStore(self.redis, self._raw, self.prefix, self.ttl_s)
        self._gen_key = keys.generation_key(self.prefix)
        self._counts = SharedCounts(self.prefix)
        self.local: LocalCache | None = None
        self.coherence: Coherence | None = None
        if self.settings.cache_local_max_entries and self.settings.cache_local_max_bytes:
            self.local = LocalCache(self.settings.cache_local_max_entries, self.settings.cache_local_max_bytes,
                                    min(self.settings.cache_local_ttl_s, self.ttl_s))
            self.coherence = Coherence(self.redis, self.prefix, self.local, self.catalogue,
                                       self.settings.cache_local_bound_s)
            self.coherence.start()
        self._local_hits = {kind: metrics.CACHE_LOCAL_HITS.labels(kind=kind) for kind in (PREDICTION, EVALUATION)}
        self._lookup_seconds = {kind: metrics.CACHE_LOOKUP_SECONDS.labels(kind=kind) for kind in (PREDICTION, EVALUATION)}

    # --- public API ----------------------------------------------------------------------
    def get_prediction(
        self, event_id: str, selection: str, model_version: str = "", strategy_id: str = "", features_hash: str = ""
    ) -> pb.Prediction:
        request = pb.PredictionRequest(
            event_id=event_id, selection=selection, model_version=model_version, strategy_id=strategy_id
        )
        return self.batch_predict([request], features_hash)[0]

    def batch_predict(
        self, requests: Sequence[pb.PredictionRequest], features_hash: str | Sequence[str] = ""
    ) -> list[pb.Prediction]:
        """Predictions in the order of ``requests``. ``features_hash``: one for all, or one per request."""
        if isinstance(features_hash, str):
            hashes: Sequence[str] | None = None
        else:
            hashes = list(features_hash)
            if len(hashes) != len(requests):
                raise ValueError("features_hash: one per request, or one string for all")

        def build_keys() -> list[str]:
            return self._prediction_keys(requests, features_hash if hashes is None else hashes)

        def item(i: int, key: str) -> _Item:
            r = requests[i]
            return _Item(key, r.strategy_id, r, not r.model_version)

        return self._get_many(
            _Query(PREDICTION, build_keys, item, lambda i: requests[i].strategy_id, self._fetch_predictions,
                   decode_predictions)
        )

    def _prediction_keys(self, requests: Sequence[pb.PredictionRequest], hashes: str | Sequence[str]) -> list[str]:
        token = self.catalogue.token
        return keys.prediction_keys(self.prefix, lambda version: token(OUTCOME_MODEL, version), requests, hashes)

    def evaluate_strategy(self, strategy_id: str, params: Mapping[str, Any]) -> pb.EvaluateStrategyResponse:
        def build_keys() -> list[str]:
            return [keys.evaluation_key(self.prefix, self.catalogue.token(STRATEGY_MODEL), strategy_id, params)]

        def item(i: int, key: str) -> _Item:
            return _Item(key, strategy_id, (strategy_id, params), True)

        return self._get_many(
            _Query(EVALUATION, build_keys, item, lambda i: strategy_id, self._fetch_evaluations, decode_evaluations)
        )[0]

    def warm_up(self) -> None:
        """Read the model generation and the catalogues now rather than on the first lookup
        (e.g. in ``worker_process_init``). Without Redis or the service, it does nothing."""
        try:
            self.catalogue.observe_generation(int(self.redis.get(self._gen_key) or 0))
            self.catalogue.token(OUTCOME_MODEL)
        except (redis.exceptions.RedisError, MLServiceUnavailable):
            pass

    def mark_models_changed(self) -> None:
        mark_models_changed(self.redis, self.prefix)
        self.catalogue.expire()
        if self.local is not None:
            self.local.clear()  # this process at once; the others within the bound

    # --- the cached path -----------------------------------------------------------------
    def _get_many(self, q: _Query) -> list[Any]:
        """Answers for ``q``'s keys, in order: from level 1, else Redis, else the service."""
        started = time.perf_counter()
        try:
            seen: _Local | None = None
            local = self.local
            if local is not None and self.coherence is not None and self.coherence.serving():
                epoch = local.epoch  # before any read: answers read after an invalidation are not kept
                wanted = q.build_keys()
                values = local.get_many(wanted)
                if None not in values:
                    self._local_hits[q.kind].inc(len(values))
                    self._counts.count(q.kind, len(values), 0)
                    return q.decode(cast(list[bytes], values))
                seen = _Local(local, epoch, wanted, values)
            if not self.redis_breaker.allow():
                return self._direct(q, "redis_skipped")
            redis_down = False
            try:
                return self._get_many_cached(q, seen)
            except redis.exceptions.RedisError as exc:
                redis_down = True
                return self._direct(q, _bypass_reason(exc))
            finally:
                # Settle the Redis breaker whatever happened (the service may have failed
                # instead), or a half-open probe would stay "in flight" and Redis be skipped forever.
                if redis_down:
                    self.redis_breaker.record_failure()
                else:
                    self.redis_breaker.record_success()
        finally:
            self._lookup_seconds[q.kind].observe(time.perf_counter() - started)

    def _get_many_cached(self, q: _Query, seen: _Local | None) -> list[Any]:
        # Look up what level 1 did not have; if the model generation moved since our catalogue
        # was fetched, the keys may name a superseded version: rebuild them with a fresh
        # catalogue, once.
        for attempt in range(2):
            if seen is None:
                wanted: list[str] = q.build_keys()
                values: list[bytes | None] = [None] * len(wanted)
                asked: Sequence[int] = range(len(wanted))
            else:
                wanted, values = seen.keys, seen.values
                asked = [i for i, v in enumerate(values) if v is None]
            # The generation rides in the same MGET as the entries: one command, one round trip.
            generation, *found = self._mget_with_stats([self._gen_key, *(wanted[i] for i in asked)])
            if self.catalogue.observe_generation(int(generation or 0)) or attempt:
                break
            self.catalogue.expire()
            if seen is not None:
                seen.local.clear()  # its entries name the superseded catalogue
                fresh = q.build_keys()
                seen = _Local(seen.local, seen.local.epoch, fresh, [None] * len(fresh))
        for i, v in zip(asked, found):
            values[i] = v

        positions = [i for i, v in enumerate(values) if v is None]
        local_hits = len(values) - len(asked)
        if local_hits:
            self._local_hits[q.kind].inc(local_hits)
        self._counts.count(q.kind, len(values) - len(positions), len(positions))
        if seen is not None:
            # What Redis had goes to level 1 too (unless an invalidation came meanwhile).
            seen.local.put_many(
                [(wanted[i], v, q.strategy(i)) for i, v in zip(asked, found) if v is not None], seen.epoch)
        if not positions:
            return q.decode(cast(list[bytes], values))
        missing: dict[str, _Item] = {}
        for i in positions:
            key = wanted[i]
            if key not in missing:
                missing[key] = q.item(i, key)
        lock = keys.lock_key(self.prefix, missing)
        lock_ttl_s = self.settings.ml_timeout_s * self._chunks(len(missing)) + 1.0
        answers: list[Any] = []

        def complete(filled: Mapping[str, bytes]) -> None:
            # Every answer, stored or just fetched, parsed from its serialized form in one go;
            # the holder does it while Redis runs its store script.
            if not answers:
                for i in positions:
                    values[i] = filled[wanted[i]]
                answers.extend(q.decode(cast(list[bytes], values)))  # every position filled

        uncacheable: set[str] = set()

        def fetch_and_store(subset: Sequence[str], held: Lock | None) -> dict[str, bytes]:
            meanwhile = complete if len(subset) == len(missing) else None
            return self._fetch_and_store(q, [missing[k] for k in subset], held, meanwhile, uncacheable)

        filled = self.single_flight.run(lock, list(missing), fetch_and_store, lock_ttl_s)
        complete(filled)
        if seen is not None:
            seen.local.put_many([(k, v, missing[k].strategy_id) for k, v in filled.items() if k not in uncacheable],
                                seen.epoch)
        return answers

    def _fetch_and_store(
        self,
        q: _Query,
        items: list[_Item],
        lock: Lock | None,
        meanwhile: Callable[[dict[str, bytes]], None] | None = None,
        uncacheable: set[str] | None = None,
    ) -> dict[str, bytes]:
        """Ask the service for ``items``, store the answers and release ``lock``, in one round
        trip; the answers, serialized. ``meanwhile`` gets them while Redis stores them; the keys
        of answers that must not be cached are added to ``uncacheable``."""
        metrics.CACHE_BACKEND_CALLS.labels(kind=q.kind).inc()
        answers = q.fetch(items)
        fetched: dict[str, bytes] = {}
        store: dict[str, tuple[bytes, str]] = {}  # key -> (value, strategy)
        statuses: dict[str, str | None] = {}  # version -> its status in the catalogue
        stale_catalogue = False
        for item, answer in zip(items, answers):
            value = fetched[item.key] = answer.SerializeToString()
            if item.model_token_from_catalogue and q.kind == PREDICTION:
                version = answer.model_version
                if version not in statuses:
                    statuses[version] = self.catalogue.status_of(OUTCOME_MODEL, version)
                status = statuses[version]
                if status is None:
                    # A version our catalogue does not list: someone promoted a model without
                    # bumping the generation. Do not file the answer under the old token.
                    stale_catalogue = True
                    continue
                if status != ModelStatus.SERVING:
                    continue  # the service has not caught up with its registry yet: not cacheable
            store[item.key] = (value, item.strategy_id)
        if uncacheable is not None and len(store) < len(fetched):
            uncacheable.update(k for k in fetched if k not in store)
        try:
            if store:
                self._entries.store(store, lock, None if meanwhile is None else lambda: meanwhile(fetched))
            if stale_catalogue:
                mark_models_changed(self.redis, self.prefix)
        except redis.exceptions.RedisError:
            # The answers are good even if Redis would not keep them (down, or full under a
            # noeviction policy): return them, count it, let the breaker decide about Redis.
            self.redis_breaker.record_failure()
            metrics.CACHE_BYPASS.labels(kind=q.kind, reason="store_failed").inc(len(items))
        if stale_catalogue:
            self.catalogue.expire()
        return fetched

    # --- without Redis -------------------------------------------------------------------
    def _direct(self, q: _Query, reason: str) -> list[Any]:
        wanted = q.build_keys()
        metrics.CACHE_BYPASS.labels(kind=q.kind, reason=reason).inc(len(wanted))
        return q.fetch([q.item(i, k) for i, k in enumerate(wanted)])

    # --- backends ------------------------------------------------------------------------
    def _chunks(self, n: int) -> int:
        size = self.settings.ml_max_batch_items
        return max(1, -(-n // size))

    def _fetch_predictions(self, items: list[_Item]) -> list[pb.Prediction]:
        size = self.settings.ml_max_batch_items
        answers: list[pb.Prediction] = []
        for start in range(0, len(items), size):
            chunk = [i.request for i in items[start : start + size]]
            got = self.client.batch_predict(chunk)
            if len(got) != len(chunk) or any(
                (p.event_id, p.selection) != (r.event_id, r.selection) for p, r in zip(got, chunk)
            ):
                raise MLServiceError("BatchPredict: answers do not match the requests one for one")
            answers.extend(got)
        return answers

    def _fetch_evaluations(self, items: list[_Item]) -> list[pb.EvaluateStrategyResponse]:
        return [self.client.evaluate_strategy(*i.request) for i in items]

    # --- statistics ----------------------------------------------------------------------
    def _mget_with_stats(self, names: list[str]) -> list[bytes | None]:
        """MGET, with this process's pending statistics added in the same round trip when due."""
        return self._raw.execute(*self._counts.flush_commands(), ("MGET", *names))[-1]

    def stats(self, scan_limit: int = 1_000_000) -> CacheStats:
        """Shared statistics of the cache, read from Redis (``metrics.CacheStatsCollector`` exposes them)."""
        return read_stats(self.redis, self.prefix, self.ttl_s, self._counts, scan_limit)

    def reset_stats(self) -> None:
        self._counts.reset(self.redis)

    def close(self) -> None:
        if self.coherence is not None:
            self.coherence.close()
        self.redis.close()


