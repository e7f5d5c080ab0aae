"""Real services for the lifecycle tests: PostgreSQL, Redis, an ML server on port 0 in this
process, Celery worker and beat processes."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from edgeloop.processes import Child
from edgeloop.core.settings import get_settings, settings_with
from tests.support.processes import ROOT, ml_server

DATA_DIR = str(ROOT / "data" / "football-data")


@pytest.fixture
def life_env(env, monkeypatch):
    """Settings for this process and the environment for worker/beat/CLI subprocesses."""
    values = {"EDGELOOP_DATA_DIR": DATA_DIR, "EDGELOOP_ML_MARKET_SOURCE": "csv", "EDGELOOP_ML_TIMEOUT_S": "10",
              "EDGELOOP_FEEDBACK_FLUSH_INTERVAL_S": "0.2", "EDGELOOP_INGEST_BLOCK_MS": "200",
              "PYTHONPATH": str(ROOT)}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    return {**env, **values}


@pytest.fixture
def ml(life_env, monkeypatch):
    """A real ML server; yields the env with its address."""
    with ml_server(settings_with()) as (server, port):
        monkeypatch.setenv("EDGELOOP_ML_GRPC_TARGET", f"127.0.0.1:{port}")
        get_settings.cache_clear()
        from edgeloop.mlclient import reset_ml_client

        reset_ml_client()
        yield {**life_env, "EDGELOOP_ML_GRPC_TARGET": f"127.0.0.1:{port}"}
        reset_ml_client()


class Beat(Child):
    """`celery -A edgeloop.workers beat` as a child process with its own schedule file."""

    def __init__(self, env: dict[str, str], name: str, log_dir: Path) -> None:
        super().__init__(name, [sys.executable, "-m", "celery", "-A", "edgeloop.workers", "beat", "--loglevel", "INFO",
                                "-s", str(log_dir / f"{name}-schedule")], env, log_dir, ROOT)


@contextmanager
def celery_beat(env: dict[str, str], name: str, log_dir: Path) -> Iterator[Beat]:
    beat = Beat(env, name, log_dir)
    try:
        yield beat
    finally:
        beat.stop()
