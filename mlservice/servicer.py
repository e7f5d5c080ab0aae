"""The MLService servicer: each RPC validates its request, delegates, and builds the answer.

RPCs this class does not define are inherited from the generated base class, which answers
UNIMPLEMENTED: an honest "not yet" rather than a made-up result.
"""

from __future__ import annotations

from edgeloop import __version__
from edgeloop.errors import InvalidRequest
from mlservice import feedback_store, metrics
from mlservice.context import ServiceContext
from mlservice.rpc import rpc
from proto import ml_service_pb2 as pb, ml_service_pb2_grpc as pb_grpc


class MLServicer(pb_grpc.MLServiceServicer):
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def _check_batch(self, what: str, n: int) -> None:
        limit = self.ctx.settings.ml_max_batch_items
        if n > limit:
            raise InvalidRequest(f"{what} has {n} items, the limit is {limit} (EDGELOOP_ML_MAX_BATCH_ITEMS)")

    @rpc
    def HealthCheck(self, request, context):
        samples = feedback_store.count_samples(self.ctx.sessions)  # also proves the database answers
        metrics.FEEDBACK_SAMPLES.set(samples)
        return pb.HealthCheckResponse(
            status="SERVING",
            version=__version__,
            serving_models=self.serving_models(),
            feedback_samples=samples,
            uptime_s=self.ctx.uptime_s,
        )

    def serving_models(self) -> dict[str, str]:
        return {}

    @rpc
    def SubmitBacktestFeedback(self, request, context):
        self._check_batch("results", len(request.results))
        events = feedback_store.validate_results(request.results)
        outcome = feedback_store.store_feedback(self.ctx.sessions, events, request.batch_id)
        metrics.FEEDBACK_ACCEPTED.inc(outcome.accepted)
        metrics.FEEDBACK_DUPLICATES.inc(outcome.duplicates)
        return pb.BacktestFeedbackResponse(
            accepted=outcome.accepted,
            duplicates=outcome.duplicates,
            stored_backtest_ids=outcome.stored_backtest_ids,
        )

    def close(self) -> None:
        """Release what the servicer started (training threads, once there are any)."""
