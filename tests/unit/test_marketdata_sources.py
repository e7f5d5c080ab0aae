"""Price sources a bettor could take: the exchange ladder, the default book, arbitrage quotes, eras."""

from __future__ import annotations

import numpy as np

from edgeloop.marketdata.arrays import load_window
from edgeloop.marketdata.sources import arbitrage_rows, market_wide_era, ticks_up, with_fallback_sources


def test_ticks_up_the_betfair_ladder():
    odds = np.array([1010, 1990, 2000, 2370, 2980, 3000, 3950, 5900, 9800, 19_500, 29_000, 48_000, 95_000, 990_000,
                     1_000_000])
    assert ticks_up(odds, 1).tolist() == [1020, 2000, 2020, 2380, 3000, 3050, 4000, 6000, 10_000, 20_000, 30_000,
                                          50_000, 100_000, 1_000_000, 1_000_000]
    assert ticks_up(np.array([2365]), 1).tolist() == [2380]  # off the ladder: up to the next ladder price
    assert ticks_up(np.array([1990]), 3).tolist() == [2040]
    assert ticks_up(odds, 0).tolist() == odds.tolist()


def test_pinnacle_else_bet365_takes_a_whole_quote_of_one_book():
    nan = np.nan
    ps = np.array([[2.0, 3.4, 4.0], [2.1, nan, 3.9], [nan, nan, nan]])
    b365 = np.array([[1.9, 3.3, 3.8], [2.0, 3.2, 3.6], [2.2, 3.1, 3.5]])
    got = with_fallback_sources({"PS": ps, "B365": b365})["PSB365"]
    assert got.tolist() == [[2.0, 3.4, 4.0], [2.0, 3.2, 3.6], [2.2, 3.1, 3.5]]  # never a mix of two books
    assert "PSB365" not in with_fallback_sources({"WH": b365})


def test_the_default_book_prices_every_shipped_match():
    w = load_window(["E0", "D1"])
    assert np.isfinite(w.price("PSB365")).all()
    has_ps = np.isfinite(w.price("PS")).all(axis=1)
    assert (w.price("PSB365")[has_ps] == w.price("PS")[has_ps]).all()


def test_arbitrage_rows_of_the_maximum_prices():
    prices = np.array([[2.10, 3.60, 4.20], [2.00, 3.40, 3.60], [np.nan, 3.0, 3.0]])  # Σ 1/o: 0.992, 1.072, —
    assert arbitrage_rows(prices).tolist() == [True, False, False]
    # On the shipped data: about half the E0 matches of 2012-13 … 2023-24, few after the 2024-25 change.
    w = load_window(["E0"])
    share = {s: arbitrage_rows(w.price("MAX")[w.seasons == s]).mean() for s in ("2016-17", "2021-22", "2025-26")}
    assert share["2016-17"] > 0.5 and share["2021-22"] > 0.5 and share["2025-26"] < 0.05


def test_eras_of_the_market_wide_columns():
    assert market_wide_era("2018-19").startswith("Betbrain")
    assert market_wide_era("2019-20") == market_wide_era("2023-24") != market_wide_era("2018-19")
    assert "without the Betfair Exchange" in market_wide_era("2024-25") == market_wide_era("2025-26")
