"""The queries the pipeline runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Sequence, TypeVar, Unpack, cast

from sqlalchemy import Column, ColumnElement, CursorResult, Select, any_, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from edgeloop.schema.bulk import insert_ignoring_duplicates
from edgeloop.schema.pipeline import BacktestResult, FeedbackPending, Strategy

# What the ML service has confirmed is kept in ``feedback_pending`` (see its model): a result
# waits while it has a row there without a rejection, the flushers claim it by locking that
# row, and its confirmation deletes it.
_PENDING = FeedbackPending.__table__
_RESULTS = BacktestResult.__table__
_Query = TypeVar("_Query", bound=Select[Unpack[tuple[Any, ...]]])


def insert_results(session: Session, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Insert results, ignoring backtest ids already stored; returns the backtest ids inserted
    now, each with its row id (what the feedback flusher claims and marks them by). Each result
    inserted waits for the ML service's confirmation from then on (the table's trigger gives it
    its ``feedback_pending`` row in the same statement).

    The unique ``backtest_id`` is what makes a duplicate delivery change nothing, whichever
    worker sees it and however often.
    """
    return dict(insert_ignoring_duplicates(session.connection(), BacktestResult.__table__, rows, ("backtest_id", "id")))


def _one_of(session: Session, column: Column[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``column = ANY(:array)``: one parameter however many
    values, so the statement is compiled once and PostgreSQL parses no list of 500 literals."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(f"{column.name}_any", list(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(list(values))


def ensure_strategies(session: Session, strategies: Iterable[dict[str, Any]]) -> None:
    """Record strategies first seen in results (as candidates); never overwrite an existing one."""
    rows = list({s["strategy_id"]: s for s in strategies}.values())
    if not rows:
        return
    insert_ignoring_duplicates(session.connection(), Strategy.__table__, rows, "strategy_id")


def top_performing(session: Session, limit: int = 10) -> list[BacktestResult]:
    stmt = (
        select(BacktestResult)
        .where(BacktestResult.composite_score.is_not(None))
        .order_by(BacktestResult.composite_score.desc(), BacktestResult.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def recent_unprocessed(session: Session, limit: int = 100, *, lock: bool = False,
                       ids: Sequence[int] | None = None) -> list[BacktestResult]:
    """Oldest results not yet confirmed by the ML service (only those with these row ``ids``
    when given: the part of a batch that is tried again on its own).

    With ``lock`` on PostgreSQL their ``feedback_pending`` rows are locked ``FOR UPDATE SKIP
    LOCKED`` so that concurrent flushers on many workers take disjoint batches.
    """
    stmt = _waiting(session, select(BacktestResult).join(FeedbackPending, FeedbackPending.result_id == BacktestResult.id)
                    .order_by(BacktestResult.id).limit(limit), lock=lock)
    if ids is not None:
        stmt = stmt.where(BacktestResult.id.in_(ids))
    return list(session.scalars(stmt))


def _waiting(session: Session, stmt: _Query, *, lock: bool = True) -> _Query:
    """``stmt`` (of ``feedback_pending``, alone or joined with its results) narrowed to results
    waiting for the ML service's confirmation (not set aside as rejected); with ``lock``, on
    PostgreSQL, their ``feedback_pending`` rows locked ``FOR UPDATE SKIP LOCKED`` for the
    transaction, so concurrent flushers take disjoint rows. Only those narrow rows are locked:
    the results themselves are read, never written, by a flusher."""
    stmt = stmt.where(_PENDING.c.rejected_batch_id.is_(None))
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=_PENDING)
    return stmt


def claim_unsubmitted(session: Session, limit: int, *, ids: Sequence[int] | None = None,
                      received_before: datetime | None = None) -> list[Any]:
    """The oldest results not yet confirmed by the ML service, as rows of (id, backtest_id,
    strategy_id, received_at, event_pb), locked for this transaction: ``FOR UPDATE SKIP LOCKED``
    on PostgreSQL, so concurrent flushers take disjoint rows. ``ids`` narrows them down (part of
    a batch tried again); ``received_before`` leaves out results stored since (those a consumer
    is about to submit from memory)."""
    t = _RESULTS
    stmt = _waiting(session, select(t.c.id, t.c.backtest_id, t.c.strategy_id, t.c.received_at, t.c.event_pb)
                    .select_from(_PENDING.join(t, t.c.id == _PENDING.c.result_id))
                    .order_by(_PENDING.c.result_id).limit(limit))
    if ids is not None:
        stmt = stmt.where(_one_of(session, _PENDING.c.result_id, ids))
    if received_before is not None:
        stmt = stmt.where(t.c.received_at < received_before)
    return list(session.execute(stmt).all())


def claim_ids(session: Session, ids: Sequence[int]) -> list[int]:
    """Of these results, the row ids of those still waiting for the ML service's confirmation,
    oldest first, locked for this transaction like ``claim_unsubmitted``'s (a consumer's
    flusher holds their events: only ``feedback_pending`` is read)."""
    if not ids:
        return []
    stmt = _waiting(session, select(_PENDING.c.result_id).where(_one_of(session, _PENDING.c.result_id, ids))
                    .order_by(_PENDING.c.result_id))
    return list(session.execute(stmt).scalars())


def mark_processed(session: Session, ids: Iterable[int]) -> int:
    """Mark these results (row ids) confirmed by the ML service: their ``feedback_pending``
    rows go. The results' own rows are not written (docs/scaling.md: that update cost 13–15 µs of
    PostgreSQL per result, this delete about 1.5)."""
    ids = list(ids)
    if not ids:
        return 0
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # The transaction's commit need not wait for the disk (~3 ms here): a mark lost in a
        # crash of PostgreSQL only sends its results again, which the ML service counts as
        # duplicates and confirms (docs/delivery.md). Only this transaction is relaxed.
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
    result = conn.execute(delete(_PENDING).where(_one_of(session, _PENDING.c.result_id, ids)))
    return cast(CursorResult[Any], result).rowcount


def reject(session: Session, result_id: int, batch_id: int) -> None:
    """Set this result aside as refused by the ML service (``batch_id``: the ``feedback_batches``
    row with the error): it no longer waits, until ``retry_rejected``."""
    session.execute(update(_PENDING).where(_PENDING.c.result_id == result_id).values(rejected_batch_id=batch_id))


def by_composite_score_range(session: Session, low: float, high: float, limit: int = 1000) -> list[BacktestResult]:
    stmt = (
        select(BacktestResult)
        .where(BacktestResult.composite_score >= low, BacktestResult.composite_score <= high)
        .order_by(BacktestResult.composite_score.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def count_rejected(session: Session) -> int:
    """Results the ML service refused (set aside by the flusher, see edgeloop/services/feedback.py)."""
    return session.scalar(select(func.count()).select_from(_PENDING).where(_PENDING.c.rejected_batch_id.is_not(None))) or 0


def retry_rejected(session: Session) -> int:
    """Put refused results back in line for the next flush (after the cause was fixed)."""
    return cast(CursorResult[Any], session.execute(
        update(_PENDING).where(_PENDING.c.rejected_batch_id.is_not(None)).values(rejected_batch_id=None)
    )).rowcount


def count_unsubmitted(session: Session) -> int:
    """Results waiting for the ML service's confirmation (rejected ones not included)."""
    return session.scalar(_waiting(session, select(func.count()).select_from(_PENDING), lock=False)) or 0


def feedback_backlog(session: Session) -> tuple[int, datetime | None]:
    """How many results wait for the ML service's confirmation (rejected ones not included),
    and when the oldest of them was received."""
    count, oldest = session.execute(_waiting(session, select(func.count(), func.min(_RESULTS.c.received_at))
                                             .select_from(_PENDING.join(_RESULTS, _RESULTS.c.id == _PENDING.c.result_id)),
                                             lock=False)).one()
    return int(count or 0), oldest
