"""The operator commands against a running system (real worker, Redis, PostgreSQL, ML server):
ml status, feedback status|retrain|submit, tasks run, strategies list|show."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgeloop.producers import Publisher
from tests.support.events import valid_event
from tests.support.processes import ROOT, celery_worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run(env, *args) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "edgeloop", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def js(env, *args) -> dict:
    return json.loads(run(env, *args, "--json").stdout.strip().splitlines()[-1])


WINDOWS = (("2016-08-01", "2019-06-30"), ("2019-08-01", "2020-05-31"), ("2020-08-01", "2021-05-31"))


def later_windows(i: int) -> dict:
    event = valid_event(i, strategy=f"strat-{i % 10:02d}")
    event["params"] = {"min_edge": 0.01 * (i % 10), "staking": "flat"}
    event["window_start"], event["window_end"] = WINDOWS[i // 10]
    return event


def test_operator_commands_on_a_running_system(ml, tmp_path):
    env = {**ml, "EDGELOOP_MIN_NEW_FEEDBACK": "20"}
    with celery_worker(env, "w1", tmp_path):
        # Given 30 backtests (10 strategies, each on three successive windows) published and
        # submitted by the worker: the strategy model learns from the later windows' results
        Publisher().publish_many(later_windows(i) for i in range(30))
        wait_until(lambda: js(env, "feedback", "status")["service_feedback_samples"] == 30, 60, 0.5, "30 samples")

        status = js(env, "ml", "status")
        assert status["health"]["status"] == "SERVING" and status["health"]["serving"]
        assert status["stream"]["backtests.finished"]["length"] == 30 and status["pending_feedback"] == 0
        assert status["configuration"]["activation_threshold"] == 0.65 and "hit_ratio" in status["cache"]
        text = run(env, "ml", "status").stdout
        assert "ML service" in text and "stream backtests.finished: 30 entries" in text and "pending feedback: 0" in text

        fb = js(env, "feedback", "status")
        assert (fb["pending_feedback"], fb["new_since_last_training"], fb["retrain_due"]) == (0, 30, True)
        # When retraining is asked for: it trains once, then there is nothing new to train on
        trained = js(env, "feedback", "retrain", "--wait")
        assert trained["triggered"] and trained["job_status"] == "succeeded" and trained["model_versions"]
        assert js(env, "feedback", "status")["new_since_last_training"] == 0
        again = js(env, "feedback", "retrain")
        assert not again["triggered"] and "0 new feedback samples < 20" in again["reason"]
        assert js(env, "feedback", "submit", "--wait") == {"submitted": 0, "pending": 0}

        # When the ranking refresh runs once on the worker: a ranking reads verdicts, and no
        # discovery run has judged any of these strategies on a validation window
        ranked = js(env, "tasks", "run", "edgeloop.rankings.refresh", "--wait")
        assert ranked["state"] == "SUCCESS" and ranked["result"]["evaluated"] == 0
        assert ranked["result"]["unevaluable"] == 10
        listed = js(env, "strategies", "list")
        assert len(listed) == 10
        shown = js(env, "strategies", "show", listed[0]["strategy_id"])
        assert shown["evidence"] == {"selection": None, "validation": None, "live": None} and shown["rankings"] == []
        text = run(env, "strategies", "show", listed[0]["strategy_id"]).stdout
        assert [line.split() for line in text.splitlines() if "evidence" in line] == [
            [kind, "evidence", "none", "yet"] for kind in ("selection", "validation", "live")]
        assert js(env, "strategies", "deactivate", listed[0]["strategy_id"])["status"] == "inactive"
        assert "edgeloop.discovery.run" in js(env, "tasks", "list")
