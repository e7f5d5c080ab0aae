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
_FINGERPRINTS_KEPT = 16_384
_FINGERPRINT_KEY_MAX = 2_048  # characters: larger parameter sets are fingerprinted, not remembered


class _Fingerprints:
    """``params_fingerprint`` of each distinct parameter set, remembered: a strategy backtested
    on many windows sends the same parameters again and again, and fingerprinting them (the
    backtester's own validation, then sha256 of canonical JSON) is the dearest step of a store.

    Keyed by ``repr`` of the parameters, which tells apart every two JSON values that differ
    (``1``, ``1.0`` and ``true``; ``0.0`` and ``-0.0``); the same values in another key order
    are only a miss. Bounded (at most ``kept`` keys of at most ``_FINGERPRINT_KEY_MAX``
    characters, a few MB): a full memo starts again empty (one dict operation, thread-safe)."""

    def __init__(self, kept: int = _FINGERPRINTS_KEPT) -> None:
        self.kept = kept
        self._known: dict[str, str] = {}

    def of(self, params: dict[str, Any]) -> str:
        key = repr(params)
        fingerprint = self._known.get(key)
        if fingerprint is None:
            fingerprint = params_fingerprint(params)
            if len(key) > _FINGERPRINT_KEY_MAX:
                return fingerprint
            if len(self._known) >= self.kept:
                self._known.clear()
            self._known[key] = fingerprint
        return fingerprint


_fingerprints = _Fingerprints()


def _row(event: ParsedEvent) -> list[Any]:
    msg = event.message
    return [msg.backtest_id, msg.strategy_id, msg.strategy_name, event.params, event.window_start, event.window_end,
            msg.method, msg.model_version or None, event.metrics, float(event.backtest_score),
            _fingerprints.of(event.params)]


def store_feedback(sessions: sessionmaker[Session], events: Iterable[ParsedEvent], batch_id: str) -> StoreOutcome:
    """Insert new samples in one statement; report how many were new and which ids are safe."""
    rows: dict[str, list[Any]] = {}
    for event in events:
        if event.message.backtest_id not in rows:  # the first of a repeated id is the one kept
            rows[event.message.backtest_id] = _row(event)
    if not rows:
        return StoreOutcome(0, 0, [])
    ids = list(rows)
    with sessions.begin() as session:  # one statement: all stored, or none
        accepted = count_new_rows_inserted(session.connection(), FeedbackSample.__table__, _COLUMNS,
                                           list(rows.values()), {"batch_id": batch_id, "received_at": utcnow()})
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
