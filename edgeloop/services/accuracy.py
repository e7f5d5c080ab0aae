"""Accuracy of the stored live predictions whose events have results, per strategy and model
version: Brier score and log-loss of the probabilities; for the recommended bets, the count,
hit rate and profit at the stored price (1 unit each).

Apart from ``predictions.py`` because it reads only the store: `edgeloop strategies show`
imports it without the backtester.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from edgeloop.schema.lifecycle import LivePrediction
from edgeloop.schema.market import MarketResult


def accuracy_metrics(session: Session, strategy_id: str | None = None) -> list[dict[str, Any]]:
    """Per (strategy, model version): settled predictions, Brier, log-loss, recommended bets, hits, profit."""
    won = case((MarketResult.result == case(
        (LivePrediction.selection == "home", "H"), (LivePrediction.selection == "draw", "D"), else_="A"), 1), else_=0)
    q = (select(LivePrediction.strategy_id, LivePrediction.model_version, LivePrediction.probability,
                LivePrediction.recommendation, LivePrediction.price, won.label("won"))
         .join(MarketResult, MarketResult.event_id == LivePrediction.event_id))
    if strategy_id:
        q = q.where(LivePrediction.strategy_id == strategy_id)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for sid, version, p, rec, price, w in session.execute(q):
        g = groups.setdefault((sid, version), {"strategy_id": sid, "model_version": version, "predictions": 0,
                                               "brier": 0.0, "log_loss": 0.0, "bets": 0, "hits": 0, "profit": 0.0})
        g["predictions"] += 1
        g["brier"] += (p - w) ** 2
        q_ = min(max(p if w else 1 - p, 1e-12), 1.0)
        g["log_loss"] -= math.log(q_)
        if rec == "back" and price:
            g["bets"] += 1
            g["hits"] += w
            g["profit"] += (price - 1.0) if w else -1.0
    out = []
    for g in groups.values():
        n, bets = g["predictions"], g["bets"]
        out.append({**g, "brier": g["brier"] / n, "log_loss": g["log_loss"] / n,
                    "hit_rate": g["hits"] / bets if bets else None, "roi": g["profit"] / bets if bets else None})
    return sorted(out, key=lambda g: (g["strategy_id"], g["model_version"]))

