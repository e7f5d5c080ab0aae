"""The discovery pipeline as Celery work, reported step by step.

    1 submit_feedback    pending results → SubmitBacktestFeedback
    2 retrain            TrainModels if ≥ min_new_feedback samples are new (and wait for it)
    3 generate           GenerateStrategy seeded with the top results; candidates stored
    4 backtest           one ``edgeloop.backtest.run`` per candidate, a group on the workers;
                         their events travel the stream like any other result
    5 evaluate_activate  EvaluateStrategy → composite score; candidates activated or retired
    6 deactivate         active strategies below the deactivation threshold retired
    7 rank_report        every strategy ranked (ranking id = run id) and the report stored

Two tasks, so no worker ever blocks waiting for others: ``edgeloop.discovery.run`` does steps
1–3 and dispatches the group; ``edgeloop.discovery.finish`` polls the group by re-scheduling
itself (``retry`` with a countdown, not ``result.get()`` inside a task, which would deadlock a
worker whose pool is busy with the very backtests it waits for), waits until the results are
stored, and does steps 5–7.

Safety: every step's outcome is written to ``discovery_reports`` as it completes; a step that
fails marks the run failed with the step's name and writes nothing else (the lifecycle's writes
are one transaction). Running the same run id again resumes after the last completed step (the
candidates are derived from the run id, so they are the same; the ranking is keyed by it);
a new run starts from whatever the previous runs left.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from contextlib import contextmanager
from datetime import date
from typing import Any, Iterator

from celery.result import AsyncResult
from prometheus_client import Counter, Histogram
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from edgeloop.core.errors import EdgeloopError, ModelNotTrained, NotFound
from edgeloop.core.settings import Settings
from edgeloop.core.statuses import DiscoveryRunStatus, DiscoveryStepStatus, StrategyStatus
from edgeloop.mlclient import get_ml_client
from edgeloop.proto import ml_service_pb2 as pb
from edgeloop.schema.base import utcnow
from edgeloop.schema.lifecycle import DiscoveryReport
from edgeloop.schema.pipeline import BacktestResult, Strategy
from edgeloop.schema.repository import ensure_strategies
from edgeloop.workers.app import app
from edgeloop.workers.locks import try_lease
from edgeloop.workers.runtime import resources

log = logging.getLogger(__name__)

STEPS = ("submit_feedback", "retrain", "generate", "backtest_dispatch", "backtest", "evaluate_activate", "deactivate", "rank_report")
RUN_TASK, FINISH_TASK = "edgeloop.discovery.run", "edgeloop.discovery.finish"
POLL_S = 1.0
RUN_LEASE_S = 900  # one task of a run at a time; a crashed holder's lease lapses after this
TOP_SEEDS = 20  # as many as GenerateStrategy mutates when it picks its own


RUNS = Counter("edgeloop_discovery_runs_total", "Discovery runs finished", ["outcome"])
STEP_SECONDS = Histogram("edgeloop_discovery_step_seconds", "Duration of discovery steps", ["step"],
                         buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800))


class StepFailed(EdgeloopError):
    def __init__(self, step: str, error: BaseException) -> None:
        super().__init__(f"step {step} failed: {type(error).__name__}: {error}")
        self.step = step


def new_run_id() -> str:
    return f"d-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


# --- the report ----------------------------------------------------------------------------

class Report:
    """The ``discovery_reports`` row of one run, written after every step."""

    def __init__(self, sessions: sessionmaker[Session], run_id: str) -> None:
        self.sessions = sessions
        self.run_id = run_id

    def open(self) -> DiscoveryReport:
        with self.sessions.begin() as s:
            row = s.get(DiscoveryReport, self.run_id, with_for_update=True)
            if row is None:
                row = DiscoveryReport(run_id=self.run_id, status=DiscoveryRunStatus.RUNNING, started_at=utcnow(),
                                      steps={}, counts={}, top_strategies=[], state={})
                s.add(row)
            elif row.status == DiscoveryRunStatus.FAILED:  # a re-run resumes after the last completed step
                row.status, row.failed_step, row.error = DiscoveryRunStatus.RUNNING, None, None
            s.flush()
            s.expunge(row)
            return row

    def get(self) -> DiscoveryReport:
        with self.sessions() as s:
            return s.get_one(DiscoveryReport, self.run_id)

    def update(self, **values: Any) -> None:
        with self.sessions.begin() as s:
            row = s.get(DiscoveryReport, self.run_id, with_for_update=True)
            for k, v in values.items():
                if k in ("state", "counts", "steps"):
                    v = {**getattr(row, k), **v}  # merged: JSON columns are replaced, not mutated
                setattr(row, k, v)

    def done(self, step: str) -> bool:
        return self.get().steps.get(step, {}).get("status") == DiscoveryStepStatus.OK

    @contextmanager
    def step(self, name: str) -> Iterator[dict]:
        """Time a step and record it; on an exception record the run as failed at this step."""
        details: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            yield details
        except Exception as exc:  # noqa: BLE001 - every failure is reported with its step
            log.exception("discovery %s: step %s failed", self.run_id, name)
            RUNS.labels(outcome="failed").inc()
            self.update(status=DiscoveryRunStatus.FAILED, failed_step=name, error=f"{type(exc).__name__}: {exc}"[:2000],
                        finished_at=utcnow(),
                        steps={name: {"status": DiscoveryStepStatus.FAILED, "seconds": round(time.perf_counter() - started, 3)}})
            raise StepFailed(name, exc) from exc
        # A step that spans tasks (the backtests) reports its own wall time as "_seconds".
        seconds = details.pop("_seconds", time.perf_counter() - started)
        STEP_SECONDS.labels(step=name).observe(seconds)
        self.update(steps={name: {"status": DiscoveryStepStatus.OK, "seconds": round(seconds, 3), "details": details}})


# --- steps 1–3 ----------------------------------------------------------------------------

def submit_feedback(sessions, settings: Settings, client) -> int:
    from edgeloop.workers.feedback import FeedbackFlusher

    flusher = FeedbackFlusher.clearing_cache(sessions=sessions, settings=settings, client_factory=lambda: client)
    return flusher.flush_all(budget_s=60.0)


def seed_strategy_ids(sessions) -> list[str]:
    """The strategies of the best backtest results so far, by backtest score.

    Not by composite score: the composite contains the strategy model's own confidence, and
    seeding with what the model already likes would have it mutate its own opinion; the
    backtest score is the evidence. (bench/discovery.py: seeding by composite among strategies
    with enough bets reached a lower out-of-sample score at 100 and 200 backtests.)"""
    best = (select(BacktestResult.strategy_id, func.max(BacktestResult.backtest_score).label("score"))
            .group_by(BacktestResult.strategy_id).subquery())
    with sessions() as s:
        return list(s.scalars(select(best.c.strategy_id).order_by(best.c.score.desc(), best.c.strategy_id)
                              .limit(TOP_SEEDS)))


def run_seed(run_id: str) -> int:
    """GenerateStrategy's random seed, from the run id: a resumed run gets the same candidates."""
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big") or 1


def generate(sessions, settings: Settings, client, run_id: str) -> list[dict[str, Any]]:
    from google.protobuf import json_format

    seeds = seed_strategy_ids(sessions)
    constraints = pb.StrategyConstraints(risk_level=settings.discovery_risk_level)
    try:
        found = client.generate_strategy(settings.discovery_candidates, constraints, seeds, run_seed(run_id),
                                         timeout=60)
    except NotFound:
        if not seeds:
            raise
        # None of our seeds is in the service's parameter language: let it pick its own top results.
        found = client.generate_strategy(settings.discovery_candidates, constraints, [], run_seed(run_id), timeout=60)
    candidates = [{"strategy_id": g.strategy_id, "name": g.name or g.strategy_id,
                   "params": json_format.MessageToDict(g.params), "model_version": g.model_version,
                   "expected_score": g.expected_score, "confidence": g.confidence} for g in found]
    with sessions.begin() as s:
        ensure_strategies(s, [{"strategy_id": c["strategy_id"], "name": c["name"], "params": c["params"],
                               "status": StrategyStatus.CANDIDATE, "source": "generated",
                               "model_version": c["model_version"] or None} for c in candidates])
    return candidates


def dispatch_backtests(settings: Settings, candidates: list[dict[str, Any]]) -> list[str]:
    from edgeloop.workers.backtest_tasks import run_many

    strategies = [{"name": c["name"], "strategy_id": c["strategy_id"], **c["params"]} for c in candidates]
    result = run_many(strategies, date.fromisoformat(settings.discovery_window_start),
                      date.fromisoformat(settings.discovery_window_end), settings.discovery_leagues).apply_async()
    return [r.id for r in result.results]


# --- step 4's end -------------------------------------------------------------------------

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


def stored(sessions, backtest_ids: list[str]) -> int:
    if not backtest_ids:
        return 0
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(BacktestResult)
                        .where(BacktestResult.backtest_id.in_(backtest_ids))) or 0


# --- steps 5–7 ----------------------------------------------------------------------------

def evaluate_with_bootstrap(sessions, settings, client, redis, **kw):
    """``lifecycle.refresh``; when no strategy model serves yet (a fresh system), submit the
    feedback this run produced, train once and evaluate again."""
    from edgeloop.workers.lifecycle import refresh
    from edgeloop.workers.retraining import maybe_retrain

    try:
        return refresh(sessions, client, settings, lock_client=redis, **kw), None
    except ModelNotTrained:
        submit_feedback(sessions, settings, client)
        decision = maybe_retrain(sessions, client, settings, force=True, wait_s=settings.retrain_wait_s,
                                 reason="discovery bootstrap: no strategy model yet")
        return refresh(sessions, client, settings, lock_client=redis, **kw), decision.as_dict()


def finish_run(report: Report, sessions, settings, client, redis) -> dict:
    from edgeloop.workers.lifecycle import ACTIVATE, DEACTIVATE

    counts: dict[str, Any] = {}
    if not report.done("evaluate_activate"):
        with report.step("evaluate_activate") as d:
            outcome, bootstrap = evaluate_with_bootstrap(sessions, settings, client, redis, statuses=(StrategyStatus.CANDIDATE,),
                                                         allow=(ACTIVATE, DEACTIVATE), store_ranking=False)
            d.update(evaluated=len(outcome.evaluations), activated=outcome.changed_to(StrategyStatus.ACTIVE),
                     retired_candidates=outcome.changed_to(StrategyStatus.INACTIVE), unevaluable=len(outcome.unevaluable))
            if bootstrap:
                d["bootstrap_training"] = bootstrap
    if not report.done("deactivate"):
        with report.step("deactivate") as d:
            from edgeloop.workers.lifecycle import refresh

            outcome = refresh(sessions, client, settings, statuses=(StrategyStatus.ACTIVE,), allow=(DEACTIVATE,),
                              store_ranking=False, lock_client=redis)
            d.update(evaluated=len(outcome.evaluations), deactivated=outcome.changed_to(StrategyStatus.INACTIVE))
    with report.step("rank_report") as d:
        from edgeloop.workers.lifecycle import refresh

        outcome = refresh(sessions, client, settings, allow=(), ranking_id=report.run_id, lock_client=redis)
        summary = outcome.summary()
        d.update(ranked=summary["evaluated"], ranking_id=report.run_id)
        steps = report.get().steps
        with sessions() as s:
            by_status = dict(s.execute(select(Strategy.status, func.count()).group_by(Strategy.status)).all())
        counts = {
            "feedback_submitted": steps["submit_feedback"]["details"]["submitted"],
            "retrained": steps["retrain"]["details"].get("triggered", False),
            "candidates": steps["generate"]["details"]["candidates"],
            "backtests_ok": steps["backtest"]["details"]["ok"],
            "backtests_failed": steps["backtest"]["details"]["failed"],
            "activated": len(steps["evaluate_activate"]["details"]["activated"]),
            "candidates_retired": len(steps["evaluate_activate"]["details"]["retired_candidates"]),
            "deactivated": len(steps["deactivate"]["details"]["deactivated"]),
            "ranked": summary["evaluated"], "strategies_by_status": by_status,
        }
    report.update(status=DiscoveryRunStatus.SUCCEEDED, finished_at=utcnow(), counts=counts, top_strategies=summary["top"])
    RUNS.labels(outcome="succeeded").inc()
    return {"run_id": report.run_id, "status": DiscoveryRunStatus.SUCCEEDED, "counts": counts}


# --- the tasks ------------------------------------------------------------------------------

def running_run(sessions, settings: Settings) -> str | None:
    """A run started recently that has not finished (a scheduled run does not overlap it)."""
    from datetime import timedelta

    since = utcnow() - timedelta(seconds=settings.discovery_backtest_timeout_s + 600)
    with sessions() as s:
        return s.scalars(select(DiscoveryReport.run_id).where(DiscoveryReport.status == DiscoveryRunStatus.RUNNING,
                                                              DiscoveryReport.started_at >= since)).first()


@app.task(name=RUN_TASK)
def run_discovery(run_id: str | None = None) -> dict:
    """Steps 1–4 (dispatch); ``finish`` does the rest. Returns the run id at once."""
    res = resources()
    if run_id is None:  # scheduled: do not start while a run is still going
        busy = running_run(res.sessions, res.settings)
        if busy:
            return {"run_id": None, "status": "skipped", "reason": f"discovery run {busy} is still running"}
    run_id = run_id or new_run_id()
    with try_lease(res.redis, f"discovery:{run_id}", RUN_LEASE_S) as mine:  # another process may finish it
        if mine is None:
            return {"run_id": run_id, "status": "busy"}
        return _run_discovery(res, run_id)


def _run_discovery(res, run_id: str) -> dict:
    report = Report(res.sessions, run_id)
    row = report.open()
    if row.status == DiscoveryRunStatus.SUCCEEDED:
        return {"run_id": run_id, "status": DiscoveryRunStatus.SUCCEEDED}
    client, settings = get_ml_client(), res.settings
    try:
        if not report.done("submit_feedback"):
            with report.step("submit_feedback") as d:
                d["submitted"] = submit_feedback(res.sessions, settings, client)
        if not report.done("retrain"):
            with report.step("retrain") as d:
                from edgeloop.workers.retraining import maybe_retrain

                d.update(maybe_retrain(res.sessions, client, settings, wait_s=settings.retrain_wait_s,
                                       reason=f"discovery {run_id}").as_dict())
        if not report.done("generate"):
            with report.step("generate") as d:
                candidates = generate(res.sessions, settings, client, run_id)
                d.update(candidates=len(candidates), seeds=seed_strategy_ids(res.sessions),
                         model_version=next((c["model_version"] for c in candidates if c["model_version"]), ""))
                report.update(state={"candidates": candidates})
        state = report.get().state
        if "backtest_task_ids" not in state:
            with report.step("backtest_dispatch") as d:
                ids = dispatch_backtests(settings, state["candidates"])
                d["tasks"] = len(ids)
                report.update(state={"backtest_task_ids": ids, "backtest_started": time.time()})
    except StepFailed as exc:
        return {"run_id": run_id, "status": DiscoveryRunStatus.FAILED, "failed_step": exc.step, "error": str(exc)}
    finish_discovery.apply_async((run_id,), countdown=POLL_S)
    return {"run_id": run_id, "status": "backtesting"}


@app.task(name=FINISH_TASK, bind=True, max_retries=None)
def finish_discovery(self, run_id: str) -> dict:
    """Wait (by re-scheduling itself) for the backtests and their stored results, then 5–7."""
    res = resources()
    with try_lease(res.redis, f"discovery:{run_id}", RUN_LEASE_S) as mine:
        if mine is None:
            raise self.retry(countdown=POLL_S)
        return _finish(self, res, run_id)


def _finish(task, res, run_id: str) -> dict:
    report = Report(res.sessions, run_id)
    row = report.get()
    if row is None or row.status != DiscoveryRunStatus.RUNNING:
        return {"run_id": run_id, "status": row.status if row else "unknown"}
    settings, state = res.settings, row.state
    try:
        if row.steps.get("backtest", {}).get("status") != DiscoveryStepStatus.OK:  # the row just read: no second query per poll
            waited = time.time() - state["backtest_started"]
            finished, published, errors = collect_backtests(state["backtest_task_ids"])
            have = stored(res.sessions, published)
            if (not finished or have < len(published)) and waited < settings.discovery_backtest_timeout_s:
                report.update(state={"progress": {"backtests_done": len(published) + len(errors),
                                                  "backtests": len(state["backtest_task_ids"]), "stored": have}})
                raise task.retry(countdown=POLL_S)
            with report.step("backtest") as d:
                if not finished or have < len(published):
                    raise TimeoutError(f"backtests not finished and stored after {waited:.0f} s "
                                       f"({have} of {len(published)} stored)")
                d.update(ok=len(published), failed=len(errors), errors=errors[:5], stored=have, _seconds=waited)
        return finish_run(report, res.sessions, settings, get_ml_client(), res.redis)
    except StepFailed as exc:
        return {"run_id": run_id, "status": DiscoveryRunStatus.FAILED, "failed_step": exc.step, "error": str(exc)}
