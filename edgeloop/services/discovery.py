"""The discovery pipeline's steps, reported step by step (``discovery_report.Report``).

    1 submit_feedback    pending results → SubmitBacktestFeedback
    2 retrain            TrainModels if ≥ min_new_feedback samples are new (and wait for it)
    3 generate           GenerateStrategy seeded with the top results; candidates stored
    4 backtest           one ``edgeloop.backtest.run`` per candidate, a group on the workers;
                         their events travel the stream like any other result
    5 evaluate_activate  EvaluateStrategy → composite score; candidates activated or retired
    6 deactivate         active strategies below the deactivation threshold retired
    7 rank_report        every strategy ranked (ranking id = run id) and the report stored

Steps 1–3 are ``prepare``, 5–7 ``finish``. Step 4 runs on the Celery workers, so its dispatch and
the wait for it are the tasks' (``edgeloop.workers.discovery_tasks``): no worker ever blocks
waiting for others.

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
from edgeloop.core.statuses import StrategyStatus
from edgeloop.proto import ml_service_pb2 as pb
from edgeloop.schema.base import utcnow
from edgeloop.schema.pipeline import BacktestResult, Strategy
from edgeloop.schema.repository import ensure_strategies
from edgeloop.services.discovery_report import Report
from edgeloop.services.feedback import FeedbackFlusher
from edgeloop.services.lifecycle import ACTIVATE, DEACTIVATE, RefreshOutcome, refresh
from edgeloop.services.retraining import maybe_retrain

if TYPE_CHECKING:  # the Protocol only: importing edgeloop.mlclient would load gRPC
    from edgeloop.mlclient.protocol import MLServiceClient

TOP_SEEDS = 20  # as many as GenerateStrategy mutates when it picks its own


def new_run_id() -> str:
    return f"d-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


# --- steps 1–3 ----------------------------------------------------------------------------

def submit_feedback(sessions: sessionmaker[Session], settings: Settings, client: MLServiceClient) -> int:
    flusher = FeedbackFlusher.clearing_cache(sessions=sessions, settings=settings, client_factory=lambda: client)
    return flusher.flush_all(budget_s=60.0)


def seed_strategy_ids(sessions: sessionmaker[Session]) -> list[str]:
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


def generate(sessions: sessionmaker[Session], settings: Settings, client: MLServiceClient, run_id: str) -> list[dict[str, Any]]:
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
            candidates = generate(sessions, settings, client, report.run_id)
            d.update(candidates=len(candidates), seeds=seed_strategy_ids(sessions),
                     model_version=next((c["model_version"] for c in candidates if c["model_version"]), ""))
            report.update(state={"candidates": candidates})
    stored_candidates: list[dict[str, Any]] = report.get().state["candidates"]
    return stored_candidates


# --- step 4's results ---------------------------------------------------------------------

def stored(sessions: sessionmaker[Session], backtest_ids: list[str]) -> int:
    if not backtest_ids:
        return 0
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(BacktestResult)
                        .where(BacktestResult.backtest_id.in_(backtest_ids))) or 0


# --- steps 5–7 ----------------------------------------------------------------------------

def evaluate_with_bootstrap(sessions: sessionmaker[Session], settings: Settings, client: MLServiceClient,
                            redis: Redis, **kw: Any) -> tuple[RefreshOutcome, dict[str, Any] | None]:
    """``lifecycle.refresh``; when no strategy model serves yet (a fresh system), submit the
    feedback this run produced, train once and evaluate again."""
    try:
        return refresh(sessions, client, settings, lock_client=redis, **kw), None
    except ModelNotTrained:
        submit_feedback(sessions, settings, client)
        decision = maybe_retrain(sessions, client, settings, force=True, wait_s=settings.retrain_wait_s,
                                 reason="discovery bootstrap: no strategy model yet")
        return refresh(sessions, client, settings, lock_client=redis, **kw), decision.as_dict()


def finish(report: Report, sessions: sessionmaker[Session], settings: Settings, client: MLServiceClient,
           redis: Redis) -> dict[str, Any]:
    """Steps 5–7 (each skipped when an earlier attempt completed it), then the run succeeds with its counts."""
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
            outcome = refresh(sessions, client, settings, statuses=("active",), allow=(DEACTIVATE,),
                              store_ranking=False, lock_client=redis)
            d.update(evaluated=len(outcome.evaluations), deactivated=outcome.changed_to(StrategyStatus.INACTIVE))
    with report.step("rank_report") as d:
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
    report.succeed(counts, summary["top"])
    return {"run_id": report.run_id, "status": "succeeded", "counts": counts}
