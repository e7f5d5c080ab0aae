"""The backtester: ``Strategy`` parameters, the numpy ``engine`` (decide on pre-event data, then
``settlement`` in exact integer money), ``metrics`` and ``probability`` sources."""

from edgeloop.backtester.engine import BacktestResult, run_backtest
from edgeloop.backtester.probability import Predictions, ProbabilityProvider
from edgeloop.backtester.strategy import Strategy, load_strategy

__all__ = ["BacktestResult", "run_backtest", "Predictions", "ProbabilityProvider", "Strategy", "load_strategy"]
