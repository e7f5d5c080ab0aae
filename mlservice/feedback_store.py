"""Durable, idempotent storage of backtest feedback as strategy-model training samples.

At-least-once delivery from the workers becomes exactly-once effect here: the unique
``backtest_id`` and ``INSERT … ON CONFLICT DO NOTHING`` make a resubmitted result a no-op,
also when two replicas receive the same batch at the same moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from edgeloop.core.errors import InvalidEvent, InvalidRequest
from edgeloop.core.events import ParsedEvent, validate_message
from edgeloop.mlservice.strategy_model import FingerprintMemo
from edgeloop.proto import events_pb2
from edgeloop.schema.base import utcnow
from edgeloop.schema.bulk import count_new_rows_inserted
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


# What a sample stores of an event, in this order; batch_id and received_at are the request's.
_COLUMNS = ("backtest_id", "strategy_id", "strategy_name", "params", "window_start", "window_end", "method",
            "model_version", "metrics", "backtest_score", "params_key")
_fingerprints = FingerprintMemo()


def _row(event: ParsedEvent) -> list[Any]:
    msg = event.message
    return [msg.backtest_id, msg.strategy_id, msg.strategy_name, event.params, event.window_start, event.window_end,
            msg.method, msg.model_version or None, event.metrics, float(event.backtest_score),
            _fingerprints.of(event.params)]


def store_feedback(engine: Engine, events: Iterable[ParsedEvent], batch_id: str) -> StoreOutcome:
    """Insert new samples, all or none; report how many were new and which ids are safe."""
    rows: dict[str, list[Any]] = {}
    for event in events:
        if event.message.backtest_id not in rows:  # the first of a repeated id is the one kept
            rows[event.message.backtest_id] = _row(event)
    if not rows:
        return StoreOutcome(0, 0, [])
    ids = list(rows)
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # One statement there, atomic by itself: no BEGIN and COMMIT round trips around it.
            conn.execution_options(isolation_level="AUTOCOMMIT")
        accepted = count_new_rows_inserted(conn, FeedbackSample.__table__, _COLUMNS, list(rows.values()),
                                           {"batch_id": batch_id, "received_at": utcnow()})
        conn.commit()  # SQLite's chunks: one transaction
    return StoreOutcome(accepted=accepted, duplicates=len(ids) - accepted, stored_backtest_ids=ids)


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
