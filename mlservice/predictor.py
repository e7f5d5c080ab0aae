"""GetPrediction / BatchPredict: point-in-time outcome predictions from the serving versions.

The predictor holds one immutable snapshot (features of every known match + the serving
outcome versions) and swaps it whole after a training job or a rollback, so a request never
sees half of an update. Requests are answered by matrix products per version: 1,000
selections cost a few milliseconds.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgeloop.errors import InvalidRequest, NotFound, PermanentError
from mlservice import registry
from mlservice.context import ServiceContext
from mlservice.features import FeatureSet, build_features
from mlservice.market import load_market
from mlservice.outcome_model import MODEL_NAME, OutcomeModel, ServingOutcome, confidence, recommendation
from proto import ml_service_pb2 as pb

SELECTION_INDEX = {"home": 0, "h": 0, "draw": 1, "d": 1, "away": 2, "a": 2}
SELECTION_NAMES = ("home", "draw", "away")
MAX_ID_LEN = 128


class NoModelForEvent(PermanentError):
    """No outcome version was trained strictly before the event (point in time)."""


@dataclass(frozen=True)
class Snapshot:
    features: FeatureSet
    serving: ServingOutcome
    made_monotonic: float

    @property
    def version_ids(self) -> tuple[str, ...]:
        return tuple(v[1] for v in self.serving.versions)


# How often a request checks whether the serving versions changed (another replica's training
# job, `edgeloop ml rollback`): one small query, so replicas converge within this many seconds.
REGISTRY_POLL_S = 2.0
# An unknown event id rebuilds the features (matches imported since) at most this often.
FEATURES_STALE_S = 30.0


class OutcomePredictor:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self._named: OrderedDict[str, tuple[np.datetime64, OutcomeModel]] = OrderedDict()
        self._checked_monotonic = 0.0

    # --- state ---------------------------------------------------------------------------

    def refresh(self, features: FeatureSet | None = None) -> Snapshot:
        """Re-read the serving versions (and the matches, unless ``features`` are given)."""
        with self._lock:
            if features is None:
                features = build_features(load_market(self.ctx))
            rows = registry.serving_versions(self.ctx.sessions, MODEL_NAME)
            serving = ServingOutcome([
                (np.datetime64(r.train_end.date(), "D"), r.version, OutcomeModel.from_bytes(r.artifact))
                for r in rows if r.train_end is not None
            ])
            self._snapshot = Snapshot(features, serving, time.monotonic())
            self._checked_monotonic = time.monotonic()
            return self._snapshot

    def snapshot(self) -> Snapshot:
        snap = self._snapshot
        if snap is None:
            return self.refresh()
        if time.monotonic() - self._checked_monotonic > REGISTRY_POLL_S:
            self._checked_monotonic = time.monotonic()
            if registry.serving_version_ids(self.ctx.sessions, MODEL_NAME) != snap.version_ids:
                return self.refresh(snap.features)
        return snap

    def _named_version(self, version: str) -> tuple[np.datetime64, OutcomeModel]:
        hit = self._named.get(version)
        if hit is None:
            row = registry.get_version(self.ctx.sessions, version)
            if row.model_name != MODEL_NAME or row.train_end is None:
                raise InvalidRequest(f"model_version {version!r} is not an outcome model version")
            hit = (np.datetime64(row.train_end.date(), "D"),
                   OutcomeModel.from_bytes(registry.load_artifact(self.ctx.sessions, version)))
            self._named[version] = hit
            while len(self._named) > 64:
                self._named.popitem(last=False)
        return hit

    # --- requests ------------------------------------------------------------------------

    def predict(self, requests: Sequence[pb.PredictionRequest]) -> list[pb.Prediction]:
        snap = self.snapshot()
        fs = snap.features
        rows = np.empty(len(requests), dtype=np.int64)
        sels = np.empty(len(requests), dtype=np.int64)
        for i, r in enumerate(requests):
            where = f"requests[{i}]" if len(requests) > 1 else "request"
            if not r.event_id or len(r.event_id) > MAX_ID_LEN:
                raise InvalidRequest(f"{where}: event_id must be 1–{MAX_ID_LEN} characters")
            sel = SELECTION_INDEX.get(r.selection.strip().lower())
            if sel is None:
                raise InvalidRequest(f"{where}: selection {r.selection!r} is not one of home, draw, away")
            row = fs.index.get(r.event_id)
            if row is None and time.monotonic() - snap.made_monotonic > FEATURES_STALE_S:
                self.refresh()  # matches may have been imported since: start over with them
                return self.predict(requests)
            if row is None:
                raise NotFound(f"{where}: unknown event {r.event_id!r} (import its league-season first)")
            rows[i], sels[i] = row, sel

        probs, which = snap.serving.predict_rows(fs, rows)
        versions = [snap.serving.versions[k][1] if k >= 0 else "" for k in which]
        for i, r in enumerate(requests):
            if r.model_version:  # an explicit version must still be from before the event
                train_end, model = self._named_version(r.model_version)
                if train_end >= fs.dates[rows[i]]:
                    raise InvalidRequest(
                        f"model_version {r.model_version} was trained on data up to {train_end}, not before "
                        f"event {r.event_id} ({fs.dates[rows[i]]}): that would be looking into the future")
                probs[i] = model.predict_proba(fs.X[rows[i]:rows[i] + 1])[0]
                versions[i] = r.model_version
            elif which[i] < 0:
                raise NoModelForEvent(f"no outcome model version was trained before {fs.dates[rows[i]]} "
                                      f"(event {r.event_id}); run a training job")

        conf = confidence(probs)
        min_edge = self.ctx.settings.ml_recommend_min_edge
        out = []
        for i, r in enumerate(requests):
            row, sel = rows[i], sels[i]
            p = float(probs[i, sel])
            out.append(pb.Prediction(
                event_id=r.event_id, selection=SELECTION_NAMES[sel], probability=p,
                confidence=float(conf[i]),
                recommendation=recommendation(p, float(fs.best_prices[row, sel]), min_edge),
                model_version=versions[i], features_hash=fs.row_hash(row)))
        return out
