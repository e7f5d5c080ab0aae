"""The outcome model: valid probabilities, held-out quality near the market, and point in time."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import pytest

from edgeloop.marketdata import load_window
from edgeloop.mlservice.features import FEATURE_NAMES, build_features
from edgeloop.mlservice.outcome_model import OutcomeModel, ServingOutcome, confidence, walk_forward
from edgeloop.mlservice.predictor import Answers

CUTOFF = np.datetime64("2018-01-01")


@pytest.fixture(scope="module")
def window():
    return load_window(["E0"], date(2013, 7, 1), date(2019, 6, 30), data_dir="data/football-data")


def _predict_all(w):
    fs = build_features(w)
    versions = walk_forward(fs)
    serving = ServingOutcome([(np.datetime64(v.train_end, "D"), v.season, v.model) for v in versions])
    rows = np.arange(len(fs))
    probs, which = serving.predict_rows(fs, rows)
    return fs, probs, which


def test_probabilities_are_valid_and_near_the_market(window):
    fs, probs, which = _predict_all(window)
    ok = which >= 0
    assert ok.sum() > 1000
    assert np.allclose(probs[ok].sum(axis=1), 1.0) and (probs[ok] > 0).all()
    y = fs.results[ok].astype(int)
    model_ll = -np.mean(np.log(probs[ok][np.arange(ok.sum()), y]))
    market_ll = -np.mean(np.log(fs.market_avg[ok][np.arange(ok.sum()), y]))
    assert model_ll < market_ll * 1.01


def test_changing_results_after_a_date_never_changes_an_earlier_prediction(window):
    # Given the same matches with every result after the cutoff replaced by a random one
    rng = np.random.default_rng(7)
    after = window.dates >= CUTOFF
    results = window.results.copy()
    results[after] = rng.integers(0, 3, after.sum())
    goals = np.where(results == 0, 1, 0).astype(np.int16), np.where(results == 2, 1, 0).astype(np.int16)
    altered = dataclasses.replace(window, results=results, home_goals=np.where(after, goals[0], window.home_goals),
                                  away_goals=np.where(after, goals[1], window.away_goals))
    # When both are featurised, trained walk-forward and predicted
    fs, p_real, _ = _predict_all(window)
    fs2, p_altered, _ = _predict_all(altered)
    before = fs.dates < CUTOFF
    # Then every prediction before the cutoff is bit-for-bit the same, and later ones do change
    assert before.sum() > 500
    np.testing.assert_array_equal(p_real[before], p_altered[before])
    np.testing.assert_array_equal(fs.X[before], fs2.X[before])
    assert not np.allclose(p_real[~before], p_altered[~before])


def test_artifact_round_trip_without_pickle(window):
    fs = build_features(window)
    model = OutcomeModel.fit(fs.X[:800], fs.results[:800].astype(int))
    again = OutcomeModel.from_bytes(model.to_bytes())
    np.testing.assert_array_equal(model.predict_proba(fs.X[800:900]), again.predict_proba(fs.X[800:900]))
    assert again.feature_names == FEATURE_NAMES


def test_a_snapshots_answers_are_what_a_request_would_compute_for_its_rows(window):
    # Given the serving versions of a walk-forward, and the table a snapshot precomputes
    fs = build_features(window)
    versions = walk_forward(fs)
    serving = ServingOutcome([(np.datetime64(v.train_end, "D"), v.season, v.model) for v in versions])
    answers = Answers.compute(fs, serving, 0.02, fs.row_hashes())
    # When a request's rows are computed on their own, as a request once did
    rows = np.random.default_rng(3).choice(len(fs), 300, replace=False)
    probs, which = serving.predict_rows(fs, rows)
    # Then the table holds the same numbers, bit for bit, and "no version" where none is old enough
    assert (which < 0).any() and (which >= 0).sum() > 100
    np.testing.assert_array_equal(np.array([answers.probs[r] for r in rows]), probs)
    np.testing.assert_array_equal(np.array([answers.confidence[r] for r in rows]), confidence(probs))
    assert [answers.versions[r] for r in rows] == [versions[k].season if k >= 0 else "" for k in which]
    assert [answers.hashes[r] for r in rows] == [fs.row_hash(r) for r in rows]
    for i, r in enumerate(rows):  # the default rule, one selection at a time
        for sel in range(3):
            p, price = float(probs[i, sel]), float(fs.best_prices[r, sel])
            assert answers.backs[r][sel] == (which[i] >= 0 and np.isfinite(price) and p * price - 1.0 > 0.02)
