"""GenerateStrategy: new parameter sets worth backtesting next, within a user's risk limits.

Candidates come from two sources: mutations of the best strategies backtested so far (or the
request's seed strategies) — exploitation — and uniform draws over the whole parameter space
— exploration. The strategy model scores every candidate, and they are ranked by an upper
confidence bound, ``μ + κ·σ_trees`` (UCB): a candidate is picked either because it is
expected to score well or because the model knows little about its region and a backtest
there teaches it the most. κ = ``EXPLORATION_KAPPA``.

μ and σ are those of the model's ``shrunk_score`` label (the backtest score shrunk toward the
typical score by its number of bets, ``edgeloop.mlservice.strategy_model``), not of the raw score:
ranked by the raw score, the search collapsed onto strategies with a handful of lucky bets —
in-sample scores near 1.0 that never reach ``min_bets_for_activation`` and whose regions
also attracted the exploration bonus (bench/discovery.py: 17–32 strategies with ≥ 30 bets
after 200 backtests, against ~85 for random search; ~140 with the shrunk label). A model
trained before that label existed is ranked by its raw score. The candidates'
``expected_score``, ``uncertainty`` and ``confidence`` remain the raw score's, as
EvaluateStrategy reports them.

Constraints: ``risk_level`` bounds the stake sizing and the odds range (``RISK_LIMITS``);
``target_return``, ``max_drawdown`` and ``min_win_rate`` are compared with the model's
predicted ROI, drawdown and win rate. A parameter set that was already backtested (its
canonical fingerprint is among the stored feedback samples) is never returned, nor twice the
same one. Without a trained model the candidates are exploration draws only, returned with
empty ``model_version`` and zero scores: nothing is predicted about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edgeloop.core.errors import InvalidRequest
from edgeloop.mlservice.strategy_model import StrategyModel, canonical_params, fingerprint_of_canonical

EXPLORATION_KAPPA = 1.0
SEARCH_TARGET = "shrunk_score"  # the strategy model's label the UCB ranks by
CANDIDATE_POOL = 600  # scored per request; ~10 ms of tree walking


@dataclass(frozen=True)
class RiskLimits:
    max_kelly_fraction: float
    max_stake_fraction: float
    max_odds: float


RISK_LIMITS = {
    "low": RiskLimits(max_kelly_fraction=0.1, max_stake_fraction=0.02, max_odds=4.0),
    "medium": RiskLimits(max_kelly_fraction=0.25, max_stake_fraction=0.05, max_odds=10.0),
    "high": RiskLimits(max_kelly_fraction=0.5, max_stake_fraction=0.1, max_odds=30.0),
}
SELECTION_SETS = (("home",), ("draw",), ("away",), ("home", "away"), ("home", "draw"), ("draw", "away"),
                  ("home", "draw", "away"))
PRICE_SOURCES = ("MAX", "AVG", "PS", "B365")


@dataclass(frozen=True)
class Constraints:
    risk_level: str = "medium"
    target_return: float = 0.0
    max_drawdown: float = 0.0
    min_win_rate: float = 0.0

    @classmethod
    def from_proto(cls, c) -> "Constraints":
        risk = (c.risk_level or "medium").strip().lower()
        if risk not in RISK_LIMITS:
            raise InvalidRequest(f"constraints.risk_level {c.risk_level!r} is not one of low, medium, high")
        for name, lo, hi in (("target_return", -1.0, 10.0), ("max_drawdown", 0.0, 1.0), ("min_win_rate", 0.0, 1.0)):
            v = getattr(c, name)
            if not np.isfinite(v) or not lo <= v <= hi:
                raise InvalidRequest(f"constraints.{name} {v} is outside [{lo}, {hi}]")
        return cls(risk, c.target_return, c.max_drawdown, c.min_win_rate)

    @property
    def limits(self) -> RiskLimits:
        return RISK_LIMITS[self.risk_level]


@dataclass(frozen=True)
class Candidate:
    params: dict[str, Any]
    fingerprint: str
    expected_score: float = 0.0
    uncertainty: float = 0.0
    confidence: float = 0.0


def _round(x: float, step: float) -> float:
    return float(round(round(x / step) * step, 6))


def _fit_limits(p: dict[str, Any], limits: RiskLimits) -> dict[str, Any]:
    """Clip a parameter set into the risk limits, on a grid so near-duplicates coincide."""
    p = dict(p)
    p["side"] = "back"  # the shipped data has no lay prices
    p["min_edge"] = _round(min(max(p["min_edge"], 0.0), 0.3), 0.005)
    p["min_confidence"] = _round(min(max(p["min_confidence"], 0.0), 0.6), 0.01)
    p["max_odds"] = _round(min(max(p["max_odds"], 1.5), limits.max_odds), 0.25)
    p["min_odds"] = _round(min(max(p["min_odds"], 1.01), p["max_odds"] - 0.25), 0.01)
    p["kelly_fraction"] = _round(min(max(p["kelly_fraction"], 0.05), limits.max_kelly_fraction), 0.05)
    p["max_stake_fraction"] = _round(min(max(p["max_stake_fraction"], 0.005), limits.max_stake_fraction), 0.005)
    return canonical_params(p)


def random_params(rng: np.random.Generator, limits: RiskLimits) -> dict[str, Any]:
    lo_odds = float(rng.uniform(1.01, 3.0))
    return _fit_limits({
        # Edges beyond a few percent are rare in efficient markets: wider draws would mostly place no bet.
        "min_edge": rng.uniform(0.0, 0.06), "min_confidence": rng.choice([0.0, rng.uniform(0.0, 0.5)]),
        "min_odds": lo_odds, "max_odds": rng.uniform(lo_odds + 0.5, limits.max_odds + 0.5),
        "staking": str(rng.choice(["flat", "kelly"])), "kelly_fraction": rng.uniform(0.05, 0.5),
        "max_stake_fraction": rng.uniform(0.005, 0.1),
        "selections": list(SELECTION_SETS[int(rng.integers(len(SELECTION_SETS)))]),
        "price_source": str(rng.choice(PRICE_SOURCES)), "probability_source": str(rng.choice(["market", "model"])),
        "one_bet_per_event": bool(rng.integers(2)),
    }, limits)


def mutate(rng: np.random.Generator, base: Mapping[str, Any], limits: RiskLimits) -> dict[str, Any]:
    """A neighbour of ``base``: numeric parameters jittered, now and then a categorical flipped."""
    p = dict(base)
    p["min_edge"] = p["min_edge"] + rng.normal(0, 0.02)
    p["min_confidence"] = p["min_confidence"] + rng.normal(0, 0.03)
    p["min_odds"] = p["min_odds"] * float(np.exp(rng.normal(0, 0.1)))
    p["max_odds"] = p["max_odds"] * float(np.exp(rng.normal(0, 0.15)))
    p["kelly_fraction"] = p["kelly_fraction"] + rng.normal(0, 0.05)
    p["max_stake_fraction"] = p["max_stake_fraction"] + rng.normal(0, 0.01)
    if rng.random() < 0.2:
        p["selections"] = list(SELECTION_SETS[int(rng.integers(len(SELECTION_SETS)))])
    if rng.random() < 0.1:
        p["staking"] = "kelly" if p["staking"] == "flat" else "flat"
    if rng.random() < 0.1:
        p["price_source"] = str(rng.choice(PRICE_SOURCES))
    return _fit_limits(p, limits)


def candidate_id(fingerprint: str) -> str:
    return "g-" + fingerprint[:16]


def generate(
    *, model: StrategyModel | None, constraints: Constraints, seeds: Sequence[Mapping[str, Any]],
    backtested: Callable[[list[str]], set[str]], max_candidates: int, rng: np.random.Generator,
) -> list[Candidate]:
    """Up to ``max_candidates`` new parameter sets, best upper confidence bound first.

    ``backtested(fingerprints)`` returns those among them that were already backtested (one
    indexed lookup for the pool, rather than loading every stored fingerprint)."""
    limits = constraints.limits
    pool: dict[str, dict[str, Any]] = {}
    n_mutants = CANDIDATE_POOL // 2 if (seeds and model is not None) else 0
    for i in range(CANDIDATE_POOL):
        p = mutate(rng, seeds[i % len(seeds)], limits) if i < n_mutants else random_params(rng, limits)
        pool.setdefault(fingerprint_of_canonical(p), p)  # p is canonical (_fit_limits)
    for fp in backtested(list(pool)):
        del pool[fp]
    if not pool:
        return []
    fps, params = list(pool), list(pool.values())
    if model is None:
        return [Candidate(p, fp) for fp, p in list(zip(fps, params))[:max_candidates]]

    est = model.estimate(params, fingerprints=fps)
    ok = np.ones(len(params), dtype=bool)
    if constraints.target_return:
        ok &= est.of("roi") >= constraints.target_return
    if constraints.max_drawdown:
        ok &= est.of("max_drawdown") <= constraints.max_drawdown
    if constraints.min_win_rate:
        ok &= est.of("win_rate") >= constraints.min_win_rate
    target = SEARCH_TARGET if SEARCH_TARGET in est.targets else "backtest_score"  # an older model: raw score
    ucb = est.of(target) + EXPLORATION_KAPPA * est.spread_of(target)
    order = [i for i in np.argsort(-ucb, kind="stable") if ok[i]][:max_candidates]
    return [Candidate(params[i], fps[i], float(est.mean[i, 0]), float(est.spread[i, 0]), float(est.confidence[i]))
            for i in order]


def seed_from(random_seed: int) -> np.random.Generator:
    """A request's ``random_seed`` (0 = fresh entropy) as a generator."""
    return np.random.default_rng(random_seed or None)
