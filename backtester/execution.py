"""What a bettor could actually take: the price each bet is struck at, and what it costs.

* **Lays only at the exchange.** A bookmaker's price is a back price; nobody lays at it. A lay
  strategy must price its bets at the Betfair Exchange (``BFE``, closing ``BFEC``), and
  ``Strategy`` refuses any other source. football-data's exchange columns are back prices;
  a lay is struck ``lay_spread_ticks`` steps of the Betfair price ladder above them (one tick
  by default: the usual back–lay spread of a liquid Premier League match-odds market).
* **Exchange commission** on each market's net winnings, ``exchange_commission`` (5% by
  default), for every bet at an exchange price; bookmakers charge none. A strategy's own
  ``commission`` parameter overrides both.
* **Maximum prices that are not a price.** At ``MAX``/``MAXC`` a match whose three maximum
  prices imply less than 100% (``marketdata.sources.arbitrage_rows``) is skipped and counted,
  unless ``keep_max_arbitrage``: the three maxima come from different books, and such a
  quote is an arbitrage on paper that no single bettor could take in size.

The terms come from the settings (``ExecutionTerms.from_settings``) and are part of a
backtest's identity (``report.backtest_id``): changing them changes the result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeloop.backtester.settlement import odds_to_milli
from edgeloop.backtester.strategy import Strategy
from edgeloop.core.settings import Settings, get_settings
from edgeloop.marketdata.arrays import PreEventArrays
from edgeloop.marketdata.sources import EXCHANGE_SOURCES, MAXIMUM_SOURCES, arbitrage_rows, ticks_up


@dataclass(frozen=True, slots=True)
class ExecutionTerms:
    exchange_commission: float = 0.05
    lay_spread_ticks: int = 1
    keep_max_arbitrage: bool = False

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "ExecutionTerms":
        settings = settings or get_settings()
        return cls(exchange_commission=settings.exchange_commission,
                   lay_spread_ticks=settings.exchange_lay_spread_ticks,
                   keep_max_arbitrage=settings.backtest_keep_max_arbitrage)

    def commission(self, strategy: Strategy) -> float:
        """The rate charged on each market's net winnings."""
        if strategy.commission is not None:
            return strategy.commission
        return self.exchange_commission if strategy.price_source in EXCHANGE_SOURCES else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Quotes:
    """The prices a strategy's bets would be struck at."""

    odds_milli: np.ndarray  # (n, 3) integer thousandths; 0 = no price to take
    max_arbitrage: np.ndarray  # (n,) bool: skipped, the maximum prices imply less than 100%


def quotes(strategy: Strategy, window: PreEventArrays, terms: ExecutionTerms) -> Quotes:
    raw = window.price(strategy.price_source)
    skip = np.zeros(len(window), dtype=bool)
    if strategy.price_source in MAXIMUM_SOURCES and not terms.keep_max_arbitrage:
        skip = arbitrage_rows(raw)
    odds = np.where(np.isfinite(raw), odds_to_milli(np.nan_to_num(raw, nan=0.0)), 0)
    odds[skip] = 0
    if strategy.side == "lay":
        odds = np.where(odds > 0, ticks_up(odds, terms.lay_spread_ticks), 0)
    return Quotes(odds_milli=odds, max_arbitrage=skip)
