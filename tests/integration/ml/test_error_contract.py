"""The error contract over a real gRPC call: the ML service ends a call with the status and reason
of the error it raised (edgeloop.core.error_codes), and the client raises that class again."""

from __future__ import annotations

import grpc
import pytest

from edgeloop.core.error_codes import REASON_KEY
from edgeloop.core.errors import InvalidRequest, ModelNotTrained, NotFound
from edgeloop.mlclient import MLClient
from edgeloop.mlclient.breaker import CLOSED
from edgeloop.proto import ml_service_pb2 as pb

pytestmark = pytest.mark.integration

EVENT = "E0-2019-08-09-Liverpool-Norwich"  # in the shipped seasons


@pytest.fixture
def client(ml_server, ml_settings):
    _, port = ml_server
    client = MLClient(ml_settings, target=f"127.0.0.1:{port}")
    yield client
    client.close()


def test_the_client_raises_the_class_the_service_raised(client):
    # A model version that does not exist
    with pytest.raises(NotFound, match="no model version 'outcome-no-such'") as missing:
        client.get_prediction(EVENT, "home", model_version="outcome-no-such")
    assert missing.value.code == "NOT_FOUND"
    # The strategy model before its first training
    with pytest.raises(ModelNotTrained, match="not trained yet") as untrained:
        client.evaluate_strategy("s-1", {"min_edge": 0.02})
    assert untrained.value.code == "FAILED_PRECONDITION"
    # No outcome model trained before the event (the service's own subclass arrives as the class
    # the table names)
    with pytest.raises(ModelNotTrained, match="no outcome model version was trained before"):
        client.get_prediction(EVENT, "home")
    # A malformed request
    with pytest.raises(InvalidRequest, match="selection 'winner'") as invalid:
        client.get_prediction(EVENT, "winner")
    assert invalid.value.code == "INVALID_ARGUMENT"
    with pytest.raises(InvalidRequest, match="unknown model_name"):
        client.train_models("weather")
    with pytest.raises(NotFound, match="no training job"):
        client.get_training_status("no-such-job")
    # And a refusal is an answer: the service is up, the breaker stays closed
    assert client.breaker.state == CLOSED


@pytest.mark.parametrize("call, code, reason", [
    (lambda stub: stub.GetPrediction(pb.PredictionRequest(event_id=EVENT, selection="home",
                                                          model_version="outcome-no-such"), timeout=10),
     grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
    (lambda stub: stub.GetPrediction(pb.PredictionRequest(event_id=EVENT, selection="home"), timeout=10),
     grpc.StatusCode.FAILED_PRECONDITION, "MODEL_NOT_TRAINED"),
    (lambda stub: stub.TrainModels(pb.TrainModelsRequest(model_name="weather"), timeout=5),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST"),
])
def test_the_reason_travels_in_the_trailing_metadata(stub, call, code, reason):
    with pytest.raises(grpc.RpcError) as err:
        call(stub)
    assert err.value.code() == code
    assert (REASON_KEY, reason) in tuple(err.value.trailing_metadata())
