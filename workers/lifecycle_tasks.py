"""Scheduled lifecycle tasks: retraining when enough feedback arrived, the ranking refresh, and
the re-check of active strategies on newer data (``edgeloop.services.recheck``).

The re-check is two tasks, like discovery: ``edgeloop.strategies.recheck`` backtests the due
strategies (few: only the active ones) and publishes their results to the stream;
``edgeloop.strategies.recheck_finish`` re-schedules itself until the results are stored, then
judges them.

Both answer "the ML service is down" with a result, not an exception: beat runs them again on
the next period, which is the backoff, and a task retried on its own would pile up behind it.
"""

from __future__ import annotations

import time
import uuid

from edgeloop.core.errors import MLServiceUnavailable, ModelNotTrained
from edgeloop.mlclient import get_ml_client
from edgeloop.services import recheck
from edgeloop.services.lifecycle import refresh
from edgeloop.services.retraining import maybe_retrain
from edgeloop.services.runtime import resources
from edgeloop.workers.app import app
from edgeloop.workers.backtest_tasks import run_backtest_task

RECHECK_POLL_S = 1.0


@app.task(name="edgeloop.ml.retrain")
def retrain(force: bool = False, wait_s: float = 0.0) -> dict:
    """Ask the ML service to train the feedback model if ≥ ``min_new_feedback`` samples are new."""
    res = resources()
    try:
        return maybe_retrain(res.sessions, get_ml_client(), res.settings, force=force, wait_s=wait_s,
                             reason="forced" if force else "schedule").as_dict()
    except MLServiceUnavailable as exc:
        return {"triggered": False, "error": str(exc)}


@app.task(name="edgeloop.rankings.refresh")
def refresh_rankings() -> dict:
    """Score every strategy, apply the activation rules, store a ranking."""
    res = resources()
    try:
        return refresh(res.sessions, get_ml_client(), res.settings, lock_client=res.redis,
                       only_if_changed=True).summary()
    except (MLServiceUnavailable, ModelNotTrained) as exc:
        return {"ranking_id": None, "error": str(exc)}


@app.task(name="edgeloop.strategies.recheck")
def recheck_active() -> dict:
    """Backtest every active strategy on the newest seasons it was not judged on; the judging
    follows once the results are stored."""
    res = resources()
    due = recheck.due(res.sessions, res.settings)
    ids, errors = [], []
    for d in due:
        out = run_backtest_task(d.strategy, d.start.isoformat(), d.end.isoformat(), list(res.settings.discovery_leagues))
        if out["ok"]:
            ids.append(out["backtest_id"])
        else:
            errors.append(f"{d.strategy['strategy_id']}: {out['error']}"[:300])
    run_id = f"{recheck.RECHECK_RUN_PREFIX}{uuid.uuid4().hex[:12]}"
    if ids:
        recheck_finish.apply_async((run_id, ids, time.time()), countdown=RECHECK_POLL_S)
    return {"run_id": run_id, "due": len(due), "backtests": len(ids), "errors": errors}


@app.task(name="edgeloop.strategies.recheck_finish", bind=True, max_retries=None)
def recheck_finish(self, run_id: str, backtest_ids: list[str], started: float) -> dict:
    res = resources()
    results = recheck.stored(res.sessions, backtest_ids)
    if len(results) < len(backtest_ids) and time.time() - started < res.settings.discovery_backtest_timeout_s:
        raise self.retry(countdown=RECHECK_POLL_S)
    try:
        outcome = recheck.judge(res.sessions, get_ml_client(), res.settings, results, run_id, lock_client=res.redis)
    except MLServiceUnavailable as exc:
        return {"run_id": run_id, "error": str(exc)}
    return {"run_id": run_id, "judged": len(outcome.evaluations), "retired": outcome.changed_to("inactive"),
            "missing": len(backtest_ids) - len(results)}
