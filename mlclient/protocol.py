"""What callers need of an ML client, as a ``typing.Protocol``.

``edgeloop.mlclient.MLClient`` (gRPC) implements it; code that takes a client (the lifecycle,
retraining, discovery, the feedback flusher) is typed against it, so a test may hand it any
object with these methods (``tests/support/ml.py``'s ``FakeMLClient``).

``Predicting`` is the part a consumer of predictions needs: the gRPC client and the Redis-cached
``edgeloop.mlclient.cache.CachedMLClient`` both have it.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from edgeloop.proto import events_pb2, ml_service_pb2 as pb


@runtime_checkable
class Predicting(Protocol):
    def get_prediction(self, event_id: str, selection: str, model_version: str = "",
                       strategy_id: str = "") -> pb.Prediction: ...

    def batch_predict(self, requests: Sequence[pb.PredictionRequest]) -> list[pb.Prediction]: ...

    def evaluate_strategy(self, strategy_id: str, params: Mapping[str, Any]) -> pb.EvaluateStrategyResponse: ...


@runtime_checkable
class MLServiceClient(Predicting, Protocol):
    def generate_strategy(
        self,
        max_candidates: int,
        constraints: pb.StrategyConstraints | None = None,
        seed_strategy_ids: Sequence[str] = (),
        random_seed: int = 0,
        timeout: float | None = None,
    ) -> list[pb.GeneratedStrategy]: ...

    def submit_backtest_feedback(
        self, results: Sequence[events_pb2.BacktestFinished | bytes], batch_id: str
    ) -> pb.BacktestFeedbackResponse:
        """``results`` as messages or as serialised ``BacktestFinished`` events."""
        ...

    def train_models(self, model_name: str = "", force: bool = False) -> pb.TrainModelsResponse: ...

    def get_training_status(self, job_id: str) -> pb.TrainingStatusResponse: ...

    def list_models(self, model_name: str = "") -> list[pb.ModelVersion]: ...

    def health(self) -> pb.HealthCheckResponse: ...

    def is_serving(self, service: str = "") -> bool: ...
