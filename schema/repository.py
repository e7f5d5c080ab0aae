"""The queries the pipeline runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Sequence, cast

from sqlalchemy import Column, ColumnElement, CursorResult, Select, any_, bindparam, func, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from edgeloop.schema.bulk import insert_ignoring_duplicates
from edgeloop.schema.pipeline import BacktestResult, Strategy


def insert_results(session: Session, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Insert results, ignoring backtest ids already stored; returns the backtest ids inserted
    now, each with its row id (what the feedback flusher claims and marks them by).

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

    With ``lock`` on PostgreSQL the rows are locked ``FOR UPDATE SKIP LOCKED`` so that
    concurrent flushers on many workers take disjoint batches.
    """
    stmt = _unconfirmed(session, select(BacktestResult).order_by(BacktestResult.id).limit(limit), lock=lock)
    if ids is not None:
        stmt = stmt.where(BacktestResult.id.in_(ids))
    return list(session.scalars(stmt))


def _unconfirmed(session: Session, stmt: Select[Any], *, lock: bool = True) -> Select[Any]:
    """``stmt`` narrowed to results waiting for the ML service's confirmation (neither
    confirmed nor set aside as rejected); with ``lock``, on PostgreSQL, locked ``FOR UPDATE SKIP
    LOCKED`` for the transaction, so concurrent flushers take disjoint rows."""
    t = BacktestResult.__table__
    stmt = stmt.where(t.c.ml_feedback_submitted.is_(False), t.c.feedback_batch_id.is_(None))
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return stmt


def claim_unsubmitted(session: Session, limit: int, *, ids: Sequence[int] | None = None,
                      received_before: datetime | None = None) -> list[Any]:
    """The oldest results not yet confirmed by the ML service, as rows of (id, backtest_id,
    strategy_id, received_at, event_pb), locked for this transaction: ``FOR UPDATE SKIP LOCKED``
    on PostgreSQL, so concurrent flushers take disjoint rows. ``ids`` narrows them down (part of
    a batch tried again); ``received_before`` leaves out results stored since (those a consumer
    is about to submit from memory)."""
    t = BacktestResult.__table__
    stmt = _unconfirmed(session, select(t.c.id, t.c.backtest_id, t.c.strategy_id, t.c.received_at, t.c.event_pb)
                        .order_by(t.c.id).limit(limit))
    if ids is not None:
        stmt = stmt.where(_one_of(session, t.c.id, ids))
    if received_before is not None:
        stmt = stmt.where(t.c.received_at < received_before)
    return list(session.execute(stmt).all())


def claim_ids(session: Session, ids: Sequence[int]) -> list[int]:
    """Of these results, the row ids of those still waiting for the ML service's confirmation,
    oldest first, locked for this transaction like ``claim_unsubmitted``'s (a consumer's
    flusher holds their events: only the ids are read)."""
    if not ids:
        return []
    t = BacktestResult.__table__
    stmt = _unconfirmed(session, select(t.c.id).where(_one_of(session, t.c.id, ids)).order_by(t.c.id))
    return list(session.execute(stmt).scalars())


def mark_processed(session: Session, ids: Iterable[int], batch_id: int | None = None) -> int:
    """Mark these results (row ids) confirmed by the ML service, in ``batch_id``."""
    ids = list(ids)
    if not ids:
        return 0
    # Core UPDATE on the table: the ORM's bulk path would first try to synchronise every
    # loaded object in the session, which costs more than the update itself.
    table = BacktestResult.__table__
    result = session.connection().execute(
        update(table).where(_one_of(session, table.c.id, ids)).values(ml_feedback_submitted=True,
                                                                         feedback_batch_id=batch_id)
    )
    return cast(CursorResult[Any], result).rowcount


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
    return session.scalar(
        select(func.count()).select_from(BacktestResult)
        .where(BacktestResult.ml_feedback_submitted.is_(False), BacktestResult.feedback_batch_id.is_not(None))
    ) or 0


def retry_rejected(session: Session) -> int:
    """Put refused results back in line for the next flush (after the cause was fixed)."""
    return cast(CursorResult[Any], session.execute(
        update(BacktestResult)
        .where(BacktestResult.ml_feedback_submitted.is_(False), BacktestResult.feedback_batch_id.is_not(None))
        .values(feedback_batch_id=None)
    )).rowcount


def count_unsubmitted(session: Session) -> int:
    """Results waiting for the ML service's confirmation (rejected ones not included)."""
    return session.scalar(_unconfirmed(session, select(func.count()).select_from(BacktestResult), lock=False)) or 0
