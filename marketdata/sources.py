"""What the price sources of football-data.co.uk are, and which of them a bettor could take.

* **Bookmakers** (``B365``, ``PS`` = Pinnacle, ``WH`` …): back prices of one real book.
* **The Betfair Exchange** (``BFE``, closing ``BFEC``; E0 from 2024-25, D1 from 2025-26): the
  exchange's back prices, on its price ladder. The only source a lay can be struck at.
  ``BF`` is Betfair's *sportsbook*, a bookmaker.
* **Market-wide columns** (``MAX``, ``AVG`` and closing ``MAXC``, ``AVGC``): the maximum and
  average over many books. The maximum is not one book's quote: its three prices usually
  come from different books, and often add up to less than 100% implied probability (an
  arbitrage on paper, rarely there in size). ``arbitrage_rows`` flags those rows.
* **Derived**: ``PSB365`` is Pinnacle's quote where the match has one, else Bet365's
  (closing: ``PSB365C``), a whole quote of one real book per match, available in every
  shipped season. It is the backtester's default price source.

The market-wide columns change definition twice (``MARKET_WIDE_ERAS``, measured on the
shipped files in ``docs/marketdata.md``), so a yield at ``MAX`` or ``AVG`` over seasons of two
eras mixes two different prices.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

EXCHANGE_SOURCES = frozenset({"BFE", "BFEC"})
MAXIMUM_SOURCES = frozenset({"MAX", "MAXC"})
MARKET_WIDE_SOURCES = frozenset({"MAX", "AVG", "MAXC", "AVGC"})

# Derived source -> the sources it takes a whole quote from, first complete one wins.
FALLBACK_SOURCES: dict[str, tuple[str, ...]] = {
    "PSB365": ("PS", "B365"),
    "PSB365C": ("PSC", "B365C"),
}
DEFAULT_BOOK = "PSB365"

# (first season, description) of each definition of football-data's MAX/AVG columns.
MARKET_WIDE_ERAS: tuple[tuple[str, str], ...] = (
    ("2005-06", "Betbrain maximum/average (BbMx*/BbAv*) over the books Betbrain listed"),
    ("2019-20", "market maximum/average (Max*/Avg*) over more books than the file lists"),
    ("2024-25", "market maximum/average without the Betfair Exchange (from 2025-26 without Pinnacle too)"),
)

# The Betfair price ladder: (upper bound, step), thousandths of decimal odds.
_LADDER = ((2000, 10), (3000, 20), (4000, 50), (6000, 100), (10_000, 200), (20_000, 500),
           (30_000, 1000), (50_000, 2000), (100_000, 5000), (1_000_000, 10_000))
LADDER_TOP = 1_000_000


def market_wide_era(season: str) -> str:
    """The definition of the MAX/AVG columns in ``season`` ("2019-20")."""
    era = MARKET_WIDE_ERAS[0][1]
    for first, description in MARKET_WIDE_ERAS:
        if season >= first:
            era = description
    return era


def with_fallback_sources(prices: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``prices`` (source → (n, 3) odds, NaN = none) plus every derived source it can make:
    per row the first source in the fallback list with all three prices."""
    out = dict(prices)
    for derived, parts in FALLBACK_SOURCES.items():
        present = [prices[p] for p in parts if p in prices]
        if not present or derived in prices:
            continue
        quote = np.full_like(present[0], np.nan)
        for part in reversed(present):  # earlier sources overwrite later ones
            complete = np.isfinite(part).all(axis=1)
            quote[complete] = part[complete]
        out[derived] = quote
    return out


def arbitrage_rows(prices: np.ndarray) -> np.ndarray:
    """Rows of (n, 3) odds whose three prices imply less than 100% (Σ 1/o < 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        implied = (1.0 / prices).sum(axis=1)
    return np.isfinite(implied) & (implied < 1.0)


def ticks_up(odds_milli: np.ndarray, ticks: int) -> np.ndarray:
    """Odds (integer thousandths) moved ``ticks`` steps up the Betfair ladder: each step goes
    to the next ladder price strictly above (an off-ladder price first rounds up to it)."""
    odds = np.asarray(odds_milli, dtype=np.int64).copy()
    bounds = np.array([b for b, _ in _LADDER], dtype=np.int64)
    steps = np.array([s for _, s in _LADDER], dtype=np.int64)
    for _ in range(ticks):
        step = steps[np.minimum(np.searchsorted(bounds, odds, side="right"), len(steps) - 1)]
        odds = np.minimum((odds // step + 1) * step, LADDER_TOP)
    return odds
