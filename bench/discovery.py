"""Discovery against random search and Optuna's TPE: the best out-of-sample composite score
reached after 50, 100 and 200 backtests, over 5 seeds.

    python -m bench.discovery [--seeds 5] [--seed-offset 0] [--methods edgeloop,random,tpe]
                              [--budgets 50,100,200] [--json]

``--seed-offset N`` runs seeds N+1 … N+seeds (the official figures are seeds 1–5; judge a change
on more, e.g. ``--seed-offset 5 --seeds 20``); ``--methods`` runs a subset (random and TPE do
not depend on edgeloop's code, so their figures for a seed never change).

What each method does with its budget of backtests on the in-sample window (E0 + D1,
2017-08-15 … 2019-06-30):

* ``edgeloop``: the discovery pipeline's search loop, **in-process for speed** (no Celery, no
  gRPC, no stream): rounds of ``discovery_candidates`` (20) candidates from
  ``edgeloop.mlservice.strategy_generation.generate`` — mutations of the top results and exploration
  draws, ranked by the upper confidence bound of the strategy model's bet-shrunk score
  (``shrunk_score``, labelled by ``edgeloop.mlservice.strategy_model.training_labels`` as the ML
  service's trainer does), seeded with the 20 best backtest scores as the pipeline's
  generate step is — the model retrained on
  all feedback before each round (``edgeloop.mlservice.strategy_model.StrategyModel``, as the
  pipeline's "retrain if ≥ min_new_feedback new samples" does with rounds of 20). The first
  round has no model: exploration draws, as on a fresh system.
* ``random``: ``edgeloop.mlservice.strategy_generation.random_params``: the same parameter space and
  risk limits (risk level "medium").
* ``tpe``: Optuna's TPE sampler over the same space (same ranges, same grid via the
  generator's limit fitting), maximising the in-sample backtest score.

After B backtests each method picks one strategy among those with at least
``min_bets_for_activation`` (30) bets (fewer prove nothing): random and TPE their best
in-sample backtest score; edgeloop as its activation step does, by in-sample composite score
(the confidence of the strategy model it trained on its own B backtests + the in-sample
backtest score). The pick is then
judged **out of sample** (E0 + D1, 2019-08-15 … 2021-06-30, never seen by any method):
composite = ``edgeloop.core.scoring.composite_score(ML confidence, out-of-sample backtest score)``,
where the ML confidence comes from one *judge* strategy model trained on a separate pool of
300 random in-sample backtests (the same judge for every method, so none is scored by its
own model; trained on the four raw labels only, as before the product's model gained
``shrunk_score``, so the referee does not move with the product).

Probabilities for ``probability_source: model`` strategies come from a real ML service
(in-process gRPC server on a scratch SQLite database, outcome model trained walk-forward on
the shipped seasons), fetched once per window through ``MLServiceProvider`` (point in time).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from datetime import date
from typing import Any, Callable

import numpy as np

from bench._search import RISK, Lab, Search, fit_model, run_random, run_tpe

IS_WINDOW = (date(2017, 8, 15), date(2019, 6, 30))
OOS_WINDOW = (date(2019, 8, 15), date(2021, 6, 30))
LEAGUES = ("E0", "D1")
MIN_BETS = 30
ROUND = 20
JUDGE_POOL = 300


def judge_labels(m) -> list[float]:
    """The judge's targets (fixed: the referee does not change with the product's model)."""
    return [m.backtest_score, m.roi, m.max_drawdown, m.win_rate]


class InSample(Search):
    """Picks, after any number of backtests, the best in-sample score with ≥ ``MIN_BETS`` bets."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(lab, "is")

    def pick(self, budget: int) -> dict | None:
        eligible = [(m.backtest_score, i) for i, (p, m) in enumerate(self.tried[:budget]) if m.total_bets >= MIN_BETS]
        return self.tried[max(eligible)[1]][0] if eligible else None


class ModelSearch(InSample):
    """The pipeline picks as its activation does: by in-sample composite score, with the
    confidence of the strategy model it trained on what it had backtested by then."""

    def __init__(self, lab: Lab, seed: int) -> None:
        super().__init__(lab)
        self.seed = seed

    def pick(self, budget: int) -> dict | None:
        from edgeloop.core.scoring import composite_score

        tried = [(p, m) for p, m in self.tried[:budget]]
        eligible = [i for i, (p, m) in enumerate(tried) if m.total_bets >= MIN_BETS]
        if not eligible:
            return None
        model = fit_model([p for p, _ in tried], [m for _, m in tried], self.seed)
        confidence = model.estimate([tried[i][0] for i in eligible]).confidence
        best = max(zip(eligible, confidence), key=lambda t: composite_score(float(t[1]), tried[t[0]][1].backtest_score))
        return tried[best[0]][0]


def run_edgeloop(lab: Lab, seed: int, budget: int) -> InSample:
    from edgeloop.mlservice.strategy_generation import Constraints, generate
    from edgeloop.mlservice.strategy_model import params_fingerprint

    search, rng, model = ModelSearch(lab, seed), np.random.default_rng([seed, 1]), None
    while len(search.tried) < budget:
        if len(search.tried) >= 10:
            model = fit_model([p for p, _ in search.tried], [m for _, m in search.tried], seed)
        top = sorted(search.tried, key=lambda t: -t[1].backtest_score)[:20]  # the pipeline's seeds
        done = {params_fingerprint(p) for p, _ in search.tried}
        found = generate(model=model, constraints=Constraints(RISK), seeds=[p for p, _ in top],
                         backtested=lambda fingerprints: done.intersection(fingerprints),
                         max_candidates=min(ROUND, budget - len(search.tried)), rng=rng)
        for candidate in found:
            search.evaluate(candidate.params)
    return search


def run_random_search(lab: Lab, seed: int, budget: int) -> InSample:
    search = InSample(lab)
    run_random(search, seed, budget)
    return search


def run_tpe_search(lab: Lab, seed: int, budget: int) -> InSample:
    search = InSample(lab)
    run_tpe(search, seed, budget, MIN_BETS)
    return search


METHODS: dict[str, Callable[[Lab, int, int], InSample]] = {
    "edgeloop": run_edgeloop, "random": run_random_search, "tpe": run_tpe_search}


def judge(lab: Lab):
    """One strategy model for every method's confidence: trained on random in-sample backtests."""
    from edgeloop.mlservice.strategy_generation import Constraints, random_params

    rng = np.random.default_rng(987_654_321)  # not any method's seed
    pool = [random_params(rng, Constraints(RISK).limits) for _ in range(JUDGE_POOL)]
    from edgeloop.mlservice.strategy_model import TARGETS, StrategyModel

    Y = np.array([judge_labels(lab.metrics(p, "is")) for p in pool], dtype=float)
    return StrategyModel.fit(pool, Y, seed=0, targets=TARGETS[:4])


def out_of_sample(lab: Lab, judge_model, params: dict | None) -> float:
    from edgeloop.core.scoring import composite_score

    if params is None:
        return 0.0
    confidence = float(judge_model.estimate([params]).confidence[0])
    return composite_score(confidence, lab.metrics(params, "oos").backtest_score)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seed-offset", type=int, default=0, help="run seeds offset+1 … offset+seeds")
    ap.add_argument("--methods", default=",".join(METHODS), help="a comma-separated subset of " + ", ".join(METHODS))
    ap.add_argument("--budgets", default="50,100,200")
    ap.add_argument("--json", action="store_true", help="end with one line: a JSON object of the figures")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    methods = {n: METHODS[n] for n in args.methods.split(",")}
    seeds = list(range(args.seed_offset + 1, args.seed_offset + args.seeds + 1))
    started = time.perf_counter()
    lab = Lab({"is": IS_WINDOW, "oos": OOS_WINDOW}, LEAGUES)
    try:
        judge_model = judge(lab)
        scores: dict[str, dict[int, list[float]]] = {m: {b: [] for b in budgets} for m in methods}
        for seed in seeds:
            for name, method in methods.items():
                search = method(lab, seed, budgets[-1])
                for b in budgets:
                    scores[name][b].append(out_of_sample(lab, judge_model, search.pick(b)))
            print(f"seed {seed}: " + "  ".join(f"{n} {scores[n][budgets[-1]][-1]:.4f}" for n in methods),
                  file=sys.stderr)
    finally:
        lab.close()
    mean = {n: {str(b): statistics.fmean(v) for b, v in per.items()} for n, per in scores.items()}
    se = {n: {str(b): statistics.stdev(v) / len(v) ** 0.5 if len(v) > 1 else 0.0 for b, v in per.items()}
          for n, per in scores.items()}
    figures: dict[str, Any] = {**mean, "seeds": seeds, "min_bets": MIN_BETS, "standard_error": se,
                               "per_seed": {n: {str(b): v for b, v in per.items()} for n, per in scores.items()}}
    for other in ("random", "tpe"):
        if "edgeloop" in mean and other in mean:
            figures[f"ratio_vs_{other}"] = {b: mean["edgeloop"][b] / mean[other][b] for b in mean["edgeloop"]}
            # Paired over seeds: each seed's edgeloop score minus the other's.
            diff = {b: [e - o for e, o in zip(scores["edgeloop"][int(b)], scores[other][int(b)])] for b in mean["edgeloop"]}
            figures[f"diff_vs_{other}"] = {b: [statistics.fmean(d), statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1
                                               else 0.0] for b, d in diff.items()}
    figures.update(backtests_run=lab.backtests, seconds=round(time.perf_counter() - started, 1))
    print(f"best out-of-sample composite score (mean ± standard error over seeds {seeds[0]}–{seeds[-1]}; picks with "
          f"≥ {MIN_BETS} bets; {lab.backtests} distinct backtests in {figures['seconds']} s)")
    print(f"{'backtests':>9} " + " ".join(f"{n:>15}" for n in methods)
          + "".join(f" {'vs ' + o:>10}" for o in ("random", "tpe") if f"ratio_vs_{o}" in figures))
    for b in map(str, budgets):
        print(f"{b:>9} " + " ".join(f"{mean[n][b]:>8.4f} ± {se[n][b]:.3f}" for n in methods)
              + "".join(f" {figures[f'ratio_vs_{o}'][b]:>10.3f}" for o in ("random", "tpe") if f"ratio_vs_{o}" in figures))
    for o in ("random", "tpe"):
        if f"diff_vs_{o}" in figures:
            print(f"edgeloop − {o} (paired): " + "  ".join(f"{b}: {d[0]:+.4f} ± {d[1]:.4f}"
                                                           for b, d in figures[f"diff_vs_{o}"].items()))
    if args.json:
        print(json.dumps(figures, separators=(",", ":")))


if __name__ == "__main__":
    main()
