"""The shared Redis prediction cache in front of the ML client: the orchestration of a lookup.

``CachedMLClient`` answers GetPrediction / BatchPredict and EvaluateStrategy from Redis when
it can, and from the service (through ``MLClient``) when it cannot. What it guarantees:

* **Versioned keys** (``keys.py``): the model token (``catalogue.py``), then the serialized
  request (event, selection, strategy, a named version) and the caller's features hash. A cached
  answer is the service's answer for that version, byte for byte (the serialized protobuf,
  framed as level 1 keeps it: ``codec.py``), and a promotion never serves an old entry.
* **A TTL on every key** (``cache_ttl_s``, default 3600 s); the Redis memory policy is in
  ``docs/cache.md``.
* **One round trip per batch** to look up (``lookup.py``: one transaction of the model
  generation, the entries and the single-flight lock of the keys asked; a large lookup: one
  MGET, and the lock apart), **one backend call** for the misses (chunked at
  ``ml_max_batch_items``), **one command** to store them (``store.py``: SET EX, strategy index
  SADD and EXPIRE, and the lock's release), written behind on the client's writer thread
  (``writer.py``; a strategy's entries are stored before the call returns). These commands are
  packed once and sent on a connection kept from the client's pool (``rawredis.py``); level 1
  (``local.py``) is keyed by the serialized request, so a hit builds no Redis key; while Redis
  answers the lookup, the answers level 1 had are parsed in one protobuf call and the call for
  the misses is prepared: the cache's own share of a 1,000-prediction batch is measured by
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

The parts: ``lookup.py`` asks Redis for what level 1 (``local.py``) did not have, ``codec.py``
parses stored answers, ``store.py`` stores fetched ones, ``writer.py`` runs those stores behind
the caller, ``invalidation.py`` makes entries unreachable, ``stats.py`` counts.
"""

from __future__ import annotations

import logging
import operator
import time
from dataclasses import dataclass
from functools import partial
from itertools import compress
from typing import AbstractSet, Any, Callable, Mapping, Sequence, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from edgeloop.core.errors import MLServiceError, MLServiceUnavailable
from edgeloop.core.redis_connect import client_for, slot_owner
from edgeloop.core.settings import Settings, get_settings
from edgeloop.core.statuses import ModelStatus
from edgeloop.mlclient import keys, metrics
from edgeloop.mlclient.breaker import CircuitBreaker
from edgeloop.mlclient.cache.codec import (
    PREDICTION_PLACEHOLDER,
    decode_evaluations,
    decode_framed_predictions,
    frame_evaluations,
    frame_predictions,
)
from edgeloop.mlclient.cache.coherence import Coherence
from edgeloop.mlclient.cache.invalidation import mark_models_changed
from edgeloop.mlclient.cache.local import Key, LocalCache
from edgeloop.mlclient.cache.lookup import (LOCKING_LOOKUP_MAX_KEYS, RedisLookup, missing_positions as _missing,
                                            present_positions as _present)
from edgeloop.mlclient.cache.stats import CacheStats, SharedCounts, read_stats
from edgeloop.mlclient.cache.store import EntryStore
from edgeloop.mlclient.cache.writer import StoreWriter
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
_EVENT_SELECTION = operator.attrgetter("event_id", "selection")
_STRATEGY_ID = operator.attrgetter("strategy_id")
_MODEL_VERSION = operator.attrgetter("model_version")


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


# One cacheable question: its key, the strategy it belongs to ("" if none), the request, and
# whether its key carries the catalogue's token (False when the request named its model
# version). A plain tuple: a batch's misses are made by ``zip`` at C speed (a dataclass each
# cost ~0.4 µs a miss).
_Item = tuple[bytes, str, Any, bool]
_KEY = operator.itemgetter(0)
_ITEM_STRATEGY = operator.itemgetter(1)
_REQUEST = operator.itemgetter(2)
_FROM_CATALOGUE = operator.itemgetter(3)


@dataclass(slots=True)
class _Local:
    """What level 1 answered for a lookup that must go on to Redis: its keys, its values (in
    level 1's form; None where it had none) and its epoch, read with them."""

    local: LocalCache
    epoch: int
    keys: list[Key]
    values: list[bytes | None]


@dataclass(slots=True)
class _Query:
    """One call of the cached client: what it asks and how to ask the service on a miss."""

    kind: str  # PREDICTION | EVALUATION
    model: str  # the model whose catalogue token is in the keys
    size: int  # how many answers
    # Level 1's keys, given the token. ``tagged``: they leave the token out (predictions: the
    # serialized request, cheaper than the Redis key), so lookups pass it as level 1's tag.
    local_keys: Callable[[str], list[Key]]
    tagged: bool
    # The Redis keys of these positions, given the token and level 1's keys of all positions
    # (None if level 1 was not asked): a prediction's is level 1's key after a common head.
    redis_keys: Callable[[str, Sequence[int], list[Key] | None], Sequence[bytes]]
    # The questions at these positions (ascending), with these keys; only asked for misses, to keep hits cheap.
    items: Callable[[Sequence[int], Sequence[bytes]], list[_Item]]
    strategies: Callable[[Sequence[int]], list[str]]  # the strategy of these questions ("" if none), for level 1
    fetch: Callable[[list[_Item]], list[Any]]  # the service's answers, one per item
    serialize: Callable[[Any], bytes]  # an answer as stored
    frame: Callable[[list[bytes]], list[bytes]]  # serialized answers in level 1's form
    decode: Callable[[list[bytes]], list[Any]]  # the answers from level 1's form
    placeholder: bytes  # level 1's form of an empty answer, for a position not known yet


@dataclass(slots=True)
class _Misses:
    """The keys neither level had, each once, and what asking the service for them needs."""

    keys: Sequence[bytes]  # distinct, in the order of their first position
    first: dict[bytes, int]  # key -> its first position
    items: dict[bytes, _Item]  # key -> its question
    level_1: tuple[_Local, Mapping[bytes, Key]] | None  # where fetched answers go, and each key's level-1 key


def _misses(q: _Query, seen: _Local | None, positions: Sequence[int], missing_keys: Sequence[bytes]) -> _Misses:
    """``_Misses`` of ``missing_keys`` at ``positions`` (ascending): a key asked twice is fetched once."""
    first = dict(zip(missing_keys, positions))
    if len(first) == len(missing_keys):
        unique_keys, unique_pos = missing_keys, positions
    else:
        first = {}
        for i, key in zip(positions, missing_keys):
            first.setdefault(key, i)
        unique_keys, unique_pos = list(first), list(first.values())
    level_1 = None
    if seen is not None:  # each missing key's level-1 key (that of its first position)
        level_1 = (seen, dict(zip(unique_keys, map(seen.keys.__getitem__, unique_pos))))
    return _Misses(unique_keys, first, dict(zip(unique_keys, q.items(unique_pos, unique_keys))), level_1)


def _while_redis_answers(q: _Query, seen: _Local, asked: Sequence[int], wanted: Sequence[bytes], early: list[Any],
                         prepared: list[_Misses]) -> None:
    """What a lookup does while Redis answers it: parse the answers level 1 had (placeholders
    elsewhere), and prepare the call for the keys asked as if Redis had none of them; with level
    1 warm, what it lacks is mostly new to Redis too (else that is redone)."""
    early[:] = q.decode([v or q.placeholder for v in seen.values])
    prepared.append(_misses(q, seen, asked, wanted))


def _file_in_level_1(q: _Query, seen: _Local, asked: Sequence[int], got: list[bytes | None]) -> None:
    """File in level 1 what Redis had (``got``: its value for each position ``asked``; on the
    writer thread), unless an invalidation came since the lookup read level 1's epoch."""
    at = _present(got)
    positions = list(map(asked.__getitem__, at))
    seen.local.put_batch(list(map(seen.keys.__getitem__, positions)), cast(list[bytes], list(map(got.__getitem__, at))),
                         q.strategies(positions), seen.epoch)


def _expected(generation: int | None) -> str:
    """The lookup's expected generation: the one our catalogue was checked against."""
    return "-" if generation is None else str(generation)  # "-": never equal, look again


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
        self._writer = StoreWriter()
        self._gen_key = keys.generation_key(self.prefix)
        self._counts = SharedCounts(self.prefix)
        self._lookup = RedisLookup(self.redis, self._raw, self.prefix, self.settings, self._counts, self._writer)
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
        self._backend_calls = {kind: metrics.CACHE_BACKEND_CALLS.labels(kind=kind) for kind in (PREDICTION, EVALUATION)}

    # --- public API ----------------------------------------------------------------------
    def get_prediction(
        self, event_id: str, selection: str, model_version: str = "", strategy_id: str = "", features_hash: str = ""
    ) -> pb.Prediction:
        request = pb.PredictionRequest(
            event_id=event_id, selection=selection, model_version=model_version, strategy_id=strategy_id
        )
        hit = self._one_from_level_1(request, features_hash)
        return hit if hit is not None else self.batch_predict([request], features_hash)[0]

    def _one_from_level_1(self, request: pb.PredictionRequest, features_hash: str) -> pb.Prediction | None:
        """A single prediction answered by level 1, or None (then the batch path asks, level 1
        included): a hit without the batch's machinery (closures, lists, the query), which
        keeps a single hit's cost and its tail low (``bench/cache.py``: p99 < 0.02 ms)."""
        local, coherence = self.local, self.coherence
        if local is None or coherence is None or not coherence.serving():
            return None
        started = time.perf_counter()
        token = self.catalogue.token(OUTCOME_MODEL)
        value = local.get(keys.request_key(request, features_hash), token)
        if value is None:
            return None
        self._local_hits[PREDICTION].inc()
        self._counts.count(PREDICTION, 1, 0)
        answer = pb.BatchPredictResponse.FromString(value).predictions[0]  # a framed Prediction is one
        self._lookup_seconds[PREDICTION].observe(time.perf_counter() - started)
        return answer

    def batch_predict(
        self, requests: Sequence[pb.PredictionRequest], features_hash: str | Sequence[str] = ""
    ) -> list[pb.Prediction]:
        """Predictions in the order of ``requests``. ``features_hash``: one for all, or one per request."""
        common = ""  # the features hash of every request, unless one each
        if isinstance(features_hash, str):
            hashes: Sequence[str] | None = None
            common = features_hash
        else:
            hashes = list(features_hash)
            if len(hashes) != len(requests):
                raise ValueError("features_hash: one per request, or one string for all")
        n = len(requests)

        def local_keys(token: str) -> list[Key]:
            # What identifies each request but the token (keys.request_key: its serialization,
            # one C call, and the features hash); the token is level 1's tag.
            return cast(list[Key], keys.request_keys(requests, common if hashes is None else hashes))

        def at(positions: Sequence[int]) -> Sequence[pb.PredictionRequest]:
            # Positions are ascending and distinct: as many as requests means all, in order.
            return requests if len(positions) == n else list(map(requests.__getitem__, positions))

        def redis_keys(token: str, positions: Sequence[int], local: list[Key] | None) -> Sequence[bytes]:
            # Level 1's key after the token's head; the tails are built here only if level 1
            # was not asked.
            if local is None:
                tails = keys.request_keys(at(positions), common if hashes is None else
                                          hashes if len(positions) == n else list(map(hashes.__getitem__, positions)))
            else:
                tails = cast(list[bytes], local if len(positions) == n else list(map(local.__getitem__, positions)))
            batch = keys.HeadAndTails(keys.prediction_key_base(self.prefix, token), tails)
            # Built once here unless the lookup is large: a small one uses every key several
            # times (its lock's name, dicts of the misses), a large one only those Redis lacks.
            return batch if len(tails) > LOCKING_LOOKUP_MAX_KEYS else list(batch)

        def items(positions: Sequence[int], item_keys: Sequence[bytes]) -> list[_Item]:
            asked = at(positions)
            return list(zip(item_keys, map(_STRATEGY_ID, asked), asked,
                            map(operator.not_, map(_MODEL_VERSION, asked))))

        return self._get_many(
            _Query(PREDICTION, OUTCOME_MODEL, n, local_keys, True, redis_keys, items,
                   lambda positions: list(map(_STRATEGY_ID, map(requests.__getitem__, positions))),
                   self._fetch_predictions, pb.Prediction.SerializeToString, frame_predictions,
                   decode_framed_predictions, PREDICTION_PLACEHOLDER)
        )

    def evaluate_strategy(self, strategy_id: str, params: Mapping[str, Any]) -> pb.EvaluateStrategyResponse:
        def key(token: str) -> bytes:
            return keys.evaluation_key(self.prefix, token, strategy_id, params)

        def items(positions: Sequence[int], item_keys: Sequence[bytes]) -> list[_Item]:
            return [(k, strategy_id, (strategy_id, params), True) for k in item_keys]

        return self._get_many(
            _Query(EVALUATION, STRATEGY_MODEL, 1, lambda token: [key(token)], False,
                   lambda token, positions, local: [key(token) for _ in positions], items,
                   lambda positions: [strategy_id] * len(positions),
                   self._fetch_evaluations, pb.EvaluateStrategyResponse.SerializeToString, frame_evaluations,
                   decode_evaluations, b"")
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
        """Answers for ``q``, in order: from level 1, else Redis, else the service."""
        started = time.perf_counter()
        try:
            # The generation our catalogue was checked against, read before its token: if Redis
            # has another, the lookup's values are not used and we look again (_get_many_cached).
            generation = self.catalogue.generation
            token = self.catalogue.token(q.model)
            seen: _Local | None = None
            local = self.local
            if local is not None and self.coherence is not None and self.coherence.serving():
                wanted = q.local_keys(token)
                # The epoch is read with the values, before Redis is asked: answers read after
                # an invalidation are not kept.
                values, epoch = local.lookup(wanted, token if q.tagged else None)
                if None not in values:
                    self._local_hits[q.kind].inc(len(values))
                    self._counts.count(q.kind, len(values), 0)
                    return q.decode(cast(list[bytes], values))
                seen = _Local(local, epoch, wanted, values)
            if not self.redis_breaker.allow():
                return self._direct(q, "redis_skipped")
            redis_down = False
            try:
                return self._get_many_cached(q, seen, token, generation)
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

    def _get_many_cached(self, q: _Query, seen: _Local | None, token: str, generation: int | None) -> list[Any]:
        n = q.size
        early: list[Any] = []  # level 1's answers (placeholders elsewhere), parsed while Redis looks up
        prepared: list[_Misses] = []  # the call for the keys asked, prepared meanwhile as if Redis had none
        # Look up what level 1 did not have, with the generation and the lock of the misses
        # (lookup.py). If the generation moved since our catalogue was checked, the keys may name
        # a superseded version: nothing is read, and we look again with a fresh catalogue, once.
        for attempt in range(2):
            asked: Sequence[int] = range(n) if seen is None else _missing(seen.values)
            wanted = q.redis_keys(token, asked, seen.keys if seen is not None else None)
            early.clear()
            prepared.clear()
            meanwhile = None
            if seen is not None and len(asked) < n:
                meanwhile = partial(_while_redis_answers, q, seen, asked, wanted, early, prepared)
            lookup = self._lookup(wanted, "" if attempt else _expected(generation), meanwhile)
            self.catalogue.observe_generation(int(lookup.generation or 0))
            if lookup.values is not None:
                break
            if lookup.stray is not None:
                self.single_flight.release(lookup.stray)
            self.catalogue.expire()
            token = self.catalogue.token(q.model)
            if seen is not None:
                seen.local.clear()  # its entries name the superseded catalogue
                fresh = q.local_keys(token)
                values, epoch = seen.local.lookup(fresh, token if q.tagged else None)
                seen = _Local(seen.local, epoch, fresh, values)

        got = lookup.values  # Redis's answer for each position asked, in level 1's form (codec.py)
        assert got is not None  # the second lookup does not check the generation
        where = lookup.missing  # the indexes in ``asked`` of those Redis did not have
        miss_pos: Sequence[int]  # the positions neither level had, and their keys
        miss_keys: Sequence[bytes]
        if len(where) == len(got):  # Redis had none of them (level 1 had all Redis has, and the rest is new)
            miss_pos, miss_keys = asked, wanted
        else:
            miss_pos, miss_keys = [asked[j] for j in where], [wanted[j] for j in where]
        local_hits = n - len(asked)
        if local_hits:
            self._local_hits[q.kind].inc(local_hits)
        self._counts.count(q.kind, n - len(miss_pos), len(miss_pos))
        behind: list[tuple[Callable[[], object], AbstractSet[bytes]]] = []  # jobs for the writer, handed over at the end
        if seen is not None and len(where) < len(got):
            # What Redis had goes to level 1 too (unless an invalidation came meanwhile), written
            # behind with the stores: nothing in the answer depends on it, not even which
            # positions those are (sorting 900 out and reading their strategy ids cost the
            # caller ~0.2 ms).
            behind.append((partial(_file_in_level_1, q, seen, asked, got), frozenset()))
        if lookup.stray is not None:
            # A lock the lookup took for keys not all missing (lookup.py): released behind (after
            # level 1's copy, which needs no round trip); only a process that found all of those
            # keys missing would wait for it.
            behind.append((partial(self.single_flight.release, lookup.stray), frozenset()))
        answers: list[Any] = []

        def decode_known() -> None:
            # The answers level 1 had (parsed while Redis looked up) and those Redis had, in one
            # call; placeholders where neither had one. Without level 1's (``early``), every
            # position was asked: Redis's values are the batch's, in order.
            if answers:
                return
            if not early:
                answers.extend(q.decode([v or q.placeholder for v in got]))  # type: ignore[misc]
                return
            answers.extend(early)
            if len(where) < len(got):
                at = _present(got)
                for j, answer in zip(at, q.decode([got[j] for j in at])):  # type: ignore[misc]
                    answers[asked[j]] = answer

        if not miss_pos:
            decode_known()
            for job, stored_keys in behind:
                self._writer.submit(job, stored_keys)
            return answers
        misses = prepared[0] if prepared and miss_keys is wanted else _misses(q, seen, miss_pos, miss_keys)
        unique_keys, first, missing, level_1 = misses.keys, misses.first, misses.items, misses.level_1
        lock_ttl_s = self.settings.ml_timeout_s * self._chunks(len(missing)) + 1.0  # as the lookup's PX

        def fetch_and_store(subset: Sequence[bytes], held: Lock | None) -> dict[bytes, Any]:
            return self._fetch_and_store(q, list(map(missing.__getitem__, subset)), held, level_1, behind)

        def complete(filled: Mapping[bytes, Any]) -> None:
            # The missing ones as fetched (one object per key: a key asked twice gets a copy) or,
            # if another process fetched them, parsed.
            decode_known()
            polled = [k for k, v in filled.items() if isinstance(v, bytes)]
            if polled:
                filled = dict(filled)
                polled_framed = [filled[k] for k in polled]  # (stored in level 1's form)
                filled.update(zip(polled, q.decode(polled_framed)))
                if seen is not None:
                    seen.local.put_batch([seen.keys[first[k]] for k in polled], polled_framed,
                                         q.strategies([first[k] for k in polled]), seen.epoch)
            if unique_keys is miss_keys:
                for i, answer in zip(miss_pos, map(filled.__getitem__, miss_keys)):
                    answers[i] = answer
                return
            given: set[bytes] = set()
            for i, key in zip(miss_pos, miss_keys):
                answer = filled[key]
                if key in given:
                    answer = type(answer).FromString(answer.SerializeToString())
                given.add(key)
                answers[i] = answer

        assert lookup.lock is not None  # named by every lookup that finds keys missing
        try:
            # If the lock is still to take (the keys asked were not all missing), the answers
            # known are parsed while Redis takes it.
            filled = self.single_flight.run(lookup.lock, unique_keys, fetch_and_store, lock_ttl_s, lookup.taken,
                                            lookup.token, meanwhile=decode_known if lookup.taken is None else None)
            complete(filled)
        finally:
            # Woken only now: a thread woken earlier may take this one's core while it answers.
            for job, stored_keys in behind:
                self._writer.submit(job, stored_keys)
        return answers

    def _fetch_and_store(
        self,
        q: _Query,
        items: list[_Item],
        lock: Lock | None,
        level_1: tuple[_Local, Mapping[bytes, Key]] | None = None,
        behind: list[tuple[Callable[[], object], AbstractSet[bytes]]] | None = None,
    ) -> dict[bytes, Any]:
        """Ask the service for ``items`` (distinct keys); the answers, by key. They go to level 1
        now (``level_1``: where, and each key's level-1 key; so this process asking again at once
        finds them there), serialized before anyone can change them; their store in Redis, with
        the release of ``lock``, is written behind (``writer.py``; appended to ``behind`` for the
        caller to hand over, if given) unless one of them belongs to a strategy (then stored now:
        see below). In bulk, at C speed where it can: this is the path of every miss."""
        self._backend_calls[q.kind].inc()
        answers = q.fetch(items)
        item_keys = list(map(_KEY, items))
        fetched = dict(zip(item_keys, answers))
        values = q.frame(list(map(q.serialize, answers)))  # level 1's form, which Redis keeps too
        strategies = list(map(_ITEM_STRATEGY, items))
        stale_catalogue = False
        if q.kind == PREDICTION:
            versions = list(map(_MODEL_VERSION, answers))
            from_catalogue = list(map(_FROM_CATALOGUE, items))
            statuses = {v: self.catalogue.status_of(OUTCOME_MODEL, v) for v in set(compress(versions, from_catalogue))}
            if any(status != ModelStatus.SERVING for status in statuses.values()):
                # An answer from a version our catalogue does not list (someone promoted a model
                # without bumping the generation) is not filed under the old token; one the
                # service gave before it caught up with its registry is not cacheable.
                stale_catalogue = None in statuses.values()
                keep = [not c or statuses[v] == ModelStatus.SERVING for c, v in zip(from_catalogue, versions)]
                item_keys, values, strategies = (list(compress(column, keep))
                                                 for column in (item_keys, values, strategies))
        store = dict(zip(item_keys, zip(values, strategies)))  # key -> (value, strategy)
        if level_1 is not None and store:
            seen, local_keys = level_1  # (unless an invalidation came since the lookup)
            seen.local.put_batch(list(map(local_keys.__getitem__, item_keys)), values, strategies, seen.epoch)
        if store and not any(strategies):
            # Written behind (writer.py): the lock is the store's to release from here on.
            job = partial(self._store, q, len(items), store, lock)
            if behind is None:
                self._writer.submit(job, store.keys())
            else:
                behind.append((job, store.keys()))
            if lock is not None:
                lock.released = True
        elif store:
            # Entries of a strategy are stored before the answers are returned, as ever: feedback
            # about the strategy that comes after must find them to invalidate them.
            self._store(q, len(items), store, lock)
        if stale_catalogue:
            try:
                mark_models_changed(self.redis, self.prefix)
            except redis.exceptions.RedisError as exc:
                self._store_failed(q.kind, 0, exc)
            self.catalogue.expire()
        return fetched

    def _store(self, q: _Query, n: int, entries: Mapping[bytes, tuple[bytes, str]], lock: Lock | None) -> None:
        """One store in Redis (on the writer thread unless of a strategy's entries). Never raises."""
        try:
            self._entries.store(entries, lock)
        except redis.exceptions.RedisError as exc:
            self._store_failed(q.kind, n, exc)
            if lock is not None:
                self.single_flight.release(lock)  # the waiters fetch for themselves at once
        except Exception:  # noqa: BLE001 - a bug here must not fail a later lookup that waits for it
            log.exception("prediction cache: a store failed")
            metrics.CACHE_BYPASS.labels(kind=q.kind, reason="store_failed").inc(n)
            if lock is not None:
                self.single_flight.release(lock)

    def _store_failed(self, kind: str, n: int, exc: redis.exceptions.RedisError) -> None:
        # The answers are good even if Redis would not keep them (down, or full under a
        # noeviction policy): return them, count it, let the breaker decide about Redis.
        log.debug("prediction cache: a store failed (%s: %s)", type(exc).__name__, exc)
        self.redis_breaker.record_failure()
        if n:
            metrics.CACHE_BYPASS.labels(kind=kind, reason="store_failed").inc(n)

    # --- without Redis -------------------------------------------------------------------
    def _direct(self, q: _Query, reason: str) -> list[Any]:
        metrics.CACHE_BYPASS.labels(kind=q.kind, reason=reason).inc(q.size)
        return q.fetch(q.items(range(q.size), [b""] * q.size))

    # --- backends ------------------------------------------------------------------------
    def _chunks(self, n: int) -> int:
        size = self.settings.ml_max_batch_items
        return max(1, -(-n // size))

    def _fetch_predictions(self, items: list[_Item]) -> list[pb.Prediction]:
        size = self.settings.ml_max_batch_items
        answers: list[pb.Prediction] = []
        for start in range(0, len(items), size):
            chunk = list(map(_REQUEST, items[start : start + size]))
            got = self.client.batch_predict(chunk)
            if list(map(_EVENT_SELECTION, got)) != list(map(_EVENT_SELECTION, chunk)):  # (a loop at C speed)
                raise MLServiceError("BatchPredict: answers do not match the requests one for one")
            answers.extend(got)
        return answers

    def _fetch_evaluations(self, items: list[_Item]) -> list[pb.EvaluateStrategyResponse]:
        return [self.client.evaluate_strategy(*_REQUEST(i)) for i in items]

    # --- statistics ----------------------------------------------------------------------
    def flush(self) -> None:
        """Wait until the stores this client submitted have run (they are written behind:
        ``writer.py``). A failed store is counted, not raised."""
        self._writer.wait()

    def stats(self, scan_limit: int = 1_000_000) -> CacheStats:
        """Shared statistics of the cache, read from Redis (``metrics.CacheStatsCollector`` exposes them)."""
        self.flush()
        return read_stats(self.redis, self.prefix, self.ttl_s, self._counts, scan_limit)

    def reset_stats(self) -> None:
        self._counts.reset(self.redis)

    def close(self) -> None:
        self._writer.close()
        if self.coherence is not None:
            self.coherence.close()
        self.redis.close()


