"""Training jobs survive the replica that accepted them: the jobs table is the queue, a running
job holds a lease, and a lapsed lease lets another replica finish the job (real PostgreSQL, a
real `edgeloop ml serve` process killed with SIGKILL, a real gRPC server on port 0)."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from datetime import timedelta

import grpc
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from edgeloop.cli import cli
from edgeloop.processes import Child
from edgeloop.core.settings import settings_with
from edgeloop.mlservice.context import ServiceContext
from edgeloop.mlservice.training import TrainingJobs
from edgeloop.proto import ml_service_pb2 as pb, ml_service_pb2_grpc as pb_grpc
from edgeloop.schema.base import utcnow
from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.schema.mlstore import TrainingJob
from tests.integration.ml.conftest import DATA_DIR, wait_job
from tests.support.processes import ml_server, wait_until

pytestmark = pytest.mark.integration

LEASE = {"EDGELOOP_ML_TRAINING_LEASE_S": "1.5"}


def job_row(sessions, job_id: str) -> TrainingJob:
    with sessions() as s:
        return s.get(TrainingJob, job_id)


def test_a_job_whose_replica_was_killed_is_finished_by_another(env, pg_url, tmp_path):
    sessions = make_sessionmaker(make_engine(pg_url))
    child_env = {**env, **LEASE, "EDGELOOP_DATA_DIR": DATA_DIR, "EDGELOOP_ML_MARKET_SOURCE": "csv"}
    a = Child("ml-a", [sys.executable, "-m", "edgeloop", "ml", "serve", "--grpc-port", "0", "--http-port", "0"],
              child_env, tmp_path)
    try:
        wait_until(lambda: "gRPC on" in a.log(), 60, 0.1, "replica A serving")
        port = int(re.search(r"gRPC on [\w.]+:(\d+)", a.log()).group(1))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            job_id = pb_grpc.MLServiceStub(ch).TrainModels(pb.TrainModelsRequest(model_name="outcome"), timeout=5).job_id
        # Given replica A accepted the job and started it
        wait_until(lambda: job_row(sessions, job_id).status == "running", 30, 0.02, "A running the job")
        owner_a = job_row(sessions, job_id).owner
    finally:
        # When A dies mid-training (SIGKILL: no chance to clean up)
        a.kill()
        a.stop()
    assert job_row(sessions, job_id).status == "running"

    # Then replica B, sharing the database, takes the job over once A's lease lapsed and finishes it
    settings = settings_with(database_url=pg_url, data_dir=DATA_DIR, ml_market_source="csv", ml_training_lease_s=1.5)
    with ml_server(settings) as (_, port), grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        status = wait_job(pb_grpc.MLServiceStub(ch), job_id, timeout_s=120)
    assert status.status == "succeeded", status.reason
    assert status.model_versions
    row = job_row(sessions, job_id)
    assert row.attempts == 2 and row.owner != owner_a


@pytest.fixture
def ctx(pg_url):
    # Deduplication off: these tests queue identical jobs on purpose (test_protection.py tests it on).
    context = ServiceContext.open(settings_with(database_url=pg_url, ml_training_lease_s=0.6, ml_training_max_attempts=3,
                                                ml_training_dedup=False))
    yield context
    context.close()


def test_two_replicas_run_each_job_exactly_once(ctx):
    runs: list[str] = []
    lock = threading.Lock()

    def trainer(job_id: str, force: bool) -> list[str]:
        with lock:
            runs.append(job_id)
        time.sleep(0.05)
        return [f"v-{job_id[:6]}"]

    # Given two replicas sharing one database
    replicas = [TrainingJobs(ctx, {"outcome": trainer}) for _ in range(2)]
    try:
        # When jobs are submitted to both
        ids = [replicas[i % 2].submit("outcome", force=False).job_id for i in range(12)]
        wait_until(lambda: all(job_row(ctx.sessions, j).status == "succeeded" for j in ids), 30, 0.05, "all jobs done")
    finally:
        for r in replicas:
            r.close()
    # Then each ran once, and both replicas took part
    assert sorted(runs) == sorted(ids)
    with ctx.sessions() as s:
        owners = set(s.scalars(select(TrainingJob.owner).where(TrainingJob.job_id.in_(ids))))
        attempts = set(s.scalars(select(TrainingJob.attempts).where(TrainingJob.job_id.in_(ids))))
    assert owners == {r.replica for r in replicas} and attempts == {1}


def test_a_job_that_never_finishes_is_failed_after_max_attempts(ctx):
    # Given a job three replicas in turn started and died running (its lease long lapsed)
    with ctx.sessions.begin() as s:
        s.add(TrainingJob(job_id="doomed", model_name="outcome", force=0, status="running", reason="",
                          model_versions=[], created_at=utcnow(), owner="gone:1:x", attempts=3,
                          heartbeat_at=utcnow() - timedelta(minutes=5)))
    called: list[str] = []
    # When a replica starts
    replica = TrainingJobs(ctx, {"outcome": lambda job_id, force: called.append(job_id) or []})
    try:
        wait_until(lambda: job_row(ctx.sessions, "doomed").status == "failed", 10, 0.05, "the job failed")
    finally:
        replica.close()
    # Then it fails the job with the reason instead of running it a fourth time
    assert called == []
    assert "started 3 times without finishing" in job_row(ctx.sessions, "doomed").reason


def test_a_live_lease_is_not_taken_over(ctx):
    # Given a job another live replica is running (fresh heartbeat)
    with ctx.sessions.begin() as s:
        s.add(TrainingJob(job_id="busy", model_name="outcome", force=0, status="running", reason="",
                          model_versions=[], created_at=utcnow(), owner="alive:1:x", attempts=1,
                          heartbeat_at=utcnow()))
    replica = TrainingJobs(ctx, {"outcome": lambda job_id, force: []})
    try:
        # Then within the lease nobody claims it
        assert replica.claim() is None
        assert job_row(ctx.sessions, "busy").owner == "alive:1:x"
    finally:
        replica.close()


def test_the_operator_sees_jobs_with_their_replica_and_lease(env, ctx):
    with ctx.sessions.begin() as s:
        s.add(TrainingJob(job_id="j-running", model_name="strategy", force=0, status="running", reason="",
                          model_versions=[], created_at=utcnow(), owner="host:42:abc", attempts=2,
                          heartbeat_at=utcnow() - timedelta(seconds=30)))
        s.add(TrainingJob(job_id="j-failed", model_name="", force=0, status="failed", reason="outcome: boom",
                          model_versions=[], created_at=utcnow() - timedelta(hours=1), owner="host:41:def", attempts=1))
    table = CliRunner().invoke(cli, ["ml", "jobs"])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[1].split()[:4] == ["j-running", "strategy", "running", "2"] and "host:42:abc" in lines[1]
    assert lines[2].split()[:4] == ["j-failed", "all", "failed", "1"] and "outcome: boom" in lines[2]
    as_json = CliRunner().invoke(cli, ["ml", "jobs", "--json", "--limit", "1"])
    jobs = json.loads(as_json.output)["jobs"]
    assert [j["job_id"] for j in jobs] == ["j-running"] and 29 <= jobs[0]["heartbeat_age_s"] < 60
    bad = CliRunner().invoke(cli, ["ml", "jobs", "--limit", "0"])
    assert bad.exit_code == 2
