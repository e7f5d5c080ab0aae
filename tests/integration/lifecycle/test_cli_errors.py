"""Every operator command, against a stopped Redis, ML service or database: one line of error
on stderr and a non-zero exit, quickly (no hang, no traceback)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from tests.support.processes import ROOT

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: nothing listens there


COMMANDS = {
    "redis": [["discover"], ["discover", "--wait"], ["feedback", "submit"], ["ml", "status"],
              ["strategies", "activate", "s-any"], ["strategies", "deactivate", "s-any"],
              ["tasks", "run", "edgeloop.rankings.refresh", "--wait"]],
    "ml": [["discover", "--wait", "--json"], ["feedback", "submit"], ["feedback", "retrain", "--wait"],
           ["feedback", "status"], ["ml", "status", "--json"]],
    "database": [["strategies", "list"], ["strategies", "show", "s-any"], ["feedback", "status"]],
}
CASES = [(service, cmd) for service, cmds in COMMANDS.items() for cmd in cmds]


@pytest.mark.parametrize("service,command", CASES, ids=[f"{s}-{' '.join(c)}" for s, c in CASES])
def test_one_line_error_and_nonzero_exit(ml, service, command):
    env = {**ml, "EDGELOOP_ML_TIMEOUT_S": "2"}
    stopped = closed_port()
    if service == "redis":
        env["EDGELOOP_REDIS_URL"] = f"redis://127.0.0.1:{stopped}/0"
    elif service == "ml":
        env["EDGELOOP_ML_GRPC_TARGET"] = f"127.0.0.1:{stopped}"
    else:
        env["EDGELOOP_DATABASE_URL"] = f"postgresql://root@127.0.0.1:{stopped}/edgeloop"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "edgeloop", *command], env=env, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 3  # "cannot reach": the exit code scripts can test for
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgeloop: error:") and ("Redis" in lines[0] if service == "redis" else True)
    assert {"ml": "ML service", "database": "database", "redis": "Redis"}[service] in lines[0], lines[0]
    assert time.monotonic() - started < 30
