"""The event pipeline end to end: producer process → Redis stream → Celery worker process →
database → ML service over gRPC. Real Redis, PostgreSQL (and SQLite), Celery, gRPC."""

from __future__ import annotations

import json
import time

import pytest
import redis
from kombu import Connection

from tests.support.events import malformed_payloads, valid_event
from tests.support.pipeline import Store, publish_in_subprocess, scrape, with_ml
from tests.support.processes import celery_worker, ml_server, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

def test_ten_thousand_events_stored_and_submitted_once_on_postgresql(pipeline_env, tmp_path):
    store = Store(pipeline_env["EDGELOOP_DATABASE_URL"])
    from bench._harness import free_port

    metrics_port = free_port()
    env = {**pipeline_env, "EDGELOOP_METRICS_PORT": str(metrics_port),
           "EDGELOOP_PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    with ml_server() as (_, port), celery_worker(with_ml(env, port), "w1", tmp_path) as worker:
        # Given 10,000 events published by a separate producer process
        publish_in_subprocess(pipeline_env, 0, 10_000)
        # Then every one is stored and confirmed by the ML service exactly once
        wait_until(lambda: store.submitted() == 10_000, 120, 0.5, "10,000 submitted")
        assert store.results() == 10_000
        assert store.samples() == 10_000
        assert store.batched() == 10_000
        # When the same events are published again
        publish_in_subprocess(pipeline_env, 0, 10_000)
        r = redis.Redis.from_url(pipeline_env["EDGELOOP_REDIS_URL"])
        wait_until(lambda: (lambda g: g["lag"] == 0 and g["pending"] == 0)(
            r.xinfo_groups("backtests.finished")[0]), 60, 0.5, "duplicates consumed")
        # Then nothing changes
        assert (store.results(), store.submitted(), store.samples(), store.batched()) == (10_000,) * 4
        assert worker.alive(), worker.log()[-3000:]
        # And the worker's metrics say the same (multiprocess mode, summed over processes)
        m = scrape(metrics_port)
        assert m["edgeloop_events_ingested_total"] == 10_000
        assert m["edgeloop_events_duplicate_total"] == 10_000
        assert m["edgeloop_feedback_submitted_total"] == 10_000
        assert m["edgeloop_stream_backlog{stream=backtests.finished}"] == 0
        assert m["edgeloop_stream_pending{stream=backtests.finished}"] == 0
        assert "edgeloop_prediction_cache_entries" in m


def test_sqlite_store(pipeline_env, sqlite_url, tmp_path):
    env = {**pipeline_env, "EDGELOOP_DATABASE_URL": sqlite_url}
    store = Store(sqlite_url)
    from edgeloop.core.settings import Settings

    with ml_server(Settings(database_url=sqlite_url)) as (_, port), \
            celery_worker(with_ml(env, port), "w1", tmp_path):
        publish_in_subprocess(env, 0, 1_000)
        wait_until(lambda: store.submitted() == 1_000, 60, 0.5, "1,000 submitted")
        assert store.results() == 1_000 and store.samples() == 1_000 and store.batched() == 1_000


def test_worker_killed_mid_run_loses_nothing(pipeline_env, tmp_path):
    store = Store(pipeline_env["EDGELOOP_DATABASE_URL"])
    env = {**pipeline_env, "EDGELOOP_INGEST_BATCH_SIZE": "200"}
    with ml_server() as (_, port):
        env = with_ml(env, port)
        with celery_worker(env, "victim", tmp_path) as victim:
            publish_in_subprocess(env, 0, 20_000)
            # Given a worker in the middle of the run
            wait_until(lambda: store.results() > 500, 60, 0.05, "victim started storing")
            # When it is killed with SIGKILL (main process and pool)
            victim.kill()
        stored_at_kill = store.results()
        assert stored_at_kill < 20_000, "the victim finished before it could be killed"
        # Then another worker claims what it left pending and finishes
        with celery_worker(env, "rescuer", tmp_path):
            wait_until(lambda: store.submitted() == 20_000, 120, 0.5, "20,000 submitted")
        assert store.results() == 20_000 and store.samples() == 20_000


def test_ml_service_down_then_back_catches_up_alone(pipeline_env, tmp_path):
    store = Store(pipeline_env["EDGELOOP_DATABASE_URL"])
    with ml_server() as (_, port):
        pass  # learn a free port, then leave it closed: the service is down
    env = with_ml(pipeline_env, port)
    with celery_worker(env, "w1", tmp_path) as worker:
        # Given events arriving while the ML service is down
        publish_in_subprocess(env, 0, 2_000)
        wait_until(lambda: store.results() == 2_000, 60, 0.2, "stored while ML is down")
        time.sleep(20)
        assert store.submitted() == 0
        # When the service starts 20 s later on its address
        with ml_server(port=port):
            # Then everything is submitted without anyone acting
            wait_until(lambda: store.submitted() == 2_000, 60, 0.5, "caught up")
        assert store.samples() == 2_000 and store.batched() == 2_000
        assert worker.alive()


def test_malformed_events_are_dead_lettered_and_the_worker_keeps_going(pipeline_env, tmp_path):
    store = Store(pipeline_env["EDGELOOP_DATABASE_URL"])
    r = redis.Redis.from_url(pipeline_env["EDGELOOP_REDIS_URL"])
    bad = malformed_payloads(1_000)
    with ml_server() as (_, port), celery_worker(with_ml(pipeline_env, port), "w1", tmp_path) as worker:
        pipe = r.pipeline(transaction=False)
        for i, (_, payload) in enumerate(bad):
            pipe.xadd("backtests.finished", {"event": payload})
            pipe.xadd("backtests.finished", {"event": json.dumps(valid_event(i))})
        pipe.execute()
        wait_until(lambda: r.xlen("backtests.dead") == 1_000 and store.submitted() == 1_000, 60, 0.2,
                   "all sorted")
        reasons = [f[b"reason"].decode() for _, f in r.xrange("backtests.dead")]
        assert sorted(reasons) == sorted(reason for reason, _ in bad)
        assert worker.alive()


def test_pickle_messages_are_refused(pipeline_env, tmp_path):
    r = redis.Redis.from_url(pipeline_env["EDGELOOP_REDIS_URL"])
    with celery_worker(pipeline_env, "w1", tmp_path) as worker:
        wait_until(lambda: "ready" in worker.log(), 30, 0.2, "worker ready")
        # Given a task message serialised with pickle, sent straight to the queue
        with Connection(pipeline_env["EDGELOOP_REDIS_URL"]) as conn:
            producer = conn.Producer(serializer="pickle")
            producer.publish({"task": "edgeloop.feedback.flush", "id": "pickled-1", "args": [], "kwargs": {}},
                             routing_key="edgeloop", headers={"task": "edgeloop.feedback.flush", "id": "pickled-1",
                                                             "lang": "py"},
                             declare=[conn.SimpleQueue("edgeloop").queue])
        # Then the worker refuses to decode it and never runs the task
        wait_until(lambda: "pickle" in worker.log().lower() and "refus" in worker.log().lower(), 30, 0.2,
                   "refusal logged")
        assert r.get("celery-task-meta-pickled-1") is None
        assert worker.alive()


def test_worker_refuses_an_unmigrated_database(pipeline_env, tmp_path):
    env = {**pipeline_env, "EDGELOOP_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    with celery_worker(env, "w1", tmp_path) as worker:
        worker.proc.wait(60)
        assert worker.proc.returncode != 0
        assert "refuses to start" in worker.log() and "edgeloop db upgrade" in worker.log()
