"""Which strategies get activated, judged on data no method saw: edgeloop's discovery loop
against random search, Optuna's TPE and activating nothing, with the same budget of backtests,
the same seeds, the same windows and the same pick rule.

    python -m bench.selection [--seeds 50] [--seed-offset 0] [--budget 200] [--history 1000]
                              [--methods edgeloop,random,tpe,nothing] [--set SETTING=VALUE …] [--json]

``--set`` overrides a setting (e.g. ``gate_min_dsr=0.5`` to see what a looser gate lets through).

**Windows**: the product's (``edgeloop.services.windows.current_windows`` with the default
settings on the shipped E0 seasons): selection 2018-19 … 2021-22, validation 2022-23 …
2023-24, final 2024-25 … 2025-26. The final window is read only to report.

**History**: a running system has judged earlier windows before these. Its strategy model
learns from later-window scores that end before this validation window starts
(``Windows.label_cutoff``), so the history is the walk-forward step whose validation window
ends there (``windows_through`` of the season ``discovery_validation_seasons`` before the
newest: selection 2016-17 … 2019-20, validation 2020-21 … 2021-22): ``--history`` strategies
drawn as a fresh system's discovery draws them (the generator's exploration draws: a system
without a model has nothing else), backtested on its selection window, those passing the
selection gate backtested on its validation window. The strategy model is fitted on those
samples as the ML service's trainer fits it (``strategy_training.samples_of``, the held-out
share, ``fit_challenger``). The history is the same for every method and seed and is not
counted in the budget; only edgeloop's loop has a use for it (random search and TPE do not
learn across windows). No later-window label falls before the cutoff during the runs, so
the product would not retrain: the model stays the history's.

**Budget**: ``--budget`` backtests on the selection window per method and seed. Then every
method's candidates go through the product's steps 5–7 alike: the selection gate
(``evidence.selection_verdict``), a backtest on the validation window for those passing it,
the activation gate (``evidence.judge``: bets, yield lower bound, deflated Sharpe ratio with
the trials = the strategies the method validated, as ``evidence.Trials`` counts a window's
stored results) and the composite of the history model's confidence and the validation score
(``lifecycle.decide``). The pick rule is applied once, after the whole budget (a system's
discovery runs apply it per run of 20, with fewer trials for the earlier runs).

* ``edgeloop``: the discovery pipeline's generate step in rounds of ``discovery_candidates``:
  ``strategy_generation.generate`` with the history's model, seeded with the best shrunk scores
  on the selection window (``evidence.best_shrunk``; before any, GenerateStrategy's own pick:
  the history's best scores), never a strategy already backtested, one generator per run
  (``discovery.run_seed``).
* ``random``, ``tpe``: ``bench._search`` (the generator's space; TPE maximises the selection
  score, 0 below ``min_bets_for_activation`` bets).
* ``nothing``: activates nothing.

**In-process for speed**: the backtester, the generator and the strategy model are called
directly (no Celery, no gRPC, no database): the same functions the workers and the ML service
run. Probabilities for ``probability_source: model`` come from a real ML service in-process
(``bench._search.Lab``).

**Reported on the final window**, over the seeds: strategies activated per seed; their
bet-weighted yield (Σ bets·yield / Σ bets, pooled over every seed's activated set) with two
standard errors, of the search (clustered by seed: each seed's set is one draw) and of the
matches (each seed's from its strategies' ``yield_se``, taken as independent, which
understates it when they bet the same matches; their root mean square over seeds); the share
with positive yield; their mean backtest score; the bet-weighted yield of the activated set and
of the set that passed selection on the selection → validation → final windows (the decay);
the seed-to-seed spread of the per-seed yield.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np

from bench._harness import ROOT, emit
from bench._search import Lab, Search, feedback_metrics, run_random, run_tpe

HISTORY_SEED = 424_242  # the history's draws: not any method's stream
WINDOWS = ("selection", "validation", "final")


class Sample(NamedTuple):
    """A feedback sample as the ML service stores it (``strategy_training.SampleRow``)."""

    backtest_id: str
    params: dict[str, Any]
    params_key: str
    window_start: Any
    window_end: Any
    backtest_score: float
    metrics: dict[str, Any]


@dataclass
class Context:
    lab: Lab
    settings: Any
    model: Any  # the strategy model fitted on the history, or None (too few labels)
    model_info: dict[str, Any]
    history_fingerprints: set[str]
    history_top: list[dict]  # GenerateStrategy's own seeds: the best history scores


def windows(settings):
    from edgeloop.services.windows import current_windows, season_name, season_start_year, windows_through

    now = current_windows(settings)
    last = season_start_year(now.final.last_season if now.final else now.validation.last_season)
    return now, windows_through(season_name(last - settings.discovery_validation_seasons), settings)


def history(lab: Lab, settings, now, past, n: int) -> Context:
    from edgeloop.mlservice.strategy_generation import Constraints, random_params
    from edgeloop.mlservice.strategy_model import params_fingerprint
    from edgeloop.mlservice.strategy_service import SEED_TOP_K, holdout_mask
    from edgeloop.mlservice.strategy_training import MIN_TRAIN_SAMPLES, fit_challenger, samples_of
    from edgeloop.services.evidence import selection_verdict

    rng = np.random.default_rng(HISTORY_SEED)
    limits = Constraints(settings.discovery_risk_level).limits
    samples: list[Sample] = []

    def sample(params: dict, window: str, span) -> Any:
        m = lab.metrics(params, window)
        fp = params_fingerprint(params)
        samples.append(Sample(f"h-{fp[:16]}-{window}", params, fp, span.start, span.end, m.backtest_score,
                              feedback_metrics(m)))
        return m

    for _ in range(n):
        params = random_params(rng, limits)
        m = sample(params, "h_selection", past.selection)
        if selection_verdict(m.total_bets, m.roi, settings)[0]:
            sample(params, "h_validation", past.validation)
    ids, params, fps, Y = samples_of(samples, now.label_cutoff)
    held = holdout_mask(ids, settings.ml_holdout_fraction)
    split = lambda xs, h: [x for x, k in zip(xs, held) if k == h]  # noqa: E731
    info: dict[str, Any] = {"history_strategies": n, "labels": len(ids), "cutoff": now.label_cutoff.isoformat()}
    model = None
    if len(split(ids, False)) >= MIN_TRAIN_SAMPLES:
        model, metrics = fit_challenger(split(params, False), split(fps, False), Y[~held],
                                        split(params, True), split(fps, True), Y[held])
        info.update(metrics)
    top = sorted((s for s in samples if s.window_end < now.label_cutoff), key=lambda s: -s.backtest_score)
    return Context(lab, settings, model, info, {s.params_key for s in samples},
                   [s.params for s in top[:SEED_TOP_K]])


# --- the methods: each fills a Search on the selection window with `budget` backtests ----------

def run_edgeloop(ctx: Context, seed: int, budget: int) -> Search:
    from edgeloop.mlservice.strategy_generation import Constraints, generate, seed_from
    from edgeloop.mlservice.strategy_model import params_fingerprint
    from edgeloop.services.discovery import TOP_SEEDS, run_seed
    from edgeloop.services.evidence import best_shrunk

    s = ctx.settings
    search = Search(ctx.lab, "selection")
    done = set(ctx.history_fingerprints)
    by_fp: dict[str, dict] = {}
    run = 0
    while len(search.tried) < budget:
        ids = best_shrunk([(params_fingerprint(p), m.backtest_score, m.total_bets) for p, m in search.tried], TOP_SEEDS)
        seeds = [by_fp[i] for i in ids] or ctx.history_top
        found = generate(model=ctx.model, constraints=Constraints(s.discovery_risk_level), seeds=seeds,
                         backtested=lambda fingerprints: done.intersection(fingerprints),
                         max_candidates=min(s.discovery_candidates, budget - len(search.tried)),
                         rng=seed_from(run_seed(f"bench-selection-{seed}-{run}")))
        if not found:
            break
        for c in found:
            search.evaluate(c.params)
            done.add(c.fingerprint)
            by_fp[c.fingerprint] = c.params
        run += 1
    return search


METHODS: dict[str, Callable[[Context, int, int], Search]] = {
    "edgeloop": run_edgeloop,
    "random": lambda ctx, seed, budget: run_random(Search(ctx.lab, "selection"), seed, budget),
    "tpe": lambda ctx, seed, budget: run_tpe(Search(ctx.lab, "selection"), seed, budget,
                                             ctx.settings.min_bets_for_activation),
    "nothing": lambda ctx, seed, budget: Search(ctx.lab, "selection"),
}


# --- the pick rule, the same for every method ------------------------------------------------

@dataclass
class Outcome:
    """One method's seed: the strategies that passed selection and those activated, each as its
    backtests' metrics on the three windows."""

    tried: int
    passed: list[dict[str, Any]]
    gate_passed: int  # passed the activation gate (bets, yield lower bound, deflated Sharpe), any composite
    activated: list[dict[str, Any]]


def pick(ctx: Context, search: Search) -> Outcome:
    """The product's steps 5–7 on what a method backtested on the selection window."""
    from edgeloop.core.evidence import Evidence, sharpe_variance
    from edgeloop.core.scoring import composite_score
    from edgeloop.core.statuses import StrategyStatus
    from edgeloop.mlservice.strategy_model import params_fingerprint
    from edgeloop.services.discovery import UNTRAINED_CONFIDENCE
    from edgeloop.services.evidence import judge, selection_verdict
    from edgeloop.services.lifecycle import ACTIVATE, decide

    s, lab = ctx.settings, ctx.lab
    distinct = {params_fingerprint(p): (p, m) for p, m in search.tried}
    passed = [p for p, m in distinct.values() if selection_verdict(m.total_bets, m.roi, s)[0]]
    validation = [lab.metrics(p, "validation") for p in passed]
    variance = sharpe_variance([m.bet_sharpe for m in validation])
    confidence = (ctx.model.estimate(passed).confidence if ctx.model is not None and passed
                  else [UNTRAINED_CONFIDENCE] * len(passed))
    sets: dict[str, list[dict[str, Any]]] = {"passed": [], "activated": []}
    gate_passed = 0
    for params, m, c in zip(passed, validation, confidence):
        verdict = judge(Evidence.of(m.as_dict()), len(passed), variance, s)
        status = decide(StrategyStatus.CANDIDATE, composite_score(float(c), m.backtest_score), verdict.passed,
                        math.inf, s, allow=(ACTIVATE,))
        gate_passed += verdict.passed
        record = {w: lab.metrics(params, w) for w in WINDOWS}
        sets["passed"].append(record)
        if status == StrategyStatus.ACTIVE:
            sets["activated"].append(record)
    return Outcome(len(distinct), sets["passed"], gate_passed, sets["activated"])


# --- figures ---------------------------------------------------------------------------------

def bet_weighted(ms: list) -> float | None:
    bets = sum(m.total_bets for m in ms)
    return sum(m.total_bets * m.roi for m in ms) / bets if bets else None


def match_se(ms: list) -> float | None:
    """The bet-weighted yield's standard error from each strategy's, as if independent."""
    bets = sum(m.total_bets for m in ms)
    if not bets or not all(math.isfinite(m.yield_se) for m in ms):
        return None
    return math.sqrt(sum((m.total_bets * m.yield_se) ** 2 for m in ms)) / bets


def pooled(per_seed: list[list]) -> tuple[float | None, float | None]:
    """Bet-weighted yield over every seed's set and its standard error clustered by seed (none
    unless at least two seeds' sets have bets)."""
    profit = [sum(m.total_bets * m.roi for m in ms) for ms in per_seed]
    bets = [sum(m.total_bets for m in ms) for ms in per_seed]
    total = sum(bets)
    if not total:
        return None, None
    y = sum(profit) / total
    k = len(per_seed)
    # One seed with bets says nothing about the seed-to-seed spread (its residual is 0 by construction).
    se = (math.sqrt(sum((p - y * n) ** 2 for p, n in zip(profit, bets)) * k / (k - 1)) / total
          if sum(1 for n in bets if n) > 1 else None)
    return y, se


def spread(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    return {"sd": statistics.stdev(xs) if len(xs) > 1 else 0.0, "min": min(xs), "median": statistics.median(xs),
            "max": max(xs)}


def figures_of(outcomes: list[Outcome]) -> dict[str, Any]:
    activated = [[r["final"] for r in o.activated] for o in outcomes]
    counts = [len(o.activated) for o in outcomes]
    every = [m for ms in activated for m in ms]
    y, se_search = pooled(activated)
    seed_yields = [v for ms in activated if (v := bet_weighted(ms)) is not None]
    seed_se = [v for ms in activated if (v := match_se(ms)) is not None]
    return {
        "activated_per_seed": statistics.fmean(counts), "activated_sd": statistics.stdev(counts) if len(counts) > 1 else 0.0,
        "activated_total": sum(counts), "seeds_with_activations": sum(1 for c in counts if c),
        "final_yield": y, "final_yield_se_search": se_search,
        "final_yield_se_matches": math.sqrt(statistics.fmean(v * v for v in seed_se)) if seed_se else None,
        "final_share_positive": sum(m.roi > 0 for m in every) / len(every) if every else None,
        "final_score": statistics.fmean(m.backtest_score for m in every) if every else None,
        "final_yield_per_seed": spread(seed_yields),
        "decay_activated": {w: pooled([[r[w] for r in o.activated] for o in outcomes])[0] for w in WINDOWS},
        "decay_passed_selection": {w: pooled([[r[w] for r in o.passed] for o in outcomes])[0] for w in WINDOWS},
        "passed_selection_per_seed": statistics.fmean(len(o.passed) for o in outcomes),
        "passed_gate_per_seed": statistics.fmean(o.gate_passed for o in outcomes),
        "distinct_backtested_per_seed": statistics.fmean(o.tried for o in outcomes),
    }


def fmt(x: float | None, spec: str = "+.4f") -> str:
    return "—" if x is None else format(x, spec)


def report(figures: dict[str, Any], methods: list[str]) -> None:
    print(f"{'method':>9} {'activated/seed':>15} {'final yield ± se search, matches':>34} {'positive':>9} "
          f"{'score':>6}  {'activated: selection → validation → final':>42}  passed selection: same")
    for n in methods:
        f = figures[n]
        decay = lambda d: " → ".join(fmt(d[w], "+.3f") for w in WINDOWS)  # noqa: E731
        print(f"{n:>9} {f['activated_per_seed']:>8.2f} ± {f['activated_sd']:<4.2f} "
              f"{fmt(f['final_yield']):>12} ± {fmt(f['final_yield_se_search'], '.4f')}, "
              f"{fmt(f['final_yield_se_matches'], '.4f'):<6} {fmt(f['final_share_positive'], '.2f'):>9} "
              f"{fmt(f['final_score'], '.3f'):>6}  {decay(f['decay_activated']):>42}  "
              f"{decay(f['decay_passed_selection'])} ({f['passed_selection_per_seed']:.1f}/seed; "
              f"{f['passed_gate_per_seed']:.2f} passed the gate)")
    for n in methods:
        if (s := figures[n]["final_yield_per_seed"]) is not None:
            print(f"{n}: per-seed final yield over {figures[n]['seeds_with_activations']} seeds with activations: "
                  f"sd {s['sd']:.4f}, min {s['min']:+.4f}, median {s['median']:+.4f}, max {s['max']:+.4f}")
    for other in ("random", "tpe"):
        if (c := figures.get(f"edgeloop_vs_{other}")) is not None:
            print(f"edgeloop − {other}: final yield {fmt(c['yield_diff'])} (one standard error {fmt(c['se'], '.4f')}), "
                  f"share losing {fmt(c['losing_share_diff'], '+.3f')}")


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """edgeloop against a baseline: the yield difference and the losing-share difference."""
    diff = a["final_yield"] - b["final_yield"] if a["final_yield"] is not None and b["final_yield"] is not None else None
    ses = [x for x in (a["final_yield_se_search"], b["final_yield_se_search"]) if x is not None]
    se = math.sqrt(sum(x * x for x in ses)) if ses else None
    lose = (None if a["final_share_positive"] is None or b["final_share_positive"] is None
            else (1 - a["final_share_positive"]) - (1 - b["final_share_positive"]))
    return {"yield_diff": diff, "se": se, "losing_share_diff": lose,
            "yield_at_least_within_one_se": None if diff is None or se is None else diff >= -se,
            "fewer_losing": None if lose is None else lose < 0}


def run(settings, seeds: list[int], budget: int, history_n: int, methods: list[str]) -> dict[str, Any]:
    """Every method on every seed; the figures (printed as they come)."""
    started = time.perf_counter()
    now, past = windows(settings)
    spans = {"h_selection": past.selection, "h_validation": past.validation, "selection": now.selection,
             "validation": now.validation, "final": now.final}
    lab = Lab({k: (v.start, v.end) for k, v in spans.items()}, settings.discovery_leagues)
    try:
        ctx = history(lab, settings, now, past, history_n)
        outcomes: dict[str, list[Outcome]] = {n: [] for n in methods}
        for seed in seeds:
            for n in methods:
                outcomes[n].append(pick(ctx, METHODS[n](ctx, seed, budget)))
            print(f"seed {seed}: activated " + "  ".join(f"{n} {len(outcomes[n][-1].activated)}" for n in methods),
                  file=sys.stderr)
    finally:
        lab.close()
    figures: dict[str, Any] = {n: figures_of(o) for n, o in outcomes.items()}
    for other in ("random", "tpe"):
        if "edgeloop" in figures and other in figures:
            figures[f"edgeloop_vs_{other}"] = compare(figures["edgeloop"], figures[other])
    figures.update(seeds=[seeds[0], seeds[-1]], budget=budget, leagues=list(settings.discovery_leagues),
                   windows={k: v.as_dict()["seasons"] for k, v in spans.items()}, strategy_model=ctx.model_info,
                   per_seed_activated={n: [len(o.activated) for o in outs] for n, outs in outcomes.items()},
                   backtests_run=lab.backtests, seconds=round(time.perf_counter() - started, 1))
    return figures


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--seed-offset", type=int, default=0, help="run seeds offset+1 … offset+seeds")
    ap.add_argument("--budget", type=int, default=200, help="backtests on the selection window per method and seed")
    ap.add_argument("--history", type=int, default=1000, help="strategies the system judged on the earlier windows")
    ap.add_argument("--methods", default=",".join(METHODS), help="a comma-separated subset of " + ", ".join(METHODS))
    ap.add_argument("--set", action="append", default=[], metavar="SETTING=VALUE",
                    help="override a setting, e.g. gate_min_dsr=0.5 (repeatable)")
    ap.add_argument("--json", action="store_true", help="end with one line: a JSON object of the figures")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from edgeloop.core.settings import settings_with

    overrides = dict(kv.split("=", 1) for kv in args.set)
    settings = settings_with(**{"data_dir": str(ROOT / "data" / "football-data"), **overrides})
    methods = args.methods.split(",")
    seeds = list(range(args.seed_offset + 1, args.seed_offset + args.seeds + 1))
    figures = run(settings, seeds, args.budget, args.history, methods)
    figures["settings_overridden"] = overrides
    w = figures["windows"]
    print(f"activated strategies on the final window {w['final']} (never used for a pick; selection {w['selection']}, "
          f"validation {w['validation']}), seeds {seeds[0]}–{seeds[-1]}, {args.budget} selection backtests per method "
          f"and seed, {figures['backtests_run']} distinct backtests in {figures['seconds']} s; "
          f"strategy model: {figures['strategy_model']}" + (f"; settings overridden: {overrides}" if overrides else ""))
    report(figures, methods)
    emit(figures, args.json)


if __name__ == "__main__":
    main()
