"""deploy/compose.local.yml changes where images come from and nothing else; the alert rules
and the Grafana dashboard name only metrics the code defines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.support.metrics import metrics_in_code

ROOT = Path(__file__).resolve().parents[2]
# Flower's own metrics (flower/events.py), scraped from its /metrics.
FLOWER_METRICS = {"flower_events_total", "flower_task_runtime_seconds", "flower_worker_online"}
PROMQL_WORDS = {"sum", "max", "min", "by", "rate", "increase", "deriv", "histogram_quantile", "up", "le",
                "without", "avg", "count"}


def test_the_override_changes_only_images_and_builds():
    production = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    override = yaml.safe_load((ROOT / "deploy/compose.local.yml").read_text())
    assert set(override) == {"services"}
    assert set(override["services"]) == set(production)
    for name, svc in override["services"].items():
        assert set(svc) <= {"image", "build"}, name
        assert "image" in svc, name
        if "build" in svc:  # the production Dockerfile, on a locally built Python image
            assert svc["build"]["context"] == "."
            assert set(svc["build"]) == {"context", "args"}
            assert set(svc["build"]["args"]) == {"PYTHON_IMAGE"}
            assert "ARG PYTHON_IMAGE" in (ROOT / "Dockerfile").read_text()


def test_every_local_image_the_override_names_is_built_by_the_check():
    override = yaml.safe_load((ROOT / "deploy/compose.local.yml").read_text())
    named = {svc["image"] for svc in override["services"].values()}
    dockerfiles = {p.name for p in (ROOT / "deploy/local").glob("*.Dockerfile")}
    assert {f"{image.split(':')[0].removeprefix('edgeloop-')}.Dockerfile" for image in named
            if image != "edgeloop:bookworm"} <= dockerfiles


def series_names(metric: str) -> set[str]:
    """What Prometheus stores for a metric: histograms and counters have suffixed series."""
    return {metric, f"{metric}_bucket", f"{metric}_sum", f"{metric}_count", f"{metric}_created"}


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b([a-z_][a-z0-9_]*)\b(?=\s*(?:\{|\[|\)|$))", re.sub(r'"[^"]*"', '""', expr)))
    names -= PROMQL_WORDS
    return {n for n in names if n.startswith(("edgeloop_", "flower_")) or n == "up"} - {"up"}


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())["groups"]
            for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    dash = json.loads((ROOT / "deploy/grafana/edgeloop.json").read_text())
    return [t["expr"] for panel in dash["panels"] for t in panel["targets"]]


def known_series() -> set[str]:
    return set().union(*(series_names(m) for m in metrics_in_code() | FLOWER_METRICS))


def test_alert_rules_parse_and_name_only_metrics_that_exist():
    rules = alert_rules()
    assert {"EdgeloopBacklogGrowing", "EdgeloopFeedbackLag", "EdgeloopDeadLetters", "EdgeloopMLBreakerOpen",
            "EdgeloopNoTraining", "EdgeloopBeatSilent"} <= {r["alert"] for r in rules}
    for rule in rules:
        assert rule["annotations"]["summary"] and rule["labels"]["severity"] in {"warning", "critical"}
        # `<query> <op> <threshold>`: the compose check runs the query part and wants a series.
        assert re.fullmatch(r".*\S\s*(?:>|<|==|!=|>=|<=)\s*[0-9.]+", rule["expr"].strip(), re.S), rule["alert"]
        assert metric_names(rule["expr"]) <= known_series(), rule["alert"]


def test_dashboard_panels_name_only_metrics_that_exist():
    queries = dashboard_queries()
    assert len(queries) >= 12
    used = set().union(*(metric_names(q) for q in queries))
    assert used and used <= known_series(), used - known_series()


def test_the_dashboard_covers_the_loop():
    used = set().union(*(metric_names(q) for q in dashboard_queries()))
    for metric in ["edgeloop_events_ingested_total", "edgeloop_stream_backlog", "edgeloop_feedback_lag_seconds_bucket",
                   "edgeloop_events_dead_lettered_total", "edgeloop_ml_rpc_duration_seconds_bucket", "edgeloop_ml_rpc_total",
                   "edgeloop_prediction_cache_hit_ratio", "edgeloop_ml_training_jobs_total",
                   "edgeloop_strategy_transitions_total", "edgeloop_discovery_runs_total"]:
        assert metric in used, metric


def test_metric_names_are_found_in_expressions():
    assert metric_names('sum by (le) (rate(edgeloop_x_bucket{code!="OK"}[5m]))') == {"edgeloop_x_bucket"}
    assert metric_names("max(edgeloop_y) > 0") == {"edgeloop_y"}
