"""The discovery pipeline's steps, reported step by step (``discovery_report.Report``).

Three windows per run (``edgeloop.services.windows``, fixed when the run generates its
candidates): selection, validation, and the final window no step ever reads.

    1 submit_feedback    pending results → SubmitBacktestFeedback
    2 retrain            TrainModels if ≥ min_new_feedback samples are new (and wait for it)
    3 generate           GenerateStrategy seeded with the best shrunk scores on the selection
                         window; candidates stored, the run's windows fixed
    4 backtest           one ``edgeloop.backtest.run`` per candidate on the selection window, a
                         group on the workers; their events travel the stream like any other result
    5 select             the selection gate on each candidate's selection result alone; every
                         verdict recorded as selection evidence, the failed candidates retired
    6 validation         the passing candidates backtested again on the validation window
    7 evaluate_activate  EvaluateStrategy → composite of the *validation* score; the gate
                         (bets, yield lower bound, deflated Sharpe for the window's trials);
                         recorded as validation evidence; candidates activated or retired
    8 rank_report        every strategy ranked on its newest verdict (ranking id = run id)

Steps 1–3 are ``prepare``, 5 ``select``, 7–8 ``finish``. Steps 4 and 6 run on the Celery
workers, so their dispatch and the wait for them are the tasks' (``edgeloop.workers.discovery_tasks``):
no worker ever blocks waiting for others. Active strategies are re-checked on newer data by
beat (``edgeloop.services.recheck``), not here.

Safety: every step's outcome is written to ``discovery_reports`` as it completes; a step that
fails marks the run failed with the step's name and writes nothing else (the lifecycle's writes
are one transaction). Running the same run id again resumes after the last completed step (the
candidates are derived from the run id, so they are the same; the ranking is keyed by it);
a new run starts from whatever the previous runs left.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format
from redis import Redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from edgeloop.core.errors import ModelNotTrained, NotFound
from edgeloop.core.settings import Settings
from edgeloop.core.statuses import EvidenceKind, StrategyStatus
from edgeloop.proto import ml_service_pb2 as pb
from edgeloop.schema.base import utcnow
from edgeloop.schema.pipeline import BacktestResult, Strategy
from edgeloop.schema.repository import ensure_strategies
from edgeloop.services import evidence
from edgeloop.services.discovery_report import Report
from edgeloop.services.feedback import FeedbackFlusher
from edgeloop.services.lifecycle import ACTIVATE, DEACTIVATE, RefreshOutcome, refresh
from edgeloop.services.retraining import maybe_retrain
from edgeloop.services.windows import FINAL, SELECTION, VALIDATION, Span, Windows, current_windows

if TYPE_CHECKING:  # the Protocol only: importing edgeloop.mlclient would load gRPC
    from edgeloop.mlclient.protocol import MLServiceClient

TOP_SEEDS = 20  # as many as GenerateStrategy mutates when it picks its own


def new_run_id() -> str:
    return f"d-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


# --- steps 1–3 ----------------------------------------------------------------------------

def submit_feedback(sessions: sessionmaker[Session], settings: Settings, client: MLServiceClient) -> int:
    flusher = FeedbackFlusher.clearing_cache(sessions=sessions, settings=settings, client_factory=lambda: client)
    return flusher.flush_all(budget_s=60.0)


def seed_strategy_ids(sessions: sessionmaker[Session], windows: Windows) -> list[str]:
    """The strategies with the best backtest scores on the selection window, shrunk by their
    bets (``evidence.shrunk_best``): a score resting on a handful of lucky bets is a typical
    score, so the search does not start from flukes. Not by composite score: the composite
    contains the strategy model's own confidence, and seeding with what the model already
    likes would have it mutate its own opinion. Only the selection window: seeds chosen on
    validation results would let that window choose the candidates judged on it."""
    with sessions() as s:
        return evidence.shrunk_best(s, windows.selection.start, windows.selection.end, TOP_SEEDS)


def run_seed(run_id: str) -> int:
    """GenerateStrategy's random seed, from the run id: a resumed run gets the same candidates."""
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big") or 1


def generate(sessions: sessionmaker[Session], settings: Settings, client: MLServiceClient, run_id: str,
             windows: Windows) -> list[dict[str, Any]]:
    seeds = seed_strategy_ids(sessions, windows)
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


def prepare(report: Report, sessions: sessionmaker[Session], settings: Settings, client: MLServiceClient) -> list[dict[str, Any]]:
    """Steps 1–3, each skipped when an earlier attempt of the run completed it; the candidates."""
    if not report.done("submit_feedback"):
        with report.step("submit_feedback") as d:
            d["submitted"] = submit_feedback(sessions, settings, client)
    if not report.done("retrain"):
        with report.step("retrain") as d:
            d.update(maybe_retrain(sessions, client, settings, wait_s=settings.retrain_wait_s,
                                   reason=f"discovery {report.run_id}").as_dict())
    if not report.done("generate"):
        with report.step("generate") as d:
            windows = current_windows(settings)
            candidates = generate(sessions, settings, client, report.run_id, windows)
            d.update(candidates=len(candidates), seeds=seed_strategy_ids(sessions, windows), windows=windows.as_dict(),
                     model_version=next((c["model_version"] for c in candidates if c["model_version"]), ""))
            report.update(state={"candidates": candidates, "windows": windows.as_dict()})
    stored_candidates: list[dict[str, Any]] = report.get().state["candidates"]
    return stored_candidates


def run_windows(report: Report) -> Windows:
    """The windows fixed when the run generated its candidates."""
    w = report.get().state["windows"]

    def span(kind: str) -> Span:
        first, last = w[kind]["seasons"].split(" … ")
        return Span(kind, first, last)

    return Windows(span(SELECTION), span(VALIDATION), span(FINAL) if w.get(FINAL) else None)


# --- step 5 -------------------------------------------------------------------------------

def select_candidates(report: Report, sessions: sessionmaker[Session], settings: Settings) -> list[dict[str, Any]]:
    """The selection gate on each candidate's selection-window result (nothing else is read);
    the candidates that pass, to be backtested on the validation window."""
    if not report.done("select"):
        with report.step("select") as d:
            windows = run_windows(report)
            candidates = report.get().state["candidates"]
            ids = [c["strategy_id"] for c in candidates]
            passing: list[str] = []
            with sessions.begin() as s:
                results = evidence.results_on(s, ids, windows.selection.start, windows.selection.end)
                trials = evidence.Trials(s)
                for sid in ids:
                    result = results.get(sid)
                    ok, reasons = evidence.selection_gate(result, settings)
                    if result is not None:
                        evidence.record(s, EvidenceKind.SELECTION, report.run_id, result,
                                        trials.judge(result, settings), passed=ok, reasons=reasons)
                    if ok:
                        passing.append(sid)
                    else:
                        strategy = s.get(Strategy, sid, with_for_update=True)
                        if strategy is not None and strategy.status == StrategyStatus.CANDIDATE:
                            strategy.status, strategy.status_changed_at = StrategyStatus.INACTIVE, utcnow()
            d.update(passed=passing, failed=len(ids) - len(passing),
                     trials=trials.on(windows.selection.start, windows.selection.end)[0])
            report.update(state={"validate": passing})
    validate = set(report.get().state["validate"])
    return [c for c in report.get().state["candidates"] if c["strategy_id"] in validate]


# --- step 4's results ---------------------------------------------------------------------

def stored(sessions: sessionmaker[Session], backtest_ids: list[str]) -> int:
    if not backtest_ids:
        return 0
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(BacktestResult)
                        .where(BacktestResult.backtest_id.in_(backtest_ids))) or 0


# --- steps 7–8 ----------------------------------------------------------------------------

UNTRAINED_CONFIDENCE = 0.5  # no strategy model with labels before the validation window: the prior


def evaluate_with_bootstrap(sessions: sessionmaker[Session], settings: Settings, client: MLServiceClient,
                            redis: Redis, **kw: Any) -> tuple[RefreshOutcome, dict[str, Any] | None]:
    """``lifecycle.refresh``; when no strategy model serves yet (a fresh system), submit the
    feedback this run produced and train once. A model needs later-window labels from before
    the validation window (``windows.label_cutoff``); until there are any, the confidence is
    ``UNTRAINED_CONFIDENCE``, what a model that knows nothing would say."""
    try:
        return refresh(sessions, client, settings, lock_client=redis, **kw), None
    except ModelNotTrained:
        submit_feedback(sessions, settings, client)
        decision = maybe_retrain(sessions, client, settings, force=True, wait_s=settings.retrain_wait_s,
                                 reason="discovery bootstrap: no strategy model yet")
        return refresh(sessions, client, settings, lock_client=redis, untrained_confidence=UNTRAINED_CONFIDENCE,
                       **kw), decision.as_dict()


def finish(report: Report, sessions: sessionmaker[Session], settings: Settings, client: MLServiceClient,
           redis: Redis) -> dict[str, Any]:
    """Steps 7–8 (each skipped when an earlier attempt completed it), then the run succeeds with its counts."""
    counts: dict[str, Any] = {}
    if not report.done("evaluate_activate"):
        with report.step("evaluate_activate") as d:
            windows = run_windows(report)
            validate = report.get().state["validate"]
            with sessions() as s:
                results = evidence.results_on(s, validate, windows.validation.start, windows.validation.end)
            outcome, bootstrap = evaluate_with_bootstrap(
                sessions, settings, client, redis, statuses=(StrategyStatus.CANDIDATE,), strategy_ids=validate,
                results=results, kind=EvidenceKind.VALIDATION, run_id=report.run_id, allow=(ACTIVATE, DEACTIVATE),
                store_ranking=False)
            d.update(evaluated=len(outcome.evaluations), activated=outcome.changed_to(StrategyStatus.ACTIVE),
                     retired_candidates=outcome.changed_to(StrategyStatus.INACTIVE), unevaluable=len(outcome.unevaluable),
                     gate_passed=[e.strategy_id for e in outcome.evaluations if e.gate_passed])
            if bootstrap:
                d["bootstrap_training"] = bootstrap
    with report.step("rank_report") as d:
        outcome = refresh(sessions, client, settings, allow=(), ranking_id=report.run_id, lock_client=redis,
                          untrained_confidence=UNTRAINED_CONFIDENCE)
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
            "passed_selection": len(steps["select"]["details"]["passed"]),
            "validated": steps["validation"]["details"]["ok"],
            "activated": len(steps["evaluate_activate"]["details"]["activated"]),
            "candidates_retired": (steps["select"]["details"]["failed"]
                                   + len(steps["evaluate_activate"]["details"]["retired_candidates"])),
            "ranked": summary["evaluated"], "strategies_by_status": by_status,
        }
    report.succeed(counts, summary["top"])
    return {"run_id": report.run_id, "status": "succeeded", "counts": counts}
