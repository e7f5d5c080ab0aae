"""One call from a strategy and a window description to a result: what the CLI and the Celery
task share, so both load data, check and publish the same way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping, Sequence

from edgeloop.backtester.engine import BacktestResult, run_backtest
from edgeloop.backtester.execution import ExecutionTerms
from edgeloop.backtester.probability import Predictions, ProbabilityProvider
from edgeloop.backtester.report import to_event
from edgeloop.backtester.strategy import Strategy
from edgeloop.core.errors import InvalidStrategy
from edgeloop.marketdata.arrays import load_window
from edgeloop.producers.publisher import Publisher


@dataclass(frozen=True, slots=True)
class Window:
    start: date
    end: date
    leagues: tuple[str, ...] = ("E0",)

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InvalidStrategy(f"window end {self.end} is before its start {self.start}")
        if not self.leagues:
            raise InvalidStrategy("a window needs at least one league")


def backtest(strategy: Strategy | Mapping[str, Any], window: Window, *,
             predictions: Predictions | ProbabilityProvider | None = None,
             database_url: str | None = None, data_dir: str | None = None,
             terms: ExecutionTerms | None = None) -> BacktestResult:
    """Load the window (CSV files by default, the market tables with ``database_url``) and run
    (``terms``: the settings' execution terms by default)."""
    if not isinstance(strategy, Strategy):
        strategy = Strategy.from_mapping(strategy)
    data = load_window(window.leagues, window.start, window.end, database_url=database_url, data_dir=data_dir)
    if len(data) == 0:
        raise InvalidStrategy(f"no events for {', '.join(window.leagues)} between {window.start} and {window.end}")
    return run_backtest(strategy, data, predictions, window_start=window.start, window_end=window.end, terms=terms)


def publish(results: Sequence[BacktestResult], publisher=None) -> list[str]:
    """Publish one BacktestFinished event per result; returns the stream entry ids."""
    publisher = publisher or Publisher()
    return [publisher.publish(to_event(r)) for r in results]
