"""Discovery acceptance: on the shipped data, a run generates, backtests on the selection window
(on a real worker), validates the candidates that pass selection on the validation window,
judges them on that evidence alone and stores its report; a second run builds on the first.
Real PostgreSQL, Redis, Celery worker, ML gRPC server; the CLI as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from edgeloop.mlclient.client import MLClient
from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.core.settings import get_settings
from edgeloop.schema.lifecycle import DiscoveryReport, StrategyEvidence, StrategyRanking
from edgeloop.schema.pipeline import Strategy
from tests.support.processes import ROOT, celery_worker
from edgeloop.services.retraining import wait_for_job
from edgeloop.services.windows import current_windows

pytestmark = [pytest.mark.integration, pytest.mark.slow]

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
    windows = current_windows(get_settings())  # the fixture's data dir: the shipped seasons

    with celery_worker(env, "w1", tmp_path, concurrency=2) as worker:
        # When discovery runs
        first = last_json(edgeloop(env, "discover", "--run-id", "d-first", "--wait", "--json"))

        # Then it generated, backtested on the selection window, validated the candidates that
        # passed selection on the validation window, judged them on that evidence, and reported it
        print(json.dumps(first, indent=1, default=str)[:6000])
        assert first["status"] == "succeeded"
        c = first["counts"]
        assert c["candidates"] == 40 and c["backtests_ok"] + c["backtests_failed"] == 40 and c["backtests_ok"] >= 30
        assert set(first["steps"]) >= {"submit_feedback", "retrain", "generate", "backtest", "select", "validation",
                                       "evaluate_activate", "rank_report"}
        assert all(s["status"] == "ok" and s["seconds"] >= 0 for s in first["steps"].values())
        passed = first["steps"]["select"]["details"]["passed"]
        assert c["validated"] == len(passed) == c["passed_selection"]
        with sessions() as s:
            evidence = list(s.scalars(select(StrategyEvidence)))
            selection = {e.strategy_id: e for e in evidence if e.kind == "selection"}
            validation = {e.strategy_id: e for e in evidence if e.kind == "validation"}
            assert len(selection) == c["backtests_ok"] and set(validation) == set(passed)
            assert all(e.window_start == windows.selection.start for e in selection.values())
            assert all(e.window_start == windows.validation.start and e.trials >= len(passed)
                       for e in validation.values())
            # Every activation rests on validation evidence that passed the gate
            active = list(s.scalars(select(Strategy).where(Strategy.status == "active")))
            assert len(active) == c["activated"]
            assert all(validation[a.strategy_id].passed and validation[a.strategy_id].total_bets >= 30
                       and a.composite_score >= 0.50 for a in active)
            assert all(not selection[sid].passed for sid in selection if sid not in validation)
            ranking = list(s.scalars(select(StrategyRanking).where(StrategyRanking.ranking_id == first["run_id"])))
            assert len(ranking) == c["ranked"] == len(validation)
            assert {r.backtest_id for r in ranking} == {e.backtest_id for e in validation.values()}
        top = first["top_strategies"]
        assert [t["composite_score"] for t in top] == sorted((t["composite_score"] for t in top), reverse=True)
        shown = edgeloop(env, "strategies", "show", passed[0])
        assert shown.returncode == 0 and "selection evidence" in shown.stdout and "validation evidence" in shown.stdout

        # When a second run follows
        second = last_json(edgeloop(env, "discover", "--run-id", "d-second", "--wait", "--json"))

        # Then it starts from the first: seeded by its best shrunk selection-window scores
        assert second["status"] == "succeeded", second
        gen = second["steps"]["generate"]["details"]
        with sessions() as s:
            first_ids = set(selection)
            assert gen["seeds"] and set(gen["seeds"]) <= first_ids
            second_ids = set(s.scalars(select(StrategyEvidence.strategy_id).where(StrategyEvidence.run_id == "d-second")))
            assert second_ids and not second_ids & first_ids  # new candidates
            assert s.get(DiscoveryReport, second["run_id"]).finished_at is not None
            rankings = s.scalar(select(func.count()).select_from(StrategyRanking))

        # Running a finished run again changes nothing and prints its report, steps in pipeline order
        again = edgeloop(env, "discover", "--run-id", "d-second", "--wait")
        assert again.returncode == 0 and "discovery run d-second: succeeded" in again.stdout
        order = [again.stdout.index(f"  {step} ") for step in ("submit_feedback", "retrain", "generate", "backtest",
                                                               "select", "validation", "evaluate_activate",
                                                               "rank_report")]
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
