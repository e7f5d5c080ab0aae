"""Pipeline tasks. Other task modules are listed in ``edgeloop.workers.app.TASK_MODULES``."""

from __future__ import annotations

from edgeloop.core.errors import FeedbackDeferred
from edgeloop.mlclient import get_ml_client
from edgeloop.services.feedback import FeedbackFlusher
from edgeloop.services.runtime import resources
from edgeloop.workers.app import app


@app.task(name="edgeloop.feedback.flush")
def flush_feedback(budget_s: float = 5.0) -> dict:
    """Submit pending feedback now. The ingest consumers do this continuously; this task is
    for beat (a safety net when no consumer runs) and for `edgeloop feedback submit`."""
    res = resources()
    flusher = FeedbackFlusher.clearing_cache(sessions=res.sessions, settings=res.settings,
                                             client_factory=get_ml_client)
    try:
        return {"submitted": flusher.flush_all(budget_s=budget_s), "error": None}
    except FeedbackDeferred as exc:
        # Not retried here: beat runs this again on the next tick, which is the backoff
        # that cannot pile up messages while the service is down.
        return {"submitted": 0, "error": str(exc), "code": exc.code}
