"""Builders of test messages."""

from __future__ import annotations

from edgeloop.proto import events_pb2


def finished(backtest_id: str, *, params: dict | None = None, roi: float = 0.01, sharpe: float = 0.3,
             strategy_id: str = "s-1", win_rate: float = 0.4, window: tuple[str, str] = ("2019-08-01", "2020-05-31"),
             ) -> events_pb2.BacktestFinished:
    msg = events_pb2.BacktestFinished(
        schema_version=1, backtest_id=backtest_id, strategy_id=strategy_id, method="market_baseline",
        window_start=window[0], window_end=window[1],
    )
    msg.params.update(params or {"min_edge": 0.02, "staking": "flat"})
    m = msg.metrics
    m.total_bets, m.roi, m.profit, m.win_rate = 120, roi, roi * 120, win_rate
    m.profit_factor, m.sharpe_ratio, m.max_drawdown = 1.05, sharpe, 0.2
    return msg
