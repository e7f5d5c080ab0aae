"""``lifecycle.refresh`` on SQLite with the stand-in ML client: verdicts on one window's evidence,
composite from the one scoring definition, the evidence gate, evidence rows, status changes and
ranking rows in one transaction, one ranking per id."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from edgeloop.core.errors import ModelNotTrained
from edgeloop.core.scoring import composite_score
from edgeloop.core.settings import Settings
from edgeloop.core.statuses import EvidenceKind
from edgeloop.schema.db import make_engine, make_sessionmaker, upgrade
from edgeloop.schema.lifecycle import StrategyEvidence, StrategyRanking
from edgeloop.schema.pipeline import BacktestResult, Strategy
from edgeloop.services.evidence import results_on
from edgeloop.services.lifecycle import refresh
from tests.support.ml import FakeMLClient

VALIDATION = (date(2022, 7, 1), date(2024, 6, 30))
LATER = (date(2024, 7, 1), date(2026, 6, 30))
S = Settings(activation_threshold=0.6, deactivation_threshold=0.4, min_bets_for_activation=30)


@pytest.fixture
def sessions(tmp_path):
    url = f"sqlite:///{tmp_path / 'life.db'}"
    upgrade(url)
    return make_sessionmaker(make_engine(url))


def add_strategy(sessions, sid: str, status: str) -> None:
    with sessions.begin() as s:
        s.add(Strategy(strategy_id=sid, name=sid, params={"min_edge": 0.01}, status=status))


def add_result(sessions, sid: str, score: float, bets: int, window=VALIDATION, roi: float = 0.08,
               yield_se: float = 0.02, bet_sharpe: float = 0.2) -> None:
    with sessions.begin() as s:
        n = s.scalar(select(func.count()).select_from(BacktestResult)) or 0
        s.add(BacktestResult(
            backtest_id=f"{sid}-{n}", strategy_id=sid, params={"min_edge": 0.01}, window_start=window[0],
            window_end=window[1], method="market_baseline", total_bets=bets, roi=roi, profit=0.0,
            win_rate=0.0, profit_factor=0.0, sharpe_ratio=0.0, max_drawdown=0.0, backtest_score=score,
            extra_metrics={"markets": bets, "yield_se": yield_se, "bet_sharpe": bet_sharpe, "return_skew": 0.0,
                           "return_kurtosis": 3.0},
            event_pb=b""))


def on_validation(sessions, ids):
    with sessions() as s:
        return results_on(s, ids, *VALIDATION)


def test_verdicts_read_the_validation_window_pass_the_gate_and_are_recorded(sessions):
    for sid, status in [("good", "candidate"), ("lucky", "candidate"), ("bad", "active"), ("middling", "active")]:
        add_strategy(sessions, sid, status)
    add_result(sessions, "good", 0.5, 400)
    add_result(sessions, "good", 0.0, 400, window=LATER, roi=-0.5)  # another window: not read
    add_result(sessions, "lucky", 0.95, 5, roi=3.0, bet_sharpe=0.25)  # 5 lucky bets
    add_result(sessions, "bad", 0.1, 400, roi=-0.1)
    add_result(sessions, "middling", 0.45, 400)
    ml = FakeMLClient(confidences={"good": 0.8, "lucky": 0.9, "bad": 0.3, "middling": 0.5})
    ids = ["good", "lucky", "bad", "middling"]

    outcome = refresh(sessions, ml, S, results=on_validation(sessions, ids), kind=EvidenceKind.VALIDATION,
                      run_id="d-1", ranking_id="r1")

    assert sorted(outcome.changed_to("active")) == ["good"] and outcome.changed_to("inactive") == ["bad"]
    with sessions() as db:
        status = dict(db.execute(select(Strategy.strategy_id, Strategy.status)).all())
        assert status == {"good": "active", "lucky": "candidate", "bad": "inactive", "middling": "active"}
        assert db.get(Strategy, "good").composite_score == pytest.approx(composite_score(0.8, 0.5))
        rows = {e.strategy_id: e for e in db.scalars(select(StrategyEvidence))}
        assert set(rows) == set(ids) and {e.kind for e in rows.values()} == {"validation"}
        assert rows["good"].passed and rows["good"].trials == 4 and rows["good"].window_start == VALIDATION[0]
        assert not rows["lucky"].passed and "5 bets < 30" in rows["lucky"].reasons[0]
        ranking = list(db.scalars(select(StrategyRanking).order_by(StrategyRanking.rank)))
        assert [r.strategy_id for r in ranking] == ["lucky", "good", "middling", "bad"]
        assert all(r.model_version == "strategy-v1" for r in ranking)
    # Storing the same ranking id again (a redelivered task) adds nothing
    refresh(sessions, ml, S, results=on_validation(sessions, ids), ranking_id="r1")
    with sessions() as db:
        assert db.scalar(select(func.count()).select_from(StrategyRanking)) == 4


def test_a_ranking_reads_each_strategys_newest_verdict_and_nothing_else(sessions):
    add_strategy(sessions, "judged", "candidate")
    add_strategy(sessions, "unjudged", "candidate")
    add_result(sessions, "judged", 0.3, 400)
    add_result(sessions, "unjudged", 0.9, 400)
    ml = FakeMLClient(confidences={"judged": 0.5, "unjudged": 0.5})
    refresh(sessions, ml, S, results=on_validation(sessions, ["judged"]), kind=EvidenceKind.VALIDATION,
            allow=(), store_ranking=False)
    add_result(sessions, "judged", 0.99, 400, window=LATER)  # newer, but no verdict read it

    outcome = refresh(sessions, ml, S, allow=(), ranking_id="r2")

    assert [e.backtest_score for e in outcome.evaluations] == [0.3]
    assert set(outcome.unevaluable) == {"unjudged"}


def test_no_strategy_model_raises_or_uses_the_prior_confidence(sessions):
    add_strategy(sessions, "x", "active")
    add_result(sessions, "x", 0.0, 100)
    ml = FakeMLClient()
    ml.fail_with("evaluate_strategy", ModelNotTrained("EvaluateStrategy: the strategy model is not trained yet"))
    with pytest.raises(ModelNotTrained):
        refresh(sessions, ml, Settings(), results=on_validation(sessions, ["x"]), ranking_id="r1")
    with sessions() as db:
        assert db.get(Strategy, "x").status == "active"
        assert db.scalar(select(func.count()).select_from(StrategyRanking)) == 0
    outcome = refresh(sessions, ml, S, results=on_validation(sessions, ["x"]), untrained_confidence=0.5,
                      store_ranking=False)
    assert outcome.evaluations[0].ml_confidence == 0.5 and outcome.evaluations[0].model_version == ""


def test_the_scheduled_refresh_stores_a_ranking_only_when_it_changed(sessions):
    for sid in ("a", "b"):
        add_strategy(sessions, sid, "candidate")
    add_result(sessions, "a", 0.5, 100)
    add_result(sessions, "b", 0.3, 100)
    ml = FakeMLClient(confidences={"a": 0.5, "b": 0.5})
    refresh(sessions, ml, S, results=on_validation(sessions, ["a", "b"]), kind=EvidenceKind.VALIDATION, allow=(),
            store_ranking=False)
    assert refresh(sessions, ml, S, only_if_changed=True).ranking_id is not None
    assert refresh(sessions, ml, S, only_if_changed=True).ranking_id is None  # nothing changed
    ml.confidences["b"] = 0.9  # b now ranks first
    assert refresh(sessions, ml, S, only_if_changed=True).ranking_id is not None
    with sessions() as db:
        assert db.scalar(select(func.count(func.distinct(StrategyRanking.ranking_id)))) == 2
