"""Live predictions: upcoming events × active strategies, stored with strategy and model
version (their accuracy, once results are known, is ``accuracy.py``).

Upcoming events are the market events dated in ``[as_of, as_of + predictions_horizon_days)``
(``as_of`` defaults to today; tests and replays pass a past date, and the ML service still
answers point in time: with the newest version trained before each event). Predictions come
through the shared Redis cache (``edgeloop.mlclient.cache``), one BatchPredict for all misses: the
probability of a selection does not depend on the strategy, the recommendation does (its
selections, odds range, minimum edge and confidence, at its price source).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from edgeloop.backtester.strategy import Strategy as StrategyParams
from edgeloop.core.errors import InvalidStrategy
from edgeloop.core.settings import Settings
from edgeloop.core.statuses import StrategyStatus
from edgeloop.proto import ml_service_pb2 as pb
from edgeloop.schema.base import utcnow
from edgeloop.schema.lifecycle import LivePrediction
from edgeloop.schema.market import MarketEvent, MarketPrice
from edgeloop.schema.pipeline import Strategy

if TYPE_CHECKING:  # the Protocol only: importing edgeloop.mlclient would load gRPC
    from edgeloop.mlclient.protocol import Predicting

SELECTIONS = ("home", "draw", "away")


def _insert(session: Session) -> postgresql.Insert | sqlite.Insert:
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(
        LivePrediction.__table__)


def recommend(strategy: StrategyParams, selection: str, p: float, confidence: float, price: float | None) -> tuple[str, float | None]:
    """("back" | "none", edge) for one selection under one strategy's rules."""
    if price is None or not math.isfinite(price) or price <= 1.0:
        return "none", None
    edge = p * price - 1.0
    ok = (selection in strategy.selections and strategy.side == "back"
          and strategy.min_odds <= price <= strategy.max_odds
          and edge >= strategy.min_edge and confidence >= strategy.min_confidence)
    return ("back" if ok else "none"), edge


def refresh_predictions(sessions: sessionmaker[Session], client: Predicting, settings: Settings,
                        as_of: date | None = None) -> dict[str, int]:
    as_of = as_of or utcnow().date()
    until = as_of + timedelta(days=settings.predictions_horizon_days)
    with sessions() as s:
        events = list(s.execute(select(MarketEvent.event_id, MarketEvent.event_date)
                                .where(MarketEvent.event_date >= as_of, MarketEvent.event_date < until)))
        active = list(s.scalars(select(Strategy).where(Strategy.status == StrategyStatus.ACTIVE)))
        prices: dict[tuple[str, str], tuple[float | None, float | None, float | None]] = {}
        if events:
            for row in s.execute(select(MarketPrice).where(MarketPrice.event_id.in_([e[0] for e in events]))).scalars():
                prices[(row.event_id, row.source)] = (row.home, row.draw, row.away)
    rules: dict[str, StrategyParams] = {}
    for st in active:
        try:
            rules[st.strategy_id] = StrategyParams.from_mapping({**(st.params or {}), "name": st.name or st.strategy_id})
        except InvalidStrategy:
            continue  # a producer's own parameter language: nothing we can apply
    if not events or not rules:
        return {"events": len(events), "strategies": len(rules), "stored": 0}
    requests = [pb.PredictionRequest(event_id=eid, selection=sel) for eid, _ in events for sel in SELECTIONS]
    answers = client.batch_predict(requests)
    dates = {eid: datetime.combine(d, dtime(0), tzinfo=timezone.utc) for eid, d in events}
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for p in answers:
        if not p.model_version:
            continue
        for sid, rule in rules.items():
            quoted = prices.get((p.event_id, rule.price_source))
            price = quoted[SELECTIONS.index(p.selection)] if quoted else None
            rec, edge = recommend(rule, p.selection, p.probability, p.confidence, price)
            rows.append({"event_id": p.event_id, "selection": p.selection, "strategy_id": sid,
                         "model_version": p.model_version, "probability": p.probability,
                         "confidence": p.confidence, "price": price, "edge": edge, "recommendation": rec,
                         "event_date": dates.get(p.event_id), "predicted_at": now})
    with sessions.begin() as s:
        if rows:
            stmt = _insert(s).on_conflict_do_nothing(
                index_elements=["event_id", "selection", "strategy_id", "model_version"])
            s.connection().execute(stmt, rows)
    return {"events": len(events), "strategies": len(rules), "stored": len(rows)}
