"""The declarative base shared by every table, with a naming convention so that
constraint names are stable across PostgreSQL and SQLite (Alembic needs names)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Date, Integer, MetaData, String, Table
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL, JSON text elsewhere.
JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(t: datetime) -> datetime:
    """A stored time, timezone-aware: SQLite hands ``DateTime(timezone=True)`` back naive (UTC)."""
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # Every model is declared with columns, so its table is a Table, not just any FromClause.
    __table__: ClassVar[Table]


class BacktestRecord:
    """The columns every store of finished backtests keeps, one row per backtest id: the
    pipeline's ``backtest_results`` and the ML service's ``ml_feedback_samples``. Their
    names are ``edgeloop.core.events.ParsedEvent.columns()``'s."""

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    backtest_id: Mapped[str] = mapped_column(String(128), unique=True)
    strategy_id: Mapped[str] = mapped_column(String(128), index=True)
    strategy_name: Mapped[str] = mapped_column(String(256), default="")
    params: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    window_start: Mapped[date] = mapped_column(Date)
    window_end: Mapped[date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(64))
