"""The discovery pipeline as Celery work (the steps are ``edgeloop.services.discovery``).

Two tasks, so no worker ever blocks waiting for others: ``edgeloop.discovery.run`` does steps
1–3 and dispatches step 4, a group of backtest tasks on the selection window;
``edgeloop.discovery.finish`` polls the group by re-scheduling itself (``retry`` with a
countdown, not ``result.get()`` inside a task, which would deadlock a worker whose pool is busy
with the very backtests it waits for), waits until the results are stored, does step 5 (the
selection gate), dispatches and waits for step 6 (the validation backtests) the same way, and
does steps 7–8.
"""

from __future__ import annotations

import time
from typing import Any

from celery.result import AsyncResult

from edgeloop.core.settings import Settings
from edgeloop.core.statuses import DiscoveryRunStatus
from edgeloop.mlclient import get_ml_client
from edgeloop.services import discovery
from edgeloop.services.discovery_report import Report, StepFailed, running_run
from edgeloop.services.locks import try_lease
from edgeloop.services.runtime import Resources, resources
from edgeloop.services.windows import Span
from edgeloop.workers.app import app
from edgeloop.workers.backtest_tasks import run_many

RUN_TASK, FINISH_TASK = "edgeloop.discovery.run", "edgeloop.discovery.finish"
POLL_S = 1.0
RUN_LEASE_S = 900  # one task of a run at a time; a crashed holder's lease lapses after this


# (dispatch step, wait step, state key) of the two backtest phases
SELECTION_PHASE = ("backtest_dispatch", "backtest", "backtest")
VALIDATION_PHASE = ("validation_dispatch", "validation", "validation")


def dispatch_backtests(settings: Settings, candidates: list[dict[str, Any]], window: Span) -> list[str]:
    if not candidates:
        return []
    strategies = [{"name": c["name"], "strategy_id": c["strategy_id"], **c["params"]} for c in candidates]
    result = run_many(strategies, window.start, window.end, settings.discovery_leagues).apply_async()
    return [r.id for r in result.results]


def dispatch_phase(report: Report, settings: Settings, candidates: list[dict[str, Any]], window: Span,
                   phase: tuple[str, str, str]) -> None:
    dispatch_step, _, key = phase
    if f"{key}_task_ids" not in report.get().state:
        with report.step(dispatch_step) as d:
            ids = dispatch_backtests(settings, candidates, window)
            d["tasks"] = len(ids)
            report.update(state={f"{key}_task_ids": ids, f"{key}_started": time.time()})


def wait_phase(task, report: Report, res: Resources, phase: tuple[str, str, str]) -> None:
    """Return once the phase's backtests finished and are stored (its step recorded); else
    re-schedule the task (``task.retry`` raises)."""
    _, step, key = phase
    row = report.get()
    if row.steps.get(step, {}).get("status") == "ok":  # the row just read: no second query per poll
        return
    state = row.state
    waited = time.time() - state[f"{key}_started"]
    finished, published, errors = collect_backtests(state[f"{key}_task_ids"])
    have = discovery.stored(res.sessions, published)
    if (not finished or have < len(published)) and waited < res.settings.discovery_backtest_timeout_s:
        report.update(state={"progress": {"phase": step, "backtests_done": len(published) + len(errors),
                                          "backtests": len(state[f"{key}_task_ids"]), "stored": have}})
        raise task.retry(countdown=POLL_S)
    with report.step(step) as d:
        if not finished or have < len(published):
            raise TimeoutError(f"backtests not finished and stored after {waited:.0f} s "
                               f"({have} of {len(published)} stored)")
        d.update(ok=len(published), failed=len(errors), errors=errors[:5], stored=have, _seconds=waited)


def collect_backtests(task_ids: list[str]) -> tuple[bool, list[str], list[str]]:
    """(all finished, backtest ids published, errors)."""
    published, errors, finished = [], [], True
    for tid in task_ids:
        r = AsyncResult(tid, app=app)
        if not r.ready():
            finished = False
            continue
        if r.successful() and isinstance(r.result, dict) and r.result.get("ok"):
            published.append(r.result["backtest_id"])
        else:
            value = r.result.get("error") if isinstance(r.result, dict) else repr(r.result)
            errors.append(str(value)[:300])
    return finished, published, errors


@app.task(name=RUN_TASK)
def run_discovery(run_id: str | None = None) -> dict:
    """Steps 1–4 (dispatch); ``finish`` does the rest. Returns the run id at once."""
    res = resources()
    if run_id is None:  # scheduled: do not start while a run is still going
        busy = running_run(res.sessions, res.settings)
        if busy:
            return {"run_id": None, "status": "skipped", "reason": f"discovery run {busy} is still running"}
    run_id = run_id or discovery.new_run_id()
    with try_lease(res.redis, f"discovery:{run_id}", RUN_LEASE_S) as mine:  # another process may hold it
        if mine is None:
            return {"run_id": run_id, "status": "busy"}
        return _run_discovery(res, run_id)


def _run_discovery(res: Resources, run_id: str) -> dict:
    report = Report(res.sessions, run_id)
    row = report.open()
    if row.status == DiscoveryRunStatus.SUCCEEDED:
        return {"run_id": run_id, "status": DiscoveryRunStatus.SUCCEEDED}
    try:
        candidates = discovery.prepare(report, res.sessions, res.settings, get_ml_client())
        dispatch_phase(report, res.settings, candidates, discovery.run_windows(report).selection, SELECTION_PHASE)
    except StepFailed as exc:
        return {"run_id": run_id, "status": "failed", "failed_step": exc.step, "error": str(exc)}
    finish_discovery.apply_async((run_id,), countdown=POLL_S)
    return {"run_id": run_id, "status": "backtesting"}


@app.task(name=FINISH_TASK, bind=True, max_retries=None)
def finish_discovery(self, run_id: str) -> dict:
    """Wait (by re-scheduling itself) for each phase of backtests and their stored results; steps 5–8."""
    res = resources()
    with try_lease(res.redis, f"discovery:{run_id}", RUN_LEASE_S) as mine:
        if mine is None:
            raise self.retry(countdown=POLL_S)
        return _finish(self, res, run_id)


def _finish(task, res: Resources, run_id: str) -> dict:
    report = Report(res.sessions, run_id)
    row = report.find()
    if row is None or row.status != "running":
        return {"run_id": run_id, "status": row.status if row else "unknown"}
    try:
        wait_phase(task, report, res, SELECTION_PHASE)
        validate = discovery.select_candidates(report, res.sessions, res.settings)
        dispatch_phase(report, res.settings, validate, discovery.run_windows(report).validation, VALIDATION_PHASE)
        wait_phase(task, report, res, VALIDATION_PHASE)
        return discovery.finish(report, res.sessions, res.settings, get_ml_client(), res.redis)
    except StepFailed as exc:
        return {"run_id": run_id, "status": "failed", "failed_step": exc.step, "error": str(exc)}
