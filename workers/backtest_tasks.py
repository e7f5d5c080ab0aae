"""Backtests on the workers: one task runs one strategy over one window and publishes its
``BacktestFinished`` event; ``run_many`` fans a list of strategies out as a Celery group.

Idempotent: the backtest id is derived from the strategy, window and model
(``edgeloop.backtester.report.backtest_id``), so a redelivered task publishes the same id again and the
ingest stores it once. Invalid strategies and look-ahead input are permanent errors: the task
returns the reason instead of raising, so a group of many strategies is not failed by one bad
candidate and nothing is retried that cannot succeed.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Iterable, Mapping

from celery import group

from edgeloop.backtester.ml_provider import MLServiceProvider
from edgeloop.backtester.report import backtest_id
from edgeloop.backtester.run import Window, backtest
from edgeloop.backtester.run import publish as publish_results
from edgeloop.core.errors import PermanentError
from edgeloop.services.runtime import resources
from edgeloop.workers.app import app

TASK_NAME = "edgeloop.backtest.run"


@app.task(name=TASK_NAME)
def run_backtest_task(strategy: Mapping[str, Any], start: str, end: str, leagues: list[str] | None = None,
                      publish: bool = True, source: str = "csv") -> dict[str, Any]:
    res = resources()
    try:
        window = Window(date.fromisoformat(start), date.fromisoformat(end), tuple(leagues or ("E0",)))
        predictions = None
        if strategy.get("probability_source") == "model":
            predictions = MLServiceProvider.from_settings(res.settings)
        result = backtest(strategy, window, predictions=predictions,
                          database_url=res.settings.database_url if source == "db" else None)
    except (PermanentError, ValueError) as exc:
        return {"ok": False, "error": str(exc), "strategy": dict(strategy)}
    entry = publish_results([result])[0] if publish else None
    m = result.metrics
    return {"ok": True, "backtest_id": backtest_id(result), "strategy_id": result.strategy.strategy_id,
            "stream_entry_id": entry, "total_bets": m.total_bets, "profit": m.profit, "roi": m.roi,
            "backtest_score": m.backtest_score}


def run_many(strategies: Iterable[Mapping[str, Any]], start: date, end: date, leagues: Iterable[str] = ("E0",),
             publish: bool = True):
    """A Celery group with one backtest task per strategy; ``.apply_async()`` it."""
    return group(run_backtest_task.s(dict(s), start.isoformat(), end.isoformat(), list(leagues), publish)
                 for s in strategies)
