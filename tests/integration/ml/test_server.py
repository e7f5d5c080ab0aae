"""The ML service's first part: health, standard health, reflection, durable idempotent feedback."""

from __future__ import annotations

import json
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sqlalchemy import func, select

from edgeloop.core.errors import DatabaseNotMigrated
from edgeloop.core.settings import settings_with
from edgeloop.mlservice.http_api import HttpApi
from edgeloop.mlservice.server import create_server
from edgeloop.proto import ml_service_pb2 as pb
from edgeloop.schema.db import make_engine
from edgeloop.schema.mlstore import FeedbackSample
from tests.integration.ml.factories import finished

pytestmark = pytest.mark.integration


def _sample_count(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(FeedbackSample)).scalar_one()
    engine.dispose()
    return n


def test_health_check_reports_real_state(stub):
    first = stub.HealthCheck(pb.HealthCheckRequest(), timeout=5)
    assert first.status == "SERVING" and first.feedback_samples == 0 and first.uptime_s >= 0
    stub.SubmitBacktestFeedback(pb.BacktestFeedbackRequest(results=[finished("bt-1")]), timeout=5)
    assert stub.HealthCheck(pb.HealthCheckRequest(), timeout=5).feedback_samples == 1


def test_standard_health_and_reflection(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "edgeloop.ml.v1.MLService"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = list(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
    names = {s.name for s in responses[0].list_services_response.service}
    assert {"edgeloop.ml.v1.MLService", "grpc.health.v1.Health"} <= names


def test_feedback_is_stored_once_per_backtest_id(stub, pg_url):
    # Given a batch with a repeated id
    batch = [finished("bt-1"), finished("bt-2"), finished("bt-1")]
    # When it is submitted, and then submitted again with one new result
    first = stub.SubmitBacktestFeedback(pb.BacktestFeedbackRequest(results=batch, batch_id="b1"), timeout=5)
    second = stub.SubmitBacktestFeedback(
        pb.BacktestFeedbackRequest(results=[finished("bt-2"), finished("bt-3")], batch_id="b2"), timeout=5)
    # Then each id is stored exactly once and every id is reported safe to mark submitted
    assert (first.accepted, first.duplicates) == (2, 0)
    assert sorted(first.stored_backtest_ids) == ["bt-1", "bt-2"]
    assert (second.accepted, second.duplicates) == (1, 1)
    assert sorted(second.stored_backtest_ids) == ["bt-2", "bt-3"]
    assert _sample_count(pg_url) == 3


def test_invalid_feedback_is_rejected_whole_and_service_keeps_serving(stub, pg_url):
    bad = finished("bt-bad")
    bad.metrics.win_rate = 1.5
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitBacktestFeedback(pb.BacktestFeedbackRequest(results=[finished("bt-ok"), bad]), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "bt-bad" in err.value.details() and "win_rate" in err.value.details()
    assert _sample_count(pg_url) == 0
    assert stub.HealthCheck(pb.HealthCheckRequest(), timeout=5).status == "SERVING"


def test_oversized_feedback_batch_is_invalid_argument(pg_url):
    server, port = create_server("127.0.0.1:0", settings_with(database_url=pg_url, ml_max_batch_items=2))
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            from edgeloop.proto import ml_service_pb2_grpc as pb_grpc

            stub = pb_grpc.MLServiceStub(ch)
            with pytest.raises(grpc.RpcError) as err:
                stub.SubmitBacktestFeedback(
                    pb.BacktestFeedbackRequest(results=[finished(f"bt-{i}") for i in range(3)]), timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit is 2" in err.value.details()
    finally:
        server.stop(0).wait()


def test_refuses_to_start_on_unmigrated_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(DatabaseNotMigrated, match="edgeloop db upgrade"):
        create_server("127.0.0.1:0", settings_with(database_url=url))


def test_http_health_and_metrics(ml_server, stub):
    server, _ = ml_server
    stub.SubmitBacktestFeedback(pb.BacktestFeedbackRequest(results=[finished("bt-m")]), timeout=5)
    http = HttpApi(server.servicer, "127.0.0.1", 0).start()
    try:
        base = f"http://127.0.0.1:{http.port}"
        with urllib.request.urlopen(f"{base}/health", timeout=5) as r:
            assert r.status == 200 and json.loads(r.read())["details"]["status"] == "SERVING"
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert 'edgeloop_ml_rpc_total{code="OK",method="SubmitBacktestFeedback"}' in text
        assert "edgeloop_ml_feedback_accepted_total" in text
    finally:
        http.stop()


def test_an_unexpected_error_is_internal_without_internals_and_the_service_goes_on(ml_server, stub, caplog):
    server, _ = ml_server

    def broken(requests):
        raise KeyError("secret-internal-detail")

    server.servicer.predictor.predict = broken
    with pytest.raises(grpc.RpcError) as err:
        stub.GetPrediction(pb.PredictionRequest(event_id="E0-x", selection="home"), timeout=5)
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "KeyError" in err.value.details() and "secret-internal-detail" not in err.value.details()
    assert "secret-internal-detail" in caplog.text  # the log has the traceback
    assert stub.HealthCheck(pb.HealthCheckRequest(), timeout=5).status == "SERVING"


def test_a_port_in_use_fails_cleanly(ml_server, ml_settings):
    import threading

    _, port = ml_server
    threads = threading.active_count()
    with pytest.raises(RuntimeError):
        create_server(f"127.0.0.1:{port}", ml_settings)
    assert threading.active_count() <= threads  # no training thread left behind
