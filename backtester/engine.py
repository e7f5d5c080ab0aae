"""The backtest engine: decide on pre-event data, then settle with the results.

No look-ahead, by structure:

1. ``decide`` takes ``PreEventArrays`` (a type with no results in it; passing the full
   ``MarketArrays`` is refused) and point-in-time probabilities, and returns the bets: every
   decision is made before any result is read.
2. ``settle`` is the only place the results are used, and only for the events bet on.
3. Probabilities are checked before deciding: model predictions must be dated before each
   kick-off (``probability.align_predictions``) and a strategy may not take probabilities from
   closing prices to bet at opening prices (``strategy``). After deciding, a tripwire refuses a
   run whose probabilities "knew" the results (``_leak_tripwire``).

Only bets a bettor could take: prices, commission and skipped arbitrage quotes follow the
``ExecutionTerms`` (``execution``), and stakes never exceed the bankroll (``settlement``).

Everything is vectorised over the window's events with numpy; the only Python loop is the
bankroll's, over betting days (Kelly stakes depend on the bankroll after earlier days, and
flat stakes enter it only when a bet might not fit in the bankroll).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np

from edgeloop.backtester.execution import ExecutionTerms, quotes
from edgeloop.backtester.metrics import Metrics, SeasonRow, compute_metrics, per_season
from edgeloop.backtester.probability import (
    AlignedProbabilities,
    Predictions,
    ProbabilityProvider,
    align_predictions,
    demargin,
    forecast_confidence,
    market_probabilities,
)
from edgeloop.backtester.settlement import ODDS_SCALE, Settlement, settle
from edgeloop.backtester.strategy import Strategy, is_closing
from edgeloop.core.errors import InvalidStrategy, LookAheadError
from edgeloop.marketdata.arrays import MarketArrays, PreEventArrays
from edgeloop.marketdata.sources import MARKET_WIDE_SOURCES, market_wide_era

LEAK_MAX_CERTAINTY = 0.95  # mean top probability; honest pre-match forecasts are near 0.5
LEAK_Z = 10.0  # log-likelihood of the results, standard deviations above what the forecasts expect
LEAK_MIN_EVENTS = 30
CLV_REFERENCE = "PSC"  # Pinnacle closing, the sharpest public closing line


@dataclass(frozen=True, slots=True)
class Bets:
    """Decisions, made before any result is known, sorted by event (hence by kick-off)."""

    event: np.ndarray  # window index
    selection: np.ndarray  # 0 home, 1 draw, 2 away
    odds_milli: np.ndarray
    probability: np.ndarray
    edge: np.ndarray  # per unit risked
    kelly: np.ndarray  # full-Kelly fraction of bankroll to risk, > 0 when edge > 0
    skipped_no_price: int
    skipped_no_prediction: int
    skipped_max_arbitrage: int


def decide(strategy: Strategy, window: PreEventArrays, probs: AlignedProbabilities,
           terms: ExecutionTerms = ExecutionTerms()) -> Bets:
    if type(window) is not PreEventArrays:
        raise LookAheadError("decide() takes pre-event arrays only (MarketArrays.pre_event()); "
                             f"got {type(window).__name__}, which carries results")
    cols = np.array(strategy.selection_indices)
    quoted = quotes(strategy, window, terms)
    odds_m = quoted.odds_milli[:, cols]
    has_price = odds_m > ODDS_SCALE
    p = probs.probabilities[:, cols]
    has_prob = np.isfinite(p)
    event_priced = has_price.any(axis=1)
    skipped_max_arbitrage = int(quoted.max_arbitrage.sum())
    skipped_no_price = int((~event_priced).sum()) - skipped_max_arbitrage
    skipped_no_prediction = int((event_priced & ~(has_price & has_prob).any(axis=1)).sum())
    # One number per match for every selection and side (probability.forecast_confidence).
    confidence = forecast_confidence(probs.probabilities)[:, None]

    o = odds_m / ODDS_SCALE
    with np.errstate(invalid="ignore", divide="ignore"):
        if strategy.side == "back":
            edge = p * o - 1.0
            kelly = edge / (o - 1.0)
        else:
            edge = (1.0 - p * o) / (o - 1.0)
            kelly = 1.0 - p * o
        ok = (has_price & has_prob & (edge > strategy.min_edge)
              & ((kelly > 0) | (strategy.staking == "flat"))  # Kelly stakes nothing without an edge
              & (o >= strategy.min_odds) & (o <= strategy.max_odds)
              & (np.nan_to_num(confidence, nan=-1.0) >= strategy.min_confidence))
    if strategy.one_bet_per_event:
        best = np.argmax(np.where(ok, edge, -np.inf), axis=1)
        ok = ok & (np.arange(len(cols))[None, :] == best[:, None])
    ev, k = np.nonzero(ok)  # row-major: sorted by event
    return Bets(event=ev, selection=cols[k].astype(np.int8), odds_milli=odds_m[ev, k], probability=p[ev, k],
                edge=edge[ev, k], kelly=kelly[ev, k], skipped_no_price=skipped_no_price,
                skipped_no_prediction=skipped_no_prediction, skipped_max_arbitrage=skipped_max_arbitrage)


def _closing_line_value(strategy: Strategy, window: PreEventArrays, bets: Settlement) -> np.ndarray:
    """Per placed bet, the edge of its price against the de-margined closing price (NaN if none)."""
    reference = demargin(window.price(CLV_REFERENCE))
    own = strategy.price_source if is_closing(strategy.price_source) else strategy.price_source + "C"
    if own in window.prices:
        fallback = demargin(window.price(own))
        reference = np.where(np.isfinite(reference).all(axis=1, keepdims=True), reference, fallback)
    p = reference[bets.event, bets.selection]
    o = bets.odds_milli / ODDS_SCALE
    if strategy.side == "back":
        return o * p - 1.0
    return (1.0 - o * p) / (o - 1.0)


def _leak_tripwire(probs: AlignedProbabilities, results: np.ndarray) -> None:
    """Refuse probabilities that could only have been made knowing the results.

    Two signs, each impossible for an honest pre-match football forecast: near-certainty
    (mean top probability above ``LEAK_MAX_CERTAINTY``; the sharpest closing prices average
    about 0.5), or outcomes far likelier under the forecasts than the forecasts themselves
    expect: the log-likelihood of the actual winners is ``LEAK_Z`` standard deviations above its
    expectation under the forecasts (a calibrated forecast gives z ≈ N(0, 1)).
    """
    rows = (results >= 0) & np.isfinite(probs.probabilities).all(axis=1)
    if rows.sum() < LEAK_MIN_EVENTS:
        return
    p = np.clip(probs.probabilities[rows], 1e-12, 1.0)
    certainty = float(p.max(axis=1).mean())
    logp = np.log(p)
    observed = float(logp[np.arange(len(p)), results[rows]].sum())
    expected_each = (p * logp).sum(axis=1)
    variance = float(((p * logp**2).sum(axis=1) - expected_each**2).sum())
    z = (observed - float(expected_each.sum())) / np.sqrt(variance) if variance > 0 else 0.0
    if certainty > LEAK_MAX_CERTAINTY or z > LEAK_Z:
        raise LookAheadError(
            f"the probabilities fit the results too well to be pre-event forecasts (mean top probability "
            f"{certainty:.2f}, log-likelihood z = {z:.1f} over {int(rows.sum())} events): "
            "they were made with the results; refusing the run")


@dataclass(frozen=True, slots=True)
class BacktestResult:
    strategy: Strategy
    window_start: date
    window_end: date
    leagues: tuple[str, ...]
    metrics: Metrics
    seasons: list[SeasonRow]
    settlement: Settlement = field(repr=False)
    model_version: str = ""
    terms: ExecutionTerms = ExecutionTerms()
    notes: tuple[str, ...] = ()  # what a reader must know to compare the figures (report prints them)


def resolve_probabilities(strategy: Strategy, window: PreEventArrays,
                          predictions: Predictions | ProbabilityProvider | None) -> AlignedProbabilities:
    if strategy.probability_source == "market":
        return market_probabilities(window, strategy.market_probability_source)
    if predictions is None:
        raise InvalidStrategy(f"strategy {strategy.name!r} bets on model probabilities but no predictions "
                              "were supplied (give a ProbabilityProvider, e.g. the ML client)")
    if isinstance(predictions, ProbabilityProvider) and not isinstance(predictions, Predictions):
        predictions = predictions.predictions(window)
    return align_predictions(window, predictions)


def run_backtest(strategy: Strategy, window: MarketArrays, predictions: Predictions | ProbabilityProvider | None = None,
                 *, window_start: date | None = None, window_end: date | None = None,
                 terms: ExecutionTerms | None = None) -> BacktestResult:
    """One strategy over one window. ``window`` is a ``marketdata`` window; ``predictions`` are
    needed when the strategy's probability source is ``model``; ``terms`` default to the
    settings'."""
    terms = terms or ExecutionTerms.from_settings()
    pre = window.pre_event()
    probs = resolve_probabilities(strategy, pre, predictions)
    bets = decide(strategy, pre, probs, terms)
    # --- everything above ran without the results; from here on they settle the bets -----
    results = window.results[bets.event]
    played = results >= 0
    _leak_tripwire(probs, window.results)
    s = settle(
        event=bets.event[played], selection=bets.selection[played], odds_milli=bets.odds_milli[played],
        kelly=bets.kelly[played], result=results[played], day=window.dates[bets.event[played]],
        lay=strategy.side == "lay", staking=strategy.staking, flat_stake=strategy.flat_stake,
        kelly_fraction=strategy.kelly_fraction, max_stake_fraction=strategy.max_stake_fraction,
        commission=terms.commission(strategy), initial_bankroll=strategy.initial_bankroll,
    )
    metrics = compute_metrics(s, clv=_closing_line_value(strategy, pre, s), events=len(window),
                              skipped_no_price=bets.skipped_no_price,
                              skipped_no_prediction=bets.skipped_no_prediction,
                              skipped_max_arbitrage=bets.skipped_max_arbitrage)
    start = window_start or (window.dates[0].astype(date) if len(window) else date.min)
    end = window_end or (window.dates[-1].astype(date) if len(window) else date.min)
    return BacktestResult(strategy=strategy, window_start=start, window_end=end,
                          leagues=tuple(sorted(set(window.leagues))), metrics=metrics,
                          seasons=per_season(s, window.seasons), settlement=s, model_version=probs.model_version,
                          terms=terms, notes=_notes(strategy, window, metrics))


def _notes(strategy: Strategy, window: MarketArrays, metrics: Metrics) -> tuple[str, ...]:
    notes = []
    if metrics.ruined:
        notes.append(f"ruined: the bankroll of {strategy.initial_bankroll:g} fell below the smallest bet's risk; "
                     "no bet was placed after that")
    if metrics.skipped_max_arbitrage:
        notes.append(f"{metrics.skipped_max_arbitrage} events skipped: their maximum prices add up to less than "
                     "100% (an arbitrage on paper; the backtest_keep_max_arbitrage setting keeps them)")
    used = {strategy.price_source}
    if strategy.probability_source == "market":
        used.add(strategy.market_probability_source)
    if used & MARKET_WIDE_SOURCES:
        seasons = sorted(set(window.seasons))
        eras = list(dict.fromkeys(market_wide_era(season) for season in seasons))
        if len(eras) > 1:
            notes.append("football-data's market-wide maximum/average changes definition within the window: "
                         + "; ".join(eras))
    return tuple(notes)
