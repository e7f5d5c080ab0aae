"""Faults between the feedback flusher and the ML service: real Celery worker processes, real
Redis and PostgreSQL, the real ML service over gRPC (the lock test alone uses a stand-in client,
to look at the database while a call is in flight)."""

from __future__ import annotations

import json
import subprocess
import sys

import psycopg
import pytest

from edgeloop.processes import ROOT, free_port
from edgeloop.core.settings import settings_with
from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.schema.repository import count_rejected, count_unsubmitted
from tests.support.feedback import store_results
from tests.support.ml import FakeMLClient
from tests.support.pipeline import Store, publish_in_subprocess, scrape, with_ml
from tests.support.processes import celery_worker, ml_server, wait_until
from edgeloop.proto.events_pb2 import BacktestFinished
from edgeloop.services.feedback import FeedbackFlusher

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def feedback_status(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`edgeloop feedback status`: what it knows on stdout, even when the ML service refuses it
    (then also one line on stderr and a non-zero exit)."""
    return subprocess.run([sys.executable, "-m", "edgeloop", "feedback", "status", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def backoff_codes(env: dict[str, str]) -> list[str]:
    return [b["code"] for b in json.loads(feedback_status(env, "--json").stdout)["backing_off"]]


def failures(metrics_port: int, code: str) -> float:
    return scrape(metrics_port).get(f"edgeloop_feedback_failed_total{{action=back_off,code={code}}}", 0)


def test_a_token_mismatch_then_an_outage_reject_nothing_and_everything_arrives_once(pipeline_env, tmp_path):
    store = Store(pipeline_env["EDGELOOP_DATABASE_URL"])
    metrics_port, port = free_port(), free_port()
    env = with_ml({**pipeline_env, "EDGELOOP_ML_AUTH_TOKEN": "the-new-token", "EDGELOOP_METRICS_PORT": str(metrics_port),
                   "EDGELOOP_PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}, port)
    with celery_worker(env, "w1", tmp_path) as worker:
        # Given workers with a new token and an ML service that still expects the old one
        with ml_server(settings_with(ml_auth_token="the-old-token"), port=port):
            publish_in_subprocess(env, 0, 500)
            wait_until(lambda: store.results() == 500, 60, 0.2, "stored")
            # Then the flusher backs off on UNAUTHENTICATED, retrying, counted by code, shown by the CLI
            wait_until(lambda: failures(metrics_port, "UNAUTHENTICATED") >= 4, 30, 0.3, "four refused tries")
            assert backoff_codes(env) == ["UNAUTHENTICATED"]
            shown = feedback_status(env)
            assert "backing off: UNAUTHENTICATED since" in shown.stdout and "next try in" in shown.stdout, shown
            assert shown.returncode == 1 and "UNAUTHENTICATED" in shown.stderr
            assert (store.submitted(), store.rejected()) == (0, 0)
            # And it said so once, not once per try
            assert worker.log().count("feedback: backing off: UNAUTHENTICATED") == 1
        # When the service goes away
        # Then that is a new state, and still nothing is set aside
        wait_until(lambda: backoff_codes(env) == ["UNAVAILABLE"], 30, 0.3, "backing off on UNAVAILABLE")
        assert (store.submitted(), store.rejected()) == (0, 0)
        # When it comes back with the new token
        with ml_server(settings_with(ml_auth_token="the-new-token"), port=port):
            # Then every result is submitted exactly once, none rejected, and the state is clear
            wait_until(lambda: store.submitted() == 500, 60, 0.3, "all submitted")
            assert (store.samples(), store.batched(), store.rejected()) == (500, 500, 0)
            shown = feedback_status(env)
            assert shown.returncode == 0 and "none backing off" in shown.stdout, shown
        log = worker.log()
        assert log.count("feedback: backing off:") == 2 and log.count("takes feedback again") == 1
        assert worker.alive()


def test_a_batch_over_the_message_limit_is_split_and_submitted(pipeline_env, tmp_path):
    store = Store(pipeline_env["EDGELOOP_DATABASE_URL"])
    env = {**pipeline_env, "EDGELOOP_FEEDBACK_BATCH_SIZE": "100"}
    # Given 300 results of about 2 kB each, published before a worker runs, so that the
    # flusher sees full batches of 100 (about 200 kB, three times the service's limit)
    publish_in_subprocess(env, 0, 300, pad=2_000)
    with ml_server(settings_with(ml_max_message_bytes=64 * 1024)) as (_, port), \
            celery_worker(with_ml(env, port), "w1", tmp_path) as worker:
        # Then every result is submitted once, in batches that fit, and none is rejected
        wait_until(lambda: store.submitted() == 300, 60, 0.3, "all submitted")
        assert (store.samples(), store.batched(), store.rejected()) == (300, 300, 0)
        assert store.largest_batch() <= 32
        assert worker.log().count("over the ML service's message limit") == 1


def test_each_call_locks_only_the_rows_it_carries(pg_url):
    """While a call is in flight, another connection finds exactly that call's rows locked, even
    while a refused batch is narrowed down call by call."""
    sessions = make_sessionmaker(make_engine(pg_url))
    store_results(sessions, 30)
    seen: list[tuple[set[str], set[str]]] = []

    class Probing(FakeMLClient):
        def submit_backtest_feedback(self, results, batch_id):
            with psycopg.connect(pg_url) as other:
                waiting = {r[0] for r in other.execute(
                    "SELECT backtest_id FROM backtest_results JOIN feedback_pending ON result_id = id")}
                free = {r[0] for r in other.execute(
                    "SELECT backtest_id FROM backtest_results JOIN feedback_pending ON result_id = id "
                    "FOR UPDATE OF feedback_pending SKIP LOCKED")}
            carried = {BacktestFinished.FromString(r).backtest_id for r in results}  # sent as stored
            seen.append((waiting - free, carried))
            return super().submit_backtest_feedback(results, batch_id)

    client = Probing(refuse={"bt-00000013"})
    flusher = FeedbackFlusher(sessions=sessions, settings=settings_with(database_url=pg_url, feedback_batch_size=10),
                              client_factory=lambda: client)
    assert flusher.flush_all() == 29
    assert len(seen) > 5  # the refused batch took several calls
    assert all(locked == carried for locked, carried in seen)
    with sessions() as s:
        assert (count_unsubmitted(s), count_rejected(s)) == (0, 1)
