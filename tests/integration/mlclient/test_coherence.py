"""Coherence of the two-level cache (issue 16): real Redis, the real ML service on port 0 (trained
on shipped seasons), real worker processes reading through their level 1 in a loop while a model
is promoted and rolled back and feedback about a strategy arrives. After the bound
(``cache_local_bound_s``) no process serves a superseded answer; Redis killed, level 1 stops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import redis

from edgeloop.core.settings import settings_with
from edgeloop.mlclient import keys
from edgeloop.mlclient.cache import CachedMLClient, invalidate_strategies, make_redis
from edgeloop.mlservice import notify, registry
from tests.integration.mlclient.support import PREFIX, as_requests, metric, own_redis, selections, train
from tests.support.processes import ROOT, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BOUND_S = 0.1  # the default cache_local_bound_s
PARAMS = {"min_edge": 0.03, "staking": "flat"}


class Readers:
    """``coherence_worker`` processes, warmed up together, reading until ``stop``."""

    def __init__(self, settings, job: dict, n: int) -> None:
        env = {**os.environ, "EDGELOOP_CONFIG": os.devnull, "EDGELOOP_REDIS_URL": settings.redis_url,
               "EDGELOOP_ML_GRPC_TARGET": settings.ml_grpc_target, "EDGELOOP_CACHE_PREFIX": settings.cache_prefix,
               "EDGELOOP_ML_TIMEOUT_S": "30"}
        self.procs = [subprocess.Popen([sys.executable, "-m", "tests.integration.mlclient.coherence_worker"],
                                       cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                      for _ in range(n)]
        for proc in self.procs:
            proc.stdin.write(json.dumps(job) + "\n")
            proc.stdin.flush()
        for proc in self.procs:
            assert proc.stdout.readline().strip() == "ready"
        self._send("go")

    def _send(self, line: str) -> None:
        for proc in self.procs:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()

    def stop(self) -> list[dict]:
        self._send("stop")
        results = [json.loads(proc.stdout.readline()) for proc in self.procs]
        for proc in self.procs:
            proc.stdin.close()
            assert proc.wait(30) == 0
        return results


def published_at(client: redis.Redis) -> float:
    """When the last promotion or rollback was published: the generation is its time in ns."""
    return int(client.get(keys.generation_key(PREFIX))) / 1e9


def after(rounds: list, t: float) -> list:
    return [r for r in rounds if r[0] >= t]


def report(name: str, results: list[dict]) -> None:
    delays = sorted(d for r in results for d in r["delays"])
    if delays:
        print(f"{name}: {len(delays)} invalidations applied, delay p50 {delays[len(delays) // 2] * 1000:.1f} ms, "
              f"max {delays[-1] * 1000:.1f} ms; rounds {[len(r['rounds']) for r in results]}")


def test_promotion_and_rollback_reach_every_process_within_the_bound(service, settings, ml, redis_client):
    job = as_requests(selections(service.events, 150, start=3400 - 150))
    before = ml.batch_predict(job)
    old = {p.model_version for p in before}
    back = sorted(old)[0]  # the version rolled back to, later
    its_events = {p.event_id for p in before if p.model_version == back}
    # Given four processes whose level 1 holds the serving versions' answers, reading in a loop
    readers = Readers(settings, {"requests": [[r.event_id, r.selection, ""] for r in job]}, 4)
    try:
        time.sleep(0.3)
        # When new champions are promoted (the training replica refreshes, then publishes)
        new = set(train(ml).model_versions)
        promoted = published_at(redis_client)
        assert {p.model_version for p in ml.batch_predict(job)} <= new
        time.sleep(0.5)
        # and one old version is rolled back to (the service reloads, then the cache is told)
        superseded = {p.model_version for p in ml.batch_predict(job) if p.event_id in its_events}
        assert superseded and back not in superseded
        registry.rollback(service.server.context.sessions, back)
        service.server.servicer.predictor.refresh()
        notify.models_changed(settings)
        rolled_back = published_at(redis_client)
        time.sleep(0.5)
    finally:
        results = readers.stop()
    report("promotion + rollback", results)
    for r in results:
        between = [x for x in after(r["rounds"], promoted + BOUND_S) if x[1] < rolled_back]
        last = after(r["rounds"], rolled_back + BOUND_S)
        # Then after the bound no process answers from a superseded version
        assert between and last, "each process kept reading"
        assert not {v for x in between for v in x[2]} & old
        assert back in {v for x in last for v in x[2]}
        assert not {v for x in last for v in x[2]} & superseded
        # and the new answers came back to level 1 (the readers did not just fall back to Redis)
        assert any(x[4] == len(job) for x in last)
        assert len(r["delays"]) >= 2


def test_feedback_about_a_strategy_leaves_every_process_level_1_within_the_bound(service, settings, ml, redis_client):
    pairs = selections(service.events, 30, start=3000)
    job = {"requests": [[e, s, "s-1"] for e, s, _ in pairs] + [[e, s, "s-2"] for e, s, _ in pairs],
           "evaluate": [["s-1", PARAMS], ["s-2", PARAMS]]}
    total = len(job["requests"]) + 2
    readers = Readers(settings, job, 4)
    try:
        time.sleep(0.3)
        # When feedback about s-1 is stored and the flusher invalidates its entries
        from tests.integration.ml.factories import finished
        ml.submit_backtest_feedback([finished("coh-1", strategy_id="s-1")], batch_id="coh")
        sent = time.time()
        invalidate_strategies(redis_client, ["s-1"], PREFIX)
        time.sleep(0.5)
    finally:
        results = readers.stop()
    report("strategy feedback", results)
    for r in results:
        rounds = r["rounds"]
        assert all(x[4] == total for x in rounds if x[1] < sent), "level 1 answered everything before"
        first_after_bound = after(rounds, sent + BOUND_S)[0]
        window = [x for x in rounds if x[1] >= sent and x[0] <= first_after_bound[0]]
        # Then by the bound s-1's 31 answers (30 predictions, 1 evaluation) left level 1, and only they:
        # s-2's 31 are still level-1 hits. The invalidation may land inside a round (its
        # predictions already answered, its evaluations not), so s-1's misses may be split over
        # two rounds: counted over the window, they are at least 31
        assert sum(total - x[4] for x in window) >= 31, [x[4] for x in window]
        assert all(x[4] >= total - 31 for x in after(rounds, sent) if x[4]), "only s-1's entries were dropped"


def test_redis_killed_level_1_stops_within_the_bound_and_the_service_answers(service, ml):
    job = as_requests(selections(service.events, 100, start=2800))
    with own_redis() as (url, proc):
        settings = settings_with(cache_redis_url=url, cache_prefix=PREFIX, cache_local_bound_s=BOUND_S)
        cached = CachedMLClient(ml, make_redis(settings), settings)
        try:
            assert cached.coherence.wait_serving(5)
            expected = cached.batch_predict(job)
            local = metric("edgeloop_prediction_cache_local_hits_total", kind="prediction")
            assert cached.batch_predict(job) == expected
            assert metric("edgeloop_prediction_cache_local_hits_total", kind="prediction") - local == 100
            # (the first batch's store, written behind, done: failing after the kill it would open
            # the cache's Redis breaker, and the lookups below would skip Redis, not find it down)
            cached.flush()
            # When Redis dies while level 1 holds every answer
            proc.kill()
            killed = time.monotonic()
            proc.wait(10)
            # Then within the bound level 1 stops answering, and every answer still comes (from the service)
            served_late = 0
            while time.monotonic() < killed + 1.0:
                local = metric("edgeloop_prediction_cache_local_hits_total", kind="prediction")
                started = time.monotonic()
                assert cached.batch_predict(job) == expected
                if started > killed + BOUND_S:
                    served_late += metric("edgeloop_prediction_cache_local_hits_total", kind="prediction") - local
            assert served_late == 0
            assert len(cached.local) == 0  # and it was emptied once the connection error was seen
            assert metric("edgeloop_prediction_cache_bypass_total", kind="prediction", reason="redis_unavailable") > 0
        finally:
            cached.close()


def test_level_1_serves_again_once_redis_is_back(ml, service):
    job = as_requests(selections(service.events, 50, start=2700))
    with own_redis() as (url, proc):
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        settings = settings_with(cache_redis_url=url, cache_prefix=PREFIX, cache_local_bound_s=BOUND_S,
                                 cache_redis_retry_s=0.1)
        cached = CachedMLClient(ml, make_redis(settings), settings)
        try:
            assert cached.coherence.wait_serving(5)
            proc.kill()
            proc.wait(10)
            wait_until(lambda: not cached.coherence.serving(), 2, 0.01, "level 1 to stop")
            with own_redis(port=port):
                assert cached.coherence.wait_serving(5)
                cached.batch_predict(job)
                local = metric("edgeloop_prediction_cache_local_hits_total", kind="prediction")
                cached.batch_predict(job)
                assert metric("edgeloop_prediction_cache_local_hits_total", kind="prediction") - local == 50
        finally:
            cached.close()
