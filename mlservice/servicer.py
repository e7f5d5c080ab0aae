"""The MLService servicer: each RPC validates its request, delegates, and builds the answer.

RPCs this class does not define are inherited from the generated base class, which answers
UNIMPLEMENTED: an honest "not yet" rather than a made-up result.
"""

from __future__ import annotations

import functools
import logging

from edgeloop import __version__
from edgeloop.core.errors import InvalidRequest, NotFound
from edgeloop.mlservice import feedback_store, metrics, registry, strategy_training, trainers
from edgeloop.mlservice.context import ServiceContext
from edgeloop.mlservice.predictor import OutcomePredictor
from edgeloop.mlservice.rpc import rpc
from edgeloop.mlservice.strategy_service import StrategyService
from edgeloop.mlservice.training import TrainingJobs
from edgeloop.proto import ml_service_pb2 as pb, ml_service_pb2_grpc as pb_grpc
from edgeloop.schema.mlstore import TrainingJob


def _iso(value) -> str:
    return value.isoformat() if value is not None else ""


class MLServicer(pb_grpc.MLServiceServicer):
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.predictor = OutcomePredictor(ctx)
        self.strategies = StrategyService(ctx)
        self.training = TrainingJobs(ctx, {
            "outcome": functools.partial(trainers.train_outcome, ctx, self.predictor),
            "strategy": functools.partial(strategy_training.train_strategy, ctx, self.strategies),
        })

    def warm_up(self) -> None:
        """Load the market features and serving models before the first request needs them."""
        try:
            self.predictor.refresh()
            self.strategies.refresh()
        except Exception:  # noqa: BLE001 - a request will try again and report the error
            logging.getLogger("edgeloop.mlservice").exception("warm-up failed")

    def close(self) -> None:
        """Stop the training thread (a job in progress finishes in the background, daemon)."""
        self.training.close()

    def _check_batch(self, what: str, n: int) -> None:
        limit = self.ctx.settings.ml_max_batch_items
        if n > limit:
            raise InvalidRequest(f"{what} has {n} items, the limit is {limit} (EDGELOOP_ML_MAX_BATCH_ITEMS)")

    def serving_models(self) -> dict[str, str]:
        """Model name → serving version (the outcome model: the newest season's)."""
        out = {}
        for name in registry.MODEL_NAMES:
            ids = registry.serving_version_ids(self.ctx.sessions, name)  # no artifacts loaded
            if ids:
                out[name] = ids[-1]
        return out

    # --- health and feedback ---------------------------------------------------------------

    @rpc
    def HealthCheck(self, request, context):
        samples = feedback_store.count_samples(self.ctx.sessions)  # also proves the database answers
        metrics.FEEDBACK_SAMPLES.set(samples)
        return pb.HealthCheckResponse(
            status="SERVING", version=__version__, serving_models=self.serving_models(),
            feedback_samples=samples, uptime_s=self.ctx.uptime_s,
        )

    @rpc
    def SubmitBacktestFeedback(self, request, context):
        self._check_batch("results", len(request.results))
        if len(request.batch_id) > 128:
            raise InvalidRequest("batch_id is longer than 128 characters")
        events = feedback_store.validate_results(request.results)
        outcome = feedback_store.store_feedback(self.ctx.engine, events, request.batch_id)
        metrics.FEEDBACK_ACCEPTED.inc(outcome.accepted)
        metrics.FEEDBACK_DUPLICATES.inc(outcome.duplicates)
        return pb.BacktestFeedbackResponse(
            accepted=outcome.accepted, duplicates=outcome.duplicates,
            stored_backtest_ids=outcome.stored_backtest_ids,
        )

    # --- predictions ---------------------------------------------------------------------

    @rpc
    def GetPrediction(self, request, context):
        (prediction,) = self.predictor.predict([request])
        metrics.PREDICTIONS.inc()
        return pb.PredictionResponse(prediction=prediction)

    @rpc
    def BatchPredict(self, request, context):
        self._check_batch("requests", len(request.requests))
        response = pb.BatchPredictResponse()
        if request.requests:
            self.predictor.predict(request.requests, response.predictions)
        metrics.PREDICTIONS.inc(len(response.predictions))
        return response

    # --- strategies ------------------------------------------------------------------------

    @rpc
    def EvaluateStrategy(self, request, context):
        return self.strategies.evaluate(request)

    @rpc
    def GenerateStrategy(self, request, context):
        return self.strategies.generate(request)

    @rpc
    def GetFeatures(self, request, context):
        return self.strategies.features(request)

    # --- training and the registry -------------------------------------------------------

    @staticmethod
    def _job_proto(job: TrainingJob) -> pb.TrainingStatusResponse:
        return pb.TrainingStatusResponse(
            job_id=job.job_id, status=job.status, reason=job.reason, model_name=job.model_name,
            model_versions=job.model_versions or [], created_at=_iso(job.created_at),
            finished_at=_iso(job.finished_at))

    @rpc
    def TrainModels(self, request, context):
        job = self.training.submit(request.model_name, request.force)
        return pb.TrainModelsResponse(job_id=job.job_id, status=job.status)

    @rpc
    def GetTrainingStatus(self, request, context):
        return self._job_proto(self.training.get(request.job_id))

    @rpc
    def GetModelMetrics(self, request, context):
        registry.check_model_name(request.model_name)
        if request.version:
            row = registry.get_version(self.ctx.sessions, request.version)
            if row.model_name != request.model_name:
                raise InvalidRequest(f"version {request.version} belongs to model {row.model_name!r}")
        else:
            ids = registry.serving_version_ids(self.ctx.sessions, request.model_name)
            if not ids:
                raise NotFound(f"model {request.model_name!r} has no serving version yet; train it")
            row = registry.get_version(self.ctx.sessions, ids[-1])
        return pb.ModelMetricsResponse(model=registry.to_proto(row))

    @rpc
    def ListModels(self, request, context):
        registry.check_model_name(request.model_name, allow_empty=True)
        rows = registry.list_versions(self.ctx.sessions, request.model_name)
        return pb.ListModelsResponse(models=[registry.to_proto(r) for r in rows])
