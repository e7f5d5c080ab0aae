"""A discovery run's report: the ``discovery_reports`` row, written after every step.

The steps (``discovery.py``) say what to do; this module records what happened: a run is
opened (or reopened after a failure, to resume after its last completed step), each step's
status, duration and details are merged into the row as the step completes, and the run ends
succeeded or failed at a named step. It also answers the questions asked of the rows: is a
run still going, which steps are done.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Iterator

from prometheus_client import Counter, Histogram
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edgeloop.core.errors import EdgeloopError
from edgeloop.core.settings import Settings
from edgeloop.schema.base import utcnow
from edgeloop.schema.lifecycle import DiscoveryReport

log = logging.getLogger(__name__)

# In pipeline order; the report's JSON column does not keep the order the steps were written in.
STEPS = ("submit_feedback", "retrain", "generate", "backtest_dispatch", "backtest", "select", "validation_dispatch",
         "validation", "evaluate_activate", "rank_report")

RUNS = Counter("edgeloop_discovery_runs_total", "Discovery runs finished", ["outcome"])
STEP_SECONDS = Histogram("edgeloop_discovery_step_seconds", "Duration of discovery steps", ["step"],
                         buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800))


class StepFailed(EdgeloopError):
    def __init__(self, step: str, error: BaseException) -> None:
        super().__init__(f"step {step} failed: {type(error).__name__}: {error}")
        self.step = step


class Report:
    """The ``discovery_reports`` row of one run, written after every step."""

    def __init__(self, sessions: sessionmaker[Session], run_id: str) -> None:
        self.sessions = sessions
        self.run_id = run_id

    def open(self) -> DiscoveryReport:
        with self.sessions.begin() as s:
            row = s.get(DiscoveryReport, self.run_id, with_for_update=True)
            if row is None:
                row = DiscoveryReport(run_id=self.run_id, status="running", started_at=utcnow(), steps={}, counts={},
                                      top_strategies=[], state={})
                s.add(row)
            elif row.status == "failed":  # a re-run resumes after the last completed step
                row.status, row.failed_step, row.error = "running", None, None
            s.flush()
            s.expunge(row)
            return row

    def get(self) -> DiscoveryReport:
        """The row of a run that was opened (``NoResultFound`` if it was not)."""
        with self.sessions() as s:
            return s.get_one(DiscoveryReport, self.run_id)

    def find(self) -> DiscoveryReport | None:
        """The row, or None for a run id that was never opened."""
        with self.sessions() as s:
            return s.get(DiscoveryReport, self.run_id)

    def update(self, **values: Any) -> None:
        with self.sessions.begin() as s:
            row = s.get_one(DiscoveryReport, self.run_id, with_for_update=True)
            for k, v in values.items():
                if k in ("state", "counts", "steps"):
                    v = {**getattr(row, k), **v}  # merged: JSON columns are replaced, not mutated
                setattr(row, k, v)

    def done(self, step: str) -> bool:
        status: object = self.get().steps.get(step, {}).get("status")
        return status == "ok"

    @contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a step and record it; on an exception record the run as failed at this step."""
        details: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            yield details
        except Exception as exc:  # noqa: BLE001 - every failure is reported with its step
            log.exception("discovery %s: step %s failed", self.run_id, name)
            RUNS.labels(outcome="failed").inc()
            self.update(status="failed", failed_step=name, error=f"{type(exc).__name__}: {exc}"[:2000],
                        finished_at=utcnow(),
                        steps={name: {"status": "failed", "seconds": round(time.perf_counter() - started, 3)}})
            raise StepFailed(name, exc) from exc
        # A step that spans tasks (the backtests) reports its own wall time as "_seconds".
        seconds = details.pop("_seconds", time.perf_counter() - started)
        STEP_SECONDS.labels(step=name).observe(seconds)
        self.update(steps={name: {"status": "ok", "seconds": round(seconds, 3), "details": details}})

    def succeed(self, counts: dict[str, Any], top_strategies: list[dict[str, Any]]) -> None:
        self.update(status="succeeded", finished_at=utcnow(), counts=counts, top_strategies=top_strategies)
        RUNS.labels(outcome="succeeded").inc()


def running_run(sessions: sessionmaker[Session], settings: Settings) -> str | None:
    """A run started recently that has not finished (a scheduled run does not overlap it)."""
    since = utcnow() - timedelta(seconds=settings.discovery_backtest_timeout_s + 600)
    with sessions() as s:
        return s.scalars(select(DiscoveryReport.run_id).where(DiscoveryReport.status == "running",
                                                              DiscoveryReport.started_at >= since)).first()


def in_pipeline_order(steps: dict[str, Any]) -> dict[str, Any]:
    """A report's steps in the order the pipeline runs them (unknown names last)."""
    return {name: steps[name] for name in sorted(steps, key=lambda n: STEPS.index(n) if n in STEPS else len(STEPS))}
