"""What the pages show, read from the tables and Redis: plain dicts, one page's rows at a time.

Every query is bounded by a page or a per-strategy index (``strategies.composite_score``,
``*.strategy_id``), so a page costs the same with ten strategies or ten thousand
(bench/web.py measures it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence, cast

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from edgeloop.core.settings import Settings
from edgeloop.core.statuses import EvidenceKind, StrategyStatus
from edgeloop.core.streams import stream_backlog
from edgeloop.schema.base import as_utc, utcnow
from edgeloop.schema.lifecycle import DiscoveryReport, StrategyEvidence, StrategyRanking
from edgeloop.schema.mlstore import ModelVersion, TrainingJob
from edgeloop.schema.pipeline import BacktestResult, Strategy
from edgeloop.schema.repository import feedback_backlog
from edgeloop.services.discovery_report import in_pipeline_order
from edgeloop.services.evidence import VERDICT_KINDS

# Dead letters counted by reason on the pipeline page: the newest this many (XREVRANGE), so the
# page costs the same however long the dead-letter stream grew.
DEAD_LETTERS_SCANNED = 10_000


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a long list: its rows and where it sits."""

    rows: list[dict[str, Any]]
    number: int  # 1-based
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def evidence_dict(row: StrategyEvidence) -> dict[str, Any]:
    return {"kind": row.kind, "window_start": row.window_start, "window_end": row.window_end, "run_id": row.run_id,
            "backtest_id": row.backtest_id, "bets": row.total_bets, "yield": row.roi, "yield_lcb": row.yield_lcb,
            "deflated_sharpe": row.deflated_sharpe, "trials": row.trials, "backtest_score": row.backtest_score,
            "ml_confidence": row.ml_confidence, "composite_score": row.composite_score, "passed": row.passed,
            "reasons": list(row.reasons or []), "judged_at": row.judged_at}


def newest_evidence(session: Session, strategy_ids: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """strategy id → kind → its newest evidence of that kind, for a page of strategies (one query)."""
    newest = (select(func.max(StrategyEvidence.id)).where(StrategyEvidence.strategy_id.in_(list(strategy_ids)))
              .group_by(StrategyEvidence.strategy_id, StrategyEvidence.kind))
    out: dict[str, dict[str, dict[str, Any]]] = {sid: {} for sid in strategy_ids}
    for row in session.scalars(select(StrategyEvidence).where(StrategyEvidence.id.in_(newest))):
        out[row.strategy_id][row.kind] = evidence_dict(row)
    return out


def why(evidence: dict[str, dict[str, Any]]) -> str:
    """Why the status is what it is: the newest verdict (validation or live) in one line."""
    verdicts = [evidence[k] for k in VERDICT_KINDS if k in evidence]
    if not verdicts:
        if EvidenceKind.SELECTION in evidence and not evidence[EvidenceKind.SELECTION]["passed"]:
            return "selection gate: " + "; ".join(evidence[EvidenceKind.SELECTION]["reasons"])
        return "no verdict yet"
    last = max(verdicts, key=lambda e: e["judged_at"])
    if last["passed"]:
        return f"passed the {last['kind']} gate (composite {last['composite_score']:.3f})"
    return f"{last['kind']} gate: " + "; ".join(last["reasons"])


def strategy_dict(s: Strategy) -> dict[str, Any]:
    return {"strategy_id": s.strategy_id, "name": s.name, "status": s.status, "source": s.source,
            "model_version": s.model_version, "composite_score": s.composite_score, "ml_confidence": s.ml_confidence,
            "backtest_score": s.backtest_score, "created_at": s.created_at, "status_changed_at": s.status_changed_at,
            "params": s.params}


def ranked_strategies(session: Session, page: int, per_page: int, status: str | None = None) -> Page:
    """Strategies by composite score (best first, unscored last), one page, with their evidence."""
    where = [Strategy.status == status] if status else []
    total = session.scalar(select(func.count()).select_from(Strategy).where(*where)) or 0
    q = (select(Strategy).where(*where).options(defer(Strategy.params))
         .order_by(Strategy.composite_score.desc().nulls_last(), Strategy.strategy_id)
         .offset((page - 1) * per_page).limit(per_page))
    strategies = list(session.scalars(q))
    evidence = newest_evidence(session, [s.strategy_id for s in strategies])
    rows = []
    for rank, s in enumerate(strategies, (page - 1) * per_page + 1):
        found = evidence[s.strategy_id]
        rows.append({"rank": rank, "strategy_id": s.strategy_id, "name": s.name, "status": s.status,
                     "composite_score": s.composite_score, "ml_confidence": s.ml_confidence,
                     "backtest_score": s.backtest_score, "status_changed_at": s.status_changed_at,
                     "evidence": {k.value: found.get(k.value) for k in EvidenceKind}, "why": why(found)})
    return Page(rows, page, per_page, total)


def status_counts(session: Session) -> dict[str, int]:
    counts = dict(session.execute(select(Strategy.status, func.count()).group_by(Strategy.status)).tuples().all())
    return {s.value: counts.get(s.value, 0) for s in StrategyStatus}


def strategy_detail(session: Session, strategy_id: str) -> dict[str, Any] | None:
    """One strategy: its row, every evidence row, its stored backtests and its ranking history."""
    s = session.get(Strategy, strategy_id)
    if s is None:
        return None
    out = strategy_dict(s)
    evidence = list(session.scalars(select(StrategyEvidence).where(StrategyEvidence.strategy_id == strategy_id)
                                    .order_by(StrategyEvidence.judged_at, StrategyEvidence.id)))
    out["evidence"] = [evidence_dict(e) for e in evidence]
    newest: dict[str, dict[str, Any]] = {}
    for e in out["evidence"]:
        newest[e["kind"]] = e
    out["why"] = why(newest)
    results = session.execute(
        select(BacktestResult.backtest_id, BacktestResult.window_start, BacktestResult.window_end,
               BacktestResult.method, BacktestResult.model_version, BacktestResult.total_bets, BacktestResult.roi,
               BacktestResult.profit, BacktestResult.sharpe_ratio, BacktestResult.max_drawdown,
               BacktestResult.backtest_score, BacktestResult.ml_confidence, BacktestResult.composite_score,
               BacktestResult.params, BacktestResult.received_at)
        .where(BacktestResult.strategy_id == strategy_id)
        .order_by(BacktestResult.window_start, BacktestResult.id)).mappings().all()
    out["backtests"] = [dict(r) for r in results]
    rankings = session.execute(
        select(StrategyRanking.ranked_at, StrategyRanking.rank, StrategyRanking.ml_confidence,
               StrategyRanking.composite_score, StrategyRanking.backtest_score, StrategyRanking.model_version,
               StrategyRanking.status)
        .where(StrategyRanking.strategy_id == strategy_id).order_by(StrategyRanking.ranked_at)).mappings().all()
    out["rankings"] = [dict(r) for r in rankings]
    return out


def discovery_runs(session: Session, page: int, per_page: int) -> Page:
    total = session.scalar(select(func.count()).select_from(DiscoveryReport)) or 0
    rows = session.scalars(select(DiscoveryReport).options(defer(DiscoveryReport.state))
                           .order_by(DiscoveryReport.started_at.desc())
                           .offset((page - 1) * per_page).limit(per_page))
    return Page([{"run_id": r.run_id, "status": r.status, "started_at": r.started_at, "finished_at": r.finished_at,
                  "failed_step": r.failed_step, "error": r.error, "steps": in_pipeline_order(r.steps or {}),
                  "counts": r.counts or {}, "top_strategies": r.top_strategies or []} for r in rows],
                page, per_page, total)


def training_jobs(session: Session, limit: int) -> list[dict[str, Any]]:
    rows = session.scalars(select(TrainingJob).order_by(TrainingJob.created_at.desc()).limit(limit))
    return [{"job_id": j.job_id, "model": j.model_name or "all", "status": j.status, "reason": j.reason,
             "model_versions": list(j.model_versions or []), "created_at": j.created_at, "started_at": j.started_at,
             "finished_at": j.finished_at, "owner": j.owner, "attempts": j.attempts} for j in rows]


def model_versions(session: Session, limit: int) -> list[dict[str, Any]]:
    """The registry, newest first (the artifacts are not read)."""
    rows = session.scalars(select(ModelVersion).options(defer(ModelVersion.artifact))
                           .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc()).limit(limit))
    return [{"version": v.version, "model_name": v.model_name, "status": v.status, "slot": v.slot,
             "train_start": v.train_start, "train_end": v.train_end, "sample_count": v.sample_count,
             "metrics": dict(v.metrics or {}), "note": v.note, "job_id": v.job_id, "created_at": v.created_at}
            for v in rows]


def feedback_lag(session: Session) -> dict[str, Any]:
    """Results not yet confirmed by the ML service and how long the oldest has waited."""
    pending, oldest = feedback_backlog(session)
    age = None if oldest is None else (utcnow() - as_utc(oldest)).total_seconds()
    return {"pending": pending, "oldest_age_s": age}


def stream_health(client: redis.Redis, settings: Settings) -> dict[str, Any]:
    """Backlog per stream partition and dead letters by reason (the newest ``DEAD_LETTERS_SCANNED``)."""
    backlog = {key: stream_backlog(client, key, settings.consumer_group) for key in settings.stream_keys}
    total = int(client.xlen(settings.dead_letter_stream))
    reasons: Counter[str] = Counter()
    newest: datetime | None = None
    # A bytes client's RESP2 reply (redis-py types it as every shape a reply can take).
    letters = cast(list[tuple[bytes, dict[bytes, bytes]]],
                   client.xrevrange(settings.dead_letter_stream, count=DEAD_LETTERS_SCANNED))
    for _, fields in letters:
        reasons[fields.get(b"reason", b"").decode("utf-8", "replace") or "(none)"] += 1
        if newest is None and fields.get(b"dead_at_ms"):
            newest = datetime.fromtimestamp(int(fields[b"dead_at_ms"]) / 1000).astimezone()
    return {"backlog": backlog, "dead_letters": total, "dead_letters_by_reason": dict(reasons.most_common()),
            "dead_letters_scanned": min(total, DEAD_LETTERS_SCANNED), "newest_dead_letter": newest}
