"""edgeloop: the loop between betting-strategy backtests and the ML models that learn from them.

The Python API, importable from the package root::

    import edgeloop

    strategy = edgeloop.load_strategy("examples/kaunitz.json")
    result = edgeloop.backtest(strategy, edgeloop.Window(date(2019, 8, 1), date(2020, 7, 31), ("E0",)))
    edgeloop.publish([result])          # one BacktestFinished event each, on the stream
    edgeloop.get_settings().redis_url   # the one settings object (``edgeloop.Settings``)
    edgeloop.MLClient().health()        # the ML service's gRPC client

Each name is loaded on first use, so ``import edgeloop`` (and every ``edgeloop.…`` module,
which imports this package first) stays cheap and loads neither numpy, Celery nor gRPC.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name → the module that defines it
_API = {
    "backtest": "edgeloop.backtester.run",
    "publish": "edgeloop.backtester.run",
    "Window": "edgeloop.backtester.run",
    "Strategy": "edgeloop.backtester.strategy",
    "load_strategy": "edgeloop.backtester.strategy",
    "BacktestResult": "edgeloop.backtester.engine",
    "Publisher": "edgeloop.producers.publisher",
    "Settings": "edgeloop.core.settings",
    "get_settings": "edgeloop.core.settings",
    "MLClient": "edgeloop.mlclient.client",
}
__all__ = ["BacktestResult", "MLClient", "Publisher", "Settings", "Strategy", "Window", "__version__", "backtest",
           "get_settings", "load_strategy", "publish"]

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ loads each on first use
    from edgeloop.backtester.engine import BacktestResult
    from edgeloop.backtester.run import Window, backtest, publish
    from edgeloop.backtester.strategy import Strategy, load_strategy
    from edgeloop.core.settings import Settings, get_settings
    from edgeloop.mlclient.client import MLClient
    from edgeloop.producers.publisher import Publisher


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'edgeloop' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
