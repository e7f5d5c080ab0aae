"""A finished backtest as the ``BacktestFinished`` event, as JSON, and as a table for people.

The backtest id is derived from the strategy id and what determines the result (parameters,
window, leagues, probability model, execution terms), so running the same backtest twice publishes the same id
and the pipeline stores it once (at-least-once delivery, exactly-once effect), while two
strategies that happen to share parameters keep a result each.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from typing import Any

from edgeloop.backtester.engine import BacktestResult
from edgeloop.core.events import SCHEMA_VERSION, event_from_dict
from edgeloop.proto import events_pb2

EVENT_METRICS = ("total_bets", "roi", "profit", "win_rate", "profit_factor", "sharpe_ratio", "max_drawdown",
                 "sortino_ratio", "turnover", "average_odds", "closing_line_value", "backtest_score",
                 "markets", "yield_se", "bet_sharpe", "return_skew", "return_kurtosis")


def backtest_id(result: BacktestResult) -> str:
    key = json.dumps({"strategy_id": result.strategy.strategy_id, "params": result.strategy.params(), "start": result.window_start.isoformat(),
                      "end": result.window_end.isoformat(), "leagues": list(result.leagues),
                      "model": result.model_version, "terms": result.terms.as_dict()}, sort_keys=True)
    return "bt-" + hashlib.sha1(key.encode()).hexdigest()[:24]


def event_dict(result: BacktestResult, backtest_id_: str | None = None) -> dict[str, Any]:
    m = result.metrics
    # None and infinity (the yield error of fewer than two markets) are left out: absent.
    metrics = {name: getattr(m, name) for name in EVENT_METRICS
               if getattr(m, name) is not None and math.isfinite(getattr(m, name))}
    metrics["skipped_events"] = m.skipped_no_price + m.skipped_no_prediction + m.skipped_max_arbitrage
    params = result.strategy.params() | {"leagues": list(result.leagues)}
    # A window over several seasons is predicted by one model version per season: the event's
    # model_version (64 characters in the store) names the newest, params.model_versions lists them all.
    versions = [v for v in result.model_version.split(",") if v]
    if len(versions) > 1:
        params["model_versions"] = versions
    return {
        "schema_version": SCHEMA_VERSION,
        "backtest_id": backtest_id_ or backtest_id(result),
        "strategy_id": result.strategy.strategy_id,
        "strategy_name": result.strategy.name,
        "params": params,
        "window_start": result.window_start.isoformat(),
        "window_end": result.window_end.isoformat(),
        "method": result.strategy.method,
        "metrics": metrics,
        "finished_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "model_version": versions[-1][:64] if versions else "",
    }


def to_event(result: BacktestResult, backtest_id_: str | None = None) -> events_pb2.BacktestFinished:
    return event_from_dict(event_dict(result, backtest_id_))


def result_dict(result: BacktestResult) -> dict[str, Any]:
    """Everything the CLI's --json prints: the event's fields, every metric, the per-season
    breakdown, the execution terms and the notes."""
    return {
        **event_dict(result),
        "leagues": list(result.leagues),
        "metrics": result.metrics.as_dict(),
        "seasons": [_row(row) for row in result.seasons],
        "terms": result.terms.as_dict(),
        "notes": list(result.notes),
    }


def _row(row) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__slots__}


def format_table(result: BacktestResult) -> str:
    m = result.metrics
    pct = lambda x: f"{x * 100:+.2f}%"  # noqa: E731
    lines = [
        f"strategy {result.strategy.name} ({result.strategy.strategy_id}), {', '.join(result.leagues)} "
        f"{result.window_start} → {result.window_end}, {result.strategy.method}",
        f"  events {m.events} (skipped: {m.skipped_no_price} without a price, {m.skipped_no_prediction} without a prediction, "
        f"{m.skipped_max_arbitrage} with maximum prices under 100%)",
        f"  bankroll {result.strategy.initial_bankroll:g} → {m.final_bankroll:.2f}{'  RUINED' if m.ruined else ''}   "
        f"{m.skipped_bankroll} bets not placed for want of bankroll   commission {result.terms.commission(result.strategy):.1%}"
        + (f"   lay {result.terms.lay_spread_ticks} tick(s) above the exchange's back price"
           if result.strategy.side == "lay" else ""),
        f"  bets {m.total_bets}   turnover {m.turnover:.2f}   profit {m.profit:+.2f}   ROI (yield) {pct(m.roi)}",
        f"  win rate {m.win_rate:.3f}   average odds {m.average_odds:.2f}   profit factor {m.profit_factor:.3f}",
        f"  Sharpe {m.sharpe_ratio:.2f}   Sortino {m.sortino_ratio:.2f} (per betting day, annualised)   "
        f"max drawdown {m.max_drawdown:.1%}",
        f"  CLV {'n/a' if m.closing_line_value is None else pct(m.closing_line_value)} over {m.clv_bets} bets   "
        f"commission paid {m.commission:.2f}   backtest score {m.backtest_score:.3f}",
        *(f"  note: {note}" for note in result.notes),
        "",
        "  per season (the same parameters in every season)",
        f"  {'season':<9} {'bets':>6} {'turnover':>10} {'profit':>10} {'yield':>9} {'win rate':>9}",
    ]
    for r in result.seasons:
        lines.append(f"  {r.season:<9} {r.bets:>6} {r.turnover:>10.2f} {r.profit:>+10.2f} {pct(r.roi):>9} {r.win_rate:>9.3f}")
    lines.append(f"  {'total':<9} {m.total_bets:>6} {m.turnover:>10.2f} {m.profit:>+10.2f} {pct(m.roi):>9} {m.win_rate:>9.3f}")
    return "\n".join(lines)
