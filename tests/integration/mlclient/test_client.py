"""The hardened ML client against real gRPC servers on port 0."""

from __future__ import annotations

import json
import subprocess
import time
from concurrent import futures

import grpc
import pytest

from edgeloop.core.errors import InvalidRequest, MLServiceError, MLServiceUnavailable
from edgeloop.core.settings import settings_with
from edgeloop.mlclient import MLClient, get_cached_ml_client, get_ml_client, reset_ml_client
from edgeloop.mlclient.breaker import CLOSED, OPEN
from edgeloop.mlclient.channel import service_config
from edgeloop.proto import ml_service_pb2 as pb, ml_service_pb2_grpc as pb_grpc
from edgeloop.processes import free_port
from tests.integration.mlclient.support import metric

pytestmark = pytest.mark.integration


def test_health_feedback_and_standard_health_on_the_real_service(ml_server, ml_settings):
    from tests.integration.ml.factories import finished

    client = MLClient(ml_settings, target=ml_server)
    assert client.health().status == "SERVING"
    assert client.is_serving() and client.is_serving("edgeloop.ml.v1.MLService")
    before = metric("edgeloop_ml_client_requests_total", rpc="SubmitBacktestFeedback", outcome="ok")
    reply = client.submit_backtest_feedback([finished("bt-1"), finished("bt-2")], batch_id="b1")
    again = client.submit_backtest_feedback([finished("bt-1")], batch_id="b2")
    assert (reply.accepted, again.duplicates) == (2, 1)
    assert metric("edgeloop_ml_client_requests_total", rpc="SubmitBacktestFeedback", outcome="ok") == before + 2
    assert metric("edgeloop_ml_rpc_duration_seconds_count", side="client", rpc="SubmitBacktestFeedback") >= 2
    client.close()


def test_service_config_declares_retries_for_unavailable_only():
    policy = json.loads(service_config())["methodConfig"][0]["retryPolicy"]
    assert policy["retryableStatusCodes"] == ["UNAVAILABLE"]


class Flaky(pb_grpc.MLServiceServicer):
    """A servicer that fails the first ``failures`` calls with ``code``, then answers."""

    def __init__(self, failures: int, code: grpc.StatusCode) -> None:
        self.failures, self.code, self.calls = failures, code, 0

    def HealthCheck(self, request, context):
        self.calls += 1
        if self.calls <= self.failures:
            context.abort(self.code, "not yet")
        return pb.HealthCheckResponse(status="SERVING")


def _serve(servicer, port: int = 0):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_MLServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, port


def test_unavailable_is_retried_by_grpc_and_other_errors_are_not():
    flaky = Flaky(2, grpc.StatusCode.UNAVAILABLE)
    server_a, port = _serve(flaky)
    try:
        assert MLClient(target=f"127.0.0.1:{port}").health().status == "SERVING"
        assert flaky.calls == 3  # two retries inside one call
    finally:
        server_a.stop(0)
    broken = Flaky(5, grpc.StatusCode.INVALID_ARGUMENT)
    server_b, port = _serve(broken)
    try:
        client = MLClient(target=f"127.0.0.1:{port}")
        # No reason in the trailing metadata: the status alone names the class
        with pytest.raises(InvalidRequest, match="INVALID_ARGUMENT"):
            client.health()
        assert broken.calls == 1
        assert client.breaker.state == CLOSED  # the service is up: it answered
    finally:
        server_b.stop(0)


def test_deadline_on_every_call():
    class Slow(pb_grpc.MLServiceServicer):
        def HealthCheck(self, request, context):
            time.sleep(1)
            return pb.HealthCheckResponse(status="SERVING")

    server, port = _serve(Slow())
    try:
        client = MLClient(settings_with(ml_timeout_s=0.2), target=f"127.0.0.1:{port}")
        started = time.perf_counter()
        with pytest.raises(MLServiceUnavailable, match="DEADLINE_EXCEEDED"):
            client.health()
        assert time.perf_counter() - started < 0.8
    finally:
        server.stop(0)


def test_breaker_fails_fast_while_down_and_a_probe_closes_it_when_back():
    # Given a client of a service that is not there
    port = free_port()
    settings = settings_with(ml_breaker_failures=2, ml_breaker_reset_s=0.3, ml_timeout_s=1)
    client = MLClient(settings, target=f"127.0.0.1:{port}")
    rejected = metric("edgeloop_ml_client_requests_total", rpc="HealthCheck", outcome="rejected")
    for _ in range(2):
        with pytest.raises(MLServiceUnavailable):
            client.health()
    # When it is called again, it fails at once without trying
    assert client.breaker.state == OPEN
    started = time.perf_counter()
    with pytest.raises(MLServiceUnavailable, match="circuit breaker open"):
        client.health()
    assert time.perf_counter() - started < 0.01
    assert metric("edgeloop_ml_client_requests_total", rpc="HealthCheck", outcome="rejected") == rejected + 1
    assert metric("edgeloop_ml_client_breaker_open") == 1
    # Then once the service is back and the reset period passed, the probe closes the circuit
    server, _ = _serve(Flaky(0, grpc.StatusCode.OK), port)
    try:
        time.sleep(0.35)
        assert client.health().status == "SERVING"
        assert client.breaker.state == CLOSED
        assert metric("edgeloop_ml_client_breaker_open") == 0
    finally:
        server.stop(0)


def test_bearer_token_is_sent_when_configured(pg_url):
    from edgeloop.mlservice.server import create_server

    server, port = create_server("127.0.0.1:0", settings_with(database_url=pg_url, ml_auth_token="s3cret"))
    server.start()
    try:
        target = f"127.0.0.1:{port}"
        assert MLClient(settings_with(ml_auth_token="s3cret"), target=target).health().status == "SERVING"
        anonymous = MLClient(settings_with(ml_auth_token=None), target=target)
        with pytest.raises(MLServiceError, match="UNAUTHENTICATED"):
            anonymous.health()
        assert anonymous.is_serving()  # the standard health service stays open
    finally:
        server.stop(0).wait()


def test_tls_with_the_servers_certificate(pg_url, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    from edgeloop.mlservice.server import create_server

    tls = settings_with(database_url=pg_url, ml_tls_cert_file=str(cert), ml_tls_key_file=str(key))
    server, port = create_server("127.0.0.1:0", tls)
    server.start()
    try:
        assert MLClient(tls, target=f"localhost:{port}").health().status == "SERVING"
        plaintext = MLClient(settings_with(), target=f"localhost:{port}")
        with pytest.raises(MLServiceUnavailable):
            plaintext.health()
    finally:
        server.stop(0).wait()


def test_reset_after_fork_gives_a_new_client_and_a_new_cached_client(monkeypatch, redis_url):
    monkeypatch.setenv("EDGELOOP_REDIS_URL", redis_url)
    first, cached = get_ml_client(), get_cached_ml_client()
    assert get_ml_client() is first and cached.client is first
    reset_ml_client()
    assert get_ml_client() is not first and get_cached_ml_client() is not cached
    reset_ml_client()
