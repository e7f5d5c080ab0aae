"""Shared plumbing of the benchmarks: child processes and output (scratch databases and polling
come from ``tests.support``: ``services.recreate_pg_database``, ``processes.wait_until``)."""

from __future__ import annotations

import json
import sys

from edgeloop.processes import ROOT, Child, free_port  # noqa: F401  (re-exported for the benchmarks)


def python() -> str:
    return sys.executable


def emit(figures: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures, separators=(",", ":")))
