"""The event pipeline as the integration tests drive it: a producer process, the store's
counts, worker environments pointed at an ML server, and a worker's Prometheus endpoint."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import func, select

from edgeloop.processes import ROOT
from edgeloop.core.settings import get_settings
from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.schema.mlstore import FeedbackSample
from edgeloop.schema.pipeline import BacktestResult, FeedbackBatch
from edgeloop.schema.repository import count_rejected

PRODUCER = """
import sys
from edgeloop.producers import Publisher
from tests.support.events import valid_event
start, n, pad = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def event(i):
    e = valid_event(i)
    if pad:
        e["params"]["note"] = "x" * pad
    return e

Publisher().publish_many(event(i) for i in range(start, start + n))
"""


def publish_in_subprocess(env: dict[str, str], start: int, n: int, pad: int = 0) -> None:
    """Valid events ``start`` … ``start + n - 1`` from a separate producer process; ``pad`` adds
    a string parameter of that many characters to each."""
    subprocess.run([sys.executable, "-c", PRODUCER, str(start), str(n), str(pad)], cwd=ROOT, env=env, check=True,
                   timeout=120)


class Store:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.sessions = make_sessionmaker(self.engine)

    def scalar(self, stmt):
        with self.sessions() as s:
            return s.scalar(stmt)

    def results(self) -> int:
        return self.scalar(select(func.count()).select_from(BacktestResult))

    def submitted(self) -> int:
        return self.scalar(select(func.count()).select_from(BacktestResult)
                           .where(BacktestResult.ml_feedback_submitted.is_(True)))

    def rejected(self) -> int:
        with self.sessions() as s:
            return count_rejected(s)

    def samples(self) -> int:
        return self.scalar(select(func.count()).select_from(FeedbackSample))

    def largest_batch(self) -> int:
        return self.scalar(select(func.max(FeedbackBatch.size)).where(FeedbackBatch.status == "submitted"))

    def batched(self) -> int:
        """Results sent in confirmed batches: equal to ``submitted`` when none was sent twice."""
        return self.scalar(select(func.coalesce(func.sum(FeedbackBatch.size), 0))
                           .where(FeedbackBatch.status == "submitted"))


@pytest.fixture
def pipeline_env(env, monkeypatch, tmp_path):
    """Environment for worker subprocesses; the ML server is started by each test."""
    env = {**env, "EDGELOOP_CLAIM_IDLE_MS": "2000", "EDGELOOP_FEEDBACK_FLUSH_INTERVAL_S": "0.2",
           "EDGELOOP_FEEDBACK_RETRY_MAX_S": "2", "EDGELOOP_INGEST_BLOCK_MS": "200",
           "PYTHONPATH": str(ROOT)}
    monkeypatch.setenv("EDGELOOP_CLAIM_IDLE_MS", "2000")
    get_settings.cache_clear()
    return env


def with_ml(env: dict[str, str], port: int) -> dict[str, str]:
    return {**env, "EDGELOOP_ML_GRPC_TARGET": f"127.0.0.1:{port}"}


def scrape(port: int) -> dict[str, float]:
    """Samples of a Prometheus endpoint, by name with labels."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    text = urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out
