"""Scheduled lifecycle tasks: retraining when enough feedback arrived, and the ranking refresh.

Both answer "the ML service is down" with a result, not an exception: beat runs them again on
the next period, which is the backoff, and a task retried on its own would pile up behind it.
"""

from __future__ import annotations

from edgeloop.core.errors import MLServiceUnavailable, ModelNotTrained
from edgeloop.mlclient import get_ml_client
from edgeloop.services.lifecycle import refresh
from edgeloop.services.retraining import maybe_retrain
from edgeloop.services.runtime import resources
from edgeloop.workers.app import app


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
