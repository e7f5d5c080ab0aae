"""Shared plumbing of the benchmarks: scratch services, child processes, output."""

from __future__ import annotations

import json
import sys
import time
from typing import Callable

from edgeloop.processes import ROOT, Child, free_port  # noqa: F401  (re-exported for the benchmarks)


def scratch_postgres(name: str, admin_url: str = "postgresql://root@127.0.0.1:5432/postgres") -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_postgres(name: str, admin_url: str = "postgresql://root@127.0.0.1:5432/postgres") -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> float:
    """Wait for ``predicate``; returns the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(interval)
    raise SystemExit(f"benchmark: timed out after {timeout}s waiting for {what}")


def python() -> str:
    return sys.executable


def emit(figures: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures, separators=(",", ":")))
