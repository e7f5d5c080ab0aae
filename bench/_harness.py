"""Shared plumbing of the benchmarks: child processes and output (scratch databases and polling
come from ``tests.support``: ``services.recreate_pg_database``, ``processes.wait_until``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from edgeloop.processes import ROOT, Child, free_port  # noqa: F401  (re-exported for the benchmarks)


def python() -> str:
    return sys.executable


def emit(figures: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures, separators=(",", ":")))


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str) -> float:
    """User + system CPU seconds of a process so far (``/proc/<pid>/stat``, 10 ms ticks; 0 when
    it is gone): what a step cost a process, steadier than wall time on a shared machine."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICK
