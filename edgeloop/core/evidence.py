"""How much a backtest proves: a lower confidence bound on yield and the deflated Sharpe ratio.

A backtest's yield over n bets is an estimate with a standard error; a high yield over five
bets is noise. And a discovery run that tries N strategies and keeps the best one keeps its
luck too: the best of N Sharpe ratios of worthless strategies grows like √(2 ln N).

* **yield lower bound**: ``roi − z · yield_se``, ``yield_se`` the standard error of the ratio
  estimator profit/turnover over the backtest's markets (``edgeloop.backtester.metrics``);
  ``z`` = ``gate_yield_z``. With no bets there is no estimate: −1, the worst yield.
* **deflated Sharpe ratio** (Bailey & López de Prado, "The Deflated Sharpe Ratio", 2014): the
  probability that the strategy's true Sharpe ratio per bet exceeds the best that ``trials``
  worthless strategies would show by luck,

      SR₀ = √V · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e)))
      DSR = Φ((SR − SR₀) √(T − 1) / √(1 − g₃ SR + (g₄ − 1)/4 SR²))

  SR the Sharpe ratio per bet (per market: mean / sd of market P&L over its risk, not
  annualised), T the number of markets bet, g₃ and g₄ the skewness and (non-excess) kurtosis of
  those returns, N the number of strategies tried on the same window, V the variance of their
  Sharpe ratios, γ the Euler–Mascheroni constant. With N = 1, SR₀ = 0 and DSR is the
  probabilistic Sharpe ratio.

``shrink``: a score pulled toward the typical score by the bets it rests on,
``(n·score + k·prior) / (n + k)`` (the posterior mean when each bet is one noisy observation
and the population of strategies is the prior): what discovery seeds from, so a search does
not start from flukes of a few bets.

``gate`` combines them with the bets floor: a strategy passes only with at least
``min_bets`` bets, a yield lower bound above ``min_yield_lcb`` and a DSR of at least
``min_dsr``. Pure functions: the whole policy is here and in ``Settings``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Mapping, Sequence

EULER_GAMMA = 0.5772156649015329
# k: a score resting on k bets weighs as much as the prior. Between-strategy score variance
# ≈ τ² + σ²/n on 1,500 random in-sample backtests puts σ²/τ² at ~40 (≥ 10 bets) to ~80
# (≥ 30 bets).
SHRINK_BETS = 50.0
_N = NormalDist()


def shrink(score: Any, bets: Any, prior: float, k: float = SHRINK_BETS) -> Any:
    """``(n·score + k·prior) / (n + k)``; floats or numpy arrays alike."""
    return (bets * score + k * prior) / (bets + k)


def yield_lcb(roi: float, yield_se: float, bets: int, z: float) -> float:
    """Lower confidence bound on yield; −1 (the worst) without bets or a finite error."""
    if bets <= 0 or not math.isfinite(roi) or not math.isfinite(yield_se):
        return -1.0
    return roi - z * yield_se


def expected_max_sharpe(trials: int, sharpe_variance: float) -> float:
    """SR₀: the expected maximum Sharpe ratio of ``trials`` strategies whose true Sharpe is 0."""
    if trials <= 1 or sharpe_variance <= 0 or not math.isfinite(sharpe_variance):
        return 0.0
    n = float(trials)
    return math.sqrt(sharpe_variance) * ((1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / n)
                                         + EULER_GAMMA * _N.inv_cdf(1 - 1 / (n * math.e)))


def deflated_sharpe(sharpe: float, observations: int, skew: float, kurtosis: float, trials: int,
                    sharpe_variance: float) -> float:
    """The deflated Sharpe ratio in [0, 1]; 0 with fewer than two observations."""
    if observations < 2 or not math.isfinite(sharpe):
        return 0.0
    sr0 = expected_max_sharpe(trials, sharpe_variance)
    g3 = skew if math.isfinite(skew) else 0.0
    g4 = kurtosis if math.isfinite(kurtosis) else 3.0
    denom = 1 - g3 * sharpe + (g4 - 1) / 4 * sharpe ** 2
    if denom <= 0:
        return 0.0
    return _N.cdf((sharpe - sr0) * math.sqrt(observations - 1) / math.sqrt(denom))


def sharpe_variance(sharpes: Sequence[float]) -> float:
    """Variance (ddof 1) of the trials' per-bet Sharpe ratios; 0 with fewer than two."""
    xs = [x for x in sharpes if math.isfinite(x)]
    if len(xs) < 2:
        return 0.0
    mean = sum(xs) / len(xs)
    return sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the gate reads of one backtest (``Evidence.of`` its metrics)."""

    total_bets: int
    markets: int  # markets bet: the observations of the per-bet returns
    roi: float
    yield_se: float
    bet_sharpe: float
    return_skew: float
    return_kurtosis: float

    @classmethod
    def of(cls, metrics: Mapping[str, Any]) -> "Evidence":
        """From a mapping of the event's metric names; a result without the per-bet statistics
        (a producer that does not send them) has an unknown error: no evidence of an edge."""
        def get(k: str, default: float) -> float:
            return float(metrics[k]) if metrics.get(k) is not None else default

        bets = int(metrics.get("total_bets", 0))
        return cls(total_bets=bets, markets=int(get("markets", bets)), roi=get("roi", 0.0),
                   yield_se=get("yield_se", math.inf), bet_sharpe=get("bet_sharpe", 0.0),
                   return_skew=get("return_skew", 0.0), return_kurtosis=get("return_kurtosis", 3.0))


@dataclass(frozen=True, slots=True)
class GateVerdict:
    passed: bool
    total_bets: int
    yield_lcb: float
    deflated_sharpe: float
    trials: int
    reasons: tuple[str, ...]  # why it failed; empty when it passed

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reasons": list(self.reasons)}


def gate(e: Evidence, *, trials: int, trial_sharpe_variance: float, min_bets: int, z: float,
         min_yield_lcb: float, min_dsr: float) -> GateVerdict:
    """Enough bets, a yield that stays above ``min_yield_lcb`` at its lower bound, and a Sharpe
    ratio that beats the best of ``trials`` lucky ones with probability ≥ ``min_dsr``."""
    lcb = yield_lcb(e.roi, e.yield_se, e.total_bets, z)
    dsr = deflated_sharpe(e.bet_sharpe, e.markets, e.return_skew, e.return_kurtosis, trials,
                          trial_sharpe_variance)
    reasons = []
    if e.total_bets < min_bets:
        reasons.append(f"{e.total_bets} bets < {min_bets}")
    if not lcb > min_yield_lcb:
        reasons.append(f"yield lower bound {lcb:+.4f} ≤ {min_yield_lcb:+.4f}")
    if dsr < min_dsr:
        reasons.append(f"deflated Sharpe {dsr:.3f} < {min_dsr:.3f} ({trials} trials)")
    return GateVerdict(not reasons, e.total_bets, lcb, dsr, trials, tuple(reasons))
