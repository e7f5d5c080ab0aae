"""The one definition of the backtest score and the composite score.

backtest score, each term clipped to [0, 1] before weighting:

    0.30 * norm(sharpe,        -2.0, 3.0)
  + 0.20 * norm(roi,           -0.5, 1.0)
  + 0.20 * norm(profit_factor,  0.0, 3.0)
  + 0.15 * norm(1 - max_drawdown, 0.5, 1.0)   # drawdown 0 → 1, drawdown ≥ 0.5 → 0
  + 0.15 * win_rate

    norm(x, lo, hi) = min(1, max(0, (x - lo) / (hi - lo)))

A backtest with no bets scores 0, the bottom: it is no evidence of anything, and its neutral
metrics (Sharpe 0, ROI 0, no drawdown) would otherwise score 0.34, above most losing strategies.

composite score = (ML confidence + backtest score) / 2, both in [0, 1], so the composite
is in [0, 1]. A non-finite input scores as the worst value of its term, never NaN.
"""

from __future__ import annotations

import math
from typing import Mapping

WEIGHTS = {"sharpe": 0.30, "roi": 0.20, "profit_factor": 0.20, "drawdown": 0.15, "win_rate": 0.15}


def _norm(x: float, lo: float, hi: float) -> float:
    # Comparisons rather than min/max and isfinite (computed for every stored event): +inf
    # profit factor (no losing bet) is the best value, 1; -inf and NaN (false in both
    # comparisons) the worst, 0.
    v = (x - lo) / (hi - lo)
    return 1.0 if v >= 1.0 else v if v > 0.0 else 0.0


def backtest_score(
    *, sharpe_ratio: float, roi: float, profit_factor: float, max_drawdown: float, win_rate: float, total_bets: int
) -> float:
    if total_bets <= 0:
        return 0.0
    score = (
        WEIGHTS["sharpe"] * _norm(sharpe_ratio, -2.0, 3.0)
        + WEIGHTS["roi"] * _norm(roi, -0.5, 1.0)
        + WEIGHTS["profit_factor"] * _norm(profit_factor, 0.0, 3.0)
        + WEIGHTS["drawdown"] * _norm(1.0 - max_drawdown, 0.5, 1.0)
        + WEIGHTS["win_rate"] * _norm(win_rate, 0.0, 1.0)
    )
    return min(1.0, max(0.0, score))


def backtest_score_of(metrics: Mapping[str, float]) -> float:
    """``backtest_score`` from a mapping with the event's metric names."""
    return backtest_score(
        sharpe_ratio=float(metrics["sharpe_ratio"]),
        roi=float(metrics["roi"]),
        profit_factor=float(metrics["profit_factor"]),
        max_drawdown=float(metrics["max_drawdown"]),
        win_rate=float(metrics["win_rate"]),
        total_bets=int(metrics["total_bets"]),
    )


def composite_score(ml_confidence: float, backtest: float) -> float:
    """(ML confidence + backtest score) / 2, bounded to [0, 1]."""
    c = ml_confidence if math.isfinite(ml_confidence) else 0.0
    b = backtest if math.isfinite(backtest) else 0.0
    return min(1.0, max(0.0, (min(1.0, max(0.0, c)) + min(1.0, max(0.0, b))) / 2.0))
