"""``lifecycle.refresh`` on SQLite with the stand-in ML client: composite from the one scoring
definition, status changes and ranking rows in one transaction, one ranking per id."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from edgeloop.core.errors import ModelNotTrained
from edgeloop.core.scoring import composite_score
from edgeloop.core.settings import Settings
from edgeloop.schema.db import make_engine, make_sessionmaker, upgrade
from edgeloop.schema.lifecycle import StrategyRanking
from edgeloop.schema.pipeline import BacktestResult, Strategy
from edgeloop.services.lifecycle import refresh
from tests.support.ml import FakeMLClient


@pytest.fixture
def sessions(tmp_path):
    url = f"sqlite:///{tmp_path / 'life.db'}"
    upgrade(url)
    return make_sessionmaker(make_engine(url))


def add(sessions, sid: str, status: str, score: float, bets: int, n: int = 1) -> None:
    with sessions.begin() as s:
        s.add(Strategy(strategy_id=sid, name=sid, params={"min_edge": 0.01}, status=status))
        for i in range(n):
            s.add(BacktestResult(
                backtest_id=f"{sid}-{i}", strategy_id=sid, params={"min_edge": 0.01}, window_start=date(2019, 8, 1),
                window_end=date(2020, 5, 31), method="market_baseline", total_bets=bets, roi=0.0, profit=0.0,
                win_rate=0.0, profit_factor=0.0, sharpe_ratio=0.0, max_drawdown=0.0,
                backtest_score=score if i == n - 1 else 0.0, event_pb=b""))


def test_refresh_activates_retires_and_stores_one_ranking(sessions):
    s = Settings(activation_threshold=0.6, deactivation_threshold=0.4, min_bets_for_activation=10)
    add(sessions, "good", "candidate", 0.5, 100, n=3)  # only the latest result counts
    add(sessions, "few-bets", "candidate", 0.9, 5)
    add(sessions, "bad", "active", 0.1, 100)
    add(sessions, "middling", "active", 0.45, 100)
    ml = FakeMLClient(confidences={"good": 0.8, "few-bets": 0.9, "bad": 0.3, "middling": 0.5})

    outcome = refresh(sessions, ml, s, ranking_id="r1")

    assert sorted(outcome.changed_to("active")) == ["good"] and outcome.changed_to("inactive") == ["bad"]
    with sessions() as db:
        status = dict(db.execute(select(Strategy.strategy_id, Strategy.status)).all())
        assert status == {"good": "active", "few-bets": "candidate", "bad": "inactive", "middling": "active"}
        assert db.get(Strategy, "good").composite_score == pytest.approx(composite_score(0.8, 0.5))
        ranking = list(db.scalars(select(StrategyRanking).order_by(StrategyRanking.rank)))
        assert [r.strategy_id for r in ranking] == ["few-bets", "good", "middling", "bad"]
        assert all(r.model_version == "strategy-v1" for r in ranking)
    # Storing the same ranking id again (a redelivered task) adds nothing
    refresh(sessions, ml, s, ranking_id="r1")
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(StrategyRanking)) == 4


def test_no_strategy_model_changes_nothing(sessions):
    add(sessions, "x", "active", 0.0, 100)
    ml = FakeMLClient()
    ml.fail_with("evaluate_strategy", ModelNotTrained("EvaluateStrategy: the strategy model is not trained yet"))
    with pytest.raises(ModelNotTrained):
        refresh(sessions, ml, Settings(), ranking_id="r1")
    with sessions() as db:
        assert db.get(Strategy, "x").status == "active"
        assert db.scalar(select(func.count()).select_from(StrategyRanking)) == 0


def test_the_scheduled_refresh_stores_a_ranking_only_when_it_changed(sessions):
    s = Settings(activation_threshold=0.6, deactivation_threshold=0.4, min_bets_for_activation=10)
    add(sessions, "a", "candidate", 0.5, 100)
    add(sessions, "b", "candidate", 0.3, 100)
    ml = FakeMLClient(confidences={"a": 0.5, "b": 0.5})
    assert refresh(sessions, ml, s, only_if_changed=True).ranking_id is not None
    assert refresh(sessions, ml, s, only_if_changed=True).ranking_id is None  # nothing changed
    ml.confidences["b"] = 0.9  # b now ranks first
    assert refresh(sessions, ml, s, only_if_changed=True).ranking_id is not None
    with sessions() as db:
        assert db.scalar(select(func.count(func.distinct(StrategyRanking.ranking_id)))) == 2
