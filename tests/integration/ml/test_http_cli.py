"""The HTTP JSON API, bearer-token and the `edgeloop ml` commands against a real server and database."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import pytest
from click.testing import CliRunner
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgeloop.cli import cli
from edgeloop.core.settings import get_settings, settings_with
from edgeloop.core.statuses import TRAINING_FINISHED
from edgeloop.mlservice.http_api import HttpApi
from edgeloop.mlservice.server import create_server
from edgeloop.proto import ml_service_pb2 as pb, ml_service_pb2_grpc as pb_grpc
from tests.integration.ml.conftest import wait_job
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration


def _http(method: str, url: str, body: bytes | None = None, token: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _text(url: str, token: str | None = None) -> str:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


@pytest.fixture
def http_base(ml_server):
    server, _ = ml_server
    api = HttpApi(server.servicer, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{api.port}"
    api.stop()


def test_training_over_http(http_base):
    status, job = _http("POST", f"{http_base}/api/v1/models/train", json.dumps({"model_name": "outcome"}).encode())
    assert status == 200 and job["status"] == "queued" and job["job_id"]
    def finished():
        answer = _http("GET", f"{http_base}/api/v1/models/training/{job['job_id']}")
        return answer if answer[1]["status"] in TRAINING_FINISHED else None

    status, state = wait_until(finished, 60, 0.2, "training over HTTP")
    assert status == 200 and state["status"] == "succeeded" and len(state["model_versions"]) >= 15
    status, metrics = _http("GET", f"{http_base}/api/v1/models/outcome/metrics")
    assert status == 200 and metrics["model"]["status"] == "serving"
    assert metrics["model"]["metrics"]["logloss"] > 0 and metrics["model"]["train_end"]
    status, listing = _http("GET", f"{http_base}/api/v1/models?model_name=outcome")
    assert status == 200 and len(listing["models"]) == len(state["model_versions"])


@pytest.mark.parametrize("method, path, body, code, text", [
    ("POST", "/api/v1/models/train", b"{not json", 400, "not JSON"),
    ("POST", "/api/v1/models/train", b'{"model_name": "weather"}', 400, "unknown model_name"),
    ("POST", "/api/v1/models/train", b'{"force": "maybe"}', 400, "bad training request"),
    ("POST", "/api/v1/models/train", b"[1, 2]", 400, "JSON object"),
    ("GET", "/api/v1/models/training/no-such-job", None, 404, "no training job"),
    ("GET", "/api/v1/models/strategy/metrics", None, 404, "no serving version"),
    ("GET", "/api/v1/models/weather/metrics", None, 400, "unknown model_name"),
    ("GET", "/api/v1/nothing", None, 404, "no route"),
    ("GET", "/api/v1/models/train", None, 405, "accepts POST"),
])
def test_bad_http_requests(http_base, method, path, body, code, text):
    status, answer = _http(method, http_base + path, body)
    assert status == code and text in answer["error"]
    assert _http("GET", f"{http_base}/health")[0] == 200  # still serving


def test_oversized_http_body_is_400(http_base):
    status, answer = _http("POST", f"{http_base}/api/v1/models/train", b" " * (70 * 1024))
    assert status == 400 and "exceeds" in answer["error"]


def test_bad_content_length_is_400(http_base):
    import http.client

    host, port = http_base.removeprefix("http://").split(":")
    for value in ("-5", "lots"):
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.putrequest("POST", "/api/v1/models/train")
        conn.putheader("Content-Length", value)
        conn.endheaders()
        answer = conn.getresponse()
        assert answer.status == 400 and b"Content-Length" in answer.read()
        conn.close()


def test_bearer_token_on_grpc_and_http(ml_settings):
    settings = settings_with(**{**ml_settings.model_dump(), "ml_auth_token": "s3cret"})
    server, port = create_server("127.0.0.1:0", settings)
    server.start()
    api = HttpApi(server.servicer, "127.0.0.1", 0).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pb_grpc.MLServiceStub(ch)
            with pytest.raises(grpc.RpcError) as err:
                stub.HealthCheck(pb.HealthCheckRequest(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as err:
                stub.HealthCheck(pb.HealthCheckRequest(), timeout=5, metadata=[("authorization", "Bearer wrong")])
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            ok = stub.HealthCheck(pb.HealthCheckRequest(), timeout=5, metadata=[("authorization", "Bearer s3cret")])
            assert ok.status == "SERVING"
            probe = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert probe.status == health_pb2.HealthCheckResponse.SERVING  # probes need no secret
        base = f"http://127.0.0.1:{api.port}"
        assert _http("GET", f"{base}/api/v1/models")[0] == 401
        assert _http("GET", f"{base}/api/v1/models", token="s3cret")[0] == 200
        # /health: up or down for anyone, nothing more; the details with the token
        assert _http("GET", f"{base}/health") == (200, {"status": "up"})
        assert _http("GET", f"{base}/health", token="wrong") == (200, {"status": "up"})
        status, health = _http("GET", f"{base}/health", token="s3cret")
        assert status == 200 and health["status"] == "up" and health["details"]["status"] == "SERVING"
        # /metrics needs the token too
        assert _http("GET", f"{base}/metrics")[0] == 401
        assert _text(f"{base}/metrics", token="s3cret").startswith("# HELP")
    finally:
        api.stop()
        server.stop(0).wait()


def test_metrics_left_public_by_the_operator(ml_settings):
    settings = settings_with(**{**ml_settings.model_dump(), "ml_auth_token": "s3cret", "ml_metrics_public": True})
    server, _ = create_server("127.0.0.1:0", settings)
    server.start()
    api = HttpApi(server.servicer, "127.0.0.1", 0).start()
    try:
        base = f"http://127.0.0.1:{api.port}"
        assert "edgeloop_ml_rpc_total" in _text(f"{base}/metrics")
        assert _http("GET", f"{base}/api/v1/models")[0] == 401  # the rest still needs the token
    finally:
        api.stop()
        server.stop(0).wait()


def test_cli_models_rollback_and_train(env, ml_server, stub, monkeypatch):
    _, port = ml_server
    monkeypatch.setenv("EDGELOOP_ML_GRPC_TARGET", f"127.0.0.1:{port}")
    get_settings.cache_clear()
    runner = CliRunner()

    trained = runner.invoke(cli, ["ml", "train", "--model", "outcome", "--wait"])
    assert trained.exit_code == 0, trained.output
    assert "succeeded" in trained.output

    listing = runner.invoke(cli, ["ml", "models", "--model", "outcome"])
    assert listing.exit_code == 0 and "serving" in listing.output and "logloss=" in listing.output

    # Given a second version of the 2019-20 season (forced retrain on the same data)
    event = pb.PredictionRequest(event_id="E0-2019-12-26-Leicester-Liverpool", selection="home")
    first = stub.GetPrediction(event, timeout=5).prediction.model_version
    forced = wait_job(stub, stub.TrainModels(pb.TrainModelsRequest(model_name="outcome", force=True), timeout=5).job_id)
    assert forced.status == "succeeded"
    second = stub.GetPrediction(event, timeout=5).prediction.model_version
    assert second != first and second in forced.model_versions
    # When the first one is rolled back to
    rolled = runner.invoke(cli, ["ml", "rollback", first])
    assert rolled.exit_code == 0, rolled.output
    # Then predictions come from it again (the service polls the registry)
    wait_until(lambda: stub.GetPrediction(event, timeout=5).prediction.model_version == first, 10, 0.2,
               "the rollback to be picked up")
    everything = runner.invoke(cli, ["ml", "models", "--all"])
    assert "retired" in everything.output

    missing = runner.invoke(cli, ["ml", "rollback", "outcome-no-such-version"])
    assert missing.exit_code != 0 and "no model version" in str(missing.exception)  # main() prints it
