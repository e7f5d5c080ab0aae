"""Features of the outcome model: only what is known before kick-off.

From a ``edgeloop.marketdata.MarketArrays`` window (sorted by kick-off), one row per event:

* **market**: log of the de-margined market-average probabilities (home, draw, away), and how
  far Pinnacle's pre-match log-probabilities differ from them where Pinnacle priced the match
  (0 elsewhere, with a 0/1 indicator), so the model can lean on the sharpest book;
* **dispersion**: standard deviation across bookmakers of the de-margined home and away
  probabilities (disagreement = uncertainty). Not the number of books: it jumps whenever
  football-data adds a bookmaker and would look like a signal it is not;
* **ratings**: the Elo difference (home + home bonus − away) from results of *earlier days*;
* **home advantage**: the league's home-minus-away win share over its last 380 earlier matches;
* **form**: points and goal difference per game over each team's last 5 earlier matches.

Closing prices (``…C`` sources) are *not* features: they are known only at kick-off, after a
pre-match bet would be placed, and Pinnacle's closing line is the benchmark we compare to.

De-margining is proportional: p_i = (1/o_i) / Σ_j (1/o_j). Point in time: the pass walks the
events day by day and computes a day's features before any result of that day updates the
ratings, form or home advantage, so a row never depends on its own or a later result.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import defaultdict, deque
from dataclasses import dataclass

import numpy as np

from edgeloop.marketdata import MarketArrays

# Pre-match bookmakers whose spread measures disagreement (aggregates and closing lines excluded).
BOOKS = ("B365", "BW", "IW", "LB", "PS", "WH", "VC", "SB", "GB", "SJ", "BS")
AVERAGE, MAXIMUM, PINNACLE, PINNACLE_CLOSE = "AVG", "MAX", "PS", "PSC"

ELO_START, ELO_PROMOTED, ELO_K, ELO_HOME, ELO_SEASON_SHRINK = 1500.0, 1420.0, 20.0, 60.0, 0.2
FORM_MATCHES, LEAGUE_WINDOW, HOME_EDGE_PRIOR = 5, 380, 0.17

# The first three columns are the market's log-probabilities: the outcome model's offset.
FEATURE_NAMES = (
    "log_p_home", "log_p_draw", "log_p_away",
    "ps_minus_avg_home", "ps_minus_avg_draw", "ps_minus_avg_away", "has_ps",
    "disp_home", "disp_away",
    "elo_diff", "league_home_edge",
    "form_home_ppg", "form_away_ppg", "form_home_gd", "form_away_gd",
)
OFFSET_COLUMNS = 3


def _quiet_nan(fn, *args, **kwargs):
    """nan-aggregates warn on all-NaN rows (no book priced the match); that is expected here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def demargin(odds: np.ndarray) -> np.ndarray:
    """(n, 3) decimal odds → (n, 3) proportional de-margined probabilities; NaN rows stay NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        implied = 1.0 / np.where(odds > 1.0, odds, np.nan)
        return implied / implied.sum(axis=1, keepdims=True)


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """Features of a window plus what training and evaluation need beside them."""

    event_ids: np.ndarray  # (n,) object
    index: dict[str, int]  # event id -> row
    dates: np.ndarray  # (n,) datetime64[D]
    seasons: np.ndarray  # (n,) object
    X: np.ndarray  # (n, len(FEATURE_NAMES)) float64, finite
    results: np.ndarray  # (n,) int8, -1 = not played (labels: only for training/evaluation)
    market_avg: np.ndarray  # (n, 3) de-margined average, the baseline to beat
    pinnacle_close: np.ndarray  # (n, 3) de-margined Pinnacle closing, NaN where absent
    best_prices: np.ndarray  # (n, 3) best pre-match price (market maximum), for recommendations
    prices: dict[str, np.ndarray]  # source -> (n, 3) pre-match odds, for strategy-scoped recommendations

    def __len__(self) -> int:
        return len(self.event_ids)

    def row_hash(self, i: int) -> str:
        return _hash_row(self.X[i])

    def row_hashes(self) -> list[str]:
        """``row_hash`` of every row, in row order."""
        return [_hash_row(x) for x in self.X]


def _hash_row(x: np.ndarray) -> str:
    return hashlib.sha256(x.tobytes()).hexdigest()[:16]


def _market_features(w: MarketArrays) -> tuple[np.ndarray, np.ndarray]:
    n = len(w)
    avg = demargin(w.price(AVERAGE))
    books = np.stack([demargin(w.price(b)) for b in BOOKS])  # (books, n, 3)
    consensus = _quiet_nan(np.nanmean, books, axis=0) if n else np.empty((0, 3))
    # Rows without a market average (rare, early seasons) fall back to the books' consensus.
    avg = np.where(np.isnan(avg), consensus, avg)
    ps = demargin(w.price(PINNACLE))
    has_ps = ~np.isnan(ps).any(axis=1)
    ps = np.where(has_ps[:, None], ps, avg)
    n_books = (~np.isnan(books[:, :, 0])).sum(axis=0)
    disp = np.where(n_books[:, None] >= 2, _quiet_nan(np.nanstd, books[:, :, [0, 2]], axis=0), 0.0)
    eps = 1e-6
    log_avg = np.log(np.clip(avg, eps, 1))
    cols = np.column_stack([
        log_avg, np.log(np.clip(ps, eps, 1)) - log_avg, has_ps.astype(float), np.nan_to_num(disp),
    ])
    return cols, avg


def _history_features(w: MarketArrays) -> np.ndarray:
    """Elo, league home edge and form, one day at a time (results of day d update after day d)."""
    n = len(w)
    out = np.zeros((n, 6))
    expected = np.zeros(n)
    rating: dict[str, float] = {}
    team_season: dict[str, str] = {}
    league_seasons: dict[str, set[str]] = defaultdict(set)
    league_hist: dict[str, deque] = defaultdict(lambda: deque(maxlen=LEAGUE_WINDOW))
    form: dict[str, deque] = defaultdict(lambda: deque(maxlen=FORM_MATCHES))

    def current(team: str, league: str, season: str) -> float:
        if team not in rating:
            # A team first seen after its league's first season was promoted: start it lower.
            first_season = not league_seasons[league] or league_seasons[league] == {season}
            rating[team] = ELO_START if first_season else ELO_PROMOTED
        elif team_season.get(team) != season:
            rating[team] = (1 - ELO_SEASON_SHRINK) * rating[team] + ELO_SEASON_SHRINK * ELO_START
        team_season[team] = season
        return rating[team]

    dates = w.dates
    start = 0
    while start < n:
        end = start
        while end < n and dates[end] == dates[start]:
            end += 1
        day = range(start, end)
        for i in day:  # features first, from strictly earlier days
            lg, season = w.leagues[i], w.seasons[i]
            league_seasons[lg].add(season)
            h, a = w.home_teams[i], w.away_teams[i]
            rh, ra = current(h, lg, season), current(a, lg, season)
            diff = rh + ELO_HOME - ra
            hist = league_hist[lg]
            edge = (sum(1 for r in hist if r == 0) - sum(1 for r in hist if r == 2)) / len(hist) if hist else HOME_EDGE_PRIOR
            fh, fa = form[h], form[a]
            expected[i] = 1.0 / (1.0 + 10 ** (-diff / 400.0))
            out[i] = (
                diff / 400.0, edge,
                np.mean([p for p, _ in fh]) if fh else 1.35, np.mean([p for p, _ in fa]) if fa else 1.35,
                np.mean([g for _, g in fh]) if fh else 0.0, np.mean([g for _, g in fa]) if fa else 0.0,
            )
        for i in day:  # then the day's results update the state
            r = int(w.results[i])
            if r < 0:
                continue
            h, a, lg = w.home_teams[i], w.away_teams[i], w.leagues[i]
            delta = ELO_K * ((1.0, 0.5, 0.0)[r] - expected[i])
            rating[h] += delta
            rating[a] -= delta
            league_hist[lg].append(r)
            gd = int(w.home_goals[i]) - int(w.away_goals[i]) if w.home_goals[i] >= 0 else 0
            form[h].append(((3, 1, 0)[r], gd))
            form[a].append(((0, 1, 3)[r], -gd))
        start = end
    return out


def build_features(w: MarketArrays) -> FeatureSet:
    """The feature rows of every event of ``w`` (which must be sorted by kick-off, as loaded)."""
    market, avg = _market_features(w)
    history = _history_features(w)
    X = np.column_stack([market, history]) if len(w) else np.empty((0, len(FEATURE_NAMES)))
    # An event no book priced keeps a row (uniform market, zero elsewhere) so the matrix stays
    # finite; the model then leans on ratings and form alone.
    X = np.where(np.isfinite(X), X, 0.0)
    X[:, :OFFSET_COLUMNS] = np.where(np.isfinite(market[:, :OFFSET_COLUMNS]), market[:, :OFFSET_COLUMNS], np.log(1 / 3))
    best = w.price(MAXIMUM)
    if len(w):
        best = np.where(np.isnan(best), _quiet_nan(np.nanmax, np.stack([w.price(b) for b in BOOKS]), axis=0), best)
    ids = np.asarray(w.event_ids)
    return FeatureSet(
        event_ids=ids,
        index={e: i for i, e in enumerate(ids)},
        dates=np.asarray(w.dates),
        seasons=np.asarray(w.seasons),
        X=X,
        results=np.asarray(w.results),
        market_avg=avg,
        pinnacle_close=demargin(w.price(PINNACLE_CLOSE)),
        best_prices=best,
        prices={k: v for k, v in w.prices.items()},
    )
