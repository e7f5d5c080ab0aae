"""The outcome version serving season S is chosen on the seasons before S, never on S."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import pytest

from edgeloop.marketdata import load_window
from edgeloop.mlservice.features import build_features
from edgeloop.mlservice.outcome_selection import Lineages, decide, pooled, record
from edgeloop.mlservice.outcome_model import walk_forward

SEASON = "2017-18"


@pytest.fixture(scope="module")
def window():
    return load_window(["E0"], date(2010, 7, 1), date(2019, 6, 30), data_dir="data/football-data")


@pytest.fixture(scope="module")
def champions(window):
    """The versions serving before the training job: fitted like the challengers, but biased
    towards home wins, so rewriting results to home or away wins decides which looks better."""
    models = walk_forward(build_features(window), C=0.001)
    return {v.season: dataclasses.replace(v.model, intercept=v.model.intercept + [0.4, 0.0, 0.0]) for v in models}


def _with_results(window, rows: np.ndarray, result: int):
    """``window`` with every result of ``rows`` replaced by ``result`` (0 home, 2 away), 1–0 or 0–1."""
    new = window.results.copy()
    new[rows] = result
    changed = np.isin(np.arange(len(new)), rows)
    return dataclasses.replace(window, results=new,
                               home_goals=np.where(changed, int(result == 0), window.home_goals).astype(np.int16),
                               away_goals=np.where(changed, int(result == 2), window.away_goals).astype(np.int16))


def _season_logloss(model, fs, season):
    return pooled(record({season: model}, fs), [season])


def test_changing_results_of_a_season_cannot_change_which_version_serves_it(window, champions):
    fs = build_features(window)
    real = {d.season: d for d in decide(Lineages.fit(fs), fs, champions)}
    chosen = real[SEASON]
    # Given two rewrites of every result from SEASON on: all home wins (the champion's bias
    # pays) and all away wins (it costs)
    rows = np.flatnonzero(window.dates >= np.datetime64(chosen.version.train_end))
    decisions = {}
    for name, result in (("home", 0), ("away", 2)):
        world = _with_results(window, rows, result)
        # When the model is trained on each and the versions are chosen
        fs_w = build_features(world)
        decisions[name] = {d.season: d for d in decide(Lineages.fit(fs_w), fs_w, champions)}
        # (the rewrite decides which of the two is better on SEASON itself: a choice on SEASON would flip)
        gap = (_season_logloss(decisions[name][SEASON].version.model, fs_w, SEASON)
               - _season_logloss(champions[SEASON], fs_w, SEASON))
        assert gap > 0.1 if name == "home" else gap < -0.1
    # Then SEASON and every season before it get the same decision, from the same seasons, the same fit
    for season, d in real.items():
        if season > SEASON:
            continue
        for world in decisions.values():
            w = world[season]
            assert (w.serve, w.note, w.judged_on) == (d.serve, d.note, d.judged_on)
            np.testing.assert_array_equal(w.version.model.coef, d.version.model.coef)
    assert chosen.serve and chosen.judged_on and all(s < SEASON for s in chosen.judged_on)


def test_a_challenger_worse_on_the_earlier_seasons_is_rejected(window):
    # Given champions with light regularisation and challengers forced to a heavy-handed grid
    fs = build_features(window)
    champions = {v.season: v.model for v in walk_forward(fs, C=0.0001)}
    decisions = decide(Lineages.fit(fs, grid=(10.0,)), fs, champions)
    champion_record = record(champions, fs)
    # Then each season serves the challenger exactly when it did at least as well on the earlier seasons
    compared = [d for d in decisions if d.judged_on]
    assert len(compared) >= 5
    for d in compared:
        challenger_record = record({s: v.version.model for s, v in ((x.season, x) for x in decisions)}, fs)
        new, old = pooled(challenger_record, d.judged_on), pooled(champion_record, d.judged_on)
        assert d.serve == (new <= old + 1e-9), d.note
    assert any(not d.serve for d in compared)
    # and the first season, with nothing earlier to judge on, is served by its only version
    assert decisions[0].serve and decisions[0].judged_on == ()
