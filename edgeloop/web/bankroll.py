"""A strategy's bankroll over time on one window, drawn by running the backtester again.

The stored results keep a backtest's metrics, not its day-by-day bankroll; the backtester is
deterministic, so running the strategy's parameters over the same window draws the same
curve the stored metrics summarise (the page shows both, and the test checks they agree).
A run costs milliseconds once the window's events are loaded (``marketdata`` keeps them), and
each curve is kept in a bounded cache: a strategy page asks for it again on every view.

A strategy betting on model probabilities needs the ML service's point-in-time predictions:
``predictions`` supplies them (the ML client), and without it, or with the service away, the
window says why it has no curve instead of failing the page.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable, Mapping

from edgeloop.backtester.run import Window, backtest
from edgeloop.backtester.settlement import MICRO
from edgeloop.core.errors import EdgeloopError

log = logging.getLogger(__name__)

CACHED_CURVES = 2048
DEFAULT_LEAGUES = ("E0",)  # a strategy whose parameters name no league


@dataclass(frozen=True, slots=True)
class Curve:
    """The bankroll at the end of each betting day of a window (empty with a ``note``)."""

    start: date
    end: date
    leagues: tuple[str, ...]
    days: tuple[date, ...] = ()
    bankroll: tuple[float, ...] = ()
    initial: float = 0.0
    bets: int = 0
    roi: float | None = None
    note: str = ""

    @property
    def final(self) -> float | None:
        return self.bankroll[-1] if self.bankroll else None


class Bankrolls:
    """Curves per (parameters, window), computed once and kept (least recently used dropped)."""

    def __init__(self, predictions: Callable[[], Any] | None = None, data_dir: str | None = None,
                 size: int = CACHED_CURVES) -> None:
        self._predictions = predictions
        self._data_dir = data_dir
        self._size = size
        self._cache: OrderedDict[str, Curve] = OrderedDict()
        self._lock = threading.Lock()

    def curve(self, params: Mapping[str, Any], start: date, end: date) -> Curve:
        leagues = tuple(params.get("leagues") or DEFAULT_LEAGUES)
        key = json.dumps([params, start.isoformat(), end.isoformat()], sort_keys=True, default=str)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        found = self._draw(params, start, end, leagues)
        with self._lock:
            self._cache[key] = found
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return found

    def _draw(self, params: Mapping[str, Any], start: date, end: date, leagues: tuple[str, ...]) -> Curve:
        predictions = None
        try:
            if params.get("probability_source") == "model":
                if self._predictions is None:
                    return Curve(start, end, leagues, note="bets on model probabilities: needs the ML service")
                predictions = self._predictions()
            result = backtest({"name": "page", **params}, Window(start, end, leagues), predictions=predictions,
                              data_dir=self._data_dir)
        except EdgeloopError as exc:  # bad parameters, no events on the window, the ML service away
            return Curve(start, end, leagues, note=f"not drawn: {exc}")
        s = result.settlement
        ends = (s.bankroll_start + s.day_pnl) / MICRO
        days = tuple(date.fromisoformat(str(d)) for d in s.day)
        return Curve(start, end, leagues, days=days, bankroll=tuple(float(x) for x in ends),
                     initial=s.initial_bankroll / MICRO, bets=result.metrics.total_bets, roi=result.metrics.roi)
