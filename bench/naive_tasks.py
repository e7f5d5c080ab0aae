"""The naive design the ingest benchmark compares against: one Celery task per event, doing the
same work (validate, store, submit to the ML service, mark submitted).

Fair to it: every resource is per process and made once (the engine's connection pool, the
gRPC channel), each store is one plain ``INSERT … ON CONFLICT DO NOTHING`` (no temporary table
and COPY, which pay off only for batches), and the mark is one ``DELETE`` of its
``feedback_pending`` row (``mark_processed``).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from edgeloop.core.events import parse_event
from edgeloop.mlclient import get_ml_client
from edgeloop.schema.pipeline import BacktestResult, Strategy
from edgeloop.schema.repository import mark_processed
from edgeloop.services.ingest import result_row
from edgeloop.services.runtime import resources
from edgeloop.workers.app import app


@app.task(name="bench.naive_ingest")
def naive_ingest(payload: str) -> None:
    event = parse_event(payload)
    row = result_row(event, "", datetime.now(timezone.utc))
    with resources().sessions.begin() as session:
        session.execute(insert(Strategy).values(strategy_id=row["strategy_id"], name=row["strategy_name"],
                                                params=row["params"]).on_conflict_do_nothing())
        session.execute(insert(BacktestResult).values(**row).on_conflict_do_nothing())
    response = get_ml_client().submit_backtest_feedback([event.message], event.message.backtest_id)
    with resources().sessions.begin() as session:
        mark_processed(session, session.scalars(select(BacktestResult.id)
                                                .where(BacktestResult.backtest_id.in_(response.stored_backtest_ids))))
