"""The prediction cache against a real Redis: key format, get, set, expiry, invalidation, stats,
size bound and its other Redis behaviour. The ML service is the counting stand-in here
(``tests.support.ml.FakeMLClient``); ``test_acceptance.py`` uses the real one."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from prometheus_client import CollectorRegistry

from edgeloop.core.errors import MLServiceError
from edgeloop.core.settings import settings_with
from edgeloop.mlclient import keys
from edgeloop.mlclient.cache import CachedMLClient, invalidate_strategies, make_redis, mark_models_changed
from edgeloop.mlclient.cache.coherence import channel
from edgeloop.mlclient.metrics import CacheStatsCollector
from edgeloop.proto import ml_service_pb2 as pb
from tests.integration.mlclient.support import metric, own_redis, requests

pytestmark = pytest.mark.integration


def test_key_format_in_redis_carries_token_request_and_features_and_has_a_ttl(cache, redis_client):
    answer = cache.get_prediction("E0:2024-08-16", "home", features_hash="abc")
    cache.flush()  # stores are written behind (docs/cache.md, Round trips)
    token = cache.catalogue.token("outcome")
    request = pb.PredictionRequest(event_id="E0:2024-08-16", selection="home")
    key = f"t:pred:p:{token}:".encode() + request.SerializeToString() + b"\0abc"
    assert redis_client.exists(key)
    assert 3590 < redis_client.ttl(key) <= 3600
    # stored in level 1's form: a BatchPredictResponse of that one answer (codec.py)
    assert list(pb.BatchPredictResponse.FromString(redis_client.get(key)).predictions) == [answer]


def test_get_after_set_is_a_hit_and_equals_the_backend_answer(cache, fake_ml):
    first = cache.get_prediction("ev-1", "home")
    again = cache.get_prediction("ev-1", "home")
    assert fake_ml.batch_calls == [1]
    assert again == first == fake_ml.answer(pb.PredictionRequest(event_id="ev-1", selection="home"))


def test_batch_one_lookup_one_backend_call_for_the_misses_only(cache, fake_ml):
    cache.batch_predict(requests(30))
    got = cache.batch_predict(requests(100))  # 30 hits, 70 misses
    assert fake_ml.batch_calls == [30, 70]
    assert [p.event_id for p in got] == [f"ev-{i}" for i in range(100)]


def test_duplicates_in_a_batch_are_fetched_once(cache, fake_ml):
    got = cache.batch_predict(requests(3) + requests(3))
    assert fake_ml.batch_calls == [3] and len(got) == 6 and got[0] == got[3]


def test_entries_expire_after_the_ttl(redis_url, fake_ml):
    settings = settings_with(cache_redis_url=redis_url, cache_prefix="t:pred", cache_ttl_s=1)
    cache = CachedMLClient(fake_ml, make_redis(settings), settings)
    cache.get_prediction("ev-1", "home")
    cache.get_prediction("ev-1", "home")
    time.sleep(1.1)
    cache.get_prediction("ev-1", "home")
    assert fake_ml.batch_calls == [1, 1]


def test_every_key_the_cache_writes_has_a_ttl(cache, redis_client):
    cache.batch_predict(requests(5, strategy_id="s1"))
    cache.evaluate_strategy("s1", {"min_edge": 0.02})
    cache.stats()
    mark_models_changed(redis_client, "t:pred")
    written = list(redis_client.scan_iter(match="t:pred:*"))
    assert len(written) >= 9
    assert all(redis_client.ttl(k) > 0 for k in written), [k for k in written if redis_client.ttl(k) <= 0]


def test_a_promotion_is_announced_with_the_time_redis_published_it_and_a_new_generation_each_time(redis_client):
    pubsub = redis_client.pubsub()
    pubsub.subscribe(channel("t:pred"))
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"
    seconds, micros = redis_client.time()
    first = mark_models_changed(redis_client, "t:pred")
    second = mark_models_changed(redis_client, "t:pred")  # within the same microsecond or not
    after_s, after_us = redis_client.time()
    # Redis's clock at the publication, not the caller's before it connected
    assert seconds * 10**9 + micros * 1000 <= first < second <= after_s * 10**9 + after_us * 1000
    assert int(redis_client.get(keys.generation_key("t:pred"))) == second
    announced = [pubsub.get_message(timeout=1)["data"] for _ in range(2)]
    assert announced == [f"g {first}".encode(), f"g {second}".encode()]
    pubsub.close()


def test_invalidating_a_strategy_clears_its_entries_and_no_others(cache, fake_ml, redis_client):
    cache.batch_predict(requests(4, strategy_id="s1"))
    cache.batch_predict(requests(4, strategy_id="s2"))
    cache.batch_predict(requests(4))
    cache.evaluate_strategy("s1", {"min_edge": 0.02})
    cache.evaluate_strategy("s2", {"min_edge": 0.02})

    assert invalidate_strategies(redis_client, ["s1", "unknown"], "t:pred") == 5

    fake_ml.batch_calls.clear()
    fake_ml.eval_calls = 0
    cache.batch_predict(requests(4, strategy_id="s2"))
    cache.batch_predict(requests(4))
    cache.evaluate_strategy("s2", {"min_edge": 0.02})
    assert fake_ml.batch_calls == [] and fake_ml.eval_calls == 0  # untouched
    cache.batch_predict(requests(4, strategy_id="s1"))
    cache.evaluate_strategy("s1", {"min_edge": 0.02})
    assert fake_ml.batch_calls == [4] and fake_ml.eval_calls == 1  # recomputed
    assert not redis_client.exists(keys.strategy_index_key("t:pred", "unknown"))


def test_evaluations_are_keyed_by_params(cache, fake_ml):
    cache.evaluate_strategy("s1", {"min_edge": 0.02, "staking": "flat"})
    cache.evaluate_strategy("s1", {"staking": "flat", "min_edge": 0.02})
    cache.evaluate_strategy("s1", {"staking": "flat", "min_edge": 0.03})
    assert fake_ml.eval_calls == 2


def test_stats_count_hits_misses_entries_and_memory_across_clients(cache, fake_ml, cache_settings):
    cache.reset_stats()
    other = CachedMLClient(fake_ml, make_redis(cache_settings), cache_settings)
    cache.batch_predict(requests(10))
    cache.flush()  # its store is written behind: another process finds the entries once it landed
    other.batch_predict(requests(20))  # 10 hits, 10 misses
    stats = cache.stats()
    other_stats = other.stats()  # flushes the other process's counts
    assert other_stats.hits == {"prediction": 10}
    assert other_stats.misses == {"prediction": 20}
    assert other_stats.hit_ratio == pytest.approx(1 / 3)
    assert stats.entries == 20 and stats.memory_bytes > 20 * 50
    assert stats.redis_maxmemory_policy and stats.ttl_s == 3600
    registry = CollectorRegistry()
    registry.register(CacheStatsCollector(cache.stats))
    assert registry.get_sample_value("edgeloop_prediction_cache_entries") == 20
    assert registry.get_sample_value("edgeloop_prediction_cache_hit_ratio") == pytest.approx(1 / 3)
    assert registry.get_sample_value("edgeloop_prediction_cache_memory_bytes") == stats.memory_bytes
    assert registry.get_sample_value("edgeloop_prediction_cache_redis_up") == 1


def test_prometheus_counters_by_kind(cache):
    before_hits = metric("edgeloop_prediction_cache_hits_total", kind="prediction")
    before_misses = metric("edgeloop_prediction_cache_misses_total", kind="prediction")
    cache.batch_predict(requests(5))
    cache.batch_predict(requests(5))
    assert metric("edgeloop_prediction_cache_hits_total", kind="prediction") - before_hits == 5
    assert metric("edgeloop_prediction_cache_misses_total", kind="prediction") - before_misses == 5


def test_size_is_bounded_by_redis_maxmemory_and_the_cache_keeps_working(fake_ml):
    # Given the cache's own Redis, capped at 3 MB, evicting any key (the documented policy)
    with own_redis("--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru") as (url, _):
        settings = settings_with(cache_redis_url=url, cache_prefix="t:pred", cache_local_max_entries=0)
        cache = CachedMLClient(fake_ml, make_redis(settings), settings)
        # When far more entries than fit are written
        for start in range(0, 40_000, 1000):
            cache.batch_predict(requests(1000, start=start))
        stats = cache.stats()
        # Then memory stays under the cap, old entries were evicted, and new ones still cache
        assert stats.redis_used_memory_bytes <= 3 * 1024 * 1024
        assert 0 < stats.entries < 40_000
        fake_ml.batch_calls.clear()
        cache.batch_predict(requests(10, start=50_000))
        cache.batch_predict(requests(10, start=50_000))
        assert fake_ml.batch_calls == [10]


@pytest.mark.parametrize("n", [10, 300])  # looked up with the lock in one transaction / by a plain MGET (over 256 keys)
def test_promotion_with_generation_bump_is_never_served_old_entries(cache, fake_ml, redis_client, n):
    old = cache.batch_predict(requests(n))
    fake_ml.promote("v2")
    mark_models_changed(redis_client, "t:pred")
    new = cache.batch_predict(requests(n))
    assert {p.model_version for p in old} == {"v1"} and {p.model_version for p in new} == {"v2"}
    assert fake_ml.batch_calls == [n, n]


def test_an_answer_from_an_unknown_version_is_not_stored_and_bumps_the_generation(cache, fake_ml, redis_client):
    cache.batch_predict(requests(2))  # catalogue says v1
    fake_ml.serving = "v9"  # promoted behind the catalogue's back, no bump
    before = redis_client.get("t:pred:gen")
    got = cache.batch_predict(requests(2, start=5))
    assert {p.model_version for p in got} == {"v9"}
    assert redis_client.get("t:pred:gen") != before
    assert not list(redis_client.scan_iter(match="t:pred:p:*ev-5*"))


def test_redis_unreachable_answers_from_the_service_and_counts_it(fake_ml):
    with own_redis() as (url, proc):
        settings = settings_with(cache_redis_url=url, cache_prefix="t:pred", cache_local_max_entries=0, cache_redis_retry_s=0.2)
        cache = CachedMLClient(fake_ml, make_redis(settings), settings)
        cache.batch_predict(requests(5))
        cache.flush()  # stored (written behind) before Redis stops
        proc.terminate()
        proc.wait(10)
        unavailable = metric("edgeloop_prediction_cache_bypass_total", kind="prediction", reason="redis_unavailable")
        skipped = metric("edgeloop_prediction_cache_bypass_total", kind="prediction", reason="redis_skipped")
        started = time.perf_counter()
        first = cache.batch_predict(requests(5))
        second = cache.batch_predict(requests(5))
        assert time.perf_counter() - started < 0.5  # no timeouts paid per call
        assert first == second == [fake_ml.answer(r) for r in requests(5)]
        assert metric("edgeloop_prediction_cache_bypass_total", kind="prediction", reason="redis_unavailable") == unavailable + 5
        assert metric("edgeloop_prediction_cache_bypass_total", kind="prediction", reason="redis_skipped") == skipped + 5
        assert not cache.stats().redis_ok


def test_redis_back_after_an_outage_is_used_again(fake_ml):
    with own_redis() as (url, proc):
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        settings = settings_with(cache_redis_url=url, cache_prefix="t:pred", cache_local_max_entries=0, cache_redis_retry_s=0.1)
        cache = CachedMLClient(fake_ml, make_redis(settings), settings)
        proc.terminate()
        proc.wait(10)
        cache.batch_predict(requests(3))
    with own_redis(port=port):
        time.sleep(0.15)
        fake_ml.batch_calls.clear()
        cache.batch_predict(requests(3))
        cache.batch_predict(requests(3))
        assert fake_ml.batch_calls == [3]


def test_concurrent_misses_of_the_same_keys_make_one_backend_call(fake_ml, cache_settings):
    fake_ml.delay_s = 0.2
    clients = [CachedMLClient(fake_ml, make_redis(cache_settings), cache_settings) for _ in range(6)]
    results: list[list[pb.Prediction]] = []
    barrier = threading.Barrier(len(clients))

    def ask(c: CachedMLClient) -> None:
        barrier.wait()
        results.append(c.batch_predict(requests(200)))

    threads = [threading.Thread(target=ask, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert fake_ml.batch_calls == [200]
    assert len(results) == 6 and all(r == results[0] for r in results)


def test_a_waiter_takes_over_when_the_lock_holder_fails(fake_ml, cache_settings, redis_client):
    # Given a lock on the key set held by a process that died (it will never store anything)
    cache = CachedMLClient(fake_ml, make_redis(cache_settings), cache_settings)
    cache.batch_predict(requests(1, start=99))  # learn the catalogue
    token = cache.catalogue.token("outcome")
    wanted = [keys.prediction_key("t:pred", token, f"ev-{i}", "home") for i in range(3)]
    redis_client.set(keys.lock_key("t:pred", wanted), "dead", px=300)
    # When a process misses the same keys, it waits for the lock to expire, then fetches itself
    started = time.perf_counter()
    got = cache.batch_predict(requests(3))
    assert 0.25 < time.perf_counter() - started < 2
    assert [p.event_id for p in got] == ["ev-0", "ev-1", "ev-2"]


@pytest.mark.parametrize("n", [3, 300])
def test_the_lookup_locks_exactly_the_missing_keys_while_they_are_fetched(cache, fake_ml, redis_client, n):
    # Given some of a batch in Redis
    cache.batch_predict(requests(n // 3))
    token = cache.catalogue.token("outcome")
    missing = [keys.prediction_key("t:pred", token, f"ev-{i}", "home") for i in range(n // 3, n)]
    seen: list[bool] = []
    ask = fake_ml.batch_predict

    def batch_predict(reqs, timeout=None):
        seen.append(bool(redis_client.exists(keys.lock_key("t:pred", missing))))
        return ask(reqs, timeout)

    fake_ml.batch_predict = batch_predict
    # When the batch is asked, the service is called for the others under the lock of that set
    cache.batch_predict(requests(n))
    assert seen == [True] and fake_ml.batch_calls == [n // 3, n - n // 3]
    cache.flush()
    assert not redis_client.exists(keys.lock_key("t:pred", missing))  # released by the store


def test_a_small_lookup_finding_some_keys_locks_only_the_missing_ones_and_leaves_no_lock(cache, fake_ml,
                                                                                         redis_client):
    # Given a batch of 3 of which Redis has the first (this client has no level 1: it asks Redis
    # for the 3, and its lookup takes the lock of the 3 with its read; that one is released and
    # the lock of the 2 missing taken)
    assert cache.local is None
    cache.batch_predict(requests(1))
    cache.flush()
    token = cache.catalogue.token("outcome")
    asked = [keys.prediction_key("t:pred", token, f"ev-{i}", "home") for i in range(3)]
    seen: list[tuple[bool, bool]] = []
    ask = fake_ml.batch_predict

    def batch_predict(reqs, timeout=None):
        seen.append((bool(redis_client.exists(keys.lock_key("t:pred", asked[1:]))),
                     bool(redis_client.exists(keys.lock_key("t:pred", asked)))))
        return ask(reqs, timeout)

    fake_ml.batch_predict = batch_predict
    # When it is asked, the service is called for the 2 missing under the lock of those 2
    assert [p.event_id for p in cache.batch_predict(requests(3))] == ["ev-0", "ev-1", "ev-2"]
    assert seen[0][0] and fake_ml.batch_calls == [1, 2]
    # and once the writer has run, no lock is left
    cache.flush()
    assert not list(redis_client.scan_iter(match="t:pred:lock:*"))


def test_a_lookup_finding_every_key_leaves_no_lock(cache, fake_ml, redis_client):
    cache.batch_predict(requests(3))
    cache.flush()
    assert [p.event_id for p in cache.batch_predict(requests(3))] == ["ev-0", "ev-1", "ev-2"]
    assert fake_ml.batch_calls == [3]
    cache.flush()
    assert not list(redis_client.scan_iter(match="t:pred:lock:*"))


def test_a_failed_store_is_counted_and_releases_its_lock(cache, fake_ml, redis_client):
    # Given a strategy index that is not a set: the store script fails on it
    redis_client.set("t:pred:ix:s-bad", "not a set")
    failed = metric("edgeloop_prediction_cache_bypass_total", kind="prediction", reason="store_failed")
    # When answers of that strategy are fetched, they are returned all the same
    got = cache.batch_predict(requests(2, strategy_id="s-bad"))
    assert [p.event_id for p in got] == ["ev-0", "ev-1"]
    # and the failure is counted (a strategy's entries are stored before the call returns), its lock gone
    assert metric("edgeloop_prediction_cache_bypass_total", kind="prediction", reason="store_failed") == failed + 2
    assert not list(redis_client.scan_iter(match="t:pred:lock:*"))


def test_a_store_written_behind_that_fails_is_counted_and_releases_its_lock(cache, fake_ml, redis_client,
                                                                             monkeypatch):
    # Given a Redis that answers lookups but refuses the store (as one that just became full would)
    def refused(entries, lock=None):
        raise redis.exceptions.ResponseError("OOM command not allowed when used memory > 'maxmemory'")

    monkeypatch.setattr(cache._entries, "store", refused)
    failed = metric("edgeloop_prediction_cache_bypass_total", kind="prediction", reason="store_failed")
    # When answers are fetched, they are returned
    assert [p.event_id for p in cache.batch_predict(requests(3))] == ["ev-0", "ev-1", "ev-2"]
    # and once the writer has tried, the failure is counted and the lock released for the waiters
    cache.flush()
    assert metric("edgeloop_prediction_cache_bypass_total", kind="prediction", reason="store_failed") == failed + 3
    assert not list(redis_client.scan_iter(match="t:pred:lock:*"))


def test_answers_of_a_strategy_are_in_redis_when_returned_so_feedback_after_finds_them(cache, redis_client):
    cache.batch_predict(requests(3, strategy_id="s-1"))  # no flush: stored before the return
    assert invalidate_strategies(redis_client, ["s-1"], "t:pred") == 3


def test_an_answer_from_a_retired_version_is_returned_but_not_stored(cache, fake_ml, redis_client):
    # Given a registry that already promoted v2 while the service still answers with v1
    fake_ml.promote("v2")
    fake_ml.serving = "v1"
    mark_models_changed(redis_client, "t:pred")
    # When the cache asks, it gets v1's answers (the service's truth right now) …
    assert {p.model_version for p in cache.batch_predict(requests(3))} == {"v1"}
    # … but files none of them under the token of the new catalogue
    cache.flush()
    assert not list(redis_client.scan_iter(match="t:pred:p:*"))
    fake_ml.serving = "v2"
    assert {p.model_version for p in cache.batch_predict(requests(3))} == {"v2"}
    cache.flush()
    assert len(list(redis_client.scan_iter(match="t:pred:p:*"))) == 3


def test_a_service_failure_during_a_redis_probe_does_not_leave_redis_skipped(fake_ml):
    from edgeloop.core.errors import MLServiceUnavailable

    with own_redis() as (url, proc):
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        settings = settings_with(cache_redis_url=url, cache_prefix="t:pred", cache_local_max_entries=0, cache_redis_retry_s=0.1)
        cache = CachedMLClient(fake_ml, make_redis(settings), settings)
        cache.batch_predict(requests(1))
        cache.flush()
        proc.terminate()
        proc.wait(10)
        cache.batch_predict(requests(2))  # Redis down: breaker open
    with own_redis(port=port):
        time.sleep(0.15)
        fake_ml.fail_with("batch_predict", MLServiceUnavailable("down"))
        with pytest.raises(MLServiceUnavailable):
            cache.batch_predict(requests(3, start=10))  # the Redis probe, ended by the service
        fake_ml.fail_with("batch_predict", None)
        cache.batch_predict(requests(3, start=10))
        fake_ml.batch_calls.clear()
        cache.batch_predict(requests(3, start=10))
        assert fake_ml.batch_calls == []  # Redis is used again


def test_the_store_releases_the_single_flight_lock_and_survives_a_script_flush(cache, fake_ml, redis_client):
    cache.batch_predict(requests(3))
    cache.flush()  # written behind
    assert not list(redis_client.scan_iter(match="t:pred:lock:*"))  # released by the store script
    redis_client.script_flush()  # e.g. a restarted Redis: the script is loaded again
    cache.batch_predict(requests(3, start=10))
    cache.batch_predict(requests(3, start=10))
    assert fake_ml.batch_calls == [3, 3]
    cache.flush()
    assert not list(redis_client.scan_iter(match="t:pred:lock:*"))


def test_feedback_invalidation_goes_to_the_caches_own_redis(fake_ml, redis_url, monkeypatch):
    from edgeloop.core.settings import get_settings
    from edgeloop.services.feedback import invalidate_strategy_cache
    from edgeloop.services.runtime import reset_resources

    with own_redis() as (cache_url, _):
        # Given a cache on a Redis of its own, apart from the main one, holding s1's answers
        for key, value in {"EDGELOOP_REDIS_URL": redis_url, "EDGELOOP_CACHE_REDIS_URL": cache_url,
                           "EDGELOOP_CACHE_PREFIX": "t:pred"}.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        reset_resources(close=False)
        try:
            settings = get_settings()
            cache = CachedMLClient(fake_ml, make_redis(settings), settings)
            cache.batch_predict(requests(3, strategy_id="s1"))
            # When feedback about s1 is submitted
            invalidate_strategy_cache(["s1"])
            # Then s1's answers are gone from the cache's Redis: asked again, they are fetched
            fake_ml.batch_calls.clear()
            cache.batch_predict(requests(3, strategy_id="s1"))
            assert fake_ml.batch_calls == [3]
        finally:
            reset_resources()


def test_strategy_invalidation_is_published_even_when_redis_lists_no_entry(cache, redis_client):
    # A process's level 1 may hold entries whose Redis index was evicted: it must hear of it anyway.
    subscriber = redis_client.pubsub()
    subscriber.subscribe("t:pred:inval")
    assert subscriber.get_message(timeout=1)["type"] == "subscribe"
    assert invalidate_strategies(redis_client, ["never-cached"], "t:pred") == 0
    message = subscriber.get_message(timeout=2)
    subscriber.close()
    assert message is not None and message["data"].endswith(b'["never-cached"]')


def test_answers_that_do_not_match_the_requests_are_refused_not_cached(cache, fake_ml, redis_client):
    fake_ml.probability = lambda request, version: None if request.event_id == "ev-1" else 0.5  # ev-1 unanswered
    with pytest.raises(MLServiceError):
        cache.batch_predict(requests(3))
    cache.flush()
    assert not list(redis_client.scan_iter(match="t:pred:p:*"))
    assert not list(redis_client.scan_iter(match="t:pred:lock:*"))


def test_a_single_prediction_from_level_1_is_the_batch_answer_and_counted(fake_ml, redis_url):
    settings = settings_with(cache_redis_url=redis_url, cache_prefix="t:pred")  # level 1 on
    cache = CachedMLClient(fake_ml, make_redis(settings), settings)
    try:
        assert cache.coherence.wait_serving(5)
        batch = cache.batch_predict([pb.PredictionRequest(event_id="ev-1", selection="home")], "fh")
        local = metric("edgeloop_prediction_cache_local_hits_total", kind="prediction")
        assert cache.get_prediction("ev-1", "home", features_hash="fh") == batch[0]
        assert cache.get_prediction("ev-1", "home", features_hash="other") == batch[0]  # another hash: asked again
        assert metric("edgeloop_prediction_cache_local_hits_total", kind="prediction") - local == 1
        assert fake_ml.batch_calls == [1, 1]
    finally:
        cache.close()
