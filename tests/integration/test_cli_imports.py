"""The read-only commands load neither Celery nor gRPC (real PostgreSQL and Redis): an operator's
`edgeloop strategies list` does not pay for the worker's machinery or the ML client.

What a command loaded is read from ``python -X importtime``, as an operator would check it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgeloop.processes import free_port
from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.schema.repository import ensure_strategies
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration

READ_ONLY = [
    ["--help"],
    ["strategies", "list"],
    ["strategies", "show", "s-1"],
    ["db", "status"],
    ["dead-letters", "list"],
    ["config", "show"],
    ["strategies", "activate", "s-1", "--dry-run"],
]


def loaded(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """The command's outcome and the top-level names of every module it imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "edgeloop", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    names = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc, {name.split(".")[0] for name in names}


@pytest.fixture
def cli_env(env):
    """A store holding one strategy; an ML service address nobody listens on."""
    engine = make_engine(env["EDGELOOP_DATABASE_URL"])
    with make_sessionmaker(engine).begin() as s:
        ensure_strategies(s, [{"strategy_id": "s-1", "name": "one", "params": {"min_edge": 0.05}}])
    engine.dispose()
    return {**env, "EDGELOOP_ML_GRPC_TARGET": f"127.0.0.1:{free_port()}", "EDGELOOP_ML_TIMEOUT_S": "2"}


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_load_neither_celery_nor_grpc(cli_env, args):
    proc, modules = loaded(cli_env, *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "edgeloop" in modules  # the import log was read
    assert {"celery", "kombu", "grpc"} & modules == set()


def test_feedback_status_loads_grpc_only_to_ask_the_ml_service(cli_env):
    # It reports the ML service's sample count (HealthCheck over gRPC): with the service away it
    # still prints what the store and Redis know, then fails for the service.
    proc, modules = loaded(cli_env, "feedback", "status")
    assert "pending feedback" in proc.stdout and proc.returncode == 3, proc.stderr[-2000:]
    assert "grpc" in modules and "celery" not in modules


def test_a_command_that_sends_tasks_loads_celery(cli_env):
    # The check above can fail: a command that needs Celery shows up as loading it.
    proc, modules = loaded(cli_env, "tasks", "list")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "celery" in modules
