"""A hand-made window of five matches whose profits are worked out by hand in the tests."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from edgeloop.backtester.probability import Predictions
from edgeloop.marketdata.arrays import MarketArrays, arrays_from_matches
from edgeloop.marketdata.csv import Match

D1, D2, D3 = date(2020, 1, 4), date(2020, 1, 5), date(2020, 1, 6)

# (home, away, day, source X prices, result, (home, draw, away) probabilities or None)
ROWS = [
    ("A", "B", D1, (2.10, 3.40, 3.60), "H", (0.55, 0.25, 0.20)),
    ("C", "D", D1, (1.75, 3.60, 4.50), "A", (0.50, 0.25, 0.25)),
    ("E", "F", D2, (3.00, 3.20, 2.50), "A", (0.32, 0.35, 0.33)),
    ("G", "H", D3, (2.00, 3.50, 4.00), "H", None),   # no prediction: skipped
    ("I", "J", D3, (None, None, None), "D", (0.4, 0.3, 0.3)),  # no price: skipped
]


def window(source: str = "X") -> MarketArrays:
    """The matches with their prices under ``source`` (a bookmaker's code, or ``BFE`` for the exchange)."""
    goals = {"H": (1, 0), "D": (0, 0), "A": (0, 1)}
    return arrays_from_matches([
        Match(league="T1", season="2019-20", date=day, kickoff=None, home_team=h, away_team=a,
              home_goals=goals[res][0], away_goals=goals[res][1], result=res, prices={source: prices})
        for h, a, day, prices, res, _ in ROWS
    ])


def predictions(w: MarketArrays, lag: timedelta = timedelta(days=1)) -> Predictions:
    """Predictions made ``lag`` before each kick-off (negative lag: after it, a leak)."""
    by_teams = {(h, a): p for h, a, _, _, _, p in ROWS}
    probs = np.array([by_teams[(h, a)] or (np.nan,) * 3 for h, a in zip(w.home_teams, w.away_teams)], dtype=float)
    return Predictions(event_ids=w.event_ids, probabilities=probs,
                       available_at=w.kickoffs - np.timedelta64(int(lag.total_seconds() // 60), "m"),
                       model_version="test-1")
