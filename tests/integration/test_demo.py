"""`make demo`'s program: it runs the loop on embedded services and an interrupt leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.support.processes import ROOT, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGELOOP_")}
    return {**env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def test_demo_round_writes_report_and_charts(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgeloop.demo", "--rounds", "1", "--var", str(tmp_path / "var"),
                           "--out", str(tmp_path / "report")], cwd=ROOT, env=demo_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| 1 | demo-001 | succeeded |" in report
    for png in ("headline_yield_by_round.png", "bankroll_final_window.png", "calibration.png"):
        assert (tmp_path / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Every headline strategy rests on enough bets where it was chosen, and is judged on later windows
    evidence = json.loads((tmp_path / "report" / "report.json").read_text())
    windows = evidence["windows"]
    assert windows["selection"][1] < windows["validation"][0] <= windows["validation"][1] < windows["final"][0]
    headlines = [r["headline"] for r in evidence["rounds"] if r["headline"]]
    assert all(h["selection_bets"] >= evidence["min_bets_for_activation"] for h in headlines)
    for row in headlines + evidence["active"]:
        assert set(row) >= {"selection_yield", "validation_yield", "final_yield"}
    assert evidence["market"]["final_bets"] > 500


def test_interrupting_the_demo_leaves_no_process_running(tmp_path):
    log = open(tmp_path / "demo.out", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "edgeloop.demo", "--rounds", "1", "--var", str(tmp_path / "var"),
                             "--out", str(tmp_path / "report")], cwd=ROOT, env=demo_env(), stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        # Given the demo with every child started
        wait_until(lambda: "worker" in (tmp_path / "demo.out").read_text() and "are up"
                   in (tmp_path / "demo.out").read_text(), 180, 0.2, "children up")
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4  # redis, ML service, worker (+ pool), beat
        # When it is interrupted like Ctrl-C
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Then every child process is gone
    time.sleep(0.5)
    alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not alive, [c.cmdline() for c in alive]
