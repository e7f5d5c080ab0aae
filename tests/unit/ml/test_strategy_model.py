"""The strategy model's pure parts: encoding, the array trees, serialisation, generation limits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor

from edgeloop.errors import InvalidRequest
from mlservice.strategy_generation import RISK_LIMITS, Constraints, generate, random_params
from mlservice.strategy_model import (
    FEATURE_NAMES, StrategyModel, TreeEnsemble, canonical_params, encode, params_fingerprint)


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    params = [random_params(rng, RISK_LIMITS["high"]) for _ in range(n)]
    X = encode(params)
    # A made-up but parameter-determined label, enough to check the model's machinery.
    y = 0.3 + 0.5 * X[:, 0] - 0.05 * X[:, 3] + 0.1 * X[:, 4] + rng.normal(0, 0.01, n)
    return params, np.column_stack([y, y / 2, 1 - y, y / 3])


def test_array_trees_predict_exactly_like_sklearn():
    params, Y = _data()
    X = encode(params)
    ours = TreeEnsemble.fit(X, Y, n_trees=20, seed=3)
    theirs = ExtraTreesRegressor(n_estimators=20, min_samples_leaf=3, max_features=0.8, bootstrap=True,
                                 max_samples=1.0, random_state=3, n_jobs=1).fit(X, Y)
    np.testing.assert_allclose(ours.predict_trees(X).mean(axis=0), theirs.predict(X), rtol=1e-12, atol=1e-12)


def test_round_trip_and_confidence_bounds():
    params, Y = _data()
    model = StrategyModel.fit(params[:300], Y[:300])
    again = StrategyModel.from_bytes(model.to_bytes())
    a, b = model.estimate(params[300:]), again.estimate(params[300:])
    np.testing.assert_array_equal(a.mean, b.mean)
    assert ((a.confidence >= 0) & (a.confidence <= 1)).all()
    assert np.corrcoef(a.of("backtest_score"), Y[300:, 0])[0, 1] > 0.8


def test_canonical_params_fill_defaults_drop_context_and_refuse_nonsense():
    p = canonical_params({"min_edge": 0.02, "price_source": "pinnacle", "leagues": ["E0"]})
    assert p["price_source"] == "PS" and p["staking"] == "flat" and "leagues" not in p
    assert params_fingerprint({"min_edge": 0.02, "price_source": "PS"}) == params_fingerprint(p)
    with pytest.raises(InvalidRequest, match="min_odds"):
        canonical_params({"min_odds": 5.0, "max_odds": 2.0})
    assert len(encode([p])[0]) == len(FEATURE_NAMES)
    # the fast path reads the same fields the backtester publishes
    from backtester.strategy import Strategy

    assert p == Strategy.from_mapping({"min_edge": 0.02, "price_source": "pinnacle"}).params()


def test_generation_stays_inside_risk_limits_and_skips_backtested_sets():
    params, Y = _data()
    model = StrategyModel.fit(params, Y)
    backtested = {params_fingerprint(p) for p in params}
    got = generate(model=model, constraints=Constraints(risk_level="low"), seeds=params[:10], backtested=backtested.intersection,
                   max_candidates=25, rng=np.random.default_rng(1))
    assert len(got) == 25 and len({c.fingerprint for c in got}) == 25
    limits = RISK_LIMITS["low"]
    for c in got:
        assert c.fingerprint not in backtested
        assert c.params["max_odds"] <= limits.max_odds and c.params["kelly_fraction"] <= limits.max_kelly_fraction
        assert c.params["max_stake_fraction"] <= limits.max_stake_fraction
    strict = generate(model=model, constraints=Constraints(risk_level="low", target_return=10.0), seeds=[],
                      backtested=backtested.intersection, max_candidates=5, rng=np.random.default_rng(1))
    assert strict == []  # nobody is predicted a 1,000% return
