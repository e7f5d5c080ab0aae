"""The ML service's own tables: feedback samples, the model registry and training jobs.

The service owns these; nothing else writes them. Model artifacts are stored as ``.npz``
bytes loaded with ``allow_pickle=False`` — never pickle — so a row cannot execute code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from edgeloop.core.statuses import TrainingStatus
from edgeloop.schema.base import BacktestRecord, Base, JsonType, utcnow

class FeedbackSample(BacktestRecord, Base):
    """One finished backtest as a training sample for the strategy model; once per backtest id."""

    __tablename__ = "ml_feedback_samples"

    metrics: Mapped[dict[str, float]] = mapped_column(JsonType, default=dict)
    # The label of the strategy model (edgeloop.core.scoring.backtest_score); never one of its features.
    backtest_score: Mapped[float] = mapped_column(Float, index=True)  # GenerateStrategy's best seeds
    # Canonical JSON of the params: "was this parameter set already backtested?" is one lookup.
    params_key: Mapped[str] = mapped_column(String(512), index=True)
    batch_id: Mapped[str] = mapped_column(String(128), default="")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class ModelVersion(Base):
    """One trained version of a model, whatever became of it (the registry)."""

    __tablename__ = "ml_model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))  # ModelStatus
    # Point-in-time slot: outcome versions serve events on or after train_end; the strategy
    # model has a single slot. Champion/challenger compares versions of the same slot.
    slot: Mapped[str] = mapped_column(String(32), default="")
    train_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    train_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # data strictly before
    sample_count: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict[str, float]] = mapped_column(JsonType, default=dict)
    config: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    artifact: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text, default="")
    job_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        Index("ix_ml_model_versions_name_status", "model_name", "status"),
        # At most one serving version per slot, even when two replicas promote at once.
        Index("uq_ml_model_versions_serving_slot", "model_name", "slot", unique=True,
              postgresql_where=text("status = 'serving'"), sqlite_where=text("status = 'serving'")),
    )


class TrainingJob(Base):
    __tablename__ = "ml_training_jobs"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(32))  # "outcome" | "strategy" | "" (both)
    force: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=TrainingStatus.QUEUED, index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    model_versions: Mapped[list[str]] = mapped_column(JsonType, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The replica running the job, renewed while it runs; a lapsed heartbeat lets another take over.
    owner: Mapped[str] = mapped_column(String(128), default="", server_default="")
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


__all__ = ["FeedbackSample", "ModelVersion", "TrainingJob"]
