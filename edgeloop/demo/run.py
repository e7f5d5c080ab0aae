"""The demo's steps: services up, data in, outcome models trained, rounds of discovery, report."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import grpc
from sqlalchemy import select

from edgeloop.core.errors import ServiceUnavailable
from edgeloop.core.settings import get_settings
from edgeloop.core.statuses import TRAINING_FINISHED, DiscoveryRunStatus, ModelStatus, TrainingStatus
from edgeloop.demo.report import CACHE_COUNTERS, write_report
from edgeloop.demo.stack import Stack, free_port
from edgeloop.marketdata.arrays import resolve_data_dir
from edgeloop.marketdata.store import import_paths
from edgeloop.mlclient import get_cached_ml_client, get_ml_client
from edgeloop.schema.db import make_engine, upgrade
from edgeloop.schema.lifecycle import DiscoveryReport
from edgeloop.services.runtime import resources
from edgeloop.workers.app import app

# Tuned for a 2-core laptop: small rounds, little waiting between steps.
DEMO_SETTINGS = {
    "EDGELOOP_METRICS_PORT": "0",
    "EDGELOOP_MIN_NEW_FEEDBACK": "10",
    "EDGELOOP_RETRAIN_WAIT_S": "120",
    "EDGELOOP_FEEDBACK_FLUSH_INTERVAL_S": "0.5",
}


class Demo:
    def __init__(self, root: Path, var: Path, out: Path, progress: Callable[[str], None]) -> None:
        self.root = root
        self.var = var
        self.out = out
        self.progress = progress
        self.stack = Stack(root, var)
        self.env: dict[str, str] = {}

    # --- set-up ---------------------------------------------------------------------------
    def configure(self, candidates: int) -> None:
        redis_url = self.stack.start_redis_if_needed()
        embedded = "EDGELOOP_REDIS_URL" not in os.environ
        db_url = os.environ.get("EDGELOOP_DATABASE_URL") or f"sqlite:///{(self.var / 'edgeloop.db').resolve()}"
        grpc_port, http_port = free_port(), free_port()
        self.env = {
            **os.environ,
            **{k: v for k, v in DEMO_SETTINGS.items() if k not in os.environ},
            "EDGELOOP_REDIS_URL": redis_url,
            "EDGELOOP_DATABASE_URL": db_url,
            "EDGELOOP_ML_GRPC_PORT": str(grpc_port),
            "EDGELOOP_ML_HTTP_PORT": str(http_port),
            "EDGELOOP_ML_GRPC_TARGET": f"127.0.0.1:{grpc_port}",
            "EDGELOOP_ML_HTTP_URL": f"http://127.0.0.1:{http_port}",
            "EDGELOOP_DISCOVERY_CANDIDATES": os.environ.get("EDGELOOP_DISCOVERY_CANDIDATES", str(candidates)),
            "PYTHONPATH": str(self.root),
        }
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("EDGELOOP_")})

        get_settings.cache_clear()
        self.progress(f"Redis: {'embedded at ' if embedded else ''}{redis_url}; database: {db_url}")

    def prepare_data(self) -> None:
        settings = self.settings
        upgrade(settings.database_url)
        engine = make_engine(settings.database_url)
        report = import_paths(engine, [resolve_data_dir(settings.data_dir)])
        engine.dispose()
        self.progress(f"data: {report.summary() if hasattr(report, 'summary') else report}")

    @property
    def settings(self):
        return get_settings()

    def start_ml_service(self) -> None:
        child = self.stack.spawn("ml-service", [sys.executable, "-m", "edgeloop", "ml", "serve"], self.env)
        channel = grpc.insecure_channel(self.settings.ml_grpc_target)

        def ready() -> bool:
            try:
                grpc.channel_ready_future(channel).result(timeout=0.5)
                return True
            except grpc.FutureTimeoutError:
                return False

        self.stack.wait_for("the ML service", ready, 120, child)
        channel.close()
        self.progress(f"ML service up on {self.settings.ml_grpc_target} (HTTP {self.settings.ml_http_url})")

    def train_outcome_models(self) -> None:
        client = get_ml_client()
        if any(m.status == ModelStatus.SERVING for m in client.list_models("outcome")):
            self.progress("outcome models: already trained (continuing a previous run)")
            return
        self.progress("outcome models: training one version per season, walk-forward …")
        job = client.train_models(model_name="outcome")
        status = self._wait_job(client, job.job_id, 600)
        served = [m for m in client.list_models("outcome") if m.status == ModelStatus.SERVING]
        self.progress(f"outcome models: {status.status}, {len(served)} serving versions")

    def _wait_job(self, client, job_id: str, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = client.get_training_status(job_id)
            if status.status in TRAINING_FINISHED:
                if status.status == TrainingStatus.FAILED:
                    raise ServiceUnavailable(f"training job {job_id} failed: {status.reason}")
                return status
            time.sleep(1)
        raise ServiceUnavailable(f"training job {job_id} did not finish in {timeout:.0f}s")

    def start_workers(self) -> None:
        worker = self.stack.spawn("worker", [sys.executable, "-m", "celery", "-A", "edgeloop.workers", "worker", "-c", "2",
                                             "-n", "demo@%h", "--loglevel", "INFO"], self.env)
        self.stack.spawn("beat", [sys.executable, "-m", "celery", "-A", "edgeloop.workers", "beat", "--loglevel", "INFO",
                                  "-s", str((self.var / "celerybeat-schedule").resolve())], self.env)

        app.conf.broker_url = self.settings.broker
        app.conf.result_backend = self.settings.result_backend

        def answers() -> bool:
            try:
                return bool(app.control.ping(timeout=0.5))
            except Exception:  # noqa: BLE001 - not up yet
                return False

        self.stack.wait_for("the Celery worker", answers, 120, worker)
        self.progress("Celery worker (prefork -c 2, stream consumer) and beat are up")

    # --- rounds ---------------------------------------------------------------------------
    def previous_rounds(self) -> list[str]:
        with resources().sessions() as s:
            return list(s.scalars(select(DiscoveryReport.run_id).where(DiscoveryReport.run_id.like("demo-%"))
                                  .order_by(DiscoveryReport.started_at)))

    def run_round(self, run_id: str, timeout: float) -> dict[str, Any]:
        app.send_task("edgeloop.discovery.run", kwargs={"run_id": run_id})
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        last_progress = ""
        while time.monotonic() < deadline:
            with resources().sessions() as s:
                row = s.get(DiscoveryReport, run_id)
                if row is not None:
                    for step, info in row.steps.items():
                        if step not in seen and info.get("status"):
                            seen.add(step)
                            self.progress(f"  {run_id}: {step} {info['status']} in {info.get('seconds', 0):.1f}s")
                    p = (row.state or {}).get("progress")
                    if p and str(p) != last_progress:
                        last_progress = str(p)
                        self.progress(f"  {run_id}: backtests {p.get('backtests_done')}/{p.get('backtests')}, "
                                      f"stored {p.get('stored')}")
                    if row.status in (DiscoveryRunStatus.SUCCEEDED, DiscoveryRunStatus.FAILED):
                        return {"run_id": run_id, "status": row.status, "failed_step": row.failed_step,
                                "error": row.error, "counts": row.counts, "steps": row.steps,
                                "top_strategies": row.top_strategies}
            time.sleep(1)
        raise ServiceUnavailable(f"discovery round {run_id} did not finish in {timeout:.0f}s")

    def record_cache_counters(self, run_id: str) -> None:
        """The shared cache's cumulative hits and misses after a round (the report turns them
        into each round's hit ratio)."""
        stats = get_cached_ml_client().stats()
        with open(self.var / CACHE_COUNTERS, "a") as f:
            f.write(json.dumps({"run_id": run_id, "hits": sum(stats.hits.values()),
                                "misses": sum(stats.misses.values())}) + "\n")

    # --- the whole demo -------------------------------------------------------------------
    def run(self, rounds: int, candidates: int, round_timeout: float) -> None:
        self.configure(candidates)
        self.prepare_data()
        self.start_ml_service()
        self.train_outcome_models()
        self.start_workers()
        done = self.previous_rounds()
        if done:
            self.progress(f"continuing after {len(done)} earlier rounds")
        for i in range(len(done) + 1, len(done) + rounds + 1):
            run_id = f"demo-{i:03d}"
            self.progress(f"round {i}: discovery {run_id}")
            result = self.run_round(run_id, round_timeout)
            counts = result.get("counts") or {}
            self.progress(f"round {i}: {result['status']}; " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            self.record_cache_counters(run_id)

        path = write_report(self.out, self.var, self.settings, self.progress)
        self.progress(f"report: {path}")
        print(Path(path).read_text())
