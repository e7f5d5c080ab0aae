"""Hand-checked profits for each side and staking mode (tests/support/market_fixture.py).

Working, BACK flat 10, min_edge 0.05 (edge = p·o − 1):
  A–B  H 0.55·2.10−1 = +0.155 bet, won  +11.00
  C–D  A 0.25·4.50−1 = +0.125 bet, won  +35.00
  E–F  D 0.35·3.20−1 = +0.120 bet, lost −10.00      → profit 36, turnover 30
LAY flat 10 at the exchange's prices with no back–lay spread (edge = (1 − p·o)/(o − 1)), 5%
commission on each market's net win:
  A–B  D (1−0.85)/2.4 = .0625, A (1−0.72)/2.6 = .108: both win +20 − 1.00 = 19.00
  C–D  H (1−0.875)/0.75 = .167: wins +10 − 0.50 = 9.50
  E–F  A (1−0.825)/1.5 = .117: loses the liability 15       → profit 13.50, turnover 24+26+7.5+15
"""

from __future__ import annotations

import numpy as np
import pytest

from edgeloop.backtester.engine import run_backtest
from edgeloop.backtester.execution import ExecutionTerms
from edgeloop.backtester.strategy import Strategy
from tests.support.market_fixture import predictions, window

NO_SPREAD = ExecutionTerms(lay_spread_ticks=0)


def run(source="X", terms=NO_SPREAD, **params):
    w = window(source)
    return run_backtest(Strategy(name="t", price_source=source, probability_source="model", min_edge=0.05, **params),
                        w, predictions(w), terms=terms).metrics


def test_back_flat():
    m = run(flat_stake=10)
    assert (m.total_bets, m.profit, m.turnover) == (3, 36.0, 30.0)
    assert m.roi == pytest.approx(1.2) and m.win_rate == pytest.approx(2 / 3)
    assert m.average_odds == pytest.approx((2.10 + 4.50 + 3.20) / 3)
    assert (m.skipped_no_price, m.skipped_no_prediction, m.events) == (1, 1, 5)


def test_back_flat_with_commission_per_market():
    m = run(flat_stake=10, commission=0.05)
    assert m.profit == 33.70 and m.commission == 2.30  # 0.55 + 1.75


def test_lay_flat_with_commission():
    m = run("BFE", side="lay", flat_stake=10)
    assert (m.total_bets, m.profit, m.turnover, m.commission) == (4, 13.50, 72.5, 1.50)
    assert m.win_rate == 0.75
    assert m.profit_factor == pytest.approx(28.5 / 15)


def test_lay_at_betfair_prices_pays_the_spread_and_the_commission():
    # One tick above each back price on the Betfair ladder, default 5% commission:
    #   A–B  D 3.45: (1 − .25·3.45)/2.45 = .056, A 3.65: (1 − .2·3.65)/2.65 = .102 (H 2.12: no edge)
    #        both win: +20 − 1.00 commission = 19.00
    #   C–D  H 1.76: (1 − .5·1.76)/.76 = .158, wins +10 − 0.50 = 9.50 (D 3.65: .033, too small)
    #   E–F  A 2.52: (1 − .33·2.52)/1.52 = .111, loses the liability 15.20
    # → profit 13.30 (0.20 less than at the back price), turnover 24.50 + 26.50 + 7.60 + 15.20
    m = run("BFE", terms=ExecutionTerms(), side="lay", flat_stake=10)
    assert (m.total_bets, m.profit, m.commission) == (4, 13.30, 1.50)
    assert m.turnover == pytest.approx(73.80) and m.average_odds == pytest.approx((3.45 + 3.65 + 1.76 + 2.52) / 4)


def test_commission_follows_the_exchange_setting():
    assert run("BFE", flat_stake=10).profit == 33.70  # a back at the exchange pays 5% too
    assert run("BFE", terms=ExecutionTerms(exchange_commission=0.02), flat_stake=10).profit == 35.08
    assert run("X", flat_stake=10).profit == 36.0  # a bookmaker charges none


def test_back_kelly_compounds_day_by_day():
    # Day 1 (bankroll 100): A–B half Kelly 0.5·0.155/1.1 = 7.045% → 7.04, wins 7.744;
    #   C–D 0.5·0.125/3.5 = 1.786% → 1.78, wins 6.23.  Bankroll 113.974.
    # Day 2: E–F 0.5·0.12/2.2 = 2.727% of 113.974 → 3.10, lost.  Final 110.874.
    m = run(staking="kelly", kelly_fraction=0.5, max_stake_fraction=0.1)
    assert m.profit == 10.874 and m.final_bankroll == 110.874
    assert m.turnover == 7.04 + 1.78 + 3.10


def test_back_kelly_capped_by_max_stake_fraction():
    # Cap 2%: 2.00 wins 2.20; 1.78 wins 6.23 → 108.43; 2% of it → 2.16, lost → 106.27
    m = run(staking="kelly", kelly_fraction=0.5, max_stake_fraction=0.02)
    assert m.profit == 6.27


def test_lay_kelly_sizes_the_liability():
    # Lay Kelly fraction of bankroll at risk = 1 − p·o, halved, capped at 12.5%:
    # A–B D 0.075·100 = 7.5 liability → stake 7.5/2.4 = 3.12, wins 3.12
    #     A 0.14 → cap 0.125 → 12.5/2.6 → 4.80, wins 4.80
    # C–D H 0.0625·100 = 6.25/0.75 → 8.33, wins 8.33           → bankroll 116.25
    # E–F A 0.0875·116.25 = 10.17/1.5 → 6.78, liability 10.17, lost → 106.08
    m = run("BFE", side="lay", staking="kelly", kelly_fraction=0.5, max_stake_fraction=0.125, commission=0.0)
    assert m.profit == 6.08 and m.total_bets == 4
    assert m.turnover == pytest.approx(3.12 * 2.4 + 4.80 * 2.6 + 8.33 * 0.75 + 10.17)


def test_one_bet_per_event_keeps_the_largest_edge():
    m = run("BFE", side="lay", flat_stake=10, one_bet_per_event=True)
    assert m.total_bets == 3  # A–B: only the away lay (edge .108 > .0625)


def test_profit_sum_has_no_float_drift():
    # 1,000 bets of 0.10 at 1.10, 850 won (+0.01 each) and 150 lost (−0.10 each): exactly −6.50.
    from datetime import date, timedelta

    from edgeloop.marketdata.arrays import arrays_from_matches
    from edgeloop.marketdata.csv import Match

    won = [i % 20 < 17 for i in range(1000)]
    matches = [Match(league="T", season="2019-20", date=date(2019, 8, 1) + timedelta(days=i), kickoff=None,
                     home_team=f"h{i}", away_team=f"a{i}", home_goals=1 if won[i] else 0,
                     away_goals=0 if won[i] else 1, result="H" if won[i] else "A",
                     prices={"X": (1.10, 8.0, 15.0), "AVG": (1.05, 9.0, 16.0)}) for i in range(1000)]
    w = arrays_from_matches(matches)
    assert sum(0.1 * 0.1 if x else -0.1 for x in won) != -6.5  # what naive float sums give
    m = run_backtest(Strategy(name="t", price_source="X", selections=("home",), flat_stake=0.10, min_edge=-1.0), w).metrics
    assert m.total_bets == 1000 and m.profit == -6.5 and m.turnover == 100.0


def test_metrics_are_finite_and_score_bounded():
    m = run(flat_stake=10)
    for name in ("sharpe_ratio", "sortino_ratio", "max_drawdown", "profit_factor", "backtest_score"):
        assert np.isfinite(getattr(m, name))
    assert 0 <= m.backtest_score <= 1 and 0 <= m.max_drawdown <= 1


def test_flat_bets_of_one_day_never_risk_more_than_the_bankroll():
    # Bankroll 15, stakes 10. Day 1: A–B takes 10 of the 15; C–D's 10 no longer fits, not placed.
    # A–B wins +11 → 26. Day 2: E–F fits, loses 10 → 16.
    m = run(flat_stake=10, initial_bankroll=15)
    assert (m.total_bets, m.profit, m.skipped_bankroll, m.final_bankroll, m.ruined) == (2, 1.0, 1, 16.0, False)


def test_flat_betting_stops_at_ruin():
    # Bankroll 10: day 1 only A–B fits (wins +11 → 21); day 2 E–F loses 10 → 11. Then bankroll 5:
    # day 1 nothing fits (each bet risks 10), so the strategy is ruined without a bet.
    assert run(flat_stake=10, initial_bankroll=10).final_bankroll == 11.0
    m = run(flat_stake=10, initial_bankroll=5)
    assert (m.total_bets, m.skipped_bankroll, m.final_bankroll, m.ruined, m.sharpe_ratio) == (0, 3, 5.0, True, 0.0)
