"""The re-check of active strategies on data they were not judged on (beat's ``strategies-recheck``).

An active strategy was activated on its validation window (or kept on a later re-check). When
newer whole seasons exist than the last window a verdict about it read, it is backtested on
exactly those seasons — the newest data it has not been judged on — and judged on that result
alone, recorded as its *live* evidence: composite below ``deactivation_threshold`` retires it.
Nothing else is read: not the validation result, not any other window's. Once judged, the
next re-check waits for the next imported season.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from redis import Redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from edgeloop.core.settings import Settings
from edgeloop.core.statuses import EvidenceKind, StrategyStatus
from edgeloop.mlclient.protocol import MLServiceClient
from edgeloop.schema.lifecycle import StrategyEvidence
from edgeloop.schema.pipeline import BacktestResult, Strategy
from edgeloop.services.discovery import UNTRAINED_CONFIDENCE
from edgeloop.services.evidence import VERDICT_KINDS
from edgeloop.services.lifecycle import DEACTIVATE, RefreshOutcome, refresh
from edgeloop.services.windows import current_windows

RECHECK_RUN_PREFIX = "recheck-"


@dataclass(frozen=True, slots=True)
class Due:
    strategy: dict[str, Any]  # what a backtest task takes: name, strategy_id and the parameters
    start: date
    end: date


def newest_data_end(settings: Settings) -> date:
    w = current_windows(settings)
    return (w.final or w.validation).end


def next_season_start(judged_end: date) -> date:
    """The first day of the first whole season after a judged window."""
    first = judged_end + timedelta(days=1)
    start = date(first.year, 7, 1)
    return start if start >= first else date(first.year + 1, 7, 1)


def due(sessions: sessionmaker[Session], settings: Settings) -> list[Due]:
    """Active strategies with whole seasons of data after the last window a verdict read."""
    end = newest_data_end(settings)
    judged = (select(StrategyEvidence.strategy_id, func.max(StrategyEvidence.window_end).label("end"))
              .where(StrategyEvidence.kind.in_(VERDICT_KINDS)).group_by(StrategyEvidence.strategy_id).subquery())
    with sessions() as s:
        rows = s.execute(select(Strategy, judged.c.end).join(judged, judged.c.strategy_id == Strategy.strategy_id)
                         .where(Strategy.status == StrategyStatus.ACTIVE)).all()
    out = []
    for strategy, judged_end in rows:
        start = next_season_start(judged_end)
        if start <= end:
            out.append(Due({"name": strategy.name or strategy.strategy_id, "strategy_id": strategy.strategy_id,
                            **(strategy.params or {})}, start, end))
    return out


def stored(sessions: sessionmaker[Session], backtest_ids: list[str]) -> dict[str, BacktestResult]:
    with sessions() as s:
        return {r.strategy_id: r for r in s.scalars(select(BacktestResult)
                                                    .where(BacktestResult.backtest_id.in_(backtest_ids)))}


def judge(sessions: sessionmaker[Session], client: MLServiceClient, settings: Settings,
          results: dict[str, BacktestResult], run_id: str, lock_client: Redis | None = None) -> RefreshOutcome:
    """Judge each active strategy on its new-data result alone (live evidence); retire the poor."""
    return refresh(sessions, client, settings, statuses=(StrategyStatus.ACTIVE,), strategy_ids=list(results),
                   results=results, kind=EvidenceKind.LIVE, run_id=run_id, allow=(DEACTIVATE,),
                   untrained_confidence=UNTRAINED_CONFIDENCE, store_ranking=False, lock_client=lock_client)
