"""Acceptance of issue 4: real Redis, the real ML service (port 0, trained on shipped data), real
worker processes (``predict_worker.py``) and the real feedback path of the event pipeline."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import pytest
from prometheus_client import REGISTRY

from edgeloop.core.settings import get_settings, settings_with
from edgeloop.mlclient.cache import CachedMLClient, make_redis
from edgeloop.proto import ml_service_pb2 as pb
from tests.integration.mlclient.support import (
    FULL_REDIS,
    PREFIX,
    as_requests,
    fill_to_maxmemory,
    metric,
    own_redis,
    selections,
    train,
)
from tests.support.processes import ROOT, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

@pytest.fixture
def cached(ml, settings):
    client = CachedMLClient(ml, make_redis(settings), settings)
    yield client
    client.close()


def batch_predict_calls() -> float:
    """BatchPredict calls the service answered (its own metric: it runs in this process)."""
    return REGISTRY.get_sample_value("edgeloop_ml_rpc_total", {"method": "BatchPredict", "code": "OK"}) or 0.0


def evaluate_calls() -> float:
    return REGISTRY.get_sample_value("edgeloop_ml_rpc_total", {"method": "EvaluateStrategy", "code": "OK"}) or 0.0


class Workers:
    """Worker processes started together, released together by one ``go``."""

    def __init__(self, settings, jobs: list[list[tuple[str, str, str]]]) -> None:
        env = {**os.environ, "EDGELOOP_CONFIG": os.devnull, "EDGELOOP_REDIS_URL": settings.redis_url,
               "EDGELOOP_ML_GRPC_TARGET": settings.ml_grpc_target, "EDGELOOP_CACHE_PREFIX": settings.cache_prefix,
               "EDGELOOP_ML_TIMEOUT_S": "30"}
        self.procs = [
            subprocess.Popen([sys.executable, "-m", "tests.integration.mlclient.predict_worker"], cwd=ROOT, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in jobs
        ]
        for proc, job in zip(self.procs, jobs):
            proc.stdin.write(json.dumps({"requests": job}) + "\n")
            proc.stdin.flush()
        for proc in self.procs:
            assert proc.stdout.readline().strip() == "ready"

    def run(self) -> list[dict]:
        for proc in self.procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in self.procs:
            out = json.loads(proc.stdout.readline())
            out["predictions"] = [pb.Prediction.FromString(base64.b64decode(p)) for p in out["predictions"]]
            results.append(out)
            proc.stdin.close()
            assert proc.wait(30) == 0
        return results


def test_predictions_computed_by_one_process_are_hits_for_another(service, settings, ml):
    events = service.events
    job = selections(events, 300)
    (first,) = Workers(settings, [job]).run()
    (second,) = Workers(settings, [job]).run()
    assert first["counters"]["misses"] == 300 and first["counters"]["backend_calls"] == 1
    assert second["counters"]["hits"] == 300 and second["counters"]["misses"] == 0
    assert second["counters"]["backend_calls"] == 0
    assert second["predictions"] == first["predictions"] == ml.batch_predict(as_requests(job))


def test_eight_processes_missing_the_same_1000_cause_one_backend_call(service, settings, ml):
    events = service.events
    job = selections(events, 1000, start=300)
    workers = Workers(settings, [job] * 8)
    before = batch_predict_calls()
    results = workers.run()
    assert batch_predict_calls() - before == 1
    assert sum(r["counters"]["backend_calls"] for r in results) == 1
    # Each process fetched (one), waited for that fetch, or came late enough to find only hits.
    for r in results:
        c = r["counters"]
        assert c["backend_calls"] + c["waits_filled"] == 1 or (c["hits"], c["misses"]) == (1000, 0), c
    expected = ml.batch_predict(as_requests(job))
    assert all(r["predictions"] == expected for r in results)


def test_a_cached_answer_always_equals_the_services_for_the_same_version(service, cached, ml):
    events = service.events
    job = as_requests(selections(events, 600, start=1500))
    cached.batch_predict(job)  # fill
    from_cache = cached.batch_predict(job)  # all hits
    assert metric("edgeloop_prediction_cache_hits_total", kind="prediction") >= 600
    assert from_cache == ml.batch_predict(job)
    # A named version is its own key space and equally exact.
    version = from_cache[0].model_version
    named = [pb.PredictionRequest(event_id=r.event_id, selection=r.selection, model_version=version) for r in job[:30]]
    assert cached.batch_predict(named) == cached.batch_predict(named) == ml.batch_predict(named)
    single = cached.get_prediction(job[7].event_id, job[7].selection)
    assert single == ml.get_prediction(job[7].event_id, job[7].selection)


def test_after_a_promotion_no_entry_of_the_old_version_is_served(service, cached, ml, settings):
    events = service.events
    job = as_requests(selections(events, 300, start=2400))
    # Given two caches full of the serving versions' answers: one the service tells about
    # promotions (its prefix), one that only has its catalogue TTL to notice
    lazy_settings = settings_with(**{**settings.model_dump(), "cache_prefix": "acc:lazy", "cache_catalogue_ttl_s": 0.5})
    lazy = CachedMLClient(ml, make_redis(lazy_settings), lazy_settings)
    old = {p.model_version for p in cached.batch_predict(job)} | {p.model_version for p in lazy.batch_predict(job)}
    # When a training job promotes new champions (same data, log-loss as good: they win)
    assert set(train(ml).model_versions).isdisjoint(old)
    wait_until(lambda: not {p.model_version for p in ml.batch_predict(job)} & old, 10, 0.2,
               "the service to serve the new versions")  # its own registry poll
    # Then no answer of an old version comes out of either cache
    after = cached.batch_predict(job)
    assert not {p.model_version for p in after} & old
    assert after == ml.batch_predict(job)
    time.sleep(0.6)
    assert not {p.model_version for p in lazy.batch_predict(job)} & old


def test_feedback_for_a_strategy_clears_its_entries_and_no_others(service, cached, ml, settings, monkeypatch, pg_url):
    """The pipeline's real feedback path: event on the stream → stored → submitted → invalidated."""
    from edgeloop.producers import Publisher
    from tests.support.events import valid_event
    from edgeloop.services.feedback import invalidate_strategy_cache
    from edgeloop.services.feedback import FeedbackFlusher
    from edgeloop.services.ingest import StreamConsumer
    from edgeloop.services.runtime import reset_resources, resources

    events = service.events
    for key, value in {"EDGELOOP_REDIS_URL": settings.redis_url, "EDGELOOP_DATABASE_URL": pg_url,
                       "EDGELOOP_ML_GRPC_TARGET": settings.ml_grpc_target,
                       "EDGELOOP_CACHE_PREFIX": settings.cache_prefix}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    reset_resources(close=False)
    try:
        s1 = as_requests([(e, s, "s-1") for e, s, _ in selections(events, 30, start=3000)])
        s2 = as_requests([(e, s, "s-2") for e, s, _ in selections(events, 30, start=3000)])
        plain = as_requests(selections(events, 30, start=3000))
        for batch in (s1, s2, plain):
            cached.batch_predict(batch)
        params = {"min_edge": 0.03, "staking": "flat"}
        evaluations = {sid: cached.evaluate_strategy(sid, params) for sid in ("s-1", "s-2")}
        assert evaluations["s-1"] == ml.evaluate_strategy("s-1", params)
        # When feedback about s-1 goes through the pipeline
        Publisher(resources().redis, get_settings()).publish(valid_event(1, strategy="s-1"))
        res = resources()
        consumer = StreamConsumer(client=res.redis, sessions=res.sessions, settings=res.settings, name="acc")
        consumer.ensure_groups()
        assert consumer.poll_once(block_ms=100).inserted == 1
        flusher = FeedbackFlusher(sessions=res.sessions, settings=res.settings, client_factory=lambda: ml,
                                  on_submitted=invalidate_strategy_cache)
        assert flusher.flush_once().submitted == 1
        # Then s-1's entries are gone and s-2's and the plain ones are still hits
        calls, evaluated = batch_predict_calls(), evaluate_calls()
        hits = metric("edgeloop_prediction_cache_hits_total", kind="prediction")
        cached.batch_predict(s2)
        cached.batch_predict(plain)
        assert cached.evaluate_strategy("s-2", params) == evaluations["s-2"]
        assert (batch_predict_calls(), evaluate_calls()) == (calls, evaluated)
        assert metric("edgeloop_prediction_cache_hits_total", kind="prediction") - hits == 60
        cached.batch_predict(s1)
        cached.evaluate_strategy("s-1", params)
        assert (batch_predict_calls(), evaluate_calls()) == (calls + 1, evaluated + 1)
    finally:
        reset_resources(close=True)


def test_redis_stopped_predictions_still_come_from_the_service_and_the_metric_says_so(service, ml):
    events = service.events
    job = as_requests(selections(events, 100, start=3300))
    with own_redis() as (url, proc):
        settings = settings_with(cache_redis_url=url, cache_prefix="acc:pred")
        cached = CachedMLClient(ml, make_redis(settings), settings)
        cached.batch_predict(job)
        cached.flush()  # stored (written behind) before Redis stops
        proc.terminate()
        proc.wait(10)
        bypassed = metric("edgeloop_prediction_cache_bypass_total", kind="prediction", reason="redis_unavailable")
        assert cached.batch_predict(job) == ml.batch_predict(job)
        assert metric("edgeloop_prediction_cache_bypass_total", kind="prediction",
                      reason="redis_unavailable") == bypassed + 100


def test_a_full_cache_redis_costs_no_prediction_and_no_lock(service, ml):
    """The cache's Redis at maxmemory (refusing writes: the worst a cache Redis can do), the main
    Redis not: misses are answered by the service, and locks and beat claims, which live on the
    main Redis, still work."""
    from edgeloop.core.redis_connect import client_for
    from edgeloop.workers.beat import claim
    from edgeloop.services.locks import lease

    events = service.events
    job = as_requests(selections(events, 100, start=3200))
    with own_redis(*FULL_REDIS) as (cache_url, _), own_redis() as (main_url, _):
        # Given a cache Redis that refuses every write
        assert fill_to_maxmemory(cache_url) > 0
        settings = settings_with(redis_url=main_url, cache_redis_url=cache_url, cache_prefix=PREFIX)
        cached = CachedMLClient(ml, make_redis(settings), settings)
        refused = metric("edgeloop_prediction_cache_bypass_total", kind="prediction", reason="redis_error")
        # When predictions are asked for: the service answers them, and the bypass is counted
        assert cached.batch_predict(job) == ml.batch_predict(job)
        assert metric("edgeloop_prediction_cache_bypass_total", kind="prediction", reason="redis_error") == refused + 100
        # Then the main Redis still takes leases and beat claims
        main = client_for(settings)
        with lease(main, "lifecycle", 5.0) as held:
            assert main.get(held.key) == held.token.encode()
        assert claim(main, "retrain", 60.0) and not claim(main, "retrain", 60.0)
        main.close()
        cached.close()
