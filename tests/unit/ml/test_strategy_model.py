"""The strategy model's pure parts: encoding, the array trees, serialisation, generation limits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor

from edgeloop.core.errors import InvalidRequest
from edgeloop.mlservice.strategy_generation import RISK_LIMITS, Constraints, generate, random_params
from edgeloop.mlservice.strategy_model import (
    FEATURE_NAMES, SHRINK_BETS, TARGETS, StrategyModel, TreeEnsemble, canonical_params, encode, params_fingerprint,
    shrunk_scores, training_labels)


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    params = [random_params(rng, RISK_LIMITS["high"]) for _ in range(n)]
    X = encode(params)
    # A made-up but parameter-determined label, enough to check the model's machinery.
    y = 0.3 + 0.5 * X[:, 0] - 0.05 * X[:, 3] + 0.1 * X[:, 4] + rng.normal(0, 0.01, n)
    return params, np.column_stack([y, y / 2, 1 - y, y / 3, y])


def test_array_trees_predict_exactly_like_sklearn():
    params, Y = _data()
    X = encode(params)
    ours, in_bag = TreeEnsemble.fit(X, Y, n_trees=20, seed=3)
    theirs = ExtraTreesRegressor(n_estimators=20, min_samples_leaf=3, max_features=0.8, bootstrap=True,
                                 max_samples=1.0, random_state=3, n_jobs=1).fit(X, Y)
    np.testing.assert_allclose(ours.predict_trees(X).mean(axis=0), theirs.predict(X), rtol=1e-12, atol=1e-12)
    for t, rows in enumerate(theirs.estimators_samples_):  # the same bootstrap rows, tree by tree
        assert set(np.flatnonzero(in_bag[t])) == set(rows)


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
    from edgeloop.backtester.strategy import Strategy

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


def test_shrunk_score_trusts_a_score_by_its_number_of_bets():
    scores = np.array([1.0, 1.0, 0.6, 0.4, 0.4, 0.4])
    bets = np.array([2, 5000, 0, 300, 300, 300])
    shrunk = shrunk_scores(scores, bets)
    m = 0.5  # the median
    assert shrunk[0] == pytest.approx((2 * 1.0 + SHRINK_BETS * m) / (2 + SHRINK_BETS))  # 2 lucky bets: ~typical
    assert shrunk[0] < 0.53 and shrunk[1] > 0.99  # thousands of bets: the score stands
    assert shrunk[2] == pytest.approx(m)  # no bet: nothing known beyond the prior
    assert shrunk[3:] == pytest.approx([(300 * 0.4 + SHRINK_BETS * m) / (300 + SHRINK_BETS)] * 3)
    assert shrunk_scores(np.array([]), np.array([])).shape == (0,)


def test_training_labels_are_the_targets_in_order():
    Y = training_labels([0.9, 0.5, 0.5], [{"roi": 0.3, "max_drawdown": 0.1, "win_rate": 0.6, "total_bets": 3},
                                          {"roi": -0.02, "max_drawdown": 0.2, "win_rate": 0.5, "total_bets": 400},
                                          {}])  # a sample without metrics: zeros, and no bet
    assert Y.shape == (3, len(TARGETS)) and TARGETS[0] == "backtest_score" and TARGETS[-1] == "shrunk_score"
    np.testing.assert_allclose(Y[:, :4], [[0.9, 0.3, 0.1, 0.6], [0.5, -0.02, 0.2, 0.5], [0.5, 0, 0, 0]])
    np.testing.assert_allclose(Y[:, 4], shrunk_scores(np.array([0.9, 0.5, 0.5]), np.array([3, 400, 0])))


def _lucky_and_solid(n=400, seed=0):
    """Parameter sets where min_edge ≥ 0.05 places a handful of bets that happen to score near
    1.0, min_edge < 0.02 hundreds of bets that score 0.7, and the rest hundreds that score 0.45."""
    rng = np.random.default_rng(seed)
    params = [random_params(rng, RISK_LIMITS["medium"]) for _ in range(n)]
    edge = np.array([p["min_edge"] for p in params])
    scores = np.select([edge >= 0.05, edge < 0.02], [0.95, 0.7], 0.45) + rng.normal(0, 0.01, n)
    metrics = [{"roi": 0.0, "max_drawdown": 0.1, "win_rate": 0.5, "total_bets": 3 if e >= 0.05 else 400} for e in edge]
    return params, training_labels(scores, metrics)


def test_generation_searches_what_rests_on_enough_bets():
    params, Y = _lucky_and_solid()
    model = StrategyModel.fit(params, Y)
    got = generate(model=model, constraints=Constraints(), seeds=params[:20], backtested=lambda fps: set(),
                   max_candidates=20, rng=np.random.default_rng(2))
    assert len(got) == 20 and all(c.params["min_edge"] < 0.05 for c in got)
    assert sum(c.params["min_edge"] < 0.02 for c in got) >= 15
    # what a candidate reports is still the raw score's estimate, as EvaluateStrategy's
    raw = model.estimate([c.params for c in got])
    np.testing.assert_allclose([c.expected_score for c in got], raw.of("backtest_score"))
    np.testing.assert_allclose([c.confidence for c in got], raw.confidence)


def test_a_model_without_the_shrunk_label_still_loads_and_generates_by_its_raw_score():
    params, Y = _lucky_and_solid()
    old = StrategyModel.fit(params, Y[:, :4], targets=TARGETS[:4])  # as trained before the label existed
    again = StrategyModel.from_bytes(old.to_bytes())
    assert again.targets == TARGETS[:4]
    got = generate(model=again, constraints=Constraints(), seeds=params[:20], backtested=lambda fps: set(),
                   max_candidates=20, rng=np.random.default_rng(2))
    assert len(got) == 20 and sum(c.params["min_edge"] >= 0.05 for c in got) >= 15  # chases the lucky ones
    with pytest.raises(ValueError, match="columns"):
        StrategyModel.fit(params, Y[:, :4])
    with pytest.raises(ValueError, match="prefix"):
        StrategyModel.fit(params, Y[:, :2], targets=("roi", "backtest_score"))


def test_a_strategy_the_model_trained_on_is_estimated_out_of_bag():
    # Given a model trained on 400 strategies, one of which had a lucky backtest far above
    # what its parameters explain
    params, Y = _data()
    lucky = Y.copy()
    lucky[7, 0] += 0.6
    model = StrategyModel.fit(params, lucky, seed=1)
    in_bag_only = StrategyModel(model.trees, model.residual_std, model.reference_score, model.targets, seen=None)
    # Then its estimate does not echo its own score back (the trees that fitted it would)
    echoed = in_bag_only.estimate([params[7]]).mean[0, 0] - Y[7, 0]
    honest = model.estimate([params[7]]).mean[0, 0] - Y[7, 0]
    assert echoed > 0.05 and abs(honest) < echoed / 3, (echoed, honest)
    # And the other strategies' estimates are out-of-bag too: about as far from their own
    # scores as the estimates of strategies the model never saw (in-bag ones are a third closer)
    unseen_params, unseen_Y = _data(seed=9)
    err_unseen = np.abs(model.estimate(unseen_params[:100]).mean[:, 0] - unseen_Y[:100, 0]).mean()
    err_seen = np.abs(model.estimate(params[20:120]).mean[:, 0] - Y[20:120, 0]).mean()
    err_in_bag = np.abs(in_bag_only.estimate(params[20:120]).mean[:, 0] - Y[20:120, 0]).mean()
    assert err_in_bag < 0.8 * err_unseen < err_seen < 1.25 * err_unseen, (err_in_bag, err_seen, err_unseen)
    # And the record of what it saw survives a round trip through the artifact
    again = StrategyModel.from_bytes(model.to_bytes())
    np.testing.assert_array_equal(again.estimate(params[:50]).mean, model.estimate(params[:50]).mean)
