"""The search benchmarks' shared pieces (``bench.discovery``, ``bench.selection``): a lab of
windows with point-in-time predictions and a memoised backtest, the record of what a method
tried, the product's strategy model fitted in-process, and the two baselines (random search
and Optuna's TPE over the generator's parameter space).

Probabilities for ``probability_source: model`` strategies come from a real ML service
(in-process gRPC server on a scratch SQLite database, outcome model trained walk-forward on
the shipped seasons), fetched once per window through ``MLServiceProvider`` (point in time).
"""

from __future__ import annotations

import tempfile
from datetime import date
from typing import Any, Mapping, Sequence

import numpy as np

from bench._harness import ROOT

RISK = "medium"


class Lab:
    """Named windows, point-in-time predictions and a memoised backtest (same strategy, same
    window, same result)."""

    def __init__(self, windows: Mapping[str, tuple[date, date]], leagues: Sequence[str]) -> None:
        from edgeloop.backtester.ml_provider import MLServiceProvider
        from edgeloop.core.settings import settings_with
        from edgeloop.marketdata.arrays import load_csv_window
        from edgeloop.mlclient.client import MLClient
        from edgeloop.mlservice.server import create_server
        from edgeloop.schema.db import upgrade
        from edgeloop.services.retraining import wait_for_job

        self._tmp = tempfile.TemporaryDirectory(prefix="bench-search-")
        url = f"sqlite:///{self._tmp.name}/ml.db"
        upgrade(url)
        self.settings = settings_with(database_url=url, data_dir=str(ROOT / "data" / "football-data"),
                                      ml_market_source="csv", ml_timeout_s=60)
        self.server, port = create_server("127.0.0.1:0", self.settings)
        self.server.start()
        try:
            client = MLClient(self.settings, target=f"127.0.0.1:{port}")
            status = wait_for_job(client, client.train_models("outcome").job_id, 600)
            if status.status != "succeeded":
                raise SystemExit(f"benchmark: outcome model training failed: {status.reason}")
            provider = MLServiceProvider(client)
            self.windows = {}
            for name, (start, end) in windows.items():
                data = load_csv_window(tuple(leagues), start, end, data_dir=self.settings.data_dir)
                self.windows[name] = (data, provider.predictions(data.pre_event()), start, end)
        except BaseException:
            self.close()
            raise
        self._memo: dict[tuple[str, str], Any] = {}
        self.backtests = 0

    def close(self) -> None:
        self.server.stop(1).wait(5)
        self._tmp.cleanup()

    def metrics(self, params: Mapping[str, Any], window: str):
        from edgeloop.backtester.engine import run_backtest
        from edgeloop.backtester.strategy import Strategy
        from edgeloop.mlservice.strategy_model import params_fingerprint

        key = (params_fingerprint(params), window)
        if key not in self._memo:
            data, predictions, start, end = self.windows[window]
            strategy = Strategy.from_mapping({**params, "name": "bench"})
            self._memo[key] = run_backtest(strategy, data, predictions, window_start=start, window_end=end).metrics
            self.backtests += 1
        return self._memo[key]


class Search:
    """What a method has tried on its search window, in order."""

    def __init__(self, lab: Lab, window: str) -> None:
        self.lab, self.window = lab, window
        self.tried: list[tuple[dict, Any]] = []

    def evaluate(self, params: dict) -> float:
        m = self.lab.metrics(params, self.window)
        self.tried.append((params, m))
        return m.backtest_score


def feedback_metrics(m) -> dict[str, float]:
    """What a backtest's feedback sample carries for the strategy model's labels."""
    return {"roi": m.roi, "max_drawdown": m.max_drawdown, "win_rate": m.win_rate, "total_bets": m.total_bets}


def fit_model(params: list[dict], metrics: list, seed: int):
    """The strategy model as the ML service's trainer fits it on these backtests' feedback."""
    from edgeloop.mlservice.strategy_model import StrategyModel, training_labels

    Y = training_labels([m.backtest_score for m in metrics], [feedback_metrics(m) for m in metrics])
    return StrategyModel.fit(params, Y, seed=seed)


def run_random(search: Search, seed: int, budget: int) -> Search:
    """Random search: ``strategy_generation.random_params``, the generator's space and risk limits."""
    from edgeloop.mlservice.strategy_generation import Constraints, random_params

    rng = np.random.default_rng([seed, 2])  # not edgeloop's stream
    limits = Constraints(RISK).limits
    while len(search.tried) < budget:
        search.evaluate(random_params(rng, limits))
    return search


def run_tpe(search: Search, seed: int, budget: int, min_bets: int) -> Search:
    """Optuna's TPE over the generator's space (same ranges, same grid via its limit fitting),
    maximising the search window's backtest score (0 with fewer than ``min_bets`` bets)."""
    import optuna

    from edgeloop.mlservice.strategy_generation import PRICE_SOURCES, SELECTION_SETS, Constraints, _fit_limits

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    limits = Constraints(RISK).limits

    def objective(trial: optuna.Trial) -> float:
        lo = trial.suggest_float("min_odds", 1.01, 3.0)
        params = _fit_limits({  # the random generator's space and grid (strategy_generation.random_params)
            "min_edge": trial.suggest_float("min_edge", 0.0, 0.06),
            "min_confidence": trial.suggest_float("min_confidence", 0.0, 0.5) if trial.suggest_categorical(
                "use_min_confidence", [False, True]) else 0.0,
            "min_odds": lo, "max_odds": lo + trial.suggest_float("odds_span", 0.5, limits.max_odds + 0.5 - 1.01),
            "staking": trial.suggest_categorical("staking", ["flat", "kelly"]),
            "kelly_fraction": trial.suggest_float("kelly_fraction", 0.05, 0.5),
            "max_stake_fraction": trial.suggest_float("max_stake_fraction", 0.005, 0.1),
            "selections": list(SELECTION_SETS[trial.suggest_categorical("selections", list(range(len(SELECTION_SETS))))]),
            "price_source": trial.suggest_categorical("price_source", list(PRICE_SOURCES)),
            "probability_source": trial.suggest_categorical("probability_source", ["market", "model"]),
            "one_bet_per_event": trial.suggest_categorical("one_bet_per_event", [False, True]),
        }, limits)
        score = search.evaluate(params)
        # A strategy with fewer bets than any pick needs is worth nothing to the search.
        return score if search.tried[-1][1].total_bets >= min_bets else 0.0

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=budget)
    return search
