"""The strategy model learns from real backtests: EvaluateStrategy, GenerateStrategy, GetFeatures."""

from __future__ import annotations

from datetime import date

import grpc
from google.protobuf import json_format
import numpy as np
import pytest

from edgeloop.backtester.report import to_event
from edgeloop.backtester.run import Window, backtest
from edgeloop.mlservice.strategy_generation import RISK_LIMITS, random_params
from edgeloop.mlservice.strategy_model import canonical_params, params_fingerprint, spearman
from edgeloop.proto import ml_service_pb2 as pb
from tests.integration.ml.conftest import damage_artifact, replica_error, wait_job

pytestmark = pytest.mark.integration

WINDOW = Window(date(2017, 8, 1), date(2019, 6, 30), ("E0", "D1"))
# The window the strategies were "chosen on": the model learns their scores on the later WINDOW.
EARLIER = Window(date(2015, 8, 1), date(2017, 6, 30), ("E0", "D1"))
N_FEEDBACK, N_HELD_OUT = 300, 100


@pytest.fixture(scope="module")
def backtests():
    """400 random strategies with their true scores (the backtester, de-margined market probabilities)."""
    rng = np.random.default_rng(20261126)
    events, seen = [], set()
    while len(events) < N_FEEDBACK + N_HELD_OUT:
        params = canonical_params({**random_params(rng, RISK_LIMITS["medium"]), "probability_source": "market"})
        if params_fingerprint(params) in seen:
            continue
        seen.add(params_fingerprint(params))
        events.append(to_event(backtest(params, WINDOW)))
    return events


def _params(struct) -> dict:
    return json_format.MessageToDict(struct)


def _submit(stub, events):
    for i in range(0, len(events), 100):
        stub.SubmitBacktestFeedback(pb.BacktestFeedbackRequest(results=events[i:i + 100], batch_id=f"b{i}"), timeout=30)


@pytest.fixture(scope="module")
def chosen_on(backtests):
    """The training strategies' backtests on the earlier window."""
    return [to_event(backtest(_params(e.params), EARLIER)) for e in backtests[:N_FEEDBACK]]


@pytest.fixture
def trained_strategy(stub, backtests, chosen_on):
    _submit(stub, chosen_on)
    _submit(stub, backtests[:N_FEEDBACK])
    status = wait_job(stub, stub.TrainModels(pb.TrainModelsRequest(model_name="strategy"), timeout=5).job_id)
    assert status.status == "succeeded", status.reason
    assert len(status.model_versions) == 1
    return status.model_versions[0]


def _evaluate(stub, event):
    req = pb.EvaluateStrategyRequest(strategy_id=event.strategy_id)
    req.params.CopyFrom(event.params)
    return stub.EvaluateStrategy(req, timeout=5)


def test_evaluate_ranks_held_out_strategies(stub, backtests, trained_strategy):
    held_out = backtests[N_FEEDBACK:]
    answers = [_evaluate(stub, e) for e in held_out]
    truth = np.array([e.metrics.backtest_score for e in held_out])
    expected = np.array([a.expected_score for a in answers])
    confidence = np.array([a.confidence for a in answers])
    assert all(a.model_version == trained_strategy for a in answers)
    assert ((confidence >= 0) & (confidence <= 1)).all() and np.ptp(confidence) > 0
    # A strategy whose filters never let it bet scores 0 everywhere: every tree agrees on that.
    assert all(a.uncertainty >= 0 for a in answers)
    assert all(a.uncertainty > 0 for a in answers if a.expected_score > 0.01)
    rho = spearman(expected, truth)
    assert rho >= 0.5, f"Spearman {rho:.3f} on {len(held_out)} held-out strategies"
    assert spearman(confidence, truth) >= 0.4


def test_registry_records_held_out_metrics(stub, trained_strategy):
    model = stub.GetModelMetrics(pb.ModelMetricsRequest(model_name="strategy"), timeout=5).model
    assert model.version == trained_strategy and model.status == "serving"
    assert model.sample_count + model.metrics["n_held_out"] == N_FEEDBACK
    assert model.metrics["n_held_out"] >= 30 and -1 <= model.metrics["spearman_held_out"] <= 1


def test_not_enough_new_feedback_trains_nothing_unless_forced(stub, trained_strategy):
    again = wait_job(stub, stub.TrainModels(pb.TrainModelsRequest(model_name="strategy"), timeout=5).job_id)
    assert again.status == "succeeded" and list(again.model_versions) == [] and "min_new_feedback" in again.reason
    forced = wait_job(stub, stub.TrainModels(pb.TrainModelsRequest(model_name="strategy", force=True), timeout=5).job_id)
    assert forced.status == "succeeded" and len(forced.model_versions) == 1


def _serving_strategy_model(settings):
    from edgeloop.mlservice import registry
    from edgeloop.mlservice.strategy_model import StrategyModel
    from edgeloop.schema.db import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    try:
        return StrategyModel.from_bytes(registry.serving_versions(make_sessionmaker(engine), "strategy")[-1].artifact)
    finally:
        engine.dispose()


def test_generate_respects_constraints_and_never_repeats_a_backtest(stub, backtests, trained_strategy, ml_settings):
    request = pb.GenerateStrategyRequest(max_candidates=10, random_seed=7,
                                         constraints=pb.StrategyConstraints(risk_level="low"))
    first = stub.GenerateStrategy(request, timeout=10).strategies
    assert len(first) == 10
    limits = RISK_LIMITS["low"]
    submitted = {params_fingerprint(_params(e.params)) for e in backtests[:N_FEEDBACK]}
    fingerprints = [params_fingerprint(_params(s.params)) for s in first]
    assert len(set(fingerprints)) == 10 and not set(fingerprints) & submitted
    for s in first:
        p = _params(s.params)
        assert p["max_odds"] <= limits.max_odds and p["kelly_fraction"] <= limits.max_kelly_fraction
        assert p["max_stake_fraction"] <= limits.max_stake_fraction
        assert s.model_version == trained_strategy and 0 <= s.confidence <= 1 and s.uncertainty >= 0
    # upper confidence bound order, on the serving model's bet-shrunk score (what the search ranks by)
    model = _serving_strategy_model(ml_settings)
    est = model.estimate([canonical_params(_params(s.params)) for s in first])
    ucb = est.of("shrunk_score") + est.spread_of("shrunk_score")
    assert list(ucb) == sorted(ucb, reverse=True)
    np.testing.assert_allclose([s.expected_score for s in first], est.of("backtest_score"))  # reported: the raw score

    # When a candidate is backtested (the first on market probabilities: this test has no
    # prediction provider), the same request never proposes it again
    i = next(i for i, s in enumerate(first) if _params(s.params)["probability_source"] == "market")
    chosen = canonical_params(_params(first[i].params))
    _submit(stub, [to_event(backtest(chosen, WINDOW))])
    again = stub.GenerateStrategy(request, timeout=10).strategies
    assert fingerprints[i] not in {params_fingerprint(_params(s.params)) for s in again}


def test_get_features_are_the_parameters_only(stub, backtests, trained_strategy):
    event = backtests[0]
    answer = stub.GetFeatures(pb.GetFeaturesRequest(backtest_id=event.backtest_id), timeout=5)
    assert list(answer.feature_names) == list(answer.features) or set(answer.feature_names) == set(answer.features)
    assert answer.features["min_edge"] == pytest.approx(event.params["min_edge"])
    assert not {"roi", "backtest_score", "sharpe_ratio", "composite_score"} & set(answer.features)
    with pytest.raises(grpc.RpcError) as err:
        stub.GetFeatures(pb.GetFeaturesRequest(backtest_id="bt-unknown"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_training_both_models_without_feedback_trains_the_outcome_model_only(stub):
    job = wait_job(stub, stub.TrainModels(pb.TrainModelsRequest(), timeout=5).job_id)
    assert job.status == "succeeded" and len(job.model_versions) >= 15
    assert "strategy: skipped: 0 usable later-window samples" in job.reason


def test_results_of_the_window_a_strategy_was_chosen_on_are_never_labels(stub, chosen_on):
    _submit(stub, chosen_on)  # 300 strategies, each on one window only
    job = wait_job(stub, stub.TrainModels(pb.TrainModelsRequest(model_name="strategy"), timeout=5).job_id)
    assert job.status == "succeeded" and list(job.model_versions) == []
    assert "0 usable later-window samples" in job.reason


def test_an_unreadable_serving_artifact_is_a_clear_error_naming_its_version(stub, backtests, trained_strategy,
                                                                             ml_settings):
    """A damaged artifact (here truncated) fails the next training and, in a replica that
    loads it, the strategy RPCs: with the version to roll back from, not numpy's EOFError or
    zipfile's BadZipFile (INTERNAL, the message hidden)."""
    damage_artifact(ml_settings, trained_strategy, lambda artifact: artifact[:len(artifact) // 2])
    job = wait_job(stub, stub.TrainModels(pb.TrainModelsRequest(model_name="strategy", force=True), timeout=5).job_id)
    assert job.status == "failed"
    assert job.reason.startswith(f"strategy: ModelArtifactUnreadable: strategy model {trained_strategy}: ")

    error = replica_error(ml_settings, lambda replica: _evaluate(replica, backtests[0]))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details().startswith(f"strategy model {trained_strategy}: artifact of ")


def test_strategy_rpcs_before_training(stub):
    req = pb.EvaluateStrategyRequest(strategy_id="s")
    req.params.update({"min_edge": 0.02})
    with pytest.raises(grpc.RpcError) as err:
        stub.EvaluateStrategy(req, timeout=5)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "not trained" in err.value.details()
    drafts = stub.GenerateStrategy(pb.GenerateStrategyRequest(max_candidates=3), timeout=5).strategies
    assert len(drafts) == 3 and all(d.model_version == "" and d.expected_score == 0 for d in drafts)


@pytest.mark.parametrize("params, text", [
    ({"min_edge": "lots"}, "min_edge"), ({"staking": "martingale"}, "staking"), ({}, "params is empty"),
])
def test_bad_evaluate_requests(stub, params, text):
    req = pb.EvaluateStrategyRequest(strategy_id="s")
    req.params.update(params)
    with pytest.raises(grpc.RpcError) as err:
        stub.EvaluateStrategy(req, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and text in err.value.details()


@pytest.mark.parametrize("request_, text", [
    (pb.GenerateStrategyRequest(max_candidates=0), "max_candidates"),
    (pb.GenerateStrategyRequest(max_candidates=10_000), "max_candidates"),
    (pb.GenerateStrategyRequest(max_candidates=5, constraints=pb.StrategyConstraints(risk_level="extreme")), "risk_level"),
    (pb.GenerateStrategyRequest(max_candidates=5, constraints=pb.StrategyConstraints(min_win_rate=2)), "min_win_rate"),
])
def test_bad_generate_requests(stub, request_, text):
    with pytest.raises(grpc.RpcError) as err:
        stub.GenerateStrategy(request_, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and text in err.value.details()


def test_feedback_with_one_score_for_every_strategy_still_trains(stub, backtests):
    """Every held-out score equal: the held-out Spearman is not defined, and the version is
    stored without it (PostgreSQL's jsonb has no NaN)."""
    events = []
    for i, event in enumerate(backtests[:60]):
        for window, tag in ((EARLIER, "chosen"), (WINDOW, "later")):
            same = type(event)()
            same.CopyFrom(event)
            same.backtest_id = f"same-score-{tag}-{i}"
            same.window_start, same.window_end = window.start.isoformat(), window.end.isoformat()
            same.metrics.CopyFrom(backtests[0].metrics)
            events.append(same)
    _submit(stub, events)
    status = wait_job(stub, stub.TrainModels(pb.TrainModelsRequest(model_name="strategy"), timeout=5).job_id)
    assert status.status == "succeeded", status.reason
    model = stub.GetModelMetrics(pb.ModelMetricsRequest(model_name="strategy"), timeout=5).model
    assert "spearman_held_out" not in model.metrics and model.metrics["n_held_out"] >= 1
