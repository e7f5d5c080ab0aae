import math

import pytest

from edgeloop.core.scoring import backtest_score, composite_score


def score(**kw):
    base = dict(sharpe_ratio=0.0, roi=0.0, profit_factor=1.0, max_drawdown=0.0, win_rate=0.5, total_bets=100)
    return backtest_score(**{**base, **kw})


def test_hand_computed_value():
    # sharpe 0.5 → 0.5; roi 0.25 → 0.5; pf 1.5 → 0.5; drawdown 0.25 → 0.5; win rate 0.5
    assert score(sharpe_ratio=0.5, roi=0.25, profit_factor=1.5, max_drawdown=0.25) == pytest.approx(0.5)


def test_bounds_hold_for_extremes_and_non_finite_inputs():
    best = score(sharpe_ratio=99, roi=99, profit_factor=math.inf, max_drawdown=0, win_rate=1)
    worst = score(sharpe_ratio=-math.inf, roi=math.nan, profit_factor=0, max_drawdown=1, win_rate=0)
    assert best == pytest.approx(1.0)
    assert worst == 0.0


def test_a_strategy_that_never_bets_scores_at_the_bottom():
    never = score(sharpe_ratio=0.0, roi=0.0, profit_factor=0.0, max_drawdown=0.0, win_rate=0.0, total_bets=0)
    # The Kaunitz E0 loser's metrics (yield −5%, ruined): a strategy with bets, losing them.
    loser = score(sharpe_ratio=-0.9, roi=-0.05, profit_factor=0.9, max_drawdown=1.0, win_rate=0.3)
    assert never == 0.0
    assert loser > never


@pytest.mark.parametrize("conf,bt,expected", [(1, 1, 1), (0, 0, 0), (0.8, 0.5, 0.65), (2, -1, 0.5), (math.nan, 1, 0.5)])
def test_composite_is_the_bounded_mean(conf, bt, expected):
    assert composite_score(conf, bt) == pytest.approx(expected)
