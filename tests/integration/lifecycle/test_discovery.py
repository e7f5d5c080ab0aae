"""Discovery acceptance: on the shipped data, a run generates, backtests (on a real worker),
activates and deactivates strategies and stores its report; a second run builds on the first.
Real PostgreSQL, Redis, Celery worker, ML gRPC server; the CLI as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from edgeloop.mlclient.client import MLClient
from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.schema.lifecycle import DiscoveryReport, StrategyRanking
from edgeloop.schema.pipeline import Strategy
from tests.support.processes import ROOT, celery_worker, wait_until
from edgeloop.services.retraining import wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Backs every outsider at the average price: the bookmakers' margin on long shots makes it lose.
POOR = {"name": "long-shots-at-average", "price_source": "AVG", "probability_source": "market",
        "min_edge": -1.0, "min_odds": 6.0, "staking": "flat", "flat_stake": 1.0}


def edgeloop(env, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "edgeloop", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def last_json(proc) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def discovery_env(ml):
    # Thresholds are settings; on these efficient markets composite scores sit around 0.3–0.6,
    # so the test sets the activation bar where the shipped data can reach it.
    return {**ml, "EDGELOOP_DISCOVERY_CANDIDATES": "40", "EDGELOOP_ACTIVATION_THRESHOLD": "0.50",
            "EDGELOOP_DEACTIVATION_THRESHOLD": "0.45", "EDGELOOP_MIN_BETS_FOR_ACTIVATION": "30",
            "EDGELOOP_MIN_NEW_FEEDBACK": "10", "EDGELOOP_RETRAIN_WAIT_S": "120"}


def test_discovery_runs_twice_building_on_the_first(discovery_env, tmp_path):
    env = discovery_env
    sessions = make_sessionmaker(make_engine(env["EDGELOOP_DATABASE_URL"]))
    client = MLClient(target=env["EDGELOOP_ML_GRPC_TARGET"])
    job = client.train_models("outcome")
    assert wait_for_job(client, job.job_id, 240).status == "succeeded"

    with celery_worker(env, "w1", tmp_path, concurrency=2) as worker:
        # Given a poor strategy that an operator activated by hand
        ran = last_json(edgeloop(env, "tasks", "run", "edgeloop.backtest.run", "--arg", f"strategy={json.dumps(POOR)}",
                                 "--arg", "start=2018-08-20", "--arg", "end=2019-06-30", "--wait", "--json"))
        poor_id = ran["result"]["strategy_id"]
        def stored() -> bool:
            with sessions() as s:
                return s.get(Strategy, poor_id) is not None

        wait_until(stored, 60, 0.2, "poor strategy stored")
        assert last_json(edgeloop(env, "strategies", "activate", poor_id, "--json"))["status"] == "active"

        # When discovery runs
        first = last_json(edgeloop(env, "discover", "--run-id", "d-first", "--wait", "--json"))

        # Then it generated, backtested on the worker, activated and deactivated, and reported it
        print(json.dumps(first, indent=1, default=str)[:6000])
        assert first["status"] == "succeeded"
        c = first["counts"]
        assert c["candidates"] == 40 and c["backtests_ok"] + c["backtests_failed"] == 40 and c["backtests_ok"] >= 30
        assert set(first["steps"]) >= {"submit_feedback", "retrain", "generate", "backtest", "evaluate_activate",
                                       "deactivate", "rank_report"}
        assert all(s["status"] == "ok" and s["seconds"] >= 0 for s in first["steps"].values())
        assert poor_id in first["steps"]["deactivate"]["details"]["deactivated"]
        assert c["activated"] >= 1
        with sessions() as s:
            assert s.get(Strategy, poor_id).status == "inactive"
            active = list(s.scalars(select(Strategy).where(Strategy.status == "active")))
            assert active and all(a.composite_score >= 0.50 for a in active)
            ranking = list(s.scalars(select(StrategyRanking).where(StrategyRanking.ranking_id == first["run_id"])))
            assert len(ranking) == c["ranked"] and all(r.model_version for r in ranking)
        top = first["top_strategies"]
        assert [t["composite_score"] for t in top] == sorted((t["composite_score"] for t in top), reverse=True)

        # When a second run follows
        second = last_json(edgeloop(env, "discover", "--run-id", "d-second", "--wait", "--json"))

        # Then it starts from the first: seeded by its best strategies, a trained model, new candidates
        assert second["status"] == "succeeded", second
        gen = second["steps"]["generate"]["details"]
        with sessions() as s:
            first_ranking = list(s.scalars(select(StrategyRanking).where(StrategyRanking.ranking_id == first["run_id"])))
            first_ids = {r.strategy_id for r in first_ranking}
            best_backtest = max(first_ranking, key=lambda r: r.backtest_score).strategy_id
            assert gen["model_version"] and best_backtest in gen["seeds"] and set(gen["seeds"]) <= first_ids
            second_ids = set(s.scalars(select(StrategyRanking.strategy_id)
                                       .where(StrategyRanking.ranking_id == second["run_id"])))
            assert first_ids < second_ids  # everything ranked before, plus the new candidates
            assert s.get(DiscoveryReport, second["run_id"]).finished_at is not None
            rankings = s.scalar(select(func.count()).select_from(StrategyRanking))

        # Running a finished run again changes nothing and prints its report, steps in pipeline order
        again = edgeloop(env, "discover", "--run-id", "d-second", "--wait")
        assert again.returncode == 0 and "discovery run d-second: succeeded" in again.stdout
        order = [again.stdout.index(f"  {step} ") for step in ("submit_feedback", "retrain", "generate", "backtest",
                                                               "evaluate_activate", "deactivate", "rank_report")]
        assert order == sorted(order)
        with sessions() as s:
            assert s.scalar(select(func.count()).select_from(StrategyRanking)) == rankings
        assert worker.alive()


def test_a_failing_step_is_reported_by_name_and_the_rerun_resumes_after_it(discovery_env, tmp_path):
    sessions = make_sessionmaker(make_engine(discovery_env["EDGELOOP_DATABASE_URL"]))
    # Given more candidates than the ML service allows per request: GenerateStrategy refuses
    bad = {**discovery_env, "EDGELOOP_DISCOVERY_CANDIDATES": "500"}
    with celery_worker(bad, "w1", tmp_path):
        failed = edgeloop(bad, "discover", "--run-id", "d-resume", "--wait", "--json")
    # Then the run fails at step "generate", says so, and wrote nothing past it
    assert failed.returncode != 0 and "failed at step generate" in failed.stderr.strip().splitlines()[-1]
    report = json.loads(failed.stdout.strip().splitlines()[-1])
    assert report["status"] == "failed" and report["failed_step"] == "generate"
    assert report["steps"]["submit_feedback"]["status"] == "ok" and report["steps"]["generate"]["status"] == "failed"
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Strategy)) == 0
        assert s.scalar(select(func.count()).select_from(StrategyRanking)) == 0

    # When the same run is started again with the problem fixed
    with celery_worker(discovery_env, "w2", tmp_path, concurrency=2):
        resumed = last_json(edgeloop(discovery_env, "discover", "--run-id", "d-resume", "--wait", "--json"))
    # Then it resumes after the completed steps (not repeated) and finishes
    assert resumed["status"] == "succeeded" and resumed["failed_step"] is None
    for step in ("submit_feedback", "retrain"):
        assert resumed["steps"][step] == report["steps"][step]
    assert resumed["counts"]["candidates"] == 40
