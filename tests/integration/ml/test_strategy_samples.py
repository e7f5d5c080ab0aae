"""The strategy trainer's samples as the database chooses them (``stored_samples``) are exactly
those ``samples_of`` chooses among every stored sample, decoded the same: the same rows, params,
fingerprints and labels, so the same model. On PostgreSQL (JSONB) and SQLite (JSON text)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from sqlalchemy import insert, select

from edgeloop.mlservice.strategy_generation import RISK_LIMITS, random_params
from edgeloop.mlservice.strategy_model import params_fingerprint
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
