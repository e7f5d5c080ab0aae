"""No window leaks into a decision it must not make: changing any result on the validation or
final window cannot change which candidates pass selection (nor the seeds of the next search);
changing any result on the final window cannot change any activation.

The discovery steps run in-process on SQLite with the stand-in ML client (``select_candidates``,
``finish``, ``seed_strategy_ids``): each candidate has a result on each of the three windows, and
the test rewrites a window's results (score, yield, bets, per-bet statistics: everything a
verdict could read) and runs the same decisions again on a fresh database."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from edgeloop.core.settings import Settings
from edgeloop.schema.db import make_engine, make_sessionmaker, upgrade
from edgeloop.schema.lifecycle import StrategyEvidence
from edgeloop.schema.pipeline import BacktestResult, Strategy
from edgeloop.services import discovery
from edgeloop.services.discovery_report import Report
from edgeloop.services.windows import FINAL, SELECTION, VALIDATION, windows_through
from tests.support.ml import FakeMLClient

S = Settings(activation_threshold=0.5, deactivation_threshold=0.3, min_bets_for_activation=30, gate_min_dsr=0.3,
             discovery_selection_seasons=3, discovery_validation_seasons=2, discovery_final_seasons=2)
WINDOWS = windows_through("2025-26", S)
IDS = [f"c{i:02d}" for i in range(30)]


def results(seed: int) -> dict[str, dict[str, float]]:
    rng = random.Random(seed)
    return {sid: {"score": rng.uniform(0.2, 0.9), "roi": rng.uniform(-0.1, 0.15), "bets": rng.choice([5, 40, 400, 900]),
                  "sharpe": rng.uniform(-0.1, 0.3), "se": rng.uniform(0.002, 0.03)} for sid in IDS}


def decide_all(tmp_path, name: str, by_window: dict[str, dict[str, dict[str, float]]]):
    url = f"sqlite:///{tmp_path / name}.db"
    upgrade(url)
    sessions = make_sessionmaker(make_engine(url))
    with sessions.begin() as s:
        for sid in IDS:
            s.add(Strategy(strategy_id=sid, name=sid, params={"min_edge": 0.01}, status="candidate"))
            for kind, span in ((SELECTION, WINDOWS.selection), (VALIDATION, WINDOWS.validation), (FINAL, WINDOWS.final)):
                r = by_window[kind][sid]
                s.add(BacktestResult(
                    backtest_id=f"{sid}-{kind}", strategy_id=sid, params={"min_edge": 0.01}, window_start=span.start,
                    window_end=span.end, method="market_baseline", total_bets=r["bets"], roi=r["roi"], profit=0.0,
                    win_rate=0.5, profit_factor=1.0, sharpe_ratio=0.0, max_drawdown=0.1, backtest_score=r["score"],
                    extra_metrics={"markets": r["bets"], "yield_se": r["se"], "bet_sharpe": r["sharpe"]}, event_pb=b""))
    report = Report(sessions, "d-leak")
    report.open()
    candidates = [{"strategy_id": sid, "name": sid, "params": {"min_edge": 0.01}, "model_version": ""} for sid in IDS]
    report.update(state={"candidates": candidates, "windows": WINDOWS.as_dict()},
                  steps={name: {"status": "ok", "details": details} for name, details in (
                      ("submit_feedback", {"submitted": 0}), ("retrain", {}), ("generate", {"candidates": len(IDS)}),
                      ("backtest", {"ok": len(IDS), "failed": 0}), ("validation", {"ok": 0}))})
    passed = [c["strategy_id"] for c in discovery.select_candidates(report, sessions, S)]
    seeds = discovery.seed_strategy_ids(sessions, WINDOWS)
    ml = FakeMLClient(confidences={sid: 0.5 + i / 100 for i, sid in enumerate(IDS)})
    discovery.finish(report, sessions, S, ml, None)
    with sessions() as s:
        active = sorted(s.scalars(select(Strategy.strategy_id).where(Strategy.status == "active")))
        read = {(e.kind, e.window_start) for e in s.scalars(select(StrategyEvidence))}
    return passed, seeds, active, read


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_later_windows_cannot_change_earlier_decisions(tmp_path, seed):
    base = {SELECTION: results(seed), VALIDATION: results(seed + 100), FINAL: results(seed + 200)}
    passed, seeds, active, read = decide_all(tmp_path, "base", base)
    assert passed and active, "the fixture must pass some candidates and activate some, or the test proves nothing"
    assert read == {("selection", WINDOWS.selection.start), ("validation", WINDOWS.validation.start)}

    # Changing every validation and final result: the same candidates pass selection, the same seeds
    other = {SELECTION: base[SELECTION], VALIDATION: results(seed + 300), FINAL: results(seed + 400)}
    passed2, seeds2, active2, _ = decide_all(tmp_path, "other-validation", other)
    assert (passed2, seeds2) == (passed, seeds)
    assert active2 != active  # validation evidence decides activation (the check can see a change)

    # Changing every final result: the same activations
    final_only = {**base, FINAL: results(seed + 500)}
    assert decide_all(tmp_path, "other-final", final_only)[2] == active
