"""The one stand-in for the ML client (``edgeloop.mlclient.protocol.MLServiceClient``) that unit
tests, and the cache's Redis-tier tests, hand to code that takes a client.

Deterministic answers, counted calls, and failures the way the real client fails (the errors
come from ``edgeloop.mlclient.client.error_for``, the one place a gRPC status becomes an error).
Tests that need the real service start it (``tests.support.processes.ml_server``).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Mapping, Sequence

import grpc

from edgeloop.core.statuses import ModelStatus, TrainingStatus
from edgeloop.mlclient.client import error_for, feedback_request_bytes
from edgeloop.proto import events_pb2
from edgeloop.proto import ml_service_pb2 as pb

STRATEGY_MODEL_VERSION = "strategy-v1"


def rpc_error(rpc: str, code: str, details: str = "no") -> Exception:
    """The error the real client raises for a call of ``rpc`` that ended with status ``code``."""
    return error_for(rpc, grpc.StatusCode[code], details)


def default_probability(request: pb.PredictionRequest, version: str) -> float:
    return (sum(map(ord, request.event_id + request.selection + version)) % 97) / 100


class FakeMLClient:
    """Answers like the ML service, from rules a test may change between calls:

    * ``models``: what ``list_models`` returns (one serving outcome version to start with);
      ``promote`` serves a new one. ``serving`` is the version predictions come from.
    * ``probability(request, version)``: a prediction's probability; None leaves that request
      unanswered (as a service without data for the event would).
    * ``confidences``: ``evaluate_strategy``'s confidence by strategy id (default 0.7).
    * ``refuse`` / ``max_bytes``: ``submit_backtest_feedback`` refuses a request carrying one of
      these backtest ids (INVALID_ARGUMENT for the whole request, as the service does) or larger
      than this many bytes (RESOURCE_EXHAUSTED, as gRPC does).
    * ``fail_with(method, error)``: every call of ``method`` raises ``error`` (None: stop).

    Counted: ``batch_calls`` (the size of each BatchPredict), ``eval_calls``,
    ``feedback_calls`` (the size of each SubmitBacktestFeedback).
    """

    def __init__(
        self,
        version: str = "v1",
        *,
        train_end: str = "",
        delay_s: float = 0.0,
        probability: Callable[[pb.PredictionRequest, str], float | None] = default_probability,
        confidences: Mapping[str, float] | None = None,
        refuse: set[str] = frozenset(),
        max_bytes: int | None = None,
    ) -> None:
        self.serving = version
        self.models = [pb.ModelVersion(model_name="outcome", version=version, status=ModelStatus.SERVING,
                                       train_end=train_end)]
        self.delay_s = delay_s
        self.probability = probability
        self.confidences = dict(confidences or {})
        self.refuse = set(refuse)
        self.max_bytes = max_bytes
        self.errors: dict[str, Exception] = {}
        self.batch_calls: list[int] = []
        self.eval_calls = 0
        self.feedback_calls: list[int] = []
        self._lock = threading.Lock()

    def fail_with(self, method: str, error: Exception | None) -> None:
        if error is None:
            self.errors.pop(method, None)
        else:
            self.errors[method] = error

    def _maybe_fail(self, method: str) -> None:
        error = self.errors.get(method)
        if error is not None:
            raise error

    def promote(self, version: str) -> None:
        for m in self.models:
            m.status = ModelStatus.RETIRED
        self.models.append(pb.ModelVersion(model_name="outcome", version=version, status=ModelStatus.SERVING))
        self.serving = version

    # --- predictions -------------------------------------------------------------------
    def answer(self, r: pb.PredictionRequest) -> pb.Prediction | None:
        version = r.model_version or self.serving
        p = self.probability(r, version)
        if p is None:
            return None
        return pb.Prediction(event_id=r.event_id, selection=r.selection, probability=p, confidence=0.5,
                             recommendation="none", model_version=version, features_hash="f" + r.event_id)

    def get_prediction(self, event_id: str, selection: str, model_version: str = "",
                       strategy_id: str = "") -> pb.Prediction:
        request = pb.PredictionRequest(event_id=event_id, selection=selection, model_version=model_version,
                                       strategy_id=strategy_id)
        return self.batch_predict([request])[0]

    def batch_predict(self, requests: Sequence[pb.PredictionRequest], timeout: float | None = None
                      ) -> list[pb.Prediction]:
        with self._lock:
            self.batch_calls.append(len(requests))
        self._maybe_fail("batch_predict")
        time.sleep(self.delay_s)
        return [a for a in map(self.answer, requests) if a is not None]

    # --- strategies ----------------------------------------------------------------------
    def evaluate_strategy(self, strategy_id: str, params: Mapping[str, Any]) -> pb.EvaluateStrategyResponse:
        with self._lock:
            self.eval_calls += 1
        self._maybe_fail("evaluate_strategy")
        return pb.EvaluateStrategyResponse(strategy_id=strategy_id, confidence=self.confidences.get(strategy_id, 0.7),
                                           expected_score=0.6, model_version=STRATEGY_MODEL_VERSION)

    def generate_strategy(self, max_candidates: int, constraints: pb.StrategyConstraints | None = None,
                          seed_strategy_ids: Sequence[str] = (), random_seed: int = 0,
                          timeout: float | None = None) -> list[pb.GeneratedStrategy]:
        self._maybe_fail("generate_strategy")
        return []

    def submit_backtest_feedback(self, results, batch_id: str) -> pb.BacktestFeedbackResponse:
        with self._lock:
            self.feedback_calls.append(len(results))
        self._maybe_fail("submit_backtest_feedback")
        rpc = "SubmitBacktestFeedback"
        size = len(feedback_request_bytes(results, batch_id))  # what the real client sends
        results = [events_pb2.BacktestFinished.FromString(r) if isinstance(r, bytes) else r for r in results]
        if self.max_bytes is not None and size > self.max_bytes:
            raise rpc_error(rpc, "RESOURCE_EXHAUSTED", f"Received message larger than max ({size} vs. {self.max_bytes})")
        if any(r.backtest_id in self.refuse for r in results):
            raise rpc_error(rpc, "INVALID_ARGUMENT", "refused")
        return pb.BacktestFeedbackResponse(accepted=len(results), stored_backtest_ids=[r.backtest_id for r in results])

    # --- models and training -------------------------------------------------------------
    def train_models(self, model_name: str = "", force: bool = False) -> pb.TrainModelsResponse:
        self._maybe_fail("train_models")
        return pb.TrainModelsResponse(job_id="job-1", status=TrainingStatus.QUEUED)

    def get_training_status(self, job_id: str) -> pb.TrainingStatusResponse:
        self._maybe_fail("get_training_status")
        return pb.TrainingStatusResponse(job_id=job_id, status=TrainingStatus.SUCCEEDED)

    def list_models(self, model_name: str = "") -> list[pb.ModelVersion]:
        self._maybe_fail("list_models")
        return [m for m in self.models if not model_name or m.model_name == model_name]

    def health(self) -> pb.HealthCheckResponse:
        self._maybe_fail("health")
        return pb.HealthCheckResponse(status="SERVING")

    def is_serving(self, service: str = "") -> bool:
        return "health" not in self.errors
