"""The ML service protects itself (issue 16): per-client rate limits honoured by the client, and
identical training requests answered with the job already queued or running. A real service on
port 0 against the test database."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgeloop.core.error_codes import RETRY_AFTER_KEY
from edgeloop.core.errors import MLRateLimited
from edgeloop.core.settings import settings_with
from edgeloop.mlclient.client import MLClient
from edgeloop.mlservice.server import create_server
from edgeloop.proto import ml_service_pb2 as pb, ml_service_pb2_grpc as pb_grpc
from edgeloop.services.feedback import Verdict, verdict
from tests.integration.ml.conftest import wait_job
from tests.integration.mlclient.support import metric

pytestmark = pytest.mark.integration

RATE, BURST = 5.0, 3


@pytest.fixture
def limited_server(ml_settings):
    settings = settings_with(**{**ml_settings.model_dump(), "ml_rate_limit_per_s": RATE, "ml_rate_limit_burst": BURST})
    server, port = create_server("127.0.0.1:0", settings)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0.5).wait()


def test_a_client_over_its_rate_is_refused_with_a_retry_after_and_others_are_not(limited_server):
    with grpc.insecure_channel(limited_server) as channel:
        stub = pb_grpc.MLServiceStub(channel)
        noisy = (("edgeloop-client", "noisy:1"),)
        # Given a client that spent its burst
        for _ in range(BURST):
            stub.HealthCheck(pb.HealthCheckRequest(), timeout=5, metadata=noisy)
        # When it calls again at once
        with pytest.raises(grpc.RpcError) as refused:
            stub.HealthCheck(pb.HealthCheckRequest(), timeout=5, metadata=noisy)
        # Then RESOURCE_EXHAUSTED, worded so that nobody takes it for "message too large",
        # with the time until its next token in the trailers
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "rate limit" in refused.value.details() and "larger than max" not in refused.value.details()
        retry_ms = int(dict(refused.value.trailing_metadata())[RETRY_AFTER_KEY])
        assert 0 < retry_ms <= 1000 / RATE + 1
        # and another client, and the standard health service, are not limited
        stub.HealthCheck(pb.HealthCheckRequest(), timeout=5, metadata=(("edgeloop-client", "quiet:2"),))
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(BURST + 2):
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        # and after the retry-after the noisy client may call again
        time.sleep(retry_ms / 1000)
        stub.HealthCheck(pb.HealthCheckRequest(), timeout=5, metadata=noisy)


def test_the_client_waits_the_retry_after_and_gets_every_answer(limited_server):
    client = MLClient(settings_with(ml_timeout_s=5), target=limited_server)
    try:
        limited = metric("edgeloop_ml_client_requests_total", rpc="HealthCheck", outcome="rate_limited")
        started = time.monotonic()
        answers = [client.health() for _ in range(BURST + 4)]
        elapsed = time.monotonic() - started
        assert all(a.status for a in answers)
        # 4 calls beyond the burst at 5/s: at least ~0.8 s of waiting, as the service asked
        assert elapsed >= 4 / RATE * 0.9
        assert metric("edgeloop_ml_client_requests_total", rpc="HealthCheck", outcome="rate_limited") - limited >= 4
        assert client.breaker.state == "closed"  # refusals prove the service is up
    finally:
        client.close()


def test_a_deadline_too_short_for_the_wait_raises_rate_limited_and_the_flusher_backs_off(limited_server):
    client = MLClient(settings_with(ml_timeout_s=0.1), target=limited_server)
    try:
        with pytest.raises(MLRateLimited) as raised:
            for _ in range(BURST + 1):
                client.health()
        assert raised.value.code == "RESOURCE_EXHAUSTED" and raised.value.retry_after_s > 0
        # The feedback flusher treats it as a reason to wait, not as a message over the size limit
        assert verdict(raised.value) is Verdict.BACK_OFF
    finally:
        client.close()


def test_identical_training_requests_while_one_is_queued_or_running_share_its_job(stub):
    # When eight callers ask for the same training at once
    ids: list[str] = []

    def ask():
        ids.append(stub.TrainModels(pb.TrainModelsRequest(model_name="outcome"), timeout=10).job_id)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then one job serves them all, and a request that differs (force) is a job of its own
    assert len(set(ids)) == 1, ids
    forced = stub.TrainModels(pb.TrainModelsRequest(model_name="outcome", force=True), timeout=10).job_id
    assert forced != ids[0]
    assert wait_job(stub, ids[0], 120).status == "succeeded"
    # Once it has finished, the same request queues a new job
    again = stub.TrainModels(pb.TrainModelsRequest(model_name="outcome"), timeout=10).job_id
    assert again not in (ids[0], forced)
    wait_job(stub, forced, 120)
    wait_job(stub, again, 120)
