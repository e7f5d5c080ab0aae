"""Tables of the event pipeline: strategies, stored backtest results, feedback batches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

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
    ml_feedback_submitted: Mapped[bool] = mapped_column(Boolean, default=False)
    feedback_batch_id: Mapped[int | None] = mapped_column(ForeignKey("feedback_batches.id"))
    # The event as a serialized BacktestFinished: what the feedback flush sends to the ML
    # service (decoding it costs microseconds; parsing JSON again would cost 60).
    event_pb: Mapped[bytes] = mapped_column(LargeBinary)
    stream_entry_id: Mapped[str | None] = mapped_column(String(64))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        # The flush query: oldest unsubmitted first. Partial on PostgreSQL keeps it tiny.
        Index(
            "ix_backtest_results_unsubmitted",
            "id",
            postgresql_where=text("ml_feedback_submitted = false"),
            sqlite_where=text("ml_feedback_submitted = 0"),
        ),
    )
