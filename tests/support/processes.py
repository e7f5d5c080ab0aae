"""Real processes for integration tests: Celery workers and beat, the ML server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class CeleryWorker:
    """`celery -A workers worker` as a child process, logging to a file for post-mortems."""

    def __init__(self, env: dict[str, str], name: str, log_dir: Path, concurrency: int = 1,
                 extra: list[str] | None = None) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        cmd = [sys.executable, "-m", "celery", "-A", "workers", "worker", "--loglevel", "INFO",
               "-n", f"{name}@%h", "-c", str(concurrency), "--without-mingle", "--without-gossip",
               *(extra or [])]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its pool children."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


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
    from mlservice.server import create_server

    server, bound = create_server(f"127.0.0.1:{port}", settings)
    server.start()
    try:
        yield server, bound
    finally:
        server.stop(grace=1).wait(5)
