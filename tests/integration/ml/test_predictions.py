"""GetPrediction / BatchPredict / training jobs / registry against a real server and PostgreSQL."""

from __future__ import annotations

import grpc
import pytest

from edgeloop.proto import ml_service_pb2 as pb
from tests.integration.ml.conftest import damage_artifact, replica_error, wait_job

pytestmark = pytest.mark.integration

EVENT = "E0-2019-08-09-Liverpool-Norwich"


def _req(event_id=EVENT, selection="home", **kw):
    return pb.PredictionRequest(event_id=event_id, selection=selection, **kw)


def test_walk_forward_versions_are_recorded_with_windows_and_metrics(stub, trained_outcome):
    models = stub.ListModels(pb.ListModelsRequest(model_name="outcome"), timeout=5).models
    assert len(models) == len(trained_outcome.model_versions) >= 15
    for m in models:
        assert m.status == "serving" and m.sample_count >= 300 and m.train_start < m.train_end
        assert {"logloss", "brier", "logloss_market_avg", "n_events"} <= set(m.metrics)
    metrics = stub.GetModelMetrics(pb.ModelMetricsRequest(model_name="outcome"), timeout=5).model
    assert metrics.version == max(models, key=lambda m: m.train_end).version
    health = stub.HealthCheck(pb.HealthCheckRequest(), timeout=5)
    assert health.serving_models["outcome"] == metrics.version


def test_prediction_uses_the_newest_version_trained_before_the_event(stub, trained_outcome):
    answer = stub.BatchPredict(pb.BatchPredictRequest(requests=[_req(selection=s) for s in ("home", "draw", "away")]),
                               timeout=5).predictions
    assert abs(sum(p.probability for p in answer) - 1.0) < 1e-9
    assert answer[0].probability > 0.6  # Liverpool at home to a promoted side
    assert all(0.0 <= p.confidence <= 1.0 and p.recommendation in ("back", "none") for p in answer)
    version = stub.GetModelMetrics(pb.ModelMetricsRequest(model_name="outcome", version=answer[0].model_version),
                                   timeout=5).model
    assert version.train_end[:10] < "2019-08-09"
    later = [m for m in stub.ListModels(pb.ListModelsRequest(model_name="outcome"), timeout=5).models
             if version.train_end < m.train_end < "2019-08-09"]
    assert later == []  # it is the newest one old enough
    single = stub.GetPrediction(_req(selection="away"), timeout=5).prediction
    assert single.probability == pytest.approx(answer[2].probability) and single.features_hash == answer[2].features_hash


def test_recommendations_follow_a_backtested_strategys_rule(stub, trained_outcome):
    from tests.integration.ml.factories import finished

    anything = {"selections": ["away"], "min_edge": -1.0, "price_source": "MAX"}  # every away price qualifies
    nothing = {"selections": ["away"], "min_edge": 5.0, "price_source": "MAX"}
    stub.SubmitBacktestFeedback(pb.BacktestFeedbackRequest(results=[
        finished("bt-any", params=anything, strategy_id="s-any"),
        finished("bt-none", params=nothing, strategy_id="s-none")]), timeout=5)

    def advice(strategy_id):
        got = stub.BatchPredict(pb.BatchPredictRequest(requests=[
            _req(selection=s, strategy_id=strategy_id) for s in ("home", "away")]), timeout=5).predictions
        return [p.recommendation for p in got]

    assert advice("s-any") == ["none", "back"]
    assert advice("s-none") == ["none", "none"]
    assert set(advice("s-unknown")) <= {"back", "none"}  # the default rule


def test_a_named_version_from_after_the_event_is_refused(stub, trained_outcome):
    newest = stub.GetModelMetrics(pb.ModelMetricsRequest(model_name="outcome"), timeout=5).model
    with pytest.raises(grpc.RpcError) as err:
        stub.GetPrediction(_req(model_version=newest.version), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "future" in err.value.details()


@pytest.mark.parametrize("request_, code, text", [
    (_req(selection="winner"), grpc.StatusCode.INVALID_ARGUMENT, "selection"),
    (_req(event_id=""), grpc.StatusCode.INVALID_ARGUMENT, "event_id"),
    (_req(event_id="E0-2099-01-01-Nobody-Nowhere"), grpc.StatusCode.NOT_FOUND, "unknown event"),
    (_req(model_version="outcome-no-such"), grpc.StatusCode.NOT_FOUND, "no model version"),
])
def test_bad_prediction_requests(stub, trained_outcome, request_, code, text):
    with pytest.raises(grpc.RpcError) as err:
        stub.GetPrediction(request_, timeout=5)
    assert err.value.code() == code and text in err.value.details()
    assert stub.HealthCheck(pb.HealthCheckRequest(), timeout=5).status == "SERVING"


def test_prediction_before_any_training_is_failed_precondition(stub):
    with pytest.raises(grpc.RpcError) as err:
        stub.GetPrediction(_req(), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "training" in err.value.details()


def test_retraining_on_unchanged_data_records_nothing(stub, trained_outcome):
    again = wait_job(stub, stub.TrainModels(pb.TrainModelsRequest(model_name="outcome"), timeout=5).job_id)
    assert again.status == "succeeded" and list(again.model_versions) == [] and "nothing new" in again.reason


def test_a_failing_training_job_leaves_the_serving_version_and_reports_why(ml_server, stub, trained_outcome):
    server, _ = ml_server
    before = stub.HealthCheck(pb.HealthCheckRequest(), timeout=5).serving_models

    def broken(job_id, force):
        raise RuntimeError("feature matrix has NaN in column 3")

    server.servicer.training.trainers["outcome"] = broken
    status = wait_job(stub, stub.TrainModels(pb.TrainModelsRequest(model_name="outcome", force=True), timeout=5).job_id)
    assert status.status == "failed" and "NaN in column 3" in status.reason and status.finished_at
    assert stub.HealthCheck(pb.HealthCheckRequest(), timeout=5).serving_models == before
    assert stub.GetPrediction(_req(), timeout=5).prediction.model_version


def _flip_middle(artifact: bytes) -> bytes:
    middle = len(artifact) // 2
    return artifact[:middle] + bytes(b ^ 0xFF for b in artifact[middle:middle + 16]) + artifact[middle + 16:]


@pytest.mark.parametrize("damage", [lambda a: a[:len(a) // 2], _flip_middle], ids=["truncated", "corrupted"])
def test_an_unreadable_outcome_artifact_is_a_clear_error_naming_its_version(stub, trained_outcome, ml_settings,
                                                                            damage):
    """As the strategy model's (test_strategies): a damaged stored artifact fails the next
    training and, in a replica that loads it, the predictions, naming the version to roll back
    from, not numpy's EOFError or zipfile's BadZipFile (INTERNAL, the message hidden)."""
    damaged = trained_outcome.model_versions[len(trained_outcome.model_versions) // 2]
    damage_artifact(ml_settings, damaged, damage)
    job = wait_job(stub, stub.TrainModels(pb.TrainModelsRequest(model_name="outcome", force=True), timeout=5).job_id)
    assert job.status == "failed"
    assert job.reason.startswith(f"outcome: ModelArtifactUnreadable: outcome model {damaged}: artifact of ")

    error = replica_error(ml_settings, lambda replica: replica.GetPrediction(_req(), timeout=30))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details().startswith(f"outcome model {damaged}: artifact of ")
    assert dict(error.trailing_metadata()).get("edgeloop-reason") == "PERMANENT"


def test_unknown_job_and_model_names(stub):
    with pytest.raises(grpc.RpcError) as err:
        stub.GetTrainingStatus(pb.TrainingStatusRequest(job_id="nope"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        stub.TrainModels(pb.TrainModelsRequest(model_name="weather"), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "unknown model_name" in err.value.details()
