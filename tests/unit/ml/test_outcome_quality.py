"""Acceptance: walk-forward out-of-sample quality per season on the shipped data, beside the market."""

from __future__ import annotations

import pytest

from edgeloop.marketdata import load_window
from edgeloop.mlservice.features import build_features
from edgeloop.mlservice.outcome_model import walk_forward

MIN_EVENTS = 300
MAX_WORSE = 0.01  # never more than 1% log-loss above the de-margined market average


@pytest.fixture(scope="module")
def versions():
    return walk_forward(build_features(load_window(data_dir="data/football-data")))


def test_one_version_per_season_trained_only_on_earlier_seasons(versions):
    seasons = [v.season for v in versions]
    assert len(seasons) == len(set(seasons)) >= 19
    for v in versions:
        assert v.train_start < v.train_end and int(v.train_end.isoformat()[:4]) == int(v.season[:4])


def test_never_worse_than_the_market_average_by_more_than_one_percent(versions):
    checked = 0
    for v in versions:
        m = v.metrics
        assert 0 < m["brier"] < 1 and m["logloss"] > 0
        if m["n_events"] >= MIN_EVENTS:
            checked += 1
            assert m["logloss"] <= m["logloss_market_avg"] * (1 + MAX_WORSE), (
                f"{v.season}: model {m['logloss']:.4f} vs market average {m['logloss_market_avg']:.4f}")
    assert checked >= 19


def test_pinnacle_closing_is_reported_where_it_exists(versions):
    with_pinnacle = [v for v in versions if v.season >= "2012-13"]
    assert with_pinnacle and all("logloss_pinnacle_close" in v.metrics for v in with_pinnacle)
