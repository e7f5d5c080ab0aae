"""The engine cannot be fed the future: each door a leak could come through is shut."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from edgeloop.backtester.engine import decide, resolve_probabilities, run_backtest
from edgeloop.backtester.probability import Predictions
from edgeloop.backtester.settlement import settle
from edgeloop.backtester.strategy import Strategy
from edgeloop.core.errors import InvalidStrategy, LookAheadError
from edgeloop.marketdata.arrays import load_window
from tests.support.market_fixture import predictions, window

MODEL = dict(name="t", price_source="X", probability_source="model", min_edge=0.05, flat_stake=10)


def test_decide_refuses_arrays_that_carry_results():
    w = window()
    s = Strategy(**MODEL)
    probs = resolve_probabilities(s, w.pre_event(), predictions(w))
    with pytest.raises(LookAheadError, match="carries results"):
        decide(s, w, probs)
    assert not hasattr(w.pre_event(), "results")


def test_predictions_made_at_or_after_kickoff_are_refused():
    w = window()
    with pytest.raises(LookAheadError, match="at or after their event's kick-off"):
        run_backtest(Strategy(**MODEL), w, predictions(w, lag=timedelta(0)))
    run_backtest(Strategy(**MODEL), w, predictions(w, lag=timedelta(minutes=1)))  # just before: fine


def test_probabilities_from_closing_prices_cannot_price_opening_bets():
    with pytest.raises(InvalidStrategy, match="look-ahead"):
        Strategy(name="t", price_source="MAX", market_probability_source="PSC")
    Strategy(name="t", price_source="PSC", market_probability_source="AVGC")  # closing on closing: fine


def test_decisions_do_not_depend_on_any_result():
    # Given the same pre-event data with the results scrambled, every decision is the same.
    w = load_window(["E0"])
    s = Strategy(name="k", price_source="MAX", min_edge=0.02)
    pre = w.pre_event()
    probs = resolve_probabilities(s, pre, None)
    bets = decide(s, pre, probs)
    scrambled = w.select(np.arange(len(w)))  # a copy: the cached window stays untouched
    object.__setattr__(scrambled, "results", np.random.default_rng(1).integers(0, 3, len(w)).astype(np.int8))
    again = decide(s, scrambled.pre_event(), resolve_probabilities(s, scrambled.pre_event(), None))
    assert bets.event.tolist() == again.event.tolist() and bets.selection.tolist() == again.selection.tolist()


def leaked_predictions(w, made_before=True):
    """The result known at bet time: the winner gets probability 1."""
    probs = np.zeros((len(w), 3))
    probs[np.arange(len(w)), w.results] = 1.0
    lag = np.timedelta64(1, "D") if made_before else np.timedelta64(-1, "D")
    return Predictions(event_ids=w.event_ids, probabilities=probs, available_at=w.kickoffs - lag)


def test_a_leak_shows_an_absurd_return_and_the_engine_refuses_it():
    w = load_window(["E0"])
    s = Strategy(name="kaunitz-leaked", price_source="MAX", probability_source="model", min_edge=0.05)
    leak = leaked_predictions(w)
    # What the leak would show, through the engine's own kernels with the guards bypassed:
    pre = w.pre_event()
    from edgeloop.backtester.probability import AlignedProbabilities

    bets = decide(s, pre, AlignedProbabilities(leak.probabilities))
    settled = settle(event=bets.event, selection=bets.selection, odds_milli=bets.odds_milli, kelly=bets.kelly,
                     result=w.results[bets.event], day=w.dates[bets.event], lay=False, staking="flat",
                     flat_stake=1, kelly_fraction=1, max_stake_fraction=1, commission=0, initial_bankroll=100)
    assert settled.won.all() and settled.profit / settled.risk.sum() > 1.0  # > +100% yield: absurd
    # The engine refuses it whether the leak is dated honestly or forged to look point-in-time.
    with pytest.raises(LookAheadError):
        run_backtest(s, w, leaked_predictions(w, made_before=False))
    with pytest.raises(LookAheadError, match="fit the results too well"):
        run_backtest(s, w, leak)


def test_a_partial_leak_is_caught_too():
    # Honest market probabilities nudged 20 points towards the winner: no certainty, but the
    # results are far likelier than the forecasts say.
    w = load_window(["E0"])
    s = Strategy(name="t", price_source="MAX", probability_source="model")
    honest = resolve_probabilities(Strategy(name="m"), w.pre_event(), None).probabilities
    nudged = honest.copy()
    ok = np.isfinite(nudged).all(axis=1)
    nudged[np.arange(len(w)), w.results] += 0.2
    nudged[ok] /= nudged[ok].sum(axis=1, keepdims=True)
    made = w.kickoffs - np.timedelta64(1, "D")
    with pytest.raises(LookAheadError):
        run_backtest(s, w, Predictions(w.event_ids, nudged, made))
    run_backtest(s, w, Predictions(w.event_ids, honest, made))  # the honest ones pass
