"""Tables of the strategy lifecycle: rankings, training triggers, discovery reports, live predictions.

* ``strategy_rankings``: one row per strategy per ranking refresh, with the time, the model
  version whose confidence was used and the backtest the score came from, so a ranking can
  be explained later ("why was X active on Tuesday?") and compared across model versions.
* ``training_triggers``: every retraining beat or an operator asked for, with the number of
  feedback samples the ML service held at that moment; "new feedback since the last
  training" is the difference to the last trigger that did not fail.
* ``discovery_reports``: one row per discovery run, written step by step, so a failed run
  shows the step that failed and a running one shows its progress.
* ``strategy_evidence``: what each verdict about a strategy rested on, one row per strategy,
  kind and window: its *selection* evidence (the window it was chosen on), its *validation*
  evidence (the later window its activation was decided on) and its *live* evidence (the
  newest data it was re-checked on while active). A verdict reads one row, never a mix.
* ``predictions``: live predictions for upcoming events × active strategies, unique per
  (event, selection, strategy, model version): refreshing again stores nothing twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from datetime import date

from sqlalchemy import Boolean, Date, DateTime, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from edgeloop.core.statuses import DiscoveryRunStatus, TrainingStatus
from edgeloop.schema.base import Base, JsonType, utcnow


class StrategyRanking(Base):
    __tablename__ = "strategy_rankings"
    __table_args__ = (UniqueConstraint("ranking_id", "strategy_id", name="uq_strategy_rankings_ranking_strategy"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ranking_id: Mapped[str] = mapped_column(String(64), index=True)
    ranked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    strategy_id: Mapped[str] = mapped_column(String(128), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    composite_score: Mapped[float] = mapped_column(Float)
    ml_confidence: Mapped[float] = mapped_column(Float)
    backtest_score: Mapped[float] = mapped_column(Float)
    total_bets: Mapped[int] = mapped_column(Integer)
    backtest_id: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # StrategyStatus, after this refresh's decision


class TrainingTrigger(Base):
    __tablename__ = "training_triggers"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    triggered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    feedback_samples: Mapped[int] = mapped_column(Integer)
    model_name: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=TrainingStatus.QUEUED)


class DiscoveryReport(Base):
    __tablename__ = "discovery_reports"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=DiscoveryRunStatus.RUNNING, index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_step: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    # {"step": {"seconds": s, "status": DiscoveryStepStatus, "details": {...}}} in pipeline order
    steps: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    counts: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    top_strategies: Mapped[list[Any]] = mapped_column(JsonType, default=list)
    # What the run needs between its tasks: candidates and the backtest task ids.
    state: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)


class StrategyEvidence(Base):
    __tablename__ = "strategy_evidence"
    __table_args__ = (UniqueConstraint("strategy_id", "kind", "window_start", "window_end",
                                       name="uq_strategy_evidence_window"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    strategy_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # EvidenceKind
    run_id: Mapped[str] = mapped_column(String(64))  # the discovery run or re-check that judged it
    backtest_id: Mapped[str] = mapped_column(String(128))
    window_start: Mapped[date] = mapped_column(Date)
    window_end: Mapped[date] = mapped_column(Date)
    total_bets: Mapped[int] = mapped_column(Integer)
    roi: Mapped[float] = mapped_column(Float)
    yield_lcb: Mapped[float] = mapped_column(Float)
    deflated_sharpe: Mapped[float] = mapped_column(Float)
    trials: Mapped[int] = mapped_column(Integer)  # strategies tried on this window when it was judged
    backtest_score: Mapped[float] = mapped_column(Float)
    ml_confidence: Mapped[float | None] = mapped_column(Float)  # None: selection is judged without it
    composite_score: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(64), default="")
    passed: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[str]] = mapped_column(JsonType, default=list)
    judged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class LivePrediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("event_id", "selection", "strategy_id", "model_version", name="uq_predictions_key"),
        Index("ix_predictions_strategy_version", "strategy_id", "model_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128), index=True)
    selection: Mapped[str] = mapped_column(String(8))
    strategy_id: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    probability: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    price: Mapped[float | None] = mapped_column(Float)  # the strategy's price source, when quoted
    edge: Mapped[float | None] = mapped_column(Float)  # p × price − 1
    recommendation: Mapped[str] = mapped_column(String(8))  # "back" | "none"
    event_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    predicted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
