"""gRPC client of the ML service: one channel per process, deadlines on every call.

Processes that fork (Celery prefork) must call ``reset_ml_client()`` in the child
(``workers/signals.py`` does) because a gRPC channel does not survive a fork.
"""

from __future__ import annotations

import threading
from typing import Sequence

import grpc

from edgeloop.errors import MLServiceError, MLServiceUnavailable
from edgeloop.settings import Settings, get_settings
from proto import events_pb2, ml_service_pb2 as pb, ml_service_pb2_grpc as pb_grpc

_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}


class MLClient:
    def __init__(self, settings: Settings | None = None, target: str | None = None) -> None:
        self.settings = settings or get_settings()
        self.target = target or self.settings.ml_grpc_target
        self.channel = grpc.insecure_channel(self.target)
        self.stub = pb_grpc.MLServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def _call(self, name: str, request, timeout: float | None = None):
        try:
            return getattr(self.stub, name)(request, timeout=timeout or self.settings.ml_timeout_s)
        except grpc.RpcError as exc:
            code = exc.code()
            if code in _TRANSIENT:
                raise MLServiceUnavailable(f"{name}: {code.name}: {exc.details()}") from exc
            raise MLServiceError(f"{name}: {code.name}: {exc.details()}") from exc

    def submit_backtest_feedback(
        self, results: Sequence[events_pb2.BacktestFinished], batch_id: str
    ) -> pb.BacktestFeedbackResponse:
        return self._call("SubmitBacktestFeedback", pb.BacktestFeedbackRequest(results=results, batch_id=batch_id))

    def health(self) -> pb.HealthCheckResponse:
        return self._call("HealthCheck", pb.HealthCheckRequest())


_lock = threading.Lock()
_client: MLClient | None = None


def get_ml_client() -> MLClient:
    """The process's client, created on first use (after any fork)."""
    global _client
    with _lock:
        if _client is None:
            _client = MLClient()
        return _client


def reset_ml_client() -> None:
    """Forget the client (after a fork, or when settings changed); the next call makes a new one."""
    global _client
    with _lock:
        if _client is not None:
            try:
                _client.close()
            except Exception:  # noqa: BLE001 - a channel inherited across fork may not close cleanly
                pass
        _client = None
