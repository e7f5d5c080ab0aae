from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BacktestMetrics(_message.Message):
    __slots__ = ("total_bets", "roi", "profit", "win_rate", "profit_factor", "sharpe_ratio", "max_drawdown", "sortino_ratio", "turnover", "average_odds", "closing_line_value", "backtest_score", "skipped_events", "markets", "yield_se", "bet_sharpe", "return_skew", "return_kurtosis")
    TOTAL_BETS_FIELD_NUMBER: _ClassVar[int]
    ROI_FIELD_NUMBER: _ClassVar[int]
    PROFIT_FIELD_NUMBER: _ClassVar[int]
    WIN_RATE_FIELD_NUMBER: _ClassVar[int]
    PROFIT_FACTOR_FIELD_NUMBER: _ClassVar[int]
    SHARPE_RATIO_FIELD_NUMBER: _ClassVar[int]
    MAX_DRAWDOWN_FIELD_NUMBER: _ClassVar[int]
    SORTINO_RATIO_FIELD_NUMBER: _ClassVar[int]
    TURNOVER_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_ODDS_FIELD_NUMBER: _ClassVar[int]
    CLOSING_LINE_VALUE_FIELD_NUMBER: _ClassVar[int]
    BACKTEST_SCORE_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    MARKETS_FIELD_NUMBER: _ClassVar[int]
    YIELD_SE_FIELD_NUMBER: _ClassVar[int]
    BET_SHARPE_FIELD_NUMBER: _ClassVar[int]
    RETURN_SKEW_FIELD_NUMBER: _ClassVar[int]
    RETURN_KURTOSIS_FIELD_NUMBER: _ClassVar[int]
    total_bets: int
    roi: float
    profit: float
    win_rate: float
    profit_factor: float
    sharpe_ratio: float
    max_drawdown: float
    sortino_ratio: float
    turnover: float
    average_odds: float
    closing_line_value: float
    backtest_score: float
    skipped_events: int
    markets: int
    yield_se: float
    bet_sharpe: float
    return_skew: float
    return_kurtosis: float
    def __init__(self, total_bets: _Optional[int] = ..., roi: _Optional[float] = ..., profit: _Optional[float] = ..., win_rate: _Optional[float] = ..., profit_factor: _Optional[float] = ..., sharpe_ratio: _Optional[float] = ..., max_drawdown: _Optional[float] = ..., sortino_ratio: _Optional[float] = ..., turnover: _Optional[float] = ..., average_odds: _Optional[float] = ..., closing_line_value: _Optional[float] = ..., backtest_score: _Optional[float] = ..., skipped_events: _Optional[int] = ..., markets: _Optional[int] = ..., yield_se: _Optional[float] = ..., bet_sharpe: _Optional[float] = ..., return_skew: _Optional[float] = ..., return_kurtosis: _Optional[float] = ...) -> None: ...

class BacktestFinished(_message.Message):
    __slots__ = ("schema_version", "backtest_id", "strategy_id", "strategy_name", "params", "window_start", "window_end", "method", "metrics", "finished_at", "model_version")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKTEST_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    backtest_id: str
    strategy_id: str
    strategy_name: str
    params: _struct_pb2.Struct
    window_start: str
    window_end: str
    method: str
    metrics: BacktestMetrics
    finished_at: str
    model_version: str
    def __init__(self, schema_version: _Optional[int] = ..., backtest_id: _Optional[str] = ..., strategy_id: _Optional[str] = ..., strategy_name: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., window_start: _Optional[str] = ..., window_end: _Optional[str] = ..., method: _Optional[str] = ..., metrics: _Optional[_Union[BacktestMetrics, _Mapping]] = ..., finished_at: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...
