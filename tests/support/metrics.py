"""The metric names the code defines, read from its source (every ``"edgeloop_…"`` string)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["edgeloop", "workers", "mlservice", "mlclient", "backtester", "marketdata", "producers", "schema"]


def metrics_in_code() -> set[str]:
    found = set()
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            found |= set(re.findall(r'"(edgeloop_[a-z0-9_]+)"', path.read_text()))
    return found
