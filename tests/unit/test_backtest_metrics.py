"""Metrics worked out by hand from a tiny settlement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeloop.backtester.metrics import PROFIT_FACTOR_CAP, compute_metrics, max_drawdown, per_bet
from edgeloop.backtester.settlement import MICRO, Settlement, odds_to_milli, settle


def settlement(day_pnl_units, days=None):
    """One 1-unit bet per day at odds 2.0 (won when its P&L is positive), bankroll 100."""
    pnl = np.array([int(round(x * MICRO)) for x in day_pnl_units], dtype=np.int64)
    n = len(pnl)
    day = np.array(days or [f"2020-01-{i + 1:02d}" for i in range(n)], dtype="datetime64[D]")
    start = 100 * MICRO + np.r_[0, np.cumsum(pnl)[:-1]]
    return Settlement(event=np.arange(n), selection=np.zeros(n, np.int8), odds_milli=np.full(n, 2000),
                      stake=np.full(n, MICRO), risk=np.full(n, MICRO), won=pnl > 0, pnl=pnl,
                      market_event=np.arange(n), market_pnl=pnl, market_commission=np.zeros(n, np.int64),
                      day=day, day_pnl=pnl, bankroll_start=start, initial_bankroll=100 * MICRO)


def test_drawdown_is_the_largest_fall_from_a_running_peak():
    # 100 → 110 (peak) → 99 → 104 → 88: worst is (110 − 88) / 110 = 0.2
    assert max_drawdown(100, np.array([10, -11, 5, -16])) == pytest.approx(0.2)
    assert max_drawdown(100, np.array([5, 5])) == 0.0
    assert max_drawdown(100, np.array([-150])) == 1.0  # bankroll below zero: everything lost


def test_ratios_profit_factor_sharpe_sortino():
    s = settlement([1.0, -1.0, 1.0, 1.0])
    m = compute_metrics(s, clv=np.array([0.1, np.nan, -0.05, 0.0]), events=4, skipped_no_price=0,
                        skipped_no_prediction=0)
    assert (m.profit, m.turnover, m.roi, m.win_rate) == (2.0, 4.0, 0.5, 0.75)
    assert m.profit_factor == 3.0
    assert m.closing_line_value == pytest.approx(0.05 / 3) and m.clv_bets == 3
    r = np.array([1 / 100, -1 / 101, 1 / 100, 1 / 101])  # P&L over the bankroll at each day's start
    per_year = math.sqrt(4 * 365.25 / 365.25)  # 4 betting days in a window shorter than a year
    assert m.sharpe_ratio == pytest.approx(r.mean() / r.std(ddof=1) * per_year)
    assert m.sortino_ratio == pytest.approx(r.mean() / math.sqrt((r.clip(max=0) ** 2).mean()) * per_year)
    assert 0 <= m.backtest_score <= 1


def test_no_losses_and_no_bets_stay_finite():
    won = compute_metrics(settlement([1.0, 1.0]), clv=None, events=2, skipped_no_price=0, skipped_no_prediction=0)
    assert won.profit_factor == PROFIT_FACTOR_CAP and math.isfinite(won.sortino_ratio)
    none = compute_metrics(settlement([]), clv=None, events=0, skipped_no_price=0, skipped_no_prediction=0)
    assert (none.total_bets, none.roi, none.sharpe_ratio, none.max_drawdown, none.closing_line_value) == (0, 0, 0, 0, None)


def test_per_bet_statistics_match_an_independent_computation():
    rng = np.random.default_rng(7)
    n = 300
    odds = np.round(rng.uniform(1.5, 4.0, n), 2)
    won_sel = rng.random(n) < 1 / odds
    s = settle(event=np.arange(n), selection=np.zeros(n, dtype=np.int64), odds_milli=odds_to_milli(odds),
               kelly=np.zeros(n), result=np.where(won_sel, 0, 1), day=np.arange(n).astype("datetime64[D]"),
               lay=False, staking="flat", flat_stake=1.0, kelly_fraction=0.0, max_stake_fraction=0.0,
               commission=0.0, initial_bankroll=1e6)
    r = np.where(won_sel, odds - 1, -1.0)  # flat stakes of 1: a bet's return is its P&L
    stats = per_bet(s)
    assert stats.markets == n
    assert stats.yield_se == pytest.approx(r.std(ddof=1) / np.sqrt(n), rel=1e-6)
    assert stats.bet_sharpe == pytest.approx(r.mean() / r.std(ddof=1), rel=1e-6)
    z = (r - r.mean()) / r.std()
    assert stats.return_skew == pytest.approx((z ** 3).mean(), rel=1e-6)
    assert stats.return_kurtosis == pytest.approx((z ** 4).mean(), rel=1e-6)
