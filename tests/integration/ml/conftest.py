"""A real ML service on port 0 against the test PostgreSQL database."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Callable

import grpc
import pytest
from sqlalchemy import select, update

from edgeloop.core.settings import settings_with
from edgeloop.core.statuses import TRAINING_FINISHED
from edgeloop.mlservice.server import create_server
from edgeloop.proto import ml_service_pb2 as pb, ml_service_pb2_grpc as pb_grpc
from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.schema.mlstore import ModelVersion
from tests.support.processes import wait_until


DATA_DIR = str(Path(__file__).resolve().parents[3] / "data" / "football-data")


@pytest.fixture
def ml_settings(pg_url, redis_url):
    return settings_with(database_url=pg_url, redis_url=redis_url, data_dir=DATA_DIR, ml_market_source="csv")


def wait_job(stub, job_id: str, timeout_s: float = 60.0):
    """Poll GetTrainingStatus until the job finished; its last status."""
    def finished():
        status = stub.GetTrainingStatus(pb.TrainingStatusRequest(job_id=job_id), timeout=5)
        return status if status.status in TRAINING_FINISHED else None

    return wait_until(finished, timeout_s, 0.1, f"training job {job_id}")


def damage_artifact(settings, version: str, damage: Callable[[bytes], bytes]) -> None:
    """Overwrite a stored model version's artifact with ``damage(artifact)``, as a bad copy would."""
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as s:
            where = ModelVersion.version == version
            artifact = s.scalars(select(ModelVersion.artifact).where(where)).one()
            s.execute(update(ModelVersion).where(where).values(artifact=damage(artifact)))
    finally:
        engine.dispose()


def replica_error(settings, call: Callable[[Any], Any]) -> grpc.RpcError:
    """What ``call(stub)`` raises in a replica started now, which loads what is stored."""
    server, port = create_server("127.0.0.1:0", settings)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch, pytest.raises(grpc.RpcError) as err:
            call(pb_grpc.MLServiceStub(ch))
    finally:
        server.stop(0).wait()
    return err.value


@pytest.fixture
def trained_outcome(stub):
    """The outcome model trained walk-forward on the shipped seasons; returns the job status."""
    job = stub.TrainModels(pb.TrainModelsRequest(model_name="outcome"), timeout=5)
    status = wait_job(stub, job.job_id)
    assert status.status == "succeeded", status.reason
    return status


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


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for localhost and 127.0.0.1; yields (cert, key) paths."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return cert, key
