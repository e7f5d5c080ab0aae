"""Live predictions for the events of a week × active strategies, stored with strategy and model
version, and their accuracy once results are known. Real PostgreSQL, Redis (the shared
prediction cache) and ML gRPC server (outcome model trained on the shipped seasons)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from edgeloop.marketdata.store import import_paths
from edgeloop.mlclient.client import MLClient
from edgeloop.schema.db import make_engine, make_sessionmaker
from edgeloop.schema.lifecycle import LivePrediction
from edgeloop.schema.market import MarketEvent, MarketResult
from edgeloop.schema.pipeline import Strategy
from tests.support.processes import ROOT
from edgeloop.services.retraining import wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AS_OF = date(2019, 3, 1)
ACTIVE = {"price_source": "MAX", "probability_source": "model", "min_edge": 0.02, "selections": ["home", "away"]}


def edgeloop(env, *args):
    proc = subprocess.run([sys.executable, "-m", "edgeloop", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_predictions_for_active_strategies_and_their_accuracy(ml):
    engine = make_engine(ml["EDGELOOP_DATABASE_URL"])
    import_paths(engine, [ROOT / "data" / "football-data" / "E0_2018-19.csv"])
    sessions = make_sessionmaker(engine)
    client = MLClient(target=ml["EDGELOOP_ML_GRPC_TARGET"])
    assert wait_for_job(client, client.train_models("outcome").job_id, 240).status == "succeeded"
    train_end = {m.version: m.train_end for m in client.list_models("outcome")}
    with sessions.begin() as s:
        s.add(Strategy(strategy_id="s-live", name="live", params=ACTIVE, status="active"))
        s.add(Strategy(strategy_id="s-off", name="off", params=ACTIVE, status="inactive"))
        week = list(s.scalars(select(MarketEvent.event_id).where(MarketEvent.event_date >= AS_OF,
                                                                 MarketEvent.event_date < AS_OF + timedelta(days=7))))
    assert week

    # When the beat task runs for that week (here once, in a CLI process)
    out = edgeloop(ml, "tasks", "run", "edgeloop.predictions.refresh", "--arg", f"as_of={AS_OF}", "--local", "--json")
    # Then every selection of every event is predicted for the active strategy only, point in time
    assert out["result"]["stored"] == 3 * len(week)
    with sessions() as s:
        rows = list(s.scalars(select(LivePrediction)))
        results = dict(s.execute(select(MarketResult.event_id, MarketResult.result)).all())
    assert {r.strategy_id for r in rows} == {"s-live"} and {r.event_id for r in rows} == set(week)
    for r in rows:
        assert r.model_version in train_end and train_end[r.model_version] < str(AS_OF)
        assert 0 < r.probability < 1
        if r.recommendation == "back":
            assert r.selection != "draw" and r.edge >= 0.02 and r.price > 1

    # Running again stores nothing twice
    assert edgeloop(ml, "tasks", "run", "edgeloop.predictions.refresh", "--arg", f"as_of={AS_OF}", "--local",
                    "--json")["result"]["stored"] == 3 * len(week)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(LivePrediction)) == len(rows)

    # And once results are known, accuracy per strategy and model version (computed here independently)
    shown = edgeloop(ml, "strategies", "show", "s-live", "--json")
    by_version = {a["model_version"]: a for a in shown["accuracy"]}
    code = {"home": "H", "draw": "D", "away": "A"}
    for version in {r.model_version for r in rows}:
        mine = [r for r in rows if r.model_version == version]
        won = [results[r.event_id] == code[r.selection] for r in mine]
        bets = [(r, w) for r, w in zip(mine, won) if r.recommendation == "back"]
        a = by_version[version]
        assert a["predictions"] == len(mine) and a["bets"] == len(bets)
        assert a["brier"] == pytest.approx(sum((r.probability - w) ** 2 for r, w in zip(mine, won)) / len(mine))
        assert a["log_loss"] == pytest.approx(-sum(math.log(r.probability if w else 1 - r.probability)
                                                   for r, w in zip(mine, won)) / len(mine))
        assert a["profit"] == pytest.approx(sum(r.price - 1 if w else -1.0 for r, w in bets))
        assert a["brier"] < 0.25  # better than a coin; the outcome model knows something
