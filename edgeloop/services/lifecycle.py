"""The strategy lifecycle: judge strategies on one window's evidence, activate the good, retire
the poor, rank them.

A verdict reads one stored backtest result of one window, never "the latest result of any
window": discovery judges candidates on the validation window (``results`` given by the
caller, ``kind`` = validation), the re-check judges active strategies on the newest data they
were not judged on (``kind`` = live), and a ranking reads each strategy's newest verdict
(``edgeloop.services.evidence.verdict_results``). The composite score is
``edgeloop.core.scoring.composite_score(ML confidence, backtest score)`` of that result, with the
confidence from the ML service's EvaluateStrategy. Transitions (``decide``):

* candidate/inactive → active: the result passes the gate (``edgeloop.core.evidence.gate``:
  at least ``min_bets_for_activation`` bets, a yield lower confidence bound above
  ``gate_min_yield_lcb``, a deflated Sharpe ratio for the window's trials of at least
  ``gate_min_dsr``) and its composite ≥ ``activation_threshold``;
* candidate/active → inactive: composite < ``deactivation_threshold``;
* nothing changes while a strategy has been in its state less than ``min_state_s``.

The gap between the two thresholds is the hysteresis that keeps a strategy scoring around one
threshold from flapping; ``min_state_s`` bounds how often it can change at all. Status changes,
the evidence rows and the ranking rows of one refresh are written in one transaction, under a
Redis lease so a beat refresh and a discovery run do not decide about the same strategies at once.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Collection, Iterable, Mapping

from prometheus_client import Counter
from redis import Redis
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from edgeloop.core.errors import MLServiceError, ModelNotTrained, NotFound, PermanentError
from edgeloop.core.scoring import composite_score
from edgeloop.core.settings import Settings
from edgeloop.core.statuses import StrategyStatus
from edgeloop.schema.base import as_utc, utcnow
from edgeloop.schema.lifecycle import StrategyRanking
from edgeloop.schema.pipeline import BacktestResult, Strategy
from edgeloop.services import evidence
from edgeloop.services.locks import lease

if TYPE_CHECKING:  # the Protocol only: importing edgeloop.mlclient would load gRPC
    from edgeloop.mlclient.protocol import Predicting

TRANSITIONS = Counter("edgeloop_strategy_transitions_total", "Strategy status changes by the lifecycle", ["to"])
ACTIVATE, DEACTIVATE = "activate", "deactivate"
LOCK_TTL_S = 300.0


@dataclass
class Evaluation:
    strategy_id: str
    old_status: str
    new_status: str
    ml_confidence: float
    backtest_score: float
    composite_score: float
    total_bets: int
    backtest_id: str
    model_version: str
    yield_lcb: float = -1.0
    deflated_sharpe: float = 0.0
    trials: int = 0
    gate_passed: bool = False

    @property
    def changed(self) -> bool:
        return self.old_status != self.new_status


@dataclass
class RefreshOutcome:
    ranking_id: str | None
    evaluations: list[Evaluation] = field(default_factory=list)
    unevaluable: dict[str, str] = field(default_factory=dict)  # strategy id -> reason

    def changed_to(self, status: str) -> list[str]:
        return [e.strategy_id for e in self.evaluations if e.changed and e.new_status == status]

    def summary(self, top: int = 10) -> dict[str, Any]:
        ranked = sorted(self.evaluations, key=lambda e: -e.composite_score)
        return {"ranking_id": self.ranking_id, "evaluated": len(self.evaluations),
                "activated": self.changed_to(StrategyStatus.ACTIVE), "deactivated": self.changed_to(StrategyStatus.INACTIVE),
                "unevaluable": len(self.unevaluable),
                "top": [asdict(e) for e in ranked[:top]]}


def decide(status: str, composite: float, gate_passed: bool, in_state_s: float, s: Settings,
           allow: Collection[str] = (ACTIVATE, DEACTIVATE)) -> str:
    """The next status of a strategy (pure: the whole policy is here and in the gate)."""
    if in_state_s < s.min_state_s:
        return status
    if (ACTIVATE in allow and status != StrategyStatus.ACTIVE and composite >= s.activation_threshold
            and gate_passed):
        return StrategyStatus.ACTIVE
    if DEACTIVATE in allow and status != StrategyStatus.INACTIVE and composite < s.deactivation_threshold:
        return StrategyStatus.INACTIVE
    return status


def _evaluate_one(client: Predicting, result: BacktestResult, untrained_confidence: float | None) -> tuple[float, str]:
    try:
        reply = client.evaluate_strategy(result.strategy_id, result.params or {})
    except ModelNotTrained:
        if untrained_confidence is None:
            raise
        return untrained_confidence, ""
    return float(reply.confidence), reply.model_version


def refresh(sessions: sessionmaker[Session], client: Predicting, settings: Settings, *, statuses: Collection[str] | None = None,
            strategy_ids: Collection[str] | None = None, allow: Collection[str] = (ACTIVATE, DEACTIVATE),
            results: Mapping[str, BacktestResult] | None = None, kind: str | None = None, run_id: str = "",
            untrained_confidence: float | None = None,
            store_ranking: bool = True, ranking_id: str | None = None, lock_client: Redis | None = None,
            only_if_changed: bool = False) -> RefreshOutcome:
    """Evaluate the chosen strategies, apply ``decide``, and (``store_ranking``) store every
    evaluation as one ranking. Idempotent per ``ranking_id``.

    ``results``: the result to judge each strategy on (one window); default: the one its newest
    verdict read. ``kind``: record each judgement as the strategy's evidence of that kind (run
    ``run_id``). ``untrained_confidence``: the confidence to use while no strategy model serves
    (else ``ModelNotTrained`` is raised). ``only_if_changed`` (the scheduled refresh) skips a
    ranking identical to the last one stored (same order, statuses, backtests and model
    versions): a refresh every few minutes would otherwise store the same table again and again."""
    ranking_id = ranking_id or uuid.uuid4().hex
    outcome = RefreshOutcome(ranking_id if store_ranking else None)
    with sessions() as session:
        q = select(Strategy)
        if statuses is not None:
            q = q.where(Strategy.status.in_(list(statuses)))
        if strategy_ids is not None:
            q = q.where(Strategy.strategy_id.in_(list(strategy_ids)))
        strategies = {s.strategy_id: s for s in session.scalars(q)}
        if results is None:
            results = evidence.verdict_results(session, strategies)
        trials = evidence.Trials(session)
        verdicts = {sid: trials.judge(r, settings) for sid, r in results.items() if sid in strategies}
    # The ML calls happen outside any transaction and any lock: they are the slow part.
    scored: list[tuple[Strategy, BacktestResult, float, str]] = []
    for sid, strategy in strategies.items():
        result = results.get(sid)
        if result is None:
            outcome.unevaluable[sid] = "no verdict evidence (validation or live)"
            continue
        try:
            confidence, version = _evaluate_one(client, result, untrained_confidence)
        except ModelNotTrained:
            raise
        except (PermanentError, MLServiceError) as exc:  # e.g. parameters in a producer's own language
            outcome.unevaluable[sid] = str(exc)[:200]
            continue
        scored.append((strategy, result, confidence, version))

    def apply() -> None:
        now = utcnow()
        with sessions.begin() as session:
            for strategy, result, confidence, version in scored:
                current = session.get_one(Strategy, strategy.strategy_id, with_for_update=True)
                composite = composite_score(confidence, result.backtest_score)
                in_state = (now - as_utc(current.status_changed_at)).total_seconds()
                verdict = verdicts[current.strategy_id]
                new = decide(current.status, composite, verdict.passed, in_state, settings, allow)
                ev = Evaluation(current.strategy_id, current.status, new, confidence, result.backtest_score,
                                composite, result.total_bets, result.backtest_id, version, verdict.yield_lcb,
                                verdict.deflated_sharpe, verdict.trials, verdict.passed)
                if kind is not None:
                    reasons = [*verdict.reasons, *([f"composite {composite:.3f} < {settings.activation_threshold}"]
                                                   if composite < settings.activation_threshold else [])]
                    evidence.record(session, kind, run_id, result, verdict,
                                    passed=verdict.passed and composite >= settings.activation_threshold,
                                    ml_confidence=confidence, composite=composite, model_version=version,
                                    reasons=reasons)
                outcome.evaluations.append(ev)
                current.ml_confidence, current.backtest_score, current.composite_score = (
                    confidence, result.backtest_score, composite)
                if ev.changed:
                    current.status, current.status_changed_at = new, now
                    TRANSITIONS.labels(to=new).inc()
                session.execute(update(BacktestResult).where(BacktestResult.id == result.id)
                                .values(ml_confidence=confidence, composite_score=composite))
            if store_ranking and not (only_if_changed and _same_as_last(session, outcome.evaluations)):
                _store_ranking(session, ranking_id, now, outcome.evaluations)
            elif store_ranking:
                outcome.ranking_id = None

    if lock_client is None:
        apply()
    else:
        with lease(lock_client, "lifecycle", LOCK_TTL_S, wait_s=60):
            apply()
    return outcome


def _ordered(evaluations: Iterable[Evaluation]) -> list[Evaluation]:
    return sorted(evaluations, key=lambda e: (-e.composite_score, e.strategy_id))


def _same_as_last(session: Session, evaluations: list[Evaluation]) -> bool:
    last_id = session.scalars(select(StrategyRanking.ranking_id).order_by(StrategyRanking.ranked_at.desc(),
                                                                         StrategyRanking.id.desc()).limit(1)).first()
    if last_id is None:
        return False
    last = session.execute(select(StrategyRanking.strategy_id, StrategyRanking.status, StrategyRanking.backtest_id,
                                  StrategyRanking.model_version).where(StrategyRanking.ranking_id == last_id)
                           .order_by(StrategyRanking.rank)).all()
    now = [(e.strategy_id, e.new_status, e.backtest_id, e.model_version) for e in _ordered(evaluations)]
    return [tuple(r) for r in last] == now


def _store_ranking(session: Session, ranking_id: str, now: datetime, evaluations: list[Evaluation]) -> None:
    if session.scalar(select(func.count()).select_from(StrategyRanking)
                      .where(StrategyRanking.ranking_id == ranking_id)):
        return  # this ranking was stored by an earlier attempt of the same run
    ranked = _ordered(evaluations)
    session.add_all(StrategyRanking(
        ranking_id=ranking_id, ranked_at=now, strategy_id=e.strategy_id, rank=i, composite_score=e.composite_score,
        ml_confidence=e.ml_confidence, backtest_score=e.backtest_score, total_bets=e.total_bets,
        backtest_id=e.backtest_id, model_version=e.model_version, status=e.new_status)
        for i, e in enumerate(ranked, 1))


def set_status(sessions: sessionmaker[Session], strategy_id: str, status: str) -> tuple[str, str]:
    """An operator's decision (CLI): (old, new) status. The lifecycle may revisit it after
    ``min_state_s``."""
    with sessions.begin() as session:
        s = session.get(Strategy, strategy_id, with_for_update=True)
        if s is None:
            raise NotFound(f"no strategy {strategy_id!r}")
        old = s.status
        if old != status:
            s.status, s.status_changed_at = status, utcnow()
            TRANSITIONS.labels(to=status).inc()
        return old, status
