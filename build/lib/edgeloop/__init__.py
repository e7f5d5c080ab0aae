"""edgeloop: the loop between betting-strategy backtests and the ML models that learn from them."""

__version__ = "0.1.0"
