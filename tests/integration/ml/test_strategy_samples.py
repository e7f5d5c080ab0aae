"""The strategy trainer's samples as the database chooses them (``stored_samples``) are exactly
those ``samples_of`` chooses among every stored sample, decoded the same: the same rows, params,
fingerprints and labels, so the same model. On PostgreSQL (JSONB) and SQLite (JSON text)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from sqlalchemy import insert, select

from edgeloop.mlservice.strategy_generation import RISK_LIMITS, random_params
from edgeloop.mlservice.strategy_model import FEATURE_NAMES, encode, params_fingerprint
from edgeloop.mlservice.strategy_training import samples_of, stored_samples
from edgeloop.schema.base import utcnow
from edgeloop.schema.db import make_engine, make_sessionmaker, upgrade
from edgeloop.schema.mlstore import FeedbackSample

pytestmark = pytest.mark.integration

CUTOFF = date(2022, 7, 1)
WINDOWS = [
    (date(2015, 8, 1), date(2017, 6, 30)),
    (date(2016, 8, 1), date(2018, 6, 30)),  # overlaps the first: never a later window of it
    (date(2017, 6, 30), date(2019, 6, 30)),  # starts the day the first ends: not after it
    (date(2017, 8, 1), date(2019, 6, 30)),
    (date(2019, 8, 1), date(2022, 6, 30)),
    (date(2020, 8, 1), date(2022, 7, 1)),  # ends on the cutoff: not before it
    (date(2022, 8, 1), date(2024, 6, 30)),  # after the cutoff
]


def _rows(n: int, seed: int) -> list[dict]:
    """n strategies, each with results on 1–4 random windows, stored in a shuffled order; some
    with params the backtester refuses, some without metrics or with only a few."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n):
        params = random_params(rng, RISK_LIMITS["high"]) if s % 10 else {"min_odds": 0.5}  # refused
        key = params_fingerprint(params) if s % 10 else f"refused-{s}"
        for w in rng.choice(len(WINDOWS), rng.integers(1, 5), replace=False):
            y = rng.random(5)
            metrics = [None, {}, {"roi": y[1]},
                       {"roi": y[1], "max_drawdown": y[2], "win_rate": y[3], "total_bets": float(int(300 * y[4]))}][s % 4]
            start, end = WINDOWS[w]
            rows.append({
                "backtest_id": f"bt-{s}-{w}", "strategy_id": f"s-{s}", "strategy_name": "", "params": params,
                "window_start": start, "window_end": end, "method": "test", "model_version": None,
                "metrics": metrics, "backtest_score": float(y[0]), "params_key": key, "batch_id": "t",
                "received_at": utcnow()})
    return [rows[i] for i in rng.permutation(len(rows))]


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request, tmp_path):
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else f"sqlite:///{tmp_path}/ml.db"
    if request.param == "sqlite":
        upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_the_database_chooses_and_decodes_the_samples_samples_of_would(engine):
    with engine.begin() as conn:
        conn.execute(insert(FeedbackSample), _rows(400, seed=5))
    with make_sessionmaker(engine)() as s:
        every = s.scalars(select(FeedbackSample).order_by(FeedbackSample.id)).all()
        ids, params, fingerprints, Y = samples_of(every, CUTOFF)
    got = stored_samples(engine, CUTOFF)
    assert 100 < len(ids) < len(every) / 2  # a real choice: most results are not labels
    assert got[0] == ids and got[1] == params and got[2] == fingerprints
    np.testing.assert_array_equal(got[3], Y)


def test_a_fixed_sample_has_the_features_it_always_had(engine):
    """The features of stored params through the trainer's reading (each distinct params text
    decoded and checked once): aliases resolved, defaults filled, context dropped, refused params
    left out. Written out by hand, so a change to the features, or to what the reading hands the
    encoder, fails here."""
    strategies = [
        {"side": "BACK", "selections": "Home", "price_source": "max", "probability_source": "Model", "min_edge": 0.02,
         "min_odds": 1.5, "max_odds": 5000.0, "staking": "kelly", "kelly_fraction": 0.3, "max_stake_fraction": 0.04,
         "leagues": ["E0"]},
        {"side": "lay", "price_source": "betfair_exchange_closing", "selections": ["draw", "away"],
         "one_bet_per_event": True, "min_confidence": 0.1, "min_odds": 2.0, "max_odds": 10.0},
        {"min_odds": 0.5},  # refused
        {"price_source": "PSC", "min_odds": 3.0, "staking": "flat", "kelly_fraction": 0.5},
        {"price_source": "WH", "market_probability_source": "PS", "min_edge": -0.01},
    ]
    chosen_on, later = WINDOWS[0], WINDOWS[3]
    rows = [{"backtest_id": f"bt-{s}-{w}", "strategy_id": f"s-{s}", "strategy_name": "", "params": params,
             "window_start": start, "window_end": end, "method": "test", "model_version": None,
             "metrics": {"roi": s / 10}, "backtest_score": 0.5, "params_key": params_fingerprint(params),
             "batch_id": "t", "received_at": utcnow()}
            for s, params in enumerate(strategies) for w, (start, end) in enumerate([chosen_on, later])]
    with engine.begin() as conn:
        conn.execute(insert(FeedbackSample), rows)
    ids, params, _, Y = stored_samples(engine, CUTOFF)
    assert ids == ["bt-0-1", "bt-1-1", "bt-3-1", "bt-4-1"]
    np.testing.assert_array_equal(Y[:, 1], [0.0, 0.1, 0.3, 0.4])  # each its own label
    # FEATURE_NAMES: min_edge, min_confidence, log_min_odds, log_max_odds, kelly, kelly_fraction,
    # max_stake_fraction, sel_home, sel_draw, sel_away, lay, one_bet_per_event, model_probabilities,
    # closing_price, price_MAX, price_AVG, price_PS, price_B365, price_BFE, price_other
    log = np.log
    expected = np.array([
        [0.02, 0.0, log(1.5), log(1000.0), 1, 0.3, 0.04, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0],
        [0.0, 0.1, log(2.0), log(10.0), 0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 1, 0],
        [0.0, 0.0, log(3.0), log(1000.0), 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0],
        [-0.01, 0.0, log(1.01), log(1000.0), 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    ])
    assert FEATURE_NAMES[:3] == ("min_edge", "min_confidence", "log_min_odds") and len(FEATURE_NAMES) == 20
    np.testing.assert_array_equal(encode(params), expected)
