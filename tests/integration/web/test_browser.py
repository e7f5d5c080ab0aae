"""A real browser (headless Chromium, Debian's package) opens each page of a running `edgeloop
web`, signs in with the token, checks what it shows, that the charts were drawn by the shipped
uPlot, and takes screenshots (into EDGELOOP_SCREENSHOTS_DIR, default var/screenshots/).

Skipped, saying so, only where Chromium is not installed; .ci/run installs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.processes import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (`apt-get install -y chromium`; "
                                                ".ci/run installs it)"),
]

SHOTS = Path(os.environ.get("EDGELOOP_SCREENSHOTS_DIR") or ROOT / "var" / "screenshots")

# path → (screenshot name, what the page must show, charts drawn)
PAGES = {
    "/strategies": ("strategies", ["Strategies ranked by composite score", "gen-003", "validation gate"], 0),
    "/strategies/gen-001": ("strategy", ["Strategy gen-001", "Bankroll over time, per window", "kelly_fraction"], 3),
    "/discovery": ("discovery", ["disc-0002", "failed at backtest_dispatch"], 0),
    "/models": ("models", ["strategy-20250101T000000-abc123", "job-0002"], 0),
    "/pipeline": ("pipeline", ["backtests.finished", "not_json"], 0),
}


def chromium(url: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                               "--window-size=1400,1800", *args, url],
                              capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("path", list(PAGES))
def test_each_page_in_a_real_browser(web, path):
    name, expected, charts = PAGES[path]
    host = urlsplit(web.base).netloc
    url = f"http://viewer:{web.token}@{host}{path}"  # the basic-auth prompt, answered

    dom = chromium(url, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    for text in expected:
        assert text in dom.stdout, text
    assert "Sign in" not in dom.stdout
    assert len(re.findall(r'data-drawn="true"', dom.stdout)) == charts  # every chart drawn by charts.js
    assert dom.stdout.count('class="uplot') == charts

    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    taken = chromium(url, f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.stat().st_size > 10_000, taken.stderr[-2000:]


def test_the_browser_is_refused_with_a_wrong_token(web):
    # Headless Chromium cannot answer the prompt itself: the load fails as unauthorised.
    dom = chromium(f"http://viewer:wrong@{urlsplit(web.base).netloc}/strategies", "--dump-dom")
    assert "gen-003" not in dom.stdout
    assert "ERR_INVALID_AUTH_CREDENTIALS" in dom.stderr or "Sign in" in dom.stdout
