"""Every metric the code defines is documented in docs/metrics.md, and nothing else is."""

import re
from pathlib import Path

from tests.support.metrics import metrics_in_code

ROOT = Path(__file__).resolve().parents[2]


def test_metrics_reference_matches_the_code():
    in_code = metrics_in_code()
    documented = set(re.findall(r"`(edgeloop_[a-z0-9_]+)`", (ROOT / "docs/metrics.md").read_text()))
    assert in_code - documented == set(), "undocumented metrics"
    assert documented - in_code == set(), "documented metrics that do not exist"
