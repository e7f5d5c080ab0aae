"""The demo's evidence: a strategy's yield on three disjoint windows, its bankroll by date, and
the market's own result beside it.

Windows, in order, none overlapping:

* **selection**: where discovery generates, backtests and gates its candidates;
* **validation**: the seasons after it, on which discovery's verdicts are made;
* **final**: the seasons after that, which nothing chooses on.

They are discovery's own windows (``edgeloop.services.windows.current_windows``), so the demo
shows each strategy on the evidence the product judged it by, and on the data it never saw.

The market's own result is backing the favourite of every match, the selection Pinnacle's
pre-match prices make likeliest, at Pinnacle's price with flat stakes: what a bettor with no
model gets, the bookmaker's margin on the likeliest outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from edgeloop.backtester.engine import BacktestResult
from edgeloop.backtester.probability import Predictions, ProbabilityProvider, demargin
from edgeloop.backtester.run import Window, backtest
from edgeloop.backtester.strategy import Strategy
from edgeloop.core.errors import ConfigurationError, InvalidStrategy
from edgeloop.core.settings import Settings
from edgeloop.marketdata.arrays import PreEventArrays
from edgeloop.services.windows import current_windows

WINDOW_NAMES = ("selection", "validation", "final")

# One bet per match, at Pinnacle's price, on the selection with the largest edge against the
# forecast below; every edge is above −1, so every match with Pinnacle prices gets its bet.
FAVOURITE = Strategy(name="back every Pinnacle favourite", price_source="PS", probability_source="model",
                     one_bet_per_event=True, min_edge=-1.0, staking="flat", flat_stake=1.0, initial_bankroll=100.0)


class PinnacleFavourite:
    """De-margined Pinnacle pre-match probabilities, squared and renormalised.

    Against Pinnacle's own prices every de-margined selection has the same edge (1/overround − 1);
    squaring tilts the edges towards the likeliest selection, so ``FAVOURITE``'s one bet per
    match is the favourite. Pinnacle's pre-match prices are known before kick-off."""

    def predictions(self, window: PreEventArrays) -> Predictions:
        p = demargin(window.price("PS")) ** 2
        p = p / p.sum(axis=1, keepdims=True)
        return Predictions(event_ids=window.event_ids, probabilities=p,
                           available_at=window.kickoffs - np.timedelta64(1, "m"), model_version="pinnacle-favourite")


@dataclass(frozen=True)
class Windows:
    selection: Window
    validation: Window
    final: Window

    def named(self) -> dict[str, Window]:
        return {name: getattr(self, name) for name in WINDOW_NAMES}


def demo_windows(settings: Settings) -> Windows:
    leagues = tuple(settings.discovery_leagues)
    spans = current_windows(settings)
    if spans.final is None:
        raise ConfigurationError("the demo shows the final window: set discovery_final_seasons above 0")
    return Windows(*(Window(span.start, span.end, leagues) for span in (spans.selection, spans.validation, spans.final)))


@dataclass(frozen=True)
class Evidence:
    """One strategy's backtests on each window (None: no events or the backtest was refused)."""

    strategy_id: str
    results: dict[str, BacktestResult | None]

    def bets(self, window: str) -> int:
        r = self.results.get(window)
        return r.metrics.total_bets if r is not None else 0

    def yield_(self, window: str) -> float | None:
        """Profit over turnover; None without a bet."""
        r = self.results.get(window)
        return r.metrics.roi if r is not None and r.metrics.total_bets else None

    def as_dict(self) -> dict[str, Any]:
        return {"strategy_id": self.strategy_id,
                **{f"{w}_bets": self.bets(w) for w in WINDOW_NAMES},
                **{f"{w}_yield": self.yield_(w) for w in WINDOW_NAMES}}


def gather(strategy_id: str, params: Strategy | Mapping[str, Any], windows: Windows,
           provider: ProbabilityProvider | None) -> Evidence:
    results: dict[str, BacktestResult | None] = {}
    for name, window in windows.named().items():
        try:
            results[name] = backtest(params, window, predictions=provider)
        except InvalidStrategy:  # no events of the leagues in the window
            results[name] = None
    return Evidence(strategy_id, results)


def bankroll_by_date(result: BacktestResult) -> tuple[np.ndarray, np.ndarray]:
    """(dates, bankroll as a multiple of the initial one): the window's first day at 1.0, then
    the bankroll after each betting day."""
    s = result.settlement
    days = np.concatenate([[np.datetime64(result.window_start, "D")], np.asarray(s.day, dtype="datetime64[D]")])
    after = (np.asarray(s.bankroll_start, dtype=np.float64) + np.asarray(s.day_pnl, dtype=np.float64))
    return days, np.concatenate([[1.0], after / s.initial_bankroll])
