"""A backtest run by a worker travels the same path as any outside result: event on the
stream → stored → feedback confirmed by the ML service (real worker, Redis, DB, gRPC)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.schema.mlstore import FeedbackSample
from edgeloop.schema.pipeline import BacktestResult
from tests.support.processes import ROOT, celery_worker, ml_server, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_backtest_run_through_a_worker_ends_as_a_submitted_result(env, tmp_path):
    from edgeloop.workers.app import app

    sessions = make_sessionmaker(make_engine(env["EDGELOOP_DATABASE_URL"]))
    strategy = {"name": "value-away", "price_source": "max", "selections": ["away"], "min_edge": 0.03}
    with ml_server() as (_, port):
        worker_env = {**env, "EDGELOOP_ML_GRPC_TARGET": f"127.0.0.1:{port}", "PYTHONPATH": str(ROOT),
                      "EDGELOOP_FEEDBACK_FLUSH_INTERVAL_S": "0.2"}
        with celery_worker(worker_env, "bt", tmp_path) as worker:
            # When the backtest task runs on the worker
            out = app.send_task("edgeloop.backtest.run", args=[strategy, "2019-08-01", "2020-07-31", ["E0"]]
                                ).get(timeout=120)
            assert out["ok"], out

            # Then its result is stored and confirmed by the ML service, like any other event
            def submitted() -> bool:
                with sessions() as s:
                    row = s.scalar(select(BacktestResult).where(BacktestResult.backtest_id == out["backtest_id"]))
                    return row is not None and row.ml_feedback_submitted

            wait_until(submitted, 60, 0.2, "the worker's own result submitted")
            assert worker.alive(), worker.log()[-2000:]
    with sessions() as s:
        row = s.scalar(select(BacktestResult).where(BacktestResult.backtest_id == out["backtest_id"]))
        sample = s.scalar(select(FeedbackSample).where(FeedbackSample.backtest_id == out["backtest_id"]))
    assert row.total_bets == out["total_bets"] > 0
    assert row.roi == pytest.approx(out["roi"])
    assert sample is not None and sample.strategy_id == out["strategy_id"]
