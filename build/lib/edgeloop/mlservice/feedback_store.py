"""Durable, idempotent storage of backtest feedback as strategy-model training samples.

At-least-once delivery from the workers becomes exactly-once effect here: the unique
``backtest_id`` and ``INSERT … ON CONFLICT DO NOTHING`` make a resubmitted result a no-op,
also when two replicas receive the same batch at the same moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from edgeloop.core.errors import InvalidEvent, InvalidRequest
from edgeloop.core.events import ParsedEvent, validate_message
from edgeloop.mlservice.strategy_model import params_fingerprint
from edgeloop.proto import events_pb2
from edgeloop.schema.base import utcnow
from edgeloop.schema.bulk import insert_ignoring_duplicates
from edgeloop.schema.mlstore import FeedbackSample



@dataclass(frozen=True, slots=True)
class StoreOutcome:
    accepted: int
    duplicates: int
    stored_backtest_ids: list[str]


def validate_results(results: Sequence[events_pb2.BacktestFinished]) -> list[ParsedEvent]:
    """The pipeline's own validation (``edgeloop.core.events``), so both ends agree on what is valid.

    One invalid result rejects the whole request: the caller gets INVALID_ARGUMENT naming it
    and nothing is half-stored.
    """
    parsed = []
    for i, msg in enumerate(results):
        try:
            parsed.append(validate_message(msg))
        except InvalidEvent as exc:
            raise InvalidRequest(f"results[{i}] (backtest_id {msg.backtest_id!r}): {exc}") from None
    return parsed


def _row(event: ParsedEvent, batch_id: str, now) -> dict[str, Any]:
    return {
        **event.columns(),
        "metrics": dict(event.metrics),
        "backtest_score": float(event.backtest_score),
        "params_key": params_fingerprint(event.params),
        "batch_id": batch_id,
        "received_at": now,
    }


def store_feedback(sessions: sessionmaker[Session], events: Iterable[ParsedEvent], batch_id: str) -> StoreOutcome:
    """Insert new samples in one transaction; report how many were new and which ids are safe."""
    now = utcnow()
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        rows.setdefault(event.message.backtest_id, _row(event, batch_id, now))
    ids = list(rows)
    if not rows:
        return StoreOutcome(0, 0, [])
    values = list(rows.values())
    with sessions.begin() as session:  # one transaction: all stored, or none
        inserted = insert_ignoring_duplicates(session.connection(), FeedbackSample.__table__, values, "backtest_id")
    return StoreOutcome(accepted=len(inserted), duplicates=len(ids) - len(inserted), stored_backtest_ids=ids)


_LOOKUP_CHUNK = 500  # fingerprints per IN (…) query


def backtested_among(sessions: sessionmaker[Session], fingerprints: list[str]) -> set[str]:
    """Which of these parameter fingerprints were already backtested (indexed lookups)."""
    found: set[str] = set()
    with sessions() as session:
        for start in range(0, len(fingerprints), _LOOKUP_CHUNK):
            chunk = fingerprints[start:start + _LOOKUP_CHUNK]
            found.update(session.execute(
                select(FeedbackSample.params_key).where(FeedbackSample.params_key.in_(chunk))).scalars())
    return found


def count_samples(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.execute(select(func.count()).select_from(FeedbackSample)).scalar_one())
