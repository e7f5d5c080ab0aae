"""EvaluateStrategy, GenerateStrategy and GetFeatures on top of the serving strategy model."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from google.protobuf import json_format
from sqlalchemy import select

from edgeloop.core.errors import ConfigurationError, InvalidRequest, ModelNotTrained, NotFound
from edgeloop.mlservice import feedback_store, registry
from edgeloop.mlservice.context import ServiceContext
from edgeloop.mlservice.strategy_generation import Constraints, candidate_id, generate, seed_from
from edgeloop.mlservice.strategy_model import FEATURE_NAMES, MODEL_NAME, StrategyModel, canonical_params, encode
from edgeloop.proto import ml_service_pb2 as pb
from edgeloop.schema.mlstore import FeedbackSample
from edgeloop.services.windows import current_windows

REGISTRY_POLL_S = 2.0
SEED_TOP_K = 20  # best backtested strategies that GenerateStrategy mutates when no seeds are named
MAX_PARAMS = 64


@dataclass(frozen=True)
class Serving:
    version: str
    model: StrategyModel


def params_from_struct(struct) -> dict[str, Any]:
    params = json_format.MessageToDict(struct)
    if not params:
        raise InvalidRequest("params is empty")
    if len(params) > MAX_PARAMS:
        raise InvalidRequest(f"params has {len(params)} keys, the limit is {MAX_PARAMS}")
    return canonical_params(params)


class StrategyService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._serving: Serving | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def refresh(self) -> Serving | None:
        with self._lock:
            rows = registry.serving_versions(self.ctx.sessions, MODEL_NAME)
            self._serving = (Serving(rows[-1].version, StrategyModel.from_bytes(rows[-1].artifact, rows[-1].version))
                             if rows else None)
            self._checked = time.monotonic()
            return self._serving

    def serving(self) -> Serving | None:
        if time.monotonic() - self._checked > REGISTRY_POLL_S:
            ids = registry.serving_version_ids(self.ctx.sessions, MODEL_NAME)
            current = self._serving.version if self._serving else None
            if (ids[-1] if ids else None) != current:
                return self.refresh()
            self._checked = time.monotonic()
        return self._serving

    # --- RPCs ------------------------------------------------------------------------------

    def evaluate(self, request: pb.EvaluateStrategyRequest) -> pb.EvaluateStrategyResponse:
        params = params_from_struct(request.params)
        serving = self.serving()
        if serving is None:
            raise ModelNotTrained("the strategy model is not trained yet: submit feedback, then TrainModels")
        est = serving.model.estimate([params])
        return pb.EvaluateStrategyResponse(
            strategy_id=request.strategy_id, confidence=float(est.confidence[0]),
            expected_score=float(est.mean[0, 0]), uncertainty=float(est.spread[0, 0]), model_version=serving.version)

    def _seeds(self, seed_ids: list[str]) -> list[Mapping[str, Any]]:
        with self.ctx.sessions() as s:
            q = select(FeedbackSample.params)
            if seed_ids:
                q = q.where(FeedbackSample.strategy_id.in_(seed_ids))
            else:
                # Its own pick reads only results from before the validation window: seeds
                # chosen on that window's results would let it choose what it then judges.
                try:
                    cutoff = current_windows(self.ctx.settings).label_cutoff
                except ConfigurationError:
                    return []
                q = (q.where(FeedbackSample.window_end < cutoff)
                     .order_by(FeedbackSample.backtest_score.desc()).limit(SEED_TOP_K))
            raw = list(s.scalars(q))
        seeds: list[Mapping[str, Any]] = []
        for p in raw:
            try:
                seeds.append(canonical_params(p))
            except InvalidRequest:
                continue  # a producer's own parameter language: nothing to mutate
        if seed_ids and not seeds:
            raise NotFound(f"none of the seed strategies {seed_ids[:5]} has usable feedback")
        return seeds

    def generate(self, request: pb.GenerateStrategyRequest) -> pb.GenerateStrategyResponse:
        limit = self.ctx.settings.ml_max_candidates
        if not 1 <= request.max_candidates <= limit:
            raise InvalidRequest(f"max_candidates must be in [1, {limit}], got {request.max_candidates}")
        if len(request.seed_strategy_ids) > 100:
            raise InvalidRequest("at most 100 seed_strategy_ids")
        constraints = Constraints.from_proto(request.constraints)
        serving = self.serving()
        found = generate(
            model=serving.model if serving else None, constraints=constraints,
            seeds=self._seeds(list(request.seed_strategy_ids)),
            backtested=lambda fps: feedback_store.backtested_among(self.ctx.sessions, fps),
            max_candidates=request.max_candidates, rng=seed_from(request.random_seed))
        out = []
        for c in found:
            struct = pb.GeneratedStrategy().params
            struct.update(c.params)
            out.append(pb.GeneratedStrategy(
                strategy_id=candidate_id(c.fingerprint), name=f"generated-{constraints.risk_level}-{c.fingerprint[:8]}",
                params=struct, expected_score=c.expected_score, uncertainty=c.uncertainty, confidence=c.confidence,
                model_version=serving.version if serving else ""))
        return pb.GenerateStrategyResponse(strategies=out)

    def features(self, request: pb.GetFeaturesRequest) -> pb.GetFeaturesResponse:
        """The strategy model's inputs for a stored backtest: its parameters, encoded (no metrics)."""
        if not request.backtest_id or len(request.backtest_id) > 128:
            raise InvalidRequest("backtest_id must be 1–128 characters")
        with self.ctx.sessions() as s:
            params = s.scalars(select(FeedbackSample.params)
                               .where(FeedbackSample.backtest_id == request.backtest_id)).first()
        if params is None:
            raise NotFound(f"no feedback stored for backtest {request.backtest_id!r}")
        try:
            x = encode([canonical_params(params)])[0]
        except InvalidRequest as exc:
            raise InvalidRequest(f"backtest {request.backtest_id}'s parameters are not a backtester strategy: {exc}")
        return pb.GetFeaturesResponse(backtest_id=request.backtest_id,
                                      features={n: float(v) for n, v in zip(FEATURE_NAMES, x)},
                                      feature_names=list(FEATURE_NAMES))


def holdout_mask(backtest_ids, fraction: float) -> np.ndarray:
    """A fixed share of backtest ids, chosen by hash, that no strategy version trains on."""
    cut = int(fraction * 2**32)
    return np.array([int.from_bytes(hashlib.sha256(b.encode()).digest()[:4], "big") < cut for b in backtest_ids],
                    dtype=bool)
