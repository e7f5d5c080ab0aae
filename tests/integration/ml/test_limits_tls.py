"""Bounded requests, TLS, and SQLite as the service's database."""

from __future__ import annotations

import json
import ssl
import urllib.request

import grpc
import pytest

from edgeloop.core.settings import settings_with
from edgeloop.mlservice.http_api import HttpApi
from edgeloop.mlservice.server import create_server
from edgeloop.proto import ml_service_pb2 as pb, ml_service_pb2_grpc as pb_grpc
from tests.integration.ml.conftest import DATA_DIR, wait_job
from tests.integration.ml.factories import finished

pytestmark = pytest.mark.integration


def _serve(settings):
    server, port = create_server("127.0.0.1:0", settings)
    server.start()
    return server, port


def test_batch_and_message_size_limits(ml_settings):
    settings = settings_with(**{**ml_settings.model_dump(), "ml_max_batch_items": 5, "ml_max_message_bytes": 64 * 1024})
    server, port = _serve(settings)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pb_grpc.MLServiceStub(ch)
            many = [pb.PredictionRequest(event_id="E0-2019-08-09-Liverpool-Norwich", selection="home")] * 6
            with pytest.raises(grpc.RpcError) as err:
                stub.BatchPredict(pb.BatchPredictRequest(requests=many), timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit is 5" in err.value.details()
            huge = pb.PredictionRequest(event_id="x" * (100 * 1024), selection="home")
            with pytest.raises(grpc.RpcError) as err:
                stub.GetPrediction(huge, timeout=5)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert stub.HealthCheck(pb.HealthCheckRequest(), timeout=5).status == "SERVING"
    finally:
        server.stop(0).wait()


def test_tls_on_grpc_and_http(ml_settings, certificate):
    cert, key = certificate
    settings = settings_with(**{**ml_settings.model_dump(), "ml_tls_cert_file": str(cert), "ml_tls_key_file": str(key)})
    server, port = _serve(settings)
    api = HttpApi(server.servicer, "127.0.0.1", 0).start()
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(f"localhost:{port}", credentials) as ch:
            assert pb_grpc.MLServiceStub(ch).HealthCheck(pb.HealthCheckRequest(), timeout=5).status == "SERVING"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:  # plaintext is not served
            with pytest.raises(grpc.RpcError) as err:
                pb_grpc.MLServiceStub(ch).HealthCheck(pb.HealthCheckRequest(), timeout=2)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"https://localhost:{api.port}/health", context=context, timeout=5) as r:
            health = json.loads(r.read())
        assert health["status"] == "up" and health["details"]["status"] == "SERVING"  # no token: details for all
    finally:
        api.stop()
        server.stop(0).wait()


def test_the_service_on_sqlite(sqlite_url, redis_url):
    settings = settings_with(database_url=sqlite_url, redis_url=redis_url, data_dir=DATA_DIR, ml_market_source="csv")
    server, port = _serve(settings)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pb_grpc.MLServiceStub(ch)
            batch = pb.BacktestFeedbackRequest(results=[finished(f"bt-{i}") for i in range(600)] + [finished("bt-1")])
            first = stub.SubmitBacktestFeedback(batch, timeout=30)
            assert (first.accepted, first.duplicates) == (600, 0)  # a repeat inside one batch is one result
            assert stub.SubmitBacktestFeedback(batch, timeout=30).accepted == 0
            job = wait_job(stub, stub.TrainModels(pb.TrainModelsRequest(model_name="outcome"), timeout=5).job_id)
            assert job.status == "succeeded", job.reason
            p = stub.GetPrediction(pb.PredictionRequest(event_id="E0-2019-08-09-Liverpool-Norwich", selection="draw"),
                                   timeout=5).prediction
            assert 0 < p.probability < 1 and p.model_version in job.model_versions
    finally:
        server.stop(0).wait()
