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


class _SeenParams:
    """What validation made of a parameter set, and its fingerprint, by the serialised bytes of
    its ``Struct``: a strategy backtested on many windows sends the same parameters again and
    again, and converting, checking and fingerprinting them is a fifth of the feedback's
    Python. Identical bytes are identical parameters, so a hit is always right; the same
    parameters serialised another way (another key order) are only a miss. Bounded like
    ``FingerprintMemo``: at most ``kept`` keys of at most ``max_key`` bytes; a full memo starts
    again empty (one dict operation, so the server's threads may share it). The remembered
    dict is shared by every event that hits it: nothing here changes it."""

    def __init__(self, kept: int = 16_384, max_key: int = 2_048) -> None:
        self.kept = kept
        self.max_key = max_key
        self._known: dict[bytes, tuple[dict[str, Any], str]] = {}

    def get(self, key: bytes) -> tuple[dict[str, Any], str] | None:
        return self._known.get(key)

    def remember(self, key: bytes, params: dict[str, Any], fingerprint: str) -> None:
        if len(key) <= self.max_key:
            if len(self._known) >= self.kept:
                self._known.clear()
            self._known[key] = (params, fingerprint)


_fingerprints = FingerprintMemo()
_seen = _SeenParams()
Sample = tuple[ParsedEvent, str]  # a validated event and the fingerprint of its params


def validate_results(results: Sequence[events_pb2.BacktestFinished]) -> list[Sample]:
    """The pipeline's own validation (``edgeloop.core.events``), so both ends agree on what is
    valid, and the fingerprint of each result's params.

    One invalid result rejects the whole request: the caller gets INVALID_ARGUMENT naming it
    and nothing is half-stored.
    """
    samples: list[Sample] = []
    unseen: list[tuple[int, bytes]] = []
    for i, msg in enumerate(results):
        key = msg.params.SerializeToString()
        seen = _seen.get(key)
        try:
            event = validate_message(msg, None if seen is None else seen[0])
        except InvalidEvent as exc:
            raise InvalidRequest(f"results[{i}] (backtest_id {msg.backtest_id!r}): {exc}") from None
        if seen is None:
            unseen.append((i, key))
            samples.append((event, ""))
        else:
            samples.append((event, seen[1]))
    # Fingerprinted once every result is validated: validating and fingerprinting each result
    # in turn measured a quarter slower for parameter sets never seen (bench/ml_feedback.py
    # --distinct-params), the two alternating in the CPU's caches.
    for i, key in unseen:
        event = samples[i][0]
        fingerprint = _fingerprints.of(event.params)
        samples[i] = (event, fingerprint)
        _seen.remember(key, event.params, fingerprint)
    return samples


# What a sample stores of an event, in this order; batch_id and received_at are the request's.
_COLUMNS = ("backtest_id", "strategy_id", "strategy_name", "params", "window_start", "window_end", "method",
            "model_version", "metrics", "backtest_score", "params_key")


def store_feedback(engine: Engine, samples: Iterable[Sample], batch_id: str) -> StoreOutcome:
    """Insert new samples, all or none; report how many were new and which ids are safe."""
    rows: dict[str, list[Any]] = {}
    for event, fingerprint in samples:
        msg = event.message
        if msg.backtest_id not in rows:  # the first of a repeated id is the one kept
            rows[msg.backtest_id] = [
                msg.backtest_id, msg.strategy_id, msg.strategy_name, event.params, event.window_start,
                event.window_end, msg.method, msg.model_version or None, event.metrics, event.backtest_score,
                fingerprint]
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
