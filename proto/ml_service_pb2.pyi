from google.protobuf import struct_pb2 as _struct_pb2
from edgeloop.proto import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PredictionRequest(_message.Message):
    __slots__ = ("event_id", "selection", "model_version", "strategy_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SELECTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    selection: str
    model_version: str
    strategy_id: str
    def __init__(self, event_id: _Optional[str] = ..., selection: _Optional[str] = ..., model_version: _Optional[str] = ..., strategy_id: _Optional[str] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("event_id", "selection", "probability", "confidence", "recommendation", "model_version", "features_hash")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SELECTION_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_HASH_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    selection: str
    probability: float
    confidence: float
    recommendation: str
    model_version: str
    features_hash: str
    def __init__(self, event_id: _Optional[str] = ..., selection: _Optional[str] = ..., probability: _Optional[float] = ..., confidence: _Optional[float] = ..., recommendation: _Optional[str] = ..., model_version: _Optional[str] = ..., features_hash: _Optional[str] = ...) -> None: ...

class PredictionResponse(_message.Message):
    __slots__ = ("prediction",)
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    prediction: Prediction
    def __init__(self, prediction: _Optional[_Union[Prediction, _Mapping]] = ...) -> None: ...

class BatchPredictRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[PredictionRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[PredictionRequest, _Mapping]]] = ...) -> None: ...

class BatchPredictResponse(_message.Message):
    __slots__ = ("predictions",)
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    def __init__(self, predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ...) -> None: ...

class EvaluateStrategyRequest(_message.Message):
    __slots__ = ("strategy_id", "params")
    STRATEGY_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    strategy_id: str
    params: _struct_pb2.Struct
    def __init__(self, strategy_id: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class EvaluateStrategyResponse(_message.Message):
    __slots__ = ("strategy_id", "confidence", "expected_score", "uncertainty", "model_version")
    STRATEGY_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SCORE_FIELD_NUMBER: _ClassVar[int]
    UNCERTAINTY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    strategy_id: str
    confidence: float
    expected_score: float
    uncertainty: float
    model_version: str
    def __init__(self, strategy_id: _Optional[str] = ..., confidence: _Optional[float] = ..., expected_score: _Optional[float] = ..., uncertainty: _Optional[float] = ..., model_version: _Optional[str] = ...) -> None: ...

class BacktestFeedbackRequest(_message.Message):
    __slots__ = ("results", "batch_id")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_events_pb2.BacktestFinished]
    batch_id: str
    def __init__(self, results: _Optional[_Iterable[_Union[_events_pb2.BacktestFinished, _Mapping]]] = ..., batch_id: _Optional[str] = ...) -> None: ...

class BacktestFeedbackResponse(_message.Message):
    __slots__ = ("accepted", "duplicates", "stored_backtest_ids")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    STORED_BACKTEST_IDS_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    duplicates: int
    stored_backtest_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., stored_backtest_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class StrategyConstraints(_message.Message):
    __slots__ = ("risk_level", "target_return", "max_drawdown", "min_win_rate")
    RISK_LEVEL_FIELD_NUMBER: _ClassVar[int]
    TARGET_RETURN_FIELD_NUMBER: _ClassVar[int]
    MAX_DRAWDOWN_FIELD_NUMBER: _ClassVar[int]
    MIN_WIN_RATE_FIELD_NUMBER: _ClassVar[int]
    risk_level: str
    target_return: float
    max_drawdown: float
    min_win_rate: float
    def __init__(self, risk_level: _Optional[str] = ..., target_return: _Optional[float] = ..., max_drawdown: _Optional[float] = ..., min_win_rate: _Optional[float] = ...) -> None: ...

class GenerateStrategyRequest(_message.Message):
    __slots__ = ("max_candidates", "constraints", "seed_strategy_ids", "random_seed")
    MAX_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    SEED_STRATEGY_IDS_FIELD_NUMBER: _ClassVar[int]
    RANDOM_SEED_FIELD_NUMBER: _ClassVar[int]
    max_candidates: int
    constraints: StrategyConstraints
    seed_strategy_ids: _containers.RepeatedScalarFieldContainer[str]
    random_seed: int
    def __init__(self, max_candidates: _Optional[int] = ..., constraints: _Optional[_Union[StrategyConstraints, _Mapping]] = ..., seed_strategy_ids: _Optional[_Iterable[str]] = ..., random_seed: _Optional[int] = ...) -> None: ...

class GeneratedStrategy(_message.Message):
    __slots__ = ("strategy_id", "name", "params", "expected_score", "uncertainty", "confidence", "model_version")
    STRATEGY_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SCORE_FIELD_NUMBER: _ClassVar[int]
    UNCERTAINTY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    strategy_id: str
    name: str
    params: _struct_pb2.Struct
    expected_score: float
    uncertainty: float
    confidence: float
    model_version: str
    def __init__(self, strategy_id: _Optional[str] = ..., name: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., expected_score: _Optional[float] = ..., uncertainty: _Optional[float] = ..., confidence: _Optional[float] = ..., model_version: _Optional[str] = ...) -> None: ...

class GenerateStrategyResponse(_message.Message):
    __slots__ = ("strategies",)
    STRATEGIES_FIELD_NUMBER: _ClassVar[int]
    strategies: _containers.RepeatedCompositeFieldContainer[GeneratedStrategy]
    def __init__(self, strategies: _Optional[_Iterable[_Union[GeneratedStrategy, _Mapping]]] = ...) -> None: ...

class GetFeaturesRequest(_message.Message):
    __slots__ = ("backtest_id",)
    BACKTEST_ID_FIELD_NUMBER: _ClassVar[int]
    backtest_id: str
    def __init__(self, backtest_id: _Optional[str] = ...) -> None: ...

class GetFeaturesResponse(_message.Message):
    __slots__ = ("backtest_id", "features", "feature_names")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    BACKTEST_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    backtest_id: str
    features: _containers.ScalarMap[str, float]
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, backtest_id: _Optional[str] = ..., features: _Optional[_Mapping[str, float]] = ..., feature_names: _Optional[_Iterable[str]] = ...) -> None: ...

class HealthCheckRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthCheckResponse(_message.Message):
    __slots__ = ("status", "version", "serving_models", "feedback_samples", "uptime_s")
    class ServingModelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVING_MODELS_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    status: str
    version: str
    serving_models: _containers.ScalarMap[str, str]
    feedback_samples: int
    uptime_s: float
    def __init__(self, status: _Optional[str] = ..., version: _Optional[str] = ..., serving_models: _Optional[_Mapping[str, str]] = ..., feedback_samples: _Optional[int] = ..., uptime_s: _Optional[float] = ...) -> None: ...

class TrainModelsRequest(_message.Message):
    __slots__ = ("model_name", "force")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    force: bool
    def __init__(self, model_name: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class TrainModelsResponse(_message.Message):
    __slots__ = ("job_id", "status")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class TrainingStatusRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class TrainingStatusResponse(_message.Message):
    __slots__ = ("job_id", "status", "reason", "model_name", "model_versions", "created_at", "finished_at")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    reason: str
    model_name: str
    model_versions: _containers.RepeatedScalarFieldContainer[str]
    created_at: str
    finished_at: str
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., model_name: _Optional[str] = ..., model_versions: _Optional[_Iterable[str]] = ..., created_at: _Optional[str] = ..., finished_at: _Optional[str] = ...) -> None: ...

class ModelMetricsRequest(_message.Message):
    __slots__ = ("model_name", "version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: str
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("model_name", "version", "status", "train_start", "train_end", "sample_count", "metrics", "created_at")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_START_FIELD_NUMBER: _ClassVar[int]
    TRAIN_END_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    version: str
    status: str
    train_start: str
    train_end: str
    sample_count: int
    metrics: _containers.ScalarMap[str, float]
    created_at: str
    def __init__(self, model_name: _Optional[str] = ..., version: _Optional[str] = ..., status: _Optional[str] = ..., train_start: _Optional[str] = ..., train_end: _Optional[str] = ..., sample_count: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., created_at: _Optional[str] = ...) -> None: ...

class ModelMetricsResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("model_name",)
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    def __init__(self, model_name: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ...) -> None: ...
