"""A strategy's evidence per window: which stored backtest a verdict reads, the gate on it, and
the ``strategy_evidence`` rows that record it (``edgeloop.core.evidence`` has the statistics).

Every verdict reads results of one window only: the selection gate the selection window's,
activation the validation window's, the re-check of an active strategy the newest data it was
not judged on. The number of trials a deflated Sharpe ratio is deflated by is the number of
distinct strategies with a stored result on that same window: every discovery run that looks
at a window again adds its candidates to the count.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Collection, Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgeloop.core.evidence import Evidence, GateVerdict, gate, sharpe_variance, shrink
from edgeloop.core.settings import Settings
from edgeloop.core.statuses import EvidenceKind
from edgeloop.schema.base import utcnow
from edgeloop.schema.lifecycle import StrategyEvidence
from edgeloop.schema.pipeline import BacktestResult

VERDICT_KINDS = (EvidenceKind.VALIDATION, EvidenceKind.LIVE)


def metrics_of(r: BacktestResult) -> dict[str, Any]:
    return {**(r.extra_metrics or {}), "total_bets": r.total_bets, "roi": r.roi}


def results_on(session: Session, strategy_ids: Iterable[str], start: date, end: date) -> dict[str, BacktestResult]:
    """Each strategy's newest stored result on exactly this window."""
    newest = (select(func.max(BacktestResult.id))
              .where(BacktestResult.strategy_id.in_(list(strategy_ids)), BacktestResult.window_start == start,
                     BacktestResult.window_end == end)
              .group_by(BacktestResult.strategy_id))
    return {r.strategy_id: r for r in session.scalars(select(BacktestResult).where(BacktestResult.id.in_(newest)))}


class Trials:
    """The strategies tried on each window: how many, and the variance of their per-bet Sharpe
    ratios (the deflated Sharpe ratio's N and V), read once per window."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._cache: dict[tuple[date, date], tuple[int, float]] = {}

    def on(self, start: date, end: date) -> tuple[int, float]:
        key = (start, end)
        if key not in self._cache:
            rows = self.session.execute(select(BacktestResult.strategy_id, BacktestResult.extra_metrics)
                                        .where(BacktestResult.window_start == start,
                                               BacktestResult.window_end == end)).all()
            sharpe = {sid: float((m or {}).get("bet_sharpe", 0.0)) for sid, m in rows}
            self._cache[key] = (len(sharpe), sharpe_variance(list(sharpe.values())))
        return self._cache[key]

    def judge(self, result: BacktestResult, settings: Settings) -> GateVerdict:
        trials, variance = self.on(result.window_start, result.window_end)
        return judge(Evidence.of(metrics_of(result)), trials, variance, settings)


def judge(e: Evidence, trials: int, trial_sharpe_variance: float, settings: Settings) -> GateVerdict:
    """The activation gate with the settings' thresholds."""
    return gate(e, trials=trials, trial_sharpe_variance=trial_sharpe_variance,
                min_bets=settings.min_bets_for_activation, z=settings.gate_yield_z,
                min_yield_lcb=settings.gate_min_yield_lcb, min_dsr=settings.gate_min_dsr)


def verdict_results(session: Session, strategy_ids: Collection[str]) -> dict[str, BacktestResult]:
    """The result each strategy's newest validation or live verdict read."""
    newest = (select(func.max(StrategyEvidence.id))
              .where(StrategyEvidence.strategy_id.in_(list(strategy_ids)), StrategyEvidence.kind.in_(VERDICT_KINDS))
              .group_by(StrategyEvidence.strategy_id))
    ids = dict(session.execute(select(StrategyEvidence.strategy_id, StrategyEvidence.backtest_id)
                               .where(StrategyEvidence.id.in_(newest))).all())
    return {r.strategy_id: r for r in session.scalars(select(BacktestResult)
                                                      .where(BacktestResult.backtest_id.in_(list(ids.values()))))}


def record(session: Session, kind: str, run_id: str, result: BacktestResult, verdict: GateVerdict, *,
           passed: bool, ml_confidence: float | None = None, composite: float | None = None,
           model_version: str = "", reasons: Iterable[str] = ()) -> None:
    """Store (or, judged again on the same window, replace) a strategy's evidence of one kind."""
    row = session.scalars(select(StrategyEvidence).where(
        StrategyEvidence.strategy_id == result.strategy_id, StrategyEvidence.kind == kind,
        StrategyEvidence.window_start == result.window_start, StrategyEvidence.window_end == result.window_end)).first()
    if row is None:
        row = StrategyEvidence(strategy_id=result.strategy_id, kind=kind, window_start=result.window_start,
                               window_end=result.window_end)
        session.add(row)
    row.run_id, row.backtest_id, row.total_bets, row.roi = run_id, result.backtest_id, result.total_bets, result.roi
    row.yield_lcb, row.deflated_sharpe, row.trials = verdict.yield_lcb, verdict.deflated_sharpe, verdict.trials
    row.backtest_score, row.ml_confidence, row.composite_score = result.backtest_score, ml_confidence, composite
    row.model_version, row.passed, row.reasons = model_version or "", passed, list(reasons)
    row.judged_at = utcnow()
    session.flush()  # a later read in the same transaction sees it (verdict_results)


def evidence_of(session: Session, strategy_id: str) -> dict[str, dict[str, Any]]:
    """A strategy's newest evidence of each kind, for people (``edgeloop strategies show``)."""
    out: dict[str, dict[str, Any]] = {}
    for row in session.scalars(select(StrategyEvidence).where(StrategyEvidence.strategy_id == strategy_id)
                               .order_by(StrategyEvidence.judged_at, StrategyEvidence.id)):
        out[row.kind] = {"window": f"{row.window_start} … {row.window_end}", "run_id": row.run_id,
                         "backtest_id": row.backtest_id, "bets": row.total_bets, "yield": row.roi,
                         "yield_lcb": row.yield_lcb, "deflated_sharpe": row.deflated_sharpe, "trials": row.trials,
                         "backtest_score": row.backtest_score, "ml_confidence": row.ml_confidence,
                         "composite_score": row.composite_score, "passed": row.passed,
                         "reasons": list(row.reasons or []), "judged_at": row.judged_at.isoformat()}
    return out


def shrunk_best(session: Session, start: date, end: date, limit: int) -> list[str]:
    """The strategies with the best scores on a window, shrunk by their bets toward the window's
    median (``edgeloop.core.evidence.shrink``): discovery's seeds."""
    rows = session.execute(select(BacktestResult.strategy_id, BacktestResult.backtest_score, BacktestResult.total_bets)
                           .where(BacktestResult.window_start == start, BacktestResult.window_end == end)).all()
    return best_shrunk([(r.strategy_id, r.backtest_score, r.total_bets) for r in rows], limit)


def best_shrunk(rows: Sequence[tuple[str, float, int]], limit: int) -> list[str]:
    """The ids of the best (id, score, bets) rows by score shrunk toward the rows' median;
    an id with several rows counts by its best."""
    if not rows:
        return []
    best: dict[str, float] = {}
    scores = sorted(score for _, score, _ in rows)
    prior = scores[len(scores) // 2]
    for sid, score, bets in rows:
        best[sid] = max(best.get(sid, 0.0), shrink(score, bets, prior))
    return [sid for sid, _ in sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def selection_gate(result: BacktestResult | None, settings: Settings) -> tuple[bool, list[str]]:
    """The selection gate on the selection window's result alone: enough bets and an in-sample
    yield above ``selection_min_yield``."""
    if result is None:
        return False, ["no result on the selection window"]
    return selection_verdict(result.total_bets, result.roi, settings)


def selection_verdict(total_bets: int, roi: float, settings: Settings) -> tuple[bool, list[str]]:
    """The selection gate on a selection-window backtest's bets and yield."""
    reasons = []
    if total_bets < settings.min_bets_for_activation:
        reasons.append(f"{total_bets} bets < {settings.min_bets_for_activation}")
    if not roi > settings.selection_min_yield:
        reasons.append(f"yield {roi:+.4f} ≤ {settings.selection_min_yield:+.4f}")
    return not reasons, reasons

