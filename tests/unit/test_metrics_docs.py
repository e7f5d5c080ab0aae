"""Every metric the code defines is documented in docs/metrics.md, and nothing else is."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["edgeloop", "workers", "mlservice", "mlclient", "backtester", "marketdata", "producers", "schema"]


def test_metrics_reference_matches_the_code():
    in_code = set()
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            in_code |= set(re.findall(r'"(edgeloop_[a-z0-9_]+)"', path.read_text()))
    documented = set(re.findall(r"`(edgeloop_[a-z0-9_]+)`", (ROOT / "docs/metrics.md").read_text()))
    assert in_code - documented == set(), "undocumented metrics"
    assert documented - in_code == set(), "documented metrics that do not exist"
