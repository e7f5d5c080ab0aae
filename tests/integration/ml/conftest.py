"""A real ML service on port 0 against the test PostgreSQL database."""

from __future__ import annotations

import grpc
import pytest

from edgeloop.settings import settings_with
from mlservice.server import create_server
from proto import ml_service_pb2_grpc as pb_grpc


@pytest.fixture
def ml_settings(pg_url):
    return settings_with(database_url=pg_url)


@pytest.fixture
def ml_server(ml_settings):
    server, port = create_server("127.0.0.1:0", ml_settings)
    server.start()
    yield server, port
    server.stop(1).wait()


@pytest.fixture
def channel(ml_server):
    _, port = ml_server
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch


@pytest.fixture
def stub(channel):
    return pb_grpc.MLServiceStub(channel)
