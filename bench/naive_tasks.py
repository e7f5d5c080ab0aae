"""The naive design the ingest benchmark compares against: one Celery task per event,
doing the same work (validate, insert, submit to the ML service, mark submitted)."""

from __future__ import annotations

from datetime import datetime, timezone

from edgeloop.core.events import parse_event
from edgeloop.mlclient import get_ml_client
from edgeloop.schema.repository import insert_results, mark_processed
from edgeloop.workers.app import app
from edgeloop.services.ingest import result_row
from edgeloop.services.runtime import resources


@app.task(name="bench.naive_ingest")
def naive_ingest(payload: str) -> None:
    event = parse_event(payload)
    sessions = resources().sessions
    with sessions.begin() as session:
        insert_results(session, [result_row(event, "", datetime.now(timezone.utc))])
    response = get_ml_client().submit_backtest_feedback([event.message], event.message.backtest_id)
    with sessions.begin() as session:
        mark_processed(session, response.stored_backtest_ids)
