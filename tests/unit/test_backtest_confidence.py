"""``min_confidence`` means one thing for every probability source and side: the forecast's
certainty about the match, 1 − H/ln 3 of its home/draw/away probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from edgeloop.backtester.engine import decide, resolve_probabilities
from edgeloop.backtester.execution import ExecutionTerms
from edgeloop.backtester.probability import forecast_confidence
from edgeloop.backtester.strategy import Strategy
from tests.support.market_fixture import predictions, window


def test_forecast_confidence_by_hand():
    p = np.array([[1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0], [0.55, 0.25, 0.20], [0.5, 0.25, np.nan]])
    h = -(0.55 * np.log(0.55) + 0.25 * np.log(0.25) + 0.20 * np.log(0.20))
    got = forecast_confidence(p)
    assert got[:3] == pytest.approx([0.0, 1.0, 1 - h / np.log(3)]) and np.isnan(got[3])


def bet_events(side: str, source: str, min_confidence: float) -> set[int]:
    """Events bet on at the exchange prices of the fixture (the only prices a lay may take)."""
    w = window("BFE")
    s = Strategy(name="c", side=side, price_source="BFE", probability_source=source, market_probability_source="BFE",
                 min_edge=-1.0, min_confidence=min_confidence)
    pre = w.pre_event()
    probs = resolve_probabilities(s, pre, predictions(w) if source == "model" else None)
    return set(decide(s, pre, probs, ExecutionTerms()).event.tolist())


@pytest.mark.parametrize("source", ["market", "model"])
@pytest.mark.parametrize("side", ["back", "lay"])
def test_the_same_threshold_keeps_the_same_matches_for_every_source_and_side(side, source):
    w = window("BFE")
    s = Strategy(name="c", price_source="BFE", probability_source=source, market_probability_source="BFE")
    certainty = forecast_confidence(resolve_probabilities(s, w.pre_event(), predictions(w) if source == "model" else None)
                                    .probabilities)
    everything = bet_events(side, source, 0.0)
    assert everything  # min_edge −1: every priced selection with a probability
    for threshold in (0.001, 0.01, 0.06, 0.1, 0.5):
        assert bet_events(side, source, threshold) == {e for e in everything if certainty[e] >= threshold}


def test_backs_and_lays_of_a_match_pass_or_fail_together():
    # Model certainty: A–B 0.092, C–D 0.054, E–F 0.0007: at 0.06 only A–B is bet, on either side.
    assert bet_events("back", "model", 0.06) == bet_events("lay", "model", 0.06) == {0}
    assert bet_events("back", "model", 0.05) == bet_events("lay", "model", 0.05) == {0, 1}
