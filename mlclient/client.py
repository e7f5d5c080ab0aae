"""gRPC client of the ML service: the one way every process calls it.

* One channel per process, made lazily on the first call. A gRPC channel does not survive
  ``fork()``: Celery prefork children call ``reset_ml_client()`` in ``worker_process_init``,
  and the client also notices a changed pid and makes a fresh channel, in case a process
  forked without the signal.
* Every call has a deadline (``ml_timeout_s`` unless the method passes its own).
* UNAVAILABLE is retried with backoff by gRPC itself (service config, see ``channel.py``).
* A circuit breaker (``breaker.py``) fails fast with ``MLServiceUnavailable`` once
  ``ml_breaker_failures`` calls in a row found the service unreachable, and lets one probe
  through every ``ml_breaker_reset_s``.
* Latency and outcome of every call are Prometheus metrics by RPC (``metrics.py``).

Errors (``error_for``): ``MLServiceUnavailable`` (transient: retry later) for an unreachable,
overloaded or too slow service and for an open breaker; ``MLMessageTooLarge`` for a request
over a message size limit; the class the service raised (``InvalidRequest``, ``NotFound``,
``ModelNotTrained`` …), read from the status and its reason through the one table in
``edgeloop.core.error_codes``; ``MLServiceError`` for a status with no class of its own. Each
carries the gRPC status code's name as ``code``.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from typing import Any, Callable, Mapping, Sequence

import grpc
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgeloop.core import error_codes
from edgeloop.core.errors import (
    EdgeloopError,
    MLMessageTooLarge,
    MLRateLimited,
    MLServiceError,
    MLServiceUnavailable,
)
from edgeloop.core.metrics import rpc_latency
from edgeloop.core.settings import Settings, get_settings
from edgeloop.mlclient import metrics
from edgeloop.mlclient.breaker import CLOSED, CircuitBreaker
from edgeloop.mlclient.channel import call_metadata, make_channel
from edgeloop.mlclient.wire import varint
from edgeloop.proto import events_pb2
from edgeloop.proto import ml_service_pb2 as pb
from edgeloop.proto import ml_service_pb2_grpc as pb_grpc

# Codes that mean "the service is not there right now": retrying later may succeed, and a run
# of them opens the breaker. Everything else means the service is up and said no.
_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}

# gRPC core's wording when a message exceeds max_(send|receive)_message_length; RESOURCE_EXHAUSTED
# without it is an overloaded server (quota, memory), which is transient.
_TOO_LARGE = "larger than max"


def error_for(rpc: str, code: grpc.StatusCode, details: str | None, reason: str | None = None,
              retry_after_s: float | None = None) -> EdgeloopError:
    """The edgeloop error for a failed call (pure: the one place a status becomes an error).

    Every transient status is ``MLServiceUnavailable``, whatever its reason, so the breaker and
    the callers that wait for the service see one class; a rate limit's refusal (with a
    retry-after) is its subclass ``MLRateLimited``."""
    message = f"{rpc}: {code.name}: {details}"
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _TOO_LARGE in (details or ""):
        return MLMessageTooLarge(message, code.name)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and retry_after_s is not None:
        return MLRateLimited(message, retry_after_s, code.name)
    if code in _TRANSIENT:
        return MLServiceUnavailable(message, code.name)
    row = error_codes.row_for_status(code.name, reason)
    if row is None:
        return MLServiceError(message, code.name)
    error = row.error(message)
    error.code = code.name
    return error


_FEEDBACK_PATH = f"/{pb.DESCRIPTOR.services_by_name['MLService'].full_name}/SubmitBacktestFeedback"
_RESULTS_TAG = bytes([pb.BacktestFeedbackRequest.RESULTS_FIELD_NUMBER << 3 | 2])  # wire type 2: length-delimited
_BATCH_ID_TAG = bytes([pb.BacktestFeedbackRequest.BATCH_ID_FIELD_NUMBER << 3 | 2])


def feedback_request_bytes(results: Sequence[events_pb2.BacktestFinished | bytes], batch_id: str) -> bytes:
    """A serialised ``BacktestFeedbackRequest`` (pure). On the wire a repeated message field is,
    for each element, its tag, its length and its bytes: results given as the bytes a consumer
    stored (``event_pb``) are sent as they are, without building a request message or
    serialising them a second time."""
    parts: list[bytes] = []
    for result in results:
        raw = result if isinstance(result, bytes) else result.SerializeToString()
        parts += (_RESULTS_TAG, varint(len(raw)), raw)
    key = batch_id.encode()
    if key:  # proto3 leaves an empty string out
        parts += (_BATCH_ID_TAG, varint(len(key)), key)
    return b"".join(parts)


@functools.cache
def _requests(rpc: str, outcome: str) -> Any:
    """``ML_REQUESTS`` of one RPC and outcome, looked up once (as ``rpc_latency``)."""
    return metrics.ML_REQUESTS.labels(rpc=rpc, outcome=outcome)


def _breaker_changed(state: str) -> None:
    metrics.ML_BREAKER_TRANSITIONS.labels(state=state).inc()
    metrics.ML_BREAKER_OPEN.set(0 if state == CLOSED else 1)


class MLClient:
    def __init__(self, settings: Settings | None = None, target: str | None = None) -> None:
        self.settings = settings or get_settings()
        self.target = target or self.settings.ml_grpc_target
        self.breaker = CircuitBreaker(
            self.settings.ml_breaker_failures, self.settings.ml_breaker_reset_s, on_change=_breaker_changed
        )
        self._metadata = call_metadata(self.settings)
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._channel: grpc.Channel | None = None
        self._stub: pb_grpc.MLServiceStub | None = None
        self._health_stub: health_pb2_grpc.HealthStub | None = None
        # Methods whose requests arrive serialised (sent as given: no serializer).
        self._serialised: dict[str, Callable[..., Any]] = {}

    # --- the channel ---------------------------------------------------------------------
    def _stubs(self) -> tuple[pb_grpc.MLServiceStub, health_pb2_grpc.HealthStub]:
        with self._lock:
            if self._channel is None or self._pid != os.getpid():
                # After a fork the inherited channel is unusable; do not close it (that would
                # touch the parent's state), just drop it.
                self._channel = make_channel(self.target, self.settings)
                self._metadata = call_metadata(self.settings)  # names this process
                self._stub = pb_grpc.MLServiceStub(self._channel)
                self._health_stub = health_pb2_grpc.HealthStub(self._channel)
                self._serialised = {"SubmitBacktestFeedback": self._channel.unary_unary(
                    _FEEDBACK_PATH, request_serializer=None,
                    response_deserializer=pb.BacktestFeedbackResponse.FromString)}
                self._pid = os.getpid()
            assert self._stub is not None and self._health_stub is not None
            return self._stub, self._health_stub

    def close(self) -> None:
        with self._lock:
            if self._channel is not None and self._pid == os.getpid():
                self._channel.close()
            self._channel = self._stub = self._health_stub = None
            self._serialised = {}

    # --- one call ------------------------------------------------------------------------
    def _call(self, rpc: str, request: Any, timeout: float | None = None) -> Any:
        """Call ``rpc`` (a method of MLService, or ``health.Check`` of grpc.health.v1).

        Refused by the service's rate limit, the call waits the retry-after it was given and is
        made again, as long as that fits in its deadline; otherwise ``MLRateLimited`` is raised."""
        budget = timeout or self.settings.ml_timeout_s
        deadline = time.monotonic() + budget
        while True:
            try:
                return self._call_once(rpc, request, budget)
            except MLRateLimited as limited:
                budget = deadline - time.monotonic() - limited.retry_after_s
                if budget < 0.05:  # too little left for a call after the wait
                    raise
                time.sleep(limited.retry_after_s)

    def _call_once(self, rpc: str, request: Any, timeout: float) -> Any:
        if not self.breaker.allow():
            _requests(rpc, "rejected").inc()
            raise MLServiceUnavailable(
                f"{rpc}: circuit breaker open, ML service at {self.target} presumed down "
                f"(next probe in {self.breaker.retry_after_s():.1f} s)"
            )
        stub, health_stub = self._stubs()
        method = self._serialised.get(rpc) or (health_stub.Check if rpc == "health.Check" else getattr(stub, rpc))
        started = time.perf_counter()
        outcome = "ok"
        try:
            return method(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            trailers = exc.trailing_metadata()
            error = error_for(rpc, exc.code(), exc.details(), error_codes.reason_in(trailers),
                              error_codes.retry_after_in(trailers))
            if isinstance(error, MLRateLimited):
                outcome = "rate_limited"  # the service is up and answering: not a breaker failure
            else:
                outcome = "unavailable" if isinstance(error, MLServiceUnavailable) else "error"
            raise error from exc
        except BaseException:
            outcome = "error"
            raise
        finally:
            # Always settle the breaker, even on an unexpected exception, or a half-open
            # probe would be "in flight" forever and the circuit would never close.
            if outcome == "unavailable":
                self.breaker.record_failure()
            else:
                self.breaker.record_success()
            rpc_latency("client", rpc).observe(time.perf_counter() - started)
            _requests(rpc, outcome).inc()

    # --- predictions ---------------------------------------------------------------------
    def get_prediction(
        self, event_id: str, selection: str, model_version: str = "", strategy_id: str = ""
    ) -> pb.Prediction:
        request = pb.PredictionRequest(
            event_id=event_id, selection=selection, model_version=model_version, strategy_id=strategy_id
        )
        return self._call("GetPrediction", request).prediction

    def batch_predict(self, requests: Sequence[pb.PredictionRequest], timeout: float | None = None) -> list[pb.Prediction]:
        return list(self._call("BatchPredict", pb.BatchPredictRequest(requests=requests), timeout).predictions)

    # --- strategies ----------------------------------------------------------------------
    def evaluate_strategy(self, strategy_id: str, params: Mapping[str, Any]) -> pb.EvaluateStrategyResponse:
        request = pb.EvaluateStrategyRequest(strategy_id=strategy_id, params=to_struct(params))
        return self._call("EvaluateStrategy", request)

    def generate_strategy(
        self,
        max_candidates: int,
        constraints: pb.StrategyConstraints | None = None,
        seed_strategy_ids: Sequence[str] = (),
        random_seed: int = 0,
        timeout: float | None = None,
    ) -> list[pb.GeneratedStrategy]:
        request = pb.GenerateStrategyRequest(
            max_candidates=max_candidates,
            constraints=constraints,
            seed_strategy_ids=seed_strategy_ids,
            random_seed=random_seed,
        )
        return list(self._call("GenerateStrategy", request, timeout).strategies)

    def submit_backtest_feedback(
        self, results: Sequence[events_pb2.BacktestFinished | bytes], batch_id: str
    ) -> pb.BacktestFeedbackResponse:
        """Results as messages or as the bytes of serialised ``BacktestFinished`` events."""
        return self._call("SubmitBacktestFeedback", feedback_request_bytes(results, batch_id))

    # --- models and training -------------------------------------------------------------
    def train_models(self, model_name: str = "", force: bool = False) -> pb.TrainModelsResponse:
        return self._call("TrainModels", pb.TrainModelsRequest(model_name=model_name, force=force))

    def get_training_status(self, job_id: str) -> pb.TrainingStatusResponse:
        return self._call("GetTrainingStatus", pb.TrainingStatusRequest(job_id=job_id))

    def list_models(self, model_name: str = "") -> list[pb.ModelVersion]:
        return list(self._call("ListModels", pb.ListModelsRequest(model_name=model_name)).models)

    # --- health --------------------------------------------------------------------------
    def health(self) -> pb.HealthCheckResponse:
        """The service's own HealthCheck RPC: status, software version, serving models."""
        return self._call("HealthCheck", pb.HealthCheckRequest())

    def is_serving(self, service: str = "") -> bool:
        """The standard ``grpc.health.v1`` check ("" = the whole server). False when unreachable."""
        try:
            reply = self._call("health.Check", health_pb2.HealthCheckRequest(service=service))
        except MLServiceUnavailable:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING


def to_struct(params: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(dict(params))
    return struct

