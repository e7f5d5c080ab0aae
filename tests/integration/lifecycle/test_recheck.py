"""The scheduled re-check with real `celery beat` and `celery worker` processes, Redis,
PostgreSQL, an ML gRPC server and the shipped seasons: an active strategy whose evidence on the
seasons after its last verdict falls below the deactivation threshold is retired, with that
evidence recorded as its live evidence; one already judged on the newest data is left alone."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from edgeloop.core.statuses import EvidenceKind
from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.schema.lifecycle import StrategyEvidence
from edgeloop.schema.pipeline import BacktestResult, Strategy
from tests.integration.lifecycle.conftest import celery_beat
from tests.integration.lifecycle.test_beat import QUIET
from tests.support.processes import celery_worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Backs every outsider at the average price: the bookmakers' margin on long shots makes it lose.
POOR = {"price_source": "AVG", "probability_source": "market", "min_edge": -1.0, "min_odds": 6.0,
        "staking": "flat", "flat_stake": 1.0}
VALIDATION = (date(2022, 7, 1), date(2024, 6, 30))  # the default windows' validation on the shipped seasons
NEWEST = (date(2024, 7, 1), date(2026, 6, 30))


def judged(sessions, sid: str, window: tuple[date, date], kind: str) -> None:
    """An active strategy whose last verdict read ``window`` (and passed)."""
    with sessions.begin() as s:
        s.add(Strategy(strategy_id=sid, name=sid, params=POOR, status="active"))
        s.add(BacktestResult(backtest_id=f"bt-{sid}", strategy_id=sid, params=POOR, window_start=window[0],
                             window_end=window[1], method="market_baseline", total_bets=400, roi=0.05, profit=20.0,
                             win_rate=0.2, profit_factor=1.1, sharpe_ratio=0.5, max_drawdown=0.2, backtest_score=0.7,
                             event_pb=b""))
        s.add(StrategyEvidence(strategy_id=sid, kind=kind, run_id="d-earlier", backtest_id=f"bt-{sid}",
                               window_start=window[0], window_end=window[1], total_bets=400, roi=0.05, yield_lcb=0.01,
                               deflated_sharpe=0.97, trials=40, backtest_score=0.7, ml_confidence=0.7,
                               composite_score=0.7, model_version="", passed=True, reasons=[]))


def test_beat_retires_an_active_strategy_whose_new_data_evidence_is_poor(ml, tmp_path):
    env = {**ml, **QUIET, "EDGELOOP_RECHECK_INTERVAL_S": "2", "EDGELOOP_DEACTIVATION_THRESHOLD": "0.45"}
    sessions = make_sessionmaker(make_engine(env["EDGELOOP_DATABASE_URL"]))
    # Given a poor strategy activated on its validation window, and one already judged on the newest seasons
    judged(sessions, "poor-active", VALIDATION, EvidenceKind.VALIDATION)
    judged(sessions, "judged-on-newest", NEWEST, EvidenceKind.LIVE)

    with celery_worker(env, "w1", tmp_path, concurrency=2) as worker, celery_beat(env, "beat", tmp_path) as beat:
        # When beat's re-check runs
        def retired() -> bool:
            with sessions() as s:
                return s.get(Strategy, "poor-active").status == "inactive"

        wait_until(retired, 120, 0.5, "the poor strategy retired")
        assert worker.alive() and beat.proc.poll() is None

    with sessions() as s:
        # Then it was judged on the seasons after its validation window alone, and that is recorded
        live = s.scalars(select(StrategyEvidence).where(StrategyEvidence.strategy_id == "poor-active",
                                                        StrategyEvidence.kind == "live")).one()
        assert (live.window_start, live.window_end) == NEWEST
        assert live.total_bets > 100 and live.roi < 0 and live.composite_score < 0.45 and not live.passed
        result = s.scalars(select(BacktestResult).where(BacktestResult.backtest_id == live.backtest_id)).one()
        assert (result.window_start, result.window_end) == NEWEST
        # And the strategy already judged on the newest data was not backtested again nor retired
        assert s.get(Strategy, "judged-on-newest").status == "active"
        assert len(s.scalars(select(BacktestResult).where(BacktestResult.strategy_id == "judged-on-newest")).all()) == 1
