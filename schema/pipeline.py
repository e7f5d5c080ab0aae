"""Tables of the event pipeline: strategies, stored backtest results, feedback batches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    exists,
)
from sqlalchemy.orm import Mapped, column_property, declared_attr, mapped_column

from edgeloop.core.statuses import FeedbackBatchStatus, StrategyStatus
from edgeloop.schema.base import BacktestRecord, Base, JsonType, utcnow

class Strategy(Base):
    __tablename__ = "strategies"

    strategy_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    params: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=StrategyStatus.CANDIDATE, index=True)
    source: Mapped[str] = mapped_column(String(16), default="manual")
    model_version: Mapped[str | None] = mapped_column(String(64))
    ml_confidence: Mapped[float | None] = mapped_column(Float)
    backtest_score: Mapped[float | None] = mapped_column(Float)
    composite_score: Mapped[float | None] = mapped_column(Float, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FeedbackBatch(Base):
    """One SubmitBacktestFeedback call's worth of results."""

    __tablename__ = "feedback_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_key: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=FeedbackBatchStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class FeedbackPending(Base):
    """A stored result the ML service has not confirmed yet: one narrow row per result, written
    with it and deleted when the service confirms it. A result is confirmed when it has no row
    here; waiting, when it has one without ``rejected_batch_id``; *rejected* (set aside, see
    ``edgeloop/services/feedback.py``), when it has one with the batch that recorded the error.

    The state lives here rather than on ``backtest_results`` because marking a wide result row
    confirmed was a non-HOT update that wrote every index of it (15 µs of PostgreSQL per result;
    inserting and deleting a row here costs about 2, docs/scaling.md). The flushers claim these
    rows ``FOR UPDATE SKIP LOCKED``: locking them is what keeps two flushers' batches disjoint.

    The rows are written by triggers on ``backtest_results`` (revision 0007), so that no writer
    of results can store one that is not waiting: an insert adds a row here for every result it
    inserted (one statement per insert on PostgreSQL, with its transition table), a delete or a
    ``TRUNCATE`` of results removes theirs. A foreign key to the results would have done the
    latter at 4 µs of PostgreSQL per inserted result. On SQLite a migration that rebuilds
    ``backtest_results`` (Alembic's batch mode) drops its triggers and must create them again
    (``schema/migrations/versions/0007_feedback_pending.py``).
    """

    __tablename__ = "feedback_pending"

    result_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                           autoincrement=False)
    rejected_batch_id: Mapped[int | None] = mapped_column(ForeignKey("feedback_batches.id"))


class BacktestResult(BacktestRecord, Base):
    __tablename__ = "backtest_results"

    total_bets: Mapped[int] = mapped_column(Integer)
    roi: Mapped[float] = mapped_column(Float)
    profit: Mapped[float] = mapped_column(Float)
    win_rate: Mapped[float] = mapped_column(Float)
    profit_factor: Mapped[float] = mapped_column(Float)
    sharpe_ratio: Mapped[float] = mapped_column(Float)
    max_drawdown: Mapped[float] = mapped_column(Float)
    extra_metrics: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    backtest_score: Mapped[float] = mapped_column(Float)
    ml_confidence: Mapped[float | None] = mapped_column(Float)
    composite_score: Mapped[float | None] = mapped_column(Float, index=True)
    # The event as a serialized BacktestFinished: what the feedback flush sends to the ML
    # service (decoding it costs microseconds; parsing JSON again would cost 60).
    event_pb: Mapped[bytes] = mapped_column(LargeBinary)
    stream_entry_id: Mapped[str | None] = mapped_column(String(64))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @declared_attr
    def ml_feedback_submitted(cls) -> Mapped[bool]:
        """Whether the ML service confirmed the result: derived from ``feedback_pending`` (it was
        a column before revision 0007), loaded only when read, so queries of results do not pay
        for it."""
        return column_property(~exists().where(FeedbackPending.result_id == cls.id), deferred=True)
