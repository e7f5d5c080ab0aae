"""docs/metrics.md matches the code: every metric the code defines is documented, nothing else
is, and each registered metric has the type and labels the docs give it."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from prometheus_client import REGISTRY

from tests.support.metrics import metrics_in_code

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs/metrics.md").read_text()
# The modules that register metrics when imported (the scrape-time collectors of Redis state
# register in the processes that serve them; their names are checked by the source scan).
MODULES = ["edgeloop.core.metrics", "edgeloop.mlclient.metrics", "edgeloop.mlservice.metrics",
           "edgeloop.services.lifecycle", "edgeloop.services.discovery_report"]


def documented() -> dict[str, tuple[str, set[str]]]:
    """name → (type, label names) from the tables' rows."""
    rows = {}
    for name, kind, labels in re.findall(r"^\| `(edgeloop_[a-z0-9_]+)` \| (\w+) \|([^|]*)\|", DOC, re.M):
        rows[name] = (kind, set(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", labels))))
    return rows


def registered() -> dict[str, tuple[str, set[str]]]:
    for module in MODULES:
        importlib.import_module(module)
    found = {}
    for collector in list(REGISTRY._collector_to_names):  # the registry's own map: no scrape needed
        for family in collector.describe() if hasattr(collector, "describe") else ():
            if not family.name.startswith("edgeloop_"):
                continue
            name = family.name + ("_total" if family.type == "counter" else "")
            labels = set(getattr(collector, "_labelnames", ()))
            found[name] = (family.type, labels)
    return found


def test_every_metric_in_the_code_is_documented_and_nothing_else():
    in_code, docs = metrics_in_code(), set(documented())
    assert in_code - docs == set(), "undocumented metrics"
    assert docs - in_code == set(), "documented metrics that do not exist"


def test_registered_metrics_have_the_documented_type_and_labels():
    docs, reg = documented(), registered()
    assert len(reg) >= 30
    wrong = {name: (reg[name], docs.get(name)) for name in reg if docs.get(name) != reg[name]}
    assert wrong == {}
