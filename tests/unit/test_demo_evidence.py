"""The demo's evidence: disjoint windows, the market's own result, bankroll by date."""

from __future__ import annotations

from datetime import date

import numpy as np

from edgeloop.core.settings import Settings
from edgeloop.demo.evidence import FAVOURITE, PinnacleFavourite, bankroll_by_date, demo_windows, gather
from edgeloop.marketdata.arrays import load_window


def test_windows_follow_each_other_without_overlap():
    w = demo_windows(Settings(discovery_through_season="2025-26"))
    assert w.selection.end < w.validation.start <= w.validation.end < w.final.start
    assert (w.validation.start - w.selection.end).days < 60 and (w.final.start - w.validation.end).days < 60
    assert w.final.end >= date(2026, 5, 1)


def test_the_market_baseline_backs_every_pinnacle_favourite_at_pinnacle_prices():
    # Given the final window's matches and an independent computation of backing each favourite
    w = demo_windows(Settings())
    data = load_window(w.final.leagues, w.final.start, w.final.end)
    odds = data.price("PS")
    played = np.isfinite(odds).all(axis=1) & (data.results >= 0)
    fav = odds[played].argmin(axis=1)
    pnl = np.where(fav == data.results[played], odds[played][np.arange(played.sum()), fav] - 1.0, -1.0)
    # When the backtester runs the baseline strategy
    result = gather("market", FAVOURITE, w, PinnacleFavourite()).results["final"]
    # Then it placed the same bets and made the same profit
    assert result.metrics.total_bets == played.sum() > 500
    assert abs(result.metrics.profit - pnl.sum()) < 1e-6
    assert abs(result.metrics.roi - pnl.mean()) < 1e-9


def test_bankroll_by_date_starts_at_one_and_ends_at_the_final_bankroll():
    w = demo_windows(Settings())
    result = gather("market", FAVOURITE, w, PinnacleFavourite()).results["validation"]
    days, bankroll = bankroll_by_date(result)
    assert days[0] == np.datetime64(w.validation.start) and (np.diff(days) > np.timedelta64(0, "D")).all()
    assert bankroll[0] == 1.0
    assert abs(bankroll[-1] - result.metrics.final_bankroll / FAVOURITE.initial_bankroll) < 1e-9
    assert days[-1] <= np.datetime64(w.validation.end) and len(days) > 150  # one point per betting day
