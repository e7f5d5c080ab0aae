"""The scheduled live-predictions refresh (``edgeloop.services.predictions``)."""

from __future__ import annotations

from datetime import date

from edgeloop.core.errors import MLServiceUnavailable
from edgeloop.mlclient import get_cached_ml_client
from edgeloop.services.predictions import refresh_predictions
from edgeloop.services.runtime import resources
from edgeloop.workers.app import app


@app.task(name="edgeloop.predictions.refresh")
def refresh_predictions_task(as_of: str | None = None) -> dict:
    """Predict the upcoming events for every active strategy, through the shared cache."""
    res = resources()
    try:
        return refresh_predictions(res.sessions, get_cached_ml_client(), res.settings,
                                   date.fromisoformat(as_of) if as_of else None)
    except MLServiceUnavailable as exc:
        return {"stored": 0, "error": str(exc)}
