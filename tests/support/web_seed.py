"""A store that looks like the demo's after a few discovery runs, without running the demo:
strategies backtested for real on the shipped seasons (so a page's bankroll curve can be
checked against the stored result), their evidence, rankings, discovery reports, training jobs,
the registry, a stream backlog and dead letters. ``bulk`` adds synthetic strategies and results
by the ten thousand for the benchmark."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from typing import Any

import redis
from sqlalchemy.orm import Session, sessionmaker

from edgeloop.backtester.report import event_dict
from edgeloop.backtester.run import Window, backtest
from edgeloop.backtester.strategy import Strategy as StrategyParams
from edgeloop.core.events import parse_event
from edgeloop.core.settings import Settings
from edgeloop.core.statuses import EvidenceKind, StrategyStatus
from edgeloop.schema.base import utcnow
from edgeloop.schema.lifecycle import DiscoveryReport, StrategyEvidence, StrategyRanking
from edgeloop.schema.mlstore import ModelVersion, TrainingJob
from edgeloop.schema.pipeline import BacktestResult, Strategy
from edgeloop.schema.repository import insert_results, mark_processed
from edgeloop.services import evidence
from edgeloop.services.dead_letters import dead_letter_fields
from edgeloop.services.discovery_report import STEPS
from edgeloop.services.ingest import result_row

SELECTION = Window(date(2018, 7, 1), date(2022, 6, 30), ("E0",))
VALIDATION = Window(date(2022, 7, 1), date(2024, 6, 30), ("E0",))

# Market-probability strategies (the bankroll is drawn without the ML service).
PARAMS = [
    {"min_edge": 0.02, "price_source": "MAX", "staking": "flat"},
    {"min_edge": 0.04, "price_source": "MAX", "staking": "kelly", "kelly_fraction": 0.25},
    {"min_edge": 0.01, "price_source": "PS", "staking": "flat", "min_odds": 2.0},
    {"min_edge": 0.03, "price_source": "B365", "staking": "flat", "selections": ["draw"]},
    {"min_edge": 0.06, "price_source": "MAX", "staking": "flat", "max_odds": 4.0},
    {"min_edge": 0.0, "price_source": "PS", "staking": "kelly", "kelly_fraction": 0.1},
    {"min_edge": 0.05, "price_source": "WH", "staking": "flat", "selections": ["away"]},
    {"min_edge": 0.08, "price_source": "MAX", "staking": "flat"},
]
DEAD_REASONS = ["not_json", "not_json", "not_json", "missing_field", "out_of_range", "poison"]


def _stored(strategy_id: str, name: str, params: dict[str, Any], window: Window, i: int) -> dict[str, Any]:
    result = backtest(StrategyParams.from_mapping({"name": name, "strategy_id": strategy_id, **params}), window)
    event = parse_event(json.dumps(event_dict(result)))
    return result_row(event, f"{1700000000000 + i}-0", utcnow())


def seed(sessions: sessionmaker[Session], client: redis.Redis, settings: Settings) -> list[str]:
    """The demo-like store; returns the strategy ids, best composite first."""
    now = utcnow()
    rows, ids = [], []
    for i, params in enumerate(PARAMS):
        sid = f"gen-{i:03d}"
        ids.append(sid)
        rows.append(_stored(sid, f"generated #{i}", params, SELECTION, 2 * i))
        rows.append(_stored(sid, f"generated #{i}", params, VALIDATION, 2 * i + 1))
    rng = random.Random(7)
    with sessions.begin() as s:
        insert_results(s, rows)
        trials = evidence.Trials(s)
        for i, (sid, params) in enumerate(zip(ids, PARAMS)):
            ml = round(0.55 + 0.3 * rng.random(), 3)
            by_window = {r.window_start: r for r in s.query(BacktestResult).filter_by(strategy_id=sid)}
            sel, val = by_window[SELECTION.start], by_window[VALIDATION.start]
            composite = round((ml + val.backtest_score) / 2, 4)
            passed, reasons = evidence.selection_gate(sel, settings)
            verdict = trials.judge(val, settings)
            # As the lifecycle decides: only through both gates to active (on these efficient
            # leagues few or none get there), retired after failing validation.
            status = (StrategyStatus.CANDIDATE if not passed else
                      StrategyStatus.ACTIVE if verdict.passed else StrategyStatus.INACTIVE)
            s.add(Strategy(strategy_id=sid, name=f"generated #{i}", params=params, status=status,
                           source="generated", model_version="strategy-20250101T000000-abc123", ml_confidence=ml,
                           backtest_score=val.backtest_score, composite_score=composite,
                           created_at=now - timedelta(days=9), status_changed_at=now - timedelta(days=2, hours=i)))
            evidence.record(s, EvidenceKind.SELECTION, "disc-0002", sel, trials.judge(sel, settings), passed=passed,
                            reasons=reasons)
            evidence.record(s, EvidenceKind.VALIDATION, "disc-0002", val, verdict, passed=verdict.passed,
                            ml_confidence=ml, composite=composite, model_version="strategy-20250101T000000-abc123",
                            reasons=verdict.reasons)
            for day in range(6):
                conf = round(min(1.0, max(0.0, ml + rng.uniform(-0.08, 0.08))), 4)
                s.add(StrategyRanking(ranking_id=f"rank-{day}", ranked_at=now - timedelta(days=6 - day), strategy_id=sid,
                                      rank=i + 1, composite_score=round((conf + val.backtest_score) / 2, 4),
                                      ml_confidence=conf, backtest_score=val.backtest_score, total_bets=val.total_bets,
                                      backtest_id=val.backtest_id, model_version=f"strategy-v{day}",
                                      status=status))
        _discovery_reports(s, now, ids)
        _models(s, now)
    _streams(client, settings)
    return ids


def _discovery_reports(s: Session, now, ids: list[str]) -> None:
    steps = {name: {"status": "ok", "seconds": round(0.2 + i * 0.7, 2),
                    "details": {"candidates": 20} if name == "generate" else {}} for i, name in enumerate(STEPS)}
    s.add(DiscoveryReport(run_id="disc-0002", status="succeeded", started_at=now - timedelta(hours=3),
                          finished_at=now - timedelta(hours=3) + timedelta(minutes=4), steps=steps,
                          counts={"candidates": 20, "backtests": 40, "passed_selection": 8, "activated": 2},
                          top_strategies=[{"strategy_id": sid} for sid in ids[:3]], state={}))
    failed = {name: steps[name] for name in STEPS[:3]} | {STEPS[3]: {"status": "failed", "seconds": 0.4}}
    s.add(DiscoveryReport(run_id="disc-0001", status="failed", started_at=now - timedelta(days=1),
                          finished_at=now - timedelta(days=1) + timedelta(minutes=1), steps=failed,
                          failed_step=STEPS[3], error="ServiceUnavailable: no worker answered", counts={},
                          top_strategies=[], state={}))


def _models(s: Session, now) -> None:
    s.add(TrainingJob(job_id="job-0001", model_name="outcome", status="succeeded", reason="operator",
                      model_versions=["outcome-2024-25-20250101T000000-aaa111"], created_at=now - timedelta(days=3),
                      started_at=now - timedelta(days=3), finished_at=now - timedelta(days=3) + timedelta(seconds=40),
                      owner="ml-1", attempts=1))
    s.add(TrainingJob(job_id="job-0002", model_name="strategy", status="succeeded", reason="new feedback: 120",
                      model_versions=["strategy-20250101T000000-abc123"], created_at=now - timedelta(days=1),
                      started_at=now - timedelta(days=1), finished_at=now - timedelta(days=1) + timedelta(seconds=9),
                      owner="ml-1", attempts=1))
    s.add(TrainingJob(job_id="job-0003", model_name="strategy", status="failed", reason="not enough samples",
                      model_versions=[], created_at=now - timedelta(hours=1), owner="ml-2", attempts=3))
    for version, name, status, slot, metrics in [
        ("outcome-2024-25-20250101T000000-aaa111", "outcome", "serving", "2024-25",
         {"logloss": 0.9712, "logloss_market_avg": 0.9745, "logloss_pinnacle_close": 0.9650, "n_events": 380}),
        ("strategy-20250101T000000-abc123", "strategy", "serving", "", {"spearman_held_out": 0.41}),
        ("strategy-20241201T000000-def456", "strategy", "rejected", "", {"spearman_held_out": 0.33}),
    ]:
        s.add(ModelVersion(model_name=name, version=version, status=status, slot=slot, sample_count=1200,
                           metrics=metrics, config={}, artifact=b"", note="", created_at=now - timedelta(days=1)))


def _streams(client: redis.Redis, settings: Settings) -> None:
    key = settings.stream_key
    client.xgroup_create(key, settings.consumer_group, id="0", mkstream=True)
    for i in range(25):
        client.xadd(key, {"event": json.dumps({"n": i})})
    client.xreadgroup(settings.consumer_group, "web-seed", {key: ">"}, count=5)  # 5 pending, 20 lag
    for i, reason in enumerate(DEAD_REASONS):
        client.xadd(settings.dead_letter_stream, dead_letter_fields(
            reason=reason, detail=f"seeded letter {i}", original={b"event": b"{oops"}, source_stream=key,
            source_id=f"1-{i}", consumer="web-seed"))


def bulk(sessions: sessionmaker[Session], strategies: int, results: int, seed_: int = 1) -> None:
    """``strategies`` synthetic strategies with ``results`` results between them, evidence of each
    kind and five rankings each, inserted in bulk (COPY on PostgreSQL)."""
    rng = random.Random(seed_)
    now = utcnow()
    windows = [(date(2005 + y, 7, 1), date(2006 + y, 6, 30)) for y in range(20)]
    per = max(1, results // strategies)
    ids = [f"bulk-{i:06d}" for i in range(strategies)]
    with sessions.begin() as s:
        conn = s.connection()
        conn.execute(Strategy.__table__.insert(), [
            {"strategy_id": sid, "name": f"bulk {i}", "params": {"min_edge": round(rng.uniform(0, 0.1), 3),
                                                                  "price_source": "MAX"},
             "status": rng.choice(list(StrategyStatus)).value, "source": "generated",
             "ml_confidence": (ml := rng.random()), "backtest_score": (bs := rng.random()),
             "composite_score": (ml + bs) / 2, "created_at": now, "status_changed_at": now} for i, sid in enumerate(ids)])
        rows = []
        for n in range(results):
            sid = ids[n // per % strategies]
            start, end = windows[n % per % len(windows)]
            rows.append({"backtest_id": f"bulk-bt-{n:08d}", "strategy_id": sid, "strategy_name": "", "params": {},
                         "window_start": start, "window_end": end, "method": "market_baseline", "model_version": None,
                         "total_bets": rng.randint(0, 900), "roi": rng.uniform(-0.2, 0.1), "profit": rng.uniform(-900, 500),
                         "win_rate": rng.random(), "profit_factor": rng.uniform(0.5, 1.5), "sharpe_ratio": rng.gauss(0, 1),
                         "max_drawdown": rng.random(), "extra_metrics": {}, "backtest_score": rng.random(),
                         "event_pb": b"", "received_at": now})
        mark_processed(s, insert_results(s, rows).values())  # confirmed by the ML service long ago
        conn.execute(StrategyEvidence.__table__.insert(), [
            {"strategy_id": sid, "kind": kind.value, "run_id": "bulk", "backtest_id": f"bulk-bt-{i * per:08d}",
             "window_start": windows[k][0], "window_end": windows[k][1], "total_bets": 100, "roi": -0.02,
             "yield_lcb": -0.08, "deflated_sharpe": 0.1, "trials": strategies, "backtest_score": 0.4,
             "ml_confidence": 0.5, "composite_score": 0.45, "model_version": "", "passed": False,
             "reasons": ["yield lower bound -0.0800 ≤ +0.0000"], "judged_at": now}
            for i, sid in enumerate(ids) for k, kind in enumerate(EvidenceKind)])
        conn.execute(StrategyRanking.__table__.insert(), [
            {"ranking_id": f"bulk-{d}", "ranked_at": now - timedelta(days=5 - d), "strategy_id": sid, "rank": i + 1,
             "composite_score": 0.5, "ml_confidence": rng.random(), "backtest_score": 0.4, "total_bets": 100,
             "backtest_id": f"bulk-bt-{i * per:08d}", "model_version": f"v{d}", "status": "candidate"}
            for d in range(5) for i, sid in enumerate(ids)])
