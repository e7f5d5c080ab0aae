"""Real processes for integration tests: Celery workers and beat, the ML server."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from edgeloop.processes import ROOT, Child

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.1, what: str = "condition") -> T:
    """Call ``predicate`` until it returns something true, and return that; ``AssertionError``
    once ``timeout`` seconds have passed (the tests' and the benchmarks' one polling loop)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class CeleryWorker(Child):
    """`celery -A edgeloop.workers worker` as a child process, logging to a file for post-mortems."""

    def __init__(self, env: dict[str, str], name: str, log_dir: Path, concurrency: int = 1,
                 extra: list[str] | None = None) -> None:
        super().__init__(name, [sys.executable, "-m", "celery", "-A", "edgeloop.workers", "worker", "--loglevel", "INFO",
                                "-n", f"{name}@%h", "-c", str(concurrency), "--without-mingle", "--without-gossip",
                                *(extra or [])], env, log_dir, ROOT)

    def stop(self, timeout: float = 20) -> None:
        super().stop(timeout)


@contextmanager
def celery_worker(env: dict[str, str], name: str, log_dir: Path, **kw) -> Iterator[CeleryWorker]:
    worker = CeleryWorker(env, name, log_dir, **kw)
    try:
        yield worker
    finally:
        worker.stop()


@contextmanager
def ml_server(settings=None, port: int = 0):
    """A real ML gRPC server in this process on ``port`` (0: any free port)."""
    from edgeloop.mlservice.server import create_server

    server, bound = create_server(f"127.0.0.1:{port}", settings)
    server.start()
    try:
        yield server, bound
    finally:
        server.stop(grace=1).wait(5)
